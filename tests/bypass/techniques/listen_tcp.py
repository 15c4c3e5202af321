"""Technique: be the server - listen on TCP and let someone outside connect in (a reverse channel).

argv: HOST PORT WAIT. Prints {"phase": "listening"}, then the result:
ok = a client's connection was accepted and its line answered. An accepted
socket belongs to the listener's cgroup, so in a pinned cgroup the egress
backstop drops the SYN-ACK and no handshake completes.
"""
import json
import os
import socket
import sys
import common


def attempt():
    host, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    s = socket.socket(common.family_of(host), socket.SOCK_STREAM)
    s.bind((host, port))
    s.listen(4)
    print(json.dumps({"phase": "listening", "pid": os.getpid()}), flush=True)
    s.settimeout(wait)
    c, peer = s.accept()
    c.settimeout(common.TIMEOUT)
    line = common.readline(c)
    c.sendall(("pong %s\n" % line.split()[-1]).encode())
    return {"peer": common.addr_str(peer)}


common.main(attempt)
