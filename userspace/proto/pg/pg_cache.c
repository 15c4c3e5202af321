/* A classification cache: statements that differ only in numeric literals share one parse. */
#include <airlock/pg.h>

#include "pg_reuse.h"

#include <stdlib.h>

/*
 * Why this is safe: the key is the statement text with each numeric literal replaced by '?',
 * and everything else (strings, E'' strings with their escapes, quoted identifiers, dollar
 * quotes, comments, parameters, identifiers and the digits in them) kept byte for byte. Text
 * the scanner is unsure of is not keyed: unterminated quotes or comments, a backslash in a
 * string without E (standard_conforming_strings off would read it), and a number run into a
 * name, '$' or quote ("1$$ 5 $$" is 1 and a string to PostgreSQL, two numbers to this scanner).
 * A key is stored only for a string pg_classify_reusable finds reusable: one SELECT, INSERT,
 * UPDATE, DELETE or MERGE, not grant_exact or unsafe_setting (a call of set_config, of a
 * side-effect or of a sequence function, whose arguments its classification reads, makes a
 * statement grant_exact), whose tree holds exactly as many numeric constants as the key hid.
 * So every hidden literal is a constant, and nothing the classifier decides reads a
 * constant's value in such a statement (kinds, relations, unbounded writes: see pg.h), and
 * pg_query's fingerprint ignores constants; EXPLAIN options, FETCH counts and SET values, whose
 * values matter, are never behind a '?' of a stored key. An entry keeps the whole pg_stmt but
 * its text; a hit gives it with the new string's own text.
 */

#define KEY_MAX 8192

struct centry {
	char *key;
	size_t key_len;
	uint64_t hash;
	struct pg_stmt st;	/* text NULL */
};

struct pg_cache {
	struct centry *slots;
	size_t n_slots;
	uint64_t hits, misses;
};

static int ident_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$' || c >= 0x80;
}

static int digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Copies a quoted run ('...' or "...") with doubled-quote escapes; backslash escapes too if `esc`. */
static int copy_quoted(const char *s, size_t n, size_t *i, char q, int esc, char *out, size_t *o)
{
	out[(*o)++] = s[(*i)++];
	while (*i < n) {
		char c = s[*i];

		out[(*o)++] = c;
		(*i)++;
		if (esc && c == '\\' && *i < n) {
			out[(*o)++] = s[(*i)++];
			continue;
		}
		if (c == q) {
			if (*i < n && s[*i] == q) {
				out[(*o)++] = s[(*i)++];
				continue;
			}
			return 0;
		}
	}
	return -1;
}

/* The key (see above); *hidden: how many numeric literals it replaced. */
static int cache_key(const char *s, char *out, size_t cap, size_t *key_len, size_t *hidden)
{
	size_t n = strlen(s), i = 0, o = 0;

	*hidden = 0;

	if (n + 1 > cap)
		return -1;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		unsigned char prev = i ? (unsigned char)s[i - 1] : ' ';

		if (ident_char(c) && !digit(c) && c != '$') {
			/* A name or keyword, kept whole: the digits and '$' in it are its own. (An
			 * E'..' string's E ends the run, and the quote looks back at it.) */
			size_t j = i + 1;

			while (j < n && ident_char((unsigned char)s[j]))
				j++;
			memcpy(out + o, s + i, j - i);
			o += j - i;
			i = j;
		} else if (c == '\'') {
			/* E'..' strings take backslash escapes; so may others when
			 * standard_conforming_strings is off: treat any backslash
			 * before a quote as unsure. */
			int esc = i && (prev == 'e' || prev == 'E') && (i < 2 || !ident_char((unsigned char)s[i - 2]));

			if (!esc)
				for (size_t j = i + 1; j < n && s[j] != '\''; j++)
					if (s[j] == '\\')
						return -1;
			if (copy_quoted(s, n, &i, '\'', esc, out, &o) < 0)
				return -1;
		} else if (c == '"') {
			if (copy_quoted(s, n, &i, '"', 0, out, &o) < 0)
				return -1;
		} else if (c == '-' && i + 1 < n && s[i + 1] == '-') {
			while (i < n && s[i] != '\n')
				out[o++] = s[i++];
		} else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
			int depth = 0;

			do {
				if (i + 1 < n && s[i] == '/' && s[i + 1] == '*') {
					depth++;
					out[o++] = s[i++];
				} else if (i + 1 < n && s[i] == '*' && s[i + 1] == '/') {
					depth--;
					out[o++] = s[i++];
				}
				out[o++] = s[i++];
			} while (depth > 0 && i < n);
			if (depth > 0)
				return -1;
		} else if (c == '$' && !ident_char(prev)) {
			size_t t = i + 1;

			if (t < n && digit((unsigned char)s[t])) {
				/* $1: a parameter, kept. */
				out[o++] = s[i++];
				while (i < n && digit((unsigned char)s[i]))
					out[o++] = s[i++];
				continue;
			}
			while (t < n && s[t] != '$' && ident_char((unsigned char)s[t]))
				t++;
			if (t < n && s[t] == '$') {
				/* $tag$ ... $tag$ */
				size_t tag = t - i + 1;
				const char *end = NULL;

				for (size_t j = t + 1; j + tag <= n; j++)
					if (memcmp(s + j, s + i, tag) == 0) {
						end = s + j;
						break;
					}
				if (!end)
					return -1;
				memcpy(out + o, s + i, (size_t)(end - (s + i)) + tag);
				o += (size_t)(end - (s + i)) + tag;
				i = (size_t)(end - s) + tag;
			} else {
				out[o++] = s[i++];
			}
		} else if ((digit(c) || (c == '.' && i + 1 < n && digit((unsigned char)s[i + 1]))) &&
			   !ident_char(prev) && prev != '.') {
			while (i < n && digit((unsigned char)s[i]))
				i++;
			if (i < n && s[i] == '.') {
				i++;
				while (i < n && digit((unsigned char)s[i]))
					i++;
			}
			if (i < n && (s[i] == 'e' || s[i] == 'E') && i + 1 < n &&
			    (digit((unsigned char)s[i + 1]) ||
			     ((s[i + 1] == '+' || s[i + 1] == '-') && i + 2 < n && digit((unsigned char)s[i + 2])))) {
				i += 2;
				while (i < n && digit((unsigned char)s[i]))
					i++;
			}
			/* A number run into a name, '$' or a quote: PostgreSQL may scan it otherwise. */
			if (i < n && (ident_char((unsigned char)s[i]) || s[i] == '\'' || s[i] == '"' || s[i] == '.'))
				return -1;
			out[o++] = '?';
			(*hidden)++;
		} else {
			out[o++] = s[i++];
		}
	}
	out[o] = '\0';
	*key_len = o;
	return 0;
}

int pg_cache_key(const char *sql, char *out, size_t cap, size_t *key_len)
{
	size_t hidden;

	return cache_key(sql, out, cap, key_len, &hidden);
}

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

static void centry_clear(struct centry *e)
{
	free(e->key);
	pg_stmt_clear(&e->st);
	memset(e, 0, sizeof(*e));
}

int pg_cache_new(size_t slots, struct pg_cache **out)
{
	struct pg_cache *c = calloc(1, sizeof(*c));

	if (!c || !(c->slots = calloc(slots, sizeof(*c->slots)))) {
		free(c);
		return -1;
	}
	c->n_slots = slots;
	*out = c;
	return 0;
}

void pg_cache_free(struct pg_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_slots; i++)
		centry_clear(&c->slots[i]);
	free(c->slots);
	free(c);
}

void pg_cache_stats(const struct pg_cache *c, uint64_t *hits, uint64_t *misses)
{
	*hits = c->hits;
	*misses = c->misses;
}

/* The statement's own text, as pg_classify gives it: trimmed, without the final ';'. */
static char *trimmed(const char *sql, int *location, int *len)
{
	size_t a = 0, b = strlen(sql);
	char *t;

	while (a < b && strchr(" \t\r\n\f\v", sql[a]))
		a++;
	while (b > a && (strchr(" \t\r\n\f\v", sql[b - 1]) || sql[b - 1] == ';'))
		b--;
	t = strndup(sql + a, b - a);
	*location = (int)a;
	*len = (int)(b - a);
	return t;
}

int pg_classify_cached(struct pg_cache *c, const char *sql, struct pg_stmt_list *out, char *err,
		       size_t errlen)
{
	char key[KEY_MAX];
	size_t key_len, hidden;
	struct centry *e;
	uint64_t h;
	int reusable;

	out->stmts = NULL;
	out->n = 0;
	if (!c || cache_key(sql, key, sizeof(key), &key_len, &hidden) < 0)
		return pg_classify(sql, out, err, errlen);
	h = fnv1a(key, key_len);
	e = &c->slots[h % c->n_slots];
	if (e->key && e->hash == h && e->key_len == key_len && memcmp(e->key, key, key_len) == 0) {
		struct pg_stmt *st = calloc(1, sizeof(*st));

		if (!st || pg_stmt_copy(st, &e->st)) {
			free(st);
			return pg_classify(sql, out, err, errlen);
		}
		out->stmts = st;
		out->n = 1;
		if (!(st->text = trimmed(sql, &st->location, &st->len))) {
			pg_stmt_list_free(out);
			return pg_classify(sql, out, err, errlen);
		}
		c->hits++;
		return 0;
	}
	c->misses++;
	if (pg_classify_reusable(sql, hidden, out, &reusable, err, errlen) < 0)
		return -1;
	if (!reusable)
		return 0;
	/* Remember it (replacing whatever held the slot), without its text. */
	centry_clear(e);
	if (!(e->key = strndup(key, key_len)) || pg_stmt_copy(&e->st, &out->stmts[0])) {
		centry_clear(e);
		return 0;
	}
	free(e->st.text);
	e->st.text = NULL;
	e->key_len = key_len;
	e->hash = h;
	return 0;
}
