"""HTTPS rules against what servers read: path forms, method case, Kubernetes exec queries, a body's _method, cookies shown to reviewers, odd server names, policy test.

Run as root with /usr/bin/python3. Prints `ok - https rules: NAME` / `not ok - https rules: NAME: why`.
It makes a test CA and an HTTPS upstream (https_upstream.py: a JSON echo, and a fake Kubernetes
API whose exec prints its argv) on 127.0.0.41 (resource api, host api.test) and 127.0.0.42
(resource kube, no host list), an airlockd, a pinned test cgroup whose clients (curl, a raw TLS
client, openssl s_client) run as uid 65534, and a reviewer with its own uid. Everything is
removed on any exit.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import check, note, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SETPRIV = "/usr/bin/setpriv"
OPENSSL = "/usr/bin/openssl"
CURL = "/usr/bin/curl"
API, KUBE = "127.0.0.41", "127.0.0.42"
API_NAME = "api.test"
AGENT_UID = 65534
REVIEWER = ("rulesrev", 47233)
API_SECRET = "RULES-SECRET-%s" % lib.RUN_ID


class T:
    tmp = al = cg = up = None
    port = ca = test_ca = uplog = rsock = None
    resources = None


def sh(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)
    check(r.returncode == 0, "%s: %s" % (" ".join(argv[:3]), r.stderr.strip()[-300:]))
    return r


def make_certs(d):
    """A test CA and a certificate for api.test and both addresses."""
    ca_key, ca_crt = os.path.join(d, "test-ca.key"), os.path.join(d, "test-ca.pem")
    key, csr, crt, ext = (os.path.join(d, n) for n in ("up.key", "up.csr", "up.pem", "up.ext"))
    sh([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=airlock rules test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"])
    sh([OPENSSL, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
        key, "-out", csr, "-subj", "/CN=%s" % API_NAME])
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s,IP:%s,IP:%s\nextendedKeyUsage=serverAuth\n" % (API_NAME, API, KUBE))
    sh([OPENSSL, "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext])
    os.chmod(ca_crt, 0o644)
    return ca_crt, crt, key


def uplog():
    try:
        with open(T.uplog) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def as_agent(argv):
    return [SETPRIV, "--reuid=%d" % AGENT_UID, "--regid=%d" % AGENT_UID, "--clear-groups"] + argv


def agent_env():
    env = dict(lib.CLIENT_ENV)
    env["HOME"] = os.path.join(T.tmp, "home")
    return env


def curl(*args):
    argv = [CURL, "-sS", "--max-time", "25", "--resolve", "%s:%d:%s" % (API_NAME, T.port, API),
            "--cacert", T.ca, "-w", "\n%{http_code}"]
    r = T.cg.run(as_agent(argv + list(args)), timeout=30, env=agent_env())
    body, _, code = r.stdout.rpartition("\n")
    return code, body, r.stderr.strip()


def url(path):
    return "https://%s:%d%s" % (API_NAME, T.port, path)


RAW_CLIENT = r"""
import base64, socket, ssl, sys
host, port, name, cafile, data = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False
s = ctx.wrap_socket(socket.create_connection((host, port), timeout=30), server_hostname=name)
s.sendall(base64.b64decode(data))
out = b""
s.settimeout(4)
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
except (ssl.SSLError, OSError):
    pass
sys.stdout.write(base64.b64encode(out).decode())
"""


def raw(data, addr=API, name=API_NAME, bg=False):
    """Sends data over TLS to addr as the agent; (status line, whole answer), or the process."""
    argv = as_agent([lib.PY, "-c", RAW_CLIENT, addr, str(T.port), name, T.ca, base64.b64encode(data).decode()])
    if bg:
        return T.cg.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=agent_env())
    r = T.cg.run(argv, timeout=40, env=agent_env())
    out = base64.b64decode(r.stdout or "")
    return out.split(b"\r\n")[0].decode("latin-1"), out


def reason(answer):
    try:
        return json.loads(answer.partition(b"\r\n\r\n")[2].decode()).get("reason", "")
    except ValueError:
        return ""


def rv(*args):
    return lib.reviewer_ctl(T.rsock, REVIEWER[1], *args)


def requests(where="1", args=()):
    return T.al.db_rows(where, args, table="requests")


def max_req():
    return max([r["id"] for r in requests()] or [0])


def wait_request(text, after, timeout=15):
    def get():
        rows = [r for r in requests("id > ? AND state = 'pending'", (after,)) if text in (r["command"] or "")]
        return rows[-1] if rows else None
    row = wait_for(get, timeout, 0.05)
    check(row, "no pending request for %r (requests: %s)"
          % (text, [(r["id"], r["state"], (r["command"] or "")[:80]) for r in requests()[-4:]]))
    return row


def held_then_denied(p, text, after):
    """The request p sent is held as text says; a reviewer denies it; nothing went upstream."""
    n0 = len(uplog())
    row = wait_request(text, after)
    rv("deny", row["id"], "--reason", "test")
    p.communicate(timeout=30)
    check(len(uplog()) == n0, "upstream received %r" % [x["path"] for x in uplog()[n0:]])
    return row


# ---------------------------------------------------------------- cases

def case_path_forms():
    """'rule deny path /forbidden/*' holds for every spelling servers read as /forbidden/...:
    an encoded unreserved character is decided decoded (403, the row's path in normal form,
    the bytes upstream as sent); the spellings servers read differently ('.' and '..'
    segments, %2E-encoded too, a leading '//', ';', '\\', %2F, %5C, %00) are refused with 400.
    None reaches the upstream; airlockctl classify http shows the path rules see."""
    n0 = len(uplog())
    code, body, err = curl("--path-as-is", url("/%66orbidden/secret.txt"))
    check(code == "403" and "rule deny path /forbidden/*" in body, "/%%66orbidden: %s %r %s" % (code, body, err))
    rows = wait_for(lambda: T.al.db_rows("decision = 'deny'", (), table="http_requests"), 5)
    check(rows and rows[-1]["path"] == "/forbidden/secret.txt", "audit row: %r" % rows)
    for path, why in (("//forbidden/secret.txt", "starts with '//'"),
                      ("/./forbidden/secret.txt", "'.' or '..' segment"),
                      ("/public/../forbidden/secret.txt", "'.' or '..' segment"),
                      ("/public/%2e%2e/forbidden/secret.txt", "'.' or '..' segment"),
                      ("/forbidden%2Fsecret.txt", "encoded '/'"),
                      ("/forbidden;x/secret.txt", "';'"),
                      ("/forbidden%5Csecret.txt", "encoded '\\'"),
                      ("/forbidden%00.txt", "encoded NUL")):
        code, body, err = curl("--path-as-is", url(path))
        check(code == "400" and why in json.loads(body or "{}").get("reason", ""), "%s: %s %r %s" % (path, code, body, err))
    status, out = raw(b"GET /forbidden\\secret.txt HTTP/1.1\r\nHost: %s\r\n\r\n" % API_NAME.encode())
    check(status.startswith("HTTP/1.1 400") and "'\\' in the path" in reason(out), "backslash: %r" % out[:200])
    check(len(uplog()) == n0, "upstream received %r" % [x["path"] for x in uplog()[n0:]])
    code, body, err = curl("--path-as-is", url("/public/%7eme//a%3a"))
    got = uplog()[n0:]
    check(code == "200" and len(got) == 1 and base64.b64decode(got[0]["raw"]).startswith(
        b"GET /public/%7eme//a%3a HTTP/1.1\r\n"), "allowed path: %s %r" % (code, got))
    rows = wait_for(lambda: T.al.db_rows("decision = 'allow'", (), table="http_requests"), 5)
    check(rows and rows[-1]["path"] == "/public/~me/a%3A", "allowed row: %r" % rows)
    r = subprocess.run([lib.AIRLOCKCTL, "classify", "http"], capture_output=True, timeout=10,
                       input=b"GET /%66orbidden//x HTTP/1.1\r\nHost: a\r\n\r\n")
    check(r.returncode == 0 and b"path:     /forbidden/x (sent as /%66orbidden//x)" in r.stdout,
          "classify http: %r" % r.stdout)


def case_method_case():
    """A method with a lower-case letter ('delete', 'Delete'), which frameworks upper-case and
    run as the DELETE that 'rule review method DELETE' would hold, is refused with 400."""
    n0 = len(uplog())
    for m in (b"delete", b"Delete"):
        status, out = raw(b"%s /items/1 HTTP/1.1\r\nHost: %s\r\n\r\n" % (m, API_NAME.encode()))
        check(status.startswith("HTTP/1.1 400") and reason(out) == "method must be upper case",
              "%s: %r" % (m, out[:200]))
    check(len(uplog()) == n0, "upstream received %r" % [x["method"] for x in uplog()[n0:]])


def case_trace():
    """TRACE is refused with 405: a server answering it echoes the request it received, and
    that would hand the agent the credential Airlock adds."""
    n0 = len(uplog())
    code, body, err = curl("-X", "TRACE", url("/items"))
    check(code == "405" and "TRACE is refused" in body, "TRACE: %s %r %s" % (code, body[:200], err))
    check(len(uplog()) == n0, "upstream received %r" % [x["method"] for x in uplog()[n0:]])
    code, _, err = curl(url("/items"))
    check(code == "200", "a GET on the same path after it: %s %s" % (code, err))


def ws_exec(target):
    return (b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n" % (target, KUBE.encode(), T.port))


def case_k8s_exec_query():
    """A Kubernetes exec is read as the API server reads it: percent-encoded keys are command
    words (%63ommand=rm ... runs rm), a percent-encoded verb is exec, the first container=
    counts; reviewers and the fingerprint see that argv. A ';' in the query (old and new Go
    split it differently) is refused with 400."""
    exe = b"/api/v1/namespaces/default/pods/web-0/exec?"
    after = max_req()
    p = raw(ws_exec(exe + b"%63ommand=rm&%63ommand=-rf&%63ommand=/data&command=echo&command=hello"
                    b"&container=app&container=other&stdout=true"), KUBE, KUBE, bg=True)
    row = held_then_denied(p, "kubectl exec", after)
    check(row["command"].startswith("kubectl exec -n default web-0 -c app -- rm -rf /data echo hello\n")
          and row["fingerprint"] == "exec default/web-0/app rm -rf /data echo hello",
          "held exec: %r %r" % (row["command"][:120], row["fingerprint"]))
    after = max_req()
    p = raw(ws_exec(b"/api/v1/namespaces/default/pods/web-0/%65xec?command=id&stdout=true"), KUBE, KUBE, bg=True)
    row = held_then_denied(p, "kubectl exec -n default web-0 -- id", after)
    check(row["kind"] == "exec", "%%65xec: %r" % row["kind"])
    n0 = len(uplog())
    status, out = raw(ws_exec(exe + b"command=echo;command=rm&stdout=true"), KUBE, KUBE)
    check(status.startswith("HTTP/1.1 400") and "malformed Kubernetes" in reason(out), "';': %r" % out[:200])
    check(len(uplog()) == n0 and max_req() == after + 1, "the ';' exec went somewhere")


def multipart(fields):
    b = b"".join(b'--BoUnDaRy\r\nContent-Disposition: form-data; %s\r\n\r\n%s\r\n' % (d, v) for d, v in fields)
    return b + b"--BoUnDaRy--\r\n"


def post(path, ctype, body):
    return (b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (path, API_NAME.encode(), ctype, len(body), body))


def case_body_method_override():
    """A POST naming _method in a multipart body (Rack, PHP) or a JSON body (Laravel) meets the
    DELETE rules like a form's; one whose body may name a method Airlock cannot read (a field
    name some parsers decode, a body over http_max_body) meets the rules of every method. A
    multipart POST without _method, and binary ones, go through."""
    mp = b"multipart/form-data; boundary=BoUnDaRy"
    for what, data, text in (
            ("multipart", post(b"/items/3", mp, multipart([(b'name="note"', b"x"), (b'name="_method"', b"DELETE")])),
             "POST (override DELETE) https://"),
            ("json", post(b"/items/4", b"application/json", b'{"\\u005fmethod":"delete","id":4}'),
             "POST (override DELETE) https://"),
            ("encoded name", post(b"/items/5", mp, multipart([(b"name*=utf-8''%5Fmethod", b"DELETE")])),
             "POST (override any method) https://")):
        after = max_req()
        row = held_then_denied(raw(data, bg=True), text, after)
        check("rule review method DELETE" in (row["rule"] or ""), "%s: held by %r" % (what, row["rule"]))
    n0 = len(uplog())
    status, out = raw(post(b"/items/6", mp, multipart([(b'name="title"', b"hello")])))
    check(status.startswith("HTTP/1.1 200") and len(uplog()) == n0 + 1, "plain multipart: %r" % out[:200])
    big = os.path.join(T.tmp, "home", "big.bin")
    with open(big, "wb") as f:
        f.write(b"_method=DELETE&" + b"x" * (100 << 10))
    os.chmod(big, 0o644)
    code, body, err = curl("--data-binary", "@" + big, url("/upload"))
    check(code == "403" and "larger than http_max_body" in body, "big form POST: %s %r %s" % (code, body[:300], err))
    code, body, err = curl("-H", "Content-Type: application/octet-stream", "--data-binary", "@" + big, url("/upload"))
    check(code == "200" and json.loads(body).get("body_len") == (100 << 10) + 15, "big binary POST: %s %r" % (code, body[:200]))
    with open(big, "wb") as f:
        f.write(bytes(range(256)) * 16)
    code, body, err = curl("-H", "Content-Type: application/octet-stream", "--data-binary", "@" + big, url("/blob"))
    check(code == "200", "binary POST: %s %r" % (code, body[:200]))


def case_cookies_redacted():
    """Reviewers read each cookie's name and its value's length, not the agent's session
    secrets, and the length only of other headers that carry its credentials (X-Auth-Token,
    X-Goog-Api-Key, a name ending in -Password); approved, the exact bytes go upstream, cookies
    and those headers whole."""
    secret = "SESSION-%s" % lib.RUN_ID
    creds = [(name, "%s-%s" % (name.upper(), lib.RUN_ID)) for name in ("X-Auth-Token", "X-Goog-Api-Key",
                                                                       "X-Db-Password")]
    data = (b"DELETE /items/8 HTTP/1.1\r\nHost: %s\r\nCookie: session=%s; theme=dark\r\n%s\r\n"
            % (API_NAME.encode(), secret.encode(), "".join("%s: %s\r\n" % c for c in creds).encode()))
    after = max_req()
    n0 = len(uplog())
    p = raw(data, bg=True)
    row = wait_request("DELETE https://", after)
    check("\nCookie: session=<redacted %d bytes>; theme=<redacted 4 bytes>\n" % len(secret) in row["command"]
          and secret not in row["command"], "reviewers' text: %r" % row["command"])
    for name, value in creds:
        check("\n%s: <redacted %d bytes>\n" % (name, len(value)) in row["command"] and value not in row["command"],
              "reviewers' text for %s: %r" % (name, row["command"]))
    shown = rv("show", row["id"]).stdout
    check(secret not in shown and "session=<redacted" in shown, "airlockctl show: %r" % shown[:500])
    check(all(v not in shown and "%s: <redacted" % n in shown for n, v in creds), "airlockctl show: %r" % shown[:800])
    check(row["sha256"] == hashlib.sha256(data).hexdigest(), "the request's sha256 %s is not that of its exact "
          "bytes" % row["sha256"])
    rv("approve", row["id"])
    p.communicate(timeout=30)
    got = [base64.b64decode(x["raw"]) for x in uplog()[n0:]]
    check(len(got) == 1 and b"\r\nCookie: session=%s; theme=dark\r\n" % secret.encode() in got[0]
          and all(("\r\n%s: %s\r\n" % c).encode() in got[0] for c in creds), "upstream got %r" % got)


def case_server_names():
    """A server name that is not a host name or an IP literal (OpenSSL's SAN syntax in it: a ','
    and 'IP:', 'URI:', a wildcard, non-ASCII) ends the handshake: no leaf is minted for it, so
    nothing the agent wrote reaches a certificate the Airlock CA signs."""
    for sni in ("a,IP:10.1.2.3", "x,URI:http://evil", "*.evil.example", "\u00e9.test"):
        r = T.cg.run(as_agent([OPENSSL, "s_client", "-connect", "%s:%d" % (KUBE, T.port), "-servername", sni,
                               "-CAfile", T.ca]), input="", timeout=20, env=agent_env())
        check("BEGIN CERTIFICATE" not in r.stdout and "Server certificate" not in r.stdout,
              "%r: a certificate was presented: %r" % (sni, r.stdout[:400]))
    r = T.cg.run(as_agent([OPENSSL, "s_client", "-connect", "%s:%d" % (KUBE, T.port), "-servername", "ok.test",
                           "-CAfile", T.ca]), input="", timeout=20, env=agent_env())
    check("BEGIN CERTIFICATE" in r.stdout or "Verify return code: 0" in r.stdout, "ok.test: %r" % r.stdout[-400:])


def case_policy_test():
    """policy test re-decides recorded requests as the proxy decides them: the running policy
    changes none (POSTs held for a method override in the query or the body stay review; a
    form POST over http_max_body, denied as any method, is re-decided so from the method words of
    its fingerprint). Without the DELETE rule the POST held
    for ?_method=delete would be allowed; a rule reviewing POSTs would review an allowed
    binary POST, and says that whether reviewers could read its body is not recorded, and deny
    one whose body was not held."""
    after = max_req()
    held_then_denied(raw(post(b"/items/9?_method=delete", b"application/json", b"{}"), bg=True),
                     "POST (override DELETE) https://", after)
    cand = os.path.join(T.tmp, "same.conf")
    with open(cand, "w") as f:
        f.write("\n".join(T.resources) + "\n")
    r = T.al.ctl("policy", "test", "--since", "1h", cand, "--json", timeout=30)
    check(r.returncode == 0, "policy test: %s" % (r.stderr.strip() or r.stdout.strip()))
    res = json.loads(r.stdout)
    changes = [c for c in res["changes"] if c.get("protocol") == "http"]
    check(res.get("checked_http", 0) >= 10 and not changes, "the running policy changes: %r" % changes[:3])
    with open(cand, "w") as f:
        f.write("\n".join([T.resources[0].replace("    rule review method DELETE timeout 60s\n", "")]
                          + T.resources[1:]) + "\n")
    changes = [c for c in json.loads(T.al.ctl("policy", "test", "--since", "1h", cand, "--json",
                                              timeout=30).stdout)["changes"] if c.get("protocol") == "http"]
    q = [c for c in changes if "/items/9?_method=delete" in c["text"]]
    check(q and q[0]["was"] == "review" and q[0]["would_be"] == "allow", "?_method=delete without the rule: %r" % q)
    with open(cand, "w") as f:
        f.write("\n".join([T.resources[0].replace("    rule deny path", "    rule review method POST\n    rule deny path")]
                          + T.resources[1:]) + "\n")
    changes = [c for c in json.loads(T.al.ctl("policy", "test", "--since", "1h", cand, "--json",
                                              timeout=30).stdout)["changes"] if c.get("protocol") == "http"]
    b = [c for c in changes if c["text"].startswith("POST https://%s:%d/blob" % (API_NAME, T.port))]
    check(len(b) == 1 and b[0]["was"] == "allow" and b[0]["would_be"] == "review"
          and "not recorded" in (b[0].get("note") or ""), "binary POST reviewed: %r" % b)
    b = [c for c in changes if c["text"] == "POST https://%s:%d/upload" % (API_NAME, T.port) and c["was"] == "allow"]
    check(len(b) == 1 and b[0]["would_be"] == "deny", "a POST not held, reviewed: %r" % b)


def setup():
    t = T
    t.tmp = lib.make_tempdir()
    os.chmod(t.tmp, 0o755)
    os.mkdir(os.path.join(t.tmp, "home"), 0o777)
    t.test_ca, crt, key = make_certs(t.tmp)
    t.port = lib.free_port(("127.0.0.1",))
    t.uplog = os.path.join(t.tmp, "upstream.log")
    t.up = subprocess.Popen([lib.PY, os.path.join(HERE, "https_upstream.py"), crt, key, t.uplog]
                            + ["%s:%d" % (a, t.port) for a in (API, KUBE)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lib.on_cleanup(lib.stop_process, t.up)
    check(t.up.stdout.readline().strip() == "ready", "upstream did not start")
    ca_dir = os.path.join(t.tmp, "ca")
    t.ca = os.path.join(ca_dir, "ca.crt")
    secrets = os.path.join(t.tmp, "secrets.conf")
    with open(secrets, "w") as f:
        f.write("apitoken bearer=%s\n" % API_SECRET)
    os.chmod(secrets, 0o600)
    t.rsock = os.path.join(t.tmp, "review.sock")
    t.resources = ["""resource "api" {
    address %s
    port %d
    protocol https
    host %s
    upstream_ca "%s"
    credential apitoken
    rule deny path /forbidden/*
    rule review method DELETE timeout 60s
}""" % (API, t.port, API_NAME, t.test_ca), """resource "kube" {
    address %s
    port %d
    protocol https
    upstream_ca "%s"
    rule review exec timeout 60s
}""" % (KUBE, t.port, t.test_ca)]
    settings = ['secrets "%s"' % secrets, 'ca_dir "%s"' % ca_dir, 'review_socket "%s"' % t.rsock,
                "http_max_body 64k", "console_listen off"]
    t.al = lib.Airlock(t.tmp, t.resources, settings=settings)
    r = subprocess.run([lib.AIRLOCKD, "-n", "-c", t.al.conf], capture_output=True, text=True, timeout=20)
    check(r.returncode == 0, "airlockd -n: %s" % (r.stderr.strip() or r.stdout.strip()))
    t.al.start()
    os.chmod(ca_dir, 0o755)
    t.cg = lib.TestCgroup()
    r = t.al.ctl("pin", t.cg.rel)
    check(r.returncode == 0, "pin: %s" % r.stderr.strip())
    r = subprocess.run([lib.AIRLOCKCTL, "-s", t.al.sock, "user", "add", REVIEWER[0], "--uid", str(REVIEWER[1]),
                        "--groups", "ops", "--password-stdin"], input="rules pw %s\n" % lib.RUN_ID,
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "user add: %s" % r.stderr.strip())
    note("upstream %s/%s port %d, cgroup %s, tmp %s" % (API, KUBE, t.port, t.cg.rel, t.tmp))


def case_still_up():
    check(T.al.running(), "airlockd died")
    time.sleep(0.1)
    T.al.check_log_clean()


CASES = [
    ("a path rule holds for every spelling of the path: decoded where servers agree, 400 where "
     "they do not; nothing reaches the upstream; classify shows the path rules see", case_path_forms),
    ("a method with a lower-case letter is refused with 400", case_method_case),
    ("TRACE is refused with 405 (it would echo the credential back)", case_trace),
    ("Kubernetes exec: encoded keys and verb read as the API server reads them, reviewers see "
     "that argv; a ';' in the query is refused", case_k8s_exec_query),
    ("a POST's _method in a multipart or JSON body meets the DELETE rules; one Airlock cannot "
     "read meets every method's", case_body_method_override),
    ("reviewers see cookie names and lengths and the lengths of other credential headers, the "
     "upstream all of them whole", case_cookies_redacted),
    ("a server name that is not a host name ends the handshake, no leaf minted for it", case_server_names),
    ("policy test re-decides recorded requests with their query's method overrides and says what "
     "it cannot know", case_policy_test),
    ("airlockd still up, no sanitizer lines", case_still_up),
]


def main():
    res = lib.Results()
    if os.geteuid() != 0:
        res.not_ok("https rules: test_https_rules", "needs root")
        return 1
    missing = [b for b in (lib.AIRLOCKD, lib.AIRLOCKCTL, SETPRIV, OPENSSL, CURL) if not os.access(b, os.X_OK)]
    if missing:
        res.not_ok("https rules: test_https_rules", "missing %s (make all; scripts/deps.sh)" % missing)
        return 1
    return lib.run_suite(res, setup, CASES, lambda: T.al,
                         lambda: [T.cg and T.cg.path, T.al and T.al.pin_root, T.tmp],
                         prefix="https rules: ", log_tail=40)


if __name__ == "__main__":
    sys.exit(main())
