/* The executable of the current task, by the kernel: a walk up task->mm->exe_file's dentries and mounts (al_exe). */
#ifndef AIRLOCK_BPF_LIB_EXE_H
#define AIRLOCK_BPF_LIB_EXE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <airlock/bpf_abi.h>

/*
 * The kernel structures read, as much of them as the walk needs; CO-RE
 * relocates each field to where the running kernel has it (its BTF), so no
 * vmlinux.h and no kernel headers. The ___al suffix keeps them apart from
 * the kernel's own names.
 */
struct qstr___al {
	union {
		struct {
			__u32 hash;
			__u32 len;
		};
		__u64 hash_len;
	};
	const unsigned char *name;
} __attribute__((preserve_access_index));

struct dentry___al {
	struct dentry___al *d_parent;
	struct qstr___al d_name;
} __attribute__((preserve_access_index));

struct vfsmount___al {
	struct dentry___al *mnt_root;
} __attribute__((preserve_access_index));

struct mount___al {
	struct mount___al *mnt_parent;
	struct dentry___al *mnt_mountpoint;
	struct vfsmount___al mnt;
} __attribute__((preserve_access_index));

struct path___al {
	struct vfsmount___al *mnt;
	struct dentry___al *dentry;
} __attribute__((preserve_access_index));

struct file___al {
	struct path___al f_path;
} __attribute__((preserve_access_index));

struct mm_struct___al {
	struct file___al *exe_file;
} __attribute__((preserve_access_index));

struct task_struct___al {
	struct mm_struct___al *mm;
} __attribute__((preserve_access_index));

/* Set by the daemon at load time when this kernel lets cgroup programs read
 * the current task (bpf_get_current_task_btf) and loop (bpf_loop); without,
 * the verifier drops the walk and the daemon reads /proc/PID/exe instead. */
const volatile __u8 want_exe = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AL_EXE_MAX);
	__type(key, __u32);
	__type(value, struct al_exe);
} al_exe SEC(".maps");

/* The components found on the way up (leaf first), then the path being built. */
struct al_exe_parts {
	__u64 name[AL_EXE_PARTS];
	__u32 len[AL_EXE_PARTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct al_exe_parts);
} al_exe_parts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct al_exe);
} al_exe_build SEC(".maps");

struct al_exe_up {
	struct dentry___al *d;
	struct mount___al *m;
	struct al_exe_parts *parts;
	__u32 n;
	__u32 flags;
};

/* One step up: to the parent directory, or at a mount's root to where it is mounted;
 * stops (1) at the namespace's root. bpf_loop callback. */
static long al_exe_up_step(__u64 i, void *arg)
{
	struct al_exe_up *c = arg;
	struct mount___al *m = c->m;
	struct dentry___al *d = c->d, *p;

	if (d == BPF_CORE_READ(m, mnt.mnt_root)) {
		struct mount___al *parent = BPF_CORE_READ(m, mnt_parent);

		if (parent == m)
			return 1;
		c->d = BPF_CORE_READ(m, mnt_mountpoint);
		c->m = parent;
		return 0;
	}
	p = BPF_CORE_READ(d, d_parent);
	if (p == d)
		return 1;
	if (c->n >= AL_EXE_PARTS) {
		c->flags |= AL_EXE_TOO_DEEP;
		return 1;
	}
	c->parts->name[c->n & (AL_EXE_PARTS - 1)] = (__u64)BPF_CORE_READ(d, d_name.name);
	c->parts->len[c->n & (AL_EXE_PARTS - 1)] = BPF_CORE_READ(d, d_name.len);
	c->n++;
	c->d = p;
	return 0;
}

struct al_exe_down {
	struct al_exe_parts *parts;
	struct al_exe *out;
	__u32 n;
	__u32 off;
};

/* Appends "/" and the i-th component from the top. bpf_loop callback. */
static long al_exe_down_step(__u64 i, void *arg)
{
	struct al_exe_down *c = arg;
	__u32 j, len, off = c->off;

	if (i >= c->n)
		return 1;
	j = (c->n - 1 - (__u32)i) & (AL_EXE_PARTS - 1);
	len = c->parts->len[j];
	if (off + 1 + len >= AL_EXE_PATH) {
		c->out->flags |= AL_EXE_TOO_LONG;
		return 1;
	}
	c->out->path[off & (AL_EXE_PATH - 1)] = '/';
	off = (off + 1) & (AL_EXE_PATH - 1);
	if (bpf_probe_read_kernel(&c->out->path[off], len & (AL_EXE_PATH - 1), (const void *)c->parts->name[j]) < 0) {
		c->out->flags |= AL_EXE_TOO_LONG;
		return 1;
	}
	c->off = off + len;
	return 0;
}

/* Records the current process's executable in al_exe (when want_exe). */
static __always_inline void al_exe_capture(__u32 tgid)
{
	struct task_struct___al *t;
	struct al_exe_parts *parts;
	struct al_exe_up up = { 0 };
	struct al_exe_down down = { 0 };
	struct file___al *f;
	struct al_exe *out;
	__u32 zero = 0;

	if (!want_exe)
		return;
	parts = bpf_map_lookup_elem(&al_exe_parts, &zero);
	out = bpf_map_lookup_elem(&al_exe_build, &zero);
	if (!parts || !out)
		return;
	t = (struct task_struct___al *)bpf_get_current_task_btf();
	f = BPF_CORE_READ(t, mm, exe_file);
	if (!f)
		return;
	up.d = BPF_CORE_READ(f, f_path.dentry);
	/* container_of, with the offset of mnt in the running kernel's struct mount. */
	up.m = (struct mount___al *)((void *)BPF_CORE_READ(f, f_path.mnt) -
				     bpf_core_field_offset(struct mount___al, mnt));
	up.parts = parts;
	if (bpf_loop(2 * AL_EXE_PARTS, al_exe_up_step, &up, 0) == 2 * AL_EXE_PARTS)
		up.flags |= AL_EXE_TOO_DEEP;
	out->flags = up.flags;
	down.parts = parts;
	down.out = out;
	down.n = up.n;
	bpf_loop(AL_EXE_PARTS, al_exe_down_step, &down, 0);
	if (down.off == 0)
		out->path[down.off++] = '/';
	out->path[down.off & (AL_EXE_PATH - 1)] = '\0';
	out->len = down.off & (AL_EXE_PATH - 1);
	bpf_map_update_elem(&al_exe, &tgid, out, BPF_ANY);
}

#endif
