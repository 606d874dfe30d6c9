#!/bin/sh
# demo::sleep: sleeps PT_seconds seconds and prints {"slept":N,"noop":false}; with _noop it
# does not sleep and prints {"slept":0,"noop":true,"would_sleep":N}.
# Input method "both": uses PT_ variables, else parses the JSON on stdin.
set -eu

seconds=${PT_seconds:-}
noop=${PT__noop:-}
if [ -z "$seconds" ] && [ ! -t 0 ]; then
  input=$(cat | tr -d '\n\r\t ')
  seconds=$(printf '%s' "$input" | sed -n 's/.*"seconds":\([0-9][0-9]*\).*/\1/p')
  noop=$(printf '%s' "$input" | sed -n 's/.*"_noop":\([a-z]*\).*/\1/p')
fi
case "$seconds" in
  '' | *[!0-9]*)
    echo "demo::sleep: seconds must be an integer between 0 and 3600, got '$seconds'" >&2
    exit 2
    ;;
esac
if [ "$seconds" -gt 3600 ]; then
  echo "demo::sleep: seconds must be at most 3600, got $seconds" >&2
  exit 2
fi
if [ "$noop" = "true" ]; then
  printf '{"slept":0,"noop":true,"would_sleep":%s}\n' "$seconds"
  exit 0
fi
sleep "$seconds"
printf '{"slept":%s,"noop":false}\n' "$seconds"
