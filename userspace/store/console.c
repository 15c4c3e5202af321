/* Store queries for the review console: API tokens, filtered audit listings, session replay, metrics counts. */
#include "store_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
	return v && *v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* ---- readers ------------------------------------------------------------------------------ */

struct store_reader {
	sqlite3 *db;
	int64_t deadline_us;    /* al_mono_us() past which a read fails; 0: none */
	int timed_out;
	int stopped;            /* store_reader_interrupt ran (__atomic: another thread sets it) */
};

/* SQLite calls this every few thousand steps of a read: non-zero ends the read. */
static int past_deadline(void *arg)
{
	struct store_reader *r = arg;

	if (__atomic_load_n(&r->stopped, __ATOMIC_RELAXED))
		return 1;
	if (r->deadline_us && al_mono_us() > r->deadline_us) {
		r->timed_out = 1;
		return 1;
	}
	return 0;
}

/* 1 if a read failed because it was cut off (its budget, or a stop): not an error to log. */
static int read_cut(struct store_reader *r)
{
	return r->timed_out || __atomic_load_n(&r->stopped, __ATOMIC_RELAXED);
}

int store_reader_open(const char *path, struct store_reader **out, char *err, size_t errlen)
{
	struct store_reader *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r)
		return al_errf(err, errlen, "out of memory");
	if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(r->db, 5000) != SQLITE_OK) {
		al_errf(err, errlen, "%s: %s", path, r->db ? sqlite3_errmsg(r->db) : "out of memory");
		store_reader_close(r);
		return -1;
	}
	sqlite3_progress_handler(r->db, 10000, past_deadline, r);
	*out = r;
	return 0;
}

void store_reader_close(struct store_reader *r)
{
	if (!r)
		return;
	sqlite3_close(r->db);
	free(r);
}

/* The rows and recordings the loop holds in memory, and its open batch, committed. */
int store_reader_sync(struct store *s)
{
	store_rec_flush_all(s);
	return store_batch_commit(s);
}

int store_reader_begin(struct store_reader *r, int64_t budget_us)
{
	r->timed_out = 0;
	r->deadline_us = budget_us ? al_mono_us() + budget_us : 0;
	if (sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		al_err("store: beginning a read failed: %s", sqlite3_errmsg(r->db));
		return -1;
	}
	return 0;
}

void store_reader_end(struct store_reader *r)
{
	if (!sqlite3_get_autocommit(r->db))
		(void)sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
	r->deadline_us = 0;
}

sqlite3 *store_reader_db(struct store_reader *r)
{
	return r->db;
}

int store_reader_timed_out(const struct store_reader *r)
{
	return r->timed_out;
}

void store_reader_interrupt(struct store_reader *r)
{
	if (!r)
		return;
	/* The flag stops a read that has not begun yet; sqlite3_interrupt one that runs. */
	__atomic_store_n(&r->stopped, 1, __ATOMIC_RELAXED);
	sqlite3_interrupt(r->db);
}

/* Prepares sql, lets bind fill it, hands each row to cb as JSON (cb: 0 on, >0 stop, <0 abort). */
static int rows(struct store_reader *r, const char *sql, int (*bind)(sqlite3_stmt *st, const void *arg),
		const void *barg, int (*cb)(void *arg, const char *json), void *arg, int *n_rows)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, n = 0;

	if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	if (bind && bind(st, barg) != 0)
		goto out;
	rc = store_each_row(st, cb, arg, &n) < 0 ? -1 : 0;
out:
	if (rc < 0 && !read_cut(r))
		al_err("store: console query failed: %s", sqlite3_errmsg(r->db));
	sqlite3_finalize(st);
	if (n_rows)
		*n_rows = n;
	return rc;
}

/* ---- tokens ------------------------------------------------------------------------------- */

struct tok {
	const char *user, *sha;
};

static int bind_tok(sqlite3_stmt *st, void *arg)
{
	const struct tok *t = arg;

	return bind_text(st, 1, t->user) | bind_text(st, 2, t->sha) |
	       sqlite3_bind_int64(st, 3, al_now_us());
}

static int do_token_add(sqlite3 *db, void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "INSERT INTO console_tokens (user, sha256, created_us) VALUES (?1, ?2, ?3)",
			       -1, &st, NULL) == SQLITE_OK && bind_tok(st, arg) == 0 &&
	    sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
	sqlite3_finalize(st);
	return rc;
}

int store_token_add(struct store *s, const char *user, const char *sha256_hex)
{
	struct tok t = { user, sha256_hex };

	return store_durable(s, do_token_add, &t, "recording a console token");
}

int store_token_user(struct store *s, const char *sha256_hex, char *user, size_t len)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, r;

	if (sqlite3_prepare_v2(store_db(s), "SELECT user FROM console_tokens WHERE sha256 = ?1", -1, &st,
			       NULL) != SQLITE_OK || bind_text(st, 1, sha256_hex) != SQLITE_OK)
		goto out;
	r = sqlite3_step(st);
	if (r == SQLITE_DONE)
		rc = 1;
	else if (r == SQLITE_ROW)
		rc = al_fmt(user, len, "%s", (const char *)sqlite3_column_text(st, 0));
out:
	sqlite3_finalize(st);
	return rc;
}

int store_user_tokens_del(sqlite3 *db, const char *user, int *n)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "DELETE FROM console_tokens WHERE user = ?1", -1, &st, NULL) == SQLITE_OK &&
	    bind_text(st, 1, user) == SQLITE_OK && sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
	if (rc == 0 && n)
		*n = sqlite3_changes(db);
	sqlite3_finalize(st);
	return rc;
}

struct tok_rev {
	const char *user;
	int n;
};

static int do_token_revoke(sqlite3 *db, void *arg)
{
	struct tok_rev *r = arg;

	return store_user_tokens_del(db, r->user, &r->n);
}

int store_token_revoke(struct store *s, const char *user, int *n)
{
	struct tok_rev r = { user, 0 };

	if (store_durable(s, do_token_revoke, &r, "revoking console tokens") < 0)
		return -1;
	*n = r.n;
	return 0;
}

/* ---- audit -------------------------------------------------------------------------------- */

static unsigned int lim(const struct store_find_filter *f)
{
	return f->limit && f->limit <= 10000 ? f->limit : 200;
}

static int bind_filter(sqlite3_stmt *st, const void *arg)
{
	const struct store_find_filter *f = arg;

	return bind_text(st, 1, f->agent) | bind_text(st, 2, f->resource) |
	       bind_text(st, 3, f->decision) | sqlite3_bind_int64(st, 4, f->since_us) |
	       sqlite3_bind_int64(st, 5, lim(f));
}

/* An agent filter matches a cgroup path subtree or an exe path exactly (agent_match in C). */
#define AGENT_MATCH(c) "(?1 IS NULL OR " c ".cgroup_path = ?1 OR substr(" c ".cgroup_path, 1, length(?1) + 1)" \
		       " = ?1 || '/' OR " c ".exe = ?1)"

int store_find_connections(struct store_reader *r, const struct store_find_filter *f,
			    int (*cb)(void *arg, const char *json), void *arg)
{
	return rows(r, "SELECT c.* FROM connections c WHERE " AGENT_MATCH("c")
		    " AND (?2 IS NULL OR c.resource = ?2) AND (?3 IS NULL OR c.reason = ?3)"
		    " AND c.opened_us >= ?4 ORDER BY c.id DESC LIMIT ?5", bind_filter, f, cb, arg, NULL);
}

/*
 * A batch's rows without parsing them all: the array its writer made (store.c batch_row) is
 * walked one object at a time, reading in passing the few members a filter looks at; the
 * caller parses only the rows it keeps (a jansson parse costs 10 us a row, the walk a few
 * hundred ns). Text of any other shape stops the walk (-2): the caller then parses the batch.
 */
struct skim_row {
	const char *p;          /* the row's object, n bytes */
	size_t n;
	int64_t id, conn_id, at_us, seq;
	const char *dec;        /* the decision's bytes as written (escapes kept); NULL: null */
	size_t dec_n;
};

static const char *ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
		p++;
	return p;
}

/* p at '"': past the closing quote, or NULL. */
static const char *skip_str(const char *p, const char *e)
{
	for (p++; p < e; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* Past one value (string, number, literal, object or array), or NULL. */
static const char *skip_val(const char *p, const char *e)
{
	int depth = 0;

	do {
		if (p >= e)
			return NULL;
		if (*p == '"') {
			if (!(p = skip_str(p, e)))
				return NULL;
		} else if (*p == '{' || *p == '[') {
			depth++;
			p++;
		} else if (*p == '}' || *p == ']') {
			if (--depth < 0)
				return NULL;
			p++;
		} else if (depth == 0) {
			const char *q = p;

			while (q < e && *q != ',' && *q != '}' && *q != ']' && *q != ' ' && *q != '\n')
				q++;
			return q == p ? NULL : q;
		} else {
			p++;
		}
	} while (depth > 0);
	return p;
}

/* An integer or null (0), or NULL if the value is something else. */
static const char *int_val(const char *p, const char *e, int64_t *v)
{
	int neg = 0;
	uint64_t x = 0;
	const char *d;

	if (e - p >= 4 && memcmp(p, "null", 4) == 0) {
		*v = 0;
		return p + 4;
	}
	if (p < e && *p == '-') {
		neg = 1;
		p++;
	}
	for (d = p; p < e && *p >= '0' && *p <= '9' && p - d < 19; p++)
		x = x * 10 + (uint64_t)(*p - '0');
	if (p == d || (p < e && *p >= '0' && *p <= '9'))
		return NULL;
	*v = neg ? -(int64_t)x : (int64_t)x;
	return p;
}

#define KEY_IS(k, kn, lit) ((kn) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

/* Calls fn on each row of the array at [p, e): 0; fn's result if < 0; -2 if not that shape. */
static int skim_rows(const char *p, const char *e, int (*fn)(void *arg, const struct skim_row *r), void *arg)
{
	p = ws(p, e);
	if (p >= e || *p != '[')
		return -2;
	p = ws(p + 1, e);
	if (p < e && *p == ']')
		return 0;
	for (;;) {
		struct skim_row r = { 0 };
		int c;

		if (p >= e || *p != '{')
			return -2;
		r.p = p;
		p = ws(p + 1, e);
		while (p < e && *p != '}') {
			const char *k = p + 1;
			size_t kn;

			if (*p != '"' || !(p = skip_str(p, e)))
				return -2;
			kn = (size_t)(p - 1 - k);
			p = ws(p, e);
			if (p >= e || *p != ':')
				return -2;
			p = ws(p + 1, e);
			if (KEY_IS(k, kn, "id"))
				p = int_val(p, e, &r.id);
			else if (KEY_IS(k, kn, "conn_id"))
				p = int_val(p, e, &r.conn_id);
			else if (KEY_IS(k, kn, "at_us"))
				p = int_val(p, e, &r.at_us);
			else if (KEY_IS(k, kn, "seq"))
				p = int_val(p, e, &r.seq);
			else if (KEY_IS(k, kn, "decision") && p < e && *p == '"') {
				r.dec = p + 1;
				if ((p = skip_str(p, e)))
					r.dec_n = (size_t)(p - 1 - r.dec);
			} else
				p = skip_val(p, e);
			if (!p)
				return -2;
			p = ws(p, e);
			if (p < e && *p == ',')
				p = ws(p + 1, e);
			else if (p >= e || *p != '}')
				return -2;
		}
		if (p >= e)
			return -2;
		p++;
		r.n = (size_t)(p - r.p);
		if ((c = fn(arg, &r)) < 0)
			return c;
		p = ws(p, e);
		if (p < e && *p == ']')
			return 0;
		if (p >= e || *p != ',')
			return -2;
		p = ws(p + 1, e);
	}
}

/* The rows array of a batch's record body ({..., "rows": [...], ...}), or NULL. */
static const char *body_rows(const char *p, const char *e)
{
	p = ws(p, e);
	if (p >= e || *p != '{')
		return NULL;
	p = ws(p + 1, e);
	while (p < e && *p == '"') {
		const char *k = p + 1;
		size_t kn;

		if (!(p = skip_str(p, e)))
			return NULL;
		kn = (size_t)(p - 1 - k);
		p = ws(p, e);
		if (p >= e || *p != ':')
			return NULL;
		p = ws(p + 1, e);
		if (KEY_IS(k, kn, "rows"))
			return p;
		if (!(p = skip_val(p, e)))
			return NULL;
		p = ws(p, e);
		if (p >= e || *p != ',')
			return NULL;
		p = ws(p + 1, e);
	}
	return NULL;
}

/* Two columns for a batch's rows, as the walks below read them: 1 and its rows column (the array
 * itself, schema 11 and 12), or 0 and its audit record's body (the array under "rows", 13 on);
 * then " FROM" the batch b and its record a. */
#define BATCH_TEXT "b.audit_seq IS NULL, CASE WHEN b.audit_seq IS NULL THEN b.rows ELSE a.body END" \
	" FROM command_batches b LEFT JOIN audit a ON a.seq = b.audit_seq"

/*
 * The statements search. The rows alone (statement_rows) are real rows: SQL finds the newest
 * that match. The batched rows are JSON arrays, one a batch (store_int.h); SQL's json_each and
 * json_extract took 18 us a row, so a search that matched little read every batch back to its
 * `since` at that cost (37 s for 2M statements). Here the batches are read newest first, each
 * array walked once (skim_rows) and only the rows that pass the filters parsed. The walk stops
 * once the limit is found and no older batch can hold a newer row (a batch's rows are at least
 * its first_id; walking by last_id, a carried row is the only overlap), or at a batch older
 * than `since` (ids and times grow together: an older batch's rows are all older). The answer
 * is what the view gave: the same rows, the same columns, newest first.
 */
struct found {
	int64_t id, key;        /* key: what a session's rows are ordered by, with id */
	char *json;
};

/* Rows found, as the JSON they are answered with. */
struct found_list {
	struct found *v;
	size_t n, cap;
};

/* What batch_each hands a row to: want says from the walk whether to parse it (1), skip it (0)
 * or stop (-1); parsed takes it parsed (0 on, -1 stop). */
struct batch_walk {
	int (*want)(void *arg, const struct skim_row *r);
	int (*parsed)(void *arg, json_t *row);
	void *arg;
};

static int walk_row(void *arg, const struct skim_row *r)
{
	const struct batch_walk *w = arg;
	json_t *row;
	int rc = w->want(w->arg, r);

	if (rc <= 0)
		return rc;
	row = json_loadb(r->p, r->n, JSON_ALLOW_NUL, NULL);
	if (!row)
		return -1;
	rc = w->parsed(w->arg, row);
	json_decref(row);
	return rc;
}

/*
 * One batch's rows (txt: its rows column when is_rows, else its record's body): walked, each
 * row want wants parsed and handed to parsed; text the walk does not know is parsed whole and
 * every row handed to parsed, after the rows kept from the walk (those in l past its length
 * on entry) are dropped. 0, or -1.
 */
static int batch_each(const char *txt, size_t len, int is_rows, struct found_list *l,
		      const struct batch_walk *w)
{
	const char *e = txt + len, *a;
	size_t mark = l->n, i;
	json_t *doc, *arr, *row;
	int k;

	if (!txt)
		return 0;
	a = is_rows ? txt : body_rows(txt, e);
	k = a ? skim_rows(a, e, walk_row, (void *)w) : -2;
	if (k != -2)
		return k < 0 ? -1 : 0;
	while (l->n > mark)
		free(l->v[--l->n].json);
	doc = json_loadb(txt, len, JSON_ALLOW_NUL, NULL);
	arr = is_rows ? doc : json_object_get(doc, "rows");
	if (!json_is_array(arr)) {
		al_err("store: a batch's rows are not a JSON array");
		json_decref(doc);
		return -1;
	}
	json_array_foreach(arr, i, row) {
		if (w->parsed(w->arg, row) < 0) {
			json_decref(doc);
			return -1;
		}
	}
	json_decref(doc);
	return 0;
}

struct find_st {
	struct store_reader *r;
	const struct store_find_filter *f;
	unsigned int limit;
	struct found_list fl;
	sqlite3_stmt *conn_st;
	struct conn_info {
		int64_t id;             /* 0: free slot */
		int found;
		json_t *cols;           /* resource, cgroup_path, exe, pid, uid as the join gave them */
		int match;              /* the agent and resource filters pass */
	} cache[512];
};

static int found_add(struct found_list *l, int64_t id, int64_t key, char *json)
{
	if (AL_GROW(l->v, l->n, l->cap, 256) < 0) {
		free(json);
		return -1;
	}
	l->v[l->n].id = id;
	l->v[l->n].key = key;
	l->v[l->n].json = json;
	l->n++;
	return 0;
}

/* Sorts by cmp and keeps the first keep. */
static void found_cut(struct found_list *l, int (*cmp)(const void *a, const void *b), size_t keep)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp);
	while (l->n > keep)
		free(l->v[--l->n].json);
}

static void found_free(struct found_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].json);
	free(l->v);
}

/* Hands the rows to cb in order (cb: 0 on, >0 stop, <0 abort): 0 or -1. */
static int found_each(const struct found_list *l, int (*cb)(void *arg, const char *json), void *arg)
{
	for (size_t i = 0; i < l->n; i++) {
		int c = cb(arg, l->v[i].json);

		if (c)
			return c < 0 ? -1 : 0;
	}
	return 0;
}

static int found_cmp(const void *a, const void *b)
{
	int64_t x = ((const struct found *)a)->id, y = ((const struct found *)b)->id;

	return x < y ? 1 : x > y ? -1 : 0;
}

/* Keeps the limit newest; returns the lowest id kept once there are that many, else 0. */
static int64_t found_trim(struct find_st *q)
{
	found_cut(&q->fl, found_cmp, q->limit);
	return q->fl.n == q->limit ? q->fl.v[q->fl.n - 1].id : 0;
}

static int agent_match(const char *want, const char *cgroup_path, const char *exe)
{
	size_t n = strlen(want);

	if (cgroup_path && strncmp(cgroup_path, want, n) == 0 && (cgroup_path[n] == '\0' || cgroup_path[n] == '/'))
		return 1;
	return exe && strcmp(exe, want) == 0;
}

/* A connection's columns for the rows of it (cached), and whether they pass the filters. */
static struct conn_info *conn_of(struct find_st *q, int64_t id)
{
	static const char *const names[] = { "resource", "cgroup_path", "exe", "pid", "uid" };
	struct conn_info *ci = &q->cache[(uint64_t)id % AL_ARRAY_LEN(q->cache)];
	const struct store_find_filter *f = q->f;
	int rc;

	if (ci->id == id && id)
		return ci;
	json_decref(ci->cols);
	memset(ci, 0, sizeof(*ci));
	ci->cols = json_object();
	if (!ci->cols || sqlite3_reset(q->conn_st) != SQLITE_OK || sqlite3_bind_int64(q->conn_st, 1, id) != SQLITE_OK)
		return NULL;
	rc = sqlite3_step(q->conn_st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return NULL;
	ci->found = rc == SQLITE_ROW;
	for (int i = 0; i < 5; i++)
		if (json_object_set_new(ci->cols, names[i], ci->found ? store_json_col(q->conn_st, i) : json_null()) < 0)
			return NULL;
	ci->match = 1;
	if (f->agent && *f->agent)
		ci->match = ci->found && agent_match(f->agent, (const char *)sqlite3_column_text(q->conn_st, 1),
						     (const char *)sqlite3_column_text(q->conn_st, 2));
	if (f->resource && *f->resource) {
		const char *res = ci->found ? (const char *)sqlite3_column_text(q->conn_st, 0) : NULL;

		ci->match = ci->match && res && strcmp(res, f->resource) == 0;
	}
	ci->id = id;
	return ci;
}

/* The columns of the statements and http_requests views, in order (STMT_COLS, HTTP_COLS). */
static const char *const stmt_names[] = { "id", "conn_id", "seq", "at_us", "protocol", "text", "kind",
					  "fingerprint", "relations", "unbounded_write", "params", "decision",
					  "rule", "tag", "sqlstate", "error", "rows", "duration_us" };
static const char *const http_names[] = { "id", "conn_id", "seq", "at_us", "method", "host", "path", "query",
					  "kind", "headers", "body_len", "body_sha256", "request_sha256", "k8s",
					  "fingerprint", "decision", "rule", "request_id", "status", "bytes_up",
					  "bytes_down", "duration_us", "error" };

/* A batched row as its view shows it: the n columns names[] in order, strings and integers as
 * written, anything else null. NULL: out of memory. */
static json_t *row_cols(json_t *row, const char *const *names, size_t n)
{
	json_t *out = json_object();

	for (size_t i = 0; out && i < n; i++) {
		json_t *v = json_object_get(row, names[i]);

		if (json_object_set(out, names[i], v && (json_is_string(v) || json_is_integer(v)) ? v : json_null()) < 0) {
			json_decref(out);
			out = NULL;
		}
	}
	return out;
}

/* One batched row: kept (as the view's columns and the connection's) if it passes the filters. */
static int batched_row(void *arg, json_t *row)
{
	struct find_st *q = arg;
	const struct store_find_filter *f = q->f;
	json_t *v, *out;
	struct conn_info *ci;
	int64_t id;
	char *txt;

	if (!json_is_object(row))
		return 0;
	id = json_integer_value(json_object_get(row, "id"));
	if (f->since_us && json_integer_value(json_object_get(row, "at_us")) < f->since_us)
		return 0;
	if (f->decision && *f->decision &&
	    (!(v = json_object_get(row, "decision")) || !json_is_string(v) || strcmp(json_string_value(v), f->decision)))
		return 0;
	ci = conn_of(q, json_integer_value(json_object_get(row, "conn_id")));
	if (!ci)
		return -1;
	if (!ci->match)
		return 0;
	out = row_cols(row, stmt_names, AL_ARRAY_LEN(stmt_names));
	if (!out || json_object_update(out, ci->cols) < 0) {
		json_decref(out);
		return -1;
	}
	txt = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	return txt ? found_add(&q->fl, id, 0, txt) : -1;
}

static int found_row(void *arg, const char *json)
{
	struct find_st *q = arg;
	json_t *o = json_loads(json, 0, NULL);
	int64_t id = json_integer_value(json_object_get(o, "id"));
	char *copy = strdup(json);

	json_decref(o);
	return copy ? found_add(&q->fl, id, 0, copy) : -1;
}

static int bind_found(sqlite3_stmt *st, const void *arg)
{
	const struct find_st *q = arg;

	return bind_filter(st, q->f) | sqlite3_bind_int64(st, 5, q->limit);
}

/* A walked row: parsed only if the filters the walk can see pass. */
static int find_want(void *arg, const struct skim_row *r)
{
	struct find_st *q = arg;
	const struct store_find_filter *f = q->f;

	if (f->since_us && r->at_us < f->since_us)
		return 0;
	if (f->decision && *f->decision && (!r->dec || (!memchr(r->dec, '\\', r->dec_n) &&
						   (r->dec_n != strlen(f->decision) ||
						    memcmp(r->dec, f->decision, r->dec_n) != 0))))
		return 0;
	if ((f->agent && *f->agent) || (f->resource && *f->resource)) {
		struct conn_info *ci = conn_of(q, r->conn_id);

		if (!ci)
			return -1;
		return ci->match;
	}
	return 1;
}

int store_find_statements(struct store_reader *r, const struct store_find_filter *f,
			   int (*cb)(void *arg, const char *json), void *arg)
{
	struct find_st *q = calloc(1, sizeof(*q));
	struct batch_walk walk = { find_want, batched_row, q };
	sqlite3_stmt *bst = NULL;
	int64_t floor = 0;
	int rc = -1, step;

	if (!q)
		return -1;
	q->r = r;
	q->f = f;
	q->limit = lim(f);
	/* The rows alone: SQL, with the join and the filters. */
	if (rows(r, "SELECT st.*, c.resource, c.cgroup_path, c.exe, c.pid, c.uid FROM (SELECT " STMT_COLS
		 " FROM statement_rows) st LEFT JOIN connections c ON c.id = st.conn_id WHERE " AGENT_MATCH("c")
		 " AND (?2 IS NULL OR c.resource = ?2) AND (?3 IS NULL OR st.decision = ?3)"
		 " AND st.at_us >= ?4 ORDER BY st.id DESC LIMIT ?5", bind_found, q, found_row, q, NULL) < 0)
		goto out;
	floor = found_trim(q);
	if (sqlite3_prepare_v2(r->db, "SELECT resource, cgroup_path, exe, pid, uid FROM connections WHERE id = ?1",
			       -1, &q->conn_st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(r->db, "SELECT b.last_id, b.last_at_us, " BATCH_TEXT
			       " WHERE b.kind = 'statements' ORDER BY b.last_id DESC", -1, &bst, NULL) != SQLITE_OK)
		goto out;
	while ((step = sqlite3_step(bst)) == SQLITE_ROW) {
		const char *txt = (const char *)sqlite3_column_text(bst, 3);
		size_t len = (size_t)sqlite3_column_bytes(bst, 3);

		if (floor && sqlite3_column_int64(bst, 0) < floor)
			break;          /* the limit is found, and nothing older can be newer */
		if (f->since_us && sqlite3_column_int64(bst, 1) < f->since_us)
			break;          /* this batch and every older one are before since */
		if (past_deadline(r) || batch_each(txt, len, sqlite3_column_int(bst, 2), &q->fl, &walk) < 0)
			goto out;
		if (q->fl.n >= 2 * (size_t)q->limit || (q->fl.n >= q->limit && !floor))
			floor = found_trim(q);
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		goto out;
	found_trim(q);
	rc = found_each(&q->fl, cb, arg);
out:
	if (rc < 0 && !read_cut(r))
		al_err("store: statements search failed: %s", sqlite3_errmsg(r->db));
	sqlite3_finalize(bst);
	sqlite3_finalize(q->conn_st);
	found_free(&q->fl);
	for (size_t i = 0; i < AL_ARRAY_LEN(q->cache); i++)
		json_decref(q->cache[i].cols);
	free(q);
	return rc;
}

/*
 * What airlockctl policy test reads: every statement and every HTTP request since a time, with
 * its connection's agent. The rows alone are read by SQL; the batched ones by reading each
 * batch's array once (the views' json_each and json_extract cost 18 us a row, and their ORDER BY
 * sorted them all). In no particular order: batches are read as they were written, and a row
 * carried over a commit sits in a later batch than its id says.
 */
struct since_conn {
	int64_t id;             /* 0: free slot */
	char *resource, *cgroup_path, *exe, *dst_addr;
	long uid;               /* -1: none */
	int dst_port;
};

struct since_walk {
	sqlite3_stmt *conn_st;
	struct since_conn *cache;
	/* A row at or after since, with its connection (all NULL if that row is gone). */
	int (*row)(void *arg, json_t *row, const struct since_conn *c);
	void *arg;
};

#define SINCE_CONNS 256

static void since_conn_clear(struct since_conn *c)
{
	free(c->resource);
	free(c->cgroup_path);
	free(c->exe);
	free(c->dst_addr);
	memset(c, 0, sizeof(*c));
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NULL : strdup((const char *)sqlite3_column_text(st, i));
}

/* The connection's agent, from a small cache (a session's rows come together). */
static const struct since_conn *since_conn_get(struct since_walk *w, int64_t id)
{
	struct since_conn *c = &w->cache[(uint64_t)id % SINCE_CONNS];

	if (c->id == id && id)
		return c;
	since_conn_clear(c);
	c->id = id;
	c->uid = -1;
	if (sqlite3_reset(w->conn_st) != SQLITE_OK || sqlite3_bind_int64(w->conn_st, 1, id) != SQLITE_OK)
		return NULL;
	if (sqlite3_step(w->conn_st) == SQLITE_ROW) {
		c->resource = col_dup(w->conn_st, 0);
		c->cgroup_path = col_dup(w->conn_st, 1);
		c->exe = col_dup(w->conn_st, 2);
		c->uid = sqlite3_column_type(w->conn_st, 3) == SQLITE_NULL ? -1 : (long)sqlite3_column_int64(w->conn_st, 3);
		c->dst_addr = col_dup(w->conn_st, 4);
		c->dst_port = sqlite3_column_int(w->conn_st, 5);
	}
	return c;
}

/* Hands each row at or after since_us, with its connection, to w->row: the rows alone (alone_sql:
 * each as a JSON object like a batch's, ?1 since_us; few: those waiting or parked when their
 * batch committed), then kind's batches. */
static int since_rows(struct store_reader *rd, const char *kind, const char *alone_sql, int64_t since_us,
		      struct since_walk *w)
{
	sqlite3_stmt *alone = NULL, *st = NULL;
	int rc = -1, r = SQLITE_OK;

	w->conn_st = NULL;
	if (!(w->cache = calloc(SINCE_CONNS, sizeof(*w->cache))))
		return -1;
	if (sqlite3_prepare_v2(rd->db, "SELECT resource, cgroup_path, exe, uid, dst_addr, dst_port FROM connections"
			       " WHERE id = ?1", -1, &w->conn_st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(rd->db, alone_sql, -1, &alone, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(alone, 1, since_us) != SQLITE_OK ||
	    /* The batches that end at since or later (an earlier one holds no row at or after it). */
	    sqlite3_prepare_v2(rd->db, "SELECT " BATCH_TEXT
			       " WHERE b.kind = ?2 AND b.last_at_us >= ?1 ORDER BY b.id", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, since_us) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC) != SQLITE_OK)
		goto out;
	for (int batches = 0; batches < 2; batches++) {
		sqlite3_stmt *q = batches ? st : alone;

		while ((r = sqlite3_step(q)) == SQLITE_ROW) {
			const char *txt = (const char *)sqlite3_column_text(q, batches);
			json_t *doc = txt ? json_loadb(txt, (size_t)sqlite3_column_bytes(q, batches), JSON_ALLOW_NUL, NULL)
					  : NULL;
			json_t *arr = !batches ? doc : sqlite3_column_int(q, 0) ? doc : json_object_get(doc, "rows");
			json_t *row;
			size_t i, n = batches ? json_array_size(arr) : 1;

			if (batches ? !json_is_array(arr) : !json_is_object(doc)) {
				al_err("store: a %s row is not JSON as written", batches ? "batch's" : "lone");
				json_decref(doc);
				goto out;
			}
			for (i = 0; i < n; i++) {
				const struct since_conn *c;

				row = batches ? json_array_get(arr, i) : doc;
				if (json_integer_value(json_object_get(row, "at_us")) < since_us)
					continue;
				c = since_conn_get(w, json_integer_value(json_object_get(row, "conn_id")));
				if (!c || w->row(w->arg, row, c) < 0) {
					json_decref(doc);
					goto out;
				}
			}
			json_decref(doc);
		}
		if (r != SQLITE_DONE)
			goto out;
	}
	rc = 0;
out:
	if (rc < 0 && !read_cut(rd))
		al_err("store: reading the %s since %lld failed: %s", kind, (long long)since_us, sqlite3_errmsg(rd->db));
	sqlite3_finalize(alone);
	sqlite3_finalize(st);
	sqlite3_finalize(w->conn_st);
	for (size_t i = 0; i < SINCE_CONNS; i++)
		since_conn_clear(&w->cache[i]);
	free(w->cache);
	return rc;
}

static const char *jget_str(json_t *row, const char *key)
{
	return json_string_value(json_object_get(row, key));
}

struct since_cb {
	int (*stmt)(void *arg, const struct store_stmt_view *v);
	int (*http)(void *arg, const struct store_http_view *v);
	void *arg;
};

static int since_stmt(void *arg, json_t *row, const struct since_conn *c)
{
	const struct since_cb *k = arg;
	json_t *uw = json_object_get(row, "unbounded_write");
	struct store_stmt_view v = {
		.id = json_integer_value(json_object_get(row, "id")),
		.at_us = json_integer_value(json_object_get(row, "at_us")),
		.text = jget_str(row, "text"), .kind = jget_str(row, "kind"),
		.relations_json = jget_str(row, "relations"), .decision = jget_str(row, "decision"),
		.rule = jget_str(row, "rule"), .fingerprint = jget_str(row, "fingerprint"),
		.unbounded_write = json_is_true(uw) || json_integer_value(uw) != 0,
		.resource = c->resource, .cgroup_path = c->cgroup_path, .exe = c->exe, .uid = c->uid,
	};

	return k->stmt(k->arg, &v);
}

static int since_http(void *arg, json_t *row, const struct since_conn *c)
{
	const struct since_cb *k = arg;
	struct store_http_view v = {
		.id = json_integer_value(json_object_get(row, "id")),
		.at_us = json_integer_value(json_object_get(row, "at_us")),
		.method = jget_str(row, "method"), .host = jget_str(row, "host"), .path = jget_str(row, "path"),
		.query = jget_str(row, "query"), .kind = jget_str(row, "kind"), .k8s_json = jget_str(row, "k8s"),
		.body_sha256 = jget_str(row, "body_sha256"), .fingerprint = jget_str(row, "fingerprint"),
		.decision = jget_str(row, "decision"),
		.rule = jget_str(row, "rule"), .resource = c->resource, .cgroup_path = c->cgroup_path,
		.exe = c->exe, .dst_addr = c->dst_addr, .uid = c->uid, .dst_port = c->dst_port,
	};

	/* as the view's "decision != 'error'" reads it: a request without one is not counted either */
	if (!v.decision || strcmp(v.decision, "error") == 0)
		return 0;
	return k->http(k->arg, &v);
}

int store_stmts_since(struct store_reader *rd, int64_t since_us,
		      int (*cb)(void *arg, const struct store_stmt_view *v), void *arg)
{
	struct since_cb k = { .stmt = cb, .arg = arg };
	struct since_walk w = { .row = since_stmt, .arg = &k };

	return since_rows(rd, "statements", "SELECT json_object('id', id, 'conn_id', conn_id, 'at_us', at_us,"
			  " 'text', text, 'kind', kind, 'relations', relations, 'decision', decision, 'rule', rule,"
			  " 'unbounded_write', unbounded_write, 'fingerprint', fingerprint) FROM statement_rows"
			  " WHERE at_us >= ?1", since_us, &w);
}

int store_http_since(struct store_reader *rd, int64_t since_us,
		     int (*cb)(void *arg, const struct store_http_view *v), void *arg)
{
	struct since_cb k = { .http = cb, .arg = arg };
	struct since_walk w = { .row = since_http, .arg = &k };

	return since_rows(rd, "http_requests", "SELECT json_object('id', id, 'conn_id', conn_id, 'at_us', at_us,"
			  " 'method', method, 'host', host, 'path', path, 'query', query, 'kind', kind, 'k8s', k8s,"
			  " 'body_sha256', body_sha256, 'fingerprint', fingerprint, 'decision', decision, 'rule', rule)"
			  " FROM http_request_rows"
			  " WHERE at_us >= ?1", since_us, &w);
}

int store_find_requests(struct store_reader *r, const struct store_find_filter *f,
			 int (*cb)(void *arg, const char *json), void *arg)
{
	return rows(r, "SELECT r.* FROM requests r WHERE " AGENT_MATCH("r")
		    " AND (?2 IS NULL OR r.resource = ?2) AND (?3 IS NULL OR r.state = ?3)"
		    " AND r.created_us >= ?4 ORDER BY r.id DESC LIMIT ?5", bind_filter, f, cb, arg, NULL);
}

static int bind_id(sqlite3_stmt *st, const void *arg)
{
	return sqlite3_bind_int64(st, 1, *(const int64_t *)arg);
}

int store_conn_get(struct store_reader *r, int64_t id, int (*cb)(void *arg, const char *json), void *arg)
{
	int n = 0;

	if (rows(r, "SELECT * FROM connections WHERE id = ?1", bind_id, &id, cb, arg, &n) < 0)
		return -1;
	return n ? 0 : 1;
}

/*
 * A page of a session's statements or HTTP requests, in order: the rows after the page's start,
 * at most its limit (STORE_PAGE_MAX). Its batched rows are in the batches that name it (conns)
 * since it opened, or since the page's start; a long session's batches hold every other session's
 * rows of its time too, so they are walked (skim_rows) and only its own parsed.
 */
struct sess_kind {
	const char *batch_kind;         /* command_batches.kind */
	const char *const *names;       /* the view's columns */
	size_t n_names;
	const char *alone_sql;          /* its rows alone (?1 the connection): the view's columns */
	int by_seq;                     /* ordered by (seq, id); else by (at_us, id) */
	int request_ids;                /* each row's review request, as request_id (statements) */
};

static const struct sess_kind sess_stmts = {
	"statements", stmt_names, AL_ARRAY_LEN(stmt_names),
	"SELECT " STMT_COLS ", NULL AS request_id FROM statement_rows WHERE conn_id = ?1", 0, 1,
};
static const struct sess_kind sess_http = {
	"http_requests", http_names, AL_ARRAY_LEN(http_names),
	"SELECT " HTTP_COLS " FROM http_request_rows WHERE conn_id = ?1", 1, 0,
};

struct sess_st {
	const struct sess_kind *k;
	int64_t conn_id;
	struct store_page pg;
	size_t limit;
	struct found_list fl;
	int64_t last_key;       /* once limit are kept: the last kept's key */
	int full;
};

static int sess_cmp(const void *a, const void *b)
{
	const struct found *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void sess_trim(struct sess_st *q)
{
	found_cut(&q->fl, sess_cmp, q->limit);
	if (q->fl.n == q->limit) {
		q->last_key = q->fl.v[q->fl.n - 1].key;
		q->full = 1;
	}
}

static int64_t sess_key(const struct sess_st *q, json_t *row)
{
	return json_integer_value(json_object_get(row, q->k->by_seq ? "seq" : "at_us"));
}

/* 1 if the row (key, id) comes after where the page starts. */
static int sess_after(const struct sess_st *q, int64_t key, int64_t id)
{
	return !q->pg.after || key > q->pg.key || (key == q->pg.key && id > q->pg.id);
}

static int sess_parsed(struct sess_st *q, json_t *row)
{
	json_t *out;
	char *txt;

	if (!sess_after(q, sess_key(q, row), json_integer_value(json_object_get(row, "id"))))
		return 0;
	out = row_cols(row, q->k->names, q->k->n_names);
	if (!out || (q->k->request_ids && json_object_set_new(out, "request_id", json_null()) < 0)) {
		json_decref(out);
		return -1;
	}
	txt = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	return txt ? found_add(&q->fl, json_integer_value(json_object_get(row, "id")), sess_key(q, row), txt) : -1;
}

/* A walked row: parsed if it is the session's, in the page (and, once the limit is kept, not later). */
static int sess_want(void *arg, const struct skim_row *r)
{
	struct sess_st *q = arg;
	int64_t key = q->k->by_seq ? r->seq : r->at_us;

	return r->conn_id == q->conn_id && sess_after(q, key, r->id) && !(q->full && key > q->last_key);
}

static int sess_row(void *arg, json_t *row)
{
	struct sess_st *q = arg;

	if (json_integer_value(json_object_get(row, "conn_id")) != q->conn_id)
		return 0;
	return sess_parsed(q, row);
}

static int sess_alone(void *arg, const char *json)
{
	struct sess_st *q = arg;
	json_t *o = json_loads(json, JSON_ALLOW_NUL, NULL);
	char *copy = strdup(json);
	int64_t id = json_integer_value(json_object_get(o, "id")), key = sess_key(q, o);

	json_decref(o);
	if (copy && !sess_after(q, key, id)) {
		free(copy);
		return 0;
	}
	return copy ? found_add(&q->fl, id, key, copy) : -1;
}

/* The request a statement went to review as (its newest), in each kept row's request_id. */
static int sess_requests(struct store_reader *r, struct sess_st *q)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(r->db, "SELECT id FROM requests WHERE stmt_id = ?1 ORDER BY id DESC LIMIT 1", -1,
			       &st, NULL) != SQLITE_OK)
		goto out;
	for (size_t i = 0; i < q->fl.n; i++) {
		struct found *f = &q->fl.v[i];
		json_t *o;
		char *txt;

		if (sqlite3_reset(st) != SQLITE_OK || sqlite3_bind_int64(st, 1, f->id) != SQLITE_OK)
			goto out;
		if (sqlite3_step(st) != SQLITE_ROW)
			continue;
		o = json_loads(f->json, JSON_ALLOW_NUL, NULL);
		if (!o || json_object_set_new(o, "request_id", json_integer(sqlite3_column_int64(st, 0))) < 0 ||
		    !(txt = json_dumps(o, JSON_COMPACT))) {
			json_decref(o);
			goto out;
		}
		json_decref(o);
		free(f->json);
		f->json = txt;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

static size_t page_limit(const struct store_page *pg)
{
	return pg && pg->limit && pg->limit < STORE_PAGE_MAX ? pg->limit : STORE_PAGE_MAX;
}

static int sess_rows(struct store_reader *r, const struct sess_kind *k, int64_t conn_id,
		     const struct store_page *pg, int (*cb)(void *arg, const char *json), void *arg)
{
	struct sess_st q = { .k = k, .conn_id = conn_id, .limit = page_limit(pg) };
	struct batch_walk walk = { sess_want, sess_row, &q };
	sqlite3_stmt *bst = NULL;
	int rc = -1, step;

	if (pg)
		q.pg = *pg;
	/* Its rows alone: SQL (request_id filled in below, for the rows kept). */
	if (rows(r, k->alone_sql, bind_id, &conn_id, sess_alone, &q, NULL) < 0)
		goto out;
	if (sqlite3_prepare_v2(r->db, "SELECT b.first_at_us, " BATCH_TEXT
			       " WHERE b.kind = ?2 AND b.conns LIKE '%,' || ?1 || ',%'"
			       " AND b.last_at_us >= max(coalesce((SELECT opened_us FROM connections WHERE id = ?1), 0), ?3)"
			       " ORDER BY b.last_at_us", -1, &bst, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(bst, 1, conn_id) != SQLITE_OK ||
	    sqlite3_bind_text(bst, 2, k->batch_kind, -1, SQLITE_STATIC) != SQLITE_OK ||
	    /* a page by time starts after a row's at_us: no batch that ended before it holds one */
	    sqlite3_bind_int64(bst, 3, q.pg.after && !k->by_seq ? q.pg.key : 0) != SQLITE_OK)
		goto out;
	while ((step = sqlite3_step(bst)) == SQLITE_ROW) {
		const char *txt = (const char *)sqlite3_column_text(bst, 2);
		size_t len = (size_t)sqlite3_column_bytes(bst, 2);

		/* By time: the limit is kept, and every later batch is later. */
		if (!k->by_seq && q.full && sqlite3_column_int64(bst, 0) > q.last_key)
			break;
		if (past_deadline(r) || batch_each(txt, len, sqlite3_column_int(bst, 1), &q.fl, &walk) < 0)
			goto out;
		if (q.fl.n >= 2 * q.limit)
			sess_trim(&q);
	}
	if (step != SQLITE_DONE && step != SQLITE_ROW)
		goto out;
	sess_trim(&q);
	if (k->request_ids && sess_requests(r, &q) < 0)
		goto out;
	rc = found_each(&q.fl, cb, arg);
out:
	if (rc < 0 && !read_cut(r))
		al_err("store: reading session %lld's %s failed: %s", (long long)conn_id, k->batch_kind,
		       sqlite3_errmsg(r->db));
	sqlite3_finalize(bst);
	found_free(&q.fl);
	return rc;
}

int store_conn_statements(struct store_reader *r, int64_t conn_id, const struct store_page *pg,
			  int (*cb)(void *arg, const char *json), void *arg)
{
	return sess_rows(r, &sess_stmts, conn_id, pg, cb, arg);
}

int store_conn_http(struct store_reader *r, int64_t conn_id, const struct store_page *pg,
		    int (*cb)(void *arg, const char *json), void *arg)
{
	return sess_rows(r, &sess_http, conn_id, pg, cb, arg);
}

int store_conn_exec(struct store_reader *r, int64_t conn_id, const struct store_page *pg,
		    int (*cb)(void *arg, const char *json), void *arg)
{
	size_t limit = page_limit(pg);
	struct store_rec_iter it;
	struct store_rec_msg m;
	sqlite3_stmt *st = NULL;
	int https = 0, rc = -1, got = 0, n = 0;

	/* An https session's recording is only ever its exec/attach stream (k8s_rec.c). */
	if (sqlite3_prepare_v2(r->db, "SELECT protocol = 'https' FROM connections WHERE id = ?1", -1, &st,
			       NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, conn_id) != SQLITE_OK)
		goto out;
	https = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
	if (!https) {
		rc = 0;
		goto out;
	}
	if (store_rec_open(r->db, conn_id, &it) < 0)
		goto out;
	while ((size_t)n < limit && (got = store_rec_next(&it, &m)) == 1) {
		json_t *o;
		char *txt;
		int c;

		if (pg && pg->after && m.seq <= pg->key)
			continue;
		o = json_pack("{s:I, s:I, s:s, s:s, s:o?}", "seq", (json_int_t)m.seq, "at_us",
				      (json_int_t)m.at_us, "dir", m.dir, "type", m.type, "data",
				      m.data ? store_json_text((const unsigned char *)m.data, m.len) : NULL);
		txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
		c = txt ? cb(arg, txt) : -1;

		json_decref(o);
		free(txt);
		n++;
		if (c != 0) {
			got = c < 0 ? -1 : 0;
			break;
		}
	}
	store_rec_close(&it);
	rc = got < 0 ? -1 : 0;
out:
	if (rc < 0 && !read_cut(r))
		al_err("store: reading recording %" PRId64 " failed: %s", conn_id, sqlite3_errmsg(r->db));
	sqlite3_finalize(st);
	return rc;
}

/* ---- metrics ------------------------------------------------------------------------------ */

static int count_cmp(const void *x, const void *y)
{
	return strcmp(((const struct stmt_count *)x)->decision, ((const struct stmt_count *)y)->decision);
}

/* Counted once, then kept up (store_review_added, _ended): a scan of every request at each
 * scrape stalled the loop about 0.1 s per 300k requests. */
int store_count_requests_by_state(struct store *s, int (*cb)(void *arg, const char *key, int64_t n),
				  void *arg)
{
	struct store_audit *a = store_audit_state(s);

	if (!a->rev_ok) {
		sqlite3_stmt *st = NULL;
		int r;

		free(a->rev);
		a->rev = NULL;
		a->n_rev = 0;
		if (sqlite3_prepare_v2(store_db(s), "SELECT state, count(*) FROM requests GROUP BY state", -1, &st,
				       NULL) != SQLITE_OK) {
			sqlite3_finalize(st);
			return -1;
		}
		while ((r = sqlite3_step(st)) == SQLITE_ROW) {
			const char *k = (const char *)sqlite3_column_text(st, 0);

			if (store_count_add(&a->rev, &a->n_rev, k ? k : "", sqlite3_column_int64(st, 1)) < 0)
				break;
		}
		sqlite3_finalize(st);
		if (r != SQLITE_DONE)
			return -1;
		a->rev_ok = 1;
	}
	if (a->n_rev > 1)
		qsort(a->rev, a->n_rev, sizeof(*a->rev), count_cmp);
	for (size_t i = 0; i < a->n_rev; i++)
		if (a->rev[i].n && cb(arg, a->rev[i].decision, a->rev[i].n) < 0)
			return -1;
	return 0;
}

static void lat_add(struct store_audit *a, double v)
{
	for (size_t i = 0; i < a->lat_n; i++)
		if (v <= a->lat_bounds[i])
			a->lat_counts[i]++;
	a->lat_total++;
	a->lat_sum += v;
}

void store_review_added(struct store *s)
{
	struct store_audit *a = store_audit_state(s);

	if (a->rev_ok && store_count_add(&a->rev, &a->n_rev, "pending", 1) < 0)
		a->rev_ok = 0;
}

void store_review_ended(struct store *s, int64_t id, const char *state)
{
	struct store_audit *a = store_audit_state(s);
	sqlite3_stmt *st = NULL;

	if (a->rev_ok && (store_count_add(&a->rev, &a->n_rev, "pending", -1) < 0 ||
			  store_count_add(&a->rev, &a->n_rev, state, 1) < 0))
		a->rev_ok = 0;
	/* Only human decisions: approved and denied (timeouts are not a reviewer's latency). */
	if (!a->lat_ok || (strcmp(state, "approved") && strcmp(state, "denied")))
		return;
	if (sqlite3_prepare_v2(store_db(s), "SELECT decided_us - created_us FROM requests WHERE id = ?1"
			       " AND decided_us IS NOT NULL", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 1, id) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		lat_add(a, (double)sqlite3_column_int64(st, 0) / 1e6);
	else
		a->lat_ok = 0;
	sqlite3_finalize(st);
}

void store_review_forget(struct store *s)
{
	struct store_audit *a = store_audit_state(s);

	a->rev_ok = 0;
	a->lat_ok = 0;
}

/*
 * Adds the statements written alone and in batches above the ids in mark (statement_rows,
 * command_batches: both are written in id order) to (*c, *n), and moves mark up to what it
 * read: 0, or -1 (a query failed, or no memory: what was added is not to be trusted).
 */
static int count_new(sqlite3 *db, struct stmt_count **c, size_t *n, int64_t mark[2])
{
	static const char *const sql[] = {
		"SELECT decision, count(*), max(id) FROM statement_rows WHERE id > ?1 GROUP BY decision",
		/* the batches' counts, not their commands (batches of schema 11 have none: those are read);
		 * +b.kind: the rows above the mark by rowid, not every batch of the kind by its index
		 * (which SQLite picked: a scrape read all the batches, 90 ms for 500k) */
		"SELECT j.key, sum(j.value), max(b.id) FROM command_batches b, json_each(b.decisions) j"
		" WHERE b.id > ?1 AND +b.kind = 'statements' AND b.decisions IS NOT NULL GROUP BY j.key"
		" UNION ALL SELECT json_extract(j.value, '$.decision'), count(*), max(b.id) FROM command_batches b,"
		" json_each(b.rows) j WHERE b.id > ?1 AND +b.kind = 'statements' AND b.decisions IS NULL GROUP BY 1",
	};
	int64_t upto[2];

	for (size_t q = 0; q < AL_ARRAY_LEN(sql); q++) {
		sqlite3_stmt *st = NULL;
		int r = SQLITE_ERROR;

		upto[q] = mark[q];
		if (sqlite3_prepare_v2(db, sql[q], -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_bind_int64(st, 1, mark[q]) == SQLITE_OK) {
			while ((r = sqlite3_step(st)) == SQLITE_ROW) {
				const char *k = (const char *)sqlite3_column_text(st, 0);

				if (store_count_add(c, n, k ? k : "", sqlite3_column_int64(st, 1)) < 0)
					break;
				if (sqlite3_column_int64(st, 2) > upto[q])
					upto[q] = sqlite3_column_int64(st, 2);
			}
		}
		sqlite3_finalize(st);
		if (r != SQLITE_DONE)
			return -1;
	}
	mark[0] = upto[0];
	mark[1] = upto[1];
	return 0;
}

/*
 * What the store held when the daemon started is counted once, by a thread of its own on a
 * read-only connection of its own (a consistent snapshot: WAL readers never block the
 * writer): a day of load is millions of batches, and reading them took seconds, which in
 * the event loop was seconds without traffic. Until that count is done, /metrics leaves the
 * statements out; from then on a scrape adds what was written above the snapshot's marks.
 */
static void *count_main(void *arg)
{
	struct store_audit *a = arg;
	struct stmt_count *c = NULL;
	size_t n = 0;
	int64_t mark[2] = { 0, 0 };
	sqlite3 *db = NULL;
	int ok = 0, stopped;

	if (sqlite3_open_v2(a->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK) {
		pthread_mutex_lock(&a->count_mu);
		a->count_db = a->count_stop ? NULL : db;
		pthread_mutex_unlock(&a->count_mu);
		ok = a->count_db && sqlite3_busy_timeout(db, 5000) == SQLITE_OK &&
		     sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK && count_new(db, &c, &n, mark) == 0;
		(void)sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	pthread_mutex_lock(&a->count_mu);
	a->count_db = NULL;
	if (ok) {
		a->init_counts = c;
		a->n_init_counts = n;
		a->init_mark[0] = mark[0];
		a->init_mark[1] = mark[1];
		c = NULL;
	}
	a->count_state = ok ? COUNT_READY : COUNT_FAILED;
	stopped = a->count_stop;
	pthread_mutex_unlock(&a->count_mu);
	if (!ok && !stopped)
		al_warn("store: counting the statements for /metrics failed: %s", db ? sqlite3_errmsg(db) : "out of memory");
	free(c);
	sqlite3_close(db);
	return NULL;
}

void store_count_start(struct store *s)
{
	struct store_audit *a = store_audit_state(s);

	if (a->count_thread || a->counting)
		return;
	if (pthread_mutex_init(&a->count_mu, NULL) != 0)
		return;
	a->count_state = COUNT_RUNNING;
	if (pthread_create(&a->count_thr, NULL, count_main, a) != 0) {
		pthread_mutex_destroy(&a->count_mu);
		al_warn("store: no thread to count the statements for /metrics");
		return;
	}
	a->count_thread = 1;
}

/* Ends the count's thread (interrupted if it is still reading; joined when done) and forgets
 * what it did not hand over. */
void store_count_stop(struct store *s)
{
	struct store_audit *a = store_audit_state(s);

	if (!a->count_thread)
		return;
	pthread_mutex_lock(&a->count_mu);
	a->count_stop = 1;
	if (a->count_db)
		sqlite3_interrupt(a->count_db);
	pthread_mutex_unlock(&a->count_mu);
	pthread_join(a->count_thr, NULL);
	pthread_mutex_destroy(&a->count_mu);
	free(a->init_counts);
	a->init_counts = NULL;
	a->n_init_counts = 0;
	a->count_thread = 0;
	a->count_stop = 0;
}

int store_count_statements_by_decision(struct store *s,
				       int (*cb)(void *arg, const char *key, int64_t n), void *arg)
{
	struct store_audit *a = store_audit_state(s);
	int64_t mark[2];
	int state;

	if (!a->counting) {
		store_count_start(s);
		if (!a->count_thread)
			return -1;
		pthread_mutex_lock(&a->count_mu);
		state = a->count_state;
		pthread_mutex_unlock(&a->count_mu);
		if (state == COUNT_RUNNING)
			return 1;
		if (state == COUNT_FAILED) {
			store_count_stop(s);    /* the next call counts again */
			return -1;
		}
		/* the snapshot's count (the thread is done with it): from here on, this thread's */
		a->counts = a->init_counts;
		a->n_counts = a->n_init_counts;
		a->counted_row = a->init_mark[0];
		a->counted_batch = a->init_mark[1];
		a->init_counts = NULL;
		a->counting = 1;
		store_count_stop(s);
	}
	store_held_flush(s);
	mark[0] = a->counted_row;
	mark[1] = a->counted_batch;
	if (count_new(store_db(s), &a->counts, &a->n_counts, mark) < 0) {
		/* counted in part: start over, from nothing, at the next call */
		free(a->counts);
		a->counts = NULL;
		a->n_counts = 0;
		a->counting = 0;
		return -1;
	}
	a->counted_row = mark[0];
	a->counted_batch = mark[1];
	qsort(a->counts, a->n_counts, sizeof(*a->counts), count_cmp);
	for (size_t i = 0; i < a->n_counts; i++)
		if (cb(arg, a->counts[i].decision, a->counts[i].n) < 0)
			return -1;
	return 0;
}

int store_decision_latency(struct store *s, const double *bounds_s, size_t n, uint64_t *counts,
			   uint64_t *total, double *sum_s)
{
	struct store_audit *a = store_audit_state(s);

	if (!a->lat_ok || a->lat_n != n || memcmp(a->lat_bounds, bounds_s, n * sizeof(*bounds_s)) != 0) {
		sqlite3_stmt *st = NULL;
		uint64_t *c = calloc(n ? n : 1, sizeof(*c));
		double *b = malloc((n ? n : 1) * sizeof(*b));
		int r = SQLITE_ERROR;

		if (!c || !b) {
			free(c);
			free(b);
			return -1;
		}
		a->lat_ok = 0;
		free(a->lat_counts);
		free(a->lat_bounds);
		a->lat_counts = c;
		a->lat_bounds = memcpy(b, bounds_s, n * sizeof(*b));
		a->lat_n = n;
		a->lat_total = 0;
		a->lat_sum = 0;
		if (sqlite3_prepare_v2(store_db(s), "SELECT decided_us - created_us FROM requests WHERE decided_us"
				       " IS NOT NULL AND state IN ('approved', 'denied')", -1, &st, NULL) == SQLITE_OK)
			while ((r = sqlite3_step(st)) == SQLITE_ROW)
				lat_add(a, (double)sqlite3_column_int64(st, 0) / 1e6);
		sqlite3_finalize(st);
		if (r != SQLITE_DONE)
			return -1;
		a->lat_ok = 1;
	}
	memcpy(counts, a->lat_counts, n * sizeof(*counts));
	*total = a->lat_total;
	*sum_s = a->lat_sum;
	return 0;
}
