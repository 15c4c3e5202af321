"""Technique: unconnected UDP sendmsg() with an address, from an IPv6 socket to a v4-mapped address (sendmsg6 path)."""
import socket
import sys
import common


def attempt():
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    tok = common.token()
    s.sendmsg([("ping %s\n" % tok).encode()], [], 0, ("::ffff:" + host, port))
    common.udp_wait_answer(s, tok)
    return {"token": tok}


common.main(attempt)
