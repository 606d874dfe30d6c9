// Package puppetrun is the contract of an on-demand Puppet run between the control plane and
// the agent (PXP module pxp-module-puppet, action run): the PE deploy options, their mapping
// to `puppet agent` flags, the flag allow-list both sides enforce, and the run's result shape
// (reference §4.9). Running Puppet itself is the agent's business (agent/puppet).
package puppetrun

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Input is the params of a pxp-module-puppet run request.
type Input struct {
	Flags []string `json:"flags"`
	Job   string   `json:"job,omitempty"`
	// Timeout (seconds, Baton extension) makes the agent kill the run's process group.
	Timeout int `json:"timeout,omitempty"`
}

// DeployOptions are the Puppet keys of POST /command/deploy, with PE's names.
type DeployOptions struct {
	Environment          string `json:"environment"`
	Noop                 bool   `json:"noop"`
	NoNoop               bool   `json:"no_noop"`
	EnforceEnvironment   bool   `json:"enforce_environment"`
	Debug                bool   `json:"debug"`
	Trace                bool   `json:"trace"`
	Evaltrace            bool   `json:"evaltrace"`
	Filetimeout          int    `json:"filetimeout,omitempty"`
	HTTPConnectTimeout   int    `json:"http_connect_timeout,omitempty"`
	HTTPKeepaliveTimeout int    `json:"http_keepalive_timeout,omitempty"`
	HTTPReadTimeout      int    `json:"http_read_timeout,omitempty"`
	Ordering             string `json:"ordering,omitempty"`
	SkipTags             string `json:"skip_tags,omitempty"`
	Tags                 string `json:"tags,omitempty"`
	UseCachedCatalog     bool   `json:"use_cached_catalog"`
	Usecacheonfailure    bool   `json:"usecacheonfailure"`
}

// ErrInvalidFlags is wrapped by every flag validation error (pxp-module-puppet's invalid_json).
var ErrInvalidFlags = errors.New("invalid flags")

// AllowedFlags is pxp-module-puppet's allow-list of `puppet agent` flag names (each may also
// be given as --no-<name>).
var AllowedFlags = []string{
	"color", "configtimeout", "debug", "disable_warnings", "environment", "evaltrace", "filetimeout",
	"graph", "http_connect_timeout", "http_debug", "http_keepalive_timeout", "http_read_timeout",
	"log_level", "noop", "ordering", "pluginsync", "show_diff", "skip_tags", "splay",
	"strict_environment_mode", "tags", "trace", "use_cached_catalog", "usecacheonfailure", "waitforcert",
}

// valueFlags take a value as the next item.
var valueFlags = []string{"configtimeout", "environment", "filetimeout", "http_connect_timeout", "http_keepalive_timeout",
	"http_read_timeout", "log_level", "ordering", "skip_tags", "tags", "waitforcert", "color"}

var (
	flagItemRE = regexp.MustCompile(`\A[a-zA-Z0-9_:,.\-]+\z`)
	envNameRE  = regexp.MustCompile(`\A[a-z0-9_]+\z`)
	orderingRE = regexp.MustCompile(`\A(manifest|title-hash|random)\z`)
)

// ValidEnvironment reports whether name is a Puppet environment name.
func ValidEnvironment(name string) bool { return envNameRE.MatchString(name) }

// Flags maps deploy options to `puppet agent` flags, values as separate items.
func Flags(o DeployOptions) ([]string, error) {
	if o.Noop && o.NoNoop {
		return nil, fmt.Errorf("%w: noop and no_noop cannot both be true", ErrInvalidFlags)
	}
	f := []string{}
	if o.EnforceEnvironment {
		if !ValidEnvironment(o.Environment) {
			return nil, fmt.Errorf("%w: enforce_environment needs a valid environment, got %q", ErrInvalidFlags, o.Environment)
		}
		f = append(f, "--environment", o.Environment, "--strict_environment_mode")
	}
	bools := []struct {
		on   bool
		flag string
	}{{o.Noop, "--noop"}, {o.NoNoop, "--no-noop"}, {o.Debug, "--debug"}, {o.Trace, "--trace"}, {o.Evaltrace, "--evaltrace"},
		{o.UseCachedCatalog, "--use_cached_catalog"}, {o.Usecacheonfailure, "--usecacheonfailure"}}
	for _, b := range bools {
		if b.on {
			f = append(f, b.flag)
		}
	}
	ints := []struct {
		v    int
		flag string
	}{{o.Filetimeout, "--filetimeout"}, {o.HTTPConnectTimeout, "--http_connect_timeout"},
		{o.HTTPKeepaliveTimeout, "--http_keepalive_timeout"}, {o.HTTPReadTimeout, "--http_read_timeout"}}
	for _, i := range ints {
		if i.v < 0 {
			return nil, fmt.Errorf("%w: %s must be >= 0", ErrInvalidFlags, strings.TrimPrefix(i.flag, "--"))
		}
		if i.v > 0 {
			f = append(f, i.flag, strconv.Itoa(i.v))
		}
	}
	if o.Ordering != "" {
		if !orderingRE.MatchString(o.Ordering) {
			return nil, fmt.Errorf("%w: ordering must be manifest, title-hash or random", ErrInvalidFlags)
		}
		f = append(f, "--ordering", o.Ordering)
	}
	if o.Tags != "" {
		f = append(f, "--tags", o.Tags)
	}
	if o.SkipTags != "" {
		f = append(f, "--skip_tags", o.SkipTags)
	}
	if err := ValidateFlags(f); err != nil {
		return nil, err
	}
	return f, nil
}

// ValidateFlags checks flags against the allow-list as pxp-module-puppet does: every item
// matches \A[a-zA-Z0-9_:,.\-]+\z, every flag is --name or --no-name with name allowed, and
// only flags that take a value are followed by one.
func ValidateFlags(flags []string) error {
	for i := 0; i < len(flags); i++ {
		item := flags[i]
		if !flagItemRE.MatchString(item) {
			return fmt.Errorf("%w: %q has characters that are not allowed", ErrInvalidFlags, item)
		}
		name, ok := strings.CutPrefix(item, "--")
		if !ok {
			return fmt.Errorf("%w: %q is not a flag (flags start with --)", ErrInvalidFlags, item)
		}
		if strings.Contains(name, "=") {
			return fmt.Errorf("%w: %q: give values as separate items", ErrInvalidFlags, item)
		}
		base := strings.TrimPrefix(name, "no-")
		if !slices.Contains(AllowedFlags, base) {
			return fmt.Errorf("%w: flag --%s is not allowed", ErrInvalidFlags, name)
		}
		if base == name && slices.Contains(valueFlags, base) {
			if i+1 >= len(flags) || strings.HasPrefix(flags[i+1], "--") {
				return fmt.Errorf("%w: flag --%s needs a value", ErrInvalidFlags, name)
			}
			i++
			if !flagItemRE.MatchString(flags[i]) {
				return fmt.Errorf("%w: value %q of --%s has characters that are not allowed", ErrInvalidFlags, flags[i], name)
			}
		}
	}
	return nil
}

// Metrics are a run's resource counts.
type Metrics struct {
	Total            int `json:"total"`
	Changed          int `json:"changed"`
	Failed           int `json:"failed"`
	Skipped          int `json:"skipped"`
	Restarted        int `json:"restarted"`
	Scheduled        int `json:"scheduled"`
	OutOfSync        int `json:"out_of_sync"`
	FailedToRestart  int `json:"failed_to_restart"`
	CorrectiveChange int `json:"corrective_change"`
}

// NoopFlags records whether the run was asked for --noop or --no-noop.
type NoopFlags struct {
	Noop   bool `json:"noop"`
	NoNoop bool `json:"no_noop"`
}

// Result is what a run reports: pxp-module-puppet's output keys plus what PE shows in node
// results (noop flags, configuration_version). Error types follow pxp-module-puppet.
type Result struct {
	Time                 string    `json:"time"`
	TransactionUUID      string    `json:"transaction_uuid"`
	Environment          string    `json:"environment"`
	Status               string    `json:"status"` // changed | unchanged | failed | unknown
	Metrics              *Metrics  `json:"metrics"`
	Exitcode             int       `json:"exitcode"`
	Version              int       `json:"version"`
	ErrorType            string    `json:"error_type,omitempty"`
	Error                string    `json:"error,omitempty"`
	Noop                 NoopFlags `json:"noop"`
	NoopPending          bool      `json:"noop_pending"`
	ConfigurationVersion string    `json:"configuration_version,omitempty"`
	// TimedOut and Canceled (Baton extensions) say the agent killed the run.
	TimedOut bool `json:"timed_out,omitempty"`
	Canceled bool `json:"canceled,omitempty"`
}

// Error types of a run.
const (
	ErrorInvalidJSON          = "invalid_json"
	ErrorNoPuppetBin          = "no_puppet_bin"
	ErrorNoLastRunReport      = "no_last_run_report"
	ErrorInvalidLastRunReport = "invalid_last_run_report"
	ErrorAgentDisabled        = "agent_disabled"
	ErrorAgentLocked          = "agent_locked"
	ErrorAgentFailedToStart   = "agent_failed_to_start"
	ErrorAgentExitNonZero     = "agent_exit_non_zero"
)

// Succeeded reports whether the run counts as a success for the job: no error and a status
// other than failed.
func (r Result) Succeeded() bool {
	return r.ErrorType == "" && r.Error == "" && r.Status != "failed" && r.Status != "unknown"
}
