# Shared setup and cleanup for the bench scripts (sourced, not run): checks, unique names, cgroups, airlockd, cleanup on any exit, medians.
# shellcheck shell=bash
#
# The script sets BENCH_NAME (the prefix of its messages) and cds to the top of the
# tree before it sources this file. The cleanup stops only the processes this run
# started (by pid: AIRLOCKD_PID, CLIENT_PID, those given to bench_track), removes only
# the cgroups it made (MADE_CGS) and the pins under its own PIN_ROOT, then TMP.

TMP=
BENCH_ROOT_WHY="airlockd loads BPF; the bench creates cgroups"
# A command airlockd runs under (bench/insn.sh: valgrind); words split on blanks.
read -ra AIRLOCKD_WRAPPER <<<"${BENCH_AIRLOCKD_WRAP:-}"
AIRLOCKD_PID=
CLIENT_PID=
PIN_ROOT=
MADE_CGS=()
BENCH_TRACKED=()

die() {
	echo "$BENCH_NAME: $*" >&2
	exit 1
}

# Root (BENCH_ROOT_WHY says what for) and the built binaries.
bench_preflight() {
	[ "$(id -u)" -eq 0 ] || die "needs root ($BENCH_ROOT_WHY)"
	{ [ -x build/airlockd ] && [ -x build/airlockctl ]; } || die "build/airlockd and build/airlockctl are missing (make all)"
}

# bench_apt_install PACKAGE...: installs what is missing with apt-get.
bench_apt_install() {
	echo "$BENCH_NAME: installing $* (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; } ||
		die "could not install $*"
}

# bench_names TAG: CG2 (the cgroup v2 mount), PIN_ROOT, AGENT_CG and PLAIN_CG named after
# TAG, which is unique to the run; none of them may exist yet.
bench_names() {
	local p
	CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
	[ -n "$CG2" ] || die "no cgroup v2 hierarchy in /proc/self/mounts"
	PIN_ROOT=/sys/fs/bpf/$1
	AGENT_CG=$CG2/$1-agent
	PLAIN_CG=$CG2/$1-plain
	for p in "$PIN_ROOT" "$AGENT_CG" "$PLAIN_CG"; do
		[ ! -e "$p" ] || die "$p exists already; not touching what this run did not create"
	done
}

# bench_make_cgroups CG...: makes each cgroup and marks it for removal.
bench_make_cgroups() {
	local cg
	for cg in "$@"; do
		mkdir "$cg"
		MADE_CGS+=("$cg")
	done
}

# bench_in_cg CG CMD...: CMD joins CG, proves it, and only then execs.
bench_in_cg() {
	local cg=$1
	shift
	sh -c 'echo $$ > "$1/cgroup.procs" && grep -qx "0::$2" /proc/$$/cgroup && shift 2 && exec "$@"' \
		sh "$cg" "${cg#"$CG2"}" "$@"
}

# bench_track PID SIGNAL TENTHS LAST: the cleanup stops PID (a process this run started)
# with SIGNAL, waits up to TENTHS tenths of a second, then sends LAST. Stopped last first.
bench_track() {
	BENCH_TRACKED=("$*" "${BENCH_TRACKED[@]}")
}

# bench_stop PID SIGNAL TENTHS LAST
bench_stop() {
	local pid=$1
	kill -"$2" "$pid" 2>/dev/null
	for _ in $(seq "$3"); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -"$4" "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

bench_freeport() {
	python3 -c 'import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

# Starts build/airlockd on $TMP/airlock.conf (under the command in AIRLOCKD_WRAPPER, if any;
# its banner in $TMP/airlockd.out, its log in $TMP/airlockd.err), waits for the whole banner
# and sets CTL, the airlockctl command line that talks to it.
bench_start_airlockd() {
	"${AIRLOCKD_WRAPPER[@]}" ./build/airlockd -c "$TMP/airlock.conf" >"$TMP/airlockd.out" 2>"$TMP/airlockd.err" &
	AIRLOCKD_PID=$!
	# shellcheck disable=SC2034 # used by the scripts that source this file
	CTL=(./build/airlockctl -s "$TMP/control.sock")
	local tenths=100
	[ ${#AIRLOCKD_WRAPPER[@]} -eq 0 ] || tenths=1200     # under valgrind it starts 50 times slower
	for _ in $(seq "$tenths"); do
		grep -q '^  pinned:' "$TMP/airlockd.out" 2>/dev/null && return 0
		kill -0 "$AIRLOCKD_PID" 2>/dev/null || die "airlockd exited: $(tail -n 5 "$TMP/airlockd.err")"
		sleep 0.1
	done
	die "airlockd did not start: $(tail -n 5 "$TMP/airlockd.err")"
}

# bench_pick_modes: BENCH_MODES (words), when set, replaces MODES (the script's own list of the
# modes it can run, set before the call), in its order; a mode not in that list is refused.
bench_pick_modes() {
	local m all=" ${MODES[*]} "
	[ -n "${BENCH_MODES:-}" ] || return 0
	read -ra MODES <<<"$BENCH_MODES"
	for m in "${MODES[@]}"; do
		[[ $all == *" $m "* ]] || die "BENCH_MODES: $m is not one of:$all"
	done
}

# The daemon's version from its banner.
bench_airlockd_version() {
	sed -n 's/^airlockd \(.*\) ready$/\1/p' "$TMP/airlockd.out"
}

# CPU clock ticks (user + system, all threads) process PID has used; 0 without one.
bench_cpu_ticks() {
	if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then
		awk '{ print $14 + $15 }' "/proc/$1/stat"
	else
		echo 0
	fi
}

# Busy CPU ticks of the whole host (user, nice, system, irq, softirq, steal: all but idle and
# iowait): what a run made every process and the kernel do, the proxy's peers included.
bench_host_busy_ticks() {
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# Profiles (BENCH_PERF_DIR set): bench_perf_start NAME SECONDS records the whole host (perf
# record -a, after a second's delay) into BENCH_PERF_DIR/NAME.data in the background while a
# run goes on; bench_perf_wait waits for it. BENCH_PERF_ARGS replaces "-g -F 499" (e.g.
# "-e raw_syscalls:sys_enter" to count each process's system calls).
BENCH_PERF_PID=
bench_perf_start() {
	[ -n "${BENCH_PERF_DIR:-}" ] || return 0
	[ "$2" -ge 2 ] || return 0
	# shellcheck disable=SC2086 # word splitting of the arguments is wanted
	perf record -q -a ${BENCH_PERF_ARGS:--g -F 499} -o "$BENCH_PERF_DIR/$1.data" -D 1000 -- \
		sleep $(($2 - 1)) >/dev/null 2>&1 &
	BENCH_PERF_PID=$!
}
bench_perf_wait() {
	[ -z "$BENCH_PERF_PID" ] || wait "$BENCH_PERF_PID" || true
	BENCH_PERF_PID=
}

bench_cleanup() {
	local rc=$? cg t
	set +e
	trap - EXIT INT TERM HUP
	if [ -n "$CLIENT_PID" ] && kill -0 "$CLIENT_PID" 2>/dev/null; then
		kill "$CLIENT_PID" 2>/dev/null
		wait "$CLIENT_PID" 2>/dev/null
	fi
	if [ -n "$AIRLOCKD_PID" ]; then
		# Asks our daemon (our socket) to remove its pins and stop.
		./build/airlockctl -s "$TMP/control.sock" down --pin-root "$PIN_ROOT" >/dev/null 2>&1
		for _ in $(seq 50); do
			kill -0 "$AIRLOCKD_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$AIRLOCKD_PID" 2>/dev/null; then
			echo "$BENCH_NAME: airlockd did not stop after 'down'; sending TERM" >&2
			bench_stop "$AIRLOCKD_PID" TERM 10 KILL
		fi
		wait "$AIRLOCKD_PID" 2>/dev/null
	fi
	# No daemon answers any more: this removes whatever pins are left.
	if [ -n "$PIN_ROOT" ] && [ -e "$PIN_ROOT" ]; then
		./build/airlockctl -s "${TMP:-/nonexistent}/control.sock" down --pin-root "$PIN_ROOT" >/dev/null 2>&1
	fi
	for t in "${BENCH_TRACKED[@]}"; do
		# shellcheck disable=SC2086 # "PID SIGNAL TENTHS LAST"
		bench_stop $t
	done
	if declare -F bench_cleanup_more >/dev/null; then
		bench_cleanup_more
	fi
	for cg in "${MADE_CGS[@]}"; do
		for _ in $(seq 50); do
			[ -n "$(cat "$cg/cgroup.procs" 2>/dev/null)" ] || break
			sleep 0.1
		done
		rmdir "$cg" 2>/dev/null || echo "$BENCH_NAME: could not remove cgroup $cg" >&2
	done
	[ -z "$PIN_ROOT" ] || [ ! -e "$PIN_ROOT" ] || echo "$BENCH_NAME: pins left behind under $PIN_ROOT" >&2
	[ -z "$TMP" ] || rm -rf "$TMP"
	exit "$rc"
}

# Cleanup on any exit; a signal ends the script with 128 + its number.
bench_traps() {
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
}

# Awk functions for the reports: median(key) of the space-separated numbers in vals[key]
# ("" when there are none), ratio(a, b) as "%.2f" ("-" without both), num(x, fmt) ("-" for "").
# shellcheck disable=SC2034 # used by the scripts that source this file
BENCH_AWK_LIB='
function median(key,    n, i, j, t, a) {
	n = split(vals[key], a, " ")
	if (n == 0)
		return ""
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
			t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
		}
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", a / b) }
function num(x, fmt) { return x == "" ? "-" : sprintf(fmt, x) }
'
