# shellcheck shell=bash
# Helpers shared by the root-run test scripts (test-packages, test-puppet-module,
# test-puppetserver, test-puppetdb); sourced. The caller sets LOG_PREFIX, and STOP_TIMEOUT
# (seconds stop waits after SIGTERM; default 30) where its daemons need longer.

log() { printf '%s: %s\n' "$LOG_PREFIX" "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}
# since T0: seconds elapsed since EPOCHREALTIME T0, one decimal.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
# alive PID: the process exists and is not a zombie.
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $st != Z* ]]
}

# stop PID NAME: SIGTERM, wait up to STOP_TIMEOUT seconds, then SIGKILL (by PID).
stop() {
	local pid=$1 timeout=${STOP_TIMEOUT:-30}
	local deadline=$((SECONDS + timeout))
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	while alive "$pid"; do
		if ((SECONDS >= deadline)); then
			log "$2 ($pid) still running ${timeout}s after SIGTERM; SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	wait "$pid" 2>/dev/null || true
}
