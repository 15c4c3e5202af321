/* HTTPS sessions: ClientHello peek, TLS with a minted leaf, one HTTP/1.1 request at a time decided, credential injected, response relayed, audit. */
#include <airlock/httpproxy.h>
#include <airlock/approval.h>
#include <airlock/http.h>
#include <airlock/reason.h>

#include "k8s_rec.h"
#include "agent_who.h"
#include "agent_gone.h"
#include "host_name.h"
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
#include <openssl/ssl.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/queue.h>
#include <unistd.h>

#define HELLO_TIMEOUT_S 10      /* from accept to the end of the TLS handshake */
#define IDLE_TIMEOUT_S  120     /* between requests (a request has deadlines of its own) */

enum hstate {
	H_HELLO,        /* reading the ClientHello (raw) */
	H_TLS,          /* agent TLS handshake */
	H_HEAD,         /* reading a request */
	H_PARKED,       /* a request waits for reviewers */
	H_RESPONSE,     /* request forwarded; relaying the response */
	H_DRAIN,        /* answered before its body was all sent: the rest is read and dropped */
	H_TUNNEL,       /* after 101 Switching Protocols: raw both ways */
	H_CLOSING,
};

/* What the session's deadline (hs.deadline) is for. None restarts when bytes come, so an agent
 * that sends a byte now and then holds no session for longer than they allow. */
enum hdeadline {
	DL_NONE,
	DL_HANDSHAKE,   /* the ClientHello and the TLS handshake: HELLO_TIMEOUT_S from accept */
	DL_HEAD,        /* a request head: http_head_timeout from its first bytes */
	DL_BODY,        /* a request body: http_head_timeout of grace, then http_body_min_rate */
	DL_RESPONSE,    /* the response's head: http_response_timeout from the request's last byte
			 * handed to the upstream connection once that is up (resp_clock) */
};

struct up_ctx {
	const struct al_resource *res;
	SSL_CTX *ctx;
};

/* The last TLS session of each upstream context and name, offered again (as haproxy does):
 * a resumed handshake skips the certificate's decoding, the chain's verification and the
 * server's signature. Only a session verified for that name with that context is offered. */
#define UP_SESSIONS 64

struct up_sess {
	SSL_CTX *ctx;
	char name[256];
	SSL_SESSION *sess;
};

struct hs {
	LIST_ENTRY(hs) link;
	struct httpproxy *p;
	const struct al_resource *res;
	const struct al_secret *cred;
	int64_t row;
	struct bufferevent *agent, *up;
	enum hstate state;
	struct al_addr dst;
	uint16_t dst_port;
	char sni[256];
	char up_name[256];              /* SNI and the name checked upstream */
	uint64_t bytes_agent, bytes_up; /* whole connection */
	uint64_t nreq;
	struct event *timer;
	struct event *deadline;         /* on_deadline, for dl */
	enum hdeadline dl;
	int64_t body_t0;                /* DL_BODY: when the body's pace is measured from */
	uint64_t body_got;              /* and the bytes of it read since */
	struct sess_end end;            /* how it ends (sess_end.c) */
	short up_closed;                /* the upstream's end (BEV_EVENT_*), seen before its last bytes */
	int up_errno;
	int agent_eof;                  /* the agent sent its last bytes: what came before is answered */
	struct event *agent_closed;     /* its end, looked at once the bytes read with it are */
	/* who the agent is */
	struct agent_who who;           /* the agent (agent_who.c) */
	/* the request in flight */
	struct http_req req;
	struct http_command cmd;
	int have_cmd;
	int64_t hrow;                   /* http_requests row */
	int64_t t0;
	uint64_t req_up, req_down;      /* bytes of this request each way */
	int req_streaming;              /* its body goes on after the head (over http_max_body) */
	uint64_t body_left;             /* Content-Length still to relay */
	struct http_chunked body_ck;
	int is_head, is_upgrade, sent_continue;
	/* the response */
	struct http_resp resp;
	int resp_in_body;
	uint64_t resp_left;
	struct http_chunked resp_ck;
	int status;
	/* review */
	int64_t parked;
	struct evbuffer *held;
	struct agent_gone gone;         /* while parked: the agent's FIN, its reset */
	const struct al_rule *review_rule;
	/* the upgraded stream of an exec/attach, recorded for replay */
	struct k8s_rec *rec;
	char ws_chosen[64];             /* the WebSocket subprotocol the server's 101 chose */
};

struct httpproxy {
	struct event_base *base;
	const struct al_config *cfg;
	struct store *store;
	struct tls_ca *ca;
	const struct al_secrets *secrets;
	struct approval *approval;
	SSL_CTX *srv;                   /* agent side: ALPN and versions; the leaf is set per SSL */
	LIST_HEAD(, hs) sessions;
	struct up_ctx *ups;
	size_t n_ups;
	struct up_sess sess[UP_SESSIONS];
	size_t sess_next;
	struct httpproxy_stats stats;
};

static void hs_free(struct hs *s);
static void hs_free_v(void *s);
static void agent_read(struct bufferevent *bev, void *arg);
static void agent_write(struct bufferevent *bev, void *arg);
static void agent_event(struct bufferevent *bev, short what, void *arg);
static void up_read(struct bufferevent *bev, void *arg);
static void up_write(struct bufferevent *bev, void *arg);
static void up_event(struct bufferevent *bev, short what, void *arg);
static void up_drop(struct hs *s);
static void hs_close(struct hs *s, enum al_reason reason, const char *fmt, ...) AL_PRINTF(3, 4);

/* ---- audit -------------------------------------------------------------------------------- */

static void audit_batch(struct httpproxy *p)
{
	if (store_batch_begin(p->store) < 0)
		al_warn("https: audit rows are committed one by one");
}

/* Agent-supplied text need not be UTF-8: such strings are marked, not dropped. */
static json_t *jstr(const char *v)
{
	json_t *j = json_string(v ? v : "");

	return j ? j : json_string("(not UTF-8)");
}

static char *k8s_json(const struct http_command *c)
{
	json_t *o, *argv;
	char *out;

	if (!c->is_k8s)
		return NULL;
	o = json_object();
	argv = json_array();
	for (size_t i = 0; i < c->k8s.argc; i++)
		json_array_append_new(argv, jstr(c->k8s.argv[i]));
	json_object_set_new(o, "verb", jstr(c->k8s.verb));
	json_object_set_new(o, "namespace", jstr(c->k8s.ns));
	json_object_set_new(o, "pod", jstr(c->k8s.pod));
	json_object_set_new(o, "container", jstr(c->k8s.container));
	json_object_set_new(o, "argv", argv);
	out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return out;
}

static void audit_request(struct hs *s, const char *decision, const struct al_rule *rule)
{
	char *k = k8s_json(&s->cmd);
	struct store_http h = {
		.conn_id = s->row, .seq = (int64_t)s->nreq, .at_us = al_now_us(),
		.method = s->cmd.method, .host = s->cmd.host, .path = s->cmd.path, .query = s->cmd.query,
		.kind = s->cmd.kind, .headers_json = s->cmd.headers_json,
		.body_len = (int64_t)s->cmd.body_len,
		.body_sha256 = s->cmd.body_sha256[0] ? s->cmd.body_sha256 : NULL,
		.request_sha256 = s->cmd.request_sha256, .k8s_json = k, .fingerprint = s->cmd.fingerprint,
		.decision = decision, .rule = rule ? rule->text : NULL,
	};

	audit_batch(s->p);
	if (store_http_add(s->p->store, &h, &s->hrow) < 0)
		s->hrow = 0;
	free(k);
	s->p->stats.requests++;
}

static void audit_outcome(struct hs *s, int status, const char *decision, int64_t request_id,
			  const char *error)
{
	struct store_http_outcome o = {
		.status = status, .bytes_up = s->req_up, .bytes_down = s->req_down,
		.duration_us = al_mono_us() - s->t0, .decision = decision, .request_id = request_id,
		.error = error,
	};

	if (s->hrow <= 0)
		return;
	audit_batch(s->p);
	if (store_http_outcome(s->p->store, s->hrow, &o) < 0)
		al_err("https: could not record an outcome");
	s->hrow = 0;
}

/* ---- closing -------------------------------------------------------------------------------- */

/*
 * Ends a session and records why. If `last` bytes are given (an error
 * response), they go to the agent first and the session ends once they are
 * out.
 */
static void hs_end(struct hs *s, enum al_reason reason, const char *last, size_t last_len,
		   const char *detail)
{
	struct store_conn_end e = { 0 };
	char d[512];

	if (s->state == H_CLOSING)
		return;
	if (s->deadline)
		event_del(s->deadline);
	s->dl = DL_NONE;
	if (s->parked > 0 && s->p->approval)
		approval_cancel(s->p->approval, s->parked);
	s->parked = 0;
	agent_gone_stop(&s->gone);
	if (s->p->approval)
		approval_unwatch(s->p->approval, s);
	if (s->hrow > 0)
		audit_outcome(s, 0, NULL, 0, detail ? detail : al_reason_name(reason));
	snprintf(d, sizeof(d), "%s%s%s%s%s requests %llu", detail ? detail : "", detail ? "; " : "",
		 s->sni[0] ? "sni " : "", s->sni, s->sni[0] ? ";" : "", (unsigned long long)s->nreq);
	e.closed_us = al_now_us();
	e.bytes_up = s->bytes_agent;
	e.bytes_down = s->bytes_up;
	e.reason = reason;
	e.detail = d;
	k8s_rec_end(s->rec);
	s->rec = NULL;
	audit_batch(s->p);
	if (s->row > 0 && store_conn_close(s->p->store, s->row, &e) < 0)
		al_err("https session %lld: could not record its end", (long long)s->row);
	s->state = H_CLOSING;
	if (s->up)
		up_drop(s);
	if (last && s->agent) {
		sess_end_send_last(&s->end, last, last_len, 5);
		return;
	}
	if (s->agent && reason == AL_REASON_CLOSED) {
		/* What is still on its way to the agent goes out first. */
		sess_end_drain(&s->end);
		return;
	}
	sess_end_reap(&s->end);
}

static void hs_close(struct hs *s, enum al_reason reason, const char *fmt, ...)
{
	char detail[400] = "";
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof(detail), fmt, ap);
		va_end(ap);
	}
	hs_end(s, reason, NULL, 0, fmt ? detail : NULL);
}

static void hs_free(struct hs *s)
{
	LIST_REMOVE(s, link);
	s->p->stats.live--;
	if (s->p->approval)
		approval_unwatch(s->p->approval, s);
	if (s->agent)
		bufferevent_free(s->agent);
	if (s->up)
		bufferevent_free(s->up);
	if (s->timer)
		event_free(s->timer);
	if (s->deadline)
		event_free(s->deadline);
	agent_gone_stop(&s->gone);
	if (s->agent_closed)
		event_free(s->agent_closed);
	if (s->held)
		evbuffer_free(s->held);
	k8s_rec_end(s->rec);
	if (s->have_cmd)
		http_command_free(&s->cmd);
	agent_who_free(&s->who);
	free(s);
}

static void hs_free_v(void *s)
{
	hs_free(s);
}

/* ---- answers we give ourselves -------------------------------------------------------------- */

static const char *status_text(int code)
{
	switch (code) {
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 421: return "Misdirected Request";
	case 431: return "Request Header Fields Too Large";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

/*
 * A JSON error response: {error, reason, request_id}; for Kubernetes API
 * paths also the fields of a metav1.Status, so kubectl prints the reason.
 */
static char *error_response(int code, const char *error, const char *reason, int64_t request_id,
			    int k8s, int close_conn, size_t *len)
{
	json_t *o = json_object();
	char *body, *out = NULL, msg[600];
	int n;

	json_object_set_new(o, "error", json_string(error));
	json_object_set_new(o, "reason", jstr(reason));
	if (request_id > 0)
		json_object_set_new(o, "request_id", json_integer(request_id));
	else
		json_object_set_new(o, "request_id", json_null());
	if (k8s) {
		snprintf(msg, sizeof(msg), "%s: %s (request %lld)", error, reason, (long long)request_id);
		json_object_set_new(o, "kind", json_string("Status"));
		json_object_set_new(o, "apiVersion", json_string("v1"));
		json_object_set_new(o, "metadata", json_object());
		json_object_set_new(o, "status", json_string("Failure"));
		json_object_set_new(o, "message", jstr(msg));
		json_object_set_new(o, "code", json_integer(code));
	}
	body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!body)
		return NULL;
	n = asprintf(&out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		     "%s\r\n%s\n", code, status_text(code), strlen(body) + 1,
		     close_conn ? "Connection: close\r\n" : "", body);
	free(body);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return out;
}

/* Sends an error for the current request; closes the connection if it cannot go on. */
static void answer_error(struct hs *s, int code, const char *error, const char *reason,
			 int64_t request_id, int close_conn, enum al_reason why)
{
	size_t len = 0;
	int k8s = s->have_cmd && strncmp(s->cmd.path, "/api", 4) == 0;
	char *r = error_response(code, error, reason, request_id, k8s, close_conn, &len);

	s->status = code;
	s->req_down += len;
	if (!r) {
		hs_close(s, AL_REASON_INTERNAL, "out of memory");
		return;
	}
	if (close_conn) {
		char d[300];

		snprintf(d, sizeof(d), "%d %s", code, reason);
		hs_end(s, why, r, len, d);
		free(r);
		return;
	}
	bufferevent_write(s->agent, r, len);
	free(r);
}

/* ---- deadlines ----------------------------------------------------------------------------- */

static void dl_set(struct hs *s, enum hdeadline what, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	s->dl = what;
	evtimer_add(s->deadline, &tv);
}

static void dl_off(struct hs *s)
{
	if (s->dl == DL_NONE)
		return;
	s->dl = DL_NONE;
	event_del(s->deadline);
}

/* The request's head is read and its body starts: from now on the body keeps pace. */
static void body_pace(struct hs *s)
{
	s->body_t0 = al_mono_us();
	s->body_got = 0;
	if (s->p->cfg->http_body_min_rate)
		dl_set(s, DL_BODY, s->p->cfg->http_head_timeout_ms);
	else
		dl_off(s);
}

/*
 * The request is all with the upstream connection: the response's head is due within
 * http_response_timeout. Called wherever that may have become true (the request sent whole,
 * a streamed body's end, the upstream's TLS handshake done); it starts the clock once. Not
 * before the connection is up (connect_timeout bounds that), nor while a parked request waits
 * (it is not sent yet). Only the head is timed: a body may stream for as long as the server
 * sends it (kubectl logs -f, a watch), and an upgraded stream has no deadline at all.
 */
static void resp_clock(struct hs *s)
{
	if (s->state != H_RESPONSE || s->req_streaming || s->resp_in_body || s->dl == DL_RESPONSE ||
	    !s->p->cfg->http_response_timeout_ms || !s->up || !tls_stream_ready(s->up))
		return;
	dl_set(s, DL_RESPONSE, s->p->cfg->http_response_timeout_ms);
}

/* 1 if the agent's bytes wait on Airlock or the upstream rather than the other way round:
 * reading it is paused (backpressure), or the upstream has not taken what it sent. */
static int agent_held_back(const struct hs *s)
{
	struct bufferevent *under;

	if (!(bufferevent_get_enabled(s->agent) & EV_READ))
		return 1;
	if (!s->up)
		return 0;
	under = bufferevent_get_underlying(s->up);
	return evbuffer_get_length(bufferevent_get_output(s->up)) > 0 ||
	       (under && evbuffer_get_length(bufferevent_get_output(under)) > 0);
}

/* Ends the session of an agent that sends too slowly: a 408 if nothing of an answer to this
 * request went to it yet, else after what did. */
static void too_slow(struct hs *s, const char *why)
{
	if (s->hrow > 0)
		audit_outcome(s, 408, NULL, 0, why);
	if (s->state == H_HEAD || s->req_down == 0)
		answer_error(s, 408, "airlock: request timeout", why, 0, 1, AL_REASON_LIMIT);
	else
		hs_end(s, AL_REASON_LIMIT, "", 0, why);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct hs *s = arg;
	const struct al_config *cfg = s->p->cfg;
	enum hdeadline dl = s->dl;
	int64_t now = al_mono_us(), due;
	char why[300];

	(void)fd;
	(void)what;
	s->dl = DL_NONE;
	if (s->state == H_CLOSING)
		return;
	switch (dl) {
	case DL_HANDSHAKE:
		hs_close(s, AL_REASON_LIMIT, "no TLS handshake within %d s", HELLO_TIMEOUT_S);
		return;
	case DL_HEAD:
		snprintf(why, sizeof(why), "the request head did not come whole within http_head_timeout "
			 "(%u ms)", cfg->http_head_timeout_ms);
		too_slow(s, why);
		return;
	case DL_BODY:
		break;
	case DL_RESPONSE: {
		/* The agent's answer is ours; the upstream's, were it to come, goes nowhere. */
		int64_t id = s->hrow;

		if (s->state != H_RESPONSE || s->resp_in_body)
			return;
		snprintf(why, sizeof(why), "the upstream sent no response within http_response_timeout "
			 "(%u ms) of the request", cfg->http_response_timeout_ms);
		audit_outcome(s, 504, NULL, 0, why);
		answer_error(s, 504, "airlock: upstream timeout", why, id, 1, AL_REASON_UPSTREAM_TIMEOUT);
		return;
	}
	default:
		return;
	}
	if (!cfg->http_body_min_rate)
		return;
	if (agent_held_back(s)) {
		/* Not the agent's pace: measure it afresh once it may send again. */
		s->body_t0 = now;
		s->body_got = 0;
		dl_set(s, DL_BODY, cfg->http_head_timeout_ms);
		return;
	}
	due = s->body_t0 + (int64_t)cfg->http_head_timeout_ms * 1000 +
	      (int64_t)(s->body_got * 1000000 / cfg->http_body_min_rate);
	if (now < due) {
		dl_set(s, DL_BODY, (uint64_t)(due - now + 999) / 1000);
		return;
	}
	snprintf(why, sizeof(why), "the request body came slower than http_body_min_rate (%zu bytes a "
		 "second, after %u ms): %llu bytes in %lld ms", cfg->http_body_min_rate,
		 cfg->http_head_timeout_ms, (unsigned long long)s->body_got, (long long)(now - s->body_t0) / 1000);
	too_slow(s, why);
}

/* ---- upstream ------------------------------------------------------------------------------ */

static struct up_sess *up_sess_find(struct httpproxy *p, const SSL_CTX *ctx, const char *name)
{
	for (size_t i = 0; i < UP_SESSIONS; i++)
		if (p->sess[i].sess && p->sess[i].ctx == ctx && strcmp(p->sess[i].name, name) == 0)
			return &p->sess[i];
	return NULL;
}

static void up_sess_clear(struct httpproxy *p)
{
	for (size_t i = 0; i < UP_SESSIONS; i++) {
		SSL_SESSION_free(p->sess[i].sess);
		p->sess[i].sess = NULL;
	}
}

/* OpenSSL's new-session callback on upstream connections: keeps the newest one (1: taken). */
static int up_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct hs *s = SSL_get_app_data(ssl);
	SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
	struct up_sess *e;
	size_t i;

	if (!s || !SSL_SESSION_is_resumable(sess))
		return 0;
	/* Not for a context a reload retired: another may come to have its address. */
	for (i = 0; i < s->p->n_ups && s->p->ups[i].ctx != ctx; i++)
		;
	if (i == s->p->n_ups)
		return 0;
	e = up_sess_find(s->p, ctx, s->up_name);
	if (!e) {
		e = &s->p->sess[s->p->sess_next];
		s->p->sess_next = (s->p->sess_next + 1) % UP_SESSIONS;
		snprintf(e->name, sizeof(e->name), "%s", s->up_name);
		e->ctx = ctx;
	}
	SSL_SESSION_free(e->sess);
	e->sess = sess;
	return 1;
}

static SSL_CTX *up_ssl_ctx(struct httpproxy *p, const struct al_resource *res,
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
	if (cred && cred->sslcert &&
	    (SSL_CTX_use_certificate_chain_file(ctx, cred->sslcert) != 1 ||
	     SSL_CTX_use_PrivateKey_file(ctx, cred->sslkey, SSL_FILETYPE_PEM) != 1 ||
	     SSL_CTX_check_private_key(ctx) != 1)) {
		snprintf(err, errlen, "client certificate %s / key %s unusable", cred->sslcert, cred->sslkey);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, up_new_session);
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

/*
 * Closes the upstream connection, with a close_notify when its TLS is up: OpenSSL retires
 * the session of a connection freed without one, and the next connection could not resume.
 * The close_notify still goes out after the free: the socket's push (sock_out.c) holds it.
 */
static void up_drop(struct hs *s)
{
	SSL *ssl = tls_stream_ssl(s->up);

	if (ssl && SSL_is_init_finished(ssl)) {
		(void)SSL_shutdown(ssl);
		ERR_clear_error();
	}
	bufferevent_free(s->up);
	s->up = NULL;
}

/* Opens the upstream TLS connection; writes queue until it is up. */
static int up_open(struct hs *s)
{
	static const unsigned char alpn[] = "\x08http/1.1";
	struct sockaddr_storage ss;
	socklen_t len = (socklen_t)al_addr_to_sockaddr(&s->dst, s->dst_port, &ss);
	struct timeval tv = {
		.tv_sec = s->p->cfg->connect_timeout_ms / 1000,
		.tv_usec = (s->p->cfg->connect_timeout_ms % 1000) * 1000,
	};
	struct bufferevent *raw;
	struct up_sess *prev;
	char err[256] = "";
	SSL_CTX *ctx;
	SSL *ssl;

	raw = sock_out_new(s->p->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!raw)
		return -1;
	if (bufferevent_socket_connect(raw, (struct sockaddr *)&ss, (int)len) < 0) {
		bufferevent_free(raw);
		return -1;
	}
	ctx = up_ssl_ctx(s->p, s->res, s->cred, err, sizeof(err));
	ssl = ctx ? SSL_new(ctx) : NULL;
	prev = ssl ? up_sess_find(s->p, ctx, s->up_name) : NULL;
	if (!ssl || tls_client_prepare(ssl, s->up_name, s->res->upstream_tls ==
				       AL_UPSTREAM_TLS_VERIFY_FULL ? TLS_VERIFY_FULL : TLS_VERIFY_NONE) < 0 ||
	    SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1) != 0 || SSL_set_app_data(ssl, s) != 1 ||
	    (prev && SSL_set_session(ssl, prev->sess) != 1)) {
		if (ssl)
			SSL_free(ssl);
		bufferevent_free(raw);
		al_warn("https: upstream TLS setup for %s failed: %s", s->res->name, err);
		return -1;
	}
	s->up = tls_stream_new(raw, ssl, TLS_STREAM_CONNECT, BEV_OPT_CLOSE_ON_FREE);
	if (!s->up) {
		SSL_free(ssl);
		bufferevent_free(raw);
		return -1;
	}
	s->up_closed = 0;
	bufferevent_setcb(s->up, up_read, up_write, up_event, s);
	bufferevent_set_timeouts(s->up, NULL, &tv);
	bufferevent_enable(s->up, EV_READ | EV_WRITE);
	return 0;
}

/* Backpressure: a side whose output is full stops the other side's reading. */
static int full(struct bufferevent *bev, const struct hs *s)
{
	return evbuffer_get_length(bufferevent_get_output(bev)) >= s->p->cfg->relay_buffer;
}

/* A run of bytes to send. */
struct span {
	const void *p;
	size_t len;
};

/* Appends the spans to out in one piece: the TLS filter makes a record of each append. */
static int add_spans(struct evbuffer *out, const struct span *v, size_t n)
{
	struct evbuffer_iovec vec;
	size_t total = 0;
	char *d;

	for (size_t i = 0; i < n; i++)
		total += v[i].len;
	if (total == 0)
		return 0;
	if (evbuffer_reserve_space(out, (ev_ssize_t)total, &vec, 1) != 1)
		return -1;
	d = vec.iov_base;
	for (size_t i = 0; i < n; i++) {
		memcpy(d, v[i].p, v[i].len);
		d += v[i].len;
	}
	vec.iov_len = total;
	return evbuffer_commit_space(out, &vec, 1);
}

/*
 * The header the resource's credential adds upstream, if it adds one: it replaces the agent's
 * Authorization and Proxy-Authorization, and any header of its own name (http_forward_drops).
 * On a Kubernetes stream (exec, attach, port-forward) the WebSocket extensions the agent offers
 * are dropped too: Airlock records such a stream by decoding it, which it cannot do under
 * permessage-deflate; offered none, the API server uses none, and the client then sends none
 * (RFC 6455 9.1). A 101 that takes one anyway is answered 502 (up_read).
 */
static struct http_cred cred_header(const struct hs *s)
{
	struct http_cred c = { 0 };

	if (s->cred && s->cred->header) {
		c.name = s->cred->header;
		c.len = strcspn(s->cred->header, ":");
	} else if (s->cred && s->cred->bearer) {
		c.name = "Authorization";
		c.len = 13;
	}
	return c;
}

/*
 * Writes the request upstream, head and held body in one piece, without the
 * headers http_forward_drops names and with the resource's credential. Everything
 * else goes as the agent sent it: what the reviewers' text (http_command_text)
 * shows.
 */
static int send_request(struct hs *s, const uint8_t *buf)
{
	const struct http_req *r = &s->req;
	struct http_cred cred = cred_header(s);
	int inject = cred.name != NULL, dropped = 0;
	size_t body = r->body_buffered ? r->total - r->head_len : 0;
	struct span v[HTTP_MAX_HEADERS + 6];
	size_t nv = 0, n = 0, from = 0;

	/* The agent's bytes but the headers dropped, in as few runs as there are gaps. */
	for (size_t i = 0; i < r->n_hdr; i++) {
		const struct http_header *h = &r->hdr[i];
		size_t end = i + 1 < r->n_hdr ? r->hdr[i + 1].name.off : r->head_len - 2;

		if (!http_forward_drops(buf, r, &s->cmd, &cred, h))
			continue;
		if (h->name.off > from)
			v[nv++] = (struct span){ buf + from, h->name.off - from };
		n += h->name.off - from;
		from = end;
		dropped = 1;
	}
	if (!inject && !dropped) {
		/* Unchanged: the head and its body as they came. */
		v[nv++] = (struct span){ buf, r->head_len + body };
		n = r->head_len;
	} else {
		v[nv++] = (struct span){ buf + from, r->head_len - 2 - from };
		n += r->head_len - 2 - from;
		if (inject && s->cred->header) {
			v[nv++] = (struct span){ s->cred->header, strlen(s->cred->header) };
			v[nv++] = (struct span){ "\r\n", 2 };
		} else if (inject) {
			v[nv++] = (struct span){ "Authorization: Bearer ", 22 };
			v[nv++] = (struct span){ s->cred->bearer, strlen(s->cred->bearer) };
			v[nv++] = (struct span){ "\r\n", 2 };
		}
		v[nv++] = (struct span){ "\r\n", 2 };
		v[nv++] = (struct span){ buf + r->head_len, body };
		n += 2;
	}
	if (add_spans(bufferevent_get_output(s->up), v, nv) < 0)
		return -1;
	s->req_up += n + body;
	return 0;
}

static void agent_continue(struct hs *s);

/* Sends the request (head rewritten, body as it came) upstream and waits for the response. */
static void forward(struct hs *s, const uint8_t *buf)
{
	const struct http_req *r = &s->req;

	if (!s->up && up_open(s) < 0) {
		answer_error(s, 502, "airlock: upstream unavailable", "cannot open the upstream connection",
			     0, 1, AL_REASON_UPSTREAM_UNREACH);
		return;
	}
	if (send_request(s, buf) < 0) {
		hs_close(s, AL_REASON_INTERNAL, "out of memory");
		return;
	}
	s->req_streaming = !r->body_buffered;
	if (s->req_streaming) {
		s->body_left = r->content_length;
		http_chunked_init(&s->body_ck);
		body_pace(s);
	}
	http_resp_init(&s->resp);
	s->resp_in_body = 0;
	s->state = H_RESPONSE;
	resp_clock(s);
}

/* ---- review -------------------------------------------------------------------------------- */

/*
 * A half-close is no hang-up: an agent that sent its request and its FIN (printf | nc, a
 * client's shutdown(SHUT_WR)) still reads the answer. One that closed its socket answers
 * the next bytes it gets with a reset, so it gets bytes a TLS 1.3 client takes in its
 * stride, a session ticket; the reset ends the session. (Over TLS 1.2 there are no such
 * bytes: a closed agent is found when its answer cannot be written.)
 */
static void on_agent_gone(void *arg, enum agent_gone_what what)
{
	struct hs *s = arg;
	SSL *ssl = tls_stream_ssl(s->agent);

	if (what == AGENT_GONE_FIN) {
		if (ssl && SSL_version(ssl) == TLS1_3_VERSION && SSL_new_session_ticket(ssl) == 1)
			(void)SSL_do_handshake(ssl);
		ERR_clear_error();
		return;
	}
	hs_close(s, AL_REASON_AGENT_RESET, "agent left while request %lld was pending", (long long)s->parked);
}

static void on_grant_event(void *arg, int64_t grant_id, enum approval_outcome o, const char *reason)
{
	struct hs *s = arg;

	if (o == APPROVAL_REVOKED)
		hs_close(s, AL_REASON_POLICY_DENY, "grant %lld was revoked: %s", (long long)grant_id,
			 reason ? reason : "");
}

static void on_review(void *arg, int64_t id, enum approval_outcome o, const char *reason)
{
	struct hs *s = arg;
	char why[400];

	if (s->parked != id)
		return;
	s->parked = 0;
	agent_gone_stop(&s->gone);
	if (o == APPROVAL_APPROVED) {
		/* Exactly the bytes reviewers saw: they were moved out of the input when parked. */
		uint8_t *held = evbuffer_pullup(s->held, -1);

		forward(s, held);
		evbuffer_drain(s->held, evbuffer_get_length(s->held));
		if (s->state == H_RESPONSE && s->req_streaming)
			bev_read_on(s->agent);
		return;
	}
	evbuffer_drain(s->held, evbuffer_get_length(s->held));
	if (o == APPROVAL_ABORTED) {
		audit_outcome(s, 503, "aborted", id, "airlockd is stopping");
		answer_error(s, 503, "airlock: aborted", "airlockd is stopping", id, 1, AL_REASON_SHUTDOWN);
		return;
	}
	snprintf(why, sizeof(why), "request %lld %s%s%s", (long long)id,
		 o == APPROVAL_TIMEOUT ? "timed out" : "was denied by a reviewer",
		 reason && *reason ? ": " : "", reason ? reason : "");
	s->p->stats.denied++;
	audit_outcome(s, 403, o == APPROVAL_TIMEOUT ? "timeout" : "denied", id, why);
	answer_error(s, 403, "airlock: denied", why, id, !s->req.keep_alive, AL_REASON_POLICY_DENY);
	if (s->state == H_CLOSING)
		return;
	agent_continue(s);
}

/* The request needs review; its bytes are already in s->held. */
static void park(struct hs *s)
{
	struct approval_req q = { 0 };
	int64_t grant, id;

	q.conn_id = s->row;
	q.stmt_id = s->hrow;
	agent_who_request(&s->who, &q);
	q.resource = s->res->name;
	q.fingerprint = s->cmd.fingerprint;
	grant = s->p->approval ? approval_grant_for(s->p->approval, &q) : 0;
	if (grant > 0) {
		if (approval_watch_grant(s->p->approval, grant, on_grant_event, s) < 0) {
			hs_close(s, AL_REASON_INTERNAL, "out of memory");
			return;
		}
		s->parked = -2;
		on_review(s, -2, APPROVAL_APPROVED, NULL);
		return;
	}
	q.protocol = "http";
	q.text = s->cmd.text;
	q.kind = s->cmd.kind;
	q.bytes = evbuffer_pullup(s->held, -1);
	q.len = evbuffer_get_length(s->held);
	q.rule = s->review_rule;
	id = s->p->approval ? approval_submit(s->p->approval, &q, on_review, s) : -1;
	if (id < 0) {
		s->parked = -1;
		on_review(s, -1, APPROVAL_DENIED, "the review request could not be stored");
		return;
	}
	s->p->stats.held++;
	s->parked = id;
	s->state = H_PARKED;
	bufferevent_disable(s->agent, EV_READ);
	if (agent_gone_watch(&s->gone, s->p->base, bufferevent_getfd(s->agent), on_agent_gone, s) < 0)
		al_warn("https session %lld: an agent that leaves will not be noticed before request %lld "
			"is decided", (long long)s->row, (long long)id);
}

/* ---- requests ------------------------------------------------------------------------------ */

/* The previous request is done: read the next one (it may be buffered already). */
static void agent_continue(struct hs *s)
{
	struct timeval tv = { IDLE_TIMEOUT_S, 0 };

	if (s->state == H_CLOSING)
		return;
	dl_off(s);
	if (s->have_cmd) {
		http_command_free(&s->cmd);
		s->have_cmd = 0;
	}
	if (!s->req.keep_alive) {
		hs_end(s, AL_REASON_CLOSED, NULL, 0, NULL);
		return;
	}
	http_req_init(&s->req);
	s->sent_continue = 0;
	s->state = H_HEAD;
	if (s->agent_eof) {
		/* Answer what it sent before it closed, then close. */
		if (evbuffer_get_length(bufferevent_get_input(s->agent)))
			agent_read(s->agent, s);
		if (s->state == H_HEAD)
			hs_end(s, AL_REASON_CLOSED, NULL, 0, s->req.pos ? "agent left mid-request" : NULL);
		return;
	}
	bufferevent_set_timeouts(s->agent, &tv, NULL);
	bev_read_on(s->agent);
	if (evbuffer_get_length(bufferevent_get_input(s->agent)))
		agent_read(s->agent, s);
}

static int strictness(const struct al_rule *r)
{
	return !r ? 0 : r->allow == AL_ACTION_DENY ? 2 : r->allow == AL_ACTION_REVIEW ? 1 : 0;
}

/*
 * The rule that decides the request: the strictest (deny, then review, then allow) over its
 * method and each method it asks the server to run instead (X-HTTP-Method-Override and the
 * like, http_command.overrides), since the server may take either; among equals, the request
 * line's. A POST asking to be a DELETE meets the DELETE rules.
 */
static const struct al_rule *decide_rule(const struct hs *s, struct al_subject *subj)
{
	const struct al_rule *best, *r;

	subj->method = s->cmd.method;
	best = config_decide(s->res, subj);
	for (size_t i = 0; i < s->cmd.n_overrides; i++) {
		subj->method = s->cmd.overrides[i];
		r = config_decide(s->res, subj);
		if (strictness(r) > strictness(best))
			best = r;
	}
	subj->method = s->cmd.method;
	return best;
}

/*
 * 1 (and why) if the request is for another server than the one its TLS connection named. The
 * server picks its virtual host by the Host (or an absolute-form target's host, which the
 * parser has matched to it), and the resource's credential would go to that one: its name
 * must be the ClientHello's server name, the one the resource was chosen by and the leaf
 * minted for; with none, a name or address the resource names. Ports are not compared (a
 * Host may carry the port or leave it out). An HTTP/1.0 request without a Host goes to the
 * server the connection names.
 */
static int misdirected(const struct hs *s, const uint8_t *buf, char *why, size_t len)
{
	const struct http_req *r = &s->req;
	char host[256];

	if (r->host.len == 0)
		return 0;
	if (host_name_of_host((const char *)buf + r->host.off, r->host.len, host, sizeof(host)) < 0) {
		snprintf(why, len, "the Host is not a host name");
		return 1;
	}
	if (s->sni[0] ? strcmp(host, s->sni) == 0 : host_named_by(s->res, host))
		return 0;
	if (s->sni[0])
		snprintf(why, len, "Host '%.120s' is not the server name '%.120s' the TLS connection was "
			 "made for", host, s->sni);
	else
		snprintf(why, len, "Host '%.120s' is not a name or address of resource %s (the TLS "
			 "connection named no server)", host, s->res->name);
	return 1;
}

/*
 * Answers the request (audited already) with code and why instead of sending it upstream; the
 * connection goes on when its body was read and it may.
 */
static void refuse(struct hs *s, struct evbuffer *in, int code, const char *error, const char *why)
{
	const struct http_req *r = &s->req;
	int64_t id = s->hrow;

	s->p->stats.denied++;
	evbuffer_drain(in, r->total);
	audit_outcome(s, code, NULL, 0, why);
	/* An unread body ends the connection; a held one was read whole. */
	answer_error(s, code, error, why, id, !r->body_buffered || !r->keep_alive, AL_REASON_POLICY_DENY);
	if (s->state != H_CLOSING)
		agent_continue(s);
}

static void decide(struct hs *s, struct evbuffer *in, const uint8_t *buf)
{
	const struct http_req *r = &s->req;
	struct http_cred cred = cred_header(s);
	struct al_subject subj = { 0 };
	const struct al_rule *rule;
	char err[256], why[400];

	s->nreq++;
	s->t0 = al_mono_us();
	s->req_up = s->req_down = 0;
	s->status = 0;
	s->is_head = http_span_ieq(buf, r->method, "HEAD");
	s->is_upgrade = r->upgrade;
	if (http_command_parse(buf, r, &s->cmd, err, sizeof(err)) < 0) {
		s->p->stats.malformed++;
		answer_error(s, 400, "airlock: bad request", err, 0, 1, AL_REASON_AGENT_RESET);
		return;
	}
	s->have_cmd = 1;
	if (!store_accepting(s->p->store)) {
		/* Fail closed: what could not be recorded does not go upstream. */
		s->p->stats.denied++;
		answer_error(s, 503, "airlock: the audit store is full",
			     "no request goes upstream until the store has room", 0, 1, AL_REASON_STORE_FULL);
		return;
	}
	if (misdirected(s, buf, why, sizeof(why))) {
		/* Not the policy's answer (airlockctl policy test passes it over, as a 400's). */
		audit_request(s, "error", NULL);
		refuse(s, in, 421, "airlock: misdirected request", why);
		return;
	}
	if (http_span_ieq(buf, r->method, "TRACE")) {
		/* A server answering TRACE echoes the request it got: the resource's credential with it. */
		audit_request(s, "error", NULL);
		refuse(s, in, 405, "airlock: method not allowed",
		       "TRACE is refused: the server would echo the request back, the credential Airlock adds with it");
		return;
	}
	agent_who_subject(&s->who, &subj);
	subj.path = s->cmd.path;
	subj.k8s_exec = s->cmd.is_k8s && strcmp(s->cmd.k8s.verb, "portforward") != 0;
	rule = decide_rule(s, &subj);
	/* What reviewers read, built for them only (a megabyte of body is copied and checked), and
	 * for a Kubernetes stream, whose recording is named by its headline (k8s_rec.c). */
	if (((rule && rule->allow == AL_ACTION_REVIEW) || s->cmd.is_k8s) &&
	    http_command_text(buf, r, &cred, &s->cmd) < 0) {
		hs_close(s, AL_REASON_INTERNAL, "out of memory");
		return;
	}
	if (rule && rule->allow == AL_ACTION_REVIEW && (!r->body_buffered || s->cmd.body_unreadable[0])) {
		/* No one could review bytes that were not held, or that they cannot read. */
		audit_request(s, "deny", rule);
		if (!r->body_buffered)
			snprintf(why, sizeof(why), "rule '%s' (line %d) needs review, and the body is larger "
				 "than http_max_body (%zu bytes)", rule->text, rule->line, s->p->cfg->http_max_body);
		else
			snprintf(why, sizeof(why), "rule '%s' (line %d) needs review, and reviewers could not "
				 "read the body: %s", rule->text, rule->line, s->cmd.body_unreadable);
		refuse(s, in, 403, "airlock: denied", why);
		return;
	}
	if (r->upgrade && !s->cmd.is_k8s && (!rule || rule->allow == AL_ACTION_ALLOW)) {
		/*
		 * After a 101 the connection is a stream (WebSocket, h2c, ...) Airlock relays without
		 * deciding anything in it: h2c would carry any request under this connection's
		 * credential, a WebSocket whatever its server takes. So only an upgrade someone
		 * decided on goes: a Kubernetes exec or attach (decided by its argv, and recorded) or
		 * port-forward, or a request a reviewer approved. An allow rule allows requests, not
		 * the unseen ones a stream would carry. Not the policy's answer: policy test passes
		 * it over.
		 */
		const struct http_header *u = http_req_header(r, buf, "upgrade");

		snprintf(why, sizeof(why), "an upgrade (to %.*s) becomes a stream Airlock does not decide: only "
			 "a Kubernetes exec, attach or port-forward, or a request reviewers approved, may "
			 "upgrade", u ? (int)(u->value.len > 40 ? 40 : u->value.len) : 1,
			 u ? (const char *)buf + u->value.off : "?");
		audit_request(s, "error", rule);
		refuse(s, in, 403, "airlock: denied", why);
		return;
	}
	audit_request(s, rule ? config_action_name(rule->allow) : "allow", rule);
	if (rule && rule->allow == AL_ACTION_DENY) {
		snprintf(why, sizeof(why), "denied by rule '%s' (line %d) on resource %s", rule->text,
			 rule->line, s->res->name);
		refuse(s, in, 403, "airlock: denied", why);
		return;
	}
	if (rule && rule->allow == AL_ACTION_REVIEW) {
		if (evbuffer_remove_buffer(in, s->held, r->total) != (int)r->total) {
			hs_close(s, AL_REASON_INTERNAL, "out of memory");
			return;
		}
		s->review_rule = rule;
		park(s);
		return;
	}
	forward(s, buf);
	if (s->state != H_RESPONSE)
		return;
	evbuffer_drain(in, r->total);
}

/*
 * Relays the part of a streamed request body that is in the agent's input; in H_DRAIN drops
 * it instead, and once it has all come goes on to the next request (or ends the session).
 */
static void stream_body(struct hs *s)
{
	struct evbuffer *in = bufferevent_get_input(s->agent);
	size_t avail = evbuffer_get_length(in), take;

	if (!s->req_streaming || avail == 0)
		return;
	if (s->req.framing == HTTP_BODY_LENGTH) {
		take = avail < s->body_left ? avail : (size_t)s->body_left;
		s->body_left -= take;
	} else {
		const uint8_t *b = evbuffer_pullup(in, (ev_ssize_t)avail);
		int rc = http_chunked_feed(&s->body_ck, b, avail, &take);

		while (rc == HTTP_NEED_MORE && take < avail) {
			size_t more;

			rc = http_chunked_feed(&s->body_ck, b + take, avail - take, &more);
			take += more;
			if (more == 0)
				break;
		}
		if (rc == HTTP_ERROR && s->req_down == 0) {
			answer_error(s, 400, "airlock: bad request", s->body_ck.error, 0, 1,
				     AL_REASON_AGENT_RESET);
			return;
		}
		if (rc == HTTP_ERROR) {
			/* A response is on its way (or was sent): no answer of ours can follow it. */
			hs_close(s, AL_REASON_AGENT_RESET, "chunked request body: %s", s->body_ck.error);
			return;
		}
		if (rc == HTTP_DONE)
			s->body_left = 0;
		else
			s->body_left = 1;
	}
	if (take && s->state == H_DRAIN) {
		evbuffer_drain(in, take);
	} else if (take) {
		evbuffer_remove_buffer(in, bufferevent_get_output(s->up), take);
		s->req_up += take;
	}
	s->body_got += take;
	if (s->body_left == 0) {
		s->req_streaming = 0;
		dl_off(s);
		if (s->state == H_DRAIN) {
			agent_continue(s);
			return;
		}
		bufferevent_disable(s->agent, EV_READ);
		resp_clock(s);
	} else if (s->state != H_DRAIN && full(s->up, s)) {
		bufferevent_disable(s->agent, EV_READ);
	}
}

static void agent_read(struct bufferevent *bev, void *arg)
{
	struct hs *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);

	if (s->state == H_TUNNEL) {
		s->bytes_agent += n;
		s->req_up += n;
		k8s_rec_feed(s->rec, K8S_FROM_AGENT, in);
		evbuffer_add_buffer(bufferevent_get_output(s->up), in);
		if (full(s->up, s))
			bufferevent_disable(bev, EV_READ);
		return;
	}
	if (s->state == H_DRAIN) {
		stream_body(s);
		return;
	}
	if (s->state == H_RESPONSE) {
		stream_body(s);
		/*
		 * What comes while a response is on its way waits in the input; reading pauses at a
		 * head and a body held for review, four times over, until agent_continue. Not a
		 * read watermark: libevent re-checks an input under its watermark at every change
		 * to it (with its own TLS filter that was two wasted SSL_reads a request).
		 */
		if (evbuffer_get_length(in) >= 4 * s->p->cfg->http_max_body + 2 * HTTP_MAX_HEAD)
			bufferevent_disable(bev, EV_READ);
		return;
	}
	if (s->state == H_TLS) {
		/* Application data means the handshake finished (its event may come later). */
		agent_event(bev, BEV_EVENT_CONNECTED, s);
		return;
	}
	if (s->state != H_HEAD)
		return;
	{
		struct http_limits lim = { .max_body = s->p->cfg->http_max_body };
		const uint8_t *buf;
		size_t before = s->req.pos;
		int rc;

		if (n == 0)
			return;
		buf = evbuffer_pullup(in, (ev_ssize_t)n);
		rc = http_parse_request(&s->req, buf, n, &lim);
		(void)before;
		if (rc == HTTP_NEED_MORE) {
			/* Not all here: the head has its deadline from its first bytes (this read's),
			 * a body held for review its pace once the head is read. */
			if (!s->req.head_len && s->dl == DL_NONE)
				dl_set(s, DL_HEAD, s->p->cfg->http_head_timeout_ms);
			else if (s->req.head_len && s->dl != DL_BODY)
				body_pace(s);
			if (s->req.head_len)
				s->body_got = n - s->req.head_len;
			/* A client waiting for 100 Continue before its body: the body is ours to
			 * read (and hold) first, so say go on. */
			if (s->req.head_len && s->req.expect_continue && !s->sent_continue) {
				s->sent_continue = 1;
				bufferevent_write(bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
			}
			return;
		}
		if (rc == HTTP_ERROR) {
			struct store_http h = {
				.conn_id = s->row, .seq = (int64_t)++s->nreq, .at_us = al_now_us(),
				.method = "?", .path = "?", .kind = "malformed", .body_len = -1,
				.request_sha256 = "", .decision = "error",
			};
			int64_t id = 0;

			audit_batch(s->p);
			if (store_http_add(s->p->store, &h, &id) == 0) {
				struct store_http_outcome o = { .status = s->req.status, .error = s->req.error };

				(void)!store_http_outcome(s->p->store, id, &o);
			}
			s->p->stats.malformed++;
			answer_error(s, s->req.status, "airlock: bad request", s->req.error, id, 1,
				     AL_REASON_AGENT_RESET);
			return;
		}
		dl_off(s);
		s->bytes_agent += s->req.total;
		/* Reading goes on (what comes waits in the input, up to the watermark): pausing it
		 * for every request cost two epoll_ctl calls a request. */
		bufferevent_set_timeouts(bev, NULL, NULL);
		decide(s, in, buf);
		if (s->state == H_RESPONSE && s->req_streaming) {
			bev_read_on(bev);
			stream_body(s);
		}
	}
}

static void agent_write(struct bufferevent *bev, void *arg)
{
	struct hs *s = arg;

	if ((s->state == H_RESPONSE || s->state == H_TUNNEL) && s->up &&
	    !full(bev, s))
		bev_read_on(s->up);
}

/*
 * The agent sent its last bytes (a close_notify, or a FIN) and they are read. A request
 * that came whole before it is answered, and so are those pipelined after it; then the
 * session ends. Reading is not resumed past the close.
 */
static void agent_ended(struct hs *s)
{
	s->agent_eof = 1;
	if (s->state != H_TLS && evbuffer_get_length(bufferevent_get_input(s->agent)))
		agent_read(s->agent, s);
	switch (s->state) {
	case H_CLOSING:
		return;
	case H_PARKED:
		/* Its answer (after the review) still goes to it. */
		bufferevent_disable(s->agent, EV_READ);
		return;
	case H_RESPONSE:
		if (!s->req_streaming) {
			/* It has sent all it will; the response it waits for still goes to it. */
			bufferevent_disable(s->agent, EV_READ);
			return;
		}
		hs_end(s, AL_REASON_CLOSED, NULL, 0, "agent left mid-request");
		return;
	case H_DRAIN:
		/* It was answered; what it did not send of its body would have been dropped. */
		hs_end(s, AL_REASON_CLOSED, NULL, 0, "agent left before the end of a request body it was "
		       "answered for");
		return;
	case H_TUNNEL:
		/* Pass the half-close on once the bytes are out. */
		hs_end(s, AL_REASON_CLOSED, NULL, 0, NULL);
		return;
	default:
		hs_end(s, AL_REASON_CLOSED, NULL, 0, s->state == H_HEAD && s->req.pos ? "agent left mid-request" : NULL);
		return;
	}
}

static void on_agent_closed(evutil_socket_t fd, short what, void *arg)
{
	struct hs *s = arg;

	(void)fd;
	(void)what;
	if (s->state != H_CLOSING && s->agent)
		agent_ended(s);
}

static void agent_event(struct bufferevent *bev, short what, void *arg)
{
	struct hs *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		struct timeval tv = { IDLE_TIMEOUT_S, 0 };

		/* The agent's TLS handshake is done. */
		if (s->state != H_TLS)
			return;
		dl_off(s);
		s->state = H_HEAD;
		http_req_init(&s->req);
		bufferevent_set_timeouts(bev, &tv, NULL);
		bufferevent_enable(bev, EV_READ | EV_WRITE);
		/* TLS 1.3 clients send the request with their Finished: it may be here already. */
		if (evbuffer_get_length(bufferevent_get_input(bev)))
			agent_read(bev, s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		hs_close(s, AL_REASON_LIMIT, s->state == H_HELLO || s->state == H_TLS ? "TLS handshake took too long"
										       : "agent idle");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = tls_stream_error(bev);

		if (e) {
			char buf[256];

			ERR_error_string_n(e, buf, sizeof(buf));
			hs_close(s, AL_REASON_AGENT_RESET, "agent TLS: %s", buf);
		} else {
			hs_close(s, AL_REASON_AGENT_RESET, "agent connection error");
		}
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/*
		 * The end is looked at once the loop has delivered what came before it (a request
		 * and its close_notify arrive together; libevent's own TLS filter reported the
		 * close_notify first), as on the upstream side (up_event); a second report while
		 * one waits changes nothing.
		 */
		if (!s->agent_closed)
			s->agent_closed = evtimer_new(s->p->base, on_agent_closed, s);
		if (!s->agent_closed) {
			hs_close(s, AL_REASON_INTERNAL, "out of memory");
			return;
		}
		event_active(s->agent_closed, EV_TIMEOUT, 1);
	}
}

/* ---- responses ----------------------------------------------------------------------------- */

static void response_done(struct hs *s)
{
	int keep = s->req.keep_alive && s->resp.keep_alive;

	if (s->up && (s->req_streaming || s->up_closed ||
		      (s->resp.framing != HTTP_BODY_CLOSE && evbuffer_get_length(bufferevent_get_input(s->up))))) {
		/* The connection ended with this response, or bytes follow its end (e.g. a body
		 * sent to a HEAD) and it is out of step, or it answered before the request's body
		 * was all sent (below): the next request gets a new one. */
		up_drop(s);
	}
	if (s->req_streaming) {
		/*
		 * The upstream answered before the request's body was all sent (an early error, or a
		 * server that does not need the body): what it would make of the rest is unknown,
		 * read as body or as requests of its own, so it gets none of it, and its connection
		 * is dropped above. The rest is read to its end and dropped, so the next request is
		 * parsed where the agent's next request starts, never inside this body.
		 */
		audit_outcome(s, s->status, NULL, 0, "the upstream answered before the request body was "
			      "complete: the rest of the body was dropped and the upstream connection closed");
		s->req.keep_alive = keep;
		s->state = H_DRAIN;
		bev_read_on(s->agent);
		stream_body(s);
		return;
	}

	audit_outcome(s, s->status, NULL, 0, NULL);
	if (!keep) {
		s->req.keep_alive = 0;
		hs_end(s, AL_REASON_CLOSED, NULL, 0, NULL);
		return;
	}
	agent_continue(s);
}

static void up_read(struct bufferevent *bev, void *arg)
{
	struct hs *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = s->agent ? bufferevent_get_output(s->agent) : NULL;

	if (s->state == H_TUNNEL) {
		size_t n = evbuffer_get_length(in);

		s->bytes_up += n;
		s->req_down += n;
		k8s_rec_feed(s->rec, K8S_FROM_SERVER, in);
		evbuffer_add_buffer(out, in);
		if (full(s->agent, s))
			bufferevent_disable(bev, EV_READ);
		return;
	}
	while (s->state == H_RESPONSE) {
		size_t n = evbuffer_get_length(in), head = 0;

		if (n == 0)
			return;
		if (!s->resp_in_body) {
			const uint8_t *buf = evbuffer_pullup(in, (ev_ssize_t)n);
			int rc = http_parse_response(&s->resp, buf, n, s->is_head);

			if (rc == HTTP_NEED_MORE)
				return;
			if (rc == HTTP_ERROR) {
				if (s->req_down == 0)
					answer_error(s, 502, "airlock: bad upstream response", s->resp.error, 0, 1,
						     AL_REASON_UPSTREAM_RESET);
				else
					hs_close(s, AL_REASON_UPSTREAM_RESET, "upstream: %s", s->resp.error);
				return;
			}
			s->status = s->resp.code;
			if (s->dl == DL_RESPONSE && (s->resp.code >= 200 || s->resp.code == 101))
				dl_off(s);      /* the head is here; an interim one (100, 103) is not it */
			if (s->resp.code == 101 && s->is_upgrade && s->cmd.is_k8s && s->resp.ws_extensions) {
				/* Offered none (http_forward_drops), the server took one anyway: its frames
				 * could not be decoded for the recording, so the stream does not start. */
				answer_error(s, 502, "airlock: bad upstream response",
					     "the server chose a WebSocket extension it was not offered", 0, 1,
					     AL_REASON_UPSTREAM_RESET);
				return;
			}
			if (s->resp.code == 101) {
				/* The subprotocol the server chose decides how its stream is read (one
				 * too long for any Kubernetes protocol: the agent's offer does). */
				size_t wl = s->resp.ws_protocol.len < sizeof(s->ws_chosen) ? s->resp.ws_protocol.len : 0;

				memcpy(s->ws_chosen, buf + s->resp.ws_protocol.off, wl);
				s->ws_chosen[wl] = '\0';
			}
			s->bytes_up += s->resp.head_len;
			s->req_down += s->resp.head_len;
			if (s->resp.code >= 200 && s->resp.framing != HTTP_BODY_NONE)
				head = s->resp.head_len; /* goes with the body's first bytes, in one record */
			else
				evbuffer_remove_buffer(in, out, s->resp.head_len);
			if (s->resp.code == 101) {
				if (!s->is_upgrade) {
					hs_close(s, AL_REASON_UPSTREAM_RESET, "101 to a request that asked for no upgrade");
					return;
				}
				/* The upgraded stream (SPDY, WebSocket) is relayed raw from here on. */
				audit_outcome(s, 101, NULL, 0, NULL);
				if (s->have_cmd && s->cmd.is_k8s)
					s->rec = k8s_rec_start(s->p->store, s->row, s->p->cfg->record_limit, &s->cmd,
							       s->ws_chosen);
				s->state = H_TUNNEL;
				s->req_up = s->req_down = 0;
				bev_read_on(s->agent);
				if (evbuffer_get_length(bufferevent_get_input(s->agent)))
					agent_read(s->agent, s);
				if (evbuffer_get_length(in))
					up_read(bev, s);
				return;
			}
			if (s->resp.code >= 100 && s->resp.code < 200) {
				/* 100 Continue and friends: the final response follows. */
				http_resp_init(&s->resp);
				continue;
			}
			s->resp_in_body = 1;
			s->resp_left = s->resp.content_length;
			http_chunked_init(&s->resp_ck);
			if (s->resp.framing == HTTP_BODY_NONE) {
				response_done(s);
				return;
			}
		}
		/* the body (after the head still in the input, if it just came) */
		{
			size_t avail = n - head, take = avail;
			int done = 0;

			if (s->resp.framing == HTTP_BODY_LENGTH) {
				if (take > s->resp_left)
					take = (size_t)s->resp_left;
				s->resp_left -= take;
				done = s->resp_left == 0;
			} else if (s->resp.framing == HTTP_BODY_CHUNKED) {
				const uint8_t *b = evbuffer_pullup(in, (ev_ssize_t)n) + head;
				size_t used = 0;
				int rc = HTTP_NEED_MORE;

				take = 0;
				while (rc == HTTP_NEED_MORE && take < avail) {
					rc = http_chunked_feed(&s->resp_ck, b + take, avail - take, &used);
					take += used;
					if (used == 0)
						break;
				}
				if (rc == HTTP_ERROR) {
					hs_close(s, AL_REASON_UPSTREAM_RESET, "upstream chunked body: %s",
						 s->resp_ck.error);
					return;
				}
				done = rc == HTTP_DONE;
			}
			s->bytes_up += take;
			s->req_down += take;
			evbuffer_remove_buffer(in, out, head + take);
			if (done) {
				response_done(s);
				return;
			}
			if (full(s->agent, s)) {
				bufferevent_disable(bev, EV_READ);
				return;
			}
		}
	}
	/* Bytes when no request is in flight: the server is not speaking HTTP/1.1 with us. */
	if (s->state == H_HEAD && evbuffer_get_length(in)) {
		evbuffer_drain(in, evbuffer_get_length(in));
		up_drop(s);
	}
}

static void up_write(struct bufferevent *bev, void *arg)
{
	struct hs *s = arg;

	if ((s->state == H_TUNNEL || (s->state == H_RESPONSE && s->req_streaming)) &&
	    !full(bev, s))
		bev_read_on(s->agent);
}

/* The upstream connection ended (what: BEV_EVENT_*) and everything it sent before is read. */
static void up_ended(struct hs *s, short what, int err)
{
	if (s->state == H_TUNNEL) {
		if (what & BEV_EVENT_EOF) {
			hs_end(s, AL_REASON_CLOSED, NULL, 0, NULL);
			return;
		}
		hs_close(s, what & BEV_EVENT_TIMEOUT ? AL_REASON_UPSTREAM_TIMEOUT : AL_REASON_UPSTREAM_RESET,
			 "upstream: %s", what & BEV_EVENT_TIMEOUT ? "timeout" : strerror(err));
		return;
	}
	if (s->state != H_RESPONSE) {
		/* An idle keep-alive connection went away: the next request opens a new one. */
		up_drop(s);
		return;
	}
	if ((what & BEV_EVENT_EOF) && s->resp_in_body && s->resp.framing == HTTP_BODY_CLOSE) {
		s->resp.keep_alive = 0;
		response_done(s);
		return;
	}
	if (s->req_down == 0) {
		unsigned long e = (what & BEV_EVENT_ERROR) ? tls_stream_error(s->up) : 0;
		char buf[300] = "";

		if (e)
			ERR_error_string_n(e, buf, sizeof(buf));
		else if (what & BEV_EVENT_TIMEOUT)
			snprintf(buf, sizeof(buf), "no answer within %u ms", s->p->cfg->connect_timeout_ms);
		else if (what & BEV_EVENT_EOF)
			snprintf(buf, sizeof(buf), "upstream closed the connection");
		else
			snprintf(buf, sizeof(buf), "%s", strerror(err));
		answer_error(s, 502, "airlock: upstream failed", buf, 0, 1,
			     e ? AL_REASON_UPSTREAM_RESET : err == ECONNREFUSED ? AL_REASON_UPSTREAM_REFUSED
			     : AL_REASON_UPSTREAM_RESET);
		return;
	}
	hs_close(s, AL_REASON_UPSTREAM_RESET, "upstream ended mid-response");
}

static void on_up_closed(evutil_socket_t fd, short what, void *arg)
{
	struct hs *s = arg;

	(void)fd;
	(void)what;
	/* Unless the session ended, or the connection was dropped (or replaced) meanwhile. */
	if (s->state != H_CLOSING && s->up && s->up_closed)
		up_ended(s, s->up_closed, s->up_errno);
}

static void up_event(struct bufferevent *bev, short what, void *arg)
{
	struct hs *s = arg;
	int err = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;

		/* A TLS upstream's socket is up: its handshake is next, within the same timeout. */
		if (!tls_stream_ready(bev))
			return;
		bufferevent_set_timeouts(bev, NULL, NULL);
		(void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		resp_clock(s);
		return;
	}
	if (s->state == H_RESPONSE || s->state == H_TUNNEL) {
		/*
		 * The end is looked at once the loop has delivered what came before it (a
		 * "Connection: close" response and its close_notify arrive together).
		 */
		if (!s->up_closed) {
			s->up_closed = what;
			s->up_errno = err;
			event_del(s->timer);
			event_assign(s->timer, s->p->base, -1, 0, on_up_closed, s);
			event_active(s->timer, EV_TIMEOUT, 1);
		}
		return;
	}
	up_ended(s, what, err);
}

/* ---- TLS: ClientHello, leaf, handshake ------------------------------------------------------ */

/* Offer http/1.1 only: a client that also offers h2 gets http/1.1; one offering nothing we
 * speak gets no ALPN (and speaks HTTP/1.1 by default). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	static const unsigned char h11[] = "http/1.1";
	unsigned int i = 0;

	while (i < inlen) {
		unsigned int l = in[i];

		if (i + 1 + l > inlen)
			break;
		if (l == 8 && memcmp(in + i + 1, h11, 8) == 0) {
			*out = in + i + 1;
			*outlen = 8;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + l;
	}
	(void)ssl;
	(void)arg;
	return SSL_TLSEXT_ERR_NOACK;
}

/* The https resource on the connection's address and port when it is the only one there, or
 * NULL; *n says how many there are. */
static const struct al_resource *only_resource(const struct hs *s, size_t *n)
{
	const struct al_config *cfg = s->p->cfg;
	const struct al_resource *one = NULL;

	*n = 0;
	for (size_t i = 0; i < cfg->n_resources; i++) {
		const struct al_resource *r = &cfg->resources[i];

		if (r->proto == AL_PROTO_HTTPS && config_resource_serves(r, &s->dst, s->dst_port)) {
			one = r;
			(*n)++;
		}
	}
	return *n == 1 ? one : NULL;
}

static void hello_read(struct bufferevent *bev, void *arg)
{
	struct hs *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);
	const uint8_t *buf = evbuffer_pullup(in, (ev_ssize_t)n);
	struct http_hello h;
	const struct al_resource *res;
	const char *name;
	char addr[64], err[256];
	SSL_CTX *leaf;
	SSL *ssl;
	STACK_OF(X509) *chain = NULL;
	struct bufferevent *tls;
	size_t nres = 0;
	int rc = http_tls_hello(buf, n, &h);

	if (rc == HTTP_NEED_MORE)
		return;
	if (rc == HTTP_ERROR) {
		hs_close(s, AL_REASON_AGENT_RESET, "not a TLS ClientHello");
		return;
	}
	if (h.sni_bad) {
		/* Nothing an agent writes there reaches a certificate the Airlock CA signs. */
		hs_close(s, AL_REASON_POLICY_DENY, "the ClientHello's server name is not a host name: '%s'",
			 h.sni);
		return;
	}
	/* Matched as a server picks its certificate: "API.test." is api.test. */
	host_name_norm(h.sni, s->sni, sizeof(s->sni));
	res = config_https_resource(s->p->cfg, s->res, &s->dst, s->dst_port, s->sni);
	if (!res && !s->sni[0])
		/* No server name, and no resource answers none (they all list names): the address
		 * and port say which, if they are one resource's alone. */
		res = only_resource(s, &nres);
	/* The row was opened under the first resource of this address and port (accept knows no
	 * more); it names the one the server name chose, or none. */
	if (res != s->res && s->row > 0) {
		audit_batch(s->p);
		if (store_conn_resource(s->p->store, s->row, res ? res->name : NULL,
					config_proto_name(AL_PROTO_HTTPS)) < 0)
			al_warn("https session %lld: its row still names resource %s", (long long)s->row,
				s->res ? s->res->name : "(none)");
	}
	if (!res) {
		/* Never relayed as bytes, whatever the default: this address and port are an https
		 * resource's, and its rules would be skipped. */
		al_addr_str(&s->dst, addr, sizeof(addr));
		if (s->sni[0])
			hs_close(s, AL_REASON_POLICY_DENY, "no https resource on %s port %u answers server name "
				 "'%s'", addr, s->dst_port, s->sni);
		else
			hs_close(s, AL_REASON_POLICY_DENY, "the ClientHello names no server, and %zu https "
				 "resources share %s port %u", nres, addr, s->dst_port);
		return;
	}
	s->res = res;
	s->cred = res->credential && s->p->secrets ? secrets_find(s->p->secrets, res->credential) : NULL;
	if (res->credential && !s->cred) {
		hs_close(s, AL_REASON_INTERNAL, "credential '%s' is not in the secrets file", res->credential);
		return;
	}
	al_addr_str(&s->dst, addr, sizeof(addr));
	name = s->sni[0] ? s->sni : addr;
	snprintf(s->up_name, sizeof(s->up_name), "%s", s->sni[0] ? s->sni : res->tls_name);
	leaf = tls_server_ctx(s->p->ca, name, err, sizeof(err));
	ssl = leaf ? SSL_new(s->p->srv) : NULL;
	if (!ssl || SSL_use_certificate(ssl, SSL_CTX_get0_certificate(leaf)) != 1 ||
	    SSL_use_PrivateKey(ssl, SSL_CTX_get0_privatekey(leaf)) != 1 ||
	    SSL_CTX_get0_chain_certs(leaf, &chain) != 1 ||
	    (chain && sk_X509_num(chain) > 0 && SSL_add1_chain_cert(ssl, sk_X509_value(chain, 0)) != 1)) {
		if (ssl)
			SSL_free(ssl);
		hs_close(s, AL_REASON_INTERNAL, "TLS setup for '%s' failed: %s", name, leaf ? "" : err);
		return;
	}
	/* The filter reads the ClientHello still in the socket's input. */
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_set_timeouts(bev, NULL, NULL);
	tls = tls_stream_new(bev, ssl, TLS_STREAM_ACCEPT, BEV_OPT_CLOSE_ON_FREE);
	if (!tls) {
		SSL_free(ssl);
		hs_close(s, AL_REASON_INTERNAL, "TLS setup failed");
		return;
	}
	s->agent = tls;
	s->state = H_TLS;
	bufferevent_setcb(tls, agent_read, agent_write, agent_event, s);
	{
		struct timeval tv = { HELLO_TIMEOUT_S, 0 };

		bufferevent_set_timeouts(tls, &tv, NULL);
	}
	bufferevent_enable(tls, EV_READ | EV_WRITE);
	/* Kick the handshake: the bytes are already here, no read event will come for them. */
	bufferevent_trigger(bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void hello_event(struct bufferevent *bev, short what, void *arg)
{
	struct hs *s = arg;

	if (what & BEV_EVENT_TIMEOUT)
		hs_close(s, AL_REASON_LIMIT, "no ClientHello within %d s", HELLO_TIMEOUT_S);
	else
		hs_close(s, (what & BEV_EVENT_EOF) ? AL_REASON_CLOSED : AL_REASON_AGENT_RESET,
			 "agent left before its ClientHello");
	(void)bev;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

int httpproxy_start(struct httpproxy *p, int fd, const struct store_conn *c,
		    const struct al_addr *dst, uint16_t dst_port, const struct al_resource *res)
{
	struct timeval tv = { HELLO_TIMEOUT_S, 0 };
	struct hs *s = calloc(1, sizeof(*s));

	if (!s) {
		close(fd);
		return -1;
	}
	s->p = p;
	s->res = res;
	s->dst = *dst;
	s->dst_port = dst_port;
	LIST_INSERT_HEAD(&p->sessions, s, link);
	p->stats.live++;
	p->stats.sessions++;
	s->agent = agent_accept(p->base, p->store, fd, c, &s->row, &s->who);
	s->held = evbuffer_new();
	/* One-shot, assigned anew for each use (on_up_closed, and sess_end's polls and reap). */
	s->timer = evtimer_new(p->base, on_up_closed, s);
	s->deadline = evtimer_new(p->base, on_deadline, s);
	s->end = (struct sess_end){ .base = p->base, .timer = s->timer, .agent = &s->agent,
				    .free_fn = hs_free_v, .arg = s, .max_polls = 250, .close_notify = 1 };
	if (!s->agent || !s->held || !s->timer || !s->deadline) {
		if (!s->agent)
			close(fd);
		hs_close(s, AL_REASON_INTERNAL, "out of memory");
		return -1;
	}
	bufferevent_setcb(s->agent, hello_read, NULL, hello_event, s);
	bufferevent_set_timeouts(s->agent, &tv, NULL);
	bufferevent_enable(s->agent, EV_READ | EV_WRITE);
	dl_set(s, DL_HANDSHAKE, HELLO_TIMEOUT_S * 1000);
	return 0;
}

int httpproxy_new(struct event_base *base, const struct al_config *cfg, struct store *st,
		  struct tls_ca *ca, const struct al_secrets *secrets, struct approval *approval,
		  struct httpproxy **out, char *err, size_t errlen)
{
	struct httpproxy *p = calloc(1, sizeof(*p));

	if (!p)
		return al_errf(err, errlen, "out of memory");
	p->base = base;
	p->cfg = cfg;
	p->store = st;
	p->ca = ca;
	p->secrets = secrets;
	p->approval = approval;
	LIST_INIT(&p->sessions);
	p->srv = SSL_CTX_new(TLS_server_method());
	if (!p->srv || SSL_CTX_set_min_proto_version(p->srv, TLS1_2_VERSION) != 1) {
		SSL_CTX_free(p->srv);
		free(p);
		return al_errf(err, errlen, "TLS server context");
	}
	SSL_CTX_set_options(p->srv, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_alpn_select_cb(p->srv, alpn_select, NULL);
	*out = p;
	return 0;
}

void httpproxy_free(struct httpproxy *p)
{
	if (!p)
		return;
	while (!LIST_EMPTY(&p->sessions)) {
		struct hs *s = LIST_FIRST(&p->sessions);

		hs_close(s, AL_REASON_SHUTDOWN, "airlockd stopped");
		hs_free(s);
	}
	up_sess_clear(p);
	for (size_t i = 0; i < p->n_ups; i++)
		SSL_CTX_free(p->ups[i].ctx);
	free(p->ups);
	SSL_CTX_free(p->srv);
	free(p);
}

void httpproxy_set_config(struct httpproxy *p, const struct al_config *cfg, const struct al_secrets *secrets)
{
	p->cfg = cfg;
	p->secrets = secrets;
	/* Upstream contexts belong to the old resources, and so do their sessions. */
	up_sess_clear(p);
	for (size_t i = 0; i < p->n_ups; i++)
		SSL_CTX_free(p->ups[i].ctx);
	p->n_ups = 0;
}

void httpproxy_stats(const struct httpproxy *p, struct httpproxy_stats *out)
{
	*out = p->stats;
}
