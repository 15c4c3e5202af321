/* Packet parsing and verdicts for the XDP programs; compiled into BPF and into host unit tests. */
#ifndef AIRLOCK_BPF_LIB_XDP_H
#define AIRLOCK_BPF_LIB_XDP_H

#include "steer.h"

/* The parser works on packet pointers: in BPF it must be inlined so the
 * verifier sees every bounds check against data_end in the caller. */
#ifdef __bpf__
#define AL_XDP_FN static __always_inline
#else
#define AL_XDP_FN static inline
#endif

#define AL_ETH_P_ARP        0x0806
#define AL_IPPROTO_HOPOPTS  0
#define AL_IPPROTO_ROUTING  43
#define AL_IPPROTO_FRAGMENT 44
#define AL_IPPROTO_DSTOPTS  60
#define AL_TCP_FLAG_SYN     0x02
#define AL_TCP_FLAG_ACK     0x10
#define AL_ICMP6_ROUTER_SOLICIT  133
#define AL_ICMP6_NEIGH_SOLICIT   135
#define AL_ICMP6_NEIGH_ADVERT    136
#define AL_IP6_EXT_MAX      4   /* extension headers walked before giving up */

struct al_ethhdr {
	__u8 dst[6];
	__u8 src[6];
	__u16 proto;
};

struct al_iphdr {
	__u8 vihl;
	__u8 tos;
	__u16 len;
	__u16 id;
	__u16 frag;
	__u8 ttl;
	__u8 proto;
	__u16 csum;
	__u32 saddr;
	__u32 daddr;
};

struct al_ip6hdr {
	__u32 vtcfl;
	__u16 plen;
	__u8 nexthdr;
	__u8 hlim;
	__u32 saddr[4];
	__u32 daddr[4];
};

/* Hop-by-hop, routing and destination options share this start. */
struct al_ip6ext {
	__u8 nexthdr;
	__u8 hdrlen;                /* in 8-byte units, not counting the first 8 */
	__u8 rest[6];
};

struct al_ip6frag {
	__u8 nexthdr;
	__u8 res;
	__u16 off;                  /* offset << 3 | flags, network order */
	__u32 id;
};

/* The start of a TCP header, up to the flags. */
struct al_tcphdr {
	__u16 sport;
	__u16 dport;
	__u32 seq;
	__u32 ack;
	__u8 doff;
	__u8 flags;
	__u16 win;
};

struct al_udphdr {
	__u16 sport;
	__u16 dport;
	__u16 len;
	__u16 csum;
};

/* What the parser learned of one frame. */
struct al_pkt {
	__u16 eth_proto;            /* host order */
	__u8 l4proto;               /* valid with AL_PKT_IP */
	__u8 flags;                 /* AL_PKT_* */
	__u16 sport;                /* host order; valid with AL_PKT_PORTS */
	__u16 dport;
	__u8 tcp_flags;
	__u8 icmp_type;             /* valid with AL_PKT_ICMP6 */
	__u8 hop_limit;             /* IPv4 TTL or IPv6 hop limit */
	__u8 pad;
	struct al_addr src;         /* valid with AL_PKT_IP */
	struct al_addr dst;
};

#define AL_PKT_IP          0x01 /* an IPv4 or IPv6 header was read */
#define AL_PKT_PORTS       0x02 /* TCP or UDP ports were read */
#define AL_PKT_FRAG        0x04 /* a fragment (first or later) */
#define AL_PKT_LATER_FRAG  0x08 /* a fragment that carries no transport header */
#define AL_PKT_ICMP6       0x10 /* an ICMPv6 type was read */
#define AL_PKT_EXTHDR      0x20 /* IPv6 extension headers came before the transport */
#define AL_PKT_BAD         0x40 /* truncated or not understood */

/*
 * Reads Ethernet, IPv4 (with options) or IPv6 (with up to AL_IP6_EXT_MAX
 * extension headers), and the start of TCP, UDP or ICMPv6. Frames that
 * are not IP get only eth_proto. Never reads past `end`.
 */
AL_XDP_FN void al_pkt_parse(const void *data, const void *end, struct al_pkt *p)
{
	const struct al_ethhdr *eth = data;
	const void *l4;
	__u8 proto;

	__builtin_memset(p, 0, sizeof(*p));
	if ((const void *)(eth + 1) > end)
		goto bad;
	p->eth_proto = al_ntohs(eth->proto);
	if (p->eth_proto == AL_ETH_P_IP) {
		const struct al_iphdr *ip = (const void *)(eth + 1);
		__u32 ihl;

		if ((const void *)(ip + 1) > end)
			goto bad;
		ihl = (__u32)(ip->vihl & 0x0f) * 4;
		if ((ip->vihl >> 4) != 4 || ihl < sizeof(*ip))
			goto bad;
		p->flags |= AL_PKT_IP;
		al_addr_from_v4(&p->src, ip->saddr);
		al_addr_from_v4(&p->dst, ip->daddr);
		p->hop_limit = ip->ttl;
		proto = ip->proto;
		p->l4proto = proto;
		if (ip->frag & al_htons(0x3fff)) {          /* MF or an offset */
			p->flags |= AL_PKT_FRAG;
			if (ip->frag & al_htons(0x1fff)) {
				p->flags |= AL_PKT_LATER_FRAG;
				return;
			}
		}
		l4 = (const void *)ip + ihl;
	} else if (p->eth_proto == AL_ETH_P_IPV6) {
		const struct al_ip6hdr *ip6 = (const void *)(eth + 1);
		int i;

		if ((const void *)(ip6 + 1) > end)
			goto bad;
		if ((al_ntohl(ip6->vtcfl) >> 28) != 6)
			goto bad;
		p->flags |= AL_PKT_IP;
		for (i = 0; i < 4; i++) {
			p->src.w[i] = ip6->saddr[i];
			p->dst.w[i] = ip6->daddr[i];
		}
		p->hop_limit = ip6->hlim;
		proto = ip6->nexthdr;
		l4 = ip6 + 1;
#ifdef __bpf__
#pragma unroll
#endif
		for (i = 0; i < AL_IP6_EXT_MAX; i++) {
			if (proto == AL_IPPROTO_HOPOPTS || proto == AL_IPPROTO_ROUTING ||
			    proto == AL_IPPROTO_DSTOPTS) {
				const struct al_ip6ext *x = l4;

				if ((const void *)(x + 1) > end)
					goto bad;
				p->flags |= AL_PKT_EXTHDR;
				proto = x->nexthdr;
				l4 = (const __u8 *)l4 + ((__u32)x->hdrlen + 1) * 8;
			} else if (proto == AL_IPPROTO_FRAGMENT) {
				const struct al_ip6frag *f = l4;

				if ((const void *)(f + 1) > end)
					goto bad;
				p->flags |= AL_PKT_EXTHDR | AL_PKT_FRAG;
				proto = f->nexthdr;
				if (f->off & al_htons(0xfff8)) {
					p->l4proto = proto;
					p->flags |= AL_PKT_LATER_FRAG;
					return;
				}
				l4 = f + 1;
			} else {
				break;
			}
		}
		p->l4proto = proto;
		if (proto == AL_IPPROTO_HOPOPTS || proto == AL_IPPROTO_ROUTING ||
		    proto == AL_IPPROTO_DSTOPTS || proto == AL_IPPROTO_FRAGMENT)
			goto bad;                        /* a longer chain than we walk */
	} else {
		return;
	}

	if (proto == AL_IPPROTO_TCP) {
		const struct al_tcphdr *t = l4;

		if ((const void *)(t + 1) > end)
			goto bad;
		p->sport = al_ntohs(t->sport);
		p->dport = al_ntohs(t->dport);
		p->tcp_flags = t->flags;
		p->flags |= AL_PKT_PORTS;
	} else if (proto == AL_IPPROTO_UDP) {
		const struct al_udphdr *u = l4;

		if ((const void *)(u + 1) > end)
			goto bad;
		p->sport = al_ntohs(u->sport);
		p->dport = al_ntohs(u->dport);
		p->flags |= AL_PKT_PORTS;
	} else if (proto == AL_IPPROTO_ICMPV6 && p->eth_proto == AL_ETH_P_IPV6) {
		const __u8 *ic = l4;

		if ((const void *)(ic + 4) > end)
			goto bad;
		p->icmp_type = ic[0];
		p->flags |= AL_PKT_ICMP6;
	}
	return;
bad:
	p->flags |= AL_PKT_BAD;
}

/*
 * A frame arriving from an agent's namespace on a pinned interface. Let in:
 *  - ARP, and IPv6 router/neighbour solicitations and neighbour adverts
 *    (hop limit 255, no extension headers): what the link needs to work;
 *  - TCP, any destination: nftables TPROXYs all of it into airlockd, after
 *    reassembly, so TCP fragments may pass too;
 *  - UDP to port 53 of an allowed resolver, not fragmented.
 * Everything else (other UDP, ICMP, other protocols and ethertypes, VLAN
 * tags, frames that do not parse) is dropped.
 */
static inline int al_xdp_agent_allowed(const struct al_pkt *p, int to_resolver)
{
	if (p->flags & AL_PKT_BAD)
		return 0;
	if (p->eth_proto == AL_ETH_P_ARP)
		return 1;
	if (!(p->flags & AL_PKT_IP))
		return 0;
	if (p->l4proto == AL_IPPROTO_TCP)
		return 1;
	if (p->flags & AL_PKT_FRAG)
		return 0;
	if (p->l4proto == AL_IPPROTO_UDP)
		return (p->flags & AL_PKT_PORTS) && p->dport == 53 && to_resolver;
	if (p->l4proto == AL_IPPROTO_ICMPV6 && (p->flags & AL_PKT_ICMP6) &&
	    !(p->flags & AL_PKT_EXTHDR) && p->hop_limit == 255)
		return p->icmp_type == AL_ICMP6_ROUTER_SOLICIT ||
		       p->icmp_type == AL_ICMP6_NEIGH_SOLICIT ||
		       p->icmp_type == AL_ICMP6_NEIGH_ADVERT;
	return 0;
}

/* A TCP SYN (not SYN-ACK) the agent program notes for the TPROXY listener. */
static inline int al_pkt_is_syn(const struct al_pkt *p)
{
	return (p->flags & AL_PKT_PORTS) && p->l4proto == AL_IPPROTO_TCP &&
	       (p->tcp_flags & (AL_TCP_FLAG_SYN | AL_TCP_FLAG_ACK)) == AL_TCP_FLAG_SYN;
}

/* Whether the guard must look the packet up: TCP with its ports readable. */
static inline int al_xdp_guard_applies(const struct al_pkt *p)
{
	return (p->flags & AL_PKT_PORTS) && p->l4proto == AL_IPPROTO_TCP;
}

/*
 * A frame arriving on a guarded interface of a backend host. TCP to a
 * protected port passes only from an allowed (appliance) source. IP that
 * cannot be parsed is dropped, since it could hide a TCP header (a longer
 * IPv6 extension chain than we walk); later fragments carry no ports and
 * pass (without their first fragment they cannot be reassembled). Anything
 * else is not the guard's business.
 */
static inline int al_xdp_guard_allowed(const struct al_pkt *p, int port_protected, int src_allowed)
{
	if (p->flags & AL_PKT_BAD)
		return !(p->eth_proto == AL_ETH_P_IP || p->eth_proto == AL_ETH_P_IPV6);
	if (!al_xdp_guard_applies(p))
		return 1;
	return !port_protected || src_allowed;
}

#endif
