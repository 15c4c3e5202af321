/* The console's HTTP server: libmicrohttpd driven by airlockd's libevent loop, routing, headers, static files, TLS. */
#include "console_int.h"

#include <airlock/password.h>
#include <airlock/tls.h>

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <strings.h>

/* Headers every answer carries. The UI has no inline script or style. */
static const char *const sec_headers[][2] = {
	{ "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
				     "form-action 'self'" },
	{ "X-Content-Type-Options", "nosniff" },
	{ "Referrer-Policy", "no-referrer" },
	{ "X-Frame-Options", "DENY" },
	{ "Cache-Control", "no-store" },
};

/* Per request: the body as it arrives; the read the reader thread answers (reader.c), or the
 * password the verify thread checks (verify.c). */
struct creq {
	char *body;
	size_t len;
	int too_big;
	struct cjob *job;
	struct vjob *login;
};

void reply_error(struct reply *r, unsigned int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* It replaces any answer already made (a text one too: send_reply would prefer that). */
	free(r->text);
	r->text = NULL;
	r->text_len = 0;
	r->ctype = NULL;
	r->status = status;
	json_decref(r->json);
	r->json = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static void pump(struct console *c);

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
	(void)fd;
	(void)what;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
	(void)fd;
	(void)what;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	sse_tick(arg);
	guard_tick(arg);
	throttle_tick(arg);
	(void)fd;
	(void)what;
}

/* Runs whatever MHD has ready, then re-arms the timer for its next deadline. */
static void pump(struct console *c)
{
	MHD_UNSIGNED_LONG_LONG ms = 0;
	struct timeval tv = { 1, 0 };

	c->kicked = 0;
	if (MHD_run(c->mhd) != MHD_YES)
		al_debug("console: MHD_run failed");
	if (c->kicked) {
		tv.tv_sec = 0; /* a feed was resumed meanwhile: run again at once */
	} else if (MHD_get_timeout(c->mhd, &ms) == MHD_YES && ms < 1000) {
		tv.tv_sec = 0;
		tv.tv_usec = (suseconds_t)ms * 1000;
	}
	evtimer_add(c->ev_timer, &tv);
}

void console_kick(struct console *c)
{
	struct timeval now = { 0, 0 };

	c->kicked = 1;
	evtimer_add(c->ev_timer, &now);
}

static enum MHD_Result send_buf(struct MHD_Connection *conn, unsigned int status, const char *ctype,
				void *data, size_t len, enum MHD_ResponseMemoryMode mode,
				const char *set_cookie)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, mode);
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	for (size_t i = 0; i < AL_ARRAY_LEN(sec_headers); i++)
		MHD_add_response_header(resp, sec_headers[i][0], sec_headers[i][1]);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (set_cookie && *set_cookie)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, set_cookie);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct reply *r)
{
	enum MHD_Result ret;

	if (r->text) {
		ret = send_buf(conn, r->status, r->ctype ? r->ctype : "text/plain; charset=utf-8", r->text,
			       r->text_len, MHD_RESPMEM_MUST_FREE, r->set_cookie);
		r->text = NULL;
	} else {
		char *s = r->json ? json_dumps(r->json, JSON_COMPACT) : NULL;

		if (!s)
			s = strdup("{\"ok\":false,\"error\":\"internal error\"}");
		ret = send_buf(conn, r->status ? r->status : 200, "application/json; charset=utf-8", s,
			       s ? strlen(s) : 0, MHD_RESPMEM_MUST_FREE, r->set_cookie);
	}
	json_decref(r->json);
	r->json = NULL;
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned int status, const char *msg)
{
	struct reply r = { 0 };

	reply_error(&r, status, "%s", msg);
	return send_reply(conn, &r);
}

static enum MHD_Result send_static(struct MHD_Connection *conn, const char *url)
{
	static const struct {
		const char *path;
		const char *ctype;
		const char *data;
		const size_t *len;
	} files[] = {
		{ "/", "text/html; charset=utf-8", al_web_index_html, &al_web_index_html_len },
		{ "/index.html", "text/html; charset=utf-8", al_web_index_html, &al_web_index_html_len },
		{ "/app.js", "text/javascript; charset=utf-8", al_web_app_js, &al_web_app_js_len },
		{ "/app.css", "text/css; charset=utf-8", al_web_app_css, &al_web_app_css_len },
	};

	for (size_t i = 0; i < AL_ARRAY_LEN(files); i++)
		if (strcmp(url, files[i].path) == 0)
			return send_buf(conn, 200, files[i].ctype, (void *)files[i].data, *files[i].len,
					MHD_RESPMEM_PERSISTENT, NULL);
	return send_error(conn, 404, "not found");
}

/* A POST from a page must come from our own origin (defence in depth beside SameSite and CSRF). */
static int origin_ok(struct console *c, struct MHD_Connection *conn)
{
	const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
	char want[512];

	if (!origin)
		return 1;
	if (!host || al_fmt(want, sizeof(want), "%s://%s", c->tls ? "https" : "http", host) < 0)
		return 0;
	return strcmp(origin, want) == 0;
}

static int is_json(struct MHD_Connection *conn)
{
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);

	return ct && strncasecmp(ct, "application/json", 16) == 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **req_cls)
{
	struct console *c = cls;
	struct creq *q = *req_cls;
	const union MHD_ConnectionInfo *ci;
	struct cconn *cc;
	struct reply r = { 0 };
	struct who w;
	json_t *body = NULL;
	int post = strcmp(method, "POST") == 0;
	enum MHD_Result ret;

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	cc = ci ? ci->socket_context : NULL;
	if (cc && cc->refused)
		return MHD_NO;
	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return MHD_NO;
		*req_cls = q;
		if (cc)
			guard_request(cc, 1);
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (q->len + *upload_data_size > CONSOLE_MAX_BODY) {
			q->too_big = 1;
		} else {
			char *nb = realloc(q->body, q->len + *upload_data_size + 1);

			if (!nb)
				return MHD_NO;
			q->body = nb;
			memcpy(q->body + q->len, upload_data, *upload_data_size);
			q->len += *upload_data_size;
			q->body[q->len] = '\0';
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (q->job) {
		/* Resumed: the reader thread has answered, for a login that may have ended meanwhile
		 * (logout, timeout, user del, a revoked token): then the answer is not sent. */
		if (auth_still_valid(c, q->job->cookie_token, q->job->bearer_sha) < 0)
			reply_error(&q->job->r, 401, "log in first (the login ended while the read ran)");
		ret = send_reply(conn, &q->job->r);
		cjob_free(q->job);
		q->job = NULL;
		return ret;
	}
	if (q->login) {
		/* Resumed: the verify thread has checked the password. */
		auth_login_done(c, q->login, &r);
		vjob_free(q->login);
		q->login = NULL;
		return send_reply(conn, &r);
	}
	if (!cc || cc->agent)
		return send_error(conn, 403, "refused: the caller runs in a pinned (agent) cgroup");
	if (!post && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return send_error(conn, 405, "method not allowed");
	if (strncmp(url, "/api/", 5) != 0 && strcmp(url, "/metrics") != 0)
		return post ? send_error(conn, 405, "method not allowed") : send_static(conn, url);
	if (q->too_big)
		return send_error(conn, 413, "request body too large");
	if (post) {
		if (!origin_ok(c, conn))
			return send_error(conn, 403, "cross-origin request refused");
		if (q->len && !is_json(conn))
			return send_error(conn, 415, "send application/json");
		if (q->len) {
			body = json_loads(q->body, JSON_REJECT_DUPLICATES, NULL);
			if (!json_is_object(body)) {
				json_decref(body);
				return send_error(conn, 400, "the body is not a JSON object");
			}
		}
	}
	if (post && strcmp(url, "/api/v1/login") == 0) {
		if (!is_json(conn)) {
			json_decref(body);
			return send_error(conn, 415, "send application/json");
		}
		auth_login(c, &cc->src, body, &r);
		json_decref(body);
		if (r.login) {
			/* The password is checked in the verify thread; the request waits, suspended. */
			r.login->conn = conn;
			q->login = r.login;
			verify_submit(c, r.login);
			MHD_suspend_connection(conn);
			return MHD_YES;
		}
		return send_reply(conn, &r);
	}
	if (auth_identify(c, conn, &w) < 0) {
		json_decref(body);
		return send_error(conn, 401, "log in first");
	}
	if (post && auth_csrf_ok(c, conn, &w) < 0) {
		json_decref(body);
		return send_error(conn, 403, "missing or wrong X-CSRF-Token");
	}
	if (strcmp(url, "/metrics") == 0) {
		metrics_render(c, &r);
		return send_reply(conn, &r);
	}
	if (!post && strcmp(url, "/api/v1/events") == 0)
		return sse_open(c, conn, &w);
	if (post && strcmp(url, "/api/v1/logout") == 0)
		auth_logout(c, &w, &r);
	else if (!post && strcmp(url, "/api/v1/me") == 0)
		auth_me(c, &w, &r);
	else
		api_handle(c, conn, method, url + strlen("/api/v1"), body, &w, &r);
	json_decref(body);
	if (r.job) {
		/* A read that may take long: the request waits, suspended, for the reader thread. */
		r.job->conn = conn;
		if (w.sess)
			memcpy(r.job->cookie_token, w.sess->token, sizeof(r.job->cookie_token));
		memcpy(r.job->bearer_sha, w.bearer_sha, sizeof(r.job->bearer_sha));
		if (reader_submit(c, r.job) < 0) {
			cjob_free(r.job);
			return send_error(conn, 500, "could not read the store");
		}
		q->job = r.job;
		MHD_suspend_connection(conn);
		return MHD_YES;
	}
	ret = send_reply(conn, &r);
	(void)version;
	return ret;
}

static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct creq *q = *req_cls;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	if (ci && ci->socket_context)
		guard_request(ci->socket_context, 0);
	if (q) {
		free(q->body);
		cjob_free(q->job);
		if (q->login)
			auth_login_abandoned(cls, q->login);
		vjob_free(q->login);
		free(q);
		*req_cls = NULL;
	}
	(void)toe;
}

/* Decides once per TCP connection who the peer is: an agent (its requests answer 403), and
 * the source it counts as (guard.c), which may close it at once. */
static void notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
			enum MHD_ConnectionNotificationCode toe)
{
	struct console *c = cls;
	const union MHD_ConnectionInfo *ci, *fi;
	struct sockaddr_storage none = { .ss_family = AF_UNSPEC };
	const struct sockaddr *sa = (const struct sockaddr *)&none;
	struct cconn *cc = *socket_context;
	uint64_t cgid = 0;
	uint32_t uid = 0;
	char rel[PATH_MAX];
	int rc = -1;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (cc)
			guard_close(c, cc);
		free(cc);
		*socket_context = NULL;
		return;
	}
	cc = calloc(1, sizeof(*cc));
	if (!cc)
		return;
	*socket_context = cc;
	cc->agent = 1; /* until shown otherwise */
	cc->fd = -1;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr)
		sa = ci->client_addr;
	fi = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (fi) {
		cc->fd = fi->connect_fd;
		rc = peer_lookup(cc->fd, &cgid, &uid);
	}
	peer_source(sa, rc, uid, &cc->src);
	if (rc == 1) {
		cc->agent = 0; /* no socket on this host: a remote browser */
	} else if (rc < 0 || kern_cgroup_path(cgid, rel, sizeof(rel)) < 0) {
		al_warn("console: cannot tell the cgroup of peer %s: refused", cc->src.addr);
	} else {
		cc->agent = kern_in_pinned(c->kern, rel);
		if (cc->agent)
			al_warn("console: refused %s from pinned cgroup %s", cc->src.addr, rel);
	}
	guard_open(c, cc);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	al_info("console: %s", msg);
	(void)cls;
}

static char *read_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (!f) {
		al_errf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		char *nb;
		size_t got;

		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			if (cap > (1u << 20))
				goto fail;
			nb = realloc(buf, cap);
			if (!nb)
				goto fail;
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			break;
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
fail:
	free(buf);
	fclose(f);
	al_errf(err, errlen, "cannot read %s", path);
	return NULL;
}

/* The HTTPS certificate and key as PEM: the configured files, else a leaf from the Airlock CA. */
static int load_tls(struct console *c, const struct console_deps *d, const char *name, char *err,
		    size_t errlen)
{
	SSL_CTX *ctx;
	BIO *bc = NULL, *bk = NULL;
	BUF_MEM *m;
	int rc = -1;

	if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
		return al_errf(err, errlen, "console_tls: this libmicrohttpd has no TLS support");
	if (d->cfg->console_cert) {
		c->cert_pem = read_file(d->cfg->console_cert, err, errlen);
		c->key_pem = c->cert_pem ? read_file(d->cfg->console_key, err, errlen) : NULL;
		return c->key_pem ? 0 : -1;
	}
	ctx = tls_server_ctx(d->ca, name, err, errlen);
	if (!ctx)
		return -1;
	bc = BIO_new(BIO_s_mem());
	bk = BIO_new(BIO_s_mem());
	if (!bc || !bk || !SSL_CTX_get0_certificate(ctx) || !SSL_CTX_get0_privatekey(ctx) ||
	    PEM_write_bio_X509(bc, SSL_CTX_get0_certificate(ctx)) != 1 ||
	    PEM_write_bio_PrivateKey(bk, SSL_CTX_get0_privatekey(ctx), NULL, NULL, 0, NULL, NULL) != 1) {
		al_errf(err, errlen, "console_tls: cannot export the minted certificate");
		goto out;
	}
	BIO_get_mem_ptr(bc, &m);
	c->cert_pem = strndup(m->data, m->length);
	BIO_get_mem_ptr(bk, &m);
	c->key_pem = strndup(m->data, m->length);
	rc = c->cert_pem && c->key_pem ? 0 : al_errf(err, errlen, "out of memory");
out:
	BIO_free(bc);
	BIO_free(bk);
	return rc;
}

int console_start(const struct console_deps *d, struct console **out, char *err, size_t errlen)
{
	const struct al_config *cfg = d->cfg;
	struct sockaddr_storage ss;
	struct console *c;
	const union MHD_DaemonInfo *di;
	unsigned int flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	char host[INET6_ADDRSTRLEN + 2], addr[INET6_ADDRSTRLEN];
	struct timeval tick = { 1, 0 };
	size_t sslen;

	*out = NULL;
	if (!cfg->console_enabled)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return al_errf(err, errlen, "out of memory");
	c->base = d->base;
	c->store = d->store;
	c->approval = d->approval;
	c->kern = d->kern;
	c->tls = cfg->console_tls;
	c->idle_us = (int64_t)cfg->console_idle_s * 1000000;
	c->max_us = (int64_t)cfg->console_session_max_s * 1000000;
	c->head_us = (int64_t)cfg->console_head_s * 1000000;
	LIST_INIT(&c->feeds);
	LIST_INIT(&c->conns);
	throttle_init(c);
	al_addr_str(&cfg->console_addr, addr, sizeof(addr));
	if (strchr(addr, ':'))
		snprintf(host, sizeof(host), "[%s]", addr);
	else
		snprintf(host, sizeof(host), "%s", addr);
	snprintf(c->url, sizeof(c->url), "%s://%s:%u/", c->tls ? "https" : "http", host, cfg->console_port);
	sslen = al_addr_to_sockaddr(&cfg->console_addr, cfg->console_port, &ss);
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (c->tls) {
		flags |= MHD_USE_TLS;
		if (load_tls(c, d, addr, err, errlen) < 0)
			goto fail;
	}
	/* Unknown users cost a verification too, so timing does not tell names apart. */
	if (al_password_hash("airlock console: no such user", c->dummy_hash, sizeof(c->dummy_hash)) < 0) {
		al_errf(err, errlen, "console: cannot prepare password checks");
		goto fail;
	}
	(void)sslen;
	c->mhd = MHD_start_daemon(flags, cfg->console_port, guard_accept, c, handle, c,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, c,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_NOTIFY_COMPLETED, completed, c,
				  MHD_OPTION_NOTIFY_CONNECTION, notify_conn, c,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONSOLE_MAX_CONNS,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->console_head_s,
				  c->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, c->cert_pem,
				  MHD_OPTION_HTTPS_MEM_KEY, c->key_pem,
				  MHD_OPTION_END);
	if (!c->mhd) {
		al_errf(err, errlen, "console: cannot listen on %s:%u (console_listen)", host,
			cfg->console_port);
		goto fail;
	}
	di = MHD_get_daemon_info(c->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di) {
		al_errf(err, errlen, "console: libmicrohttpd has no epoll fd");
		goto fail;
	}
	c->ev_io = event_new(d->base, di->epoll_fd, EV_READ | EV_PERSIST, on_io, c);
	c->ev_timer = evtimer_new(d->base, on_timer, c);
	c->ev_tick = event_new(d->base, -1, EV_PERSIST, on_tick, c);
	if (!c->ev_io || !c->ev_timer || !c->ev_tick || event_add(c->ev_io, NULL) < 0 ||
	    event_add(c->ev_tick, &tick) < 0) {
		al_errf(err, errlen, "console: cannot register with the event loop");
		goto fail;
	}
	if (reader_start(c, cfg->store_path, err, errlen) < 0 || verify_start(c, err, errlen) < 0)
		goto fail;
	approval_set_listener(d->approval, sse_listener, c);
	console_kick(c);
	*out = c;
	return 0;
fail:
	console_free(c);
	return -1;
}

void console_free(struct console *c)
{
	if (!c)
		return;
	if (c->approval)
		approval_set_listener(c->approval, NULL, NULL);
	sse_close_all(c);
	reader_stop(c);
	verify_stop(c);
	throttle_flush(c);
	if (c->ev_io)
		event_free(c->ev_io);
	if (c->ev_timer)
		event_free(c->ev_timer);
	if (c->ev_tick)
		event_free(c->ev_tick);
	if (c->mhd)
		MHD_stop_daemon(c->mhd);
	free(c->cert_pem);
	free(c->key_pem);
	OPENSSL_cleanse(c->sessions, sizeof(c->sessions));
	free(c);
}

const char *console_url(const struct console *c)
{
	return c ? c->url : "off";
}
