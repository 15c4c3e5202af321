/* Reads refusal events from the kernel ring buffer and records them, at most RATE a second. */
#include "refusals.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

/* A token bucket: bursts of BURST rows, RATE rows a second sustained.
 * What is over goes into one summary row a second per reason. */
#define RATE  20
#define BURST 100

struct refusals {
	struct kern *kern;
	struct store *store;
	struct event *ev, *tick;
	double tokens;
	int64_t last_us;
	uint64_t recorded, suppressed;
	uint64_t pending[AL_REASON_MAX];    /* suppressed, not yet summarised */
};

static int take_token(struct refusals *r)
{
	int64_t now = al_mono_us();

	r->tokens += (double)(now - r->last_us) * RATE / 1e6;
	if (r->tokens > BURST)
		r->tokens = BURST;
	r->last_us = now;
	if (r->tokens < 1)
		return 0;
	r->tokens -= 1;
	return 1;
}

static int on_sample(void *arg, const void *data, size_t len)
{
	struct refusals *r = arg;
	const struct al_event *e = data;
	struct store_refusal row = { 0 };
	char comm[AL_COMM_LEN + 1], dst[INET6_ADDRSTRLEN], path[256], exe[PATH_MAX];

	if (len < sizeof(*e) || e->reason >= AL_REASON_MAX)
		return 0;
	if (!take_token(r)) {
		r->pending[e->reason]++;
		r->suppressed++;
		return 0;
	}
	memcpy(comm, e->comm, AL_COMM_LEN);
	comm[AL_COMM_LEN] = '\0';
	row.at_us = al_now_us() - (al_mono_us() - (int64_t)(e->ktime_ns / 1000));
	row.reason = (enum al_reason)e->reason;
	row.cgroup_id = e->cgroup_id;
	if (e->cgroup_id && kern_cgroup_path(e->cgroup_id, path, sizeof(path)) == 0)
		row.cgroup_path = path;
	row.pid = e->tgid;
	row.tid = e->pid;
	row.uid = e->uid;
	row.comm = comm[0] ? comm : NULL;
	if (kern_exe(r->kern, e->tgid, exe, sizeof(exe)) == 0)
		row.exe = exe;
	row.family = e->family;
	row.type = e->type;
	row.protocol = e->protocol;
	if (e->dst_port || e->dst.w[0] || e->dst.w[1] || e->dst.w[2] || e->dst.w[3]) {
		al_addr_str(&e->dst, dst, sizeof(dst));
		row.dst_addr = dst;
		row.dst_port = e->dst_port;
	}
	row.count = 1;
	(void)!store_batch_begin(r->store);
	if (store_refusal_add(r->store, &row) == 0)
		r->recorded++;
	return 0;
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
	struct refusals *r = arg;

	if (kern_events_drain(r->kern) < 0)
		al_warn("reading kernel events failed");
	(void)fd;
	(void)what;
}

/* Once a second: one row per reason for what the rate limit held back. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct refusals *r = arg;
	char detail[128];

	for (unsigned int i = 0; i < AL_REASON_MAX; i++) {
		struct store_refusal row = { 0 };

		if (!r->pending[i])
			continue;
		snprintf(detail, sizeof(detail), "%llu more %s refusals (over the %d/s audit rate)",
			 (unsigned long long)r->pending[i], al_reason_name(i), RATE);
		row.at_us = al_now_us();
		row.reason = AL_REASON_EVENTS_SUPPRESSED;
		row.count = r->pending[i];
		row.detail = detail;
		(void)!store_batch_begin(r->store);
		if (store_refusal_add(r->store, &row) < 0)
			continue; /* try again next second */
		r->pending[i] = 0;
	}
	(void)fd;
	(void)what;
}

int refusals_start(struct event_base *base, struct kern *k, struct store *st,
		   struct refusals **out, char *err, size_t errlen)
{
	struct timeval sec = { 1, 0 };
	struct refusals *r = calloc(1, sizeof(*r));
	int fd;

	if (!r)
		return al_errf(err, errlen, "out of memory");
	r->kern = k;
	r->store = st;
	r->tokens = BURST;
	r->last_us = al_mono_us();
	fd = kern_events_open(k, on_sample, r, err, errlen);
	if (fd < 0)
		goto fail;
	r->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_ready, r);
	r->tick = event_new(base, -1, EV_PERSIST, on_tick, r);
	if (!r->ev || !r->tick || event_add(r->ev, NULL) < 0 || event_add(r->tick, &sec) < 0) {
		al_errf(err, errlen, "kernel events: out of memory");
		goto fail;
	}
	/* Events that arrived while no daemon ran. */
	(void)kern_events_drain(k);
	*out = r;
	return 0;
fail:
	refusals_free(r);
	return -1;
}

void refusals_stats(const struct refusals *r, uint64_t *recorded, uint64_t *suppressed)
{
	*recorded = r->recorded;
	*suppressed = r->suppressed;
}

void refusals_free(struct refusals *r)
{
	if (!r)
		return;
	if (r->tick) {
		on_tick(-1, 0, r);
		event_free(r->tick);
	}
	if (r->ev)
		event_free(r->ev);
	free(r);
}
