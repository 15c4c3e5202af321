"""Review console test (issue 7): the web console in headless Chromium, against a real airlockd and PostgreSQL.

Run as root with /usr/bin/python3. Prints `ok - console: NAME` / `not ok - console: NAME: why` per case
and exits 1 if any failed. It starts a throwaway PostgreSQL cluster (127.0.0.9 only), an airlockd whose
postgres resource holds DELETE/UPDATE for review, with its console on 127.0.0.1:<free port>, a pinned
test cgroup (agents run there as uid 65534), and Debian's chromium outside that cgroup, driven over the
DevTools protocol on a pipe (--remote-debugging-pipe: no debugging port is opened). Everything (browser,
cluster, daemon, cgroups, pins, temp dirs) is removed on any exit; only processes this test started are
stopped, by pid.

The queue screenshot is written to build/console-queue.png (nothing is left in /tmp).
"""

import base64
import fcntl
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lib  # noqa: E402
import pgcluster  # noqa: E402
from lib import check, note, wait_for  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SETPRIV = "/usr/bin/setpriv"
PG_ADDR = "127.0.0.9"
DB = "consoledb"
APP_PW = "c0ns0le pw"
AGENT_UID = 65534
REVIEWERS = {  # name: (uid, groups, admin, password)
    "alice": (47201, "dba", True, "alice pw " + lib.RUN_ID),
    "bob": (47202, "dba", False, "bob pw " + lib.RUN_ID),
}
RULES = [
    "rule deny unbounded_write",
    "rule review kind delete update approvers dba timeout 120s max_grant 1h",
]
SETUP_SQL = """
CREATE ROLE app LOGIN PASSWORD '%s';
CREATE DATABASE %s OWNER app;
\\c %s
SET SESSION AUTHORIZATION app;
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT g, 'item-' || g FROM generate_series(1, 50) g;
""" % (APP_PW, DB, DB)

XSS_TEXT = ("DELETE FROM items WHERE name = '<img src=x onerror=\"window.__xss=1\">' "
            "OR name = '</script><script>window.__xss=2</script>' OR name = 'abc\u202edef'")
XSS_IDENT = 'DELETE FROM "<img src=x onerror=window.__xss=3>" WHERE id = 1'
XSS_CGROUP = "-<img src=x onerror=window.__xss=4>"


class T:
    tmp = home = pg = al = cg = cgx = None
    url = None
    br = None
    token = None
    up = False
    approved = None        # request row approved in the browser


# ---------------------------------------------------------------- DevTools over a pipe

class Browser:
    """Headless Chromium with --remote-debugging-pipe: JSON messages ending in NUL on fds 3 (in) and 4 (out)."""

    def __init__(self, userdir):
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()
        # Above 4, so 3<&N 4>&M cannot clobber one with the other; dash takes single-digit fds
        # only, so a process with more open (test_https.py) needs bash.
        hi = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5) for fd in (to_r, from_w)]
        os.close(to_r)
        os.close(from_w)
        to_r, from_w = hi
        shell = "/bin/sh" if max(hi) < 10 else "/bin/bash"
        check(os.access(shell, os.X_OK), "pipe fds %r: dash takes single-digit fds only, and there is no bash" % hi)
        argv = [shell, "-c", 'exec "$0" "$@" 3<&%d 4>&%d %d<&- %d>&-' % (to_r, from_w, to_r, from_w),
                CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--disable-default-apps", "--mute-audio",
                "--no-proxy-server", "--password-store=basic", "--use-mock-keychain",
                "--window-size=1280,900", "--user-data-dir=" + userdir, "--remote-debugging-pipe",
                "about:blank"]
        self.log = open(os.path.join(userdir, "..", "chromium.log"), "wb")
        self.p = subprocess.Popen(argv, pass_fds=(to_r, from_w), stdin=subprocess.DEVNULL,
                                  stdout=self.log, stderr=self.log, env=lib.CLIENT_ENV,
                                  start_new_session=True)
        lib.on_cleanup(self.close)
        os.close(to_r)
        os.close(from_w)
        self.next_id = 0
        self.lock = threading.Lock()
        self.replies = {}
        self.cv = threading.Condition()
        self.events = []
        self.t = threading.Thread(target=self._reader, daemon=True)
        self.t.start()
        self.session = None

    def _reader(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_r, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                with self.cv:
                    self.replies[-1] = {"error": {"message": "chromium closed the pipe"}}
                    self.cv.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self.cv:
                    if "id" in msg:
                        self.replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self.cv.notify_all()

    def send(self, method, params=None, session=True, timeout=30):
        with self.lock:
            self.next_id += 1
            mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        with self.cv:
            while mid not in self.replies and -1 not in self.replies:
                left = end - time.monotonic()
                check(left > 0, "DevTools: no answer to %s within %ds" % (method, timeout))
                self.cv.wait(left)
            r = self.replies.pop(mid, None) or self.replies[-1]
        check("error" not in r, "DevTools %s: %s" % (method, r.get("error")))
        return r.get("result", {})

    def open_page(self):
        tid = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": tid, "flatten": True},
                                 session=False)["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")

    def js(self, expr, timeout=20):
        """The value of a JS expression in the page (promises awaited)."""
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True}, timeout=timeout)
        check("exceptionDetails" not in r, "JS %r threw: %s" % (expr[:80], r.get("exceptionDetails")))
        return r.get("result", {}).get("value")

    def wait_js(self, expr, timeout=15, what=None):
        v = wait_for(lambda: self.js(expr), timeout, 0.1)
        check(v, "%s: not true within %ds" % (what or expr[:100], timeout))
        return v

    def goto(self, url):
        self.send("Page.navigate", {"url": url})
        self.wait_js("document.readyState === 'complete' && !!document.getElementById('app')", 20,
                     "page load of " + url)

    def key(self, ch):
        for t in ("keyDown", "keyUp"):
            p = {"type": t, "key": ch, "code": "Key" + ch.upper(), "windowsVirtualKeyCode": ord(ch.upper())}
            if t == "keyDown":
                p["text"] = ch
            self.send("Input.dispatchKeyEvent", p)

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        if self.p.poll() is None:
            try:
                self.send("Browser.close", session=False, timeout=5)
            except Exception:
                pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        lib.stop_process(self.p, 3)
        for fd in (self._to_w, self._from_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()


# ---------------------------------------------------------------- helpers

def conninfo():
    return "host=%s port=%d dbname=%s user=app sslmode=disable connect_timeout=10" % (
        PG_ADDR, T.pg.port, DB)


def psql_bg(cg, sql):
    argv = [SETPRIV, "--reuid=%d" % AGENT_UID, "--regid=%d" % AGENT_UID, "--clear-groups",
            pgcluster.PSQL, "-X", "-w", "-At", "-d", conninfo(), "-v", "VERBOSITY=verbose", "-c", sql]
    return cg.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True, env=pgcluster.client_env(T.home, "wrong"))


def finish(p, timeout=20):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("psql did not finish within %ds (%r %r)" % (timeout, out[-200:], err[-300:]))
    return p.returncode, out, err


def requests(where="1", args=()):
    return T.al.db_rows(where, args, table="requests")


def wait_request(text, after=0, timeout=15):
    def get():
        rows = [r for r in requests("id > ?", (after,)) if text in (r["command"] or "")]
        return rows[-1] if rows else None
    row = wait_for(get, timeout, 0.05)
    check(row, "no review request for %r within %ds" % (text, timeout))
    return row


def max_req():
    return max((r["id"] for r in requests()), default=0)


def http(method, path, body=None, headers=None, timeout=15):
    """(status, headers, body text) of a request to the console from this process (no cookies)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(T.url.rstrip("/") + path, data=data, method=method,
                                 headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def item_js(rid):
    return "document.querySelector('#queue li[data-id=\"%d\"]')" % rid


def need_up():
    check(T.up and T.al.running(), "airlockd is not running (log: %s)" % T.al.log_tail(5))
    check(T.br and T.br.p.poll() is None, "chromium is not running")


# ---------------------------------------------------------------- cases

def case_unauthenticated():
    need_up()
    st, hdr, body = http("GET", "/api/v1/pending")
    check(st == 401 and json.loads(body).get("error"), "GET /api/v1/pending without login: %d %r" % (st, body))
    for path in ("/api/v1/grants", "/api/v1/audit", "/api/v1/sessions/1", "/api/v1/users", "/api/v1/events",
                 "/metrics", "/api/v1/me"):
        st, _, body = http("GET", path)
        check(st == 401, "GET %s without login: %d %r" % (path, st, body[:200]))
    st, _, body = http("POST", "/api/v1/requests/1/approve", {"reason": "x"})
    check(st == 401, "POST approve without login: %d %r" % (st, body[:200]))
    st, _, body = http("GET", "/api/v1/pending", headers={"Authorization": "Bearer " + "0" * 64})
    check(st == 401, "a made-up bearer token: %d" % st)
    st, hdr, body = http("GET", "/")
    check(st == 200 and "login-form" in body, "GET / : %d" % st)
    csp = hdr.get("Content-Security-Policy", "")
    check("default-src 'self'" in csp and "frame-ancestors 'none'" in csp, "CSP header: %r" % csp)
    check(hdr.get("X-Content-Type-Options") == "nosniff" and hdr.get("Referrer-Policy") == "no-referrer",
          "headers: %r" % hdr)


def case_login():
    need_up()
    b = T.br
    b.goto(T.url)
    b.wait_js("!document.getElementById('login').hidden", 10, "the login form is shown")
    check(b.js("document.getElementById('app').hidden") is True, "the app is visible before login")
    # A wrong password first: refused, still on the login page.
    b.js("document.getElementById('login-name').value = 'alice';"
         "document.getElementById('login-password').value = 'wrong';"
         "document.getElementById('login-submit').click(); true")
    b.wait_js("document.getElementById('login-error').textContent.length > 0", 10, "a login error")
    check(b.js("document.getElementById('app').hidden") is True, "a wrong password logged in")
    pw = json.dumps(REVIEWERS["alice"][3])
    b.js("document.getElementById('login-name').value = 'alice';"
         "document.getElementById('login-password').value = %s;"
         "document.getElementById('login-submit').click(); true" % pw)
    b.wait_js("!document.getElementById('app').hidden", 10, "the app after login")
    b.wait_js("document.getElementById('live').textContent === 'live'", 10, "the live feed is open")
    ck = b.send("Storage.getCookies", session=False).get("cookies", [])
    sess = [c for c in ck if c.get("name") == "airlock_session"]
    check(sess and sess[0].get("httpOnly") and sess[0].get("sameSite") == "Strict",
          "session cookie: %r" % sess)
    check(b.js("document.cookie.indexOf('airlock_session') < 0"), "the session cookie is visible to JS")
    check(b.js("document.getElementById('me').textContent").startswith("alice"), "who am I")
    b.js("window.__marker = 'no reload'; true")


def case_live_queue():
    need_up()
    b = T.br
    mark = max_req()
    sql = "DELETE FROM items WHERE id = 1"
    T.p1 = psql_bg(T.cg, sql)
    row = wait_request(sql, mark)
    T.req1 = row
    t0 = time.monotonic()
    b.wait_js("!!%s" % item_js(row["id"]), 10, "request %d in the open queue" % row["id"])
    note("request %d appeared in the page %.2fs after it was stored" % (row["id"], time.monotonic() - t0))
    check(b.js("window.__marker") == "no reload", "the page was reloaded")
    cmd = b.js("%s.querySelector('pre.cmd').textContent" % item_js(row["id"]))
    check(cmd == sql, "command shown %r, want %r" % (cmd, sql))
    text = b.js("%s.textContent" % item_js(row["id"]))
    for want in ("delete", T.cg.rel, "pg", "0 of 1 approvals", "left", "waiting", str(AGENT_UID), row["rule"]):
        check(want.lower() in text.lower(), "the queue item lacks %r: %r" % (want, text[:400]))
    check(b.js("document.title").startswith("(1)"), "title %r" % b.js("document.title"))
    check(T.p1.poll() is None, "psql finished before review")
    time.sleep(0.3)
    shot = os.path.join(lib.BUILD, "console-queue.png")
    try:
        b.screenshot(shot)
        note("queue screenshot: %s" % shot)
    except OSError as e:
        note("could not write the screenshot %s: %s" % (shot, e))


def case_approve():
    need_up()
    b = T.br
    rid = T.req1["id"]
    reason = "ticket %s" % lib.RUN_ID
    b.js("(() => { const li = %s; li.querySelector('.reason').value = %s;"
         " li.querySelector('button.approve').click(); return true; })()" % (item_js(rid), json.dumps(reason)))
    rc, out, err = finish(T.p1)
    check(rc == 0 and out.strip() == "DELETE 1", "psql after approval: exit %d %r %r" % (rc, out, err[-300:]))
    st = wait_for(lambda: (lambda r: r if r["state"] == "approved" else None)(requests("id = ?", (rid,))[0]),
                  5, 0.05)
    check(st, "request %d is not approved" % rid)
    db = sqlite3.connect("file:%s?mode=ro" % T.al.store, uri=True, timeout=5)
    try:
        rows = db.execute("SELECT reviewer, decision, reason FROM approvals WHERE request_id = ?",
                          (rid,)).fetchall()
    finally:
        db.close()
    check(rows == [("alice", "approve", reason)], "approvals of %d: %r" % (rid, rows))
    b.wait_js("!%s" % item_js(rid), 10, "the approved request leaves the queue")
    check(b.js("document.title") == "Airlock review", "title after approval %r" % b.js("document.title"))
    T.approved = st


def case_deny():
    need_up()
    b = T.br
    mark = max_req()
    sql = "UPDATE items SET name = 'x' WHERE id = 2"
    p = psql_bg(T.cg, sql)
    row = wait_request(sql, mark)
    b.wait_js("!!%s" % item_js(row["id"]), 10, "request %d in the queue" % row["id"])
    reason = "change freeze %s" % lib.RUN_ID
    # By keyboard: select it (j/k), type the reason, leave the field, press d.
    b.js("(() => { const li = %s; li.querySelector('.reason').value = %s; document.activeElement.blur();"
         " return true; })()" % (item_js(row["id"]), json.dumps(reason)))
    idx = b.js("[...document.querySelectorAll('#queue li')].findIndex(li => li.dataset.id === '%d')" % row["id"])
    for _ in range(5):
        b.key("k")
    for _ in range(idx):
        b.key("j")
    check(b.js("%s.classList.contains('sel')" % item_js(row["id"])), "j/k did not select request %d" % row["id"])
    b.key("d")
    rc, out, err = finish(p)
    check(rc != 0 and reason in err and "42501" in err and str(row["id"]) in err,
          "psql after the denial: exit %d %r" % (rc, err.strip()[-300:]))
    check(pgcluster_sql("SELECT name FROM items WHERE id = 2") == "item-2", "the denied UPDATE ran")
    b.wait_js("!%s" % item_js(row["id"]), 10, "the denied request leaves the queue")


def pgcluster_sql(sql):
    return T.pg.sql(sql, db=DB)


def case_xss():
    need_up()
    b = T.br
    mark = max_req()
    ps = [psql_bg(T.cg, XSS_TEXT), psql_bg(T.cg, XSS_IDENT)]
    rows = [wait_request("window.__xss=1", mark), wait_request("window.__xss=3", mark)]
    if T.cgx:
        ps.append(psql_bg(T.cgx, "DELETE FROM items WHERE id = 7"))
        rows.append(wait_request("DELETE FROM items WHERE id = 7", mark))
    T.xss = (ps, rows)
    for r in rows:
        b.wait_js("!!%s" % item_js(r["id"]), 10, "request %d in the queue" % r["id"])
    time.sleep(0.5)
    check(b.js("typeof window.__xss") == "undefined", "a payload ran: window.__xss = %r" % b.js("window.__xss"))
    check(b.js("document.querySelectorAll('#queue img, #queue script, #app img').length") == 0,
          "the queue has img/script elements")
    shown = b.js("%s.querySelector('pre.cmd').textContent" % item_js(rows[0]["id"]))
    want = XSS_TEXT.replace("\u202e", "\\u202E")
    check(shown == want, "command shown as %r, want %r" % (shown, want))
    check(b.js("%s.querySelector('pre.cmd .esc').textContent" % item_js(rows[0]["id"])) == "\\u202E",
          "the bidi override is not marked as an escape")
    shown = b.js("%s.querySelector('pre.cmd').textContent" % item_js(rows[1]["id"]))
    check(shown == XSS_IDENT, "identifier command shown as %r" % shown)
    if T.cgx:
        text = b.js("%s.textContent" % item_js(rows[2]["id"]))
        check(T.cgx.rel in text, "the cgroup path %r is not shown as text: %r" % (T.cgx.rel, text[:300]))
    # The other views too.
    b.js("location.hash = '#/history'; true")
    b.wait_js("document.querySelectorAll('#history tbody tr').length > 1", 10, "history rows")
    check(b.js("typeof window.__xss") == "undefined", "a payload ran in history")
    check(b.js("document.querySelectorAll('#app img, #app script').length") == 0, "history has img/script")
    check(b.js("document.getElementById('history').textContent.includes('onerror=window.__xss=3')"),
          "history does not show the identifier payload as text")
    b.js("location.hash = '#/queue'; true")
    b.wait_js("!document.getElementById('view-queue').hidden", 5)


def case_csrf():
    need_up()
    b = T.br
    ps, rows = T.xss
    rid = rows[0]["id"]
    r = b.js("fetch('/api/v1/requests/%d/deny', {method: 'POST', credentials: 'same-origin',"
             " headers: {'Content-Type': 'application/json'}, body: JSON.stringify({reason: 'csrf'})})"
             ".then(r => r.status)" % rid)
    check(r == 403, "a POST with the session cookie but no X-CSRF-Token: %r" % r)
    r = b.js("fetch('/api/v1/requests/%d/deny', {method: 'POST', credentials: 'same-origin',"
             " headers: {'Content-Type': 'application/json', 'X-CSRF-Token': 'f'.repeat(64)},"
             " body: JSON.stringify({reason: 'csrf'})}).then(r => r.status)" % rid)
    check(r == 403, "a POST with a wrong X-CSRF-Token: %r" % r)
    r = b.js("fetch('/api/v1/logout', {method: 'POST', credentials: 'same-origin'}).then(r => r.status)")
    check(r == 403, "logout without the CSRF token: %r" % r)
    check(requests("id = ?", (rid,))[0]["state"] == "pending", "request %d was decided" % rid)
    check(b.js("fetch('/api/v1/me').then(r => r.status)") == 200, "the session ended")


def case_token_api():
    need_up()
    r = T.al.ctl("console", "token", "bob")
    check(r.returncode == 0 and len(r.stdout.strip()) == 64, "airlockctl console token bob: %d %r %r"
          % (r.returncode, r.stdout, r.stderr))
    T.token = r.stdout.strip()
    auth = {"Authorization": "Bearer " + T.token}
    st, _, body = http("GET", "/api/v1/pending", headers=auth)
    check(st == 200, "GET pending with a token: %d %r" % (st, body[:200]))
    pend = json.loads(body)["pending"]
    ps, rows = T.xss
    ids = {r["id"] for r in rows}
    check(ids <= {p["id"] for p in pend}, "pending lacks %s" % ids)
    st, _, body = http("GET", "/api/v1/users", headers=auth)
    check(st == 403, "users for a non-admin: %d" % st)
    st, _, body = http("GET", "/api/v1/requests/%d" % rows[0]["id"], headers=auth)
    check(st == 200 and json.loads(body)["request"]["command"] == XSS_TEXT, "GET requests/ID: %d" % st)
    st, _, body = http("POST", "/api/v1/requests/%d/deny" % rows[0]["id"], {}, headers=auth)
    check(st == 409 and "reason" in body, "deny without a reason: %d %r" % (st, body))
    for r, p in zip(rows, ps):
        st, _, body = http("POST", "/api/v1/requests/%d/deny" % r["id"], {"reason": "xss test"}, headers=auth)
        check(st == 200, "deny %d by token: %d %r" % (r["id"], st, body))
        rc, out, err = finish(p)
        check(rc != 0 and "xss test" in err, "psql of request %d: %d %r" % (r["id"], rc, err[-200:]))
    check(T.br.js("document.querySelectorAll('#queue li').length") == 0 or
          T.br.wait_js("document.querySelectorAll('#queue li').length === 0", 10), "queue not empty")
    # Audit and session views over the API.
    st, _, body = http("GET", "/api/v1/audit?what=statements&decision=review&since=1h", headers=auth)
    stm = json.loads(body).get("statements", []) if st == 200 else []
    check(st == 200 and any("DELETE FROM items WHERE id = 1" == s["text"] for s in stm),
          "audit statements: %d %r" % (st, body[:300]))
    conn_id = T.approved["conn_id"]
    st, _, body = http("GET", "/api/v1/sessions/%d" % conn_id, headers=auth)
    j = json.loads(body)
    check(st == 200 and j["connection"]["id"] == conn_id and
          [s["text"] for s in j["statements"]] == ["DELETE FROM items WHERE id = 1"] and
          j["statements"][0]["tag"] == "DELETE 1", "session %d: %d %r" % (conn_id, st, body[:400]))
    # A PostgreSQL session's recorded protocol rows are not an exec stream (test_https.py looks at one).
    check(j.get("exec") == [] and j.get("http_requests") == [],
          "session %d: exec %r, http_requests %r" % (conn_id, j.get("exec"), j.get("http_requests")))
    st, _, body = http("GET", "/api/v1/grants", headers=auth)
    check(st == 200 and isinstance(json.loads(body)["grants"], list), "grants: %d" % st)


def case_metrics():
    need_up()
    st, hdr, body = http("GET", "/metrics", headers={"Authorization": "Bearer " + T.token})
    check(st == 200 and hdr.get("Content-Type", "").startswith("text/plain"), "GET /metrics: %d %r" % (st, hdr))
    for want in ("airlock_pending_requests 0", 'airlock_review_requests_total{state="approved"} 1',
                 'airlock_review_requests_total{state="denied"}', "airlock_steered_connections_total",
                 'airlock_statements_total{decision="review"}',
                 'airlock_decision_latency_seconds_bucket{le="+Inf"}', "airlock_decision_latency_seconds_count"):
        check(want in body, "/metrics lacks %r:\n%s" % (want, body[:1500]))


def case_session_view():
    need_up()
    b = T.br
    conn_id = T.approved["conn_id"]
    b.js("location.hash = '#/session/%d'; true" % conn_id)
    b.wait_js("document.querySelectorAll('#s-stmts li').length === 1", 10, "the session's statements")
    check("DELETE FROM items WHERE id = 1" in b.js("document.getElementById('s-stmts').textContent"),
          "session view: %r" % b.js("document.getElementById('s-stmts').textContent"))
    b.js("document.getElementById('s-play').click(); true")
    b.wait_js("document.querySelectorAll('#s-stmts li').length === 1 && "
              "document.getElementById('s-play').textContent === 'Play'", 10, "replay ran")
    b.js("location.hash = '#/queue'; true")


PAGED_ROWS = 2500


def session_page(conn_id, auth, query=""):
    st, _, body = http("GET", "/api/v1/sessions/%d%s" % (conn_id, query), headers=auth, timeout=60)
    return st, (json.loads(body) if st == 200 else body)


def case_session_pages():
    """A session of PAGED_ROWS statements (one psql, through airlockd) comes a page at a time:
    over the API each page follows on from the one before (next), and in Chromium the view shows
    the first 1000 and loads the rest with "Load more"."""
    need_up()
    check(T.token, "no API token (the token case failed)")
    auth = {"Authorization": "Bearer " + T.token}
    argv = [SETPRIV, "--reuid=%d" % AGENT_UID, "--regid=%d" % AGENT_UID, "--clear-groups",
            pgcluster.PSQL, "-X", "-w", "-At", "-q", "-d", conninfo(), "-f", "-"]
    p = T.cg.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   text=True, env=pgcluster.client_env(T.home, "wrong"))
    out, err = p.communicate("".join("SELECT %d AS paged;\n" % i for i in range(PAGED_ROWS)), timeout=120)
    check(p.returncode == 0 and out.split() == [str(i) for i in range(PAGED_ROWS)],
          "psql of %d statements: %d %r %r" % (PAGED_ROWS, p.returncode, out[-200:], err[-300:]))
    last = "SELECT %d AS paged" % (PAGED_ROWS - 1)
    rows = wait_for(lambda: T.al.db_rows("text = ?", (last,), table="statements"), 10, 0.1)
    check(rows, "no audit row for %r" % last)
    conn_id = rows[0]["conn_id"]
    want = ["SELECT %d AS paged" % i for i in range(PAGED_ROWS)]

    # Over the API: 1000 a page unless told; pages of 700 follow on to the end.
    st, j = session_page(conn_id, auth)
    check(st == 200 and [x["text"] for x in j["statements"]] == want[:1000] and j["next"],
          "the first page: %s %r" % (st, j if st != 200 else (len(j["statements"]), j["next"])))
    got, nxt, pages = [], None, 0
    while True:
        st, j = session_page(conn_id, auth, "?limit=700" + ("&after=" + urllib.parse.quote(nxt) if nxt else ""))
        check(st == 200 and j["connection"]["id"] == conn_id, "page %d: %s %r" % (pages, st, j))
        got += [x["text"] for x in j["statements"]]
        pages += 1
        nxt = j["next"]
        if not nxt or pages > 10:
            break
    check(got == want and pages == 4, "pages of 700: %d pages, %d statements, %r..."
          % (pages, len(got), got[:2]))
    for q in ("?limit=0", "?limit=100000", "?limit=x", "?after=x1", "?after=s1", "?after=s1.2,q3"):
        st, body = session_page(conn_id, auth, q)
        check(st == 400, "GET /api/v1/sessions/%d%s: %s %r" % (conn_id, q, st, body))

    # In the browser.
    b = T.br
    b.js("location.hash = '#/session/%d'; true" % conn_id)
    b.wait_js("document.querySelectorAll('#s-stmts li').length === 1000 && "
              "!document.getElementById('s-more').hidden", 20, "the first 1000 statements and Load more")
    for n in (2000, PAGED_ROWS):
        b.js("document.getElementById('s-more').click(); true")
        b.wait_js("document.querySelectorAll('#s-stmts li').length === %d" % n, 20, "%d statements shown" % n)
    shown = b.js("[...document.querySelectorAll('#s-stmts li pre.cmd')].map(e => e.textContent)")
    check(shown == want, "the page's statements: %d, %r ... %r" % (len(shown), shown[:2], shown[-2:]))
    check(b.js("document.getElementById('s-more').hidden") and
          b.js("document.getElementById('s-count').textContent") == "%d items" % PAGED_ROWS,
          "after the last page: Load more %r, count %r" % (b.js("document.getElementById('s-more').hidden"),
                                                           b.js("document.getElementById('s-count').textContent")))
    b.js("location.hash = '#/queue'; true")


def case_agent_refused():
    need_up()
    port = T.url.rsplit(":", 1)[1].strip("/")
    r = T.cg.run(["/usr/bin/curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}",
                  "http://127.0.0.1:%s/api/v1/pending" % port], timeout=20)
    check(r.returncode != 0 or r.stdout.strip() in ("000", "403"),
          "curl from the pinned cgroup reached the console: exit %d %r %r" % (r.returncode, r.stdout, r.stderr))
    rows = wait_for(lambda: [c for c in T.al.db_rows("dst_port = ?", (int(port),)) if c["reason"] == "steer_loop"],
                    5, 0.1)
    check(rows, "no steer_loop row for the agent's connection to the console port")


def case_logout():
    need_up()
    b = T.br
    b.js("document.getElementById('logout').click(); true")
    b.wait_js("!document.getElementById('login').hidden", 10, "login page after logout")
    check(b.js("fetch('/api/v1/pending').then(r => r.status)") == 401, "API after logout is not 401")


def case_rate_limit():
    need_up()
    name = "nobody-%s" % lib.RUN_ID
    codes = [http("POST", "/api/v1/login", {"name": name, "password": "x%d" % i})[0] for i in range(7)]
    # The address has one failure already (the wrong password in the login case): 5 a minute in all.
    n = codes.index(429) if 429 in codes else len(codes)
    check(n == 4 and codes[:n] == [401] * n and codes[n:] == [429] * (len(codes) - n),
          "failed logins from one address: %r (want 4 x 401, then 429)" % codes)
    st, _, body = http("POST", "/api/v1/login", {"name": "bob", "password": REVIEWERS["bob"][3]})
    check(st == 429, "a right password from the same address right after: %d (want 429: per-address limit)" % st)


FILL_ROWS = 500000
SEARCHES = 16
FILL_STORE = os.path.join(lib.BUILD, "tests", "fill_store")


def case_long_read():
    """A console search that reads the whole store runs in the reader thread: agents' sessions
    and airlockctl go on meanwhile; a stop does not wait for it."""
    need_up()
    check(T.token, "no API token (the token case failed)")
    check(os.access(FILL_STORE, os.X_OK), "missing %s (make unit)" % FILL_STORE)
    auth = {"Authorization": "Bearer " + T.token}
    # The store a day of an agent's traffic makes: one session of FILL_ROWS statements.
    T.up = False
    check(T.al.stop() == 0, "airlockd did not stop cleanly: %s" % T.al.log_tail(5))
    fill_cg = "/airlock-test-fill-" + lib.RUN_ID
    r = subprocess.run([FILL_STORE, T.al.store, str(FILL_ROWS), fill_cg, "pg"], capture_output=True,
                       text=True, timeout=600)
    check(r.returncode == 0, "fill_store: %d %r" % (r.returncode, r.stderr[-300:]))
    fill_conn = int(r.stdout.strip())
    T.al.start()
    T.up = True
    # The newest rows of an agent come at once, right ones, newest first.
    st, _, body = http("GET", "/api/v1/audit?what=statements&agent=%s&limit=5&since=" % fill_cg, headers=auth)
    rows = json.loads(body).get("statements", []) if st == 200 else []
    check(st == 200 and [x["seq"] for x in rows] == list(range(FILL_ROWS - 1, FILL_ROWS - 6, -1)) and
          all(x["conn_id"] == fill_conn and x["cgroup_path"] == fill_cg and x["resource"] == "pg" and
              x["decision"] == "allow" and x["tag"] == "SELECT 1" for x in rows),
          "newest 5 of %s: %d %r" % (fill_cg, st, body[:400]))

    # A long session's view: a page of its first 1000 statements in order, and pages from deep
    # inside it (the largest page size) as quickly.
    rss0 = lib.rss_kib(T.al.proc.pid)
    t1 = time.monotonic()
    st, _, body = http("GET", "/api/v1/sessions/%d" % fill_conn, headers=auth, timeout=120)
    first_s = time.monotonic() - t1
    j = json.loads(body) if st == 200 else {}
    ses = j.get("statements", [])
    check(st == 200 and [x["seq"] for x in ses] == list(range(1000)) and j.get("next") and
          all(x["conn_id"] == fill_conn for x in ses), "session %d: %s, %d statements, %r"
          % (fill_conn, st, len(ses), [x.get("seq") for x in ses[-2:]]))
    nxt, seen, big = j["next"], 1000, []
    t1 = time.monotonic()
    for _ in range(3):
        st, _, body = http("GET", "/api/v1/sessions/%d?limit=99999&after=%s" % (fill_conn, urllib.parse.quote(nxt)),
                           headers=auth, timeout=120)
        j = json.loads(body) if st == 200 else {}
        ses = j.get("statements", [])
        check(st == 200 and [x["seq"] for x in ses[:2]] == [seen, seen + 1] and len(ses) == 99999 and
              ses[-1]["seq"] == seen + 99998 and j.get("next"), "a page after %d: %s %d %r"
              % (seen, st, len(ses), [x.get("seq") for x in ses[:2]]))
        big.append(len(body))
        seen += len(ses)
        nxt = j["next"]
    note("a %d-statement session: its first page in %.2f s; 3 pages of 99999 (%d KiB of JSON each) in %.1f s; "
         "airlockd's resident memory %d -> %d KiB" % (FILL_ROWS, first_s, max(big) // 1024, time.monotonic() - t1,
                                                      rss0, lib.rss_kib(T.al.proc.pid)))

    # Searches that match nothing read every batch; SEARCHES of them queue for the reader thread
    # (seconds of reading). Meanwhile psql goes through airlockd and airlockctl asks it for its
    # status: with the reads in the event loop they would wait for all of them.
    def search(out):
        try:
            out["resp"] = http("GET", "/api/v1/audit?what=statements&agent=/airlock-test-nobody&since=",
                               headers=auth, timeout=300)
        except OSError as e:
            out["resp"] = (None, {}, repr(e))
        out["end"] = time.monotonic()

    def searches():
        res = [{} for _ in range(SEARCHES)]
        ths = [threading.Thread(target=search, args=(r,)) for r in res]
        for th in ths:
            th.start()
        return res, ths
    t0 = time.monotonic()
    res, ths = searches()
    time.sleep(0.3)
    ends = []
    for _ in range(3):
        rc, out, err = finish(psql_bg(T.cg, "SELECT count(*) FROM items"), 60)
        check(rc == 0 and out.strip().isdigit(), "psql during the searches: %d %r %r" % (rc, out, err[-300:]))
        ends.append(time.monotonic())
    r = T.al.ctl("status")
    check(r.returncode == 0 and "pinned cgroups" in r.stdout, "airlockctl status during the searches: %r"
          % r.stderr[-300:])
    ends.append(time.monotonic())
    for th in ths:
        th.join(310)
    check(all("end" in x for x in res), "a search did not answer")
    bad = [x["resp"][:1] + (x["resp"][2][:200],) for x in res if x["resp"][0] != 200 or
           json.loads(x["resp"][2])["statements"] != []]
    check(not bad, "searches: %r" % bad[:3])
    last = max(x["end"] for x in res)
    check(ends[-1] < last, "psql and airlockctl ended %.2f s after start, the last search %.2f s: they "
          "waited for the searches" % (ends[-1] - t0, last - t0))
    note("%d searches over %d statements took %.1f s; 3 psql sessions and airlockctl status were done "
         "after %.1f s" % (SEARCHES, FILL_ROWS, last - t0, ends[-1] - t0))
    # policy test reads the store file itself (the daemon does not replay a day of statements in
    # its loop): the running rules change nothing; a candidate that denies what they review
    # changes exactly the reviewed statements.
    for name, rules, want in (("same", RULES, False),
                              ("cand", [RULES[0], "rule deny kind delete update"], True)):
        conf = os.path.join(T.tmp, name + ".conf")
        with open(conf, "w") as f:
            f.write(pgcluster.pg_resource("pg", PG_ADDR, T.pg.port, rules) + "\n")
        t2 = time.monotonic()
        r = T.al.ctl("policy", "test", "--since", "1h", conf, "--json", timeout=300)
        check(r.returncode == 0, "policy test %s: %s" % (name, (r.stderr or r.stdout)[-300:]))
        pt = json.loads(r.stdout)
        ch = pt["changes"]
        check(pt["checked_statements"] > FILL_ROWS, "policy test %s checked %r" % (name, pt["checked_statements"]))
        check(all(c["was"] == "review" and c["would_be"] == "deny" and
                  c["text"].split()[0] in ("DELETE", "UPDATE") for c in ch) and bool(ch) == want and
              (not want or any(c["text"] == "DELETE FROM items WHERE id = 1" for c in ch)),
              "policy test %s changes: %r" % (name, ch[:3]))
        note("policy test (%s) of %d statements in airlockctl: %.1f s, %d changes"
             % (name, pt["checked_statements"], time.monotonic() - t2, len(ch)))
    # A stop while searches run or wait ends them: each is answered (200, or 503 when the stop
    # came first) or its connection closed; the daemon does not wait for them.
    res, ths = searches()
    time.sleep(0.5)
    t1 = time.monotonic()
    T.up = False
    rc = T.al.stop(timeout=20)
    stopped = time.monotonic() - t1
    for th in ths:
        th.join(30)
    check(rc == 0, "airlockd exited %s after a stop during searches (log: %s)" % (rc, T.al.log_tail(5)))
    cut = [x for x in res if x.get("resp", (0,))[0] in (None, 503)]
    check(all(x.get("resp", (0,))[0] in (None, 503, 200) for x in res) and cut,
          "searches cut by a stop: %r" % [x.get("resp", (0, 0, ""))[0] for x in res])
    note("airlockd stopped %.2f s after SIGTERM with %d of %d searches not done" % (stopped, len(cut), SEARCHES))
    T.al.start()
    T.up = True


def case_still_up():
    need_up()
    T.al.check_log_clean()


# ---------------------------------------------------------------- main

def setup():
    t = T
    t.tmp, t.home, ca_dir = lib.make_workdir()
    t.pg = pgcluster.Cluster(PG_ADDR)
    t.pg.start(SETUP_SQL)
    secrets = pgcluster.write_secrets(os.path.join(t.tmp, "secrets.conf"), [("pgcred", "app", APP_PW)])
    t.cg = lib.TestCgroup("-a")
    try:
        t.cgx = lib.TestCgroup(XSS_CGROUP)
    except OSError as e:
        note("cannot make a cgroup named with markup (%s): the path case is skipped" % e)
        t.cgx = None
    port = lib.free_port(("127.0.0.1",))
    t.al = lib.Airlock(t.tmp, [pgcluster.pg_resource("pg", PG_ADDR, t.pg.port, RULES)],
                       settings=['secrets "%s"' % secrets, 'ca_dir "%s"' % ca_dir,
                                 'review_socket "%s"' % os.path.join(t.tmp, "review.sock"),
                                 "console_listen 127.0.0.1:%d" % port])
    banner = t.al.start()
    t.up = True
    t.url = "http://127.0.0.1:%d/" % port
    check("console: %s" % t.url in banner, "banner lacks the console line: %r" % banner)
    for cg in (t.cg, t.cgx):
        if cg:
            r = t.al.ctl("pin", cg.rel)
            check(r.returncode == 0, "pin %s: %s" % (cg.rel, r.stderr.strip()))
    for name, (uid, groups, admin, pw) in REVIEWERS.items():
        r = subprocess.run([lib.AIRLOCKCTL, "-s", t.al.sock, "user", "add", name, "--uid", str(uid),
                            "--groups", groups, "--password-stdin"] + (["--admin"] if admin else []),
                           input=pw + "\n", capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "user add %s: %s" % (name, r.stderr.strip()))
    ud = os.path.join(t.tmp, "chromium-profile")
    os.mkdir(ud, 0o700)
    t.br = Browser(ud)
    t.br.open_page()
    note("console %s, cgroup %s, chromium pid %d, tmp %s" % (t.url, t.cg.rel, t.br.p.pid, t.tmp))


CASES = [
    ("the API refuses unauthenticated calls (401); the page carries CSP, nosniff, no-referrer",
     case_unauthenticated),
    ("login in Chromium: wrong password refused; session cookie HttpOnly, SameSite=Strict; live feed open",
     case_login),
    ("a psql statement held by policy appears in the open queue without a reload (SSE); screenshot",
     case_live_queue),
    ("approve with a reason in the browser -> psql completes, the approval and reason are recorded",
     case_approve),
    ("deny by keyboard (j/k, d) with a reason -> psql shows the reason", case_deny),
    ("XSS payloads in SQL text, identifiers and cgroup paths (img onerror, </script>, U+202E) show as "
     "text and run nothing", case_xss),
    ("POSTs without the CSRF token are refused (403)", case_csrf),
    ("API token (airlockctl console token): pending, request, deny, audit, session, grants",
     case_token_api),
    ("/metrics in Prometheus text format", case_metrics),
    ("session view lists the statements and replays them", case_session_view),
    ("a long session comes a page at a time (API next, Load more in Chromium)", case_session_pages),
    ("an agent in a pinned cgroup cannot reach the console (steer_loop)", case_agent_refused),
    ("logout ends the session", case_logout),
    ("login rate limit: 5 failures a minute, then 429", case_rate_limit),
    ("searches over %d statements run beside the proxies (psql and airlockctl answered while they "
     "read; a stop ends them); a long session's view; policy test reads the store itself" % FILL_ROWS,
     case_long_read),
    ("airlockd still up, no sanitizer lines", case_still_up),
]


def main():
    res = lib.Results()
    if os.geteuid() != 0:
        res.not_ok("console: test_console", "needs root (loads BPF, creates cgroups, runs postgres)")
        return 1
    missing = [b for b in (lib.AIRLOCKD, lib.AIRLOCKCTL, SETPRIV, CHROMIUM) if not os.access(b, os.X_OK)]
    missing += pgcluster.missing_tools()
    if missing:
        res.not_ok("console: test_console", "missing %s (make all; scripts/deps.sh)" % missing)
        return 1

    def close_browser():
        if T.br is not None:
            T.br.close()
    return lib.run_suite(res, setup, CASES, lambda: T.al,
                         lambda: [T.cg and T.cg.path, T.cgx and T.cgx.path, T.al and T.al.pin_root,
                                  T.pg and T.pg.dir, T.tmp],
                         prefix="console: ", before_stop=close_browser)


if __name__ == "__main__":
    sys.exit(main())
