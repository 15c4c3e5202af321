/* Session recordings, the store's size cap (refuse or rotate to an archive), retention and timed checkpoints. */
#include "store_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <time.h>

#define SIZE_CHECK_US       (200 * 1000)
#define RETENTION_EVERY_US  (60ll * 1000 * 1000)
#define DISK_ROOM           (16u * 1024 * 1024)  /* free bytes that end a disk-full stop */

int store_rec_add(struct store *s, int64_t conn_id, int64_t seq, int64_t at_us, const char *dir,
		  const char *type, const char *data, size_t len)
{
	struct store_audit *a = store_audit_state(s);
	sqlite3_stmt *st = a->rec_ins;
	int rc = -1, r;

	if (store_batch_begin(s) < 0)
		return -1;
	if (sqlite3_bind_int64(st, 1, conn_id) != SQLITE_OK || sqlite3_bind_int64(st, 2, seq) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, at_us) != SQLITE_OK ||
	    sqlite3_bind_text(st, 4, dir, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, type, -1, SQLITE_STATIC) != SQLITE_OK ||
	    (data ? sqlite3_bind_text(st, 6, data, (int)len, SQLITE_STATIC)
		  : sqlite3_bind_null(st, 6)) != SQLITE_OK)
		goto out;
	r = sqlite3_step(st);
	if (r == SQLITE_FULL)
		a->full = 1;
	if (r != SQLITE_DONE) {
		al_err("store: recording session %" PRId64 ": %s", conn_id, sqlite3_errmsg(store_db(s)));
		goto out;
	}
	rc = 0;
out:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
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
 * then what is finished (closed connections with their statements and
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
		"DELETE FROM statements WHERE id < (SELECT max(id) FROM statements) AND conn_id IN"
		" (SELECT id FROM connections WHERE closed_us IS NOT NULL AND id < (SELECT max(id) FROM connections))",
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

	if (a->full) {
		struct statvfs vfs;
		char dir[4096];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", a->path);
		slash = strrchr(dir, '/');
		if (slash && slash != dir)
			*slash = '\0';
		if (statvfs(slash ? dir : ".", &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize > DISK_ROOM) {
			al_info("store: the disk has room again: new sessions are taken");
			a->full = 0;
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

void store_tick(struct store *s)
{
	struct store_audit *a = store_audit_state(s);
	int64_t mono = al_mono_us();

	if (a->key && a->seq > a->cp_seq && mono - a->cp_mono_us >= STORE_CHECKPOINT_S * 1000000ll &&
	    store_audit_checkpoint(s) < 0)
		al_warn("store: timed audit checkpoint failed");
	if (a->limits.record_retention_us > 0 && mono - a->retention_mono_us >= RETENTION_EVERY_US) {
		sqlite3_stmt *st = NULL;
		int64_t before = al_now_us() - a->limits.record_retention_us;

		a->retention_mono_us = mono;
		if (store_batch_begin(s) == 0 &&
		    sqlite3_prepare_v2(store_db(s), "DELETE FROM recordings WHERE conn_id IN (SELECT id FROM"
				       " connections WHERE opened_us < ?1 AND closed_us < ?1)", -1, &st,
				       NULL) == SQLITE_OK &&
		    sqlite3_bind_int64(st, 1, before) == SQLITE_OK && sqlite3_step(st) == SQLITE_DONE) {
			int n = sqlite3_changes(store_db(s));
			char body[96];

			snprintf(body, sizeof(body), "{\"before_us\":%" PRId64 ",\"messages\":%d}", before, n);
			if (n > 0 && store_audit_event(s, "recordings_expired", 0, body) < 0)
				al_warn("store: could not record the recordings retention");
		} else {
			al_warn("store: deleting old recordings failed: %s", sqlite3_errmsg(store_db(s)));
		}
		sqlite3_finalize(st);
	}
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
