package main

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseKV(t *testing.T) {
	meta := json.RawMessage(`{"parameters":{
		"name":{"type":"String[1]"},
		"opt":{"type":"Optional[String]"},
		"pw":{"type":"Optional[Sensitive[String[8]]]"},
		"mode":{"type":"Enum[fast, slow]"},
		"count":{"type":"Optional[Integer]"}}}`)
	for _, tc := range []struct {
		name string
		kvs  []string
		want map[string]any
		err  string
	}{
		{"string types stay strings", []string{"name=123", "opt=true", "pw=[1]", "mode=null"},
			map[string]any{"name": "123", "opt": "true", "pw": "[1]", "mode": "null"}, ""},
		{"other types take JSON", []string{"count=3", "flag=true", "list=[1,\"a\"]", "obj={\"k\":null}", "nothing=null"},
			map[string]any{"count": json.Number("3"), "flag": true, "list": []any{json.Number("1"), "a"}, "obj": map[string]any{"k": nil}, "nothing": nil}, ""},
		{"what is not one JSON value is a string", []string{"word=hello", "two=1 2", "empty="},
			map[string]any{"word": "hello", "two": "1 2", "empty": ""}, ""},
		{"the value may hold =", []string{"expr=a=b"}, map[string]any{"expr": "a=b"}, ""},
		{"no =", []string{"name"}, nil, `parameter "name": want key=value`},
		{"no key", []string{"=v"}, nil, `parameter "=v": want key=value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseKV(tc.kvs, meta)
			if tc.err != "" {
				var ue usageErr
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want a usage error with %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseKV(%q) = %#v, %v; want %#v", tc.kvs, got, err, tc.want)
			}
		})
	}
	t.Run("without metadata every value is tried as JSON", func(t *testing.T) {
		got, err := parseKV([]string{"n=1"}, nil)
		if err != nil || got["n"] != json.Number("1") {
			t.Errorf("got %#v, %v", got, err)
		}
	})
}

func TestStringType(t *testing.T) {
	for typ, want := range map[string]bool{
		"String": true, "String[1, 10]": true, "Optional[String]": true, "Sensitive[String]": true,
		"Optional[Sensitive[String[1]]]": true, "Enum[a, b]": true, "Pattern[/x/]": true,
		"": false, "Integer": false, "Boolean": false, "Optional[Integer]": false, "Array[String]": false,
		"Variant[String, Integer]": false, "Hash": false,
	} {
		if got := stringType(typ); got != want {
			t.Errorf("stringType(%q) = %v, want %v", typ, got, want)
		}
	}
}

func TestParseSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  bool
	}{
		{"30", 30, false},
		{"1", 1, false},
		{"5m", 300, false},
		{"1h1s", 3601, false},
		{"1s", 1, false},
		{"0", 0, true},
		{"-5", 0, true},
		{"500ms", 0, true},
		{"1.5s", 0, true},
		{"0s", 0, true},
		{"soon", 0, true},
		{"", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSeconds(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("parseSeconds(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestResultText(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"empty", ``, ``},
		{"null", `null`, `null`},
		{"not an object", ` [1, 2] `, `[1, 2]`},
		{"output alone is text", `{"_output":"line 1\nline 2"}`, "line 1 ⏎ line 2"},
		{"error shows its msg", `{"_error":{"kind":"k","msg":"boom","details":{}}}`, "error: boom"},
		{"output with other keys is JSON", `{"_output":"x","a":1}`, `{"_output":"x","a":1}`},
		{"other objects are compact JSON", `{ "greeting": "hi",  "n": 2 }`, `{"greeting":"hi","n":2}`},
		{"long output is cut to 200 bytes", `{"_output":"` + long + `"}`, long[:197] + "..."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resultText(json.RawMessage(tc.raw)); got != tc.want {
				t.Errorf("resultText(%s) = %q, want %q", tc.raw, got, tc.want)
			}
		})
	}
}

func TestStateSummary(t *testing.T) {
	for _, tc := range []struct {
		states map[string]int
		want   string
	}{
		{nil, "no nodes"},
		{map[string]int{"finished": 3}, "3 finished"},
		{map[string]int{"running": 1, "failed": 2, "errored": 1}, "1 errored, 2 failed, 1 running"},
	} {
		if got := stateSummary(tc.states); got != tc.want {
			t.Errorf("stateSummary(%v) = %q, want %q", tc.states, got, tc.want)
		}
	}
}

func TestAgentURL(t *testing.T) {
	for base, want := range map[string]string{
		"http://127.0.0.1:8143":         "ws://127.0.0.1:8143/pcp",
		"https://orch.example.com:8143": "wss://orch.example.com:8143/pcp",
		"http://[::1]:9000/":            "ws://[::1]:9000/pcp",
	} {
		if got := agentURL(base); got != want {
			t.Errorf("agentURL(%q) = %q, want %q", base, got, want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	newFS := func() (*flag.FlagSet, *string, *bool) {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(new(strings.Builder))
		return fs, fs.String("nodes", "", ""), fs.Bool("noop", false, "")
	}
	for _, tc := range []struct {
		name      string
		args      []string
		pos       []string
		nodes     string
		noop, err bool
	}{
		{"flags after positionals", []string{"demo::hello", "--nodes", "a,b", "name=x", "--noop"}, []string{"demo::hello", "name=x"}, "a,b", true, false},
		{"flags first", []string{"--nodes=a", "demo::hello"}, []string{"demo::hello"}, "a", false, false},
		{"-- ends flags", []string{"t", "--", "--noop", "k=v"}, []string{"t", "--noop", "k=v"}, "", false, false},
		{"nothing", nil, nil, "", false, false},
		{"unknown flag", []string{"t", "--bogus"}, nil, "", false, true},
		{"flag without value", []string{"t", "--nodes"}, nil, "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, nodes, noop := newFS()
			pos, err := parseArgs(fs, tc.args)
			if tc.err {
				var ue usageErr
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want a usage error", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(pos, tc.pos) || *nodes != tc.nodes || *noop != tc.noop {
				t.Errorf("parseArgs(%q) = %q, %v (nodes %q noop %v)", tc.args, pos, err, *nodes, *noop)
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	// Only cases that fail before any server is contacted. run writes to the process's
	// stdout and stderr, so they go to the null device meanwhile.
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = null, null
	t.Cleanup(func() {
		os.Stdout, os.Stderr = stdout, stderr
		null.Close()
	})
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"help", []string{"--help"}, 0},
		{"unknown command", []string{"nope"}, 2},
		{"missing subcommand", []string{"node"}, 2},
		{"unknown subcommand", []string{"job", "nope"}, 2},
		{"bad flag", []string{"node", "list", "--nope"}, 2},
		{"node show without a name", []string{"node", "show"}, 2},
		{"job events without an id", []string{"job", "events"}, 2},
		{"task show with two names", []string{"task", "show", "a", "b"}, 2},
		{"serve with a bad log level", []string{"serve", "--log-level", "chatty"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := run(tc.args); got != tc.want {
				t.Errorf("run(%q) = %d, want %d", tc.args, got, tc.want)
			}
		})
	}
}
