/* Internal interface between the store's files (not for other modules). */
#ifndef AIRLOCK_STORE_INT_H
#define AIRLOCK_STORE_INT_H

#include <jansson.h>
#include <sqlite3.h>
#include <airlock/store.h>

sqlite3 *store_db(struct store *s);
/* A review request was written: added (state pending), or ended (pending -> state, decided);
 * forget: the requests changed otherwise (rotation), count them again. */
void store_review_added(struct store *s);
void store_review_ended(struct store *s, int64_t id, const char *state);
void store_review_forget(struct store *s);
/* A connection row was ended at closed_us (recordings retention, rec.c). */
void store_rec_ended(struct store *s, int64_t closed_us);
/* store_totals counts again at its next call (connection rows went, or writes were undone). */
void store_totals_forget(struct store *s);
sqlite3 *store_reader_db(struct store_reader *r);
/* Deletes user's console tokens within the caller's transaction (console.c): 0 with *n (if
 * not NULL) how many, -1 error. A user's tokens go with the user. */
int store_user_tokens_del(sqlite3 *db, const char *user, int *n);

/*
 * Commands in batches. The statements and HTTP requests a group commit writes with their
 * outcomes are one row of command_batches (kind 'statements' or 'http_requests'), not a row
 * each: a JSON array of objects keyed by the columns of statement_rows or http_request_rows,
 * and the per-row costs of SQLite (a b-tree insert per index, a record, their WAL pages) are
 * paid once per batch. The array is written once, in the batch's 'commands' audit record
 * (its body's "rows"; the row's audit_seq names the record, and its rows column is '');
 * batches written before schema 13 hold it in rows too (audit_seq NULL). Rotation copies
 * the arrays of the batches it keeps into rows, as it empties the chain. A command
 * written on its own (no batch open, still waiting for its outcome, parked for review) is a
 * row of statement_rows or http_request_rows, where its outcome can update it. The views
 * statements and http_requests show both as one table. conns lists the batch's connection
 * ids as ",3,7," for a cheap filter by session; first_/last_id and _at_us bound its rows.
 *
 * STMT_BATCHED(where) / HTTP_BATCHED(where) select the batched rows with the view's columns,
 * b the batch and j the row (json_each); where adds conditions (" AND ..."), or is "".
 * Migration 13 made the views from these (11 from their _V11 forms): a change to them needs a
 * migration that remakes the views (a shipped migration's text is never edited).
 */
#define J_(c) "json_extract(j.value, '$." c "') AS " c
/* Where a batch's array is: its record's body (schema 13 on), or its rows column. */
#define BATCH_ROWS_FROM "command_batches b LEFT JOIN audit a ON a.seq = b.audit_seq," \
	" json_each(CASE WHEN b.audit_seq IS NULL THEN b.rows ELSE a.body END," \
	" CASE WHEN b.audit_seq IS NULL THEN '$' ELSE '$.rows' END) j"
#define STMT_COLS "id, conn_id, seq, at_us, protocol, text, kind, fingerprint, relations, unbounded_write," \
		  " params, decision, rule, tag, sqlstate, error, rows, duration_us"
/* The view's columns of a batched row j (STMT_J: statements, HTTP_J: HTTP requests). */
#define STMT_J                                                                                      \
	"SELECT " J_("id") ", " J_("conn_id") ", " J_("seq") ", " J_("at_us") ", " J_("protocol") ", " \
	J_("text") ", " J_("kind") ", " J_("fingerprint") ", " J_("relations") ", "                  \
	J_("unbounded_write") ", " J_("params") ", " J_("decision") ", " J_("rule") ", " J_("tag") \
	", " J_("sqlstate") ", " J_("error") ", " J_("rows") ", " J_("duration_us")
#define HTTP_COLS "id, conn_id, seq, at_us, method, host, path, query, kind, headers, body_len, body_sha256," \
		  " request_sha256, k8s, fingerprint, decision, rule, request_id, status, bytes_up, bytes_down," \
		  " duration_us, error"
#define HTTP_J                                                                                       \
	"SELECT " J_("id") ", " J_("conn_id") ", " J_("seq") ", " J_("at_us") ", " J_("method") ", "     \
	J_("host") ", " J_("path") ", " J_("query") ", " J_("kind") ", " J_("headers") ", "            \
	J_("body_len") ", " J_("body_sha256") ", " J_("request_sha256") ", " J_("k8s") ", "            \
	J_("fingerprint") ", " J_("decision") ", " J_("rule") ", " J_("request_id") ", " J_("status") \
	", " J_("bytes_up") ", " J_("bytes_down") ", " J_("duration_us") ", " J_("error")
#define STMT_BATCHED(where) STMT_J " FROM " BATCH_ROWS_FROM " WHERE b.kind = 'statements'" where
#define HTTP_BATCHED(where) HTTP_J " FROM " BATCH_ROWS_FROM " WHERE b.kind = 'http_requests'" where
/* Migration 11's forms (the views it made, before 13 remade them with the above). */
#define STMT_BATCHED_V11(where) STMT_J " FROM command_batches b, json_each(b.rows) j WHERE b.kind = 'statements'" where
#define HTTP_BATCHED_V11(where) HTTP_J " FROM command_batches b, json_each(b.rows) j WHERE b.kind = 'http_requests'" \
	where
/*
 * The batches that can hold the ?1 newest rows batched of a kind, without reading the others'
 * rows. Walking the batches newest last_id first, the shortest run of them that counts ?1 rows
 * (their decisions' counts; a batch without them, from schema 11, counts as the one row it has
 * at least) holds ?1 rows that are all at least L, its lowest first_id: so the ?1 newest are
 * at least L too, and a batch holding one of them has a last_id of at least L. That run is
 * within the ?1 newest batches (each has a row). Usually it is L's batch and the ones after it:
 * a row is carried over one commit at most.
 */
#define BATCHED_NEWEST(kind) " AND b.last_id >= coalesce((SELECT min(first_id) FROM (SELECT first_id," \
	" sum(n) OVER (ORDER BY last_id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before" \
	" FROM (SELECT first_id, last_id, coalesce((SELECT sum(value) FROM json_each(decisions)), 1) AS n" \
	" FROM command_batches WHERE kind = '" kind "' ORDER BY last_id DESC LIMIT ?1))" \
	" WHERE coalesce(before, 0) < ?1), 0)"
/* The batched rows of one connection (?N its id): its batches, then its rows in them. */
#define BATCHED_OF_CONN(n) " AND b.conns LIKE '%,' || ?" n " || ',%'" \
	" AND b.last_at_us >= coalesce((SELECT opened_us FROM connections WHERE id = ?" n "), 0)" \
	" AND json_extract(j.value, '$.conn_id') = ?" n
/* Pending requests of a daemon that died are aborted: nothing will run them. */
int store_review_recover(struct store *s);
/* Runs fn in a transaction that is on disk (the WAL synced, as synchronous=FULL does) before
 * this returns 0. An open group-commit batch commits with it, in the same transaction: its
 * rows commit even when fn fails (fn's changes are undone alone), and the batch is closed. */
int store_durable(struct store *s, int (*fn)(sqlite3 *db, void *arg), void *arg, const char *what);
/* The JSON of the current row (column names as keys); free() it. */
char *store_row_json(sqlite3_stmt *st);
/* Column i of the current row as the listings show it: null, an integer, or text (not UTF-8
 * bytes shown as U+FFFD). */
json_t *store_json_col(sqlite3_stmt *st, int i);
/* Steps st, handing each row to cb as JSON (cb: 0 go on, >0 stop, <0 abort).
 * 0 when done or stopped, -1 on a step error or abort, -2 out of memory.
 * Counts the rows handed over in *n if n is not NULL. */
int store_each_row(sqlite3_stmt *st, int (*cb)(void *arg, const char *json), void *arg, int *n);

/* ---- audit chain (audit.c) ----------------------------------------------------------------
 * Every row change of the store's tables (but the audit tables and recordings) is caught by
 * SQLite's pre-update hook and queued; store_audit_flush appends the queued records to the
 * chain inside the transaction that made the change, so a row and its audit record commit or
 * vanish together.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>

struct audit_table;
struct audit_rec;

/* A count by name (decisions: allow, deny, review, ... all short): store_count_add adds v
 * to name's count in the list (*c, *n), a new name at its end; -1 without memory. */
struct stmt_count { char decision[32]; int64_t n; };
int store_count_add(struct stmt_count **c, size_t *n, const char *decision, int64_t v);

struct store_audit {
	int64_t seq;                    /* the chain's head */
	char hash[65];
	int stale;                      /* a rollback happened: reload the head before appending */
	struct audit_rec *pending, **pending_tail;
	size_t n_pending;
	struct al_buf buf;              /* the body the hook is writing (reused) */
	EVP_MD *sha256;                 /* fetched once: an implicit fetch per record costs more than the hash */
	EVP_MD_CTX *md;
	struct audit_table *tables;     /* column names, for the hook */
	size_t n_tables;
	const char *last_table_name;    /* the hook's last table (SQLite's pointer) */
	const struct audit_table *last_table;
	sqlite3_stmt *ins, *cp_ins;
	EVP_PKEY *key;                  /* NULL: checkpoints are not signed (no key) */
	int64_t cp_seq;                 /* the last checkpoint */
	int64_t cp_mono_us;
	int lost;                       /* the hook could not queue a change: fail that write */
	uint64_t appended;              /* records appended since open */
	char path[4096];                /* the store file */
	/* recordings and the size cap (rec.c) */
	sqlite3_stmt *rec_ins;
	struct rec_chunk *chunks;       /* recordings not written yet, a chunk per session */
	size_t n_chunks, cap_chunks;
	size_t rec_pending;             /* bytes in the chunks */
	/* statements counted by decision (console.c): what is written up to these ids */
	struct stmt_count *counts;
	size_t n_counts;
	int64_t counted_row, counted_batch;
	int counting;                   /* counts and marks are in use (the first count is done) */
	/* the first count, of what the store held, in a thread (console.c): count_thread says
	 * one runs or is done and not joined yet; count_mu guards count_state, count_db,
	 * count_stop and the init_ results while it is */
	int count_thread;
	enum { COUNT_RUNNING, COUNT_READY, COUNT_FAILED } count_state;
	pthread_t count_thr;
	pthread_mutex_t count_mu;
	sqlite3 *count_db;
	int count_stop;
	struct stmt_count *init_counts;
	size_t n_init_counts;
	int64_t init_mark[2];
	uint32_t *chunk_slot;           /* conn_id -> chunk index + 1 (open addressing) */
	size_t n_slots;
	struct store_limits limits;
	int full;                       /* a write met SQLITE_FULL (until the disk has room) */
	int capped;                     /* used bytes at limits.max_size */
	int muted;                      /* rotation's deletions are no records */
	int64_t size_mono_us, retention_mono_us;
	/* recordings retention (rec.c): a pass expires the sessions that ended before ret_cut, in
	 * (closed_us, id) order, a slice a tick; those up to ret_at_us/ret_at_id are done */
	int64_t ret_cut, ret_at_us, ret_at_id, ret_msgs;
	uint64_t used_bytes;
	uint64_t rotated_floor;         /* bytes in use right after the last rotation */
	/* /metrics' review requests by state and the reviewers' decision latency (console.c):
	 * counted once (a scan of every request), then kept up by the request writes (review.c);
	 * rev_ok / lat_ok 0: count again at the next call. */
	int rev_ok, lat_ok;
	struct stmt_count *rev;
	size_t n_rev;
	double *lat_bounds;             /* the histogram's bounds (a copy of the caller's), lat_n */
	size_t lat_n;
	uint64_t *lat_counts, lat_total;
	double lat_sum;
};

struct store_audit *store_audit_state(struct store *s);
/* After migrations: column cache, hooks, head, signing key beside the store file. */
int store_audit_open(struct store *s, const char *store_path);
void store_audit_close(struct store *s);
/* Appends the queued records (in the caller's transaction). */
int store_audit_flush(struct store *s);
/* A batch row's own record (command_batches.audit_seq): store_audit_next_seq appends the
 * queued records and says the seq the next record gets (-1: failed); the row is inserted
 * naming it (the hook leaves such a row to its writer), then store_audit_batch appends the
 * 'commands' record with that seq and the batch's body (NULL: no memory for it). A failure
 * fails the commit: a row must never name a seq that another record gets. */
int64_t store_audit_next_seq(struct store *s);
int store_audit_batch(struct store *s, int64_t seq, int64_t batch_id, const char *body, size_t len);
/* console.c: stops the first count of the statements, if it runs (at close). */
void store_count_stop(struct store *s);
/* Forgets queued records of a change that was rolled back. */
void store_audit_discard(struct store *s);
/* Statements other files of the store prepare once, on first use (finalized at close). */
enum store_cached {
	STORE_C_HTTP_ADD, STORE_C_HTTP_OUTCOME, STORE_C_CONN_RESOURCE, STORE_C_BATCH_ADD,
	/* review.c: the statements of parking a request and deciding it */
	STORE_C_REQ_ADD, STORE_C_REQ_END, STORE_C_APPR_ADD, STORE_C_GRANT_ADD,
	STORE_C_USER_BY_UID, STORE_C_USER_BY_NAME,
	STORE_C_BEGIN, STORE_C_COMMIT,  /* a group-commit batch's */
	STORE_C__COUNT
};
sqlite3_stmt *store_cached(struct store *s, enum store_cached which, const char *sql);
/* Writes the statements and HTTP requests the open batch holds back (before anything reads them). */
void store_held_flush(struct store *s);
/* rec.c: writes the recording chunks that are due (at a commit), or all of them (before
 * recordings are read, and at close); marks a session's chunk due when the session ends;
 * frees them at close. */
void store_rec_flush(struct store *s);
void store_rec_flush_all(struct store *s);
void store_rec_end(struct store *s, int64_t conn_id);
void store_rec_free(struct store *s);
/* http.c: an http_requests row with the given id (and its outcome, if known); its outcome later. */
int store_http_write(struct store *s, int64_t id, const struct store_http *h, const struct store_http_outcome *o);
int store_http_update(struct store *s, int64_t id, const struct store_http_outcome *o);
/* An HTTP request's row once its outcome o (or NULL) is known: the outcome's decision and
 * review request replace the request's, when it has them. */
static inline const char *store_http_decision(const struct store_http *h, const struct store_http_outcome *o)
{
	return o && o->decision ? o->decision : h->decision;
}
static inline int64_t store_http_request_id(const struct store_http *h, const struct store_http_outcome *o)
{
	return o && o->request_id > 0 ? o->request_id : h->request_id;
}
/* store.c's write step: the row and its audit records commit together (see store.c). */
int store_write_step(struct store *s, sqlite3_stmt *st);
/* Rows the last store_write_step changed (not counting its audit records). */
int store_last_changes(struct store *s);
/* How many records are queued, and dropping those queued after such a mark (a write that failed). */
size_t store_audit_mark(struct store *s);
void store_audit_truncate(struct store *s, size_t mark);
/* Appends one record; body is stolen. */
int store_audit_append(struct store *s, const char *kind, int64_t ref_id, json_t *body);
/* A JSON string of column text that may not be UTF-8 (bad bytes become U+FFFD). */
json_t *store_json_text(const unsigned char *v, size_t n);

#endif
