/* PostgreSQL sessions: agent-side startup and TLS, upstream login, per-statement decisions, ordered replies, audit. */
#include <airlock/pgproxy.h>
#include <airlock/approval.h>
#include <airlock/pg.h>
#include <airlock/pg_auth.h>
#include <airlock/reason.h>

#include "agent_who.h"
#include "agent_gone.h"
#include "sess_end.h"
#include "sock_out.h"
#include "tls_stream.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/queue.h>
#include <unistd.h>

#define MAX_PREPARED       4096    /* named statements + portals a session may hold */
#define MAX_NAMED_BYTES    (64u << 20) /* and the bytes they hold (texts, Bind values) */
#define MAX_BATCH_BYTES    (64u << 20) /* extended-protocol messages held until their Sync */
/* The longest SQL text Airlock classifies: libpg_query takes about a second a megabyte, in the
 * event loop every session shares (pg_max_message bounds a message, up to 1 GiB). */
#define MAX_SQL_BYTES      (1u << 20)
#define PARAM_AUDIT_MAX    1024    /* bytes of one bind parameter kept in the audit */
#define UP_MAX_MESSAGE     (1u << 30)

struct pgs;

/* What a reply-queue entry waits for, or emits when it reaches the head. */
enum qtype {
	Q_OUTCOME,      /* one completion (C, I, s or E) from upstream for a statement */
	Q_READY,        /* upstream's ReadyForQuery closing a unit */
	Q_READY_SWALLOW,/* the same, for a Sync we injected: not passed on */
	Q_SYNTH,        /* bytes we answer with ourselves */
	Q_SYNTH_READY,  /* a ReadyForQuery with the current transaction status */
	Q_NAMED,        /* ParseComplete, BindComplete or CloseComplete for a named-object change */
};

/*
 * A change to the session's prepared statements or portals that takes effect when the server
 * confirms it (ParseComplete, BindComplete, CloseComplete, or the CommandComplete of a
 * PREPARE, DEALLOCATE or DISCARD ALL), and is undone if it fails or never runs.
 */
enum nop {
	N_NONE,
	N_CREATE,       /* Parse, Bind, PREPARE: the entry with serial is what the server has */
	N_FORGET,       /* Close, DEALLOCATE name: the entry with serial is gone */
	N_FORGET_STMTS, /* DEALLOCATE ALL: every statement up to serial is gone */
	N_FORGET_ALL,   /* DISCARD ALL: every statement and portal up to serial is gone */
};

struct qent {
	TAILQ_ENTRY(qent) link;
	enum qtype type;
	int64_t stmt;           /* Q_OUTCOME: statements row */
	int64_t start_us;
	int64_t rows;
	struct pg_buf bytes;    /* Q_SYNTH */
	enum nop nop;           /* Q_NAMED, or a Q_OUTCOME of PREPARE/DEALLOCATE/DISCARD ALL */
	char nwhat;             /* 'S' statement, 'P' portal */
	char *nname;
	uint64_t nserial;
};
TAILQ_HEAD(qhead, qent);

/*
 * A prepared statement or portal the agent named, with what it runs: each Execute of it (and
 * each SQL EXECUTE of a statement) is decided by that, not just its Parse. One made before the
 * server confirmed it keeps the one it replaced as its shadow until then: whichever the server
 * ends up with is in the chain, and an Execute that cannot tell which of them runs is refused.
 */
struct named {
	LIST_ENTRY(named) link;
	char portal;            /* 'S' statement, 'P' portal */
	char *name;
	uint64_t serial;        /* this creation (Q_NAMED names it) */
	uint64_t batch;         /* the unit up to a Sync that made it (pgs.batch_no) */
	int confirmed;          /* the server said it has it */
	struct named *shadow;   /* the older one it replaces, until confirmed */
	int known;              /* stmt holds what it runs (else an Execute of it is refused) */
	int empty;              /* an empty query */
	struct pg_stmt stmt;    /* its classification (text: the statement) */
	char *relations;        /* JSON */
	char *params;           /* portal: JSON of the bound parameters */
	uint32_t *types;        /* statement: the parameter types its Parse declared (0: none) */
	uint16_t n_types;
	size_t bytes;           /* counted in pgs.named_bytes */
};
LIST_HEAD(nlist, named);

enum pstate {
	P_STARTUP,              /* reading the agent's startup packets */
	P_UP_CONNECT,           /* connecting upstream */
	P_UP_SSL,               /* SSLRequest sent upstream, waiting for S/N */
	P_UP_AUTH,              /* StartupMessage sent, authenticating */
	P_READY,                /* relaying and deciding */
	P_CLOSING,              /* flushing a last message to the agent */
};

struct pgs {
	LIST_ENTRY(pgs) link;
	struct pgproxy *p;
	const struct al_resource *res;
	const struct al_secret *cred;
	int64_t row;
	struct bufferevent *agent, *up;
	enum pstate state;
	struct al_addr dst;
	uint16_t dst_port;
	struct pg_buf startup;  /* the StartupMessage we send upstream */
	struct pg_scram *scram;
	uint32_t up_pid, up_key, my_pid, my_key;
	char txn;               /* last ReadyForQuery status */
	uint64_t bytes_agent, bytes_up;
	int64_t seq;
	struct qhead q;
	struct evbuffer *batch; /* extended-protocol messages held until Sync/Flush */
	struct qhead batch_outcomes;
	int batch_denied;
	char deny_msg[640];
	char deny_state[6];     /* the SQLSTATE deny_msg goes with */
	int skip_until_sync;
	int copy_in;            /* the server waits for COPY data (CopyInResponse until CopyDone/Fail) */
	int up_failed;          /* an ErrorResponse since the last ReadyForQuery: the server skips to a Sync */
	int mid_flow;           /* forwarded extended messages not yet closed by a Sync */
	struct nlist named;
	size_t n_named;
	size_t named_bytes;     /* what the named objects hold (MAX_NAMED_BYTES) */
	struct event *timer;    /* the login's deadline (on_login_timeout), then sess_end's */
	unsigned int login_ms;  /* pg_login_timeout when the session began */
	int agent_tls;
	/* who the agent is (for rules and reviewers) */
	struct agent_who who;           /* the agent (agent_who.c) */
	/* review of the query or batch being built: what runs in it, for reviewers and grants */
	const struct al_rule *review_rule;      /* the first rule that asked for review */
	char review_kind[32];
	int64_t review_stmt;
	int batch_review;       /* the batch being built needs review */
	struct al_buf rv_text;  /* every statement that runs (Executes with their parameters) */
	struct al_buf rv_fp;    /* their fingerprints, '+'-joined: what a grant matches */
	uint64_t named_serial;
	uint64_t batch_no;      /* counts Syncs and simple queries: an error skips only to the Sync */
	/* parked: a request is pending and these exact bytes wait for it */
	int64_t parked;
	struct evbuffer *held;
	char held_term;         /* 'Q' simple query, 'S'/'H' an extended batch */
	struct agent_gone gone; /* while parked: notices the agent hanging up */
	struct sess_end end;    /* how it ends (sess_end.c) */
	/* session recording (store_rec_add), bounded by cfg->record_limit */
	int64_t rec_seq;
	size_t rec_bytes;
	int rec_done;
};

struct up_ctx {
	const struct al_resource *res;
	SSL_CTX *ctx;
};

struct pgproxy {
	struct event_base *base;
	const struct al_config *cfg;
	struct store *store;
	struct tls_ca *ca;
	const struct al_secrets *secrets;
	struct approval *approval;
	LIST_HEAD(, pgs) sessions;
	struct up_ctx *ups;     /* one client context per resource, made on first use */
	size_t n_ups;
	struct pg_cache *cache;
	struct al_buf rec;      /* a message's summary for the recording (rec_msg), reused */
	struct pgproxy_stats stats;
};

static void pgs_free(struct pgs *s);
static void pgs_free_v(void *s);
static void pgs_close(struct pgs *s, enum al_reason reason, const char *sqlstate, const char *fmt, ...)
	AL_PRINTF(4, 5);
static void agent_read(struct bufferevent *bev, void *arg);
static void agent_write(struct bufferevent *bev, void *arg);
static void agent_event(struct bufferevent *bev, short what, void *arg);
static void up_read(struct bufferevent *bev, void *arg);
static void up_write(struct bufferevent *bev, void *arg);

/* ---- audit -------------------------------------------------------------------------------- */

/* Audit rows join the daemon's group-commit batch (see store.h). */
static void audit_batch(struct pgproxy *p)
{
	if (store_batch_begin(p->store) < 0)
		al_warn("pg: audit rows are committed one by one");
}

static int64_t audit_stmt(struct pgs *s, const char *protocol, const char *text, const char *kind,
			  const char *fp, const char *relations, int unbounded, const char *params,
			  const char *decision, const char *rule)
{
	struct store_stmt t = {
		.conn_id = s->row, .seq = ++s->seq, .at_us = al_now_us(), .protocol = protocol,
		.text = text, .kind = kind, .fingerprint = fp, .relations_json = relations,
		.unbounded_write = unbounded, .params_json = params,
		.decision = decision, .rule = rule,
	};
	int64_t id = 0;

	audit_batch(s->p);
	if (store_stmt_add(s->p->store, &t, &id) < 0)
		al_err("pg: could not record a statement");
	s->p->stats.statements++;
	if (strcmp(decision, "deny") == 0)
		s->p->stats.denied++;
	return id;
}

#define REC_VALUE_MAX 256     /* bytes of one DataRow value kept in a recording */

/*
 * Records one message of the session (dir "F" from the agent, "B" from
 * the server, "A" our own answer). Joins the group-commit batch; a
 * session over record_limit gets one "truncated" row and no more.
 */
static void rec_msg(struct pgs *s, const char *dir, const struct pg_msg *m, int backend)
{
	size_t limit = s->p->cfg->record_limit, len;
	char type[2] = { (char)m->type, '\0' };
	struct al_buf *txt = &s->p->rec;

	if (s->rec_done || s->row <= 0 || limit == 0)
		return;
	al_buf_clear(txt);
	if (pg_summary_add(txt, m, backend, REC_VALUE_MAX) < 0)
		return;
	len = txt->len + 8;
	if (s->rec_bytes + len > limit) {
		s->rec_done = 1;
		if (store_rec_add(s->p->store, s->row, ++s->rec_seq, al_now_us(), "A", "truncated",
				  "record_limit reached", 20) < 0)
			al_err("pg session %lld: could not record", (long long)s->row);
		return;
	}
	s->rec_bytes += len;
	if (store_rec_add(s->p->store, s->row, ++s->rec_seq, al_now_us(), dir, type, txt->p, txt->len) < 0)
		al_err("pg session %lld: could not record a message", (long long)s->row);
	/* one huge summary does not stay allocated for the proxy's life */
	if (txt->cap > 65536) {
		free(txt->p);
		*txt = (struct al_buf){ 0 };
	}
}

static void audit_outcome(struct pgs *s, struct qent *e, const char *tag, const char *sqlstate,
			  const char *error)
{
	struct store_stmt_outcome o = {
		.tag = tag, .sqlstate = sqlstate, .error = error, .rows = e->rows,
		.duration_us = al_mono_us() - e->start_us,
	};

	if (e->stmt <= 0)
		return;
	audit_batch(s->p);
	if (store_stmt_outcome(s->p->store, e->stmt, &o) < 0)
		al_err("pg: could not record an outcome");
}

/* ---- policy (the resource's rule list) ---------------------------------------------------- */

/* The rule that decides this statement from this agent (config_decide_stmt); NULL: allowed. */
static const struct al_rule *decide(const struct pgs *s, const struct pg_stmt *st)
{
	struct al_subject who = { 0 };

	agent_who_subject(&s->who, &who);
	return config_decide_stmt(s->res, st, &who);
}

/* The relations as a JSON array (written per statement: no jansson tree); NULL without memory. */
static char *relations_json(const struct pg_stmt *st)
{
	struct al_buf b = { 0 };

	al_buf_add(&b, "[", 1);
	for (size_t i = 0; i < st->n_relations; i++) {
		al_buf_add(&b, ",", i > 0);
		al_buf_json_str(&b, st->relations[i], strlen(st->relations[i]));
	}
	al_buf_add(&b, "]", 1);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* ---- reply queue ---------------------------------------------------------------------------- */

static struct qent *qent_new(enum qtype t)
{
	struct qent *e = calloc(1, sizeof(*e));

	if (e) {
		e->type = t;
		e->rows = -1;
		pg_buf_init(&e->bytes, 0);
	}
	return e;
}

static void qent_free(struct qent *e)
{
	pg_buf_free(&e->bytes);
	free(e->nname);
	free(e);
}

static void q_clear(struct qhead *q)
{
	struct qent *e;

	while ((e = TAILQ_FIRST(q)) != NULL) {
		TAILQ_REMOVE(q, e, link);
		qent_free(e);
	}
}

/* Emits our own replies that have reached the head of the queue. */
static void q_drain(struct pgs *s)
{
	struct qent *e;

	while ((e = TAILQ_FIRST(&s->q)) != NULL) {
		if (e->type == Q_SYNTH) {
			struct pg_msg m;

			bufferevent_write(s->agent, e->bytes.data, e->bytes.len);
			if (pg_frame_backend(e->bytes.data, e->bytes.len, e->bytes.len, &m) > 0)
				rec_msg(s, "A", &m, 1);
		} else if (e->type == Q_SYNTH_READY) {
			struct pg_buf b;

			pg_buf_init(&b, 0);
			pg_build_ready(&b, s->txn ? s->txn : 'I');
			if (pg_buf_ok(&b))
				bufferevent_write(s->agent, b.data, b.len);
			pg_buf_free(&b);
		} else {
			return;
		}
		TAILQ_REMOVE(&s->q, e, link);
		qent_free(e);
	}
}

static int q_push(struct pgs *s, enum qtype t)
{
	struct qent *e = qent_new(t);

	if (!e)
		return -1;
	TAILQ_INSERT_TAIL(&s->q, e, link);
	return 0;
}

/* Queues an ErrorResponse we answer with ourselves, in reply order. */
static int q_error(struct pgs *s, const char *sqlstate, const char *msg)
{
	struct qent *e = qent_new(Q_SYNTH);

	if (!e)
		return -1;
	pg_build_error(&e->bytes, "ERROR", sqlstate, msg);
	if (!pg_buf_ok(&e->bytes)) {
		qent_free(e);
		return -1;
	}
	TAILQ_INSERT_TAIL(&s->q, e, link);
	return 0;
}

/* ---- closing -------------------------------------------------------------------------------- */

/*
 * Ends a session and records why. With a sqlstate, the agent first gets a
 * FATAL ErrorResponse carrying the message (flushed before the close).
 */
static void pgs_close(struct pgs *s, enum al_reason reason, const char *sqlstate, const char *fmt, ...)
{
	struct store_conn_end e = { 0 };
	char detail[512] = "";
	va_list ap;

	if (s->state == P_CLOSING)
		return;
	if (s->parked > 0 && s->p->approval)
		approval_cancel(s->p->approval, s->parked);
	s->parked = 0;
	agent_gone_stop(&s->gone);
	if (s->p->approval)
		approval_unwatch(s->p->approval, s);
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof(detail), fmt, ap);
		va_end(ap);
	}
	e.closed_us = al_now_us();
	e.bytes_up = s->bytes_agent;
	e.bytes_down = s->bytes_up;
	e.reason = reason;
	e.detail = detail[0] ? detail : NULL;
	audit_batch(s->p);
	if (s->row > 0 && store_conn_close(s->p->store, s->row, &e) < 0)
		al_err("pg session %lld: could not record its end", (long long)s->row);
	s->state = P_CLOSING;
	if (s->up) {
		bufferevent_free(s->up);
		s->up = NULL;
	}
	if (sqlstate && s->agent) {
		struct pg_buf b;
		char msg[600];

		snprintf(msg, sizeof(msg), "airlock: %s", detail);
		pg_buf_init(&b, 0);
		pg_build_error(&b, "FATAL", sqlstate, msg);
		if (pg_buf_ok(&b)) {
			sess_end_send_last(&s->end, b.data, b.len, 2);
			pg_buf_free(&b);
			return;
		}
		pg_buf_free(&b);
	}
	sess_end_reap(&s->end);
}

static void named_free(struct named *n)
{
	free(n->name);
	pg_stmt_clear(&n->stmt);
	free(n->relations);
	free(n->params);
	free(n->types);
	free(n);
}

/* Frees n and the shadows behind it. */
static void named_free_chain(struct pgs *s, struct named *n)
{
	while (n) {
		struct named *next = n->shadow;

		s->named_bytes -= n->bytes;
		named_free(n);
		s->n_named--;
		n = next;
	}
}

static void pgs_free(struct pgs *s)
{
	struct named *n;

	LIST_REMOVE(s, link);
	s->p->stats.live--;
	if (s->agent)
		bufferevent_free(s->agent);
	if (s->up)
		bufferevent_free(s->up);
	if (s->timer)
		event_free(s->timer);
	if (s->batch)
		evbuffer_free(s->batch);
	q_clear(&s->q);
	q_clear(&s->batch_outcomes);
	while ((n = LIST_FIRST(&s->named)) != NULL) {
		LIST_REMOVE(n, link);
		named_free_chain(s, n);
	}
	pg_buf_free(&s->startup);
	pg_scram_free(s->scram);
	if (s->held)
		evbuffer_free(s->held);
	agent_gone_stop(&s->gone);
	free(s->rv_text.p);
	free(s->rv_fp.p);
	agent_who_free(&s->who);
	free(s);
}

static void pgs_free_v(void *s)
{
	pgs_free(s);
}

/* ---- named statements and portals ---------------------------------------------------------- */

static struct named *named_find(struct pgs *s, char what, const char *name)
{
	struct named *n;

	LIST_FOREACH(n, &s->named, link)
		if (n->portal == what && strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

/*
 * What an Execute (or EXECUTE) of this name runs, as far as we can tell: the newest creation,
 * unless an older one may still be what the server has (a replacement made in an earlier
 * batch, not confirmed yet); then NULL, as for a name we never saw made.
 */
static struct named *named_current(struct pgs *s, char what, const char *name)
{
	struct named *n = named_find(s, what, name);

	if (!n || (n->shadow && n->batch != s->batch_no))
		return NULL;
	return n;
}

/*
 * A new creation of (what, name), before the server confirms it: it goes in front of the
 * chain, which keeps the older creations the server may still have. NULL: out of memory, or
 * more than MAX_PREPARED in the session.
 */
static struct named *named_put(struct pgs *s, char what, const char *name)
{
	struct named *old = named_find(s, what, name), *n;

	if (s->n_named >= MAX_PREPARED || s->named_bytes >= MAX_NAMED_BYTES)
		return NULL;
	n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name))) {
		free(n);
		return NULL;
	}
	n->portal = what;
	n->serial = ++s->named_serial;
	n->batch = s->batch_no;
	if (old) {
		LIST_REMOVE(old, link);
		n->shadow = old;
	}
	LIST_INSERT_HEAD(&s->named, n, link);
	s->n_named++;
	return n;
}

/* The entry of creation serial in (what, name)'s chain; *newer: the one in front of it. */
static struct named *chain_find(struct pgs *s, char what, const char *name, uint64_t serial,
				struct named **newer)
{
	struct named *n = named_find(s, what, name);

	*newer = NULL;
	for (; n; *newer = n, n = n->shadow)
		if (n->serial == serial)
			return n;
	return NULL;
}

/* Takes n out of its chain and frees it (its shadows stay in the chain). */
static void chain_remove(struct pgs *s, struct named *n, struct named *newer)
{
	if (newer) {
		newer->shadow = n->shadow;
	} else {
		LIST_REMOVE(n, link);
		if (n->shadow)
			LIST_INSERT_HEAD(&s->named, n->shadow, link);
	}
	n->shadow = NULL;
	s->named_bytes -= n->bytes;
	named_free(n);
	s->n_named--;
}

/* The transaction ended (ReadyForQuery idle, nothing more owed): the server dropped every
 * portal, so do we (what they held counts against the session no more). */
static void named_forget_portals(struct pgs *s)
{
	struct named *h, *next;

	for (h = LIST_FIRST(&s->named); h; h = next) {
		next = LIST_NEXT(h, link);
		if (h->portal != 'P')
			continue;
		LIST_REMOVE(h, link);
		named_free_chain(s, h);
	}
}

/* DEALLOCATE ALL / DISCARD ALL: every statement (and portal, with portals) made up to serial. */
static void named_forget_upto(struct pgs *s, int portals, uint64_t serial)
{
	struct named *h, *next;

	for (h = LIST_FIRST(&s->named); h; h = next) {
		struct named *n = h, *newer = NULL, *after;

		next = LIST_NEXT(h, link);
		if (n->portal == 'P' && !portals)
			continue;
		while (n) {
			after = n->shadow;
			if (n->serial <= serial)
				chain_remove(s, n, newer);
			else
				newer = n;
			n = after;
		}
	}
}

/* Takes a change to the named objects into account once the server has answered it: ok, it
 * took effect; else it failed or never ran. */
static void named_settle(struct pgs *s, const struct qent *e, int ok)
{
	struct named *n, *newer;

	switch (e->nop) {
	case N_NONE:
		return;
	case N_CREATE:
		n = chain_find(s, e->nwhat, e->nname, e->nserial, &newer);
		if (!n)
			return;
		if (!ok) {
			chain_remove(s, n, newer);
			return;
		}
		/* The server has this one: any older one is gone there. */
		n->confirmed = 1;
		named_free_chain(s, n->shadow);
		n->shadow = NULL;
		return;
	case N_FORGET:
		if (ok && (n = chain_find(s, e->nwhat, e->nname, e->nserial, &newer)) != NULL)
			chain_remove(s, n, newer);
		return;
	case N_FORGET_STMTS:
	case N_FORGET_ALL:
		if (ok)
			named_forget_upto(s, e->nop == N_FORGET_ALL, e->nserial);
		return;
	}
}

/* Marks e as carrying a change to (what, name) that named_settle applies. -1: out of memory. */
static int qent_named(struct qent *e, enum nop op, char what, const char *name, uint64_t serial)
{
	e->nop = op;
	e->nwhat = what;
	e->nserial = serial;
	if (name && !(e->nname = strdup(name)))
		return -1;
	return 0;
}

/* ---- sending -------------------------------------------------------------------------------- */

static void send_agent_buf(struct pgs *s, struct pg_buf *b)
{
	if (pg_buf_ok(b))
		bufferevent_write(s->agent, b->data, b->len);
}

/* ---- statement decisions -------------------------------------------------------------------- */

/* The review state starts afresh for the next query or batch. */
static void review_reset(struct pgs *s)
{
	s->review_rule = NULL;
	s->review_kind[0] = '\0';
	s->review_stmt = 0;
	s->batch_review = 0;
	al_buf_clear(&s->rv_text);
	al_buf_clear(&s->rv_fp);
}

/* One statement that runs in what may be held: its text (and parameters) for reviewers, its
 * fingerprint for grants; rule asked for review (NULL: allowed). */
static void review_add(struct pgs *s, const char *text, const char *params, const char *fp,
		       const struct al_rule *rule, const char *kind, int64_t stmt_id)
{
	if (s->rv_text.len)
		al_buf_str(&s->rv_text, "\n\n");
	al_buf_str(&s->rv_text, text);
	if (params && strcmp(params, "[]") != 0) {
		/* JSON: a parameter cannot start a line of its own in what reviewers read */
		al_buf_str(&s->rv_text, "\n-- parameters $1...: ");
		al_buf_str(&s->rv_text, params);
	}
	if (s->rv_fp.len)
		al_buf_add(&s->rv_fp, "+", 1);
	al_buf_str(&s->rv_fp, fp && *fp ? fp : "-");
	if (rule && !s->review_rule) {
		s->review_rule = rule;
		snprintf(s->review_kind, sizeof(s->review_kind), "%s", kind);
		s->review_stmt = stmt_id;
	}
}

static void set_deny(struct pgs *s, const struct al_rule *r, const char *kind, int64_t id)
{
	if (r == &config_unsafe_setting_rule) {
		snprintf(s->deny_msg, sizeof(s->deny_msg), "airlock: refused: the statement changes how "
			 "the server reads SQL (standard_conforming_strings, client_encoding, backslash_quote), "
			 "and Airlock must read every statement as the server does (request %lld)", (long long)id);
		return;
	}
	snprintf(s->deny_msg, sizeof(s->deny_msg),
		 "airlock: denied by rule '%s' (line %d) for %s on resource %s (request %lld)",
		 r->text, r->line, kind, s->res->name, (long long)id);
}

/* The store cannot take more: nothing runs (disk_full). 0 if it can. */
static int store_full_deny(struct pgs *s)
{
	if (store_accepting(s->p->store))
		return 0;
	snprintf(s->deny_state, sizeof(s->deny_state), "53100");
	snprintf(s->deny_msg, sizeof(s->deny_msg), "airlock: the audit store is full: no statement "
		 "runs until it has room");
	s->p->stats.denied++;
	return -1;
}

/*
 * What an SQL EXECUTE runs: the statement its name was PREPAREd (or Parsed) with. NULL, with
 * deny_msg set, when we cannot tell (never seen made, or being made again unconfirmed).
 */
static const struct named *execute_target(struct pgs *s, const struct pg_stmt *st)
{
	const struct named *n = st->prepared_name ? named_current(s, 'S', st->prepared_name) : NULL;

	if (n && n->known)
		return n;
	snprintf(s->deny_msg, sizeof(s->deny_msg), "airlock: EXECUTE %s: Airlock did not see that "
		 "statement prepared (or it is being prepared again): it is not run",
		 st->prepared_name ? st->prepared_name : "");
	return NULL;
}

/*
 * Classifies sql (through the cache): 0, or -1 when Airlock cannot read it, with err for the
 * agent and the audit row's text and reason in *atext and *why (a text over MAX_SQL_BYTES is
 * not read at all, and only its start is kept).
 */
static int classify(struct pgs *s, const char *sql, struct pg_stmt_list *out, char *err, size_t errlen,
		    char head[256], const char **atext, const char **why)
{
	size_t n = strlen(sql);

	*atext = sql;
	*why = "unparseable";
	if (n <= MAX_SQL_BYTES)
		return pg_classify_cached(s->p->cache, sql, out, err, errlen);
	snprintf(head, 256, "%.200s ... (%zu bytes)", sql, n);
	*atext = head;
	*why = "too long";
	snprintf(s->deny_state, sizeof(s->deny_state), "54000");
	snprintf(err, errlen, "a statement of %zu bytes is over the %u KiB Airlock reads: split it, or "
		 "load data with COPY", n, MAX_SQL_BYTES >> 10);
	return -1;
}

/*
 * What a statement runs, as rules decide it: an EXECUTE (or EXPLAIN EXECUTE) runs its prepared
 * statement, a FETCH or MOVE from a protocol-level portal runs what that portal is bound to (an
 * SQL cursor was decided at its DECLARE, which only takes a query); anything else itself. NULL,
 * with deny_msg set, when Airlock cannot tell.
 */
static const struct pg_stmt *runs(struct pgs *s, const struct pg_stmt *st)
{
	for (int depth = 0; depth < 4; depth++) {
		const struct named *n;

		if (st->prep_op == PG_PREP_EXECUTE) {
			if (!(n = execute_target(s, st)))
				return NULL;
		} else if (st->portal_name) {
			n = named_current(s, 'P', st->portal_name);
			if (!n)
				return st;
			if (!n->known) {
				snprintf(s->deny_msg, sizeof(s->deny_msg), "airlock: FETCH from portal \"%.100s\": "
					 "Airlock did not see what it runs: it is not run", st->portal_name);
				return NULL;
			}
		} else {
			return st;
		}
		if (n->empty)
			return st;
		st = &n->stmt;
	}
	snprintf(s->deny_msg, sizeof(s->deny_msg), "airlock: a statement that runs a statement that "
		 "runs ... (more than 4 deep): it is not run");
	return NULL;
}

/* What a grant for one statement covers: its fingerprint, or where the fingerprint hides what
 * decides its effect (grant_exact: a DO body, CALL arguments, a SET value), the sha256 of its
 * exact text, of what it was sent as (an EXECUTE's arguments) and of its Bind values. */
static const char *grant_key(struct pgs *s, const struct pg_stmt *e, const char *sent, const char *params,
			     char out[70])
{
	struct al_buf b = { 0 };

	if (!e->grant_exact)
		return e->fingerprint;
	al_buf_str(&b, e->text ? e->text : "");
	al_buf_add(&b, "", 1);
	al_buf_str(&b, sent ? sent : "");
	al_buf_add(&b, "", 1);
	al_buf_str(&b, params ? params : "");
	memcpy(out, "=", 2);
	if (b.oom || al_sha256_hex(b.p, b.len, out + 1) < 0) {
		s->rv_fp.oom = 1;       /* no key: the batch is refused as out of memory */
		out[0] = '\0';
	}
	free(b.p);
	return out;
}

/*
 * Classifies a simple Query string and decides it: one statements row per statement, the
 * strictest action over them (deny, then review, then allow). An EXECUTE is decided as the
 * statement it runs. Returns 1 if every statement is allowed, 2 if it needs review (rv_text
 * and rv_fp say what), 0 if any is denied, -1 if it cannot be parsed (denied too); deny_msg
 * then says why.
 */
__attribute__((noinline)) /* bench/insn.sh counts statements by its calls */
static int decide_query(struct pgs *s, const char *sql, struct pg_stmt_list *out)
{
	char err[400];
	const struct al_rule *deny_rule = NULL;
	const struct pg_stmt *few[4] = { 0 }, **eff = few;
	const char *decision, *deny_kind = "", *atext, *why;
	char head[256];
	size_t deny_i = 0;
	int64_t deny_id = 0;
	int ret = 1, unknown = -1;

	if (store_full_deny(s) < 0)
		return 0;
	snprintf(s->deny_state, sizeof(s->deny_state), "42501");
	if (classify(s, sql, out, err, sizeof(err), head, &atext, &why) < 0) {
		/* Fail closed: what Airlock cannot read does not run. */
		deny_id = audit_stmt(s, "simple", atext, "unparsed", NULL, "[]", 0, NULL, "deny", why);
		snprintf(s->deny_msg, sizeof(s->deny_msg), "airlock: %s (request %lld)", err,
			 (long long)deny_id);
		return -1;
	}
	if (out->n > AL_ARRAY_LEN(few) && !(eff = calloc(out->n, sizeof(*eff))))
		return -2;
	for (size_t i = 0; i < out->n; i++) {
		if (!(eff[i] = runs(s, &out->stmts[i]))) {
			unknown = (int)i;
			break;
		}
	}
	/* The strictest action over the statements. */
	for (size_t i = 0; unknown < 0 && i < out->n; i++) {
		const struct al_rule *r = decide(s, eff[i]);

		if (r && r->allow == AL_ACTION_DENY) {
			deny_rule = r;
			deny_i = i;
			deny_kind = pg_kind_name(eff[i]->kind);
			break;
		}
		if (r && r->allow == AL_ACTION_REVIEW)
			ret = 2;
	}
	if (unknown >= 0 || deny_rule)
		ret = 0;
	decision = ret == 0 ? "deny" : ret == 2 ? "review" : "allow";
	for (size_t i = 0; i < out->n; i++) {
		struct pg_stmt *st = &out->stmts[i];
		const struct pg_stmt *e = eff[i] ? eff[i] : st;
		const struct al_rule *r = unknown < 0 ? decide(s, e) : NULL;
		char *rel = relations_json(e);
		int64_t id;
		struct qent *q;

		/* With one statement denied, none of the string runs. */
		id = audit_stmt(s, "simple", st->text, pg_kind_name(e->kind), e->fingerprint, rel,
				e->unbounded_write, NULL, decision,
				(int)i == unknown ? PGPROXY_UNKNOWN_TARGET : r ? r->text : NULL);
		free(rel);
		if (ret == 0) {
			if ((int)i == unknown || (deny_rule && i == deny_i))
				deny_id = id;
			continue;
		}
		if (ret == 2) {
			char key[70];

			review_add(s, st->text, NULL, grant_key(s, e, st->text, NULL, key),
				   r && r->allow == AL_ACTION_REVIEW ? r : NULL, pg_kind_name(e->kind), id);
		}
		q = qent_new(Q_OUTCOME);
		if (!q)
			goto oom;
		q->stmt = id;
		q->start_us = al_mono_us();
		TAILQ_INSERT_TAIL(&s->batch_outcomes, q, link);
		/* What it does to the prepared statements, once the server says it did. */
		if (st->prep_op == PG_PREP_PREPARE && st->prepared_name) {
			struct named *n = named_put(s, 'S', st->prepared_name);

			if (!n || pg_stmt_copy(&n->stmt, st) < 0 ||
			    !(n->relations = relations_json(st)) ||
			    qent_named(q, N_CREATE, 'S', st->prepared_name, n->serial) < 0)
				goto oom;
			n->known = 1;
		} else if (st->prep_op == PG_PREP_DEALLOCATE && st->prepared_name) {
			const struct named *n = named_find(s, 'S', st->prepared_name);

			if (n && qent_named(q, N_FORGET, 'S', st->prepared_name, n->serial) < 0)
				goto oom;
		} else if (st->prep_op == PG_PREP_DEALLOCATE || st->prep_op == PG_PREP_DISCARD_ALL) {
			(void)qent_named(q, st->prep_op == PG_PREP_DEALLOCATE ? N_FORGET_STMTS : N_FORGET_ALL,
					 'S', NULL, s->named_serial);
		}
	}
	if (eff != few)
		free(eff);
	if (ret == 0) {
		if (unknown >= 0) {
			size_t n = strlen(s->deny_msg);

			snprintf(s->deny_msg + n, sizeof(s->deny_msg) - n, " (request %lld)", (long long)deny_id);
		} else {
			set_deny(s, deny_rule, deny_kind, deny_id);
		}
		return 0;
	}
	if (s->rv_text.oom || s->rv_fp.oom)
		return -2;
	return ret;
oom:
	if (eff != few)
		free(eff);
	return -2;
}

/* The batch's entries never ran (denied, or refused by a reviewer): statements recorded so,
 * named objects they would have made undone. */
static void outcomes_not_run(struct pgs *s, const char *why)
{
	struct qent *e;

	while ((e = TAILQ_FIRST(&s->batch_outcomes)) != NULL) {
		TAILQ_REMOVE(&s->batch_outcomes, e, link);
		if (e->type == Q_OUTCOME)
			audit_outcome(s, e, NULL, NULL, why);
		named_settle(s, e, 0);
		qent_free(e);
	}
}

/* Moves the pending outcomes of the batch into the reply queue. */
static void commit_outcomes(struct pgs *s)
{
	struct qent *e;

	while ((e = TAILQ_FIRST(&s->batch_outcomes)) != NULL) {
		TAILQ_REMOVE(&s->batch_outcomes, e, link);
		TAILQ_INSERT_TAIL(&s->q, e, link);
	}
}

/* ---- review: park, release, refuse ------------------------------------------------------- */

/* Its FIN counts as gone too: PostgreSQL clients do not half-close, they close or terminate. */
static void on_agent_gone(void *arg, enum agent_gone_what what)
{
	struct pgs *s = arg;

	pgs_close(s, AL_REASON_AGENT_RESET, NULL, "agent %s while request %lld was pending",
		  what == AGENT_GONE_FIN ? "left" : "reset its connection", (long long)s->parked);
}

static void flush_batch(struct pgs *s, char terminator);
static void agent_read(struct bufferevent *bev, void *arg);

/*
 * Hands held bytes to upstream. They have waited enough (for reviewers and
 * a durable decision): they go out now rather than on the loop's next turn
 * when the upstream is a plain socket with nothing queued ahead of them (a
 * TLS upstream is a filter over the socket and writes through it). What
 * the socket does not take now, or an error, goes the usual way.
 */
static void up_send_now(struct pgs *s, struct evbuffer *buf)
{
	evutil_socket_t fd = bufferevent_getfd(s->up);

	if (fd >= 0 && !bufferevent_get_underlying(s->up) &&
	    evbuffer_get_length(bufferevent_get_output(s->up)) == 0)
		(void)evbuffer_write(buf, fd);
	bufferevent_write_buffer(s->up, buf);
}

/* Forwards what was held (a Query, or an extended batch ending in S or H). */
static void release(struct pgs *s)
{
	if (s->held_term == 'Q') {
		up_send_now(s, s->held);
		commit_outcomes(s);
		if (q_push(s, Q_READY) < 0)
			pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
		return;
	}
	/* An extended batch: what was held is the whole batch (nothing is read
	 * while parked); flush_batch then has nothing left to send. */
	evbuffer_add_buffer(s->batch, s->held);
	s->batch_review = 0;
	up_send_now(s, s->batch);
	flush_batch(s, s->held_term);
}

/* A grant this session ran something under was revoked: the session ends. */
static void on_grant_event(void *arg, int64_t grant_id, enum approval_outcome o, const char *reason)
{
	struct pgs *s = arg;

	if (o == APPROVAL_REVOKED)
		pgs_close(s, AL_REASON_POLICY_DENY, "42501", "grant %lld was revoked: %s",
			  (long long)grant_id, reason);
}

static void on_review(void *arg, int64_t id, enum approval_outcome o, const char *reason)
{
	struct pgs *s = arg;
	struct qent *e;

	if (s->parked != id)
		return;
	s->parked = 0;
	agent_gone_stop(&s->gone);
	if (o == APPROVAL_APPROVED) {
		release(s);
	} else if (o == APPROVAL_ABORTED) {
		pgs_close(s, AL_REASON_SHUTDOWN, "57P01", "request %lld aborted: airlockd is stopping",
			  (long long)id);
		return;
	} else {
		snprintf(s->deny_state, sizeof(s->deny_state), "42501");
		snprintf(s->deny_msg, sizeof(s->deny_msg), "airlock: request %lld %s: %s", (long long)id,
			 o == APPROVAL_TIMEOUT ? "timed out" : "was denied by a reviewer",
			 reason ? reason : "");
		/* Nothing held ran: its statements get the refusal, what they would have made is undone. */
		while ((e = TAILQ_FIRST(&s->batch_outcomes)) != NULL) {
			TAILQ_REMOVE(&s->batch_outcomes, e, link);
			if (e->type == Q_OUTCOME)
				audit_outcome(s, e, NULL, "42501", s->deny_msg);
			named_settle(s, e, 0);
			qent_free(e);
		}
		if (s->held_term == 'Q') {
			evbuffer_drain(s->held, evbuffer_get_length(s->held));
			if (q_error(s, "42501", s->deny_msg) < 0 || q_push(s, Q_SYNTH_READY) < 0) {
				pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
				return;
			}
			q_drain(s);
		} else {
			evbuffer_drain(s->held, evbuffer_get_length(s->held));
			s->batch_review = 0;
			s->batch_denied = 1;
			flush_batch(s, s->held_term);
		}
	}
	if (s->state != P_READY)
		return;
	bev_read_on(s->agent);
	/* What the agent sent while we waited is still in the input buffer. */
	agent_read(s->agent, s);
}

/*
 * A command that needs review, already in s->held: run it now if a live
 * grant covers it, else store a request for exactly these bytes and stop
 * reading from the agent until reviewers decide.
 */
static void park(struct pgs *s, char term)
{
	struct approval_req q = { 0 };
	int64_t grant, id;

	s->held_term = term;
	if (s->rv_text.oom || s->rv_fp.oom) {
		pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
		return;
	}
	q.conn_id = s->row;
	q.stmt_id = s->review_stmt;
	agent_who_request(&s->who, &q);
	q.resource = s->res->name;
	q.fingerprint = s->rv_fp.p ? s->rv_fp.p : "";
	grant = s->p->approval ? approval_grant_for(s->p->approval, &q) : 0;
	if (grant > 0) {
		if (approval_watch_grant(s->p->approval, grant, on_grant_event, s) < 0) {
			pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
			return;
		}
		release(s);
		return;
	}
	q.protocol = "postgres";
	q.text = s->rv_text.p ? s->rv_text.p : "";
	q.kind = s->review_kind;
	q.bytes = evbuffer_pullup(s->held, -1);
	q.len = evbuffer_get_length(s->held);
	q.rule = s->review_rule;
	id = s->p->approval ? approval_submit(s->p->approval, &q, on_review, s) : -1;
	if (id < 0) {
		/* No request, no run: fail closed. */
		s->parked = -1;
		on_review(s, -1, APPROVAL_DENIED, "the review request could not be stored");
		return;
	}
	s->parked = id;
	bufferevent_disable(s->agent, EV_READ);
	/* Not reading, yet an agent that hangs up must not leave its request
	 * pending (or runnable): watch the socket for the peer closing or resetting. */
	if (agent_gone_watch(&s->gone, s->p->base, bufferevent_getfd(s->agent), on_agent_gone, s) < 0)
		al_warn("pg session %lld: an agent that leaves will not be noticed before request %lld "
			"is decided", (long long)s->row, (long long)id);
}

static void simple_query(struct pgs *s, const struct pg_msg *m, const uint8_t *raw)
{
	struct pg_stmt_list l = { 0 };
	const char *sql, *err;
	int ok;

	if (pg_decode_query(m, &sql, &err) < 0) {
		pgs_close(s, AL_REASON_AGENT_RESET, "08P01", "bad Query message: %s", err);
		return;
	}
	q_clear(&s->batch_outcomes);
	review_reset(s);
	s->batch_no++;
	ok = decide_query(s, sql, &l);
	pg_stmt_list_free(&l);
	if (ok == -2)
		goto oom;
	if (ok <= 0) {
		if (q_error(s, ok < 0 && strcmp(s->deny_state, "54000") != 0 ? "42601" : s->deny_state, s->deny_msg) < 0 ||
		    q_push(s, Q_SYNTH_READY) < 0)
			goto oom;
		q_drain(s);
		return;
	}
	if (ok == 2) {
		if (evbuffer_add(s->held, raw, m->len) < 0)
			goto oom;
		park(s, 'Q');
		return;
	}
	bufferevent_write(s->up, raw, m->len);
	commit_outcomes(s);
	if (q_push(s, Q_READY) < 0)
		goto oom;
	return;
oom:
	pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
}

/*
 * Parameters of a Bind as a JSON array for the audit. A binary one is shown as the server would
 * print it when the statement's Parse declared a type with a fixed binary form (JDBC and
 * others send numbers so), as text for the text types, else as "<binary N bytes>".
 */
static char *bind_params_json(const struct pg_bind *b, const struct named *st)
{
	json_t *a = json_array();
	struct pg_param prm;
	size_t off = 0;
	uint16_t idx = 0;
	char *out;

	while (pg_bind_next(b, &off, &idx, &prm) == 1) {
		uint32_t type = st && idx - 1 < st->n_types ? st->types[idx - 1] : 0;
		char t[PG_BINARY_TEXT_MAX];

		if (!prm.data) {
			json_array_append_new(a, json_null());
		} else if (prm.format == 1 && !pg_type_binary_is_text(type)) {
			if (pg_binary_param_text(type, prm.data, (size_t)prm.len, t, sizeof(t)) < 0)
				snprintf(t, sizeof(t), "<binary %d bytes>", prm.len);
			json_array_append_new(a, json_string(t));
		} else {
			size_t n = (size_t)prm.len < PARAM_AUDIT_MAX ? (size_t)prm.len : PARAM_AUDIT_MAX;
			json_t *v = json_stringn((const char *)prm.data, n);

			json_array_append_new(a, v ? v : json_string("<not UTF-8>"));
		}
	}
	out = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return out;
}

/* Queues, in reply order, a Q_NAMED that settles a change to (what, name) when the server
 * answers the message that made it. -1: out of memory. */
static int batch_named(struct pgs *s, enum nop op, char what, const char *name, uint64_t serial)
{
	struct qent *e = qent_new(Q_NAMED);

	if (!e || qent_named(e, op, what, name, serial) < 0) {
		if (e)
			qent_free(e);
		return -1;
	}
	TAILQ_INSERT_TAIL(&s->batch_outcomes, e, link);
	return 0;
}

/*
 * Parse: classified and decided now, so a statement a rule denies fails at once (and nothing of
 * its batch runs); what it would run is kept with its name, for each Execute of it.
 * 0, -1 malformed, -2 out of memory.
 */
static int parse_msg(struct pgs *s, const struct pg_msg *m)
{
	struct pg_stmt_list l = { 0 };
	struct pg_parse pp;
	struct named *n;
	const char *err, *atext, *why;
	char cerr[400], head[256];
	int64_t id;

	if (pg_decode_parse(m, &pp, &err) < 0)
		return -1;
	if (store_full_deny(s) < 0) {
		s->batch_denied = 1;
		return 0;
	}
	snprintf(s->deny_state, sizeof(s->deny_state), "42501");
	if (classify(s, pp.query, &l, cerr, sizeof(cerr), head, &atext, &why) < 0) {
		id = audit_stmt(s, "extended", atext, "unparsed", NULL, "[]", 0, NULL, "deny", why);
		snprintf(s->deny_msg, sizeof(s->deny_msg), "airlock: %s (request %lld)", cerr, (long long)id);
		s->batch_denied = 1;
		return 0;
	}
	if (l.n >= 1) {
		/* A Parse holds one statement (the server refuses more). */
		const struct al_rule *r = decide(s, &l.stmts[0]);

		if (r && r->allow == AL_ACTION_DENY) {
			char *rel = relations_json(&l.stmts[0]);

			id = audit_stmt(s, "extended", l.stmts[0].text, pg_kind_name(l.stmts[0].kind),
					l.stmts[0].fingerprint, rel, l.stmts[0].unbounded_write, NULL, "deny",
					r->text);
			free(rel);
			set_deny(s, r, pg_kind_name(l.stmts[0].kind), id);
			s->batch_denied = 1;
			pg_stmt_list_free(&l);
			return 0;
		}
	}
	n = named_put(s, 'S', pp.name);
	if (!n) {
		pg_stmt_list_free(&l);
		snprintf(s->deny_msg, sizeof(s->deny_msg),
			 "airlock: more than %d prepared statements and portals, or %u MiB in them: "
			 "close some", MAX_PREPARED, MAX_NAMED_BYTES >> 20);
		s->batch_denied = 1;
		return 0;
	}
	n->known = 1;
	n->bytes = strlen(pp.query) + (size_t)pp.n_types * sizeof(*n->types);
	s->named_bytes += n->bytes;
	if (l.n >= 1) {
		n->stmt = l.stmts[0];   /* taken over: the list no longer owns it */
		l.n = 0;
		if (!(n->relations = relations_json(&n->stmt)))
			goto oom;
	} else {
		n->empty = 1;
	}
	if (pp.n_types) {
		n->types = malloc(pp.n_types * sizeof(*n->types));
		if (!n->types)
			goto oom;
		for (uint16_t i = 0; i < pp.n_types; i++)
			n->types[i] = pg_parse_type(&pp, i);
		n->n_types = pp.n_types;
	}
	pg_stmt_list_free(&l);
	return batch_named(s, N_CREATE, 'S', pp.name, n->serial) < 0 ? -2 : 0;
oom:
	pg_stmt_list_free(&l);
	return -2;
}

/* Bind: the portal runs what its statement runs, with these parameters. */
static int bind_msg(struct pgs *s, const struct pg_msg *m)
{
	const struct named *st;
	struct named *po;
	struct pg_bind b;
	const char *err;

	if (pg_decode_bind(m, &b, &err) < 0)
		return -1;
	st = named_current(s, 'S', b.stmt);
	po = named_put(s, 'P', b.portal);
	if (!po) {
		snprintf(s->deny_state, sizeof(s->deny_state), "42501");
		snprintf(s->deny_msg, sizeof(s->deny_msg),
			 "airlock: more than %d prepared statements and portals, or %u MiB in them: "
			 "close some", MAX_PREPARED, MAX_NAMED_BYTES >> 20);
		s->batch_denied = 1;
		return 0;
	}
	if (st && st->known) {
		po->known = 1;
		po->empty = st->empty;
		if ((!st->empty && pg_stmt_copy(&po->stmt, &st->stmt) < 0) ||
		    (st->relations && !(po->relations = strdup(st->relations))))
			return -2;
	}
	if (!(po->params = bind_params_json(&b, st)))
		return -2;
	po->bytes = strlen(po->params) + (po->stmt.text ? strlen(po->stmt.text) : 0);
	s->named_bytes += po->bytes;
	return batch_named(s, N_CREATE, 'P', b.portal, po->serial) < 0 ? -2 : 0;
}

/*
 * Execute: decided here, each time, by what the portal runs: allowed, held for review with the
 * whole batch (reviewers read every statement of it with its parameters), or denied. A portal
 * we cannot tell the statement of is refused.
 */
static int execute_msg(struct pgs *s, const struct pg_msg *m)
{
	const struct al_rule *r = NULL;
	struct pg_execute ex;
	const struct named *po;
	const struct pg_stmt *e = NULL;
	const char *err, *kind, *decision = "allow";
	char *rel = NULL, key[70];
	struct qent *q;
	int64_t id;

	if (pg_decode_execute(m, &ex, &err) < 0)
		return -1;
	po = named_current(s, 'P', ex.portal);
	if (!po || !po->known || (!po->empty && !(e = runs(s, &po->stmt)))) {
		int unknown_portal = !po || !po->known;

		id = audit_stmt(s, "extended", unknown_portal ? "(unknown portal)" : po->stmt.text, "utility",
				NULL, NULL, 0, unknown_portal ? NULL : po->params, "deny",
				unknown_portal ? PGPROXY_UNKNOWN_PORTAL : PGPROXY_UNKNOWN_TARGET);
		snprintf(s->deny_state, sizeof(s->deny_state), "42501");
		if (unknown_portal) {
			snprintf(s->deny_msg, sizeof(s->deny_msg), "airlock: Execute of portal \"%.100s\": "
				 "Airlock did not see what it runs: it is not run (request %lld)", ex.portal,
				 (long long)id);
		} else {
			size_t n = strlen(s->deny_msg);

			snprintf(s->deny_msg + n, sizeof(s->deny_msg) - n, " (request %lld)", (long long)id);
		}
		s->batch_denied = 1;
		return 0;
	}
	kind = po->empty ? "empty" : pg_kind_name(e->kind);
	if (!po->empty) {
		r = decide(s, e);
		if (r && r->allow == AL_ACTION_DENY)
			decision = "deny";
		else if (r && r->allow == AL_ACTION_REVIEW)
			decision = "review";
	}
	/* what it runs, when that is another statement (EXECUTE, FETCH): its relations */
	if (!po->empty && e != &po->stmt && !(rel = relations_json(e)))
		return -2;
	id = audit_stmt(s, "extended", po->empty ? "" : po->stmt.text, kind,
			po->empty ? NULL : e->fingerprint, rel ? rel : po->relations,
			po->empty ? 0 : e->unbounded_write, po->params, decision, r ? r->text : NULL);
	free(rel);
	if (r && r->allow == AL_ACTION_DENY) {
		snprintf(s->deny_state, sizeof(s->deny_state), "42501");
		set_deny(s, r, kind, id);
		s->batch_denied = 1;
		return 0;
	}
	if (r && r->allow == AL_ACTION_REVIEW)
		s->batch_review = 1;
	review_add(s, po->empty ? "" : po->stmt.text, po->params,
		   po->empty ? NULL : grant_key(s, e, po->stmt.text, po->params, key),
		   r && r->allow == AL_ACTION_REVIEW ? r : NULL, kind, id);
	q = qent_new(Q_OUTCOME);
	if (!q)
		return -2;
	q->stmt = id;
	q->start_us = al_mono_us();
	TAILQ_INSERT_TAIL(&s->batch_outcomes, q, link);
	return 0;
}

/* A Parse, Bind, Execute or Close that decodes. */
static int well_formed(const struct pg_msg *m)
{
	const char *err;
	struct pg_parse pp;
	struct pg_bind b;
	struct pg_execute ex;
	struct pg_target t;

	switch (m->type) {
	case 'P': return pg_decode_parse(m, &pp, &err) == 0;
	case 'B': return pg_decode_bind(m, &b, &err) == 0;
	case 'E': return pg_decode_execute(m, &ex, &err) == 0;
	default: return pg_decode_close(m, &t, &err) == 0;
	}
}

/* One message of the extended protocol, held in the batch until Sync or Flush. */
static int extended_msg(struct pgs *s, const struct pg_msg *m)
{
	const char *err;

	/* Nothing of a batch with a denial runs: the rest is only checked to be well formed. */
	if (s->batch_denied && (m->type == 'P' || m->type == 'B' || m->type == 'E' || m->type == 'C'))
		return well_formed(m) ? 0 : -1;
	switch (m->type) {
	case 'P':
		return parse_msg(s, m);
	case 'B':
		return bind_msg(s, m);
	case 'E':
		return execute_msg(s, m);
	case 'C': {
		struct pg_target t;
		const struct named *n;

		if (pg_decode_close(m, &t, &err) < 0)
			return -1;
		/* Gone once the server says so (CloseComplete); closing what does not exist is fine. */
		n = named_find(s, t.what, t.name);
		return batch_named(s, n ? N_FORGET : N_NONE, t.what, t.name, n ? n->serial : 0) < 0 ? -2 : 0;
	}
	case 'D': {
		struct pg_target t;

		return pg_decode_describe(m, &t, &err) < 0 ? -1 : 0;
	}
	default:
		return 0;
	}
}

/*
 * Sends a finished batch upstream (Sync or Flush ends it), or answers it
 * ourselves when something in it was denied: nothing of a denied batch
 * runs, and the session goes on after the Sync.
 */
static void flush_batch(struct pgs *s, char terminator)
{
	if (!s->batch_denied && !TAILQ_EMPTY(&s->batch_outcomes) && !store_accepting(s->p->store)) {
		/* Executes of statements parsed before the store filled: not run either. */
		snprintf(s->deny_state, sizeof(s->deny_state), "53100");
		snprintf(s->deny_msg, sizeof(s->deny_msg), "airlock: the audit store is full: no statement "
			 "runs until it has room");
		s->batch_denied = 1;
	}
	if (s->batch_denied) {
		evbuffer_drain(s->batch, evbuffer_get_length(s->batch));
		/* Executes recorded earlier in this batch never ran. */
		outcomes_not_run(s, "not run: its batch was denied");
		review_reset(s);
		if (s->mid_flow) {
			/* Close what an earlier Flush sent, so upstream is idle again. */
			struct pg_buf b;

			pg_buf_init(&b, 0);
			pg_build_sync(&b);
			if (pg_buf_ok(&b))
				bufferevent_write(s->up, b.data, b.len);
			pg_buf_free(&b);
			if (q_push(s, Q_READY_SWALLOW) < 0)
				goto oom;
			s->mid_flow = 0;
		}
		if (q_error(s, s->deny_state, s->deny_msg) < 0)
			goto oom;
		if (terminator == 'S') {
			if (q_push(s, Q_SYNTH_READY) < 0)
				goto oom;
		} else {
			s->skip_until_sync = 1;
		}
		s->batch_denied = 0;
		q_drain(s);
		return;
	}
	if (s->batch_review) {
		/* Held whole: released only as the exact bytes reviewers saw. */
		evbuffer_add_buffer(s->held, s->batch);
		park(s, terminator);
		return;
	}
	review_reset(s);
	bufferevent_write_buffer(s->up, s->batch);
	commit_outcomes(s);
	if (terminator == 'S') {
		if (q_push(s, Q_READY) < 0)
			goto oom;
		s->mid_flow = 0;
	} else {
		s->mid_flow = 1;
	}
	return;
oom:
	pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
}

/* ---- agent side ----------------------------------------------------------------------------- */

static void agent_ready_msg(struct pgs *s, const struct pg_msg *m, const uint8_t *raw)
{
	int rc;

	if (s->skip_until_sync) {
		if (m->type == 'S') {
			s->skip_until_sync = 0;
			s->batch_no++;
			if (q_push(s, Q_SYNTH_READY) < 0)
				pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
			q_drain(s);
		}
		return;
	}
	switch (m->type) {
	case 'Q':
		simple_query(s, m, raw);
		return;
	case 'P': case 'B': case 'E': case 'C': case 'D':
		if (evbuffer_get_length(s->batch) + m->len > MAX_BATCH_BYTES) {
			pgs_close(s, AL_REASON_LIMIT, "54000", "over %u MiB of extended-protocol messages "
				  "without a Sync", MAX_BATCH_BYTES >> 20);
			return;
		}
		rc = extended_msg(s, m);
		if (rc == -1) {
			pgs_close(s, AL_REASON_AGENT_RESET, "08P01", "malformed '%c' message", m->type);
			return;
		}
		if (rc == -2) {
			pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
			return;
		}
		if (evbuffer_add(s->batch, raw, m->len) < 0)
			pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
		return;
	case 'H':
	case 'S':
		if (evbuffer_add(s->batch, raw, m->len) < 0) {
			pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
			return;
		}
		flush_batch(s, (char)m->type);
		/* After a Sync, what the agent names is made in a new unit: an error in the last one
		 * no longer skips it (a Flush does not end a unit). */
		if (m->type == 'S')
			s->batch_no++;
		return;
	case 'F':
		/* The function-call protocol runs a function by OID, past any SQL check. */
		audit_stmt(s, "function-call", "(FunctionCall message)", "call", NULL, NULL, 0, NULL, "deny",
			   "function-call protocol");
		if (q_error(s, "42501", "airlock: the function-call protocol is not allowed; "
			    "use SELECT fn(...)") < 0 || q_push(s, Q_SYNTH_READY) < 0)
			pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
		q_drain(s);
		return;
	case 'X':
		bufferevent_write(s->up, raw, m->len);
		pgs_close(s, AL_REASON_CLOSED, NULL, NULL);
		return;
	case 'd': case 'c': case 'f':
		/* COPY FROM STDIN data: the statement was decided already. */
		bufferevent_write(s->up, raw, m->len);
		if (m->type != 'd')
			s->copy_in = 0;
		return;
	default:
		pgs_close(s, AL_REASON_AGENT_RESET, "08P01", "unexpected '%c' message", m->type);
	}
}

static void up_event(struct bufferevent *bev, short what, void *arg);

static SSL_CTX *up_ssl_ctx(struct pgproxy *p, const struct al_resource *res,
			   const struct al_secret *cred, char *err, size_t errlen)
{
	struct up_ctx *v;
	SSL_CTX *ctx;

	for (size_t i = 0; i < p->n_ups; i++)
		if (p->ups[i].res == res)
			return p->ups[i].ctx;
	ctx = tls_client_ctx(res->upstream_tls == AL_UPSTREAM_TLS_VERIFY_FULL ? TLS_VERIFY_FULL
									      : TLS_VERIFY_NONE,
			     res->upstream_ca, err, errlen);
	if (!ctx)
		return NULL;
	/* A credential may be a client certificate instead of (or with) a password. */
	if (cred->sslcert && (SSL_CTX_use_certificate_chain_file(ctx, cred->sslcert) != 1 ||
			      SSL_CTX_use_PrivateKey_file(ctx, cred->sslkey, SSL_FILETYPE_PEM) != 1 ||
			      SSL_CTX_check_private_key(ctx) != 1)) {
		snprintf(err, errlen, "client certificate %s / key %s unusable", cred->sslcert,
			 cred->sslkey);
		SSL_CTX_free(ctx);
		return NULL;
	}
	v = realloc(p->ups, (p->n_ups + 1) * sizeof(*v));
	if (!v) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	p->ups = v;
	v[p->n_ups].res = res;
	v[p->n_ups].ctx = ctx;
	p->n_ups++;
	return ctx;
}

static void up_connect(struct pgs *s)
{
	struct sockaddr_storage ss;
	socklen_t len = (socklen_t)al_addr_to_sockaddr(&s->dst, s->dst_port, &ss);
	struct timeval tv = {
		.tv_sec = s->p->cfg->connect_timeout_ms / 1000,
		.tv_usec = (s->p->cfg->connect_timeout_ms % 1000) * 1000,
	};

	s->up = sock_out_new(s->p->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!s->up) {
		pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
		return;
	}
	s->state = P_UP_CONNECT;
	bufferevent_setcb(s->up, up_read, up_write, up_event, s);
	bufferevent_set_timeouts(s->up, NULL, &tv);
	bufferevent_disable(s->agent, EV_READ);
	if (bufferevent_socket_connect(s->up, (struct sockaddr *)&ss, (int)len) < 0)
		pgs_close(s, AL_REASON_UPSTREAM_UNREACH, "08006", "cannot connect to the upstream server");
}

static int bool_on(const char *v)
{
	return !strcasecmp(v, "on") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1");
}

/*
 * A setting that makes the server read SQL otherwise than libpg_query does, as the server
 * reports or a startup packet asks for it: a reason it is refused, else NULL. Names are
 * case-insensitive, as GUC names are.
 */
static const char *setting_unsafe(const char *name, const char *value)
{
	if (!strcasecmp(name, "standard_conforming_strings") && !bool_on(value))
		return "standard_conforming_strings must stay on";
	if (!strcasecmp(name, "client_encoding") && !pg_encoding_keeps_reading(value))
		return "a client encoding whose characters may hold a quote or backslash byte (SJIS, BIG5, "
		       "GBK, GB18030, UHC, JOHAB), or one Airlock does not know, cannot be read as the server "
		       "reads it";
	if (!strcasecmp(name, "backslash_quote"))
		return "backslash_quote is not set at startup";
	return NULL;
}

/*
 * The StartupMessage we send: the agent's parameters but the login (ours) and what would change
 * who the session is or how the server reads SQL. 0, -1 without memory, 1 refused (why says
 * why).
 */
static int build_startup(struct pgs *s, const struct pg_msg *m, char *why, size_t whylen)
{
	const char *params[64];
	size_t n = 0, off = 0;
	const char *k, *v, *database = NULL, *bad;

	while (pg_startup_next(m, &off, &k, &v) == 1 && n + 4 < AL_ARRAY_LEN(params)) {
		/* The login is ours; options could set a role or any GUC. */
		if (strcmp(k, "user") == 0 || strcmp(k, "options") == 0 || strcmp(k, "replication") == 0)
			continue;
		if (!strcasecmp(k, "role") || !strcasecmp(k, "session_authorization")) {
			snprintf(why, whylen, "startup parameter %s is not allowed: the session is the "
				 "resource's credential", k);
			return 1;
		}
		if ((bad = setting_unsafe(k, v)) != NULL) {
			snprintf(why, whylen, "startup parameter %s=%.64s refused: %s", k, v, bad);
			return 1;
		}
		if (strcmp(k, "database") == 0)
			database = v;
		params[n++] = k;
		params[n++] = v;
	}
	if (!database) {
		params[n++] = "database";
		params[n++] = s->cred->user;
	}
	params[n++] = "user";
	params[n++] = s->cred->user;
	params[n] = NULL;
	pg_buf_init(&s->startup, 0);
	pg_build_startup(&s->startup, params);
	return pg_buf_ok(&s->startup) ? 0 : -1;
}

static void cancel_done(struct bufferevent *bev, void *arg)
{
	bufferevent_free(bev);
	(void)arg;
}

static void cancel_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & BEV_EVENT_CONNECTED)
		return;
	bufferevent_free(bev);
	(void)arg;
}

/* CancelRequest: forwarded to the upstream backend of the session it names. */
static void forward_cancel(struct pgproxy *p, const struct pg_cancel *c)
{
	struct sockaddr_storage ss;
	struct bufferevent *bev;
	struct pg_buf b;
	struct pgs *t;
	socklen_t len;

	LIST_FOREACH(t, &p->sessions, link)
		if (t->my_pid == c->pid && t->my_key == c->key && t->state == P_READY)
			break;
	if (!t)
		return;
	len = (socklen_t)al_addr_to_sockaddr(&t->dst, t->dst_port, &ss);
	bev = sock_out_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		return;
	pg_buf_init(&b, 0);
	pg_build_cancel(&b, t->up_pid, t->up_key);
	bufferevent_setcb(bev, NULL, cancel_done, cancel_event, NULL);
	if (!pg_buf_ok(&b) || bufferevent_socket_connect(bev, (struct sockaddr *)&ss, (int)len) < 0 ||
	    bufferevent_write(bev, b.data, b.len) < 0)
		bufferevent_free(bev);
	pg_buf_free(&b);
}

static void agent_startup_msg(struct pgs *s, const struct pg_msg *m)
{
	struct pg_startup st;
	const char *err;
	char why[256];

	switch (m->startup) {
	case PG_STARTUP_SSL: {
		char e[256];
		SSL_CTX *ctx;
		SSL *ssl;
		struct bufferevent *tls;

		if (s->agent_tls || evbuffer_get_length(bufferevent_get_input(s->agent))) {
			pgs_close(s, AL_REASON_AGENT_RESET, "08P01", "unexpected data after SSLRequest");
			return;
		}
		ctx = tls_server_ctx(s->p->ca, s->res->tls_name, e, sizeof(e));
		ssl = ctx ? SSL_new(ctx) : NULL;
		if (!ssl) {
			bufferevent_write(s->agent, "N", 1);
			al_warn("pg: no TLS for %s: %s", s->res->tls_name, e);
			return;
		}
		bufferevent_write(s->agent, "S", 1);
		tls = tls_stream_new(s->agent, ssl, TLS_STREAM_ACCEPT, BEV_OPT_CLOSE_ON_FREE);
		if (!tls) {
			SSL_free(ssl);
			pgs_close(s, AL_REASON_INTERNAL, NULL, "TLS setup failed");
			return;
		}
		s->agent = tls;
		s->agent_tls = 1;
		bufferevent_setcb(s->agent, agent_read, agent_write, agent_event, s);
		bufferevent_enable(s->agent, EV_READ | EV_WRITE);
		return;
	}
	case PG_STARTUP_GSSENC:
		bufferevent_write(s->agent, "N", 1);
		return;
	case PG_STARTUP_CANCEL: {
		struct pg_cancel c;

		if (pg_decode_cancel(m, &c, &err) == 0)
			forward_cancel(s->p, &c);
		pgs_close(s, AL_REASON_CLOSED, NULL, "cancel request");
		return;
	}
	case PG_STARTUP_V3:
		if (pg_decode_startup(m, &st, &err) < 0) {
			pgs_close(s, AL_REASON_AGENT_RESET, "08P01", "bad startup packet: %s", err);
			return;
		}
		if (st.replication) {
			pgs_close(s, AL_REASON_POLICY_DENY, "42501", "replication connections are not allowed");
			return;
		}
		switch (build_startup(s, m, why, sizeof(why))) {
		case 0:
			break;
		case 1:
			pgs_close(s, AL_REASON_POLICY_DENY, "42501", "%s", why);
			return;
		default:
			pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
			return;
		}
		up_connect(s);
		return;
	default:
		pgs_close(s, AL_REASON_AGENT_RESET, "08P01", "unsupported startup packet");
	}
}

/* Backpressure: a side whose output is full stops the other side's reading. */
static int full(struct bufferevent *bev, const struct pgs *s)
{
	return evbuffer_get_length(bufferevent_get_output(bev)) >= s->p->cfg->relay_buffer;
}

static void agent_write(struct bufferevent *bev, void *arg)
{
	struct pgs *s = arg;

	if (s->state == P_READY && s->up && !full(bev, s))
		bev_read_on(s->up);
}

static void up_write(struct bufferevent *bev, void *arg)
{
	struct pgs *s = arg;

	if (s->state == P_READY && !full(bev, s))
		bev_read_on(s->agent);
}

/*
 * Whether the server still owes answers to what was sent it (outside COPY IN, where it waits
 * for the agent's data). The agent's next messages wait until it does not: a statement may
 * change how the server reads SQL in ways no classifier sees (a function or an approved DO
 * block setting standard_conforming_strings), and the server says so (ParameterStatus) before
 * it answers; what comes after is then read only once that has been checked.
 */
static int up_busy(const struct pgs *s)
{
	const struct qent *e;
	int owed = 0;

	if (s->copy_in)
		return 0;
	TAILQ_FOREACH(e, &s->q, link) {
		if (e->type == Q_READY || e->type == Q_READY_SWALLOW)
			return 1;       /* it has the Sync (or Query) it answers to */
		owed |= e->type != Q_SYNTH && e->type != Q_SYNTH_READY;
	}
	/* After an error the server discards what follows until the agent's Sync. */
	return owed && !s->up_failed;
}

static void agent_read(struct bufferevent *bev, void *arg)
{
	struct pgs *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while ((s->state == P_STARTUP || s->state == P_READY) && !s->parked) {
		size_t avail = evbuffer_get_length(in), want;

		if (s->state == P_READY && up_busy(s)) {
			/* Resumed by up_read when the answers are in. Reading stops only when the agent
			 * sends more meanwhile (one read's worth waits): turning it off after every
			 * statement was an epoll_ctl a statement, and most clients wait for the answer. */
			if (avail > 0)
				bufferevent_disable(s->agent, EV_READ);
			return;
		}
		struct pg_msg m;
		uint8_t *buf;
		int n;

		if (avail == 0)
			return;
		want = avail < 8 ? avail : 8;
		buf = evbuffer_pullup(in, (ev_ssize_t)want);
		n = pg_frame(buf, want, s->state == P_STARTUP, s->p->cfg->pg_max_message, &m);
		if (n == 0 && m.need > want) {
			if (avail < m.need)
				return;
			buf = evbuffer_pullup(in, (ev_ssize_t)m.need);
			n = pg_frame(buf, m.need, s->state == P_STARTUP, s->p->cfg->pg_max_message, &m);
		}
		if (n == 0)
			return;
		if (n < 0) {
			pgs_close(s, AL_REASON_AGENT_RESET, "08P01", "protocol violation: %s", m.err);
			return;
		}
		s->bytes_agent += (uint64_t)n;
		if (s->state == P_STARTUP) {
			/* Copy: the startup handlers may swap the bufferevent. */
			uint8_t *copy = malloc((size_t)n);

			if (!copy) {
				pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
				return;
			}
			memcpy(copy, buf, (size_t)n);
			evbuffer_drain(in, (size_t)n);
			m.body = copy + (m.body - buf);
			agent_startup_msg(s, &m);
			free(copy);
			if (s->state == P_CLOSING)
				return;
			in = bufferevent_get_input(s->agent);
			continue;
		}
		rec_msg(s, "F", &m, 0);
		agent_ready_msg(s, &m, buf);
		if (s->state == P_CLOSING)
			return;
		evbuffer_drain(in, (size_t)n);
		if (full(s->up, s)) {
			bufferevent_disable(s->agent, EV_READ);
			return;
		}
	}
}

static void agent_event(struct bufferevent *bev, short what, void *arg)
{
	struct pgs *s = arg;

	if (what & BEV_EVENT_EOF)
		pgs_close(s, AL_REASON_CLOSED, NULL, s->state == P_READY ? NULL : "agent left during startup");
	else if (what & BEV_EVENT_ERROR)
		pgs_close(s, AL_REASON_AGENT_RESET, NULL, "agent connection error");
	/* (no timeouts on the agent's side: pg_login_timeout is a timer of the session's own) */
	(void)bev;
}

/* ---- upstream side -------------------------------------------------------------------------- */

static void up_send(struct pgs *s, struct pg_buf *b)
{
	if (pg_buf_ok(b))
		bufferevent_write(s->up, b->data, b->len);
}

static void up_start_tls(struct pgs *s)
{
	char err[256];
	SSL_CTX *ctx;
	SSL *ssl;
	struct bufferevent *tls;

	err[0] = '\0';
	ctx = up_ssl_ctx(s->p, s->res, s->cred, err, sizeof(err));
	ssl = ctx ? SSL_new(ctx) : NULL;
	if (!ssl || tls_client_prepare(ssl, s->res->tls_name,
				       s->res->upstream_tls == AL_UPSTREAM_TLS_VERIFY_FULL ? TLS_VERIFY_FULL
										   : TLS_VERIFY_NONE) < 0) {
		if (ssl)
			SSL_free(ssl);
		pgs_close(s, AL_REASON_INTERNAL, "08006", "upstream TLS setup failed: %s", err);
		return;
	}
	tls = tls_stream_new(s->up, ssl, TLS_STREAM_CONNECT, BEV_OPT_CLOSE_ON_FREE);
	if (!tls) {
		SSL_free(ssl);
		pgs_close(s, AL_REASON_INTERNAL, "08006", "upstream TLS setup failed");
		return;
	}
	s->up = tls;
	bufferevent_setcb(s->up, up_read, up_write, up_event, s);
	bufferevent_enable(s->up, EV_READ | EV_WRITE);
	s->state = P_UP_AUTH;
	up_send(s, &s->startup);
}

static void up_event(struct bufferevent *bev, short what, void *arg)
{
	struct pgs *s = arg;
	int err = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;

		/* The TLS filter reports its finished handshake as CONNECTED too. */
		if (s->state != P_UP_CONNECT)
			return;
		bufferevent_set_timeouts(bev, NULL, NULL);
		(void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		bufferevent_enable(bev, EV_READ | EV_WRITE);
		if (s->res->upstream_tls != AL_UPSTREAM_TLS_DISABLE) {
			struct pg_buf b;

			pg_buf_init(&b, 0);
			pg_build_ssl_request(&b);
			up_send(s, &b);
			pg_buf_free(&b);
			s->state = P_UP_SSL;
		} else {
			s->state = P_UP_AUTH;
			up_send(s, &s->startup);
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		pgs_close(s, AL_REASON_UPSTREAM_TIMEOUT, "08006", "the upstream server did not answer");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = tls_stream_error(bev);

		if (e) {
			char buf[256];

			ERR_error_string_n(e, buf, sizeof(buf));
			pgs_close(s, AL_REASON_UPSTREAM_RESET, "08006", "upstream TLS failed: %s", buf);
		} else if (s->state == P_UP_CONNECT) {
			pgs_close(s, err == ECONNREFUSED ? AL_REASON_UPSTREAM_REFUSED : AL_REASON_UPSTREAM_UNREACH,
				  "08006", "cannot connect to the upstream server: %s", strerror(err));
		} else {
			pgs_close(s, AL_REASON_UPSTREAM_RESET, "08006", "upstream connection lost");
		}
		return;
	}
	if (what & BEV_EVENT_EOF)
		pgs_close(s, s->state == P_READY ? AL_REASON_UPSTREAM_RESET : AL_REASON_UPSTREAM_RESET,
			  "08006", "the upstream server closed the connection");
}

/* upstream_auth's name of a password method. */
static const char *auth_name(int code)
{
	return code == PG_AUTH_MD5 ? "md5" : code == PG_AUTH_CLEARTEXT ? "password" : "scram-sha-256";
}

static void up_auth_msg(struct pgs *s, const struct pg_msg *m)
{
	char out[1024], e[256];
	const char *err;
	struct pg_auth a;
	struct pg_buf b;

	pg_buf_init(&b, 0);
	switch (m->type) {
	case 'R':
		if (pg_decode_auth(m, &a, &err) < 0) {
			pgs_close(s, AL_REASON_UPSTREAM_RESET, "08P01", "bad authentication message: %s", err);
			break;
		}
		switch (a.code) {
		case PG_AUTH_OK:
			/* A server that skipped proving it knows the password is not the server. */
			if (s->scram && !pg_scram_done(s->scram)) {
				pgs_close(s, AL_REASON_UPSTREAM_RESET, "28000",
					  "upstream said OK before completing SCRAM");
				break;
			}
			pg_build_auth_ok(&b);
			send_agent_buf(s, &b);
			break;
		case PG_AUTH_CLEARTEXT:
			if (!s->cred->password)
				goto nopw;
			if (!(s->res->upstream_auth & AL_UPSTREAM_AUTH_PASSWORD))
				goto refused;
			pg_build_password(&b, s->cred->password);
			up_send(s, &b);
			break;
		case PG_AUTH_MD5:
			if (!s->cred->password)
				goto nopw;
			if (!(s->res->upstream_auth & AL_UPSTREAM_AUTH_MD5))
				goto refused;
			pg_md5_password(s->cred->user, s->cred->password, a.salt, out);
			pg_build_password(&b, out);
			up_send(s, &b);
			break;
		case PG_AUTH_SASL:
			if (!s->cred->password)
				goto nopw;
			if (!(s->res->upstream_auth & AL_UPSTREAM_AUTH_SCRAM))
				goto refused;
			if (s->scram || !pg_auth_has_mechanism(&a, "SCRAM-SHA-256") ||
			    pg_scram_start(s->cred->password, &s->scram, out, sizeof(out)) < 0) {
				pgs_close(s, AL_REASON_UPSTREAM_RESET, "28000", "upstream offers no usable SASL mechanism");
				break;
			}
			pg_build_sasl_initial(&b, "SCRAM-SHA-256", out, strlen(out));
			up_send(s, &b);
			break;
		case PG_AUTH_SASL_CONTINUE:
			if (!s->scram || pg_scram_continue(s->scram, a.data, a.data_len, out, sizeof(out),
							   e, sizeof(e)) < 0) {
				pgs_close(s, AL_REASON_UPSTREAM_RESET, "28000", "upstream SCRAM exchange failed: %s",
					  s->scram ? e : "unexpected");
				break;
			}
			pg_build_sasl_response(&b, out, strlen(out));
			up_send(s, &b);
			break;
		case PG_AUTH_SASL_FINAL:
			if (!s->scram || pg_scram_finish(s->scram, a.data, a.data_len, e, sizeof(e)) < 0)
				pgs_close(s, AL_REASON_UPSTREAM_RESET, "28000",
					  "upstream server failed SCRAM verification: %s", s->scram ? e : "unexpected");
			break;
		default:
			pgs_close(s, AL_REASON_UPSTREAM_RESET, "28000",
				  "upstream asks for an authentication method Airlock does not speak (%u)", a.code);
		}
		break;
	case 'K': {
		struct pg_cancel k;

		if (pg_decode_backend_key(m, &k, &err) < 0) {
			pgs_close(s, AL_REASON_UPSTREAM_RESET, "08P01", "bad BackendKeyData");
			break;
		}
		s->up_pid = k.pid;
		s->up_key = k.key;
		/* The agent cancels through us, with a key of ours. */
		if (RAND_bytes((unsigned char *)&s->my_pid, sizeof(s->my_pid)) != 1 ||
		    RAND_bytes((unsigned char *)&s->my_key, sizeof(s->my_key)) != 1) {
			pgs_close(s, AL_REASON_INTERNAL, "53200", "no randomness");
			break;
		}
		s->my_pid &= 0x3fffffff;
		pg_build_backend_key(&b, s->my_pid, s->my_key);
		send_agent_buf(s, &b);
		break;
	}
	case 'Z': {
		char st = 'I';

		if (pg_decode_ready(m, &st, &err) < 0)
			st = 'I';
		s->txn = st;
		s->state = P_READY;
		event_del(s->timer);
		bufferevent_write(s->agent, m->body - 5, m->len);
		bev_read_on(s->agent);
		/* The agent may have pipelined queries behind its startup. */
		agent_read(s->agent, s);
		break;
	}
	case 'E': {
		struct pg_error_fields f = { 0 };

		if (pg_decode_error(m, &f, &err) < 0)
			memset(&f, 0, sizeof(f));
		pgs_close(s, AL_REASON_UPSTREAM_REFUSED, f.sqlstate ? f.sqlstate : "28000",
			  "upstream login as the resource's credential failed: %s",
			  f.message ? f.message : "(no message)");
		break;
	}
	default:
		/* ParameterStatus, NoticeResponse, NegotiateProtocolVersion: pass on. */
		bufferevent_write(s->agent, m->body - 5, m->len);
	}
	pg_buf_free(&b);
	return;
nopw:
	pg_buf_free(&b);
	pgs_close(s, AL_REASON_UPSTREAM_REFUSED, "28000",
		  "upstream wants a password and credential '%s' has none", s->res->credential);
	return;
refused:
	/* The agent's error names no setting: what to change is in airlockd's log. */
	al_warn("pg resource %s: the upstream asks for %s authentication, which resource's upstream_auth "
		"does not allow (md5 and password hand the credential to whoever answers: by default only "
		"to a server checked by upstream_tls verify-full; `upstream_auth scram-sha-256 %s` allows it)",
		s->res->name, auth_name(a.code), auth_name(a.code));
	pg_buf_free(&b);
	pgs_close(s, AL_REASON_UPSTREAM_REFUSED, "28000",
		  "the server asks for %s authentication, which Airlock does not answer for this resource",
		  auth_name(a.code));
}

/* A message from upstream in the relaying state: account it, then pass it on. */
static void up_ready_msg(struct pgs *s, const struct pg_msg *m, const uint8_t *raw)
{
	struct qent *head = TAILQ_FIRST(&s->q);
	const char *err;

	switch (m->type) {
	case '1': case '2': case '3':
		/* ParseComplete, BindComplete, CloseComplete: the server made (or closed) it. */
		if (head && head->type == Q_NAMED) {
			named_settle(s, head, 1);
			TAILQ_REMOVE(&s->q, head, link);
			qent_free(head);
		}
		break;
	case 'C': case 'I': case 's':
		if (head && head->type == Q_OUTCOME) {
			const char *tag = NULL;

			if (m->type == 'C')
				if (pg_decode_command_complete(m, &tag, &err) < 0)
					tag = NULL;
			audit_outcome(s, head, m->type == 'C' ? tag : m->type == 'I' ? "EMPTY" : "SUSPENDED",
				      NULL, NULL);
			named_settle(s, head, 1);
			TAILQ_REMOVE(&s->q, head, link);
			qent_free(head);
		}
		break;
	case 'E':
		s->up_failed = 1;
		if (head && head->type == Q_NAMED) {
			/* Its Parse, Bind or Close failed: the server skips to the Sync. */
			named_settle(s, head, 0);
			TAILQ_REMOVE(&s->q, head, link);
			qent_free(head);
		} else if (head && head->type == Q_OUTCOME) {
			struct pg_error_fields f = { 0 };

			if (pg_decode_error(m, &f, &err) < 0)
				memset(&f, 0, sizeof(f));
			audit_outcome(s, head, NULL, f.sqlstate, f.message);
			named_settle(s, head, 0);
			TAILQ_REMOVE(&s->q, head, link);
			qent_free(head);
		}
		break;
	case 'T':
		if (head && head->type == Q_OUTCOME)
			head->rows = 0;
		break;
	case 'D':
		if (head && head->type == Q_OUTCOME)
			head->rows = head->rows < 0 ? 1 : head->rows + 1;
		break;
	case 'Z': {
		int swallow = 0;
		char st = 'I';

		if (pg_decode_ready(m, &st, &err) < 0)
			st = 'I';
		s->txn = st;
		s->copy_in = 0;
		s->up_failed = 0;
		/* Statements still waiting did not run (an earlier one failed), nor what they made. */
		while ((head = TAILQ_FIRST(&s->q)) != NULL && (head->type == Q_OUTCOME || head->type == Q_NAMED)) {
			if (head->type == Q_OUTCOME)
				audit_outcome(s, head, NULL, NULL, "not run");
			named_settle(s, head, 0);
			TAILQ_REMOVE(&s->q, head, link);
			qent_free(head);
		}
		if (head && (head->type == Q_READY || head->type == Q_READY_SWALLOW)) {
			swallow = head->type == Q_READY_SWALLOW;
			TAILQ_REMOVE(&s->q, head, link);
			qent_free(head);
		}
		if (!swallow)
			bufferevent_write(s->agent, raw, m->len);
		q_drain(s);
		if (st == 'I' && !up_busy(s))
			named_forget_portals(s);
		return;
	}
	case 'G':
		/* CopyInResponse: the agent's COPY data is read while the server waits for it. */
		s->copy_in = 1;
		break;
	default:
		break;
	}
	bufferevent_write(s->agent, raw, m->len);
}

/*
 * The server reports what the session reads SQL with (ParameterStatus, at login and after any
 * change: a SET Airlock missed, an ALTER ROLE ... SET default, set_config in a function). If it
 * is not what libpg_query reads, nothing more runs: the session ends. 1 if fine.
 */
static int param_status_ok(struct pgs *s, const struct pg_msg *m)
{
	const char *name, *value, *err, *bad;

	if (pg_decode_parameter_status(m, &name, &value, &err) < 0 || !(bad = setting_unsafe(name, value)))
		return 1;
	if (!strcasecmp(name, "backslash_quote"))
		return 1;       /* not reported; with standard_conforming_strings on it only refuses */
	pgs_close(s, AL_REASON_POLICY_DENY, "42501", "the server now reads SQL with %s = %.64s: %s; "
		  "the session ends", name, value, bad);
	return 0;
}

static void up_read(struct bufferevent *bev, void *arg)
{
	struct pgs *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (s->state == P_UP_SSL) {
		char c;

		if (evbuffer_remove(in, &c, 1) != 1)
			return;
		if (c != 'S') {
			pgs_close(s, AL_REASON_UPSTREAM_REFUSED, "08006",
				  "the upstream server does not offer TLS, and resource %s requires it",
				  s->res->name);
			return;
		}
		up_start_tls(s);
		return;
	}
	while (s->state == P_UP_AUTH || s->state == P_READY) {
		size_t avail = evbuffer_get_length(in), want;
		struct pg_msg m;
		uint8_t *buf;
		int n, busy;

		if (avail < 5)
			return;
		want = 5;
		buf = evbuffer_pullup(in, (ev_ssize_t)want);
		n = pg_frame_backend(buf, want, UP_MAX_MESSAGE, &m);
		if (n == 0 && m.need > want) {
			if (avail < m.need)
				return;
			buf = evbuffer_pullup(in, (ev_ssize_t)m.need);
			n = pg_frame_backend(buf, m.need, UP_MAX_MESSAGE, &m);
		}
		if (n == 0)
			return;
		if (n < 0) {
			pgs_close(s, AL_REASON_UPSTREAM_RESET, "08P01", "upstream protocol violation: %s", m.err);
			return;
		}
		s->bytes_up += (uint64_t)n;
		if (m.type == 'S' && !param_status_ok(s, &m))
			return;
		busy = s->state == P_READY && up_busy(s);
		if (s->state == P_UP_AUTH) {
			up_auth_msg(s, &m);
		} else {
			rec_msg(s, "B", &m, 1);
			up_ready_msg(s, &m, buf);
		}
		if (s->state == P_CLOSING)
			return;
		evbuffer_drain(in, (size_t)n);
		if (busy && s->state == P_READY && !s->parked && !up_busy(s)) {
			/* Answered: what the agent sent meanwhile is read now. */
			bev_read_on(s->agent);
			agent_read(s->agent, s);
			if (s->state != P_READY)
				return;
		}
		if (s->state == P_READY && full(s->agent, s)) {
			bufferevent_disable(s->up, EV_READ);
			return;
		}
	}
}

/*
 * The login outlasted pg_login_timeout: from accept to the first ReadyForQuery, the agent's part
 * (SSLRequest, its TLS handshake, the StartupMessage) and the upstream's (connect, TLS, the
 * password exchange) together. The agent gets FATAL 57014, the SQLSTATE with which PostgreSQL
 * itself ends a login that outlasts authentication_timeout ("canceling authentication due to
 * timeout"): 08006 would say a connection broke, which none did. The row's reason says whose
 * part was not done: limit for the agent's, upstream_timeout for the server's.
 */
static void on_login_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pgs *s = arg;
	const char *where;

	(void)fd;
	(void)what;
	switch (s->state) {
	case P_STARTUP:
		where = s->agent_tls ? "the agent had not finished its TLS handshake and StartupMessage"
				     : "the agent had not sent its startup packets";
		break;
	case P_UP_CONNECT:
		where = "the upstream server had not accepted the connection";
		break;
	case P_UP_SSL:
		where = "the upstream server had not answered the SSLRequest";
		break;
	case P_UP_AUTH:
		where = "the upstream server had not completed the login (TLS handshake, authentication)";
		break;
	default:
		return;
	}
	pgs_close(s, s->state == P_STARTUP ? AL_REASON_LIMIT : AL_REASON_UPSTREAM_TIMEOUT, "57014",
		  "canceling authentication due to timeout: the login took longer than pg_login_timeout "
		  "(%u ms); %s", s->login_ms, where);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int pgproxy_start(struct pgproxy *p, int fd, const struct store_conn *c,
		  const struct al_addr *dst, uint16_t dst_port, const struct al_resource *res)
{
	struct timeval tv = {
		.tv_sec = p->cfg->pg_login_timeout_ms / 1000,
		.tv_usec = (p->cfg->pg_login_timeout_ms % 1000) * 1000,
	};
	struct pgs *s = calloc(1, sizeof(*s));

	if (!s) {
		close(fd);
		return -1;
	}
	s->p = p;
	s->login_ms = p->cfg->pg_login_timeout_ms;
	snprintf(s->deny_state, sizeof(s->deny_state), "42501");
	s->res = res;
	s->dst = *dst;
	s->dst_port = dst_port;
	TAILQ_INIT(&s->q);
	TAILQ_INIT(&s->batch_outcomes);
	LIST_INIT(&s->named);
	LIST_INSERT_HEAD(&p->sessions, s, link);
	p->stats.live++;
	p->stats.sessions++;
	s->agent = agent_accept(p->base, p->store, fd, c, &s->row, &s->who);
	s->batch = evbuffer_new();
	s->held = evbuffer_new();
	s->timer = evtimer_new(p->base, on_login_timeout, s);
	s->end = (struct sess_end){ .base = p->base, .timer = s->timer, .agent = &s->agent,
				    .free_fn = pgs_free_v, .arg = s, .max_polls = 100 };
	if (!s->agent || !s->batch || !s->timer || !s->held) {
		if (!s->agent)
			close(fd);
		if (s->row > 0) {
			struct store_conn_end e = { .closed_us = al_now_us(), .reason = AL_REASON_INTERNAL,
						    .detail = "out of memory" };

			if (store_conn_close(p->store, s->row, &e) < 0)
				al_err("pg: could not record a failed start");
		}
		pgs_free(s);
		return -1;
	}
	evtimer_add(s->timer, &tv);
	bufferevent_setcb(s->agent, agent_read, agent_write, agent_event, s);
	bufferevent_enable(s->agent, EV_READ | EV_WRITE);
	s->cred = p->secrets ? secrets_find(p->secrets, res->credential) : NULL;
	if (!s->cred) {
		pgs_close(s, AL_REASON_INTERNAL, "28000", "resource %s: credential '%s' is not in the "
			  "secrets file", res->name, res->credential);
		return -1;
	}
	return 0;
}

int pgproxy_new(struct event_base *base, const struct al_config *cfg, struct store *st,
		struct tls_ca *ca, const struct al_secrets *secrets, struct approval *approval,
		struct pgproxy **out, char *err, size_t errlen)
{
	struct pgproxy *p = calloc(1, sizeof(*p));

	if (!p)
		return al_errf(err, errlen, "out of memory");
	p->base = base;
	p->cfg = cfg;
	p->store = st;
	p->ca = ca;
	p->secrets = secrets;
	p->approval = approval;
	LIST_INIT(&p->sessions);
	if (pg_cache_new(4096, &p->cache) < 0) {
		free(p);
		return al_errf(err, errlen, "out of memory");
	}
	*out = p;
	return 0;
}

void pgproxy_free(struct pgproxy *p)
{
	if (!p)
		return;
	while (!LIST_EMPTY(&p->sessions)) {
		struct pgs *s = LIST_FIRST(&p->sessions);

		pgs_close(s, AL_REASON_SHUTDOWN, NULL, "airlockd stopped");
		pgs_free(s);
	}
	for (size_t i = 0; i < p->n_ups; i++)
		SSL_CTX_free(p->ups[i].ctx);
	free(p->ups);
	pg_cache_free(p->cache);
	free(p->rec.p);
	free(p);
}

void pgproxy_set_config(struct pgproxy *p, const struct al_config *cfg, const struct al_secrets *secrets)
{
	p->cfg = cfg;
	p->secrets = secrets;
}

void pgproxy_stats(const struct pgproxy *p, struct pgproxy_stats *out)
{
	*out = p->stats;
}
