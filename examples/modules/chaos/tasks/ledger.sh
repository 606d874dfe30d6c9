#!/bin/sh
# chaos::ledger: the chaos suite's witness task (cmd/baton-chaos). It appends
# "<node> <run_id>" to <ledger_dir>/<node>.started when it starts and, after sleeping
# PT_sleep seconds, to <ledger_dir>/<node>.ledger, then prints {"node":..,"run_id":..} and exits
# PT_exit_code. Both appends are single short writes with O_APPEND (>>), so lines from runs at
# once never interleave: a line in the ledger means the run completed, two lines mean it ran twice.
set -eu

dir=${PT_ledger_dir:?chaos::ledger: ledger_dir is required}
run=${PT_run_id:?chaos::ledger: run_id is required}
node=${PT_node:-${BATON_AGENT_NAME:-$(hostname)}}
pause=${PT_sleep:-0}
code=${PT_exit_code:-0}
case "$run$node" in
  *[!A-Za-z0-9_.-]*)
    echo "chaos::ledger: run_id and node may hold only letters, digits, '_', '.' and '-'" >&2
    exit 2
    ;;
esac

mkdir -p "$dir"
echo "$node $run" >>"$dir/$node.started"
sleep "$pause"
echo "$node $run" >>"$dir/$node.ledger"
printf '{"node":"%s","run_id":"%s"}\n' "$node" "$run"
exit "$code"
