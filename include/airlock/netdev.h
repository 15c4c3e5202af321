/* Interfaces: XDP on pinned (agent) and guarded (backend) interfaces, and the nftables TPROXY + policy routing that steer a pinned interface's TCP into airlockd. */
#ifndef AIRLOCK_NETDEV_H
#define AIRLOCK_NETDEV_H

#include <net/if.h>
#include <stdint.h>
#include <airlock/common.h>
#include <airlock/bpf_abi.h>
#include <airlock/kernel.h>

/* ---- XDP (userspace/kernel/xdp.c) ---- */

struct xdp;

enum xdp_role {
	XDP_ROLE_AGENT = 0,         /* al_xdp_agent: only TCP, DNS to resolvers, ARP/ND in */
	XDP_ROLE_GUARD = 1,         /* al_xdp_guard: protected TCP ports only from appliances */
};

struct xdp_iface {
	int ifindex;
	char name[IF_NAMESIZE];     /* "" if the interface has no name in our netns any more */
	enum xdp_role role;
	int native;                 /* 1: driver mode, 0: generic (skb) mode */
};

/*
 * Loads the XDP programs, reusing the maps kern_open pinned under
 * pin_root (call it first: it owns the lock and the ABI check), and
 * re-adopts the XDP links an earlier run pinned under pin_root/iface by
 * swapping in the new programs in place. Links of interfaces that are gone
 * are removed (with their guard entries).
 */
int xdp_open(const char *pin_root, struct xdp **out, char *err, size_t errlen) AL_MUST;
/* Drops our handles; the links stay pinned and keep filtering. */
void xdp_close(struct xdp *x);

/* Attaches the role's program to the interface (driver mode if it has one,
 * else generic) and pins the link. Refuses loopback, and an interface that
 * already has an Airlock program. */
int xdp_attach(struct xdp *x, const char *ifname, enum xdp_role role, struct xdp_iface *out,
	       char *err, size_t errlen) AL_MUST;
/* Detaches and unpins; for a guard also removes its ports and sources. */
int xdp_detach(struct xdp *x, int ifindex, char *err, size_t errlen) AL_MUST;
/* The attached interfaces; returns how many (at most max). */
int xdp_list(struct xdp *x, struct xdp_iface *out, size_t max);
/* How many interfaces are attached. */
size_t xdp_count(const struct xdp *x);
/* The interface by name, if attached; NULL otherwise. */
const struct xdp_iface *xdp_find(struct xdp *x, const char *ifname);
/* The same by index, with the name it had when last listed (no syscall). */
const struct xdp_iface *xdp_by_index(struct xdp *x, int ifindex);
/* Forgets and unpins the links of interfaces that no longer exist (a
 * container stopped); returns how many, and in *agents how many of those
 * were agent interfaces (their nftables rules need a resync). A link detached
 * while its interface exists stays, for xdp_fence_check. */
int xdp_prune(struct xdp *x, int *agents);
/* kern_fence_check for the XDP links: a detached link is attached again (driver mode where
 * the device can) and its pin replaced, a re-programmed one gets ours back, one whose
 * interface is gone is forgotten as by xdp_prune (*agents counts those of agent interfaces). */
int xdp_fence_check(struct xdp *x, kern_fence_cb cb, void *arg, int *agents);

/* Replaces the protected ports and allowed sources of a guarded interface
 * (new entries go in before stale ones leave: no moment without a guard). */
int xdp_guard_set(struct xdp *x, int ifindex, const uint16_t *ports, size_t nports,
		  const struct al_addr *allow, size_t nallow, char *err, size_t errlen) AL_MUST;
/* Reads them back; counts are in/out (capacity in, found out). */
int xdp_guard_get(struct xdp *x, int ifindex, uint16_t *ports, size_t *nports,
		  struct al_addr *allow, size_t *nallow) AL_MUST;

/* Takes (looks up and removes) the SYN record of an accepted TPROXY connection. */
int xdp_take_flow(struct xdp *x, const struct al_flow_key *k, struct al_flow_origin *out) AL_MUST;

/* The pinned record of what was installed outside bpffs (see bpf_abi.h). */
int xdp_netcfg_get(struct xdp *x, struct al_netcfg *out) AL_MUST;
int xdp_netcfg_set(struct xdp *x, const struct al_netcfg *c) AL_MUST;

/*
 * For kern_down: removes the nftables table, policy routing rules and
 * routes recorded in pin_root/maps/al_netcfg, then detaches and unpins
 * every XDP link under pin_root/iface. Works with or without a daemon.
 */
int netdev_down(const char *pin_root, char *err, size_t errlen) AL_MUST;

/* ---- nftables and policy routing (userspace/kernel/nft.c) ---- */

/*
 * Makes table `inet <table>` hold exactly one chain, prerouting (type
 * filter, hook prerouting, priority mangle), with for each interface:
 *   iif I meta nfproto ipv4 meta l4proto tcp tproxy ip to 127.0.0.1:port meta mark set M accept
 *   iif I meta nfproto ipv6 meta l4proto tcp tproxy ip6 to [::1]:port meta mark set M accept
 *   iif I meta l4proto tcp reject with tcp reset
 * The last rule keeps it closed when no listener is there (daemon down).
 * One netlink batch: the old contents are replaced atomically. n == 0
 * deletes the table. Interfaces are matched by index, like the XDP pins.
 */
int nft_steer_set(const char *table, const int *ifindexes, size_t n, uint16_t port, uint32_t mark,
		  char *err, size_t errlen) AL_MUST;
/* Deletes table `inet <table>`; 0 also if it did not exist. */
int nft_table_delete(const char *table, char *err, size_t errlen) AL_MUST;

/*
 * Policy routing for TPROXY, IPv4 and IPv6: `rule fwmark M lookup T` and
 * `route local default dev lo table T`. on = 1 adds (present already is
 * fine), on = 0 removes (absent already is fine).
 */
int netdev_tproxy_routes(uint32_t mark, uint32_t table, int on, char *err, size_t errlen) AL_MUST;

/* Valid nftables table name for the configuration: 1..63 of A-Z a-z 0-9 _ - */
int nft_table_name_ok(const char *name);

#endif
