#!/usr/bin/env bash
# HTTPS benchmark: wrk over keep-alive TLS through nothing (direct), haproxy (TLS terminate + re-encrypt), mitmproxy (reverse mode, if Debian's is installed) and Airlock (https resource, allow rule), in one run; plus new TLS handshakes per second.
#
# Workloads (wrk -t2 -c32 -d BENCH_HTTPS_T):
#   keepalive   one GET after another on 32 keep-alive connections      requests/s, p50/p99
#   handshake   "Connection: close": a new TLS connection per request   handshakes/s
# Each run also gives the CPU time (user + system, all threads) the serving process spent per
# request: the origin for direct, the proxy for the others. On a shared or small machine it is
# steadier than requests/s, which other load moves. And the whole host's busy CPU per request
# (wrk, the origin, the proxy, the kernel): with two CPUs every process shares, requests/s
# follows it, and it counts what a proxy makes the others do.
# Modes, alternated within each round (the starting mode rotates), medians over the rounds
# (Airlock's ratios to haproxy and mitmproxy also per round, and their median):
#   direct     wrk in a plain cgroup -> the origin
#   haproxy    wrk in the plain cgroup -> haproxy (terminates TLS, re-encrypts, verifies the origin)
#   mitmproxy  wrk in the plain cgroup -> mitmdump --mode reverse (only if installed; BENCH_MITM=1
#              installs Debian's mitmproxy)
#   airlock    wrk in a pinned cgroup dialling the origin's own address; airlockd reads the
#              ClientHello, mints a leaf, parses and decides every request (rule allow), audits
#              it, and forwards it over a verified TLS connection
# The origin is haproxy answering 200 with a 64-byte body itself (fast enough not to be the
# bottleneck), on 127.0.0.31 with a certificate from a throwaway CA. Everything is created under
# a unique name and removed on any exit; only processes this script started are stopped, by pid.
#
# Knobs: BENCH_ROUNDS (3), BENCH_HTTPS_T (10 s per run), BENCH_MITM (0), BENCH_HTTPS_WORKLOADS
# (keepalive handshake: which to run), BENCH_MODES (direct haproxy [mitmproxy] airlock: which to
# run), BENCH_AIRLOCK_CONF (extra airlockd config lines), BENCH_PERF_DIR (a profile of the whole host during each
# run, MODE-WORKLOAD-ROUND.data: bench/lib.sh's bench_perf_start).
# Installs wrk and haproxy with apt-get if missing (scripts/deps.sh does not list them).

set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_NAME=https_bench
# shellcheck source=bench/lib.sh
. bench/lib.sh

ROUNDS=${BENCH_ROUNDS:-3}
DUR=${BENCH_HTTPS_T:-10}
ORIGIN=127.0.0.31
PROXY=127.0.0.32

bench_preflight
for n in "$ROUNDS" "$DUR"; do
	case "$n" in '' | *[!0-9]*) die "BENCH_ROUNDS and BENCH_HTTPS_T must be numbers" ;; esac
done

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v haproxy >/dev/null || need+=(haproxy)
if [ "${BENCH_MITM:-0}" = 1 ] && ! command -v mitmdump >/dev/null; then
	need+=(mitmproxy)
fi
if [ ${#need[@]} -gt 0 ]; then
	bench_apt_install "${need[@]}"
	# Debian starts a system haproxy on install; the bench runs its own and leaves that one be.
fi
HAPROXY=$(command -v haproxy)
MITM=$(command -v mitmdump || true)

TAG=airlock-httpsbench-$$
bench_names "$TAG"
bench_traps

TMP=$(mktemp -d "/tmp/$TAG.XXXXXX")

# ---- certificates: a throwaway CA, the origin's and haproxy's front certificates ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/ca.key" \
	-out "$TMP/ca.pem" -days 2 -subj "/CN=https_bench CA" -addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign" >/dev/null 2>&1
for who in origin front; do
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/$who.key" \
		-out "$TMP/$who.csr" -subj "/CN=$who" >/dev/null 2>&1
	printf 'subjectAltName=IP:%s,IP:%s\nextendedKeyUsage=serverAuth\n' "$ORIGIN" "$PROXY" >"$TMP/$who.ext"
	openssl x509 -req -in "$TMP/$who.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial \
		-out "$TMP/$who.crt" -days 2 -extfile "$TMP/$who.ext" >/dev/null 2>&1
	cat "$TMP/$who.crt" "$TMP/$who.key" >"$TMP/$who.pem"
done

# ---- the origin and the haproxy proxy (one haproxy process each) ----
O_PORT=$(bench_freeport "$ORIGIN")
P_PORT=$(bench_freeport "$PROXY")
cat >"$TMP/origin.cfg" <<EOF
global
    maxconn 4096
    nbthread 1
defaults
    mode http
    timeout client 30s
    timeout server 30s
    timeout connect 5s
frontend origin
    bind $ORIGIN:$O_PORT ssl crt $TMP/origin.pem alpn http/1.1
    http-request return status 200 content-type text/plain string "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"
EOF
cat >"$TMP/proxy.cfg" <<EOF
global
    maxconn 4096
    nbthread 1
defaults
    mode http
    option http-keep-alive
    timeout client 30s
    timeout server 30s
    timeout connect 5s
frontend front
    bind $PROXY:$P_PORT ssl crt $TMP/front.pem alpn http/1.1
    default_backend origin
backend origin
    server o $ORIGIN:$O_PORT ssl verify required ca-file $TMP/ca.pem alpn http/1.1 pool-max-conn 64
EOF
"$HAPROXY" -f "$TMP/origin.cfg" -db >"$TMP/origin.log" 2>&1 &
ORIGIN_PID=$!
bench_track $! TERM 30 KILL
"$HAPROXY" -f "$TMP/proxy.cfg" -db >"$TMP/proxy.log" 2>&1 &
PROXY_PID=$!
bench_track $! TERM 30 KILL

M_PORT=
MITM_PID=
if [ -n "$MITM" ]; then
	M_PORT=$(bench_freeport "$PROXY")
	"$MITM" -q --mode "reverse:https://$ORIGIN:$O_PORT/" --listen-host "$PROXY" --listen-port "$M_PORT" \
		--set ssl_verify_upstream_trusted_ca="$TMP/ca.pem" --set keep_host_header=true \
		>"$TMP/mitm.log" 2>&1 &
	MITM_PID=$!
	bench_track $! TERM 30 KILL
fi

# ---- airlockd ----
STEER_PORT=$(bench_freeport 127.0.0.1)
mkdir -m 700 "$TMP/ca"
cat >"$TMP/airlock.conf" <<EOF
steer_port $STEER_PORT
control_socket "$TMP/control.sock"
store "$TMP/airlock.db"
pin_root "$PIN_ROOT"
default relay
ca_dir "$TMP/ca"
max_sessions 100000
console_listen off
${BENCH_AIRLOCK_CONF:-}
resource "origin" {
    address $ORIGIN
    port $O_PORT
    protocol https
    upstream_ca "$TMP/ca.pem"
    rule deny method DELETE
    rule allow method GET HEAD
}
EOF
bench_start_airlockd
bench_make_cgroups "$AGENT_CG" "$PLAIN_CG"
"${CTL[@]}" pin "$AGENT_CG" >/dev/null

# Waits for every server to answer one request.
for url in "https://$ORIGIN:$O_PORT/" "https://$PROXY:$P_PORT/" ${M_PORT:+"https://$PROXY:$M_PORT/"}; do
	for _ in $(seq 100); do
		curl -sk -o /dev/null --max-time 2 "$url" && break
		sleep 0.1
	done
	curl -sk -o /dev/null --max-time 5 "$url" || die "$url does not answer"
done
bench_in_cg "$AGENT_CG" curl -s -o /dev/null --max-time 5 --cacert "$TMP/ca/ca.crt" "https://$ORIGIN:$O_PORT/" ||
	die "airlock path does not answer: $(tail -n 5 "$TMP/airlockd.err")"

# run MODE WORKLOAD -> "req/s p50_ms p99_ms non2xx cpu_us_per_request host_us_per_request": the
# proxy's CPU (airlockd, haproxy; the origin for direct) and the whole host's (wrk, the origin,
# the proxy and the kernel): on two CPUs the host is the limit, so the host's CPU per request is
# what the throughput follows.
run() {
	local mode=$1 wl=$2 cg=$PLAIN_CG url out pid t0 t1 h0 h1
	case "$mode" in
	direct) url="https://$ORIGIN:$O_PORT/"; pid=$ORIGIN_PID ;;
	haproxy) url="https://$PROXY:$P_PORT/"; pid=$PROXY_PID ;;
	mitmproxy) url="https://$PROXY:$M_PORT/"; pid=$MITM_PID ;;
	airlock) url="https://$ORIGIN:$O_PORT/"; cg=$AGENT_CG; pid=$AIRLOCKD_PID ;;
	esac
	local extra=()
	[ "$wl" = handshake ] && extra=(-H "Connection: close")
	t0=$(bench_cpu_ticks "$pid")
	h0=$(bench_host_busy_ticks)
	bench_perf_start "$mode-$wl-$round" "$DUR"
	out=$(bench_in_cg "$cg" wrk -t2 -c32 -d"${DUR}s" --latency "${extra[@]}" "$url" 2>&1)
	t1=$(bench_cpu_ticks "$pid")
	h1=$(bench_host_busy_ticks)
	bench_perf_wait
	python3 - "$out" "$((t1 - t0))" "$(getconf CLK_TCK)" "$((h1 - h0))" <<'PYEOF'
import re, sys
o = sys.argv[1]
rps = re.search(r"Requests/sec:\s+([\d.]+)", o)
def lat(p):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)" % p, o, re.M)
    if not m:
        return float("nan")
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", o)
n = re.search(r"(\d+) requests in", o)
per = lambda ticks: int(ticks) * 1e6 / int(sys.argv[3]) / int(n.group(1)) if n and int(n.group(1)) else float("nan")
print("%s %.3f %.3f %s %.1f %.1f" % (rps.group(1) if rps else "0", lat(50), lat(99), errs.group(1) if errs else "0",
                                     per(sys.argv[2]), per(sys.argv[4])))
PYEOF
}

MODES=(direct haproxy airlock)
[ -n "$M_PORT" ] && MODES=(direct haproxy mitmproxy airlock)
bench_pick_modes       # mitmproxy only where mitmdump is installed (BENCH_MITM=1)
declare -A R
read -ra WORKLOADS <<<"${BENCH_HTTPS_WORKLOADS:-keepalive handshake}"
for wl in "${WORKLOADS[@]}"; do
	for ((round = 0; round < ROUNDS; round++)); do
		n=${#MODES[@]}
		for ((i = 0; i < n; i++)); do
			m=${MODES[$(((i + round) % n))]}
			r=$(run "$m" "$wl")
			R[$wl,$m]+="$r;"
			read -r rps _ _ _ cpu host <<<"$r"
			echo "round $((round + 1))/$ROUNDS $wl $m: $rps req/s, $cpu us cpu/req, host $host us/req"
		done
	done
done

echo
echo "https_bench: wrk -t2 -c32 -d${DUR}s, $ROUNDS rounds, medians ($(nproc) CPUs, $(uname -r))"
python3 - "$ROUNDS" "${MODES[*]}" "$(for k in "${!R[@]}"; do printf '%s=%s\n' "$k" "${R[$k]}"; done)" <<'PYEOF'
import statistics, sys
modes = sys.argv[2].split()
data = {}
for line in sys.argv[3].splitlines():
    k, v = line.split("=", 1)
    data[k] = [tuple(map(float, x.split())) for x in v.split(";") if x.strip()]
for wl, unit in (("keepalive", "req/s"), ("handshake", "handshakes/s")):
    if "%s,%s" % (wl, modes[0]) not in data:
        continue
    print("\n%s (%s)" % (wl, unit))
    print("  %-10s %12s %9s %9s %8s %10s %11s  %s" % ("mode", unit, "p50 ms", "p99 ms", "non-2xx", "cpu us/req",
                                                      "host us/req", "ratios"))
    med = {m: tuple(statistics.median(r[i] for r in data["%s,%s" % (wl, m)]) for i in range(6)) for m in modes}
    for m in modes:
        rps, p50, p99, bad, cpu, host = med[m]
        ratios = ", ".join("%.2fx %s" % (rps / med[o][0], o) for o in modes if o != m and med[o][0] > 0)
        print("  %-10s %12.0f %9.3f %9.3f %8d %10.1f %11.1f  %s" % (m, rps, p50, p99, bad, cpu, host,
                                                                ratios if m == "airlock" else ""))
    # The modes alternate within a round: each round's ratio compares runs made side by side.
    for o in ("haproxy", "mitmproxy"):
        a, b = data.get("%s,airlock" % wl, []), data.get("%s,%s" % (wl, o), [])
        if a and len(a) == len(b) and all(r[0] > 0 for r in b):
            per = [x[0] / y[0] for x, y in zip(a, b)]
            print("  airlock / %s per round: %s (median %.2f)" % (o, " ".join("%.2f" % r for r in per),
                                                                 statistics.median(per)))
PYEOF
"${CTL[@]}" status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print("\nairlockd: %d requests audited, %d denied, minted leaves via CA, passthrough %d" % (s.get("http_requests",0), s.get("http_denied",0), s.get("tls_passthrough",0)))'
