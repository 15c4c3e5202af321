/* Unit tests for the HTTP/1.1 parser: every request split at every byte, the smuggling corpus, responses, chunked, k8s, ClientHello. */
#include "harness.h"

#include <airlock/http.h>

#include <stdlib.h>

/* One-shot parse of the whole buffer. */
static int parse_all(const char *s, size_t n, size_t max_body, struct http_req *r)
{
	struct http_limits lim = { .max_body = max_body };

	http_req_init(r);
	return http_parse_request(r, (const uint8_t *)s, n, &lim);
}

/*
 * Feeds s split at every byte boundary (prefix, then all) and byte by byte,
 * and checks each way ends as the one-shot parse did: same result, same
 * length, same reason. Returns the one-shot result.
 */
static int parse_split(const char *s, size_t n, size_t max_body, struct http_req *out)
{
	struct http_limits lim = { .max_body = max_body };
	struct http_req *r = malloc(sizeof(*r));
	int want = parse_all(s, n, max_body, out), bad = 0;

	for (size_t k = 0; k <= n && !bad; k++) {
		int rc;

		http_req_init(r);
		rc = http_parse_request(r, (const uint8_t *)s, k, &lim);
		if (rc == HTTP_DONE && want == HTTP_DONE && r->total != out->total) {
			printf("#   split %zu: done at %zu, one-shot at %zu\n", k, r->total, out->total);
			bad = 1;
		}
		if (rc == HTTP_ERROR && (want != HTTP_ERROR || strcmp(r->error, out->error) != 0)) {
			printf("#   split %zu: error '%s', one-shot %d '%s'\n", k, r->error, want, out->error);
			bad = 1;
		}
		if (rc == HTTP_NEED_MORE)
			rc = http_parse_request(r, (const uint8_t *)s, n, &lim);
		if (rc != want || (rc == HTTP_DONE && r->total != out->total) ||
		    (rc == HTTP_ERROR && strcmp(r->error, out->error) != 0)) {
			printf("#   split %zu: %d (%s), one-shot %d (%s)\n", k, rc, r->error, want, out->error);
			bad = 1;
		}
	}
	/* byte by byte */
	http_req_init(r);
	{
		int rc = HTTP_NEED_MORE;

		for (size_t k = 1; k <= n && rc == HTTP_NEED_MORE; k++)
			rc = http_parse_request(r, (const uint8_t *)s, k, &lim);
		if (rc != want || (rc == HTTP_ERROR && strcmp(r->error, out->error) != 0)) {
			printf("#   byte by byte: %d (%s), one-shot %d (%s)\n", rc, r->error, want, out->error);
			bad = 1;
		}
	}
	free(r);
	CHECK(!bad);
	return want;
}

static char *span_str(const char *buf, struct http_span sp)
{
	static char out[4][512];
	static int i;
	char *o = out[i++ % 4];

	snprintf(o, 512, "%.*s", (int)sp.len, buf + sp.off);
	return o;
}

#define REQ(s) s, sizeof(s) - 1

static void test_list_next(void)
{
	static const char v[] = " gzip , ,\tchunked\t,, x-y ,";
	const uint8_t *u = (const uint8_t *)v;
	size_t i = 0, s, e;

	CHECK(http_list_next(u, sizeof(v) - 1, &i, &s, &e) == 1 && e - s == 4 && memcmp(v + s, "gzip", 4) == 0);
	CHECK(http_list_next(u, sizeof(v) - 1, &i, &s, &e) == 1 && e - s == 7 && memcmp(v + s, "chunked", 7) == 0);
	CHECK(http_list_next(u, sizeof(v) - 1, &i, &s, &e) == 1 && e - s == 3 && memcmp(v + s, "x-y", 3) == 0);
	CHECK(http_list_next(u, sizeof(v) - 1, &i, &s, &e) == 0);
	i = 0;
	CHECK(http_list_next(u, 0, &i, &s, &e) == 0);
}

static void test_get(void)
{
	struct http_req r;
	const char s[] = "GET /api/v1/items?limit=5&x=%20 HTTP/1.1\r\nHost: api.example:8443\r\n"
			 "User-Agent: curl/7.88\r\nAccept: */*\r\nAuthorization: Bearer agent\r\n\r\n";

	CHECK(parse_split(REQ(s), 1024, &r) == HTTP_DONE);
	CHECK(r.total == sizeof(s) - 1);
	CHECK_STR(span_str(s, r.method), "GET");
	CHECK_STR(span_str(s, r.path), "/api/v1/items");
	CHECK_STR(span_str(s, r.query), "limit=5&x=%20");
	CHECK_STR(span_str(s, r.host), "api.example:8443");
	CHECK(r.minor == 1 && r.keep_alive && r.framing == HTTP_BODY_NONE && r.n_hdr == 4);
	CHECK(http_req_header(&r, (const uint8_t *)s, "authorization") != NULL);
}

static void test_post_length(void)
{
	struct http_req r;
	const char s[] = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nConnection: close\r\n\r\n"
			 "hello world";
	uint8_t body[64];

	CHECK(parse_split(REQ(s), 1024, &r) == HTTP_DONE);
	CHECK(r.total == sizeof(s) - 1 && r.body_buffered && r.body_len == 11 && !r.keep_alive);
	CHECK(http_req_body(&r, (const uint8_t *)s, body, sizeof(body)) == 11 &&
	      memcmp(body, "hello world", 11) == 0);
	/* over max_body: head only, the body is streamed */
	CHECK(parse_split(REQ(s), 10, &r) == HTTP_DONE);
	CHECK(!r.body_buffered && r.total == r.head_len && r.framing == HTTP_BODY_LENGTH &&
	      r.content_length == 11);
}

static void test_chunked(void)
{
	struct http_req r;
	const char s[] = "PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
			 "5;name=v;flag\r\nhello\r\nB\r\n, chunked!\n\r\n0\r\nX-Trailer: t\r\n\r\n";
	uint8_t body[64];
	size_t n;

	CHECK(parse_split(REQ(s), 1024, &r) == HTTP_DONE);
	CHECK(r.total == sizeof(s) - 1 && r.framing == HTTP_BODY_CHUNKED && r.body_len == 16);
	n = http_req_body(&r, (const uint8_t *)s, body, sizeof(body));
	CHECK(n == 16 && memcmp(body, "hello, chunked!\n", 16) == 0);
	/* the second chunk would pass max_body 8: streamed, decided at that chunk */
	CHECK(parse_split(REQ(s), 8, &r) == HTTP_DONE);
	CHECK(!r.body_buffered && r.total == r.head_len);
	{
		struct http_chunked c;
		size_t used = 0, off = r.head_len, tot = sizeof(s) - 1;
		int rc = HTTP_NEED_MORE;

		http_chunked_init(&c);
		while (rc == HTTP_NEED_MORE && off < tot) {
			rc = http_chunked_feed(&c, (const uint8_t *)s + off, 1, &used);
			off += used;
		}
		CHECK(rc == HTTP_DONE && off == tot && c.decoded == 16);
	}
}

static void test_pipelined_and_forms(void)
{
	struct http_req r;
	const char two[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
	const char abs[] = "GET https://Api.Example/p?q=1 HTTP/1.1\r\nHost: api.example\r\n\r\n";
	const char abs0[] = "GET http://h HTTP/1.0\r\n\r\n";
	const char opt[] = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
	const char h10[] = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
	const char up[] = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
	const char v2[] = "GET / HTTP/2.0\r\nHost: a\r\n\r\n";

	CHECK(parse_all(REQ(two), 0, &r) == HTTP_DONE && r.total == 28);
	CHECK(parse_split(REQ(abs), 0, &r) == HTTP_DONE && r.absolute);
	CHECK_STR(span_str(abs, r.path), "/p");
	CHECK_STR(span_str(abs, r.query), "q=1");
	CHECK(parse_split(REQ(abs0), 0, &r) == HTTP_DONE && r.path.len == 0 && !r.keep_alive);
	CHECK_STR(span_str(abs0, r.host), "h");
	CHECK(parse_split(REQ(opt), 0, &r) == HTTP_DONE);
	CHECK(parse_split(REQ(h10), 0, &r) == HTTP_DONE && r.minor == 0 && r.keep_alive);
	CHECK(parse_split(REQ(up), 0, &r) == HTTP_DONE && r.upgrade);
	CHECK(parse_split(REQ(v2), 0, &r) == HTTP_ERROR && r.status == 505);
}

/* Decodes a corpus file: C escapes; physical newlines and the # line dropped. */
static size_t corpus_decode(const char *text, char *out, size_t cap)
{
	const char *p = text;
	size_t n = 0;

	if (*p == '#')
		p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p);
	for (; *p && n < cap; p++) {
		if (*p == '\n')
			continue;
		if (*p == '\\' && p[1]) {
			p++;
			switch (*p) {
			case 'r': out[n++] = '\r'; break;
			case 'n': out[n++] = '\n'; break;
			case 't': out[n++] = '\t'; break;
			case 'x': {
				char hx[3] = { p[1], p[2], 0 };

				out[n++] = (char)strtol(hx, NULL, 16);
				p += 2;
				break;
			}
			default: out[n++] = *p;
			}
			continue;
		}
		out[n++] = *p;
	}
	return n;
}

static void smuggling_case(const char *name, char *text, size_t n, void *arg)
{
	static char req[20000];
	struct http_req r;

	n = corpus_decode(text, req, sizeof(req));
	if (parse_split(req, n, 1 << 20, &r) != HTTP_ERROR || r.status == 0) {
		printf("#   %s: accepted (want an error)\n", name);
		t_cur_failed_ = 1;
	} else if (r.status != 400 && r.status != 431 && r.status != 505) {
		printf("#   %s: status %d\n", name, r.status);
		t_cur_failed_ = 1;
	} else if (getenv("HTTP_CORPUS_VERBOSE")) {
		printf("#   %-28s %d %s\n", name, r.status, r.error);
	}
	(void)arg;
}

static void test_smuggling_corpus(void)
{
	static char text[20000];
	int seen = t_each_file("tests/http_smuggling", "", ".txt", text, sizeof(text), smuggling_case, NULL);

	printf("#   %d smuggling cases refused\n", seen);
	CHECK(seen >= 40);
}

/* A captured request (a mode byte, then the request); *arg counts kubectl's exec. */
static void captured_request(const char *name, char *data, size_t n, void *arg)
{
	struct http_req r;
	struct http_command c;
	char err[256];

	CHECK(n > 1 && data[0] == 0);
	if (n < 2)
		return;
	if (parse_split(data + 1, n - 1, 1 << 20, &r) != HTTP_DONE || r.total != n - 1) {
		printf("#   %s: not one whole request (%s)\n", name, r.error[0] ? r.error : "more, or less");
		t_cur_failed_ = 1;
		return;
	}
	if (http_command_build((const uint8_t *)data + 1, &r, &c, err, sizeof(err)) != 0) {
		printf("#   %s: no command: %s\n", name, err);
		t_cur_failed_ = 1;
		return;
	}
	if (strstr(name, "kubectl_exec") && strcmp(c.kind, "exec") == 0) {
		CHECK(c.is_k8s && c.k8s.argc == 3 && strcmp(c.k8s.argv[2], "rm -rf /tmp/x") == 0);
		(*(int *)arg)++;
	}
	http_command_free(&c);
}

/*
 * Requests of real clients (curl, python3 urllib, node fetch, kubectl), captured by
 * tests/fuzz/capture_http.py as the fuzz driver's seeds captured_* (a mode byte, then the
 * request): each is one whole request, the same cut at every byte, and yields a command; a
 * kubectl exec is recognised with its argv.
 */
static void test_captured_requests(void)
{
	const char *dir = getenv("AIRLOCK_HTTP_CORPUS") ? getenv("AIRLOCK_HTTP_CORPUS") : "tests/fuzz/corpus/http";
	static char data[16384];
	int execs = 0;

	CHECK(t_each_file(dir, "captured_", "", data, sizeof(data), captured_request, &execs) >= 10);
	CHECK(execs == 1);
}

static void test_limits(void)
{
	static char big[HTTP_MAX_HEAD + 200];
	struct http_req r;
	size_t n = 0;

	n += (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\n");
	while (n + 120 < sizeof(big))
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X-%05zu: %090d\r\n", n, 0);
	CHECK(parse_all(big, n, 0, &r) == HTTP_ERROR && r.status == 431);
	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X-%d: y\r\n", i);
	n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\n");
	CHECK(parse_all(big, n, 0, &r) == HTTP_ERROR && r.status == 431);
}

/* A 101's Sec-WebSocket-Protocol (the subprotocol the server chose) is kept, the first one;
 * a Sec-WebSocket-Extensions header is noted. */
static void test_response_ws_protocol(void)
{
	const char *s = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			"sec-WEBSOCKET-protocol:   v4.base64.channel.k8s.io  \r\nSec-WebSocket-Protocol: x\r\n\r\n";
	size_t n = strlen(s);
	struct http_resp r;
	int rc = HTTP_NEED_MORE;

	http_resp_init(&r);
	for (size_t k = 1; k <= n && rc == HTTP_NEED_MORE; k++)
		rc = http_parse_response(&r, (const uint8_t *)s, k, 0);
	CHECK(rc == HTTP_DONE && r.code == 101);
	CHECK(r.ws_protocol.len == strlen("v4.base64.channel.k8s.io") &&
	      memcmp(s + r.ws_protocol.off, "v4.base64.channel.k8s.io", r.ws_protocol.len) == 0);
	CHECK(!r.ws_extensions);
	http_resp_init(&r);
	CHECK(http_parse_response(&r, (const uint8_t *)"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 38, 0) ==
	      HTTP_DONE && r.ws_protocol.len == 0);
	s = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
	http_resp_init(&r);
	CHECK(http_parse_response(&r, (const uint8_t *)s, strlen(s), 0) == HTTP_DONE && r.ws_extensions);
}

static void test_response(void)
{
	const char *cases[][2] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "L5k" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "Ck" },
		{ "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "Nk" },
		{ "HTTP/1.1 304 Not Modified\r\n\r\n", "Nk" },
		{ "HTTP/1.0 200 OK\r\n\r\n", "Xc" },
		{ "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n", "L2c" },
		{ "HTTP/1.1 101 Switching Protocols\r\nUpgrade: SPDY/3.1\r\n\r\n", "Nk" },
		{ "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", "Nk" },
	};

	for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
		struct http_resp r;
		const char *s = cases[i][0];
		size_t n = strlen(s);
		char got[16];
		int rc = HTTP_NEED_MORE;

		http_resp_init(&r);
		for (size_t k = 1; k <= n && rc == HTTP_NEED_MORE; k++)
			rc = http_parse_response(&r, (const uint8_t *)s, k, 0);
		if (rc != HTTP_DONE) {
			printf("#   response %zu: %d %s\n", i, rc, r.error);
			t_cur_failed_ = 1;
			continue;
		}
		snprintf(got, sizeof(got), "%s%s%s",
			 r.framing == HTTP_BODY_LENGTH ? "L" : r.framing == HTTP_BODY_CHUNKED ? "C"
			 : r.framing == HTTP_BODY_CLOSE ? "X" : "N",
			 r.framing == HTTP_BODY_LENGTH ? (r.content_length == 5 ? "5" : "2") : "",
			 r.keep_alive ? "k" : "c");
		if (strcmp(got, cases[i][1]) != 0 || r.head_len != n) {
			printf("#   response %zu: %s, want %s\n", i, got, cases[i][1]);
			t_cur_failed_ = 1;
		}
	}
	{
		struct http_resp r;
		const char *bad[] = { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
				      "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 200 OK\nX: y\r\n\r\n" };

		for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
			http_resp_init(&r);
			CHECK(http_parse_response(&r, (const uint8_t *)bad[i], strlen(bad[i]), 0) == HTTP_ERROR);
		}
		http_resp_init(&r);
		CHECK(http_parse_response(&r, (const uint8_t *)"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
					  38, 1) == HTTP_DONE && r.framing == HTTP_BODY_NONE);
	}
}

static void test_k8s(void)
{
	struct http_k8s k;

	CHECK(http_k8s_parse("/api/v1/namespaces/prod/pods/web-1/exec",
			     "command=sh&command=-c&command=rm+-rf+%2Ftmp%2Fx&container=app&stdin=true&tty=1",
			     &k) == 1);
	CHECK_STR(k.verb, "exec");
	CHECK_STR(k.ns, "prod");
	CHECK_STR(k.pod, "web-1");
	CHECK_STR(k.container, "app");
	CHECK(k.argc == 3 && k.tty && k.stdin_);
	if (k.argc == 3)
		CHECK_STR(k.argv[2], "rm -rf /tmp/x");
	http_k8s_free(&k);
	CHECK(http_k8s_parse("/api/v1/namespaces/a/pods/b/portforward", "ports=80&ports=443", &k) == 1);
	CHECK_STR(k.ports, "80,443");
	http_k8s_free(&k);
	CHECK(http_k8s_parse("/api/v1/namespaces/a/pods/b/attach", "", &k) == 1);
	CHECK(http_k8s_parse("/api/v1/namespaces/a/pods/b", "", &k) == 0);
	CHECK(http_k8s_parse("/api/v1/namespaces/a/pods/b/exec/x", "", &k) == 0);
	CHECK(http_k8s_parse("/api/v1/namespaces/a/services/b/exec", "", &k) == 0);
	CHECK(http_k8s_parse("/api/v1/namespaces/a/pods/b/exec", "command=%zz", &k) == -1);
	CHECK(http_k8s_parse("/api/v1/namespaces/a/pods/b/exec", "command=a%00b", &k) == -1);
}

/*
 * The query as the API server reads it (Go's url.ParseQuery, then PodExecOptions): keys are
 * percent-decoded (%63ommand is command), a pair without '=' is an empty value, container,
 * stdin and tty take their first value, a boolean is false only for 0 and false; ';' is
 * refused (old and new Go split it differently). Through the command, the path is in normal
 * form first, so /%65xec is exec; a trailing '/' is trimmed as the API server trims it.
 */
static void test_k8s_as_go_reads_it(void)
{
	static const struct {
		const char *query;
		int rc;
		const char *argv;      /* words joined by '|' */
		const char *container;
		int tty, stdin_;
	} v[] = {
		{ "%63ommand=rm&%63ommand=-rf&%63ommand=/data&command=echo&command=hello", 1,
		  "rm|-rf|/data|echo|hello", "", 0, 0 },
		{ "command=a&command&command=&command=b", 1, "a|||b", "", 0, 0 },
		{ "comm%61nd=x&c%6Fntainer=app&container=other", 1, "x", "app", 0, 0 },
		{ "command+=x&command%20=y&Command=z&command=ok", 1, "ok", "", 0, 0 },
		{ "tty=false&tty=true&stdin=&stdin=0", 1, "", "", 0, 1 },
		{ "tty=FALSE&stdin=yes", 1, "", "", 0, 1 },
		{ "tty=0&stdin=False", 1, "", "", 0, 0 },
		{ "tty=on&stdin=1", 1, "", "", 1, 1 },
		{ "&&command=x&&", 1, "x", "", 0, 0 },
		{ "command=echo;command=rm", -1, NULL, NULL, 0, 0 },
		{ "command=echo&x=%3B;", -1, NULL, NULL, 0, 0 },
	};
	struct http_k8s k;

	for (size_t i = 0; i < AL_ARRAY_LEN(v); i++) {
		char words[256] = "";
		int rc = http_k8s_parse("/api/v1/namespaces/a/pods/b/exec", v[i].query, &k);

		CHECK(rc == v[i].rc);
		if (rc != 1) {
			if (rc != v[i].rc)
				printf("#   %s: %d\n", v[i].query, rc);
			continue;
		}
		for (size_t w = 0; w < k.argc; w++)
			snprintf(words + strlen(words), sizeof(words) - strlen(words), "%s%s", w ? "|" : "", k.argv[w]);
		if (strcmp(words, v[i].argv) != 0 || strcmp(k.container, v[i].container) != 0 ||
		    k.tty != v[i].tty || k.stdin_ != v[i].stdin_) {
			printf("#   %s: argv %s container %s tty %d stdin %d\n", v[i].query, words, k.container,
			       k.tty, k.stdin_);
			t_cur_failed_ = 1;
		}
		http_k8s_free(&k);
	}
	CHECK(http_k8s_parse("/api/v1/namespaces/a/pods/b/exec/", "command=x", &k) == 1 && k.argc == 1);
	http_k8s_free(&k);
	CHECK(http_k8s_parse("/api/v1/namespaces/a/pods/b/exec/x/", "", &k) == 0);
	{
		const char req[] = "GET /api/v1/namespaces/default/pods/web-0/%65xec?%63ommand=rm&command=echo "
				   "HTTP/1.1\r\nHost: k8s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
		struct http_req r;
		struct http_command c;
		char err[128];

		CHECK(parse_split(REQ(req), 1024, &r) == HTTP_DONE);
		CHECK(http_command_build((const uint8_t *)req, &r, &c, err, sizeof(err)) == 0);
		CHECK(c.is_k8s && strcmp(c.kind, "exec") == 0 && c.k8s.argc == 2);
		CHECK_STR(c.path, "/api/v1/namespaces/default/pods/web-0/exec");
		CHECK_STR(c.fingerprint, "exec default/web-0/ rm echo");
		CHECK(strncmp(c.text, "kubectl exec -n default web-0 -- rm echo\n", 41) == 0);
		http_command_free(&c);
	}
}

/*
 * Paths: what servers read differently is refused by the parser (400, each cut at every
 * byte); the rest is matched in normal form (unreserved escapes decoded, others upper-case,
 * runs of '/' one), which the headline and the fingerprint show; the request line as sent.
 */
static void test_paths(void)
{
	static const struct {
		const char *path, *why;
	} refused[] = {
		{ "/./forbidden/x", "a '.' or '..' segment in the path" },
		{ "/public/../forbidden/x", "a '.' or '..' segment in the path" },
		{ "/public/%2e%2e/forbidden/x", "a '.' or '..' segment in the path" },
		{ "/public/.%2E/forbidden/x", "a '.' or '..' segment in the path" },
		{ "/forbidden/x/..", "a '.' or '..' segment in the path" },
		{ "/forbidden/.", "a '.' or '..' segment in the path" },
		{ "/a//./b", "a '.' or '..' segment in the path" },
		{ "//forbidden/x", "a path that starts with '//'" },
		{ "/forbidden%2Fsecret.txt", "an encoded '/' (%2F) in the path" },
		{ "/forbidden%2fx", "an encoded '/' (%2F) in the path" },
		{ "/forbidden%5Cx", "an encoded '\\' (%5C) in the path" },
		{ "/forbidden\\x", "'\\' in the path" },
		{ "/forbidden%00.txt", "an encoded NUL (%00) in the path" },
		{ "/forbidden;x/secret.txt", "';' (path parameters) in the path" },
		{ "/x;jsessionid=1", "';' (path parameters) in the path" },
	};
	static const struct {
		const char *target, *normal;
	} taken[] = {
		{ "/%66orbidden/secret.txt", "/forbidden/secret.txt" },
		{ "/a//b///c/", "/a/b/c/" },
		{ "/%7e%2d%5F%41%7A%30", "/~-_Az0" },
		{ "/x%3a%c3%a9%25%20y", "/x%3A%C3%A9%25%20y" },
		{ "/.../.well-known/..x/x../.%2e.", "/.../.well-known/..x/x../..." },
		{ "/%2e%2e%2e", "/..." },
		{ "/p?a=%2e%2e/..//;", "/p" },
		{ "https://h", "/" },
		{ "https://h/a//b?x", "/a/b" },
	};
	struct http_req r;
	struct http_command c;
	char req[256], err[128];
	size_t n;

	for (size_t i = 0; i < AL_ARRAY_LEN(refused); i++) {
		n = (size_t)snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", refused[i].path);
		CHECK(parse_split(req, n, 1024, &r) == HTTP_ERROR && r.status == 400);
		CHECK_STR(r.error, refused[i].why);
		n = (size_t)snprintf(req, sizeof(req), "GET https://h%s?q HTTP/1.1\r\nHost: h\r\n\r\n",
				     refused[i].path);
		CHECK(parse_all(req, n, 1024, &r) == HTTP_ERROR && strcmp(r.error, refused[i].why) == 0);
		CHECK(http_path_refusal((const uint8_t *)refused[i].path, strlen(refused[i].path)) != NULL);
	}
	for (size_t i = 0; i < AL_ARRAY_LEN(taken); i++) {
		n = (size_t)snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", taken[i].target);
		CHECK(parse_split(req, n, 1024, &r) == HTTP_DONE);
		if (r.status) {
			printf("#   %s: %s\n", taken[i].target, r.error);
			continue;
		}
		CHECK(http_command_build((const uint8_t *)req, &r, &c, err, sizeof(err)) == 0);
		CHECK_STR(c.path, taken[i].normal);
		/* the normal form is a fixed point */
		{
			char again[64];

			CHECK(http_path_normal(c.path, strlen(c.path), again) == strlen(c.path));
			CHECK_STR(again, c.path);
		}
		http_command_free(&c);
	}
	n = (size_t)snprintf(req, sizeof(req), "DELETE /%%66orbidden/x?y=1 HTTP/1.1\r\nHost: h\r\n\r\n");
	CHECK(parse_all(req, n, 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)req, &r, &c, err, sizeof(err)) == 0);
	CHECK_STR(c.fingerprint, "DELETE h/forbidden/x");
	CHECK(strncmp(c.text, "DELETE https://h/forbidden/x?y=1\nDELETE /%66orbidden/x?y=1 HTTP/1.1\n", 65) == 0);
	http_command_free(&c);
	n = (size_t)snprintf(req, sizeof(req), "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
	CHECK(parse_all(req, n, 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)req, &r, &c, err, sizeof(err)) == 0);
	CHECK_STR(c.path, "*");
	http_command_free(&c);
}

/* Methods are case-sensitive; frameworks that upper-case them would run "delete" as DELETE,
 * which no DELETE rule met: a method with a lower-case letter is refused. */
static void test_method_case(void)
{
	static const char *const refused[] = { "delete", "Delete", "DELETe", "get", "m-search" };
	static const char *const taken[] = { "DELETE", "M-SEARCH", "PROPFIND", "X_1.2", "PURGE" };
	struct http_req r;
	char req[128];
	size_t n;

	for (size_t i = 0; i < AL_ARRAY_LEN(refused); i++) {
		n = (size_t)snprintf(req, sizeof(req), "%s /items/1 HTTP/1.1\r\nHost: h\r\n\r\n", refused[i]);
		CHECK(parse_split(req, n, 1024, &r) == HTTP_ERROR && r.status == 400);
		CHECK_STR(r.error, "method must be upper case");
	}
	for (size_t i = 0; i < AL_ARRAY_LEN(taken); i++) {
		n = (size_t)snprintf(req, sizeof(req), "%s /items/1 HTTP/1.1\r\nHost: h\r\n\r\n", taken[i]);
		CHECK(parse_split(req, n, 1024, &r) == HTTP_DONE);
	}
}

/* Cookies are the agent's session secrets: reviewers read each one's name and length, the
 * request (and its digest) stays exactly what was sent. */
static void test_command_cookies(void)
{
	const char s[] = "GET /x HTTP/1.1\r\nHost: h\r\nCookie: session=0123456789abcdef; theme=dark\r\n"
			 "cookie: lonely\r\nCOOKIE:  a=; ;b=1;=v;\t c=x=y \r\nCookie: k\xe9y=secret-\xff\r\n"
			 "X-Other: session=visible\r\n\r\n";
	struct http_req r;
	struct http_command c;
	char err[128], want[65];

	CHECK(parse_all(REQ(s), 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)s, &r, &c, err, sizeof(err)) == 0);
	CHECK(strstr(c.text, "\nCookie: session=<redacted 16 bytes>; theme=<redacted 4 bytes>\n"
			     "cookie: <redacted 6 bytes>\n"
			     "COOKIE: a=<redacted 0 bytes>; b=<redacted 1 byte>; =<redacted 1 byte>; c=<redacted 3 bytes>\n"
			     "Cookie: (not UTF-8, 3 bytes in hex: 6be979)=<redacted 8 bytes>\n"
			     "X-Other: session=visible\n") != NULL);
	if (t_cur_failed_)
		printf("#   text: %s\n", c.text);
	CHECK(!strstr(c.text, "0123456789abcdef") && !strstr(c.text, "dark") && !strstr(c.text, "lonely") &&
	      !strstr(c.text, "secret"));
	CHECK(al_sha256_hex(s, sizeof(s) - 1, want) == 0);
	CHECK_STR(c.request_sha256, want);
	http_command_free(&c);
}

/* Other headers that carry the agent's own credentials (API keys, tokens, passwords), by name
 * and by shape, in the head and in a chunked body's trailer: reviewers read each one's name
 * and length; the request (and its digest) stays exactly what was sent, and headers that only
 * look alike are shown. */
static void test_command_secret_headers(void)
{
	const char s[] = "POST /x HTTP/1.1\r\nHost: h\r\nX-Api-Key: VAL-01234567\r\nApi-Key: VA1\r\n"
			 "X-Auth-Token: VA2\r\nX-Access-Token: VA3\r\nProxy-Authorization: Basic dTpw\r\n"
			 "X-Amz-Security-Token: VA4\r\nx-goog-api-key: VA5\r\nX-Client-Secret: VA6\r\n"
			 "DB_PASSWORD: VA7\r\nX-Authentication: VA8\r\napikey: VA9\r\nToken: VA10\r\n"
			 "X-Refresh-Token:  VA11 \r\nX-Monkey: shown-1\r\nX-Tokens: shown-2\r\n"
			 "X-Keyring-Id: shown-3\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "2\r\nok\r\n0\r\nX-Upload-Token: VA12\r\nX-Checksum: shown-4\r\n\r\n";
	struct http_req r;
	struct http_command c;
	char err[128], want[65];

	CHECK(parse_all(REQ(s), 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)s, &r, &c, err, sizeof(err)) == 0);
	CHECK(strstr(c.text, "\nX-Api-Key: <redacted 12 bytes>\nApi-Key: <redacted 3 bytes>\n"
			     "X-Auth-Token: <redacted 3 bytes>\nX-Access-Token: <redacted 3 bytes>\n"
			     "Proxy-Authorization: Basic <the agent's credential, 10 bytes, not shown>\n"
			     "X-Amz-Security-Token: <redacted 3 bytes>\nx-goog-api-key: <redacted 3 bytes>\n"
			     "X-Client-Secret: <redacted 3 bytes>\nDB_PASSWORD: <redacted 3 bytes>\n"
			     "X-Authentication: <redacted 3 bytes>\napikey: <redacted 3 bytes>\n"
			     "Token: <redacted 4 bytes>\nX-Refresh-Token: <redacted 4 bytes>\n"
			     "X-Monkey: shown-1\nX-Tokens: shown-2\nX-Keyring-Id: shown-3\n") != NULL);
	CHECK(strstr(c.text, "\ntrailer fields (after the body):\nX-Upload-Token: <redacted 4 bytes>\n"
			     "X-Checksum: shown-4\n") != NULL);
	if (t_cur_failed_)
		printf("#   text: %s\n", c.text);
	CHECK(!strstr(c.text, "VA") && !strstr(c.text, "dTpw"));
	CHECK(al_sha256_hex(s, sizeof(s) - 1, want) == 0);
	CHECK_STR(c.request_sha256, want);
	http_command_free(&c);
}

/* A ClientHello with SNI and ALPN, built by hand. */
/* The command a request yields: the chosen headers as sorted compact JSON (the first of each
 * name, Authorization never shown), the reviewer's text: a headline, then the request line and
 * every header in the request's order, the agent's credentials redacted; the digests. */
static void test_command(void)
{
	struct http_req r;
	struct http_command c;
	char err[128], want[65];
	const char s[] = "GET /api/v1/items?limit=5 HTTP/1.1\r\nHost: api.example:8443\r\n"
			 "User-Agent: curl/7.88\r\nAccept: */*\r\nAuthorization: Bearer agent-secret\r\n"
			 "Cookie: session=1\r\nACCEPT: second\r\nContent-Type: a\"b\\c\td\r\n\r\n";
	const char p[] = "POST /v1/x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
			 "User-Agent: ok\xc3\xa9\r\n\r\nhello";
	const char bad[] = "GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: x\xff\xfey\r\n\r\n";

	CHECK(parse_all(REQ(s), 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)s, &r, &c, err, sizeof(err)) == 0);
	CHECK_STR(c.headers_json, "{\"accept\":\"*/*\",\"authorization\":\"(dropped: Airlock sends the "
				  "resource's credential)\",\"content-type\":\"a\\\"b\\\\c\\td\","
				  "\"user-agent\":\"curl/7.88\"}");
	CHECK_STR(c.text, "GET https://api.example:8443/api/v1/items?limit=5\n"
			  "GET /api/v1/items?limit=5 HTTP/1.1\nHost: api.example:8443\nUser-Agent: curl/7.88\n"
			  "Accept: */*\nAuthorization: Bearer <the agent's credential, 19 bytes, not shown>\n"
			  "Cookie: session=<redacted 1 byte>\nACCEPT: second\nContent-Type: a\"b\\c\td\n");
	CHECK(!strstr(c.text, "agent-secret") && !strstr(c.headers_json, "agent-secret"));
	CHECK_STR(c.kind, "get");
	CHECK_STR(c.fingerprint, "GET api.example:8443/api/v1/items");
	CHECK_STR(c.body_sha256, AL_SHA256_EMPTY);
	CHECK(c.n_overrides == 0 && c.body_unreadable[0] == '\0');
	CHECK(al_sha256_hex(s, sizeof(s) - 1, want) == 0);
	CHECK_STR(c.request_sha256, want);
	http_command_free(&c);

	CHECK(parse_all(REQ(p), 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)p, &r, &c, err, sizeof(err)) == 0);
	CHECK_STR(c.headers_json, "{\"content-length\":\"5\",\"user-agent\":\"ok\xc3\xa9\"}");
	CHECK(al_sha256_hex("hello", 5, want) == 0);
	CHECK_STR(c.body_sha256, want);
	CHECK(c.body_buffered && c.body_len == 5);
	CHECK(strstr(c.text, "\nbody: 5 bytes, sha256 ") && strstr(c.text, want) && strstr(c.text, "\nhello"));
	http_command_free(&c);

	/* obs-text that is not UTF-8 is marked in the audit, and shown in hex to reviewers */
	CHECK(parse_all(REQ(bad), 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)bad, &r, &c, err, sizeof(err)) == 0);
	CHECK_STR(c.headers_json, "{\"user-agent\":\"(not UTF-8)\"}");
	CHECK(c.text && strstr(c.text, "\nUser-Agent: (not UTF-8, 4 bytes in hex: 78fffe79)\n") != NULL);
	http_command_free(&c);
}

/* A request built in a buffer: head, then n bytes of body from fill (NULL: none). */
static char *big_request(const char *head, size_t n, char fill, size_t *len)
{
	size_t hl = strlen(head);
	char *b = malloc(hl + n + 1);

	memcpy(b, head, hl);
	memset(b + hl, fill, n);
	b[hl + n] = '\0';
	*len = hl + n;
	return b;
}

/*
 * Reviewers read the whole body: a JSON body padded past the old 2 KiB preview shows its tail
 * (the second operation an agent hid there); with a resource credential the head shows what
 * goes upstream: the agent's Authorization, Proxy-Authorization and a header of the
 * credential's name dropped, the credential's header last, redacted; the agent's own API key
 * (another header) goes, its value redacted.
 */
static void test_command_review_text(void)
{
	struct http_req r;
	struct http_command c;
	struct http_cred bearer = { "Authorization", 13 }, key = { "X-Api-Key: s3cret", 9 };
	char err[128], head[512], want[65], *req, *body;
	const char *tail = "\"op\":\"drop\",\"op\":\"delete-all\"}";
	size_t pad = 100000, n, blen;

	body = malloc(pad + 64);
	memcpy(body, "{\"note\":\"", 9);
	memset(body + 9, 'x', pad);
	snprintf(body + 9 + pad, 64, "\",%s", tail);
	blen = strlen(body);
	snprintf(head, sizeof(head), "POST /v1/ops HTTP/1.1\r\nHost: api.test\r\nContent-Type: application/json\r\n"
		 "Authorization: Bearer agent-tok\r\nX-Custom-Mode: destructive\r\n"
		 "Proxy-Authorization: Basic cHJveHk=\r\nX-Api-Key: agent-key\r\nContent-Length: %zu\r\n\r\n", blen);
	req = big_request(head, 0, 0, &n);
	req = realloc(req, n + blen + 1);
	memcpy(req + n, body, blen + 1);
	n += blen;
	CHECK(parse_all(req, n, 1 << 20, &r) == HTTP_DONE && r.body_buffered);

	CHECK(http_command_parse((const uint8_t *)req, &r, &c, err, sizeof(err)) == 0);
	CHECK(c.text == NULL);
	CHECK(http_command_text((const uint8_t *)req, &r, &bearer, &c) == 0);
	CHECK(al_sha256_hex(body, blen, want) == 0);
	CHECK(c.body_unreadable[0] == '\0');
	/* the whole body, its tail included, after its length and digest */
	{
		char line[200];

		snprintf(line, sizeof(line), "\n\nbody: %zu bytes, sha256 %s\n", blen, want);
		CHECK(strstr(c.text, line) != NULL);
		CHECK(strlen(c.text) > blen && strcmp(c.text + strlen(c.text) - blen, body) == 0);
		CHECK(strstr(c.text, tail) != NULL);
	}
	{
		char want_head[512];

		snprintf(want_head, sizeof(want_head), "POST https://api.test/v1/ops\nPOST /v1/ops HTTP/1.1\n"
			 "Host: api.test\nContent-Type: application/json\nX-Custom-Mode: destructive\n"
			 "X-Api-Key: <redacted 9 bytes>\nContent-Length: %zu\nAuthorization: <resource credential>\n\n",
			 blen);
		CHECK(strncmp(c.text, want_head, strlen(want_head)) == 0);
		if (strncmp(c.text, want_head, strlen(want_head)) != 0)
			printf("#   text starts %.400s\n", c.text);
	}
	CHECK(!strstr(c.text, "agent-tok") && !strstr(c.text, "cHJveHk=") && !strstr(c.text, "agent-key"));
	http_command_free(&c);

	/* a header= credential: the agent's header of that name goes too, the credential's
	 * value is never in the text */
	CHECK(http_command_parse((const uint8_t *)req, &r, &c, err, sizeof(err)) == 0);
	CHECK(http_command_text((const uint8_t *)req, &r, &key, &c) == 0);
	CHECK(strstr(c.text, "\nX-Custom-Mode: destructive\nContent-Length: ") != NULL);
	CHECK(strstr(c.text, "\nX-Api-Key: <resource credential>\n\nbody: ") != NULL);
	CHECK(!strstr(c.text, "agent-key") && !strstr(c.text, "s3cret") && !strstr(c.text, "agent-tok"));
	{
		size_t drops = 0;

		for (size_t i = 0; i < r.n_hdr; i++)
			drops += (size_t)http_forward_drops((const uint8_t *)req, &r, &c, &key, &r.hdr[i]);
		CHECK(drops == 3);
		drops = 0;
		for (size_t i = 0; i < r.n_hdr; i++)
			drops += (size_t)http_forward_drops((const uint8_t *)req, &r, &c, NULL, &r.hdr[i]);
		CHECK(drops == 0);
	}
	http_command_free(&c);
	free(req);
	free(body);
}

/*
 * A body reviewers could not read is named, not shown, and marked (the proxy denies review of
 * it): binary, not UTF-8, NUL bytes, content-coded, chunk extensions. A chunked body is shown
 * decoded, its trailer fields after it.
 */
static void test_command_body_kinds(void)
{
	static const struct {
		const char *req;
		size_t len;
		const char *unreadable;     /* in body_unreadable; NULL: readable */
	} v[] = {
		{ REQ("PUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n\x89PNG"), "not UTF-8" },
		{ REQ("PUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\na\0b"), "NUL" },
		{ REQ("PUT /b HTTP/1.1\r\nHost: h\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nok"),
		  "Content-Encoding" },
		{ REQ("PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n0\r\n\r\n"),
		  "extensions" },
		{ REQ("PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0;x\r\n\r\n"), "extensions" },
		/* no body: nothing to decode, whatever the coding says */
		{ REQ("DELETE /b HTTP/1.1\r\nHost: h\r\nContent-Encoding: gzip\r\n\r\n"), NULL },
		{ REQ("PUT /b HTTP/1.1\r\nHost: h\r\nContent-Encoding: identity\r\nContent-Length: 6\r\n\r\n"
		      "\xc3\xa9t\xc3\xa9\n"), NULL },
		{ REQ("PUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n\x1b[2Jx"), NULL },
	};
	const char chunked[] = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
			       "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\nX-Late:  v \r\n\r\n";
	struct http_req r;
	struct http_command c;
	char err[128];

	for (size_t i = 0; i < AL_ARRAY_LEN(v); i++) {
		CHECK(parse_all(v[i].req, v[i].len, 1024, &r) == HTTP_DONE);
		CHECK(http_command_build((const uint8_t *)v[i].req, &r, &c, err, sizeof(err)) == 0);
		if (v[i].unreadable) {
			char line[300];

			CHECK(strstr(c.body_unreadable, v[i].unreadable) != NULL);
			snprintf(line, sizeof(line), "\nbody: %llu bytes, sha256 %s, not shown: %s\n",
				 (unsigned long long)r.body_len, c.body_sha256, c.body_unreadable);
			CHECK(strstr(c.text, line) != NULL && strcmp(c.text + strlen(c.text) - strlen(line), line) == 0);
		} else {
			CHECK(c.body_unreadable[0] == '\0');
			CHECK(memcmp(c.text + strlen(c.text) - r.body_len, v[i].req + r.head_len, r.body_len) == 0);
		}
		if ((c.body_unreadable[0] != '\0') != (v[i].unreadable != NULL))
			printf("#   case %zu: '%s'\n", i, c.body_unreadable);
		http_command_free(&c);
	}

	CHECK(parse_all(REQ(chunked), 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)chunked, &r, &c, err, sizeof(err)) == 0);
	CHECK(c.body_unreadable[0] == '\0' && c.body_len == 11);
	CHECK(strstr(c.text, "\nTransfer-Encoding: chunked\n\nbody: 11 bytes, sha256 ") != NULL);
	CHECK(strstr(c.text, "\nhello world\ntrailer fields (after the body):\nX-Checksum: abc\nX-Late: v\n") != NULL);
	http_command_free(&c);
}

/*
 * Method overrides: X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override (each item of a
 * list) and _method in the query or a form body are methods the server may run instead; the
 * command lists each once (upper case), shows them in its headline and fingerprint, and keeps
 * the headers in the audit's JSON. A value that is not a method is refused.
 */
static void test_command_overrides(void)
{
	const char a[] = "POST /items/7 HTTP/1.1\r\nHost: h\r\nX-HTTP-Method-Override: DELETE\r\n"
			 "X-Method-Override: put, delete\r\nx-http-method: POST\r\nContent-Length: 2\r\n\r\n{}";
	const char q[] = "POST /items/7?a=1&%5Fmethod=patch;b HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
	const char f[] = "POST /f HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
			 "Content-Length: 23\r\n\r\nname=x&_method=DEL%45TE";
	const char nf[] = "POST /f HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
			  "Content-Length: 14\r\n\r\n_method=DELETE";
	const char bad1[] = "POST / HTTP/1.1\r\nHost: h\r\nX-HTTP-Method-Override: DE(LETE\r\n\r\n";
	const char bad2[] = "POST /?_method=DELETE%20NOW HTTP/1.1\r\nHost: h\r\n\r\n";
	const char many[] = "POST / HTTP/1.1\r\nHost: h\r\nX-HTTP-Method: A,B,C,D,E,F,G,H,I\r\n\r\n";
	struct http_req r;
	struct http_command c;
	char err[128];

	CHECK(parse_all(REQ(a), 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)a, &r, &c, err, sizeof(err)) == 0);
	CHECK(c.n_overrides == 2 && strcmp(c.overrides[0], "DELETE") == 0 && strcmp(c.overrides[1], "PUT") == 0);
	CHECK_STR(c.method, "POST");
	CHECK_STR(c.kind, "post");
	CHECK_STR(c.fingerprint, "POST (override DELETE, PUT) h/items/7");
	CHECK(strstr(c.text, "POST (override DELETE, PUT) https://h/items/7\nPOST /items/7 HTTP/1.1\n") == c.text);
	CHECK(strstr(c.text, "\nX-HTTP-Method-Override: DELETE\nX-Method-Override: put, delete\nx-http-method: POST\n"));
	CHECK_STR(c.headers_json, "{\"content-length\":\"2\",\"x-http-method\":\"POST\","
				  "\"x-http-method-override\":\"DELETE\",\"x-method-override\":\"put, delete\"}");
	{
		char *j = http_command_json(&c);

		CHECK(j && strstr(j, "\"method_overrides\":[\"DELETE\",\"PUT\"]"));
		free(j);
	}
	http_command_free(&c);

	CHECK(parse_all(REQ(q), 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)q, &r, &c, err, sizeof(err)) == 0);
	CHECK(c.n_overrides == 1 && strcmp(c.overrides[0], "PATCH") == 0);
	http_command_free(&c);

	CHECK(parse_all(REQ(f), 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)f, &r, &c, err, sizeof(err)) == 0);
	CHECK(c.n_overrides == 1 && strcmp(c.overrides[0], "DELETE") == 0);
	http_command_free(&c);

	/* _method in a body that is not a form is the server's business, not a method */
	CHECK(parse_all(REQ(nf), 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)nf, &r, &c, err, sizeof(err)) == 0);
	CHECK(c.n_overrides == 0);
	http_command_free(&c);

	CHECK(parse_all(REQ(bad1), 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)bad1, &r, &c, err, sizeof(err)) == -1);
	CHECK(strstr(err, "not a method") != NULL);
	CHECK(parse_all(REQ(bad2), 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)bad2, &r, &c, err, sizeof(err)) == -1);
	CHECK(parse_all(REQ(many), 1024, &r) == HTTP_DONE);
	CHECK(http_command_build((const uint8_t *)many, &r, &c, err, sizeof(err)) == -1);
	CHECK(strstr(err, "more than 8") != NULL);
}

/* The overrides a request yields, as "A,B" (an error: "error: why"); max_body as given. */
static const char *overrides_of(const char *req, size_t n, size_t max_body)
{
	static char out[256];
	struct http_req r;
	struct http_command c;
	char err[128];

	out[0] = '\0';
	if (parse_all(req, n, max_body, &r) != HTTP_DONE) {
		snprintf(out, sizeof(out), "parse: %s", r.error);
		return out;
	}
	if (http_command_build((const uint8_t *)req, &r, &c, err, sizeof(err)) < 0) {
		snprintf(out, sizeof(out), "error: %s", err);
		return out;
	}
	for (size_t i = 0; i < c.n_overrides; i++)
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", i ? "," : "", c.overrides[i]);
	http_command_free(&c);
	return out;
}

/* A request with Content-Type ct (NULL: none) and body. */
static size_t body_request(char *out, size_t cap, const char *method, const char *ct, const char *body)
{
	return (size_t)snprintf(out, cap, "%s /f HTTP/1.1\r\nHost: h\r\n%s%s%sContent-Length: %zu\r\n\r\n%s",
				method, ct ? "Content-Type: " : "", ct ? ct : "", ct ? "\r\n" : "", strlen(body),
				body);
}

/*
 * _method in a body as the servers that honour it read it: a form (also a POST without
 * Content-Type, which Rack reads as one; the names PHP makes _method of), a multipart body's
 * fields (Rack, PHP), a JSON body's top-level key (Laravel). A POST whose body may name one
 * that Airlock cannot read (over http_max_body, content-coded, a multipart or JSON body that
 * does not parse, a name encoded as some parsers decode) may run as any method ("*").
 */
static void test_command_body_overrides(void)
{
	static const struct {
		const char *method, *ct, *body, *want;
	} v[] = {
		{ "POST", NULL, "a=1&_method=PATCH", "PATCH" },
		{ "POST", "application/x-www-form-urlencoded,text/plain", "_method=put", "PUT" },
		{ "POST", "APPLICATION/X-WWW-FORM-URLENCODED", "x=1&.method=delete", "DELETE" },
		{ "POST", "application/x-www-form-urlencoded", "%20+%5Bmethod=DELETE", "DELETE" },
		{ "POST", "application/x-www-form-urlencoded", "payment_method=card&_methods=x&_Method=x", "" },
		{ "POST", "text/plain", "_method=DELETE", "" },
		{ "POST", "multipart/form-data; boundary=XyZ",
		  "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n"
		  "--XyZ\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XyZ--\r\n", "DELETE" },
		{ "POST", "multipart/form-data; boundary=\"a'b(c)+_-./:=?\"",
		  "--a'b(c)+_-./:=?\nContent-Disposition: form-data;name=_method\n\nput\n--a'b(c)+_-./:=?--", "PUT" },
		{ "POST", "multipart/form-data; boundary=\"a,b\"",
		  "--a,b\r\nContent-Disposition: form-data; name=_method\r\n\r\nPUT\r\n--a,b--", "*" },
		{ "PUT", "multipart/mixed; boundary=b",
		  "preamble\r\n--b\r\ncontent-disposition : form-data; filename=\"x;y\"; name=\" [method\"\r\n"
		  "\r\nPATCH\r\n--b--\r\nepilogue", "PATCH" },
		{ "POST", "multipart/form-data; boundary=b",
		  "--b\r\nContent-Disposition: form-data; name=\"_me\\thod\"\r\n\r\nDELETE\r\n--b--", "DELETE" },
		{ "POST", "multipart/form-data; boundary=b",
		  "--b\r\nContent-Disposition: form-data; name=\"payment_method\"\r\n\r\ncard\r\n--b--", "" },
		{ "POST", "multipart/form-data; boundary=b",
		  "--b\r\nContent-Disposition: form-data; name*=utf-8''%5Fmethod\r\n\r\nDELETE\r\n--b--", "*" },
		{ "POST", "multipart/form-data; boundary=b",
		  "--b\r\nContent-Disposition: form-data; name=\"=?utf-8?q?=5Fmethod?=\"\r\n\r\nDELETE\r\n--b--", "*" },
		{ "POST", "multipart/form-data; boundary=b",
		  "--b\r\nContent-Disposition: form-data;\r\n name=\"_method\"\r\n\r\nDELETE\r\n--b--", "*" },
		{ "POST", "multipart/form-data; boundary=b",
		  "--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE", "*" },
		{ "POST", "multipart/form-data", "--b\r\n\r\nx\r\n--b--", "*" },
		{ "POST", "multipart/form-data; boundary=real; x=\"boundary=evil\"", "--real\r\n\r\nx\r\n--real--", "*" },
		{ "POST", "multipart/form-data; boundary=\"x;boundary=y\"", "--y\r\n\r\nx\r\n--y--", "*" },
		{ "POST", "multipart/form-data; BOUNDARY=BoUnDaRy",
		  "--BoUnDaRy\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nPUT\r\n--BoUnDaRy--", "PUT" },
		{ "POST", "multipart/form-data; boundary=\"a b\"", "--a b\r\n\r\nx\r\n--a b--", "*" },
		{ "POST", "multipart/form-data; boundary=b", "no parts here", "*" },
		{ "PUT", "multipart/form-data; boundary=b", "no parts here", "" },
		{ "POST", "multipart/form-data; boundary=b",
		  "--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDE LETE\r\n--b--",
		  "error: a method override that is not a method token" },
		{ "POST", "application/json", "{\"_method\":\"delete\",\"x\":[1]}", "DELETE" },
		{ "POST", "application/vnd.api+json; charset=utf-8", "{\"\\u005fmethod\":\"PUT\"}", "PUT" },
		{ "POST", "text/plain; note=/json", "{\"a\":{\"_method\":\"PUT\"}}", "" },
		{ "POST", "application/json", "{\"_method\":1}", "*" },
		{ "POST", "application/json", "{\"_method\":\"GET\",\"_method\":\"DELETE\"}", "*" },
		{ "POST", "application/json", "{\"_method\":\"DELETE\",}", "*" },
		{ "POST", "application/json", "{\"name\":\"\\u00e9\"}", "" },
		{ "POST", "application/json", "not json and no override in it", "" },
	};
	char req[1024];
	size_t n;

	for (size_t i = 0; i < AL_ARRAY_LEN(v); i++) {
		const char *got;

		n = body_request(req, sizeof(req), v[i].method, v[i].ct, v[i].body);
		got = overrides_of(req, n, 1024);
		if (strcmp(got, v[i].want) != 0) {
			printf("#   case %zu: got '%s', want '%s'\n", i, got, v[i].want);
			t_cur_failed_ = 1;
		}
	}
	/* not held (over max_body), or content-coded: a POST may run as any method, other methods
	 * (on which no server honours a body's _method) and bodies no one reads it from as sent */
	n = body_request(req, sizeof(req), "POST", "application/x-www-form-urlencoded", "_method=PATCH");
	CHECK_STR(overrides_of(req, n, 4), "*");
	n = body_request(req, sizeof(req), "POST", NULL, "a=1");
	CHECK_STR(overrides_of(req, n, 2), "*");
	n = body_request(req, sizeof(req), "PUT", "application/x-www-form-urlencoded", "_method=PATCH");
	CHECK_STR(overrides_of(req, n, 4), "");
	n = body_request(req, sizeof(req), "POST", "application/octet-stream", "_method=PATCH");
	CHECK_STR(overrides_of(req, n, 4), "");
	n = (size_t)snprintf(req, sizeof(req), "POST /f HTTP/1.1\r\nHost: h\r\nContent-Encoding: gzip\r\n"
			     "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
	CHECK_STR(overrides_of(req, n, 1024), "*");
	{
		struct http_req r;
		struct http_command c;
		char err[128];

		n = body_request(req, sizeof(req), "POST", "application/json", "{\"_method\":1}");
		CHECK(parse_all(req, n, 1024, &r) == HTTP_DONE);
		CHECK(http_command_build((const uint8_t *)req, &r, &c, err, sizeof(err)) == 0);
		CHECK_STR(c.fingerprint, "POST (override any method) h/f");
		CHECK(strncmp(c.text, "POST (override any method) https://h/f\n", 39) == 0);
		http_command_free(&c);
	}
}

static size_t build_hello(uint8_t *out, const char *sni, int h2)
{
	uint8_t ext[512], body[1024];
	size_t e = 0, b = 0, sl = strlen(sni), n = 0;
	const char *protos = h2 ? "\x02h2\x08http/1.1" : "\x08http/1.1";
	size_t pl = h2 ? 12 : 9;

	/* server_name */
	ext[e++] = 0; ext[e++] = 0; ext[e++] = 0; ext[e++] = (uint8_t)(sl + 5);
	ext[e++] = 0; ext[e++] = (uint8_t)(sl + 3); ext[e++] = 0; ext[e++] = 0; ext[e++] = (uint8_t)sl;
	memcpy(ext + e, sni, sl);
	e += sl;
	/* ALPN */
	ext[e++] = 0; ext[e++] = 16; ext[e++] = 0; ext[e++] = (uint8_t)(pl + 2);
	ext[e++] = 0; ext[e++] = (uint8_t)pl;
	memcpy(ext + e, protos, pl);
	e += pl;
	body[b++] = 3; body[b++] = 3;
	memset(body + b, 7, 32); b += 32;
	body[b++] = 0;                      /* session id */
	body[b++] = 0; body[b++] = 2; body[b++] = 0x13; body[b++] = 0x01;
	body[b++] = 1; body[b++] = 0;       /* compression */
	body[b++] = (uint8_t)(e >> 8); body[b++] = (uint8_t)e;
	memcpy(body + b, ext, e); b += e;
	out[n++] = 0x16; out[n++] = 3; out[n++] = 1;
	out[n++] = (uint8_t)((b + 4) >> 8); out[n++] = (uint8_t)(b + 4);
	out[n++] = 1; out[n++] = 0; out[n++] = (uint8_t)(b >> 8); out[n++] = (uint8_t)b;
	memcpy(out + n, body, b);
	return n + b;
}

static void test_client_hello(void)
{
	uint8_t h[1024];
	struct http_hello hi;
	size_t n = build_hello(h, "api.example.com", 1);

	for (size_t k = 0; k < n; k++)
		if (http_tls_hello(h, k, &hi) != HTTP_NEED_MORE) {
			printf("#   prefix %zu not need-more\n", k);
			t_cur_failed_ = 1;
			break;
		}
	CHECK(http_tls_hello(h, n, &hi) == HTTP_DONE);
	CHECK_STR(hi.sni, "api.example.com");
	CHECK(hi.alpn_h2 && hi.alpn_http11 && hi.len == n);
	CHECK(http_tls_hello((const uint8_t *)"GET / HTTP/1.1\r\n", 16, &hi) == HTTP_ERROR);
	h[60] ^= 0xff; /* corrupt a length */
	(void)!http_tls_hello(h, n, &hi);
}

/* A server name is a host name (or an IP literal some clients send): the leaf Airlock mints
 * names it, so nothing else may reach its subjectAltName. */
static void test_client_hello_names(void)
{
	static const char *const good[] = { "api.test", "API.Test.", "10.1.2.3", "::1", "a-b_c.x1", "xn--e1a.test" };
	static const char *const bad[] = { "a,IP:10.1.2.3", "x,URI:http://evil", "@section", "*.evil.example",
					   "x,dirName:sect", "\xc3\xa9.test", "a..b", ".a", "a b", "-a.test",
					   "a-.test", "a.test..", "[::1]" };
	uint8_t h[1024];
	struct http_hello hi;
	char label[80];

	for (size_t i = 0; i < AL_ARRAY_LEN(good); i++) {
		CHECK(http_tls_hello(h, build_hello(h, good[i], 0), &hi) == HTTP_DONE && !hi.sni_bad);
		CHECK_STR(hi.sni, good[i]);
	}
	/* read, and kept for the record, but marked: no leaf is minted for them */
	for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++)
		if (http_tls_hello(h, build_hello(h, bad[i], 0), &hi) != HTTP_DONE || !hi.sni_bad ||
		    strcmp(hi.sni, bad[i]) != 0) {
			printf("#   '%s' taken\n", bad[i]);
			t_cur_failed_ = 1;
		}
	memset(label, 'a', 63);
	label[63] = '\0';
	CHECK(http_tls_hello(h, build_hello(h, label, 0), &hi) == HTTP_DONE && !hi.sni_bad);
	label[63] = 'a';
	label[64] = '\0';
	CHECK(http_tls_hello(h, build_hello(h, label, 0), &hi) == HTTP_DONE && hi.sni_bad);
}

int main(void)
{
	RUN(test_list_next);
	RUN(test_get);
	RUN(test_post_length);
	RUN(test_chunked);
	RUN(test_pipelined_and_forms);
	RUN(test_smuggling_corpus);
	RUN(test_captured_requests);
	RUN(test_limits);
	RUN(test_response);
	RUN(test_response_ws_protocol);
	RUN(test_k8s);
	RUN(test_k8s_as_go_reads_it);
	RUN(test_paths);
	RUN(test_method_case);
	RUN(test_command);
	RUN(test_command_review_text);
	RUN(test_command_cookies);
	RUN(test_command_secret_headers);
	RUN(test_command_body_kinds);
	RUN(test_command_overrides);
	RUN(test_command_body_overrides);
	RUN(test_client_hello);
	RUN(test_client_hello_names);
	TEST_EXIT();
}
