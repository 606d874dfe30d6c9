#!/bin/sh
# demo::sysinfo: prints kernel name/release/machine and uptime as a JSON object.
set -eu

json_str() {
  printf '%s' "$1" | tr -d '\000-\010\011\013-\037' |
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' |
    awk 'NR > 1 { printf "%s", "\\n" } { printf "%s", $0 }'
}

uptime_seconds=null
if [ -r /proc/uptime ]; then
  s=$(cut -d. -f1 /proc/uptime | cut -d' ' -f1)
  case "$s" in
    '' | *[!0-9]*) ;;
    *) uptime_seconds=$s ;;
  esac
fi
uptime_text=""
if command -v uptime >/dev/null 2>&1; then
  uptime_text=$(uptime 2>/dev/null || true)
fi

printf '{"node":"%s","kernel":"%s","kernel_release":"%s","machine":"%s","uptime_seconds":%s,"uptime":"%s"}\n' \
  "$(json_str "$(uname -n)")" "$(json_str "$(uname -s)")" "$(json_str "$(uname -r)")" \
  "$(json_str "$(uname -m)")" "$uptime_seconds" "$(json_str "$uptime_text")"
