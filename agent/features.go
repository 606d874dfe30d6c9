package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Task features (Task Spec v1, reference §4.8 step 1 and §5.2): what an implementation's
// "requirements" may name.
const (
	FeatureShell       = "shell"
	FeaturePowershell  = "powershell"
	FeaturePuppetAgent = "puppet-agent"
)

// Where Puppet's own (AIO, "puppet-agent" package) install puts puppet and its Ruby. Forge
// tasks written in Ruby start with `#!/opt/puppetlabs/puppet/bin/ruby`.
const (
	AIOPuppet = "/opt/puppetlabs/bin/puppet"
	AIORuby   = "/opt/puppetlabs/puppet/bin/ruby"
)

// puppetVersionTimeout bounds `puppet --version` (Ruby's start-up takes a few seconds on a
// busy machine).
const puppetVersionTimeout = 60 * time.Second

// Platform is what the agent found on its node when it started: the task features it can
// honestly advertise, the Puppet it found (with its version) and the default interpreters.
type Platform struct {
	// Features: "shell" when a POSIX sh is present, "powershell" on Windows or when pwsh is,
	// "puppet-agent" when puppet was found and `puppet --version` answered.
	Features []string
	// PuppetBin is the puppet executable found ("" when none); PuppetVersion what its
	// --version printed.
	PuppetBin     string
	PuppetVersion string
	// PuppetErr says why a puppet that was found is not advertised (its --version failed).
	PuppetErr error
	// Interpreters are the default interpreters (see DefaultInterpreters).
	Interpreters map[string][]string
}

// probe is how detection looks at the machine; tests replace it.
type probe struct {
	goos     string
	lookPath func(file string) (string, error)
	isExec   func(path string) bool
	firstLn  func(path string) string
	version  func(ctx context.Context, puppet string) (string, error)
}

func systemProbe() probe {
	return probe{
		goos:     runtime.GOOS,
		lookPath: exec.LookPath,
		isExec: func(p string) bool {
			fi, err := os.Stat(p)
			return err == nil && fi.Mode().IsRegular() && (runtime.GOOS == "windows" || fi.Mode().Perm()&0o111 != 0)
		},
		firstLn: firstLine,
		version: puppetVersion,
	}
}

var (
	platformMu    sync.Mutex
	platformCache = map[string]Platform{}
)

// DetectPlatform finds the node's features, Puppet and default interpreters. puppetBin is the
// puppet executable to use ("" to look for AIOPuppet, then puppet on PATH). The result is
// computed once per process and puppetBin (it runs `puppet --version`); callers get a copy.
func DetectPlatform(ctx context.Context, puppetBin string) Platform {
	return detectPlatform(ctx, puppetBin, "")
}

// detectPlatform is DetectPlatform with what `puppet --version` printed kept in cacheDir
// ("" for none) for the next agent process (see cachedPuppetVersion).
func detectPlatform(ctx context.Context, puppetBin, cacheDir string) Platform {
	platformMu.Lock()
	defer platformMu.Unlock()
	key := puppetBin + "\x00" + cacheDir
	p, ok := platformCache[key]
	if !ok {
		pr := systemProbe()
		if cacheDir != "" {
			pr.version = cachedPuppetVersion(cacheDir, pr.version)
		}
		p = pr.detect(ctx, puppetBin)
		platformCache[key] = p
	}
	p.Features = slices.Clone(p.Features)
	interps := make(map[string][]string, len(p.Interpreters))
	for k, v := range p.Interpreters {
		interps[k] = slices.Clone(v)
	}
	p.Interpreters = interps
	return p
}

func (pr probe) detect(ctx context.Context, puppetBin string) Platform {
	var p Platform
	if pr.goos != "windows" {
		if sh, err := pr.lookPath("sh"); err == nil && sh != "" {
			p.Features = append(p.Features, FeatureShell)
		}
	}
	pwsh, _ := pr.lookPath("pwsh")
	if pr.goos == "windows" || pwsh != "" {
		p.Features = append(p.Features, FeaturePowershell)
	}
	p.PuppetBin = pr.findPuppet(puppetBin)
	if p.PuppetBin != "" {
		vctx, cancel := context.WithTimeout(ctx, puppetVersionTimeout)
		v, err := pr.version(vctx, p.PuppetBin)
		cancel()
		if err == nil {
			p.PuppetVersion = v
			p.Features = append(p.Features, FeaturePuppetAgent)
		} else {
			p.PuppetErr = fmt.Errorf("%s --version: %w", p.PuppetBin, err)
		}
	}
	p.Interpreters = pr.defaultInterpreters(p.PuppetBin, pwsh)
	return p
}

// findPuppet returns the puppet executable: puppetBin (a path, or a name looked up on PATH)
// when given, else AIOPuppet when present, else puppet on PATH; "" when there is none.
func (pr probe) findPuppet(puppetBin string) string {
	if puppetBin != "" {
		if strings.ContainsRune(puppetBin, os.PathSeparator) || strings.ContainsRune(puppetBin, '/') {
			if pr.isExec(puppetBin) {
				return puppetBin
			}
			return ""
		}
		p, _ := pr.lookPath(puppetBin)
		return p
	}
	if pr.goos != "windows" && pr.isExec(AIOPuppet) {
		return AIOPuppet
	}
	p, _ := pr.lookPath("puppet")
	return p
}

// defaultInterpreters: ".rb" → AIORuby when present, else the Ruby that puppet's shebang
// names (Debian's /usr/bin/puppet starts with #!/usr/bin/ruby), else ruby on PATH; ".py" →
// python3 on PATH; ".ps1" → pwsh where present. Extensions with no interpreter found are left
// out (their tasks start directly, by shebang).
func (pr probe) defaultInterpreters(puppet, pwsh string) map[string][]string {
	m := map[string][]string{}
	switch {
	case pr.goos != "windows" && pr.isExec(AIORuby):
		m[".rb"] = []string{AIORuby}
	default:
		if r := pr.shebangRuby(puppet); r != "" {
			m[".rb"] = []string{r}
		} else if r, _ := pr.lookPath("ruby"); r != "" {
			m[".rb"] = []string{r}
		}
	}
	if py, _ := pr.lookPath("python3"); py != "" {
		m[".py"] = []string{py}
	}
	if pwsh != "" {
		m[".ps1"] = []string{pwsh}
	}
	return m
}

// shebangRuby returns the Ruby interpreter named by puppet's first line (`#!/usr/bin/ruby`,
// `#!/usr/bin/env ruby`, with or without arguments), or "".
func (pr probe) shebangRuby(puppet string) string {
	if puppet == "" {
		return ""
	}
	line := pr.firstLn(puppet)
	if !strings.HasPrefix(line, "#!") {
		return ""
	}
	f := strings.Fields(strings.TrimPrefix(line, "#!"))
	if len(f) == 0 {
		return ""
	}
	interp := f[0]
	if filepath.Base(interp) == "env" {
		// #!/usr/bin/env [-S] ruby ...: the first word that is not an option.
		interp = ""
		for _, w := range f[1:] {
			if !strings.HasPrefix(w, "-") {
				interp = w
				break
			}
		}
		if !strings.HasPrefix(interp, "ruby") {
			return ""
		}
		p, _ := pr.lookPath(interp)
		return p
	}
	if !strings.HasPrefix(filepath.Base(interp), "ruby") || !pr.isExec(interp) {
		return ""
	}
	return interp
}

// firstLine returns the first line of a file (at most 256 bytes), "" when it cannot be read.
func firstLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	line, _ := bufio.NewReaderSize(f, 256).ReadSlice('\n')
	return strings.TrimSpace(string(line))
}

// looksLikeVersion accepts "7.23.0", "8.10.0", "6.28.0-rc1": digits, a dot, digits, then no
// spaces.
func looksLikeVersion(v string) bool {
	major, rest, ok := strings.Cut(v, ".")
	if !ok || major == "" || strings.ContainsAny(v, " \t") || len(rest) == 0 || rest[0] < '0' || rest[0] > '9' {
		return false
	}
	for _, c := range major {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// puppetVersion runs `puppet --version` (in its own process group, killed on timeout) and
// returns the version it prints.
func puppetVersion(ctx context.Context, puppet string) (string, error) {
	cmd := exec.CommandContext(ctx, puppet, "--version")
	setProcessGroup(cmd)
	cmd.Cancel = func() error { return killProcessGroup(cmd.Process.Pid) }
	cmd.WaitDelay = ioGrace
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if err != nil {
		return "", err
	}
	// The version is the last line: warnings (e.g. about a missing locale) may come first.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	v := strings.TrimSpace(lines[len(lines)-1])
	if !looksLikeVersion(v) {
		return "", fmt.Errorf("%s --version printed %q, not a version", puppet, v)
	}
	return v, nil
}

// puppetVersionFile keeps, in the agent's cache directory, what `puppet --version` printed,
// with the executable it came from: starting Ruby costs seconds of CPU, and a restarted agent
// whose puppet has not changed need not pay them again.
const puppetVersionFile = "puppet-version.json"

// puppetVersionRecord is puppetVersionFile's content: the version and the executable it was
// read from — its path with symbolic links resolved, size and modification time (a package
// upgrade replaces the file, which changes them).
type puppetVersionRecord struct {
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	Version string    `json:"version"`
}

// puppetIdentity returns the record of puppet (without the version).
func puppetIdentity(puppet string) (puppetVersionRecord, error) {
	real, err := filepath.EvalSymlinks(puppet)
	if err != nil {
		return puppetVersionRecord{}, err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return puppetVersionRecord{}, err
	}
	return puppetVersionRecord{Path: real, Size: fi.Size(), ModTime: fi.ModTime().UTC()}, nil
}

// cachedPuppetVersion wraps version: it answers from dir's puppetVersionFile when that was
// recorded for the same executable (path, size, modification time), else runs version and
// records what it printed. A failure is never recorded: the next start tries again.
func cachedPuppetVersion(dir string, version func(ctx context.Context, puppet string) (string, error)) func(ctx context.Context, puppet string) (string, error) {
	return func(ctx context.Context, puppet string) (string, error) {
		id, err := puppetIdentity(puppet)
		if err != nil {
			return version(ctx, puppet)
		}
		path := filepath.Join(dir, puppetVersionFile)
		if b, err := os.ReadFile(path); err == nil {
			var rec puppetVersionRecord
			if json.Unmarshal(b, &rec) == nil && looksLikeVersion(rec.Version) &&
				rec.Path == id.Path && rec.Size == id.Size && rec.ModTime.Equal(id.ModTime) {
				return rec.Version, nil
			}
		}
		v, err := version(ctx, puppet)
		if err != nil {
			return v, err
		}
		id.Version = v
		if err := os.MkdirAll(dir, 0o700); err == nil {
			_ = writeJSONAtomic(path, id, false) // a cache: lost in a crash, it is read again
		}
		return v, nil
	}
}

// resolved is what the agent runs tasks with: its features, interpreters and Puppet version.
type resolved struct {
	features      []string
	interpreters  map[string][]string
	puppetVersion string
}

// lazyPlatform resolves the agent's features and interpreters from its Config, detecting what
// the Config leaves unset (DetectPlatform) in the background from the moment the Config gets
// its defaults, so that neither enrolment nor connecting waits for `puppet --version`. The
// first task (and the facts) wait for it instead.
type lazyPlatform struct {
	done chan struct{}
	res  resolved
}

func newLazyPlatform(c Config) *lazyPlatform {
	lp := &lazyPlatform{done: make(chan struct{})}
	explicit := resolved{features: c.Features, interpreters: c.Interpreters, puppetVersion: c.PuppetVersion}
	finish := func(p Platform, detected bool) {
		r := explicit
		if r.features == nil {
			r.features = p.Features
		}
		if r.interpreters == nil {
			r.interpreters = p.Interpreters
		}
		r.interpreters = MergeInterpreters(r.interpreters, c.InterpreterOverrides)
		if r.puppetVersion == "" {
			r.puppetVersion = p.PuppetVersion
		}
		if r.features == nil {
			r.features = []string{}
		}
		lp.res = r
		close(lp.done)
		if detected && c.Logger != nil {
			if p.PuppetErr != nil {
				c.Logger.Warn("puppet found but not usable: the puppet-agent feature is not advertised", "error", p.PuppetErr)
			}
			c.Logger.Info("task platform", "features", strings.Join(r.features, ","), "puppet_version", r.puppetVersion,
				"interpreters", FormatInterpreters(r.interpreters))
		}
	}
	if c.Features != nil && c.Interpreters != nil {
		finish(Platform{}, false)
		return lp
	}
	cacheDir := c.CacheDir
	if c.MemorySpool {
		cacheDir = "" // shared by many virtual agents
	}
	go finish(detectPlatform(context.Background(), c.PuppetBin, cacheDir), true)
	return lp
}

// get waits for the platform (or for ctx).
func (lp *lazyPlatform) get(ctx context.Context) (resolved, error) {
	select {
	case <-lp.done:
		return lp.res, nil
	case <-ctx.Done():
		return resolved{}, fmt.Errorf("detect task features: %w", context.Cause(ctx))
	}
}
