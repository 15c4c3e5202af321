#!/usr/bin/env bash
# Runs a command on Debian 12's own kernel: boots a VM from the kernel package Debian
# ships (linux-image-amd64's, 6.1), whose root is the host's / read-only under a tmpfs
# layer, runs the command there as root from the repository, and exits with its status.
# What the command prints comes out here.
#
#   tests/vm/run.sh [-t SECONDS] CMD...    e.g. tests/vm/run.sh python3 tests/integration/test_steer.py
#
# The VM has no network device (nothing it does leaves it) and writes nothing to the host
# but the kernel package's cache. It boots with KVM where the CPU offers it, else under
# QEMU's emulator (slower; this machine's case). Needs qemu-system-x86, busybox-static and
# kmod (scripts/deps.sh), and apt's lists for the first download of the kernel package.
#
# Knobs (environment):
#   AIRLOCK_VM_KERNEL   the package to boot (default: the one linux-image-amd64 depends on)
#   AIRLOCK_VM_CACHE    where it is kept, unpacked (/var/cache/airlock-vm)
#   AIRLOCK_VM_ACCEL    kvm or tcg (default: kvm when /proc/cpuinfo has vmx or svm and
#                       /dev/kvm is there, else tcg)
#   AIRLOCK_VM_MEM      MiB of memory (2048); AIRLOCK_VM_CPUS (the host's CPUs, at most 4)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$REPO/tests/vm
limit=600
if [ "${1:-}" = -t ]; then
	limit=${2:-}
	shift 2
fi
case "$limit" in '' | *[!0-9]*) echo "$0: -t takes seconds" >&2; exit 2 ;; esac
[ $# -gt 0 ] || { echo "usage: $0 [-t SECONDS] CMD..." >&2; exit 2; }

die() {
	echo "vm: $*" >&2
	exit 125
}
for c in qemu-system-x86_64 busybox depmod dpkg-deb apt-get; do
	command -v "$c" >/dev/null || die "$c is missing (scripts/deps.sh installs qemu-system-x86, busybox-static, kmod)"
done
busybox --list | grep -qx switch_root || die "busybox has no switch_root"

# ---- the kernel package, downloaded once and unpacked ----
CACHE=${AIRLOCK_VM_CACHE:-/var/cache/airlock-vm}
kernel_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}
pkg=${AIRLOCK_VM_KERNEL:-$(kernel_pkg)}
if [ -z "$pkg" ]; then
	# a machine whose apt lists are gone (a fresh image with everything else installed)
	apt-get update -qq >/dev/null 2>&1 || true
	pkg=$(kernel_pkg)
fi
[ -n "$pkg" ] || die "apt knows no linux-image-amd64 (apt-get update failed?)"
mkdir -p "$CACHE"
root=$CACHE/$pkg
if [ ! -e "$root/.unpacked" ]; then
	dl=$(mktemp -d "$CACHE/dl.XXXXXX")
	# apt's sandbox user cannot write here: download as root, quietly. Lists older than the
	# archive name a package it no longer has: once more after an update.
	fetch() { (cd "$dl" && apt-get download -o APT::Sandbox::User=root "$pkg" >/dev/null 2>&1); }
	if ! fetch; then
		apt-get update -qq >/dev/null 2>&1 || true
		[ -n "${AIRLOCK_VM_KERNEL:-}" ] || pkg=$(kernel_pkg)
		root=$CACHE/$pkg
		fetch || { rm -rf "$dl"; die "cannot download the kernel package $pkg"; }
	fi
	rm -rf "$root"
	dpkg-deb -x "$dl"/*.deb "$root" || { rm -rf "$dl" "$root"; die "cannot unpack $pkg"; }
	rm -rf "$dl"
	kver=$(ls "$root/lib/modules")
	depmod -b "$root" "$kver" || die "depmod failed for $kver"
	touch "$root/.unpacked"
fi
kver=$(ls "$root/lib/modules")
vmlinuz=$root/boot/vmlinuz-$kver
[ -r "$vmlinuz" ] || die "$pkg has no $vmlinuz"

# ---- the initramfs: busybox, the modules that reach the host's files, init ----
work=$(mktemp -d /tmp/airlock-vm.XXXXXX)
qpid=
# shellcheck disable=SC2317 # run by the trap
cleanup() {
	[ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
ird=$work/initrd
mkdir -p "$ird/bin" "$ird/modules" "$ird/proc" "$ird/sys" "$ird/dev" "$ird/new"
cp "$(command -v busybox)" "$ird/bin/busybox"
# (ldd fails on a static executable)
! ldd "$ird/bin/busybox" >/dev/null 2>&1 || die "busybox is not static (install busybox-static)"
# Each module after those it needs (modules.dep), once.
declare -A seen=()
order=()
add_mod() {
	local rel deps d
	rel=$(awk -F: -v m="/$1.ko" '{ i = index($1, m) } i > 0 && i == length($1) - length(m) + 1 { print; exit }' \
		"$root/lib/modules/$kver/modules.dep")
	[ -n "$rel" ] || return 0 # built in
	deps=${rel#*:}
	rel=${rel%%:*}
	for d in $deps; do
		d=${d##*/}
		add_mod "${d%.ko*}"
	done
	[ -z "${seen[$rel]:-}" ] || return 0
	seen[$rel]=1
	case "$rel" in
	*.ko) cp "$root/lib/modules/$kver/$rel" "$ird/modules/" ;;
	*.ko.xz) xz -dc "$root/lib/modules/$kver/$rel" >"$ird/modules/$(basename "$rel" .xz)" ;;
	*) die "unknown module file $rel" ;;
	esac
	order+=("$(basename "${rel%.xz}" .ko)")
}
for m in virtio_pci 9pnet_virtio 9p overlay; do
	add_mod "$m"
done
printf '%s\n' "${order[@]}" >"$ird/modules/order"
cp "$HERE/init" "$ird/init"
cp "$HERE/guest.sh" "$ird/guest.sh"
chmod 0755 "$ird/init"
# What the guest mounts (TAG DIR) and runs.
# The host's / (everything a test may use: /usr, /etc, dpkg's and apt's state, this
# repository and its build wherever they are), and the kernel package's modules.
tags=(root mods)
paths=(/ "$root/lib/modules/$kver")
dirs=(/ "/usr/lib/modules/$kver")
for i in "${!tags[@]}"; do
	printf '%s %s\n' "${tags[$i]}" "${dirs[$i]}"
done >"$ird/shares"
# The guest's /tmp is a tmpfs: what the command needs from the host's comes along.
for d in "$REPO" "${AIRLOCK_BUILD:-}"; do
	[ -n "$d" ] || continue
	d=$(cd "$d" && pwd -P) || die "no directory $d"
	case "$d" in /tmp/*) echo "$d" ;; esac
done >"$ird/keep.list"
{
	printf 'cd %q || exit 125\n' "$REPO"
	# The suites' own knobs go along (AIRLOCK_BUILD, AIRLOCK_DAEMON_WRAP, ...).
	while IFS= read -r v; do
		case "$v" in AIRLOCK_VM_*) ;; *) printf 'export %s=%q\n' "$v" "${!v}" ;; esac
	done < <(compgen -e | grep '^AIRLOCK_' || true)
	printf '%q ' "$@"
	echo
} >"$ird/cmd"
(cd "$ird" && find . | busybox cpio -o -H newc 2>/dev/null) | gzip -1 >"$work/initrd.gz"

# ---- the VM ----
accel=${AIRLOCK_VM_ACCEL:-}
if [ -z "$accel" ]; then
	accel=tcg
	if [ -c /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
		accel=kvm
	fi
fi
# shellcheck disable=SC2054 # "tcg,thread=multi" is one argument
case "$accel" in
kvm) accel_args=(-accel kvm -cpu host) ;;
tcg) accel_args=(-accel tcg,thread=multi -cpu max) ;;
*) die "AIRLOCK_VM_ACCEL is kvm or tcg" ;;
esac
cpus=${AIRLOCK_VM_CPUS:-$(nproc)}
[ "$cpus" -le 4 ] || cpus=4
virtfs=()
for i in "${!tags[@]}"; do
	virtfs+=(-virtfs "local,path=${paths[$i]},mount_tag=${tags[$i]},security_model=none,readonly=on,multidevs=remap")
done
out=$work/console
qemu-system-x86_64 -nodefaults -no-user-config -nographic -no-reboot -serial stdio -monitor none \
	"${accel_args[@]}" -m "${AIRLOCK_VM_MEM:-2048}" -smp "$cpus" -nic none \
	-kernel "$vmlinuz" -initrd "$work/initrd.gz" \
	-append "console=ttyS0 quiet loglevel=3 panic=-1 oops=panic" \
	"${virtfs[@]}" </dev/null >"$out" 2>&1 &
qpid=$!
# The console as it comes, from the guest's start line (before it: the firmware's screen
# codes), without the terminal's carriage returns and the start and exit lines.
tail -n +1 -f --pid="$qpid" "$out" 2>/dev/null |
	awk '{ gsub(/\r/, "") } /VM-START$/ { on = 1; next } /^VM-EXIT / || / (sysrq: Power Off|reboot: Power down)$/ { next }
	     on || /^vm-init: / { print; fflush() }' &
tpid=$!
rc=
for ((t = 0; t < limit * 10; t++)); do
	kill -0 "$qpid" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$qpid" 2>/dev/null; then
	kill "$qpid" 2>/dev/null || true
	echo "vm: no end after ${limit}s; stopped the VM" >&2
fi
wait "$qpid" 2>/dev/null || true
qpid=
wait "$tpid" 2>/dev/null || true
rc=$(tr -d '\r' <"$out" | awk '$1 == "VM-EXIT" { r = $2 } END { print r }')
[ -n "$rc" ] || die "the VM ended without the command's status (kernel panic or timeout: see above)"
exit "$rc"
