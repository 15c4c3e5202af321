#!/usr/bin/env bash
# `make test`: every fuzz driver builds from its documented command (tests/fuzz/build.sh) and runs its whole seed corpus once under ASan+UBSan (no fuzzing: that is `build/fuzz_* -max_total_time=N`).
set -u
cd "$(dirname "$0")/../.."
rc=0
for d in pg http k8s_stream; do
	log=$(mktemp /tmp/airlock-fuzz-seeds.XXXXXX)
	if ! bash tests/fuzz/build.sh "$d" >"$log" 2>&1; then
		echo "not ok - fuzz: $d driver builds: $(grep -m1 -E 'error|undefined' "$log")"
		rc=1
	elif ! "build/fuzz_$d" -runs=0 "tests/fuzz/corpus/$d" >"$log" 2>&1; then
		echo "not ok - fuzz: $d driver runs its seed corpus: $(grep -m1 -E 'ERROR|runtime error|deadly' "$log")"
		rc=1
	else
		echo "ok - fuzz: $d driver builds and runs its $(find "tests/fuzz/corpus/$d" -type f | wc -l) seeds"
	fi
	rm -f "$log"
done
exit $rc
