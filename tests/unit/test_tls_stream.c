/* TLS over a socket bufferevent (userspace/net/tls_stream.c): both ends in one loop over a socketpair. */
#include "evtest.h"
#include "harness.h"

#include "../../userspace/net/sock_out.c"
#include "../../userspace/net/tls_stream.c"

#include <airlock/tls.h>

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static char ca_dir[] = "/tmp/airlock-tls-stream-XXXXXX";
static struct tls_ca *ca;

struct end {
	struct bufferevent *bev;
	struct evbuffer *got;   /* everything read */
	int connected;          /* CONNECTED reports */
	short events;           /* other reports, or'ed */
	unsigned long err;      /* tls_stream_error at an ERROR */
	int free_on_end;        /* free the stream in its EOF/ERROR callback */
	int echo;               /* write back what is read */
	int keep;               /* leave what is read in the input */
};

static void on_read(struct bufferevent *bev, void *arg)
{
	struct end *e = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (e->keep)
		return;
	if (e->echo)
		evbuffer_add_buffer(bufferevent_get_output(bev), in);
	else
		evbuffer_add_buffer(e->got, in);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct end *e = arg;

	if (what & BEV_EVENT_CONNECTED) {
		e->connected++;
		return;
	}
	e->events |= what;
	if (what & BEV_EVENT_ERROR)
		e->err = tls_stream_error(bev);
	if (e->free_on_end) {
		bufferevent_free(bev);
		e->bev = NULL;
	}
}

/* A stream over fd: the server's with a leaf for "api.test", or a client that verifies it. */
static struct bufferevent *stream(struct event_base *base, int fd, enum tls_stream_role role, struct end *e)
{
	char err[256];
	SSL_CTX *ctx = role == TLS_STREAM_ACCEPT ? tls_server_ctx(ca, "api.test", err, sizeof(err))
						 : tls_client_ctx(TLS_VERIFY_FULL, tls_ca_cert_path(ca), err, sizeof(err));
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;
	struct bufferevent *under = sock_out_new(base, fd, BEV_OPT_CLOSE_ON_FREE), *bev;

	if (role == TLS_STREAM_CONNECT)
		SSL_CTX_free(ctx);      /* the SSL keeps its own reference */
	if (!ssl || !under || (role == TLS_STREAM_CONNECT && tls_client_prepare(ssl, "api.test", TLS_VERIFY_FULL) < 0))
		return NULL;
	bev = tls_stream_new(under, ssl, role, BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		return NULL;
	e->bev = bev;
	e->got = evbuffer_new();
	bufferevent_setcb(bev, on_read, NULL, on_event, e);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return bev;
}

/* A pair with srv the server's stream on one end and cli the client's on the other: 0 or -1. */
static int both(struct event_base *base, struct end *srv, struct end *cli)
{
	int fd[2];

	if (pair(fd) < 0)
		return -1;
	return stream(base, fd[0], TLS_STREAM_ACCEPT, srv) && stream(base, fd[1], TLS_STREAM_CONNECT, cli) ? 0 : -1;
}

/* Frees what a case leaves: the streams not freed in a callback, what they read, the base. */
static void finish(struct event_base *base, struct end *srv, struct end *cli)
{
	struct end *e[2] = { srv, cli };

	for (int i = 0; i < 2; i++) {
		if (e[i] && e[i]->bev)
			bufferevent_free(e[i]->bev);
		if (e[i] && e[i]->got)
			evbuffer_free(e[i]->got);
	}
	event_base_free(base);
}

static void spin(struct event_base *base, int (*done)(void *), void *arg)
{
	for (int i = 0; i < 20000 && !done(arg); i++)
		(void)event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

struct want {
	struct end *e;
	size_t n;
};

static int has_bytes(void *arg)
{
	struct want *w = arg;

	return evbuffer_get_length(w->e->got) >= w->n;
}

static int has_events(void *arg)
{
	return ((struct end *)arg)->events != 0;
}

/* The client writes at once (before any handshake), 1 MiB in odd pieces; the server echoes
 * it: every byte comes back in order, each side reports CONNECTED once. */
static void case_echo(void)
{
	struct event_base *base = new_base();
	struct end srv = { .echo = 1 }, cli = { 0 };
	size_t total = 1 << 20, off = 0;
	unsigned char *data = malloc(total);
	struct want w = { &cli, total };

	CHECK(base && data);
	for (size_t i = 0; i < total; i++)
		data[i] = (unsigned char)(i * 13 + (i >> 10));
	CHECK(both(base, &srv, &cli) == 0);
	CHECK(!tls_stream_ready(cli.bev));
	for (size_t step = 1; off < total; step = step * 3 + 7) {
		size_t n = step < total - off ? step : total - off;

		bufferevent_write(cli.bev, data + off, n);
		off += n;
	}
	spin(base, has_bytes, &w);
	CHECK(evbuffer_get_length(cli.got) == total);
	CHECK(evbuffer_get_length(cli.got) == total &&
	      memcmp(evbuffer_pullup(cli.got, -1), data, total) == 0);
	CHECK(srv.connected == 1);
	CHECK(cli.connected == 1);
	CHECK(tls_stream_ready(cli.bev) && tls_stream_ready(srv.bev));
	CHECK(srv.events == 0 && cli.events == 0);
	CHECK(tls_stream_ssl(cli.bev) != NULL);
	CHECK(tls_stream_ssl(bufferevent_get_underlying(cli.bev)) == NULL);
	finish(base, &srv, &cli);
	free(data);
}

/* A close_notify (sent after the last bytes) ends the stream with EOF after those bytes;
 * the peer frees its stream in that callback. */
static void case_close_notify(void)
{
	struct event_base *base = new_base();
	struct end srv = { .free_on_end = 1 }, cli = { 0 };
	struct want w = { &srv, 5 };

	CHECK(base && both(base, &srv, &cli) == 0);
	bufferevent_write(cli.bev, "last.", 5);
	spin(base, has_bytes, &w);
	CHECK(evbuffer_get_length(srv.got) == 5);
	CHECK(SSL_shutdown(tls_stream_ssl(cli.bev)) == 0);
	spin(base, has_events, &srv);
	CHECK(srv.events == (BEV_EVENT_EOF | BEV_EVENT_READING));
	CHECK(srv.bev == NULL);
	CHECK(cli.events == 0);
	finish(base, &srv, &cli);
}

/* Not TLS from the peer: ERROR with the OpenSSL reason, the stream freed in the callback,
 * and what else comes is dropped. */
static void case_garbage(void)
{
	struct event_base *base = new_base();
	struct end srv = { .free_on_end = 1 };
	static const char junk[] = "GET / HTTP/1.1\r\nHost: api.test\r\n\r\n";
	int fd[2];

	CHECK(base && pair(fd) == 0);
	CHECK(stream(base, fd[0], TLS_STREAM_ACCEPT, &srv) != NULL);
	CHECK(write(fd[1], junk, sizeof(junk) - 1) == (ssize_t)sizeof(junk) - 1);
	spin(base, has_events, &srv);
	CHECK(srv.events == (BEV_EVENT_ERROR | BEV_EVENT_READING));
	CHECK(srv.err != 0);
	CHECK(ERR_GET_REASON(srv.err) == SSL_R_HTTP_REQUEST);
	CHECK(srv.bev == NULL);
	CHECK(ERR_peek_error() == 0);
	close(fd[1]);
	finish(base, &srv, NULL);
}

/* The client refuses the server's leaf (another name): ERROR on the client, with the reason. */
static void case_verify_fails(void)
{
	struct event_base *base = new_base();
	struct end srv = { 0 }, cli = { 0 };
	char err[256];
	SSL_CTX *ctx = tls_client_ctx(TLS_VERIFY_FULL, tls_ca_cert_path(ca), err, sizeof(err));
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;
	struct bufferevent *under;
	int fd[2];

	CHECK(base && ssl && pair(fd) == 0);
	SSL_CTX_free(ctx);
	CHECK(stream(base, fd[0], TLS_STREAM_ACCEPT, &srv) != NULL);
	CHECK(tls_client_prepare(ssl, "other.test", TLS_VERIFY_FULL) == 0);
	under = sock_out_new(base, fd[1], BEV_OPT_CLOSE_ON_FREE);
	cli.bev = tls_stream_new(under, ssl, TLS_STREAM_CONNECT, BEV_OPT_CLOSE_ON_FREE);
	CHECK(cli.bev != NULL);
	cli.got = evbuffer_new();
	bufferevent_setcb(cli.bev, on_read, NULL, on_event, &cli);
	bufferevent_enable(cli.bev, EV_READ | EV_WRITE);
	bufferevent_write(cli.bev, "never sent", 10);
	spin(base, has_events, &cli);
	CHECK(cli.events == (BEV_EVENT_ERROR | BEV_EVENT_READING));
	CHECK(ERR_GET_REASON(cli.err) == SSL_R_CERTIFICATE_VERIFY_FAILED);
	CHECK(cli.connected == 0);
	CHECK(evbuffer_get_length(srv.got) == 0);
	finish(base, &srv, &cli);
}

/* The socket's end without a close_notify (a dirty shutdown: the peer's FIN) is EOF, as
 * with libevent's filter and a client that just closes expects. */
static void case_dirty_end(void)
{
	struct event_base *base = new_base();
	struct end srv = { 0 }, cli = { 0 };
	struct want w = { &srv, 3 };

	CHECK(base && both(base, &srv, &cli) == 0);
	bufferevent_write(cli.bev, "hi!", 3);
	spin(base, has_bytes, &w);
	CHECK(shutdown(bufferevent_getfd(bufferevent_get_underlying(cli.bev)), SHUT_WR) == 0);
	spin(base, has_events, &srv);
	CHECK(srv.events == (BEV_EVENT_EOF | BEV_EVENT_READING));
	CHECK(evbuffer_get_length(srv.got) == 3);
	finish(base, &srv, &cli);
}

/* A peer that does not read: what the stream has not encrypted yet waits in its own output
 * (where the session sees it), the socket's output holds a bounded number of records; when
 * the peer reads again everything arrives in order. */
static void case_backpressure(void)
{
	struct event_base *base = new_base();
	struct end srv = { 0 }, cli = { 0 };
	size_t total = 8 << 20, under_max = 0;
	unsigned char *data = malloc(total);
	struct want w = { &cli, total };
	int small = 16384;

	CHECK(base && data && both(base, &srv, &cli) == 0);
	(void)setsockopt(bufferevent_getfd(bufferevent_get_underlying(srv.bev)), SOL_SOCKET, SO_SNDBUF, &small,
			 sizeof(small));
	(void)setsockopt(bufferevent_getfd(bufferevent_get_underlying(cli.bev)), SOL_SOCKET, SO_RCVBUF, &small,
			 sizeof(small));
	for (size_t i = 0; i < total; i++)
		data[i] = (unsigned char)(i * 31 + (i >> 14));
	bufferevent_write(cli.bev, "go", 2);
	for (int i = 0; i < 2000 && !srv.connected; i++)
		(void)event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	bufferevent_disable(cli.bev, EV_READ);
	bufferevent_write(srv.bev, data, total);
	for (int i = 0; i < 200; i++) {
		size_t u = evbuffer_get_length(bufferevent_get_output(bufferevent_get_underlying(srv.bev)));

		under_max = u > under_max ? u : under_max;
		(void)event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	CHECK(under_max > 0);
	CHECK(under_max <= TLS_OUT_MAX + TLS_RECORD_MAX + 64);
	CHECK(evbuffer_get_length(bufferevent_get_output(srv.bev)) > total / 2);
	bufferevent_enable(cli.bev, EV_READ);
	spin(base, has_bytes, &w);
	CHECK(evbuffer_get_length(cli.got) == total &&
	      memcmp(evbuffer_pullup(cli.got, -1), data, total) == 0);
	CHECK(evbuffer_get_length(bufferevent_get_output(srv.bev)) == 0);
	CHECK(srv.events == 0 && cli.events == 0);
	finish(base, &srv, &cli);
	free(data);
}

/* Every byte of the client's handshake and records arrives on its own, with a loop turn
 * between: the stream completes the handshake once, and echoes 40000 bytes (three records)
 * whole and in order. The client is OpenSSL over memory BIOs, driven by the test. */
static void case_trickle(void)
{
	struct event_base *base = new_base();
	struct end srv = { .echo = 1 };
	char err[256];
	SSL_CTX *ctx = tls_client_ctx(TLS_VERIFY_FULL, tls_ca_cert_path(ca), err, sizeof(err));
	SSL *c = ctx ? SSL_new(ctx) : NULL;
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	size_t total = 40000, echoed = 0, sent = 0, trickled = 0;
	unsigned char *data = malloc(total), *back = malloc(total);
	int fd[2], ok = 1;

	CHECK(base && c && rb && wb && data && back && pair(fd) == 0);
	SSL_CTX_free(ctx);
	for (size_t i = 0; i < total; i++)
		data[i] = (unsigned char)(i * 7 + 3);
	CHECK(stream(base, fd[0], TLS_STREAM_ACCEPT, &srv) != NULL);
	CHECK(tls_client_prepare(c, "api.test", TLS_VERIFY_FULL) == 0);
	SSL_set_bio(c, rb, wb);
	SSL_set_connect_state(c);
	for (int turn = 0; turn < 200000 && echoed < total; turn++) {
		unsigned char buf[65536];
		ssize_t n;
		int r;

		if (!SSL_is_init_finished(c)) {
			(void)SSL_do_handshake(c);
		} else if (sent < total) {
			r = SSL_write(c, data + sent, (int)(total - sent));
			sent += r > 0 ? (size_t)r : 0;
		} else if ((r = SSL_read(c, back + echoed, (int)(total - echoed))) > 0) {
			echoed += (size_t)r;
		}
		while (BIO_pending(wb) > 0) {
			unsigned char b;

			if (BIO_read(wb, &b, 1) != 1 || write(fd[1], &b, 1) != 1) {
				ok = 0;
				break;
			}
			trickled++;
			(void)event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		}
		(void)event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		while ((n = read(fd[1], buf, sizeof(buf))) > 0)
			ok &= BIO_write(rb, buf, (int)n) == (int)n;
	}
	ERR_clear_error();
	CHECK(ok);
	CHECK(trickled > total);
	CHECK(echoed == total && memcmp(back, data, total) == 0);
	CHECK(srv.connected == 1);
	CHECK(srv.events == 0);
	SSL_free(c);
	close(fd[1]);
	finish(base, &srv, NULL);
	free(data);
	free(back);
}

/* 3000 records of one byte each, kept in the input: they are packed together in a few
 * chains, not one (with a record's room) each. */
static void case_small_records(void)
{
	struct event_base *base = new_base();
	struct end srv = { .keep = 1 }, cli = { 0 };
	int n = 3000;

	CHECK(base && both(base, &srv, &cli) == 0);
	for (int i = 0; i < 2000 && !cli.connected; i++)
		(void)event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	for (int i = 0; i < n; i++) {
		bufferevent_write(cli.bev, "x", 1);     /* a record each: the filter runs per add */
		if (i % 50 == 0)
			(void)event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	for (int i = 0; i < 20000 && evbuffer_get_length(bufferevent_get_input(srv.bev)) < (size_t)n; i++)
		(void)event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	CHECK(evbuffer_get_length(bufferevent_get_input(srv.bev)) == (size_t)n);
	/* the input's chains (extents holding data): a few, where one a record was 3000 */
	CHECK(evbuffer_peek(bufferevent_get_input(srv.bev), -1, NULL, NULL, 0) < 10);
	finish(base, &srv, &cli);
}

int main(void)
{
	char err[256];

	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(ca_dir) || tls_ca_open(ca_dir, &ca, err, sizeof(err)) < 0) {
		printf("not ok - setup: %s\n", err);
		return 1;
	}
	RUN(case_echo);
	RUN(case_close_notify);
	RUN(case_garbage);
	RUN(case_verify_fails);
	RUN(case_dirty_end);
	RUN(case_backpressure);
	RUN(case_trickle);
	RUN(case_small_records);
	tls_ca_free(ca);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", ca_dir);
		(void)!system(cmd);
	}
	TEST_EXIT();
}
