#!/usr/bin/env bash
# make test-puppetserver: run `puppet agent` jobs through Baton against a real puppetserver.
#
# Installs Debian's puppetserver and puppet-agent when missing, configures them for loopback
# (reference: /work/shared/reference/puppet-testing.md), starts `puppetserver foreground`,
# writes a production manifest, runs TestPuppetServer (shared/local) and stops the server.
#
# Needs root: it rewrites files under /etc and runs the server as user puppet. Every file it
# rewrites is backed up and restored on exit, and directories it creates are removed. What
# it keeps on purpose: the packages, the CA made once by `puppetserver ca setup`
# (/etc/puppet/puppetserver/ca) with the `localhost` certificate in /var/lib/puppet/ssl (so
# later runs skip the setup), and the server's own state and logs (/var/lib/puppetserver,
# /var/log/puppetserver). It leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH" DEBIAN_FRONTEND=noninteractive
umask 022

readonly PORT=8140
readonly START_TIMEOUT=240 # seconds for the status endpoint to answer
readonly STOP_TIMEOUT=60   # seconds for java to exit after SIGTERM
readonly CONTENT="managed by baton through puppetserver"
readonly SITE_PP=/etc/puppet/code/environments/production/manifests/site.pp

LOG_PREFIX=test-puppetserver
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, rewrites /etc/puppet, runs the server as user puppet)"

work=$(mktemp -d /tmp/baton-puppetserver.XXXXXX)
server_pid=""   # the `setsid puppetserver foreground` launcher, our child
backed_up=()    # files rewritten, in order; their originals are $work/backup.<index>
created_dirs=() # directories created, parents first
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

# restore: put back every file backup saw, remove the ones that did not exist, then the
# directories made by mkdirs (only if empty).
restore() {
	local i rc=0
	for ((i = ${#backed_up[@]} - 1; i >= 0; i--)); do
		if [ -e "$work/backup.$i" ]; then
			cp -a "$work/backup.$i" "${backed_up[$i]}" || rc=1
		else
			rm -f "${backed_up[$i]}" || rc=1
		fi
	done
	for ((i = ${#created_dirs[@]} - 1; i >= 0; i--)); do
		rmdir "${created_dirs[$i]}" 2>/dev/null || log "left non-empty directory ${created_dirs[$i]}"
	done
	backed_up=() created_dirs=()
	return "$rc"
}

# mkdirs DIR: create DIR and its missing parents, remembering them for restore.
mkdirs() {
	local d=$1 missing=()
	while [ ! -d "$d" ]; do
		missing=("$d" "${missing[@]}")
		d=$(dirname "$d")
	done
	for d in "${missing[@]}"; do
		mkdir "$d"
		created_dirs+=("$d")
	done
}

# descendants PID: every process below PID, by parent PID.
descendants() {
	local c
	for c in $(pgrep -P "$1" || true); do
		echo "$c"
		descendants "$c"
	done
}

# server_java: the java process started by our launcher (bash -> runuser -> java).
server_java() {
	local p
	for p in $(descendants "$server_pid"); do
		if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = java ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# stop_server: SIGTERM to the java PID (java runs in its own process group, so signalling the
# launcher's group would miss it), wait for it and the launcher to exit; SIGKILL, by PID, only
# what is still there after STOP_TIMEOUT.
stop_server() {
	[ -n "$server_pid" ] || return 0
	local t0=$EPOCHREALTIME java pids p deadline=$((SECONDS + STOP_TIMEOUT))
	if java=$(server_java); then
		kill -TERM "$java" 2>/dev/null || true
		pids=("$java")
	else # still starting (or java already gone): stop the launcher and what it started
		mapfile -t pids < <(descendants "$server_pid")
		pids+=("$server_pid")
		kill -TERM "${pids[@]}" 2>/dev/null || true
	fi
	pids+=("$server_pid")
	for p in "${pids[@]}"; do
		while alive "$p"; do
			if ((SECONDS >= deadline)); then
				log "process $p still running ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
				kill -KILL "$p" 2>/dev/null || true
				break
			fi
			sleep 0.2
		done
	done
	wait "$server_pid" 2>/dev/null || true # the launcher's exit status reflects java's SIGTERM
	server_pid=""
	log "puppetserver stopped in $(since "$t0") s"
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_server || rc=1
	restore || {
		log "error: could not restore every file (backups kept in $work)"
		exit 1
	}
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- install -------------------------------------------------------------------------------
t0=$EPOCHREALTIME
need=()
command -v puppet >/dev/null 2>&1 || need+=(puppet-agent)
command -v puppetserver >/dev/null 2>&1 || need+=(puppetserver)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	# apt-get update only when the package lists do not know a package, or are stale.
	if ! apt-cache show "${need[@]}" >/dev/null 2>&1; then
		apt-get update -qq
	fi
	if ! apt-get install -y -qq "${need[@]}" >/dev/null; then
		apt-get update -qq
		apt-get install -y -qq "${need[@]}" >/dev/null
	fi
fi
timings+=("install $(since "$t0") s")

# --- configure ----------------------------------------------------------------------------
t0=$EPOCHREALTIME
if ss -Hltn "sport = :$PORT" | grep -q .; then
	die "something already listens on port $PORT; stop it first"
fi

f=/etc/default/puppetserver
backup "$f"
# Smaller heap than the package's 1 GB; --add-opens silences JRuby's start-up warning.
sed -i -E '/^JAVA_ARGS=/{s/-Xms[0-9]+[kKmMgG]?/-Xms256m/; s/-Xmx[0-9]+[kKmMgG]?/-Xmx768m/; /add-opens/! s/"$/ --add-opens java.base\/sun.nio.ch=ALL-UNNAMED --add-opens java.base\/java.io=ALL-UNNAMED"/}' "$f"
grep -q '^JAVA_ARGS=".*-Xmx768m' "$f" || die "could not set JAVA_ARGS in $f"

f=/etc/puppet/puppetserver/conf.d/webserver.conf
backup "$f"
# HOCON merges a repeated object key into the first, later fields winning: loopback only,
# and TLS 1.2 (with TLS 1.3 a new agent's first certificate request stalls ~30 s).
cat >>"$f" <<'EOF'

# Added by baton scripts/test-puppetserver.sh (restored on exit).
webserver: {
    ssl-host: 127.0.0.1
    ssl-protocols: [TLSv1.2]
}
EOF

f=/etc/puppet/puppet.conf
backup "$f"
puppet config set --section main certname localhost
puppet config set --section main server localhost
puppet config set --section server autosign true
puppet config set --section server dns_alt_names localhost

# Facter cannot read /proc/1/environ in some sandboxes and then logs errors on every run.
f=/etc/facter/facter.conf
mkdirs "$(dirname "$f")"
backup "$f"
cat >"$f" <<'EOF'
# Written by baton scripts/test-puppetserver.sh (restored on exit).
facts : { blocklist : [ "hypervisors", "virtual", "is_virtual", "system_uptime", "ec2_metadata", "ec2_userdata", "az_metadata", "cloud" ] }
EOF

target_dir="$work/target"
mkdir "$target_dir"
target="$target_dir/motd"
mkdirs "$(dirname "$SITE_PP")"
backup "$SITE_PP"
printf "file { '%s': ensure => file, content => \"%s\\\\n\" }\n" "$target" "$CONTENT" >"$SITE_PP"

mapfile -t settings < <(puppet config print --section server ssldir cadir hostcert localcacert)
declare -A setting
for s in "${settings[@]}"; do
	setting[${s%% = *}]=${s#* = }
done
ssldir=${setting[ssldir]} cadir=${setting[cadir]} hostcert=${setting[hostcert]} cacert=${setting[localcacert]}
if [ -z "$ssldir" ] || [ -z "$cadir" ] || [ -z "$hostcert" ] || [ -z "$cacert" ]; then
	die "unexpected puppet config print output: ${settings[*]}"
fi
if [ ! -e "$cadir/ca_crt.pem" ]; then
	log "creating the CA and the localhost certificate (puppetserver ca setup)"
	puppetserver ca setup >"$work/ca-setup.log" 2>&1 || {
		cat "$work/ca-setup.log" >&2
		die "puppetserver ca setup failed"
	}
fi
[ -e "$hostcert" ] || die "$hostcert is missing though the CA exists; the server certificate must be for certname localhost"
timings+=("configure $(since "$t0") s")

# --- start ---------------------------------------------------------------------------------
t0=$EPOCHREALTIME
log "starting puppetserver (up to ${START_TIMEOUT}s)"
# Its own session, so that nothing it starts shares our terminal or process group. -w: if
# setsid has to fork, it waits, so $! stays the ancestor of the server either way.
setsid -w puppetserver foreground </dev/null >"$work/server.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + START_TIMEOUT))
# The certificate names localhost, not 127.0.0.1: verify it as localhost, connect to 127.0.0.1.
until [ "$(curl -sS --max-time 5 --cacert "$cacert" --resolve "localhost:$PORT:127.0.0.1" \
	"https://localhost:$PORT/status/v1/simple" 2>/dev/null)" = running ]; do
	if ! alive "$server_pid" || ((SECONDS >= deadline)); then
		tail -n 40 "$work/server.log" >&2 || true
		die "puppetserver did not answer on https://127.0.0.1:$PORT/status/v1/simple within $(since "$t0") s"
	fi
	sleep 1
done
timings+=("start $(since "$t0") s")
log "puppetserver answers after $(since "$t0") s: $(ss -Hltn "sport = :$PORT" | awk '{print $4}' | tr '\n' ' ')"

# --- test ----------------------------------------------------------------------------------
t0=$EPOCHREALTIME
rc=0
BATON_PUPPETSERVER=1 BATON_REQUIRE_PUPPET=1 \
	BATON_PUPPETSERVER_MANIFEST="$SITE_PP" BATON_PUPPETSERVER_TARGET="$target" \
	BATON_PUPPETSERVER_CONTENT="$CONTENT" BATON_PUPPETSERVER_SSLDIR="$ssldir" \
	go test -count=1 -timeout 15m -run TestPuppetServer ./shared/local/ -v || rc=$?
timings+=("test $(since "$t0") s")
if [ "$rc" -ne 0 ]; then
	log "server log (last 40 lines):"
	tail -n 40 "$work/server.log" >&2 || true
fi

t0=$EPOCHREALTIME
stop_server
timings+=("stop $(since "$t0") s")
log "timings: $(printf '%s, ' "${timings[@]}" | sed 's/, $//')"
[ "$rc" -eq 0 ] || die "go test failed (exit $rc)"
log "ok"
