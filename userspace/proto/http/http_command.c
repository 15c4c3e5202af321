/* The command an HTTP request yields: method, host, path, query, chosen headers, body hash, Kubernetes exec argv, reviewer text. */
#include <airlock/http.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>

#define BODY_PREVIEW 2048

/* Headers shown to reviewers and kept in the audit (others are not, e.g. cookies), in the
 * order of their names: the audit's JSON lists them so. */
static const char *const chosen[] = {
	"accept", "authorization", "connection", "content-length", "content-type", "expect",
	"sec-websocket-protocol", "transfer-encoding", "upgrade", "user-agent",
	"x-stream-protocol-version",
};
#define N_CHOSEN AL_ARRAY_LEN(chosen)
#define DROPPED_AUTH "(dropped: Airlock sends the resource's credential)"
#define NOT_UTF8 "(not UTF-8)"

/* A chosen header's value as shown: the first one the request sent under that name. */
struct shown {
	const char *p;
	size_t len;
	unsigned int order;     /* its place among the chosen headers the request sent */
};

/* Picks the chosen headers (case-insensitive names, the first of each) into v: how many. */
static unsigned int pick_headers(const uint8_t *buf, const struct http_req *r, struct shown v[N_CHOSEN])
{
	unsigned int n = 0;

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
		} else if (!al_utf8_valid(val, r->hdr[i].value.len) || memchr(val, 0, r->hdr[i].value.len)) {
			v[k].p = NOT_UTF8;
			v[k].len = sizeof(NOT_UTF8) - 1;
		} else {
			v[k].p = (const char *)val;
			v[k].len = r->hdr[i].value.len;
		}
		v[k].order = n++;
	}
	return n;
}

static char *span_dup(const uint8_t *buf, struct http_span sp)
{
	return strndup((const char *)buf + sp.off, sp.len);
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

int http_command_build(const uint8_t *buf, const struct http_req *r, struct http_command *c,
		       char *err, size_t errlen)
{
	struct shown hv[N_CHOSEN];
	struct al_buf text = { 0 }, fp = { 0 }, hj = { 0 };
	char line[256];
	unsigned int n_shown;
	int rc;

	memset(c, 0, sizeof(*c));
	if (r->method.len >= sizeof(c->method))
		goto bad_method;
	memcpy(c->method, buf + r->method.off, r->method.len);
	c->method[r->method.len] = '\0';
	c->host = span_dup(buf, r->host);
	c->path = r->path.len ? span_dup(buf, r->path) : strdup("/");
	c->query = span_dup(buf, r->query);
	if (!c->host || !c->path || !c->query)
		goto oom;
	c->body_buffered = r->body_buffered;
	c->body_len = r->body_buffered ? r->body_len : r->content_length;
	if (al_sha256_hex(buf, r->total, c->request_sha256) < 0)
		goto oom;
	if (r->body_buffered && r->body_len == 0) {
		/* most requests: no body, whose digest is the empty string's */
		memcpy(c->body_sha256, AL_SHA256_EMPTY, sizeof(AL_SHA256_EMPTY));
	} else if (r->body_buffered) {
		uint8_t *body = malloc((size_t)r->body_len);

		if (!body)
			goto oom;
		(void)http_req_body(r, buf, body, (size_t)r->body_len);
		rc = al_sha256_hex(body, (size_t)r->body_len, c->body_sha256);
		free(body);
		if (rc < 0)
			goto oom;
	}
	/* compact JSON, keys sorted */
	n_shown = pick_headers(buf, r, hv);
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
		al_errf(err, errlen, "malformed Kubernetes %s request", "exec");
		http_command_free(c);
		return -1;
	}
	c->is_k8s = rc == 1;
	if (c->is_k8s) {
		snprintf(c->kind, sizeof(c->kind), "%s", c->k8s.verb);
		/* The headline reads like the kubectl command that made it. */
		al_buf_str(&text, "kubectl ");
		al_buf_str(&text, c->k8s.verb);
		al_buf_str(&text, " -n ");
		sb_word(&text, c->k8s.ns);
		al_buf_str(&text, " ");
		sb_word(&text, c->k8s.pod);
		if (c->k8s.container[0]) {
			al_buf_str(&text, " -c ");
			sb_word(&text, c->k8s.container);
		}
		if (c->k8s.ports[0]) {
			al_buf_str(&text, " ");
			sb_word(&text, c->k8s.ports);
		}
		if (c->k8s.argc)
			al_buf_str(&text, " --");
		for (size_t i = 0; i < c->k8s.argc; i++) {
			al_buf_str(&text, " ");
			sb_word(&text, c->k8s.argv[i]);
		}
		al_buf_str(&text, "\n");
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
		al_buf_str(&fp, c->method);
		al_buf_str(&fp, " ");
		al_buf_str(&fp, c->host);
		al_buf_str(&fp, c->path);
	}
	c->fingerprint = fp.p;
	fp.p = NULL;
	/* request line (query kept as sent), chosen headers, body preview */
	al_buf_str(&text, c->method);
	al_buf_str(&text, " https://");
	al_buf_str(&text, c->host);
	al_buf_str(&text, c->path);
	if (*c->query) {
		al_buf_str(&text, "?");
		al_buf_str(&text, c->query);
	}
	al_buf_str(&text, "\n");
	/* the chosen headers in the order the request sent them */
	for (unsigned int o = 0; o < n_shown; o++) {
		for (size_t k = 0; k < N_CHOSEN; k++) {
			if (!hv[k].p || hv[k].order != o)
				continue;
			al_buf_str(&text, chosen[k]);
			al_buf_add(&text, ": ", 2);
			al_buf_add(&text, hv[k].p, hv[k].len);
			al_buf_add(&text, "\n", 1);
		}
	}
	if (r->body_buffered && r->body_len) {
		size_t n = r->body_len < BODY_PREVIEW ? (size_t)r->body_len : BODY_PREVIEW;
		uint8_t *body = malloc((size_t)r->body_len);
		int printable = 1;

		if (!body)
			goto oom;
		(void)http_req_body(r, buf, body, (size_t)r->body_len);
		for (size_t i = 0; i < n; i++)
			if ((body[i] < 0x20 && body[i] != '\n' && body[i] != '\r' && body[i] != '\t') || body[i] == 0x7f)
				printable = 0;
		snprintf(line, sizeof(line), "\nbody: %llu bytes, sha256 %s\n",
			 (unsigned long long)r->body_len, c->body_sha256);
		al_buf_str(&text, line);
		if (printable)
			al_buf_add(&text, (const char *)body, n);
		else
			al_buf_str(&text, "(binary)");
		if (n < r->body_len)
			al_buf_str(&text, "\n...");
		free(body);
	} else if (!r->body_buffered) {
		snprintf(line, sizeof(line), "\nbody: %llu bytes%s, not inspected (over http_max_body)\n",
			 (unsigned long long)r->content_length,
			 r->framing == HTTP_BODY_CHUNKED ? " or more (chunked)" : "");
		al_buf_str(&text, line);
	}
	if (text.oom || fp.oom || !c->fingerprint)
		goto oom;
	c->text = text.p;
	return 0;
bad_method:
	http_command_free(c);
	return al_errf(err, errlen, "method too long");
oom:
	free(text.p);
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
	char *out;

	if (!o)
		return NULL;
	json_object_set_new(o, "method", jstr(c->method));
	json_object_set_new(o, "host", jstr(c->host));
	json_object_set_new(o, "path", jstr(c->path));
	json_object_set_new(o, "query", jstr(c->query));
	json_object_set_new(o, "kind", json_string(c->kind));
	json_object_set_new(o, "headers", hd ? hd : json_object());
	json_object_set_new(o, "body_len", json_integer((json_int_t)c->body_len));
	json_object_set_new(o, "body_buffered", json_boolean(c->body_buffered));
	json_object_set_new(o, "body_sha256", c->body_sha256[0] ? json_string(c->body_sha256) : json_null());
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
