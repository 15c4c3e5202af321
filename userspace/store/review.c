/* The review tables: requests, each reviewer's decision, grants and reviewer users; every write durable. */
#include "store_int.h"

#include <stdlib.h>

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
	return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* Binds a statement prepared once (store_cached) with the caller's function, steps it once
 * to DONE and leaves it ready for the next use. */
static int step1(sqlite3_stmt *st, int (*bind)(sqlite3_stmt *st, void *arg), void *arg)
{
	int rc = -1;

	if (!st)
		return -1;
	if (bind && bind(st, arg) != 0)
		goto out;
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	rc = 0;
out:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* Prepares sql, binds with the caller's function, steps once to DONE (for rare writes). */
static int exec1(sqlite3 *db, const char *sql, int (*bind)(sqlite3_stmt *st, void *arg), void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK ? step1(st, bind, arg) : -1;

	sqlite3_finalize(st);
	return rc;
}

/* ---- requests ----------------------------------------------------------------------------- */

struct req_add {
	struct store *s;
	const struct store_request *r;
	int64_t id;
};

static int bind_request(sqlite3_stmt *st, void *arg)
{
	const struct store_request *r = ((struct req_add *)arg)->r;
	int rc = 0;

	rc |= sqlite3_bind_int64(st, 1, r->created_us);
	rc |= sqlite3_bind_int64(st, 2, r->expires_us);
	rc |= sqlite3_bind_int64(st, 3, r->conn_id);
	rc |= sqlite3_bind_int64(st, 4, r->stmt_id);
	/* No cgroup, no kernel identity: an interface's agent has no pid or uid we know, not 0. */
	if (r->cgroup_id) {
		rc |= sqlite3_bind_int64(st, 5, (int64_t)r->cgroup_id);
		rc |= sqlite3_bind_int64(st, 7, r->pid);
		rc |= sqlite3_bind_int64(st, 8, r->uid);
	} else {
		rc |= sqlite3_bind_null(st, 5) | sqlite3_bind_null(st, 7) | sqlite3_bind_null(st, 8);
	}
	rc |= bind_text(st, 6, r->cgroup_path);
	rc |= bind_text(st, 9, r->exe);
	rc |= bind_text(st, 10, r->comm);
	rc |= bind_text(st, 11, r->resource);
	rc |= bind_text(st, 12, r->protocol);
	rc |= bind_text(st, 13, r->command);
	rc |= bind_text(st, 14, r->kind);
	rc |= bind_text(st, 15, r->fingerprint);
	rc |= bind_text(st, 16, r->sha256);
	rc |= bind_text(st, 17, r->rule);
	rc |= bind_text(st, 18, r->approvers_json);
	rc |= sqlite3_bind_int(st, 19, (int)r->approvals_needed);
	rc |= sqlite3_bind_int(st, 20, (int)r->max_grant_s);
	rc |= bind_text(st, 21, r->iface && *r->iface ? r->iface : NULL);
	return rc;
}

static int do_request_add(sqlite3 *db, void *arg)
{
	struct req_add *ra = arg;

	if (step1(store_cached(ra->s, STORE_C_REQ_ADD,
			       "INSERT INTO requests (created_us, expires_us, state, conn_id, stmt_id,"
			       " cgroup_id, cgroup_path, pid, uid, exe, comm, resource, protocol, command,"
			       " kind, fingerprint, sha256, rule, approvers, approvals_needed, max_grant_s, iface)"
			       " VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
			       " ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"),
		  bind_request, ra) < 0)
		return -1;
	ra->id = sqlite3_last_insert_rowid(db);
	return 0;
}

int store_request_add(struct store *s, const struct store_request *r, int64_t *id)
{
	struct req_add ra = { .s = s, .r = r };

	if (store_durable(s, do_request_add, &ra, "recording a review request") < 0)
		return -1;
	store_review_added(s);
	*id = ra.id;
	return 0;
}

struct req_end {
	struct store *s;
	int64_t id;
	const char *state, *reason;
};

static int bind_end(sqlite3_stmt *st, void *arg)
{
	struct req_end *e = arg;

	return sqlite3_bind_int64(st, 1, e->id) | bind_text(st, 2, e->state) |
	       sqlite3_bind_int64(st, 3, al_now_us()) | bind_text(st, 4, e->reason);
}

static int do_request_end(sqlite3 *db, void *arg)
{
	struct req_end *e = arg;

	if (step1(store_cached(e->s, STORE_C_REQ_END, "UPDATE requests SET state = ?2, decided_us = ?3,"
			       " reason = ?4 WHERE id = ?1 AND state = 'pending'"), bind_end, e) < 0)
		return -1;
	/* Not pending any more: nothing to end twice. */
	return sqlite3_changes(db) == 1 ? 0 : -1;
}

int store_request_end(struct store *s, int64_t id, const char *state, const char *reason)
{
	struct req_end e = { s, id, state, reason };

	if (store_durable(s, do_request_end, &e, "ending a review request") < 0)
		return -1;
	store_review_ended(s, id, state);
	return 0;
}

struct appr {
	struct store *s;
	int64_t request_id;
	const char *reviewer, *decision, *reason;
	unsigned int grant_s;
};

static int bind_appr(sqlite3_stmt *st, void *arg)
{
	struct appr *a = arg;

	return sqlite3_bind_int64(st, 1, a->request_id) | bind_text(st, 2, a->reviewer) |
	       bind_text(st, 3, a->decision) | bind_text(st, 4, a->reason) |
	       sqlite3_bind_int(st, 5, (int)a->grant_s) | sqlite3_bind_int64(st, 6, al_now_us());
}

static int do_approval_add(sqlite3 *db, void *arg)
{
	struct appr *a = arg;

	return step1(store_cached(a->s, STORE_C_APPR_ADD, "INSERT INTO approvals (request_id, reviewer,"
				  " decision, reason, grant_s, at_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
		     bind_appr, a);
}

int store_approval_add(struct store *s, int64_t request_id, const char *reviewer, const char *decision,
		       const char *reason, unsigned int grant_s)
{
	struct appr a = { s, request_id, reviewer, decision, reason, grant_s };

	return store_durable(s, do_approval_add, &a, "recording a review decision");
}

struct appr_end {
	struct appr a;
	struct req_end e;
};

static int do_approval_end(sqlite3 *db, void *arg)
{
	struct appr_end *x = arg;

	return do_approval_add(db, &x->a) < 0 || do_request_end(db, &x->e) < 0 ? -1 : 0;
}

int store_approval_final(struct store *s, int64_t request_id, const char *reviewer, const char *decision,
			 const char *reason, unsigned int grant_s, const char *state)
{
	struct appr_end x = { { s, request_id, reviewer, decision, reason, grant_s },
			      { s, request_id, state, reason } };

	if (store_durable(s, do_approval_end, &x, "recording the deciding review") < 0)
		return -1;
	store_review_ended(s, request_id, state);
	return 0;
}

static int do_recover(sqlite3 *db, void *arg)
{
	int n;

	if (exec1(db, "UPDATE requests SET state = 'aborted', decided_us = strftime('%s','now') * 1000000,"
		  " reason = 'airlockd restarted' WHERE state = 'pending'", NULL, NULL) < 0)
		return -1;
	n = sqlite3_changes(db);
	if (n > 0)
		al_info("store: %d review requests were pending when airlockd stopped: aborted", n);
	(void)arg;
	return 0;
}

int store_review_recover(struct store *s)
{
	return store_durable(s, do_recover, NULL, "aborting pending review requests");
}

/* ---- grants ------------------------------------------------------------------------------- */

struct grant_add {
	struct store *s;
	const struct store_grant *g;
	int64_t id;
};

static int bind_grant(sqlite3_stmt *st, void *arg)
{
	const struct store_grant *g = ((struct grant_add *)arg)->g;
	int iface = g->agent_iface && *g->agent_iface;
	int rc = 0;

	rc |= sqlite3_bind_int64(st, 1, g->request_id);
	rc |= bind_text(st, 2, g->fingerprint);
	rc |= sqlite3_bind_int64(st, 3, (int64_t)g->cgroup_id);
	rc |= bind_text(st, 4, g->cgroup_path);
	rc |= bind_text(st, 5, g->resource);
	rc |= sqlite3_bind_int64(st, 6, al_now_us());
	rc |= sqlite3_bind_int64(st, 7, g->expires_us);
	rc |= bind_text(st, 8, g->created_by);
	/* An interface's agent: its uid is not known (NULL), its interface is. */
	rc |= g->agent_uid >= 0 && !iface ? sqlite3_bind_int64(st, 9, g->agent_uid) : sqlite3_bind_null(st, 9);
	rc |= bind_text(st, 10, iface ? g->agent_iface : NULL);
	rc |= iface ? sqlite3_bind_int64(st, 11, g->agent_ifindex) : sqlite3_bind_null(st, 11);
	rc |= bind_text(st, 12, g->approvers_json);
	return rc;
}

static int do_grant_add(sqlite3 *db, void *arg)
{
	struct grant_add *ga = arg;

	if (step1(store_cached(ga->s, STORE_C_GRANT_ADD, "INSERT INTO grants (request_id, fingerprint,"
			       " cgroup_id, cgroup_path, resource, created_us, expires_us, created_by, agent_uid,"
			       " agent_iface, agent_ifindex, approvers)"
			       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"), bind_grant, ga) < 0)
		return -1;
	ga->id = sqlite3_last_insert_rowid(db);
	return 0;
}

int store_grant_add(struct store *s, const struct store_grant *g, int64_t *id)
{
	struct grant_add ga = { s, g, 0 };

	if (store_durable(s, do_grant_add, &ga, "recording a grant") < 0)
		return -1;
	*id = ga.id;
	return 0;
}

struct grant_rev {
	int64_t id;
	const char *by;
};

static int bind_rev(sqlite3_stmt *st, void *arg)
{
	struct grant_rev *r = arg;

	return sqlite3_bind_int64(st, 1, r->id) | sqlite3_bind_int64(st, 2, al_now_us()) |
	       bind_text(st, 3, r->by);
}

static int do_grant_revoke(sqlite3 *db, void *arg)
{
	if (exec1(db, "UPDATE grants SET revoked_us = ?2, revoked_by = ?3"
		  " WHERE id = ?1 AND revoked_us IS NULL", bind_rev, arg) < 0)
		return -1;
	return sqlite3_changes(db) == 1 ? 0 : -1;
}

int store_grant_revoke(struct store *s, int64_t id, const char *by)
{
	struct grant_rev r = { id, by };

	return store_durable(s, do_grant_revoke, &r, "revoking a grant");
}

int store_grant_approvers(struct store *s, int64_t id, char **out)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, r;

	*out = NULL;
	if (sqlite3_prepare_v2(store_db(s), "SELECT approvers FROM grants WHERE id = ?1 AND revoked_us IS NULL",
			       -1, &st, NULL) != SQLITE_OK || sqlite3_bind_int64(st, 1, id) != SQLITE_OK)
		goto out;
	r = sqlite3_step(st);
	if (r == SQLITE_DONE) {
		rc = 1;
		goto out;
	}
	if (r != SQLITE_ROW)
		goto out;
	if (sqlite3_column_type(st, 0) != SQLITE_NULL &&
	    !(*out = strdup((const char *)sqlite3_column_text(st, 0))))
		goto out;
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

int store_grants_live(struct store *s, int (*cb)(void *arg, const struct store_grant *g), void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, r;

	if (sqlite3_prepare_v2(store_db(s), "SELECT id, request_id, fingerprint, resource, cgroup_id, cgroup_path,"
			       " ifnull(agent_uid, -1), agent_iface, ifnull(agent_ifindex, 0), expires_us, created_by"
			       " FROM grants WHERE revoked_us IS NULL AND expires_us > ?1",
			       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, al_now_us()) != SQLITE_OK)
		goto out;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_grant g = {
			.id = sqlite3_column_int64(st, 0),
			.request_id = sqlite3_column_int64(st, 1),
			.fingerprint = (const char *)sqlite3_column_text(st, 2),
			.resource = (const char *)sqlite3_column_text(st, 3),
			.cgroup_id = (uint64_t)sqlite3_column_int64(st, 4),
			.cgroup_path = (const char *)sqlite3_column_text(st, 5),
			.agent_uid = sqlite3_column_int64(st, 6),
			.agent_iface = (const char *)sqlite3_column_text(st, 7),
			.agent_ifindex = (uint32_t)sqlite3_column_int64(st, 8),
			.expires_us = sqlite3_column_int64(st, 9),
			.created_by = (const char *)sqlite3_column_text(st, 10),
		};

		if (cb(arg, &g) < 0)
			goto out;
	}
	rc = r == SQLITE_DONE ? 0 : -1;
out:
	sqlite3_finalize(st);
	return rc;
}

/* ---- listings ----------------------------------------------------------------------------- */

static int list(struct store *s, const char *sql, int (*bind)(sqlite3_stmt *st, void *arg), void *barg,
		int (*cb)(void *arg, const char *json), void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	if (bind && bind(st, barg) != 0)
		goto out;
	rc = store_each_row(st, cb, arg, NULL) < 0 ? -1 : 0;
out:
	sqlite3_finalize(st);
	return rc;
}

struct lim_state {
	const char *state;
	unsigned int limit;
};

static int bind_lim_state(sqlite3_stmt *st, void *arg)
{
	struct lim_state *l = arg;

	return bind_text(st, 1, l->state) | sqlite3_bind_int64(st, 2, l->limit);
}

int store_requests_list(struct store *s, const char *state, unsigned int limit,
			int (*cb)(void *arg, const char *json), void *arg)
{
	struct lim_state l = { state, limit };

	return list(s, "SELECT * FROM requests WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC LIMIT ?2",
		    bind_lim_state, &l, cb, arg);
}

static int bind_id(sqlite3_stmt *st, void *arg)
{
	return sqlite3_bind_int64(st, 1, *(int64_t *)arg);
}

int store_approvals_list(struct store *s, int64_t request_id,
			 int (*cb)(void *arg, const char *json), void *arg)
{
	return list(s, "SELECT * FROM approvals WHERE request_id = ?1 ORDER BY at_us", bind_id,
		    &request_id, cb, arg);
}

int store_grants_list(struct store *s, int (*cb)(void *arg, const char *json), void *arg)
{
	return list(s, "SELECT * FROM grants ORDER BY id DESC LIMIT 1000", NULL, NULL, cb, arg);
}

/* ---- users -------------------------------------------------------------------------------- */

static int bind_user(sqlite3_stmt *st, void *arg)
{
	const struct store_user *u = arg;

	return bind_text(st, 1, u->name) |
	       (u->uid >= 0 ? sqlite3_bind_int64(st, 2, u->uid) : sqlite3_bind_null(st, 2)) |
	       bind_text(st, 3, u->groups) | bind_text(st, 4, u->pwhash[0] ? u->pwhash : NULL) |
	       sqlite3_bind_int(st, 5, u->admin) | sqlite3_bind_int64(st, 6, u->created_us);
}

struct user_w {
	struct store_user *u;
	unsigned int fields;
	int missed;             /* add: the name exists; set: no such reviewer */
};

static int do_user_add(sqlite3 *db, void *arg)
{
	struct user_w *w = arg;

	if (exec1(db, "INSERT INTO users (name, uid, groups, pwhash, admin, created_us)"
		  " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING", bind_user, w->u) < 0)
		return -1;
	if (sqlite3_changes(db) == 0) {
		w->missed = 1;  /* nothing written: the transaction commits nothing */
		return 0;
	}
	/* Tokens a store from before they went with their user kept under this name. */
	return store_user_tokens_del(db, w->u->name, NULL);
}

int store_user_add(struct store *s, struct store_user *u)
{
	struct user_w w = { u, 0, 0 };

	u->created_us = al_now_us();
	if (store_durable(s, do_user_add, &w, "recording a reviewer") < 0)
		return -1;
	return w.missed;
}

static int bind_user_set(sqlite3_stmt *st, void *arg)
{
	const struct user_w *w = arg;

	return bind_user(st, w->u) | sqlite3_bind_int(st, 7, (int)w->fields);
}

static int do_user_set(sqlite3 *db, void *arg)
{
	struct user_w *w = arg;

	if (exec1(db, "UPDATE users SET uid = CASE WHEN ?7 & 1 THEN ?2 ELSE uid END,"
		  " groups = CASE WHEN ?7 & 2 THEN ?3 ELSE groups END,"
		  " pwhash = CASE WHEN ?7 & 4 THEN ?4 ELSE pwhash END,"
		  " admin = CASE WHEN ?7 & 8 THEN ?5 ELSE admin END WHERE name = ?1", bind_user_set, w) < 0)
		return -1;
	w->missed = sqlite3_changes(db) == 0;
	return 0;
}

_Static_assert(STORE_USER_UID == 1 && STORE_USER_GROUPS == 2 && STORE_USER_PASSWORD == 4 &&
	       STORE_USER_ADMIN == 8, "do_user_set's SQL tests these bits");

int store_user_set(struct store *s, const struct store_user *u, unsigned int fields)
{
	struct user_w w = { (struct store_user *)u, fields, 0 };

	if (store_durable(s, do_user_set, &w, "changing a reviewer") < 0)
		return -1;
	return w.missed;
}

static int bind_name(sqlite3_stmt *st, void *arg)
{
	return bind_text(st, 1, arg);
}

static int i64_push(int64_t **v, size_t *n, int64_t x)
{
	int64_t *p = realloc(*v, (*n + 1) * sizeof(**v));

	if (!p)
		return -1;
	p[(*n)++] = x;
	*v = p;
	return 0;
}

struct user_del {
	const char *name;
	char by[sizeof(((struct store_user *)0)->name) + 16];
	int64_t now_us;
	struct store_user_gone *gone;
};

static int bind_user_del(sqlite3_stmt *st, void *arg)
{
	const struct user_del *d = arg;

	return bind_text(st, 1, d->name) | sqlite3_bind_int64(st, 2, d->now_us) | bind_text(st, 3, d->by);
}

/* The live grants an approval of ?1 helped make: whoever completed them, every approver was needed. */
#define GRANTS_OF_APPROVER " FROM grants WHERE revoked_us IS NULL AND expires_us > ?2 AND (created_by = ?1" \
	" OR request_id IN (SELECT request_id FROM approvals WHERE reviewer = ?1 AND decision = 'approve'))"

/* Runs sql (its ids RETURNING), bound by bind, and appends every id it returns to *v: 0 or -1. */
static int collect_ids(sqlite3 *db, const char *sql, int (*bind)(sqlite3_stmt *st, void *arg), void *arg,
		       int64_t **v, size_t *n)
{
	sqlite3_stmt *st = NULL;
	int r = SQLITE_ERROR;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && bind(st, arg) == 0)
		while ((r = sqlite3_step(st)) == SQLITE_ROW)
			if (i64_push(v, n, sqlite3_column_int64(st, 0)) < 0) {
				r = SQLITE_NOMEM;
				break;
			}
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? 0 : -1;
}

static int do_user_del(sqlite3 *db, void *arg)
{
	struct user_del *d = arg;
	struct store_user_gone *g = d->gone;

	if (exec1(db, "DELETE FROM users WHERE name = ?1", bind_name, (void *)d->name) < 0)
		return -1;
	if (sqlite3_changes(db) != 1)
		return -1;
	/* Their approvals still waiting for others no longer count, and the grants they helped make
	 * end, as a revoke would end them. */
	if (collect_ids(db, "DELETE FROM approvals WHERE reviewer = ?1 AND decision = 'approve'"
			" AND request_id IN (SELECT id FROM requests WHERE state = 'pending') RETURNING request_id",
			bind_name, (void *)d->name, &g->requests, &g->n_requests) < 0 ||
	    collect_ids(db, "UPDATE grants SET revoked_us = ?2, revoked_by = ?3 WHERE id IN"
			" (SELECT id" GRANTS_OF_APPROVER ") RETURNING id", bind_user_del, d, &g->grants,
			&g->n_grants) < 0)
		return -1;
	return store_user_tokens_del(db, d->name, NULL);
}

int store_user_del(struct store *s, const char *name, struct store_user_gone *gone)
{
	struct user_del d = { .name = name, .now_us = al_now_us(), .gone = gone };

	memset(gone, 0, sizeof(*gone));
	snprintf(d.by, sizeof(d.by), "user del %s", name);
	if (store_durable(s, do_user_del, &d, "removing a reviewer") < 0) {
		store_user_gone_free(gone);
		return -1;
	}
	return 0;
}

void store_user_gone_free(struct store_user_gone *g)
{
	free(g->requests);
	free(g->grants);
	memset(g, 0, sizeof(*g));
}

#define USER_SELECT "SELECT name, uid, groups, pwhash, admin, created_us FROM users WHERE "

/* st: a cached lookup of one user (USER_SELECT "..."), reset before returning. */
static int user_get(sqlite3_stmt *st, int (*bind)(sqlite3_stmt *, void *), void *barg,
		    struct store_user *out)
{
	int rc = -1, r;

	if (!st)
		return -1;
	if (bind(st, barg) != 0)
		goto out;
	r = sqlite3_step(st);
	if (r == SQLITE_DONE) {
		rc = 1;
		goto out;
	}
	if (r != SQLITE_ROW)
		goto out;
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", (const char *)sqlite3_column_text(st, 0));
	out->uid = sqlite3_column_type(st, 1) == SQLITE_NULL ? -1 : (long)sqlite3_column_int64(st, 1);
	snprintf(out->groups, sizeof(out->groups), "%s",
		 sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2) : "");
	snprintf(out->pwhash, sizeof(out->pwhash), "%s",
		 sqlite3_column_text(st, 3) ? (const char *)sqlite3_column_text(st, 3) : "");
	out->admin = sqlite3_column_int(st, 4);
	out->created_us = sqlite3_column_int64(st, 5);
	rc = 0;
out:
	/* Also ends the read transaction, which would otherwise hold back checkpoints. */
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static int bind_uid(sqlite3_stmt *st, void *arg)
{
	return sqlite3_bind_int64(st, 1, *(long *)arg);
}

int store_user_by_uid(struct store *s, long uid, struct store_user *out)
{
	return user_get(store_cached(s, STORE_C_USER_BY_UID, USER_SELECT "uid = ?1"), bind_uid, &uid, out);
}

int store_user_by_name(struct store *s, const char *name, struct store_user *out)
{
	return user_get(store_cached(s, STORE_C_USER_BY_NAME, USER_SELECT "name = ?1"), bind_name,
			(void *)name, out);
}

int store_users_list(struct store *s, int (*cb)(void *arg, const char *json), void *arg)
{
	return list(s, "SELECT name, uid, groups, admin, pwhash IS NOT NULL AS has_password, created_us"
		    " FROM users ORDER BY name", NULL, NULL, cb, arg);
}

