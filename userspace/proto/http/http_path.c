/* Request paths: the shapes the parser refuses as ambiguous, and the normal form rules, grants and reviewers see. */
#include <airlock/http.h>

/*
 * Servers disagree on what these name, so no one form of them can be matched for every
 * upstream: a rule on /admin/... must not be steered around by any of them.
 *   '.' and '..' segments (also %2E-encoded): Go's ServeMux and nginx resolve them, express
 *     routes /admin/../public/x to its /admin/:id handlers, and RFC 3986 and path.Clean already differ on
 *     /a//../b (/a/b against /b);
 *   a leading "//": urlsplit-style parsers read //host/forbidden/x as host "host", path
 *     /forbidden/x;
 *   ';': Tomcat, Jetty and Spring drop ";params" from each segment (/forbidden;x/f is
 *     /forbidden/f there), other servers keep it;
 *   '\' and %5C: IIS and Windows file servers take it for '/';
 *   %2F: Go's URL.Path (the Kubernetes API server) and many routers decode it into a
 *     separator, others keep it inside a segment;
 *   %00: C servers end the string there.
 * Real clients send none of these (curl, browsers and urllib3 resolve dot segments first).
 */
const char *http_path_refusal(const uint8_t *p, size_t n)
{
	size_t seg = 0, dots = 0, other = 0;

	if (n >= 2 && p[0] == '/' && p[1] == '/')
		return "a path that starts with '//'";
	for (size_t i = 0; i <= n; i++) {
		int c;

		if (i == n || p[i] == '/') {
			if (i > seg && dots && !other)
				return "a '.' or '..' segment in the path";
			seg = i + 1;
			dots = other = 0;
			continue;
		}
		c = p[i];
		if (c == '\\')
			return "'\\' in the path";
		if (c == ';')
			return "';' (path parameters) in the path";
		if (c == '%') {
			if (i + 2 >= n || al_hexdigit(p[i + 1]) < 0 || al_hexdigit(p[i + 2]) < 0)
				return "bad percent-encoding in the path";
			c = al_hexdigit(p[i + 1]) * 16 + al_hexdigit(p[i + 2]);
			i += 2;
			if (c == '/')
				return "an encoded '/' (%2F) in the path";
			if (c == '\\')
				return "an encoded '\\' (%5C) in the path";
			if (c == 0)
				return "an encoded NUL (%00) in the path";
		}
		if (c == '.' && dots < 2)
			dots++;
		else
			other = 1;
	}
	return NULL;
}

static int unreserved(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '.' || c == '_' || c == '~';
}

size_t http_path_normal(const char *p, size_t n, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (n == 0) {
		out[o++] = '/';
		out[o] = '\0';
		return o;
	}
	for (size_t i = 0; i < n; i++) {
		int h, l;

		if (p[i] == '/' && o && out[o - 1] == '/')
			continue;
		if (p[i] != '%' || i + 2 >= n || (h = al_hexdigit(p[i + 1])) < 0 ||
		    (l = al_hexdigit(p[i + 2])) < 0) {
			out[o++] = p[i];
			continue;
		}
		if (unreserved(h * 16 + l)) {
			out[o++] = (char)(h * 16 + l);
		} else {
			out[o++] = '%';
			out[o++] = hex[h];
			out[o++] = hex[l];
		}
		i += 2;
	}
	out[o] = '\0';
	return o;
}
