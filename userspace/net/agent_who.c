/* Who an agent session is, as rules and reviewers see it. */
#include "agent_who.h"
#include "sock_out.h"

#include <airlock/approval.h>
#include <airlock/config.h>
#include <airlock/store.h>

#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

/* Session counts by agent (agent_sessions); an entry goes when its count is back to 0. */
#define AGENT_BUCKETS 256

struct agent_count {
	LIST_ENTRY(agent_count) link;
	uint64_t cgroup_id;
	char iface[16];
	unsigned int n;
};

static LIST_HEAD(, agent_count) agent_counts[AGENT_BUCKETS];

static size_t agent_bucket(uint64_t cgroup_id, const char *iface)
{
	uint64_t h = cgroup_id * 0x9e3779b97f4a7c15ull;

	for (; iface && *iface; iface++)
		h = (h ^ (uint8_t)*iface) * 0x100000001b3ull;
	return (size_t)(h >> 32) % AGENT_BUCKETS;
}

static struct agent_count *agent_count_find(uint64_t cgroup_id, const char *iface)
{
	struct agent_count *e;

	iface = iface ? iface : "";
	LIST_FOREACH(e, &agent_counts[agent_bucket(cgroup_id, iface)], link)
		if (e->cgroup_id == cgroup_id && strcmp(e->iface, iface) == 0)
			return e;
	return NULL;
}

unsigned int agent_sessions(uint64_t cgroup_id, const char *iface)
{
	const struct agent_count *e = agent_count_find(cgroup_id, iface);

	return e ? e->n : 0;
}

int agent_sessions_add(uint64_t cgroup_id, const char *iface, int delta)
{
	struct agent_count *e = agent_count_find(cgroup_id, iface);

	if (!e && delta > 0) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return -1;
		e->cgroup_id = cgroup_id;
		snprintf(e->iface, sizeof(e->iface), "%s", iface ? iface : "");
		LIST_INSERT_HEAD(&agent_counts[agent_bucket(cgroup_id, e->iface)], e, link);
	}
	if (!e)
		return 0;
	if (delta < 0)
		e->n = e->n > (unsigned int)-delta ? e->n - (unsigned int)-delta : 0;
	else
		e->n += (unsigned int)delta;
	if (e->n == 0) {
		LIST_REMOVE(e, link);
		free(e);
	}
	return 0;
}

void agent_who_set(struct agent_who *w, const struct store_conn *c)
{
	w->cgroup_id = c->cgroup_id;
	w->cgroup_path = c->cgroup_path ? strdup(c->cgroup_path) : NULL;
	w->exe = c->exe ? strdup(c->exe) : NULL;
	w->comm = c->comm ? strdup(c->comm) : NULL;
	w->pid = c->pid;
	w->uid = c->uid;
	snprintf(w->iface, sizeof(w->iface), "%s", c->iface ? c->iface : "");
	w->ifindex = c->iface ? c->ifindex : 0;
	w->counted = agent_sessions_add(w->cgroup_id, w->iface, 1) == 0;
}

struct bufferevent *agent_accept(struct event_base *base, struct store *st, int fd, const struct store_conn *c,
				 int64_t *row, struct agent_who *w)
{
	int one = 1;

	if (store_batch_begin(st) < 0)
		al_warn("audit rows are committed one by one");
	if (store_conn_open(st, c, row) < 0)
		*row = 0;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	agent_who_set(w, c);
	return sock_out_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
}

void agent_who_free(struct agent_who *w)
{
	free(w->cgroup_path);
	free(w->exe);
	free(w->comm);
	w->cgroup_path = w->exe = w->comm = NULL;
	if (w->counted)
		(void)agent_sessions_add(w->cgroup_id, w->iface, -1);
	w->counted = 0;
}

void agent_who_subject(const struct agent_who *w, struct al_subject *subj)
{
	subj->cgroup_path = w->cgroup_path;
	subj->uid = w->cgroup_id ? (long)w->uid : -1;  /* an interface's agent: no uid known */
	subj->exe = w->exe;
}

void agent_who_request(const struct agent_who *w, struct approval_req *q)
{
	q->cgroup_id = w->cgroup_id;
	q->cgroup_path = w->cgroup_path;
	q->pid = w->pid;
	q->uid = w->uid;
	q->exe = w->exe;
	q->comm = w->comm;
	q->iface = w->iface[0] ? w->iface : NULL;
	q->ifindex = w->ifindex;
}
