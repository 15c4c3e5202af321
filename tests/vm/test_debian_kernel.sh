#!/usr/bin/env bash
# The kernel-facing suites again, on the kernel Debian 12 ships (6.1; tests/vm/run.sh boots
# it), which a user's fresh Debian 12 host runs: this machine's kernel is newer, and the BPF
# programs, their helpers and the fences must hold on both. Runs, in one VM:
#   tests/integration/test_steer.py    steering, pins, restart and reboot re-adoption
#   tests/integration/test_netns.py    XDP on veth, nftables TPROXY, policy routing
#   tests/bypass/test_bypass.py        every way around the fence
# Each result line comes out with the kernel's release in front of its name,
# "ok - [6.1.0-56-amd64] ...". A suite that fails without a failed case counts as one failure.
# Left out here, as the host's run has them: test_steer's cases of the daemon's own logic that
# touch nothing the kernel version changes (resolvers, default deny, refusing dangerous pins, a
# bulk echo), which in the emulator took 75 s, a sixth of the VM's time.
set -u
cd "$(dirname "$0")/../.." || exit 1
suites="tests/integration/test_steer.py tests/integration/test_netns.py tests/bypass/test_bypass.py"
exec bash tests/vm/run.sh -t "${AIRLOCK_VM_TIMEOUT:-1500}" bash -c '
k=$(uname -r)
rc=0
for t in '"$suites"'; do
	echo "# $t on $k"
	AIRLOCK_SKIP_CASES=case_default_resolvers,case_default_deny,case_refuse_dangerous_pins,case_bulk \
		python3 -u "$t" </dev/null | sed -u "s/^\(not ok\|ok\) - /\1 - [$k] /" | tee /tmp/suite.out
	r=${PIPESTATUS[0]}
	if [ "$r" -ne 0 ]; then
		rc=1
		# a failure with no case to show for it (tests/run.sh counts it the same way)
		grep -q "^not ok - " /tmp/suite.out || echo "not ok - [$k] $t: exited $r"
	fi
done
exit $rc'
