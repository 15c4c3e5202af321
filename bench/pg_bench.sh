#!/usr/bin/env bash
# PostgreSQL benchmark: pgbench -S through nothing (direct), pgbouncer, and Airlock (postgres resource, allow rule), measured in one run.
#
# Workloads (pgbench -S: one primary-key SELECT per transaction, -T seconds each):
#   c8   -c 8 clients          tps: Airlock's target is >= 0.90x pgbouncer
#   c1   -c 1 client           latency: Airlock's added time per statement (target <= 60 us)
#   C8   -c 8 with -C          a new connection for every transaction
# Modes, alternated within each round (the starting mode rotates), medians over the rounds
# (the -c 8 ratio also per round, from runs made side by side, and their median):
#   direct     pgbench in a plain cgroup -> the server
#   pgbouncer  pgbench in the plain cgroup -> pgbouncer (pool_mode session, scram) -> the server
#   airlock    pgbench in a pinned cgroup, dialling the server's own address; airlockd
#              terminates the session, classifies and audits every statement, allows it
#              (rule list: deny ddl, deny unbounded_write, allow read), logs in upstream
#              with the stored credential
#   relay      the same pinned cgroup and airlockd, dialling the server's second address,
#              which no resource names: airlockd relays the bytes (default relay) and records
#              the connection, not its statements. A reference, not a target: the kernel's
#              steering and airlockd's event loop without the PostgreSQL session (the bytes
#              move by splice(2), airlockd never reads them), so that the difference between
#              relay and airlock is what terminating the session and its statements cost.
# All plaintext (sslmode=disable, upstream_tls disable), so the three do the same work on
# the wire. The server is a throwaway PostgreSQL 15 cluster in a temp dir on 127.0.0.5.
# Everything is created under a unique name and removed on any exit; only processes this
# script started are stopped, by pid.
#
# Knobs (environment): BENCH_ROUNDS (3), BENCH_PG_T (10 s per run), BENCH_PG_SCALE (10),
# BENCH_PG_JOBS (pgbench -j for the 8-client runs; default min(8, CPUs)),
# BENCH_PGB_POOL_MODE (session), BENCH_PG_WORKLOADS (c8 c1 C8: which to run), BENCH_MODES
# (direct pgbouncer airlock relay: which to run), BENCH_AIRLOCK_CONF (extra airlockd config lines, e.g.
# "record_limit 0" to measure without session recordings), BENCH_TMPDIR (/tmp: where the cluster
# and airlockd's store go; /dev/shm takes the disk out of the comparison).
# Besides the proxy's own CPU per transaction, each run reports the host's: the busy CPU time of
# every process and the kernel (/proc/stat) over the transactions, which also counts what the
# proxy makes others do (the server's wake-ups, the store's writeback); the server's (this
# cluster's processes) and the client's (pgbench's cgroup), which show whether a proxy makes
# them work harder; and for Airlock the bytes
# it wrote to storage per transaction (/proc/PID/io write_bytes: the store's WAL and checkpoints).
# BENCH_PERF_DIR: also record a profile of the whole host during each run there,
# MODE-WORKLOAD-ROUND.data (bench/lib.sh: bench_perf_start), to see where its CPU goes.

set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_NAME=pg_bench
# shellcheck source=bench/lib.sh
. bench/lib.sh

ROUNDS=${BENCH_ROUNDS:-3}
DUR=${BENCH_PG_T:-10}
SCALE=${BENCH_PG_SCALE:-10}
NCPU=$(nproc)
JOBS=${BENCH_PG_JOBS:-$((NCPU < 8 ? NCPU : 8))}
POOL_MODE=${BENCH_PGB_POOL_MODE:-session}
PGBIN=/usr/lib/postgresql/15/bin
ADDR=127.0.0.5
RELAY_ADDR=127.0.0.6
PW='s3cret pw'

bench_preflight
for n in "$ROUNDS" "$DUR" "$SCALE" "$JOBS"; do
	case "$n" in '' | *[!0-9]*) die "BENCH_ROUNDS, BENCH_PG_T, BENCH_PG_SCALE and BENCH_PG_JOBS must be numbers" ;; esac
done
{ [ "$ROUNDS" -ge 1 ] && [ "$DUR" -ge 2 ] && [ "$SCALE" -ge 1 ] && [ "$JOBS" -ge 1 ]; } || die "numbers too small"
{ [ -x "$PGBIN/initdb" ] && command -v pgbench >/dev/null && command -v psql >/dev/null; } ||
	die "PostgreSQL 15 is missing (scripts/deps.sh installs postgresql)"
if ! command -v pgbouncer >/dev/null; then
	bench_apt_install pgbouncer
	# Debian starts a system pgbouncer on 6432; the bench runs its own and leaves that one be.
fi
PGBOUNCER=$(command -v pgbouncer)

TAG=airlock-pgbench-$$
bench_names "$TAG"
PG_PID=
PGB_PID=
bench_traps

TMP=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/$TAG.XXXXXX")
chmod 755 "$TMP"
# libpq settings from the caller's environment would change what is measured.
for v in $(compgen -e | grep '^PG' || true); do unset "$v"; done
export PGPASSFILE=$TMP/no-pgpass PGCONNECT_TIMEOUT=10

# Runs a command as the OS user postgres; setpriv execs it, so "$!" of
# "as_postgres ... &" would be a subshell: background servers use AS_PG directly.
AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups)
as_postgres() {
	"${AS_PG[@]}" "$@"
}

# ---- the server ----

SRV_PORT=$(bench_freeport "$ADDR")
mkdir "$TMP/pg" "$TMP/pg/sock" "$TMP/pgb"
chmod 700 "$TMP/pg/sock"
chown -R postgres:postgres "$TMP/pg" "$TMP/pgb"
as_postgres "$PGBIN/initdb" -D "$TMP/pg/data" -U postgres -E UTF8 --no-locale --no-sync \
	--auth-local=trust --auth-host=scram-sha-256 >"$TMP/initdb.log" 2>&1 ||
	die "initdb failed: $(tail -n 5 "$TMP/initdb.log")"
cat >>"$TMP/pg/data/postgresql.conf" <<EOF
# airlock pg_bench
listen_addresses = '$ADDR,$RELAY_ADDR'
port = $SRV_PORT
unix_socket_directories = '$TMP/pg/sock'
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
max_connections = 100
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
cat >"$TMP/pg/data/pg_hba.conf" <<EOF
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host all all $ADDR/32 scram-sha-256
host all all $RELAY_ADDR/32 scram-sha-256
EOF
"${AS_PG[@]}" "$PGBIN/postgres" -D "$TMP/pg/data" >"$TMP/postgres.log" 2>&1 &
PG_PID=$!
# postgres: SIGINT is the fast shutdown.
bench_track "$PG_PID" INT 100 QUIT
for _ in $(seq 100); do
	pg_isready -q -h "$TMP/pg/sock" -p "$SRV_PORT" && break
	kill -0 "$PG_PID" 2>/dev/null || break
	sleep 0.1
done
pg_isready -q -h "$TMP/pg/sock" -p "$SRV_PORT" || die "postgres did not start: $(tail -n 5 "$TMP/postgres.log")"
psql -X -q -h "$TMP/pg/sock" -p "$SRV_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<EOF
CREATE ROLE app LOGIN PASSWORD '$PW';
CREATE DATABASE bench OWNER app;
EOF
PGPASSWORD=$PW pgbench -i -q -s "$SCALE" "host=$ADDR port=$SRV_PORT dbname=bench user=app sslmode=disable" \
	>"$TMP/pgbench-init.log" 2>&1 || die "pgbench -i failed: $(tail -n 5 "$TMP/pgbench-init.log")"

# ---- pgbouncer ----

PGB_PORT=$(bench_freeport "$ADDR")
printf '"app" "%s"\n' "$PW" >"$TMP/pgb/userlist.txt"
cat >"$TMP/pgb/pgbouncer.ini" <<EOF
[databases]
bench = host=$ADDR port=$SRV_PORT dbname=bench

[pgbouncer]
listen_addr = $ADDR
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $TMP/pgb/userlist.txt
pool_mode = $POOL_MODE
max_client_conn = 200
default_pool_size = 20
logfile = $TMP/pgb/pgbouncer.log
log_connections = 0
log_disconnections = 0
EOF
chown -R postgres:postgres "$TMP/pgb"
chmod 600 "$TMP/pgb/userlist.txt"
"${AS_PG[@]}" "$PGBOUNCER" "$TMP/pgb/pgbouncer.ini" >"$TMP/pgb/stdout.log" 2>&1 &
PGB_PID=$!
bench_track "$PGB_PID" TERM 100 QUIT
for _ in $(seq 50); do
	PGPASSWORD=$PW psql -X -At -d "host=$ADDR port=$PGB_PORT dbname=bench user=app sslmode=disable" \
		-c 'SELECT 1' >/dev/null 2>&1 && break
	kill -0 "$PGB_PID" 2>/dev/null || break
	sleep 0.1
done
PGPASSWORD=$PW psql -X -At -d "host=$ADDR port=$PGB_PORT dbname=bench user=app sslmode=disable" \
	-c 'SELECT 1' >/dev/null 2>&1 ||
	die "pgbouncer did not start: $(tail -n 5 "$TMP/pgb/pgbouncer.log" "$TMP/pgb/stdout.log" 2>/dev/null)"

# ---- airlockd ----

STEER_PORT=$(bench_freeport 127.0.0.1)
mkdir -m 700 "$TMP/ca"
(umask 077 && printf 'pgcred user=app password="%s"\n' "$PW" >"$TMP/secrets.conf")
cat >"$TMP/airlock.conf" <<EOF
# airlockd configuration for one pg_bench run
steer_port $STEER_PORT
control_socket "$TMP/control.sock"
store "$TMP/airlock.db"
pin_root "$PIN_ROOT"
console_listen off
default relay
secrets "$TMP/secrets.conf"
${BENCH_AIRLOCK_CONF:-}
ca_dir "$TMP/ca"
resource "pg" {
    address $ADDR
    port $SRV_PORT
    protocol postgres
    upstream_tls disable
    credential "pgcred"
    rule deny kind ddl
    rule deny unbounded_write
    rule allow kind read
}
EOF
bench_start_airlockd
bench_make_cgroups "$AGENT_CG" "$PLAIN_CG"
"${CTL[@]}" pin "$AGENT_CG" >/dev/null || die "airlockctl pin failed"

# Statements airlockd has audited so far (the store is read-only to us): its rows alone and each
# batch's count by decision (counting the statements view would read every row's JSON: seconds
# a run once the store holds millions).
audited() {
	python3 -c 'import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=10)
print(db.execute("SELECT (SELECT count(*) FROM statement_rows) + (SELECT coalesce(sum(j.value), 0)"
                 " FROM command_batches b, json_each(b.decisions) j WHERE b.kind = ?)",
                 ("statements",)).fetchone()[0])' "$TMP/airlock.db" 2>/dev/null || echo "?"
}

# ---- runs ----

CLK_TCK=$(getconf CLK_TCK)

# CPU ticks (user + system) of this run's PostgreSQL server: the postmaster's backends that still
# run and those it has reaped (a -C run's end with their connections), not any other cluster's.
server_ticks() {
	local t p
	t=$(awk '{ print $16 + $17 }' "/proc/$PG_PID/stat")
	for p in $(pgrep -P "$PG_PID" || true); do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

# per_tx_us TICKS0 TICKS1 N: the CPU ticks between the two readings, in us per transaction.
per_tx_us() {
	awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" -v n="$3" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }'
}

# CPU time (us) the client's cgroup has used.
client_usec() {
	awk '$1 == "usage_usec" { print $2 }' "$1/cpu.stat"
}

# Bytes airlockd has had written to storage (its store); nothing for the other modes.
written_bytes() {
	[ "$1" = airlock ] || [ "$1" = relay ] || return 0
	awk '/^write_bytes:/ { print $2 }' "/proc/$AIRLOCKD_PID/io" 2>/dev/null
}

# client MODE WORKLOAD: one pgbench run; its output goes to $TMP/client.out.
client() {
	local mode=$1 wl=$2 cg port pw rc=0 args host=$ADDR
	case "$mode" in
	direct) cg=$PLAIN_CG port=$SRV_PORT pw=$PW ;;
	pgbouncer) cg=$PLAIN_CG port=$PGB_PORT pw=$PW ;;
	airlock) cg=$AGENT_CG port=$SRV_PORT pw=not-the-password ;;
	relay) cg=$AGENT_CG port=$SRV_PORT pw=$PW host=$RELAY_ADDR ;;   # relayed: the agent's own login
	esac
	case "$wl" in
	c8) args="-c 8 -j $JOBS" ;;
	c1) args="-c 1 -j 1" ;;
	C8) args="-C -c 8 -j $JOBS" ;;
	esac
	# shellcheck disable=SC2086 # word splitting of args is wanted
	PGPASSWORD=$pw bench_in_cg "$cg" timeout $((DUR + 60)) pgbench -n -S -M simple $args -T "$DUR" \
		"host=$host port=$port dbname=bench user=app sslmode=disable" \
		>"$TMP/client.out" 2>"$TMP/client.err" &
	CLIENT_PID=$!
	wait "$CLIENT_PID" || rc=$?
	CLIENT_PID=
	if [ "$rc" -ne 0 ]; then
		echo "$mode $wl exited $rc: $(tail -n 3 "$TMP/client.err" | tr '\n' ' ')" >>"$TMP/anomalies"
	fi
	if grep -q 'number of failed transactions: [1-9]' "$TMP/client.out"; then
		echo "$mode $wl: $(grep 'number of failed' "$TMP/client.out")" >>"$TMP/anomalies"
	fi
}

read -ra WORKLOADS <<<"${BENCH_PG_WORKLOADS:-c8 c1 C8}"
MODES=(direct pgbouncer airlock relay)
bench_pick_modes
: >"$TMP/results"
: >"$TMP/anomalies"

echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{ print $3 }') on $ADDR:$SRV_PORT (scale $SCALE), pgbouncer $("$PGBOUNCER" --version | awk 'NR == 1 { print $2 }') on $ADDR:$PGB_PORT ($POOL_MODE pools)"
echo "airlockd $(bench_airlockd_version) (pid $AIRLOCKD_PID), store on $(df -T "$TMP" | awk 'NR == 2 { print $2 }')"
echo "$NCPU CPUs, kernel $(uname -r); pgbench -S -T $DUR, -j $JOBS for 8 clients; $ROUNDS rounds; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
others=$(pgrep -x airlockd | grep -vx "$AIRLOCKD_PID" | tr '\n' ' ' || true)
[ -z "$others" ] || echo "note: other airlockd processes run on this host (pids ${others% }); figures may be disturbed"

echo "warm-up..."
for mode in "${MODES[@]}"; do
	DUR_SAVE=$DUR
	DUR=2
	client "$mode" c8
	DUR=$DUR_SAVE
done
: >"$TMP/anomalies.warmup"
[ ! -s "$TMP/anomalies" ] || { cp "$TMP/anomalies" "$TMP/anomalies.warmup"; : >"$TMP/anomalies"; }

START=$(date +%s)
for round in $(seq "$ROUNDS"); do
	for wl in "${WORKLOADS[@]}"; do
		line="round $round/$ROUNDS $wl"
		for ((k = 0; k < ${#MODES[@]}; k++)); do
			mode=${MODES[$(((round - 1 + k) % ${#MODES[@]}))]}
			before=$(audited)
			proxy=
			[ "$mode" = airlock ] || [ "$mode" = relay ] && proxy=$AIRLOCKD_PID
			[ "$mode" = pgbouncer ] && proxy=$PGB_PID
			ccg=$PLAIN_CG
			[ "$mode" = airlock ] || [ "$mode" = relay ] && ccg=$AGENT_CG
			cpu0=$(bench_cpu_ticks "$proxy")
			host0=$(bench_host_busy_ticks)
			srv0=$(server_ticks)
			cl0=$(client_usec "$ccg")
			wr0=$(written_bytes "$mode")
			bench_perf_start "$mode-$wl-$round" "$DUR"
			client "$mode" "$wl"
			bench_perf_wait
			# the backends of a run exit (and are reaped) after pgbench does; the audit rows
			# are committed in batches
			sleep 0.2
			cpu1=$(bench_cpu_ticks "$proxy")
			host1=$(bench_host_busy_ticks)
			srv1=$(server_ticks)
			cl1=$(client_usec "$ccg")
			wr1=$(written_bytes "$mode")
			after=$(audited)
			tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$TMP/client.out" | head -n 1)
			lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$TMP/client.out" | head -n 1)
			n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$TMP/client.out")
			if [ "$before" != "?" ] && [ "$after" != "?" ] && [ -n "$n" ]; then
				got=$((after - before))
				if [ "$mode" = airlock ] && [ "$got" -lt "$n" ]; then
					echo "airlock $wl round $round: $n transactions but only $got statements audited" >>"$TMP/anomalies"
				elif [ "$mode" != airlock ] && [ "$got" -ne 0 ]; then
					echo "$mode $wl round $round: $got statements audited (should bypass airlockd)" >>"$TMP/anomalies"
				fi
			fi
			[ -n "$tps" ] || continue
			cpu=
			if [ -n "$proxy" ] && [ -n "$n" ] && [ "$n" -gt 0 ]; then
				# The proxy's CPU time (user + system) per transaction, in us.
				cpu=$(per_tx_us "$cpu0" "$cpu1" "$n")
			fi
			host=
			wr=
			srv=
			cl=
			if [ -n "$n" ] && [ "$n" -gt 0 ]; then
				host=$(per_tx_us "$host0" "$host1" "$n")
				srv=$(per_tx_us "$srv0" "$srv1" "$n")
				cl=$(awk -v a="$cl0" -v b="$cl1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')
				[ -z "$wr0" ] || wr=$(awk -v a="$wr0" -v b="$wr1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / 1024 / n }')
			fi
			echo "$mode $wl $round tps=$tps lat_ms=${lat:-0}${cpu:+ cpu_us=$cpu}${host:+ host_us=$host}${srv:+ server_us=$srv}${cl:+ client_us=$cl}${wr:+ wr_kib=$wr}" >>"$TMP/results"
			line+=$(printf '  %s %.0f tps' "$mode" "$tps")
			[ -z "$cpu" ] || line+=$(printf ' (%s us cpu/tx)' "$cpu")
		done
		echo "$line"
	done
done
ELAPSED=$(($(date +%s) - START))

# ---- report ----

echo
echo "Medians of $ROUNDS rounds (pgbench -S: 1 statement per transaction):"
awk -v rounds="$ROUNDS" "$BENCH_AWK_LIB"'
function us(tps) { return (tps == "" || tps == 0) ? "-" : sprintf("%.1f", 1e6 / tps) }
# " MODE X us" for each of the modes (words), X the median of field in workload wl ("X/Y" with a
# second field).
function per_mode(wl, field, field2, modes,    m, n, i, out) {
	n = split(modes, m, " ")
	out = ""
	for (i = 1; i <= n; i++) {
		out = out " " m[i] " " num(median(wl SUBSEP field SUBSEP m[i]), "%.1f")
		if (field2 != "")
			out = out "/" num(median(wl SUBSEP field2 SUBSEP m[i]), "%.1f")
		out = out " us"
	}
	return out
}
{
	for (i = 4; i <= NF; i++) {
		split($i, kv, "=")
		vals[$2 SUBSEP kv[1] SUBSEP $1] = vals[$2 SUBSEP kv[1] SUBSEP $1] " " kv[2]
	}
}
END {
	title["c8"] = "-S -c 8"
	title["c1"] = "-S -c 1"
	title["C8"] = "-S -C -c 8 (connect each tx)"
	printf "%-30s %10s %10s %10s %10s  %9s %9s %9s %9s\n", "workload (tps)", "direct", "pgbouncer", "airlock",
	       "relay", "al/direct", "al/pgb", "pgb/direct", "rel/pgb"
	split("c8 c1 C8", wls, " ")
	for (w = 1; w <= 3; w++) {
		wl = wls[w]
		d = median(wl SUBSEP "tps" SUBSEP "direct")
		b = median(wl SUBSEP "tps" SUBSEP "pgbouncer")
		a = median(wl SUBSEP "tps" SUBSEP "airlock")
		r = median(wl SUBSEP "tps" SUBSEP "relay")
		T[wl, "d"] = d; T[wl, "b"] = b; T[wl, "a"] = a; T[wl, "r"] = r
		printf "%-30s %10s %10s %10s %10s  %9s %9s %9s %9s\n", title[wl], num(d, "%.0f"), num(b, "%.0f"),
		       num(a, "%.0f"), num(r, "%.0f"), ratio(a, d), ratio(a, b), ratio(b, d), ratio(r, b)
	}
	# One client, one statement per transaction: the time per statement is 1/tps.
	printf "\n-c 1 time per statement (1/tps): direct %s us, pgbouncer %s us, airlock %s us\n",
	       us(T["c1", "d"]), us(T["c1", "b"]), us(T["c1", "a"])
	if (T["c1", "a"] != "" && T["c1", "d"] != "") {
		ov = 1e6 / T["c1", "a"] - 1e6 / T["c1", "d"]
		ovb = (T["c1", "b"] != "") ? 1e6 / T["c1", "a"] - 1e6 / T["c1", "b"] : ""
		printf "airlock adds %.1f us per statement over direct (target <= 60 us: %s)", ov, (ov <= 60 ? "met" : "MISSED")
		if (ovb != "")
			printf ", %+.1f us vs pgbouncer", ovb
		printf "\n"
	}
	printf "proxy CPU per transaction (user+system, median):"
	for (w = 1; w <= 3; w++)
		printf "  %s%s", wls[w], per_mode(wls[w], "cpu_us", "", "pgbouncer airlock relay")
	printf "\n"
	printf "host CPU per transaction (every process and the kernel, busy, median):"
	for (w = 1; w <= 3; w++)
		printf "  %s%s", wls[w], per_mode(wls[w], "host_us", "", "direct pgbouncer airlock relay")
	printf "\n"
	# Where a proxy costs: when the server and the client spend the same behind either proxy,
	# the difference is in the proxy itself.
	printf "server (postgres) and client (pgbench) CPU per transaction (median):"
	for (w = 1; w <= 3; w++)
		printf "  %s%s", wls[w], per_mode(wls[w], "server_us", "client_us", "direct pgbouncer airlock relay")
	printf "\n"
	printf "airlockd wrote to storage per transaction (median):"
	for (w = 1; w <= 3; w++)
		printf "  %s %s KiB", wls[w], num(median(wls[w] SUBSEP "wr_kib" SUBSEP "airlock"), "%.2f")
	printf "\n"
	if (T["c8", "a"] != "" && T["c8", "b"] != "" && T["c8", "b"] > 0) {
		r = T["c8", "a"] / T["c8", "b"]
		printf "airlock / pgbouncer at -c 8: %.2f (target >= 0.90: %s)\n", r, (r >= 0.90 ? "met" : "MISSED")
	}
	if (T["c8", "r"] != "" && T["c8", "b"] != "" && T["c8", "b"] > 0)
		printf "relay / pgbouncer at -c 8: %.2f (airlockd relaying bytes: what is left of airlock'"'"'s gap is the statements)\n",
		       T["c8", "r"] / T["c8", "b"]
	# The modes alternate within a round: the ratio of a round compares runs made side by side.
	na = split(vals["c8" SUBSEP "tps" SUBSEP "airlock"], av, " ")
	nb = split(vals["c8" SUBSEP "tps" SUBSEP "pgbouncer"], bv, " ")
	if (na > 0 && na == nb) {
		printf "  per round:"
		for (i = 1; i <= na; i++) {
			pr[i] = bv[i] > 0 ? av[i] / bv[i] : 0
			printf " %.2f", pr[i]
		}
		for (i = 2; i <= na; i++)
			for (j = i; j > 1 && pr[j - 1] > pr[j]; j--) {
				t = pr[j]; pr[j] = pr[j - 1]; pr[j - 1] = t
			}
		printf " (median %.2f)\n", na % 2 ? pr[(na + 1) / 2] : (pr[na / 2] + pr[na / 2 + 1]) / 2
	}
}' "$TMP/results"

echo
echo "airlockd after the run:"
"${CTL[@]}" status | sed 's/^/  /'
echo "  statements audited: $(audited)"
other=$(grep -v -e ': pinned /' -e ': unpinned /' "$TMP/airlockd.err" || true)
if [ -n "$other" ]; then
	echo "airlockd stderr ($(printf '%s\n' "$other" | wc -l) lines, last 10):"
	printf '%s\n' "$other" | tail -n 10 | sed 's/^/  /'
fi
if [ -s "$TMP/anomalies" ] || [ -s "$TMP/anomalies.warmup" ]; then
	echo "ANOMALIES:"
	cat "$TMP/anomalies.warmup" "$TMP/anomalies" | sed 's/^/  /'
fi
echo "measured in ${ELAPSED}s; load average after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the host skews the figures)"
