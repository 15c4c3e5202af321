"""A small HTTPS/1.1 upstream for tests: records every request's exact bytes, answers by path.

usage: https_upstream.py CERT KEY LOGFILE HOST:PORT [HOST:PORT...]

Each request is appended to LOGFILE as a JSON line {"addr", "raw" (base64 of the exact bytes),
"method", "path"}. Answers: /close -> close-delimited body; /chunked -> chunked body; HEAD -> no
body; /api/v1/namespaces/NS/pods/POD -> a running Pod (a fake Kubernetes API for kubectl);
anything else -> 200 with a JSON echo. Keep-alive, one request at a time. Prints "ready".
"""

import base64
import json
import socket
import ssl
import sys
import threading

CERT, KEY, LOG = sys.argv[1:4]
ADDRS = sys.argv[4:]
lock = threading.Lock()


def record(addr, raw, method, path):
    with lock, open(LOG, "a") as f:
        f.write(json.dumps({"addr": addr, "raw": base64.b64encode(raw).decode(), "method": method,
                            "path": path}) + "\n")


def read_request(conn, buf):
    while b"\r\n\r\n" not in buf:
        d = conn.recv(65536)
        if not d:
            return None, buf
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].decode("latin-1").split(" ", 2)
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.decode("latin-1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        while len(rest) < n:
            d = conn.recv(65536)
            if not d:
                return None, b""
            rest += d
        body, rest = rest[:n], rest[n:]
    elif hdrs.get("transfer-encoding", "").lower() == "chunked":
        raw = b""
        while True:
            while b"\r\n0\r\n\r\n" not in (b"\r\n" + rest):
                d = conn.recv(65536)
                if not d:
                    return None, b""
                rest += d
            i = (b"\r\n" + rest).index(b"\r\n0\r\n\r\n") + 5
            raw, rest = rest[:i], rest[i:]
            break
        body = raw
    raw = head + b"\r\n\r\n" + body
    return (method, target, hdrs, body, raw), rest


def pod(ns, name):
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "uid": "0000-test"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            "status": {"phase": "Running",
                       "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0,
                                              "image": "busybox", "imageID": "",
                                              "state": {"running": {}}}]}}


def serve(conn, addr):
    buf = b""
    try:
        while True:
            req, buf = read_request(conn, buf)
            if req is None:
                return
            method, target, hdrs, body, raw = req
            path = target.split("?", 1)[0]
            record(addr, raw, method, path)
            parts = path.strip("/").split("/")
            disc = {
                "/api": {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]},
                "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
                "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
                     "verbs": ["get", "list"], "shortNames": ["po"]},
                    {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
                     "verbs": ["create", "get"]}]},
            }
            if path in disc:
                out = json.dumps(disc[path]).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(out) + out)
                continue
            if path == "/close":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                             b"close-delimited body\n")
                return
            if path == "/chunked":
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"6\r\nchunk1\r\n7\r\n,chunk2\r\n0\r\n\r\n")
                continue
            if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
                out = json.dumps(pod(parts[3], parts[5])).encode()
            elif (len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"]
                  and parts[6] in ("exec", "attach")):
                # An exec that got this far was approved: refuse to upgrade (a test fake).
                out = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "message": "fake API: exec reached upstream", "code": 400}).encode()
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(out) + out)
                continue
            else:
                out = json.dumps({"method": method, "path": path, "body_len": len(body),
                                  "auth": hdrs.get("authorization")}).encode()
            head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                    % len(out))
            conn.sendall(head if method == "HEAD" else head + out)
    except (OSError, ValueError, ssl.SSLError):
        return
    finally:
        try:
            conn.close()
        except OSError:
            pass


def listen(hostport, ctx):
    host, port = hostport.rsplit(":", 1)
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(128)

    def loop():
        while True:
            c, _ = s.accept()
            try:
                t = ctx.wrap_socket(c, server_side=True)
            except (OSError, ssl.SSLError):
                c.close()
                continue
            threading.Thread(target=serve, args=(t, hostport), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
ctx.set_alpn_protocols(["http/1.1"])
for a in ADDRS:
    listen(a, ctx)
print("ready", flush=True)
threading.Event().wait()
