"""Technique: a flood of refused UDP sends, to fill the audit store.

argv: HOST PORT N. Expected in a pinned cgroup: every send refused and
counted, audit rows rate-limited. ok = any datagram went out.
"""
import socket
import sys
import common


def attempt():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    refused = sent = 0
    last = None
    for _ in range(n):
        try:
            s.sendto(b"flood\n", (host, port))
            sent += 1
        except OSError as e:
            refused += 1
            last = e
    r = {"ok": sent > 0, "sent": sent, "refused": refused}
    if last is not None:
        r.update(common.error_fields(last))
    return r


common.main(attempt)
