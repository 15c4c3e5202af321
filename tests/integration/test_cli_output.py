#!/usr/bin/python3
"""airlockctl's human output is terminal-safe: what an agent controls reaches the operator's
terminal only as visible escapes, never as bytes the terminal acts on.

Run as root: /usr/bin/python3 tests/integration/test_cli_output.py
Prints `ok - cli output: NAME` / `not ok - cli output: NAME: why` per case, exits 1 if any failed.

The agent is a copy of python3 whose file name carries terminal escapes (hide text, retitle
the window), a C1 control, a bidi override, a newline followed by a fake line and a byte that
is not UTF-8; it runs in a cgroup it could have made itself, a child of this run's pinned test
cgroup, whose name carries the same kinds of bytes (the kernel refuses only a newline there),
and sets its comm with prctl(PR_SET_NAME) to more of them. It sends a TLS ClientHello whose
server name writes the clipboard (OSC 52) and retitles the window to a TCP resource (a
loopback echo server), tries a UDP datagram the fence refuses, and runs SQL with escapes through
a postgres resource (a throwaway PostgreSQL 15 cluster, pgcluster.py) whose DELETE is held for
review. Then every command that shows those rows is run, and its output must hold no ESC, BEL,
other C0 control but newline, DEL, C1 control (raw or as UTF-8), bidi control or byte that
is not UTF-8, while each field still shows, escaped; --json output must be ASCII.
Everything (cluster, daemon, cgroups, pins, temp dirs) is removed on any exit.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import pgcluster  # noqa: E402
from lib import check, note, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SETPRIV = "/usr/bin/setpriv"
PG_ADDR = "127.0.0.81"
ECHO_ADDR = "127.0.0.82"
DB = "clidb"
APP_PW = "cl1 pw"
REVIEWER = ("clirev", 47251)
SETUP_SQL = """
CREATE ROLE app LOGIN PASSWORD '%s';
CREATE DATABASE %s OWNER app;
\\c %s
SET SESSION AUTHORIZATION app;
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT g, 'item-' || g FROM generate_series(1, 10) g;
""" % (APP_PW, DB, DB)

# What the agent controls, and how airlockctl must show it. "\udcff" is the byte 0xff in a
# file or cgroup name (not UTF-8): through airlockd's JSON it is U+FFFD, read from the store
# file (replay) it shows as \xFF; the checks stop before it.
EXE_NAME = "py\x1b[8m\x1b]0;owned\x07\u009b31m\u202eexe\ncommand: rm -rf ~\udcff"
EXE_SHOWN = "py^[[8m^[]0;owned^G\\u009B31m\\u202Eexe\\ncommand: rm -rf ~"
CG_NAME = "ag\x1b]0;cg\x07\u009d\u2066\t\x7fx\udcff"
CG_SHOWN = "ag^[]0;cg^G\\u009D\\u2066\\t^?x"
COMM = b"c\x1b]0;t\x07\xc2\x9b\xe2\x80\xae!"             # 13 bytes: comm holds 15
COMM_SHOWN = "c^[]0;t^G\\u009B\\u202E!"
SNI = b"x.test\x1b]52;c;" + base64.b64encode(b"echo owned") + b"\x07\x1b]0;pwned\x07"
SNI_SHOWN = "x.test^[]52;c;ZWNobyBvd25lZA==^G^[]0;pwned^G"
SQL_EVIL = "SELECT '\x1b]0;owned\x07\u009b31m\u202egnp.exe' AS evil"
SQL_EVIL_SHOWN = "SELECT '^[]0;owned^G\\u009B31m\\u202Egnp.exe' AS evil"
SQL_WIDE = "SELECT '" + "\u65e5" * 150 + "' AS wide"
SQL_LINES = "SELECT 1 AS one\n-- session 1 ended after 0.1 s: closed"
SQL_DELETE = "DELETE FROM items WHERE id = 1 /* \x1b]52;c;b3duZWQ=\x07\u202e\ncommand: fake */"
SQL_DELETE_SHOWN = "DELETE FROM items WHERE id = 1 /* ^[]52;c;b3duZWQ=^G\\u202E\\ncommand: fake */"

BIDI = set(range(0x202a, 0x202f)) | set(range(0x2066, 0x206a)) | {0x200e, 0x200f, 0x061c}

# The agent's TCP part: comm set, a ClientHello with the evil server name to the echo
# resource (its echo read back), then a UDP datagram the fence refuses. One JSON line.
TCP_AGENT = r"""
import base64, ctypes, json, os, socket, struct, sys
comm, host, port, sni = base64.b64decode(sys.argv[1]), sys.argv[2], int(sys.argv[3]), base64.b64decode(sys.argv[4])
ctypes.CDLL(None).prctl(15, ctypes.c_char_p(comm), 0, 0, 0)      # PR_SET_NAME
ext = struct.pack("!HHHBH", 0, len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni
body = b"\x03\x03" + os.urandom(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + struct.pack("!H", len(ext)) + ext
hs = b"\x01" + len(body).to_bytes(3, "big") + body
hello = b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs
res = {"pid": os.getpid()}
s = socket.create_connection((host, port), timeout=10)
s.sendall(hello)
got = b""
while len(got) < len(hello):
    d = s.recv(65536)
    if not d:
        break
    got += d
res["echoed"] = got == hello
s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"x", (host, port))
    res["udp"] = "sent"
except OSError as e:
    res["udp"] = e.errno
print(json.dumps(res), flush=True)
"""

# The agent's postgres part: comm set, then pg_agent.py's interactive wire session.
PG_AGENT = r"""
import base64, ctypes, sys
ctypes.CDLL(None).prctl(15, ctypes.c_char_p(base64.b64decode(sys.argv[1])), 0, 0, 0)
sys.path.insert(0, sys.argv[2])
import pg_agent
pg_agent.mode_wire(sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6])
"""


class T:
    tmp = home = al = cg = pg = None
    evil_cg = None          # the agent's cgroup: a child of cg, its path
    exe = None              # the agent's executable (a copy of python3)
    rsock = None
    echo_port = None
    tcp = None              # what the TCP agent reported
    pg_agent = None         # its postgres session (pgcluster.AgentSession)
    pg_conn = None          # that session's connection id
    req = None              # the held DELETE's request id


class EvilCgroup:
    """The agent's own cgroup (a child of the pinned one): popen as pgcluster.AgentSession wants it."""

    def __init__(self, path):
        self.path = path

    def argv(self, argv):
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.path] + list(argv)

    def popen(self, argv, **kw):
        kw.setdefault("env", lib.CLIENT_ENV)
        p = subprocess.Popen(self.argv(argv), **kw)
        lib.on_cleanup(lib.stop_process, p, 2.0)
        return p

    def run(self, argv, timeout=30):
        return subprocess.run(self.argv(argv), capture_output=True, timeout=timeout, env=lib.CLIENT_ENV)


def b64(b):
    return base64.b64encode(b).decode()


def need_up():
    check(T.al is not None and T.al.running(), "airlockd is not running (log: %s)"
          % (T.al.log_tail(5) if T.al else "-"))


def ctl(*args, reviewer=False, ok=True, timeout=30):
    """airlockctl's raw stdout (bytes) and stderr; as the reviewer over the review socket if told."""
    argv = [lib.AIRLOCKCTL, "-s", T.al.sock] + [str(a) for a in args]
    if reviewer:
        argv = [SETPRIV, "--reuid=%d" % REVIEWER[1], "--regid=%d" % REVIEWER[1], "--clear-groups",
                lib.AIRLOCKCTL, "--review-socket", T.rsock] + [str(a) for a in args]
    r = subprocess.run(argv, capture_output=True, timeout=timeout, env=lib.CLIENT_ENV)
    if ok:
        check(r.returncode == 0, "airlockctl %s exited %d: %r" % (" ".join(map(str, args)), r.returncode,
                                                                  r.stderr[-400:]))
    inert(r.stderr, "airlockctl %s (stderr)" % args[0])
    return r.stdout


def inert(out, what):
    """Fails unless out (bytes) is UTF-8 holding nothing a terminal acts on or that reorders
    text: no C0 control but newline, no DEL, no C1 (raw or as UTF-8), no bidi control.
    Returns it as text."""
    check(b"\x1b" not in out and b"\x07" not in out, "%s: a raw ESC or BEL: %r" % (what, out[:2000]))
    try:
        text = out.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AssertionError("%s: not UTF-8 (%s): %r" % (what, e, out[max(0, e.start - 80):e.end + 80]))
    bad = sorted({"U+%04X" % ord(c) for c in text
                  if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f or ord(c) in BIDI})
    check(not bad, "%s: %s in the output: %r" % (what, bad, text[:2000]))
    return text


def ascii_json(out, what):
    """--json output: ASCII only (jansson's JSON_ENSURE_ASCII), no control byte but newline; parsed."""
    bad = [b for b in out if b >= 0x80 or (b < 0x20 and b != 0x0a)]
    check(not bad, "%s: %d non-ASCII or control bytes: %r" % (what, len(bad), out[:600]))
    return json.loads(out)


def lines_with(text, needle):
    return [ln for ln in text.splitlines() if needle in ln]


# ---------------------------------------------------------------- cases

def case_agent():
    """The agent runs: its ClientHello is echoed, its UDP datagram refused, its postgres session
    answers; its connection rows name its cgroup, comm and exe as it set them."""
    need_up()
    r = T.evil_run([T.exe, "-c", TCP_AGENT, b64(COMM), ECHO_ADDR, str(T.echo_port), b64(SNI)])
    check(r.returncode == 0, "tcp agent exited %d: %r" % (r.returncode, r.stderr[-600:]))
    T.tcp = json.loads(r.stdout)
    check(T.tcp["echoed"], "the ClientHello was not echoed back: %r" % T.tcp)
    check(T.tcp["udp"] == 1, "the UDP datagram was not refused with EPERM: %r" % T.tcp)
    T.pg_agent = pgcluster.AgentSession(
        EvilCgroup(T.evil_cg), [T.exe, "-c", PG_AGENT, b64(COMM), HERE, PG_ADDR, str(T.pg.port), DB, "app"],
        pgcluster.client_env(T.home, "wrong"))
    for sql in (SQL_EVIL, SQL_WIDE, SQL_LINES):
        res = T.pg_agent.run(sql)
        check(not [m for m in res["result"] if m["type"] == "E"], "%r: %r" % (sql[:40], res))
    rows = wait_for(lambda: [c for c in T.al.connections() if c.get("pid") == T.tcp["pid"] and c.get("closed_us")], 10)
    check(rows, "no closed connection row of the tcp agent (pid %d)" % T.tcp["pid"])
    row = rows[0]
    check(row.get("cgroup_path", "").startswith(T.cg.rel + "/ag\x1b]0;cg\x07\u009d\u2066\t\x7fx"),
          "the row's cgroup is %r" % row.get("cgroup_path"))
    check(row.get("comm") == COMM.decode(), "the row's comm is %r" % row.get("comm"))
    if row.get("exe"):
        check(os.path.basename(row["exe"]).startswith(EXE_NAME[:-1]), "the row's exe is %r" % row["exe"])
    else:
        note("exe not recorded here (status exe_gap: %r)" % T.al.status().get("exe_gap"))
    pg = [c for c in T.al.connections() if c.get("resource") == "pg" and c.get("pid") == T.pg_agent.ready["pid"]]
    check(pg, "no connection row of the postgres session (pid %d)" % T.pg_agent.ready["pid"])
    T.pg_conn = pg[0]["id"]


def case_connections():
    """connections: the cgroup and comm show escaped; --json is ASCII and names them exactly."""
    need_up()
    out = inert(ctl("connections", "--limit", "100"), "connections")
    mine = lines_with(out, CG_SHOWN)
    check(len(mine) >= 2, "connections: the agent's rows do not show its cgroup %r escaped: %r"
          % (CG_SHOWN, out[-1500:]))
    check(all(COMM_SHOWN in ln for ln in mine), "connections: comm %r not shown: %r" % (COMM_SHOWN, mine))
    rows = ascii_json(ctl("connections", "--limit", "100", "--json"), "connections --json")
    check([r for r in rows if r.get("comm") == COMM.decode()], "connections --json lost the comm")


def case_refusals():
    """refusals: the refused UDP datagram's row, cgroup and comm escaped."""
    need_up()
    got = wait_for(lambda: lines_with(inert(ctl("refusals", "--limit", "100"), "refusals"), CG_SHOWN), 5)
    check(got and all(COMM_SHOWN in ln and "udp_denied" in ln for ln in got),
          "refusals: no udp_denied row with cgroup %r and comm %r: %r" % (CG_SHOWN, COMM_SHOWN, got))
    rows = ascii_json(ctl("refusals", "--limit", "100", "--json"), "refusals --json")
    check([r for r in rows if r.get("pid") == T.tcp["pid"]], "refusals --json: no row of pid %d" % T.tcp["pid"])


def case_statements():
    """statements: SQL on one line, escapes shown; a long text cut at 100 characters, never
    inside a character; a newline in it is \\n."""
    need_up()

    def get():
        t = inert(ctl("statements", "--limit", "100"), "statements")
        return t if "\u65e5" * 80 in t else None
    out = wait_for(get, 10)
    check(out, "statements: the agent's statements are not listed")
    check(lines_with(out, SQL_EVIL_SHOWN), "statements: %r not shown: %r" % (SQL_EVIL_SHOWN, out[-1500:]))
    wide = lines_with(out, "\u65e5" * 10)
    check(wide and wide[0].endswith(" " + SQL_WIDE[:97] + "..."),
          "statements: the wide text is not cut to 100 characters, the last 3 '...': %r" % wide)
    check(lines_with(out, "SELECT 1 AS one\\n-- session 1 ended"), "statements: the newline is not \\n: %r"
          % out[-1500:])
    check(not [ln for ln in out.splitlines() if ln.startswith("-- session")], "statements: a line of the SQL "
          "starts a line of output")
    rows = ascii_json(ctl("statements", "--limit", "100", "--json"), "statements --json")
    check([r for r in rows if r.get("text") == SQL_EVIL], "statements --json lost the SQL text")


def case_pending_show():
    """A DELETE held for review: pending and show name its cgroup, exe and command escaped; in
    pending the command is one line (its newline is \\n), in show it is its lines, indented."""
    need_up()
    T.pg_agent.send(SQL_DELETE)
    rows = wait_for(lambda: [r for r in ascii_json(ctl("pending", "--json", reviewer=True), "pending --json")
                             if "DELETE FROM items" in (r.get("command") or "")], 15)
    check(rows, "the DELETE was not held for review")
    T.req = rows[-1]["id"]
    check(rows[-1].get("command") == SQL_DELETE and CG_NAME[:-1] in rows[-1].get("cgroup_path", ""),
          "pending --json: %r" % rows[-1])
    out = inert(ctl("pending", reviewer=True), "pending")
    mine = [ln for ln in out.splitlines() if re.match(r"%d\s" % T.req, ln)]
    check(mine and CG_SHOWN in mine[0] and "DELETE FROM items WHERE id = 1 /* ^[]52;c;" in mine[0],
          "pending: request %d does not show its cgroup and command escaped: %r" % (T.req, out))
    out = inert(ctl("show", T.req, reviewer=True), "show")
    lines = out.splitlines()
    check(len(lines) == 7, "show: %d lines, want 7 (a field made its own line?): %r" % (len(lines), out))
    check(not [ln for ln in lines if ln.startswith("command: rm") or ln.startswith("command: fake")],
          "show: the agent's fake line starts a line: %r" % out)
    check(CG_SHOWN in lines[1], "show: the cgroup is not shown escaped: %r" % lines[1])
    if rows[-1].get("exe"):
        check(EXE_SHOWN in lines[1], "show: the exe %r is not shown escaped: %r" % (EXE_SHOWN, lines[1]))
    check(lines[3:6] == ["command:"] + ["  " + x for x in SQL_DELETE_SHOWN.split("\\n")],
          "show: the command is not %r, its lines indented: %r" % (SQL_DELETE_SHOWN, lines[3:6]))
    js = ascii_json(ctl("show", T.req, "--json", reviewer=True), "show --json")
    check(js.get("command") == SQL_DELETE, "show --json: the command is %r" % js.get("command"))
    ctl("deny", T.req, "--reason", "cli output test", reviewer=True)
    res = T.pg_agent.read(15)
    check(res and [m for m in res["result"] if m["type"] == "E"], "the agent was not refused after deny: %r" % res)


def case_policy_test():
    """policy test: the statements a candidate would deny, with their agent's cgroup and text escaped."""
    need_up()
    cand = os.path.join(T.tmp, "candidate.conf")
    with open(cand, "w") as f:
        f.write(pgcluster.pg_resource("pg", PG_ADDR, T.pg.port, rules=["rule deny kind read"]) + "\n")
    out = inert(ctl("policy", "test", "--since", "1h", cand, timeout=60), "policy test")
    mine = lines_with(out, SQL_EVIL_SHOWN[:60])
    check(mine and CG_SHOWN in mine[0] and "allow -> deny" in mine[0],
          "policy test: the evil SELECT is not listed with its cgroup escaped: %r" % out[-1500:])


def case_replay():
    """replay: the sessions' header (cgroup, exe), SQL, values and end (the ClientHello's
    server name) show as text; the SQL's own lines are indented under its first."""
    need_up()
    T.pg_agent.close()
    tls = [c for c in T.al.connections() if c.get("pid") == T.tcp["pid"] and c.get("resource") == "echo"]
    check(tls, "no echo connection of pid %d" % T.tcp["pid"])
    out = inert(ctl("replay", tls[0]["id"], "--speed", "0"), "replay (tls)")
    head, end = out.splitlines()[0], out.splitlines()[-1]
    check(head.startswith("-- session %d: %s/%s" % (tls[0]["id"], T.cg.rel, CG_SHOWN)),
          "replay: the header does not show the cgroup escaped: %r" % head)
    if tls[0].get("exe"):
        check(EXE_SHOWN in head and "\\xFF" in head, "replay: the header does not show the exe escaped: %r" % head)
    check(SNI_SHOWN in end, "replay: the end line does not show the server name %r escaped: %r" % (SNI_SHOWN, end))
    wait_for(lambda: [c for c in T.al.connections() if c["id"] == T.pg_conn and c.get("closed_us")], 10)
    out = inert(ctl("replay", T.pg_conn, "--speed", "0"), "replay (postgres)")
    check("sql> " + SQL_EVIL_SHOWN in out, "replay: the SQL is not shown escaped: %r" % out[:2000])
    check("^[]0;owned^G\\u009B31m\\u202Egnp.exe" in out, "replay: the value is not shown escaped")
    check("sql> SELECT 1 AS one\n     -- session 1 ended" in out,
          "replay: the SQL's second line is not indented: %r" % out[:3000])
    check(not [ln for ln in out.splitlines()[1:-1] if ln.startswith("-- session")],
          "replay: an agent's line passes for replay's own: %r" % out[:3000])
    cast = subprocess.run([lib.AIRLOCKCTL, "-s", T.al.sock, "export", str(tls[0]["id"]), "--format", "asciicast"],
                          capture_output=True, timeout=30)
    check(cast.returncode == 0, "export asciicast: %r" % cast.stderr[-300:])
    lines = cast.stdout.splitlines()
    for ln in lines:
        ascii_json(ln, "asciicast")
    text = "".join(json.loads(ln)[2] for ln in lines[1:])
    inert(text.replace("\r\n", "\n").encode(), "asciicast text")
    check(SNI_SHOWN in text and CG_SHOWN in text, "asciicast: the fields are not shown escaped: %r" % text)
    for what in ("export", T.pg_conn, "--format", "jsonl"), ("audit", "export", "--since", "1h"):
        r = subprocess.run([lib.AIRLOCKCTL, "-s", T.al.sock] + [str(a) for a in what], capture_output=True, timeout=60)
        check(r.returncode == 0, "%s: %r" % (" ".join(map(str, what)), r.stderr[-300:]))
        for ln in r.stdout.splitlines():
            ascii_json(ln, " ".join(map(str, what)))


def case_still_up():
    need_up()
    T.al.check_log_clean()


# ---------------------------------------------------------------- main

def setup():
    t = T
    t.tmp, t.home, ca_dir = lib.make_workdir()
    # The agent's executable: python3, copied to a name full of escapes.
    os.mkdir(os.path.join(t.tmp, "bin"), 0o755)
    t.exe = os.path.join(t.tmp, "bin", EXE_NAME)
    shutil.copy2(os.path.realpath(lib.PY), t.exe)
    t.pg = pgcluster.Cluster(PG_ADDR, max_connections=20)
    t.pg.start(SETUP_SQL)
    t.echo_port = lib.free_port((ECHO_ADDR,))
    lib.start_echo_server(ECHO_ADDR, t.echo_port)
    secrets = pgcluster.write_secrets(os.path.join(t.tmp, "secrets.conf"), [("pgcred", "app", APP_PW)])
    t.rsock = os.path.join(t.tmp, "review.sock")
    settings = ['secrets "%s"' % secrets, 'ca_dir "%s"' % ca_dir, 'review_socket "%s"' % t.rsock]
    resources = [pgcluster.pg_resource("pg", PG_ADDR, t.pg.port, rules=["rule review kind delete timeout 120s"]),
                 ("echo", [ECHO_ADDR], [t.echo_port])]
    t.al = lib.Airlock(t.tmp, resources, settings=settings)
    r = subprocess.run([lib.AIRLOCKD, "-n", "-c", t.al.conf], capture_output=True, text=True, timeout=20)
    check(r.returncode == 0, "airlockd -n: %s" % (r.stderr.strip() or r.stdout.strip()))
    t.al.start()
    t.cg = lib.TestCgroup()
    # The agent's own cgroup under the pinned one: every byte the kernel takes in a name.
    try:
        os.mkdir(os.path.join(t.cg.path, "a\nb"))
        note("the kernel took a newline in a cgroup name")
    except OSError as e:
        note("the kernel refuses a newline in a cgroup name (%s)" % e.strerror)
    t.evil_cg = os.path.join(t.cg.path, CG_NAME)
    os.mkdir(t.evil_cg)
    t.evil_run = EvilCgroup(t.evil_cg).run
    r = t.al.ctl("pin", t.cg.rel)
    check(r.returncode == 0, "pin %s: %s" % (t.cg.rel, r.stderr.strip()))
    r = subprocess.run([lib.AIRLOCKCTL, "-s", t.al.sock, "user", "add", REVIEWER[0], "--uid", str(REVIEWER[1])],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "user add: %s" % r.stderr.strip())
    note("postgres %s:%d, echo %s:%d, cgroup %s, tmp %s" % (PG_ADDR, t.pg.port, ECHO_ADDR, t.echo_port,
                                                            t.cg.rel, t.tmp))


CASES = [
    ("the agent (escapes in its exe, cgroup and comm) connects, is refused UDP, runs SQL", case_agent),
    ("connections: cgroup and comm escaped; --json ASCII", case_connections),
    ("refusals: cgroup and comm escaped; --json ASCII", case_refusals),
    ("statements: SQL escaped on one line, cut at 100 characters between characters", case_statements),
    ("pending and show: a held DELETE's cgroup, exe and command escaped (show: the command's lines "
     "indented)", case_pending_show),
    ("policy test: changed decisions with the agent's cgroup and SQL escaped", case_policy_test),
    ("replay, export asciicast/jsonl, audit export: header, SQL, values, server name as text", case_replay),
    ("airlockd log has no sanitizer or assert lines", case_still_up),
]


def main():
    res = lib.Results()
    if os.geteuid() != 0:
        res.not_ok("cli output: test_cli_output", "needs root (loads BPF, creates a cgroup, runs postgres)")
        return 1
    missing = [b for b in (lib.AIRLOCKD, lib.AIRLOCKCTL, SETPRIV) if not os.access(b, os.X_OK)] + \
        pgcluster.missing_tools()
    if missing:
        res.not_ok("cli output: test_cli_output", "missing %s (make all; scripts/deps.sh)" % missing)
        return 1
    return lib.run_suite(res, setup, CASES, lambda: T.al,
                         lambda: [T.cg and T.cg.path, T.al and T.al.pin_root, T.pg and T.pg.dir, T.tmp],
                         prefix="cli output: ", log_tail=30)


if __name__ == "__main__":
    sys.exit(main())
