# Forge-like task modules (examples/modules: ruby_task_helper, python_task_helper, forgelike)
# through the real agent on Debian's puppet-agent package: interpreters, detected features,
# implementation selection, private tasks, noop. BATON_REQUIRE_PUPPET=1 makes a missing puppet
# or ruby a failure instead of a skip.
FORGE_TESTS_AGENT = TestDetectPlatform|TestLooksLikeVersion|TestParseInterpreters|TestNormalizeAndMergeInterpreters|TestTaskCommand|TestConfigInterpretersAndFeatures|TestAIOShebangRubyTaskRunsThroughInterpreter|TestFactsReportFeatures|TestTaskRunNoMatchingImplementation|TestInterpreterMapJSON|TestInterpreterWithArguments

.PHONY: test-forge

test-forge: ## Forge-like modules through baton serve and baton-agent on Debian's puppet-agent (needs puppet, ruby, python3; BATON_REQUIRE_PUPPET=1 makes their absence fail)
	BATON_REQUIRE_PUPPET=$${BATON_REQUIRE_PUPPET:-1} $(GO) test -race -count=1 -timeout 15m -run '$(FORGE_TESTS_AGENT)' ./agent/
	BATON_REQUIRE_PUPPET=$${BATON_REQUIRE_PUPPET:-1} $(GO) test -race -count=1 -timeout 15m -run 'TestPlatformSettings|TestRunRefusesBadSettings' ./cmd/baton-agent/
	$(GO) test -race -count=1 -timeout 15m ./shared/tasks/ ./shared/catalog/
	$(GO) test -race -count=1 -timeout 15m -run 'TestPrivateTasksAreNotListed|TestInventoryShowsReportedFeatures|TestInventoryShapes|TestTaskShapes' ./shared/httpapi/
	BATON_REQUIRE_PUPPET=$${BATON_REQUIRE_PUPPET:-1} $(GO) test -race -count=1 -timeout 15m -run 'TestForgeModulesThroughRealAgents' ./cmd/baton/
