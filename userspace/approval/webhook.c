/* Review notifications by webhook: HTTP(S) POST of the request JSON, HMAC-signed, retried with backoff. */
#include "webhook.h"

#include <airlock/tls.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <sys/queue.h>

#define MAX_TRIES 6     /* 0, 1, 2, 4, 8, 16 s */

struct webhook {
	struct event_base *base;
	struct evhttp_uri *uri;
	int https;
	SSL_CTX *ctx;
	unsigned char key[256];
	size_t key_len;
	webhook_gave_up_cb gave_up;
	void *gave_up_arg;
	struct webhook_stats stats;
	LIST_HEAD(, delivery) deliveries;
};

struct delivery {
	LIST_ENTRY(delivery) link;
	struct webhook *w;
	char *body;
	char sig[80];
	int64_t id;
	int tries;
	struct event *timer;
	struct evhttp_connection *conn; /* while a try is under way */
};

static void attempt(evutil_socket_t fd, short what, void *arg);

static void delivery_free(struct delivery *d)
{
	LIST_REMOVE(d, link);
	d->w->stats.in_flight--;
	if (d->conn)
		evhttp_connection_free(d->conn); /* drops its request without calling on_done */
	if (d->timer)
		event_free(d->timer);
	free(d->body);
	free(d);
}

static void retry_later(struct delivery *d, const char *why)
{
	struct timeval tv = { 1L << (d->tries > 1 ? d->tries - 1 : 0), 0 };

	if (d->tries >= MAX_TRIES) {
		struct webhook *w = d->w;

		al_warn("webhook: request %lld not delivered after %d tries: %s", (long long)d->id,
			d->tries, why);
		w->stats.undelivered++;
		if (w->gave_up)
			w->gave_up(w->gave_up_arg, d->id, d->tries, why);
		delivery_free(d);
		return;
	}
	al_debug("webhook: request %lld: %s; again in %lds", (long long)d->id, why, (long)tv.tv_sec);
	evtimer_add(d->timer, &tv);
}

static void on_done(struct evhttp_request *req, void *arg)
{
	struct delivery *d = arg;
	int code = req ? evhttp_request_get_response_code(req) : 0;

	/* libevent frees the request, and the connection after it (free on completion). */
	d->conn = NULL;
	if (code >= 200 && code < 300) {
		d->w->stats.delivered++;
		delivery_free(d);
		return;
	}
	{
		char why[64];

		snprintf(why, sizeof(why), code ? "HTTP %d" : "no answer", code);
		retry_later(d, why);
	}
}

static void on_conn_close(struct evhttp_connection *conn, void *arg)
{
	(void)conn;
	(void)arg;
}

static void attempt(evutil_socket_t fd, short what, void *arg)
{
	struct delivery *d = arg;
	struct webhook *w = d->w;
	const char *host = evhttp_uri_get_host(w->uri), *path = evhttp_uri_get_path(w->uri);
	const char *query = evhttp_uri_get_query(w->uri);
	int port = evhttp_uri_get_port(w->uri);
	struct bufferevent *bev = NULL;
	struct evhttp_request *req;
	struct evkeyvalq *h;
	char target[2048], idbuf[32];

	(void)fd;
	(void)what;
	d->tries++;
	if (port < 0)
		port = w->https ? 443 : 80;
	if (w->https) {
		SSL *ssl = SSL_new(w->ctx);

		if (!ssl || tls_client_prepare(ssl, host, TLS_VERIFY_FULL) < 0) {
			if (ssl)
				SSL_free(ssl);
			retry_later(d, "TLS setup failed");
			return;
		}
		bev = bufferevent_openssl_socket_new(w->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
						     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	}
	d->conn = evhttp_connection_base_bufferevent_new(w->base, NULL, bev, host, (unsigned short)port);
	req = d->conn ? evhttp_request_new(on_done, d) : NULL;
	if (!req) {
		if (d->conn)
			evhttp_connection_free(d->conn);
		d->conn = NULL;
		retry_later(d, "out of memory");
		return;
	}
	evhttp_connection_set_timeout(d->conn, 10);
	evhttp_connection_free_on_completion(d->conn);
	evhttp_connection_set_closecb(d->conn, on_conn_close, NULL);
	h = evhttp_request_get_output_headers(req);
	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)d->id);
	evhttp_add_header(h, "Host", host);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "User-Agent", "airlockd");
	evhttp_add_header(h, "X-Airlock-Request", idbuf);
	if (d->sig[0])
		evhttp_add_header(h, "X-Airlock-Signature", d->sig);
	evbuffer_add(evhttp_request_get_output_buffer(req), d->body, strlen(d->body));
	snprintf(target, sizeof(target), "%s%s%s", path && *path ? path : "/", query ? "?" : "",
		 query ? query : "");
	if (evhttp_make_request(d->conn, req, EVHTTP_REQ_POST, target) < 0) {
		evhttp_connection_free(d->conn);
		d->conn = NULL;
		retry_later(d, "cannot send");
	}
}

int webhook_new(struct event_base *base, const char *url, const char *secret_file,
		webhook_gave_up_cb gave_up, void *arg, struct webhook **out, char *err, size_t errlen)
{
	struct webhook *w = calloc(1, sizeof(*w));
	const char *scheme;

	if (!w)
		return al_errf(err, errlen, "out of memory");
	w->base = base;
	w->gave_up = gave_up;
	w->gave_up_arg = arg;
	LIST_INIT(&w->deliveries);
	w->uri = evhttp_uri_parse(url);
	scheme = w->uri ? evhttp_uri_get_scheme(w->uri) : NULL;
	if (!scheme || !evhttp_uri_get_host(w->uri) ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		webhook_free(w);
		return al_errf(err, errlen, "review_webhook: '%s' is not an http(s) URL", url);
	}
	w->https = strcmp(scheme, "https") == 0;
	if (w->https && !(w->ctx = tls_client_ctx(TLS_VERIFY_FULL, NULL, err, errlen))) {
		webhook_free(w);
		return -1;
	}
	if (secret_file) {
		FILE *f = fopen(secret_file, "re");
		size_t n = f ? fread(w->key, 1, sizeof(w->key), f) : 0;

		if (f)
			fclose(f);
		while (n && (w->key[n - 1] == '\n' || w->key[n - 1] == '\r'))
			n--;
		if (n == 0) {
			webhook_free(w);
			return al_errf(err, errlen, "review_webhook_secret: cannot read %s", secret_file);
		}
		w->key_len = n;
	}
	*out = w;
	return 0;
}

void webhook_send(struct webhook *w, int64_t id, const char *json)
{
	struct delivery *d = calloc(1, sizeof(*d));
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;

	if (!d) {
		al_warn("webhook: request %lld: out of memory", (long long)id);
		return;
	}
	d->w = w;
	d->id = id;
	LIST_INSERT_HEAD(&w->deliveries, d, link);
	w->stats.in_flight++;
	if (!(d->body = strdup(json)) || !(d->timer = evtimer_new(w->base, attempt, d))) {
		delivery_free(d);
		al_warn("webhook: request %lld: out of memory", (long long)id);
		return;
	}
	if (w->key_len && HMAC(EVP_sha256(), w->key, (int)w->key_len, (const unsigned char *)json,
			       strlen(json), mac, &mac_len)) {
		static const char hx[] = "0123456789abcdef";
		size_t o = (size_t)snprintf(d->sig, sizeof(d->sig), "sha256=");

		for (unsigned int i = 0; i < mac_len && o + 2 < sizeof(d->sig); i++) {
			d->sig[o++] = hx[mac[i] >> 4];
			d->sig[o++] = hx[mac[i] & 15];
		}
		d->sig[o] = '\0';
	}
	attempt(-1, 0, d);
}

void webhook_stats(const struct webhook *w, struct webhook_stats *out)
{
	*out = w->stats;
}

void webhook_free(struct webhook *w)
{
	if (!w)
		return;
	while (!LIST_EMPTY(&w->deliveries))
		delivery_free(LIST_FIRST(&w->deliveries));
	if (w->uri)
		evhttp_uri_free(w->uri);
	SSL_CTX_free(w->ctx);
	OPENSSL_cleanse(w->key, sizeof(w->key));
	free(w);
}
