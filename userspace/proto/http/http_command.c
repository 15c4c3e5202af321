/* The command an HTTP request yields: method and method overrides, host, path, query, chosen headers, body hash, Kubernetes exec argv, and the reviewers' text: the whole request as it goes upstream. */
#include <airlock/http.h>

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

/* _method=X in an application/x-www-form-urlencoded string (a query, a form body); pairs split
 * at '&' and ';' (older Rack splits at both), names and values percent-decoded. */
static int form_overrides(struct http_command *c, const char *p, size_t n, char *err, size_t errlen)
{
	size_t i = 0;

	while (i < n) {
		size_t s = i, eq;
		char name[16], val[64];

		while (i < n && p[i] != '&' && p[i] != ';')
			i++;
		for (eq = s; eq < i && p[eq] != '='; eq++)
			;
		if (eq < i && http_pct_decode(p + s, eq - s, 1, name, sizeof(name)) == 0 &&
		    strcmp(name, "_method") == 0) {
			if (http_pct_decode(p + eq + 1, i - eq - 1, 1, val, sizeof(val)) < 0)
				return al_errf(err, errlen, "a _method parameter that is not a method");
			if (add_overrides(c, val, strlen(val), err, errlen) < 0)
				return -1;
		}
		i++;
	}
	return 0;
}

static int is_form(const uint8_t *buf, const struct http_req *r)
{
	static const char form[] = "application/x-www-form-urlencoded";
	const struct http_header *h = http_req_header(r, buf, "content-type");
	size_t n = sizeof(form) - 1;

	return h && h->value.len >= n && strncasecmp((const char *)buf + h->value.off, form, n) == 0 &&
	       (h->value.len == n || strchr("; \t", buf[h->value.off + n]));
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
	if (form_overrides(c, c->query, strlen(c->query), err, errlen) < 0)
		return -1;
	if (body && r->body_len && is_form(buf, r) &&
	    form_overrides(c, (const char *)body, (size_t)r->body_len, err, errlen) < 0)
		return -1;
	return 0;
}

/* "POST", or "POST (override DELETE, PUT)". */
static void method_words(struct al_buf *b, const struct http_command *c)
{
	al_buf_str(b, c->method);
	for (size_t i = 0; i < c->n_overrides; i++) {
		al_buf_str(b, i ? ", " : " (override ");
		al_buf_str(b, c->overrides[i]);
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
		al_buf_fmt(b, "<redacted %zu byte%s>", e - s, e - s == 1 ? "" : "s");
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
