# PuppetDB: jobs targeted by real PQL through a real PuppetDB (scripts/test-puppetdb.sh).
.PHONY: test-puppetdb

test-puppetdb: ## Install and start Debian's PuppetDB with PostgreSQL on loopback, fill it through its command API, and run PQL-targeted jobs on real agents through baton serve --puppetdb (root)
	bash scripts/test-puppetdb.sh
