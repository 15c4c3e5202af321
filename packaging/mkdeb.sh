#!/bin/sh
# `make deb`: BUILD/airlock_VERSION_ARCH.deb, built with dpkg-deb from what `make install`
# puts in place. Depends: the packages of the shared libraries the binaries use, as
# dpkg-shlibdeps reads them from Debian's shlibs and symbols files, plus what the
# maintainer scripts and `airlockctl ca install` run. Usage: mkdeb.sh BUILD [OUTDIR]
# (OUTDIR: where the .deb and its staging tree go; BUILD unless told). Prints the .deb's path.
set -eu

cd "$(dirname "$0")/.."
build=$(cd "${1:-build}" && pwd)
outdir=$(cd "${2:-$build}" && pwd)
ver=$(sed -n 's/^#define AL_VERSION "\(.*\)"$/\1/p' include/airlock/version.h)
arch=$(dpkg --print-architecture)
[ -n "$ver" ] || { echo "mkdeb.sh: no AL_VERSION in include/airlock/version.h" >&2; exit 1; }
work=$outdir/deb
stage=$work/airlock
out=$outdir/airlock_${ver}_${arch}.deb

rm -rf "$work"
mkdir -p "$stage/DEBIAN" "$work/src/debian"
sh packaging/install.sh "$stage" /usr "$build" >/dev/null
rm -rf "$stage/var"     # /var/lib/airlock is made by postinst (0700), not shipped
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/sbin/airlockd" "$stage/usr/bin/airlockctl"


printf 'Source: airlock\n\nPackage: airlock\nArchitecture: any\n' >"$work/src/debian/control"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O -e"$stage/usr/sbin/airlockd" -e"$stage/usr/bin/airlockctl" 2>/dev/null |
	sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "mkdeb.sh: dpkg-shlibdeps found no libraries" >&2; exit 1; }

install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
echo /etc/airlock/airlock.conf >"$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: airlock
Version: $ver
Architecture: $arch
Maintainer: Airlock developers <airlock@localhost>
Installed-Size: $size
Depends: $shlibs, ca-certificates, init-system-helpers
Section: admin
Priority: optional
Description: human checkpoint between AI agents and production systems
 airlockd steers the TCP of pinned agent cgroups into itself with eBPF,
 terminates PostgreSQL and TLS/HTTP sessions, parses every command, and lets
 policy allow, deny or hold it for a reviewer's approval in its web console or
 airlockctl. Every request, decision and outcome goes to a hash-chained audit
 store, and sessions can be replayed.
CONTROL
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
	xargs md5sum) >"$stage/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out"
