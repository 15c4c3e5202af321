/* The kernel side as the daemon sees it: cgroup v2 discovery, BPF load, attach, pin and re-adopt. */
#ifndef AIRLOCK_KERNEL_H
#define AIRLOCK_KERNEL_H

#include <stdint.h>
#include <sys/types.h>
#include <airlock/common.h>
#include <airlock/bpf_abi.h>
#include <airlock/reason.h>

struct kern;

/* The cgroup v2 mount point, read from /proc/self/mounts (never assumed). */
int kern_cgroup2_mount(char *buf, size_t len) AL_MUST;

/*
 * Resolves an operator's cgroup argument: an absolute path under the v2
 * mount, or a path relative to it ("/system.slice/agent.service" and
 * "system.slice/agent.service" both mean the same). Fills the absolute
 * directory path, the path relative to the mount (starting with "/") and
 * the cgroup id. Fails with a message if it is not a cgroup directory.
 */
struct kern_cgroup {
	char abs[4096];
	char rel[4096];
	uint64_t id;
};
int kern_cgroup_resolve(const char *arg, struct kern_cgroup *cg, char *err, size_t errlen) AL_MUST;
/* The absolute path the operator's cgroup argument names, as kern_cgroup_resolve reads it, but
 * whether or not it exists (nothing resolved); *mlen (if not NULL): the mount's length in it. */
int kern_cgroup_join(const char *arg, char *abs, size_t len, size_t *mlen) AL_MUST;
/* The cgroup v2 of a process (from /proc/PID/cgroup). */
int kern_cgroup_of_pid(pid_t pid, struct kern_cgroup *cg, char *err, size_t errlen) AL_MUST;
/* Path relative to the v2 mount of the cgroup with this id; -1 if gone. Kept by id: asked
 * again while the cgroup is still there under that path, it costs one stat. */
int kern_cgroup_path(uint64_t id, char *buf, size_t len) AL_MUST;
/* The cgroup id of the directory at abs (its inode number); 0 if there is none. */
uint64_t kern_cgroup_id_at(const char *abs);
/* 1 if this process is in the initial PID namespace, where the pids BPF records (the host's)
 * name the same processes as our /proc; 0 if not. */
int kern_host_pids(void);

/* Mounts bpffs at /sys/fs/bpf if nothing is mounted there. */
int kern_ensure_bpffs(void) AL_MUST;

/*
 * Loads the programs with `steer_port`, reusing the maps pinned under
 * pin_root (creating and pinning them on first start), then re-adopts the
 * links pinned by an earlier run by swapping in the new programs in place
 * (bpf_link update: no detach, no unsteered window). A link found detached
 * while its cgroup exists is taken over as it is: the first kern_fence_check
 * attaches it again (and reports it); a cgroup that is gone loses its pins.
 * Holds an exclusive lock on pin_root so two daemons cannot share it.
 */
int kern_open(const char *pin_root, uint16_t steer_port, struct kern **out,
	      char *err, size_t errlen) AL_MUST;
void kern_close(struct kern *k);

/* Attach every program to the cgroup and pin the links. Refuses the root
 * cgroup and the daemon's own cgroup or any of its ancestors. */
int kern_pin(struct kern *k, const struct kern_cgroup *cg, char *err, size_t errlen) AL_MUST;
/* Detach and unpin; -1 with a message if it was not pinned. */
int kern_unpin(struct kern *k, uint64_t cgroup_id, char *err, size_t errlen) AL_MUST;
/* Ids of the pinned cgroups; returns how many (at most max) or -1. */
int kern_pinned(struct kern *k, uint64_t *ids, size_t max);
/* Calls fn for each numbered entry (1..max) of <root>/<sub>, the pins of one kind; stops at fn's -1. */
int kern_pin_dir_each(const char *root, const char *sub, unsigned long long max,
		      int (*fn)(void *arg, unsigned long long n, char *err, size_t errlen), void *arg,
		      char *err, size_t errlen) AL_MUST;
/* 1 if the cgroup at rel (relative to the v2 mount) is a pinned cgroup or
 * below one, or if that cannot be told (rel gone); 0 if not. A stat per level of
 * rel. Callers that cannot find a peer's cgroup refuse it. */
int kern_in_pinned(struct kern *k, const char *rel);

/*
 * The fence check. A pinned link can change behind airlockd's back: any uid-0 process may
 * BPF_OBJ_GET its pin and detach it (BPF_LINK_DETACH, `bpftool link detach`) or make it run
 * another program (BPF_LINK_UPDATE). A detached link reports target 0 (cgroup id, ifindex),
 * exactly as one whose cgroup or interface is gone: only whether that still exists tells
 * "put it back" from "drop the pin".
 */
enum kern_fate {
	KERN_FATE_OK,           /* attached, running our program */
	KERN_FATE_UNKNOWN,      /* its info could not be read: left as it is */
	KERN_FATE_GONE,         /* its cgroup or interface no longer exists: the pin goes */
	KERN_FATE_DETACHED,     /* detached while its cgroup or interface exists: attach again */
	KERN_FATE_REPLACED,     /* attached but running another program: ours goes back in */
	KERN_FATE_UNPINNED,     /* attached and ours, but its pin was removed or replaced: without
				 * it the link would go with airlockd (a restart, an upgrade): pinned again */
};
/* What the kernel says of one link, and what it should be. */
struct kern_link_seen {
	int info_ok;            /* its bpf_link_info could be read */
	uint64_t target;        /* the cgroup id or ifindex it reports: 0 if detached or gone */
	int target_exists;      /* the cgroup or interface it was made for still exists (read
				 * only when target is 0): a cgroup another of its links still
				 * reports, or one that can be opened by its id; an interface
				 * with that index */
	uint32_t prog_id;       /* the program it runs */
	uint32_t ours;          /* the program it should run; 0: not known, never "replaced" */
	int pin_lost;           /* its pin is not the one airlockd made: removed, or another object there */
};
enum kern_fate kern_link_fate(const struct kern_link_seen *s);
/* "ok", "unknown", "gone", "detached", "replaced", "unpinned". */
const char *kern_fate_name(enum kern_fate f);

/* One finding of a fence check (kern_fence_check, xdp_fence_check): GONE, DETACHED or REPLACED. */
struct kern_fence_event {
	enum kern_fate fate;
	uint64_t cgroup_id;     /* a pinned cgroup's link; 0 for an interface's */
	int ifindex;            /* a pinned or guarded interface's XDP link; 0 for a cgroup's */
	const char *ifname;     /* its name ("" if none here) */
	const char *prog;       /* our program on that link (NULL: a GONE cgroup, all its links) */
	uint32_t link_id;       /* the link found detached or re-programmed */
	uint32_t found_prog_id; /* REPLACED: the program it ran */
	uint32_t new_link_id;   /* DETACHED, repaired: the link attached (and pinned) in its place */
	int repaired;           /* DETACHED/REPLACED: 1 ours runs there again; 0 not (err says why) */
	int again;              /* not repaired, as at the check before: the same failure once more */
	const char *err;
};
typedef void (*kern_fence_cb)(void *arg, const struct kern_fence_event *e);
/*
 * Checks every pinned cgroup's links, one bpf_obj_get_info_by_fd each (and an open of the
 * cgroup if one reports none). A detached link is attached again and its pin replaced (rename
 * over it: never a moment without one), a re-programmed one gets ours back (BPF_LINK_UPDATE),
 * a cgroup that is gone (none of its links reports it, and it cannot be opened) loses its
 * pins. cb hears each finding (it must not pin or unpin). Returns how many findings.
 */
int kern_fence_check(struct kern *k, kern_fence_cb cb, void *arg);
/* Pins fd's link at path in place of what is pinned there: beside it first, then renamed over
 * it, so path never lacks a pin. Its directory is made again (0700) if it went. */
int kern_pin_replace(int fd, const char *path) AL_MUST;
/* Repairs counted for status and /metrics (kern_fence_note), since start. */
struct kern_fence_stats {
	uint64_t detached;      /* links attached again */
	uint64_t replaced;      /* links given our program back */
	uint64_t unpinned;      /* links pinned again */
	uint64_t failed;        /* repairs that failed (a run of failures of one link counts once) */
};
void kern_fence_note(struct kern *k, const struct kern_fence_event *e);
/* What kern_fence_note adds to s for e (only repairs and first failures count). */
void kern_fence_tally(struct kern_fence_stats *s, const struct kern_fence_event *e);
void kern_fence_stats(const struct kern *k, struct kern_fence_stats *out);

/* Takes (looks up and removes) the origin record of an accepted connection. */
int kern_take_origin(struct kern *k, const struct al_addr *agent, uint16_t agent_port,
		     struct al_origin *out) AL_MUST;

/* The executable of the process with this host pid: what the connect hook recorded (al_exe),
 * else /proc/PID/exe, which needs CAP_SYS_PTRACE for another user's process and the host's PID
 * namespace (kern_host_pids). 0 with the path in buf, -1 if neither knows. */
int kern_exe(struct kern *k, uint32_t tgid, char *buf, size_t len) AL_MUST;
/* 1 if the connect hook records executables on this kernel (kern_open probed it). */
int kern_exe_by_kernel(const struct kern *k);

/* Per-reason counters summed over CPUs. */
int kern_counters(struct kern *k, uint64_t out[AL_REASON_MAX]) AL_MUST;

/* Replaces the set of DNS resolvers agents may send UDP/53 to. */
int kern_set_resolvers(struct kern *k, const struct al_addr *addrs, size_t n, char *err,
		       size_t errlen) AL_MUST;

/* Refusal events from the kernel. kern_events_open returns an fd that turns
 * readable when events wait; kern_events_drain then calls cb for each
 * (a struct al_event of `len` bytes) and returns how many, or -1. */
typedef int (*kern_event_cb)(void *arg, const void *data, size_t len);
int kern_events_open(struct kern *k, kern_event_cb cb, void *arg, char *err, size_t errlen) AL_MUST;
int kern_events_drain(struct kern *k);

/* Removes everything under pin_root: detaches every pinned link (cgroups
 * and XDP interfaces), unpins the maps, and removes the nftables table and
 * policy routing recorded for pinned interfaces (netdev_down). Works with
 * or without a running daemon. */
int kern_down(const char *pin_root, char *err, size_t errlen) AL_MUST;

#endif
