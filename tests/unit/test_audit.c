/* Unit tests for the hash-chained audit log: chaining, tampering found by verify, checkpoints, canonical form, crash safety. */
#include <airlock/pg.h>
#include <airlock/store.h>

#include <dirent.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "harness.h"

static char tmpdir[256];
static int n_store;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int exec_sql(const char *db, const char *sql)
{
	sqlite3 *h = NULL;
	int rc = sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		printf("#   exec %s: %s\n", sql, h ? sqlite3_errmsg(h) : "no memory");
	sqlite3_close(h);
	return rc == SQLITE_OK ? 0 : -1;
}

static int64_t q_int(const char *db, const char *sql)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

/* A session's recording as read back: "seq at dir type data|..." (data "-" when none). */
static int rec_text(const char *db, int64_t conn_id, char *out, size_t len)
{
	sqlite3 *h = NULL;
	struct store_rec_iter it;
	struct store_rec_msg m;
	size_t n = 0;
	int r = -1;

	out[0] = '\0';
	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK && store_rec_open(h, conn_id, &it) == 0) {
		while ((r = store_rec_next(&it, &m)) == 1 && n < len)
			n += (size_t)snprintf(out + n, len - n, "%s%" PRId64 " %" PRId64 " %s %s %s", n ? "|" : "",
					      m.seq, m.at_us, m.dir, m.type, m.data ? m.data : "-");
		store_rec_close(&it);
	}
	sqlite3_close(h);
	return r;
}

static struct store_conn conn(void)
{
	struct store_conn c = {
		.opened_us = al_now_us(), .cgroup_id = 77, .cgroup_path = "/agents/a",
		.pid = 10, .tid = 10, .uid = 1000, .gid = 1000, .comm = "psql", .exe = "/usr/bin/psql",
		.agent_addr = "127.0.0.1", .agent_port = 40000, .dst_addr = "127.0.0.6", .dst_port = 5432,
		.resource = "pg", .protocol = "postgres",
	};
	return c;
}

/* An empty store in a directory of its own (its own key); path gets its file name. */
static struct store *empty_store(char *path, size_t len)
{
	char dir[320];
	struct store *s = NULL;

	snprintf(dir, sizeof(dir), "%s/s%d", tmpdir, ++n_store);
	if (mkdir(dir, 0700) < 0 || al_fmt(path, len, "%s/airlock.db", dir) < 0 || store_open(path, &s) < 0)
		return NULL;
	return s;
}

/* A fresh store in its own directory (its own key), with some of every kind of write. */
static struct store *fill(char *path, size_t len, int batched)
{
	char dir[320];
	struct store *s = NULL;
	struct store_conn c = conn();
	struct store_conn_end e = { .closed_us = al_now_us(), .reason = AL_REASON_CLOSED };
	struct store_stmt t = { .seq = 1, .at_us = al_now_us(), .protocol = "simple", .text = "SELECT 1",
				.kind = "select", .relations_json = "[]", .decision = "allow" };
	struct store_stmt_outcome o = { .tag = "SELECT 1", .rows = 1, .duration_us = 5 };
	struct store_refusal r = { .at_us = al_now_us(), .reason = AL_REASON_UDP_DENIED, .cgroup_id = 77,
				   .dst_addr = "1.1.1.1", .dst_port = 53 };
	struct store_user u = { .uid = 4711, .admin = 0 };
	int64_t id = 0, sid = 0;

	snprintf(dir, sizeof(dir), "%s/s%d", tmpdir, ++n_store);
	if (mkdir(dir, 0700) < 0 || al_fmt(path, len, "%s/airlock.db", dir) < 0 || store_open(path, &s) < 0)
		return NULL;
	snprintf(u.name, sizeof(u.name), "alice");
	snprintf(u.groups, sizeof(u.groups), "dba");
	snprintf(u.pwhash, sizeof(u.pwhash), "pbkdf2$secret-hash");
	for (int i = 0; i < 5; i++) {
		if (batched && store_batch_begin(s) < 0)
			goto bad;
		if (store_conn_open(s, &c, &id) < 0)
			goto bad;
		t.conn_id = id;
		/* The outcome in a batch of its own: a statement record, then an outcome record
		 * (test_stmt_merged covers the outcome that comes within the statement's batch). */
		if (store_stmt_add(s, &t, &sid) < 0 || (batched && store_batch_commit(s) < 0) ||
		    (batched && store_batch_begin(s) < 0) || store_stmt_outcome(s, sid, &o) < 0 ||
		    store_conn_close(s, id, &e) < 0 || store_refusal_add(s, &r) < 0)
			goto bad;
		if (batched && store_batch_commit(s) < 0)
			goto bad;
	}
	if (store_user_add(s, &u) != 0 || store_pin_add(s, 99, "/agents/b") < 0)
		goto bad;
	return s;
bad:
	store_close(s);
	return NULL;
}

static int verify(const char *path, struct store_verify *v)
{
	int rc = store_audit_verify(path, NULL, v);

	if (rc != 0)
		printf("#   verify: %s\n", v->msg);
	return rc;
}

static void test_chain_records_every_write(void)
{
	char p[512];
	struct store_verify v;
	struct store *s = fill(p, sizeof(p), 1);
	int64_t seq;
	char hash[65];

	CHECK(s != NULL);
	if (!s)
		return;
	store_audit_head(s, &seq, hash);
	/* per round: conn_open, statement, outcome, conn_close, refusal; then user_put and pin */
	CHECK(seq == 5 * 5 + 2);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'conn_open'") == 5);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'outcome'") == 5);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'user_put'") == 1);
	/* No password hash in the log, only that there is one. */
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE body LIKE '%secret-hash%'") == 0);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'user_put' AND body LIKE '%\"has_password\":true%'") == 1);
	/* The statement record carries what was decided. */
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'statement' AND body LIKE '%\"decision\":\"allow\"%'"
		    " AND body LIKE '%\"text\":\"SELECT 1\"%'") == 5);
	store_close(s);
	CHECK(verify(p, &v) == 0);
	CHECK(v.records == 27);
	CHECK(v.checkpoints == 1);
	CHECK(q_int(p, "SELECT max(seq) FROM audit_checkpoints") == 27);
}

static void test_unbatched_and_reopen(void)
{
	char p[512];
	struct store_verify v;
	struct store *s = fill(p, sizeof(p), 0);
	struct store_conn c = conn();
	int64_t id;

	CHECK(s != NULL);
	if (!s)
		return;
	store_close(s);
	/* The head is loaded at open: the chain goes on. */
	CHECK(store_open(p, &s) == 0);
	CHECK(s && store_conn_open(s, &c, &id) == 0);
	store_close(s);
	CHECK(verify(p, &v) == 0);
	CHECK(v.records == 28 && v.last_seq == 28);
	CHECK(v.checkpoints == 2);
}

/* Tampering with one row, then verify must name it. */
static void tamper(const char *sql, int64_t want_seq, const char *want_msg)
{
	char p[512], buf[64];
	struct store_verify v;
	struct store *s = fill(p, sizeof(p), 1);

	CHECK(s != NULL);
	if (!s)
		return;
	store_close(s);
	CHECK(exec_sql(p, sql) == 0);
	CHECK(store_audit_verify(p, NULL, &v) == 1);
	CHECK(v.first_bad == want_seq);
	snprintf(buf, sizeof(buf), "%s", want_msg);
	if (!strstr(v.msg, buf)) {
		printf("#   verify said '%s', want '%s'\n", v.msg, want_msg);
		CHECK(!"message");
	}
}

static void test_edit_named(void)
{
	tamper("UPDATE audit SET body = replace(body, 'SELECT 1', 'SELECT 2') WHERE seq = 7", 7,
	       "record 7 does not match its hash (edited?)");
}

static void test_delete_named(void)
{
	tamper("DELETE FROM audit WHERE seq = 12", 12, "record 12 missing (deleted?)");
}

static void test_delete_first_named(void)
{
	tamper("DELETE FROM audit WHERE seq = 1", 1, "record 1 missing (deleted?)");
}

static void test_truncate_named(void)
{
	/* The last records go, but the closing checkpoint signed them. */
	tamper("DELETE FROM audit WHERE seq >= 25", 25, "record 25 missing (deleted?)");
}

static void test_reorder_named(void)
{
	tamper("UPDATE audit SET seq = -1 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = 5;"
	       " UPDATE audit SET seq = 5 WHERE seq = -1", 4, "record 4 ");
}

static void test_edit_other_column_named(void)
{
	tamper("UPDATE audit SET at_us = at_us + 1 WHERE seq = 9", 9, "record 9 does not match its hash");
}

static void test_forged_checkpoint(void)
{
	tamper("UPDATE audit_checkpoints SET signature = substr(signature, 3) || '00'", 27,
	       "checkpoint at 27: bad signature (forged?)");
}

/* Re-hashes the whole chain of the store file at p, as someone without the key can. */
static void rechain(const char *p)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL, *up = NULL;
	char prev[65] = STORE_GENESIS_HASH, hash[65];

	CHECK(sqlite3_open_v2(p, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
	CHECK(sqlite3_exec(h, "BEGIN", NULL, NULL, NULL) == SQLITE_OK);
	CHECK(sqlite3_prepare_v2(h, "SELECT seq, at_us, kind, ref_id, body FROM audit ORDER BY seq", -1, &st,
				 NULL) == SQLITE_OK);
	CHECK(sqlite3_prepare_v2(h, "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE seq = ?3", -1, &up,
				 NULL) == SQLITE_OK);
	while (st && up && sqlite3_step(st) == SQLITE_ROW) {
		char *c = store_audit_canonical(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
						(const char *)sqlite3_column_text(st, 2),
						sqlite3_column_int64(st, 3),
						sqlite3_column_type(st, 3) != SQLITE_NULL,
						(const char *)sqlite3_column_text(st, 4));

		CHECK(c && store_audit_hash(prev, c, hash) == 0);
		free(c);
		sqlite3_bind_text(up, 1, prev, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(up, 2, hash, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(up, 3, sqlite3_column_int64(st, 0));
		CHECK(sqlite3_step(up) == SQLITE_DONE);
		sqlite3_reset(up);
		memcpy(prev, hash, sizeof(prev));
	}
	sqlite3_finalize(st);
	sqlite3_finalize(up);
	CHECK(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(h);
}

/* Someone without the key rewrites a record and re-hashes the chain after it: the chain is
 * whole again, but the signed checkpoint no longer matches. */
static void test_rewritten_chain(void)
{
	char p[512];
	struct store_verify v;
	struct store *s = fill(p, sizeof(p), 1);

	CHECK(s != NULL);
	if (!s)
		return;
	store_close(s);
	CHECK(exec_sql(p, "UPDATE audit SET body = replace(body, 'SELECT 1', 'SELECT 2') WHERE seq = 3") == 0);
	rechain(p);
	CHECK(store_audit_verify(p, NULL, &v) == 1);
	CHECK(v.first_bad == 27);
	CHECK(strstr(v.msg, "checkpoint at 27") && strstr(v.msg, "rewritten"));
}

/* The same with the checkpoints deleted too, or the chain cut and its checkpoints with it: one
 * is made every STORE_CHECKPOINT_RECORDS records, so a longer run without one is tampering. What
 * fewer records than that could hide, verify says is unsigned. */
static void test_checkpoints_deleted(void)
{
	char p[512];
	struct store_verify v;
	struct store *s = fill(p, sizeof(p), 1);
	int64_t n = STORE_CHECKPOINT_RECORDS * 5 / 2;

	CHECK(s != NULL);
	if (!s)
		return;
	for (int64_t i = 0; i < n; i++)
		CHECK(store_audit_event(s, "note", 0, json_pack("{s:I}", "i", (json_int_t)i)) == 0);
	store_close(s);
	CHECK(verify(p, &v) == 0);
	CHECK(v.signed_to == v.last_seq && v.checkpoints >= 3 && strstr(v.msg, "every record signed"));
	/* the checkpoints deleted, the chain rewritten under them */
	CHECK(exec_sql(p, "UPDATE audit SET body = replace(body, 'SELECT 1', 'SELECT 2') WHERE seq = 3;"
		       " DELETE FROM audit_checkpoints") == 0);
	rechain(p);
	CHECK(store_audit_verify(p, NULL, &v) == 1);
	CHECK(v.first_bad == 1 && strstr(v.msg, "have no signed checkpoint") && strstr(v.msg, "deleted?"));
	/* cut below STORE_CHECKPOINT_RECORDS records, checkpoints gone: chained, said unsigned */
	CHECK(exec_sql(p, "DELETE FROM audit WHERE seq > 20; DELETE FROM command_batches") == 0);
	CHECK(store_audit_verify(p, NULL, &v) == 0);
	CHECK(v.signed_to == 0 && strstr(v.msg, "none signed yet"));
	printf("#   %s\n", v.msg);
}

/* A checkpoint signed by some other key. */
static void test_other_key(void)
{
	char p[512], other[512];
	struct store_verify v;
	struct store *s = fill(p, sizeof(p), 1), *s2;

	CHECK(s != NULL);
	if (!s)
		return;
	store_close(s);
	s2 = fill(other, sizeof(other), 1);
	CHECK(s2 != NULL);
	store_close(s2);
	/* Verifying with the other store's public key: every signature is bad. */
	{
		char pub[520];

		snprintf(pub, sizeof(pub), "%.*s/audit.pub", (int)(strrchr(other, '/') - other), other);
		CHECK(store_audit_verify(p, pub, &v) == 1);
		CHECK(strstr(v.msg, "bad signature (forged?)") != NULL);
	}
}

static void test_canonical_stable(void)
{
	json_t *a = json_pack("{s:s, s:i, s:n, s:s}", "zeta", "z", "alpha", 1, "mid", "text", "\xc3\xa9t\xc3\xa9");
	json_t *b = json_pack("{s:s, s:n, s:s, s:i}", "text", "\xc3\xa9t\xc3\xa9", "mid", "zeta", "z", "alpha", 1);
	char *ta = json_dumps(a, JSON_SORT_KEYS | JSON_COMPACT), *tb = json_dumps(b, JSON_SORT_KEYS | JSON_COMPACT);
	char *c = store_audit_canonical(5, 1700000000000001, "statement", 7, 1, ta);
	char *c0 = store_audit_canonical(6, 2, "policy_reload", 0, 0, "{}");
	char h[65], want[65];
	unsigned char md[32];
	unsigned int n = 0;
	EVP_MD_CTX *x = EVP_MD_CTX_new();

	CHECK_STR(ta, tb);
	CHECK_STR(ta, "{\"alpha\":1,\"mid\":null,\"text\":\"\xc3\xa9t\xc3\xa9\",\"zeta\":\"z\"}");
	CHECK_STR(c, "5|1700000000000001|statement|7|{\"alpha\":1,\"mid\":null,\"text\":\"\xc3\xa9t\xc3\xa9\",\"zeta\":\"z\"}");
	CHECK_STR(c0, "6|2|policy_reload||{}");
	/* hash = sha256(prev_hash || canonical), computed here independently */
	CHECK(store_audit_hash(STORE_GENESIS_HASH, c, h) == 0);
	EVP_DigestInit_ex(x, EVP_sha256(), NULL);
	EVP_DigestUpdate(x, STORE_GENESIS_HASH, 64);
	EVP_DigestUpdate(x, c, strlen(c));
	EVP_DigestFinal_ex(x, md, &n);
	for (unsigned int i = 0; i < n; i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);
	CHECK_STR(h, want);
	EVP_MD_CTX_free(x);
	/* A body read back and dumped again is the same bytes (verify relies on the stored text). */
	{
		json_t *r = json_loads(ta, 0, NULL);
		char *t2 = json_dumps(r, JSON_SORT_KEYS | JSON_COMPACT);

		CHECK_STR(t2, ta);
		free(t2);
		json_decref(r);
	}
	free(c);
	free(c0);
	free(ta);
	free(tb);
	json_decref(a);
	json_decref(b);
}

/* A daemon killed with a batch open: its rows and their records vanish together. */
static void test_crash_mid_batch(void)
{
	char p[512];
	struct store_verify v;
	struct store *s = fill(p, sizeof(p), 1);
	struct store_conn c = conn();
	pid_t pid;
	int st = 0;
	int64_t id;

	CHECK(s != NULL);
	if (!s)
		return;
	store_close(s);
	pid = fork();
	if (pid == 0) {
		struct store *cs = NULL;

		if (store_open(p, &cs) < 0)
			_exit(3);
		for (int i = 0; i < 50; i++) {
			if (i % 10 == 0 && (store_batch_commit(cs) < 0 || store_batch_begin(cs) < 0))
				_exit(4);
			if (store_conn_open(cs, &c, &id) < 0)
				_exit(5);
		}
		_exit(0);       /* no commit of the last batch, no close: as after kill -9 */
	}
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(verify(p, &v) == 0);
	CHECK(v.records == 27 + 40);
	CHECK(q_int(p, "SELECT count(*) FROM connections") == 5 + 40);
	/* and a new run goes on from the surviving head */
	CHECK(store_open(p, &s) == 0);
	CHECK(s && store_conn_open(s, &c, &id) == 0);
	store_close(s);
	CHECK(verify(p, &v) == 0);
}

static int list_cb(void *arg, const char *json)
{
	(*(int *)arg)++;
	return 0;
}

/*
 * Statements wait for their batch's commit: one whose outcome comes first is
 * one row and one record; a reader in between still sees every row.
 */
static void test_stmt_merged(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_verify v;
	struct store_stmt t = { .conn_id = 1, .seq = 1, .at_us = al_now_us(), .protocol = "simple",
				.text = "UPDATE t SET v = 1 WHERE id = 1", .kind = "update",
				.relations_json = "[\"t\"]", .decision = "allow" };
	struct store_stmt_outcome o = { .tag = "UPDATE 1", .rows = -1, .duration_us = 7 };
	int64_t a = 0, b = 0, c = 0;
	int n = 0;

	s = empty_store(p, sizeof(p));
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(store_batch_begin(s) == 0);
	CHECK(store_stmt_add(s, &t, &a) == 0);
	CHECK(store_stmt_add(s, &t, &b) == 0);
	CHECK(a > 0 && b == a + 1);
	CHECK(store_stmt_outcome(s, a, &o) == 0);
	/* a reader mid-batch sees both rows (this writes them) */
	CHECK(store_stmt_list(s, 10, list_cb, &n) == 0 && n == 2);
	CHECK(store_stmt_add(s, &t, &c) == 0 && c == b + 1);
	CHECK(store_stmt_outcome(s, c, &o) == 0);
	/* another write: the held statement is written (and chained) before it */
	CHECK(store_pin_add(s, 5, "/agents/x") == 0);
	CHECK(store_batch_commit(s) == 0);
	CHECK(store_batch_begin(s) == 0);
	CHECK(store_stmt_outcome(s, b, &o) == 0);
	CHECK(store_batch_commit(s) == 0);
	store_close(s);
	CHECK(q_int(p, "SELECT count(*) FROM statements WHERE tag = 'UPDATE 1' AND duration_us = 7") == 3);
	/* a and c: merged, each in a batch (the reader's flush wrote a's, the pin write c's), the
	 * batch's one record with the tag; b: written early on its own, its outcome a record */
	CHECK(q_int(p, "SELECT count(*) FROM command_batches") == 2);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'commands'") == 2);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'commands' AND body LIKE '%\"tag\":\"UPDATE 1\"%'") == 2);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'statement'") == 1);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'outcome'") == 1);
	CHECK(q_int(p, "SELECT (SELECT max(seq) FROM audit WHERE kind = 'commands') <"
		    " (SELECT seq FROM audit WHERE kind = 'pin')") == 1);
	CHECK(verify(p, &v) == 0);
	/* ids go on from the last row after a restart */
	CHECK(store_open(p, &s) == 0);
	CHECK(s && store_stmt_add(s, &t, &a) == 0 && a == c + 1);
	store_close(s);
}

/* The daemon's periodic commit carries a statement still waiting for its outcome (and what
 * came after it, in order) into the next batch, once: a late outcome still joins its row. */
static void test_stmt_carried(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_verify v;
	struct store_stmt t = { .conn_id = 1, .seq = 1, .at_us = al_now_us(), .protocol = "simple",
				.text = "SELECT 1", .kind = "read", .decision = "allow" };
	struct store_stmt_outcome o = { .tag = "SELECT 1", .rows = 1, .duration_us = 9 };
	int64_t a = 0, b = 0, c = 0, d = 0;

	s = empty_store(p, sizeof(p));
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(store_batch_begin(s) == 0);
	CHECK(store_stmt_add(s, &t, &a) == 0);
	CHECK(store_batch_commit_settled(s) == 0);
	CHECK(q_int(p, "SELECT count(*) FROM statements") == 0);       /* carried, not lost: */
	CHECK(store_stmt_outcome(s, a, &o) == 0);                        /* its outcome joins it */
	CHECK(store_batch_commit_settled(s) == 0);
	CHECK(q_int(p, "SELECT count(*) FROM statements WHERE tag = 'SELECT 1'") == 1);
	/* carried once only: the second commit writes it without its outcome */
	CHECK(store_batch_begin(s) == 0);
	CHECK(store_stmt_add(s, &t, &b) == 0);
	CHECK(store_batch_commit_settled(s) == 0);
	CHECK(store_batch_commit_settled(s) == 0);
	CHECK(q_int(p, "SELECT count(*) FROM statements WHERE tag IS NULL") == 1);
	CHECK(store_stmt_outcome(s, b, &o) == 0);
	CHECK(store_batch_commit_settled(s) == 0);
	/* c waits, d (after it) has its outcome: both wait, and are written in their order */
	CHECK(store_batch_begin(s) == 0);
	CHECK(store_stmt_add(s, &t, &c) == 0 && store_stmt_add(s, &t, &d) == 0);
	CHECK(store_stmt_outcome(s, d, &o) == 0);
	CHECK(store_batch_commit_settled(s) == 0);
	CHECK(q_int(p, "SELECT count(*) FROM statements") == 2);
	CHECK(store_batch_commit_settled(s) == 0);
	CHECK(q_int(p, "SELECT count(*) FROM statements") == 4);
	store_close(s);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'outcome'") == 1);     /* b's */
	/* b and c were written without their outcomes, alone; a and d with theirs, in batches */
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'statement'") == 2);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'commands'") == 2);
	{
		char sql[300];

		snprintf(sql, sizeof(sql), "SELECT (SELECT seq FROM audit WHERE kind = 'statement' AND ref_id = %lld) <"
			 " (SELECT seq FROM audit WHERE kind = 'commands' AND body LIKE '%%\"id\":%lld,%%')",
			 (long long)c, (long long)d);
		CHECK(q_int(p, sql) == 1);
	}
	CHECK(verify(p, &v) == 0);
}

static int count_cb(void *arg, const char *key, int64_t n)
{
	struct { int64_t allow, deny, other; } *c = arg;

	if (strcmp(key, "allow") == 0)
		c->allow += n;
	else if (strcmp(key, "deny") == 0)
		c->deny += n;
	else
		c->other += n;
	return 0;
}

/* The statements by decision, once the first count (a thread's) is done: as /metrics, which
 * leaves them out until then (1), asks again. */
static int count_stmts(struct store *s, void *c)
{
	int r;

	for (int i = 0; i < 10000; i++) {
		r = store_count_statements_by_decision(s, count_cb, c);
		if (r != 1)
			return r;
		usleep(1000);
	}
	return 1;
}

static int stmt_rows_cb(void *arg, const char *json)
{
	json_t *a = arg, *row = json_loads(json, 0, NULL);

	if (!row)
		return -1;
	json_object_del(row, "request_id");     /* store_conn_statements adds it */
	json_array_append_new(a, row);
	return 0;
}

/*
 * The statements a commit writes with their outcomes are one command_batches row with one
 * record; the statements view shows each as the row it would have been alone, and the readers
 * (newest first, a session's) find both kinds in order.
 */
static void test_stmt_batched(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_verify v;
	struct store_stmt t = { .seq = 1, .protocol = "extended", .text = "SELECT \"q\"\n\u00e9 FROM t WHERE a = $1",
				.kind = "read", .fingerprint = "abcd", .relations_json = "[\"t\"]",
				.params_json = "[\"7\"]", .decision = "allow", .rule = "allow kind read" };
	struct store_stmt_outcome o = { .tag = "SELECT 2", .rows = 2, .duration_us = 11 };
	struct store_stmt_outcome e = { .sqlstate = "42P01", .error = "relation \"t\" does not exist", .rows = -1,
					.duration_us = 5 };
	int64_t ids[12], lone, lone2;
	json_t *mine = json_array(), *all = json_array();

	s = empty_store(p, sizeof(p));
	CHECK(s != NULL);
	if (!s)
		return;
	/* one written alone (no batch open): the reference for what a batched row must show */
	t.conn_id = 2;
	t.at_us = al_now_us();
	CHECK(store_stmt_add(s, &t, &lone) == 0 && store_stmt_outcome(s, lone, &o) == 0);
	CHECK(store_batch_begin(s) == 0);
	for (int i = 0; i < 12; i++) {
		t.conn_id = 1 + i % 3;
		t.seq = 10 + i;
		t.at_us = al_now_us();
		CHECK(store_stmt_add(s, &t, &ids[i]) == 0);
		CHECK(store_stmt_outcome(s, ids[i], i == 4 ? &e : &o) == 0);
	}
	CHECK(store_batch_commit_settled(s) == 0);
	t.conn_id = 2;
	t.seq = 30;
	CHECK(store_stmt_add(s, &t, &lone2) == 0 && store_stmt_outcome(s, lone2, &o) == 0);
	CHECK(q_int(p, "SELECT count(*) FROM command_batches") == 1);
	CHECK(q_int(p, "SELECT count(*) FROM command_batches WHERE kind = 'statements' AND conns = ',1,2,3,'"
		    " AND last_id - first_id = 11") == 1);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'commands'") == 1);
	CHECK(q_int(p, "SELECT count(*) FROM statement_rows") == 2);
	CHECK(q_int(p, "SELECT count(*) FROM statements") == 14);
	/* a batched row shows what the same statement alone shows, column by column */
	{
		char sql[1200];

		snprintf(sql, sizeof(sql), "SELECT count(*) FROM statements a, statements b WHERE a.id = %lld"
			 " AND b.id = %lld AND a.protocol IS b.protocol AND a.text IS b.text AND a.kind IS b.kind"
			 " AND a.fingerprint IS b.fingerprint AND a.relations IS b.relations AND a.unbounded_write IS"
			 " b.unbounded_write AND a.params IS b.params AND a.decision IS b.decision AND a.rule IS b.rule"
			 " AND a.tag IS b.tag AND a.sqlstate IS b.sqlstate AND a.error IS b.error AND a.rows IS b.rows"
			 " AND a.duration_us IS b.duration_us AND typeof(a.at_us) = typeof(b.at_us)"
			 " AND typeof(a.rows) = typeof(b.rows) AND typeof(a.params) = typeof(b.params)",
			 (long long)lone, (long long)ids[1]);
		CHECK(q_int(p, sql) == 1);
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM statements WHERE id = %lld AND tag IS NULL AND"
			 " sqlstate = '42P01' AND rows IS NULL AND error = 'relation \"t\" does not exist'",
			 (long long)ids[4]);
		CHECK(q_int(p, sql) == 1);
	}
	/* session 2's statements in order: alone, batched, alone (read as the console reads:
	 * on a connection of its own, after the loop has committed what it holds) */
	{
		struct store_reader *rd = NULL;
		char err[256];

		CHECK(store_reader_sync(s) == 0);
		CHECK(store_reader_open(p, &rd, err, sizeof(err)) == 0);
		CHECK(rd && store_reader_begin(rd, 0) == 0);
		CHECK(rd && store_conn_statements(rd, 2, NULL, stmt_rows_cb, mine) == 0);
		if (rd)
			store_reader_end(rd);
		store_reader_close(rd);
	}
	CHECK(json_array_size(mine) == 6);
	if (json_array_size(mine) == 6) {
		CHECK(json_integer_value(json_object_get(json_array_get(mine, 0), "id")) == lone);
		CHECK(json_integer_value(json_object_get(json_array_get(mine, 1), "id")) == ids[1]);
		CHECK(json_integer_value(json_object_get(json_array_get(mine, 4), "id")) == ids[10]);
		CHECK(json_integer_value(json_object_get(json_array_get(mine, 5), "id")) == lone2);
		CHECK_STR(json_string_value(json_object_get(json_array_get(mine, 1), "text")), t.text);
	}
	/* the newest five, newest first, across both */
	CHECK(store_stmt_list(s, 5, stmt_rows_cb, all) == 0);
	CHECK(json_array_size(all) == 5);
	if (json_array_size(all) == 5) {
		CHECK(json_integer_value(json_object_get(json_array_get(all, 0), "id")) == lone2);
		CHECK(json_integer_value(json_object_get(json_array_get(all, 1), "id")) == ids[11]);
		CHECK(json_integer_value(json_object_get(json_array_get(all, 4), "id")) == ids[8]);
	}
	/* many held at once (the index of held rows grows), outcomes in reverse order: each joins
	 * its own row */
	{
		int64_t many[300];

		CHECK(store_batch_begin(s) == 0);
		for (int i = 0; i < 300; i++)
			CHECK(store_stmt_add(s, &t, &many[i]) == 0);
		for (int i = 299; i >= 0; i--) {
			struct store_stmt_outcome m = { .tag = "SELECT 1", .rows = i, .duration_us = 1 };

			CHECK(store_stmt_outcome(s, many[i], &m) == 0);
		}
		CHECK(store_batch_commit_settled(s) == 0);
		CHECK(q_int(p, "SELECT count(*) FROM statements WHERE tag = 'SELECT 1' AND rows = id - "
			    "(SELECT min(id) FROM statements WHERE tag = 'SELECT 1')") == 300);
		CHECK(q_int(p, "SELECT count(*) FROM command_batches") == 2);
	}
	lone2 += 300;
	/* counted by decision from the batches' counts, and from the rows of a batch without them
	 * (written by schema 11) */
	CHECK(exec_sql(p, "INSERT INTO command_batches (kind, first_id, last_id, first_at_us, last_at_us, conns,"
		       " rows) VALUES ('statements', 0, 0, 1, 1, ',9,', '[{\"id\":0,\"conn_id\":9,\"decision\":\"deny\"}]')")
	      == 0);
	{
		struct { int64_t allow, deny, other; } c = { 0, 0, 0 };

		CHECK(count_stmts(s, &c) == 0);
		CHECK(c.allow == 314 && c.deny == 1 && c.other == 0);
	}
	/* the next count goes on from there: what was written since, batched, alone or of schema 11 */
	{
		struct { int64_t allow, deny, other; } c = { 0, 0, 0 };
		struct store_stmt d = t;
		int64_t x = 0, y = 0;

		d.decision = "deny";
		CHECK(store_batch_begin(s) == 0);
		CHECK(store_stmt_add(s, &t, &x) == 0 && store_stmt_outcome(s, x, &o) == 0);
		CHECK(store_stmt_add(s, &d, &y) == 0 && store_stmt_outcome(s, y, &o) == 0);
		CHECK(store_batch_commit_settled(s) == 0);
		CHECK(store_stmt_add(s, &d, &y) == 0);          /* alone: no outcome, written by the count */
		CHECK(exec_sql(p, "INSERT INTO command_batches (kind, first_id, last_id, first_at_us, last_at_us,"
			       " conns, rows) VALUES ('statements', 0, 0, 1, 1, ',9,', '[{\"id\":0,\"decision\":\"deny\"},"
			       "{\"id\":0,\"decision\":\"review\"}]')") == 0);
		CHECK(count_stmts(s, &c) == 0);
		CHECK(c.allow == 315 && c.deny == 4 && c.other == 1);
		memset(&c, 0, sizeof(c));
		CHECK(count_stmts(s, &c) == 0);
		CHECK(c.allow == 315 && c.deny == 4 && c.other == 1);
		lone2 = y;
	}
	CHECK(q_int(p, "SELECT count(*) FROM command_batches WHERE decisions = '{\"allow\":300}'") == 1);
	/* newest first, the list reads only the batches that can hold what it shows: a carried
	 * row's batch too, and a batch without counts (schema 11) counts as one row */
	{
		int64_t x = 0, y[4] = { 0 };
		struct store_stmt_outcome m = { .tag = "SELECT 2", .rows = 1, .duration_us = 1 };
		json_t *top = json_array(), *every = json_array();

		CHECK(store_batch_begin(s) == 0);
		CHECK(store_stmt_add(s, &t, &x) == 0);          /* no outcome yet: it and what follows wait */
		CHECK(store_stmt_add(s, &t, &y[0]) == 0 && store_stmt_outcome(s, y[0], &m) == 0);
		CHECK(store_batch_commit_settled(s) == 0);
		for (int i = 1; i < 4; i++)
			CHECK(store_stmt_add(s, &t, &y[i]) == 0 && store_stmt_outcome(s, y[i], &m) == 0);
		CHECK(store_stmt_outcome(s, x, &m) == 0);
		CHECK(store_batch_commit_settled(s) == 0);
		CHECK(q_int(p, "SELECT first_id FROM command_batches ORDER BY last_id DESC LIMIT 1") == x);
		CHECK(store_stmt_list(s, 5, stmt_rows_cb, top) == 0);
		CHECK(json_array_size(top) == 5);
		if (json_array_size(top) == 5) {
			CHECK(json_integer_value(json_object_get(json_array_get(top, 0), "id")) == y[3]);
			CHECK(json_integer_value(json_object_get(json_array_get(top, 3), "id")) == y[0]);
			CHECK(json_integer_value(json_object_get(json_array_get(top, 4), "id")) == x);
		}
		CHECK(store_stmt_list(s, 1000, stmt_rows_cb, every) == 0);
		CHECK((int64_t)json_array_size(every) == q_int(p, "SELECT count(*) FROM statements"));
		CHECK(json_integer_value(json_object_get(json_array_get(every, json_array_size(every) - 1), "id")) == 0);
		json_decref(top);
		json_decref(every);
		lone2 = y[3];
	}
	store_close(s);
	CHECK(verify(p, &v) == 0);
	/* after a restart, ids go on after the batch's */
	CHECK(store_open(p, &s) == 0);
	CHECK(s && store_stmt_add(s, &t, &lone) == 0 && lone == lone2 + 1);
	store_close(s);
	/* a batch's row is the index of its record: verify finds one edited, or pointed elsewhere */
	CHECK(verify(p, &v) == 0);
	CHECK(exec_sql(p, "UPDATE command_batches SET conns = ',1,' WHERE id = (SELECT max(id) FROM command_batches"
		       " WHERE audit_seq IS NOT NULL)") == 0);
	CHECK(verify(p, &v) == 1 && strstr(v.msg, "does not match its record") != NULL);
	CHECK(exec_sql(p, "UPDATE command_batches SET conns = json_extract((SELECT body FROM audit WHERE seq ="
		       " command_batches.audit_seq), '$.conns'), audit_seq = audit_seq - 1 WHERE id = (SELECT"
		       " max(id) FROM command_batches WHERE audit_seq IS NOT NULL)") == 0);
	CHECK(verify(p, &v) == 1 && strstr(v.msg, "does not match its record") != NULL);
	json_decref(mine);
	json_decref(all);
}

/* HTTP requests are held like statements: request and outcome in one row and one record. */
static void test_http_merged(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_http h = { .conn_id = 1, .seq = 1, .at_us = al_now_us(), .method = "DELETE",
				.host = "api.test", .path = "/items/1", .kind = "write", .body_len = 0,
				.request_sha256 = "ab", .decision = "review", .request_id = 4 };
	struct store_http_outcome o = { .status = 204, .bytes_up = 10, .bytes_down = 20, .duration_us = 3,
					.decision = "approved" };
	int64_t a = 0, b = 0;

	s = empty_store(p, sizeof(p));
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(store_batch_begin(s) == 0);
	CHECK(store_http_add(s, &h, &a) == 0);
	CHECK(store_http_add(s, &h, &b) == 0 && b == a + 1);
	CHECK(store_http_outcome(s, a, &o) == 0);
	CHECK(store_batch_commit(s) == 0);
	CHECK(store_batch_begin(s) == 0);
	CHECK(store_http_outcome(s, b, &o) == 0);
	CHECK(store_batch_commit(s) == 0);
	store_close(s);
	CHECK(q_int(p, "SELECT count(*) FROM http_requests WHERE status = 204 AND decision = 'approved'"
		    " AND request_id = 4 AND bytes_down = 20") == 2);
	/* a with its outcome in a batch; b alone, then its outcome */
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'commands' AND body LIKE '%\"status\":204%'") == 1);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'http_requests.insert'") == 1);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'http_requests.update'") == 1);
}

/* A record body is what Python's json.dumps(sort_keys, ensure_ascii=False) prints. */
/* A console token's hash is no part of its record; the record says whose token it is. */
static void test_token_hidden(void)
{
	char p[512];
	struct store *s = empty_store(p, sizeof(p));
	static const char sha[] = "aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44";

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(store_token_add(s, "alice", sha) == 0);
	store_close(s);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'token_add' AND body LIKE '%\"user\":\"alice\"%'") == 1);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE body LIKE '%aa11bb22%' OR body LIKE '%sha256%'") == 0);
}

static void test_body_json(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_stmt t = { .conn_id = 1, .seq = 1, .at_us = al_now_us(), .protocol = "simple",
				.text = "a\x01\xc3\xa9\xff\"\\\n/\x7f", .kind = "read",
				.relations_json = "[]", .decision = "allow" };
	int64_t id;

	s = empty_store(p, sizeof(p));
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(store_stmt_add(s, &t, &id) == 0);
	store_close(s);
	/* control characters as \u00xx, invalid UTF-8 as U+FFFD, DEL and '/' as they are */
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'statement' AND"
		    " instr(body, CAST(X'2274657874223A22615C7530303031C3A9EFBFBD5C225C5C5C6E2F7F22' AS TEXT)) > 0") == 1);
	/* keys sorted: decision < fingerprint < id < kind < ... < text */
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'statement' AND"
		    " body LIKE '{\"at_us\":%\"conn_id\":1,\"decision\":\"allow\",%'") == 1);
}

/* A write that fails leaves no record; a rolled-back durable change neither. */
static void test_failed_write_no_record(void)
{
	char p[512];
	struct store_verify v;
	struct store *s = fill(p, sizeof(p), 1);
	struct store_conn_end e = { .closed_us = 1, .reason = AL_REASON_CLOSED };
	int64_t seq, seq2;
	char h[65];

	CHECK(s != NULL);
	if (!s)
		return;
	store_audit_head(s, &seq, h);
	CHECK(store_conn_close(s, 9999, &e) < 0);      /* no such row */
	CHECK(store_request_end(s, 9999, "denied", "x") < 0);
	CHECK(store_audit_event(s, "policy_reload", 0, json_pack("{s:s}", "source", "/etc/airlock/airlock.conf")) == 0);
	CHECK(store_audit_event(s, "bad", 0, json_pack("[i]", 1)) < 0);
	CHECK(store_audit_event(s, "bad", 0, NULL) < 0);
	CHECK(store_batch_commit(s) == 0);
	store_audit_head(s, &seq2, h);
	CHECK(seq2 == seq + 1);
	store_close(s);
	CHECK(verify(p, &v) == 0);
}

/* Records of the review path (durable writes) chain too. */
static void test_review_records(void)
{
	char p[512];
	struct store_verify v;
	struct store *s = fill(p, sizeof(p), 1);
	struct store_request r = { .created_us = al_now_us(), .expires_us = al_now_us() + 1000000,
				   .conn_id = 1, .stmt_id = 1, .cgroup_id = 77, .resource = "pg",
				   .protocol = "postgres", .command = "DELETE FROM t WHERE id = 1",
				   .kind = "delete", .sha256 = "ab", .rule = "rule review", .approvals_needed = 1 };
	struct store_grant g = { .fingerprint = "fp", .resource = "pg", .cgroup_id = 77, .cgroup_path = "/agents/a",
				 .agent_uid = 1000, .approvers_json = "[\"dba\"]", .expires_us = al_now_us() + 900000000,
				 .created_by = "alice" };
	struct store_user_gone gone;
	int64_t id = 0, gid = 0;

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(store_request_add(s, &r, &id) == 0);
	CHECK(store_approval_add(s, id, "alice", "approve", NULL, 900) == 0);
	g.request_id = id;
	CHECK(store_grant_add(s, &g, &gid) == 0);
	CHECK(store_grant_revoke(s, gid, "bob") == 0);
	CHECK(store_request_end(s, id, "approved", NULL) == 0);
	CHECK(store_user_del(s, "alice", &gone) == 0 && gone.n_requests == 0 && gone.n_grants == 0);
	store_user_gone_free(&gone);
	store_close(s);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind IN ('request', 'approval', 'grant', 'revoke',"
		    " 'request_end', 'user_del')") == 6);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'user_del' AND body LIKE '%\"name\":\"alice\"%'") == 1);
	CHECK(verify(p, &v) == 0);
}

/* Recordings live by session: retention deletes those of sessions that ended long enough ago. */
static void test_recordings_retention(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_conn c = conn();
	int64_t old = al_now_us() - 7200 * 1000000ll, a = 0, b = 0, d = 0;
	struct store_conn_end e = { .closed_us = old + 1000000, .reason = AL_REASON_CLOSED };
	struct store_limits l = { .record_retention_us = 3600 * 1000000ll };

	s = empty_store(p, sizeof(p));
	CHECK(s != NULL);
	if (!s)
		return;
	c.opened_us = old;
	CHECK(store_conn_open(s, &c, &a) == 0);
	CHECK(store_conn_open(s, &c, &b) == 0);                                       /* open since 2 h */
	c.opened_us = al_now_us();
	CHECK(store_conn_open(s, &c, &d) == 0);
	for (int i = 1; i <= 3; i++) {
		CHECK(store_rec_add(s, a, i, old, "F", "Q", "SELECT 1", 8) == 0);
		CHECK(store_rec_add(s, b, i, old, "F", "Q", "SELECT 2", 8) == 0);
		CHECK(store_rec_add(s, d, i, old, "F", "Q", "SELECT 3", 8) == 0);
	}
	CHECK(store_conn_close(s, a, &e) == 0);                                       /* ended 2 h ago */
	e.closed_us = al_now_us();
	CHECK(store_conn_close(s, d, &e) == 0);                                       /* ended now */
	CHECK(store_batch_commit(s) == 0);
	/* the ended sessions' recordings are written at the commit after their end; b's waits */
	CHECK(q_int(p, "SELECT count(*) FROM recordings") == 2);
	store_set_limits(s, &l);
	store_tick(s);
	CHECK(store_batch_commit(s) == 0);
	store_close(s);
	CHECK(q_int(p, "SELECT count(*) FROM recordings WHERE conn_id = 1") == 0);
	CHECK(q_int(p, "SELECT count(*) FROM recordings WHERE conn_id = 2") == 1);  /* one chunk */
	CHECK(q_int(p, "SELECT count(*) FROM recordings WHERE conn_id = 3") == 1);
	CHECK(q_int(p, "SELECT sum(n) FROM recordings") == 6);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'recordings_expired'"
		    " AND body LIKE '%\"messages\":3%'") == 1);
}

/* A pass of retention goes through the sessions that ended before its cut a slice (2000) a
 * store tick, from where the last pass stopped: all of them once, the others never. */
static void test_recordings_retention_slices(void)
{
	char p[512], sql[1024];
	struct store *s = empty_store(p, sizeof(p));
	struct store_limits l = { .record_retention_us = 3600 * 1000000ll };
	int64_t old = al_now_us() - 7200 * 1000000ll;
	int ticks = 0;

	CHECK(s != NULL);
	if (!s)
		return;
	store_close(s);
	/* 5000 sessions that ended 2 h ago, one in three with a recording; 10 that ended now; 5 open */
	snprintf(sql, sizeof(sql), "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 5015)"
		 " INSERT INTO connections (id, opened_us, closed_us, reason) SELECT i, %lld + i,"
		 " CASE WHEN i <= 5000 THEN %lld + i + 1 WHEN i <= 5010 THEN %lld END, 'closed' FROM c",
		 (long long)old, (long long)old, (long long)al_now_us());
	CHECK(exec_sql(p, sql) == 0);
	CHECK(exec_sql(p, "INSERT INTO recordings (conn_id, seq, at_us, n, data) SELECT id, 1, opened_us, 2, X'00'"
		       " FROM connections WHERE id % 3 = 0 OR id > 5000") == 0);
	CHECK(q_int(p, "SELECT count(*) FROM recordings") == 1666 + 15);
	CHECK(store_open(p, &s) == 0);
	if (!s)
		return;
	store_set_limits(s, &l);
	do {
		store_tick(s);
		CHECK(store_batch_commit(s) == 0);
	} while (++ticks < 10 && q_int(p, "SELECT count(*) FROM audit WHERE kind = 'recordings_expired'") == 0);
	CHECK(ticks == 3);      /* 2000 + 2000 + 1000 */
	CHECK(q_int(p, "SELECT count(*) FROM recordings") == 15);
	CHECK(q_int(p, "SELECT count(*) FROM recordings WHERE conn_id <= 5000") == 0);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'recordings_expired'"
		    " AND body LIKE '%\"messages\":3332}'") == 1);
	/* the next ticks (within a minute) start no pass */
	store_tick(s);
	CHECK(store_batch_commit(s) == 0);
	store_close(s);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE kind = 'recordings_expired'") == 1);
}

/* A session's messages are gathered into chunk rows that outlive a commit: one is written
 * once it is REC_HOLD_US (200 ms) old, its session ended, or at close. Read back they are the
 * messages, in order, byte for byte (newlines, NUL-less binary, no data), sessions
 * interleaved or not. */
static void test_recordings_chunks(void)
{
	char p[512], got[2048], want[2048];
	struct store *s = empty_store(p, sizeof(p));
	static const char bin[] = "a\nb 7 F Q 3\n\x01\xff";
	struct store_conn c = conn();
	struct store_conn_end e = { .closed_us = al_now_us(), .reason = AL_REASON_CLOSED };
	int64_t id = 0;

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(store_batch_begin(s) == 0);
	CHECK(store_rec_add(s, 5, 1, 100, "F", "Q", "SELECT 1", 8) == 0);
	CHECK(store_rec_add(s, 6, 1, 101, "F", "stdin", bin, sizeof(bin) - 1) == 0);
	CHECK(store_rec_add(s, 5, 2, 102, "B", "T", NULL, 0) == 0);
	CHECK(store_rec_add(s, 5, 3, 103, "B", "C", "", 0) == 0);
	CHECK(store_batch_commit(s) == 0);
	CHECK(q_int(p, "SELECT count(*) FROM recordings") == 0);    /* live sessions: held */
	/* next batches (store_rec_add opens one) join the held chunk until it is old enough */
	CHECK(store_rec_add(s, 5, 4, 104, "B", "Z", "I", 1) == 0);
	CHECK(store_batch_commit(s) == 0);
	CHECK(q_int(p, "SELECT count(*) FROM recordings") == 0);
	usleep(250 * 1000);
	store_tick(s);                                              /* opens a batch for them */
	CHECK(store_batch_commit(s) == 0);
	CHECK(q_int(p, "SELECT count(*) FROM recordings") == 2);
	CHECK(q_int(p, "SELECT n FROM recordings WHERE conn_id = 5") == 4);
	CHECK(store_rec_add(s, 5, 5, 105, "A", "truncated", "record_limit reached", 20) == 0);
	CHECK(store_batch_commit(s) == 0);
	CHECK(q_int(p, "SELECT count(*) FROM recordings WHERE conn_id = 5") == 1);
	/* a session's end makes its chunk due at the next commit */
	CHECK(store_conn_open(s, &c, &id) == 0);
	CHECK(store_rec_add(s, id, 1, 300, "F", "Q", "SELECT 9", 8) == 0);
	CHECK(store_batch_commit(s) == 0);
	CHECK(q_int(p, "SELECT count(*) FROM recordings WHERE conn_id = 1") == 0);
	CHECK(store_conn_close(s, id, &e) == 0);
	CHECK(store_batch_commit(s) == 0);
	CHECK(q_int(p, "SELECT count(*) FROM recordings WHERE conn_id = 1") == 1);
	/* many sessions at once (the chunk table grows); close writes what is held */
	CHECK(store_batch_begin(s) == 0);
	for (int i = 0; i < 300; i++)
		for (int k = 0; k < 2; k++)
			CHECK(store_rec_add(s, 1000 + i, k + 1, 200 + k, "F", "Q", "x", 1) == 0);
	CHECK(store_batch_commit(s) == 0);
	store_close(s);
	CHECK(q_int(p, "SELECT count(*) FROM recordings WHERE conn_id = 5") == 2);
	CHECK(rec_text(p, 5, got, sizeof(got)) == 0);
	CHECK_STR(got, "1 100 F Q SELECT 1|2 102 B T -|3 103 B C |4 104 B Z I|5 105 A truncated record_limit reached");
	CHECK(rec_text(p, 6, got, sizeof(got)) == 0);
	snprintf(want, sizeof(want), "1 101 F stdin %s", bin);
	CHECK_STR(got, want);
	CHECK(q_int(p, "SELECT count(*) FROM recordings WHERE conn_id >= 1000") == 300);
	CHECK(q_int(p, "SELECT sum(n) FROM recordings WHERE conn_id >= 1000") == 600);
	CHECK(rec_text(p, 1299, got, sizeof(got)) == 0);
	CHECK_STR(got, "1 200 F Q x|2 201 F Q x");
	/* a chunk that is not what the store writes is an error, not a crash or a guess */
	CHECK(exec_sql(p, "INSERT INTO recordings VALUES (9, 1, 1, 1, CAST('1 1 F Q 99\nshort' AS BLOB)),"
		       " (10, 1, 1, 1, CAST('1 1 F\n' AS BLOB))") == 0);
	CHECK(rec_text(p, 9, got, sizeof(got)) == -1);
	CHECK(rec_text(p, 10, got, sizeof(got)) == -1);
}

/* /metrics' statement counts: the store's first count is a thread's snapshot, while the
 * event loop goes on writing; what was written around it is counted once, not twice or never;
 * a close while it counts ends it. */
static void test_count_snapshot(void)
{
	char p[512];
	struct store *s = empty_store(p, sizeof(p));
	struct store_stmt t = { .seq = 1, .protocol = "simple", .text = "SELECT 1", .kind = "read" };
	struct store_stmt_outcome o = { .tag = "SELECT 1", .rows = 1, .duration_us = 1 };
	struct { int64_t allow, deny, other; } c = { 0, 0, 0 };
	int64_t id;
	int r;

	CHECK(s != NULL);
	if (!s)
		return;
	for (int b = 0; b < 60; b++) {
		CHECK(store_batch_begin(s) == 0);
		for (int i = 0; i < 50; i++) {
			t.conn_id = 1 + i % 3;
			t.decision = i % 5 ? "allow" : "deny";
			CHECK(store_stmt_add(s, &t, &id) == 0 && store_stmt_outcome(s, id, &o) == 0);
		}
		CHECK(store_batch_commit_settled(s) == 0);
	}
	store_count_start(s);
	/* written while the thread counts: some before its snapshot, some after, one alone */
	for (int b = 0; b < 5; b++) {
		CHECK(store_batch_begin(s) == 0);
		t.decision = "allow";
		CHECK(store_stmt_add(s, &t, &id) == 0 && store_stmt_outcome(s, id, &o) == 0);
		CHECK(store_batch_commit_settled(s) == 0);
	}
	t.decision = "review";
	CHECK(store_stmt_add(s, &t, &id) == 0);
	r = count_stmts(s, &c);
	CHECK(r == 0);
	CHECK(c.allow == 2400 + 5 && c.deny == 600 && c.other == 1);
	memset(&c, 0, sizeof(c));
	CHECK(store_batch_begin(s) == 0);
	t.decision = "deny";
	CHECK(store_stmt_add(s, &t, &id) == 0 && store_stmt_outcome(s, id, &o) == 0);
	CHECK(store_batch_commit_settled(s) == 0);
	CHECK(count_stmts(s, &c) == 0);
	CHECK(c.allow == 2405 && c.deny == 601 && c.other == 1);
	store_close(s);
	/* a close while the count runs (or right after) ends it; the next start counts it all */
	CHECK(store_open(p, &s) == 0);
	if (!s)
		return;
	store_count_start(s);
	store_close(s);
	CHECK(store_open(p, &s) == 0);
	if (!s)
		return;
	memset(&c, 0, sizeof(c));
	CHECK(count_stmts(s, &c) == 0);
	CHECK(c.allow == 2405 && c.deny == 601 && c.other == 1);
	store_close(s);
}


/* One row of a reference query as JSON, typed as the store's listings type it. */
static json_t *ref_row(sqlite3_stmt *st)
{
	json_t *o = json_object();

	for (int i = 0; i < sqlite3_column_count(st); i++) {
		json_t *v;

		switch (sqlite3_column_type(st, i)) {
		case SQLITE_NULL: v = json_null(); break;
		case SQLITE_INTEGER: v = json_integer(sqlite3_column_int64(st, i)); break;
		default: v = json_stringn((const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
		}
		json_object_set_new(o, sqlite3_column_name(st, i), v);
	}
	return o;
}

static int collect_cb(void *arg, const char *json)
{
	json_t *row = json_loads(json, JSON_ALLOW_NUL, NULL);

	return row ? json_array_append_new(arg, row) : -1;
}

/* 1 if store_find_statements answers what the statements view answers for f. */
static int find_as_view(sqlite3 *h, struct store_reader *rd, const struct store_find_filter *f)
{
	json_t *got = json_array(), *want = json_array();
	sqlite3_stmt *st = NULL;
	int same;

	if (sqlite3_prepare_v2(h, "SELECT st.*, c.resource, c.cgroup_path, c.exe, c.pid, c.uid"
			       " FROM statements st LEFT JOIN connections c ON c.id = st.conn_id"
			       " WHERE (?1 IS NULL OR c.cgroup_path = ?1 OR c.cgroup_path GLOB ?1 || '/*'"
			       " OR c.exe = ?1) AND (?2 IS NULL OR c.resource = ?2)"
			       " AND (?3 IS NULL OR st.decision = ?3) AND st.at_us >= ?4"
			       " ORDER BY st.id DESC LIMIT ?5", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, f->agent, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, f->resource, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, f->decision, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, f->since_us);
		sqlite3_bind_int64(st, 5, f->limit);
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(want, ref_row(st));
	}
	sqlite3_finalize(st);
	same = store_reader_begin(rd, 0) == 0 && store_find_statements(rd, f, collect_cb, got) == 0 &&
	       json_equal(got, want);
	store_reader_end(rd);
	if (!same)
		printf("#   agent %s resource %s decision %s since %lld limit %u: %zu rows, want %zu\n",
		       f->agent ? f->agent : "-", f->resource ? f->resource : "-", f->decision ? f->decision : "-",
		       (long long)f->since_us, f->limit, json_array_size(got), json_array_size(want));
	json_decref(got);
	json_decref(want);
	return same;
}

typedef int (*sess_fn)(struct store_reader *r, int64_t conn_id, const struct store_page *pg,
		       int (*cb)(void *arg, const char *json), void *arg);

/* The session's rows page after page of `limit` (each page starting after the last row of the one
 * before, by key and id), all in one array; NULL if a page failed or the pages never end. */
static json_t *session_pages(struct store_reader *rd, int64_t conn_id, sess_fn fn, const char *key,
			     unsigned int limit)
{
	json_t *all = json_array();
	struct store_page pg = { .limit = limit };

	for (int pages = 0; pages < 10000; pages++) {
		json_t *page = json_array(), *last;
		size_t n;
		int rc = fn(rd, conn_id, &pg, collect_cb, page);

		n = json_array_size(page);
		if (rc < 0 || n > limit) {
			json_decref(page);
			break;
		}
		json_array_extend(all, page);
		if (n < limit) {
			json_decref(page);
			return all;
		}
		last = json_array_get(page, n - 1);
		pg.after = 1;
		pg.key = json_integer_value(json_object_get(last, key));
		pg.id = json_integer_value(json_object_get(last, "id"));
		json_decref(page);
	}
	json_decref(all);
	return NULL;
}

/* 1 if fn (a session's rows, read by the store) answers what the view query sql does for the
 * session, and that is at least min rows: in one read, and page by page (pages of 1, 3 and 7
 * rows, each after the last row of the page before by (key, id)). */
static int session_as_view(sqlite3 *h, struct store_reader *rd, int64_t conn_id, sess_fn fn, const char *key,
			   size_t min, const char *sql)
{
	static const unsigned int limits[] = { 1, 3, 7 };
	json_t *got = json_array(), *want = json_array();
	sqlite3_stmt *st = NULL;
	int same;

	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, conn_id);
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(want, ref_row(st));
	}
	sqlite3_finalize(st);
	same = store_reader_begin(rd, 0) == 0 && fn(rd, conn_id, NULL, collect_cb, got) == 0 && json_equal(got, want) &&
	       json_array_size(want) >= min;
	for (size_t i = 0; same && i < AL_ARRAY_LEN(limits); i++) {
		json_t *paged = session_pages(rd, conn_id, fn, key, limits[i]);

		same = paged && json_equal(paged, want);
		if (!same)
			printf("#   session %lld in pages of %u: %zu rows\n", (long long)conn_id, limits[i],
			       paged ? json_array_size(paged) : 0);
		json_decref(paged);
	}
	store_reader_end(rd);
	if (!same)
		printf("#   session %lld: %zu rows, want %zu (%s)\n", (long long)conn_id, json_array_size(got),
		       json_array_size(want), sql);
	json_decref(got);
	json_decref(want);
	return same;
}

static json_t *jstr_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static int since_cb(void *arg, const struct store_stmt_view *v)
{
	json_t *o = json_pack("{s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o}",
			      "id", (json_int_t)v->id, "at_us", (json_int_t)v->at_us, "text", jstr_or_null(v->text),
			      "kind", jstr_or_null(v->kind), "relations", jstr_or_null(v->relations_json),
			      "decision", jstr_or_null(v->decision), "rule", jstr_or_null(v->rule),
			      "unbounded_write", (json_int_t)v->unbounded_write, "resource", jstr_or_null(v->resource),
			      "cgroup_path", jstr_or_null(v->cgroup_path), "exe", jstr_or_null(v->exe),
			      "uid", v->uid < 0 ? json_null() : json_integer(v->uid));

	return o ? json_array_append_new(arg, o) : -1;
}

static int by_id(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));

	return x < y ? -1 : x > y;
}

static int since_http_cb(void *arg, const struct store_http_view *v)
{
	json_t *o = json_pack("{s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I}",
			      "id", (json_int_t)v->id, "at_us", (json_int_t)v->at_us, "method", jstr_or_null(v->method),
			      "host", jstr_or_null(v->host), "path", jstr_or_null(v->path), "query", jstr_or_null(v->query),
			      "kind", jstr_or_null(v->kind), "k8s", jstr_or_null(v->k8s_json),
			      "body_sha256", jstr_or_null(v->body_sha256), "decision", jstr_or_null(v->decision),
			      "rule", jstr_or_null(v->rule), "resource", jstr_or_null(v->resource),
			      "cgroup_path", jstr_or_null(v->cgroup_path), "exe", jstr_or_null(v->exe),
			      "uid", v->uid < 0 ? json_null() : json_integer(v->uid), "dst_addr", jstr_or_null(v->dst_addr),
			      "dst_port", (json_int_t)v->dst_port);

	return o ? json_array_append_new(arg, o) : -1;
}

/* 1 if policy test's reads (store_stmts_since, store_http_since) hand over what the statements
 * or http_requests view holds since since_us, each with its connection's agent, and at least min
 * of them (compared in id order: the reads keep none). */
static int since_as_view(sqlite3 *h, struct store_reader *rd, int http, int64_t since_us, size_t min)
{
	json_t *got = json_array(), *want = json_array(), *sorted = json_array(), **v;
	sqlite3_stmt *st = NULL;
	size_t n;
	int same;

	if (sqlite3_prepare_v2(h, http ? "SELECT h.id, h.at_us, h.method, h.host, h.path, h.query, h.kind, h.k8s,"
			       " h.body_sha256, h.decision, h.rule, c.resource, c.cgroup_path, c.exe, c.uid, c.dst_addr,"
			       " coalesce(c.dst_port, 0) AS dst_port FROM http_requests h LEFT JOIN connections c"
			       " ON c.id = h.conn_id WHERE h.at_us >= ?1 AND h.decision != 'error' ORDER BY h.id"
			       : "SELECT s.id, s.at_us, s.text, s.kind, s.relations, s.decision, s.rule,"
			       " s.unbounded_write, c.resource, c.cgroup_path, c.exe, c.uid FROM statements s"
			       " LEFT JOIN connections c ON c.id = s.conn_id WHERE s.at_us >= ?1 ORDER BY s.id",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, since_us);
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(want, ref_row(st));
	}
	sqlite3_finalize(st);
	same = store_reader_begin(rd, 0) == 0 &&
	       (http ? store_http_since(rd, since_us, since_http_cb, got) : store_stmts_since(rd, since_us, since_cb, got)) == 0;
	store_reader_end(rd);
	n = json_array_size(got);
	v = calloc(n + 1, sizeof(*v));
	for (size_t i = 0; v && i < n; i++)
		v[i] = json_array_get(got, i);
	if (v)
		qsort(v, n, sizeof(*v), by_id);
	for (size_t i = 0; v && i < n; i++)
		json_array_append(sorted, v[i]);
	free(v);
	same = same && json_equal(sorted, want) && json_array_size(want) >= min;
	if (!same)
		printf("#   %s since %lld: %zu, want %zu\n", http ? "HTTP requests" : "statements", (long long)since_us,
		       n, json_array_size(want));
	json_decref(got);
	json_decref(want);
	json_decref(sorted);
	return same;
}

/*
 * The statements search (store_find_statements: batched rows read in C, newest batches first,
 * stopping early) answers what the statements view answers, row for row and column for column,
 * for every filter: rows alone and batched, carried over a commit, with odd text, across
 * connections whose paths share a prefix, and with since and the limit cutting in.
 */
static void test_find_statements(void)
{
	static const char *const texts[] = {
		"SELECT 1", "DELETE FROM t WHERE a = 'x\"y'", "UPDATE t SET v = E'\\\\n' -- \xc3\xa9\xe2\x82\xac",
		"SELECT '\t\x01<img src=x>'", "INSERT INTO t VALUES ('\xf0\x9f\x98\x80')",
	};
	static const char *const decisions[] = { "allow", "deny", "review", NULL };
	struct conn_def { const char *cg, *exe, *res; } cd[] = {
		{ "/a/b", "/usr/bin/psql", "pg1" }, { "/a/bc", "/usr/bin/python3", "pg2" },
		{ "/x", "/opt/a", "pg1" }, { "/a", "/usr/bin/psql", "pg2" },
	};
	char p[512], err[256];
	struct store *s = empty_store(p, sizeof(p));
	struct store_reader *rd = NULL;
	int64_t conns[4], id, base = 0, mid = 0;
	sqlite3 *h = NULL;
	int n = 0, cases = 0, bad = 0;

	CHECK(s != NULL);
	if (!s)
		return;
	for (int i = 0; i < 4; i++) {
		struct store_conn c = conn();

		c.cgroup_path = cd[i].cg;
		c.exe = cd[i].exe;
		c.resource = cd[i].res;
		CHECK(store_conn_open(s, &c, &conns[i]) == 0);
	}
	base = al_now_us() + 1000;      /* the statements come after their sessions opened */
	/* 30 commits of up to 13 rows, every fifth row left waiting for its outcome (carried), and
	 * rows alone between them (no batch open). */
	for (int b = 0; b < 30; b++) {
		CHECK(store_batch_begin(s) == 0);
		for (int i = 0; i < 13; i++, n++) {
			struct store_stmt t = {
				.conn_id = conns[(n * 7 + b) % 4], .seq = n, .at_us = base + (int64_t)n * 1000,
				.protocol = n % 3 ? "simple" : "extended", .text = texts[n % 5], .kind = "read",
				.fingerprint = "f00d", .relations_json = n % 2 ? "[\"t\"]" : "[]",
				.params_json = n % 4 ? NULL : "[\"1\",null]", .decision = decisions[n % 4],
				.rule = n % 3 ? NULL : "rule 2",
			};
			struct store_stmt_outcome o = { .tag = "SELECT 1", .rows = n % 6 ? n : -1, .duration_us = n };

			CHECK(store_stmt_add(s, &t, &id) == 0);
			if (n % 5)
				CHECK(store_stmt_outcome(s, id, &o) == 0);
		}
		/* and HTTP requests, some waiting for their outcome */
		for (int i = 0; i < 3; i++) {
			struct store_http hr = {
				.conn_id = conns[(b + i) % 4], .seq = b * 3 + i, .at_us = base + (int64_t)n * 1000 + i,
				.method = i ? "GET" : "DELETE", .host = "api.internal", .path = "/v1/items",
				.query = i == 2 ? "a=1" : NULL, .kind = "read", .headers_json = "{\"accept\":\"*/*\"}",
				.body_len = i, .request_sha256 = "ab", .body_sha256 = i == 2 ? "cd" : NULL,
				.k8s_json = i ? NULL : "{\"verb\":\"exec\",\"command\":[\"sh\"]}",
				.decision = (b + i) % 5 == 4 ? "error" : decisions[(b + i) % 4],
			};
			struct store_http_outcome ho = { .status = 200, .bytes_up = 10, .bytes_down = 20, .duration_us = 5 };

			CHECK(store_http_add(s, &hr, &id) == 0);
			if (i != 1)
				CHECK(store_http_outcome(s, id, &ho) == 0);
		}
		CHECK(store_batch_commit_settled(s) == 0);
		if (b == 15)
			mid = base + (int64_t)n * 1000;
		if (b % 4 == 0) {
			struct store_stmt t = { .conn_id = conns[b % 4], .seq = n, .at_us = base + (int64_t)n * 1000,
						.protocol = "simple", .text = "SELECT 'alone'", .kind = "read",
						.decision = decisions[b % 3] };

			CHECK(store_stmt_add(s, &t, &id) == 0);
			n++;
		}
	}
	CHECK(store_reader_sync(s) == 0);
	/* A decision written with an escape (\u0065 is e): both readers decode it. */
	CHECK(exec_sql(p, "UPDATE audit SET body = replace(body, '\"decision\":\"deny\"', '\"decision\":\"d\\u0065ny\"')"
		       " WHERE seq = (SELECT audit_seq FROM command_batches WHERE audit_seq IS NOT NULL"
		       " ORDER BY id LIMIT 1 OFFSET 3)") == 0);
	CHECK(q_int(p, "SELECT count(*) FROM audit WHERE body LIKE '%d\\u0065ny%'") == 1);
	CHECK(q_int(p, "SELECT count(*) FROM statement_rows") > 0);
	CHECK(q_int(p, "SELECT count(*) FROM command_batches") >= 30);
	CHECK(store_reader_open(p, &rd, err, sizeof(err)) == 0);
	CHECK(sqlite3_open_v2(p, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
	if (!rd || !h)
		goto out;
	{
		const char *agents[] = { NULL, "/a", "/a/b", "/a/bc", "/usr/bin/psql", "/nope", "/a/" };
		const char *resources[] = { NULL, "pg1" };
		const char *decs[] = { NULL, "deny", "review" };
		int64_t sinces[] = { 0, mid };
		unsigned int limits[] = { 3, 40, 1000 };

		for (size_t a = 0; a < AL_ARRAY_LEN(agents); a++)
		for (size_t r = 0; r < AL_ARRAY_LEN(resources); r++)
		for (size_t d = 0; d < AL_ARRAY_LEN(decs); d++)
		for (size_t t = 0; t < AL_ARRAY_LEN(sinces); t++)
		for (size_t l = 0; l < AL_ARRAY_LEN(limits); l++) {
			struct store_find_filter f = { .agent = agents[a], .resource = resources[r],
						       .decision = decs[d], .since_us = sinces[t], .limit = limits[l] };

			cases++;
			bad += !find_as_view(h, rd, &f);
		}
	}
	/* every limit from 1 up, with and without since: the limit falls on each row in turn,
	 * carried ones too (the walk's stop) */
	for (unsigned int l = 1; l <= 80; l++)
		for (int t = 0; t < 2; t++) {
			struct store_find_filter f = { .since_us = t ? mid : 0, .limit = l };

			cases++;
			bad += !find_as_view(h, rd, &f);
		}
	/* each session's statements, oldest first, with the request each went to review as */
	for (int i = 0; i < 4; i++, cases++)
		bad += !session_as_view(h, rd, conns[i], store_conn_statements, "at_us", 20,
					"SELECT st.*, (SELECT r.id FROM requests r WHERE r.stmt_id = st.id ORDER BY"
					" r.id DESC LIMIT 1) AS request_id FROM statements st WHERE st.conn_id = ?1"
					" ORDER BY st.at_us, st.id");
	/* each session's HTTP requests, in order */
	for (int i = 0; i < 4; i++, cases++)
		bad += !session_as_view(h, rd, conns[i], store_conn_http, "seq", 10,
					"SELECT * FROM http_requests WHERE conn_id = ?1 ORDER BY seq, id");
	/* policy test's reads: every statement and HTTP request since a time, batched and alone,
	 * with its agent */
	for (int t = 0; t < 4; t++, cases++)
		bad += !since_as_view(h, rd, t / 2, t % 2 ? mid : 0, t / 2 ? 10 : 40);
	CHECK(bad == 0);
	CHECK(cases == 7 * 2 * 3 * 2 * 3 + 160 + 4 + 4 + 4);
out:
	sqlite3_close(h);
	store_reader_close(rd);
	store_close(s);
}

/* 1 if store_totals (kept up by the writes) says what a count of the rows says. */
static int totals_as_rows(struct store *s, const char *p)
{
	struct store_totals t;
	char sql[200];
	int ok;

	if (store_totals(s, &t) < 0)
		return 0;
	ok = (int64_t)t.connections == q_int(p, "SELECT count(*) FROM connections");
	for (int r = 1; r < AL_REASON__COUNT; r++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM connections WHERE reason = '%s'", al_reason_name(r));
		if ((int64_t)t.by_reason[r] != q_int(p, sql)) {
			printf("#   totals: %s %llu, rows %lld\n", al_reason_name(r),
			       (unsigned long long)t.by_reason[r], (long long)q_int(p, sql));
			ok = 0;
		}
	}
	return ok;
}

/* The connection totals (airlockctl status) are counted once, then kept up by opens, closes and
 * rows recorded closed; a rotation makes them count again. */
static void test_totals_kept(void)
{
	char p[512];
	struct store *s = empty_store(p, sizeof(p));
	struct store_conn c = conn();
	struct store_conn_end e = { .closed_us = al_now_us(), .reason = AL_REASON_CLOSED };
	struct store_conn_end d = { .closed_us = al_now_us(), .reason = AL_REASON_POLICY_DENY, .detail = "no" };
	int64_t id[4];

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(totals_as_rows(s, p));
	for (int i = 0; i < 4; i++)
		CHECK(store_conn_open(s, &c, &id[i]) == 0);
	CHECK(totals_as_rows(s, p));
	CHECK(store_conn_close(s, id[0], &e) == 0 && store_conn_close(s, id[1], &d) == 0);
	CHECK(store_conn_close(s, id[1], &e) < 0);      /* closed already: no change */
	CHECK(store_conn_record(s, &c, &d) == 0);
	CHECK(store_batch_begin(s) == 0);
	CHECK(store_conn_close(s, id[2], &e) == 0 && store_conn_record(s, &c, &e) == 0);
	CHECK(store_batch_commit(s) == 0);
	CHECK(totals_as_rows(s, p));
	store_close(s);
	/* a restart ends the open row (shutdown) and counts again */
	CHECK(store_open(p, &s) == 0);
	if (!s)
		return;
	CHECK(totals_as_rows(s, p));
	store_close(s);
}

struct rev_seen {
	int64_t pending, approved, denied, timeout, other;
};

static int rev_cb(void *arg, const char *key, int64_t n)
{
	struct rev_seen *r = arg;

	if (strcmp(key, "pending") == 0)
		r->pending += n;
	else if (strcmp(key, "approved") == 0)
		r->approved += n;
	else if (strcmp(key, "denied") == 0)
		r->denied += n;
	else if (strcmp(key, "timeout") == 0)
		r->timeout += n;
	else
		r->other += n;
	return 0;
}

/* 1 if /metrics' review counts and latency histogram (kept up by the writes) say what a count
 * of the rows says. */
static int review_metrics_as_rows(struct store *s, const char *p)
{
	static const double bounds[] = { 1, 60, 3600 };
	struct rev_seen r = { 0 };
	uint64_t counts[3], total;
	double sum;
	char sql[300];
	int ok = store_count_requests_by_state(s, rev_cb, &r) == 0 &&
		 store_decision_latency(s, bounds, 3, counts, &total, &sum) == 0;

	ok = ok && r.pending == q_int(p, "SELECT count(*) FROM requests WHERE state = 'pending'") &&
	     r.approved == q_int(p, "SELECT count(*) FROM requests WHERE state = 'approved'") &&
	     r.denied == q_int(p, "SELECT count(*) FROM requests WHERE state = 'denied'") &&
	     r.timeout == q_int(p, "SELECT count(*) FROM requests WHERE state = 'timeout'") &&
	     r.other == q_int(p, "SELECT count(*) FROM requests WHERE state NOT IN ('pending', 'approved',"
			      " 'denied', 'timeout')") &&
	     (int64_t)total == q_int(p, "SELECT count(*) FROM requests WHERE state IN ('approved', 'denied')");
	for (int i = 0; ok && i < 3; i++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM requests WHERE state IN ('approved', 'denied')"
			 " AND decided_us - created_us <= %lld", (long long)(bounds[i] * 1e6));
		ok = (int64_t)counts[i] == q_int(p, sql);
	}
	if (!ok)
		printf("#   review metrics: pending %lld approved %lld denied %lld timeout %lld, latency total %llu\n",
		       (long long)r.pending, (long long)r.approved, (long long)r.denied, (long long)r.timeout,
		       (unsigned long long)total);
	return ok;
}

/* /metrics' review counts are counted once, then kept up by adds, ends and deciding reviews; a
 * restart aborts the pending ones and counts again. */
static void test_review_metrics_kept(void)
{
	char p[512];
	struct store *s = empty_store(p, sizeof(p));
	struct store_request r = { .expires_us = al_now_us() + 1000000, .conn_id = 1, .stmt_id = 1,
				   .cgroup_id = 77, .resource = "pg", .protocol = "postgres",
				   .command = "DELETE FROM t WHERE id = 1", .kind = "delete", .sha256 = "ab",
				   .rule = "rule review", .approvals_needed = 1 };
	int64_t id[6];

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(review_metrics_as_rows(s, p));
	for (int i = 0; i < 6; i++) {
		r.created_us = al_now_us() - (int64_t)i * 30 * 1000000;        /* waited 0 .. 150 s */
		CHECK(store_request_add(s, &r, &id[i]) == 0);
	}
	CHECK(review_metrics_as_rows(s, p));
	CHECK(store_request_end(s, id[0], "approved", NULL) == 0);
	CHECK(store_request_end(s, id[1], "timeout", NULL) == 0);
	CHECK(store_approval_final(s, id[2], "alice", "deny", "no", 0, "denied") == 0);
	CHECK(store_approval_final(s, id[3], "bob", "approve", NULL, 0, "approved") == 0);
	CHECK(store_request_end(s, id[3], "denied", NULL) < 0);     /* not pending: nothing changes */
	CHECK(review_metrics_as_rows(s, p));
	store_close(s);
	CHECK(store_open(p, &s) == 0);
	if (!s)
		return;
	CHECK(review_metrics_as_rows(s, p));
	CHECK(q_int(p, "SELECT count(*) FROM requests WHERE state = 'aborted'") == 2);
	store_close(s);
}

/* A version 8 store (recordings with a rowid and a time index) keeps its recordings in 9 and 10. */
static void test_recordings_v8_upgrade(void)
{
	char p[512], got[512];
	struct store *s = NULL;

	s = empty_store(p, sizeof(p));
	CHECK(s != NULL);
	store_close(s);
	s = NULL;
	CHECK(exec_sql(p, "DROP TABLE recordings;"
		       " CREATE TABLE recordings (conn_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
		       " at_us INTEGER NOT NULL, dir TEXT NOT NULL, type TEXT NOT NULL, data TEXT,"
		       " PRIMARY KEY (conn_id, seq)); CREATE INDEX recordings_at_us ON recordings(at_us);"
		       " INSERT INTO recordings VALUES (7, 1, 5, 'F', 'Q', 'SELECT 1'), (7, 2, 6, 'B', 'C', 'SELECT 1'),"
		       " (7, 3, 7, 'B', 'T', NULL);"
		       /* and the tables as they were before 11 (with a statement it keeps) */
		       " DROP VIEW statements; DROP VIEW http_requests; DROP TABLE command_batches;"
		       " ALTER TABLE statement_rows RENAME TO statements;"
		       " ALTER TABLE http_request_rows RENAME TO http_requests;"
		       " INSERT INTO statements (conn_id, seq, at_us, protocol, text, kind, decision)"
		       " VALUES (7, 1, 5, 'simple', 'SELECT 1', 'read', 'allow');"
		       " DROP INDEX connections_closed_us;"     /* and before 14 */
		       " ALTER TABLE grants DROP COLUMN agent_uid;"     /* and before 15 */
		       " ALTER TABLE pins DROP COLUMN gone_us;"         /* and before 16 */
		       " ALTER TABLE grants DROP COLUMN approvers;"     /* and before 18 */
		       " ALTER TABLE grants DROP COLUMN agent_iface;"   /* and before 17 */
		       " ALTER TABLE grants DROP COLUMN agent_ifindex;"
		       " ALTER TABLE requests DROP COLUMN iface;"
		       " PRAGMA user_version = 8;") == 0);
	CHECK(store_open(p, &s) == 0);
	CHECK(s && store_schema_version(s) == STORE_SCHEMA_VERSION);
	store_close(s);
	CHECK(q_int(p, "SELECT count(*) FROM sqlite_schema WHERE name = 'connections_closed_us'") == 1);
	CHECK(q_int(p, "SELECT count(*) FROM sqlite_schema WHERE name = 'recordings'"
		    " AND sql LIKE '%WITHOUT ROWID%'") == 1);
	CHECK(q_int(p, "SELECT count(*) FROM sqlite_schema WHERE name = 'recordings_at_us'") == 0);
	/* and in 10 each old row is a chunk of one message, read back as it was */
	CHECK(q_int(p, "SELECT count(*) FROM recordings WHERE conn_id = 7 AND n = 1") == 3);
	/* and in 11 the statements table's rows are statement_rows, shown by the statements view */
	CHECK(q_int(p, "SELECT count(*) FROM sqlite_schema WHERE name = 'statements' AND type = 'view'") == 1);
	CHECK(q_int(p, "SELECT count(*) FROM statements WHERE conn_id = 7 AND text = 'SELECT 1'") == 1);
	CHECK(rec_text(p, 7, got, sizeof(got)) == 0);
	CHECK_STR(got, "1 5 F Q SELECT 1|2 6 B C SELECT 1|3 7 B T -");
}

/* Rotation: the archive holds the chain so far, the live store chains on from its last hash. */
static void test_rotate(void)
{
	char p[512], arch[800] = "";
	struct store_verify v;
	struct store *s = fill(p, sizeof(p), 1);
	struct store_limits l = { .max_size = 256 * 1024, .full = STORE_FULL_ROTATE };
	struct store_conn_end e = { .closed_us = al_now_us(), .reason = AL_REASON_CLOSED };
	struct store_conn c = conn();
	int64_t id, seq, keep = 0;
	char hash[65], sql[200];
	struct dirent *d;
	DIR *dir;
	char dpath[512];

	CHECK(s != NULL);
	if (!s)
		return;
	/* an open session's batched statements: their batch outlives the records that hold them */
	CHECK(store_conn_open(s, &c, &keep) == 0);
	CHECK(store_batch_begin(s) == 0);
	for (int i = 0; i < 3; i++) {
		struct store_stmt t = { .conn_id = keep, .seq = i, .at_us = al_now_us(), .protocol = "simple",
					.text = "SELECT 1", .kind = "read", .relations_json = "[]", .decision = "allow" };
		struct store_stmt_outcome o = { .tag = "SELECT 1", .rows = 1, .duration_us = 1 };

		CHECK(store_stmt_add(s, &t, &id) == 0 && store_stmt_outcome(s, id, &o) == 0);
	}
	CHECK(store_batch_commit_settled(s) == 0);
	CHECK(q_int(p, "SELECT count(*) FROM command_batches WHERE audit_seq IS NOT NULL AND rows = ''") == 1);
	/* grow past the cap (the totals counted before: the rotation makes them count again) */
	CHECK(totals_as_rows(s, p));
	CHECK(store_batch_begin(s) == 0);
	for (int i = 0; i < 1500; i++) {
		CHECK(store_conn_open(s, &c, &id) == 0);
		if (i < 1490)
			CHECK(store_conn_close(s, id, &e) == 0);
	}
	CHECK(store_batch_commit(s) == 0);
	store_audit_head(s, &seq, hash);
	store_set_limits(s, &l);
	store_tick(s);
	CHECK(store_accepting(s));
	snprintf(dpath, sizeof(dpath), "%.*s", (int)(strrchr(p, '/') - p), p);
	dir = opendir(dpath);
	while (dir && (d = readdir(dir)) != NULL)
		if (strncmp(d->d_name, "airlock.db.", 11) == 0 && !strchr(d->d_name + 11, '-'))
			snprintf(arch, sizeof(arch), "%s/%s", dpath, d->d_name);
	if (dir)
		closedir(dir);
	CHECK(arch[0]);
	CHECK(verify(arch, &v) == 0);
	CHECK(v.last_seq == seq);
	CHECK(verify(p, &v) == 0);
	CHECK(v.first_seq == seq + 1 && v.records == 1);
	/* open connections stay (they are still to be closed); ids go on */
	CHECK(q_int(p, "SELECT count(*) FROM connections WHERE closed_us IS NULL") == 11);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM statements WHERE conn_id = %lld AND tag = 'SELECT 1'",
		 (long long)keep);
	CHECK(q_int(p, sql) == 3);
	CHECK(q_int(p, "SELECT count(*) FROM command_batches WHERE audit_seq IS NOT NULL") == 0);
	CHECK(totals_as_rows(s, p));
	CHECK(store_conn_open(s, &c, &id) == 0);
	CHECK(id == 5 + 1 + 1500 + 1);
	CHECK(totals_as_rows(s, p));
	store_close(s);
	CHECK(verify(p, &v) == 0);
	CHECK(v.first_seq == seq + 1 && v.last_seq == seq + 2);
}

/* What a recording keeps of backend messages: field names, row values (cut, NULL), tags, errors. */
static void test_pg_summary(void)
{
	static const uint8_t rowdesc[] = {
		'T', 0, 0, 0, 4 + 2 + 3 + 18 + 5 + 18, 0, 2,
		'i', 'd', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0,
		'n', 'a', 'm', 'e', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0,
	};
	uint8_t row[64] = { 'D', 0, 0, 0, 0, 0, 3, 0, 0, 0, 1, '7', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 10 };
	struct pg_buf b;
	struct pg_msg m;
	char *t;

	CHECK(pg_frame_backend(rowdesc, sizeof(rowdesc), 1 << 20, &m) == (int)sizeof(rowdesc));
	t = pg_summary(&m, 1, 256);
	CHECK_STR(t, "[\"id\",\"name\"]");
	free(t);
	memcpy(row + 20, "abcdefghij", 10);
	row[4] = 4 + 2 + 4 + 1 + 4 + 4 + 10;
	CHECK(pg_frame_backend(row, 30, 1 << 20, &m) == 30);
	t = pg_summary(&m, 1, 4);
	CHECK_STR(t, "[\"7\",null,\"abcd...\"]");
	free(t);
	row[19] = 100;          /* a column longer than the message: kept as malformed, no overread */
	CHECK(pg_frame_backend(row, 30, 1 << 20, &m) == 30);
	t = pg_summary(&m, 1, 4);
	CHECK(t && strcmp(t, "(malformed)") == 0);
	free(t);
	pg_buf_init(&b, 0);
	pg_build_error(&b, "ERROR", "42P01", "relation \"nosuch\" does not exist");
	CHECK(pg_frame_backend(b.data, b.len, 1 << 20, &m) == (int)b.len);
	t = pg_summary(&m, 1, 256);
	CHECK(t && strstr(t, "\"sqlstate\":\"42P01\"") && strstr(t, "nosuch"));
	free(t);
	pg_buf_reset(&b);
	pg_build_command_complete(&b, "SELECT 3");
	CHECK(pg_frame_backend(b.data, b.len, 1 << 20, &m) == (int)b.len);
	t = pg_summary(&m, 1, 256);
	CHECK_STR(t, "SELECT 3");
	free(t);
	pg_buf_reset(&b);
	pg_build_query(&b, "SELECT 1;");
	CHECK(pg_frame(b.data, b.len, 0, 1 << 20, &m) == (int)b.len);
	t = pg_summary(&m, 0, 256);
	CHECK_STR(t, "SELECT 1;");
	free(t);
	/* appended to what a reused buffer holds; text that is not UTF-8 replaces only its own */
	{
		static const uint8_t ps[] = { 'S', 0, 0, 0, 8, 'a', 0, 0xff, 0 };
		struct al_buf o = { 0 };

		al_buf_str(&o, "kept|");
		CHECK(pg_summary_add(&o, &m, 0, 256) == 0);
		CHECK_STR(o.p, "kept|SELECT 1;");
		pg_buf_reset(&b);
		pg_build_query(&b, "SELECT '\xff'");
		CHECK(pg_frame(b.data, b.len, 0, 1 << 20, &m) == (int)b.len);
		CHECK(pg_summary_add(&o, &m, 0, 256) == 0);
		CHECK_STR(o.p, "kept|SELECT 1;<10 bytes>");
		/* a ParameterStatus whose value is not UTF-8: what it had begun is taken back */
		CHECK(pg_frame_backend(ps, sizeof(ps), 1 << 20, &m) == (int)sizeof(ps));
		CHECK(pg_summary_add(&o, &m, 1, 256) == 0);
		CHECK_STR(o.p, "kept|SELECT 1;<10 bytes>(not UTF-8)");
		t = pg_summary(&m, 1, 256);
		CHECK_STR(t, "(not UTF-8)");
		free(t);
		pg_buf_reset(&b);
		pg_build_command_complete(&b, "INSERT 0 2");
		CHECK(pg_frame_backend(b.data, b.len, 1 << 20, &m) == (int)b.len);
		o.len = 0;
		CHECK(pg_summary_add(&o, &m, 1, 256) == 0);
		CHECK_STR(o.p, "INSERT 0 2");
		free(o.p);
	}
	pg_buf_free(&b);
}

/* Figures: what chaining costs per record. */
static void test_overhead(void)
{
	char p[512], c2[200];
	struct store *s = fill(p, sizeof(p), 1);
	struct store_stmt t = { .conn_id = 1, .seq = 1, .at_us = al_now_us(), .protocol = "simple",
				.text = "SELECT abalance FROM pgbench_accounts WHERE aid = 4711", .kind = "select",
				.relations_json = "[\"pgbench_accounts\"]", .decision = "allow" };
	const int n = 20000;
	int64_t t0, t1, t2, t3, id;
	char h[65];

	CHECK(s != NULL);
	if (!s)
		return;
	t0 = al_mono_us();
	for (int i = 0; i < n; i++) {
		if (i % 500 == 0 && (store_batch_commit(s) < 0 || store_batch_begin(s) < 0))
			break;
		CHECK(store_stmt_add(s, &t, &id) == 0);
	}
	CHECK(store_batch_commit(s) == 0);
	t1 = al_mono_us();
	/* the same rows straight into sqlite, no chain, for comparison */
	{
		sqlite3 *hd = NULL;
		sqlite3_stmt *st = NULL;

		CHECK(sqlite3_open_v2(p, &hd, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
		sqlite3_exec(hd, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
		CHECK(sqlite3_prepare_v2(hd, "INSERT INTO statement_rows (conn_id, seq, at_us, protocol, text, kind,"
					 " relations, decision) VALUES (1, 1, 1, 'simple', ?1, 'select', ?2, 'allow')",
					 -1, &st, NULL) == SQLITE_OK);
		t2 = al_mono_us();
		for (int i = 0; i < n; i++) {
			if (i % 500 == 0)
				sqlite3_exec(hd, i ? "COMMIT; BEGIN" : "BEGIN", NULL, NULL, NULL);
			sqlite3_bind_text(st, 1, t.text, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, t.relations_json, -1, SQLITE_STATIC);
			sqlite3_step(st);
			sqlite3_reset(st);
		}
		sqlite3_exec(hd, "COMMIT", NULL, NULL, NULL);
		t3 = al_mono_us();
		sqlite3_finalize(st);
		sqlite3_close(hd);
	}
	printf("# figure: %d statement rows in batches of 500: %.2f us/row with the audit chain, "
	       "%.2f us/row plain sqlite (sanitizer build)\n", n, (double)(t1 - t0) / n, (double)(t3 - t2) / n);
	snprintf(c2, sizeof(c2), "42|1700000000000000|statement|4711|{\"conn_id\":1,\"decision\":\"allow\","
		 "\"kind\":\"select\",\"text\":\"SELECT abalance FROM pgbench_accounts WHERE aid = 4711\"}");
	t0 = al_mono_us();
	for (int i = 0; i < n; i++)
		CHECK(store_audit_hash(STORE_GENESIS_HASH, c2, h) == 0);
	printf("# figure: sha256 chaining of one record: %.2f us\n", (double)(al_mono_us() - t0) / n);
	store_close(s);
	{
		struct store_verify v;

		t0 = al_mono_us();
		CHECK(verify(p, &v) == 0);
		printf("# figure: verify of %" PRId64 " records, %" PRId64 " checkpoints: %.1f ms\n", v.records,
		       v.checkpoints, (double)(al_mono_us() - t0) / 1000);
		CHECK(v.checkpoints >= n / STORE_CHECKPOINT_RECORDS);
	}
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/airlock-test-audit.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	al_log_verbosity = -1;
	RUN(test_chain_records_every_write);
	RUN(test_unbatched_and_reopen);
	RUN(test_edit_named);
	RUN(test_edit_other_column_named);
	RUN(test_delete_named);
	RUN(test_delete_first_named);
	RUN(test_truncate_named);
	RUN(test_reorder_named);
	RUN(test_forged_checkpoint);
	RUN(test_rewritten_chain);
	RUN(test_checkpoints_deleted);
	RUN(test_other_key);
	RUN(test_canonical_stable);
	RUN(test_crash_mid_batch);
	RUN(test_stmt_merged);
	RUN(test_stmt_carried);
	RUN(test_stmt_batched);
	RUN(test_http_merged);
	RUN(test_body_json);
	RUN(test_token_hidden);
	RUN(test_failed_write_no_record);
	RUN(test_review_records);
	RUN(test_recordings_retention);
	RUN(test_recordings_retention_slices);
	RUN(test_recordings_chunks);
	RUN(test_count_snapshot);
	RUN(test_find_statements);
	RUN(test_totals_kept);
	RUN(test_review_metrics_kept);
	RUN(test_recordings_v8_upgrade);
	RUN(test_rotate);
	RUN(test_pg_summary);
	RUN(test_overhead);
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	TEST_EXIT();
}
