#!/usr/bin/env bash
# Baton's quick start: a local orchestrator, three agents, one task on all of them.
# Everything lives in .demo/ and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
DEMO=$PWD/.demo
rm -rf "$DEMO"
mkdir -p "$DEMO"
export XDG_CONFIG_HOME=$DEMO/config   # where `baton serve` tells the CLI how to reach it and which TLS certificate to pin
unset BATON_SERVER BATON_TOKEN_FILE

pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "==> baton serve (data in .demo/data, modules from examples/modules)"
"$BIN/baton" serve --listen 127.0.0.1:0 --data "$DEMO/data" --modules examples/modules --log-level warn 2>"$DEMO/server.log" &
pids+=($!)
for _ in $(seq 1 100); do
	[ -s "$XDG_CONFIG_HOME/baton/local.json" ] && break
	sleep 0.1
done
[ -s "$XDG_CONFIG_HOME/baton/local.json" ] || { echo "server did not start:"; cat "$DEMO/server.log"; exit 1; }
cat "$DEMO/server.log"

nodes=(web1 web2 db1)
for n in "${nodes[@]}"; do
	"$BIN/baton" node add "$n" --out "$DEMO/$n.cred" 2>/dev/null
	"$BIN/baton-agent" --credential "$DEMO/$n.cred" --cache-dir "$DEMO/$n/cache" --spool-dir "$DEMO/$n/spool" \
		--log-level warn 2>"$DEMO/$n.log" &
	pids+=($!)
done
echo "==> enrolled and started agents: ${nodes[*]}"
for _ in $(seq 1 100); do
	connected=$("$BIN/baton" node list --format json | grep -c '"connected": true' || true)
	[ "$connected" = "${#nodes[@]}" ] && break
	sleep 0.1
done
"$BIN/baton" node list

echo
echo "==> baton task list"
"$BIN/baton" task list
echo
echo "==> baton task run demo::hello --nodes web1,web2,db1 name=Baton"
"$BIN/baton" task run demo::hello --nodes web1,web2,db1 name=Baton
echo
echo "==> the same job through the PE-compatible API (GET /orchestrator/v1/jobs/1 and /jobs/1/nodes): baton job show 1 --format json"
"$BIN/baton" job show 1 --format json | head -n 30
echo "..."
echo
url=$(sed -n 's/.*"url": *"\(https*:\/\/[^/"]*\).*/\1/p' "$XDG_CONFIG_HOME/baton/local.json")
echo "==> the web console: $url/ (the browser warns once about the self-signed certificate)"
echo "    sign in with the admin token: paste the contents of $DEMO/data/admin.token into the sign-in form"
if [ -t 0 ]; then
	read -r -p "Press Enter to stop the server and agents. " _ || true
fi
echo "Demo done; stopping the server and agents."
