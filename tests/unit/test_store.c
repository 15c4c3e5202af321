/* Unit tests for the audit store, on a temp dir and read back with sqlite directly. */
#include <airlock/store.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "harness.h"
#include "../../userspace/store/store_int.h"

static char tmpdir[256];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tmpdir(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A path under the test's temp dir. */
static const char *tpath(char *buf, size_t len, const char *name)
{
	if (al_fmt(buf, len, "%s/%s", tmpdir, name) < 0)
		abort();
	return buf;
}

static mode_t file_mode(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) < 0)
		return (mode_t)-1;
	return sb.st_mode & 07777;
}

/* First column of the first row of sql, read with a connection of our own. */
struct qres {
	int type;               /* SQLITE_NULL etc; 0 when there was no row */
	int64_t i;
	char text[512];
};

static struct qres q(const char *db, const char *sql)
{
	struct qres r = { 0 };
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;

	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK) {
		printf("#   query %s: %s\n", sql, h ? sqlite3_errmsg(h) : "no memory");
		r.type = -1;
		goto out;
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		r.type = sqlite3_column_type(st, 0);
		r.i = sqlite3_column_int64(st, 0);
		if (sqlite3_column_text(st, 0) &&
		    al_fmt(r.text, sizeof(r.text), "%s", (const char *)sqlite3_column_text(st, 0)) < 0)
			r.type = -1;
	}
out:
	sqlite3_finalize(st);
	sqlite3_close(h);
	return r;
}

static int q_exec(const char *db, const char *sql)
{
	sqlite3 *h = NULL;
	int rc;

	rc = sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		printf("#   exec %s: %s\n", sql, h ? sqlite3_errmsg(h) : "no memory");
	sqlite3_close(h);
	return rc == SQLITE_OK ? 0 : -1;
}

#define Q_INT(db, sql) (q((db), (sql)).i)
#define Q_TEXT(db, sql) (q((db), (sql)).text)
#define Q_NULL(db, sql) (q((db), (sql)).type == SQLITE_NULL)

static struct store_conn sample_conn(int64_t opened_us)
{
	struct store_conn c = {
		.opened_us = opened_us,
		.cgroup_id = 4242,
		.cgroup_path = "/system.slice/agent.service",
		.pid = 100, .tid = 101, .uid = 1000, .gid = 1001,
		.comm = "psql",
		.exe = "/usr/bin/psql",
		.agent_addr = "127.0.0.1", .agent_port = 40000,
		.dst_addr = "10.0.0.5", .dst_port = 5432,
		.resource = "prod-db",
		.protocol = "tcp",
	};
	return c;
}

/* A session that ends before where recordings retention got to (the clock went back): the next
 * pass starts from the first ended session, and its recording expires too. */
static void test_retention_clock_back(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_limits l = { .record_retention_us = 3600 * 1000000ll };
	int64_t now = al_now_us(), a, b, c;
	struct store_conn cn = sample_conn(now - 4 * 3600 * 1000000ll);
	struct store_conn_end e = { .reason = AL_REASON_CLOSED };

	tpath(p, sizeof(p), "retention-clock.db");
	if (store_open(p, &s) < 0) {
		CHECK(!"store_open");
		return;
	}
	CHECK(store_conn_open(s, &cn, &a) == 0 && store_conn_open(s, &cn, &b) == 0 &&
	      store_conn_open(s, &cn, &c) == 0);
	CHECK(store_rec_add(s, a, 1, now, "A", "Q", "x", 1) == 0 && store_rec_add(s, b, 1, now, "A", "Q", "x", 1) == 0 &&
	      store_rec_add(s, c, 1, now, "A", "Q", "x", 1) == 0);
	e.closed_us = now - 2 * 3600 * 1000000ll;       /* ended 2 h ago: expires */
	CHECK(store_conn_close(s, a, &e) == 0);
	e.closed_us = now;                                /* ended now: kept */
	CHECK(store_conn_close(s, b, &e) == 0);
	CHECK(store_batch_commit(s) == 0);
	store_set_limits(s, &l);
	store_tick(s);
	CHECK(store_batch_commit(s) == 0);
	CHECK(Q_INT(p, "SELECT count(*) FROM recordings WHERE conn_id = 1") == 0);
	CHECK(Q_INT(p, "SELECT count(*) FROM recordings WHERE conn_id = 2") == 1);
	CHECK(store_audit_state(s)->ret_at_us == now - 2 * 3600 * 1000000ll);
	/* the clock went back: c ends "3 h ago", before the pass's position */
	e.closed_us = now - 3 * 3600 * 1000000ll;
	CHECK(store_conn_close(s, c, &e) == 0);
	CHECK(store_batch_commit(s) == 0);
	CHECK(Q_INT(p, "SELECT count(*) FROM recordings WHERE conn_id = 3") == 1);
	store_audit_state(s)->retention_mono_us = 0;      /* a minute went by: the next pass */
	store_tick(s);
	CHECK(store_batch_commit(s) == 0);
	CHECK(Q_INT(p, "SELECT count(*) FROM recordings WHERE conn_id = 3") == 0);
	CHECK(Q_INT(p, "SELECT count(*) FROM recordings WHERE conn_id = 2") == 1);
	store_close(s);
}

/* The checkpoint thread folds the WAL into the database while the daemon runs. */
static void test_checkpoints(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_conn c = sample_conn(1);
	struct stat st = { 0 };
	int64_t id;

	tpath(p, sizeof(p), "ckpt.db");
	CHECK(store_open(p, &s) == 0);
	if (!s)
		return;
	for (int b = 0; b < 20; b++) {
		CHECK(store_batch_begin(s) == 0);
		for (int i = 0; i < 100; i++)
			CHECK(store_conn_open(s, &c, &id) == 0);
		CHECK(store_batch_commit(s) == 0);
	}
	/* the thread wakes every second; the database file grows once it has checkpointed */
	for (int i = 0; i < 40 && (stat(p, &st) < 0 || st.st_size <= 64 * 1024); i++)
		usleep(100 * 1000);
	CHECK(st.st_size > 64 * 1024);
	store_close(s);
}

/*
 * Under steady load (a batch every commit_interval, 20 ms by default) the WAL
 * still starts again from its beginning: it stays near the thread's wake-up
 * length instead of growing with all that was written. 120 batches of 400 KiB
 * of recording are 48 MiB.
 */
static void test_wal_bounded(void)
{
	char p[512], w[520], data[8192];
	struct store *s = NULL;
	struct store_conn c = sample_conn(1);
	struct stat st;
	off_t most = 0;
	int64_t id, seq = 0, now = al_now_us();

	tpath(p, sizeof(p), "walb.db");
	snprintf(w, sizeof(w), "%s-wal", p);
	CHECK(store_open(p, &s) == 0);
	if (!s)
		return;
	CHECK(store_conn_open(s, &c, &id) == 0);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)('a' + (i * 7919 + i / 13) % 26);   /* not one run: the pages fill */
	for (int b = 0; b < 120; b++) {
		CHECK(store_batch_begin(s) == 0);
		for (int i = 0; i < 50; i++) {
			data[0] = (char)('a' + (seq % 26));
			CHECK(store_rec_add(s, id, ++seq, now, "B", "D", data, sizeof(data)) == 0);
		}
		CHECK(store_batch_commit(s) == 0);
		if (stat(w, &st) == 0 && st.st_size > most)
			most = st.st_size;
		usleep(20 * 1000);
	}
	CHECK(most > 0);
	CHECK(most < 16 * 1024 * 1024);
	if (most >= 16 * 1024 * 1024)
		fprintf(stderr, "  the WAL grew to %lld bytes\n", (long long)most);
	/* A long last batch, committed as the store closes: after the thread has stopped, that
	 * commit wakes no one (its mutex is gone). */
	CHECK(store_batch_begin(s) == 0);
	for (int i = 0; i < 700; i++)
		CHECK(store_rec_add(s, id, ++seq, now, "B", "D", data, sizeof(data)) == 0);
	store_close(s);
	s = NULL;
	CHECK(store_open(p, &s) == 0);
	if (s)
		CHECK(Q_INT(p, "SELECT sum(n) FROM recordings") == seq);
	store_close(s);
}

static void test_create(void)
{
	char p[512], w[512];
	struct store *s = NULL;
	struct store_conn c = sample_conn(1);
	int64_t id;
	mode_t old;

	tpath(p, sizeof(p), "create.db");
	old = umask(0);         /* the store must not rely on the caller's umask */
	CHECK(store_open(p, &s) == 0);
	umask(old);
	if (!s) {
		CHECK(!"store_open");
		return;
	}
	CHECK(store_schema_version(s) == STORE_SCHEMA_VERSION);
	CHECK(store_conn_open(s, &c, &id) == 0);
	CHECK(file_mode(p) == 0600);
	/* sqlite gives the WAL and shared-memory files the database's mode. */
	CHECK(file_mode(tpath(w, sizeof(w), "create.db-wal")) == 0600);
	CHECK(file_mode(tpath(w, sizeof(w), "create.db-shm")) == 0600);
	CHECK_STR(Q_TEXT(p, "PRAGMA journal_mode"), "wal");
	CHECK(Q_INT(p, "PRAGMA user_version") == STORE_SCHEMA_VERSION);
	CHECK(Q_INT(p, "SELECT count(*) FROM sqlite_master WHERE name IN "
		    "('connections', 'pins', 'connections_opened_us', 'connections_reason',"
		    " 'refusals', 'refusals_at_us')") == 6);
	store_close(s);
	store_close(NULL);

	/* Nor on a umask narrower than 0600. */
	s = NULL;
	tpath(p, sizeof(p), "create-umask.db");
	old = umask(0277);
	CHECK(store_open(p, &s) == 0);
	umask(old);
	CHECK(s && store_conn_open(s, &c, &id) == 0);
	CHECK(file_mode(p) == 0600);
	CHECK(file_mode(tpath(w, sizeof(w), "create-umask.db-wal")) == 0600);
	store_close(s);
}

static void test_round_trip(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_conn c = sample_conn(1700000000000000);
	struct store_conn_end e = {
		.closed_us = 1700000005000000,
		.bytes_up = 1234, .bytes_down = 5678901234ULL,
		.reason = AL_REASON_UPSTREAM_REFUSED,
		.detail = "connect: Connection refused",
	};
	int64_t id = 0;

	tpath(p, sizeof(p), "roundtrip.db");
	if (store_open(p, &s) < 0) {
		CHECK(!"store_open");
		return;
	}
	CHECK(store_conn_open(s, &c, &id) == 0);
	CHECK(id > 0);
	CHECK(Q_INT(p, "SELECT opened_us FROM connections") == 1700000000000000);
	CHECK(Q_NULL(p, "SELECT closed_us FROM connections"));
	CHECK(Q_NULL(p, "SELECT reason FROM connections"));
	CHECK(Q_INT(p, "SELECT bytes_up FROM connections") == 0);
	CHECK(store_conn_close(s, id, &e) == 0);
	CHECK(Q_INT(p, "SELECT count(*) FROM connections") == 1);
	CHECK(Q_INT(p, "SELECT id FROM connections") == id);
	CHECK(Q_INT(p, "SELECT closed_us FROM connections") == 1700000005000000);
	CHECK(Q_INT(p, "SELECT cgroup_id FROM connections") == 4242);
	CHECK_STR(Q_TEXT(p, "SELECT cgroup_path FROM connections"), "/system.slice/agent.service");
	CHECK(Q_INT(p, "SELECT pid FROM connections") == 100);
	CHECK(Q_INT(p, "SELECT tid FROM connections") == 101);
	CHECK(Q_INT(p, "SELECT uid FROM connections") == 1000);
	CHECK(Q_INT(p, "SELECT gid FROM connections") == 1001);
	CHECK_STR(Q_TEXT(p, "SELECT comm FROM connections"), "psql");
	CHECK_STR(Q_TEXT(p, "SELECT exe FROM connections"), "/usr/bin/psql");
	CHECK_STR(Q_TEXT(p, "SELECT agent_addr FROM connections"), "127.0.0.1");
	CHECK(Q_INT(p, "SELECT agent_port FROM connections") == 40000);
	CHECK_STR(Q_TEXT(p, "SELECT dst_addr FROM connections"), "10.0.0.5");
	CHECK(Q_INT(p, "SELECT dst_port FROM connections") == 5432);
	CHECK_STR(Q_TEXT(p, "SELECT resource FROM connections"), "prod-db");
	CHECK_STR(Q_TEXT(p, "SELECT protocol FROM connections"), "tcp");
	CHECK(Q_INT(p, "SELECT bytes_up FROM connections") == 1234);
	CHECK(Q_INT(p, "SELECT bytes_down FROM connections") == 5678901234LL);
	CHECK_STR(Q_TEXT(p, "SELECT reason FROM connections"), "upstream_refused");
	CHECK_STR(Q_TEXT(p, "SELECT detail FROM connections"), "connect: Connection refused");

	/* A closed row stays as it was closed; unknown rows cannot be closed. */
	e.reason = AL_REASON_CLOSED;
	CHECK(store_conn_close(s, id, &e) == -1);
	CHECK_STR(Q_TEXT(p, "SELECT reason FROM connections"), "upstream_refused");
	CHECK(store_conn_close(s, id + 1000, &e) == -1);

	/* Ids are fresh per row. */
	{
		int64_t id2 = 0;

		CHECK(store_conn_open(s, &c, &id2) == 0);
		CHECK(id2 > id);
		CHECK(store_conn_open(s, &c, NULL) == 0);
	}
	store_close(s);
}

static void test_record_nulls(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_conn c = { .opened_us = 5 };       /* no identity, no strings */
	struct store_conn_end e = { .closed_us = 6, .reason = AL_REASON_NO_IDENTITY };

	tpath(p, sizeof(p), "nulls.db");
	if (store_open(p, &s) < 0) {
		CHECK(!"store_open");
		return;
	}
	CHECK(store_conn_record(s, &c, &e) == 0);
	CHECK(Q_INT(p, "SELECT count(*) FROM connections") == 1);
	CHECK(Q_INT(p, "SELECT opened_us FROM connections") == 5);
	CHECK(Q_INT(p, "SELECT closed_us FROM connections") == 6);
	CHECK_STR(Q_TEXT(p, "SELECT reason FROM connections"), "no_identity");
	/* Every column the caller did not know is NULL, not "" or 0. */
	CHECK(Q_INT(p, "SELECT count(*) FROM connections WHERE"
		    " cgroup_id IS NULL AND cgroup_path IS NULL AND pid IS NULL AND tid IS NULL"
		    " AND uid IS NULL AND gid IS NULL AND comm IS NULL AND exe IS NULL"
		    " AND agent_addr IS NULL AND agent_port IS NULL AND dst_addr IS NULL"
		    " AND dst_port IS NULL AND resource IS NULL AND protocol IS NULL"
		    " AND detail IS NULL") == 1);
	CHECK(Q_INT(p, "SELECT bytes_up + bytes_down FROM connections") == 0);

	/* With an identity, uid 0 is root and is kept as 0. */
	c = sample_conn(7);
	c.uid = 0;
	c.dst_addr = NULL;
	c.dst_port = 0;
	CHECK(store_conn_record(s, &c, &e) == 0);
	CHECK(Q_INT(p, "SELECT count(*) FROM connections WHERE opened_us = 7 AND uid = 0"
		    " AND dst_addr IS NULL AND dst_port IS NULL") == 1);
	store_close(s);
}

static void test_totals(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_conn c = sample_conn(1);
	struct store_conn_end e = { .closed_us = 2 };
	struct store_totals t;
	int64_t id;
	int i;

	tpath(p, sizeof(p), "totals.db");
	if (store_open(p, &s) < 0) {
		CHECK(!"store_open");
		return;
	}
	CHECK(store_totals(s, &t) == 0);
	CHECK(t.connections == 0);
	for (i = 0; i < 3; i++) {
		e.reason = AL_REASON_CLOSED;
		CHECK(store_conn_record(s, &c, &e) == 0);
	}
	e.reason = AL_REASON_POLICY_DENY;
	CHECK(store_conn_record(s, &c, &e) == 0);
	e.reason = AL_REASON_STEER_LOOP;
	CHECK(store_conn_record(s, &c, &e) == 0);
	CHECK(store_conn_open(s, &c, &id) == 0);                /* still open */
	CHECK(store_totals(s, &t) == 0);
	CHECK(t.connections == 6);
	/* A row written by a newer airlock with a reason this build lacks (in a store this one opens
	 * next: the totals are counted at the first call, then kept up by this daemon's writes). */
	store_close(s);
	CHECK(q_exec(p, "INSERT INTO connections (opened_us, closed_us, reason) VALUES (3, 4, 'from_the_future')") == 0);
	CHECK(store_open(p, &s) == 0);
	if (!s)
		return;

	CHECK(store_totals(s, &t) == 0);
	CHECK(t.connections == 7);
	CHECK(t.by_reason[AL_REASON_CLOSED] == 3);
	CHECK(t.by_reason[AL_REASON_POLICY_DENY] == 1);
	CHECK(t.by_reason[AL_REASON_STEER_LOOP] == 1);
	CHECK(t.by_reason[AL_REASON_NONE] == 0);
	CHECK(t.by_reason[AL_REASON_SHUTDOWN] == 1);   /* the open row, ended by the restart */
	{
		uint64_t sum = 0;

		for (i = 0; i < AL_REASON_MAX; i++)
			sum += t.by_reason[i];
		CHECK(sum == 6);
	}
	store_close(s);
}

struct collected {
	json_t *rows[16];
	int n;
	int stop_at;            /* return 1 after this many rows; 0 for never */
	int fail_at;            /* return -1 after this many rows; 0 for never */
	int raw_bad;            /* a row had a raw control character or bare quote */
};

static int collect(void *arg, const char *txt)
{
	struct collected *col = arg;
	json_error_t err;
	const char *p;

	for (p = txt; *p; p++)
		if ((unsigned char)*p < 0x20)
			col->raw_bad = 1;
	if (col->n < (int)AL_ARRAY_LEN(col->rows)) {
		col->rows[col->n] = json_loads(txt, JSON_REJECT_DUPLICATES, &err);
		if (!col->rows[col->n])
			printf("#   bad JSON %s: %s\n", txt, err.text);
	}
	col->n++;
	if (col->stop_at && col->n == col->stop_at)
		return 1;
	if (col->fail_at && col->n == col->fail_at)
		return -1;
	return 0;
}

static void collected_free(struct collected *col)
{
	int i;

	for (i = 0; i < col->n && i < (int)AL_ARRAY_LEN(col->rows); i++)
		json_decref(col->rows[i]);
	memset(col, 0, sizeof(*col));
}

static json_int_t jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void test_list(void)
{
	static const char *const keys[] = {
		"id", "opened_us", "closed_us", "cgroup_id", "cgroup_path", "pid", "tid",
		"uid", "gid", "comm", "exe", "agent_addr", "agent_port", "dst_addr",
		"dst_port", "resource", "protocol", "bytes_up", "bytes_down", "reason", "detail",
		"iface",
	};
	const char *evil = "a\"b'c\\d\ne\r\t</script><script>alert(1)</script>\x01";
	char p[512];
	struct store *s = NULL;
	struct store_conn c;
	struct store_conn_end e = { .closed_us = 500, .bytes_up = 7, .reason = AL_REASON_CLOSED };
	struct collected col = { 0 };
	int64_t id_open = 0;
	size_t i;

	tpath(p, sizeof(p), "list.db");
	if (store_open(p, &s) < 0) {
		CHECK(!"store_open");
		return;
	}
	/* Inserted out of time order: the list follows opened_us, then id. */
	c = sample_conn(300);
	CHECK(store_conn_record(s, &c, &e) == 0);       /* id 1 */
	c = sample_conn(100);
	CHECK(store_conn_record(s, &c, &e) == 0);       /* id 2 */
	c = sample_conn(300);
	c.comm = evil;
	c.exe = "/tmp/\xff\xfe-not-utf8-\xc3\xa9";
	CHECK(store_conn_record(s, &c, &e) == 0);       /* id 3 */
	c = sample_conn(400);
	CHECK(store_conn_open(s, &c, &id_open) == 0);   /* id 4, open */
	c = (struct store_conn){ .opened_us = 200 };
	CHECK(store_conn_record(s, &c, &e) == 0);       /* id 5, all NULL */

	CHECK(store_conn_list(s, 10, collect, &col) == 0);
	CHECK(col.n == 5);
	CHECK(!col.raw_bad);
	if (col.n == 5 && col.rows[0] && col.rows[1] && col.rows[2] && col.rows[3] && col.rows[4]) {
		CHECK(jint(col.rows[0], "id") == id_open);
		CHECK(jint(col.rows[1], "id") == 3);
		CHECK(jint(col.rows[2], "id") == 1);
		CHECK(jint(col.rows[3], "id") == 5);
		CHECK(jint(col.rows[4], "id") == 2);
		for (i = 0; i < AL_ARRAY_LEN(keys); i++)
			CHECK(json_object_get(col.rows[0], keys[i]) != NULL);
		CHECK(json_object_size(col.rows[0]) == AL_ARRAY_LEN(keys));

		/* The open row: closed_us, reason and detail are JSON null. */
		CHECK(json_is_null(json_object_get(col.rows[0], "closed_us")));
		CHECK(json_is_null(json_object_get(col.rows[0], "reason")));
		CHECK(jint(col.rows[0], "opened_us") == 400);
		CHECK_STR(jstr(col.rows[0], "comm"), "psql");
		CHECK(jint(col.rows[0], "dst_port") == 5432);
		CHECK(jint(col.rows[0], "cgroup_id") == 4242);

		/* Agent-chosen text comes back exactly, as a JSON string. */
		CHECK_STR(jstr(col.rows[1], "comm"), evil);
		CHECK_STR(jstr(col.rows[1], "exe"), "/tmp/\xef\xbf\xbd\xef\xbf\xbd-not-utf8-\xc3\xa9");
		CHECK_STR(jstr(col.rows[1], "reason"), "closed");
		CHECK(jint(col.rows[1], "closed_us") == 500);
		CHECK(jint(col.rows[1], "bytes_up") == 7);
		CHECK(json_is_null(json_object_get(col.rows[1], "detail")));

		/* The identity-less row: nulls, not zeroes or empty strings. */
		CHECK(json_is_null(json_object_get(col.rows[3], "uid")));
		CHECK(json_is_null(json_object_get(col.rows[3], "comm")));
		CHECK(json_is_null(json_object_get(col.rows[3], "dst_addr")));
		CHECK(json_is_null(json_object_get(col.rows[3], "dst_port")));
	}
	collected_free(&col);

	/* The escaped text itself, not only its round trip. */
	{
		struct collected one = { .stop_at = 2 };
		char *dump;

		CHECK(store_conn_list(s, 10, collect, &one) == 0);
		CHECK(one.n == 2);
		if (one.n == 2 && one.rows[1]) {
			dump = json_dumps(json_object_get(one.rows[1], "comm"), JSON_ENCODE_ANY);
			CHECK_STR(dump, "\"a\\\"b'c\\\\d\\ne\\r\\t</script><script>alert(1)</script>\\u0001\"");
			free(dump);
		}
		collected_free(&one);
	}

	CHECK(store_conn_list(s, 2, collect, &col) == 0);
	CHECK(col.n == 2);
	collected_free(&col);
	CHECK(store_conn_list(s, 0, collect, &col) == 0);
	CHECK(col.n == 0);
	collected_free(&col);

	col.fail_at = 1;
	CHECK(store_conn_list(s, 10, collect, &col) == -1);
	CHECK(col.n == 1);
	collected_free(&col);

	/* A walk that stopped early leaves the store usable, writes included. */
	CHECK(store_conn_close(s, id_open, &e) == 0);
	CHECK(store_conn_list(s, 10, collect, &col) == 0);
	CHECK(col.n == 5);
	collected_free(&col);
	store_close(s);
}

static void test_list_uses_index(void)
{
	char p[512], plan[1024] = "";
	struct store *s = NULL;
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	size_t used = 0;

	tpath(p, sizeof(p), "plan.db");
	if (store_open(p, &s) < 0) {
		CHECK(!"store_open");
		return;
	}
	CHECK(sqlite3_open_v2(p, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
	CHECK(sqlite3_prepare_v2(h, "EXPLAIN QUERY PLAN SELECT id FROM connections"
				 " ORDER BY opened_us DESC, id DESC LIMIT 10", -1, &st, NULL) == SQLITE_OK);
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 3);

		if (used < sizeof(plan) && al_fmt(plan + used, sizeof(plan) - used, "%s;", d) == 0)
			used += strlen(plan + used);
	}
	CHECK(strstr(plan, "connections_opened_us") != NULL);
	CHECK(strstr(plan, "TEMP B-TREE") == NULL);
	if (strstr(plan, "TEMP B-TREE"))
		printf("#   plan: %s\n", plan);
	sqlite3_finalize(st);
	sqlite3_close(h);
	store_close(s);
}

static void test_crash_recovery(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_conn c = sample_conn(1000);
	struct store_conn_end e = { .closed_us = 1500, .reason = AL_REASON_CLOSED, .detail = "done" };
	int64_t t0 = al_now_us();
	pid_t pid;
	int status = 0;

	tpath(p, sizeof(p), "crash.db");
	pid = fork();
	if (pid == 0) {
		/* The "daemon": two rows, one ended, one open when it dies. */
		struct store *cs = NULL;
		int64_t id;

		if (store_open(p, &cs) < 0 || store_conn_record(cs, &c, &e) < 0 ||
		    store_conn_open(cs, &c, &id) < 0)
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	CHECK(pid > 0);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	CHECK(Q_INT(p, "SELECT count(*) FROM connections WHERE closed_us IS NULL") == 1);

	if (store_open(p, &s) < 0) {
		CHECK(!"store_open");
		return;
	}
	CHECK(Q_INT(p, "SELECT count(*) FROM connections") == 2);
	CHECK(Q_INT(p, "SELECT count(*) FROM connections WHERE closed_us IS NULL") == 0);
	CHECK_STR(Q_TEXT(p, "SELECT reason FROM connections WHERE id = 2"), "shutdown");
	CHECK_STR(Q_TEXT(p, "SELECT detail FROM connections WHERE id = 2"), "daemon restarted");
	CHECK(Q_INT(p, "SELECT closed_us FROM connections WHERE id = 2") >= t0);
	/* The row that had ended keeps its own end. */
	CHECK_STR(Q_TEXT(p, "SELECT reason FROM connections WHERE id = 1"), "closed");
	CHECK_STR(Q_TEXT(p, "SELECT detail FROM connections WHERE id = 1"), "done");
	CHECK(Q_INT(p, "SELECT closed_us FROM connections WHERE id = 1") == 1500);
	/* The dead daemon's row id cannot be closed over the recovery. */
	CHECK(store_conn_close(s, 2, &e) == -1);
	CHECK_STR(Q_TEXT(p, "SELECT reason FROM connections WHERE id = 2"), "shutdown");
	store_close(s);
}

struct pin_seen {
	int n;
	uint64_t id;
	int64_t pinned_us, gone_us;
	char path[64];
};

static int pin_seen_add(void *arg, const struct store_pin *pin)
{
	struct pin_seen *seen = arg;

	seen->n++;
	seen->id = pin->cgroup_id;
	seen->pinned_us = pin->pinned_us;
	seen->gone_us = pin->gone_us;
	snprintf(seen->path, sizeof(seen->path), "%s", pin->path);
	return 0;
}

static void test_pins(void)
{
	char p[512], buf[64];
	struct store *s = NULL;
	int64_t t0 = al_now_us();

	tpath(p, sizeof(p), "pins.db");
	if (store_open(p, &s) < 0) {
		CHECK(!"store_open");
		return;
	}
	CHECK(store_pin_path(s, 77, buf, sizeof(buf)) == -1);
	CHECK(store_pin_add(s, 77, "/system.slice/agent.service") == 0);
	CHECK(store_pin_add(s, 78, "/user.slice/ci.scope") == 0);
	CHECK(store_pin_path(s, 77, buf, sizeof(buf)) == 0);
	CHECK_STR(buf, "/system.slice/agent.service");
	CHECK(store_pin_path(s, 78, buf, sizeof(buf)) == 0);
	CHECK_STR(buf, "/user.slice/ci.scope");
	CHECK(Q_INT(p, "SELECT pinned_us FROM pins WHERE cgroup_id = 77") >= t0);
	/* Pinning again renames, it does not add a row. */
	CHECK(store_pin_add(s, 77, "/agent.slice") == 0);
	CHECK(store_pin_path(s, 77, buf, sizeof(buf)) == 0);
	CHECK_STR(buf, "/agent.slice");
	CHECK(Q_INT(p, "SELECT count(*) FROM pins") == 2);
	/* A buffer too small is a failure, not a cut path. */
	CHECK(store_pin_path(s, 77, buf, 5) == -1);
	CHECK(store_pin_del(s, 77) == 0);
	CHECK(store_pin_path(s, 77, buf, sizeof(buf)) == -1);
	CHECK(store_pin_del(s, 77) == 0);
	CHECK(store_pin_path(s, 78, buf, sizeof(buf)) == 0);
	CHECK(Q_INT(p, "SELECT count(*) FROM pins") == 1);
	/* A cgroup found removed is marked once (the first time stays), and pinning it anew clears it. */
	CHECK(store_pin_gone(s, 78) == 0);
	CHECK(store_pin_gone(s, 79) == 0);      /* nothing recorded: nothing to mark */
	{
		int64_t gone = Q_INT(p, "SELECT gone_us FROM pins WHERE cgroup_id = 78");
		struct pin_seen seen = { 0 };

		CHECK(gone >= t0);
		CHECK(store_pin_gone(s, 78) == 0);
		CHECK(Q_INT(p, "SELECT gone_us FROM pins WHERE cgroup_id = 78") == gone);
		CHECK(store_pins_each(s, pin_seen_add, &seen) == 0);
		CHECK(seen.n == 1 && seen.id == 78 && seen.gone_us == gone && seen.pinned_us >= t0);
		CHECK_STR(seen.path, "/user.slice/ci.scope");
	}
	CHECK(store_pin_add(s, 78, "/user.slice/ci.scope") == 0);
	CHECK(Q_INT(p, "SELECT count(*) FROM pins WHERE gone_us IS NULL") == 1);
	store_close(s);

	/* Pins outlive the daemon. */
	CHECK(store_open(p, &s) == 0);
	CHECK(s && store_pin_path(s, 78, buf, sizeof(buf)) == 0);
	CHECK_STR(buf, "/user.slice/ci.scope");
	store_close(s);
}

static struct store_user user(const char *name, long uid, const char *groups, int admin, const char *pwhash)
{
	struct store_user u = { .uid = uid, .admin = admin };

	snprintf(u.name, sizeof(u.name), "%s", name);
	snprintf(u.groups, sizeof(u.groups), "%s", groups);
	snprintf(u.pwhash, sizeof(u.pwhash), "%s", pwhash);
	return u;
}

static const char tok_a1[] = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
static const char tok_a2[] = "a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2";
static const char tok_b1[] = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1";
static const char tok_c1[] = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";

/* Reviewers: add refuses an existing name and leaves it as it was; set changes only the fields it
 * is given (a uid or admin flag left out stays); a user's console tokens go with the user, and
 * a name added again (another account, another created_us) inherits none. */
static void test_users(void)
{
	char p[512], who[64];
	struct store *s = NULL;
	struct store_user a = user("alice", 4711, "dba", 1, "hash-1"), b = user("bob", 4712, "ops", 0, "");
	struct store_user x, chg;
	struct store_user_gone gone;
	struct store_verify v;
	int64_t first;
	int n = -1;

	tpath(p, sizeof(p), "users.db");
	if (store_open(p, &s) < 0) {
		CHECK(!"store_open");
		return;
	}
	CHECK(store_user_add(s, &a) == 0 && a.created_us > 0);
	CHECK(store_user_add(s, &b) == 0);
	CHECK(store_user_by_name(s, "alice", &x) == 0);
	CHECK(x.uid == 4711 && x.admin == 1 && x.created_us == a.created_us);
	CHECK_STR(x.groups, "dba");
	CHECK_STR(x.pwhash, "hash-1");
	first = x.created_us;

	/* add again, as if to change the groups: refused, nothing changed */
	chg = user("alice", -1, "dba,oncall", 0, "");
	CHECK(store_user_add(s, &chg) == 1);
	CHECK(store_user_by_name(s, "alice", &x) == 0);
	CHECK(x.uid == 4711 && x.admin == 1 && x.created_us == first);
	CHECK_STR(x.groups, "dba");

	/* set the groups only: uid, admin and password stay */
	CHECK(store_user_set(s, &chg, STORE_USER_GROUPS) == 0);
	CHECK(store_user_by_name(s, "alice", &x) == 0);
	CHECK(x.uid == 4711 && x.admin == 1 && x.created_us == first);
	CHECK_STR(x.groups, "dba,oncall");
	CHECK_STR(x.pwhash, "hash-1");
	CHECK(store_user_by_uid(s, 4711, &x) == 0);
	CHECK_STR(x.name, "alice");
	/* admin off, then a new password: each alone */
	CHECK(store_user_set(s, &chg, STORE_USER_ADMIN) == 0);
	CHECK(store_user_by_name(s, "alice", &x) == 0);
	CHECK(x.admin == 0 && x.uid == 4711);
	CHECK_STR(x.pwhash, "hash-1");
	chg = user("alice", -1, "", 1, "hash-2");
	CHECK(store_user_set(s, &chg, STORE_USER_PASSWORD) == 0);
	CHECK(store_user_by_name(s, "alice", &x) == 0);
	CHECK(x.admin == 0 && x.uid == 4711 && x.created_us == first);
	CHECK_STR(x.pwhash, "hash-2");
	CHECK_STR(x.groups, "dba,oncall");
	/* a uid that is taken: refused, nothing changed; a uid set on its own */
	chg = user("alice", 4712, "", 0, "");
	CHECK(store_user_set(s, &chg, STORE_USER_UID) == -1);
	CHECK(store_user_by_name(s, "alice", &x) == 0 && x.uid == 4711);
	chg.uid = 4713;
	CHECK(store_user_set(s, &chg, STORE_USER_UID) == 0);
	CHECK(store_user_by_name(s, "alice", &x) == 0 && x.uid == 4713 && x.admin == 0);
	CHECK(store_user_by_uid(s, 4711, &x) == 1);
	/* set on a name that is not there */
	chg = user("nobody", 1, "", 0, "");
	CHECK(store_user_set(s, &chg, STORE_USER_UID) == 1);
	CHECK(store_user_by_name(s, "nobody", &x) == 1);

	/* Tokens: revoking takes all of one user's and nobody else's. */
	CHECK(store_token_add(s, "alice", tok_a1) == 0);
	CHECK(store_token_add(s, "alice", tok_a2) == 0);
	CHECK(store_token_add(s, "bob", tok_b1) == 0);
	CHECK(store_token_revoke(s, "alice", &n) == 0 && n == 2);
	CHECK(store_token_user(s, tok_a1, who, sizeof(who)) == 1);
	CHECK(store_token_user(s, tok_a2, who, sizeof(who)) == 1);
	CHECK(store_token_user(s, tok_b1, who, sizeof(who)) == 0);
	CHECK_STR(who, "bob");
	CHECK(store_token_revoke(s, "alice", &n) == 0 && n == 0);
	CHECK(Q_INT(p, "SELECT count(*) FROM audit WHERE kind = 'token_del' AND body LIKE '%\"user\":\"alice\"%'") == 2);

	/* user del takes the user's tokens in the same transaction; adding the name again
	 * brings none back, and it is another account. */
	CHECK(store_token_add(s, "alice", tok_a1) == 0);
	CHECK(store_user_del(s, "alice", &gone) == 0);
	store_user_gone_free(&gone);
	CHECK(store_token_user(s, tok_a1, who, sizeof(who)) == 1);
	CHECK(store_token_user(s, tok_b1, who, sizeof(who)) == 0);
	CHECK(store_user_del(s, "alice", &gone) == -1 && !gone.n_requests && !gone.n_grants);
	a = user("alice", 4711, "dba", 0, "hash-3");
	CHECK(store_user_add(s, &a) == 0 && a.created_us > first);
	CHECK(store_user_by_name(s, "alice", &x) == 0 && x.created_us == a.created_us);
	CHECK(store_token_user(s, tok_a1, who, sizeof(who)) == 1);

	/* A token left under a name with no user (a store from before tokens went with their
	 * user) is deleted when the name is added. */
	CHECK(store_token_add(s, "carol", tok_c1) == 0);
	CHECK(store_token_user(s, tok_c1, who, sizeof(who)) == 0);
	chg = user("carol", 4714, "", 0, "");
	CHECK(store_user_add(s, &chg) == 0);
	CHECK(store_token_user(s, tok_c1, who, sizeof(who)) == 1);
	CHECK(Q_INT(p, "SELECT count(*) FROM console_tokens") == 1);
	store_close(s);
	CHECK(store_audit_verify(p, NULL, &v) == 0);
}

/* A grant of cgroup 77's uid 1000 on pg. */
static int grant_add_groups(struct store *s, int64_t request_id, const char *fp, const char *groups,
			    int64_t expires_us, int64_t *id)
{
	struct store_grant g = { .request_id = request_id, .fingerprint = fp, .resource = "pg", .cgroup_id = 77,
				 .cgroup_path = "/a", .agent_uid = 1000, .approvers_json = groups,
				 .expires_us = expires_us, .created_by = "alice" };

	return store_grant_add(s, &g, id);
}

static int grant_add(struct store *s, int64_t request_id, const char *fp, int64_t expires_us, const char *by,
		     int64_t *id)
{
	struct store_grant g = { .request_id = request_id, .fingerprint = fp, .resource = "pg", .cgroup_id = 77,
				 .cgroup_path = "/a", .agent_uid = 1000, .approvers_json = "[\"dba\"]",
				 .expires_us = expires_us, .created_by = by };

	return store_grant_add(s, &g, id);
}

/* A removed reviewer's approvals of pending requests stop counting and the live grants they
 * helped make end; ended requests, other reviewers' grants and expired grants stay as they are. */
static void test_user_del_undoes(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_user a = user("alice", 4711, "dba", 0, ""), b = user("bob", 4712, "dba", 0, "");
	struct store_request r = { .created_us = al_now_us(), .expires_us = al_now_us() + 60000000,
				   .conn_id = 1, .stmt_id = 1, .cgroup_id = 77, .resource = "pg",
				   .protocol = "postgres", .command = "DELETE FROM t WHERE id = 1", .kind = "delete",
				   .sha256 = "ab", .rule = "rule review", .approvals_needed = 2 };
	struct store_user_gone gone;
	int64_t pending = 0, done1 = 0, done2 = 0, done3 = 0, g_alice = 0, g_quorum = 0, g_bob = 0, g_old = 0;
	int64_t far = al_now_us() + 600000000;

	tpath(p, sizeof(p), "userdel.db");
	if (store_open(p, &s) < 0) {
		CHECK(!"store_open");
		return;
	}
	CHECK(store_user_add(s, &a) == 0 && store_user_add(s, &b) == 0);
	/* pending, alice approved (one of two) */
	CHECK(store_request_add(s, &r, &pending) == 0);
	CHECK(store_approval_add(s, pending, "alice", "approve", NULL, 0) == 0);
	/* a grant alice made alone, one she and bob made (bob completed it), one bob made alone,
	 * and one of alice's that expired */
	CHECK(store_request_add(s, &r, &done1) == 0 && store_request_add(s, &r, &done2) == 0 &&
	      store_request_add(s, &r, &done3) == 0);
	CHECK(store_approval_final(s, done1, "alice", "approve", NULL, 600, "approved") == 0);
	CHECK(grant_add(s, done1, "fp1", far, "alice", &g_alice) == 0);
	CHECK(store_approval_add(s, done2, "alice", "approve", NULL, 600) == 0);
	CHECK(store_approval_final(s, done2, "bob", "approve", NULL, 600, "approved") == 0);
	CHECK(grant_add(s, done2, "fp2", far, "bob", &g_quorum) == 0);
	CHECK(store_approval_final(s, done3, "bob", "approve", NULL, 600, "approved") == 0);
	CHECK(grant_add(s, done3, "fp3", far, "bob", &g_bob) == 0);
	CHECK(grant_add(s, done1, "fp4", al_now_us() - 1, "alice", &g_old) == 0);

	CHECK(store_user_del(s, "alice", &gone) == 0);
	CHECK(gone.n_requests == 1 && gone.requests && gone.requests[0] == pending);
	CHECK(gone.n_grants == 2);
	CHECK(gone.n_grants == 2 && ((gone.grants[0] == g_alice && gone.grants[1] == g_quorum) ||
				     (gone.grants[0] == g_quorum && gone.grants[1] == g_alice)));
	store_user_gone_free(&gone);
	CHECK(Q_INT(p, "SELECT count(*) FROM approvals WHERE request_id IN (SELECT id FROM requests WHERE state = 'pending')") == 0);
	/* the ended requests keep their history */
	CHECK(Q_INT(p, "SELECT count(*) FROM approvals WHERE reviewer = 'alice'") == 2);
	CHECK_STR(Q_TEXT(p, "SELECT revoked_by FROM grants WHERE fingerprint = 'fp1'"), "user del alice");
	CHECK(Q_INT(p, "SELECT revoked_us IS NOT NULL FROM grants WHERE fingerprint = 'fp2'") == 1);
	CHECK(Q_INT(p, "SELECT revoked_us IS NULL FROM grants WHERE fingerprint = 'fp3'") == 1);
	CHECK(Q_INT(p, "SELECT revoked_us IS NULL FROM grants WHERE fingerprint = 'fp4'") == 1);
	CHECK(Q_INT(p, "SELECT count(*) FROM audit WHERE kind = 'revoke'") == 2);
	CHECK(Q_INT(p, "SELECT count(*) FROM audit WHERE kind = 'approval_delete'") == 1);
	CHECK(Q_INT(p, "SELECT agent_uid FROM grants WHERE fingerprint = 'fp3'") == 1000);
	store_close(s);
}

static void test_reopen(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_conn c = sample_conn(1);
	struct store_conn_end e = { .closed_us = 2, .reason = AL_REASON_CLOSED };
	int i;

	tpath(p, sizeof(p), "reopen.db");
	for (i = 0; i < 3; i++) {
		CHECK(store_open(p, &s) == 0);
		CHECK(store_schema_version(s) == STORE_SCHEMA_VERSION);
		CHECK(s && store_conn_record(s, &c, &e) == 0);
		store_close(s);
		s = NULL;
	}
	CHECK(Q_INT(p, "PRAGMA user_version") == STORE_SCHEMA_VERSION);
	CHECK(Q_INT(p, "SELECT count(*) FROM connections") == 3);
	/* Reopening creates nothing twice (each migration ran once). */
	CHECK(Q_INT(p, "SELECT count(*) FROM sqlite_master WHERE name = 'connections'") == 1);
	CHECK(Q_INT(p, "SELECT count(*) FROM sqlite_master WHERE name = 'statements'") == 1);

	/* Two handles on one file, as when airlockctl reads while the daemon runs. */
	{
		struct store *a = NULL, *b = NULL;
		struct store_totals t;

		CHECK(store_open(p, &a) == 0);
		CHECK(store_open(p, &b) == 0);
		CHECK(a && store_conn_record(a, &c, &e) == 0);
		CHECK(b && store_totals(b, &t) == 0 && t.connections == 4);
		store_close(a);
		store_close(b);
	}
	CHECK(store_schema_version(NULL) == -1);
}

static int collect_rows(void *arg, const char *json)
{
	char *buf = arg;
	size_t n = strlen(buf);

	snprintf(buf + n, 8192 - n, "%s\n", json);
	return 0;
}

static void test_refusals(void)
{
	char p[512], out[8192] = "";
	struct store *s = NULL;
	struct store_refusal r = {
		.at_us = 1000, .reason = AL_REASON_UDP_DENIED, .cgroup_id = 42,
		.cgroup_path = "/agents/a", .pid = 7, .tid = 8, .uid = 1000, .comm = "nc",
		.family = 2, .type = 2, .protocol = 17, .dst_addr = "192.0.2.1", .dst_port = 9999,
	};
	struct store_refusal sum = {
		.at_us = 2000, .reason = AL_REASON_EVENTS_SUPPRESSED, .count = 500,
		.detail = "500 more udp_denied refusals",
	};

	tpath(p, sizeof(p), "refusals.db");
	CHECK(store_open(p, &s) == 0);
	if (!s)
		return;
	CHECK(store_refusal_add(s, &r) == 0);
	CHECK(store_refusal_add(s, &sum) == 0);
	CHECK(store_refusal_list(s, 10, collect_rows, out) == 0);
	/* Newest first; a summary row has no identity (NULLs), the count it stands for. */
	CHECK(strstr(out, "\"reason\":\"events_suppressed\"") < strstr(out, "\"reason\":\"udp_denied\""));
	CHECK(strstr(out, "\"count\":500") != NULL);
	CHECK(strstr(out, "\"cgroup_id\":null") != NULL);
	CHECK(strstr(out, "\"dst_addr\":\"192.0.2.1\",\"dst_port\":9999") != NULL);
	CHECK(strstr(out, "\"uid\":1000") != NULL);
	CHECK(Q_INT(p, "SELECT count(*) FROM refusals WHERE reason = 'udp_denied' AND pid = 7") == 1);
	store_close(s);
}

/* A grant keeps its request's approver groups (who may revoke it), also once the request row
 * is gone; a store from before it kept them takes its requests' at the migration. */
static void test_grant_approvers(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_request r = { .created_us = al_now_us(), .expires_us = al_now_us() + 60000000,
				   .conn_id = 1, .stmt_id = 1, .cgroup_id = 77, .resource = "pg",
				   .protocol = "postgres", .command = "DELETE FROM t WHERE id = 1", .kind = "delete",
				   .sha256 = "ab", .rule = "rule review", .approvers_json = "[\"dba\",\"oncall\"]",
				   .approvals_needed = 1 };
	int64_t rid = 0, g1 = 0, g2 = 0, g3 = 0, far = al_now_us() + 600000000;
	char *groups = NULL, sql[128];

	tpath(p, sizeof(p), "grant_approvers.db");
	if (store_open(p, &s) < 0) {
		CHECK(!"store_open");
		return;
	}
	CHECK(store_request_add(s, &r, &rid) == 0);
	CHECK(grant_add_groups(s, rid, "fp1", "[\"dba\",\"oncall\"]", far, &g1) == 0);
	CHECK(grant_add_groups(s, rid, "fp2", "[]", far, &g2) == 0);
	CHECK(grant_add_groups(s, rid, "fp3", NULL, far, &g3) == 0);
	CHECK(store_grant_approvers(s, g1, &groups) == 0 && groups &&
	      strcmp(groups, "[\"dba\",\"oncall\"]") == 0);
	free(groups);
	CHECK(store_grant_approvers(s, g2, &groups) == 0 && groups && strcmp(groups, "[]") == 0);
	free(groups);
	CHECK(store_grant_approvers(s, g3, &groups) == 0 && groups == NULL);
	CHECK(store_grant_revoke(s, g2, "bob") == 0);
	CHECK(store_grant_approvers(s, g2, &groups) == 1 && groups == NULL);
	CHECK(store_grant_approvers(s, g3 + 100, &groups) == 1 && groups == NULL);
	store_close(s);
	s = NULL;

	/* Back to schema 17 (no column), one grant's request gone: the migration fills in what the
	 * requests still say. */
	CHECK(q_exec(p, "ALTER TABLE grants DROP COLUMN approvers") == 0);
	CHECK(q_exec(p, "PRAGMA user_version = 17") == 0);
	CHECK(al_fmt(sql, sizeof(sql), "UPDATE grants SET request_id = 999 WHERE id = %lld", (long long)g3) == 0);
	CHECK(q_exec(p, sql) == 0);
	CHECK(store_open(p, &s) == 0 && store_schema_version(s) == STORE_SCHEMA_VERSION);
	if (!s)
		return;
	CHECK(store_grant_approvers(s, g1, &groups) == 0 && groups &&
	      strcmp(groups, "[\"dba\",\"oncall\"]") == 0);
	free(groups);
	CHECK(store_grant_approvers(s, g3, &groups) == 0 && groups == NULL);
	store_close(s);
}

static void test_newer_schema(void)
{
	char p[512];
	struct store *s = NULL;

	tpath(p, sizeof(p), "newer.db");
	CHECK(store_open(p, &s) == 0);
	store_close(s);
	CHECK(q_exec(p, "PRAGMA user_version = 99") == 0);
	s = (struct store *)1;
	CHECK(store_open(p, &s) == -1);
	CHECK(s == NULL);
	CHECK(Q_INT(p, "PRAGMA user_version") == 99);
}

static void test_mkdir(void)
{
	char p[512], d[512];
	struct store *s = NULL;

	tpath(p, sizeof(p), "new/dir/store.db");
	CHECK(store_open(p, &s) == 0);
	CHECK(s != NULL);
	store_close(s);
	CHECK(file_mode(tpath(d, sizeof(d), "new/dir")) == 0700);
	CHECK(file_mode(p) == 0600);
}

static void test_unwritable(void)
{
	static const char junk[] = "this is not an sqlite database, not even close, "
				   "and long enough to fill sqlite's 100-byte header.";
	char p[512], f[512];
	struct store *s = NULL;
	struct stat sb;
	int fd;

	/* A regular file where a directory should be: fails even for root. */
	tpath(f, sizeof(f), "plainfile");
	fd = open(f, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK(store_open(tpath(p, sizeof(p), "plainfile/store.db"), &s) == -1);
	CHECK(s == NULL);
	CHECK(store_open(tpath(p, sizeof(p), "plainfile/sub/store.db"), &s) == -1);
	CHECK(s == NULL);

	/* The path is a directory. */
	CHECK(store_open(tmpdir, &s) == -1);
	CHECK(s == NULL);

	/* Not a database: refused, and left as it was. */
	tpath(p, sizeof(p), "garbage.db");
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk));
		close(fd);
	}
	CHECK(store_open(p, &s) == -1);
	CHECK(s == NULL);
	CHECK(stat(p, &sb) == 0 && sb.st_size == (off_t)sizeof(junk));

	/* A directory we may not write to (root may write anywhere; skip then). */
	if (geteuid() != 0) {
		char d[512];

		tpath(d, sizeof(d), "ro");
		CHECK(mkdir(d, 0500) == 0);
		CHECK(store_open(tpath(p, sizeof(p), "ro/store.db"), &s) == -1);
		CHECK(s == NULL);
	}
}

static int count_commit(void *arg)
{
	(*(int *)arg)++;
	return 0;
}

/* A durable write while a group-commit batch is open carries the batch in its own
 * transaction: one commit for both, the batch's rows and records before its own, and a
 * write that fails undoes only its own changes. */
static void test_durable_folds_batch(void)
{
	char p[512];
	struct store *s = NULL;
	struct store_conn c = sample_conn(1);
	struct store_stmt t = { .seq = 1, .at_us = 2, .protocol = "simple", .text = "UPDATE t SET v = 1",
				.kind = "update", .decision = "review" };
	struct store_request r = { .created_us = al_now_us(), .expires_us = al_now_us() + 1000000,
				   .cgroup_id = 4242, .resource = "prod-db", .protocol = "postgres",
				   .command = "UPDATE t SET v = 1", .kind = "update", .sha256 = "ab",
				   .rule = "rule review", .approvals_needed = 1 };
	struct store_verify v;
	int64_t cid = 0, sid = 0, rid = 0;
	int commits = 0;

	tpath(p, sizeof(p), "fold.db");
	CHECK(store_open(p, &s) == 0);
	if (!s)
		return;
	sqlite3_commit_hook(store_db(s), count_commit, &commits);

	/* A request parked while its statement is held in the open batch. */
	CHECK(store_batch_begin(s) == 0);
	CHECK(store_conn_open(s, &c, &cid) == 0);
	t.conn_id = cid;
	CHECK(store_stmt_add(s, &t, &sid) == 0);
	r.conn_id = cid;
	r.stmt_id = sid;
	CHECK(store_request_add(s, &r, &rid) == 0);
	CHECK(commits == 1);
	CHECK(sqlite3_get_autocommit(store_db(s)));
	CHECK(store_batch_commit(s) == 0);      /* closed: nothing left to commit */
	CHECK(commits == 1);
	CHECK(Q_INT(p, "SELECT count(*) FROM connections") == 1);
	CHECK(Q_INT(p, "SELECT id FROM statements") == sid);
	CHECK(Q_INT(p, "SELECT stmt_id FROM requests WHERE state = 'pending'") == sid);
	CHECK(Q_INT(p, "SELECT count(*) FROM audit WHERE kind IN ('conn_open', 'statement', 'request')") == 3);
	CHECK(Q_INT(p, "SELECT (SELECT seq FROM audit WHERE kind = 'conn_open') <"
		    " (SELECT seq FROM audit WHERE kind = 'statement') AND"
		    " (SELECT seq FROM audit WHERE kind = 'statement') <"
		    " (SELECT seq FROM audit WHERE kind = 'request')") == 1);

	/* A decision that fails after writing (an approval row, then the request is not
	 * pending): the batch still commits, whole, and the failed decision left nothing. */
	commits = 0;
	CHECK(store_batch_begin(s) == 0);
	CHECK(store_conn_open(s, &c, &cid) == 0);
	t.conn_id = cid;
	t.seq = 2;
	CHECK(store_stmt_add(s, &t, &sid) == 0);
	CHECK(store_approval_final(s, rid + 100, "alice", "approve", NULL, 0, "approved") == -1);
	CHECK(commits == 1);
	CHECK(sqlite3_get_autocommit(store_db(s)));
	CHECK(store_batch_commit(s) == 0);
	CHECK(commits == 1);
	CHECK(Q_INT(p, "SELECT count(*) FROM connections") == 2);
	CHECK(Q_INT(p, "SELECT count(*) FROM statements") == 2);
	CHECK(Q_INT(p, "SELECT count(*) FROM approvals") == 0);
	CHECK(Q_INT(p, "SELECT count(*) FROM audit WHERE kind IN ('conn_open', 'statement')") == 4);
	CHECK(Q_INT(p, "SELECT count(*) FROM audit WHERE kind IN ('approval', 'request_end')") == 0);

	/* The deciding approval with no batch open: one commit too. */
	commits = 0;
	CHECK(store_approval_final(s, rid, "alice", "approve", NULL, 0, "approved") == 0);
	CHECK(commits == 1);
	CHECK_STR(Q_TEXT(p, "SELECT state FROM requests"), "approved");
	CHECK(Q_INT(p, "SELECT count(*) FROM audit WHERE kind IN ('approval', 'request_end')") == 2);
	sqlite3_commit_hook(store_db(s), NULL, NULL);
	store_close(s);
	CHECK(store_audit_verify(p, NULL, &v) == 0);
}

int main(void)
{
	const char *base = getenv("TMPDIR");

	if (al_fmt(tmpdir, sizeof(tmpdir), "%s/airlock-test-store.XXXXXX", base ? base : "/tmp") < 0 ||
	    !mkdtemp(tmpdir)) {
		printf("not ok - mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	atexit(rm_tmpdir);

	RUN(test_create);
	RUN(test_checkpoints);
	RUN(test_wal_bounded);
	RUN(test_round_trip);
	RUN(test_record_nulls);
	RUN(test_totals);
	RUN(test_list);
	RUN(test_list_uses_index);
	RUN(test_crash_recovery);
	RUN(test_pins);
	RUN(test_users);
	RUN(test_user_del_undoes);
	RUN(test_grant_approvers);
	RUN(test_reopen);
	RUN(test_refusals);
	RUN(test_newer_schema);
	RUN(test_mkdir);
	RUN(test_unwritable);
	RUN(test_durable_folds_batch);
	RUN(test_retention_clock_back);
	TEST_EXIT();
}
