"""A throwaway PostgreSQL 15 cluster for integration tests, and helpers to run agent clients against it.

The cluster lives in a temp dir made for this run, is initialised and run as the OS user
postgres, listens on one loopback address (TCP, scram-sha-256) and on a private unix socket
(trust, mode 0700) that only root and postgres can reach, so the test can look at the server
directly, outside Airlock. It is stopped and removed on any exit (lib cleanup).

Usage:
    pg = pgcluster.Cluster("127.0.0.6", max_connections=150)
    pg.start(setup_sql="CREATE ROLE app LOGIN PASSWORD 'x'; ...")
    pg.sql("SELECT count(*) FROM t", db="mydb")       # as superuser, over the unix socket
"""

import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import tempfile

import lib
from lib import check, note

PGBIN = "/usr/lib/postgresql/15/bin"
PSQL = "/usr/bin/psql"
PGBENCH = "/usr/bin/pgbench"
OPENSSL = "/usr/bin/openssl"


def run(argv, timeout=60, **kw):
    kw.setdefault("env", lib.CLIENT_ENV)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def must(r, what):
    check(r.returncode == 0, "%s exited %d: %s" % (what, r.returncode,
                                                   (r.stderr or r.stdout).strip()[-600:]))
    return r


def as_postgres(argv, timeout=60):
    return run(["/usr/sbin/runuser", "-u", "postgres", "--"] + argv, timeout=timeout)


def tail(path, n=10):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().splitlines()[-n:])
    except OSError:
        return "(no log)"


def missing_tools():
    """The binaries a cluster needs that are not installed."""
    return [b for b in (PSQL, PGBIN + "/initdb", PGBIN + "/pg_ctl") if not os.access(b, os.X_OK)]


def make_certs(d, addr):
    """A test CA (testca.pem/.key), a server leaf for IP addr signed by it (server.crt/.key),
    and an unrelated CA (otherca.pem/.key), in d."""
    def ca(name):
        must(run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-keyout", os.path.join(d, name + ".key"),
                  "-out", os.path.join(d, name + ".pem"), "-days", "2",
                  "-subj", "/CN=airlock-test %s %s" % (name, lib.RUN_ID),
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"]), "openssl req (%s)" % name)
    ca("testca")
    ca("otherca")
    key, csr, crt = (os.path.join(d, "server." + x) for x in ("key", "csr", "crt"))
    must(run([OPENSSL, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", key, "-out", csr, "-subj", "/CN=%s" % addr]), "openssl req (server)")
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                % addr)
    must(run([OPENSSL, "x509", "-req", "-in", csr, "-CA", os.path.join(d, "testca.pem"),
              "-CAkey", os.path.join(d, "testca.key"), "-CAcreateserial", "-out", crt,
              "-days", "2", "-extfile", ext]), "openssl x509 (server)")


class Cluster:
    """initdb + pg_ctl in a temp dir; TCP on `addr` only (scram-sha-256), a private unix socket."""

    def __init__(self, addr, max_connections=60, tls=False, extra_conf="", hba_lines=()):
        self.addr = addr
        self.max_connections = max_connections
        self.tls = tls
        self.extra_conf = extra_conf
        self.hba_lines = list(hba_lines)
        self.dir = self.data = self.sock = self.log = None
        self.port = 0
        self.postmaster = None
        self.up = False

    def start(self, setup_sql=None, timeout=60):
        """initdb, configure, start; then runs setup_sql (psql script, may use \\c) as postgres."""
        pw = pwd.getpwnam("postgres")
        d = tempfile.mkdtemp(prefix="airlock-test-%s-pg." % lib.RUN_ID)
        lib.on_cleanup(shutil.rmtree, d, True)
        self.dir = d
        os.chmod(d, 0o755)
        if self.tls:
            make_certs(d, self.addr)
        self.sock = os.path.join(d, "sock")
        self.data = os.path.join(d, "data")
        os.mkdir(self.sock, 0o700)
        os.chown(self.sock, pw.pw_uid, pw.pw_gid)
        if self.tls:
            for f in ("server.key", "server.crt"):
                os.chown(os.path.join(d, f), pw.pw_uid, pw.pw_gid)
            os.chmod(os.path.join(d, "server.key"), 0o600)
        os.chown(d, pw.pw_uid, pw.pw_gid)
        must(as_postgres([PGBIN + "/initdb", "-D", self.data, "-U", "postgres", "-E", "UTF8",
                          "--no-locale", "--no-sync", "--auth-local=trust",
                          "--auth-host=scram-sha-256"], timeout=timeout), "initdb")
        self.port = lib.free_port((self.addr,))
        conf = """
# airlock integration test cluster (%s)
listen_addresses = '%s'
port = %d
unix_socket_directories = '%s'
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = %d
shared_buffers = 32MB
log_connections = on
log_line_prefix = '%%m [%%p] %%u@%%d %%r '
""" % (lib.RUN_ID, self.addr, self.port, self.sock, self.max_connections)
        if self.tls:
            conf += "ssl = on\nssl_cert_file = '%s/server.crt'\nssl_key_file = '%s/server.key'\n" % (
                d, d)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(conf + self.extra_conf + "\n")
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("# airlock test cluster: the private socket dir is mode 0700, owned by postgres\n"
                    "local all all trust\n")
            for line in self.hba_lines:
                f.write(line + "\n")
            f.write("host all all 127.0.0.1/32 scram-sha-256\n")
            if self.addr != "127.0.0.1":
                f.write("host all all %s/32 scram-sha-256\n" % self.addr)
        self.log = os.path.join(d, "postgres.log")
        r = as_postgres([PGBIN + "/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30",
                         "start"], timeout=timeout)
        lib.on_cleanup(self.stop)
        self.up = True
        must(r, "pg_ctl start (log: %s)" % tail(self.log))
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.postmaster = int(f.readline())
        if setup_sql:
            self.script(setup_sql)
        return self

    def stop(self):
        if not self.up:
            return
        r = as_postgres([PGBIN + "/pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "20", "stop"])
        if r.returncode != 0 and self.postmaster:
            note("pg_ctl stop failed (%s); killing postmaster %d" % (r.stderr.strip(),
                                                                   self.postmaster))
            try:
                os.kill(self.postmaster, signal.SIGQUIT)
            except ProcessLookupError:
                pass
        self.up = False

    def script(self, text, db="postgres", timeout=60):
        """Runs a psql script as the superuser over the private socket; stops at the first error."""
        return must(run([PSQL, "-X", "-q", "-h", self.sock, "-p", str(self.port), "-U", "postgres",
                         "-d", db, "-v", "ON_ERROR_STOP=1"], input=text, timeout=timeout),
                    "psql script")

    def sql(self, sql, db="postgres", timeout=30):
        """One statement as the superuser over the private socket (outside any cgroup); -At output."""
        r = run([PSQL, "-X", "-At", "-h", self.sock, "-p", str(self.port), "-U", "postgres", "-d", db,
                 "-v", "ON_ERROR_STOP=1", "-c", sql], timeout=timeout)
        must(r, "direct psql %r" % sql)
        return r.stdout.strip()

    def log_tail(self, n=15):
        return tail(self.log, n) if self.log else "(no log)"


def client_env(home, password=None):
    """Environment for psql/libpq agents: no PG* settings from outside, no ~/.pgpass or ~/.psqlrc
    (HOME is a test dir that any uid may read), connect timeout 10s."""
    env = {k: v for k, v in lib.CLIENT_ENV.items() if not k.startswith("PG")}
    env["HOME"] = home
    env["PGPASSFILE"] = os.path.join(home, "no-pgpass")
    env["PGSSLCERT"] = os.path.join(home, "no-client.crt")
    env["PGSSLKEY"] = os.path.join(home, "no-client.key")
    env["PGCONNECT_TIMEOUT"] = "10"
    if password is not None:
        env["PGPASSWORD"] = password
    return env


def write_secrets(path, entries):
    """A root-only (0600) secrets file: entries is a list of (name, user, password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# airlock test credentials\n")
        for name, user, password in entries:
            f.write('%s user=%s password="%s"\n' % (name, user, password))
    return path


def pg_resource(name, addr, port, rules=(), upstream_tls="disable", upstream_ca=None,
                credential="pgcred", tls_name=None):
    """A `protocol postgres` resource block for lib.Airlock(resources=[...])."""
    lines = ['resource "%s" {' % name,
             "    address %s" % addr,
             "    port %d" % port,
             "    protocol postgres",
             "    upstream_tls %s" % upstream_tls]
    if upstream_ca:
        lines.append('    upstream_ca "%s"' % upstream_ca)
    if tls_name:
        lines.append('    tls_name "%s"' % tls_name)
    lines.append('    credential "%s"' % credential)
    lines += ["    " + r for r in rules]
    lines.append("}")
    return "\n".join(lines)


class AgentSession:
    """A review_agent.py session (one psycopg2 connection) or a pg_agent.py wire session as the
    agent in cgroup cg: it runs the SQL (or protocol messages) it is sent, a JSON line each way.
    argv runs it (as the agent's uid); env is its environment."""

    def __init__(self, cg, argv, env):
        self.p = cg.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env)
        lib.on_cleanup(self.close)
        self.ready = self.read(20)
        check(self.ready and self.ready.get("ready"), "session did not start: %r" % self.ready)

    def send(self, sql):
        self.send_json({"sql": sql})

    def send_json(self, obj):
        self.p.stdin.write(json.dumps(obj) + "\n")
        self.p.stdin.flush()

    def read(self, timeout):
        """The next answer, or None after timeout s; fails if the session ended."""
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            return None
        line = self.p.stdout.readline()
        if not line:
            err = self.p.stderr.read() if self.p.poll() is not None else ""
            raise AssertionError("session ended (exit %s): %s" % (self.p.poll(), err.strip()[-400:]))
        return json.loads(line)

    def run(self, sql, timeout=15):
        self.send(sql)
        res = self.read(timeout)
        check(res is not None, "session: no answer to %r within %ds" % (sql, timeout))
        return res

    def peek(self, secs):
        """The first message the server side sent unasked within secs (not consumed), or None."""
        self.p.stdin.write(json.dumps({"peek": secs}) + "\n")
        self.p.stdin.flush()
        res = self.read(secs + 10)
        check(res is not None, "session: no answer to peek")
        return res["peek"]

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        lib.stop_process(self.p, 3)
