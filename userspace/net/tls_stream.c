/* TLS over a socket bufferevent, as a bufferevent the session reads and writes in the clear.
 *
 * libevent's own TLS filter (bufferevent_openssl_filter_new) does per read event: an
 * ERR_clear_error and an SSL_read for the record that came, then another pair that finds
 * nothing (WANT_READ), and an ERR_clear_error before each SSL_write. OpenSSL 3's
 * ERR_clear_error frees its sixteen slots' file and function strings every time (32 calls
 * to free): on a keep-alive HTTPS request through the proxy that was 6 clears and 2
 * wasted reads. With this stream airlockd executes 15% fewer instructions per request
 * (bench/insn.sh https).
 *
 * This is a bufferevent_filter whose two filters run OpenSSL on the socket's buffers
 * through a BIO of our own (reads take from the socket bufferevent's input, writes add to
 * its output, which sock_out writes in the same loop turn). libevent calls the input filter
 * while ciphertext is waiting and the session reads, so one SSL_read per record, none to
 * find the input empty. The error queue is cleared only when it holds something. The
 * output filter makes one record of up to 16 KiB of what the session wrote (a response's
 * head and body go out in one record, not one a chain).
 *
 * What a filter must not do itself (run the session's callbacks: the session may free the
 * stream in them) goes through `kick`, an event run from the loop that holds a reference
 * on the stream: the handshake's end (what the session wrote meanwhile goes out, then
 * CONNECTED), a close_notify (EOF), a failure (ERROR). The socket's own events (EOF,
 * errors, a connecting socket's CONNECTED) reach the session as they come, as with
 * libevent's filter. Streams are used from the event loop's thread only.
 */
#include "tls_stream.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <stdint.h>
#include <stdlib.h>

#define TLS_RECORD_MAX 16384    /* plaintext of one record */
#define TLS_OUT_MAX    (64 * 1024)      /* records waiting in the socket's output, at most */
#define REG_BUCKETS    1024

struct tls_stream {
	struct bufferevent *bev;        /* the filter: what the session reads and writes */
	struct bufferevent *under;      /* the socket's bufferevent */
	SSL *ssl;
	struct event *kick;             /* reports `pending` from the loop */
	short pending;                  /* BEV_EVENT_* to report */
	unsigned connected : 1;         /* the handshake is done */
	unsigned ended : 1;             /* a close_notify or a failure: nothing more is read */
	unsigned failed : 1;            /* a failure: nothing more is written either */
	unsigned long err;              /* the first OpenSSL error of a failure */
	struct tls_stream *next;        /* in its registry bucket */
};

/* Streams by their bufferevent (the filter keeps its context to itself). */
static struct tls_stream *reg[REG_BUCKETS];

static struct tls_stream **reg_slot(const struct bufferevent *bev)
{
	uintptr_t h = (uintptr_t)bev;

	h ^= h >> 17;
	return &reg[(h * 0x9e3779b97f4a7c15ULL >> 40) % REG_BUCKETS];
}

static struct tls_stream *reg_find(const struct bufferevent *bev)
{
	struct tls_stream *t = *reg_slot(bev);

	while (t && t->bev != bev)
		t = t->next;
	return t;
}

static void reg_del(struct tls_stream *t)
{
	struct tls_stream **p = reg_slot(t->bev);

	while (*p && *p != t)
		p = &(*p)->next;
	if (*p)
		*p = t->next;
}

/* ---- the BIO: the socket bufferevent's buffers ---- */

static int bio_read(BIO *b, char *out, int outl)
{
	struct tls_stream *t = BIO_get_data(b);
	int n;

	BIO_clear_retry_flags(b);
	if (outl <= 0)
		return 0;
	n = evbuffer_remove(bufferevent_get_input(t->under), out, (size_t)outl);
	if (n <= 0) {
		/* Nothing yet: the input filter runs again when more comes (the socket's end is
		 * the socket bufferevent's to report). */
		BIO_set_retry_read(b);
		return -1;
	}
	return n;
}

static int bio_write(BIO *b, const char *in, int inl)
{
	struct tls_stream *t = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (inl <= 0)
		return 0;
	return evbuffer_add(bufferevent_get_output(t->under), in, (size_t)inl) == 0 ? inl : -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_stream *t = BIO_get_data(b);

	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_PENDING:
		return (long)evbuffer_get_length(bufferevent_get_input(t->under));
	case BIO_CTRL_WPENDING:
		return 0;       /* written is in the socket's output already */
	case BIO_CTRL_GET_CLOSE:
		return BIO_get_shutdown(b);
	case BIO_CTRL_SET_CLOSE:
		BIO_set_shutdown(b, (int)num);
		return 1;
	default:
		return 0;
	}
}

static BIO_METHOD *bio_method(void)
{
	static BIO_METHOD *m;

	if (m)
		return m;
	m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "airlock tls stream");
	if (m && (BIO_meth_set_read(m, bio_read) != 1 || BIO_meth_set_write(m, bio_write) != 1 ||
		  BIO_meth_set_ctrl(m, bio_ctrl) != 1)) {
		BIO_meth_free(m);
		m = NULL;
	}
	return m;
}

/* ---- reports ---- */

/* A report holds a reference on the stream until it is made: a session that frees the
 * stream meanwhile (its callbacks are then gone) leaves it alive until on_kick is done. */
static void report(struct tls_stream *t, short what)
{
	if (!t->pending) {
		bufferevent_incref(t->bev);
		event_active(t->kick, EV_TIMEOUT, 1);
	}
	t->pending |= what;
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct tls_stream *t = arg;
	struct bufferevent *bev = t->bev;
	short ev = t->pending;

	(void)fd;
	(void)what;
	t->pending = 0;
	if (ev & BEV_EVENT_CONNECTED) {
		/* What the session wrote during the handshake goes out (its write callback runs). */
		(void)bufferevent_flush(bev, EV_WRITE, BEV_NORMAL);
		bufferevent_trigger_event(bev, BEV_EVENT_CONNECTED, 0);
	}
	if (ev & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_trigger_event(bev, (short)(ev & ~BEV_EVENT_CONNECTED), 0);
	bufferevent_decref(bev);        /* report's: t may be gone after this */
}

/*
 * An SSL call returned r <= 0: BEV_NEED_MORE when it waits for the peer, else the stream
 * has ended (a close_notify: EOF; anything else: ERROR, with its first error kept) and the
 * session hears so from the loop.
 */
static enum bufferevent_filter_result stalled(struct tls_stream *t, int r, short dir)
{
	switch (SSL_get_error(t->ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return BEV_NEED_MORE;
	case SSL_ERROR_ZERO_RETURN:
		t->ended = 1;
		report(t, (short)(BEV_EVENT_EOF | dir));
		return BEV_NEED_MORE;
	default:
		t->ended = t->failed = 1;
		t->err = ERR_get_error();
		ERR_clear_error();
		report(t, (short)(BEV_EVENT_ERROR | dir));
		return BEV_ERROR;
	}
}

/* SSL_get_error reads the thread's error queue: something left there by other code would
 * make a WANT_READ look like a failure. Clearing an empty queue is what cost so much. */
static void errors_clear(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
}

/* ---- the filters ---- */

/*
 * Ciphertext in src (the socket's input, read through the BIO): one record into dst. The
 * record is read into a buffer here and added to dst, which packs it after what dst holds:
 * reserving a record's 16 KiB in dst for each would leave most of it unused when records
 * are small, and an agent sending one-byte records while its request waits would make
 * airlockd hold 16 KiB for each byte.
 */
static enum bufferevent_filter_result in_filter(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
						enum bufferevent_flush_mode mode, void *arg)
{
	struct tls_stream *t = arg;
	unsigned char rec[TLS_RECORD_MAX];
	int r;

	(void)lim;      /* a record is read whole: what it holds would have no event to come for it */
	(void)mode;
	if (t->ended) {
		/* After a close_notify or a failure the peer's bytes mean nothing. */
		evbuffer_drain(src, evbuffer_get_length(src));
		return BEV_NEED_MORE;
	}
	errors_clear();
	if (!t->connected) {
		r = SSL_do_handshake(t->ssl);
		if (r != 1)
			return stalled(t, r, BEV_EVENT_READING);
		t->connected = 1;
		report(t, BEV_EVENT_CONNECTED);
	}
	r = SSL_read(t->ssl, rec, sizeof(rec));
	if (r <= 0)
		return stalled(t, r, BEV_EVENT_READING);
	if (evbuffer_add(dst, rec, (size_t)r) < 0) {
		t->ended = t->failed = 1;
		report(t, BEV_EVENT_ERROR | BEV_EVENT_READING);
		return BEV_ERROR;
	}
	return BEV_OK;
}

/*
 * What the session wrote (src) into records in dst (the socket's output, through the BIO),
 * up to lim bytes: libevent passes what the socket's output has room for under its write
 * watermark (TLS_OUT_MAX), and calls again when the socket has taken it. What does not fit
 * stays in the stream's output, where the session sees it and stops filling it (a slow
 * reader then holds the other side back instead of airlockd's memory filling up).
 */
static enum bufferevent_filter_result out_filter(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
						 enum bufferevent_flush_mode mode, void *arg)
{
	struct tls_stream *t = arg;
	enum bufferevent_filter_result res = BEV_NEED_MORE;
	size_t n, before = evbuffer_get_length(dst);

	(void)mode;
	if (t->failed)
		return BEV_ERROR;
	if (!t->connected)
		return BEV_NEED_MORE;   /* it goes once the handshake is done (on_kick) */
	errors_clear();
	while ((n = evbuffer_get_length(src)) > 0 &&
	       (lim < 0 || evbuffer_get_length(dst) - before < (size_t)lim)) {
		const unsigned char *p;
		int r;

		if (n > TLS_RECORD_MAX)
			n = TLS_RECORD_MAX;
		if (!(p = evbuffer_pullup(src, (ev_ssize_t)n))) {
			t->ended = t->failed = 1;
			report(t, BEV_EVENT_ERROR | BEV_EVENT_WRITING);
			return BEV_ERROR;
		}
		r = SSL_write(t->ssl, p, (int)n);
		if (r <= 0) {
			enum bufferevent_filter_result s = stalled(t, r, BEV_EVENT_WRITING);

			return s == BEV_ERROR ? s : res;
		}
		evbuffer_drain(src, (size_t)r);
		res = BEV_OK;
	}
	return res;
}

static void stream_free(void *arg)
{
	struct tls_stream *t = arg;

	reg_del(t);
	event_free(t->kick);
	SSL_free(t->ssl);
	free(t);
}

struct bufferevent *tls_stream_new(struct bufferevent *under, SSL *ssl, enum tls_stream_role role, int options)
{
	struct tls_stream *t = calloc(1, sizeof(*t));
	BIO_METHOD *m = bio_method();
	BIO *bio = NULL;
	struct tls_stream **slot;

	if (!t || !m || !(bio = BIO_new(m)) ||
	    !(t->kick = event_new(bufferevent_get_base(under), -1, 0, on_kick, t)))
		goto fail;
	t->under = under;
	BIO_set_data(bio, t);
	BIO_set_init(bio, 1);
	t->bev = bufferevent_filter_new(under, in_filter, out_filter, options, stream_free, t);
	if (!t->bev)
		goto fail;
	bufferevent_setwatermark(under, EV_WRITE, 0, TLS_OUT_MAX);
	/* From here the stream owns ssl and the BIO: freed with it. */
	t->ssl = ssl;
	SSL_set_bio(ssl, bio, bio);
	slot = reg_slot(t->bev);
	t->next = *slot;
	*slot = t;
	if (role == TLS_STREAM_ACCEPT) {
		SSL_set_accept_state(ssl);
	} else {
		int r;

		/* The ClientHello waits in the socket's output until it is connected. */
		SSL_set_connect_state(ssl);
		errors_clear();
		r = SSL_do_handshake(ssl);
		if (r != 1)
			(void)stalled(t, r, BEV_EVENT_WRITING);
	}
	return t->bev;
fail:
	BIO_free(bio);
	if (t && t->kick)
		event_free(t->kick);
	free(t);
	return NULL;
}

SSL *tls_stream_ssl(struct bufferevent *bev)
{
	struct tls_stream *t = bev ? reg_find(bev) : NULL;

	return t ? t->ssl : NULL;
}

int tls_stream_ready(struct bufferevent *bev)
{
	struct tls_stream *t = reg_find(bev);

	return !t || t->connected;
}

unsigned long tls_stream_error(struct bufferevent *bev)
{
	struct tls_stream *t = reg_find(bev);

	return t ? t->err : 0;
}
