/* libFuzzer driver for the HTTP/1.1 request and response parsers, the command a request yields, chunked bodies, k8s recognition and the ClientHello reader. */
#include <airlock/http.h>

#include <stdlib.h>
#include <string.h>

/*
 * Input: one mode byte, then bytes.
 *   mode % 5 == 0: a request (max_body from bit 3: 16 bytes or 1 MiB), fed one-shot and
 *                  split at a point taken from the mode byte; both must agree; a request
 *                  taken yields its command (path, overrides, k8s argv, reviewers' text)
 *   mode % 5 == 1: a response head (bit 3: to a HEAD request)
 *   mode % 5 == 2: a chunked body, fed in pieces of (mode >> 4) + 1 bytes
 *   mode % 5 == 3: a TLS ClientHello
 *   mode % 5 == 4: a Kubernetes path?query
 */

#define ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)

/* The command of a request the parser took: its path in normal form (a fixed point, no
 * longer than sent), overrides each a method, the reviewers' text built. */
static void command(const uint8_t *d, const struct http_req *r)
{
	struct http_command c;
	char err[256], *again;

	if (http_command_build(d, r, &c, err, sizeof(err)) < 0)
		return;
	ASSERT(c.path && c.text && c.fingerprint && strlen(c.path) <= (r->path.len ? r->path.len : 1));
	ASSERT(http_path_refusal((const uint8_t *)c.path, strlen(c.path)) == NULL || c.path[0] == '*');
	again = malloc(strlen(c.path) + 2);
	ASSERT(again);
	ASSERT(http_path_normal(c.path, strlen(c.path), again) == strlen(c.path) && strcmp(again, c.path) == 0);
	free(again);
	ASSERT(c.n_overrides <= HTTP_OVERRIDES_MAX);
	for (size_t i = 0; i < c.n_overrides; i++)
		ASSERT(c.overrides[i][0] && strcmp(c.overrides[i], c.method) != 0);
	http_command_free(&c);
}

static void request(const uint8_t *d, size_t n, uint8_t mode)
{
	struct http_limits lim = { .max_body = (mode & 8) ? 16 : 1u << 20 };
	struct http_req a, b;
	size_t split = n ? ((size_t)mode * 7919u) % (n + 1) : 0;
	int ra, rb;

	http_req_init(&a);
	ra = http_parse_request(&a, d, n, &lim);
	http_req_init(&b);
	rb = http_parse_request(&b, d, split, &lim);
	if (rb == HTTP_NEED_MORE)
		rb = http_parse_request(&b, d, n, &lim);
	ASSERT(ra == rb);
	if (ra == HTTP_DONE) {
		ASSERT(a.total == b.total && a.total <= n && a.head_len <= a.total);
		ASSERT(a.method.off + a.method.len <= n && a.path.off + a.path.len <= n &&
		       a.query.off + a.query.len <= n && a.host.off + a.host.len <= n);
		if (a.body_buffered && a.framing != HTTP_BODY_NONE) {
			uint8_t *body = malloc(a.body_len + 1);
			struct http_span tr;
			int ext;

			ASSERT(body);
			ASSERT(http_req_body(&a, d, body, a.body_len + 1) == a.body_len);
			free(body);
			/* the trailer section the reviewers' text shows: whole lines, before the last CRLF */
			http_req_chunk_extras(&a, d, &ext, &tr);
			ASSERT(tr.off + tr.len <= a.total);
			if (tr.len)
				ASSERT(a.framing == HTTP_BODY_CHUNKED && tr.off + tr.len + 2 == a.total &&
				       d[tr.off + tr.len - 2] == '\r' && d[tr.off + tr.len - 1] == '\n');
		}
		command(d, &a);
	} else if (ra == HTTP_ERROR) {
		ASSERT(strcmp(a.error, b.error) == 0 && a.status >= 400);
	}
}

static void response(const uint8_t *d, size_t n, uint8_t mode)
{
	struct http_resp r;

	http_resp_init(&r);
	if (http_parse_response(&r, d, n, mode & 8) == HTTP_DONE)
		ASSERT(r.head_len <= n && r.code >= 100 && r.code <= 599);
}

static void chunked(const uint8_t *d, size_t n, uint8_t mode)
{
	struct http_chunked c;
	size_t step = (size_t)(mode >> 4) + 1, off = 0;
	int rc = HTTP_NEED_MORE;

	http_chunked_init(&c);
	while (rc == HTTP_NEED_MORE && off < n) {
		size_t used, len = n - off < step ? n - off : step;

		rc = http_chunked_feed(&c, d + off, len, &used);
		ASSERT(used <= len);
		off += used;
		if (used == 0 && rc == HTTP_NEED_MORE)
			break;
	}
}

static void hello(const uint8_t *d, size_t n)
{
	struct http_hello h;

	if (http_tls_hello(d, n, &h) == HTTP_DONE)
		ASSERT(h.len <= n && strlen(h.sni) < sizeof(h.sni));
}

static void k8s(const uint8_t *d, size_t n)
{
	char *s = strndup((const char *)d, n), *q;
	struct http_k8s k;

	if (!s)
		return;
	q = strchr(s, '?');
	if (q)
		*q++ = '\0';
	if (http_k8s_parse(s, q, &k) == 1)
		http_k8s_free(&k);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t mode;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	switch (mode % 5) {
	case 0: request(data, size, mode); break;
	case 1: response(data, size, mode); break;
	case 2: chunked(data, size, mode); break;
	case 3: hello(data, size); break;
	case 4: k8s(data, size); break;
	}
	return 0;
}
