"""Technique: dial airlockd's steer listener directly, to talk to it without a kernel identity record.

argv: HOST PORT, where HOST is 127.0.0.1, ::1 or ::ffff:127.0.0.1. Success is
the TCP handshake with the listener (airlockd then resets an unsteered
connection as no_identity, so there is nothing to ping; ECONNRESET, which
only follows an established handshake, counts as reaching it).
"""
import socket
import sys
import common


def attempt():
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(common.family_of(host), socket.SOCK_STREAM)
    s.settimeout(common.TIMEOUT)
    try:
        try:
            s.connect((host, port))
        except ConnectionResetError:
            return {"reset": True}
        return {"local": common.addr_str(s.getsockname())}
    finally:
        s.close()


common.main(attempt)
