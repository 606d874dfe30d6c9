package stack

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// Synthesizing starts the jsii runtime (a Node.js process) and takes seconds, so each
// configuration is synthesized once per test binary and shared by the tests, which only
// read it.

var scratch string // removed by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "baton-infra-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scratch = dir
	code := m.Run()
	jsii.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// synthesized is one synthesized stack.
type synthesized struct {
	stack    *BatonStack
	template assertions.Template
	doc      map[string]any // the template as plain JSON values
}

var (
	synthMu    sync.Mutex
	synthCache = map[string]*synthesized{}
)

// variant names the configurations the tests synthesize.
type variant string

const (
	defaultVariant    variant = "default"    // AWS, retained
	localstackVariant variant = "localstack" // LocalStack, not retained
	noReservedVariant variant = "noreserved" // AWS, no reserved concurrency
	domainsVariant    variant = "domains"    // AWS, custom domains
)

// testDomains are the custom domains of domainsVariant.
var testDomains = CustomDomains{Agents: "agents.baton.example", API: "api.baton.example",
	CertificateARN: "arn:aws:acm:eu-west-1:123456789012:certificate/0f0e0d0c-0b0a-0908-0706-050403020100"}

func (v variant) props(assets string) BatonStackProps {
	switch v {
	case localstackVariant:
		return BatonStackProps{AssetDir: assets, Retain: false, Target: TargetLocalStack}
	case domainsVariant:
		return BatonStackProps{AssetDir: assets, Retain: true, Domains: testDomains}
	case noReservedVariant:
		return BatonStackProps{AssetDir: assets, Retain: true, NoReservedConcurrency: true}
	default:
		return BatonStackProps{AssetDir: assets, Retain: true}
	}
}

// synth returns the stack of variant v, synthesizing it on first use.
func synth(t *testing.T, v variant) *synthesized {
	t.Helper()
	synthMu.Lock()
	defer synthMu.Unlock()
	if s, ok := synthCache[string(v)]; ok {
		return s
	}
	out := filepath.Join(scratch, string(v))
	assets := placeholderAssets(t, filepath.Join(out, "assets"))
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(filepath.Join(out, "cdk.out"))})
	st, err := NewBatonStack(app, "Test", v.props(assets))
	if err != nil {
		t.Fatalf("NewBatonStack(%s): %v", v, err)
	}
	tmpl := assertions.Template_FromStack(st.Stack, nil)
	raw, err := json.Marshal(tmpl.ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	s := &synthesized{stack: st, template: tmpl, doc: doc}
	synthCache[string(v)] = s
	return s
}

// placeholderAssets writes dir/<name>.zip for every function, each holding a fake bootstrap,
// so that the stack synthesizes without `make lambdas`.
func placeholderAssets(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sp := range Specs() {
		f, err := os.Create(filepath.Join(dir, sp.Name+".zip"))
		if err != nil {
			t.Fatal(err)
		}
		zw := zip.NewWriter(f)
		h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate}
		h.SetMode(0o755)
		w, err := zw.CreateHeader(h)
		if err == nil {
			_, err = w.Write([]byte("#!/bin/sh\necho placeholder for " + sp.Name + " >&2\nexit 1\n"))
		}
		if err == nil {
			err = zw.Close()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// assert runs a check of the assertions library, which panics on a mismatch, and reports
// the mismatch as a test error instead.
func assert(t *testing.T, what string, check func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	check()
}

// resources returns the template's resources of type typ by logical id.
func (s *synthesized) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range s.doc["Resources"].(map[string]any) {
		r := r.(map[string]any)
		if r["Type"] == typ {
			out[id] = r
		}
	}
	return out
}

// only returns the single resource of type typ and its logical id.
func (s *synthesized) only(t *testing.T, typ string) (string, map[string]any) {
	t.Helper()
	rs := s.resources(typ)
	if len(rs) != 1 {
		t.Fatalf("%d resources of type %s, want 1", len(rs), typ)
	}
	for id, r := range rs {
		return id, r
	}
	return "", nil
}

// props returns the Properties of resource r.
func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// functionID returns the logical id of function name.
func (s *synthesized) functionID(t *testing.T, name string) string {
	t.Helper()
	fn, ok := s.stack.Functions.ByName[name]
	if !ok {
		t.Fatalf("no function %s", name)
	}
	return cfnID(t, s.stack.Stack, fn.Node().DefaultChild())
}

// roleID returns the logical id of function name's role.
func (s *synthesized) roleID(t *testing.T, name string) string {
	t.Helper()
	return cfnID(t, s.stack.Stack, s.stack.Functions.Roles[name].Node().DefaultChild())
}

func cfnID(t *testing.T, st awscdk.Stack, child any) string {
	t.Helper()
	el, ok := child.(awscdk.CfnElement)
	if !ok {
		t.Fatalf("%T is not a CloudFormation element", child)
	}
	id, ok := st.Resolve(st.GetLogicalId(el)).(string)
	if !ok {
		t.Fatalf("logical id of %T did not resolve to a string", child)
	}
	return id
}

// render writes a CloudFormation value as text: Ref and Fn::GetAtt become ${id} and
// ${id.attr}, Fn::Join is joined, so that ARNs built from tokens can be compared as strings.
func render(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64, bool:
		return fmt.Sprint(v)
	case []any:
		parts := make([]string, len(v))
		for i, p := range v {
			parts[i] = render(p)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case map[string]any:
		if ref, ok := v["Ref"]; ok {
			return "${" + render(ref) + "}"
		}
		if att, ok := v["Fn::GetAtt"].([]any); ok && len(att) == 2 {
			return "${" + render(att[0]) + "." + render(att[1]) + "}"
		}
		if join, ok := v["Fn::Join"].([]any); ok && len(join) == 2 {
			delim, _ := join[0].(string)
			items, _ := join[1].([]any)
			parts := make([]string, len(items))
			for i, p := range items {
				parts[i] = render(p)
			}
			return strings.Join(parts, delim)
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return "${?" + strings.Join(keys, ",") + "}"
	}
	return fmt.Sprintf("${?%T}", v)
}

// list returns v as a list: a single value becomes a list of one.
func list(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	default:
		return []any{v}
	}
}

// strs renders each element of list(v).
func strs(v any) []string {
	var out []string
	for _, x := range list(v) {
		out = append(out, render(x))
	}
	return out
}
