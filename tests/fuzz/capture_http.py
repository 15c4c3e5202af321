#!/usr/bin/env python3
"""Captures the requests of real HTTP clients as seeds for fuzz_http (tests/fuzz/corpus/http/captured_*).

A recorder on a loopback port keeps what each connection sends until the client pauses, answers
200 with a small JSON body and closes. The clients are the agents README names, over plain HTTP
(TLS only wraps these bytes; the parser sees them as they are here): curl (GET with a bearer
token and a query, POST of JSON, DELETE, a chunked upload from stdin), python3 urllib (GET, PUT)
and node's fetch (GET, POST). kubectl needs answers that make sense to it, so it talks to the
integration tests' fake Kubernetes API (tests/integration/https_upstream.py, over TLS with a
throwaway certificate), which logs each request's exact bytes: its discovery requests, a get
of a pod, and an exec whose request asks for the stream's upgrade. Each request becomes a seed
in the driver's format: mode 0 (a request, the 1 MiB body limit) and its bytes.

    python3 tests/fuzz/capture_http.py

The seeds are rewritten each time (kubectl's and node's headers carry versions and random
values), so commit them only when the clients changed on purpose. test_http parses each whole
and split at every byte.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import capture  # tests/fuzz, beside this script

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus", "http")
PAUSE = 0.5                 # a client that sent nothing for this long has sent its request
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
          b"Connection: close\r\n\r\n{}")


class Recorder(capture.Listener):
    """Keeps what each connection sends until the client pauses, answers, closes."""

    def connection(self, c):
        buf = bytearray()
        return buf, [(self.serve, (c, buf))]

    @staticmethod
    def serve(c, buf):
        data = bytearray()
        c.settimeout(PAUSE)
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                data += b
        except socket.timeout:
            pass
        except OSError:
            return
        try:
            c.sendall(ANSWER)
        except OSError:
            pass
        c.close()
        buf += data

    def take(self):
        """The requests of the connections since the last take (those that sent any)."""
        return [bytes(b) for b in super().take() if b]


def kubectl_requests(argvs):
    """Runs each kubectl command line (its arguments after --server) against the fake API and
    returns, for each, the exact bytes of the requests it made."""
    d = tempfile.mkdtemp(prefix="airlock-capture-http.")
    up = None
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", d + "/k.pem", "-out", d + "/c.pem", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        log = d + "/requests.jsonl"
        up = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "..", "integration", "https_upstream.py"),
                               d + "/c.pem", d + "/k.pem", log, "127.0.0.1:%d" % port],
                              stdout=subprocess.PIPE, text=True)
        if up.stdout.readline().strip() != "ready":
            sys.exit("capture_http.py: the fake Kubernetes API did not start")
        out, seen = [], 0
        for argv in argvs:
            subprocess.run(["kubectl", "--server", "https://127.0.0.1:%d" % port, "--insecure-skip-tls-verify",
                            "--token", "agent-t0ken", "--request-timeout", "10s"] + argv,
                           env={"PATH": "/usr/bin:/bin", "HOME": d, "KUBECONFIG": "/dev/null"},
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
            with open(log) as f:
                lines = f.read().splitlines()
            out.append([base64.b64decode(json.loads(x)["raw"]) for x in lines[seen:]])
            seen = len(lines)
        return out
    finally:
        if up:
            up.kill()
            up.wait()
        shutil.rmtree(d, ignore_errors=True)


def save(label, reqs):
    for i, req in enumerate(reqs):
        name = "captured_%s%s" % (label, "_%d" % i if len(reqs) > 1 else "")
        with open(os.path.join(CORPUS, name), "wb") as f:
            f.write(b"\x00" + req)
        print("%s: %d bytes, %s" % (os.path.relpath(os.path.join(CORPUS, name)), len(req) + 1,
                                   req.split(b"\r\n", 1)[0].decode("latin-1")))


def main():
    rec = Recorder()
    base = "http://127.0.0.1:%d" % rec.port
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "KUBECONFIG": "/dev/null"}
    py = ("import urllib.request as u; "
          "u.urlopen(u.Request('%s/v1/objects/a%%20b?limit=10', headers={'Authorization': 'Bearer t0ken'})).read(); "
          "u.urlopen(u.Request('%s/v1/objects/7', data=b'{\"name\": \"x\"}', method='PUT', "
          "headers={'Content-Type': 'application/json'})).read()") % (base, base)
    js = ("(async () => { await (await fetch('%s/api/items?q=%%C3%%A9t%%C3%%A9')).text(); "
          "await (await fetch('%s/api/items', {method: 'POST', headers: {'content-type': 'application/json'}, "
          "body: JSON.stringify({n: 1, s: 'two'})})).text(); })()") % (base, base)
    clients = [
        ("curl_get", ["curl", "-s", "-H", "Authorization: Bearer t0ken", base + "/v1/buckets/b1/objects?prefix=logs%2F&max=5"], None),
        ("curl_post_json", ["curl", "-s", "-X", "POST", "-H", "Content-Type: application/json",
                            "-d", '{"query": "select 1", "dry_run": false}', base + "/v1/jobs"], None),
        ("curl_delete", ["curl", "-s", "-X", "DELETE", base + "/v1/buckets/b1"], None),
        ("curl_chunked", ["curl", "-s", "-H", "Transfer-Encoding: chunked", "-H", "Content-Type: text/plain",
                          "--data-binary", "@-", base + "/v1/upload"], b"line one\nline two\n" * 50),
        ("python_urllib", ["/usr/bin/python3", "-c", py], None),
        ("node_fetch", ["node", "-e", js], None),
    ]
    for f in os.listdir(CORPUS):
        if f.startswith("captured_"):
            os.unlink(os.path.join(CORPUS, f))
    for label, argv, stdin in clients:
        try:
            subprocess.run(argv, input=stdin, env=env, capture_output=True, timeout=60)
        except FileNotFoundError:
            sys.exit("capture_http.py: %s is not installed (scripts/deps.sh installs the clients)" % argv[0])
        got = rec.take()
        if not got:
            sys.exit("capture_http.py: %s sent no request" % label)
        save(label, got)
    # kubectl asks for its API's discovery documents first: every request it made is kept
    get, ex = kubectl_requests([["get", "pod", "web-0", "-n", "prod"],
                                ["exec", "-n", "prod", "web-0", "-c", "app", "--", "sh", "-c", "rm -rf /tmp/x"]])
    if not any(b"/exec?" in r for r in ex):
        sys.exit("capture_http.py: kubectl exec made no exec request")
    save("kubectl_get", get)
    save("kubectl_exec", ex)


if __name__ == "__main__":
    main()
