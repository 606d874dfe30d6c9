package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/baton-run/baton/agent"
)

// listFlag is a repeatable flag (--interpreters .rb=X --interpreters .py=Y is
// --interpreters .rb=X,.py=Y); each value is parsed on its own.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// platform is what the settings say about task features and interpreters; what they leave
// out the agent detects (agent.DetectPlatform) in the background once it starts.
type platform struct {
	// Features: --features, else BATON_AGENT_FEATURES, else the config file's "features";
	// nil (detect) when none is given. An explicit list is used exactly as given.
	Features []string
	// Interpreters override the detected defaults: the config file's "interpreters", then
	// BATON_AGENT_INTERPRETERS, then --interpreters, each replacing the extensions it names
	// (an empty mapping, "ext=" or "", removes one). Each is a path and its arguments.
	Interpreters map[string][]string
}

func platformSettings(flagInterps []string, flagFeatures string, fc fileConfig) (platform, error) {
	fromFile, err := agent.NormalizeInterpreters(fc.Interpreters)
	if err != nil {
		return platform{}, fmt.Errorf("config: %w", err)
	}
	p := platform{Interpreters: map[string][]string{}}
	for k, v := range fromFile {
		p.Interpreters[k] = v
	}
	type source struct{ what, val string }
	srcs := []source{{"BATON_AGENT_INTERPRETERS", os.Getenv("BATON_AGENT_INTERPRETERS")}}
	for _, v := range flagInterps {
		srcs = append(srcs, source{"--interpreters", v}) // each alone: a JSON object may hold ","
	}
	for _, src := range srcs {
		m, err := agent.ParseInterpreters(src.val)
		if err != nil {
			return platform{}, fmt.Errorf("%s: %w", src.what, err)
		}
		for k, v := range m {
			p.Interpreters[k] = v // an empty mapping stays: it removes a detected default
		}
	}
	switch {
	case flagFeatures != "":
		p.Features = splitList(flagFeatures)
	case os.Getenv("BATON_AGENT_FEATURES") != "":
		p.Features = splitList(os.Getenv("BATON_AGENT_FEATURES"))
	case fc.Features != nil:
		p.Features = fc.Features
	}
	return p, nil
}

func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
