"""Technique: UDP/443, what an HTTP/3 (QUIC) client sends first (expected: quic_denied, so it falls back to TCP)."""
import socket
import sys
import common


def attempt():
    host = sys.argv[1]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tok = common.token()
    s.sendto(("ping %s\n" % tok).encode(), (host, 443))
    common.udp_wait_answer(s, tok)
    return {"token": tok}


common.main(attempt)
