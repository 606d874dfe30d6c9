#!/bin/sh
# baton package: after install or upgrade (deb: configure [OLD-VERSION]; rpm: 1 or 2). The
# server is not enabled here (most installs want only the CLI); an enabled one is restarted
# on upgrade.
set -e
case "$1" in
configure | 1 | 2) ;;
*) exit 0 ;;
esac
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
	systemctl try-restart baton.service || true
fi
exit 0
