"""Technique: a Multipath TCP socket (SOCK_STREAM, IPPROTO_MPTCP), whose subflows the kernel makes itself.

Expected in a pinned cgroup: socket() refused (socket_type). Outside, MPTCP
falls back to plain TCP against an ordinary server and the ping works.
"""
import socket
import sys
import common

IPPROTO_MPTCP = 262


def attempt():
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(common.family_of(host), socket.SOCK_STREAM, IPPROTO_MPTCP)
    s.settimeout(common.TIMEOUT)
    try:
        s.connect((host, port))
        tok = common.token()
        common.ping(s, tok)
        return {"token": tok, "local": common.addr_str(s.getsockname())}
    finally:
        s.close()


common.main(attempt)
