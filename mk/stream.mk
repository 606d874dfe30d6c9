# Live task output (issue 17): the output message, the agent's streamer, storage on SQLite and
# DynamoDB, the orchestrator's read path, the HTTP endpoint and its server-sent events, the CLI
# (baton task run --stream, baton job output --follow) with the real binaries, and the AWS
# stand-in with the cost streaming adds. BATON_TEST_LONG=1 also runs demo::ticker's full 35 s.

.PHONY: test-stream test-stream-long

test-stream: ## Live task output: protocol, agent, stores, orchestrator, API (SSE), CLI end to end, AWS stand-in (prints the cost per node-run)
	$(GO) test -race -count=1 -timeout 15m ./shared/protocol/
	$(GO) test -race -count=1 -timeout 15m -run 'TestTaskOutputStreams|TestStreamer|TestFit' ./agent/
	$(GO) test -race -count=1 -timeout 15m -run 'TestConformance/Output|TestOutputItems|TestReleasedSchemaUnchanged|TestMigrat' ./shared/store/sqlite/ ./shared/store/dynamo/
	$(GO) test -race -count=1 -timeout 15m -run 'TestStreamRequested|TestOutput|TestWaitOutput' ./shared/orchestrator/
	$(GO) test -race -count=1 -timeout 15m -run 'TestOutput|TestTaskCommandStreamField' ./shared/httpapi/
	$(GO) test -race -count=1 -timeout 15m -run 'TestStreamEndToEnd|TestLineStreamer' ./cmd/baton/
	$(GO) test -count=1 -timeout 15m -run 'TestAWSStreamedOutput' -v ./shared/awsapp/

test-stream-long: ## Live output of a task that prints for 35 s (demo::ticker) through baton task run --stream and baton job output --follow at once (~2 min)
	BATON_TEST_LONG=1 $(GO) test -race -count=1 -timeout 15m -run 'TestStreamEndToEnd' -v ./cmd/baton/
