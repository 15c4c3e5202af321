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
#include <sys/socket.h>

void agent_who_set(struct agent_who *w, const struct store_conn *c)
{
	w->cgroup_id = c->cgroup_id;
	w->cgroup_path = c->cgroup_path ? strdup(c->cgroup_path) : NULL;
	w->exe = c->exe ? strdup(c->exe) : NULL;
	w->comm = c->comm ? strdup(c->comm) : NULL;
	w->pid = c->pid;
	w->uid = c->uid;
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
}

void agent_who_subject(const struct agent_who *w, struct al_subject *subj)
{
	subj->cgroup_path = w->cgroup_path;
	subj->uid = w->uid;
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
}
