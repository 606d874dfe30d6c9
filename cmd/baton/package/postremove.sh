#!/bin/sh
# baton package: after removal. A purge (deb) also deletes the server's data (database, TLS
# key, admin token); a plain remove keeps it.
set -e
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
	rm -rf /var/lib/baton /var/lib/private/baton
	rm -f /etc/default/baton
fi
exit 0
