/* What a session recording keeps of one PostgreSQL message: a short text or JSON per message type. */
#include <airlock/pg.h>

#include <inttypes.h>
#include <stdlib.h>

#include <jansson.h>

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int32_t rd32(const uint8_t *p)
{
	return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

/* A value for the recording: text up to max bytes (cut at a UTF-8 boundary), else "<N bytes>". */
static json_t *value(const uint8_t *p, size_t n, size_t max)
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

static char *dump(json_t *j)
{
	char *t = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	json_decref(j);
	return t;
}

static char *text_of(json_t *j)
{
	char *t = j ? strdup(json_string_value(j)) : NULL;

	json_decref(j);
	return t;
}

static char *row_description(const struct pg_msg *m)
{
	const uint8_t *p = m->body, *end = m->body + m->body_len;
	json_t *a = json_array();
	uint16_t n;

	if (m->body_len < 2 || !a)
		goto bad;
	n = rd16(p);
	p += 2;
	for (uint16_t i = 0; i < n; i++) {
		const uint8_t *z = memchr(p, 0, (size_t)(end - p));

		if (!z || (size_t)(end - z - 1) < 18)
			goto bad;
		json_array_append_new(a, value(p, (size_t)(z - p), 256));
		p = z + 1 + 18;
	}
	return dump(a);
bad:
	json_decref(a);
	return strdup("(malformed)");
}

static char *data_row(const struct pg_msg *m, size_t max)
{
	const uint8_t *p = m->body, *end = m->body + m->body_len;
	json_t *a = json_array();
	uint16_t n;

	if (m->body_len < 2 || !a)
		goto bad;
	n = rd16(p);
	p += 2;
	for (uint16_t i = 0; i < n; i++) {
		int32_t len;

		if (end - p < 4)
			goto bad;
		len = rd32(p);
		p += 4;
		if (len < 0) {
			json_array_append_new(a, json_null());
			continue;
		}
		if (end - p < len)
			goto bad;
		json_array_append_new(a, value(p, (size_t)len, max));
		p += len;
	}
	return dump(a);
bad:
	json_decref(a);
	return strdup("(malformed)");
}

static char *error_fields(const struct pg_msg *m)
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
		json_object_set_new(o, "severity", value((const uint8_t *)f.severity, strlen(f.severity), 64));
	if (f.sqlstate)
		json_object_set_new(o, "sqlstate", value((const uint8_t *)f.sqlstate, strlen(f.sqlstate), 16));
	if (f.message)
		json_object_set_new(o, "message", value((const uint8_t *)f.message, strlen(f.message), 2048));
	if (f.detail)
		json_object_set_new(o, "detail", value((const uint8_t *)f.detail, strlen(f.detail), 2048));
	if (f.hint)
		json_object_set_new(o, "hint", value((const uint8_t *)f.hint, strlen(f.hint), 1024));
	return dump(o);
}

static char *frontend(const struct pg_msg *m, size_t max)
{
	const char *err, *sql;

	switch (m->type) {
	case 'Q':
		if (pg_decode_query(m, &sql, &err) < 0)
			return strdup("(malformed)");
		return text_of(value((const uint8_t *)sql, strlen(sql), 65536));
	case 'P': {
		struct pg_parse p;

		if (pg_decode_parse(m, &p, &err) < 0)
			return strdup("(malformed)");
		return dump(json_pack("{s:s, s:o}", "name", p.name, "query",
				      value((const uint8_t *)p.query, strlen(p.query), 65536)));
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
				json_array_append_new(a, value(prm.data, (size_t)prm.len, max));
		}
		return dump(json_pack("{s:s, s:s, s:o}", "portal", b.portal, "statement", b.stmt, "params",
				      a ? a : json_array()));
	}
	case 'E': {
		struct pg_execute e;

		if (pg_decode_execute(m, &e, &err) < 0)
			return strdup("(malformed)");
		return dump(json_pack("{s:s}", "portal", e.portal));
	}
	case 'D':
	case 'C': {
		struct pg_target t;

		if ((m->type == 'D' ? pg_decode_describe(m, &t, &err) : pg_decode_close(m, &t, &err)) < 0)
			return strdup("(malformed)");
		char w[2] = { t.what, '\0' };

		return dump(json_pack("{s:s, s:s}", "what", w, "name", t.name));
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

static char *backend(const struct pg_msg *m, size_t max)
{
	const char *err, *tag;

	switch (m->type) {
	case 'T':
		return row_description(m);
	case 'D':
		return data_row(m, max);
	case 'C':
		if (pg_decode_command_complete(m, &tag, &err) < 0)
			return strdup("(malformed)");
		return strdup(tag);
	case 'E':
	case 'N':
		return error_fields(m);
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
		return dump(json_pack("{s:s, s:s}", "name", name, "value", val));
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

char *pg_summary(const struct pg_msg *m, int from_backend, size_t max_value)
{
	char *t = from_backend ? backend(m, max_value) : frontend(m, max_value);

	/* json_pack refuses names that are not UTF-8. */
	return t ? t : strdup("(not UTF-8)");
}
