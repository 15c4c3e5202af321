/* Who an agent session is, as rules and reviewers see it. */
#include "agent_who.h"

#include <airlock/approval.h>
#include <airlock/config.h>
#include <airlock/store.h>

#include <stdlib.h>
#include <string.h>

void agent_who_set(struct agent_who *w, const struct store_conn *c)
{
	w->cgroup_id = c->cgroup_id;
	w->cgroup_path = c->cgroup_path ? strdup(c->cgroup_path) : NULL;
	w->exe = c->exe ? strdup(c->exe) : NULL;
	w->comm = c->comm ? strdup(c->comm) : NULL;
	w->pid = c->pid;
	w->uid = c->uid;
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
