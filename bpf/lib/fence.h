/* Pure decision helpers for the fence (socket creation, UDP, egress); compiled into BPF and host tests. */
#ifndef AIRLOCK_BPF_LIB_FENCE_H
#define AIRLOCK_BPF_LIB_FENCE_H

#include "steer.h"

/*
 * socket() of an AF_INET or AF_INET6 socket in a pinned cgroup (the kernel
 * runs cgroup/sock_create for those families only: AF_UNIX, AF_NETLINK,
 * AF_PACKET, AF_VSOCK never reach it). Allowed: what ordinary clients need.
 *  - stream with TCP (or the default protocol): steered.
 *  - datagram with UDP (or default): DNS to resolvers only, enforced at
 *    connect/sendmsg. UDP-Lite (136) and ICMP echo sockets (SOCK_DGRAM +
 *    IPPROTO_ICMP/ICMPV6) are refused by protocol.
 * Everything else (raw sockets, SCTP, MPTCP, SEQPACKET) is refused. What
 * other families could do rests on the agent lacking CAP_NET_RAW (AF_PACKET)
 * and on the threat model in README (AF_VSOCK).
 */
static inline int al_sock_create_allowed(__u32 family, __u32 type, __u32 protocol, __u32 *reason)
{
	*reason = AL_REASON_NONE;
	if (family != AL_AF_INET && family != AL_AF_INET6) {
		*reason = AL_REASON_SOCK_FAMILY;
		return 0;
	}
	if (type == AL_SOCK_STREAM && (protocol == 0 || protocol == AL_IPPROTO_TCP))
		return 1;
	if (type == AL_SOCK_DGRAM && (protocol == 0 || protocol == AL_IPPROTO_UDP))
		return 1;
	*reason = AL_REASON_SOCK_TYPE;
	return 0;
}

/* bind() in a pinned cgroup: never to the steer port, which only airlockd
 * may listen on (an agent holding it would block airlockd's restart). */
static inline int al_bind_allowed(__u16 port, __u16 steer_port, __u32 *reason)
{
	*reason = AL_REASON_NONE;
	if (port == steer_port) {
		*reason = AL_REASON_BIND_STEER;
		return 0;
	}
	return 1;
}

/* A UDP datagram (connect or sendmsg with an address) from a pinned cgroup. */
static inline int al_udp_allowed(__u16 port, int to_resolver, __u32 *reason)
{
	*reason = AL_REASON_NONE;
	if (port == 53) {
		if (to_resolver)
			return 1;
		*reason = AL_REASON_DNS_RESOLVER;
		return 0;
	}
	*reason = port == 443 ? AL_REASON_QUIC_DENIED : AL_REASON_UDP_DENIED;
	return 0;
}

#define AL_LOOPBACK_IFINDEX 1  /* lo, in every network namespace */

/* 127.0.0.0/8 (as v4-mapped) or ::1. */
static inline int al_addr_is_loopback(const struct al_addr *a)
{
	if (al_addr_is_v4mapped(a))
		return (al_ntohl(a->w[3]) >> 24) == 127;
	return al_addr_is_v6_loopback(a);
}

/*
 * The egress backstop: a packet leaving a socket of a pinned cgroup may only
 * be TCP to the steer listener or UDP/53 to a resolver. Anything else the
 * socket hooks did not stop (a socket made before the cgroup was pinned,
 * a path we did not foresee) is dropped here. A loopback destination must
 * leave by the loopback device: a socket bound to another (SO_BINDTODEVICE,
 * IP_UNICAST_IF, an IP_PKTINFO ifindex) would put those bytes on its wire.
 */
static inline int al_egress_allowed(__u8 l4proto, const struct al_addr *dst, __u16 dport,
				    __u16 steer_port, int to_resolver, __u32 ifindex)
{
	if (al_addr_is_loopback(dst) && ifindex != AL_LOOPBACK_IFINDEX)
		return 0;
	if (l4proto == AL_IPPROTO_TCP)
		return al_is_steer_target(dst, dport, steer_port);
	if (l4proto == AL_IPPROTO_UDP)
		return dport == 53 && to_resolver;
	return 0;
}

/*
 * What may arrive for a socket of a pinned cgroup: TCP from the steer listener
 * (over lo) and UDP from a resolver's port 53. Nothing else: no handshake
 * from outside (the kernel answers SYNs with SYN cookies without the
 * listener, past the egress hook), no datagrams but DNS answers.
 */
static inline int al_ingress_allowed(__u8 l4proto, const struct al_addr *src, __u16 sport,
				     __u16 steer_port, int from_resolver, __u32 ifindex)
{
	if (l4proto == AL_IPPROTO_TCP)
		return al_is_steer_target(src, sport, steer_port) && ifindex == AL_LOOPBACK_IFINDEX;
	if (l4proto == AL_IPPROTO_UDP)
		return sport == 53 && from_resolver;
	return 0;
}

#define AL_SOL_SOCKET 1
#define AL_SOL_IP 0
#define AL_SOL_IPV6 41

/*
 * setsockopt() in a pinned cgroup: multicast memberships and source filters
 * are refused. Joining a group makes the kernel send IGMP/MLD reports naming
 * the group and sources the agent chose, with no socket the egress hook sees.
 * (IP_ADD_MEMBERSHIP 35 .. IP_MSFILTER 41, MCAST_JOIN_GROUP 42 ..
 * MCAST_MSFILTER 48 at either level, IPV6_ADD/DROP_MEMBERSHIP 20, 21.)
 */
static inline int al_sockopt_allowed(__s32 level, __s32 optname, __u32 *reason)
{
	*reason = AL_REASON_NONE;
	if ((level == AL_SOL_IP && optname >= 35 && optname <= 48) ||
	    (level == AL_SOL_IPV6 && ((optname >= 20 && optname <= 21) || (optname >= 42 && optname <= 48)))) {
		*reason = AL_REASON_MCAST_JOIN;
		return 0;
	}
	return 1;
}

#endif
