"""Helpers for integration tests: a test cgroup, airlockd under test, loopback servers, cleanup on any exit.

Safety rules these helpers keep (see shared/design.md, test rules):
- the only cgroup touched is one this run creates, <v2 mount>/airlock-test-<pid>-<rand>,
  and only processes started by the test go into it;
- BPF pins live under /sys/fs/bpf/airlock-test-<pid>-<rand>, unique to the run;
- traffic goes to 127.0.0.0/8 and ::1 only;
- only processes the test started are stopped, by pid;
- everything is removed on any exit: try/finally in the test, plus atexit and
  signal handlers here (cleanup actions are idempotent and run LIFO).
"""

import atexit
import errno
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import socketserver
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("AIRLOCK_BUILD") or os.path.join(REPO, "build")
AIRLOCKD = os.path.join(BUILD, "airlockd")
AIRLOCKCTL = os.path.join(BUILD, "airlockctl")
UNIT = os.path.join(REPO, "packaging", "airlockd.service")


def unit_capabilities(path=UNIT):
    """The capabilities the systemd unit leaves airlockd (its CapabilityBoundingSet=), as
    setpriv names them (bpf, net_admin, ...); None if it sets none."""
    with open(path) as f:
        for line in f:
            if line.startswith("CapabilityBoundingSet="):
                return [c[len("CAP_"):].lower() for c in line.split("=", 1)[1].split()]
    return None


def bounding_set_wrap(caps):
    """argv that runs a command with only these capabilities (setpriv names: bpf, net_admin...)."""
    return ["/usr/bin/setpriv", "--bounding-set=-all," + ",".join("+" + c for c in caps), "--"]


def _daemon_wrap():
    if "AIRLOCK_DAEMON_WRAP" in os.environ:
        return shlex.split(os.environ["AIRLOCK_DAEMON_WRAP"])
    caps = unit_capabilities()
    return bounding_set_wrap(caps) if caps else []


def ensure_bpffs():
    """Mounts bpffs at /sys/fs/bpf if it is not there, as systemd does at boot: the daemon
    (with the unit's capabilities, no CAP_SYS_ADMIN) cannot mount it itself."""
    with open("/proc/self/mounts") as f:
        if any(ln.split()[1:3] == ["/sys/fs/bpf", "bpf"] for ln in f):
            return
    subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)


# Every test's airlockd runs with only the capabilities the systemd unit gives it (root, but
# no more than that), so the suites show the unit's set is enough for all they do.
# AIRLOCK_DAEMON_WRAP replaces the wrapper ("" runs the daemon with all of root's).
DAEMON_WRAP = _daemon_wrap()
PY = "/usr/bin/python3"
RUN_ID = "%d-%s" % (os.getpid(), secrets.token_hex(3))

# Clients run with no proxy settings, so curl and urllib dial the address they are given.
CLIENT_ENV = {k: v for k, v in os.environ.items()
              if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
CLIENT_ENV["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"


# ---------------------------------------------------------------- results

class Results:
    """TAP-ish reporting: one `ok - NAME` / `not ok - NAME: why` per case."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name):
        self.passed += 1
        print("ok - %s" % name, flush=True)

    def not_ok(self, name, why):
        self.failed += 1
        why = " ".join(str(why).split())
        print("not ok - %s: %s" % (name, why), flush=True)

    def case(self, name, fn, *args):
        """Runs fn(*args); an AssertionError or any exception is a failure. Returns True if it passed."""
        t0 = time.monotonic()
        try:
            fn(*args)
        except AssertionError as e:
            self.not_ok(name, e)
            return False
        except Exception as e:  # a crash in one case must not stop the others
            self.not_ok(name, "%s: %s" % (type(e).__name__, e))
            traceback.print_exc(file=sys.stderr)
            return False
        self.ok(name)
        note("%s took %.1fs" % (name, time.monotonic() - t0))
        return True


def note(msg):
    print("# " + msg, flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def wait_for(pred, timeout, interval=0.05):
    """Polls pred() until it returns a true value or timeout seconds pass; returns the last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------- cleanup

_cleanups = []
_cleanup_lock = threading.Lock()


def on_cleanup(fn, *args):
    """Registers fn(*args) to run at exit (LIFO); returns a handle for run_cleanup()."""
    item = [fn, args, False]
    with _cleanup_lock:
        _cleanups.append(item)
    return item


def run_cleanup(item=None):
    """Runs one registered cleanup now (item), or all of them (None), each at most once."""
    with _cleanup_lock:
        items = [item] if item is not None else list(reversed(_cleanups))
    for it in items:
        if it[2]:
            continue
        it[2] = True
        try:
            it[0](*it[1])
        except Exception as e:
            print("# cleanup %s failed: %s" % (getattr(it[0], "__name__", it[0]), e),
                  file=sys.stderr, flush=True)


def _on_signal(sig, frame):
    # Unwind through the test's finally blocks; atexit catches whatever is left.
    signal.signal(sig, signal.SIG_IGN)
    raise SystemExit(128 + sig)


def install_exit_handlers():
    atexit.register(run_cleanup)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)


def make_tempdir():
    d = tempfile.mkdtemp(prefix="airlock-test-%s." % RUN_ID)
    on_cleanup(shutil.rmtree, d, True)
    return d


def make_workdir():
    """A temp dir other uids may enter (agents and reviewers run as other users) holding home
    (0755, the clients' HOME) and ca (0700, for airlockd's ca_dir). Returns (dir, home, ca)."""
    d = make_tempdir()
    os.chmod(d, 0o755)
    home, ca = os.path.join(d, "home"), os.path.join(d, "ca")
    os.mkdir(home, 0o755)
    os.mkdir(ca, 0o700)
    return d, home, ca


def readable_copy(workdir, path):
    """A copy of path in workdir that other uids may read (agents run as another uid, and the
    checkout may be a 0700 clone); returns its path."""
    dst = os.path.join(workdir, os.path.basename(path))
    shutil.copy(path, dst)
    os.chmod(dst, 0o644)
    return dst


# ---------------------------------------------------------------- processes

def rss_kib(pid):
    """The resident memory of process pid in KiB (0 if /proc does not say)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stop_process(p, timeout=5.0, sig=signal.SIGTERM):
    """Stops a Popen we started: sig, then SIGKILL after timeout. Returns its exit code."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


# ---------------------------------------------------------------- cgroup

def cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "cgroup2":
                return parts[1]
    raise RuntimeError("no cgroup2 mount in /proc/self/mounts")


class TestCgroup:
    """A fresh cgroup v2 directory under the mount; holds only processes the test starts."""

    def __init__(self, suffix=""):
        """suffix (e.g. "-b") names a second cgroup of the same run: airlock-test-<run><suffix>."""
        self.mount = cgroup2_mount()
        self.name = "airlock-test-%s%s" % (RUN_ID, suffix)
        self.path = os.path.join(self.mount, self.name)
        self.rel = "/" + self.name
        os.mkdir(self.path)
        on_cleanup(self.remove)
        self.id = os.stat(self.path).st_ino

    def procs(self):
        return TestCgroup.procs_of(self.path)

    def argv(self, argv):
        """argv wrapped so the process joins this cgroup before it execs (same pid)."""
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.path] + list(argv)

    def run(self, argv, timeout=20, **kw):
        """Runs argv inside the cgroup; returns CompletedProcess (text). Killed on timeout."""
        kw.setdefault("env", CLIENT_ENV)
        return subprocess.run(self.argv(argv), capture_output=True, text=True, timeout=timeout, **kw)

    def popen(self, argv, **kw):
        kw.setdefault("env", CLIENT_ENV)
        p = subprocess.Popen(self.argv(argv), **kw)
        on_cleanup(stop_process, p, 2.0, signal.SIGKILL)
        return p

    def populated(self):
        try:
            with open(os.path.join(self.path, "cgroup.events")) as f:
                return "populated 1" in f.read()
        except FileNotFoundError:
            return False

    def kill_all(self):
        """Kills what is left in the cgroup and the cgroups under it (a test may make a subtree,
        e.g. a container's systemd): only processes this test put there, or their children."""
        kill = os.path.join(self.path, "cgroup.kill")
        for _ in range(50):
            if not self.populated():
                return
            if os.path.exists(kill):
                with open(kill, "w") as f:
                    f.write("1")
            else:
                for d, _, _ in os.walk(self.path):
                    for pid in TestCgroup.procs_of(d):
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
            time.sleep(0.05)

    @staticmethod
    def procs_of(d):
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    def remove(self):
        if not os.path.isdir(self.path):
            return
        self.kill_all()
        for _ in range(100):
            try:
                # Deepest first: a subtree the test made (or a container's init made in it).
                for d, _, _ in sorted(os.walk(self.path), key=lambda w: -w[0].count("/")):
                    os.rmdir(d)
                return
            except FileNotFoundError:
                continue
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                time.sleep(0.05)
        raise RuntimeError("cgroup %s still busy" % self.path)


def reviewer_ctl(rsock, uid, *args, timeout=20):
    """airlockctl over the review socket rsock as OS uid `uid` (a reviewer's own, no groups);
    fails the case unless it exits 0. Returns the CompletedProcess."""
    argv = ["/usr/bin/setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups", AIRLOCKCTL,
            "--review-socket", rsock] + [str(a) for a in args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=CLIENT_ENV)
    check(r.returncode == 0, "airlockctl %s: %s" % (" ".join(map(str, args)), r.stderr.strip()))
    return r


# ---------------------------------------------------------------- ports

def free_port(hosts=("127.0.0.1", "::1"), kind=socket.SOCK_STREAM):
    """A port (TCP unless kind says otherwise) that is free on every host given right now
    (the caller binds it soon after)."""
    for _ in range(200):
        socks = []
        try:
            first = socket.socket(socket.AF_INET6 if ":" in hosts[0] else socket.AF_INET, kind)
            socks.append(first)
            first.bind((hosts[0], 0))
            port = first.getsockname()[1]
            for h in hosts[1:]:
                s = socket.socket(socket.AF_INET6 if ":" in h else socket.AF_INET, kind)
                socks.append(s)
                s.bind((h, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port on %s" % (hosts,))


# ---------------------------------------------------------------- HTTP servers

class CountingHTTPServer(ThreadingHTTPServer):
    """An HTTP/1.0 server that counts the TCP connections it accepted."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, body, family):
        self.address_family = family
        self.body = body
        self.accepted = 0
        self.peers = []
        super().__init__(addr, _Handler)

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn): skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self):
        conn, addr = super().get_request()
        self.accepted += 1
        self.peers.append(addr)
        return conn, addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


def http_request(url, method="GET", data=None, headers=None, timeout=15, ctx=None):
    """(status, headers as a dict, body text) of one request from this process, through no proxy;
    an error status is an answer like any other. ctx: the TLS context for an https URL."""
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def start_http_server(host, port, body):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    srv = CountingHTTPServer((host, port), body, family)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()

    def stop():
        srv.shutdown()
        srv.server_close()
    on_cleanup(stop)
    return srv


ECHO_SERVER = r"""
import asyncio, sys
async def handle(r, w):
    try:
        while True:
            data = await r.read(262144)
            if not data:
                break
            w.write(data)
            await w.drain()
        if w.can_write_eof():
            w.write_eof()
        await w.drain()
    except Exception:
        pass
    finally:
        w.close()
async def main():
    srv = await asyncio.start_server(handle, sys.argv[1], int(sys.argv[2]), backlog=1024)
    print("ready", flush=True)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
"""


def start_echo_server(host, port):
    """An asyncio TCP echo server in its own process (outside the test cgroup)."""
    p = subprocess.Popen([PY, "-c", ECHO_SERVER, host, str(port)], stdout=subprocess.PIPE, text=True)
    on_cleanup(stop_process, p)
    line = p.stdout.readline()
    if line.strip() != "ready":
        stop_process(p)
        raise RuntimeError("echo server did not start (exit %s)" % p.poll())
    return p


# ---------------------------------------------------------------- airlockd

class Airlock:
    """airlockd under test with its own config, control socket, store and pin root."""

    def __init__(self, tmpdir, resources, steer_port=None, settings=(), binaries=(AIRLOCKD, AIRLOCKCTL)):
        """resources: (name, addresses, ports) tuples for protocol tcp, or a resource block as
        text (e.g. a postgres resource); settings: extra top-level config lines; binaries: the
        airlockd and airlockctl to run (e.g. copies a rebuild of the tree cannot pull away)."""
        self.tmpdir = tmpdir
        self.airlockd, self.airlockctl = binaries
        self.steer_port = steer_port or free_port()
        self.sock = os.path.join(tmpdir, "control.sock")
        self.store = os.path.join(tmpdir, "airlock.db")
        self.pin_root = "/sys/fs/bpf/airlock-test-%s" % RUN_ID
        self.conf = os.path.join(tmpdir, "airlock.conf")
        self.log = os.path.join(tmpdir, "airlockd.log")
        self.proc = None
        self.banner = ""
        self.wrap = DAEMON_WRAP
        self.write_conf(resources, settings)
        on_cleanup(self.down)

    def write_conf(self, resources, settings=()):
        """(Re)writes the config file; a restart (stop(), start()) picks it up. It says
        `default relay` unless settings has a default line."""
        lines = [
            "# airlockd config written by %s" % os.path.basename(sys.argv[0]),
            "steer_port %d" % self.steer_port,
            'control_socket "%s"' % self.sock,
            'store "%s"' % self.store,
            'pin_root "%s"' % self.pin_root,
        ] + ([] if any(str(x).split()[:1] == ["default"] for x in settings) else ["default relay"]) + [
            "connect_timeout 2s",
        ] + list(settings)
        # The console's default port is shared by every daemon: tests that want it name a free one.
        if not any(str(x).startswith("console_listen") for x in settings):
            lines.append("console_listen off")
        for res in resources:
            if isinstance(res, str):
                lines += res.strip("\n").splitlines()
                continue
            name, addrs, ports = res
            lines += ['resource "%s" {' % name,
                      "    address " + " ".join(addrs),
                      "    port " + " ".join(str(p) for p in ports),
                      "    protocol tcp",
                      "}"]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=15, env=None):
        """Starts airlockd; returns the banner once it printed its pinned: line. env: extra
        environment variables for it."""
        check(self.proc is None or self.proc.poll() is not None, "airlockd already running")
        ensure_bpffs()
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.wrap + [self.airlockd, "-c", self.conf], stdout=subprocess.PIPE,
                                     stderr=logf, text=True, env=dict(os.environ, **(env or {})))
        logf.close()
        on_cleanup(stop_process, self.proc)
        out = []
        deadline = time.monotonic() + timeout
        # readline blocks; the banner is printed at once after setup, so a
        # thread with a deadline keeps a hang from stopping the test.
        done = threading.Event()

        def reader():
            for line in self.proc.stdout:
                out.append(line)
                if line.lstrip().startswith("pinned:"):
                    break
            done.set()
        threading.Thread(target=reader, daemon=True).start()
        done.wait(max(0.0, deadline - time.monotonic()))
        self.banner = "".join(out)
        if not done.is_set() or not any(l.lstrip().startswith("pinned:") for l in out):
            rc = stop_process(self.proc)
            raise AssertionError("airlockd did not become ready (exit %s): %s / log: %s"
                                 % (rc, self.banner.strip(), self.log_tail()))
        # Keep draining stdout so the daemon never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        return self.banner

    def log_lines(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def log_tail(self, n=15):
        return " | ".join(self.log_lines()[-n:])

    def check_log_clean(self, asserts=True):
        """Fails if the log has a sanitizer report (runtime error, AddressSanitizer) or, unless
        asserts is False, a line that mentions an assert."""
        bad = [l for l in self.log_lines() if "runtime error" in l or "AddressSanitizer" in l
               or (asserts and "assert" in l.lower())]
        check(not bad, "airlockd log: %s" % bad[:3])

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def ctl(self, *args, timeout=10):
        return subprocess.run([self.airlockctl, "-s", self.sock] + list(args), capture_output=True,
                              text=True, timeout=timeout)

    def ctl_json(self, *args):
        r = self.ctl(*args, "--json")
        check(r.returncode == 0, "airlockctl %s exited %d: %s" % (" ".join(args), r.returncode,
                                                                   r.stderr.strip()))
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise AssertionError("airlockctl %s printed no JSON (%s): %r" % (" ".join(args), e,
                                                                             r.stdout[:300]))

    def status(self):
        return self.ctl_json("status")

    def connections(self, limit=1000):
        return self.ctl_json("connections", "--limit", str(limit))

    def db_write(self, sql, args=()):
        """Changes the store straight in sqlite, as something outside airlockd (a reboot, an
        older run) would have left it: only while airlockd is stopped. Returns the rows changed."""
        check(not self.running(), "db_write while airlockd runs")
        db = sqlite3.connect(self.store, timeout=10)
        try:
            with db:
                return db.execute(sql, args).rowcount
        finally:
            db.close()

    def db_rows(self, where="1", args=(), table="connections"):
        """Rows of a store table (connections unless told) read straight from sqlite (as dicts)."""
        db = sqlite3.connect("file:%s?mode=ro" % self.store, uri=True, timeout=5)
        try:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM %s WHERE %s ORDER BY id"
                                                % (table, where), args)]
        finally:
            db.close()

    def max_id(self, table="connections"):
        """The newest row id. For connections, airlockd's own view when it runs: rows it
        wrote in the last milliseconds may not be committed (group commit) for sqlite readers."""
        if table == "connections" and self.running():
            r = self.ctl("connections", "--limit", "1", "--json")
            if r.returncode == 0:
                try:
                    rows = json.loads(r.stdout)
                    return max((x["id"] for x in rows), default=0)
                except ValueError:
                    pass
        rows = self.db_rows(table=table)
        return max((r["id"] for r in rows), default=0)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc is None:
            return None
        return stop_process(self.proc, timeout, sig)

    def down(self):
        """Leaves nothing behind: stops the daemon, removes every pin under pin_root."""
        if self.running():
            self.stop()
        if os.path.exists(self.pin_root):
            r = subprocess.run([self.airlockctl, "-s", self.sock, "down", "--pin-root", self.pin_root],
                               capture_output=True, text=True, timeout=30)
            if os.path.exists(self.pin_root):
                note("airlockctl down left %s (exit %d: %s); removing it by hand"
                     % (self.pin_root, r.returncode, r.stderr.strip()))
                _rm_bpffs_tree(self.pin_root)


def _rm_bpffs_tree(root):
    if not root.startswith("/sys/fs/bpf/airlock-test-"):
        return
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for f in filenames:
            os.unlink(os.path.join(dirpath, f))
        for d in dirnames:
            os.rmdir(os.path.join(dirpath, d))
    os.rmdir(root)


# ---------------------------------------------------------------- a test program's main

def run_suite(res, setup, cases, daemon, leftovers, prefix="", label=None, log_tail=None,
              before_stop=None, on_failure=None):
    """Runs setup(), then each (name, fn) in cases as res.case(prefix + name); then, however
    that ended, stops the daemon, shows its log and runs every cleanup. Returns the exit status.

    daemon(): the Airlock under test, or None; leftovers(): paths this run made, each of which
    must be gone after the cleanup (None entries are skipped); label: what the setup and
    cleanup lines are named after (prefix unless told); log_tail: None shows the daemon's
    error and warn lines (all of its log once a case failed), a number N its last N lines
    only once a case failed; before_stop(): runs before the daemon is stopped; on_failure():
    runs after the log is shown, once a case failed.
    """
    label = prefix if label is None else label
    only = os.environ.get("AIRLOCK_CASES")  # a developer's run: the cases whose name or function has this
    if only:
        cases = [(n, fn) for n, fn in cases if only in n or only in fn.__name__]
    # cases left out by function name (comma-separated; tests/vm/test_debian_kernel.sh uses it)
    skip = set(filter(None, os.environ.get("AIRLOCK_SKIP_CASES", "").split(",")))
    if skip:
        cases = [(n, fn) for n, fn in cases if fn.__name__ not in skip]
    install_exit_handlers()
    t0 = time.monotonic()
    try:
        try:
            setup()
        except Exception as e:
            res.not_ok(label + "setup", "%s: %s" % (type(e).__name__, e))
            return 1
        for name, fn in cases:
            res.case(prefix + name, fn)
    finally:
        if before_stop is not None:
            before_stop()
        al = daemon()
        if al is not None and al.running():
            al.stop()
        if al is not None and log_tail is None:
            for line in al.log_lines():
                if res.failed or "error" in line or "warn" in line:
                    note("airlockd: " + line)
        elif al is not None and res.failed:
            for line in al.log_lines()[-log_tail:]:
                note("airlockd: " + line)
        if res.failed and on_failure is not None:
            on_failure()
        run_cleanup()
    left = [p for p in leftovers() if p and os.path.exists(p)]
    if left:
        res.not_ok(label + "cleanup", "left behind %s" % left)
    note("%d passed, %d failed in %.1fs" % (res.passed, res.failed, time.monotonic() - t0))
    return 1 if res.failed else 0
