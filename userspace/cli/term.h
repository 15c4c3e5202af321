/* airlockctl's one way to put agent and store text on the operator's terminal: whatever could steer the terminal, hide or reorder text shows as a visible escape. */
#ifndef AIRLOCKCTL_TERM_H
#define AIRLOCKCTL_TERM_H

#include <airlock/common.h>

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

/*
 * What passes as it is besides printable text; everything else is an escape:
 *   newline, tab, CR    \n \t \r
 *   other C0 controls   ^[ ^G ... (caret notation), DEL ^?
 *   C1 controls (U+0080..U+009F), bidi embeddings, overrides, isolates and marks, zero-width and
 *   other invisible characters (the web console's list, web/app.js INVISIBLE, and U+2028/U+2029)
 *                       \u009B \u202E \uE0001
 *   a byte that is not part of valid UTF-8    \xFF
 */
enum term_mode {
	TERM_LINE,      /* a one-line field: no newline, tab or CR passes */
	TERM_TEXT,      /* lines of text meant as lines (SQL in a transcript): newline and tab pass */
	TERM_SCREEN,    /* what an exec printed on its terminal: CR, backspace and the CSI
			 * sequences that only colour, move or erase pass too */
};

#define TERM_ALL SIZE_MAX       /* term_show's max: no limit */

/*
 * Appends text[0..len) to b as the mode shows it. At most max characters are appended (an
 * escape counts its length, a code point one): text that does not fit is cut between two
 * characters, never inside a UTF-8 sequence or an escape, and its last three are "..." (when
 * max > 3). Returns the characters appended.
 */
size_t term_show(struct al_buf *b, const char *text, size_t len, enum term_mode mode, size_t max);
/* NUL-terminated text as TERM_TEXT shows it, every line break followed by indent: a field
 * printed as lines on purpose (SQL), none of whose lines starts where the caller's own do. */
void term_lines(struct al_buf *b, const char *text, const char *indent);

/*
 * printf to b, f or stdout, with every %s argument shown as a TERM_LINE field: width and
 * precision count characters, not bytes (%-22s pads to 22 characters, %.100s shows at most
 * 100, cut as term_show cuts); a NULL argument is "(null)". The format itself is the caller's
 * text and passes as it is. Conversions: d i u o x X c s f F e E g G a A p and %, with the
 * flags, widths (also *), precisions and length modifiers (hh h l ll z j t L) of printf.
 */
void term_vfmt(struct al_buf *b, const char *fmt, va_list ap);
void term_fmt(struct al_buf *b, const char *fmt, ...) AL_PRINTF(2, 3);
void term_fprintf(FILE *f, const char *fmt, ...) AL_PRINTF(2, 3);
void term_printf(const char *fmt, ...) AL_PRINTF(1, 2);

/* v as JSON and a newline, with flags and JSON_ENSURE_ASCII: jansson escapes C0 controls but
 * passes C1 and bidi controls as UTF-8, which a terminal may act on; as \uXXXX it cannot. */
void term_json(FILE *f, json_t *v, size_t flags);

#endif
