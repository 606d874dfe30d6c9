package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/baton-run/baton/shared/client"
)

// clientFlags are the flags every client command takes.
type clientFlags struct {
	server    string
	tokenFile string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", "", "server URL (env BATON_SERVER; default https://127.0.0.1:8143)")
	fs.StringVar(&c.tokenFile, "token-file", "", "API token file (env BATON_TOKEN_FILE; default: the local server's admin token)")
}

// newClientFlagSet is a flag set with the flags every client command takes.
func newClientFlagSet(name string) (*flag.FlagSet, *clientFlags) {
	fs := newFlagSet(name)
	cf := &clientFlags{}
	cf.register(fs)
	return fs, cf
}

// nameCommand runs a client command that takes exactly one name and no flags of its own: act
// makes the request (a method expression such as (*client.Client).DeleteGroup fits), and done
// (a format with one %s for the name) is printed when it succeeds.
func nameCommand(cmd, usage string, args []string, act func(*client.Client, context.Context, string) error, done string) error {
	fs, cf := newClientFlagSet(cmd)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("%s", usage)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if err := act(c, context.Background(), pos[0]); err != nil {
		return err
	}
	fmt.Printf(done+"\n", pos[0])
	return nil
}

// localState is what `baton serve` records so that the CLI on the same machine finds it.
type localState struct {
	URL       string `json:"url"`
	TokenFile string `json:"token_file"`
}

func stateFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "baton", "local.json")
}

func defaultDataDir() string {
	if d := os.Getenv("BATON_DATA"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".baton"
	}
	return filepath.Join(home, ".local", "share", "baton")
}

func readLocalState() (localState, bool) {
	b, err := os.ReadFile(stateFile())
	if err != nil {
		return localState{}, false
	}
	var s localState
	return s, json.Unmarshal(b, &s) == nil
}

func (c *clientFlags) client() (*client.Client, error) {
	st, haveState := readLocalState()
	server := firstNonEmpty(c.server, os.Getenv("BATON_SERVER"))
	if server == "" && haveState {
		server = st.URL
	}
	if server == "" {
		server = "https://127.0.0.1:8143"
	}
	tokenFile := firstNonEmpty(c.tokenFile, os.Getenv("BATON_TOKEN_FILE"))
	if tokenFile == "" {
		if f := loginTokenFile(); f != "" {
			if _, err := os.Stat(f); err == nil {
				tokenFile = f
			}
		}
	}
	if tokenFile == "" && haveState {
		tokenFile = st.TokenFile
	}
	if tokenFile == "" {
		tokenFile = filepath.Join(defaultDataDir(), "admin.token")
	}
	token, err := readTokenFile(tokenFile)
	if err != nil {
		return nil, err
	}
	return client.NewWithHTTP(server, token, cliTLS.httpClient()), nil
}

// writeTokenFile writes token to path with mode 0600, replacing any file there atomically (a
// file that exists keeps its mode through os.WriteFile, so it is never written in place).
func writeTokenFile(path, token string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".token-*")
	if err != nil {
		return fmt.Errorf("write token: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(token + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("write token: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write token: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write token: %w", err)
	}
	return nil
}

// readTokenFile reads an API token from path. Like the agent with its credential, it refuses
// a file that others can read or write: a token there is as good as leaked.
func readTokenFile(path string) (string, error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no API token at %s: pass --token-file, set BATON_TOKEN_FILE, or start `baton serve` on this machine", path)
	}
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("token file %s has mode %v: others can read it, so the token must be taken as leaked; revoke it (baton token revoke) or, if no one else could use it, chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// parseArgs parses flags that may come before or after positional arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageErr{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
