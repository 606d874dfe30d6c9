# Packages of baton and baton-agent (.deb, .rpm) built with nfpm, and the Puppet module that
# deploys the agent (puppet/modules/baton). nfpm runs through `go run` at a pinned version, so
# the root module does not depend on it.
NFPM_VERSION ?= v2.48.0
NFPM ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
PKG_DIR ?= dist/packages
# The newest v* tag (commits since it as +N.gSHA), else 0.0.<commits>.
PKG_VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo "$$v" | sed -E 's/^v//; s/-([0-9]+)-g([0-9a-f]+)$$/+\1.g\2/' || echo "0.0.$$(git rev-list --count HEAD 2>/dev/null || echo 0)")
PKG_RELEASE ?= 1
PKG_ARCH ?= $(shell $(GO) env GOARCH)
PKG_ENV = VERSION='$(PKG_VERSION)' RELEASE='$(PKG_RELEASE)' ARCH='$(PKG_ARCH)' BIN='$(BIN)' \
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s)

.PHONY: packages test-packages test-puppet-module

packages: build ## Build .deb and .rpm packages of baton-agent and baton into dist/packages (nfpm; PKG_VERSION=x.y.z to set the version)
	@mkdir -p $(PKG_DIR) && rm -f $(PKG_DIR)/baton_*.deb $(PKG_DIR)/baton-agent_*.deb $(PKG_DIR)/baton-[0-9]*.rpm $(PKG_DIR)/baton-agent-[0-9]*.rpm
	@set -e; for p in baton-agent baton; do for f in deb rpm; do \
		$(PKG_ENV) $(NFPM) package -f cmd/$$p/package/nfpm.yaml -p $$f -t $(PKG_DIR)/ | grep -v '^using'; \
	done; done

test-packages: packages ## Install the built .deb (root): exact files and modes, systemd-analyze verify, the .rpm's list, its agent connects to baton serve, clean removal
	PKG_DIR=$(PKG_DIR) PKG_VERSION='$(PKG_VERSION)' PKG_RELEASE='$(PKG_RELEASE)' PKG_ARCH='$(PKG_ARCH)' bash scripts/test-packages.sh

test-puppet-module: packages ## puppet apply of baton::agent (root): installs the .deb, config and credential 0600, idempotent second run, the agent it configures connects
	PKG_DIR=$(PKG_DIR) PKG_VERSION='$(PKG_VERSION)' PKG_RELEASE='$(PKG_RELEASE)' PKG_ARCH='$(PKG_ARCH)' bash scripts/test-puppet-module.sh
