/* The fence: which sockets a pinned agent may create, and the egress backstop for every packet it sends. */
#include "lib/maps.h"
#include "lib/fence.h"
#include "lib/exe.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the daemon at load time. */
const volatile __u16 steer_port = 0;

SEC("cgroup/sock_create")
int al_sock_create(struct bpf_sock *sk)
{
	__u32 reason;

	if (al_sock_create_allowed(sk->family, sk->type, sk->protocol, &reason))
		return 1;
	al_exe_capture(bpf_get_current_pid_tgid() >> 32);
	al_refuse_event(reason, sk->family, sk->type, sk->protocol, 0, 0, 1, 0);
	return 0;
}

static __always_inline int bind_check(struct bpf_sock_addr *ctx, const struct al_addr *a)
{
	__u16 port = al_ctx_port(ctx->user_port);
	__u32 reason;

	if (al_bind_allowed(port, steer_port, &reason))
		return 1;
	al_exe_capture(bpf_get_current_pid_tgid() >> 32);
	al_refuse_event(reason, ctx->family, ctx->type, ctx->protocol, a, port, 1, 0);
	return 0;
}

SEC("cgroup/bind4")
int al_bind4(struct bpf_sock_addr *ctx)
{
	struct al_addr a;

	al_addr_from_v4(&a, ctx->user_ip4);
	return bind_check(ctx, &a);
}

SEC("cgroup/bind6")
int al_bind6(struct bpf_sock_addr *ctx)
{
	struct al_addr a;

	a.w[0] = ctx->user_ip6[0];
	a.w[1] = ctx->user_ip6[1];
	a.w[2] = ctx->user_ip6[2];
	a.w[3] = ctx->user_ip6[3];
	return bind_check(ctx, &a);
}

struct ip4hdr {
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

struct ip6hdr {
	__u32 vtcfl;
	__u16 plen;
	__u8 nexthdr;
	__u8 hlim;
	__u32 saddr[4];
	__u32 daddr[4];
};

/* A packet's addresses, L4 protocol and ports; -1 if it cannot be read (a later fragment, a
 * truncated header). Extension headers are not walked: their next header is what proto says. */
struct pkt {
	struct al_addr src, dst;
	__u16 sport, dport, family;
	__u8 proto;
};

static __always_inline int pkt_read(struct __sk_buff *skb, struct pkt *p)
{
	__u16 ports[2] = { 0, 0 };
	__u32 l4off;

	if (skb->protocol == al_htons(AL_ETH_P_IP)) {
		struct ip4hdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
			return -1;
		/* Later fragments carry no ports: nothing the hooks allow is fragmented. */
		if (ip.frag & al_htons(0x1fff))
			return -1;
		al_addr_from_v4(&p->src, ip.saddr);
		al_addr_from_v4(&p->dst, ip.daddr);
		p->proto = ip.proto;
		l4off = (ip.vihl & 0x0f) * 4;
		p->family = AL_AF_INET;
	} else if (skb->protocol == al_htons(AL_ETH_P_IPV6)) {
		struct ip6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
			return -1;
		__builtin_memcpy(p->src.w, ip6.saddr, sizeof(p->src.w));
		__builtin_memcpy(p->dst.w, ip6.daddr, sizeof(p->dst.w));
		p->proto = ip6.nexthdr;
		l4off = sizeof(ip6);
		p->family = AL_AF_INET6;
	} else {
		return -1;
	}
	if ((p->proto == AL_IPPROTO_TCP || p->proto == AL_IPPROTO_UDP) &&
	    bpf_skb_load_bytes(skb, l4off, ports, sizeof(ports)) < 0)
		return -1;
	p->sport = al_ntohs(ports[0]);
	p->dport = al_ntohs(ports[1]);
	return 0;
}

/*
 * cgroup_skb programs see the packet from the network header. Only TCP to
 * the steer listener and UDP/53 to a resolver leave (a loopback destination
 * by the loopback device only); a packet that cannot be read (fragment,
 * extension headers) is dropped like any other.
 */
SEC("cgroup_skb/egress")
int al_egress(struct __sk_buff *skb)
{
	struct pkt p = {};

	if (pkt_read(skb, &p) < 0) {
		al_refuse_event(AL_REASON_EGRESS_DROP, 0, 0, 0, 0, 0, 0, bpf_skb_cgroup_id(skb));
		return 0;
	}
	if (al_egress_allowed(p.proto, &p.dst, p.dport, steer_port,
			      p.proto == AL_IPPROTO_UDP && al_is_resolver(&p.dst), skb->ifindex))
		return 1;
	al_refuse_event(AL_REASON_EGRESS_DROP, p.family, 0, p.proto, &p.dst, p.dport, 0, bpf_skb_cgroup_id(skb));
	return 0;
}

/*
 * What arrives for a socket of a pinned cgroup: the steer listener's TCP and
 * resolvers' DNS answers only. A listener of the agent's gets no handshake
 * from outside even by SYN cookies (sent with no socket, past the egress
 * hook), a UDP socket no datagram but a DNS answer.
 */
SEC("cgroup_skb/ingress")
int al_ingress(struct __sk_buff *skb)
{
	struct pkt p = {};

	if (pkt_read(skb, &p) < 0) {
		al_refuse_event(AL_REASON_INGRESS_DROP, 0, 0, 0, 0, 0, 0, bpf_skb_cgroup_id(skb));
		return 0;
	}
	if (al_ingress_allowed(p.proto, &p.src, p.sport, steer_port,
			       p.proto == AL_IPPROTO_UDP && al_is_resolver(&p.src), skb->ifindex))
		return 1;
	/* The event names where it came from: its source address and port. */
	al_refuse_event(AL_REASON_INGRESS_DROP, p.family, 0, p.proto, &p.src, p.sport, 0, bpf_skb_cgroup_id(skb));
	return 0;
}

/* Multicast memberships are refused (EPERM): see al_sockopt_allowed. */
SEC("cgroup/setsockopt")
int al_setsockopt(struct bpf_sockopt *ctx)
{
	__u32 reason;

	if (al_sockopt_allowed(ctx->level, ctx->optname, &reason))
		return 1;
	al_exe_capture(bpf_get_current_pid_tgid() >> 32);
	al_refuse_event(reason, 0, 0, (__u16)ctx->level, 0, (__u16)ctx->optname, 1, 0);
	return 0;
}
