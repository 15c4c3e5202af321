"""Technique: connect() a UDP socket to an allowed resolver (permitted), then sendto() another address on it.

argv: RESOLVER HOST PORT. Expected in a pinned cgroup: the connect passes,
the sendto with an address is refused (udp_denied). A connected socket
drops answers from anyone but its peer, so the server is asked to answer to
a second, unconnected socket ("ping TOKEN REPLYPORT").
"""
import socket
import sys
import common


def attempt():
    resolver, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((resolver, 53))
    tok = common.token()
    s.sendto(("ping %s %d\n" % (tok, rx.getsockname()[1])).encode(), (host, port))
    common.udp_wait_answer(rx, tok)
    return {"token": tok}


common.main(attempt)
