/* What a session recording keeps of one PostgreSQL message: a short text or JSON per message type. */
#include <airlock/pg.h>

#include <stdlib.h>

/*
 * The summaries are written straight into one growing buffer, on the proxy's hot path (every
 * RowDescription, DataRow, CommandComplete and ReadyForQuery of every statement). Their bytes
 * are those the jansson version wrote (json_dumps with JSON_COMPACT, which replay reads back),
 * and tests/unit/test_pg_summary.c keeps that version as the reference and compares the two:
 *   - a string is escaped as jansson escapes it: '"', '\\', \b \f \n \r \t, other bytes below
 *     0x20 as \u00XX in upper-case hex; '/', DEL and non-ASCII are kept as they are;
 *   - UTF-8 is checked as jansson checks it (no overlong forms, surrogates or code points past
 *     U+10FFFF); a value that fails is "<N bytes>", a name that fails makes the whole summary
 *     "(not UTF-8)" (json_pack refused it);
 *   - a value cut at max bytes is cut back to a character boundary, checked up to the cut, and
 *     written up to its first NUL (it went through a C string) followed by "...".
 */

/* Bytes a JSON string escapes: 'u' for \u00XX, else the letter after the backslash. */
static const char esc[256] = {
	['\0'] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u', [0x05] = 'u',
	[0x06] = 'u', [0x07] = 'u', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', [0x0b] = 'u',
	['\f'] = 'f', ['\r'] = 'r', [0x0e] = 'u', [0x0f] = 'u', [0x10] = 'u', [0x11] = 'u',
	[0x12] = 'u', [0x13] = 'u', [0x14] = 'u', [0x15] = 'u', [0x16] = 'u', [0x17] = 'u',
	[0x18] = 'u', [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u', [0x1c] = 'u', [0x1d] = 'u',
	[0x1e] = 'u', [0x1f] = 'u', ['"'] = '"', ['\\'] = '\\',
};

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int32_t rd32(const uint8_t *p)
{
	return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

/* Drops what was appended after mark. */
static void rewind_to(struct al_buf *b, size_t mark)
{
	if (b->oom || !b->p)
		return;
	b->len = mark;
	b->p[mark] = '\0';
}

static void add_c(struct al_buf *b, char c)
{
	if (!b->oom && b->len + 2 <= b->cap) {
		b->p[b->len++] = c;
		b->p[b->len] = '\0';
		return;
	}
	al_buf_add(b, &c, 1);
}

/* Decimal, without the printf machinery. */
static void add_int(struct al_buf *b, long long v)
{
	char t[20];

	al_buf_add(b, t, al_dec(t, v));
}

/* p[0..n) escaped, without quotes; -1 (having written part of it) if it is not UTF-8. */
static int add_escaped(struct al_buf *b, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i = 0, run = 0, l;

	while (i < n) {
		uint8_t c = p[i];
		char e;

		if (c >= 0x80) {
			l = al_utf8_seq(p + i, n - i);
			if (!l)
				return -1;
			i += l;
			continue;
		}
		e = esc[c];
		if (!e) {
			i++;
			continue;
		}
		al_buf_add(b, p + run, i - run);
		if (e == 'u') {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

			al_buf_add(b, u, sizeof(u));
		} else {
			char s[2] = { '\\', e };

			al_buf_add(b, s, sizeof(s));
		}
		run = ++i;
	}
	al_buf_add(b, p + run, n - run);
	return 0;
}

/* A name as json_pack's "s" took it: a JSON string, or -1 if it is not UTF-8. */
static int add_name(struct al_buf *b, const char *s)
{
	add_c(b, '"');
	if (add_escaped(b, (const uint8_t *)s, strlen(s)) < 0)
		return -1;
	add_c(b, '"');
	return 0;
}

/*
 * A value for the recording: text up to max bytes (cut at a UTF-8 boundary, "..." appended),
 * else "<N bytes>"; a JSON string if json, else the bare text.
 */
static void add_value(struct al_buf *b, const uint8_t *p, size_t n, size_t max, int json)
{
	size_t k = n < max ? n : max, stop = k, mark = b->len;
	const uint8_t *z;

	while (k > 0 && k < n && (p[k] & 0xc0) == 0x80)
		k--;
	/* Cut or bare, the text went through a C string: it ends at its first NUL. */
	if (k < n || !json) {
		z = memchr(p, 0, k);
		stop = z ? (size_t)(z - p) : k;
	}
	if (json)
		add_c(b, '"');
	if (json ? add_escaped(b, p, stop) < 0 : !al_utf8_valid(p, stop))
		goto not_text;
	if (stop < k && !al_utf8_valid(p + stop, k - stop))
		goto not_text;
	if (!json)
		al_buf_add(b, p, stop);
	if (k < n)
		al_buf_add(b, "...", 3);
	if (json)
		add_c(b, '"');
	return;
not_text:
	rewind_to(b, mark);
	al_buf_add(b, json ? "\"<" : "<", json ? 2 : 1);
	add_int(b, (long long)n);
	al_buf_str(b, json ? " bytes>\"" : " bytes>");
}

static void malformed(struct al_buf *b, size_t mark)
{
	rewind_to(b, mark);
	al_buf_str(b, "(malformed)");
}

static void row_description(struct al_buf *b, const struct pg_msg *m)
{
	const uint8_t *p = m->body, *end = m->body + m->body_len;
	size_t mark = b->len;
	uint16_t n;

	if (m->body_len < 2)
		goto bad;
	n = rd16(p);
	p += 2;
	add_c(b, '[');
	for (uint16_t i = 0; i < n; i++) {
		const uint8_t *z = memchr(p, 0, (size_t)(end - p));

		if (!z || (size_t)(end - z - 1) < 18)
			goto bad;
		if (i)
			add_c(b, ',');
		add_value(b, p, (size_t)(z - p), 256, 1);
		p = z + 1 + 18;
	}
	add_c(b, ']');
	return;
bad:
	malformed(b, mark);
}

static void data_row(struct al_buf *b, const struct pg_msg *m, size_t max)
{
	const uint8_t *p = m->body, *end = m->body + m->body_len;
	size_t mark = b->len;
	uint16_t n;

	if (m->body_len < 2)
		goto bad;
	n = rd16(p);
	p += 2;
	add_c(b, '[');
	for (uint16_t i = 0; i < n; i++) {
		int32_t len;

		if (end - p < 4)
			goto bad;
		len = rd32(p);
		p += 4;
		if (i)
			add_c(b, ',');
		if (len < 0) {
			al_buf_add(b, "null", 4);
			continue;
		}
		if (end - p < len)
			goto bad;
		add_value(b, p, (size_t)len, max, 1);
		p += len;
	}
	add_c(b, ']');
	return;
bad:
	malformed(b, mark);
}

static void error_fields(struct al_buf *b, const struct pg_msg *m)
{
	static const struct {
		size_t off, max;
		const char *key;
	} keys[] = {
		{ offsetof(struct pg_error_fields, severity), 64, "\"severity\":" },
		{ offsetof(struct pg_error_fields, sqlstate), 16, "\"sqlstate\":" },
		{ offsetof(struct pg_error_fields, message), 2048, "\"message\":" },
		{ offsetof(struct pg_error_fields, detail), 2048, "\"detail\":" },
		{ offsetof(struct pg_error_fields, hint), 1024, "\"hint\":" },
	};
	struct pg_error_fields f;
	const char *err;
	int first = 1;

	if (pg_decode_error(m, &f, &err) < 0) {
		al_buf_str(b, "(malformed)");
		return;
	}
	add_c(b, '{');
	for (size_t i = 0; i < AL_ARRAY_LEN(keys); i++) {
		const char *v = *(const char *const *)((const char *)&f + keys[i].off);

		if (!v)
			continue;
		if (!first)
			add_c(b, ',');
		first = 0;
		al_buf_str(b, keys[i].key);
		add_value(b, (const uint8_t *)v, strlen(v), keys[i].max, 1);
	}
	add_c(b, '}');
}

static void bytes_tag(struct al_buf *b, size_t n)
{
	add_c(b, '<');
	add_int(b, (long long)n);
	al_buf_add(b, " bytes>", 7);
}

/* Returns -1 when a name is not UTF-8. */
static int frontend(struct al_buf *b, const struct pg_msg *m, size_t max)
{
	const char *err, *sql;

	switch (m->type) {
	case 'Q':
		if (pg_decode_query(m, &sql, &err) < 0)
			break;
		add_value(b, (const uint8_t *)sql, strlen(sql), 65536, 0);
		return 0;
	case 'P': {
		struct pg_parse p;

		if (pg_decode_parse(m, &p, &err) < 0)
			break;
		al_buf_add(b, "{\"name\":", 8);
		if (add_name(b, p.name) < 0)
			return -1;
		al_buf_add(b, ",\"query\":", 9);
		add_value(b, (const uint8_t *)p.query, strlen(p.query), 65536, 1);
		add_c(b, '}');
		return 0;
	}
	case 'B': {
		struct pg_bind bd;
		struct pg_param prm;
		size_t off = 0;
		uint16_t idx = 0;

		if (pg_decode_bind(m, &bd, &err) < 0)
			break;
		al_buf_add(b, "{\"portal\":", 10);
		if (add_name(b, bd.portal) < 0)
			return -1;
		al_buf_add(b, ",\"statement\":", 13);
		if (add_name(b, bd.stmt) < 0)
			return -1;
		al_buf_add(b, ",\"params\":[", 11);
		while (pg_bind_next(&bd, &off, &idx, &prm) == 1) {
			if (idx > 1)
				add_c(b, ',');
			if (!prm.data) {
				al_buf_add(b, "null", 4);
			} else if (prm.format == 1) {
				al_buf_add(b, "\"<binary ", 9);
				add_int(b, prm.len);
				al_buf_add(b, " bytes>\"", 8);
			} else {
				add_value(b, prm.data, (size_t)prm.len, max, 1);
			}
		}
		al_buf_add(b, "]}", 2);
		return 0;
	}
	case 'E': {
		struct pg_execute e;

		if (pg_decode_execute(m, &e, &err) < 0)
			break;
		al_buf_add(b, "{\"portal\":", 10);
		if (add_name(b, e.portal) < 0)
			return -1;
		add_c(b, '}');
		return 0;
	}
	case 'D':
	case 'C': {
		struct pg_target t;
		char w[2];

		if ((m->type == 'D' ? pg_decode_describe(m, &t, &err) : pg_decode_close(m, &t, &err)) < 0)
			break;
		w[0] = t.what;
		w[1] = '\0';
		al_buf_add(b, "{\"what\":", 8);
		if (add_name(b, w) < 0)
			return -1;
		al_buf_add(b, ",\"name\":", 8);
		if (add_name(b, t.name) < 0)
			return -1;
		add_c(b, '}');
		return 0;
	}
	case 'd':
		bytes_tag(b, m->body_len);
		return 0;
	default:
		return 0;
	}
	al_buf_str(b, "(malformed)");
	return 0;
}

/* Returns -1 when a name is not UTF-8. */
static int backend(struct al_buf *b, const struct pg_msg *m, size_t max)
{
	const char *err;

	switch (m->type) {
	case 'T':
		row_description(b, m);
		return 0;
	case 'D':
		data_row(b, m, max);
		return 0;
	case 'E':
	case 'N':
		error_fields(b, m);
		return 0;
	case 'Z': {
		char st;

		if (pg_decode_ready(m, &st, &err) == 0 && st)
			add_c(b, st);
		return 0;
	}
	case 'S': {
		const char *name, *val;

		if (pg_decode_parameter_status(m, &name, &val, &err) < 0)
			break;
		al_buf_add(b, "{\"name\":", 8);
		if (add_name(b, name) < 0)
			return -1;
		al_buf_add(b, ",\"value\":", 9);
		if (add_name(b, val) < 0)
			return -1;
		add_c(b, '}');
		return 0;
	}
	case 'd':
		bytes_tag(b, m->body_len);
		return 0;
	default:
		return 0;
	}
	al_buf_str(b, "(malformed)");
	return 0;
}

int pg_summary_add(struct al_buf *b, const struct pg_msg *m, int from_backend, size_t max_value)
{
	size_t mark = b->len;
	const char *tag, *err;

	al_buf_add(b, "", 0);   /* a string even when the summary is empty */
	if (from_backend && m->type == 'C')
		al_buf_str(b, pg_decode_command_complete(m, &tag, &err) < 0 ? "(malformed)" : tag);
	else if ((from_backend ? backend(b, m, max_value) : frontend(b, m, max_value)) < 0) {
		rewind_to(b, mark);
		al_buf_str(b, "(not UTF-8)");
	}
	return b->oom ? -1 : 0;
}

char *pg_summary(const struct pg_msg *m, int from_backend, size_t max_value)
{
	struct al_buf b = { 0 };

	if (pg_summary_add(&b, m, from_backend, max_value) < 0) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
