#!/bin/sh
# baton-agent package: after removal (deb: remove|purge|upgrade|...; rpm: 0 = erase,
# 1 = upgrade). A purge also deletes the node's credential (its private key), the task cache
# and the result spool; a plain remove keeps them, as Debian does with a package's data.
set -e
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
	rm -rf /var/cache/baton-agent /var/lib/baton-agent
	rm -f /etc/baton/agent.cred /etc/default/baton-agent
	rmdir /etc/baton 2>/dev/null || true
fi
exit 0
