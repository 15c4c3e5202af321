/* Unit tests for PostgreSQL wire framing, decoders and builders, including every-byte-boundary splits. */
#include <airlock/pg.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define MAXLEN (1u << 20)

/* A framed message copied out, so sequences from different feeds can be compared. */
struct rec {
	uint8_t type;
	enum pg_startup_kind startup;
	uint32_t code;
	size_t body_len;
	uint8_t body[512];
};

struct recs {
	struct rec r[256];
	size_t n;
	int error;
};

static void rec_add(struct recs *rs, const struct pg_msg *m)
{
	struct rec *r;

	if (rs->n == AL_ARRAY_LEN(rs->r) || m->body_len > sizeof(r->body)) {
		rs->error = 1;
		return;
	}
	r = &rs->r[rs->n++];
	r->type = m->type;
	r->startup = m->startup;
	r->code = m->code;
	r->body_len = m->body_len;
	memcpy(r->body, m->body, m->body_len);
}

/* A receiver: an accumulation buffer fed in chunks, framing whatever is complete. */
struct feeder {
	uint8_t buf[8192];
	size_t len;
	int startup_phase;
	int backend;
	struct recs out;
};

static void feed(struct feeder *f, const uint8_t *p, size_t n)
{
	struct pg_msg m;
	const char *err;
	int r;

	if (f->len + n > sizeof(f->buf)) {
		f->out.error = 1;
		return;
	}
	memcpy(f->buf + f->len, p, n);
	f->len += n;
	for (;;) {
		r = f->backend ? pg_frame_backend(f->buf, f->len, MAXLEN, &m)
			       : pg_frame(f->buf, f->len, f->startup_phase, MAXLEN, &m);
		if (r == 0) {
			CHECK(m.need > f->len);
			return;
		}
		if (r < 0 || pg_msg_check(&m, f->backend, &err)) {
			f->out.error = 1;
			return;
		}
		CHECK((size_t)r == m.len && m.len <= f->len);
		rec_add(&f->out, &m);
		if (m.startup == PG_STARTUP_V3 || m.startup == PG_STARTUP_CANCEL)
			f->startup_phase = 0;
		memmove(f->buf, f->buf + r, f->len - (size_t)r);
		f->len -= (size_t)r;
	}
}

static int recs_equal(const struct recs *a, const struct recs *b)
{
	if (a->n != b->n || a->error != b->error)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		const struct rec *x = &a->r[i], *y = &b->r[i];

		if (x->type != y->type || x->startup != y->startup || x->code != y->code ||
		    x->body_len != y->body_len || memcmp(x->body, y->body, x->body_len))
			return 0;
	}
	return 1;
}

/* ---- Sample streams -------------------------------------------------------------------- */

static void build_bind(struct pg_buf *b)
{
	size_t s = pg_buf_begin(b, 'B');

	pg_buf_str(b, "p1");
	pg_buf_str(b, "s1");
	pg_buf_i16(b, 3);
	pg_buf_i16(b, 0);
	pg_buf_i16(b, 1);
	pg_buf_i16(b, 0);
	pg_buf_i16(b, 3);
	pg_buf_i32(b, 2);
	pg_buf_bytes(b, "42", 2);
	pg_buf_i32(b, 4);
	pg_buf_bytes(b, "\x00\x00\x00\x07", 4);
	pg_buf_i32(b, -1);
	pg_buf_i16(b, 1);
	pg_buf_i16(b, 1);
	pg_buf_end(b, s);
}

static void build_parse(struct pg_buf *b, const char *name, const char *q, int ntypes)
{
	size_t s = pg_buf_begin(b, 'P');

	pg_buf_str(b, name);
	pg_buf_str(b, q);
	pg_buf_i16(b, (int16_t)ntypes);
	for (int i = 0; i < ntypes; i++)
		pg_buf_i32(b, 23 + i);
	pg_buf_end(b, s);
}

static void build_target(struct pg_buf *b, uint8_t type, char what, const char *name)
{
	size_t s = pg_buf_begin(b, type);

	pg_buf_u8(b, (uint8_t)what);
	pg_buf_str(b, name);
	pg_buf_end(b, s);
}

static void build_execute(struct pg_buf *b, const char *portal, int32_t max)
{
	size_t s = pg_buf_begin(b, 'E');

	pg_buf_str(b, portal);
	pg_buf_i32(b, max);
	pg_buf_end(b, s);
}

/* What psql / libpq send: SSLRequest, startup, password, simple query, an extended-protocol
 * round with named statement and portal, a COPY FROM STDIN, Terminate. */
static void frontend_session(struct pg_buf *b)
{
	static const char *const params[] = { "user", "agent", "database", "app",
					      "application_name", "psql", "client_encoding", "UTF8",
					      NULL };
	size_t s;

	pg_build_ssl_request(b);
	pg_build_startup(b, params);
	pg_build_password(b, "whatever");
	pg_build_query(b, "SELECT 1; UPDATE t SET a = 1 WHERE id = 2");
	build_parse(b, "s1", "SELECT * FROM t WHERE id = $1 AND b = $2 AND c = $3", 3);
	build_bind(b);
	build_target(b, 'D', 'P', "p1");
	build_execute(b, "p1", 0);
	pg_build_sync(b);
	build_parse(b, "", "BEGIN", 0);
	s = pg_buf_begin(b, 'B');
	pg_buf_str(b, "");
	pg_buf_str(b, "");
	pg_buf_i16(b, 0);
	pg_buf_i16(b, 0);
	pg_buf_i16(b, 0);
	pg_buf_end(b, s);
	build_execute(b, "", 0);
	build_target(b, 'C', 'S', "s1");
	s = pg_buf_begin(b, 'H');
	pg_buf_end(b, s);
	pg_build_sync(b);
	pg_build_query(b, "COPY t FROM STDIN");
	s = pg_buf_begin(b, 'd');
	pg_buf_bytes(b, "1\tx\n2\ty\n", 8);
	pg_buf_end(b, s);
	s = pg_buf_begin(b, 'c');
	pg_buf_end(b, s);
	s = pg_buf_begin(b, 'f');
	pg_buf_str(b, "client gave up");
	pg_buf_end(b, s);
	pg_build_terminate(b);
}

static void backend_session(struct pg_buf *b)
{
	size_t s;

	s = pg_buf_begin(b, 'R');
	pg_buf_i32(b, PG_AUTH_SASL);
	pg_buf_str(b, "SCRAM-SHA-256-PLUS");
	pg_buf_str(b, "SCRAM-SHA-256");
	pg_buf_u8(b, 0);
	pg_buf_end(b, s);
	s = pg_buf_begin(b, 'R');
	pg_buf_i32(b, PG_AUTH_SASL_CONTINUE);
	pg_buf_bytes(b, "r=abc,s=xyz,i=4096", 18);
	pg_buf_end(b, s);
	s = pg_buf_begin(b, 'R');
	pg_buf_i32(b, PG_AUTH_MD5);
	pg_buf_bytes(b, "\x01\x02\x03\x04", 4);
	pg_buf_end(b, s);
	pg_build_auth_ok(b);
	pg_build_parameter_status(b, "server_version", "15.4");
	pg_build_backend_key(b, 1234, 0xdeadbeef);
	pg_build_ready(b, 'I');
	s = pg_buf_begin(b, 'T');
	pg_buf_i16(b, 2);
	for (int i = 0; i < 2; i++) {
		pg_buf_str(b, i ? "b" : "a");
		pg_buf_i32(b, 16384);
		pg_buf_i16(b, (int16_t)(i + 1));
		pg_buf_i32(b, 23);
		pg_buf_i16(b, 4);
		pg_buf_i32(b, -1);
		pg_buf_i16(b, 0);
	}
	pg_buf_end(b, s);
	s = pg_buf_begin(b, 'D');
	pg_buf_i16(b, 2);
	pg_buf_i32(b, 1);
	pg_buf_u8(b, '7');
	pg_buf_i32(b, -1);
	pg_buf_end(b, s);
	pg_build_command_complete(b, "SELECT 1");
	pg_build_parse_complete(b);
	pg_build_bind_complete(b);
	pg_build_no_data(b);
	pg_build_notice(b, "NOTICE", "00000", "hello");
	pg_build_error(b, "ERROR", "42501", "airlock: denied (request 7)");
	pg_build_ready(b, 'E');
	s = pg_buf_begin(b, 'G');
	pg_buf_u8(b, 0);
	pg_buf_i16(b, 2);
	pg_buf_i16(b, 0);
	pg_buf_i16(b, 0);
	pg_buf_end(b, s);
	s = pg_buf_begin(b, 'H');
	pg_buf_u8(b, 1);
	pg_buf_i16(b, 1);
	pg_buf_i16(b, 1);
	pg_buf_end(b, s);
	s = pg_buf_begin(b, 'd');
	pg_buf_bytes(b, "row\n", 4);
	pg_buf_end(b, s);
	s = pg_buf_begin(b, 'c');
	pg_buf_end(b, s);
	pg_build_close_complete(b);
	pg_build_empty_query(b);
	pg_build_ready(b, 'T');
}

static void whole(struct feeder *f, const struct pg_buf *b, int backend)
{
	memset(f, 0, sizeof(*f));
	f->startup_phase = !backend;
	f->backend = backend;
	feed(f, b->data, b->len);
}

/* ---- Tests ----------------------------------------------------------------------------- */

static void test_frontend_session_sequence(void)
{
	struct pg_buf b;
	static struct feeder f;

	pg_buf_init(&b, 0);
	frontend_session(&b);
	CHECK(pg_buf_ok(&b));
	whole(&f, &b, 0);
	CHECK(!f.out.error);
	CHECK(f.len == 0);
	CHECK(f.out.n == 20);
	CHECK(f.out.r[0].startup == PG_STARTUP_SSL);
	CHECK(f.out.r[1].startup == PG_STARTUP_V3 && f.out.r[1].code == PG_PROTO_V3);
	CHECK(f.out.r[2].type == 'p');
	CHECK(f.out.r[3].type == 'Q');
	CHECK(f.out.r[4].type == 'P' && f.out.r[5].type == 'B' && f.out.r[6].type == 'D');
	CHECK(f.out.r[7].type == 'E' && f.out.r[8].type == 'S');
	CHECK(f.out.r[19].type == 'X');
	pg_buf_free(&b);
}

/* Feeding the stream cut at every byte boundary, and one byte at a time, gives the same
 * message sequence as feeding it whole. */
static void split_everywhere(int backend)
{
	struct pg_buf b;
	static struct feeder ref, f;

	pg_buf_init(&b, 0);
	if (backend)
		backend_session(&b);
	else
		frontend_session(&b);
	whole(&ref, &b, backend);
	CHECK(!ref.out.error && ref.out.n > 10);
	for (size_t cut = 0; cut <= b.len; cut++) {
		memset(&f, 0, sizeof(f));
		f.startup_phase = !backend;
		f.backend = backend;
		feed(&f, b.data, cut);
		feed(&f, b.data + cut, b.len - cut);
		if (!recs_equal(&ref.out, &f.out) || f.len) {
			printf("#   split at %zu differs\n", cut);
			CHECK(0);
			break;
		}
	}
	memset(&f, 0, sizeof(f));
	f.startup_phase = !backend;
	f.backend = backend;
	for (size_t i = 0; i < b.len; i++)
		feed(&f, b.data + i, 1);
	CHECK(recs_equal(&ref.out, &f.out));
	pg_buf_free(&b);
}

static void test_split_every_byte_frontend(void)
{
	split_everywhere(0);
}

static void test_split_every_byte_backend(void)
{
	split_everywhere(1);
}

/* A captured session (a mode byte, then the stream): frames whole, and the same split anywhere. */
static void captured_session(const char *name, char *buf, size_t n, void *arg)
{
	static struct feeder ref, f;
	const uint8_t *data = (const uint8_t *)buf;
	int backend;

	CHECK(n > 1 && (data[0] % 4 == 0 || data[0] % 4 == 2));
	if (n < 2 || (data[0] % 4 != 0 && data[0] % 4 != 2))
		return;
	backend = data[0] % 4 == 2;
	memset(&ref, 0, sizeof(ref));
	ref.startup_phase = !backend;
	ref.backend = backend;
	feed(&ref, data + 1, n - 1);
	if (ref.out.error || ref.len || ref.out.n == 0) {
		printf("#   %s: %s\n", name, ref.out.error ? "does not frame" : "ends mid-message");
		CHECK(0);
		return;
	}
	for (size_t cut = 1; cut < n - 1; cut++) {
		memset(&f, 0, sizeof(f));
		f.startup_phase = !backend;
		f.backend = backend;
		feed(&f, data + 1, cut);
		feed(&f, data + 1 + cut, n - 1 - cut);
		if (!recs_equal(&ref.out, &f.out) || f.len) {
			printf("#   %s: split at %zu differs\n", name, cut);
			CHECK(0);
			return;
		}
	}
	(void)arg;
}

/*
 * Sessions of real clients (psql, pgbench, psycopg2) captured by tests/fuzz/capture_pg.py:
 * the fuzz driver's seeds captured_*, a mode byte (0: what the client sent, from its startup
 * on; 2: what the server sent) and the stream. Each frames whole, message by message to its
 * end, and cut at every byte boundary gives the same messages.
 */
static void test_split_captured_sessions(void)
{
	const char *dir = getenv("AIRLOCK_PG_CORPUS") ? getenv("AIRLOCK_PG_CORPUS") : "tests/fuzz/corpus/pg";
	static char data[8192];

	CHECK(t_each_file(dir, "captured_", "", data, sizeof(data), captured_session, NULL) >= 8);
}

static int frame1(const struct pg_buf *b, int startup, struct pg_msg *m)
{
	return pg_frame(b->data, b->len, startup, MAXLEN, m);
}

static void test_startup_decode(void)
{
	static const char *const params[] = { "user", "agent", "database", "db", "options",
					      "-c x=y", NULL };
	struct pg_buf b;
	struct pg_msg m;
	struct pg_startup s;
	const char *err = NULL, *k, *v;
	size_t off = 0;
	int n = 0;

	pg_buf_init(&b, 0);
	pg_build_startup(&b, params);
	CHECK(frame1(&b, 1, &m) == (int)b.len);
	CHECK(m.startup == PG_STARTUP_V3);
	CHECK(pg_decode_startup(&m, &s, &err) == 0);
	CHECK(s.major == 3 && s.minor == 0 && s.n_params == 3);
	CHECK_STR(s.user, "agent");
	CHECK_STR(s.database, "db");
	CHECK_STR(s.options, "-c x=y");
	CHECK(s.application_name == NULL);
	while (pg_startup_next(&m, &off, &k, &v))
		n++;
	CHECK(n == 3);
	/* A 3.2 minor version still frames (the server negotiates it down). */
	b.data[6] = 0;
	b.data[7] = 2;
	CHECK(frame1(&b, 1, &m) > 0);
	CHECK(pg_decode_startup(&m, &s, &err) == 0 && s.minor == 2);
	pg_buf_free(&b);
}

static void test_startup_requests(void)
{
	struct pg_buf b;
	struct pg_msg m;
	struct pg_cancel c;
	const char *err;

	pg_buf_init(&b, 0);
	pg_build_ssl_request(&b);
	CHECK(frame1(&b, 1, &m) == 8 && m.startup == PG_STARTUP_SSL && m.code == PG_SSL_REQUEST_CODE);
	pg_buf_reset(&b);
	pg_build_cancel(&b, 4242, 0x01020304);
	CHECK(frame1(&b, 1, &m) == 16 && m.startup == PG_STARTUP_CANCEL);
	CHECK(pg_decode_cancel(&m, &c, &err) == 0);
	CHECK(c.pid == 4242 && c.key == 0x01020304);
	pg_buf_reset(&b);
	{
		size_t s = pg_buf_begin(&b, 0);

		pg_buf_i32(&b, (int32_t)PG_GSSENC_REQUEST_CODE);
		pg_buf_end(&b, s);
	}
	CHECK(frame1(&b, 1, &m) == 8 && m.startup == PG_STARTUP_GSSENC);
	pg_buf_free(&b);
}

static void test_startup_malformed(void)
{
	struct pg_msg m;
	const char *err = NULL;
	struct pg_startup s;
	/* protocol 2.0 */
	static const uint8_t v2[] = { 0, 0, 0, 9, 0, 2, 0, 0, 0 };
	/* SSLRequest with a body */
	static const uint8_t ssl_long[] = { 0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2f, 0, 0, 0, 0 };
	/* cancel request too short */
	static const uint8_t cancel_short[] = { 0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1 };
	/* length below the header */
	static const uint8_t tiny[] = { 0, 0, 0, 4 };
	/* over the startup limit: refused from the length word alone */
	static const uint8_t huge[] = { 0, 0, 0x30, 0 };
	/* a key without value; no terminator */
	static const uint8_t noval[] = { 0, 0, 0, 13, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0 };
	static const uint8_t noterm[] = { 0, 0, 0, 17, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0, 'a', 0, 'b', 0 };
	static const uint8_t trailing[] = { 0, 0, 0, 10, 0, 3, 0, 0, 0, 0 };
	static const uint8_t ok[] = { 0, 0, 0, 17, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0, 'a', 0, 0 };

	CHECK(pg_frame(v2, sizeof(v2), 1, MAXLEN, &m) == -1 && m.err);
	CHECK(pg_frame(ssl_long, sizeof(ssl_long), 1, MAXLEN, &m) == -1);
	CHECK(pg_frame(cancel_short, sizeof(cancel_short), 1, MAXLEN, &m) == -1);
	CHECK(pg_frame(tiny, sizeof(tiny), 1, MAXLEN, &m) == -1);
	CHECK(pg_frame(huge, sizeof(huge), 1, MAXLEN, &m) == -1);
	CHECK(pg_frame(huge, 3, 1, MAXLEN, &m) == 0 && m.need == 8);
	CHECK(pg_frame(noval, sizeof(noval), 1, MAXLEN, &m) == (int)sizeof(noval));
	CHECK(pg_decode_startup(&m, &s, &err) == -1 && err);
	CHECK(pg_frame(noterm, sizeof(noterm), 1, MAXLEN, &m) == (int)sizeof(noterm));
	CHECK(pg_decode_startup(&m, &s, &err) == -1);
	CHECK(pg_frame(trailing, sizeof(trailing), 1, MAXLEN, &m) == (int)sizeof(trailing));
	CHECK(pg_decode_startup(&m, &s, &err) == -1);
	/* ok has 16 bytes but claims 17: need more */
	CHECK(pg_frame(ok, sizeof(ok), 1, MAXLEN, &m) == 0 && m.need == 17);
	/* a configured limit below the server's applies too */
	CHECK(pg_frame(noval, sizeof(noval), 1, 12, &m) == -1);
}

static void test_query_parse_bind_decode(void)
{
	struct pg_buf b;
	struct pg_msg m;
	struct pg_parse p;
	struct pg_bind bd;
	struct pg_param prm;
	struct pg_execute e;
	struct pg_target t;
	const char *err, *sql;
	size_t off = 0;
	uint16_t idx = 0;

	pg_buf_init(&b, 0);
	pg_build_query(&b, "SELECT 1");
	CHECK(frame1(&b, 0, &m) == (int)b.len && m.type == 'Q');
	CHECK(pg_decode_query(&m, &sql, &err) == 0);
	CHECK_STR(sql, "SELECT 1");
	CHECK(pg_decode_parse(&m, &p, &err) == -1);	/* wrong type */

	pg_buf_reset(&b);
	build_parse(&b, "s1", "SELECT $1", 2);
	CHECK(frame1(&b, 0, &m) > 0);
	CHECK(pg_decode_parse(&m, &p, &err) == 0);
	CHECK_STR(p.name, "s1");
	CHECK_STR(p.query, "SELECT $1");
	CHECK(p.n_types == 2 && pg_parse_type(&p, 0) == 23 && pg_parse_type(&p, 1) == 24);
	CHECK(pg_parse_type(&p, 2) == 0);

	pg_buf_reset(&b);
	build_bind(&b);
	CHECK(frame1(&b, 0, &m) > 0);
	CHECK(pg_decode_bind(&m, &bd, &err) == 0);
	CHECK_STR(bd.portal, "p1");
	CHECK_STR(bd.stmt, "s1");
	CHECK(bd.n_formats == 3 && bd.n_params == 3 && bd.n_result_formats == 1);
	CHECK(pg_bind_format(&bd, 0) == 0 && pg_bind_format(&bd, 1) == 1);
	CHECK(pg_bind_result_format(&bd, 5) == 1);
	CHECK(pg_bind_next(&bd, &off, &idx, &prm) == 1);
	CHECK(prm.len == 2 && !memcmp(prm.data, "42", 2) && prm.format == 0);
	CHECK(pg_bind_next(&bd, &off, &idx, &prm) == 1);
	CHECK(prm.len == 4 && prm.format == 1 && prm.data[3] == 7);
	CHECK(pg_bind_next(&bd, &off, &idx, &prm) == 1);
	CHECK(prm.len == -1 && prm.data == NULL);
	CHECK(pg_bind_next(&bd, &off, &idx, &prm) == 0);

	pg_buf_reset(&b);
	build_execute(&b, "p1", 100);
	CHECK(frame1(&b, 0, &m) > 0);
	CHECK(pg_decode_execute(&m, &e, &err) == 0 && e.max_rows == 100);
	CHECK_STR(e.portal, "p1");

	pg_buf_reset(&b);
	build_target(&b, 'D', 'S', "s1");
	CHECK(frame1(&b, 0, &m) > 0);
	CHECK(pg_decode_describe(&m, &t, &err) == 0 && t.what == 'S');
	CHECK_STR(t.name, "s1");
	pg_buf_reset(&b);
	build_target(&b, 'C', 'P', "");
	CHECK(frame1(&b, 0, &m) > 0);
	CHECK(pg_decode_close(&m, &t, &err) == 0 && t.what == 'P');
	CHECK_STR(t.name, "");
	pg_buf_free(&b);
}

static void test_sasl_initial_decode(void)
{
	struct pg_buf b;
	struct pg_msg m;
	struct pg_sasl_initial s;
	const char *err;

	pg_buf_init(&b, 0);
	pg_build_sasl_initial(&b, "SCRAM-SHA-256", "n,,n=,r=abc", 11);
	CHECK(frame1(&b, 0, &m) > 0);
	CHECK(pg_decode_sasl_initial(&m, &s, &err) == 0);
	CHECK_STR(s.mechanism, "SCRAM-SHA-256");
	CHECK(s.len == 11 && !memcmp(s.data, "n,,n=,r=abc", 11));
	pg_buf_reset(&b);
	pg_build_sasl_initial(&b, "X", NULL, 0);
	CHECK(frame1(&b, 0, &m) > 0);
	CHECK(pg_decode_sasl_initial(&m, &s, &err) == 0 && s.len == -1 && !s.data);
	pg_buf_free(&b);
}

/* Builds a one-message buffer from raw body bytes. */
static int frame_raw(uint8_t type, const void *body, size_t n, int backend, struct pg_msg *m,
		     struct pg_buf *b)
{
	size_t s;

	pg_buf_reset(b);
	s = pg_buf_begin(b, type);
	pg_buf_bytes(b, body, n);
	pg_buf_end(b, s);
	return backend ? pg_frame_backend(b->data, b->len, MAXLEN, m) : pg_frame(b->data, b->len, 0, MAXLEN, m);
}

#define BAD_FRONT(type, lit)                                                         \
	do {                                                                         \
		CHECK(frame_raw(type, lit, sizeof(lit) - 1, 0, &m, &b) > 0);         \
		err = NULL;                                                          \
		CHECK(pg_msg_check(&m, 0, &err) == -1 && err);                       \
	} while (0)
#define BAD_BACK(type, lit)                                                          \
	do {                                                                         \
		CHECK(frame_raw(type, lit, sizeof(lit) - 1, 1, &m, &b) > 0);         \
		err = NULL;                                                          \
		CHECK(pg_msg_check(&m, 1, &err) == -1 && err);                       \
	} while (0)

static void test_frontend_malformed(void)
{
	struct pg_buf b;
	struct pg_msg m;
	const char *err;
	static const uint8_t unknown[] = { 'Z', 0, 0, 0, 4 };
	static const uint8_t short_len[] = { 'Q', 0, 0, 0, 3 };
	static const uint8_t neg_len[] = { 'Q', 0xff, 0xff, 0xff, 0xf0 };
	static const uint8_t over[] = { 'Q', 0, 0x10, 0, 1 };
	static const uint8_t sync_body[] = { 'S', 0, 0, 0, 5, 0 };

	pg_buf_init(&b, 0);
	CHECK(pg_frame(unknown, 1, 0, MAXLEN, &m) == -1 && m.err);
	CHECK(pg_frame(short_len, sizeof(short_len), 0, MAXLEN, &m) == -1);
	CHECK(pg_frame(neg_len, sizeof(neg_len), 0, MAXLEN, &m) == -1);
	CHECK(pg_frame(over, sizeof(over), 0, MAXLEN, &m) == -1);
	CHECK(pg_frame(over, sizeof(over), 0, 1u << 21, &m) == 0 && m.need == (1u << 20) + 2);
	CHECK(pg_frame(sync_body, sizeof(sync_body), 0, MAXLEN, &m) == -1);
	CHECK(pg_frame(over, 4, 0, MAXLEN, &m) == 0 && m.need == 5);
	CHECK(pg_frame(over, 0, 0, MAXLEN, &m) == 0);

	BAD_FRONT('Q', "SELECT 1");		/* no NUL */
	BAD_FRONT('Q', "SELECT 1\0x\0");	/* bytes after the NUL */
	BAD_FRONT('Q', "");
	BAD_FRONT('P', "s\0q\0");		/* no type count */
	BAD_FRONT('P', "s\0q\0\0\2\0\0\0\1");	/* 2 types, 1 present */
	BAD_FRONT('B', "\0\0\0\0\0\1\0\0\0\2a");	/* param length 2, 1 byte */
	BAD_FRONT('B', "\0\0\0\0\0\1\xff\xff\xff\xfe\0\0");	/* param length -2 */
	BAD_FRONT('B', "\0\0\0\2\0\0\0\0\0\1\0\0\0\0\0\0");	/* 2 formats, 1 param */
	BAD_FRONT('B', "\0\0\0\1\0\2\0\0\0\0");	/* format code 2 */
	BAD_FRONT('B', "\0\0\0\0\0\0\0\1\0\5");	/* result format 5 */
	BAD_FRONT('B', "\0\0\0\0\0\0");		/* no result format count */
	BAD_FRONT('B', "\0\0\0\0\0\0\0\0\0");	/* trailing byte */
	BAD_FRONT('E', "p\0\0\0");		/* short max_rows */
	BAD_FRONT('D', "Xname\0");		/* neither S nor P */
	BAD_FRONT('D', "S");
	BAD_FRONT('C', "Pname");
	BAD_FRONT('f', "why");
	pg_buf_free(&b);
}

static void test_backend_decode(void)
{
	struct pg_buf b;
	struct pg_msg m;
	struct pg_auth a;
	struct pg_error_fields e;
	struct pg_copy_response c;
	struct pg_cancel k;
	const char *err, *n, *v;
	char st;
	uint16_t cnt;
	size_t s;

	pg_buf_init(&b, 0);
	s = pg_buf_begin(&b, 'R');
	pg_buf_i32(&b, PG_AUTH_SASL);
	pg_buf_str(&b, "SCRAM-SHA-256-PLUS");
	pg_buf_str(&b, "SCRAM-SHA-256");
	pg_buf_u8(&b, 0);
	pg_buf_end(&b, s);
	CHECK(pg_frame_backend(b.data, b.len, MAXLEN, &m) > 0);
	CHECK(pg_decode_auth(&m, &a, &err) == 0 && a.code == PG_AUTH_SASL && a.n_mechanisms == 2);
	CHECK(pg_auth_has_mechanism(&a, "SCRAM-SHA-256"));
	CHECK(!pg_auth_has_mechanism(&a, "SCRAM-SHA-1"));

	CHECK(frame_raw('R', "\0\0\0\5abcd", 8, 1, &m, &b) > 0);
	CHECK(pg_decode_auth(&m, &a, &err) == 0 && a.code == PG_AUTH_MD5 && !memcmp(a.salt, "abcd", 4));
	CHECK(frame_raw('R', "\0\0\0\x0c" "v=xyz", 9, 1, &m, &b) > 0);
	CHECK(pg_decode_auth(&m, &a, &err) == 0 && a.data_len == 5);

	pg_buf_reset(&b);
	pg_build_parameter_status(&b, "TimeZone", "UTC");
	CHECK(pg_frame_backend(b.data, b.len, MAXLEN, &m) > 0);
	CHECK(pg_decode_parameter_status(&m, &n, &v, &err) == 0);
	CHECK_STR(n, "TimeZone");
	CHECK_STR(v, "UTC");

	pg_buf_reset(&b);
	pg_build_backend_key(&b, 77, 0xfffffffe);
	CHECK(pg_frame_backend(b.data, b.len, MAXLEN, &m) > 0);
	CHECK(pg_decode_backend_key(&m, &k, &err) == 0 && k.pid == 77 && k.key == 0xfffffffe);

	pg_buf_reset(&b);
	pg_build_ready(&b, 'T');
	CHECK(pg_frame_backend(b.data, b.len, MAXLEN, &m) > 0);
	CHECK(pg_decode_ready(&m, &st, &err) == 0 && st == 'T');

	pg_buf_reset(&b);
	pg_build_command_complete(&b, "UPDATE 3");
	CHECK(pg_frame_backend(b.data, b.len, MAXLEN, &m) > 0);
	CHECK(pg_decode_command_complete(&m, &n, &err) == 0);
	CHECK_STR(n, "UPDATE 3");

	pg_buf_reset(&b);
	pg_build_error(&b, "FATAL", "08P01", "invalid message");
	CHECK(pg_frame_backend(b.data, b.len, MAXLEN, &m) > 0 && m.type == 'E');
	CHECK(pg_decode_error(&m, &e, &err) == 0 && e.n_fields == 4);
	CHECK_STR(e.severity, "FATAL");
	CHECK_STR(e.sqlstate, "08P01");
	CHECK_STR(e.message, "invalid message");
	CHECK(e.detail == NULL);
	/* A server older than 9.6 sends only the localized severity. */
	CHECK(frame_raw('N', "SWARNING\0C01000\0Mx\0\0", 20, 1, &m, &b) > 0);
	CHECK(pg_decode_error(&m, &e, &err) == 0);
	CHECK_STR(e.severity, "WARNING");

	CHECK(frame_raw('H', "\1\0\2\0\1\0\1", 7, 1, &m, &b) > 0);
	CHECK(pg_decode_copy_response(&m, &c, &err) == 0 && c.format == 1 && c.n_cols == 2);
	CHECK(frame_raw('D', "\0\2\0\0\0\1x\xff\xff\xff\xff", 11, 1, &m, &b) > 0);
	CHECK(pg_decode_data_row(&m, &cnt, &err) == 0 && cnt == 2);
	CHECK(frame_raw('T', "\0\0", 2, 1, &m, &b) > 0);
	CHECK(pg_decode_row_description(&m, &cnt, &err) == 0 && cnt == 0);
	pg_buf_free(&b);
}

static void test_backend_malformed(void)
{
	struct pg_buf b;
	struct pg_msg m;
	const char *err;
	static const uint8_t key_short[] = { 'K', 0, 0, 0, 8, 0, 0, 0, 1 };
	static const uint8_t ready_long[] = { 'Z', 0, 0, 0, 6, 'I', 'I' };
	static const uint8_t frontend_only[] = { 'Q', 0, 0, 0, 4 };

	pg_buf_init(&b, 0);
	CHECK(pg_frame_backend(key_short, sizeof(key_short), MAXLEN, &m) == -1);
	CHECK(pg_frame_backend(ready_long, sizeof(ready_long), MAXLEN, &m) == -1);
	CHECK(pg_frame_backend(frontend_only, sizeof(frontend_only), MAXLEN, &m) == -1);
	BAD_BACK('R', "\0\0\0");			/* short code */
	BAD_BACK('R', "\0\0\0\x63");			/* unknown auth code 99 */
	BAD_BACK('R', "\0\0\0\5abc");			/* MD5 salt short */
	BAD_BACK('R', "\0\0\0\0x");			/* Ok with a body */
	BAD_BACK('R', "\0\0\0\x0a\0");			/* SASL without mechanisms */
	BAD_BACK('R', "\0\0\0\x0aSCRAM");		/* SASL mechanism without NUL */
	BAD_BACK('R', "\0\0\0\x0aSCRAM\0");		/* SASL list without terminator */
	BAD_BACK('S', "name\0");			/* no value */
	BAD_BACK('Z', "X");				/* bad status */
	BAD_BACK('C', "SELECT 1");			/* no NUL */
	BAD_BACK('E', "C42501\0");			/* no terminator */
	BAD_BACK('E', "C42501");
	BAD_BACK('E', "\0x");				/* trailing byte */
	BAD_BACK('T', "\0\1a\0\0\0\0\0");		/* field truncated */
	BAD_BACK('T', "\0\2a\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");	/* count over */
	BAD_BACK('D', "\0\1\xff\xff\xff\xfe");		/* column length -2 */
	BAD_BACK('D', "\0\1\0\0\0\5abc");		/* column truncated */
	BAD_BACK('D', "\0\1\x7f\xff\xff\xff");		/* huge column */
	BAD_BACK('G', "\2\0\0");			/* format 2 */
	BAD_BACK('G', "\0\0\2\0\0");			/* 2 columns, 1 format */
	BAD_BACK('W', "\0\0\1\0\7");			/* column format 7 */
	pg_buf_free(&b);
}

/* Every strict prefix of every well-formed body fails its decoder (nothing reads past the
 * declared length, and nothing accepts a truncated message). */
static void truncations(int backend)
{
	struct pg_buf b;
	static struct feeder f;
	struct pg_msg m;
	const char *err;

	pg_buf_init(&b, 0);
	if (backend)
		backend_session(&b);
	else
		frontend_session(&b);
	whole(&f, &b, backend);
	CHECK(!f.out.error);
	for (size_t i = 0; i < f.out.n; i++) {
		const struct rec *r = &f.out.r[i];

		/* Opaque or empty bodies have no wrong prefix. */
		if (r->startup == PG_STARTUP_SSL || r->type == 'd' || r->type == 'p' || !r->body_len)
			continue;
		if (backend && r->type == 'R' && r->body_len > 4 && r->body[3] == PG_AUTH_SASL_CONTINUE)
			continue;
		for (size_t cut = 0; cut < r->body_len; cut++) {
			uint8_t *copy = malloc(cut ? cut : 1);

			memcpy(copy, r->body, cut);
			memset(&m, 0, sizeof(m));
			m.type = r->type;
			m.startup = r->startup;
			m.code = r->code;
			m.body = copy;
			m.body_len = cut;
			err = NULL;
			if (pg_msg_check(&m, backend, &err) != -1 || !err) {
				printf("#   message %zu (%c) accepted cut at %zu\n", i, r->type ? r->type : '0', cut);
				CHECK(0);
			}
			free(copy);
		}
	}
	pg_buf_free(&b);
}

static void test_truncated_bodies_frontend(void)
{
	truncations(0);
}

static void test_truncated_bodies_backend(void)
{
	truncations(1);
}

static void test_builders(void)
{
	struct pg_buf b;
	static const uint8_t ready[] = { 'Z', 0, 0, 0, 5, 'I' };
	static const uint8_t ok[] = { 'R', 0, 0, 0, 8, 0, 0, 0, 0 };
	static const uint8_t ssl[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };

	pg_buf_init(&b, 0);
	pg_build_ready(&b, 'I');
	CHECK(b.len == sizeof(ready) && !memcmp(b.data, ready, sizeof(ready)));
	pg_buf_reset(&b);
	pg_build_auth_ok(&b);
	CHECK(b.len == sizeof(ok) && !memcmp(b.data, ok, sizeof(ok)));
	pg_buf_reset(&b);
	pg_build_ssl_request(&b);
	CHECK(b.len == sizeof(ssl) && !memcmp(b.data, ssl, sizeof(ssl)));
	pg_buf_reset(&b);
	pg_build_error(&b, "ERROR", "42501", "no");
	/* E len S ERROR\0 V ERROR\0 C 42501\0 M no\0 \0 */
	CHECK(b.len == 1 + 4 + 7 + 7 + 7 + 4 + 1);
	CHECK(b.data[4] == b.len - 1);
	pg_buf_free(&b);

	/* A bounded buffer fails instead of growing past max, and stays failed. */
	pg_buf_init(&b, 16);
	pg_build_query(&b, "SELECT a long query that will not fit");
	CHECK(!pg_buf_ok(&b));
	pg_build_sync(&b);
	CHECK(!pg_buf_ok(&b));
	pg_buf_reset(&b);
	pg_build_sync(&b);
	CHECK(pg_buf_ok(&b) && b.len == 5);
	pg_buf_free(&b);
}

/* Binary parameters of fixed-size types as the server prints them; others refused. */
static const char *bin_text(uint32_t oid, const char *hex)
{
	static char out[PG_BINARY_TEXT_MAX];
	uint8_t v[32];
	size_t n = 0;

	for (; hex[0] && hex[1] && n < sizeof(v); hex += 2)
		v[n++] = (uint8_t)strtoul((char[]){ hex[0], hex[1], 0 }, NULL, 16);
	if (pg_binary_param_text(oid, v, n, out, sizeof(out)) < 0)
		return "(refused)";
	return out;
}

static void test_binary_params(void)
{
	char small[8];

	CHECK_STR(bin_text(16, "01"), "t");
	CHECK_STR(bin_text(16, "00"), "f");
	CHECK_STR(bin_text(16, "02"), "(refused)");
	CHECK_STR(bin_text(21, "fffe"), "-2");
	CHECK_STR(bin_text(23, "00000029"), "41");
	CHECK_STR(bin_text(23, "80000000"), "-2147483648");
	CHECK_STR(bin_text(26, "ffffffff"), "4294967295");
	CHECK_STR(bin_text(20, "7fffffffffffffff"), "9223372036854775807");
	CHECK_STR(bin_text(20, "ffffffffffffffff"), "-1");
	CHECK_STR(bin_text(700, "3fc00000"), "1.5");
	CHECK_STR(bin_text(700, "3dcccccd"), "0.1");          /* float4 0.1: shortest digits */
	CHECK_STR(bin_text(701, "3fb999999999999a"), "0.1");
	CHECK_STR(bin_text(701, "7ff0000000000000"), "Infinity");
	CHECK_STR(bin_text(701, "7ff8000000000000"), "NaN");
	CHECK_STR(bin_text(2950, "a0eebc999c0b4ef8bb6d6bb9bd380a11"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
	CHECK_STR(bin_text(1082, "00000000"), "2000-01-01");
	CHECK_STR(bin_text(1082, "ffffffff"), "1999-12-31");
	CHECK_STR(bin_text(1082, "00002279"), "2024-02-29");   /* 8825 days */
	CHECK_STR(bin_text(1082, "fff4dbf9"), "0001-01-01");   /* -730119 */
	CHECK_STR(bin_text(1082, "fff4dbf8"), "0001-12-31 BC");
	CHECK_STR(bin_text(1082, "7fffffff"), "infinity");
	CHECK_STR(bin_text(1114, "0000000000000000"), "2000-01-01 00:00:00");
	CHECK_STR(bin_text(1114, "000000000016e360"), "2000-01-01 00:00:01.5");
	CHECK_STR(bin_text(1114, "ffffffffffffffff"), "1999-12-31 23:59:59.999999");
	CHECK_STR(bin_text(1184, "0000000000000000"), "2000-01-01 00:00:00+00");
	CHECK_STR(bin_text(1184, "8000000000000000"), "-infinity");
	/* wrong sizes, types without a fixed binary form (numeric, bytea, none) */
	CHECK_STR(bin_text(23, "0029"), "(refused)");
	CHECK_STR(bin_text(20, "00000029"), "(refused)");
	CHECK_STR(bin_text(2950, "a0ee"), "(refused)");
	CHECK_STR(bin_text(1700, "0001000000000000000a"), "(refused)");
	CHECK_STR(bin_text(17, "01020304"), "(refused)");
	CHECK_STR(bin_text(0, "00000029"), "(refused)");
	CHECK(pg_binary_param_text(23, (const uint8_t *)"\0\0\0\1", 4, small, sizeof(small)) < 0);
	CHECK(pg_type_binary_is_text(25) && pg_type_binary_is_text(1043) && !pg_type_binary_is_text(17) &&
	      !pg_type_binary_is_text(0));
}

int main(void)
{
	RUN(test_frontend_session_sequence);
	RUN(test_split_every_byte_frontend);
	RUN(test_split_every_byte_backend);
	RUN(test_split_captured_sessions);
	RUN(test_startup_decode);
	RUN(test_startup_requests);
	RUN(test_startup_malformed);
	RUN(test_query_parse_bind_decode);
	RUN(test_sasl_initial_decode);
	RUN(test_frontend_malformed);
	RUN(test_backend_decode);
	RUN(test_backend_malformed);
	RUN(test_truncated_bodies_frontend);
	RUN(test_truncated_bodies_backend);
	RUN(test_builders);
	RUN(test_binary_params);
	TEST_EXIT();
}
