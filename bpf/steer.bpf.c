/* Steering: connect4/6 rewrite a pinned agent's TCP to airlockd and police its UDP; sockops publishes origin; getpeername hides it. */
#include "lib/maps.h"
#include "lib/fence.h"
#include "lib/exe.h"

char LICENSE[] SEC("license") = "GPL";

/* Loads a context field into a register right here, so clang cannot merge
 * loads from two branches into one through a moved context pointer (the
 * verifier refuses dereferences of a modified ctx pointer). */
#define CTX_LOAD(dst, field)                                 \
	do {                                                 \
		(dst) = (field);                             \
		asm volatile("" : "+r"(dst));                \
	} while (0)

/* Set by the daemon at load time. */
const volatile __u16 steer_port = 0;

/* Where each steered socket meant to go, and who opened it. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct al_origin);
} al_origin SEC(".maps");

/* The same record keyed by the agent's address and port, for the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AL_CONNS_MAX);
	__type(key, struct al_conn_key);
	__type(value, struct al_origin);
} al_conns SEC(".maps");


static __always_inline void fill_identity(struct al_origin *o)
{
	__u64 pt = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();

	o->pid = (__u32)pt;
	o->tgid = (__u32)(pt >> 32);
	o->uid = (__u32)ug;
	o->gid = (__u32)(ug >> 32);
	o->cgroup_id = bpf_get_current_cgroup_id();
	o->ktime_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

static __always_inline int steer(struct bpf_sock_addr *ctx, const struct al_addr *dst,
				 __u16 port, int v4mapped)
{
	struct al_origin *o;
	__u32 reason;
	enum al_verdict v;

	o = bpf_sk_storage_get(&al_origin, ctx->sk, 0, 0);
	v = al_connect_verdict(ctx->type, ctx->protocol, dst, port, steer_port, o != 0, &reason);
	if (v == AL_PASS || v == AL_KEEP)
		return 1;
	if (v == AL_REFUSE) {
		al_exe_capture(bpf_get_current_pid_tgid() >> 32);
		al_refuse_event(reason, ctx->family, ctx->type, ctx->protocol, dst, port, 1, 0);
		return 0;
	}

	o = bpf_sk_storage_get(&al_origin, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!o) {
		/* No room to remember the origin: refuse rather than let it by. */
		al_count(AL_REASON_INTERNAL);
		return 0;
	}
	o->dst = *dst;
	o->dst_port = port;
	o->family = ctx->family;
	o->flags = v4mapped ? AL_ORIGIN_V4MAPPED : 0;
	fill_identity(o);
	al_exe_capture(o->tgid);
	al_count(reason);
	return 1;
}

/* UDP connect() or sendmsg() with an address: DNS to a resolver, nothing else. */
static __always_inline int udp_check(struct bpf_sock_addr *ctx, const struct al_addr *dst, __u16 port)
{
	__u32 reason;

	if (al_udp_allowed(port, al_is_resolver(dst), &reason))
		return 1;
	al_exe_capture(bpf_get_current_pid_tgid() >> 32);
	al_refuse_event(reason, ctx->family, ctx->type, ctx->protocol, dst, port, 1, 0);
	return 0;
}

SEC("cgroup/connect4")
int al_connect4(struct bpf_sock_addr *ctx)
{
	struct al_addr dst;
	__u16 port = al_ctx_port(ctx->user_port);
	int ret;

	al_addr_from_v4(&dst, ctx->user_ip4);
	if (ctx->type == AL_SOCK_DGRAM)
		return udp_check(ctx, &dst, port);
	ret = steer(ctx, &dst, port, 0);
	if (ret && ctx->type == AL_SOCK_STREAM && !al_is_steer_target(&dst, port, steer_port)) {
		ctx->user_ip4 = al_htonl(0x7f000001);
		ctx->user_port = al_ctx_port_make(steer_port);
	}
	return ret;
}

SEC("cgroup/connect6")
int al_connect6(struct bpf_sock_addr *ctx)
{
	struct al_addr dst;
	__u16 port = al_ctx_port(ctx->user_port);
	int v4mapped, ret;

	dst.w[0] = ctx->user_ip6[0];
	dst.w[1] = ctx->user_ip6[1];
	dst.w[2] = ctx->user_ip6[2];
	dst.w[3] = ctx->user_ip6[3];
	v4mapped = al_addr_is_v4mapped(&dst);
	if (ctx->type == AL_SOCK_DGRAM)
		return udp_check(ctx, &dst, port);
	ret = steer(ctx, &dst, port, v4mapped);
	if (!ret || ctx->type != AL_SOCK_STREAM || al_is_steer_target(&dst, port, steer_port))
		return ret;
	if (ctx->protocol != AL_IPPROTO_TCP && ctx->protocol != 0)
		return ret;

	/* One 32-bit store at a time: the verifier rejects wider ones. */
	ctx->user_ip6[0] = 0;
	asm volatile("" ::: "memory");
	ctx->user_ip6[1] = 0;
	asm volatile("" ::: "memory");
	ctx->user_ip6[2] = v4mapped ? al_htonl(0x0000ffff) : 0;
	asm volatile("" ::: "memory");
	ctx->user_ip6[3] = v4mapped ? al_htonl(0x7f000001) : al_htonl(1);
	ctx->user_port = al_ctx_port_make(steer_port);
	return 1;
}

SEC("cgroup/sendmsg4")
int al_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct al_addr dst;

	al_addr_from_v4(&dst, ctx->user_ip4);
	return udp_check(ctx, &dst, al_ctx_port(ctx->user_port));
}

SEC("cgroup/sendmsg6")
int al_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct al_addr dst;

	dst.w[0] = ctx->user_ip6[0];
	dst.w[1] = ctx->user_ip6[1];
	dst.w[2] = ctx->user_ip6[2];
	dst.w[3] = ctx->user_ip6[3];
	return udp_check(ctx, &dst, al_ctx_port(ctx->user_port));
}

/* The agent asks who its peer is: answer with where it meant to go. */
static __always_inline struct al_origin *origin_of(struct bpf_sock_addr *ctx)
{
	if (ctx->type != AL_SOCK_STREAM)
		return 0;
	return bpf_sk_storage_get(&al_origin, ctx->sk, 0, 0);
}

SEC("cgroup/getpeername4")
int al_getpeername4(struct bpf_sock_addr *ctx)
{
	struct al_origin *o = origin_of(ctx);

	if (o && al_addr_is_v4mapped(&o->dst)) {
		ctx->user_ip4 = o->dst.w[3];
		ctx->user_port = al_ctx_port_make(o->dst_port);
	}
	return 1;
}

SEC("cgroup/getpeername6")
int al_getpeername6(struct bpf_sock_addr *ctx)
{
	struct al_origin *o = origin_of(ctx);

	if (!o)
		return 1;
	ctx->user_ip6[0] = o->dst.w[0];
	asm volatile("" ::: "memory");
	ctx->user_ip6[1] = o->dst.w[1];
	asm volatile("" ::: "memory");
	ctx->user_ip6[2] = o->dst.w[2];
	asm volatile("" ::: "memory");
	ctx->user_ip6[3] = o->dst.w[3];
	ctx->user_port = al_ctx_port_make(o->dst_port);
	return 1;
}

/*
 * Runs before the SYN leaves (TCP_CONNECT_CB): publish the origin under the
 * agent's address and port, so the daemon finds it right after accept().
 * Removes it when the socket closes; al_conns is an LRU as a backstop.
 */
SEC("sockops")
int al_sockops(struct bpf_sock_ops *skops)
{
	struct al_conn_key key;
	struct al_origin *o;
	struct bpf_sock *sk;
	struct al_addr a;

	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB && skops->op != BPF_SOCK_OPS_STATE_CB)
		return 1;
	sk = skops->sk;
	if (!sk)
		return 1;

	if (skops->family == AL_AF_INET) {
		__u32 ip4;

		CTX_LOAD(ip4, skops->local_ip4);
		al_addr_from_v4(&a, ip4);
	} else if (skops->family == AL_AF_INET6) {
		CTX_LOAD(a.w[0], skops->local_ip6[0]);
		CTX_LOAD(a.w[1], skops->local_ip6[1]);
		CTX_LOAD(a.w[2], skops->local_ip6[2]);
		CTX_LOAD(a.w[3], skops->local_ip6[3]);
	} else {
		return 1;
	}
	__builtin_memset(&key, 0, sizeof(key));
	al_conn_key_make(&key, &a, (__u16)skops->local_port);

	if (skops->op == BPF_SOCK_OPS_STATE_CB) {
		if (skops->args[1] == BPF_TCP_CLOSE)
			bpf_map_delete_elem(&al_conns, &key);
		return 1;
	}

	o = bpf_sk_storage_get(&al_origin, sk, 0, 0);
	if (!o)
		return 1;
	o->flags |= AL_ORIGIN_PUBLISHED;
	bpf_map_update_elem(&al_conns, &key, o, BPF_ANY);
	bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG);
	return 1;
}
