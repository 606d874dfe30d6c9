package puppetrun

import (
	"errors"
	"slices"
	"testing"
)

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		name string
		in   DeployOptions
		want []string
		bad  bool
	}{
		{"nothing", DeployOptions{Environment: "production"}, []string{}, false},
		{"noop", DeployOptions{Noop: true}, []string{"--noop"}, false},
		{"no_noop", DeployOptions{NoNoop: true}, []string{"--no-noop"}, false},
		{"noop and no_noop", DeployOptions{Noop: true, NoNoop: true}, nil, true},
		{"enforce environment", DeployOptions{Environment: "staging", EnforceEnvironment: true},
			[]string{"--environment", "staging", "--strict_environment_mode"}, false},
		{"enforce without environment", DeployOptions{EnforceEnvironment: true}, nil, true},
		{"enforce with a bad environment", DeployOptions{Environment: "prod;rm", EnforceEnvironment: true}, nil, true},
		{"everything", DeployOptions{Debug: true, Trace: true, Evaltrace: true, Filetimeout: 5, HTTPConnectTimeout: 6,
			HTTPKeepaliveTimeout: 7, HTTPReadTimeout: 8, Ordering: "manifest", Tags: "web,db", SkipTags: "slow",
			UseCachedCatalog: true, Usecacheonfailure: true},
			[]string{"--debug", "--trace", "--evaltrace", "--use_cached_catalog", "--usecacheonfailure", "--filetimeout", "5",
				"--http_connect_timeout", "6", "--http_keepalive_timeout", "7", "--http_read_timeout", "8",
				"--ordering", "manifest", "--tags", "web,db", "--skip_tags", "slow"}, false},
		{"bad ordering", DeployOptions{Ordering: "chaos"}, nil, true},
		{"negative timeout", DeployOptions{Filetimeout: -1}, nil, true},
		{"tags with shell characters", DeployOptions{Tags: "web; rm -rf /"}, nil, true},
		{"tags with a space", DeployOptions{Tags: "a b"}, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Flags(c.in)
			if c.bad {
				if !errors.Is(err, ErrInvalidFlags) {
					t.Fatalf("Flags = %v, %v; want ErrInvalidFlags", got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("Flags = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestValidateFlags(t *testing.T) {
	for _, c := range []struct {
		flags []string
		ok    bool
	}{
		{[]string{"--noop"}, true},
		{[]string{"--no-noop", "--no-splay"}, true},
		{[]string{"--environment", "production"}, true},
		{[]string{"--tags", "a,b::c"}, true},
		{[]string{"--onetime"}, false},
		{[]string{"--daemonize"}, false},
		{[]string{"--verbose"}, false},
		{[]string{"--config_version=x"}, false},
		{[]string{"--server", "evil.example.com"}, false},
		{[]string{"--environment"}, false},
		{[]string{"--environment", "--noop"}, false},
		{[]string{"--environment=production"}, false},
		{[]string{"production"}, false},
		{[]string{"--noop;rm -rf /"}, false},
		{[]string{"--tags", "$(reboot)"}, false},
		{[]string{"--noop", "extra"}, false},
	} {
		err := ValidateFlags(c.flags)
		if c.ok != (err == nil) {
			t.Errorf("ValidateFlags(%q) = %v, want ok=%v", c.flags, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidFlags) {
			t.Errorf("ValidateFlags(%q) error %v does not wrap ErrInvalidFlags", c.flags, err)
		}
	}
}

func TestResultSucceeded(t *testing.T) {
	for _, c := range []struct {
		r    Result
		want bool
	}{
		{Result{Status: "changed"}, true},
		{Result{Status: "unchanged"}, true},
		{Result{Status: "failed"}, false},
		{Result{Status: "unknown", ErrorType: ErrorAgentDisabled, Error: "disabled"}, false},
		{Result{Status: "changed", ErrorType: ErrorAgentExitNonZero}, false},
	} {
		if got := c.r.Succeeded(); got != c.want {
			t.Errorf("%+v.Succeeded() = %v", c.r, got)
		}
	}
}
