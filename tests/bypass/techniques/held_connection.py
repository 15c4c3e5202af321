"""Technique: keep using a TCP connection that was opened before the fence applied to it.

argv: HOST PORT. Protocol with the driver:
  1. connects to HOST:PORT, pings once, prints {"phase": "connected", ...};
  2. waits for a line on stdin (meanwhile the driver pins our cgroup, or
     moves us into a pinned one);
  3. pings again on the same connection, then opens a new connection and
     pings on it, and prints the one-line result: ok = the second ping on
     the old connection reached the server; "new" = the new connection.
The old socket is closed with SO_LINGER 0 (a RST, not a FIN that would
be retransmitted for a while).
"""
import json
import os
import socket
import struct
import sys
import common


def v2_cgroup():
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return None


def attempt():
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(common.family_of(host), socket.SOCK_STREAM)
    s.settimeout(common.TIMEOUT)
    s.connect((host, port))
    first = common.token()
    common.ping(s, first)
    print(json.dumps({"phase": "connected", "pid": os.getpid(), "token": first, "fd": s.fileno(),
                      "local": common.addr_str(s.getsockname()), "cgroup": v2_cgroup()}), flush=True)
    sys.stdin.readline()
    r = {"cgroup": v2_cgroup(), "first": first}
    second = common.token() + "-2"
    r["token"] = second
    try:
        common.ping(s, second)
    except OSError as e:
        r.update({"ok": False}, **common.error_fields(e))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    try:
        r["new"] = common.tcp_exchange(host, port)
        r["new"]["ok"] = True
    except OSError as e:
        r["new"] = {"ok": False, **common.error_fields(e)}
    return r


common.main(attempt)
