#!/bin/sh
# demo::fail: exits 3 with a message on stderr (to show how failures are reported).
echo "demo::fail: failing on purpose with exit code 3" >&2
exit 3
