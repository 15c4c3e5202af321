/* The console's live feed: Server-Sent Events pushing the pending queue whenever it changes. */
#include "console_int.h"

#include <stdlib.h>

#define SSE_MAX_BUFFER (4u << 20)   /* a reader this far behind is dropped */
#define SSE_PING_TICKS 15           /* a ping every 15 s */

struct sse {
	LIST_ENTRY(sse) link;
	struct console *c;
	struct MHD_Connection *conn;
	char *buf;
	size_t len, off, cap;
	int suspended;
	int closing;
	/* Who opened it: the login's cookie token, or the API token's sha256 (one is ""). The
	 * feed ends within a second of that login or token ending. */
	char cookie_token[65], bearer_sha[65];
};

static int sse_append(struct sse *s, const char *data, size_t n)
{
	if (s->off == s->len)
		s->off = s->len = 0;
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *nb;

		if (s->off) {
			memmove(s->buf, s->buf + s->off, s->len - s->off);
			s->len -= s->off;
			s->off = 0;
		}
		while (cap < s->len + n)
			cap *= 2;
		if (cap > SSE_MAX_BUFFER)
			return -1;
		nb = realloc(s->buf, cap);
		if (!nb)
			return -1;
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	return 0;
}

static void sse_wake(struct sse *s)
{
	if (s->suspended) {
		s->suspended = 0;
		MHD_resume_connection(s->conn);
		console_kick(s->c);
	}
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *s = cls;
	size_t n;

	(void)pos;
	if (s->len > s->off) {
		n = s->len - s->off < max ? s->len - s->off : max;
		memcpy(buf, s->buf + s->off, n);
		s->off += n;
		return (ssize_t)n;
	}
	if (s->closing)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* Nothing to say: park the connection until the queue changes or a ping is due. */
	s->suspended = 1;
	MHD_suspend_connection(s->conn);
	return 0;
}

static void sse_gone(void *cls)
{
	struct sse *s = cls;

	LIST_REMOVE(s, link);
	s->c->n_feeds--;
	free(s->buf);
	free(s);
}

/* "event: pending" with the whole queue: small, and a client that missed one catches up. */
static char *pending_event(struct console *c, int64_t id, const char *event)
{
	json_t *pend = approval_pending_json(c->approval);
	json_t *j;
	char *data, *out = NULL;
	size_t n;

	if (!pend)
		return NULL;
	j = json_pack("{s:s, s:I, s:o, s:I}", "event", event, "id", (json_int_t)id, "pending", pend,
		      "now_us", (json_int_t)al_now_us());
	data = j ? json_dumps(j, JSON_COMPACT) : NULL; /* compact JSON has no raw newline */
	json_decref(j);
	if (!data)
		return NULL;
	n = strlen(data) + 64;
	out = malloc(n);
	if (out && al_fmt(out, n, "event: pending\ndata: %s\n\n", data) < 0) {
		free(out);
		out = NULL;
	}
	free(data);
	return out;
}

enum MHD_Result sse_open(struct console *c, struct MHD_Connection *conn, const struct who *w)
{
	struct MHD_Response *resp;
	struct sse *s;
	char *first;
	enum MHD_Result ret;

	if (c->n_feeds >= 128)
		return MHD_NO;
	s = calloc(1, sizeof(*s));
	if (!s)
		return MHD_NO;
	s->c = c;
	s->conn = conn;
	if (w->sess)
		memcpy(s->cookie_token, w->sess->token, sizeof(s->cookie_token));
	memcpy(s->bearer_sha, w->bearer_sha, sizeof(s->bearer_sha));
	first = pending_event(c, 0, "hello");
	if (sse_append(s, "retry: 2000\n\n", 13) < 0 || !first || sse_append(s, first, strlen(first)) < 0) {
		free(first);
		free(s->buf);
		free(s);
		return MHD_NO;
	}
	free(first);
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, s, sse_gone);
	if (!resp) {
		free(s->buf);
		free(s);
		return MHD_NO;
	}
	LIST_INSERT_HEAD(&c->feeds, s, link);
	c->n_feeds++;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	ret = MHD_queue_response(conn, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

void sse_listener(void *arg, int64_t request_id, const char *event)
{
	struct console *c = arg;
	struct sse *s;
	char *ev;

	if (LIST_EMPTY(&c->feeds))
		return;
	ev = pending_event(c, request_id, event);
	if (!ev)
		return;
	LIST_FOREACH(s, &c->feeds, link) {
		if (s->closing)
			continue;
		if (sse_append(s, ev, strlen(ev)) < 0)
			s->closing = 1; /* too far behind: it reconnects and starts afresh */
		sse_wake(s);
	}
	free(ev);
}

void sse_recheck(struct console *c)
{
	struct sse *s;

	LIST_FOREACH(s, &c->feeds, link) {
		if (!s->closing && auth_still_valid(c, s->cookie_token, s->bearer_sha) < 0) {
			s->closing = 1;
			sse_wake(s);
		}
	}
}

void sse_tick(struct console *c)
{
	struct sse *s;

	sse_recheck(c);
	/* A comment line now and then: proxies keep the stream, and a gone client is noticed. */
	if (++c->ticks % SSE_PING_TICKS)
		return;
	LIST_FOREACH(s, &c->feeds, link) {
		if (!s->closing && sse_append(s, ": ping\n\n", 8) < 0)
			s->closing = 1;
		sse_wake(s);
	}
}

void sse_close_all(struct console *c)
{
	struct sse *s;

	LIST_FOREACH(s, &c->feeds, link) {
		s->closing = 1;
		sse_wake(s);
	}
}
