#!/bin/sh
# The test VM's first process in its real root (tests/vm/init hands over here): mounts
# what a Debian host has mounted at boot, runs the command run.sh was given (/run/cmd) with
# its output on the console, and powers the VM off with the command's exit status on the
# last line, "VM-EXIT N".
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mkdir -p /run/lock
# /tmp: a tmpfs of its own (an overlay cannot have its upper directory on the root's
# overlay), with the directories run.sh names in /run/keep.list carried over (a clone of the
# repository in /tmp, a build directory there): made aside, then moved onto /tmp whole.
mkdir -p /run/tmp
mount -t tmpfs -o mode=1777 tmpfs /run/tmp
while read -r d; do
	mkdir -p "/run/tmp${d#/tmp}"
	mount --bind "$d" "/run/tmp${d#/tmp}"
done </run/keep.list
mount --move /run/tmp /tmp
# cgroup v2 where Debian 12's systemd puts it; bpffs as systemd mounts it.
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
echo "+cpu +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
ip link set lo up
hostname airlock-vm
export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
echo VM-START
rc=0
bash /run/cmd </dev/null || rc=$?
sync
echo "VM-EXIT $rc"
# busybox's poweroff -f: the reboot call itself, which does not return (a command run after
# the sysrq's power-off can fail on the shares going away, and PID 1's exit is a panic).
exec /run/busybox poweroff -f
