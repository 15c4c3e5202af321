/* The console's JSON API under /api/v1: pending, decide, grants, audit, sessions, users. */
#include "console_int.h"

#include <errno.h>
#include <stdlib.h>

static int append_row(void *arg, const char *json)
{
	json_t *row = json_loads(json, 0, NULL);

	return row ? json_array_append_new(arg, row) : -1;
}

/* Rows the store hands over (each a JSON object's text) as one JSON array's text: a long
 * session's 100000 rows are kept as their text, not as 100000 jansson objects. */
static int row_text(void *arg, const char *json)
{
	struct al_buf *b = arg;

	al_buf_add(b, b->len > 1 ? "," : "", b->len > 1);
	al_buf_str(b, json);
	return b->oom ? -1 : 0;
}

/* An empty array's text, to be filled by row_text and closed by rows_end. */
static void rows_begin(struct al_buf *b)
{
	memset(b, 0, sizeof(*b));
	al_buf_add(b, "[", 1);
}

static void rows_end(struct al_buf *b)
{
	al_buf_add(b, "]", 1);
}

static void ok_with(struct reply *r, const char *key, json_t *v)
{
	if (!v) {
		reply_error(r, 500, "could not read the store");
		return;
	}
	r->status = 200;
	r->json = json_pack("{s:b, s:o, s:I}", "ok", 1, key, v, "now_us", (json_int_t)al_now_us());
}

/* "/requests/42/approve" with prefix "/requests/": id 42, rest "/approve". -1 if no id. */
static int64_t path_id(const char *path, const char *prefix, const char **rest)
{
	size_t n = strlen(prefix);
	char *end;
	long long v;

	if (strncmp(path, prefix, n) != 0 || path[n] < '0' || path[n] > '9')
		return -1;
	errno = 0;
	v = strtoll(path + n, &end, 10);
	if (errno || v <= 0)
		return -1;
	*rest = end;
	return v;
}

/* since=: a number of microseconds since the epoch, or an age like 30m, 24h, 7d. */
static int64_t parse_since(const char *s)
{
	char *end;
	long long v;

	if (!s || !*s)
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || v < 0)
		return 0;
	switch (*end) {
	case '\0': return v;
	case 's': v *= 1; break;
	case 'm': v *= 60; break;
	case 'h': v *= 3600; break;
	case 'd': v *= 86400; break;
	default: return 0;
	}
	return al_now_us() - (int64_t)v * 1000000;
}

static const char *arg(struct MHD_Connection *conn, const char *key)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);

	return v && *v ? v : NULL;
}

/* A copy of the query argument key, or NULL; 0, or -1 out of memory. */
static int arg_dup(struct MHD_Connection *conn, const char *key, char **out)
{
	const char *v = arg(conn, key);

	*out = v ? strdup(v) : NULL;
	return v && !*out ? -1 : 0;
}

/* GET /audit?what=&agent=&resource=&decision=&since=&limit=: a job for the reader thread. */
static void audit(struct MHD_Connection *conn, struct reply *r)
{
	const char *what = arg(conn, "what") ? arg(conn, "what") : "statements";
	const char *limit = arg(conn, "limit");
	struct cjob *j;

	if (strcmp(what, "statements") && strcmp(what, "connections") && strcmp(what, "requests"))
		return reply_error(r, 400, "what= statements, connections or requests");
	j = calloc(1, sizeof(*j));
	if (!j || !(j->what = strdup(what)) || arg_dup(conn, "agent", &j->agent) < 0 ||
	    arg_dup(conn, "resource", &j->resource) < 0 || arg_dup(conn, "decision", &j->decision) < 0) {
		cjob_free(j);
		return reply_error(r, 500, "out of memory");
	}
	j->kind = CJOB_AUDIT;
	j->since_us = parse_since(arg(conn, "since"));
	j->limit = limit ? (unsigned int)strtoul(limit, NULL, 10) : 200;
	r->job = j;
}

/* The answer as text: {"ok":true, ..., "now_us":N} around the parts already JSON. */
static void reply_text(struct reply *r, struct al_buf *b)
{
	if (b->oom) {
		free(b->p);
		return reply_error(r, 500, "out of memory");
	}
	r->status = 200;
	r->text = b->p;
	r->text_len = b->len;
	r->ctype = "application/json; charset=utf-8";
}

static void run_audit(struct store_reader *sr, struct cjob *j)
{
	struct store_find_filter f = {
		.agent = j->agent, .resource = j->resource, .decision = j->decision,
		.since_us = j->since_us, .limit = j->limit,
	};
	struct al_buf rows, out = { 0 };
	int rc;

	rows_begin(&rows);
	if (strcmp(j->what, "statements") == 0)
		rc = store_find_statements(sr, &f, row_text, &rows);
	else if (strcmp(j->what, "connections") == 0)
		rc = store_find_connections(sr, &f, row_text, &rows);
	else
		rc = store_find_requests(sr, &f, row_text, &rows);
	rows_end(&rows);
	if (rc < 0 || rows.oom) {
		free(rows.p);
		return reply_error(&j->r, 500, "could not read the store");
	}
	al_buf_fmt(&out, "{\"ok\":true,\"%s\":", j->what);
	al_buf_add(&out, rows.p, rows.len);
	al_buf_fmt(&out, ",\"now_us\":%lld}", (long long)al_now_us());
	free(rows.p);
	reply_text(&j->r, &out);
}

/*
 * A session's page: its connection row and, in order, its SQL statements, its HTTP requests and
 * the recorded stream of a Kubernetes exec/attach it carried (each list empty if none), from
 * where the page starts. The three lists make one timeline: a list that has more than the limit
 * ends the page at its limit-th row's time, and the others stop there too, so the next page
 * (`next`, null after the last) follows on in time for all three.
 */
struct page_row {
	char *json;
	int64_t at_us, key, id;
};
struct page_list {
	struct page_row *v;
	size_t n, cap;
	int seq;                /* the key is seq (HTTP requests, exec rows), else at_us */
};

static int page_add(void *arg, const char *json)
{
	struct page_list *l = arg;
	json_t *o = json_loads(json, JSON_ALLOW_NUL, NULL);
	struct page_row *row;

	if (!o)
		return -1;
	if (AL_GROW(l->v, l->n, l->cap, 64) < 0) {
		json_decref(o);
		return -1;
	}
	row = &l->v[l->n];
	row->at_us = json_integer_value(json_object_get(o, "at_us"));
	row->key = l->seq ? json_integer_value(json_object_get(o, "seq")) : row->at_us;
	row->id = json_integer_value(json_object_get(o, "id"));
	json_decref(o);
	if (!(row->json = strdup(json)))
		return -1;
	l->n++;
	return 0;
}

static void page_free(struct page_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].json);
	free(l->v);
}

/* The rows of each list the page keeps (keep[i]) and whether there is a next page. */
static int page_cut(struct page_list *l, unsigned int limit, size_t keep[3])
{
	int64_t until = INT64_MAX;
	int by = -1;

	for (int i = 0; i < 3; i++)
		if (l[i].n > limit && l[i].v[limit - 1].at_us < until) {
			until = l[i].v[limit - 1].at_us;
			by = i;
		}
	for (int i = 0; i < 3; i++) {
		keep[i] = 0;
		if (i == by)    /* the list that ends the page keeps its limit: the page moves on */
			keep[i] = limit;
		else
			while (keep[i] < l[i].n && keep[i] < limit && l[i].v[keep[i]].at_us <= until)
				keep[i]++;
	}
	return by >= 0;
}

/* "s<at_us>.<id>,h<seq>.<id>,e<seq>": where each list's next page starts (a list not in it: its first). */
static void page_cursor(struct al_buf *b, const struct page_list *l, const size_t keep[3],
			const struct store_page *from)
{
	static const char tag[3] = { 's', 'h', 'e' };
	int first = 1;

	for (int i = 0; i < 3; i++) {
		struct store_page at = from[i];

		if (keep[i])
			at = (struct store_page){ .after = 1, .key = l[i].v[keep[i] - 1].key, .id = l[i].v[keep[i] - 1].id };
		if (!at.after)
			continue;
		al_buf_fmt(b, "%s%c%lld", first ? "" : ",", tag[i], (long long)at.key);
		if (i < 2)
			al_buf_fmt(b, ".%lld", (long long)at.id);
		first = 0;
	}
}

static int parse_cursor(const char *s, struct store_page pg[3])
{
	memset(pg, 0, 3 * sizeof(*pg));
	while (s && *s) {
		const char *tags = "she", *t = strchr(tags, *s);
		char *end;
		int i;

		if (!t)
			return -1;
		i = (int)(t - tags);
		errno = 0;
		pg[i].key = strtoll(s + 1, &end, 10);
		if (errno || end == s + 1)
			return -1;
		if (i < 2) {
			if (*end != '.')
				return -1;
			s = end + 1;
			pg[i].id = strtoll(s, &end, 10);
			if (errno || end == s)
				return -1;
		}
		pg[i].after = 1;
		if (*end == ',')
			end++;
		else if (*end)
			return -1;
		s = end;
	}
	return 0;
}

static void run_session(struct store_reader *sr, struct cjob *j)
{
	static const char *const keys[] = { "statements", "http_requests", "exec" };
	struct reply *r = &j->r;
	struct al_buf conn = { 0 }, out = { 0 };
	struct page_list l[3] = { { .seq = 0 }, { .seq = 1 }, { .seq = 1 } };
	struct store_page pg[3];
	size_t keep[3];
	int rc = store_conn_get(sr, j->id, row_text, &conn), more;

	/* One row more than the page shows: whether a list goes on. */
	for (int i = 0; i < 3; i++) {
		pg[i] = j->pg[i];
		pg[i].limit = j->limit + 1;
	}
	if (rc == 1) {
		reply_error(r, 404, "no connection %lld", (long long)j->id);
		goto out;
	}
	if (rc < 0 || conn.oom || store_conn_statements(sr, j->id, &pg[0], page_add, &l[0]) < 0 ||
	    store_conn_http(sr, j->id, &pg[1], page_add, &l[1]) < 0 ||
	    store_conn_exec(sr, j->id, &pg[2], page_add, &l[2]) < 0) {
		reply_error(r, 500, "could not read the store");
		goto out;
	}
	more = page_cut(l, j->limit, keep);
	al_buf_str(&out, "{\"ok\":true,\"connection\":");
	al_buf_add(&out, conn.p, conn.len);
	for (int i = 0; i < 3; i++) {
		al_buf_fmt(&out, ",\"%s\":[", keys[i]);
		for (size_t k = 0; k < keep[i]; k++) {
			al_buf_add(&out, ",", k > 0);
			al_buf_str(&out, l[i].v[k].json);
		}
		al_buf_add(&out, "]", 1);
	}
	al_buf_str(&out, ",\"next\":");
	if (more) {
		al_buf_add(&out, "\"", 1);
		page_cursor(&out, l, keep, j->pg);
		al_buf_add(&out, "\"", 1);
	} else {
		al_buf_str(&out, "null");
	}
	al_buf_add(&out, "}", 1);
	reply_text(r, &out);
out:
	free(conn.p);
	for (int i = 0; i < 3; i++)
		page_free(&l[i]);
}

void api_run_job(struct store_reader *sr, struct cjob *j)
{
	if (j->kind == CJOB_AUDIT)
		run_audit(sr, j);
	else
		run_session(sr, j);
}

/* GET /sessions/N?after=&limit=: a page of a session (run_session), a job for the reader thread. */
#define SESSION_PAGE 1000
#define SESSION_PAGE_MAX (STORE_PAGE_MAX - 1)

static void session_view(struct MHD_Connection *conn, int64_t id, struct reply *r)
{
	const char *limit = arg(conn, "limit");
	struct cjob *j;
	char *end = NULL;
	unsigned long n = SESSION_PAGE;

	if (limit) {
		errno = 0;
		n = strtoul(limit, &end, 10);
		if (errno || end == limit || *end || n == 0 || n > SESSION_PAGE_MAX)
			return reply_error(r, 400, "limit= 1 to %d rows", SESSION_PAGE_MAX);
	}
	if (!(j = calloc(1, sizeof(*j))))
		return reply_error(r, 500, "out of memory");
	if (parse_cursor(arg(conn, "after"), j->pg) < 0) {
		cjob_free(j);
		return reply_error(r, 400, "after= is the next of an earlier page");
	}
	j->kind = CJOB_SESSION;
	j->id = id;
	j->limit = (unsigned int)n;
	r->job = j;
}

static void decide(struct console *c, int64_t id, int approve, json_t *body, struct who *w,
		   struct reply *r)
{
	const char *reason = json_string_value(json_object_get(body, "reason"));
	json_t *secs = json_object_get(body, "for_secs");
	json_int_t for_secs = json_is_integer(secs) ? json_integer_value(secs) : 0;
	json_t *req;
	char err[512];

	if (secs && !json_is_integer(secs) && !json_is_null(secs)) {
		reply_error(r, 400, "for_secs is a number of seconds");
		return;
	}
	if (for_secs < 0 || for_secs > 30 * 24 * 3600) {
		reply_error(r, 400, "bad grant window");
		return;
	}
	if (reason && strlen(reason) > 1000) {
		reply_error(r, 400, "the reason is longer than 1000 bytes");
		return;
	}
	req = approval_request_json(c->approval, id);
	if (!req) {
		reply_error(r, 404, "no request %lld", (long long)id);
		return;
	}
	json_decref(req);
	if (approval_decide(c->approval, id, &w->u, w->u.uid, approve, reason && *reason ? reason : NULL,
			    (unsigned int)for_secs, err, sizeof(err)) < 0) {
		reply_error(r, 409, "%s", err);
		return;
	}
	al_info("console: %s %s request %lld", w->u.name, approve ? "approved" : "denied", (long long)id);
	r->status = 200;
	r->json = json_pack("{s:b}", "ok", 1);
}

void api_handle(struct console *c, struct MHD_Connection *conn, const char *method, const char *path,
		json_t *body, struct who *w, struct reply *r)
{
	int post = strcmp(method, "POST") == 0;
	const char *rest = "";
	int64_t id;

	if (!post && strcmp(path, "/pending") == 0)
		return ok_with(r, "pending", approval_pending_json(c->approval));
	if (!post && strcmp(path, "/grants") == 0)
		return ok_with(r, "grants", approval_grants_json(c->approval));
	if (!post && strcmp(path, "/audit") == 0)
		return audit(conn, r);
	if (!post && strcmp(path, "/users") == 0) {
		json_t *rows = json_array();

		if (!w->u.admin) {
			json_decref(rows);
			return reply_error(r, 403, "only admins see the users");
		}
		if (store_users_list(c->store, append_row, rows) < 0) {
			json_decref(rows);
			rows = NULL;
		}
		return ok_with(r, "users", rows);
	}
	if ((id = path_id(path, "/requests/", &rest)) > 0) {
		if (!post && !*rest) {
			json_t *req = approval_request_json(c->approval, id);

			if (!req)
				return reply_error(r, 404, "no request %lld", (long long)id);
			return ok_with(r, "request", req);
		}
		if (post && strcmp(rest, "/approve") == 0)
			return decide(c, id, 1, body, w, r);
		if (post && strcmp(rest, "/deny") == 0)
			return decide(c, id, 0, body, w, r);
	}
	if ((id = path_id(path, "/grants/", &rest)) > 0 && post && strcmp(rest, "/revoke") == 0) {
		char err[512];

		if (approval_revoke(c->approval, id, &w->u, w->u.uid, err, sizeof(err)) < 0)
			return reply_error(r, 409, "%s", err);
		r->status = 200;
		r->json = json_pack("{s:b}", "ok", 1);
		return;
	}
	if ((id = path_id(path, "/sessions/", &rest)) > 0 && !post && !*rest)
		return session_view(conn, id, r);
	reply_error(r, 404, "no such API: %s %s", method, path);
}
