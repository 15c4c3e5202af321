/* The audit store on sqlite: schema migrations, connection rows, pins, totals and the JSON row list. */
#include <airlock/store.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "store_int.h"

/*
 * Schema migrations, applied in order, each in its own transaction that
 * also bumps PRAGMA user_version. Append only: a shipped migration is never
 * edited, because stores in the field have already run it.
 */
static const char *const migrations[] = {
	/* 1: connection rows and pinned cgroup names */
	"CREATE TABLE connections ("
	" id INTEGER PRIMARY KEY,"
	" opened_us INTEGER NOT NULL,"
	" closed_us INTEGER,"
	" cgroup_id INTEGER,"
	" cgroup_path TEXT,"
	" pid INTEGER,"
	" tid INTEGER,"
	" uid INTEGER,"
	" gid INTEGER,"
	" comm TEXT,"
	" exe TEXT,"
	" agent_addr TEXT,"
	" agent_port INTEGER,"
	" dst_addr TEXT,"
	" dst_port INTEGER,"
	" resource TEXT,"
	" protocol TEXT,"
	" bytes_up INTEGER NOT NULL DEFAULT 0,"
	" bytes_down INTEGER NOT NULL DEFAULT 0,"
	" reason TEXT,"
	" detail TEXT);"
	"CREATE INDEX connections_opened_us ON connections(opened_us);"
	"CREATE INDEX connections_reason ON connections(reason);"
	"CREATE TABLE pins ("
	" cgroup_id INTEGER PRIMARY KEY,"
	" path TEXT NOT NULL,"
	" pinned_us INTEGER NOT NULL);",
	/* 2: refused attempts seen by the kernel fence (sampled, rate-limited) */
	"CREATE TABLE refusals ("
	" id INTEGER PRIMARY KEY,"
	" at_us INTEGER NOT NULL,"
	" reason TEXT NOT NULL,"
	" cgroup_id INTEGER,"
	" cgroup_path TEXT,"
	" pid INTEGER,"
	" tid INTEGER,"
	" uid INTEGER,"
	" comm TEXT,"
	" exe TEXT,"
	" family INTEGER,"
	" type INTEGER,"
	" protocol INTEGER,"
	" dst_addr TEXT,"
	" dst_port INTEGER,"
	" count INTEGER NOT NULL DEFAULT 1,"
	" detail TEXT);"
	"CREATE INDEX refusals_at_us ON refusals(at_us);",
	/* 3: statements of terminated protocol sessions (PostgreSQL), decision and outcome */
	"CREATE TABLE statements ("
	" id INTEGER PRIMARY KEY,"
	" conn_id INTEGER NOT NULL,"
	" seq INTEGER NOT NULL,"
	" at_us INTEGER NOT NULL,"
	" protocol TEXT NOT NULL,"
	" text TEXT NOT NULL,"
	" kind TEXT NOT NULL,"
	" fingerprint TEXT,"
	" relations TEXT,"
	" unbounded_write INTEGER NOT NULL DEFAULT 0,"
	" params TEXT,"
	" decision TEXT NOT NULL,"
	" rule TEXT,"
	" tag TEXT,"
	" sqlstate TEXT,"
	" error TEXT,"
	" rows INTEGER,"
	" duration_us INTEGER);"
	"CREATE INDEX statements_conn ON statements(conn_id, seq);"
	"CREATE INDEX statements_at_us ON statements(at_us);",
	/* 4: the pinned interface an agent in a network namespace came through */
	"ALTER TABLE connections ADD COLUMN iface TEXT;",
	/* 5: review: requests, each reviewer's decision, grants, reviewer users */
	"CREATE TABLE requests ("
	" id INTEGER PRIMARY KEY,"
	" created_us INTEGER NOT NULL,"
	" expires_us INTEGER NOT NULL,"
	" state TEXT NOT NULL,"
	" conn_id INTEGER, stmt_id INTEGER,"
	" cgroup_id INTEGER, cgroup_path TEXT, pid INTEGER, uid INTEGER, exe TEXT, comm TEXT,"
	" resource TEXT NOT NULL, protocol TEXT NOT NULL,"
	" command TEXT NOT NULL, kind TEXT, fingerprint TEXT, sha256 TEXT NOT NULL,"
	" rule TEXT NOT NULL, approvers TEXT, approvals_needed INTEGER NOT NULL,"
	" max_grant_s INTEGER NOT NULL, decided_us INTEGER, reason TEXT);"
	"CREATE INDEX requests_state ON requests(state);"
	"CREATE TABLE approvals ("
	" request_id INTEGER NOT NULL, reviewer TEXT NOT NULL, decision TEXT NOT NULL,"
	" reason TEXT, grant_s INTEGER, at_us INTEGER NOT NULL,"
	" PRIMARY KEY (request_id, reviewer));"
	"CREATE TABLE grants ("
	" id INTEGER PRIMARY KEY, request_id INTEGER, fingerprint TEXT NOT NULL,"
	" cgroup_id INTEGER NOT NULL, cgroup_path TEXT, resource TEXT NOT NULL,"
	" created_us INTEGER NOT NULL, expires_us INTEGER NOT NULL, revoked_us INTEGER,"
	" created_by TEXT, revoked_by TEXT);"
	"CREATE TABLE users ("
	" name TEXT PRIMARY KEY, uid INTEGER UNIQUE, groups TEXT NOT NULL DEFAULT '',"
	" pwhash TEXT, admin INTEGER NOT NULL DEFAULT 0, created_us INTEGER NOT NULL);",
	/* 6: console API tokens (only their sha256 is kept) */
	"CREATE TABLE console_tokens ("
	" id INTEGER PRIMARY KEY, user TEXT NOT NULL, sha256 TEXT NOT NULL UNIQUE,"
	" created_us INTEGER NOT NULL, last_used_us INTEGER);"
	"CREATE INDEX requests_decided ON requests(decided_us);",
	/* 7: the hash-chained audit log, its signed checkpoints, session recordings */
	"CREATE TABLE audit ("
	" seq INTEGER PRIMARY KEY, at_us INTEGER NOT NULL, kind TEXT NOT NULL, ref_id INTEGER,"
	" body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
	"CREATE INDEX audit_at_us ON audit(at_us);"
	"CREATE TABLE audit_checkpoints ("
	" seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, at_us INTEGER NOT NULL, signature TEXT NOT NULL);"
	"CREATE TABLE recordings ("
	" conn_id INTEGER NOT NULL, seq INTEGER NOT NULL, at_us INTEGER NOT NULL, dir TEXT NOT NULL,"
	" type TEXT NOT NULL, data TEXT, PRIMARY KEY (conn_id, seq));"
	"CREATE INDEX recordings_at_us ON recordings(at_us);",	/* 8: HTTP requests of https resources, one row each (decision, status, bytes) */
	"CREATE TABLE http_requests ("
	" id INTEGER PRIMARY KEY, conn_id INTEGER, seq INTEGER NOT NULL, at_us INTEGER NOT NULL,"
	" method TEXT NOT NULL, host TEXT, path TEXT NOT NULL, query TEXT, kind TEXT NOT NULL,"
	" headers TEXT, body_len INTEGER, body_sha256 TEXT, request_sha256 TEXT NOT NULL,"
	" k8s TEXT, fingerprint TEXT, decision TEXT NOT NULL, rule TEXT, request_id INTEGER,"
	" status INTEGER, bytes_up INTEGER, bytes_down INTEGER, duration_us INTEGER, error TEXT);"
	"CREATE INDEX http_requests_conn ON http_requests(conn_id);"
	"CREATE INDEX http_requests_at_us ON http_requests(at_us);",
	/* 9: recordings in one b-tree (their primary key) instead of three: every relayed
	 * message is a row, and retention now goes by session, not by message time */
	"CREATE TABLE recordings_v9 ("
	" conn_id INTEGER NOT NULL, seq INTEGER NOT NULL, at_us INTEGER NOT NULL, dir TEXT NOT NULL,"
	" type TEXT NOT NULL, data TEXT, PRIMARY KEY (conn_id, seq)) WITHOUT ROWID;"
	"INSERT INTO recordings_v9 SELECT conn_id, seq, at_us, dir, type, data FROM recordings;"
	"DROP TABLE recordings;"
	"ALTER TABLE recordings_v9 RENAME TO recordings;",
	/* 10: recordings in chunks: what one session recorded within a group-commit batch is one
	 * row (rec.c has the format) instead of a row per message */
	"CREATE TABLE recordings_v10 ("
	" conn_id INTEGER NOT NULL, seq INTEGER NOT NULL, at_us INTEGER NOT NULL, n INTEGER NOT NULL,"
	" data BLOB NOT NULL, PRIMARY KEY (conn_id, seq)) WITHOUT ROWID;"
	"INSERT INTO recordings_v10 SELECT conn_id, seq, at_us, 1, CAST(seq || ' ' || at_us || ' ' || dir"
	" || ' ' || type || ' ' || coalesce(length(CAST(data AS BLOB)), -1) || char(10) AS BLOB)"
	" || coalesce(CAST(data AS BLOB), X'') FROM recordings;"
	"DROP TABLE recordings;"
	"ALTER TABLE recordings_v10 RENAME TO recordings;",
	/* 11: commands in batches (store_int.h): a group commit's statements and HTTP requests
	 * with their outcomes are one command_batches row; the tables keep the commands written
	 * alone; statements and http_requests become views of both */
	"CREATE TABLE command_batches ("
	" id INTEGER PRIMARY KEY, kind TEXT NOT NULL, first_id INTEGER NOT NULL, last_id INTEGER NOT NULL,"
	" first_at_us INTEGER NOT NULL, last_at_us INTEGER NOT NULL, conns TEXT NOT NULL, rows TEXT NOT NULL);"
	"CREATE INDEX command_batches_last_id ON command_batches(kind, last_id);"
	"CREATE INDEX command_batches_last_at ON command_batches(kind, last_at_us);"
	"ALTER TABLE statements RENAME TO statement_rows;"
	"ALTER TABLE http_requests RENAME TO http_request_rows;"
	"CREATE VIEW statements AS SELECT " STMT_COLS " FROM statement_rows UNION ALL " STMT_BATCHED_V11("") ";"
	"CREATE VIEW http_requests AS SELECT " HTTP_COLS " FROM http_request_rows UNION ALL " HTTP_BATCHED_V11("") ";",
	/* 12: each batch's commands counted by decision ({"allow":23,"deny":1}): counting them all
	 * (the console's metrics) reads these instead of every command's JSON */
	"ALTER TABLE command_batches ADD COLUMN decisions TEXT;",
	/* 13: a batch's commands are written once, in its audit record (audit_seq), not also in
	 * its row (store_int.h); the views read them from there */
	"ALTER TABLE command_batches ADD COLUMN audit_seq INTEGER;"
	"DROP VIEW statements;"
	"DROP VIEW http_requests;"
	"CREATE VIEW statements AS SELECT " STMT_COLS " FROM statement_rows UNION ALL " STMT_BATCHED("") ";"
	"CREATE VIEW http_requests AS SELECT " HTTP_COLS " FROM http_request_rows UNION ALL " HTTP_BATCHED("") ";",
	/* 14: recordings expire by their session's end (rec.c): the sessions that ended since the
	 * last pass, found by this index, not by reading every session the store holds */
	"CREATE INDEX connections_closed_us ON connections(closed_us);",
	/* 15: a grant covers its agent's uid too (two users' agents in one cgroup are two agents);
	 * older grants have none and cover no one */
	"ALTER TABLE grants ADD COLUMN agent_uid INTEGER;",
	/* 16: a pinned cgroup found removed keeps its record, marked, until its path names a cgroup
	 * again (a service restarted): pinned at once then, and across restarts meanwhile */
	"ALTER TABLE pins ADD COLUMN gone_us INTEGER;",
	/* 17: an agent behind a pinned interface is that interface, in its requests and its grants:
	 * such an agent has no cgroup and no uid (0 for both), so a grant matched on them covered
	 * every interface's agent; older grants with cgroup_id 0 cover no one (approval.c) */
	"ALTER TABLE grants ADD COLUMN agent_iface TEXT;"
	"ALTER TABLE grants ADD COLUMN agent_ifindex INTEGER;"
	"ALTER TABLE requests ADD COLUMN iface TEXT;",
	/* 18: a grant keeps the approver groups of the rule that held its request (they, or an
	 * admin, may revoke it): a rotation removes the request row while the grant lives on */
	"ALTER TABLE grants ADD COLUMN approvers TEXT;"
	"UPDATE grants SET approvers = (SELECT approvers FROM requests WHERE requests.id = grants.request_id);",
};

_Static_assert(AL_ARRAY_LEN(migrations) == STORE_SCHEMA_VERSION,
	       "STORE_SCHEMA_VERSION must name the last migration");

/* The connection columns a caller supplies at accept, in bind order (?1..?16). */
#define CONN_COLS "opened_us, cgroup_id, cgroup_path, pid, tid, uid, gid, comm, exe, " \
		  "agent_addr, agent_port, dst_addr, dst_port, resource, protocol"
#define CONN_PARAMS "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15"
#define CONN_NPARAMS 15

/* Statements prepared once at open; the hot path only binds and steps. */
enum st {
	ST_CONN_OPEN,
	ST_CONN_CLOSE,
	ST_CONN_RECORD,
	ST_RECOVER,
	ST_PIN_ADD,
	ST_PIN_GONE,
	ST_PIN_DEL,
	ST_PIN_GET,
	ST_TOTALS,
	ST_LIST,
	ST_REFUSAL_ADD,
	ST_REFUSAL_LIST,
	ST_STMT_ADD,
	ST_STMT_OUTCOME,
	ST_STMT_LIST,
	ST_SP_BEGIN,
	ST_SP_RELEASE,
	ST_SP_ROLLBACK,
	ST__COUNT
};

static const char *const st_sql[ST__COUNT] = {
	[ST_CONN_OPEN] =
		"INSERT INTO connections (" CONN_COLS ", iface) VALUES (" CONN_PARAMS ", ?22)",
	/* Only an open row may be closed: a second close, or one for a row
	 * the restart recovery already ended, must not rewrite history. */
	[ST_CONN_CLOSE] =
		"UPDATE connections SET closed_us = ?16, bytes_up = ?17, bytes_down = ?18,"
		" reason = ?19, detail = ?20 WHERE id = ?21 AND closed_us IS NULL",
	[ST_CONN_RECORD] =
		"INSERT INTO connections (" CONN_COLS ", closed_us, bytes_up, bytes_down, reason, detail,"
		" iface) VALUES (" CONN_PARAMS ", ?16, ?17, ?18, ?19, ?20, ?22)",
	[ST_RECOVER] =
		"UPDATE connections SET closed_us = ?1, reason = ?2, detail = ?3"
		" WHERE closed_us IS NULL",
	[ST_PIN_ADD] =
		"INSERT INTO pins (cgroup_id, path, pinned_us) VALUES (?1, ?2, ?3)"
		" ON CONFLICT (cgroup_id) DO UPDATE SET path = excluded.path, pinned_us = excluded.pinned_us,"
		" gone_us = NULL",
	[ST_PIN_GONE] =
		"UPDATE pins SET gone_us = ?2 WHERE cgroup_id = ?1 AND gone_us IS NULL",
	[ST_PIN_DEL] =
		"DELETE FROM pins WHERE cgroup_id = ?1",
	[ST_PIN_GET] =
		"SELECT path FROM pins WHERE cgroup_id = ?1",
	[ST_TOTALS] =
		"SELECT reason, count(*) FROM connections GROUP BY reason",
	[ST_LIST] =
		"SELECT id, opened_us, closed_us, cgroup_id, cgroup_path, pid, tid, uid, gid,"
		" comm, exe, agent_addr, agent_port, dst_addr, dst_port, resource, protocol,"
		" bytes_up, bytes_down, reason, detail, iface"
		" FROM connections ORDER BY opened_us DESC, id DESC LIMIT ?1",
	[ST_REFUSAL_ADD] =
		"INSERT INTO refusals (at_us, reason, cgroup_id, cgroup_path, pid, tid, uid, comm, exe,"
		" family, type, protocol, dst_addr, dst_port, count, detail)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
	[ST_REFUSAL_LIST] =
		"SELECT id, at_us, reason, cgroup_id, cgroup_path, pid, tid, uid, comm, exe,"
		" family, type, protocol, dst_addr, dst_port, count, detail"
		" FROM refusals ORDER BY at_us DESC, id DESC LIMIT ?1",
	[ST_STMT_ADD] =
		"INSERT INTO statement_rows (conn_id, seq, at_us, protocol, text, kind, fingerprint,"
		" relations, unbounded_write, params, decision, rule, tag, sqlstate, error, rows,"
		" duration_us, id)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
	[ST_STMT_OUTCOME] =
		"UPDATE statement_rows SET tag = ?2, sqlstate = ?3, error = ?4, rows = ?5, duration_us = ?6"
		" WHERE id = ?1",
	[ST_STMT_LIST] =
		/* the newest rows written alone and the rows of the newest batches */
		"SELECT * FROM (SELECT " STMT_COLS " FROM statement_rows ORDER BY id DESC LIMIT ?1) UNION ALL "
		STMT_BATCHED(BATCHED_NEWEST("statements")) " ORDER BY id DESC LIMIT ?1",
	/* Each write and its audit record share a savepoint (see write_step); so do
	 * store_durable's changes, within a batch it commits. */
	[ST_SP_BEGIN] = "SAVEPOINT al_write",
	[ST_SP_RELEASE] = "RELEASE al_write",
	[ST_SP_ROLLBACK] = "ROLLBACK TO al_write",
};

struct store {
	sqlite3 *db;
	int in_batch;               /* inside store_batch_begin .. commit */
	void (*on_batch)(void *arg);  /* told when a batch opens: it must commit soon */
	void *on_batch_arg;
	sqlite3_stmt *st[ST__COUNT];
	int version;
	struct store_audit audit;   /* the chain (audit.c) */
	/* WAL checkpoints (the only fsyncs of NORMAL mode) run in a thread of
	 * their own, on their own connection, so the event loop never waits
	 * for the disk. */
	pthread_t ckpt;
	int ckpt_running, ckpt_stop;
	int ckpt_kick;              /* a commit left the WAL long: copy it now */
	pthread_mutex_t ckpt_mu;
	pthread_cond_t ckpt_cv;
	char *path;
	int64_t last_rowid;         /* of the last write_step, before its audit record */
	int last_changes;
	/* store_totals' answer, counted once (a scan of every connection row) and then kept up by
	 * the opens and closes the daemon writes; tot_ok 0: count again at the next call. */
	struct store_totals tot;
	int tot_ok;
	/* Rows of the open batch not written yet (see held_add), and an index of them by id for
	 * the outcome that joins one (open addressing; hidx_bad: not kept up, walk the list). */
	struct held *held, **held_tail;
	struct held **hidx;
	size_t hidx_cap, hidx_n;
	int hidx_bad;
	int64_t next_stmt_id, next_http_id;
	sqlite3_stmt *cached[STORE_C__COUNT];
};

/*
 * A statement or HTTP request waiting for its batch's commit. An allowed
 * command's outcome usually arrives within the same batch: the row is then
 * written once, whole, with one audit record, instead of an insert and an
 * update.
 */
enum held_kind { HELD_STMT, HELD_HTTP };
struct held {
	struct held *next;
	enum held_kind kind;
	int64_t id;
	int has_outcome;
	int carried;                    /* a commit passed it over, waiting for its outcome */
	union {
		struct store_stmt stmt;
		struct store_http http;
	} row;                          /* strings point into text[] */
	union {
		struct store_stmt_outcome stmt;
		struct store_http_outcome http;
	} out;                          /* strings point into ostr */
	char *ostr;
	char text[];
};

static void ckpt_start(struct store *s, const char *path);

static void db_err(struct store *s, const char *what)
{
	al_err("store: %s: %s", what, sqlite3_errmsg(s->db));
}

/* Makes the statement reusable and drops references to caller strings. */
static void st_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (!v)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* Binds an integer, or NULL when the value is not known. */
static int bind_int(sqlite3_stmt *st, int i, int64_t v, int known)
{
	if (!known)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_int64(st, i, v);
}

/*
 * Binds ?1..?15 and ?22 (iface) from c. A cgroup id of 0 means the connection has no
 * kernel identity (no BPF record): its identity columns are NULL rather
 * than zeroes, so a row never claims uid 0 for an agent nobody saw. A port
 * whose address is unknown (NULL) and zero is likewise NULL.
 */
static int bind_conn(sqlite3_stmt *st, const struct store_conn *c)
{
	int id = c->cgroup_id != 0;
	int rc = 0;

	rc |= sqlite3_bind_int64(st, 1, c->opened_us);
	rc |= bind_int(st, 2, (int64_t)c->cgroup_id, id);
	rc |= bind_text(st, 3, c->cgroup_path);
	rc |= bind_int(st, 4, c->pid, id);
	rc |= bind_int(st, 5, c->tid, id);
	rc |= bind_int(st, 6, c->uid, id);
	rc |= bind_int(st, 7, c->gid, id);
	rc |= bind_text(st, 8, c->comm);
	rc |= bind_text(st, 9, c->exe);
	rc |= bind_text(st, 10, c->agent_addr);
	rc |= bind_int(st, 11, c->agent_port, c->agent_addr || c->agent_port);
	rc |= bind_text(st, 12, c->dst_addr);
	rc |= bind_int(st, 13, c->dst_port, c->dst_addr || c->dst_port);
	rc |= bind_text(st, 14, c->resource);
	rc |= bind_text(st, 15, c->protocol);
	rc |= bind_text(st, 22, c->iface);
	return rc == SQLITE_OK ? 0 : -1;
}

/* Binds ?16..?20 from e. */
static int bind_end(sqlite3_stmt *st, const struct store_conn_end *e)
{
	int rc = 0;

	rc |= sqlite3_bind_int64(st, 16, e->closed_us);
	rc |= sqlite3_bind_int64(st, 17, (int64_t)e->bytes_up);
	rc |= sqlite3_bind_int64(st, 18, (int64_t)e->bytes_down);
	rc |= sqlite3_bind_text(st, 19, al_reason_name(e->reason), -1, SQLITE_STATIC);
	rc |= bind_text(st, 20, e->detail);
	return rc == SQLITE_OK ? 0 : -1;
}

struct store_audit *store_audit_state(struct store *s)
{
	return &s->audit;
}

json_t *store_json_text(const unsigned char *v, size_t n);

static int sp(struct store *s, int which)
{
	sqlite3_stmt *st = s->st[which];
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Steps one write statement with its audit records. Inside the group-commit
 * batch the records wait in the hook's queue and are chained at the batch's
 * commit, in the same transaction as the rows: a write that fails drops the
 * records it queued (SQLite undid its change). Outside a batch, the row and
 * its records share a savepoint: they commit together or not at all.
 * Returns 0 or -1 (the error is the db's).
 */
static int write_step(struct store *s, sqlite3_stmt *st)
{
	size_t mark;
	int rc;

	/* Held statements go first: the chain keeps the order in which things happened
	 * (a statement's record before its connection's close). Outcomes need not wait. */
	if (s->held && st != s->st[ST_STMT_ADD] && st != s->st[ST_STMT_OUTCOME] &&
	    st != s->cached[STORE_C_HTTP_ADD] && st != s->cached[STORE_C_HTTP_OUTCOME] &&
	    st != s->cached[STORE_C_BATCH_ADD])
		store_held_flush(s);
	if (s->in_batch && !sqlite3_get_autocommit(s->db)) {
		mark = store_audit_mark(s);
		rc = sqlite3_step(st);
		s->last_rowid = sqlite3_last_insert_rowid(s->db);
		s->last_changes = sqlite3_changes(s->db);
		if (rc == SQLITE_DONE)
			return 0;
		if (rc == SQLITE_FULL || sqlite3_errcode(s->db) == SQLITE_FULL)
			s->audit.full = 1;
		store_audit_truncate(s, mark);
		sqlite3_reset(st);
		return -1;
	}
	if (sp(s, ST_SP_BEGIN) < 0)
		return -1;
	rc = sqlite3_step(st);
	s->last_rowid = sqlite3_last_insert_rowid(s->db);
	s->last_changes = sqlite3_changes(s->db);
	if (rc == SQLITE_DONE && store_audit_flush(s) == 0 && sp(s, ST_SP_RELEASE) == 0)
		return 0;
	if (rc == SQLITE_FULL || sqlite3_errcode(s->db) == SQLITE_FULL)
		s->audit.full = 1;
	store_audit_discard(s);
	s->audit.stale = 1;
	sqlite3_reset(st);
	if (!sqlite3_get_autocommit(s->db)) {
		(void)sp(s, ST_SP_ROLLBACK);
		(void)sp(s, ST_SP_RELEASE);
	}
	return -1;
}

int store_write_step(struct store *s, sqlite3_stmt *st)
{
	return write_step(s, st);
}

int store_last_changes(struct store *s)
{
	return s->last_changes;
}

static int exec(struct store *s, const char *sql, const char *what)
{
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		db_err(s, what);
		return -1;
	}
	return 0;
}

static int user_version(struct store *s, int *v)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		db_err(s, "reading schema version");
		goto out;
	}
	*v = sqlite3_column_int(st, 0);
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

/* Applies one migration; the version is re-read under the write lock so
 * two daemons started together cannot both run it. */
static int migrate_one(struct store *s, int to)
{
	char sql[64];
	int cur, ret = -1;

	if (exec(s, "BEGIN IMMEDIATE", "starting migration") < 0)
		return -1;
	if (user_version(s, &cur) < 0)
		goto out;
	if (cur >= to) {
		ret = 0;
		goto out;
	}
	if (al_fmt(sql, sizeof(sql), "PRAGMA user_version = %d", to) < 0)
		goto out;
	if (sqlite3_exec(s->db, migrations[to - 1], NULL, NULL, NULL) != SQLITE_OK) {
		al_err("store: migration %d: %s", to, sqlite3_errmsg(s->db));
		goto out;
	}
	if (exec(s, sql, "setting schema version") < 0)
		goto out;
	ret = 0;
out:
	if (ret == 0)
		ret = exec(s, "COMMIT", "committing migration");
	if (ret < 0)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

static int migrate(struct store *s)
{
	const int latest = (int)AL_ARRAY_LEN(migrations);
	int v;

	if (user_version(s, &v) < 0)
		return -1;
	if (v > latest) {
		al_err("store: schema version %d is newer than this airlock knows (%d)", v, latest);
		return -1;
	}
	for (; v < latest; v++)
		if (migrate_one(s, v + 1) < 0)
			return -1;
	return user_version(s, &s->version);
}

/* Ends rows a crashed daemon left open: their sessions died with it. */
static int recover(struct store *s)
{
	sqlite3_stmt *st = s->st[ST_RECOVER];
	int ret = -1;

	if (sqlite3_bind_int64(st, 1, al_now_us()) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, al_reason_name(AL_REASON_SHUTDOWN), -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, "daemon restarted", -1, SQLITE_STATIC) != SQLITE_OK ||
	    write_step(s, st) < 0) {
		db_err(s, "closing rows left open");
		goto out;
	}
	if (s->last_changes > 0)
		al_info("store: closed %d connection rows left open by a previous run", s->last_changes);
	ret = 0;
out:
	st_done(st);
	return ret;
}

/* Makes the parent directory (0700 when new) and creates the file 0600. An
 * existing file keeps its mode, but a group or world readable one is
 * reported: the rows name agents, hosts and commands. */
static int prepare_file(const char *path)
{
	char dir[4096];
	char *slash;
	struct stat sb;
	int fd = -1, ret = -1;

	if (al_fmt(dir, sizeof(dir), "%s", path) < 0) {
		al_err("store: path too long: %s", path);
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (al_mkdir_p(dir, 0700) < 0) {
			al_err("store: creating %s: %s", dir, strerror(errno));
			goto out;
		}
	}
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		/* The umask may only have narrowed 0600; make it exact. */
		if (fchmod(fd, 0600) < 0) {
			al_err("store: chmod %s: %s", path, strerror(errno));
			goto out;
		}
	} else if (errno != EEXIST) {
		al_err("store: creating %s: %s", path, strerror(errno));
		goto out;
	} else if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 077)) {
		al_warn("store: %s is accessible to group or others (mode %03o)",
			path, (unsigned int)(sb.st_mode & 0777));
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

int store_open(const char *path, struct store **out)
{
	struct store *s = NULL;
	sqlite3_stmt *st = NULL;
	int ret = -1;
	int i;

	*out = NULL;
	if (prepare_file(path) < 0)
		goto out;
	s = calloc(1, sizeof(*s));
	if (!s) {
		al_err("store: out of memory");
		goto out;
	}
	/* Before SQLite's first use in the process (later it is refused, harmlessly): no
	 * allocation statistics, which cost a global mutex on every malloc. */
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		if (s->db)
			al_err("store: opening %s: %s", path, sqlite3_errmsg(s->db));
		else
			al_err("store: opening %s: out of memory", path);
		goto out;
	}
	if (sqlite3_busy_timeout(s->db, 5000) != SQLITE_OK) {
		db_err(s, "setting busy timeout");
		goto out;
	}
	/* journal_mode answers with the mode in force, which is not WAL when
	 * the file system cannot do it; say so rather than run without. */
	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		db_err(s, "enabling WAL");
		goto out;
	}
	if (sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		al_err("store: %s: WAL mode refused (journal mode is %s)",
		       path, sqlite3_column_text(st, 0));
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* NORMAL in WAL mode: a commit is durable at the next checkpoint, and
	 * a power cut may lose the last rows but never corrupts the file. */
	/* journal_size_limit: a WAL that grew under a burst is cut back when it restarts.
	 * cache_size 8 MiB (SQLite's default is 2): a busy batch's pages did not fit in the
	 * default, and the daemon read them back from the file (0.16 preads a pgbench
	 * statement, gone with 8). */
	if (exec(s, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
		 " PRAGMA journal_size_limit = 67108864; PRAGMA cache_size = -8192",
		 "setting pragmas") < 0)
		goto out;
	if (migrate(s) < 0)
		goto out;
	for (i = 0; i < ST__COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, st_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &s->st[i], NULL) != SQLITE_OK) {
			db_err(s, "preparing statements");
			goto out;
		}
	}
	s->held_tail = &s->held;
	if (sqlite3_prepare_v2(s->db, "SELECT max((SELECT coalesce(max(id), 0) FROM statement_rows),"
			       " (SELECT coalesce(max(last_id), 0) FROM command_batches WHERE kind = 'statements')) + 1,"
			       " max((SELECT coalesce(max(id), 0) FROM http_request_rows),"
			       " (SELECT coalesce(max(last_id), 0) FROM command_batches WHERE kind = 'http_requests')) + 1",
			       -1, &st, NULL) !=
	    SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
		db_err(s, "reading the last statement and request ids");
		goto out;
	}
	s->next_stmt_id = sqlite3_column_int64(st, 0);
	s->next_http_id = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	st = NULL;
	if (store_audit_open(s, path) < 0 || recover(s) < 0 || store_review_recover(s) < 0)
		goto out;
	ckpt_start(s, path);
	*out = s;
	s = NULL;
	ret = 0;
out:
	sqlite3_finalize(st);
	store_close(s);
	return ret;
}

/*
 * The WAL starts again from its beginning only at a batch that begins when
 * all of it is in the database. A pass a second never finds that under
 * steady load (the writer commits while the pass copies), and the WAL grew
 * for as long as the load lasted, each commit appending to new file blocks
 * that the file system allocates and zeroes. So a commit that leaves the WAL
 * longer than this wakes the thread at once: it has until the next batch
 * begins (a commit_interval, the batch's rows are written at its end) to copy
 * what is there, and the WAL then stays about this long and in the page
 * cache.
 */
#define CKPT_WAKE_FRAMES 1024
/* Passes per wake-up, each copying what was committed during the one before. */
#define CKPT_PASSES 8

static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct store *s = arg;

	if (frames >= CKPT_WAKE_FRAMES) {
		pthread_mutex_lock(&s->ckpt_mu);
		s->ckpt_kick = 1;
		pthread_cond_signal(&s->ckpt_cv);
		pthread_mutex_unlock(&s->ckpt_mu);
	}
	(void)db;
	(void)name;
	return SQLITE_OK;
}

/* PASSIVE: copies what no reader needs, never blocks the writer. Passes until
 * one finds nothing committed since the last (or the bound). */
static void ckpt_pass(sqlite3 *db)
{
	int pass, log, copied, last = -1;

	for (pass = 0; pass < CKPT_PASSES; pass++) {
		if (sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied) != SQLITE_OK ||
		    copied < log || log == last)
			return;
		last = log;
	}
}

static void *ckpt_main(void *arg)
{
	struct store *s = arg;
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		al_err("store: checkpoint thread: cannot open %s", s->path);
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 1000);
	/* A connection that has never read the database has not opened its WAL, and
	 * a checkpoint on it does nothing at all: read once first. */
	if (sqlite3_exec(db, "SELECT 1 FROM sqlite_schema LIMIT 1", NULL, NULL, NULL) != SQLITE_OK)
		al_warn("store: checkpoint thread: %s", sqlite3_errmsg(db));
	pthread_mutex_lock(&s->ckpt_mu);
	while (!s->ckpt_stop) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		while (!s->ckpt_stop && !s->ckpt_kick &&
		       pthread_cond_timedwait(&s->ckpt_cv, &s->ckpt_mu, &ts) == 0)
			;
		if (s->ckpt_stop)
			break;
		s->ckpt_kick = 0;
		pthread_mutex_unlock(&s->ckpt_mu);
		ckpt_pass(db);
		pthread_mutex_lock(&s->ckpt_mu);
	}
	pthread_mutex_unlock(&s->ckpt_mu);
	sqlite3_close(db);
	return NULL;
}

/* Hands checkpoints to a thread; on failure sqlite keeps doing them inline. */
static void ckpt_start(struct store *s, const char *path)
{
	s->path = strdup(path);
	if (!s->path || pthread_mutex_init(&s->ckpt_mu, NULL) != 0)
		return;
	if (pthread_cond_init(&s->ckpt_cv, NULL) != 0) {
		pthread_mutex_destroy(&s->ckpt_mu);
		return;
	}
	if (pthread_create(&s->ckpt, NULL, ckpt_main, s) != 0) {
		pthread_cond_destroy(&s->ckpt_cv);
		pthread_mutex_destroy(&s->ckpt_mu);
		return;
	}
	s->ckpt_running = 1;
	if (exec(s, "PRAGMA wal_autocheckpoint = 0", "handing checkpoints to a thread") < 0)
		al_warn("store: checkpoints stay on the writer");
	else
		(void)sqlite3_wal_hook(s->db, on_wal_commit, s);
}

static void ckpt_stop(struct store *s)
{
	if (!s->ckpt_running)
		return;
	/* the commits after this one (the closing batch) wake no one */
	(void)sqlite3_wal_hook(s->db, NULL, NULL);
	pthread_mutex_lock(&s->ckpt_mu);
	s->ckpt_stop = 1;
	pthread_cond_signal(&s->ckpt_cv);
	pthread_mutex_unlock(&s->ckpt_mu);
	pthread_join(s->ckpt, NULL);
	pthread_cond_destroy(&s->ckpt_cv);
	pthread_mutex_destroy(&s->ckpt_mu);
	s->ckpt_running = 0;
}

void store_close(struct store *s)
{
	int i;

	if (!s)
		return;
	ckpt_stop(s);
	/* A clean stop signs the head, so nothing before it can be cut off unseen. */
	if (s->audit.ins && store_audit_checkpoint(s) < 0)
		al_err("store: the closing audit checkpoint could not be written");
	store_rec_flush_all(s);
	if (store_batch_commit(s) < 0)
		al_err("store: the last audit rows could not be committed");
	store_audit_close(s);
	for (i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(s->st[i]);
	for (i = 0; i < STORE_C__COUNT; i++)
		sqlite3_finalize(s->cached[i]);
	if (s->db) {
		/* Leave a small WAL behind: fold it in now that no one writes. */
		(void)sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		if (sqlite3_close(s->db) != SQLITE_OK)
			db_err(s, "closing");
	}
	free(s->hidx);
	free(s->path);
	free(s);
}

sqlite3_stmt *store_cached(struct store *s, enum store_cached which, const char *sql)
{
	if (!s->cached[which] &&
	    sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->cached[which], NULL) != SQLITE_OK)
		return NULL;
	return s->cached[which];
}

int store_schema_version(struct store *s)
{
	return s ? s->version : -1;
}

int store_conn_open(struct store *s, const struct store_conn *c, int64_t *id)
{
	sqlite3_stmt *st = s->st[ST_CONN_OPEN];
	int ret = -1;

	assert(c);
	if (bind_conn(st, c) < 0 || write_step(s, st) < 0) {
		db_err(s, "recording connection");
		goto out;
	}
	if (id)
		*id = s->last_rowid;
	s->tot.connections++;
	ret = 0;
out:
	st_done(st);
	return ret;
}

/* A row ended with reason r, in the kept totals. */
static void tot_closed(struct store *s, enum al_reason r)
{
	if ((unsigned int)r < AL_REASON__COUNT)
		s->tot.by_reason[r]++;
}

int store_conn_close(struct store *s, int64_t id, const struct store_conn_end *e)
{
	sqlite3_stmt *st = s->st[ST_CONN_CLOSE];
	int ret = -1;

	assert(e);
	if (bind_end(st, e) < 0 || sqlite3_bind_int64(st, 21, id) != SQLITE_OK ||
	    write_step(s, st) < 0) {
		db_err(s, "closing connection");
		goto out;
	}
	if (s->last_changes != 1) {
		al_err("store: no open connection row %" PRId64 " to close", id);
		goto out;
	}
	tot_closed(s, e->reason);
	store_rec_ended(s, e->closed_us);
	store_rec_end(s, id);
	ret = 0;
out:
	st_done(st);
	return ret;
}

int store_conn_record(struct store *s, const struct store_conn *c, const struct store_conn_end *e)
{
	sqlite3_stmt *st = s->st[ST_CONN_RECORD];
	int ret = -1;

	assert(c && e);
	if (bind_conn(st, c) < 0 || bind_end(st, e) < 0 || write_step(s, st) < 0) {
		db_err(s, "recording connection");
		goto out;
	}
	s->tot.connections++;
	tot_closed(s, e->reason);
	store_rec_ended(s, e->closed_us);
	ret = 0;
out:
	st_done(st);
	return ret;
}

int store_pin_add(struct store *s, uint64_t cgroup_id, const char *path)
{
	sqlite3_stmt *st = s->st[ST_PIN_ADD];
	int ret = -1;

	assert(path);
	if (sqlite3_bind_int64(st, 1, (int64_t)cgroup_id) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, al_now_us()) != SQLITE_OK ||
	    write_step(s, st) < 0) {
		db_err(s, "recording pin");
		goto out;
	}
	ret = 0;
out:
	st_done(st);
	return ret;
}

int store_pin_del(struct store *s, uint64_t cgroup_id)
{
	sqlite3_stmt *st = s->st[ST_PIN_DEL];
	int ret = -1;

	if (sqlite3_bind_int64(st, 1, (int64_t)cgroup_id) != SQLITE_OK ||
	    write_step(s, st) < 0) {
		db_err(s, "removing pin");
		goto out;
	}
	ret = 0;
out:
	st_done(st);
	return ret;
}

int store_pin_gone(struct store *s, uint64_t cgroup_id)
{
	sqlite3_stmt *st = s->st[ST_PIN_GONE];
	int ret = -1;

	if (sqlite3_bind_int64(st, 1, (int64_t)cgroup_id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, al_now_us()) != SQLITE_OK ||
	    write_step(s, st) < 0) {
		db_err(s, "marking a pin's cgroup gone");
		goto out;
	}
	ret = 0;
out:
	st_done(st);
	return ret;
}

int store_pins_each(struct store *s, int (*cb)(void *arg, const struct store_pin *p), void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, r;

	if (sqlite3_prepare_v2(s->db, "SELECT cgroup_id, path, pinned_us, coalesce(gone_us, 0) FROM pins"
			       " ORDER BY pinned_us, cgroup_id", -1, &st, NULL) != SQLITE_OK)
		goto out;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_pin p = {
			.cgroup_id = (uint64_t)sqlite3_column_int64(st, 0),
			.path = (const char *)sqlite3_column_text(st, 1),
			.pinned_us = sqlite3_column_int64(st, 2),
			.gone_us = sqlite3_column_int64(st, 3),
		};

		if (cb(arg, &p) < 0)
			goto out;
	}
	rc = r == SQLITE_DONE ? 0 : -1;
out:
	if (rc < 0)
		db_err(s, "listing pins");
	sqlite3_finalize(st);
	return rc;
}

int store_pin_path(struct store *s, uint64_t cgroup_id, char *buf, size_t len)
{
	sqlite3_stmt *st = s->st[ST_PIN_GET];
	int ret = -1;
	int rc;

	if (sqlite3_bind_int64(st, 1, (int64_t)cgroup_id) != SQLITE_OK) {
		db_err(s, "looking up pin");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		goto out;       /* not recorded: not an error worth a log line */
	if (rc != SQLITE_ROW) {
		db_err(s, "looking up pin");
		goto out;
	}
	if (al_fmt(buf, len, "%s", (const char *)sqlite3_column_text(st, 0)) < 0) {
		al_err("store: pin path of cgroup %" PRIu64 " does not fit %zu bytes", cgroup_id, len);
		goto out;
	}
	ret = 0;
out:
	st_done(st);
	return ret;
}

/* The totals are counted again at the next store_totals (rows went, or a write was undone). */
void store_totals_forget(struct store *s)
{
	s->tot_ok = 0;
}

/* Counted by a scan of every connection row once (tens of ms a million rows: `airlockctl status`
 * used to pay it every call, in the event loop), then kept up by the writes. */
int store_totals(struct store *s, struct store_totals *t)
{
	sqlite3_stmt *st = s->st[ST_TOTALS];
	int ret = -1;
	int rc, r;

	if (s->tot_ok) {
		*t = s->tot;
		return 0;
	}
	memset(t, 0, sizeof(*t));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		uint64_t n = (uint64_t)sqlite3_column_int64(st, 1);

		t->connections += n;
		if (!name)
			continue;       /* still open */
		/* Names, not numbers, are stored; ones this build does not know are skipped. */
		for (r = 0; r < AL_REASON__COUNT; r++) {
			if (strcmp(name, al_reason_name(r)) == 0) {
				t->by_reason[r] += n;
				break;
			}
		}
	}
	if (rc != SQLITE_DONE) {
		db_err(s, "counting connections");
		goto out;
	}
	s->tot = *t;
	s->tot_ok = 1;
	ret = 0;
out:
	st_done(st);
	return ret;
}

/*
 * A JSON string from column text. comm, exe and cgroup paths come from the
 * agent's side and need not be UTF-8, which JSON strings must be: invalid
 * bytes become U+FFFD rather than losing the row or the field.
 */
static json_t *json_text(const unsigned char *v, size_t n)
{
	static const char repl[] = "\xef\xbf\xbd";
	json_t *j = NULL;
	char *buf = NULL;
	size_t i = 0, o = 0, k;

	if (!v)
		return json_null();
	j = json_stringn((const char *)v, n);
	if (j)
		return j;
	buf = malloc(n * 3 + 1);
	if (!buf)
		goto out;
	while (i < n) {
		k = al_utf8_seq(v + i, n - i);
		if (k) {
			memcpy(buf + o, v + i, k);
			o += k;
			i += k;
		} else {
			memcpy(buf + o, repl, 3);
			o += 3;
			i++;
		}
	}
	j = json_stringn(buf, o);
out:
	free(buf);
	return j;
}

json_t *store_json_text(const unsigned char *v, size_t n)
{
	return json_text(v, n);
}

json_t *store_json_col(sqlite3_stmt *st, int i)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_NULL:
		return json_null();
	case SQLITE_INTEGER:
		return json_integer(sqlite3_column_int64(st, i));
	default: {
		const unsigned char *v = sqlite3_column_text(st, i);

		return json_text(v, (size_t)sqlite3_column_bytes(st, i));
	}
	}
}

/* The row under st as one JSON object, keys named as the columns. */
char *store_row_json(sqlite3_stmt *st)
{
	json_t *o = json_object();
	char *txt = NULL;
	int i, n = sqlite3_column_count(st);

	if (!o)
		goto out;
	for (i = 0; i < n; i++) {
		if (json_object_set_new(o, sqlite3_column_name(st, i), store_json_col(st, i)) < 0)
			goto out;
	}
	txt = json_dumps(o, JSON_COMPACT);
out:
	json_decref(o);
	return txt;
}

/* Calls cb with each row of a listing statement as JSON. */
int store_each_row(sqlite3_stmt *st, int (*cb)(void *arg, const char *json), void *arg, int *n)
{
	int rc, c;

	if (n)
		*n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char *txt = store_row_json(st);

		if (!txt)
			return -2;
		if (n)
			(*n)++;
		c = cb(arg, txt);
		free(txt);
		if (c < 0)
			return -1;
		if (c > 0)
			return 0;
	}
	return rc == SQLITE_DONE ? 0 : -1;
}

static int list_rows(struct store *s, int which, const char *what, unsigned int limit,
		     int (*cb)(void *arg, const char *json), void *arg)
{
	sqlite3_stmt *st = s->st[which];
	int ret = -1;

	store_held_flush(s);
	if (sqlite3_bind_int64(st, 1, limit) != SQLITE_OK) {
		db_err(s, what);
		goto out;
	}
	ret = store_each_row(st, cb, arg, NULL);
	if (ret == -2)
		al_err("store: %s: out of memory", what);
	else if (ret < 0 && sqlite3_errcode(s->db) != SQLITE_OK && sqlite3_errcode(s->db) != SQLITE_ROW)
		db_err(s, what);
	ret = ret < 0 ? -1 : 0;
out:
	/* Also ends the read transaction, which would otherwise hold back checkpoints. */
	st_done(st);
	return ret;
}

int store_conn_list(struct store *s, unsigned int limit,
		    int (*cb)(void *arg, const char *json), void *arg)
{
	return list_rows(s, ST_LIST, "listing connections", limit, cb, arg);
}

int store_refusal_list(struct store *s, unsigned int limit,
		       int (*cb)(void *arg, const char *json), void *arg)
{
	return list_rows(s, ST_REFUSAL_LIST, "listing refusals", limit, cb, arg);
}

int store_refusal_add(struct store *s, const struct store_refusal *r)
{
	sqlite3_stmt *st = s->st[ST_REFUSAL_ADD];
	int known = r->cgroup_id != 0;
	int ret = -1;

	if (sqlite3_bind_int64(st, 1, r->at_us) != SQLITE_OK ||
	    bind_text(st, 2, al_reason_name(r->reason)) != SQLITE_OK ||
	    bind_int(st, 3, (int64_t)r->cgroup_id, known) != SQLITE_OK ||
	    bind_text(st, 4, r->cgroup_path) != SQLITE_OK ||
	    bind_int(st, 5, r->pid, r->pid != 0) != SQLITE_OK ||
	    bind_int(st, 6, r->tid, r->tid != 0) != SQLITE_OK ||
	    bind_int(st, 7, r->uid, known && r->pid != 0) != SQLITE_OK ||
	    bind_text(st, 8, r->comm) != SQLITE_OK ||
	    bind_text(st, 9, r->exe) != SQLITE_OK ||
	    bind_int(st, 10, r->family, 1) != SQLITE_OK ||
	    bind_int(st, 11, r->type, 1) != SQLITE_OK ||
	    bind_int(st, 12, r->protocol, 1) != SQLITE_OK ||
	    bind_text(st, 13, r->dst_addr) != SQLITE_OK ||
	    bind_int(st, 14, r->dst_port, r->dst_addr != NULL) != SQLITE_OK ||
	    bind_int(st, 15, r->count ? r->count : 1, 1) != SQLITE_OK ||
	    bind_text(st, 16, r->detail) != SQLITE_OK ||
	    write_step(s, st) < 0) {
		db_err(s, "recording a refusal");
		goto out;
	}
	ret = 0;
out:
	st_done(st);
	return ret;
}

static int bind_stmt(sqlite3_stmt *st, int64_t id, const struct store_stmt *t,
		     const struct store_stmt_outcome *o)
{
	return sqlite3_bind_int64(st, 1, t->conn_id) != SQLITE_OK ||
	       sqlite3_bind_int64(st, 2, t->seq) != SQLITE_OK ||
	       sqlite3_bind_int64(st, 3, t->at_us) != SQLITE_OK ||
	       bind_text(st, 4, t->protocol) != SQLITE_OK ||
	       bind_text(st, 5, t->text) != SQLITE_OK ||
	       bind_text(st, 6, t->kind) != SQLITE_OK ||
	       bind_text(st, 7, t->fingerprint) != SQLITE_OK ||
	       bind_text(st, 8, t->relations_json) != SQLITE_OK ||
	       sqlite3_bind_int(st, 9, t->unbounded_write) != SQLITE_OK ||
	       bind_text(st, 10, t->params_json) != SQLITE_OK ||
	       bind_text(st, 11, t->decision) != SQLITE_OK ||
	       bind_text(st, 12, t->rule) != SQLITE_OK ||
	       bind_text(st, 13, o ? o->tag : NULL) != SQLITE_OK ||
	       bind_text(st, 14, o ? o->sqlstate : NULL) != SQLITE_OK ||
	       bind_text(st, 15, o ? o->error : NULL) != SQLITE_OK ||
	       bind_int(st, 16, o ? o->rows : 0, o && o->rows >= 0) != SQLITE_OK ||
	       bind_int(st, 17, o ? o->duration_us : 0, o != NULL) != SQLITE_OK ||
	       sqlite3_bind_int64(st, 18, id) != SQLITE_OK ? -1 : 0;
}

/* Copies the strings of n pointers into one block at dst (NULL stays NULL); returns the bytes used. */
static size_t pack(char *dst, const char **p[], size_t n)
{
	size_t off = 0;

	for (size_t i = 0; i < n; i++) {
		size_t len;

		if (!*p[i])
			continue;
		len = strlen(*p[i]) + 1;
		if (dst) {
			memcpy(dst + off, *p[i], len);
			*p[i] = dst + off;
		}
		off += len;
	}
	return off;
}

static int stmt_write(struct store *s, int64_t id, const struct store_stmt *t,
		      const struct store_stmt_outcome *o)
{
	sqlite3_stmt *st = s->st[ST_STMT_ADD];
	int ret = 0;

	if (bind_stmt(st, id, t, o) < 0 || write_step(s, st) < 0) {
		db_err(s, "recording a statement");
		ret = -1;
	}
	st_done(st);
	return ret;
}

/* The addresses of a held row's (or, row NULL, its outcome's) strings; how many. */
static size_t held_strs(enum held_kind k, void *row, void *out, const char **p[])
{
	if (row && k == HELD_STMT) {
		struct store_stmt *t = row;
		const char **v[] = { &t->protocol, &t->text, &t->kind, &t->fingerprint, &t->relations_json,
				     &t->params_json, &t->decision, &t->rule };

		memcpy(p, v, sizeof(v));
		return AL_ARRAY_LEN(v);
	}
	if (row) {
		struct store_http *h = row;
		const char **v[] = { &h->method, &h->host, &h->path, &h->query, &h->kind, &h->headers_json,
				     &h->body_sha256, &h->request_sha256, &h->k8s_json, &h->fingerprint,
				     &h->decision, &h->rule };

		memcpy(p, v, sizeof(v));
		return AL_ARRAY_LEN(v);
	}
	if (k == HELD_STMT) {
		struct store_stmt_outcome *o = out;
		const char **v[] = { &o->tag, &o->sqlstate, &o->error };

		memcpy(p, v, sizeof(v));
		return AL_ARRAY_LEN(v);
	}
	{
		struct store_http_outcome *o = out;
		const char **v[] = { &o->decision, &o->error };

		memcpy(p, v, sizeof(v));
		return AL_ARRAY_LEN(v);
	}
}

static int held_write(struct store *s, const struct held *q)
{
	if (q->kind == HELD_STMT)
		return stmt_write(s, q->id, &q->row.stmt, q->has_outcome ? &q->out.stmt : NULL);
	return store_http_write(s, q->id, &q->row.http, q->has_outcome ? &q->out.http : NULL);
}

/* ---- commands in batches (store_int.h) ------------------------------------------------------ */

/* One command_batches row being built: the rows' JSON array, their connections, their bounds. */
struct cmd_batch {
	const char *kind;
	struct al_buf rows;
	int64_t *conns;
	size_t n_conns, cap_conns, n;
	int64_t first_id, last_id, first_at, last_at;
	struct stmt_count *dec;         /* how many of each decision */
	size_t n_dec;
	int oom;
};

int store_count_add(struct stmt_count **c, size_t *n, const char *decision, int64_t v)
{
	struct stmt_count *g;
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcmp((*c)[i].decision, decision) == 0) {
			(*c)[i].n += v;
			return 0;
		}
	g = realloc(*c, (*n + 1) * sizeof(*g));
	if (!g)
		return -1;
	*c = g;
	/* all decisions are short words the store writes; a longer one is cut, not lost */
	snprintf(g[*n].decision, sizeof(g->decision), "%s", decision);
	g[(*n)++].n = v;
	return 0;
}

/* Counts a command's decision in its batch (the list is kept for the next batch). */
static void batch_decision(struct cmd_batch *cb, const char *d)
{
	if (store_count_add(&cb->dec, &cb->n_dec, d ? d : "", 1) < 0)
		cb->oom = 1;
}

/* A key and its value, as a batch's JSON spells them. The key is a string literal ("" key
 * does not compile otherwise), so its length is known here. */
#define j_str(b, key, v) j_str_n(b, "" key, sizeof("" key) - 1, v)
#define j_int(b, key, v, known) j_int_n(b, "" key, sizeof("" key) - 1, v, known)

static void j_str_n(struct al_buf *b, const char *key, size_t klen, const char *v)
{
	al_buf_add(b, key, klen);
	if (v)
		al_buf_json_str(b, v, strlen(v));
	else
		al_buf_add(b, "null", 4);
}

static void j_int_n(struct al_buf *b, const char *key, size_t klen, int64_t v, int known)
{
	char num[24];

	al_buf_add(b, key, klen);
	if (known)
		al_buf_add(b, num, al_dec(num, v));
	else
		al_buf_add(b, "null", 4);
}

/* Opens a row's object in the batch: its place in the array, the batch's bounds and connections. */
static void batch_row(struct cmd_batch *cb, int64_t id, int64_t conn_id, int64_t at_us)
{
	size_t i = 0;

	al_buf_add(&cb->rows, cb->n ? ",{" : "[{", 2);
	if (!cb->n || id < cb->first_id)
		cb->first_id = id;
	if (!cb->n || id > cb->last_id)
		cb->last_id = id;
	if (!cb->n || at_us < cb->first_at)
		cb->first_at = at_us;
	if (!cb->n || at_us > cb->last_at)
		cb->last_at = at_us;
	cb->n++;
	while (i < cb->n_conns && cb->conns[i] != conn_id)
		i++;
	if (i < cb->n_conns)
		return;
	if (cb->n_conns == cb->cap_conns) {
		size_t cap = cb->cap_conns ? 2 * cb->cap_conns : 16;
		int64_t *c = realloc(cb->conns, cap * sizeof(*c));

		if (!c) {
			cb->oom = 1;
			return;
		}
		cb->conns = c;
		cb->cap_conns = cap;
	}
	cb->conns[cb->n_conns++] = conn_id;
}

/*
 * A statement with its outcome, keyed as statement_rows' columns (NULLs as stmt_write binds
 * them). Keys in sorted order: the batch's record embeds this text, and a record body is what
 * json.dumps(sort_keys=True) prints, all the way down.
 */
static void batch_stmt(struct cmd_batch *cb, int64_t id, const struct store_stmt *t, const struct store_stmt_outcome *o)
{
	struct al_buf *b = &cb->rows;

	batch_row(cb, id, t->conn_id, t->at_us);
	batch_decision(cb, t->decision);
	j_int(b, "\"at_us\":", t->at_us, 1);
	j_int(b, ",\"conn_id\":", t->conn_id, 1);
	j_str(b, ",\"decision\":", t->decision);
	j_int(b, ",\"duration_us\":", o->duration_us, 1);
	j_str(b, ",\"error\":", o->error);
	j_str(b, ",\"fingerprint\":", t->fingerprint);
	j_int(b, ",\"id\":", id, 1);
	j_str(b, ",\"kind\":", t->kind);
	j_str(b, ",\"params\":", t->params_json);
	j_str(b, ",\"protocol\":", t->protocol);
	j_str(b, ",\"relations\":", t->relations_json);
	j_int(b, ",\"rows\":", o->rows, o->rows >= 0);
	j_str(b, ",\"rule\":", t->rule);
	j_int(b, ",\"seq\":", t->seq, 1);
	j_str(b, ",\"sqlstate\":", o->sqlstate);
	j_str(b, ",\"tag\":", o->tag);
	j_str(b, ",\"text\":", t->text);
	j_int(b, ",\"unbounded_write\":", t->unbounded_write, 1);
	al_buf_add(b, "}", 1);
}

/* An HTTP request with its outcome, keyed (sorted) as http_request_rows' columns, bound as
 * store_http_write binds them. */
static void batch_http(struct cmd_batch *cb, int64_t id, const struct store_http *h, const struct store_http_outcome *o)
{
	struct al_buf *b = &cb->rows;
	const char *decision = store_http_decision(h, o);
	int64_t request_id = store_http_request_id(h, o);

	batch_row(cb, id, h->conn_id, h->at_us);
	batch_decision(cb, decision);
	j_int(b, "\"at_us\":", h->at_us, 1);
	j_int(b, ",\"body_len\":", h->body_len, h->body_len >= 0);
	j_str(b, ",\"body_sha256\":", h->body_sha256);
	j_int(b, ",\"bytes_down\":", (int64_t)o->bytes_down, 1);
	j_int(b, ",\"bytes_up\":", (int64_t)o->bytes_up, 1);
	j_int(b, ",\"conn_id\":", h->conn_id, h->conn_id > 0);
	j_str(b, ",\"decision\":", decision);
	j_int(b, ",\"duration_us\":", o->duration_us, 1);
	j_str(b, ",\"error\":", o->error);
	j_str(b, ",\"fingerprint\":", h->fingerprint);
	j_str(b, ",\"headers\":", h->headers_json);
	j_str(b, ",\"host\":", h->host);
	j_int(b, ",\"id\":", id, 1);
	j_str(b, ",\"k8s\":", h->k8s_json);
	j_str(b, ",\"kind\":", h->kind);
	j_str(b, ",\"method\":", h->method);
	j_str(b, ",\"path\":", h->path);
	j_str(b, ",\"query\":", h->query);
	j_int(b, ",\"request_id\":", request_id, request_id > 0);
	j_str(b, ",\"request_sha256\":", h->request_sha256);
	j_str(b, ",\"rule\":", h->rule);
	j_int(b, ",\"seq\":", h->seq, 1);
	j_int(b, ",\"status\":", o->status, o->status != 0);
	al_buf_add(b, "}", 1);
}

/* Writes the batch's row (nothing for an empty one), then empties it for reuse: 0 or -1. */
static int batch_write(struct store *s, struct cmd_batch *cb)
{
	sqlite3_stmt *st;
	struct al_buf conns = { 0 }, dec = { 0 }, body = { 0 };
	int64_t seq = -1;
	int rc = -1;

	if (!cb->n)
		return 0;
	al_buf_add(&cb->rows, "]", 1);
	al_buf_add(&conns, ",", 1);
	for (size_t i = 0; i < cb->n_conns; i++)
		al_buf_fmt(&conns, "%lld,", (long long)cb->conns[i]);
	al_buf_add(&dec, "{", 1);
	for (size_t i = 0; i < cb->n_dec; i++) {
		char num[24];

		al_buf_add(&dec, ",", i > 0);
		al_buf_json_str(&dec, cb->dec[i].decision, strlen(cb->dec[i].decision));
		al_buf_add(&dec, ":", 1);
		al_buf_add(&dec, num, al_dec(num, cb->dec[i].n));
	}
	al_buf_add(&dec, "}", 1);
	/* The row names its record, then the record holds the commands: they are written once. */
	st = store_cached(s, STORE_C_BATCH_ADD,
			  "INSERT INTO command_batches (kind, first_id, last_id, first_at_us, last_at_us, conns, rows,"
			  " decisions, audit_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', ?7, ?8)");
	if (cb->oom || cb->rows.oom || conns.oom || dec.oom) {
		al_err("store: out of memory writing a batch of %zu %s", cb->n, cb->kind);
	} else if ((seq = store_audit_next_seq(s)) < 0 ||
		   !st || sqlite3_bind_text(st, 1, cb->kind, -1, SQLITE_STATIC) != SQLITE_OK ||
		   sqlite3_bind_int64(st, 2, cb->first_id) != SQLITE_OK ||
		   sqlite3_bind_int64(st, 3, cb->last_id) != SQLITE_OK ||
		   sqlite3_bind_int64(st, 4, cb->first_at) != SQLITE_OK ||
		   sqlite3_bind_int64(st, 5, cb->last_at) != SQLITE_OK ||
		   sqlite3_bind_text(st, 6, conns.p, (int)conns.len, SQLITE_STATIC) != SQLITE_OK ||
		   sqlite3_bind_text(st, 7, dec.p, (int)dec.len, SQLITE_STATIC) != SQLITE_OK ||
		   sqlite3_bind_int64(st, 8, seq) != SQLITE_OK ||
		   write_step(s, st) < 0) {
		db_err(s, "recording a batch of commands");
	} else {
		/* the body the hook would write for the row, sorted keys, with the commands in it */
		int64_t id = s->last_rowid;

		al_buf_add(&body, "{\"conns\":", 9);
		al_buf_json_str(&body, conns.p, conns.len);
		al_buf_add(&body, ",\"decisions\":", 13);
		al_buf_json_str(&body, dec.p, dec.len);
		j_int(&body, ",\"first_at_us\":", cb->first_at, 1);
		j_int(&body, ",\"first_id\":", cb->first_id, 1);
		j_int(&body, ",\"id\":", id, 1);
		j_str(&body, ",\"kind\":", cb->kind);
		j_int(&body, ",\"last_at_us\":", cb->last_at, 1);
		j_int(&body, ",\"last_id\":", cb->last_id, 1);
		al_buf_add(&body, ",\"rows\":", 8);
		al_buf_add(&body, cb->rows.p, cb->rows.len);
		al_buf_add(&body, "}", 1);
		if (store_audit_batch(s, seq, id, body.oom ? NULL : body.p, body.len) == 0)
			rc = 0;
	}
	if (st)
		st_done(st);
	free(conns.p);
	free(dec.p);
	free(body.p);
	al_buf_clear(&cb->rows);
	cb->n = cb->n_conns = cb->n_dec = 0;
	cb->oom = 0;
	return rc;
}

/* A held command: into its kind's batch when its outcome is known, else a row of its own. */
static int held_put(struct store *s, struct cmd_batch *bs, struct cmd_batch *bh, const struct held *q)
{
	if (!q->has_outcome)
		return held_write(s, q);
	if (q->kind == HELD_STMT)
		batch_stmt(bs, q->id, &q->row.stmt, &q->out.stmt);
	else
		batch_http(bh, q->id, &q->row.http, &q->out.http);
	return 0;
}

/*
 * Writes the held commands taken off the list at q (NULL-terminated), frees them: those with
 * outcomes as a batch row per kind, the others one row each (their outcomes update them).
 */
static int held_write_all(struct store *s, struct held *q)
{
	struct cmd_batch bs = { .kind = "statements" }, bh = { .kind = "http_requests" };
	int failed = 0;

	while (q) {
		struct held *next = q->next;

		failed |= held_put(s, &bs, &bh, q) < 0;
		free(q->ostr);
		free(q);
		q = next;
	}
	failed |= batch_write(s, &bs) < 0;
	failed |= batch_write(s, &bh) < 0;
	free(bs.rows.p);
	free(bs.conns);
	free(bs.dec);
	free(bh.rows.p);
	free(bh.conns);
	free(bh.dec);
	if (failed)
		al_err("store: commands of this batch could not be recorded");
	return failed ? -1 : 0;
}

/* ---- the held rows' index ---- */

static size_t hidx_slot(const struct store *s, enum held_kind k, int64_t id)
{
	uint64_t h = ((uint64_t)id * 2 + (uint64_t)k) * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 32) & (s->hidx_cap - 1);
}

static void hidx_insert(struct store *s, struct held *q)
{
	size_t i = hidx_slot(s, q->kind, q->id);

	while (s->hidx[i])
		i = (i + 1) & (s->hidx_cap - 1);
	s->hidx[i] = q;
	s->hidx_n++;
}

static struct held *hidx_find(struct store *s, enum held_kind k, int64_t id)
{
	struct held *q;

	if (s->hidx_bad) {
		for (q = s->held; q && !(q->kind == k && q->id == id); q = q->next)
			;
		return q;
	}
	if (!s->hidx_cap)
		return NULL;
	for (size_t i = hidx_slot(s, k, id); (q = s->hidx[i]) != NULL; i = (i + 1) & (s->hidx_cap - 1))
		if (q->kind == k && q->id == id)
			return q;
	return NULL;
}

/* The index rebuilt from what is held (the list was cut, or the table is full): sized to at
 * least twice the rows, and a table grown by a burst is given back. */
static void hidx_reset(struct store *s)
{
	size_t n = 0;

	for (struct held *h = s->held; h; h = h->next)
		n++;
	s->hidx_n = 0;
	s->hidx_bad = 0;
	if (s->hidx_cap < 2 * n || (s->hidx_cap > 1024 && n * 8 < s->hidx_cap)) {
		size_t cap = 64;

		while (cap < 2 * n)
			cap *= 2;
		free(s->hidx);
		s->hidx_cap = 0;
		if (!(s->hidx = calloc(cap, sizeof(*s->hidx)))) {
			s->hidx_bad = 1;
			return;
		}
		s->hidx_cap = cap;
	} else if (s->hidx_cap) {
		memset(s->hidx, 0, s->hidx_cap * sizeof(*s->hidx));
	}
	for (struct held *h = s->held; h; h = h->next)
		hidx_insert(s, h);
}

/* Indexes q (held last): at most half full, else rebuilt from the list, q with it; out of
 * memory: no index. */
static void hidx_put(struct store *s, struct held *q)
{
	if (s->hidx_bad)
		return;
	if ((s->hidx_n + 1) * 2 > s->hidx_cap)
		hidx_reset(s);
	else
		hidx_insert(s, q);
}

void store_held_flush(struct store *s)
{
	struct held *q = s->held;

	s->held = NULL;
	s->held_tail = &s->held;
	hidx_reset(s);
	(void)held_write_all(s, q);
}

/*
 * Holds a copy of a new row (the struct of size bytes at row) until the
 * batch commits: 0. -1: not held (no batch open, or no memory): the caller
 * writes it now.
 */
static int held_add(struct store *s, enum held_kind k, int64_t id, const void *row, size_t size)
{
	union { struct store_stmt stmt; struct store_http http; } c;
	const char **p[16];
	struct held *q;
	size_t n;

	if (!s->in_batch || sqlite3_get_autocommit(s->db))
		return -1;
	memcpy(&c, row, size);
	n = held_strs(k, &c, NULL, p);
	if (!(q = malloc(sizeof(*q) + pack(NULL, p, n))))
		return -1;
	memset(q, 0, sizeof(*q));
	memcpy(&q->row, row, size);
	n = held_strs(k, &q->row, NULL, p);
	pack(q->text, p, n);
	q->kind = k;
	q->id = id;
	*s->held_tail = q;
	s->held_tail = &q->next;
	hidx_put(s, q);
	return 0;
}

/* The outcome of a held row joins it: 0. -1: the row is not held (any more): the caller updates it. */
static int held_outcome(struct store *s, enum held_kind k, int64_t id, const void *out, size_t size)
{
	const char **p[16];
	struct held *q = hidx_find(s, k, id);
	size_t n;

	if (!q || q->has_outcome)
		return -1;
	memcpy(&q->out, out, size);
	n = held_strs(k, NULL, &q->out, p);
	q->ostr = malloc(pack(NULL, p, n) + 1);
	if (!q->ostr) {
		/* No memory for the copy: the row is written now, the caller updates it. */
		store_held_flush(s);
		return -1;
	}
	pack(q->ostr, p, n);
	q->has_outcome = 1;
	return 0;
}

int store_stmt_add(struct store *s, const struct store_stmt *t, int64_t *id)
{
	int64_t my = s->next_stmt_id++;

	if (id)
		*id = my;
	return held_add(s, HELD_STMT, my, t, sizeof(*t)) == 0 ? 0 : stmt_write(s, my, t, NULL);
}

int store_http_add(struct store *s, const struct store_http *h, int64_t *id)
{
	int64_t my = s->next_http_id++;

	if (id)
		*id = my;
	return held_add(s, HELD_HTTP, my, h, sizeof(*h)) == 0 ? 0 : store_http_write(s, my, h, NULL);
}

int store_http_outcome(struct store *s, int64_t id, const struct store_http_outcome *o)
{
	return held_outcome(s, HELD_HTTP, id, o, sizeof(*o)) == 0 ? 0 : store_http_update(s, id, o);
}

int store_stmt_outcome(struct store *s, int64_t id, const struct store_stmt_outcome *o)
{
	sqlite3_stmt *st = s->st[ST_STMT_OUTCOME];
	int ret = -1;

	/* Still held: the outcome joins the row, written once at the batch's commit. */
	if (held_outcome(s, HELD_STMT, id, o, sizeof(*o)) == 0)
		return 0;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    bind_text(st, 2, o->tag) != SQLITE_OK ||
	    bind_text(st, 3, o->sqlstate) != SQLITE_OK ||
	    bind_text(st, 4, o->error) != SQLITE_OK ||
	    bind_int(st, 5, o->rows, o->rows >= 0) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 6, o->duration_us) != SQLITE_OK ||
	    write_step(s, st) < 0) {
		db_err(s, "recording a statement outcome");
		goto out;
	}
	ret = 0;
out:
	st_done(st);
	return ret;
}

int store_stmt_list(struct store *s, unsigned int limit,
		    int (*cb)(void *arg, const char *json), void *arg)
{
	return list_rows(s, ST_STMT_LIST, "listing statements", limit, cb, arg);
}

/* BEGIN or COMMIT of a batch, prepared once (sqlite3_exec parsed it at every commit). */
static int batch_sql(struct store *s, enum store_cached which, const char *sql)
{
	sqlite3_stmt *st = store_cached(s, which, sql);
	int r;

	if (!st)
		return SQLITE_ERROR;
	r = sqlite3_step(st);
	sqlite3_reset(st);
	return r == SQLITE_DONE ? SQLITE_OK : r;
}

int store_batch_begin(struct store *s)
{
	if (s->in_batch)
		return 0;
	if (batch_sql(s, STORE_C_BEGIN, "BEGIN") != SQLITE_OK) {
		db_err(s, "beginning a batch");
		return -1;
	}
	s->in_batch = 1;
	if (s->on_batch)
		s->on_batch(s->on_batch_arg);
	return 0;
}

void store_on_batch(struct store *s, void (*fn)(void *arg), void *arg)
{
	s->on_batch = fn;
	s->on_batch_arg = arg;
}

/*
 * The periodic commit (settled) carries the held rows from the first one still
 * waiting for its outcome on, in order, into the next batch, once: the outcome
 * then usually joins its row (one row, one record) instead of coming as an
 * update with a record of its own. Whatever a commit carried, the next one
 * writes. A batch is opened for them at once, so the daemon's commit timer runs.
 */
static int batch_commit(struct store *s, int settled)
{
	if (!s->in_batch)
		return 0;
	if (settled) {
		struct held *q, *done = s->held, **end = &done;

		/* The settled prefix is written; the rest waits (carried) for the next commit. */
		while (*end && ((*end)->has_outcome || (*end)->carried))
			end = &(*end)->next;
		s->held = *end;
		*end = NULL;
		if (!s->held)
			s->held_tail = &s->held;
		for (q = s->held; q; q = q->next)
			q->carried = 1;
		hidx_reset(s);
		(void)held_write_all(s, done);
	} else {
		store_held_flush(s);
	}
	store_rec_flush(s);
	s->in_batch = 0;
	if (store_audit_flush(s) < 0 || batch_sql(s, STORE_C_COMMIT, "COMMIT") != SQLITE_OK) {
		/* Never silent: the batch is lost, the daemon says so and (when the disk is
		 * full) stops taking new sessions. */
		db_err(s, "committing a batch");
		if (sqlite3_extended_errcode(s->db) == SQLITE_FULL || sqlite3_errcode(s->db) == SQLITE_FULL)
			s->audit.full = 1;
		if (!sqlite3_get_autocommit(s->db))
			(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		s->audit.stale = 1;
		store_totals_forget(s);
		return -1;
	}
	/* Carried rows: into the next batch now (without one, each is written on its own). */
	if (s->held && store_batch_begin(s) < 0)
		store_held_flush(s);
	return 0;
}

int store_batch_commit(struct store *s)
{
	return batch_commit(s, 0);
}

int store_batch_commit_settled(struct store *s)
{
	return batch_commit(s, 1);
}

sqlite3 *store_db(struct store *s)
{
	return s->db;
}

/* The fdatasync of the WAL that a commit at synchronous=FULL makes before it returns. */
static int wal_sync(struct store *s)
{
	sqlite3_file *f = NULL;

	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) != SQLITE_OK ||
	    !f || !f->pMethods)
		return -1;
	return f->pMethods->xSync(f, SQLITE_SYNC_NORMAL) == SQLITE_OK ? 0 : -1;
}

/*
 * One transaction and one WAL commit per call, on disk before the caller hears 0: a
 * decision is acted on (a flow released, a reviewer answered) only then. An open
 * group-commit batch is not committed on its own first but carried in this transaction:
 * its held statements are written before fn's changes (the chain keeps event order), fn
 * runs under a savepoint so that a failed fn undoes only its own changes, and the batch's
 * rows commit either way; the batch is closed as store_batch_commit leaves it. SQLite
 * refuses to change PRAGMA synchronous inside the batch's transaction, so the commit runs
 * at NORMAL and is then synced as FULL would have synced it (the commit is visible to
 * other connections for the length of that fdatasync before it is durable; nothing acts
 * on it in that time).
 */
int store_durable(struct store *s, int (*fn)(sqlite3 *db, void *arg), void *arg, const char *what)
{
	int batch = s->in_batch && !sqlite3_get_autocommit(s->db);
	int decided = 0, lost;
	size_t mark;

	if (batch) {
		store_held_flush(s);
		store_rec_flush(s);
		s->in_batch = 0;
	} else if (store_batch_commit(s) < 0 || exec(s, "BEGIN IMMEDIATE", what) < 0) {
		return -1;
	}
	mark = store_audit_mark(s);
	lost = s->audit.lost;
	if (sp(s, ST_SP_BEGIN) < 0)
		goto abort;
	if (fn(s->db, arg) == 0 && sp(s, ST_SP_RELEASE) == 0) {
		decided = 1;
	} else {
		db_err(s, what);
		store_audit_truncate(s, mark);
		s->audit.lost = lost;
		if (sp(s, ST_SP_ROLLBACK) < 0 || sp(s, ST_SP_RELEASE) < 0)
			goto abort;
	}
	/* The audit records of the batch's changes and fn's go in before the commit. */
	if (store_audit_flush(s) < 0 || sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto abort;
	if (!decided)
		return -1;
	if (wal_sync(s) < 0) {
		al_err("store: %s: the WAL could not be synced", what);
		return -1;
	}
	return 0;
abort:
	al_err("store: %s%s: %s", what, batch ? " (the open batch is lost with it)" : "",
	       sqlite3_errmsg(s->db));
	if (sqlite3_extended_errcode(s->db) == SQLITE_FULL || sqlite3_errcode(s->db) == SQLITE_FULL)
		s->audit.full = 1;
	if (!sqlite3_get_autocommit(s->db))
		(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	store_audit_discard(s);
	s->audit.stale = 1;
	return -1;
}
