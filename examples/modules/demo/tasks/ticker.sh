#!/bin/sh
# demo::ticker: prints "tick N of M" every PT_interval_ms milliseconds (default 1000), PT_lines
# times (default 35); every fifth line also goes to stderr. It ends with a JSON summary.
set -eu
lines=${PT_lines:-35}
interval_ms=${PT_interval_ms:-1000}
case "$lines$interval_ms" in
  *[!0-9]*)
    echo "demo::ticker: lines and interval_ms must be integers" >&2
    exit 2
    ;;
esac
pause=$(printf '%d.%03d' $((interval_ms / 1000)) $((interval_ms % 1000)))
i=1
while [ "$i" -le "$lines" ]; do
  echo "tick $i of $lines"
  if [ $((i % 5)) -eq 0 ]; then
    echo "tick $i: a fifth line, on stderr" >&2
  fi
  if [ "$i" -lt "$lines" ]; then
    sleep "$pause"
  fi
  i=$((i + 1))
done
printf '{"ticks":%s,"interval_ms":%s}\n' "$lines" "$interval_ms"
