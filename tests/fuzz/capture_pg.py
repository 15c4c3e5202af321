#!/usr/bin/env python3
"""Captures real PostgreSQL sessions as seeds for fuzz_pg (tests/fuzz/corpus/pg/captured_*).

A throwaway PostgreSQL 15 cluster (tests/integration/pgcluster.py) and a tap in front of it: a
TCP relay on a loopback port that keeps the bytes of each connection, both ways. Real clients
talk to the cluster through the tap: psql (sslmode=prefer, so its SSLRequest is declined;
simple queries, several statements in one string, COPY both ways, an error, a transaction,
PREPARE/EXECUTE, a DO block, a NOTICE, LISTEN/NOTIFY), pgbench (-M extended and -M prepared)
and psycopg2 (parameters, executemany, a named cursor, a cancelled pg_sleep, whose
CancelRequest is a connection of its own). Each connection becomes two seeds in the driver's
format: mode 0 and what the client sent (the stream from the startup phase on), mode 2 and
what the server sent (from its first message: the one-byte answer to an SSLRequest is not a
message, and is left out).

Run it as root on a machine with the test dependencies (scripts/deps.sh), then look at
`git status tests/fuzz/corpus/pg`: the seeds are rewritten each time (SCRAM nonces, process
ids and keys differ), so commit them only when the sessions changed on purpose.

    python3 tests/fuzz/capture_pg.py
"""

import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import capture  # noqa: E402
import lib  # noqa: E402
import pgcluster  # noqa: E402

ADDR = "127.0.0.7"
PW = "capture pw"
CORPUS = os.path.join(HERE, "corpus", "pg")
SSL_REQUEST = bytes.fromhex("0000000804d2162f")
MAX_SEED = 256 * 1024       # a seed longer than this is cut (the driver frames what it gets)


class Tap(capture.Listener):
    """A relay to the cluster that keeps each connection's bytes: take() gives [fe, be] each."""

    def __init__(self, upstream):
        self.upstream = upstream
        super().__init__()

    def connection(self, a):
        u = socket.create_connection(self.upstream)
        rec = [bytearray(), bytearray()]
        return rec, [(self.pump, (a, u, rec[0])), (self.pump, (u, a, rec[1]))]

    @staticmethod
    def pump(src, dst, buf):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                buf += b
                dst.sendall(b)
        except OSError:
            pass
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


PSQL_SCRIPT = r"""
SELECT 1;
SELECT 'a' AS x, 2 AS y; SELECT now() IS NOT NULL;
CREATE TABLE t (id int PRIMARY KEY, v text, n numeric);
INSERT INTO t VALUES (1, 'one', 1.5), (2, 'two', NULL), (3, E'tab\there', -7);
UPDATE t SET v = 'uno' WHERE id = 1;
COPY t FROM STDIN;
4	four	4
5	\N	5.25
\.
COPY t TO STDOUT;
COPY (SELECT id, v FROM t ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER);
SELECT 1/0;
BEGIN;
DELETE FROM t;
ROLLBACK;
PREPARE p(int) AS SELECT v FROM t WHERE id = $1;
EXECUTE p(2);
DEALLOCATE p;
DO $$ BEGIN RAISE NOTICE 'notice from %', 'DO'; END $$;
LISTEN ch;
NOTIFY ch, 'payload';
WITH moved AS (DELETE FROM t WHERE id = 5 RETURNING *) INSERT INTO t SELECT id + 10, v, n FROM moved;
SELECT id, v, n FROM t ORDER BY id;
SET application_name = 'capture';
SHOW server_version_num;
DROP TABLE t;
"""

PSYCOPG_SCRIPT = r"""
import sys, threading, time
import psycopg2
dsn = sys.argv[1]
c = psycopg2.connect(dsn)
cur = c.cursor()
cur.execute("CREATE TABLE p (id int, name text, at timestamptz)")
cur.execute("INSERT INTO p VALUES (%s, %s, now())", (1, "o'brien"))
cur.executemany("INSERT INTO p VALUES (%s, %s, NULL)", [(i, "n%d" % i) for i in range(2, 6)])
cur.execute("SELECT id, name FROM p WHERE id > %s ORDER BY id", (2,))
cur.fetchall()
c.commit()
named = c.cursor(name="walk")
named.itersize = 2
named.execute("SELECT id FROM p ORDER BY id")
for _ in named:
    pass
named.close()
c.commit()
def cancel():
    time.sleep(0.5)
    c.cancel()
threading.Thread(target=cancel).start()
try:
    cur.execute("SELECT pg_sleep(10)")
except psycopg2.Error:
    c.rollback()
cur.execute("DROP TABLE p")
c.commit()
c.close()
"""


def main():
    if os.geteuid() != 0:
        sys.exit("capture_pg.py: run as root (the cluster runs as the postgres user)")
    missing = pgcluster.missing_tools()
    if missing:
        sys.exit("capture_pg.py: missing %s (scripts/deps.sh installs them)" % ", ".join(missing))
    lib.install_exit_handlers()
    home = lib.make_tempdir()
    pg = pgcluster.Cluster(ADDR).start(setup_sql="CREATE ROLE app LOGIN PASSWORD '%s';\n"
                                                 "CREATE DATABASE capture OWNER app;\n" % PW)
    env = pgcluster.client_env(home, PW)
    direct = "host=%s port=%d dbname=capture user=app sslmode=disable" % (ADDR, pg.port)
    pgcluster.must(pgcluster.run(["/usr/bin/pgbench", "-i", "-q", "-s", "1", direct], env=env),
                   "pgbench -i")
    tap = Tap((ADDR, pg.port))
    via = "host=127.0.0.1 port=%d dbname=capture user=app" % tap.port
    sessions = []

    def client(label, argv, stdin=None):
        r = pgcluster.run(argv, env=env, input=stdin, timeout=120)
        if r.returncode != 0 and label != "psql":
            sys.exit("capture_pg.py: %s exited %d: %s" % (label, r.returncode, r.stderr[-400:]))
        got = tap.take()
        if not got:
            sys.exit("capture_pg.py: %s made no connection through the tap" % label)
        for i, c in enumerate(got):
            sessions.append(("%s%s" % (label, "_%d" % i if len(got) > 1 else ""), c))

    client("psql", ["/usr/bin/psql", "-X", "-q", "-d", via + " sslmode=prefer"], PSQL_SCRIPT)
    client("pgbench_extended", ["/usr/bin/pgbench", "-n", "-S", "-M", "extended", "-t", "20",
                                via + " sslmode=disable"])
    client("pgbench_prepared", ["/usr/bin/pgbench", "-n", "-M", "prepared", "-t", "5",
                                via + " sslmode=disable"])
    client("psycopg2", ["/usr/bin/python3", "-c", PSYCOPG_SCRIPT, via + " sslmode=disable"])

    old = [f for f in os.listdir(CORPUS) if f.startswith("captured_")]
    for f in old:
        os.unlink(os.path.join(CORPUS, f))
    for label, (fe, be) in sessions:
        fe, be = bytes(fe), bytes(be)
        if fe.startswith(SSL_REQUEST) and be[:1] in (b"N", b"S"):
            be = be[1:]
        for suffix, mode, data in (("fe", 0, fe), ("be", 2, be)):
            if not data:
                continue
            path = os.path.join(CORPUS, "captured_%s_%s" % (label, suffix))
            with open(path, "wb") as f:
                f.write(bytes([mode]) + data[:MAX_SEED])
            print("%s: %d bytes" % (os.path.relpath(path), min(len(data), MAX_SEED) + 1))
    lib.run_cleanup()


if __name__ == "__main__":
    main()
