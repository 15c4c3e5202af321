#!/usr/bin/env bash
# `make run`: start airlockd in the foreground with /etc/airlock/airlock.conf or the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "make run: airlockd loads BPF programs and needs root (try: sudo make run)" >&2
	exit 1
fi
conf=()
[ -n "${AIRLOCK_CONF:-}" ] && conf=(-c "$AIRLOCK_CONF")
echo "Starting airlockd; Ctrl-C stops it (pinned cgroups stay fenced; \`build/airlockctl down\` removes the pins)."
echo "In another terminal: build/airlockctl pin /path/of/agent.cgroup ; build/airlockctl status"
exec ./build/airlockd "${conf[@]}"
