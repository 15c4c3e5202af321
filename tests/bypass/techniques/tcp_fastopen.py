"""Technique: TCP Fast Open, sendto(data, MSG_FASTOPEN, addr) with no connect() (expected: steered)."""
import socket
import sys
import common


def attempt():
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(common.family_of(host), socket.SOCK_STREAM)
    try:
        tok = common.token()
        # Blocking, so sendto() waits for the handshake (a timeout makes the
        # socket non-blocking and the first sendto() returns EINPROGRESS).
        s.sendto(("ping %s\n" % tok).encode(), socket.MSG_FASTOPEN, (host, port))
        s.settimeout(common.TIMEOUT)
        local = s.getsockname()
        answer = common.readline(s)
        if answer != "pong " + tok:
            raise OSError(71, "unexpected answer %r" % answer[:60])
        return {"token": tok, "local": common.addr_str(local)}
    finally:
        s.close()


common.main(attempt)
