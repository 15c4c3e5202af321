"""The PostgreSQL agent of test_pg.py: runs inside the test cgroup, speaks the wire protocol, prints one JSON object.

Usage: pg_agent.py MODE HOST PORT DBNAME USER [ARGS...]
  gssenc                 GSSENCRequest first (expects 'N'), then a plaintext startup and SELECT 1
  extended               extended protocol: typed text/NULL/binary Bind parameters, a named
                         statement bound twice, a denied batch (error, rest skipped to Sync),
                         then the session goes on
  cancel                 CancelRequest with a wrong key (nothing happens), then with the key
                         the agent was given (the running pg_sleep is cancelled)
  big N                  one simple Query of about N bytes
  malformed KIND         a bad message after ReadyForQuery (or instead of the startup packet):
                         huge | over | short | unknown | nonul | startup
  stall KIND             connects and stops short of a login: sends nothing (silent) or half a
                         StartupMessage (half), then reads until the end; says how long that took
  psycopg2 ROOTCERT      psycopg2 over verify-full with a wrong password: parameters, a
                         transaction, a denied statement and the session after it
  psycopg2-cancel        psycopg2: pg_sleep cancelled with conn.cancel(), then SELECT 1
  funccall               a FunctionCall message (the function-call protocol: upper('abc') by
                         OID), then SELECT 1 on the same session
  chaos SEED N           N random batches of extended-protocol messages (Parse, Bind, Execute,
                         Close, Describe, Flush over a few names, one statement a rule denies among
                         them) and simple PREPARE/EXECUTE/DEALLOCATE/DISCARD strings, each ended
                         by Sync: counts the ReadyForQuery answers, SQLSTATEs and UPDATE tags
                         (the denied UPDATE ran), and the sum of items.qty after
  wire                   interactive (pgcluster.AgentSession): prints {"ready": true}, then for
                         each line on stdin, {"sql": S} (a simple Query) or {"batch": [MSG...]}
                         with MSG one of ["P", name, sql], ["B", portal, stmt, [text or null]],
                         ["E", portal], ["C", "S"|"P", name], ["S"], sends it and prints
                         {"result": [what came back up to ReadyForQuery], "eof": bool}

Every mode reports what the agent saw (auth codes, SQLSTATEs, rows) and whether any
byte it received contained the real password (given in $AIRLOCK_TEST_REAL_PASSWORD).
"""

import json
import os
import socket
import struct
import sys
import threading
import time

REAL_PW = os.environ.get("AIRLOCK_TEST_REAL_PASSWORD", "").encode()
TIMEOUT = 15


def out(obj):
    obj["pid"] = os.getpid()
    print(json.dumps(obj), flush=True)


class Conn:
    """A minimal PostgreSQL v3 frontend on a plain socket."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""
        self.seen = b""          # every byte received, for the password check
        self.auth_codes = []
        self.key = None          # (pid, key) from BackendKeyData
        self.params = {}
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def recv_some(self):
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        self.seen += d
        return True

    def read_byte(self):
        while not self.buf:
            if not self.recv_some():
                return None
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def read_msg(self):
        """(type, body) or None at EOF."""
        while True:
            if len(self.buf) >= 5:
                t = self.buf[:1]
                (n,) = struct.unpack("!I", self.buf[1:5])
                if len(self.buf) >= 1 + n:
                    body = self.buf[5:1 + n]
                    self.buf = self.buf[1 + n:]
                    return t, body
            if not self.recv_some():
                return None

    def read_until_ready(self):
        """Messages up to and including ReadyForQuery (or EOF)."""
        msgs = []
        while True:
            m = self.read_msg()
            if m is None:
                return msgs
            msgs.append(m)
            if m[0] == b"Z":
                return msgs

    def startup(self, user, db, extra=()):
        params = b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0" + \
            b"application_name\0pg_agent\0" + b"".join(cstr(k) + cstr(v) for k, v in extra) + b"\0"
        self.send(struct.pack("!II", 8 + len(params), 0x00030000) + params)
        msgs = []
        while True:
            m = self.read_msg()
            if m is None:
                raise RuntimeError("EOF during startup after %r" % [x[0] for x in msgs])
            msgs.append(m)
            t, body = m
            if t == b"R":
                (code,) = struct.unpack("!I", body[:4])
                self.auth_codes.append(code)
                if code == 3:           # cleartext: anything will do
                    pw = b"not-the-password\0"
                    self.send(b"p" + struct.pack("!I", 4 + len(pw)) + pw)
                elif code == 5:         # md5 of a wrong password
                    pw = b"md5" + b"0" * 32 + b"\0"
                    self.send(b"p" + struct.pack("!I", 4 + len(pw)) + pw)
                elif code != 0:
                    raise RuntimeError("authentication request %d from Airlock" % code)
            elif t == b"K":
                self.key = struct.unpack("!II", body[:8])
            elif t == b"S":
                k, v = body.rstrip(b"\0").split(b"\0", 1)
                self.params[k.decode()] = v.decode()
            elif t == b"E":
                raise RuntimeError("startup error: %s" % fields(body))
            elif t == b"Z":
                return msgs

    def query(self, sql):
        q = sql.encode() + b"\0"
        self.send(b"Q" + struct.pack("!I", 4 + len(q)) + q)
        return self.read_until_ready()

    def close(self):
        try:
            self.send(b"X\0\0\0\4")
        except OSError:
            pass
        self.sock.close()

    def leaked(self):
        return bool(REAL_PW) and REAL_PW in self.seen


def fields(body):
    """ErrorResponse/NoticeResponse fields as a dict of one-letter codes."""
    f = {}
    for part in body.split(b"\0"):
        if part:
            f[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return f


def rows_of(msgs):
    """DataRow values (text format) of a message list."""
    rows = []
    for t, body in msgs:
        if t != b"D":
            continue
        (n,) = struct.unpack("!H", body[:2])
        off, row = 2, []
        for _ in range(n):
            (ln,) = struct.unpack("!i", body[off:off + 4])
            off += 4
            if ln < 0:
                row.append(None)
            else:
                row.append(body[off:off + ln].decode("utf-8", "replace"))
                off += ln
        rows.append(row)
    return rows


def summary(msgs):
    """A compact, JSON-friendly list of what came back."""
    s = []
    for t, body in msgs:
        if t in (b"E", b"N"):
            f = fields(body)
            s.append({"type": t.decode(), "severity": f.get("V", f.get("S")), "sqlstate": f.get("C"),
                      "message": f.get("M")})
        elif t == b"C":
            s.append({"type": "C", "tag": body.rstrip(b"\0").decode()})
        elif t == b"Z":
            s.append({"type": "Z", "status": body.decode()})
        elif t == b"D":
            s.append({"type": "D", "row": rows_of([(t, body)])[0]})
        else:
            s.append({"type": t.decode("latin-1")})
    return s


# ---------------------------------------------------------------- extended protocol builders

def msg(t, body):
    return t + struct.pack("!I", 4 + len(body)) + body


def cstr(s):
    return s.encode() + b"\0"


def parse(name, sql, types=()):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack("!H", len(types)) +
               b"".join(struct.pack("!I", t) for t in types))


def bind(portal, stmt, params, formats=()):
    body = cstr(portal) + cstr(stmt) + struct.pack("!H", len(formats)) + \
        b"".join(struct.pack("!h", f) for f in formats) + struct.pack("!H", len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            body += struct.pack("!i", len(p)) + p
    return msg(b"B", body + struct.pack("!H", 0))


def describe(what, name):
    return msg(b"D", what + cstr(name))


def execute(portal, max_rows=0):
    return msg(b"E", cstr(portal) + struct.pack("!i", max_rows))


SYNC = msg(b"S", b"")


# ---------------------------------------------------------------- modes

def mode_gssenc(host, port, db, user):
    c = Conn(host, port)
    c.send(struct.pack("!II", 8, 80877104))
    answer = c.read_byte()
    res = {"gss_answer": answer.decode("latin-1") if answer else None, "local_port": c.local_port}
    if answer == b"N":
        c.startup(user, db)
        res["rows"] = rows_of(c.query("SELECT 1 AS one"))
        res["auth_codes"] = c.auth_codes
    res["leaked"] = c.leaked()
    c.close()
    out(res)


def mode_extended(host, port, db, user):
    c = Conn(host, port)
    c.startup(user, db)
    res = {"local_port": c.local_port, "auth_codes": c.auth_codes}
    # 1: unnamed statement, int4/text/bytea parameters: text "41", NULL, binary 4 bytes.
    c.send(parse("", "SELECT $1::int + 1 AS a, $2::text IS NULL AS b, length($3::bytea) AS c",
                 (23, 25, 17)) +
           bind("", "", [b"41", None, b"\x01\x02\x03\x04"], (0, 0, 1)) +
           describe(b"P", "") + execute("") + SYNC)
    res["typed"] = summary(c.read_until_ready())
    # 2: a named statement bound twice, each with its own parameter.
    c.send(parse("airlock_s1", "SELECT name FROM items WHERE name = $1") +
           bind("", "airlock_s1", [b"widget"]) + execute("") +
           bind("", "airlock_s1", [b"gadget"]) + execute("") + SYNC)
    res["named"] = summary(c.read_until_ready())
    # 3: a denied batch (unbounded write) followed by a harmless statement in the same batch:
    #    the whole batch up to Sync is refused, like the server skips after an error.
    c.send(parse("", "UPDATE items SET qty = 0") + bind("", "", []) + execute("") +
           parse("", "INSERT INTO items(name, qty) VALUES ('ext-after-deny', 1)") +
           bind("", "", []) + execute("") + SYNC)
    res["denied"] = summary(c.read_until_ready())
    # 4: the session goes on.
    c.send(parse("", "SELECT count(*) FROM items WHERE name = $1") + bind("", "", [b"widget"]) +
           execute("") + SYNC)
    res["after"] = summary(c.read_until_ready())
    # 5: the named statement still works after the denial.
    c.send(bind("", "airlock_s1", [b"gizmo"]) + execute("") + SYNC)
    res["named_again"] = summary(c.read_until_ready())
    res["leaked"] = c.leaked()
    c.close()
    out(res)


def wire_msg(m):
    op = m[0]
    if op == "P":
        return parse(m[1], m[2])
    if op == "B":
        return bind(m[1], m[2], [None if v is None else v.encode() for v in m[3]])
    if op == "E":
        return execute(m[1])
    if op == "C":
        return msg(b"C", m[1].encode() + cstr(m[2]))
    if op == "S":
        return SYNC
    raise ValueError("unknown message %r" % (m,))


CHAOS_SQL = [
    "SELECT $1::int AS v",                      # returns its parameter
    "SELECT 1 AS v",
    "UPDATE items SET qty = qty + 1",           # unbounded: a rule denies it, it must never run
    "SELECT * FROM no_such_table",              # the server refuses it
    "SELEC 1",                                  # Airlock cannot parse it
    "",                                         # empty query
]
CHAOS_SIMPLE = ["PREPARE a AS SELECT 1", "PREPARE b AS UPDATE items SET qty = qty + 1", "EXECUTE a",
                "EXECUTE b", "DEALLOCATE a", "DEALLOCATE ALL", "DISCARD ALL", "BEGIN", "COMMIT",
                "SELECT 1"]


def mode_chaos(host, port, db, user, seed, n):
    import random
    rnd = random.Random(int(seed))
    c = Conn(host, port)
    c.startup(user, db)
    names, portals = ["", "a", "b"], ["", "p"]
    res = {"batches": 0, "ready": 0, "sqlstates": {}, "updates": 0, "eof": False}
    for _ in range(int(n)):
        if rnd.random() < 0.15:
            msgs = c.query(rnd.choice(CHAOS_SIMPLE))
        else:
            batch = b""
            for _ in range(rnd.randint(1, 6)):
                k = rnd.random()
                if k < 0.3:
                    batch += parse(rnd.choice(names), rnd.choice(CHAOS_SQL))
                elif k < 0.6:
                    v = str(rnd.randint(0, 999))
                    batch += bind(rnd.choice(portals), rnd.choice(names + ["zz"]), [v.encode()])
                elif k < 0.85:
                    batch += execute(rnd.choice(portals + ["q"]))
                elif k < 0.93:
                    what = rnd.choice([b"S", b"P"])
                    batch += msg(b"C", what + cstr(rnd.choice(names if what == b"S" else portals)))
                elif k < 0.97:
                    batch += describe(rnd.choice([b"S", b"P"]), rnd.choice(names))
                else:
                    batch += msg(b"H", b"")         # Flush: sent on, the unit goes on to the Sync
            c.send(batch + SYNC)
            msgs = c.read_until_ready()
        res["batches"] += 1
        if not msgs or msgs[-1][0] != b"Z":
            res["eof"] = True
            break
        res["ready"] += sum(1 for t, _ in msgs if t == b"Z")
        for t, body in msgs:
            if t == b"E":
                st = fields(body).get("C", "?")
                res["sqlstates"][st] = res["sqlstates"].get(st, 0) + 1
            elif t == b"C" and body.startswith(b"UPDATE"):
                res["updates"] += 1     # the denied UPDATE ran (even if rolled back later)
    if not res["eof"]:
        c.query("COMMIT")               # ends a transaction the batches left open (or aborted)
        res["qty"] = rows_of(c.query("SELECT sum(qty) FROM items"))[0][0]
    c.close()
    out(res)


def mode_wire(host, port, db, user):
    c = Conn(host, port)
    c.startup(user, db)
    c.sock.settimeout(120)      # a batch may wait for reviewers
    out({"ready": True, "local_port": c.local_port})
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if "sql" in cmd:
            msgs = c.query(cmd["sql"])
        else:
            c.send(b"".join(wire_msg(m) for m in cmd["batch"]))
            msgs = c.read_until_ready()
        out({"result": summary(msgs), "eof": c.eof})
    c.close()


def mode_cancel(host, port, db, user):
    c = Conn(host, port)
    c.startup(user, db)
    res = {"local_port": c.local_port, "key": c.key}
    backend_pid = rows_of(c.query("SELECT pg_backend_pid()"))[0][0]
    res["backend_pid"] = int(backend_pid)
    q = cstr("SELECT pg_sleep(8)")
    t0 = time.monotonic()
    c.send(b"Q" + struct.pack("!I", 4 + len(q)) + q)
    time.sleep(0.5)

    def cancel(pid, key):
        s = socket.create_connection((host, port), timeout=TIMEOUT)
        s.sendall(struct.pack("!IIII", 16, 80877102, pid, key))
        try:
            rest = s.recv(100)   # the server closes without an answer
        except OSError:
            rest = b""
        s.close()
        return rest

    pid, key = c.key
    res["wrong_key_answer"] = cancel(pid, key ^ 0x5a5a5a5a).decode("latin-1")
    c.sock.settimeout(1.5)
    try:
        got = c.sock.recv(1)
        c.buf += got
        c.seen += got
        res["after_wrong_key"] = "answered"
    except socket.timeout:
        res["after_wrong_key"] = "still running"
    c.sock.settimeout(TIMEOUT)
    cancel(pid, key)
    msgs = c.read_until_ready()
    res["elapsed"] = time.monotonic() - t0
    res["cancelled"] = summary(msgs)
    res["after"] = rows_of(c.query("SELECT 'still here'"))
    res["leaked"] = c.leaked()
    c.close()
    out(res)


def mode_big(host, port, db, user, n):
    c = Conn(host, port)
    c.startup(user, db)
    pad = "x" * max(0, int(n) - 40)
    msgs = c.query("SELECT length('%s') AS n" % pad)
    out({"local_port": c.local_port, "result": summary(msgs)[-3:], "sent": len(pad)})
    c.close()


def over_limit_query(limit=1 << 20):
    sql = ("SELECT length('%s')" % ("y" * limit)).encode() + b"\0"
    return b"Q" + struct.pack("!I", 4 + len(sql)) + sql


def mode_malformed(host, port, db, user, kind):
    c = Conn(host, port)
    res = {"local_port": c.local_port, "kind": kind}
    if kind == "startup":
        # A startup packet with an unknown protocol code and trailing garbage.
        c.send(struct.pack("!II", 16, 0x12345678) + b"garbage!")
    else:
        c.startup(user, db)
        bad = {
            # A Query that claims 2 GiB; nothing follows. Refused on its header.
            "huge": b"Q" + struct.pack("!I", 0x7ffffff0) + b"SELECT 1",
            # A length below its own 4 bytes.
            "short": b"Q" + struct.pack("!I", 2) + b"SELECT 1\0",
            # A complete, well-formed Query just over pg_max_message (1 MiB).
            "over": over_limit_query() if kind == "over" else b"",
            # A type byte no frontend message has.
            "unknown": b"\x01" + struct.pack("!I", 8) + b"abcd",
            # A Query whose string is not NUL-terminated (a truncated message).
            "nonul": b"Q" + struct.pack("!I", 4 + 8) + b"SELECT 1",
        }[kind]
        try:
            c.send(bad)
        except OSError as e:     # Airlock may close while a long message is still going out
            res["send_error"] = str(e)
    read_to_end(c, res, 5, time.monotonic())


def read_to_end(c, res, timeout, t0):
    """Reads Airlock's messages until it closes or is silent for timeout seconds, and prints res
    with them, whether it closed, and the seconds since t0."""
    msgs = []
    c.sock.settimeout(timeout)
    try:
        while True:
            m = c.read_msg()
            if m is None:
                break
            msgs.append(m)
    except socket.timeout:
        res["timeout"] = True
    res["msgs"] = summary(msgs)
    res["eof"] = c.eof
    res["elapsed"] = time.monotonic() - t0
    c.sock.close()
    out(res)


def mode_stall(host, port, db, user, kind):
    t0 = time.monotonic()
    c = Conn(host, port)
    res = {"local_port": c.local_port, "kind": kind}
    if kind == "half":
        params = b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0\0"
        packet = struct.pack("!II", 8 + len(params), 0x00030000) + params
        c.send(packet[:len(packet) // 2])
    read_to_end(c, res, TIMEOUT, t0)


def mode_psycopg2(host, port, db, user, rootcert):
    import psycopg2
    import psycopg2.errors
    res = {}
    conn = psycopg2.connect(host=host, port=port, dbname=db, user=user, password="wrong-password",
                            sslmode="verify-full", sslrootcert=rootcert, connect_timeout=10,
                            application_name="pg_agent-psycopg2")
    res["ssl_in_use"] = conn.info.ssl_in_use
    s = socket.socket(fileno=os.dup(conn.fileno()))
    res["local_port"] = s.getsockname()[1]
    s.close()  # closes the dup only
    cur = conn.cursor()
    cur.execute("SELECT %s::int + 1, %s::text, %s IS NULL", (41, "it's", None))
    res["params_row"] = list(cur.fetchone())
    cur.execute("INSERT INTO items(name, qty) VALUES (%s, %s) RETURNING qty", ("psy-row", 7))
    res["insert_row"] = list(cur.fetchone())
    conn.commit()
    cur.execute("SELECT current_user, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())")
    res["who"] = list(cur.fetchone())
    conn.commit()
    try:
        cur.execute("DELETE FROM items")
        res["denied"] = "not refused"
    except psycopg2.Error as e:
        res["denied"] = {"pgcode": e.pgcode, "message": str(e).strip(),
                         "cls": type(e).__name__}
    conn.rollback()
    cur.execute("SELECT count(*) FROM items WHERE name = %s", ("psy-row",))
    res["after"] = list(cur.fetchone())
    conn.commit()
    conn.close()
    out(res)


def mode_psycopg2_cancel(host, port, db, user):
    import psycopg2
    res = {}
    conn = psycopg2.connect(host=host, port=port, dbname=db, user=user, sslmode="require",
                            connect_timeout=10)
    conn.autocommit = True
    cur = conn.cursor()
    t = threading.Timer(0.7, conn.cancel)
    t0 = time.monotonic()
    t.start()
    try:
        cur.execute("SELECT pg_sleep(8)")
        res["error"] = None
    except psycopg2.Error as e:
        res["error"] = {"pgcode": e.pgcode, "message": str(e).strip()}
    res["elapsed"] = time.monotonic() - t0
    t.join()
    cur.execute("SELECT 'usable'")
    res["after"] = cur.fetchone()[0]
    conn.close()
    out(res)


def mode_funccall(host, port, db, user):
    c = Conn(host, port)
    c.startup(user, db)
    oid = int(rows_of(c.query("SELECT 'upper(text)'::regprocedure::oid"))[0][0])
    arg = b"abc"
    # FunctionCall: OID, 1 argument format (text), 1 argument, result format text.
    body = struct.pack("!IHHH", oid, 1, 0, 1) + struct.pack("!i", len(arg)) + arg + struct.pack("!H", 0)
    c.send(msg(b"F", body))
    res = {"oid": oid, "call": summary(c.read_until_ready())}
    res["after"] = rows_of(c.query("SELECT 1 AS one"))
    res["leaked"] = c.leaked()
    c.close()
    out(res)


# Read by the server with standard_conforming_strings off: a string, then an UPDATE. Read with
# it on (libpg_query, always): one SELECT of two strings.
SMUGGLE = "SELECT 'x\\' AS a, $$' ; UPDATE items SET qty = qty + 1000 WHERE id > 0; -- $$"


def mode_guard(host, port, db, user):
    """What would make the server read SQL otherwise than Airlock does: startup parameters,
    and a function that turns standard_conforming_strings off with a query pipelined behind it."""
    res = {}
    for k, v in (("role", "postgres"), ("standard_conforming_strings", "off"), ("client_encoding", "SJIS"),
                 ("Client_Encoding", "ms-kanji"), ("DateStyle", "ISO, MDY")):
        c = Conn(host, port)
        try:
            c.startup(user, db, [(k, v)])
            res["startup " + k] = "accepted"
        except RuntimeError as e:
            res["startup " + k] = str(e)
        c.close()
    c = Conn(host, port)
    c.startup(user, db)
    res["pipelined_alone"] = summary(c.query(SMUGGLE))
    c.send(msg(b"Q", cstr("SELECT scs_off()")) + msg(b"Q", cstr(SMUGGLE)))
    msgs = []
    while True:
        m = c.read_msg()
        if m is None:
            break
        msgs.append(m)
    res["pipelined"] = summary(msgs)
    res["eof"] = c.eof
    res["leaked"] = c.leaked()
    c.close()
    out(res)


def main():
    mode, host, port, db, user = sys.argv[1:6]
    port = int(port)
    rest = sys.argv[6:]
    modes = {
        "gssenc": mode_gssenc, "extended": mode_extended, "cancel": mode_cancel,
        "big": mode_big, "malformed": mode_malformed, "psycopg2": mode_psycopg2,
        "psycopg2-cancel": mode_psycopg2_cancel, "funccall": mode_funccall, "wire": mode_wire,
        "chaos": mode_chaos, "guard": mode_guard, "stall": mode_stall,
    }
    modes[mode](host, port, db, user, *rest)


if __name__ == "__main__":
    main()
