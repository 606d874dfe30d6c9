#!/bin/sh
# demo::hello: prints {"greeting":"hello <name>","node":"<hostname>"}.
# Input: PT_name (default "world"), PT_loud ("true" to shout).
set -eu

json_str() {
  # JSON string body of $1: drops control characters except newline, escapes \ and ".
  printf '%s' "$1" | tr -d '\000-\010\011\013-\037' |
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' |
    awk 'NR > 1 { printf "%s", "\\n" } { printf "%s", $0 }'
}

greeting="hello ${PT_name:-world}"
if [ "${PT_loud:-false}" = "true" ]; then
  greeting=$(printf '%s' "$greeting" | tr '[:lower:]' '[:upper:]')
fi
printf '{"greeting":"%s","node":"%s"}\n' "$(json_str "$greeting")" "$(json_str "$(uname -n)")"
