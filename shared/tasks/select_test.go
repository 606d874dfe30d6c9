package tasks

import (
	"errors"
	"testing"
)

// TestSelectImplementationByFeatures: the package task's shape (puppetlabs-package: a
// puppet-agent Ruby implementation, a shell one, a PowerShell one) against the feature sets
// agents detect, and PE's error when nothing fits.
func TestSelectImplementationByFeatures(t *testing.T) {
	m := mustParseMetadata(t, readFixture(t, "package.json"))
	files := []string{"init.rb", "linux.sh", "windows.ps1"}
	tests := []struct {
		features []string
		want     string
		wantErr  string
	}{
		{[]string{"shell", "puppet-agent"}, "init.rb", ""},
		{[]string{"powershell", "puppet-agent"}, "init.rb", ""},
		{[]string{"shell"}, "linux.sh", ""},
		{[]string{"powershell"}, "windows.ps1", ""},
		{[]string{}, "", "no implementations match supported features: "},
		{[]string{"docker"}, "", "no implementations match supported features: docker"},
	}
	for _, tt := range tests {
		impl, err := SelectImplementation(m, tt.features, files)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrNoImplementation) {
				t.Errorf("features %v: %+v, %v; want error %q", tt.features, impl, err, tt.wantErr)
			}
			continue
		}
		if err != nil || impl.Name != tt.want {
			t.Errorf("features %v: %+v, %v; want %s", tt.features, impl, err, tt.want)
		}
	}
}
