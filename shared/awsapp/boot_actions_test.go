package awsapp_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/sivchari/kumo"

	"github.com/baton-run/baton/shared/awsapp"
)

// TestAWSBootActions starts each function whose main calls awsapp.Boot the way its main does,
// against emulators and with the environment the stack gives it, and records what a cold
// start asks of AWS (the seal key from Secrets Manager) as that function's actions.
func TestAWSBootActions(t *testing.T) {
	srv := kumo.NewServer()
	t.Cleanup(srv.Close)
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")
	sm := secretsmanager.New(secretsmanager.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(srv.URL)})
	key := make([]byte, 32)
	rand.Read(key)
	// A name of its own per run: the emulator's state outlives its server within the test
	// process, so a second run (-count, -cpu) found "baton-seal-key" already there.
	name := "baton-seal-key-" + hex.EncodeToString(key[:4])
	secret, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(hex.EncodeToString(key))})
	if err != nil {
		t.Fatal(err)
	}
	recorder.Name(aws.ToString(secret.ARN), "seal-key")
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": srv.URL, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
		"BATON_TABLE": e2eTable, "BATON_BUCKET": e2eBucket, "BATON_WS_ENDPOINT": "https://abc.execute-api.us-east-1.amazonaws.com/pcp",
		"BATON_SEAL_KEY_SECRET": aws.ToString(secret.ARN), "BATON_SEAL_KEY": "",
	} {
		t.Setenv(k, v)
	}
	mains, err := filepath.Glob(filepath.Join("..", "..", "functions", "*", "main.go"))
	if err != nil || len(mains) == 0 {
		t.Fatalf("no functions/*/main.go: %v", err)
	}
	booted := 0
	for _, main := range mains {
		fn := filepath.Base(filepath.Dir(main))
		src, err := os.ReadFile(main)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(src), "awsapp.Boot(") {
			continue
		}
		t.Run(fn, func(t *testing.T) {
			before := recorder.Actions()[fn]["secretsmanager:GetSecretValue"]
			if _, err := awsapp.Boot(awsapp.WithFunction(t.Context(), fn), nil, config.WithAPIOptions(recorder.APIOptions())); err != nil {
				t.Fatal(err)
			}
			if before == nil && recorder.Actions()[fn]["secretsmanager:GetSecretValue"] == nil {
				t.Error("Boot did not read the seal-key secret")
			}
		})
		booted++
	}
	if booted == 0 {
		t.Error("no function's main calls awsapp.Boot")
	}
}
