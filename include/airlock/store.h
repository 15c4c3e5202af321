/* The audit store: sqlite in WAL mode, versioned schema, one row per steered connection. */
#ifndef AIRLOCK_STORE_H
#define AIRLOCK_STORE_H

#include <stdint.h>
#include <airlock/common.h>
#include <airlock/reason.h>

struct store;
struct json_t;
struct store_reader;       /* a read-only connection for long reads (below) */

/* The schema version this build migrates stores to (store.c checks it
 * against its migration list at compile time). */
#define STORE_SCHEMA_VERSION 18

/* What is known of a connection when it is accepted. Strings may be NULL.
 * cgroup_id 0 means no kernel identity: cgroup_id, pid, tid, uid and gid are
 * then stored as NULL, not 0. A port of 0 with a NULL address is NULL too. */
struct store_conn {
	int64_t opened_us;
	uint64_t cgroup_id;
	const char *cgroup_path;
	uint32_t pid, tid, uid, gid;
	const char *comm;
	const char *exe;
	const char *agent_addr;     /* the agent's end, as the steer listener saw it */
	uint16_t agent_port;
	const char *dst_addr;       /* original destination; NULL when unknown */
	uint16_t dst_port;
	const char *resource;       /* matched resource name; NULL for none */
	const char *protocol;
	const char *iface;          /* pinned interface the agent came through (TPROXY); NULL for cgroups */
	uint32_t ifindex;           /* its index (not a column: the proxies hand it to grants) */
};

struct store_conn_end {
	int64_t closed_us;
	uint64_t bytes_up;          /* agent -> upstream */
	uint64_t bytes_down;        /* upstream -> agent */
	enum al_reason reason;
	const char *detail;         /* free text, may be NULL */
};

/* Opens or creates the store (file mode 0600, parent made 0700) and runs
 * schema migrations. Rows left open by a crashed daemon are closed with
 * reason "shutdown" and detail "daemon restarted". */
int store_open(const char *path, struct store **out) AL_MUST;
void store_close(struct store *s);
/* Schema version after migrations. */
int store_schema_version(struct store *s);

int store_conn_open(struct store *s, const struct store_conn *c, int64_t *id) AL_MUST;
/* -1 also when row id is not open (unknown, closed, or ended by a restart). */
int store_conn_close(struct store *s, int64_t id, const struct store_conn_end *e) AL_MUST;
/* Convenience for connections that end at accept: open and close in one row. */
int store_conn_record(struct store *s, const struct store_conn *c, const struct store_conn_end *e) AL_MUST;

/* Pinned cgroups as the operator named them (the kernel pins are the truth;
 * this keeps the path the operator used). */
int store_pin_add(struct store *s, uint64_t cgroup_id, const char *path) AL_MUST;
/* 0 also when nothing was recorded for cgroup_id. */
int store_pin_del(struct store *s, uint64_t cgroup_id) AL_MUST;
/* Marks the record of a pinned cgroup found removed (its path waits for a cgroup again); 0 also
 * when nothing was recorded for cgroup_id or it is marked already. */
int store_pin_gone(struct store *s, uint64_t cgroup_id) AL_MUST;
/* A recorded pin. */
struct store_pin {
	uint64_t cgroup_id;
	const char *path;       /* as recorded: from the v2 mount, with its leading "/" */
	int64_t pinned_us;
	int64_t gone_us;        /* when its cgroup was found removed; 0: not */
};
/* Calls cb for each recorded pin, oldest first (cb < 0 stops: -1). Callers that change pins
 * read them into memory first. */
int store_pins_each(struct store *s, int (*cb)(void *arg, const struct store_pin *p), void *arg) AL_MUST;
/* Copies the recorded path into buf; -1 if not recorded. */
int store_pin_path(struct store *s, uint64_t cgroup_id, char *buf, size_t len) AL_MUST;

/* Totals over all connection rows, for status. */
struct store_totals {
	uint64_t connections;
	uint64_t by_reason[AL_REASON_MAX];
};
int store_totals(struct store *s, struct store_totals *t) AL_MUST;

/* Calls cb for the newest `limit` connection rows, newest first; each row as
 * a JSON object string (owned by the store, valid during the call). cb
 * returns 0 to go on, > 0 to stop (the walk returns 0), < 0 to abort (the
 * walk returns -1). Strings that are not UTF-8 have bad bytes as U+FFFD. */
int store_conn_list(struct store *s, unsigned int limit,
		    int (*cb)(void *arg, const char *json), void *arg) AL_MUST;

/* A refused attempt the kernel reported (socket, UDP, egress). Strings may be NULL. */
struct store_refusal {
	int64_t at_us;
	enum al_reason reason;
	uint64_t cgroup_id;         /* 0: unknown (egress has no task) */
	const char *cgroup_path;
	uint32_t pid, tid, uid;
	const char *comm;
	const char *exe;
	uint32_t family, type, protocol;
	const char *dst_addr;
	uint16_t dst_port;
	uint64_t count;             /* >1 for a row that stands for suppressed ones */
	const char *detail;
};
int store_refusal_add(struct store *s, const struct store_refusal *r) AL_MUST;
int store_refusal_list(struct store *s, unsigned int limit,
		       int (*cb)(void *arg, const char *json), void *arg) AL_MUST;

/* One statement of a terminated protocol session. */
struct store_stmt {
	int64_t conn_id;
	int64_t seq;
	int64_t at_us;
	const char *protocol;       /* "simple" or "extended" */
	const char *text;
	const char *kind;
	const char *fingerprint;
	const char *relations_json; /* JSON array */
	int unbounded_write;
	const char *params_json;    /* JSON array, or NULL */
	const char *decision;       /* "allow" / "deny" */
	const char *rule;           /* the rule that decided, or NULL */
};
struct store_stmt_outcome {
	const char *tag;            /* CommandComplete tag */
	const char *sqlstate;       /* on error */
	const char *error;
	int64_t rows;               /* rows returned; -1 unknown */
	int64_t duration_us;
};
int store_stmt_add(struct store *s, const struct store_stmt *t, int64_t *id) AL_MUST;
int store_stmt_outcome(struct store *s, int64_t id, const struct store_stmt_outcome *o) AL_MUST;
int store_stmt_list(struct store *s, unsigned int limit,
		    int (*cb)(void *arg, const char *json), void *arg) AL_MUST;

/* ---- HTTP requests (userspace/store/http.c): one row per request of an https resource ---- */
struct store_http {
	int64_t conn_id, seq, at_us;
	const char *method, *host, *path, *query, *kind;
	const char *headers_json;   /* chosen headers */
	int64_t body_len;           /* -1: unknown */
	const char *body_sha256;    /* NULL: not buffered */
	const char *request_sha256;
	const char *k8s_json;       /* Kubernetes exec/attach/portforward, or NULL */
	const char *fingerprint;
	const char *decision;       /* allow, deny, review, error (a 400) */
	const char *rule;
	int64_t request_id;         /* the review request, 0: none */
};
struct store_http_outcome {
	int status;                 /* sent to the agent; 0: none (connection ended) */
	uint64_t bytes_up, bytes_down;
	int64_t duration_us;
	const char *decision;       /* NULL: keep; after review "approved", "denied", ... */
	int64_t request_id;         /* 0: keep */
	const char *error;
};
/* The resource (and protocol) a connection turned out to be for, once known after its row was
 * opened: an https ClientHello's server name chooses among the resources of one address and
 * port (resource NULL: none, the TLS is relayed as bytes). */
int store_conn_resource(struct store *s, int64_t conn_id, const char *resource, const char *protocol) AL_MUST;
int store_http_add(struct store *s, const struct store_http *h, int64_t *id) AL_MUST;
/* SQL whose rows are the HTTP requests of connection ?1 (the columns of the http_requests view),
 * written alone or in batches, found through the batches' connection lists: for a reader with
 * only a db handle (airlockctl replay) to select from. */
const char *store_conn_http_sql(void);
int store_http_outcome(struct store *s, int64_t id, const struct store_http_outcome *o) AL_MUST;
int store_http_list(struct store *s, unsigned int limit,
		    int (*cb)(void *arg, const char *json), void *arg) AL_MUST;
/* Recorded HTTP requests since a time, oldest first, with the identity and destination of
 * their connection, for `policy test`. Requests refused as malformed (decision "error")
 * were decided by no rule and are left out. */
struct store_http_view {
	int64_t id, at_us;
	const char *method, *host, *path, *query, *kind;
	const char *k8s_json;       /* NULL: not a Kubernetes exec/attach/portforward */
	const char *body_sha256;    /* NULL: the body was not held (over http_max_body) */
	const char *fingerprint;    /* method words first: "POST (override DELETE) host/path" */
	const char *decision, *rule;
	const char *resource, *cgroup_path, *exe, *dst_addr;
	long uid;                   /* -1: none */
	int dst_port;
};
/* Every HTTP request at or after since_us that has a decision other than error, with its
 * connection's agent and destination, in no particular order. */
int store_http_since(struct store_reader *r, int64_t since_us,
		     int (*cb)(void *arg, const struct store_http_view *v), void *arg) AL_MUST;

/*
 * Group commit for audit rows on the hot path: writers call
 * store_batch_begin (a no-op when a batch is open) and rows share one
 * transaction until store_batch_commit. The daemon commits at the end of the
 * event-loop iteration that opened the batch (store_on_batch tells it), or,
 * under load, commit_interval after its last commit, so the rows of a burst
 * share one commit. Audit rows are not a gate: a connection's bytes and an
 * allowed command go upstream without waiting for their rows' commit (a
 * kill -9 can lose that window of rows). Decisions that gate a command
 * commit on their own, durably, before they take effect.
 */
void store_on_batch(struct store *s, void (*fn)(void *arg), void *arg);
int store_batch_begin(struct store *s) AL_MUST;
int store_batch_commit(struct store *s) AL_MUST;
/* The daemon's periodic commit: a command whose outcome has not come yet is carried (with
 * what was held after it, in order) into the next batch, once, so that its outcome joins it:
 * written in its batch's command_batches row (one row and one audit record for all the
 * commands a commit settles) instead of an insert, an update and two records. A command
 * allowed to run is therefore on disk within two batches (2 x commit_interval in airlockd). */
int store_batch_commit_settled(struct store *s) AL_MUST;

/* ---- review (userspace/store/review.c) ------------------------------------------------------
 * Every write here is durable (synchronous=FULL, its own transaction) before
 * the call returns: a decision never takes effect before it is on disk.
 */
struct store_request {
	int64_t created_us, expires_us;
	int64_t conn_id, stmt_id;
	uint64_t cgroup_id;             /* 0: an agent behind iface; cgroup_id, pid and uid are then NULL */
	const char *cgroup_path;
	uint32_t pid, uid;
	const char *exe, *comm;
	const char *iface;              /* the pinned interface the agent came through; NULL for cgroups */
	const char *resource, *protocol;
	const char *command, *kind, *fingerprint;
	const char *sha256;             /* hex of the exact bytes held */
	const char *rule;
	const char *approvers_json;
	unsigned int approvals_needed, max_grant_s;
};
int store_request_add(struct store *s, const struct store_request *r, int64_t *id) AL_MUST;
/* state: approved, denied, timeout, abandoned, aborted. Only from pending. */
int store_request_end(struct store *s, int64_t id, const char *state, const char *reason) AL_MUST;
int store_approval_add(struct store *s, int64_t request_id, const char *reviewer, const char *decision,
		       const char *reason, unsigned int grant_s) AL_MUST;
/* The decision that ends a request and the end itself, in one durable transaction. */
int store_approval_final(struct store *s, int64_t request_id, const char *reviewer, const char *decision,
			 const char *reason, unsigned int grant_s, const char *state) AL_MUST;
/*
 * A grant covers the request's fingerprint on its resource from its agent only: a pinned
 * cgroup's agent is its cgroup and uid (agent_iface NULL), an agent behind a pinned interface
 * is that interface, by name and index (cgroup_id 0; its uid is not known, stored as NULL).
 */
struct store_grant {
	int64_t id;                     /* store_grants_live: the row */
	int64_t request_id;
	const char *fingerprint, *resource;
	uint64_t cgroup_id;
	const char *cgroup_path;
	int64_t agent_uid;              /* -1: none (an interface's agent, or a grant from before
					 * schema 15, which covers no one) */
	const char *agent_iface;        /* NULL or "": a cgroup's agent */
	uint32_t agent_ifindex;
	const char *approvers_json;     /* the approver groups of the rule that held the request
					 * (a JSON array): who may revoke it */
	int64_t expires_us;
	const char *created_by;
};
int store_grant_add(struct store *s, const struct store_grant *g, int64_t *id) AL_MUST;
int store_grant_revoke(struct store *s, int64_t id, const char *by) AL_MUST;
/* The approver groups of grant id, not revoked, as store_grant_add was given them: 0 with *out
 * malloc'd, or NULL (a grant from before grants kept them, whose request is gone); 1 no such
 * grant, or revoked; -1 error. */
int store_grant_approvers(struct store *s, int64_t id, char **out) AL_MUST;
/* Unexpired, unrevoked grants, for the daemon's memory at start. A grant from before schema 17
 * has no agent_iface: it was made for a cgroup's agent or, with cgroup_id 0, for one behind
 * some interface nobody recorded; approval.c lets the latter cover no one. */
int store_grants_live(struct store *s, int (*cb)(void *arg, const struct store_grant *g), void *arg) AL_MUST;
/* Rows as JSON objects: requests (newest first; state NULL = all), one
 * request's approvals, grants. */
int store_requests_list(struct store *s, const char *state, unsigned int limit,
			int (*cb)(void *arg, const char *json), void *arg) AL_MUST;
int store_approvals_list(struct store *s, int64_t request_id,
			 int (*cb)(void *arg, const char *json), void *arg) AL_MUST;
int store_grants_list(struct store *s, int (*cb)(void *arg, const char *json), void *arg) AL_MUST;

/* Recorded statements since a time, with the identity of their connection, for `policy test`. */
struct store_stmt_view {
	int64_t id, at_us;
	const char *text, *kind, *relations_json, *decision, *rule, *fingerprint;
	int unbounded_write;
	const char *resource, *cgroup_path, *exe;
	long uid;
};
/* Every statement at or after since_us with its connection's agent (resource, cgroup, exe, uid;
 * NULL and -1 if the connection row is gone), in no particular order. */
int store_stmts_since(struct store_reader *r, int64_t since_us,
		      int (*cb)(void *arg, const struct store_stmt_view *v), void *arg) AL_MUST;

struct store_user {
	char name[64];
	long uid;                       /* -1: none */
	char groups[512];               /* comma separated */
	char pwhash[256];               /* "" if no console password */
	int admin;
	/* When the account was added (never changed after): a name removed and added again is
	 * another account, and the console's logins of the first one do not carry over. */
	int64_t created_us;
};
/* A new reviewer; u->created_us is set. Console tokens a store from before they went with
 * their user kept under the name are deleted in the same transaction: a new account
 * inherits none. 0 added, 1 the name exists (nothing written), -1 error (the uid is taken). */
int store_user_add(struct store *s, struct store_user *u) AL_MUST;
/* The fields store_user_set writes; the others stay as they are. */
#define STORE_USER_UID 1u
#define STORE_USER_GROUPS 2u
#define STORE_USER_PASSWORD 4u   /* pwhash ("" removes the password) */
#define STORE_USER_ADMIN 8u
/* Changes those fields of reviewer u->name. 0 changed, 1 no such reviewer, -1 error. */
int store_user_set(struct store *s, const struct store_user *u, unsigned int fields) AL_MUST;
/* What removing a reviewer undid: the pending requests whose approvals by them no longer
 * count, and the live grants their approval helped make, now revoked (by "user del NAME"). */
struct store_user_gone {
	int64_t *requests, *grants;
	size_t n_requests, n_grants;
};
/* Removes the reviewer with their console tokens, their approvals of pending requests and
 * their live grants, in one transaction; -1 (gone empty): no such reviewer, or the store
 * failed. */
int store_user_del(struct store *s, const char *name, struct store_user_gone *gone) AL_MUST;
void store_user_gone_free(struct store_user_gone *g);
/* 0 found, 1 not found, -1 error. */
int store_user_by_uid(struct store *s, long uid, struct store_user *out) AL_MUST;
int store_user_by_name(struct store *s, const char *name, struct store_user *out) AL_MUST;
int store_users_list(struct store *s, int (*cb)(void *arg, const char *json), void *arg) AL_MUST;

/* ---- console (userspace/store/console.c) -------------------------------------------------- */
/* API tokens: only the hex sha256 of a token is stored. */
int store_token_add(struct store *s, const char *user, const char *sha256_hex) AL_MUST;
/* The user a token hash belongs to: 0 found (name copied), 1 not found, -1 error. */
int store_token_user(struct store *s, const char *sha256_hex, char *user, size_t len) AL_MUST;
/* Deletes every token of user (whether or not the user exists): 0 with *n how many, -1 error. */
int store_token_revoke(struct store *s, const char *user, int *n) AL_MUST;

/*
 * A read-only connection to the store for reads that may take long (the console's audit
 * searches and session views), made to be used by one thread other than the event loop's:
 * the loop keeps writing while it reads. store_reader_sync (in the loop) commits what the
 * loop holds, so that a reader begun after it sees everything up to then.
 */
struct store_reader;
int store_reader_open(const char *path, struct store_reader **out, char *err, size_t errlen) AL_MUST;
void store_reader_close(struct store_reader *r);
int store_reader_sync(struct store *s) AL_MUST;
/* One consistent snapshot from begin to end; a read past budget_us (0: none) fails, and
 * store_reader_timed_out says so. */
int store_reader_begin(struct store_reader *r, int64_t budget_us) AL_MUST;
void store_reader_end(struct store_reader *r);
int store_reader_timed_out(const struct store_reader *r);
/* Makes a read running in another thread fail soon (any thread may call it). */
void store_reader_interrupt(struct store_reader *r);

/* Audit listings for the console, newest first; NULL/0 filters match all.
 * agent is a cgroup path prefix (or an exe); decision is a statement's
 * decision (allow, deny, review) or a connection's end reason. */
struct store_find_filter {
	const char *agent, *resource, *decision;
	int64_t since_us;
	unsigned int limit;
};
int store_find_connections(struct store_reader *r, const struct store_find_filter *f,
			    int (*cb)(void *arg, const char *json), void *arg) AL_MUST;
int store_find_statements(struct store_reader *r, const struct store_find_filter *f,
			   int (*cb)(void *arg, const char *json), void *arg) AL_MUST;
int store_find_requests(struct store_reader *r, const struct store_find_filter *f,
			 int (*cb)(void *arg, const char *json), void *arg) AL_MUST;
/* One connection row; 1 if there is none. */
int store_conn_get(struct store_reader *r, int64_t id, int (*cb)(void *arg, const char *json), void *arg) AL_MUST;
/*
 * A page of a session's rows: those after the row (key, id) if `after` (key: at_us for statements,
 * seq for HTTP requests and exec rows, whose id is not compared), else from its first; at most
 * `limit` (0 or over STORE_PAGE_MAX: STORE_PAGE_MAX). NULL: the first STORE_PAGE_MAX.
 */
#define STORE_PAGE_MAX 100000
struct store_page {
	int after;
	int64_t key, id;
	unsigned int limit;
};
/* The statements of a connection in time order (at_us, id). */
int store_conn_statements(struct store_reader *r, int64_t conn_id, const struct store_page *pg,
			  int (*cb)(void *arg, const char *json), void *arg) AL_MUST;
/* The HTTP requests of a connection in order (seq, id). */
int store_conn_http(struct store_reader *r, int64_t conn_id, const struct store_page *pg,
		    int (*cb)(void *arg, const char *json), void *arg) AL_MUST;
/* The recorded Kubernetes exec/attach stream of an https connection in order: rows {seq, at_us,
 * dir, type, data} as userspace/net/k8s_rec.c writes them (none for other protocols: a
 * PostgreSQL session's statements say what its recorded rows did). */
int store_conn_exec(struct store_reader *r, int64_t conn_id, const struct store_page *pg,
		    int (*cb)(void *arg, const char *json), void *arg) AL_MUST;
/* Counts for /metrics: cb(arg, key, n) per group. */
int store_count_requests_by_state(struct store *s, int (*cb)(void *arg, const char *key, int64_t n),
				  void *arg) AL_MUST;
/* Statements by decision: what the store holds, counted once by a thread (store_count_start,
 * or the first call starts it) and from then on by what each call finds written since.
 * 1 (cb not called): that first count is not done yet; 0 done; -1 failed. */
void store_count_start(struct store *s);
int store_count_statements_by_decision(struct store *s,
				       int (*cb)(void *arg, const char *key, int64_t n), void *arg) AL_MUST;
/* Decision latency (decided - created) of decided requests, bucketed:
 * counts[i] is the number with latency <= bounds_s[i] (cumulative). */
int store_decision_latency(struct store *s, const double *bounds_s, size_t n, uint64_t *counts,
			   uint64_t *total, double *sum_s) AL_MUST;

/* ---- audit chain, checkpoints, recordings, size cap (userspace/store/audit.c, rec.c) ------------
 * Every change to a store row is also appended, in the same transaction, to the audit table
 * as a record (seq, at_us, kind, ref_id, body) with
 *     canonical = "<seq>|<at_us>|<kind>|<ref_id or empty>|<body>"
 *     hash      = hex(sha256(prev_hash || canonical))     (prev_hash of seq 1: 64 '0')
 * where body is a JSON object dumped by jansson with JSON_SORT_KEYS | JSON_COMPACT. Every
 * STORE_CHECKPOINT_RECORDS records or STORE_CHECKPOINT_S seconds (and at close) the head is
 * signed with the store's Ed25519 key (<store dir>/audit.key, public half audit.pub):
 * audit_checkpoints(seq, hash, at_us, signature = hex(Ed25519("<seq>|<hash>|<at_us>"))).
 */
#define STORE_CHECKPOINT_RECORDS 1000
#define STORE_CHECKPOINT_S 60
#define STORE_GENESIS_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* The canonical text of a record (malloc'd) and its chained hash. */
char *store_audit_canonical(int64_t seq, int64_t at_us, const char *kind, int64_t ref_id, int has_ref,
			    const char *body);
int store_audit_hash(const char *prev_hash, const char *canonical, char out[65]) AL_MUST;
/* A record that is no row change (notification, policy reload, reviewer login); body is a
 * JSON object (encoded canonically), whose reference the call takes: a NULL one (json_pack
 * out of memory) or one that is no object is an error. */
int store_audit_event(struct store *s, const char *kind, int64_t ref_id, struct json_t *body) AL_MUST;
/* Signs the head now; a no-op when it is signed already. */
int store_audit_checkpoint(struct store *s) AL_MUST;
/* The head (last seq and its hash), for status. */
void store_audit_head(struct store *s, int64_t *seq, char hash[65]);

/* Checks a store file opened read-only: the chain and every checkpoint signature (pubkey_path
 * NULL: <store dir>/audit.pub). Returns 0 intact, 1 tampered (msg names the first bad record),
 * -1 when it could not check (msg says why). */
struct store_verify {
	int64_t records, checkpoints, first_seq, last_seq, first_bad;
	int64_t signed_to;              /* the last record a checkpoint signed (0: none) */
	int64_t signed_at_us;           /* when */
	char msg[512];
};
int store_audit_verify(const char *store_path, const char *pubkey_path, struct store_verify *v) AL_MUST;

/* One message of a recorded session (dir "F" agent->server, "B" server->agent, "A" Airlock's
 * own answer to the agent). Joins the group-commit batch (a session's messages of one batch
 * are one row); not chained record by record. */
int store_rec_add(struct store *s, int64_t conn_id, int64_t seq, int64_t at_us, const char *dir,
		  const char *type, const char *data, size_t len) AL_MUST;

/* Reading a session's recording back, message by message in order, from a store file open
 * in db (the daemon's, or airlockctl's read-only one). */
struct sqlite3;
struct sqlite3_stmt;
struct store_rec_msg {
	int64_t seq, at_us;
	char dir[4], type[32];
	const char *data;               /* NUL-terminated (len bytes before it); NULL: none */
	size_t len;
};
struct store_rec_iter {
	struct sqlite3_stmt *st;
	const unsigned char *p, *end;   /* the rest of the current row's chunk */
	struct al_buf data;
};
int store_rec_open(struct sqlite3 *db, int64_t conn_id, struct store_rec_iter *it) AL_MUST;
/* 1: *m is the next message (valid until the next call); 0: the end; -1: a read error or a
 * malformed chunk. */
int store_rec_next(struct store_rec_iter *it, struct store_rec_msg *m) AL_MUST;
void store_rec_close(struct store_rec_iter *it);

enum store_full_mode { STORE_FULL_REFUSE = 0, STORE_FULL_ROTATE = 1 };
struct store_limits {
	uint64_t max_size;              /* bytes of used pages; 0: no cap */
	enum store_full_mode full;
	int64_t record_retention_us;    /* recordings of sessions ended longer ago are deleted; 0: kept */
};
void store_set_limits(struct store *s, const struct store_limits *l);
/* Periodic work from the daemon's commit timer: timed checkpoints, retention, the size cap. */
void store_tick(struct store *s);
/* 1 while new agent sessions may start; 0 when the store is full (and not rotating): fail closed. */
int store_accepting(struct store *s);

#endif
