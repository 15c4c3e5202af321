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
BENCH_NAME=xdp_vs_nft
# shellcheck source=bench/lib.sh
. bench/lib.sh

ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECS:-3}

BENCH_ROOT_WHY="namespaces, XDP, nftables"
bench_preflight
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

MADE_NS=()

# Run by bench_cleanup once airlockd is stopped: the namespaces this run made go, and with
# them the veth pair and the nftables table.
bench_cleanup_more() {
	local ns
	for ns in "${MADE_NS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
}
bench_traps

cc -O2 -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -o "$TMP/udpflood" bench/udpflood.c
cc -O2 -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -o "$TMP/nftdrop" bench/nftdrop.c \
	$(pkg-config --cflags --libs libnftnl libmnl)

for ns in "$NS_S" "$NS_R"; do
	ip netns add "$ns"
	MADE_NS+=("$ns")
done
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
AIRLOCKD_WRAPPER=(nsenter --net="/run/netns/$NS_R")
bench_start_airlockd

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
