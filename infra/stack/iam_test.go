package stack

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The functions' policies are checked against what the functions do: the AWS end-to-end
// tests (shared/awsapp, `make iam-actions`) record every AWS API action each function's
// handler issues, with its resource and the DynamoDB partition keys it touches, into
// testdata/function-actions.json. Here each recorded action is evaluated against the
// function's policies in the synthesized template, the way IAM evaluates an identity
// policy: an Allow statement whose action and resource patterns match and whose conditions
// hold, and no Deny that matches. The other way round, every action a policy allows must be
// one the function was recorded using, or one the Lambda service uses with the function's
// role (platformActions), or one listed in notDriven with the reason the end-to-end tests
// cannot drive it.

const functionActionsPath = "testdata/function-actions.json"

// onTable marks a notDriven entry that concerns the action's use on the table only.
const onTable = " on the table"

// recorded is the file: function → IAM action → symbolic resource → partition key patterns.
type recorded map[string]map[string]map[string][]string

func readRecorded(t *testing.T) recorded {
	t.Helper()
	b, err := os.ReadFile(functionActionsPath)
	if err != nil {
		t.Fatalf("%v (run `make iam-actions`)", err)
	}
	var r recorded
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", functionActionsPath, err)
	}
	return r
}

// platformActions are used with a function's role by the Lambda service rather than by the
// function's code: writing its logs, and (dispatch) the event source mapping polling the
// dispatch queue.
func platformActions(fn string) []string {
	acts := []string{"logs:CreateLogStream", "logs:PutLogEvents"}
	if fn == FunctionDispatch {
		acts = append(acts, DispatchConsumeActions...)
	}
	return acts
}

// notDriven are actions granted for paths the AWS end-to-end tests cannot drive, each with
// why; an action followed by onTable is one whose use on the table is not driven (its use on
// the indexes is recorded and checked). An entry that the record shows used, or that no
// policy grants, fails the test: the list only shrinks.
var notDriven = map[string]map[string]string{
	FunctionAPI: {
		"s3:ListBucket": "not an API call: S3 answers GetObject of a missing key with 404 (s3catalog's \"nothing published yet\") only to a caller that may list the bucket; the emulator does not check IAM",
	},
	FunctionSweep: {
		"dynamodb:BatchWriteItem": "the events of a claim that refills free slots under a server-wide cap (BATON_TASK_CONCURRENCY); the end-to-end tests run without one, as AWS does by default",
		// execute-api:ManageConnections and dynamodb:Query on the table are driven by
		// TestAWSSilentlyLostResultFound: the status scan's query of the job's node shards
		// and its status query to the agent.
	},
	FunctionDispatch: {
		"dynamodb:Query": "queries of a job's node shards when a job is stopped or reaches its error limit while it is dispatched (ListJobNodesInState of its ready records); no end-to-end test stops a job in that moment",
	},
	FunctionWSConnect: {
		"dynamodb:GetItem": "the read after a $connect refused by its condition (a late $connect of a connection older than the one recorded, or an unknown node); the end-to-end tests' agents are enrolled and their connects are handled in order",
	},
	FunctionWSDefault: {
		"dynamodb:BatchWriteItem": "the events of a claim that refills free slots under a server-wide cap (BATON_TASK_CONCURRENCY); the end-to-end tests run without one, as AWS does by default",
	},
}

// statement is one statement of a role's identity policies, rendered (see render).
type statement struct {
	policy             string
	effect             string
	actions, resources []string
	condition          map[string]any
}

// roleStatements returns the statements of every identity policy attached to role (by
// logical id): AWS::IAM::Policy resources naming it and the role's inline policies.
func roleStatements(doc map[string]any, role string) []statement {
	var out []statement
	add := func(where string, pd any) {
		pdoc, _ := pd.(map[string]any)
		for _, st := range list(pdoc["Statement"]) {
			st, _ := st.(map[string]any)
			s := statement{policy: where, effect: fmt.Sprint(st["Effect"]), actions: strs(st["Action"]), resources: strs(st["Resource"])}
			s.condition, _ = st["Condition"].(map[string]any)
			for _, k := range []string{"NotAction", "NotResource"} {
				if st[k] != nil {
					s.actions = append(s.actions, "?"+k) // matches nothing: never allows
				}
			}
			out = append(out, s)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(doc["Resources"].(map[string]any))) {
		r := doc["Resources"].(map[string]any)[id].(map[string]any)
		p := props(r)
		switch r["Type"] {
		case "AWS::IAM::Policy":
			for _, ref := range list(p["Roles"]) {
				if render(ref) == "${"+role+"}" {
					add(id, p["PolicyDocument"])
				}
			}
		case "AWS::IAM::Role":
			if id == role {
				for _, pol := range list(p["Policies"]) {
					add(id, pol.(map[string]any)["PolicyDocument"])
				}
			}
		}
	}
	return out
}

// templateIDs are the logical ids the record's symbolic resources resolve to.
type templateIDs struct {
	table, bucket, queue, secret, wsAPI, stage string
	functions, roles                           map[string]string // function name → logical id
}

func idsOf(t *testing.T, s *synthesized) templateIDs {
	t.Helper()
	ids := templateIDs{functions: map[string]string{}, roles: map[string]string{}, stage: DefaultStageName}
	ids.table, _ = s.only(t, "AWS::DynamoDB::Table")
	ids.bucket, _ = s.only(t, "AWS::S3::Bucket")
	ids.secret, _ = s.only(t, "AWS::SecretsManager::Secret")
	ids.queue = cfnID(t, s.stack.Stack, s.stack.Dispatch.Queue.Node().DefaultChild())
	ids.wsAPI = cfnID(t, s.stack.Stack, s.stack.Broker.API.Node().DefaultChild())
	for _, sp := range Specs() {
		ids.functions[sp.Name] = s.functionID(t, sp.Name)
		ids.roles[sp.Name] = s.roleID(t, sp.Name)
	}
	return ids
}

// resolve turns a symbolic resource of the record into the ARN a request on it has, in the
// template's rendering: an object under a key prefix becomes an object of that prefix, an
// @connections call one on a connection.
func (ids templateIDs) resolve(sym string) (string, error) {
	switch {
	case sym == "table":
		return "${" + ids.table + ".Arn}", nil
	case strings.HasPrefix(sym, "table/index/"):
		return "${" + ids.table + ".Arn}/index/" + strings.TrimPrefix(sym, "table/index/"), nil
	case sym == "bucket":
		return "${" + ids.bucket + ".Arn}", nil
	case strings.HasPrefix(sym, "bucket/") && strings.HasSuffix(sym, "/*"):
		return "${" + ids.bucket + ".Arn}/" + strings.TrimSuffix(strings.TrimPrefix(sym, "bucket/"), "*") + "object", nil
	case sym == "queue":
		return "${" + ids.queue + ".Arn}", nil
	case sym == "seal-key":
		return "${" + ids.secret + "}", nil
	case strings.HasPrefix(sym, "@connections/"):
		return "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${" + ids.wsAPI + "}/" + ids.stage + "/" +
			strings.TrimPrefix(sym, "@connections/") + "/@connections/Connection0=", nil
	case strings.HasPrefix(sym, "function/"):
		if id, ok := ids.functions[strings.TrimPrefix(sym, "function/")]; ok {
			return "${" + id + ".Arn}", nil
		}
	}
	return "", fmt.Errorf("resource %q is not one of the stack's", sym)
}

// wildcard reports whether s matches the IAM pattern p ('*' any run, '?' one character).
func wildcard(p, s string, foldCase bool) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(p)) + "$"
	if foldCase {
		re = "(?i)" + re
	}
	return regexp.MustCompile(re).MatchString(s)
}

func matchesAny(patterns []string, s string, foldCase bool) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return wildcard(p, s, foldCase) })
}

// request is one recorded authorization: an action on a resource, with the partition key
// patterns it touched (DynamoDB).
type request struct {
	action, resource string
	keys             []string
	index            bool
}

// conditionHolds evaluates a statement's condition for r. The only condition the stack uses
// is ForAllValues:StringLike on dynamodb:LeadingKeys; any other makes the statement allow
// nothing, so that an unmodelled condition cannot pass for an allow. A recorded key pattern
// ("TOKEN#*") is a set of keys: it holds when a condition pattern matches the pattern itself,
// which for prefix patterns is when it matches every key of the set.
func conditionHolds(cond map[string]any, r request) (bool, string) {
	for op, kv := range cond {
		kv, _ := kv.(map[string]any)
		if op != "ForAllValues:StringLike" || len(kv) != 1 || kv["dynamodb:LeadingKeys"] == nil {
			return false, fmt.Sprintf("condition %s %v is not modelled by this test", op, kv)
		}
		if r.index {
			return false, "dynamodb:LeadingKeys on an index request is not modelled by this test"
		}
		if len(r.keys) == 0 {
			return false, "the request touched no partition key"
		}
		patterns := strs(kv["dynamodb:LeadingKeys"])
		for _, k := range r.keys {
			if !matchesAny(patterns, k, false) {
				return false, fmt.Sprintf("partition key %s is outside dynamodb:LeadingKeys %v", k, patterns)
			}
		}
	}
	return true, ""
}

// allowed evaluates r against statements: allowed when an Allow statement matches and no
// Deny does; why says what stood in the way.
func allowed(statements []statement, r request) (ok bool, why string) {
	why = "no statement allows it"
	for _, s := range statements {
		if !matchesAny(s.actions, r.action, true) || !matchesAny(s.resources, r.resource, false) {
			continue
		}
		holds, reason := conditionHolds(s.condition, r)
		switch {
		case s.effect == "Deny" && holds:
			return false, "denied by " + s.policy
		case s.effect == "Allow" && holds:
			ok = true
		case s.effect == "Allow":
			why = s.policy + ": " + reason
		}
	}
	if ok {
		return true, ""
	}
	return false, why
}

// evaluate checks rec against the policies in doc: every recorded action of a function is
// allowed by its role, and every action its role allows is recorded (or a platform action, or
// in notDriven). It returns the problems found, sorted.
func evaluate(doc map[string]any, ids templateIDs, rec recorded) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for fn := range rec {
		if _, ok := ids.roles[fn]; !ok {
			addf("%s: recorded, but the stack has no such function", fn)
		}
	}
	for _, fn := range slices.Sorted(maps.Keys(ids.roles)) {
		statements := roleStatements(doc, ids.roles[fn])
		var requests []request
		for action, resources := range rec[fn] {
			for sym, keys := range resources {
				arn, err := ids.resolve(sym)
				if err != nil {
					addf("%s: %s: %v", fn, action, err)
					continue
				}
				requests = append(requests, request{action: action, resource: arn, keys: keys, index: strings.Contains(sym, "/index/")})
			}
		}
		for _, r := range requests {
			if ok, why := allowed(statements, r); !ok {
				addf("%s: %s on %s (keys %v) is not allowed: %s", fn, r.action, r.resource, r.keys, why)
			}
		}
		// The other way: every action granted is used.
		exempt := platformActions(fn)
		for _, s := range statements {
			if s.effect != "Allow" {
				continue
			}
			for _, a := range s.actions {
				if matchesAny(exempt, a, true) {
					continue
				}
				if _, ok := notDriven[fn][a]; ok {
					continue
				}
				if _, ok := notDriven[fn][a+onTable]; ok && !slices.ContainsFunc(s.resources, func(r string) bool { return strings.Contains(r, "/index/") }) {
					continue
				}
				used := slices.ContainsFunc(requests, func(r request) bool {
					return wildcard(a, r.action, true) && matchesAny(s.resources, r.resource, false)
				})
				if !used {
					addf("%s: %s grants %s on %v, which the function was never recorded using", fn, s.policy, a, s.resources)
				}
			}
		}
		for a, reason := range notDriven[fn] {
			action, table := strings.CutSuffix(a, onTable)
			if uses, ok := rec[fn][action]; ok && (!table || uses["table"] != nil) {
				addf("%s: %s is listed as not driven by the end-to-end tests (%s), but they record it: remove it from notDriven", fn, a, reason)
			}
			if !slices.ContainsFunc(statements, func(s statement) bool { return s.effect == "Allow" && slices.Contains(s.actions, action) }) {
				addf("%s: %s is listed in notDriven but no policy grants it: remove it", fn, a)
			}
		}
	}
	sort.Strings(problems)
	return problems
}

// TestPoliciesAllowRecordedActions: the policies in the template allow every action each
// function was recorded making, on its resources and partition keys, and nothing else.
func TestPoliciesAllowRecordedActions(t *testing.T) {
	rec := readRecorded(t)
	for _, v := range []variant{defaultVariant, localstackVariant} {
		t.Run(string(v), func(t *testing.T) {
			s := synth(t, v)
			for _, p := range evaluate(s.doc, idsOf(t, s), rec) {
				t.Error(p)
			}
		})
	}
	for _, sp := range Specs() {
		if len(rec[sp.Name]) == 0 {
			t.Errorf("%s: no actions recorded for it: is its handler tagged in shared/awsapp's end-to-end harness?", sp.Name)
		}
	}
}

// copyDoc returns a deep copy of a template.
func copyDoc(t *testing.T, doc map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// editRole applies edit to every statement of the identity policies of role in doc.
func editRole(doc map[string]any, role string, edit func(st map[string]any)) {
	for _, r := range doc["Resources"].(map[string]any) {
		r := r.(map[string]any)
		if r["Type"] != "AWS::IAM::Policy" {
			continue
		}
		p := props(r)
		if !slices.ContainsFunc(list(p["Roles"]), func(ref any) bool { return render(ref) == "${"+role+"}" }) {
			continue
		}
		for _, st := range list(p["PolicyDocument"].(map[string]any)["Statement"]) {
			edit(st.(map[string]any))
		}
	}
}

// TestPolicyEvaluationCatchesMutations mutates the synthesized template and checks that the
// evaluation fails: each recorded action of each function dropped from its policies in turn
// (wsauthorizer's dynamodb:PutItem is the nonce write its role once lacked), an action
// granted that nothing uses, and a dynamodb:LeadingKeys condition that leaves out a key the
// function reads.
func TestPolicyEvaluationCatchesMutations(t *testing.T) {
	rec := readRecorded(t)
	s := synth(t, defaultVariant)
	ids := idsOf(t, s)
	if p := evaluate(s.doc, ids, rec); len(p) > 0 {
		t.Fatalf("the unmutated template fails: %v", p)
	}
	mutants := 0
	for _, fn := range slices.Sorted(maps.Keys(rec)) {
		for _, action := range slices.Sorted(maps.Keys(rec[fn])) {
			doc := copyDoc(t, s.doc)
			editRole(doc, ids.roles[fn], func(st map[string]any) {
				var keep []any
				for _, a := range list(st["Action"]) {
					if a != action {
						keep = append(keep, a)
					}
				}
				if len(keep) == 0 {
					keep = []any{"none:Nothing"} // a statement needs an action
				}
				st["Action"] = keep
			})
			want := fn + ": " + action + " on "
			problems := evaluate(doc, ids, rec)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, want) && strings.Contains(p, "is not allowed") }) {
				t.Errorf("dropping %s from %s's policies: the evaluation did not fail for it: %v", action, fn, problems)
			}
			mutants++
		}
	}
	if rec[FunctionWSAuthorizer]["dynamodb:PutItem"] == nil {
		t.Error("the record has no dynamodb:PutItem for wsauthorizer (signed connects record nonces): TestAWSSignedConnect did not run?")
	}
	t.Logf("%d mutants, each with one recorded action dropped, all caught", mutants)

	t.Run("an unused grant", func(t *testing.T) {
		doc := copyDoc(t, s.doc)
		editRole(doc, ids.roles[FunctionAuthorizer], func(st map[string]any) {
			if st["Sid"] == "Table" {
				st["Action"] = append(list(st["Action"]), "dynamodb:DeleteItem")
			}
		})
		if p := evaluate(doc, ids, rec); !slices.ContainsFunc(p, func(p string) bool { return strings.Contains(p, "grants dynamodb:DeleteItem") }) {
			t.Errorf("granting the authorizer dynamodb:DeleteItem: problems %v", p)
		}
	})
	t.Run("leading keys too narrow", func(t *testing.T) {
		doc := copyDoc(t, s.doc)
		editRole(doc, ids.roles[FunctionAuthorizer], func(st map[string]any) {
			if st["Sid"] == "Table" {
				st["Condition"] = map[string]any{"ForAllValues:StringLike": map[string]any{"dynamodb:LeadingKeys": []any{"USERS", "ROLES"}}}
			}
		})
		if p := evaluate(doc, ids, rec); !slices.ContainsFunc(p, func(p string) bool { return strings.Contains(p, "TOKEN#* is outside dynamodb:LeadingKeys") }) {
			t.Errorf("leaving TOKEN#* out of the authorizer's leading keys: problems %v", p)
		}
	})
}

// TestPolicyEvaluation pins the evaluation's rules on small cases.
func TestPolicyEvaluation(t *testing.T) {
	leading := map[string]any{"ForAllValues:StringLike": map[string]any{"dynamodb:LeadingKeys": []any{"TOKEN#*", "USERS"}}}
	table := "${T.Arn}"
	for _, tc := range []struct {
		name string
		st   []statement
		r    request
		ok   bool
	}{
		{"exact", []statement{{effect: "Allow", actions: []string{"dynamodb:GetItem"}, resources: []string{table}}},
			request{action: "dynamodb:GetItem", resource: table}, true},
		{"action case and wildcard", []statement{{effect: "Allow", actions: []string{"dynamodb:get*"}, resources: []string{table}}},
			request{action: "dynamodb:GetItem", resource: table}, true},
		{"other action", []statement{{effect: "Allow", actions: []string{"dynamodb:GetItem"}, resources: []string{table}}},
			request{action: "dynamodb:PutItem", resource: table}, false},
		{"index needs its own resource", []statement{{effect: "Allow", actions: []string{"dynamodb:Query"}, resources: []string{table}}},
			request{action: "dynamodb:Query", resource: table + "/index/gsi1", index: true}, false},
		{"object prefix", []statement{{effect: "Allow", actions: []string{"s3:GetObject"}, resources: []string{"${B.Arn}/files/*"}}},
			request{action: "s3:GetObject", resource: "${B.Arn}/files/object"}, true},
		{"other prefix", []statement{{effect: "Allow", actions: []string{"s3:GetObject"}, resources: []string{"${B.Arn}/files/*"}}},
			request{action: "s3:GetObject", resource: "${B.Arn}/tasks/object"}, false},
		{"leading keys inside", []statement{{effect: "Allow", actions: []string{"dynamodb:GetItem"}, resources: []string{table}, condition: leading}},
			request{action: "dynamodb:GetItem", resource: table, keys: []string{"TOKEN#*", "USERS"}}, true},
		{"a leading key outside", []statement{{effect: "Allow", actions: []string{"dynamodb:GetItem"}, resources: []string{table}, condition: leading}},
			request{action: "dynamodb:GetItem", resource: table, keys: []string{"TOKEN#*", "NODES"}}, false},
		{"a broader key than allowed", []statement{{effect: "Allow", actions: []string{"dynamodb:GetItem"}, resources: []string{table},
			condition: map[string]any{"ForAllValues:StringLike": map[string]any{"dynamodb:LeadingKeys": []any{"TOKEN#a*"}}}}},
			request{action: "dynamodb:GetItem", resource: table, keys: []string{"TOKEN#*"}}, false},
		{"unmodelled condition", []statement{{effect: "Allow", actions: []string{"dynamodb:GetItem"}, resources: []string{table},
			condition: map[string]any{"StringEquals": map[string]any{"aws:SourceVpc": "vpc-1"}}}},
			request{action: "dynamodb:GetItem", resource: table}, false},
		{"deny wins", []statement{{effect: "Allow", actions: []string{"*"}, resources: []string{"*"}}, {effect: "Deny", actions: []string{"dynamodb:GetItem"}, resources: []string{table}}},
			request{action: "dynamodb:GetItem", resource: table}, false},
		{"NotAction never allows", []statement{{effect: "Allow", actions: []string{"?NotAction"}, resources: []string{table}}},
			request{action: "dynamodb:GetItem", resource: table}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ok, why := allowed(tc.st, tc.r); ok != tc.ok {
				t.Errorf("allowed = %v (%s), want %v", ok, why, tc.ok)
			}
		})
	}
}
