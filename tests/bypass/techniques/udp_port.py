"""Technique: UDP datagram to an arbitrary port with sendto() on an IPv4 socket (expected: udp_denied).

argv: HOST PORT.
"""
import socket
import sys
import common


def attempt():
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tok = common.token()
    s.sendto(("ping %s\n" % tok).encode(), (host, port))
    common.udp_wait_answer(s, tok)
    return {"token": tok}


common.main(attempt)
