#!/usr/bin/env bash
# `make bench`: connection rate, latency and bulk throughput of direct, bystander and agent-through-airlockd clients, measured in one run.
#
# Modes, alternated round by round (the starting mode rotates) and reported
# as medians over the rounds:
#   direct     client in a plain cgroup of its own; nothing of Airlock is
#              attached anywhere (the agent cgroup is unpinned)
#   bystander  the same client and cgroup while airlockd has its programs
#              attached to another (pinned) cgroup: what non-agents pay
#   agent      client inside the pinned cgroup, steered through airlockd's
#              relay (which writes one audit row at accept, updates it at close)
# The server (tcpbench server) runs in this script's cgroup on 127.0.0.2.
# Everything is created under a unique name and removed on any exit.
#
# Knobs (environment): BENCH_ROUNDS (5), BENCH_RR_N (20000 connections per
# rr run), BENCH_BULK (1g per stream), BENCH_SERVER_THREADS (2); TMPDIR
# (/tmp) holds the config, control socket and the audit store.

set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_NAME=bench
# shellcheck source=bench/lib.sh
. bench/lib.sh

ROUNDS=${BENCH_ROUNDS:-5}
RR_N=${BENCH_RR_N:-20000}
BULK=${BENCH_BULK:-1g}
SERVER_THREADS=${BENCH_SERVER_THREADS:-2}
SERVER_ADDR=127.0.0.2
CLIENT_TIMEOUT=120

bench_preflight
case "$ROUNDS$RR_N" in *[!0-9]*) die "BENCH_ROUNDS and BENCH_RR_N must be numbers" ;; esac
{ [ "$ROUNDS" -ge 1 ] && [ "$RR_N" -ge 100 ]; } || die "BENCH_ROUNDS >= 1 and BENCH_RR_N >= 100, please"

TAG=airlock-bench-$$
bench_names "$TAG"
TB=build/bench/tcpbench
SERVER_PID=
bench_traps

TMP=$(mktemp -d "${TMPDIR:-/tmp}/$TAG.XXXXXX")
mkdir -p build/bench
cc -O2 -std=gnu11 -Wall -Wextra -Werror -Wshadow -D_GNU_SOURCE -Iinclude -pthread \
	-o "$TB" bench/tcpbench.c

others=$(pgrep -x airlockd | tr '\n' ' ' || true)
[ -z "$others" ] || echo "bench: note: other airlockd processes run on this host (pids ${others% }); figures may be disturbed"

# ---- peers ----

"$TB" server -a "$SERVER_ADDR" -t "$SERVER_THREADS" >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!
bench_track "$SERVER_PID" TERM 50 KILL
for _ in $(seq 50); do
	grep -q '^port ' "$TMP/server.out" 2>/dev/null && break
	kill -0 "$SERVER_PID" 2>/dev/null || break
	sleep 0.1
done
SERVER_PORT=$(awk '/^port /{ print $2 }' "$TMP/server.out")
[ -n "$SERVER_PORT" ] || die "tcpbench server did not start: $(cat "$TMP/server.err")"

STEER_PORT=$("$TB" freeport -a 127.0.0.1)
cat >"$TMP/airlock.conf" <<EOF
# airlockd configuration for one bench run
steer_port $STEER_PORT
control_socket "$TMP/control.sock"
store "$TMP/airlock.db"
pin_root "$PIN_ROOT"
console_listen off
default relay
EOF
bench_start_airlockd
bench_make_cgroups "$AGENT_CG" "$PLAIN_CG"

PINNED=0
DIRECT_RUNS=0
FOREIGN_DIRECT=0  # direct runs while someone else's cgroup programs were attached
set_pinned() {
	[ "$PINNED" -eq "$1" ] && return 0
	if [ "$1" -eq 1 ]; then
		"${CTL[@]}" pin "$AGENT_CG" >/dev/null
	else
		"${CTL[@]}" unpin "$AGENT_CG" >/dev/null
	fi
	PINNED=$1
}

# Connections airlockd accepted since it started; the run stops if it no longer answers.
accepted() {
	local json n
	json=$("${CTL[@]}" status --json) ||
		die "airlockd does not answer any more; its stderr: $(tail -n 5 "$TMP/airlockd.err" | tr '\n' ' ')"
	n=$(printf '%s\n' "$json" | sed -n 's/^ *"accepted": *\([0-9]*\).*/\1/p')
	[ -n "$n" ] || die "airlockctl status --json has no \"accepted\" count"
	echo "$n"
}

# How many programs the kernel shows attached to a cgroup (bpftool is optional).
attached() {
	command -v bpftool >/dev/null || { echo "?"; return; }
	bpftool cgroup show "$1" 2>/dev/null | awk 'NR > 1 && NF' | wc -l
}

# Lines of programs attached to any cgroup on the host (0 when nothing is).
attached_anywhere() {
	command -v bpftool >/dev/null || { echo 0; return; }
	bpftool cgroup tree 2>/dev/null | awk 'NR > 2 && NF' | wc -l
}

set_pinned 1
echo "airlockd $(bench_airlockd_version) (pid $AIRLOCKD_PID), steer port $STEER_PORT, store on $(df -T "$TMP" | awk 'NR == 2 { print $2 }')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server $SERVER_ADDR:$SERVER_PORT ($SERVER_THREADS threads, in $(sed -n 's/^0:://p' /proc/$$/cgroup)); $(nproc) CPUs; kernel $(uname -r)"
echo "cgroups: agent ${AGENT_CG#"$CG2"} ($(attached "$AGENT_CG") programs attached), plain ${PLAIN_CG#"$CG2"} ($(attached "$PLAIN_CG") attached)"
set_pinned 0
[ "$(attached "$AGENT_CG")" = "?" ] || [ "$(attached "$AGENT_CG")" -eq 0 ] ||
	die "unpin left programs attached to $AGENT_CG"

# ---- runs ----

# client MODE ARGS...: runs tcpbench in the mode's cgroup; its result line goes to $TMP/client.out.
client() {
	local mode=$1 cg rc=0
	shift
	case "$mode" in
	direct) set_pinned 0; cg=$PLAIN_CG ;;
	bystander) set_pinned 1; cg=$PLAIN_CG ;;
	agent) set_pinned 1; cg=$AGENT_CG ;;
	esac
	if [ "$mode" = direct ]; then
		DIRECT_RUNS=$((DIRECT_RUNS + 1))
		[ "$(attached_anywhere)" = 0 ] || FOREIGN_DIRECT=$((FOREIGN_DIRECT + 1))
	fi
	bench_in_cg "$cg" timeout "$CLIENT_TIMEOUT" "$TB" "$@" -a "$SERVER_ADDR" -p "$SERVER_PORT" \
		>"$TMP/client.out" 2>"$TMP/client.err" &
	CLIENT_PID=$!
	wait "$CLIENT_PID" || rc=$?
	CLIENT_PID=
	if [ "$rc" -ne 0 ]; then
		echo "bench: $mode client ($*) exited $rc: $(tr '\n' ' ' <"$TMP/client.err")" >&2
		echo "$mode $* exited $rc: $(tr '\n' ' ' <"$TMP/client.err")" >>"$TMP/anomalies"
	fi
}

WORKLOADS=(rr1 rr8 bulk1 bulk4)
MODES=(direct bystander agent)
wl_args() {
	case "$1" in
	rr1) echo "rr -n $RR_N -c 1 -q 64 -r 256" ;;
	rr8) echo "rr -n $RR_N -c 8 -q 64 -r 256" ;;
	bulk1) echo "bulk -b $BULK -c 1" ;;
	bulk4) echo "bulk -b $BULK -c 4" ;;
	esac
}
# Connections airlockd must accept for one run of a workload in agent mode.
wl_conns() {
	case "$1" in
	rr*) echo "$RR_N" ;;
	bulk1) echo 1 ;;
	bulk4) echo 4 ;;
	esac
}

: >"$TMP/results"
: >"$TMP/anomalies"
START=$(date +%s)

echo "warm-up..."
for mode in "${MODES[@]}"; do
	client "$mode" rr -n 2000 -c 8 -q 64 -r 256
	client "$mode" bulk -b 64m -c 1
done

for round in $(seq "$ROUNDS"); do
	for wl in "${WORKLOADS[@]}"; do
		line="round $round/$ROUNDS $(printf '%-5s' "$wl")"
		for k in 0 1 2; do
			mode=${MODES[$(((round - 1 + k) % 3))]}
			before=$(accepted)
			# shellcheck disable=SC2046 # word splitting of the workload's arguments is wanted
			client "$mode" $(wl_args "$wl")
			after=$(accepted)
			out=$(cat "$TMP/client.out")
			want=0
			[ "$mode" = agent ] && want=$(wl_conns "$wl")
			if [ "$((after - before))" -ne "$want" ]; then
				echo "$mode $wl round $round: airlockd accepted $((after - before)) connections, expected $want" >>"$TMP/anomalies"
			fi
			[ -n "$out" ] || continue
			echo "$mode $wl $round $out" >>"$TMP/results"
			case "$wl" in
			rr*) line+=$(echo "$out" | awk -v m="$mode" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
				printf "  %s %.0f/s p50 %.0fus p99 %.0fus", m, v["cps"], v["p50_us"], v["p99_us"] }') ;;
			bulk*) line+=$(echo "$out" | awk -v m="$mode" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
				printf "  %s %.0f MB/s", m, v["mbps"] }') ;;
			esac
		done
		echo "$line"
	done
done
ELAPSED=$(($(date +%s) - START))

# ---- report ----

echo
echo "Medians of $ROUNDS rounds (MB = 10^6 bytes; rr = new connection, 64-byte request, 256-byte response, server closes):"
awk -v rounds="$ROUNDS" -v rr_n="$RR_N" -v bulk="$BULK" "$BENCH_AWK_LIB"'
{
	mode = $1; wl = $2
	for (i = 5; i <= NF; i++) {
		split($i, kv, "=")
		vals[wl SUBSEP kv[1] SUBSEP mode] = vals[wl SUBSEP kv[1] SUBSEP mode] " " kv[2]
		if (kv[1] == "errors")
			errs[mode] += kv[2]
	}
}
END {
	nrow = split("rr1 cps conn/s %.0f|rr1 p50_us p50_us %.1f|rr1 p99_us p99_us %.1f|" \
		     "rr8 cps conn/s %.0f|rr8 p50_us p50_us %.1f|rr8 p99_us p99_us %.1f|" \
		     "bulk1 mbps MB/s %.0f|bulk4 mbps MB/s %.0f", rows, "|")
	title["rr1"] = sprintf("rr, %d conns, 1 worker", rr_n)
	title["rr8"] = sprintf("rr, %d conns, 8 workers", rr_n)
	title["bulk1"] = sprintf("bulk, 1 stream x %s", bulk)
	title["bulk4"] = sprintf("bulk, 4 streams x %s", bulk)
	printf "%-27s %-7s %10s %10s %10s  %11s %12s\n", "workload", "metric", "direct", "bystander",
	       "agent", "agent/direct", "bystndr/direct"
	for (r = 1; r <= nrow; r++) {
		split(rows[r], f, " ")
		d = median(f[1] SUBSEP f[2] SUBSEP "direct")
		b = median(f[1] SUBSEP f[2] SUBSEP "bystander")
		a = median(f[1] SUBSEP f[2] SUBSEP "agent")
		printf "%-27s %-7s %10s %10s %10s  %11s %12s\n", f[1] == last ? "" : title[f[1]], f[3],
		       num(d, f[4]), num(b, f[4]), num(a, f[4]), ratio(a, d), ratio(b, d)
		last = f[1]
	}
	printf "failed connections: direct %d, bystander %d, agent %d\n", errs["direct"], errs["bystander"], errs["agent"]
}' "$TMP/results"

echo
echo "airlockd after the run:"
"${CTL[@]}" status | sed 's/^/  /'
notices=$(grep -c -e ': pinned /' -e ': unpinned /' "$TMP/airlockd.err" || true)
other=$(grep -v -e ': pinned /' -e ': unpinned /' "$TMP/airlockd.err" || true)
echo "airlockd stderr: $notices pin/unpin notices, $(printf '%s' "$other" | grep -c . || true) other lines"
[ -z "$other" ] || printf '%s\n' "$other" | tail -n 20 | sed 's/^/  /'
if [ "$FOREIGN_DIRECT" -gt 0 ]; then
	echo "note: in $FOREIGN_DIRECT of $DIRECT_RUNS direct runs, cgroup BPF programs of another owner were attached elsewhere on this host (bpftool cgroup tree), so direct was not pristine"
fi
if [ -s "$TMP/anomalies" ]; then
	echo "ANOMALIES:"
	sed 's/^/  /' "$TMP/anomalies"
fi
echo "measured in ${ELAPSED}s; load average after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the host skews the figures)"
