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

void al_buf_add(struct al_buf *b, const void *data, size_t n)
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
