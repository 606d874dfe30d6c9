package dynamo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Key and index names of the table. The CDK app declares the same table from TableSchema.
const (
	PartitionKey = "pk"
	SortKey      = "sk"

	// GSI1 (keys only) finds node records by node name (GSI1PK "NAME#<node>", GSI1SK the
	// zero-padded job id), lists unfinished jobs (GSI1PK "UNFINISHED", GSI1SK
	// "<created_at>#<zero-padded id>"; a job leaves it when it reaches a terminal state) and
	// lists a login's API tokens (GSI1PK "TOKENS#<login>", GSI1SK "<created_at>#<hash>").
	GSI1   = "gsi1"
	GSI1PK = "gsi1pk"
	GSI1SK = "gsi1sk"

	// GSI2 (keys only) finds node records by PXP transaction id (GSI2PK "TXN#<id>", GSI2SK
	// the zero-padded job id; records without a transaction id are not in it) and lists every
	// API token (GSI2PK "TOKENS", GSI2SK "<created_at>#<hash>").
	GSI2   = "gsi2"
	GSI2PK = "gsi2pk"
	GSI2SK = "gsi2sk"

	// GSI3 lists every job (GSI3PK "JOBS", GSI3SK the zero-padded id) with the attributes
	// ListJobs filters and orders on (JobListAttributes), so that listing reads small index
	// items and fetches only the page it returns.
	GSI3   = "gsi3"
	GSI3PK = "gsi3pk"
	GSI3SK = "gsi3sk"

	// TTLAttribute holds the epoch second after which DynamoDB may delete an item. Only
	// API tokens (TokenRetention after they expire) and used connect nonces (when they
	// expire) carry it.
	TTLAttribute = "expires_at"
)

// TokenRetention is how long after its expiry a token is kept before DynamoDB's TTL may
// delete it. A token past its expiry is refused by the API either way.
const TokenRetention = 30 * 24 * time.Hour

// JobListAttributes are the non-key job attributes GSI3 projects.
var JobListAttributes = []string{attrID, attrType, attrState, attrEnv, attrOwnerLogin, attrCreated, attrFinished, attrTaskFold}

// Schema describes the table the store needs: keys, indexes, TTL and billing.
type Schema struct {
	PartitionKey string // string attribute
	SortKey      string // string attribute
	GSIs         []GSI
	TTLAttribute string
	BillingMode  types.BillingMode
}

// GSI describes one global secondary index; both keys are string attributes.
type GSI struct {
	Name             string
	PartitionKey     string
	SortKey          string
	Projection       types.ProjectionType
	NonKeyAttributes []string // only for ProjectionTypeInclude
}

// TableSchema returns the table design of the store.
func TableSchema() Schema {
	return Schema{
		PartitionKey: PartitionKey,
		SortKey:      SortKey,
		GSIs: []GSI{
			{Name: GSI1, PartitionKey: GSI1PK, SortKey: GSI1SK, Projection: types.ProjectionTypeKeysOnly},
			{Name: GSI2, PartitionKey: GSI2PK, SortKey: GSI2SK, Projection: types.ProjectionTypeKeysOnly},
			{Name: GSI3, PartitionKey: GSI3PK, SortKey: GSI3SK, Projection: types.ProjectionTypeInclude,
				NonKeyAttributes: slices.Clone(JobListAttributes)},
		},
		TTLAttribute: TTLAttribute,
		BillingMode:  types.BillingModePayPerRequest,
	}
}

// CreateTableInput returns the request that creates table with this schema (TTL is enabled
// by a separate UpdateTimeToLive call).
func (s Schema) CreateTableInput(table string) *dynamodb.CreateTableInput {
	keyAttrs := []string{s.PartitionKey, s.SortKey}
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: s.BillingMode,
		KeySchema:   keySchema(s.PartitionKey, s.SortKey),
	}
	for _, g := range s.GSIs {
		keyAttrs = append(keyAttrs, g.PartitionKey, g.SortKey)
		proj := &types.Projection{ProjectionType: g.Projection}
		if len(g.NonKeyAttributes) > 0 {
			proj.NonKeyAttributes = slices.Clone(g.NonKeyAttributes)
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName:  aws.String(g.Name),
			KeySchema:  keySchema(g.PartitionKey, g.SortKey),
			Projection: proj,
		})
	}
	for _, a := range keyAttrs {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(a), AttributeType: types.ScalarAttributeTypeS,
		})
	}
	return in
}

func keySchema(pk, sk string) []types.KeySchemaElement {
	return []types.KeySchemaElement{
		{AttributeName: aws.String(pk), KeyType: types.KeyTypeHash},
		{AttributeName: aws.String(sk), KeyType: types.KeyTypeRange},
	}
}

// ErrSchemaMismatch is returned by CreateTable when the table exists with another design.
var ErrSchemaMismatch = errors.New("table exists with a different schema")

// tableActiveTimeout bounds how long CreateTable waits for a new table to become active.
const tableActiveTimeout = 5 * time.Minute

// CreateTable creates table with TableSchema (on-demand billing), waits until it is active
// and enables TTL on TTLAttribute. It is idempotent: an existing table with the same keys
// and indexes is accepted (and its TTL enabled if needed); one with another design fails
// with ErrSchemaMismatch, naming the difference.
func CreateTable(ctx context.Context, client *dynamodb.Client, table string) error {
	if err := (Config{Table: table}).Validate(); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	schema := TableSchema()
	_, err := client.CreateTable(ctx, schema.CreateTableInput(table))
	var inUse *types.ResourceInUseException
	switch {
	case errors.As(err, &inUse):
		// Exists (or is being created): check it below.
	case err != nil:
		return fmt.Errorf("create table %s: %w", table, err)
	}
	desc, err := waitActive(ctx, client, table)
	if err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	if err := schema.matches(desc); err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	if err := enableTTL(ctx, client, table, schema.TTLAttribute); err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	return nil
}

// waitActive polls DescribeTable until the table and its indexes are active.
func waitActive(ctx context.Context, client *dynamodb.Client, table string) (*types.TableDescription, error) {
	ctx, cancel := context.WithTimeout(ctx, tableActiveTimeout)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			return nil, fmt.Errorf("describe: %w", err)
		}
		if active(out.Table) {
			return out.Table, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("wait for the table to become active: %w", ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func active(t *types.TableDescription) bool {
	if t == nil || t.TableStatus != types.TableStatusActive {
		return false
	}
	for _, g := range t.GlobalSecondaryIndexes {
		if g.IndexStatus != "" && g.IndexStatus != types.IndexStatusActive {
			return false
		}
	}
	return true
}

// matches reports, as an ErrSchemaMismatch, how desc differs from s.
func (s Schema) matches(desc *types.TableDescription) error {
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrSchemaMismatch, fmt.Sprintf(format, args...))
	}
	if got, want := keyNames(desc.KeySchema), [2]string{s.PartitionKey, s.SortKey}; got != want {
		return mismatch("table keys are %v, want %v", got, want)
	}
	if len(desc.GlobalSecondaryIndexes) != len(s.GSIs) {
		return mismatch("table has %d global secondary indexes, want %d", len(desc.GlobalSecondaryIndexes), len(s.GSIs))
	}
	for _, want := range s.GSIs {
		i := slices.IndexFunc(desc.GlobalSecondaryIndexes, func(g types.GlobalSecondaryIndexDescription) bool {
			return aws.ToString(g.IndexName) == want.Name
		})
		if i < 0 {
			return mismatch("index %s is missing", want.Name)
		}
		got := desc.GlobalSecondaryIndexes[i]
		if k := keyNames(got.KeySchema); k != [2]string{want.PartitionKey, want.SortKey} {
			return mismatch("index %s keys are %v, want [%s %s]", want.Name, k, want.PartitionKey, want.SortKey)
		}
		if got.Projection == nil || got.Projection.ProjectionType != want.Projection {
			return mismatch("index %s projection differs, want %s", want.Name, want.Projection)
		}
		gotAttrs := slices.Sorted(slices.Values(got.Projection.NonKeyAttributes))
		wantAttrs := slices.Sorted(slices.Values(want.NonKeyAttributes))
		if !slices.Equal(gotAttrs, wantAttrs) {
			return mismatch("index %s projects %v, want %v", want.Name, gotAttrs, wantAttrs)
		}
	}
	return nil
}

// keyNames returns the hash and range key names of ks.
func keyNames(ks []types.KeySchemaElement) [2]string {
	var out [2]string
	for _, k := range ks {
		switch k.KeyType {
		case types.KeyTypeHash:
			out[0] = aws.ToString(k.AttributeName)
		case types.KeyTypeRange:
			out[1] = aws.ToString(k.AttributeName)
		}
	}
	return out
}

// enableTTL turns TTL on for attr unless it already is (DynamoDB refuses to enable it twice).
func enableTTL(ctx context.Context, client *dynamodb.Client, table, attr string) error {
	out, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		return fmt.Errorf("describe time to live: %w", err)
	}
	if d := out.TimeToLiveDescription; d != nil {
		switch d.TimeToLiveStatus {
		case types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling:
			if got := aws.ToString(d.AttributeName); got != attr {
				return fmt.Errorf("%w: TTL is on attribute %q, want %q", ErrSchemaMismatch, got, attr)
			}
			return nil
		}
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(attr),
			Enabled:       aws.Bool(true),
		},
	})
	if err != nil {
		return fmt.Errorf("enable time to live on %s: %w", attr, err)
	}
	return nil
}
