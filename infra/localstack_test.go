package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/baton-run/baton/infra/stack"
)

// These tests keep localstack/ (which CI cannot run: it needs Docker and a LocalStack
// licence) consistent with the stack and the CLI: the outputs the scripts read exist, the
// context they deploy with is the stack's, the CLI commands they call exist, and the
// compose file pins its image and passes the auth token.

const localstackDir = "../localstack"

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var outputCall = regexp.MustCompile(`\$\(output ([A-Za-z][A-Za-z0-9]*)\)`)

func TestSmokeReadsOnlyStackOutputs(t *testing.T) {
	smoke := readFile(t, filepath.Join(localstackDir, "smoke.sh"))
	var used []string
	for _, m := range outputCall.FindAllStringSubmatch(smoke, -1) {
		used = append(used, m[1])
	}
	for _, name := range used {
		if !slices.Contains(stack.Outputs(), name) {
			t.Errorf("smoke.sh reads output %q, which the stack does not define (it has %v)", name, stack.Outputs())
		}
	}
	// What the smoke test cannot run without.
	for _, need := range []string{stack.OutputHttpApiURL, stack.OutputWebSocketURL, stack.OutputTableName, stack.OutputBucketName} {
		if !slices.Contains(used, need) {
			t.Errorf("smoke.sh does not read output %s", need)
		}
	}
}

var outputsDefault = regexp.MustCompile(`(?m)^outputs=\$\{BATON_OUTPUTS_FILE:-([^}]+)\}$`)

func TestScriptsShareTheOutputsFile(t *testing.T) {
	deploy := readFile(t, filepath.Join(localstackDir, "deploy.sh"))
	smoke := readFile(t, filepath.Join(localstackDir, "smoke.sh"))
	d, s := outputsDefault.FindStringSubmatch(deploy), outputsDefault.FindStringSubmatch(smoke)
	if d == nil || s == nil || d[1] != s[1] {
		t.Errorf("deploy.sh and smoke.sh must default to the same outputs file: %q vs %q", d, s)
	}
	if !strings.Contains(deploy, `--outputs-file "$outputs"`) {
		t.Error(`deploy.sh does not deploy with --outputs-file "$outputs"`)
	}
}

func TestDeployUsesStackContextAndPinnedCLI(t *testing.T) {
	deploy := readFile(t, filepath.Join(localstackDir, "deploy.sh"))
	for _, want := range []string{
		"-c " + stack.ContextTarget + "=" + string(stack.TargetLocalStack),
		"-c " + stack.ContextRetain + "=false",
		"npm ci",
		"npx --no-install cdklocal bootstrap",
		"npx --no-install cdklocal deploy",
		"make -C \"$root\" lambdas",
	} {
		if !strings.Contains(deploy, want) {
			t.Errorf("deploy.sh does not contain %q", want)
		}
	}
	// The checks come before anything is started.
	first := strings.Index(deploy, "up -d")
	for _, check := range []string{"docker info", "LOCALSTACK_AUTH_TOKEN:-", "need go", "need npm"} {
		if i := strings.Index(deploy, check); i < 0 || i > first {
			t.Errorf("deploy.sh does not check %q before starting LocalStack", check)
		}
	}

	var pkg struct {
		DevDependencies map[string]string `json:"devDependencies"`
	}
	if err := json.Unmarshal([]byte(readFile(t, "package.json")), &pkg); err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal([]byte(readFile(t, "package-lock.json")), &lock); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"aws-cdk", "aws-cdk-local"} {
		v := pkg.DevDependencies[name]
		if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(v) {
			t.Errorf("package.json: %s is %q, want an exact version", name, v)
		}
		if got := lock.Packages["node_modules/"+name].Version; got != v {
			t.Errorf("package-lock.json has %s %q, package.json pins %q", name, got, v)
		}
	}
}

var batonCall = regexp.MustCompile(`"\$baton" ([a-z]+) ([a-z]+)`)

// TestSmokeCallsExistingCommands checks every `baton X Y` smoke.sh runs against the CLI's
// usage text.
func TestSmokeCallsExistingCommands(t *testing.T) {
	smoke := readFile(t, filepath.Join(localstackDir, "smoke.sh"))
	usage := readFile(t, "../cmd/baton/main.go")
	calls := batonCall.FindAllStringSubmatch(smoke, -1)
	if len(calls) == 0 {
		t.Fatal("smoke.sh runs no baton command")
	}
	for _, c := range calls {
		if !strings.Contains(usage, "baton "+c[1]+" "+c[2]) {
			t.Errorf("smoke.sh runs `baton %s %s`, which cmd/baton's usage does not list", c[1], c[2])
		}
	}
	for _, flag := range []string{"token create --table", "task publish --bucket", "node add NAME --out"} {
		if !strings.Contains(usage, "baton "+flag) {
			t.Errorf("cmd/baton's usage no longer shows `baton %s`, which smoke.sh uses", flag)
		}
	}
}

func TestComposeFile(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Ports       []string          `yaml:"ports"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(localstackDir, "docker-compose.yml"))), &compose); err != nil {
		t.Fatal(err)
	}
	ls, ok := compose.Services["localstack"]
	if !ok {
		t.Fatal("no localstack service")
	}
	if !regexp.MustCompile(`^localstack/localstack-pro:\d+\.\d+\.\d+$`).MatchString(ls.Image) {
		t.Errorf("image %q: want localstack/localstack-pro pinned to a version", ls.Image)
	}
	if v := ls.Environment["LOCALSTACK_AUTH_TOKEN"]; !strings.HasPrefix(v, "${LOCALSTACK_AUTH_TOKEN") {
		t.Errorf("LOCALSTACK_AUTH_TOKEN = %q, want it taken from the environment", v)
	}
	if v := ls.Environment["LAMBDA_RUNTIME_EXECUTOR"]; v != "docker" {
		t.Errorf("LAMBDA_RUNTIME_EXECUTOR = %q, want docker", v)
	}
	if !slices.ContainsFunc(ls.Volumes, func(v string) bool { return strings.HasPrefix(v, "/var/run/docker.sock:") }) {
		t.Error("the Docker socket is not mounted (LocalStack starts the Lambda containers through it)")
	}
	for _, port := range []string{":4566:4566", ":4510-4559:4510-4559"} {
		if !slices.ContainsFunc(ls.Ports, func(p string) bool { return strings.HasSuffix(p, port) }) {
			t.Errorf("port %s is not published", strings.TrimPrefix(port, ":"))
		}
	}
}

// TestScriptsPassShellcheck runs shellcheck on the scripts where it is installed.
func TestScriptsPassShellcheck(t *testing.T) {
	path, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck is not installed")
	}
	out, err := exec.Command(path, "-x", filepath.Join(localstackDir, "deploy.sh"), filepath.Join(localstackDir, "smoke.sh")).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// TestSmokeAllowsPlainLocalStackURL: LocalStack may answer with a ws:// URL on
// localhost.localstack.cloud, which the agent refuses without --insecure (it does not resolve
// names to decide that a host is loopback); smoke.sh passes it for ws:// URLs only.
func TestSmokeAllowsPlainLocalStackURL(t *testing.T) {
	smoke := readFile(t, filepath.Join(localstackDir, "smoke.sh"))
	if !regexp.MustCompile(`(?s)case \$ws_url in\s*ws://\*\) agent_args\+=\(--insecure\)`).MatchString(smoke) ||
		!strings.Contains(smoke, `--server "$ws_url" "${agent_args[@]}"`) {
		t.Error(`smoke.sh does not start the agent with --insecure for a ws:// URL`)
	}
}
