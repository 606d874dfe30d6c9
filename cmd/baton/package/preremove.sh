#!/bin/sh
# baton package: before removal (deb: remove|upgrade|...; rpm: 0 = erase, 1 = upgrade).
set -e
case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
if command -v systemctl >/dev/null 2>&1; then
	if [ -d /run/systemd/system ]; then
		systemctl stop baton.service || true
	fi
	systemctl disable baton.service >/dev/null 2>&1 || true
fi
exit 0
