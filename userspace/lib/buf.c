/* The growing byte string (struct al_buf) the parsers, the store and the CLI build text in; depends on nothing but libc, so the pure parsers' fuzz drivers can link it alone. */
#include <airlock/common.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Room for n more bytes and the NUL: 0, or -1 (oom set, nothing more is added). */
static int grow(struct al_buf *b, size_t n)
{
	size_t cap;
	char *np;

	if (b->oom)
		return -1;
	if (b->len + n + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + n + 1)
		cap *= 2;
	np = realloc(b->p, cap);
	if (!np) {
		b->oom = 1;
		return -1;
	}
	b->p = np;
	b->cap = cap;
	return 0;
}

void al_buf_add_grow(struct al_buf *b, const void *data, size_t n)
{
	if (grow(b, n) < 0)
		return;
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void al_buf_str(struct al_buf *b, const char *s)
{
	al_buf_add(b, s, strlen(s));
}

void al_buf_fmt(struct al_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || grow(b, (size_t)n) < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* 1 for a byte a JSON string holds as it is: printable ASCII and DEL, but '"' and '\\'. */
static const unsigned char json_plain[256] = {
	[0x20 ... 0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7f] = 1,
};

void al_buf_json_str(struct al_buf *b, const void *text, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	const unsigned char *v = text;
	size_t i = 0, start = 0, k;

	/* room for the quotes and the text at once: most strings need no escape */
	if (grow(b, n + 2) < 0)
		return;
	b->p[b->len++] = '"';
	b->p[b->len] = '\0';
	while (i < n) {
		unsigned char c;
		char esc[7];
		const char *e = esc;
		size_t en = 2;

		while (i < n && json_plain[v[i]])
			i++;
		if (i == n)
			break;
		c = v[i];
		if (c >= 0x80 && (k = al_utf8_seq(v + i, n - i)) != 0) {
			i += k;
			continue;
		}
		al_buf_add(b, v + start, i - start);
		esc[0] = '\\';
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		default:
			if (c < 0x20) {
				memcpy(esc, "\\u00", 4);
				esc[4] = hx[c >> 4];
				esc[5] = hx[c & 15];
				en = 6;
			} else {
				/* Not UTF-8 (comm, exe and cgroup paths need not be): U+FFFD. */
				e = "\xef\xbf\xbd";
				en = 3;
			}
		}
		al_buf_add(b, e, en);
		start = ++i;
	}
	al_buf_add(b, v + start, n - start);
	al_buf_add(b, "\"", 1);
}
