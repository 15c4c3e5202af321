/* The review manager: parked requests with timeouts, reviewers' decisions, grants and their watchers. */
#include <airlock/approval.h>

#include "webhook.h"

#include <event2/event.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_REVIEWERS 16

struct req {
	LIST_ENTRY(req) link;
	struct approval *a;
	int64_t id;
	approval_cb cb;
	void *arg;
	struct event *timer;
	uint32_t agent_uid;     /* meaningless for an interface's agent (iface set) */
	uint64_t cgroup_id;
	char *cgroup_path;
	char *iface;            /* NULL: a cgroup's agent */
	uint32_t ifindex;
	char *fingerprint;
	char *resource;
	char **approvers;       /* groups */
	size_t n_approvers;
	char *approvers_json;   /* the same, as stored with the request (and a grant it makes) */
	unsigned int needed, max_grant_s;
	char *approved_by[MAX_REVIEWERS];
	size_t n_approved;
	unsigned int grant_s;   /* the shortest window the approvers chose */
};

/*
 * A grant's agent is a pinned cgroup's (cgroup_id and agent_uid, iface NULL) or the one behind
 * a pinned interface (iface and ifindex; it has no cgroup and no uid the host knows). The
 * interface is both its name and its index: the name is what the operator pinned and what
 * reviewers read, and the index tells this interface from a later one given the same name (a
 * container started again gets a new veth), so a grant does not pass to it, as a cgroup's does
 * not pass to the service's next cgroup (a new id). The index alone could name another
 * interface after a reboot, while grants live on in the store.
 */
struct grant {
	LIST_ENTRY(grant) link;
	int64_t id;
	char *fingerprint;
	uint64_t cgroup_id;
	int64_t agent_uid;      /* -1: none (a grant from before grants named it covers no one) */
	char *iface;
	uint32_t ifindex;
	char *resource;
	int64_t expires_us;
};

struct watcher {
	LIST_ENTRY(watcher) link;
	int64_t grant_id;
	approval_cb cb;
	void *arg;
};

struct approval {
	struct event_base *base;
	struct store *store;
	const struct al_config *cfg;
	LIST_HEAD(, req) reqs;
	LIST_HEAD(, grant) grants;
	LIST_HEAD(, watcher) watchers;
	struct webhook *webhook;
	approval_listener listener;
	void *listener_arg;
};

static void grant_free(struct grant *g)
{
	free(g->fingerprint);
	free(g->iface);
	free(g->resource);
	free(g);
}

static int has_iface(const char *iface)
{
	return iface && *iface;
}

/* Whether g covers q's agent. A grant without an interface and with cgroup 0 is one from before
 * grants named interfaces (schema 17), made for the agent behind some interface nobody recorded:
 * it covers no one, like one without a uid (schema 15). */
static int grant_covers_agent(const struct grant *g, const struct approval_req *q)
{
	if (g->iface)
		return has_iface(q->iface) && q->cgroup_id == 0 && g->ifindex == q->ifindex &&
		       strcmp(g->iface, q->iface) == 0;
	return !has_iface(q->iface) && g->cgroup_id != 0 && g->cgroup_id == q->cgroup_id &&
	       g->agent_uid >= 0 && g->agent_uid == (int64_t)q->uid;
}

static void tell(struct approval *a, int64_t id, const char *event)
{
	if (a->listener)
		a->listener(a->listener_arg, id, event);
}

const char *approval_outcome_name(enum approval_outcome o)
{
	switch (o) {
	case APPROVAL_APPROVED: return "approved";
	case APPROVAL_GRANTED: return "granted";
	case APPROVAL_DENIED: return "denied";
	case APPROVAL_TIMEOUT: return "timeout";
	case APPROVAL_ABORTED: return "aborted";
	case APPROVAL_REVOKED: return "revoked";
	}
	return "unknown";
}

static void req_free(struct req *r)
{
	LIST_REMOVE(r, link);
	if (r->timer)
		event_free(r->timer);
	free(r->cgroup_path);
	free(r->iface);
	free(r->fingerprint);
	free(r->resource);
	for (size_t i = 0; i < r->n_approvers; i++)
		free(r->approvers[i]);
	free(r->approvers);
	free(r->approvers_json);
	for (size_t i = 0; i < r->n_approved; i++)
		free(r->approved_by[i]);
	free(r);
}

static struct req *req_find(struct approval *a, int64_t id)
{
	struct req *r;

	LIST_FOREACH(r, &a->reqs, link)
		if (r->id == id)
			return r;
	return NULL;
}

/* Ends a request: durable first, then the session hears of it. */
static void req_finish(struct req *r, const char *state, enum approval_outcome o, const char *reason)
{
	approval_cb cb = r->cb;
	void *arg = r->arg;
	int64_t id = r->id;
	struct approval *a = r->a;

	if (store_request_end(r->a->store, id, state, reason) < 0)
		al_err("review request %lld: could not record '%s'", (long long)id, state);
	req_free(r);
	if (cb)
		cb(arg, id, o, reason);
	tell(a, id, state);
}

/* Like req_finish, when the store already recorded the end with the decision. */
static void req_finish_recorded(struct req *r, enum approval_outcome o, const char *reason)
{
	approval_cb cb = r->cb;
	void *arg = r->arg;
	int64_t id = r->id;
	struct approval *a = r->a;

	req_free(r);
	if (cb)
		cb(arg, id, o, reason);
	tell(a, id, approval_outcome_name(o));
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct req *r = arg;

	al_info("review request %lld timed out", (long long)r->id);
	req_finish(r, "timeout", APPROVAL_TIMEOUT, "no reviewer decided in time");
	(void)fd;
	(void)what;
}

/* Runs the configured exec hook with the request as JSON on stdin; never waits for it. */
/* Each notification sent is an audit record (that it was sent, not that it arrived). */
static void note_notification(struct approval *a, int64_t id, const char *via, const char *target)
{
	json_t *b = target ? json_pack("{s:s, s:s}", "via", via, "target", target) : json_pack("{s:s}", "via", via);

	if (store_audit_event(a->store, "notification", id, b) < 0)
		al_warn("review request %lld: could not record the %s notification", (long long)id, via);
}

/* The webhook gave up on request id: a record of the audit chain, next to its "notification". */
static void webhook_gave_up(void *arg, int64_t id, int tries, const char *why)
{
	struct approval *a = arg;

	if (store_audit_event(a->store, "notification_failed", id,
			      json_pack("{s:s, s:i, s:s}", "via", "webhook", "tries", tries, "error", why)) < 0)
		al_warn("review request %lld: could not record the failed webhook", (long long)id);
}

static void notify_exec(struct approval *a, int64_t id)
{
	json_t *j;
	char *text;
	int pfd[2];
	pid_t pid;

	if (!a->cfg->review_hook || !*a->cfg->review_hook)
		return;
	j = approval_request_json(a, id);
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text || pipe2(pfd, O_CLOEXEC) < 0) {
		free(text);
		return;
	}
	pid = fork();
	if (pid == 0) {
		/* Detach: the hook and a writer of its stdin are grandchildren, reaped by whoever
		 * adopts them, so airlockd waits for neither; a hook that does not read its stdin
		 * holds up only the writer, for at most a minute. (Only async-signal-safe calls
		 * here: airlockd has threads.) */
		if (fork() == 0) {
			dup2(pfd[0], 0);
			execl(a->cfg->review_hook, a->cfg->review_hook, (char *)NULL);
			_exit(127);
		}
		if (fork() == 0) {
			size_t n = strlen(text), off = 0;

			close(pfd[0]);
			alarm(60);
			while (off < n) {
				ssize_t w = write(pfd[1], text + off, n - off);

				if (w <= 0)
					_exit(1);
				off += (size_t)w;
			}
			_exit(0);
		}
		_exit(0);
	}
	close(pfd[0]);
	if (pid > 0) {
		waitpid(pid, NULL, 0);
		note_notification(a, id, "hook", a->cfg->review_hook);
	} else {
		al_warn("review hook: fork failed");
	}
	close(pfd[1]);
	free(text);
}

int64_t approval_submit(struct approval *a, const struct approval_req *q, approval_cb cb, void *arg)
{
	char sha[65];
	const struct al_rule *rule = q->rule;
	struct store_request sr = { 0 };
	json_t *groups = json_array();
	char *groups_text;
	struct timeval tv;
	struct req *r;
	int64_t id;

	if (al_sha256_hex(q->bytes, q->len, sha) < 0) {
		json_decref(groups);
		return -1;
	}
	for (size_t i = 0; i < rule->n_approvers; i++)
		json_array_append_new(groups, json_string(rule->approvers[i]));
	groups_text = json_dumps(groups, JSON_COMPACT);
	json_decref(groups);
	sr.created_us = al_now_us();
	sr.expires_us = sr.created_us + (int64_t)rule->review_timeout_ms * 1000;
	sr.conn_id = q->conn_id;
	sr.stmt_id = q->stmt_id;
	sr.cgroup_id = q->cgroup_id;
	sr.cgroup_path = q->cgroup_path;
	sr.pid = q->pid;
	sr.uid = q->uid;
	sr.exe = q->exe;
	sr.comm = q->comm;
	sr.iface = has_iface(q->iface) ? q->iface : NULL;
	sr.resource = q->resource;
	sr.protocol = q->protocol;
	sr.command = q->text;
	sr.kind = q->kind;
	sr.fingerprint = q->fingerprint;
	sr.sha256 = sha;
	sr.rule = rule->text;
	sr.approvers_json = groups_text;
	sr.approvals_needed = rule->approvals;
	sr.max_grant_s = rule->max_grant_s;
	if (store_request_add(a->store, &sr, &id) < 0) {
		free(groups_text);
		return -1;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		free(groups_text);
		goto fail;
	}
	LIST_INSERT_HEAD(&a->reqs, r, link);
	r->approvers_json = groups_text;
	r->a = a;
	r->id = id;
	r->cb = cb;
	r->arg = arg;
	r->agent_uid = q->uid;
	r->cgroup_id = q->cgroup_id;
	r->needed = rule->approvals ? rule->approvals : 1;
	r->max_grant_s = rule->max_grant_s;
	r->grant_s = rule->max_grant_s;
	r->cgroup_path = q->cgroup_path ? strdup(q->cgroup_path) : NULL;
	r->ifindex = q->ifindex;
	if (has_iface(q->iface) && !(r->iface = strdup(q->iface)))
		goto fail_r;
	r->fingerprint = strdup(q->fingerprint ? q->fingerprint : "");
	r->resource = strdup(q->resource);
	if (rule->n_approvers) {
		r->approvers = calloc(rule->n_approvers, sizeof(*r->approvers));
		if (!r->approvers)
			goto fail_r;
		for (size_t i = 0; i < rule->n_approvers; i++)
			if (!(r->approvers[r->n_approvers++] = strdup(rule->approvers[i])))
				goto fail_r;
	}
	r->timer = evtimer_new(a->base, on_timeout, r);
	tv.tv_sec = rule->review_timeout_ms / 1000;
	tv.tv_usec = (rule->review_timeout_ms % 1000) * 1000;
	if (!r->approvers_json || !r->fingerprint || !r->resource || !r->timer || evtimer_add(r->timer, &tv) < 0)
		goto fail_r;
	al_info("review request %lld: %s on %s waits for %u approval%s", (long long)id, q->kind,
		q->resource, r->needed, r->needed == 1 ? "" : "s");
	notify_exec(a, id);
	tell(a, id, "new");
	if (a->webhook) {
		json_t *j = approval_request_json(a, id);
		char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

		if (text) {
			webhook_send(a->webhook, id, text);
			note_notification(a, id, "webhook", NULL);
		}
		free(text);
		json_decref(j);
	}
	return id;
fail_r:
	r->cb = NULL;
	req_free(r);
fail:
	if (store_request_end(a->store, id, "aborted", "out of memory") < 0)
		al_err("review request %lld: could not record its abort", (long long)id);
	return -1;
}

void approval_cancel(struct approval *a, int64_t request_id)
{
	struct req *r = req_find(a, request_id);

	if (!r)
		return;
	r->cb = NULL;
	req_finish(r, "abandoned", APPROVAL_ABORTED, "the agent went away");
}

static int in_groups(const char *groups_csv, const char *group)
{
	size_t n = strlen(group);

	for (const char *p = groups_csv; p && *p;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len == n && strncmp(p, group, n) == 0)
			return 1;
		p = e ? e + 1 : NULL;
	}
	return 0;
}

int approval_decide(struct approval *a, int64_t request_id, const struct store_user *u,
		    long reviewer_uid, int approve, const char *reason, unsigned int grant_secs,
		    char *err, size_t errlen)
{
	struct req *r = req_find(a, request_id);
	const char *reviewer = u->name;

	if (!r)
		return al_errf(err, errlen, "request %lld is not pending", (long long)request_id);
	/* No one approves what they asked for, admins included; without a uid to hold against
	 * the agent's, no one decides at all (fail closed). */
	if (reviewer_uid < 0 && u->uid < 0)
		return al_errf(err, errlen, "%s has no uid, so whether request %lld is their own cannot be "
			       "told (root: airlockctl user set %s --uid N)", reviewer, (long long)request_id,
			       reviewer);
	/* An agent behind an interface runs in its own namespaces: the host does not know its uid
	 * (the 0 it has here means nothing), so there is nothing to compare the reviewer's with;
	 * approver groups and count are what keep its owner from approving it alone. */
	if (!r->iface && ((reviewer_uid >= 0 && (uint32_t)reviewer_uid == r->agent_uid) ||
			  (u->uid >= 0 && (uint32_t)u->uid == r->agent_uid)))
		return al_errf(err, errlen, "request %lld comes from uid %u: a reviewer cannot decide "
			       "their own request", (long long)request_id, r->agent_uid);
	if (r->n_approvers) {
		int ok = 0;

		for (size_t i = 0; i < r->n_approvers && !ok; i++)
			ok = in_groups(u->groups, r->approvers[i]);
		if (!ok)
			return al_errf(err, errlen, "%s is in none of the approver groups of request %lld",
				       reviewer, (long long)request_id);
	}
	for (size_t i = 0; i < r->n_approved; i++)
		if (strcmp(r->approved_by[i], reviewer) == 0)
			return al_errf(err, errlen, "%s already approved request %lld; it needs another "
				       "person", reviewer, (long long)request_id);
	if (!approve) {
		if (!reason || !*reason)
			return al_errf(err, errlen, "a denial needs a reason (the agent sees it)");
		if (store_approval_final(a->store, request_id, reviewer, "deny", reason, 0, "denied") < 0)
			return al_errf(err, errlen, "could not record the decision");
		/* The session hears first; the log line can wait. */
		req_finish_recorded(r, APPROVAL_DENIED, reason);
		al_info("review request %lld denied by %s: %s", (long long)request_id, reviewer, reason);
		return 0;
	}
	if (grant_secs > r->max_grant_s)
		return al_errf(err, errlen, "the rule allows grants of at most %us, not %us",
			       r->max_grant_s, grant_secs);
	if (grant_secs && !r->fingerprint[0])
		return al_errf(err, errlen, "request %lld has no statement shape to grant for a window: "
			       "approve it once", (long long)request_id);
	if (r->n_approved == MAX_REVIEWERS)
		return al_errf(err, errlen, "too many approvals");
	/* The approval that completes the count also ends the request, in one transaction. */
	if (r->n_approved + 1 >= r->needed && grant_secs == 0 && (r->n_approved == 0 || r->grant_s == 0)) {
		if (store_approval_final(a->store, request_id, reviewer, "approve", reason, 0, "approved") < 0)
			return al_errf(err, errlen, "could not record the decision");
		req_finish_recorded(r, APPROVAL_APPROVED, reason);
		al_info("review request %lld approved", (long long)request_id);
		return 0;
	}
	if (store_approval_add(a->store, request_id, reviewer, "approve", reason, grant_secs) < 0)
		return al_errf(err, errlen, "could not record the decision");
	r->approved_by[r->n_approved] = strdup(reviewer);
	if (!r->approved_by[r->n_approved])
		return al_errf(err, errlen, "out of memory");
	r->n_approved++;
	if (grant_secs < r->grant_s || r->n_approved == 1)
		r->grant_s = grant_secs;
	if (r->n_approved < r->needed) {
		al_info("review request %lld: %s approved (%zu of %u)", (long long)request_id, reviewer,
			r->n_approved, r->needed);
		tell(a, request_id, "approval");
		return 0;
	}
	if (r->grant_s > 0) {
		struct grant *g = calloc(1, sizeof(*g));
		struct store_grant sg = {
			.request_id = request_id,
			.fingerprint = r->fingerprint,
			.resource = r->resource,
			.cgroup_id = r->cgroup_id,
			.cgroup_path = r->cgroup_path,
			.agent_uid = r->iface ? -1 : (int64_t)r->agent_uid,
			.agent_iface = r->iface,
			.agent_ifindex = r->ifindex,
			.approvers_json = r->approvers_json,
			.expires_us = al_now_us() + (int64_t)r->grant_s * 1000000,
			.created_by = reviewer,
		};
		int64_t gid;

		if (!g || store_grant_add(a->store, &sg, &gid) < 0) {
			free(g);
			return al_errf(err, errlen, "could not record the grant");
		}
		/* Recorded: a copy that cannot be made only means the grant covers nothing here. */
		g->id = gid;
		g->fingerprint = strdup(r->fingerprint);
		g->resource = strdup(r->resource);
		g->cgroup_id = r->cgroup_id;
		g->agent_uid = sg.agent_uid;
		g->iface = r->iface ? strdup(r->iface) : NULL;
		g->ifindex = r->ifindex;
		g->expires_us = sg.expires_us;
		if (!g->fingerprint || !g->resource || (r->iface && !g->iface))
			grant_free(g);
		else
			LIST_INSERT_HEAD(&a->grants, g, link);
		if (r->iface)
			al_info("grant %lld: fingerprint %s on %s from interface %s (%u) for %us", (long long)gid,
				r->fingerprint, r->resource, r->iface, r->ifindex, r->grant_s);
		else
			al_info("grant %lld: fingerprint %s on %s from cgroup %llu uid %u for %us", (long long)gid,
				r->fingerprint, r->resource, (unsigned long long)r->cgroup_id, r->agent_uid,
				r->grant_s);
	}
	al_info("review request %lld approved", (long long)request_id);
	req_finish(r, "approved", APPROVAL_APPROVED, reason);
	return 0;
}

int64_t approval_grant_for(struct approval *a, const struct approval_req *q)
{
	int64_t now = al_now_us();
	struct grant *g, *next;

	for (g = LIST_FIRST(&a->grants); g; g = next) {
		next = LIST_NEXT(g, link);
		if (g->expires_us <= now) {
			LIST_REMOVE(g, link);
			grant_free(g);
			continue;
		}
		if (q->fingerprint && *q->fingerprint && strcmp(g->fingerprint, q->fingerprint) == 0 &&
		    strcmp(g->resource, q->resource) == 0 && grant_covers_agent(g, q))
			return g->id;
	}
	return 0;
}

int approval_watch_grant(struct approval *a, int64_t grant_id, approval_cb cb, void *arg)
{
	struct watcher *w;

	LIST_FOREACH(w, &a->watchers, link)
		if (w->grant_id == grant_id && w->arg == arg)
			return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	w->grant_id = grant_id;
	w->cb = cb;
	w->arg = arg;
	LIST_INSERT_HEAD(&a->watchers, w, link);
	return 0;
}

void approval_unwatch(struct approval *a, void *arg)
{
	struct watcher *w, *next;

	for (w = LIST_FIRST(&a->watchers); w; w = next) {
		next = LIST_NEXT(w, link);
		if (w->arg == arg) {
			LIST_REMOVE(w, link);
			free(w);
		}
	}
}

/* A grant revoked in the store leaves memory; sessions that ran something under it end now. */
static void grant_ended(struct approval *a, int64_t grant_id)
{
	struct watcher *w, *next;
	struct grant *g;

	LIST_FOREACH(g, &a->grants, link) {
		if (g->id == grant_id) {
			LIST_REMOVE(g, link);
			grant_free(g);
			break;
		}
	}
	for (w = LIST_FIRST(&a->watchers); w; w = next) {
		next = LIST_NEXT(w, link);
		if (w->grant_id != grant_id)
			continue;
		LIST_REMOVE(w, link);
		w->cb(w->arg, grant_id, APPROVAL_REVOKED, "the grant was revoked");
		free(w);
		next = LIST_FIRST(&a->watchers); /* the callback may have changed the list */
	}
}

/* Whether reviewer u is in one of the groups of groups_json (a JSON array of names); an empty
 * array names none, and any reviewer is. -1: not such an array. */
static int in_any_group(const struct store_user *u, const char *groups_json, char *list, size_t len)
{
	json_t *g = json_loads(groups_json, 0, NULL), *v;
	size_t i;
	int in = 0;

	if (!json_is_array(g)) {
		json_decref(g);
		return -1;
	}
	list[0] = '\0';
	json_array_foreach(g, i, v) {
		size_t n = strlen(list);

		if (!json_is_string(v))
			continue;
		in |= in_groups(u->groups, json_string_value(v));
		snprintf(list + n, len - n, "%s%s", n ? "," : "", json_string_value(v));
	}
	in |= json_array_size(g) == 0;
	json_decref(g);
	return in;
}

/* Who may revoke is who may decide: a reviewer with a uid (one without only reads), in an
 * approver group of the rule that held the grant's request, or an admin. Unlike a decision, a
 * revoke of one's own agent's grant is fine: it only takes a permission away. */
int approval_revoke(struct approval *a, int64_t grant_id, const struct store_user *u, long reviewer_uid,
		    char *err, size_t errlen)
{
	char *groups = NULL, list[512];
	int rc, in = 0;

	if (reviewer_uid < 0 && u->uid < 0)
		return al_errf(err, errlen, "%s has no uid, so they only read: revoking grant %lld needs a "
			       "reviewer with one (root: airlockctl user set %s --uid N)", u->name,
			       (long long)grant_id, u->name);
	rc = store_grant_approvers(a->store, grant_id, &groups);
	if (rc == 1)
		return al_errf(err, errlen, "grant %lld is not live", (long long)grant_id);
	if (rc < 0)
		return al_errf(err, errlen, "could not read grant %lld", (long long)grant_id);
	if (!u->admin && !groups) {
		rc = al_errf(err, errlen, "grant %lld does not record its approver groups (it is older than "
			     "this airlockd and its request is gone): only an admin may revoke it",
			     (long long)grant_id);
		goto out;
	}
	if (!u->admin && (in = in_any_group(u, groups, list, sizeof(list))) <= 0) {
		rc = in < 0 ? al_errf(err, errlen, "grant %lld: its approver groups are unreadable: only an "
				      "admin may revoke it", (long long)grant_id)
			    : al_errf(err, errlen, "%s is in none of the approver groups of grant %lld (%s): only "
				      "they or an admin may revoke it", u->name, (long long)grant_id, list);
		goto out;
	}
	if (store_grant_revoke(a->store, grant_id, u->name) < 0) {
		rc = al_errf(err, errlen, "grant %lld is not live", (long long)grant_id);
		goto out;
	}
	grant_ended(a, grant_id);
	al_info("grant %lld revoked by %s", (long long)grant_id, u->name);
	rc = 0;
out:
	free(groups);
	return rc;
}

void approval_reviewer_removed(struct approval *a, const char *name, const struct store_user_gone *gone)
{
	for (size_t i = 0; i < gone->n_requests; i++) {
		struct req *r = req_find(a, gone->requests[i]);
		size_t j = 0;

		if (!r)
			continue;
		while (j < r->n_approved && strcmp(r->approved_by[j], name) != 0)
			j++;
		if (j == r->n_approved)
			continue;
		free(r->approved_by[j]);
		memmove(&r->approved_by[j], &r->approved_by[j + 1], (r->n_approved - j - 1) * sizeof(char *));
		r->n_approved--;
		al_info("review request %lld: the approval of %s no longer counts (%zu of %u)",
			(long long)r->id, name, r->n_approved, r->needed);
		tell(a, r->id, "approval");
	}
	for (size_t i = 0; i < gone->n_grants; i++) {
		grant_ended(a, gone->grants[i]);
		al_info("grant %lld revoked: %s, who approved it, was removed", (long long)gone->grants[i], name);
	}
}

static int load_grant(void *arg, const struct store_grant *sg)
{
	struct approval *a = arg;
	struct grant *g = calloc(1, sizeof(*g));

	if (!g)
		return -1;
	g->id = sg->id;
	g->fingerprint = strdup(sg->fingerprint ? sg->fingerprint : "");
	g->resource = strdup(sg->resource ? sg->resource : "");
	g->cgroup_id = sg->cgroup_id;
	g->agent_uid = sg->agent_uid;
	g->iface = has_iface(sg->agent_iface) ? strdup(sg->agent_iface) : NULL;
	g->ifindex = sg->agent_ifindex;
	g->expires_us = sg->expires_us;
	LIST_INSERT_HEAD(&a->grants, g, link);
	return g->fingerprint && g->resource && (g->iface || !has_iface(sg->agent_iface)) ? 0 : -1;
}

int approval_new(struct event_base *base, struct store *st, const struct al_config *cfg,
		 struct approval **out, char *err, size_t errlen)
{
	struct approval *a = calloc(1, sizeof(*a));

	if (!a)
		return al_errf(err, errlen, "out of memory");
	a->base = base;
	a->store = st;
	a->cfg = cfg;
	LIST_INIT(&a->reqs);
	LIST_INIT(&a->grants);
	LIST_INIT(&a->watchers);
	if (store_grants_live(st, load_grant, a) < 0) {
		approval_free(a);
		return al_errf(err, errlen, "cannot load the live grants from the store");
	}
	if (cfg->review_webhook &&
	    webhook_new(base, cfg->review_webhook, cfg->review_webhook_secret, webhook_gave_up, a, &a->webhook,
			err, errlen) < 0) {
		approval_free(a);
		return -1;
	}
	*out = a;
	return 0;
}

void approval_set_listener(struct approval *a, approval_listener cb, void *arg)
{
	a->listener = cb;
	a->listener_arg = arg;
}

size_t approval_pending_count(struct approval *a)
{
	struct req *r;
	size_t n = 0;

	LIST_FOREACH(r, &a->reqs, link)
		n++;
	return n;
}

json_t *approval_webhook_json(struct approval *a)
{
	struct webhook_stats st;

	if (!a->webhook)
		return NULL;
	webhook_stats(a->webhook, &st);
	return json_pack("{s:I, s:I, s:I}", "delivered", (json_int_t)st.delivered,
			 "undelivered", (json_int_t)st.undelivered, "in_flight", (json_int_t)st.in_flight);
}

void approval_set_config(struct approval *a, const struct al_config *cfg)
{
	a->cfg = cfg;
}

void approval_abort_all(struct approval *a)
{
	if (!a)
		return;
	while (!LIST_EMPTY(&a->reqs))
		req_finish(LIST_FIRST(&a->reqs), "aborted", APPROVAL_ABORTED, "airlockd stopped");
}

void approval_free(struct approval *a)
{
	struct grant *g;
	struct watcher *w;

	if (!a)
		return;
	approval_abort_all(a);
	while ((g = LIST_FIRST(&a->grants)) != NULL) {
		LIST_REMOVE(g, link);
		grant_free(g);
	}
	while ((w = LIST_FIRST(&a->watchers)) != NULL) {
		LIST_REMOVE(w, link);
		free(w);
	}
	webhook_free(a->webhook);
	free(a);
}

/* ---- JSON views ---------------------------------------------------------------------------- */

static int append_row(void *arg, const char *json)
{
	json_t *row = json_loads(json, 0, NULL);

	return row ? json_array_append_new(arg, row) : -1;
}

json_t *approval_pending_json(struct approval *a)
{
	json_t *rows = json_array(), *row;
	size_t i;

	if (store_requests_list(a->store, "pending", 1000, append_row, rows) < 0) {
		json_decref(rows);
		return NULL;
	}
	json_array_foreach(rows, i, row) {
		json_t *appr = json_array();
		int64_t id = json_integer_value(json_object_get(row, "id"));

		if (store_approvals_list(a->store, id, append_row, appr) == 0)
			json_object_set_new(row, "approvals", appr);
		else
			json_decref(appr);
	}
	return rows;
}

json_t *approval_request_json(struct approval *a, int64_t request_id)
{
	json_t *rows = json_array(), *row = NULL, *appr;
	size_t i;

	/* Small tables: the newest 10000 requests hold any that matter. */
	if (store_requests_list(a->store, NULL, 10000, append_row, rows) < 0)
		goto out;
	json_array_foreach(rows, i, row) {
		if (json_integer_value(json_object_get(row, "id")) == request_id)
			break;
		row = NULL;
	}
	if (!row)
		goto out;
	json_incref(row);
	appr = json_array();
	if (store_approvals_list(a->store, request_id, append_row, appr) == 0)
		json_object_set_new(row, "approvals", appr);
	else
		json_decref(appr);
out:
	json_decref(rows);
	return row;
}

json_t *approval_grants_json(struct approval *a)
{
	json_t *rows = json_array();

	if (store_grants_list(a->store, append_row, rows) < 0) {
		json_decref(rows);
		return NULL;
	}
	return rows;
}
