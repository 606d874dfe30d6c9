#!/bin/sh
# baton-agent package: after install or upgrade (deb: configure [OLD-VERSION]; rpm: 1 or 2).
set -e
case "$1" in
configure) if [ -n "$2" ]; then upgrade=1; else upgrade=0; fi ;;
1) upgrade=0 ;;
2) upgrade=1 ;;
*) exit 0 ;;
esac
# The files are private to root whatever was there before the package.
chmod 0700 /etc/baton /var/cache/baton-agent /var/lib/baton-agent /var/lib/baton-agent/spool
[ ! -e /etc/baton/agent.cred ] || chmod 0600 /etc/baton/agent.cred
if command -v systemctl >/dev/null 2>&1; then
	# enable works without a running systemd (it only makes the symlink).
	systemctl enable baton-agent.service >/dev/null 2>&1 || true
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
		if [ "$upgrade" = 1 ]; then
			# KillMode=process: running tasks go on under their supervisors.
			systemctl try-restart baton-agent.service || true
		else
			# Starts only once /etc/baton/agent.cred exists (ConditionPathExists).
			systemctl start baton-agent.service || true
		fi
	fi
fi
exit 0
