/* Pure decision helpers for the steering programs; compiled into BPF and into host unit tests. */
#ifndef AIRLOCK_BPF_LIB_STEER_H
#define AIRLOCK_BPF_LIB_STEER_H

#include <airlock/bpf_abi.h>
#include <airlock/reason.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define al_htons(x) ((__u16)__builtin_bswap16((__u16)(x)))
#define al_htonl(x) ((__u32)__builtin_bswap32((__u32)(x)))
#else
#define al_htons(x) ((__u16)(x))
#define al_htonl(x) ((__u32)(x))
#endif
#define al_ntohs(x) al_htons(x)
#define al_ntohl(x) al_htonl(x)

/* bpf_sock_addr keeps the port in network order in the low 16 bits of a u32. */
static inline __u16 al_ctx_port(__u32 user_port)
{
	return al_ntohs((__u16)user_port);
}

static inline __u32 al_ctx_port_make(__u16 host_port)
{
	return (__u32)al_htons(host_port);
}

/* sockops gives remote_port as network order in a u32 (the port in the
 * high-order bytes on little-endian); local_port already in host order. */
static inline __u16 al_sockops_remote_port(__u32 remote_port)
{
	return (__u16)al_ntohl(remote_port);
}

static inline void al_addr_from_v4(struct al_addr *a, __u32 ip4_be)
{
	a->w[0] = 0;
	a->w[1] = 0;
	a->w[2] = al_htonl(0x0000ffff);
	a->w[3] = ip4_be;
}

static inline int al_addr_is_v4mapped(const struct al_addr *a)
{
	return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == al_htonl(0x0000ffff);
}

static inline int al_addr_eq(const struct al_addr *a, const struct al_addr *b)
{
	return a->w[0] == b->w[0] && a->w[1] == b->w[1] &&
	       a->w[2] == b->w[2] && a->w[3] == b->w[3];
}

static inline int al_addr_is_v6_loopback(const struct al_addr *a)
{
	return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == 0 && a->w[3] == al_htonl(1);
}

/* The steer listeners: 127.0.0.1 and ::1 on the steer port. */
static inline int al_is_steer_target(const struct al_addr *dst, __u16 port, __u16 steer_port)
{
	if (port != steer_port)
		return 0;
	if (al_addr_is_v4mapped(dst))
		return dst->w[3] == al_htonl(0x7f000001);
	return al_addr_is_v6_loopback(dst);
}

/* Any way to dial a local listener on the steer port: all of 127.0.0.0/8,
 * ::1, and the unspecified addresses (0.0.0.0 and :: connect to the local
 * host). Dialling it directly is refused; only steered sockets get there. */
static inline int al_is_steer_dial(const struct al_addr *dst, __u16 port, __u16 steer_port)
{
	if (port != steer_port)
		return 0;
	if (al_addr_is_v4mapped(dst))
		return (al_ntohl(dst->w[3]) >> 24) == 127 || dst->w[3] == 0;
	return al_addr_is_v6_loopback(dst) ||
	       (dst->w[0] == 0 && dst->w[1] == 0 && dst->w[2] == 0 && dst->w[3] == 0);
}

enum al_verdict {
	AL_PASS = 0,        /* leave the socket alone */
	AL_STEER = 1,       /* rewrite the destination to the steer listener */
	AL_REFUSE = 2,      /* connect() fails with EPERM */
	AL_KEEP = 3,        /* already steered by an outer hook: allow unchanged */
};

/*
 * What a connect hook does with one connect() from a pinned cgroup.
 * `already` says the socket already carries an origin record (an earlier
 * program in the effective array, for a nested pinned cgroup, steered it).
 */
static inline enum al_verdict
al_connect_verdict(__u32 type, __u32 protocol, const struct al_addr *dst, __u16 port,
		   __u16 steer_port, int already, __u32 *reason)
{
	*reason = AL_REASON_NONE;
	/* SOCK_STREAM may come with flags masked off by the kernel already;
	 * protocol 0 means the default (TCP) for stream sockets. */
	if (type != AL_SOCK_STREAM)
		return AL_PASS;
	if (protocol != AL_IPPROTO_TCP && protocol != 0)
		return AL_PASS;
	if (al_is_steer_dial(dst, port, steer_port)) {
		if (already && al_is_steer_target(dst, port, steer_port))
			return AL_KEEP;
		*reason = AL_REASON_DIRECT_STEER;
		return AL_REFUSE;
	}
	/* Also a second connect() on an already steered socket (after a failed
	 * attempt) to a new destination: steer again, with the new origin. */
	*reason = AL_REASON_STEERED;
	return AL_STEER;
}

static inline void al_conn_key_make(struct al_conn_key *k, const struct al_addr *a, __u16 port)
{
	k->addr = *a;
	k->port = port;
	k->pad = 0;
}

#endif
