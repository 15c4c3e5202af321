"""Technique: a multicast membership or source filter on a UDP socket.

Joining a group makes the kernel send IGMP (IPv4) or MLD (IPv6) reports
naming the group and sources the agent chose, from no socket: no egress
hook sees them, so the setsockopt itself must be refused.
argv: OPTIONS IFNAME IFADDR GROUPS SOURCE. OPTIONS are names below, comma-
separated, each tried on a socket of its own with the group at the same
place in GROUPS (the MCAST_* ones take the family of the groups); IFADDR is
the interface's IPv4 address (the ip_mreq_source and ip_msfilter forms name
the interface by address). Options that need a membership first (drop,
leave, block, unblock, filter) make it first ("prep", refusals there are
recorded but do not end the attempt). ok = every option itself succeeded;
errno is the first failure's; results has each. The sockets stay open 0.3 s
so the kernel's reports go out while they are members.
"""
import socket
import struct
import sys
import time
import common

SOL_IP, SOL_IPV6 = 0, 41
OPTS = {
    "IP_ADD_MEMBERSHIP": 35, "IP_DROP_MEMBERSHIP": 36, "IP_UNBLOCK_SOURCE": 37,
    "IP_BLOCK_SOURCE": 38, "IP_ADD_SOURCE_MEMBERSHIP": 39, "IP_DROP_SOURCE_MEMBERSHIP": 40,
    "IP_MSFILTER": 41,
    "MCAST_JOIN_GROUP": 42, "MCAST_BLOCK_SOURCE": 43, "MCAST_UNBLOCK_SOURCE": 44,
    "MCAST_LEAVE_GROUP": 45, "MCAST_JOIN_SOURCE_GROUP": 46, "MCAST_LEAVE_SOURCE_GROUP": 47,
    "MCAST_MSFILTER": 48,
    "IPV6_ADD_MEMBERSHIP": 20, "IPV6_DROP_MEMBERSHIP": 21,
}
# What each option needs done first, on the same socket.
PREP = {
    "IP_DROP_MEMBERSHIP": ["IP_ADD_MEMBERSHIP"],
    "IP_BLOCK_SOURCE": ["IP_ADD_MEMBERSHIP"],
    "IP_UNBLOCK_SOURCE": ["IP_ADD_MEMBERSHIP", "IP_BLOCK_SOURCE"],
    "IP_DROP_SOURCE_MEMBERSHIP": ["IP_ADD_SOURCE_MEMBERSHIP"],
    "IP_MSFILTER": ["IP_ADD_MEMBERSHIP"],
    "MCAST_BLOCK_SOURCE": ["MCAST_JOIN_GROUP"],
    "MCAST_UNBLOCK_SOURCE": ["MCAST_JOIN_GROUP", "MCAST_BLOCK_SOURCE"],
    "MCAST_LEAVE_GROUP": ["MCAST_JOIN_GROUP"],
    "MCAST_LEAVE_SOURCE_GROUP": ["MCAST_JOIN_SOURCE_GROUP"],
    "MCAST_MSFILTER": ["MCAST_JOIN_GROUP"],
    "IPV6_DROP_MEMBERSHIP": ["IPV6_ADD_MEMBERSHIP"],
}
MCAST_INCLUDE = 1


def ss(addr):
    """struct sockaddr_storage (128 bytes) holding a sockaddr_in or sockaddr_in6, port 0."""
    if ":" in addr:
        sa = struct.pack("@HHI16sI", socket.AF_INET6, 0, 0, socket.inet_pton(socket.AF_INET6, addr), 0)
    else:
        sa = struct.pack("@HH4s", socket.AF_INET, 0, socket.inet_aton(addr))
    return sa + b"\0" * (128 - len(sa))


def optval(name, ifindex, ifaddr, group, source):
    a4 = socket.inet_aton
    if name in ("IP_ADD_MEMBERSHIP", "IP_DROP_MEMBERSHIP"):
        return struct.pack("@4s4si", a4(group), b"\0" * 4, ifindex)             # ip_mreqn
    if name.startswith("IP_") and name != "IP_MSFILTER":
        return struct.pack("@4s4s4s", a4(group), a4(ifaddr), a4(source))        # ip_mreq_source
    if name == "IP_MSFILTER":
        return struct.pack("@4s4sII4s", a4(group), a4(ifaddr), MCAST_INCLUDE, 1, a4(source))
    if name.startswith("IPV6_"):
        return struct.pack("@16si", socket.inet_pton(socket.AF_INET6, group), ifindex)  # ipv6_mreq
    # struct group_req / group_source_req / group_filter: a u32 interface, padding to 8.
    head = struct.pack("@I4x", ifindex)
    if name in ("MCAST_JOIN_GROUP", "MCAST_LEAVE_GROUP"):
        return head + ss(group)
    if name == "MCAST_MSFILTER":
        return head + ss(group) + struct.pack("@II", MCAST_INCLUDE, 1) + ss(source)
    return head + ss(group) + ss(source)


def one(s, option, level, ifindex, ifaddr, group, source):
    """The option (after what it needs first) on socket s: its result, and how many calls got EPERM."""
    r = {"option": option, "group": group, "prep": []}
    eperm = 0
    for name in PREP.get(option, []):
        try:
            s.setsockopt(level, OPTS[name], optval(name, ifindex, ifaddr, group, source))
            r["prep"].append([name, 0])
        except OSError as e:
            eperm += e.errno == 1
            r["prep"].append([name, e.errno])
    try:
        s.setsockopt(level, OPTS[option], optval(option, ifindex, ifaddr, group, source))
        r["ok"] = True
    except OSError as e:
        eperm += e.errno == 1
        r.update({"ok": False}, **common.error_fields(e))
    return r, eperm


def attempt():
    options, ifname, ifaddr, groups, source = sys.argv[1:6]
    options, groups = options.split(","), groups.split(",")
    v6 = ":" in groups[0]
    level = SOL_IPV6 if v6 else SOL_IP
    ifindex = socket.if_nametoindex(ifname)
    socks, results, eperm = [], [], 0
    try:
        for option, group in zip(options, groups):
            s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            r, n = one(s, option, level, ifindex, ifaddr, group, source)
            results.append(r)
            eperm += n
        time.sleep(0.3)     # members while the kernel's reports go out
    finally:
        for s in socks:
            s.close()
    failed = [r for r in results if not r["ok"]]
    out = {"ok": not failed, "level": level, "results": results, "eperm_calls": eperm}
    if failed:
        out.update({"errno": failed[0]["errno"], "error": failed[0]["error"]})
    return out


common.main(attempt)
