/* Loads, attaches, pins and re-adopts Airlock's BPF programs; finds cgroups on the v2 hierarchy. */
#include <airlock/kernel.h>
#include <airlock/netdev.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "fence.skel.h"
#include "steer.skel.h"

#define MAX_PROGS 16
#define FILEID_KERNFS 0xfe

struct kern_pin {
	uint64_t id;
	struct bpf_link *links[MAX_PROGS];
	uint8_t failing[MAX_PROGS];     /* the last fence check could not repair this link */
	ino_t pin_ino[MAX_PROGS];       /* its pin's inode as airlockd made it (0: not known) */
};

struct kern {
	struct steer *skel;         /* connect/sendmsg/getpeername/sockops; owns the shared map fds */
	struct fence *fence;        /* sock_create and egress; reuses the pinned shared maps */
	struct ring_buffer *events;
	char root[PATH_MAX];
	int lock_fd;
	struct bpf_program *progs[MAX_PROGS];
	uint32_t prog_ids[MAX_PROGS];   /* what each pinned link should run (0: not known) */
	size_t n_progs;
	struct kern_pin *pins;
	size_t n_pins, cap_pins;
	int exe_by_kernel;          /* the connect hook fills al_exe */
	struct kern_fence_stats repairs; /* kern_fence_note */
};

#define ERR(...) al_errf(err, errlen, __VA_ARGS__)

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	if (level == LIBBPF_INFO && al_log_verbosity < AL_LOG_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

int kern_cgroup2_mount(char *buf, size_t len)
{
	static char cached[PATH_MAX];
	char line[4096], dev[256], dir[PATH_MAX], type[64];
	FILE *f;
	int rc = -1;

	if (cached[0])
		return al_fmt(buf, len, "%s", cached);
	f = fopen("/proc/self/mounts", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%255s %4095s %63s", dev, dir, type) != 3)
			continue;
		if (strcmp(type, "cgroup2") == 0) {
			rc = al_fmt(cached, sizeof(cached), "%s", dir);
			break;
		}
	}
	fclose(f);
	if (rc < 0)
		return -1;
	return al_fmt(buf, len, "%s", cached);
}

int kern_cgroup_join(const char *arg, char *abs, size_t len, size_t *mlen)
{
	char mnt[PATH_MAX];
	size_t m;

	if (kern_cgroup2_mount(mnt, sizeof(mnt)) < 0)
		return -1;
	m = strlen(mnt);
	if (mlen)
		*mlen = m;
	if (strncmp(arg, mnt, m) == 0 && (arg[m] == '/' || arg[m] == '\0'))
		return al_fmt(abs, len, "%s", arg);
	return al_fmt(abs, len, "%s%s%s", mnt, arg[0] == '/' ? "" : "/", arg);
}

int kern_cgroup_resolve(const char *arg, struct kern_cgroup *cg, char *err, size_t errlen)
{
	char mnt[PATH_MAX], joined[PATH_MAX + 4096], real[PATH_MAX];
	size_t mlen;
	struct statfs sfs;
	struct stat st;

	if (kern_cgroup2_mount(mnt, sizeof(mnt)) < 0)
		return ERR("no cgroup v2 hierarchy is mounted (see /proc/self/mounts)");
	if (kern_cgroup_join(arg, joined, sizeof(joined), &mlen) < 0)
		return ERR("%s: path too long", arg);
	if (!realpath(joined, real))
		return ERR("%s: %s", joined, strerror(errno));
	if (strncmp(real, mnt, mlen) != 0 || (real[mlen] != '/' && real[mlen] != '\0'))
		return ERR("%s: not under the cgroup v2 mount %s", real, mnt);
	if (statfs(real, &sfs) < 0 || sfs.f_type != CGROUP2_SUPER_MAGIC)
		return ERR("%s: not a cgroup v2 directory", real);
	if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
		return ERR("%s: not a cgroup directory", real);
	if (al_fmt(cg->abs, sizeof(cg->abs), "%s", real) < 0 ||
	    al_fmt(cg->rel, sizeof(cg->rel), "%s", real[mlen] ? real + mlen : "/") < 0)
		return ERR("%s: path too long", real);
	cg->id = st.st_ino;
	return 0;
}

int kern_cgroup_of_pid(pid_t pid, struct kern_cgroup *cg, char *err, size_t errlen)
{
	char path[64], line[4096];
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return ERR("process %d: %s", (int)pid, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			found = 1;
			break;
		}
	}
	fclose(f);
	if (!found)
		return ERR("process %d has no cgroup v2 membership", (int)pid);
	return kern_cgroup_resolve(line + 3, cg, err, errlen);
}

/*
 * Depth first under dirfd (a cgroup directory; rel holds its path relative to the mount, used
 * bytes of it) for the directory whose inode is id (a cgroup v2 directory's inode number is
 * its cgroup id): what kern_cgroup_path does without open_by_handle_at, which needs
 * CAP_DAC_READ_SEARCH (read any file) where this needs only the tree's 0755 directories.
 * Returns 0 with the path in rel, -1 if not found under dirfd.
 */
static int walk_for_id(int dirfd, char *rel, size_t len, size_t used, uint64_t id, int depth)
{
	int fd = dup(dirfd), rc = -1;
	struct dirent *e;
	DIR *d;

	if (fd < 0)
		return -1;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	while (rc < 0 && (e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		int sub;

		if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    used + 1 + n >= len)
			continue;
		rel[used] = '/';
		memcpy(rel + used + 1, e->d_name, n + 1);
		if ((uint64_t)e->d_ino == id) {
			rc = 0;
			break;
		}
		if (depth >= 64)
			continue;
		sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (sub < 0)
			continue; /* gone meanwhile */
		rc = walk_for_id(sub, rel, len, used + 1 + n, id, depth + 1);
		close(sub);
	}
	closedir(d);
	if (rc < 0)
		rel[used] = '\0';
	return rc;
}

/*
 * Paths kern_cgroup_path found, by id. An entry is used only while a stat of its path still
 * finds that id there (cgroup v2 has no rename: a cgroup removed since, or made again under
 * the same path with a new id, is looked up again), so a hit costs one stat where a miss may
 * walk the whole tree (walk_for_id). Whoever asks (the relay, the
 * refusal rows, the console's and review socket's peer checks) shares it.
 */
#define CGPATH_SLOTS 256
#define CGPATH_LEN 512
static struct {
	uint64_t id;
	char path[CGPATH_LEN];
} cgpath[CGPATH_SLOTS];
static pthread_mutex_t cgpath_mu = PTHREAD_MUTEX_INITIALIZER;

uint64_t kern_cgroup_id_at(const char *abs)
{
	struct stat st;

	if (stat(abs, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	return (uint64_t)st.st_ino;
}

static int cgroup_path_cached(const char *mnt, uint64_t id, char *buf, size_t len)
{
	char abs[PATH_MAX];
	int rc = -1;

	pthread_mutex_lock(&cgpath_mu);
	if (cgpath[id % CGPATH_SLOTS].id == id &&
	    al_fmt(abs, sizeof(abs), "%s%s", mnt, cgpath[id % CGPATH_SLOTS].path) == 0 &&
	    kern_cgroup_id_at(abs) == id)
		rc = al_fmt(buf, len, "%s", cgpath[id % CGPATH_SLOTS].path);
	pthread_mutex_unlock(&cgpath_mu);
	return rc;
}

static void cgroup_path_keep(uint64_t id, const char *path)
{
	pthread_mutex_lock(&cgpath_mu);
	/* a path too long to keep is looked up each time */
	cgpath[id % CGPATH_SLOTS].id =
		al_fmt(cgpath[id % CGPATH_SLOTS].path, CGPATH_LEN, "%s", path) == 0 ? id : 0;
	pthread_mutex_unlock(&cgpath_mu);
}

/* kern_cgroup_path without the cache. */
static int cgroup_path_lookup(const char *mnt, uint64_t id, char *buf, size_t len)
{
	struct {
		struct file_handle fh;
		uint64_t id;
	} h;
	char link[64], target[PATH_MAX];
	int mfd = -1, fd = -1, rc = -1;
	ssize_t n;
	size_t mlen;

	mfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0)
		goto out;
	h.fh.handle_bytes = sizeof(uint64_t);
	h.fh.handle_type = FILEID_KERNFS;
	memcpy(h.fh.f_handle, &id, sizeof(id));
	fd = open_by_handle_at(mfd, &h.fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == EPERM) {
		/* Without CAP_DAC_READ_SEARCH (airlockd's unit does not give it): look for it. */
		struct stat st;

		target[0] = '\0';
		if (fstat(mfd, &st) == 0 && (uint64_t)st.st_ino == id)
			rc = al_fmt(buf, len, "/");
		else if (walk_for_id(mfd, target, sizeof(target), 0, id, 0) == 0)
			rc = al_fmt(buf, len, "%s", target);
		goto out;
	}
	if (fd < 0)
		goto out;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		goto out;
	target[n] = '\0';
	mlen = strlen(mnt);
	if (strncmp(target, mnt, mlen) != 0)
		goto out;
	rc = al_fmt(buf, len, "%s", target[mlen] ? target + mlen : "/");
out:
	if (fd >= 0)
		close(fd);
	if (mfd >= 0)
		close(mfd);
	return rc;
}

int kern_cgroup_path(uint64_t id, char *buf, size_t len)
{
	char mnt[PATH_MAX];

	if (!id || kern_cgroup2_mount(mnt, sizeof(mnt)) < 0)
		return -1;
	if (cgroup_path_cached(mnt, id, buf, len) == 0)
		return 0;
	if (cgroup_path_lookup(mnt, id, buf, len) < 0)
		return -1;
	cgroup_path_keep(id, buf);
	return 0;
}

/* The initial PID namespace's inode (include/linux/proc_ns.h: PROC_PID_INIT_INO). */
#define HOST_PIDNS_INO 0xEFFFFFFCU

int kern_host_pids(void)
{
	static int host = -1;
	struct stat st;

	if (host < 0)
		host = stat("/proc/self/ns/pid", &st) == 0 && st.st_ino == HOST_PIDNS_INO;
	return host;
}

/* /proc/PID/exe of a host pid: kern_exe's fallback. */
static int pid_exe(uint32_t tgid, char *buf, size_t len)
{
	char link[32];
	ssize_t n;

	if (!tgid || len < 2 || !kern_host_pids())
		return -1;
	snprintf(link, sizeof(link), "/proc/%u/exe", tgid);
	n = readlink(link, buf, len - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

int kern_ensure_bpffs(void)
{
	struct statfs sfs;

	if (statfs("/sys/fs/bpf", &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC)
		return 0;
	if (mkdir("/sys/fs/bpf", 0700) < 0 && errno != EEXIST)
		return -1;
	return mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700");
}

static int pin_path(const struct kern *k, char *buf, size_t len, uint64_t id, const char *prog)
{
	if (prog)
		return al_fmt(buf, len, "%s/" AL_PIN_CG_DIR "/%llu/%s", k->root,
			      (unsigned long long)id, prog);
	return al_fmt(buf, len, "%s/" AL_PIN_CG_DIR "/%llu", k->root, (unsigned long long)id);
}

/* The inode of the pin of program i on cgroup id; 0 if there is none. */
static ino_t pin_ino(const struct kern *k, uint64_t id, size_t i)
{
	char path[PATH_MAX];
	struct stat st;

	if (pin_path(k, path, sizeof(path), id, bpf_program__name(k->progs[i])) < 0 || stat(path, &st) < 0)
		return 0;
	return st.st_ino;
}

static struct kern_pin *pin_find(struct kern *k, uint64_t id)
{
	for (size_t i = 0; i < k->n_pins; i++)
		if (k->pins[i].id == id)
			return &k->pins[i];
	return NULL;
}

static struct kern_pin *pin_new(struct kern *k, uint64_t id)
{
	struct kern_pin *p;

	if (AL_GROW(k->pins, k->n_pins, k->cap_pins, 8) < 0)
		return NULL;
	p = &k->pins[k->n_pins++];
	memset(p, 0, sizeof(*p));
	p->id = id;
	return p;
}

/* Detaches and forgets every link of one pinned cgroup, removing its pins. */
static void pin_drop(struct kern *k, struct kern_pin *p)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < k->n_progs; i++) {
		if (p->links[i]) {
			bpf_link__detach(p->links[i]);
			bpf_link__destroy(p->links[i]);
		}
		if (pin_path(k, path, sizeof(path), p->id, bpf_program__name(k->progs[i])) == 0)
			unlink(path);
	}
	if (pin_path(k, path, sizeof(path), p->id, NULL) == 0)
		rmdir(path);
	*p = k->pins[--k->n_pins];
}

static int open_cgroup_fd(uint64_t id)
{
	char rel[PATH_MAX], mnt[PATH_MAX], abs[2 * PATH_MAX];

	if (kern_cgroup_path(id, rel, sizeof(rel)) < 0 || kern_cgroup2_mount(mnt, sizeof(mnt)) < 0)
		return -1;
	snprintf(abs, sizeof(abs), "%s%s", mnt, rel);
	return open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int kern_pin_replace(int fd, const char *path)
{
	char tmp[PATH_MAX], *slash;
	int e;

	/* "-new", not ".new": bpffs refuses names with a dot. */
	if (al_fmt(tmp, sizeof(tmp), "%s-new", path) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* the directory, removed with the pins in it (the fence check puts them back) */
	if ((slash = strrchr(tmp, '/')) && slash != tmp) {
		*slash = '\0';
		e = mkdir(tmp, 0700) < 0 && errno != EEXIST;
		*slash = '/';
		if (e)
			return -1;
	}
	(void)unlink(tmp);      /* left by a crash between the two steps */
	if (bpf_obj_pin(fd, tmp) < 0)
		return -1;
	if (rename(tmp, path) == 0)
		return 0;
	e = errno;
	(void)unlink(tmp);
	errno = e;
	return -1;
}

/*
 * Attaches program i to the cgroup and pins the link; replace: in place of the pin there (a
 * detached link's), whose handle in p goes.
 */
static int attach_one(struct kern *k, struct kern_pin *p, size_t i, int cgfd, int replace,
		      char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct bpf_link *l;
	const char *name = bpf_program__name(k->progs[i]);

	l = bpf_program__attach_cgroup(k->progs[i], cgfd);
	if (!l)
		return ERR("attach %s to cgroup %llu: %s", name, (unsigned long long)p->id,
			   strerror(errno));
	if (pin_path(k, path, sizeof(path), p->id, name) < 0 ||
	    (replace ? kern_pin_replace(bpf_link__fd(l), path) : bpf_link__pin(l, path)) < 0) {
		int e = errno;

		bpf_link__detach(l);
		bpf_link__destroy(l);
		return ERR("pin %s: %s", path, strerror(e));
	}
	if (p->links[i])
		bpf_link__destroy(p->links[i]);
	p->links[i] = l;
	p->pin_ino[i] = pin_ino(k, p->id, i);
	return 0;
}

enum kern_fate kern_link_fate(const struct kern_link_seen *s)
{
	if (!s->info_ok)
		return KERN_FATE_UNKNOWN;
	if (s->target == 0)
		return s->target_exists ? KERN_FATE_DETACHED : KERN_FATE_GONE;
	if (s->ours && s->prog_id != s->ours)
		return KERN_FATE_REPLACED;
	if (s->pin_lost)
		return KERN_FATE_UNPINNED;
	return KERN_FATE_OK;
}

const char *kern_fate_name(enum kern_fate f)
{
	switch (f) {
	case KERN_FATE_OK:
		return "ok";
	case KERN_FATE_UNKNOWN:
		return "unknown";
	case KERN_FATE_GONE:
		return "gone";
	case KERN_FATE_DETACHED:
		return "detached";
	case KERN_FATE_REPLACED:
		return "replaced";
	case KERN_FATE_UNPINNED:
		return "unpinned";
	}
	return "?";
}

/* The link's info as kern_link_seen (target: its cgroup id); ours is the caller's to fill. */
static void cgroup_link_seen(struct bpf_link *l, struct bpf_link_info *info, struct kern_link_seen *s)
{
	__u32 ilen = sizeof(*info);

	memset(info, 0, sizeof(*info));
	memset(s, 0, sizeof(*s));
	s->info_ok = bpf_obj_get_info_by_fd(bpf_link__fd(l), info, &ilen) == 0;
	s->target = info->cgroup.cgroup_id;
	s->prog_id = info->prog_id;
}

/*
 * The infos of p's links (k->progs order) as kern_link_seen, each with its target_exists: a
 * cgroup that one of them still reports is there, whatever an open says; else it exists if it
 * can be opened (then *cgfd is open, and it is asked only if some link reports none). A link p
 * lacks (NULL) counts as one that reports none.
 */
static void cgroup_links_seen(struct kern *k, struct bpf_link *const *links, uint64_t id,
			      struct bpf_link_info *info, struct kern_link_seen *seen, int *cgfd)
{
	int attached = 0, unattached = 0;

	for (size_t i = 0; i < k->n_progs; i++) {
		if (links[i]) {
			cgroup_link_seen(links[i], &info[i], &seen[i]);
		} else {
			memset(&info[i], 0, sizeof(info[i]));
			memset(&seen[i], 0, sizeof(seen[i]));
			seen[i].info_ok = 1;
		}
		seen[i].ours = k->prog_ids[i];
		attached |= seen[i].info_ok && seen[i].target;
		unattached |= seen[i].info_ok && !seen[i].target;
	}
	*cgfd = unattached ? open_cgroup_fd(id) : -1;
	for (size_t i = 0; i < k->n_progs; i++)
		seen[i].target_exists = attached || *cgfd >= 0;
}

/*
 * Takes over the links an earlier daemon pinned for cgroup `id`: each gets this version's program
 * in place, a program the old version lacked is attached. A link found detached is kept as it
 * is: kern_fence_check attaches it again. Returns 1 if the cgroup is gone (its pins removed).
 */
static int adopt_cgroup(struct kern *k, uint64_t id, char *err, size_t errlen)
{
	struct bpf_link *l[MAX_PROGS] = { 0 };
	struct bpf_link_info info[MAX_PROGS];
	struct kern_link_seen seen[MAX_PROGS];
	char path[PATH_MAX];
	struct kern_pin *p;
	int cgfd = -1, rc = 0;

	for (size_t i = 0; i < k->n_progs; i++) {
		if (pin_path(k, path, sizeof(path), id, bpf_program__name(k->progs[i])) < 0) {
			rc = ERR("path too long");
			goto out;
		}
		l[i] = bpf_link__open(path);    /* NULL: a program this version has and the old one lacked */
	}
	cgroup_links_seen(k, l, id, info, seen, &cgfd);
	p = pin_new(k, id);
	if (!p) {
		rc = ERR("out of memory");
		goto out;
	}
	for (size_t i = 0; i < k->n_progs; i++) {
		if (kern_link_fate(&seen[i]) != KERN_FATE_GONE)
			continue;
		/* The cgroup is gone; its links are defunct. */
		memcpy(p->links, l, sizeof(l));
		memset(l, 0, sizeof(l));
		pin_drop(k, p);
		rc = 1;
		goto out;
	}
	for (size_t i = 0; i < k->n_progs; i++) {
		if (!l[i]) {
			/* (no cgroup fd: kern_fence_check attaches it, or says why not) */
			if (cgfd >= 0 && attach_one(k, p, i, cgfd, 0, err, errlen) < 0) {
				rc = -1;
				goto out;
			}
			continue;
		}
		if (kern_link_fate(&seen[i]) != KERN_FATE_DETACHED &&
		    bpf_link__update_program(l[i], k->progs[i]) < 0) {
			rc = ERR("re-adopt the link of %s on cgroup %llu: %s", bpf_program__name(k->progs[i]),
				 (unsigned long long)id, strerror(errno));
			goto out;
		}
		p->links[i] = l[i];
		p->pin_ino[i] = pin_ino(k, id, i);
		l[i] = NULL;
	}
out:
	for (size_t i = 0; i < k->n_progs; i++)
		if (l[i])
			bpf_link__destroy(l[i]);
	if (cgfd >= 0)
		close(cgfd);
	return rc;
}

static int adopt_one(void *k, unsigned long long id, char *err, size_t errlen)
{
	return adopt_cgroup(k, id, err, errlen);
}

static int adopt_all(struct kern *k, char *err, size_t errlen)
{
	return kern_pin_dir_each(k->root, AL_PIN_CG_DIR, ULLONG_MAX, adopt_one, k, err, errlen);
}

static int set_pin_paths(struct kern *k, struct bpf_object *obj, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct bpf_map *map;

	bpf_object__for_each_map(map, obj) {
		if (bpf_map__is_internal(map))
			continue;
		if (al_fmt(path, sizeof(path), "%s/" AL_PIN_MAPS_DIR "/%s", k->root,
			   bpf_map__name(map)) < 0 || bpf_map__set_pin_path(map, path) < 0)
			return ERR("map pin path for %s", bpf_map__name(map));
	}
	return 0;
}

static int add_progs(struct kern *k, struct bpf_object *obj)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj) {
		if (k->n_progs == MAX_PROGS)
			return -1;
		k->progs[k->n_progs++] = prog;
	}
	return 0;
}

/* The program types that record an executable (bpf/lib/exe.h): connect, sendmsg, bind;
 * sock_create; setsockopt. */
static const enum bpf_prog_type exe_prog_types[] = { BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_PROG_TYPE_CGROUP_SOCK,
						     BPF_PROG_TYPE_CGROUP_SOCKOPT };

int kern_open(const char *pin_root, uint16_t steer_port, struct kern **out, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct kern *k;
	__u32 key = 0, abi = 0;

	libbpf_set_print(libbpf_log);
	if (kern_ensure_bpffs() < 0)
		return ERR("cannot mount bpffs at /sys/fs/bpf: %s", strerror(errno));
	k = calloc(1, sizeof(*k));
	if (!k)
		return ERR("out of memory");
	k->lock_fd = -1;
	if (al_fmt(k->root, sizeof(k->root), "%s", pin_root) < 0) {
		ERR("pin root too long");
		goto fail;
	}
	if (al_mkdir_p(k->root, 0700) < 0 ||
	    al_fmt(path, sizeof(path), "%s/" AL_PIN_MAPS_DIR, k->root) < 0 || al_mkdir_p(path, 0700) < 0 ||
	    al_fmt(path, sizeof(path), "%s/" AL_PIN_CG_DIR, k->root) < 0 || al_mkdir_p(path, 0700) < 0) {
		int e = errno;

		ERR("%s: %s%s", k->root, strerror(e), e != EROFS ? "" :
		    " (under airlockd.service, /sys is read-only but for the pin root the unit names: a "
		    "pin_root elsewhere needs a drop-in with ExecStartPre=+/bin/mkdir -p -m 0700 DIR and "
		    "ReadWritePaths=-DIR)");
		goto fail;
	}
	k->lock_fd = open(k->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (k->lock_fd < 0 || flock(k->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		ERR("%s is in use by another airlockd", k->root);
		goto fail;
	}

	/* CO-RE (the executable record, bpf/lib/exe.h) needs the kernel's own type information. */
	if (access("/sys/kernel/btf/vmlinux", R_OK) < 0) {
		ERR("this kernel has no BTF (/sys/kernel/btf/vmlinux: %s): airlockd's BPF programs need "
		    "it (CONFIG_DEBUG_INFO_BTF=y, as Debian's kernels have)", strerror(errno));
		goto fail;
	}
	k->skel = steer__open();
	k->fence = fence__open();
	if (!k->skel || !k->fence) {
		ERR("open BPF objects: %s", strerror(errno));
		goto fail;
	}
	k->skel->rodata->steer_port = steer_port;
	k->fence->rodata->steer_port = steer_port;
	/* The executable by the kernel where cgroup programs may read the current task and loop
	 * (bpf_get_current_task_btf, bpf_loop); AIRLOCKD_BPF_EXE=0 turns it off (then /proc). */
	k->exe_by_kernel = !(getenv("AIRLOCKD_BPF_EXE") && strcmp(getenv("AIRLOCKD_BPF_EXE"), "0") == 0);
	for (size_t i = 0; i < AL_ARRAY_LEN(exe_prog_types) && k->exe_by_kernel; i++)
		k->exe_by_kernel = libbpf_probe_bpf_helper(exe_prog_types[i], BPF_FUNC_get_current_task_btf, NULL) == 1 &&
				   libbpf_probe_bpf_helper(exe_prog_types[i], BPF_FUNC_loop, NULL) == 1;
	k->skel->rodata->want_exe = (__u8)k->exe_by_kernel;
	k->fence->rodata->want_exe = (__u8)k->exe_by_kernel;
	if (set_pin_paths(k, k->skel->obj, err, errlen) < 0 ||
	    set_pin_paths(k, k->fence->obj, err, errlen) < 0)
		goto fail;
	/* steer first: it creates and pins the shared maps that fence reuses. */
	if (steer__load(k->skel) < 0 || fence__load(k->fence) < 0) {
		ERR("load BPF programs: %s (pinned maps of another version? `airlockctl down` "
		    "removes them)", strerror(errno));
		goto fail;
	}
	if (bpf_map_lookup_elem(bpf_map__fd(k->skel->maps.al_abi), &key, &abi) < 0)
		abi = 0;
	if (abi == 0) {
		abi = AL_ABI_VERSION;
		(void)bpf_map_update_elem(bpf_map__fd(k->skel->maps.al_abi), &key, &abi, BPF_ANY);
	} else if (abi != AL_ABI_VERSION) {
		ERR("pinned maps under %s are ABI %u, this airlockd speaks %u: run `airlockctl down`",
		    k->root, abi, AL_ABI_VERSION);
		goto fail;
	}
	if (add_progs(k, k->skel->obj) < 0 || add_progs(k, k->fence->obj) < 0) {
		ERR("too many BPF programs");
		goto fail;
	}
	for (size_t i = 0; i < k->n_progs; i++) {
		struct bpf_prog_info pi;
		__u32 plen = sizeof(pi);

		memset(&pi, 0, sizeof(pi));
		if (bpf_obj_get_info_by_fd(bpf_program__fd(k->progs[i]), &pi, &plen) == 0)
			k->prog_ids[i] = pi.id;
	}
	if (adopt_all(k, err, errlen) < 0)
		goto fail;
	*out = k;
	return 0;
fail:
	kern_close(k);
	return -1;
}

void kern_close(struct kern *k)
{
	if (!k)
		return;
	/* Links stay pinned: the fence outlives the daemon. Only our handles go. */
	for (size_t i = 0; i < k->n_pins; i++)
		for (size_t j = 0; j < k->n_progs; j++)
			bpf_link__destroy(k->pins[i].links[j]);
	free(k->pins);
	ring_buffer__free(k->events);
	fence__destroy(k->fence);
	steer__destroy(k->skel);
	if (k->lock_fd >= 0)
		close(k->lock_fd);
	free(k);
}

int kern_pin(struct kern *k, const struct kern_cgroup *cg, char *err, size_t errlen)
{
	struct kern_cgroup self;
	char path[PATH_MAX];
	struct kern_pin *p;
	size_t rlen = strlen(cg->rel);
	int cgfd;

	if (strcmp(cg->rel, "/") == 0)
		return ERR("refusing to pin the root cgroup: every process on the host would be steered");
	if (kern_cgroup_of_pid(getpid(), &self, err, errlen) < 0)
		return -1;
	if (strcmp(self.rel, cg->rel) == 0 ||
	    (strncmp(self.rel, cg->rel, rlen) == 0 && self.rel[rlen] == '/'))
		return ERR("refusing to pin %s: airlockd itself runs in it (%s)", cg->rel, self.rel);
	if (pin_find(k, cg->id))
		return ERR("%s is already pinned", cg->rel);
	if (pin_path(k, path, sizeof(path), cg->id, NULL) < 0 || (mkdir(path, 0700) < 0 && errno != EEXIST))
		return ERR("%s: %s", path, strerror(errno));
	cgfd = open(cg->abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0)
		return ERR("%s: %s", cg->abs, strerror(errno));
	p = pin_new(k, cg->id);
	if (!p) {
		close(cgfd);
		return ERR("out of memory");
	}
	/* sockops first, so the origin is published for every connect the
	 * connect hooks steer from here on. */
	for (size_t pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < k->n_progs; i++) {
			int is_sockops = bpf_program__type(k->progs[i]) == BPF_PROG_TYPE_SOCK_OPS;

			if ((pass == 0) != is_sockops)
				continue;
			if (attach_one(k, p, i, cgfd, 0, err, errlen) < 0) {
				close(cgfd);
				pin_drop(k, p);
				return -1;
			}
		}
	}
	close(cgfd);
	return 0;
}

int kern_unpin(struct kern *k, uint64_t cgroup_id, char *err, size_t errlen)
{
	struct kern_pin *p = pin_find(k, cgroup_id);

	if (!p)
		return ERR("cgroup %llu is not pinned", (unsigned long long)cgroup_id);
	pin_drop(k, p);
	return 0;
}

int kern_pinned(struct kern *k, uint64_t *ids, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < k->n_pins && n < max; i++)
		ids[n++] = k->pins[i].id;
	return (int)n;
}

/* Puts link i of p back: attached again (DETACHED) or given our program (REPLACED). */
static int fence_repair(struct kern *k, struct kern_pin *p, size_t i, enum kern_fate fate, int cgfd,
			uint32_t *new_link_id, char *err, size_t errlen)
{
	struct bpf_link_info info;
	struct kern_link_seen seen;

	if (fate == KERN_FATE_REPLACED)
		return bpf_link__update_program(p->links[i], k->progs[i]) == 0 ? 0 :
			ERR("update the link to %s: %s", bpf_program__name(k->progs[i]), strerror(errno));
	if (fate == KERN_FATE_UNPINNED) {
		char path[PATH_MAX];

		if (pin_path(k, path, sizeof(path), p->id, bpf_program__name(k->progs[i])) < 0)
			return ERR("pin path too long");
		if (kern_pin_replace(bpf_link__fd(p->links[i]), path) < 0)
			return ERR("pin %s: %s", path, strerror(errno));
		p->pin_ino[i] = pin_ino(k, p->id, i);
		return 0;
	}
	if (cgfd < 0)
		return ERR("open cgroup %llu: %s", (unsigned long long)p->id, strerror(errno));
	if (attach_one(k, p, i, cgfd, 1, err, errlen) < 0)
		return -1;
	cgroup_link_seen(p->links[i], &info, &seen);
	*new_link_id = info.id;
	return 0;
}

int kern_fence_check(struct kern *k, kern_fence_cb cb, void *arg)
{
	int found = 0;

	for (size_t pi = 0; pi < k->n_pins;) {
		struct kern_pin *p = &k->pins[pi];
		struct bpf_link_info info[MAX_PROGS];
		struct kern_link_seen seen[MAX_PROGS];
		int cgfd, gone = 0;

		cgroup_links_seen(k, p->links, p->id, info, seen, &cgfd);
		for (size_t i = 0; i < k->n_progs; i++)
			seen[i].pin_lost = p->links[i] && p->pin_ino[i] && pin_ino(k, p->id, i) != p->pin_ino[i];
		for (size_t i = 0; i < k->n_progs && !gone; i++) {
			struct kern_fence_event e;
			char err[512] = "";

			memset(&e, 0, sizeof(e));
			e.fate = kern_link_fate(&seen[i]);
			gone = e.fate == KERN_FATE_GONE;
			if (e.fate == KERN_FATE_OK)
				p->failing[i] = 0;
			if (e.fate != KERN_FATE_DETACHED && e.fate != KERN_FATE_REPLACED && e.fate != KERN_FATE_UNPINNED)
				continue;
			e.cgroup_id = p->id;
			e.ifname = "";
			e.prog = bpf_program__name(k->progs[i]);
			e.link_id = info[i].id;
			e.found_prog_id = info[i].prog_id;
			e.repaired = fence_repair(k, p, i, e.fate, cgfd, &e.new_link_id, err, sizeof(err)) == 0;
			e.again = !e.repaired && p->failing[i];
			e.err = err;
			p->failing[i] = !e.repaired;
			found++;
			cb(arg, &e);
		}
		if (cgfd >= 0)
			close(cgfd);
		if (gone) {
			struct kern_fence_event e = { .fate = KERN_FATE_GONE, .cgroup_id = p->id, .ifname = "",
						      .err = "" };

			found++;
			cb(arg, &e);
			pin_drop(k, p);         /* the last pin moves to pi: looked at next */
			continue;
		}
		pi++;
	}
	return found;
}

void kern_fence_tally(struct kern_fence_stats *s, const struct kern_fence_event *e)
{
	if (e->fate != KERN_FATE_DETACHED && e->fate != KERN_FATE_REPLACED && e->fate != KERN_FATE_UNPINNED)
		return;
	if (!e->repaired)
		s->failed += !e->again;
	else if (e->fate == KERN_FATE_DETACHED)
		s->detached++;
	else if (e->fate == KERN_FATE_REPLACED)
		s->replaced++;
	else
		s->unpinned++;
}

void kern_fence_note(struct kern *k, const struct kern_fence_event *e)
{
	kern_fence_tally(&k->repairs, e);
}

void kern_fence_stats(const struct kern *k, struct kern_fence_stats *out)
{
	*out = k->repairs;
}

int kern_take_origin(struct kern *k, const struct al_addr *agent, uint16_t agent_port,
		     struct al_origin *out)
{
	struct al_conn_key key;
	int fd = bpf_map__fd(k->skel->maps.al_conns);

	memset(&key, 0, sizeof(key));
	key.addr = *agent;
	key.port = agent_port;
	if (bpf_map_lookup_and_delete_elem(fd, &key, out) == 0)
		return 0;
	if (errno == ENOENT)
		return -1;
	if (bpf_map_lookup_elem(fd, &key, out) < 0)
		return -1;
	(void)bpf_map_delete_elem(fd, &key);
	return 0;
}

int kern_exe(struct kern *k, uint32_t tgid, char *buf, size_t len)
{
	struct al_exe e;

	if (k && k->exe_by_kernel && tgid &&
	    bpf_map_lookup_elem(bpf_map__fd(k->skel->maps.al_exe), &tgid, &e) == 0 && e.flags == 0 &&
	    e.len > 0 && e.len < AL_EXE_PATH && e.len < len) {
		memcpy(buf, e.path, e.len);
		buf[e.len] = '\0';
		return 0;
	}
	return pid_exe(tgid, buf, len);
}

int kern_exe_by_kernel(const struct kern *k)
{
	return k && k->exe_by_kernel;
}

int kern_counters(struct kern *k, uint64_t out[AL_REASON_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	int fd = bpf_map__fd(k->skel->maps.al_counters);
	uint64_t *v;

	if (ncpu <= 0)
		return -1;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v)
		return -1;
	for (__u32 r = 0; r < AL_REASON_MAX; r++) {
		out[r] = 0;
		if (bpf_map_lookup_elem(fd, &r, v) < 0)
			continue;
		for (int c = 0; c < ncpu; c++)
			out[r] += v[c];
	}
	free(v);
	return 0;
}

/* Empties and removes one directory of pins, detaching links on the way. */
static int remove_pins(const char *dir, int links)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);
	int rc = 0;

	if (!d)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (al_fmt(path, sizeof(path), "%s/%s", dir, de->d_name) < 0 || lstat(path, &st) < 0) {
			rc = -1;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			rc |= remove_pins(path, links);
			continue;
		}
		if (links) {
			struct bpf_link *l = bpf_link__open(path);

			if (l) {
				bpf_link__detach(l);
				bpf_link__destroy(l);
			}
		}
		if (unlink(path) < 0)
			rc = -1;
	}
	closedir(d);
	if (rmdir(dir) < 0)
		rc = -1;
	return rc;
}

int kern_down(const char *pin_root, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct statfs sfs;

	if (statfs(pin_root, &sfs) < 0)
		return errno == ENOENT ? 0 : ERR("%s: %s", pin_root, strerror(errno));
	if (sfs.f_type != BPF_FS_MAGIC)
		return ERR("%s is not on bpffs; refusing to remove it", pin_root);
	/* nftables and routes first: their record lives in the maps removed below. */
	if (netdev_down(pin_root, err, errlen) < 0)
		return -1;
	if (al_fmt(path, sizeof(path), "%s/" AL_PIN_IFACE_DIR, pin_root) < 0 || remove_pins(path, 1) < 0)
		return ERR("%s: could not remove every XDP link pin: %s", path, strerror(errno));
	if (al_fmt(path, sizeof(path), "%s/" AL_PIN_CG_DIR, pin_root) < 0 || remove_pins(path, 1) < 0)
		return ERR("%s: could not remove every link pin: %s", path, strerror(errno));
	if (al_fmt(path, sizeof(path), "%s/" AL_PIN_MAPS_DIR, pin_root) < 0 || remove_pins(path, 0) < 0)
		return ERR("%s: could not remove every map pin: %s", path, strerror(errno));
	/* Under the unit, pin_root is a writable mount point (ReadWritePaths) in a read-only /sys:
	 * EBUSY or EROFS. The pins are gone; the empty directory stays (the package's prerm
	 * removes it, the next start uses it). */
	if (rmdir(pin_root) < 0 && errno != ENOENT && errno != EBUSY && errno != EROFS)
		return ERR("%s: %s", pin_root, strerror(errno));
	return 0;
}

int kern_set_resolvers(struct kern *k, const struct al_addr *addrs, size_t n, char *err, size_t errlen)
{
	int fd = bpf_map__fd(k->skel->maps.al_resolvers);
	struct al_addr key, next;
	__u8 one = 1;
	int more;

	if (n > AL_RESOLVERS_MAX)
		return ERR("at most %d DNS resolvers", AL_RESOLVERS_MAX);
	/* Add the new set first, then drop what is no longer in it: a
	 * resolver in both sets is never missing, not even for a moment. */
	for (size_t i = 0; i < n; i++)
		if (bpf_map_update_elem(fd, &addrs[i], &one, BPF_ANY) < 0)
			return ERR("resolver map: %s", strerror(errno));
	more = bpf_map_get_next_key(fd, NULL, &key) == 0;
	while (more) {
		int keep = 0;

		more = bpf_map_get_next_key(fd, &key, &next) == 0;
		for (size_t i = 0; i < n && !keep; i++)
			keep = memcmp(&addrs[i], &key, sizeof(key)) == 0;
		if (!keep)
			(void)bpf_map_delete_elem(fd, &key);
		key = next;
	}
	return 0;
}

int kern_events_open(struct kern *k, kern_event_cb cb, void *arg, char *err, size_t errlen)
{
	k->events = ring_buffer__new(bpf_map__fd(k->skel->maps.al_events),
				     (ring_buffer_sample_fn)cb, arg, NULL);
	if (!k->events)
		return ERR("event ring buffer: %s", strerror(errno));
	return ring_buffer__epoll_fd(k->events);
}

int kern_events_drain(struct kern *k)
{
	return ring_buffer__consume(k->events);
}
