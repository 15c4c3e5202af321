"""Technique: a raw ICMP socket (SOCK_RAW, IPPROTO_ICMP) sending an echo request.

Needs CAP_NET_RAW (the kernel refuses it to plain users first); with the
capability, the fence must refuse socket() itself (socket_type).
argv: HOST. Success is the echo reply.
"""
import os
import socket
import struct
import sys
import time
import common


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff


def attempt():
    host = sys.argv[1]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xffff
    payload = common.token().encode()
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    pkt = struct.pack("!BBHHH", 8, 0, csum(hdr + payload), ident, 1) + payload
    s.sendto(pkt, (host, 0))
    end = time.monotonic() + 2
    s.settimeout(2)
    while time.monotonic() < end:
        data = s.recv(2048)
        ihl = (data[0] & 0x0f) * 4
        typ, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
        if typ == 0 and rid == ident and data[ihl + 8:] == payload:
            return {}
    raise OSError(110, "no echo reply")


common.main(attempt)
