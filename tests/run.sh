#!/usr/bin/env bash
# The one test runner (`make test`): runs every tier, prints each result line, ends with "N passed, N failed".
#
# Contract with the tests: a test program prints one line per case,
# "ok - NAME" or "not ok - NAME: why", on stdout, and exits non-zero if any
# case failed. Anything else it prints is passed through and not counted.
# A program that exits non-zero without printing a "not ok", that dies from
# a signal, or that overruns its time limit counts as one more failure
# ("not ok - FILE: exited N").

set -u
cd "$(dirname "$0")/.." || exit 1

PY=/usr/bin/python3
UNIT_TIMEOUT=${AIRLOCK_UNIT_TIMEOUT:-300}
INTEGRATION_TIMEOUT=${AIRLOCK_INTEGRATION_TIMEOUT:-420}
VM_TIMEOUT=${AIRLOCK_VM_SUITE_TIMEOUT:-1800}

passed=0
failed=0
tmp=$(mktemp -d /tmp/airlock-run.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT

fail_line() {
	echo "not ok - $1"
	failed=$((failed + 1))
}

# run_one LABEL TIMEOUT CMD...: runs CMD, echoes its stdout as it comes, counts its result lines.
run_one() {
	local label=$1 limit=$2 out="$tmp/out" rc p f
	shift 2
	echo "# $label"
	# --kill-after: a test that ignores SIGTERM during its cleanup still ends.
	timeout --kill-after=30 "$limit" "$@" </dev/null | tee "$out"
	rc=${PIPESTATUS[0]}
	p=$(grep -cE '^ok( |$)' "$out")
	f=$(grep -cE '^not ok( |$)' "$out")
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		fail_line "$label: exited $rc (timed out after ${limit}s)"
	elif [ "$rc" -gt 128 ]; then
		fail_line "$label: exited $rc (killed by signal $((rc - 128)))"
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		fail_line "$label: exited $rc"
	fi
}

# Unit tests: C binaries built by `make unit`, one per tests/unit/test_*.c
# (a binary whose source is gone is stale, not a test).
shopt -s nullglob
unit=()
for src in tests/unit/test_*.c; do
	unit+=("build/tests/$(basename "$src" .c)")
done
if [ ${#unit[@]} -eq 0 ]; then
	fail_line "build/tests: no unit test binaries (run make unit)"
fi
for t in "${unit[@]}"; do
	if [ ! -x "$t" ]; then
		fail_line "$t: not built (make unit)"
		continue
	fi
	run_one "$t" "$UNIT_TIMEOUT" "$t"
done
# The same under ThreadSanitizer, for those that drive the store's threads (Makefile TSAN_BIN).
for t in build/tests/tsan/test_audit build/tests/tsan/test_store; do
	if [ ! -x "$t" ]; then
		fail_line "$t: not built (make unit)"
		continue
	fi
	run_one "$t (tsan)" "$UNIT_TIMEOUT" env TSAN_OPTIONS="halt_on_error=1 exitcode=66" "$t"
done

# Fuzz drivers: each builds from its one documented command and runs its seed corpus once.
for t in tests/fuzz/test_*.sh; do
	run_one "$t" "$UNIT_TIMEOUT" bash "$t"
done

# Integration, bypass and console (headless Chromium) tests: real daemon, real cgroup; root only.
for t in tests/integration/test_*.py tests/bypass/test_*.py tests/bypass/test_*.sh tests/console/test_*.py; do
	if [ "$(id -u)" -ne 0 ]; then
		fail_line "$t: skipped, needs root (it loads BPF and creates a cgroup)"
		continue
	fi
	case "$t" in
	*.py) run_one "$t" "$INTEGRATION_TIMEOUT" "$PY" -u "$t" ;;
	*.sh) run_one "$t" "$INTEGRATION_TIMEOUT" bash "$t" ;;
	esac
done

# The kernel-facing suites again on Debian 12's own kernel, in a VM (tests/vm/run.sh).
for t in tests/vm/test_*.sh; do
	if [ "$(id -u)" -ne 0 ]; then
		fail_line "$t: skipped, needs root"
		continue
	fi
	run_one "$t" "$VM_TIMEOUT" bash "$t"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
