#!/usr/bin/env bash
# XDP drop rate on a veth pair (Airlock's al_xdp_agent on a pinned interface) vs an nftables drop rule (netdev ingress), alternated in one run, with the ratio.
#
# Everything happens in two network namespaces this script creates (sender
# and receiver, joined by a veth pair): airlockd runs in the receiver's
# namespace (nsenter --net, so bpffs is the host's) with its own pin root,
# store and control socket; the nftables table is in that namespace too.
# Nothing of the root namespace's network is touched. A C flooder
# (bench/udpflood.c, sendmmsg) sends minimum-size UDP frames to a port the
# agent program drops, as fast as one core can (AF_PACKET, qdisc bypassed,
# so the sender's own cost per packet is small), for BENCH_SECS per run.
#
#   xdp  airlockctl pin --iface on the receiving veth; the drop count is
#        the xdp_drop kernel counter (native XDP on veth)
#   nft  no XDP; a rule "meta protocol ip ip protocol udp counter drop" in
#        a netdev ingress chain of a uniquely named table (bench/nftdrop.c,
#        libnftnl); the drop count is the rule's counter
#
# Prints packets sent and dropped per second for each run, the medians and
# xdp/nft. Knobs: BENCH_ROUNDS (3), BENCH_SECS (3). Bounded: at most about
# ROUNDS * 2 * (SECS + 5) seconds; everything is removed on any exit.

set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECS:-3}

die() {
	echo "xdp_vs_nft: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "needs root (namespaces, XDP, nftables)"
{ [ -x build/airlockd ] && [ -x build/airlockctl ]; } || die "build/airlockd and build/airlockctl are missing (make all)"
case "$ROUNDS$SECS" in *[!0-9]*) die "BENCH_ROUNDS and BENCH_SECS must be whole numbers" ;; esac
{ [ "$ROUNDS" -ge 1 ] && [ "$SECS" -ge 1 ] && [ "$SECS" -le 60 ]; } || die "BENCH_ROUNDS >= 1, 1 <= BENCH_SECS <= 60"

ID="$$-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
NS_S="airlock-xb-$$-s"
NS_R="airlock-xb-$$-r"
IF_S="axb$$s"
IF_R="axb$$r"
TABLE="airlock_xb_$$"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/airlock-xdpbench-$$.XXXXXX")
PIN_ROOT="/sys/fs/bpf/airlock-test-xb-$ID"
AL_PID=""

cleanup() {
	trap - EXIT INT TERM HUP
	if [ -n "$AL_PID" ] && kill -0 "$AL_PID" 2>/dev/null; then
		kill "$AL_PID" 2>/dev/null || true
		wait "$AL_PID" 2>/dev/null || true
	fi
	[ -d "$PIN_ROOT" ] && build/airlockctl -s "$TMP/control.sock" down --pin-root "$PIN_ROOT" >/dev/null 2>&1 || true
	ip netns del "$NS_S" 2>/dev/null || true
	ip netns del "$NS_R" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

cc -O2 -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -o "$TMP/udpflood" bench/udpflood.c
cc -O2 -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -o "$TMP/nftdrop" bench/nftdrop.c \
	$(pkg-config --cflags --libs libnftnl libmnl)

ip netns add "$NS_S"
ip netns add "$NS_R"
ip link add "$IF_S" netns "$NS_S" type veth peer name "$IF_R" netns "$NS_R"
ip -n "$NS_S" addr add 10.213.255.1/30 dev "$IF_S"
ip -n "$NS_R" addr add 10.213.255.2/30 dev "$IF_R"
for ns in "$NS_S" "$NS_R"; do ip -n "$ns" link set lo up; done
ip -n "$NS_S" link set "$IF_S" up
ip -n "$NS_R" link set "$IF_R" up
# The flood must not stop at ARP: a static neighbour for the receiver.
MAC_R=$(ip -n "$NS_R" -o link show "$IF_R" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
ip -n "$NS_S" neigh replace 10.213.255.2 lladdr "$MAC_R" dev "$IF_S" nud permanent

cat > "$TMP/airlock.conf" <<EOF
steer_port 7700
control_socket "$TMP/control.sock"
store "$TMP/airlock.db"
pin_root "$PIN_ROOT"
console_listen off
nft_table $TABLE
resolver 10.213.255.1
EOF
nsenter --net="/run/netns/$NS_R" build/airlockd -c "$TMP/airlock.conf" >"$TMP/airlockd.out" 2>"$TMP/airlockd.log" &
AL_PID=$!
for _ in $(seq 100); do
	grep -q "pinned:" "$TMP/airlockd.out" 2>/dev/null && break
	kill -0 "$AL_PID" 2>/dev/null || die "airlockd exited: $(tail -3 "$TMP/airlockd.log")"
	sleep 0.1
done
grep -q "pinned:" "$TMP/airlockd.out" || die "airlockd did not start: $(tail -3 "$TMP/airlockd.log")"
CTL=(build/airlockctl -s "$TMP/control.sock")

xdp_drops() {
	"${CTL[@]}" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["kernel"].get("xdp_drop", 0))'
}

# run MODE: one flood of SECS seconds; prints "MODE sent_per_s dropped_per_s".
run() {
	local mode=$1 before after out sent secs
	if [ "$mode" = xdp ]; then
		"${CTL[@]}" pin --iface "$IF_R" >/dev/null
		before=$(xdp_drops)
	else
		ip netns exec "$NS_R" "$TMP/nftdrop" add "$TABLE" "$IF_R"
		before=$(ip netns exec "$NS_R" "$TMP/nftdrop" count "$TABLE")
	fi
	out=$(timeout $((SECS + 10)) ip netns exec "$NS_S" "$TMP/udpflood" 10.213.255.2 9 "$SECS" "$IF_S" "$MAC_R")
	sleep 0.2     # let the receiver finish its queue
	if [ "$mode" = xdp ]; then
		after=$(xdp_drops)
		"${CTL[@]}" unpin --iface "$IF_R" >/dev/null
	else
		after=$(ip netns exec "$NS_R" "$TMP/nftdrop" count "$TABLE")
		ip netns exec "$NS_R" "$TMP/nftdrop" del "$TABLE"
	fi
	sent=$(echo "$out" | awk '{print $2}')
	secs=$(echo "$out" | awk '{print $4}')
	awk -v m="$mode" -v s="$sent" -v t="$secs" -v d=$((after - before)) \
		'BEGIN { printf "%s %.0f %.0f\n", m, s / t, d / t }'
}

echo "# XDP (al_xdp_agent, native on veth) vs nftables (netdev ingress drop rule): $ROUNDS rounds x ${SECS}s, $(nproc) CPUs"
printf "%-6s %-5s %14s %14s\n" round mode "sent pkt/s" "dropped pkt/s"
: > "$TMP/results"
for r in $(seq "$ROUNDS"); do
	# Alternate which goes first, so drift does not favour one.
	if [ $((r % 2)) -eq 1 ]; then order="xdp nft"; else order="nft xdp"; fi
	for m in $order; do
		line=$(run "$m")
		echo "$line" >> "$TMP/results"
		set -- $line
		printf "%-6s %-5s %14s %14s\n" "$r" "$1" "$2" "$3"
	done
done
sort -k1,1 -k3,3n "$TMP/results" | awk '
	{ v[$1, ++n[$1]] = $3; s[$1, n[$1]] = $2 }
	END {
		for (m in n) { k = n[m]; med[m] = (k % 2) ? v[m, (k + 1) / 2] : (v[m, k / 2] + v[m, k / 2 + 1]) / 2 }
		printf "median dropped pkt/s: xdp %.0f, nft %.0f; xdp/nft %.2f\n", med["xdp"], med["nft"],
		       med["nft"] ? med["xdp"] / med["nft"] : 0
	}'
