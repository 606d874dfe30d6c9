package stack

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/baton-run/baton/shared/catalog/s3catalog"
	"github.com/baton-run/baton/shared/store/dynamo"
)

func TestStorageTableFollowsSchema(t *testing.T) {
	s := synth(t, defaultVariant)
	_, table := s.only(t, "AWS::DynamoDB::Table")
	p := props(table)
	schema := dynamo.TableSchema()

	keys := func(v any) [2]string {
		var out [2]string
		for _, k := range list(v) {
			k := k.(map[string]any)
			switch k["KeyType"] {
			case "HASH":
				out[0] = k["AttributeName"].(string)
			case "RANGE":
				out[1] = k["AttributeName"].(string)
			}
		}
		return out
	}
	if got, want := keys(p["KeySchema"]), [2]string{schema.PartitionKey, schema.SortKey}; got != want {
		t.Errorf("table keys = %v, want %v", got, want)
	}
	if got := p["BillingMode"]; got != string(schema.BillingMode) {
		t.Errorf("BillingMode = %v, want %s", got, schema.BillingMode)
	}
	if got := p["TimeToLiveSpecification"]; !reflect.DeepEqual(got, map[string]any{"AttributeName": schema.TTLAttribute, "Enabled": true}) {
		t.Errorf("TimeToLiveSpecification = %v, want %s enabled", got, schema.TTLAttribute)
	}
	if got := p["PointInTimeRecoverySpecification"]; !reflect.DeepEqual(got, map[string]any{"PointInTimeRecoveryEnabled": true}) {
		t.Errorf("PointInTimeRecoverySpecification = %v, want enabled", got)
	}

	// Every key attribute is a string attribute, and nothing else is declared.
	wantAttrs := []string{schema.PartitionKey, schema.SortKey}
	for _, g := range schema.GSIs {
		wantAttrs = append(wantAttrs, g.PartitionKey, g.SortKey)
	}
	var gotAttrs []string
	for _, a := range list(p["AttributeDefinitions"]) {
		a := a.(map[string]any)
		if a["AttributeType"] != "S" {
			t.Errorf("attribute %v has type %v, want S", a["AttributeName"], a["AttributeType"])
		}
		gotAttrs = append(gotAttrs, a["AttributeName"].(string))
	}
	sort.Strings(gotAttrs)
	sort.Strings(wantAttrs)
	if !slices.Equal(gotAttrs, wantAttrs) {
		t.Errorf("AttributeDefinitions = %v, want %v", gotAttrs, wantAttrs)
	}

	gsis := map[string]map[string]any{}
	for _, g := range list(p["GlobalSecondaryIndexes"]) {
		g := g.(map[string]any)
		gsis[g["IndexName"].(string)] = g
	}
	if len(gsis) != len(schema.GSIs) {
		t.Errorf("%d global secondary indexes, want %d", len(gsis), len(schema.GSIs))
	}
	for _, want := range schema.GSIs {
		t.Run(want.Name, func(t *testing.T) {
			got, ok := gsis[want.Name]
			if !ok {
				t.Fatalf("index %s missing", want.Name)
			}
			if k := keys(got["KeySchema"]); k != [2]string{want.PartitionKey, want.SortKey} {
				t.Errorf("keys = %v, want [%s %s]", k, want.PartitionKey, want.SortKey)
			}
			proj := got["Projection"].(map[string]any)
			if proj["ProjectionType"] != string(want.Projection) {
				t.Errorf("projection = %v, want %s", proj["ProjectionType"], want.Projection)
			}
			gotNonKey := strs(proj["NonKeyAttributes"])
			wantNonKey := slices.Clone(want.NonKeyAttributes)
			sort.Strings(gotNonKey)
			sort.Strings(wantNonKey)
			if !slices.Equal(gotNonKey, wantNonKey) {
				t.Errorf("non-key attributes = %v, want %v", gotNonKey, wantNonKey)
			}
		})
	}
}

func TestStorageRetention(t *testing.T) {
	for _, tc := range []struct {
		v                  variant
		protection         bool
		deletion, replaced string
	}{
		{defaultVariant, true, "Retain", "Retain"},
		{localstackVariant, false, "Delete", "Delete"},
	} {
		t.Run(string(tc.v), func(t *testing.T) {
			s := synth(t, tc.v)
			_, table := s.only(t, "AWS::DynamoDB::Table")
			if got := props(table)["DeletionProtectionEnabled"]; got != tc.protection {
				t.Errorf("DeletionProtectionEnabled = %v, want %v", got, tc.protection)
			}
			for _, typ := range []string{"AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SecretsManager::Secret", "AWS::Logs::LogGroup"} {
				for id, r := range s.resources(typ) {
					if r["DeletionPolicy"] != tc.deletion || r["UpdateReplacePolicy"] != tc.replaced {
						t.Errorf("%s %s: DeletionPolicy %v, UpdateReplacePolicy %v; want %s, %s", typ, id, r["DeletionPolicy"], r["UpdateReplacePolicy"], tc.deletion, tc.replaced)
					}
				}
			}
		})
	}
}

func TestStorageBucketProtections(t *testing.T) {
	s := synth(t, defaultVariant)
	assert(t, "bucket", func() {
		s.template.HasResourceProperties(jsii.String("AWS::S3::Bucket"), map[string]any{
			"PublicAccessBlockConfiguration": map[string]any{
				"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
			},
			"BucketEncryption": map[string]any{
				"ServerSideEncryptionConfiguration": []any{map[string]any{"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "AES256"}}},
			},
			"VersioningConfiguration": map[string]any{"Status": "Enabled"},
			"OwnershipControls":       map[string]any{"Rules": []any{map[string]any{"ObjectOwnership": "BucketOwnerEnforced"}}},
			"LifecycleConfiguration": map[string]any{"Rules": assertions.Match_ArrayWith(&[]any{
				assertions.Match_ObjectLike(&map[string]any{"Prefix": s3catalog.ResultsPrefix, "ExpirationInDays": ResultsExpiryDays, "Status": "Enabled"}),
			})},
		})
	})

	bucketID, _ := s.only(t, "AWS::S3::Bucket")
	_, policy := s.only(t, "AWS::S3::BucketPolicy")
	var tlsDenied []string
	for _, st := range list(props(policy)["PolicyDocument"].(map[string]any)["Statement"]) {
		st := st.(map[string]any)
		cond, _ := st["Condition"].(map[string]any)
		b, _ := cond["Bool"].(map[string]any)
		if st["Effect"] == "Deny" && render(st["Action"]) == "s3:*" && b["aws:SecureTransport"] == "false" {
			tlsDenied = append(tlsDenied, strs(st["Resource"])...)
		}
	}
	sort.Strings(tlsDenied)
	want := []string{"${" + bucketID + ".Arn}", "${" + bucketID + ".Arn}/*"}
	if !slices.Equal(tlsDenied, want) {
		t.Errorf("requests without TLS are denied on %v, want %v", tlsDenied, want)
	}
}

func TestStorageSealKeyIsHex(t *testing.T) {
	s := synth(t, defaultVariant)
	_, secret := s.only(t, "AWS::SecretsManager::Secret")
	gen, _ := props(secret)["GenerateSecretString"].(map[string]any)
	if gen["PasswordLength"] != float64(SealKeyLength) {
		t.Errorf("PasswordLength = %v, want %d", gen["PasswordLength"], SealKeyLength)
	}
	if gen["IncludeSpace"] == true {
		t.Error("IncludeSpace is set")
	}
	// Secrets Manager draws from lower case, upper case, digits and punctuation, less what
	// the request excludes: what remains must be exactly the hexadecimal digits.
	var alphabet []rune
	excluded, _ := gen["ExcludeCharacters"].(string)
	add := func(exclude any, chars string) {
		if exclude == true {
			return
		}
		for _, r := range chars {
			if !strings.ContainsRune(excluded, r) {
				alphabet = append(alphabet, r)
			}
		}
	}
	add(gen["ExcludeLowercase"], "abcdefghijklmnopqrstuvwxyz")
	add(gen["ExcludeUppercase"], "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	add(gen["ExcludeNumbers"], "0123456789")
	add(gen["ExcludePunctuation"], "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
	slices.Sort(alphabet)
	if got := string(alphabet); got != "0123456789abcdef" {
		t.Errorf("seal key alphabet = %q, want the hexadecimal digits", got)
	}
}

func TestStorageObjectArnRefusesWholeBucket(t *testing.T) {
	s := synth(t, defaultVariant)
	for _, prefix := range []string{"", "results", "*"} {
		if _, err := s.stack.Storage.ObjectArn(prefix); err == nil {
			t.Errorf("ObjectArn(%q) succeeded, want an error", prefix)
		}
	}
	if _, err := s.stack.Storage.ObjectArn(s3catalog.ResultsPrefix); err != nil {
		t.Errorf("ObjectArn(%q): %v", s3catalog.ResultsPrefix, err)
	}
}
