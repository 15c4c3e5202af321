"""Technique (run under `unshare -Urn`): in a new user+network namespace, try the host's TCP server,
then a server of our own on the namespace's loopback.

A fresh network namespace has no route to the host's addresses, so HOST:PORT
is unreachable either way; the question is whether the namespace gives a
pinned agent anything new. The cgroup hooks are per cgroup, not per
namespace: in a pinned cgroup even the namespace's own loopback is steered
(to a steer port nobody listens on there), so "self_ok" is false.
argv: HOST PORT. ok = the host's server answered.
"""
import socket
import sys
import common


def attempt():
    host, port = sys.argv[1], int(sys.argv[2])
    r = {}
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(2)
        c.connect(srv.getsockname())
        r["self_ok"] = True
    except OSError as e:
        r["self_ok"] = False
        r["self_errno"] = e.errno
    try:
        res = common.tcp_exchange(host, port, timeout=2)
        r.update(res)
    except OSError as e:
        r.update({"ok": False}, **common.error_fields(e))
    return r


common.main(attempt)
