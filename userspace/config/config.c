/* airlock.conf: tokenizer, directive parser with "source:line:" errors, and resource matching. */
#include <airlock/config.h>
#include <airlock/pg.h>

#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#include <strings.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DEF_STEER_PORT		907 /* below 1024: only root can listen there while airlockd is down */
#define DEF_CONTROL_SOCKET	"/run/airlock/control.sock"
#define DEF_STORE		"/var/lib/airlock/airlock.db"
#define DEF_PIN_ROOT		"/sys/fs/bpf/airlock"
#define DEF_CONNECT_TIMEOUT_MS	10000u
#define DEF_COMMIT_INTERVAL_MS	20u
#define DEF_MAX_SESSIONS	10000u
#define DEF_RELAY_BUFFER	(256u * 1024)
#define DEF_SECRETS		"/etc/airlock/secrets.conf"
#define DEF_CA_DIR		"/var/lib/airlock/ca"
#define DEF_PG_MAX_MESSAGE	(16u * 1024 * 1024)
#define DEF_PG_LOGIN_TIMEOUT_MS	60000u  /* pgbouncer's client_login_timeout */
#define DEF_HTTP_MAX_BODY	(1024u * 1024)
#define DEF_HTTP_HEAD_TIMEOUT_MS 30000u
#define DEF_HTTP_BODY_MIN_RATE	1024u
#define DEF_HTTP_RESPONSE_TIMEOUT_MS 120000u
#define DEF_TPROXY_MARK		0x7701u
#define DEF_TPROXY_TABLE	7701u
#define DEF_NFT_TABLE		"airlock"
#define DEF_CONSOLE_ADDR	"127.0.0.1"
#define DEF_CONSOLE_PORT	8077

#define BPF_FS			"/sys/fs/bpf/"
#define MAX_CONNECT_TIMEOUT_MS	(60u * 60 * 1000)
#define MAX_COMMIT_INTERVAL_MS	1000u
#define MAX_SESSIONS		(1u << 20)
#define MIN_RELAY_BUFFER	(4u * 1024)
#define MAX_RELAY_BUFFER	(64u * 1024 * 1024)
#define MAX_FILE_SIZE		(1024 * 1024)
#define SUN_PATH_MAX		(sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

enum tok_kind { TOK_WORD, TOK_LBRACE, TOK_RBRACE };

struct tok {
	enum tok_kind kind;
	char *s;		/* TOK_WORD: the text, quotes and escapes removed */
};

/* The tokens of one line; a directive never spans lines. */
struct line {
	struct tok *v;
	size_t n;
	int no;
};

enum top_directive {
	TD_STEER_PORT, TD_CONTROL_SOCKET, TD_STORE, TD_PIN_ROOT, TD_DEFAULT,
	TD_CONNECT_TIMEOUT, TD_MAX_SESSIONS, TD_RELAY_BUFFER, TD_RESOLVER, TD_SECRETS, TD_CA_DIR,
	TD_PG_MAX_MESSAGE, TD_TPROXY_PORT, TD_TPROXY_MARK, TD_TPROXY_TABLE, TD_NFT_TABLE, TD_REVIEW_HOOK, TD_REVIEW_SOCKET, TD_REVIEW_WEBHOOK,
	TD_REVIEW_WEBHOOK_SECRET, TD_CONSOLE_LISTEN, TD_CONSOLE_TLS, TD_CONSOLE_CERT, TD_CONSOLE_KEY,
	TD_STORE_MAX_SIZE, TD_STORE_FULL, TD_RECORD_LIMIT, TD_RECORD_RETENTION,
	TD_HTTP_MAX_BODY, TD_COMMIT_INTERVAL, TD_CONSOLE_IDLE_TIMEOUT, TD_CONSOLE_SESSION_MAX, TD_CONSOLE_HEAD_TIMEOUT,
	TD_HTTP_HEAD_TIMEOUT, TD_HTTP_BODY_MIN_RATE, TD_MAX_SESSIONS_PER_AGENT, TD_HTTP_RESPONSE_TIMEOUT,
	TD_PG_LOGIN_TIMEOUT,
	TD_COUNT
};

struct parser {
	const char *source;
	const char *p;			/* next unread byte of the text */
	int line;			/* line number of *p */
	char *err;
	size_t errlen;
	struct al_config *c;
	long cur;			/* index of the open resource block, -1 outside one */
	int proto_line;			/* where the open resource set its protocol, 0 if not */
	int set_at[TD_COUNT];		/* where each top-level setting was given, 0 if not */
	int depth;			/* include nesting */
};

struct directive {
	const char *name;
	size_t min_args, max_args;	/* max_args 0: any number */
	int (*fn)(struct parser *ps, const struct line *ln);
};

static const struct {
	const char *name;
	enum al_proto proto;
} protos[] = {
	{ "tcp", AL_PROTO_TCP },
	{ "postgres", AL_PROTO_POSTGRES },
	{ "https", AL_PROTO_HTTPS },
};

static int fail(struct parser *ps, int line, const char *fmt, ...) AL_PRINTF(3, 4);

/* Writes "source:line: message" into the caller's buffer; returns -1. A message cut short
 * by a small buffer is still the right message, so truncation is not checked. */
static int fail(struct parser *ps, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!ps->err || ps->errlen == 0)
		return -1;
	n = snprintf(ps->err, ps->errlen, "%s:%d: ", ps->source, line);
	if (n < 0 || (size_t)n >= ps->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static int oom(struct parser *ps)
{
	return fail(ps, ps->line, "out of memory");
}

/* ---- tokenizer ---- */

static void line_clear(struct line *ln)
{
	size_t i;

	for (i = 0; i < ln->n; i++)
		free(ln->v[i].s);
	free(ln->v);
	ln->v = NULL;
	ln->n = 0;
}

/* Takes ownership of s (NULL for braces), also when it fails. */
static int line_push(struct parser *ps, struct line *ln, enum tok_kind kind, char *s)
{
	struct tok *v;

	v = reallocarray(ln->v, ln->n + 1, sizeof(*v));
	if (!v) {
		free(s);
		return oom(ps);
	}
	ln->v = v;
	v[ln->n].kind = kind;
	v[ln->n].s = s;
	ln->n++;
	return 0;
}

static bool is_ctl(unsigned char ch)
{
	return ch < 0x20 || ch == 0x7f;
}

static bool ends_word(unsigned char ch)
{
	return ch == '\0' || ch == '\n' || ch == ' ' || ch == '\t' || ch == '\r' ||
	       ch == '#' || ch == '{' || ch == '}';
}

/* A double-quoted string on one line; \" and \\ are the only escapes. */
static int lex_string(struct parser *ps, struct line *ln)
{
	const char *p = ps->p + 1;
	size_t room = strcspn(p, "\n");
	char *s, *o;

	s = malloc(room + 1);
	if (!s)
		return oom(ps);
	o = s;
	for (;;) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '\0' || ch == '\n') {
			free(s);
			return fail(ps, ps->line, "unterminated string");
		}
		if (ch == '"')
			break;
		if (ch == '\\') {
			if (p[1] != '"' && p[1] != '\\') {
				free(s);
				if (p[1] == '\0' || p[1] == '\n')
					return fail(ps, ps->line, "unterminated string");
				if (is_ctl((unsigned char)p[1]))
					return fail(ps, ps->line, "bad escape in string"
						    " (only \\\" and \\\\ are allowed)");
				return fail(ps, ps->line, "bad escape '\\%c' in string"
					    " (only \\\" and \\\\ are allowed)", p[1]);
			}
			*o++ = p[1];
			p += 2;
			continue;
		}
		if (is_ctl(ch) && ch != '\t') {
			free(s);
			return fail(ps, ps->line, "control character 0x%02x in string", ch);
		}
		*o++ = (char)ch;
		p++;
	}
	*o = '\0';
	p++;
	if (!ends_word((unsigned char)*p)) {
		free(s);
		return fail(ps, ps->line, "missing space after closing quote");
	}
	ps->p = p;
	return line_push(ps, ln, TOK_WORD, s);
}

static int lex_word(struct parser *ps, struct line *ln)
{
	const char *p = ps->p;
	char *s;

	while (!ends_word((unsigned char)*p)) {
		if (*p == '"')
			return fail(ps, ps->line, "quote in the middle of a word");
		if (is_ctl((unsigned char)*p))
			return fail(ps, ps->line, "control character 0x%02x", (unsigned char)*p);
		p++;
	}
	s = strndup(ps->p, (size_t)(p - ps->p));
	if (!s)
		return oom(ps);
	ps->p = p;
	return line_push(ps, ln, TOK_WORD, s);
}

/* Reads the tokens of the next line (none for blank or comment lines); sets *eof at the end. */
static int lex_line(struct parser *ps, struct line *ln, bool *eof)
{
	ln->no = ps->line;
	for (;;) {
		unsigned char ch = (unsigned char)*ps->p;

		switch (ch) {
		case '\0':
			*eof = true;
			return 0;
		case '\n':
			ps->p++;
			ps->line++;
			return 0;
		case ' ': case '\t': case '\r':
			ps->p++;
			break;
		case '#':
			ps->p += strcspn(ps->p, "\n");
			break;
		case '{': case '}':
			ps->p++;
			if (line_push(ps, ln, ch == '{' ? TOK_LBRACE : TOK_RBRACE, NULL) < 0)
				return -1;
			break;
		case '"':
			if (lex_string(ps, ln) < 0)
				return -1;
			break;
		default:
			if (lex_word(ps, ln) < 0)
				return -1;
			break;
		}
	}
}

/* ---- values ---- */

/* Leading decimal digits of s into *v; -1 if there are none or they overflow. */
static int parse_digits(const char *s, uint64_t *v, const char **rest)
{
	uint64_t n = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return -1;
	*v = n;
	*rest = p;
	return 0;
}

/* A whole-word decimal number in [lo, hi]. */
static int parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *v)
{
	const char *rest;

	if (parse_digits(s, v, &rest) < 0 || *rest != '\0' || *v < lo || *v > hi)
		return -1;
	return 0;
}

static int parse_port(struct parser *ps, int line, const char *what, const char *s, uint16_t *port)
{
	uint64_t v;

	if (parse_uint(s, 1, 65535, &v) < 0)
		return fail(ps, line, "%s: '%s' is not a port number (1..65535)", what, s);
	*port = (uint16_t)v;
	return 0;
}

/* A number with a unit suffix; units[] ends with a NULL name. 1 if the suffix is unknown. */
struct unit {
	const char *name;
	uint64_t mult;
};

static int parse_scaled(const char *s, const struct unit *units, uint64_t *v)
{
	const char *rest;
	uint64_t n;

	if (parse_digits(s, &n, &rest) < 0)
		return -1;
	for (; units->name; units++) {
		if (strcmp(rest, units->name) != 0)
			continue;
		if (n > UINT64_MAX / units->mult)
			return -1;
		*v = n * units->mult;
		return 0;
	}
	return -1;
}

static bool is_abs_path(const char *s)
{
	return s[0] == '/';
}

/* Replaces *dst with a copy of s. */
static int set_string(struct parser *ps, char **dst, const char *s)
{
	char *copy = strdup(s);

	if (!copy)
		return oom(ps);
	free(*dst);
	*dst = copy;
	return 0;
}

/* ---- top-level directives ---- */

static const char *arg1(const struct line *ln)
{
	return ln->v[1].s;
}

static int d_steer_port(struct parser *ps, const struct line *ln)
{
	return parse_port(ps, ln->no, "steer_port", arg1(ln), &ps->c->steer_port);
}

static int d_control_socket(struct parser *ps, const struct line *ln)
{
	const char *s = arg1(ln);

	if (!is_abs_path(s))
		return fail(ps, ln->no, "control_socket: '%s' is not an absolute path", s);
	if (strlen(s) > SUN_PATH_MAX)
		return fail(ps, ln->no, "control_socket: path is longer than %zu bytes",
			    SUN_PATH_MAX);
	return set_string(ps, &ps->c->control_socket, s);
}

static int d_store(struct parser *ps, const struct line *ln)
{
	const char *s = arg1(ln);

	if (!is_abs_path(s))
		return fail(ps, ln->no, "store: '%s' is not an absolute path", s);
	return set_string(ps, &ps->c->store_path, s);
}

/* Below /sys/fs/bpf/, with no empty, "." or ".." component; trailing slashes are dropped. */
static int d_pin_root(struct parser *ps, const struct line *ln)
{
	const char *s = arg1(ln);
	size_t len = strlen(s), base = strlen(BPF_FS);
	const char *p;
	char *copy;

	while (len > base && s[len - 1] == '/')
		len--;
	if (len <= base || strncmp(s, BPF_FS, base) != 0)
		goto bad;
	for (p = s + base; p < s + len;) {
		size_t n = strcspn(p, "/");

		if (p + n > s + len)
			n = (size_t)(s + len - p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			goto bad;
		p += n + 1;
	}
	copy = strndup(s, len);
	if (!copy)
		return oom(ps);
	free(ps->c->pin_root);
	ps->c->pin_root = copy;
	return 0;
bad:
	return fail(ps, ln->no, "pin_root: '%s' is not a directory below " BPF_FS, s);
}

static int d_default(struct parser *ps, const struct line *ln)
{
	const char *s = arg1(ln);

	if (strcmp(s, "relay") == 0)
		ps->c->default_action = AL_DEFAULT_RELAY;
	else if (strcmp(s, "deny") == 0)
		ps->c->default_action = AL_DEFAULT_DENY;
	else
		return fail(ps, ln->no, "default: '%s' is neither relay nor deny", s);
	return 0;
}

/* A duration in ms, s or m for directive NAME, within 1ms..MAX ms (range says it in words). */
static int parse_ms(struct parser *ps, const struct line *ln, const char *name, uint64_t max,
		    const char *range, unsigned int *out)
{
	static const struct unit units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 }, { NULL, 0 },
	};
	const char *s = arg1(ln);
	uint64_t ms;

	if (parse_scaled(s, units, &ms) < 0)
		return fail(ps, ln->no, "%s: '%s' is not a duration"
			    " (a number with ms, s or m, e.g. 500ms, 10s, 2m)", name, s);
	if (ms < 1 || ms > max)
		return fail(ps, ln->no, "%s: '%s' is out of range (%s)", name, s, range);
	*out = (unsigned int)ms;
	return 0;
}

static int d_connect_timeout(struct parser *ps, const struct line *ln)
{
	return parse_ms(ps, ln, "connect_timeout", MAX_CONNECT_TIMEOUT_MS, "1ms..60m",
			&ps->c->connect_timeout_ms);
}

static int d_commit_interval(struct parser *ps, const struct line *ln)
{
	return parse_ms(ps, ln, "commit_interval", MAX_COMMIT_INTERVAL_MS, "1ms..1s",
			&ps->c->commit_interval_ms);
}

static int d_max_sessions(struct parser *ps, const struct line *ln)
{
	const char *s = arg1(ln);
	uint64_t v;

	if (parse_uint(s, 1, MAX_SESSIONS, &v) < 0)
		return fail(ps, ln->no, "max_sessions: '%s' is not a number in 1..%u",
			    s, MAX_SESSIONS);
	ps->c->max_sessions = (unsigned int)v;
	return 0;
}

static int d_max_sessions_per_agent(struct parser *ps, const struct line *ln)
{
	uint64_t v;

	if (parse_uint(arg1(ln), 1, MAX_SESSIONS, &v) < 0)
		return fail(ps, ln->no, "max_sessions_per_agent: '%s' is not a number in 1..%u",
			    arg1(ln), MAX_SESSIONS);
	ps->c->max_sessions_per_agent = (unsigned int)v;
	return 0;
}

static int d_relay_buffer(struct parser *ps, const struct line *ln)
{
	static const struct unit units[] = {
		{ "", 1 }, { "k", 1024 }, { "K", 1024 },
		{ "m", 1024 * 1024 }, { "M", 1024 * 1024 }, { NULL, 0 },
	};
	const char *s = arg1(ln);
	uint64_t v;

	if (parse_scaled(s, units, &v) < 0)
		return fail(ps, ln->no, "relay_buffer: '%s' is not a size"
			    " (bytes, or a number with k or m, e.g. 65536, 64k, 1m)", s);
	if (v < MIN_RELAY_BUFFER || v > MAX_RELAY_BUFFER)
		return fail(ps, ln->no, "relay_buffer: '%s' is out of range (4k..64m)", s);
	ps->c->relay_buffer = (size_t)v;
	return 0;
}

static int d_resolver(struct parser *ps, const struct line *ln)
{
	struct al_config *c = ps->c;

	for (size_t i = 1; i < ln->n; i++) {
		struct al_addr a;

		if (al_addr_parse(&a, ln->v[i].s) < 0)
			return fail(ps, ln->no, "resolver: '%s' is not an IP address", ln->v[i].s);
		if (c->n_resolvers == AL_RESOLVERS_MAX)
			return fail(ps, ln->no, "resolver: at most %d", AL_RESOLVERS_MAX);
		c->resolvers[c->n_resolvers++] = a;
	}
	c->resolvers_set = 1;
	return 0;
}

static int d_secrets(struct parser *ps, const struct line *ln)
{
	if (!is_abs_path(arg1(ln)))
		return fail(ps, ln->no, "secrets: '%s' is not an absolute path", arg1(ln));
	return set_string(ps, &ps->c->secrets_path, arg1(ln));
}

static int d_review_socket(struct parser *ps, const struct line *ln)
{
	if (!is_abs_path(arg1(ln)) || strlen(arg1(ln)) > SUN_PATH_MAX)
		return fail(ps, ln->no, "review_socket: '%s' is not an absolute path of at most %zu bytes",
			    arg1(ln), SUN_PATH_MAX);
	return set_string(ps, &ps->c->review_socket, arg1(ln));
}

static int d_review_webhook(struct parser *ps, const struct line *ln)
{
	if (strncmp(arg1(ln), "http://", 7) != 0 && strncmp(arg1(ln), "https://", 8) != 0)
		return fail(ps, ln->no, "review_webhook: '%s' is not an http:// or https:// URL", arg1(ln));
	return set_string(ps, &ps->c->review_webhook, arg1(ln));
}

static int d_review_webhook_secret(struct parser *ps, const struct line *ln)
{
	if (!is_abs_path(arg1(ln)))
		return fail(ps, ln->no, "review_webhook_secret: '%s' is not an absolute path", arg1(ln));
	return set_string(ps, &ps->c->review_webhook_secret, arg1(ln));
}

static int d_review_hook(struct parser *ps, const struct line *ln)
{
	if (!is_abs_path(arg1(ln)))
		return fail(ps, ln->no, "review_hook: '%s' is not an absolute path", arg1(ln));
	return set_string(ps, &ps->c->review_hook, arg1(ln));
}

static int d_ca_dir(struct parser *ps, const struct line *ln)
{
	if (!is_abs_path(arg1(ln)))
		return fail(ps, ln->no, "ca_dir: '%s' is not an absolute path", arg1(ln));
	return set_string(ps, &ps->c->ca_dir, arg1(ln));
}

static int d_http_max_body(struct parser *ps, const struct line *ln)
{
	static const struct unit units[] = {
		{ "", 1 }, { "k", 1024 }, { "m", 1024 * 1024 }, { NULL, 0 },
	};
	uint64_t v;

	if (parse_scaled(arg1(ln), units, &v) < 0 || v > 64u * 1024 * 1024)
		return fail(ps, ln->no, "http_max_body: '%s' is not a size up to 64m", arg1(ln));
	ps->c->http_max_body = (size_t)v;
	return 0;
}

static int d_http_head_timeout(struct parser *ps, const struct line *ln)
{
	return parse_ms(ps, ln, "http_head_timeout", 60u * 60 * 1000, "1ms..60m",
			&ps->c->http_head_timeout_ms);
}

/* 0 turns it off: a server that may take longer to begin an answer than any bound (a
 * long poll) is then waited for. */
static int d_http_response_timeout(struct parser *ps, const struct line *ln)
{
	if (strcmp(arg1(ln), "0") == 0) {
		ps->c->http_response_timeout_ms = 0;
		return 0;
	}
	return parse_ms(ps, ln, "http_response_timeout", 60u * 60 * 1000, "1ms..60m, or 0 for none",
			&ps->c->http_response_timeout_ms);
}

static int d_http_body_min_rate(struct parser *ps, const struct line *ln)
{
	static const struct unit units[] = {
		{ "", 1 }, { "k", 1024 }, { "m", 1024 * 1024 }, { NULL, 0 },
	};
	uint64_t v;

	if (parse_scaled(arg1(ln), units, &v) < 0 || v > 1024u * 1024 * 1024)
		return fail(ps, ln->no, "http_body_min_rate: '%s' is not bytes a second up to 1024m "
			    "(0: none)", arg1(ln));
	ps->c->http_body_min_rate = (size_t)v;
	return 0;
}

static int d_pg_max_message(struct parser *ps, const struct line *ln)
{
	static const struct unit units[] = {
		{ "", 1 }, { "k", 1024 }, { "K", 1024 },
		{ "m", 1024 * 1024 }, { "M", 1024 * 1024 }, { NULL, 0 },
	};
	uint64_t v;

	if (parse_scaled(arg1(ln), units, &v) < 0 || v < 1024 || v > 1024u * 1024 * 1024)
		return fail(ps, ln->no, "pg_max_message: '%s' is not a size from 1k to 1024m",
			    arg1(ln));
	ps->c->pg_max_message = (size_t)v;
	return 0;
}

/* No 0: a login that never ends holds a session (and an agent's share of them) for ever. */
static int d_pg_login_timeout(struct parser *ps, const struct line *ln)
{
	return parse_ms(ps, ln, "pg_login_timeout", 60u * 60 * 1000, "1ms..60m",
			&ps->c->pg_login_timeout_ms);
}

static int d_tproxy_port(struct parser *ps, const struct line *ln)
{
	return parse_port(ps, ln->no, "tproxy_port", arg1(ln), &ps->c->tproxy_port);
}

/* Decimal or 0x hex, 1..2^32-1. */
static int parse_u32_nonzero(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v == 0 || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int d_tproxy_mark(struct parser *ps, const struct line *ln)
{
	if (parse_u32_nonzero(arg1(ln), &ps->c->tproxy_mark) < 0)
		return fail(ps, ln->no, "tproxy_mark: '%s' is not a mark (1..0xffffffff)", arg1(ln));
	return 0;
}

/* 253..255 are the kernel's default, main and local tables; 0 is unspecified. */
static int d_tproxy_table(struct parser *ps, const struct line *ln)
{
	uint32_t v;

	if (parse_u32_nonzero(arg1(ln), &v) < 0 || (v >= 253 && v <= 255) || v == UINT32_MAX)
		return fail(ps, ln->no, "tproxy_table: '%s' is not a routing table number"
			    " (1..4294967294, not 253..255)", arg1(ln));
	ps->c->tproxy_table = v;
	return 0;
}

static int d_nft_table(struct parser *ps, const struct line *ln)
{
	const char *s = arg1(ln);
	size_t len = strlen(s);

	if (len == 0 || len > 63 ||
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != len)
		return fail(ps, ln->no, "nft_table: '%s' is not a table name (1..63 of A-Z a-z 0-9 _ -)", s);
	return set_string(ps, &ps->c->nft_table, s);
}

/* console_listen ADDR:PORT ([V6]:PORT), or off. */
static int d_console_listen(struct parser *ps, const struct line *ln)
{
	const char *s = arg1(ln), *colon;
	char host[INET6_ADDRSTRLEN + 2];
	size_t hlen;

	if (strcmp(s, "off") == 0) {
		ps->c->console_enabled = 0;
		return 0;
	}
	colon = strrchr(s, ':');
	if (!colon)
		return fail(ps, ln->no, "console_listen: '%s' is not ADDR:PORT, [ADDR6]:PORT or off", s);
	hlen = (size_t)(colon - s);
	if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
		s++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return fail(ps, ln->no, "console_listen: '%s' is not ADDR:PORT, [ADDR6]:PORT or off", arg1(ln));
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (al_addr_parse(&ps->c->console_addr, host) < 0)
		return fail(ps, ln->no, "console_listen: '%s' is not an IP address", host);
	ps->c->console_enabled = 1;
	return parse_port(ps, ln->no, "console_listen", colon + 1, &ps->c->console_port);
}

static int d_console_tls(struct parser *ps, const struct line *ln)
{
	if (strcmp(arg1(ln), "on") != 0 && strcmp(arg1(ln), "off") != 0)
		return fail(ps, ln->no, "console_tls: '%s' is neither on nor off", arg1(ln));
	ps->c->console_tls = strcmp(arg1(ln), "on") == 0;
	return 0;
}

static int d_console_cert(struct parser *ps, const struct line *ln)
{
	if (!is_abs_path(arg1(ln)))
		return fail(ps, ln->no, "%s: '%s' is not an absolute path", ln->v[0].s, arg1(ln));
	return set_string(ps, strcmp(ln->v[0].s, "console_cert") == 0 ? &ps->c->console_cert
			  : &ps->c->console_key, arg1(ln));
}

/* ---- audit store limits and session recordings ---- */

static const struct unit size_units[] = {
	{ "", 1 }, { "k", 1024 }, { "K", 1024 }, { "m", 1024 * 1024 }, { "M", 1024 * 1024 },
	{ "g", 1024ull * 1024 * 1024 }, { "G", 1024ull * 1024 * 1024 }, { NULL, 0 },
};

static int d_store_max_size(struct parser *ps, const struct line *ln)
{
	uint64_t v;

	if (strcmp(arg1(ln), "unlimited") == 0) {
		ps->c->store_max_size = 0;
		return 0;
	}
	if (parse_scaled(arg1(ln), size_units, &v) < 0 || v < 64 * 1024)
		return fail(ps, ln->no, "store_max_size: '%s' is not a size of at least 64k (or unlimited)",
			    arg1(ln));
	ps->c->store_max_size = v;
	return 0;
}

static int d_store_full(struct parser *ps, const struct line *ln)
{
	if (strcmp(arg1(ln), "refuse") == 0)
		ps->c->store_full_rotate = 0;
	else if (strcmp(arg1(ln), "rotate") == 0)
		ps->c->store_full_rotate = 1;
	else
		return fail(ps, ln->no, "store_full: '%s' is neither refuse nor rotate", arg1(ln));
	return 0;
}

static int d_record_limit(struct parser *ps, const struct line *ln)
{
	uint64_t v;

	if (parse_scaled(arg1(ln), size_units, &v) < 0 || v > 1024ull * 1024 * 1024)
		return fail(ps, ln->no, "record_limit: '%s' is not a size up to 1g (0: no recordings)",
			    arg1(ln));
	ps->c->record_limit = (size_t)v;
	return 0;
}

static int d_record_retention(struct parser *ps, const struct line *ln)
{
	static const struct unit units[] = {
		{ "s", 1 }, { "m", 60 }, { "h", 3600 }, { "d", 86400 }, { NULL, 0 },
	};
	uint64_t v;

	if (strcmp(arg1(ln), "forever") == 0) {
		ps->c->record_retention_s = 0;
		return 0;
	}
	if (parse_scaled(arg1(ln), units, &v) < 0 || v < 60 || v > 100ull * 365 * 86400)
		return fail(ps, ln->no, "record_retention: '%s' is not a duration like 30d, 12h (or forever)",
			    arg1(ln));
	ps->c->record_retention_s = v;
	return 0;
}

/* console_idle_timeout / console_session_max / console_head_timeout: a duration in s, m or h. */
static int d_console_time(struct parser *ps, const struct line *ln)
{
	static const struct unit units[] = {
		{ "s", 1 }, { "m", 60 }, { "h", 3600 }, { NULL, 0 },
	};
	const struct {
		const char *name, *max_text;
		uint64_t max, *dst;
	} which[] = {
		{ "console_idle_timeout", "24h", 24 * 3600, &ps->c->console_idle_s },
		{ "console_session_max", "168h", 7 * 86400, &ps->c->console_session_max_s },
		{ "console_head_timeout", "10m", 600, &ps->c->console_head_s },
	};
	size_t i;
	uint64_t v;

	for (i = 0; i < AL_ARRAY_LEN(which) - 1 && strcmp(ln->v[0].s, which[i].name) != 0; i++)
		;
	if (parse_scaled(arg1(ln), units, &v) < 0 || v < 1 || v > which[i].max)
		return fail(ps, ln->no, "%s: '%s' is not a duration from 1s to %s (like 90s, 30m, 12h)",
			    ln->v[0].s, arg1(ln), which[i].max_text);
	*which[i].dst = v;
	return 0;
}

static const struct directive top_directives[TD_COUNT] = {
	[TD_STEER_PORT]      = { "steer_port", 1, 1, d_steer_port },
	[TD_CONTROL_SOCKET]  = { "control_socket", 1, 1, d_control_socket },
	[TD_STORE]           = { "store", 1, 1, d_store },
	[TD_PIN_ROOT]        = { "pin_root", 1, 1, d_pin_root },
	[TD_DEFAULT]         = { "default", 1, 1, d_default },
	[TD_CONNECT_TIMEOUT] = { "connect_timeout", 1, 1, d_connect_timeout },
	[TD_MAX_SESSIONS]    = { "max_sessions", 1, 1, d_max_sessions },
	[TD_RELAY_BUFFER]    = { "relay_buffer", 1, 1, d_relay_buffer },
	[TD_RESOLVER]        = { "resolver", 1, 0, d_resolver },
	[TD_SECRETS]         = { "secrets", 1, 1, d_secrets },
	[TD_CA_DIR]          = { "ca_dir", 1, 1, d_ca_dir },
	[TD_PG_MAX_MESSAGE]  = { "pg_max_message", 1, 1, d_pg_max_message },
	[TD_PG_LOGIN_TIMEOUT] = { "pg_login_timeout", 1, 1, d_pg_login_timeout },
	[TD_HTTP_MAX_BODY]   = { "http_max_body", 1, 1, d_http_max_body },
	[TD_HTTP_HEAD_TIMEOUT] = { "http_head_timeout", 1, 1, d_http_head_timeout },
	[TD_HTTP_BODY_MIN_RATE] = { "http_body_min_rate", 1, 1, d_http_body_min_rate },
	[TD_HTTP_RESPONSE_TIMEOUT] = { "http_response_timeout", 1, 1, d_http_response_timeout },
	[TD_MAX_SESSIONS_PER_AGENT] = { "max_sessions_per_agent", 1, 1, d_max_sessions_per_agent },
	[TD_REVIEW_HOOK]     = { "review_hook", 1, 1, d_review_hook },
	[TD_REVIEW_SOCKET]   = { "review_socket", 1, 1, d_review_socket },
	[TD_REVIEW_WEBHOOK]  = { "review_webhook", 1, 1, d_review_webhook },
	[TD_REVIEW_WEBHOOK_SECRET] = { "review_webhook_secret", 1, 1, d_review_webhook_secret },
	[TD_TPROXY_PORT]     = { "tproxy_port", 1, 1, d_tproxy_port },
	[TD_TPROXY_MARK]     = { "tproxy_mark", 1, 1, d_tproxy_mark },
	[TD_TPROXY_TABLE]    = { "tproxy_table", 1, 1, d_tproxy_table },
	[TD_NFT_TABLE]       = { "nft_table", 1, 1, d_nft_table },
	[TD_STORE_MAX_SIZE]  = { "store_max_size", 1, 1, d_store_max_size },
	[TD_STORE_FULL]      = { "store_full", 1, 1, d_store_full },
	[TD_COMMIT_INTERVAL] = { "commit_interval", 1, 1, d_commit_interval },
	[TD_RECORD_LIMIT]    = { "record_limit", 1, 1, d_record_limit },
	[TD_RECORD_RETENTION] = { "record_retention", 1, 1, d_record_retention },
	[TD_CONSOLE_LISTEN]  = { "console_listen", 1, 1, d_console_listen },
	[TD_CONSOLE_TLS]     = { "console_tls", 1, 1, d_console_tls },
	[TD_CONSOLE_CERT]    = { "console_cert", 1, 1, d_console_cert },
	[TD_CONSOLE_KEY]     = { "console_key", 1, 1, d_console_cert },
	[TD_CONSOLE_IDLE_TIMEOUT] = { "console_idle_timeout", 1, 1, d_console_time },
	[TD_CONSOLE_SESSION_MAX]  = { "console_session_max", 1, 1, d_console_time },
	[TD_CONSOLE_HEAD_TIMEOUT] = { "console_head_timeout", 1, 1, d_console_time },
};

/* ---- resource blocks ---- */

static struct al_resource *cur_res(struct parser *ps)
{
	return &ps->c->resources[ps->cur];
}

static bool cidr_equal(const struct al_cidr *a, const struct al_cidr *b)
{
	return a->prefix == b->prefix && memcmp(&a->addr, &b->addr, sizeof(a->addr)) == 0;
}

/* Appends a block unless the resource has it already. */
static int add_net(struct parser *ps, struct al_resource *r, const struct al_cidr *net)
{
	struct al_cidr *v;
	size_t i;

	for (i = 0; i < r->n_nets; i++)
		if (cidr_equal(&r->nets[i], net))
			return 0;
	v = reallocarray(r->nets, r->n_nets + 1, sizeof(*v));
	if (!v)
		return oom(ps);
	r->nets = v;
	v[r->n_nets++] = *net;
	return 0;
}

/* The mask byte i of a prefix length over 128 bits. */
static uint8_t prefix_mask(unsigned int prefix, unsigned int i)
{
	if (prefix >= 8 * (i + 1))
		return 0xff;
	if (prefix <= 8 * i)
		return 0;
	return (uint8_t)(0xff << (8 - (prefix - 8 * i)));
}

int al_cidr_contains(const struct al_cidr *net, const struct al_addr *a)
{
	uint8_t n[16], x[16];
	unsigned int i;

	if (net->prefix > 128)
		return 0;
	memcpy(n, net->addr.w, sizeof(n));
	memcpy(x, a->w, sizeof(x));
	for (i = 0; i < 16; i++)
		if ((n[i] ^ x[i]) & prefix_mask(net->prefix, i))
			return 0;
	return 1;
}

static int parse_cidr(struct parser *ps, int line, const char *text, struct al_cidr *net)
{
	const char *slash = strchr(text, '/');
	char host[INET6_ADDRSTRLEN];
	size_t hlen = (size_t)(slash - text);
	bool v4;
	uint64_t prefix;
	uint8_t b[16];
	unsigned int i;

	if (hlen >= sizeof(host))
		return fail(ps, line, "address: '%s' is not an address or CIDR", text);
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	if (al_addr_parse(&net->addr, host) < 0)
		return fail(ps, line, "address: '%s' is not an address or CIDR", text);
	v4 = strchr(host, ':') == NULL;
	if (parse_uint(slash + 1, 0, v4 ? 32 : 128, &prefix) < 0)
		return fail(ps, line, "address: bad prefix length in '%s' (0..%d for %s)",
			    text, v4 ? 32 : 128, v4 ? "IPv4" : "IPv6");
	net->prefix = (uint8_t)(v4 ? prefix + 96 : prefix);
	memcpy(b, net->addr.w, sizeof(b));
	for (i = 0; i < 16; i++)
		if (b[i] & (uint8_t)~prefix_mask(net->prefix, i))
			return fail(ps, line, "host bits set in %s", text);
	return 0;
}

/* Letters, digits, '-' and '_' in dot-separated labels of 1..63; at most 253 in all. */
static bool is_host_name(const char *s)
{
	size_t len = strlen(s), label = 0;
	const char *p;

	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return false;
	for (p = s; p < s + len; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

/* Each address the name has now becomes a /128 (v4-mapped /32) entry; the name is kept. */
static int resolve_host(struct parser *ps, int line, struct al_resource *r, const char *name)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL, *ai;
	size_t added = 0;
	char **hosts;
	int rc = -1, gai;

	gai = getaddrinfo(name, NULL, &hints, &res);
	if (gai != 0) {
		fail(ps, line, "cannot resolve host '%s': %s", name,
		     gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
		goto out;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct al_cidr net = { .prefix = 128 };
		uint16_t port;

		if (al_addr_from_sockaddr(&net.addr, &port, ai->ai_addr) < 0)
			continue;
		if (add_net(ps, r, &net) < 0)
			goto out;
		added++;
	}
	if (added == 0) {
		fail(ps, line, "host '%s' has no IPv4 or IPv6 address", name);
		goto out;
	}
	hosts = reallocarray(r->hosts, r->n_hosts + 1, sizeof(*hosts));
	if (!hosts) {
		oom(ps);
		goto out;
	}
	r->hosts = hosts;
	hosts[r->n_hosts] = strdup(name);
	if (!hosts[r->n_hosts]) {
		oom(ps);
		goto out;
	}
	r->n_hosts++;
	rc = 0;
out:
	if (res)
		freeaddrinfo(res);
	return rc;
}

static int d_address(struct parser *ps, const struct line *ln)
{
	struct al_resource *r = cur_res(ps);
	size_t i;

	for (i = 1; i < ln->n; i++) {
		const char *s = ln->v[i].s;
		struct al_cidr net;

		if (strchr(s, '/')) {
			if (parse_cidr(ps, ln->no, s, &net) < 0)
				return -1;
		} else if (strchr(s, ':') || strspn(s, "0123456789.") == strlen(s)) {
			if (al_addr_parse(&net.addr, s) < 0)
				return fail(ps, ln->no, "address: '%s' is not an address or CIDR", s);
			net.prefix = 128;
		} else if (is_host_name(s)) {
			if (resolve_host(ps, ln->no, r, s) < 0)
				return -1;
			continue;
		} else {
			return fail(ps, ln->no, "address: '%s' is not an address, CIDR or host name",
				    s);
		}
		if (add_net(ps, r, &net) < 0)
			return -1;
	}
	return 0;
}

static int d_port(struct parser *ps, const struct line *ln)
{
	struct al_resource *r = cur_res(ps);
	size_t i, j;

	for (i = 1; i < ln->n; i++) {
		uint16_t port = 0, *v;

		if (parse_port(ps, ln->no, "port", ln->v[i].s, &port) < 0)
			return -1;
		for (j = 0; j < r->n_ports && r->ports[j] != port; j++)
			;
		if (j < r->n_ports)
			continue;
		v = reallocarray(r->ports, r->n_ports + 1, sizeof(*v));
		if (!v)
			return oom(ps);
		r->ports = v;
		v[r->n_ports++] = port;
	}
	return 0;
}

static int d_protocol(struct parser *ps, const struct line *ln)
{
	const char *s = arg1(ln);
	char valid[128] = "";
	size_t i, off = 0;

	if (ps->proto_line)
		return fail(ps, ln->no, "protocol already set at line %d", ps->proto_line);
	for (i = 0; i < AL_ARRAY_LEN(protos); i++) {
		if (strcmp(s, protos[i].name) == 0) {
			cur_res(ps)->proto = protos[i].proto;
			ps->proto_line = ln->no;
			return 0;
		}
	}
	for (i = 0; i < AL_ARRAY_LEN(protos) && off < sizeof(valid); i++) {
		int n = snprintf(valid + off, sizeof(valid) - off, "%s%s",
				 i ? ", " : "", protos[i].name);

		if (n < 0)
			break;
		off += (size_t)n;
	}
	return fail(ps, ln->no, "unknown protocol '%s' (valid: %s)", s, valid);
}

static bool is_resource_name(const char *s);

static int d_upstream_tls(struct parser *ps, const struct line *ln)
{
	static const char *const modes[] = { "disable", "require", "verify-full" };
	struct al_resource *r = cur_res(ps);

	for (size_t i = 0; i < AL_ARRAY_LEN(modes); i++) {
		if (strcmp(arg1(ln), modes[i]) == 0) {
			r->upstream_tls = (enum al_upstream_tls)i;
			r->upstream_tls_line = ln->no;
			return 0;
		}
	}
	return fail(ps, ln->no, "upstream_tls: '%s' (valid: disable, require, verify-full)", arg1(ln));
}

static int d_upstream_auth(struct parser *ps, const struct line *ln)
{
	static const struct {
		const char *name;
		unsigned bit;
	} methods[] = {
		{ "scram-sha-256", AL_UPSTREAM_AUTH_SCRAM },
		{ "md5", AL_UPSTREAM_AUTH_MD5 },
		{ "password", AL_UPSTREAM_AUTH_PASSWORD },
	};
	struct al_resource *r = cur_res(ps);

	if (r->upstream_auth)
		return fail(ps, ln->no, "upstream_auth given twice");
	for (size_t a = 1; a < ln->n; a++) {
		size_t i;

		for (i = 0; i < AL_ARRAY_LEN(methods) && strcmp(ln->v[a].s, methods[i].name) != 0; i++)
			;
		if (i == AL_ARRAY_LEN(methods))
			return fail(ps, ln->no, "upstream_auth: '%s' (valid: scram-sha-256, md5, password)",
				    ln->v[a].s);
		r->upstream_auth |= methods[i].bit;
	}
	return 0;
}

static int d_upstream_ca(struct parser *ps, const struct line *ln)
{
	if (!is_abs_path(arg1(ln)))
		return fail(ps, ln->no, "upstream_ca: '%s' is not an absolute path", arg1(ln));
	return set_string(ps, &cur_res(ps)->upstream_ca, arg1(ln));
}

static int d_tls_name(struct parser *ps, const struct line *ln)
{
	return set_string(ps, &cur_res(ps)->tls_name, arg1(ln));
}

static int d_credential(struct parser *ps, const struct line *ln)
{
	if (!is_resource_name(arg1(ln)))
		return fail(ps, ln->no, "credential: bad name '%s'", arg1(ln));
	return set_string(ps, &cur_res(ps)->credential, arg1(ln));
}

static int parse_duration_ms(const char *s, uint64_t *ms)
{
	static const struct unit units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 }, { "h", 3600 * 1000 }, { NULL, 0 },
	};

	return parse_scaled(s, units, ms);
}

/*
 * The keyword options of a rule that take one value: identity conditions
 * (cgroup GLOB, uid N, exe GLOB) and review settings (approvers G[,G...],
 * count N, timeout DURATION, max_grant DURATION). Returns 1 if w was one
 * (advancing *i past its value), 0 if not, -1 on error (reported).
 */
static int rule_option(struct parser *ps, const struct line *ln, struct al_rule *r, const char *w,
		       const char *val, size_t *i)
{
	static const char *const opts[] = { "cgroup", "uid", "exe", "approvers", "count", "timeout",
					    "max_grant" };
	uint64_t v;
	size_t k;

	for (k = 0; k < AL_ARRAY_LEN(opts) && strcmp(w, opts[k]) != 0; k++)
		;
	if (k == AL_ARRAY_LEN(opts))
		return 0;
	if (!val) {
		fail(ps, ln->no, "rule: '%s' needs a value", w);
		return -1;
	}
	(*i)++;
	switch (k) {
	case 0:
		return set_string(ps, &r->cgroup_glob, val) < 0 ? -1 : 1;
	case 1:
		if (parse_uint(val, 0, 0x7fffffff, &v) < 0)
			break;
		r->uid = (long)v;
		return 1;
	case 2:
		return set_string(ps, &r->exe_glob, val) < 0 ? -1 : 1;
	case 3: {
		char *copy = strdup(val), *save = NULL, *g;

		if (!copy) {
			oom(ps);
			return -1;
		}
		for (g = strtok_r(copy, ",", &save); g; g = strtok_r(NULL, ",", &save)) {
			char **nv = reallocarray(r->approvers, r->n_approvers + 1, sizeof(*nv));

			if (!nv || !(nv[r->n_approvers] = strdup(g))) {
				if (nv)
					r->approvers = nv;
				free(copy);
				oom(ps);
				return -1;
			}
			r->approvers = nv;
			r->n_approvers++;
		}
		free(copy);
		return 1;
	}
	case 4:
		if (parse_uint(val, 1, 16, &v) < 0)
			break;
		r->approvals = (unsigned int)v;
		return 1;
	case 5:
		if (parse_duration_ms(val, &v) < 0 || v < 1000 || v > 24ull * 3600 * 1000)
			break;
		r->review_timeout_ms = (unsigned int)v;
		return 1;
	case 6:
		if (parse_duration_ms(val, &v) < 0 || v > 30ull * 24 * 3600 * 1000)
			break;
		r->max_grant_s = (unsigned int)(v / 1000);
		return 1;
	}
	fail(ps, ln->no, "rule: bad value '%s' for %s", val, w);
	return -1;
}

/* host NAME...: the TLS server names (globs, e.g. *.example.com) an https resource answers. */
static int d_host(struct parser *ps, const struct line *ln)
{
	struct al_resource *r = cur_res(ps);

	for (size_t i = 1; i < ln->n; i++) {
		const char *w = ln->v[i].s;
		char **nv;

		if (!is_host_name(w[0] == '*' && w[1] == '.' ? w + 2 : w))
			return fail(ps, ln->no, "host: '%s' is not a host name (or *.name)", w);
		nv = reallocarray(r->sni, r->n_sni + 1, sizeof(*nv));
		if (!nv)
			return oom(ps);
		r->sni = nv;
		if (!(nv[r->n_sni] = strdup(w)))
			return oom(ps);
		r->n_sni++;
	}
	return 0;
}

/* rule allow|deny|review [conditions] [review options]: see policy/airlock.conf */
static int d_rule(struct parser *ps, const struct line *ln)
{
	struct al_resource *r = cur_res(ps);
	struct al_rule *v, *rule;
	size_t i, off = 0;
	int mode = 0; /* 1 kinds, 2 relations, 3 methods, 4 paths, 5 fingerprints */

	v = reallocarray(r->rules, r->n_rules + 1, sizeof(*v));
	if (!v)
		return oom(ps);
	r->rules = v;
	rule = &v[r->n_rules];
	memset(rule, 0, sizeof(*rule));
	r->n_rules++;
	rule->line = ln->no;
	for (i = 0; i < ln->n && off < sizeof(rule->text); i++) {
		int n = snprintf(rule->text + off, sizeof(rule->text) - off, "%s%s", i ? " " : "",
				 ln->v[i].s);

		if (n < 0)
			break;
		off += (size_t)n;
	}
	rule->uid = -1;
	rule->approvals = 1;
	rule->review_timeout_ms = 10 * 60 * 1000;
	if (strcmp(ln->v[1].s, "allow") == 0)
		rule->allow = AL_ACTION_ALLOW;
	else if (strcmp(ln->v[1].s, "review") == 0)
		rule->allow = AL_ACTION_REVIEW;
	else if (strcmp(ln->v[1].s, "deny") != 0)
		return fail(ps, ln->no, "rule: expected allow, deny or review, not '%s'", ln->v[1].s);
	for (i = 2; i < ln->n; i++) {
		const char *w = ln->v[i].s, *val = i + 1 < ln->n ? ln->v[i + 1].s : NULL;
		enum pg_kind k;
		int opt = rule_option(ps, ln, rule, w, val, &i);

		if (opt < 0)
			return -1;
		if (opt > 0) {
			mode = 0;
		} else if (strcmp(w, "kind") == 0) {
			mode = 1;
		} else if (strcmp(w, "relation") == 0) {
			mode = 2;
		} else if (strcmp(w, "method") == 0) {
			mode = 3;
		} else if (strcmp(w, "path") == 0) {
			mode = 4;
		} else if (strcmp(w, "fingerprint") == 0) {
			mode = 5;
		} else if (strcmp(w, "exec") == 0) {
			rule->exec = 1;
			mode = 0;
		} else if (mode == 3 || mode == 4) {
			char ***lv = mode == 3 ? &rule->methods : &rule->paths;
			size_t *ln_ = mode == 3 ? &rule->n_methods : &rule->n_paths;
			char **nv;

			if (mode == 3 && strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(w))
				return fail(ps, ln->no, "rule: method '%s' is not an upper-case HTTP method", w);
			if (mode == 4 && w[0] != '/' && w[0] != '*')
				return fail(ps, ln->no, "rule: path '%s' does not start with '/'", w);
			nv = reallocarray(*lv, *ln_ + 1, sizeof(*nv));
			if (!nv)
				return oom(ps);
			*lv = nv;
			if (!(nv[*ln_] = strdup(w)))
				return oom(ps);
			(*ln_)++;
		} else if (strcmp(w, "unbounded_write") == 0) {
			rule->unbounded_write = 1;
			mode = 0;
		} else if (mode == 1) {
			if (pg_kind_parse(w, &k) < 0)
				return fail(ps, ln->no, "rule: unknown kind '%s' (see `airlockctl classify"
					    " pg`)", w);
			rule->kinds |= 1u << k;
		} else if (mode == 5) {
			char **fv;

			if (strlen(w) != PG_FINGERPRINT_LEN || strspn(w, "0123456789abcdef") != PG_FINGERPRINT_LEN)
				return fail(ps, ln->no, "rule: fingerprint '%s' is not %d lower-case hex digits "
					    "(see `airlockctl classify pg`)", w, PG_FINGERPRINT_LEN);
			fv = reallocarray(rule->fingerprints, rule->n_fingerprints + 1, sizeof(*fv));
			if (!fv)
				return oom(ps);
			rule->fingerprints = fv;
			if (!(fv[rule->n_fingerprints] = strdup(w)))
				return oom(ps);
			rule->n_fingerprints++;
		} else if (mode == 2) {
			char **rv = reallocarray(rule->relations, rule->n_relations + 1, sizeof(*rv));

			if (!rv)
				return oom(ps);
			rule->relations = rv;
			rv[rule->n_relations] = strdup(w);
			if (!rv[rule->n_relations])
				return oom(ps);
			rule->n_relations++;
		} else {
			return fail(ps, ln->no, "rule: unexpected '%s' (conditions: method M..., path GLOB..., exec, kind K..., "
				    "relation R..., fingerprint F..., unbounded_write)", w);
		}
	}
	if (rule->allow != AL_ACTION_REVIEW &&
	    (rule->n_approvers || rule->approvals != 1 || rule->max_grant_s))
		return fail(ps, ln->no, "rule: approvers, count and max_grant go with review");
	if (mode == 1 && !rule->kinds)
		return fail(ps, ln->no, "rule: 'kind' needs at least one kind");
	if (mode == 3 && !rule->n_methods)
		return fail(ps, ln->no, "rule: 'method' needs at least one method");
	if (mode == 4 && !rule->n_paths)
		return fail(ps, ln->no, "rule: 'path' needs at least one glob");
	if (mode == 2 && !rule->n_relations)
		return fail(ps, ln->no, "rule: 'relation' needs at least one name");
	if (mode == 5 && !rule->n_fingerprints)
		return fail(ps, ln->no, "rule: 'fingerprint' needs at least one");
	return 0;
}

static const struct directive res_directives[] = {
	{ "address", 1, 0, d_address },
	{ "port", 1, 0, d_port },
	{ "protocol", 1, 1, d_protocol },
	{ "upstream_tls", 1, 1, d_upstream_tls },
	{ "upstream_ca", 1, 1, d_upstream_ca },
	{ "upstream_auth", 1, 3, d_upstream_auth },
	{ "tls_name", 1, 1, d_tls_name },
	{ "credential", 1, 1, d_credential },
	{ "rule", 1, 0, d_rule },
	{ "host", 1, 0, d_host },
};

/* 1..63 of A-Z a-z 0-9 . _ - : names appear in logs, the console and airlockctl arguments. */
static bool is_resource_name(const char *s)
{
	size_t len = strlen(s);

	return len > 0 && len < AL_NAME_MAX &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

static int open_resource(struct parser *ps, const struct line *ln, size_t nargs)
{
	struct al_config *c = ps->c;
	struct al_resource *v, *r;
	const char *name;
	size_t i;

	if (nargs != 1)
		return fail(ps, ln->no, "resource: expected 'resource NAME {'");
	name = arg1(ln);
	if (!is_resource_name(name))
		return fail(ps, ln->no, "resource: bad name '%s' (1..%d characters of"
			    " A-Z a-z 0-9 . _ -)", name, AL_NAME_MAX - 1);
	for (i = 0; i < c->n_resources; i++)
		if (strcmp(c->resources[i].name, name) == 0)
			return fail(ps, ln->no, "duplicate resource '%s' (first at line %d)",
				    name, c->resources[i].line);
	v = reallocarray(c->resources, c->n_resources + 1, sizeof(*v));
	if (!v)
		return oom(ps);
	c->resources = v;
	r = &v[c->n_resources];
	memset(r, 0, sizeof(*r));
	memcpy(r->name, name, strlen(name) + 1);
	r->proto = AL_PROTO_TCP;
	r->line = ln->no;
	ps->cur = (long)c->n_resources++;
	ps->proto_line = 0;
	return 0;
}

static int close_resource(struct parser *ps)
{
	struct al_resource *r = cur_res(ps);

	if (r->n_nets == 0)
		return fail(ps, r->line, "resource '%s' has no address", r->name);
	if (r->n_ports == 0)
		return fail(ps, r->line, "resource '%s' has no port", r->name);
	if (r->proto == AL_PROTO_TCP && (r->n_rules || r->credential || r->tls_name ||
					 r->upstream_ca || r->upstream_tls))
		return fail(ps, r->line, "resource '%s': rule, credential, tls_name and upstream_* "
			    "need protocol postgres or https", r->name);
	if (r->proto != AL_PROTO_HTTPS && r->n_sni)
		return fail(ps, r->line, "resource '%s': host needs protocol https", r->name);
	if (r->proto == AL_PROTO_HTTPS) {
		if (r->upstream_tls_line && r->upstream_tls == AL_UPSTREAM_TLS_DISABLE)
			return fail(ps, r->upstream_tls_line, "resource '%s': https goes upstream over TLS "
				    "(upstream_tls require or verify-full)", r->name);
		if (!r->upstream_tls_line)
			r->upstream_tls = AL_UPSTREAM_TLS_VERIFY_FULL;
	}
	for (size_t i = 0; i < r->n_rules; i++) {
		const struct al_rule *ru = &r->rules[i];
		int http = ru->n_methods || ru->n_paths || ru->exec;
		int sql = ru->kinds || ru->n_relations || ru->unbounded_write || ru->n_fingerprints;

		if (r->proto == AL_PROTO_HTTPS && sql)
			return fail(ps, ru->line, "rule: kind, relation, fingerprint and unbounded_write are "
				    "for postgres resources (https: method, path, exec)");
		if (r->proto == AL_PROTO_POSTGRES && http)
			return fail(ps, ru->line, "rule: method, path and exec are for https resources");
	}
	if (r->proto == AL_PROTO_POSTGRES && !r->credential)
		return fail(ps, r->line, "resource '%s' needs a credential (the upstream login, "
			    "kept in the secrets file)", r->name);
	if (r->upstream_auth && r->proto != AL_PROTO_POSTGRES)
		return fail(ps, r->line, "resource '%s': upstream_auth is for postgres resources", r->name);
	if (r->proto == AL_PROTO_POSTGRES && !r->upstream_auth)
		/* md5's answer and a password are the credential to whoever asks: only to a server
		 * whose certificate was checked */
		r->upstream_auth = AL_UPSTREAM_AUTH_SCRAM |
			(r->upstream_tls == AL_UPSTREAM_TLS_VERIFY_FULL ?
			 AL_UPSTREAM_AUTH_MD5 | AL_UPSTREAM_AUTH_PASSWORD : 0);
	if (r->upstream_ca && r->upstream_tls != AL_UPSTREAM_TLS_VERIFY_FULL)
		return fail(ps, r->line, "resource '%s': upstream_ca needs upstream_tls verify-full",
			    r->name);
	if (!r->tls_name) {
		/* The name agents dial: the first host name, else the first address. */
		char buf[64];

		if (r->n_hosts)
			r->tls_name = strdup(r->hosts[0]);
		else {
			al_addr_str(&r->nets[0].addr, buf, sizeof(buf));
			r->tls_name = strdup(buf);
		}
		if (!r->tls_name)
			return oom(ps);
	}
	ps->cur = -1;
	return 0;
}

/* ---- lines ---- */

static int run_directive(struct parser *ps, const struct line *ln, const struct directive *d,
			 size_t nargs)
{
	if (nargs < d->min_args)
		return fail(ps, ln->no, "%s: missing argument", d->name);
	if (d->max_args && nargs > d->max_args)
		return fail(ps, ln->no, "%s: too many arguments (takes %zu)", d->name, d->max_args);
	return d->fn(ps, ln);
}

static int d_include(struct parser *ps, const struct line *ln);

static int top_line(struct parser *ps, const struct line *ln, bool opens)
{
	const char *name = ln->v[0].s;
	size_t nargs = ln->n - 1 - opens, i;

	if (strcmp(name, "resource") == 0) {
		if (!opens)
			return fail(ps, ln->no, "resource: expected 'resource NAME {'");
		return open_resource(ps, ln, nargs);
	}
	if (strcmp(name, "include") == 0) {
		if (opens || nargs != 1)
			return fail(ps, ln->no, "include: expected 'include \"/path/*.conf\"'");
		return d_include(ps, ln);
	}
	for (i = 0; i < TD_COUNT; i++) {
		if (strcmp(name, top_directives[i].name) != 0)
			continue;
		if (opens)
			return fail(ps, ln->no, "unexpected '{' after '%s'", name);
		/* resolver lines add up, like address lines in a resource */
		if (ps->set_at[i] && i != TD_RESOLVER)
			return fail(ps, ln->no, "%s already set at line %d", name, ps->set_at[i]);
		if (run_directive(ps, ln, &top_directives[i], nargs) < 0)
			return -1;
		ps->set_at[i] = ln->no;
		return 0;
	}
	return fail(ps, ln->no, "unknown directive '%s'", name);
}

static int resource_line(struct parser *ps, const struct line *ln, bool opens)
{
	const struct al_resource *r = cur_res(ps);
	const char *name = ln->v[0].s;
	size_t i;

	if (strcmp(name, "resource") == 0)
		return fail(ps, ln->no, "resource inside resource '%s' (is the '}' for line %d"
			    " missing?)", r->name, r->line);
	if (opens)
		return fail(ps, ln->no, "unexpected '{'");
	for (i = 0; i < AL_ARRAY_LEN(res_directives); i++)
		if (strcmp(name, res_directives[i].name) == 0)
			return run_directive(ps, ln, &res_directives[i], ln->n - 1);
	return fail(ps, ln->no, "unknown directive '%s' in resource '%s'", name, r->name);
}

/* A line is "}" alone, "resource NAME {", or a directive and its arguments. */
static int handle_line(struct parser *ps, const struct line *ln)
{
	bool opens = ln->n > 1 && ln->v[ln->n - 1].kind == TOK_LBRACE;
	size_t i;

	if (ln->v[0].kind == TOK_RBRACE) {
		if (ps->cur < 0)
			return fail(ps, ln->no, "'}' without an open resource");
		if (ln->n > 1)
			return fail(ps, ln->no, "'}' must be on a line of its own");
		return close_resource(ps);
	}
	if (ln->v[0].kind == TOK_LBRACE)
		return fail(ps, ln->no, "unexpected '{'");
	for (i = 1; i < ln->n - opens; i++) {
		if (ln->v[i].kind == TOK_LBRACE)
			return fail(ps, ln->no, "unexpected '{'");
		if (ln->v[i].kind == TOK_RBRACE)
			return fail(ps, ln->no, "'}' must be on a line of its own");
	}
	if (ps->cur >= 0)
		return resource_line(ps, ln, opens);
	return top_line(ps, ln, opens);
}

/* ---- public ---- */

static struct al_config *config_new(const char *source)
{
	struct al_config *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->source = strdup(source);
	c->control_socket = strdup(DEF_CONTROL_SOCKET);
	c->review_socket = strdup("/run/airlock/review.sock");
	c->store_path = strdup(DEF_STORE);
	c->pin_root = strdup(DEF_PIN_ROOT);
	c->secrets_path = strdup(DEF_SECRETS);
	c->ca_dir = strdup(DEF_CA_DIR);
	c->pg_max_message = DEF_PG_MAX_MESSAGE;
	c->pg_login_timeout_ms = DEF_PG_LOGIN_TIMEOUT_MS;
	c->http_max_body = DEF_HTTP_MAX_BODY;
	c->http_head_timeout_ms = DEF_HTTP_HEAD_TIMEOUT_MS;
	c->http_body_min_rate = DEF_HTTP_BODY_MIN_RATE;
	c->http_response_timeout_ms = DEF_HTTP_RESPONSE_TIMEOUT_MS;
	c->nft_table = strdup(DEF_NFT_TABLE);
	if (!c->source || !c->control_socket || !c->review_socket || !c->store_path || !c->pin_root ||
	    !c->secrets_path || !c->ca_dir || !c->nft_table) {
		config_free(c);
		return NULL;
	}
	c->steer_port = DEF_STEER_PORT;
	c->default_action = AL_DEFAULT_RELAY;
	c->connect_timeout_ms = DEF_CONNECT_TIMEOUT_MS;
	c->commit_interval_ms = DEF_COMMIT_INTERVAL_MS;
	c->max_sessions = DEF_MAX_SESSIONS;
	c->relay_buffer = DEF_RELAY_BUFFER;
	c->tproxy_mark = DEF_TPROXY_MARK;
	c->tproxy_table = DEF_TPROXY_TABLE;
	c->record_limit = 1024 * 1024;
	c->record_retention_s = 30 * 86400;
	c->console_enabled = 1;
	c->console_port = DEF_CONSOLE_PORT;
	c->console_idle_s = 30 * 60;
	c->console_head_s = 10;
	c->console_session_max_s = 12 * 3600;
	if (al_addr_parse(&c->console_addr, DEF_CONSOLE_ADDR) < 0) {
		config_free(c);
		return NULL;
	}
	return c;
}

/* Parses every line of ps's text into ps->c. */
static int parse_lines(struct parser *ps)
{
	struct line ln = { 0 };
	bool eof = false;
	int rc = -1;

	while (!eof) {
		if (lex_line(ps, &ln, &eof) < 0)
			goto out;
		if (ln.n && handle_line(ps, &ln) < 0)
			goto out;
		line_clear(&ln);
	}
	if (ps->cur >= 0) {
		const struct al_resource *r = cur_res(ps);

		fail(ps, r->line, "resource '%s' is not closed (missing '}')", r->name);
		goto out;
	}
	rc = 0;
out:
	line_clear(&ln);
	return rc;
}

static char *read_text(const char *path, char *err, size_t errlen);
static void set_err(char *err, size_t errlen, const char *fmt, ...) AL_PRINTF(3, 4);

/* include "GLOB": each matching file, in name order, as if written here. */
static int d_include(struct parser *ps, const struct line *ln)
{
	glob_t g;
	int rc = 0, grc;

	if (!is_abs_path(arg1(ln)))
		return fail(ps, ln->no, "include: '%s' is not an absolute path", arg1(ln));
	if (ps->depth >= 4)
		return fail(ps, ln->no, "include: nested more than 4 deep");
	grc = glob(arg1(ln), 0, NULL, &g);
	if (grc == GLOB_NOMATCH)
		return 0; /* an empty policy.d is fine */
	if (grc != 0)
		return fail(ps, ln->no, "include: cannot list '%s'", arg1(ln));
	for (size_t i = 0; i < g.gl_pathc && rc == 0; i++) {
		struct parser sub = *ps;
		char *text = read_text(g.gl_pathv[i], ps->err, ps->errlen);

		if (!text) {
			rc = -1;
			break;
		}
		sub.source = g.gl_pathv[i];
		sub.p = text;
		sub.line = 1;
		sub.cur = -1;
		sub.proto_line = 0;
		sub.depth = ps->depth + 1;
		rc = parse_lines(&sub);
		memcpy(ps->set_at, sub.set_at, sizeof(ps->set_at));
		free(text);
	}
	globfree(&g);
	return rc;
}

int config_parse(const char *source, const char *text, struct al_config **out,
		 char *err, size_t errlen)
{
	struct parser ps = {
		.source = source, .p = text, .line = 1, .err = err, .errlen = errlen, .cur = -1,
	};
	int rc = -1;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	ps.c = config_new(source);
	if (!ps.c) {
		oom(&ps);
		goto out;
	}
	if (parse_lines(&ps) < 0)
		goto out;
	/* Unless given, the review socket sits next to the control socket. */
	if (!ps.set_at[TD_REVIEW_SOCKET]) {
		const char *slash = strrchr(ps.c->control_socket, '/');
		char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
		int n = snprintf(path, sizeof(path), "%.*s/review.sock",
				 (int)(slash ? slash - ps.c->control_socket : 0), ps.c->control_socket);

		if (n < 0 || (size_t)n >= sizeof(path) || set_string(&ps, &ps.c->review_socket, path) < 0) {
			fail(&ps, ps.set_at[TD_CONTROL_SOCKET], "control_socket: no room for review.sock beside it");
			goto out;
		}
	}
	/* Unless given, the TPROXY listener takes the port after the steer listener's. */
	if (!ps.set_at[TD_TPROXY_PORT])
		ps.c->tproxy_port = ps.c->steer_port == 65535 ? 65534 : ps.c->steer_port + 1;
	if (ps.c->tproxy_port == ps.c->steer_port) {
		fail(&ps, ps.set_at[TD_TPROXY_PORT],
		     "tproxy_port and steer_port are both %u: they need a port each", ps.c->steer_port);
		goto out;
	}
	if (!ps.c->console_cert != !ps.c->console_key) {
		fail(&ps, ps.set_at[ps.c->console_cert ? TD_CONSOLE_CERT : TD_CONSOLE_KEY],
		     "console_cert and console_key go together");
		goto out;
	}
	*out = ps.c;
	ps.c = NULL;
	rc = 0;
out:
	config_free(ps.c);
	return rc;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) AL_PRINTF(3, 4);

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* A whole configuration file as a string; NULL with a message. */
static char *read_text(const char *path, char *err, size_t errlen)
{
	size_t len = 0, cap = 0;
	char *buf = NULL;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *nb;

			if (cap > MAX_FILE_SIZE) {
				set_err(err, errlen, "%s: larger than %d bytes", path, MAX_FILE_SIZE);
				goto fail;
			}
			cap = cap ? 2 * cap : 16384;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				set_err(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len > MAX_FILE_SIZE) {
		set_err(err, errlen, "%s: larger than %d bytes", path, MAX_FILE_SIZE);
		free(buf);
		return NULL;
	}
	if (!buf && !(buf = malloc(1))) {
		set_err(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len)) {
		set_err(err, errlen, "%s: contains a NUL byte", path);
		free(buf);
		return NULL;
	}
	return buf;
fail:
	close(fd);
	free(buf);
	return NULL;
}

int config_load_file(const char *path, struct al_config **out, char *err, size_t errlen)
{
	char *buf;
	int rc;

	*out = NULL;
	buf = read_text(path, err, errlen);
	if (!buf)
		return -1;
	rc = config_parse(path, buf, out, err, errlen);
	free(buf);
	return rc;
}

int config_load_default(struct al_config **out, char *err, size_t errlen)
{
	return config_parse("<embedded>", al_default_conf, out, err, errlen);
}

void config_free(struct al_config *c)
{
	size_t i, j;

	if (!c)
		return;
	for (i = 0; i < c->n_resources; i++) {
		struct al_resource *r = &c->resources[i];

		for (j = 0; j < r->n_hosts; j++)
			free(r->hosts[j]);
		free(r->hosts);
		free(r->nets);
		free(r->ports);
		free(r->upstream_ca);
		free(r->tls_name);
		free(r->credential);
		for (j = 0; j < r->n_sni; j++)
			free(r->sni[j]);
		free(r->sni);
		for (j = 0; j < r->n_rules; j++) {
			for (size_t k = 0; k < r->rules[j].n_relations; k++)
				free(r->rules[j].relations[k]);
			free(r->rules[j].relations);
			for (size_t k = 0; k < r->rules[j].n_approvers; k++)
				free(r->rules[j].approvers[k]);
			free(r->rules[j].approvers);
			free(r->rules[j].cgroup_glob);
			free(r->rules[j].exe_glob);
			for (size_t k = 0; k < r->rules[j].n_methods; k++)
				free(r->rules[j].methods[k]);
			free(r->rules[j].methods);
			for (size_t k = 0; k < r->rules[j].n_paths; k++)
				free(r->rules[j].paths[k]);
			free(r->rules[j].paths);
			for (size_t k = 0; k < r->rules[j].n_fingerprints; k++)
				free(r->rules[j].fingerprints[k]);
			free(r->rules[j].fingerprints);
		}
		free(r->rules);
	}
	free(c->resources);
	free(c->source);
	free(c->control_socket);
	free(c->review_socket);
	free(c->store_path);
	free(c->pin_root);
	free(c->secrets_path);
	free(c->review_hook);
	free(c->review_webhook);
	free(c->review_webhook_secret);
	free(c->ca_dir);
	free(c->nft_table);
	free(c->console_cert);
	free(c->console_key);
	free(c);
}

unsigned int config_sessions_per_agent(const struct al_config *c, uint64_t cap)
{
	uint64_t half = cap / 2;

	if (c->max_sessions_per_agent)
		return c->max_sessions_per_agent;
	return half < 1 ? 1 : half > UINT_MAX ? UINT_MAX : (unsigned int)half;
}

int config_resource_serves(const struct al_resource *r, const struct al_addr *dst, uint16_t port)
{
	size_t j;

	for (j = 0; j < r->n_ports && r->ports[j] != port; j++)
		;
	if (j == r->n_ports)
		return 0;
	for (j = 0; j < r->n_nets; j++)
		if (al_cidr_contains(&r->nets[j], dst))
			return 1;
	return 0;
}

const struct al_resource *config_match(const struct al_config *c, const struct al_addr *dst,
				       uint16_t port)
{
	for (size_t i = 0; c && i < c->n_resources; i++)
		if (config_resource_serves(&c->resources[i], dst, port))
			return &c->resources[i];
	return NULL;
}

int config_system_resolvers(const char *resolv_conf, struct al_addr *out, size_t max)
{
	char line[512], word[64], addr[INET6_ADDRSTRLEN + 16];
	FILE *f = fopen(resolv_conf, "re");
	size_t n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f) && n < max) {
		char *pct;

		if (sscanf(line, "%63s %61s", word, addr) != 2 || strcmp(word, "nameserver") != 0)
			continue;
		pct = strchr(addr, '%'); /* fe80::1%eth0: the zone does not matter here */
		if (pct)
			*pct = '\0';
		if (al_addr_parse(&out[n], addr) == 0)
			n++;
	}
	fclose(f);
	return (int)n;
}

const char *config_proto_name(enum al_proto p)
{
	size_t i;

	for (i = 0; i < AL_ARRAY_LEN(protos); i++)
		if (protos[i].proto == p)
			return protos[i].name;
	return "unknown";
}

/*
 * A glob condition on what could not be read for this agent (its executable: it exited, no
 * CAP_SYS_PTRACE, a PID namespace; its cgroup path: the cgroup went away) holds for a rule
 * that refuses or holds the command and fails for one that lets it through: an unknown
 * executable does not slip past "rule deny ... exe X" (fail closed). So does a uid condition
 * for an agent whose uid is not known (uid -1: one behind a pinned interface).
 */
static int glob_matches(const struct al_rule *r, const char *glob, const char *value)
{
	if (!value)
		return r->allow != AL_ACTION_ALLOW;
	return fnmatch(glob, value, 0) == 0;
}

int config_rule_identity_matches(const struct al_rule *r, const char *cgroup_path, long uid,
				 const char *exe)
{
	if (r->uid >= 0 && (uid < 0 ? r->allow == AL_ACTION_ALLOW : r->uid != uid))
		return 0;
	if (r->cgroup_glob && !glob_matches(r, r->cgroup_glob, cgroup_path))
		return 0;
	if (r->exe_glob && !glob_matches(r, r->exe_glob, exe))
		return 0;
	return 1;
}

/* A relation name as PostgreSQL reads it: up to three parts, [catalog.][schema.]name, each
 * unquoted (folded to lower case) or "quoted" ("" is a quote). 0, or -1 if it is not one. */
struct relname {
	char part[3][256];
	int n;
};

static int relname_parse(const char *s, struct relname *out)
{
	out->n = 0;
	for (;;) {
		char *p;
		size_t o = 0;

		if (out->n == 3)
			return -1;
		p = out->part[out->n++];
		if (*s == '"') {
			for (s++;; s++) {
				if (!*s)
					return -1;
				if (*s == '"' && s[1] != '"')
					break;
				s += *s == '"';
				if (o + 1 >= sizeof(out->part[0]))
					return -1;
				p[o++] = *s;
			}
			s++;
		} else {
			for (; *s && *s != '.' && *s != '"'; s++) {
				if (o + 1 >= sizeof(out->part[0]))
					return -1;
				p[o++] = *s >= 'A' && *s <= 'Z' ? (char)(*s - 'A' + 'a') : *s;
			}
		}
		p[o] = 0;
		if (!o)
			return -1;
		if (!*s)
			return 0;
		if (*s++ != '.')
			return -1;
	}
}

/*
 * Whether a rule's relation names the statement's, which the classifier gives as the query
 * wrote it, so an unqualified name is whatever table search_path finds (public.t, the agent's
 * own schema's, a temporary one). Names compare as PostgreSQL folds them ("Payroll" is not
 * payroll). A rule that refuses or holds meets every table the name could be: a name left
 * out on either side (schema, catalog) matches any, and letters compare without case, so
 * 'rule deny relation public.payroll' meets payroll, public.payroll and db.public.payroll,
 * and 'rule deny relation payroll' meets them and other.payroll. An allow rule meets only a
 * table the name surely is: what the rule qualifies the statement must qualify alike
 * ('rule allow relation public.t' is not met by a bare t), and case counts.
 */
static int relation_matches(const struct al_rule *r, const char *rule_rel, const char *rel)
{
	struct relname a, b;
	int strict = r->allow == AL_ACTION_ALLOW;

	if (relname_parse(rule_rel, &a) || relname_parse(rel, &b))
		return strcasecmp(rule_rel, rel) == 0;
	for (int i = 1; i <= 3; i++) {
		const char *x = i <= a.n ? a.part[a.n - i] : NULL, *y = i <= b.n ? b.part[b.n - i] : NULL;

		if (!x || (!y && !strict))
			continue;
		if (!y || (strict ? strcmp(x, y) : strcasecmp(x, y)))
			return 0;
	}
	return 1;
}

/*
 * A statement may be several kinds at once (a MERGE that deletes is merge and delete, an upsert
 * insert and update, COPY FROM copy and insert): a deny or review rule meets it if it names any
 * of them, an allow rule only if it names every one, so no kind a statement is slips past a
 * rule that holds it behind an allow rule for another.
 */
static int kinds_match(const struct al_rule *r, const struct al_subject *s)
{
	uint32_t k = s->kinds ? s->kinds : 1u << s->kind;

	if (r->allow == AL_ACTION_ALLOW)
		return (k & ~r->kinds) == 0;
	return (k & r->kinds) != 0;
}

static int rule_matches(const struct al_rule *r, const struct al_subject *s)
{
	if (!config_rule_identity_matches(r, s->cgroup_path, s->uid, s->exe))
		return 0;
	if (r->kinds && !kinds_match(r, s))
		return 0;
	if (r->exec && !s->k8s_exec)
		return 0;
	if (r->n_methods) {
		int hit = 0;

		for (size_t i = 0; i < r->n_methods && !hit && s->method; i++)
			hit = strcmp(r->methods[i], s->method) == 0;
		if (!hit)
			return 0;
	}
	if (r->n_paths) {
		int hit = 0;

		for (size_t i = 0; i < r->n_paths && !hit && s->path; i++)
			hit = fnmatch(r->paths[i], s->path, 0) == 0;
		if (!hit)
			return 0;
	}
	if (r->unbounded_write && !s->unbounded_write)
		return 0;
	if (r->n_fingerprints) {
		int hit = 0;

		for (size_t i = 0; i < r->n_fingerprints && !hit && s->fingerprint; i++)
			hit = strcmp(r->fingerprints[i], s->fingerprint) == 0;
		if (!hit)
			return 0;
	}
	/* A rule that refuses or holds meets a statement naming any of its relations, an allow
	 * rule only one whose every relation is one of its own; relations named by text ("*")
	 * could be any table: every deny and review rule's, no allow rule's. */
	if (r->n_relations) {
		int any = 0, all = s->n_relations > 0;

		for (size_t j = 0; j < s->n_relations; j++) {
			int hit = strcmp(s->relations[j], "*") == 0 && r->allow != AL_ACTION_ALLOW;

			for (size_t i = 0; i < r->n_relations && !hit; i++)
				hit = relation_matches(r, r->relations[i], s->relations[j]);
			any |= hit;
			all &= hit;
		}
		if (!(r->allow == AL_ACTION_ALLOW ? all : any))
			return 0;
	}
	return 1;
}

/* Built in, before any rule: a statement that would make the server read the statements after
 * it otherwise than libpg_query does (a backslash or a multibyte character's second byte taken
 * as a quote) would let them run unclassified. */
const struct al_rule config_unsafe_setting_rule = {
	.allow = AL_ACTION_DENY, .uid = -1,
	.text = "built in: standard_conforming_strings, client_encoding and backslash_quote stay as they are",
};

const struct al_rule *config_decide_stmt(const struct al_resource *res, const struct pg_stmt *st,
					 const struct al_subject *who)
{
	struct al_subject subj = {
		.kind = (int)st->kind, .kinds = st->kinds, .relations = (const char *const *)st->relations,
		.n_relations = st->n_relations, .unbounded_write = st->unbounded_write,
		.fingerprint = st->fingerprint, .cgroup_path = who->cgroup_path, .uid = who->uid,
		.exe = who->exe,
	};

	if (st->unsafe_setting)
		return &config_unsafe_setting_rule;
	return config_decide(res, &subj);
}

static int sni_answers(const struct al_resource *r, const char *sni)
{
	if (r->n_sni == 0)
		return 1;
	for (size_t i = 0; i < r->n_sni; i++)
		if (sni[0] && fnmatch(r->sni[i], sni, FNM_CASEFOLD) == 0)
			return 1;
	return 0;
}

const struct al_resource *config_https_resource(const struct al_config *cfg, const struct al_resource *first,
						const struct al_addr *dst, uint16_t port, const char *sni)
{
	if (first && first->proto == AL_PROTO_HTTPS && sni_answers(first, sni))
		return first;
	for (size_t i = 0; dst && i < cfg->n_resources; i++) {
		const struct al_resource *r = &cfg->resources[i];

		if (r->proto == AL_PROTO_HTTPS && sni_answers(r, sni) && config_resource_serves(r, dst, port))
			return r;
	}
	return NULL;
}

static const struct al_rule *first_match(const struct al_resource *res, const struct al_subject *s)
{
	for (size_t i = 0; i < res->n_rules; i++)
		if (rule_matches(&res->rules[i], s))
			return &res->rules[i];
	return NULL;
}

static int strictness(const struct al_rule *r)
{
	return !r ? 0 : r->allow == AL_ACTION_DENY ? 2 : r->allow == AL_ACTION_REVIEW ? 1 : 0;
}

/* s as every method at once: the strictest of its decisions as each method a rule names, and
 * as one no rule names (method NULL meets only rules without methods). */
static const struct al_rule *decide_any_method(const struct al_resource *res, const struct al_subject *s)
{
	struct al_subject t = *s;
	const struct al_rule *best, *r;

	t.method = NULL;
	best = first_match(res, &t);
	for (size_t i = 0; i < res->n_rules; i++)
		for (size_t k = 0; k < res->rules[i].n_methods; k++) {
			t.method = res->rules[i].methods[k];
			r = first_match(res, &t);
			if (strictness(r) > strictness(best))
				best = r;
		}
	return best;
}

const struct al_rule *config_decide(const struct al_resource *res, const struct al_subject *s)
{
	if (s->method && strcmp(s->method, AL_METHOD_ANY) == 0)
		return decide_any_method(res, s);
	return first_match(res, s);
}

const struct al_rule *config_decide_methods(const struct al_resource *res, const struct al_subject *s,
					    const char *const *methods, size_t n)
{
	const struct al_rule *best = config_decide(res, s), *r;
	struct al_subject t = *s;

	for (size_t i = 0; i < n; i++) {
		t.method = methods[i];
		r = config_decide(res, &t);
		if (strictness(r) > strictness(best))
			best = r;
	}
	return best;
}

const char *config_action_name(int action)
{
	return action == AL_ACTION_DENY ? "deny" : action == AL_ACTION_REVIEW ? "review" : "allow";
}
