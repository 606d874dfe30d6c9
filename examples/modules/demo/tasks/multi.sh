#!/bin/sh
# demo::multi: sources demo/files/lib.sh from the task's install directory (_installdir).
set -eu

if [ -z "${PT__installdir:-}" ]; then
  echo "demo::multi: _installdir is not set (this task needs its extra files)" >&2
  exit 1
fi
. "$PT__installdir/demo/files/lib.sh"

printf '{"message":"%s","library":"%s","node":"%s"}\n' \
  "$(json_str "${PT_message:-no message}")" "$(json_str "$(lib_version)")" "$(json_str "$(uname -n)")"
