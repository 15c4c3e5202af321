/* PostgreSQL wire protocol: a growable output buffer and builders for the messages the proxy sends. */
#include <airlock/pg.h>

#include <stdlib.h>
#include <string.h>

void pg_buf_init(struct pg_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void pg_buf_free(struct pg_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void pg_buf_reset(struct pg_buf *b)
{
	b->len = 0;
	b->failed = 0;
}

/* Makes room for n more bytes; 0 on success, -1 (and failed set) otherwise. */
static int reserve(struct pg_buf *b, size_t n)
{
	size_t want, cap;
	uint8_t *p;

	if (b->failed)
		return -1;
	if (n > SIZE_MAX - b->len || (b->max && b->len + n > b->max))
		goto fail;
	want = b->len + n;
	if (want <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < want) {
		if (cap > SIZE_MAX / 2) {
			cap = want;
			break;
		}
		cap *= 2;
	}
	if (b->max && cap > b->max)
		cap = b->max;
	p = realloc(b->data, cap);
	if (!p)
		goto fail;
	b->data = p;
	b->cap = cap;
	return 0;
fail:
	b->failed = 1;
	return -1;
}

void pg_buf_bytes(struct pg_buf *b, const void *p, size_t n)
{
	if (!n || reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void pg_buf_u8(struct pg_buf *b, uint8_t v)
{
	pg_buf_bytes(b, &v, 1);
}

void pg_buf_i16(struct pg_buf *b, int16_t v)
{
	uint8_t x[2] = { (uint8_t)((uint16_t)v >> 8), (uint8_t)v };

	pg_buf_bytes(b, x, 2);
}

void pg_buf_i32(struct pg_buf *b, int32_t v)
{
	uint32_t u = (uint32_t)v;
	uint8_t x[4] = { (uint8_t)(u >> 24), (uint8_t)(u >> 16), (uint8_t)(u >> 8), (uint8_t)u };

	pg_buf_bytes(b, x, 4);
}

void pg_buf_str(struct pg_buf *b, const char *s)
{
	pg_buf_bytes(b, s, strlen(s) + 1);
}

size_t pg_buf_begin(struct pg_buf *b, uint8_t type)
{
	size_t start;

	if (type)
		pg_buf_u8(b, type);
	start = b->len;
	pg_buf_i32(b, 0);
	return start;
}

void pg_buf_end(struct pg_buf *b, size_t start)
{
	size_t n;

	if (b->failed || start + 4 > b->len)
		return;
	n = b->len - start;
	if (n > 0x3fffffff) {
		b->failed = 1;
		return;
	}
	b->data[start] = (uint8_t)(n >> 24);
	b->data[start + 1] = (uint8_t)(n >> 16);
	b->data[start + 2] = (uint8_t)(n >> 8);
	b->data[start + 3] = (uint8_t)n;
}

/* ---- Backend messages -------------------------------------------------------------------- */

static void error_like(struct pg_buf *b, uint8_t type, const char *severity, const char *sqlstate,
		       const char *message)
{
	size_t s = pg_buf_begin(b, type);

	pg_buf_u8(b, 'S');
	pg_buf_str(b, severity);
	pg_buf_u8(b, 'V');
	pg_buf_str(b, severity);
	pg_buf_u8(b, 'C');
	pg_buf_str(b, sqlstate);
	pg_buf_u8(b, 'M');
	pg_buf_str(b, message);
	pg_buf_u8(b, 0);
	pg_buf_end(b, s);
}

void pg_build_error(struct pg_buf *b, const char *severity, const char *sqlstate, const char *message)
{
	error_like(b, 'E', severity, sqlstate, message);
}

void pg_build_notice(struct pg_buf *b, const char *severity, const char *sqlstate, const char *message)
{
	error_like(b, 'N', severity, sqlstate, message);
}

void pg_build_ready(struct pg_buf *b, char status)
{
	size_t s = pg_buf_begin(b, 'Z');

	pg_buf_u8(b, (uint8_t)status);
	pg_buf_end(b, s);
}

static void auth(struct pg_buf *b, int32_t code)
{
	size_t s = pg_buf_begin(b, 'R');

	pg_buf_i32(b, code);
	pg_buf_end(b, s);
}

void pg_build_auth_ok(struct pg_buf *b)
{
	auth(b, PG_AUTH_OK);
}

void pg_build_auth_cleartext(struct pg_buf *b)
{
	auth(b, PG_AUTH_CLEARTEXT);
}

void pg_build_parameter_status(struct pg_buf *b, const char *name, const char *value)
{
	size_t s = pg_buf_begin(b, 'S');

	pg_buf_str(b, name);
	pg_buf_str(b, value);
	pg_buf_end(b, s);
}

void pg_build_backend_key(struct pg_buf *b, uint32_t pid, uint32_t key)
{
	size_t s = pg_buf_begin(b, 'K');

	pg_buf_i32(b, (int32_t)pid);
	pg_buf_i32(b, (int32_t)key);
	pg_buf_end(b, s);
}

void pg_build_command_complete(struct pg_buf *b, const char *tag)
{
	size_t s = pg_buf_begin(b, 'C');

	pg_buf_str(b, tag);
	pg_buf_end(b, s);
}

static void empty(struct pg_buf *b, uint8_t type)
{
	pg_buf_end(b, pg_buf_begin(b, type));
}

void pg_build_empty_query(struct pg_buf *b)
{
	empty(b, 'I');
}

void pg_build_parse_complete(struct pg_buf *b)
{
	empty(b, '1');
}

void pg_build_bind_complete(struct pg_buf *b)
{
	empty(b, '2');
}

void pg_build_close_complete(struct pg_buf *b)
{
	empty(b, '3');
}

void pg_build_no_data(struct pg_buf *b)
{
	empty(b, 'n');
}

/* ---- Frontend messages ------------------------------------------------------------------- */

void pg_build_startup(struct pg_buf *b, const char *const *params)
{
	size_t s = pg_buf_begin(b, 0);

	pg_buf_i32(b, (int32_t)PG_PROTO_V3);
	for (; params && params[0] && params[1]; params += 2) {
		pg_buf_str(b, params[0]);
		pg_buf_str(b, params[1]);
	}
	pg_buf_u8(b, 0);
	pg_buf_end(b, s);
}

void pg_build_ssl_request(struct pg_buf *b)
{
	size_t s = pg_buf_begin(b, 0);

	pg_buf_i32(b, (int32_t)PG_SSL_REQUEST_CODE);
	pg_buf_end(b, s);
}

void pg_build_cancel(struct pg_buf *b, uint32_t pid, uint32_t key)
{
	size_t s = pg_buf_begin(b, 0);

	pg_buf_i32(b, (int32_t)PG_CANCEL_REQUEST_CODE);
	pg_buf_i32(b, (int32_t)pid);
	pg_buf_i32(b, (int32_t)key);
	pg_buf_end(b, s);
}

void pg_build_password(struct pg_buf *b, const char *password)
{
	size_t s = pg_buf_begin(b, 'p');

	pg_buf_str(b, password);
	pg_buf_end(b, s);
}

void pg_build_sasl_initial(struct pg_buf *b, const char *mechanism, const void *data, size_t len)
{
	size_t s = pg_buf_begin(b, 'p');

	pg_buf_str(b, mechanism);
	if (len > INT32_MAX) {
		b->failed = 1;
		return;
	}
	pg_buf_i32(b, data ? (int32_t)len : -1);
	if (data)
		pg_buf_bytes(b, data, len);
	pg_buf_end(b, s);
}

void pg_build_sasl_response(struct pg_buf *b, const void *data, size_t len)
{
	size_t s = pg_buf_begin(b, 'p');

	pg_buf_bytes(b, data, len);
	pg_buf_end(b, s);
}

void pg_build_query(struct pg_buf *b, const char *sql)
{
	size_t s = pg_buf_begin(b, 'Q');

	pg_buf_str(b, sql);
	pg_buf_end(b, s);
}

void pg_build_sync(struct pg_buf *b)
{
	empty(b, 'S');
}

void pg_build_terminate(struct pg_buf *b)
{
	empty(b, 'X');
}
