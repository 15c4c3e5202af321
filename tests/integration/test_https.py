"""HTTPS integration test (issue 8): TLS interception, HTTP/1.1 decisions, review, credential injection, smuggling, CA trust, kubectl exec.

Run as root with /usr/bin/python3. Prints `ok - https: NAME` / `not ok - https: NAME: why`.
It makes a test CA and an HTTPS upstream (https_upstream.py, which logs whether each TLS
connection resumed a session; one case gives it fresh TLS contexts) on 127.0.0.21-23, an airlockd with
four https resources (two on 127.0.0.21, told apart by server name), a pinned test cgroup whose clients (curl, python3 urllib, node fetch,
kubectl, a raw TLS client, a WebSocket client speaking v4.base64.channel.k8s.io) trust the Airlock CA, and a reviewer with its own uid (and a console
password: one case looks at an exec session in the console, over its API and in headless
Chromium). One case adds the Airlock CA to the real system trust store and removes it again,
checking the store is exactly as before. Everything is removed on any exit.
"""

import base64
import glob
import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import check, note, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SMUGGLING = os.path.join(REPO, "tests", "http_smuggling")
SETPRIV = "/usr/bin/setpriv"
OPENSSL = "/usr/bin/openssl"
CURL = "/usr/bin/curl"
NODE = shutil.which("node", path="/usr/bin:/usr/local/bin") or "/usr/bin/node"
KUBECTL = shutil.which("kubectl", path="/usr/bin:/usr/local/bin")
ASCIINEMA = shutil.which("asciinema", path="/usr/bin:/bin")
API, KUBE, IPAPI = "127.0.0.21", "127.0.0.22", "127.0.0.23"
MTLS = "127.0.0.24"          # an upstream that requires a client certificate
NAMED = "127.0.0.25"         # the one https resource on its address, with a host list
NAMED_NAME = "named.test"
MTLS_CLIENT = "airlock-test mtls client"   # the CN of the one the mtlscert credential holds
API_NAME = "api.test"
API2_NAME = "api2.test"     # a second resource on API's address and port, told apart by name
AGENT_UID = 65534
REVIEWER = ("httprev", 47211)
REVIEWER_PW = "httprev pw %s" % lib.RUN_ID
CHROMIUM = "/usr/bin/chromium"
API_SECRET = "UPSTREAM-SECRET-%s" % lib.RUN_ID
KUBE_SECRET = "KUBE-SECRET-%s" % lib.RUN_ID
AGENT_TOKEN = "agent-token-never-forwarded"
AGENT_API_KEY = "agent-api-key-%s" % lib.RUN_ID   # the agent's own X-Api-Key: forwarded, never shown
TRUST_FILE = "/usr/local/share/ca-certificates/airlock-ca.crt"


class T:
    tmp = al = cg = up = None
    port = None
    ca = None             # the Airlock CA (PEM path)
    test_ca = None
    uplog = None
    rsock = None
    resources = None      # the resource blocks airlockd was started with
    console = None        # the console's URL
    execs = {}            # stream: (session id, what was typed) of an approved exec


# ---------------------------------------------------------------- helpers

def sh(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)
    check(r.returncode == 0, "%s: %s" % (" ".join(argv[:3]), r.stderr.strip()[-300:]))
    return r


def make_certs(d):
    """A test CA, a server certificate for api.test, api2.test and the five addresses, and a
    client certificate (client.pem, client.key) for the mtlscert credential."""
    ca_key, ca_crt = os.path.join(d, "test-ca.key"), os.path.join(d, "test-ca.pem")
    key, csr, crt = (os.path.join(d, n) for n in ("up.key", "up.csr", "up.pem"))
    ext = os.path.join(d, "up.ext")
    sh([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=airlock test upstream CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"])
    sh([OPENSSL, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
        key, "-out", csr, "-subj", "/CN=%s" % API_NAME])
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s,DNS:%s,IP:%s,IP:%s,IP:%s,IP:%s,IP:%s\nextendedKeyUsage=serverAuth\n"
                % (API_NAME, API2_NAME, API, KUBE, IPAPI, MTLS, NAMED))
    sh([OPENSSL, "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext])
    ckey, ccsr, ccrt = (os.path.join(d, n) for n in ("client.key", "client.csr", "client.pem"))
    sh([OPENSSL, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
        ckey, "-out", ccsr, "-subj", "/CN=%s" % MTLS_CLIENT])
    with open(ext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    sh([OPENSSL, "x509", "-req", "-in", ccsr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-out", ccrt, "-days", "2", "-extfile", ext])
    os.chmod(ckey, 0o600)
    return ca_crt, crt, key


def uplog():
    try:
        with open(T.uplog) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def as_agent(argv):
    return [SETPRIV, "--reuid=%d" % AGENT_UID, "--regid=%d" % AGENT_UID, "--clear-groups"] + argv


def agent_env(**extra):
    env = dict(lib.CLIENT_ENV)
    env["HOME"] = os.path.join(T.tmp, "home")
    env.update(extra)
    return env


def curl(*args, timeout=30, cacert=True):
    argv = [CURL, "-sS", "--max-time", "25", "--resolve", "%s:%d:%s" % (API_NAME, T.port, API)]
    if cacert:
        argv += ["--cacert", T.ca]
    return T.cg.run(as_agent(argv + list(args)), timeout=timeout, env=agent_env())


def api_url(path):
    return "https://%s:%d%s" % (API_NAME, T.port, path)


RAW_CLIENT = r"""
import socket, ssl, sys, base64
host, port, name, cafile, data = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
ctx.set_alpn_protocols(["h2", "http/1.1"])
s = ctx.wrap_socket(socket.create_connection((host, port), timeout=30), server_hostname=name)
sys.stderr.write("alpn=%s\n" % s.selected_alpn_protocol())
s.sendall(base64.b64decode(data))
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
except (ssl.SSLError, OSError) as e:
    sys.stderr.write("recv: %s\n" % e)
sys.stdout.write(base64.b64encode(out).decode())
"""


def raw_client(data, bg=False):
    argv = as_agent([lib.PY, "-c", RAW_CLIENT, API, str(T.port), API_NAME, T.ca,
                     base64.b64encode(data).decode()])
    if bg:
        p = T.cg.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=agent_env())
        return p
    r = T.cg.run(argv, timeout=40, env=agent_env())
    return r.returncode, base64.b64decode(r.stdout or ""), r.stderr


# A TLS client that follows a plan (a JSON file): ["send", B64] sends those bytes, ["until", B64, S] reads
# until what it got holds those bytes or S seconds pass, ["sleep", S] reads for S seconds; then it
# reads to the end (EOF, or IDLE seconds of silence). It prints all it got (base64), and on stderr
# how it ended: "end=eof", "end=idle" or "end=error: ...". NAME "" sends no server name.
PLAN_CLIENT = r"""
import base64, json, socket, ssl, sys, time
host, port, name, cafile, idle = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[6])
with open(sys.argv[5]) as f:
    plan = json.load(f)
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False
got, end = b"", "eof"
def read_for(t, want=None):
    global got
    until = time.monotonic() + t
    while time.monotonic() < until and not (want and want in got):
        s.settimeout(max(0.01, min(0.2, until - time.monotonic())))
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        if not d:
            return False
        got += d
    return True
try:
    s = ctx.wrap_socket(socket.create_connection((host, port), timeout=30), server_hostname=name or None)
    for step in plan:
        if step[0] == "send":
            s.sendall(base64.b64decode(step[1]))
        elif not read_for(step[-1], base64.b64decode(step[1]) if step[0] == "until" else None):
            break
    s.settimeout(idle)
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
except socket.timeout:
    end = "idle"
except (ssl.SSLError, OSError) as e:
    end = "error: %s" % e
sys.stderr.write("end=%s\n" % end)
sys.stdout.write(base64.b64encode(got).decode())
"""


def b64(data):
    return base64.b64encode(data).decode()


def plan_client(plan, name=API_NAME, addr=API, idle=3, bg=False, cg=None):
    """Runs PLAN_CLIENT in the cgroup (or cg): (answer bytes, how it ended), or the process if bg."""
    cg = cg or T.cg
    path = os.path.join(T.tmp, "home", "plan-%d.json" % time.monotonic_ns())
    with open(path, "w") as f:
        json.dump(plan, f)
    os.chmod(path, 0o644)
    argv = as_agent([lib.PY, "-c", PLAN_CLIENT, addr, str(T.port), name, T.ca, path, str(idle)])
    if bg:
        p = cg.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=agent_env())
        lib.on_cleanup(lib.stop_process, p)
        return p
    r = cg.run(argv, timeout=60, env=agent_env())
    return base64.b64decode(r.stdout or ""), r.stderr.strip()


# kubectl speaks only the binary channel protocols: this client is a browser terminal's
# exec, offering a channel protocol newer than the test API server knows (v6) and then
# v4.base64.channel.k8s.io, which the server picks: Airlock must read the stream as the
# server's 101 says, not as the offer's first protocol. Like a browser, it offers
# permessage-deflate, which Airlock keeps from the server (it could not decode the stream
# compressed); it would fail on a 101 that took the offer. It sends what it is given on stdin ('0',
# base64), prints stdout ('1') and stderr ('2'), closes once its line is echoed, and exits 0
# on a Success status.
WS_B64_CLIENT = r"""
import base64, json, os, socket, ssl, sys
host, port, cafile, token, typed = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
pod = sys.argv[6] if len(sys.argv) > 6 else "web-0"
ctx = ssl.create_default_context(cafile=cafile)
s = ctx.wrap_socket(socket.create_connection((host, port), timeout=60), server_hostname=host)
s.sendall(("GET /api/v1/namespaces/default/pods/%s/exec?command=sh&command=-c&command=echo%%20hi"
           "&container=app&stdin=true&stdout=true&stderr=true HTTP/1.1\r\nHost: %s:%d\r\n"
           "Authorization: Bearer %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Protocol: v6.channel.k8s.io, v4.base64.channel.k8s.io\r\n"
           "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
           % (pod, host, port, token, base64.b64encode(os.urandom(16)).decode())).encode())
buf = b""
def need(n):
    global buf
    while len(buf) < n:
        d = s.recv(65536)
        if not d:
            sys.exit("eof; have %r" % buf[-200:])
        buf += d
    out, buf = buf[:n], buf[n:]
    return out
def frame(op, payload):
    key, n = os.urandom(4), len(payload)
    head = bytes([0x80 | op]) + (bytes([0x80 | n]) if n < 126 else bytes([0xfe]) + n.to_bytes(2, "big"))
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))
while b"\r\n\r\n" not in buf:
    d = s.recv(65536)
    if not d:
        sys.exit("eof in the response head: %r" % buf)
    buf += d
head, _, buf = buf.partition(b"\r\n\r\n")
if not head.startswith(b"HTTP/1.1 101") or b"sec-websocket-protocol: v4.base64.channel.k8s.io" not in head.lower():
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except OSError:
        pass
    sys.exit("no upgrade: %r %r" % (head, buf))
if b"sec-websocket-extensions" in head.lower():
    sys.exit("the 101 took an extension this client does not implement: %r" % head)
s.sendall(frame(1, b"0" + base64.b64encode(typed.encode() + b"\n")))
msg, status, out, closing = b"", None, b"", False
while True:
    h = need(2)
    n = h[1] & 0x7f
    if n >= 126:
        n = int.from_bytes(need(2 if n == 126 else 8), "big")
    payload = need(n)
    op = h[0] & 0x0f
    if op == 8:
        break
    if op >= 8:
        continue
    msg += payload
    if not h[0] & 0x80:
        continue
    ch, data, msg = msg[:1], base64.b64decode(msg[1:], validate=True), b""
    if ch == b"1":
        out += data
        sys.stdout.write(data.decode())
        sys.stdout.flush()
    elif ch == b"2":
        sys.stderr.write(data.decode())
    elif ch == b"3":
        status = json.loads(data)
    if not closing and ("you typed: %s\n" % typed).encode() in out:
        s.sendall(frame(8, (1000).to_bytes(2, "big")))
        closing = True
s.close()
sys.exit(0 if status and status.get("status") == "Success" else "status %r" % status)
"""


# A TLS client that sends its request and its close_notify together (an SSLObject, so the bytes
# on the wire are exactly what the mode says), then reads the answer to the end.
# modes: "finished" (its Finished with the request and close_notify in one write), "tls12",
# "fin" (and its TCP FIN as well), "nonotify" (no close_notify: with "fin" a plain half-close,
# as shutdown(SHUT_WR) after a request); it prints the answer (base64) and how it ended on stderr.
CLOSE_CLIENT = r"""
import base64, socket, ssl, sys
host, port, name, cafile, data, modes = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
if "tls12" in modes:
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
sock = socket.create_connection((host, int(port)), timeout=30)
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname=name)

def feed():
    d = sock.recv(65536)
    if not d:
        inc.write_eof()
    inc.write(d)
    return bool(d)

while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        sock.sendall(out.read())
        if not feed():
            sys.exit("EOF in the handshake")
if "finished" not in modes:
    sock.sendall(out.read())
tls.write(base64.b64decode(data))
if "nonotify" not in modes:
    try:
        tls.unwrap()                # close_notify; its answer is not waited for here
    except ssl.SSLWantReadError:
        pass
sock.sendall(out.read())
if "fin" in modes:
    sock.shutdown(socket.SHUT_WR)
got, end = b"", "tcp-eof"
while True:
    try:
        d = tls.read(65536)
        if not d:
            end = "close_notify"
            break
        got += d
    except ssl.SSLWantReadError:
        if not feed():
            break
    except ssl.SSLZeroReturnError:
        end = "close_notify"
        break
    except (ssl.SSLError, OSError) as e:
        end = "error: %s" % e
        break
sys.stderr.write("end=%s\n" % end)
sys.stdout.write(base64.b64encode(got).decode())
"""


def close_client(data, modes="", bg=False):
    argv = as_agent([lib.PY, "-c", CLOSE_CLIENT, API, str(T.port), API_NAME, T.ca,
                     base64.b64encode(data).decode(), modes or "-"])
    if bg:
        return T.cg.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=agent_env())
    r = T.cg.run(argv, timeout=40, env=agent_env())
    return base64.b64decode(r.stdout or ""), r.stderr.strip()


# A TLS client that asks for /slow (answered after 4 s), then sends junk for 2.5 s without
# waiting, and prints how many bytes the proxy took, then the answer's status line.
FLOOD_CLIENT = r"""
import socket, ssl, sys, time
host, port, name, cafile = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=cafile)
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=30), server_hostname=name)
s.sendall(b"GET /slow HTTP/1.1\r\nHost: %s\r\n\r\n" % name.encode())
s.setblocking(False)
junk, sent, end = b"x" * 65536, 0, time.monotonic() + 2.5
while time.monotonic() < end and sent < 256 << 20:
    try:
        sent += s.send(junk)
    except (ssl.SSLWantWriteError, BlockingIOError):
        time.sleep(0.01)
print(sent, flush=True)
s.settimeout(30)
try:
    print(s.recv(64).split(b"\r\n")[0].decode())
except (OSError, ssl.SSLError) as e:
    print("error", e)
"""


def case_flood_while_waiting():
    """An agent that sends on and on while its request waits for the upstream: airlockd stops
    reading it at a bound (a head and a body held for review, four times over), so its memory
    does not follow; the request is still answered."""
    need_up()
    rss0 = lib.rss_kib(T.al.proc.pid)
    p = T.cg.popen(as_agent([lib.PY, "-c", FLOOD_CLIENT, API, str(T.port), API_NAME, T.ca]),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=agent_env())
    first = p.stdout.readline().strip()
    rss1 = lib.rss_kib(T.al.proc.pid)
    out, err = p.communicate(timeout=40)
    sent = int(first) if first.isdigit() else -1
    # the bound (about 400 KiB here) and the sockets' buffers; unbounded, it took 100s of MB
    check(0 < sent < 48 << 20, "the flooding agent got %d bytes into airlockd (%s)" % (sent, err[-200:]))
    check(rss1 - rss0 < 48 << 10, "airlockd grew by %d KiB while an agent flooded it" % (rss1 - rss0))
    check(out.startswith("HTTP/1.1 200"), "the waiting request was not answered: %r %s" % (out, err[-200:]))
    check(T.al.running(), "airlockd died")


# A TLS client that asks for /big?n=N and reads it slowly (16 KiB every 20 ms) for 2 s, says
# "slow", then on a line from stdin reads the rest at once; prints the bytes of the body it got
# and whether they were the upstream's pattern.
SLOW_READER = r"""
import socket, ssl, sys, time
host, port, name, cafile, n = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=30), server_hostname=name)
s.sendall(b"GET /big?n=%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (n.encode(), name.encode()))
buf, end = b"", time.monotonic() + 2
while time.monotonic() < end:
    buf += s.recv(16384)
    time.sleep(0.02)
print("slow", flush=True)
sys.stdin.readline()
head, _, body = buf.partition(b"\r\n\r\n")
want, pattern, got, ok = int(n), bytes(range(256)), len(body), True
ok = body == (pattern * (len(body) // 256 + 1))[:len(body)]
while got < want:
    d = s.recv(1 << 20)
    if not d:
        break
    ok = ok and d == (pattern * (len(d) // 256 + 2))[got % 256:got % 256 + len(d)]
    got += len(d)
print(head.split(b"\r\n")[0].decode(), got, ok, flush=True)
"""


def case_slow_reader():
    """An agent that reads a large response slowly: airlockd stops reading the upstream at a
    bound (relay_buffer), through the TLS layer too, so its memory does not follow the body;
    the body then arrives whole and intact."""
    need_up()
    n = 96 << 20
    rss0 = lib.rss_kib(T.al.proc.pid)
    p = T.cg.popen(as_agent([lib.PY, "-c", SLOW_READER, API, str(T.port), API_NAME, T.ca, str(n)]),
                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                   env=agent_env())
    first = p.stdout.readline().strip()
    rss1 = lib.rss_kib(T.al.proc.pid)
    out, err = p.communicate("go\n", timeout=60)
    check(first == "slow", "the slow reader: %r %s" % (first, err[-300:]))
    # the bound and the sockets' buffers: a few MiB; unbounded, it was most of the body
    check(rss1 - rss0 < 24 << 10, "airlockd grew by %d KiB while an agent read slowly" % (rss1 - rss0))
    check(out.strip() == "HTTP/1.1 200 OK %d True" % n, "the body: %r %s" % (out, err[-300:]))
    check(T.al.running(), "airlockd died")


# A TLS client that sends its request, says "sent", and when a line comes on stdin exits
# without reading the answer: how "close" (its socket closed, a FIN; the session tickets were
# read first, so nothing unread turns the close into a reset) or "reset" (SO_LINGER 0: a RST).
GONE_CLIENT = r"""
import base64, os, socket, ssl, struct, sys
host, port, name, cafile, data, how = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=30), server_hostname=name)
s.sendall(base64.b64decode(data))
s.settimeout(0.5)
try:
    s.recv(1)
except (socket.timeout, ssl.SSLError, OSError):
    pass
sys.stdout.write("sent\n")
sys.stdout.flush()
sys.stdin.readline()
if how == "reset":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
os._exit(0)
"""


def rv(*args):
    return lib.reviewer_ctl(T.rsock, REVIEWER[1], *args)


def requests(where="1", args=()):
    return T.al.db_rows(where, args, table="requests")


def wait_request(text, after=0, timeout=15):
    def get():
        rows = [r for r in requests("id > ? AND state = 'pending'", (after,)) if text in (r["command"] or "")]
        return rows[-1] if rows else None
    row = wait_for(get, timeout, 0.05)
    check(row, "no pending request for %r within %ds (requests: %s)"
          % (text, timeout, [(r["id"], r["state"], r["command"][:60]) for r in requests()[-5:]]))
    return row


def max_req():
    return max((r["id"] for r in requests()), default=0)


def http_rows(where="1", args=()):
    return T.al.db_rows(where, args, table="http_requests")


def need_up():
    check(T.al is not None and T.al.running(), "airlockd is not running (log: %s)"
          % (T.al.log_tail(5) if T.al else "-"))


def parse_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    line = head.split(b"\r\n")[0].decode("latin-1")
    m = re.match(r"HTTP/1\.1 (\d{3})", line)
    return (int(m.group(1)) if m else 0), head.decode("latin-1"), body


# ---------------------------------------------------------------- cases

def case_curl_get():
    need_up()
    n0 = len(uplog())
    r = curl("-H", "Authorization: Bearer %s" % AGENT_TOKEN, "-H", "Proxy-Authorization: Basic %s" % AGENT_TOKEN,
             "-w", "\n%{http_code} %{http_version}", "--http2", api_url("/items?limit=5"))
    check(r.returncode == 0, "curl exited %d: %s" % (r.returncode, r.stderr.strip()))
    body, _, tail = r.stdout.rpartition("\n")
    check(tail == "200 1.1", "curl: status/version %r (want 200 over HTTP/1.1 although it offered h2)" % tail)
    echo = json.loads(body)
    check(echo["auth"] == "Bearer %s" % API_SECRET, "upstream saw Authorization %r" % echo["auth"])
    log = uplog()[n0:]
    check(len(log) == 1 and log[0]["path"] == "/items", "upstream log: %r" % log)
    raw = base64.b64decode(log[0]["raw"])
    check(AGENT_TOKEN.encode() not in raw and b"proxy-authorization" not in raw.lower(),
          "the agent's token (Authorization, Proxy-Authorization) reached upstream: %r" % raw[:600])
    rows = wait_for(lambda: [x for x in http_rows("path = '/items'") if x["status"] == 200], 5)
    check(rows, "no http_requests row with status 200 for /items: %r" % http_rows()[-3:])
    x = rows[-1]
    check(x["decision"] == "allow" and x["method"] == "GET" and x["query"] == "limit=5"
          and x["bytes_down"] > 0 and x["host"].startswith(API_NAME),
          "http_requests row: %r" % x)


def case_keepalive_framing():
    need_up()
    # three requests on one connection: chunked response, HEAD, close-delimited
    # two requests on one connection (a chunked response, then a Content-Length one), a HEAD
    # whose upstream wrongly sends a body anyway, then a close-delimited response
    r = curl("-w", "|%{http_code}\n", api_url("/chunked"), api_url("/head"))
    check(r.returncode == 0, "curl: %s" % r.stderr.strip())
    check(r.stdout.startswith("chunk1,chunk2|200\n") and r.stdout.endswith("|200\n"),
          "chunked + keep-alive through airlock: %r" % r.stdout[:200])
    r = curl("-I", "-w", "|%{http_code}", api_url("/chunked"))
    check(r.returncode == 0 and r.stdout.endswith("|200"), "HEAD: %r %s" % (r.stdout[-200:], r.stderr))
    r = curl("-w", "|%{http_code}", api_url("/close"))
    check(r.returncode == 0 and "close-delimited body\n|200" in r.stdout,
          "close-delimited: rc %d %r %s" % (r.returncode, r.stdout, r.stderr.strip()))
    def conn_row():
        c = T.al.db_rows("id = (SELECT conn_id FROM http_requests WHERE path = '/head' "
                         "ORDER BY id DESC LIMIT 1)")
        return c if c and "requests 2" in (c[0]["detail"] or "") else None
    # Audit rows are group-committed within milliseconds.
    c = wait_for(conn_row, 5, 0.05) or T.al.db_rows(
        "id = (SELECT conn_id FROM http_requests WHERE path = '/head' ORDER BY id DESC LIMIT 1)")
    check(c and "requests 2" in (c[0]["detail"] or ""), "keep-alive: connection row %r" % (c and c[0]))


# The body https_upstream.py sends on /close-length and /close-chunked.
CLOSE_BODY = "".join("line %04d of a response followed at once by close_notify\n" % i for i in range(64))


def case_close_notify_with_response():
    """Regression: an upstream that answers with "Connection: close" and sends its close_notify
    in the same segment as the response's last bytes. libevent's TLS filter reports the close
    before those bytes reach airlockd, which once answered 502 to a response it had read."""
    need_up()
    h0 = T.al.max_id("http_requests")
    paths = ["/close-length", "/close-chunked"] * 3
    for i in range(4):
        r = curl("-w", "|%{http_code}\n", *[api_url(p) for p in paths])
        want = (CLOSE_BODY + "|200\n") * len(paths)
        check(r.returncode == 0 and r.stdout == want,
              "round %d: curl rc %d, %d of %d bytes, ends %r; %s"
              % (i, r.returncode, len(r.stdout), len(want), r.stdout[-120:], r.stderr.strip()[-300:]))
    n = 4 * len(paths)
    rows = wait_for(lambda: (lambda x: x if len(x) >= n and all(h["status"] for h in x) else None)(
        http_rows("id > ? AND path LIKE '/close-%'", (h0,))), 5)
    rows = rows or http_rows("id > ? AND path LIKE '/close-%'", (h0,))
    check(len(rows) == n and all(h["status"] == 200 and not h["error"] for h in rows),
          "http_requests rows: %r" % [(h["path"], h["status"], h["error"]) for h in rows][:6])


def case_python():
    need_up()
    code = ("import ssl, urllib.request, json, sys\n"
            "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
            "r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers="
            "{'Authorization': 'Bearer x'}), context=ctx, timeout=20)\n"
            "print(r.status, json.loads(r.read())['path'])\n")
    r = T.cg.run(as_agent([lib.PY, "-c", code, "https://%s:%d/py" % (IPAPI, T.port), T.ca]),
                 timeout=40, env=agent_env())
    check(r.returncode == 0 and r.stdout.strip() == "200 /py",
          "python urllib: rc %d %r %s" % (r.returncode, r.stdout, r.stderr.strip()[-300:]))


def case_node():
    need_up()
    if not os.access(NODE, os.X_OK):
        raise AssertionError("node is not installed (Debian nodejs)")
    js = ("fetch(process.argv[1]).then(async r => { console.log(r.status, (await r.json()).path); })"
          ".catch(e => { console.error(e.cause || e); process.exit(1); });")
    try:
        r = T.cg.run(as_agent([NODE, "-e", js, "https://%s:%d/node" % (IPAPI, T.port)]), timeout=40,
                     env=agent_env(NODE_EXTRA_CA_CERTS=T.ca))
    except subprocess.TimeoutExpired:
        raise AssertionError("node fetch hung; connections %r; http rows %r"
                             % ([(c["dst_addr"], c["reason"], c["detail"]) for c in T.al.connections()[:3]],
                                http_rows()[-2:]))
    check(r.returncode == 0 and r.stdout.strip() == "200 /node",
          "node fetch: rc %d %r %s" % (r.returncode, r.stdout, r.stderr.strip()[-300:]))


def delete_bytes(path, body=b'{"reason":"cleanup"}'):
    return (b"DELETE %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: raw-agent\r\n"
            b"Authorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % (path.encode(), API_NAME.encode(), T.port, AGENT_TOKEN.encode(),
                                            len(body)) + body)


def case_review_approve():
    need_up()
    data = delete_bytes("/items/7")
    after = max_req()
    n0 = len(uplog())
    p = raw_client(data, bg=True)
    row = wait_request("DELETE https://%s" % API_NAME, after)
    check(row["protocol"] == "http" and row["kind"] == "delete", "request row: %r" % row)
    check(row["sha256"] == hashlib.sha256(data).hexdigest(),
          "request sha256 %s is not that of the exact request bytes %s"
          % (row["sha256"], hashlib.sha256(data).hexdigest()))
    time.sleep(0.3)
    check(p.poll() is None, "the agent was answered while its request was pending")
    check(len(uplog()) == n0, "upstream received something while the DELETE was parked")
    rv("approve", row["id"])
    out, err = p.communicate(timeout=30)
    status, head, body = parse_response(base64.b64decode(out))
    check(status == 200, "agent got %r after approval (stderr %s)" % (head[:200], err.strip()[-200:]))
    log = uplog()[n0:]
    check(len(log) == 1, "upstream received %d requests: %r" % (len(log), log))
    got = base64.b64decode(log[0]["raw"])
    want = data.replace(b"Authorization: Bearer %s\r\n" % AGENT_TOKEN.encode(), b"").replace(
        b"Connection: close\r\n\r\n",
        b"Connection: close\r\nAuthorization: Bearer %s\r\n\r\n" % API_SECRET.encode())
    check(got == want, "upstream received %r, want exactly %r" % (got, want))
    x = wait_for(lambda: [h for h in http_rows("id = ?", (row["stmt_id"],)) if h["status"]], 5)
    check(x and x[0]["status"] == 200 and x[0]["decision"] == "review",
          "http_requests row of the request: %r" % http_rows("id = ?", (row["stmt_id"],)))


def case_review_deny():
    need_up()
    after = max_req()
    n0 = len(uplog())
    p = T.cg.popen(as_agent([CURL, "-sS", "--max-time", "30", "--resolve",
                             "%s:%d:%s" % (API_NAME, T.port, API), "--cacert", T.ca, "-X", "DELETE",
                             "-w", "\n%{http_code}", api_url("/items/8")]),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=agent_env())
    row = wait_request("DELETE https://%s" % API_NAME, after)
    rv("deny", row["id"], "--reason", "use the staging API")
    out, err = p.communicate(timeout=30)
    body, _, code = out.rpartition("\n")
    check(code == "403", "curl after deny: %r %s" % (out[-300:], err.strip()))
    j = json.loads(body)
    check(j.get("error") == "airlock: denied" and "use the staging API" in j.get("reason", "")
          and j.get("request_id") == row["id"], "403 body: %r" % j)
    check(len(uplog()) == n0, "upstream received a denied request")


def case_body_over_max():
    """A body over http_max_body (64k here) is not held: an allowed POST streams through whole
    (its row has the length and no digest), and a DELETE, which the rules send to review, is
    denied, since no one could review bytes that were not held."""
    need_up()
    data = os.urandom(200000)
    path = os.path.join(T.tmp, "home", "upload.bin")
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)
    n0 = len(uplog())
    r = curl("-H", "Content-Type: application/octet-stream", "--data-binary", "@" + path,
             "-w", "\n%{http_code}", api_url("/upload"))
    body, _, code = r.stdout.rpartition("\n")
    check(r.returncode == 0 and code == "200" and json.loads(body).get("body_len") == len(data),
          "POST of %d bytes: exit %d %r %s" % (len(data), r.returncode, r.stdout[-200:], r.stderr.strip()))
    got = [base64.b64decode(x["raw"]) for x in uplog()[n0:] if x["path"] == "/upload"]
    check(len(got) == 1 and got[0].endswith(b"\r\n\r\n" + data),
          "the upstream did not get the body whole: %r" % [len(g) for g in got])
    rows = wait_for(lambda: [h for h in http_rows("path = ?", ("/upload",)) if h["status"]], 5)
    check(rows and rows[-1]["body_len"] == len(data) and rows[-1]["body_sha256"] is None
          and rows[-1]["status"] == 200 and rows[-1]["decision"] == "allow",
          "the POST's row: %r" % (rows or http_rows("path = ?", ("/upload",))))
    n1 = len(uplog())
    r = curl("-X", "DELETE", "--data-binary", "@" + path, "-w", "\n%{http_code}", api_url("/items/9"))
    body, _, code = r.stdout.rpartition("\n")
    check(code == "403" and "larger than http_max_body" in json.loads(body or "{}").get("reason", ""),
          "DELETE with %d bytes of body: %r %s" % (len(data), r.stdout[-300:], r.stderr.strip()))
    check(len(uplog()) == n1, "the upstream received the DELETE")


def case_early_response_body():
    """Regression (request smuggling): an upstream answers a POST whose body is streamed (over
    http_max_body) before it has read the body, then reads the body to its end (node, nginx).
    airlockd once went back to reading requests there, parsing the rest of the body as requests
    while the upstream took the same bytes as body, so a request after them ran upstream with the
    credential and unreviewed. Now the rest of the body goes nowhere, the upstream connection is
    dropped, and the next request is read where the agent's next request starts: the DELETE after
    the body is held for review (and denied here), a GET after it goes upstream on a new connection."""
    need_up()
    total, tail_len = 70000, 300
    head = (b"POST /early HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % (API_NAME.encode(), total))
    start = b"GET /smuggled HTTP/1.1\r\nX-Pad: "
    tail = start + b"p" * (tail_len - len(start))   # the body's last bytes: a request head to a lax reader
    delete = b"DELETE /items/77 HTTP/1.1\r\nHost: %s\r\n\r\n" % API_NAME.encode()
    get = b"GET /after-early HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % API_NAME.encode()
    after, n0, h0 = max_req(), len(uplog()), T.al.max_id("http_requests")
    p = plan_client([["send", b64(head + b"A" * (total - tail_len))], ["until", b64(b'"early": true'), 10],
                     ["send", b64(tail + delete)], ["until", b64(b"HTTP/1.1 403"), 30], ["send", b64(get)]],
                    idle=10, bg=True)
    row = wait_request("DELETE https://%s/items/77" % API_NAME, after)
    check([x["path"] for x in uplog()[n0:]] == ["/early"],
          "the upstream got %r" % [(x["method"], x["path"]) for x in uplog()[n0:]])
    rv("deny", row["id"], "--reason", "not this one")
    out, err = p.communicate(timeout=40)
    got = base64.b64decode(out)
    answers = re.findall(rb"HTTP/1\.1 (\d{3})", got)
    check(answers == [b"200", b"403", b"200"] and b'"path": "/after-early"' in got,
          "the agent got %r (%s)" % (got[-600:], err[-200:]))
    log = uplog()[n0:]
    check([x["path"] for x in log] == ["/early", "/after-early"] and log[0]["conn"] != log[1]["conn"],
          "the upstream got %r" % [(x["method"], x["path"], x["conn"]) for x in log])
    where = "id > ? AND path IN ('/early', '/items/77', '/after-early')"
    rows = wait_for(lambda: (lambda x: x if len(x) == 3 and all(h["status"] for h in x) else None)(
        http_rows(where, (h0,))), 5) or http_rows(where, (h0,))
    check([(h["method"], h["path"], h["status"]) for h in rows]
          == [("POST", "/early", 200), ("DELETE", "/items/77", 403), ("GET", "/after-early", 200)]
          and "answered before the request body was complete" in (rows[0]["error"] or ""),
          "http_requests rows: %r" % [(h["method"], h["path"], h["status"], h["error"]) for h in rows])


def case_host_not_sni():
    """A request whose Host (or absolute-form target) names another server than the TLS connection
    did is answered 421 Misdirected Request (JSON, audited, nothing upstream), so the resource's
    credential never goes to another virtual host: curl to api.test with Host attacker.example;
    on one keep-alive connection, Host compared without case, port or one trailing dot, and the
    connection goes on after a 421; without a server name (python to an address) the Host must be
    a name or address of the resource."""
    need_up()
    n0, h0 = len(uplog()), T.al.max_id("http_requests")
    r = curl("-H", "Host: attacker.example", "-w", "\n%{http_code}", api_url("/v1/whoami"))
    body, _, code = r.stdout.rpartition("\n")
    j = json.loads(body or "{}")
    check(code == "421" and j.get("error") == "airlock: misdirected request"
          and "attacker.example" in j.get("reason", "") and "api.test" in j.get("reason", ""),
          "curl with Host attacker.example: %r %s" % (r.stdout[-300:], r.stderr.strip()))
    check(len(uplog()) == n0, "the upstream got %r" % [(x["path"], x["addr"]) for x in uplog()[n0:]])

    def req(host, path, target=None, last=False):
        return (b"GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n"
                % ((target or path).encode(), host.encode(), b"Connection: close\r\n" if last else b""))
    reqs = [("API.Test.:%d" % T.port, "/h/case-dot"), ("api.test", "/h/no-port"),
            ("api2.test", "/h/other-resource"), ("attacker.example:%d" % T.port, "/h/absolute",
                                                  "https://attacker.example:%d/h/absolute" % T.port),
            ("api.test:%d" % T.port, "/h/after")]
    got, end = plan_client([["send", b64(b"".join(req(*x, last=i == len(reqs) - 1) for i, x in enumerate(reqs)))]])
    answers = re.findall(rb"HTTP/1\.1 (\d{3})", got)
    check(answers == [b"200", b"200", b"421", b"421", b"200"], "answers %r (%s): %r" % (answers, end, got[-400:]))
    paths = [x["path"] for x in uplog()[n0:]]
    check(paths == ["/h/case-dot", "/h/no-port", "/h/after"], "the upstream got %r" % paths)
    check(all(b"Authorization: Bearer %s" % API_SECRET.encode() in base64.b64decode(x["raw"])
              for x in uplog()[n0:]), "the credential was not sent with the allowed requests")
    # no server name: python's urllib to an address sends none
    code = ("import ssl, sys, urllib.request, urllib.error\n"
            "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
            "for host in sys.argv[3:]:\n"
            "    try:\n"
            "        r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers={'Host': host}),"
            " context=ctx, timeout=20)\n"
            "        print(r.status)\n"
            "    except urllib.error.HTTPError as e:\n"
            "        print(e.code, e.read().decode())\n")
    n1 = len(uplog())
    r = T.cg.run(as_agent([lib.PY, "-c", code, "https://%s:%d/h/nosni" % (IPAPI, T.port), T.ca,
                           "%s:%d" % (IPAPI, T.port), "attacker.example"]), timeout=40, env=agent_env())
    lines = r.stdout.strip().splitlines()
    check(len(lines) == 2 and lines[0] == "200" and lines[1].startswith("421 ")
          and "not a name or address of resource ipapi" in lines[1],
          "without a server name: %r %s" % (r.stdout, r.stderr.strip()[-300:]))
    check([x["path"] for x in uplog()[n1:]] == ["/h/nosni"], "the upstream got %r" % uplog()[n1:])
    rows = wait_for(lambda: (lambda x: x if len(x) == 4 else None)(
        http_rows("id > ? AND status = 421", (h0,))), 5) or http_rows("id > ? AND status = 421", (h0,))
    # not the policy's decision: recorded as a refusal of its own, which policy test passes over
    check(len(rows) == 4 and all(h["decision"] == "error" and "Host '" in (h["error"] or "") for h in rows),
          "the 421s' rows: %r" % [(h["host"], h["path"], h["decision"], h["status"], h["error"]) for h in rows])


def case_upgrade_refused():
    """An Upgrade (WebSocket, h2c) on a path the rules allow is refused with 403 and the reason
    (audited, nothing upstream): after a 101 the connection would be a stream in which Airlock
    decides nothing (h2c: any request, under the connection's credential). A request reviewers
    approved may upgrade (here a DELETE, held and approved, goes upstream with its Upgrade);
    Kubernetes exec and attach upgrade as before (the exec cases)."""
    need_up()
    n0, h0 = len(uplog()), T.al.max_id("http_requests")
    ws = (b"GET /ws/feed HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" % API_NAME.encode())
    h2c = (b"GET /h2c HTTP/1.1\r\nHost: %s\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n" % API_NAME.encode())
    after = b"GET /after-upgrade HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % API_NAME.encode()
    got, end = plan_client([["send", b64(ws + h2c + after)]])
    answers = re.findall(rb"HTTP/1\.1 (\d{3})", got)
    check(answers == [b"403", b"403", b"200"] and b"an upgrade (to websocket)" in got and b"an upgrade (to h2c)" in got,
          "answers %r (%s): %r" % (answers, end, got[-600:]))
    check([x["path"] for x in uplog()[n0:]] == ["/after-upgrade"], "the upstream got %r" % uplog()[n0:])
    rows = wait_for(lambda: (lambda x: x if len(x) == 2 and all(h["status"] for h in x) else None)(
        http_rows("id > ? AND path IN ('/ws/feed', '/h2c')", (h0,))), 5)
    check(rows and all(h["status"] == 403 and h["decision"] == "error" and "Airlock does not decide" in (h["error"] or "")
                       for h in rows), "their rows: %r" % http_rows("id > ? AND path IN ('/ws/feed', '/h2c')", (h0,)))
    # reviewed: a DELETE that asks to upgrade is held like any DELETE; approved, it goes as it is
    data = (b"DELETE /ws/reviewed HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" % API_NAME.encode())
    before, n1 = max_req(), len(uplog())
    p = raw_client(data, bg=True)
    row = wait_request("DELETE https://%s/ws/reviewed" % API_NAME, before)
    check("Upgrade: websocket" in row["command"], "reviewers do not see the Upgrade: %r" % row["command"][:400])
    rv("approve", row["id"])
    out, err = p.communicate(timeout=30)
    status, head, _ = parse_response(base64.b64decode(out))
    log = uplog()[n1:]
    check(status == 200 and [x["path"] for x in log] == ["/ws/reviewed"]
          and b"Upgrade: websocket" in base64.b64decode(log[0]["raw"]),
          "the approved upgrade: %r %r" % (head[:200], [(x["path"]) for x in log]))


def with_settings(extra, fn):
    """Runs fn with extra settings taken in by a policy reload, then the setup's again."""
    T.al.write_conf(T.resources, T.settings + extra)
    r = T.al.ctl("policy", "reload")
    check(r.returncode == 0, "policy reload (%s): %s" % (extra, r.stderr.strip()))
    try:
        fn()
    finally:
        T.al.write_conf(T.resources, T.settings)
        T.al.ctl("policy", "reload")


def case_slow_agent():
    """Slowloris: deadlines that bytes do not restart. With http_head_timeout 1500ms and
    http_body_min_rate 4k (reloaded), a head sent a line every 0.4 s, a held body and a streamed
    body sent 20 bytes every 0.4 s each get 408 with the reason and are closed within a few
    seconds (the 120 s idle timeout restarted at every byte, so such an agent held its session
    for ever); a body sent at its own pace after a slow start still goes."""
    need_up()

    def run():
        n0, mark = len(uplog()), T.al.max_id()
        head = b"GET /slow/head HTTP/1.1\r\nHost: %s\r\n" % API_NAME.encode()
        trickle = [["send", b64(head)]] + [x for i in range(12) for x in (["sleep", 0.4], ["send", b64(b"X-%d: 1\r\n" % i)])]
        post = b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n"
        held = post % (b"/slow/held", API_NAME.encode(), 4000) + b"\r\n"
        streamed = post % (b"/slow/streamed", API_NAME.encode(), 100000) + b"\r\n"
        drip = [x for i in range(12) for x in (["sleep", 0.4], ["send", b64(b"d" * 20)])]
        ps = [plan_client(plan, idle=3, bg=True) for plan in (trickle, [["send", b64(held)]] + drip,
                                                               [["send", b64(streamed)]] + drip)]
        t0 = time.monotonic()
        try:
            # the paced one: slow for a second (in its grace), then fast
            body = os.urandom(200000)
            fine = post % (b"/slow/fine", API_NAME.encode(), len(body)) + b"Connection: close\r\n\r\n"
            got, end = plan_client([["send", b64(fine + body[:10])], ["sleep", 1.0], ["send", b64(body[10:])]])
            check(got.startswith(b"HTTP/1.1 200") and b'"body_len": %d' % len(body) in got,
                  "a body that keeps pace: %r (%s)" % (got[:300], end))
            for what, p in zip(("head", "held body", "streamed body"), ps):
                out, err = p.communicate(timeout=30)
                got = base64.b64decode(out)
                check(got.startswith(b"HTTP/1.1 408") and b"airlock: request timeout" in got
                      and (b"http_head_timeout" if what == "head" else b"http_body_min_rate") in got,
                      "%s: %r (%s)" % (what, got[:400], err.strip()[-200:]))
        finally:
            for p in ps:
                lib.stop_process(p)
        took = time.monotonic() - t0
        check(took < 5.5, "the slow agents were closed after %.1f s" % took)
        check([x["path"] for x in uplog()[n0:]] == ["/slow/fine"], "the upstream got %r" % uplog()[n0:])
        rows = wait_for(lambda: (lambda x: x if len(x) >= 3 else None)(
            T.al.db_rows("id > ? AND reason = 'limit' AND detail LIKE '408 %'", (mark,))), 5)
        check(rows and len(rows) == 3, "connection rows of the slow agents: %r"
              % T.al.db_rows("id > ? AND reason = 'limit'", (mark,)))
    with_settings(["http_head_timeout 1500ms", "http_body_min_rate 4k"], run)


def case_sessions_per_agent():
    """max_sessions_per_agent (2, reloaded): a third connection from the same agent cgroup is
    refused (limit, recorded); another pinned cgroup still gets in; once the agent's sessions end
    it gets in again."""
    need_up()
    cg2 = lib.TestCgroup("-peer")
    r = T.al.ctl("pin", cg2.rel)
    check(r.returncode == 0, "pin %s: %s" % (cg2.rel, r.stderr.strip()))
    os.chmod(cg2.path, 0o755)

    def get(path, cg=None):
        return plan_client([["send", b64(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                                          % (path.encode(), API_NAME.encode()))]], cg=cg)

    def run():
        check(wait_for(lambda: T.al.status().get("http_live", 0) == 0, 10, 0.05), "sessions still open")
        mark = T.al.max_id()
        hold = [plan_client([["sleep", 30]], idle=1, bg=True) for _ in range(2)]
        try:
            check(wait_for(lambda: T.al.status().get("http_live", 0) >= 2, 10, 0.05),
                  "the two sessions did not start")
            got, end = get("/cap/third")
            check(got == b"" and end.startswith("end=error"), "the third session: %r (%s)" % (got[:200], end))
            got, end = get("/cap/peer", cg2)
            check(got.startswith(b"HTTP/1.1 200"), "another agent: %r (%s)" % (got[:200], end))
            rows = wait_for(lambda: T.al.db_rows("id > ? AND reason = 'limit' AND detail LIKE "
                                                 "'max_sessions_per_agent (2) reached%%'", (mark,)), 5)
            check(rows and len(rows) == 1 and rows[0]["cgroup_path"] == T.cg.rel, "refused rows: %r" % rows)
        finally:
            for p in hold:
                lib.stop_process(p)
        check(wait_for(lambda: T.al.status().get("http_live", 0) == 0, 10, 0.05), "the held sessions did not end")
        got, end = get("/cap/again")
        check(got.startswith(b"HTTP/1.1 200"), "after its sessions ended: %r (%s)" % (got[:200], end))
    with_settings(["max_sessions_per_agent 2"], run)


def upevents():
    """What https_upstream.py noted of connections it held without answering (/hang)."""
    try:
        with open(T.uplog + ".events") as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def case_response_timeout():
    """http_response_timeout (1s, reloaded): an upstream that takes a request and never answers
    (it held the agent's session and a slot for ever): the agent gets 504 with the JSON error body
    {error, reason, request_id} after about that long and the connection closes; the request's
    row has 504 and why, the connection's upstream_timeout; the upstream connection is closed.
    Not cut: a response whose head comes at once and whose body trickles in for longer (kubectl
    logs -f), a request parked for review for longer than the timeout (its clock starts when it
    goes upstream), an approved upgrade's stream that is silent for longer."""
    need_up()

    def run():
        mark, h0, e0 = T.al.max_id(), T.al.max_id("http_requests"), len(upevents())
        t0 = time.monotonic()
        got, end = plan_client([["send", b64(b"GET /hang HTTP/1.1\r\nHost: %s\r\n\r\n" % API_NAME.encode())]],
                               idle=15)
        took = time.monotonic() - t0
        status, head, body = parse_response(got)
        check(status == 504 and "\r\nconnection: close" in head.lower() and end == "end=eof",
              "the agent of an upstream that never answers: %r (%s)" % (got[:400], end))
        check(0.9 < took < 5, "answered after %.1f s, want about 1 s" % took)
        j = json.loads(body)
        rows = wait_for(lambda: [x for x in http_rows("id > ? AND path = '/hang'", (h0,)) if x["status"]], 5)
        check(rows and rows[0]["status"] == 504 and "http_response_timeout (1000 ms)" in (rows[0]["error"] or ""),
              "the request's row: %r" % http_rows("id > ? AND path = '/hang'", (h0,)))
        check(set(j) == {"error", "reason", "request_id"} and j["error"] == "airlock: upstream timeout"
              and "http_response_timeout (1000 ms)" in j["reason"] and j["request_id"] == rows[0]["id"],
              "the 504's body: %r" % j)
        conns = wait_for(lambda: T.al.db_rows("id > ? AND reason = 'upstream_timeout' AND detail LIKE '504 %'",
                                              (mark,)), 5)
        check(conns and len(conns) == 1, "the connection's row: %r" % T.al.db_rows("id > ?", (mark,)))
        ev = wait_for(lambda: [e for e in upevents()[e0:] if e["path"] == "/hang"], 5)
        check(ev, "the upstream's connection was not closed")
        # a body that takes longer than the timeout, its head at once
        got, end = plan_client([["send", b64(b"GET /trickle?n=6&gap=0.4 HTTP/1.1\r\nHost: %s\r\n"
                                             b"Connection: close\r\n\r\n" % API_NAME.encode())]], idle=10)
        check(got.startswith(b"HTTP/1.1 200") and b"\r\n\r\n7\r\nline 0\n\r\n" in got and got.endswith(b"7\r\nline 5\n\r\n0\r\n\r\n")
              and end == "end=eof", "a trickled body: %r (%s)" % (got[-300:], end))
        # parked for longer than the timeout, then approved
        data = (b"DELETE /items/parked-long HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % API_NAME.encode())
        before = max_req()
        p = raw_client(data, bg=True)
        row = wait_request("DELETE https://%s/items/parked-long" % API_NAME, before)
        time.sleep(1.5)
        rv("approve", row["id"])
        out, err = p.communicate(timeout=30)
        status, head, _ = parse_response(base64.b64decode(out))
        check(status == 200, "a request approved after 1.5 s: %r (%s)" % (head[:300], err.strip()[-200:]))
        # an approved upgrade whose stream is silent for 2 s
        data = (b"DELETE /ws/quiet?gap=2 HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                % API_NAME.encode())
        before = max_req()
        p = raw_client(data, bg=True)
        row = wait_request("DELETE https://%s/ws/quiet" % API_NAME, before)
        rv("approve", row["id"])
        out, err = p.communicate(timeout=30)
        got = base64.b64decode(out)
        check(got.startswith(b"HTTP/1.1 101") and got.endswith(b"late line after a quiet stream\n"),
              "a quiet upgraded stream: %r (%s)" % (got[-300:], err.strip()[-200:]))
    with_settings(["http_response_timeout 1s"], run)


# One keep-alive connection: a GET, then (after a line on stdin) another GET on it; prints each
# response's status line and the second's body, or how the connection ended.
TWO_GETS = r"""
import socket, ssl, sys
host, port, name, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
s = ctx.wrap_socket(socket.create_connection((host, port), timeout=20), server_hostname=name)
f = s.makefile("rb")
def get(path):
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: " + name.encode() + b"\r\n\r\n")
    line = f.readline()
    if not line:
        return "closed", b""
    n = 0
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        if h.lower().startswith(b"content-length:"):
            n = int(h.split(b":")[1])
    return line.decode().strip(), f.read(n)
print(get(b"/first")[0], flush=True)
sys.stdin.readline()
status, body = get(b"/second")
print(status)
print(body.decode("utf-8", "replace"))
"""


def case_store_full_live():
    """A store that cannot take more (here its size cap, set by a policy reload) fails closed for
    sessions already open: the next request on a keep-alive connection gets 503 with the reason
    and does not go upstream; a new connection is refused; with the cap lifted, requests go
    through again."""
    need_up()
    n0 = len(uplog())
    p = T.cg.popen(as_agent([lib.PY, "-c", TWO_GETS, API, str(T.port), API_NAME, T.ca]),
                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                   env=agent_env())
    lib.on_cleanup(lib.stop_process, p)
    first = p.stdout.readline().strip()
    check(first.startswith("HTTP/1.1 200"), "the first GET: %r" % first)
    try:
        T.al.write_conf(T.resources, T.settings + ["store_max_size 64k"])
        r = T.al.ctl("policy", "reload")
        check(r.returncode == 0, "policy reload (store_max_size 64k): %s" % r.stderr.strip())
        check(wait_for(lambda: T.al.status().get("store_accepting") is False, 5, 0.1),
              "the store still takes sessions at a 64k cap")
        out, err = p.communicate("go\n", timeout=30)
        status, _, body = out.partition("\n")
        check(status.startswith("HTTP/1.1 503") and "the audit store is full" in body,
              "the second GET with the store full: %r %r" % (out, err.strip()[-300:]))
        check([x["path"] for x in uplog()[n0:]] == ["/first"],
              "the upstream got %r" % [x["path"] for x in uplog()[n0:]])
        r = curl("-w", "\n%{http_code}", api_url("/third"))
        check(r.returncode != 0 and "/third" not in [x["path"] for x in uplog()[n0:]],
              "a new connection with the store full: exit %d %r" % (r.returncode, r.stdout[-200:]))
    finally:
        T.al.write_conf(T.resources, T.settings)
        T.al.ctl("policy", "reload")
    check(wait_for(lambda: T.al.status().get("store_accepting") is True, 5, 0.1),
          "the store does not take sessions again with the cap lifted")
    r = curl("-w", "\n%{http_code}", api_url("/fourth"))
    check(r.returncode == 0 and r.stdout.endswith("200"), "after the cap was lifted: %r %s"
          % (r.stdout[-200:], r.stderr.strip()))


def case_rule_deny():
    need_up()
    n0 = len(uplog())
    r = curl("-w", "\n%{http_code}", api_url("/forbidden/secrets"))
    body, _, code = r.stdout.rpartition("\n")
    check(code == "403", "curl: %r %s" % (r.stdout[-300:], r.stderr.strip()))
    j = json.loads(body)
    check(j.get("error") == "airlock: denied" and "rule deny path /forbidden/*" in j.get("reason", "")
          and isinstance(j.get("request_id"), int), "403 body: %r" % j)
    check(len(uplog()) == n0, "upstream received a denied request")


def corpus():
    out = []
    for f in sorted(glob.glob(os.path.join(SMUGGLING, "*.txt"))):
        text = open(f).read()
        lines = text.split("\n")
        if lines and lines[0].startswith("#"):
            lines = lines[1:]
        s = "".join(lines)
        b = bytearray()
        i = 0
        while i < len(s):
            c = s[i]
            if c == "\\" and i + 1 < len(s):
                n = s[i + 1]
                if n == "x":
                    b.append(int(s[i + 2:i + 4], 16))
                    i += 4
                    continue
                b += {"r": b"\r", "n": b"\n", "t": b"\t"}.get(n, n.encode())
                i += 2
                continue
            b += c.encode()
            i += 1
        out.append((os.path.basename(f)[:-4], bytes(b)))
    return out


def case_smuggling():
    need_up()
    n0 = len(uplog())
    cases = corpus()
    check(len(cases) >= 40, "smuggling corpus has %d cases" % len(cases))
    bad = []
    for name, data in cases:
        rc, out, err = raw_client(data)
        status, head, body = parse_response(out)
        if status not in (400, 431, 505) or out.count(b"HTTP/1.1 ") != 1:
            bad.append("%s: %r" % (name, out[:120]))
            continue
        # the connection was closed after the answer (the client read to EOF)
        if b"Connection: close" not in out:
            bad.append("%s: no Connection: close" % name)
    check(not bad, "%d of %d not refused with 400: %s" % (len(bad), len(cases), "; ".join(bad[:5])))
    check(len(uplog()) == n0, "upstream received %d smuggled requests" % (len(uplog()) - n0))
    check(T.al.running(), "airlockd died")
    note("%d smuggling requests refused over TLS" % len(cases))


def get_bytes(path, extra=b""):
    return b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: close-agent\r\n%s\r\n" % (
        path.encode(), API_NAME.encode(), T.port, extra)


def answers(raw):
    """The responses in raw, in order: [(status, body)] (each framed by its Content-Length)."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.1 (\d{3})", head)
        n = re.search(rb"(?im)^content-length: *(\d+)", head)
        if not sep or not m or not n:
            out.append((0, raw))
            break
        out.append((int(m.group(1)), rest[:int(n.group(1))]))
        raw = rest[int(n.group(1)):]
    return out


def case_agent_close_notify():
    """An agent that sends its request and its close_notify together (libevent's TLS filter
    reports the close before the request reaches airlockd) is answered, then closed: a plain
    GET many times, over TLS 1.2, with its Finished, with a TCP FIN too, pipelined, a body,
    a rule's 403, one held for review and approved. A request cut short is still not sent."""
    need_up()
    n0 = len(uplog())

    def one(data, modes, want, what):
        out, err = close_client(data, modes)
        got = answers(out)
        check([s for s, _ in got] == [s for s, _ in want]
              and all(w in b for (_, b), (_, w) in zip(got, want)) and "end=close_notify" in err,
              "%s: got %r (%s)" % (what, [(s, b[:80]) for s, b in got], err[-200:]))

    for i in range(5):
        one(get_bytes("/bye/%d" % i), "", [(200, b'"path": "/bye/%d"' % i)], "GET %d" % i)
    one(get_bytes("/bye/tls12"), "tls12", [(200, b'"/bye/tls12"')], "TLS 1.2")
    one(get_bytes("/bye/finished"), "finished", [(200, b'"/bye/finished"')], "with its Finished")
    one(get_bytes("/bye/fin"), "fin", [(200, b'"/bye/fin"')], "with a TCP FIN")
    one(get_bytes("/bye/1st") + get_bytes("/bye/2nd"), "", [(200, b'"/bye/1st"'), (200, b'"/bye/2nd"')],
        "two pipelined")
    one(get_bytes("/forbidden/secrets") + get_bytes("/bye/after-403"), "",
        [(403, b"rule deny path /forbidden/*"), (200, b'"/bye/after-403"')], "a 403, then a GET")
    body = b'{"k": "v"}'
    one(b"POST /bye/post HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % (API_NAME.encode(), len(body)) + body, "", [(200, b'"body_len": %d' % len(body))], "POST")
    # held for review: answered once approved
    after = max_req()
    p = close_client(delete_bytes("/items/bye"), bg=True)
    row = wait_request("DELETE https://%s" % API_NAME, after)
    time.sleep(0.2)
    check(p.poll() is None, "the agent was answered while its request was pending")
    rv("approve", row["id"])
    out, err = p.communicate(timeout=30)
    got = answers(base64.b64decode(out))
    check([s for s, _ in got] == [200] and b'"/items/bye"' in got[0][1] and "end=close_notify" in err,
          "held DELETE: %r (%s)" % (got, err.strip()[-200:]))
    paths = [l["path"] for l in uplog()[n0:]]
    want = ["/bye/%d" % i for i in range(5)] + ["/bye/tls12", "/bye/finished", "/bye/fin", "/bye/1st",
                                                 "/bye/2nd", "/bye/after-403", "/bye/post", "/items/bye"]
    check(paths == want, "upstream received %r" % paths)
    # a request cut short by the close goes nowhere and gets no answer
    out, err = close_client(get_bytes("/bye/cut")[:-2])
    check(out == b"" and "end=close_notify" in err, "a cut request: %r (%s)" % (out[:200], err[-200:]))
    check(len(uplog()) == n0 + len(want), "the cut request reached upstream: %r" % uplog()[n0 + len(want):])


def case_sni_resource():
    """Two https resources on one address and port, told apart by the server name: each
    connection's row, and airlockctl connections, name the resource its ClientHello chose
    (not the first one of the address); a name neither answers is closed (policy_deny, never
    passed through as bytes) and its row names none."""
    need_up()
    mark = T.al.max_id()
    for name in (API_NAME, API2_NAME):
        r = T.cg.run(as_agent([CURL, "-sS", "--max-time", "25", "--resolve", "%s:%d:%s" % (name, T.port, API),
                               "--cacert", T.ca, "https://%s:%d/sni/%s" % (name, T.port, name)]),
                     timeout=30, env=agent_env())
        check(r.returncode == 0 and '"path": "/sni/%s"' % name in r.stdout,
              "curl to %s: exit %d %r %s" % (name, r.returncode, r.stdout[-200:], r.stderr.strip()))
    r = T.cg.run(as_agent([CURL, "-sSk", "--max-time", "25", "--resolve", "other.test:%d:%s" % (T.port, API),
                           "https://other.test:%d/sni/other" % T.port]), timeout=30, env=agent_env())

    def rows():
        got = {}
        for h in http_rows("path LIKE '/sni/%%' AND conn_id > ?", (mark,)):
            c = T.al.db_rows("id = ?", (h["conn_id"],))
            if c and c[0]["closed_us"]:
                got[h["path"]] = c[0]
        return got if len(got) == 2 else None
    got = wait_for(rows, 10, 0.1)
    check(got, "no closed connection rows for both requests: %r" % http_rows("conn_id > ?", (mark,)))
    want = {"/sni/%s" % API_NAME: "api", "/sni/%s" % API2_NAME: "api2"}
    check({p: c["resource"] for p, c in got.items()} == want,
          "connection rows name %r, want %r" % ({p: c["resource"] for p, c in got.items()}, want))
    check(all(c["protocol"] == "https" for c in got.values()), "protocols: %r" % got)
    listed = {x["id"]: x for x in T.al.ctl_json("connections", "--limit", "100")}
    for p, c in got.items():
        check(listed.get(c["id"], {}).get("resource") == want[p],
              "airlockctl connections: row %d is %r, want resource %s" % (c["id"], listed.get(c["id"]), want[p]))
    text = T.al.ctl("connections", "--limit", "100").stdout.splitlines()
    for p, c in got.items():
        line = [l for l in text if l.split()[:1] == [str(c["id"])]]
        check(line and line[0].split()[5] == want[p], "airlockctl connections line of %d: %r" % (c["id"], line))
    # That row's detail (which names the server) is written when its connection closes, after
    # curl has exited, and reaches the store with a later group commit: poll for it.
    check(r.returncode != 0 and "/sni/other" not in [x["path"] for x in uplog()],
          "curl to other.test: exit %d %r" % (r.returncode, r.stdout[-200:]))
    other = wait_for(lambda: T.al.db_rows("id > ? AND dst_addr = ? AND detail LIKE '%%sni other.test%%'",
                                          (mark, API)), 10, 0.1)
    check(other and all(c["resource"] is None and c["reason"] == "policy_deny"
                        and "no https resource on %s port %d answers server name 'other.test'" % (API, T.port)
                        in c["detail"] for c in other),
          "the connection to other.test (no resource answers it): %r" % other)


def case_sni_normalised():
    """The server name is matched in lower case without one trailing dot: "API.Test." reaches
    resource api and its rules (a path rule denies, a GET gets the credential), where it was once
    passed through as bytes past them. Without a server name, the only https resource on the
    address takes the connection (its rules apply); where two share the address and port the
    connection is closed (policy_deny), never passed through."""
    need_up()
    mark, n0 = T.al.max_id(), len(uplog())

    def reqs(host, *paths):
        return b"".join(b"GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n"
                        % (p.encode(), host.encode(), b"Connection: close\r\n" if i == len(paths) - 1 else b"")
                        for i, p in enumerate(paths))
    got, end = plan_client([["send", b64(reqs("api.test:%d" % T.port, "/forbidden/dot", "/sni/dot"))]],
                           name="API.Test.")
    check(re.findall(rb"HTTP/1\.1 (\d{3})", got) == [b"403", b"200"] and b"rule deny path /forbidden/*" in got,
          "server name API.Test.: %r (%s)" % (got[-400:], end))
    log = uplog()[n0:]
    check([(x["path"], x["sni"]) for x in log] == [("/sni/dot", API_NAME)]
          and b"Bearer %s" % API_SECRET.encode() in base64.b64decode(log[0]["raw"]),
          "the upstream got %r" % [(x["path"], x["sni"]) for x in log])
    n1 = len(uplog())
    got, end = plan_client([["send", b64(reqs(NAMED_NAME, "/forbidden/nosni", "/sni/none"))]], name="", addr=NAMED)
    check(re.findall(rb"HTTP/1\.1 (\d{3})", got) == [b"403", b"200"],
          "no server name, one resource on the address: %r (%s)" % (got[-400:], end))
    check([x["path"] for x in uplog()[n1:]] == ["/sni/none"], "the upstream got %r" % uplog()[n1:])
    got, end = plan_client([["send", b64(reqs(API_NAME, "/sni/none-two"))]], name="")
    check(got == b"" and end.startswith("end=error"), "no server name, two resources: %r (%s)" % (got[:200], end))
    check("/sni/none-two" not in [x["path"] for x in uplog()[n1:]], "the upstream got /sni/none-two")
    rows = wait_for(lambda: T.al.db_rows("id > ? AND dst_addr = ? AND reason = 'policy_deny'", (mark, API)), 10, 0.1)
    check(rows and "the ClientHello names no server, and 2 https resources share %s port %d" % (API, T.port)
          in rows[-1]["detail"], "the closed connection's row: %r" % rows)
    named = T.al.db_rows("id > ? AND dst_addr = ?", (mark, NAMED))
    check(named and all(c["resource"] == "named" for c in named), "rows to %s: %r" % (NAMED, named))


def upstream_tls(cmd):
    """Tells the upstream (https_upstream.py --control) "tls new" or "tls new 1.2": a fresh TLS
    context for its addresses, which knows no session issued before. True once it took it."""
    if T.up is None or T.up.poll() is not None:
        return False
    try:
        T.up.stdin.write(cmd + "\n")
        T.up.stdin.flush()
    except OSError:
        return False
    ready, _, _ = select.select([T.up.stdout], [], [], 10)
    return bool(ready) and T.up.stdout.readline().strip() == cmd + " ok"


def case_upstream_resumption():
    """README: a new upstream connection resumes the TLS session of the last one to the same
    resource and server name. Each request is its own curl (its own agent connection, so its
    own upstream connection); the upstream logs whether each connection's handshake resumed.
    Its addresses share one TLS context that would resume any session it issued, whatever the
    name or address asked for, made afresh for each round (TLS 1.3, then a TLS 1.2-only server)
    so that airlockd's older sessions are unknown there. In each round: the first connection
    to api.test (resource api) is a full handshake and the next resumes; api.test through
    ipapi's address (another resource, the same name), api2.test there (the same resource,
    another name) and api2.test on api's address (resource api2) are each a full handshake
    (no other key's session offered), then resume their own; api.test on api still resumes."""
    need_up()
    steps = [  # resource, server name, address, resumed
        ("api", API_NAME, API, False), ("api", API_NAME, API, True),
        ("ipapi", API_NAME, IPAPI, False), ("ipapi", API2_NAME, IPAPI, False), ("api2", API2_NAME, API, False),
        ("ipapi", API_NAME, IPAPI, True), ("ipapi", API2_NAME, IPAPI, True), ("api2", API2_NAME, API, True),
        ("api", API_NAME, API, True)]
    try:
        for version, cmd in (("TLSv1.3", "tls new"), ("TLSv1.2", "tls new 1.2")):
            check(upstream_tls(cmd), "the upstream did not take %r" % cmd)
            n0 = len(uplog())
            for i, (res, name, addr, _) in enumerate(steps):
                path = "/resume/%s/%d" % (version, i)
                r = T.cg.run(as_agent([CURL, "-sS", "--max-time", "25", "--resolve",
                                       "%s:%d:%s" % (name, T.port, addr), "--cacert", T.ca,
                                       "https://%s:%d%s" % (name, T.port, path)]), timeout=30, env=agent_env())
                check(r.returncode == 0 and '"path": "%s"' % path in r.stdout,
                      "%s, step %d (%s as %s): curl exit %d %r %s"
                      % (version, i, res, name, r.returncode, r.stdout[-200:], r.stderr.strip()))
            seen = {}
            for x in uplog()[n0:]:
                seen.setdefault(x["path"], []).append(x)
            got, bad = [], []
            for i, (res, name, addr, resumed) in enumerate(steps):
                x = seen.get("/resume/%s/%d" % (version, i), [])
                c = x[0] if len(x) == 1 else {}
                got.append("%d %s/%s: %s" % (i, res, name, "conn %s to %s, sni %s, %s, reused=%s" % (
                    c["conn"], c["addr"], c["sni"], c["tls"], c["reused"]) if c else "%d requests" % len(x)))
                if not (c and c["addr"] == "%s:%d" % (addr, T.port) and c["sni"] == name
                        and c["tls"] == version and c["reused"] is resumed):
                    bad.append("step %d (%s as %s, want reused=%s)" % (i, res, name, resumed))
            check(not bad, "%s: %s; upstream saw: %s" % (version, ", ".join(bad), " | ".join(got)))
            conns = [seen[p][0]["conn"] for p in seen if p.startswith("/resume/%s/" % version)]
            check(len(set(conns)) == len(steps), "%s: not one upstream connection per agent connection: %r"
                  % (version, conns))
            note("%s: upstream connections %d-%d, resumed: %s" % (
                version, min(conns), max(conns), " ".join("%d %s/%s %s" % (i, res, name, "yes" if r else "no")
                                                          for i, (res, name, _, r) in enumerate(steps))))
    finally:
        back = upstream_tls("tls new")         # later cases: TLS 1.3 again
    check(back, "the upstream did not take TLS 1.3 back")


def case_replay_http():
    """`airlockctl replay` of an https session shows its requests in order: what was asked,
    what was decided and what came back (an allowed GET's 200, a rule's 403)."""
    need_up()
    mark = T.al.max_id()
    base = "https://%s:%d" % (API_NAME, T.port)
    r = T.cg.run(as_agent([CURL, "-sS", "--max-time", "25", "--resolve", "%s:%d:%s" % (API_NAME, T.port, API),
                           "--cacert", T.ca, base + "/replay/one?x=1", base + "/forbidden/replay"]),
                 timeout=30, env=agent_env())
    check(r.returncode == 0, "curl: exit %d %s" % (r.returncode, r.stderr.strip()))

    def conn():
        h = http_rows("path = '/replay/one' AND conn_id > ?", (mark,))
        c = T.al.db_rows("id = ?", (h[0]["conn_id"],)) if h else []
        return c[0]["id"] if c and c[0]["closed_us"] else None
    cid = wait_for(conn, 10, 0.1)
    check(cid, "no closed connection with the /replay/one request: %r" % http_rows("conn_id > ?", (mark,)))
    r = T.al.ctl("replay", str(cid), "--speed", "0", timeout=30)
    check(r.returncode == 0, "replay %d: %s" % (cid, r.stderr.strip()))
    out = r.stdout
    one = re.search(r"https> GET https://\S+/replay/one\?x=1\n\s+allow -> 200, \d+ bytes", out)
    forb = re.search(r"https> GET https://\S+/forbidden/replay\n\s+deny \(rule deny path /forbidden/\*\) -> 403", out)
    check(one and forb and one.start() < forb.start(), "replay of session %d: %r" % (cid, out))
    note("replay of https session %d: %d lines" % (cid, len(out.splitlines())))


def case_review_half_close():
    """An agent that half-closes after its request (a TCP FIN, no close_notify: as
    shutdown(SHUT_WR) or printf | nc) while the request is held has not left: approved, it
    gets the answer, and the request is approved, not abandoned. Over TLS 1.3 and 1.2."""
    need_up()
    for modes in ("nonotify fin", "nonotify fin tls12"):
        after = max_req()
        n0 = len(uplog())
        path = "/items/half-%s" % ("tls12" if "tls12" in modes else "tls13")
        p = close_client(delete_bytes(path), modes, bg=True)
        row = wait_request(path, after)
        time.sleep(0.5)             # its FIN is in and seen
        check(p.poll() is None, "%s: the agent was answered while its request was pending" % modes)
        st = requests("id = ?", (row["id"],))[0]
        check(st["state"] == "pending", "%s: request %d is %r (%r) after the agent's half-close"
              % (modes, row["id"], st["state"], st["reason"]))
        rv("approve", row["id"])
        out, err = p.communicate(timeout=30)
        got = answers(base64.b64decode(out))
        check([s for s, _ in got] == [200] and path.encode() in got[0][1],
              "%s: the agent got %r (%s)" % (modes, got, err.strip()[-200:]))
        check([l["path"] for l in uplog()[n0:]] == [path], "%s: upstream got %r" % (modes, uplog()[n0:]))
        check(requests("id = ?", (row["id"],))[0]["state"] == "approved",
              "%s: request %r" % (modes, requests("id = ?", (row["id"],))))
        x = wait_for(lambda: [h for h in http_rows("id = ?", (row["stmt_id"],)) if h["status"]], 5)
        check(x and x[0]["status"] == 200 and not x[0]["error"],
              "%s: http_requests row %r" % (modes, http_rows("id = ?", (row["stmt_id"],))))


def case_review_agent_gone():
    """An agent that closes its socket (TLS 1.3: the bytes it gets then are answered with a
    reset) or resets its connection while its request is held: the request is abandoned and
    nothing reaches upstream."""
    need_up()
    for how in ("close", "reset"):
        after = max_req()
        n0 = len(uplog())
        path = "/items/gone-%s" % how
        p = T.cg.popen(as_agent([lib.PY, "-c", GONE_CLIENT, API, str(T.port), API_NAME, T.ca,
                                 base64.b64encode(delete_bytes(path)).decode(), how]),
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=agent_env())
        row = wait_request(path, after)
        check(p.stdout.readline().strip() == "sent", "%s: the client did not send" % how)
        p.stdin.write("go\n")
        p.stdin.flush()
        p.wait(timeout=10)
        r = wait_for(lambda: [x for x in requests("id = ? AND state != 'pending'", (row["id"],))], 5, 0.05)
        check(r and r[0]["state"] == "abandoned", "%s: request %d is %r 5s after its agent left"
              % (how, row["id"], requests("id = ?", (row["id"],))))
        check(len(uplog()) == n0, "%s: upstream received %r" % (how, uplog()[n0:]))


def java_keystore_entries(path):
    kt = shutil.which("keytool", path="/usr/bin")
    if not kt:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    r = subprocess.run([kt, "-list", "-keystore", path, "-storepass", "changeit"], capture_output=True,
                       text=True, timeout=60)
    fps = sorted(l.split(": ", 1)[1] for l in r.stdout.splitlines() if "fingerprint" in l)
    return "keystore:%d:%s" % (len(fps), hashlib.sha256("\n".join(fps).encode()).hexdigest())


def trust_snapshot():
    snap = {}
    for d in ("/usr/local/share/ca-certificates", "/etc/ssl/certs"):
        for root, dirs, files in os.walk(d):
            for f in files:
                p = os.path.join(root, f)
                try:
                    if p == "/etc/ssl/certs/java/cacerts":
                        # A keystore rewritten by keytool: compare what it holds, not its bytes.
                        snap[p] = java_keystore_entries(p)
                    elif os.path.islink(p):
                        snap[p] = "link:" + os.readlink(p)
                    else:
                        with open(p, "rb") as fh:
                            snap[p] = hashlib.sha256(fh.read()).hexdigest()
                except OSError as e:
                    snap[p] = "error:%s" % e
    return snap


def case_ca_install():
    need_up()
    if os.path.exists(TRUST_FILE):
        raise AssertionError("%s exists already: not touching a trust store this test did not set up"
                             % TRUST_FILE)
    before = trust_snapshot()

    def restore():
        if os.path.exists(TRUST_FILE):
            os.unlink(TRUST_FILE)
            subprocess.run(["/usr/sbin/update-ca-certificates"], capture_output=True, timeout=120)
    item = lib.on_cleanup(restore)
    try:
        r = T.al.ctl("ca", "install", timeout=120)
        check(r.returncode == 0, "ca install: %s" % r.stderr.strip())
        check(os.path.exists(TRUST_FILE), "%s not written" % TRUST_FILE)
        # curl with the system store only (no --cacert)
        r = curl("-w", "|%{http_code}", api_url("/trusted"), cacert=False)
        check(r.returncode == 0 and r.stdout.endswith("|200"),
              "curl with the system trust store: rc %d %r %s" % (r.returncode, r.stdout[-100:],
                                                                  r.stderr.strip()))
        r = T.al.ctl("ca", "uninstall", timeout=120)
        check(r.returncode == 0, "ca uninstall: %s" % r.stderr.strip())
    finally:
        lib.run_cleanup(item)
    after = trust_snapshot()
    diff = sorted(set(before.items()) ^ set(after.items()))
    check(not diff, "trust store differs after uninstall: %s" % diff[:4])


def kubeconfig():
    if not KUBECTL:
        raise AssertionError("kubectl is not installed (Debian kubernetes-client)")
    kc = os.path.join(T.tmp, "home", "kubeconfig")
    with open(kc, "w") as f:
        f.write("""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "https://%s:%d", certificate-authority: "%s"}
users:
- name: agent
  user: {token: "%s"}
contexts:
- name: test
  context: {cluster: test, user: agent, namespace: default}
current-context: test
""" % (KUBE, T.port, T.ca, AGENT_TOKEN))
    os.chmod(kc, 0o644)
    return kc


def deny_each_held(p, after, kind, reason, seen):
    """While kubectl p runs (at most 60 s), denies each request of `kind` newer than `after` that
    is held (kubectl tries WebSocket, then SPDY), calling seen(row) first. Returns the denied
    ids and p's stdout and stderr."""
    denied = []
    deadline = time.monotonic() + 60
    while p.poll() is None and time.monotonic() < deadline:
        for row in [r for r in requests("id > ? AND state = 'pending'", (after,)) if r["kind"] == kind]:
            seen(row)
            rv("deny", row["id"], "--reason", reason)
            denied.append(row["id"])
            after = max(after, row["id"])
        time.sleep(0.1)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return denied, out, err


def case_kubectl_exec():
    need_up()
    kc = kubeconfig()
    after = max_req()
    n0 = len(uplog())
    p = T.cg.popen(as_agent([KUBECTL, "--kubeconfig", kc, "--request-timeout", "60s", "exec",
                             "web-0", "-c", "app", "--", "rm", "-rf", "/data"]),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=agent_env())
    def seen(row):
        check("rm -rf /data" in row["command"] and "web-0" in row["command"],
              "exec request reads %r" % row["command"])
        time.sleep(0.3)
        check(p.poll() is None, "kubectl did not wait for the review")
    denied, out, err = deny_each_held(p, after, "exec", "no exec in prod", seen)
    check(denied, "kubectl exec was never held (stderr %s)" % err.strip()[-300:])
    check(p.returncode != 0 and "no exec in prod" in err,
          "kubectl exit %s, stderr %r" % (p.returncode, err.strip()[-400:]))
    execs = [l for l in uplog()[n0:] if l["path"].endswith("/exec")]
    check(not execs, "the exec reached upstream: %r" % execs)
    note("kubectl said: %s" % " ".join(err.split())[:200])


def case_kubectl_attach():
    """kubectl attach is held like exec (rule review exec); denied (each try: kubectl falls back
    from WebSocket to SPDY), kubectl prints the reason."""
    need_up()
    kc = kubeconfig()
    after = max_req()
    n0 = len(uplog())
    p = T.cg.popen(as_agent([KUBECTL, "--kubeconfig", kc, "--request-timeout", "60s", "attach", "web-0",
                             "-c", "app", "-i"]),
                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                   env=agent_env())
    denied, out, err = deny_each_held(
        p, after, "attach", "no attach in prod",
        lambda row: check("web-0" in row["command"], "attach request reads %r" % row["command"]))
    check(denied, "kubectl attach was never held (requests %r, stderr %s)"
          % ([(r["kind"], r["command"][:80]) for r in requests("id > ?", (max_req() - 3,))], err.strip()[-300:]))
    check(p.returncode != 0 and "no attach in prod" in err,
          "kubectl exit %s, stderr %r" % (p.returncode, err.strip()[-400:]))
    check(not [l for l in uplog()[n0:] if l["path"].endswith("/attach")], "the attach reached upstream")
    note("%d tries held and denied; kubectl said: %s" % (len(denied), " ".join(err.split())[:160]))


def case_kubectl_port_forward_denied():
    """kubectl port-forward, which a path rule denies: the upgrade never reaches the API server,
    and kubectl prints Airlock's reason."""
    need_up()
    kc = kubeconfig()
    n0 = len(uplog())
    lport = lib.free_port(("127.0.0.1",))
    p = T.cg.popen(as_agent([KUBECTL, "--kubeconfig", kc, "--request-timeout", "30s", "port-forward",
                             "pod/web-0", "%d:80" % lport]),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=agent_env())
    # kubectl may dial the API server only when the first local connection comes.
    deadline = time.monotonic() + 30
    while p.poll() is None and time.monotonic() < deadline:
        try:
            T.cg.run(["/usr/bin/python3", "-c", "import socket; socket.create_connection(('127.0.0.1', %d), 2)"
                      ".recv(1)" % lport], timeout=10)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.3)
    if p.poll() is None:
        p.kill()
    out, err = p.communicate()
    check("denied by rule 'rule deny path /api/v1/namespaces/*/pods/*/portforward'" in err,
          "kubectl port-forward exit %s, stdout %r, stderr %r" % (p.returncode, out[-200:], err.strip()[-500:]))
    check(not [l for l in uplog()[n0:] if l["path"].endswith("/portforward")],
          "the port-forward reached upstream")
    # Group commit: the denied upgrade's row may land a few ms after kubectl gave up.
    rows = wait_for(lambda: http_rows("path = ?", ("/api/v1/namespaces/default/pods/web-0/portforward",)),
                    5, 0.05)
    check(rows and rows[-1]["decision"] == "deny" and json.loads(rows[-1]["k8s"])["verb"] == "portforward",
          "the port-forward's row: %r" % rows[-1:])
    note("kubectl said: %s" % " ".join(err.split())[:200])


def exec_recording(row):
    """The connection of an approved exec's review request row (its upgrade answered 101) and
    its recording, once the exit status is in it: (conn_id, [(dir, type, data)])."""
    h = wait_for(lambda: [x for x in http_rows("id = ?", (row["stmt_id"],)) if x["status"] == 101], 5)
    check(h, "the exec's http_requests row: %r" % http_rows("id = ?", (row["stmt_id"],)))
    conn = h[0]["conn_id"]
    recs = wait_for(lambda: (lambda r: r if any(t == "status" for _, t, _ in r) else None)(recordings(conn)),
                    10, 0.1)
    check(recs, "no recorded status for session %d: %r" % (conn, recordings(conn)))
    return conn, recs


def approve_held_exec(p, after, what):
    """Waits for the exec request newer than `after` that the running client p made to be
    held, approves it, and returns the request row and p's stdout and stderr once it exits."""
    row = wait_for(lambda: next((r for r in requests("id > ? AND state = 'pending'", (after,))
                                 if r["kind"] == "exec"), None), 30, 0.05)
    if not row:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("%s was never held (stderr %s)" % (what, err.strip()[-300:]))
    rv("approve", row["id"])
    try:
        out, err = p.communicate(timeout=60)
        return row, out, err
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("%s hung after approval: %r %r" % (what, out[-200:], err[-300:]))


def recordings(conn_id):
    """(dir, type, data) of a session's recorded messages in order, as `airlockctl export` has them."""
    r = T.al.ctl("export", str(conn_id), "--format", "jsonl")
    check(r.returncode == 0, "airlockctl export %d: %s" % (conn_id, r.stderr.strip()[-300:]))
    return [(m["dir"], m["type"], m["data"]) for m in map(json.loads, r.stdout.splitlines())]


def exec_approved_replayed(stream, env):
    """An approved `kubectl exec -i` over STREAM: the agent gets the command's output, and
    `airlockctl replay` / `export --format asciicast` of its connection show what it printed
    and what was typed."""
    need_up()
    kc = kubeconfig()
    # markup the console must show as text
    typed = "typed-over-%s-%s <img src=x onerror=window.__xss=1>" % (stream.split("/")[0], lib.RUN_ID)
    typed_file = os.path.join(T.tmp, "stdin-%s" % stream.split("/")[0])
    with open(typed_file, "w") as f:
        f.write(typed + "\n")
    after = max_req()
    with open(typed_file) as stdin:
        p = T.cg.popen(as_agent([KUBECTL, "--kubeconfig", kc, "--request-timeout", "60s", "exec", "-i",
                                 "web-0", "-c", "app", "--", "sh", "-c", "echo hi"]),
                       stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=agent_env(**env))
    row, out, err = approve_held_exec(p, after, "kubectl exec")
    check(p.returncode == 0 and "hello from web-0: sh -c echo hi" in out
          and "you typed: %s" % typed in out and "a line on stderr" in err,
          "kubectl exit %s, stdout %r, stderr %r" % (p.returncode, out[-300:], err.strip()[-300:]))
    conn, recs = exec_recording(row)
    kinds = [d + t for d, t, _ in recs]
    check(kinds[0] == "Fexec" and "Bstdout" in kinds and "Bstderr" in kinds and "Fstdin" in kinds,
          "recording rows of session %d: %r" % (conn, kinds))
    check(json.loads(recs[0][2])["stream"] == stream, "exec row: %r" % (recs[0],))
    r = T.al.ctl("replay", str(conn), "--speed", "0", timeout=30)
    check(r.returncode == 0, "replay %d: %s" % (conn, r.stderr.strip()))
    # In time order: the command, then (as the two sides interleave) its output and the
    # agent's stdin; each typed line before its echo; the exit status last.
    head = "k8s> kubectl exec -n default web-0 -c app -- sh -c 'echo hi'   [%s]\n" % stream
    at = {w: r.stdout.find(w) for w in (head, "hello from web-0: sh -c echo hi\n", "a line on stderr\n",
                                         "stdin> %s\n" % typed, "you typed: %s\n" % typed,
                                         "-- the command exited with code 0\n")}
    order = sorted(at, key=at.get)
    check(min(at.values()) >= 0 and order[0] == head and order[-1].startswith("-- the command exited")
          and at["stdin> %s\n" % typed] < at["you typed: %s\n" % typed]
          and at["hello from web-0: sh -c echo hi\n"] < at["you typed: %s\n" % typed],
          "replay of session %d: %r" % (conn, r.stdout))
    # the agent's colour passes; its title sequence reaches the responder's terminal as text
    check("\x1b[1mbold\x1b[0m ^[]0;retitled^G\n" in r.stdout and "\x1b]" not in r.stdout,
          "replay is not terminal-safe: %r" % r.stdout)
    c = T.al.ctl("export", str(conn), "--format", "asciicast", timeout=30)
    check(c.returncode == 0, "export %d: %s" % (conn, c.stderr.strip()))
    lines = c.stdout.splitlines()
    check(json.loads(lines[0]).get("version") == 2, "asciicast header: %r" % lines[0])
    text = "".join(json.loads(ln)[2] for ln in lines[1:] if json.loads(ln)[1] == "o")
    check("hello from web-0: sh -c echo hi\r\n" in text and "you typed: %s\r\n" % typed in text,
          "asciicast output: %r" % text[-400:])
    if ASCIINEMA:
        path = os.path.join(T.tmp, "exec-%d.cast" % conn)
        with open(path, "w") as f:
            f.write(c.stdout)
        # asciinema cat opens /dev/tty: give it a pseudo-terminal (util-linux script).
        a = subprocess.run(["/usr/bin/script", "-q", "-e", "-c", "%s cat %s" % (ASCIINEMA, path),
                            "/dev/null"], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL, env=dict(lib.CLIENT_ENV, HOME=os.path.join(T.tmp, "home")))
        check(a.returncode == 0 and "you typed: %s" % typed in a.stdout,
              "asciinema cat: rc %d %r %s" % (a.returncode, a.stdout[-300:], a.stderr.strip()[-200:]))
    T.execs[stream] = (conn, typed)
    note("session %d replayed (%d recording rows)" % (conn, len(recs)))


def case_exec_websocket_replay():
    exec_approved_replayed("websocket", {})


def case_exec_websocket_unoffered_extension():
    """An API server whose 101 takes permessage-deflate though Airlock offered it no extension
    (it keeps the agent's offer from the server): the stream could not be decoded for the
    recording, so the agent gets a 502 with the reason instead of the upgrade, the request's row
    says why, and the daemon goes on."""
    need_up()
    after = max_req()
    p = T.cg.popen(as_agent([lib.PY, "-c", WS_B64_CLIENT, KUBE, str(T.port), T.ca, AGENT_TOKEN, "x",
                             "deflate-0"]),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=agent_env())
    row, out, err = approve_held_exec(p, after, "the exec to a deflating server")
    check(p.returncode != 0 and "no upgrade" in err and "HTTP/1.1 502" in err
          and "WebSocket extension it was not offered" in err,
          "client exit %s, stdout %r, stderr %r" % (p.returncode, out[-300:], err.strip()[-400:]))
    ups = [base64.b64decode(x["raw"]) for x in uplog() if "/pods/deflate-0/exec" in x["path"]]
    check(ups and all(b"sec-websocket-extensions" not in u.lower() for u in ups),
          "the exec upgrade as the API server got it: %r" % [u[:600] for u in ups])
    rows = lambda: http_rows("path = ?", ("/api/v1/namespaces/default/pods/deflate-0/exec",))  # noqa: E731
    r = wait_for(lambda: next((x for x in rows() if x["error"]), None), 10, 0.05)
    check(r and "WebSocket extension it was not offered" in r["error"] and r["status"] != 101
          and r["id"] == row["stmt_id"], "the request's rows: %r" % (rows(),))
    st = T.al.ctl("status")
    check(st.returncode == 0, "airlockd is not answering after the refused upgrade: %s" % st.stderr.strip())


def case_upstream_client_cert():
    """A resource whose upstream requires a client certificate (as a Kubernetes API server does):
    the agent's curl, which has none, gets its answer through Airlock, which presents the
    credential's; the same curl outside the pinned cgroup cannot even finish the handshake."""
    need_up()
    n0 = len(uplog())
    url = "https://%s:%d/whoami" % (MTLS, T.port)
    r = T.cg.run(as_agent([CURL, "-sS", "--max-time", "25", "--cacert", T.ca, "-w", "\n%{http_code}", url]),
                 timeout=30, env=agent_env())
    body, _, code = r.stdout.rpartition("\n")
    check(r.returncode == 0 and code == "200", "curl through Airlock: exit %d, %r %s"
          % (r.returncode, r.stdout[-300:], r.stderr.strip()))
    seen = [x for x in uplog()[n0:] if x["addr"].startswith(MTLS + ":")]
    check(len(seen) == 1 and seen[0]["path"] == "/whoami" and seen[0]["client"] == MTLS_CLIENT,
          "what the upstream saw: %r" % [(x["path"], x["client"]) for x in seen])
    d = subprocess.run([CURL, "-sS", "--max-time", "10", "--cacert", T.test_ca, url], capture_output=True,
                       text=True, timeout=20, env=lib.CLIENT_ENV)
    check(d.returncode != 0 and len(uplog()) == n0 + 1,
          "curl outside the cgroup, without a client certificate: exit %d %r" % (d.returncode, d.stdout[:200]))
    note("through Airlock: 200 as %r; directly: curl exit %d (%s)"
         % (MTLS_CLIENT, d.returncode, d.stderr.strip()[:120]))


def case_exec_spdy_replay():
    # kubectl >= 1.29 speaks WebSocket first; this makes it use SPDY/3.1 as older ones do.
    exec_approved_replayed("spdy/3.1", {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"})


def case_exec_base64_replay():
    """An approved exec whose API server picks v4.base64.channel.k8s.io (a browser terminal's
    protocol): the recording is decoded as for v4.channel.k8s.io, and replay shows it."""
    need_up()
    typed = "typed-over-base64-%s" % lib.RUN_ID
    after = max_req()
    p = T.cg.popen(as_agent([lib.PY, "-c", WS_B64_CLIENT, KUBE, str(T.port), T.ca, AGENT_TOKEN, typed]),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=agent_env())
    row, out, err = approve_held_exec(p, after, "the base64 exec")
    check(p.returncode == 0 and "hello from web-0: sh -c echo hi" in out and "you typed: %s" % typed in out
          and "a line on stderr" in err,
          "client exit %s, stdout %r, stderr %r" % (p.returncode, out[-300:], err.strip()[-300:]))
    # The agent offered permessage-deflate; the API server was not offered it.
    ups = [base64.b64decode(x["raw"]) for x in uplog()
           if "/pods/web-0/exec" in x["path"] and b"echo%20hi" in base64.b64decode(x["raw"])]
    check(ups and all(b"sec-websocket-extensions" not in u.lower() for u in ups) and
          all(b"sec-websocket-key" in u.lower() for u in ups),
          "the exec upgrade as the API server got it: %r" % [u[:600] for u in ups])
    conn, recs = exec_recording(row)
    kinds = [d + t for d, t, _ in recs]
    check(kinds[0] == "Fexec" and "Bstdout" in kinds and "Bstderr" in kinds and "Fstdin" in kinds
          and "Aundecoded" not in kinds and "Bdata" not in kinds,
          "recording rows of session %d: %r" % (conn, recs))
    check(json.loads(recs[0][2])["stream"] == "websocket/base64", "exec row: %r" % (recs[0],))
    check(("F", "stdin", typed + "\n") in recs, "stdin rows: %r" % [r for r in recs if r[1] == "stdin"])
    r = T.al.ctl("replay", str(conn), "--speed", "0", timeout=30)
    check(r.returncode == 0, "replay %d: %s" % (conn, r.stderr.strip()))
    head = "k8s> kubectl exec -n default web-0 -c app -- sh -c 'echo hi'   [websocket/base64]\n"
    at = {w: r.stdout.find(w) for w in (head, "hello from web-0: sh -c echo hi\n", "a line on stderr\n",
                                         "stdin> %s\n" % typed, "you typed: %s\n" % typed,
                                         "-- the command exited with code 0\n")}
    order = sorted(at, key=at.get)
    check(min(at.values()) >= 0 and order[0] == head and order[-1].startswith("-- the command exited")
          and at["stdin> %s\n" % typed] < at["you typed: %s\n" % typed],
          "replay of session %d: %r" % (conn, r.stdout))
    check("\x1b[1mbold\x1b[0m ^[]0;retitled^G\n" in r.stdout, "replay is not terminal-safe: %r" % r.stdout)
    note("session %d (v4.base64.channel.k8s.io) replayed (%d recording rows)" % (conn, len(recs)))


def console_get(path, token):
    st, _, body = lib.http_request(T.console.rstrip("/") + path, headers={"Authorization": "Bearer " + token})
    return st, body


# What the fake pod printed first (https_upstream.py: its greeting, then TERMINAL_LINE).
EXEC_OUT = "hello from web-0: sh -c echo hi\n\x1b[1mbold\x1b[0m \x1b]0;retitled\x07\n"
EXEC_CMD = "kubectl exec -n default web-0 -c app -- sh -c 'echo hi'"


def case_console_exec_session():
    """The console's session view of an approved exec: the API gives the exec's request and its
    recorded stream; in Chromium the page shows the command, what it printed and what was typed
    as text, control characters as visible escapes, markup inert."""
    need_up()
    check(T.execs, "no approved exec session to look at (the exec cases failed)")
    r = T.al.ctl("console", "token", REVIEWER[0])
    check(r.returncode == 0 and len(r.stdout.strip()) == 64, "console token: %s" % r.stderr.strip())
    token = r.stdout.strip()
    for stream, (conn, typed) in sorted(T.execs.items()):
        st, body = console_get("/api/v1/sessions/%d" % conn, token)
        check(st == 200, "GET /api/v1/sessions/%d: %d %s" % (conn, st, body[:300]))
        j = json.loads(body)
        ex = j.get("exec") or []
        check(ex and ex[0]["type"] == "exec" and json.loads(ex[0]["data"])["command"] == EXEC_CMD,
              "session %d exec rows: %r" % (conn, ex[:2]))
        out = "".join(x["data"] for x in ex if x["type"] == "stdout")
        typed_in = "".join(x["data"] for x in ex if x["type"] == "stdin" and x["dir"] == "F")
        check(out.startswith(EXEC_OUT) and "you typed: %s\n" % typed in out and typed + "\n" in typed_in
              and any(x["type"] == "stderr" and x["data"] == "a line on stderr\n" for x in ex)
              and ex[-1]["type"] == "status" and [x["seq"] for x in ex] == sorted(x["seq"] for x in ex),
              "session %d stream: stdout %r, stdin %r, last %r" % (conn, out[:300], typed_in, ex[-1]))
        hr = j.get("http_requests") or []
        check(any(h["path"].endswith("/pods/web-0/exec") and h["status"] == 101 for h in hr),
              "session %d http_requests: %r" % (conn, [(h["method"], h["path"], h["status"]) for h in hr]))
        # Page by page (the exec stream and the requests in one timeline), small pages give the
        # same rows, and each page ends no later than the next begins.
        check(j.get("next") is None, "session %d in one page has a next: %r" % (conn, j.get("next")))
        for limit in (1, 2, 5):
            paged, nxt, ends = {"http_requests": [], "exec": []}, "", []
            for _ in range(1000):
                st, body = console_get("/api/v1/sessions/%d?limit=%d%s" % (conn, limit, nxt and "&after=" +
                                                                           urllib.parse.quote(nxt)), token)
                check(st == 200, "session %d page: %d %s" % (conn, st, body[:300]))
                pj = json.loads(body)
                at = [x["at_us"] for k in paged for x in pj[k]]
                check(all(len(pj[k]) <= limit for k in paged) and at, "session %d page of %d: %r"
                      % (conn, limit, {k: len(pj[k]) for k in paged}))
                ends.append((min(at), max(at)))
                for k in paged:
                    paged[k] += pj[k]
                if not pj["next"]:
                    break
                nxt = pj["next"]
            check(paged == {k: j[k] for k in paged} and
                  all(ends[i][1] <= ends[i + 1][0] for i in range(len(ends) - 1)),
                  "session %d in pages of %d: %d pages, %r" % (conn, limit, len(ends),
                                                               {k: len(v) for k, v in paged.items()}))
        note("session %d: %d requests and %d exec rows, the same in pages of 1, 2 and 5" % (conn, len(hr), len(ex)))
    if not os.access(CHROMIUM, os.X_OK):
        note("no %s: the page itself is not checked" % CHROMIUM)
        return
    sys.path.insert(0, os.path.join(REPO, "tests", "console"))
    from test_console import Browser
    ud = os.path.join(T.tmp, "chromium-profile")
    os.makedirs(ud, 0o700, exist_ok=True)
    b = Browser(ud)
    try:
        b.open_page()
        b.goto(T.console)
        b.wait_js("!document.getElementById('login').hidden", 10, "the login form")
        b.js("document.getElementById('login-name').value = %s;"
             "document.getElementById('login-password').value = %s;"
             "document.getElementById('login-submit').click(); true"
             % (json.dumps(REVIEWER[0]), json.dumps(REVIEWER_PW)))
        b.wait_js("!document.getElementById('app').hidden", 10, "the app after login")
        for stream, (conn, typed) in sorted(T.execs.items()):
            b.js("location.hash = '#/session/%d'; true" % conn)
            b.wait_js("document.getElementById('s-id').textContent === '#%d' && "
                      "[...document.querySelectorAll('#s-stmts li.exec')].some(li => li.classList.contains('status'))"
                      % conn, 10, "session %d's exec stream on the page" % conn)
            text = b.js("document.getElementById('s-stmts').textContent")
            shown_out = EXEC_OUT.replace("\x1b", "\\u001B").replace("\x07", "\\u0007")
            for want in (EXEC_CMD, "[%s]" % stream, shown_out, "you typed: %s\n" % typed, typed + "\n",
                         "a line on stderr", "the command exited with code 0"):
                check(want in text, "session %d page lacks %r: %r" % (conn, want, text[:1500]))
            check("\x1b" not in text and "\x07" not in text, "raw control characters on the page: %r" % text[:600])
            check(b.js("[...document.querySelectorAll('#s-stmts .esc')].map(e => e.textContent).join(' ')")
                  .startswith("\\u001B \\u001B \\u001B \\u0007"), "the escapes are not marked")
            check(b.js("typeof window.__xss") == "undefined"
                  and b.js("document.querySelectorAll('#app img, #app script').length") == 0,
                  "the typed markup ran or became elements")
            order = b.js("(() => { const li = [...document.querySelectorAll('#s-stmts li')];"
                         " return [li.findIndex(e => !e.classList.contains('exec') &&"
                         " e.textContent.includes('/pods/web-0/exec?')),"
                         " li.findIndex(e => e.classList.contains('exec'))]; })()")
            check(0 <= order[0] < order[1], "the exec's request is not listed before its stream: %r" % order)
    finally:
        b.close()


def case_policy_test_http():
    """A candidate that denies GET /items and drops the /forbidden rule: policy test lists those
    recorded requests as changed, and nothing else (DELETEs stay review, execs stay review)."""
    need_up()
    api = T.resources[0].replace("    rule deny path /forbidden/*\n",
                                 "    rule deny method GET path /items\n")
    check(api != T.resources[0], "the api resource has no /forbidden rule to replace")
    cand = os.path.join(T.tmp, "candidate.conf")
    with open(cand, "w") as f:
        f.write("\n".join([api] + T.resources[1:]) + "\n")
    # A POST the server would run as a GET (its override header), allowed now: the candidate's GET
    # rule meets it through the override, which the row's fingerprint keeps.
    r = curl("-X", "POST", "-H", "X-HTTP-Method-Override: GET", "-H", "Content-Type: application/json",
             "-d", "{}", "-o", "/dev/null", "-w", "%{http_code}", api_url("/items"))
    check(r.returncode == 0 and r.stdout == "200", "POST /items as GET: %r %s" % (r.stdout, r.stderr.strip()))
    time.sleep(0.5)     # its row's batch commits
    r = T.al.ctl("policy", "test", "--since", "1h", cand, "--json", timeout=30)
    check(r.returncode == 0, "policy test: %s" % (r.stderr.strip() or r.stdout.strip()))
    res = json.loads(r.stdout)
    changes = [c for c in res["changes"] if c.get("protocol") == "http"]
    check(res.get("checked_http", 0) >= 10, "policy test checked %r" % {k: v for k, v in res.items()
                                                                          if k != "changes"})
    items = [c for c in changes if c["text"].startswith("GET https://%s:%d/items" % (API_NAME, T.port))]
    forb = [c for c in changes if "/forbidden/" in c["text"]]
    posts = [c for c in changes if c["text"].startswith("POST https://%s:%d/items" % (API_NAME, T.port))]
    check(posts and all(c["was"] == "allow" and c["would_be"] == "deny" for c in posts),
          "the POST decided through its override GET: %r" % posts)
    check(items and all(c["was"] == "allow" and c["would_be"] == "deny"
                        and c["rule"] == "rule deny method GET path /items" and c["resource"] == "api"
                        and isinstance(c["http_request"], int) for c in items),
          "GET /items changes: %r" % items)
    check(forb and all(c["was"] == "deny" and c["would_be"] == "allow" for c in forb),
          "/forbidden change: %r" % forb)
    other = [c for c in changes if c not in items and c not in forb and c not in posts]
    check(not other, "changes the candidate does not make: %r" % other[:3])
    t = T.al.ctl("policy", "test", "--since", "1h", cand, timeout=30)
    check(t.returncode == 0 and "HTTP requests checked" in t.stdout
          and re.search(r"http #\d+ allow -> deny \(rule deny method GET path /items\) on api", t.stdout),
          "policy test text: %r" % t.stdout[-600:])
    # the policy as it runs changes nothing
    same = os.path.join(T.tmp, "same.conf")
    with open(same, "w") as f:
        f.write("\n".join(T.resources) + "\n")
    r = T.al.ctl("policy", "test", "--since", "1h", same, "--json", timeout=30)
    check(r.returncode == 0 and not [c for c in json.loads(r.stdout)["changes"] if c.get("protocol") == "http"],
          "the running policy shows HTTP changes: %r" % r.stdout[-600:])



def held_request_command(path, data, body):
    """What reviewers read for the request data (raw_client's bytes to API_NAME, with the agent's
    Authorization, which the apitoken credential replaces): the headline, the request line and
    every header as forwarded in order (an X-Api-Key's value redacted to its length), the
    credential last and redacted, the body whole."""
    head, _, _ = data.partition(b"\r\n\r\n")
    lines = [l.decode() for l in head.split(b"\r\n")]
    fields = [l if not l.lower().startswith("x-api-key:") else
              "%s: <redacted %d bytes>" % (l.partition(":")[0], len(l.partition(":")[2].strip()))
              for l in lines[1:] if not l.lower().startswith("authorization:")]
    return ("%s https://%s:%d%s\n%s\n%s\nAuthorization: <resource credential>\n\nbody: %d bytes, sha256 %s\n%s"
            % (lines[0].split(" ")[0], API_NAME, T.port, path, lines[0], "\n".join(fields), len(body),
               hashlib.sha256(body).hexdigest(), body.decode()))


def case_review_full_body():
    """A held request shows reviewers all it sends: the whole body (past the 2 KiB the text once
    showed, where an agent could hide a second operation), every header as forwarded (a custom
    one too), the credential redacted, the agent's own X-Api-Key shown as its length only, in the
    request row, `airlockctl show` (text and --json) and the console API, whose sha256 is still
    that of the exact bytes; approved, exactly that goes upstream."""
    need_up()
    tail = '"then":"drop-table-%s"}' % lib.RUN_ID
    body = ('{"reason":"cleanup","note":"%s",%s' % ("x" * 20000, tail)).encode()
    path = "/items/11"
    data = (b"DELETE %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: raw-agent\r\nAuthorization: Bearer %s\r\n"
            b"X-Delete-Mode: cascade\r\nX-Api-Key: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n"
            % (path.encode(), API_NAME.encode(), T.port, AGENT_TOKEN.encode(), AGENT_API_KEY.encode(),
               len(body)) + body)
    want = held_request_command(path, data, body)
    after = max_req()
    n0 = len(uplog())
    p = raw_client(data, bg=True)
    row = wait_request("DELETE https://%s:%d%s\n" % (API_NAME, T.port, path), after)
    check(row["command"] == want, "the request row's command is not the whole request as forwarded:\n%r\nwant\n%r"
          % (row["command"][:600] + " ... " + row["command"][-200:], want[:600] + " ... " + want[-200:]))
    check(AGENT_TOKEN not in row["command"] and API_SECRET not in row["command"], "a credential in %r" % row["command"][:600])
    check(row["sha256"] == hashlib.sha256(data).hexdigest(), "the request's sha256 %s is not that of the exact "
          "bytes" % row["sha256"])
    shown = rv("show", row["id"]).stdout
    check(tail in shown and "X-Delete-Mode: cascade" in shown and "Authorization: <resource credential>" in shown
          and "X-Api-Key: <redacted %d bytes>" % len(AGENT_API_KEY) in shown,
          "airlockctl show %d lacks the body's tail or a header: %r" % (row["id"], shown[:300] + " ... " + shown[-300:]))
    out = rv("show", row["id"], "--json").stdout
    j = json.loads(out)
    check(j.get("command") == want, "airlockctl show --json: command %r" % (j.get("command") or "")[-200:])
    check(AGENT_API_KEY not in shown and AGENT_API_KEY not in out and AGENT_API_KEY not in row["command"],
          "the agent's X-Api-Key is shown to reviewers")
    r = T.al.ctl("console", "token", REVIEWER[0])
    check(r.returncode == 0, "console token: %s" % r.stderr.strip())
    st, got = console_get("/api/v1/requests/%d" % row["id"], r.stdout.strip())
    check(st == 200, "console GET /api/v1/requests/%d: %d %s" % (row["id"], st, got[:200]))
    j = json.loads(got)
    j = j.get("request", j)
    check(j.get("command") == want, "the console API's command: %r" % (j.get("command") or "")[-200:])
    check(AGENT_API_KEY not in got, "the console API shows the agent's X-Api-Key")
    check(len(uplog()) == n0, "upstream received something while the DELETE was parked")
    rv("approve", row["id"])
    out, err = p.communicate(timeout=30)
    status, head, _ = parse_response(base64.b64decode(out))
    check(status == 200, "agent got %r after approval (stderr %s)" % (head[:200], err.strip()[-200:]))
    log = uplog()[n0:]
    sent = data.replace(b"Authorization: Bearer %s\r\n" % AGENT_TOKEN.encode(), b"").replace(
        b"Connection: close\r\n\r\n", b"Connection: close\r\nAuthorization: Bearer %s\r\n\r\n" % API_SECRET.encode())
    check(len(log) == 1 and base64.b64decode(log[0]["raw"]) == sent,
          "upstream received %r, want exactly the request reviewed" % [base64.b64decode(x["raw"])[:300] for x in log])


def case_method_override():
    """A POST that asks the server to run it as a DELETE (X-HTTP-Method-Override, or a _method
    query parameter) meets the DELETE rules (the strictest of both decides): held for review,
    its headline and header in the text reviewers read, its row keeping the method sent and the
    header; a plain POST to the same path is allowed."""
    need_up()
    r = curl("-X", "POST", "-H", "Content-Type: application/json", "-d", "{}", "-w", "\n%{http_code}",
             api_url("/items/12"))
    check(r.returncode == 0 and r.stdout.endswith("\n200"), "plain POST: %r %s" % (r.stdout[-200:], r.stderr.strip()))
    for how, args, url in (("header", ["-H", "X-HTTP-Method-Override: DELETE"], api_url("/items/12")),
                           ("query", [], api_url("/items/12?_method=delete"))):
        after = max_req()
        n0 = len(uplog())
        p = T.cg.popen(as_agent([CURL, "-sS", "--max-time", "30", "--resolve", "%s:%d:%s" % (API_NAME, T.port, API),
                                 "--cacert", T.ca, "-X", "POST", "-H", "Content-Type: application/json",
                                 "-d", '{"id":12}', "-w", "\n%{http_code}"] + args + [url]),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=agent_env())
        row = wait_request("POST (override DELETE) https://%s:%d/items/12" % (API_NAME, T.port), after)
        check(row["kind"] == "post" and row["command"].endswith('\n{"id":12}')
              and (how != "header" or "\nX-HTTP-Method-Override: DELETE\n" in row["command"]),
              "%s: request row %r" % (how, {k: row[k] for k in ("kind", "command", "rule")}))
        check("rule review method DELETE" in (row["rule"] or ""), "%s: held by %r" % (how, row["rule"]))
        shown = rv("show", row["id"]).stdout
        check("POST (override DELETE)" in shown and (how != "header" or "X-HTTP-Method-Override: DELETE" in shown),
              "%s: airlockctl show: %r" % (how, shown[:400]))
        time.sleep(0.2)
        check(p.poll() is None and len(uplog()) == n0, "%s: answered or sent upstream while held" % how)
        rv("deny", row["id"], "--reason", "no deletes by override")
        out, err = p.communicate(timeout=30)
        body, _, code = out.rpartition("\n")
        check(code == "403" and "no deletes by override" in json.loads(body or "{}").get("reason", ""),
              "%s: curl after deny: %r %s" % (how, out[-300:], err.strip()))
        check(len(uplog()) == n0, "%s: upstream received the denied request" % how)
        h = wait_for(lambda: [x for x in http_rows("id = ?", (row["stmt_id"],)) if x["status"]], 5)
        check(h and h[0]["method"] == "POST" and h[0]["decision"] == "denied"
              and (how != "header" or json.loads(h[0]["headers"]).get("x-http-method-override") == "DELETE"),
              "%s: http_requests row %r" % (how, http_rows("id = ?", (row["stmt_id"],))))


def case_review_unreadable_body():
    """A request that needs review with a body reviewers could not read (binary: not UTF-8, NUL
    bytes; or content-coded) is denied with the reason and never held or sent; the same binary
    body on an allowed POST goes through whole."""
    need_up()
    data = bytes(range(256)) * 20
    path = os.path.join(T.tmp, "home", "small.bin")
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)
    for what, args in (("binary", ["-H", "Content-Type: application/octet-stream", "--data-binary", "@" + path]),
                       ("gzip", ["-H", "Content-Type: application/json", "-H", "Content-Encoding: gzip",
                                 "--data-binary", '{"ok":1}'])):
        after = max_req()
        h0 = T.al.max_id("http_requests")
        n0 = len(uplog())
        r = curl("-X", "DELETE", "-w", "\n%{http_code}", *(args + [api_url("/items/14")]))
        body, _, code = r.stdout.rpartition("\n")
        reason = json.loads(body or "{}").get("reason", "")
        check(code == "403" and "reviewers could not read the body" in reason
              and ("binary" in reason if what == "binary" else "Content-Encoding" in reason),
              "%s DELETE: %r %s" % (what, r.stdout[-300:], r.stderr.strip()))
        check(len(uplog()) == n0, "%s: the upstream received the DELETE" % what)
        check(max_req() == after, "%s: a review request was made: %r" % (what, requests("id > ?", (after,))))
        rows = wait_for(lambda: [x for x in http_rows("id > ? AND path = '/items/14'", (h0,)) if x["status"]], 5)
        check(rows and rows[-1]["decision"] == "deny" and rows[-1]["status"] == 403
              and rows[-1]["body_sha256"] == hashlib.sha256(data if what == "binary" else b'{"ok":1}').hexdigest(),
              "%s: http_requests row %r" % (what, rows or http_rows("id > ?", (h0,))))
    n0 = len(uplog())
    r = curl("-H", "Content-Type: application/octet-stream", "--data-binary", "@" + path, "-w", "\n%{http_code}",
             api_url("/upload-small"))
    body, _, code = r.stdout.rpartition("\n")
    check(code == "200" and json.loads(body).get("body_len") == len(data), "binary POST: %r" % r.stdout[-200:])
    got = [base64.b64decode(x["raw"]) for x in uplog()[n0:]]
    check(len(got) == 1 and got[0].endswith(b"\r\n\r\n" + data), "the upstream did not get the binary body whole")


def case_classify_http():
    """airlockctl classify http runs the proxy's parser offline: a request file gives its command
    (exit 0), the smuggling corpus gives each its 400 reason (exit 1); --json for scripts."""
    req = (b"DELETE /api/v1/items/7?force=1 HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: agent/1\r\n"
           b"Authorization: Bearer agent-secret\r\nCookie: s=1\r\nContent-Type: text/plain\r\n"
           b"Content-Length: 5\r\n\r\nhello" % (API_NAME.encode(), T.port))
    path = os.path.join(T.tmp, "classify.http")
    with open(path, "wb") as f:
        f.write(req)
    r = T.al.ctl("classify", "http", path)
    check(r.returncode == 0, "classify http exited %d: %s" % (r.returncode, r.stderr.strip() or r.stdout))
    for want in ("method:   DELETE", "host:     %s:%d" % (API_NAME, T.port), "path:     /api/v1/items/7",
                 "query:    force=1", "kind:     delete",
                 "sha256 %s" % hashlib.sha256(b"hello").hexdigest(),
                 "sha256 %s" % hashlib.sha256(req).hexdigest()):
        check(want in r.stdout, "classify http lacks %r: %r" % (want, r.stdout))
    check("agent-secret" not in r.stdout and "s=1" not in r.stdout, "classify http shows secrets: %r" % r.stdout)
    r = T.al.ctl("classify", "http", path, "--json")
    check(r.returncode == 0, "classify http --json exited %d: %s" % (r.returncode, r.stderr.strip()))
    js = json.loads(r.stdout)
    check(js["method"] == "DELETE" and js["kind"] == "delete" and js["query"] == "force=1"
          and js["request_sha256"] == hashlib.sha256(req).hexdigest()
          and js["body_sha256"] == hashlib.sha256(b"hello").hexdigest() and js["body_len"] == 5,
          "classify http --json: %r" % js)
    check(js["headers"] == {"authorization": "(dropped: Airlock sends the resource's credential)",
                            "content-length": "5", "content-type": "text/plain", "user-agent": "agent/1"},
          "classify http --json headers: %r" % js["headers"])
    check(list(js["headers"]) == sorted(js["headers"]), "headers not sorted: %r" % r.stdout)
    # the same file on stdin
    r = subprocess.run([lib.AIRLOCKCTL, "classify", "http", "--json"], input=req, capture_output=True, timeout=10)
    check(r.returncode == 0 and json.loads(r.stdout)["request_sha256"] == js["request_sha256"],
          "classify http from stdin: %r" % r.stdout[:300])
    bad = []
    cases = corpus()
    for name, data in cases:
        f = os.path.join(T.tmp, "smuggle.http")
        with open(f, "wb") as fh:
            fh.write(data)
        t = T.al.ctl("classify", "http", f)
        j = T.al.ctl("classify", "http", f, "--json")
        try:
            jo = json.loads(j.stdout)
        except ValueError:
            jo = {}
        if (t.returncode != 1 or not re.match(r"^(400|431|505) \S", t.stdout) or j.returncode != 1
                or jo.get("ok") is not False or jo.get("status") not in (400, 431, 505) or not jo.get("reason")):
            bad.append("%s: %r %r" % (name, t.stdout[:80], j.stdout[:80]))
    check(not bad, "%d of %d smuggling files not refused by classify http: %s" % (len(bad), len(cases),
                                                                                "; ".join(bad[:4])))
    note("classify http: 1 request classified, %d refused with their reason" % len(cases))


def case_still_up():
    need_up()
    st = T.al.status()
    check(st.get("http_requests", 0) > 0, "status: %r" % {k: v for k, v in st.items() if "http" in k})
    T.al.check_log_clean(asserts=False)


# ---------------------------------------------------------------- main

def setup():
    t = T
    t.tmp = lib.make_tempdir()
    os.chmod(t.tmp, 0o755)
    os.mkdir(os.path.join(t.tmp, "home"), 0o777)
    t.test_ca, crt, key = make_certs(t.tmp)
    os.chmod(t.test_ca, 0o644)
    t.port = lib.free_port(("127.0.0.1",))
    t.uplog = os.path.join(t.tmp, "upstream.log")
    t.up = subprocess.Popen([lib.PY, os.path.join(HERE, "https_upstream.py"), crt, key, t.uplog, "--control"]
                            + ["%s:%d" % (a, t.port) for a in (API, KUBE, IPAPI, NAMED)]
                            + ["--client-ca", t.test_ca, "%s:%d" % (MTLS, t.port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lib.on_cleanup(lib.stop_process, t.up)
    check(t.up.stdout.readline().strip() == "ready", "upstream did not start")
    ca_dir = os.path.join(t.tmp, "ca")
    t.ca = os.path.join(ca_dir, "ca.crt")
    secrets = os.path.join(t.tmp, "secrets.conf")
    with open(secrets, "w") as f:
        f.write("apitoken bearer=%s\nkubetoken header=\"Authorization: Bearer %s\"\n"
                "mtlscert sslcert=%s sslkey=%s\n"
                % (API_SECRET, KUBE_SECRET, os.path.join(t.tmp, "client.pem"),
                   os.path.join(t.tmp, "client.key")))
    os.chmod(secrets, 0o600)
    t.rsock = os.path.join(t.tmp, "review.sock")
    cport = lib.free_port(("127.0.0.1",))
    t.console = "http://127.0.0.1:%d/" % cport
    resources = ["""resource "api" {
    address %s
    port %d
    protocol https
    host %s
    upstream_ca "%s"
    credential apitoken
    rule deny path /forbidden/*
    rule review method DELETE timeout 60s
}""" % (API, t.port, API_NAME, t.test_ca),
                 """resource "kube" {
    address %s
    port %d
    protocol https
    upstream_ca "%s"
    credential kubetoken
    rule review exec timeout 60s
    rule deny path /api/v1/namespaces/*/pods/*/portforward
}""" % (KUBE, t.port, t.test_ca),
                 """resource "ipapi" {
    address %s
    port %d
    protocol https
    upstream_ca "%s"
}""" % (IPAPI, t.port, t.test_ca),
                 """resource "api2" {
    address %s
    port %d
    protocol https
    host %s
    upstream_ca "%s"
}""" % (API, t.port, API2_NAME, t.test_ca),
                 """resource "mtls" {
    address %s
    port %d
    protocol https
    upstream_ca "%s"
    credential mtlscert
}""" % (MTLS, t.port, t.test_ca),
                 """resource "named" {
    address %s
    port %d
    protocol https
    host %s
    upstream_ca "%s"
    rule deny path /forbidden/*
}""" % (NAMED, t.port, NAMED_NAME, t.test_ca)]
    t.resources = resources
    t.settings = ['secrets "%s"' % secrets, 'ca_dir "%s"' % ca_dir, 'review_socket "%s"' % t.rsock,
                  "http_max_body 64k", "console_listen 127.0.0.1:%d" % cport]
    t.al = lib.Airlock(t.tmp, resources, settings=t.settings)
    r = subprocess.run([lib.AIRLOCKD, "-n", "-c", t.al.conf], capture_output=True, text=True, timeout=20)
    check(r.returncode == 0, "airlockd -n: %s" % (r.stderr.strip() or r.stdout.strip()))
    t.al.start()
    os.chmod(ca_dir, 0o755)
    t.cg = lib.TestCgroup()
    r = t.al.ctl("pin", t.cg.rel)
    check(r.returncode == 0, "pin: %s" % r.stderr.strip())
    r = subprocess.run([lib.AIRLOCKCTL, "-s", t.al.sock, "user", "add", REVIEWER[0], "--uid", str(REVIEWER[1]),
                        "--groups", "ops", "--password-stdin"], input=REVIEWER_PW + "\n", capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 0, "user add: %s" % r.stderr.strip())
    note("upstream %s/%s/%s port %d, cgroup %s, tmp %s" % (API, KUBE, IPAPI, t.port, t.cg.rel, t.tmp))


CASES = [
    ("curl GET (no -k, --cacert airlock CA, offers h2) allowed over HTTP/1.1; credential injected, "
     "agent's Authorization dropped; audit row", case_curl_get),
    ("keep-alive: chunked, HEAD and close-delimited responses relayed", case_keepalive_framing),
    ("upstream answers with Connection: close and its close_notify in the same segment "
     "(Content-Length and chunked): 200 and the whole body, every time", case_close_notify_with_response),
    ("python3 urllib GET to an IP (leaf minted for the address)", case_python),
    ("node fetch GET with NODE_EXTRA_CA_CERTS", case_node),
    ("DELETE parked (sha256 of the exact bytes), approved; upstream got exactly it with the "
     "credential and without the agent's Authorization", case_review_approve),
    ("DELETE denied by a reviewer -> 403 JSON with reason and request id", case_review_deny),
    ("rule deny path -> 403 JSON {error, reason, request_id}", case_rule_deny),
    ("the store full (its cap, by a policy reload): the next request on an open connection gets "
     "503 and goes nowhere; new connections refused; taken again when lifted", case_store_full_live),
    ("an Upgrade (WebSocket, h2c) on an allowed path -> 403 with the reason, nothing upstream; "
     "one reviewers approved goes", case_upgrade_refused),
    ("slowloris: a head, a held body and a streamed body trickled in get 408 at http_head_timeout "
     "and http_body_min_rate (reloaded short), nothing upstream; a body that keeps pace goes",
     case_slow_agent),
    ("max_sessions_per_agent: a third session of one agent is refused, another agent's is not; "
     "counted down when they end", case_sessions_per_agent),
    ("http_response_timeout: an upstream that never answers -> 504 JSON, audited, upstream closed; "
     "a trickled body, a long review and a quiet upgraded stream are not cut", case_response_timeout),
    ("a body over http_max_body: an allowed POST streams through whole; a DELETE that needs "
     "review is denied", case_body_over_max),
    ("an upstream answers a streamed POST before reading its body: the rest of the body is dropped, "
     "never read as requests; the request after it is decided (held), the upstream connection not "
     "reused", case_early_response_body),
    ("smuggling corpus over TLS -> 400 each, connection closed, nothing upstream", case_smuggling),
    ("a Host (or absolute-form target) naming another server than the TLS connection -> 421, "
     "nothing upstream; Host compared without case, port or trailing dot; without SNI, a name or "
     "address of the resource", case_host_not_sni),
    ("an agent's request and its close_notify together: answered, then closed (GET, TLS 1.2, "
     "with Finished, TCP FIN, pipelined, POST, 403, held and approved); a cut request is not sent",
     case_agent_close_notify),
    ("two https resources on one address:port told apart by server name: each connection row and "
     "airlockctl connections name the chosen one; a name neither answers is closed", case_sni_resource),
    ("server names in any case and with a trailing dot reach their resource's rules; without one, "
     "the address's only https resource, or closed where two share it: never passed through",
     case_sni_normalised),
    ("a new upstream connection resumes the TLS session of the last one to the same resource and "
     "server name (TLS 1.3 and 1.2), never another resource's or name's", case_upstream_resumption),
    ("airlockctl replay of an https session: its requests in order, each with its decision and "
     "status", case_replay_http),
    ("a held request's agent half-closes (FIN, no close_notify; TLS 1.3 and 1.2): approved, it gets "
     "the answer; the request is approved, not abandoned", case_review_half_close),
    ("a held request's agent closes its socket or resets: the request is abandoned", case_review_agent_gone),
    ("an agent that floods while its request waits upstream: airlockd reads it up to a bound, "
     "then stops; the request is answered", case_flood_while_waiting),
    ("an agent that reads a large response slowly: airlockd's memory stays bounded (backpressure "
     "through TLS); the body arrives whole", case_slow_reader),
    ("airlockctl ca install: curl trusts the system store; ca uninstall restores it exactly",
     case_ca_install),
    ("kubectl exec held for review; denied -> kubectl prints the reason", case_kubectl_exec),
    ("kubectl attach held like exec; denied -> kubectl prints the reason", case_kubectl_attach),
    ("kubectl port-forward denied by a path rule: the upgrade never reaches the API server",
     case_kubectl_port_forward_denied),
    ("kubectl exec -i approved over WebSocket: output reaches kubectl; airlockctl replay and "
     "export --format asciicast show what it printed and what was typed", case_exec_websocket_replay),
    ("kubectl exec -i approved over SPDY/3.1: the same, replayed", case_exec_spdy_replay),
    ("console session view of an approved exec (API and Chromium): command, output, typed input; "
     "control characters visible, markup inert", case_console_exec_session),
    ("policy test re-decides recorded HTTP requests: a changed rule shows as a difference",
     case_policy_test_http),
    # After the policy test: its replay of recorded rows does not yet decide method overrides
    # or refuse review of an unreadable body, as the proxy does.
    ("a held request shows reviewers the whole request as forwarded: every header (credential "
     "redacted), the body's tail past 2 KiB (row, airlockctl show, console API); approved, exactly "
     "it goes upstream", case_review_full_body),
    ("a POST with X-HTTP-Method-Override: DELETE (or ?_method=delete) meets the DELETE review rule; "
     "reviewers see the override", case_method_override),
    ("a request for review with a binary or content-coded body is denied, never held; an allowed "
     "binary POST goes through", case_review_unreadable_body),
    ("an exec over v4.base64.channel.k8s.io (not kubectl: a browser terminal's protocol) approved: "
     "recorded decoded as for v4.channel.k8s.io, replayed", case_exec_base64_replay),
    ("exec: a 101 taking a WebSocket extension Airlock did not offer -> 502 with the reason",
     case_exec_websocket_unoffered_extension),
    ("an upstream that requires a client certificate: the agent's curl gets through with the "
     "credential's; without it, outside the cgroup, the handshake fails", case_upstream_client_cert),
    ("airlockctl classify http: a request's command (text, --json, stdin); the smuggling corpus "
     "refused with each reason", case_classify_http),
    ("airlockd still up, counters, no sanitizer lines", case_still_up),
]


def main():
    res = lib.Results()
    if os.geteuid() != 0:
        res.not_ok("https: test_https", "needs root")
        return 1
    missing = [b for b in (lib.AIRLOCKD, lib.AIRLOCKCTL, SETPRIV, OPENSSL, CURL) if not os.access(b, os.X_OK)]
    if missing:
        res.not_ok("https: test_https", "missing %s (make all; scripts/deps.sh)" % missing)
        return 1
    return lib.run_suite(res, setup, CASES, lambda: T.al,
                         lambda: [T.cg and T.cg.path, T.al and T.al.pin_root, T.tmp],
                         prefix="https: ", log_tail=40)


if __name__ == "__main__":
    sys.exit(main())
