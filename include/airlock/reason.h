/* The one list of reasons why Airlock let something through, refused it, or ended it. */
#ifndef AIRLOCK_REASON_H
#define AIRLOCK_REASON_H

/*
 * Shared by the BPF programs (counter indexes), the daemon (session end
 * reasons, audit rows) and airlockctl (status output). The numeric values
 * are an ABI: pinned counter maps outlive the daemon, and audit rows keep
 * the name. Append new reasons at the end; never renumber or reuse.
 */
#define AL_REASONS(X)                                                          \
	X(NONE,              0, "none")                                        \
	X(STEERED,           1, "steered")          /* connect rewritten to Airlock */ \
	X(CLOSED,            2, "closed")           /* both sides finished normally */ \
	X(NO_IDENTITY,       3, "no_identity")      /* accepted, no BPF record: fail closed */ \
	X(DIRECT_STEER,      4, "direct_steer_port")/* agent dialled the steer port itself */ \
	X(UPSTREAM_REFUSED,  5, "upstream_refused") \
	X(UPSTREAM_UNREACH,  6, "upstream_unreachable") \
	X(UPSTREAM_TIMEOUT,  7, "upstream_timeout") \
	X(AGENT_RESET,       8, "agent_reset")      /* agent side error or reset */ \
	X(UPSTREAM_RESET,    9, "upstream_reset") \
	X(POLICY_DENY,      10, "policy_deny") \
	X(LIMIT,            11, "limit")            /* a configured limit was hit */ \
	X(SHUTDOWN,         12, "shutdown")         /* airlockd stopped */ \
	X(INTERNAL,         13, "internal")         /* out of memory, bug */ \
	X(STEER_LOOP,       14, "steer_loop")       /* upstream is the steer listener */ \
	X(SOCK_FAMILY,      15, "socket_family")    /* socket() of a refused address family */ \
	X(SOCK_TYPE,        16, "socket_type")      /* socket() of a refused type or protocol */ \
	X(UDP_DENIED,       17, "udp_denied")       /* UDP to anything but DNS to a resolver */ \
	X(QUIC_DENIED,      18, "quic_denied")      /* UDP/443: HTTP/3 must fall back to TCP */ \
	X(DNS_RESOLVER,     19, "dns_resolver")     /* DNS to a resolver not in the list */ \
	X(EGRESS_DROP,      20, "egress_drop")      /* a packet the socket hooks did not catch */ \
	X(EVENTS_SUPPRESSED,21, "events_suppressed")/* refusal events over the rate limit */ \
	X(XDP_DROP,         22, "xdp_drop")         /* a pinned interface sent what only TCP and DNS may */ \
	X(GUARD_DROP,       23, "guard_drop")       /* to a guarded port, not from an appliance */ \
	X(BIND_STEER,       24, "bind_steer_port")  /* an agent tried to bind the steer port */ \
	X(STORE_FULL,       25, "store_full")       /* the audit store is at its cap or the disk is full */ \
	X(INGRESS_DROP,     26, "ingress_drop")     /* a packet for a pinned socket not from Airlock or DNS */ \
	X(MCAST_JOIN,       27, "mcast_join")       /* a multicast membership (its IGMP/MLD reports leave) */

enum al_reason {
#define AL_REASON_ENUM_(name, val, str) AL_REASON_##name = val,
	AL_REASONS(AL_REASON_ENUM_)
#undef AL_REASON_ENUM_
	AL_REASON__COUNT
};

/* Size of the kernel counter array: room to grow without a map re-create. */
#define AL_REASON_MAX 64

#ifndef __bpf__
static inline const char *al_reason_name(unsigned int r)
{
	switch (r) {
#define AL_REASON_STR_(name, val, str) case val: return str;
	AL_REASONS(AL_REASON_STR_)
#undef AL_REASON_STR_
	}
	return "unknown";
}
#endif

#endif
