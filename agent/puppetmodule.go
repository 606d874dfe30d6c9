package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-run/baton/agent/puppet"
	"github.com/baton-run/baton/shared/protocol"
	"github.com/baton-run/baton/shared/puppetrun"
)

// WithPuppet registers the on-demand Puppet run module (pxp-module-puppet, action run) with
// the node's local Puppet configuration. Flags from the server are checked against the
// allow-list before anything runs; a request whose flags fail it gets an rpc_error_message.
func WithPuppet(cfg puppet.Config) Option {
	if cfg.TimeoutCause == nil {
		cfg.TimeoutCause = ErrTimedOut
	}
	return func(a *Agent) {
		if cfg.Logger == nil {
			cfg.Logger = a.log.With("module", protocol.ModulePuppet)
		}
		a.modules[moduleKey{protocol.ModulePuppet, protocol.ActionRun}] = module{
			validate: validatePuppetParams,
			handler: func(ctx context.Context, req Request) (json.RawMessage, error) {
				var in puppetrun.Input
				if err := json.Unmarshal(req.Params, &in); err != nil {
					return nil, fmt.Errorf("puppet run params: %w", err)
				}
				return json.Marshal(puppet.Run(ctx, cfg, in))
			},
		}
	}
}

func validatePuppetParams(p json.RawMessage) error {
	var in puppetrun.Input
	if err := json.Unmarshal(p, &in); err != nil {
		return errors.New("params must be {flags: [...], job: string}")
	}
	if in.Flags == nil {
		return errors.New("flags is required")
	}
	return puppetrun.ValidateFlags(in.Flags)
}
