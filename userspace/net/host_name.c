/* Host names from TLS and HTTP, normalised and compared (host_name.h). */
#include "host_name.h"

#include <airlock/config.h>

#include <fnmatch.h>
#include <string.h>
#include <strings.h>

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Copies n bytes of s into out in lower case without one trailing dot; -1 if they do not fit. */
static int copy_name(const char *s, size_t n, char *out, size_t cap)
{
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n + 1 > cap)
		return -1;
	for (size_t i = 0; i < n; i++)
		out[i] = lower(s[i]);
	out[n] = '\0';
	return 0;
}

void host_name_norm(const char *name, char *out, size_t cap)
{
	if (copy_name(name, strlen(name), out, cap) < 0)
		out[0] = '\0';
}

int host_name_of_host(const char *host, size_t len, char *out, size_t cap)
{
	size_t n;

	if (len == 0)
		return -1;
	if (host[0] == '[') {
		const char *end = memchr(host, ']', len);

		if (!end || end == host + 1 || (size_t)(end - host) + 1 > cap)
			return -1;
		n = (size_t)(end - host) - 1;
		for (size_t i = 0; i < n; i++)
			out[i] = lower(host[1 + i]);
		out[n] = '\0';
		return 0;
	}
	for (n = 0; n < len && host[n] != ':'; n++)
		;
	if (n == 0 || (n == 1 && host[0] == '.'))
		return -1;
	return copy_name(host, n, out, cap);
}

int host_named_by(const struct al_resource *r, const char *name)
{
	struct al_addr a;

	if (!name[0])
		return 0;
	for (size_t i = 0; i < r->n_sni; i++)
		if (fnmatch(r->sni[i], name, FNM_CASEFOLD) == 0)
			return 1;
	for (size_t i = 0; i < r->n_hosts; i++) {
		char h[256];

		host_name_norm(r->hosts[i], h, sizeof(h));
		if (strcmp(h, name) == 0)
			return 1;
	}
	if (r->tls_name && strcasecmp(r->tls_name, name) == 0)
		return 1;
	if (al_addr_parse(&a, name) == 0)
		for (size_t i = 0; i < r->n_nets; i++)
			if (al_cidr_contains(&r->nets[i], &a))
				return 1;
	return 0;
}
