/* The audit of HTTP requests: one http_requests row per request of an https resource (batched, see store_int.h), then its outcome; the listing `policy test` replays; the resource a server name chose. */
#include "store_int.h"

#include <stdlib.h>

/*
 * Why a table of its own rather than `statements` with protocol 'http': an
 * HTTP request has a method, host, path, status code and byte counts each
 * way, which responders filter on; a statement has relations, rows and a
 * SQLSTATE. Sharing one table would leave half the columns meaningless for
 * each protocol and make queries guess. requests.stmt_id names the row of
 * the command's own table (statements for postgres, http_requests for http).
 */

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
	return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

static int bind_int_or_null(sqlite3_stmt *st, int i, int64_t v, int known)
{
	return known ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i);
}

int store_http_write(struct store *s, int64_t id, const struct store_http *h, const struct store_http_outcome *o)
{
	static const char sql[] =
		"INSERT INTO http_request_rows (conn_id, seq, at_us, method, host, path, query, kind, headers,"
		" body_len, body_sha256, request_sha256, k8s, fingerprint, decision, rule, request_id,"
		" status, bytes_up, bytes_down, duration_us, error, id)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
		" ?18, ?19, ?20, ?21, ?22, ?23)";
	const char *decision = store_http_decision(h, o);
	int64_t request_id = store_http_request_id(h, o);
	sqlite3_stmt *st = store_cached(s, STORE_C_HTTP_ADD, sql);
	int rc = -1;

	if (!st)
		goto out;
	if (bind_int_or_null(st, 1, h->conn_id, h->conn_id > 0) ||
	    sqlite3_bind_int64(st, 2, h->seq) || sqlite3_bind_int64(st, 3, h->at_us) ||
	    bind_text(st, 4, h->method) || bind_text(st, 5, h->host) || bind_text(st, 6, h->path) ||
	    bind_text(st, 7, h->query) || bind_text(st, 8, h->kind) || bind_text(st, 9, h->headers_json) ||
	    bind_int_or_null(st, 10, h->body_len, h->body_len >= 0) ||
	    bind_text(st, 11, h->body_sha256) || bind_text(st, 12, h->request_sha256) ||
	    bind_text(st, 13, h->k8s_json) || bind_text(st, 14, h->fingerprint) ||
	    bind_text(st, 15, decision) || bind_text(st, 16, h->rule) ||
	    bind_int_or_null(st, 17, request_id, request_id > 0) ||
	    bind_int_or_null(st, 18, o ? o->status : 0, o && o->status) ||
	    bind_int_or_null(st, 19, o ? (int64_t)o->bytes_up : 0, o != NULL) ||
	    bind_int_or_null(st, 20, o ? (int64_t)o->bytes_down : 0, o != NULL) ||
	    bind_int_or_null(st, 21, o ? o->duration_us : 0, o != NULL) ||
	    bind_text(st, 22, o ? o->error : NULL) || sqlite3_bind_int64(st, 23, id))
		goto out;
	rc = store_write_step(s, st);
out:
	if (rc < 0)
		al_err("store: recording an HTTP request: %s", sqlite3_errmsg(store_db(s)));
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	return rc;
}

int store_http_update(struct store *s, int64_t id, const struct store_http_outcome *o)
{
	static const char sql[] =
		"UPDATE http_request_rows SET status = ?2, bytes_up = ?3, bytes_down = ?4, duration_us = ?5,"
		" decision = coalesce(?6, decision), request_id = coalesce(?7, request_id),"
		" error = ?8 WHERE id = ?1";
	sqlite3_stmt *st = store_cached(s, STORE_C_HTTP_OUTCOME, sql);
	int rc = -1;

	if (!st)
		goto out;
	if (sqlite3_bind_int64(st, 1, id) || bind_int_or_null(st, 2, o->status, o->status) ||
	    sqlite3_bind_int64(st, 3, (sqlite3_int64)o->bytes_up) ||
	    sqlite3_bind_int64(st, 4, (sqlite3_int64)o->bytes_down) ||
	    sqlite3_bind_int64(st, 5, o->duration_us) || bind_text(st, 6, o->decision) ||
	    bind_int_or_null(st, 7, o->request_id, o->request_id > 0) || bind_text(st, 8, o->error))
		goto out;
	if (store_write_step(s, st) == 0)
		rc = store_last_changes(s) == 1 ? 0 : -1;
out:
	if (rc < 0)
		al_err("store: recording an HTTP outcome: %s", sqlite3_errmsg(store_db(s)));
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	return rc;
}

const char *store_conn_http_sql(void)
{
	return "SELECT " HTTP_COLS " FROM http_request_rows WHERE conn_id = ?1 UNION ALL "
	       HTTP_BATCHED(BATCHED_OF_CONN("1"));
}

int store_http_list(struct store *s, unsigned int limit, int (*cb)(void *arg, const char *json), void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, step;

	store_held_flush(s);
	if (sqlite3_prepare_v2(store_db(s), "SELECT * FROM (SELECT " HTTP_COLS " FROM http_request_rows ORDER BY id DESC"
			       " LIMIT ?1) UNION ALL " HTTP_BATCHED(BATCHED_NEWEST("http_requests")) " ORDER BY id DESC LIMIT ?1",
			       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, limit) != SQLITE_OK)
		goto out;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		char *json = store_row_json(st);
		int r;

		if (!json)
			goto out;
		r = cb(arg, json);
		free(json);
		if (r < 0)
			goto out;
		if (r > 0)
			break;
	}
	rc = step == SQLITE_ROW || step == SQLITE_DONE ? 0 : -1;
out:
	sqlite3_finalize(st);
	return rc;
}

int store_conn_resource(struct store *s, int64_t conn_id, const char *resource, const char *protocol)
{
	sqlite3_stmt *st = store_cached(s, STORE_C_CONN_RESOURCE,
					"UPDATE connections SET resource = ?2, protocol = ?3 WHERE id = ?1");
	int rc = -1;

	if (!st || sqlite3_bind_int64(st, 1, conn_id) || bind_text(st, 2, resource) || bind_text(st, 3, protocol))
		goto out;
	if (store_write_step(s, st) == 0)
		rc = store_last_changes(s) == 1 ? 0 : -1;
out:
	if (rc < 0)
		al_err("store: naming the resource of connection %lld: %s", (long long)conn_id,
		       sqlite3_errmsg(store_db(s)));
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	return rc;
}
