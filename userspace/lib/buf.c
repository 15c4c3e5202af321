/* The growing byte string (struct al_buf) the parsers and the store build text in; depends on nothing but libc, so the pure parsers' fuzz drivers can link it alone. */
#include <airlock/common.h>

#include <stdlib.h>

void al_buf_add(struct al_buf *b, const void *data, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void al_buf_str(struct al_buf *b, const char *s)
{
	al_buf_add(b, s, strlen(s));
}
