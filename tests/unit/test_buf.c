/* Unit tests for struct al_buf (appending bytes, strings and formatted text, growth, the NUL, out of
 * memory) and the other small helpers of common.h: AL_GROW, al_sd_notify. */
#include <airlock/common.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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
		{ "\"", 1, "\"\\\"\"" },                            /* an escape alone, first, last */
		{ "\\a\\", 3, "\"\\\\a\\\\\"" },
		{ "{\"k\":\"v\"}", 9, "\"{\\\"k\\\":\\\"v\\\"}\"" },   /* JSON in a string */
		{ "\x7f~ !#[]", 7, "\"\x7f~ !#[]\"" },                 /* the plain bytes' edges */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct al_buf b = { 0 };

		al_buf_json_str(&b, cases[i].in, cases[i].n);
		CHECK(!b.oom);
		CHECK_STR(b.p, cases[i].out);
		free(b.p);
	}
	/* appended to a buffer that holds text already, long enough to grow it, with a NUL after */
	{
		struct al_buf b = { 0 };
		char in[700];

		for (size_t i = 0; i < sizeof(in); i++)
			in[i] = i % 100 == 99 ? '"' : (char)('a' + i % 26);
		al_buf_add(&b, "x:", 2);
		al_buf_json_str(&b, in, sizeof(in));
		CHECK(!b.oom && b.len == 2 + 2 + sizeof(in) + 7 && b.p[b.len] == '\0');
		CHECK(memcmp(b.p, "x:\"abc", 6) == 0 && memcmp(b.p + 2 + 1 + 99, "\\\"", 2) == 0 &&
		      b.p[b.len - 1] == '"');
		free(b.p);
	}
}

/* al_dec against printf for the edges of every digit count, both signs, and a spread between. */
static void test_dec(void)
{
	int64_t edge[] = { 0, 1, 9, 10, 99, 100, 101, 999, 1000, 65535, 1779869703123456, INT64_MAX, INT64_MIN,
			   INT64_MIN + 1 };
	uint64_t x = 0x9e3779b97f4a7c15ull;
	int ok = 1;

	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
			int64_t v = !pass ? edge[i] : edge[i] == INT64_MIN ? INT64_MAX : -edge[i];
			char got[24], want[24];
			size_t n = al_dec(got, v);

			snprintf(want, sizeof(want), "%lld", (long long)v);
			got[n] = '\0';
			ok &= n == strlen(want) && strcmp(got, want) == 0;
		}
	for (int i = 0; i < 100000; i++) {
		char got[24], want[24];
		int64_t v;
		size_t n;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		v = (int64_t)(x >> (x & 63));           /* every magnitude, both signs */
		n = al_dec(got, v);
		snprintf(want, sizeof(want), "%lld", (long long)v);
		got[n] = '\0';
		ok &= n == strlen(want) && strcmp(got, want) == 0;
	}
	for (int k = 0; k <= 18; k++) {              /* 10^k - 1 and 10^k: where a digit is added */
		char got[24], want[24];
		int64_t p = 1;
		size_t n;

		for (int j = 0; j < k; j++)
			p *= 10;
		for (int64_t d = -1; d <= 0; d++) {
			n = al_dec(got, p + d);
			snprintf(want, sizeof(want), "%lld", (long long)(p + d));
			got[n] = '\0';
			ok &= strcmp(got, want) == 0;
		}
	}
	CHECK(ok);
}

/* al_sha256_hex: the known digests of "" (AL_SHA256_EMPTY) and "abc", again and again on the same
 * thread's context, and on a second thread (a context of its own, freed when it ends). */
static void *sha_thread(void *arg)
{
	char hex[65];

	return (void *)(intptr_t)(al_sha256_hex("abc", 3, hex) == 0 && strcmp(hex, arg) == 0);
}

static void test_sha256(void)
{
	static const char abc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	char hex[65];
	pthread_t t;
	void *ok = NULL;

	for (int i = 0; i < 3; i++) {
		CHECK(al_sha256_hex("", 0, hex) == 0 && strcmp(hex, AL_SHA256_EMPTY) == 0);
		CHECK(al_sha256_hex("abc", 3, hex) == 0 && strcmp(hex, abc) == 0);
	}
	CHECK(pthread_create(&t, NULL, sha_thread, (void *)abc) == 0 && pthread_join(t, &ok) == 0 && ok);
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

/* al_sd_notify: the message reaches $NOTIFY_SOCKET, a path or an abstract "@name"; without the
 * variable it does nothing; a relative path is refused. */
static void test_sd_notify(void)
{
	char path[160], buf[64];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ssize_t n;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "/tmp/airlock-test-notify.%d", (int)getpid());
	snprintf(path, sizeof(path), "%s", sun.sun_path);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	unsetenv("NOTIFY_SOCKET");
	CHECK(al_sd_notify("READY=1") == 0);
	setenv("NOTIFY_SOCKET", path, 1);
	CHECK(al_sd_notify("READY=1\nSTATUS=up") == 0);
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	CHECK(n == 17 && memcmp(buf, "READY=1\nSTATUS=up", 17) == 0);
	close(fd);
	unlink(path);
	/* abstract */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(sun.sun_path, 0, sizeof(sun.sun_path));
	snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "airlock-test-notify-%d", (int)getpid());
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sun,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sun.sun_path + 1))) == 0);
	snprintf(path, sizeof(path), "@%s", sun.sun_path + 1);
	setenv("NOTIFY_SOCKET", path, 1);
	CHECK(al_sd_notify("STOPPING=1") == 0);
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	CHECK(n == 10 && memcmp(buf, "STOPPING=1", 10) == 0);
	close(fd);
	setenv("NOTIFY_SOCKET", "relative/notify", 1);
	CHECK(al_sd_notify("READY=1") == -1);
	unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
	RUN(test_add_fmt);
	RUN(test_oom);
	RUN(test_grow);
	RUN(test_sd_notify);
	RUN(test_fmt_empty);
	RUN(test_json_str);
	RUN(test_dec);
	RUN(test_sha256);
	TEST_EXIT();
}
