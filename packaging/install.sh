#!/bin/sh
# `make install`: airlockd, airlockctl, the systemd unit, the default configuration (kept if
# one is there) and the README, under DESTDIR. Usage: install.sh DESTDIR PREFIX BUILD
set -eu

dest=$1
prefix=$2
build=$3
cd "$(dirname "$0")/.."

for f in "$build/airlockd" "$build/airlockctl"; do
	[ -x "$f" ] || { echo "install.sh: $f is missing (make all)" >&2; exit 1; }
done
install -D -m 0755 "$build/airlockd" "$dest$prefix/sbin/airlockd"
install -D -m 0755 "$build/airlockctl" "$dest$prefix/bin/airlockctl"
install -D -m 0644 packaging/airlockd.service "$dest/lib/systemd/system/airlockd.service"
install -D -m 0644 README.md "$dest$prefix/share/doc/airlock/README.md"
install -d -m 0755 "$dest/etc/airlock/policy.d"
if [ -e "$dest/etc/airlock/airlock.conf" ]; then
	echo "install.sh: $dest/etc/airlock/airlock.conf is there: kept (the default is in $dest$prefix/share/doc/airlock)"
else
	install -m 0644 policy/airlock.conf "$dest/etc/airlock/airlock.conf"
fi
install -m 0644 policy/airlock.conf "$dest$prefix/share/doc/airlock/airlock.conf.default"
for f in policy/examples/*; do
	install -D -m 0644 "$f" "$dest$prefix/share/doc/airlock/examples/$(basename "$f")"
done
install -d -m 0700 "$dest/var/lib/airlock"
