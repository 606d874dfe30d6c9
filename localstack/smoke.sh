#!/usr/bin/env bash
# Runs one task through the Baton that deploy.sh deployed to LocalStack: publishes
# examples/modules to the stack's bucket, gets an admin API token, enrols a node, starts a
# baton-agent on the stack's WebSocket URL, runs demo::hello on it and prints the result,
# then stops the agent and removes its files.
# The admin token is $BATON_TOKEN_FILE, or $BATON_TOKEN, or else a new one that
# `baton token create --table` writes straight into the stack's table.
# Needs: a deployed stack (localstack/outputs.json or $BATON_OUTPUTS_FILE), Go, make, jq.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
outputs=${BATON_OUTPUTS_FILE:-$here/outputs.json}
edge=${LOCALSTACK_EDGE:-http://localhost:4566}

die() {
	printf 'smoke.sh: %s\n' "$*" >&2
	exit 1
}
need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2"
}
need go "install Go"
need make "install make"
need jq "install jq"
[ -s "$outputs" ] || die "no stack outputs at $outputs: run localstack/deploy.sh first"

# output NAME prints the stack output NAME (the CDK outputs file maps stack -> outputs).
output() {
	jq -er --arg name "$1" 'to_entries[0].value[$name] // error("missing")' "$outputs" 2>/dev/null ||
		die "output $1 is missing from $outputs: redeploy with localstack/deploy.sh"
}
http_url=$(output HttpApiUrl)
ws_url=$(output WebSocketUrl)
table=$(output TableName)
bucket=$(output BucketName)

# The baton CLI uses the AWS SDK's default configuration: point it at LocalStack.
export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-$edge}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
unset BATON_SERVER

work=$(mktemp -d)
agent_pid=
cleanup() {
	status=$?
	if [ -n "$agent_pid" ]; then
		kill "$agent_pid" 2>/dev/null || true
		wait "$agent_pid" 2>/dev/null || true
	fi
	if [ "$status" -ne 0 ] && [ -s "$work/agent.log" ]; then
		echo "--- last lines of the agent's log:" >&2
		tail -n 40 "$work/agent.log" >&2
	fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "==> make build"
make -C "$root" build
baton=$root/bin/baton
agent=$root/bin/baton-agent

echo "==> baton task publish --bucket $bucket --environment production examples/modules"
"$baton" task publish --bucket "$bucket" --environment production --path-style "$root/examples/modules"

if [ -n "${BATON_TOKEN_FILE:-}" ]; then
	token_file=$BATON_TOKEN_FILE
elif [ -n "${BATON_TOKEN:-}" ]; then
	token_file=$work/admin.token
	printf '%s\n' "$BATON_TOKEN" >"$token_file"
else
	echo "==> baton token create --table $table (a one-hour admin token)"
	token_file=$work/admin.token
	"$baton" token create --table "$table" --login admin --lifetime 1h --out "$token_file"
fi
client=(--server "$http_url" --token-file "$token_file")

node=smoke-$(date +%s)
echo "==> baton node add $node --server $http_url"
"$baton" node add "$node" "${client[@]}" --out "$work/node.cred"

# LocalStack may hand out a plain ws:// URL on localhost.localstack.cloud, a name (resolving to
# 127.0.0.1) that the agent does not take for loopback without resolving it: allow plain ws://
# explicitly then. A wss:// URL keeps TLS checks as they are.
agent_args=()
case $ws_url in
ws://*) agent_args+=(--insecure) ;;
esac
echo "==> baton-agent --server $ws_url ${agent_args[*]}"
"$agent" --credential "$work/node.cred" --server "$ws_url" "${agent_args[@]}" --cache-dir "$work/cache" \
	--spool-dir "$work/spool" --log-level info 2>"$work/agent.log" &
agent_pid=$!

deadline=$((SECONDS + 120))
until "$baton" node show "$node" "${client[@]}" 2>/dev/null | jq -e '.connected == true' >/dev/null; do
	kill -0 "$agent_pid" 2>/dev/null || die "baton-agent exited before connecting"
	[ "$SECONDS" -lt "$deadline" ] || die "node $node did not connect within 120 s"
	sleep 2
done
echo "node $node is connected"

echo "==> baton task run demo::hello --nodes $node name=LocalStack"
"$baton" task run demo::hello --nodes "$node" "${client[@]}" name=LocalStack

echo
echo "Smoke test passed: demo::hello ran on $node through API Gateway, Lambda, DynamoDB and S3 in LocalStack."
