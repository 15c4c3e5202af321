"""Technique: talk to airlockd's control socket (unix, 0600 root) and ask for its status.

argv: SOCKET. Success is a {"ok": true} answer from the daemon.
"""
import json
import socket
import sys
import common


def attempt():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(common.TIMEOUT)
    s.connect(sys.argv[1])
    s.sendall(b'{"cmd": "status"}\n')
    line = common.readline(s, 1 << 20)
    try:
        answer = json.loads(line)
    except ValueError:
        raise OSError(71, "not JSON: %r" % line[:60])
    if not answer.get("ok"):
        raise OSError(13, "daemon refused: %s" % answer.get("error"))
    return {}


common.main(attempt)
