.PHONY: test-console

test-console: ## The web console in real Chromium (Playwright; installs Debian's chromium if missing): sign in, run, watch, stop, RBAC, screenshots into docs/console
	bash scripts/test-console.sh
