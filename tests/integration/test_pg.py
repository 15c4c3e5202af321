"""PostgreSQL integration test: real psql, pgbench and psycopg2 in the pinned test cgroup, through airlockd, against a real PostgreSQL 15.

Run as root with /usr/bin/python3. Prints `ok - pg: NAME` / `not ok - pg: NAME: why` per case
and exits 1 if any failed. It starts a throwaway cluster (initdb as the OS user postgres, in a
temp dir, listening on 127.0.0.5 only, scram-sha-256, TLS with a test CA made here), an
airlockd with a `protocol postgres` resource for that address, and drives clients inside the
test cgroup. Everything (cluster, daemon, cgroup, pins, temp dirs) is removed on any exit.
"""

import hashlib
import importlib.util
import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import pgcluster  # noqa: E402
from lib import check, note, wait_for  # noqa: E402
from pgcluster import as_postgres, must, run, tail  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PG_AGENT = os.path.join(HERE, "pg_agent.py")
JDBC_AGENT = os.path.join(HERE, "PgJdbcAgent.java")
JDBC_JAR = "/usr/share/java/postgresql.jar"     # Debian's libpostgresql-jdbc-java
JAVA = "/usr/bin/java"
PGBIN = "/usr/lib/postgresql/15/bin"
PSQL = "/usr/bin/psql"
PGBENCH = "/usr/bin/pgbench"
OPENSSL = "/usr/bin/openssl"
PG_ADDR = "127.0.0.5"
HANG_ADDR = "127.0.0.7"         # a listener that accepts and never says a word (case_login_timeout)
DB = "airtest"
APP_PW = "s3cret pw"            # the real password of role app; only the secrets file has it
MD5_PW = "md5 s3cret"           # role appmd5, stored as md5
CLEAR_PW = "clear s3cret"       # role appclear: pg_hba method password (cleartext over TLS)
CERT_USER = "appcert"           # a role that logs in with a client certificate only (cert auth)
TLS_NAME = "db.airlock-test.internal"
MAX_MESSAGE = 1 << 20           # pg_max_message 1m in the config
DENY_RE = re.compile(r"ERROR:\s+(?:42501:\s+)?(airlock: denied by rule[^\n]*?\(request (\d+)\)[^\n]*)")


class T:
    """State shared by the cases, which run in order."""
    tmp = pgdir = cg = al = None
    port = 0
    ca_dir = ca_crt = None
    home = None
    pg_up = False
    up = False
    ca_sha = None
    leaks = []
    # The main phase's upstream_tls (verify-full; disable or require to look at the rest
    # when upstream TLS is what is broken). The restart cases cover the others anyway.
    up_tls = os.environ.get("AIRLOCK_TEST_PG_UPSTREAM_TLS", "verify-full")


# ---------------------------------------------------------------- the PostgreSQL server

def start_postgres():
    pw = pwd.getpwnam("postgres")
    d = tempfile.mkdtemp(prefix="airlock-test-%s-pg." % lib.RUN_ID)
    lib.on_cleanup(shutil.rmtree, d, True)
    T.pgdir = d
    os.chmod(d, 0o755)
    pgcluster.make_certs(d, PG_ADDR)
    make_client_cert(d, CERT_USER)
    sock = os.path.join(d, "sock")
    data = os.path.join(d, "data")
    os.mkdir(sock, 0o700)
    for p in (sock, os.path.join(d, "server.key"), os.path.join(d, "server.crt")):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    os.chmod(os.path.join(d, "server.key"), 0o600)
    os.chown(d, pw.pw_uid, pw.pw_gid)
    must(as_postgres([PGBIN + "/initdb", "-D", data, "-U", "postgres", "-E", "UTF8",
                      "--no-locale", "--no-sync", "--auth-local=trust",
                      "--auth-host=scram-sha-256"]), "initdb")
    T.port = lib.free_port((PG_ADDR,))
    with open(os.path.join(data, "postgresql.conf"), "a") as f:
        f.write("""
# airlock test_pg
listen_addresses = '%s'
port = %d
unix_socket_directories = '%s'
unix_socket_permissions = 0700
ssl = on
ssl_cert_file = '%s/server.crt'
ssl_key_file = '%s/server.key'
ssl_ca_file = '%s/testca.pem'
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 60
shared_buffers = 32MB
log_connections = on
log_line_prefix = '%%m [%%p] %%u@%%d %%r '
""" % (PG_ADDR, T.port, sock, d, d, d))
    with open(os.path.join(data, "pg_hba.conf"), "w") as f:
        f.write("# airlock test_pg: the private socket dir is mode 0700, owned by postgres\n"
                "local all all trust\n"
                "hostssl all %s 127.0.0.1/32 cert\n"
                "hostssl all %s 127.0.0.5/32 cert\n"
                "hostssl all appclear 127.0.0.1/32 password\n"
                "hostssl all appclear 127.0.0.5/32 password\n"
                "host all appmd5 127.0.0.1/32 md5\n"
                "host all appmd5 127.0.0.5/32 md5\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
                "host all all 127.0.0.5/32 scram-sha-256\n" % (CERT_USER, CERT_USER))
    T.pglog = os.path.join(d, "postgres.log")
    r = as_postgres([PGBIN + "/pg_ctl", "-D", data, "-l", T.pglog, "-w", "-t", "30", "start"])
    lib.on_cleanup(stop_postgres, data)
    T.pg_up = True
    must(r, "pg_ctl start (log: %s)" % tail(T.pglog))
    with open(os.path.join(data, "postmaster.pid")) as f:
        T.postmaster = int(f.readline())
    T.sock = sock
    setup_sql = """
SET password_encryption = 'scram-sha-256';
CREATE ROLE app LOGIN PASSWORD '%s';
SET password_encryption = 'md5';
CREATE ROLE appmd5 LOGIN PASSWORD '%s';
CREATE ROLE %s LOGIN;
CREATE ROLE appclear LOGIN PASSWORD '%s';
CREATE DATABASE %s OWNER app;
\\c %s
SET SESSION AUTHORIZATION app;
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, qty int NOT NULL DEFAULT 0);
INSERT INTO items(name, qty) VALUES ('widget', 5), ('gadget', 3), ('gizmo', 9);
CREATE TABLE secrets (id int PRIMARY KEY, v text);
INSERT INTO secrets VALUES (1, 'the-launch-code');
GRANT ALL ON ALL TABLES IN SCHEMA public TO appmd5;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO appmd5;
GRANT SELECT ON items TO %s;
""" % (APP_PW, MD5_PW, CERT_USER, CLEAR_PW, DB, DB, CERT_USER)
    must(run([PSQL, "-X", "-q", "-h", sock, "-p", str(T.port), "-U", "postgres", "-d", "postgres",
              "-v", "ON_ERROR_STOP=1"], input=setup_sql), "psql setup")
    # pgbench's tables, made directly (outside the cgroup) with the real password.
    must(run([PGBENCH, "-i", "-q", "-s", "1", direct_conninfo()],
             env=client_env(APP_PW), timeout=120), "pgbench -i")


def make_client_cert(d, user):
    """client.crt/client.key in d: a client certificate for role `user` (its CN), signed by the
    test CA the server trusts for cert authentication (ssl_ca_file)."""
    key, csr, crt, ext = (os.path.join(d, "client." + x) for x in ("key", "csr", "crt", "ext"))
    must(run([OPENSSL, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", key, "-out", csr, "-subj", "/CN=%s" % user]), "openssl req (client)")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    must(run([OPENSSL, "x509", "-req", "-in", csr, "-CA", os.path.join(d, "testca.pem"),
              "-CAkey", os.path.join(d, "testca.key"), "-CAcreateserial", "-out", crt,
              "-days", "2", "-extfile", ext]), "openssl x509 (client)")
    os.chmod(key, 0o600)


def stop_postgres(data):
    if not T.pg_up:
        return
    r = as_postgres([PGBIN + "/pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "20", "stop"])
    if r.returncode != 0:
        note("pg_ctl stop failed (%s); killing postmaster %d" % (r.stderr.strip(), T.postmaster))
        try:
            os.kill(T.postmaster, signal.SIGQUIT)
        except ProcessLookupError:
            pass
    T.pg_up = False


def sql_direct(sql):
    """Runs sql as the superuser over the private socket (outside the cgroup); -At output."""
    r = run([PSQL, "-X", "-At", "-h", T.sock, "-p", str(T.port), "-U", "postgres", "-d", DB,
             "-v", "ON_ERROR_STOP=1", "-c", sql], timeout=30)
    must(r, "direct psql %r" % sql)
    return r.stdout.strip()


# ---------------------------------------------------------------- clients

def client_env(password=None):
    """No PG* settings from outside, no ~/.pgpass or ~/.psqlrc: HOME is a test dir."""
    env = {k: v for k, v in lib.CLIENT_ENV.items() if not k.startswith("PG")}
    env["HOME"] = T.home
    env["PGPASSFILE"] = os.path.join(T.home, "no-pgpass")
    env["PGSSLCERT"] = os.path.join(T.home, "no-client.crt")
    env["PGSSLKEY"] = os.path.join(T.home, "no-client.key")
    env["PGCONNECT_TIMEOUT"] = "10"
    if password is not None:
        env["PGPASSWORD"] = password
    return env


def conninfo(sslmode="verify-full", rootcert=None, host=PG_ADDR, extra=""):
    ci = "host=%s port=%d dbname=%s user=app sslmode=%s connect_timeout=10" % (
        host, T.port, DB, sslmode)
    if sslmode in ("verify-full", "verify-ca"):
        ci += " sslrootcert=%s" % (rootcert or T.ca_crt)
    return ci + (" " + extra if extra else "")


def direct_conninfo():
    return conninfo("verify-full", os.path.join(T.pgdir, "testca.pem"))


def psql(sql=None, stdin=None, password="wrong-password", sslmode="verify-full", ci=None,
         verbose=False, inside=True, timeout=30):
    """psql -X -w -At in the cgroup (or outside); returns CompletedProcess."""
    argv = [PSQL, "-X", "-w", "-At", "-d", ci or conninfo(sslmode)]
    if verbose:
        argv += ["-v", "VERBOSITY=verbose"]
    if isinstance(sql, (list, tuple)):
        for s in sql:
            argv += ["-c", s]
    elif sql is not None:
        argv += ["-c", sql]
    env = client_env(password)
    if inside:
        return T.cg.run(argv, timeout=timeout, env=env, input=stdin)
    return run(argv, timeout=timeout, env=env, input=stdin)


def psql_ok(*a, **kw):
    r = psql(*a, **kw)
    check(r.returncode == 0, "psql exited %d: %s" % (r.returncode, r.stderr.strip()[-500:]))
    check("ERROR" not in r.stderr, "psql printed an error: %s" % r.stderr.strip()[-500:])
    return r


def pg_agent(*args, timeout=40):
    env = client_env()
    env["AIRLOCK_TEST_REAL_PASSWORD"] = APP_PW
    r = T.cg.run([lib.PY, PG_AGENT, args[0], PG_ADDR, str(T.port), DB, "app"] +
                 [str(a) for a in args[1:]], timeout=timeout, env=env)
    check(r.returncode == 0, "pg_agent %s exited %d: %s" % (args[0], r.returncode,
                                                             r.stderr.strip()[-800:]))
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if "leaked" in res:
        T.leaks.append((args[0], res["leaked"]))
    return res


# ---------------------------------------------------------------- audit rows

# Audit rows reach the store in batches (group commit), so a mark is a time, not a row id:
# rows of statements and connections that began after it.

def smark():
    return int(time.time() * 1e6)


cmark = smark


def has_outcome(r):
    return r["decision"] == "deny" or r["tag"] is not None or r["sqlstate"] is not None \
        or r["error"] is not None


def stmts(mark, n=None, timeout=5.0, until=None):
    """Statement rows that began after mark, in id order; waits until there are n of them,
    until(rows) holds (the rows the caller then checks are all there) and each has its outcome
    (a tag, an error, or a denial). After timeout, the rows as they are: the caller's checks
    then say what is missing."""
    def get():
        rows = T.al.db_rows("at_us >= ?", (mark,), table="statements")
        if n is not None and len(rows) < n:
            return None
        if until is not None and not until(rows):
            return None
        return rows if all(has_outcome(r) for r in rows) else None
    rows = wait_for(get, timeout, 0.1)
    if rows is None:
        rows = T.al.db_rows("at_us >= ?", (mark,), table="statements")
        if n is not None and len(rows) < n:
            raise AssertionError("%d statement rows, want %d: %s" % (len(rows), n, brief(rows)))
    return rows


def brief(rows):
    return [(r["id"], r["protocol"], r["kind"], r["decision"], r["tag"], r["text"][:60])
            for r in rows]


def pg_conns(mark, timeout=5.0, closed=True):
    """Connection rows (id > mark) of resource pg, once closed."""
    def get():
        rows = [r for r in T.al.db_rows("opened_us >= ?", (mark,)) if r["resource"] == "pg"]
        if not rows or (closed and any(r["closed_us"] is None for r in rows)):
            return None
        return rows
    rows = wait_for(get, timeout, 0.1)
    check(rows, "no closed connection rows of resource pg since the case began: %s"
          % [(r["id"], r["resource"], r["closed_us"])
             for r in T.al.db_rows("opened_us >= ?", (mark,))])
    return rows


def eq(row, field, want):
    check(row.get(field) == want, "statement row %s (%r): %s is %r, want %r"
          % (row.get("id"), (row.get("text") or "")[:50], field, row.get(field), want))


def check_allowed(row, kind, tag=None, protocol="simple", relations=None, rows=None):
    eq(row, "decision", "allow")
    eq(row, "rule", None)
    eq(row, "kind", kind)
    eq(row, "protocol", protocol)
    if tag is not None:
        eq(row, "tag", tag)
    if relations is not None:
        check(json.loads(row["relations"] or "[]") == relations,
              "statement row %s: relations %r, want %r" % (row["id"], row["relations"], relations))
    if rows is not None:
        eq(row, "rows", rows)
    check(row.get("fingerprint") and re.fullmatch(r"[0-9a-f]{16}", row["fingerprint"]),
          "statement row %s: fingerprint %r" % (row["id"], row.get("fingerprint")))
    check(row.get("duration_us") is not None and row["duration_us"] >= 0,
          "statement row %s: duration_us %r" % (row["id"], row.get("duration_us")))
    now = time.time() * 1e6
    check(row.get("at_us") and abs(now - row["at_us"]) < 300e6,
          "statement row %s: at_us %r is not now" % (row["id"], row.get("at_us")))


def check_denied_output(r, rule_part):
    """psql shows the denial as ERROR 42501 naming the rule and the request; returns the row."""
    m = DENY_RE.search(r.stderr)
    check(m, "psql stderr has no 'ERROR:  airlock: denied by rule ... (request N)': %r"
          % r.stderr.strip()[-400:])
    req = int(m.group(2))
    rows = wait_for(lambda: T.al.db_rows("id = ?", (req,), table="statements"), 5, 0.05)
    check(rows, "request %d named in the error has no statements row" % req)
    row = rows[0]
    eq(row, "decision", "deny")
    check(row["rule"] and rule_part in row["rule"], "statement row %d: rule %r, want it to name %r"
          % (req, row["rule"], rule_part))
    check(row["tag"] is None, "denied statement row %d has a tag %r: it ran?" % (req, row["tag"]))
    return row, m.group(1)


def need_up():
    check(T.up and T.al.running(), "airlockd is not running (log: %s)" % T.al.log_tail(5))


def items_state():
    return sql_direct("SELECT count(*), sum(qty) FROM items")


# ---------------------------------------------------------------- airlockd config

def up_ssl():
    """What pg_stat_ssl.ssl shows for Airlock's upstream connection in the main phase."""
    return "f" if T.up_tls == "disable" else "t"


def pg_resource(upstream_tls=None, upstream_ca="testca", credential="pgcred", tls_name=None, extra=()):
    upstream_tls = upstream_tls or T.up_tls
    if upstream_tls != "verify-full":
        upstream_ca = None
    lines = ['resource "pg" {',
             "    address %s" % PG_ADDR,
             "    port %d" % T.port,
             "    protocol postgres",
             "    upstream_tls %s" % upstream_tls]
    if upstream_ca:
        lines.append('    upstream_ca "%s"' % os.path.join(T.pgdir, upstream_ca + ".pem"))
    if tls_name:
        lines.append('    tls_name "%s"' % tls_name)
    lines += ["    %s" % x for x in extra]
    lines += ['    credential "%s"' % credential,
              "    rule deny kind ddl",
              "    rule deny relation secrets",
              "    rule deny unbounded_write",
              "}"]
    return "\n".join(lines)


def settings():
    return ['secrets "%s"' % T.secrets, 'ca_dir "%s"' % T.ca_dir,
            "pg_max_message %dk" % (MAX_MESSAGE >> 10)]


def restart_with(resource):
    need_up()
    T.al.stop()
    T.up = False
    T.al.write_conf([resource], settings())
    T.al.start()
    T.up = True


# ---------------------------------------------------------------- cases

def loose_secrets_conf():
    """A copy of the config whose secrets file is mode 0644 (and otherwise the same)."""
    loose = os.path.join(T.tmp, "secrets-loose.conf")
    shutil.copy(T.secrets, loose)
    os.chmod(loose, 0o644)
    conf = os.path.join(T.tmp, "airlock-loose.conf")
    with open(T.al.conf) as f:
        text = f.read().replace('secrets "%s"' % T.secrets, 'secrets "%s"' % loose)
    with open(conf, "w") as f:
        f.write(text)
    return conf, loose


def case_check_config():
    r = run([lib.AIRLOCKD, "-n", "-c", T.al.conf], timeout=20)
    check(r.returncode == 0, "airlockd -n exited %d: %s" % (r.returncode, r.stderr.strip()))


def case_loose_secrets_refused():
    # Runs before the real start: if this daemon came up after all, it is stopped here and
    # the real one re-adopts the pins.
    conf, loose = loose_secrets_conf()
    p = subprocess.Popen([lib.AIRLOCKD, "-c", conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    lib.on_cleanup(lib.stop_process, p)
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        lib.stop_process(p)
        raise AssertionError("airlockd started with a secrets file of mode 0644")
    check(p.returncode != 0, "airlockd exited 0 with a 0644 secrets file")
    check(loose in err, "the refusal does not name the secrets file: %r" % err.strip())


def case_check_secrets():
    conf, loose = loose_secrets_conf()
    r = run([lib.AIRLOCKD, "-n", "-c", conf], timeout=20)
    check(r.returncode != 0, "airlockd -n accepts a secrets file of mode 0644 that airlockd "
          "itself refuses to start with")
    check(loose in r.stderr, "airlockd -n: %r" % r.stderr.strip())


def case_start():
    T.al.start()
    T.up = True
    r = T.al.ctl("pin", T.cg.rel)
    check(r.returncode == 0, "airlockctl pin exited %d: %s" % (r.returncode, r.stderr.strip()))
    for f in ("ca.crt", "ca.key"):
        check(os.path.isfile(os.path.join(T.ca_dir, f)), "%s/%s was not created" % (T.ca_dir, f))
    st = os.stat(os.path.join(T.ca_dir, "ca.key"))
    check(st.st_uid == 0 and st.st_mode & 0o077 == 0, "ca.key is uid %d mode %o"
          % (st.st_uid, st.st_mode & 0o777))
    r = must(run([OPENSSL, "x509", "-in", T.ca_crt, "-noout", "-text"]), "openssl x509 ca.crt")
    check("CA:TRUE" in r.stdout, "ca.crt is not a CA certificate")
    with open(T.ca_crt, "rb") as f:
        T.ca_sha = hashlib.sha256(f.read()).hexdigest()


def case_direct_wrong_password():
    r = psql("SELECT 1", password="wrong-password", ci=direct_conninfo(), inside=False)
    check(r.returncode == 2, "direct psql with a wrong password exited %d (want 2): %s"
          % (r.returncode, r.stderr.strip()))
    check('password authentication failed for user "app"' in r.stderr,
          "direct psql stderr: %r" % r.stderr.strip())
    r = psql("SELECT current_user", password=None, ci=direct_conninfo(), inside=False)
    check(r.returncode == 2, "direct psql with no password exited %d: %s"
          % (r.returncode, r.stderr.strip()))
    r = psql("SELECT current_user", password=APP_PW, ci=direct_conninfo(), inside=False)
    check(r.returncode == 0 and r.stdout.strip() == "app",
          "direct psql with the real password: exit %d, %r %r" % (r.returncode, r.stdout, r.stderr))


def case_verify_full_wrong_password():
    need_up()
    cm, sm = cmark(), smark()
    r = psql_ok(["\\conninfo",
                 "SELECT current_user, inet_server_addr(), inet_server_port(), "
                 "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())"])
    lines = r.stdout.strip().splitlines()
    check(any("SSL connection" in l for l in lines), "\\conninfo shows no SSL: %r" % lines)
    want = "app|%s|%d|%s" % (PG_ADDR, T.port, up_ssl())
    check(lines[-1] == want, "through Airlock: %r, want %r (user app, the real server, upstream "
          "TLS %s)" % (lines[-1], want, T.up_tls))
    conns = pg_conns(cm)
    check(len(conns) == 1, "%d pg connection rows for one psql" % len(conns))
    c = conns[0]
    for k, v in (("cgroup_id", T.cg.id), ("comm", "psql"), ("dst_addr", PG_ADDR),
                 ("dst_port", T.port), ("reason", "closed")):
        check(c.get(k) == v, "connection row %d: %s is %r, want %r" % (c["id"], k, c.get(k), v))
    rows = stmts(sm, 1)
    check(len(rows) == 1, "%d statement rows for one query: %s" % (len(rows), brief(rows)))
    check_allowed(rows[0], "read", "SELECT 1", rows=1)
    eq(rows[0], "conn_id", c["id"])
    check("pg_stat_ssl" in rows[0]["text"], "statement text %r" % rows[0]["text"])


def case_no_password_require():
    need_up()
    r = psql_ok("SELECT current_user, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
                password=None, sslmode="require")
    check(r.stdout.strip() == "app|" + up_ssl(), "no password, sslmode=require: %r"
          % r.stdout.strip())


def case_sslmode_disable():
    need_up()
    r = psql_ok(["\\conninfo", "SELECT current_user, (SELECT ssl FROM pg_stat_ssl "
                 "WHERE pid = pg_backend_pid())"], sslmode="disable")
    lines = r.stdout.strip().splitlines()
    check(not any("SSL connection" in l for l in lines), "sslmode=disable but \\conninfo: %r" % lines)
    check(lines[-1] == "app|" + up_ssl(), "sslmode=disable: %r (the upstream side is as "
          "configured: %s)" % (lines[-1], T.up_tls))


def case_server_ca_rejected():
    need_up()
    r = psql("SELECT 1", ci=conninfo("verify-full", os.path.join(T.pgdir, "testca.pem")))
    check(r.returncode == 2, "verify-full with the server's CA through Airlock exited %d (want 2: "
          "the agent must see Airlock's leaf, not the server's): %r" % (r.returncode, r.stdout))
    check("certificate verify failed" in r.stderr, "stderr: %r" % r.stderr.strip())


def case_gssenc():
    need_up()
    res = pg_agent("gssenc")
    check(res["gss_answer"] == "N", "GSSENCRequest answered %r, want N" % res["gss_answer"])
    check(res.get("rows") == [["1"]], "SELECT 1 after the declined GSSENC: %r" % res.get("rows"))
    check(set(res["auth_codes"]) <= {0, 3, 5},
          "Airlock asked the agent for authentication %r (SASL would need the real password)"
          % res["auth_codes"])


def case_function_call_refused():
    """The function-call protocol (a FunctionCall message runs a function by OID, with no SQL to
    check) is refused with 42501, the session goes on, and the refusal is audited."""
    need_up()
    sm = smark()
    res = pg_agent("funccall")
    call = res["call"]
    check([m["type"] for m in call] == ["E", "Z"] and call[0]["sqlstate"] == "42501"
          and "function-call protocol is not allowed" in (call[0]["message"] or "")
          and call[1]["status"] == "I", "FunctionCall answered %r" % call)
    check(res["after"] == [["1"]], "SELECT 1 after the refused call: %r" % res["after"])
    rows = [r for r in stmts(sm, 3) if r["protocol"] == "function-call"]
    check(len(rows) == 1 and rows[0]["decision"] == "deny" and rows[0]["rule"] == "function-call protocol",
          "audit rows of the call: %r" % brief(stmts(sm)))


def case_sslmode_prefer():
    need_up()
    r = psql_ok(["\\conninfo", "SELECT current_user"], sslmode="prefer")
    lines = r.stdout.strip().splitlines()
    check(any("SSL connection" in l for l in lines) and lines[-1] == "app",
          "sslmode=prefer: Airlock's TLS should be taken: %r" % lines)


def case_writes():
    need_up()
    before = items_state()
    sm = smark()
    script = ("INSERT INTO items(name, qty) VALUES ('w1', 1), ('w2', 2), ('w3', 3);\n"
              "UPDATE items SET qty = qty + 10 WHERE name LIKE 'w_';\n"
              "DELETE FROM items WHERE name = 'w3';\n"
              "SELECT name, qty FROM items WHERE name LIKE 'w_' ORDER BY name;\n")
    r = psql_ok(stdin=script)
    check(r.stdout.split() == ["INSERT", "0", "3", "UPDATE", "3", "DELETE", "1", "w1|11", "w2|12"],
          "psql output %r" % r.stdout)
    rows = stmts(sm, 4)
    check(len(rows) == 4, "statement rows: %s" % brief(rows))
    want = [("insert", "INSERT 0 3", None), ("update", "UPDATE 3", None),
            ("delete", "DELETE 1", None), ("read", "SELECT 2", 2)]
    for row, (kind, tag, n) in zip(rows, want):
        check_allowed(row, kind, tag, relations=["items"], rows=n)
        eq(row, "unbounded_write", 0)
        eq(row, "conn_id", rows[0]["conn_id"])
    check([r_["seq"] for r_ in rows] == sorted({r_["seq"] for r_ in rows}),
          "seq not increasing: %r" % [r_["seq"] for r_ in rows])
    check(rows[1]["text"].strip().rstrip(";") == "UPDATE items SET qty = qty + 10 WHERE name LIKE 'w_'",
          "statement text %r" % rows[1]["text"])
    after = sql_direct("SELECT string_agg(name || ':' || qty, ',' ORDER BY name) FROM items "
                       "WHERE name LIKE 'w_'")
    check(after == "w1:11,w2:12", "the server has %r" % after)
    check(items_state() != before, "nothing changed on the server")


def case_deny_unbounded():
    need_up()
    before = items_state()
    sm = smark()
    r = psql(stdin="UPDATE items SET qty = 0;\nSELECT 'next works';\n", verbose=True)
    check(r.returncode == 0, "psql script exited %d: %s" % (r.returncode, r.stderr.strip()))
    check("ERROR:  42501: airlock: denied by rule" in r.stderr,
          "psql does not show ERROR 42501 airlock: %r" % r.stderr.strip())
    check(r.stdout.strip() == "next works", "the statement after the denial: %r" % r.stdout)
    row, msg = check_denied_output(r, "unbounded_write")
    eq(row, "kind", "update")
    eq(row, "unbounded_write", 1)
    eq(row, "text", "UPDATE items SET qty = 0")
    rows = stmts(sm, 2)
    check(rows[-1]["decision"] == "allow" and rows[-1]["tag"] == "SELECT 1",
          "row after the denial: %s" % brief(rows[-1:]))
    check(items_state() == before, "the denied UPDATE changed items: %r -> %r"
          % (before, items_state()))
    # The same with -c: psql exits 1 and prints the error.
    r = psql("DELETE FROM items")
    check(r.returncode == 1, "psql -c 'DELETE FROM items' exited %d" % r.returncode)
    row, _ = check_denied_output(r, "unbounded_write")
    eq(row, "kind", "delete")
    check(items_state() == before, "the denied DELETE changed items")


def case_deny_ddl():
    need_up()
    for sql in ("DROP TABLE items", "CREATE TABLE evil (x int)", "ALTER TABLE items ADD COLUMN y int",
                "CREATE EXTENSION IF NOT EXISTS pgcrypto"):
        r = psql(sql)
        check(r.returncode == 1, "psql -c %r exited %d: %s" % (sql, r.returncode, r.stderr.strip()))
        row, _ = check_denied_output(r, "kind ddl")
        eq(row, "kind", "ddl")
    check(sql_direct("SELECT to_regclass('items') IS NOT NULL, to_regclass('evil') IS NULL, "
                     "count(*) FROM information_schema.columns WHERE table_name = 'items' "
                     "AND column_name = 'y'") == "t|t|0", "DDL reached the server")


def case_deny_relation():
    need_up()
    r = psql(stdin="SELECT v FROM secrets;\nSELECT 'after';\n")
    check("the-launch-code" not in r.stdout, "the agent read the secrets table: %r" % r.stdout)
    row, _ = check_denied_output(r, "relation secrets")
    eq(row, "kind", "read")
    check(json.loads(row["relations"]) == ["secrets"], "relations %r" % row["relations"])
    check(r.stdout.strip() == "after", "after the denial: %r" % r.stdout)


def case_deny_relation_qualified():
    need_up()
    for sql in ("SELECT v FROM public.secrets", "SELECT v FROM airtest.public.secrets",
                'SELECT v FROM "secrets"',
                "WITH s AS (SELECT v FROM secrets) SELECT * FROM s",
                "SELECT (SELECT v FROM secrets LIMIT 1)"):
        r = psql(sql)
        check("the-launch-code" not in r.stdout, "%r read the secrets table through Airlock" % sql)
        check(DENY_RE.search(r.stderr), "%r was not denied: exit %d %r" % (sql, r.returncode,
                                                                          r.stderr.strip()))


def case_multi_statement():
    need_up()
    sm = smark()
    r = psql_ok("INSERT INTO items(name, qty) VALUES ('m1', 1); SELECT count(*) FROM items "
                "WHERE name = 'm1'")
    check(r.stdout.strip().splitlines()[-1] == "1", "multi-statement output %r" % r.stdout)
    rows = stmts(sm, 2)
    check(len(rows) == 2, "statement rows: %s" % brief(rows))
    check_allowed(rows[0], "insert", "INSERT 0 1")
    check_allowed(rows[1], "read", "SELECT 1")
    check(rows[0]["conn_id"] == rows[1]["conn_id"] and rows[1]["seq"] > rows[0]["seq"],
          "rows %s" % brief(rows))
    before = items_state()
    sm = smark()
    r = psql("INSERT INTO items(name, qty) VALUES ('m2', 1); DELETE FROM items; "
             "SELECT 'third'")
    check(r.returncode == 1, "multi-statement with a denied part exited %d" % r.returncode)
    check("third" not in r.stdout, "a statement after the denied one ran: %r" % r.stdout)
    row, _ = check_denied_output(r, "unbounded_write")
    eq(row, "kind", "delete")
    rows = stmts(sm, 1)
    ran = [x for x in rows if x["tag"] is not None or x["decision"] == "allow"]
    check(not ran, "parts of the denied string were allowed or ran: %s" % brief(ran))
    check(items_state() == before and sql_direct("SELECT count(*) FROM items WHERE name = 'm2'") == "0",
          "part of the denied string reached the server")


def case_unparseable_refused():
    """SQL Airlock's parser cannot read does not run (fail closed): psql gets Airlock's error with
    the parser's message (42601) and a request id, the statement is audited as unparsed and
    denied, the server never sees it, and the session goes on."""
    need_up()
    sm = smark()
    r = psql(verbose=True, stdin="SELEC qty FROM items;\nSELECT 'after';\n")
    m = re.search(r"ERROR:\s+42601: (airlock: syntax error[^\n]*\(request (\d+)\))", r.stderr)
    check(m and "after" in r.stdout.split(), "psql with unparseable SQL: exit %d %r %r"
          % (r.returncode, r.stdout, r.stderr.strip()[-300:]))
    rows = [x for x in stmts(sm, 2) if x["id"] == int(m.group(2))]
    check(rows and rows[0]["kind"] == "unparsed" and rows[0]["decision"] == "deny"
          and rows[0]["rule"] == "unparseable" and rows[0]["tag"] is None, "the audit row: %s" % brief(rows))
    check("SELEC qty FROM items" not in open(T.pglog).read(), "the unparseable statement reached the server")


def case_error_outcome():
    need_up()
    sm = smark()
    r = psql(stdin="SELECT 1/0;\nSELECT 'ok';\n")
    check("ERROR:  division by zero" in r.stderr, "psql stderr %r" % r.stderr)
    check(r.stdout.strip() == "ok", "after the error: %r" % r.stdout)
    rows = stmts(sm, 2)
    eq(rows[0], "decision", "allow")
    eq(rows[0], "sqlstate", "22012")
    check("division by zero" in (rows[0]["error"] or ""), "error column %r" % rows[0]["error"])
    eq(rows[0], "tag", None)


def case_transaction():
    need_up()
    sm = smark()
    r = psql(stdin="BEGIN;\nINSERT INTO items(name, qty) VALUES ('t1', 1);\nROLLBACK;\n"
                "SELECT count(*) FROM items WHERE name = 't1';\n"
                "BEGIN;\nUPDATE items SET qty = 1;\nSELECT 'in tx';\nROLLBACK;\n")
    check(r.stdout.split()[:6] == ["BEGIN", "INSERT", "0", "1", "ROLLBACK", "0"],
          "psql output %r" % r.stdout)
    check("in tx" in r.stdout and r.stdout.split()[-1] == "ROLLBACK",
          "after a denial inside BEGIN: %r / %r" % (r.stdout, r.stderr))
    rows = stmts(sm, 8)
    kinds = [x["kind"] for x in rows]
    check(kinds == ["transaction", "insert", "transaction", "read", "transaction", "update",
                    "read", "transaction"], "kinds %r" % kinds)
    eq(rows[5], "decision", "deny")


def case_copy():
    need_up()
    src = os.path.join(T.tmp, "copy-in.csv")
    dst = os.path.join(T.tmp, "copy-out.csv")
    with open(src, "w") as f:
        f.write("copy-a,1\ncopy-b,2\ncopy-c,3\n")
    sm = smark()
    r = psql_ok("\\copy items(name, qty) FROM '%s' WITH (FORMAT csv)" % src)
    check(r.stdout.strip() == "COPY 3", "\\copy from: %r" % r.stdout)
    r = psql_ok("\\copy (SELECT name, qty FROM items WHERE name LIKE 'copy-%%' ORDER BY name) "
                "TO '%s' WITH (FORMAT csv)" % dst)
    check(r.stdout.strip() == "COPY 3", "\\copy to: %r" % r.stdout)
    with open(dst) as f:
        got = f.read()
    check(got == "copy-a,1\ncopy-b,2\ncopy-c,3\n", "copied out %r" % got)
    rows = stmts(sm, 2)
    check_allowed(rows[0], "copy", "COPY 3", relations=["items"])
    check("FROM STDIN" in rows[0]["text"].upper(), "COPY text %r" % rows[0]["text"])
    check_allowed(rows[1], "copy", "COPY 3")
    check("TO STDOUT" in rows[1]["text"].upper(), "COPY text %r" % rows[1]["text"])
    check(sql_direct("SELECT count(*) FROM items WHERE name LIKE 'copy-%'") == "3",
          "the server does not have the copied rows")
    # COPY into the denied relation: refused, nothing copied.
    r = psql("\\copy secrets FROM '%s' WITH (FORMAT csv)" % src)
    check_denied_output(r, "relation secrets")
    check(sql_direct("SELECT count(*) FROM secrets") == "1", "COPY into secrets reached the server")


def case_psycopg2():
    need_up()
    sm = smark()
    res = pg_agent("psycopg2", T.ca_crt)
    check(res["ssl_in_use"], "psycopg2 connection is not TLS")
    check(res["params_row"] == [42, "it's", True], "parameters: %r" % res["params_row"])
    check(res["insert_row"] == [7], "INSERT ... RETURNING: %r" % res["insert_row"])
    check(res["who"] == ["app", up_ssl() == "t"], "current_user/ssl: %r" % res["who"])
    d = res["denied"]
    check(isinstance(d, dict) and d["pgcode"] == "42501" and "airlock: denied by rule" in d["message"],
          "DELETE without WHERE: %r" % d)
    check(res["after"] == [1], "after the denial: %r" % res["after"])
    rows = stmts(sm, 8)
    texts = [x["text"] for x in rows]
    check(any("'it''s'" in t_ and "41" in t_ for t_ in texts),
          "psycopg2 sends parameters inline; no statement row has them: %r" % texts)
    check([x["kind"] for x in rows if x["kind"] == "transaction"],
          "no BEGIN/COMMIT rows: %s" % brief(rows))
    ins = [x for x in rows if x["kind"] == "insert"]
    check(len(ins) == 1 and ins[0]["tag"] == "INSERT 0 1" and ins[0]["rows"] in (None, 1),
          "insert rows: %s" % brief(ins))


def case_jdbc():
    """PostgreSQL's JDBC driver (not libpq: the extended protocol for everything, named server-side
    statements from the first run with prepareThreshold=1, batches of Bind/Execute before one
    Sync) with a wrong password: a prepared SELECT with parameters, INSERT ... RETURNING in a
    committed transaction, a batch, a denied statement (SQLState 42501) and the connection
    after it. The statement rows carry the bound parameters, binary ones too."""
    need_up()
    want_rows = []
    for q in (9, 4, 0):
        out = sql_direct("SELECT name || ':' || qty FROM items WHERE qty >= %d AND name LIKE 'g%%' "
                         "ORDER BY id" % q)
        want_rows += out.splitlines() if out else []
    sm = smark()
    url = ("jdbc:postgresql://%s:%d/%s?user=app&password=wrong-password&sslmode=verify-full"
           "&sslrootcert=%s&prepareThreshold=1&connectTimeout=10" % (PG_ADDR, T.port, DB, T.ca_crt))
    r = T.cg.run([JAVA, "-XX:TieredStopAtLevel=1", "-cp", JDBC_JAR, JDBC_AGENT, url],
                 timeout=90, env=client_env())
    check(r.returncode == 0, "the JDBC agent exited %d: %s" % (r.returncode, (r.stderr or r.stdout).strip()[-800:]))
    res = json.loads(r.stdout.strip().splitlines()[-1])
    check(res["rows"] == want_rows, "prepared SELECT rows %r, want %r" % (res["rows"], want_rows))
    check(len(res["inserted"]) == 2 and sql_direct(
        "SELECT string_agg(name || ':' || qty, ',' ORDER BY id) FROM items WHERE id IN (%s)"
        % ",".join(map(str, res["inserted"]))) == "jdbc-1:102,jdbc-2:103",
        "inserted %r (the batch adds 1 to each)" % res["inserted"])
    check(res["batch"] == [1, 1, 0], "batch update counts %r" % res["batch"])
    check(res["denied_state"] == "42501" and "airlock: denied by rule" in res["denied_msg"]
          and "relation secrets" in res["denied_msg"], "denied: %s %r" % (res["denied_state"], res["denied_msg"]))
    check(res["after"] == 1, "SELECT 1 after the denial: %r" % res["after"])
    def sels(rows):
        return [x for x in rows if x["text"].startswith("SELECT name, qty FROM items")]

    def upds(rows):
        return [x for x in rows if x["kind"] == "update"]
    # Group commit: wait for the rows checked below (the batch's UPDATEs come after the first 8).
    rows = stmts(sm, 8, until=lambda r: len(sels(r)) >= 3 and len(upds(r)) >= 3)
    sel = sels(rows)
    check(len(sel) == 3 and all(x["protocol"] == "extended" and x["rows"] is not None for x in sel),
          "the prepared SELECT's rows: %s" % brief(sel))
    params = [json.loads(x["params"] or "null") for x in sel]
    # pgjdbc sends the int in binary, declared int4 in its Parse: recorded as its value.
    check(params == [["9", "g%"], ["4", "g%"], ["0", "g%"]], "bound parameters recorded: %r" % params)
    upd = upds(rows)
    check([x["tag"] for x in upd] == ["UPDATE 1", "UPDATE 1", "UPDATE 0"], "batch rows: %s" % brief(upd))
    note("JDBC: %d statement rows; SELECT params %r" % (len(rows), params[0]))
    sql_direct("DELETE FROM items WHERE name LIKE 'jdbc-%'")


CHAOS_BATCHES = int(os.environ.get("AIRLOCK_CHAOS_BATCHES", "400"))


def case_guard():
    """Airlock reads SQL as the server does, always: a startup packet asking for another role,
    standard_conforming_strings off or a client encoding whose characters can hold a quote byte is
    refused (FATAL 42501); and when a function turns standard_conforming_strings off, the session
    ends before the query the agent pipelined behind it runs (the server would have read an UPDATE
    in what Airlock reads as one SELECT)."""
    need_up()
    sql_direct("CREATE OR REPLACE FUNCTION scs_off() RETURNS text LANGUAGE sql AS "
               "$$ SELECT set_config('standard_conforming_strings', 'off', false) $$")
    before = items_state()
    res = pg_agent("guard")
    for k in ("role", "standard_conforming_strings", "client_encoding", "Client_Encoding"):
        got = res["startup " + k]
        check("'C': '42501'" in got and "airlock:" in got, "startup with %s: %r" % (k, got))
    check(res["startup DateStyle"] == "accepted", "startup with DateStyle: %r" % res["startup DateStyle"])
    check([m.get("tag") for m in res["pipelined_alone"] if m["type"] == "C"] == ["SELECT 1"],
          "the smuggling string alone (standard_conforming_strings on): %r" % res["pipelined_alone"])
    errs = [m for m in res["pipelined"] if m["type"] == "E"]
    check(res["eof"] and errs and errs[-1]["severity"] == "FATAL" and errs[-1]["sqlstate"] == "42501" and
          "standard_conforming_strings" in (errs[-1]["message"] or ""),
          "the session after scs_off(): %r" % res["pipelined"])
    check(not any(m.get("tag", "").startswith("UPDATE") for m in res["pipelined"]) and items_state() == before,
          "the pipelined UPDATE ran: %r, items %s (was %s)" % (res["pipelined"], items_state(), before))


def case_chaos():
    """Random extended-protocol batches over a few statement and portal names (re-Parsed,
    re-Bound, Closed, failing at the server, unparseable), with PREPARE/EXECUTE/DEALLOCATE/DISCARD
    ALL strings between: every batch is answered up to ReadyForQuery, the session lives, and the
    unbounded UPDATE a rule denies never runs however it is named, bound or executed."""
    need_up()
    before = items_state()
    seed = int(os.environ.get("AIRLOCK_CHAOS_SEED") or zlib.crc32(lib.RUN_ID.encode()))
    res = pg_agent("chaos", seed, CHAOS_BATCHES, timeout=120)
    check(not res["eof"] and res["batches"] == CHAOS_BATCHES and res["ready"] == CHAOS_BATCHES,
          "seed %d: %r" % (seed, res))
    check(res["updates"] == 0 and res["qty"] == before.split("|")[1] and items_state() == before,
          "seed %d: the denied UPDATE ran: %d UPDATE tags, sum(qty) %s, was %s"
          % (seed, res["updates"], res.get("qty"), before))
    check(res["sqlstates"].get("42501", 0) > 0, "seed %d: nothing was denied: %r" % (seed, res["sqlstates"]))
    note("seed %d: %d batches, SQLSTATEs %r" % (seed, res["batches"], res["sqlstates"]))


def case_extended():
    need_up()
    before = items_state()
    sm = smark()
    res = pg_agent("extended")

    def rows_in(msgs):
        return [m["row"] for m in msgs if m["type"] == "D"]

    def errors_in(msgs):
        return [m for m in msgs if m["type"] == "E"]
    check(rows_in(res["typed"]) == [["42", "t", "4"]] and not errors_in(res["typed"]),
          "typed parameters: %r" % res["typed"])
    check(rows_in(res["named"]) == [["widget"], ["gadget"]], "named statement: %r" % res["named"])
    den = res["denied"]
    errs = errors_in(den)
    check(len(errs) == 1 and errs[0]["sqlstate"] == "42501" and errs[0]["severity"] == "ERROR"
          and errs[0]["message"].startswith("airlock: denied by rule"),
          "denied batch: %r" % den)
    check(den[-1] == {"type": "Z", "status": "I"}, "denied batch ends with %r" % den[-1])
    check(not [m for m in den if m["type"] in ("C", "D", "1", "2")],
          "parts of the denied batch ran: %r" % den)
    check(rows_in(res["after"]) == [["1"]], "after the denied batch: %r" % res["after"])
    check(rows_in(res["named_again"]) == [["gizmo"]], "named statement after: %r"
          % res["named_again"])
    check(items_state() == before and
          sql_direct("SELECT count(*) FROM items WHERE name = 'ext-after-deny'") == "0",
          "the denied batch changed items")
    def typeds(rows):
        return [x for x in rows if x["text"].startswith("SELECT $1::int + 1")]

    def nameds(rows):
        return [x for x in rows if x["text"].startswith("SELECT name FROM")]

    def denieds(rows):
        return [x for x in rows if x["decision"] == "deny"]
    # Group commit: wait for the rows checked below, the last statement (gizmo) included.
    rows = stmts(sm, 6, until=lambda r: typeds(r) and denieds(r) and len(nameds(r)) >= 3)
    ext = [x for x in rows if x["protocol"] == "extended"]
    check(len(ext) == len(rows), "non-extended rows: %s" % brief(rows))
    typed = typeds(rows)
    check(typed and json.loads(typed[0]["params"] or "null") == ["41", None, "<binary 4 bytes>"],
          "typed row params: %r" % [x["params"] for x in typed])
    check_allowed(typed[0], "read", "SELECT 1", protocol="extended", rows=1)
    named = [json.loads(x["params"] or "null") for x in nameds(rows)]
    check(named == [["widget"], ["gadget"], ["gizmo"]], "named statement rows' params: %r" % named)
    denied = denieds(rows)
    check(denied and denied[0]["text"] == "UPDATE items SET qty = 0" and denied[0]["unbounded_write"] == 1,
          "denied rows: %s" % brief(denied))
    m = re.search(r"\(request (\d+)\)", errs[0]["message"])
    check(m and int(m.group(1)) == denied[0]["id"], "the error names %r, the row is %d"
          % (errs[0]["message"], denied[0]["id"]))
    check(not [x for x in rows if "ext-after-deny" in x["text"] and x["tag"]],
          "the statement after the denied one in the batch ran")


def pgbench_in(mode, sslmode, n=50):
    sm = smark()
    argv = [PGBENCH, "-n", "-S", "-M", mode, "-t", str(n), "-c", "1", conninfo(sslmode)]
    r = T.cg.run(argv, timeout=60, env=client_env("wrong-password"))
    check(r.returncode == 0, "pgbench -M %s exited %d: %s" % (mode, r.returncode,
                                                              (r.stderr + r.stdout).strip()[-500:]))
    check("number of transactions actually processed: %d/%d" % (n, n) in r.stdout,
          "pgbench output: %r" % r.stdout[-600:])
    check(re.search(r"number of failed transactions: 0\b", r.stdout) or "failed" not in r.stdout,
          "pgbench failures: %r" % r.stdout[-400:])
    def selects(rows):
        return [x for x in rows if x["text"].startswith("SELECT abalance FROM pgbench_accounts")]
    # Audit rows are group-committed within milliseconds: wait for all n, not just n rows.
    rows = wait_for(lambda: (lambda r: r if len(selects(r)) >= n and all(has_outcome(x) for x in r)
                             else None)(stmts(sm)), 5, 0.1) or stmts(sm)
    sel = selects(rows)
    check(len(sel) >= n, "%d pgbench_accounts statement rows for %d transactions: %s"
          % (len(sel), n, brief(rows[:5])))
    proto = "simple" if mode == "simple" else "extended"
    for x in sel[:n]:
        check_allowed(x, "read", "SELECT 1", protocol=proto, relations=["pgbench_accounts"], rows=1)
        params = json.loads(x["params"] or "null")
        if mode == "simple":
            check(params in (None, []), "simple protocol row %d has params %r" % (x["id"], params))
        else:
            check(isinstance(params, list) and len(params) == 1 and params[0].isdigit(),
                  "-M %s row %d: params %r, want [\"<aid>\"]" % (mode, x["id"], x["params"]))
    fps = {x["fingerprint"] for x in sel}
    check(len(fps) == 1, "one statement shape, %d fingerprints" % len(fps))
    note("pgbench -M %s: %s" % (mode, " ".join(l for l in r.stdout.splitlines() if "tps" in l)))


def case_pgbench_simple():
    need_up()
    pgbench_in("simple", "disable")


def case_pgbench_extended():
    need_up()
    pgbench_in("extended", "require")


def case_pgbench_prepared():
    need_up()
    pgbench_in("prepared", "verify-full")


def case_cancel_psql():
    need_up()
    sm = smark()
    argv = [PSQL, "-X", "-w", "-At", "-d", conninfo("require"), "-c", "SELECT pg_sleep(10)"]
    p = T.cg.popen(argv, env=client_env("x"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   text=True)
    # Cancel once the query is running on the server.
    running = wait_for(lambda: sql_direct("SELECT count(*) FROM pg_stat_activity WHERE query = "
                                          "'SELECT pg_sleep(10)' AND state = 'active'") == "1", 8, 0.1)
    t0 = time.monotonic()
    os.kill(p.pid, signal.SIGINT)
    try:
        out, err = p.communicate(timeout=8)
    except subprocess.TimeoutExpired:
        lib.stop_process(p, 1, signal.SIGKILL)
        raise AssertionError("psql did not return after SIGINT (cancel not delivered)")
    el = time.monotonic() - t0
    check(running, "pg_sleep never showed up as active on the server")
    check("canceling statement due to user request" in err, "psql stderr after SIGINT: %r" % err)
    check(el < 4, "cancel took %.1fs" % el)
    rows = stmts(sm, 1)
    sleep = [x for x in rows if "pg_sleep" in x["text"]]
    check(sleep and sleep[0]["sqlstate"] == "57014", "pg_sleep row: %r"
          % [(x["sqlstate"], x["error"]) for x in sleep])


def case_cancel_psycopg2():
    need_up()
    res = pg_agent("psycopg2-cancel")
    e = res["error"]
    check(e and e["pgcode"] == "57014", "pg_sleep was not cancelled: %r" % e)
    check(res["elapsed"] < 4, "cancel took %.1fs" % res["elapsed"])
    check(res["after"] == "usable", "session after cancel: %r" % res["after"])


def case_cancel_raw():
    need_up()
    res = pg_agent("cancel")
    check(res["after_wrong_key"] == "still running",
          "a CancelRequest with a wrong key ended the query: %r" % res)
    errs = [m for m in res["cancelled"] if m["type"] == "E"]
    check(errs and errs[0]["sqlstate"] == "57014", "after the right CancelRequest: %r"
          % res["cancelled"])
    check(res["elapsed"] < 5, "cancel took %.1fs" % res["elapsed"])
    check(res["after"] == [["still here"]], "session after cancel: %r" % res["after"])
    # The key the agent holds is Airlock's: a CancelRequest for it goes nowhere near the
    # server unless Airlock maps it (a real key would let the agent bypass the proxy).
    note("agent key pid %d, upstream backend pid %d" % (res["key"][0], res["backend_pid"]))


def case_big_query():
    need_up()
    n = 512 * 1024
    res = pg_agent("big", n)
    rows = [m["row"] for m in res["result"] if m["type"] == "D"]
    check(rows == [[str(res["sent"])]], "a %d-byte query: %r" % (n, res["result"]))


def malformed(kind):
    need_up()
    cm = cmark()
    res = pg_agent("malformed", kind)
    errs = [m for m in res["msgs"] if m["type"] == "E"]
    check(errs, "no ErrorResponse for a %s message: %r (eof %s)" % (kind, res["msgs"], res["eof"]))
    e = errs[-1]
    check(e["severity"] == "FATAL" and e["sqlstate"] == "08P01",
          "got %s %s %r, want FATAL 08P01" % (e["severity"], e["sqlstate"], e["message"]))
    check(res["eof"] and not res.get("timeout"), "the connection was not closed after FATAL: %r"
          % res)
    st = T.al.status()
    check(T.al.running() and isinstance(st, dict), "airlockd status after the bad message: %r" % st)
    rows = [r for r in pg_conns(cm) if r["agent_port"] == res["local_port"]]
    check(rows, "no connection row for agent port %d" % res["local_port"])
    row = rows[0]
    check(row["reason"] not in (None, "", "closed", "none") or row.get("detail"),
          "connection row %d records no reason: reason %r detail %r"
          % (row["id"], row["reason"], row.get("detail")))
    note("%s: %r; row reason %r detail %r" % (kind, e["message"], row["reason"], row.get("detail")))


# Accepts TCP on HOST at each PORT and never reads or answers: a server that hangs in a login.
HANG_LISTENER = r'''
import socket, sys, threading
def hold(s):
    held = []
    while True:
        held.append(s.accept()[0])
for port in sys.argv[2:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(port)))
    s.listen(16)
    threading.Thread(target=hold, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
'''


def case_login_timeout():
    """pg_login_timeout (2s, reloaded) bounds the whole login. An agent that connects and sends
    nothing, and one that sends half a StartupMessage, get FATAL 57014 naming the setting after
    about 2 s and are closed (rows: reason limit); psql to a server that accepts TCP and never
    answers, over plaintext upstream (its StartupMessage unanswered) and TLS (its SSLRequest
    unanswered), prints that FATAL after about 2 s (rows: upstream_timeout). psql to the real
    server still logs in, and airlockd is up."""
    need_up()
    ports = [lib.free_port((HANG_ADDR,))]
    while len(ports) < 2:
        p = lib.free_port((HANG_ADDR,))
        if p not in ports:
            ports.append(p)
    hang = subprocess.Popen([lib.PY, "-c", HANG_LISTENER, HANG_ADDR] + [str(p) for p in ports],
                            stdout=subprocess.PIPE, text=True)
    lib.on_cleanup(lib.stop_process, hang)
    check(hang.stdout.readline().strip() == "ready", "the hanging listener did not start")
    res = ['resource "%s" {\n    address %s\n    port %d\n    protocol postgres\n    upstream_tls %s\n'
           '    credential "pgcred"\n}' % (name, HANG_ADDR, port, tls)
           for name, port, tls in (("pghang", ports[0], "disable"), ("pghangtls", ports[1], "require"))]
    T.al.write_conf([pg_resource()] + res, settings() + ["pg_login_timeout 2s"])
    r = T.al.ctl("policy", "reload")
    check(r.returncode == 0, "policy reload: %s" % r.stderr.strip())
    try:
        cm = cmark()
        for kind in ("silent", "half"):
            got = pg_agent("stall", kind)
            errs = [m for m in got["msgs"] if m["type"] == "E"]
            check(len(errs) == 1 and errs[0]["severity"] == "FATAL" and errs[0]["sqlstate"] == "57014"
                  and "pg_login_timeout (2000 ms)" in errs[0]["message"] and got["eof"]
                  and 1.8 < got["elapsed"] < 5, "an agent that stalls (%s): %r" % (kind, got))
            rows = wait_for(lambda: [x for x in T.al.db_rows("opened_us >= ?", (cm,))
                                     if x["agent_port"] == got["local_port"] and x["closed_us"]], 5, 0.1)
            check(rows and rows[0]["reason"] == "limit" and "pg_login_timeout" in (rows[0]["detail"] or ""),
                  "its connection row: %r" % rows)
        for name, port, sslmode, part in (("pghang", ports[0], "require", "completed the login"),
                                          ("pghangtls", ports[1], "disable", "answered the SSLRequest")):
            t0 = time.monotonic()
            r = psql("SELECT 'must not run'", ci="host=%s port=%d dbname=%s user=app sslmode=%s "
                     "connect_timeout=20" % (HANG_ADDR, port, DB, sslmode))
            took = time.monotonic() - t0
            check(r.returncode == 2 and "FATAL:  airlock: canceling authentication due to timeout" in r.stderr
                  and "pg_login_timeout (2000 ms)" in r.stderr and 1.8 < took < 5,
                  "psql to %s (a server that never answers): exit %d after %.1f s: %r"
                  % (name, r.returncode, took, r.stderr.strip()[-400:]))
            rows = wait_for(lambda: [x for x in T.al.db_rows("opened_us >= ?", (cm,))
                                     if x["resource"] == name and x["closed_us"]], 5, 0.1)
            check(rows and len(rows) == 1 and rows[0]["reason"] == "upstream_timeout"
                  and part in (rows[0]["detail"] or ""), "%s's connection row: %r" % (name, rows))
        r = psql_ok("SELECT 'still logs in'")
        check(r.stdout.strip() == "still logs in", "psql to the real server: %r" % r.stdout)
        check(T.al.running(), "airlockd stopped")
    finally:
        T.al.write_conf([pg_resource()], settings())
        T.al.ctl("policy", "reload")
        lib.stop_process(hang)


def case_status_after_bad_input():
    need_up()
    r = psql_ok("SELECT 'alive'")
    check(r.stdout.strip() == "alive", "psql after the bad messages: %r" % r.stdout)


def case_ctl_statements():
    need_up()
    js = T.al.ctl_json("statements", "--limit", "5")
    check(isinstance(js, list) and len(js) == 5, "statements --json: %r" % str(js)[:300])
    db = T.al.db_rows(table="statements")[-5:]
    check(sorted(x["id"] for x in js) == [x["id"] for x in db],
          "statements --limit 5 ids %r, the store's newest %r" % ([x["id"] for x in js],
                                                                 [x["id"] for x in db]))
    cols = {"id", "conn_id", "seq", "at_us", "protocol", "text", "kind", "fingerprint",
            "relations", "unbounded_write", "params", "decision", "rule", "tag", "sqlstate",
            "error", "rows", "duration_us"}
    missing = cols - set(js[0])
    check(not missing, "statements --json lacks %s" % sorted(missing))
    r = T.al.ctl("statements", "--limit", "3")
    check(r.returncode == 0 and r.stdout.strip(), "airlockctl statements: exit %d %r"
          % (r.returncode, r.stderr))


def classify(*args, stdin=None):
    return run([lib.AIRLOCKCTL, "-s", T.al.sock, "classify", "pg"] + list(args), timeout=20,
               input=stdin)


def case_classify_text():
    r = classify("SELECT * FROM items; DELETE FROM items")
    check(r.returncode == 0, "classify exited %d: %s" % (r.returncode, r.stderr))
    for w in ("read", "delete", "items"):
        check(w in r.stdout, "classify text output lacks %r: %r" % (w, r.stdout))


def case_classify_json():
    r = classify("--json", "SELECT * FROM items WHERE id = 1; DELETE FROM items")
    check(r.returncode == 0, "classify --json exited %d: %s" % (r.returncode, r.stderr))
    js = json.loads(r.stdout)
    check(isinstance(js, list) and len(js) == 2, "classify --json: %r" % js)
    for o in js:
        check(set(o) >= {"text", "kind", "relations", "unbounded_write", "fingerprint"},
              "keys %r" % sorted(o))
        check(re.fullmatch(r"[0-9a-f]{16}", o["fingerprint"]), "fingerprint %r" % o["fingerprint"])
    check(js[0]["kind"] == "read" and js[0]["relations"] == ["items"] and
          js[0]["unbounded_write"] is False, "first: %r" % js[0])
    check(js[1]["kind"] == "delete" and js[1]["unbounded_write"] is True, "second: %r" % js[1])
    check(js[0]["text"].strip().startswith("SELECT * FROM items"), "text %r" % js[0]["text"])
    cases = [
        ("WITH d AS (DELETE FROM items WHERE id = 1 RETURNING *) SELECT * FROM d", "delete", False),
        ("UPDATE items SET qty = 1 WHERE id = 2", "update", False),
        ("MERGE INTO items t USING items s ON t.id = s.id WHEN MATCHED THEN UPDATE SET qty = 1",
         "merge", None),
        ("INSERT INTO items(name) VALUES ('x')", "insert", False),
        ("TRUNCATE items", "delete", True),
        ("COPY items TO PROGRAM 'cat'", "copy_program", None),
        ("COPY items FROM STDIN", "copy", None),
        ("DO $$BEGIN NULL; END$$", "do", None),
        ("CALL p(1)", "call", None),
        ("ALTER SYSTEM SET work_mem = '1MB'", "ddl", None),
        ("CREATE EXTENSION pgcrypto", "ddl", None),
        ("SET ROLE postgres", "dcl", None),
        ("GRANT SELECT ON items TO public", "dcl", None),
        ("BEGIN", "transaction", None),
        ("SELECT set_config('role', 'postgres', false)", "dcl", None),
        ("SHOW work_mem", None, None),
        ("EXPLAIN ANALYZE DELETE FROM items", "delete", True),
        ("SELECT * INTO items2 FROM items", "ddl", None),
    ]
    wrong = []
    for sql, kind, unb in cases:
        r = classify("--json", sql)
        if r.returncode != 0:
            wrong.append((sql, "exit %d %s" % (r.returncode, r.stderr.strip())))
            continue
        o = json.loads(r.stdout)[0]
        if (kind and o["kind"] != kind) or (unb is not None and o["unbounded_write"] != unb):
            wrong.append((sql, o["kind"], o["unbounded_write"]))
    check(not wrong, "misclassified: %r" % wrong)


def case_classify_stdin_and_errors():
    r = classify("--json", stdin="SELECT 1;\nSELECT 2;\n")
    check(r.returncode == 0 and len(json.loads(r.stdout)) == 2,
          "classify with SQL on stdin: exit %d %r %r" % (r.returncode, r.stdout, r.stderr))
    r = classify("SELEC 1 FROM")
    check(r.returncode == 1, "unparseable SQL: exit %d (want 1)" % r.returncode)
    check("syntax error" in r.stderr, "unparseable SQL: stderr %r" % r.stderr)
    a = json.loads(classify("--json", "SELECT * FROM items WHERE id = 1").stdout)[0]
    b = json.loads(classify("--json", "select *  from items where id = 99").stdout)[0]
    check(a["fingerprint"] == b["fingerprint"], "constants/spacing change the fingerprint: %r %r"
          % (a["fingerprint"], b["fingerprint"]))


def case_classify_matches_proxy():
    need_up()
    sm = smark()
    sql = "SELECT name FROM items WHERE id = 12345"
    psql_ok(sql)
    rows = stmts(sm, 1)
    o = json.loads(classify("--json", sql).stdout)[0]
    check(rows[0]["fingerprint"] == o["fingerprint"] and rows[0]["kind"] == o["kind"] and
          json.loads(rows[0]["relations"]) == o["relations"],
          "proxy row %s/%s/%s vs classify %s/%s/%s" % (rows[0]["fingerprint"], rows[0]["kind"],
                                                      rows[0]["relations"], o["fingerprint"],
                                                      o["kind"], o["relations"]))


def case_no_leak():
    check(T.leaks, "no raw-protocol case reported")
    leaked = [m for m, l in T.leaks if l]
    check(not leaked, "the real password reached the agent in: %s" % leaked)
    # Also nothing in the audit trail or the daemon's log.
    db = sqlite3.connect("file:%s?mode=ro" % T.al.store, uri=True, timeout=5)
    try:
        n = db.execute("SELECT count(*) FROM statements WHERE text LIKE ? OR params LIKE ?",
                       ("%" + APP_PW + "%", "%" + APP_PW + "%")).fetchone()[0]
    finally:
        db.close()
    check(n == 0, "%d statement rows contain the real password" % n)
    check(not [l for l in T.al.log_lines() if APP_PW in l], "airlockd's log has the real password")


def case_restart_require_tls_name():
    restart_with(pg_resource("require", None, "pgcred", TLS_NAME))
    with open(T.ca_crt, "rb") as f:
        check(hashlib.sha256(f.read()).hexdigest() == T.ca_sha, "the CA changed on restart")
    r = psql_ok("SELECT current_user, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
                ci=conninfo("verify-full", host=TLS_NAME, extra="hostaddr=%s" % PG_ADDR))
    check(r.stdout.strip() == "app|t", "upstream_tls require: %r" % r.stdout)
    # The leaf names tls_name, not the address any more.
    r = psql("SELECT 1", ci=conninfo("verify-full"))
    check(r.returncode == 2 and "does not match" in r.stderr,
          "verify-full to 127.0.0.5 with tls_name %s: exit %d %r" % (TLS_NAME, r.returncode,
                                                                     r.stderr.strip()))


def case_restart_md5_plain():
    """A server that asks for md5 over an upstream not checked by TLS (upstream_tls disable): by
    default Airlock does not answer (md5's answer logs in as well as the password would, to
    whoever is there): psql gets FATAL 28000 and the log says what allows it; with
    `upstream_auth scram-sha-256 md5` it logs in."""
    restart_with(pg_resource("disable", None, "pgmd5"))
    r = psql("SELECT 1", sslmode="require")
    check(r.returncode == 2 and "the server asks for md5 authentication, which Airlock does not answer" in r.stderr,
          "md5 over upstream_tls disable, by default: exit %d %r" % (r.returncode, r.stderr.strip()))
    said = "`upstream_auth scram-sha-256 md5` allows it"
    check(wait_for(lambda: any(said in ln for ln in T.al.log_lines()), 5), "no log line %r: %s" % (said, T.al.log_tail(3)))
    restart_with(pg_resource("disable", None, "pgmd5", extra=["upstream_auth scram-sha-256 md5"]))
    r = psql_ok("SELECT current_user, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
                sslmode="require")
    check(r.stdout.strip() == "appmd5|f", "md5 credential, upstream_tls disable: %r" % r.stdout)
    check("appmd5@%s" % DB in open(T.pglog).read(), "the server never saw user appmd5")


def case_restart_cleartext():
    """The server asks for a cleartext password (pg_hba password, over TLS): Airlock sends the
    credential's; the agent gave a wrong one."""
    restart_with(pg_resource("verify-full", "testca", "pgclear"))
    r = psql_ok("SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    check(r.stdout.strip() == "appclear|t", "cleartext credential through Airlock: %r" % r.stdout)
    check('identity="appclear" method=password' in open(T.pglog).read(),
          "the server's log has no password authentication of appclear")


def case_restart_cert_login():
    """The credential is a client certificate (the server's pg_hba says cert for its role): the
    agent, with no certificate and any password, logs in through Airlock as that role; the same
    psql outside the cgroup is refused by the server."""
    restart_with(pg_resource("verify-full", "testca", "pgcert"))
    r = psql_ok("SELECT current_user, ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    check(r.stdout.strip() == "%s|t|/CN=%s" % (CERT_USER, CERT_USER),
          "cert credential through Airlock: %r" % r.stdout)
    check('identity="CN=%s" method=cert' % CERT_USER in open(T.pglog).read(),
          "the server's log has no cert authentication of %s" % CERT_USER)
    r = psql("SELECT 'must not run'", inside=False,
             ci=conninfo("verify-full", os.path.join(T.pgdir, "testca.pem"), extra="user=%s" % CERT_USER))
    check(r.returncode == 2 and "certificate" in r.stderr and "must not run" not in r.stdout,
          "psql as %s outside the cgroup, no certificate: exit %d %r" % (CERT_USER, r.returncode,
                                                                         r.stderr.strip()[-300:]))
    note("directly, without the certificate: %s" % " ".join(r.stderr.split())[:160])


def case_cert_credential_checked():
    """airlockd -n refuses a client-certificate credential without upstream TLS, and one with no
    user= for a PostgreSQL resource, naming the resource and the reason."""
    need_up()
    for res, want in ((pg_resource("disable", None, "pgcert"), "needs upstream TLS"),
                      (pg_resource("verify-full", "testca", "certonly"), "a PostgreSQL login needs one")):
        conf = os.path.join(T.tmp, "cert-check.conf")
        with open(T.al.conf) as f:
            text = f.read()
        start, end = text.index('resource "pg" {'), text.index("}", text.index('resource "pg" {')) + 1
        with open(conf, "w") as f:
            f.write(text[:start] + res + text[end:])
        r = run([lib.AIRLOCKD, "-n", "-c", conf], timeout=20)
        check(r.returncode != 0 and want in r.stderr and "resource pg" in r.stderr,
              "airlockd -n with %r: exit %d %r" % (res.splitlines()[4:6], r.returncode, r.stderr.strip()))


def wrong_ca(sslmode):
    if "otherca" not in open(T.al.conf).read():
        restart_with(pg_resource("verify-full", "otherca", "pgcred"))
    sm = smark()
    r = psql("SELECT 'must not run'", sslmode=sslmode)
    check(r.returncode == 2, "upstream verify-full with the wrong CA: psql exit %d %r"
          % (r.returncode, r.stdout))
    check("must not run" not in r.stdout, "the query ran")
    note("agent (sslmode=%s) saw: %s" % (sslmode, " ".join(r.stderr.split())[:200]))
    check("FATAL:  airlock:" in r.stderr, "the agent got no FATAL naming Airlock: %r"
          % r.stderr.strip())
    time.sleep(0.2)
    check(not [x for x in T.al.db_rows("at_us >= ?", (sm,), table="statements") if x["tag"]],
          "a statement ran over an unverified upstream")


def case_wrong_ca_plain():
    wrong_ca("disable")


def case_wrong_ca_tls():
    wrong_ca("verify-full")


def case_still_up():
    need_up()
    st = T.al.status()
    check(isinstance(st, dict), "status: %r" % st)
    T.al.check_log_clean()


# ---------------------------------------------------------------- main

def setup():
    t = T
    t.tmp, t.home, t.ca_dir = lib.make_workdir()
    t.ca_crt = os.path.join(t.ca_dir, "ca.crt")
    t0 = time.monotonic()
    start_postgres()
    note("postgres 15 on %s:%d (pid %d, dir %s) ready in %.1fs"
         % (PG_ADDR, t.port, t.postmaster, t.pgdir, time.monotonic() - t0))
    t.secrets = os.path.join(t.tmp, "secrets.conf")
    fd = os.open(t.secrets, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write('# test_pg credentials\npgcred user=app password="%s"\n'
                'pgmd5 user=appmd5 password="%s"\n'
                'pgclear user=appclear password="%s"\n'
                'pgcert user=%s sslcert=%s sslkey=%s\n'
                'certonly sslcert=%s sslkey=%s\n'
                % (APP_PW, MD5_PW, CLEAR_PW, CERT_USER, os.path.join(t.pgdir, "client.crt"),
                   os.path.join(t.pgdir, "client.key"), os.path.join(t.pgdir, "client.crt"),
                   os.path.join(t.pgdir, "client.key")))
    t.cg = lib.TestCgroup()
    t.al = lib.Airlock(t.tmp, [pg_resource()], settings=settings())
    note("cgroup %s, pins %s, steer port %d, tmp %s" % (t.cg.path, t.al.pin_root,
                                                        t.al.steer_port, t.tmp))


CASES = [
    ("airlockd -n accepts the postgres config", case_check_config),
    ("airlockd refuses to start with a secrets file of mode 0644", case_loose_secrets_refused),
    ("airlockd -n checks the secrets file too (mode 0644 refused)", case_check_secrets),
    ("start airlockd, pin the cgroup; the CA is made in ca_dir", case_start),
    ("outside the cgroup a wrong or no password fails against the server", case_direct_wrong_password),
    ("psql verify-full (Airlock CA), wrong password: logged in upstream as app over TLS, audited",
     case_verify_full_wrong_password),
    ("psql with no password, sslmode=require", case_no_password_require),
    ("psql sslmode=disable: plaintext to Airlock, TLS upstream", case_sslmode_disable),
    ("psql sslmode=prefer: Airlock answers the SSLRequest, the session is TLS", case_sslmode_prefer),
    ("the function-call protocol refused with 42501, audited; the session goes on",
     case_function_call_refused),
    ("verify-full with the server's own CA fails: the agent gets Airlock's leaf", case_server_ca_rejected),
    ("GSSENCRequest declined, plaintext startup follows (raw socket)", case_gssenc),
    ("INSERT/UPDATE/DELETE with WHERE relayed; tags, rows, kinds audited", case_writes),
    ("UPDATE/DELETE without WHERE: ERROR 42501 (request N), nothing changed, next statement works",
     case_deny_unbounded),
    ("DDL denied (DROP/CREATE/ALTER TABLE, CREATE EXTENSION), schema unchanged", case_deny_ddl),
    ("SELECT from relation secrets denied, session goes on", case_deny_relation),
    ("relation secrets denied however it is written (schema-qualified, quoted, CTE, subquery)",
     case_deny_relation_qualified),
    ("multi-statement string runs; with one denied statement none of it runs", case_multi_statement),
    ("SQL the parser cannot read is refused (42601, audited unparsed), never reaches the server; "
     "the session goes on", case_unparseable_refused),
    ("an error outcome is audited (22012 division by zero)", case_error_outcome),
    ("BEGIN/INSERT/ROLLBACK and a denial inside a transaction", case_transaction),
    ("COPY FROM STDIN / TO STDOUT with psql \\copy; COPY into secrets denied", case_copy),
    ("psycopg2 verify-full, wrong password: parameters, transaction, denial, session goes on",
     case_psycopg2),
    ("extended protocol: text/NULL/binary params audited, named statement, denied batch up to Sync",
     case_extended),
    ("random extended-protocol batches over reused names: each answered up to ReadyForQuery, the denied "
     "UPDATE never runs", case_chaos),
    ("startup parameters that change the role or how the server reads SQL are refused; a function "
     "that turns standard_conforming_strings off ends the session before the query pipelined behind "
     "it runs", case_guard),
    ("PostgreSQL's JDBC driver: prepared statements (named, server-side), a transaction, a batch, "
     "a denial (42501) and the connection after it", case_jdbc),
    ("pgbench -S -M simple (sslmode=disable) x50", case_pgbench_simple),
    ("pgbench -S -M extended (sslmode=require) x50, bind parameters audited", case_pgbench_extended),
    ("pgbench -S -M prepared (verify-full) x50, bind parameters audited", case_pgbench_prepared),
    ("psql: SIGINT cancels pg_sleep (57014 audited)", case_cancel_psql),
    ("psycopg2: conn.cancel() cancels pg_sleep, session usable", case_cancel_psycopg2),
    ("CancelRequest: a wrong key cancels nothing, the agent's key cancels its query (raw)",
     case_cancel_raw),
    ("a 512 KiB query passes under pg_max_message 1m", case_big_query),
    ("malformed: a Query header claiming 2 GiB -> FATAL 08P01, closed, reason recorded",
     lambda: malformed("huge")),
    ("a complete Query of 1 MiB + 20 bytes (over pg_max_message 1m) -> FATAL 08P01",
     lambda: malformed("over")),
    ("malformed: a message length below 4 -> FATAL 08P01", lambda: malformed("short")),
    ("malformed: an unknown message type -> FATAL 08P01", lambda: malformed("unknown")),
    ("malformed: a Query without its NUL -> FATAL 08P01", lambda: malformed("nonul")),
    ("malformed: a garbage startup packet -> FATAL 08P01", lambda: malformed("startup")),
    ("after the bad messages the daemon answers and psql works", case_status_after_bad_input),
    ("pg_login_timeout: an agent that sends nothing or half a startup packet, and psql to a server "
     "that never answers (plaintext and TLS upstream), get FATAL 57014 in time; rows say why",
     case_login_timeout),
    ("airlockctl statements --limit --json matches the store", case_ctl_statements),
    ("airlockctl classify pg: text output", case_classify_text),
    ("airlockctl classify pg --json: fields and kinds (CTE, TRUNCATE, COPY PROGRAM, DO, ...)",
     case_classify_json),
    ("airlockctl classify pg: SQL on stdin, unparseable SQL exits 1, fingerprints ignore constants",
     case_classify_stdin_and_errors),
    ("airlockctl classify agrees with the proxy's audit row", case_classify_matches_proxy),
    ("the real password never reaches the agent, the audit rows or the log", case_no_leak),
    ("restart: upstream_tls require; the leaf carries tls_name; the CA is kept",
     case_restart_require_tls_name),
    ("restart: upstream_tls disable with an md5 credential: not answered by default (FATAL 28000), "
     "answered with upstream_auth md5", case_restart_md5_plain),
    ("restart: the server asks for a cleartext password (pg_hba password over TLS)",
     case_restart_cleartext),
    ("restart: a client-certificate credential (server pg_hba cert): the agent logs in as its "
     "role; outside the cgroup the server refuses", case_restart_cert_login),
    ("airlockd -n: a certificate credential needs upstream TLS, and user= for PostgreSQL",
     case_cert_credential_checked),
    ("upstream verify-full with the wrong CA: a plaintext agent gets FATAL airlock: ...",
     case_wrong_ca_plain),
    ("upstream verify-full with the wrong CA: a TLS agent gets the FATAL too (not a bare EOF)",
     case_wrong_ca_tls),
    ("airlockd still up, no sanitizer or assert lines in its log", case_still_up),
]


def main():
    res = lib.Results()
    if os.geteuid() != 0:
        res.not_ok("pg: test_pg", "needs root (loads BPF, creates a cgroup, runs postgres)")
        return 1
    for b in (lib.AIRLOCKD, lib.AIRLOCKCTL, PSQL, PGBENCH, OPENSSL, PGBIN + "/initdb",
              PGBIN + "/pg_ctl"):
        if not os.access(b, os.X_OK):
            res.not_ok("pg: test_pg", "%s is missing (make all; scripts/deps.sh)" % b)
            return 1
    if importlib.util.find_spec("psycopg2") is None:
        res.not_ok("pg: test_pg", "python3-psycopg2 is missing (scripts/deps.sh)")
        return 1

    def postgres_log():
        if T.pgdir:
            note("postgres log: " + tail(os.path.join(T.pgdir, "postgres.log"), 15))
    return lib.run_suite(res, setup, CASES, lambda: T.al,
                         lambda: [T.cg and T.cg.path, T.al and T.al.pin_root, T.pgdir, T.tmp],
                         prefix="pg: ", on_failure=postgres_log)


if __name__ == "__main__":
    sys.exit(main())
