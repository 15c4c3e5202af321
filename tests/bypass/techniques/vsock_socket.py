"""Technique: socket(AF_VSOCK) - the VM-to-hypervisor channel, a family cgroup/sock_create never sees.

Safety: this only creates the socket and never connects (a connect would
talk to the hypervisor, which the tests must not touch). Success = the
socket exists in a pinned cgroup.
"""
import socket
import common


def attempt():
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.close()
    return {}


common.main(attempt)
