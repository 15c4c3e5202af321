"""Audit integration test (issue 9): a recorded psql session replayed and exported, the hash chain
verified (and tampering named), kill -9 during heavy writes, a full store failing closed (at its
size cap, and on a disk that fills up: a small tmpfs).

Run as root with /usr/bin/python3. Prints `ok - audit: NAME` / `not ok - audit: NAME: why` per
case and exits 1 if any failed. It starts a throwaway PostgreSQL 15 cluster (pgcluster.py,
127.0.0.11 only), an airlockd with a postgres resource for it and a pinned test cgroup; psql and
pgbench run in the cgroup as uid 65534. Everything (cluster, daemon, cgroup, pins, temp dirs) is
removed on any exit.
"""

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import pgcluster  # noqa: E402
from lib import check, note, wait_for  # noqa: E402

SETPRIV = "/usr/bin/setpriv"
ASCIINEMA = shutil.which("asciinema", path="/usr/bin:/bin")
PG_ADDR = "127.0.0.11"
DB = "auditdb"
APP_PW = "aud1t pw"
AGENT_UID = 65534
GAP = 1.0                   # seconds of pg_sleep between the session's statements
# The disk-full case's tmpfs: more than the 16 MiB free that end a disk-full stop (rec.c DISK_ROOM).
FULL_FS_MB = 24
MARK_SQL = "INSERT INTO marks VALUES ('%s') RETURNING tag"
SETUP_SQL = """
CREATE ROLE app LOGIN PASSWORD '%s';
CREATE DATABASE %s OWNER app;
\\c %s
SET SESSION AUTHORIZATION app;
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT g, 'item-' || g FROM generate_series(1, 50) g;
CREATE TABLE marks (tag text PRIMARY KEY);
""" % (APP_PW, DB, DB)
SCRIPT = """SELECT 1 AS one;
SELECT pg_sleep(%s);
SELECT id, name FROM items ORDER BY id LIMIT 3;
SELECT * FROM nosuch_table;
UPDATE items SET name = 'renamed' WHERE id = 50;
SELECT E'\\x1b]0;owned\\x07\\x1b[2J' AS esc;
""" % GAP


class T:
    tmp = home = pg = al = cg = None
    session = None          # connection id of the recorded psql session
    span = None             # its recorded span in seconds (asciicast)


def as_agent(argv):
    return [SETPRIV, "--reuid=%d" % AGENT_UID, "--regid=%d" % AGENT_UID, "--clear-groups"] + argv


def psql(script=None, sql=None, timeout=30):
    argv = [pgcluster.PSQL, "-X", "-w", "-d",
            "host=%s port=%d dbname=%s user=app sslmode=disable connect_timeout=10"
            % (PG_ADDR, T.pg.port, DB)]
    if sql:
        argv += ["-At", "-c", sql]
    return T.cg.run(as_agent(argv), timeout=timeout, input=script,
                    env=pgcluster.client_env(T.home, "wrong"))


def ctl(*args, timeout=60):
    return subprocess.run([lib.AIRLOCKCTL, "-s", T.al.sock, "--store", T.al.store] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout)


def ctl_ok(*args, timeout=60):
    r = ctl(*args, timeout=timeout)
    check(r.returncode == 0, "airlockctl %s exited %d: %s" % (" ".join(map(str, args)), r.returncode,
                                                             (r.stderr or r.stdout).strip()[-400:]))
    return r


def db(sql, args=(), path=None):
    h = sqlite3.connect("file:%s?mode=ro" % (path or T.al.store), uri=True, timeout=5)
    try:
        return h.execute(sql, args).fetchall()
    finally:
        h.close()


def verify(path=None):
    return ctl("audit", "verify", *(["--store", path] if path else []))


def need_up():
    check(T.al.running(), "airlockd is not running (log: %s)" % T.al.log_tail(5))


# ---------------------------------------------------------------- cases

def case_session_recorded():
    need_up()
    before = T.al.max_id()
    r = psql(script=SCRIPT)
    check(r.returncode == 0, "psql exited %d: %s" % (r.returncode, r.stderr.strip()[-300:]))
    check("item-2" in r.stdout and "nosuch_table" in r.stderr, "psql output: %r %r"
          % (r.stdout[-300:], r.stderr[-300:]))
    rows = wait_for(lambda: [c for c in T.al.db_rows("id > ? AND resource = 'pg' AND closed_us IS NOT NULL",
                                                      (before,))], 10)
    check(rows, "no closed connection row for the psql session")
    T.session = rows[-1]["id"]
    def recorded():
        r = ctl("export", T.session, "--format", "jsonl")
        return [json.loads(x) for x in r.stdout.splitlines()] if r.returncode == 0 else []
    msgs = wait_for(recorded, 5) or []
    n = len(msgs)
    types = [m["dir"] + m["type"] for m in msgs]
    check(n >= 15, "only %d recorded messages: %s" % (n, types))
    for want in ("FQ", "BT", "BD", "BC", "BE", "BZ", "FX"):
        check(want in types, "no %s message recorded: %s" % (want, types))
    note("session %d: %d messages recorded" % (T.session, n))


def case_replay_order():
    need_up()
    check(T.session, "no recorded session")
    r = ctl_ok("replay", T.session, "--speed", "0")
    out = r.stdout
    want = ["-- session %d" % T.session, "sql> SELECT 1 AS one", " one", "(1 row)", "SELECT 1",
            "sql> SELECT pg_sleep(%s)" % GAP, "sql> SELECT id, name FROM items", "item-1", "item-3",
            "(3 rows)", "SELECT 3", "sql> SELECT * FROM nosuch_table", "ERROR:  42P01",
            "sql> UPDATE items SET name = 'renamed'", "UPDATE 1", "-- the agent ended the session",
            "-- session %d ended" % T.session]
    pos = 0
    for w in want:
        i = out.find(w, pos)
        check(i >= 0, "replay: %r missing or out of order after offset %d; output:\n%s" % (w, pos, out))
        pos = i + len(w)
    check("item-4" not in out, "replay shows rows that were not returned")
    # A value the server returned cannot drive the responder's terminal (title, clear screen).
    check("\x1b" not in out and "\x07" not in out, "replay printed raw control characters")
    check("^[]0;owned^G^[[2J" in out, "replay does not show the escape sequence as text: %r"
          % out[out.find("esc"):][:200])


def timed_replay(speed):
    t0 = time.monotonic()
    ctl_ok("replay", T.session, "--speed", speed, timeout=120)
    return time.monotonic() - t0


def case_replay_speed():
    need_up()
    check(T.session, "no recorded session")
    lines = ctl_ok("export", T.session, "--format", "asciicast").stdout.splitlines()
    T.span = json.loads(lines[-1])[0]
    check(T.span >= GAP, "recorded span %.3fs is shorter than the session's pg_sleep(%s)" % (T.span, GAP))
    t1 = timed_replay("1")
    t4 = timed_replay("4")
    t0 = timed_replay("0")
    note("recorded span %.3fs; replay took %.3fs at --speed 1, %.3fs at 4, %.3fs at 0"
         % (T.span, t1, t4, t0))
    check(T.span * 0.95 <= t1 <= T.span + 0.6, "--speed 1 took %.3fs for a %.3fs session" % (t1, T.span))
    check(T.span / 4 * 0.9 <= t4 <= T.span / 4 + 0.5, "--speed 4 took %.3fs, want about %.3fs"
          % (t4, T.span / 4))
    check(t0 < 0.5, "--speed 0 took %.3fs" % t0)


def case_asciicast():
    need_up()
    check(T.session, "no recorded session")
    path = os.path.join(T.tmp, "session.cast")
    r = ctl_ok("export", T.session, "--format", "asciicast")
    with open(path, "w") as f:
        f.write(r.stdout)
    lines = r.stdout.splitlines()
    head = json.loads(lines[0])
    check(head.get("version") == 2 and isinstance(head.get("width"), int)
          and isinstance(head.get("height"), int) and isinstance(head.get("timestamp"), int),
          "asciicast header: %r" % head)
    last = 0.0
    for ln in lines[1:]:
        ev = json.loads(ln)
        check(isinstance(ev, list) and len(ev) == 3 and isinstance(ev[0], (int, float))
              and ev[1] == "o" and isinstance(ev[2], str), "asciicast event: %r" % ln)
        check(ev[0] >= last, "asciicast time goes back: %r" % ln)
        last = ev[0]
    text = "".join(json.loads(ln)[2] for ln in lines[1:])
    check("sql> SELECT 1 AS one;\r\n" in text, "asciicast text lacks the first statement: %r" % text[:300])
    if ASCIINEMA:
        # asciinema cat opens /dev/tty: give it a pseudo-terminal (util-linux script).
        c = subprocess.run(["/usr/bin/script", "-q", "-e", "-c", "%s cat %s" % (ASCIINEMA, path),
                            "/dev/null"], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL, env=dict(lib.CLIENT_ENV, HOME=T.home))
        check(c.returncode == 0, "asciinema cat exited %d: %s" % (c.returncode, c.stderr.strip()[-300:]))
        check("sql> SELECT id, name FROM items" in c.stdout and "item-3" in c.stdout,
              "asciinema cat output: %r" % c.stdout[-400:])
    else:
        note("asciinema is not installed (scripts/deps.sh): validated against the v2 format only")
    j = ctl_ok("export", T.session, "--format", "jsonl").stdout.splitlines()
    recs = [json.loads(x) for x in j]
    check(recs and all(x["session"] == T.session for x in recs), "jsonl export: %r" % j[:3])
    check([x["seq"] for x in recs] == sorted(x["seq"] for x in recs), "jsonl export out of order")


def canonical(rec):
    body = json.dumps(rec["body"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    ref = "" if rec["ref_id"] is None else str(rec["ref_id"])
    return "%d|%d|%s|%s|%s" % (rec["seq"], rec["at_us"], rec["kind"], ref, body)


def case_audit_export_chain():
    """The SIEM export, re-checked here by an independent implementation of the chain."""
    need_up()
    r = ctl_ok("audit", "export", "--since", "1h", "--format", "jsonl")
    recs = [json.loads(x) for x in r.stdout.splitlines()]
    # (a group commit's statements are one record: the count depends on how they batched)
    check(len(recs) >= 5, "only %d audit records exported" % len(recs))
    kinds = {x["kind"] for x in recs}
    for k in ("conn_open", "conn_close", "pin"):
        check(k in kinds, "no %s record in the export (kinds %s)" % (k, sorted(kinds)))
    check("statement" in kinds or "commands" in kinds, "no statement in the export (kinds %s)" % sorted(kinds))
    prev = None
    for x in recs:
        if prev is not None:
            check(x["seq"] == prev["seq"] + 1 and x["prev_hash"] == prev["hash"],
                  "export: record %d does not follow %d" % (x["seq"], prev["seq"]))
        h = hashlib.sha256((x["prev_hash"] + canonical(x)).encode()).hexdigest()
        check(h == x["hash"], "record %d: sha256(prev_hash || canonical) is %s, stored %s"
              % (x["seq"], h, x["hash"]))
        prev = x
    # A statement is chained in a record of its own, or as a row of its group commit's
    # "commands" record (with its outcome, when that came within the commit).
    rows = [x["body"] for x in recs if x["kind"] == "statement"]
    rows += [r for x in recs if x["kind"] == "commands" and x["body"].get("kind") == "statements"
             for r in x["body"]["rows"]]
    st = [r for r in rows if r.get("text", "").startswith("UPDATE items")]
    check(st and st[-1].get("decision") == "allow", "the UPDATE's statement in the chain: %r" % st[-1:])
    # Its outcome is chained too: in the same record, or in an "outcome" record for its row.
    if st:
        tags = [st[-1].get("tag")] + [x["body"].get("tag") for x in recs
                                      if x["kind"] == "outcome" and x["ref_id"] == st[-1]["id"]]
        check("UPDATE 1" in tags, "the UPDATE's outcome is not in the chain: %r" % tags)


def case_verify_and_tamper():
    need_up()
    # A clean stop signs the head: there is a checkpoint to forge.
    T.al.stop()
    T.al.start()
    check(db("SELECT count(*) FROM audit_checkpoints")[0][0] >= 1, "no checkpoint after a clean stop")
    r = verify()
    check(r.returncode == 0 and r.stdout.startswith("audit: ok"), "verify of the live store: exit %d %r %r"
          % (r.returncode, r.stdout, r.stderr))
    pub = ctl_ok("audit", "pubkey").stdout
    check("BEGIN PUBLIC KEY" in pub, "audit pubkey: %r" % pub[:80])
    keyf = os.path.join(os.path.dirname(T.al.store), "audit.key")
    check(os.stat(keyf).st_mode & 0o777 == 0o600, "audit.key mode %o" % (os.stat(keyf).st_mode & 0o777))
    # A copy of the live store (sqlite's backup API), tampered four ways.
    for name, sql, want in (
            ("edit", "UPDATE audit SET body = replace(body, 'renamed', 'innocent') WHERE seq = "
             "(SELECT max(seq) FROM audit WHERE body LIKE '%renamed%')", "does not match its hash (edited?)"),
            ("delete", "DELETE FROM audit WHERE seq = 5", "record 5 missing (deleted?)"),
            ("reorder", "UPDATE audit SET seq = -1 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = 5;"
             " UPDATE audit SET seq = 5 WHERE seq = -1", "record 4 does not follow record 3 (edited, reordered or inserted?)"),
            ("forge", "UPDATE audit_checkpoints SET signature = substr(signature, 3) || '00'"
             " WHERE seq = (SELECT min(seq) FROM audit_checkpoints)", "bad signature (forged?)")):
        copy = os.path.join(T.tmp, "tampered-%s.db" % name)
        src = sqlite3.connect("file:%s?mode=ro" % T.al.store, uri=True)
        dst = sqlite3.connect(copy)
        src.backup(dst)
        src.close()
        dst.execute("PRAGMA journal_mode = DELETE")
        dst.executescript(sql)
        dst.commit()
        dst.close()
        r = ctl("audit", "verify", "--store", copy, "--pubkey",
                os.path.join(os.path.dirname(T.al.store), "audit.pub"))
        check(r.returncode == 1 and want in r.stdout, "%s: verify exit %d %r %r"
              % (name, r.returncode, r.stdout.strip(), r.stderr.strip()))
        check(re.search(r"audit: (record|checkpoint at) \d+", r.stdout), "%s: no sequence named: %r"
              % (name, r.stdout))
        note("%s: %s" % (name, r.stdout.strip()))


def case_kill9():
    need_up()
    n0 = db("SELECT count(*) FROM audit")[0][0]
    pgbench = [pgcluster.PGBENCH, "-n", "-S", "-c", "4", "-j", "2", "-T", "6", "-h", PG_ADDR, "-p",
               str(T.pg.port), "-U", "app", DB]
    p = T.cg.popen(as_agent(pgbench), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                   env=pgcluster.client_env(T.home, "wrong"))
    # A commit (every commit_interval under load) chains one record for all its statements.
    grew = wait_for(lambda: db("SELECT count(*) FROM audit")[0][0] > n0 + 20, 10, 0.1)
    check(grew, "pgbench wrote no audit records through Airlock (pgbench: %s)"
          % (p.poll() is not None and p.stderr.read()[-300:]))
    time.sleep(0.5)
    T.al.proc.send_signal(signal.SIGKILL)
    T.al.proc.wait(10)
    out, err = p.communicate(timeout=30)
    n1 = db("SELECT count(*) FROM audit")[0][0]
    r = verify()
    check(r.returncode == 0, "verify after kill -9: %r %r" % (r.stdout, r.stderr))
    T.al.start()
    r = verify()
    check(r.returncode == 0, "verify after the restart: %r %r" % (r.stdout, r.stderr))
    n2 = db("SELECT count(*) FROM audit")[0][0]
    note("kill -9 after %d records written under pgbench; %d after restart; %s" % (n1 - n0, n2 - n0,
                                                                                 r.stdout.strip()))
    check(n2 >= n1, "records vanished across the restart (%d -> %d)" % (n1, n2))
    rc = psql(sql="SELECT count(*) FROM items")
    check(rc.returncode == 0 and rc.stdout.strip() == "50", "psql after the restart: %r %r"
          % (rc.stdout, rc.stderr[-200:]))


def case_record_limit():
    """record_limit bounds a session's recording: past it one `A truncated` row says so and
    nothing more is recorded, while the session and its statements' audit go on."""
    need_up()
    T.al.stop()
    T.al.write_conf([pgcluster.pg_resource("pg", PG_ADDR, T.pg.port)], settings=T.settings + ["record_limit 64k"])
    T.al.start()
    try:
        before = T.al.max_id()
        r = psql(script="SELECT repeat('x', 200) FROM generate_series(1, 1000);\nSELECT 'after-the-limit';\n")
        check(r.returncode == 0 and "after-the-limit" in r.stdout, "psql past record_limit: exit %d %r"
              % (r.returncode, r.stderr.strip()[-300:]))
        rows = wait_for(lambda: T.al.db_rows("id > ? AND resource = 'pg' AND closed_us IS NOT NULL", (before,)), 10)
        check(rows, "no closed connection row for the session")
        recs = [json.loads(x) for x in ctl_ok("export", rows[-1]["id"], "--format", "jsonl").stdout.splitlines()]
        size = sum(len(x.get("data") or "") for x in recs)
        check(recs and (recs[-1]["dir"], recs[-1]["type"], recs[-1]["data"]) == ("A", "truncated", "record_limit reached")
              and 40000 < size <= 64 * 1024, "the recording's end %r, %d bytes of data in %d rows"
              % (recs[-1:] if recs else None, size, len(recs)))
        st = wait_for(lambda: [x for x in T.al.db_rows("conn_id = ?", (rows[-1]["id"],), table="statements")
                               if x["tag"]], 5)
        check([x["tag"] for x in st or []] == ["SELECT 1000", "SELECT 1"],
              "statements audited past the limit: %r" % [x["tag"] for x in st or []])
        note("recording cut at %d bytes of data (%d rows), then one truncated row" % (size, len(recs)))
    finally:
        T.al.stop()
        T.al.write_conf([pgcluster.pg_resource("pg", PG_ADDR, T.pg.port)], settings=T.settings)
        T.al.start()


def case_store_full():
    need_up()
    T.al.stop()
    before = {t: db("SELECT count(*) FROM %s" % t)[0][0] for t in ("connections", "statements", "audit",
                                                                  "recordings")}
    T.al.write_conf([pgcluster.pg_resource("pg", PG_ADDR, T.pg.port)],
                    settings=T.settings + ["store_max_size 64k"])
    T.al.start()
    T.al.ctl("pin", T.cg.rel)
    r = psql(sql="SELECT 1")
    check(r.returncode != 0, "psql through a full store succeeded: %r" % r.stdout)
    rows = wait_for(lambda: T.al.db_rows("reason = 'store_full'"), 5)
    check(rows, "no connection row with reason store_full (log: %s)" % T.al.log_tail(5))
    check(any("audit store is full" in line or "size cap" in line for line in T.al.log_lines()),
          "no log line about the full store: %s" % T.al.log_tail(5))
    st = T.al.status()
    check(st.get("sessions", {}).get("store_full", 0) >= 1 or rows, "status: %r" % st.get("sessions"))
    after = {t: db("SELECT count(*) FROM %s" % t)[0][0] for t in before}
    for t in before:
        check(after[t] >= before[t], "%s lost rows: %d -> %d" % (t, before[t], after[t]))
    r = verify()
    check(r.returncode == 0, "verify of the full store: %r %r" % (r.stdout, r.stderr))
    note("refused with store_full; %s" % r.stdout.strip())
    # rotate: the store is archived, the chain goes on in a new file, sessions are taken again.
    T.al.stop()
    T.al.write_conf([pgcluster.pg_resource("pg", PG_ADDR, T.pg.port)],
                    settings=T.settings + ["store_max_size 64k", "store_full rotate"])
    T.al.start()
    arch = wait_for(lambda: [f for f in os.listdir(os.path.dirname(T.al.store))
                             if re.match(r"airlock\.db\.\d{8}T\d{6}Z$", f)], 10)
    check(arch, "no archive file after rotation (log: %s)" % T.al.log_tail(5))
    rotated = wait_for(lambda: db("SELECT kind FROM audit ORDER BY seq LIMIT 1")[0][0] == "rotated", 10)
    check(rotated, "the live store does not start with a rotated record (log: %s)" % T.al.log_tail(5))
    apath = os.path.join(os.path.dirname(T.al.store), arch[0])
    ra, rl = verify(apath), verify()
    check(ra.returncode == 0, "verify of the archive: %r %r" % (ra.stdout, ra.stderr))
    check(rl.returncode == 0, "verify of the rotated store: %r %r" % (rl.stdout, rl.stderr))
    first = db("SELECT kind, prev_hash FROM audit ORDER BY seq LIMIT 1")[0]
    last_arch = db("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1", path=apath)[0][0]
    check(first[0] == "rotated" and first[1] == last_arch, "the new store's first record %r does not "
          "follow the archive's last hash %s" % (first, last_arch))
    note("archive %s: %s; live: %s" % (arch[0], ra.stdout.strip(), rl.stdout.strip()))


def unmount(path):
    if os.path.ismount(path) and subprocess.run(["umount", path], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True)


def fill(path):
    """Writes path until the file system has no block left (ENOSPC); returns the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    block, n = b"\0" * (1 << 20), 0
    try:
        while True:
            try:
                n += os.write(fd, block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    return n
                block = block[:max(1, len(block) // 16)]
    finally:
        os.close(fd)


def mark(tag):
    """An agent session that writes tag into postgres (marks); psql's answer, .ok if it says it did."""
    r = psql(sql=MARK_SQL % tag, timeout=20)
    r.ok = r.returncode == 0 and tag in r.stdout.split()
    return r


def marked(tag):
    return T.pg.sql("SELECT count(*) FROM marks WHERE tag = '%s'" % tag, db=DB) == "1"


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def case_disk_full():
    """The store on a tmpfs that fills up: airlockd sees the disk run low before a write fails
    (it looks every 200 ms), and from then on new sessions are refused and a session already
    open gets ERROR 53100 (disk_full) for its next statement, which does not reach postgres;
    once the disk has room sessions are taken again; what was committed stays and the chain
    verifies."""
    need_up()
    mnt = os.path.join(T.tmp, "fullfs")
    os.mkdir(mnt, 0o700)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % FULL_FS_MB, "tmpfs", mnt],
                       capture_output=True, text=True)
    check(r.returncode == 0, "mount tmpfs: %s" % r.stderr.strip())
    umount = lib.on_cleanup(unmount, mnt)
    filler, live = os.path.join(mnt, "filler"), T.al.store
    T.al.stop()
    T.al.store = os.path.join(mnt, "airlock.db")
    try:
        T.al.write_conf([pgcluster.pg_resource("pg", PG_ADDR, T.pg.port)], settings=T.settings)
        T.al.start()
        r = T.al.ctl("pin", T.cg.rel)         # the pin outlives a restart (kernel state)
        check(r.returncode == 0 or "already pinned" in r.stderr, "pin %s: %s" % (T.cg.rel, r.stderr.strip()))
        n_log = len(T.al.log_lines())
        before = ["full-before-%d" % i for i in range(3)]
        for tag in before:
            r = mark(tag)
            check(r.ok, "session %s failed before the disk filled: %r %r" % (tag, r.stdout, r.stderr.strip()))
        # Their group commit (commit_interval) is on disk before the disk fills.
        check(wait_for(lambda: len(db("SELECT id FROM statements WHERE text LIKE 'INSERT INTO marks%'")) == 3,
                       5), "the 3 sessions' statements are not in the store before the fill")
        # A session open across the fill: its first INSERT runs, the one after the fill does not.
        open_s = T.cg.popen(as_agent([pgcluster.PSQL, "-X", "-w", "-At", "-d",
                                    "host=%s port=%d dbname=%s user=app sslmode=disable connect_timeout=10"
                                    % (PG_ADDR, T.pg.port, DB)]),
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=pgcluster.client_env(T.home, "wrong"))
        lib.on_cleanup(lib.stop_process, open_s)
        open_s.stdin.write((MARK_SQL % "full-live-1") + ";\nSELECT pg_sleep(1.5);\n" +
                         (MARK_SQL % "full-live-2") + ";\n")
        open_s.stdin.close()
        open_s.stdin = None          # communicate() must not touch it again
        check(wait_for(lambda: marked("full-live-1"), 10, 0.05), "the open session's first INSERT did not run")
        filled = fill(filler)
        check(os.statvfs(mnt).f_bavail == 0, "%d blocks free after filling" % os.statvfs(mnt).f_bavail)
        try:
            lout, lerr = open_s.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            open_s.kill()
            lout, lerr = open_s.communicate()
        check("full-live-1" in lout.split() and "ERROR:  airlock: the audit store is full" in lerr
              and not marked("full-live-2"), "the open session across the fill: %r %r (full-live-2 in "
              "postgres: %s)" % (lout, lerr.strip()[-300:], marked("full-live-2")))

        # New sessions are refused: none of them reaches postgres.
        taken, refused = [], []
        for i in range(5):
            tag = "full-after-%d" % i
            r = mark(tag)
            if not r.ok:
                refused.append(tag)
                break
            taken.append(tag)
            time.sleep(0.3)             # over a commit_interval: its batch meets the full disk
        check(refused, "5 sessions on a full disk all ran (log: %s)" % T.al.log_tail(5))
        check(r.returncode != 0 and r.stderr.strip(), "refused psql: exit %d %r" % (r.returncode, r.stderr))
        first_err = r.stderr.strip().splitlines()[0]
        for i in range(3):
            tag = "full-refused-%d" % i
            r = mark(tag)
            check(not r.ok and r.returncode != 0, "session %s ran after one was refused for the full disk"
                  % tag)
            refused.append(tag)
        upstream = [t for t in refused if marked(t)]
        check(not upstream, "refused sessions ran their statement in postgres: %s" % upstream)
        log = T.al.log_lines()[n_log:]
        said = [ln for ln in log if "refused a session" in ln and "audit store is full" in ln]
        check(len(said) >= len(refused), "not a log line for each of the %d refused sessions: %s"
              % (len(refused), " | ".join(log[-5:])))
        check(any("bytes free on the disk" in ln for ln in log), "no log line says the disk ran low: %s"
              % " | ".join(log[-5:]))
        check(not taken, "sessions ran (unrecorded) after the disk filled: %s" % taken)
        st = T.al.status()
        check(st.get("live") == 0 and st.get("store_accepting") is False
              and st.get("sessions_since_start", {}).get("store_full", 0) >= len(refused),
              "status while full: %r" % {k: st.get(k) for k in ("live", "accepted", "store_accepting",
                                                                "sessions_since_start")})
        r = T.al.ctl("status")
        check("store: FULL" in r.stdout and "sessions refused since start (store_full)" in r.stdout,
              "airlockctl status while full: %r" % r.stdout)
        # Full, airlockd waits for room; it does not spin on the writes that fail.
        c0 = cpu_s(T.al.proc.pid)
        time.sleep(1.0)
        busy = cpu_s(T.al.proc.pid) - c0
        check(busy < 0.3, "airlockd used %.2fs of CPU in 1s on a full disk" % busy)
        need_up()

        os.unlink(filler)
        back = wait_for(lambda: any("the disk has room again" in ln for ln in T.al.log_lines()[n_log:]),
                        10, 0.1)
        check(back, "no 'the disk has room again' log line within 10s (log: %s)" % T.al.log_tail(5))
        check(T.al.status().get("store_accepting") is True, "status after the disk has room: not accepting")
        again = ["full-again-%d" % i for i in range(2)]
        for tag in again:
            r = mark(tag)
            check(r.ok, "session %s refused after the disk has room: %r (log: %s)"
                  % (tag, r.stderr.strip(), T.al.log_tail(5)))
        check(T.al.stop() == 0, "airlockd did not exit cleanly (log: %s)" % T.al.log_tail(5))
        r = verify(T.al.store)
        check(r.returncode == 0 and r.stdout.startswith("audit: ok"), "verify of the store that met a "
              "full disk: exit %d %r %r" % (r.returncode, r.stdout, r.stderr))
        # Each session psql saw succeed before the fill and after the room came back is in the
        # store: its statement with its outcome, in a closed connection.
        for tag in before + again:
            rows = db("SELECT s.tag, c.closed_us FROM statements s JOIN connections c ON c.id = s.conn_id"
                      " WHERE s.text = ?", (MARK_SQL % tag,))
            check(rows and rows[0][0] == "INSERT 0 1" and rows[0][1], "session %s in the store: %r"
                  % (tag, rows))
            check(marked(tag), "session %s is not in postgres" % tag)
        # The session that met the full disk: its batch is lost whole or kept whole, never a
        # statement without its connection.
        kept = []
        for tag in taken:
            rows = db("SELECT (SELECT count(*) FROM connections c WHERE c.id = s.conn_id) FROM statements s"
                      " WHERE s.text = ?", (MARK_SQL % tag,))
            check(all(n == 1 for (n,) in rows), "session %s: a statement without its connection" % tag)
            kept += [tag] if rows else []
        note("filled %d KiB; %d session(s) ran as the disk filled (%d kept in the store: the rest were "
             "in the batch that met it), then refused (psql: %s); %.2fs CPU in 1s full; %s"
             % (filled // 1024, len(taken), len(kept), first_err, busy, r.stdout.strip()))
    finally:
        if T.al.running():
            T.al.stop()
        lib.run_cleanup(umount)
        T.al.store = live
        T.al.write_conf([pgcluster.pg_resource("pg", PG_ADDR, T.pg.port)], settings=T.settings)
        T.al.start()
        T.al.ctl("pin", T.cg.rel)


def case_still_up():
    need_up()
    T.al.check_log_clean()


# ---------------------------------------------------------------- main

def setup():
    t = T
    t.tmp, t.home, ca_dir = lib.make_workdir()
    t.pg = pgcluster.Cluster(PG_ADDR, max_connections=40)
    t.pg.start(SETUP_SQL)
    r = pgcluster.run([pgcluster.PGBENCH, "-i", "-s", "1", "-q", "-h", t.pg.sock, "-p", str(t.pg.port),
                       "-U", "app", DB], timeout=120)
    pgcluster.must(r, "pgbench -i")
    secrets = pgcluster.write_secrets(os.path.join(t.tmp, "secrets.conf"), [("pgcred", "app", APP_PW)])
    t.cg = lib.TestCgroup()
    t.settings = ['secrets "%s"' % secrets, 'ca_dir "%s"' % ca_dir,
                  'review_socket "%s"' % os.path.join(t.tmp, "review.sock"), "console_listen off"]
    t.al = lib.Airlock(t.tmp, [pgcluster.pg_resource("pg", PG_ADDR, t.pg.port)], settings=t.settings)
    r = subprocess.run([lib.AIRLOCKD, "-n", "-c", t.al.conf], capture_output=True, text=True, timeout=20)
    if r.returncode != 0 and "console_listen" in r.stderr:
        t.settings = t.settings[:-1]
        t.al.write_conf([pgcluster.pg_resource("pg", PG_ADDR, t.pg.port)], settings=t.settings)
        r = subprocess.run([lib.AIRLOCKD, "-n", "-c", t.al.conf], capture_output=True, text=True, timeout=20)
    check(r.returncode == 0, "airlockd -n: %s" % r.stderr.strip())
    t.al.start()
    r = t.al.ctl("pin", t.cg.rel)
    check(r.returncode == 0, "pin %s: %s" % (t.cg.rel, r.stderr.strip()))


CASES = [
    ("a psql session through Airlock is recorded both ways (statements, rows, tags, errors)",
     case_session_recorded),
    ("airlockctl replay shows the statements and their results in order", case_replay_order),
    ("replay keeps the recorded timing, scaled by --speed (1, 4, 0)", case_replay_speed),
    ("export --format asciicast is asciicast v2 and asciinema cat reads it; --format jsonl",
     case_asciicast),
    ("audit export --since 1h: every record chains (checked independently in python)",
     case_audit_export_chain),
    ("audit verify passes; an edited, a deleted, two swapped records and a forged checkpoint are named",
     case_verify_and_tamper),
    ("kill -9 of airlockd under pgbench: the chain verifies before and after the restart", case_kill9),
    ("record_limit: a session's recording stops with one 'truncated' row; the session and its "
     "audit go on", case_record_limit),
    ("a store at its cap refuses new sessions (store_full) and keeps everything; rotate archives "
     "and chains on", case_store_full),
    ("the store's disk fills: sessions are refused (store_full) before reaching postgres, taken again "
     "once it has room; nothing committed is lost and the chain verifies", case_disk_full),
    ("airlockd log has no sanitizer or assert lines", case_still_up),
]


def main():
    res = lib.Results()
    if os.geteuid() != 0:
        res.not_ok("audit: test_audit", "needs root (loads BPF, creates a cgroup, runs postgres)")
        return 1
    missing = [b for b in (lib.AIRLOCKD, lib.AIRLOCKCTL, SETPRIV, pgcluster.PGBENCH)
               if not os.access(b, os.X_OK)] + pgcluster.missing_tools()
    if missing:
        res.not_ok("audit: test_audit", "missing %s (make all; scripts/deps.sh)" % missing)
        return 1
    return lib.run_suite(res, setup, CASES, lambda: T.al,
                         lambda: [T.cg and T.cg.path, T.al and T.al.pin_root, T.pg and T.pg.dir, T.tmp],
                         prefix="audit: ", log_tail=30)


if __name__ == "__main__":
    sys.exit(main())
