"""Technique: UDP connect() then send() with no address (the connect4 path, not sendmsg4)."""
import socket
import sys
import common


def attempt():
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    tok = common.token()
    s.send(("ping %s\n" % tok).encode())
    common.udp_wait_answer(s, tok)
    return {"token": tok}


common.main(attempt)
