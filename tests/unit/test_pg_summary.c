/* pg_summary against the jansson version it replaced: the same bytes for every message, and what each costs. */
#include <airlock/pg.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "harness.h"

/* ---- The reference -------------------------------------------------------------------------
 * userspace/proto/pg/pg_summary.c as it was before it wrote into one buffer (commit 749724d),
 * built on jansson; only the names carry a ref_ prefix. Recordings made by it are replayed with
 * json_loads, so the new code must give exactly its bytes.
 */

static uint16_t ref_rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int32_t ref_rd32(const uint8_t *p)
{
	return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

/* A value for the recording: text up to max bytes (cut at a UTF-8 boundary), else "<N bytes>". */
static json_t *ref_value(const uint8_t *p, size_t n, size_t max)
{
	size_t k = n < max ? n : max;
	json_t *j;
	char tag[48];

	while (k > 0 && k < n && (p[k] & 0xc0) == 0x80)
		k--;
	j = json_stringn((const char *)p, k);
	if (!j) {
		snprintf(tag, sizeof(tag), "<%zu bytes>", n);
		return json_string(tag);
	}
	if (k < n) {
		char *cut;

		if (asprintf(&cut, "%s...", json_string_value(j)) < 0) {
			json_decref(j);
			return NULL;
		}
		json_decref(j);
		j = json_string(cut);
		free(cut);
	}
	return j;
}

static char *ref_dump(json_t *j)
{
	char *t = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	json_decref(j);
	return t;
}

static char *ref_text_of(json_t *j)
{
	char *t = j ? strdup(json_string_value(j)) : NULL;

	json_decref(j);
	return t;
}

static char *ref_row_description(const struct pg_msg *m)
{
	const uint8_t *p = m->body, *end = m->body + m->body_len;
	json_t *a = json_array();
	uint16_t n;

	if (m->body_len < 2 || !a)
		goto bad;
	n = ref_rd16(p);
	p += 2;
	for (uint16_t i = 0; i < n; i++) {
		const uint8_t *z = memchr(p, 0, (size_t)(end - p));

		if (!z || (size_t)(end - z - 1) < 18)
			goto bad;
		json_array_append_new(a, ref_value(p, (size_t)(z - p), 256));
		p = z + 1 + 18;
	}
	return ref_dump(a);
bad:
	json_decref(a);
	return strdup("(malformed)");
}

static char *ref_data_row(const struct pg_msg *m, size_t max)
{
	const uint8_t *p = m->body, *end = m->body + m->body_len;
	json_t *a = json_array();
	uint16_t n;

	if (m->body_len < 2 || !a)
		goto bad;
	n = ref_rd16(p);
	p += 2;
	for (uint16_t i = 0; i < n; i++) {
		int32_t len;

		if (end - p < 4)
			goto bad;
		len = ref_rd32(p);
		p += 4;
		if (len < 0) {
			json_array_append_new(a, json_null());
			continue;
		}
		if (end - p < len)
			goto bad;
		json_array_append_new(a, ref_value(p, (size_t)len, max));
		p += len;
	}
	return ref_dump(a);
bad:
	json_decref(a);
	return strdup("(malformed)");
}

static char *ref_error_fields(const struct pg_msg *m)
{
	struct pg_error_fields f;
	const char *err;
	json_t *o;

	if (pg_decode_error(m, &f, &err) < 0)
		return strdup("(malformed)");
	o = json_object();
	if (!o)
		return NULL;
	if (f.severity)
		json_object_set_new(o, "severity", ref_value((const uint8_t *)f.severity, strlen(f.severity), 64));
	if (f.sqlstate)
		json_object_set_new(o, "sqlstate", ref_value((const uint8_t *)f.sqlstate, strlen(f.sqlstate), 16));
	if (f.message)
		json_object_set_new(o, "message", ref_value((const uint8_t *)f.message, strlen(f.message), 2048));
	if (f.detail)
		json_object_set_new(o, "detail", ref_value((const uint8_t *)f.detail, strlen(f.detail), 2048));
	if (f.hint)
		json_object_set_new(o, "hint", ref_value((const uint8_t *)f.hint, strlen(f.hint), 1024));
	return ref_dump(o);
}

static char *ref_frontend(const struct pg_msg *m, size_t max)
{
	const char *err, *sql;

	switch (m->type) {
	case 'Q':
		if (pg_decode_query(m, &sql, &err) < 0)
			return strdup("(malformed)");
		return ref_text_of(ref_value((const uint8_t *)sql, strlen(sql), 65536));
	case 'P': {
		struct pg_parse p;

		if (pg_decode_parse(m, &p, &err) < 0)
			return strdup("(malformed)");
		return ref_dump(json_pack("{s:s, s:o}", "name", p.name, "query",
				      ref_value((const uint8_t *)p.query, strlen(p.query), 65536)));
	}
	case 'B': {
		struct pg_bind b;
		struct pg_param prm;
		size_t off = 0;
		uint16_t idx = 0;
		json_t *a;

		if (pg_decode_bind(m, &b, &err) < 0)
			return strdup("(malformed)");
		a = json_array();
		while (a && pg_bind_next(&b, &off, &idx, &prm) == 1) {
			if (!prm.data)
				json_array_append_new(a, json_null());
			else if (prm.format == 1)
				json_array_append_new(a, json_sprintf("<binary %d bytes>", prm.len));
			else
				json_array_append_new(a, ref_value(prm.data, (size_t)prm.len, max));
		}
		return ref_dump(json_pack("{s:s, s:s, s:o}", "portal", b.portal, "statement", b.stmt, "params",
				      a ? a : json_array()));
	}
	case 'E': {
		struct pg_execute e;

		if (pg_decode_execute(m, &e, &err) < 0)
			return strdup("(malformed)");
		return ref_dump(json_pack("{s:s}", "portal", e.portal));
	}
	case 'D':
	case 'C': {
		struct pg_target t;

		if ((m->type == 'D' ? pg_decode_describe(m, &t, &err) : pg_decode_close(m, &t, &err)) < 0)
			return strdup("(malformed)");
		char w[2] = { t.what, '\0' };

		return ref_dump(json_pack("{s:s, s:s}", "what", w, "name", t.name));
	}
	case 'd': {
		char t[48];

		snprintf(t, sizeof(t), "<%zu bytes>", m->body_len);
		return strdup(t);
	}
	default:
		return strdup("");
	}
}

static char *ref_backend(const struct pg_msg *m, size_t max)
{
	const char *err, *tag;

	switch (m->type) {
	case 'T':
		return ref_row_description(m);
	case 'D':
		return ref_data_row(m, max);
	case 'C':
		if (pg_decode_command_complete(m, &tag, &err) < 0)
			return strdup("(malformed)");
		return strdup(tag);
	case 'E':
	case 'N':
		return ref_error_fields(m);
	case 'Z': {
		char st;
		char t[2] = "";

		if (pg_decode_ready(m, &st, &err) == 0)
			t[0] = st;
		return strdup(t);
	}
	case 'S': {
		const char *name, *val;

		if (pg_decode_parameter_status(m, &name, &val, &err) < 0)
			return strdup("(malformed)");
		return ref_dump(json_pack("{s:s, s:s}", "name", name, "value", val));
	}
	case 'd': {
		char t[48];

		snprintf(t, sizeof(t), "<%zu bytes>", m->body_len);
		return strdup(t);
	}
	default:
		return strdup("");
	}
}

static char *ref_summary(const struct pg_msg *m, int from_backend, size_t max_value)
{
	char *t = from_backend ? ref_backend(m, max_value) : ref_frontend(m, max_value);

	/* json_pack refuses names that are not UTF-8. */
	return t ? t : strdup("(not UTF-8)");
}

/* ---- Building messages ------------------------------------------------------------------------ */

/* A message body under construction (no type byte, no length word). */
struct body {
	uint8_t *p;
	size_t n, cap;
};

static void put(struct body *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *np;

		while (cap < b->n + n)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np)
			abort();
		b->p = np;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void put8(struct body *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put16(struct body *b, uint16_t v)
{
	uint8_t t[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	put(b, t, 2);
}

static void put32(struct body *b, uint32_t v)
{
	uint8_t t[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	put(b, t, 4);
}

/* n bytes and a NUL: a protocol string. */
static void putz(struct body *b, const void *d, size_t n)
{
	put(b, d, n);
	put8(b, 0);
}

static void putcol(struct body *b, const void *d, int32_t n)
{
	put32(b, (uint32_t)n);
	if (n > 0)
		put(b, d, (size_t)n);
}

/* RowDescription field: name, then table oid, column, type oid, size, modifier, format. */
static void putfield(struct body *b, const void *name, size_t n)
{
	static const uint8_t meta[18] = { 0, 0, 0x40, 0, 0, 3, 0, 0, 0, 23, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0 };

	putz(b, name, n);
	put(b, meta, sizeof(meta));
}

/* ---- Comparing -------------------------------------------------------------------------------- */

static long n_compared, n_differ;

static void show(const char *what, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	printf("#     %s (%zu bytes): ", what, n);
	if (!s)
		printf("(null)");
	for (size_t i = 0; i < n && i < 400; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f)
			putchar(c);
		else
			printf("\\x%02x", c);
	}
	printf("%s\n", n > 400 ? "..." : "");
}

/* Summarizes type+body both ways, from a heap copy of exactly its size (ASan sees overreads). */
static char *same_as_ref(uint8_t type, int backend, const uint8_t *body, size_t len, size_t max)
{
	uint8_t *copy = malloc(len ? len : 1);
	struct pg_msg m = { .type = type, .startup = PG_STARTUP_NONE, .body = copy, .body_len = len,
			    .len = len + 5 };
	char *got, *want;

	if (!copy)
		abort();
	if (len)
		memcpy(copy, body, len);
	got = pg_summary(&m, backend, max);
	want = ref_summary(&m, backend, max);
	n_compared++;
	if (!got || !want || strcmp(got, want) != 0) {
		t_cur_failed_ = 1;
		if (++n_differ <= 8) {
			printf("#   differs: %s '%c', max %zu, body %zu bytes\n", backend ? "backend" : "frontend",
			       type, max, len);
			show("got ", got);
			show("want", want);
		}
	}
	free(want);
	free(copy);
	return got;
}

static void same(uint8_t type, int backend, const struct body *b, size_t max)
{
	free(same_as_ref(type, backend, b->p, b->n, max));
}

/* The summary of a backend message, also checked against the reference. */
static char *summary_of(uint8_t type, int backend, const struct body *b, size_t max)
{
	return same_as_ref(type, backend, b->p, b->n, max);
}

/* ---- Values ----------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32) % n;
}

static size_t utf8_enc(uint32_t cp, uint8_t *o)
{
	if (cp < 0x80) {
		o[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (uint8_t)(0xc0 | cp >> 6);
		o[1] = (uint8_t)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (uint8_t)(0xe0 | cp >> 12);
		o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (uint8_t)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (uint8_t)(0xf0 | cp >> 18);
	o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (uint8_t)(0x80 | (cp & 0x3f));
	return 4;
}

/* Sequences jansson refuses: stray continuations, overlong forms, surrogates, past U+10FFFF,
 * bytes that never occur, a lead byte without its continuations. */
static const struct {
	uint8_t b[4];
	size_t n;
} invalid[] = {
	{ { 0x80 }, 1 }, { { 0xbf }, 1 }, { { 0xc0, 0x80 }, 2 }, { { 0xc1, 0xbf }, 2 },
	{ { 0xe0, 0x80, 0x80 }, 3 }, { { 0xe0, 0x9f, 0xbf }, 3 }, { { 0xed, 0xa0, 0x80 }, 3 },
	{ { 0xed, 0xbf, 0xbf }, 3 }, { { 0xf0, 0x8f, 0xbf, 0xbf }, 4 }, { { 0xf4, 0x90, 0x80, 0x80 }, 4 },
	{ { 0xf5, 0x80, 0x80, 0x80 }, 4 }, { { 0xf8 }, 1 }, { { 0xfe }, 1 }, { { 0xff }, 1 },
	{ { 0xc3 }, 1 }, { { 0xe2, 0x82 }, 2 }, { { 0xf0, 0x9f, 0x98 }, 3 }, { { 0xc3, 0x41 }, 2 },
};

static const uint32_t edge_cps[] = { 0x80, 0xe9, 0x7ff, 0x800, 0x20ac, 0x2028, 0xd7ff, 0xe000, 0xfeff,
				     0xfffd, 0xffff, 0x10000, 0x1f600, 0x10ffff };

/* One character (or, if dirty, sometimes an invalid sequence); no NUL when nonul. */
static size_t gen_char(uint8_t *o, int dirty, int nonul)
{
	uint32_t r = rnd(dirty ? 20 : 16);

	switch (r) {
	case 6:
		o[0] = (uint8_t)(rnd(3) == 0 ? 0x7f : rnd(0x20));
		if (nonul && o[0] == 0)
			o[0] = '\n';
		return 1;
	case 7:
		o[0] = (uint8_t)"\"\\/'"[rnd(4)];
		return 1;
	case 8:
		return utf8_enc(0x80 + rnd(0x800 - 0x80), o);
	case 9: {
		uint32_t cp = 0x800 + rnd(0x10000 - 0x800);

		if (cp >= 0xd800 && cp < 0xe000)
			cp -= 0x800;
		return utf8_enc(cp, o);
	}
	case 10:
		return utf8_enc(0x10000 + rnd(0x100000), o);
	case 11:
		return utf8_enc(edge_cps[rnd(AL_ARRAY_LEN(edge_cps))], o);
	case 16:
	case 17: {
		size_t i = rnd(AL_ARRAY_LEN(invalid));

		memcpy(o, invalid[i].b, invalid[i].n);
		return invalid[i].n;
	}
	case 18:
		o[0] = (uint8_t)(nonul ? 1 + rnd(255) : rnd(256));
		return 1;
	case 19:
		o[0] = 0;
		if (nonul)
			o[0] = 'z';
		return 1;
	default:
		o[0] = (uint8_t)(0x20 + rnd(0x5f));
		return 1;
	}
}

static const size_t edge_lens[] = { 0, 1, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 253, 254, 255, 256, 257,
				    258, 259, 260, 300, 1023, 1024, 1025, 2047, 2048, 2049, 2050 };

/* A value of about (sometimes exactly) a length picked from the edges or at random. */
static size_t gen_value(uint8_t *o, size_t cap, int dirty, int nonul)
{
	size_t target = rnd(2) ? edge_lens[rnd(AL_ARRAY_LEN(edge_lens))] : rnd(rnd(4) ? 300 : 3000);
	size_t n = 0;
	int style = (int)rnd(6);

	if (target + 4 > cap)
		target = cap - 4;
	while (n < target) {
		if (style == 0) {		/* plain ASCII */
			o[n++] = (uint8_t)('a' + rnd(26));
		} else if (style == 1) {	/* one kind of multibyte character throughout */
			n += utf8_enc(edge_cps[(target * 7) % AL_ARRAY_LEN(edge_cps)], o + n);
		} else {
			n += gen_char(o + n, dirty && style != 2, nonul);
		}
	}
	if (rnd(2))
		n = target;	/* may split the last character */
	return n;
}

static const size_t maxes[] = { 0, 1, 2, 3, 4, 16, 64, 255, 256, 257, 1024, 65536 };

static size_t pick_max(void)
{
	return rnd(3) ? 256 : maxes[rnd(AL_ARRAY_LEN(maxes))];
}

/* ---- Tests ------------------------------------------------------------------------------------ */

static void expect(uint8_t type, int backend, struct body *b, size_t max, const char *want)
{
	char *t = summary_of(type, backend, b, max);

	CHECK_STR(t, want);
	free(t);
	b->n = 0;
}

/* The formats replay depends on, spelled out (and each also checked against the reference). */
static void test_examples(void)
{
	struct body b = { 0 };
	uint8_t v[400];
	char want[600];

	put16(&b, 2);
	putfield(&b, "id", 2);
	putfield(&b, "name", 4);
	expect('T', 1, &b, 256, "[\"id\",\"name\"]");
	put16(&b, 1);
	put(&b, "id", 2);
	expect('T', 1, &b, 256, "(malformed)");
	put16(&b, 0);
	expect('T', 1, &b, 256, "[]");

	/* "é" straddling byte 256: cut before it */
	memset(v, 'a', 255);
	memcpy(v + 255, "\xc3\xa9", 2);
	put16(&b, 1);
	putcol(&b, v, 257);
	snprintf(want, sizeof(want), "[\"%.255s...\"]", (const char *)v);
	expect('D', 1, &b, 256, want);
	put16(&b, 1);
	putcol(&b, v, 256);	/* half of it: not UTF-8 */
	expect('D', 1, &b, 256, "[\"<256 bytes>\"]");
	put16(&b, 1);
	putcol(&b, v, 255);
	snprintf(want, sizeof(want), "[\"%.255s\"]", (const char *)v);
	expect('D', 1, &b, 256, want);

	put16(&b, 5);
	putcol(&b, "a\"b\\c/\x01\x1f\x7f\n\xc3\xa9\t", 13);
	put32(&b, 0xffffffff);
	putcol(&b, "\xff", 1);
	putcol(&b, "a\0b", 3);
	putcol(&b, "", 0);
	expect('D', 1, &b, 256, "[\"a\\\"b\\\\c/\\u0001\\u001F\x7f\\n\xc3\xa9\\t\",null,\"<1 bytes>\",\"a\\u0000b\",\"\"]");
	put16(&b, 1);
	putcol(&b, "a\0b", 3);		/* cut: the text ends at the NUL */
	expect('D', 1, &b, 2, "[\"a...\"]");
	memset(v, 0x80, 300);		/* cut back to nothing: jansson kept "..." */
	put16(&b, 1);
	putcol(&b, v, 300);
	expect('D', 1, &b, 256, "[\"...\"]");
	put16(&b, 2);
	putcol(&b, "x", 1);
	put32(&b, 10);
	put(&b, "short", 5);
	expect('D', 1, &b, 256, "(malformed)");

	putz(&b, "SELECT 1", 8);
	expect('C', 1, &b, 256, "SELECT 1");
	put8(&b, 'I');
	expect('Z', 1, &b, 256, "I");
	put8(&b, 'X');
	expect('Z', 1, &b, 256, "");

	put8(&b, 'S');
	putz(&b, "ERREUR", 6);
	put8(&b, 'V');
	putz(&b, "ERROR", 5);
	put8(&b, 'C');
	putz(&b, "42P01", 5);
	put8(&b, 'M');
	putz(&b, "relation \"nosuch\" does not exist", 32);
	put8(&b, 0);
	expect('E', 1, &b, 256, "{\"severity\":\"ERROR\",\"sqlstate\":\"42P01\",\"message\":\"relation \\\"nosuch\\\" does not exist\"}");
	putz(&b, "client_encoding", 15);
	putz(&b, "UTF8", 4);
	expect('S', 1, &b, 256, "{\"name\":\"client_encoding\",\"value\":\"UTF8\"}");
	putz(&b, "\xff", 1);
	putz(&b, "UTF8", 4);
	expect('S', 1, &b, 256, "(not UTF-8)");

	putz(&b, "SELECT 'a\"\\'", 12);
	expect('Q', 0, &b, 256, "SELECT 'a\"\\'");
	putz(&b, "SELECT '\xff'", 10);
	expect('Q', 0, &b, 256, "<10 bytes>");
	putz(&b, "s1", 2);
	putz(&b, "SELECT $1", 9);
	put16(&b, 0);
	expect('P', 0, &b, 256, "{\"name\":\"s1\",\"query\":\"SELECT $1\"}");
	putz(&b, "", 0);
	putz(&b, "s1", 2);
	put16(&b, 3);
	put16(&b, 0);
	put16(&b, 0);
	put16(&b, 1);
	put16(&b, 3);
	putcol(&b, "42", 2);
	put32(&b, 0xffffffff);
	putcol(&b, "\0\0\0\x2a", 4);
	put16(&b, 0);
	expect('B', 0, &b, 256, "{\"portal\":\"\",\"statement\":\"s1\",\"params\":[\"42\",null,\"<binary 4 bytes>\"]}");
	putz(&b, "\xff", 1);
	putz(&b, "s1", 2);
	put16(&b, 0);
	put16(&b, 0);
	put16(&b, 0);
	expect('B', 0, &b, 256, "(not UTF-8)");
	putz(&b, "", 0);
	put32(&b, 0);
	expect('E', 0, &b, 256, "{\"portal\":\"\"}");
	put8(&b, 'S');
	putz(&b, "s1", 2);
	expect('D', 0, &b, 256, "{\"what\":\"S\",\"name\":\"s1\"}");
	free(b.p);
}

/* Every 1- and 2-byte value, and 3- and 4-byte ones around every boundary of UTF-8, as DataRow
 * columns, whole and cut. */
static void test_utf8_exhaustive(void)
{
	static const uint8_t cont[] = { 0x00, 0x41, 0x7f, 0x80, 0x81, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff };
	static const size_t cut[] = { 256, 3, 2, 1, 0 };
	struct body b = { 0 };
	uint8_t v[4];

	for (size_t c = 0; c < AL_ARRAY_LEN(cut); c++) {
		for (unsigned hi = 0; hi < 256; hi++) {
			put16(&b, 257);
			v[0] = (uint8_t)hi;
			putcol(&b, v, 1);
			for (unsigned lo = 0; lo < 256; lo++) {
				v[1] = (uint8_t)lo;
				putcol(&b, v, 2);
			}
			same('D', 1, &b, cut[c]);
			b.n = 0;
		}
		for (unsigned lead = 0xc0; lead < 0x100; lead++) {
			put16(&b, (uint16_t)(AL_ARRAY_LEN(cont) * AL_ARRAY_LEN(cont) * (1 + AL_ARRAY_LEN(cont))));
			v[0] = (uint8_t)lead;
			for (size_t i = 0; i < AL_ARRAY_LEN(cont); i++)
				for (size_t j = 0; j < AL_ARRAY_LEN(cont); j++) {
					v[1] = cont[i];
					v[2] = cont[j];
					putcol(&b, v, 3);
					for (size_t k = 0; k < AL_ARRAY_LEN(cont); k++) {
						v[3] = cont[k];
						putcol(&b, v, 4);
					}
				}
			same('D', 1, &b, cut[c]);
			b.n = 0;
		}
	}
	free(b.p);
}

/* Lengths around the cut with a 1- to 4-byte character at each place across it, a NUL before it,
 * an invalid byte before or after it; as DataRow value, field name, Bind parameter, error text
 * and query. */
static void test_cut_boundaries(void)
{
	static const size_t cuts[] = { 0, 1, 2, 3, 4, 5, 16, 255, 256, 257, 1024, 2048 };
	static const uint32_t cps[] = { 'x', 0xe9, 0x20ac, 0x1f600 };
	struct body b = { 0 };
	uint8_t *v = malloc(70000);

	if (!v)
		abort();
	for (size_t c = 0; c < AL_ARRAY_LEN(cuts); c++) {
		size_t max = cuts[c];

		for (size_t len = max > 5 ? max - 5 : 0; len <= max + 5; len++) {
			for (size_t ch = 0; ch < AL_ARRAY_LEN(cps); ch++) {
				for (size_t at = max > 5 ? max - 5 : 0; at <= max + 1 && at <= len; at++) {
					for (int twist = 0; twist < 5; twist++) {
						uint8_t e[4];
						size_t el = utf8_enc(cps[ch], e), n = len;

						memset(v, twist == 4 ? '"' : 'a', len + 8);
						memcpy(v + at, e, el);
						if (at + el > n)
							n = at + el;
						if (twist == 1 && at > 0)
							v[at - 1] = 0;		/* NUL just before */
						if (twist == 2)
							v[n > 0 ? n - 1 : 0] = 0xff;	/* invalid at the end */
						if (twist == 3 && at > 0)
							v[0] = 0xc3;		/* invalid at the start */
						put16(&b, 3);
						putcol(&b, v, (int32_t)n);
						put32(&b, 0xffffffff);
						putcol(&b, v, (int32_t)(n > 0 ? n - 1 : 0));
						same('D', 1, &b, max);
						b.n = 0;
						if (max == 256 && !memchr(v, 0, n)) {
							put16(&b, 1);
							putfield(&b, v, n);
							same('T', 1, &b, max);
							b.n = 0;
						}
						putz(&b, "", 0);
						putz(&b, "", 0);
						put16(&b, 0);
						put16(&b, 1);
						putcol(&b, v, (int32_t)n);
						put16(&b, 0);
						same('B', 0, &b, max);
						b.n = 0;
						if ((max == 2048 || max == 16) && !memchr(v, 0, n)) {
							put8(&b, max == 16 ? 'C' : 'M');
							putz(&b, v, n);
							put8(&b, 0);
							same('E', 1, &b, 256);
							same('N', 1, &b, 256);
							b.n = 0;
						}
					}
				}
			}
		}
	}
	/* Query and Parse cut at 64 KiB */
	for (size_t len = 65530; len <= 65540; len++) {
		memset(v, 's', len);
		memcpy(v + 65534, "\xe2\x82\xac", 3);
		putz(&b, v, len);
		same('Q', 0, &b, 256);
		b.n = 0;
		putz(&b, "n", 1);
		putz(&b, v, len);
		put16(&b, 0);
		same('P', 0, &b, 256);
		b.n = 0;
	}
	free(v);
	free(b.p);
}

/* Random RowDescriptions and DataRows: random values, NULLs, widths up to 2000 columns. */
static void test_random_rows(void)
{
	struct body b = { 0 };
	uint8_t *v = malloc(4000);

	if (!v)
		abort();
	for (int iter = 0; iter < 6000; iter++) {
		int wide = iter % 500 == 0;
		uint16_t n = (uint16_t)(wide ? 1000 + rnd(1000) : rnd(rnd(4) ? 4 : 40));
		int dirty = (int)rnd(2);

		put16(&b, n);
		for (uint16_t i = 0; i < n; i++) {
			size_t l = wide ? rnd(20) : gen_value(v, 4000, dirty, 1);

			if (wide)
				for (size_t j = 0; j < l; j++)
					gen_char(v + j, 0, 1), v[j] |= 0x20, v[j] &= 0x7f;
			putfield(&b, v, l);
		}
		same('T', 1, &b, 256);
		b.n = 0;

		put16(&b, n);
		for (uint16_t i = 0; i < n; i++) {
			uint32_t r = rnd(10);

			if (r == 0) {
				put32(&b, r % 2 ? 0xffffffff : 0x80000000u);	/* NULL: any negative length */
			} else {
				size_t l = wide ? rnd(30) : gen_value(v, 4000, dirty, 0);

				if (wide)
					for (size_t j = 0; j < l; j++)
						gen_char(v + j, 0, 0), v[j] &= 0x7f;
				putcol(&b, v, (int32_t)l);
			}
		}
		same('D', 1, &b, pick_max());
		b.n = 0;
	}
	free(v);
	free(b.p);
}

static void put_name(struct body *b, uint8_t *v, size_t cap)
{
	size_t l = rnd(3) ? rnd(12) : gen_value(v, cap, rnd(4) == 0, 1);

	if (l && rnd(3) == 0)
		for (size_t j = 0; j < l; j++)
			v[j] = (uint8_t)('a' + rnd(26));
	putz(b, v, l);
}

/* Random messages of every other summarized type, both directions. */
static void test_random_messages(void)
{
	static const uint8_t err_codes[] = { 'S', 'V', 'C', 'M', 'D', 'H', 'P', 'W', 'q', 'n' };
	struct body b = { 0 };
	uint8_t *v = malloc(70000);

	if (!v)
		abort();
	for (int iter = 0; iter < 4000; iter++) {
		uint16_t n;
		size_t l;

		/* Query: mostly short, sometimes past 64 KiB */
		l = rnd(50) == 0 ? 65530 + rnd(12) : gen_value(v, 70000, (int)rnd(2), 1);
		if (l > 65000)
			for (size_t j = 0; j < l; j++)
				gen_char(v + j, 0, 1), v[j] = (v[j] & 0x7f) | 0x20;
		putz(&b, v, l);
		same('Q', 0, &b, 256);
		b.n = 0;

		put_name(&b, v, 4000);
		putz(&b, v, gen_value(v, 4000, (int)rnd(2), 1));
		n = (uint16_t)rnd(3);
		put16(&b, n);
		for (uint16_t i = 0; i < n; i++)
			put32(&b, 23);
		same('P', 0, &b, 256);
		b.n = 0;

		/* Bind: 0, 1 or n formats; NULL, binary and text parameters */
		put_name(&b, v, 4000);
		put_name(&b, v, 4000);
		n = (uint16_t)rnd(rnd(4) ? 4 : 30);
		{
			uint32_t fk = rnd(3);
			uint16_t nf = (uint16_t)(fk == 0 ? 0 : fk == 1 ? 1 : n);

			put16(&b, nf);
			for (uint16_t i = 0; i < nf; i++)
				put16(&b, (uint16_t)rnd(2));
		}
		put16(&b, n);
		for (uint16_t i = 0; i < n; i++) {
			if (rnd(6) == 0)
				put32(&b, 0xffffffff);
			else
				putcol(&b, v, (int32_t)gen_value(v, 4000, (int)rnd(2), 0));
		}
		put16(&b, 1);
		put16(&b, 0);
		same('B', 0, &b, pick_max());
		b.n = 0;

		put_name(&b, v, 4000);
		put32(&b, rnd(3));
		same('E', 0, &b, 256);
		b.n = 0;

		put8(&b, rnd(8) ? (uint8_t)"SP"[rnd(2)] : (uint8_t)rnd(256));
		put_name(&b, v, 4000);
		same('D', 0, &b, 256);
		same('C', 0, &b, 256);
		b.n = 0;

		/* ErrorResponse / NoticeResponse: any fields, any order, repeats */
		n = (uint16_t)rnd(8);
		for (uint16_t i = 0; i < n; i++) {
			put8(&b, err_codes[rnd(AL_ARRAY_LEN(err_codes))]);
			putz(&b, v, gen_value(v, 4000, (int)rnd(2), 1));
		}
		put8(&b, 0);
		same('E', 1, &b, 256);
		same('N', 1, &b, 256);
		b.n = 0;

		put_name(&b, v, 4000);
		put_name(&b, v, 4000);
		same('S', 1, &b, 256);
		b.n = 0;

		putz(&b, v, gen_value(v, 4000, (int)rnd(2), 1));
		same('C', 1, &b, 256);
		b.n = 0;

		put8(&b, rnd(4) ? (uint8_t)"ITE"[rnd(3)] : (uint8_t)rnd(256));
		same('Z', 1, &b, 256);
		b.n = 0;

		l = rnd(100);
		for (size_t j = 0; j < l; j++)
			put8(&b, (uint8_t)rnd(256));
		same('d', 1, &b, 256);
		same('d', 0, &b, 256);
		same('K', 1, &b, 256);
		same('S', 0, &b, 256);
		b.n = 0;
	}
	free(v);
	free(b.p);
}

/* Every prefix of well-formed messages of every type, the whole with bytes after it, and random
 * bodies: malformed ones are "(malformed)" (or whatever the reference made of them), never overread. */
static void test_malformed(void)
{
	static const uint8_t back_types[] = { 'T', 'D', 'C', 'E', 'N', 'Z', 'S', 'd', 'K', '1', 'I' };
	static const uint8_t front_types[] = { 'Q', 'P', 'B', 'E', 'D', 'C', 'd', 'S', 'H', 'X', 'p' };
	static const uint8_t alphabet[] = { 0, 0, 0, 1, 2, 0xff, 0xff, 'a', 'S', 'P', 'M', 0xc3, 0xa9, 0x80 };
	struct body w[12] = { { 0 } };
	struct body b = { 0 };

	put16(&w[0], 2);
	putfield(&w[0], "abalance", 8);
	putfield(&w[0], "\xc3\xa9t\xc3\xa9", 6);
	put16(&w[1], 3);
	putcol(&w[1], "-2841", 5);
	put32(&w[1], 0xffffffff);
	putcol(&w[1], "caf\xc3\xa9\"", 6);
	putz(&w[2], "SELECT 1", 8);
	put8(&w[3], 'S');
	putz(&w[3], "ERROR", 5);
	put8(&w[3], 'C');
	putz(&w[3], "42P01", 5);
	put8(&w[3], 'M');
	putz(&w[3], "no \"x\"", 6);
	put8(&w[3], 0);
	put8(&w[4], 'T');
	putz(&w[5], "TimeZone", 8);
	putz(&w[5], "UTC", 3);
	putz(&w[6], "SELECT abalance FROM pgbench_accounts WHERE aid = 1", 51);
	putz(&w[7], "st", 2);
	putz(&w[7], "SELECT $1", 9);
	put16(&w[7], 1);
	put32(&w[7], 23);
	putz(&w[8], "p", 1);
	putz(&w[8], "st", 2);
	put16(&w[8], 1);
	put16(&w[8], 0);
	put16(&w[8], 2);
	putcol(&w[8], "4711", 4);
	put32(&w[8], 0xffffffff);
	put16(&w[8], 0);
	putz(&w[9], "p", 1);
	put32(&w[9], 0);
	put8(&w[10], 'P');
	putz(&w[10], "p", 1);
	putz(&w[11], "abc", 3);

	for (size_t i = 0; i < AL_ARRAY_LEN(w); i++) {
		for (size_t cut = 0; cut <= w[i].n + 3; cut++) {
			b.n = 0;
			put(&b, w[i].p, cut <= w[i].n ? cut : w[i].n);
			for (size_t j = w[i].n; j < cut; j++)
				put8(&b, (uint8_t)"\0x\xff"[j - w[i].n]);
			for (size_t t = 0; t < AL_ARRAY_LEN(back_types); t++)
				same(back_types[t], 1, &b, 256);
			for (size_t t = 0; t < AL_ARRAY_LEN(front_types); t++)
				same(front_types[t], 0, &b, 256);
		}
	}
	for (int iter = 0; iter < 3000; iter++) {
		size_t l = rnd(rnd(4) ? 24 : 80);

		b.n = 0;
		if (rnd(2)) {
			put16(&b, (uint16_t)rnd(4));
			l = l > 2 ? l - 2 : 0;
		}
		for (size_t j = 0; j < l; j++)
			put8(&b, rnd(3) ? alphabet[rnd(AL_ARRAY_LEN(alphabet))] : (uint8_t)rnd(256));
		for (size_t t = 0; t < AL_ARRAY_LEN(back_types); t++)
			same(back_types[t], 1, &b, pick_max());
		for (size_t t = 0; t < AL_ARRAY_LEN(front_types); t++)
			same(front_types[t], 0, &b, pick_max());
	}
	for (size_t i = 0; i < AL_ARRAY_LEN(w); i++)
		free(w[i].p);
	free(b.p);
	printf("# %ld messages compared with the jansson reference, %ld differed\n", n_compared, n_differ);
}

/* ---- Cost ------------------------------------------------------------------------------------- */

typedef char *(*summary_fn)(const struct pg_msg *m, int from_backend, size_t max_value);

static double ns_per_message(summary_fn f, const struct pg_msg *m, int backend, int n)
{
	struct timespec a, z;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n; i++)
		free(f(m, backend, 256));
	clock_gettime(CLOCK_MONOTONIC, &z);
	return ((double)(z.tv_sec - a.tv_sec) * 1e9 + (double)(z.tv_nsec - a.tv_nsec)) / n;
}

/* Figures: the messages of one `pgbench -S` statement, jansson reference against direct writing. */
static void test_cost(void)
{
	static const struct {
		uint8_t type;
		int backend;
	} kinds[] = { { 'T', 1 }, { 'D', 1 }, { 'C', 1 }, { 'Z', 1 }, { 'Q', 0 }, { 'P', 0 }, { 'B', 0 }, { 'E', 0 } };
	struct body b[AL_ARRAY_LEN(kinds)] = { { 0 } };
	double ref[AL_ARRAY_LEN(kinds)], now[AL_ARRAY_LEN(kinds)];
	const int n = 40000;

	put16(&b[0], 1);
	putfield(&b[0], "abalance", 8);
	put16(&b[1], 1);
	putcol(&b[1], "-2841", 5);
	putz(&b[2], "SELECT 1", 8);
	put8(&b[3], 'I');
	putz(&b[4], "SELECT abalance FROM pgbench_accounts WHERE aid = 4711;", 55);
	putz(&b[5], "", 0);
	putz(&b[5], "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", 53);
	put16(&b[5], 0);
	putz(&b[6], "", 0);
	putz(&b[6], "", 0);
	put16(&b[6], 0);
	put16(&b[6], 1);
	putcol(&b[6], "4711", 4);
	put16(&b[6], 0);
	putz(&b[7], "", 0);
	put32(&b[7], 0);
	for (size_t k = 0; k < AL_ARRAY_LEN(kinds); k++) {
		struct pg_msg m = { .type = kinds[k].type, .body = b[k].p, .body_len = b[k].n };

		free(summary_of(kinds[k].type, kinds[k].backend, &b[k], 256));
		ref[k] = now[k] = 1e18;
		for (int round = 0; round < 3; round++) {	/* alternated; the best of three */
			double r = ns_per_message(ref_summary, &m, kinds[k].backend, n);
			double d = ns_per_message(pg_summary, &m, kinds[k].backend, n);

			ref[k] = r < ref[k] ? r : ref[k];
			now[k] = d < now[k] ? d : now[k];
		}
	}
#ifdef __SANITIZE_ADDRESS__
	const char *build = "ASan+UBSan -O1 build";
#else
	const char *build = "build without sanitizers";
#endif

	printf("# figure: pg_summary ns/message, jansson reference -> direct (%s):", build);
	for (size_t k = 0; k < AL_ARRAY_LEN(kinds); k++)
		printf(" %c %.0f -> %.0f%s", kinds[k].type, ref[k], now[k], k + 1 < AL_ARRAY_LEN(kinds) ? "," : "\n");
	/* A figure, not a check: timing is for bench/, never a test's verdict. */
	for (size_t k = 0; k < AL_ARRAY_LEN(kinds); k++)
		free(b[k].p);
}

int main(void)
{
	RUN(test_examples);
	RUN(test_utf8_exhaustive);
	RUN(test_cut_boundaries);
	RUN(test_random_rows);
	RUN(test_random_messages);
	RUN(test_malformed);
	RUN(test_cost);
	TEST_EXIT();
}
