package main

import (
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/baton-run/baton/agent"
)

func TestPlatformSettings(t *testing.T) {
	file := fileConfig{Interpreters: agent.InterpreterMap{"rb": {"/file/ruby", "-r", "puppet"}, ".sh": {"/bin/bash"}}}
	tests := []struct {
		name         string
		flags        []string
		features     string
		env          map[string]string
		fc           fileConfig
		wantInterps  map[string][]string
		wantFeatures []string // nil: detect
		wantErr      string
	}{
		{name: "nothing given: detect everything", wantInterps: map[string][]string{}},
		{name: "config file", fc: file, wantInterps: map[string][]string{".rb": {"/file/ruby", "-r", "puppet"}, ".sh": {"/bin/bash"}}},
		{name: "env over file", fc: file, env: map[string]string{"BATON_AGENT_INTERPRETERS": ".rb=/env/ruby"},
			wantInterps: map[string][]string{".rb": {"/env/ruby"}, ".sh": {"/bin/bash"}}},
		{name: "repeated flag over env; ext= removes", fc: file, env: map[string]string{"BATON_AGENT_INTERPRETERS": ".rb=/env/ruby"},
			flags: []string{"rb=/flag/ruby", ".py=/flag/python", "sh="}, wantInterps: map[string][]string{".rb": {"/flag/ruby"}, ".py": {"/flag/python"}, ".sh": {}}},
		{name: "JSON in env and flag, arrays with arguments; later flags win", fc: file,
			env:         map[string]string{"BATON_AGENT_INTERPRETERS": `{"py": ["/env/python3", "-u"], "sh": ""}`},
			flags:       []string{`{".rb": ["/flag/ruby", "-r", "json,set"], "pl": "/usr/bin/perl"}`, "pl=/opt/perl"},
			wantInterps: map[string][]string{".rb": {"/flag/ruby", "-r", "json,set"}, ".py": {"/env/python3", "-u"}, ".sh": {}, ".pl": {"/opt/perl"}}},
		{name: "features flag", features: "shell, puppet-agent", env: map[string]string{"BATON_AGENT_FEATURES": "powershell"},
			fc: fileConfig{Features: []string{"x"}}, wantInterps: map[string][]string{}, wantFeatures: []string{"shell", "puppet-agent"}},
		{name: "features env", env: map[string]string{"BATON_AGENT_FEATURES": "powershell"}, fc: fileConfig{Features: []string{"x"}},
			wantInterps: map[string][]string{}, wantFeatures: []string{"powershell"}},
		{name: "features file, empty list is no features", fc: fileConfig{Features: []string{}}, wantInterps: map[string][]string{}, wantFeatures: []string{}},
		{name: "bad flag", flags: []string{".rb"}, wantErr: "--interpreters"},
		{name: "bad env", env: map[string]string{"BATON_AGENT_INTERPRETERS": "=x"}, wantErr: "BATON_AGENT_INTERPRETERS"},
		{name: "bad file key", fc: fileConfig{Interpreters: agent.InterpreterMap{"a/b": {"/x"}}}, wantErr: "config: interpreters"},
		{name: "file: empty path in an array", fc: fileConfig{Interpreters: agent.InterpreterMap{"rb": {"", "-w"}}}, wantErr: "config: interpreters: .rb: empty interpreter path"},
		{name: "flag: JSON with an empty array", flags: []string{`{"rb": []}`}, wantErr: `--interpreters: interpreters: "rb": empty array`},
		{name: "env: JSON with an empty path", env: map[string]string{"BATON_AGENT_INTERPRETERS": `{"rb": [""]}`}, wantErr: "BATON_AGENT_INTERPRETERS: interpreters: \"rb\": empty interpreter path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("BATON_AGENT_INTERPRETERS", tt.env["BATON_AGENT_INTERPRETERS"])
			t.Setenv("BATON_AGENT_FEATURES", tt.env["BATON_AGENT_FEATURES"])
			p, err := platformSettings(tt.flags, tt.features, tt.fc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.EqualFunc(p.Interpreters, tt.wantInterps, slices.Equal) {
				t.Errorf("interpreters %v, want %v", p.Interpreters, tt.wantInterps)
			}
			if !slices.Equal(p.Features, tt.wantFeatures) || (p.Features == nil) != (tt.wantFeatures == nil) {
				t.Errorf("features %#v, want %#v", p.Features, tt.wantFeatures)
			}
		})
	}
}

// TestOneProcessor: a real agent runs its Go code on one processor unless GOMAXPROCS is set.
func TestOneProcessor(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	t.Setenv("GOMAXPROCS", "")
	runtime.GOMAXPROCS(2)
	oneProcessor()
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Errorf("GOMAXPROCS unset: %d processors, want 1", n)
	}
	t.Setenv("GOMAXPROCS", "2")
	runtime.GOMAXPROCS(2)
	oneProcessor()
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Errorf("GOMAXPROCS=2 set: %d processors, want 2 (the setting kept)", n)
	}
}
