# shellcheck shell=bash
# Helpers shared by scripts/test-packages.sh and scripts/test-puppet-module.sh (sourced; the
# caller sets LOG_PREFIX, PKG_DIR and PKG_ARCH).

log() { printf '%s: %s\n' "$LOG_PREFIX" "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $st != Z* ]]
}

# stop PID NAME: SIGTERM, wait up to 30 s, then SIGKILL.
stop() {
	local pid=$1 deadline=$((SECONDS + 30))
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	while alive "$pid"; do
		if ((SECONDS >= deadline)); then
			log "$2 ($pid) still running 30 s after SIGTERM; SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	wait "$pid" 2>/dev/null || true
}
