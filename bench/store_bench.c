/*
 * The audit store's cost per command, measured alone: what airlockd's store does for each
 * statement or HTTP request, without the network, the proxies or the clients around it.
 *
 * The end-to-end benchmarks (pg_bench.sh, https_bench.sh) run pgbench or wrk, the server and
 * airlockd on the same cores; their figures move by a quarter from run to run, and a change
 * to the store is lost in that. This one drives the store API the way the daemon does and
 * times it, so a change to the store shows as what it is.
 *
 * Workloads, each in its own fresh store file, alternated round by round, medians reported:
 *   pg     8 sessions interleaved; per statement: store_stmt_add, the 5 messages a
 *          pgbench -S transaction records (Query, RowDescription, DataRow, CommandComplete,
 *          ReadyForQuery), store_stmt_outcome
 *   http   8 sessions interleaved; per request: store_http_add, store_http_outcome
 *   floor  the same statements as plain INSERTs into a table with the statements table's
 *          columns and indexes, no audit chain, no recordings: what SQLite itself costs per
 *          row on this machine, in the same batches
 *   batch_row  a plain model of one row per batch: the batch's statements as one JSON
 *          array in one row, with one chained audit record holding it again, in plain SQL
 *          (the store's own layout since schema 11; since 13 it writes the array once, in
 *          the record): the floor of that layout, without the store's code around it
 * Every workload commits a batch every BATCH commands with store_batch_commit_settled, as
 * the daemon's group commit did (24 is about 2 ms of pgbench -S at 12k statements a second:
 * its fixed window until commit_interval, 20 ms by default, replaced it).
 *
 * Usage: store_bench [commands per run (30000)] [batch (24)] [rounds (3)]
 * STORE_BENCH_WORKLOADS (environment): the workloads to run, e.g. "pg" (default: all four).
 * The store files go in $TMPDIR (/tmp), on the disk the daemon's store would use, and are
 * removed after each run.
 */
#include <airlock/common.h>
#include <airlock/store.h>

#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SESSIONS 8

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int open_store(const char *path, struct store **s, int64_t conn[SESSIONS])
{
	struct store_conn c = {
		.opened_us = 1, .cgroup_id = 5, .cgroup_path = "/agent.slice/bench", .pid = 4242,
		.uid = 1000, .comm = "pgbench", .exe = "/usr/bin/pgbench", .agent_addr = "127.0.0.1",
		.agent_port = 40000, .dst_addr = "127.0.0.5", .dst_port = 5432, .resource = "pg",
		.protocol = "postgres",
	};

	if (store_open(path, s) < 0)
		return -1;
	for (int i = 0; i < SESSIONS; i++) {
		c.agent_port = (uint16_t)(40000 + i);
		if (store_conn_open(*s, &c, &conn[i]) < 0) {
			store_close(*s);
			return -1;
		}
	}
	return 0;
}

/* One pgbench -S statement of session k: the statement, the 5 messages recorded, the outcome. */
static int pg_one(struct store *s, const int64_t *conn, int64_t *rec_seq, int i)
{
	int k = i % SESSIONS;
	char q[96];
	struct store_stmt st = {
		.conn_id = conn[k], .seq = i / SESSIONS, .at_us = al_now_us(), .protocol = "simple",
		.text = q, .kind = "read", .fingerprint = "5e9d2c1b7a3f4e60",
		.relations_json = "[\"pgbench_accounts\"]", .decision = "allow",
	};
	struct store_stmt_outcome o = { .tag = "SELECT 1", .rows = 1, .duration_us = 41 };
	const char *msgs[5][3] = {
		{ "A", "Q", q },
		{ "U", "T", "{\"fields\":[{\"name\":\"abalance\",\"type\":23,\"format\":0}]}" },
		{ "U", "D", "[\"0\"]" },
		{ "U", "C", "SELECT 1" },
		{ "U", "Z", "I" },
	};
	int64_t id;

	snprintf(q, sizeof(q), "SELECT abalance FROM pgbench_accounts WHERE aid = %d;", (i * 7919) % 1000000);
	if (store_stmt_add(s, &st, &id) < 0)
		return -1;
	for (int m = 0; m < 5; m++)
		if (store_rec_add(s, conn[k], ++rec_seq[k], al_now_us(), msgs[m][0], msgs[m][1], msgs[m][2],
				  strlen(msgs[m][2])) < 0)
			return -1;
	return store_stmt_outcome(s, id, &o);
}

/* One keep-alive GET of session i % SESSIONS, and its outcome. */
static int http_one(struct store *s, const int64_t *conn, int64_t *rec_seq, int i)
{
	char p[64];
	struct store_http h = {
		.conn_id = conn[i % SESSIONS], .seq = i / SESSIONS, .at_us = al_now_us(), .method = "GET",
		.host = "api.internal", .path = p, .kind = "read",
		.headers_json = "{\"accept\":\"*/*\",\"user-agent\":\"wrk\"}", .body_len = 0,
		.request_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		.fingerprint = "GET api.internal /v1/items/:id", .decision = "allow",
	};
	struct store_http_outcome o = { .status = 200, .bytes_up = 96, .bytes_down = 512, .duration_us = 63 };
	int64_t id;

	(void)rec_seq;
	snprintf(p, sizeof(p), "/v1/items/%d", i % 1000);
	return store_http_add(s, &h, &id) < 0 ? -1 : store_http_outcome(s, id, &o);
}

/* n commands through the store API, a group commit every batch, as the daemon drives it. */
static double run_store(const char *path, int n, int batch,
			int (*one)(struct store *s, const int64_t *conn, int64_t *rec_seq, int i))
{
	struct store *s;
	int64_t conn[SESSIONS], rec_seq[SESSIONS] = { 0 };
	double t0, t = -1;

	if (open_store(path, &s, conn) < 0)
		return -1;
	t0 = now_us();
	for (int i = 0; i < n; i++)
		if (store_batch_begin(s) < 0 || one(s, conn, rec_seq, i) < 0 ||
		    ((i + 1) % batch == 0 && store_batch_commit_settled(s) < 0))
			goto out;
	if (store_batch_commit(s) == 0)
		t = (now_us() - t0) / n;
out:
	store_close(s);
	return t;
}

static double run_pg(const char *path, int n, int batch)
{
	return run_store(path, n, batch, pg_one);
}

static double run_http(const char *path, int n, int batch)
{
	return run_store(path, n, batch, http_one);
}

/* Plain SQLite, the store's settings (WAL, synchronous NORMAL), the statements table's shape. */
static double run_floor(const char *path, int n, int batch)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *ins = NULL;
	double t0, t = -1;

	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			 "CREATE TABLE statements (id INTEGER PRIMARY KEY, conn_id INTEGER NOT NULL,"
			 " seq INTEGER NOT NULL, at_us INTEGER NOT NULL, protocol TEXT NOT NULL, text TEXT NOT NULL,"
			 " kind TEXT NOT NULL, fingerprint TEXT, relations TEXT, unbounded_write INTEGER NOT NULL"
			 " DEFAULT 0, params TEXT, decision TEXT NOT NULL, rule TEXT, tag TEXT, sqlstate TEXT,"
			 " error TEXT, rows INTEGER, duration_us INTEGER);"
			 "CREATE INDEX statements_conn ON statements(conn_id, seq);"
			 "CREATE INDEX statements_at_us ON statements(at_us);", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO statements (conn_id, seq, at_us, protocol, text, kind,"
			       " fingerprint, relations, decision, tag, rows, duration_us)"
			       " VALUES (?1, ?2, ?3, 'simple', ?4, 'read', '5e9d2c1b7a3f4e60',"
			       " '[\"pgbench_accounts\"]', 'allow', 'SELECT 1', 1, 41)", -1, &ins, NULL) != SQLITE_OK)
		goto out;
	t0 = now_us();
	for (int i = 0; i < n; i++) {
		char q[96];

		snprintf(q, sizeof(q), "SELECT abalance FROM pgbench_accounts WHERE aid = %d;", (i * 7919) % 1000000);
		if ((i % batch == 0 && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) ||
		    sqlite3_bind_int64(ins, 1, i % SESSIONS + 1) != SQLITE_OK ||
		    sqlite3_bind_int64(ins, 2, i / SESSIONS) != SQLITE_OK ||
		    sqlite3_bind_int64(ins, 3, al_now_us()) != SQLITE_OK ||
		    sqlite3_bind_text(ins, 4, q, -1, SQLITE_STATIC) != SQLITE_OK || sqlite3_step(ins) != SQLITE_DONE ||
		    sqlite3_reset(ins) != SQLITE_OK ||
		    ((i + 1) % batch == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK))
			goto out;
	}
	if (!sqlite3_get_autocommit(db) && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	t = (now_us() - t0) / n;
out:
	if (t < 0)
		fprintf(stderr, "store_bench: floor: %s\n", db ? sqlite3_errmsg(db) : "out of memory");
	sqlite3_finalize(ins);
	sqlite3_close(db);
	return t;
}

/* The plain model of one row per batch: each statement as a JSON object (written as the audit
 * hook writes bodies), the batch's array in one row, plus one chained record for it. */
static double run_batch_row(const char *path, int n, int batch)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *ins = NULL, *rec = NULL;
	struct al_buf b = { 0 };
	char prev[65] = "", h[65];
	unsigned char md[32];
	double t0, t = -1;

	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			 "CREATE TABLE batches (id INTEGER PRIMARY KEY, first_at_us INTEGER NOT NULL,"
			 " last_at_us INTEGER NOT NULL, conns TEXT NOT NULL, rows TEXT NOT NULL);"
			 "CREATE INDEX batches_at ON batches(last_at_us);"
			 "CREATE TABLE audit (seq INTEGER PRIMARY KEY, at_us INTEGER NOT NULL, kind TEXT NOT NULL,"
			 " ref_id INTEGER, body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
			 "CREATE INDEX audit_at_us ON audit(at_us);", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO batches (first_at_us, last_at_us, conns, rows) VALUES (?1, ?2,"
			       " ',1,2,3,4,5,6,7,8,', ?3)", -1, &ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO audit (at_us, kind, ref_id, body, prev_hash, hash) VALUES (?1,"
			       " 'statements', last_insert_rowid(), ?2, ?3, ?4)", -1, &rec, NULL) != SQLITE_OK)
		goto out;
	t0 = now_us();
	for (int i = 0, first = 1; i < n; i++) {
		char q[96], num[24];
		int64_t at = al_now_us();
		static int64_t first_at;

		snprintf(q, sizeof(q), "SELECT abalance FROM pgbench_accounts WHERE aid = %d;", (i * 7919) % 1000000);
		if (first) {
			b.len = 0;
			al_buf_add(&b, "[", 1);
			first_at = at;
		}
		al_buf_add(&b, first ? "{\"at_us\":" : ",{\"at_us\":", first ? 9 : 10);
		al_buf_add(&b, num, al_dec(num, at));
		al_buf_str(&b, ",\"conn_id\":");
		al_buf_add(&b, num, al_dec(num, i % SESSIONS + 1));
		al_buf_str(&b, ",\"decision\":\"allow\",\"duration_us\":41,\"error\":null,"
			   "\"fingerprint\":\"5e9d2c1b7a3f4e60\",\"id\":");
		al_buf_add(&b, num, al_dec(num, i + 1));
		al_buf_str(&b, ",\"kind\":\"read\",\"params\":null,\"protocol\":\"simple\",\"relations\":");
		al_buf_json_str(&b, "[\"pgbench_accounts\"]", 21);
		al_buf_str(&b, ",\"rows\":1,\"rule\":null,\"seq\":");
		al_buf_add(&b, num, al_dec(num, i / SESSIONS));
		al_buf_str(&b, ",\"sqlstate\":null,\"tag\":\"SELECT 1\",\"text\":");
		al_buf_json_str(&b, q, strlen(q));
		al_buf_str(&b, ",\"unbounded_write\":0}");
		first = 0;
		if ((i + 1) % batch == 0 || i + 1 == n) {
			EVP_MD_CTX *x = EVP_MD_CTX_new();
			unsigned int mdn = 0;

			al_buf_add(&b, "]", 1);
			if (b.oom || !x || EVP_DigestInit_ex(x, EVP_sha256(), NULL) != 1 ||
			    EVP_DigestUpdate(x, prev, strlen(prev)) != 1 || EVP_DigestUpdate(x, b.p, b.len) != 1 ||
			    EVP_DigestFinal_ex(x, md, &mdn) != 1) {
				EVP_MD_CTX_free(x);
				goto out;
			}
			EVP_MD_CTX_free(x);
			al_hex(md, 32, h);
			if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
			    sqlite3_bind_int64(ins, 1, first_at) != SQLITE_OK ||
			    sqlite3_bind_int64(ins, 2, at) != SQLITE_OK ||
			    sqlite3_bind_text(ins, 3, b.p, (int)b.len, SQLITE_STATIC) != SQLITE_OK ||
			    sqlite3_step(ins) != SQLITE_DONE || sqlite3_reset(ins) != SQLITE_OK ||
			    sqlite3_bind_int64(rec, 1, at) != SQLITE_OK ||
			    sqlite3_bind_text(rec, 2, b.p, (int)b.len, SQLITE_STATIC) != SQLITE_OK ||
			    sqlite3_bind_text(rec, 3, prev, -1, SQLITE_STATIC) != SQLITE_OK ||
			    sqlite3_bind_text(rec, 4, h, -1, SQLITE_STATIC) != SQLITE_OK ||
			    sqlite3_step(rec) != SQLITE_DONE || sqlite3_reset(rec) != SQLITE_OK ||
			    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
				goto out;
			memcpy(prev, h, sizeof(h));
			first = 1;
		}
	}
	t = (now_us() - t0) / n;
out:
	if (t < 0)
		fprintf(stderr, "store_bench: batch_row: %s\n", db ? sqlite3_errmsg(db) : "out of memory");
	free(b.p);
	sqlite3_finalize(ins);
	sqlite3_finalize(rec);
	sqlite3_close(db);
	return t;
}

static void remove_store(const char *path)
{
	static const char *const ext[] = { "", "-wal", "-shm" };
	char p[4200];

	for (size_t i = 0; i < AL_ARRAY_LEN(ext); i++) {
		snprintf(p, sizeof(p), "%s%s", path, ext[i]);
		unlink(p);
	}
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Whether STORE_BENCH_WORKLOADS (a list of names; unset: all) names this workload. */
static int wanted(const char *name)
{
	const char *list = getenv("STORE_BENCH_WORKLOADS"), *p;
	size_t n = strlen(name);

	if (!list || !*list)
		return 1;
	for (p = strstr(list, name); p; p = strstr(p + 1, name))
		if ((p == list || p[-1] == ' ' || p[-1] == ',') && (p[n] == '\0' || p[n] == ' ' || p[n] == ','))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "pg", "http", "floor", "batch_row" };
	double (*const fn[])(const char *, int, int) = { run_pg, run_http, run_floor, run_batch_row };
	enum { W = AL_ARRAY_LEN(names) };
	int n = argc > 1 ? atoi(argv[1]) : 30000, batch = argc > 2 ? atoi(argv[2]) : 24;
	int rounds = argc > 3 ? atoi(argv[3]) : 3;
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char dir[4096], path[4200];
	double v[W][64], med[W];

	if (n < 100 || batch < 1 || rounds < 1 || rounds > 64) {
		fprintf(stderr, "usage: store_bench [commands >= 100] [batch >= 1] [rounds 1..64]\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s/airlock-store-bench.XXXXXX", tmp);
	if (!mkdtemp(dir)) {
		perror("store_bench: mkdtemp");
		return 1;
	}
	printf("store per command: %d commands a run, a commit every %d, %d sessions, %d rounds, in %s\n", n, batch,
	       SESSIONS, rounds, dir);
	for (int r = 0; r < rounds; r++) {
		printf("round %d/%d", r + 1, rounds);
		for (int k = 0; k < W; k++) {
			int w = (r + k) % W;

			if (!wanted(names[w])) {
				v[w][r] = 0;
				continue;
			}

			snprintf(path, sizeof(path), "%s/%s.db", dir, names[w]);
			v[w][r] = fn[w](path, n, batch);
			remove_store(path);
			if (v[w][r] < 0) {
				fprintf(stderr, "\nstore_bench: the %s run failed\n", names[w]);
				rmdir(dir);
				return 1;
			}
			printf("  %s %.2f us", names[w], v[w][r]);
			fflush(stdout);
		}
		printf("\n");
	}
	/* the store's signing key pair, made beside the store files */
	snprintf(path, sizeof(path), "%s/audit.key", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/audit.pub", dir);
	unlink(path);
	rmdir(dir);
	for (int k = 0; k < W; k++) {
		qsort(v[k], (size_t)rounds, sizeof(double), cmp);
		med[k] = v[k][rounds / 2];
	}
	if (med[0] > 0 && med[1] > 0 && med[2] > 0 && med[3] > 0) {
		printf("\nMedians (us per command): pg statement %.2f, http request %.2f; SQLite's own insert %.2f"
		       " (pg is %.1fx, http %.1fx that); one row and one record per batch %.2f\n", med[0], med[1],
		       med[2], med[0] / med[2], med[1] / med[2], med[3]);
	} else {
		printf("\nMedians (us per command):");
		for (int k = 0; k < W; k++)
			if (med[k] > 0)
				printf(" %s %.2f", names[k], med[k]);
		printf("\n");
	}
	return 0;
}
