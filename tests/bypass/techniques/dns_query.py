"""Technique: a DNS query (UDP/53) to a given server.

argv: SERVER. To a server that is not a configured resolver, expected:
dns_resolver. To the configured resolver: allowed (the positive control).
Success is a DNS answer with our query id.
"""
import os
import socket
import struct
import sys
import common


def attempt():
    server = sys.argv[1]
    qid = struct.unpack("!H", os.urandom(2))[0]
    name = b"".join(bytes([len(p)]) + p for p in b"airlock-bypass.test".split(b".")) + b"\0"
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)
    s = socket.socket(common.family_of(server), socket.SOCK_DGRAM)
    s.settimeout(1.5)
    s.sendto(query, (server, 53))
    data = s.recv(2048)
    if len(data) < 12 or struct.unpack("!H", data[:2])[0] != qid:
        raise OSError(71, "not an answer to our query")
    return {"qid": qid}


common.main(attempt)
