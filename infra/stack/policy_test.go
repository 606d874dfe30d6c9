package stack

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/baton-run/baton/shared/catalog/s3catalog"
	"github.com/baton-run/baton/shared/store/dynamo"
)

// grant is one Allow statement of a policy in the template, rendered (see render).
type grant struct {
	policy    string   // where it is: the logical id of the policy (or role, bucket policy)
	roles     []string // logical ids of the roles it applies to (identity policies)
	actions   []string
	resources []string
	other     []string // NotAction, NotResource: never used here, always a violation
}

// grants returns every Allow statement of every policy in the template: identity policies
// (AWS::IAM::Policy, AWS::IAM::ManagedPolicy, inline policies of AWS::IAM::Role) and
// resource policies (AWS::S3::BucketPolicy).
func grants(doc map[string]any) []grant {
	var out []grant
	add := func(where string, roles []string, pd any) {
		pdoc, _ := pd.(map[string]any)
		for _, st := range list(pdoc["Statement"]) {
			st, _ := st.(map[string]any)
			if st["Effect"] != "Allow" {
				continue
			}
			g := grant{policy: where, roles: roles, actions: strs(st["Action"]), resources: strs(st["Resource"])}
			for _, k := range []string{"NotAction", "NotResource", "NotPrincipal"} {
				if st[k] != nil {
					g.other = append(g.other, k)
				}
			}
			out = append(out, g)
		}
	}
	for id, r := range doc["Resources"].(map[string]any) {
		r := r.(map[string]any)
		p := props(r)
		switch r["Type"] {
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
			var roles []string
			for _, ref := range list(p["Roles"]) {
				roles = append(roles, strings.Trim(render(ref), "${}"))
			}
			add(id, roles, p["PolicyDocument"])
		case "AWS::IAM::Role":
			for _, pol := range list(p["Policies"]) {
				add(id, []string{id}, pol.(map[string]any)["PolicyDocument"])
			}
		case "AWS::S3::BucketPolicy":
			add(id, nil, p["PolicyDocument"])
		}
	}
	return out
}

// protected names the data resources no grant may cover with a wildcard.
type protected struct {
	table, bucket  string   // logical ids
	indexes        []string // index names a grant may name
	bucketPrefixes []string // key prefixes a grant may cover (each ends in "/")
}

// violations returns what is wrong with g: a wildcard action, a wildcard resource, or a
// resource on the table or bucket other than the table, its named indexes, the bucket
// itself or objects under one of its key prefixes.
func (p protected) violations(g grant) []string {
	var v []string
	for _, o := range g.other {
		v = append(v, "uses "+o)
	}
	for _, a := range g.actions {
		switch {
		case a == "*" || strings.HasSuffix(a, ":*"):
			v = append(v, "action "+a+" grants a whole service")
		case (strings.HasPrefix(a, "dynamodb:") || strings.HasPrefix(a, "s3:")) && strings.Contains(a, "*"):
			v = append(v, "action "+a+" is a wildcard on the data services")
		}
	}
	tableArn := "${" + p.table + ".Arn}"
	bucketArn := "${" + p.bucket + ".Arn}"
	for _, r := range g.resources {
		switch {
		case r == "*":
			v = append(v, "resource *")
		case strings.Contains(r, "${"+p.table+"}") || strings.Contains(r, "${"+p.table+"."):
			ok := r == tableArn
			for _, ix := range p.indexes {
				ok = ok || r == tableArn+"/index/"+ix
			}
			if !ok {
				v = append(v, "resource "+r+" is not the table or one of its named indexes")
			}
		case strings.Contains(r, "${"+p.bucket+"}") || strings.Contains(r, "${"+p.bucket+"."):
			ok := r == bucketArn
			for _, pre := range p.bucketPrefixes {
				ok = ok || r == bucketArn+"/"+pre+"*"
			}
			if !ok {
				v = append(v, "resource "+r+" is not the bucket or a key prefix of it")
			}
		}
	}
	return v
}

func protectedOf(t *testing.T, s *synthesized) protected {
	t.Helper()
	tableID, _ := s.only(t, "AWS::DynamoDB::Table")
	bucketID, _ := s.only(t, "AWS::S3::Bucket")
	p := protected{table: tableID, bucket: bucketID,
		bucketPrefixes: []string{s3catalog.FilesPrefix, s3catalog.TasksPrefix, s3catalog.EnvsPrefix, s3catalog.ResultsPrefix}}
	for _, g := range dynamo.TableSchema().GSIs {
		p.indexes = append(p.indexes, g.Name)
	}
	return p
}

// TestLeastPrivilegeCheck shows that the check used on the template catches what it must.
func TestLeastPrivilegeCheck(t *testing.T) {
	p := protected{table: "T", bucket: "B", indexes: []string{"gsi1"}, bucketPrefixes: []string{"results/"}}
	for _, tc := range []struct {
		name      string
		g         grant
		violating bool
	}{
		{"table item actions", grant{actions: []string{"dynamodb:GetItem", "dynamodb:Query"}, resources: []string{"${T.Arn}", "${T.Arn}/index/gsi1"}}, false},
		{"object prefix", grant{actions: []string{"s3:GetObject"}, resources: []string{"${B.Arn}/results/*"}}, false},
		{"bucket itself", grant{actions: []string{"s3:ListBucket"}, resources: []string{"${B.Arn}"}}, false},
		{"other resource", grant{actions: []string{"logs:PutLogEvents"}, resources: []string{"${L.Arn}"}}, false},
		{"star action", grant{actions: []string{"*"}, resources: []string{"${L.Arn}"}}, true},
		{"dynamodb:*", grant{actions: []string{"dynamodb:*"}, resources: []string{"${T.Arn}"}}, true},
		{"s3:*", grant{actions: []string{"s3:*"}, resources: []string{"${B.Arn}/results/*"}}, true},
		{"s3:Get*", grant{actions: []string{"s3:Get*"}, resources: []string{"${B.Arn}/results/*"}}, true},
		{"any service wildcard", grant{actions: []string{"sqs:*"}, resources: []string{"${Q.Arn}"}}, true},
		{"star resource", grant{actions: []string{"logs:PutLogEvents"}, resources: []string{"*"}}, true},
		{"every index", grant{actions: []string{"dynamodb:Query"}, resources: []string{"${T.Arn}/index/*"}}, true},
		{"unknown index", grant{actions: []string{"dynamodb:Query"}, resources: []string{"${T.Arn}/index/gsi9"}}, true},
		{"table by name", grant{actions: []string{"dynamodb:GetItem"}, resources: []string{"arn:aws:dynamodb:::table/${T}"}}, true},
		{"whole bucket", grant{actions: []string{"s3:GetObject"}, resources: []string{"${B.Arn}/*"}}, true},
		{"bucket by name", grant{actions: []string{"s3:GetObject"}, resources: []string{"arn:aws:s3:::${B}/*"}}, true},
		{"NotResource", grant{actions: []string{"s3:GetObject"}, other: []string{"NotResource"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := p.violations(tc.g)
			if got := len(v) > 0; got != tc.violating {
				t.Errorf("violations(%+v) = %v, want violating=%v", tc.g, v, tc.violating)
			}
		})
	}
}

func TestLeastPrivilege(t *testing.T) {
	for _, v := range []variant{defaultVariant, localstackVariant} {
		t.Run(string(v), func(t *testing.T) {
			s := synth(t, v)
			p := protectedOf(t, s)
			gs := grants(s.doc)
			if len(gs) == 0 {
				t.Fatal("no policy statements found in the template")
			}
			for _, g := range gs {
				for _, problem := range p.violations(g) {
					t.Errorf("%s (roles %v): %s (actions %v, resources %v)", g.policy, g.roles, problem, g.actions, g.resources)
				}
			}
		})
	}
}

// TestFunctionPermissions pins each function's actions to its Spec's Access: exactly those,
// plus writing its logs (and, for dispatch, consuming the dispatch queue).
func TestFunctionPermissions(t *testing.T) {
	s := synth(t, defaultVariant)
	gs := grants(s.doc)
	wsAPIID := cfnID(t, s.stack.Stack, s.stack.Broker.API.Node().DefaultChild())
	manageARN := "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${" + wsAPIID + "}/" + DefaultStageName + "/*/@connections/*"
	queueARN := "${" + cfnID(t, s.stack.Stack, s.stack.Dispatch.Queue.Node().DefaultChild()) + ".Arn}"
	for _, sp := range Specs() {
		t.Run(sp.Name, func(t *testing.T) {
			role := s.roleID(t, sp.Name)
			a := sp.Access
			want := []string{"logs:CreateLogStream", "logs:PutLogEvents"}
			want = append(want, a.Table...)
			want = append(want, a.Indexes...)
			for _, acts := range a.Objects {
				want = append(want, acts...)
			}
			if a.ListBucket {
				want = append(want, "s3:ListBucket")
			}
			if a.SealKey {
				want = append(want, "secretsmanager:GetSecretValue")
			}
			if a.Sends {
				want = append(want, "execute-api:ManageConnections")
			}
			if a.Enqueues {
				want = append(want, "sqs:SendMessage")
			}
			if sp.Name == FunctionDispatch {
				want = append(want, DispatchConsumeActions...)
			}
			var got []string
			for _, g := range gs {
				if !slices.Contains(g.roles, role) {
					continue
				}
				got = append(got, g.actions...)
				for _, a := range g.actions {
					switch {
					case a == "execute-api:ManageConnections":
						if !slices.Equal(g.resources, []string{manageARN}) {
							t.Errorf("ManageConnections on %v, want only %s", g.resources, manageARN)
						}
					case strings.HasPrefix(a, "sqs:"):
						if !slices.Equal(g.resources, []string{queueARN}) {
							t.Errorf("%s on %v, want only the dispatch queue %s", a, g.resources, queueARN)
						}
					}
				}
			}
			sort.Strings(got)
			got = slices.Compact(got)
			sort.Strings(want)
			want = slices.Compact(want)
			if !slices.Equal(got, want) {
				t.Errorf("actions = %v\nwant %v", got, want)
			}
		})
	}
}

func TestOnlySendersManageConnections(t *testing.T) {
	s := synth(t, defaultVariant)
	var want []string
	for _, name := range []string{FunctionAPI, FunctionWSDefault, FunctionDispatch, FunctionSweep} {
		want = append(want, s.roleID(t, name))
	}
	var got []string
	for _, g := range grants(s.doc) {
		for _, a := range g.actions {
			if strings.HasPrefix(a, "execute-api:") {
				got = append(got, g.roles...)
			}
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("roles allowed execute-api actions: %v, want those of api, wsdefault, dispatch and sweep: %v", got, want)
	}
	if senders := fmt.Sprint(s.stack.Functions.Senders()); senders != fmt.Sprint([]string{FunctionAPI, FunctionWSDefault, FunctionDispatch, FunctionSweep}) {
		t.Errorf("Senders() = %s", senders)
	}
}
