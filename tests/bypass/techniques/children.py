"""Technique: hide behind descendants - a forked child, a fork+exec'd child, a double-forked
grandchild (reparented away from us) and a setsid() child each open their own TCP connection.

Expected in a pinned cgroup: every one is still steered (children inherit
the cgroup), each with its own pid in the audit row.
argv: HOST PORT. Prints one line: ok if every descendant reached HOST:PORT,
with each descendant's result under "children".
"""
import json
import os
import sys
import common


def one(role, host, port, wfd):
    try:
        r = common.tcp_exchange(host, port)
        r["ok"] = True
    except OSError as e:
        r = {"ok": False}
        r.update(common.error_fields(e))
    r["role"] = role
    r["pid"] = os.getpid()
    os.write(wfd, (json.dumps(r) + "\n").encode())


def forked(fn):
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        finally:
            os._exit(0)
    return pid


def attempt():
    if sys.argv[1] == "--exec-child":
        one("exec", sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return None
    host, port = sys.argv[1], int(sys.argv[2])
    rfd, wfd = os.pipe()
    os.set_inheritable(wfd, True)
    one("self", host, port, wfd)
    waits = [forked(lambda: one("fork", host, port, wfd))]

    def exec_child():
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), "--exec-child",
                                  host, str(port), str(wfd)])
    waits.append(forked(exec_child))

    def double():
        forked(lambda: one("double-fork", host, port, wfd))
    waits.append(forked(double))

    def setsid_child():
        os.setsid()
        one("setsid", host, port, wfd)
    waits.append(forked(setsid_child))
    for p in waits:
        os.waitpid(p, 0)
    os.close(wfd)
    # The grandchild may outlive its parent: read until every writer closed.
    buf = b""
    while True:
        b = os.read(rfd, 65536)
        if not b:
            break
        buf += b
    kids = [json.loads(l) for l in buf.decode().splitlines() if l.strip()]
    roles = sorted(k["role"] for k in kids)
    ok = roles == sorted(["self", "fork", "exec", "double-fork", "setsid"]) and all(k["ok"] for k in kids)
    r = {"ok": ok, "children": kids}
    if not ok:
        bad = [k for k in kids if not k["ok"]]
        r.update({"errno": bad[0]["errno"], "error": bad[0]["error"]} if bad
                 else {"errno": 0, "error": "missing descendants: %s" % roles})
    return r


if len(sys.argv) > 1 and sys.argv[1] == "--exec-child":
    attempt()
else:
    common.main(attempt)
