#!/usr/bin/env bash
# make test-puppet-module: the Puppet module puppet/modules/baton, with the real `puppet apply`.
#
#  1. `puppet parser validate` of its manifests, `ruby -c` of its function, puppet-lint
#     (--fail-on-warnings; Debian's puppet-lint is installed when missing, and the check is
#     skipped, saying so, only when it cannot be installed), metadata.json is JSON.
#  2. The class refuses contradictory parameters (no token nor credential; both) and empty
#     interpreters (an empty array, an empty path).
#  3. `baton serve` (bin/baton) runs on loopback; `baton node add` gives the node its one-time
#     enrolment token. `puppet apply` of baton::agent with that token, the server's URL and
#     TLS pin, interpreters, Puppet mode `apply`, the built .deb as package source and
#     manage_service => false (systemd is not PID 1 here) changes things (exit 2): the package
#     is installed, the config and the credential are 0600 root with the expected content.
#  4. A second apply changes nothing (--detailed-exitcodes exit 0).
#  5. The agent, started as the unit's ExecStart would start it, enrols and shows as connected
#     in `baton node list`; a third apply still changes nothing and leaves the agent's key in
#     the credential (Puppet does not put the used-up token back). With manage_service =>
#     true (in --noop: systemd cannot start services here) Service[baton-agent] is in the
#     catalog, to be running, and nothing else would change.
#
# Needs root: it installs the baton-agent package and writes /etc/baton. It refuses to run
# where baton-agent is installed or /etc/baton exists, and purges the package on exit. Puppet
# runs with its own confdir, vardir and codedir under a temporary directory, so /etc/puppet
# and Puppet's state are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
umask 022

readonly DEADLINE=90        # seconds for the server to start and the agent to connect
readonly FACTS_DEADLINE=180 # seconds for the agent's facts (facter) once connected
readonly MODULES=puppet/modules
PKG_DIR=${PKG_DIR:-dist/packages}
PKG_ARCH=${PKG_ARCH:-$(dpkg --print-architecture)}
NODE="puppettest-$$"
BATON=$PWD/bin/baton

LOG_PREFIX=test-puppet-module
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (installs the baton-agent package, writes /etc/baton)"

# wait_dpkg_lock: until no other process holds dpkg's lock (an apt-get elsewhere on the
# machine), for up to 5 minutes, so that Puppet's dpkg provider is not refused.
wait_dpkg_lock() {
	local deadline=$((SECONDS + 300))
	until python3 -c '
import fcntl, sys
with open("/var/lib/dpkg/lock-frontend", "a") as f:
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(1)'; do
		((SECONDS < deadline)) || die "dpkg's lock was held for 5 minutes"
		sleep 1
	done
}
[ -x "$BATON" ] || die "$BATON missing: run make build"
deb=$(find "$PKG_DIR" -maxdepth 1 -name "baton-agent_*_${PKG_ARCH}.deb" -printf '%T@ %p\n' | sort -rn | head -n 1 | cut -d' ' -f2-)
[ -n "$deb" ] || die "no .deb of baton-agent in $PKG_DIR: run make packages"
deb=$(realpath "$deb")
st=$(dpkg-query -W -f '${db:Status-Status}' baton-agent 2>/dev/null || true)
[ -z "$st" ] || [ "$st" = not-installed ] || die "baton-agent is installed here ($st); this test installs and purges it: remove it first"
[ ! -e /etc/baton ] || die "/etc/baton exists; this test writes the agent's config there: move it away first"

work=$(mktemp -d /tmp/baton-test-puppet.XXXXXX)
server_pid="" agent_pid=""
timings=()

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop "$agent_pid" baton-agent
	stop "$server_pid" "baton serve"
	st=$(dpkg-query -W -f '${db:Status-Status}' baton-agent 2>/dev/null || true)
	if [ -n "$st" ] && [ "$st" != not-installed ]; then
		wait_dpkg_lock
		dpkg --purge baton-agent >/dev/null 2>&1 || rc=1
	fi
	rm -rf /etc/baton # what the package's purge leaves is ours (the test refused a prior one)
	if [ "$rc" -ne 0 ]; then
		for f in "$work"/*.log; do
			[ -e "$f" ] || continue
			log "--- $f (last 40 lines)"
			tail -n 40 "$f" >&2
		done
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools ----------------------------------------------------------------------------------
t0=$EPOCHREALTIME
apt_install() {
	apt-cache show "$@" >/dev/null 2>&1 || apt-get update -qq
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@" >/dev/null
}
command -v puppet >/dev/null 2>&1 || apt_install puppet-agent
lint=1
if ! command -v puppet-lint >/dev/null 2>&1 && ! apt_install puppet-lint; then
	lint=0
fi
timings+=("tools $(since "$t0") s")

# puppet_apply EXIT-WANTED LOG MANIFEST-OPTS...: puppet apply with a private confdir, vardir
# and codedir; the exit status (--detailed-exitcodes) must be EXIT-WANTED.
puppet_apply() {
	local want=$1 logf=$2 rc=0
	shift 2
	puppet apply --detailed-exitcodes --color=false --modulepath "$PWD/$MODULES" \
		--confdir "$work/puppet/etc" --vardir "$work/puppet/var" --codedir "$work/puppet/code" \
		--logdir "$work/puppet/log" --rundir "$work/puppet/run" "$@" >"$logf" 2>&1 || rc=$?
	if [ "$rc" != "$want" ]; then
		grep -v 'Facter: Permission denied' "$logf" | tail -n 40 >&2
		die "puppet apply $* exited $rc, want $want (log $logf above)"
	fi
}

# --- 1. static checks -----------------------------------------------------------------------
t0=$EPOCHREALTIME
mapfile -t manifests < <(find "$MODULES" -name '*.pp' | sort)
puppet parser validate "${manifests[@]}" || die "puppet parser validate failed"
log "ok: puppet parser validate ${manifests[*]}"
while IFS= read -r f; do
	ruby -c "$f" >/dev/null || die "ruby -c $f failed"
done < <(find "$MODULES" -name '*.rb')
python3 -m json.tool "$MODULES/baton/metadata.json" >/dev/null || die "metadata.json is not JSON"
if [ "$lint" = 1 ]; then
	puppet-lint --fail-on-warnings "$MODULES/baton" || die "puppet-lint found problems"
	log "ok: puppet-lint --fail-on-warnings $MODULES/baton"
else
	log "SKIPPED: puppet-lint (not installed and not installable from the package lists here)"
fi
timings+=("static $(since "$t0") s")

# --- 2. contradictory parameters ----------------------------------------------------------------
t0=$EPOCHREALTIME
for bad in "class { 'baton::agent': server => 'wss://127.0.0.1:1/pcp' }|exactly one of enrollment_token and credential" \
	"class { 'baton::agent': server => 'wss://127.0.0.1:1/pcp', enrollment_token => 'a', credential => 'b' }|exactly one of enrollment_token and credential" \
	"class { 'baton::agent': server => 'wss://127.0.0.1:1/pcp', enrollment_token => 'a', puppet_mode => 'apply' }|needs puppet_manifest" \
	"class { 'baton::agent': server => 'wss://127.0.0.1:1/pcp', enrollment_token => 'a', interpreters => { 'rb' => [] } }|entry 'rb' variant 1 expects size to be at least 1" \
	"class { 'baton::agent': server => 'wss://127.0.0.1:1/pcp', enrollment_token => 'a', interpreters => { 'rb' => ['', '-w'] } }|entry 'rb' variant 1 index 0 expects a String"; do
	puppet_apply 1 "$work/bad.log" --noop -e "${bad%%|*}"
	grep -q "${bad#*|}" "$work/bad.log" || die "puppet apply -e \"${bad%%|*}\" failed without saying '${bad#*|}'"
done
log "ok: the class refuses contradictory parameters and empty interpreters"
timings+=("refusals $(since "$t0") s")

# --- 3. first apply ---------------------------------------------------------------------------
t0=$EPOCHREALTIME
export XDG_CONFIG_HOME="$work/config"
unset BATON_SERVER BATON_TOKEN_FILE BATON_TLS_FINGERPRINT BATON_CA_FILE
"$BATON" serve --listen 127.0.0.1:0 --data "$work/data" --modules examples/modules --log-level warn >"$work/server.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + DEADLINE))
until [ -s "$XDG_CONFIG_HOME/baton/local.json" ]; do
	alive "$server_pid" || die "baton serve exited"
	((SECONDS < deadline)) || die "baton serve did not start within ${DEADLINE}s"
	sleep 0.1
done
"$BATON" node add "$NODE" --out "$work/node.cred" 2>"$work/node-add.log" || die "baton node add failed"
# The values an operator would copy from `baton node add` (or the bulk enrolment API).
read -r server token api fingerprint < <(python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))
print(c["server"], c["enrollment_token"], c["api"], c["tls_fingerprint"])' "$work/node.cred")
for v in "$server" "$token" "$api" "$fingerprint"; do
	[[ $v =~ ^[A-Za-z0-9:/._-]+$ ]] || die "unexpected character in credential value $v"
done

site="$work/site.pp"
cat >"$site" <<EOF
class { 'baton::agent':
  server            => '$server',
  node_name         => '$NODE',
  enrollment_token  => Sensitive('$token'),
  api               => '$api',
  tls_fingerprint   => '$fingerprint',
  interpreters      => { '.rb' => '/usr/bin/ruby', 'py' => ['/usr/bin/python3', '-u'] },
  puppet_mode       => 'apply',
  puppet_manifest   => '/etc/puppet/code/environments/production/manifests/site.pp',
  puppet_modulepath => '/etc/puppet/code/modules',
  package_source    => '$deb',
  manage_service    => false,
}
EOF
wait_dpkg_lock
puppet_apply 2 "$work/apply1.log" "$site"
if grep -q -- "$token" "$work/apply1.log"; then
	die "the enrolment token appears in puppet's output"
fi
[ "$(dpkg-query -W -f '${db:Status-Status}' baton-agent)" = installed ] || die "baton-agent is not installed after puppet apply"
for f in /etc/baton/agent.json /etc/baton/agent.cred; do
	[ "$(stat -c '%a %U %G' "$f")" = "600 root root" ] || die "$f: want 600 root root, got $(stat -c '%a %U %G' "$f")"
done
python3 - "$server" "$fingerprint" "$NODE" "$token" "$api" <<'EOF' || die "config or credential content is wrong"
import json, sys
server, fp, node, token, api = sys.argv[1:]
c = json.load(open("/etc/baton/agent.json"))
want = {
    "server": server, "credential": "/etc/baton/agent.cred", "tls_fingerprint": fp,
    "cache_dir": "/var/cache/baton-agent/tasks", "spool_dir": "/var/lib/baton-agent/spool",
    "log_level": "info",
    "interpreters": {".rb": "/usr/bin/ruby", "py": ["/usr/bin/python3", "-u"]},
    "puppet": {"mode": "apply", "manifest": "/etc/puppet/code/environments/production/manifests/site.pp",
               "modulepath": "/etc/puppet/code/modules"},
}
assert c == want, f"agent.json = {c}, want {want}"
cred = json.load(open("/etc/baton/agent.cred"))
want = {"name": node, "enrollment_token": token, "server": server, "api": api, "tls_fingerprint": fp}
assert cred == want, f"agent.cred = {cred}, want {want}"
EOF
log "ok: first puppet apply installed $(basename "$deb") and wrote the config and credential (600 root) ($(since "$t0") s)"
timings+=("apply-1 $(since "$t0") s")

# --- 4. idempotent --------------------------------------------------------------------------
t0=$EPOCHREALTIME
puppet_apply 0 "$work/apply2.log" "$site"
log "ok: second puppet apply changed nothing (exit 0) ($(since "$t0") s)"
timings+=("apply-2 $(since "$t0") s")

# --- 5. the agent it configured connects ----------------------------------------------------
t0=$EPOCHREALTIME
exec_start=$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/baton-agent.service)
[ -n "$exec_start" ] || die "no ExecStart in the installed baton-agent.service"
read -ra cmd <<<"$exec_start"
log "starting the agent as the unit does: ${cmd[*]}"
(cd / && exec "${cmd[@]}") >"$work/agent.log" 2>&1 &
agent_pid=$!
deadline=$((SECONDS + DEADLINE))
connected=""
until [ "$connected" = true ]; do
	alive "$agent_pid" || die "the agent exited"
	((SECONDS < deadline)) || die "node $NODE not connected within ${DEADLINE}s of starting the agent"
	connected=$("$BATON" node list --format json 2>/dev/null |
		python3 -c 'import json,sys; print(next((str(n["connected"]).lower() for n in json.load(sys.stdin) if n["name"] == sys.argv[1]), ""))' "$NODE" || true)
	[ "$connected" = true ] || sleep 0.2
done
log "ok: node $NODE connected after $(since "$t0") s (baton node list)"
timings+=("connect $(since "$t0") s")
grep -q '"private_key"' /etc/baton/agent.cred || die "the agent did not replace the token with its key"
# The interpreters the class wrote are the agent's: it reports them with its facts
# (baton_agent.interpreters in the inventory), which follow the connection once facter ran.
t0=$EPOCHREALTIME
deadline=$((SECONDS + FACTS_DEADLINE))
until interp=$("$BATON" node show "$NODE" 2>/dev/null | python3 -c '
import json, sys
i = json.load(sys.stdin).get("facts", {}).get("baton_agent", {}).get("interpreters")
if i is None:
    sys.exit(1)
print(json.dumps(i, sort_keys=True))'); do
	alive "$agent_pid" || die "the agent exited"
	((SECONDS < deadline)) || die "node $NODE reported no baton_agent.interpreters fact within ${FACTS_DEADLINE}s"
	sleep 0.5
done
python3 -c '
import json, sys
i = json.loads(sys.argv[1])
assert i.get(".rb") == "/usr/bin/ruby" and i.get(".py") == "/usr/bin/python3 -u", i' "$interp" ||
	die "the agent does not use the class's interpreters: it reports $interp"
log "ok: the agent enrolled and reports the class's interpreters ($interp) ($(since "$t0") s)"
timings+=("facts $(since "$t0") s")

t0=$EPOCHREALTIME
puppet_apply 0 "$work/apply3.log" "$site"
grep -q '"private_key"' /etc/baton/agent.cred || die "puppet apply put the used-up token back over the agent's key"
[ "$(stat -c '%a %U' /etc/baton/agent.cred)" = "600 root" ] || die "credential mode changed"
log "ok: third puppet apply (enrolled agent) changed nothing and kept the agent's key ($(since "$t0") s)"
timings+=("apply-3 $(since "$t0") s")

# With manage_service (systemd cannot start it here: --noop), the service is in the catalog,
# to be running, and nothing else would change.
t0=$EPOCHREALTIME
sed 's/manage_service    => false/manage_service    => true/' "$site" >"$work/site-service.pp"
puppet_apply 0 "$work/apply-service.log" --noop "$work/site-service.pp"
grep -q "Service\[baton-agent\]/ensure: current_value '[a-z]*', should be 'running' (noop)" "$work/apply-service.log" ||
	die "with manage_service => true the catalog does not keep Service[baton-agent] running"
if grep -E 'File\[|Package\[' "$work/apply-service.log" >&2; then
	die "with manage_service => true a file or the package would change"
fi
log "ok: with manage_service => true (noop) the catalog keeps Service[baton-agent] running and changes nothing else ($(since "$t0") s)"
timings+=("service-noop $(since "$t0") s")

log "timings: $(printf '%s, ' "${timings[@]}" | sed 's/, $//')"
log "ok"
