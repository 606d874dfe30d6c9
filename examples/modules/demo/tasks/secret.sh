#!/bin/sh
# demo::secret: prints {"password_length":N} and never the password itself.
set -eu

if [ -z "${PT_password:-}" ]; then
  echo "demo::secret: password is required" >&2
  exit 1
fi
printf '{"password_length":%d}\n' "${#PT_password}"
