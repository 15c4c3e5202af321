"""The Debian package (make deb): what it holds and needs, a dpkg install, remove and purge
into a scratch root, its systemd unit (also under a real systemd, booted in a container on an
overlay of this host), the unit's capabilities, and its own airlockd and airlockctl steering a
pinned agent.

Run as root with /usr/bin/python3. Prints `ok - NAME` / `not ok - NAME: why` per case and exits
1 if any failed. The package is built in a temp dir and installed only into a scratch root
(dpkg --root with chrootless maintainer scripts, which then leave this host alone): nothing is
installed on the host. Everything it makes (temp dirs, cgroup, BPF pins, servers, daemon) is
removed on any exit.
"""

import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import check, note, wait_for  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CURL = "/usr/bin/curl"

# path -> mode of every file the package installs (directories aside).
FILES = {
    "etc/airlock/airlock.conf": 0o644,
    "lib/systemd/system/airlockd.service": 0o644,
    "usr/bin/airlockctl": 0o755,
    "usr/sbin/airlockd": 0o755,
    "usr/share/doc/airlock/README.md": 0o644,
    "usr/share/doc/airlock/airlock.conf.default": 0o644,
    "usr/share/doc/airlock/examples/https.conf": 0o644,
    "usr/share/doc/airlock/examples/postgres.conf": 0o644,
}


class T:
    tmp = deb = root = xroot = cg = al = srv = sdcg = None
    version = ""
    port = 0


def run(argv, timeout=60, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def field(name):
    r = run(["dpkg-deb", "--field", T.deb, name])
    check(r.returncode == 0, "dpkg-deb --field %s: %s" % (name, r.stderr.strip()))
    return r.stdout.strip()


def dpkg_root(*args):
    """dpkg on the scratch root, maintainer scripts run outside a chroot with DPKG_ROOT set."""
    return run(["dpkg", "--root=" + T.root, "--force-script-chrootless", "--log=/dev/null"] + list(args),
               timeout=120)


def tree(root):
    """{relative path: mode} of the files under root, dpkg's own database aside."""
    out = {}
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel == os.path.join("var", "lib", "dpkg"):
            dirs[:] = []
            continue
        for f in files:
            p = os.path.join(d, f)
            out[os.path.normpath(os.path.join(rel, f))] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


def case_build():
    r = run(["sh", os.path.join(REPO, "packaging", "mkdeb.sh"), lib.BUILD, T.tmp], timeout=300)
    check(r.returncode == 0, "mkdeb.sh exited %d: %s" % (r.returncode, r.stderr.strip()[-500:]))
    T.deb = r.stdout.strip().splitlines()[-1]
    check(os.path.isfile(T.deb) and T.deb.startswith(T.tmp), "no package at %r" % T.deb)
    v = run([lib.AIRLOCKD, "-V"])
    T.version = v.stdout.split()[-1] if v.returncode == 0 else "?"
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    check(os.path.basename(T.deb) == "airlock_%s_%s.deb" % (T.version, arch), "package name %s" % T.deb)
    check(field("Package") == "airlock" and field("Version") == T.version and field("Architecture") == arch,
          "control: %s %s %s" % (field("Package"), field("Version"), field("Architecture")))
    note("%s: %d KiB" % (os.path.basename(T.deb), os.path.getsize(T.deb) // 1024))


def case_depends():
    deps = [d.strip().split()[0] for d in field("Depends").split(",")]
    for want in ("libbpf1", "libssl3", "libevent-core-2.1-7", "libsqlite3-0", "libmicrohttpd12",
                 "libnftnl11", "libmnl0", "libjansson4", "ca-certificates", "init-system-helpers"):
        check(want in deps, "Depends lacks %s: %r" % (want, deps))
    check(any(d.startswith("libpg-query") for d in deps), "Depends lacks libpg_query's package: %r" % deps)
    # Every one is a real package, and this machine (which built it) has them all: apt would
    # install the package and nothing else.
    r = run(["apt-get", "-s", "-q", "install", T.deb], timeout=120)
    inst = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("Inst ")]
    check(r.returncode == 0 and inst == ["airlock"], "apt-get -s install %s: %d, would install %r: %s"
          % (T.deb, r.returncode, inst, (r.stderr or r.stdout).strip()[-400:]))
    note("Depends: %s" % ", ".join(deps))


def case_contents():
    T.xroot = os.path.join(T.tmp, "extracted")
    r = run(["dpkg-deb", "-x", T.deb, T.xroot])
    check(r.returncode == 0, "dpkg-deb -x: %s" % r.stderr.strip())
    got = tree(T.xroot)
    check(got == FILES, "files: %r" % sorted(set(got.items()) ^ set(FILES.items())))
    r = run(["dpkg-deb", "--ctrl-tarfile", T.deb])
    check(r.returncode == 0, "no control tarball")
    ctrl = os.path.join(T.tmp, "control")
    r = run(["dpkg-deb", "-e", T.deb, ctrl])
    with open(os.path.join(ctrl, "conffiles")) as f:
        check(f.read().split() == ["/etc/airlock/airlock.conf"], "conffiles")
    for s in ("postinst", "prerm", "postrm"):
        check(os.access(os.path.join(ctrl, s), os.X_OK), "no executable %s" % s)
    with open(os.path.join(ctrl, "md5sums")) as f:
        sums = dict(reversed(ln.split(None, 1)) for ln in f.read().splitlines())
    for p in FILES:
        with open(os.path.join(T.xroot, p), "rb") as f:
            check(sums.get(p) == hashlib.md5(f.read()).hexdigest(), "md5sums for %s" % p)
    for a, b in (("etc/airlock/airlock.conf", "policy/airlock.conf"),
                 ("lib/systemd/system/airlockd.service", "packaging/airlockd.service")):
        with open(os.path.join(T.xroot, a), "rb") as f, open(os.path.join(REPO, b), "rb") as g:
            check(f.read() == g.read(), "%s is not %s" % (a, b))
    # Stripped: no symbol table left.
    for b in ("usr/sbin/airlockd", "usr/bin/airlockctl"):
        r = run(["readelf", "-S", os.path.join(T.xroot, b)])
        check(r.returncode == 0 and ".symtab" not in r.stdout, "%s is not stripped" % b)
    # The packaged binaries are this version, and their configuration check takes the shipped file.
    xd, xc = os.path.join(T.xroot, "usr/sbin/airlockd"), os.path.join(T.xroot, "usr/bin/airlockctl")
    check(run([xd, "-V"]).stdout.strip() == "airlockd " + T.version, "packaged airlockd -V")
    check(run([xc, "version"]).stdout.strip().startswith("airlockctl " + T.version), "packaged airlockctl version")
    r = run([xd, "-n", "-c", os.path.join(T.xroot, "etc/airlock/airlock.conf")])
    check(r.returncode == 0 and "is valid" in r.stdout, "packaged airlockd -n on the packaged config: %d %s %s"
          % (r.returncode, r.stdout.strip(), r.stderr.strip()))


def case_unit():
    if not os.access("/usr/bin/systemd-analyze", os.X_OK):
        check(False, "no systemd-analyze (Debian's systemd package)")
    # verify checks that ExecStart= and friends exist: point them at the extracted binaries.
    with open(os.path.join(T.xroot, "lib/systemd/system/airlockd.service")) as f:
        unit = f.read()
    check("ExecStart=/usr/sbin/airlockd\n" in unit and "ExecStartPre=/usr/sbin/airlockd -n\n" in unit and
          "Type=notify\n" in unit, "the unit does not run /usr/sbin/airlockd (Type=notify, a configuration check first)")
    path = os.path.join(T.tmp, "airlockd.service")
    with open(path, "w") as f:
        f.write(unit.replace("/usr/sbin/airlockd", os.path.join(T.xroot, "usr/sbin/airlockd")))
    r = run(["systemd-analyze", "verify", path])
    check(r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(),
          "systemd-analyze verify: %d %s" % (r.returncode, (r.stderr + r.stdout).strip()[-600:]))


def case_dpkg_cycle():
    T.root = os.path.join(T.tmp, "root")
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates"):
        os.makedirs(os.path.join(T.root, d))
    for f in ("status", "available"):
        open(os.path.join(T.root, "var/lib/dpkg", f), "w").close()
    host_before = {p: os.path.lexists(p) for p in ("/etc/airlock", "/usr/sbin/airlockd", "/lib/systemd/system/airlockd.service")}
    # The scratch root has no libraries' packages: only those dependencies are forced.
    r = dpkg_root("--force-depends", "-i", T.deb)
    check(r.returncode == 0, "dpkg -i: %d %s" % (r.returncode, r.stderr.strip()[-600:]))
    got = tree(T.root)
    check(got == FILES, "installed files: %r" % sorted(set(got.items()) ^ set(FILES.items())))
    st = os.stat(os.path.join(T.root, "var/lib/airlock"))
    check(stat.S_IMODE(st.st_mode) == 0o700, "/var/lib/airlock mode %o" % stat.S_IMODE(st.st_mode))
    check(os.path.isdir(os.path.join(T.root, "etc/airlock/policy.d")), "no /etc/airlock/policy.d")
    r = dpkg_root("-s", "airlock")
    check("Status: install ok installed" in r.stdout, "dpkg -s: %s" % r.stdout.strip()[-300:])
    # An edited conffile survives a remove; a purge takes it, and the Airlock CA with it; an
    # audit store stays.
    conf = os.path.join(T.root, "etc/airlock/airlock.conf")
    with open(conf, "a") as f:
        f.write("# edited by the operator\n")
    os.makedirs(os.path.join(T.root, "var/lib/airlock/ca"))
    for f in ("var/lib/airlock/ca/ca.key", "var/lib/airlock/airlock.db"):
        with open(os.path.join(T.root, f), "w") as fh:
            fh.write("x")
    r = dpkg_root("-r", "airlock")
    check(r.returncode == 0, "dpkg -r: %d %s" % (r.returncode, r.stderr.strip()[-600:]))
    left = tree(T.root)
    check(set(left) == {"etc/airlock/airlock.conf", "var/lib/airlock/ca/ca.key", "var/lib/airlock/airlock.db"},
          "after remove: %r" % sorted(left))
    with open(conf) as f:
        check(f.read().endswith("# edited by the operator\n"), "the edited conffile was not kept")
    r = dpkg_root("--purge", "airlock")
    check(r.returncode == 0, "dpkg --purge: %d %s" % (r.returncode, r.stderr.strip()[-600:]))
    check(set(tree(T.root)) == {"var/lib/airlock/airlock.db"}, "after purge: %r" % sorted(tree(T.root)))
    check("audit store stays in /var/lib/airlock" in r.stdout, "purge did not say the store stays: %r" % r.stdout)
    check(not os.path.exists(os.path.join(T.root, "etc/airlock")), "/etc/airlock left after purge")
    check({p: os.path.lexists(p) for p in host_before} == host_before, "the host changed: %r" % host_before)


# Runs in a chroot on an overlay of this host's root, in mount and network namespaces of its
# own: apt, dpkg and the maintainer scripts see a whole Debian system, and everything they write
# lands in the overlay's upper directory (the network namespace keeps any nftables change away
# from the host's; a fresh bpffs instance stands in for /sys/fs/bpf). Prints "== STEP rc" lines.
OVERLAY_SCRIPT = r"""
set -u
W=$1
DEB=$2
mount -t overlay overlay -o "lowerdir=/,upperdir=$W/u,workdir=$W/w" "$W/m" || exit 90
mount -t proc proc "$W/m/proc"
mount -t sysfs sys "$W/m/sys"
mount -t bpf bpf "$W/m/sys/fs/bpf"
mount --bind /dev "$W/m/dev"
mount -t devpts devpts "$W/m/dev/pts" -o newinstance,ptmxmode=0666 2>/dev/null || true
mount -t tmpfs tmpfs "$W/m/run"
mount -t tmpfs tmpfs "$W/m/tmp"
cp "$DEB" "$W/m/tmp/airlock.deb"
step() {
	name=$1
	shift
	chroot "$W/m" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"
	echo "== $name $?"
}
rm -rf "$W/m/var/lib/airlock" "$W/m/etc/airlock"
step install apt-get install -y -q --no-install-recommends /tmp/airlock.deb
step version /usr/sbin/airlockd -V
step check /usr/sbin/airlockd -n
step ctl /usr/bin/airlockctl version
step state stat -c '%a %U' /var/lib/airlock
step enabled test -L /etc/systemd/system/multi-user.target.wants/airlockd.service
mkdir -p "$W/m/var/lib/airlock/ca"
echo x >"$W/m/var/lib/airlock/ca/ca.key"
echo x >"$W/m/var/lib/airlock/airlock.db"
echo '# edited' >>"$W/m/etc/airlock/airlock.conf"
step remove apt-get remove -y -q airlock
step kept grep -q '^# edited' /etc/airlock/airlock.conf
step gone test ! -e /usr/sbin/airlockd
step purge apt-get purge -y -q airlock
step noconf test ! -e /etc/airlock
step noca test ! -e /var/lib/airlock/ca
step store test -e /var/lib/airlock/airlock.db
step disabled test ! -e /etc/systemd/system/multi-user.target.wants/airlockd.service
"""


def case_apt_cycle():
    """apt install, remove and purge as an operator runs them, in a chroot on an overlay of this
    host (nothing reaches the host)."""
    w = os.path.join(T.tmp, "overlay")
    for d in ("u", "w", "m"):
        os.makedirs(os.path.join(w, d))
    host_before = {p: os.path.lexists(p) for p in ("/etc/airlock", "/usr/sbin/airlockd",
                                                    "/etc/systemd/system/multi-user.target.wants/airlockd.service")}
    r = run(["unshare", "--mount", "--net", "--propagation", "private", "bash", "-c", OVERLAY_SCRIPT, "overlay",
             w, T.deb], timeout=300)
    steps = dict(ln[3:].rsplit(" ", 1) for ln in r.stdout.splitlines() if ln.startswith("== "))
    check(r.returncode == 0 and steps, "the overlay chroot did not run: %d %s" % (r.returncode, r.stderr.strip()[-500:]))
    want = ["install", "version", "check", "ctl", "state", "enabled", "remove", "kept", "gone", "purge", "noconf",
            "noca", "store", "disabled"]
    bad = [k for k in want if steps.get(k) != "0"]
    check(not bad, "failed steps %r: %s" % (bad, (r.stdout + r.stderr).strip()[-1500:]))
    check("airlockd " + T.version in r.stdout and "700 root" in r.stdout,
          "install: version or state directory: %s" % r.stdout.strip()[-800:])
    check("removed every pin under /sys/fs/bpf/airlock" in r.stdout,
          "remove did not release the pins: %s" % r.stdout.strip()[-800:])
    check({p: os.path.lexists(p) for p in host_before} == host_before, "the host changed: %r" % host_before)


def case_packaged_daemon():
    """The packaged binaries (not the build tree's) on a test configuration: a pinned agent's curl
    goes through airlockd, and the packaged airlockctl lists its connection."""
    xd, xc = os.path.join(T.xroot, "usr/sbin/airlockd"), os.path.join(T.xroot, "usr/bin/airlockctl")
    body = ("airlock-package-%s\n" % lib.RUN_ID).encode()
    T.port = lib.free_port(("127.0.0.2",))
    T.srv = lib.start_http_server("127.0.0.2", T.port, body)
    T.cg = lib.TestCgroup("-pkg")
    T.al = lib.Airlock(T.tmp, [("web", ["127.0.0.2"], [T.port])], binaries=(xd, xc))
    # Type=notify: the daemon says READY=1 to $NOTIFY_SOCKET (here a socket of the test's where
    # systemd's is /run/systemd/notify) once the control socket answers.
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    lib.on_cleanup(notify.close)
    path = os.path.join(T.tmp, "notify.sock")
    notify.bind(path)
    notify.settimeout(15)
    banner = T.al.start(env={"NOTIFY_SOCKET": path})
    check("airlockd %s ready" % T.version in banner, "banner: %r" % banner)
    msg = notify.recv(4096).decode()
    st = T.al.ctl("status", "--json")
    check(st.returncode == 0 and json.loads(st.stdout).get("exe_recorded") is True and
          "not recorded" not in T.al.ctl("status").stdout, "status with the unit's capabilities: %s" % st.stdout)
    check(msg.startswith("READY=1\nSTATUS=steering to port %d, 0 pinned cgroups" % T.al.steer_port) and
          st.returncode == 0, "sd_notify at start: %r; status then: %s" % (msg, st.stderr.strip()))
    r = T.al.ctl("pin", T.cg.path)
    check(r.returncode == 0, "pin: %s" % r.stderr.strip())
    acc = T.srv.accepted
    r = T.cg.run([CURL, "-sS", "--noproxy", "*", "--max-time", "10", "http://127.0.0.2:%d/" % T.port],
                 timeout=30)
    check(r.returncode == 0 and r.stdout.encode() == body and T.srv.accepted == acc + 1,
          "curl in the cgroup: %d %r %s" % (r.returncode, r.stdout[:100], r.stderr.strip()))

    def row():
        r = T.al.ctl("connections", "--json")
        rows = json.loads(r.stdout) if r.returncode == 0 else []
        return [x for x in rows if x.get("resource") == "web" and x.get("reason") == "closed"
                and os.path.basename(x.get("exe") or "") == "curl"]
    rows = wait_for(row, 10, 0.1)
    check(len(rows) == 1 and rows[0]["cgroup_path"] == T.cg.rel and rows[0]["dst_port"] == T.port,
          "packaged airlockctl connections: %r" % rows)
    # A reload says RELOADING=1 then READY=1; a stop, STOPPING=1.
    T.al.proc.send_signal(signal.SIGHUP)
    msgs = [notify.recv(4096).decode() for _ in range(2)]
    check(msgs == ["RELOADING=1", "READY=1"], "sd_notify on SIGHUP: %r" % msgs)
    check(T.al.stop() == 0, "the packaged airlockd did not stop cleanly: %s" % T.al.log_tail(5))
    msg = notify.recv(4096).decode()
    check(msg == "STOPPING=1", "sd_notify on stop: %r" % msg)


def cap_mask(names):
    """The kernel's bit mask of capabilities named as setpriv names them (numbers from
    linux/capability.h)."""
    nums = {}
    with open("/usr/include/linux/capability.h") as f:
        for ln in f:
            w = ln.split()
            if len(w) == 3 and w[0] == "#define" and w[1].startswith("CAP_") and w[2].isdigit():
                nums[w[1][len("CAP_"):].lower()] = int(w[2])
    return sum(1 << nums[n] for n in names)


def case_caps():
    """Every suite runs airlockd with only the unit's capabilities (lib.DAEMON_WRAP): no
    dac_read_search (an agent in a cgroup under the pinned one still has its path recorded) and
    no sys_ptrace (the connect hook records the executable). With the hook's record turned off
    (AIRLOCKD_BPF_EXE=0, as on a kernel without it) it still steers, and says at start and in
    status that executables are not recorded."""
    caps = lib.unit_capabilities()
    check(caps and {"bpf", "perfmon", "net_admin"} <= set(caps) and
          not {"sys_admin", "sys_ptrace", "dac_read_search", "dac_override"} & set(caps),
          "the unit's CapabilityBoundingSet: %r" % caps)
    check(lib.DAEMON_WRAP == lib.bounding_set_wrap(caps) or "AIRLOCK_DAEMON_WRAP" in os.environ,
          "the suites' daemon wrapper: %r" % lib.DAEMON_WRAP)
    tmp = os.path.join(T.tmp, "caps")
    os.makedirs(tmp)
    cg = lib.TestCgroup("-caps")
    res = [("web", ["127.0.0.2"], [T.port])]
    al = lib.Airlock(tmp, res)
    al.pin_root += "-caps"
    al.write_conf(res)
    child = os.path.join(cg.path, "deeper", "agent")
    os.makedirs(child)

    def agent_row():
        acc = T.srv.accepted
        mark = max([x["id"] for x in json.loads(al.ctl("connections", "--json").stdout or "[]")] or [0])
        r = subprocess.run(["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', child, CURL, "-sS",
                            "--noproxy", "*", "--max-time", "10", "http://127.0.0.2:%d/" % T.port],
                           capture_output=True, text=True, timeout=30, env=lib.CLIENT_ENV)
        check(r.returncode == 0 and T.srv.accepted == acc + 1, "curl: %d %s" % (r.returncode, r.stderr.strip()))
        rows = wait_for(lambda: [x for x in json.loads(al.ctl("connections", "--json").stdout or "[]")
                                 if x["id"] > mark and x.get("reason") == "closed"], 10, 0.1)
        check(rows and len(rows) == 1 and rows[0]["comm"] == "curl" and
              rows[0]["cgroup_path"] == cg.rel + "/deeper/agent", "the agent's connection: %r" % rows)
        return rows[0]

    al.start()
    try:
        check(al.ctl("pin", cg.path).returncode == 0, "pin with the unit's capabilities")
        sj = json.loads(al.ctl("status", "--json").stdout or "{}")
        row = agent_row()
        check(row.get("exe") == CURL and sj.get("exe_by_kernel") is True and sj.get("exe_recorded") is True,
              "the executable with the unit's capabilities: %r; status %r" % (row.get("exe"), sj))
        check(al.stop() == 0, "stop")
        log_before = len(al.log_lines())
        al.start(env={"AIRLOCKD_BPF_EXE": "0"})
        log = "\n".join(al.log_lines()[log_before:])
        gap = "without CAP_SYS_PTRACE, /proc/PID/exe of an agent cannot be read"
        check(gap + ": agents' executables are not recorded" in log,
              "no warning about the missing capability: %s" % log[-600:])
        st = al.ctl("status")
        sj = json.loads(al.ctl("status", "--json").stdout or "{}")
        check("agents' executables are not recorded: " + gap in st.stdout and sj.get("exe_recorded") is False and
              sj.get("exe_by_kernel") is False and sj.get("exe_gap") == gap,
              "status without the hook's record and sys_ptrace: %s / %r" % (st.stdout, sj))
        row = agent_row()
        check(not row.get("exe"), "an executable without the hook's record and sys_ptrace: %r" % row.get("exe"))
    finally:
        al.down()


# Boots systemd as PID 1 of a container: new PID, mount, network, cgroup, IPC and UTS
# namespaces, its root (pivot_root) an overlay of this host's root (what it writes lands in the overlay's
# upper directory), its cgroup tree the test's cgroup (cgroup namespace), a fresh bpffs, a
# /dev of a few device nodes, /sys read-only (so no udev), and a boot target that starts
# nothing: what runs is what the test asks systemctl for.
SYSTEMD_BOOT = r"""
set -u
W=$1
M=$W/m
mount -t overlay overlay -o "lowerdir=/,upperdir=$W/u,workdir=$W/w" "$M" || exit 90
mount -t proc proc "$M/proc"
mount -t sysfs -o ro sys "$M/sys"
mount -t cgroup2 cgroup2 "$M/sys/fs/cgroup" || exit 91
mount -t bpf bpf "$M/sys/fs/bpf" || exit 92
mount -t tmpfs -o mode=755 tmpfs "$M/dev"
for d in null zero full random urandom tty; do
	touch "$M/dev/$d"
	mount --bind "/dev/$d" "$M/dev/$d"
done
mkdir "$M/dev/pts" "$M/dev/shm"
mount -t devpts devpts "$M/dev/pts" -o newinstance,ptmxmode=0666
ln -s pts/ptmx "$M/dev/ptmx"
mount -t tmpfs tmpfs "$M/dev/shm"
mount -t tmpfs tmpfs "$M/run"
mount -t tmpfs tmpfs "$M/tmp"
rm -rf "$M/var/lib/airlock" "$M/etc/airlock"
# A container image's policy-rc.d (Docker's refuses every service start) is not a Debian host's.
rm -f "$M/usr/sbin/policy-rc.d"
: >"$M/etc/machine-id"
mkdir -p "$M/etc/systemd/system"
printf '[Unit]\nDescription=airlock test boot\n' >"$M/etc/systemd/system/airlock-test.target"
# The overlay becomes the root of the mount namespace (as nspawn and Docker do), not a chroot.
cd "$M" && pivot_root . . && umount -l . && cd / || exit 93
exec env -i container=airlock-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	/lib/systemd/systemd --unit=airlock-test.target --show-status=no
"""


class Container:
    """systemd booted by SYSTEMD_BOOT in the cgroup cg; inside() runs a command in it."""

    def __init__(self, cg, work):
        for d in ("u", "w", "m"):
            os.makedirs(os.path.join(work, d))
        self.cg = cg
        self.log = open(os.path.join(work, "boot.log"), "wb")
        lib.on_cleanup(self.log.close)
        # The unshare process stays in cg itself, PID 1 (systemd) under it; cg's removal kills both.
        self.unshare = subprocess.Popen(cg.argv(["unshare", "--cgroup", "--mount", "--net", "--pid", "--fork",
                                                 "--uts", "--ipc", "--propagation", "private", "bash", "-c",
                                                 SYSTEMD_BOOT, "boot", work]),
                                        stdout=self.log, stderr=self.log, env=lib.CLIENT_ENV)
        lib.on_cleanup(cg.remove)

        def init():
            try:
                with open("/proc/%d/task/%d/children" % (self.unshare.pid, self.unshare.pid)) as f:
                    kids = f.read().split()
                with open("/proc/%s/comm" % kids[0]) as f:
                    return int(kids[0]) if f.read().strip() == "systemd" else None
            except (OSError, IndexError):
                return None
        self.pid = wait_for(init, 20, 0.1)
        check(self.pid, "systemd did not start in the container (exit %r)" % self.unshare.poll())
        state = wait_for(lambda: self.inside("systemctl", "is-system-running").stdout.strip()
                         in ("running", "degraded"), 30, 0.1)
        check(state, "systemd in the container is not running: %s" %
              self.inside("systemctl", "is-system-running").stdout.strip())

    def inside(self, *argv, input=None, timeout=120):
        """argv in the container's namespaces and root, as a process of its root cgroup (so it may
        move itself into a cgroup of the container's tree); output as text."""
        r = subprocess.run(self.cg.argv(["nsenter", "-t", str(self.pid), "-m", "-n", "-p", "-C", "-i", "-u", "-r",
                                         "-w", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                         "DEBIAN_FRONTEND=noninteractive"] + list(argv)),
                           input=input, capture_output=True, timeout=timeout)
        return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(errors="replace"),
                                           r.stderr.decode(errors="replace"))


AGENT_LOOP = """echo $$ > /sys/fs/cgroup/agent/cgroup.procs
while [ ! -e /tmp/agent.stop ]; do
    /usr/bin/curl -s -o /dev/null --max-time 5 -w '%{http_code}\\n' http://127.0.0.2:8081/
    sleep 0.05
done
echo end
"""


def make_next_version():
    """The package again as version VERSION+next (the same files): what an upgrade installs."""
    d = os.path.join(T.tmp, "next")
    r = run(["dpkg-deb", "-R", T.deb, d])
    check(r.returncode == 0, "dpkg-deb -R: %s" % r.stderr.strip())
    ctl = os.path.join(d, "DEBIAN", "control")
    with open(ctl) as f:
        text = f.read()
    with open(ctl, "w") as f:
        f.write(text.replace("Version: %s\n" % T.version, "Version: %s+next\n" % T.version))
    out = os.path.join(T.tmp, "airlock-next.deb")
    r = run(["dpkg-deb", "--root-owner-group", "-b", d, out], timeout=120)
    check(r.returncode == 0, "dpkg-deb -b: %s" % r.stderr.strip())
    return out


def case_systemd():
    """apt install under a real systemd (PID 1 of a container on an overlay of this host): the unit
    starts airlockd with its hardening, Type=notify and its STATUS=, reload, restart (pins
    re-adopted), an upgrade with an agent trying all along (steered or refused, never through
    unaudited), stop (the pinned agent is refused), and apt remove gives the agent its network
    back."""
    T.sdcg = lib.TestCgroup("-systemd")
    c = Container(T.sdcg, os.path.join(T.tmp, "systemd"))

    def ok(*argv, **kw):
        r = c.inside(*argv, **kw)
        check(r.returncode == 0, "%s: %d %s" % (" ".join(argv), r.returncode, (r.stdout + r.stderr).strip()[-800:]))
        return r.stdout

    def show(*props):
        out = ok("systemctl", "show", "airlockd", *["-p" + p for p in props])
        return dict(ln.split("=", 1) for ln in out.splitlines() if "=" in ln)

    def journal_tail():
        return c.inside("journalctl", "-u", "airlockd", "-o", "cat", "--no-pager", "-n", "12").stdout.strip()

    with open(T.deb, "rb") as f:
        ok("sh", "-c", "cat > /tmp/airlock.deb", input=f.read())
    ok("ip", "link", "set", "lo", "up")
    out = ok("apt-get", "install", "-y", "-q", "--no-install-recommends", "/tmp/airlock.deb")
    check("multi-user.target.wants/airlockd.service" in out, "install did not enable the unit: %s" % out[-800:])
    # The postinst started it; Type=notify: active only once airlockd said READY=1, with its STATUS=.
    p = show("ActiveState", "SubState", "Type", "MainPID", "StatusText", "NRestarts")
    check(p.get("ActiveState") == "active" and p.get("Type") == "notify" and
          p.get("StatusText", "").startswith("steering to port 907, 0 pinned cgroups, console http://127.0.0.1:8077/"),
          "airlockd.service after install: %r; journal: %s" % (p, journal_tail()))
    main_pid = p["MainPID"]
    # The unit's hardening is in force on the running daemon.
    st = ok("cat", "/proc/%s/status" % main_pid)
    check("NoNewPrivs:\t1" in st, "NoNewPrivs is not set on airlockd: %s" % st[-300:])
    bnd = [int(ln.split()[1], 16) for ln in st.splitlines() if ln.startswith("CapBnd:")]
    check(bnd == [cap_mask(lib.unit_capabilities())], "airlockd's bounding set: %r, want the unit's %r" %
          (bnd, lib.unit_capabilities()))
    # ProtectKernelTunables: /proc/sys and /sys read-only in its mount namespace, but pin_root.
    mi = {}
    for ln in ok("cat", "/proc/%s/mountinfo" % main_pid).splitlines():
        f = ln.split()
        mi[f[4]] = f[5].split(",")
    want = {"/proc/sys": "ro", "/sys": "ro", "/sys/fs/bpf": "ro", "/sys/fs/bpf/airlock": "rw"}
    check(all(m in mi.get(p, []) for p, m in want.items()), "airlockd's mounts: %r" %
          {p: mi.get(p) for p in want})
    journal = ok("journalctl", "-u", "airlockd", "-o", "cat", "--no-pager")
    check("airlockd %s ready" % T.version in journal and "store:   /var/lib/airlock/airlock.db" in journal,
          "the banner is not in the journal: %s" % journal[-800:])

    # An agent in a cgroup of the container's tree, pinned; a web server as a transient service.
    body = "airlock-systemd-%s\n" % lib.RUN_ID
    ok("mkdir", "-p", "/srv/www", "/sys/fs/cgroup/agent")
    ok("sh", "-c", "cat > /srv/www/index.html", input=body.encode())
    ok("systemd-run", "--unit=airlock-test-web", "--property=WorkingDirectory=/srv/www", "python3", "-m",
       "http.server", "--bind", "127.0.0.2", "8081")
    check(wait_for(lambda: c.inside(CURL, "-sf", "-o", "/dev/null", "http://127.0.0.2:8081/").returncode == 0,
                   10, 0.1), "the test web server did not start")
    check("pinned /agent" in ok("airlockctl", "pin", "/agent"), "pin /agent")

    def agent_curl():
        return c.inside("sh", "-c", 'echo $$ > /sys/fs/cgroup/agent/cgroup.procs && exec "$@"', "agent", CURL, "-sS",
                        "--max-time", "10", "http://127.0.0.2:8081/")

    def conns():
        return json.loads(ok("airlockctl", "connections", "--json"))

    r = agent_curl()
    check(r.returncode == 0 and r.stdout == body, "agent's curl: %d %r %s" % (r.returncode, r.stdout, r.stderr))
    rows = wait_for(lambda: [x for x in conns() if x.get("reason") == "closed"], 10, 0.1)
    check(len(rows) == 1 and rows[0]["cgroup_path"] == "/agent" and rows[0]["comm"] == "curl" and
          rows[0]["dst_port"] == 8081 and not rows[0].get("resource"),
          "the agent's connection (no resource names 127.0.0.2:8081 yet): %r" % rows)
    # The connect hook records the executable, so a daemon in a PID namespace of its own (where
    # the kernel's host pid names another process or none in its /proc), without
    # CAP_SYS_PTRACE, still has it right.
    sj = json.loads(ok("airlockctl", "status", "--json"))
    check(rows[0].get("exe") == "/usr/bin/curl" and sj.get("exe_by_kernel") is True and
          sj.get("exe_recorded") is True and "not recorded" not in journal,
          "exe in a PID namespace: %r; status %r; journal: %s" % (rows[0].get("exe"), sj, journal[-600:]))

    # The console answers a process of the container that is not an agent: the daemon finds the
    # caller's cgroup (the container's root, through its cgroup namespace) without
    # CAP_DAC_READ_SEARCH, by the tree.
    r = c.inside(CURL, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "http://127.0.0.1:8077/")
    check(r.stdout == "200", "the console from an unpinned process: %r %s; journal: %s" %
          (r.stdout, r.stderr, journal_tail()))

    # systemctl reload (ExecReload: SIGHUP) takes a new policy file.
    ok("sh", "-c", "cat > /etc/airlock/policy.d/web.conf",
       input=b'resource "sd-web" {\n\taddress 127.0.0.2\n\tport 8081\n\tprotocol tcp\n}\n')
    ok("systemctl", "reload", "airlockd")
    check(wait_for(lambda: "configuration reloaded" in ok("journalctl", "-u", "airlockd", "-o", "cat", "--no-pager"),
                   10, 0.1), "no reload in the journal")
    r = agent_curl()
    check(r.returncode == 0 and r.stdout == body, "agent's curl after the reload: %d %s" % (r.returncode, r.stderr))
    rows = wait_for(lambda: [x for x in conns() if x.get("resource") == "sd-web" and x.get("reason") == "closed"],
                    10, 0.1)
    check(len(rows) == 1, "after systemctl reload the connection is not sd-web's: %r" % conns())

    # An agent behind a veth in a network namespace of the container: pin --iface (XDP, nftables
    # TPROXY, policy routing) works with the unit's hardening, and its connection is audited.
    ok("ip", "netns", "add", "agentns")
    ok("ip", "link", "add", "alvh", "type", "veth", "peer", "name", "alva")
    ok("ip", "link", "set", "alva", "netns", "agentns")
    ok("ip", "addr", "add", "10.77.0.1/24", "dev", "alvh")
    ok("ip", "link", "set", "alvh", "up")
    ok("ip", "netns", "exec", "agentns", "sh", "-c", "ip link set lo up && ip addr add 10.77.0.2/24 dev alva && "
       "ip link set alva up && ip route add default via 10.77.0.1")
    ok("systemd-run", "--unit=airlock-test-web2", "--property=WorkingDirectory=/srv/www", "python3", "-m",
       "http.server", "--bind", "10.77.0.1", "8082")
    check(wait_for(lambda: c.inside(CURL, "-sf", "-o", "/dev/null", "http://10.77.0.1:8082/").returncode == 0,
                   10, 0.1), "the second test web server did not start")
    out = ok("airlockctl", "pin", "--iface", "alvh")
    check("xdp" in ok("ip", "link", "show", "alvh") and "fwmark" in ok("ip", "rule", "list"),
          "pin --iface: no XDP on alvh or no TPROXY routing rule: %s" % out)
    r = c.inside("ip", "netns", "exec", "agentns", CURL, "-sS", "--max-time", "10", "http://10.77.0.1:8082/")
    check(r.returncode == 0 and r.stdout == body, "curl from the pinned veth: %d %r %s (pin: %s)" %
          (r.returncode, r.stdout, r.stderr, out.strip()))
    rows = wait_for(lambda: [x for x in conns() if x.get("iface") == "alvh" and x.get("reason") == "closed"], 10, 0.1)
    check(len(rows) == 1 and rows[0]["dst_addr"] == "10.77.0.1" and rows[0]["dst_port"] == 8082 and
          rows[0]["agent_addr"] == "10.77.0.2", "the veth agent's connection: %r" % rows)

    # A restart re-adopts the pin: the new daemon steers the agent at once.
    ok("systemctl", "restart", "airlockd")
    p = show("ActiveState", "MainPID", "StatusText")
    check(p.get("ActiveState") == "active" and p.get("MainPID") != main_pid and
          p.get("StatusText", "").startswith("steering to port 907, 1 pinned cgroup,"),
          "after restart: %r; journal: %s" % (p, journal_tail()))
    r = agent_curl()
    check(r.returncode == 0 and r.stdout == body, "agent's curl after restart: %d %s" % (r.returncode, r.stderr))
    check(wait_for(lambda: len([x for x in conns() if x.get("resource") == "sd-web"]) == 2, 10, 0.1),
          "the restarted daemon did not record the agent: %r" % conns())

    # A crash: systemd starts it again (Restart=on-failure), and the new daemon steers the agent.
    pid = show("MainPID")["MainPID"]
    ok("systemctl", "kill", "-s", "KILL", "airlockd")
    p = wait_for(lambda: (lambda q: q if q.get("ActiveState") == "active" and q.get("MainPID") not in ("0", pid)
                          else None)(show("ActiveState", "MainPID", "NRestarts")), 20, 0.2)
    check(p and p.get("NRestarts") == "1", "after kill -9: %r; journal: %s" % (p, journal_tail()))
    r = agent_curl()
    check(r.returncode == 0 and r.stdout == body, "agent's curl after the crash: %d %s" % (r.returncode, r.stderr))

    # An upgrade (the same package as the next version) restarts the daemon; the pinned agent,
    # trying all along, is steered or refused, never let through unaudited: every request the
    # web server answered it is an audited connection.
    deb2 = make_next_version()
    with open(deb2, "rb") as f:
        ok("sh", "-c", "cat > /tmp/airlock-next.deb", input=f.read())
    mark = max([x["id"] for x in conns()], default=0)
    ok("sh", "-c", "cat > /tmp/agent-loop.sh", input=AGENT_LOOP.encode())
    ok("sh", "-c", "sh /tmp/agent-loop.sh > /tmp/agent.log 2>&1 < /dev/null &")
    check(wait_for(lambda: ok("cat", "/tmp/agent.log").count("200") >= 3, 10, 0.1),
          "the agent's loop is not getting through: %r" % ok("cat", "/tmp/agent.log")[-300:])
    pid = show("MainPID")["MainPID"]
    out = ok("apt-get", "install", "-y", "-q", "--no-install-recommends", "/tmp/airlock-next.deb")
    p = show("ActiveState", "MainPID", "StatusText")
    check("Unpacking airlock (%s+next) over (%s)" % (T.version, T.version) in out and
          p.get("ActiveState") == "active" and p.get("MainPID") not in ("0", pid) and
          p.get("StatusText", "").startswith("steering to port 907, 1 pinned cgroup,"),
          "after the upgrade: %r; apt: %s; journal: %s" % (p, out[-600:], journal_tail()))
    n = ok("cat", "/tmp/agent.log").count("200")
    check(wait_for(lambda: ok("cat", "/tmp/agent.log").count("200") >= n + 3, 10, 0.1),
          "the agent's loop is not getting through after the upgrade: %r" % ok("cat", "/tmp/agent.log")[-300:])
    ok("touch", "/tmp/agent.stop")
    check(wait_for(lambda: ok("cat", "/tmp/agent.log").endswith("end\n"), 15, 0.1), "the agent's loop did not end")
    codes = ok("cat", "/tmp/agent.log").split()[:-1]
    served = codes.count("200")
    check(set(codes) <= {"200", "000"}, "the agent's curl codes during the upgrade: %r" % sorted(set(codes)))
    rows = wait_for(lambda: (lambda r: r if len(r) >= served else None)(
        [x for x in json.loads(ok("airlockctl", "connections", "--json", "--limit", "100000"))
         if x["id"] > mark and x.get("resource") == "sd-web"]), 10, 0.2) or []
    check(len(rows) == served, "%d requests of the agent answered across the upgrade, %d audited connections"
          % (served, len(rows)))
    note("upgrade: the agent's loop got %d answers (all audited) and %d refusals while the daemon restarted"
         % (served, codes.count("000")))

    # Stopped, it fails closed: the pinned agent is refused, the container's other processes are not.
    ok("systemctl", "stop", "airlockd")
    r = agent_curl()
    check(r.returncode == 7, "agent's curl with airlockd stopped: %d %r %s" % (r.returncode, r.stdout, r.stderr))
    r = c.inside(CURL, "-sS", "--max-time", "10", "http://127.0.0.2:8081/")
    check(r.returncode == 0 and r.stdout == body, "unpinned curl with airlockd stopped: %d %s" % (r.returncode, r.stderr))

    # apt remove releases the pins (and stops the service): the agent reaches the server directly.
    ok("systemctl", "start", "airlockd")
    out = ok("apt-get", "remove", "-y", "-q", "airlock")
    check("removing every pin" in out, "remove: %s" % out[-800:])
    check(c.inside("systemctl", "is-active", "airlockd").stdout.strip() in ("inactive", "unknown"),
          "airlockd still runs after remove; journal: %s" % journal_tail())
    check(not [e for e in ok("ls", "/sys/fs/bpf").split() if e.startswith("airlock")], "pins left after remove")
    check("xdp" not in ok("ip", "link", "show", "alvh") and "fwmark" not in ok("ip", "rule", "list"),
          "XDP or the TPROXY routing rule left after remove")
    r = agent_curl()
    check(r.returncode == 0 and r.stdout == body, "agent's curl after remove: %d %s" % (r.returncode, r.stderr))


CASES = [
    ("make deb: airlock_VERSION_ARCH.deb with the version of airlockd -V", case_build),
    ("Depends names each library's Debian package; apt would install nothing else here", case_depends),
    ("contents: binaries (stripped), unit, conffile, docs, maintainer scripts, md5sums; the packaged "
     "airlockd -n accepts the packaged configuration", case_contents),
    ("the systemd unit passes systemd-analyze verify", case_unit),
    ("dpkg install, remove (the edited conffile stays) and purge (the CA goes, the audit store "
     "stays) in a scratch root; the host is untouched", case_dpkg_cycle),
    ("apt install, remove and purge in a chroot on an overlay of this host: enabled, pins released on "
     "remove, the edited conffile kept, purge takes the configuration and the CA, the store stays",
     case_apt_cycle),
    ("the packaged airlockd and airlockctl steer and record a pinned agent's curl; it tells systemd "
     "READY=1 (once airlockctl gets answers), RELOADING=1/READY=1 on SIGHUP, STOPPING=1",
     case_packaged_daemon),
    ("airlockd runs with the unit's capabilities in every suite (no dac_read_search, no sys_ptrace: an "
     "agent two cgroups below the pin has its cgroup path and executable recorded); with the connect "
     "hook's record off it still steers and says at start and in status what it cannot record", case_caps),
    ("under a real systemd (a container on an overlay of this host): apt install starts airlockd.service "
     "(Type=notify, its STATUS=, NoNewPrivileges, the unit's capabilities), a pinned cgroup's agent and a "
     "pinned veth's (XDP, nftables TPROXY) are steered, "
     "systemctl reload takes a new resource, restart and a kill -9 (Restart=on-failure) re-adopt the pin, "
     "an upgrade restarts it with the agent steered or refused throughout (every answer audited), "
     "stop refuses the agent, apt remove frees it", case_systemd),
]


def setup():
    T.tmp = lib.make_tempdir()
    os.chmod(T.tmp, 0o755)


def main():
    res = lib.Results()
    if os.geteuid() != 0:
        res.not_ok("test_package", "needs root (dpkg into a scratch root, loads BPF, creates a cgroup)")
        return 1
    for b in (lib.AIRLOCKD, lib.AIRLOCKCTL, CURL, "/usr/bin/dpkg-deb", "/usr/bin/dpkg-shlibdeps"):
        if not os.access(b, os.X_OK):
            res.not_ok("test_package", "%s is missing (make all; scripts/deps.sh)" % b)
            return 1
    return lib.run_suite(res, setup, CASES, lambda: T.al,
                         lambda: [T.cg and T.cg.path, T.sdcg and T.sdcg.path, T.al and T.al.pin_root, T.tmp], label="test_package ")


if __name__ == "__main__":
    sys.exit(main())
