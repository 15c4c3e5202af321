"""Technique: a loopback destination sent out a real interface (device binding).

A socket bound to a device (SO_BINDTODEVICE; for UDP also IP_UNICAST_IF or
an IP_PKTINFO ifindex on sendmsg) has its route looked up on that device
only: a 127/8 destination then matches no local route there, and the kernel
sends it to the device's gateway. The socket hooks see what they allow (DNS
to the loopback resolver, a connect steered to 127.0.0.1:<steer port>), so
only the egress backstop, which knows the device, can stop the frame.
argv: MODE IFNAME HOST PORT, MODE one of
  udp_bindtodevice, udp_unicast_if, udp_pktinfo   sendto/sendmsg one datagram
  tcp_bindtodevice                                connect() (1.5 s), then one line
  tcp_fastopen_bindtodevice                       sendto(MSG_FASTOPEN), TCP_FASTOPEN_NO_COOKIE
ok = the send call returned (UDP) or the connection completed (TCP); the
driver watches the interface's peer to see whether anything left.
"""
import socket
import struct
import sys
import common

IP_UNICAST_IF = 50
IP_PKTINFO = 8
TCP_FASTOPEN_NO_COOKIE = 34


def attempt():
    mode, ifname, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ifindex = socket.if_nametoindex(ifname)
    tok = common.token()
    data = ("ping %s\n" % tok).encode()
    r = {"token": tok, "mode": mode, "ifindex": ifindex}
    udp = mode.startswith("udp_")
    s = socket.socket(common.family_of(host), socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    try:
        step = "setsockopt"
        try:
            if mode == "udp_unicast_if":
                # IPv4: the index in network byte order.
                s.setsockopt(socket.IPPROTO_IP, IP_UNICAST_IF, struct.pack("!I", ifindex))
            elif mode != "udp_pktinfo":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            if mode == "tcp_fastopen_bindtodevice":
                s.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_NO_COOKIE, 1)
            step = "send"
            if mode == "udp_pktinfo":
                # struct in_pktinfo: ipi_ifindex, ipi_spec_dst, ipi_addr
                cmsg = struct.pack("@i4s4s", ifindex, b"\0" * 4, b"\0" * 4)
                s.sendmsg([data], [(socket.IPPROTO_IP, IP_PKTINFO, cmsg)], 0, (host, port))
            elif udp:
                s.sendto(data, (host, port))
            elif mode == "tcp_fastopen_bindtodevice":
                s.settimeout(1.5)
                s.sendto(data, socket.MSG_FASTOPEN, (host, port))
                common.readline(s)
            elif mode == "tcp_bindtodevice":
                s.settimeout(1.5)
                s.connect((host, port))
                s.sendall(data)
                common.readline(s)
            else:
                raise OSError(22, "unknown mode %s" % mode)
        except OSError as e:
            r.update({"ok": False, "step": step}, **common.error_fields(e))
        return r
    finally:
        s.close()


common.main(attempt)
