#!/usr/bin/env bash
# Instructions airlockd executes per PostgreSQL statement and per HTTPS request, counted by callgrind: a figure that does not move with the machine's load.
#
# The throughput benchmarks (pg_bench.sh, https_bench.sh) share two CPUs with their clients and
# servers; their ratios move by a fifth from round to round, and a change worth 5% of airlockd's
# CPU is lost in that. This runs the same workloads with airlockd alone under valgrind's
# callgrind and counts the user-space instructions it executes (the kernel's work is not
# counted), from its event loop and its store's checkpoint thread, so two builds compare
# exactly:
#   pg     pg_bench.sh's -c 8 run, airlock mode only (pgbench -S, 8 sessions)
#   https  https_bench.sh's keep-alive run, airlock mode only (wrk -t2 -c32)
# Each is reported per command (a statement, a request), with what starting the sessions cost
# taken out (the upstream SCRAM login, the TLS handshakes), and split into the parts that make
# it up (bench/insn.py). Under callgrind airlockd runs some 50 times slower, so the store's
# commit_interval is set to 1s to keep its batches as large as they are at full speed.
# Valgrind's CPU has no SHA or VAES instructions: OpenSSL's digests and ciphers take more
# instructions here than on the machine, so compare builds with this tool, not with perf.
#
# Usage: bash bench/insn.sh [pg] [https] (both by default). Knobs: BENCH_INSN_T (15 s per run),
# BENCH_INSN_DIR (where the callgrind files are kept; a temporary directory, removed, by
# default). Installs valgrind with apt-get if missing; pg_bench.sh and https_bench.sh install
# what they need.

set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_NAME=insn
# shellcheck source=bench/lib.sh
. bench/lib.sh

T=${BENCH_INSN_T:-15}
case "$T" in '' | *[!0-9]*) die "BENCH_INSN_T must be a number" ;; esac
read -ra WHICH <<<"${*:-pg https}"
for w in "${WHICH[@]}"; do
	case "$w" in pg | https) ;; *) die "usage: bench/insn.sh [pg] [https]" ;; esac
done
command -v valgrind >/dev/null || bench_apt_install valgrind

OUT=${BENCH_INSN_DIR:-}
if [ -z "$OUT" ]; then
	OUT=$(mktemp -d /tmp/airlock-insn.XXXXXX)
	trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT"

# Both benchmarks: airlock mode alone, one run, batches as large as at full speed.
export BENCH_AIRLOCK_CONF="commit_interval 1s" BENCH_MODES=airlock BENCH_ROUNDS=1
export BENCH_PG_T=$T BENCH_PG_WORKLOADS=c8 BENCH_HTTPS_T=$T BENCH_HTTPS_WORKLOADS=keepalive
for w in "${WHICH[@]}"; do
	cg=$OUT/$w.callgrind
	rm -f "$cg"
	wrap="valgrind --tool=callgrind --collect-atstart=no --toggle-collect=event_base_loop"
	wrap+=" --toggle-collect=ckpt_main --callgrind-out-file=$cg"
	echo "$w: airlockd under callgrind for ${T}s..."
	BENCH_AIRLOCKD_WRAP=$wrap bash "bench/${w}_bench.sh" >"$OUT/$w.log" 2>&1 ||
		die "${w}_bench.sh failed: $(tail -n 5 "$OUT/$w.log")"
	[ -s "$cg" ] || die "no callgrind output for $w (see $OUT/$w.log)"
	/usr/bin/python3 bench/insn.py "$w" "$cg"
done
