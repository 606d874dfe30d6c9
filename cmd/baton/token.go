package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/local"
	"github.com/baton-run/baton/shared/store/dynamo"
)

// cmdTokenCreate creates an API token directly in an AWS deployment's DynamoDB table — the way
// to get the first admin token there, with the operator's own AWS credentials.
func cmdTokenCreate(args []string) error {
	fs := newFlagSet("token create")
	table := fs.String("table", os.Getenv("BATON_TABLE"), "the deployment's table (stack output TableName; env BATON_TABLE)")
	login := fs.String("login", "admin", "who the token stands for")
	label := fs.String("label", "created by baton token create", "a label")
	ttl := fs.Duration("lifetime", local.DefaultAdminTokenLifetime, "how long the token is valid; tokens issued with it expire no later (0: never expires)")
	out := fs.String("out", "", "file to write the token to (mode 0600)")
	admin := fs.Bool("admin", true, "give the login the admin role (every permission)")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if *table == "" || *out == "" {
		return usageError("usage: baton token create --table T --out FILE [--login L] [--lifetime D]")
	}
	ctx := context.Background()
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("aws config: %w", err)
	}
	st, err := dynamo.New(dynamodb.NewFromConfig(awsCfg), dynamo.Config{Table: *table})
	if err != nil {
		return err
	}
	svc := auth.New(st, time.Now)
	if *admin {
		if err := svc.EnsureAdmin(ctx, *login); err != nil {
			return err
		}
	}
	token, err := svc.IssueToken(ctx, *login, *label, *ttl)
	if err != nil {
		return err
	}
	if err := writeTokenFile(*out, token); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Token for %s written to %s; use it with --token-file %s (or BATON_TOKEN_FILE).\n", *login, *out, *out)
	return nil
}

// cmdTokenRotateAdmin replaces the admin token of a baton serve data directory and revokes the
// old one, on the server's machine (the database is opened directly; the server may run).
func cmdTokenRotateAdmin(args []string) error {
	fs := newFlagSet("token rotate-admin")
	data := fs.String("data", defaultDataDir(), "baton serve's data directory (env BATON_DATA)")
	lifetime := fs.Duration("lifetime", local.DefaultAdminTokenLifetime, "how long the new admin token is valid (at least 1h)")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	path, err := local.RotateAdminToken(context.Background(), *data, *lifetime)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "New admin token written to %s (valid %s); the old one is revoked.\n", path, *lifetime)
	return nil
}
