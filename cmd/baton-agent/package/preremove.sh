#!/bin/sh
# baton-agent package: before removal (deb: remove|upgrade|deconfigure|failed-upgrade;
# rpm: 0 = erase, 1 = upgrade). Stops and disables the agent only when the package goes away.
set -e
case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
if command -v systemctl >/dev/null 2>&1; then
	if [ -d /run/systemd/system ]; then
		systemctl stop baton-agent.service || true
	fi
	systemctl disable baton-agent.service >/dev/null 2>&1 || true
fi
exit 0
