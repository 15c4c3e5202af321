/* libFuzzer driver for the Kubernetes exec stream decoder (WebSocket channels, binary and base64, SPDY/3.1 streams) and the recorded-text UTF-8 filter. */
#include <airlock/http.h>

#include <stdlib.h>
#include <string.h>

/*
 * Input: a mode byte, the length of the agent's side (16 bits, big-endian; cut to what
 * there is), then bytes: the agent's side, then the server's.
 *   mode bit 0: 1 SPDY; else bit 1: 0 WebSocket binary channels, 1 WebSocket base64 channels
 *   mode >> 2:  pieces of (mode >> 2) + 1 bytes for the split feed
 * Each side is decoded fed whole and fed in pieces; both must give the same channels, the
 * same bytes and the same end. Every piece's text goes through k8s_utf8, which must give
 * valid UTF-8.
 */

#define ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)

/* A running digest of what a side gave: per channel, its bytes hashed and counted. */
struct sum {
	uint64_t h[7], n[7];
	int rc;
};

static int slot(int channel)
{
	return channel >= 0 && channel <= 4 ? channel : channel == K8S_CH_CLOSE ? 5 : 6;
}

static void utf8_valid(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t k = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
			 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;

		ASSERT(k && c != 0 && i + k <= n);
		for (size_t j = 1; j < k; j++)
			ASSERT(((unsigned char)s[i + j] & 0xc0) == 0x80);
		i += k;
	}
}

static void feed(struct k8s_stream *s, enum k8s_side side, const uint8_t *p, size_t len, struct sum *sum,
		 struct k8s_utf8 *carry)
{
	static char text[3 * (K8S_PIECE_MAX + 4)];

	while (len > 0) {
		struct k8s_piece pc;
		size_t used = 0;
		int rc = k8s_stream_next(s, side, p, len, &used, &pc);

		ASSERT(used <= len);
		p += used;
		len -= used;
		if (rc == K8S_PIECE) {
			int k = slot(pc.channel);
			size_t t;

			ASSERT(pc.len > 0 && pc.len <= K8S_PIECE_MAX && pc.p);
			for (size_t i = 0; i < pc.len; i++)
				sum->h[k] = sum->h[k] * 1099511628211ull + pc.p[i];
			sum->n[k] += pc.len;
			t = k8s_utf8(&carry[k], pc.p, pc.len, text);
			ASSERT(t <= sizeof(text));
			utf8_valid(text, t);
			continue;
		}
		ASSERT(rc == K8S_NEED_MORE ? len == 0 : rc == K8S_STOPPED);
		sum->rc = rc;
		if (rc == K8S_STOPPED) {
			ASSERT(s->dir[side].error);
			ASSERT(k8s_stream_next(s, side, p, len, &used, &pc) == K8S_STOPPED && used == 0);
		}
		return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct k8s_stream whole, split;
	struct k8s_utf8 carry[7];
	enum k8s_stream_proto proto;
	size_t cut, step;
	struct sum a[2], b[2];
	const uint8_t *side[2];
	size_t len[2];

	if (n < 3)
		return 0;
	proto = (d[0] & 1) ? K8S_STREAM_SPDY : (d[0] & 2) ? K8S_STREAM_WEBSOCKET_BASE64 : K8S_STREAM_WEBSOCKET;
	step = (size_t)(d[0] >> 2) + 1;
	cut = (size_t)d[1] << 8 | d[2];
	d += 3;
	n -= 3;
	if (cut > n)
		cut = n;
	side[0] = d;
	len[0] = cut;
	side[1] = d + cut;
	len[1] = n - cut;

	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	k8s_stream_init(&whole, proto);
	k8s_stream_init(&split, proto);
	for (int s = 0; s < 2; s++) {
		memset(carry, 0, sizeof(carry));
		feed(&whole, (enum k8s_side)s, side[s], len[s], &a[s], carry);
		memset(carry, 0, sizeof(carry));
		for (size_t o = 0; o < len[s] && b[s].rc != K8S_STOPPED; o += step)
			feed(&split, (enum k8s_side)s, side[s] + o, len[s] - o < step ? len[s] - o : step, &b[s],
			     carry);
		ASSERT(memcmp(&a[s], &b[s], sizeof(a[s])) == 0);
	}
	k8s_stream_free(&whole);
	k8s_stream_free(&split);
	return 0;
}
