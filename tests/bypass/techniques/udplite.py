"""Technique: a UDP-Lite socket (SOCK_DGRAM, protocol 136): a datagram protocol the UDP hooks might not expect.

Expected in a pinned cgroup: socket() refused (socket_type).
"""
import socket
import sys
import common

IPPROTO_UDPLITE = 136


def attempt():
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, IPPROTO_UDPLITE)
    tok = common.token()
    s.sendto(("ping %s\n" % tok).encode(), (host, port))
    common.udp_wait_answer(s, tok)
    return {"token": tok}


common.main(attempt)
