/* Pure decision helpers for the fence (socket creation, UDP, egress); compiled into BPF and host tests. */
#ifndef AIRLOCK_BPF_LIB_FENCE_H
#define AIRLOCK_BPF_LIB_FENCE_H

#include "steer.h"

/*
 * socket() in a pinned cgroup. Allowed: what ordinary clients need.
 *  - AF_INET/AF_INET6 stream with TCP (or the default protocol): steered.
 *  - AF_INET/AF_INET6 datagram with UDP (or default): DNS to resolvers only,
 *    enforced at connect/sendmsg. UDP-Lite (136) and ICMP echo sockets
 *    (SOCK_DGRAM + IPPROTO_ICMP/ICMPV6) are refused by protocol.
 *  - AF_UNIX: local IPC (and the libc's nscd/resolved lookups).
 *  - AF_NETLINK with NETLINK_ROUTE: glibc's getaddrinfo(AI_ADDRCONFIG) and
 *    if_nameindex read interfaces through it; changing routes needs
 *    CAP_NET_ADMIN, which agents do not have.
 * Everything else (raw, packet, other netlink families, vsock, bluetooth,
 * SCTP/MPTCP streams, ...) is refused.
 */
static inline int al_sock_create_allowed(__u32 family, __u32 type, __u32 protocol, __u32 *reason)
{
	*reason = AL_REASON_NONE;
	if (family == AL_AF_UNIX)
		return 1;
	if (family == AL_AF_NETLINK) {
		if (protocol == AL_NETLINK_ROUTE)
			return 1;
		*reason = AL_REASON_SOCK_TYPE;
		return 0;
	}
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
