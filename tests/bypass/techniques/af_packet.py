"""Technique: an AF_PACKET socket, the way to send hand-made frames below IP.

cgroup/sock_create never runs for AF_PACKET (only inet/inet6 call it), so
the fence cannot see this socket; what stops a plain user is the kernel
itself: AF_PACKET needs CAP_NET_RAW (EPERM without it).
With CAP_NET_RAW (outside the threat model) it sends an IPv4/UDP packet
as a hand-made frame on lo to HOST:PORT, where a UDP socket of its own
waits, and succeeds if that socket receives it. The kernel treats a frame
arriving on lo with a 127/8 destination as martian unless
net.ipv4.conf.lo.route_localnet is 1, so the driver runs it in a private
network namespace with that set (never in the host's).
argv: HOST PORT [send-only]. send-only: no socket of its own waits (the
driver's receiver, outside the pinned cgroup, does); ok = the frame was sent.
A socket of its own in a pinned cgroup receives nothing: the ingress program
drops what is not from the steer listener or a resolver, however it came.
"""
import socket
import struct
import sys
import common

ETH_P_IP = 0x0800


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff


def attempt():
    host, port = sys.argv[1], int(sys.argv[2])
    send_only = sys.argv[3:4] == ["send-only"]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    if not send_only:
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind((host, port))
    rxport = 9
    tok = common.token()
    data = ("ping %s\n" % tok).encode()
    udp = struct.pack("!HHHH", rxport, port, 8 + len(data), 0) + data
    # Not an address of the interface: a "local" source arriving from outside is martian.
    src, dst = socket.inet_aton("127.0.0.7"), socket.inet_aton(host)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s.sendto(ip + udp, ("lo", ETH_P_IP, 0, 0, b"\0" * 6))
    if send_only:
        return {"token": tok, "sent": True}
    rx.settimeout(1.5)
    got = rx.recv(2048)
    if got != data:
        raise OSError(71, "received something else: %r" % got[:60])
    return {"token": tok}


common.main(attempt)
