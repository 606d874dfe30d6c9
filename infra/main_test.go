package main

import (
	"archive/zip"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/baton-run/baton/infra/stack"
)

func TestMain(m *testing.M) {
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}

// TestSynthWritesCloudAssembly runs what `make synth` runs, with context as the CDK CLI
// passes it and placeholder zips, and reads the template it writes to the output directory.
// (CDK_OUTDIR and CDK_CONTEXT_JSON are read by the jsii runtime's Node.js process, which does
// not see variables a test sets with t.Setenv: the App gets them as props here.)
func TestSynthWritesCloudAssembly(t *testing.T) {
	assets := t.TempDir()
	for _, sp := range stack.Specs() {
		f, err := os.Create(filepath.Join(assets, sp.Name+".zip"))
		if err != nil {
			t.Fatal(err)
		}
		zw := zip.NewWriter(f)
		w, err := zw.Create("bootstrap")
		if err == nil {
			_, err = w.Write([]byte("#!/bin/sh\nexit 1\n"))
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
	out := t.TempDir()
	// What the CDK CLI passes as -c KEY=VALUE (strings).
	ctx := map[string]any{stack.ContextAssetDir: assets, stack.ContextStackName: "BatonSynthTest", stack.ContextRetain: "false"}
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(out), Context: &ctx})
	if err := synth(app); err != nil {
		t.Fatalf("synth: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(out, "BatonSynthTest.template.json"))
	if err != nil {
		t.Fatalf("no template in CDK_OUTDIR: %v", err)
	}
	var tmpl struct {
		Resources map[string]struct {
			Type           string
			DeletionPolicy string
		}
		Outputs map[string]any
	}
	if err := json.Unmarshal(b, &tmpl); err != nil {
		t.Fatal(err)
	}
	for _, name := range stack.Outputs() {
		if _, ok := tmpl.Outputs[name]; !ok {
			t.Errorf("output %s missing", name)
		}
	}
	var tables int
	for id, r := range tmpl.Resources {
		if r.Type == "AWS::DynamoDB::Table" {
			tables++
			if r.DeletionPolicy != "Delete" {
				t.Errorf("table %s: DeletionPolicy %q with %s=false, want Delete", id, r.DeletionPolicy, stack.ContextRetain)
			}
		}
	}
	if tables != 1 {
		t.Errorf("%d tables, want 1", tables)
	}
}
