/* airlockctl's terminal-safe printer (userspace/cli/term.c): escapes, modes, widths and cuts. */
#include "harness.h"

#include "../../userspace/cli/term.c"

#include <stdlib.h>

static char out[4096];

/* text shown in mode with max, as a NUL-terminated string in out; its count in *n */
static const char *show(const char *text, size_t len, enum term_mode mode, size_t max, size_t *n)
{
	struct al_buf b = { 0 };
	size_t c = term_show(&b, text, len, mode, max);

	snprintf(out, sizeof(out), "%s", b.p ? b.p : "");
	free(b.p);
	if (n)
		*n = c;
	return out;
}

#define LINE(s) show((s), sizeof(s) - 1, TERM_LINE, TERM_ALL, NULL)
#define TEXT(s) show((s), sizeof(s) - 1, TERM_TEXT, TERM_ALL, NULL)
#define SCREEN(s) show((s), sizeof(s) - 1, TERM_SCREEN, TERM_ALL, NULL)

static const char *fmt(const char *f, ...) AL_PRINTF(1, 2);
static const char *fmt(const char *f, ...)
{
	struct al_buf b = { 0 };
	va_list ap;

	va_start(ap, f);
	term_vfmt(&b, f, ap);
	va_end(ap);
	snprintf(out, sizeof(out), "%s", b.p ? b.p : "");
	free(b.p);
	return out;
}

/* 1 if s holds none of the bytes a terminal acts on: C0 (but what is allowed), DEL, C1 as UTF-8, ESC */
static int inert(const char *s, const char *allowed)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p < 0x20 && !strchr(allowed, *p)) || *p == 0x7f)
			return 0;
		if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			return 0;
	}
	return al_utf8_valid((const unsigned char *)s, strlen(s));
}

static void test_escape_sequences(void)
{
	/* the review's exe name: hide what follows, retitle the window */
	CHECK_STR(LINE("py\x1b[8m\x1b]0;owned\x07"), "py^[[8m^[]0;owned^G");
	CHECK(inert(out, ""));
	/* CSI, DCS, a bare ESC, every other C0 and DEL */
	CHECK_STR(LINE("\x1b[2J\x1bP1$r\x1b\\x\x1b"), "^[[2J^[P1$r^[\\x^[");
	CHECK_STR(LINE("\x01\x08\x0b\x0c\x1f\x7f"), "^A^H^K^L^_^?");
	CHECK_STR(show("a\0b", 3, TERM_LINE, TERM_ALL, NULL), "a^@b");
	/* what passes in TERM_TEXT: newline and tab, not the rest */
	CHECK_STR(TEXT("\x1b]0;t\x07\n\tx"), "^[]0;t^G\n\tx");
}

static void test_osc52(void)
{
	/* a ClientHello SNI: a clipboard write and a title change */
	CHECK_STR(LINE("x.test\x1b]52;c;ZWNobyBvd25lZAo=\x07\x1b]0;pwned\x07"),
		  "x.test^[]52;c;ZWNobyBvd25lZAo=^G^[]0;pwned^G");
	CHECK(inert(out, ""));
	/* the same with ST (ESC \) for a terminator */
	CHECK_STR(LINE("\x1b]52;c;YQ==\x1b\\"), "^[]52;c;YQ==^[\\");
	CHECK_STR(SCREEN("\x1b]52;c;YQ==\x07"), "^[]52;c;YQ==^G");
}

static void test_c1(void)
{
	/* U+009B is CSI, U+009D OSC, U+0085 NEL: as UTF-8 (C2 xx) a terminal may act on them */
	CHECK_STR(LINE("a\xc2\x9b" "31mb"), "a\\u009B31mb");
	CHECK_STR(LINE("\xc2\x9d" "0;t\xc2\x9c\xc2\x85\xc2\x80\xc2\x9f"), "\\u009D0;t\\u009C\\u0085\\u0080\\u009F");
	CHECK(inert(out, ""));
	CHECK_STR(SCREEN("\xc2\x9b" "1m"), "\\u009B1m");
	CHECK_STR(TEXT("\xc2\x9b" "1m"), "\\u009B1m");
	/* U+00A0 and U+00E9 are text */
	CHECK_STR(LINE("\xc2\xa0\xc3\xa9"), "\xc2\xa0\xc3\xa9");
}

static void test_bidi(void)
{
	/* overrides, embeddings, isolates, marks: what makes "exe.txt" of "txt.exe" */
	CHECK_STR(LINE("a\xe2\x80\xaeq\xe2\x80\xac"), "a\\u202Eq\\u202C");
	CHECK_STR(LINE("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xad"), "\\u202A\\u202B\\u202D");
	CHECK_STR(LINE("\xe2\x81\xa6\xe2\x81\xa7\xe2\x81\xa8\xe2\x81\xa9"), "\\u2066\\u2067\\u2068\\u2069");
	CHECK_STR(LINE("\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c"), "\\u200E\\u200F\\u061C");
	/* zero-width, soft hyphen, BOM, line separator, a tag character */
	CHECK_STR(LINE("\xe2\x80\x8b\xc2\xad\xef\xbb\xbf\xe2\x80\xa8\xf3\xa0\x80\x81"),
		  "\\u200B\\u00AD\\uFEFF\\u2028\\uE0001");
	CHECK_STR(SCREEN("\xe2\x80\xae"), "\\u202E");
	/* neighbours that are text: en dash, narrow no-break space, CJK, an emoji */
	CHECK_STR(LINE("\xe2\x80\x93\xe2\x80\xaf\xe6\x97\xa5\xf0\x9f\x98\x80"), "\xe2\x80\x93\xe2\x80\xaf\xe6\x97\xa5\xf0\x9f\x98\x80");
}

static void test_invalid_utf8(void)
{
	CHECK_STR(LINE("a\xff" "b"), "a\\xFFb");
	CHECK_STR(LINE("\xc0\xaf"), "\\xC0\\xAF");                      /* overlong "/" */
	CHECK_STR(LINE("\xed\xa0\x80"), "\\xED\\xA0\\x80");             /* a surrogate */
	CHECK_STR(LINE("\xf4\x90\x80\x80"), "\\xF4\\x90\\x80\\x80");    /* past U+10FFFF */
	CHECK_STR(LINE("\x80x"), "\\x80x");                             /* a stray continuation */
	CHECK_STR(LINE("ok\xe2\x82"), "ok\\xE2\\x82");                  /* cut short at the end */
	/* C2 with no continuation is no C1 control: the byte, then the text */
	CHECK_STR(LINE("\xc2[1m"), "\\xC2[1m");
	CHECK_STR(SCREEN("\xe2\x82\x1b[1m"), "\\xE2\\x82\x1b[1m");
	CHECK(inert(LINE("\xff\xfe\xc2\xc3\x28"), ""));
}

static void test_newlines(void)
{
	size_t n;

	/* a one-line field never holds a line break: a file name cannot print a fake line */
	CHECK_STR(LINE("cat x\ncommand: ls\r\tz"), "cat x\\ncommand: ls\\r\\tz");
	CHECK(strchr(out, '\n') == NULL && strchr(out, '\r') == NULL);
	CHECK_STR(fmt("exe %s, pid %d\n", "/tmp/a\nexe /usr/bin/ls", 7), "exe /tmp/a\\nexe /usr/bin/ls, pid 7\n");
	/* lines meant as lines: newline and tab pass, CR does not (it would overwrite the line) */
	CHECK_STR(TEXT("SELECT 1\n\tFROM t\r-- x"), "SELECT 1\n\tFROM t\\r-- x");
	/* an exec's terminal: CR, backspace, colours and moves pass; other modes do not */
	CHECK_STR(SCREEN("50%\r100%\b\b\x1b[1mbold\x1b[0m\x1b[2K\x1b[3;4H"),
		  "50%\r100%\b\b\x1b[1mbold\x1b[0m\x1b[2K\x1b[3;4H");
	CHECK_STR(SCREEN("\x1b[?1000h\x1b[?25l\x1b[6n\x1b[>c"), "^[[?1000h\x1b[?25l^[[6n^[[>c");
	/* a passed CSI sequence shows nothing: it counts for no column */
	show("\x1b[1mab\x1b[0m", 10, TERM_SCREEN, TERM_ALL, &n);
	CHECK(n == 2);
}

static void test_lines(void)
{
	struct al_buf b = { 0 };

	/* a field printed as lines: each after the first indented, none can start a line of ours */
	al_buf_str(&b, "  ");
	term_lines(&b, "SELECT 1;\n\napprovals: 2 of 2\r\x1b[1A\tx", "  ");
	CHECK_STR(b.p, "  SELECT 1;\n  \n  approvals: 2 of 2\\r^[[1A\tx");
	free(b.p);
}

static void test_truncation(void)
{
	size_t n;
	const char *s = "abcd\xc3\xa9\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9exyz";      /* abcdé日本語xyz: 11 */

	/* whole when it fits */
	CHECK_STR(show(s, strlen(s), TERM_LINE, 11, &n), s);
	CHECK(n == 11);
	/* cut between characters, "..." included in the limit */
	CHECK_STR(show(s, strlen(s), TERM_LINE, 10, &n), "abcd\xc3\xa9\xe6\x97\xa5\xe6\x9c\xac...");
	CHECK(n == 10);
	CHECK_STR(show(s, strlen(s), TERM_LINE, 8, &n), "abcd\xc3\xa9...");
	CHECK(n == 8);
	CHECK_STR(show(s, strlen(s), TERM_LINE, 7, &n), "abcd...");
	/* the width of each limit from 1 to 12: never past it, never half a character */
	for (size_t m = 1; m <= 12; m++) {
		show(s, strlen(s), TERM_LINE, m, &n);
		CHECK(n <= m && al_utf8_valid((const unsigned char *)out, strlen(out)));
	}
	/* never half an escape: ^[ and \u202E go whole or not at all */
	CHECK_STR(show("ab\x1b" "cdef", 7, TERM_LINE, 5, NULL), "ab...");
	CHECK_STR(show("ab\xe2\x80\xae" "cdef", 9, TERM_LINE, 9, NULL), "ab...");
	CHECK_STR(show("ab\xe2\x80\xae" "c", 6, TERM_LINE, 9, NULL), "ab\\u202Ec");
	/* a limit of 3 or less: no room for "..." */
	CHECK_STR(show("abcdef", 6, TERM_LINE, 2, NULL), "ab");
	/* %.Ns is N characters, not N bytes: 100 CJK characters, the statements column */
	{
		char big[400] = "";

		for (int i = 0; i < 120; i++)
			memcpy(big + i * 3, "\xe6\x97\xa5", 3);
		fmt("%.100s|", big);
		CHECK(strlen(out) == 97 * 3 + 3 + 1 && strcmp(out + 97 * 3, "...|") == 0);
		CHECK(al_utf8_valid((const unsigned char *)out, strlen(out)));
	}
}

static void test_format(void)
{
	char want[256];

	/* widths count characters: a UTF-8 column lines up */
	CHECK_STR(fmt("%-5s|%5s|", "\xc3\xa9", "\xe6\x97\xa5"), "\xc3\xa9    |    \xe6\x97\xa5|");
	CHECK_STR(fmt("%-3s|", "abcdef"), "abcdef|");
	CHECK_STR(fmt("%-*s|%*s|", 4, "a", -3, "b"), "a   |b  |");
	CHECK_STR(fmt("%-6s|", "\x1b"), "^[    |");
	{
		const char *volatile none = NULL;      /* volatile: gcc would see the NULL */

		CHECK_STR(fmt("%s %s", none, "-"), "(null) -");
	}
	/* the rest as printf does it */
	snprintf(want, sizeof(want), "%d %5lld %-3zu| %.2f %x %X %o %c %% %+d %05d %lu %hhu %p %e %g %ju %td %Lf",
		 -4, 12345678901LL, (size_t)7, 3.14159, 255, 255u, 8u, 'q', 5, 42, 1UL << 40, 300 & 0xff,
		 (void *)want, 1e10, 0.5, (uintmax_t)9, (ptrdiff_t)-3, 2.5L);
	CHECK_STR(fmt("%d %5lld %-3zu| %.2f %x %X %o %c %% %+d %05d %lu %hhu %p %e %g %ju %td %Lf",
		      -4, 12345678901LL, (size_t)7, 3.14159, 255, 255u, 8u, 'q', 5, 42, 1UL << 40, 300 & 0xff,
		      (void *)want, 1e10, 0.5, (uintmax_t)9, (ptrdiff_t)-3, 2.5L), want);
	CHECK_STR(fmt("%*d|%-*d|%.*f", 4, 7, 3, 1, 2, 1.0), "   7|1  |1.00");
	CHECK_STR(fmt("no conversions"), "no conversions");
	/* the format is ours: its newlines pass, an argument's do not */
	CHECK_STR(fmt("a\n%s\n", "b\nc"), "a\nb\\nc\n");
}

static void test_json(void)
{
	json_t *v = json_pack("{s:s}", "exe", "a\x1b]0;t\x07\xc2\x9b\xe2\x80\xae\xc3\xa9");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	CHECK(v && f);
	if (!v || !f)
		return;
	term_json(f, v, JSON_COMPACT);
	fclose(f);
	/* ASCII only: C0 as jansson escapes it, C1, bidi and the rest as \u */
	CHECK_STR(buf, "{\"exe\":\"a\\u001B]0;t\\u0007\\u009B\\u202E\\u00E9\"}\n");
	for (size_t i = 0; i < len; i++)
		CHECK((unsigned char)buf[i] < 0x80 && (buf[i] >= 0x20 || buf[i] == '\n'));
	free(buf);
	json_decref(v);
}

int main(void)
{
	RUN(test_escape_sequences);
	RUN(test_osc52);
	RUN(test_c1);
	RUN(test_bidi);
	RUN(test_invalid_utf8);
	RUN(test_newlines);
	RUN(test_lines);
	RUN(test_truncation);
	RUN(test_format);
	RUN(test_json);
	TEST_EXIT();
}
