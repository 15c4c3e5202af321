/* airlockd: loads the fence, listens for steered connections, relays and records them. */
#include <airlock/config.h>
#include <airlock/console.h>
#include <airlock/control.h>
#include <airlock/kernel.h>
#include <airlock/pgproxy.h>
#include <airlock/httpproxy.h>
#include <airlock/secrets.h>
#include <airlock/tls.h>
#include <airlock/relay.h>
#include <airlock/store.h>
#include <airlock/version.h>

#include "fence.h"
#include "ifaces.h"
#include "refusals.h"
#include "review_cmds.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <limits.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_PINS 4096

/* Pins the store recorded (pins_follow), and those waiting for their cgroup (pin_watch). */
struct pin_rec {
	uint64_t id;
	int64_t at_us;
	int64_t gone_us;            /* its cgroup found removed (then), 0: not */
	char *path;
};
struct pin_recs {
	struct pin_rec *v;
	size_t n, cap;
};
struct pin_watch {
	struct pin_recs waiting;   /* recorded paths that name no cgroup now */
	int fd;                     /* inotify on the recorded paths' parents */
	struct event *ev;
};

struct daemon {
	struct event_base *base;
	struct al_config *cfg;
	struct kern *kern;
	struct store *store;
	struct relay *relay;
	struct control *control;
	struct refusals *refusals;
	struct ifaces *ifaces;      /* pinned and guarded interfaces (XDP, TPROXY) */
	struct fence *fence;        /* puts back pinned links detached or re-programmed under us */
	struct tls_ca *ca;
	struct al_secrets *secrets;
	struct pgproxy *pg;
	struct httpproxy *http;
	struct approval *approval;
	struct control *review;
	struct review_ctx rctx;
	struct console *console;
	const char *conf_path;
	int conf_explicit;
	/* Configurations and secrets replaced by a reload: sessions that began
	 * under them still point into them, so they live until exit. */
	struct al_config *retired_cfg[64];
	struct al_secrets *retired_secrets[64];
	size_t n_retired;
	int going_down;             /* `airlockctl down`: remove the pins after the loop */
	struct pin_watch *watch;    /* the recorded paths followed (pins_follow) */
	struct event *commit;       /* the group commit (on_commit) */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: airlockd [-c FILE] [-n] [-v] [-V]\n"
		"  -c FILE  configuration (default " AL_DEFAULT_CONFIG_PATH
		", else the embedded default)\n"
		"  -n       check the configuration and exit\n"
		"  -v       more log output (repeat for debug)\n"
		"  -V       print the version and exit\n");
}

static json_t *pin_json(struct daemon *d, uint64_t id)
{
	char path[4096] = "";

	if (store_pin_path(d->store, id, path, sizeof(path)) < 0 &&
	    kern_cgroup_path(id, path, sizeof(path)) < 0)
		snprintf(path, sizeof(path), "(gone)");
	return json_pack("{s:I, s:s}", "cgroup_id", (json_int_t)id, "path", path);
}

/*
 * Why a connection's row cannot name the agent's executable here, or NULL if it
 * can. The connect hook records it where the kernel allows (kern_exe_by_kernel);
 * else it comes from /proc/PID/exe, which needs CAP_SYS_PTRACE and the host's
 * PID namespace.
 * Said once at start and in status, rather than a blank column with no reason.
 */
static const char *exe_gap(const struct kern *k)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct c[_LINUX_CAPABILITY_U32S_3];

	if (kern_exe_by_kernel(k))
		return NULL;
	if (!kern_host_pids())
		return "airlockd runs in a PID namespace of its own: the kernel names agents by their host "
		       "pids, which its /proc does not show";
	memset(c, 0, sizeof(c));
	if (syscall(SYS_capget, &h, c) == 0 &&
	    !(c[CAP_SYS_PTRACE / 32].effective & (1u << (CAP_SYS_PTRACE % 32))))
		return "without CAP_SYS_PTRACE, /proc/PID/exe of an agent cannot be read";
	return NULL;
}

/* What airlockctl shows, a reader of the store sees too: status and the listings commit the
 * open batch first (one commit per query, outside the group commit's window). */
static void commit_for_reader(struct daemon *d)
{
	if (store_batch_commit(d->store) < 0)
		al_err("committing audit rows failed");
}

static json_t *cmd_status(struct daemon *d)
{
	static uint64_t ids[MAX_PINS];
	uint64_t kc[AL_REASON_MAX];
	struct relay_stats rs;
	struct store_totals tot;
	json_t *resp = control_ok(), *pins = json_array(), *kobj = json_object(), *sobj = json_object();
	int n = kern_pinned(d->kern, ids, MAX_PINS);
	const char *gap = exe_gap(d->kern);

	commit_for_reader(d);
	for (int i = 0; i < n; i++)
		json_array_append_new(pins, pin_json(d, ids[i]));
	if (kern_counters(d->kern, kc) == 0)
		for (unsigned int r = 1; r < AL_REASON_MAX; r++)
			if (kc[r])
				json_object_set_new(kobj, al_reason_name(r), json_integer((json_int_t)kc[r]));
	relay_stats(d->relay, &rs);
	memset(&tot, 0, sizeof(tot));
	if (store_totals(d->store, &tot) == 0)
		for (unsigned int r = 1; r < AL_REASON_MAX; r++)
			if (tot.by_reason[r])
				json_object_set_new(sobj, al_reason_name(r),
						    json_integer((json_int_t)tot.by_reason[r]));
	json_object_set_new(resp, "version", json_string(AL_VERSION));
	json_object_set_new(resp, "steer_port", json_integer(d->cfg->steer_port));
	json_object_set_new(resp, "store", json_string(d->cfg->store_path));
	json_object_set_new(resp, "pin_root", json_string(d->cfg->pin_root));
	json_object_set_new(resp, "pinned", pins);
	{
		json_t *waiting = json_array();

		for (size_t i = 0; d->watch && i < d->watch->waiting.n; i++)
			json_array_append_new(waiting, json_string(d->watch->waiting.v[i].path));
		json_object_set_new(resp, "pins_waiting", waiting);
	}
	json_object_set_new(resp, "exe_recorded", json_boolean(!gap));
	json_object_set_new(resp, "exe_by_kernel", json_boolean(kern_exe_by_kernel(d->kern)));
	if (gap)
		json_object_set_new(resp, "exe_gap", json_string(gap));
	json_object_set_new(resp, "live", json_integer((json_int_t)rs.live));
	json_object_set_new(resp, "accepted", json_integer((json_int_t)rs.accepted));
	json_object_set_new(resp, "max_sessions", json_integer((json_int_t)rs.max_sessions));
	json_object_set_new(resp, "fd_limit", json_integer((json_int_t)rs.fd_limit));
	json_object_set_new(resp, "tls_passthrough", json_integer((json_int_t)rs.tls_passthrough));
	json_object_set_new(resp, "max_sessions_per_agent", json_integer((json_int_t)rs.per_agent));
	json_object_set_new(resp, "steered_total", json_integer((json_int_t)kc[AL_REASON_STEERED]));
	json_object_set_new(resp, "connections_recorded", json_integer((json_int_t)tot.connections));
	{
		uint64_t rec = 0, sup = 0;

		refusals_stats(d->refusals, &rec, &sup);
		json_object_set_new(resp, "refusals_recorded", json_integer((json_int_t)rec));
		json_object_set_new(resp, "refusals_suppressed", json_integer((json_int_t)sup));
	}
	{
		struct pgproxy_stats ps;

		pgproxy_stats(d->pg, &ps);
		json_object_set_new(resp, "pg_live", json_integer((json_int_t)ps.live));
		json_object_set_new(resp, "pg_statements", json_integer((json_int_t)ps.statements));
		json_object_set_new(resp, "pg_denied", json_integer((json_int_t)ps.denied));
	}
	{
		struct httpproxy_stats hs;

		httpproxy_stats(d->http, &hs);
		json_object_set_new(resp, "http_live", json_integer((json_int_t)hs.live));
		json_object_set_new(resp, "http_requests", json_integer((json_int_t)hs.requests));
		json_object_set_new(resp, "http_denied", json_integer((json_int_t)hs.denied));
		json_object_set_new(resp, "http_held", json_integer((json_int_t)hs.held));
		json_object_set_new(resp, "http_malformed", json_integer((json_int_t)hs.malformed));
	}
	json_object_set_new(resp, "kernel", kobj);
	json_object_set_new(resp, "sessions", sobj);
	{
		/* Counted in memory: on a full store the refusals' own rows cannot be written. */
		json_t *mobj = json_object();

		for (unsigned int r = 1; r < AL_REASON_MAX; r++)
			if (rs.by_reason[r])
				json_object_set_new(mobj, al_reason_name(r), json_integer((json_int_t)rs.by_reason[r]));
		json_object_set_new(resp, "sessions_since_start", mobj);
		json_object_set_new(resp, "store_accepting", json_boolean(store_accepting(d->store)));
	}
	{
		json_t *wh = approval_webhook_json(d->approval);

		if (wh)
			json_object_set_new(resp, "webhook", wh);
	}
	ifaces_status(d->ifaces, resp);
	fence_status(d->fence, resp);
	return resp;
}

/*
 * A pin is on a path. The kernel pins a cgroup, by id; the store records each pin with the
 * path the operator named, and airlockd keeps that path fenced whatever cgroup it names:
 *   - a reboot empties bpffs: at start, a recorded pin the kernel no longer has is pinned again
 *     (by its path: the cgroup has a new id) if it was made before this boot, and forgotten if
 *     it was made during this boot (then its removal was deliberate: `airlockctl down` without
 *     a daemon, or its pins deleted by hand);
 *   - a pinned cgroup is removed (a service stopped; the fence check finds it within a second):
 *     its record is marked gone and waits for its path;
 *   - its path names a new cgroup (the service started again, systemd made its cgroup anew):
 *     that one is pinned the moment it is made, and its record takes the new id.
 * The moment: inotify on the parent directory of each recorded path (the deepest one that
 * exists, for a path whose parents are not there yet). systemd makes a service's cgroup, then
 * moves its process in and execs it: the pin lands within a loop turn of the mkdir, and a
 * connection the agent made before it loses its packets to the egress backstop
 * (held_connection). Status lists the paths waiting meanwhile.
 */
static int collect_pin(void *arg, const struct store_pin *sp)
{
	struct pin_recs *r = arg;

	if (AL_GROW(r->v, r->n, r->cap, 8) < 0 || !(r->v[r->n].path = strdup(sp->path ? sp->path : "")))
		return -1;
	r->v[r->n].id = sp->cgroup_id;
	r->v[r->n].at_us = sp->pinned_us;
	r->v[r->n].gone_us = sp->gone_us;
	r->n++;
	return 0;
}

static void pin_recs_free(struct pin_recs *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].path);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/* When this boot began, on the wall clock. */
static int64_t boot_us(void)
{
	struct timespec b;

	if (clock_gettime(CLOCK_BOOTTIME, &b) < 0)
		return 0;
	return al_now_us() - ((int64_t)b.tv_sec * 1000000 + b.tv_nsec / 1000);
}

static int has_id(const uint64_t *ids, int n, uint64_t id)
{
	for (int i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

/* Stops watching (the event and its inotify fd go; the waiting list stays). */
static void watch_stop(struct pin_watch *w)
{
	if (w->ev)
		event_free(w->ev);
	if (w->fd >= 0)
		close(w->fd);
	w->ev = NULL;
	w->fd = -1;
}

static void watch_free(struct daemon *d)
{
	if (!d->watch)
		return;
	watch_stop(d->watch);
	pin_recs_free(&d->watch->waiting);
	free(d->watch);
	d->watch = NULL;
}

static void on_cgroup_made(evutil_socket_t fd, short what, void *arg);

/*
 * Watches the parent directory of each recorded path (the deepest one of its parents that
 * exists), with a fresh inotify: set before the paths are looked at, so a cgroup made while
 * pins_follow looks is seen by the next one. 0, or -1 (said).
 */
static int watch_arm(struct daemon *d, const struct pin_recs *recs)
{
	struct pin_watch *w = d->watch;
	int watched = 0;

	watch_stop(w);
	if (recs->n == 0)
		return 0;
	if ((w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
		goto fail;
	for (size_t i = 0; i < recs->n; i++) {
		char dir[2 * PATH_MAX];
		struct stat st;
		size_t mlen;
		char *slash;

		if (kern_cgroup_join(recs->v[i].path, dir, sizeof(dir), &mlen) < 0)
			continue;
		/* its parent, or the deepest of its parents that exists: the mount at least */
		do {
			if (!(slash = strrchr(dir, '/')) || slash < dir + mlen)
				break;
			*slash = '\0';
		} while (stat(dir, &st) < 0);
		if (inotify_add_watch(w->fd, dir, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR) >= 0)
			watched++;
	}
	if (!watched || !(w->ev = event_new(d->base, w->fd, EV_READ | EV_PERSIST, on_cgroup_made, d)) ||
	    event_add(w->ev, NULL) < 0)
		goto fail;
	return 0;
fail:
	al_warn("cannot watch the directories of %zu pinned paths (%s): a cgroup made again is pinned "
		"when the fence check finds the old one gone (within %d ms), one not there at start at the "
		"next start", recs->n, strerror(errno), FENCE_CHECK_MS);
	watch_stop(w);
	return -1;
}

/* Pins cg, which the path of record p names now, and records it under the new id. */
static void pin_anew(struct daemon *d, const struct pin_rec *p, int p_pinned, const struct kern_cgroup *cg)
{
	int64_t booted = boot_us();
	int reboot = !p_pinned && p->at_us < booted && (!p->gone_us || p->gone_us < booted);
	const char *why = reboot ? "it was pinned before this boot, and a reboot empties bpffs" :
			  "its cgroup was removed and made again";
	char err[1024];

	if (kern_pin(d->kern, cg, err, sizeof(err)) < 0) {
		al_err("could not pin %s again (%s): %s; its agents are not fenced", p->path, why, err);
		return;
	}
	if (store_pin_add(d->store, cg->id, cg->rel) < 0 ||
	    (!p_pinned && p->id != cg->id && store_pin_del(d->store, p->id) < 0))
		al_warn("pinned %s again but could not record it", cg->rel);
	if (p->id != cg->id)
		al_info("pinned %s again (cgroup %llu, was %llu): %s", cg->rel, (unsigned long long)cg->id,
			(unsigned long long)p->id, why);
	else
		al_info("pinned %s again (cgroup %llu): %s", cg->rel, (unsigned long long)cg->id, why);
	if (store_audit_event(d->store, "pin_renewed", 0,
			      json_pack("{s:s, s:I, s:I, s:s}", "path", cg->rel, "cgroup_id", (json_int_t)cg->id,
					"was_cgroup_id", (json_int_t)p->id,
					"why", reboot ? "reboot" : "made again")) < 0)
		al_err("could not record the pin of %s in the audit log", cg->rel);
}

/*
 * Brings the kernel's pins to the recorded paths: a path that names a cgroup not pinned gets it
 * pinned (pin_anew), a record whose cgroup is not pinned (removed) and whose path names none is
 * marked gone and waits (status: pins_waiting). A pinned cgroup whose path names another one now
 * stays pinned: the fence check drops it once it is gone (it may be the same cgroup renamed).
 */
static void pins_follow(struct daemon *d)
{
	static uint64_t ids[MAX_PINS];
	struct pin_recs recs = { 0 };
	struct pin_watch *w = d->watch;
	int n;

	if (!w) {
		if (!(w = calloc(1, sizeof(*w)))) {
			al_err("out of memory following the pinned paths");
			return;
		}
		w->fd = -1;
		d->watch = w;
	}
	pin_recs_free(&w->waiting);
	if (store_pins_each(d->store, collect_pin, &recs) < 0 || (n = kern_pinned(d->kern, ids, MAX_PINS)) < 0) {
		al_err("could not compare the recorded pins with the kernel's");
		goto out;
	}
	(void)watch_arm(d, &recs);
	for (size_t i = 0; i < recs.n; i++) {
		struct pin_rec *p = &recs.v[i];
		int pinned = has_id(ids, n, p->id);
		struct kern_cgroup cg;
		char err[256];

		if (kern_cgroup_resolve(p->path, &cg, err, sizeof(err)) < 0) {
			if (pinned)
				continue;       /* removed just now: the fence check drops it */
			if (!p->gone_us && store_pin_gone(d->store, p->id) < 0)
				al_warn("could not mark the pin of %s as waiting", p->path);
			if (collect_pin(&w->waiting, &(struct store_pin){ .cgroup_id = p->id, .path = p->path,
								   .pinned_us = p->at_us, .gone_us = p->gone_us }) < 0)
				al_err("out of memory listing the waiting pins");
			continue;
		}
		if (has_id(ids, n, cg.id)) {
			/* pinned under its new id already: the old record goes once its cgroup has */
			if (!pinned && p->id != cg.id && store_pin_del(d->store, p->id) < 0)
				al_warn("could not forget the old pin record of %s", p->path);
			continue;
		}
		pin_anew(d, p, pinned, &cg);
		if (n < MAX_PINS)
			ids[n++] = cg.id;
	}
out:
	pin_recs_free(&recs);
}

static void on_cgroup_made(evutil_socket_t fd, short what, void *arg)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pins_follow(arg);
	(void)what;
}

/* The fence check found pinned cgroups gone (their pins dropped): their paths wait. Not before
 * restore_pins has followed them first (it decides which records stand), nor after down. */
static void on_pins_gone(void *arg)
{
	struct daemon *d = arg;

	if (d->watch)
		pins_follow(d);
}

static void restore_pins(struct daemon *d)
{
	static uint64_t ids[MAX_PINS];
	struct pin_recs recs = { 0 };
	int n = kern_pinned(d->kern, ids, MAX_PINS);
	int64_t booted = boot_us();

	if (n < 0 || store_pins_each(d->store, collect_pin, &recs) < 0) {
		al_err("could not compare the recorded pins with the kernel's: none restored");
		goto out;
	}
	for (size_t i = 0; i < recs.n; i++) {
		struct pin_rec *p = &recs.v[i];
		struct kern_cgroup cg;
		char err[1024];
		int there;

		if (has_id(ids, n, p->id))
			continue;
		there = kern_cgroup_resolve(p->path, &cg, err, sizeof(err)) == 0;
		if (there && cg.id == p->id && !p->gone_us && p->at_us >= booted) {
			/* the same cgroup, not removed: its pins were */
			al_info("%s was unpinned while airlockd was down (this boot): forgotten", p->path);
			if (store_pin_del(d->store, p->id) < 0)
				al_warn("could not forget the pin of %s", p->path);
			continue;
		}
		if (there)
			continue;       /* pins_follow pins it */
		if (p->gone_us || p->at_us >= booted)
			al_warn("%s was pinned and its cgroup removed; it is not there now: it is pinned the "
				"moment it is made again", p->path);
		else
			al_warn("%s was pinned before this boot but is not there yet: it is pinned the moment "
				"it is made", p->path);
	}
	pins_follow(d);
out:
	pin_recs_free(&recs);
}

/* The cgroup a pin/unpin request names: {"cgroup": PATH} or {"pid": N}. */
static int req_cgroup(json_t *req, struct kern_cgroup *cg, char *err, size_t errlen)
{
	json_t *path = json_object_get(req, "cgroup"), *pid = json_object_get(req, "pid");

	if (json_is_string(path))
		return kern_cgroup_resolve(json_string_value(path), cg, err, errlen);
	if (json_is_integer(pid) && json_integer_value(pid) > 0 && json_integer_value(pid) < INT32_MAX)
		return kern_cgroup_of_pid((pid_t)json_integer_value(pid), cg, err, errlen);
	return al_errf(err, errlen, "name a cgroup path or a pid");
}

/* Forgets every record of path (a cgroup there now, removed ones, one renamed away). */
static void forget_path(struct daemon *d, const char *path)
{
	struct pin_recs recs = { 0 };

	if (store_pins_each(d->store, collect_pin, &recs) < 0)
		al_warn("could not list the recorded pins of %s to forget them", path);
	for (size_t i = 0; i < recs.n; i++)
		if (strcmp(recs.v[i].path, path) == 0 && store_pin_del(d->store, recs.v[i].id) < 0)
			al_warn("could not forget the pin of %s (cgroup %llu)", path, (unsigned long long)recs.v[i].id);
	pin_recs_free(&recs);
}

/*
 * unpin of a recorded path that names no cgroup now (there is nothing to resolve): its record
 * is forgotten and the wait for it ends. arg is the operator's path (relative to the v2 mount,
 * with or without its leading "/", or absolute). NULL if no waiting pin has that path.
 */
static json_t *unpin_waiting(struct daemon *d, const char *arg)
{
	struct pin_watch *w = d->watch;
	char abs[2 * PATH_MAX], *want;
	size_t n, mlen;

	if (!w || !arg || kern_cgroup_join(arg, abs, sizeof(abs), &mlen) < 0 || !abs[mlen])
		return NULL;
	want = abs + mlen;      /* as recorded: from the mount, with its "/" */
	n = strlen(want);
	while (n > 1 && want[n - 1] == '/')
		want[--n] = '\0';
	for (size_t i = 0; i < w->waiting.n; i++) {
		json_t *resp;

		if (strcmp(w->waiting.v[i].path, want) != 0)
			continue;
		if (store_pin_del(d->store, w->waiting.v[i].id) < 0)
			return control_error("could not forget the recorded pin of %s", want);
		al_info("unpinned %s (waiting for its cgroup): forgotten", want);
		resp = control_ok();
		json_object_set_new(resp, "path", json_string(want));
		json_object_set_new(resp, "waiting", json_true());
		pins_follow(d);         /* the list and the watch without it */
		return resp;
	}
	return NULL;
}

static json_t *cmd_pin(struct daemon *d, json_t *req, int pin)
{
	struct kern_cgroup cg;
	char err[1024];
	json_t *resp;

	if (req_cgroup(req, &cg, err, sizeof(err)) < 0) {
		json_t *w = pin ? NULL : unpin_waiting(d, json_string_value(json_object_get(req, "cgroup")));

		return w ? w : control_error("%s", err);
	}
	if (pin) {
		if (kern_pin(d->kern, &cg, err, sizeof(err)) < 0)
			return control_error("%s", err);
		if (store_pin_add(d->store, cg.id, cg.rel) < 0)
			al_warn("pinned %s but could not record its path", cg.rel);
		al_info("pinned %s (cgroup %llu)", cg.rel, (unsigned long long)cg.id);
	} else {
		if (kern_unpin(d->kern, cg.id, err, sizeof(err)) < 0)
			return control_error("%s", err);
		if (store_pin_del(d->store, cg.id) < 0)
			al_warn("unpinned %s but could not forget its path", cg.rel);
		forget_path(d, cg.rel);
		al_info("unpinned %s (cgroup %llu)", cg.rel, (unsigned long long)cg.id);
	}
	pins_follow(d);         /* the watch with (or without) its path */
	resp = control_ok();
	json_object_set_new(resp, "cgroup_id", json_integer((json_int_t)cg.id));
	json_object_set_new(resp, "path", json_string(cg.rel));
	return resp;
}

static int add_row(void *arg, const char *text)
{
	json_t *row = json_loads(text, 0, NULL);

	return row ? json_array_append_new(arg, row) : -1;
}

/* {"cmd":"connections"|"refusals", "limit":N} -> the newest rows of that audit table. */
static json_t *cmd_list(struct daemon *d, json_t *req, const char *what)
{
	json_t *lim = json_object_get(req, "limit"), *rows = json_array(), *resp;
	json_int_t limit = json_is_integer(lim) ? json_integer_value(lim) : 50;
	int rc;

	commit_for_reader(d);
	if (limit <= 0 || limit > 100000)
		limit = 50;
	if (strcmp(what, "connections") == 0)
		rc = store_conn_list(d->store, (unsigned int)limit, add_row, rows);
	else if (strcmp(what, "statements") == 0)
		rc = store_stmt_list(d->store, (unsigned int)limit, add_row, rows);
	else
		rc = store_refusal_list(d->store, (unsigned int)limit, add_row, rows);
	if (rc < 0) {
		json_decref(rows);
		return control_error("could not read the store");
	}
	resp = control_ok();
	json_object_set_new(resp, what, rows);
	return resp;
}

static int load_config_err(const char *path, int explicit, struct al_config **cfg, char *err,
			   size_t errlen);
static void store_limits_from(struct store *st, const struct al_config *cfg);
static int load_secrets(struct daemon *d, char *err, size_t errlen);
static int set_resolvers(struct daemon *d, char *err, size_t errlen);

/* Two optional strings are the same (both absent, or equal). */
static int str_same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Settings a running daemon cannot change: they need a restart. */
static const char *fixed_setting_changed(const struct al_config *a, const struct al_config *b)
{
	if (a->steer_port != b->steer_port)
		return "steer_port";
	if (strcmp(a->control_socket, b->control_socket) || strcmp(a->review_socket, b->review_socket))
		return "control_socket/review_socket";
	if (strcmp(a->store_path, b->store_path))
		return "store";
	if (strcmp(a->pin_root, b->pin_root))
		return "pin_root";
	if (strcmp(a->ca_dir, b->ca_dir))
		return "ca_dir";
	if (a->console_enabled != b->console_enabled || a->console_port != b->console_port ||
	    memcmp(&a->console_addr, &b->console_addr, sizeof(a->console_addr)) ||
	    a->console_tls != b->console_tls || !str_same(a->console_cert, b->console_cert) ||
	    !str_same(a->console_key, b->console_key) || a->console_idle_s != b->console_idle_s ||
	    a->console_session_max_s != b->console_session_max_s)
		return "console_*";
	if (!str_same(a->review_webhook, b->review_webhook) ||
	    !str_same(a->review_webhook_secret, b->review_webhook_secret))
		return "review_webhook/review_webhook_secret";
	if (a->tproxy_port != b->tproxy_port || a->tproxy_mark != b->tproxy_mark ||
	    a->tproxy_table != b->tproxy_table || strcmp(a->nft_table, b->nft_table))
		return "tproxy_*/nft_table";
	return NULL;
}

/*
 * Loads the configuration (and policy.d) again and swaps it in at once for
 * new connections and decisions; sessions already running keep the rules
 * they started with. A bad file changes nothing and names file:line.
 */
static int reload(struct daemon *d, char *err, size_t errlen)
{
	struct al_config *old = d->cfg, *n = NULL;
	struct al_secrets *old_secrets = d->secrets;
	const char *fixed;

	if (d->n_retired == AL_ARRAY_LEN(d->retired_cfg))
		return al_errf(err, errlen, "reloaded too often: restart airlockd");
	if (load_config_err(d->conf_path, d->conf_explicit, &n, err, errlen) < 0)
		return -1;
	fixed = fixed_setting_changed(old, n);
	if (fixed) {
		config_free(n);
		return al_errf(err, errlen, "%s changed: that needs a restart; the running policy stays",
			       fixed);
	}
	d->cfg = n;
	d->secrets = NULL;
	if (load_secrets(d, err, errlen) < 0 || set_resolvers(d, err, errlen) < 0) {
		secrets_free(d->secrets);
		d->cfg = old;
		d->secrets = old_secrets;
		config_free(n);
		return -1;
	}
	relay_set_config(d->relay, n);
	pgproxy_set_config(d->pg, n, d->secrets);
	httpproxy_set_config(d->http, n, d->secrets);
	approval_set_config(d->approval, n);
	d->retired_cfg[d->n_retired] = old;
	d->retired_secrets[d->n_retired] = old_secrets;
	d->n_retired++;
	al_info("configuration reloaded from %s (%zu resources)", n->source, n->n_resources);
	store_limits_from(d->store, n);
	if (store_audit_event(d->store, "policy_reload", 0, json_pack("{s:s, s:I}", "source", n->source,
							  "resources", (json_int_t)n->n_resources)) < 0)
		al_err("could not record the policy reload in the audit log");
	return 0;
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	char err[1024];

	(void)al_sd_notify("RELOADING=1");
	if (reload(arg, err, sizeof(err)) < 0)
		al_err("reload failed: %s", err);
	(void)al_sd_notify("READY=1");
	(void)sig;
	(void)what;
}

static json_t *handle(void *arg, json_t *req, const struct control_peer *peer)
{
	struct daemon *d = arg;
	const char *cmd = json_string_value(json_object_get(req, "cmd"));

	if (!cmd)
		return control_error("missing \"cmd\"");
	{
		json_t *r = review_command(&d->rctx, cmd, req, peer);

		if (r || peer->open)
			return r ? r : control_error("unknown command '%s'", cmd);
	}
	{
		json_t *r = ifaces_command(d->ifaces, cmd, req); /* pin/unpin --iface, guard */

		if (r)
			return r;
	}
	if (strcmp(cmd, "status") == 0)
		return cmd_status(d);
	if (strcmp(cmd, "policy_reload") == 0) {
		char err[1024];

		if (reload(d, err, sizeof(err)) < 0)
			return control_error("%s", err);
		return control_ok();
	}
	if (strcmp(cmd, "pin") == 0)
		return cmd_pin(d, req, 1);
	if (strcmp(cmd, "unpin") == 0)
		return cmd_pin(d, req, 0);
	if (strcmp(cmd, "connections") == 0 || strcmp(cmd, "refusals") == 0 ||
	    strcmp(cmd, "statements") == 0)
		return cmd_list(d, req, cmd);
	if (strcmp(cmd, "ca") == 0) {
		FILE *f = fopen(tls_ca_cert_path(d->ca), "re");
		char pem[16384];
		size_t n = f ? fread(pem, 1, sizeof(pem) - 1, f) : 0;
		json_t *resp;

		if (f)
			fclose(f);
		if (n == 0)
			return control_error("cannot read %s", tls_ca_cert_path(d->ca));
		pem[n] = '\0';
		resp = control_ok();
		json_object_set_new(resp, "path", json_string(tls_ca_cert_path(d->ca)));
		json_object_set_new(resp, "pem", json_string(pem));
		return resp;
	}
	if (strcmp(cmd, "down") == 0) {
		struct timeval soon = { 0, 100 * 1000 };
		struct pin_recs recs = { 0 };

		/* Every record, those still waiting for their cgroup too: down forgets them all. */
		if (store_pins_each(d->store, collect_pin, &recs) < 0)
			al_warn("could not list the recorded pins to forget them");
		for (size_t i = 0; i < recs.n; i++)
			if (store_pin_del(d->store, recs.v[i].id) < 0)
				al_warn("could not forget the pin of %s", recs.v[i].path);
		pin_recs_free(&recs);
		watch_free(d);
		d->going_down = 1;
		event_base_loopexit(d->base, &soon);
		return control_ok();
	}
	return control_error("unknown command '%s'", cmd);
}

static int64_t last_commit_us;

/* Group commit (store.h): runs after the ready events queued before it in the
 * loop iteration that opened the batch (same priority, activated behind them). */
static void on_commit(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	last_commit_us = al_mono_us();
	if (store_batch_commit_settled(d->store) < 0)
		al_err("committing audit rows failed");
	(void)fd;
	(void)what;
}

/* The store's periodic work: timed audit checkpoints, recording retention, the size cap. */
static void on_store_tick(evutil_socket_t fd, short what, void *arg)
{
	store_tick(((struct daemon *)arg)->store);
	(void)fd;
	(void)what;
}

static void store_limits_from(struct store *st, const struct al_config *cfg)
{
	struct store_limits l = {
		.max_size = cfg->store_max_size,
		.full = cfg->store_full_rotate ? STORE_FULL_ROTATE : STORE_FULL_REFUSE,
		.record_retention_us = (int64_t)cfg->record_retention_s * 1000000,
	};

	store_set_limits(st, &l);
}

/* Commits at most every commit_interval: at low rates at the end of the loop
 * iteration, under load rows of many iterations share a commit. A kill -9 can
 * lose at most that window of audit rows (two for a command the commit carried
 * over to wait for its outcome, store_batch_commit_settled). Not at a lower priority: libevent
 * runs a lower priority only in an iteration with no other event ready, so
 * under load the commit waited up to a second and then blocked the loop for
 * tens of ms. */

static void on_batch_open(void *arg)
{
	struct daemon *d = arg;
	int64_t wait = last_commit_us + (int64_t)d->cfg->commit_interval_ms * 1000 - al_mono_us();

	if (wait <= 0) {
		event_active(d->commit, EV_TIMEOUT, 1);
	} else {
		struct timeval tv = { (time_t)(wait / 1000000), (suseconds_t)(wait % 1000000) };

		event_add(d->commit, &tv);
	}
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	al_info("signal %d: stopping (pinned cgroups stay fenced)", (int)sig);
	event_base_loopexit(d->base, NULL);
	(void)what;
}

/* The secrets file, when some resource logs in upstream with a credential. */
static int load_secrets(struct daemon *d, char *err, size_t errlen)
{
	for (size_t i = 0; i < d->cfg->n_resources; i++) {
		const struct al_resource *r = &d->cfg->resources[i];

		if (!r->credential)
			continue;
		if (!d->secrets && secrets_load(d->cfg->secrets_path, &d->secrets, err, errlen) < 0)
			return -1;
		if (!secrets_find(d->secrets, r->credential))
			return al_errf(err, errlen, "%s:%d: resource %s: credential '%s' is not in %s",
				       d->cfg->source, r->line, r->name, r->credential, d->cfg->secrets_path);
		if (r->proto == AL_PROTO_POSTGRES && !secrets_find(d->secrets, r->credential)->user)
			return al_errf(err, errlen, "%s:%d: resource %s: credential '%s' has no user= "
				       "(a PostgreSQL login needs one)", d->cfg->source, r->line, r->name,
				       r->credential);
		if (secrets_find(d->secrets, r->credential)->sslcert && r->upstream_tls == AL_UPSTREAM_TLS_DISABLE)
			return al_errf(err, errlen, "%s:%d: resource %s: credential '%s' is a client "
				       "certificate, which needs upstream TLS (upstream_tls require or "
				       "verify-full)", d->cfg->source, r->line, r->name, r->credential);
	}
	return 0;
}

/* The resolvers from the configuration, else from /etc/resolv.conf. */
static int set_resolvers(struct daemon *d, char *err, size_t errlen)
{
	struct al_addr sys[AL_RESOLVERS_MAX];
	int n;

	if (d->cfg->resolvers_set)
		return kern_set_resolvers(d->kern, d->cfg->resolvers, d->cfg->n_resolvers, err, errlen);
	n = config_system_resolvers("/etc/resolv.conf", sys, AL_RESOLVERS_MAX);
	if (n < 0) {
		al_warn("/etc/resolv.conf unreadable: pinned agents get no DNS over UDP");
		n = 0;
	}
	return kern_set_resolvers(d->kern, sys, (size_t)n, err, errlen);
}

static int load_config_err(const char *path, int explicit, struct al_config **cfg, char *err,
			   size_t errlen)
{
	struct stat st;

	if (explicit || stat(path, &st) == 0)
		return config_load_file(path, cfg, err, errlen);
	return config_load_default(cfg, err, errlen);
}

static int load_config(const char *path, int explicit, struct al_config **cfg)
{
	char err[1024];
	struct stat st;
	int rc;

	if (explicit || stat(path, &st) == 0)
		rc = config_load_file(path, cfg, err, sizeof(err));
	else
		rc = config_load_default(cfg, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "airlockd: %s\n", err);
	return rc;
}

int main(int argc, char **argv)
{
	const char *conf = AL_DEFAULT_CONFIG_PATH;
	int check = 0, explicit = 0, opt, rc = 1, n;
	struct daemon d = { 0 };
	struct event *sigs[3] = { 0 }, *tick = NULL;
	struct relay_stats rs;
	char err[1024];

	while ((opt = getopt(argc, argv, "c:nvVh")) != -1) {
		switch (opt) {
		case 'c':
			conf = optarg;
			explicit = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 'v':
			al_log_verbosity++;
			break;
		case 'V':
			printf("airlockd %s\n", AL_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (load_config(conf, explicit, &d.cfg) < 0)
		return 1;
	d.conf_path = conf;
	d.conf_explicit = explicit;
	if (check) {
		/* The secrets file is part of a working configuration. */
		if (load_secrets(&d, err, sizeof(err)) < 0) {
			fprintf(stderr, "airlockd: %s\n", err);
			config_free(d.cfg);
			return 1;
		}
		secrets_free(d.secrets);
		printf("airlockd: configuration %s is valid (%zu resources)\n", d.cfg->source,
		       d.cfg->n_resources);
		config_free(d.cfg);
		return 0;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "airlockd: must run as root (it loads BPF programs and pins cgroups)\n");
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	{
		FILE *f = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "re");
		unsigned int start = 1024;

		if (f) {
			if (fscanf(f, "%u", &start) != 1)
				start = 1024;
			fclose(f);
		}
		if (d.cfg->steer_port >= start)
			al_warn("steer_port %u is one any user may listen on: while airlockd is down, a "
				"local process could take it and catch the agents' traffic (use a port "
				"below %u)", d.cfg->steer_port, start);
	}
	{
		/* The changelist folds a write event armed and disarmed in one loop pass (every
		 * relayed message) into no epoll_ctl at all. Its known hazard, two dup()ed fds
		 * in one loop, does not arise: the daemon never dups a descriptor it watches. */
		struct event_config *ec = event_config_new();

		if (ec && event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) == 0)
			d.base = event_base_new_with_config(ec);
		if (!d.base)
			d.base = event_base_new();
		event_config_free(ec);
	}
	/* Three priorities: everything runs at the default (1), the audit commit too. */
	if (!d.base || event_base_priority_init(d.base, 3) < 0) {
		fprintf(stderr, "airlockd: cannot create the event loop\n");
		goto out;
	}
	if (store_open(d.cfg->store_path, &d.store) < 0) {
		fprintf(stderr, "airlockd: cannot open the store %s\n", d.cfg->store_path);
		goto out;
	}
	store_limits_from(d.store, d.cfg);
	store_count_start(d.store);     /* /metrics' statement counts, off the event loop */
	{
		struct timeval every = { 0, 250 * 1000 };

		tick = event_new(d.base, -1, EV_PERSIST, on_store_tick, &d);
		if (!tick || event_add(tick, &every) < 0) {
			fprintf(stderr, "airlockd: cannot start the store timer\n");
			goto out;
		}
	}
	if (tls_ca_open(d.cfg->ca_dir, &d.ca, err, sizeof(err)) < 0 ||
	    load_secrets(&d, err, sizeof(err)) < 0 ||
	    kern_open(d.cfg->pin_root, d.cfg->steer_port, &d.kern, err, sizeof(err)) < 0 ||
	    set_resolvers(&d, err, sizeof(err)) < 0 ||
	    refusals_start(d.base, d.kern, d.store, &d.refusals, err, sizeof(err)) < 0 ||
	    relay_start(d.base, d.cfg, d.kern, d.store, &d.relay, err, sizeof(err)) < 0 ||
	    ifaces_start(d.base, d.cfg, d.store, d.relay, &d.ifaces, err, sizeof(err)) < 0 ||
	    fence_start(d.base, d.kern, d.ifaces, d.store, on_pins_gone, &d, &d.fence, err, sizeof(err)) < 0 ||
	    approval_new(d.base, d.store, d.cfg, &d.approval, err, sizeof(err)) < 0 ||
	    pgproxy_new(d.base, d.cfg, d.store, d.ca, d.secrets, d.approval, &d.pg, err, sizeof(err)) < 0 ||
	    httpproxy_new(d.base, d.cfg, d.store, d.ca, d.secrets, d.approval, &d.http, err, sizeof(err)) < 0 ||
	    control_start(d.base, d.cfg->control_socket, 0, handle, &d, &d.control, err, sizeof(err)) < 0 ||
	    control_start(d.base, d.cfg->review_socket, 1, handle, &d, &d.review, err, sizeof(err)) < 0) {
		fprintf(stderr, "airlockd: %s\n", err);
		goto out;
	}
	relay_set_pgproxy(d.relay, d.pg);
	relay_set_httpproxy(d.relay, d.http);
	restore_pins(&d);
	{
		struct console_deps cd = { .base = d.base, .cfg = d.cfg, .store = d.store,
					   .approval = d.approval, .kern = d.kern, .ca = d.ca };

		if (console_start(&cd, &d.console, err, sizeof(err)) < 0) {
			fprintf(stderr, "airlockd: %s\n", err);
			goto out;
		}
	}
	d.rctx.approval = d.approval;
	d.rctx.store = d.store;
	d.rctx.kern = d.kern;
	sigs[0] = evsignal_new(d.base, SIGINT, on_signal, &d);
	sigs[1] = evsignal_new(d.base, SIGTERM, on_signal, &d);
	sigs[2] = evsignal_new(d.base, SIGHUP, on_hup, &d);
	d.commit = event_new(d.base, -1, 0, on_commit, &d);
	if (d.commit && event_priority_set(d.commit, 1) == 0)
		store_on_batch(d.store, on_batch_open, &d);
	if (!sigs[0] || !sigs[1] || !sigs[2] || event_add(sigs[0], NULL) < 0 ||
	    event_add(sigs[1], NULL) < 0 || event_add(sigs[2], NULL) < 0 ||
	    !d.commit) {
		fprintf(stderr, "airlockd: cannot install signal handlers\n");
		goto out;
	}
	{
		static uint64_t ids[MAX_PINS];

		n = kern_pinned(d.kern, ids, MAX_PINS);
	}
	{
		const char *gap = exe_gap(d.kern);

		if (gap)
			al_warn("%s: agents' executables are not recorded", gap);
	}
	relay_stats(d.relay, &rs);
	printf("airlockd %s ready\n"
	       "  steer:   127.0.0.1:%u [::1]:%u\n"
	       "  control: %s\n"
	       "  review:  %s\n"
	       "  store:   %s\n"
	       "  ca:      %s\n"
	       "  console: %s\n"
	       "  config:  %s\n"
	       "  limits:  %llu sessions at once (%llu file descriptors), %llu per agent%s\n"
	       "  pinned:  %d cgroup%s (pins under %s)\n",
	       AL_VERSION, d.cfg->steer_port, d.cfg->steer_port, d.cfg->control_socket,
	       d.cfg->review_socket,
	       d.cfg->store_path, tls_ca_cert_path(d.ca), console_url(d.console), d.cfg->source, (unsigned long long)rs.max_sessions,
	       (unsigned long long)rs.fd_limit, (unsigned long long)rs.per_agent,
	       d.cfg->max_sessions_per_agent ? "" : " (default: half)", n, n == 1 ? "" : "s", d.cfg->pin_root);
	fflush(stdout);
	{
		/* systemd (Type=notify): started once the banner's promises hold. */
		char st[512];

		snprintf(st, sizeof(st), "READY=1\nSTATUS=steering to port %u, %d pinned cgroup%s, console %s",
			 d.cfg->steer_port, n, n == 1 ? "" : "s", console_url(d.console));
		if (al_sd_notify(st) < 0)
			al_warn("could not tell the service manager airlockd is ready ($NOTIFY_SOCKET)");
	}

	event_base_dispatch(d.base);
	(void)al_sd_notify("STOPPING=1");
	rc = 0;
out:
	for (size_t i = 0; i < AL_ARRAY_LEN(sigs); i++)
		if (sigs[i])
			event_free(sigs[i]);
	control_free(d.control);
	control_free(d.review);
	console_free(d.console);
	/* Pending requests end as aborted (their sessions hear it) before the sessions go. */
	approval_abort_all(d.approval);
	fence_free(d.fence);
	ifaces_free(d.ifaces);
	relay_free(d.relay);
	pgproxy_free(d.pg);
	httpproxy_free(d.http);
	approval_free(d.approval);
	refusals_free(d.refusals);
	watch_free(&d);
	kern_close(d.kern);
	if (d.going_down) {
		if (kern_down(d.cfg->pin_root, err, sizeof(err)) < 0) {
			fprintf(stderr, "airlockd: down: %s\n", err);
			rc = 1;
		} else {
			printf("airlockd: removed every pin under %s; agents are no longer steered\n",
			       d.cfg->pin_root);
		}
	}
	/* Last writes of the shutdown commit in store_close. */
	if (d.store)
		store_on_batch(d.store, NULL, NULL);
	if (d.commit)
		event_free(d.commit);
	if (tick)
		event_free(tick);
	store_close(d.store);
	secrets_free(d.secrets);
	tls_ca_free(d.ca);
	if (d.base)
		event_base_free(d.base);
	config_free(d.cfg);
	for (size_t i = 0; i < d.n_retired; i++) {
		config_free(d.retired_cfg[i]);
		secrets_free(d.retired_secrets[i]);
	}
	return rc;
}
