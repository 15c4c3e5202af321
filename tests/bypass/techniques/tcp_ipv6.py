"""Technique: TCP connect() on an IPv6 socket to an IPv6 address, e.g. ::1 (expected: steered)."""
import socket
import sys
import common

common.main(lambda: common.tcp_exchange(sys.argv[1], int(sys.argv[2]), socket.AF_INET6))
