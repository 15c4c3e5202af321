/* Agent and store text on the operator's terminal, with whatever could steer it shown as visible escapes (term.h). */
#include "term.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/types.h>

/*
 * Code points that hide or reorder text, or that a terminal may take as a control: C1,
 * soft hyphen, the Arabic letter mark, fillers, zero-width characters and the LRM/RLM marks,
 * the line and paragraph separators, bidi embeddings and overrides, word joiner, isolates and
 * the other invisible format characters, variation selectors, BOM, interlinear annotation,
 * tags. The web console escapes the same (web/app.js INVISIBLE), and U+2028/U+2029 as well here:
 * a one-line field has no line breaks of any kind.
 */
static int invisible(uint32_t cp)
{
	return (cp >= 0x7f && cp <= 0x9f) || cp == 0xad || cp == 0x61c || cp == 0x115f || cp == 0x1160 ||
	       cp == 0x17b4 || cp == 0x17b5 || cp == 0x180e || (cp >= 0x200b && cp <= 0x200f) ||
	       (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x206f) || cp == 0x3164 ||
	       (cp >= 0xfe00 && cp <= 0xfe0f) || cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb) ||
	       (cp >= 0xe0000 && cp <= 0xe007f);
}

/* The code point of a valid UTF-8 sequence of k bytes (al_utf8_seq). */
static uint32_t decode(const unsigned char *p, size_t k)
{
	switch (k) {
	case 1:
		return p[0];
	case 2:
		return (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
	case 3:
		return (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
	default:
		return (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 | (uint32_t)(p[2] & 0x3f) << 6 |
		       (p[3] & 0x3f);
	}
}

/* 1 for a CSI sequence (p at ESC [, n bytes) that only colours, moves or erases. */
static int csi_harmless(const unsigned char *p, size_t n)
{
	static const char *const modes[] = { "?25", "?1049", "?1047", "?47", "?7", "?12", "?1", "4" };
	unsigned char final = p[n - 1];

	if (final == 'h' || final == 'l') {
		for (size_t i = 0; i < AL_ARRAY_LEN(modes); i++)
			if (n - 3 == strlen(modes[i]) && memcmp(p + 2, modes[i], n - 3) == 0)
				return 1;
		return 0;
	}
	for (size_t i = 2; i < n - 1; i++)
		if (p[i] < 0x30 || p[i] > 0x3f || p[i] == '?' || p[i] == '>' || p[i] == '=' || p[i] == '<')
			return 0;
	return strchr("ABCDEFGHJKLMPSTXdfmrsu@", final) != NULL;
}

/* The length of the harmless CSI sequence at p (n bytes there, p[0] is ESC), or 0. */
static size_t csi_len(const unsigned char *p, size_t n)
{
	size_t k = 2;

	if (n < 3 || p[1] != '[')
		return 0;
	while (k < n && p[k] >= 0x30 && p[k] <= 0x3f)
		k++;
	if (k < n && p[k] >= 0x40 && p[k] <= 0x7e && csi_harmless(p, k + 1))
		return k + 1;
	return 0;
}

size_t term_show(struct al_buf *b, const char *text, size_t len, enum term_mode mode, size_t max)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t start = b->len, used = 0, cut_at = 0, cut_used = 0, i = 0, w;
	size_t mark = max != TERM_ALL && max > 3 ? 3 : 0;     /* room kept for "..." */
	int cut_known = 0;

	while (i < len) {
		unsigned char c = p[i];
		char esc[16];
		const char *out = esc;
		size_t k = 1, n;

		if (mode == TERM_SCREEN && c == 0x1b && (n = csi_len(p + i, len - i)) > 0) {
			out = text + i;
			k = n;
		} else if (c >= 0x20 && c < 0x7f) {
			out = text + i;
		} else if (c == '\n' || c == '\t' || c == '\r') {
			if (mode == TERM_SCREEN || (mode == TERM_TEXT && c != '\r'))
				out = text + i;
			else
				snprintf(esc, sizeof(esc), "\\%c", c == '\n' ? 'n' : c == '\t' ? 't' : 'r');
		} else if (c == '\b' && mode == TERM_SCREEN) {
			out = text + i;
		} else if (c < 0x80) {
			snprintf(esc, sizeof(esc), "^%c", c == 0x7f ? '?' : c + 0x40);
		} else if ((k = al_utf8_seq(p + i, len - i)) == 0) {
			k = 1;
			snprintf(esc, sizeof(esc), "\\x%02X", c);
		} else if (invisible(decode(p + i, k))) {
			snprintf(esc, sizeof(esc), "\\u%04X", (unsigned)decode(p + i, k));
		} else {
			out = text + i;
		}
		/* a code point counts one, an escape its length, a passed CSI sequence nothing */
		n = out == esc ? strlen(esc) : k;
		w = out == esc ? n : c == 0x1b ? 0 : 1;
		if (!cut_known && used + w > max - mark) {
			cut_known = 1;
			cut_at = b->len - start;
			cut_used = used;
		}
		if (used + w > max) {
			if (b->p && !b->oom) {
				b->len = start + cut_at;
				b->p[b->len] = '\0';
			}
			al_buf_add(b, "...", mark);
			return cut_used + mark;
		}
		al_buf_add(b, out, n);
		used += w;
		i += k;
	}
	return used;
}

void term_lines(struct al_buf *b, const char *text, const char *indent)
{
	const char *nl;

	while ((nl = strchr(text, '\n')) != NULL) {
		term_show(b, text, (size_t)(nl - text), TERM_TEXT, TERM_ALL);
		al_buf_str(b, "\n");
		al_buf_str(b, indent);
		text = nl + 1;
	}
	term_show(b, text, strlen(text), TERM_TEXT, TERM_ALL);
}

/* One %s field: shown as a line, padded to width characters. */
static void field(struct al_buf *b, const char *s, int left, size_t width, size_t max)
{
	size_t start = b->len, n;

	if (!s)
		s = "(null)";
	n = term_show(b, s, strlen(s), TERM_LINE, max);
	if (n >= width)
		return;
	for (size_t i = n; i < width; i++)
		al_buf_add(b, " ", 1);
	if (!left && !b->oom) {
		size_t pad = width - n, seg = b->len - start - pad;

		memmove(b->p + start + pad, b->p + start, seg);
		memset(b->p + start, ' ', pad);
	}
}

enum len_mod { LEN_NONE, LEN_HH, LEN_H, LEN_L, LEN_LL, LEN_Z, LEN_J, LEN_T, LEN_BIG_L };

/* The formats built here are printf conversions checked against their argument's type below. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
void term_vfmt(struct al_buf *b, const char *fmt, va_list ap)
{
	const char *p = fmt;

	while (*p) {
		const char *pct = strchr(p, '%'), *q;
		char spec[64], flags[8], *end;
		size_t nf = 0;
		long width = -1, prec = -1;
		int left = 0;
		enum len_mod lm = LEN_NONE;
		char conv;

		if (!pct) {
			al_buf_str(b, p);
			return;
		}
		al_buf_add(b, p, (size_t)(pct - p));
		q = pct + 1;
		while (*q && strchr("-+ #0", *q)) {
			left |= *q == '-';
			if (nf < sizeof(flags) - 1)
				flags[nf++] = *q;
			q++;
		}
		flags[nf] = '\0';
		if (*q == '*') {
			width = va_arg(ap, int);
			if (width < 0) {
				left = 1;
				width = -width;
			}
			q++;
		} else if (*q >= '0' && *q <= '9') {
			width = strtol(q, &end, 10);
			q = end;
		}
		if (*q == '.') {
			q++;
			if (*q == '*') {
				prec = va_arg(ap, int);
				q++;
			} else {
				prec = strtol(q, &end, 10);
				q = end;
			}
			if (prec < 0)
				prec = -1;      /* printf: as if none */
		}
		switch (*q) {
		case 'h':
			lm = q[1] == 'h' ? LEN_HH : LEN_H;
			q += lm == LEN_HH ? 2 : 1;
			break;
		case 'l':
			lm = q[1] == 'l' ? LEN_LL : LEN_L;
			q += lm == LEN_LL ? 2 : 1;
			break;
		case 'z': lm = LEN_Z; q++; break;
		case 'j': lm = LEN_J; q++; break;
		case 't': lm = LEN_T; q++; break;
		case 'L': lm = LEN_BIG_L; q++; break;
		}
		conv = *q;
		if (conv == '\0' || !strchr("diouxXcsfFeEgGaAp%", conv) || (conv == 's' && lm != LEN_NONE) ||
		    (conv == 'c' && lm != LEN_NONE)) {
			assert(!"term_vfmt: a conversion it does not take");
			return;
		}
		p = q + 1;
		if (conv == '%') {
			al_buf_add(b, "%", 1);
			continue;
		}
		if (conv == 's') {
			field(b, va_arg(ap, const char *), left, width > 0 ? (size_t)width : 0,
			      prec >= 0 ? (size_t)prec : TERM_ALL);
			continue;
		}
		{
			static const char *const mods[] = { "", "hh", "h", "l", "ll", "z", "j", "t", "L" };
			char w[24] = "", pr[24] = "";

			if (width >= 0)
				snprintf(w, sizeof(w), "%ld", width);
			if (prec >= 0)
				snprintf(pr, sizeof(pr), ".%ld", prec);
			snprintf(spec, sizeof(spec), "%%%s%s%s%s%c", flags, w, pr, mods[lm], conv);
		}
		switch (conv) {
		case 'd':
		case 'i':
			switch (lm) {
			case LEN_L: al_buf_fmt(b, spec, va_arg(ap, long)); break;
			case LEN_LL: al_buf_fmt(b, spec, va_arg(ap, long long)); break;
			case LEN_Z: al_buf_fmt(b, spec, va_arg(ap, ssize_t)); break;
			case LEN_J: al_buf_fmt(b, spec, va_arg(ap, intmax_t)); break;
			case LEN_T: al_buf_fmt(b, spec, va_arg(ap, ptrdiff_t)); break;
			default: al_buf_fmt(b, spec, va_arg(ap, int)); break;      /* hh, h: promoted */
			}
			break;
		case 'o':
		case 'u':
		case 'x':
		case 'X':
			switch (lm) {
			case LEN_L: al_buf_fmt(b, spec, va_arg(ap, unsigned long)); break;
			case LEN_LL: al_buf_fmt(b, spec, va_arg(ap, unsigned long long)); break;
			case LEN_Z: al_buf_fmt(b, spec, va_arg(ap, size_t)); break;
			case LEN_J: al_buf_fmt(b, spec, va_arg(ap, uintmax_t)); break;
			case LEN_T: al_buf_fmt(b, spec, va_arg(ap, ptrdiff_t)); break;
			default: al_buf_fmt(b, spec, va_arg(ap, unsigned)); break;
			}
			break;
		case 'c':
			al_buf_fmt(b, spec, va_arg(ap, int));
			break;
		case 'p':
			al_buf_fmt(b, spec, va_arg(ap, void *));
			break;
		default:        /* the floating conversions */
			if (lm == LEN_BIG_L)
				al_buf_fmt(b, spec, va_arg(ap, long double));
			else
				al_buf_fmt(b, spec, va_arg(ap, double));
			break;
		}
	}
}
#pragma GCC diagnostic pop

void term_fmt(struct al_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	term_vfmt(b, fmt, ap);
	va_end(ap);
}

static void term_vfprintf(FILE *f, const char *fmt, va_list ap)
{
	struct al_buf b = { 0 };

	term_vfmt(&b, fmt, ap);
	if (b.p)
		fwrite(b.p, 1, b.len, f);
	free(b.p);
}

void term_fprintf(FILE *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	term_vfprintf(f, fmt, ap);
	va_end(ap);
}

void term_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	term_vfprintf(stdout, fmt, ap);
	va_end(ap);
}

void term_json(FILE *f, json_t *v, size_t flags)
{
	json_dumpf(v, f, flags | JSON_ENSURE_ASCII);
	fputc('\n', f);
}
