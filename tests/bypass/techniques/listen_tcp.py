"""Technique: be the server - listen on TCP and let someone outside connect in (a reverse channel).

argv: HOST PORT WAIT [BACKLOG]. Prints {"phase": "listening"}, then the
result: ok = a client's connection was accepted ("accepted") and its line
("line") answered. An accepted socket belongs to the listener's
cgroup, so in a pinned cgroup the egress backstop drops the SYN-ACK. With
BACKLOG 0 the second client's SYN finds the SYN queue full and gets a SYN
cookie, sent with no socket (past the egress hook): only an ingress filter
keeps that handshake from completing.
"""
import json
import os
import socket
import struct
import sys
import common


def attempt():
    host, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    backlog = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    s = socket.socket(common.family_of(host), socket.SOCK_STREAM)
    s.bind((host, port))
    s.listen(backlog)
    print(json.dumps({"phase": "listening", "pid": os.getpid()}), flush=True)
    s.settimeout(wait)
    c, peer = s.accept()
    r = {"accepted": True, "peer": common.addr_str(peer)}
    if backlog == 0:
        # Close with a reset: in a pinned cgroup no orphan should go on retransmitting into
        # the driver's later cases.
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.settimeout(common.TIMEOUT)
    try:
        line = common.readline(c)
        r["line"] = line[:80]
        c.sendall(("pong %s\n" % line.split()[-1]).encode())
    except OSError as e:
        r.update({"ok": False}, **common.error_fields(e))
    return r


common.main(attempt)
