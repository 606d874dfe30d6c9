#!/usr/bin/env bash
# make test-console: the web console in a real browser. Builds the binaries, starts `baton serve`
# (TLS, its self-signed certificate) on a temporary directory with four real agents, creates a
# restricted user and its token through the CLI, and runs the Playwright tests in
# shared/console/e2e against it with Debian's chromium (installed here when missing).
# Screenshots of the main pages go to each test's directory under shared/console/e2e/test-results/
# (not tracked); BATON_UPDATE_SCREENSHOTS=1 writes them into docs/console/ instead. A skipped
# test fails the run: the report must list none.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ ! -x /usr/bin/chromium ]; then
	echo "==> installing Debian's chromium"
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
command -v node >/dev/null || { echo "test-console needs Node.js 20+ (the Playwright test runner)"; exit 1; }

echo "==> build"
make --no-print-directory build >/dev/null
BIN=$ROOT/bin

WORK=$(mktemp -d /tmp/baton-console.XXXXXX)
export XDG_CONFIG_HOME=$WORK/config
unset BATON_SERVER BATON_TOKEN_FILE
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "==> baton serve (data in $WORK/data)"
"$BIN/baton" serve --listen 127.0.0.1:0 --data "$WORK/data" --modules examples/modules --connect-timeout 1s --log-level warn 2>"$WORK/server.log" &
pids+=($!)
state=$XDG_CONFIG_HOME/baton/local.json
for _ in $(seq 1 300); do
	[ -s "$state" ] && break
	sleep 0.1
done
[ -s "$state" ] || { echo "server did not start:"; cat "$WORK/server.log"; exit 1; }
URL=$(node -e 'const s=require(process.argv[1]); process.stdout.write(new URL(s.url).origin)' "$state")
ADMIN_TOKEN_FILE=$(node -e 'process.stdout.write(require(process.argv[1]).token_file)' "$state")

nodes=(web1 web2 web3 db1)
for n in "${nodes[@]}"; do
	"$BIN/baton" node add "$n" --out "$WORK/$n.cred" >/dev/null 2>&1
	"$BIN/baton-agent" --credential "$WORK/$n.cred" --cache-dir "$WORK/$n/cache" --spool-dir "$WORK/$n/spool" \
		--log-level warn 2>"$WORK/$n.log" &
	pids+=($!)
done
for _ in $(seq 1 300); do
	connected=$("$BIN/baton" node list --format json | grep -c '"connected": true' || true)
	[ "$connected" = "${#nodes[@]}" ] && break
	sleep 0.1
done
[ "$connected" = "${#nodes[@]}" ] || { echo "agents did not connect:"; "$BIN/baton" node list; tail -n 20 "$WORK"/*.log; exit 1; }
echo "==> agents connected: ${nodes[*]}"

# A restricted user: may view jobs and run demo::hello on the webs group, nothing else.
"$BIN/baton" group add webs --nodes web1,web2,web3 --description "Web servers" >/dev/null
"$BIN/baton" role add hello-runner --permission jobs:view --permission 'tasks:run=demo::hello@group:webs' >/dev/null
"$BIN/baton" user set alice --roles hello-runner >/dev/null
"$BIN/baton" token issue --login alice --lifetime 2h --label console-e2e --out "$WORK/alice.token" >/dev/null
echo "==> restricted user alice (jobs:view, tasks:run=demo::hello@group:webs)"

cd shared/console/e2e
if [ ! -d node_modules/@playwright/test ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	npm ci --no-audit --no-fund >/dev/null
fi
shots=
[ "${BATON_UPDATE_SCREENSHOTS:-}" = 1 ] && shots=$ROOT/docs/console
echo "==> playwright test against $URL"
BATON_URL=$URL BATON_ADMIN_TOKEN_FILE=$ADMIN_TOKEN_FILE BATON_ALICE_TOKEN_FILE=$WORK/alice.token \
	BATON_SCREENSHOTS=$shots BATON_REPORT=$WORK/report.json npx --no-install playwright test "$@" || {
	echo "---- server log"; tail -n 40 "$WORK/server.log"
	for n in "${nodes[@]}"; do echo "---- agent $n"; tail -n 10 "$WORK/$n.log"; done
	# The failures last, without colour codes, so that the tail of a CI log shows them.
	echo "---- failures"
	node -e '
		const strip = (s) => String(s || "").replace(/\u001b\[[0-9;]*m/g, "");
		const walk = (suite, out) => { for (const s of suite.suites || []) walk(s, out);
			for (const sp of suite.specs || []) for (const t of sp.tests || []) for (const r of t.results || [])
				if (r.status !== "passed" && r.status !== "skipped") out.push(`${sp.title} (${sp.file}:${sp.line}): ${r.status}\n` +
					(r.errors || []).map((e) => strip(e.message).split("\n").slice(0, 25).join("\n")).join("\n")); return out; };
		const rep = require(process.argv[1]); for (const f of walk(rep, [])) console.log(f + "\n");' "$WORK/report.json" || true
	exit 1; }
# Every test ran: a skipped one (test.skip, test.fixme, a skip annotation) is a failure here.
node -e '
	const walk = (suite, out) => { for (const s of suite.suites || []) walk(s, out);
		for (const sp of suite.specs || []) for (const t of sp.tests || [])
			if (t.status === "skipped" || (t.results || []).some((r) => r.status === "skipped")) out.push(`${sp.title} (${sp.file}:${sp.line})`);
		return out; };
	const rep = require(process.argv[1]);
	const skipped = walk(rep, []);
	if (skipped.length || (rep.stats && rep.stats.skipped)) {
		console.log(`---- ${Math.max(skipped.length, rep.stats.skipped || 0)} skipped test(s); every test must run:\n` + skipped.join("\n"));
		process.exit(1);
	}
	console.log(`==> ${rep.stats.expected} tests passed, none skipped`);' "$WORK/report.json"
