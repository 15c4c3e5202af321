/* Kubernetes exec, attach and port-forward requests recognised from the path and query; pure. */
#include <airlock/http.h>

#include <stdlib.h>
#include <strings.h>

int http_pct_decode(const char *s, size_t n, int plus_space, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%') {
			int h, l;

			if (i + 2 >= n)
				return -1;
			h = al_hexdigit(s[i + 1]);
			l = al_hexdigit(s[i + 2]);
			if (h < 0 || l < 0 || (h | l) == 0)
				return -1;
			c = (char)(h * 16 + l);
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

void http_k8s_free(struct http_k8s *k)
{
	for (size_t i = 0; i < k->argc; i++)
		free(k->argv[i]);
	k->argc = 0;
}

/* A boolean option as the API server converts it (Convert_Slice_string_To_bool): false only
 * for "0" and "false" in any case, true for anything else, "" included. */
static int go_bool(const char *v)
{
	return strcmp(v, "0") != 0 && strcasecmp(v, "false") != 0;
}

/*
 * The query is read as the API server reads it (Go's url.ParseQuery, then the conversion to
 * PodExecOptions): pairs split at '&' only; a pair without '=' is a key with an empty value;
 * keys and values percent-decoded with '+' a space, so %63ommand is command; every command=
 * value is a word of argv in order; container, stdin and tty take their first value. A ';'
 * is refused: Go before 1.17 splits pairs at it, later Go drops the pair holding it.
 */
int http_k8s_parse(const char *path, const char *query, struct http_k8s *k)
{
	static const char prefix[] = "/api/v1/namespaces/";
	const char *p, *seg[4];
	size_t seglen[4], n = 0, qlen;
	int have_container = 0, have_tty = 0, have_stdin = 0;
	char *key = NULL, *val = NULL;

	memset(k, 0, sizeof(*k));
	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
		return 0;
	p = path + sizeof(prefix) - 1;
	/* NS / pods / POD / verb, and a trailing '/' (the API server trims it) */
	while (n < 4) {
		const char *e = strchr(p, '/');

		seg[n] = p;
		seglen[n] = e ? (size_t)(e - p) : strlen(p);
		n++;
		if (!e)
			break;
		p = e + 1;
	}
	if (n != 4 || (seg[3][seglen[3]] == '/' && seg[3][seglen[3] + 1] != '\0') || seglen[0] == 0 ||
	    seglen[2] == 0 || seglen[1] != 4 || strncmp(seg[1], "pods", 4) != 0)
		return 0;
	if (seglen[3] == 4 && strncmp(seg[3], "exec", 4) == 0)
		snprintf(k->verb, sizeof(k->verb), "exec");
	else if (seglen[3] == 6 && strncmp(seg[3], "attach", 6) == 0)
		snprintf(k->verb, sizeof(k->verb), "attach");
	else if (seglen[3] == 11 && strncmp(seg[3], "portforward", 11) == 0)
		snprintf(k->verb, sizeof(k->verb), "portforward");
	else
		return 0;
	if (http_pct_decode(seg[0], seglen[0], 0, k->ns, sizeof(k->ns)) < 0 ||
	    http_pct_decode(seg[2], seglen[2], 0, k->pod, sizeof(k->pod)) < 0)
		goto bad;
	query = query ? query : "";
	qlen = strlen(query);
	if (strchr(query, ';'))
		goto bad;
	key = malloc(qlen + 1);
	val = malloc(qlen + 1);
	if (!key || !val)
		goto bad;
	for (p = query; *p;) {
		const char *amp = strchr(p, '&'), *eq;
		size_t len = amp ? (size_t)(amp - p) : strlen(p), klen;

		eq = memchr(p, '=', len);
		klen = eq ? (size_t)(eq - p) : len;
		if (len && (http_pct_decode(p, klen, 1, key, qlen + 1) < 0 ||
			    http_pct_decode(eq ? eq + 1 : p, eq ? len - klen - 1 : 0, 1, val, qlen + 1) < 0))
			goto bad;
		if (!len) {
			/* an empty pair: nothing */
		} else if (strcmp(key, "command") == 0) {
			if (k->argc >= HTTP_K8S_ARGV_MAX || !(k->argv[k->argc] = strdup(val)))
				goto bad;
			k->argc++;
		} else if (strcmp(key, "container") == 0) {
			if (strlen(val) >= sizeof(k->container))
				goto bad;
			if (!have_container++)
				memcpy(k->container, val, strlen(val) + 1);
		} else if (strcmp(key, "tty") == 0) {
			if (!have_tty++)
				k->tty = go_bool(val);
		} else if (strcmp(key, "stdin") == 0) {
			if (!have_stdin++)
				k->stdin_ = go_bool(val);
		} else if (strcmp(key, "ports") == 0) {
			size_t o = strlen(k->ports), vl = strlen(val);

			if (o + vl + 2 > sizeof(k->ports))
				goto bad;
			if (o)
				k->ports[o++] = ',';
			memcpy(k->ports + o, val, vl + 1);
		}
		p += len;
		if (*p == '&')
			p++;
	}
	free(key);
	free(val);
	return 1;
bad:
	free(key);
	free(val);
	http_k8s_free(k);
	return -1;
}
