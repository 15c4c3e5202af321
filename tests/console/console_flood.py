"""Floods for test_console.py: what a local user (this process's uid) can throw at the console. Prints JSON lines.

Usage: console_flood.py MODE HOST PORT NET ARGS...
  login N SECS THREADS PREFIX  N logins (POST /api/v1/login) with fresh names PREFIX-i and a wrong
                               password, spread over SECS seconds by THREADS threads, each from
                               another source address 127.NET.x.y. Prints {"codes": {status: n},
                               "errors": {status: [messages]}, "secs": s}.
  try NAME PASSWORD            one login from 127.NET.0.1: prints {"status", "error", "secs"}.
  idle N SECS                  N connections from 127.NET.x.y that send nothing, held for SECS
                               seconds; one the server closes is opened again (from another
                               address). Prints {"opened": n} once the first N were tried, then
                               {"opens": n, "refused": n, "closed": n, "held_min": n, "held_max": n}.
Only loopback addresses are used.
"""

import json
import socket
import sys
import threading
import time
from http.client import HTTPConnection


def out(obj):
    print(json.dumps(obj), flush=True)


def source(net, i):
    return "127.%d.%d.%d" % (net, 1 + (i // 250) % 250, 1 + i % 250)


def mode_login(host, port, net, n, secs, threads, prefix):
    n, secs, threads = int(n), float(secs), int(threads)
    codes, errors = {}, {}
    lock = threading.Lock()
    t0 = time.monotonic()

    def one(i):
        body = json.dumps({"name": "%s-%d" % (prefix, i), "password": "not it %d" % i})
        try:
            c = HTTPConnection(host, port, timeout=30, source_address=(source(net, i), 0))
            c.request("POST", "/api/v1/login", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            st, text = r.status, r.read().decode(errors="replace")
            c.close()
            try:
                msg = json.loads(text).get("error", "")
            except ValueError:
                msg = text[:100]
        except OSError as e:
            st, msg = "error", repr(e)[:100]
        with lock:
            codes[str(st)] = codes.get(str(st), 0) + 1
            seen = errors.setdefault(str(st), [])
            if msg not in seen and len(seen) < 5:
                seen.append(msg)

    def worker(k):
        for i in range(k, n, threads):
            wait = t0 + secs * i / n - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            one(i)

    ths = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    out({"codes": codes, "errors": errors, "secs": round(time.monotonic() - t0, 2)})


def mode_try(host, port, net, name, password):
    t0 = time.monotonic()
    c = HTTPConnection(host, port, timeout=30, source_address=(source(net, 0), 0))
    c.request("POST", "/api/v1/login", json.dumps({"name": name, "password": password}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    text = r.read().decode(errors="replace")
    secs = time.monotonic() - t0
    c.close()
    try:
        msg = json.loads(text).get("error")
    except ValueError:
        msg = text[:200]
    out({"status": r.status, "error": msg, "secs": secs})


def mode_idle(host, port, net, n, secs):
    n, secs = int(n), float(secs)
    socks, next_i = [], 0
    opens = refused = closed = 0
    held_min, held_max = None, 0

    def open_one():
        nonlocal next_i, opens, refused
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2)
        s.bind((source(net, next_i), 0))
        next_i += 1
        try:
            s.connect((host, port))
        except OSError:
            refused += 1
            s.close()
            return
        s.setblocking(False)
        opens += 1
        socks.append(s)

    def gone(s):
        try:
            return s.recv(1) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    for _ in range(n):
        open_one()
    out({"opened": len(socks)})
    end = time.monotonic() + secs
    while time.monotonic() < end:
        time.sleep(0.2)
        for s in [s for s in socks if gone(s)]:
            closed += 1
            socks.remove(s)
            s.close()
        held = len(socks)
        held_min = held if held_min is None else min(held_min, held)
        held_max = max(held_max, held)
        for _ in range(n - len(socks)):
            open_one()
    for s in socks:
        s.close()
    out({"opens": opens, "refused": refused, "closed": closed, "held_min": held_min, "held_max": held_max})


def main():
    mode, host, port, net = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    {"login": mode_login, "try": mode_try, "idle": mode_idle}[mode](host, port, net, *sys.argv[5:])


if __name__ == "__main__":
    main()
