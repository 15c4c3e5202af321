/* Maps shared by every Airlock BPF object; pinned, so each object reuses the same instance. */
#ifndef AIRLOCK_BPF_LIB_MAPS_H
#define AIRLOCK_BPF_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <airlock/bpf_abi.h>
#include <airlock/reason.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AL_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} al_counters SEC(".maps");

/* ABI version of the pinned maps, written by the daemon once. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} al_abi SEC(".maps");

/* DNS resolvers pinned agents may send UDP/53 to; filled by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AL_RESOLVERS_MAX);
	__type(key, struct al_addr);
	__type(value, __u8);
} al_resolvers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, AL_EVENTS_BYTES);
} al_events SEC(".maps");

static __always_inline void al_count(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&al_counters, &reason);

	if (c)
		*c += 1;
}

static __always_inline int al_is_resolver(const struct al_addr *a)
{
	return bpf_map_lookup_elem(&al_resolvers, a) != 0;
}

/* Counts a refusal and reports it. With `task`, identity comes from the
 * current task; without (egress), only the socket's cgroup is known. */
static __always_inline void al_refuse_event(__u32 reason, __u16 family, __u16 type, __u16 protocol,
					    const struct al_addr *dst, __u16 port, int task,
					    __u64 sk_cgroup_id)
{
	struct al_event *e;

	al_count(reason);
	e = bpf_ringbuf_reserve(&al_events, sizeof(*e), 0);
	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	e->ktime_ns = bpf_ktime_get_ns();
	e->reason = reason;
	e->family = family;
	e->type = type;
	e->protocol = protocol;
	e->dst_port = port;
	if (dst)
		e->dst = *dst;
	if (task) {
		__u64 pt = bpf_get_current_pid_tgid();

		e->pid = (__u32)pt;
		e->tgid = (__u32)(pt >> 32);
		e->uid = (__u32)bpf_get_current_uid_gid();
		e->cgroup_id = bpf_get_current_cgroup_id();
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	} else {
		e->cgroup_id = sk_cgroup_id;
	}
	bpf_ringbuf_submit(e, 0);
}

#endif
