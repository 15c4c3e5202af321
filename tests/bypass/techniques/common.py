"""Shared bits of the bypass techniques: the one-line JSON result and a TCP/UDP exchange with the test servers.

A technique prints exactly one JSON line on stdout:
  {"ok": true, ...}                              the attempt reached its target
  {"ok": false, "errno": N, "error": "...", ...} it did not, and why
Extra keys (pid, local address, token) help the driver match audit rows.
The test servers answer "ping TOKEN\n" with "pong TOKEN\n" (TCP: per line;
UDP: per datagram), so reaching the target means reading the answer back.
"""

import errno
import json
import os
import socket
import sys

TIMEOUT = 3.0


def emit(ok, **kw):
    d = {"ok": bool(ok), "pid": os.getpid()}
    d.update(kw)
    sys.stdout.write(json.dumps(d) + "\n")
    sys.stdout.flush()


def error_fields(e):
    if isinstance(e, socket.timeout) or (isinstance(e, OSError) and e.errno is None):
        return {"errno": errno.ETIMEDOUT, "error": "timed out"}
    return {"errno": e.errno, "error": e.strerror or str(e)}


def main(fn):
    """Runs fn(); a dict it returns is the success result, an OSError the failure."""
    try:
        extra = fn() or {}
    except OSError as e:
        emit(False, **error_fields(e))
        return
    ok = extra.pop("ok", True)
    emit(ok, **extra)


def token():
    return "%d-%s" % (os.getpid(), os.urandom(4).hex())


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def readline(sock, limit=4096):
    buf = b""
    while not buf.endswith(b"\n") and len(buf) < limit:
        b = sock.recv(limit - len(buf))
        if not b:
            raise OSError(errno.ECONNRESET, "connection closed before the answer")
        buf += b
    return buf.decode(errors="replace").strip()


def ping(sock, tok):
    """One request/answer on a connected TCP socket."""
    sock.sendall(("ping %s\n" % tok).encode())
    answer = readline(sock)
    if answer != "pong " + tok:
        raise OSError(errno.EPROTO, "unexpected answer %r" % answer[:60])


def addr_str(a):
    return [a[0], a[1]]


def tcp_exchange(host, port, family=None, timeout=TIMEOUT):
    """connect(), one ping; returns what the driver needs to match the audit row."""
    s = socket.socket(family or family_of(host), socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        tok = token()
        local, peer = s.getsockname(), s.getpeername()
        ping(s, tok)
        return {"token": tok, "local": addr_str(local), "peer": addr_str(peer)}
    finally:
        s.close()


def udp_wait_answer(s, tok, timeout=1.5):
    s.settimeout(timeout)
    data = s.recv(2048)
    if data.decode(errors="replace").strip() != "pong " + tok:
        raise OSError(errno.EPROTO, "unexpected answer %r" % data[:60])
