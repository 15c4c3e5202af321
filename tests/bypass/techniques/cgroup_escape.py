"""Technique: leave the cgroup by writing our own pid to another cgroup's cgroup.procs.

argv: CGROUP_DIR [CGROUP_DIR ...], tried in order. Success = a write went
through and /proc/self/cgroup names that cgroup afterwards. The result
carries the cgroup we end up in.
"""
import os
import sys
import common


def v2_cgroup():
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return None


def attempt():
    start = v2_cgroup()
    last = None
    for d in sys.argv[1:]:
        try:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write("%d\n" % os.getpid())
        except OSError as e:
            last = e
            continue
        now = v2_cgroup()
        if now != start:
            return {"cgroup": now, "start": start, "moved_to": d}
    if last is None:
        last = OSError(0, "no target given")
    e = common.error_fields(last)
    return {"ok": False, "cgroup": v2_cgroup(), "start": start, **e}


common.main(attempt)
