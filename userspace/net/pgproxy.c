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
#include <sys/queue.h>
#include <unistd.h>

#define STARTUP_TIMEOUT_S  30
#define MAX_PREPARED       4096    /* named statements + portals a session may hold */
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
};

struct qent {
	TAILQ_ENTRY(qent) link;
	enum qtype type;
	int64_t stmt;           /* Q_OUTCOME: statements row */
	int64_t start_us;
	int64_t rows;
	struct pg_buf bytes;    /* Q_SYNTH */
};
TAILQ_HEAD(qhead, qent);

/* A prepared statement or portal the agent named. */
struct named {
	LIST_ENTRY(named) link;
	char portal;            /* 'S' statement, 'P' portal */
	char *name;
	char *text;             /* statement: its SQL; portal: the statement's SQL */
	char *kind;
	char *fingerprint;
	char *relations;        /* JSON */
	int unbounded_write;
	char *params;           /* portal: JSON of the bound parameters */
	uint32_t *types;        /* statement: the parameter types its Parse declared (0: none) */
	uint16_t n_types;
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
	int mid_flow;           /* forwarded extended messages not yet closed by a Sync */
	struct nlist named;
	size_t n_named;
	struct event *timer;
	int agent_tls;
	/* who the agent is (for rules and reviewers) */
	struct agent_who who;           /* the agent (agent_who.c) */
	/* review: the last decide_query that asked for one */
	const struct al_rule *review_rule;
	char review_fp[256];
	char review_kind[32];
	int64_t review_stmt;
	int batch_review;       /* the batch being built needs review */
	/* parked: a request is pending and these exact bytes wait for it */
	int64_t parked;
	char *review_text;      /* what reviewers read */
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
	txt->len = 0;
	txt->oom = 0;
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

/* The first rule that matches this statement from this agent decides; none: allow. */
static const struct al_rule *decide(const struct pgs *s, const struct pg_stmt *st)
{
	struct al_subject subj = {
		.kind = (int)st->kind, .relations = (const char *const *)st->relations,
		.n_relations = st->n_relations, .unbounded_write = st->unbounded_write,
		.fingerprint = st->fingerprint,
	};

	agent_who_subject(&s->who, &subj);
	return config_decide(s->res, &subj);
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
	free(n->text);
	free(n->kind);
	free(n->fingerprint);
	free(n->relations);
	free(n->params);
	free(n->types);
	free(n);
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
		named_free(n);
	}
	pg_buf_free(&s->startup);
	pg_scram_free(s->scram);
	if (s->held)
		evbuffer_free(s->held);
	agent_gone_stop(&s->gone);
	free(s->review_text);
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

static void named_drop(struct pgs *s, char what, const char *name)
{
	struct named *n = named_find(s, what, name);

	if (n) {
		LIST_REMOVE(n, link);
		named_free(n);
		s->n_named--;
	}
}

static struct named *named_put(struct pgs *s, char what, const char *name)
{
	struct named *n;

	named_drop(s, what, name);
	if (s->n_named >= MAX_PREPARED)
		return NULL;
	n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name))) {
		free(n);
		return NULL;
	}
	n->portal = what;
	LIST_INSERT_HEAD(&s->named, n, link);
	s->n_named++;
	return n;
}

/* ---- sending -------------------------------------------------------------------------------- */

static void send_agent_buf(struct pgs *s, struct pg_buf *b)
{
	if (pg_buf_ok(b))
		bufferevent_write(s->agent, b->data, b->len);
}

/* ---- statement decisions -------------------------------------------------------------------- */

/*
 * Classifies a query string and decides it. Records one statements row per
 * statement (with `record` 0, only when something is denied). Returns 1 if
 * every statement is allowed, 0 if any is denied, -1 if it cannot be parsed
 * (denied too); deny_msg then says why.
 */
static int decide_query(struct pgs *s, const char *sql, const char *protocol, int record,
			struct pg_stmt_list *out)
{
	char err[400];
	const struct al_rule *deny_rule = NULL, *review_rule = NULL;
	const char *decision;
	size_t deny_i = 0, fp_len = 0;
	int64_t deny_id = 0;

	if (!store_accepting(s->p->store)) {
		/* Fail closed: what could not be recorded does not run (disk_full). */
		snprintf(s->deny_state, sizeof(s->deny_state), "53100");
		snprintf(s->deny_msg, sizeof(s->deny_msg), "airlock: the audit store is full: no statement "
			 "runs until it has room");
		s->p->stats.denied++;
		return 0;
	}
	snprintf(s->deny_state, sizeof(s->deny_state), "42501");
	if (pg_classify_cached(s->p->cache, sql, out, err, sizeof(err)) < 0) {
		/* Fail closed: what Airlock cannot read does not run. */
		deny_id = audit_stmt(s, protocol, sql, "unparsed", NULL, "[]", 0, NULL, "deny", "unparseable");
		snprintf(s->deny_msg, sizeof(s->deny_msg), "airlock: %s (request %lld)", err,
			 (long long)deny_id);
		return -1;
	}
	/* The strictest action over the statements: deny, then review, then allow. */
	for (size_t i = 0; i < out->n; i++) {
		const struct al_rule *r = decide(s, &out->stmts[i]);

		if (r && r->allow == AL_ACTION_DENY && !deny_rule) {
			deny_rule = r;
			deny_i = i;
		} else if (r && r->allow == AL_ACTION_REVIEW && !review_rule) {
			review_rule = r;
			snprintf(s->review_kind, sizeof(s->review_kind), "%s", pg_kind_name(out->stmts[i].kind));
		}
	}
	/* A string of several statements is reviewed and granted as the sequence of their
	 * fingerprints (only a review needs it). */
	s->review_fp[0] = '\0';
	for (size_t i = 0; review_rule && !deny_rule && i < out->n; i++) {
		int n = snprintf(s->review_fp + fp_len, sizeof(s->review_fp) - fp_len, "%s%s", i ? "+" : "",
				 out->stmts[i].fingerprint);

		if (n > 0 && (size_t)n < sizeof(s->review_fp) - fp_len)
			fp_len += (size_t)n;
	}
	if (!deny_rule && !review_rule && !record)
		return 1;
	decision = deny_rule ? "deny" : review_rule ? "review" : "allow";
	s->review_stmt = 0;
	for (size_t i = 0; i < out->n; i++) {
		struct pg_stmt *st = &out->stmts[i];
		const struct al_rule *r = decide(s, st);
		char *rel = relations_json(st);
		int64_t id;

		/* With one statement denied, none of the string runs. */
		id = audit_stmt(s, protocol, st->text, pg_kind_name(st->kind), st->fingerprint, rel,
				st->unbounded_write, NULL, decision, r ? r->text : NULL);
		free(rel);
		if (deny_rule && i == deny_i)
			deny_id = id;
		if (!s->review_stmt)
			s->review_stmt = id;
		if (!deny_rule) {
			struct qent *e = qent_new(Q_OUTCOME);

			if (e) {
				e->stmt = id;
				e->start_us = al_mono_us();
				TAILQ_INSERT_TAIL(&s->batch_outcomes, e, link);
			}
		}
	}
	if (deny_rule) {
		snprintf(s->deny_msg, sizeof(s->deny_msg),
			 "airlock: denied by rule '%s' (line %d) for %s on resource %s (request %lld)",
			 deny_rule->text, deny_rule->line, pg_kind_name(out->stmts[deny_i].kind),
			 s->res->name, (long long)deny_id);
		return 0;
	}
	if (review_rule) {
		s->review_rule = review_rule;
		free(s->review_text);
		s->review_text = strdup(sql);
		return 2;
	}
	return 1;
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
		TAILQ_FOREACH(e, &s->batch_outcomes, link)
			audit_outcome(s, e, NULL, "42501", s->deny_msg);
		if (s->held_term == 'Q') {
			q_clear(&s->batch_outcomes);
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
	grant = s->p->approval ? approval_grant_for(s->p->approval, s->review_fp, s->who.cgroup_id,
						    s->res->name) : 0;
	if (grant > 0) {
		if (approval_watch_grant(s->p->approval, grant, on_grant_event, s) < 0) {
			pgs_close(s, AL_REASON_INTERNAL, "53200", "out of memory");
			return;
		}
		release(s);
		return;
	}
	q.conn_id = s->row;
	q.stmt_id = s->review_stmt;
	agent_who_request(&s->who, &q);
	q.resource = s->res->name;
	q.protocol = "postgres";
	q.text = s->review_text ? s->review_text : "";
	q.kind = s->review_kind;
	q.fingerprint = s->review_fp;
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
	ok = decide_query(s, sql, "simple", 1, &l);
	pg_stmt_list_free(&l);
	if (ok <= 0) {
		if (q_error(s, ok < 0 ? "42601" : s->deny_state, s->deny_msg) < 0 ||
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

static int dup_into(char **dst, const char *src)
{
	free(*dst);
	*dst = src ? strdup(src) : NULL;
	return (!src || *dst) ? 0 : -1;
}

/* One message of the extended protocol, held in the batch until Sync or Flush. */
static int extended_msg(struct pgs *s, const struct pg_msg *m)
{
	const char *err;

	switch (m->type) {
	case 'P': {
		struct pg_stmt_list l = { 0 };
		struct pg_parse pp;
		struct named *n;
		int ok;

		if (pg_decode_parse(m, &pp, &err) < 0)
			return -1;
		ok = decide_query(s, pp.query, "extended", 0, &l);
		if (ok == 2)
			s->batch_review = 1;
		if (ok <= 0) {
			/* Denied or unreadable: decide_query recorded it; the id is in deny_msg. */
			s->batch_denied = 1;
			pg_stmt_list_free(&l);
			return 0;
		}
		n = named_put(s, 'S', pp.name);
		if (!n) {
			pg_stmt_list_free(&l);
			snprintf(s->deny_msg, sizeof(s->deny_msg),
				 "airlock: more than %d prepared statements and portals", MAX_PREPARED);
			s->batch_denied = 1;
			return 0;
		}
		if (dup_into(&n->text, pp.query) < 0)
			goto oom_l;
		free(n->types);
		n->types = NULL;
		n->n_types = 0;
		if (pp.n_types) {
			n->types = malloc(pp.n_types * sizeof(*n->types));
			if (!n->types)
				goto oom_l;
			for (uint16_t i = 0; i < pp.n_types; i++)
				n->types[i] = pg_parse_type(&pp, i);
			n->n_types = pp.n_types;
		}
		if (l.n >= 1) {
			/* A Parse holds one statement (the server refuses more). */
			n->relations = relations_json(&l.stmts[0]);
			if (dup_into(&n->kind, pg_kind_name(l.stmts[0].kind)) < 0 ||
			    dup_into(&n->fingerprint, l.stmts[0].fingerprint) < 0 || !n->relations)
				goto oom_l;
			n->unbounded_write = l.stmts[0].unbounded_write;
		} else if (dup_into(&n->kind, "empty") < 0) {
			goto oom_l;
		}
		pg_stmt_list_free(&l);
		return 0;
oom_l:
		pg_stmt_list_free(&l);
		return -2;
	}
	case 'B': {
		struct pg_bind b;
		struct named *st, *po;

		if (pg_decode_bind(m, &b, &err) < 0)
			return -1;
		st = named_find(s, 'S', b.stmt);
		po = named_put(s, 'P', b.portal);
		if (!po)
			return -2;
		if (st && (dup_into(&po->text, st->text) < 0 || dup_into(&po->kind, st->kind) < 0 ||
			   dup_into(&po->fingerprint, st->fingerprint) < 0 ||
			   dup_into(&po->relations, st->relations) < 0))
			return -2;
		po->unbounded_write = st ? st->unbounded_write : 0;
		po->params = bind_params_json(&b, st);
		return 0;
	}
	case 'E': {
		struct pg_execute ex;
		struct named *po;
		struct qent *e;

		if (pg_decode_execute(m, &ex, &err) < 0)
			return -1;
		po = named_find(s, 'P', ex.portal);
		e = qent_new(Q_OUTCOME);
		if (!e)
			return -2;
		e->stmt = audit_stmt(s, "extended", po && po->text ? po->text : "(unknown portal)",
				     po && po->kind ? po->kind : "utility", po ? po->fingerprint : NULL,
				     po ? po->relations : NULL, po ? po->unbounded_write : 0,
				     po ? po->params : NULL, "allow", NULL);
		e->start_us = al_mono_us();
		TAILQ_INSERT_TAIL(&s->batch_outcomes, e, link);
		return 0;
	}
	case 'C': {
		struct pg_target t;

		if (pg_decode_close(m, &t, &err) < 0)
			return -1;
		named_drop(s, t.what, t.name);
		return 0;
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
	struct qent *e;

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
		TAILQ_FOREACH(e, &s->batch_outcomes, link)
			audit_outcome(s, e, NULL, NULL, "not run: its batch was denied");
		q_clear(&s->batch_outcomes);
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

/* Builds the StartupMessage for upstream: the agent's settings, our login. */
static int build_startup(struct pgs *s, const struct pg_msg *m)
{
	const char *params[64];
	size_t n = 0, off = 0;
	const char *k, *v, *database = NULL;

	while (pg_startup_next(m, &off, &k, &v) == 1 && n + 4 < AL_ARRAY_LEN(params)) {
		/* The login is ours; options could set a role or any GUC. */
		if (strcmp(k, "user") == 0 || strcmp(k, "options") == 0 || strcmp(k, "replication") == 0)
			continue;
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
		if (build_startup(s, m) < 0) {
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

static void agent_read(struct bufferevent *bev, void *arg)
{
	struct pgs *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while ((s->state == P_STARTUP || s->state == P_READY) && !s->parked) {
		size_t avail = evbuffer_get_length(in), want;
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
	else if (what & BEV_EVENT_TIMEOUT)
		pgs_close(s, AL_REASON_LIMIT, "08P01", "startup took too long");
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
			pg_build_password(&b, s->cred->password);
			up_send(s, &b);
			break;
		case PG_AUTH_MD5:
			if (!s->cred->password)
				goto nopw;
			pg_md5_password(s->cred->user, s->cred->password, a.salt, out);
			pg_build_password(&b, out);
			up_send(s, &b);
			break;
		case PG_AUTH_SASL:
			if (!s->cred->password)
				goto nopw;
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
}

/* A message from upstream in the relaying state: account it, then pass it on. */
static void up_ready_msg(struct pgs *s, const struct pg_msg *m, const uint8_t *raw)
{
	struct qent *head = TAILQ_FIRST(&s->q);
	const char *err;

	switch (m->type) {
	case 'C': case 'I': case 's':
		if (head && head->type == Q_OUTCOME) {
			const char *tag = NULL;

			if (m->type == 'C')
				if (pg_decode_command_complete(m, &tag, &err) < 0)
					tag = NULL;
			audit_outcome(s, head, m->type == 'C' ? tag : m->type == 'I' ? "EMPTY" : "SUSPENDED",
				      NULL, NULL);
			TAILQ_REMOVE(&s->q, head, link);
			qent_free(head);
		}
		break;
	case 'E':
		if (head && head->type == Q_OUTCOME) {
			struct pg_error_fields f = { 0 };

			if (pg_decode_error(m, &f, &err) < 0)
			memset(&f, 0, sizeof(f));
			audit_outcome(s, head, NULL, f.sqlstate, f.message);
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
		/* Statements still waiting did not run (an earlier one failed). */
		while ((head = TAILQ_FIRST(&s->q)) != NULL && head->type == Q_OUTCOME) {
			audit_outcome(s, head, NULL, NULL, "not run");
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
		return;
	}
	default:
		break;
	}
	bufferevent_write(s->agent, raw, m->len);
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
		int n;

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
		if (s->state == P_UP_AUTH) {
			up_auth_msg(s, &m);
		} else {
			rec_msg(s, "B", &m, 1);
			up_ready_msg(s, &m, buf);
		}
		if (s->state == P_CLOSING)
			return;
		evbuffer_drain(in, (size_t)n);
		if (s->state == P_READY && full(s->agent, s)) {
			bufferevent_disable(s->up, EV_READ);
			return;
		}
	}
}

static void on_startup_timeout(evutil_socket_t fd, short what, void *arg)
{
	pgs_close(arg, AL_REASON_LIMIT, "08P01", "startup took longer than %d s", STARTUP_TIMEOUT_S);
	(void)fd;
	(void)what;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int pgproxy_start(struct pgproxy *p, int fd, const struct store_conn *c,
		  const struct al_addr *dst, uint16_t dst_port, const struct al_resource *res)
{
	struct timeval tv = { STARTUP_TIMEOUT_S, 0 };
	struct pgs *s = calloc(1, sizeof(*s));

	if (!s) {
		close(fd);
		return -1;
	}
	s->p = p;
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
	s->timer = evtimer_new(p->base, on_startup_timeout, s);
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
