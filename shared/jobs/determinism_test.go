package jobs_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/baton-run/baton/shared/jobs"
)

// parsePackage parses the package's non-test Go files.
func parsePackage(t *testing.T) (*token.FileSet, []*ast.File) {
	t.Helper()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatal("no Go files found")
	}
	return fset, files
}

// forbiddenClockCalls are the time functions that read the wall or monotonic clock.
var forbiddenClockCalls = map[string]bool{"Now": true, "Since": true, "Until": true}

// forbiddenImports would make the package depend on randomness or the outside world.
var forbiddenImports = []string{"crypto/rand", "math/rand", "math/rand/v2", "os", "net", "net/http", "io/ioutil"}

// clockUses returns the positions of time.Now/Since/Until selector expressions in f (under
// whatever name f imports package time), and of forbidden imports.
func clockUses(fset *token.FileSet, f *ast.File) []string {
	var found []string
	timeName := ""
	for _, imp := range f.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			continue
		}
		if slices.Contains(forbiddenImports, path) {
			found = append(found, fset.Position(imp.Pos()).String()+": imports "+path)
		}
		if path != "time" {
			continue
		}
		timeName = "time"
		if imp.Name != nil {
			timeName = imp.Name.Name
		}
		if timeName == "." {
			found = append(found, fset.Position(imp.Pos()).String()+": dot-imports time")
		}
	}
	if timeName == "" {
		return found
	}
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == timeName && forbiddenClockCalls[sel.Sel.Name] {
			found = append(found, fset.Position(sel.Pos()).String()+": "+timeName+"."+sel.Sel.Name)
		}
		return true
	})
	return found
}

// TestNoClock enforces the house rule that the state machine is deterministic: timestamps are
// passed in, nothing in this package reads the clock (nor randomness, nor the outside world).
func TestNoClock(t *testing.T) {
	fset, files := parsePackage(t)
	for _, f := range files {
		for _, use := range clockUses(fset, f) {
			t.Errorf("%s (pass time in instead)", use)
		}
	}
}

// TestNoClockDetector makes sure the detector above would notice a clock read.
func TestNoClockDetector(t *testing.T) {
	tests := []struct {
		src  string
		want int
	}{
		{"package p\nimport \"time\"\nfunc f() time.Time { return time.Now() }\n", 1},
		{"package p\nimport clock \"time\"\nvar now = clock.Now\nfunc f(t clock.Time) clock.Duration { return clock.Since(t) + clock.Until(t) }\n", 3},
		{"package p\nimport \"math/rand\"\nfunc f() int { return rand.Int() }\n", 1},
		{"package p\nimport . \"time\"\nvar d = Second\n", 1},
		{"package p\nimport \"time\"\nfunc f(t time.Time) time.Time { return t.UTC().Add(time.Second) }\n", 0},
	}
	for _, tt := range tests {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, "src.go", tt.src, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := clockUses(fset, f); len(got) != tt.want {
			t.Errorf("clockUses(%q) = %q, want %d finding(s)", tt.src, got, tt.want)
		}
	}
}

// TestEnumsComplete checks the All* lists (and this test's list of job states) against the
// constants the package declares, so a new state or event cannot escape the exhaustive tables.
func TestEnumsComplete(t *testing.T) {
	_, files := parsePackage(t)
	declared := map[string][]string{}
	for _, f := range files {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				typ, ok := vs.Type.(*ast.Ident)
				if !ok {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("constant of type %s is not a string literal", typ.Name)
					}
					s, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					declared[typ.Name] = append(declared[typ.Name], s)
				}
			}
		}
	}
	check := func(typ string, listed []string) {
		t.Helper()
		got := slices.Sorted(slices.Values(declared[typ]))
		want := slices.Sorted(slices.Values(listed))
		if len(got) == 0 {
			t.Errorf("no %s constants found", typ)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s constants %q, listed %q", typ, got, want)
		}
	}
	check("NodeState", strs(jobs.AllNodeStates))
	check("NodeEvent", strs(jobs.AllNodeEvents))
	check("JobEvent", strs(jobs.AllJobEvents))
	check("State", strs(allStates))
}

func strs[S ~string](in []S) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	return out
}
