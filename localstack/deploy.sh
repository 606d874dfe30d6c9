#!/usr/bin/env bash
# Deploys Baton's CDK stack to LocalStack: checks the prerequisites, starts LocalStack with
# docker compose, builds the Lambda zips (make lambdas), and runs `cdklocal bootstrap` and
# `cdklocal deploy` from infra's pinned npm packages. The stack outputs go to
# localstack/outputs.json (or $BATON_OUTPUTS_FILE), which smoke.sh reads.
# Needs: Docker (running), LOCALSTACK_AUTH_TOKEN (a plan with API Gateway v2), Go, npm,
# curl (7.75 or later), make and zip.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
outputs=${BATON_OUTPUTS_FILE:-$here/outputs.json}
edge=${LOCALSTACK_EDGE:-http://localhost:4566}
region=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}

die() {
	printf 'deploy.sh: %s\n' "$*" >&2
	exit 1
}
need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2"
}

# --- prerequisites, all checked before anything starts ---------------------------------
need docker "install Docker (Docker Engine or Docker Desktop)"
docker info >/dev/null 2>&1 ||
	die "Docker is installed but not running, or this user may not use it: start the Docker daemon (or Docker Desktop) and try again"
[ -n "${LOCALSTACK_AUTH_TOKEN:-}" ] ||
	die "LOCALSTACK_AUTH_TOKEN is not set: export your LocalStack auth token (LocalStack web app, Auth Tokens page); its plan must include API Gateway v2"
if docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
	compose=(docker-compose)
else
	die "Docker Compose is not installed: install the docker compose plugin"
fi
need go "install Go (see go.mod for the version)"
need npm "install Node.js 18 or later with npm"
need curl "install curl"
need make "install make"
need zip "install zip (make lambdas packs the functions with it)"
curl --help all 2>/dev/null | grep -q -- '--aws-sigv4' ||
	die "curl is too old to sign AWS requests (--aws-sigv4 needs curl 7.75 or later)"
# The functions are linux/arm64 binaries: an x86-64 Linux host runs them only with arm64
# emulation registered (Docker Desktop has it built in).
if [ "$(uname -s)" = Linux ] && [ "$(uname -m)" != aarch64 ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
	die "this $(uname -m) host cannot run the arm64 Lambda functions: register arm64 emulation first, e.g. docker run --privileged --rm tonistiigi/binfmt --install arm64"
fi

# --- LocalStack ------------------------------------------------------------------------
echo "==> starting LocalStack ($here/docker-compose.yml)"
"${compose[@]}" -f "$here/docker-compose.yml" up -d
deadline=$((SECONDS + 180))
until curl -fsS "$edge/_localstack/health" 2>/dev/null | grep -q '"lambda"'; do
	[ "$SECONDS" -lt "$deadline" ] ||
		die "LocalStack is not healthy at $edge after 180 s; see: ${compose[*]} -f $here/docker-compose.yml logs"
	sleep 2
done
# WebSocket and HTTP APIs (API Gateway v2) are in LocalStack's paid plans only.
status=$(curl -s -o /dev/null -w '%{http_code}' --user test:test --aws-sigv4 "aws:amz:$region:apigateway" "$edge/v2/apis")
[ "$status" = 200 ] ||
	die "LocalStack answers $status to an API Gateway v2 request: the plan of LOCALSTACK_AUTH_TOKEN must include API Gateway v2 (see localstack/README.md)"
echo "LocalStack is up at $edge"

# --- build and deploy ------------------------------------------------------------------
echo "==> make lambdas"
make -C "$root" lambdas

echo "==> npm ci (infra/package.json pins aws-cdk and aws-cdk-local)"
cd "$root/infra"
npm ci --no-audit --no-fund

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION="$region" AWS_DEFAULT_REGION="$region"
export CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true
context=(-c baton:target=localstack -c baton:retain=false)

echo "==> cdklocal bootstrap"
npx --no-install cdklocal bootstrap "${context[@]}" --no-notices

echo "==> cdklocal deploy (outputs to $outputs)"
npx --no-install cdklocal deploy "${context[@]}" --no-notices --require-approval never --outputs-file "$outputs"

echo
echo "Baton is deployed to LocalStack; its outputs are in $outputs."
echo "Next: localstack/smoke.sh"
