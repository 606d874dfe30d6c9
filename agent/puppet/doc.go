// Package puppet is the agent's on-demand Puppet run, Baton's pxp-module-puppet: it checks the
// run's flags against the shared allow-list, runs `puppet agent --onetime` (or `puppet apply`
// on masterless nodes) in its own process group, handles a disabled or busy agent, and turns
// last_run_report.yaml into the shared/puppetrun result.
// It does not talk to the control plane, spool results or manage Puppet's configuration; the
// flag/result contract itself lives in shared/puppetrun.
package puppet
