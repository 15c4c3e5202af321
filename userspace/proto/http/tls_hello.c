/* The TLS ClientHello at the start of a stream: server name and ALPN offers, read before any TLS library sees it. */
#include <airlock/http.h>

#include <arpa/inet.h>

#define HELLO_MAX 16384     /* a ClientHello larger than this is refused */

static unsigned int be16(const uint8_t *p)
{
	return (unsigned int)p[0] << 8 | p[1];
}

int http_server_name_ok(const char *name)
{
	unsigned char ip[16];
	size_t n = strlen(name), label = 0;

	if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1)
		return 1;
	if (n && name[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		char c = i < n ? name[i] : '.';

		if (c == '.') {
			if (label == 0 || label > 63 || name[i - 1] == '-' || name[i - label] == '-')
				return 0;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			   c == '-' || c == '_') {
			label++;
		} else {
			return 0;
		}
	}
	return 1;
}

static int parse_ext(const uint8_t *p, size_t n, struct http_hello *h)
{
	while (n) {
		unsigned int type, len;

		if (n < 4)
			return -1;
		type = be16(p);
		len = be16(p + 2);
		if (len > n - 4)
			return -1;
		if (type == 0 && len >= 2) {        /* server_name */
			const uint8_t *q = p + 6;
			size_t left = be16(p + 4);

			if (left != len - 2)
				return -1;
			while (left >= 3) {
				unsigned int nlen = be16(q + 1);

				if (nlen > left - 3)
					return -1;
				if (q[0] == 0 && !h->sni[0]) {
					if (nlen == 0 || nlen >= sizeof(h->sni) || memchr(q + 3, 0, nlen))
						return -1;
					memcpy(h->sni, q + 3, nlen);
					h->sni[nlen] = '\0';
					/* A HostName (RFC 6066), or the IP literal some clients send:
					 * only such a name may reach a leaf Airlock mints. */
					h->sni_bad = !http_server_name_ok(h->sni);
				}
				q += 3 + nlen;
				left -= 3 + nlen;
			}
			if (left)
				return -1;
		} else if (type == 16 && len >= 2) {  /* ALPN */
			const uint8_t *q = p + 6;
			size_t left = be16(p + 4);

			if (left != len - 2)
				return -1;
			while (left) {
				unsigned int plen = q[0];

				if (plen == 0 || plen > left - 1)
					return -1;
				if (plen == 2 && memcmp(q + 1, "h2", 2) == 0)
					h->alpn_h2 = 1;
				if (plen == 8 && memcmp(q + 1, "http/1.1", 8) == 0)
					h->alpn_http11 = 1;
				q += 1 + plen;
				left -= 1 + plen;
			}
		}
		p += 4 + len;
		n -= 4 + len;
	}
	return 0;
}

int http_tls_hello(const uint8_t *buf, size_t len, struct http_hello *h)
{
	uint8_t hs[HELLO_MAX + 4];
	size_t have = 0, off = 0, need = 0;
	const uint8_t *p;
	size_t n, l;

	memset(h, 0, sizeof(*h));
	/* Gather handshake bytes from as many records as the ClientHello spans. */
	for (;;) {
		size_t rlen;

		if (len - off < 5)
			return len - off >= 1 && buf[off] != 0x16 ? HTTP_ERROR :
			       (len - off >= 2 && buf[off + 1] != 3) ? HTTP_ERROR : HTTP_NEED_MORE;
		if (buf[off] != 0x16 || buf[off + 1] != 3)
			return HTTP_ERROR;
		rlen = be16(buf + off + 3);
		if (rlen == 0 || rlen > 16384 + 2048)
			return HTTP_ERROR;
		if (len - off - 5 < rlen)
			return HTTP_NEED_MORE;
		if (have + rlen > sizeof(hs))
			return HTTP_ERROR;
		memcpy(hs + have, buf + off + 5, rlen);
		have += rlen;
		off += 5 + rlen;
		if (have >= 4) {
			if (hs[0] != 1)
				return HTTP_ERROR;
			need = (size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3];
			if (need > HELLO_MAX)
				return HTTP_ERROR;
			if (have >= 4 + need)
				break;
		}
	}
	h->len = off;
	p = hs + 4;
	n = need;
	/* version, random */
	if (n < 34)
		return HTTP_ERROR;
	p += 34;
	n -= 34;
	/* session id */
	if (n < 1 || p[0] > 32 || (size_t)p[0] + 1 > n)
		return HTTP_ERROR;
	l = (size_t)p[0] + 1;
	p += l;
	n -= l;
	/* cipher suites */
	if (n < 2 || be16(p) + 2u > n || be16(p) % 2)
		return HTTP_ERROR;
	l = be16(p) + 2u;
	p += l;
	n -= l;
	/* compression methods */
	if (n < 1 || (size_t)p[0] + 1 > n)
		return HTTP_ERROR;
	l = (size_t)p[0] + 1;
	p += l;
	n -= l;
	if (n == 0)
		return HTTP_DONE;
	if (n < 2 || be16(p) + 2u != n)
		return HTTP_ERROR;
	return parse_ext(p + 2, n - 2, h) < 0 ? HTTP_ERROR : HTTP_DONE;
}
