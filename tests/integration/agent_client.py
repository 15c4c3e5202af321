"""The agent side of the integration tests: runs inside the test cgroup, prints one JSON object.

Usage: agent_client.py MODE ARGS...
  http FAMILY HOST PORT      GET / over a plain socket; reports peer, local port, body hash
  connect FAMILY HOST PORT   connect only; reports errno name (or "ok") and elapsed seconds
  bulk HOST PORT N SIZE      N concurrent connections, each sends SIZE random bytes to an
                             echo server and checks the sha256 of what comes back
FAMILY is 4 or 6 (6 with a v4-mapped HOST such as ::ffff:127.0.0.2 dials IPv4 over AF_INET6).
"""

import errno
import hashlib
import json
import os
import selectors
import socket
import sys
import time


def family(f):
    return socket.AF_INET6 if f == "6" else socket.AF_INET


def out(obj):
    obj["pid"] = os.getpid()
    print(json.dumps(obj), flush=True)


def mode_http(fam, host, port):
    s = socket.socket(family(fam), socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, int(port)))
    local = s.getsockname()
    peer = s.getpeername()
    s.sendall(b"GET / HTTP/1.0\r\nHost: airlock-test\r\nUser-Agent: agent_client\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    out({"local_port": local[1], "peer": list(peer[:2]),
         "status": head.split(b"\r\n", 1)[0].decode("latin-1"),
         "body_len": len(body), "body_sha256": hashlib.sha256(body).hexdigest()})


def mode_connect(fam, host, port):
    s = socket.socket(family(fam), socket.SOCK_STREAM)
    s.settimeout(5)
    t0 = time.monotonic()
    try:
        s.connect((host, int(port)))
        res = "ok"
    except OSError as e:
        res = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
    except socket.timeout:
        res = "timeout"
    elapsed = time.monotonic() - t0
    s.close()
    out({"result": res, "elapsed": elapsed})


def mode_bulk(host, port, n, size):
    n, size, port = int(n), int(size), int(port)
    pool = os.urandom(2 * size)
    pv = memoryview(pool)
    sel = selectors.DefaultSelector()
    conns = []
    deadline = time.monotonic() + 50
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex((host, port))
        off = (i * 5003) % size
        c = {"i": i, "sock": s, "data": pv[off:off + size], "sent": 0, "got": 0,
             "sha_sent": hashlib.sha256(pv[off:off + size]).hexdigest(),
             "h": hashlib.sha256(), "done": False, "err": None, "port": None}
        if rc not in (0, errno.EINPROGRESS):
            c["err"] = "connect: " + errno.errorcode.get(rc, str(rc))
            c["done"] = True
            s.close()
        else:
            c["port"] = s.getsockname()[1]
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        conns.append(c)
    live = sum(1 for c in conns if not c["done"])
    while live and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=1):
            c = key.data
            s = c["sock"]
            try:
                if ev & selectors.EVENT_WRITE and c["sent"] < size:
                    c["sent"] += s.send(c["data"][c["sent"]:c["sent"] + 262144])
                    if c["sent"] == size:
                        s.shutdown(socket.SHUT_WR)
                        sel.modify(s, selectors.EVENT_READ, c)
                if ev & selectors.EVENT_READ:
                    chunk = s.recv(262144)
                    if chunk:
                        c["h"].update(chunk)
                        c["got"] += len(chunk)
                    else:
                        sel.unregister(s)
                        s.close()
                        c["done"] = True
                        live -= 1
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                c["err"] = errno.errorcode.get(e.errno, str(e))
                sel.unregister(s)
                s.close()
                c["done"] = True
                live -= 1
    res = []
    for c in conns:
        intact = c["done"] and not c["err"] and c["sent"] == size and c["got"] == size and \
            c["h"].hexdigest() == c["sha_sent"]
        res.append({"port": c["port"], "intact": intact, "sent": c["sent"], "got": c["got"],
                    "err": c["err"] or (None if c["done"] else "unfinished")})
        if not c["done"]:
            c["sock"].close()
    out({"conns": res})


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"http": mode_http, "connect": mode_connect, "bulk": mode_bulk}[mode](*args)
