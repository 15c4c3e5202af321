/* Session recordings, the store's size cap (refuse or rotate to an archive), retention and timed checkpoints. */
#include "store_int.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <time.h>

#define SIZE_CHECK_US       (200 * 1000)
#define RETENTION_EVERY_US  (60ll * 1000 * 1000)
#define DISK_ROOM           (16u * 1024 * 1024)  /* free bytes that end a disk-full stop */
#define DISK_LOW            (8u * 1024 * 1024)   /* free bytes under which one begins */

/*
 * Recordings are written in chunks: what one session records is gathered in
 * memory and becomes one row (recordings: conn_id, seq and at_us of its first
 * message, n messages, data), not a row per message: a PostgreSQL statement's
 * reply is several messages, and a row each cost more than relaying them. A
 * chunk's data is its messages one after the other, each
 *     "<seq> <at_us> <dir> <type> <len>\n" and then len bytes (len -1: no data)
 * store_rec_next reads them back in order.
 *
 * A chunk outlives the group commit that opened it: it is written at the first
 * commit after it holds REC_CHUNK_BYTES, is REC_HOLD_US old, or its session
 * has ended (store_rec_end), or when a reader asks (store_rec_flush_all).
 * A row per session per commit (each commit_interval under load) was half of what the
 * store spent on a pgbench statement, and most of it was the b-tree pages each
 * small row dirtied, not its bytes. So a kill -9 can lose the last REC_HOLD_US
 * (plus a store tick) of a live session's recording, where the statements and
 * their outcomes lose at most a commit_interval; a session that ended has its
 * recording on disk by the commit after its end, as before.
 */
#define REC_HOLD_US      (200 * 1000)
#define REC_CHUNK_BYTES  (64 * 1024)
#define REC_PENDING_MAX  (8u * 1024 * 1024)  /* all sessions' chunks: over it, all are written */

struct rec_chunk {
	int64_t conn_id, seq, at_us;
	int64_t n;
	int64_t born_mono_us;           /* when the chunk was opened (the age that makes it due) */
	int due;                        /* its session ended: written at the next commit */
	struct al_buf b;
};

static int chunk_write(struct store *s, const struct rec_chunk *c)
{
	struct store_audit *a = store_audit_state(s);
	sqlite3_stmt *st = a->rec_ins;
	int rc = -1, r;

	if (c->b.oom) {
		al_err("store: recording session %" PRId64 ": out of memory", c->conn_id);
		return -1;
	}
	if (sqlite3_bind_int64(st, 1, c->conn_id) != SQLITE_OK || sqlite3_bind_int64(st, 2, c->seq) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, c->at_us) != SQLITE_OK || sqlite3_bind_int64(st, 4, c->n) != SQLITE_OK ||
	    sqlite3_bind_blob(st, 5, c->b.p ? c->b.p : "", (int)c->b.len, SQLITE_STATIC) != SQLITE_OK)
		goto out;
	r = sqlite3_step(st);
	if (r == SQLITE_FULL)
		a->full = 1;
	if (r != SQLITE_DONE) {
		al_err("store: recording session %" PRId64 ": %s", c->conn_id, sqlite3_errmsg(store_db(s)));
		goto out;
	}
	rc = 0;
out:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static void chunk_put(struct rec_chunk *c, int64_t seq, int64_t at_us, const char *dir, const char *type,
		      const char *data, size_t len)
{
	char head[128];
	size_t n = 0, dl = strlen(dir), tl = strlen(type);

	if (dl + tl > sizeof(head) - 70) {
		c->b.oom = 1;           /* never: dir and type are the callers' short names */
		return;
	}
	n += al_dec(head + n, seq);
	head[n++] = ' ';
	n += al_dec(head + n, at_us);
	head[n++] = ' ';
	memcpy(head + n, dir, dl);
	n += dl;
	head[n++] = ' ';
	memcpy(head + n, type, tl);
	n += tl;
	head[n++] = ' ';
	n += al_dec(head + n, data ? (int64_t)len : -1);
	head[n++] = '\n';
	al_buf_add(&c->b, head, n);
	if (data && len)
		al_buf_add(&c->b, data, len);
	c->n++;
}

static uint32_t slot_of(int64_t conn_id, size_t n_slots)
{
	uint64_t h = (uint64_t)conn_id * 0x9e3779b97f4a7c15ull;

	return (uint32_t)(h >> 32) & (uint32_t)(n_slots - 1);
}

/* The chunk table's slots (n, a power of two) rebuilt for a->chunks; -1 without memory. */
static int slots_build(struct store_audit *a, size_t n)
{
	uint32_t *t = calloc(n, sizeof(*t)), i;

	if (!t)
		return -1;
	for (size_t k = 0; k < a->n_chunks; k++) {
		for (i = slot_of(a->chunks[k].conn_id, n); t[i]; i = (i + 1) & (uint32_t)(n - 1))
			;
		t[i] = (uint32_t)k + 1;
	}
	free(a->chunk_slot);
	a->chunk_slot = t;
	a->n_slots = n;
	return 0;
}

/* conn_id's pending chunk, or NULL. */
static struct rec_chunk *chunk_find(struct store_audit *a, int64_t conn_id)
{
	if (!a->n_slots)
		return NULL;
	for (uint32_t i = slot_of(conn_id, a->n_slots); a->chunk_slot[i]; i = (i + 1) & (uint32_t)(a->n_slots - 1))
		if (a->chunks[a->chunk_slot[i] - 1].conn_id == conn_id)
			return &a->chunks[a->chunk_slot[i] - 1];
	return NULL;
}

/* conn_id's pending chunk, made if new; NULL without memory. */
static struct rec_chunk *chunk_of(struct store_audit *a, int64_t conn_id, int64_t seq, int64_t at_us)
{
	struct rec_chunk *c = chunk_find(a, conn_id);
	uint32_t i;

	if (c)
		return c;
	if (a->n_chunks == a->cap_chunks) {
		size_t cap = a->cap_chunks ? a->cap_chunks * 2 : 16;

		c = realloc(a->chunks, cap * sizeof(*c));
		if (!c)
			return NULL;
		a->chunks = c;
		a->cap_chunks = cap;
	}
	if ((a->n_chunks + 1) * 2 > a->n_slots && slots_build(a, a->n_slots ? a->n_slots * 2 : 64) < 0)
		return NULL;
	for (i = slot_of(conn_id, a->n_slots); a->chunk_slot[i]; i = (i + 1) & (uint32_t)(a->n_slots - 1))
		;
	a->chunks[a->n_chunks] = (struct rec_chunk){
		.conn_id = conn_id, .seq = seq, .at_us = at_us, .born_mono_us = al_mono_us(),
	};
	a->chunk_slot[i] = (uint32_t)++a->n_chunks;
	return &a->chunks[a->n_chunks - 1];
}

int store_rec_add(struct store *s, int64_t conn_id, int64_t seq, int64_t at_us, const char *dir,
		  const char *type, const char *data, size_t len)
{
	struct store_audit *a = store_audit_state(s);
	struct rec_chunk *c = NULL, one;
	int rc;

	if (store_batch_begin(s) == 0 && !sqlite3_get_autocommit(store_db(s)))
		c = chunk_of(a, conn_id, seq, at_us);
	if (c) {
		size_t before = c->b.len;

		chunk_put(c, seq, at_us, dir, type, data, len);
		a->rec_pending += c->b.len - before;
		return c->b.oom ? -1 : 0;
	}
	/* No batch (or no memory for the chunk): this message is a chunk of its own, now,
	 * after what the session recorded before it. */
	store_rec_flush_all(s);
	one = (struct rec_chunk){ .conn_id = conn_id, .seq = seq, .at_us = at_us };
	chunk_put(&one, seq, at_us, dir, type, data, len);
	rc = chunk_write(s, &one);
	free(one.b.p);
	return rc;
}

/* Writes the chunks that are due (all: every chunk); the others stay for a later commit. */
static void rec_write(struct store *s, int all)
{
	struct store_audit *a = store_audit_state(s);
	int64_t now = al_mono_us();
	size_t keep = 0, n = a->n_chunks;
	int failed = 0;

	if (!n)
		return;
	all |= a->rec_pending > REC_PENDING_MAX;
	for (size_t i = 0; i < n; i++) {
		struct rec_chunk *c = &a->chunks[i];

		if (!all && !c->due && !c->b.oom && c->b.len < REC_CHUNK_BYTES &&
		    now - c->born_mono_us < REC_HOLD_US) {
			a->chunks[keep++] = *c;
			continue;
		}
		failed |= chunk_write(s, c) < 0;
		a->rec_pending -= c->b.len;
		free(c->b.p);
	}
	if (keep != n) {
		a->n_chunks = keep;
		if (slots_build(a, a->n_slots) < 0) {
			/* no memory for the table: write the rest too, the table is then empty */
			for (size_t i = 0; i < keep; i++) {
				failed |= chunk_write(s, &a->chunks[i]) < 0;
				free(a->chunks[i].b.p);
			}
			a->n_chunks = 0;
			a->rec_pending = 0;
			memset(a->chunk_slot, 0, a->n_slots * sizeof(*a->chunk_slot));
		}
	}
	if (failed)
		al_err("store: recordings could not be written");
}

void store_rec_flush(struct store *s)
{
	rec_write(s, 0);
}

void store_rec_flush_all(struct store *s)
{
	rec_write(s, 1);
}

void store_rec_end(struct store *s, int64_t conn_id)
{
	struct rec_chunk *c = chunk_find(store_audit_state(s), conn_id);

	if (c) {
		c->due = 1;
		if (store_batch_begin(s) < 0)   /* its commit writes the chunk */
			store_rec_flush_all(s);
	}
}

/* A commit for the chunks whose time has come, when no traffic brings one. */
static void rec_tick(struct store *s)
{
	struct store_audit *a = store_audit_state(s);
	int64_t now = al_mono_us();

	for (size_t i = 0; i < a->n_chunks; i++)
		if (now - a->chunks[i].born_mono_us >= REC_HOLD_US) {
			if (store_batch_begin(s) < 0)
				store_rec_flush_all(s);
			return;
		}
}

void store_rec_free(struct store *s)
{
	struct store_audit *a = store_audit_state(s);

	for (size_t i = 0; i < a->n_chunks; i++)
		free(a->chunks[i].b.p);
	free(a->chunks);
	free(a->chunk_slot);
	a->chunks = NULL;
	a->chunk_slot = NULL;
	a->n_chunks = a->cap_chunks = a->n_slots = 0;
	a->rec_pending = 0;
}

/* ---- reading a recording back ---------------------------------------------------------------- */

int store_rec_open(sqlite3 *db, int64_t conn_id, struct store_rec_iter *it)
{
	memset(it, 0, sizeof(*it));
	if (sqlite3_prepare_v2(db, "SELECT data FROM recordings WHERE conn_id = ?1 ORDER BY seq", -1, &it->st,
			       NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(it->st, 1, conn_id) != SQLITE_OK) {
		sqlite3_finalize(it->st);
		it->st = NULL;
		return -1;
	}
	return 0;
}

/* A decimal number at *p (before end) followed by stop; advances *p past stop. */
static int get_int(const unsigned char **p, const unsigned char *end, char stop, int64_t *v)
{
	int neg = 0, digits = 0;
	uint64_t u = 0;

	if (*p < end && **p == '-') {
		neg = 1;
		(*p)++;
	}
	while (*p < end && **p >= '0' && **p <= '9' && digits < 19) {
		u = u * 10 + (uint64_t)(**p - '0');
		(*p)++;
		digits++;
	}
	if (!digits || *p >= end || **p != (unsigned char)stop)
		return -1;
	(*p)++;
	*v = neg ? -(int64_t)u : (int64_t)u;
	return 0;
}

/* A word of at most cap-1 bytes ended by a space. */
static int get_word(const unsigned char **p, const unsigned char *end, char *out, size_t cap)
{
	size_t n = 0;

	while (*p < end && **p != ' ' && **p != '\n' && n + 1 < cap)
		out[n++] = (char)*(*p)++;
	if (!n || *p >= end || **p != ' ')
		return -1;
	(*p)++;
	out[n] = '\0';
	return 0;
}

int store_rec_next(struct store_rec_iter *it, struct store_rec_msg *m)
{
	int64_t len;

	while (it->p == it->end) {
		int r = sqlite3_step(it->st);

		if (r == SQLITE_DONE)
			return 0;
		if (r != SQLITE_ROW)
			return -1;
		it->p = sqlite3_column_blob(it->st, 0);
		it->end = it->p + sqlite3_column_bytes(it->st, 0);
		if (!it->p)
			it->end = it->p;
	}
	memset(m, 0, sizeof(*m));
	if (get_int(&it->p, it->end, ' ', &m->seq) < 0 || get_int(&it->p, it->end, ' ', &m->at_us) < 0 ||
	    get_word(&it->p, it->end, m->dir, sizeof(m->dir)) < 0 ||
	    get_word(&it->p, it->end, m->type, sizeof(m->type)) < 0 ||
	    get_int(&it->p, it->end, '\n', &len) < 0 || len < -1 || len > it->end - it->p)
		return -1;
	it->data.len = 0;
	al_buf_add(&it->data, "", 0);
	if (len > 0)
		al_buf_add(&it->data, it->p, (size_t)len);
	if (it->data.oom)
		return -1;
	it->p += len > 0 ? len : 0;
	m->data = len >= 0 ? it->data.p : NULL;
	m->len = len > 0 ? (size_t)len : 0;
	return 1;
}

void store_rec_close(struct store_rec_iter *it)
{
	sqlite3_finalize(it->st);
	free(it->data.p);
	memset(it, 0, sizeof(*it));
}

void store_set_limits(struct store *s, const struct store_limits *l)
{
	struct store_audit *a = store_audit_state(s);

	a->limits = *l;
	a->size_mono_us = 0;
}

static int64_t pragma_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Bytes of pages in use (free pages left by deletions are not counted: they are reused). */
static int64_t used_bytes(struct store *s)
{
	int64_t pages = pragma_int(store_db(s), "PRAGMA page_count");
	int64_t free_pages = pragma_int(store_db(s), "PRAGMA freelist_count");
	int64_t size = pragma_int(store_db(s), "PRAGMA page_size");

	if (pages < 0 || free_pages < 0 || size < 0)
		return -1;
	return (pages - free_pages) * size;
}

static int exec(sqlite3 *db, const char *sql)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		al_err("store: %s: %s", sql, sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

/*
 * Rotation: the whole store is copied to <store>.<UTC time> (VACUUM INTO),
 * then what is finished (closed connections with their statements, HTTP requests and
 * recordings, ended requests, refusals, the audit records and checkpoints)
 * leaves the live file, and the chain goes on in it with a "rotated"
 * record whose prev_hash is the archive's last hash. The newest row of
 * each table stays, so row ids never restart and stay unique across files.
 * Open sessions, pending requests, live grants, users and pins stay.
 */
static int rotate(struct store *s)
{
	static const char *const prune[] = {
		"DELETE FROM recordings WHERE conn_id IN (SELECT id FROM connections WHERE closed_us IS NOT NULL"
		" AND id < (SELECT max(id) FROM connections))",
		"DELETE FROM statement_rows WHERE id < (SELECT max(id) FROM statement_rows) AND conn_id IN"
		" (SELECT id FROM connections WHERE closed_us IS NOT NULL AND id < (SELECT max(id) FROM connections))",
		"DELETE FROM http_request_rows WHERE id < (SELECT max(id) FROM http_request_rows) AND conn_id IN"
		" (SELECT id FROM connections WHERE closed_us IS NOT NULL AND id < (SELECT max(id) FROM connections))",
		/* a batch older than every open session holds none of theirs; each kind's newest stays */
		"DELETE FROM command_batches WHERE id NOT IN (SELECT max(id) FROM command_batches GROUP BY kind)"
		" AND last_at_us < coalesce((SELECT min(opened_us) FROM connections WHERE closed_us IS NULL),"
		" 9223372036854775807)",
		/* the kept batches' commands are in records about to go: into their rows */
		"UPDATE command_batches SET rows = coalesce((SELECT json_extract(body, '$.rows') FROM audit"
		" WHERE seq = command_batches.audit_seq), '[]'), audit_seq = NULL WHERE audit_seq IS NOT NULL",
		"DELETE FROM connections WHERE closed_us IS NOT NULL AND id < (SELECT max(id) FROM connections)",
		"DELETE FROM refusals WHERE id < (SELECT max(id) FROM refusals)",
		"DELETE FROM approvals WHERE request_id IN (SELECT id FROM requests WHERE state != 'pending'"
		" AND id < (SELECT max(id) FROM requests))",
		"DELETE FROM requests WHERE state != 'pending' AND id < (SELECT max(id) FROM requests)",
		"DELETE FROM grants WHERE (revoked_us IS NOT NULL OR expires_us < strftime('%s','now') * 1000000)"
		" AND id < (SELECT max(id) FROM grants)",
		"DELETE FROM audit_checkpoints",
		"DELETE FROM audit",
	};
	struct store_audit *a = store_audit_state(s);
	sqlite3 *db = store_db(s);
	char name[4200], stamp[32], *sql = NULL;
	int64_t last_seq;
	char last_hash[65];
	time_t now = time(NULL);
	struct tm tm;
	json_t *body;
	int rc = -1;

	if (store_batch_commit(s) < 0 || store_audit_checkpoint(s) < 0)
		return -1;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if (al_fmt(name, sizeof(name), "%s.%s", a->path, stamp) < 0)
		return -1;
	sql = sqlite3_mprintf("VACUUM INTO %Q", name);
	if (!sql || exec(db, sql) < 0) {
		sqlite3_free(sql);
		return -1;
	}
	sqlite3_free(sql);
	store_audit_head(s, &last_seq, last_hash);
	if (exec(db, "BEGIN IMMEDIATE") < 0)
		return -1;
	/* Moving rows to the archive is no edit: no records for these deletions. */
	store_totals_forget(s);
	store_review_forget(s);
	a->muted = 1;
	for (size_t i = 0; i < AL_ARRAY_LEN(prune); i++)
		if (exec(db, prune[i]) < 0)
			goto out;
	a->muted = 0;
	body = json_pack("{s:s, s:I, s:s}", "archive", name, "archive_last_seq", (json_int_t)last_seq,
			 "archive_last_hash", last_hash);
	if (!body || store_audit_append(s, "rotated", 0, body) < 0)
		goto out;
	rc = exec(db, "COMMIT");
out:
	a->muted = 0;
	if (rc < 0) {
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		al_err("store: rotating to %s failed; the store stays as it was", name);
		return -1;
	}
	if (store_audit_checkpoint(s) < 0)
		al_warn("store: could not sign the chain after rotating");
	a->used_bytes = (uint64_t)used_bytes(s);
	al_info("store: rotated: records up to %" PRId64 " are in %s; the chain goes on in %s (%" PRIu64
		" bytes in use)", last_seq, name, a->path, a->used_bytes);
	return 0;
}

static void check_size(struct store *s)
{
	struct store_audit *a = store_audit_state(s);
	int64_t used;
	int over;

	{
		struct statvfs vfs;
		char dir[4096];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", a->path);
		slash = strrchr(dir, '/');
		if (slash && slash != dir)
			*slash = '\0';
		if (statvfs(slash ? dir : ".", &vfs) == 0) {
			uint64_t room = (uint64_t)vfs.f_bavail * vfs.f_frsize;

			if (a->full && room > DISK_ROOM) {
				al_info("store: the disk has room again: sessions and commands are taken");
				a->full = 0;
			} else if (!a->full && room < DISK_LOW) {
				/* Before a write meets a full disk, which would lose the batch it is in. */
				al_err("store: only %" PRIu64 " bytes free on the disk of %s: new sessions and "
				       "commands are refused (store_full) until it has %u", room, a->path,
				       DISK_ROOM);
				a->full = 1;
			}
		}
	}
	if (!a->limits.max_size) {
		a->capped = 0;
		return;
	}
	used = used_bytes(s);
	if (used < 0)
		return;
	a->used_bytes = (uint64_t)used;
	over = (uint64_t)used >= a->limits.max_size;
	/* Rotate, unless what a rotation keeps (open sessions, pending requests, users) is
	 * itself over the cap: then another would free nothing, and sessions are refused. */
	if (over && a->limits.full == STORE_FULL_ROTATE &&
	    (uint64_t)used >= a->rotated_floor + a->limits.max_size / 4) {
		if (rotate(s) == 0) {
			a->rotated_floor = a->used_bytes;
			used = (int64_t)a->used_bytes;
			over = a->used_bytes >= a->limits.max_size;
		}
	}
	if (over && !a->capped)
		al_err("store: %s is at its size cap (%" PRId64 " of %" PRIu64 " bytes in use): new agent "
		       "sessions are refused (store_full) until it has room", a->path, used,
		       a->limits.max_size);
	else if (!over && a->capped)
		al_info("store: below its size cap again (%" PRId64 " bytes in use): new sessions are taken",
			used);
	a->capped = over;
}

/*
 * Retention: a session's recording is deleted once the session ended record_retention ago.
 * Every RETENTION_EVERY_US a pass starts with a cut (now - retention) and goes through the
 * sessions that ended before it, in (closed_us, id) order from where the last pass stopped,
 * RET_SLICE a store tick: the sessions that ended since the last pass, not every session the
 * store holds (a million of them took 0.6 s a minute in the event loop), and the first pass
 * after a start, which goes through them all, does it in slices. A pass that is done records
 * what it deleted (recordings_expired) when it deleted anything.
 */
#define RET_SLICE 2000

static void rec_expire(struct store *s)
{
	struct store_audit *a = store_audit_state(s);
	sqlite3_stmt *q = NULL, *del = NULL;
	int r = SQLITE_ERROR, rows = 0;

	if (store_batch_begin(s) < 0 ||
	    sqlite3_prepare_v2(store_db(s), "SELECT id, closed_us FROM connections WHERE (closed_us, id) > (?1, ?2)"
			       " AND closed_us < ?3 ORDER BY closed_us, id LIMIT ?4", -1, &q, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(store_db(s), "DELETE FROM recordings WHERE conn_id = ?1 RETURNING n", -1, &del,
			       NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(q, 1, a->ret_at_us) != SQLITE_OK || sqlite3_bind_int64(q, 2, a->ret_at_id) != SQLITE_OK ||
	    sqlite3_bind_int64(q, 3, a->ret_cut) != SQLITE_OK || sqlite3_bind_int(q, 4, RET_SLICE) != SQLITE_OK)
		goto out;
	while ((r = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0);
		int d;

		rows++;
		if (sqlite3_bind_int64(del, 1, id) != SQLITE_OK)
			break;
		while ((d = sqlite3_step(del)) == SQLITE_ROW)
			a->ret_msgs += sqlite3_column_int64(del, 0);
		sqlite3_reset(del);
		if (d != SQLITE_DONE) {
			r = d;
			break;
		}
		a->ret_at_us = sqlite3_column_int64(q, 1);
		a->ret_at_id = id;
	}
out:
	sqlite3_finalize(q);
	sqlite3_finalize(del);
	if (r != SQLITE_DONE)           /* the pass ends here; the next goes on from the last session done */
		al_warn("store: deleting old recordings failed: %s", sqlite3_errmsg(store_db(s)));
	if (r != SQLITE_DONE || rows < RET_SLICE) {
		if (a->ret_msgs > 0 &&
		    store_audit_event(s, "recordings_expired", 0, json_pack("{s:I, s:I}", "before_us",
				      (json_int_t)a->ret_cut, "messages", (json_int_t)a->ret_msgs)) < 0)
			al_warn("store: could not record the recordings retention");
		a->ret_cut = 0;
	}
}

/* A session ended at closed_us: if the clock went back past where retention got to, that
 * session sorts before it and no pass would reach it; the next pass starts from the first. */
void store_rec_ended(struct store *s, int64_t closed_us)
{
	struct store_audit *a = store_audit_state(s);

	if (closed_us < a->ret_at_us) {
		a->ret_at_us = 0;
		a->ret_at_id = 0;
	}
}

void store_tick(struct store *s)
{
	struct store_audit *a = store_audit_state(s);
	int64_t mono = al_mono_us();

	rec_tick(s);
	if (a->key && a->seq > a->cp_seq && mono - a->cp_mono_us >= STORE_CHECKPOINT_S * 1000000ll &&
	    store_audit_checkpoint(s) < 0)
		al_warn("store: timed audit checkpoint failed");
	if (a->limits.record_retention_us > 0 && !a->ret_cut && mono - a->retention_mono_us >= RETENTION_EVERY_US) {
		a->retention_mono_us = mono;
		a->ret_cut = al_now_us() - a->limits.record_retention_us;
		a->ret_msgs = 0;
	}
	if (a->ret_cut)
		rec_expire(s);
	if (mono - a->size_mono_us >= SIZE_CHECK_US) {
		a->size_mono_us = mono;
		check_size(s);
	}
}

int store_accepting(struct store *s)
{
	struct store_audit *a = store_audit_state(s);

	if (al_mono_us() - a->size_mono_us >= SIZE_CHECK_US) {
		a->size_mono_us = al_mono_us();
		check_size(s);
	}
	return !a->full && !a->capped;
}
