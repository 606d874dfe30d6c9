package s3catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
)

// The index objects. Every one carries "version"; readers refuse versions they do not know.

// envsIndex is envs/index.json: the published environments.
type envsIndex struct {
	Version      int      `json:"version"`
	Environments []string `json:"environments"`
}

// envIndex is envs/<env>/index.json: the tasks of one environment, sorted by name.
type envIndex struct {
	Version     int            `json:"version"`
	Environment string         `json:"environment"`
	Tasks       []envIndexTask `json:"tasks"`
}

type envIndexTask struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Private     bool   `json:"private"`
}

// taskIndex is tasks/<env>/<module>/<task>.json: one task.
type taskIndex struct {
	Version     int             `json:"version"`
	Name        string          `json:"name"`
	Module      string          `json:"module"`
	Environment string          `json:"environment"`
	Metadata    json.RawMessage `json:"metadata"`
	Files       []taskIndexFile `json:"files"`
}

type taskIndexFile struct {
	Filename  string `json:"filename"`
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
}

var (
	envNameRE = regexp.MustCompile(`^[a-z0-9_]+$`) // Puppet's environment name rule
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// encodeIndex marshals v without HTML escaping. Raw metadata is compacted, which keeps its
// meaning but not its whitespace.
func encodeIndex(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decodeEnvsIndex(b []byte) (envsIndex, error) {
	var x envsIndex
	if err := json.Unmarshal(b, &x); err != nil {
		return x, err
	}
	if x.Version != indexVersion {
		return x, fmt.Errorf("unsupported index version %d", x.Version)
	}
	for _, env := range x.Environments {
		if !envNameRE.MatchString(env) {
			return x, fmt.Errorf("invalid environment name %q", env)
		}
	}
	return x, nil
}

func decodeEnvIndex(b []byte, env string) (envIndex, error) {
	var x envIndex
	if err := json.Unmarshal(b, &x); err != nil {
		return x, err
	}
	if x.Version != indexVersion {
		return x, fmt.Errorf("unsupported index version %d", x.Version)
	}
	if x.Environment != env {
		return x, fmt.Errorf("index is for environment %q", x.Environment)
	}
	return x, nil
}

func decodeTaskIndex(b []byte, env, name string) (taskIndex, error) {
	var x taskIndex
	if err := json.Unmarshal(b, &x); err != nil {
		return x, err
	}
	if x.Version != indexVersion {
		return x, fmt.Errorf("unsupported index version %d", x.Version)
	}
	if x.Environment != env || x.Name != name {
		return x, fmt.Errorf("index is for task %s in %s", x.Name, x.Environment)
	}
	for _, f := range x.Files {
		if f.Filename == "" || !sha256RE.MatchString(f.SHA256) || f.SizeBytes < 0 {
			return x, fmt.Errorf("invalid file entry %+v", f)
		}
	}
	return x, nil
}
