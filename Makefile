# Baton — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin
PKGS := ./...

.PHONY: help build lambdas synth deploy destroy test test-infra iam-actions test-short test-puppetserver lint demo fuzz bench bench-ci chaos capacity clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-18s %s\n", $$1, $$2}'

build: ## Build bin/baton and bin/baton-agent (static: no C library needed)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/baton ./cmd/baton
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/baton-agent ./cmd/baton-agent

lambdas: ## Build a deterministic bootstrap zip per Lambda function into dist/ (linux/arm64)
	bash scripts/lambdas.sh

CDK_ENV := JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=1

synth: lambdas ## Synthesize the CloudFormation template into infra/cdk.out (offline, no AWS credentials)
	cd infra && $(CDK_ENV) CDK_OUTDIR=cdk.out $(GO) run .

deploy: lambdas ## Deploy the stack with the pinned aws-cdk CLI (run 'cd infra && npx cdk bootstrap' once per account/region)
	cd infra && npm ci --no-audit --no-fund && $(CDK_ENV) npx --no-install cdk deploy --outputs-file cdk-outputs.json $(CDK_ARGS)

destroy: ## Delete the stack (the table and bucket are retained unless deployed with CDK_ARGS='-c baton:retain=false')
	cd infra && npm ci --no-audit --no-fund && $(CDK_ENV) npx --no-install cdk destroy $(CDK_ARGS)

test: lint ## Run every test (with -race), the CDK app's tests, the fuzz targets briefly, and the binaries end to end
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	$(MAKE) --no-print-directory test-infra
	$(MAKE) --no-print-directory fuzz FUZZTIME=30000x

test-infra: ## The CDK app's assertion tests and the LocalStack harness checks (slow once, cached after)
	cd infra && $(CDK_ENV) $(GO) vet ./... && $(CDK_ENV) $(GO) test -count=1 ./...

iam-actions: ## Rerun the AWS end-to-end tests recording each function's AWS actions into infra/stack/testdata/function-actions.json, then check them against the stack's policies
	BATON_WRITE_IAM_ACTIONS=1 $(GO) test -race -count=1 -timeout 10m ./shared/awsapp
	cd infra && $(CDK_ENV) $(GO) test -count=1 -run 'Polic|Permissions|LeastPrivilege' ./stack

capacity: ## The AWS capacity model: 1,000 and 10,000 simulated agents through the AWS stand-in, DynamoDB units by partition key against its per-key limits at 1,000 node-runs/s
	BATON_CAPACITY_SIZES=$${BATON_CAPACITY_SIZES:-1000,10000} $(GO) test -count=1 -timeout 60m -run TestCapacity -v ./shared/awsapp

test-puppetserver: ## Install and start Debian's puppetserver on loopback and run puppet agent jobs through Baton (root)
	bash scripts/test-puppetserver.sh

test-short: ## Unit tests only, no race detector (quick feedback)
	$(GO) test -short $(PKGS)

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Counts of executions (Nx), not durations: with a duration, Go 1.26's fuzz coordinator can
# report "context deadline exceeded" at the deadline on a busy machine though nothing failed
# (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
FUZZTIME ?= 200000x
fuzz: ## Run each fuzz target for FUZZTIME executions (default 200000x)
	@set -e; for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs grep -H '^func Fuzz' | sed -E 's#^\./(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*).*#\1:\2#' | sort -u); do \
		pkg=$${spec%%:*}; fn=$${spec##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) >/tmp/baton-fuzz.log 2>&1 || { cat /tmp/baton-fuzz.log; exit 1; }; \
	done

bench: build ## Measure fan-out, round trips, submitters, enrolment, reconnects, RSS and CPU at 100, 1,000 and 10,000 simulated agents and 200 and 500 real ones; write BENCHMARKS.md
	$(GO) run ./cmd/baton-bench --bin $(BIN) $(BENCH_ARGS)

bench-ci: build ## The benchmark harness at CI size (200 simulated agents, 20 real ones); results to standard output
	$(GO) run ./cmd/baton-bench --bin $(BIN) --quick --out ""

chaos: build ## The chaos suite (20 agents, 1,000 node-runs, every fault; root for the full-disk ones): 0 lost, run twice, stuck, misreported; CHAOS_ARGS for more
	$(GO) run ./cmd/baton-chaos --bin $(BIN) $(CHAOS_ARGS)

demo: build ## Start baton serve and three agents, run a task on all three, print the results, stop everything
	@bash scripts/demo.sh

# Targets of separate areas (packages, PuppetDB, console) live in mk/*.mk.
include $(wildcard mk/*.mk)

clean: ## Remove build output
	rm -rf $(BIN) .demo
