package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-run/baton/shared/jobs"
	"github.com/baton-run/baton/shared/puppetrun"
)

// DeployRequest is a request for an on-demand Puppet run (POST /command/deploy).
type DeployRequest struct {
	Common
	Puppet puppetrun.DeployOptions
}

// deployOptions is a deploy job's public options record (PE's job "options").
type deployOptions struct {
	puppetrun.DeployOptions
	Description string `json:"description"`
	Scope       Scope  `json:"scope"`
	Transport   string `json:"transport"`
	Concurrency *int   `json:"concurrency"`
	Timeout     *int   `json:"timeout"`
	// Unenrolled: what the scope's query matched in PuppetDB that the job leaves out.
	Unenrolled *UnenrolledMatches `json:"unenrolled_matches,omitempty"`
}

// SubmitDeploy validates a Puppet run request, records the job and its nodes, and kicks
// dispatch. The agents run `puppet agent` (or `puppet apply` on masterless nodes) with only
// the allow-listed flags the request maps to.
func (s *Service) SubmitDeploy(ctx context.Context, req DeployRequest, owner jobs.Owner) (jobs.Job, error) {
	if job, found, err := s.byIdempotencyKey(ctx, owner, req.IdempotencyKey); found || err != nil {
		return job, err
	}
	if err := req.Common.validate(); err != nil {
		return jobs.Job{}, err
	}
	opts := req.Puppet
	opts.Environment, opts.Noop = req.Environment, req.Noop
	if opts.Environment != "" && !puppetrun.ValidEnvironment(opts.Environment) {
		return jobs.Job{}, newError(KindValidation, map[string]any{"environment": opts.Environment}, "invalid environment name %q", opts.Environment)
	}
	flags, err := puppetrun.Flags(opts)
	if errors.Is(err, puppetrun.ErrInvalidFlags) {
		return jobs.Job{}, newError(KindValidation, map[string]any{}, "%v", err)
	}
	if err != nil {
		return jobs.Job{}, err
	}
	names, unenrolled, err := s.resolveTargets(ctx, req.Scope)
	if err != nil {
		return jobs.Job{}, err
	}
	if names, err = s.permitted(ctx, names, req.Permit); err != nil {
		return jobs.Job{}, err
	}
	plain, err := json.Marshal(payload{Environment: opts.Environment, Flags: flags})
	if err != nil {
		return jobs.Job{}, fmt.Errorf("encode payload: %w", err)
	}
	sealed, err := s.sealer.Seal(plain)
	if err != nil {
		return jobs.Job{}, fmt.Errorf("seal payload: %w", err)
	}
	public := deployOptions{DeployOptions: opts, Description: req.Description, Scope: req.Scope, Transport: "pxp", Unenrolled: unenrolled}
	if req.Concurrency > 0 {
		public.Concurrency = &req.Concurrency
	}
	if req.Timeout > 0 {
		public.Timeout = &req.Timeout
	}
	job := jobs.Job{Type: jobs.TypeDeploy, Options: mustJSON(public), Payload: sealed}
	return s.createJob(ctx, req.Common, owner, job, names)
}

// puppetOutcome turns a Puppet run's results into the node's result.
func (s *Service) puppetOutcome(job jobs.Job, n jobs.Node, raw json.RawMessage) (jobs.NodeEvent, map[string]any, string, error) {
	var r puppetrun.Result
	var result map[string]any
	if json.Unmarshal(raw, &r) != nil || json.Unmarshal(raw, &result) != nil || result == nil {
		msg := fmt.Sprintf("Error on %s: unreadable Puppet run results", n.Name)
		return jobs.NodeError, errorResult("puppetlabs.orchestrator/execution-failure", msg, map[string]any{"node": n.Name}), msg, nil
	}
	switch {
	case r.Canceled:
		return jobs.NodeKill, result, fmt.Sprintf("Stopped puppet run on %s", n.Name), nil
	case r.TimedOut:
		msg := fmt.Sprintf("Puppet run on %s timed out after %d seconds", n.Name, job.Timeout)
		result["_error"] = map[string]any{"kind": "puppetlabs.orchestrator/puppet-timeout", "msg": msg, "details": map[string]any{"timeout": job.Timeout}}
		return jobs.NodeFail, result, msg, nil
	case r.Succeeded():
		return jobs.NodeSucceed, result, fmt.Sprintf("Finished puppet run on %s - Status: %s", n.Name, r.Status), nil
	}
	msg := fmt.Sprintf("Puppet run failed on %s - Status: %s", n.Name, r.Status)
	if r.Error != "" {
		msg += ": " + r.Error
	}
	return jobs.NodeFail, result, msg, nil
}
