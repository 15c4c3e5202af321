/* The contract between Airlock's kernel programs and the daemon: map layouts and pin names. */
#ifndef AIRLOCK_BPF_ABI_H
#define AIRLOCK_BPF_ABI_H

#include <linux/types.h>

/*
 * Values the BPF side needs but cannot take from libc headers.
 */
#define AL_AF_INET       2
#define AL_AF_INET6      10
#define AL_SOCK_STREAM   1
#define AL_SOCK_DGRAM    2
#define AL_IPPROTO_TCP   6
#define AL_IPPROTO_UDP   17
#define AL_IPPROTO_ICMP  1
#define AL_IPPROTO_ICMPV6 58
#define AL_AF_UNIX       1
#define AL_AF_NETLINK    16
#define AL_NETLINK_ROUTE 0
#define AL_ETH_P_IP      0x0800
#define AL_ETH_P_IPV6    0x86DD
#define AL_COMM_LEN      16

/*
 * Bump when a map layout below changes. The daemon refuses to adopt pinned
 * maps of another version (it names `airlockctl down` as the way out),
 * because a reused map of the wrong shape would be misread silently.
 */
#define AL_ABI_VERSION   2

/*
 * Addresses are kept as 16 bytes in IPv6 form; IPv4 as v4-mapped
 * (::ffff:a.b.c.d). Both the kernel (sockops, where a dual-stack IPv6
 * socket may carry a v4-mapped address) and the daemon (an IPv4 accept())
 * normalise to this form, so one key shape serves both families.
 */
struct al_addr {
	__u32 w[4];                 /* network byte order words */
};

/* Key of al_conns: the agent's end of the steered connection, which is the
 * peer address the daemon sees after accept(). */
struct al_conn_key {
	struct al_addr addr;
	__u16 port;                 /* host byte order */
	__u16 pad;
};

/*
 * The executable of a process that made a steered connect(), by the kernel at
 * that moment (al_exe, keyed by tgid): the path of task->mm->exe_file from the
 * root of the process's mount namespace, as /proc/PID/exe would show it,
 * without /proc (which needs CAP_SYS_PTRACE, races with the process's exit,
 * and shows other processes from inside a PID namespace). len < AL_EXE_PATH;
 * path is twice that so the kernel's bounded copies fit; flags say the path is
 * not whole (the daemon then falls back to /proc).
 */
#define AL_EXE_PATH       256
#define AL_EXE_PARTS      32        /* path components walked, at most */
#define AL_EXE_TOO_DEEP   (1u << 0)
#define AL_EXE_TOO_LONG   (1u << 1)
#define AL_EXE_MAX        4096      /* processes remembered (LRU, preallocated: about 2 MiB) */

struct al_exe {
	__u32 len;
	__u32 flags;
	char path[2 * AL_EXE_PATH];
};

/* What the connect hook learned: where the agent meant to go, and who it is. */
struct al_origin {
	struct al_addr dst;
	__u16 dst_port;             /* host byte order */
	__u16 family;               /* AL_AF_INET or AL_AF_INET6: the socket's family */
	__u32 flags;                /* AL_ORIGIN_* */
	__u64 cgroup_id;            /* task's cgroup at connect() */
	__u32 pid;                  /* thread id */
	__u32 tgid;                 /* process id */
	__u32 uid;
	__u32 gid;
	__u64 ktime_ns;             /* bpf_ktime_get_ns() at connect() */
	char comm[AL_COMM_LEN];
};

#define AL_ORIGIN_V4MAPPED  (1u << 0)   /* IPv6 socket, v4-mapped destination */
#define AL_ORIGIN_PUBLISHED (1u << 1)   /* sockops has put it in al_conns */

/* A refused attempt, sent to the daemon through the al_events ring buffer
 * (which drops when full: the counters stay exact, the events are a sample). */
struct al_event {
	__u64 ktime_ns;
	__u64 cgroup_id;
	__u32 pid;                  /* thread id; 0 where no task context (egress) */
	__u32 tgid;
	__u32 uid;
	__u32 reason;               /* enum al_reason */
	__u16 family;               /* socket family */
	__u16 type;                 /* socket type */
	__u16 protocol;
	__u16 dst_port;             /* host byte order; 0 when not applicable */
	struct al_addr dst;
	char comm[AL_COMM_LEN];
};

#define AL_EVENTS_BYTES  (256 * 1024)
#define AL_RESOLVERS_MAX 64

/* Pin layout under the pin root (default /sys/fs/bpf/airlock):
 *   maps/<map name>                   the maps, reused by every daemon start
 *   cg/<cgroup id>/<program name>     one bpf_link per program per pinned cgroup
 *   iface/<ifindex>/<program name>    the XDP link of a pinned (al_xdp_agent) or
 *                                     guarded (al_xdp_guard) interface
 */
#define AL_PIN_MAPS_DIR  "maps"
#define AL_PIN_CG_DIR    "cg"
#define AL_PIN_IFACE_DIR "iface"

/*
 * Interfaces (XDP). An agent in a network namespace reaches the host through
 * a pinned interface; the XDP program there notes every TCP SYN it lets in
 * under the connection's 4-tuple, so the daemon learns, after the TPROXY
 * listener accepted, which interface the connection came from.
 */
struct al_flow_key {
	struct al_addr src;         /* the agent's end */
	struct al_addr dst;         /* where it meant to go */
	__u16 sport;                /* host byte order */
	__u16 dport;                /* host byte order */
};

struct al_flow_origin {
	__u32 ifindex;              /* the interface the SYN arrived on */
	__u32 pad;
	__u64 ktime_ns;
};

#define AL_FLOWS_MAX     65536

/* A guarded interface: TCP to (ifindex, port) only from (ifindex, address). */
struct al_guard_port_key {
	__u32 ifindex;
	__u16 port;                 /* host byte order */
	__u16 pad;
};

struct al_guard_src_key {
	__u32 ifindex;
	__u32 pad;
	struct al_addr addr;
};

#define AL_GUARD_MAX     4096

/*
 * What the daemon installed outside bpffs for pinned interfaces (nftables
 * table, policy routing rule and route), recorded in the pinned al_netcfg
 * map before it is installed, so `airlockctl down` can remove it even with
 * no daemon and no configuration at hand.
 */
#define AL_NFT_TABLE_MAX 64
struct al_netcfg {
	__u32 active;               /* 1: the table, rules and routes may exist */
	__u32 mark;                 /* fwmark of TPROXYed packets */
	__u32 route_table;          /* routing table with the local default route */
	__u16 tproxy_port;
	__u16 pad;
	char nft_table[AL_NFT_TABLE_MAX]; /* table name in family inet, NUL-terminated */
};

/* Bounds. al_conns is an LRU so a daemon that never collects cannot make
 * it refuse new entries; the daemon deletes each entry after accept(). */
#define AL_CONNS_MAX     65536

#endif
