.PHONY: test-console

test-console: ## The web console in real Chromium (Playwright; installs Debian's chromium if missing): sign in, run, watch, a 35 s live output, stop, RBAC, a 2,000-node job; no test may skip; screenshots into test-results (BATON_UPDATE_SCREENSHOTS=1: docs/console)
	bash scripts/test-console.sh
