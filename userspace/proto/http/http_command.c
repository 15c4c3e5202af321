/* The command an HTTP request yields: method and method overrides, host, path, query, chosen headers, body hash, Kubernetes exec argv, and the reviewers' text: the whole request as it goes upstream. */
#include <airlock/http.h>
#include <airlock/config.h>

#include <jansson.h>
#include <stdlib.h>
#include <strings.h>

/* Headers kept in the audit row (the reviewers' text shows them all; the row does not, e.g.
 * cookies), in the order of their names: the audit's JSON lists them so. */
static const char *const chosen[] = {
	"accept", "authorization", "connection", "content-encoding", "content-length", "content-type",
	"expect", "sec-websocket-protocol", "transfer-encoding", "upgrade", "user-agent",
	"x-http-method", "x-http-method-override", "x-method-override", "x-stream-protocol-version",
};
#define N_CHOSEN AL_ARRAY_LEN(chosen)
#define DROPPED_AUTH "(dropped: Airlock sends the resource's credential)"
#define NOT_UTF8 "(not UTF-8)"

/* Headers with which a client asks the server to run another method than its request line's
 * (Google's and Microsoft's APIs, express method-override, Rack::MethodOverride, ...). */
static const char *const override_headers[] = {
	"x-http-method-override", "x-http-method", "x-method-override",
};

/* A chosen header's value as the audit keeps it: the first one the request sent under that name. */
struct shown {
	const char *p;
	size_t len;
};

/* Picks the chosen headers (case-insensitive names, the first of each) into v. */
static void pick_headers(const uint8_t *buf, const struct http_req *r, struct shown v[N_CHOSEN])
{
	memset(v, 0, N_CHOSEN * sizeof(*v));
	for (size_t i = 0; i < r->n_hdr; i++) {
		const uint8_t *val = buf + r->hdr[i].value.off;
		size_t k;

		for (k = 0; k < N_CHOSEN; k++)
			if (http_span_ieq(buf, r->hdr[i].name, chosen[k]))
				break;
		if (k == N_CHOSEN || v[k].p)
			continue;
		if (strcmp(chosen[k], "authorization") == 0) {
			v[k].p = DROPPED_AUTH;
			v[k].len = sizeof(DROPPED_AUTH) - 1;
		} else if (!al_utf8_valid(val, r->hdr[i].value.len)) {
			v[k].p = NOT_UTF8;
			v[k].len = sizeof(NOT_UTF8) - 1;
		} else {
			v[k].p = (const char *)val;
			v[k].len = r->hdr[i].value.len;
		}
	}
}

static char *span_dup(const uint8_t *buf, struct http_span sp)
{
	return strndup((const char *)buf + sp.off, sp.len);
}

static int is_tchar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Shell-like quoting of one argv word for display. */
static void sb_word(struct al_buf *b, const char *w)
{
	if (*w && strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == strlen(w)) {
		al_buf_str(b, w);
		return;
	}
	al_buf_str(b, "'");
	for (; *w; w++) {
		if (*w == '\'')
			al_buf_str(b, "'\\''");
		else
			al_buf_add(b, w, 1);
	}
	al_buf_str(b, "'");
}

/* ---- method overrides ------------------------------------------------------------------------ */

/* Adds each comma-separated item of v[0..n) as an override: -1 (err) if one is not a method. */
static int add_overrides(struct http_command *c, const char *v, size_t n, char *err, size_t errlen)
{
	size_t i = 0, s, e;

	while (http_list_next((const uint8_t *)v, n, &i, &s, &e)) {
		char m[sizeof(c->overrides[0])];
		size_t k;

		if (e - s >= sizeof(m))
			return al_errf(err, errlen, "a method override longer than %zu characters", sizeof(m) - 1);
		for (k = 0; k < e - s; k++) {
			uint8_t ch = (uint8_t)v[s + k];

			if (!is_tchar(ch))
				return al_errf(err, errlen, "a method override that is not a method token");
			m[k] = (char)(ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A' : ch);
		}
		m[k] = '\0';
		if (strcmp(m, c->method) == 0)
			continue;
		for (k = 0; k < c->n_overrides && strcmp(c->overrides[k], m) != 0; k++)
			;
		if (k < c->n_overrides)
			continue;
		if (c->n_overrides == HTTP_OVERRIDES_MAX)
			return al_errf(err, errlen, "more than %d method overrides", HTTP_OVERRIDES_MAX);
		memcpy(c->overrides[c->n_overrides++], m, strlen(m) + 1);
	}
	return 0;
}

/* The character of a form-encoded string at *i ('+' a space, %XX decoded; a '%' that starts no
 * escape is itself, as PHP reads it), and *i past it. */
static int form_char(const char *p, size_t n, size_t *i)
{
	int h, l;

	if (p[*i] == '+') {
		(*i)++;
		return ' ';
	}
	if (p[*i] != '%' || *i + 2 >= n || (h = al_hexdigit(p[*i + 1])) < 0 || (l = al_hexdigit(p[*i + 2])) < 0)
		return (unsigned char)p[(*i)++];
	*i += 3;
	return h * 16 + l;
}

/*
 * 1 if the field name p[0..n) (form-encoded when form) is one a server reads as _method: PHP
 * (Laravel, Symfony) drops leading spaces and makes a first '.', ' ' or unmatched '[' a '_',
 * so " .method" and "[method" are _method there too.
 */
static int method_name(const char *p, size_t n, int form)
{
	static const char rest[] = "method";
	size_t i = 0;
	int ch;

	do {
		if (i >= n)
			return 0;
		ch = form ? form_char(p, n, &i) : (unsigned char)p[i++];
	} while (ch == ' ');
	if (ch != '_' && ch != '.' && ch != '[')
		return 0;
	for (size_t k = 0; k < sizeof(rest) - 1; k++)
		if (i >= n || (form ? form_char(p, n, &i) : (unsigned char)p[i++]) != rest[k])
			return 0;
	return i == n;
}

/* _method=X in an application/x-www-form-urlencoded string (a query, a form body); pairs split
 * at '&' and ';' (older Rack splits at both), names and values percent-decoded. */
int http_form_overrides(struct http_command *c, const char *p, size_t n, char *err, size_t errlen)
{
	size_t i = 0;

	while (i < n) {
		size_t s = i, eq;
		char val[64];

		while (i < n && p[i] != '&' && p[i] != ';')
			i++;
		for (eq = s; eq < i && p[eq] != '='; eq++)
			;
		if (eq < i && method_name(p + s, eq - s, 1)) {
			if (http_pct_decode(p + eq + 1, i - eq - 1, 1, val, sizeof(val)) < 0)
				return al_errf(err, errlen, "a _method parameter that is not a method");
			if (add_overrides(c, val, strlen(val), err, errlen) < 0)
				return -1;
		}
		i++;
	}
	return 0;
}

/* ---- bodies that may name a method ----------------------------------------------------------- */

enum {
	BODY_FORM = 1,          /* application/x-www-form-urlencoded, or no Content-Type (Rack) */
	BODY_MULTIPART = 2,     /* multipart/...: Rack and PHP read its fields */
	BODY_JSON = 4,          /* a Content-Type holding "/json" or "+json": Laravel reads _method there */
};

/* What the servers that take _method from a body read this one as, over every Content-Type. */
static int body_kinds(const uint8_t *buf, const struct http_req *r)
{
	static const char form[] = "application/x-www-form-urlencoded";
	int kinds = 0, seen = 0;

	for (size_t i = 0; i < r->n_hdr; i++) {
		const char *v = (const char *)buf + r->hdr[i].value.off;
		size_t n = r->hdr[i].value.len, e = 0;

		if (!http_span_ieq(buf, r->hdr[i].name, "content-type"))
			continue;
		seen = 1;
		/* the media type: up to ';' or ',' (Rack splits at both), trimmed */
		while (e < n && v[e] != ';' && v[e] != ',')
			e++;
		while (e && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e == sizeof(form) - 1 && strncasecmp(v, form, e) == 0)
			kinds |= BODY_FORM;
		if (e >= 10 && strncasecmp(v, "multipart/", 10) == 0)
			kinds |= BODY_MULTIPART;
		for (size_t k = 0; k + 5 <= n; k++)
			if ((v[k] == '/' || v[k] == '+') && strncasecmp(v + k + 1, "json", 4) == 0)
				kinds |= BODY_JSON;
	}
	return seen ? kinds : BODY_FORM;
}

static int content_coded(const uint8_t *buf, const struct http_req *r)
{
	for (size_t i = 0; i < r->n_hdr; i++)
		if (http_span_ieq(buf, r->hdr[i].name, "content-encoding") &&
		    !http_span_ieq(buf, r->hdr[i].value, "identity"))
			return 1;
	return 0;
}

static int bchar(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("'()+_-./:=?", ch));
}

/*
 * The boundary of a multipart Content-Type value v[0..n) into out (71 bytes): 0, or -1 when
 * servers could take another: "boundary" there more than once outside the boundary itself
 * (Rack's pattern takes the last "boundary=" in the value, PHP the first "boundary"), a
 * parameter list that does not parse, a
 * boundary of other characters than RFC 2046's less the space and ',' (where Rack's pattern
 * ends it), or longer than 70.
 */
static size_t count_boundary(const char *v, size_t n)
{
	size_t seen = 0;

	for (size_t k = 0; k + 8 <= n; k++)
		seen += strncasecmp(v + k, "boundary", 8) == 0;
	return seen;
}

static int multipart_boundary(const char *v, size_t n, char *out)
{
	size_t i = 0, o = 0;

	while (i < n && v[i] != ';')
		i++;
	while (i < n) {
		size_t ns;
		int quoted, is_b;

		for (i++; i < n && (v[i] == ' ' || v[i] == '\t'); i++)
			;
		for (ns = i; i < n && is_tchar((uint8_t)v[i]); i++)
			;
		is_b = i - ns == 8 && strncasecmp(v + ns, "boundary", 8) == 0;
		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (i == ns || i >= n || v[i] != '=')
			return -1;
		for (i++; i < n && (v[i] == ' ' || v[i] == '\t'); i++)
			;
		quoted = i < n && v[i] == '"';
		i += (size_t)quoted;
		while (i < n && (quoted ? v[i] != '"' : is_tchar((uint8_t)v[i]))) {
			if (is_b && (!bchar(v[i]) || o == 70))
				return -1;
			if (is_b)
				out[o++] = v[i];
			i++;
		}
		if (quoted && i++ >= n)
			return -1;
		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (i < n && v[i] != ';')
			return -1;
	}
	out[o] = '\0';
	/* "boundary" once, besides within the boundary itself */
	return o && count_boundary(v, n) == 1 + count_boundary(out, o) ? 0 : -1;
}

/* A quoted or bare parameter value p[0..n) with leading spaces dropped is [_.[]method, read
 * with its backslashes (PHP unescapes a quoted pair, others keep it): compared both ways. */
static int disposition_value_is_method(const char *p, size_t n)
{
	char plain[16];
	size_t o = 0;

	if (method_name(p, n, 0))
		return 1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\\' && i + 1 < n)
			i++;
		if (o == sizeof(plain))
			return 0;
		if (o || p[i] != ' ')
			plain[o++] = p[i];
	}
	return method_name(plain, o, 0);
}

/*
 * A part's header line p[0..n): 1 if it is a Content-Disposition whose name is _method (as
 * method_name reads names), 0 if not, 2 if that cannot be told: a name*= (RFC 2231) or an
 * encoded word (=?...?=, RFC 2047) some parsers decode, a quote that does not end.
 */
static int disposition_names_method(const char *p, size_t n)
{
	const char *colon = memchr(p, ':', n);
	size_t nl, i, hit = 0;

	if (!colon)
		return 0;
	for (nl = (size_t)(colon - p); nl && (p[nl - 1] == ' ' || p[nl - 1] == '\t'); nl--)
		;
	if (nl != 19 || strncasecmp(p, "content-disposition", 19) != 0)
		return 0;
	i = (size_t)(colon - p) + 1;
	/* the disposition type, then ";" name "=" value items; quotes hide ';' */
	while (i < n) {
		size_t s, e, eq, vs, ve;
		int in_q = 0;

		for (s = i; i < n && (in_q || p[i] != ';'); i++) {
			if (p[i] == '"')
				in_q = !in_q;
			else if (p[i] == '\\' && in_q && i + 1 < n)
				i++;
		}
		if (in_q)
			return 2;
		e = i++;
		for (eq = s; eq < e && p[eq] != '='; eq++)
			;
		if (eq == e)
			continue;
		while (s < eq && (p[s] == ' ' || p[s] == '\t'))
			s++;
		for (nl = eq; nl > s && (p[nl - 1] == ' ' || p[nl - 1] == '\t'); nl--)
			;
		if (nl - s > 4 && strncasecmp(p + s, "name", 4) == 0 && p[nl - 1] == '*')
			return 2;
		if (nl - s != 4 || strncasecmp(p + s, "name", 4) != 0)
			continue;
		for (vs = eq + 1; vs < e && (p[vs] == ' ' || p[vs] == '\t'); vs++)
			;
		for (ve = e; ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'); ve--)
			;
		if (ve - vs >= 2 && p[vs] == '"' && p[ve - 1] == '"')
			vs++, ve--;
		if (memmem(p + vs, ve - vs, "=?", 2))
			return 2;
		hit |= (size_t)disposition_value_is_method(p + vs, ve - vs);
	}
	return hit ? 1 : 0;
}

/* Where the delimiter d[0..dl) next starts a line in body[from..n): its offset, or n. */
static size_t next_delimiter(const char *body, size_t n, size_t from, const char *d, size_t dl)
{
	while (from < n) {
		const char *hit = memmem(body + from, n - from, d, dl);
		size_t at;

		if (!hit)
			break;
		at = (size_t)(hit - body);
		if (at == 0 || body[at - 1] == '\n' || body[at - 1] == '\r')
			return at;
		from = at + 1;
	}
	return n;
}

#define PART_HEAD_MAX 8192

/*
 * The fields called _method of a multipart body: each value is an override. Parts are found
 * liberally (a delimiter at the start of any line, LF or CRLF, the preamble and epilogue
 * too): a part some parser sees is seen here. 0; 1 when the body cannot be read for them (no
 * part, a part's head that does not end or is folded, a name that cannot be told); -1 with err
 * for a value that is not a method.
 */
static int multipart_overrides(struct http_command *c, const char *body, size_t n, const char *boundary,
			       char *err, size_t errlen)
{
	char d[80];
	size_t dl = (size_t)snprintf(d, sizeof(d), "--%s", boundary), at = 0, parts = 0;

	while ((at = next_delimiter(body, n, at, d, dl)) < n) {
		size_t i = at + dl, head, vs, ve;
		int named = 0;

		at = i;
		if (i + 2 <= n && body[i] == '-' && body[i + 1] == '-')
			continue;
		while (i < n && (body[i] == ' ' || body[i] == '\t'))
			i++;
		if (i < n && body[i] == '\r')
			i++;
		if (i >= n || body[i] != '\n')
			continue;
		head = ++i;
		parts++;
		for (;;) {
			const char *eol = memchr(body + i, '\n', n - i);
			size_t le;
			int rc;

			if (!eol || (size_t)(eol - body) - head > PART_HEAD_MAX)
				return 1;
			le = (size_t)(eol - body);
			if (le > i && body[le - 1] == '\r')
				le--;
			if (le == i) {
				i = (size_t)(eol - body) + 1;
				break;
			}
			if (body[i] == ' ' || body[i] == '\t')
				return 1;
			rc = disposition_names_method(body + i, le - i);
			if (rc == 2)
				return 1;
			named |= rc;
			i = (size_t)(eol - body) + 1;
		}
		if (!named)
			continue;
		vs = i;
		ve = next_delimiter(body, n, vs, d, dl);
		if (ve == n)
			return 1;
		if (ve > vs && body[ve - 1] == '\n')
			ve--;
		if (ve > vs && body[ve - 1] == '\r')
			ve--;
		if (add_overrides(c, body + vs, ve - vs, err, errlen) < 0)
			return -1;
	}
	return parts ? 0 : 1;
}

/* A top-level "_method" of a JSON body (Laravel takes it): 0; 1 when the body cannot be read
 * for it (not JSON to jansson, a key given twice, a _method that is not a string); -1 with
 * err for a value that is not a method. Only a body holding "_method" or a \u escape (which
 * could spell it) is parsed. */
static int json_overrides(struct http_command *c, const char *body, size_t n, char *err, size_t errlen)
{
	json_error_t je;
	json_t *o, *v;
	int rc = 0;

	if (!memmem(body, n, "_method", 7) && !memmem(body, n, "\\u", 2))
		return 0;
	o = json_loadb(body, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!o)
		return 1;
	v = json_is_object(o) ? json_object_get(o, "_method") : NULL;
	if (v && !json_is_string(v))
		rc = 1;
	else if (v && add_overrides(c, json_string_value(v), json_string_length(v), err, errlen) < 0)
		rc = -1;
	json_decref(o);
	return rc;
}

/*
 * The overrides a body names: a form's, a multipart body's or a JSON body's _method. A POST
 * (the method Rack, Symfony and express honour a body's _method on) whose body may name one
 * Airlock cannot read (not held: over http_max_body; content-coded; a multipart or JSON body
 * that does not parse) gets the override AL_METHOD_ANY: rules decide it as every method.
 */
static int body_overrides(const uint8_t *buf, const struct http_req *r, const uint8_t *body,
			  struct http_command *c, char *err, size_t errlen)
{
	int kinds = body_kinds(buf, r), unread = 0, rc;
	const char *b = (const char *)body;
	size_t n = (size_t)r->body_len;

	if (!kinds)
		return 0;
	if (!r->body_buffered || (n && content_coded(buf, r))) {
		unread = 1;
	} else if (n) {
		if ((kinds & BODY_FORM) && http_form_overrides(c, b, n, err, errlen) < 0)
			return -1;
		for (size_t i = 0; (kinds & BODY_MULTIPART) && i < r->n_hdr; i++) {
			char boundary[72];
			const struct http_header *h = &r->hdr[i];

			if (!http_span_ieq(buf, h->name, "content-type") || h->value.len < 10 ||
			    strncasecmp((const char *)buf + h->value.off, "multipart/", 10) != 0)
				continue;
			if (multipart_boundary((const char *)buf + h->value.off, h->value.len, boundary) < 0) {
				unread = 1;
				continue;
			}
			rc = multipart_overrides(c, b, n, boundary, err, errlen);
			if (rc < 0)
				return -1;
			unread |= rc;
		}
		if (kinds & BODY_JSON) {
			rc = json_overrides(c, b, n, err, errlen);
			if (rc < 0)
				return -1;
			unread |= rc;
		}
	}
	if (unread && strcmp(c->method, "POST") == 0)
		return add_overrides(c, AL_METHOD_ANY, strlen(AL_METHOD_ANY), err, errlen);
	return 0;
}

static int find_overrides(const uint8_t *buf, const struct http_req *r, const uint8_t *body,
			  struct http_command *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < r->n_hdr; i++)
		for (size_t k = 0; k < AL_ARRAY_LEN(override_headers); k++)
			if (http_span_ieq(buf, r->hdr[i].name, override_headers[k]) &&
			    add_overrides(c, (const char *)buf + r->hdr[i].value.off, r->hdr[i].value.len,
					  err, errlen) < 0)
				return -1;
	if (http_form_overrides(c, c->query, strlen(c->query), err, errlen) < 0)
		return -1;
	return body_overrides(buf, r, body, c, err, errlen);
}

/* "POST", or "POST (override DELETE, PUT)". */
static void method_words(struct al_buf *b, const struct http_command *c)
{
	al_buf_str(b, c->method);
	for (size_t i = 0; i < c->n_overrides; i++) {
		al_buf_str(b, i ? ", " : " (override ");
		al_buf_str(b, strcmp(c->overrides[i], AL_METHOD_ANY) == 0 ? "any method" : c->overrides[i]);
	}
	if (c->n_overrides)
		al_buf_str(b, ")");
}

/* ---- the reviewers' text ---------------------------------------------------------------------- */

static void hex(struct al_buf *b, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		char two[2] = { digits[p[i] >> 4], digits[p[i] & 15] };

		al_buf_add(b, two, 2);
	}
}

/* A field value as it is, or in hex if it is not UTF-8 (field values hold no NUL or line end). */
static void show_value(struct al_buf *b, const uint8_t *v, size_t n)
{
	if (al_utf8_valid(v, n)) {
		al_buf_add(b, v, n);
		return;
	}
	al_buf_fmt(b, "(not UTF-8, %zu bytes in hex: ", n);
	hex(b, v, n);
	al_buf_str(b, ")");
}

/* The agent's own credential (no resource credential replaces it): its scheme, not its secret. */
static void show_agent_credential(struct al_buf *b, const uint8_t *v, size_t n)
{
	size_t k = 0;

	while (k < n && k < 32 && is_tchar(v[k]))
		k++;
	if (k && k < n && v[k] == ' ')
		al_buf_add(b, v, k + 1);
	al_buf_fmt(b, "<the agent's credential, %zu bytes, not shown>", n);
}

/* A secret's place: its length, never its bytes. */
static void show_redacted(struct al_buf *b, size_t n)
{
	al_buf_fmt(b, "<redacted %zu byte%s>", n, n == 1 ? "" : "s");
}

/* Names of credential-bearing headers that secret_header's shapes miss. */
static const char *const secret_names[] = { "apikey", "x-apikey" };
/* The last word of a credential-bearing header's name (after '-' or '_', or the whole name). */
static const char *const secret_words[] = { "token", "key", "secret", "password", "passwd" };

/*
 * 1 if a header (by its name, without case) carries a credential the agent sends itself: an API
 * key, a token, a password. By shape: a name ending in -Token, -Key, -Secret or -Password (or _
 * for -), or holding "auth" anywhere (X-Auth-Token, Proxy-Authorization, X-Authentication); so
 * X-Api-Key, Api-Key, X-Access-Token, X-Amz-Security-Token and X-Goog-Api-Key are. Reviewers
 * read such a value's length only; it still goes upstream as sent, and the request's sha256
 * is still over the exact bytes.
 */
static int secret_header(const uint8_t *buf, struct http_span name)
{
	const char *n = (const char *)buf + name.off;
	size_t len = name.len;

	for (size_t i = 0; i < AL_ARRAY_LEN(secret_names); i++)
		if (http_span_ieq(buf, name, secret_names[i]))
			return 1;
	for (size_t i = 0; i + 4 <= len; i++)
		if (strncasecmp(n + i, "auth", 4) == 0)
			return 1;
	for (size_t i = 0; i < AL_ARRAY_LEN(secret_words); i++) {
		size_t k = strlen(secret_words[i]);

		if (len >= k && strncasecmp(n + len - k, secret_words[i], k) == 0 &&
		    (len == k || n[len - k - 1] == '-' || n[len - k - 1] == '_'))
			return 1;
	}
	return 0;
}

/* The agent's cookies (its sessions' secrets): each one's name, and its value's length. */
static void show_cookies(struct al_buf *b, const uint8_t *v, size_t n)
{
	size_t i = 0, shown = 0;

	while (i < n) {
		size_t s = i, e;
		const uint8_t *eq;

		while (i < n && v[i] != ';')
			i++;
		for (e = i++; s < e && (v[s] == ' ' || v[s] == '\t'); s++)
			;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (s == e)
			continue;
		al_buf_str(b, shown++ ? "; " : "");
		eq = memchr(v + s, '=', e - s);
		if (eq) {
			show_value(b, v + s, (size_t)(eq - (v + s)));
			al_buf_str(b, "=");
			s = (size_t)(eq - v) + 1;
		}
		show_redacted(b, e - s);
	}
}

/* One field line, "Name: value" (name as sent). */
static void show_field(struct al_buf *b, const uint8_t *buf, const struct http_header *h)
{
	al_buf_add(b, buf + h->name.off, h->name.len);
	al_buf_add(b, ": ", 2);
	if (http_span_ieq(buf, h->name, "authorization") || http_span_ieq(buf, h->name, "proxy-authorization"))
		show_agent_credential(b, buf + h->value.off, h->value.len);
	else if (http_span_ieq(buf, h->name, "cookie"))
		show_cookies(b, buf + h->value.off, h->value.len);
	else if (secret_header(buf, h->name))
		show_redacted(b, h->value.len);
	else
		show_value(b, buf + h->value.off, h->value.len);
	al_buf_add(b, "\n", 1);
}

/* Why reviewers could not read the buffered body[0..n): "" when they can. */
static void body_readable(const uint8_t *buf, const struct http_req *r, const uint8_t *body, size_t n,
			  int extensions, char *why, size_t len)
{
	why[0] = '\0';
	for (size_t i = 0; i < r->n_hdr; i++)
		if (http_span_ieq(buf, r->hdr[i].name, "content-encoding") &&
		    !http_span_ieq(buf, r->hdr[i].value, "identity")) {
			snprintf(why, len, "content-coded (Content-Encoding): the server decodes it");
			return;
		}
	if (extensions)
		snprintf(why, len, "its chunks carry extensions");
	else if (memchr(body, 0, n))
		snprintf(why, len, "it holds NUL bytes (binary)");
	else if (!al_utf8_valid(body, n))
		snprintf(why, len, "it is not UTF-8 text (binary)");
}

/* The body as the server reads it: in place, or decoded from its chunks into *decoded (free it);
 * NULL when it was not held. -1: out of memory. */
static int body_of(const uint8_t *buf, const struct http_req *r, const uint8_t **body, uint8_t **decoded)
{
	*body = NULL;
	*decoded = NULL;
	if (!r->body_buffered)
		return 0;
	if (r->framing == HTTP_BODY_CHUNKED && r->body_len) {
		if (!(*decoded = malloc((size_t)r->body_len)))
			return -1;
		(void)http_req_body(r, buf, *decoded, (size_t)r->body_len);
		*body = *decoded;
		return 0;
	}
	*body = buf + r->head_len;
	return 0;
}

/* The headline: what the request does, in a line (a Kubernetes stream's reads like the kubectl
 * command that made it, and its recording is named by it). */
static void headline(struct al_buf *text, const struct http_command *c)
{
	if (c->is_k8s) {
		al_buf_str(text, "kubectl ");
		al_buf_str(text, c->k8s.verb);
		al_buf_str(text, " -n ");
		sb_word(text, c->k8s.ns);
		al_buf_str(text, " ");
		sb_word(text, c->k8s.pod);
		if (c->k8s.container[0]) {
			al_buf_str(text, " -c ");
			sb_word(text, c->k8s.container);
		}
		if (c->k8s.ports[0]) {
			al_buf_str(text, " ");
			sb_word(text, c->k8s.ports);
		}
		if (c->k8s.argc)
			al_buf_str(text, " --");
		for (size_t i = 0; i < c->k8s.argc; i++) {
			al_buf_str(text, " ");
			sb_word(text, c->k8s.argv[i]);
		}
		al_buf_str(text, "\n");
	}
	method_words(text, c);
	al_buf_str(text, " https://");
	al_buf_str(text, c->host);
	al_buf_str(text, c->path);
	if (*c->query) {
		al_buf_str(text, "?");
		al_buf_str(text, c->query);
	}
	al_buf_str(text, "\n");
}

int http_command_text(const uint8_t *buf, const struct http_req *r, const struct http_cred *cred,
		      struct http_command *c)
{
	struct al_buf text = { 0 };
	struct http_span trailers;
	const uint8_t *body;
	uint8_t *decoded;
	int extensions;

	free(c->text);
	c->text = NULL;
	c->body_unreadable[0] = '\0';
	if (body_of(buf, r, &body, &decoded) < 0)
		return -1;
	http_req_chunk_extras(r, buf, &extensions, &trailers);
	if (body && (r->body_len || extensions))
		body_readable(buf, r, body, (size_t)r->body_len, extensions, c->body_unreadable,
			      sizeof(c->body_unreadable));
	headline(&text, c);
	/* the head as it goes upstream: the request line through its " HTTP/1.x" (ASCII, the
	 * parser saw to it), the fields not dropped in their order, then the credential's, where
	 * the proxy adds it */
	al_buf_add(&text, buf, r->target.off + r->target.len + 9);
	al_buf_add(&text, "\n", 1);
	for (size_t i = 0; i < r->n_hdr; i++)
		if (!http_forward_drops(buf, r, c, cred, &r->hdr[i]))
			show_field(&text, buf, &r->hdr[i]);
	if (cred && cred->name) {
		al_buf_add(&text, cred->name, cred->len);
		al_buf_str(&text, ": <resource credential>\n");
	}
	if (!r->body_buffered) {
		al_buf_fmt(&text, "\nbody: %llu bytes%s, not inspected (over http_max_body)\n",
			   (unsigned long long)r->content_length,
			   r->framing == HTTP_BODY_CHUNKED ? " or more (chunked)" : "");
	} else if (r->body_len || c->body_unreadable[0]) {
		al_buf_fmt(&text, "\nbody: %llu bytes, sha256 %s", (unsigned long long)r->body_len, c->body_sha256);
		if (c->body_unreadable[0]) {
			al_buf_fmt(&text, ", not shown: %s\n", c->body_unreadable);
		} else {
			al_buf_add(&text, "\n", 1);
			al_buf_add(&text, body, (size_t)r->body_len);
		}
	}
	free(decoded);
	if (trailers.len) {
		const uint8_t *p = buf + trailers.off, *end = p + trailers.len;

		al_buf_str(&text, "\ntrailer fields (after the body):\n");
		/* name ":" OWS value OWS CRLF, each validated by the parse */
		while (p < end) {
			const uint8_t *eol = memchr(p, '\r', (size_t)(end - p));
			const uint8_t *colon = memchr(p, ':', (size_t)(eol - p));
			struct http_header h = { .name = { (uint32_t)(p - buf), (uint32_t)(colon - p) } };
			const uint8_t *vs = colon + 1, *ve = eol;

			while (vs < ve && (*vs == ' ' || *vs == '\t'))
				vs++;
			while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			h.value.off = (uint32_t)(vs - buf);
			h.value.len = (uint32_t)(ve - vs);
			show_field(&text, buf, &h);
			p = eol + 2;
		}
	}
	if (text.oom) {
		free(text.p);
		return -1;
	}
	c->text = text.p;
	return 0;
}

/* ---- the command ------------------------------------------------------------------------------ */

int http_forward_drops(const uint8_t *buf, const struct http_req *r, const struct http_command *c,
		       const struct http_cred *cred, const struct http_header *h)
{
	if (cred && cred->name &&
	    (http_span_ieq(buf, h->name, "authorization") || http_span_ieq(buf, h->name, "proxy-authorization") ||
	     (h->name.len == cred->len && strncasecmp((const char *)buf + h->name.off, cred->name, cred->len) == 0)))
		return 1;
	return r->upgrade && c->is_k8s && http_span_ieq(buf, h->name, "sec-websocket-extensions");
}

int http_command_build(const uint8_t *buf, const struct http_req *r, struct http_command *c,
		       char *err, size_t errlen)
{
	if (http_command_parse(buf, r, c, err, errlen) < 0)
		return -1;
	if (http_command_text(buf, r, NULL, c) < 0) {
		http_command_free(c);
		return al_errf(err, errlen, "out of memory");
	}
	return 0;
}

int http_command_parse(const uint8_t *buf, const struct http_req *r, struct http_command *c,
		       char *err, size_t errlen)
{
	struct shown hv[N_CHOSEN];
	struct al_buf fp = { 0 }, hj = { 0 };
	uint8_t *decoded = NULL;
	const uint8_t *body;
	int rc;

	memset(c, 0, sizeof(*c));
	if (r->method.len >= sizeof(c->method)) {
		http_command_free(c);
		return al_errf(err, errlen, "method too long");
	}
	memcpy(c->method, buf + r->method.off, r->method.len);
	c->method[r->method.len] = '\0';
	c->host = span_dup(buf, r->host);
	c->path = malloc((size_t)r->path.len + 2);
	if (c->path)
		(void)http_path_normal((const char *)buf + r->path.off, r->path.len, c->path);
	c->query = span_dup(buf, r->query);
	if (!c->host || !c->path || !c->query)
		goto oom;
	c->body_buffered = r->body_buffered;
	c->body_len = r->body_buffered ? r->body_len : r->content_length;
	if (al_sha256_hex(buf, r->total, c->request_sha256) < 0 || body_of(buf, r, &body, &decoded) < 0)
		goto oom;
	if (body && r->body_len == 0)
		memcpy(c->body_sha256, AL_SHA256_EMPTY, sizeof(AL_SHA256_EMPTY)); /* most requests */
	else if (body && al_sha256_hex(body, (size_t)r->body_len, c->body_sha256) < 0)
		goto oom;
	rc = find_overrides(buf, r, body, c, err, errlen);
	free(decoded);
	decoded = NULL;
	if (rc < 0) {
		http_command_free(c);
		return -1;
	}
	/* compact JSON, keys sorted */
	pick_headers(buf, r, hv);
	al_buf_add(&hj, "{", 1);
	for (size_t k = 0, n = 0; k < N_CHOSEN; k++) {
		if (!hv[k].p)
			continue;
		al_buf_add(&hj, ",", n++ > 0);
		al_buf_json_str(&hj, chosen[k], strlen(chosen[k]));
		al_buf_add(&hj, ":", 1);
		al_buf_json_str(&hj, hv[k].p, hv[k].len);
	}
	al_buf_add(&hj, "}", 1);
	if (hj.oom)
		goto oom;
	c->headers_json = hj.p;
	hj.p = NULL;

	rc = http_k8s_parse(c->path, c->query, &c->k8s);
	if (rc < 0) {
		http_command_free(c);
		return al_errf(err, errlen, "malformed Kubernetes %s request", "exec");
	}
	c->is_k8s = rc == 1;
	if (c->is_k8s) {
		snprintf(c->kind, sizeof(c->kind), "%s", c->k8s.verb);
		al_buf_str(&fp, c->k8s.verb);
		al_buf_str(&fp, " ");
		al_buf_str(&fp, c->k8s.ns);
		al_buf_str(&fp, "/");
		al_buf_str(&fp, c->k8s.pod);
		al_buf_str(&fp, "/");
		al_buf_str(&fp, c->k8s.container);
		for (size_t i = 0; i < c->k8s.argc; i++) {
			al_buf_str(&fp, " ");
			sb_word(&fp, c->k8s.argv[i]);
		}
	} else {
		size_t i;

		for (i = 0; c->method[i] && i + 1 < sizeof(c->kind); i++)
			c->kind[i] = (char)(c->method[i] >= 'A' && c->method[i] <= 'Z' ? c->method[i] - 'A' + 'a'
										     : c->method[i]);
		c->kind[i] = '\0';
		/* A grant for a POST does not cover a POST that asks to be run as a DELETE. */
		method_words(&fp, c);
		al_buf_str(&fp, " ");
		al_buf_str(&fp, c->host);
		al_buf_str(&fp, c->path);
	}
	if (fp.oom)
		goto oom;
	c->fingerprint = fp.p;
	return 0;
oom:
	free(decoded);
	free(fp.p);
	free(hj.p);
	http_command_free(c);
	return al_errf(err, errlen, "out of memory");
}

void http_command_free(struct http_command *c)
{
	free(c->host);
	free(c->path);
	free(c->query);
	free(c->headers_json);
	free(c->fingerprint);
	free(c->text);
	http_k8s_free(&c->k8s);
	memset(c, 0, sizeof(*c));
}

/* Agent-supplied text need not be UTF-8: such strings are marked, not dropped silently. */
static json_t *jstr(const char *s)
{
	json_t *v = json_string(s ? s : "");

	return v ? v : json_string("(not UTF-8)");
}

char *http_command_json(const struct http_command *c)
{
	json_t *o = json_object(), *hd = json_loads(c->headers_json ? c->headers_json : "{}", 0, NULL);
	json_t *ov = json_array();
	char *out;

	if (!o || !ov) {
		json_decref(o);
		json_decref(ov);
		json_decref(hd);
		return NULL;
	}
	for (size_t i = 0; i < c->n_overrides; i++)
		json_array_append_new(ov, json_string(c->overrides[i]));
	json_object_set_new(o, "method", jstr(c->method));
	json_object_set_new(o, "method_overrides", ov);
	json_object_set_new(o, "host", jstr(c->host));
	json_object_set_new(o, "path", jstr(c->path));
	json_object_set_new(o, "query", jstr(c->query));
	json_object_set_new(o, "kind", json_string(c->kind));
	json_object_set_new(o, "headers", hd ? hd : json_object());
	json_object_set_new(o, "body_len", json_integer((json_int_t)c->body_len));
	json_object_set_new(o, "body_buffered", json_boolean(c->body_buffered));
	json_object_set_new(o, "body_sha256", c->body_sha256[0] ? json_string(c->body_sha256) : json_null());
	json_object_set_new(o, "body_unreadable", c->body_unreadable[0] ? json_string(c->body_unreadable)
									 : json_null());
	json_object_set_new(o, "request_sha256", json_string(c->request_sha256));
	json_object_set_new(o, "fingerprint", jstr(c->fingerprint));
	if (c->is_k8s) {
		json_t *k = json_object(), *argv = json_array();

		for (size_t i = 0; i < c->k8s.argc; i++)
			json_array_append_new(argv, jstr(c->k8s.argv[i]));
		json_object_set_new(k, "verb", json_string(c->k8s.verb));
		json_object_set_new(k, "namespace", jstr(c->k8s.ns));
		json_object_set_new(k, "pod", jstr(c->k8s.pod));
		json_object_set_new(k, "container", jstr(c->k8s.container));
		json_object_set_new(k, "argv", argv);
		if (c->k8s.ports[0])
			json_object_set_new(k, "ports", jstr(c->k8s.ports));
		json_object_set_new(k, "tty", json_boolean(c->k8s.tty));
		json_object_set_new(k, "stdin", json_boolean(c->k8s.stdin_));
		json_object_set_new(o, "kubernetes", k);
	}
	json_object_set_new(o, "text", jstr(c->text));
	out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return out;
}
