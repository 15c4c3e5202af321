#!/usr/bin/python3
"""Agents in network namespaces and the backend guard: XDP on veths, nftables TPROXY into airlockd.

Run as root: /usr/bin/python3 tests/integration/test_netns.py
Prints `ok - netns: NAME` / `not ok - netns: NAME: why` per case and exits 1 if any failed.

Topology (every name carries this run's pid and a random suffix):

  agent netns  airlock-t-<pid>-a   veth alk<pid>a  10.213.A.2/29, fdXX::2/64
                                        |
  root netns (airlockd, test servers)  veth alk<pid>h  10.213.A.1/29 (resolver), .3, fdXX::1/64
                                        veth alk<pid>g  10.213.B.1/29 (appliance), .3 (not),
                                                        fdXX:2::1/64 (appliance), ::3 (not)
                                        |
  backend netns airlock-t-<pid>-b  veth alk<pid>b  10.213.B.2/29, fdXX:2::2/64 (a second
                                                   airlockd guards it)

  second agent netns airlock-t-<pid>-c  veth alk<pid>c  10.213.C.2/29, to the root netns'
                                                        alk<pid>k  10.213.C.1/29 (pinned in one
                                                        case: grants are per interface)

The agent's interface alk<pid>h is pinned; the backend's alk<pid>b is guarded by an airlockd
that runs in the backend namespace (as it would on a backend host).

Safety: XDP only on the veths this run creates; nftables only in table inet
airlock_t_<pid>_<rand>; policy routing only with this run's random fwmark and table
number; traffic only to addresses assigned here (10.213.0.0/16 blocks checked to be
unused, two /64s of a random ULA /48) and loopback; IPv4 forwarding only between this run's
two root-side veths (their per-device switches, for one case; ip_forward is left alone);
everything (namespaces, veths, table, rules, routes, pins, processes by pid, temp dirs) is
removed on any exit.
"""

import ipaddress
import json
import os
import re
import random
import secrets
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import check, note, wait_for  # noqa: E402

IP = "/usr/sbin/ip"
NSENTER = "/usr/bin/nsenter"
CURL = "/usr/bin/curl"
PID = os.getpid()
SUFFIX = secrets.token_hex(2)
NS_A = "airlock-t-%d-a" % PID
NS_B = "airlock-t-%d-b" % PID
IF_H = "alk%dh" % PID        # root side of the agent's link (pinned)
IF_A = "alk%da" % PID        # agent side
IF_G = "alk%dg" % PID        # root side of the backend's link
IF_B = "alk%db" % PID        # backend side (guarded)
IF_X = "alk%dx" % PID        # a link that vanishes while pinned (a container stopping)
IF_Y = "alk%dy" % PID
NS_C = "airlock-t-%d-c" % PID
IF_K = "alk%dk" % PID        # root side of the second agent's link (pinned in case_iface_grants)
IF_C = "alk%dc" % PID        # the second agent's side
OPENSSL = "/usr/bin/openssl"
GRANTS_HOST = "grants.test"  # the https resource both agents reach (an upstream on .1 of each link)
REVIEWER = ("netrev", 47219)
NFT_TABLE = "airlock_t_%d_%s" % (PID, SUFFIX)

# What the agent runs inside its namespace: small probes that print one JSON line.
AGENT_PROBE = r'''
import json, os, socket, struct, sys, time
cmd = sys.argv[1]

def out(**kw):
    print(json.dumps(kw), flush=True)

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff

if cmd == "udp":                        # udp HOST PORT N: send N datagrams
    host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(n):
        s.sendto(b"probe-%d" % i, (host, port))
    out(sent=n)
elif cmd == "dns":                      # dns HOST: one query to port 53, wait for an answer
    host = sys.argv[2]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.5)
    q = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\x07example\x03com\x00\x00\x01\x00\x01"
    s.sendto(q, (host, 53))
    try:
        data, peer = s.recvfrom(2048)
        out(answered=True, id=struct.unpack("!H", data[:2])[0])
    except socket.timeout:
        out(answered=False)
elif cmd == "ping":                     # ping HOST: one ICMP echo over a raw socket
    host = sys.argv[2]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xffff
    body = b"airlock-ping"
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    pkt = struct.pack("!BBHHH", 8, 0, csum(hdr + body), ident, 1) + body
    s.sendto(pkt, (host, 0))
    end = time.monotonic() + 1.5
    got = False
    while time.monotonic() < end:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            break
        ihl = (data[0] & 0x0f) * 4
        t, code, _, rid, seq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
        if t == 0 and rid == ident and peer[0] == host:
            got = True
            break
    out(reply=got)
elif cmd == "tcp":                      # tcp HOST PORT: connect, report how it went
    host, port = sys.argv[2], int(sys.argv[3])
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2.0)
    t0 = time.monotonic()
    try:
        s.connect((host, port))
        out(result="connected", secs=time.monotonic() - t0)
    except ConnectionRefusedError:
        out(result="refused", secs=time.monotonic() - t0)
    except socket.timeout:
        out(result="timeout", secs=time.monotonic() - t0)
    except OSError as e:
        out(result="error", errno=e.errno, secs=time.monotonic() - t0)
elif cmd == "hold":                     # hold HOST PORT: one connection, held open across a change
    # Sends b"before\n" and reports how the echo went (and its local port); then waits for a
    # line on stdin, sends b"after\n" on the same connection and reports that: "echoed",
    # "reset" (ECONNRESET/EPIPE), "eof, reset" (an EOF, then a reset on sending again),
    # "eof", "short", "timeout" or "error N".
    host, port = sys.argv[2], int(sys.argv[3])
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3.0)

    def exchange(data):
        try:
            s.sendall(data)
            got = b""
            while len(got) < len(data):
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            if got == data:
                return "echoed"
            if got:
                return "short"
            time.sleep(0.3)
            try:
                s.sendall(data)
                s.recv(4096)
            except (ConnectionResetError, BrokenPipeError):
                return "eof, reset"
            except OSError:
                pass
            return "eof"
        except (ConnectionResetError, BrokenPipeError):
            return "reset"
        except socket.timeout:
            return "timeout"
        except OSError as e:
            return "error %d" % e.errno
    try:
        s.connect((host, port))
    except OSError as e:
        out(result="connect: %s" % e)
        sys.exit(0)
    out(result=exchange(b"before\n"), port=s.getsockname()[1])
    sys.stdin.readline()
    out(result=exchange(b"after\n"))
'''

# A TCP echo server that reports, one JSON line each, every connection it accepts and
# every chunk it receives (then echoes): {"peer": [addr, port], "data": "..."}.
RECORDER = r'''
import json, socket, sys, threading
host, port = sys.argv[1], int(sys.argv[2])
ls = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, port))
ls.listen(16)
lock = threading.Lock()

def say(**kw):
    with lock:
        print(json.dumps(kw), flush=True)

def serve(c, peer):
    while True:
        try:
            data = c.recv(65536)
        except OSError as e:
            say(peer=peer, end="error %d" % e.errno)
            break
        if not data:
            say(peer=peer, end="eof")
            break
        say(peer=peer, data=data.decode("latin-1"))
        try:
            c.sendall(data)
        except OSError:
            pass
    c.close()

say(ready=True)
while True:
    c, peer = ls.accept()
    peer = list(peer[:2])
    say(peer=peer, accepted=True)
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
'''


class T:
    tmp = None
    al = None           # airlockd on the host (root netns)
    guard_al = None     # airlockd in the backend namespace
    a4 = b4 = c4 = ""   # 10.213.x.y/29 prefixes: "10.213.7.8" style bases
    ula = ""            # fdxx:xxxx:xxxx:1:: style prefix (agent link)
    ula_b = ""          # fdxx:xxxx:xxxx:2:: (backend link), same /48
    mark = table = 0
    http = http6 = None
    http_port = 0
    backend_port = guard_port = guard_port2 = 0
    udp_got = []
    dns_got = []
    agent_script = ""
    https_port = 0      # the grants.test upstream (https_upstream.py) on a4.1 and c4.1
    test_ca = uplog = rsock = airlock_ca = None


def sh_quiet(*argv):
    """For cleanups: runs argv, ignores failure."""
    subprocess.run(list(argv), capture_output=True, timeout=20)


def sh(*argv, check_rc=True, timeout=20):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
    return r


def in_ns(ns, argv, timeout=20):
    return subprocess.run([IP, "netns", "exec", ns] + list(argv), capture_output=True, text=True,
                          timeout=timeout, env=lib.CLIENT_ENV)


def agent(*args, timeout=20):
    r = in_ns(NS_A, [lib.PY, T.agent_script] + [str(a) for a in args], timeout=timeout)
    check(r.returncode == 0, "agent probe %s exited %d: %s" % (args, r.returncode, r.stderr.strip()[-300:]))
    return json.loads(r.stdout.strip().splitlines()[-1])


def agent_curl(url, max_time=5):
    """curl from the agent namespace; returns (rc, body, local_port, stderr)."""
    bodyf = os.path.join(T.tmp, "body-%s" % secrets.token_hex(4))
    r = in_ns(NS_A, [CURL, "-sS", "-g", "--noproxy", "*", "--max-time", str(max_time), "-o", bodyf,
                     "-w", "%{local_port}", url], timeout=max_time + 10)
    body = b""
    if os.path.exists(bodyf):
        with open(bodyf, "rb") as f:
            body = f.read()
        os.unlink(bodyf)
    port = int(r.stdout.strip()) if r.stdout.strip().isdigit() else 0
    return r.returncode, body, port, r.stderr.strip()


def kernel_counter(al, name):
    return al.status().get("kernel", {}).get(name, 0)


# ---------------------------------------------------------------- nftables, read and removed without nft

NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETTABLE, NFT_MSG_DELTABLE = 1, 2
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFPROTO_INET = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2


def _nfmsg(mtype, flags, seq, family, res_id, attrs=b""):
    body = struct.pack("=BBH", family, 0, socket.htons(res_id)) + attrs
    return struct.pack("=IHHII", 16 + len(body), mtype, flags, seq, 0) + body


def _attr_str(atype, s):
    data = s.encode() + b"\0"
    a = struct.pack("=HH", 4 + len(data), atype) + data
    return a + b"\0" * ((4 - len(a) % 4) % 4)


def _nft_request(msgs, expect):
    """Sends netfilter netlink messages; returns the errno of each NLMSG_ERROR reply (0 = ack)."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)   # NETLINK_NETFILTER
    s.settimeout(3)
    try:
        s.bind((0, 0))
        s.send(b"".join(msgs))
        errs = []
        while len(errs) < expect:
            data = s.recv(65536)
            off = 0
            while off + 16 <= len(data):
                ln, mtype, _, _, _ = struct.unpack_from("=IHHII", data, off)
                if mtype == NLMSG_ERROR:
                    errs.append(-struct.unpack_from("=i", data, off + 16)[0])
                elif mtype != 3:            # NLMSG_DONE
                    errs.append(0)          # a GETTABLE answer: the table exists
                off += (ln + 3) & ~3
                if ln == 0:
                    break
        return errs
    finally:
        s.close()


def nft_table_exists(name):
    msg = _nfmsg((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, NLM_F_REQUEST | NLM_F_ACK, 1,
                 NFPROTO_INET, 0, _attr_str(1, name))
    errs = _nft_request([msg], 1)
    return errs[0] == 0


def nft_table_delete(name):
    """Cleanup of last resort (airlockctl down normally removes it)."""
    if not name.startswith("airlock_t_") or not nft_table_exists(name):
        return
    seq = int(time.time())
    msgs = [_nfmsg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES),
            _nfmsg((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELTABLE, NLM_F_REQUEST | NLM_F_ACK, seq + 1,
                   NFPROTO_INET, 0, _attr_str(1, name)),
            _nfmsg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq + 2, 0, NFNL_SUBSYS_NFTABLES)]
    _nft_request(msgs, 1)


# ---------------------------------------------------------------- policy routing of this run

def fwmark_rules():
    out = sh(IP, "rule", "show").stdout + sh(IP, "-6", "rule", "show").stdout
    return [l for l in out.splitlines() if "fwmark %#x lookup %d" % (T.mark, T.table) in l]


def table_routes():
    return (sh(IP, "route", "show", "table", str(T.table), check_rc=False).stdout +
            sh(IP, "-6", "route", "show", "table", str(T.table), check_rc=False).stdout).strip()


def remove_policy_routing():
    if not T.mark or not T.table:
        return
    for fam in ([], ["-6"]):
        for _ in range(8):
            if sh(IP, *fam, "rule", "del", "fwmark", "%#x" % T.mark, "table", str(T.table),
                  check_rc=False).returncode != 0:
                break
        sh(IP, *fam, "route", "flush", "table", str(T.table), check_rc=False)


# ---------------------------------------------------------------- topology

def pick_blocks():
    """Two unused 10.213.x.y/29 blocks and a ULA /64 nobody routes on this host."""
    used = sh(IP, "-4", "-o", "addr").stdout + sh(IP, "-4", "route", "show", "table", "all").stdout
    used6 = sh(IP, "-6", "-o", "addr").stdout + sh(IP, "-6", "route", "show", "table", "all").stdout
    rnd = random.Random(secrets.randbits(64))
    blocks = []
    while len(blocks) < 3:
        third = rnd.randrange(0, 256)
        if "10.213.%d." % third in used or any(b.startswith("10.213.%d." % third) for b in blocks):
            continue
        blocks.append("10.213.%d.%d" % (third, rnd.randrange(0, 32) * 8))
    while True:
        # Written as the daemon prints addresses (no leading zeros), since audit rows are compared.
        ula = "fd%02x:%x:%x:1::" % (rnd.randrange(256), rnd.randrange(65536), rnd.randrange(65536))
        if ula[:-3] not in used6:
            break
    return blocks[0], blocks[1], blocks[2], ula


def addr(base, host):
    a, b, c, d = (int(x) for x in base.split("."))
    return "%d.%d.%d.%d" % (a, b, c, d + host)


def make_topology():
    T.a4, T.b4, T.c4, T.ula = pick_blocks()
    T.ula_b = T.ula[:-3] + "2::"    # pick_blocks checked the whole /48 is unused
    # Cleanups first, so a failure halfway leaves nothing. Deleting a namespace
    # deletes its veth end and with it the peer; the link deletes are belt and braces.
    for ns in (NS_A, NS_B, NS_C):
        lib.on_cleanup(sh_quiet, IP, "netns", "del", ns)
    for ifname in (IF_H, IF_G, IF_X, IF_K):
        lib.on_cleanup(sh_quiet, IP, "link", "del", ifname)
    for ns in (NS_A, NS_B, NS_C):
        sh(IP, "netns", "add", ns)
    sh(IP, "link", "add", IF_H, "type", "veth", "peer", "name", IF_A, "netns", NS_A)
    sh(IP, "link", "add", IF_G, "type", "veth", "peer", "name", IF_B, "netns", NS_B)
    sh(IP, "link", "add", IF_K, "type", "veth", "peer", "name", IF_C, "netns", NS_C)
    # root side
    sh(IP, "addr", "add", addr(T.a4, 1) + "/29", "dev", IF_H)
    sh(IP, "addr", "add", addr(T.a4, 3) + "/29", "dev", IF_H)
    sh(IP, "addr", "add", T.ula + "1/64", "dev", IF_H, "nodad")
    sh(IP, "addr", "add", addr(T.b4, 1) + "/29", "dev", IF_G)
    sh(IP, "addr", "add", addr(T.b4, 3) + "/29", "dev", IF_G)
    sh(IP, "addr", "add", T.ula_b + "1/64", "dev", IF_G, "nodad")
    sh(IP, "addr", "add", T.ula_b + "3/64", "dev", IF_G, "nodad")
    sh(IP, "link", "set", IF_H, "up")
    sh(IP, "link", "set", IF_G, "up")
    sh(IP, "addr", "add", addr(T.c4, 1) + "/29", "dev", IF_K)
    sh(IP, "link", "set", IF_K, "up")
    # agent: its link, and a route to the backend block through the host (and nothing else)
    nsa = [IP, "-n", NS_A]
    sh(*nsa, "link", "set", "lo", "up")
    sh(*nsa, "addr", "add", addr(T.a4, 2) + "/29", "dev", IF_A)
    sh(*nsa, "addr", "add", T.ula + "2/64", "dev", IF_A, "nodad")
    sh(*nsa, "link", "set", IF_A, "up")
    sh(*nsa, "route", "add", addr(T.b4, 0) + "/29", "via", addr(T.a4, 1))
    nsb = [IP, "-n", NS_B]
    sh(*nsb, "link", "set", "lo", "up")
    sh(*nsb, "addr", "add", addr(T.b4, 2) + "/29", "dev", IF_B)
    sh(*nsb, "addr", "add", T.ula_b + "2/64", "dev", IF_B, "nodad")
    sh(*nsb, "link", "set", IF_B, "up")
    nsc = [IP, "-n", NS_C]
    sh(*nsc, "link", "set", "lo", "up")
    sh(*nsc, "addr", "add", addr(T.c4, 2) + "/29", "dev", IF_C)
    sh(*nsc, "link", "set", IF_C, "up")
    note("agent %s/29 %s/64 on %s<->%s, backend %s/29 %s/64 on %s<->%s" % (
        T.a4, T.ula, IF_H, IF_A, T.b4, T.ula_b, IF_G, IF_B))


def start_servers():
    # HTTP on the host side of the agent's link (IPv4 and IPv6), counting who connects.
    T.http_port = lib.free_port((addr(T.a4, 1), T.ula + "1"))
    T.http = lib.start_http_server(addr(T.a4, 1), T.http_port, b"host-side hello\n")
    T.http6 = lib.start_http_server(T.ula + "1", T.http_port, b"host-side hello v6\n")
    # UDP sink on a port nothing allows, and a DNS responder on the resolver (.1) and on .3.
    T.udp_port = lib.free_port((addr(T.a4, 1),))

    def udp_loop(sock, got, answer):
        while True:
            try:
                data, peer = sock.recvfrom(4096)
            except OSError:
                return
            got.append((peer, data))
            if answer:
                try:
                    sock.sendto(data[:2] + b"\x81\x80" + data[4:], peer)
                except OSError:
                    pass
    for host, port, got, answer in ((addr(T.a4, 1), T.udp_port, T.udp_got, False),
                                    (addr(T.a4, 1), 53, T.dns_got, True),
                                    (addr(T.a4, 3), 53, T.dns_got, True)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, port))
        lib.on_cleanup(s.close)
        threading.Thread(target=udp_loop, args=(s, got, answer), daemon=True).start()
    # In the backend: an HTTP server (not guarded) and an echo server on the guarded port;
    # echo servers on the port a second `guard` protects instead, and on both over IPv6.
    T.backend_port = 18000 + random.randrange(0, 20000)
    T.guard_port = T.backend_port + 1
    T.guard_port2 = T.backend_port + 2
    www = os.path.join(T.tmp, "www")
    os.mkdir(www)
    with open(os.path.join(www, "hello.txt"), "w") as f:
        f.write("backend hello\n")
    p = subprocess.Popen([IP, "netns", "exec", NS_B, lib.PY, "-m", "http.server", "--bind",
                          addr(T.b4, 2), str(T.backend_port)], cwd=www,
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(T.tmp, "backend-http.log"), "w"))
    lib.on_cleanup(lib.stop_process, p)
    for host, port in ((addr(T.b4, 2), T.guard_port), (addr(T.b4, 2), T.guard_port2),
                       (T.ula_b + "2", T.guard_port), (T.ula_b + "2", T.backend_port)):
        e = subprocess.Popen([IP, "netns", "exec", NS_B, lib.PY, "-c", lib.ECHO_SERVER, host, str(port)],
                             stdout=subprocess.PIPE, text=True)
        lib.on_cleanup(lib.stop_process, e)
        check(e.stdout.readline().strip() == "ready", "backend echo server on %s %d did not start" % (host, port))

    def backend_up():
        r = tcp_from(addr(T.b4, 1), addr(T.b4, 2), T.backend_port, 0.5)
        return r == "connected"
    check(wait_for(backend_up, 10, 0.1), "backend HTTP server did not come up")
    start_https_upstream()


def start_https_upstream():
    """The upstream of resource grants (https_upstream.py, a test CA's certificate for GRANTS_HOST)
    on the host side of both agents' links."""
    d = T.tmp
    T.test_ca = os.path.join(d, "test-ca.pem")
    ca_key, key, csr, crt, ext = (os.path.join(d, n) for n in ("test-ca.key", "up.key", "up.csr", "up.pem", "up.ext"))
    sh(OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", ca_key, "-out", T.test_ca, "-days", "2", "-subj", "/CN=airlock netns test CA",
       "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    sh(OPENSSL, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
       "-out", csr, "-subj", "/CN=%s" % GRANTS_HOST)
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s,IP:%s,IP:%s\nextendedKeyUsage=serverAuth\n"
                % (GRANTS_HOST, addr(T.a4, 1), addr(T.c4, 1)))
    sh(OPENSSL, "x509", "-req", "-in", csr, "-CA", T.test_ca, "-CAkey", ca_key, "-CAcreateserial",
       "-out", crt, "-days", "2", "-extfile", ext)
    T.https_port = lib.free_port((addr(T.a4, 1), addr(T.c4, 1)))
    T.uplog = os.path.join(d, "upstream.log")
    up = subprocess.Popen([lib.PY, os.path.join(lib.REPO, "tests", "integration", "https_upstream.py"), crt, key,
                           T.uplog] + ["%s:%d" % (addr(h, 1), T.https_port) for h in (T.a4, T.c4)],
                          stdout=subprocess.PIPE, text=True)
    lib.on_cleanup(lib.stop_process, up)
    check(up.stdout.readline().strip() == "ready", "the https upstream did not start")


def grants_resource():
    """An https resource on both agents' links whose DELETEs are reviewed, grants allowed."""
    return """resource "grants" {
    address %s %s
    port %d
    protocol https
    host %s
    upstream_ca "%s"
    rule review method DELETE timeout 60s max_grant 1h
}""" % (addr(T.a4, 1), addr(T.c4, 1), T.https_port, GRANTS_HOST, T.test_ca)


def tcp_from(src, dst, port, timeout=1.5, send=None):
    """A TCP connection from the root netns bound to src: connected/refused/timeout (+ echo check)."""
    s = socket.socket(socket.AF_INET6 if ":" in src else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((src, 0))
        s.connect((dst, port))
        if send:
            s.sendall(send)
            got = b""
            while len(got) < len(send):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            return "echoed" if got == send else "short"
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return "error %d" % e.errno
    finally:
        s.close()


def _csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s >> 16) + (s & 0xffff)
    return ~s & 0xffff


def _mac(text):
    return bytes(int(x, 16) for x in text.split(":"))


def ip6_ext_max():
    """How many IPv6 extension headers the XDP parser walks (AL_IP6_EXT_MAX in bpf/lib/xdp.h)."""
    with open(os.path.join(lib.REPO, "bpf", "lib", "xdp.h")) as f:
        m = re.search(r"^#define\s+AL_IP6_EXT_MAX\s+(\d+)", f.read(), re.M)
    check(m, "no AL_IP6_EXT_MAX in bpf/lib/xdp.h")
    return int(m.group(1))


def syn6(src, dport, nexts=0, timeout=1.5):
    """One TCP SYN over IPv6 from src (an address of IF_G) to the backend's ula_b::2, sent as a
    raw frame on IF_G behind `nexts` destination-options headers (8 bytes each, a PadN): the
    kernel accepts such a chain (at least 8 long). Returns "synack" if the backend answered
    with a SYN-ACK for it within timeout, else "nothing"."""
    dst = T.ula_b + "2"
    s6, d6 = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    sport, seq = random.randrange(40000, 60000), random.getrandbits(32)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    c = _csum(s6 + d6 + struct.pack("!IxxxB", len(tcp), socket.IPPROTO_TCP) + tcp)
    payload, nh = tcp[:16] + struct.pack("!H", c) + tcp[18:], socket.IPPROTO_TCP
    for _ in range(nexts):
        payload = struct.pack("!BBBB4x", nh, 0, 1, 4) + payload     # next, len 0, PadN of 4
        nh = 60                                                       # IPPROTO_DSTOPTS
    ip6 = struct.pack("!IHBB", 6 << 28, len(payload), nh, 64) + s6 + d6
    with open("/sys/class/net/%s/address" % IF_G) as f:
        g_mac = f.read().strip()
    b_mac = json.loads(sh(IP, "-n", NS_B, "-j", "link", "show", "dev", IF_B).stdout)[0]["address"]
    frame = _mac(b_mac) + _mac(g_mac) + struct.pack("!H", 0x86dd) + ip6 + payload
    r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86dd))
    try:
        r.bind((IF_G, 0x86dd))
        r.settimeout(0.1)
        r.send(frame)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                data, peer = r.recvfrom(4096)
            except socket.timeout:
                continue
            ip = data[14:]
            if peer[2] == socket.PACKET_OUTGOING or len(ip) < 40 + 14:
                continue
            if ip[6] != socket.IPPROTO_TCP or ip[8:24] != d6 or ip[24:40] != s6:
                continue
            sp, dp, _, ack, _, flags = struct.unpack("!HHIIBB", ip[40:54])
            if (sp, dp) == (dport, sport) and flags & 0x12 == 0x12 and ack == (seq + 1) & 0xffffffff:
                return "synack"
        return "nothing"
    finally:
        r.close()


class NetnsAirlock(lib.Airlock):
    """airlockd run inside a network namespace (nsenter --net: bpffs and /sys stay the host's)."""

    def __init__(self, tmpdir, netns, settings=()):
        wrapper = os.path.join(tmpdir, "airlockd-in-" + netns)
        with open(wrapper, "w") as f:
            f.write('#!/bin/sh\nexec %s --net=/run/netns/%s %s %s "$@"\n' %
                    (NSENTER, netns, " ".join(shlex.quote(w) for w in lib.DAEMON_WRAP), lib.AIRLOCKD))
        os.chmod(wrapper, 0o755)
        super().__init__(tmpdir, [], settings=settings, binaries=(wrapper, lib.AIRLOCKCTL))
        self.wrap = []  # inside the namespace: nsenter needs what the wrap may take away
        self.pin_root = self.pin_root + "-" + netns[-1]
        self.write_conf([], settings)


class Recorder:
    """A RECORDER process on host:port (in namespace ns, else the root one) and what it reported."""

    def __init__(self, host, port, ns=None):
        argv = [lib.PY, "-c", RECORDER, host, str(port)]
        self.p = subprocess.Popen(([IP, "netns", "exec", ns] if ns else []) + argv, stdout=subprocess.PIPE,
                                  text=True)
        self.cleanup = lib.on_cleanup(lib.stop_process, self.p)
        self.port = port
        self.events = []
        line = self.p.stdout.readline()
        check(line.strip() == '{"ready": true}', "recorder on %s %d did not start: %r" % (host, port, line))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            e = json.loads(line)
            e["peer"] = (str(ipaddress.ip_address(e["peer"][0])), e["peer"][1])
            self.events.append(e)

    def peers(self):
        """Who connected, in order: (address, port) pairs."""
        return [e["peer"] for e in list(self.events) if e.get("accepted")]

    def received(self, peer=None):
        """The bytes received from peer (address, port), or from everyone."""
        peer = peer and (str(ipaddress.ip_address(peer[0])), peer[1])
        return "".join(e["data"] for e in list(self.events)
                       if "data" in e and (peer is None or e["peer"] == peer)).encode("latin-1")

    def wait_received(self, want, peer=None, timeout=3.0):
        """received(peer) once it is want (its report may trail the echo), or when timeout passes."""
        wait_for(lambda: self.received(peer) == want, timeout)
        return self.received(peer)

    def stop(self):
        lib.run_cleanup(self.cleanup)


class Holder:
    """The agent holding one TCP connection to host:port open (AGENT_PROBE hold): it has sent
    b"before\n" when this returns (self.first: how that went, self.port: its local port)."""

    def __init__(self, host, port):
        self.p = subprocess.Popen([IP, "netns", "exec", NS_A, lib.PY, T.agent_script, "hold", host, str(port)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=lib.CLIENT_ENV)
        self.cleanup = lib.on_cleanup(lib.stop_process, self.p)
        self.first = self._report()
        self.port = self.first.get("port", 0)

    def _report(self):
        line = self.p.stdout.readline()
        check(line, "agent hold probe exited %s without a report" % self.p.poll())
        return json.loads(line)

    def again(self):
        """Sends b"after\n" on the held connection; returns how it went (AGENT_PROBE hold)."""
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        r = self._report()["result"]
        lib.run_cleanup(self.cleanup)
        return r


def forward_between_links(on):
    """IPv4 forwarding between the agent's link and the backend's and nowhere else: the
    per-device switch of this run's two root-side veths (the host-wide ip_forward is left
    alone), and the backend's route back to the agent's block."""
    for ifname in (IF_H, IF_G):
        with open("/proc/sys/net/ipv4/conf/%s/forwarding" % ifname, "w") as f:
            f.write("1" if on else "0")
    sh(IP, "-n", NS_B, "route", "replace" if on else "del", addr(T.a4, 0) + "/29", "via", addr(T.b4, 1),
       check_rc=on)


# ---------------------------------------------------------------- cases

def case_baseline():
    """Before pinning, the agent reaches the host directly: the checks below can see a bypass."""
    rc, body, port, err = agent_curl("http://%s:%d/" % (addr(T.a4, 1), T.http_port))
    check(rc == 0 and body == b"host-side hello\n", "direct curl: rc %d %s" % (rc, err))
    check(T.http.peers and T.http.peers[-1][0] == addr(T.a4, 2),
          "server saw %r, want the agent %s" % (T.http.peers[-1:], addr(T.a4, 2)))
    n = len(T.udp_got)
    agent("udp", addr(T.a4, 1), T.udp_port, 3)
    check(wait_for(lambda: len(T.udp_got) >= n + 3, 3), "UDP did not arrive before pinning")
    check(agent("ping", addr(T.a4, 1))["reply"], "no ping reply before pinning")


def case_pin():
    r = T.al.ctl("pin", "--iface", IF_H)
    check(r.returncode == 0, "pin --iface exited %d: %s" % (r.returncode, r.stderr.strip()))
    st = T.al.status()
    ifs = [i for i in st.get("interfaces", []) if i["iface"] == IF_H]
    check(ifs and ifs[0]["role"] == "agent", "status lists no pinned %s: %s" % (IF_H, st.get("interfaces")))
    check(ifs[0]["mode"] == "native", "XDP on %s is %s, want native" % (IF_H, ifs[0]["mode"]))
    check(st.get("tproxy_listening"), "no TPROXY listener after pin")
    check(nft_table_exists(NFT_TABLE), "nftables table inet %s missing" % NFT_TABLE)
    check(fwmark_rules(), "no ip rule for fwmark %#x" % T.mark)
    check("local default dev lo" in table_routes(), "no local default route in table %d" % T.table)
    r = T.al.ctl("pin", "--iface", IF_H)
    check(r.returncode != 0 and "already" in r.stderr, "pinning twice: %s" % r.stderr.strip())
    r = T.al.ctl("pin", "--iface", "lo")
    check(r.returncode != 0 and "loopback" in r.stderr, "pinning lo: %s" % r.stderr.strip())


def audit_row(mark, agent_port, timeout=5.0):
    def find():
        rows = [r for r in T.al.connections() if r["id"] > mark and r["agent_port"] == agent_port]
        return rows if rows and rows[0].get("closed_us") is not None else None
    rows = wait_for(find, timeout, 0.1)
    check(rows, "no closed audit row for agent port %d" % agent_port)
    return rows[0]


def through_airlock(url, body, dst, dst_port, agent_addr, server=None):
    mark = T.al.max_id()
    npeers = len(server.peers) if server else 0
    rc, got, port, err = agent_curl(url)
    check(rc == 0, "curl %s from the agent exited %d: %s" % (url, rc, err))
    check(got == body, "curl %s: body %r" % (url, got[:80]))
    row = audit_row(mark, port)
    for k, want in (("iface", IF_H), ("dst_addr", dst), ("dst_port", dst_port), ("agent_addr", agent_addr),
                    ("reason", "closed"), ("cgroup_id", None), ("protocol", "tcp")):
        check(row.get(k) == want, "audit row %s: %s is %r, want %r" % (row["id"], k, row.get(k), want))
    check(row["bytes_down"] > len(body), "audit row %s: bytes_down %r" % (row["id"], row["bytes_down"]))
    if server:
        peers = server.peers[npeers:]
        check(peers and all(p[0] != agent_addr for p in peers),
              "server saw %r: the agent reached it directly" % peers)


def case_tcp_v4():
    through_airlock("http://%s:%d/" % (addr(T.a4, 1), T.http_port), b"host-side hello\n",
                    addr(T.a4, 1), T.http_port, addr(T.a4, 2), T.http)


def case_tcp_v6():
    through_airlock("http://[%s1]:%d/" % (T.ula, T.http_port), b"host-side hello v6\n",
                    T.ula + "1", T.http_port, T.ula + "2", T.http6)


def case_tcp_remote():
    """A destination beyond the host (the backend): the host does not forward; only Airlock reaches it."""
    through_airlock("http://%s:%d/hello.txt" % (addr(T.b4, 2), T.backend_port), b"backend hello\n",
                    addr(T.b4, 2), T.backend_port, addr(T.a4, 2))


def rv(*args):
    """airlockctl over the review socket as the reviewer (its own uid)."""
    return lib.reviewer_ctl(T.rsock, REVIEWER[1], *args)


def grants_delete(ns, ip):
    """From the agent in namespace ns: curl -X DELETE https://grants.test/items/7 (at ip), in the
    background; its stdout ends with the HTTP status."""
    p = subprocess.Popen([IP, "netns", "exec", ns, CURL, "-sS", "--noproxy", "*", "--max-time", "40",
                          "--cacert", T.airlock_ca, "--resolve", "%s:%d:%s" % (GRANTS_HOST, T.https_port, ip),
                          "-X", "DELETE", "-w", "\n%{http_code}", "https://%s:%d/items/7" % (GRANTS_HOST, T.https_port)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=lib.CLIENT_ENV)
    lib.on_cleanup(lib.stop_process, p)
    return p


def curl_status(p, timeout=30):
    out, err = p.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    return (lines[-1] if lines else "none (%s)" % err.strip()[-200:]), out


def upstream_deletes():
    try:
        with open(T.uplog) as f:
            return [json.loads(l) for l in f if l.strip() and json.loads(l).get("method") == "DELETE"]
    except FileNotFoundError:
        return []


def wait_pending(after, iface, timeout=15):
    def get():
        return [r for r in T.al.db_rows("id > ? AND state = 'pending'", (after,), table="requests")
                if r["iface"] == iface]
    rows = wait_for(get, timeout)
    check(rows and len(rows) == 1, "no (or not one) pending request from %s: %r" % (iface, rows))
    return rows[0]


def case_iface_grants():
    """Two agents behind two pinned interfaces: A's DELETE is held and approved with a 10 minute
    grant; A's same DELETE then runs at once, while B's is held (pending, named by its interface)
    and denied. Interface agents have no cgroup or uid: a grant is its interface's alone."""
    r = T.al.ctl("pin", "--iface", IF_K)
    check(r.returncode == 0, "pin --iface %s: %s" % (IF_K, r.stderr.strip()))
    unpin = lib.on_cleanup(T.al.ctl, "unpin", "--iface", IF_K)
    gid = None
    try:
        r = T.al.ctl("user", "add", REVIEWER[0], "--uid", str(REVIEWER[1]))
        check(r.returncode == 0 or "exists" in r.stderr, "user add: %s" % r.stderr.strip())
        mark, n_up = T.al.max_id("requests"), len(upstream_deletes())
        a1 = grants_delete(NS_A, addr(T.a4, 1))
        row = wait_pending(mark, IF_H)
        check(row["cgroup_id"] is None and row["uid"] is None and row["pid"] is None,
              "a request from %s claims a cgroup or uid: %r" % (IF_H, row))
        check(len(upstream_deletes()) == n_up, "the held DELETE reached the upstream")
        rv("approve", row["id"], "--for", "10m", "--reason", "netns grant")
        st, out = curl_status(a1)
        check(st == "200", "A's approved DELETE: %s" % out[-300:])
        with open("/sys/class/net/%s/ifindex" % IF_H) as f:
            ifindex_h = int(f.read())
        grants = [g for g in json.loads(rv("grants").stdout) if g["request_id"] == row["id"]]
        check(len(grants) == 1 and grants[0]["agent_iface"] == IF_H and grants[0]["agent_ifindex"] == ifindex_h
              and grants[0]["agent_uid"] is None and grants[0]["cgroup_id"] == 0,
              "the grant does not name %s (index %d): %r" % (IF_H, ifindex_h, grants))
        gid = grants[0]["id"]
        # A again: the grant covers it, no review
        mark, n_up = T.al.max_id("requests"), len(upstream_deletes())
        t0 = time.monotonic()
        st, out = curl_status(grants_delete(NS_A, addr(T.a4, 1)))
        took = time.monotonic() - t0
        check(st == "200" and took < 5, "A's DELETE under its grant: %s after %.1fs" % (out[-300:], took))
        check(T.al.max_id("requests") == mark, "A's DELETE under its grant made a request")
        check(len(upstream_deletes()) == n_up + 1, "A's DELETE under its grant did not reach the upstream")
        # B, the same DELETE on the same resource: held, listed as pending from its interface
        n_up = len(upstream_deletes())
        b1 = grants_delete(NS_C, addr(T.c4, 1))
        row_b = wait_pending(mark, IF_K)
        time.sleep(0.5)
        check(b1.poll() is None, "B's DELETE ended while held (%s)" % b1.returncode)
        check(len(upstream_deletes()) == n_up, "B's DELETE reached the upstream under A's grant")
        pend = rv("pending").stdout
        line = [l for l in pend.splitlines() if l.split()[:1] == [str(row_b["id"])]]
        check(line and "iface %s" % IF_K in line[0], "airlockctl pending does not show B's interface: %r" % pend)
        shown = rv("show", row_b["id"]).stdout
        check("agent: interface %s" % IF_K in shown, "airlockctl show: %r" % shown[:400])
        rv("deny", row_b["id"], "--reason", "not B's grant")
        st, out = curl_status(b1)
        check(st == "403" and "not B's grant" in out, "B's denied DELETE: %s" % out[-300:])
        check(len(upstream_deletes()) == n_up, "B's denied DELETE reached the upstream")
    finally:
        if gid:
            rv("revoke", gid)
        lib.run_cleanup(unpin)


def case_udp_dropped():
    before, n = kernel_counter(T.al, "xdp_drop"), len(T.udp_got)
    agent("udp", addr(T.a4, 1), T.udp_port, 5)
    check(wait_for(lambda: kernel_counter(T.al, "xdp_drop") >= before + 5, 3),
          "xdp_drop went %d -> %d, want +5" % (before, kernel_counter(T.al, "xdp_drop")))
    time.sleep(0.3)
    check(len(T.udp_got) == n, "%d datagrams arrived" % (len(T.udp_got) - n))


def case_icmp_dropped():
    before = kernel_counter(T.al, "xdp_drop")
    check(not agent("ping", addr(T.a4, 1))["reply"], "ping answered")
    check(kernel_counter(T.al, "xdp_drop") > before, "xdp_drop did not rise")


def case_dns():
    r = agent("dns", addr(T.a4, 1))
    check(r["answered"] and r["id"] == 0x4242, "no DNS answer from the resolver: %r" % r)
    before, n = kernel_counter(T.al, "xdp_drop"), len(T.dns_got)
    r = agent("dns", addr(T.a4, 3))
    check(not r["answered"], "DNS to %s (not a resolver) was answered" % addr(T.a4, 3))
    check(len(T.dns_got) == n, "DNS to a non-resolver arrived")
    check(kernel_counter(T.al, "xdp_drop") > before, "xdp_drop did not rise for DNS to a non-resolver")


def case_fail_closed():
    """airlockd killed: the pinned interface stays fenced. New TCP is reset and reaches no server,
    a connection Airlock was relaying ends and its later bytes reach nothing, UDP and ICMP are
    dropped."""
    rec = Recorder(addr(T.a4, 1), lib.free_port((addr(T.a4, 1),)))
    try:
        fail_closed(rec)
    finally:
        rec.stop()
        if T.al.running():          # failed before the kill: case_readopt starts it again
            T.al.stop(signal.SIGKILL)


def fail_closed(rec):
    held = Holder(addr(T.a4, 1), rec.port)
    check(held.first["result"] == "echoed", "a connection through Airlock before the kill: %r" % held.first)
    check(rec.wait_received(b"before\n") == b"before\n" and all(p[0] != addr(T.a4, 2) for p in rec.peers()),
          "the server got %r from %r, want b'before\\n' through Airlock" % (rec.received(), rec.peers()))
    npeers = len(T.http.peers)
    T.al.stop(signal.SIGKILL)
    r = held.again()
    check(r in ("reset", "eof, reset"),
          "the connection Airlock relayed, written to after the kill: %s, want it reset (or ended, then reset)" % r)
    r = agent("tcp", addr(T.a4, 1), T.http_port)
    check(r["result"] == "refused", "with airlockd dead the agent's connect was %r, want refused" % r)
    rc, _, _, err = agent_curl("http://%s:%d/" % (addr(T.a4, 1), T.http_port), max_time=3)
    check(rc == 7, "curl with airlockd dead exited %d (%s), want 7 (refused)" % (rc, err))
    check(len(T.http.peers) == npeers, "the server saw %r while airlockd was dead" % T.http.peers[npeers:])
    r = agent("tcp", addr(T.b4, 2), T.backend_port)
    check(r["result"] == "refused", "remote destination with airlockd dead: %r" % r)
    n = len(T.udp_got)
    agent("udp", addr(T.a4, 1), T.udp_port, 3)
    time.sleep(0.3)
    check(len(T.udp_got) == n, "UDP arrived while airlockd was dead")
    check(not agent("ping", addr(T.a4, 1))["reply"], "ping answered while airlockd was dead")
    check(rec.received() == b"before\n" and len(rec.peers()) == 1,
          "the server got %r from %r after the kill, want nothing more" % (rec.received(), rec.peers()))


def case_readopt():
    T.al.start()
    st = T.al.status()
    ifs = [i for i in st.get("interfaces", []) if i["iface"] == IF_H]
    check(ifs and ifs[0]["role"] == "agent", "restarted airlockd does not list %s: %s" % (IF_H, st.get("interfaces")))
    check(any("re-adopted pinned interface %s" % IF_H in l for l in T.al.log_lines()),
          "no re-adopt line in the log: %s" % T.al.log_tail(5))
    case_tcp_v4()
    case_udp_dropped()


def case_no_identity():
    """A connection the XDP program never saw (a host process dialling the TPROXY port) is
    closed and recorded as no_identity, never relayed."""
    before = T.al.status().get("tproxy_no_identity", 0)
    mark = T.al.max_id()
    # The reset may come before connect() has returned (Python's connect with a
    # timeout reads SO_ERROR after polling), during the send, or at the read.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(("127.0.0.1", T.tproxy_port))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = s.recv(100)
    except (ConnectionResetError, BrokenPipeError):
        data = b""
    finally:
        s.close()
    check(data == b"", "got %r from the TPROXY listener" % data)
    check(wait_for(lambda: T.al.status().get("tproxy_no_identity", 0) > before, 3),
          "tproxy_no_identity did not rise")
    rows = wait_for(lambda: [r for r in T.al.connections() if r["id"] > mark], 3, 0.1)
    check(rows and rows[0]["reason"] == "no_identity" and rows[0]["iface"] is None,
          "audit rows: %r" % rows)


def case_vanished():
    """A pinned link deleted under airlockd (its container stopped) is dropped from status."""
    sh(IP, "link", "add", IF_X, "type", "veth", "peer", "name", IF_Y, "netns", NS_A)
    r = T.al.ctl("pin", "--iface", IF_X)
    check(r.returncode == 0, "pin %s: %s" % (IF_X, r.stderr.strip()))
    sh(IP, "link", "del", IF_X)
    st = T.al.status()
    names = [i["iface"] for i in st.get("interfaces", [])]
    check(IF_H in names and len(names) == 1, "interfaces after %s vanished: %r" % (IF_X, names))
    check(os.listdir(os.path.join(T.al.pin_root, "iface")) == [str(socket.if_nametoindex(IF_H))],
          "iface pins: %r" % os.listdir(os.path.join(T.al.pin_root, "iface")))
    case_tcp_v4()


def iface_xdp(ifname):
    """(mode, program id) of the XDP program on ifname as bpftool net shows it; None if it has none."""
    r = subprocess.run(["/usr/sbin/bpftool", "net", "show", "dev", ifname, "--json"], capture_output=True, text=True,
                       timeout=20)
    check(r.returncode == 0, "bpftool net show dev %s: %s" % (ifname, r.stderr.strip()))
    x = [x for d in json.loads(r.stdout) for x in d.get("xdp", []) if x.get("devname") == ifname]
    return (x[0]["mode"], x[0]["id"]) if x else None


def pinned_link(path):
    """The link pinned at path (bpftool link show pinned), as a dict."""
    r = subprocess.run(["/usr/sbin/bpftool", "link", "show", "pinned", path, "--json"], capture_output=True, text=True,
                       timeout=20)
    check(r.returncode == 0, "bpftool link show pinned %s: %s" % (path, r.stderr.strip()))
    return json.loads(r.stdout)


def case_xdp_detached():
    """The pinned interface's XDP link detached behind airlockd's back (bpftool link detach) is
    attached again within seconds, native, its pin replaced: UDP is dropped again, TCP goes
    through Airlock; status and the audit log name the repair."""
    idx = socket.if_nametoindex(IF_H)
    pin = os.path.join(T.al.pin_root, "iface", str(idx), "al_xdp_agent")
    old = pinned_link(pin)      # ours: the link airlockd pinned for the test's veth
    check(old.get("type") == "xdp" and iface_xdp(IF_H) == ("driver", old["prog_id"]),
          "pinned link %r, on %s: %r" % (old, IF_H, iface_xdp(IF_H)))
    fe0 = T.al.status().get("fence") or {}
    r = subprocess.run(["/usr/sbin/bpftool", "link", "detach", "id", str(old["id"])], capture_output=True,
                       text=True, timeout=20)
    check(r.returncode == 0, "bpftool link detach id %d: %s" % (old["id"], r.stderr.strip()))

    def repaired():
        fe = T.al.status().get("fence") or {}
        return fe if fe.get("detached", 0) > fe0.get("detached", 0) else None
    fe = wait_for(repaired, 5, 0.1)
    check(fe, "no repair in status within 5 s: %r" % (T.al.status().get("fence"),))
    last = fe.get("last") or {}
    for k, want in (("found", "detached"), ("program", "al_xdp_agent"), ("iface", IF_H), ("ifindex", idx),
                    ("link_id", old["id"]), ("repaired", True)):
        check(last.get(k) == want, "status fence.last.%s is %r, want %r (%r)" % (k, last.get(k), want, last))
    now = pinned_link(pin)
    check(now["id"] != old["id"] and now["id"] == last.get("new_link_id") and now["prog_id"] == old["prog_id"],
          "pinned after the repair: %r, before %r (status: %r)" % (now, old, last))
    check(iface_xdp(IF_H) == ("driver", old["prog_id"]), "on %s after the repair: %r" % (IF_H, iface_xdp(IF_H)))
    ifs = [i for i in T.al.status().get("interfaces", []) if i["iface"] == IF_H]
    check(ifs and ifs[0]["mode"] == "native", "status interfaces after the repair: %r" % ifs)
    r = T.al.ctl("audit", "export", "--since", "1h", "--format", "jsonl", timeout=30)
    recs = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    recs = [x for x in recs if x["kind"] == "fence_repaired" and x["body"].get("link_id") == old["id"]]
    check(len(recs) == 1 and recs[0]["body"].get("iface") == IF_H, "audit records of the repair: %r" % recs)
    case_udp_dropped()
    case_tcp_v4()


def case_xdp_unpinned():
    """The pinned interface's XDP pin removed from bpffs (its interface's whole directory) is made
    again for the same link: without it the link would go with airlockd."""
    idx = socket.if_nametoindex(IF_H)
    d = os.path.join(T.al.pin_root, "iface", str(idx))
    pin = os.path.join(d, "al_xdp_agent")
    old = pinned_link(pin)
    fe0 = T.al.status().get("fence") or {}
    subprocess.run(["/bin/rm", "-rf", d], check=True, timeout=20)

    def repaired():
        fe = T.al.status().get("fence") or {}
        return fe if fe.get("unpinned", 0) > fe0.get("unpinned", 0) else None
    fe = wait_for(repaired, 5, 0.1)
    check(fe, "no repair in status within 5 s: %r" % (T.al.status().get("fence"),))
    last = fe.get("last") or {}
    for k, want in (("found", "unpinned"), ("program", "al_xdp_agent"), ("iface", IF_H), ("ifindex", idx),
                    ("link_id", old["id"]), ("repaired", True)):
        check(last.get(k) == want, "status fence.last.%s is %r, want %r (%r)" % (k, last.get(k), want, last))
    now = pinned_link(pin)
    check(now["id"] == old["id"] and now["prog_id"] == old["prog_id"], "pinned after the repair: %r, before %r" % (now, old))
    check(iface_xdp(IF_H) == ("driver", old["prog_id"]), "on %s after the repair: %r" % (IF_H, iface_xdp(IF_H)))
    case_udp_dropped()
    case_tcp_v4()


def case_guard():
    g = T.guard_al
    g.start()
    allowed, other = addr(T.b4, 1), addr(T.b4, 3)
    r = g.ctl("guard", "--iface", IF_B, "--port", str(T.guard_port), "--allow", allowed)
    check(r.returncode == 0, "guard exited %d: %s" % (r.returncode, r.stderr.strip()))
    st = g.status()
    ifs = [i for i in st.get("interfaces", []) if i["iface"] == IF_B]
    check(ifs and ifs[0]["role"] == "guard" and ifs[0]["ports"] == [T.guard_port] and
          ifs[0]["allow"] == [allowed], "guard status: %r" % ifs)
    check(tcp_from(allowed, addr(T.b4, 2), T.guard_port, send=b"ping\n") == "echoed",
          "appliance address %s cannot reach the guarded port" % allowed)
    before = kernel_counter(g, "guard_drop")
    r = tcp_from(other, addr(T.b4, 2), T.guard_port, timeout=1.0)
    check(r == "timeout", "from %s to the guarded port: %s, want timeout (dropped)" % (other, r))
    check(kernel_counter(g, "guard_drop") > before, "guard_drop did not rise")
    check(tcp_from(other, addr(T.b4, 2), T.backend_port) == "connected",
          "an unguarded port is blocked from %s" % other)


def guard_status():
    """The guard on IF_B as `status` shows it: (sorted ports, sorted allowed addresses), or None."""
    ifs = [i for i in T.guard_al.status().get("interfaces", []) if i["iface"] == IF_B]
    if not ifs or ifs[0]["role"] != "guard":
        return None
    return (sorted(ifs[0]["ports"]), sorted(str(ipaddress.ip_address(a)) for a in ifs[0]["allow"]))


def guard_set(ports, allow):
    """`guard` IF_B with exactly these ports and sources; status must show exactly them."""
    argv = ["guard", "--iface", IF_B]
    for p in ports:
        argv += ["--port", str(p)]
    for a in allow:
        argv += ["--allow", a]
    r = T.guard_al.ctl(*argv)
    check(r.returncode == 0, "guard %s exited %d: %s" % (argv[3:], r.returncode, r.stderr.strip()))
    want = (sorted(ports), sorted(str(ipaddress.ip_address(a)) for a in allow))
    got = guard_status()
    check(got == want, "after guard %s, status shows %r, want exactly %r" % (argv[3:], got, want))


def expect_tcp(src, dst, port, want):
    """want "echoed" (passes) or "dropped" (SYN dropped: a timeout, and guard_drop rises)."""
    name = "[%s]" % dst if ":" in dst else dst
    if want == "echoed":
        r = tcp_from(src, dst, port, send=b"ping\n")
        check(r == "echoed", "from %s to %s:%d: %s, want it to pass" % (src, name, port, r))
        return
    before = kernel_counter(T.guard_al, "guard_drop")
    r = tcp_from(src, dst, port, timeout=1.0)
    check(r == "timeout", "from %s to %s:%d: %s, want timeout (dropped)" % (src, name, port, r))
    check(kernel_counter(T.guard_al, "guard_drop") > before,
          "from %s to %s:%d: guard_drop did not rise" % (src, name, port))


def case_guard_replace():
    """`guard` again on the same interface replaces the ports and the sources, never merges."""
    a, b, d = addr(T.b4, 1), addr(T.b4, 3), addr(T.b4, 2)
    g1, g2 = T.guard_port, T.guard_port2
    guard_set([g1], [a])                                # as case_guard left it
    expect_tcp(b, d, g2, "echoed")                      # g2 is not guarded yet
    # A different port and a different source: g1 opens to everyone, g2 only from b.
    guard_set([g2], [b])
    expect_tcp(b, d, g2, "echoed")
    expect_tcp(a, d, g2, "dropped")                     # a was allowed before, is not now
    expect_tcp(a, d, g1, "echoed")
    expect_tcp(b, d, g1, "echoed")
    # g1 guarded again, by the new list: the old source a stays out of it.
    guard_set([g1, g2], [b])
    expect_tcp(a, d, g1, "dropped")
    expect_tcp(b, d, g1, "echoed")
    # A rejected guard call changes nothing.
    r = T.guard_al.ctl("guard", "--iface", IF_B, "--port", str(g1), "--allow", "not-an-address")
    check(r.returncode != 0, "guard with --allow not-an-address exited 0")
    check(guard_status() == (sorted([g1, g2]), [b]), "a rejected guard changed it: %r" % (guard_status(),))
    # Back to the original guard (the cases after this one expect it): g2 open again.
    guard_set([g1], [a])
    expect_tcp(a, d, g1, "echoed")
    expect_tcp(b, d, g1, "dropped")
    expect_tcp(a, d, g2, "echoed")
    expect_tcp(b, d, g2, "echoed")


def case_guard_v6():
    """IPv6 through the guard: an allowed v6 source reaches the guarded port, another is dropped."""
    a6, b6, d6 = T.ula_b + "1", T.ula_b + "3", T.ula_b + "2"
    guard_set([T.guard_port], [addr(T.b4, 1), a6])
    expect_tcp(a6, d6, T.guard_port, "echoed")
    expect_tcp(b6, d6, T.guard_port, "dropped")
    expect_tcp(b6, d6, T.backend_port, "echoed")        # an unguarded port over IPv6
    expect_tcp(addr(T.b4, 1), addr(T.b4, 2), T.guard_port, "echoed")   # the v4 source still passes
    expect_tcp(addr(T.b4, 3), addr(T.b4, 2), T.guard_port, "dropped")


def case_guard_v6_exthdr():
    """TCP behind IPv6 extension headers: found and judged up to the parser's limit, beyond it dropped."""
    n = ip6_ext_max()
    a6, b6 = T.ula_b + "1", T.ula_b + "3"
    guard_set([T.guard_port], [addr(T.b4, 1), a6])
    check(syn6(a6, T.guard_port) == "synack", "plain SYN from the allowed %s got no SYN-ACK" % a6)
    check(syn6(a6, T.guard_port, n) == "synack",
          "SYN behind %d extension headers from the allowed %s got no SYN-ACK" % (n, a6))
    for src, port, nexts in ((b6, T.guard_port, n),            # parsed, and not an allowed source
                             (b6, T.guard_port, n + 1),        # one header too many: cannot parse
                             (a6, T.guard_port, n + 1),        # dropped whoever sends it
                             (b6, T.backend_port, n + 1)):     # and whatever port it hides
        before = kernel_counter(T.guard_al, "guard_drop")
        r = syn6(src, port, nexts, timeout=1.0)
        check(r == "nothing", "SYN from %s to port %d behind %d extension headers: %s, want dropped" %
              (src, port, nexts, r))
        check(kernel_counter(T.guard_al, "guard_drop") > before,
              "SYN from %s to port %d behind %d extension headers: guard_drop did not rise" % (src, port, nexts))


def case_agent_to_guarded():
    """The agent reaches the guarded backend port only through Airlock, whose address is allowed."""
    mark = T.al.max_id()
    r = agent("tcp", addr(T.b4, 2), T.guard_port)
    check(r["result"] == "connected", "agent -> Airlock -> guarded port: %r" % r)
    rows = wait_for(lambda: [x for x in T.al.connections() if x["id"] > mark and
                             x["dst_port"] == T.guard_port], 5, 0.1)
    check(rows and rows[0]["iface"] == IF_H, "no audit row for the guarded port: %r" % rows)


def case_guard_readopt():
    g = T.guard_al
    g.stop(signal.SIGKILL)
    check(tcp_from(addr(T.b4, 3), addr(T.b4, 2), T.guard_port, timeout=1.0) == "timeout",
          "guard gone with its daemon")
    g.start()
    st = g.status()
    ifs = [i for i in st.get("interfaces", []) if i["iface"] == IF_B]
    check(ifs and ifs[0]["ports"] == [T.guard_port], "restarted guard daemon: %r" % ifs)
    r = g.ctl("unguard", "--iface", IF_B)
    check(r.returncode == 0, "unguard: %s" % r.stderr.strip())
    check(tcp_from(addr(T.b4, 3), addr(T.b4, 2), T.guard_port, send=b"x\n") == "echoed",
          "still guarded after unguard")


def case_unguarded_exthdr():
    """Without the guard the backend answers the long-chain SYN: the drops above were the guard's."""
    check(guard_status() is None, "%s is still guarded: %r" % (IF_B, guard_status()))
    n = ip6_ext_max() + 1
    check(syn6(T.ula_b + "3", T.guard_port, n) == "synack",
          "unguarded, a SYN behind %d extension headers got no SYN-ACK" % n)


def case_unpin():
    r = T.al.ctl("unpin", "--iface", IF_H)
    check(r.returncode == 0, "unpin --iface exited %d: %s" % (r.returncode, r.stderr.strip()))
    check(not nft_table_exists(NFT_TABLE), "nftables table still there with nothing pinned")
    check(not fwmark_rules(), "fwmark rule still there: %s" % fwmark_rules())
    check(not table_routes(), "routes left in table %d: %s" % (T.table, table_routes()))
    npeers = len(T.http.peers)
    rc, body, _, err = agent_curl("http://%s:%d/" % (addr(T.a4, 1), T.http_port))
    check(rc == 0 and body == b"host-side hello\n", "direct curl after unpin: %d %s" % (rc, err))
    check(T.http.peers[npeers:] and T.http.peers[-1][0] == addr(T.a4, 2),
          "server saw %r, want the agent directly" % T.http.peers[npeers:])
    n = len(T.udp_got)
    agent("udp", addr(T.a4, 1), T.udp_port, 2)
    check(wait_for(lambda: len(T.udp_got) >= n + 2, 3), "UDP does not arrive after unpin")
    check(agent("ping", addr(T.a4, 1))["reply"], "no ping reply after unpin")


def case_pin_resets_open():
    """Connections the agent opened before its interface was pinned are reset at their next
    bytes, and those bytes reach nothing: to the host over IPv4 and IPv6, and to the backend
    while the host forwards between the two links. A new connection then goes through Airlock."""
    pinned = [i["iface"] for i in T.al.status().get("interfaces", [])]
    check(IF_H not in pinned, "%s is still pinned: %r" % (IF_H, pinned))
    port = lib.free_port((addr(T.a4, 1), T.ula + "1"))
    fwd = lib.on_cleanup(forward_between_links, False)
    recs = []
    try:
        forward_between_links(True)
        recs = [Recorder(addr(T.a4, 1), port), Recorder(T.ula + "1", port),
                Recorder(addr(T.b4, 2), T.backend_port + 3, NS_B)]
        held = []
        for what, rec, dst, src in (("to the host", recs[0], addr(T.a4, 1), addr(T.a4, 2)),
                                    ("to the host over IPv6", recs[1], T.ula + "1", T.ula + "2"),
                                    ("forwarded to the backend", recs[2], addr(T.b4, 2), addr(T.a4, 2))):
            h = Holder(dst, rec.port)
            if rec is recs[2] and h.first["result"].startswith("connect"):
                # Before the pin nothing of Airlock's is involved: a host firewall forbids forwarding.
                note("skipping the forwarded connection: the agent cannot reach the backend unpinned "
                     "with %s and %s forwarding: %s" % (IF_H, IF_G, h.first["result"]))
                lib.run_cleanup(h.cleanup)
                continue
            check(h.first["result"] == "echoed", "%s, before the pin: %r" % (what, h.first))
            check(rec.wait_received(b"before\n", (src, h.port)) == b"before\n",
                  "%s, before the pin: the server got %r from %r, want b'before\\n' from the agent (%s port %d)" %
                  (what, rec.received(), rec.peers(), src, h.port))
            held.append((what, rec, src, h))
        r = T.al.ctl("pin", "--iface", IF_H)
        check(r.returncode == 0, "pin --iface exited %d: %s" % (r.returncode, r.stderr.strip()))
        after = [(what, h.again()) for what, rec, src, h in held]
        time.sleep(0.3)
        got = [(what, rec.received((src, h.port))) for what, rec, src, h in held]
        bad = ["%s: %s" % (what, r) for what, r in after if r != "reset"]
        check(not bad, "connections opened before the pin, written to after it (want reset): %s" % "; ".join(bad))
        bad = ["%s: %r" % (what, g) for what, g in got if g != b"before\n"]
        check(not bad, "servers got bytes sent after the pin on connections opened before it: %s" % "; ".join(bad))
        # A new connection to the backend goes through Airlock, forwarding or not.
        mark, npeers = T.al.max_id(), len(recs[2].peers())
        h = Holder(addr(T.b4, 2), recs[2].port)
        check(h.first["result"] == "echoed", "a new connection to the backend after the pin: %r" % h.first)
        check(h.again() == "echoed", "a new connection to the backend after the pin did not echo twice")
        peers = wait_for(lambda: recs[2].peers()[npeers:], 3)
        check(peers and all(p[0] != addr(T.a4, 2) for p in peers),
              "the backend saw %r: the agent reached it directly" % peers)
        row = audit_row(mark, h.port)
        check(row["iface"] == IF_H and row["dst_addr"] == addr(T.b4, 2) and row["dst_port"] == recs[2].port,
              "audit row of the new connection: %r" % row)
        case_tcp_v4()
    finally:
        T.al.ctl("unpin", "--iface", IF_H)    # as case_unpin left it, for case_down
        lib.run_cleanup(fwd)
        for rec in recs:
            rec.stop()


def case_down():
    """Pinned again, then `airlockctl down`: XDP, nftables, rules, routes and pins all go."""
    r = T.al.ctl("pin", "--iface", IF_H)
    check(r.returncode == 0, "pin again: %s" % r.stderr.strip())
    check(nft_table_exists(NFT_TABLE), "table missing after pin")
    r = T.al.ctl("down")
    check(r.returncode == 0, "down: %s" % r.stderr.strip())
    check(wait_for(lambda: not T.al.running(), 10), "airlockd still running after down")
    check(not os.path.exists(T.al.pin_root), "%s still exists" % T.al.pin_root)
    check(not nft_table_exists(NFT_TABLE), "nftables table left after down")
    check(not fwmark_rules() and not table_routes(), "policy routing left after down")
    check(agent("ping", addr(T.a4, 1))["reply"], "XDP still on %s after down" % IF_H)


def main():
    lib.install_exit_handlers()
    res = lib.Results()
    if os.geteuid() != 0:
        res.not_ok("netns: setup", "needs root")
        return 1
    T.tmp = lib.make_tempdir()
    with open(os.path.join(T.tmp, "agent_probe.py"), "w") as f:
        f.write(AGENT_PROBE)
    T.agent_script = os.path.join(T.tmp, "agent_probe.py")
    rules = sh(IP, "rule", "show").stdout + sh(IP, "-6", "rule", "show").stdout
    routes = sh(IP, "route", "show", "table", "all").stdout + sh(IP, "-6", "route", "show", "table", "all").stdout
    rnd = random.Random(secrets.randbits(64))
    while True:
        T.mark = 0x7a000000 | rnd.randrange(1, 1 << 24)
        T.table = rnd.randrange(100000, 2000000000)
        if ("%#x" % T.mark) not in rules and ("table %d " % T.table) not in routes:
            break
    lib.on_cleanup(remove_policy_routing)
    lib.on_cleanup(nft_table_delete, NFT_TABLE)
    t0 = time.monotonic()
    try:
        if not res.case("netns: topology", make_topology) or not res.case("netns: servers", start_servers):
            return 1
        tproxy_port = T.tproxy_port = lib.free_port()
        os.chmod(T.tmp, 0o755)      # the reviewer (its own uid) reaches the review socket
        T.rsock = os.path.join(T.tmp, "review.sock")
        ca_dir = os.path.join(T.tmp, "ca")
        T.airlock_ca = os.path.join(ca_dir, "ca.crt")
        T.al = lib.Airlock(T.tmp, [grants_resource()], settings=[
            "tproxy_port %d" % tproxy_port, "tproxy_mark %#x" % T.mark, "tproxy_table %d" % T.table,
            "nft_table %s" % NFT_TABLE, "resolver %s" % addr(T.a4, 1), 'ca_dir "%s"' % ca_dir,
            'review_socket "%s"' % T.rsock])
        gdir = os.path.join(T.tmp, "guard")
        os.mkdir(gdir)
        T.guard_al = NetnsAirlock(gdir, NS_B, settings=[
            "nft_table %s" % NFT_TABLE, "tproxy_mark %#x" % T.mark, "tproxy_table %d" % T.table])
        res.case("netns: baseline: the agent reaches the host directly before pinning", case_baseline)
        if not res.case("netns: airlockd starts", T.al.start):
            return 1
        if not res.case("netns: pin --iface attaches native XDP, nftables TPROXY and policy routing",
                        case_pin):
            return 1
        res.case("netns: agent TCP (IPv4) goes through Airlock, audited with iface and original destination",
                 case_tcp_v4)
        res.case("netns: agent TCP (IPv6) goes through Airlock via [::1] TPROXY", case_tcp_v6)
        res.case("netns: agent TCP to a host beyond the link goes through Airlock", case_tcp_remote)
        res.case("netns: a grant covers its interface's agent only: A's granted DELETE runs at once, "
                 "B's (another pinned interface) is held, listed by interface, and denied", case_iface_grants)
        res.case("netns: UDP to a non-resolver port is dropped by XDP (xdp_drop)", case_udp_dropped)
        res.case("netns: ICMP echo is dropped by XDP", case_icmp_dropped)
        res.case("netns: DNS to the allowed resolver passes, to another address is dropped", case_dns)
        res.case("netns: a host process dialling the TPROXY port is closed as no_identity", case_no_identity)
        res.case("netns: a pinned link that vanishes is pruned, the others keep working", case_vanished)
        res.case("netns: the pinned interface's XDP link detached by bpftool is attached again (native, pin "
                 "replaced): UDP dropped, TCP through Airlock, audited", case_xdp_detached)
        res.case("netns: the pinned interface's XDP pin removed from bpffs is made again for the same link",
                 case_xdp_unpinned)
        res.case("netns: guard: protected port only from the appliance address (guard_drop)", case_guard)
        res.case("netns: guard again on the same interface replaces its ports and sources", case_guard_replace)
        res.case("netns: guard over IPv6: allowed v6 source passes, another is dropped", case_guard_v6)
        res.case("netns: guard: TCP behind IPv6 extension headers is judged; a longer chain than "
                 "the parser walks is dropped", case_guard_v6_exthdr)
        res.case("netns: agent reaches the guarded port through Airlock", case_agent_to_guarded)
        res.case("netns: guard survives its daemon's kill -9, re-adopted, unguard opens it", case_guard_readopt)
        res.case("netns: unguarded, the backend answers the long-chain SYN the guard dropped",
                 case_unguarded_exthdr)
        res.case("netns: kill -9 airlockd: agent TCP refused or reset, nothing reaches a server, UDP and ICMP "
                 "dropped", case_fail_closed)
        res.case("netns: restarted airlockd re-adopts the pinned interface", case_readopt)
        res.case("netns: unpin: rules gone, the agent reaches the host directly again", case_unpin)
        res.case("netns: connections open when the interface is pinned are reset; their later bytes reach "
                 "nothing (host IPv4, IPv6, forwarded to the backend)", case_pin_resets_open)
        res.case("netns: down removes XDP, nftables table, rules, routes and pins", case_down)
    finally:
        note("took %.1fs" % (time.monotonic() - t0))
        if res.failed and T.al:
            note("airlockd log: " + T.al.log_tail(20))
        lib.run_cleanup()
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
