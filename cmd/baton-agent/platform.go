package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/baton-run/baton/agent"
)

// listFlag is a repeatable flag whose values are joined with "," (--interpreters .rb=X
// --interpreters .py=Y is --interpreters .rb=X,.py=Y).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// platformSettings works out the task features and interpreters: detected on this node
// (agent.DetectPlatform, with puppetBin), then overridden. Interpreters: the detected defaults,
// then the config file's "interpreters", then BATON_AGENT_INTERPRETERS, then --interpreters,
// each replacing the extensions it names ("ext=" removes one). Features: --features, else
// BATON_AGENT_FEATURES, else the config file's "features", else the detected ones; an explicit
// list is used exactly as given.
func platformSettings(ctx context.Context, log *slog.Logger, flagInterps []string, flagFeatures string, fc fileConfig, puppetBin string) (agent.Platform, error) {
	p := agent.DetectPlatform(ctx, puppetBin)
	if p.PuppetErr != nil {
		log.Warn("puppet found but not usable: the puppet-agent feature is not advertised", "error", p.PuppetErr)
	}
	fromFile, err := agent.NormalizeInterpreters(fc.Interpreters)
	if err != nil {
		return agent.Platform{}, fmt.Errorf("config: %w", err)
	}
	p.Interpreters = agent.MergeInterpreters(p.Interpreters, fromFile)
	for _, src := range []struct{ what, val string }{
		{"BATON_AGENT_INTERPRETERS", os.Getenv("BATON_AGENT_INTERPRETERS")},
		{"--interpreters", strings.Join(flagInterps, ",")},
	} {
		m, err := agent.ParseInterpreters(src.val)
		if err != nil {
			return agent.Platform{}, fmt.Errorf("%s: %w", src.what, err)
		}
		p.Interpreters = agent.MergeInterpreters(p.Interpreters, m)
	}
	var features []string
	switch {
	case flagFeatures != "":
		features = splitList(flagFeatures)
	case os.Getenv("BATON_AGENT_FEATURES") != "":
		features = splitList(os.Getenv("BATON_AGENT_FEATURES"))
	case fc.Features != nil:
		features = fc.Features
	}
	if features != nil {
		p.Features = features
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
