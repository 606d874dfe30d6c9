package stack

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/baton-run/baton/shared/catalog/s3catalog"
	"github.com/baton-run/baton/shared/store/dynamo"
)

// Lifetimes of the bucket's objects.
const (
	// ResultsExpiryDays is how long results/ objects (agent uploads too large for one
	// WebSocket message) are kept: the control plane reads them as soon as the agent reports.
	ResultsExpiryDays = 7
	// NoncurrentExpiryDays is how long overwritten or deleted versions are kept (task
	// indexes are rewritten on every publish).
	NoncurrentExpiryDays = 30
)

// sealKeyExcluded are the characters besides upper case and punctuation that the seal-key
// generator must not use, so that the secret is 64 lowercase hexadecimal digits (32 bytes).
const sealKeyExcluded = "ghijklmnopqrstuvwxyz"

// SealKeyLength is the seal key's length in hexadecimal digits.
const SealKeyLength = 64

// StorageProps configures Storage.
type StorageProps struct {
	// Retain keeps the table (with deletion protection), the bucket and the secret when the
	// stack is deleted or they are replaced.
	Retain bool
}

// Storage is where the control plane keeps its state: the DynamoDB table whose keys,
// indexes, TTL and billing come from dynamo.TableSchema (so the store and the stack cannot
// drift), the S3 bucket of the task catalog and result uploads (private, encrypted, TLS only,
// versioned, results/ expiring), and the Secrets Manager secret holding the 32-byte seal key
// the functions use to seal sensitive task parameters.
type Storage struct {
	constructs.Construct
	Table   awsdynamodb.Table
	Bucket  awss3.Bucket
	SealKey awssecretsmanager.Secret
	// Schema is the table design the table was built from.
	Schema dynamo.Schema
}

// NewStorage declares the table, the bucket and the seal-key secret.
func NewStorage(scope constructs.Construct, id string, props StorageProps) (*Storage, error) {
	schema := dynamo.TableSchema()
	if schema.BillingMode != types.BillingModePayPerRequest {
		return nil, fmt.Errorf("storage: table billing mode %q is not supported (want %q)", schema.BillingMode, types.BillingModePayPerRequest)
	}
	removal := awscdk.RemovalPolicy_DESTROY
	if props.Retain {
		removal = awscdk.RemovalPolicy_RETAIN
	}
	s := &Storage{Construct: constructs.NewConstruct(scope, jsii.String(id)), Schema: schema}

	s.Table = awsdynamodb.NewTable(s.Construct, jsii.String("Table"), &awsdynamodb.TableProps{
		PartitionKey:        stringAttr(schema.PartitionKey),
		SortKey:             stringAttr(schema.SortKey),
		BillingMode:         awsdynamodb.BillingMode_PAY_PER_REQUEST,
		TimeToLiveAttribute: jsii.String(schema.TTLAttribute),
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		DeletionProtection: jsii.Bool(props.Retain),
		RemovalPolicy:      removal,
	})
	for _, g := range schema.GSIs {
		proj, err := projection(g.Projection)
		if err != nil {
			return nil, fmt.Errorf("storage: index %s: %w", g.Name, err)
		}
		gsi := &awsdynamodb.GlobalSecondaryIndexProps{
			IndexName:      jsii.String(g.Name),
			PartitionKey:   stringAttr(g.PartitionKey),
			SortKey:        stringAttr(g.SortKey),
			ProjectionType: proj,
		}
		if len(g.NonKeyAttributes) > 0 {
			gsi.NonKeyAttributes = jsii.Strings(g.NonKeyAttributes...)
		}
		s.Table.AddGlobalSecondaryIndex(gsi)
	}

	s.Bucket = awss3.NewBucket(s.Construct, jsii.String("Bucket"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		Versioned:         jsii.Bool(true),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		RemovalPolicy:     removal,
		LifecycleRules: &[]*awss3.LifecycleRule{
			{
				Id:                                  jsii.String("expire-results"),
				Prefix:                              jsii.String(s3catalog.ResultsPrefix),
				Expiration:                          awscdk.Duration_Days(jsii.Number(ResultsExpiryDays)),
				NoncurrentVersionExpiration:         awscdk.Duration_Days(jsii.Number(1)),
				AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
			},
			{
				Id:                                  jsii.String("expire-noncurrent-versions"),
				NoncurrentVersionExpiration:         awscdk.Duration_Days(jsii.Number(NoncurrentExpiryDays)),
				AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
				ExpiredObjectDeleteMarker:           jsii.Bool(true),
			},
		},
	})

	s.SealKey = awssecretsmanager.NewSecret(s.Construct, jsii.String("SealKey"), &awssecretsmanager.SecretProps{
		Description: jsii.String("Baton seal key: " + fmt.Sprint(SealKeyLength) + " hexadecimal digits (32 bytes) sealing sensitive task parameters"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			PasswordLength:          jsii.Number(SealKeyLength),
			ExcludePunctuation:      jsii.Bool(true),
			ExcludeUppercase:        jsii.Bool(true),
			ExcludeCharacters:       jsii.String(sealKeyExcluded),
			IncludeSpace:            jsii.Bool(false),
			RequireEachIncludedType: jsii.Bool(false),
		},
		RemovalPolicy: removal,
	})
	return s, nil
}

// IndexArns returns the ARNs of the table's indexes, one per index of the schema (no
// wildcard).
func (s *Storage) IndexArns() []*string {
	arns := make([]*string, 0, len(s.Schema.GSIs))
	for _, g := range s.Schema.GSIs {
		arns = append(arns, awscdk.Fn_Join(jsii.String(""), &[]*string{s.Table.TableArn(), jsii.String("/index/" + g.Name)}))
	}
	return arns
}

// ObjectArn returns the ARN of the bucket's objects under prefix, which must be non-empty
// and end in "/" (so that no grant covers the whole bucket).
func (s *Storage) ObjectArn(prefix string) (*string, error) {
	if prefix == "" || !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("object ARN: prefix %q must be non-empty and end in /", prefix)
	}
	return s.Bucket.ArnForObjects(jsii.String(prefix + "*")), nil
}

func stringAttr(name string) *awsdynamodb.Attribute {
	return &awsdynamodb.Attribute{Name: jsii.String(name), Type: awsdynamodb.AttributeType_STRING}
}

func projection(p types.ProjectionType) (awsdynamodb.ProjectionType, error) {
	switch p {
	case types.ProjectionTypeAll:
		return awsdynamodb.ProjectionType_ALL, nil
	case types.ProjectionTypeKeysOnly:
		return awsdynamodb.ProjectionType_KEYS_ONLY, nil
	case types.ProjectionTypeInclude:
		return awsdynamodb.ProjectionType_INCLUDE, nil
	}
	return "", fmt.Errorf("unknown projection type %q", p)
}
