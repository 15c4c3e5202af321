"""Technique: TCP_FASTOPEN_CONNECT - connect() returns at once and the SYN leaves with the first write.

Expected: steered like any connect() (the hook runs in connect(), before any packet).
"""
import socket
import sys
import common

TCP_FASTOPEN_CONNECT = 30


def attempt():
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(common.family_of(host), socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
        s.connect((host, port))
        tok = common.token()
        s.sendall(("ping %s\n" % tok).encode())
        s.settimeout(common.TIMEOUT)
        local = s.getsockname()
        answer = common.readline(s)
        if answer != "pong " + tok:
            raise OSError(71, "unexpected answer %r" % answer[:60])
        return {"token": tok, "local": common.addr_str(local)}
    finally:
        s.close()


common.main(attempt)
