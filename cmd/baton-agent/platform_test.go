package main

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/baton-run/baton/agent"
)

func TestPlatformSettings(t *testing.T) {
	detected := agent.DetectPlatform(context.Background(), "")
	file := fileConfig{Interpreters: map[string]string{"rb": "/file/ruby", ".sh": "/bin/bash"}}
	tests := []struct {
		name         string
		flags        []string
		features     string
		env          map[string]string
		fc           fileConfig
		wantInterps  map[string]string // entries that must be there ("" = must be absent)
		wantFeatures []string          // nil: the detected ones
		wantErr      string
	}{
		{name: "defaults are detected", wantInterps: detected.Interpreters},
		{name: "config file", fc: file, wantInterps: map[string]string{".rb": "/file/ruby", ".sh": "/bin/bash"}},
		{name: "env over file", fc: file, env: map[string]string{"BATON_AGENT_INTERPRETERS": ".rb=/env/ruby"},
			wantInterps: map[string]string{".rb": "/env/ruby", ".sh": "/bin/bash"}},
		{name: "repeated flag over env", fc: file, env: map[string]string{"BATON_AGENT_INTERPRETERS": ".rb=/env/ruby"},
			flags: []string{"rb=/flag/ruby", ".py=/flag/python", "sh="}, wantInterps: map[string]string{".rb": "/flag/ruby", ".py": "/flag/python", ".sh": ""}},
		{name: "features flag", features: "shell, puppet-agent", env: map[string]string{"BATON_AGENT_FEATURES": "powershell"},
			fc: fileConfig{Features: []string{"x"}}, wantFeatures: []string{"shell", "puppet-agent"}},
		{name: "features env", env: map[string]string{"BATON_AGENT_FEATURES": "powershell"}, fc: fileConfig{Features: []string{"x"}},
			wantFeatures: []string{"powershell"}},
		{name: "features file, empty list is no features", fc: fileConfig{Features: []string{}}, wantFeatures: []string{}},
		{name: "bad flag", flags: []string{".rb"}, wantErr: "--interpreters"},
		{name: "bad env", env: map[string]string{"BATON_AGENT_INTERPRETERS": "=x"}, wantErr: "BATON_AGENT_INTERPRETERS"},
		{name: "bad file key", fc: fileConfig{Interpreters: map[string]string{"a/b": "/x"}}, wantErr: "config: interpreters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("BATON_AGENT_INTERPRETERS", tt.env["BATON_AGENT_INTERPRETERS"])
			t.Setenv("BATON_AGENT_FEATURES", tt.env["BATON_AGENT_FEATURES"])
			p, err := platformSettings(context.Background(), slog.New(slog.DiscardHandler), tt.flags, tt.features, tt.fc, "")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for ext, want := range tt.wantInterps {
				if got, ok := p.Interpreters[ext]; got != want || (want == "" && ok) {
					t.Errorf("%s → %q (present %v), want %q", ext, got, ok, want)
				}
			}
			if tt.wantInterps == nil && !maps.Equal(p.Interpreters, detected.Interpreters) {
				t.Errorf("interpreters %v, want the detected %v", p.Interpreters, detected.Interpreters)
			}
			want := tt.wantFeatures
			if want == nil {
				want = detected.Features
			}
			if !slices.Equal(p.Features, want) || p.Features == nil {
				t.Errorf("features %#v, want %#v", p.Features, want)
			}
			if p.PuppetVersion != detected.PuppetVersion {
				t.Errorf("puppet version %q, detected %q", p.PuppetVersion, detected.PuppetVersion)
			}
		})
	}
}
