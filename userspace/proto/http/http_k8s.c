/* Kubernetes exec, attach and port-forward requests recognised from the path and query; pure. */
#include <airlock/http.h>

#include <stdlib.h>

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

static int truthy(const char *v)
{
	return strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "True") == 0;
}

int http_k8s_parse(const char *path, const char *query, struct http_k8s *k)
{
	static const char prefix[] = "/api/v1/namespaces/";
	const char *p, *seg[4];
	size_t seglen[4], n = 0;
	char val[4096];

	memset(k, 0, sizeof(*k));
	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
		return 0;
	p = path + sizeof(prefix) - 1;
	/* NS / pods / POD / verb */
	while (n < 4) {
		const char *e = strchr(p, '/');

		seg[n] = p;
		seglen[n] = e ? (size_t)(e - p) : strlen(p);
		n++;
		if (!e)
			break;
		p = e + 1;
	}
	if (n != 4 || strchr(seg[3], '/') || seglen[0] == 0 || seglen[2] == 0 ||
	    seglen[1] != 4 || strncmp(seg[1], "pods", 4) != 0)
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
	for (p = query ? query : ""; *p;) {
		const char *amp = strchr(p, '&'), *eq;
		size_t len = amp ? (size_t)(amp - p) : strlen(p);

		eq = memchr(p, '=', len);
		if (eq) {
			size_t klen = (size_t)(eq - p);

			if (http_pct_decode(eq + 1, len - klen - 1, 1, val, sizeof(val)) < 0)
				goto bad;
			if (klen == 7 && strncmp(p, "command", 7) == 0) {
				if (k->argc >= HTTP_K8S_ARGV_MAX || !(k->argv[k->argc] = strdup(val)))
					goto bad;
				k->argc++;
			} else if (klen == 9 && strncmp(p, "container", 9) == 0) {
				if (strlen(val) >= sizeof(k->container))
					goto bad;
				memcpy(k->container, val, strlen(val) + 1);
			} else if (klen == 3 && strncmp(p, "tty", 3) == 0) {
				k->tty = truthy(val);
			} else if (klen == 5 && strncmp(p, "stdin", 5) == 0) {
				k->stdin_ = truthy(val);
			} else if (klen == 5 && strncmp(p, "ports", 5) == 0) {
				size_t o = strlen(k->ports), vl = strlen(val);

				if (o + vl + 2 > sizeof(k->ports))
					goto bad;
				if (o)
					k->ports[o++] = ',';
				memcpy(k->ports + o, val, vl + 1);
			}
		}
		p += len;
		if (*p == '&')
			p++;
	}
	return 1;
bad:
	http_k8s_free(k);
	return -1;
}
