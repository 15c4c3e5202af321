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

/*
 * cgroup_skb programs see the packet from the network header. Only TCP to
 * the steer listener and UDP/53 to a resolver leave; a packet that cannot
 * be read (fragment, extension headers) is dropped like any other.
 */
SEC("cgroup_skb/egress")
int al_egress(struct __sk_buff *skb)
{
	struct al_addr dst;
	__u16 ports[2] = { 0, 0 };
	__u32 l4off;
	__u8 proto;
	__u16 family;

	if (skb->protocol == al_htons(AL_ETH_P_IP)) {
		struct ip4hdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
			goto drop_unknown;
		/* Later fragments carry no ports: nothing the hooks allow is fragmented. */
		if (ip.frag & al_htons(0x1fff))
			goto drop_unknown;
		al_addr_from_v4(&dst, ip.daddr);
		proto = ip.proto;
		l4off = (ip.vihl & 0x0f) * 4;
		family = AL_AF_INET;
	} else if (skb->protocol == al_htons(AL_ETH_P_IPV6)) {
		struct ip6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
			goto drop_unknown;
		dst.w[0] = ip6.daddr[0];
		dst.w[1] = ip6.daddr[1];
		dst.w[2] = ip6.daddr[2];
		dst.w[3] = ip6.daddr[3];
		proto = ip6.nexthdr;
		l4off = sizeof(ip6);
		family = AL_AF_INET6;
	} else {
		goto drop_unknown;
	}
	if (proto == AL_IPPROTO_TCP || proto == AL_IPPROTO_UDP) {
		if (bpf_skb_load_bytes(skb, l4off, ports, sizeof(ports)) < 0)
			goto drop_unknown;
	}
	if (al_egress_allowed(proto, &dst, al_ntohs(ports[1]), steer_port,
			      proto == AL_IPPROTO_UDP && al_is_resolver(&dst)))
		return 1;
	al_refuse_event(AL_REASON_EGRESS_DROP, family, 0, proto, &dst, al_ntohs(ports[1]), 0,
			 bpf_skb_cgroup_id(skb));
	return 0;
drop_unknown:
	al_refuse_event(AL_REASON_EGRESS_DROP, 0, 0, 0, 0, 0, 0, bpf_skb_cgroup_id(skb));
	return 0;
}
