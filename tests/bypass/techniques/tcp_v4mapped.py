"""Technique: TCP on an IPv6 socket to a v4-mapped address ::ffff:a.b.c.d (arrives at connect6; expected: steered)."""
import socket
import sys
import common

common.main(lambda: common.tcp_exchange("::ffff:" + sys.argv[1], int(sys.argv[2]), socket.AF_INET6))
