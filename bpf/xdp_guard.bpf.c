/* XDP on interfaces: the fence for agents in network namespaces (al_xdp_agent) and the backend port guard (al_xdp_guard). */
#include "lib/maps.h"
#include "lib/xdp.h"

char LICENSE[] SEC("license") = "GPL";

/* TCP SYNs let in from pinned interfaces, by 4-tuple: which interface a
 * TPROXYed connection came from. The daemon deletes each after accept(). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AL_FLOWS_MAX);
	__type(key, struct al_flow_key);
	__type(value, struct al_flow_origin);
} al_flows SEC(".maps");

/* Guarded (interface, TCP port) pairs and the sources allowed to reach them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AL_GUARD_MAX);
	__type(key, struct al_guard_port_key);
	__type(value, __u8);
} al_guard_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AL_GUARD_MAX);
	__type(key, struct al_guard_src_key);
	__type(value, __u8);
} al_guard_allow SEC(".maps");

/* What the daemon installed outside bpffs (nftables, policy routing); no
 * program reads it, it is pinned with the maps for `airlockctl down`. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct al_netcfg);
} al_netcfg SEC(".maps");

SEC("xdp")
int al_xdp_agent(struct xdp_md *ctx)
{
	const void *data = (const void *)(long)ctx->data;
	const void *end = (const void *)(long)ctx->data_end;
	struct al_pkt p;
	int to_resolver = 0;

	al_pkt_parse(data, end, &p);
	if ((p.flags & AL_PKT_PORTS) && p.l4proto == AL_IPPROTO_UDP && p.dport == 53)
		to_resolver = al_is_resolver(&p.dst);
	if (!al_xdp_agent_allowed(&p, to_resolver)) {
		al_count(AL_REASON_XDP_DROP);
		return XDP_DROP;
	}
	if (al_pkt_is_syn(&p)) {
		struct al_flow_key k;
		struct al_flow_origin o;

		__builtin_memset(&k, 0, sizeof(k));
		__builtin_memset(&o, 0, sizeof(o));
		k.src = p.src;
		k.dst = p.dst;
		k.sport = p.sport;
		k.dport = p.dport;
		o.ifindex = ctx->ingress_ifindex;
		o.ktime_ns = bpf_ktime_get_ns();
		bpf_map_update_elem(&al_flows, &k, &o, BPF_ANY);
	}
	return XDP_PASS;
}

SEC("xdp")
int al_xdp_guard(struct xdp_md *ctx)
{
	const void *data = (const void *)(long)ctx->data;
	const void *end = (const void *)(long)ctx->data_end;
	struct al_pkt p;
	int protected = 0, allowed = 0;

	al_pkt_parse(data, end, &p);
	if (al_xdp_guard_applies(&p)) {
		struct al_guard_port_key pk;

		__builtin_memset(&pk, 0, sizeof(pk));
		pk.ifindex = ctx->ingress_ifindex;
		pk.port = p.dport;
		protected = bpf_map_lookup_elem(&al_guard_ports, &pk) != 0;
		if (protected) {
			struct al_guard_src_key sk;

			__builtin_memset(&sk, 0, sizeof(sk));
			sk.ifindex = ctx->ingress_ifindex;
			sk.addr = p.src;
			allowed = bpf_map_lookup_elem(&al_guard_allow, &sk) != 0;
		}
	}
	if (al_xdp_guard_allowed(&p, protected, allowed))
		return XDP_PASS;
	al_count(AL_REASON_GUARD_DROP);
	return XDP_DROP;
}
