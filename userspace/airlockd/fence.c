/* The fence check in the daemon: kern_fence_check and ifaces_fence_check every second; what they put back is logged, audited and counted. */
#include "fence.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

struct fence {
	struct kern *kern;
	struct ifaces *ifaces;
	struct store *store;
	struct event *tick;
	int starting;               /* the check fence_start makes */
	int gone;                   /* this check found pinned cgroups gone */
	void (*on_gone)(void *arg);
	void *on_gone_arg;
	json_t *last;               /* the last repair (or failed one), as audited, with at_us */
};

/* The path the cgroup was pinned by, or "cgroup N" when it has none any more. */
static void cgroup_name(struct fence *f, uint64_t id, char *buf, size_t len)
{
	if (store_pin_path(f->store, id, buf, len) == 0 || kern_cgroup_path(id, buf, len) == 0)
		return;
	snprintf(buf, len, "cgroup %llu", (unsigned long long)id);
}

/* The audit record's body (and status' "last"). */
static json_t *finding_json(struct fence *f, const struct kern_fence_event *e, const char *path)
{
	json_t *o = json_pack("{s:s, s:s, s:I, s:b, s:b}", "found", kern_fate_name(e->fate), "program", e->prog,
			      "link_id", (json_int_t)e->link_id, "repaired", e->repaired, "at_start", f->starting);

	if (!o)
		return NULL;
	if (e->cgroup_id) {
		json_object_set_new(o, "cgroup_id", json_integer((json_int_t)e->cgroup_id));
		json_object_set_new(o, "path", json_string(path));
	} else {
		json_object_set_new(o, "iface", json_string(e->ifname));
		json_object_set_new(o, "ifindex", json_integer(e->ifindex));
	}
	if (e->fate == KERN_FATE_REPLACED)
		json_object_set_new(o, "found_prog_id", json_integer(e->found_prog_id));
	if (e->repaired && e->fate == KERN_FATE_DETACHED)
		json_object_set_new(o, "new_link_id", json_integer(e->new_link_id));
	if (!e->repaired)
		json_object_set_new(o, "error", json_string(e->err));
	return o;
}

static void on_finding(void *arg, const struct kern_fence_event *e)
{
	struct fence *f = arg;
	const char *when = f->starting ? ", found at start" : "";
	char where[512], what[64];
	json_t *body;

	if (e->cgroup_id)
		cgroup_name(f, e->cgroup_id, where, sizeof(where));
	else
		snprintf(where, sizeof(where), "interface %s (index %d)", e->ifname[0] ? e->ifname : "?",
			 e->ifindex);
	if (e->fate == KERN_FATE_GONE) {
		/* As at a start; an interface's is said by xdp_fence_check. */
		if (e->cgroup_id) {
			al_info("pinned cgroup %s (id %llu) is gone; removed its pins", where,
				(unsigned long long)e->cgroup_id);
			f->gone = 1;
		}
		return;
	}
	kern_fence_note(f->kern, e);
	if (e->again)
		return;         /* said at the check before */
	if (e->fate == KERN_FATE_DETACHED)
		snprintf(what, sizeof(what), "was detached");
	else if (e->fate == KERN_FATE_UNPINNED)
		snprintf(what, sizeof(what), "lost its pin");
	else
		snprintf(what, sizeof(what), "ran another program (id %u)", e->found_prog_id);
	if (e->repaired && e->fate == KERN_FATE_DETACHED)
		al_warn("fence: %s on %s %s behind airlockd's back (link %u)%s: attached it again (link %u), "
			"its pin replaced", e->prog, where, what, e->link_id, when, e->new_link_id);
	else if (e->repaired && e->fate == KERN_FATE_UNPINNED)
		al_warn("fence: %s on %s %s behind airlockd's back (link %u)%s: pinned again (without it the "
			"link would go with airlockd)", e->prog, where, what, e->link_id, when);
	else if (e->repaired)
		al_warn("fence: %s on %s %s behind airlockd's back (link %u)%s: %s runs there again", e->prog,
			where, what, e->link_id, when, e->prog);
	else
		al_err("fence: %s on %s %s behind airlockd's back (link %u)%s and cannot be put back: %s; it "
		       "does not fence there until it is (tried at every check)", e->prog, where, what,
		       e->link_id, when, e->err);
	body = finding_json(f, e, where);
	if (!body) {
		al_err("fence: out of memory recording the repair");
		return;
	}
	json_decref(f->last);
	f->last = json_deep_copy(body);
	if (f->last)
		json_object_set_new(f->last, "at_us", json_integer(al_now_us()));
	if (store_audit_event(f->store, e->repaired ? "fence_repaired" : "fence_repair_failed", 0, body) < 0)
		al_err("fence: could not record the repair in the audit log");
}

static void check_all(struct fence *f)
{
	f->gone = 0;
	(void)kern_fence_check(f->kern, on_finding, f);
	if (f->ifaces)
		(void)ifaces_fence_check(f->ifaces, on_finding, f);
	/* after the check: it is done with the pins the callback may change */
	if (f->gone && f->on_gone)
		f->on_gone(f->on_gone_arg);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	check_all(arg);
	(void)fd;
	(void)what;
}

int fence_start(struct event_base *base, struct kern *k, struct ifaces *ifs, struct store *st,
		void (*on_gone)(void *arg), void *arg, struct fence **out, char *err, size_t errlen)
{
	struct timeval every = { FENCE_CHECK_MS / 1000, (FENCE_CHECK_MS % 1000) * 1000 };
	struct fence *f = calloc(1, sizeof(*f));

	if (!f)
		return al_errf(err, errlen, "out of memory");
	f->kern = k;
	f->ifaces = ifs;
	f->store = st;
	f->on_gone = on_gone;
	f->on_gone_arg = arg;
	f->starting = 1;
	check_all(f);
	f->starting = 0;
	f->tick = event_new(base, -1, EV_PERSIST, on_tick, f);
	if (!f->tick || event_add(f->tick, &every) < 0) {
		fence_free(f);
		return al_errf(err, errlen, "cannot start the fence check's timer");
	}
	*out = f;
	return 0;
}

void fence_status(struct fence *f, json_t *resp)
{
	struct kern_fence_stats s;
	json_t *o;

	kern_fence_stats(f->kern, &s);
	o = json_pack("{s:i, s:I, s:I, s:I, s:I, s:I}", "check_every_ms", FENCE_CHECK_MS,
		      "repairs", (json_int_t)(s.detached + s.replaced + s.unpinned), "detached", (json_int_t)s.detached,
		      "replaced", (json_int_t)s.replaced, "unpinned", (json_int_t)s.unpinned,
		      "failed", (json_int_t)s.failed);
	if (o && f->last)
		json_object_set(o, "last", f->last);
	json_object_set_new(resp, "fence", o);
}

void fence_free(struct fence *f)
{
	if (!f)
		return;
	if (f->tick)
		event_free(f->tick);
	json_decref(f->last);
	free(f);
}
