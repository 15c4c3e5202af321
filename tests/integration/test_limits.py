#!/usr/bin/python3
"""Session limits: max_sessions counts every session (PostgreSQL and HTTPS ones terminated by
airlockd as well as relayed TCP), and airlockd raises its file descriptor limit to fit
max_sessions, or, where it may not, takes only as many sessions as the limit allows and says
so, instead of failing accept() at some point under load.

One agent holds at most max_sessions_per_agent of them: unset, half of what airlockd takes at
once, so no one agent takes every session.

Run as root: /usr/bin/python3 tests/integration/test_limits.py
Prints `ok - limits: NAME` / `not ok - limits: NAME: why` per case and exits 1 if any failed.

Each case starts its own airlockd (the limits are read at start) with a postgres resource on
127.0.0.62 that nothing listens behind: a session is held open by airlockd while it waits for
the agent's StartupMessage, which the agent never sends. The agent is a python process in
this run's cgroup (a second agent in a second one); a connection airlockd refuses is reset at
once, an accepted one stays silent. Everything is removed on any exit; only processes this test started are stopped.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import pgcluster  # noqa: E402
from lib import check, note, wait_for  # noqa: E402

ADDR = "127.0.0.62"
PORT = 5999
PRLIMIT = "/usr/bin/prlimit"
SETPRIV = "/usr/bin/setpriv"

# Opens N connections to the resource one after the other and prints one JSON line: which
# airlockd reset at once and which it holds open (nothing to read 0.5 s after the last).
AGENT = r'''
import json, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = []
for i in range(n):
    try:
        socks.append(socket.create_connection((host, port), timeout=5))
    except ConnectionResetError:
        socks.append(None)    # reset at accept, before connect() returned: as fast as airlockd is
    time.sleep(0.01)          # airlockd takes them in this order
time.sleep(0.5)
verdict = []
for s in socks:
    if s is None:
        verdict.append("reset")
        continue
    s.setblocking(False)
    try:
        verdict.append("closed" if not s.recv(1) else "data")
    except BlockingIOError:
        verdict.append("open")
    except ConnectionResetError:
        verdict.append("reset")
print(json.dumps(verdict), flush=True)
sys.stdin.readline()          # hold the sessions until the test has looked
'''

T = type("T", (), {})()
T.al = None


def setup():
    T.tmp = lib.make_tempdir()
    os.chmod(T.tmp, 0o755)
    T.secrets = pgcluster.write_secrets(os.path.join(T.tmp, "secrets.conf"), [("pgcred", "u", "p")])
    T.cg = lib.TestCgroup()
    T.cg2 = lib.TestCgroup("-peer")
    T.n = 0


def daemon(max_sessions, wrap=None, per_agent=None):
    """A fresh airlockd for one case (max_sessions and the process limits are start-time
    settings); wrap: argv put before airlockd's (prlimit, setpriv); per_agent:
    max_sessions_per_agent (None: unset, half of the sessions taken at once)."""
    if T.al is not None and T.al.running():
        T.al.stop()
    T.n += 1
    d = os.path.join(T.tmp, "d%d" % T.n)
    os.mkdir(d)
    binaries = (lib.AIRLOCKD, lib.AIRLOCKCTL)
    if wrap:
        w = os.path.join(d, "airlockd-wrapped")
        with open(w, "w") as f:
            f.write("#!/bin/sh\nexec %s %s \"$@\"\n" % (" ".join(wrap), lib.AIRLOCKD))
        os.chmod(w, 0o755)
        binaries = (w, lib.AIRLOCKCTL)
    res = pgcluster.pg_resource("db", ADDR, PORT)
    T.al = lib.Airlock(d, [res], settings=['secrets "%s"' % T.secrets, 'ca_dir "%s/ca"' % d,
                                           "max_sessions %d" % max_sessions]
                       + (["max_sessions_per_agent %d" % per_agent] if per_agent else []), binaries=binaries)
    T.al.start()
    # Pins outlive a daemon: the next one of this run takes the cgroups over from the pin root.
    if "pinned:  0 cgroups" in T.al.banner:
        for cg in (T.cg, T.cg2):
            r = T.al.ctl("pin", cg.path)
            check(r.returncode == 0, "pin: %s" % r.stderr.strip())
    return T.al


def agent(n, cg=None):
    """Runs the agent (in cg, else the first cgroup) with n connections; returns (its verdicts,
    the process, still holding them)."""
    p = (cg or T.cg).popen(["/usr/bin/python3", "-c", AGENT, ADDR, str(PORT), str(n)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    check(line.strip(), "the agent printed nothing (exit %s)" % p.poll())
    return json.loads(line), p


def release(p):
    try:
        p.stdin.write("done\n")
        p.stdin.flush()
    except OSError:
        pass
    lib.stop_process(p)


def nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return -1


def refusals(detail):
    """Connections airlockd refused for a limit (rows with reason limit), whose detail has detail."""
    return [r for r in T.al.db_rows("reason = 'limit'") if detail in (r.get("detail") or "")]


def case_counts_terminated():
    """max_sessions 3: three PostgreSQL sessions are held, the fourth agent connection is reset
    and recorded as refused (limit); once one session ends, a new one is taken again. (One agent
    may hold all three here: max_sessions_per_agent 3.)"""
    al = daemon(3, per_agent=3)
    check("limits:  3 sessions at once" in al.banner, "banner: %r" % al.banner)
    v, p = agent(4)
    try:
        check(v == ["open", "open", "open", "reset"], "connections: %r" % v)
        st = al.status()
        check(st.get("pg_live") == 3 and st.get("max_sessions") == 3, "status: pg_live %r max_sessions %r"
              % (st.get("pg_live"), st.get("max_sessions")))
        text = al.ctl("status").stdout
        check("sessions: 3 live (0 relayed, 3 postgres, 0 https), at most 3 at once" in text,
              "airlockctl status says: %r" % text)
        rows = wait_for(lambda: refusals("max_sessions reached"), 5)
        check(len(rows) == 1, "refused connections recorded: %r" % rows)
    finally:
        release(p)
    check(wait_for(lambda: al.status().get("pg_live") == 0, 10), "sessions did not end: %r" % al.status())
    v, p = agent(1)
    release(p)
    check(v == ["open"], "after the sessions ended, a new one: %r" % v)


def case_limit_raised():
    """Started with RLIMIT_NOFILE 64 (hard limit 2000, as a login shell or a systemd unit has
    a low soft and a high hard limit), airlockd raises it to fit max_sessions 40 (6 descriptors
    a session, 256 for the rest) and takes all 40."""
    al = daemon(40, [PRLIMIT, "--nofile=64:2000"], per_agent=40)
    want = 40 * 6 + 256
    have = nofile(al.proc.pid)
    check(have >= want, "airlockd's open-files limit is %d, max_sessions 40 needs %d" % (have, want))
    check("limits:  40 sessions at once" in al.banner, "banner: %r" % al.banner)
    st = al.status()
    check(st.get("fd_limit", 0) >= want and st.get("max_sessions") == 40, "status: %r" % st)
    v, p = agent(40)
    release(p)
    check(v == ["open"] * 40, "connections: %r" % v)
    note("open-files limit raised from 64 to %d" % have)


def case_limit_capped():
    """Where airlockd may not raise the limit (hard RLIMIT_NOFILE 280, no CAP_SYS_RESOURCE),
    max_sessions 50 cannot be met: it says at start how many it takes, (280 - 256) / 6 = 4,
    and that one agent may hold half of them, 2 (max_sessions_per_agent unset); an agent's
    third connection is refused for that, another agent's two are taken and its third is
    refused for the descriptor limit, each with its reason; airlockd stays healthy."""
    al = daemon(50, [PRLIMIT, "--nofile=280:280", SETPRIV, "--bounding-set=-sys_resource", "--"])
    check(nofile(al.proc.pid) == 280, "limit %d, want 280 (the wrapper's)" % nofile(al.proc.pid))
    check("limits:  4 sessions at once (280 file descriptors), 2 per agent (default: half)" in al.banner,
          "banner: %r" % al.banner)
    check(al.status().get("max_sessions_per_agent") == 2, "status: %r" % al.status())
    warn = [l for l in al.log_lines() if "max_sessions 50 needs 556 file descriptors" in l]
    check(warn, "no warning in the log: %r" % al.log_tail())
    v, p = agent(3)
    v2, p2 = agent(3, T.cg2)
    try:
        check(v == ["open", "open", "reset"] and v2 == ["open", "open", "reset"], "connections: %r %r" % (v, v2))
        rows = wait_for(lambda: refusals("file descriptor limit"), 5)
        check(len(rows) == 1 and rows[0]["cgroup_path"] == T.cg2.rel, "refusals for the limit: %r" % rows)
        rows = refusals("max_sessions_per_agent (2: half of the 4 sessions at once)")
        check(len(rows) == 1 and rows[0]["cgroup_path"] == T.cg.rel, "refusals for one agent: %r" % rows)
        check(al.status().get("pg_live") == 4, "status: %r" % al.status())
    finally:
        release(p)
        release(p2)
    check(al.running(), "airlockd stopped")


def case_per_agent_default():
    """max_sessions 10 and no max_sessions_per_agent (a fixed default of 2000 did nothing here:
    one agent could take all ten): one agent holds 5, half; its sixth connection is refused
    (limit, recorded with the reason), while another agent still gets in. The banner and
    airlockctl status say 5 per agent."""
    al = daemon(10)
    check("limits:  10 sessions at once" in al.banner and ", 5 per agent (default: half)" in al.banner,
          "banner: %r" % al.banner)
    v, p = agent(6)
    try:
        check(v == ["open"] * 5 + ["reset"], "one agent's six connections: %r" % v)
        v2, p2 = agent(1, T.cg2)
        release(p2)
        check(v2 == ["open"], "another agent's connection: %r" % v2)
        rows = wait_for(lambda: refusals("max_sessions_per_agent (5: half of the 10 sessions at once) "
                                         "reached by this agent"), 5)
        check(len(rows) == 1 and rows[0]["cgroup_path"] == T.cg.rel, "refusals: %r" % rows)
        st = al.status()
        check(st.get("max_sessions_per_agent") == 5 and st.get("max_sessions") == 10, "status: %r" % st)
        text = al.ctl("status").stdout
        check("at most 10 at once (" in text and "), 5 per agent\n" in text, "airlockctl status says: %r" % text)
    finally:
        release(p)


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def case_accept_backs_off():
    """With its descriptors used up (here by 300 idle clients of the review socket), an agent's
    connection waits in the kernel's queue: airlockd pauses accepting instead of spinning on
    EMFILE (its CPU stays low, one warning a second), and takes the connection once
    descriptors are free again."""
    import socket
    al = T.al
    check(al is not None and al.running(), "no daemon from the previous case")
    path = os.path.join(os.path.dirname(al.sock), "review.sock")
    acc0 = al.status().get("accepted", 0)
    held = []
    try:
        for _ in range(300):
            c = socket.socket(socket.AF_UNIX)
            c.connect(path)
            held.append(c)
        wait_for(lambda: any("Too many open files" in l for l in al.log_lines()), 2)
        p = T.cg.popen(["/usr/bin/python3", "-c", AGENT, ADDR, str(PORT), "1"],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        t0 = cpu_s(al.proc.pid)
        import time
        time.sleep(1.5)
        used = cpu_s(al.proc.pid) - t0
        warns = [l for l in al.log_lines() if "accept: Too many open files" in l]
        check(warns, "no accept warning in the log: %r" % al.log_tail())
        check(used < 0.5, "airlockd used %.2f s of CPU in 1.5 s while out of descriptors" % used)
        check(len(warns) <= 4, "%d accept warnings in 1.5 s" % len(warns))
    finally:
        for c in held:
            c.close()
    # Descriptors free again: the connection that waited in the queue is taken.
    ok = wait_for(lambda: al.status().get("accepted", 0) == acc0 + 1, 5)
    release(p)
    check(ok, "the waiting connection was not taken: accepted %r, before %d"
          % (al.status().get("accepted"), acc0))
    check(al.running(), "airlockd stopped")
    note("out of descriptors: %.2f s CPU in 1.5 s, %d warning line(s)" % (used, len(warns)))


def main():
    res = lib.Results()
    cases = [("max_sessions counts terminated sessions; the next is refused (limit)", case_counts_terminated),
             ("the open-files limit is raised to fit max_sessions", case_limit_raised),
             ("max_sessions_per_agent unset: one agent holds half of max_sessions, another still gets in",
              case_per_agent_default),
             # the last daemon before case_accept_backs_off, which needs its low descriptor limit
             ("where it cannot be raised, fewer sessions are taken, and that is said; one agent holds "
              "half of them", case_limit_capped),
             ("out of descriptors, accepting pauses instead of spinning", case_accept_backs_off),
             ("airlockd log has no sanitizer or assert lines", lambda: T.al.check_log_clean())]
    return lib.run_suite(res, setup, cases, lambda: T.al,
                         lambda: [getattr(T, "cg", None) and T.cg.path, getattr(T, "cg2", None) and T.cg2.path,
                                  T.al and T.al.pin_root], prefix="limits: ")


if __name__ == "__main__":
    sys.exit(main())
