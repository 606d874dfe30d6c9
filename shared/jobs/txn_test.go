package jobs

import "testing"

func TestTransactionJob(t *testing.T) {
	if got := TransactionID(42, "1b4e28ba-2fa1-41d2-883f-0016d3cca427"); got != "42_1b4e28ba-2fa1-41d2-883f-0016d3cca427" {
		t.Fatalf("TransactionID = %q", got)
	}
	for _, tc := range []struct {
		txn  string
		id   int64
		isOK bool
	}{
		{"42_1b4e28ba-2fa1-41d2-883f-0016d3cca427", 42, true},
		{"9223372036854775807_x", 9223372036854775807, true},
		{"1b4e28ba-2fa1-41d2-883f-0016d3cca427", 0, false}, // a plain UUID
		{"12345678-2fa1-41d2-883f-0016d3cca427", 0, false}, // digits before the first '-' only
		{"_x", 0, false},
		{"0_x", 0, false},
		{"042_x", 0, false},
		{"-1_x", 0, false},
		{"99999999999999999999_x", 0, false},
		{"12a_x", 0, false},
	} {
		id, ok := TransactionJob(tc.txn)
		if id != tc.id || ok != tc.isOK {
			t.Errorf("TransactionJob(%q) = %d, %v; want %d, %v", tc.txn, id, ok, tc.id, tc.isOK)
		}
	}
}
