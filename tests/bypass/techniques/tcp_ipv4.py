"""Technique: plain TCP connect() to an IPv4 address (expected: steered into airlockd)."""
import sys
import common

common.main(lambda: common.tcp_exchange(sys.argv[1], int(sys.argv[2])))
