package awsgw

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Attempts: 5, Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	highest := func(k int64) int64 { return k - 1 } // the top of the jitter range
	lowest := func(int64) int64 { return 0 }
	tests := []struct {
		retry int
		want  time.Duration // the ceiling
	}{
		{1, 10 * time.Millisecond},
		{2, 20 * time.Millisecond},
		{3, 40 * time.Millisecond},
		{4, 50 * time.Millisecond},
		{10, 50 * time.Millisecond},
		{70, 50 * time.Millisecond}, // no overflow of the shift
	}
	for _, tt := range tests {
		if got := b.delay(tt.retry, highest); got != tt.want {
			t.Errorf("retry %d: ceiling %v, want %v", tt.retry, got, tt.want)
		}
		if got := b.delay(tt.retry, lowest); got != 0 {
			t.Errorf("retry %d: floor %v, want 0 (full jitter)", tt.retry, got)
		}
	}
}

func TestBackoffDefaults(t *testing.T) {
	b := Backoff{}.withDefaults()
	if b.Attempts != 5 || b.Base != 50*time.Millisecond || b.Max != 2*time.Second {
		t.Errorf("defaults = %+v", b)
	}
}

func TestBillingUnits(t *testing.T) {
	tests := []struct{ size, want int }{
		{0, 1}, {1, 1}, {32 << 10, 1}, {32<<10 + 1, 2}, {64 << 10, 2}, {MaxMessageBytes, 4},
	}
	for _, tt := range tests {
		if got := billingUnits(tt.size); got != tt.want {
			t.Errorf("billingUnits(%d) = %d, want %d", tt.size, got, tt.want)
		}
	}
}
