package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Metadata is a task's metadata file (Task Spec v1, reference §5.2).
// Parameters is nil when the metadata has no "parameters" key (any parameters are accepted)
// and empty when it is {} (none are accepted). It is encoded without omitempty so that the
// two survive a JSON round trip (nil encodes as null, which ParseMetadata reads as absent).
type Metadata struct {
	Description       string               `json:"description,omitempty"`
	PuppetTaskVersion int                  `json:"puppet_task_version,omitempty"`
	SupportsNoop      bool                 `json:"supports_noop,omitempty"`
	Remote            bool                 `json:"remote,omitempty"`
	InputMethod       string               `json:"input_method,omitempty"`
	Parameters        map[string]Parameter `json:"parameters"`
	Implementations   []Implementation     `json:"implementations,omitempty"`
	Files             []string             `json:"files,omitempty"`
	Private           bool                 `json:"private,omitempty"`
	Extensions        map[string]any       `json:"extensions,omitempty"`
	Identifiers       map[string]any       `json:"identifiers,omitempty"`
}

// Parameter declares one task parameter.
type Parameter struct {
	Type        string          `json:"type,omitempty"`
	Description string          `json:"description,omitempty"`
	Sensitive   bool            `json:"sensitive,omitempty"`
	Default     json.RawMessage `json:"default,omitempty"`
}

// Implementation is one entry of "implementations".
type Implementation struct {
	Name         string   `json:"name"`
	Requirements []string `json:"requirements,omitempty"`
	InputMethod  string   `json:"input_method,omitempty"`
	Files        []string `json:"files,omitempty"`
	Remote       bool     `json:"remote,omitempty"`
}

// Input methods.
const (
	InputStdin       = "stdin"
	InputEnvironment = "environment"
	InputBoth        = "both"
	InputPowershell  = "powershell"
)

// ErrNoImplementation is returned (wrapped, with the features) by SelectImplementation when no
// implementation's requirements are met. Its text is pxp-agent's, which PE reports as the
// node's puppetlabs.orchestrator/execution-failure: "no implementations match supported
// features: shell, puppet-agent".
var ErrNoImplementation = errors.New("no implementations match supported features")

// SelectImplementation picks what to run on a target with the given features (reference §4.8
// steps 1-3): the first implementation whose requirements are all features; with no
// implementations, the single file named by fileNames[0]. It returns the implementation to
// run with its input method resolved (implementation's, else metadata's, else by extension).
//
// Selection happens on the agent, as with pxp-agent: the server sends every implementation
// file's name and hash, and the agent selects with the features it detected (or was
// configured with) and downloads only what the chosen implementation needs. The server does
// not pre-check: the features it knows are those last reported with the facts (shown in the
// inventory), and the agent's own are the ones that count. A node where nothing fits fails
// with ErrNoImplementation's message as an execution-failure.
func SelectImplementation(m Metadata, features []string, fileNames []string) (Implementation, error) {
	var impl Implementation
	if len(m.Implementations) == 0 {
		if len(fileNames) == 0 {
			return Implementation{}, fmt.Errorf("task has no implementation files")
		}
		impl = Implementation{Name: fileNames[0]}
	} else {
		found := false
		for _, cand := range m.Implementations {
			ok := true
			for _, r := range cand.Requirements {
				if !slices.Contains(features, r) {
					ok = false
					break
				}
			}
			if ok {
				impl, found = cand, true
				break
			}
		}
		if !found {
			return Implementation{}, fmt.Errorf("%w: %s", ErrNoImplementation, strings.Join(features, ", "))
		}
		if !slices.Contains(fileNames, impl.Name) {
			return Implementation{}, fmt.Errorf("'%s' file requested by implementation not found", impl.Name)
		}
	}
	if impl.InputMethod == "" {
		impl.InputMethod = m.InputMethod
	}
	if impl.InputMethod == "" {
		if strings.HasSuffix(impl.Name, ".ps1") {
			impl.InputMethod = InputPowershell
		} else {
			impl.InputMethod = InputBoth
		}
	}
	switch impl.InputMethod {
	case InputStdin, InputEnvironment, InputBoth, InputPowershell:
	default:
		return Implementation{}, fmt.Errorf("unsupported task input method: %s", impl.InputMethod)
	}
	return impl, nil
}

// ExtraFiles returns the metadata-level and implementation-level "files" entries that
// implementation impl needs (entries ending in "/" are directories), without duplicates.
func ExtraFiles(m Metadata, impl Implementation) []string {
	var out []string
	for _, f := range append(slices.Clone(m.Files), impl.Files...) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}
