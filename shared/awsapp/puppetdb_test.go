package awsapp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/baton-run/baton/shared/awsapp"
)

// TestPuppetDBConfig: the functions read PuppetDB's settings from BATON_PUPPETDB_*, and a
// PuppetDB configuration that cannot work stops the function at start.
func TestPuppetDBConfig(t *testing.T) {
	t.Setenv("BATON_PUPPETDB_URL", "https://puppetdb.example.test:8081")
	t.Setenv("BATON_PUPPETDB_CA", "-----BEGIN CERTIFICATE-----")
	t.Setenv("BATON_PUPPETDB_CERT", "/opt/puppetdb/cert.pem")
	t.Setenv("BATON_PUPPETDB_KEY", "/opt/puppetdb/key.pem")
	t.Setenv("BATON_PUPPETDB_TIMEOUT", "10s")
	cfg, err := awsapp.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.PuppetDB
	if p.URL != "https://puppetdb.example.test:8081" || string(p.CAPEM) != "-----BEGIN CERTIFICATE-----" ||
		p.CertFile != "/opt/puppetdb/cert.pem" || p.KeyFile != "/opt/puppetdb/key.pem" || p.Timeout != 10*time.Second {
		t.Errorf("PuppetDB config %+v", p)
	}
	t.Setenv("BATON_PUPPETDB_TIMEOUT", "soon")
	if _, err := awsapp.ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), "BATON_PUPPETDB_TIMEOUT") {
		t.Errorf("bad timeout: %v", err)
	}

	opts := func() (dynamodb.Options, s3.Options) {
		return dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:1")},
			s3.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:1")}
	}
	ddbOpts, s3Opts := opts()
	clients := awsapp.Clients{DynamoDB: dynamodb.New(ddbOpts), S3: s3.New(s3Opts),
		Management: apigatewaymanagementapi.New(apigatewaymanagementapi.Options{Region: "us-east-1"})}
	base := awsapp.Config{Table: "baton-table", Bucket: "baton-bucket", WebSocketEndpoint: "https://ws.example.test/prod", SealKey: make([]byte, 32)}
	for _, tc := range []struct {
		url, want string
	}{
		{"http://puppetdb.example.test:8080", "no authentication"},
		{"puppetdb:8081", "want https://"},
		{"https://puppetdb.example.test:8081", ""},
		{"", ""},
	} {
		c := base
		c.PuppetDB.URL = tc.url
		_, err := awsapp.New(c, clients, nil, nil)
		if tc.want == "" && err != nil {
			t.Errorf("PuppetDB %q: %v", tc.url, err)
		}
		if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("PuppetDB %q: %v, want an error containing %q", tc.url, err, tc.want)
		}
	}
}
