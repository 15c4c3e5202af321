"""A small HTTPS/1.1 upstream for tests: records every request's exact bytes, answers by path.

usage: https_upstream.py CERT KEY LOGFILE [--control] HOST:PORT [HOST:PORT...] [--client-ca CAFILE HOST:PORT...]

The addresses after --client-ca require a client certificate CAFILE verifies (a handshake
without one fails). Each request is appended to LOGFILE as a JSON line {"addr", "raw" (base64 of
the exact bytes), "method", "path", "client" (the client certificate's CN, or null), and its TLS
connection's "conn" (numbered from 1 as accepted), "sni" (the server name, or null), "tls" (the
version) and "reused" (whether its handshake resumed a session)}.
The addresses before --client-ca share one TLS context, which issues TLS 1.3 tickets and TLS 1.2
session ids and tickets, so it resumes any session it issued to any of them, whatever the server
name. A line "tls new" on stdin replaces that context with a fresh one (new ticket keys, an empty
session cache: no session issued before is resumed), "tls new 1.2" with one that stops at
TLS 1.2 (with --control, which reads stdin); each is answered with the same line and " ok" on
stdout once new connections get it.
Answers: /close -> close-delimited body; /chunked -> chunked body; /early (with a Content-Length
body) -> 200 with a JSON echo as soon as its head is read, then its body is read and dropped and
the next request read, as node and nginx do (its log line's raw is the head only);
/big?n=BYTES -> that many bytes (0, 1, .. 255 over and over) with Content-Length;
/close-length and /close-chunked -> CLOSE_BODY with "Connection: close" (Content-Length, chunked),
the TLS close_notify and the TCP FIN in the same segment as the response's last bytes; HEAD -> no
body; /api/v1/namespaces/NS/pods/POD -> a running Pod (a fake Kubernetes API for kubectl);
.../pods/POD/exec (or attach) with an upgrade -> an exec session over WebSocket (v5/v4.channel.k8s.io;
else v4.base64/base64.channel.k8s.io, in TEXT frames, its first stdout message in two frames)
or SPDY/3.1 (whichever the client asks for): it prints "hello from POD: ARGV" on stdout (then
TERMINAL_LINE, a colour and a title sequence) and a line on stderr, echoes each stdin line back as "you typed: LINE" (when stdin=true), and ends with
a Success status (over WebSocket to a pod named deflate-*, its 101 takes permessage-deflate,
offered or not, as a misbehaving server would); /hang -> no answer ever: the request is read
and the connection held until the client ends it, which is then appended to LOGFILE.events as
{"path", "how"}; /trickle?n=N&gap=S -> a chunked head at once, then N lines S seconds apart (as
kubectl logs -f gets them); /ws/quiet with Upgrade: websocket -> a 101 at once, nothing for
?gap=S seconds, then a line, then the end; anything else -> 200 with a JSON echo. Keep-alive,
one request at a time.
Prints "ready".
"""

import base64
import hashlib
import json
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import zlib

CERT, KEY, LOG = sys.argv[1:4]
ARGS = sys.argv[4:]
CONTROL = "--control" in ARGS
ARGS = [a for a in ARGS if a != "--control"]
CUT = ARGS.index("--client-ca") if "--client-ca" in ARGS else len(ARGS)
ADDRS, MTLS = ARGS[:CUT], ARGS[CUT + 1:]    # MTLS: CAFILE HOST:PORT...
lock = threading.Lock()


def client_cn(conn):
    cert = conn.getpeercert()
    for rdn in (cert or {}).get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def record(addr, raw, method, path, client, tls):
    with lock, open(LOG, "a") as f:
        f.write(json.dumps(dict({"addr": addr, "raw": base64.b64encode(raw).decode(), "method": method,
                                 "path": path, "client": client}, **tls)) + "\n")


def event(path, how):
    with lock, open(LOG + ".events", "a") as f:
        f.write(json.dumps({"path": path, "how": how}) + "\n")


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
    if target.startswith("/early") and "content-length" in hdrs:
        return (method, target, hdrs, None, head + b"\r\n\r\n"), rest    # serve() reads the body later
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


# ---- exec streams ---------------------------------------------------------------------------

def recv_exact(conn, buf, n):
    while len(buf) < n:
        d = conn.recv(65536)
        if not d:
            return None, buf
        buf += d
    return buf[:n], buf[n:]


def exec_params(target):
    q = urllib.parse.parse_qs(target.partition("?")[2])
    argv = q.get("command", [])
    return argv, q.get("stdin", ["false"])[0] in ("true", "1")


def echo_lines(data, send_stdout, final=False):
    """Answers each complete line typed; returns what is left of an unfinished one."""
    while b"\n" in data or (final and data):
        line, _, data = data.partition(b"\n")
        send_stdout(b"you typed: " + line + b"\n")
    return data


SUCCESS = json.dumps({"metadata": {}, "status": "Success"}).encode()
TERMINAL_LINE = b"\x1b[1mbold\x1b[0m \x1b]0;retitled\x07\n"


def ws_send(conn, opcode, payload):
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + n.to_bytes(2, "big")
    else:
        head += bytes([127]) + n.to_bytes(8, "big")
    conn.sendall(head + payload)


def ws_read(conn, buf):
    """One frame from the client: (fin, opcode, payload), buf; None at EOF."""
    h, buf = recv_exact(conn, buf, 2)
    if h is None:
        return None, buf
    n, masked = h[1] & 0x7f, h[1] & 0x80
    if n in (126, 127):
        ext, buf = recv_exact(conn, buf, 2 if n == 126 else 8)
        if ext is None:
            return None, buf
        n = int.from_bytes(ext, "big")
    key = b"\0\0\0\0"
    if masked:
        key, buf = recv_exact(conn, buf, 4)
        if key is None:
            return None, buf
    data, buf = recv_exact(conn, buf, n)
    if data is None:
        return None, buf
    return (h[0] & 0x80, h[0] & 0x0f, bytes(b ^ key[i & 3] for i, b in enumerate(data))), buf


def ws_exec(conn, buf, hdrs, pod_name, target):
    offered = [p.strip() for p in hdrs.get("sec-websocket-protocol", "").split(",")]
    proto = (next((p for p in ("v5.channel.k8s.io", "v4.channel.k8s.io") if p in offered), None)
             or next((p for p in offered if p in ("v4.base64.channel.k8s.io", "base64.channel.k8s.io")), None))
    if not proto:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return
    accept = base64.b64encode(hashlib.sha1(hdrs["sec-websocket-key"].encode()
                                           + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    # A pod named deflate-*: the server takes permessage-deflate whether it was offered or not.
    ext = b"Sec-WebSocket-Extensions: permessage-deflate\r\n" if pod_name.startswith("deflate") else b""
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: %s\r\n%s\r\n"
                 % (accept, proto.encode(), ext))
    argv, stdin = exec_params(target)
    b64 = "base64" in proto
    if b64:
        def send(ch, data):
            ws_send(conn, 1, b"%d" % ch + base64.b64encode(data))
        # the first message in two frames, cut inside a base64 quantum
        first = b"1" + base64.b64encode(("hello from %s: %s\n" % (pod_name, " ".join(argv))).encode()
                                        + TERMINAL_LINE)
        conn.sendall(bytes([0x01, 7]) + first[:7])
        ws_send(conn, 0, first[7:])
    else:
        def send(ch, data):
            ws_send(conn, 2, bytes([ch]) + data)
        send(1, ("hello from %s: %s\n" % (pod_name, " ".join(argv))).encode() + TERMINAL_LINE)
    out = lambda data: send(1, data)  # noqa: E731
    send(2, b"a line on stderr\n")
    typed = b""
    while stdin:
        fr, buf = ws_read(conn, buf)
        if fr is None:
            break
        fin, op, payload = fr
        if op == 9:
            ws_send(conn, 10, payload)
        elif op == 8:
            break
        elif op in (1, 2) and payload and b64:
            if payload[:1] == b"0":
                typed = echo_lines(typed + base64.b64decode(payload[1:], validate=True), out)
        elif op in (1, 2) and payload:
            if payload[0] == 0:
                typed = echo_lines(typed + payload[1:], out)
            elif payload[0] == 255 and payload[1:2] == b"\0":
                break                       # v5: the client closed stdin
    echo_lines(typed, out, final=True)
    send(3, SUCCESS)
    ws_send(conn, 8, (1000).to_bytes(2, "big"))
    conn.settimeout(5)
    while True:                             # until the client's close frame, or it hangs up
        fr, buf = ws_read(conn, buf)
        if fr is None or fr[1] == 8:
            return


# SPDY/3 header compression dictionary: each name length-prefixed, then the tail.
SPDY_NAMES = ("options head post put delete trace accept accept-charset accept-encoding "
              "accept-language accept-ranges age allow authorization cache-control connection "
              "content-base content-encoding content-language content-length content-location "
              "content-md5 content-range content-type date etag expect expires from host if-match "
              "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
              "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
              "server te trailer transfer-encoding upgrade user-agent vary via warning "
              "www-authenticate method get status").split() + ["200 OK", "version", "HTTP/1.1", "url",
                                                                "public", "set-cookie", "keep-alive",
                                                                "origin"]
SPDY_TAIL = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
             "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
             "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
             "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00"
             " Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
             "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
             "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
SPDY_DICT = b"".join(len(n).to_bytes(4, "big") + n.encode() for n in SPDY_NAMES) + SPDY_TAIL.encode()
assert hashlib.sha256(SPDY_DICT).hexdigest() == \
    "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"


def spdy_read(conn, buf):
    """One frame: (is_control, type or stream id, flags, payload), buf; None at EOF."""
    h, buf = recv_exact(conn, buf, 8)
    if h is None:
        return None, buf
    n = int.from_bytes(h[5:8], "big")
    payload, buf = recv_exact(conn, buf, n)
    if payload is None:
        return None, buf
    if h[0] & 0x80:
        return (True, int.from_bytes(h[2:4], "big"), h[4], payload), buf
    return (False, int.from_bytes(h[0:4], "big") & 0x7fffffff, h[4], payload), buf


def spdy_headers(raw):
    n, at, out = int.from_bytes(raw[:4], "big"), 4, {}
    for _ in range(n):
        kl = int.from_bytes(raw[at:at + 4], "big")
        k = raw[at + 4:at + 4 + kl].decode()
        at += 4 + kl
        vl = int.from_bytes(raw[at:at + 4], "big")
        out[k] = raw[at + 4:at + 4 + vl].decode()
        at += 4 + vl
    return out


def spdy_exec(conn, buf, raw_head, pod_name, target):
    if b"v4.channel.k8s.io" not in raw_head:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                 b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
    argv, stdin = exec_params(target)
    inflate = zlib.decompressobj(zdict=SPDY_DICT)
    deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, SPDY_DICT)
    want = {"error", "stdout", "stderr"} | ({"stdin"} if stdin else set())
    streams, typed, stdin_done = {}, b"", not stdin

    def ctl(kind, payload, flags=0):
        conn.sendall(struct.pack(">HHI", 0x8003, kind, (flags << 24) | len(payload)) + payload)

    def data(sid, payload, flags=0):
        conn.sendall(struct.pack(">II", sid, (flags << 24) | len(payload)) + payload)

    def out(payload):
        data(streams["stdout"], payload)

    def step():
        nonlocal buf, typed, stdin_done
        fr, buf = spdy_read(conn, buf)
        if fr is None:
            return False
        control, kind, flags, payload = fr
        if control and kind == 1:           # SYN_STREAM: name the stream, answer it
            sid = int.from_bytes(payload[:4], "big") & 0x7fffffff
            streams[spdy_headers(inflate.decompress(payload[10:])).get("streamtype")] = sid
            block = deflate.compress(b"\0\0\0\0") + deflate.flush(zlib.Z_SYNC_FLUSH)
            ctl(2, struct.pack(">I", sid) + block)
        elif control and kind == 6:         # PING
            ctl(6, payload)
        elif not control and kind == streams.get("stdin"):
            if "stdout" in streams:
                typed = echo_lines(typed + payload, out)
            else:
                typed += payload
            if flags & 1:
                stdin_done = True
        return True

    while not want <= set(streams):
        if not step():
            return
    out(("hello from %s: %s\n" % (pod_name, " ".join(argv))).encode() + TERMINAL_LINE)
    data(streams["stderr"], b"a line on stderr\n")
    while not stdin_done:
        if not step():
            return
    echo_lines(typed, out, final=True)
    data(streams["error"], SUCCESS)
    for name in ("stdout", "stderr", "error"):
        data(streams[name], b"", 1)         # FIN
    conn.settimeout(5)
    try:
        while step():
            pass
    except (OSError, ssl.SSLError):
        pass


# The body of /close-length and /close-chunked (test_https.py builds the same).
CLOSE_BODY = b"".join(b"line %04d of a response followed at once by close_notify\n" % i for i in range(64))


def send_and_close(conn, data):
    """DATA, then the close_notify, then the FIN: corked, so all three leave in one segment (the
    FIN joins the unsent data on close), as a server that answers and hangs up at once does."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    conn.sendall(data)
    conn.setblocking(False)
    try:
        conn.unwrap()               # sends close_notify; does not wait for the peer's
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        pass


def pod(ns, name):
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "uid": "0000-test"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            "status": {"phase": "Running",
                       "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0,
                                              "image": "busybox", "imageID": "",
                                              "state": {"running": {}}}]}}


def serve(conn, addr, tls):
    buf = b""
    try:
        while True:
            req, buf = read_request(conn, buf)
            if req is None:
                return
            method, target, hdrs, body, raw = req
            path = target.split("?", 1)[0]
            record(addr, raw, method, path, client_cn(conn), tls)
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
            if path == "/early" and body is None:
                out = json.dumps({"method": method, "path": path, "early": True}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(out) + out)
                n = int(hdrs["content-length"])
                while len(buf) < n:
                    d = conn.recv(65536)
                    if not d:
                        return
                    buf += d
                buf = buf[n:]
                continue
            query = urllib.parse.parse_qs(target.partition("?")[2])
            if path == "/hang":
                try:
                    while conn.recv(65536):
                        pass
                    event(path, "eof")
                except (OSError, ssl.SSLError) as e:
                    event(path, "error: %s" % e)
                return
            if path == "/trickle":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
                for i in range(int(query.get("n", ["5"])[0])):
                    time.sleep(float(query.get("gap", ["0.5"])[0]))
                    line = b"line %d\n" % i
                    conn.sendall(b"%x\r\n%s\r\n" % (len(line), line))
                conn.sendall(b"0\r\n\r\n")
                continue
            if path == "/ws/quiet" and hdrs.get("upgrade", "").lower() == "websocket":
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                time.sleep(float(query.get("gap", ["2"])[0]))
                conn.sendall(b"late line after a quiet stream\n")
                return
            if path == "/slow":
                time.sleep(4)
            if path in disc:
                out = json.dumps(disc[path]).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(out) + out)
                continue
            if path == "/close":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                             b"close-delimited body\n")
                return
            if path == "/close-length":
                send_and_close(conn, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                                     b"Content-Length: %d\r\n\r\n" % len(CLOSE_BODY) + CLOSE_BODY)
                return
            if path == "/close-chunked":
                half = len(CLOSE_BODY) // 2
                send_and_close(conn, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n"
                               + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
                               % (half, CLOSE_BODY[:half], len(CLOSE_BODY) - half, CLOSE_BODY[half:]))
                return
            if path == "/big":
                # /big?n=BYTES: that many bytes of a counting pattern, sent as the socket takes them
                n = int(urllib.parse.parse_qs(target.partition("?")[2]).get("n", ["0"])[0])
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n\r\n" % n)
                block = bytes(range(256)) * 256
                for off in range(0, n, len(block)):
                    conn.sendall(block[:min(len(block), n - off)])
                continue
            if path == "/chunked":
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"6\r\nchunk1\r\n7\r\n,chunk2\r\n0\r\n\r\n")
                continue
            if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
                out = json.dumps(pod(parts[3], parts[5])).encode()
            elif (len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"]
                  and parts[6] in ("exec", "attach") and hdrs.get("upgrade", "").lower() == "websocket"):
                ws_exec(conn, buf, hdrs, parts[5], target)
                return
            elif (len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"]
                  and parts[6] in ("exec", "attach") and hdrs.get("upgrade", "").lower() == "spdy/3.1"):
                spdy_exec(conn, buf, raw.partition(b"\r\n\r\n")[0], parts[5], target)
                return
            elif (len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"]
                  and parts[6] in ("exec", "attach")):
                # An exec without an upgrade: refuse it (as a real API server would).
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
    """Serves hostport with the context ctx() gives at each accept."""
    host, port = hostport.rsplit(":", 1)
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(128)

    def loop():
        while True:
            c, _ = s.accept()
            with lock:
                nconn[0] += 1
                n = nconn[0]
            try:
                t = ctx().wrap_socket(c, server_side=True)
            except (OSError, ssl.SSLError):
                c.close()
                continue
            tls = {"conn": n, "sni": getattr(t, "sni", None), "tls": t.version(), "reused": t.session_reused}
            threading.Thread(target=serve, args=(t, hostport, tls), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


nconn = [0]


def note_sni(conn, name, ctx):
    """The server name the ClientHello asked for (over TLS 1.2, OpenSSL gives a resumed
    connection the name of the session's first one)."""
    conn.sni = name


def context(client_ca=None, max_tls=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.sni_callback = note_sni
    if max_tls:
        ctx.maximum_version = max_tls
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


plain = [context()]                         # the context of the addresses before --client-ca


def control():
    for line in sys.stdin:
        w = line.split()
        if w[:2] == ["tls", "new"] and w[2:] in ([], ["1.2"]):
            plain[0] = context(max_tls=ssl.TLSVersion.TLSv1_2 if w[2:] else None)
            print(" ".join(w) + " ok", flush=True)
        elif w:
            print("unknown: %s" % line.strip(), flush=True)


for a in ADDRS:
    listen(a, lambda: plain[0])
mtls = context(MTLS[0]) if MTLS else None
for a in MTLS[1:]:
    listen(a, lambda: mtls)
print("ready", flush=True)
if CONTROL:
    threading.Thread(target=control, daemon=True).start()
threading.Event().wait()
