/* Kubernetes exec/attach streams after the upgrade (WebSocket channels, binary or base64, or SPDY/3.1 streams), decoded incrementally for the session recording; pure. */
#include <airlock/http.h>

#include <stdlib.h>
#include <strings.h>
#include <zlib.h>

enum { WS_HEAD = 0, WS_PAYLOAD };
enum { SP_HEAD = 0, SP_FIXED, SP_HBLOCK, SP_SKIP, SP_DATA };

#define SPDY_SYN_STREAM 1
#define SPDY_SYN_REPLY  2
#define SPDY_HEADERS    8

/* The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1), byte
 * for byte as moby/spdystream (kubectl, the kubelet) uses it: 1423 bytes. */
static const uint8_t spdy_dict[] =
	"\0\0\0\007options\0\0\0\004head\0\0\0\004post\0\0\0\003put\0\0\0\006delete\0\0\0\005trac"
	"e\0\0\0\006accept\0\0\0\016accept-charset\0\0\0\017accept-encoding\0\0\0\017accept-langu"
	"age\0\0\0\015accept-ranges\0\0\0\003age\0\0\0\005allow\0\0\0\015authorization\0\0\0\015c"
	"ache-control\0\0\0\012connection\0\0\0\014content-base\0\0\0\020content-encoding\0\0\0"
	"\020content-language\0\0\0\016content-length\0\0\0\020content-location\0\0\0\013content-"
	"md5\0\0\0\015content-range\0\0\0\014content-type\0\0\0\004date\0\0\0\004etag\0\0\0\006ex"
	"pect\0\0\0\007expires\0\0\0\004from\0\0\0\004host\0\0\0\010if-match\0\0\0\021if-modified"
	"-since\0\0\0\015if-none-match\0\0\0\010if-range\0\0\0\023if-unmodified-since\0\0\0\015la"
	"st-modified\0\0\0\010location\0\0\0\014max-forwards\0\0\0\006pragma\0\0\0\022proxy-authe"
	"nticate\0\0\0\023proxy-authorization\0\0\0\005range\0\0\0\007referer\0\0\0\013retry-afte"
	"r\0\0\0\006server\0\0\0\002te\0\0\0\007trailer\0\0\0\021transfer-encoding\0\0\0\007upgra"
	"de\0\0\0\012user-agent\0\0\0\004vary\0\0\0\003via\0\0\0\007warning\0\0\0\020www-authenti"
	"cate\0\0\0\006method\0\0\0\003get\0\0\0\006status\0\0\0\006\062\060\060 OK\0\0\0\007vers"
	"ion\0\0\0\010HTTP/1.1\0\0\0\003url\0\0\0\006public\0\0\0\012set-cookie\0\0\0\012keep-ali"
	"ve\0\0\0\006origin1001012012022052063003023033043053063074024054064074084094104114124134"
	"14415416417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
	"400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 No"
	"t Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:"
	"00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/"
	"gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-ag"
	"e=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

_Static_assert(sizeof(spdy_dict) - 1 == 1423, "the SPDY/3 dictionary is 1423 bytes");

static int stop(struct k8s_dir *d, const char *why)
{
	d->error = why;
	return -1;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The next token of a comma-separated list at *list (blanks around it dropped): its start and
 * *len, *list moved past it; NULL at the end. */
static const char *next_token(const char **list, size_t *len)
{
	const char *t, *e;

	if (!*list || !**list)
		return NULL;
	t = *list + strspn(*list, " \t,");
	e = t + strcspn(t, ",");
	*len = (size_t)(e - t);
	while (*len && (t[*len - 1] == ' ' || t[*len - 1] == '\t'))
		(*len)--;
	*list = e;
	return t;
}

/* 1 if the comma-separated list has the token (ASCII case ignored). */
static int has_token(const char *list, const char *tok)
{
	size_t n = strlen(tok), len;
	const char *t;

	while ((t = next_token(&list, &len)) != NULL)
		if (len == n && strncasecmp(t, tok, n) == 0)
			return 1;
	return 0;
}

int k8s_stream_kind(const char *upgrade, const char *ws_protocols, enum k8s_stream_proto *proto)
{
	const char *p = ws_protocols, *t;
	size_t len;
	int any = 0;

	if (has_token(upgrade, "SPDY/3.1")) {
		*proto = K8S_STREAM_SPDY;
		return 1;
	}
	if (!has_token(upgrade, "websocket"))
		return 0;
	/* The binary channel protocols (channel.k8s.io, v2..v5) share one framing, the base64
	 * ones (base64.channel.k8s.io, v4.base64.channel.k8s.io) another. Given the server's
	 * answer (its 101's Sec-WebSocket-Protocol), that one decides; given the agent's offer,
	 * the first channel protocol in it stands for the server's choice (the API server picks
	 * the first offered protocol it knows). */
	while ((t = next_token(&p, &len)) != NULL) {
		if (len)
			any = 1;
		if (len >= 14 && strncasecmp(t + len - 14, "channel.k8s.io", 14) == 0) {
			int b64 = len >= 21 && strncasecmp(t + len - 21, "base64.channel.k8s.io", 21) == 0 &&
				  (len == 21 || t[len - 22] == '.');

			*proto = b64 ? K8S_STREAM_WEBSOCKET_BASE64 : K8S_STREAM_WEBSOCKET;
			return 1;
		}
	}
	if (any)
		return 0;
	*proto = K8S_STREAM_WEBSOCKET;     /* none offered: the server's default, channel.k8s.io */
	return 1;
}

void k8s_stream_init(struct k8s_stream *s, enum k8s_stream_proto proto)
{
	memset(s, 0, offsetof(struct k8s_stream, hblock));
	s->proto = proto;
}

void k8s_stream_free(struct k8s_stream *s)
{
	if (s->zs) {
		inflateEnd(s->zs);
		free(s->zs);
		s->zs = NULL;
	}
}

/* ---- WebSocket ------------------------------------------------------------------------------- */

static int ws_frame_end(struct k8s_dir *d)
{
	d->state = WS_HEAD;
	if (d->opcode < 8 && d->fin) {
		d->in_msg = 0;
		d->need_channel = 0;
		/* (a payload byte that would end the message mid-quantum is refused before it is
		 * taken; this catches an empty last frame) */
		if (d->b64n % 4 != 0)
			return stop(d, "websocket base64: message length is not a multiple of 4");
	}
	return 0;
}

/* d->hdr holds a whole frame header: check it and start its payload. */
static int ws_head_done(struct k8s_dir *d)
{
	uint8_t b0 = d->hdr[0], b1 = d->hdr[1], l = b1 & 0x7f;
	size_t at = 2;
	uint64_t n = l;

	d->fin = !!(b0 & 0x80);
	d->opcode = b0 & 0x0f;
	d->masked = !!(b1 & 0x80);
	d->hlen = 0;
	if (b0 & 0x70)
		return stop(d, "websocket: frame with RSV bits set (an extension such as "
			    "permessage-deflate is not decoded)");
	if (l == 126) {
		n = (uint64_t)d->hdr[2] << 8 | d->hdr[3];
		at = 4;
	} else if (l == 127) {
		if (d->hdr[2] & 0x80)
			return stop(d, "websocket: frame length over 2^63");
		n = 0;
		for (int i = 2; i < 10; i++)
			n = n << 8 | d->hdr[i];
		at = 10;
	}
	if (d->masked)
		memcpy(d->mask, d->hdr + at, 4);
	d->mask_off = 0;
	d->left = n;
	switch (d->opcode) {
	case 0x0:
		if (!d->in_msg)
			return stop(d, "websocket: continuation frame outside a message");
		break;
	case 0x1:
	case 0x2:
		if (d->in_msg)
			return stop(d, "websocket: new message inside a fragmented one");
		d->in_msg = 1;
		d->need_channel = 1;
		d->b64acc = 0;
		d->b64n = d->b64pad = 0;
		break;
	case 0x8:
	case 0x9:
	case 0xa:
		if (!d->fin || n > 125)
			return stop(d, "websocket: fragmented or long control frame");
		break;
	default:
		return stop(d, "websocket: reserved opcode");
	}
	d->state = WS_PAYLOAD;
	if (d->left == 0)
		return ws_frame_end(d);
	return 0;
}

static int b64_value(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Decodes up to n bytes of a base64 message's payload (masked as the frame is) into
 * d->scratch, as the API server's decoder (Go's padded standard encoding) reads them: CR and
 * LF are skipped, '=' only as the last one or two characters of the message's data, the
 * bits a padded quantum leaves over ignored. Returns the bytes decoded (at most 3 (n + 3) / 4)
 * and sets *took to the payload bytes used. A byte that makes the message malformed is not
 * used: *why says why, and what came before it was still decoded.
 */
static size_t b64_take(struct k8s_dir *d, const uint8_t *p, size_t n, size_t *took, const char **why)
{
	uint32_t acc = d->b64acc;
	unsigned q = d->b64n, pad = d->b64pad;
	uint8_t *o = d->scratch;
	size_t k;

	*why = NULL;
	for (k = 0; k < n; k++) {
		uint8_t c = p[k] ^ (d->masked ? d->mask[(d->mask_off + k) & 3] : 0);
		int v = b64_value(c);
		uint32_t acc0 = acc;
		unsigned q0 = q, pad0 = pad;

		if (c == '\r' || c == '\n') {
			/* skipped */
		} else if (q == 4) {
			*why = "websocket base64: data after the padding";
			break;
		} else if (c == '=') {
			if (q < 2) {
				*why = "websocket base64: padding where data must be";
				break;
			}
			pad++;
			if (++q == 4) {
				*o++ = (uint8_t)(acc >> (pad == 1 ? 10 : 4));
				if (pad == 1)
					*o++ = (uint8_t)(acc >> 2);
			}
		} else if (v < 0 || pad) {
			*why = v < 0 ? "websocket base64: not a base64 character" :
				"websocket base64: data after the padding";
			break;
		} else {
			acc = acc << 6 | (uint32_t)v;
			if (++q == 4) {
				*o++ = (uint8_t)(acc >> 16);
				*o++ = (uint8_t)(acc >> 8);
				*o++ = (uint8_t)acc;
				q = 0;
				acc = 0;
			}
		}
		if (d->fin && d->left - k == 1 && q % 4 != 0) {
			/* the message would end mid-quantum (this byte decoded nothing) */
			acc = acc0;
			q = q0;
			pad = pad0;
			*why = "websocket base64: message length is not a multiple of 4";
			break;
		}
	}
	d->b64acc = acc;
	d->b64n = (uint8_t)q;
	d->b64pad = (uint8_t)pad;
	*took = k;
	return (size_t)(o - d->scratch);
}

static int ws_next(struct k8s_dir *d, int base64, const uint8_t *buf, size_t len, size_t *used,
		   struct k8s_piece *out)
{
	size_t i = 0;

	while (i < len) {
		size_t n;

		if (d->state == WS_HEAD) {
			d->hdr[d->hlen++] = buf[i++];
			if (d->hlen == 2) {
				uint8_t l = d->hdr[1] & 0x7f;

				d->hneed = (uint8_t)(2 + (l == 126 ? 2 : l == 127 ? 8 : 0) +
						     ((d->hdr[1] & 0x80) ? 4 : 0));
			}
			if (d->hlen >= 2 && d->hlen == d->hneed && ws_head_done(d) < 0) {
				*used = i;
				return K8S_STOPPED;
			}
			continue;
		}
		n = len - i;
		if (n > d->left)
			n = (size_t)d->left;
		if (d->opcode >= 8) {
			/* ping, pong, close: nothing of the session's */
		} else if (d->need_channel) {
			d->channel = buf[i] ^ (d->masked ? d->mask[d->mask_off & 3] : 0);
			d->need_channel = 0;
			n = 1;
			if (base64) {
				if (d->channel < '0' || d->channel > '4') {
					*used = i;
					return stop(d, "websocket base64: the channel is not '0'..'4'");
				}
				d->channel -= '0';
			}
		} else if (base64) {
			const char *why;
			size_t took, got;

			if (n > K8S_PIECE_MAX)
				n = K8S_PIECE_MAX;
			got = b64_take(d, buf + i, n, &took, &why);
			if (why && got == 0) {
				*used = i;
				return stop(d, why);
			}
			n = took;       /* a refused byte comes again next call, and stops it then */
			if (got) {
				out->p = d->scratch;
				out->channel = d->channel;
				out->len = got;
			}
		} else {
			if (n > K8S_PIECE_MAX)
				n = K8S_PIECE_MAX;
			if (d->masked) {
				for (size_t k = 0; k < n; k++)
					d->scratch[k] = buf[i + k] ^ d->mask[(d->mask_off + k) & 3];
				out->p = d->scratch;
			} else {
				out->p = buf + i;
			}
			out->channel = d->channel;
			out->len = n;
		}
		i += n;
		d->left -= n;
		d->mask_off += n;
		if (d->left == 0 && ws_frame_end(d) < 0) {
			*used = i;
			return K8S_STOPPED;
		}
		if (out->len) {
			*used = i;
			return K8S_PIECE;
		}
	}
	*used = i;
	return K8S_NEED_MORE;
}

/* ---- SPDY/3.1 -------------------------------------------------------------------------------- */

static int channel_named(const uint8_t *v, size_t n)
{
	static const char *const names[] = { "stdin", "stdout", "stderr", "error", "resize" };
	size_t len = 0;

	while (len < n && v[len])   /* values are NUL-separated; the first one counts */
		len++;
	for (size_t i = 0; i < AL_ARRAY_LEN(names); i++)
		if (len == strlen(names[i]) && memcmp(v, names[i], len) == 0)
			return (int)i;
	return K8S_CH_UNKNOWN;
}

static int stream_channel(const struct k8s_stream *s, uint32_t id)
{
	for (size_t i = 0; i < s->n_streams; i++)
		if (s->streams[i].id == id)
			return s->streams[i].channel;
	return K8S_CH_UNKNOWN;
}

/* Inflates n more bytes of the agent's current header block into s->hblock. */
static int hblock_inflate(struct k8s_stream *s, struct k8s_dir *d, const uint8_t *p, size_t n)
{
	z_stream *z = s->zs;

	if (!z) {
		z = calloc(1, sizeof(*z));
		if (!z || inflateInit(z) != Z_OK) {
			free(z);
			return stop(d, "spdy: out of memory for the header decompressor");
		}
		s->zs = z;
	}
	z->next_in = (Bytef *)(uintptr_t)p;
	z->avail_in = (uInt)n;
	while (z->avail_in > 0) {
		uInt in_before = z->avail_in;
		size_t out_before = s->hblock_len;
		int r;

		if (s->hblock_len == sizeof(s->hblock))
			return stop(d, "spdy: header block larger than it may be");
		z->next_out = s->hblock + s->hblock_len;
		z->avail_out = (uInt)(sizeof(s->hblock) - s->hblock_len);
		r = inflate(z, Z_SYNC_FLUSH);
		s->hblock_len = sizeof(s->hblock) - z->avail_out;
		if (r == Z_NEED_DICT) {
			if (s->zs_dict || inflateSetDictionary(z, spdy_dict, sizeof(spdy_dict) - 1) != Z_OK)
				return stop(d, "spdy: header block wants another dictionary");
			s->zs_dict = 1;
			continue;
		}
		if (r == Z_STREAM_END)
			return stop(d, "spdy: the header compression stream ended");
		if (r != Z_OK && r != Z_BUF_ERROR)
			return stop(d, "spdy: header block does not inflate");
		if (z->avail_in == in_before && s->hblock_len == out_before)
			return stop(d, "spdy: header block does not inflate");
	}
	return 0;
}

/* A whole header block is in s->hblock: a SYN_STREAM's streamtype names its channel. */
static int hblock_done(struct k8s_stream *s, struct k8s_dir *d)
{
	const uint8_t *p = s->hblock;
	size_t n = s->hblock_len, at = 4;
	int channel = K8S_CH_UNKNOWN;
	uint32_t pairs;

	if (n == sizeof(s->hblock))
		return stop(d, "spdy: header block larger than it may be");
	s->hblock_len = 0;
	if (n < 4)
		return stop(d, "spdy: header block too short");
	pairs = be32(p);
	for (uint32_t k = 0; k < pairs; k++) {
		const uint8_t *name, *val;
		uint32_t nl, vl;

		if (n - at < 4 || (nl = be32(p + at)) > n - at - 4)
			return stop(d, "spdy: malformed header block");
		name = p + at + 4;
		at += 4 + nl;
		if (n - at < 4 || (vl = be32(p + at)) > n - at - 4)
			return stop(d, "spdy: malformed header block");
		val = p + at + 4;
		at += 4 + vl;
		if (nl == 10 && strncasecmp((const char *)name, "streamtype", 10) == 0)
			channel = channel_named(val, vl);
	}
	if (at != n)
		return stop(d, "spdy: malformed header block");
	if (d->ctl_type == SPDY_SYN_STREAM && channel != K8S_CH_UNKNOWN) {
		size_t i;

		for (i = 0; i < s->n_streams && s->streams[i].id != d->stream_id; i++)
			;
		if (i < AL_ARRAY_LEN(s->streams)) {
			s->streams[i].id = d->stream_id;
			s->streams[i].channel = channel;
			if (i == s->n_streams)
				s->n_streams++;
		}
	}
	return 0;
}

static int spdy_head_done(struct k8s_dir *d, enum k8s_side side)
{
	const uint8_t *h = d->hdr;

	d->hlen = 0;
	d->left = (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
	if (!(h[0] & 0x80)) {
		d->ctl_type = 0;
		d->stream_id = be32(h) & 0x7fffffff;
		d->state = d->left ? SP_DATA : SP_HEAD;
		return 0;
	}
	if ((((unsigned)h[0] & 0x7f) << 8 | h[1]) != 3)
		return stop(d, "spdy: not SPDY version 3");
	d->ctl_type = h[2] << 8 | h[3];
	/* Only the agent's header blocks are read (it opens every stream); the server's are
	 * skipped, its compression state is its own. */
	if (side == K8S_FROM_AGENT && (d->ctl_type == SPDY_SYN_STREAM || d->ctl_type == SPDY_SYN_REPLY ||
				       d->ctl_type == SPDY_HEADERS)) {
		d->hneed = d->ctl_type == SPDY_SYN_STREAM ? 10 : 4;
		if (d->left < d->hneed)
			return stop(d, "spdy: control frame too short");
		d->state = SP_FIXED;
		return 0;
	}
	d->state = d->left ? SP_SKIP : SP_HEAD;
	return 0;
}

static int spdy_next(struct k8s_stream *s, enum k8s_side side, const uint8_t *buf, size_t len,
		     size_t *used, struct k8s_piece *out)
{
	struct k8s_dir *d = &s->dir[side];
	size_t i = 0;

	while (i < len) {
		size_t n = len - i;

		switch (d->state) {
		case SP_HEAD:
			d->hdr[d->hlen++] = buf[i++];
			if (d->hlen == 8 && spdy_head_done(d, side) < 0)
				goto stopped;
			continue;
		case SP_FIXED:
			d->hdr[d->hlen++] = buf[i++];
			d->left--;
			if (d->hlen == d->hneed) {
				d->stream_id = be32(d->hdr) & 0x7fffffff;
				d->hlen = 0;
				s->hblock_len = 0;
				d->state = SP_HBLOCK;
				if (d->left == 0 && hblock_done(s, d) < 0)
					goto stopped;
				if (d->left == 0)
					d->state = SP_HEAD;
			}
			continue;
		case SP_HBLOCK:
			if (n > d->left)
				n = (size_t)d->left;
			if (hblock_inflate(s, d, buf + i, n) < 0)
				goto stopped;
			i += n;
			d->left -= n;
			if (d->left == 0) {
				if (hblock_done(s, d) < 0)
					goto stopped;
				d->state = SP_HEAD;
			}
			continue;
		case SP_SKIP:
			if (n > d->left)
				n = (size_t)d->left;
			i += n;
			d->left -= n;
			if (d->left == 0)
				d->state = SP_HEAD;
			continue;
		default: /* SP_DATA */
			if (n > d->left)
				n = (size_t)d->left;
			if (n > K8S_PIECE_MAX)
				n = K8S_PIECE_MAX;
			out->channel = stream_channel(s, d->stream_id);
			out->p = buf + i;
			out->len = n;
			i += n;
			d->left -= n;
			if (d->left == 0)
				d->state = SP_HEAD;
			*used = i;
			return K8S_PIECE;
		}
	}
	*used = i;
	return K8S_NEED_MORE;
stopped:
	*used = i;
	return K8S_STOPPED;
}

int k8s_stream_next(struct k8s_stream *s, enum k8s_side side, const uint8_t *buf, size_t len,
		    size_t *used, struct k8s_piece *out)
{
	struct k8s_dir *d = &s->dir[side];

	*used = 0;
	out->channel = K8S_CH_UNKNOWN;
	out->p = NULL;
	out->len = 0;
	if (d->error)
		return K8S_STOPPED;
	if (s->proto == K8S_STREAM_SPDY)
		return spdy_next(s, side, buf, len, used, out);
	if (s->proto == K8S_STREAM_WEBSOCKET || s->proto == K8S_STREAM_WEBSOCKET_BASE64)
		return ws_next(d, s->proto == K8S_STREAM_WEBSOCKET_BASE64, buf, len, used, out);
	d->error = "not a stream this decoder reads";
	return K8S_STOPPED;
}

/* ---- recorded text ---------------------------------------------------------------------------- */

/* Length of the UTF-8 sequence a lead byte starts (0: not a lead byte) and the range its
 * second byte must be in (no overlongs, no surrogates, nothing over U+10FFFF). */
static size_t utf8_lead(uint8_t b, uint8_t *lo, uint8_t *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (b >= 0xc2 && b <= 0xdf)
		return 2;
	if (b == 0xe0)
		*lo = 0xa0;
	else if (b == 0xed)
		*hi = 0x9f;
	if (b >= 0xe0 && b <= 0xef)
		return 3;
	if (b == 0xf0)
		*lo = 0x90;
	else if (b == 0xf4)
		*hi = 0x8f;
	if (b >= 0xf0 && b <= 0xf4)
		return 4;
	return 0;
}

size_t k8s_utf8(struct k8s_utf8 *carry, const uint8_t *p, size_t len, char *out)
{
	uint8_t keep[4];
	size_t total = carry->n + len, i = 0, o = 0, nkeep = 0;
#define AT(k) ((k) < carry->n ? carry->b[(k)] : p[(k) - carry->n])

	while (i < total) {
		uint8_t b = AT(i), lo, hi;
		size_t need, k = 1;

		if (b >= 0x01 && b < 0x80) {
			out[o++] = (char)b;
			i++;
			continue;
		}
		need = b ? utf8_lead(b, &lo, &hi) : 0;
		while (k < need && i + k < total) {
			uint8_t c = AT(i + k);

			if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xbf))
				break;
			k++;
		}
		if (need && k < need && i + k == total) {
			/* cut at the end: wait for the rest */
			for (nkeep = 0; i + nkeep < total; nkeep++)
				keep[nkeep] = AT(i + nkeep);
			break;
		}
		if (!need || k < need) {
			memcpy(out + o, "\xef\xbf\xbd", 3);     /* U+FFFD for the longest bad prefix */
			o += 3;
			i += k;
			continue;
		}
		for (size_t j = 0; j < need; j++)
			out[o++] = (char)AT(i + j);
		i += need;
	}
#undef AT
	memcpy(carry->b, keep, nkeep);
	carry->n = (uint8_t)nkeep;
	return o;
}
