#!/usr/bin/python3
"""Bypass suite: every way out a pinned agent might try, each refused (or steered) with the expected reason.

Run as root: /usr/bin/python3 tests/bypass/test_bypass.py
Prints one line per case, "ok - bypass: NAME" or "not ok - bypass: NAME: why",
and exits non-zero if any case failed. tests/bypass/README.md lists the
techniques, what each must end in, and the known limits.

Each technique is a small program in techniques/ that prints one JSON line
({"ok": true} if it reached its target). It runs as nobody (uid 65534, no
capabilities) twice: inside a pinned test cgroup, where it must be refused
(kernel counter and audit row with the expected reason, the target server
sees nothing) or steered (the server sees airlockd, not the agent), and
outside it, in an unpinned sibling cgroup, where it must reach the target -
so a refusal is the fence's doing, not a broken technique. Where the
technique cannot work outside either, the case says so and asserts the
kernel's own refusal.

Safety: the only cgroups touched are the ones this run creates
(<v2 mount>/airlock-test-<pid>-<rand>[-free|-late|-deleg]); BPF pins live under
/sys/fs/bpf/airlock-test-<pid>-<rand>; traffic goes to 127.0.0.0/8 and ::1
only, or stays inside network namespaces this run (airlock-test-<pid>-<rand>-TAG,
with a veth whose two ends are both in them) or a technique creates; sysctls
are set only inside those namespaces; only processes this run started are
stopped, by pid; everything is removed on any exit (try/finally, atexit,
SIGTERM/SIGINT/SIGHUP).
"""

import ctypes
import errno
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lib  # noqa: E402
from lib import (AIRLOCKCTL, AIRLOCKD, PY, REPO, RUN_ID, check, free_port, note,  # noqa: E402
                 on_cleanup, stop_process, wait_for)

NOBODY = 65534
INGRESS_DROP = "ingress_drop"   # what arrives for a pinned socket from anything but Airlock or DNS
IP = "/usr/sbin/ip"
NSENTER = "/usr/bin/nsenter"
RESOLVER = "127.0.0.53"         # the only resolver in the test config
OTHER_DNS = "127.0.0.3"         # a DNS server that is not an allowed resolver
T4 = "127.0.0.2"                # targets: never 127.0.0.1, where the steer listener is
T6 = "::1"

SETPRIV = ["/usr/bin/setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]
AS_NOBODY = SETPRIV + ["--inh-caps=-all"]
AS_NOBODY_NET_RAW = SETPRIV + ["--inh-caps=-all,+net_raw", "--ambient-caps=+net_raw"]
AS_ROOT = []
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# Wrappers placed between setpriv and the technique.
UNSHARE_URN = ["/usr/bin/unshare", "-Urn", "/bin/sh", "-c",
               '/usr/sbin/ip link set lo up 2>/dev/null; exec "$@"', "sh"]
# Placed before setpriv (runs as root): a private network namespace where
# ping sockets are allowed to every group, so only the fence can refuse them.
PRIVATE_NETNS_PING = ["/usr/bin/unshare", "-n", "/bin/sh", "-c",
                      '/usr/sbin/ip link set lo up && '
                      'echo "0 2147483647" > /proc/sys/net/ipv4/ping_group_range && exec "$@"', "sh"]
# Same, with route_localnet on lo, so a frame injected on lo to 127/8 is not martian.
PRIVATE_NETNS_LOCALNET = ["/usr/bin/unshare", "-n", "/bin/sh", "-c",
                          '/usr/sbin/ip link set lo up && '
                          'echo 1 > /proc/sys/net/ipv4/conf/lo/route_localnet && exec "$@"', "sh"]


# ---------------------------------------------------------------- results

RES = lib.Results()


def case(name, fn, *args):
    return RES.case("bypass: " + name, fn, *args)


# ---------------------------------------------------------------- cgroups

def v2_cgroup_of(pid):
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- ports

def free_privileged_port(hosts):
    """A free port below 1024 on every host: the steer port must be one that only root
    can listen on, or any local user could stand in for airlockd while it is down."""
    import random
    ports = list(range(900, 1024))
    random.shuffle(ports)
    for port in ports:
        socks = []
        try:
            for h in hosts:
                x = socket.socket(socket.AF_INET6 if ":" in h else socket.AF_INET, socket.SOCK_STREAM)
                socks.append(x)
                x.bind((h, port))
            return port
        except OSError:
            continue
        finally:
            for x in socks:
                x.close()
    raise RuntimeError("no free privileged port on %s" % (hosts,))


# ---------------------------------------------------------------- target servers

def _proc_net_inodes(local_port, remote_port):
    """Inodes of TCP sockets with this local and remote port, from /proc/net/tcp{,6}."""
    found = set()
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if int(p[1].rsplit(":", 1)[1], 16) == local_port and \
                       int(p[2].rsplit(":", 1)[1], 16) == remote_port:
                        found.add(p[9])
        except OSError:
            pass
    return found


def owns_socket(pid, inodes):
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


class Listener:
    """Serves its sockets from a thread (select, 0.1s ticks) until stop(); stopped on exit too.
    A subclass's ready(sock) handles one readable socket and returns False to end the thread."""

    def listen(self, socks):
        self.socks = socks
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        on_cleanup(self.stop)

    def _loop(self):
        while not self.stopping:
            try:
                ready, _, _ = select.select(self.socks, [], [], 0.1)
            except (OSError, ValueError):
                return
            for s in ready:
                if not self.ready(s):
                    return

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        for s in self.socks:
            s.close()


class TCPTarget(Listener):
    """TCP servers on 127.0.0.2:P and [::1]:P. Each connection answers "ping T" with "pong T" per line.

    For each accepted connection it notes the peer and whether the peer's
    socket belongs to airlockd (found at accept time, while it is open).
    """

    def __init__(self, port, airlockd_pid):
        self.port = port
        self.airlockd_pid = airlockd_pid
        self.lock = threading.Lock()
        self.accepts = 0
        self.tokens = {}        # token -> {"peer": (addr, port), "via_airlockd": bool}
        socks = []
        for host, fam in ((T4, socket.AF_INET), (T6, socket.AF_INET6)):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen(128)
            socks.append(s)
        self.listen(socks)

    def ready(self, s):
        try:
            c, peer = s.accept()
        except OSError:
            return True
        via = owns_socket(self.airlockd_pid, _proc_net_inodes(peer[1], self.port))
        with self.lock:
            self.accepts += 1
        threading.Thread(target=self._serve, args=(c, peer, via), daemon=True).start()
        return True

    def _serve(self, c, peer, via):
        c.settimeout(15)
        buf = b""
        try:
            while True:
                b = c.recv(4096)
                if not b:
                    break
                buf += b
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    words = line.decode(errors="replace").split()
                    if len(words) >= 2 and words[0] == "ping":
                        with self.lock:
                            self.tokens[words[1]] = {"peer": (peer[0], peer[1]), "via_airlockd": via}
                        c.sendall(("pong %s\n" % words[1]).encode())
        except OSError:
            pass
        finally:
            c.close()

    def snapshot(self):
        with self.lock:
            return self.accepts, len(self.tokens)


class UDPTarget(Listener):
    """A datagram server: "ping T [PORT]" is answered "pong T" to the sender (or to its address:PORT)."""

    def __init__(self, host, port, proto=0, dns=False):
        self.host, self.port, self.dns = host, port, dns
        self.lock = threading.Lock()
        self.count = 0
        self.tokens = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, proto)
        self.sock.bind((host, port))
        self.listen([self.sock])

    def ready(self, s):
        try:
            data, src = s.recvfrom(4096)
        except (OSError, ValueError):
            return False
        with self.lock:
            self.count += 1
        try:
            if self.dns:
                s.sendto(dns_answer(data), src)
                return True
            words = data.decode(errors="replace").split()
            if len(words) >= 2 and words[0] == "ping":
                with self.lock:
                    self.tokens[words[1]] = src
                to = (src[0], int(words[2])) if len(words) >= 3 else src
                s.sendto(("pong %s\n" % words[1]).encode(), to)
        except (OSError, ValueError):
            pass
        return True

    def snapshot(self):
        with self.lock:
            return self.count


def dns_answer(q):
    """An A answer (127.0.0.9) to a one-question query; enough for the technique to see a reply."""
    if len(q) < 12:
        return b""
    qid = q[:2]
    end = 12
    while end < len(q) and q[end] != 0:
        end += q[end] + 1
    question = q[12:end + 5]
    ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.9")
    return qid + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + ans


class LoSniffer(Listener):
    """Watches lo (read-only) for IPv4 UDP packets carrying "ping TOKEN": token -> destination address.

    Used where the technique cannot tell itself whether its packet left
    (the socket hooks passed it; did the egress backstop drop it?).
    """

    def __init__(self):
        self.seen = {}
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
        self.sock.bind(("lo", 0))
        self.listen([self.sock])

    def ready(self, s):
        try:
            d = s.recv(65536)
        except (OSError, ValueError):
            return False
        if len(d) < 28 or d[0] >> 4 != 4 or d[9] != 17:
            return True
        payload = d[(d[0] & 0x0f) * 4 + 8:]
        words = payload.decode(errors="replace").split()
        if len(words) >= 2 and words[0] == "ping":
            with self.lock:
                self.seen[words[1]] = socket.inet_ntoa(d[16:20])
        return True


# ---------------------------------------------------------------- network namespaces of this run

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def in_netns(path, fn, *args):
    """fn(*args) on a thread of its own that has joined the network namespace at path (setns
    is per thread, so the driver's other threads stay where they are); sockets it makes
    belong to that namespace for good. Returns fn's result or raises its exception."""
    out = {}

    def body():
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, "setns %s: %s" % (path, os.strerror(e)))
            finally:
                os.close(fd)
            out["r"] = fn(*args)
        except BaseException as e:
            out["e"] = e
    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(30)
    check(not t.is_alive(), "in_netns(%s, %s) did not finish" % (path, getattr(fn, "__name__", fn)))
    if "e" in out:
        raise out["e"]
    return out.get("r")


def tcpext(name):
    """A TcpExt counter of the calling thread's network namespace (/proc/net/netstat)."""
    with open("/proc/thread-self/net/netstat") as f:
        lines = f.read().splitlines()
    for head, vals in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            return int(dict(zip(head.split()[1:], vals.split()[1:])).get(name, 0))
    return 0


class NetNS:
    """A named network namespace of this run (airlock-test-<pid>-<rand>-TAG), lo up; deleted on exit.
    Everything the cases put in it (veths, addresses, routes, sysctls) goes with it."""

    def __init__(self, tag):
        self.name = "airlock-test-%s-%s" % (RUN_ID, tag)
        self.path = "/run/netns/" + self.name
        on_cleanup(NetNS.delete, self.name)
        sh(IP, "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")

    @staticmethod
    def delete(name):
        subprocess.run([IP, "netns", "del", name], capture_output=True, env=ENV, timeout=20)

    def ip(self, *args):
        sh(IP, "-n", self.name, *args)

    def enter(self):
        """argv prefix (runs as root, before setpriv): the program runs in this namespace."""
        return [NSENTER, "--net=" + self.path]

    def sysctl(self, key, value):
        """A per-namespace sysctl, in this namespace only (the host's are never touched)."""
        sh(*self.enter(), "/bin/sh", "-c", 'echo "$1" > "/proc/sys/$2"', "sh", str(value), key.replace(".", "/"))

    def call(self, fn, *args):
        return in_netns(self.path, fn, *args)


def sh(*argv):
    r = subprocess.run(list(argv), capture_output=True, text=True, env=ENV, timeout=20)
    check(r.returncode == 0, "%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r.stdout


class PeerSniffer(Listener):
    """Reads (AF_PACKET, as root, outside every cgroup) each frame arriving on IFNAME in namespace ns.

    Keeps the frames in arrival order; mark() and since(mark) bound one case's
    share of them.
    """

    def __init__(self, ns, ifname):
        self.lock = threading.Lock()
        self.frames = []

        def open_socket():
            x = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            x.bind((ifname, 0))
            return x
        self.sock = ns.call(open_socket)
        self.listen([self.sock])

    def ready(self, s):
        try:
            d, addr = s.recvfrom(65536)
        except (OSError, ValueError):
            return False
        if addr[2] != socket.PACKET_OUTGOING:
            with self.lock:
                if len(self.frames) < 50000:
                    self.frames.append(d)
        return True

    def mark(self):
        with self.lock:
            return len(self.frames)

    def since(self, mark):
        with self.lock:
            return self.frames[mark:]

    @staticmethod
    def loopback_dst(d):
        """The frame's destination if it is a loopback address (IPv4, IPv6, or an ARP
        request's target), else None."""
        et = struct.unpack("!H", d[12:14])[0] if len(d) >= 14 else 0
        if et == 0x0800 and len(d) >= 34 and d[30] == 127:
            return "%s proto %d" % (socket.inet_ntoa(d[30:34]), d[23])
        if et == 0x86dd and len(d) >= 54:
            dst = d[38:54]
            if dst == b"\0" * 15 + b"\1" or (dst[:12] == b"\0" * 10 + b"\xff\xff" and dst[12] == 127):
                return "%s nh %d" % (socket.inet_ntop(socket.AF_INET6, dst), d[20])
        if et == 0x0806 and len(d) >= 42 and d[38] == 127:
            return "arp who-has %s" % socket.inet_ntoa(d[38:42])
        return None

    def loopback_since(self, mark):
        return [x for x in (self.loopback_dst(d) for d in self.since(mark)) if x]

    def carrying(self, needle, mark):
        """Frames since mark that contain these bytes (e.g. a multicast group's address)."""
        return [d for d in self.since(mark) if needle in d]


class Wire:
    """Two namespaces of this run joined by a veth pair: the agent's end (alka, 192.0.2.1/24,
    2001:db8::1/64, default routes through the peer, as a host on a network has) and the
    peer's (alkb, .2 and ::2), where a PeerSniffer sees every frame the agent's end sends.
    Pinned agents run in the agent namespace (cgroup and network namespace are independent).
    Nothing here touches an interface of the host."""

    IF_A, IF_B = "alka", "alkb"
    A4, B4, A6, B6 = "192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"

    def __init__(self):
        self.agent = NetNS("agent")
        self.peer = NetNS("peer")
        for ns in (self.agent, self.peer):
            ns.sysctl("net.ipv6.conf.default.accept_dad", 0)
        self.agent.ip("link", "add", self.IF_A, "type", "veth", "peer", "name", self.IF_B,
                      "netns", self.peer.name)
        for ns, ifname, a4, a6 in ((self.agent, self.IF_A, self.A4, self.A6),
                                   (self.peer, self.IF_B, self.B4, self.B6)):
            ns.ip("addr", "add", a4 + "/24", "dev", ifname)
            ns.ip("addr", "add", a6 + "/64", "dev", ifname, "nodad")
            ns.ip("link", "set", ifname, "up")
        self.agent.ip("route", "add", "default", "via", self.B4, "dev", self.IF_A)
        self.agent.ip("-6", "route", "add", "default", "via", self.B6, "dev", self.IF_A)
        self.sniff = PeerSniffer(self.peer, self.IF_B)


# ---------------------------------------------------------------- airlockd

def snapshot_binaries(tmpdir):
    """Copies airlockd and airlockctl into tmpdir, so a rebuild in the tree during the run
    (another session's `make`) cannot pull them away, e.g. before the restart case."""
    out = []
    for b in (AIRLOCKD, AIRLOCKCTL):
        check(wait_for(lambda: os.access(b, os.X_OK), 15, 0.2), "no %s" % b)
        dst = os.path.join(tmpdir, os.path.basename(b))
        # A link step may be writing it right now: copy until two copies agree.
        for _ in range(20):
            shutil.copy2(b, dst)
            time.sleep(0.1)
            if os.access(b, os.X_OK) and os.path.getsize(b) == os.path.getsize(dst):
                break
        out.append(dst)
    return out


class Airlock(lib.Airlock):
    """lib's airlockd, run from copies of the binaries, on a privileged steer port, with one resolver."""

    def __init__(self, tmpdir):
        super().__init__(tmpdir, [], steer_port=free_privileged_port(["127.0.0.1", "::1"]),
                         settings=["resolver %s" % RESOLVER], binaries=snapshot_binaries(tmpdir))

    def kernel(self):
        return self.ctl_json("status").get("kernel") or {}

    def refusals(self, limit=500):
        return self.ctl_json("refusals", "--limit", str(limit))

    def connections(self, limit=500):
        return self.ctl_json("connections", "--limit", str(limit))

    def pin(self, path):
        r = self.ctl("pin", path)
        check(r.returncode == 0, "airlockctl pin %s: %s" % (path, r.stderr.strip()))


# ---------------------------------------------------------------- running techniques

class Suite:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="airlock-bypass-%s." % RUN_ID)
        on_cleanup(shutil.rmtree, self.tmp, True)
        # nobody must reach the techniques and the control socket's own mode.
        os.chmod(self.tmp, 0o755)
        self.tech = os.path.join(self.tmp, "techniques")
        shutil.copytree(os.path.join(HERE, "techniques"), self.tech,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for dirpath, dirnames, filenames in os.walk(self.tech):
            os.chmod(dirpath, 0o755)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o644)
        self.io_uring = os.path.join(self.tech, "io_uring")
        r = subprocess.run(["cc", "-O2", "-Wall", "-o", self.io_uring,
                            os.path.join(self.tech, "io_uring.c")], capture_output=True, text=True)
        check(r.returncode == 0, "cc io_uring.c: %s" % r.stderr.strip())
        os.chmod(self.io_uring, 0o755)

        self.air = Airlock(self.tmp)
        self.air.start()
        self.cg = lib.TestCgroup()                    # pinned for the whole run
        self.free = lib.TestCgroup("-free")           # never pinned: "outside"
        self.late = lib.TestCgroup("-late")           # pinned while a process in it is connected
        self.deleg = lib.TestCgroup("-deleg")         # cgroup.procs handed to nobody
        os.chown(os.path.join(self.deleg.path, "cgroup.procs"), NOBODY, NOBODY)
        self.mount = self.cg.mount
        self.air.pin(self.cg.path)

        self.tport = free_port([T4, T6])
        self.tcp = TCPTarget(self.tport, self.air.proc.pid)
        self.uport = free_port([T4], socket.SOCK_DGRAM)
        self.udp = UDPTarget(T4, self.uport)
        self.udp443 = UDPTarget(T4, 443)
        self.lport = free_port([T4], socket.SOCK_DGRAM)
        self.udplite = UDPTarget(T4, self.lport, proto=136)
        self.dns_other = UDPTarget(OTHER_DNS, 53, dns=True)
        try:
            self.dns_ok = UDPTarget(RESOLVER, 53, dns=True)
        except OSError as e:
            note("cannot bind %s:53 (%s): the allowed-resolver control only checks the send" % (RESOLVER, e))
            self.dns_ok = None

    # One process: joins `cg` (same pid), then pre..., priv..., post..., program.
    def run(self, prog, cg, priv=AS_NOBODY, pre=(), post=(), timeout=20, keep=False):
        argv = cg.argv(list(pre) + list(priv) + list(post) + prog)
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV)
        on_cleanup(stop_process, p, 1.0, signal.SIGKILL)
        if keep:
            return p
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(p, 1.0, signal.SIGKILL)
            raise AssertionError("%s did not finish in %ds" % (technique_name(prog), timeout))
        return parse_result(out, err), p.pid

    def py(self, name, *args):
        return [PY, os.path.join(self.tech, name)] + [str(a) for a in args]

    def wire(self):
        """The run's veth between two namespaces of its own (made on first use)."""
        if getattr(self, "_wire", None) is None:
            self._wire = Wire()
        return self._wire

    def observe(self):
        return Observation(self)

    def observe_kernel_only(self):
        """An observation of the target servers only (airlockd may be down)."""
        return Observation(self, daemon=False)


def technique_name(prog):
    return os.path.basename(prog[1] if prog[0] == PY else prog[0])


def parse_result(out, err):
    lines = [l for l in out.splitlines() if l.strip()]
    for l in reversed(lines):
        try:
            r = json.loads(l)
        except ValueError:
            continue
        if isinstance(r, dict) and "ok" in r:
            r["_stderr"] = err.strip()[-300:]
            return r
    return {"ok": None, "errno": None, "error": "no JSON result", "_stderr": err.strip()[-300:],
            "_stdout": out.strip()[-200:]}


def brief(r):
    return json.dumps({k: v for k, v in r.items() if k != "children"})[:400]


class Observation:
    """What changed while one technique ran: kernel counters, refusal rows, connection rows, servers."""

    def __init__(self, s, daemon=True):
        self.s = s
        if daemon:
            self.k0 = s.air.kernel()
            self.r0 = max((r["id"] for r in s.air.refusals(5)), default=0)
            self.c0 = max((r["id"] for r in s.air.connections(5)), default=0)
        self.tcp0 = s.tcp.snapshot()
        self.udp0 = [u.snapshot() if u else 0 for u in self.udps()]

    def udps(self):
        s = self.s
        return [s.udp, s.udp443, s.udplite, s.dns_other, s.dns_ok]

    def delta(self, reason):
        return self.s.air.kernel().get(reason, 0) - self.k0.get(reason, 0)

    def wait_delta(self, reason, n=1, timeout=3):
        return wait_for(lambda: self.delta(reason) >= n, timeout)

    def new_refusals(self):
        return [r for r in self.s.air.refusals() if r["id"] > self.r0]

    def new_connections(self):
        return [r for r in self.s.air.connections() if r["id"] > self.c0]

    def wait_refusal(self, reason, pid, timeout=3):
        return wait_for(lambda: [r for r in self.new_refusals()
                                 if r["reason"] == reason and (pid is None or r["pid"] == pid)], timeout)

    def wait_connection(self, pid, dst_port, timeout=3):
        return wait_for(lambda: [r for r in self.new_connections()
                                 if r.get("pid") == pid and r.get("dst_port") == dst_port], timeout)

    def servers_untouched(self):
        """Nothing reached any target server directly since the observation began."""
        tcp = self.s.tcp.snapshot()
        udp = [u.snapshot() if u else 0 for u in self.udps()]
        check(tcp == self.tcp0, "the TCP target saw %d connection(s)" % (tcp[0] - self.tcp0[0]))
        names = ["udp:%d" % self.s.uport, "udp:443", "udplite:%d" % self.s.lport,
                 "dns %s" % OTHER_DNS, "dns %s" % RESOLVER]
        for name, a, b in zip(names, self.udp0, udp):
            check(a == b, "the %s target received %d datagram(s)" % (name, b - a))


# ---------------------------------------------------------------- expectations

def assert_refused(s, prog, reason, name_errnos=(errno.EPERM,), priv=AS_NOBODY, pre=(), post=()):
    """Inside the pinned cgroup: refused with `reason` (counter + audit row with our pid), nothing reached."""
    ob = s.observe()
    r, pid = s.run(prog, s.cg, priv, pre, post)
    check(r["ok"] is False, "inside: the attempt was not refused: %s" % brief(r))
    check(r.get("errno") in name_errnos, "inside: refused with errno %s (%s), expected %s"
          % (r.get("errno"), r.get("error"), "/".join(errno.errorcode[e] for e in name_errnos)))
    if reason:
        check(ob.wait_delta(reason), "inside: kernel counter %s did not rise (counters now %s)"
              % (reason, s.air.kernel()))
        rows = ob.wait_refusal(reason, pid)
        check(rows, "inside: no refusals row with reason %s and pid %d (new rows: %s)"
              % (reason, pid, [(x["reason"], x["pid"]) for x in ob.new_refusals()]))
        row = rows[0]
        check(row["uid"] == NOBODY and row["cgroup_id"] == s.cg.id,
              "inside: refusal row has uid %s cgroup %s, expected %d/%d"
              % (row["uid"], row["cgroup_id"], NOBODY, s.cg.id))
        # The kernel names the executable at the attempt (bpf/lib/exe.h): airlockd has no
        # CAP_SYS_PTRACE to read another user's /proc/PID/exe.
        check(row.get("exe") == os.path.realpath(prog[0]),
              "inside: refusal row names exe %r, expected %r" % (row.get("exe"), os.path.realpath(prog[0])))
    check(ob.delta("egress_drop") == 0, "inside: egress_drop rose: a packet got past the socket hooks")
    ob.servers_untouched()
    return r, pid, ob


def assert_works_outside(s, prog, priv=AS_NOBODY, pre=(), post=(), server=None):
    """Outside (unpinned sibling cgroup): the same technique reaches its target directly."""
    ob = s.observe()
    r, pid = s.run(prog, s.free, priv, pre, post)
    check(r["ok"] is True, "outside: the technique itself does not work: %s" % brief(r))
    tok = r.get("token")
    if tok and server is s.tcp:
        rec = s.tcp.tokens.get(tok)
        check(rec and not rec["via_airlockd"], "outside: the TCP target saw %s, expected a direct connection" % rec)
    elif tok and server is not None:
        check(tok in server.tokens, "outside: the target did not record token %s" % tok)
    check(not ob.delta("steered"), "outside: the kernel steered an unpinned process")
    return r, pid


def assert_refused_works_outside(s, prog, reason, priv=AS_NOBODY, pre=(), post=(), server=None):
    """Refused with `reason` inside the pinned cgroup; reaches its target from outside."""
    assert_refused(s, prog, reason, priv=priv, pre=pre, post=post)
    assert_works_outside(s, prog, priv=priv, pre=pre, post=post, server=server)


def assert_kernel_refuses(s, prog, errnos, where, priv=AS_NOBODY, pre=(), post=()):
    """The kernel itself refuses (no fence counter moves): for techniques that need privileges."""
    ob = s.observe()
    r, pid = s.run(prog, where, priv, pre, post)
    check(r["ok"] is False and r.get("errno") in errnos,
          "%s: expected the kernel's %s, got %s" % (where.name, "/".join(errno.errorcode[e] for e in errnos),
                                                    brief(r)))
    for reason in ("socket_type", "socket_family"):
        check(ob.delta(reason) == 0, "%s: %s rose although the kernel refused first" % (where.name, reason))
    ob.servers_untouched()
    return r


def assert_steered(s, prog, dst_addrs, port):
    """Inside: the connection works, but through airlockd: audit row with our pid, server sees airlockd."""
    ob = s.observe()
    r, pid = s.run(prog, s.cg)
    check(r["ok"] is True, "inside: steered connection did not work: %s" % brief(r))
    rec = s.tcp.tokens.get(r["token"])
    check(rec is not None, "inside: the target has no record of token %s" % r["token"])
    check(rec["via_airlockd"], "inside: the target's peer %s is not airlockd's socket: a direct path"
          % (rec["peer"],))
    check(rec["peer"][1] != r["local"][1] or rec["peer"][0] != r["local"][0],
          "inside: the target's peer is the agent's own socket %s" % (r["local"],))
    check(ob.delta("steered") >= 1, "inside: kernel counter steered did not rise")
    rows = ob.wait_connection(pid, port)
    check(rows, "inside: no connections row with pid %d and dst port %d (new: %s)"
          % (pid, port, [(x.get("pid"), x.get("dst_addr"), x.get("dst_port")) for x in ob.new_connections()]))
    row = rows[0]
    check(row.get("dst_addr") in dst_addrs, "inside: connection row dst %s, expected %s" % (row.get("dst_addr"), dst_addrs))
    check(row.get("uid") == NOBODY and row.get("cgroup_id") == s.cg.id,
          "inside: connection row uid %s cgroup %s" % (row.get("uid"), row.get("cgroup_id")))
    check(ob.delta("egress_drop") == 0, "inside: egress_drop rose for a steered connection")
    assert_works_outside(s, prog, server=s.tcp)


# ---------------------------------------------------------------- the cases

def tcp_cases(s):
    p = s.tport
    case("direct TCP to IPv4 %s:%d is steered (audit row, server sees airlockd)" % (T4, p),
         assert_steered, s, s.py("tcp_ipv4.py", T4, p), [T4], p)
    case("direct TCP to IPv6 [%s]:%d is steered" % (T6, p),
         assert_steered, s, s.py("tcp_ipv6.py", T6, p), [T6], p)
    case("direct TCP to v4-mapped [::ffff:%s]:%d is steered (connect6)" % (T4, p),
         assert_steered, s, s.py("tcp_v4mapped.py", T4, p), [T4, "::ffff:" + T4], p)
    case("TCP Fast Open sendto(MSG_FASTOPEN) to %s:%d is steered" % (T4, p),
         assert_steered, s, s.py("tcp_fastopen.py", T4, p), [T4], p)
    case("TCP_FASTOPEN_CONNECT then connect()+write to %s:%d is steered" % (T4, p),
         assert_steered, s, s.py("tcp_fastopen_connect.py", T4, p), [T4], p)
    case("TCP socket+connect through io_uring (IORING_OP_SOCKET/CONNECT) is steered",
         assert_steered, s, [s.io_uring, "tcp", T4, str(p)], [T4], p)

    sp = s.air.steer_port
    for host in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        case("dialling the steer port [%s]:%d directly is refused (direct_steer_port)" % (host, sp),
             assert_refused_works_outside, s, s.py("steer_port_direct.py", host, sp), "direct_steer_port")


def udp_cases(s):
    up = s.uport

    def refused_then_outside(prog, reason, server):
        assert_refused_works_outside(s, prog, reason, server=server)

    case("UDP sendto() to an arbitrary port %s:%d is refused (udp_denied)" % (T4, up),
         refused_then_outside, s.py("udp_port.py", T4, up), "udp_denied", s.udp)
    case("UDP/443 (QUIC) to %s is refused (quic_denied)" % T4,
         refused_then_outside, s.py("udp_quic.py", T4), "quic_denied", s.udp443)
    case("DNS to %s:53, not an allowed resolver, is refused (dns_resolver)" % OTHER_DNS,
         refused_then_outside, s.py("dns_query.py", OTHER_DNS), "dns_resolver", s.dns_other)
    case("unconnected UDP sendmsg() with an address, IPv6 socket to ::ffff:%s:%d, is refused (udp_denied)" % (T4, up),
         refused_then_outside, s.py("udp_sendto_v6.py", T4, up), "udp_denied", s.udp)
    case("UDP connect() then send() to %s:%d is refused at connect (udp_denied)" % (T4, up),
         refused_then_outside, s.py("udp_connect_send.py", T4, up), "udp_denied", s.udp)
    case("UDP connected to the allowed resolver, then sendto() %s:%d, is refused (udp_denied)" % (T4, up),
         refused_then_outside, s.py("udp_resolver_then_other.py", RESOLVER, T4, up), "udp_denied", s.udp)
    case("UDP sendmsg() with an address through io_uring is refused (udp_denied)",
         refused_then_outside, [s.io_uring, "udp", T4, str(up)], "udp_denied", s.udp)
    case("UDP-Lite socket (SOCK_DGRAM, protocol 136) is refused (socket_type)",
         refused_then_outside, s.py("udplite.py", T4, s.lport), "socket_type", s.udplite)
    case("MPTCP socket (SOCK_STREAM, IPPROTO_MPTCP) is refused (socket_type)",
         refused_then_outside, s.py("mptcp.py", T4, s.tport), "socket_type", s.tcp)

    def allowed_resolver():
        ob = s.observe()
        r, pid = s.run(s.py("dns_query.py", RESOLVER), s.cg)
        if s.dns_ok is not None:
            check(r["ok"] is True, "inside: DNS to the allowed resolver failed: %s" % brief(r))
        else:
            check(r.get("errno") != errno.EPERM, "inside: DNS to the allowed resolver refused: %s" % brief(r))
        for reason in ("dns_resolver", "udp_denied", "egress_drop"):
            check(ob.delta(reason) == 0, "inside: %s rose for DNS to the allowed resolver" % reason)
    case("control: DNS to the allowed resolver %s:53 passes from the pinned cgroup" % RESOLVER,
         allowed_resolver)


def socket_cases(s):
    def lsrr():
        prog = s.py("udp_srr.py", RESOLVER, OTHER_DNS)
        # A plain user cannot set IP options at all here.
        r, _ = s.run(prog, s.cg)
        check(r["ok"] is False and r.get("errno") == errno.EPERM,
              "inside as nobody: expected EPERM from setsockopt(IP_OPTIONS), got %s" % brief(r))
        sniff = LoSniffer()
        try:
            ob = s.observe()
            r, pid = s.run(prog, s.cg, AS_NOBODY_NET_RAW)
            # The hooks pass it (they see the resolver); the backstop's drop comes back as EPERM.
            check(r["ok"] is False and r.get("step") == "sendto" and r.get("errno") == errno.EPERM,
                  "inside: expected sendto() to fail with EPERM from the egress drop, got %s" % brief(r))
            check(ob.wait_delta("egress_drop"), "inside: egress_drop did not rise: the packet to %s left"
                  % OTHER_DNS)
            check(ob.delta("udp_denied") == 0 and ob.delta("dns_resolver") == 0,
                  "inside: a socket hook refused it after all (counters %s)" % s.air.kernel())
            rows = ob.wait_refusal("egress_drop", None)
            check(any(x.get("dst_addr") == OTHER_DNS and x.get("dst_port") == 53
                      and x.get("cgroup_id") == s.cg.id for x in rows),
                  "inside: no egress_drop row for %s:53 in cgroup %d: %s"
                  % (OTHER_DNS, s.cg.id, [(x.get("dst_addr"), x.get("dst_port"), x.get("cgroup_id")) for x in rows]))
            time.sleep(0.2)
            check(r["token"] not in sniff.seen, "inside: the packet was seen on lo going to %s"
                  % sniff.seen.get(r["token"]))
            ob.servers_untouched()
            r2, _ = s.run(prog, s.free, AS_NOBODY_NET_RAW)
            check(r2["ok"] is True, "outside: %s" % brief(r2))
            check(wait_for(lambda: sniff.seen.get(r2["token"]) == OTHER_DNS, 2),
                  "outside: no packet to %s on lo (seen: %s): the technique does not work"
                  % (OTHER_DNS, sniff.seen.get(r2["token"])))
        finally:
            sniff.stop()
    case("UDP to the allowed resolver with an IPv4 source route via %s (IP_OPTIONS LSRR, needs "
         "CAP_NET_RAW): hooks see the resolver, the egress backstop drops it (egress_drop)" % OTHER_DNS, lsrr)

    def raw_icmp_nobody():
        # Plain nobody: the kernel refuses SOCK_RAW (no CAP_NET_RAW) before the fence runs.
        assert_kernel_refuses(s, s.py("icmp_raw.py", T4), (errno.EPERM,), s.cg)
        assert_kernel_refuses(s, s.py("icmp_raw.py", T4), (errno.EPERM,), s.free)
    case("raw ICMP socket as nobody: the kernel refuses it inside and outside (no CAP_NET_RAW)",
         raw_icmp_nobody)

    case("raw ICMP socket with CAP_NET_RAW is refused by the fence (socket_type), works outside",
         assert_refused_works_outside, s, s.py("icmp_raw.py", T4), "socket_type", AS_NOBODY_NET_RAW)
    case("ICMP echo socket (SOCK_DGRAM+IPPROTO_ICMP), ping_group_range open in a private netns: "
         "refused (socket_type), works outside",
         assert_refused_works_outside, s, s.py("icmp_dgram.py", "127.0.0.1"), "socket_type", AS_NOBODY,
         PRIVATE_NETNS_PING)
    case("ICMPv6 echo socket (SOCK_DGRAM+IPPROTO_ICMPV6) in a private netns: refused (socket_type), "
         "works outside",
         assert_refused_works_outside, s, s.py("icmp_dgram.py", "::1"), "socket_type", AS_NOBODY,
         PRIVATE_NETNS_PING)

    def icmp_dgram_host():
        with open("/proc/sys/net/ipv4/ping_group_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        prog = s.py("icmp_dgram.py", T4)
        if lo <= NOBODY <= hi:
            assert_refused_works_outside(s, prog, "socket_type")
        else:
            note("host ping_group_range is %d %d: the kernel refuses nobody's ping socket itself" % (lo, hi))
            assert_kernel_refuses(s, prog, (errno.EACCES,), s.cg)
            assert_kernel_refuses(s, prog, (errno.EACCES,), s.free)
    case("ICMP echo socket in the host netns: refused inside (by the fence, or by the kernel when "
         "ping_group_range excludes nobody, as outside)", icmp_dgram_host)

    def af_packet_nobody():
        # cgroup/sock_create never runs for AF_PACKET: the kernel's CAP_NET_RAW check is what stops it.
        assert_kernel_refuses(s, s.py("af_packet.py", T4, s.uport), (errno.EPERM,), s.cg)
        assert_kernel_refuses(s, s.py("af_packet.py", T4, s.uport), (errno.EPERM,), s.free)
    case("AF_PACKET as nobody: not seen by the fence; the kernel refuses it inside and outside "
         "(EPERM, no CAP_NET_RAW)", af_packet_nobody)

    def af_packet_cap():
        # Known limit, outside the threat model: the fence cannot see AF_PACKET at all.
        # In a namespace of this run (route_localnet on lo, so a frame to 127/8 arriving there is
        # not martian): a UDP datagram built by hand by a pinned agent reaches a socket on
        # 127.0.0.2 outside the pinned cgroup, where the same datagram from a UDP socket is
        # refused (udp_denied).
        ns = NetNS("afpacket")
        ns.sysctl("net.ipv4.conf.lo.route_localnet", 1)

        def receiver():
            x = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            x.bind((T4, s.uport))
            return x
        rx = ns.call(receiver)
        try:
            ob = s.observe()
            r, pid = s.run(s.py("af_packet.py", T4, s.uport, "send-only"), s.cg, AS_NOBODY_NET_RAW,
                           pre=ns.enter())
            check(r["ok"] is True, "the pinned agent could not send the frame: %s" % brief(r))
            rx.settimeout(1.5)
            try:
                got = rx.recv(2048).decode(errors="replace")
            except OSError as e:
                got = e
            check(isinstance(got, str) and r["token"] in got,
                  "expected the documented limit (the frame is delivered); the receiver got %r: update README"
                  % (got,))
            for reason in ("egress_drop", "socket_family", INGRESS_DROP):
                check(ob.delta(reason) == 0, "%s rose: the limit changed, update README" % reason)
        finally:
            rx.close()
    case("known limit (agent with CAP_NET_RAW, outside the threat model): AF_PACKET is not seen; "
         "a hand-made UDP frame reaches a socket outside the pinned cgroup, unseen by the egress backstop",
         af_packet_cap)

    def af_packet_own_socket():
        # The same frame to a UDP socket of the agent's own (in the pinned cgroup): not delivered.
        ob = s.observe()
        r, pid = s.run(s.py("af_packet.py", T4, s.uport), s.cg, AS_NOBODY_NET_RAW, pre=PRIVATE_NETNS_LOCALNET)
        check(r["ok"] is False and r.get("errno") == errno.ETIMEDOUT,
              "the pinned agent's own UDP socket received the hand-made frame: %s" % brief(r))
        wait_drop_row(s, ob, (INGRESS_DROP,), s.cg.id)
        r2, _ = s.run(s.py("af_packet.py", T4, s.uport), s.free, AS_NOBODY_NET_RAW, pre=PRIVATE_NETNS_LOCALNET)
        check(r2["ok"] is True, "outside: the technique does not work: %s" % brief(r2))
    case("AF_PACKET with CAP_NET_RAW: a hand-made UDP frame to the agent's own UDP socket is dropped on "
         "the way in (ingress_drop); delivered outside", af_packet_own_socket)

    def vsock():
        ob = s.observe()
        r, pid = s.run(s.py("vsock_socket.py"), s.cg)
        if r.get("errno") in (errno.EAFNOSUPPORT,):
            note("AF_VSOCK not available on this kernel")
            return
        check(r["ok"] is True, "expected the documented limit (socket(AF_VSOCK) succeeds); got %s: "
              "update README" % brief(r))
        check(ob.delta("socket_family") == 0, "socket_family rose: the limit changed, update README")
    case("known limit: socket(AF_VSOCK) in a pinned cgroup is not seen by the fence "
         "(not connected: that would reach the hypervisor)", vsock)


def unshare_cases(s):
    def probe():
        r = subprocess.run(s.free.argv(AS_NOBODY + ["/usr/bin/unshare", "-Urn", "/bin/true"]),
                           capture_output=True, text=True, env=ENV, timeout=10)
        return r.returncode == 0, r.stderr.strip()
    userns, why = probe()

    def unshare_connect():
        prog = s.py("unshare_connect.py", T4, s.tport)
        if not userns:
            note("unprivileged user namespaces are refused here: %s" % why)
            ob = s.observe()
            r, pid = s.run(prog, s.cg, post=UNSHARE_URN)
            check(r["ok"] is not True, "inside: reached the target: %s" % brief(r))
            check("unshare" in r["_stderr"], "inside: expected unshare's refusal, got %s" % brief(r))
            ob.servers_untouched()
            return
        ob = s.observe()
        r, pid = s.run(prog, s.cg, post=UNSHARE_URN)
        check(r["ok"] is False and r.get("errno") in (errno.ENETUNREACH, errno.ECONNREFUSED),
              "inside: expected ENETUNREACH/ECONNREFUSED, got %s" % brief(r))
        check(r.get("self_ok") is False, "inside: a connect on the new namespace's loopback was not steered: %s"
              % brief(r))
        check(ob.delta("steered") >= 1, "inside: connects in the new namespace were not steered")
        ob.servers_untouched()
        # Outside: the namespace works (its own loopback answers); the host's server is out of reach anyway.
        r2, _ = s.run(prog, s.free, post=UNSHARE_URN)
        check(r2.get("self_ok") is True, "outside: the technique does not work (no loopback in the "
              "new namespace): %s" % brief(r2))
        check(r2["ok"] is False, "outside: a fresh netns reached the host's server?! %s" % brief(r2))
    case("unshare -Urn then connect: no outside connectivity; even the namespace's own loopback is "
         "steered (ENETUNREACH/ECONNREFUSED)", unshare_connect)

    def unshare_raw():
        prog = s.py("icmp_raw.py", "127.0.0.1")
        if not userns:
            note("unprivileged user namespaces are refused here: %s" % why)
            return
        assert_refused_works_outside(s, prog, "socket_type", post=UNSHARE_URN)
    case("unshare -Urn gives CAP_NET_RAW in a new netns: raw ICMP socket still refused (socket_type), "
         "works outside", unshare_raw)


def self_protection_cases(s):
    def control_socket():
        prog = s.py("control_socket.py", s.air.sock)
        st = os.stat(s.air.sock)
        check(st.st_mode & 0o777 == 0o600 and st.st_uid == 0,
              "control socket mode %o uid %d, expected 0600 root" % (st.st_mode & 0o777, st.st_uid))
        r, _ = s.run(prog, s.cg)
        check(r["ok"] is False and r.get("errno") == errno.EACCES,
              "inside: expected EACCES, got %s" % brief(r))
        # The same user outside is refused too: this is the file mode, not the fence.
        r, _ = s.run(prog, s.free)
        check(r["ok"] is False and r.get("errno") == errno.EACCES,
              "outside as nobody: expected EACCES, got %s" % brief(r))
        r, _ = s.run(prog, s.free, AS_ROOT)
        check(r["ok"] is True, "outside as root: the technique does not work: %s" % brief(r))
        # Second lock: with the mode opened up, airlockd still refuses a non-root peer (SO_PEERCRED).
        os.chmod(s.air.sock, 0o666)
        try:
            r, _ = s.run(prog, s.cg)
        finally:
            os.chmod(s.air.sock, 0o600)
        check(r["ok"] is False, "with the socket made 0666, airlockd answered uid %d: %s" % (NOBODY, brief(r)))
    case("airlockd's control socket: EACCES (0600 root) inside; root outside works; "
         "made 0666, airlockd still refuses uid 65534 (SO_PEERCRED)", control_socket)

    def cgroup_escape():
        targets = [s.mount, s.free.path, s.deleg.path]
        r, pid = s.run(s.py("cgroup_escape.py", *targets), s.cg)
        check(r["ok"] is False and r.get("errno") in (errno.EACCES, errno.EPERM),
              "inside: expected EACCES/EPERM, got %s" % brief(r))
        check(r.get("cgroup") == s.cg.rel, "inside: /proc/self/cgroup says %s, expected %s"
              % (r.get("cgroup"), s.cg.rel))
        # A cgroup.procs handed to nobody is not enough: the common ancestor's must be writable too.
        r, _ = s.run(s.py("cgroup_escape.py", s.deleg.path), s.free)
        check(r["ok"] is False and r.get("errno") in (errno.EACCES, errno.EPERM),
              "outside as nobody: expected EACCES/EPERM, got %s" % brief(r))
        r, _ = s.run(s.py("cgroup_escape.py", s.deleg.path), s.free, AS_ROOT)
        check(r["ok"] is True and r.get("cgroup") == s.deleg.rel,
              "outside as root: the technique does not work: %s" % brief(r))
    case("writing its pid to another cgroup.procs (root, sibling, delegated sibling): EACCES, "
         "stays in the pinned cgroup; root outside can", cgroup_escape)

    def children():
        ob = s.observe()
        r, pid = s.run(s.py("children.py", T4, s.tport), s.cg)
        check(r["ok"] is True, "inside: %s" % brief(r))
        kids = r["children"]
        pids = {k["role"]: k["pid"] for k in kids}
        check(len(set(pids.values())) == 5, "expected five distinct pids: %s" % pids)
        rows = wait_for(lambda: [x for x in ob.new_connections() if x.get("dst_port") == s.tport], 3)
        seen = {x.get("pid") for x in rows}
        missing = {role: p for role, p in pids.items() if p not in seen}
        check(not missing, "no connections row for %s (rows have pids %s)" % (missing, sorted(seen)))
        for k in kids:
            rec = s.tcp.tokens.get(k["token"])
            check(rec and rec["via_airlockd"], "%s (pid %d) reached the target directly: %s"
                  % (k["role"], k["pid"], rec))
        for x in rows:
            check(x.get("cgroup_id") == s.cg.id, "row for pid %s has cgroup %s" % (x.get("pid"), x.get("cgroup_id")))
        assert_works_outside(s, s.py("children.py", T4, s.tport))
    case("fork, fork+exec, double-fork (reparented) and setsid descendants: each one's TCP is "
         "steered, audit row with its own pid", children)


def wait_drop_row(s, ob, reasons, cgroup_id):
    """One of reasons rose and has a row for cgroup_id; returns (reason, rows)."""
    def found():
        for reason in reasons:
            if ob.delta(reason) >= 1:
                rows = [x for x in ob.new_refusals() if x["reason"] == reason and x.get("cgroup_id") == cgroup_id]
                if rows:
                    return reason, rows
        return None
    got = wait_for(found, 3)
    check(got, "none of %s rose with a row for cgroup %d (counters now %s; new rows %s)"
          % ("/".join(reasons), cgroup_id, s.air.kernel(),
             [(x["reason"], x.get("cgroup_id")) for x in ob.new_refusals()]))
    return got


def inbound_cases(s):
    def dial(host, port, tok, timeout=2):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(timeout)
        try:
            c.connect((host, port))
            c.sendall(("ping %s\n" % tok).encode())
            return c.recv(100).decode(errors="replace").strip()
        except OSError as e:
            return e
        finally:
            c.close()

    def tcp_in():
        port = free_port([T4])
        prog = s.py("listen_tcp.py", T4, port, 4)
        p = s.run(prog, s.cg, keep=True)
        try:
            first = json.loads(read_line(p, 5))
            check(first.get("phase") == "listening", "inside: could not listen: %s" % first)
            ob = s.observe()
            got = dial(T4, port, "in-%s" % RUN_ID)
            check(isinstance(got, OSError), "inside: a client outside completed a connection to the pinned "
                  "agent's listener and got %r" % got)
            # The SYN is dropped on the way in (ingress_drop); the egress backstop would drop the SYN-ACK.
            wait_drop_row(s, ob, (INGRESS_DROP, "egress_drop"), s.cg.id)
        finally:
            stop_process(p, 1.0, signal.SIGKILL)
        p = s.run(prog, s.free, keep=True)
        try:
            read_line(p, 5)
            got = dial(T4, port, "out-%s" % RUN_ID)
            check(got == "pong out-%s" % RUN_ID, "outside: the technique does not work: %r" % (got,))
        finally:
            stop_process(p, 1.0, signal.SIGKILL)
    case("reverse channel: a TCP listener in the pinned cgroup accepts nobody from outside (the SYN is "
         "dropped on the way in, ingress_drop; the SYN-ACK would be, egress_drop)", tcp_in)

    def syncookie_host():
        with open("/proc/sys/net/ipv4/tcp_syncookies") as f:
            mode = int(f.read())
        if mode == 0:
            note("net.ipv4.tcp_syncookies is 0 on this host: no SYN cookies, nothing to test here "
                 "(the namespace case below sets 2 in its own namespace)")
            return
        port = free_port([T4])
        tok = "cookie-in-%s" % RUN_ID
        p = s.run(s.py("listen_tcp.py", T4, port, 3, 0), s.cg, keep=True)
        a = None
        try:
            first = json.loads(read_line(p, 5))
            check(first.get("phase") == "listening", "inside: could not listen: %s" % first)
            sent0 = tcpext("SyncookiesSent")
            ob = s.observe()
            # A: its SYN takes the listener's one SYN-queue slot (backlog 0); its SYN-ACK is never
            # let out, so the request stays. B's SYN then finds the queue full: a SYN cookie.
            a = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            a.setblocking(False)
            a.connect_ex((T4, port))
            time.sleep(0.3)
            got = dial(T4, port, tok)
            out, err = finish(p, "", 10)
        finally:
            if a is not None:
                a.close()
            stop_process(p, 1.0, signal.SIGKILL)
        r = parse_result(out, err)
        cookies = tcpext("SyncookiesSent") - sent0
        check(not r.get("accepted") and tok not in (r.get("line") or ""),
              "inside: client B's connection reached the pinned agent's accept() (SYN cookies sent: %d, "
              "agent: %s, B: %r)" % (cookies, brief(r), got))
        check(isinstance(got, OSError), "inside: B got an answer: %r" % got)
        reason, _ = wait_drop_row(s, ob, (INGRESS_DROP,), s.cg.id)
        note("tcp_syncookies %d: SyncookiesSent +%d, %s +%d (SYNs dropped on the way in send no cookie)"
             % (mode, cookies, reason, ob.delta(reason)))
    case("reverse channel through SYN cookies (host tcp_syncookies): listener with backlog 0 in the "
         "pinned cgroup, client A fills the SYN queue, client B's handshake never reaches accept() "
         "(ingress_drop)", syncookie_host)

    def syncookie_netns():
        # tcp_syncookies 2 in a namespace of this run: every SYN is answered by a cookie, no client A needed.
        ns = NetNS("cookie")
        ns.sysctl("net.ipv4.tcp_syncookies", 2)
        port = 4000 + os.getpid() % 1000
        prog = s.py("listen_tcp.py", T4, port, 3, 0)
        for where in (s.cg, s.free):
            tok = "cookie-%s-%s" % (where.name[-4:], RUN_ID)
            p = s.run(prog, where, pre=ns.enter(), keep=True)
            try:
                first = json.loads(read_line(p, 5))
                check(first.get("phase") == "listening", "%s: could not listen: %s" % (where.name, first))
                sent0 = ns.call(tcpext, "SyncookiesSent")
                ob = s.observe()
                got = ns.call(dial, T4, port, tok)
                out, err = finish(p, "", 10)
            finally:
                stop_process(p, 1.0, signal.SIGKILL)
            r = parse_result(out, err)
            cookies = ns.call(tcpext, "SyncookiesSent") - sent0
            if where is s.cg:
                check(not r.get("accepted") and tok not in (r.get("line") or ""),
                      "inside: the client's handshake by SYN cookie reached the pinned agent's accept() "
                      "(cookies sent: %d, agent: %s)" % (cookies, brief(r)))
                check(isinstance(got, OSError), "inside: the client got an answer: %r" % got)
                wait_drop_row(s, ob, (INGRESS_DROP,), s.cg.id)
            else:
                check(r.get("line") == "ping " + tok and cookies >= 1,
                      "outside: the technique does not work (cookies sent: %d, listener: %s, client: %r)"
                      % (cookies, brief(r), got))
    case("reverse channel through SYN cookies (tcp_syncookies 2 in a namespace of this run): the "
         "client's cookie handshake never reaches the pinned listener's accept() (ingress_drop); "
         "outside it does, by cookie", syncookie_netns)

    def udp_in():
        port = free_port([T4], socket.SOCK_DGRAM)
        prog = s.py("listen_udp.py", T4, port, 3)

        def send(tok):
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            c.bind(("127.0.0.1", 0))
            c.settimeout(1.5)
            try:
                c.sendto(("ping %s\n" % tok).encode(), (T4, port))
                return c.recv(100).decode(errors="replace").strip()
            except OSError as e:
                return e
            finally:
                c.close()

        p = s.run(prog, s.cg, keep=True)
        try:
            read_line(p, 5)
            ob = s.observe()
            got = send("in-%s" % RUN_ID)
            out, err = finish(p, "", 10)
        finally:
            stop_process(p, 1.0, signal.SIGKILL)
        r = parse_result(out, err)
        check(r.get("received") is not True, "inside: the pinned agent's UDP socket received a datagram "
              "from outside: %s" % brief(r))
        check(isinstance(got, OSError), "inside: the pinned agent answered a datagram: %r" % got)
        _, rows = wait_drop_row(s, ob, (INGRESS_DROP,), s.cg.id)
        check(any(x.get("dst_addr") == "127.0.0.1" for x in rows),
              "inside: no ingress_drop row naming the sender 127.0.0.1: %s"
              % [(x.get("dst_addr"), x.get("dst_port")) for x in rows])
        ob.servers_untouched()
        p = s.run(prog, s.free, keep=True)
        try:
            read_line(p, 5)
            got = send("out-%s" % RUN_ID)
        finally:
            stop_process(p, 1.0, signal.SIGKILL)
        check(got == "pong out-%s" % RUN_ID, "outside: the technique does not work: %r" % (got,))
    case("inbound UDP: a datagram from outside to a UDP socket in the pinned cgroup is not delivered "
         "(ingress_drop, row naming the sender)", udp_in)


def device_cases(s):
    sp = s.air.steer_port

    def bound(mode, host, port, dsts):
        """Inside (pinned, in the wire's agent namespace): nothing with a loopback destination
        reaches the peer, the egress backstop drops it (egress_drop row naming the loopback
        destination it was sent to). Outside: the frames do reach the peer."""
        w = s.wire()
        prog = s.py("bind_device.py", mode, w.IF_A, host, port)
        mark = w.sniff.mark()
        ob = s.observe()
        r, pid = s.run(prog, s.cg, pre=w.agent.enter())
        check(r.get("step") != "setsockopt" and r.get("ifindex"),
              "inside: the technique could not direct its socket to %s: %s" % (w.IF_A, brief(r)))
        time.sleep(0.3)
        leaked = w.sniff.loopback_since(mark)
        check(not leaked, "inside: %d frame(s) with a loopback destination left %s for the peer: %s "
              "(technique: %s)" % (len(leaked), w.IF_A, sorted(set(leaked)), brief(r)))
        if mode.startswith("tcp"):
            check(ob.delta("steered") >= 1, "inside: the connect was not steered (counters %s)" % s.air.kernel())
        else:
            check(r["ok"] is False and r.get("errno") == errno.EPERM,
                  "inside: expected the send to fail with the egress drop's EPERM, got %s" % brief(r))
        check(ob.wait_delta("egress_drop"), "inside: egress_drop did not rise (counters %s)" % s.air.kernel())
        rows = ob.wait_refusal("egress_drop", None)
        check(any(x.get("cgroup_id") == s.cg.id and (x.get("dst_addr"), x.get("dst_port")) in dsts for x in rows),
              "inside: no egress_drop row for cgroup %d to %s: %s" % (s.cg.id, dsts, [
                  (x.get("dst_addr"), x.get("dst_port"), x.get("cgroup_id")) for x in rows]))
        ob.servers_untouched()
        mark = w.sniff.mark()
        r2, _ = s.run(prog, s.free, pre=w.agent.enter())
        check(r2.get("step") != "setsockopt", "outside: %s" % brief(r2))
        check(wait_for(lambda: w.sniff.loopback_since(mark), 2),
              "outside: nothing with a loopback destination reached the peer: the technique does not "
              "work here (%s)" % brief(r2))

    resolver = [(RESOLVER, 53)]
    steer = [("127.0.0.1", sp)]
    for mode, how in (("udp_bindtodevice", "SO_BINDTODEVICE"), ("udp_unicast_if", "IP_UNICAST_IF"),
                      ("udp_pktinfo", "sendmsg with an IP_PKTINFO ifindex")):
        case("UDP to the allowed resolver %s:53 sent out a veth (%s): nothing with a loopback "
             "destination leaves it, egress_drop; leaves from outside" % (RESOLVER, how),
             bound, mode, RESOLVER, 53, resolver)
    case("TCP connect() steered to 127.0.0.1:%d on a socket bound to a veth (SO_BINDTODEVICE): the "
         "SYN does not leave it, egress_drop; leaves from outside" % sp,
         bound, "tcp_bindtodevice", T4, s.tport, steer)
    case("TCP Fast Open sendto(MSG_FASTOPEN, TCP_FASTOPEN_NO_COOKIE) on a socket bound to a veth: the "
         "SYN and its data do not leave it, egress_drop; leaves from outside",
         bound, "tcp_fastopen_bindtodevice", T4, s.tport, steer)
    case("TCP over IPv6 to v4-mapped ::ffff:%s on a socket bound to a veth: steered, the SYN does not "
         "leave it, egress_drop; leaves from outside" % T4,
         bound, "tcp_bindtodevice", "::ffff:" + T4, s.tport, steer + [("::ffff:127.0.0.1", sp)])


MCAST_OPTIONS = [
    ("IP_ADD_MEMBERSHIP", False), ("IP_DROP_MEMBERSHIP", False), ("IP_UNBLOCK_SOURCE", False),
    ("IP_BLOCK_SOURCE", False), ("IP_ADD_SOURCE_MEMBERSHIP", False), ("IP_DROP_SOURCE_MEMBERSHIP", False),
    ("IP_MSFILTER", False),
    ("MCAST_JOIN_GROUP", False), ("MCAST_BLOCK_SOURCE", False), ("MCAST_UNBLOCK_SOURCE", False),
    ("MCAST_LEAVE_GROUP", False), ("MCAST_JOIN_SOURCE_GROUP", False), ("MCAST_LEAVE_SOURCE_GROUP", False),
    ("MCAST_MSFILTER", False),
    ("IPV6_ADD_MEMBERSHIP", True), ("IPV6_DROP_MEMBERSHIP", True),
    ("MCAST_JOIN_GROUP", True), ("MCAST_BLOCK_SOURCE", True), ("MCAST_UNBLOCK_SOURCE", True),
    ("MCAST_LEAVE_GROUP", True), ("MCAST_JOIN_SOURCE_GROUP", True), ("MCAST_LEAVE_SOURCE_GROUP", True),
    ("MCAST_MSFILTER", True),
]


def mcast_cases(s):
    import random
    a, b = random.randrange(1, 255), random.randrange(256)

    def groups(v6, n, base):
        """n groups no other case or run uses."""
        if v6:
            return ["ff3e::a1:%x:%x:%x" % (a, b, base + i) for i in range(n)]
        return ["239.%d.%d.%d" % (a, b, base + i) for i in range(n)]

    def raw(g):
        return socket.inet_pton(socket.AF_INET6 if ":" in g else socket.AF_INET, g)

    def memberships(v6):
        """Inside (pinned, in the wire's agent namespace, joining on its veth), each option on a
        socket of its own: EPERM for every one, mcast_join counted for each refused call, a row
        with our pid; no IGMP/MLD report naming any of the groups reaches the peer. Outside: every
        option works and each one's report reaches the peer."""
        w = s.wire()
        opts = [o for o, six in MCAST_OPTIONS if six == v6]
        g_in, g_out = groups(v6, len(opts), 0), groups(v6, len(opts), 100)
        source = "2001:db8::77" if v6 else "192.0.2.77"

        def prog(gs):
            return s.py("mcast_join.py", ",".join(opts), w.IF_A, w.A4, ",".join(gs), source)
        mark = w.sniff.mark()
        r, pid, ob = assert_refused(s, prog(g_in), "mcast_join", pre=w.agent.enter())
        not_refused = [x["option"] for x in r.get("results", []) if x.get("errno") != errno.EPERM]
        check(len(r.get("results", [])) == len(opts) and not not_refused,
              "inside: not refused with EPERM: %s" % (not_refused or brief(r)))
        calls = r.get("eperm_calls") or 1
        check(ob.wait_delta("mcast_join", calls), "inside: mcast_join rose by %d for %d refused setsockopt "
              "call(s)" % (ob.delta("mcast_join"), calls))
        time.sleep(0.3)
        sent = [g for g in g_in if w.sniff.carrying(raw(g), mark)]
        check(not sent, "inside: IGMP/MLD reports naming %s reached the peer" % sent)
        mark = w.sniff.mark()
        r2, _ = s.run(prog(g_out), s.free, pre=w.agent.enter())
        check(r2["ok"] is True, "outside: the technique itself does not work: %s" % brief(r2))
        def missing():
            return [o for o, g in zip(opts, g_out) if not w.sniff.carrying(raw(g), mark)]
        wait_for(lambda: not missing(), 2, 0.1)
        check(not missing(), "outside: no IGMP/MLD report for %s reached the peer: the technique does not "
              "work" % missing())

    for v6 in (False, True):
        case("setsockopt(%s, %s) on UDP sockets are refused (EPERM, mcast_join), no IGMP/MLD report "
             "leaves; they work outside" % ("SOL_IPV6" if v6 else "SOL_IP",
                                            ", ".join(o for o, six in MCAST_OPTIONS if six == v6)),
             memberships, v6)


def held_connection_cases(s):
    def pinned_after_connect():
        p = s.run(s.py("held_connection.py", T4, s.tport), s.late, keep=True)
        first = json.loads(read_line(p, 5))
        rec = s.tcp.tokens.get(first["token"])
        check(rec and not rec["via_airlockd"], "before pinning, the connection should be direct: %s" % rec)
        ob = s.observe()
        s.air.pin(s.late.path)
        out, err = finish(p, "go\n", 20)
        r = parse_result(out, err)
        check(r["ok"] is False, "after pinning, the old connection still reached the server: %s" % brief(r))
        check(r["token"] not in s.tcp.tokens, "the server received the post-pin message")
        check(ob.wait_delta("egress_drop"), "egress_drop did not rise (counters %s)" % s.air.kernel())
        rows = ob.wait_refusal("egress_drop", None)
        check(any(x.get("cgroup_id") == s.late.id for x in rows),
              "no egress_drop row for cgroup %d: %s" % (s.late.id, [(x["reason"], x.get("cgroup_id")) for x in rows]))
        new = r.get("new") or {}
        check(new.get("ok") is True, "a new connection after pinning failed: %s" % new)
        rec = s.tcp.tokens.get(new["token"])
        check(rec and rec["via_airlockd"], "the new connection after pinning was not steered: %s" % rec)
    case("TCP connection established before its cgroup was pinned: further packets dropped by the "
         "egress backstop (egress_drop), server gets nothing more; new connections steered",
         pinned_after_connect)

    def moved_in():
        p = s.run(s.py("held_connection.py", T4, s.tport), s.free, keep=True)
        first = json.loads(read_line(p, 5))
        rec = s.tcp.tokens.get(first["token"])
        check(rec and not rec["via_airlockd"], "before the move, the connection should be direct: %s" % rec)
        with open(os.path.join(s.cg.path, "cgroup.procs"), "w") as f:
            f.write("%d\n" % p.pid)
        ob = s.observe()
        out, err = finish(p, "go\n", 20)
        r = parse_result(out, err)
        check(r.get("cgroup") == s.cg.rel, "the process was not moved into the pinned cgroup: %s" % brief(r))
        # The documented limit: the socket was made in the unpinned cgroup, which the kernel judges it by.
        check(r["ok"] is True and s.tcp.tokens.get(r["token"], {}).get("via_airlockd") is False,
              "expected the documented limit (old socket keeps its direct path); got %s: update README" % brief(r))
        check(ob.delta("egress_drop") == 0, "egress_drop rose: the limit changed, update README")
        new = r.get("new") or {}
        rec = s.tcp.tokens.get(new.get("token"))
        check(new.get("ok") is True and rec and rec["via_airlockd"],
              "a new connection after the move was not steered: %s / %s" % (new, rec))
    case("known limit: a socket created in another cgroup before the process moved into the pinned one "
         "keeps its direct path (new sockets are steered)", moved_in)

    def steal_fd():
        try:
            with open("/proc/sys/kernel/yama/ptrace_scope") as f:
                scope = int(f.read())
        except OSError:
            scope = 0
        victim = s.run(s.py("held_connection.py", T4, s.tport), s.free, keep=True)
        try:
            v = json.loads(read_line(victim, 5))
            ob = s.observe()
            r, pid = s.run(s.py("steal_fd.py", victim.pid, v["fd"]), s.cg)
        finally:
            stop_process(victim, 1.0, signal.SIGKILL)
        if scope >= 1:
            check(r["ok"] is False and r.get("errno") == errno.EPERM,
                  "Yama ptrace_scope %d should refuse pidfd_getfd on a non-descendant: %s" % (scope, brief(r)))
            return
        rec = s.tcp.tokens.get(r.get("token"))
        check(r["ok"] is True and rec and not rec["via_airlockd"],
              "expected the documented limit (the stolen socket keeps its direct path); got %s / %s: "
              "update README" % (brief(r), rec))
        check(ob.delta("egress_drop") == 0, "egress_drop rose: the limit changed, update README")
    case("known limit: a pinned agent takes a connected socket from a same-uid process outside "
         "(pidfd_getfd; no Yama here) and uses its direct path", steal_fd)


def steer_loop_cases(s):
    sp = s.air.steer_port

    for host in ("0.0.0.0", "::", "127.0.0.9"):
        def refused(host=host):
            prog = s.py("steer_port_direct.py", host, sp)
            assert_refused(s, prog, "direct_steer_port")
        case("dialling the steer port through [%s]:%d (wildcard or another loopback address) is refused "
             "in the kernel (direct_steer_port)" % (host, sp), refused)


def fail_closed_cases(s):
    sp = s.air.steer_port
    prog = s.py("tcp_ipv4.py", T4, s.tport)
    squat = s.py("steer_port_squat.py", sp, 5)

    def start_squatter(cg):
        p = s.run(squat, cg, keep=True)
        first = json.loads(read_line(p, 5))
        return p, first

    def down():
        stop_process(s.air.proc, 10)
        check(s.air.proc.returncode == 0, "airlockd exited %s on SIGTERM" % s.air.proc.returncode)
        ob = s.observe_kernel_only()
        r, pid = s.run(prog, s.cg)
        check(r["ok"] is False and r.get("errno") == errno.ECONNREFUSED,
              "with airlockd down, expected ECONNREFUSED, got %s" % brief(r))
        ob.servers_untouched()
    case("airlockd stopped: a pinned agent's connect fails at once (ECONNREFUSED), nothing reaches the target",
         down)

    def pinned_squatter():
        p, first = start_squatter(s.cg)
        try:
            if first.get("phase") != "listening":
                return  # refused to bind: even better
            r, pid = s.run(prog, s.cg)
            check(r["ok"] is False, "a pinned agent reached the target through a pinned squatter: %s" % brief(r))
        finally:
            stop_process(p, 1.0, signal.SIGKILL)
            out, err = p.communicate()
        res = parse_result(out, err)
        check(res["ok"] is not True, "the pinned squatter caught the agent's connection: %s" % brief(res))
    case("airlockd stopped: a pinned agent listening on the steer address catches nothing (the egress "
         "backstop drops its answers)", pinned_squatter)

    def unpinned_squatter():
        p, first = start_squatter(s.free)
        if first.get("phase") != "listening":
            stop_process(p, 1.0, signal.SIGKILL)
            check(first.get("errno") in (errno.EACCES, errno.EPERM, errno.EADDRINUSE),
                  "squatter refused with an unexpected error: %s" % first)
            return
        try:
            r, pid = s.run(prog, s.cg)
            out, err = p.communicate(timeout=8)
        finally:
            stop_process(p, 1.0, signal.SIGKILL)
        res = parse_result(out, err)
        check(res["ok"] is not True and r["ok"] is not True,
              "uid %d outside the pinned cgroups bound 127.0.0.1:%d (an unprivileged port) while airlockd "
              "was down and took a pinned agent's connection: squatter read %r, agent got %s; the agent "
              "has a path that is neither Airlock nor closed (and airlockd cannot restart while the port "
              "is taken)" % (NOBODY, sp, res.get("data"), "its answer" if r["ok"] else brief(r)))
    case("airlockd stopped: an unprivileged process outside the pinned cgroups cannot take over the steer "
         "port and catch pinned agents' connections", unpinned_squatter)

    def restart():
        s.air.start()
        s.tcp.airlockd_pid = s.air.proc.pid
        assert_steered(s, prog, [T4], s.tport)
    case("airlockd restarted: re-adopts the pinned programs, agents are steered again", restart)


def flood_case(s):
    n = 3000

    def flood():
        ob = s.observe()
        t0 = time.monotonic()
        r, pid = s.run(s.py("udp_flood.py", T4, s.uport, n), s.cg)
        check(r.get("refused") == n and r["ok"] is False, "not every send was refused: %s" % brief(r))
        check(wait_for(lambda: ob.delta("udp_denied") >= n, 3),
              "kernel counter udp_denied rose by %d, expected %d" % (ob.delta("udp_denied"), n))
        ob.servers_untouched()
        time.sleep(1.5)  # one summary tick
        rows = ob.new_refusals()
        elapsed = time.monotonic() - t0
        own = [x for x in rows if x["reason"] == "udp_denied" and x["pid"] == pid]
        summary = [x for x in rows if x["reason"] == "events_suppressed"]
        check(len(own) <= 100 + 20 * elapsed + 5, "%d audit rows for %d refusals in %.1fs: not rate-limited"
              % (len(own), n, elapsed))
        check(summary, "no events_suppressed summary row after %d refusals" % n)
        total = len(own) + sum(x.get("count") or 0 for x in summary)
        check(total <= n + 5, "rows account for %d refusals, more than the %d made" % (total, n))
    case("a flood of %d refused sends: each counted in the kernel, audit rows rate-limited with a "
         "summary row (events_suppressed)" % n, flood)


def read_line(p, timeout):
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    check(ready, "held_connection.py printed nothing in %ds" % timeout)
    line = p.stdout.readline()
    if not line.strip():
        stop_process(p, 1.0, signal.SIGKILL)
        raise AssertionError("held_connection.py ended early: %s" % p.stderr.read()[-300:])
    return line


def finish(p, data, timeout):
    try:
        return p.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(p, 1.0, signal.SIGKILL)
        raise AssertionError("held_connection.py did not finish in %ds" % timeout)


# ---------------------------------------------------------------- main

def build():
    """make all, unless AIRLOCK_BUILD names binaries someone else built."""
    if os.environ.get("AIRLOCK_BUILD"):
        for b in (AIRLOCKD, AIRLOCKCTL):
            check(os.access(b, os.X_OK), "AIRLOCK_BUILD: no %s" % b)
        return
    if subprocess.run(["make", "-q", "-C", REPO, "all"], capture_output=True).returncode != 0:
        r = subprocess.run(["make", "-C", REPO, "all"], capture_output=True, text=True)
        check(r.returncode == 0, "make all failed: %s" % r.stderr.strip()[-400:])


def main():
    if os.geteuid() != 0:
        print("not ok - bypass: setup: needs root (loads BPF, creates cgroups)")
        return 1
    lib.install_exit_handlers()
    t0 = time.monotonic()
    try:
        try:
            build()
            s = Suite()
        except Exception as e:
            RES.not_ok("bypass: setup", e)
            traceback.print_exc(file=sys.stderr)
            return 1
        note("steer port %d, targets tcp %s/[%s]:%d udp %s:%d,443 dns %s:53, cgroup %s (id %d)"
             % (s.air.steer_port, T4, T6, s.tport, T4, s.uport, OTHER_DNS, s.cg.rel, s.cg.id))
        # Order matters: the held connection cases make egress drops, the fail-closed cases
        # restart airlockd, and the flood empties the audit rate limit; each comes after
        # the cases whose counters or rows it would disturb.
        for group in (tcp_cases, udp_cases, socket_cases, unshare_cases, self_protection_cases,
                      inbound_cases, device_cases, mcast_cases, held_connection_cases, steer_loop_cases,
                      fail_closed_cases, flood_case):
            group(s)
        alive = s.air.proc.poll() is None
        case("airlockd still running after every attempt", lambda: check(alive, "airlockd exited %s: %s"
                                                                          % (s.air.proc.returncode, s.air.log_tail())))
    finally:
        lib.run_cleanup()
    note("%d passed, %d failed in %.1fs" % (RES.passed, RES.failed, time.monotonic() - t0))
    return 1 if RES.failed else 0


if __name__ == "__main__":
    sys.exit(main())
