// Command infra synthesizes Baton's CDK app: one stack (stack.NewBatonStack) whose Lambda
// code is the bootstrap zips in ../dist (make lambdas). It needs no AWS credentials and no
// network; the cloud assembly goes to $CDK_OUTDIR (make synth sets cdk.out). Context:
// -c baton:retain=true|false, -c baton:target=aws|localstack, -c baton:assetDir=DIR,
// -c baton:stackName=NAME, -c baton:reservedConcurrency=true|false, and for custom domains
// -c baton:agentsDomain=HOST -c baton:apiDomain=HOST -c baton:certificateArn=ARN.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/baton-run/baton/infra/stack"
)

func main() {
	// The App reads CDK_OUTDIR and the CLI's context (CDK_CONTEXT_JSON) from the environment.
	err := synth(awscdk.NewApp(nil))
	jsii.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "infra:", err)
		os.Exit(1)
	}
}

// synth declares the stack in app, as its context says, and writes the cloud assembly.
func synth(app awscdk.App) error {
	name, props, err := stack.PropsFromContext(app.Node(), filepath.Join("..", "dist"))
	if err != nil {
		return err
	}
	if props.AssetDir, err = filepath.Abs(props.AssetDir); err != nil {
		return fmt.Errorf("asset directory: %w", err)
	}
	if _, err := stack.NewBatonStack(app, name, props); err != nil {
		return err
	}
	app.Synth(nil)
	return nil
}
