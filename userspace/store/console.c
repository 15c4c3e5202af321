/* Store queries for the review console: API tokens, filtered audit listings, session replay, metrics counts. */
#include "store_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
	return v && *v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* Prepares sql, lets bind fill it, hands each row to cb as JSON (cb: 0 on, >0 stop, <0 abort). */
static int rows(struct store *s, const char *sql, int (*bind)(sqlite3_stmt *st, const void *arg),
		const void *barg, int (*cb)(void *arg, const char *json), void *arg, int *n_rows)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, n = 0;

	store_held_flush(s);
	if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	if (bind && bind(st, barg) != 0)
		goto out;
	rc = store_each_row(st, cb, arg, &n) < 0 ? -1 : 0;
out:
	if (rc < 0)
		al_err("store: console query failed: %s", sqlite3_errmsg(store_db(s)));
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

/* An agent filter matches a cgroup path subtree or an exe path exactly. */
#define AGENT_MATCH(c) "(?1 IS NULL OR " c ".cgroup_path = ?1 OR " c ".cgroup_path LIKE ?1 || '/%' " \
		       "OR " c ".exe = ?1)"

int store_find_connections(struct store *s, const struct store_find_filter *f,
			    int (*cb)(void *arg, const char *json), void *arg)
{
	return rows(s, "SELECT c.* FROM connections c WHERE " AGENT_MATCH("c")
		    " AND (?2 IS NULL OR c.resource = ?2) AND (?3 IS NULL OR c.reason = ?3)"
		    " AND c.opened_us >= ?4 ORDER BY c.id DESC LIMIT ?5", bind_filter, f, cb, arg, NULL);
}

int store_find_statements(struct store *s, const struct store_find_filter *f,
			   int (*cb)(void *arg, const char *json), void *arg)
{
	return rows(s, "SELECT st.*, c.resource, c.cgroup_path, c.exe, c.pid, c.uid FROM (SELECT " STMT_COLS
		    " FROM statement_rows WHERE at_us >= ?4 UNION ALL " STMT_BATCHED(" AND b.last_at_us >= ?4") ") st"
		    " LEFT JOIN connections c ON c.id = st.conn_id WHERE " AGENT_MATCH("c")
		    " AND (?2 IS NULL OR c.resource = ?2) AND (?3 IS NULL OR st.decision = ?3)"
		    " AND st.at_us >= ?4 ORDER BY st.id DESC LIMIT ?5", bind_filter, f, cb, arg, NULL);
}

int store_find_requests(struct store *s, const struct store_find_filter *f,
			 int (*cb)(void *arg, const char *json), void *arg)
{
	return rows(s, "SELECT r.* FROM requests r WHERE " AGENT_MATCH("r")
		    " AND (?2 IS NULL OR r.resource = ?2) AND (?3 IS NULL OR r.state = ?3)"
		    " AND r.created_us >= ?4 ORDER BY r.id DESC LIMIT ?5", bind_filter, f, cb, arg, NULL);
}

static int bind_id(sqlite3_stmt *st, const void *arg)
{
	return sqlite3_bind_int64(st, 1, *(const int64_t *)arg);
}

int store_conn_get(struct store *s, int64_t id, int (*cb)(void *arg, const char *json), void *arg)
{
	int n = 0;

	if (rows(s, "SELECT * FROM connections WHERE id = ?1", bind_id, &id, cb, arg, &n) < 0)
		return -1;
	return n ? 0 : 1;
}

int store_conn_statements(struct store *s, int64_t conn_id,
			  int (*cb)(void *arg, const char *json), void *arg)
{
	return rows(s, "SELECT st.*, (SELECT r.id FROM requests r WHERE r.stmt_id = st.id ORDER BY r.id DESC"
		    " LIMIT 1) AS request_id FROM (SELECT " STMT_COLS " FROM statement_rows WHERE conn_id = ?1 UNION ALL "
		    STMT_BATCHED(BATCHED_OF_CONN("1")) ") st ORDER BY st.at_us, st.id"
		    " LIMIT 100000", bind_id, &conn_id, cb, arg, NULL);
}

int store_conn_http(struct store *s, int64_t conn_id, int (*cb)(void *arg, const char *json), void *arg)
{
	char *sql = NULL;
	int rc;

	if (asprintf(&sql, "SELECT * FROM (%s) ORDER BY seq, id LIMIT 100000", store_conn_http_sql()) < 0)
		return -1;
	rc = rows(s, sql, bind_id, &conn_id, cb, arg, NULL);
	free(sql);
	return rc;
}

int store_conn_exec(struct store *s, int64_t conn_id, int (*cb)(void *arg, const char *json), void *arg)
{
	struct store_rec_iter it;
	struct store_rec_msg m;
	sqlite3_stmt *st = NULL;
	int https = 0, rc = -1, r = 0, n = 0;

	/* An https session's recording is only ever its exec/attach stream (k8s_rec.c). */
	store_held_flush(s);
	store_rec_flush_all(s);
	if (sqlite3_prepare_v2(store_db(s), "SELECT protocol = 'https' FROM connections WHERE id = ?1", -1, &st,
			       NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, conn_id) != SQLITE_OK)
		goto out;
	https = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
	if (!https) {
		rc = 0;
		goto out;
	}
	if (store_rec_open(store_db(s), conn_id, &it) < 0)
		goto out;
	while (n < 100000 && (r = store_rec_next(&it, &m)) == 1) {
		json_t *o = json_pack("{s:I, s:I, s:s, s:s, s:o?}", "seq", (json_int_t)m.seq, "at_us",
				      (json_int_t)m.at_us, "dir", m.dir, "type", m.type, "data",
				      m.data ? store_json_text((const unsigned char *)m.data, m.len) : NULL);
		char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
		int c = txt ? cb(arg, txt) : -1;

		json_decref(o);
		free(txt);
		n++;
		if (c != 0) {
			r = c < 0 ? -1 : 0;
			break;
		}
	}
	store_rec_close(&it);
	rc = r < 0 ? -1 : 0;
out:
	if (rc < 0)
		al_err("store: reading recording %" PRId64 " failed: %s", conn_id, sqlite3_errmsg(store_db(s)));
	sqlite3_finalize(st);
	return rc;
}

/* ---- metrics ------------------------------------------------------------------------------ */

static int count_by(struct store *s, const char *sql, int (*cb)(void *arg, const char *key, int64_t n),
		    void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, r;

	if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);

		if (cb(arg, k ? k : "", sqlite3_column_int64(st, 1)) < 0)
			goto out;
	}
	rc = r == SQLITE_DONE ? 0 : -1;
out:
	sqlite3_finalize(st);
	return rc;
}

int store_count_requests_by_state(struct store *s, int (*cb)(void *arg, const char *key, int64_t n),
				  void *arg)
{
	return count_by(s, "SELECT state, count(*) FROM requests GROUP BY state ORDER BY state", cb, arg);
}

static int count_cmp(const void *x, const void *y)
{
	return strcmp(((const struct stmt_count *)x)->decision, ((const struct stmt_count *)y)->decision);
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
	sqlite3_stmt *st = NULL;
	int rc = -1, r;

	memset(counts, 0, n * sizeof(*counts));
	*total = 0;
	*sum_s = 0;
	/* Only human decisions: approved and denied (timeouts are not a reviewer's latency). */
	if (sqlite3_prepare_v2(store_db(s), "SELECT decided_us - created_us FROM requests WHERE decided_us"
			       " IS NOT NULL AND state IN ('approved', 'denied')", -1, &st, NULL) != SQLITE_OK)
		goto out;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		double v = (double)sqlite3_column_int64(st, 0) / 1e6;

		for (size_t i = 0; i < n; i++)
			if (v <= bounds_s[i])
				counts[i]++;
		(*total)++;
		*sum_s += v;
	}
	rc = r == SQLITE_DONE ? 0 : -1;
out:
	sqlite3_finalize(st);
	return rc;
}
