"""PostgreSQL agents for test_review.py: run inside the pinned test cgroup (as a non-root uid), print JSON lines.

Usage: review_agent.py MODE HOST PORT DBNAME USER [ARGS...]
  session            one long-lived psycopg2 connection (autocommit). Prints {"ready": ...},
                     then for each line on stdin ({"sql": "..."}) runs it and prints
                     {"status": TAG, "rows": [...]} or {"error": ..., "pgcode": ..., "closed": N};
                     for {"peek": SECS} it waits that long for a message the server sends unasked
                     and prints {"peek": {"type": "E", "fields": {...}}} (not consumed), or null.
                     For {"repeat": SQL, "secs": S, "over_us": T} it runs SQL again and again for S
                     seconds and prints {"n": N, "mean_us": ..., "p50_us": ..., "p99_us": ...,
                     "max_us": ..., "slowest_us": [the 50 longest], "over_us": [each over T, at most
                     5000]} (each statement timed here, in the client).
                     Ends at EOF on stdin.
  many N SQL         N connections at once (threads), each runs SQL % i (i = 0..N-1) once.
                     Prints {"connected": N} when all are up, then one {"results": [...]} line
                     when every statement has its answer (or DEADLINE seconds passed).
"""

import json
import os
import select
import socket
import struct
import sys
import threading
import time

import psycopg2

DEADLINE = 120


def out(obj):
    print(json.dumps(obj), flush=True)


def connect(host, port, db, user):
    # Any password: the agent's identity is its cgroup; Airlock logs in upstream itself.
    return psycopg2.connect(host=host, port=port, dbname=db, user=user, password="not-the-password",
                            sslmode="disable", connect_timeout=10, application_name="review_agent")


def run_one(conn, sql):
    t0 = time.monotonic()
    try:
        cur = conn.cursor()
        cur.execute(sql)
        rows = [list(map(str, r)) for r in cur.fetchall()] if cur.description else []
        res = {"status": cur.statusmessage, "rows": rows}
    except psycopg2.Error as e:
        res = {"error": str(e).strip(), "pgcode": e.pgcode, "closed": conn.closed}
    res["elapsed"] = round(time.monotonic() - t0, 3)
    return res


def peek(conn, secs):
    """Waits up to secs for bytes the server sent on its own (without a query) and returns the
    first message, without consuming it: {"type", "fields"} or {"eof": true} or None."""
    fd = conn.fileno()
    r, _, _ = select.select([fd], [], [], secs)
    if not r:
        return None
    s = socket.socket(fileno=os.dup(fd))
    try:
        data = s.recv(65536, socket.MSG_PEEK)
    except OSError as e:
        return {"error": str(e)}
    finally:
        s.close()           # the dup only
    if not data:
        return {"eof": True}
    res = {"type": data[:1].decode("latin-1"), "bytes": len(data)}
    if data[:1] in (b"E", b"N") and len(data) >= 5:
        (n,) = struct.unpack("!I", data[1:5])
        res["fields"] = {chr(p[0]): p[1:].decode("utf-8", "replace")
                         for p in data[5:1 + n].split(b"\0") if p}
    return res


def repeat(conn, sql, secs, over_us):
    lat = []
    cur = conn.cursor()
    end = time.monotonic() + secs
    while True:
        t0 = time.monotonic()
        if t0 >= end:
            break
        cur.execute(sql)
        cur.fetchall()
        lat.append(time.monotonic() - t0)
    lat.sort()
    us = [round(x * 1e6) for x in lat]
    return {"n": len(us), "mean_us": round(sum(lat) / len(lat) * 1e6) if lat else None,
            "p50_us": us[len(us) // 2] if us else None, "p99_us": us[len(us) * 99 // 100] if us else None,
            "max_us": us[-1] if us else None, "slowest_us": us[-50:][::-1],
            "over_us": [x for x in us if x > over_us][-5000:]}


def mode_session(host, port, db, user):
    conn = connect(host, port, db, user)
    conn.autocommit = True
    out({"ready": True, "backend": run_one(conn, "SELECT pg_backend_pid()")})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        if "peek" in cmd:
            out({"peek": peek(conn, float(cmd["peek"]))})
        elif "repeat" in cmd:
            out(repeat(conn, cmd["repeat"], float(cmd["secs"]), float(cmd.get("over_us", 1e9))))
        else:
            out(run_one(conn, cmd["sql"]))
    try:
        conn.close()
    except psycopg2.Error:
        pass


def mode_many(host, port, db, user, n, sql):
    n = int(n)
    conns = [None] * n
    results = [None] * n
    errors = []

    def up(i):
        try:
            c = connect(host, port, db, user)
            c.autocommit = True
            conns[i] = c
        except psycopg2.Error as e:
            errors.append("connection %d: %s" % (i, str(e).strip()))

    threads = [threading.Thread(target=up, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    out({"connected": sum(1 for c in conns if c is not None), "errors": errors[:5]})
    if errors:
        return

    def go(i):
        results[i] = run_one(conns[i], sql % i)
        results[i]["i"] = i

    threads = [threading.Thread(target=go, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    end = time.monotonic() + DEADLINE
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    out({"results": [r if r is not None else {"i": i, "no_answer": True}
                     for i, r in enumerate(results)]})
    for c in conns:
        try:
            c.close()
        except psycopg2.Error:
            pass


def main():
    mode, host, port, db, user = sys.argv[1:6]
    {"session": mode_session, "many": mode_many}[mode](host, int(port), db, user, *sys.argv[6:])


if __name__ == "__main__":
    main()
