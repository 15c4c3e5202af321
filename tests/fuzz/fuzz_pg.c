/* libFuzzer driver for the PostgreSQL framer, every message decoder, and the SQL classifier. */
#include <airlock/pg.h>

#include <stdlib.h>
#include <string.h>

/*
 * Input: one mode byte, then bytes.
 *   mode % 4 == 0: a frontend stream starting in the startup phase
 *   mode % 4 == 1: a frontend stream of typed messages
 *   mode % 4 == 2: a backend stream
 *   mode % 4 == 3: SQL text for the classifier
 * Bit 2 of the mode selects a small message limit so the over-limit path runs too.
 */

#define SQL_MAX 4096

#define ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* What the cache gives is what a parse gives, every field. */
static void same_as_parse(struct pg_cache *c, const char *sql)
{
	struct pg_stmt_list a, b;
	char err[256];
	int ra = pg_classify_cached(c, sql, &a, err, sizeof(err)), rb = pg_classify(sql, &b, err, sizeof(err));

	ASSERT(ra == rb && a.n == b.n);
	for (size_t i = 0; i < a.n; i++) {
		const struct pg_stmt *x = &a.stmts[i], *y = &b.stmts[i];

		ASSERT(same_str(x->text, y->text) && x->kind == y->kind && x->kinds == y->kinds &&
		       x->unbounded_write == y->unbounded_write && !strcmp(x->fingerprint, y->fingerprint) &&
		       x->location == y->location && x->len == y->len && x->prep_op == y->prep_op &&
		       same_str(x->prepared_name, y->prepared_name) && same_str(x->portal_name, y->portal_name) &&
		       x->unsafe_setting == y->unsafe_setting && x->grant_exact == y->grant_exact &&
		       x->n_relations == y->n_relations);
		for (size_t r = 0; r < x->n_relations; r++)
			ASSERT(!strcmp(x->relations[r], y->relations[r]));
	}
	pg_stmt_list_free(&a);
	pg_stmt_list_free(&b);
}

static void classify(const char *sql, size_t len)
{
	static struct pg_cache *cache;
	struct pg_stmt_list l;
	char err[256];
	char *copy, *json;
	const unsigned dml = 1u << PG_KIND_INSERT | 1u << PG_KIND_UPDATE | 1u << PG_KIND_DELETE | 1u << PG_KIND_MERGE;

	if (len > SQL_MAX)
		return;
	copy = strndup(sql, len);
	if (!copy)
		return;
	if (pg_classify(copy, &l, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < l.n; i++) {
			const struct pg_stmt *st = &l.stmts[i];

			ASSERT((unsigned)st->kind < PG_KIND__COUNT);
			ASSERT(st->kinds & (1u << st->kind) && st->kinds < (1u << PG_KIND__COUNT));
			ASSERT(st->location >= 0 && st->len >= 0 && (size_t)st->location + (size_t)st->len <= strlen(copy));
			ASSERT(strlen(st->fingerprint) == PG_FINGERPRINT_LEN);
			ASSERT(!st->unbounded_write || (st->kinds & dml));
			ASSERT(!st->unsafe_setting || st->grant_exact);
			/* a relation named by an argument (a sequence) or by text is a constant the
			 * fingerprint hides: the grant must be for the exact text */
			for (size_t r = 0; r < st->n_relations; r++)
				ASSERT(strcmp(st->relations[r], "*") || st->grant_exact);
		}
		json = pg_stmt_list_json(&l, 0);
		ASSERT(json != NULL);
		free(json);
	} else {
		ASSERT(err[0] != 0);
		ASSERT(l.n == 0);
	}
	pg_stmt_list_free(&l);
	/* Through the cache, then again with every digit changed: a string that reuses the first
	 * one's entry (its numbers differ) must be classified as a parse of it is. */
	if (cache || pg_cache_new(16, &cache) == 0) {
		same_as_parse(cache, copy);
		for (char *p = copy; *p; p++)
			if (*p >= '0' && *p <= '9')
				*p = (char)('0' + (*p - '0' + 1) % 10);
		same_as_parse(cache, copy);
	}
	free(copy);
}

/* Runs every decoder over the body, whatever its real type, to exercise each parser. */
static void decode_all(const struct pg_msg *m0)
{
	static const char types[] = "QPBEDCfpRSKZENTDGHW";
	struct pg_msg m = *m0;
	const char *err, *s1, *s2;
	union {
		struct pg_parse parse;
		struct pg_bind bind;
		struct pg_execute exec;
		struct pg_target target;
		struct pg_sasl_initial sasl;
		struct pg_auth auth;
		struct pg_cancel key;
		struct pg_error_fields ef;
		struct pg_copy_response copy;
		struct pg_startup startup;
	} u;
	uint16_t n;
	char st;

	m.startup = PG_STARTUP_NONE;
	for (const char *t = types; *t; t++) {
		m.type = (uint8_t)*t;
		switch (*t) {
		case 'Q': (void)!pg_decode_query(&m, &s1, &err); break;
		case 'P':
			if (!pg_decode_parse(&m, &u.parse, &err))
				for (uint16_t i = 0; i < u.parse.n_types; i++)
					(void)pg_parse_type(&u.parse, i);
			break;
		case 'B':
			if (!pg_decode_bind(&m, &u.bind, &err)) {
				struct pg_param p;
				size_t off = 0;
				uint16_t idx = 0;
				size_t cnt = 0;

				while (pg_bind_next(&u.bind, &off, &idx, &p)) {
					static const uint32_t oids[] = { 16, 20, 21, 23, 26, 700, 701, 1082,
									 1114, 1184, 2950 };
					char txt[PG_BINARY_TEXT_MAX];

					ASSERT(p.len == -1 || p.data != NULL);
					/* every parameter as each fixed-size type, as the audit renders it */
					for (size_t k = 0; p.data && k < sizeof(oids) / sizeof(oids[0]); k++)
						if (pg_binary_param_text(oids[k], p.data, (size_t)p.len, txt,
									 sizeof(txt)) == 0)
							ASSERT(memchr(txt, '\0', sizeof(txt)) != NULL);
					cnt++;
				}
				ASSERT(cnt == u.bind.n_params);
				for (uint16_t i = 0; i < u.bind.n_result_formats; i++)
					ASSERT((uint16_t)pg_bind_result_format(&u.bind, i) <= 1);
			}
			break;
		case 'E':
			(void)!pg_decode_execute(&m, &u.exec, &err);
			if (m0->type != 'E' || m0->startup)
				(void)!pg_decode_error(&m, &u.ef, &err);
			break;
		case 'D':
			(void)!pg_decode_describe(&m, &u.target, &err);
			(void)!pg_decode_data_row(&m, &n, &err);
			break;
		case 'C':
			(void)!pg_decode_close(&m, &u.target, &err);
			(void)!pg_decode_command_complete(&m, &s1, &err);
			break;
		case 'f': (void)!pg_decode_copy_fail(&m, &s1, &err); break;
		case 'p':
			(void)!pg_decode_password(&m, &s1, &err);
			(void)!pg_decode_sasl_initial(&m, &u.sasl, &err);
			break;
		case 'R':
			if (!pg_decode_auth(&m, &u.auth, &err))
				(void)pg_auth_has_mechanism(&u.auth, "SCRAM-SHA-256");
			break;
		case 'S': (void)!pg_decode_parameter_status(&m, &s1, &s2, &err); break;
		case 'K': (void)!pg_decode_backend_key(&m, &u.key, &err); break;
		case 'Z': (void)!pg_decode_ready(&m, &st, &err); break;
		case 'N': (void)!pg_decode_error(&m, &u.ef, &err); break;
		case 'T': (void)!pg_decode_row_description(&m, &n, &err); break;
		case 'G': case 'H': case 'W': (void)!pg_decode_copy_response(&m, &u.copy, &err); break;
		}
	}
	m.type = 0;
	m.startup = PG_STARTUP_V3;
	m.code = PG_PROTO_V3;
	if (!pg_decode_startup(&m, &u.startup, &err)) {
		size_t off = 0, cnt = 0;
		const char *k, *v;

		while (pg_startup_next(&m, &off, &k, &v))
			cnt++;
		ASSERT(cnt == u.startup.n_params);
	}
	m.startup = PG_STARTUP_CANCEL;
	(void)!pg_decode_cancel(&m, &u.key, &err);
}

static void stream(const uint8_t *buf, size_t len, int startup, int backend, size_t max)
{
	struct pg_msg m, part;
	const char *err;

	while (len) {
		int r = backend ? pg_frame_backend(buf, len, max, &m) : pg_frame(buf, len, startup, max, &m);

		if (r < 0) {
			ASSERT(m.err != NULL);
			return;
		}
		if (r == 0) {
			ASSERT(m.need > len);
			return;
		}
		ASSERT((size_t)r <= len && (size_t)r == m.len && m.len <= max);
		ASSERT(m.body >= buf && m.body + m.body_len <= buf + len);
		/* Incremental: any strict prefix of a complete message asks for more (or is refused
		 * by the same header check, never accepted). */
		ASSERT((backend ? pg_frame_backend(buf, (size_t)r - 1, max, &part)
				: pg_frame(buf, (size_t)r - 1, startup, max, &part)) <= 0);
		decode_all(&m);
		if (pg_msg_check(&m, backend, &err) == 0) {
			const char *sql;
			struct pg_parse p;

			if (m.type == 'Q' && pg_decode_query(&m, &sql, &err) == 0)
				classify(sql, strlen(sql));
			if (m.type == 'P' && pg_decode_parse(&m, &p, &err) == 0)
				classify(p.query, strlen(p.query));
		} else {
			ASSERT(err != NULL);
		}
		if (m.startup == PG_STARTUP_V3 || m.startup == PG_STARTUP_CANCEL)
			startup = 0;
		buf += r;
		len -= (size_t)r;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t mode;
	size_t max;

	if (size < 1)
		return 0;
	mode = data[0];
	max = (mode & 4) ? 64 : (1u << 20);
	data++;
	size--;
	switch (mode % 4) {
	case 0: stream(data, size, 1, 0, max); break;
	case 1: stream(data, size, 0, 0, max); break;
	case 2: stream(data, size, 0, 1, max); break;
	case 3: classify((const char *)data, strnlen((const char *)data, size)); break;
	}
	return 0;
}
