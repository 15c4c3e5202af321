/* XDP on interfaces: attach, pin under pin_root/iface/<ifindex>, re-adopt after a restart, guard maps, TPROXY flow records. */
#include <airlock/kernel.h>
#include <airlock/netdev.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xdp_guard.skel.h"

#define ERR(...) al_errf(err, errlen, __VA_ARGS__)

struct xdp_link {
	struct xdp_iface info;
	int fd;                     /* the bpf_link, also pinned */
	int failing;                /* the last fence check could not repair it */
	ino_t pin_ino;              /* its pin's inode as airlockd made it (0: not known) */
};

struct xdp {
	struct xdp_guard *skel;
	char root[PATH_MAX];
	struct xdp_link *links;
	size_t n, cap;
	uint32_t prog_ids[2];       /* by role: what its links should run (0: not known) */
};

static struct bpf_program *role_prog(struct xdp *x, enum xdp_role role)
{
	return role == XDP_ROLE_GUARD ? x->skel->progs.al_xdp_guard : x->skel->progs.al_xdp_agent;
}

static const char *role_name(enum xdp_role role)
{
	return role == XDP_ROLE_GUARD ? "al_xdp_guard" : "al_xdp_agent";
}

static int iface_dir(const char *root, char *buf, size_t len, int ifindex)
{
	return al_fmt(buf, len, "%s/" AL_PIN_IFACE_DIR "/%d", root, ifindex);
}

static int link_path(const char *root, char *buf, size_t len, int ifindex, enum xdp_role role)
{
	return al_fmt(buf, len, "%s/" AL_PIN_IFACE_DIR "/%d/%s", root, ifindex, role_name(role));
}

/* The inode of the pin of l; 0 if there is none. */
static ino_t link_pin_ino(const struct xdp *x, const struct xdp_link *l)
{
	char path[PATH_MAX];
	struct stat st;

	if (link_path(x->root, path, sizeof(path), l->info.ifindex, l->info.role) < 0 || stat(path, &st) < 0)
		return 0;
	return st.st_ino;
}

static int is_native(int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	return bpf_xdp_query(ifindex, 0, &q) == 0 && q.drv_prog_id != 0;
}

static void fill_info(struct xdp_iface *i, int ifindex, enum xdp_role role)
{
	memset(i, 0, sizeof(*i));
	i->ifindex = ifindex;
	i->role = role;
	if (!if_indextoname((unsigned int)ifindex, i->name))
		i->name[0] = '\0';
	i->native = is_native(ifindex);
}

static struct xdp_link *link_add(struct xdp *x)
{
	struct xdp_link *l;

	if (AL_GROW(x->links, x->n, x->cap, 8) < 0)
		return NULL;
	l = &x->links[x->n++];
	memset(l, 0, sizeof(*l));
	l->fd = -1;
	return l;
}

static struct xdp_link *link_find(struct xdp *x, int ifindex)
{
	for (size_t i = 0; i < x->n; i++)
		if (x->links[i].info.ifindex == ifindex)
			return &x->links[i];
	return NULL;
}

/* Removes every map entry that names ifindex (both guard maps). */
static void guard_clear(struct xdp *x, int ifindex, const uint16_t *keep_ports, size_t nports,
			const struct al_addr *keep_allow, size_t nallow)
{
	int pfd = bpf_map__fd(x->skel->maps.al_guard_ports);
	int afd = bpf_map__fd(x->skel->maps.al_guard_allow);
	struct al_guard_port_key pk, pnext;
	struct al_guard_src_key sk, snext;
	int more;

	more = bpf_map_get_next_key(pfd, NULL, &pk) == 0;
	while (more) {
		int keep = 0;

		more = bpf_map_get_next_key(pfd, &pk, &pnext) == 0;
		for (size_t i = 0; i < nports && !keep; i++)
			keep = pk.port == keep_ports[i];
		if ((int)pk.ifindex == ifindex && !keep)
			(void)bpf_map_delete_elem(pfd, &pk);
		pk = pnext;
	}
	more = bpf_map_get_next_key(afd, NULL, &sk) == 0;
	while (more) {
		int keep = 0;

		more = bpf_map_get_next_key(afd, &sk, &snext) == 0;
		for (size_t i = 0; i < nallow && !keep; i++)
			keep = memcmp(&sk.addr, &keep_allow[i], sizeof(sk.addr)) == 0;
		if ((int)sk.ifindex == ifindex && !keep)
			(void)bpf_map_delete_elem(afd, &sk);
		sk = snext;
	}
}

/* The link's info as kern_link_seen (target: its ifindex; ifindex is the one it was made
 * for, whose existence decides detached from gone). */
static void xdp_link_seen(int fd, int ifindex, struct bpf_link_info *info, struct kern_link_seen *s)
{
	char name[IF_NAMESIZE];
	__u32 ilen = sizeof(*info);

	memset(info, 0, sizeof(*info));
	memset(s, 0, sizeof(*s));
	s->info_ok = bpf_obj_get_info_by_fd(fd, info, &ilen) == 0 && info->type == BPF_LINK_TYPE_XDP;
	s->target = info->xdp.ifindex;
	s->prog_id = info->prog_id;
	if (s->info_ok && !s->target)
		s->target_exists = ifindex > 0 && if_indextoname((unsigned int)ifindex, name) != NULL;
}

/*
 * A new XDP link of prog_fd on interface idx: driver mode where the device can (veth can,
 * unless its peer's MTU is too large for one page), generic mode otherwise. The fd, or -1
 * with errno.
 */
static int link_create(int prog_fd, unsigned int idx, const char *ifname)
{
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = XDP_FLAGS_DRV_MODE);
	int fd, e;

	fd = bpf_link_create(prog_fd, (int)idx, BPF_XDP, &opts);
	if (fd < 0 && errno != EBUSY && errno != EEXIST) {
		e = errno;
		opts.flags = XDP_FLAGS_SKB_MODE;
		fd = bpf_link_create(prog_fd, (int)idx, BPF_XDP, &opts);
		if (fd >= 0)
			al_warn("%s: driver-mode XDP refused (%s); using generic mode", ifname, strerror(e));
	}
	return fd;
}

static void unpin_iface(struct xdp *x, int ifindex, enum xdp_role role)
{
	char path[PATH_MAX];

	if (link_path(x->root, path, sizeof(path), ifindex, role) == 0)
		unlink(path);
	if (iface_dir(x->root, path, sizeof(path), ifindex) == 0)
		rmdir(path);
}

/* Takes over the XDP link an earlier daemon pinned for ifindex, if any. */
static int adopt_iface(struct xdp *x, int ifindex, char *err, size_t errlen)
{
	for (int r = XDP_ROLE_AGENT; r <= XDP_ROLE_GUARD; r++) {
		enum xdp_role role = (enum xdp_role)r;
		char path[PATH_MAX];
		struct bpf_link_info info;
		struct kern_link_seen seen;
		enum kern_fate fate;
		struct xdp_link *l;
		int fd;

		if (link_path(x->root, path, sizeof(path), ifindex, role) < 0)
			return ERR("pin root too long");
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		xdp_link_seen(fd, ifindex, &info, &seen);
		fate = kern_link_fate(&seen);
		if (fate == KERN_FATE_GONE || fate == KERN_FATE_UNKNOWN) {
			/* The interface is gone (its link is defunct), or not ours. */
			close(fd);
			unpin_iface(x, ifindex, role);
			if (role == XDP_ROLE_GUARD)
				guard_clear(x, ifindex, NULL, 0, NULL, 0);
			al_info("interface %d is gone; removed its XDP pin", ifindex);
			continue;
		}
		if (fate == KERN_FATE_DETACHED) {
			/* Detached behind our back, the interface still there: xdp_fence_check
			 * attaches it again. */
			l = link_add(x);
			if (!l) {
				close(fd);
				return ERR("out of memory");
			}
			l->fd = fd;
			fill_info(&l->info, ifindex, role);
			l->pin_ino = link_pin_ino(x, l);
			continue;
		}
		if (bpf_link_update(fd, bpf_program__fd(role_prog(x, role)), NULL) < 0) {
			int e = errno;

			close(fd);
			return ERR("re-adopt %s: %s", path, strerror(e));
		}
		l = link_add(x);
		if (!l) {
			close(fd);
			return ERR("out of memory");
		}
		l->fd = fd;
		fill_info(&l->info, (int)info.xdp.ifindex, role);
		l->pin_ino = link_pin_ino(x, l);
	}
	return 0;
}

static int adopt_one(void *x, unsigned long long idx, char *err, size_t errlen)
{
	return adopt_iface(x, (int)idx, err, errlen);
}

static int adopt_all(struct xdp *x, char *err, size_t errlen)
{
	return kern_pin_dir_each(x->root, AL_PIN_IFACE_DIR, INT_MAX, adopt_one, x, err, errlen);
}

int xdp_open(const char *pin_root, struct xdp **out, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct bpf_map *map;
	struct xdp *x = calloc(1, sizeof(*x));

	if (!x)
		return ERR("out of memory");
	if (al_fmt(x->root, sizeof(x->root), "%s", pin_root) < 0) {
		ERR("pin root too long");
		goto fail;
	}
	if (al_fmt(path, sizeof(path), "%s/" AL_PIN_IFACE_DIR, x->root) < 0 || al_mkdir_p(path, 0700) < 0) {
		ERR("%s: %s", path, strerror(errno));
		goto fail;
	}
	x->skel = xdp_guard__open();
	if (!x->skel) {
		ERR("open XDP programs: %s", strerror(errno));
		goto fail;
	}
	bpf_object__for_each_map(map, x->skel->obj) {
		if (bpf_map__is_internal(map))
			continue;
		if (al_fmt(path, sizeof(path), "%s/" AL_PIN_MAPS_DIR "/%s", x->root, bpf_map__name(map)) < 0 ||
		    bpf_map__set_pin_path(map, path) < 0) {
			ERR("map pin path for %s", bpf_map__name(map));
			goto fail;
		}
	}
	if (xdp_guard__load(x->skel) < 0) {
		ERR("load XDP programs: %s (pinned maps of another version? `airlockctl down` "
		    "removes them)", strerror(errno));
		goto fail;
	}
	for (int r = XDP_ROLE_AGENT; r <= XDP_ROLE_GUARD; r++) {
		struct bpf_prog_info pi;
		__u32 plen = sizeof(pi);

		memset(&pi, 0, sizeof(pi));
		if (bpf_obj_get_info_by_fd(bpf_program__fd(role_prog(x, (enum xdp_role)r)), &pi, &plen) == 0)
			x->prog_ids[r] = pi.id;
	}
	if (adopt_all(x, err, errlen) < 0)
		goto fail;
	*out = x;
	return 0;
fail:
	xdp_close(x);
	return -1;
}

void xdp_close(struct xdp *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->n; i++)
		if (x->links[i].fd >= 0)
			close(x->links[i].fd);
	free(x->links);
	xdp_guard__destroy(x->skel);
	free(x);
}

static int is_loopback(const char *ifname)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), lo = 0;

	if (fd < 0)
		return 0;
	memset(&ifr, 0, sizeof(ifr));
	if (al_fmt(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname) == 0 &&
	    ioctl(fd, SIOCGIFFLAGS, &ifr) == 0)
		lo = (ifr.ifr_flags & IFF_LOOPBACK) != 0;
	close(fd);
	return lo;
}

int xdp_attach(struct xdp *x, const char *ifname, enum xdp_role role, struct xdp_iface *out,
	       char *err, size_t errlen)
{
	int prog_fd = bpf_program__fd(role_prog(x, role));
	char path[PATH_MAX];
	struct xdp_link *l;
	unsigned int idx;
	int fd, e;

	if (strlen(ifname) >= IF_NAMESIZE || !(idx = if_nametoindex(ifname)))
		return ERR("no interface named '%s'", ifname);
	if (idx > INT_MAX)
		return ERR("%s: interface index out of range", ifname);
	if (is_loopback(ifname))
		return ERR("refusing %s: it is a loopback interface", ifname);
	l = link_find(x, (int)idx);
	if (l)
		return ERR("%s is already %s", ifname,
			   l->info.role == XDP_ROLE_GUARD ? "guarded" : "pinned");
	if (iface_dir(x->root, path, sizeof(path), (int)idx) < 0 ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST))
		return ERR("%s: %s", path, strerror(errno));
	fd = link_create(prog_fd, idx, ifname);
	if (fd < 0) {
		e = errno;
		unpin_iface(x, (int)idx, role);
		if (e == EBUSY || e == EEXIST)
			return ERR("%s already has an XDP program (not Airlock's)", ifname);
		return ERR("attach XDP to %s: %s", ifname, strerror(e));
	}
	if (link_path(x->root, path, sizeof(path), (int)idx, role) < 0 || bpf_obj_pin(fd, path) < 0) {
		e = errno;
		(void)bpf_link_detach(fd);
		close(fd);
		unpin_iface(x, (int)idx, role);
		return ERR("pin %s: %s", path, strerror(e));
	}
	l = link_add(x);
	if (!l) {
		(void)bpf_link_detach(fd);
		close(fd);
		unpin_iface(x, (int)idx, role);
		return ERR("out of memory");
	}
	l->fd = fd;
	fill_info(&l->info, (int)idx, role);
	l->pin_ino = link_pin_ino(x, l);
	if (out)
		*out = l->info;
	return 0;
}

int xdp_detach(struct xdp *x, int ifindex, char *err, size_t errlen)
{
	struct xdp_link *l = link_find(x, ifindex);
	enum xdp_role role;

	if (!l)
		return ERR("interface %d has no Airlock XDP program", ifindex);
	role = l->info.role;
	if (bpf_link_detach(l->fd) < 0 && errno != ENOLINK)
		al_warn("detach XDP from interface %d: %s", ifindex, strerror(errno));
	close(l->fd);
	unpin_iface(x, ifindex, role);
	if (role == XDP_ROLE_GUARD)
		guard_clear(x, ifindex, NULL, 0, NULL, 0);
	*l = x->links[--x->n];
	return 0;
}

int xdp_list(struct xdp *x, struct xdp_iface *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < x->n && n < max; i++) {
		struct xdp_link *l = &x->links[i];

		/* Names can change (containers rename their veths): ask again. */
		if (!if_indextoname((unsigned int)l->info.ifindex, l->info.name))
			l->info.name[0] = '\0';
		out[n++] = l->info;
	}
	return (int)n;
}

size_t xdp_count(const struct xdp *x)
{
	return x->n;
}

const struct xdp_iface *xdp_by_index(struct xdp *x, int ifindex)
{
	struct xdp_link *l = link_find(x, ifindex);

	return l ? &l->info : NULL;
}

/* Forgets link l of an interface that is gone (the last link moves to its place). */
static void link_forget(struct xdp *x, struct xdp_link *l, int *agents)
{
	al_info("interface %s (index %d) is gone; removed its XDP pin", l->info.name, l->info.ifindex);
	if (agents && l->info.role == XDP_ROLE_AGENT)
		(*agents)++;
	close(l->fd);
	unpin_iface(x, l->info.ifindex, l->info.role);
	if (l->info.role == XDP_ROLE_GUARD)
		guard_clear(x, l->info.ifindex, NULL, 0, NULL, 0);
	*l = x->links[--x->n];
}

int xdp_prune(struct xdp *x, int *agents)
{
	int n = 0;

	if (agents)
		*agents = 0;
	for (size_t i = 0; i < x->n;) {
		struct xdp_link *l = &x->links[i];
		struct bpf_link_info info;
		struct kern_link_seen seen;

		xdp_link_seen(l->fd, l->info.ifindex, &info, &seen);
		if (kern_link_fate(&seen) != KERN_FATE_GONE) {
			i++;
			continue;
		}
		link_forget(x, l, agents);
		n++;
	}
	return n;
}

/* Puts link l back: a new link in place of the detached one (pin replaced), or our program on it. */
static int fence_repair(struct xdp *x, struct xdp_link *l, enum kern_fate fate, uint32_t *new_link_id,
			char *err, size_t errlen)
{
	int prog_fd = bpf_program__fd(role_prog(x, l->info.role));
	char path[PATH_MAX], name[IF_NAMESIZE];
	struct bpf_link_info info;
	struct kern_link_seen seen;
	int fd, e;

	if (fate == KERN_FATE_REPLACED)
		return bpf_link_update(l->fd, prog_fd, NULL) == 0 ? 0 :
			ERR("update the link to %s: %s", role_name(l->info.role), strerror(errno));
	if (fate == KERN_FATE_UNPINNED) {
		if (link_path(x->root, path, sizeof(path), l->info.ifindex, l->info.role) < 0 ||
		    kern_pin_replace(l->fd, path) < 0)
			return ERR("pin %s: %s", path, strerror(errno));
		l->pin_ino = link_pin_ino(x, l);
		return 0;
	}
	if (!if_indextoname((unsigned int)l->info.ifindex, name))
		snprintf(name, sizeof(name), "%d", l->info.ifindex);
	fd = link_create(prog_fd, (unsigned int)l->info.ifindex, name);
	if (fd < 0) {
		e = errno;
		return ERR("attach %s to %s: %s%s", role_name(l->info.role), name, strerror(e),
			   e == EBUSY || e == EEXIST ? " (another XDP program is on it now)" : "");
	}
	if (link_path(x->root, path, sizeof(path), l->info.ifindex, l->info.role) < 0 ||
	    kern_pin_replace(fd, path) < 0) {
		e = errno;
		(void)bpf_link_detach(fd);
		close(fd);
		return ERR("pin %s: %s", path, strerror(e));
	}
	close(l->fd);
	l->fd = fd;
	fill_info(&l->info, l->info.ifindex, l->info.role);
	l->pin_ino = link_pin_ino(x, l);
	xdp_link_seen(fd, l->info.ifindex, &info, &seen);
	*new_link_id = info.id;
	return 0;
}

int xdp_fence_check(struct xdp *x, kern_fence_cb cb, void *arg, int *agents)
{
	int found = 0;

	if (agents)
		*agents = 0;
	for (size_t i = 0; i < x->n;) {
		struct xdp_link *l = &x->links[i];
		struct kern_fence_event e;
		struct bpf_link_info info;
		struct kern_link_seen seen;
		char err[512] = "";

		xdp_link_seen(l->fd, l->info.ifindex, &info, &seen);
		seen.ours = x->prog_ids[l->info.role];
		seen.pin_lost = l->pin_ino && link_pin_ino(x, l) != l->pin_ino;
		memset(&e, 0, sizeof(e));
		e.fate = kern_link_fate(&seen);
		if (e.fate == KERN_FATE_OK || e.fate == KERN_FATE_UNKNOWN) {
			if (e.fate == KERN_FATE_OK)
				l->failing = 0;
			i++;
			continue;
		}
		if (!if_indextoname((unsigned int)l->info.ifindex, l->info.name))
			l->info.name[0] = '\0';
		e.ifindex = l->info.ifindex;
		e.ifname = l->info.name;
		e.prog = role_name(l->info.role);
		e.err = err;
		found++;
		if (e.fate == KERN_FATE_GONE) {
			cb(arg, &e);
			link_forget(x, l, agents);
			continue;
		}
		e.link_id = info.id;
		e.found_prog_id = info.prog_id;
		e.repaired = fence_repair(x, l, e.fate, &e.new_link_id, err, sizeof(err)) == 0;
		e.again = !e.repaired && l->failing;
		l->failing = !e.repaired;
		cb(arg, &e);
		i++;
	}
	return found;
}

const struct xdp_iface *xdp_find(struct xdp *x, const char *ifname)
{
	unsigned int idx = if_nametoindex(ifname);
	struct xdp_link *l = idx && idx <= INT_MAX ? link_find(x, (int)idx) : NULL;

	return l ? &l->info : NULL;
}

int xdp_guard_set(struct xdp *x, int ifindex, const uint16_t *ports, size_t nports,
		  const struct al_addr *allow, size_t nallow, char *err, size_t errlen)
{
	int pfd = bpf_map__fd(x->skel->maps.al_guard_ports);
	int afd = bpf_map__fd(x->skel->maps.al_guard_allow);
	__u8 one = 1;

	for (size_t i = 0; i < nallow; i++) {
		struct al_guard_src_key k;

		memset(&k, 0, sizeof(k));
		k.ifindex = (__u32)ifindex;
		k.addr = allow[i];
		if (bpf_map_update_elem(afd, &k, &one, BPF_ANY) < 0)
			return ERR("guard sources: %s", strerror(errno));
	}
	for (size_t i = 0; i < nports; i++) {
		struct al_guard_port_key k;

		memset(&k, 0, sizeof(k));
		k.ifindex = (__u32)ifindex;
		k.port = ports[i];
		if (bpf_map_update_elem(pfd, &k, &one, BPF_ANY) < 0)
			return ERR("guard ports: %s", strerror(errno));
	}
	guard_clear(x, ifindex, ports, nports, allow, nallow);
	return 0;
}

int xdp_guard_get(struct xdp *x, int ifindex, uint16_t *ports, size_t *nports,
		  struct al_addr *allow, size_t *nallow)
{
	int pfd = bpf_map__fd(x->skel->maps.al_guard_ports);
	int afd = bpf_map__fd(x->skel->maps.al_guard_allow);
	struct al_guard_port_key pk;
	struct al_guard_src_key sk;
	size_t np = 0, na = 0;
	int more;

	more = bpf_map_get_next_key(pfd, NULL, &pk) == 0;
	while (more) {
		if ((int)pk.ifindex == ifindex && np < *nports)
			ports[np++] = pk.port;
		more = bpf_map_get_next_key(pfd, &pk, &pk) == 0;
	}
	more = bpf_map_get_next_key(afd, NULL, &sk) == 0;
	while (more) {
		if ((int)sk.ifindex == ifindex && na < *nallow)
			allow[na++] = sk.addr;
		more = bpf_map_get_next_key(afd, &sk, &sk) == 0;
	}
	*nports = np;
	*nallow = na;
	return 0;
}

int xdp_take_flow(struct xdp *x, const struct al_flow_key *k, struct al_flow_origin *out)
{
	int fd = bpf_map__fd(x->skel->maps.al_flows);

	if (bpf_map_lookup_elem(fd, k, out) < 0)
		return -1;
	(void)bpf_map_delete_elem(fd, k);
	return 0;
}

int xdp_netcfg_get(struct xdp *x, struct al_netcfg *out)
{
	__u32 key = 0;

	memset(out, 0, sizeof(*out));
	return bpf_map_lookup_elem(bpf_map__fd(x->skel->maps.al_netcfg), &key, out);
}

int xdp_netcfg_set(struct xdp *x, const struct al_netcfg *c)
{
	__u32 key = 0;

	return bpf_map_update_elem(bpf_map__fd(x->skel->maps.al_netcfg), &key, c, BPF_ANY);
}

int netdev_down(const char *pin_root, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct al_netcfg c;
	__u32 key = 0;
	int fd, rc = 0;

	if (al_fmt(path, sizeof(path), "%s/" AL_PIN_MAPS_DIR "/al_netcfg", pin_root) < 0)
		return ERR("pin root too long");
	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : ERR("%s: %s", path, strerror(errno));
	memset(&c, 0, sizeof(c));
	if (bpf_map_lookup_elem(fd, &key, &c) == 0 && c.active) {
		c.nft_table[sizeof(c.nft_table) - 1] = '\0';
		if (nft_table_delete(c.nft_table, err, errlen) < 0 ||
		    netdev_tproxy_routes(c.mark, c.route_table, 0, err, errlen) < 0) {
			rc = -1;
		} else {
			c.active = 0;
			(void)bpf_map_update_elem(fd, &key, &c, BPF_ANY);
		}
	}
	close(fd);
	return rc;
}
