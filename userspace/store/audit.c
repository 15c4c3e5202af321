/* The hash-chained audit log: row changes caught by SQLite's pre-update hook, chained records, signed checkpoints, verification. */
/* Debian's libsqlite3 is built with the pre-update hook; its declarations need this. */
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

/* Column names of one table, read at open: the hook sees values by index only. */
enum col_use { COL_PLAIN, COL_HIDDEN, COL_HAS_PASSWORD, COL_CLOSED_US };
struct audit_table {
	char *name;
	int n;
	char **cols;
	int *order;             /* column numbers in the order of their keys in a record body */
	/* worked out once at open, not per row: each column's key as the body has it
	 * ("\"name\":", escaped), and what it is to the record */
	char **keys;
	size_t *key_len;
	unsigned char *use;     /* enum col_use */
	const char *ins, *upd, *del;    /* the record kinds of its changes (NULL: "<table>.<op>") */
	int own_record;         /* the column that names a row's own record (audit_seq), or -1 */
};

/* A row change waiting for store_audit_flush: its record's kind and canonical JSON body. */
struct audit_rec {
	struct audit_rec *next;
	int64_t ref_id;
	size_t len;
	char kind[80];
	char body[];
};

/* Tables whose changes are not records: the chain itself, and recordings (bulk data whose
 * sessions are chained by their connection rows). */
static int skipped(const char *table)
{
	return strcmp(table, "audit") == 0 || strcmp(table, "audit_checkpoints") == 0 ||
	       strcmp(table, "recordings") == 0 || strncmp(table, "sqlite_", 7) == 0;
}

/* What a change to a known table means; other tables get "<table>.<op>". */
static const struct {
	const char *table, *ins, *upd, *del;
} kinds[] = {
	{ "connections", "conn_open", "conn_close", "conn_delete" },
	/* statement_rows and http_request_rows keep the kinds they had as statements and
	 * http_requests (renamed in schema 11) */
	{ "statement_rows", "statement", "outcome", "statement_delete" },
	{ "http_request_rows", "http_requests.insert", "http_requests.update", "http_requests.delete" },
	{ "command_batches", "commands", "commands_update", "commands_delete" },
	{ "refusals", "refusal", "refusal_update", "refusal_delete" },
	{ "requests", "request", "request_end", "request_delete" },
	{ "approvals", "approval", "approval_update", "approval_delete" },
	{ "grants", "grant", "revoke", "grant_delete" },
	{ "users", "user_put", "user_put", "user_del" },
	{ "pins", "pin", "pin", "unpin" },
	{ "console_tokens", "token_add", "token_use", "token_del" },
};

/* Secrets never go into a record: a password hash becomes has_password, a token hash is left out. */
static int secret_col(const char *table, const char *col)
{
	return (strcmp(table, "users") == 0 && strcmp(col, "pwhash") == 0) ||
	       (strcmp(table, "console_tokens") == 0 && strcmp(col, "sha256") == 0);
}

static int unhex(const char *s, unsigned char *out, size_t max, size_t *n)
{
	size_t len = strlen(s);

	if (len % 2 || len / 2 > max)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		int hi = al_hexdigit(s[2 * i]), lo = al_hexdigit(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	*n = len / 2;
	return 0;
}

/* "seq|at_us|kind|ref_id|": the canonical text of a record up to its body; its length, or -1. */
static int canonical_head(char *out, size_t len, int64_t seq, int64_t at_us, const char *kind, int64_t ref_id,
			  int has_ref)
{
	size_t kl = strlen(kind), n = 0;

	/* Once per record: digits by hand, snprintf costs more than the rest of the head. */
	if (len < kl + 3 * 20 + 5)
		return -1;
	n += al_dec(out + n, seq);
	out[n++] = '|';
	n += al_dec(out + n, at_us);
	out[n++] = '|';
	memcpy(out + n, kind, kl);
	n += kl;
	out[n++] = '|';
	if (has_ref)
		n += al_dec(out + n, ref_id);
	out[n++] = '|';
	out[n] = '\0';
	return (int)n;
}

char *store_audit_canonical(int64_t seq, int64_t at_us, const char *kind, int64_t ref_id, int has_ref,
			    const char *body)
{
	size_t hl = strlen(kind) + 72;         /* three 64-bit numbers, four bars, a NUL */
	char *head = malloc(hl), *out = NULL;

	if (head && canonical_head(head, hl, seq, at_us, kind, ref_id, has_ref) >= 0 &&
	    asprintf(&out, "%s%s", head, body) < 0)
		out = NULL;
	free(head);
	return out;
}

int store_audit_hash(const char *prev_hash, const char *canonical, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok;

	ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(c, prev_hash, strlen(prev_hash)) == 1 &&
	     EVP_DigestUpdate(c, canonical, strlen(canonical)) == 1 &&
	     EVP_DigestFinal_ex(c, md, &n) == 1 && n == 32;
	EVP_MD_CTX_free(c);
	if (!ok)
		return -1;
	al_hex(md, 32, out);
	return 0;
}

/* ---- the hook ------------------------------------------------------------------------------ */

/*
 * Record bodies are written here, not through jansson: the hook runs for
 * every row the daemon writes, and this is most of the audit's cost. The
 * text is what `json.dumps(body, sort_keys=True, separators=(",", ":"),
 * ensure_ascii=False)` gives (keys sorted, UTF-8 kept, control characters
 * as \u00xx), so an independent verifier can rebuild it from the export.
 */
static void buf_val(struct al_buf *b, sqlite3_value *v)
{
	char num[32];

	switch (sqlite3_value_type(v)) {
	case SQLITE_NULL:
		al_buf_add(b, "null", 4);
		break;
	case SQLITE_INTEGER:
		al_buf_add(b, num, al_dec(num, sqlite3_value_int64(v)));
		break;
	case SQLITE_FLOAT:
		al_buf_add(b, num, (size_t)snprintf(num, sizeof(num), "%.17g", sqlite3_value_double(v)));
		break;
	case SQLITE_BLOB: {
		const unsigned char *p = sqlite3_value_blob(v);
		int n = sqlite3_value_bytes(v);
		char h[64];

		al_buf_add(b, "\"", 1);
		for (int i = 0; i < n; i += 31) {
			size_t m = (size_t)(n - i < 31 ? n - i : 31);

			al_hex(p + i, m, h);
			al_buf_add(b, h, 2 * m);
		}
		al_buf_add(b, "\"", 1);
		break;
	}
	default:
		al_buf_json_str(b, sqlite3_value_text(v), (size_t)sqlite3_value_bytes(v));
	}
}

static int val_eq(sqlite3_value *a, sqlite3_value *b)
{
	int t = sqlite3_value_type(a);

	if (t != sqlite3_value_type(b))
		return 0;
	switch (t) {
	case SQLITE_NULL:
		return 1;
	case SQLITE_INTEGER:
		return sqlite3_value_int64(a) == sqlite3_value_int64(b);
	case SQLITE_FLOAT:
		return sqlite3_value_double(a) == sqlite3_value_double(b);
	default: {
		const void *pa = t == SQLITE_BLOB ? sqlite3_value_blob(a) : (const void *)sqlite3_value_text(a);
		const void *pb = t == SQLITE_BLOB ? sqlite3_value_blob(b) : (const void *)sqlite3_value_text(b);
		int na = sqlite3_value_bytes(a), nb = sqlite3_value_bytes(b);

		return na == nb && (na == 0 || memcmp(pa, pb, (size_t)na) == 0);
	}
	}
}

static const struct audit_table *table_of(struct store_audit *a, const char *name)
{
	/* SQLite hands the hook its schema's copy of the name, mostly the same pointer as
	 * last time: one comparison then, not one per table. */
	if (a->last_table_name == name && a->last_table && strcmp(a->last_table->name, name) == 0)
		return a->last_table;
	for (size_t i = 0; i < a->n_tables; i++)
		if (strcmp(a->tables[i].name, name) == 0) {
			a->last_table_name = name;
			a->last_table = &a->tables[i];
			return a->last_table;
		}
	return NULL;
}

static void kind_of(const struct audit_table *t, const char *table, int op, int refused, char *out,
		    size_t len)
{
	const char *k = !t || !t->ins ? NULL : op == SQLITE_INSERT ? t->ins : op == SQLITE_UPDATE ? t->upd : t->del;

	/* A connection refused at accept is opened and closed in one row. */
	if (k && op == SQLITE_INSERT && refused && strcmp(table, "connections") == 0)
		k = "conn_refused";
	if (k && strlen(k) < len)
		memcpy(out, k, strlen(k) + 1);
	else
		snprintf(out, len, "%s.%s", table, op == SQLITE_INSERT ? "insert" : op == SQLITE_UPDATE ?
			 "update" : "delete");
}

/*
 * Runs inside SQLite for every row change of this connection. It must not
 * touch the database: it only copies the values (the new row for an
 * insert, the changed columns for an update, the old row for a delete)
 * into a queued record.
 */
static void on_preupdate(void *arg, sqlite3 *db, int op, const char *zdb, const char *table,
			 sqlite3_int64 key1, sqlite3_int64 key2)
{
	struct store_audit *a = store_audit_state(arg);
	struct al_buf *b = &a->buf;
	const struct audit_table *t;
	struct audit_rec *r;
	int n, refused = 0, first = 1;

	if (a->muted || strcmp(zdb, "main") != 0 || skipped(table))
		return;
	t = table_of(a, table);
	n = sqlite3_preupdate_count(db);
	if (t && t->n != n)
		t = NULL;               /* not the schema read at open: plain column numbers */
	if (t && op == SQLITE_INSERT && t->own_record >= 0) {
		sqlite3_value *v = NULL;

		/* a batch whose writer appends its record (store_audit_batch) */
		if (sqlite3_preupdate_new(db, t->own_record, &v) == SQLITE_OK && v &&
		    sqlite3_value_type(v) != SQLITE_NULL)
			return;
	}
	al_buf_clear(b);
	al_buf_add(b, "{", 1);
	for (int k = 0; k < n; k++) {
		int i = t ? t->order[k] : k;
		sqlite3_value *ov = NULL, *nv = NULL, *v;
		enum col_use use = t ? t->use[i] : COL_PLAIN;

		if (use == COL_HIDDEN)
			continue;
		if (op != SQLITE_INSERT && sqlite3_preupdate_old(db, i, &ov) != SQLITE_OK)
			goto oom;
		if (op != SQLITE_DELETE && sqlite3_preupdate_new(db, i, &nv) != SQLITE_OK)
			goto oom;
		if (op == SQLITE_UPDATE && val_eq(ov, nv))
			continue;
		v = op == SQLITE_DELETE ? ov : nv;
		al_buf_add(b, ",", first ? 0 : 1);
		first = 0;
		if (use == COL_HAS_PASSWORD) {
			al_buf_add(b, "\"has_password\":", 15);
			if (sqlite3_value_type(v) != SQLITE_NULL)
				al_buf_add(b, "true", 4);
			else
				al_buf_add(b, "false", 5);
			continue;
		}
		if (use == COL_CLOSED_US && sqlite3_value_type(v) != SQLITE_NULL)
			refused = 1;
		if (t) {
			al_buf_add(b, t->keys[i], t->key_len[i]);
		} else {
			char name[32];

			snprintf(name, sizeof(name), "col%d", i);
			al_buf_json_str(b, name, strlen(name));
			al_buf_add(b, ":", 1);
		}
		buf_val(b, v);
	}
	al_buf_add(b, "}", 1);
	if (b->oom)
		goto oom;
	r = malloc(sizeof(*r) + b->len + 1);
	if (!r)
		goto oom;
	r->next = NULL;
	kind_of(t, table, op, refused, r->kind, sizeof(r->kind));
	r->ref_id = op == SQLITE_DELETE ? key1 : key2;
	r->len = b->len;
	memcpy(r->body, b->p, b->len + 1);
	*a->pending_tail = r;
	a->pending_tail = &r->next;
	a->n_pending++;
	return;
oom:
	/* The change itself goes on; the flush sees the gap and fails the write. */
	al_err("store: audit: out of memory recording a change of %s", table);
	a->lost++;
}

static void on_rollback(void *arg)
{
	struct store_audit *a = store_audit_state(arg);

	store_audit_discard(arg);
	a->stale = 1;
}

void store_audit_discard(struct store *s)
{
	struct store_audit *a = store_audit_state(s);
	struct audit_rec *r;

	while ((r = a->pending) != NULL) {
		a->pending = r->next;
		free(r);
	}
	a->pending_tail = &a->pending;
	a->n_pending = 0;
	a->lost = 0;
}

size_t store_audit_mark(struct store *s)
{
	return store_audit_state(s)->n_pending;
}

void store_audit_truncate(struct store *s, size_t mark)
{
	struct store_audit *a = store_audit_state(s);
	struct audit_rec **pp = &a->pending, *r;

	if (a->n_pending <= mark)
		return;
	for (size_t i = 0; i < mark; i++)
		pp = &(*pp)->next;
	while ((r = *pp) != NULL) {
		*pp = r->next;
		free(r);
	}
	a->pending_tail = pp;
	a->n_pending = mark;
}

/* ---- the chain ------------------------------------------------------------------------------ */

static int load_head(struct store *s)
{
	struct store_audit *a = store_audit_state(s);
	sqlite3_stmt *st = NULL;
	int rc = -1, r;

	if (sqlite3_prepare_v2(store_db(s), "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", -1,
			       &st, NULL) != SQLITE_OK)
		goto out;
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		a->seq = sqlite3_column_int64(st, 0);
		snprintf(a->hash, sizeof(a->hash), "%s", (const char *)sqlite3_column_text(st, 1));
	} else if (r == SQLITE_DONE) {
		a->seq = 0;
		snprintf(a->hash, sizeof(a->hash), "%s", STORE_GENESIS_HASH);
	} else {
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(store_db(s), "SELECT coalesce(max(seq), 0) FROM audit_checkpoints", -1, &st,
			       NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		goto out;
	a->cp_seq = sqlite3_column_int64(st, 0);
	a->stale = 0;
	rc = 0;
out:
	if (rc < 0)
		al_err("store: audit: reading the chain's head: %s", sqlite3_errmsg(store_db(s)));
	sqlite3_finalize(st);
	return rc;
}

/* hash = sha256(prev_hash || "seq|at_us|kind|ref_id|body"), fed in pieces (see store_audit_canonical). */
static int chain_hash(struct store_audit *a, int64_t seq, int64_t at, const char *kind, int64_t ref_id,
		      const char *body, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	char head[160];
	int hn = canonical_head(head, sizeof(head), seq, at, kind, ref_id, ref_id > 0);

	if (hn < 0 || !a->md)
		return -1;
	if (EVP_DigestInit_ex(a->md, a->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(a->md, a->hash, strlen(a->hash)) != 1 ||
	    EVP_DigestUpdate(a->md, head, (size_t)hn) != 1 || EVP_DigestUpdate(a->md, body, len) != 1 ||
	    EVP_DigestFinal_ex(a->md, md, &n) != 1 || n != 32)
		return -1;
	al_hex(md, 32, out);
	return 0;
}

/* Appends one record whose body is canonical JSON text already. */
static int append_text(struct store *s, const char *kind, int64_t ref_id, const char *body, size_t len)
{
	struct store_audit *a = store_audit_state(s);
	sqlite3_stmt *st = a->ins;
	char h[65];
	int64_t at = al_now_us(), seq;
	int rc = -1;

	if (a->stale && load_head(s) < 0)
		goto out;
	seq = a->seq + 1;
	if (chain_hash(a, seq, at, kind, ref_id, body, len, h) < 0) {
		al_err("store: audit: hashing record %" PRId64 " failed", seq);
		goto out;
	}
	if (sqlite3_bind_int64(st, 1, seq) != SQLITE_OK || sqlite3_bind_int64(st, 2, at) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC) != SQLITE_OK ||
	    (ref_id > 0 ? sqlite3_bind_int64(st, 4, ref_id) : sqlite3_bind_null(st, 4)) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, body, (int)len, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 6, a->hash, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 7, h, -1, SQLITE_STATIC) != SQLITE_OK) {
		al_err("store: audit: binding a record: %s", sqlite3_errmsg(store_db(s)));
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		if (rc == SQLITE_FULL)
			a->full = 1;
		al_err("store: audit: appending record %" PRId64 ": %s", seq, sqlite3_errmsg(store_db(s)));
		rc = -1;
		goto out;
	}
	a->seq = seq;
	memcpy(a->hash, h, sizeof(h));
	a->appended++;
	rc = 0;
	if (a->key && a->seq - a->cp_seq >= STORE_CHECKPOINT_RECORDS && store_audit_checkpoint(s) < 0)
		rc = -1;
out:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

int store_audit_append(struct store *s, const char *kind, int64_t ref_id, json_t *body)
{
	char *text = json_dumps(body, JSON_SORT_KEYS | JSON_COMPACT);
	int rc = -1;

	if (!text)
		al_err("store: audit: out of memory");
	else
		rc = append_text(s, kind, ref_id, text, strlen(text));
	free(text);
	json_decref(body);
	return rc;
}

int store_audit_flush(struct store *s)
{
	struct store_audit *a = store_audit_state(s);
	struct audit_rec *r;

	if (a->lost) {
		store_audit_discard(s);
		return -1;
	}
	while ((r = a->pending) != NULL) {
		a->pending = r->next;
		if (!a->pending)
			a->pending_tail = &a->pending;
		a->n_pending--;
		if (append_text(s, r->kind, r->ref_id, r->body, r->len) < 0) {
			free(r);
			store_audit_discard(s);
			return -1;
		}
		free(r);
	}
	return 0;
}

int64_t store_audit_next_seq(struct store *s)
{
	struct store_audit *a = store_audit_state(s);

	if (store_audit_flush(s) < 0 || (a->stale && load_head(s) < 0))
		return -1;
	return a->seq + 1;
}

int store_audit_batch(struct store *s, int64_t seq, int64_t batch_id, const char *body, size_t len)
{
	struct store_audit *a = store_audit_state(s);

	if (!body || a->seq + 1 != seq || a->pending || append_text(s, "commands", batch_id, body, len) < 0) {
		if (!body)
			al_err("store: audit: out of memory writing the record of batch %" PRId64, batch_id);
		else if (a->seq + 1 != seq || a->pending)
			al_err("store: audit: the record of batch %" PRId64 " is not %" PRId64 " (something was"
			       " appended between)", batch_id, seq);
		a->lost++;              /* the commit fails: the batch's row is not kept without it */
		return -1;
	}
	return 0;
}

int store_audit_event(struct store *s, const char *kind, int64_t ref_id, json_t *body)
{
	int rc;

	if (!json_is_object(body)) {
		json_decref(body);
		al_err("store: audit: event %s: body is not a JSON object", kind);
		return -1;
	}
	/* Its own transaction unless a batch is open: the event is atomic either way. */
	if (store_batch_begin(s) < 0) {
		json_decref(body);
		return -1;
	}
	rc = store_audit_flush(s);
	if (rc == 0)
		rc = store_audit_append(s, kind, ref_id, body);
	else
		json_decref(body);
	return rc;
}

void store_audit_head(struct store *s, int64_t *seq, char hash[65])
{
	struct store_audit *a = store_audit_state(s);

	if (a->stale)
		(void)load_head(s);
	*seq = a->seq;
	memcpy(hash, a->hash, 65);
}

/* ---- signing ---------------------------------------------------------------------------- */

static int sign_text(int64_t seq, const char *hash, int64_t at, char *out, size_t len)
{
	return snprintf(out, len, "%" PRId64 "|%s|%" PRId64, seq, hash, at) < (int)len ? 0 : -1;
}

int store_audit_checkpoint(struct store *s)
{
	struct store_audit *a = store_audit_state(s);
	sqlite3_stmt *st = a->cp_ins;
	unsigned char sig[64];
	size_t siglen = sizeof(sig);
	char msg[128], sighex[129];
	int64_t at = al_now_us();
	EVP_MD_CTX *c = NULL;
	int rc = -1;

	if (a->stale && load_head(s) < 0)
		return -1;
	if (!a->key || a->seq == 0 || a->seq == a->cp_seq)
		return 0;
	c = EVP_MD_CTX_new();
	if (sign_text(a->seq, a->hash, at, msg, sizeof(msg)) < 0 || !c ||
	    EVP_DigestSignInit(c, NULL, NULL, NULL, a->key) != 1 ||
	    EVP_DigestSign(c, sig, &siglen, (const unsigned char *)msg, strlen(msg)) != 1) {
		al_err("store: audit: signing checkpoint %" PRId64 " failed", a->seq);
		goto out;
	}
	al_hex(sig, siglen, sighex);
	if (sqlite3_bind_int64(st, 1, a->seq) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, a->hash, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, at) != SQLITE_OK ||
	    sqlite3_bind_text(st, 4, sighex, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		al_err("store: audit: recording checkpoint %" PRId64 ": %s", a->seq,
		       sqlite3_errmsg(store_db(s)));
		goto out;
	}
	a->cp_seq = a->seq;
	a->cp_mono_us = al_mono_us();
	rc = 0;
out:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	EVP_MD_CTX_free(c);
	return rc;
}

/* <dir of the store>/<name> */
static int beside(const char *store_path, const char *name, char *out, size_t len)
{
	const char *slash = strrchr(store_path, '/');

	if (!slash)
		return al_fmt(out, len, "%s", name);
	return al_fmt(out, len, "%.*s/%s", (int)(slash - store_path), store_path, name);
}

static int write_pub(EVP_PKEY *k, const char *path)
{
	char tmp[4200];
	FILE *f;
	int fd, ok;

	if (al_fmt(tmp, sizeof(tmp), "%s.tmp", path) < 0)
		return -1;
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	(void)fchmod(fd, 0644);
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -1;
	}
	ok = PEM_write_PUBKEY(f, k) == 1;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) < 0) {
		(void)unlink(tmp);
		return -1;
	}
	return 0;
}

/* The signing key beside the store: made on first start (0600), loaded after. */
static int load_key(struct store_audit *a, const char *store_path)
{
	char kpath[4200], ppath[4200];
	struct stat sb;
	FILE *f;
	int fd;

	if (beside(store_path, "audit.key", kpath, sizeof(kpath)) < 0 ||
	    beside(store_path, "audit.pub", ppath, sizeof(ppath)) < 0)
		return -1;
	fd = open(kpath, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (fstat(fd, &sb) == 0 && (sb.st_mode & 077))
			al_warn("store: %s is accessible to group or others (mode %03o)", kpath,
				(unsigned int)(sb.st_mode & 0777));
		f = fdopen(fd, "r");
		if (!f) {
			close(fd);
			return -1;
		}
		a->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (!a->key || EVP_PKEY_get_id(a->key) != EVP_PKEY_ED25519) {
			al_err("store: %s is not an Ed25519 private key", kpath);
			return -1;
		}
		if (access(ppath, R_OK) < 0 && write_pub(a->key, ppath) < 0)
			al_warn("store: could not write %s", ppath);
		return 0;
	}
	if (errno != ENOENT) {
		al_err("store: %s: %s", kpath, strerror(errno));
		return -1;
	}
	a->key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!a->key) {
		al_err("store: cannot make an Ed25519 key");
		return -1;
	}
	fd = open(kpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || fchmod(fd, 0600) < 0) {
		al_err("store: creating %s: %s", kpath, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	f = fdopen(fd, "w");
	if (!f || PEM_write_PrivateKey(f, a->key, NULL, NULL, 0, NULL, NULL) != 1 || fflush(f) != 0 ||
	    fsync(fd) < 0) {
		al_err("store: writing %s failed", kpath);
		if (f)
			fclose(f);
		else
			close(fd);
		(void)unlink(kpath);
		return -1;
	}
	fclose(f);
	if (write_pub(a->key, ppath) < 0) {
		al_err("store: writing %s: %s", ppath, strerror(errno));
		return -1;
	}
	al_info("store: made the audit signing key %s (public key %s)", kpath, ppath);
	return 0;
}

/* ---- open and close ------------------------------------------------------------------------ */

/* The key a column has in a record body (secrets are renamed or left out, see on_preupdate). */
static const char *body_key(const struct audit_table *t, int i)
{
	return strcmp(t->cols[i], "pwhash") == 0 && strcmp(t->name, "users") == 0 ? "has_password" : t->cols[i];
}

/* The hook writes a row's columns in the order of their keys: bodies have sorted keys. */
static int sort_columns(struct audit_table *t)
{
	t->order = calloc((size_t)t->n + 1, sizeof(*t->order));
	if (!t->order)
		return -1;
	for (int i = 0; i < t->n; i++) {
		int j = i;

		while (j > 0 && strcmp(body_key(t, t->order[j - 1]), body_key(t, i)) > 0) {
			t->order[j] = t->order[j - 1];
			j--;
		}
		t->order[j] = i;
	}
	return 0;
}

/* What the hook needs of each column, worked out once: its key as written, its use. */
static int describe_columns(struct audit_table *t)
{
	struct al_buf b = { 0 };

	t->own_record = -1;
	t->keys = calloc((size_t)t->n + 1, sizeof(*t->keys));
	t->key_len = calloc((size_t)t->n + 1, sizeof(*t->key_len));
	t->use = calloc((size_t)t->n + 1, sizeof(*t->use));
	if (!t->keys || !t->key_len || !t->use)
		return -1;
	for (int i = 0; i < t->n; i++) {
		b.len = 0;
		al_buf_json_str(&b, t->cols[i], strlen(t->cols[i]));
		al_buf_add(&b, ":", 1);
		if (b.oom || !(t->keys[i] = malloc(b.len + 1))) {
			free(b.p);
			return -1;
		}
		memcpy(t->keys[i], b.p, b.len + 1);
		t->key_len[i] = b.len;
		if (secret_col(t->name, t->cols[i]))
			t->use[i] = strcmp(t->cols[i], "pwhash") == 0 ? COL_HAS_PASSWORD : COL_HIDDEN;
		else if (strcmp(t->cols[i], "closed_us") == 0)
			t->use[i] = COL_CLOSED_US;
		if (strcmp(t->name, "command_batches") == 0 && strcmp(t->cols[i], "audit_seq") == 0)
			t->own_record = i;
	}
	free(b.p);
	for (size_t k = 0; k < AL_ARRAY_LEN(kinds); k++)
		if (strcmp(kinds[k].table, t->name) == 0) {
			t->ins = kinds[k].ins;
			t->upd = kinds[k].upd;
			t->del = kinds[k].del;
		}
	return 0;
}

static int load_tables(struct store *s)
{
	struct store_audit *a = store_audit_state(s);
	sqlite3_stmt *st = NULL, *ci = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(store_db(s), "SELECT name FROM sqlite_schema WHERE type = 'table'", -1, &st,
			       NULL) != SQLITE_OK)
		goto out;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		struct audit_table *v, *t;

		if (!name || skipped(name))
			continue;
		v = realloc(a->tables, (a->n_tables + 1) * sizeof(*v));
		if (!v)
			goto out;
		a->tables = v;
		t = &v[a->n_tables++];
		memset(t, 0, sizeof(*t));
		if (!(t->name = strdup(name)))
			goto out;
		if (sqlite3_prepare_v2(store_db(s), "SELECT name FROM pragma_table_info(?1) ORDER BY cid", -1,
				       &ci, NULL) != SQLITE_OK ||
		    sqlite3_bind_text(ci, 1, name, -1, SQLITE_TRANSIENT) != SQLITE_OK)
			goto out;
		while (sqlite3_step(ci) == SQLITE_ROW) {
			char **c = realloc(t->cols, (size_t)(t->n + 1) * sizeof(*c));

			if (!c)
				goto out;
			t->cols = c;
			if (!(c[t->n] = strdup((const char *)sqlite3_column_text(ci, 0))))
				goto out;
			t->n++;
		}
		sqlite3_finalize(ci);
		ci = NULL;
		if (sort_columns(t) < 0 || describe_columns(t) < 0)
			goto out;
	}
	rc = 0;
out:
	if (rc < 0)
		al_err("store: audit: reading the schema failed");
	sqlite3_finalize(ci);
	sqlite3_finalize(st);
	return rc;
}

int store_audit_open(struct store *s, const char *store_path)
{
	struct store_audit *a = store_audit_state(s);
	sqlite3 *db = store_db(s);

	a->pending_tail = &a->pending;
	if (al_fmt(a->path, sizeof(a->path), "%s", store_path) < 0)
		return -1;
	/* A write outside a batch and its records share a savepoint; its sub-journal stays
	 * in memory (on disk it costs a temp file per batch, ten times the write itself). */
	if (sqlite3_exec(db, "PRAGMA temp_store = MEMORY", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	if (load_tables(s) < 0 || load_head(s) < 0)
		return -1;
	if (sqlite3_prepare_v3(db, "INSERT INTO audit (seq, at_us, kind, ref_id, body, prev_hash, hash)"
			       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", -1, SQLITE_PREPARE_PERSISTENT,
			       &a->ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db, "INSERT OR IGNORE INTO audit_checkpoints (seq, hash, at_us, signature)"
			       " VALUES (?1, ?2, ?3, ?4)", -1, SQLITE_PREPARE_PERSISTENT, &a->cp_ins,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db, "INSERT INTO recordings (conn_id, seq, at_us, n, data)"
			       " VALUES (?1, ?2, ?3, ?4, ?5)", -1, SQLITE_PREPARE_PERSISTENT,
			       &a->rec_ins, NULL) != SQLITE_OK) {
		al_err("store: audit: preparing statements: %s", sqlite3_errmsg(db));
		return -1;
	}
	if (load_key(a, store_path) < 0)
		return -1;
	a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	a->md = EVP_MD_CTX_new();
	if (!a->sha256 || !a->md) {
		al_err("store: audit: no SHA-256 from OpenSSL");
		return -1;
	}
	a->cp_mono_us = al_mono_us();
	sqlite3_preupdate_hook(db, on_preupdate, s);
	sqlite3_rollback_hook(db, on_rollback, s);
	return 0;
}

void store_audit_close(struct store *s)
{
	struct store_audit *a = store_audit_state(s);

	store_count_stop(s);
	if (store_db(s)) {
		sqlite3_preupdate_hook(store_db(s), NULL, NULL);
		sqlite3_rollback_hook(store_db(s), NULL, NULL);
	}
	store_audit_discard(s);
	store_rec_free(s);
	free(a->counts);
	a->counts = NULL;
	a->n_counts = 0;
	free(a->rev);
	a->rev = NULL;
	free(a->lat_counts);
	a->lat_counts = NULL;
	free(a->lat_bounds);
	a->lat_bounds = NULL;
	sqlite3_finalize(a->ins);
	sqlite3_finalize(a->cp_ins);
	sqlite3_finalize(a->rec_ins);
	a->ins = a->cp_ins = a->rec_ins = NULL;
	EVP_PKEY_free(a->key);
	a->key = NULL;
	EVP_MD_CTX_free(a->md);
	a->md = NULL;
	EVP_MD_free(a->sha256);
	a->sha256 = NULL;
	free(a->buf.p);
	memset(&a->buf, 0, sizeof(a->buf));
	for (size_t i = 0; i < a->n_tables; i++) {
		for (int j = 0; j < a->tables[i].n; j++) {
			free(a->tables[i].cols[j]);
			if (a->tables[i].keys)
				free(a->tables[i].keys[j]);
		}
		free(a->tables[i].keys);
		free(a->tables[i].key_len);
		free(a->tables[i].use);
		free(a->tables[i].cols);
		free(a->tables[i].order);
		free(a->tables[i].name);
	}
	free(a->tables);
	a->tables = NULL;
	a->n_tables = 0;
}

/* ---- verification (read-only, no daemon) ---------------------------------------------------- */

struct problem {
	int64_t seq;            /* the first bad sequence number found so far; 0 none */
	char msg[512];
};

static void problem(struct problem *p, int64_t seq, const char *fmt, ...) AL_PRINTF(3, 4);
static void problem(struct problem *p, int64_t seq, const char *fmt, ...)
{
	va_list ap;

	if (p->seq && p->seq <= seq)
		return;
	p->seq = seq;
	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
	va_end(ap);
}

static EVP_PKEY *read_pub(const char *path)
{
	FILE *f = fopen(path, "re");
	EVP_PKEY *k;

	if (!f)
		return NULL;
	k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (k && EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	return k;
}

static int sig_ok(EVP_PKEY *k, int64_t seq, const char *hash, int64_t at, const char *sighex)
{
	unsigned char sig[128];
	size_t n;
	char msg[160];
	EVP_MD_CTX *c;
	int ok;

	if (!hash || !sighex || unhex(sighex, sig, sizeof(sig), &n) < 0 ||
	    sign_text(seq, hash, at, msg, sizeof(msg)) < 0)
		return 0;
	c = EVP_MD_CTX_new();
	ok = c && EVP_DigestVerifyInit(c, NULL, NULL, NULL, k) == 1 &&
	     EVP_DigestVerify(c, sig, n, (const unsigned char *)msg, strlen(msg)) == 1;
	EVP_MD_CTX_free(c);
	return ok;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);

	return t ? t : "";
}

int store_audit_verify(const char *store_path, const char *pubkey_path, struct store_verify *v)
{
	struct problem p = { 0 };
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	EVP_PKEY *pk = NULL;
	char ppath[4200], prev[65] = STORE_GENESIS_HASH, h[65];
	int64_t expect = 0, signed_to, signed_at = 0;
	int rc = -1, r;

	memset(v, 0, sizeof(*v));
	if (!pubkey_path) {
		if (beside(store_path, "audit.pub", ppath, sizeof(ppath)) < 0)
			goto out;
		pubkey_path = ppath;
	}
	if (sqlite3_open_v2(store_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, 5000) != SQLITE_OK) {
		snprintf(v->msg, sizeof(v->msg), "cannot open %s: %s", store_path,
			 db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	/* One read transaction: a running daemon's appends after it do not move the ground. */
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT seq, at_us, kind, ref_id, body, prev_hash, hash FROM audit"
			       " ORDER BY seq", -1, &st, NULL) != SQLITE_OK) {
		snprintf(v->msg, sizeof(v->msg), "%s has no audit log: %s", store_path, sqlite3_errmsg(db));
		goto out;
	}
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(st, 0);
		const char *kind = col_text(st, 2), *body = col_text(st, 4);
		const char *prev_hash = col_text(st, 5), *hash = col_text(st, 6);
		char *canon;

		if (v->records == 0) {
			v->first_seq = seq;
			/* A store that was rotated starts where its archive ended. */
			if (seq != 1 && strcmp(kind, "rotated") == 0)
				snprintf(prev, sizeof(prev), "%s", prev_hash);
			else if (seq != 1) {
				problem(&p, 1, "record 1 missing (deleted?)");
				break;
			}
			expect = seq;
		}
		if (seq != expect) {
			problem(&p, expect, "record %" PRId64 " missing (deleted?)", expect);
			break;
		}
		v->records++;
		v->last_seq = seq;
		if (strcmp(prev_hash, prev) != 0) {
			problem(&p, seq, "record %" PRId64 " does not follow record %" PRId64
				" (edited, reordered or inserted?)", seq, seq - 1);
			break;
		}
		canon = store_audit_canonical(seq, sqlite3_column_int64(st, 1), kind,
					      sqlite3_column_int64(st, 3),
					      sqlite3_column_type(st, 3) != SQLITE_NULL, body);
		if (!canon || store_audit_hash(prev, canon, h) < 0) {
			free(canon);
			snprintf(v->msg, sizeof(v->msg), "out of memory");
			goto out;
		}
		free(canon);
		if (strcmp(h, hash) != 0) {
			problem(&p, seq, "record %" PRId64 " does not match its hash (edited?)", seq);
			break;
		}
		memcpy(prev, h, sizeof(prev));
		expect = seq + 1;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE) {
		snprintf(v->msg, sizeof(v->msg), "reading the audit log: %s", sqlite3_errmsg(db));
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* A batch's commands are in its record (schema 13): its row is an index of it, and must
	 * say what the record says (a store before 13 has no audit_seq: nothing to check). */
	if (sqlite3_prepare_v2(db, "SELECT b.id, b.audit_seq FROM command_batches b LEFT JOIN audit a"
			       " ON a.seq = b.audit_seq WHERE b.audit_seq IS NOT NULL AND (a.seq IS NULL OR"
			       " a.kind IS NOT 'commands' OR a.ref_id IS NOT b.id OR"
			       " json_extract(a.body, '$.kind') IS NOT b.kind OR"
			       " json_extract(a.body, '$.first_id') IS NOT b.first_id OR"
			       " json_extract(a.body, '$.last_id') IS NOT b.last_id OR"
			       " json_extract(a.body, '$.first_at_us') IS NOT b.first_at_us OR"
			       " json_extract(a.body, '$.last_at_us') IS NOT b.last_at_us OR"
			       " json_extract(a.body, '$.conns') IS NOT b.conns OR"
			       " json_extract(a.body, '$.decisions') IS NOT b.decisions OR b.rows != '')"
			       " ORDER BY b.audit_seq", -1, &st, NULL) == SQLITE_OK) {
		if ((r = sqlite3_step(st)) == SQLITE_ROW)
			problem(&p, (int64_t)sqlite3_column_int64(st, 1), "batch %" PRId64 " does not match its record %"
				PRId64 " (edited?)", (int64_t)sqlite3_column_int64(st, 0), (int64_t)sqlite3_column_int64(st, 1));
		else if (r != SQLITE_DONE) {
			snprintf(v->msg, sizeof(v->msg), "reading the batches: %s", sqlite3_errmsg(db));
			goto out;
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	if (sqlite3_prepare_v2(db, "SELECT c.seq, c.hash, c.at_us, c.signature, a.hash FROM audit_checkpoints c"
			       " LEFT JOIN audit a ON a.seq = c.seq ORDER BY c.seq", -1, &st,
			       NULL) != SQLITE_OK) {
		snprintf(v->msg, sizeof(v->msg), "reading checkpoints: %s", sqlite3_errmsg(db));
		goto out;
	}
	pk = read_pub(pubkey_path);
	/* The daemon signs the head whenever STORE_CHECKPOINT_RECORDS records have gone unsigned
	 * (in the transaction that appends them), so no run of that many records lacks a
	 * checkpoint: where one does, checkpoints were deleted (and the chain under them, which
	 * only they hold to a key, may have been rewritten). */
	signed_to = v->first_seq - 1;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(st, 0);
		const char *chash = (const char *)sqlite3_column_text(st, 1);
		const char *ahash = (const char *)sqlite3_column_text(st, 4);

		if (v->records && seq >= v->first_seq && seq <= v->last_seq) {
			if (seq - signed_to > STORE_CHECKPOINT_RECORDS)
				problem(&p, signed_to + 1, "records %" PRId64 "..%" PRId64 " have no signed "
					"checkpoint, and one is made every %d records (checkpoints deleted?)",
					signed_to + 1, seq - 1, STORE_CHECKPOINT_RECORDS);
			signed_to = seq;
			signed_at = sqlite3_column_int64(st, 2);
		}

		if (!pk) {
			snprintf(v->msg, sizeof(v->msg), "no Ed25519 public key in %.400s: cannot check the "
				 "checkpoint signatures", pubkey_path);
			goto out;
		}
		v->checkpoints++;
		if (!sig_ok(pk, seq, chash, sqlite3_column_int64(st, 2), (const char *)sqlite3_column_text(st, 3)))
			problem(&p, seq, "checkpoint at %" PRId64 ": bad signature (forged?)", seq);
		else if (!ahash)
			problem(&p, seq > v->last_seq ? v->last_seq + 1 : seq, "record %" PRId64
				" missing (deleted?): checkpoint at %" PRId64 " signed the chain up to it",
				seq > v->last_seq ? v->last_seq + 1 : seq, seq);
		else if (strcmp(ahash, chash) != 0)
			problem(&p, seq, "checkpoint at %" PRId64 ": the chain up to it differs from what was "
				"signed (rewritten?)", seq);
	}
	if (r != SQLITE_DONE) {
		snprintf(v->msg, sizeof(v->msg), "reading checkpoints: %s", sqlite3_errmsg(db));
		goto out;
	}
	/* The records after the last checkpoint: fewer than that many unless some were deleted
	 * (a crash leaves up to STORE_CHECKPOINT_RECORDS - 1 unsigned: signed at the next start). */
	if (v->records && v->last_seq - signed_to >= STORE_CHECKPOINT_RECORDS)
		problem(&p, signed_to + 1, "records %" PRId64 "..%" PRId64 " have no signed checkpoint, and one "
			"is made every %d records (checkpoints deleted?)", signed_to + 1, v->last_seq,
			STORE_CHECKPOINT_RECORDS);
	v->signed_to = v->records ? signed_to : 0;
	v->signed_at_us = signed_at;
	if (p.seq) {
		v->first_bad = p.seq;
		snprintf(v->msg, sizeof(v->msg), "%s", p.msg);
		rc = 1;
	} else {
		snprintf(v->msg, sizeof(v->msg), "%" PRId64 " records (%" PRId64 "..%" PRId64 ") chained, %"
			 PRId64 " checkpoints signed; %s", v->records, v->first_seq, v->last_seq, v->checkpoints,
			 v->last_seq == signed_to ? "every record signed" : "");
		if (v->records && v->last_seq != signed_to) {
			size_t n = strlen(v->msg);

			if (signed_to >= v->first_seq)
				snprintf(v->msg + n, sizeof(v->msg) - n, "signed up to record %" PRId64 "; the %" PRId64
					 " after it are chained but not signed yet (they could be cut unseen)",
					 signed_to, v->last_seq - signed_to);
			else
				snprintf(v->msg + n, sizeof(v->msg) - n, "none signed yet (they could be cut or "
					 "rewritten unseen)");
		}
		rc = 0;
	}
out:
	sqlite3_finalize(st);
	if (db)
		(void)sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	EVP_PKEY_free(pk);
	return rc;
}
