"""Technique: while airlockd is down, listen on its steer address (127.0.0.1:PORT) and catch
what the kernel steers there - pinned agents' connections, which still carry
their original destination in getpeername().

argv: PORT WAIT. Prints {"phase": "listening"} once bound, then the result:
ok = it accepted a steered connection and read the agent's bytes (and
answered them as the real server would).
"""
import json
import os
import socket
import sys
import common


def attempt():
    port, wait = int(sys.argv[1]), float(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Only so that our TIME_WAIT leftovers do not keep airlockd from binding
    # again for a minute after the test (a real squatter would not care).
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    print(json.dumps({"phase": "listening", "pid": os.getpid()}), flush=True)
    s.settimeout(wait)
    c, peer = s.accept()
    c.settimeout(common.TIMEOUT)
    line = common.readline(c)
    words = line.split()
    if len(words) >= 2 and words[0] == "ping":
        c.sendall(("pong %s\n" % words[1]).encode())
    return {"peer": common.addr_str(peer), "data": line[:80]}


common.main(attempt)
