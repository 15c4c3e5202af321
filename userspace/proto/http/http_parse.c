/* HTTP/1.1 request and response heads, chunked bodies: strict, incremental, offsets only. */
#include <airlock/http.h>

#include <strings.h>

enum { R_LINE = 0, R_HEADERS, R_BODY, R_DONE, R_ERROR };

/* tchar (RFC 9110 5.6.2) */
static int is_tchar(uint8_t c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_vchar(uint8_t c)
{
	return c >= 0x21 && c <= 0x7e;
}

/* field-value characters: VCHAR, obs-text, SP, HTAB */
static int is_field_char(uint8_t c)
{
	return is_vchar(c) || c >= 0x80 || c == ' ' || c == '\t';
}

static struct http_span span(size_t off, size_t len)
{
	struct http_span s = { (uint32_t)off, (uint32_t)len };

	return s;
}

int http_span_ieq(const uint8_t *buf, struct http_span sp, const char *s)
{
	size_t n = strlen(s);

	return sp.len == n && strncasecmp((const char *)buf + sp.off, s, n) == 0;
}

/*
 * The next complete line at pos: CRLF-terminated, no bare CR or LF inside,
 * at most max_line bytes of content, ending before byte max_total of the
 * message. *scan remembers how far the current line was checked. Errors
 * are found in byte order, so a message split anywhere fails the same way.
 * Returns 1 with the content in [pos, *eol), 0 for more, -1 with *err and
 * *code (400 or 431).
 */
static int next_line(const uint8_t *buf, size_t len, size_t pos, size_t *scan, size_t max_line,
		     size_t max_total, size_t *eol, const char **err, int *code)
{
	size_t i = *scan < pos ? pos : *scan;

	*code = 400;
	for (; i < len; i++) {
		if (i >= max_total) {
			*code = 431;
			*err = "head too large";
			return -1;
		}
		if (buf[i] == '\n') {
			if (i == pos || buf[i - 1] != '\r') {
				*err = "bare LF";
				return -1;
			}
			*eol = i - 1;
			*scan = i + 1;
			return 1;
		}
		if (i - pos >= max_line && !(i - pos == max_line && buf[i] == '\r')) {
			*code = 431;
			*err = "line too long";
			return -1;
		}
		if (i > pos && buf[i - 1] == '\r') {
			*err = "bare CR";
			return -1;
		}
	}
	*scan = i;
	return 0;
}

static int fail(struct http_req *r, int status, const char *msg)
{
	r->state = R_ERROR;
	r->status = status;
	snprintf(r->error, sizeof(r->error), "%s", msg);
	return HTTP_ERROR;
}

/* ---- chunked bodies ------------------------------------------------------------------------ */

enum {
	CK_SIZE0 = 0,   /* first hex digit of a size */
	CK_SIZE,        /* more hex digits, ';' or CR */
	CK_EXT_NAME0, CK_EXT_NAME, CK_EXT_VAL0, CK_EXT_VAL,
	CK_SIZE_LF,
	CK_DATA, CK_DATA_CR, CK_DATA_LF,
	CK_TRAILER0,    /* start of a trailer line, or the final CRLF */
	CK_TRAILER_NAME, CK_TRAILER_VAL, CK_TRAILER_LF, CK_FINAL_LF,
	CK_DONE, CK_ERROR,
};

#define CK_MAX_DIGITS 15

void http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

static int ck_fail(struct http_chunked *c, const char *why)
{
	c->state = CK_ERROR;
	c->error = why;
	return HTTP_ERROR;
}

int http_chunked_feed(struct http_chunked *c, const uint8_t *p, size_t len, size_t *used)
{
	size_t i = 0;

	*used = 0;
	if (c->state == CK_ERROR)
		return HTTP_ERROR;
	if (c->state == CK_DONE)
		return HTTP_DONE;
	while (i < len) {
		uint8_t ch = p[i];
		int h;

		if (c->state == CK_DATA) {
			uint64_t take = len - i < c->left ? len - i : c->left;

			i += take;
			c->left -= take;
			c->decoded += take;
			if (c->left == 0)
				c->state = CK_DATA_CR;
			continue;
		}
		i++;
		if (c->state != CK_DATA && ++c->line > HTTP_MAX_LINE)
			return *used = i, ck_fail(c, "chunk line too long");
		switch (c->state) {
		case CK_SIZE0:
		case CK_SIZE:
			h = al_hexdigit(ch);
			if (h >= 0) {
				if (c->line > CK_MAX_DIGITS)
					return *used = i, ck_fail(c, "chunk size too large");
				c->left = c->left * 16 + (uint64_t)h;
				c->state = CK_SIZE;
			} else if (c->state == CK_SIZE0) {
				return *used = i, ck_fail(c, "bad chunk size");
			} else if (ch == ';') {
				c->state = CK_EXT_NAME0;
			} else if (ch == '\r') {
				c->state = CK_SIZE_LF;
			} else {
				return *used = i, ck_fail(c, "bad chunk size");
			}
			break;
		case CK_EXT_NAME0:
		case CK_EXT_NAME:
		case CK_EXT_VAL0:
		case CK_EXT_VAL:
			if (is_tchar(ch)) {
				c->state = c->state == CK_EXT_NAME0 ? CK_EXT_NAME
					 : c->state == CK_EXT_VAL0 ? CK_EXT_VAL : c->state;
			} else if (c->state == CK_EXT_NAME && ch == '=') {
				c->state = CK_EXT_VAL0;
			} else if ((c->state == CK_EXT_NAME || c->state == CK_EXT_VAL) && ch == ';') {
				c->state = CK_EXT_NAME0;
			} else if ((c->state == CK_EXT_NAME || c->state == CK_EXT_VAL) && ch == '\r') {
				c->state = CK_SIZE_LF;
			} else {
				return *used = i, ck_fail(c, "bad chunk extension");
			}
			break;
		case CK_SIZE_LF:
			if (ch != '\n')
				return *used = i, ck_fail(c, "bare CR in a chunk size line");
			c->line = 0;
			c->state = c->left ? CK_DATA : CK_TRAILER0;
			c->chunk = c->left;
			if (c->left) {
				/* Stop at each chunk's start: callers may decide on its size. */
				*used = i;
				return HTTP_NEED_MORE;
			}
			break;
		case CK_DATA_CR:
			if (ch != '\r')
				return *used = i, ck_fail(c, "chunk data longer than its size");
			c->state = CK_DATA_LF;
			break;
		case CK_DATA_LF:
			if (ch != '\n')
				return *used = i, ck_fail(c, "bare CR after chunk data");
			c->line = 0;
			c->state = CK_SIZE0;
			break;
		case CK_TRAILER0:
			if (ch == '\r') {
				c->state = CK_FINAL_LF;
			} else if (is_tchar(ch)) {
				if (++c->trailers > HTTP_MAX_HEADERS)
					return *used = i, ck_fail(c, "too many trailer fields");
				c->state = CK_TRAILER_NAME;
			} else {
				return *used = i, ck_fail(c, "bad trailer field");
			}
			break;
		case CK_TRAILER_NAME:
			if (ch == ':')
				c->state = CK_TRAILER_VAL;
			else if (!is_tchar(ch))
				return *used = i, ck_fail(c, "bad trailer field name");
			break;
		case CK_TRAILER_VAL:
			if (ch == '\r')
				c->state = CK_TRAILER_LF;
			else if (!is_field_char(ch))
				return *used = i, ck_fail(c, "bad character in a trailer field");
			break;
		case CK_TRAILER_LF:
			if (ch != '\n')
				return *used = i, ck_fail(c, "bare CR in a trailer field");
			c->line = 0;
			c->state = CK_TRAILER0;
			break;
		case CK_FINAL_LF:
			if (ch != '\n')
				return *used = i, ck_fail(c, "bare CR at the end of a chunked body");
			c->state = CK_DONE;
			*used = i;
			return HTTP_DONE;
		}
	}
	*used = i;
	return HTTP_NEED_MORE;
}

/* ---- request ------------------------------------------------------------------------------- */

void http_req_init(struct http_req *r)
{
	memset(r, 0, sizeof(*r));
	http_chunked_init(&r->ck);
}

static int valid_percent(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '%' && (i + 2 >= n || al_hexdigit(p[i + 1]) < 0 || al_hexdigit(p[i + 2]) < 0))
			return 0;
	return 1;
}

/* Host: reg-name / IPv4 / [IP-literal], then an optional :port. */
static int valid_host(const uint8_t *p, size_t n)
{
	size_t i = 0;

	if (n == 0)
		return 0;
	if (p[0] == '[') {
		for (i = 1; i < n && p[i] != ']'; i++)
			if (!(al_hexdigit(p[i]) >= 0 || p[i] == ':' || p[i] == '.'))
				return 0;
		if (i >= n || i == 1)
			return 0;
		i++;
	} else {
		for (; i < n && p[i] != ':'; i++)
			if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
			      (p[i] >= '0' && p[i] <= '9') || strchr("-._~", p[i])))
				return 0;
		if (i == 0)
			return 0;
	}
	if (i == n)
		return 1;
	if (p[i] != ':' || i + 1 == n || n - i - 1 > 5)
		return 0;
	for (i++; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return 0;
	return 1;
}

static int parse_request_line(struct http_req *r, const uint8_t *buf, size_t start, size_t eol)
{
	size_t i = start, m, t, te;
	const uint8_t *tg;

	while (i < eol && is_tchar(buf[i]))
		i++;
	if (i == start || i >= eol || buf[i] != ' ')
		return fail(r, 400, i == start ? "bad request line (no method)" : "bad method");
	m = i;
	r->method = span(start, m - start);
	/* Methods are case-sensitive, but Django, Flask and Rails upper-case the one they get: a
	 * "delete" would meet no DELETE rule here and run as a DELETE there. */
	for (size_t k = start; k < m; k++)
		if (buf[k] >= 'a' && buf[k] <= 'z')
			return fail(r, 400, "method must be upper case");
	t = ++i;
	while (i < eol && is_vchar(buf[i]))
		i++;
	if (i == t || i >= eol || buf[i] != ' ')
		return fail(r, 400, "bad request target");
	te = i;
	r->target = span(t, te - t);
	i++;
	if (eol - i != 8 || memcmp(buf + i, "HTTP/1.", 7) != 0) {
		if (eol - i == 8 && memcmp(buf + i, "HTTP/", 5) == 0 && buf[i + 5] >= '0' &&
		    buf[i + 5] <= '9' && buf[i + 6] == '.' && buf[i + 7] >= '0' && buf[i + 7] <= '9')
			return fail(r, 505, "HTTP version not supported");
		return fail(r, 400, "bad HTTP version");
	}
	if (buf[i + 7] != '0' && buf[i + 7] != '1')
		return fail(r, 505, "HTTP version not supported");
	r->minor = buf[i + 7] - '0';

	tg = buf + t;
	if (memchr(tg, '#', te - t))
		return fail(r, 400, "fragment in the request target");
	if (!valid_percent(tg, te - t))
		return fail(r, 400, "bad percent-encoding in the request target");
	if (tg[0] == '/') {
		const uint8_t *q = memchr(tg, '?', te - t);
		size_t plen = q ? (size_t)(q - tg) : te - t;

		r->path = span(t, plen);
		r->query = q ? span(t + plen + 1, te - t - plen - 1) : span(te, 0);
	} else if (te - t == 1 && tg[0] == '*') {
		if (m - start != 7 || memcmp(buf + start, "OPTIONS", 7) != 0)
			return fail(r, 400, "asterisk-form target needs OPTIONS");
		r->path = span(t, 1);
		r->query = span(te, 0);
	} else {
		size_t skip = 0, a, ae;

		if (te - t > 7 && strncasecmp((const char *)tg, "http://", 7) == 0)
			skip = 7;
		else if (te - t > 8 && strncasecmp((const char *)tg, "https://", 8) == 0)
			skip = 8;
		if (!skip)
			return fail(r, 400, "CONNECT and authority-form targets are not supported");
		a = t + skip;
		for (ae = a; ae < te && buf[ae] != '/' && buf[ae] != '?'; ae++)
			;
		if (memchr(buf + a, '@', ae - a))
			return fail(r, 400, "userinfo in the request target");
		if (!valid_host(buf + a, ae - a))
			return fail(r, 400, "bad host in the request target");
		r->absolute = 1;
		r->host = span(a, ae - a);
		if (ae < te && buf[ae] == '/') {
			const uint8_t *q = memchr(buf + ae, '?', te - ae);
			size_t plen = q ? (size_t)(q - (buf + ae)) : te - ae;

			r->path = span(ae, plen);
			r->query = q ? span(ae + plen + 1, te - ae - plen - 1) : span(te, 0);
		} else {
			r->path = span(ae, 0);
			r->query = ae < te ? span(ae + 1, te - ae - 1) : span(te, 0);
		}
	}
	if (m - start == 7 && memcmp(buf + start, "CONNECT", 7) == 0)
		return fail(r, 400, "CONNECT is not supported");
	{
		const char *why = http_path_refusal(buf + r->path.off, r->path.len);

		if (why)
			return fail(r, 400, why);
	}
	return 0;
}

int http_list_next(const uint8_t *v, size_t n, size_t *i, size_t *s, size_t *e)
{
	while (*i < n) {
		while (*i < n && (v[*i] == ' ' || v[*i] == '\t' || v[*i] == ','))
			(*i)++;
		*s = *i;
		while (*i < n && v[*i] != ',')
			(*i)++;
		*e = *i;
		while (*e > *s && (v[*e - 1] == ' ' || v[*e - 1] == '\t'))
			(*e)--;
		if (*e > *s)
			return 1;
	}
	return 0;
}

/* Comma-separated tokens of a Connection header. */
static void connection_tokens(const uint8_t *v, size_t n, int *close_, int *keep, int *upgrade)
{
	size_t i = 0, s, e;

	while (http_list_next(v, n, &i, &s, &e)) {
		if (e - s == 5 && strncasecmp((const char *)v + s, "close", 5) == 0)
			*close_ = 1;
		else if (e - s == 10 && strncasecmp((const char *)v + s, "keep-alive", 10) == 0)
			*keep = 1;
		else if (upgrade && e - s == 7 && strncasecmp((const char *)v + s, "upgrade", 7) == 0)
			*upgrade = 1;
	}
}

/* Splits a header line into name and trimmed value; -1 with a reason. */
static int split_header(const uint8_t *buf, size_t start, size_t eol, struct http_header *h,
			const char **err)
{
	size_t i = start, vs, ve;

	if (buf[start] == ' ' || buf[start] == '\t') {
		*err = "obs-fold (a header line starting with whitespace)";
		return -1;
	}
	while (i < eol && is_tchar(buf[i]))
		i++;
	if (i == start || i >= eol || buf[i] != ':') {
		*err = i < eol && (buf[i] == ' ' || buf[i] == '\t') ? "whitespace before a header colon"
								    : "bad header name";
		return -1;
	}
	h->name = span(start, i - start);
	vs = i + 1;
	for (size_t k = vs; k < eol; k++)
		if (!is_field_char(buf[k])) {
			*err = "bad character in a header value";
			return -1;
		}
	while (vs < eol && (buf[vs] == ' ' || buf[vs] == '\t'))
		vs++;
	ve = eol;
	while (ve > vs && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t'))
		ve--;
	h->value = span(vs, ve - vs);
	return 0;
}

static int digits_value(const uint8_t *p, size_t n, uint64_t *v)
{
	*v = 0;
	if (n == 0 || n > 15)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		*v = *v * 10 + (uint64_t)(p[i] - '0');
	}
	return 0;
}

static int request_header(struct http_req *r, const uint8_t *buf, const struct http_header *h)
{
	const uint8_t *v = buf + h->value.off;

	if (http_span_ieq(buf, h->name, "content-length")) {
		if (++r->n_cl > 1)
			return fail(r, 400, "duplicate Content-Length");
		if (digits_value(v, h->value.len, &r->content_length) < 0)
			return fail(r, 400, "invalid Content-Length");
	} else if (http_span_ieq(buf, h->name, "transfer-encoding")) {
		if (++r->n_te > 1)
			return fail(r, 400, "duplicate Transfer-Encoding");
		if (!http_span_ieq(buf, h->value, "chunked"))
			return fail(r, 400, "Transfer-Encoding other than chunked");
	} else if (http_span_ieq(buf, h->name, "host")) {
		if (++r->n_host > 1)
			return fail(r, 400, "duplicate Host");
		if (!valid_host(v, h->value.len))
			return fail(r, 400, "invalid Host");
	} else if (http_span_ieq(buf, h->name, "connection")) {
		connection_tokens(v, h->value.len, &r->conn_close, &r->conn_keep, &r->conn_upgrade);
	} else if (http_span_ieq(buf, h->name, "upgrade")) {
		r->has_upgrade = 1;
	} else if (http_span_ieq(buf, h->name, "expect")) {
		if (http_span_ieq(buf, h->value, "100-continue"))
			r->expect_continue = 1;
	}
	return 0;
}

static int end_of_head(struct http_req *r, const uint8_t *buf, const struct http_limits *lim)
{
	const struct http_header *host = http_req_header(r, buf, "host");

	if (r->minor == 1 && !host)
		return fail(r, 400, "missing Host");
	if (r->n_te && r->n_cl)
		return fail(r, 400, "both Content-Length and Transfer-Encoding");
	if (r->n_te && r->minor == 0)
		return fail(r, 400, "Transfer-Encoding in HTTP/1.0");
	if (r->absolute) {
		if (host && (host->value.len != r->host.len ||
			     strncasecmp((const char *)buf + host->value.off, (const char *)buf + r->host.off,
					 r->host.len) != 0))
			return fail(r, 400, "absolute-form target does not match Host");
	} else if (host) {
		r->host = host->value;
	}
	if (r->n_te)
		r->framing = HTTP_BODY_CHUNKED;
	else if (r->n_cl && r->content_length > 0)
		r->framing = HTTP_BODY_LENGTH;
	else
		r->framing = HTTP_BODY_NONE;
	r->keep_alive = r->minor == 1 ? !r->conn_close : (r->conn_keep && !r->conn_close);
	r->upgrade = r->conn_upgrade && r->has_upgrade;
	r->head_len = r->pos;
	switch (r->framing) {
	case HTTP_BODY_NONE:
		r->body_buffered = 1;
		r->total = r->head_len;
		r->state = R_DONE;
		return HTTP_DONE;
	case HTTP_BODY_LENGTH:
		if (r->content_length > lim->max_body) {
			r->total = r->head_len;
			r->state = R_DONE;
			return HTTP_DONE;
		}
		r->body_buffered = 1;
		r->body_len = r->content_length;
		r->total = r->head_len + (size_t)r->content_length;
		break;
	default:
		r->body_buffered = 1;
		break;
	}
	r->state = R_BODY;
	return HTTP_NEED_MORE;
}

int http_parse_request(struct http_req *r, const uint8_t *buf, size_t len, const struct http_limits *lim)
{
	size_t max_head = lim && lim->max_head ? lim->max_head : HTTP_MAX_HEAD;
	struct http_limits l0 = { .max_head = max_head, .max_body = lim ? lim->max_body : 0 };
	const char *err = NULL;

	lim = &l0;
	while (r->state == R_LINE || r->state == R_HEADERS) {
		size_t eol;
		int code, rc = next_line(buf, len, r->pos, &r->scan, HTTP_MAX_LINE, max_head, &eol, &err,
					 &code);

		if (rc < 0) {
			char m[96];

			snprintf(m, sizeof(m), "%s in the request head", err);
			return fail(r, code, code == 431 ? (strcmp(err, "line too long") == 0 ? "header line too long" : "request head too large") : m);
		}
		if (rc == 0)
			return HTTP_NEED_MORE;
		if (r->state == R_LINE) {
			if (eol == r->pos)
				return fail(r, 400, "empty request line");
			if (parse_request_line(r, buf, r->pos, eol) < 0)
				return HTTP_ERROR;
			r->state = R_HEADERS;
			r->pos = r->scan;
			continue;
		}
		if (eol == r->pos) {
			r->pos = r->scan;
			if (end_of_head(r, buf, lim) != HTTP_NEED_MORE || r->state != R_BODY)
				return r->state == R_ERROR ? HTTP_ERROR : HTTP_DONE;
			break;
		}
		if (r->n_hdr >= HTTP_MAX_HEADERS)
			return fail(r, 431, "too many header fields");
		if (split_header(buf, r->pos, eol, &r->hdr[r->n_hdr], &err) < 0)
			return fail(r, 400, err);
		if (request_header(r, buf, &r->hdr[r->n_hdr]) < 0)
			return HTTP_ERROR;
		r->n_hdr++;
		r->pos = r->scan;
	}
	if (r->state == R_BODY) {
		if (r->framing == HTTP_BODY_LENGTH) {
			if (len < r->total)
				return HTTP_NEED_MORE;
			r->state = R_DONE;
			return HTTP_DONE;
		}
		/* chunked: pos walks the body */
		while (r->pos < len) {
			size_t used;
			int rc = http_chunked_feed(&r->ck, buf + r->pos, len - r->pos, &used);

			r->pos += used;
			if (rc == HTTP_ERROR)
				return fail(r, 400, r->ck.error);
			/* Too big to hold for review: the caller streams the body. Decided
			 * at the start of a chunk (the feed stops there), whatever the split. */
			if (r->ck.state == CK_DATA &&
			    (r->ck.decoded + r->ck.left > lim->max_body ||
			     r->pos - (r->ck.chunk - r->ck.left) - r->head_len > 4 * lim->max_body + HTTP_MAX_HEAD)) {
				r->body_buffered = 0;
				r->total = r->head_len;
				r->state = R_DONE;
				return HTTP_DONE;
			}
			if (rc == HTTP_DONE) {
				r->body_len = r->ck.decoded;
				r->total = r->pos;
				r->state = R_DONE;
				return HTTP_DONE;
			}
			if (used == 0)
				break;
		}
		return HTTP_NEED_MORE;
	}
	if (r->state == R_DONE)
		return HTTP_DONE;
	return HTTP_ERROR;
}

const struct http_header *http_req_header(const struct http_req *r, const uint8_t *buf, const char *name)
{
	for (size_t i = 0; i < r->n_hdr; i++)
		if (http_span_ieq(buf, r->hdr[i].name, name))
			return &r->hdr[i];
	return NULL;
}

size_t http_req_body(const struct http_req *r, const uint8_t *buf, uint8_t *out, size_t cap)
{
	size_t n = 0, i, end;

	if (!r->body_buffered || r->framing == HTTP_BODY_NONE)
		return 0;
	if (r->framing == HTTP_BODY_LENGTH) {
		n = r->content_length < cap ? (size_t)r->content_length : cap;
		memcpy(out, buf + r->head_len, n);
		return n;
	}
	/* A second pass over framing the first pass validated. */
	i = r->head_len;
	end = r->total;
	while (i < end) {
		uint64_t size = 0;

		while (al_hexdigit(buf[i]) >= 0)
			size = size * 16 + (uint64_t)al_hexdigit(buf[i++]);
		while (buf[i] != '\n')
			i++;
		i++;
		if (size == 0)
			break;
		for (uint64_t k = 0; k < size; k++, i++)
			if (n < cap)
				out[n++] = buf[i];
		i += 2;
	}
	return n;
}

void http_req_chunk_extras(const struct http_req *r, const uint8_t *buf, int *extensions,
			   struct http_span *trailers)
{
	size_t i = r->head_len;

	*extensions = 0;
	*trailers = span(r->total, 0);
	if (!r->body_buffered || r->framing != HTTP_BODY_CHUNKED)
		return;
	/* The framing the parse validated: size [;ext] CRLF, data CRLF, ..., 0 CRLF, trailers, CRLF. */
	while (i < r->total) {
		uint64_t size = 0;

		while (al_hexdigit(buf[i]) >= 0)
			size = size * 16 + (uint64_t)al_hexdigit(buf[i++]);
		if (buf[i] == ';')
			*extensions = 1;
		while (buf[i] != '\n')
			i++;
		i++;
		if (size == 0) {
			*trailers = span(i, r->total - 2 - i);
			return;
		}
		i += (size_t)size + 2;
	}
}

/* ---- response ------------------------------------------------------------------------------ */

void http_resp_init(struct http_resp *r)
{
	memset(r, 0, sizeof(*r));
}

static int rfail(struct http_resp *r, const char *msg)
{
	r->state = R_ERROR;
	r->status = 502;
	snprintf(r->error, sizeof(r->error), "%s", msg);
	return HTTP_ERROR;
}

int http_parse_response(struct http_resp *r, const uint8_t *buf, size_t len, int head)
{
	const char *err = NULL;

	while (r->state == R_LINE || r->state == R_HEADERS) {
		size_t eol;
		int code, rc = next_line(buf, len, r->pos, &r->scan, HTTP_MAX_LINE, HTTP_MAX_HEAD, &eol,
					 &err, &code);

		if (rc < 0)
			return rfail(r, err);
		if (rc == 0)
			return HTTP_NEED_MORE;
		if (r->state == R_LINE) {
			const uint8_t *p = buf + r->pos;
			size_t n = eol - r->pos;

			if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
			    p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
			    p[11] < '0' || p[11] > '9' || (n > 12 && p[12] != ' '))
				return rfail(r, "bad status line");
			for (size_t i = 13; i < n; i++)
				if (!is_field_char(p[i]))
					return rfail(r, "bad status line");
			r->minor = p[7] - '0';
			r->code = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
			r->state = R_HEADERS;
			r->pos = r->scan;
			continue;
		}
		if (eol == r->pos) {
			r->pos = r->scan;
			r->head_len = r->pos;
			if (r->n_te && r->n_cl)
				return rfail(r, "both Content-Length and Transfer-Encoding");
			if (head || (r->code >= 100 && r->code < 200) || r->code == 204 || r->code == 304)
				r->framing = HTTP_BODY_NONE;
			else if (r->n_te)
				r->framing = HTTP_BODY_CHUNKED;
			else if (r->n_cl)
				r->framing = r->content_length ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
			else
				r->framing = HTTP_BODY_CLOSE;
			r->keep_alive = r->framing != HTTP_BODY_CLOSE &&
					(r->minor == 1 ? !r->conn_close : (r->conn_keep && !r->conn_close));
			r->state = R_DONE;
			return HTTP_DONE;
		} else {
			struct http_header h;
			const uint8_t *v;

			if (split_header(buf, r->pos, eol, &h, &err) < 0)
				return rfail(r, err);
			v = buf + h.value.off;
			if (http_span_ieq(buf, h.name, "content-length")) {
				uint64_t cl;

				if (digits_value(v, h.value.len, &cl) < 0 || (r->n_cl && cl != r->content_length))
					return rfail(r, "invalid Content-Length");
				r->n_cl++;
				r->content_length = cl;
			} else if (http_span_ieq(buf, h.name, "transfer-encoding")) {
				if (++r->n_te > 1 || !http_span_ieq(buf, h.value, "chunked"))
					return rfail(r, "Transfer-Encoding other than chunked");
			} else if (http_span_ieq(buf, h.name, "connection")) {
				connection_tokens(v, h.value.len, &r->conn_close, &r->conn_keep, NULL);
			} else if (http_span_ieq(buf, h.name, "sec-websocket-protocol") && !r->ws_protocol.len) {
				r->ws_protocol = h.value;
			} else if (http_span_ieq(buf, h.name, "sec-websocket-extensions")) {
				r->ws_extensions = 1;
			}
		}
		r->pos = r->scan;
	}
	return r->state == R_DONE ? HTTP_DONE : HTTP_ERROR;
}
