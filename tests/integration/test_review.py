"""Review integration test (issue 6): statements held for reviewers, approvals, grants, revocation, denial, timeout.

Run as root with /usr/bin/python3. Prints `ok - review: NAME` / `not ok - review: NAME: why` per
case and exits 1 if any failed. It starts a throwaway PostgreSQL 15 cluster (pgcluster.py,
127.0.0.6 only), an airlockd whose postgres resource sends writes to review, two pinned test
cgroups (agents run there as uid 65534), and registers reviewers with OS uids that the test
takes with setpriv to call `airlockctl --review-socket ... approve|deny|...`. Everything
(cluster, daemon, cgroups, pins, temp dirs) is removed on any exit.
"""

import glob
import hashlib
import hmac
import http.server
import importlib.util
import json
import os
import re
import select
import signal
import struct
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import pgcluster  # noqa: E402
from lib import check, note, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REVIEW_AGENT = os.path.join(HERE, "review_agent.py")
PG_AGENT = os.path.join(HERE, "pg_agent.py")
SETPRIV = "/usr/bin/setpriv"
PG_ADDR = "127.0.0.6"
DB = "reviewdb"
APP_PW = "rev13w pw"
AGENT_UID = 65534                     # nobody: the agents' uid
# Reviewers (name, OS uid, groups, admin). The uids need no passwd entry: setpriv takes numbers.
REVIEWERS = {
    "alice": (47101, "dba,oncall", False),    # in both approver groups: still one person
    "bob": (47102, "oncall", False),
    "carol": (47103, "ops", False),           # in no approver group
    "selfie": (AGENT_UID, "dba,oncall", True),  # an admin whose uid is the agent's
    "dora": (47110, "ops", True),             # an admin in no approver group
}
RULES = [
    "rule deny unbounded_write",
    "rule review kind delete update relation items approvers dba,oncall timeout 60s max_grant 10m",
    "rule review kind delete update relation slow timeout 2s",
    "rule review kind delete update relation pair approvers dba,oncall count 2 timeout 60s",
    "rule review kind update relation bulk timeout 90s",
    "rule review kind delete update relation ext approvers dba,oncall timeout 60s max_grant 10m",
    "rule review kind do approvers dba,oncall timeout 60s max_grant 10m",
]
N_BULK = 100
SETUP_SQL = """
CREATE ROLE app LOGIN PASSWORD '%s';
CREATE DATABASE %s OWNER app;
\\c %s
SET SESSION AUTHORIZATION app;
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT g, 'item-' || g FROM generate_series(1, 50) g;
CREATE TABLE slow (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO slow VALUES (1, 0), (2, 0);
CREATE TABLE pair (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO pair VALUES (1, 0);
CREATE TABLE bulk (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO bulk SELECT g, 0 FROM generate_series(0, %d) g;
CREATE TABLE other (id int);
INSERT INTO other VALUES (1), (2), (3);
CREATE TABLE ext (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO ext SELECT g, 'ext-' || g FROM generate_series(1, 20) g;
""" % (APP_PW, DB, DB, N_BULK - 1)


class T:
    """State shared by the cases, which run in order."""
    tmp = home = pg = al = cga = cgb = None
    rsock = hookdir = None
    up = False
    req1 = None            # the first parked DELETE (request row)
    p1 = None              # its psql
    sess = None            # the long-lived psycopg2 session (grant/revoke)
    grant = None
    reqb = pb = None       # the grant case's request from the second cgroup
    giveup = None          # the request whose webhook always fails


# ---------------------------------------------------------------- agents

def conninfo():
    return "host=%s port=%d dbname=%s user=app sslmode=disable connect_timeout=10" % (
        PG_ADDR, T.pg.port, DB)


def as_agent(argv):
    return [SETPRIV, "--reuid=%d" % AGENT_UID, "--regid=%d" % AGENT_UID, "--clear-groups"] + argv


def psql_argv(sql=None, verbose=True):
    argv = [pgcluster.PSQL, "-X", "-w", "-At", "-d", conninfo()]
    if verbose:
        argv += ["-v", "VERBOSITY=verbose"]
    if sql is not None:
        argv += ["-c", sql]
    return as_agent(argv)


def psql_bg(cg, sql=None, script=None):
    """psql as the agent in cg, in the background: one -c statement, or a script on stdin."""
    p = cg.popen(psql_argv(sql), stdin=subprocess.PIPE if script is not None else subprocess.DEVNULL,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                 env=pgcluster.client_env(T.home, "wrong"))
    p.t0 = time.monotonic()
    if script is not None:
        p.stdin.write(script)
        p.stdin.close()
        p.stdin = None          # communicate() must not touch it again
    return p


def finish(p, timeout=15):
    """(rc, stdout, stderr) of a background psql; fails if it does not end in time."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("psql did not finish within %ds (stdout %r, stderr %r)"
                             % (timeout, out.strip()[-200:], err.strip()[-300:]))
    p.elapsed = time.monotonic() - p.t0
    return p.returncode, out, err


def psql_now(cg, sql, timeout=15):
    return finish(psql_bg(cg, sql), timeout)


def still_waiting(p, what, secs=0.4):
    time.sleep(secs)
    if p.poll() is not None:
        out, err = p.communicate()
        raise AssertionError("%s was not held: psql exited %d: %r %r"
                             % (what, p.returncode, out.strip(), err.strip()[-300:]))


class Session(pgcluster.AgentSession):
    """review_agent.py session: one psycopg2 connection in a cgroup that runs SQL when told."""

    def __init__(self, cg):
        super().__init__(cg, as_agent([lib.PY, REVIEW_AGENT, "session", PG_ADDR, str(T.pg.port), DB, "app"]),
                         pgcluster.client_env(T.home))


class Wire(pgcluster.AgentSession):
    """pg_agent.py wire: the agent speaking the protocol itself, one message list at a time."""

    def __init__(self, cg):
        super().__init__(cg, as_agent([lib.PY, PG_AGENT, "wire", PG_ADDR, str(T.pg.port), DB, "app"]),
                         pgcluster.client_env(T.home))

    def batch(self, *msgs):
        self.send_json({"batch": [list(m) for m in msgs] + [["S"]]})

    def run_json(self, obj, timeout=15):
        self.send_json(obj)
        res = self.read(timeout)
        check(res is not None, "wire: no answer to %r within %ds" % (obj, timeout))
        return res


def tags(res):
    return [m.get("tag") or m.get("sqlstate") for m in (res or {}).get("result", []) if m["type"] in "CE"]


# ---------------------------------------------------------------- reviewers

def rv(who, *args, timeout=15):
    """airlockctl --review-socket ... as reviewer `who` (their OS uid), outside the cgroups."""
    uid = REVIEWERS[who][0] if who in REVIEWERS else int(who)
    argv = [SETPRIV, "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups", lib.AIRLOCKCTL,
            "--review-socket", T.rsock] + [str(a) for a in args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=lib.CLIENT_ENV)


def rv_ok(who, *args):
    r = rv(who, *args)
    check(r.returncode == 0, "airlockctl %s as %s exited %d: %s" % (" ".join(map(str, args)), who,
                                                                   r.returncode, r.stderr.strip()))
    return r


def rv_refused(who, want, *args):
    r = rv(who, *args)
    check(r.returncode != 0, "airlockctl %s as %s was accepted (want refused: %r)"
          % (" ".join(map(str, args)), who, want))
    check(want in r.stderr, "airlockctl %s as %s: refused with %r, want %r"
          % (" ".join(map(str, args)), who, r.stderr.strip(), want))
    return r


def rv_json(who, *args):
    r = rv_ok(who, *args, "--json")
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise AssertionError("airlockctl %s --json printed no JSON: %r" % (" ".join(args),
                                                                          r.stdout[:300]))


def approvers_of(row):
    a = row.get("approvers")
    return json.loads(a) if isinstance(a, str) else a


# ---------------------------------------------------------------- store

def requests(where="1", args=()):
    return T.al.db_rows(where, args, table="requests")


def request(rid):
    rows = requests("id = ?", (rid,))
    check(rows, "no requests row %s" % rid)
    return rows[0]


def wait_request(text, cg=None, after=0, timeout=10):
    """The newest request whose command contains text (from cg, id > after), once stored."""
    def get():
        rows = [r for r in requests("id > ?", (after,)) if text in (r["command"] or "")
                and (cg is None or r["cgroup_id"] == cg.id)]
        return rows[-1] if rows else None
    row = wait_for(get, timeout, 0.05)
    check(row, "no review request for %r within %ds (requests: %s)"
          % (text, timeout, [(r["id"], r["state"], r["command"][:40]) for r in requests()[-5:]]))
    return row


def wait_state(rid, state, timeout=10):
    row = wait_for(lambda: (lambda r: r if r["state"] == state else None)(request(rid)),
                   timeout, 0.05)
    if not row:
        r = request(rid)
        raise AssertionError("request %d is %r (reason %r), want %r after %ds"
                             % (rid, r["state"], r["reason"], state, timeout))
    return row


def max_req():
    return max((r["id"] for r in requests()), default=0)


def stmt_row(sid, timeout=5):
    rows = wait_for(lambda: T.al.db_rows("id = ?", (sid,), table="statements"), timeout, 0.05)
    check(rows, "no statements row %s" % sid)
    return rows[0]


def query_msg(sql):
    """The exact bytes of a simple-protocol Query message carrying sql."""
    b = sql.encode() + b"\0"
    return b"Q" + struct.pack("!I", 4 + len(b)) + b


def up(sql):
    return T.pg.sql(sql, db=DB)


def need_up():
    check(T.up and T.al.running(), "airlockd is not running (log: %s)" % T.al.log_tail(5))


def deny_quietly(rid, why="test cleanup"):
    if rid and request(rid)["state"] == "pending":
        rv("bob", "deny", rid, "--reason", why)


def denial_re(rid, what):
    return re.compile(r"ERROR:\s+42501:\s+airlock: request %d %s" % (rid, what))


# ---------------------------------------------------------------- cases

def case_parked():
    need_up()
    sm = int(time.time() * 1e6)
    sql = "DELETE FROM items WHERE id = 1"
    T.p1 = psql_bg(T.cga, sql)
    row = wait_request(sql)
    T.req1 = row
    still_waiting(T.p1, "DELETE FROM items WHERE id = 1")
    check(up("SELECT count(*) FROM items WHERE id = 1") == "1", "row 1 is gone while parked")
    pend = rv_json("alice", "pending")
    mine = [r for r in pend if r.get("id") == row["id"]]
    check(mine, "request %d is not in `airlockctl pending --json`: %r" % (row["id"], pend))
    r = mine[0]
    want = {"state": "pending", "cgroup_path": T.cga.rel, "cgroup_id": T.cga.id, "uid": AGENT_UID,
            "resource": "pg", "protocol": "postgres", "command": sql, "kind": "delete",
            "approvals_needed": 1, "max_grant_s": 600, "approvals": [], "comm": "psql"}
    bad = {k: (r.get(k), v) for k, v in want.items() if r.get(k) != v}
    check(not bad, "pending row %d: (got, want) %r" % (row["id"], bad))
    missing = {"id", "created_us", "expires_us", "conn_id", "stmt_id", "pid", "exe", "fingerprint",
               "sha256", "rule", "approvers", "decided_us", "reason"} - set(r)
    check(not missing, "pending row lacks %s" % sorted(missing))
    check(approvers_of(r) == ["dba", "oncall"], "approvers %r" % r.get("approvers"))
    check("review" in (r.get("rule") or ""), "rule %r" % r.get("rule"))
    check(abs(r["expires_us"] - r["created_us"] - 60e6) < 1e6,
          "expires - created = %.1fs, want the rule's timeout 60s"
          % ((r["expires_us"] - r["created_us"]) / 1e6))
    check(r["sha256"] == hashlib.sha256(query_msg(sql)).hexdigest(),
          "sha256 %s is not that of the Query message held (%s)"
          % (r["sha256"], hashlib.sha256(query_msg(sql)).hexdigest()))
    check(r["pid"] == T.p1.pid, "pid %r, want psql's %d" % (r["pid"], T.p1.pid))
    st = stmt_row(r["stmt_id"])
    check(st["decision"] == "review" and st["text"] == sql and st["at_us"] >= sm,
          "statements row %d: decision %r text %r" % (st["id"], st["decision"], st["text"]))
    check(st["tag"] is None, "statements row %d has a tag %r while parked" % (st["id"], st["tag"]))
    txt = rv_ok("bob", "pending").stdout
    check(re.search(r"^%d\s" % row["id"], txt, re.M) and sql in txt,
          "`airlockctl pending` does not list request %d: %r" % (row["id"], txt))
    js = rv_json("alice", "show", row["id"])
    check(js.get("id") == row["id"] and js.get("command") == sql, "show --json: %r" % js)


def case_hook():
    rid = T.req1["id"] if T.req1 else None
    check(rid, "no parked request from the first case")

    def find():
        for f in glob.glob(os.path.join(T.hookdir, "req.*.json")):
            try:
                with open(f) as fh:
                    js = json.load(fh)
            except (OSError, ValueError):
                continue
            if js.get("id") == rid:
                return js
        return None
    js = wait_for(find, 5, 0.1)
    check(js, "the review_hook wrote no JSON for request %d (files: %s)"
          % (rid, os.listdir(T.hookdir)))
    for k in ("command", "sha256", "cgroup_path", "resource", "kind", "rule", "state"):
        check(js.get(k) == T.req1[k], "hook JSON %s is %r, want %r" % (k, js.get(k), T.req1[k]))


GIVEUP_SQL = "DELETE FROM items WHERE id = 40 AND name <> 'webhook-giveup'"


class Webhook(http.server.BaseHTTPRequestHandler):
    """The review_webhook's receiver: keeps every POST (headers, body); answers the first three
    tries for the first request it hears of with 503, so that airlockd has to try again
    (case_webhook_backoff looks at the gaps), every try for GIVEUP_SQL with 500 (airlockd gives
    up: case_webhook_gave_up), and everything else with 204."""
    posts = []
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        rid = self.headers.get("X-Airlock-Request")
        with Webhook.lock:
            Webhook.posts.append((time.monotonic(), self.path, dict(self.headers), body))
            first = Webhook.posts[0][2].get("X-Airlock-Request")
            busy = rid == first and sum(p[2].get("X-Airlock-Request") == rid for p in Webhook.posts) <= 3
        if b"webhook-giveup" in body:
            self.send_response(500)
        else:
            self.send_response(503 if busy else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def case_webhook():
    """review_webhook: the request's JSON POSTed, signed with HMAC-SHA256 of the body under the
    review_webhook_secret key (X-Airlock-Signature: sha256=HEX); a 503 is tried again."""
    rid = T.req1["id"] if T.req1 else None
    check(rid, "no parked request from the first case")

    def mine():
        with Webhook.lock:
            return [p for p in Webhook.posts if p[2].get("X-Airlock-Request") == str(rid)]
    posts = wait_for(lambda: (lambda m: m if len(m) >= 2 else None)(mine()), 10, 0.1)
    check(posts, "webhook POSTs for request %d: %r (all: %d)" % (rid, mine(), len(Webhook.posts)))
    t0, path, hdrs, body = posts[0]
    js = json.loads(body)
    check(path == "/hooks/airlock?team=db" and hdrs.get("Content-Type") == "application/json",
          "POST %s with %r" % (path, hdrs))
    for k in ("command", "sha256", "cgroup_path", "resource", "kind", "rule", "state"):
        check(js.get(k) == T.req1[k], "webhook JSON %s is %r, want %r" % (k, js.get(k), T.req1[k]))
    want = "sha256=" + hmac.new(T.webhook_key, body, hashlib.sha256).hexdigest()
    check(all(p[2].get("X-Airlock-Signature") == want for p in posts),
          "signatures %r, want %s" % ([p[2].get("X-Airlock-Signature") for p in posts], want))
    check(posts[1][3] == body and 0.5 < posts[1][0] - t0 < 5,
          "the retry after the 503 came %.2fs later (same body: %s)" % (posts[1][0] - t0, posts[1][3] == body))
    note("request %d: POSTed, 503, POSTed again %.1fs later; signature checked" % (rid, posts[1][0] - t0))


def case_webhook_backoff():
    """The webhook's tries after 503s come 1, 2 and 4 s apart, and stop once one is taken (the
    first request's: its POSTs went on while the cases between ran)."""
    rid = T.req1["id"] if T.req1 else None
    check(rid, "no parked request from the first case")

    def mine():
        with Webhook.lock:
            return [p[0] for p in Webhook.posts if p[2].get("X-Airlock-Request") == str(rid)]
    at = wait_for(lambda: (lambda m: m if len(m) >= 4 else None)(mine()), 15, 0.2)
    check(at, "webhook tries for request %d: %d" % (rid, len(mine())))
    gaps = [round(b - a, 2) for a, b in zip(at, at[1:])]
    check(len(at) == 4 and 0.8 < gaps[0] < 1.8 and 1.8 < gaps[1] < 2.9 and 3.8 < gaps[2] < 5.0,
          "gaps between tries %r (want about 1, 2, 4 s, then no more)" % gaps)
    note("request %d: tries %r s apart" % (rid, gaps))


def case_webhook_gave_up_start():
    """Parks GIVEUP_SQL (its webhook answers 500 every time) and denies it at once: the tries go
    on in the background while the next cases run, and case_webhook_gave_up looks at them."""
    need_up()
    mark = max_req()
    p = psql_bg(T.cga, GIVEUP_SQL)
    row = wait_request(GIVEUP_SQL, after=mark)
    T.giveup = row["id"]
    deny_quietly(row["id"])
    finish(p)


def case_webhook_gave_up():
    """A webhook answering 500 is tried 6 times, 1, 2, 4, 8 and 16 s apart, then given up: a
    notification_failed record in the audit chain (which still verifies), counted in status."""
    need_up()
    rid = T.giveup
    check(rid, "no request from case_webhook_gave_up_start")

    def tries():
        with Webhook.lock:
            return [p[0] for p in Webhook.posts if p[2].get("X-Airlock-Request") == str(rid)]

    def gave_up():
        r = T.al.ctl("audit", "export", "--since", "1h", "--format", "jsonl")
        return [x for x in map(json.loads, r.stdout.splitlines())
                if x.get("kind") == "notification_failed" and x.get("ref_id") == rid]
    recs = wait_for(gave_up, 40, 0.5)
    check(recs, "no notification_failed record for request %d after %d tries" % (rid, len(tries())))
    at = tries()
    gaps = [round(b - a, 1) for a, b in zip(at, at[1:])]
    check(len(at) == 6 and all(0.8 * w < g < w + 1.5 for g, w in zip(gaps, (1, 2, 4, 8, 16))),
          "tries %r s apart (want 6 tries, about 1, 2, 4, 8, 16 s apart)" % gaps)
    body = recs[0]["body"]
    check(body.get("via") == "webhook" and body.get("tries") == 6 and body.get("error") == "HTTP 500",
          "notification_failed record: %r" % recs[0])
    time.sleep(1.5)
    check(len(tries()) == 6, "tried again after giving up: %d tries" % len(tries()))
    wh = T.al.status().get("webhook") or {}
    check(wh.get("undelivered") == 1 and wh.get("in_flight") == 0 and wh.get("delivered", 0) >= 1,
          "status webhook counts since the restart: %r" % wh)
    r = T.al.ctl("status")
    check("review webhook: %d delivered, 1 undelivered" % wh["delivered"] in r.stdout,
          "airlockctl status: %r" % r.stdout[-600:])
    r = T.al.ctl("audit", "verify")
    check(r.returncode == 0, "audit verify: %s" % (r.stderr or r.stdout).strip()[-300:])
    check(any("request %d not delivered after 6 tries: HTTP 500" % rid in l for l in T.al.log_lines()),
          "no give-up line in the log")
    note("request %d: 6 tries %r s apart, then notification_failed" % (rid, gaps))


def case_socket_refusals():
    need_up()
    r = rv(0, "pending")
    check(r.returncode != 0 and "not a reviewer" in r.stderr,
          "uid 0 (no reviewer) listing pending: exit %d %r" % (r.returncode, r.stderr.strip()))
    uid = REVIEWERS["alice"][0]
    r = T.cga.run([SETPRIV, "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
                   lib.AIRLOCKCTL, "--review-socket", T.rsock, "approve", str(T.req1["id"])])
    check(r.returncode != 0 and "pinned" in r.stderr,
          "alice's uid inside the pinned cgroup approving: exit %d %r"
          % (r.returncode, r.stderr.strip()))
    # Two cgroups below the pin: airlockd checks the caller's cgroup and each one above it.
    nested = os.path.join(T.cga.path, "job", "step")
    os.makedirs(nested)
    try:
        r = subprocess.run(["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', nested,
                            SETPRIV, "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
                            lib.AIRLOCKCTL, "--review-socket", T.rsock, "approve", str(T.req1["id"])],
                           capture_output=True, text=True, timeout=20, env=lib.CLIENT_ENV)
    finally:
        os.rmdir(nested)
        os.rmdir(os.path.dirname(nested))
    check(r.returncode != 0 and "pinned" in r.stderr,
          "alice's uid two cgroups below the pinned one approving: exit %d %r"
          % (r.returncode, r.stderr.strip()))
    check(request(T.req1["id"])["state"] == "pending", "request %d is no longer pending"
          % T.req1["id"])


SNEAK = r"""
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
if os.fork() == 0:
    go = sys.argv[2]
    for _ in range(400):
        if os.path.exists(go):
            break
        time.sleep(0.05)
    s.sendall(b'{"cmd":"pending"}\n')
    print(s.makefile().readline().strip(), flush=True)
    os._exit(0)
print(os.getpid(), flush=True)
"""


def case_socket_pid_reused():
    """An agent in the pinned cgroup, with a reviewer's uid, connects to the review socket, leaves
    the socket to a child and exits; a process outside the pinned cgroups gets its pid (as any
    pid is reused, here made so with ns_last_pid). The child's call is refused: the caller's
    cgroup was read of another process."""
    need_up()
    uid = REVIEWERS["alice"][0]
    d = tempfile.mkdtemp(prefix="airlock-sneak-")
    lib.on_cleanup(shutil.rmtree, d, True)
    os.chmod(d, 0o755)
    go = os.path.join(d, "go")
    out = os.path.join(d, "out")
    with open(out, "w") as f:
        os.chown(out, uid, uid)
        p = T.cga.popen([SETPRIV, "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups", lib.PY, "-c", SNEAK,
                         T.rsock, go], stdout=f, stderr=f, text=True)
        rc = p.wait(10)
    with open(out) as f:
        first = f.readline().strip()
    check(rc == 0 and first.isdigit(), "the agent that connects: exit %r, %r" % (rc, first))
    agent_pid = int(first)
    taker = None
    try:
        for _ in range(50):
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(agent_pid - 1))
            taker = subprocess.Popen(["/bin/sleep", "30"])
            if taker.pid == agent_pid:
                break
            taker.kill()
            taker.wait()
            taker = None
        check(taker, "could not give pid %d to a process outside the pinned cgroups" % agent_pid)
        with open("/proc/%d/cgroup" % agent_pid) as f:
            where = f.read()
        check(T.cga.rel not in where, "pid %d is in %s" % (agent_pid, where))
        open(go, "w").close()

        def answered():
            with open(out) as f:
                lines = f.read().splitlines()
            return lines[1] if len(lines) > 1 else None
        line = wait_for(answered, 20, 0.05)
        check(line, "the child never answered")
        resp = json.loads(line)
        check(resp.get("ok") is False and "pinned" in resp.get("error", ""),
              "the agent's socket, its pid now another process's, was answered %r" % resp)
    finally:
        if taker:
            taker.kill()
            taker.wait()


def case_self_approval():
    need_up()
    rid = T.req1["id"]
    rv_refused("selfie", "cannot decide their own request", "approve", rid)
    check(request(rid)["state"] == "pending", "request %d is no longer pending" % rid)
    check(rv_json("alice", "show", rid).get("approvals") == [], "an approval was recorded")
    still_waiting(T.p1, "the DELETE", 0.1)


def case_non_approver():
    need_up()
    rid = T.req1["id"]
    rv_refused("carol", "none of the approver groups", "approve", rid)
    check(request(rid)["state"] == "pending", "request %d is no longer pending" % rid)
    still_waiting(T.p1, "the DELETE", 0.1)


def case_approve():
    need_up()
    rid = T.req1["id"]
    rv_ok("alice", "approve", rid, "--reason", "ticket 42")
    rc, out, err = finish(T.p1)
    check(rc == 0 and out.strip() == "DELETE 1", "psql after approval: exit %d %r %r"
          % (rc, out.strip(), err.strip()[-300:]))
    check(up("SELECT count(*) FROM items WHERE id = 1") == "0", "row 1 is still there upstream")
    row = wait_state(rid, "approved", 3)
    check(row["decided_us"], "request %d has no decided_us" % rid)
    appr = rv_json("bob", "show", rid).get("approvals")
    check(isinstance(appr, list) and len(appr) == 1 and appr[0].get("reviewer") == "alice" and
          appr[0].get("decision") == "approve" and appr[0].get("reason") == "ticket 42",
          "approvals of request %d: %r" % (rid, appr))
    st = wait_for(lambda: (lambda s: s if s["tag"] else None)(stmt_row(row["stmt_id"])), 5, 0.05)
    check(st and st["tag"] == "DELETE 1", "statements row %d: tag %r" % (row["stmt_id"],
                                                                       st and st["tag"]))


def case_single_use():
    need_up()
    sql = "DELETE FROM items WHERE id = 1"
    p = psql_bg(T.cga, sql)
    row = wait_request(sql, after=T.req1["id"])
    check(row["id"] != T.req1["id"] and row["sha256"] == T.req1["sha256"],
          "request %d sha %s vs %d sha %s" % (row["id"], row["sha256"], T.req1["id"],
                                              T.req1["sha256"]))
    still_waiting(p, "the same DELETE again")
    rv_refused("alice", "not pending", "approve", T.req1["id"])
    rv_ok("bob", "approve", row["id"])
    rc, out, err = finish(p)
    check(rc == 0 and out.strip() == "DELETE 0", "psql after the second approval: exit %d %r %r"
          % (rc, out.strip(), err.strip()[-300:]))


def case_grant():
    need_up()
    T.sess = s = Session(T.cga)
    mark = max_req()
    s.send("DELETE FROM items WHERE id = 2")
    row = wait_request("DELETE FROM items WHERE id = 2", after=mark)
    check(s.read(0.4) is None, "the DELETE ran before review")
    rv_ok("alice", "approve", row["id"], "--for", "10m")
    res = s.read(10)
    check(res and res.get("status") == "DELETE 1", "session after approve --for 10m: %r" % res)
    grants = [g for g in rv_json("bob", "grants") if g.get("request_id") == row["id"]]
    check(len(grants) == 1, "grants for request %d: %r" % (row["id"], grants))
    g = T.grant = grants[0]
    now = time.time() * 1e6
    check(g.get("fingerprint") == row["fingerprint"] and g.get("cgroup_id") == T.cga.id and
          g.get("resource") == "pg" and abs(g["expires_us"] - now - 600e6) < 30e6 and
          not g.get("revoked_us"), "grant %r (request fingerprint %s, cgroup %d)"
          % (g, row["fingerprint"], T.cga.id))
    # Same fingerprint, another literal, same cgroup: runs at once, no request.
    mark = max_req()
    res = s.run("DELETE FROM items WHERE id = 3", timeout=5)
    check(res.get("status") == "DELETE 1", "same fingerprint under the grant: %r" % res)
    check(up("SELECT count(*) FROM items WHERE id IN (2, 3)") == "0", "rows 2, 3 still there")
    # A new connection from the same cgroup is covered too.
    rc, out, err = psql_now(T.cga, "DELETE FROM items WHERE id = 12", timeout=8)
    check(rc == 0 and out.strip() == "DELETE 1", "a new psql in the same cgroup under the grant: "
          "exit %d %r %r" % (rc, out.strip(), err.strip()[-300:]))
    check(max_req() == mark, "statements under the grant made requests: %s"
          % [(r["id"], r["command"]) for r in requests("id > ?", (mark,))])
    g2 = [x for x in rv_json("bob", "grants") if x.get("id") == g["id"]]
    check(g2 and g2[0].get("expires_us") == g["expires_us"],
          "the grant's expiry moved after it was used (new connection): %r -> %r"
          % (g["expires_us"], g2 and g2[0].get("expires_us")))
    # The other pinned cgroup is another agent: still held.
    T.pb = psql_bg(T.cgb, "DELETE FROM items WHERE id = 4")
    T.reqb = wait_request("DELETE FROM items WHERE id = 4", cg=T.cgb, after=mark)
    check(T.reqb["cgroup_path"] == T.cgb.rel and T.reqb["fingerprint"] == row["fingerprint"],
          "request from the second cgroup: %r" % {k: T.reqb[k] for k in ("cgroup_path",
                                                                        "fingerprint")})
    still_waiting(T.pb, "the DELETE from the second cgroup")
    check(up("SELECT count(*) FROM items WHERE id = 4") == "1", "row 4 deleted")
    # The same cgroup, another uid (root): another agent, so the grant does not cover it.
    pr = T.cga.popen(psql_argv("DELETE FROM items WHERE id = 13")[4:], stdin=subprocess.DEVNULL,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                     env=pgcluster.client_env(T.home, "wrong"))
    pr.t0 = time.monotonic()
    rr = wait_request("DELETE FROM items WHERE id = 13", after=mark)
    check(rr["uid"] == 0 and rr["fingerprint"] == row["fingerprint"] and rr["cgroup_id"] == T.cga.id,
          "root's request under uid %d's grant: %r" % (AGENT_UID, {k: rr[k] for k in ("uid", "fingerprint",
                                                                                     "cgroup_id")}))
    still_waiting(pr, "root's DELETE in the granted cgroup")
    rv_ok("bob", "deny", rr["id"], "--reason", "another uid")
    rc, out, err = finish(pr)
    check(rc != 0 and "another uid" in err, "root's psql after deny: exit %d %r" % (rc, err.strip()[-300:]))
    check(up("SELECT count(*) FROM items WHERE id = 13") == "1", "row 13 deleted")


def case_max_grant():
    need_up()
    check(T.reqb, "no request from the second cgroup")
    rid = T.reqb["id"]
    rv_refused("alice", "at most 600s", "approve", rid, "--for", "11m")
    check(request(rid)["state"] == "pending", "request %d is no longer pending" % rid)
    still_waiting(T.pb, "the DELETE from the second cgroup", 0.1)
    rv_ok("bob", "deny", rid, "--reason", "other agent")
    rc, out, err = finish(T.pb)
    check(denial_re(rid, "was denied by a reviewer: other agent").search(err),
          "psql in the second cgroup after the denial: exit %d %r" % (rc, err.strip()[-300:]))
    check(up("SELECT count(*) FROM items WHERE id = 4") == "1", "row 4 deleted")


def case_revoke():
    need_up()
    check(T.sess and T.grant, "no session and grant from the grant case")
    gid = T.grant["id"]
    conn_id = request(T.grant["request_id"])["conn_id"]
    check(T.al.db_rows("id = ?", (conn_id,))[0]["closed_us"] is None,
          "the session's connection %d is closed already" % conn_id)
    # Who may approve may revoke: carol is in none of the rule's approver groups.
    rv_refused("carol", "carol is in none of the approver groups of grant %d (dba,oncall)" % gid, "revoke", gid)
    check(T.al.db_rows("id = ?", (conn_id,))[0]["closed_us"] is None and
          not [x for x in rv_json("alice", "grants") if x.get("id") == gid][0].get("revoked_us"),
          "carol's refused revoke ended grant %d or its session" % gid)
    rv_ok("bob", "revoke", gid)
    t0 = time.monotonic()
    closed = wait_for(lambda: T.al.db_rows("id = ?", (conn_id,))[0]["closed_us"], 5, 0.05)
    check(closed, "the live session (connection %d) was not ended within 5s of revoke %d"
          % (conn_id, gid))
    note("session ended %.2fs after the revoke" % (time.monotonic() - t0))
    # Before the agent sends anything: Airlock told it why (a native FATAL), then closed.
    pk = T.sess.peek(3)
    f = (pk or {}).get("fields") or {}
    check(pk and pk.get("type") == "E" and f.get("V", f.get("S")) == "FATAL" and
          f.get("C") == "42501" and "grant %d was revoked" % gid in f.get("M", ""),
          "what the session got on revoke: %r (want ErrorResponse FATAL 42501 'grant %d was "
          "revoked')" % (pk, gid))
    res = T.sess.run("SELECT 1", timeout=10)
    check(res.get("error") and res.get("closed"), "the session after revoke: %r" % res)
    check(re.search(r"revoked|closed the connection", res["error"]), "error %r" % res["error"])
    note("session's next query: %s" % " ".join(res["error"].split())[:200])
    g = [x for x in rv_json("alice", "grants") if x.get("id") == gid]
    check(g and g[0].get("revoked_us"), "grant %d after revoke: %r" % (gid, g))
    # No grant any more: held again.
    mark = max_req()
    p = psql_bg(T.cga, "DELETE FROM items WHERE id = 5")
    row = wait_request("DELETE FROM items WHERE id = 5", after=mark)
    still_waiting(p, "a DELETE after the revoke")
    rv_ok("bob", "deny", row["id"], "--reason", "after revoke")
    finish(p)
    T.sess.close()


def case_revoke_admin():
    """An admin revokes a grant whatever its approver groups; a reviewer outside them does not."""
    need_up()
    sql = "UPDATE items SET name = 'granted' WHERE id = 36"
    mark = max_req()
    p = psql_bg(T.cga, sql)
    row = wait_request(sql, after=mark)
    rv_ok("alice", "approve", row["id"], "--for", "10m")
    rc, out, err = finish(p)
    check(rc == 0 and out.strip() == "UPDATE 1", "psql after approve --for 10m: %d %r %r" % (rc, out, err[-300:]))
    gs = [g for g in rv_json("bob", "grants") if g.get("request_id") == row["id"]]
    check(len(gs) == 1 and not gs[0].get("revoked_us"), "grants of request %d: %r" % (row["id"], gs))
    gid = gs[0]["id"]
    try:
        rv_refused("carol", "none of the approver groups of grant %d" % gid, "revoke", gid)
        rv_ok("dora", "revoke", gid)
        g = [x for x in rv_json("bob", "grants") if x.get("id") == gid]
        check(g and g[0].get("revoked_us") and g[0].get("revoked_by") == "dora", "grant %d after dora's revoke: %r"
              % (gid, g))
        rv_refused("bob", "grant %d is not live" % gid, "revoke", gid)
        gid = None
    finally:
        if gid:
            rv("alice", "revoke", gid)


def case_deny():
    need_up()
    reason = "change freeze %s" % lib.RUN_ID
    mark = max_req()
    p = psql_bg(T.cga, script="DELETE FROM items WHERE id = 6;\nSELECT 'after-deny';\n")
    row = wait_request("DELETE FROM items WHERE id = 6", after=mark)
    still_waiting(p, "the DELETE")
    rv_ok("bob", "deny", row["id"], "--reason", reason)
    rc, out, err = finish(p)
    check(denial_re(row["id"], "was denied by a reviewer: " + re.escape(reason)).search(err),
          "psql stderr has no 'ERROR: 42501: airlock: request %d was denied by a reviewer: %s': %r"
          % (row["id"], reason, err.strip()[-400:]))
    check(rc == 0 and out.strip() == "after-deny", "the next statement: exit %d, stdout %r"
          % (rc, out.strip()))
    check(up("SELECT count(*) FROM items WHERE id = 6") == "1", "row 6 was deleted")
    r = wait_state(row["id"], "denied", 3)
    check(r["reason"] == reason, "request %d reason %r" % (row["id"], r["reason"]))


def case_timeout():
    need_up()
    mark = max_req()
    p = psql_bg(T.cga, script="DELETE FROM slow WHERE id = 1;\nSELECT 'after-timeout';\n")
    row = wait_request("DELETE FROM slow WHERE id = 1", after=mark)
    rc, out, err = finish(p, 20)
    check(denial_re(row["id"], "timed out").search(err),
          "psql stderr has no 'ERROR: 42501: airlock: request %d timed out': %r"
          % (row["id"], err.strip()[-400:]))
    check(1.5 <= p.elapsed <= 10, "answered after %.1fs (rule timeout 2s)" % p.elapsed)
    check(rc == 0 and out.strip() == "after-timeout", "the next statement: exit %d, stdout %r"
          % (rc, out.strip()))
    check(up("SELECT count(*) FROM slow WHERE id = 1") == "1", "slow row 1 was deleted")
    wait_state(row["id"], "timeout", 3)


def case_two_approvers():
    need_up()
    mark = max_req()
    sql = "UPDATE pair SET v = v + 1 WHERE id = 1"
    p = psql_bg(T.cga, sql)
    row = wait_request(sql, after=mark)
    rid = row["id"]
    check(row["approvals_needed"] == 2, "approvals_needed %r" % row["approvals_needed"])
    rv_ok("alice", "approve", rid)
    still_waiting(p, "the UPDATE after one approval")
    rv_refused("alice", "already approved", "approve", rid)
    rv_refused("carol", "none of the approver groups", "approve", rid)
    js = rv_json("bob", "show", rid)
    check(js.get("state") == "pending" and len(js.get("approvals") or []) == 1,
          "after alice (in two approver groups) approved: state %r, approvals %r"
          % (js.get("state"), js.get("approvals")))
    check(up("SELECT v FROM pair WHERE id = 1") == "0", "the UPDATE ran after one approval")
    still_waiting(p, "the UPDATE after one approval", 0.1)
    rv_ok("bob", "approve", rid)
    rc, out, err = finish(p)
    check(rc == 0 and out.strip() == "UPDATE 1", "psql after the second person approved: exit %d "
          "%r %r" % (rc, out.strip(), err.strip()[-300:]))
    check(up("SELECT v FROM pair WHERE id = 1") == "1", "pair.v is not 1")
    js = rv_json("alice", "show", rid)
    check(js.get("state") == "approved" and
          sorted(a.get("reviewer") for a in js.get("approvals") or []) == ["alice", "bob"],
          "request %d: %r" % (rid, {k: js.get(k) for k in ("state", "approvals")}))


def case_strictest_and_extended():
    """A string whose statements get different actions takes the strictest: a SELECT with a DELETE
    under review is held whole (nothing of it runs) until approved. A DELETE over the extended
    protocol (pgbench -M prepared: Parse of a named statement, Bind, Execute, Sync) is held the
    same way and runs once, after approval."""
    need_up()
    mark = max_req()
    sql = "SELECT 1 AS first_part; DELETE FROM items WHERE id = 41"
    p = psql_bg(T.cga, sql)
    row = wait_request("DELETE FROM items WHERE id = 41", cg=T.cga, after=mark)
    still_waiting(p, "the string with a DELETE under review")
    check(up("SELECT count(*) FROM items WHERE id = 41") == "1", "the DELETE ran before approval")
    rv_ok("alice", "approve", row["id"])
    rc, out, err = finish(p)
    check(rc == 0 and out.strip().splitlines() == ["1", "DELETE 1"]
          and up("SELECT count(*) FROM items WHERE id = 41") == "0",
          "the string after approval: exit %d %r %r" % (rc, out.strip(), err.strip()[-300:]))
    script = os.path.join(T.home, "delete42.sql")
    with open(script, "w") as f:
        f.write("DELETE FROM items WHERE id = 42;\n")
    os.chmod(script, 0o644)
    mark = max_req()
    p = T.cga.popen(as_agent([pgcluster.PGBENCH, "-n", "-M", "prepared", "-t", "1", "-c", "1", "-f", script,
                              conninfo()]),
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    env=pgcluster.client_env(T.home, "wrong"))
    p.t0 = time.monotonic()
    row = wait_request("DELETE FROM items WHERE id = 42", cg=T.cga, after=mark)
    still_waiting(p, "pgbench's prepared DELETE")
    check(up("SELECT count(*) FROM items WHERE id = 42") == "1", "the prepared DELETE ran before approval")
    rv_ok("alice", "approve", row["id"])
    rc, out, err = finish(p, 30)
    check(rc == 0 and "number of transactions actually processed: 1/1" in out,
          "pgbench after approval: exit %d %r %r" % (rc, out[-300:], err.strip()[-300:]))
    check(up("SELECT count(*) FROM items WHERE id = 42") == "0", "row 42 is still there upstream")
    st = wait_for(lambda: [x for x in T.al.db_rows("conn_id = (SELECT conn_id FROM statements WHERE id = ?)",
                                                    (row["stmt_id"],), table="statements")
                           if x["text"].startswith("DELETE FROM items WHERE id = 42") and x["tag"]], 5, 0.05)
    check(st and [x["tag"] for x in st] == ["DELETE 1"] and st[0]["protocol"] == "extended",
          "the prepared DELETE's rows (once, extended): %r" % [(x["protocol"], x["tag"]) for x in st or []])


def ext_ids(ids):
    return up("SELECT string_agg(id::text, ',' ORDER BY id) FROM ext WHERE id IN (%s)"
              % ",".join(map(str, ids)))


def held_then(w, text, after, decide, *args):
    """The request for what w just sent (its command contains text): checks nothing came back
    yet, decides it (approve/deny, args) as alice and returns (request row, w's answer)."""
    row = wait_request(text, cg=T.cga, after=after)
    check(w.read(0.3) is None, "%r ran before review" % text)
    if decide == "deny":
        rv_ok("alice", "deny", row["id"], "--reason", args[0] if args else "no")
    else:
        rv_ok("alice", "approve", row["id"], *args)
    res = w.read(15)
    check(res is not None, "no answer after request %d was decided" % row["id"])
    return row, res


def case_extended_each_execute():
    """Over the extended protocol every Execute is decided, not the Parse: a named statement
    approved once runs again only after another review; the request shows the Bind values and
    every statement the held batch runs (two Parses: both); SQL EXECUTE is decided as the
    statement it runs; a grant covers exactly the batch's sequence of statement shapes."""
    need_up()
    w = Wire(T.cga)
    grants = []
    try:
        mark = max_req()
        w.batch(["P", "s1", "DELETE FROM ext WHERE id = $1"], ["B", "", "s1", ["1"]], ["E", ""])
        row, res = held_then(w, "DELETE FROM ext WHERE id = $1", mark, "approve")
        check('-- parameters $1...: ["1"]' in row["command"], "the request does not show the Bind value: %r"
              % row["command"])
        check(tags(res) == ["DELETE 1"] and ext_ids([1]) == "", "the approved Execute: %r" % res)
        # The same statement again, twice in one batch, other values: held again, both shown.
        mark = max_req()
        w.batch(["B", "", "s1", ["2"]], ["E", ""], ["B", "", "s1", ["3"]], ["E", ""])
        row, res = held_then(w, "DELETE FROM ext WHERE id = $1", mark, "deny", "not these")
        check(row["command"].count("DELETE FROM ext WHERE id = $1") == 2 and '["2"]' in row["command"]
              and '["3"]' in row["command"], "the second batch's request: %r" % row["command"])
        check(tags(res) == ["42501"] and ext_ids([2, 3]) == "2,3", "Executes after the one approved: %r" % res)
        # Two statements under review in one batch: the request shows both.
        mark = max_req()
        w.batch(["P", "", "DELETE FROM ext WHERE id > 15"], ["B", "", "", []], ["E", ""],
                ["P", "", "UPDATE ext SET name = 'harmless' WHERE id = 5"], ["B", "", "", []], ["E", ""])
        row, res = held_then(w, "UPDATE ext SET name = 'harmless'", mark, "deny", "no")
        check("DELETE FROM ext WHERE id > 15" in row["command"],
              "a held batch's request hides its first statement: %r" % row["command"])
        check(ext_ids(range(16, 21)) == "16,17,18,19,20", "the hidden DELETE ran")
        # SQL PREPARE / EXECUTE: the EXECUTE is decided as the DELETE it runs.
        mark = max_req()
        w.send_json({"sql": "PREPARE p1 AS DELETE FROM ext WHERE id = $1"})
        row, res = held_then(w, "PREPARE p1", mark, "approve")
        check(tags(res) == ["PREPARE"], "PREPARE after approval: %r" % res)
        mark = max_req()
        w.send_json({"sql": "EXECUTE p1(4)"})
        row, res = held_then(w, "EXECUTE p1(4)", mark, "deny", "no")
        check(row["kind"] == "delete" and tags(res) == ["42501"] and ext_ids([4]) == "4",
              "EXECUTE p1(4): request kind %r, %r" % (row["kind"], res))
        res = w.run_json({"sql": "EXECUTE nosuch(1)"})
        check(tags(res) == ["42501"] and "did not see that statement prepared" in json.dumps(res),
              "EXECUTE of a statement never prepared: %r" % res)
        # An EXECUTE sent as an extended-protocol statement runs its prepared statement too.
        mark = max_req()
        w.batch(["P", "", "EXECUTE p1(12)"], ["B", "", "", []], ["E", ""])
        row, res = held_then(w, "EXECUTE p1(12)", mark, "deny", "no")
        check(row["kind"] == "delete" and tags(res) == ["42501"] and ext_ids([12]) == "12",
              "a Parsed EXECUTE p1(12): request kind %r, %r" % (row["kind"], res))
        # SQL FETCH from a protocol-level portal runs the statement bound to it (here a DELETE).
        check(tags(w.run_json({"sql": "BEGIN"})) == ["BEGIN"], "BEGIN")
        w.send_json({"batch": [["P", "f1", "DELETE FROM ext WHERE id = $1 RETURNING id"],
                               ["B", "pf", "f1", ["13"]], ["S"]]})
        check(w.read(10) is not None, "no answer to Parse/Bind of portal pf")
        mark = max_req()
        w.send_json({"sql": "FETCH ALL FROM pf"})
        row, res = held_then(w, "FETCH ALL FROM pf", mark, "deny", "no")
        check(row["kind"] == "delete" and ext_ids([13]) == "13",
              "FETCH from a portal bound to a DELETE: request kind %r, %r" % (row["kind"], res))
        w.run_json({"sql": "ROLLBACK"})
        # A grant is for the sequence of shapes the batch ran, never for an empty one.
        mark = max_req()
        w.batch(["P", "", "UPDATE ext SET name = 'g' WHERE id = 6"], ["B", "", "", []], ["E", ""],
                ["P", "", "SELECT 1"], ["B", "", "", []], ["E", ""])
        row, res = held_then(w, "UPDATE ext SET name = 'g'", mark, "approve", "--for", "5m")
        check(row["fingerprint"].count("+") == 1 and tags(res) == ["UPDATE 1", "SELECT 1"],
              "a two-statement batch's grant: fingerprint %r, %r" % (row["fingerprint"], res))
        grants.append(row["id"])
        mark = max_req()
        w.batch(["P", "", "UPDATE ext SET name = 'h' WHERE id = 7"], ["B", "", "", []], ["E", ""],
                ["P", "", "SELECT 1"], ["B", "", "", []], ["E", ""])
        res = w.read(10)
        check(tags(res) == ["UPDATE 1", "SELECT 1"] and max_req() == mark,
              "the same shapes under the grant: %r" % res)
        w.batch(["P", "", "DELETE FROM ext WHERE id = 10"], ["B", "", "", []], ["E", ""],
                ["P", "", "SELECT 1"], ["B", "", "", []], ["E", ""])
        row, res = held_then(w, "DELETE FROM ext WHERE id = 10", mark, "deny", "no")
        check(ext_ids([10]) == "10", "a DELETE ran under an UPDATE's grant")
        # A long string: its grant is for all of its statements, not the first fifteen.
        mark = max_req()
        w.send_json({"sql": "SELECT 1;" * 15 + "UPDATE ext SET name = 'i' WHERE id = 8"})
        row, res = held_then(w, "UPDATE ext SET name = 'i'", mark, "approve", "--for", "5m")
        check(row["fingerprint"].count("+") == 15, "fingerprint of 16 statements: %r" % row["fingerprint"])
        grants.append(row["id"])
        mark = max_req()
        w.send_json({"sql": "SELECT 1;" * 15 + "DELETE FROM ext WHERE id = 11"})
        row, res = held_then(w, "DELETE FROM ext WHERE id = 11", mark, "deny", "no")
        check(ext_ids([11]) == "11", "a DELETE after 15 SELECTs ran under the UPDATE's grant")
        # A DO block's fingerprint is the same whatever its body does: its grant covers that
        # exact block only.
        mark = max_req()
        w.send_json({"sql": "DO $$BEGIN PERFORM 1; END$$"})
        row, res = held_then(w, "DO $$BEGIN PERFORM 1; END$$", mark, "approve", "--for", "5m")
        check(tags(res) == ["DO"] and row["fingerprint"].startswith("="), "the approved DO: %r, key %r"
              % (res, row["fingerprint"]))
        grants.append(row["id"])
        mark = max_req()
        check(tags(w.run_json({"sql": "DO $$BEGIN PERFORM 1; END$$"})) == ["DO"] and max_req() == mark,
              "the same DO block under its grant")
        w.send_json({"sql": "DO $$BEGIN DELETE FROM ext WHERE id = 14; END$$"})
        row, res = held_then(w, "DELETE FROM ext WHERE id = 14", mark, "deny", "no")
        check(ext_ids([14]) == "14", "another DO block ran under the first one's grant")
    finally:
        for rid in grants:
            for g in rv_json("alice", "grants") or []:
                if g.get("request_id") == rid and not g.get("revoked_us"):
                    rv("alice", "revoke", g["id"])
        w.close()


def case_write_kinds():
    """A statement is every kind of write it does: an upsert's DO UPDATE and a MERGE's WHEN
    MATCHED THEN DELETE are held by 'rule review kind delete update relation items' (an INSERT
    and a MERGE to their kind alone, they ran)."""
    need_up()
    for sql, row_id in (("INSERT INTO items VALUES (29, 'x') ON CONFLICT (id) DO UPDATE SET name = 'upserted'", 29),
                        ("MERGE INTO items USING (SELECT 30 AS id) s ON items.id = s.id WHEN MATCHED THEN DELETE", 30)):
        mark = max_req()
        p = psql_bg(T.cga, sql)
        row = wait_request(sql, after=mark)
        still_waiting(p, sql.split()[0])
        rv_ok("alice", "deny", row["id"], "--reason", "no")
        finish(p)
        check(up("SELECT name FROM items WHERE id = %d" % row_id) == "item-%d" % row_id,
              "%s ran: item %d is %r" % (sql.split()[0], row_id, up("SELECT name FROM items WHERE id = %d" % row_id)))


def case_policy_test_kinds():
    """policy test decides a recorded statement as the proxy does: by every kind it is (an
    upsert is also an update, a SELECT calling set_config also a read) and with the proxy's own
    refusal of a statement that changes how the server reads SQL, whatever the candidate says."""
    need_up()
    up("CREATE TABLE ptk (id int PRIMARY KEY, v int NOT NULL); ALTER TABLE ptk OWNER TO app")
    upsert = "INSERT INTO ptk VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET v = 2"
    setcfg = "SELECT set_config('application_name', 'airlock-ptk', false)"
    sjis = "SET client_encoding = 'SJIS'"
    for sql, ok in ((upsert, True), (upsert, True), (setcfg, True), (sjis, False)):
        rc, out, err = psql_now(T.cga, sql)
        check((rc == 0) == ok, "%s: exit %d %r %r" % (sql, rc, out.strip(), err.strip()[-200:]))
    check(up("SELECT v FROM ptk WHERE id = 1") == "2", "the upserts did not run")
    fp = json.loads(T.al.ctl("classify", "pg", "--json", setcfg).stdout)[0]["fingerprint"]
    time.sleep(0.5)     # their rows' batch commits

    def changes(rules):
        cand = os.path.join(T.tmp, "candidate-kinds.conf")
        with open(cand, "w") as f:
            f.write(pgcluster.pg_resource("pg", PG_ADDR, T.pg.port, rules) + "\n")
        r = T.al.ctl("policy", "test", "--since", "1h", cand, "--json", timeout=60)
        check(r.returncode == 0, "policy test: %s" % (r.stderr.strip() or r.stdout.strip()))
        return json.loads(r.stdout)["changes"]

    mine = (upsert, setcfg, sjis, "INSERT INTO items VALUES (29, 'x') ON CONFLICT (id) DO UPDATE SET name = 'upserted'",
            "MERGE INTO items USING (SELECT 30 AS id) s ON items.id = s.id WHEN MATCHED THEN DELETE")
    # The running policy changes none of them (the held upsert and MERGE of case_write_kinds
    # were review by their update and delete, the SJIS one refused by the proxy itself).
    same = [c for c in changes(RULES) if c.get("text") in mine]
    check(not same, "the running policy would decide these otherwise: %r" % same)
    # A candidate that refuses updates of ptk and reviews reads of set_config's shape.
    got = changes(["rule deny kind update relation ptk", "rule review kind read fingerprint %s" % fp] + RULES)
    ups = [c for c in got if c.get("text") == upsert]
    check(len(ups) == 2 and all(c["was"] == "allow" and c["would_be"] == "deny"
                                and c["rule"] == "rule deny kind update relation ptk" for c in ups),
          "the upserts under the candidate: %r" % ups)
    cfg = [c for c in got if c.get("text") == setcfg]
    check(len(cfg) == 1 and cfg[0]["was"] == "allow" and cfg[0]["would_be"] == "review",
          "set_config under the candidate: %r" % cfg)
    check(not [c for c in got if c.get("text") == sjis], "the SJIS SET would run under the candidate: %r"
          % [c for c in got if c.get("text") == sjis])


def case_too_long():
    """A statement over the 1 MiB Airlock classifies (libpg_query takes about a second a megabyte
    in the loop every session shares) is refused with 54000 before it is read, simple or
    extended; the session goes on and the audit row keeps only its start."""
    need_up()
    w = Wire(T.cga)
    try:
        big = "SELECT length('%s')" % ("z" * (2 << 20))
        for obj in ({"sql": big}, {"batch": [["P", "", big], ["B", "", "", []], ["E", ""], ["S"]]}):
            res = w.run_json(obj, timeout=30)
            errs = [m for m in res["result"] if m["type"] == "E"]
            check(errs and errs[0]["sqlstate"] == "54000" and "over the 1024 KiB Airlock reads" in
                  (errs[0]["message"] or "") and res["result"][-1]["type"] == "Z",
                  "a 2 MiB statement (%s): %r" % (list(obj)[0], res["result"]))
        check(tags(w.run_json({"sql": "SELECT 1"})) == ["SELECT 1"], "the session after the refusals")
    finally:
        w.close()
    rows = wait_for(lambda: (lambda r: r if len(r) == 2 else None)(
        T.al.db_rows("rule = 'too long'", (), table="statements")), 5, 0.1) or []
    check(len(rows) == 2 and all(r["decision"] == "deny" and len(r["text"]) < 400 for r in rows),
          "the audit rows: %r" % [(r["decision"], len(r["text"] or "")) for r in rows])


def case_pending_watch():
    """`airlockctl pending --watch` prints the list again when it changes: a new request's id
    appears, and once it is decided the list is empty again."""
    need_up()
    uid = REVIEWERS["bob"][0]
    w = subprocess.Popen([SETPRIV, "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups", lib.AIRLOCKCTL,
                          "--review-socket", T.rsock, "pending", "--watch"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=lib.CLIENT_ENV)
    lib.on_cleanup(lib.stop_process, w)
    lines = []

    def reader():
        for line in w.stdout:
            lines.append(line)
    threading.Thread(target=reader, daemon=True).start()
    try:
        check(wait_for(lambda: any("no requests pending" in x for x in lines), 5, 0.05),
              "pending --watch printed %r" % lines)
        mark = max_req()
        sql = "DELETE FROM items WHERE id = 31"
        p = psql_bg(T.cga, sql)
        rid = wait_request(sql, after=mark)["id"]
        n = len(lines)
        check(wait_for(lambda: any(re.match(r"%d\s" % rid, x) for x in lines[n - 1:]), 5, 0.05),
              "request %d never showed in pending --watch: %r" % (rid, lines[-5:]))
        n = len(lines)
        rv_ok("alice", "deny", rid, "--reason", "watch test")
        finish(p)
        check(wait_for(lambda: any("no requests pending" in x for x in lines[n:]), 5, 0.05),
              "pending --watch did not print the empty list after request %d was decided: %r"
              % (rid, lines[n:]))
        check(w.poll() is None, "pending --watch exited %s" % w.returncode)
    finally:
        lib.stop_process(w)


def case_user_del():
    """`airlockctl user del`: the removed reviewer's next call over the review socket is refused,
    and user list no longer shows them."""
    need_up()
    r = T.al.ctl("user", "add", "dave", "--uid", "47104", "--groups", "oncall")
    check(r.returncode == 0, "user add dave: %s" % r.stderr.strip())
    rv_ok(47104, "pending")
    r = T.al.ctl("user", "del", "dave")
    check(r.returncode == 0, "user del dave: %s" % r.stderr.strip())
    rv_refused(47104, "not a reviewer", "pending")
    users = T.al.ctl_json("user", "list")
    check("dave" not in [u.get("name") for u in users], "user list after del: %r" % users)
    r = T.al.ctl("user", "del", "dave")
    check(r.returncode != 0 and "dave" in r.stderr, "user del of a missing user: exit %d %r"
          % (r.returncode, r.stderr.strip()))

    # A removed reviewer's approval no longer counts towards a request that needs two people.
    r = T.al.ctl("user", "add", "dave", "--uid", "47104", "--groups", "dba")
    check(r.returncode == 0, "user add dave: %s" % r.stderr.strip())
    mark = max_req()
    v0 = up("SELECT v FROM pair WHERE id = 1")
    sql = "UPDATE pair SET v = v + 10 WHERE id = 1"
    p = psql_bg(T.cga, sql)
    row = wait_request(sql, after=mark)
    rv_ok(47104, "approve", row["id"])
    check([a.get("reviewer") for a in rv_json("alice", "show", row["id"]).get("approvals") or []] == ["dave"],
          "approvals after dave's: %r" % rv_json("alice", "show", row["id"]).get("approvals"))
    r = T.al.ctl("user", "del", "dave")
    check(r.returncode == 0 and "approvals withdrawn from pending requests: 1; grants revoked: 0" in r.stdout,
          "user del dave: %r %r" % (r.stdout.strip(), r.stderr.strip()))
    check(rv_json("alice", "show", row["id"]).get("approvals") == [],
          "dave's approval is still listed after user del: %r" % rv_json("alice", "show", row["id"]))
    rv_ok("alice", "approve", row["id"])
    still_waiting(p, "the UPDATE after alice's approval (dave's no longer counts)")
    check(request(row["id"])["state"] == "pending", "request %d: %r" % (row["id"], request(row["id"])))
    rv_ok("bob", "deny", row["id"], "--reason", "dave left")
    rc, _, err = finish(p)
    check(rc != 0 and "dave left" in err, "psql after the deny: exit %d %r" % (rc, err.strip()[-300:]))

    # The grants a removed reviewer made end like revoked ones: the session that used one ends.
    r = T.al.ctl("user", "add", "erin", "--uid", "47105", "--groups", "dba")
    check(r.returncode == 0, "user add erin: %s" % r.stderr.strip())
    s = Session(T.cga)
    try:
        mark = max_req()
        s.send("DELETE FROM items WHERE id = 26")
        row = wait_request("DELETE FROM items WHERE id = 26", after=mark)
        rv_ok(47105, "approve", row["id"], "--for", "10m")
        res = s.read(10)
        check(res and res.get("status") == "DELETE 1", "session after erin's grant: %r" % res)
        res = s.run("DELETE FROM items WHERE id = 27", timeout=5)
        check(res.get("status") == "DELETE 1", "the same shape under erin's grant: %r" % res)
        gid = [g for g in rv_json("bob", "grants") if g.get("request_id") == row["id"]][0]["id"]
        r = T.al.ctl("user", "del", "erin")
        check(r.returncode == 0 and "grants revoked: 1" in r.stdout, "user del erin: %r %r"
              % (r.stdout.strip(), r.stderr.strip()))
        conn_id = row["conn_id"]
        check(wait_for(lambda: T.al.db_rows("id = ?", (conn_id,))[0]["closed_us"], 5, 0.05),
              "the session under erin's grant (connection %d) still open 5s after user del" % conn_id)
        pk = s.peek(3)
        f = (pk or {}).get("fields") or {}
        check(pk and f.get("C") == "42501" and "grant %d was revoked" % gid in f.get("M", ""),
              "what the session got: %r" % pk)
        g = [x for x in rv_json("bob", "grants") if x.get("id") == gid]
        check(g and g[0].get("revoked_by") == "user del erin" and g[0].get("revoked_us"),
              "grant %d after user del: %r" % (gid, g))
    finally:
        s.close()
    mark = max_req()
    p = psql_bg(T.cga, "DELETE FROM items WHERE id = 28")
    row = wait_request("DELETE FROM items WHERE id = 28", after=mark)
    still_waiting(p, "a DELETE of the granted shape after its grant's reviewer was removed")
    rv_ok("bob", "deny", row["id"], "--reason", "no grant")
    finish(p)
    check(up("SELECT count(*) FROM items WHERE id IN (26, 27, 28)") == "1", "rows 26-28 after the case")
    check(up("SELECT v FROM pair WHERE id = 1") == v0, "pair.v changed")


def case_disconnect():
    need_up()
    mark = max_req()
    p = psql_bg(T.cga, "DELETE FROM items WHERE id = 7")
    row = wait_request("DELETE FROM items WHERE id = 7", after=mark)
    still_waiting(p, "the DELETE")
    p.kill()
    p.wait()
    r = wait_for(lambda: (lambda x: x if x["state"] != "pending" else None)(request(row["id"])),
                 5, 0.05)
    if r:
        check(r["state"] == "abandoned", "request %d is %r (reason %r), want abandoned"
              % (row["id"], r["state"], r["reason"]))
        rv_refused("alice", "not pending", "approve", row["id"])
        check(up("SELECT count(*) FROM items WHERE id = 7") == "1", "row 7 was deleted")
        return
    # Still pending: what would an approval do now that nobody is there to get the answer?
    a = rv("alice", "approve", row["id"])
    time.sleep(0.5)
    gone = up("SELECT count(*) FROM items WHERE id = 7") == "0"
    raise AssertionError("request %d still pending 5s after its agent (psql pid %d) was killed; "
                         "approving it then %s%s" % (
                             row["id"], p.pid,
                             "was accepted" if a.returncode == 0 else "failed: %s" % a.stderr.strip(),
                             " and the DELETE ran upstream (row 7 is gone)" if gone else
                             ", row 7 is still there"))


def case_many():
    need_up()
    mark = max_req()
    sql = "UPDATE bulk SET v = v + 1 WHERE id = %d"
    p = T.cga.popen(as_agent([lib.PY, REVIEW_AGENT, "many", PG_ADDR, str(T.pg.port), DB, "app",
                              str(N_BULK), sql]),
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True, env=pgcluster.client_env(T.home))
    try:
        r, _, _ = select.select([p.stdout], [], [], 60)
        line = p.stdout.readline() if r else ""
        check(line, "the %d connections did not come up (exit %s): %s"
              % (N_BULK, p.poll(), p.stderr.read()[-400:] if p.poll() is not None else ""))
        js = json.loads(line)
        check(js.get("connected") == N_BULK, "connected: %r" % js)
        t0 = time.monotonic()

        def parked():
            rows = [x for x in requests("id > ?", (mark,)) if x["command"].startswith("UPDATE bulk")]
            return rows if len(rows) >= N_BULK else None
        rows = wait_for(parked, 30, 0.1)
        check(rows and len(rows) == N_BULK, "%d of %d statements parked"
              % (len(rows or []), N_BULK))
        note("%d requests parked %.1fs after the clients connected" % (N_BULK,
                                                                      time.monotonic() - t0))
        check(all(x["state"] == "pending" for x in rows), "not all pending: %s"
              % sorted({x["state"] for x in rows}))
        # Unrelated traffic keeps flowing: other connections, both cgroups.
        lat = []
        for cg in (T.cga, T.cgb, T.cga):
            t1 = time.monotonic()
            rc, out, err = psql_now(cg, "SELECT count(*) FROM other", timeout=10)
            lat.append(time.monotonic() - t1)
            check(rc == 0 and out.strip() == "3", "SELECT while %d are parked: exit %d %r %r"
                  % (N_BULK, rc, out.strip(), err.strip()[-200:]))
        note("SELECT while %d parked: %s s" % (N_BULK, ", ".join("%.2f" % x for x in lat)))
        check(up("SELECT sum(v) FROM bulk") == "0", "bulk updates ran before review")
        # Even ids approved, odd ids denied.
        want = {}
        t1 = time.monotonic()
        for x in rows:
            i = int(re.search(r"id = (\d+)", x["command"]).group(1))
            if i % 2 == 0:
                rv_ok("alice", "approve", x["id"])
            else:
                rv_ok("bob", "deny", x["id"], "--reason", "bulk-%d" % i)
            want[i] = x["id"]
        note("%d decisions in %.1fs" % (N_BULK, time.monotonic() - t1))
        r, _, _ = select.select([p.stdout], [], [], 30)
        line = p.stdout.readline() if r else ""
        check(line, "the clients did not all get an answer within 30s")
        results = json.loads(line)["results"]
        wrong = []
        for res in results:
            i = res["i"]
            if i % 2 == 0:
                ok = res.get("status") == "UPDATE 1"
            else:
                ok = res.get("pgcode") == "42501" and (
                    "request %d was denied by a reviewer: bulk-%d" % (want.get(i, -1), i)
                    in (res.get("error") or ""))
            if not ok:
                wrong.append(res)
        check(not wrong, "%d of %d clients got a wrong answer, e.g. %r" % (len(wrong), N_BULK,
                                                                           wrong[:3]))
        got = up("SELECT count(*) FILTER (WHERE v = 1 AND id % 2 = 0), count(*) FILTER "
                 "(WHERE v <> 0 AND id % 2 = 1) FROM bulk")
        check(got == "%d|0" % (N_BULK // 2), "upstream bulk (even ids updated, odd ids updated): %s"
              % got)
        check(p.wait(20) == 0, "the client exited %s" % p.returncode)
    finally:
        lib.stop_process(p, 2, signal.SIGKILL)
        for x in requests("id > ? AND state = 'pending'", (mark,)):
            deny_quietly(x["id"])


def case_kill9():
    need_up()
    mark = max_req()
    ids = (20, 21, 22)
    ps = [psql_bg(T.cga, "DELETE FROM items WHERE id = %d" % i) for i in ids]
    rows = [wait_request("DELETE FROM items WHERE id = %d" % i, after=mark) for i in ids]
    for p in ps:
        still_waiting(p, "a DELETE", 0.1)
    T.al.stop(sig=signal.SIGKILL)
    T.up = False
    for i, p in zip(ids, ps):
        rc, out, err = finish(p, 10)
        check(rc != 0 and "DELETE" not in out, "psql (id %d) after kill -9: exit %d %r" % (i, rc, out))
        check(re.search(r"closed the connection|connection to server|terminat|lost", err),
              "psql (id %d) saw no connection error: %r" % (i, err.strip()[-300:]))
        if i == ids[0]:
            note("psql saw: %s" % " ".join(err.split())[:200])
    check(up("SELECT count(*) FROM items WHERE id IN (20, 21, 22)") == "3",
          "a held DELETE ran upstream")
    T.al.start()
    T.up = True
    for row in rows:
        r = request(row["id"])
        check(r["state"] == "aborted", "request %d after restart: %r (reason %r)"
              % (row["id"], r["state"], r["reason"]))
    rv_refused("alice", "not pending", "approve", rows[0]["id"])
    rc, out, err = psql_now(T.cga, "SELECT count(*) FROM items WHERE id IN (20, 21, 22)")
    check(rc == 0 and out.strip() == "3", "psql after the restart: exit %d %r %r"
          % (rc, out.strip(), err.strip()[-300:]))


PSYCOPG2_DELETE = r"""
import sys, psycopg2
c = psycopg2.connect(sys.argv[1], password="wrong")
c.autocommit = True
try:
    c.cursor().execute(sys.argv[2])
    print("ran")
except psycopg2.Error as e:
    print("error", e.pgcode, str(e).strip().splitlines()[0])
"""


def case_policy_reload():
    """`airlockctl policy reload` swaps in new rules at once, here rules on who the agent is and on
    a statement's fingerprint: `uid` tells the agent's uid from root, `exe` psycopg2 (python3) from
    psql in the same cgroup,
    `cgroup` one pinned cgroup from the other, and `fingerprint` lets one statement shape through
    a review rule. A file with a mistake is refused naming file:line, and the running policy
    stays. The reload is in the audit chain."""
    need_up()
    fp = json.loads(T.al.ctl("classify", "pg", "--json", "DELETE FROM other WHERE id = 1").stdout)[0]["fingerprint"]
    rules = ['rule deny kind read relation other uid %d' % AGENT_UID,
             'rule deny kind delete relation other exe "/usr/bin/python3*"',
             "rule allow fingerprint %s" % fp,
             'rule review kind delete relation other cgroup "%s" timeout 60s' % T.cga.rel] + RULES
    T.al.write_conf([pgcluster.pg_resource("pg", PG_ADDR, T.pg.port, rules)], T.settings)
    r = T.al.ctl("policy", "reload")
    check(r.returncode == 0 and "policy reloaded" in r.stdout, "policy reload: exit %d %r %r"
          % (r.returncode, r.stdout, r.stderr.strip()))
    rc, out, err = psql_now(T.cga, "DELETE FROM other WHERE id = 3")
    check(rc == 0 and out.strip() == "DELETE 1", "fingerprint allow (cga): exit %d %r %r"
          % (rc, out.strip(), err.strip()[-200:]))
    mark = max_req()
    sql = "DELETE FROM other WHERE id > 100"
    p = psql_bg(T.cga, sql)
    rid = wait_request(sql, cg=T.cga, after=mark)["id"]
    deny_quietly(rid)
    finish(p)
    rc, out, err = psql_now(T.cgb, sql)
    check(rc == 0 and out.strip() == "DELETE 0", "the cgroup rule held cgb's DELETE too: exit %d %r %r"
          % (rc, out.strip(), err.strip()[-200:]))
    r = T.cgb.run(as_agent([lib.PY, "-c", PSYCOPG2_DELETE, conninfo(), "DELETE FROM other WHERE id = 2"]),
                  timeout=30, env=pgcluster.client_env(T.home))
    check(r.stdout.startswith("error 42501") and "denied by rule" in r.stdout and "python3" in r.stdout,
          "psycopg2's DELETE under the exe rule: %r %r" % (r.stdout.strip(), r.stderr.strip()[-300:]))
    check(up("SELECT count(*) FROM other WHERE id = 2") == "1", "psycopg2's DELETE ran")
    # uid: the agent's uid (setpriv) is denied the read; the same psql as root in the same cgroup is not.
    rc, out, err = psql_now(T.cgb, "SELECT count(*) FROM other")
    check(rc != 0 and "denied by rule 'rule deny kind read relation other uid %d'" % AGENT_UID in err,
          "the read as uid %d: exit %d %r %r" % (AGENT_UID, rc, out.strip(), err.strip()[-200:]))
    r = T.cgb.run(psql_argv("SELECT count(*) FROM other")[4:], timeout=15, env=pgcluster.client_env(T.home, "wrong"))
    check(r.returncode == 0 and r.stdout.strip() == "2", "the read as root: exit %d %r %r"
          % (r.returncode, r.stdout.strip(), r.stderr.strip()[-200:]))
    # A mistake: refused with file:line; the rules above stay.
    T.al.write_conf([pgcluster.pg_resource("pg", PG_ADDR, T.pg.port, rules + ["rule deny kind nonsense"])],
                    T.settings)
    with open(T.al.conf) as f:
        bad = next(i for i, l in enumerate(f, 1) if "nonsense" in l)
    r = T.al.ctl("policy", "reload")
    check(r.returncode != 0 and "%s:%d" % (T.al.conf, bad) in r.stderr and "nonsense" in r.stderr,
          "policy reload of a bad file: exit %d %r" % (r.returncode, r.stderr.strip()))
    rc, out, err = psql_now(T.cga, "DELETE FROM other WHERE id = 1")
    check(rc == 0 and out.strip() == "DELETE 1", "after the refused reload the fingerprint rule is "
          "gone: exit %d %r %r" % (rc, out.strip(), err.strip()[-200:]))
    # Back to the setup's rules: cga's DELETE of other runs unreviewed again.
    T.al.write_conf([pgcluster.pg_resource("pg", PG_ADDR, T.pg.port, RULES)], T.settings)
    r = T.al.ctl("policy", "reload")
    check(r.returncode == 0, "policy reload (restore): %s" % r.stderr.strip())
    rc, out, err = psql_now(T.cga, sql)
    check(rc == 0 and out.strip() == "DELETE 0", "after restoring: exit %d %r" % (rc, out.strip()))
    r = T.al.ctl("audit", "export", "--since", "1h", "--format", "jsonl")
    kinds = [json.loads(x).get("kind") for x in r.stdout.splitlines() if x.strip()]
    check(r.returncode == 0 and kinds.count("policy_reload") >= 2,
          "policy_reload records in the audit chain: %d (exit %d)" % (kinds.count("policy_reload"), r.returncode))


def case_hook_not_reading():
    """A review_hook that never reads its stdin holds up nothing: with a request of 200 KB (more
    than a pipe holds) waiting on it, airlockd answers airlockctl and other statements at once,
    and the request is decided as usual."""
    need_up()
    slow = os.path.join(T.tmp, "hook-sleeps.sh")
    with open(slow, "w") as f:
        f.write("#!/bin/sh\n# airlock test_review: a hook that does not read its stdin\nsleep 30\n")
    os.chmod(slow, 0o755)
    settings = [x if not x.startswith("review_hook ") else 'review_hook "%s"' % slow for x in T.settings]
    T.al.write_conf([pgcluster.pg_resource("pg", PG_ADDR, T.pg.port, RULES)], settings)
    try:
        r = T.al.ctl("policy", "reload")
        check(r.returncode == 0, "policy reload with the sleeping hook: %s" % r.stderr.strip())
        mark = max_req()
        sql = "DELETE FROM items WHERE id = 31 AND name <> '%s'" % ("x" * 200000)
        p = psql_bg(T.cga, script=sql + ";\n")
        row = wait_request("DELETE FROM items WHERE id = 31 AND", cg=T.cga, after=mark, timeout=15)
        try:
            r = T.al.ctl("status", timeout=5)
        except subprocess.TimeoutExpired:
            raise AssertionError("airlockd did not answer status within 5 s while the hook sleeps")
        check(r.returncode == 0, "status while the hook sleeps: %s" % r.stderr.strip())
        rc, out, err = psql_now(T.cgb, "SELECT 'not held up'", timeout=5)
        check(rc == 0 and out.strip() == "not held up", "a SELECT while the hook sleeps: %d %r" % (rc, err[-200:]))
        rv_ok("bob", "deny", row["id"], "--reason", "big")
        rc, out, err = finish(p)
        check("denied by a reviewer: big" in err, "psql after the denial: %d %r" % (rc, err[-200:]))
    finally:
        T.al.write_conf([pgcluster.pg_resource("pg", PG_ADDR, T.pg.port, RULES)], T.settings)
        T.al.ctl("policy", "reload")


def case_still_up():
    need_up()
    st = T.al.status()
    check(isinstance(st, dict), "status: %r" % st)
    left = requests("state = 'pending'")
    check(not left, "requests still pending: %s" % [(r["id"], r["command"]) for r in left])
    T.al.check_log_clean()


# ---------------------------------------------------------------- main

def setup():
    t = T
    t.tmp, t.home, ca_dir = lib.make_workdir()   # reviewers (other uids) reach the review socket in here
    # The agent runs as uid 65534, which may not read the checkout (a 0700 clone dir).
    global REVIEW_AGENT, PG_AGENT
    REVIEW_AGENT = lib.readable_copy(t.tmp, REVIEW_AGENT)
    PG_AGENT = lib.readable_copy(t.tmp, PG_AGENT)
    t.hookdir = os.path.join(t.tmp, "hook")
    os.mkdir(t.hookdir, 0o700)
    hook = os.path.join(t.tmp, "hook.sh")
    with open(hook, "w") as f:
        f.write('#!/bin/sh\n# airlock test_review: keeps each request it is given\n'
                'exec cat > "%s/req.$$.json"\n' % t.hookdir)
    os.chmod(hook, 0o755)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    lib.on_cleanup(srv.shutdown)
    t.webhook_key = b"webhook key %s" % lib.RUN_ID.encode()
    keyfile = os.path.join(t.tmp, "webhook.key")
    with open(keyfile, "wb") as f:
        f.write(t.webhook_key + b"\n")
    os.chmod(keyfile, 0o600)
    webhook = ['review_webhook "http://127.0.0.1:%d/hooks/airlock?team=db"' % srv.server_address[1],
               'review_webhook_secret "%s"' % keyfile]
    t0 = time.monotonic()
    t.pg = pgcluster.Cluster(PG_ADDR, max_connections=N_BULK + 60)
    t.pg.start(SETUP_SQL)
    note("postgres on %s:%d ready in %.1fs (dir %s)" % (PG_ADDR, t.pg.port, time.monotonic() - t0,
                                                        t.pg.dir))
    secrets = pgcluster.write_secrets(os.path.join(t.tmp, "secrets.conf"),
                                      [("pgcred", "app", APP_PW)])
    t.rsock = os.path.join(t.tmp, "review.sock")
    t.cga = lib.TestCgroup("-a")
    t.cgb = lib.TestCgroup("-b")
    t.settings = ['secrets "%s"' % secrets, 'ca_dir "%s"' % ca_dir, 'review_socket "%s"' % t.rsock,
                  'review_hook "%s"' % hook] + webhook
    t.al = lib.Airlock(t.tmp, [pgcluster.pg_resource("pg", PG_ADDR, t.pg.port, RULES)], settings=t.settings)
    r = subprocess.run([lib.AIRLOCKD, "-n", "-c", t.al.conf], capture_output=True, text=True,
                       timeout=20)
    check(r.returncode == 0, "airlockd -n: %s" % r.stderr.strip())
    t.al.start()
    t.up = True
    for cg in (t.cga, t.cgb):
        r = t.al.ctl("pin", cg.rel)
        check(r.returncode == 0, "pin %s: %s" % (cg.rel, r.stderr.strip()))
    for name, (uid, groups, admin) in REVIEWERS.items():
        r = t.al.ctl("user", "add", name, "--uid", str(uid), "--groups", groups,
                     *(["--admin"] if admin else []))
        check(r.returncode == 0, "user add %s: %s" % (name, r.stderr.strip()))
    users = t.al.ctl_json("user", "list")
    check(sorted(u.get("name") for u in users) == sorted(REVIEWERS), "user list: %r" % users)
    note("cgroups %s %s, pins %s, steer port %d, tmp %s" % (t.cga.rel, t.cgb.rel, t.al.pin_root,
                                                            t.al.steer_port, t.tmp))


CASES = [
    ("DELETE is parked: shown in airlockctl pending (agent, rule, sha256 of the held bytes), "
     "audit decision review, nothing upstream", case_parked),
    ("review_hook gets the request JSON on stdin", case_hook),
    ("review_webhook: the request JSON POSTed with its HMAC signature; a 503 is tried again",
     case_webhook),
    ("review socket refuses a uid that is no reviewer and a reviewer inside the pinned cgroup",
     case_socket_refusals),
    ("an agent's review-socket connection is refused after its pid went to a process outside the pinned "
     "cgroups (the caller's pidfd, not its pid)", case_socket_pid_reused),
    ("an admin reviewer with the agent's uid cannot approve (self-approval)", case_self_approval),
    ("a reviewer in no approver group cannot approve", case_non_approver),
    ("approve -> psql prints DELETE 1, the row is gone upstream, approval recorded", case_approve),
    ("single use: the same statement again is parked again; the old request cannot be reused",
     case_single_use),
    ("approve --for 10m: same fingerprint, other literal runs unreviewed from the same cgroup "
     "(also on a new connection); from the second cgroup, or as another uid in the same one, it is "
     "parked", case_grant),
    ("approve --for longer than max_grant is refused", case_max_grant),
    ("revoke -> the live session that used the grant ends; the next DELETE is parked; a reviewer in no "
     "approver group is refused", case_revoke),
    ("an admin in no approver group revokes a grant; a reviewer in none of them is refused", case_revoke_admin),
    ("deny with a reason -> ERROR 42501 with reason and request id; next statement works",
     case_deny),
    ("timeout 2s -> ERROR 42501 request N timed out; next statement works", case_timeout),
    ("2 approvers: one person in two groups approves (twice refused) -> still pending; "
     "a second person -> runs", case_two_approvers),
    ("the strictest action wins over a multi-statement string (held whole); a DELETE over the "
     "extended protocol (pgbench -M prepared) is held and runs once after approval",
     case_strictest_and_extended),
    ("extended protocol: each Execute is decided (a statement approved once is reviewed again), the "
     "request shows Bind values and every statement of the batch; SQL EXECUTE decided as what it runs; "
     "a grant covers exactly the batch's (or a long string's) sequence of shapes", case_extended_each_execute),
    ("an upsert's DO UPDATE and a MERGE's DELETE are held by a review rule on update and delete",
     case_write_kinds),
    ("policy test re-decides a recorded statement as the proxy does: by every kind it is, and the "
     "proxy's own refusal of an unsafe setting stays", case_policy_test_kinds),
    ("a statement over 1 MiB is refused (54000) before it is classified; the session goes on",
     case_too_long),
    ("pending --watch prints the list again as requests come and go", case_pending_watch),
    ("user del: the removed reviewer is refused; their approval of a pending request no longer "
     "counts, and the grant they made ends (the session that used it too)", case_user_del),
    ("agent disconnects while pending -> request abandoned", case_disconnect),
    ("%d statements parked from %d connections; unrelated SELECTs flow; half approved, half "
     "denied, every client answered" % (N_BULK, N_BULK), case_many),
    ("kill -9 with requests pending: clients get an error, nothing ran, after restart they are "
     "aborted", case_kill9),
    ("review_webhook: a request whose webhook always fails is parked and denied (its tries go on)",
     case_webhook_gave_up_start),
    ("policy reload: uid, exe, cgroup and fingerprint rules take effect at once; a bad file is "
     "refused with file:line and the running policy stays; reloads are audited", case_policy_reload),
    ("review_webhook backs off: tries after 503s 1, 2, 4 s apart, none after the one taken",
     case_webhook_backoff),
    ("a review_hook that never reads its stdin holds up nothing (a 200 KB request waits on it)",
     case_hook_not_reading),
    ("review_webhook gives up after 6 tries (1, 2, 4, 8, 16 s apart): notification_failed in the "
     "audit chain, counted in status", case_webhook_gave_up),
    ("airlockd still up, nothing left pending, no sanitizer or assert lines in its log",
     case_still_up),
]


def main():
    res = lib.Results()
    if os.geteuid() != 0:
        res.not_ok("review: test_review", "needs root (loads BPF, creates cgroups, runs postgres)")
        return 1
    missing = [b for b in (lib.AIRLOCKD, lib.AIRLOCKCTL, SETPRIV) if not os.access(b, os.X_OK)]
    missing += pgcluster.missing_tools()
    if missing:
        res.not_ok("review: test_review", "missing %s (make all; scripts/deps.sh)" % missing)
        return 1
    if importlib.util.find_spec("psycopg2") is None:
        res.not_ok("review: test_review", "python3-psycopg2 is missing (scripts/deps.sh)")
        return 1

    def postgres_log():
        if T.pg and T.pg.log:
            note("postgres log: " + T.pg.log_tail(15))
    return lib.run_suite(res, setup, CASES, lambda: T.al,
                         lambda: [T.cga and T.cga.path, T.cgb and T.cgb.path, T.al and T.al.pin_root,
                                  T.pg and T.pg.dir, T.tmp],
                         prefix="review: ", on_failure=postgres_log)


if __name__ == "__main__":
    sys.exit(main())
