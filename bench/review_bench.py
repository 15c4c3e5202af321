#!/usr/bin/env python3
"""Review benchmark (not a test): approval-to-first-byte-upstream latency and memory per parked flow.

Starts a throwaway PostgreSQL cluster on 127.0.0.7 and, in front of it on the same address,
a small timestamping TCP relay that stands in for the database's address: the resource is
the relay's port, so Airlock's upstream connections pass through it and the relay notes
when each approved statement's first byte reaches it. airlockd runs with a rule that sends
every UPDATE to review; N flows are parked from N agent connections (N = 1, 100, 1000; raw
protocol clients in one process, inside a pinned test cgroup, as uid 65534), then:
  - memory: airlockd's RSS with N idle sessions, then with the N statements parked;
  - latency: approves the requests one by one over the review socket and measures from
    sending the approval to
      * the statement's first byte arriving upstream (the issue's metric; the relay's own
        event-loop delay is included, so this is an upper bound),
      * the agent receiving CommandComplete (the whole way: upstream, the UPDATE with the
        server's commit, and back),
      * the review socket's answer ("ack": the decision is durable).
Prints p50/p99 and KiB per parked flow. Targets (issue 6): p99 <= 5 ms, <= 64 KiB per flow.
"""
import json
import os
import re
import selectors
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import lib  # noqa: E402
import pgcluster  # noqa: E402

ADDR = "127.0.0.7"
SIZES = [int(x) for x in os.environ.get("BENCH_PARKED", "1,100,1000").split(",")]


class Relay:
    """A TCP relay on ADDR that forwards every connection to the server and notes the time
    each "WHERE id = N" statement's first byte arrives (time.monotonic, the clock the
    bench and the agent use)."""

    PAT = re.compile(rb"UPDATE t SET v = v \+ 1 WHERE id = (\d+)")

    def __init__(self, upstream_port):
        self.upstream = (ADDR, upstream_port)
        self.lsn = socket.socket()
        self.lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsn.bind((ADDR, 0))
        self.lsn.listen(4096)
        self.lsn.setblocking(False)
        self.port = self.lsn.getsockname()[1]
        self.arrived = {}
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsn, selectors.EVENT_READ, None)
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            for key, _ in self.sel.select(0.2):
                if key.data is None:
                    try:
                        c, _ = self.lsn.accept()
                    except BlockingIOError:
                        continue
                    u = socket.create_connection(self.upstream)
                    for s in (c, u):
                        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.sel.register(c, selectors.EVENT_READ, (u, True))
                    self.sel.register(u, selectors.EVENT_READ, (c, False))
                    continue
                peer, from_airlock = key.data
                try:
                    d = key.fileobj.recv(65536)
                except OSError:
                    d = b""
                t = time.monotonic()
                if not d:
                    for s in (key.fileobj, peer):
                        try:
                            self.sel.unregister(s)
                        except (KeyError, ValueError):
                            pass
                        s.close()
                    continue
                if from_airlock and d[:1] == b"Q":
                    m = self.PAT.search(d)
                    if m:
                        self.arrived.setdefault(int(m.group(1)), t)
                peer.sendall(d)

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.lsn.close()


AGENT = r'''
import selectors, socket, struct, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def msg(t, body): return t + struct.pack("!I", len(body) + 4) + body
socks = []
for i in range(n):
    s = socket.create_connection((host, port))
    body = struct.pack("!I", 196608) + b"user\0bench\0database\0bench\0\0"
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    socks.append(s)
buf = {s: b"" for s in socks}
def read_until_z(s):
    while True:
        while len(buf[s]) >= 5:
            t = buf[s][:1]; ln = struct.unpack("!I", buf[s][1:5])[0]
            if len(buf[s]) < ln + 1: break
            m, buf[s] = buf[s][:ln + 1], buf[s][ln + 1:]
            if t == b"Z": return
            if t == b"E": raise SystemExit("error: %r" % m)
        d = s.recv(65536)
        if not d: raise SystemExit("closed")
        buf[s] += d
for s in socks: read_until_z(s)
print("ready", flush=True)
sys.stdin.readline()                      # the bench measured idle memory
for i, s in enumerate(socks):
    q = b"UPDATE t SET v = v + 1 WHERE id = %d\0" % (i + 1)
    s.sendall(msg(b"Q", q))
print("sent", flush=True)
# The time is taken right after recv, and nothing is written until all are in, so this
# process's own output never shows up as latency.
sel = selectors.DefaultSelector()
for i, s in enumerate(socks): sel.register(s, selectors.EVENT_READ, i)
done = {}
while len(done) < n:
    ready = sel.select(30)
    if not ready: raise SystemExit("no answer in 30 s (%d of %d)" % (len(done), n))
    for key, _ in ready:
        s, i = key.fileobj, key.data
        d = s.recv(65536)
        t = time.monotonic()
        if not d: raise SystemExit("closed")
        buf[s] += d
        while len(buf[s]) >= 5:
            ln = struct.unpack("!I", buf[s][1:5])[0]
            if len(buf[s]) < ln + 1: break
            typ, buf[s] = buf[s][:1], buf[s][ln + 1:]
            if typ == b"E": raise SystemExit("error on connection %d" % i)
            if typ == b"C" and i not in done:
                done[i] = t
                sel.unregister(s)
                break
sys.stdout.write("".join("done %d %.6f\n" % (i, t) for i, t in sorted(done.items())))
sys.stdout.flush()
'''


def review_call(path, req):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall((json.dumps(req) + "\n").encode())
    data = b""
    while not data.endswith(b"\n"):
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return json.loads(data)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def main():
    lib.install_exit_handlers()
    tmp = lib.make_tempdir()
    os.chmod(tmp, 0o755)
    cluster = pgcluster.Cluster(ADDR, max_connections=max(SIZES) + 20,
                                extra_conf="shared_buffers = 32MB\nmax_wal_size = 1GB\n"
                                # The server shares this disk; a real database does not.
                                # Its commits stay off the disk that Airlock syncs its
                                # decisions to, so they do not count as Airlock's latency.
                                "fsync = off\nsynchronous_commit = off\n")
    cluster.start(setup_sql="CREATE ROLE bench LOGIN PASSWORD 'benchpw';\n"
                  "CREATE DATABASE bench OWNER bench;\n\\c bench\nSET ROLE bench;\n"
                  "CREATE TABLE t (id int PRIMARY KEY, v int);\n"
                  "INSERT INTO t SELECT g, 0 FROM generate_series(1, %d) g;\n" % max(SIZES))
    secrets = pgcluster.write_secrets(os.path.join(tmp, "secrets.conf"), [("pgcred", "bench", "benchpw")])
    relay = Relay(cluster.port)
    lib.on_cleanup(relay.close)
    res = pgcluster.pg_resource("pg", ADDR, relay.port,
                                rules=["rule review kind update timeout 10m"])
    air = lib.Airlock(tmp, [res], settings=['secrets "%s"' % secrets, 'ca_dir "%s/ca"' % tmp,
                                            "max_sessions 100000"])
    air.start()
    review = os.path.join(tmp, "review.sock")
    r = air.ctl("user", "add", "benchreviewer", "--uid", "0")
    if r.returncode != 0:
        raise SystemExit("user add: " + r.stderr)
    cg = lib.TestCgroup()
    r = air.ctl("pin", cg.path)
    if r.returncode != 0:
        raise SystemExit("pin: " + r.stderr)
    pid = air.proc.pid
    print("%-7s %9s %10s %10s | %-17s %8s | %-17s | %-13s" % (
        "parked", "idle KiB", "parked KiB", "KiB/parked", "upstream p50/p99", "max",
        "complete p50/p99", "ack p50/p99"))
    # A first parked flow, not reported, warms what the daemon sets up once (its first
    # upstream login, caches, the heap): the figures are per flow, not per daemon.
    for k, n in enumerate([1] + SIZES):
        import subprocess
        base = lib.rss_kib(pid)
        p = cg.popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                      "/usr/bin/python3", "-c", AGENT, ADDR, str(relay.port), str(n)],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        lib.on_cleanup(lib.stop_process, p)
        if p.stdout.readline().strip() != "ready":
            raise SystemExit("agent did not connect")
        time.sleep(0.3)
        idle = lib.rss_kib(pid)
        p.stdin.write("go\n")
        p.stdin.flush()
        p.stdout.readline()
        deadline = time.monotonic() + 60
        pending = []
        while time.monotonic() < deadline:
            pending = review_call(review, {"cmd": "pending"}).get("pending", [])
            if len(pending) >= n:
                break
            time.sleep(0.05)
        parked = lib.rss_kib(pid)
        # Which connection parked which request, by its statement: connection i sent
        # "... WHERE id = i+1" (the order the requests were made in is not the connections').
        conn_of = {}
        for x in pending:
            m = re.search(r"WHERE id = (\d+)", x.get("command") or "")
            if not m:
                raise SystemExit("request %s: unexpected command %r" % (x.get("id"), x.get("command")))
            conn_of[x["id"]] = int(m.group(1)) - 1
        if len(set(conn_of.values())) != n:
            raise SystemExit("%d requests for %d connections" % (len(set(conn_of.values())), n))
        ids = sorted(conn_of)
        sent, acked = {}, {}
        for rid in ids:
            sent[rid] = time.monotonic()
            resp = review_call(review, {"cmd": "approve", "id": rid})
            acked[rid] = time.monotonic()
            if not resp.get("ok"):
                raise SystemExit("approve %d: %s" % (rid, resp))
        done = {}
        while len(done) < n:
            line = p.stdout.readline()
            if not line:
                break
            _, i, t = line.split()
            done[int(i)] = float(t)
        if len(done) < n:
            raise SystemExit("%d of %d agent connections saw CommandComplete" % (len(done), n))
        lat = [(done[conn_of[rid]] - sent[rid]) * 1000 for rid in ids]
        missing = [rid for rid in ids if conn_of[rid] + 1 not in relay.arrived]
        if missing:
            raise SystemExit("%d approved statements never reached the relay" % len(missing))
        up = [(relay.arrived.pop(conn_of[rid] + 1) - sent[rid]) * 1000 for rid in ids]
        lib.stop_process(p)
        ack = [(acked[rid] - sent[rid]) * 1000 for rid in ids]
        if k == 0:
            time.sleep(0.5)
            continue
        print("%-7d %9d %10d %10.1f | %7.2f / %7.2f %8.2f | %7.2f / %7.2f | %5.2f / %5.2f" % (
            n, idle - base, parked - base, (parked - idle) / float(n) + (idle - base) / float(n),
            pct(up, 50), pct(up, 99), max(up), pct(lat, 50), pct(lat, 99), pct(ack, 50), pct(ack, 99)))
        sys.stdout.flush()
        time.sleep(0.5)
    print("(ms from the approval sent; upstream = the statement's first byte reached the server's "
          "address (target: p99 <= 5 ms); complete = the agent has CommandComplete; ack = the review "
          "socket's answer, i.e. the decision is durable. KiB/parked = airlockd RSS growth per session "
          "with its statement parked, idle session included)")
    lib.run_cleanup()


if __name__ == "__main__":
    main()
