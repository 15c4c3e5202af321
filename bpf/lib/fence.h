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

/*
 * The egress backstop: a packet leaving a socket of a pinned cgroup may only
 * be TCP to the steer listener or UDP/53 to a resolver. Anything else the
 * socket hooks did not stop (a socket made before the cgroup was pinned,
 * a path we did not foresee) is dropped here.
 */
static inline int al_egress_allowed(__u8 l4proto, const struct al_addr *dst, __u16 dport,
				    __u16 steer_port, int to_resolver)
{
	if (l4proto == AL_IPPROTO_TCP)
		return al_is_steer_target(dst, dport, steer_port);
	if (l4proto == AL_IPPROTO_UDP)
		return dport == 53 && to_resolver;
	return 0;
}

#endif
