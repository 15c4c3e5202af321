/* The secrets file: ownership/mode checks, a line parser with "source:line:" errors, and wiping. */
#include <airlock/secrets.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define MAX_FILE_SIZE	(1024 * 1024)
#define NAME_MAX_LEN	63

struct parser {
	const char *source;
	int line;
	char *err;
	size_t errlen;
	struct al_secrets *s;
	int *lines;		/* line each credential was defined on, parallel to s->v */
	size_t cap;
};

static int fail(struct parser *ps, const char *fmt, ...) AL_PRINTF(2, 3);

static int fail(struct parser *ps, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return al_errf(ps->err, ps->errlen, "%s:%d: %s", ps->source, ps->line, msg);
}

static void wipe_str(char *p)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, strlen(p));
	free(p);
}

static void secret_clear(struct al_secret *e)
{
	wipe_str(e->user);
	wipe_str(e->password);
	wipe_str(e->sslcert);
	wipe_str(e->sslkey);
	wipe_str(e->header);
	wipe_str(e->bearer);
	memset(e, 0, sizeof(*e));
}

void secrets_free(struct al_secrets *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->n; i++)
		secret_clear(&s->v[i]);
	free(s->v);
	free(s);
}

const struct al_secret *secrets_find(const struct al_secrets *s, const char *name)
{
	size_t i;

	if (!s || !name)
		return NULL;
	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i].name, name) == 0)
			return &s->v[i];
	return NULL;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* Word boundaries: a word ends at a space or the end of the line. */
static const char *word_end(const char *p, const char *e)
{
	while (p < e && !is_space(*p))
		p++;
	return p;
}

/* A header value: no control characters (so it cannot end the line early). */
static int header_ok_value(const char *v)
{
	for (; *v; v++)
		if (((unsigned char)*v < 0x20 && *v != '\t') || *v == 0x7f)
			return 0;
	return 1;
}

/* "Name: value" with a token name. */
static int header_ok(const char *h)
{
	const char *colon = strchr(h, ':');
	size_t n = colon ? (size_t)(colon - h) : 0;

	if (n == 0 || strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~") != n)
		return 0;
	return header_ok_value(colon + 1) && colon[1 + strspn(colon + 1, " \t")] != '\0';
}

static const char *const keys[] = { "user", "password", "sslcert", "sslkey", "header", "bearer" };

static char **key_slot(struct al_secret *e, size_t k)
{
	switch (k) {
	case 0: return &e->user;
	case 1: return &e->password;
	case 2: return &e->sslcert;
	case 3: return &e->sslkey;
	case 4: return &e->header;
	default: return &e->bearer;
	}
}

/*
 * Reads one value starting at *pp (just after '='), quoted or bare, into a new string.
 * Errors never include the value: it may be a password.
 */
static int read_value(struct parser *ps, const char *key, const char **pp, const char *e,
		      char **out)
{
	const char *p = *pp;
	char *v, *w;
	int rc = -1;

	*out = NULL;
	v = malloc((size_t)(e - p) + 1);
	if (!v)
		return fail(ps, "out of memory");
	w = v;
	if (p < e && *p == '"') {
		for (p++;; p++) {
			if (p == e) {
				fail(ps, "unterminated quoted value for '%s'", key);
				goto out;
			}
			if (*p == '"')
				break;
			if (*p == '\\') {
				if (p + 1 == e) {
					fail(ps, "unterminated quoted value for '%s'", key);
					goto out;
				}
				if (p[1] != '"' && p[1] != '\\') {
					fail(ps, "bad escape in quoted value for '%s' "
						 "(only \\\" and \\\\ are allowed)", key);
					goto out;
				}
				p++;
			}
			*w++ = *p;
		}
		p++;
		if (p < e && !is_space(*p) && *p != '#') {
			fail(ps, "quoted value for '%s' must be followed by a space", key);
			goto out;
		}
	} else {
		for (; p < e && !is_space(*p); p++) {
			if (*p == '#' || *p == '"') {
				fail(ps, "'%c' inside the unquoted value for '%s'; quote the value",
				     *p, key);
				goto out;
			}
			*w++ = *p;
		}
	}
	*w = '\0';
	if (w == v) {
		fail(ps, "empty value for '%s'", key);
		goto out;
	}
	*pp = p;
	*out = v;
	v = NULL;
	rc = 0;
out:
	if (v) {
		OPENSSL_cleanse(v, (size_t)(e - *pp) + 1);
		free(v);
	}
	return rc;
}

/* The key of a key=value word, quoted back only if it cannot be part of a secret. */
static int bad_key(struct parser *ps, const char *k, size_t n)
{
	size_t i;

	for (i = 0; i < n && n <= 32; i++)
		if (!is_name_char(k[i]))
			break;
	if (n == 0 || i < n)
		return fail(ps, "unknown key (expected user, password, sslcert, sslkey, header or bearer)");
	return fail(ps, "unknown key '%.*s' (expected user, password, sslcert, sslkey, header or bearer)",
		    (int)n, k);
}

static int add_secret(struct parser *ps, struct al_secret *e)
{
	if (ps->s->n == ps->cap) {
		size_t ncap = ps->cap ? 2 * ps->cap : 8;
		struct al_secret *nv;
		int *nl;

		nv = realloc(ps->s->v, ncap * sizeof(*nv));
		if (!nv)
			return fail(ps, "out of memory");
		ps->s->v = nv;
		nl = realloc(ps->lines, ncap * sizeof(*nl));
		if (!nl)
			return fail(ps, "out of memory");
		ps->lines = nl;
		ps->cap = ncap;
	}
	ps->lines[ps->s->n] = ps->line;
	ps->s->v[ps->s->n++] = *e;
	memset(e, 0, sizeof(*e));
	return 0;
}

/* One line [p, e) without its newline. */
static int parse_line(struct parser *ps, const char *p, const char *e)
{
	struct al_secret cur = { 0 };
	const char *q;
	size_t i, n;
	int rc = -1;

	for (q = p; q < e; q++) {
		unsigned char c = (unsigned char)*q;

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			fail(ps, "control character (byte 0x%02x)", c);
			goto out;
		}
	}
	while (p < e && is_space(*p))
		p++;
	if (p == e || *p == '#')
		return 0;

	q = word_end(p, e);
	n = (size_t)(q - p);
	for (i = 0; i < n; i++)
		if (!is_name_char(p[i]))
			break;
	if (i < n || n > NAME_MAX_LEN) {
		/* Not echoed: a misplaced "password=..." must not end up in a log. */
		if (memchr(p, '=', n))
			fail(ps, "a line must start with a credential name, not key=value");
		else
			fail(ps, "invalid credential name (1-%d characters of A-Z a-z 0-9 . _ -)",
			     NAME_MAX_LEN);
		goto out;
	}
	memcpy(cur.name, p, n);
	cur.name[n] = '\0';
	for (i = 0; i < ps->s->n; i++) {
		if (strcmp(ps->s->v[i].name, cur.name) == 0) {
			fail(ps, "duplicate credential '%s' (first on line %d)", cur.name,
			     ps->lines[i]);
			goto out;
		}
	}
	p = q;

	for (;;) {
		const char *k;
		char **slot;
		size_t kn;

		while (p < e && is_space(*p))
			p++;
		if (p == e || *p == '#')
			break;
		k = p;
		while (p < e && !is_space(*p) && *p != '=')
			p++;
		kn = (size_t)(p - k);
		for (i = 0; i < AL_ARRAY_LEN(keys); i++)
			if (strlen(keys[i]) == kn && memcmp(keys[i], k, kn) == 0)
				break;
		if (p == e || *p != '=') {
			if (i < AL_ARRAY_LEN(keys))
				fail(ps, "'%s' needs a value (%s=...)", keys[i], keys[i]);
			else
				fail(ps, "expected key=value");
			goto out;
		}
		if (i == AL_ARRAY_LEN(keys)) {
			bad_key(ps, k, kn);
			goto out;
		}
		slot = key_slot(&cur, i);
		if (*slot) {
			fail(ps, "'%s' given twice", keys[i]);
			goto out;
		}
		p++;
		if (read_value(ps, keys[i], &p, e, slot) < 0)
			goto out;
		if ((i == 2 || i == 3) && (*slot)[0] != '/') {
			fail(ps, "%s must be an absolute path", keys[i]);
			goto out;
		}
	}

	/* A password is a user's; a certificate alone is an HTTPS client's (a PostgreSQL
	 * resource's credential needs user= as well: checked where resources are known). */
	if (!cur.user && !cur.header && !cur.bearer && !cur.sslcert) {
		fail(ps, "credential '%s' has no user=", cur.name);
		goto out;
	}
	if (cur.header && !header_ok(cur.header)) {
		fail(ps, "credential '%s': header= must be \"Name: value\" (a token, a colon, no control "
		     "characters)", cur.name);
		goto out;
	}
	if (cur.bearer && (!*cur.bearer || strcspn(cur.bearer, " \t\r\n\x7f") != strlen(cur.bearer) ||
			   !header_ok_value(cur.bearer))) {
		fail(ps, "credential '%s': bearer= must be one word without control characters", cur.name);
		goto out;
	}
	if (cur.header && cur.bearer) {
		fail(ps, "credential '%s': header= and bearer= together (choose one)", cur.name);
		goto out;
	}
	if (!cur.sslcert != !cur.sslkey) {
		fail(ps, "credential '%s': %s= needs %s= too", cur.name,
		     cur.sslcert ? "sslcert" : "sslkey", cur.sslcert ? "sslkey" : "sslcert");
		goto out;
	}
	if (!cur.password && !cur.sslcert && !cur.header && !cur.bearer) {
		fail(ps, "credential '%s' needs password=, sslcert= and sslkey=, header= or bearer=", cur.name);
		goto out;
	}
	if (add_secret(ps, &cur) < 0)
		goto out;
	rc = 0;
out:
	secret_clear(&cur);
	return rc;
}

int secrets_parse(const char *source, const char *text, struct al_secrets **out, char *err,
		  size_t errlen)
{
	struct parser ps = { .source = source ? source : "secrets", .err = err, .errlen = errlen };
	const char *p = text;
	int rc = -1;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	ps.s = calloc(1, sizeof(*ps.s));
	if (!ps.s) {
		al_errf(err, errlen, "%s: out of memory", ps.source);
		goto out;
	}
	if (!text) {
		al_errf(err, errlen, "%s: no text", ps.source);
		goto out;
	}
	while (*p) {
		const char *e = strchr(p, '\n');

		if (!e)
			e = p + strlen(p);
		ps.line++;
		if (parse_line(&ps, p, e) < 0)
			goto out;
		p = *e ? e + 1 : e;
	}
	*out = ps.s;
	ps.s = NULL;
	rc = 0;
out:
	free(ps.lines);
	secrets_free(ps.s);
	return rc;
}

/* Checks what the opened file is, not what the path named a moment ago. */
static int check_file(const char *path, const struct stat *st, char *err, size_t errlen)
{
	bool bad_owner = st->st_uid != 0, bad_mode = (st->st_mode & 077) != 0;

	if (!S_ISREG(st->st_mode))
		return al_errf(err, errlen, "%s: not a regular file", path);
	if (!bad_owner && !bad_mode)
		return 0;
	return al_errf(err, errlen,
		       "%s: holds credentials, so it must be owned by root and unreadable by "
		       "group and others (owner uid %u, mode %04o); fix with: %s%s%s%s%s",
		       path, (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777),
		       bad_owner ? "chown root " : "", bad_owner ? path : "",
		       bad_owner && bad_mode ? " && " : "",
		       bad_mode ? "chmod 600 " : "", bad_mode ? path : "");
}

int secrets_load(const char *path, struct al_secrets **out, char *err, size_t errlen)
{
	size_t len = 0, size = 0;
	struct stat st;
	char *buf = NULL;
	int fd, rc = -1;

	*out = NULL;
	/* O_NONBLOCK: opening a FIFO must not hang the daemon before the S_ISREG check. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		al_errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		al_errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	if (check_file(path, &st, err, errlen) < 0)
		goto out;
	if (st.st_size > MAX_FILE_SIZE) {
		al_errf(err, errlen, "%s: larger than %d bytes", path, MAX_FILE_SIZE);
		goto out;
	}
	size = (size_t)st.st_size;
	/* One allocation of the known size: growing would leave copies of secrets behind. */
	buf = malloc(size + 2);
	if (!buf) {
		al_errf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, size + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			al_errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > size) {
			al_errf(err, errlen, "%s: changed while being read", path);
			goto out;
		}
	}
	buf[len] = '\0';
	if (strlen(buf) != len) {
		const char *p;
		int line = 1;

		for (p = buf; *p; p++)
			line += *p == '\n';
		al_errf(err, errlen, "%s:%d: NUL byte", path, line);
		goto out;
	}
	if (secrets_parse(path, buf, out, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	if (buf) {
		OPENSSL_cleanse(buf, size + 2);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	return rc;
}
