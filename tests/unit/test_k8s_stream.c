/* Unit tests for the Kubernetes exec stream decoder: WebSocket channels (binary and base64) and SPDY/3.1 streams split at every byte, malformed frames, recorded UTF-8. */
#include "harness.h"

#include <airlock/http.h>

#include <openssl/evp.h>
#include <stdlib.h>
#include <zlib.h>

/* ---- building streams ------------------------------------------------------------------------ */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put8(struct buf *b, unsigned v)
{
	uint8_t c = (uint8_t)v;

	put(b, &c, 1);
}

static void put32(struct buf *b, uint32_t v)
{
	uint8_t c[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	put(b, c, 4);
}

/* One WebSocket frame; masked frames (the client's) use a fixed key. len_form forces the
 * 16-bit (126) or 64-bit (127) length form; 0 picks the shortest. */
static void ws(struct buf *b, int fin, int opcode, int masked, const void *payload, size_t n, int len_form)
{
	static const uint8_t key[4] = { 0x9a, 0x3c, 0x01, 0xf7 };
	const uint8_t *p = payload;

	put8(b, (fin ? 0x80u : 0) | (unsigned)opcode);
	if (!len_form)
		len_form = n < 126 ? 0 : n <= 0xffff ? 126 : 127;
	if (len_form == 126) {
		put8(b, (masked ? 0x80u : 0) | 126);
		put8(b, (unsigned)(n >> 8));
		put8(b, (unsigned)n);
	} else if (len_form == 127) {
		put8(b, (masked ? 0x80u : 0) | 127);
		put32(b, (uint32_t)((uint64_t)n >> 32));
		put32(b, (uint32_t)n);
	} else {
		put8(b, (masked ? 0x80u : 0) | (unsigned)n);
	}
	if (masked)
		put(b, key, 4);
	for (size_t i = 0; i < n; i++)
		put8(b, masked ? p[i] ^ key[i & 3] : p[i]);
}

/* A k8s channel message in one frame: the channel byte, then the data. */
static void ws_msg(struct buf *b, int masked, int channel, const char *data, size_t n)
{
	uint8_t *m = malloc(n + 1);

	m[0] = (uint8_t)channel;
	memcpy(m + 1, data, n);
	ws(b, 1, 2, masked, m, n + 1, 0);
	free(m);
}

#define S(s) s, sizeof(s) - 1

/* A base64.channel.k8s.io message in one TEXT frame: the channel as a character, then the
 * data in padded standard base64. */
static void ws_b64(struct buf *b, int masked, char channel, const char *data, size_t n)
{
	char *m = malloc(4 * (n / 3 + 1) + 2);
	int len;

	m[0] = channel;
	len = EVP_EncodeBlock((unsigned char *)m + 1, (const unsigned char *)data, (int)n);
	ws(b, 1, 1, masked, m, (size_t)len + 1, 0);
	free(m);
}

/* What the decoder gave, per channel (0..4, then 255, then unknown). */
struct got {
	struct buf ch[7];
	int rc;                     /* K8S_NEED_MORE, or K8S_STOPPED */
	size_t pieces, too_big;
};

static int slot(int channel)
{
	return channel >= 0 && channel <= 4 ? channel : channel == 255 ? 5 : 6;
}

static void got_free(struct got *g)
{
	for (size_t i = 0; i < AL_ARRAY_LEN(g->ch); i++)
		free(g->ch[i].p);
	memset(g, 0, sizeof(*g));
}

/* Feeds len bytes; returns what the last call said. */
static int feed(struct k8s_stream *s, enum k8s_side side, const uint8_t *p, size_t len, struct got *g)
{
	while (1) {
		struct k8s_piece pc;
		size_t used = 0;
		int rc = k8s_stream_next(s, side, p, len, &used, &pc);

		if (used > len) {
			g->too_big++;
			return K8S_STOPPED;
		}
		if (rc == K8S_PIECE) {
			g->pieces++;
			if (pc.len == 0 || pc.len > K8S_PIECE_MAX)
				g->too_big++;
			put(&g->ch[slot(pc.channel)], pc.p, pc.len);
		}
		p += used;
		len -= used;
		if (rc != K8S_PIECE) {
			if (rc == K8S_NEED_MORE && len != 0)
				g->too_big++;       /* "need more" must have taken everything */
			return rc;
		}
		if (len == 0)
			return K8S_NEED_MORE;
	}
}

static int same(const struct buf *b, const char *want, size_t n)
{
	return b->len == n && (n == 0 || memcmp(b->p, want, n) == 0);
}

static int same_got(const struct got *a, const struct got *b)
{
	if (a->rc != b->rc || a->too_big || b->too_big)
		return 0;
	for (size_t i = 0; i < AL_ARRAY_LEN(a->ch); i++)
		if (!same(&a->ch[i], (const char *)b->ch[i].p, b->ch[i].len))
			return 0;
	return 1;
}

/*
 * Decodes the agent's bytes, then the server's (SPDY's server side needs the streams the
 * agent opened), fed whole, split at every byte of each direction, and byte by byte; every
 * way must give what feeding them whole gives. Returns that (caller frees).
 */
static void decode_split(enum k8s_stream_proto proto, const struct buf *agent, const struct buf *server,
			 struct got *want_a, struct got *want_s, int every_split)
{
	struct k8s_stream *s = malloc(sizeof(*s));
	const struct buf *dirs[2] = { agent, server };
	struct got *want[2] = { want_a, want_s };
	int bad = 0;

	memset(want_a, 0, sizeof(*want_a));
	memset(want_s, 0, sizeof(*want_s));
	k8s_stream_init(s, proto);
	for (int d = 0; d < 2; d++)
		want[d]->rc = feed(s, (enum k8s_side)d, dirs[d]->p, dirs[d]->len, want[d]);
	k8s_stream_free(s);
	for (int d = 0; d < 2 && every_split; d++) {
		for (size_t k = 0; k <= dirs[d]->len && !bad; k++) {
			struct got g = { 0 }, other = { 0 };

			k8s_stream_init(s, proto);
			if (d == 1)
				other.rc = feed(s, K8S_FROM_AGENT, agent->p, agent->len, &other);
			g.rc = feed(s, (enum k8s_side)d, dirs[d]->p, k, &g);
			if (g.rc != K8S_STOPPED)
				g.rc = feed(s, (enum k8s_side)d, dirs[d]->p + k, dirs[d]->len - k, &g);
			if (!same_got(&g, want[d])) {
				printf("#   direction %d split at %zu differs from one piece\n", d, k);
				bad = 1;
			}
			k8s_stream_free(s);
			got_free(&g);
			got_free(&other);
		}
	}
	for (int d = 0; d < 2; d++) {
		struct got g = { 0 }, other = { 0 };

		k8s_stream_init(s, proto);
		if (d == 1)
			other.rc = feed(s, K8S_FROM_AGENT, agent->p, agent->len, &other);
		g.rc = K8S_NEED_MORE;
		for (size_t k = 0; k < dirs[d]->len && g.rc != K8S_STOPPED; k++)
			g.rc = feed(s, (enum k8s_side)d, dirs[d]->p + k, 1, &g);
		if (!same_got(&g, want[d])) {
			printf("#   direction %d byte by byte differs from one piece\n", d);
			bad = 1;
		}
		k8s_stream_free(s);
		got_free(&g);
		got_free(&other);
	}
	free(s);
	CHECK(!bad);
}

/* ---- WebSocket ------------------------------------------------------------------------------- */

static void test_websocket(void)
{
	struct buf a = { 0 }, sv = { 0 };
	struct got ga, gs;
	char mid[300];

	/* agent: stdin, a resize, v5's "stdin is closed", a close frame */
	ws_msg(&a, 1, 0, S("ls -l /data\n"));
	ws_msg(&a, 1, 4, S("{\"Width\":80,\"Height\":24}"));
	ws_msg(&a, 1, 0, S("exit\n"));
	ws_msg(&a, 1, 255, S("\0"));
	ws(&a, 1, 8, 1, "\x03\xe8", 2, 0);
	/* server: stdout, a fragmented stdout message with a ping inside it, stderr, a
	 * 300-byte message (16-bit length), a short one in the 64-bit form, the status */
	ws_msg(&sv, 0, 1, S("total 0\n"));
	ws(&sv, 0, 2, 0, "\x01" "frag", 5, 0);
	ws(&sv, 1, 9, 0, "ping", 4, 0);
	ws(&sv, 0, 0, 0, "men", 3, 0);
	ws(&sv, 1, 0, 0, "ted\n", 4, 0);
	ws_msg(&sv, 0, 2, S("ls: warning\n"));
	memset(mid, 'x', sizeof(mid));
	ws_msg(&sv, 0, 1, mid, sizeof(mid));
	ws(&sv, 1, 2, 0, "\x01" "long form\n", 11, 127);
	ws(&sv, 1, 2, 0, "", 0, 0);             /* an empty message: no channel, nothing */
	ws_msg(&sv, 0, 3, S("{\"status\":\"Success\"}"));
	ws(&sv, 1, 8, 0, "\x03\xe8", 2, 0);

	decode_split(K8S_STREAM_WEBSOCKET, &a, &sv, &ga, &gs, 1);
	CHECK(ga.rc == K8S_NEED_MORE && gs.rc == K8S_NEED_MORE);
	CHECK(same(&ga.ch[0], S("ls -l /data\nexit\n")));
	CHECK(same(&ga.ch[4], S("{\"Width\":80,\"Height\":24}")));
	CHECK(same(&ga.ch[5], "\0", 1));
	CHECK(gs.ch[1].len == 19 + sizeof(mid) + 10 &&
	      memcmp(gs.ch[1].p, "total 0\nfragmented\n", 19) == 0 &&
	      memcmp(gs.ch[1].p + 19 + sizeof(mid), "long form\n", 10) == 0);
	CHECK(same(&gs.ch[2], S("ls: warning\n")));
	CHECK(same(&gs.ch[3], S("{\"status\":\"Success\"}")));
	CHECK(gs.ch[0].len == 0 && gs.ch[6].len == 0);
	got_free(&ga);
	got_free(&gs);
	free(a.p);
	free(sv.p);
}

/* A frame bigger than a piece: handed on in pieces of at most K8S_PIECE_MAX, unmasked. */
static void test_websocket_large(void)
{
	size_t n = 70000;
	char *big = malloc(n);
	struct buf a = { 0 }, sv = { 0 };
	struct got ga, gs;

	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	ws_msg(&a, 1, 0, big, n);
	ws_msg(&sv, 0, 1, big, n);
	decode_split(K8S_STREAM_WEBSOCKET, &a, &sv, &ga, &gs, 0);
	CHECK(same(&ga.ch[0], big, n));
	CHECK(same(&gs.ch[1], big, n));
	CHECK(ga.pieces >= n / K8S_PIECE_MAX && !ga.too_big && !gs.too_big);
	got_free(&ga);
	got_free(&gs);
	free(a.p);
	free(sv.p);
	free(big);
}

/* Each malformed stream stops decoding for good, after the good part, and says why. */
static void test_websocket_malformed(void)
{
	static const struct {
		const char *name;
		uint8_t bytes[16];
		size_t len;
		const char *why;
	} bad[] = {
		{ "rsv1 (permessage-deflate)", { 0xc2, 0x02, 0x01, 'x' }, 4, "RSV" },
		{ "length over 2^63", { 0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1 }, 10, "2^63" },
		{ "continuation first", { 0x80, 0x01, 'x' }, 3, "continuation" },
		{ "long ping", { 0x89, 0x7e, 0x00, 0x80 }, 4, "control" },
		{ "fragmented ping", { 0x09, 0x00 }, 2, "control" },
		{ "reserved opcode", { 0x83, 0x00 }, 2, "reserved" },
		{ "message inside a message", { 0x02, 0x01, 0x01, 0x82, 0x01, 0x01 }, 6, "inside" },
	};

	for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
		struct k8s_stream *s = malloc(sizeof(*s));
		struct buf b = { 0 };
		struct got g = { 0 }, g2 = { 0 };
		size_t good;

		ws_msg(&b, 0, 1, S("before\n"));
		good = b.len;
		put(&b, bad[i].bytes, bad[i].len);
		ws_msg(&b, 0, 1, S("after\n"));
		k8s_stream_init(s, K8S_STREAM_WEBSOCKET);
		g.rc = feed(s, K8S_FROM_SERVER, b.p, b.len, &g);
		if (g.rc != K8S_STOPPED || !same(&g.ch[1], S("before\n")) || !s->dir[1].error ||
		    !strstr(s->dir[1].error, bad[i].why))
			printf("#   %s: rc %d, error %s\n", bad[i].name, g.rc, s->dir[1].error);
		CHECK(g.rc == K8S_STOPPED && same(&g.ch[1], S("before\n")));
		CHECK(s->dir[1].error && strstr(s->dir[1].error, bad[i].why));
		/* stopped for good; the other direction goes on */
		CHECK(feed(s, K8S_FROM_SERVER, b.p + good, b.len - good, &g2) == K8S_STOPPED);
		CHECK(feed(s, K8S_FROM_AGENT, b.p, good, &g2) == K8S_NEED_MORE && same(&g2.ch[1], S("before\n")));
		k8s_stream_free(s);
		free(s);
		got_free(&g);
		got_free(&g2);
		free(b.p);
	}
}

/* A declared length of 2^40 allocates nothing: payload streams on as it comes. */
static void test_websocket_huge_length(void)
{
	struct k8s_stream *s = malloc(sizeof(*s));
	uint8_t head[] = { 0x82, 0x7f, 0, 0, 0x01, 0, 0, 0, 0, 0, 0x01 };
	char chunk[10000];
	struct got g = { 0 };

	memset(chunk, 'z', sizeof(chunk));
	k8s_stream_init(s, K8S_STREAM_WEBSOCKET);
	CHECK(feed(s, K8S_FROM_SERVER, head, sizeof(head), &g) == K8S_NEED_MORE);
	for (int i = 0; i < 50; i++)
		CHECK(feed(s, K8S_FROM_SERVER, (uint8_t *)chunk, sizeof(chunk), &g) == K8S_NEED_MORE);
	CHECK(g.ch[1].len == 50 * sizeof(chunk) && !g.too_big && s->dir[1].left == (1ull << 40) - 1 - 500000);
	k8s_stream_free(s);
	free(s);
	got_free(&g);
}

/* ---- WebSocket, base64.channel.k8s.io / v4.base64.channel.k8s.io --------------------------- */

static void test_websocket_base64(void)
{
	struct buf a = { 0 }, sv = { 0 };
	struct got ga, gs;
	char mid[300];

	/* agent (masked): stdin, a resize, more stdin, a close frame */
	ws_b64(&a, 1, '0', S("ls -l /data\n"));
	ws_b64(&a, 1, '4', S("{\"Width\":80,\"Height\":24}"));
	ws_b64(&a, 1, '0', S("exit\n"));
	ws(&a, 1, 8, 1, "\x03\xe8", 2, 0);
	/* server: stdout; a stdout message fragmented mid-quantum with a ping inside it
	 * ("fragmented\n" is ZnJhZ21lbnRlZAo=); stderr; 300 bytes (16-bit length); a message
	 * with only its channel; an empty message; base64 in a BINARY frame (the API server
	 * reads either); the status */
	ws_b64(&sv, 0, '1', S("total 0\n"));
	ws(&sv, 0, 1, 0, "1ZnJ", 4, 0);
	ws(&sv, 1, 9, 0, "ping", 4, 0);
	ws(&sv, 0, 0, 0, "hZ21lbnRlZA", 11, 0);
	ws(&sv, 1, 0, 0, "o=", 2, 0);
	ws_b64(&sv, 0, '2', S("ls: warning\n"));
	memset(mid, 'x', sizeof(mid));
	ws_b64(&sv, 0, '1', mid, sizeof(mid));
	ws(&sv, 1, 1, 0, "1", 1, 0);
	ws(&sv, 1, 1, 0, "", 0, 0);
	ws(&sv, 1, 2, 0, "1bG9uZwo=", 9, 0);
	ws_b64(&sv, 0, '3', S("{\"status\":\"Success\"}"));
	ws(&sv, 1, 8, 0, "\x03\xe8", 2, 0);

	decode_split(K8S_STREAM_WEBSOCKET_BASE64, &a, &sv, &ga, &gs, 1);
	CHECK(ga.rc == K8S_NEED_MORE && gs.rc == K8S_NEED_MORE);
	CHECK(same(&ga.ch[0], S("ls -l /data\nexit\n")));
	CHECK(same(&ga.ch[4], S("{\"Width\":80,\"Height\":24}")));
	CHECK(gs.ch[1].len == 19 + sizeof(mid) + 5 &&
	      memcmp(gs.ch[1].p, "total 0\nfragmented\n", 19) == 0 &&
	      memcmp(gs.ch[1].p + 19 + sizeof(mid), "long\n", 5) == 0);
	CHECK(same(&gs.ch[2], S("ls: warning\n")));
	CHECK(same(&gs.ch[3], S("{\"status\":\"Success\"}")));
	CHECK(gs.ch[0].len == 0 && gs.ch[5].len == 0 && gs.ch[6].len == 0 && ga.ch[6].len == 0);
	got_free(&ga);
	got_free(&gs);
	free(a.p);
	free(sv.p);
}

/* Padding and line breaks, each message split at every byte (fragmented too): what the API
 * server's decoder (padded standard base64, CR and LF skipped) makes of them. */
static void test_websocket_base64_padding(void)
{
	static const struct {
		const char *msg;        /* after the channel character */
		const char *want;
		size_t want_n;
	} cases[] = {
		{ "", S("") },
		{ "Zg==", S("f") },
		{ "Zm8=", S("fo") },
		{ "Zm9v", S("foo") },
		{ "Zm9vYg==", S("foob") },
		{ "Zm9vYmE=", S("fooba") },
		{ "Zm9vYmFy", S("foobar") },
		{ "Zh==", S("f") },             /* leftover bits ignored, as the server does */
		{ "Zm9=", S("fo") },
		{ "Zm9v\r\nYmFy\n", S("foobar") },
		{ "\nZg=\n=\r\n", S("f") },
		{ "+/+/", S("\xfb\xff\xbf") },
		{ "AAAA", S("\0\0\0") },
	};

	for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
		size_t n = strlen(cases[i].msg), want_n = cases[i].want_n;
		char *m = malloc(n + 1);
		struct buf a = { 0 }, sv = { 0 };
		struct got ga, gs;

		m[0] = '2';
		memcpy(m + 1, cases[i].msg, n);
		ws(&sv, 1, 1, 0, m, n + 1, 0);
		/* the same message in frames of one byte each, then again masked by the agent */
		for (size_t k = 0; k <= n; k++)
			ws(&sv, k == n, k ? 0 : 1, 0, m + k, 1, 0);
		for (size_t k = 0; k <= n; k++)
			ws(&a, k == n, k ? 0 : 1, 1, m + k, 1, 0);
		decode_split(K8S_STREAM_WEBSOCKET_BASE64, &a, &sv, &ga, &gs, 1);
		if (gs.rc != K8S_NEED_MORE || gs.ch[2].len != 2 * want_n || ga.ch[2].len != want_n)
			printf("#   case %zu (%s): rc %d, %zu bytes\n", i, cases[i].msg, gs.rc, gs.ch[2].len);
		CHECK(ga.rc == K8S_NEED_MORE && gs.rc == K8S_NEED_MORE);
		CHECK(same(&ga.ch[2], cases[i].want, want_n));
		CHECK(gs.ch[2].len == 2 * want_n && (want_n == 0 ||
		      (memcmp(gs.ch[2].p, cases[i].want, want_n) == 0 &&
		       memcmp(gs.ch[2].p + want_n, cases[i].want, want_n) == 0)));
		got_free(&ga);
		got_free(&gs);
		free(a.p);
		free(sv.p);
		free(m);
	}
}

/* A long message: decoded in pieces of at most K8S_PIECE_MAX, whatever the frames. */
static void test_websocket_base64_large(void)
{
	size_t n = 70000;
	char *big = malloc(n);
	struct buf a = { 0 }, sv = { 0 };
	struct got ga, gs;

	for (size_t i = 0; i < n; i++)
		big[i] = (char)(i * 7 + i / 300);
	ws_b64(&a, 1, '0', big, n);
	ws_b64(&sv, 0, '1', big, n);
	decode_split(K8S_STREAM_WEBSOCKET_BASE64, &a, &sv, &ga, &gs, 0);
	CHECK(same(&ga.ch[0], big, n));
	CHECK(same(&gs.ch[1], big, n));
	CHECK(gs.pieces >= n / K8S_PIECE_MAX && !ga.too_big && !gs.too_big);
	got_free(&ga);
	got_free(&gs);
	free(a.p);
	free(sv.p);
	free(big);
}

/* A malformed message stops decoding for good, after what came before it (whole quanta of
 * the bad message included), split anywhere; the relay is not the decoder's business. */
static void test_websocket_base64_malformed(void)
{
	static const struct {
		const char *name;
		const char *frames[3];  /* one message, in up to three frames */
		const char *good;       /* what of it is decoded before the stop */
		const char *why;
	} bad[] = {
		{ "channel not a digit", { "xZm9v" }, "", "channel" },
		{ "channel 5", { "5Zm9v" }, "", "channel" },
		{ "binary channel byte", { "\x01" "Zm9v" }, "", "channel" },
		{ "bad character", { "1Zm9vYm*y" }, "foo", "not a base64 character" },
		{ "base64url character", { "1Zm9v-_8=" }, "foo", "not a base64 character" },
		{ "space", { "1Zm9v Zg==" }, "foo", "not a base64 character" },
		{ "length 5", { "1Zm9vY" }, "foo", "multiple of 4" },
		{ "length 7", { "1Zm9vYmF" }, "foo", "multiple of 4" },
		{ "length 3", { "1Zm9" }, "", "multiple of 4" },
		{ "one padding too few", { "1Zg=" }, "", "multiple of 4" },
		{ "ends mid-quantum in a later frame", { "1Zm", "9vYmFy", "Zg" }, "foobar", "multiple of 4" },
		{ "ends with an empty frame mid-quantum", { "1Zm9vYm", "F", "" }, "foo", "multiple of 4" },
		{ "padding first", { "1=Zg=" }, "", "padding where" },
		{ "padding second", { "1Z===" }, "", "padding where" },
		{ "data inside the padding", { "1Zm=9" }, "", "after the padding" },
		{ "data after the padding", { "1Zg==Zm8=" }, "f", "after the padding" },
		{ "data after the padding, next frame", { "1Zm9vZg==", "Zm9v" }, "foof", "after the padding" },
		{ "three padding characters", { "1Zg===" }, "f", "after the padding" },
	};

	for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
		struct k8s_stream *s = malloc(sizeof(*s));
		struct buf b = { 0 }, empty = { 0 }, want = { 0 };
		struct got ga, gs, g2 = { 0 };
		size_t good, nf = 0;

		ws_b64(&b, 0, '1', S("before\n"));
		good = b.len;
		while (nf < 3 && bad[i].frames[nf])
			nf++;
		for (size_t f = 0; f < nf; f++)
			ws(&b, f == nf - 1, f ? 0 : 1, 0, bad[i].frames[f], strlen(bad[i].frames[f]), 0);
		ws_b64(&b, 0, '1', S("after\n"));
		put(&want, "before\n", 7);
		put(&want, bad[i].good, strlen(bad[i].good));
		decode_split(K8S_STREAM_WEBSOCKET_BASE64, &empty, &b, &ga, &gs, 1);
		k8s_stream_init(s, K8S_STREAM_WEBSOCKET_BASE64);
		g2.rc = feed(s, K8S_FROM_SERVER, b.p, b.len, &g2);
		if (gs.rc != K8S_STOPPED || !same(&gs.ch[1], (const char *)want.p, want.len) || !s->dir[1].error ||
		    !strstr(s->dir[1].error, bad[i].why))
			printf("#   %s: rc %d, %zu bytes, error %s\n", bad[i].name, gs.rc, gs.ch[1].len,
			       s->dir[1].error);
		CHECK(gs.rc == K8S_STOPPED && same(&gs.ch[1], (const char *)want.p, want.len));
		CHECK(g2.rc == K8S_STOPPED && s->dir[1].error && strstr(s->dir[1].error, bad[i].why) &&
		      strncmp(s->dir[1].error, "websocket base64: ", 18) == 0);
		/* stopped for good; the other direction goes on */
		got_free(&g2);
		CHECK(feed(s, K8S_FROM_SERVER, b.p + good, b.len - good, &g2) == K8S_STOPPED);
		CHECK(feed(s, K8S_FROM_AGENT, b.p, good, &g2) == K8S_NEED_MORE && same(&g2.ch[1], S("before\n")));
		k8s_stream_free(s);
		free(s);
		got_free(&ga);
		got_free(&gs);
		got_free(&g2);
		free(b.p);
		free(want.p);
	}
}

/* ---- SPDY/3.1 -------------------------------------------------------------------------------- */

static const uint8_t *dict(size_t *n)
{
	/* The decoder's copy is private: the test has its own, pinned by its sha256, and a
	 * decoder whose copy differs cannot read the blocks built with it. */
	static uint8_t d[1423];
	static const char *const parts[] = {
		"\0\0\0\7options", "\0\0\0\4head", "\0\0\0\4post", "\0\0\0\3put", "\0\0\0\6delete",
		"\0\0\0\5trace", "\0\0\0\6accept", "\0\0\0\16accept-charset", "\0\0\0\17accept-encoding",
		"\0\0\0\17accept-language", "\0\0\0\15accept-ranges", "\0\0\0\3age", "\0\0\0\5allow",
		"\0\0\0\15authorization", "\0\0\0\15cache-control", "\0\0\0\12connection",
		"\0\0\0\14content-base", "\0\0\0\20content-encoding", "\0\0\0\20content-language",
		"\0\0\0\16content-length", "\0\0\0\20content-location", "\0\0\0\13content-md5",
		"\0\0\0\15content-range", "\0\0\0\14content-type", "\0\0\0\4date", "\0\0\0\4etag",
		"\0\0\0\6expect", "\0\0\0\7expires", "\0\0\0\4from", "\0\0\0\4host", "\0\0\0\10if-match",
		"\0\0\0\21if-modified-since", "\0\0\0\15if-none-match", "\0\0\0\10if-range",
		"\0\0\0\23if-unmodified-since", "\0\0\0\15last-modified", "\0\0\0\10location",
		"\0\0\0\14max-forwards", "\0\0\0\6pragma", "\0\0\0\22proxy-authenticate",
		"\0\0\0\23proxy-authorization", "\0\0\0\5range", "\0\0\0\7referer", "\0\0\0\13retry-after",
		"\0\0\0\6server", "\0\0\0\2te", "\0\0\0\7trailer", "\0\0\0\21transfer-encoding",
		"\0\0\0\7upgrade", "\0\0\0\12user-agent", "\0\0\0\4vary", "\0\0\0\3via", "\0\0\0\7warning",
		"\0\0\0\20www-authenticate", "\0\0\0\6method", "\0\0\0\3get", "\0\0\0\6status",
		"\0\0\0\006200 OK", "\0\0\0\7version", "\0\0\0\10HTTP/1.1", "\0\0\0\3url", "\0\0\0\6public",
		"\0\0\0\12set-cookie", "\0\0\0\12keep-alive", "\0\0\0\6origin",
		"100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
		"203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
		"401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
		"503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00"
		" Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
		"application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
		"gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
	};
	size_t o = 0;

	for (size_t i = 0; i < AL_ARRAY_LEN(parts); i++) {
		const char *p = parts[i];
		size_t len = p[0] == '\0' ? 4 + (size_t)(uint8_t)p[3] : strlen(p);

		memcpy(d + o, p, len);
		o += len;
	}
	*n = o;
	return d;
}

/* One sender's header compression: a zlib stream with the SPDY dictionary, sync-flushed per block. */
static void hblock(z_stream *z, struct buf *out, const char *const *kv, size_t n_pairs)
{
	struct buf raw = { 0 };
	uint8_t tmp[16384];

	put32(&raw, (uint32_t)n_pairs);
	for (size_t i = 0; i < n_pairs * 2; i++) {
		put32(&raw, (uint32_t)strlen(kv[i]));
		put(&raw, kv[i], strlen(kv[i]));
	}
	z->next_in = raw.p;
	z->avail_in = (uInt)raw.len;
	do {
		z->next_out = tmp;
		z->avail_out = sizeof(tmp);
		CHECK(deflate(z, Z_SYNC_FLUSH) == Z_OK);
		put(out, tmp, sizeof(tmp) - z->avail_out);
	} while (z->avail_out == 0);
	free(raw.p);
}

/* sha256 of the dictionary in kubectl's own binary (moby/spdystream) */
#define SPDY_DICT_SHA256 "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"

static void zinit(z_stream *z)
{
	size_t n;
	const uint8_t *d = dict(&n);
	unsigned char md[32];
	char hex[65];

	memset(z, 0, sizeof(*z));
	CHECK(n == 1423);
	CHECK(EVP_Digest(d, n, md, NULL, EVP_sha256(), NULL) == 1);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	CHECK_STR(hex, SPDY_DICT_SHA256);
	CHECK(deflateInit(z, Z_BEST_COMPRESSION) == Z_OK);
	CHECK(deflateSetDictionary(z, d, (uInt)n) == Z_OK);
}

static void spdy_ctl(struct buf *b, int type, int flags, const struct buf *payload)
{
	put8(b, 0x80);
	put8(b, 3);
	put8(b, (unsigned)type >> 8);
	put8(b, (unsigned)type);
	put8(b, (unsigned)flags);
	put8(b, (unsigned)(payload->len >> 16));
	put8(b, (unsigned)(payload->len >> 8));
	put8(b, (unsigned)payload->len);
	put(b, payload->p, payload->len);
}

static void spdy_syn(struct buf *b, z_stream *z, uint32_t id, const char *type)
{
	const char *kv[] = { "streamtype", type, "x-extra", "v1\0v2" };
	struct buf p = { 0 };

	put32(&p, id);
	put32(&p, 0);
	put8(&p, 0);
	put8(&p, 0);
	hblock(z, &p, kv, 2);
	spdy_ctl(b, 1, 0, &p);
	free(p.p);
}

static void spdy_data(struct buf *b, uint32_t id, int flags, const char *data, size_t n)
{
	put32(b, id & 0x7fffffff);
	put8(b, (unsigned)flags);
	put8(b, (unsigned)(n >> 16));
	put8(b, (unsigned)(n >> 8));
	put8(b, (unsigned)n);
	put(b, data, n);
}

/* kubectl's order: error, stdin, stdout, stderr (and resize with a tty). */
static void spdy_session(struct buf *a, struct buf *sv, int with_headers)
{
	z_stream za, zs;
	struct buf p = { 0 };
	const char *reply[] = { "status", "200 OK" };

	zinit(&za);
	zinit(&zs);
	put32(&p, 0);                           /* SETTINGS with no entries */
	spdy_ctl(a, 4, 0, &p);
	p.len = 0;
	spdy_syn(a, &za, 1, "error");
	spdy_syn(a, &za, 3, "stdin");
	spdy_syn(a, &za, 5, "stdout");
	spdy_syn(a, &za, 7, "stderr");
	if (with_headers) {
		put32(&p, 3);                   /* HEADERS on stdin: keeps the zlib stream going */
		hblock(&za, &p, reply, 1);
		spdy_ctl(a, 8, 0, &p);
		p.len = 0;
	}
	spdy_data(a, 3, 0, S("echo hi\n"));
	put32(&p, 1);                           /* PING */
	spdy_ctl(a, 6, 0, &p);
	p.len = 0;
	spdy_data(a, 3, 1, S("exit\n"));
	/* the server answers each stream (its own compression), then writes */
	for (uint32_t id = 1; id <= 7; id += 2) {
		put32(&p, id);
		hblock(&zs, &p, reply, 1);
		spdy_ctl(sv, 2, 0, &p);
		p.len = 0;
	}
	spdy_data(sv, 5, 0, S("hi\n"));
	spdy_data(sv, 7, 0, S("warning\n"));
	spdy_data(sv, 9, 0, S("?"));            /* a stream no one opened */
	spdy_data(sv, 5, 0, "", 0);
	spdy_data(sv, 1, 1, S("{\"status\":\"Success\"}"));
	put32(&p, 0);
	put32(&p, 0);
	spdy_ctl(sv, 7, 0, &p);                 /* GOAWAY */
	free(p.p);
	deflateEnd(&za);
	deflateEnd(&zs);
}

static void test_spdy(void)
{
	for (int h = 0; h < 2; h++) {
		struct buf a = { 0 }, sv = { 0 };
		struct got ga, gs;

		spdy_session(&a, &sv, h);
		decode_split(K8S_STREAM_SPDY, &a, &sv, &ga, &gs, 1);
		CHECK(ga.rc == K8S_NEED_MORE && gs.rc == K8S_NEED_MORE);
		CHECK(same(&ga.ch[0], S("echo hi\nexit\n")));
		CHECK(same(&gs.ch[1], S("hi\n")));
		CHECK(same(&gs.ch[2], S("warning\n")));
		CHECK(same(&gs.ch[3], S("{\"status\":\"Success\"}")));
		CHECK(same(&gs.ch[6], S("?")));
		got_free(&ga);
		got_free(&gs);
		free(a.p);
		free(sv.p);
	}
}

static void test_spdy_malformed(void)
{
	struct k8s_stream *s = malloc(sizeof(*s));
	struct got g = { 0 };
	struct buf b = { 0 }, p = { 0 };
	z_stream z;

	/* not version 3 */
	put8(&b, 0x80);
	put8(&b, 2);
	put(&b, "\0\4\0\0\0\0", 6);
	k8s_stream_init(s, K8S_STREAM_SPDY);
	CHECK(feed(s, K8S_FROM_AGENT, b.p, b.len, &g) == K8S_STOPPED && strstr(s->dir[0].error, "version"));
	k8s_stream_free(s);
	got_free(&g);
	b.len = 0;

	/* a SYN_STREAM too short for its fixed fields */
	put(&b, "\x80\x03\0\x01\0\0\0\x04\0\0\0\x01", 12);
	k8s_stream_init(s, K8S_STREAM_SPDY);
	CHECK(feed(s, K8S_FROM_AGENT, b.p, b.len, &g) == K8S_STOPPED && strstr(s->dir[0].error, "short"));
	k8s_stream_free(s);
	got_free(&g);
	b.len = 0;

	/* a header block that is not zlib */
	put32(&p, 1);
	put32(&p, 0);
	put(&p, "\0\0garbage-not-zlib", 18);
	spdy_ctl(&b, 1, 0, &p);
	k8s_stream_init(s, K8S_STREAM_SPDY);
	CHECK(feed(s, K8S_FROM_AGENT, b.p, b.len, &g) == K8S_STOPPED && strstr(s->dir[0].error, "inflate"));
	/* the server's side is not stopped by it */
	b.len = 0;
	spdy_data(&b, 5, 0, S("out"));
	CHECK(feed(s, K8S_FROM_SERVER, b.p, b.len, &g) == K8S_NEED_MORE && same(&g.ch[6], S("out")));
	k8s_stream_free(s);
	got_free(&g);
	b.len = 0;
	p.len = 0;

	/* a header block that inflates past K8S_HEADERS_MAX (a small zlib bomb) */
	{
		char *big = malloc(200000);
		const char *kv[2] = { "streamtype", big };

		memset(big, 'A', 199999);
		big[199999] = '\0';
		zinit(&z);
		put32(&p, 1);
		put32(&p, 0);
		put8(&p, 0);
		put8(&p, 0);
		hblock(&z, &p, kv, 1);
		deflateEnd(&z);
		CHECK(p.len < 2000);
		spdy_ctl(&b, 1, 0, &p);
		k8s_stream_init(s, K8S_STREAM_SPDY);
		CHECK(feed(s, K8S_FROM_AGENT, b.p, b.len, &g) == K8S_STOPPED &&
		      strstr(s->dir[0].error, "larger"));
		k8s_stream_free(s);
		got_free(&g);
		b.len = 0;
		p.len = 0;
		free(big);
	}

	/* pair lengths pointing past the block */
	{
		uint8_t raw[] = { 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xf0, 's' };
		uint8_t tmp[256];

		zinit(&z);
		z.next_in = raw;
		z.avail_in = sizeof(raw);
		z.next_out = tmp;
		z.avail_out = sizeof(tmp);
		CHECK(deflate(&z, Z_SYNC_FLUSH) == Z_OK);
		put32(&p, 1);
		put32(&p, 0);
		put8(&p, 0);
		put8(&p, 0);
		put(&p, tmp, sizeof(tmp) - z.avail_out);
		deflateEnd(&z);
		spdy_ctl(&b, 1, 0, &p);
		k8s_stream_init(s, K8S_STREAM_SPDY);
		CHECK(feed(s, K8S_FROM_AGENT, b.p, b.len, &g) == K8S_STOPPED &&
		      strstr(s->dir[0].error, "malformed"));
		k8s_stream_free(s);
		got_free(&g);
	}
	free(b.p);
	free(p.p);
	free(s);
}

static void test_kind(void)
{
	enum k8s_stream_proto p = 0;

	CHECK(k8s_stream_kind("SPDY/3.1", NULL, &p) == 1 && p == K8S_STREAM_SPDY);
	CHECK(k8s_stream_kind("websocket", "v5.channel.k8s.io, v4.channel.k8s.io", &p) == 1 &&
	      p == K8S_STREAM_WEBSOCKET);
	/* the API server takes the first offered protocol it knows */
	p = 0;
	CHECK(k8s_stream_kind("WebSocket", "base64.channel.k8s.io,channel.k8s.io", &p) == 1 &&
	      p == K8S_STREAM_WEBSOCKET_BASE64);
	p = 0;
	CHECK(k8s_stream_kind("websocket", "channel.k8s.io, base64.channel.k8s.io", &p) == 1 &&
	      p == K8S_STREAM_WEBSOCKET);
	p = 0;
	CHECK(k8s_stream_kind("websocket", "base64.channel.k8s.io", &p) == 1 && p == K8S_STREAM_WEBSOCKET_BASE64);
	p = 0;
	CHECK(k8s_stream_kind("websocket", "v4.base64.channel.k8s.io, v4.channel.k8s.io", &p) == 1 &&
	      p == K8S_STREAM_WEBSOCKET_BASE64);
	p = 0;
	CHECK(k8s_stream_kind("websocket", "V4.BASE64.channel.k8s.io", &p) == 1 && p == K8S_STREAM_WEBSOCKET_BASE64);
	p = 0;
	CHECK(k8s_stream_kind("websocket", "v5.channel.k8s.io, v4.base64.channel.k8s.io", &p) == 1 &&
	      p == K8S_STREAM_WEBSOCKET);
	p = 0;
	CHECK(k8s_stream_kind("websocket", "v4.xbase64.channel.k8s.io", &p) == 1 && p == K8S_STREAM_WEBSOCKET);
	CHECK(k8s_stream_kind("websocket", NULL, &p) == 1 && p == K8S_STREAM_WEBSOCKET);
	CHECK(k8s_stream_kind("websocket", "v4.portforward.k8s.io", &p) == 0);
	CHECK(k8s_stream_kind("h2c", NULL, &p) == 0);
	CHECK(k8s_stream_kind(NULL, NULL, &p) == 0);
}

/* ---- recorded text --------------------------------------------------------------------------- */

static void utf8_all(const char *in, size_t n, char *out, size_t *olen)
{
	struct k8s_utf8 c = { 0 };

	*olen = k8s_utf8(&c, (const uint8_t *)in, n, out);
	*olen += k8s_utf8(&c, (const uint8_t *)"", 0, out + *olen);
	/* what is still carried at the very end is a cut sequence: the caller flushes it */
	if (c.n) {
		memcpy(out + *olen, "\xef\xbf\xbd", 3);
		*olen += 3;
	}
}

static void test_utf8(void)
{
	static const struct {
		const char *in;
		size_t n;
		const char *want;
	} cases[] = {
		{ S("plain\n"), "plain\n" },
		{ S("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80"), "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80" },
		{ S("a\0b"), "a\xef\xbf\xbd" "b" },
		{ S("\xff\xfe"), "\xef\xbf\xbd\xef\xbf\xbd" },
		{ S("\xc0\x80"), "\xef\xbf\xbd\xef\xbf\xbd" },               /* overlong */
		{ S("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* surrogate */
		{ S("\xf4\x90\x80\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ S("\xe2\x82x"), "\xef\xbf\xbdx" },                           /* cut short */
		{ S("\x1b[1mbold\x1b[0m\r\n"), "\x1b[1mbold\x1b[0m\r\n" },
	};
	char out[256];
	size_t n;

	for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
		utf8_all(cases[i].in, cases[i].n, out, &n);
		out[n] = '\0';
		if (strcmp(out, cases[i].want) != 0)
			printf("#   case %zu\n", i);
		CHECK_STR(out, cases[i].want);
		/* split at every byte: the same text */
		for (size_t k = 0; k <= cases[i].n; k++) {
			struct k8s_utf8 c = { 0 };
			char o2[256];
			size_t m = k8s_utf8(&c, (const uint8_t *)cases[i].in, k, o2);

			m += k8s_utf8(&c, (const uint8_t *)cases[i].in + k, cases[i].n - k, o2 + m);
			if (c.n) {
				memcpy(o2 + m, "\xef\xbf\xbd", 3);
				m += 3;
			}
			o2[m] = '\0';
			if (strcmp(o2, cases[i].want) != 0) {
				printf("#   case %zu split at %zu: differs\n", i, k);
				CHECK(0);
				break;
			}
		}
	}
}

int main(void)
{
	RUN(test_websocket);
	RUN(test_websocket_large);
	RUN(test_websocket_malformed);
	RUN(test_websocket_huge_length);
	RUN(test_websocket_base64);
	RUN(test_websocket_base64_padding);
	RUN(test_websocket_base64_large);
	RUN(test_websocket_base64_malformed);
	RUN(test_spdy);
	RUN(test_spdy_malformed);
	RUN(test_kind);
	RUN(test_utf8);
	TEST_EXIT();
}
