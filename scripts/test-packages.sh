#!/usr/bin/env bash
# make test-packages: the built packages, installed and used as a node would.
#
#  1. The .deb of baton-agent and of baton hold exactly the entries of
#     cmd/<pkg>/package/files.txt, with those modes and owners (plus shared parent directories,
#     0755 root); the agent's config is a conffile.
#  2. The .rpm of each holds the same list (rpm -qp), the agent's config as %config(noreplace).
#  3. dpkg -i of both: the installed files are exactly that list with those modes and owners,
#     the agent's unit is enabled (the server's not), `systemd-analyze verify` accepts both
#     units without a word, and the server's sandbox keeps `systemd-analyze security` at 2.0
#     or below.
#  4. The installed baton (`baton serve`) starts, `baton node add` writes the agent's
#     credential to /etc/baton/agent.cred, the installed agent is started as the unit's
#     ExecStart would start it (systemd is not PID 1 here), enrols (the token is replaced
#     by its own key, the file stays 0600), shows as connected in `baton node list` and
#     runs a task (its files land in the package's cache directory).
#  5. The next version installed over it keeps the node's edited config and enrolled key and
#     the enabled unit; the agent connects again with its key.
#  6. dpkg -r removes the programs and units and disables the unit; dpkg --purge leaves
#     nothing (credential, cache, spool included).
#
# Needs root: it installs packages (rpm and systemd from Debian when missing, then the built
# ones) and writes /etc/baton. It refuses to run where baton or baton-agent is installed or
# /etc/baton exists, and purges what it installed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
umask 022

readonly DEADLINE=90 # seconds for the server to start and the agent to connect and run a task
PKG_DIR=${PKG_DIR:-dist/packages}
PKG_ARCH=${PKG_ARCH:-$(dpkg --print-architecture)}
NODE="pkgtest-$$"

LOG_PREFIX=test-packages
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, writes /etc/baton)"

# dpkg_run LOG ARGS...: dpkg ARGS with its output in LOG; while another process holds dpkg's
# lock (an apt-get elsewhere on the machine), it tries again, for up to 5 minutes.
dpkg_run() {
	local logf=$1 deadline=$((SECONDS + 300))
	shift
	until dpkg "$@" </dev/null >"$logf" 2>&1; do
		grep -q 'lock' "$logf" && ((SECONDS < deadline)) || return 1
		sleep 1
	done
}

# pkgfile NAME EXT: the newest built package file of NAME (deb or rpm) in PKG_DIR.
pkgfile() {
	local f
	if [ "$2" = deb ]; then
		f=$(find "$PKG_DIR" -maxdepth 1 -name "${1}_*_${PKG_ARCH}.deb" -printf '%T@ %p\n' | sort -rn | head -n 1 | cut -d' ' -f2-)
	else
		f=$(find "$PKG_DIR" -maxdepth 1 -name "${1}-[0-9]*.rpm" -printf '%T@ %p\n' | sort -rn | head -n 1 | cut -d' ' -f2-)
	fi
	[ -n "$f" ] || die "no $2 of $1 in $PKG_DIR: run make packages"
	echo "$f"
}
AGENT_DEB=$(pkgfile baton-agent deb)
AGENT_RPM=$(pkgfile baton-agent rpm)
BATON_DEB=$(pkgfile baton deb)
BATON_RPM=$(pkgfile baton rpm)

for p in baton-agent baton; do
	if [ "$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null || true)" != "" ] &&
		[ "$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null)" != not-installed ]; then
		die "package $p is installed here; this test installs and purges it: remove it first"
	fi
done
[ ! -e /etc/baton ] || die "/etc/baton exists; this test installs the agent there: move it away first"

work=$(mktemp -d /tmp/baton-test-packages.XXXXXX)
server_pid="" agent_pid="" installed=0
timings=()

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop "$agent_pid" baton-agent
	stop "$server_pid" "baton serve"
	if [ "$installed" = 1 ]; then
		dpkg_run "$work/dpkg-cleanup.log" --purge baton-agent baton || rc=1
	fi
	if [ "$rc" -ne 0 ]; then
		for f in "$work"/*.log; do
			[ -e "$f" ] || continue
			log "--- $f (last 30 lines)"
			tail -n 30 "$f" >&2
		done
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_agent LOG: the installed agent, started with the unit's own command line as systemd
# would run it (no shell; no EnvironmentFile exists here).
start_agent() {
	local exec_start cmd
	exec_start=$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/baton-agent.service)
	[ -n "$exec_start" ] || die "no ExecStart in baton-agent.service"
	read -ra cmd <<<"$exec_start"
	log "starting the agent as the unit does: ${cmd[*]}"
	(cd / && exec "${cmd[@]}") >"$1" 2>&1 &
	agent_pid=$!
}

# wait_connected: until `baton node list` shows NODE connected, within DEADLINE seconds.
wait_connected() {
	local connected="" deadline=$((SECONDS + DEADLINE))
	until [ "$connected" = true ]; do
		alive "$agent_pid" || die "the installed agent exited"
		((SECONDS < deadline)) || die "node $NODE not connected within ${DEADLINE}s"
		connected=$(/usr/bin/baton node list --format json 2>/dev/null |
			python3 -c 'import json,sys; print(next((str(n["connected"]).lower() for n in json.load(sys.stdin) if n["name"] == sys.argv[1]), ""))' "$NODE" || true)
		[ "$connected" = true ] || sleep 0.2
	done
}

# --- tools ----------------------------------------------------------------------------------
t0=$EPOCHREALTIME
need=()
command -v rpm >/dev/null 2>&1 || need+=(rpm)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	apt-cache show "${need[@]}" >/dev/null 2>&1 || apt-get update -qq
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${need[@]}" >/dev/null
fi
timings+=("tools $(since "$t0") s")

# The maintainer scripts run under /bin/sh (dash on Debian), the tests under bash.
shellcheck -x cmd/baton-agent/package/*.sh cmd/baton/package/*.sh scripts/test-packages.sh scripts/test-puppet-module.sh scripts/lib.sh ||
	die "shellcheck found problems"
log "ok: shellcheck of the maintainer scripts and the package tests"

# expected PKG: the package's files.txt without comments, sorted by path.
expected() {
	grep -v '^#' "cmd/$1/package/files.txt" | grep . | sort -k4
}

# owned_only PKG < LIST: the lines of LIST ("perms owner group path") that PKG's files.txt
# names; every other one must be a directory, 0755 root, that is a parent of a named one.
owned_only() {
	local pkg=$1 perms owner group path
	local -A want=()
	while read -r perms owner group path; do
		want[$path]=1
	done < <(expected "$pkg")
	while read -r perms owner group path; do
		if [ -n "${want[$path]:-}" ]; then
			printf '%s %s %s %s\n' "$perms" "$owner" "$group" "$path"
			continue
		fi
		[ "$perms $owner $group" = "drwxr-xr-x root root" ] ||
			die "$pkg: unexpected entry $perms $owner $group $path"
		local named=0 w
		for w in "${!want[@]}"; do
			[[ $w == "$path"/* ]] && named=1
		done
		[ "$named" = 1 ] || die "$pkg: unexpected directory $path"
	done
}

# same WHAT PKG ACTUAL: ACTUAL (sorted by path) equals the expected list.
same() {
	if ! diff -u <(expected "$2") <(sort -k4 <<<"$3") >"$work/diff"; then
		cat "$work/diff" >&2
		die "$1 of $2 differs from cmd/$2/package/files.txt (- expected, + actual)"
	fi
	log "ok: $1 of $2 is exactly cmd/$2/package/files.txt ($(expected "$2" | wc -l) entries)"
}

# --- 1. the .deb files ------------------------------------------------------------------------
t0=$EPOCHREALTIME
for p in baton-agent baton; do
	if [ "$p" = baton-agent ]; then deb=$AGENT_DEB; else deb=$BATON_DEB; fi
	[ "$(dpkg-deb -f "$deb" Package)" = "$p" ] || die "$deb: package name is not $p"
	# dpkg-deb -c: "drwxr-xr-x root/root 0 2026-01-01 00:00 ./etc/baton/"
	listing=$(dpkg-deb -c "$deb" | awk '{ split($2, o, "/"); p = substr($6, 2); sub("/$", "", p); if (p != "") print $1, o[1], o[2], p }')
	same ".deb contents" "$p" "$(owned_only "$p" <<<"$listing")"
done
conffiles=$(dpkg-deb --ctrl-tarfile "$AGENT_DEB" | tar -xOf - ./conffiles)
[ "$conffiles" = /etc/baton/agent.json ] || die "baton-agent conffiles: want /etc/baton/agent.json, got: $conffiles"
log "ok: /etc/baton/agent.json is the agent's only conffile"

# --- 2. the .rpm files ------------------------------------------------------------------------
for p in baton-agent baton; do
	if [ "$p" = baton-agent ]; then rpmf=$AGENT_RPM; else rpmf=$BATON_RPM; fi
	[ "$(rpm -qp --qf '%{NAME}' "$rpmf" 2>/dev/null)" = "$p" ] || die "$rpmf: package name is not $p"
	listing=$(rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]' "$rpmf" 2>/dev/null)
	same ".rpm contents" "$p" "$listing"
done
flags=$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$AGENT_RPM" 2>/dev/null | awk '$2 == "/etc/baton/agent.json" { print $1 }')
[ "$flags" = cn ] || die "/etc/baton/agent.json in the .rpm: want flags cn (%config(noreplace)), got '$flags'"
log "ok: the .rpm marks /etc/baton/agent.json %config(noreplace)"
timings+=("contents $(since "$t0") s")

# --- 3. install -------------------------------------------------------------------------------
t0=$EPOCHREALTIME
installed=1
dpkg_run "$work/dpkg-install.log" -i "$BATON_DEB" "$AGENT_DEB" || die "dpkg -i failed: $(cat "$work/dpkg-install.log")"
for p in baton-agent baton; do
	[ "$(dpkg-query -W -f '${db:Status-Status}' "$p")" = installed ] || die "$p is not installed after dpkg -i"
	mapfile -t paths < <(dpkg -L "$p")
	listing=$(for f in "${paths[@]}"; do [ "$f" = /. ] || stat -c '%A %U %G %n' "$f"; done)
	same "installed files" "$p" "$(owned_only "$p" <<<"$listing")"
done
wants=/etc/systemd/system/multi-user.target.wants/baton-agent.service
[ -L "$wants" ] || die "the postinst did not enable baton-agent.service ($wants missing)"
[ ! -e /etc/systemd/system/multi-user.target.wants/baton.service ] || die "the baton package enabled the server unit; it must not"
log "ok: baton-agent.service enabled, baton.service not"
timings+=("install $(since "$t0") s")

t0=$EPOCHREALTIME
units=(/usr/lib/systemd/system/baton-agent.service /usr/lib/systemd/system/baton.service)
if ! systemd-analyze verify "${units[@]}" >"$work/verify.log" 2>&1; then
	cat "$work/verify.log" >&2
	die "systemd-analyze verify refused the units"
fi
# Warnings do not change the exit status: there must be none about our units.
if grep -E 'baton(-agent)?\.service' "$work/verify.log" >&2; then
	die "systemd-analyze verify warned about the units"
fi
log "ok: systemd-analyze verify accepts ${units[*]}"
# The server needs no privilege: its sandbox must keep systemd's exposure score at 2.0 or
# below. The agent runs tasks as root by design; its score is reported, not held.
systemd-analyze security --offline=true --threshold=20 /usr/lib/systemd/system/baton.service >"$work/security.log" 2>&1 || {
	tail -n 5 "$work/security.log" >&2
	die "baton.service: systemd-analyze security exposure above 2.0"
}
exposure() { sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]* [A-Z]*\).*/\1/p'; }
log "ok: systemd-analyze security: baton.service $(exposure <"$work/security.log"), baton-agent.service $(systemd-analyze security --offline=true /usr/lib/systemd/system/baton-agent.service 2>&1 | exposure)"
timings+=("verify $(since "$t0") s")

# --- 4. the installed agent connects --------------------------------------------------------
t0=$EPOCHREALTIME
export XDG_CONFIG_HOME="$work/config" # where `baton serve` records its URL, token and pin for the CLI
unset BATON_SERVER BATON_TOKEN_FILE BATON_TLS_FINGERPRINT BATON_CA_FILE
/usr/bin/baton serve --listen 127.0.0.1:0 --data "$work/data" --modules examples/modules \
	--log-level warn >"$work/server.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + DEADLINE))
until [ -s "$XDG_CONFIG_HOME/baton/local.json" ]; do
	alive "$server_pid" || die "baton serve exited"
	((SECONDS < deadline)) || die "baton serve did not start within ${DEADLINE}s"
	sleep 0.1
done
/usr/bin/baton node add "$NODE" --out /etc/baton/agent.cred 2>"$work/node-add.log" || die "baton node add failed"
grep -q '"enrollment_token"' /etc/baton/agent.cred || die "the credential holds no enrolment token"

start_agent "$work/agent.log"
wait_connected
log "ok: node $NODE connected after $(since "$t0") s (baton node list)"
timings+=("connect $(since "$t0") s")

cred_mode=$(stat -c '%a %U' /etc/baton/agent.cred)
[ "$cred_mode" = "600 root" ] || die "credential after enrolment: want 600 root, got $cred_mode"
grep -q '"private_key"' /etc/baton/agent.cred || die "the agent did not replace the token with its key"
! grep -q '"enrollment_token"' /etc/baton/agent.cred || die "the used-up token is still in the credential"
log "ok: the agent enrolled (its key replaced the token; the credential is still 600 root)"

t0=$EPOCHREALTIME
out=$(/usr/bin/baton task run demo::hello --nodes "$NODE" --format json name=package 2>"$work/task.log") ||
	die "baton task run demo::hello failed: $out"
grep -q 'hello package' <<<"$out" || die "the task's result lacks its greeting: $out"
for d in /var/cache/baton-agent/tasks /var/lib/baton-agent/spool; do
	[ "$(stat -c '%a %U' "$d")" = "700 root" ] || die "$d: want 700 root, got $(stat -c '%a %U' "$d")"
done
[ -n "$(find /var/cache/baton-agent/tasks -type f -print -quit)" ] || die "the task's files are not in /var/cache/baton-agent/tasks"
log "ok: the installed agent ran demo::hello ($(since "$t0") s); its files are in /var/cache/baton-agent/tasks (700)"
timings+=("task $(since "$t0") s")

# --- 5. upgrade ----------------------------------------------------------------------------
# The next version of the same package (repacked with a higher version), installed over this
# one: the node's edited config and its enrolled key stay, the unit stays enabled, the
# restarted agent connects with its key (no second enrolment).
t0=$EPOCHREALTIME
stop "$agent_pid" baton-agent
agent_pid=""
old_version=$(dpkg-query -W -f '${Version}' baton-agent)
new_version="${old_version}+upgrade1"
dpkg-deb -R "$AGENT_DEB" "$work/upgrade"
sed -i "s/^Version: .*/Version: $new_version/" "$work/upgrade/DEBIAN/control"
dpkg-deb -Zgzip -z1 -b "$work/upgrade" "$work/upgrade.deb" >/dev/null
python3 -c '
import json
p = "/etc/baton/agent.json"
c = json.load(open(p))
c["log_level"] = "warn"
open(p, "w").write(json.dumps(c, indent=2) + "\n")' || die "could not edit /etc/baton/agent.json"
config_sum=$(sha256sum </etc/baton/agent.json)
cred_sum=$(sha256sum </etc/baton/agent.cred)
dpkg_run "$work/dpkg-upgrade.log" -i "$work/upgrade.deb" ||
	die "dpkg -i of the next version failed: $(cat "$work/dpkg-upgrade.log")"
[ "$(dpkg-query -W -f '${Version}' baton-agent)" = "$new_version" ] || die "the upgrade did not install $new_version"
[ "$(sha256sum </etc/baton/agent.json)" = "$config_sum" ] || die "the upgrade replaced the node's edited /etc/baton/agent.json"
[ "$(sha256sum </etc/baton/agent.cred)" = "$cred_sum" ] || die "the upgrade changed the node's credential"
[ -L "$wants" ] || die "the upgrade disabled baton-agent.service"
mapfile -t paths < <(dpkg -L baton-agent)
listing=$(for f in "${paths[@]}"; do [ "$f" = /. ] || stat -c '%A %U %G %n' "$f"; done)
same "files after the upgrade" baton-agent "$(owned_only baton-agent <<<"$listing")"
start_agent "$work/agent-upgraded.log"
wait_connected
if grep -q enrolling "$work/agent-upgraded.log"; then
	die "the upgraded agent enrolled again instead of using its key"
fi
# At the packaged level (info) the agent logs "baton-agent starting" before it connects.
if grep 'level=INFO' "$work/agent-upgraded.log" >&2; then
	die "the upgraded agent does not use the edited config (log_level warn)"
fi
log "ok: upgrade $old_version -> $new_version kept the edited config and the key; the agent connected again ($(since "$t0") s)"
timings+=("upgrade $(since "$t0") s")

stop "$agent_pid" baton-agent
agent_pid=""
stop "$server_pid" "baton serve"
server_pid=""

# --- 6. removal -------------------------------------------------------------------------------
t0=$EPOCHREALTIME
dpkg_run "$work/dpkg-remove.log" -r baton-agent baton || die "dpkg -r failed: $(cat "$work/dpkg-remove.log")"
for f in /usr/bin/baton-agent /usr/bin/baton "${units[@]}" "$wants"; do
	if [ -e "$f" ] || [ -L "$f" ]; then
		die "$f is still there after dpkg -r"
	fi
done
[ "$(dpkg-query -W -f '${db:Status-Status}' baton-agent)" = config-files ] || die "baton-agent: want state config-files after dpkg -r"
[ -e /etc/baton/agent.json ] || die "dpkg -r removed the conffile (only a purge should)"
log "ok: dpkg -r removed the programs and units, disabled the unit, kept the config"
dpkg_run "$work/dpkg-purge.log" --purge baton-agent baton || die "dpkg --purge failed: $(cat "$work/dpkg-purge.log")"
installed=0
for p in baton-agent baton; do
	st=$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null || true)
	[ -z "$st" ] || [ "$st" = not-installed ] || die "$p: state $st after purge"
done
while read -r _ _ _ path; do
	[ ! -e "$path" ] || die "$path is still there after dpkg --purge"
done < <(expected baton-agent; expected baton)
log "ok: dpkg --purge left nothing (credential, cache and spool included)"
timings+=("remove $(since "$t0") s")

log "timings: $(printf '%s, ' "${timings[@]}" | sed 's/, $//')"
log "ok"
