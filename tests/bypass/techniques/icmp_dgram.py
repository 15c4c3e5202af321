"""Technique: an ICMP echo "ping socket" (SOCK_DGRAM, IPPROTO_ICMP), which needs no privilege when
net.ipv4.ping_group_range includes the caller's group.

Expected in a pinned cgroup: socket() refused (socket_type). argv: HOST
(an IPv6 HOST makes it an ICMPv6 echo socket). Success is the echo reply.
"""
import socket
import struct
import sys
import common


def attempt():
    host = sys.argv[1]
    v6 = ":" in host
    if v6:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    s.settimeout(2)
    payload = common.token().encode()
    request, reply = (128, 129) if v6 else (8, 0)
    s.sendto(struct.pack("!BBHHH", request, 0, 0, 0, 1) + payload, (host, 0))
    while True:
        data = s.recv(2048)
        if data[0] == reply and data[8:] == payload:
            return {}


common.main(attempt)
