"""Technique: be the server on UDP - receive a datagram from outside and answer it.

argv: HOST PORT WAIT. Prints {"phase": "listening"}, then the result with
"received" (did a datagram come in?) and ok = the answer was sent. In a
pinned cgroup the ingress program drops the datagram (only DNS answers from
a resolver come in), so nothing is received; an answer would be a UDP send
like any other (udp_denied).
"""
import json
import os
import socket
import sys
import common


def attempt():
    host, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, port))
    print(json.dumps({"phase": "listening", "pid": os.getpid()}), flush=True)
    s.settimeout(wait)
    data, src = s.recvfrom(2048)
    words = data.decode(errors="replace").split()
    r = {"received": True, "data": data[:60].decode(errors="replace")}
    try:
        s.sendto(("pong %s\n" % words[-1]).encode(), src)
    except OSError as e:
        r.update({"ok": False}, **common.error_fields(e))
    return r


common.main(attempt)
