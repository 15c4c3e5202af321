/* Unit tests for struct al_buf: appending bytes, strings and formatted text, growth, the NUL, and out of memory. */
#include <airlock/common.h>

#include <stdlib.h>

#include "harness.h"

static void test_add_fmt(void)
{
	struct al_buf b = { 0 };
	char big[1000];

	al_buf_add(&b, "ab\0c", 4);                     /* bytes, a NUL among them */
	CHECK(b.len == 4 && memcmp(b.p, "ab\0c", 5) == 0);
	al_buf_str(&b, "-x");
	al_buf_fmt(&b, "|%d|%s|", 42, "y");
	CHECK(b.len == 12 && memcmp(b.p, "ab\0c-x|42|y|", 12) == 0 && b.p[12] == '\0');
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	al_buf_fmt(&b, "%s%s", big, big);               /* grows past its first 256 bytes */
	CHECK(b.len == 12 + 2 * 999 && b.p[b.len] == '\0' && b.p[b.len - 1] == 'z' && !b.oom);
	al_buf_fmt(&b, "%s", "");                       /* nothing added, still terminated */
	CHECK(b.len == 12 + 2 * 999 && b.p[b.len] == '\0');
	free(b.p);
}

static void test_oom(void)
{
	struct al_buf b = { 0 };

	b.oom = 1;                                      /* once out of memory, nothing more is added */
	al_buf_str(&b, "x");
	al_buf_fmt(&b, "%d", 1);
	CHECK(b.len == 0 && b.p == NULL);
}

static void test_fmt_empty(void)
{
	struct al_buf b = { 0 };

	al_buf_fmt(&b, "%s", "");                       /* an empty text still gives a string */
	CHECK(b.p && b.len == 0 && b.p[0] == '\0');
	free(b.p);
}

/* JSON strings as json.dumps(s, ensure_ascii=False) writes them; bytes that are not UTF-8
 * become U+FFFD (checked against Python's output for the valid ones). */
static void test_json_str(void)
{
	static const struct {
		const char *in;
		size_t n;
		const char *out;
	} cases[] = {
		{ "plain", 5, "\"plain\"" },
		{ "", 0, "\"\"" },
		{ "q\"b\\s/", 6, "\"q\\\"b\\\\s/\"" },
		{ "\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"" },
		{ "\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\"" },
		{ "nul\0in", 6, "\"nul\\u0000in\"" },
		{ "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "\"\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" },
		{ "bad\xff", 4, "\"bad\xef\xbf\xbd\"" },
		{ "cut\xe2\x82", 5, "\"cut\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },   /* a surrogate */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct al_buf b = { 0 };

		al_buf_json_str(&b, cases[i].in, cases[i].n);
		CHECK(!b.oom);
		CHECK_STR(b.p, cases[i].out);
		free(b.p);
	}
}

/* AL_GROW: room for one more each time, the contents kept, the capacity doubling from first;
 * a size that cannot be allotted fails and leaves the array as it was. */
static void test_grow(void)
{
	int *v = NULL;
	size_t n = 0, cap = 0, grew = 0;
	int ok = 1;

	for (int i = 0; i < 1000; i++) {
		size_t before = cap;

		if (AL_GROW(v, n, cap, 4) < 0) {
			ok = 0;
			break;
		}
		grew += cap != before;
		v[n++] = i;
	}
	CHECK(ok && n == 1000 && cap == 1024 && grew == 9);
	for (size_t i = 0; ok && i < n; i++)
		ok = v[i] == (int)i;
	CHECK(ok);
	{
		int *keep = v;
		size_t c = cap;

		CHECK(al_grow(v, &c, c, SIZE_MAX / 2, 1) == NULL && c == cap && v == keep);
	}
	free(v);
}

int main(void)
{
	RUN(test_add_fmt);
	RUN(test_oom);
	RUN(test_grow);
	RUN(test_fmt_empty);
	RUN(test_json_str);
	TEST_EXIT();
}
