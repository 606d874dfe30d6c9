package stack

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// TestPuppetDBURL: the context's PuppetDB URL (https only) becomes BATON_PUPPETDB_URL on the
// api function, the one that resolves scope queries, and on no other function.
func TestPuppetDBURL(t *testing.T) {
	const url = "https://puppetdb.example.test:8081"
	for _, tc := range []struct {
		value, want, err string
	}{
		{url, url, ""},
		{"", "", ""},
		{"http://puppetdb.example.test:8080", "", "want https://"},
	} {
		ctx := map[string]any{ContextPuppetDBURL: tc.value}
		app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir()), Context: &ctx})
		_, props, err := PropsFromContext(app.Node(), "dist")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), ContextPuppetDBURL) {
				t.Errorf("%q: err = %v, want one containing %q", tc.value, err, tc.err)
			}
			continue
		}
		if err != nil || props.PuppetDBURL != tc.want {
			t.Errorf("%q: PuppetDBURL %q, %v", tc.value, props.PuppetDBURL, err)
		}
	}

	out := filepath.Join(scratch, "puppetdb")
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(filepath.Join(out, "cdk.out"))})
	st, err := NewBatonStack(app, "Test", BatonStackProps{AssetDir: placeholderAssets(t, filepath.Join(out, "assets")), Retain: true, PuppetDBURL: url})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(assertions.Template_FromStack(st.Stack, nil).ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Resources map[string]struct {
			Type       string
			Properties struct {
				Environment struct{ Variables map[string]any }
			}
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, sp := range Specs() {
		id := cfnID(t, st.Stack, st.Functions.ByName[sp.Name].Node().DefaultChild())
		fn, ok := doc.Resources[id]
		if !ok || fn.Type != "AWS::Lambda::Function" {
			t.Fatalf("function %s (%s) not in the template", sp.Name, id)
		}
		got, set := fn.Properties.Environment.Variables[EnvPuppetDBURL]
		if sp.Name == FunctionAPI && got != url {
			t.Errorf("api function: %s = %v, want %s", EnvPuppetDBURL, got, url)
		}
		if sp.Name != FunctionAPI && set {
			t.Errorf("function %s has %s", sp.Name, EnvPuppetDBURL)
		}
	}
}
