#!/usr/bin/env bash
# make test-puppetdb: target Baton jobs with real PQL through a real PuppetDB.
#
# Installs Debian's puppetdb and postgresql (and jq) when missing, creates the database,
# configures PuppetDB for plain HTTP on 127.0.0.1:8080 and starts it directly (no systemd;
# reference: /work/shared/reference/puppetdb.md). Facts and catalogs of six certnames go in
# through PuppetDB's command API (replace facts v5, replace catalog v9); web1's facts are
# this machine's real `facter --json` output when facter is installed. Then it builds baton
# and baton-agent, starts `baton serve --puppetdb http://127.0.0.1:8080` with four real
# agents (web1, web2, web3, db1; offline1 enrolled without an agent) and checks:
#   - jobs targeted by PQL the built-in subset cannot express (a subquery, the resources
#     entity, a negated subquery) run on exactly the nodes PuppetDB selects, among those
#     enrolled (ghost is in PuppetDB only), whatever the agents' own facts say;
#   - a query PuppetDB rejects, and one whose results name no nodes, are answered 400
#     puppetlabs.orchestrator/query-error with PuppetDB's message;
#   - GET /inventory/offline1 shows PuppetDB's facts, marked facts_source "puppetdb".
#
# Needs root: it installs packages, rewrites PuppetDB's database.ini and jetty.ini (restored
# on exit), and runs PuppetDB as user puppetdb. It keeps on purpose: the packages, the
# puppetdb role and database in PostgreSQL (with the six nodes' data; each run replaces it),
# PuppetDB's state and logs (/var/lib/puppetdb, /var/log/puppetdb). PostgreSQL is stopped
# again if this script started it; nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH" DEBIAN_FRONTEND=noninteractive
umask 022

readonly PDB_PORT=8080
# BATON_TEST_PUPPETDB_URL: a PuppetDB already running (plain HTTP on loopback) to use instead
# of installing and starting one; the six test nodes are written into it.
readonly EXISTING=${BATON_TEST_PUPPETDB_URL:-}
readonly PDB=${EXISTING:-http://127.0.0.1:$PDB_PORT}
readonly START_TIMEOUT=420 # seconds for PuppetDB to report running (~25 s on two idle cores)
readonly STOP_TIMEOUT=60   # seconds for a daemon to exit after SIGTERM
readonly CONF=/etc/puppetdb/conf.d

LOG_PREFIX=test-puppetdb
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, rewrites $CONF, runs PuppetDB as user puppetdb)"

work=$(mktemp -d /tmp/baton-puppetdb.XXXXXX)
pdb_pid=""      # java, started by us through setpriv (which execs)
serve_pid=""    # baton serve
agent_pids=()   # baton-agent processes
pg_started=""   # "VERSION NAME" of the PostgreSQL cluster we started, if any
run_dir_made="" # /run/puppetdb, when we created it
backed_up=()    # files rewritten, in order; their originals are $work/backup.<index>
timings=()

# backup PATH: remember PATH's content (or that it did not exist) for restore.
backup() {
	local i
	for i in "${!backed_up[@]}"; do
		[ "${backed_up[$i]}" != "$1" ] || return 0
	done
	i=${#backed_up[@]}
	if [ -e "$1" ]; then
		cp -a "$1" "$work/backup.$i"
	fi
	backed_up+=("$1")
}

# restore: put back every file backup saw, and remove the ones that did not exist.
restore() {
	local i rc=0
	for ((i = ${#backed_up[@]} - 1; i >= 0; i--)); do
		if [ -e "$work/backup.$i" ]; then
			cp -a "$work/backup.$i" "${backed_up[$i]}" || rc=1
		else
			rm -f "${backed_up[$i]}" || rc=1
		fi
	done
	backed_up=()
	return "$rc"
}

stop_all() {
	local p t0
	for p in "${agent_pids[@]}"; do stop "$p" baton-agent; done
	agent_pids=()
	if [ -n "$serve_pid" ]; then
		stop "$serve_pid" "baton serve"
		serve_pid=""
	fi
	if [ -n "$pdb_pid" ]; then
		t0=$EPOCHREALTIME
		stop "$pdb_pid" PuppetDB
		pdb_pid=""
		log "PuppetDB stopped in $(since "$t0") s"
	fi
	if [ -n "$pg_started" ]; then
		# shellcheck disable=SC2086 # "VERSION NAME"
		pg_ctlcluster $pg_started stop || log "could not stop PostgreSQL $pg_started"
		pg_started=""
	fi
	if [ -n "$run_dir_made" ]; then
		rm -f /run/puppetdb/restart
		rmdir /run/puppetdb 2>/dev/null || log "left non-empty /run/puppetdb"
		run_dir_made=""
	fi
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_all
	restore || {
		log "error: could not restore every file (backups kept in $work)"
		exit 1
	}
	if [ "$rc" -ne 0 ]; then
		for f in "$work/serve.log" "$work/pdb-console.log"; do
			if [ -s "$f" ]; then
				log "last lines of $f:"
				tail -n 30 "$f" >&2 || true
			fi
		done
		if [ -f /var/log/puppetdb/puppetdb.log ]; then
			log "last lines of /var/log/puppetdb/puppetdb.log:"
			tail -n 30 /var/log/puppetdb/puppetdb.log >&2 || true
		fi
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- install -------------------------------------------------------------------------------
t0=$EPOCHREALTIME
need=()
if [ -z "$EXISTING" ]; then
	[ -e /usr/share/puppetdb/puppetdb.jar ] || need+=(puppetdb)
	command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
fi
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	# apt-get update only when the package lists do not know a package, or are stale. The
	# puppetdb package's database setup fails while PostgreSQL is stopped; apt still succeeds
	# and the database is made below.
	if ! apt-cache show "${need[@]}" >/dev/null 2>&1; then
		apt-get update -qq
	fi
	if ! apt-get install -y -qq "${need[@]}" >"$work/apt.log" 2>&1; then
		apt-get update -qq
		apt-get install -y -qq "${need[@]}" >"$work/apt.log" 2>&1 || {
			tail -n 30 "$work/apt.log" >&2
			die "apt-get install ${need[*]} failed"
		}
	fi
fi
timings+=("install $(since "$t0") s")

# start_puppetdb: PostgreSQL, the database, PuppetDB's configuration and PuppetDB. (Its body
# is not indented, for the here-documents.)
start_puppetdb() {
# --- PostgreSQL and the database ------------------------------------------------------------
t0=$EPOCHREALTIME
read -r pg_version pg_name pg_port pg_status _ < <(pg_lsclusters -h | head -n 1) ||
	die "no PostgreSQL cluster (pg_lsclusters shows none)"
if [ "$pg_status" != online ]; then
	log "starting PostgreSQL $pg_version/$pg_name"
	pg_ctlcluster "$pg_version" "$pg_name" start
	pg_started="$pg_version $pg_name"
fi
# A password of this run's own; the role and database are kept between runs.
pg_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
runuser -u postgres -- psql -p "$pg_port" -v ON_ERROR_STOP=1 -q -v pw="$pg_password" >/dev/null <<'SQL'
SELECT 'CREATE ROLE puppetdb LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'puppetdb')\gexec
ALTER ROLE puppetdb PASSWORD :'pw';
SELECT 'CREATE DATABASE puppetdb OWNER puppetdb' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'puppetdb')\gexec
\c puppetdb
CREATE EXTENSION IF NOT EXISTS pg_trgm;
SQL
timings+=("postgresql $(since "$t0") s")

# --- configure and start PuppetDB --------------------------------------------------------------
t0=$EPOCHREALTIME
if ss -Hltn "sport = :$PDB_PORT" | grep -q .; then
	die "something already listens on port $PDB_PORT; stop it first"
fi
for f in "$CONF/database.ini" "$CONF/jetty.ini"; do
	[ -e "$f" ] || die "$f is missing: is the puppetdb package installed?"
	backup "$f"
done
# Written in place: the files keep the package's owner and mode (readable by puppetdb only).
cat >"$CONF/database.ini" <<EOF
# Written by baton scripts/test-puppetdb.sh (restored on exit).
[database]
subname = //127.0.0.1:$pg_port/puppetdb
username = puppetdb
password = $pg_password
EOF
cat >"$CONF/jetty.ini" <<EOF
# Written by baton scripts/test-puppetdb.sh (restored on exit): plain HTTP on loopback only.
[jetty]
host = 127.0.0.1
port = $PDB_PORT
request-header-max-size = 65536
EOF
if [ ! -d /run/puppetdb ]; then
	install -d -o puppetdb -g puppetdb /run/puppetdb
	run_dir_made=1
fi
log "starting PuppetDB (up to ${START_TIMEOUT}s)"
# Not /etc/init.d/puppetdb: it runs a main class the package's jar lacks. setpriv execs, so
# $! is java's PID.
setpriv --reuid=puppetdb --regid=puppetdb --init-groups /usr/bin/java -Xmx192m \
	-cp /usr/share/puppetdb/puppetdb.jar clojure.main -m puppetlabs.puppetdb.core services \
	--config "$CONF" --bootstrap-config /etc/puppetdb/bootstrap.cfg \
	--restart-file /run/puppetdb/restart </dev/null >"$work/pdb-console.log" 2>&1 &
pdb_pid=$!
deadline=$((SECONDS + START_TIMEOUT))
until curl -sf --max-time 5 "$PDB/status/v1/services/puppetdb-status" 2>/dev/null | grep -q '"state":"running"'; do
	if ! alive "$pdb_pid" || ((SECONDS >= deadline)); then
		die "PuppetDB did not report running on $PDB within $(since "$t0") s"
	fi
	sleep 1
done
timings+=("puppetdb start $(since "$t0") s")
log "PuppetDB running after $(since "$t0") s"
}
if [ -z "$EXISTING" ]; then
	start_puppetdb
else
	log "using the PuppetDB at $PDB"
fi

# --- facts and catalogs through the command API --------------------------------------------------
t0=$EPOCHREALTIME
now=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
# pdb_command NAME VERSION CERTNAME BODY: submit and wait until PuppetDB has stored it.
pdb_command() {
	local out
	out=$(curl -sS --max-time 30 -X POST -H 'Content-Type: application/json' --data-binary @- \
		"$PDB/pdb/cmd/v1?command=$1&version=$2&certname=$3&producer-timestamp=$now&secondsToWaitForCompletion=20" <<<"$4") ||
		die "$1 for $3: PuppetDB did not answer"
	[ "$(jq -r .processed <<<"$out" 2>/dev/null)" = true ] || die "$1 for $3 not processed: $out"
}
# facts CERTNAME VALUES-JSON
facts() {
	pdb_command replace_facts 5 "$1" "$(jq -c --arg c "$1" --arg now "$now" \
		'{certname: $c, environment: "production", producer_timestamp: $now, producer: "baton-test", values: .}' <<<"$2")"
}
# catalog CERTNAME CLASS...: a catalog holding these classes.
catalog() {
	local c=$1
	shift
	pdb_command replace_catalog 9 "$c" "$(jq -cn --arg c "$c" --arg now "$now" --arg uuid "$(cat /proc/sys/kernel/random/uuid)" \
		--arg cuuid "$(cat /proc/sys/kernel/random/uuid)" '$ARGS.positional as $classes |
		{certname: $c, version: ($now | tostring), environment: "production", transaction_uuid: $uuid, catalog_uuid: $cuuid,
		 code_id: null, job_id: null, producer_timestamp: $now, producer: "baton-test", edges: [],
		 resources: [$classes[] | {type: "Class", title: ., exported: false, tags: ["class", ascii_downcase], parameters: {}}]}' \
		--args "$@")"
}
# os_facts FAMILY [KERNEL]
os_facts() { jq -cn --arg f "$1" --arg k "${2:-Linux}" '{os: {family: $f, name: $f}, kernel: $k}'; }
web1_facts=$(os_facts Debian)
if command -v facter >/dev/null 2>&1; then
	# This machine's own facts (facter exits non-zero when one fact fails yet prints the rest).
	real=$(facter --json 2>/dev/null || true)
	if [ "$(jq -r '.os.family // empty' <<<"$real" 2>/dev/null)" = Debian ]; then
		web1_facts=$real
		log "web1's facts are this machine's facter output ($(jq 'length' <<<"$real") facts)"
	fi
fi
facts web1 "$web1_facts"
facts web2 "$(os_facts Debian)"
facts web3 "$(os_facts Debian)"
facts db1 "$(os_facts RedHat)"
facts ghost "$(os_facts Debian)"
facts offline1 "$(os_facts Solaris SunOS)"
catalog web1 Settings Nginx Profile::Web
catalog web2 Settings Nginx
catalog web3 Settings Apache
catalog db1 Settings Nginx Postgresql::Server
catalog ghost Settings Nginx
timings+=("submit $(since "$t0") s")

# --- baton serve with PuppetDB, and its agents ---------------------------------------------------
t0=$EPOCHREALTIME
mkdir -p "$work/bin"
CGO_ENABLED=0 go build -trimpath -o "$work/bin/baton" ./cmd/baton
CGO_ENABLED=0 go build -trimpath -o "$work/bin/baton-agent" ./cmd/baton-agent
timings+=("build $(since "$t0") s")

t0=$EPOCHREALTIME
export XDG_CONFIG_HOME=$work/config # where baton serve tells the CLI how to reach it
unset BATON_SERVER BATON_TOKEN_FILE BATON_PUPPETDB_URL
baton() { "$work/bin/baton" "$@"; }
"$work/bin/baton" serve --listen 127.0.0.1:0 --data "$work/data" --modules examples/modules \
	--puppetdb "$PDB" --log-level info 2>"$work/serve.log" &
serve_pid=$!
deadline=$((SECONDS + 30))
until [ -s "$XDG_CONFIG_HOME/baton/local.json" ]; do
	if ! alive "$serve_pid" || ((SECONDS >= deadline)); then
		die "baton serve did not start"
	fi
	sleep 0.1
done
api=$(jq -r .url "$XDG_CONFIG_HOME/baton/local.json")/orchestrator/v1
token=$(cat "$work/data/admin.token")
cacert=$work/data/tls.crt
agents=(web1 web2 web3 db1)
for n in "${agents[@]}" offline1; do
	baton node add "$n" --out "$work/$n.cred" 2>/dev/null
done
for n in "${agents[@]}"; do
	"$work/bin/baton-agent" --credential "$work/$n.cred" --cache-dir "$work/$n/cache" --spool-dir "$work/$n/spool" \
		--log-level warn 2>"$work/$n.log" &
	agent_pids+=($!)
done
deadline=$((SECONDS + 60))
until [ "$(baton node list --format json | jq '[.[] | select(.connected)] | length')" = "${#agents[@]}" ]; do
	((SECONDS < deadline)) || die "the agents did not connect: $(baton node list)"
	sleep 0.2
done
timings+=("serve and agents $(since "$t0") s")

# --- jobs targeted by PQL ---------------------------------------------------------------------
t0=$EPOCHREALTIME
failures=0
# run_query PQL EXPECTED...: a task job on the query's nodes must run on exactly EXPECTED.
run_query() {
	local q=$1 out got want
	shift
	want=$(printf '%s\n' "$@" | sort | paste -sd, -)
	out=$(baton task run demo::hello --query "$q" --format json name=PuppetDB) || true
	got=$(jq -r '[.items[] | select(.status == "success" and (.value.greeting == "hello PuppetDB")) | .target] | sort | join(",")' <<<"$out" 2>/dev/null || true)
	local all
	all=$(jq -r '[.items[].target] | sort | join(",")' <<<"$out" 2>/dev/null || true)
	if [ "$got" = "$want" ] && [ "$all" = "$want" ]; then
		log "ok: $q → job $(jq -r .job <<<"$out") ran on $got"
	else
		log "FAIL: $q: want $want, ran on [$all], succeeded on [$got]: $out"
		failures=$((failures + 1))
	fi
}
# A subquery (the issue's example): Debian nodes whose catalog has Class[Nginx]. db1 has
# Nginx on RedHat, web3 is Debian without it, ghost is not enrolled here.
run_query 'inventory[certname] { facts.os.family = "Debian" and resources { type = "Class" and title = "Nginx" } }' web1 web2
# The resources entity.
run_query 'resources[certname] { type = "Class" and title = "Nginx" }' web1 web2 db1
# A negated subquery with `in`.
run_query 'inventory[certname] { facts.os.family = "Debian" and !(certname in resources[certname] { type = "Class" and title = "Nginx" }) }' web3
# facts[certname]: a result per fact (two per web and db node here), de-duplicated.
run_query 'facts[certname] { (name = "kernel" and value = "Linux") or (name = "os" and certname ~ "^(web|db)") }' web1 web2 web3 db1

# post_task PQL: POST /command/task with this scope.query; prints "STATUS BODY".
post_task() {
	jq -cn --arg q "$1" '{task: "demo::hello", params: {}, scope: {query: $q}}' |
		curl -sS --max-time 60 --cacert "$cacert" -H "X-Authentication: $token" -H 'Content-Type: application/json' \
			--data-binary @- -w '\n%{http_code}' "$api/command/task"
}
# expect_query_error PQL TEXT: the request is refused 400 query-error, msg containing TEXT.
expect_query_error() {
	local out status body
	out=$(post_task "$1")
	status=$(tail -n 1 <<<"$out")
	body=$(sed '$d' <<<"$out")
	if [ "$status" = 400 ] && [ "$(jq -r .kind <<<"$body")" = puppetlabs.orchestrator/query-error ] &&
		jq -e --arg t "$2" '.msg | contains($t)' <<<"$body" >/dev/null; then
		log "ok: $1 → 400 query-error: $(jq -r .msg <<<"$body" | head -n 1)"
	else
		log "FAIL: $1: want 400 query-error containing '$2', got $status $body"
		failures=$((failures + 1))
	fi
}
expect_query_error 'inventory[certname] { facts.os.family = }' "PQL parse error"
expect_query_error 'inventory[certname] { nosuchfield = "x" }' "is not a queryable object for inventory"
expect_query_error 'facts[count()] { name = "os" }' "carry no certname"

# The inventory shows PuppetDB's facts for a node whose agent never reported any.
inv=$(curl -sS --max-time 30 --cacert "$cacert" -H "X-Authentication: $token" "$api/inventory/offline1")
if [ "$(jq -r '.facts_source + " " + .facts.os.family' <<<"$inv")" = "puppetdb Solaris" ]; then
	log "ok: GET /inventory/offline1 shows PuppetDB's facts (facts_source puppetdb)"
else
	log "FAIL: GET /inventory/offline1: want PuppetDB's facts, got $inv"
	failures=$((failures + 1))
fi
web1=$(curl -sS --max-time 30 --cacert "$cacert" -H "X-Authentication: $token" "$api/inventory/web1")
if [ "$(jq -r '.facts_source // "agent"' <<<"$web1")" = agent ] && [ "$(jq '.facts | length' <<<"$web1")" -gt 0 ]; then
	log "ok: GET /inventory/web1 shows its agent's facts"
else
	log "FAIL: GET /inventory/web1: want the agent's facts, got $(head -c 300 <<<"$web1")"
	failures=$((failures + 1))
fi
timings+=("jobs and checks $(since "$t0") s")

t0=$EPOCHREALTIME
stop_all
timings+=("stop $(since "$t0") s")
log "timings: $(printf '%s, ' "${timings[@]}" | sed 's/, $//')"
[ "$failures" -eq 0 ] || die "$failures check(s) failed"
log "ok"
