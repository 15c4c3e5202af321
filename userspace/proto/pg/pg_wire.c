/* PostgreSQL wire protocol: incremental message framing and bounds-checked message decoders. */
#include <airlock/pg.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- Framing ------------------------------------------------------------------------------ */

static int frontend_type_known(uint8_t t)
{
	return t && strchr("QPBDESHCXFdcfp", t) != NULL;
}

static int backend_type_known(uint8_t t)
{
	return t && strchr("RSKZCENTDGHWdcIn123stAVv", t) != NULL;
}

/* Body size a message type must have, or -1 if variable. */
static long frontend_fixed_body(uint8_t t)
{
	switch (t) {
	case 'S': case 'H': case 'X': case 'c':
		return 0;
	}
	return -1;
}

static long backend_fixed_body(uint8_t t)
{
	switch (t) {
	case '1': case '2': case '3': case 'n': case 'I': case 'c': case 's':
		return 0;
	case 'Z':
		return 1;
	case 'K':
		return 8;
	}
	return -1;
}

static int fail(struct pg_msg *out, const char *why)
{
	out->err = why;
	return -1;
}

static int frame_typed(const uint8_t *buf, size_t len, size_t max_len, int backend,
		       struct pg_msg *out)
{
	uint32_t mlen;
	long fixed;

	if (len < 1) {
		out->need = 5;
		return 0;
	}
	if (!(backend ? backend_type_known(buf[0]) : frontend_type_known(buf[0])))
		return fail(out, "unknown message type");
	if (len < 5) {
		out->need = 5;
		return 0;
	}
	mlen = be32(buf + 1);
	/* 0x3fffffff is the server's own allocation ceiling; it also keeps the result in an int. */
	if (mlen < 4 || mlen > 0x3fffffffu)
		return fail(out, "invalid message length");
	if ((size_t)mlen + 1 > max_len)
		return fail(out, "message length over the limit");
	fixed = backend ? backend_fixed_body(buf[0]) : frontend_fixed_body(buf[0]);
	if (fixed >= 0 && mlen - 4 != (uint32_t)fixed)
		return fail(out, "invalid message length for its type");
	if (len < (size_t)mlen + 1) {
		out->need = (size_t)mlen + 1;
		return 0;
	}
	out->type = buf[0];
	out->body = buf + 5;
	out->body_len = mlen - 4;
	out->len = (size_t)mlen + 1;
	return (int)out->len;
}

static int frame_startup(const uint8_t *buf, size_t len, size_t max_len, struct pg_msg *out)
{
	uint32_t plen, code;
	size_t limit = max_len < PG_MAX_STARTUP_LEN ? max_len : PG_MAX_STARTUP_LEN;

	if (len < 4) {
		out->need = 8;
		return 0;
	}
	plen = be32(buf);
	if (plen < 8)
		return fail(out, "invalid startup packet length");
	if (plen > limit)
		return fail(out, "startup packet length over the limit");
	if (len < 8) {
		out->need = 8;
		return 0;
	}
	code = be32(buf + 4);
	switch (code) {
	case PG_SSL_REQUEST_CODE:
	case PG_GSSENC_REQUEST_CODE:
		if (plen != 8)
			return fail(out, "invalid SSL/GSSENC request length");
		out->startup = code == PG_SSL_REQUEST_CODE ? PG_STARTUP_SSL : PG_STARTUP_GSSENC;
		break;
	case PG_CANCEL_REQUEST_CODE:
		if (plen != 16)
			return fail(out, "invalid cancel request length");
		out->startup = PG_STARTUP_CANCEL;
		break;
	default:
		if (code >> 16 != 3)
			return fail(out, "unsupported frontend protocol");
		if (plen < 9)
			return fail(out, "invalid startup packet length");
		out->startup = PG_STARTUP_V3;
	}
	if (len < plen) {
		out->need = plen;
		return 0;
	}
	out->code = code;
	out->body = buf + 8;
	out->body_len = plen - 8;
	out->len = plen;
	return (int)plen;
}

int pg_frame(const uint8_t *buf, size_t len, int startup_phase, size_t max_len, struct pg_msg *out)
{
	memset(out, 0, sizeof(*out));
	if (startup_phase)
		return frame_startup(buf, len, max_len, out);
	return frame_typed(buf, len, max_len, 0, out);
}

int pg_frame_backend(const uint8_t *buf, size_t len, size_t max_len, struct pg_msg *out)
{
	memset(out, 0, sizeof(*out));
	return frame_typed(buf, len, max_len, 1, out);
}

/* ---- A bounds-checked reader; any overrun sets bad and later reads return zeroes. -------- */

struct rd {
	const uint8_t *p;
	size_t len, off;
	int bad;
};

static void rd_init(struct rd *r, const struct pg_msg *m)
{
	r->p = m->body;
	r->len = m->body_len;
	r->off = 0;
	r->bad = 0;
}

static int rd_has(struct rd *r, size_t n)
{
	if (r->bad || r->len - r->off < n) {
		r->bad = 1;
		return 0;
	}
	return 1;
}

static uint8_t rd_u8(struct rd *r)
{
	if (!rd_has(r, 1))
		return 0;
	return r->p[r->off++];
}

static uint16_t rd_u16(struct rd *r)
{
	uint16_t v;

	if (!rd_has(r, 2))
		return 0;
	v = be16(r->p + r->off);
	r->off += 2;
	return v;
}

static uint32_t rd_u32(struct rd *r)
{
	uint32_t v;

	if (!rd_has(r, 4))
		return 0;
	v = be32(r->p + r->off);
	r->off += 4;
	return v;
}

static const uint8_t *rd_bytes(struct rd *r, size_t n)
{
	const uint8_t *p;

	if (!rd_has(r, n))
		return NULL;
	p = r->p + r->off;
	r->off += n;
	return p;
}

static const char *rd_str(struct rd *r)
{
	const uint8_t *nul;
	const char *s;

	if (r->bad)
		return NULL;
	nul = memchr(r->p + r->off, 0, r->len - r->off);
	if (!nul) {
		r->bad = 1;
		return NULL;
	}
	s = (const char *)(r->p + r->off);
	r->off = (size_t)(nul - r->p) + 1;
	return s;
}

static int rd_done(struct rd *r)
{
	return !r->bad && r->off == r->len;
}

static int check_type(const struct pg_msg *m, uint8_t type, const char **err)
{
	if (m->type != type || m->startup != PG_STARTUP_NONE) {
		*err = "wrong message type for decoder";
		return -1;
	}
	return 0;
}

/* Returns 0 if r was consumed exactly; otherwise sets *err. */
static int finish(struct rd *r, const char **err, const char *what)
{
	if (!rd_done(r)) {
		*err = what;
		return -1;
	}
	return 0;
}

/* ---- Startup-phase packets --------------------------------------------------------------- */

int pg_startup_next(const struct pg_msg *m, size_t *off, const char **key, const char **val)
{
	struct rd r;

	rd_init(&r, m);
	r.off = *off;
	*key = rd_str(&r);
	if (!*key || !**key)
		return 0;
	*val = rd_str(&r);
	if (!*val)
		return 0;
	*off = r.off;
	return 1;
}

int pg_decode_startup(const struct pg_msg *m, struct pg_startup *s, const char **err)
{
	struct rd r;
	const char *k, *v;

	memset(s, 0, sizeof(*s));
	if (m->startup != PG_STARTUP_V3) {
		*err = "not a startup message";
		return -1;
	}
	s->major = (uint16_t)(m->code >> 16);
	s->minor = (uint16_t)(m->code & 0xffff);
	rd_init(&r, m);
	for (;;) {
		k = rd_str(&r);
		if (!k)
			break;
		if (!*k)
			break;
		v = rd_str(&r);
		if (!v)
			break;
		s->n_params++;
		if (!strcmp(k, "user"))
			s->user = v;
		else if (!strcmp(k, "database"))
			s->database = v;
		else if (!strcmp(k, "options"))
			s->options = v;
		else if (!strcmp(k, "application_name"))
			s->application_name = v;
		else if (!strcmp(k, "replication"))
			s->replication = v;
	}
	return finish(&r, err, "invalid startup packet layout");
}

int pg_decode_cancel(const struct pg_msg *m, struct pg_cancel *c, const char **err)
{
	struct rd r;

	if (m->startup != PG_STARTUP_CANCEL) {
		*err = "not a cancel request";
		return -1;
	}
	rd_init(&r, m);
	c->pid = rd_u32(&r);
	c->key = rd_u32(&r);
	return finish(&r, err, "invalid cancel request");
}

/* ---- Frontend typed messages ------------------------------------------------------------- */

int pg_decode_query(const struct pg_msg *m, const char **sql, const char **err)
{
	struct rd r;

	if (check_type(m, 'Q', err))
		return -1;
	rd_init(&r, m);
	*sql = rd_str(&r);
	return finish(&r, err, "invalid Query message");
}

int pg_decode_parse(const struct pg_msg *m, struct pg_parse *p, const char **err)
{
	struct rd r;

	if (check_type(m, 'P', err))
		return -1;
	rd_init(&r, m);
	p->name = rd_str(&r);
	p->query = rd_str(&r);
	p->n_types = rd_u16(&r);
	p->types_raw = rd_bytes(&r, (size_t)p->n_types * 4);
	return finish(&r, err, "invalid Parse message");
}

uint32_t pg_parse_type(const struct pg_parse *p, uint16_t i)
{
	if (i >= p->n_types)
		return 0;
	return be32(p->types_raw + (size_t)i * 4);
}

static int formats_valid(const uint8_t *raw, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++)
		if (be16(raw + (size_t)i * 2) > 1)
			return 0;
	return 1;
}

int pg_decode_bind(const struct pg_msg *m, struct pg_bind *b, const char **err)
{
	struct rd r;

	if (check_type(m, 'B', err))
		return -1;
	memset(b, 0, sizeof(*b));
	rd_init(&r, m);
	b->portal = rd_str(&r);
	b->stmt = rd_str(&r);
	b->n_formats = rd_u16(&r);
	b->formats_raw = rd_bytes(&r, (size_t)b->n_formats * 2);
	b->n_params = rd_u16(&r);
	if (r.bad)
		goto bad;
	if (!formats_valid(b->formats_raw, b->n_formats)) {
		*err = "unsupported format code in Bind";
		return -1;
	}
	if (b->n_formats > 1 && b->n_formats != b->n_params) {
		*err = "Bind parameter format count does not match parameter count";
		return -1;
	}
	b->params_raw = r.p + r.off;
	for (uint16_t i = 0; i < b->n_params; i++) {
		int32_t plen = (int32_t)rd_u32(&r);

		if (r.bad)
			goto bad;
		if (plen < -1) {
			*err = "invalid Bind parameter length";
			return -1;
		}
		if (plen > 0 && !rd_bytes(&r, (size_t)plen))
			goto bad;
	}
	b->params_len = (size_t)(r.p + r.off - b->params_raw);
	b->n_result_formats = rd_u16(&r);
	b->result_formats_raw = rd_bytes(&r, (size_t)b->n_result_formats * 2);
	if (r.bad)
		goto bad;
	if (!formats_valid(b->result_formats_raw, b->n_result_formats)) {
		*err = "unsupported result format code in Bind";
		return -1;
	}
	return finish(&r, err, "invalid Bind message");
bad:
	*err = "invalid Bind message";
	return -1;
}

int16_t pg_bind_format(const struct pg_bind *b, uint16_t i)
{
	if (b->n_formats == 0)
		return 0;
	if (b->n_formats == 1)
		return (int16_t)be16(b->formats_raw);
	if (i >= b->n_formats)
		return 0;
	return (int16_t)be16(b->formats_raw + (size_t)i * 2);
}

int16_t pg_bind_result_format(const struct pg_bind *b, uint16_t i)
{
	if (b->n_result_formats == 0)
		return 0;
	if (b->n_result_formats == 1)
		return (int16_t)be16(b->result_formats_raw);
	if (i >= b->n_result_formats)
		return 0;
	return (int16_t)be16(b->result_formats_raw + (size_t)i * 2);
}

int pg_bind_next(const struct pg_bind *b, size_t *off, uint16_t *idx, struct pg_param *p)
{
	int32_t plen;

	if (*idx >= b->n_params || b->params_len - *off < 4)
		return 0;
	plen = (int32_t)be32(b->params_raw + *off);
	*off += 4;
	p->format = pg_bind_format(b, *idx);
	p->len = plen;
	if (plen < 0) {
		p->data = NULL;
		p->len = -1;
	} else {
		if (b->params_len - *off < (size_t)plen)
			return 0;
		p->data = b->params_raw + *off;
		*off += (size_t)plen;
	}
	(*idx)++;
	return 1;
}

int pg_decode_execute(const struct pg_msg *m, struct pg_execute *e, const char **err)
{
	struct rd r;

	if (check_type(m, 'E', err))
		return -1;
	rd_init(&r, m);
	e->portal = rd_str(&r);
	e->max_rows = (int32_t)rd_u32(&r);
	return finish(&r, err, "invalid Execute message");
}

static int decode_target(const struct pg_msg *m, uint8_t type, struct pg_target *t, const char **err)
{
	struct rd r;

	if (check_type(m, type, err))
		return -1;
	rd_init(&r, m);
	t->what = (char)rd_u8(&r);
	t->name = rd_str(&r);
	if (!r.bad && t->what != 'S' && t->what != 'P') {
		*err = type == 'D' ? "invalid Describe target" : "invalid Close target";
		return -1;
	}
	return finish(&r, err, type == 'D' ? "invalid Describe message" : "invalid Close message");
}

int pg_decode_describe(const struct pg_msg *m, struct pg_target *t, const char **err)
{
	return decode_target(m, 'D', t, err);
}

int pg_decode_close(const struct pg_msg *m, struct pg_target *t, const char **err)
{
	return decode_target(m, 'C', t, err);
}

int pg_decode_copy_fail(const struct pg_msg *m, const char **reason, const char **err)
{
	struct rd r;

	if (check_type(m, 'f', err))
		return -1;
	rd_init(&r, m);
	*reason = rd_str(&r);
	return finish(&r, err, "invalid CopyFail message");
}

int pg_decode_password(const struct pg_msg *m, const char **password, const char **err)
{
	struct rd r;

	if (check_type(m, 'p', err))
		return -1;
	rd_init(&r, m);
	*password = rd_str(&r);
	return finish(&r, err, "invalid password message");
}

int pg_decode_sasl_initial(const struct pg_msg *m, struct pg_sasl_initial *s, const char **err)
{
	struct rd r;

	if (check_type(m, 'p', err))
		return -1;
	rd_init(&r, m);
	s->mechanism = rd_str(&r);
	s->len = (int32_t)rd_u32(&r);
	s->data = NULL;
	if (!r.bad && s->len < -1) {
		*err = "invalid SASLInitialResponse length";
		return -1;
	}
	if (s->len >= 0)
		s->data = rd_bytes(&r, (size_t)s->len);
	return finish(&r, err, "invalid SASLInitialResponse message");
}

/* ---- Backend messages -------------------------------------------------------------------- */

int pg_decode_auth(const struct pg_msg *m, struct pg_auth *a, const char **err)
{
	struct rd r;
	const char *mech;

	if (check_type(m, 'R', err))
		return -1;
	memset(a, 0, sizeof(*a));
	rd_init(&r, m);
	a->code = rd_u32(&r);
	if (r.bad)
		goto bad;
	switch (a->code) {
	case PG_AUTH_OK: case PG_AUTH_KRB5: case PG_AUTH_CLEARTEXT: case PG_AUTH_GSS: case PG_AUTH_SSPI:
		break;
	case PG_AUTH_MD5: {
		const uint8_t *salt = rd_bytes(&r, 4);

		if (salt)
			memcpy(a->salt, salt, 4);
		break;
	}
	case PG_AUTH_GSS_CONTINUE: case PG_AUTH_SASL_CONTINUE: case PG_AUTH_SASL_FINAL:
		a->data = r.p + r.off;
		a->data_len = r.len - r.off;
		r.off = r.len;
		break;
	case PG_AUTH_SASL:
		a->data = r.p + r.off;
		while ((mech = rd_str(&r)) && *mech)
			a->n_mechanisms++;
		a->data_len = r.off - (size_t)(a->data - r.p);
		if (!r.bad && a->n_mechanisms == 0) {
			*err = "SASL request without mechanisms";
			return -1;
		}
		break;
	default:
		*err = "unknown authentication request";
		return -1;
	}
	return finish(&r, err, "invalid authentication request");
bad:
	*err = "invalid authentication request";
	return -1;
}

int pg_auth_has_mechanism(const struct pg_auth *a, const char *mech)
{
	size_t off = 0;

	if (a->code != PG_AUTH_SASL || !a->data)
		return 0;
	while (off < a->data_len) {
		const char *s = (const char *)a->data + off;
		const uint8_t *nul = memchr(s, 0, a->data_len - off);

		if (!nul || !*s)
			return 0;
		if (!strcmp(s, mech))
			return 1;
		off = (size_t)(nul - a->data) + 1;
	}
	return 0;
}

int pg_decode_parameter_status(const struct pg_msg *m, const char **name, const char **value,
			       const char **err)
{
	struct rd r;

	if (check_type(m, 'S', err))
		return -1;
	rd_init(&r, m);
	*name = rd_str(&r);
	*value = rd_str(&r);
	return finish(&r, err, "invalid ParameterStatus message");
}

int pg_decode_backend_key(const struct pg_msg *m, struct pg_cancel *k, const char **err)
{
	struct rd r;

	if (check_type(m, 'K', err))
		return -1;
	rd_init(&r, m);
	k->pid = rd_u32(&r);
	k->key = rd_u32(&r);
	return finish(&r, err, "invalid BackendKeyData message");
}

int pg_decode_ready(const struct pg_msg *m, char *status, const char **err)
{
	struct rd r;

	if (check_type(m, 'Z', err))
		return -1;
	rd_init(&r, m);
	*status = (char)rd_u8(&r);
	if (!r.bad && *status != 'I' && *status != 'T' && *status != 'E') {
		*err = "invalid transaction status";
		return -1;
	}
	return finish(&r, err, "invalid ReadyForQuery message");
}

int pg_decode_command_complete(const struct pg_msg *m, const char **tag, const char **err)
{
	struct rd r;

	if (check_type(m, 'C', err))
		return -1;
	rd_init(&r, m);
	*tag = rd_str(&r);
	return finish(&r, err, "invalid CommandComplete message");
}

int pg_decode_error(const struct pg_msg *m, struct pg_error_fields *e, const char **err)
{
	struct rd r;
	const char *sev_localized = NULL;

	if (m->startup != PG_STARTUP_NONE || (m->type != 'E' && m->type != 'N')) {
		*err = "wrong message type for decoder";
		return -1;
	}
	memset(e, 0, sizeof(*e));
	rd_init(&r, m);
	for (;;) {
		uint8_t code = rd_u8(&r);
		const char *v;

		if (r.bad || code == 0)
			break;
		v = rd_str(&r);
		if (!v)
			break;
		e->n_fields++;
		switch (code) {
		case 'S': sev_localized = v; break;
		case 'V': e->severity = v; break;
		case 'C': e->sqlstate = v; break;
		case 'M': e->message = v; break;
		case 'D': e->detail = v; break;
		case 'H': e->hint = v; break;
		}
	}
	if (!e->severity)
		e->severity = sev_localized;
	return finish(&r, err, "invalid error/notice message");
}

int pg_decode_row_description(const struct pg_msg *m, uint16_t *n_fields, const char **err)
{
	struct rd r;

	if (check_type(m, 'T', err))
		return -1;
	rd_init(&r, m);
	*n_fields = rd_u16(&r);
	for (uint16_t i = 0; i < *n_fields && !r.bad; i++) {
		rd_str(&r);
		rd_bytes(&r, 18);
	}
	return finish(&r, err, "invalid RowDescription message");
}

int pg_decode_data_row(const struct pg_msg *m, uint16_t *n_cols, const char **err)
{
	struct rd r;

	if (check_type(m, 'D', err))
		return -1;
	rd_init(&r, m);
	*n_cols = rd_u16(&r);
	for (uint16_t i = 0; i < *n_cols && !r.bad; i++) {
		int32_t l = (int32_t)rd_u32(&r);

		if (r.bad)
			break;
		if (l < -1) {
			*err = "invalid DataRow column length";
			return -1;
		}
		if (l > 0)
			rd_bytes(&r, (size_t)l);
	}
	return finish(&r, err, "invalid DataRow message");
}

int pg_decode_copy_response(const struct pg_msg *m, struct pg_copy_response *c, const char **err)
{
	struct rd r;

	if (m->startup != PG_STARTUP_NONE || (m->type != 'G' && m->type != 'H' && m->type != 'W')) {
		*err = "wrong message type for decoder";
		return -1;
	}
	rd_init(&r, m);
	c->format = rd_u8(&r);
	c->n_cols = rd_u16(&r);
	c->formats_raw = rd_bytes(&r, (size_t)c->n_cols * 2);
	if (r.bad)
		goto bad;
	if (c->format > 1 || !formats_valid(c->formats_raw, c->n_cols)) {
		*err = "invalid copy format code";
		return -1;
	}
	return finish(&r, err, "invalid copy response message");
bad:
	*err = "invalid copy response message";
	return -1;
}

/* ---- Any message --------------------------------------------------------------------------- */

static int check_frontend(const struct pg_msg *m, const char **err)
{
	union {
		struct pg_startup startup;
		struct pg_cancel cancel;
		struct pg_parse parse;
		struct pg_bind bind;
		struct pg_execute exec;
		struct pg_target target;
	} u;
	const char *s;

	switch (m->startup) {
	case PG_STARTUP_V3:
		return pg_decode_startup(m, &u.startup, err);
	case PG_STARTUP_CANCEL:
		return pg_decode_cancel(m, &u.cancel, err);
	case PG_STARTUP_SSL:
	case PG_STARTUP_GSSENC:
		return 0;
	case PG_STARTUP_NONE:
		break;
	}
	switch (m->type) {
	case 'Q': return pg_decode_query(m, &s, err);
	case 'P': return pg_decode_parse(m, &u.parse, err);
	case 'B': return pg_decode_bind(m, &u.bind, err);
	case 'E': return pg_decode_execute(m, &u.exec, err);
	case 'D': return pg_decode_describe(m, &u.target, err);
	case 'C': return pg_decode_close(m, &u.target, err);
	case 'f': return pg_decode_copy_fail(m, &s, err);
	case 'S': case 'H': case 'X': case 'c':
		if (m->body_len) {
			*err = "unexpected message body";
			return -1;
		}
		return 0;
	case 'd': case 'F': case 'p':
		return 0;
	}
	*err = "unknown message type";
	return -1;
}

static int check_backend(const struct pg_msg *m, const char **err)
{
	union {
		struct pg_auth auth;
		struct pg_cancel key;
		struct pg_error_fields ef;
		struct pg_copy_response copy;
		uint16_t n;
		char status;
	} u;
	const char *s1, *s2;

	if (m->startup != PG_STARTUP_NONE) {
		*err = "not a backend message";
		return -1;
	}
	switch (m->type) {
	case 'R': return pg_decode_auth(m, &u.auth, err);
	case 'S': return pg_decode_parameter_status(m, &s1, &s2, err);
	case 'K': return pg_decode_backend_key(m, &u.key, err);
	case 'Z': return pg_decode_ready(m, &u.status, err);
	case 'C': return pg_decode_command_complete(m, &s1, err);
	case 'E': case 'N': return pg_decode_error(m, &u.ef, err);
	case 'T': return pg_decode_row_description(m, &u.n, err);
	case 'D': return pg_decode_data_row(m, &u.n, err);
	case 'G': case 'H': case 'W': return pg_decode_copy_response(m, &u.copy, err);
	case '1': case '2': case '3': case 'n': case 'I': case 'c': case 's':
		if (m->body_len) {
			*err = "unexpected message body";
			return -1;
		}
		return 0;
	case 'd': case 'A': case 'V': case 'v': case 't':
		return 0;
	}
	*err = "unknown message type";
	return -1;
}

int pg_msg_check(const struct pg_msg *m, int backend, const char **err)
{
	return backend ? check_backend(m, err) : check_frontend(m, err);
}

/* ---- Binary parameters of fixed-size types, as text ------------------------------------- */

enum {
	OID_BOOL = 16, OID_BYTEA = 17, OID_CHAR = 18, OID_NAME = 19, OID_INT8 = 20, OID_INT2 = 21,
	OID_INT4 = 23, OID_TEXT = 25, OID_OID = 26, OID_JSON = 114, OID_XML = 142,
	OID_FLOAT4 = 700, OID_FLOAT8 = 701, OID_BPCHAR = 1042, OID_VARCHAR = 1043, OID_DATE = 1082,
	OID_TIMESTAMP = 1114, OID_TIMESTAMPTZ = 1184, OID_UUID = 2950,
};

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

int pg_type_binary_is_text(uint32_t type_oid)
{
	switch (type_oid) {
	case OID_CHAR: case OID_NAME: case OID_TEXT: case OID_JSON: case OID_XML:
	case OID_BPCHAR: case OID_VARCHAR:
		return 1;
	default:
		return 0;
	}
}

/* The civil date of a day count from 1970-01-01 (proleptic Gregorian), by 400-year eras. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era, yoe, doy, mp;

	z += 719468;                                    /* days from 0000-03-01 */
	era = (z >= 0 ? z : z - 146096) / 146097;
	yoe = z - era * 146097;                         /* [0, 146096] */
	yoe = (yoe - yoe / 1460 + yoe / 36524 - yoe / 146096) / 365;
	doy = z - era * 146097 - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

#define PG_EPOCH_DAYS 10957     /* 2000-01-01, PostgreSQL's epoch, in days from 1970-01-01 */

/* y-m-d, with " BC" for years before 1 as the server prints them; returns what snprintf does. */
static int put_date(char *out, size_t cap, int64_t days_from_pg_epoch)
{
	int64_t y;
	unsigned m, d;

	civil_from_days(days_from_pg_epoch + PG_EPOCH_DAYS, &y, &m, &d);
	if (y <= 0)
		return snprintf(out, cap, "%04lld-%02u-%02u BC", (long long)(1 - y), m, d);
	return snprintf(out, cap, "%04lld-%02u-%02u", (long long)y, m, d);
}

/* The fewest significant digits that read back as the same value, as the server prints floats
 * (extra_float_digits 1, its default since PostgreSQL 12); NaN and infinities by their names. */
static int put_shortest(char *out, size_t cap, double v, int single)
{
	if (isnan(v))
		return snprintf(out, cap, "NaN");
	if (isinf(v))
		return snprintf(out, cap, "%s", v > 0 ? "Infinity" : "-Infinity");
	for (int prec = 1; prec <= 17; prec++) {
		int n = snprintf(out, cap, "%.*g", prec, v);
		double back = strtod(out, NULL);

		if (single ? (float)back == (float)v : back == v)
			return n;
	}
	return snprintf(out, cap, "%.17g", v);
}

int pg_binary_param_text(uint32_t type_oid, const uint8_t *p, size_t len, char *out, size_t cap)
{
	int n = -1;

	if (cap < PG_BINARY_TEXT_MAX)
		return -1;
	switch (type_oid) {
	case OID_BOOL:
		if (len == 1 && p[0] <= 1)
			n = snprintf(out, cap, "%s", p[0] ? "t" : "f");
		break;
	case OID_INT2:
		if (len == 2)
			n = snprintf(out, cap, "%d", (int)(int16_t)be16(p));
		break;
	case OID_INT4:
		if (len == 4)
			n = snprintf(out, cap, "%ld", (long)(int32_t)be32(p));
		break;
	case OID_OID:
		if (len == 4)
			n = snprintf(out, cap, "%lu", (unsigned long)be32(p));
		break;
	case OID_INT8:
		if (len == 8)
			n = snprintf(out, cap, "%lld", (long long)(int64_t)be64(p));
		break;
	case OID_FLOAT4:
		if (len == 4) {
			uint32_t u = be32(p);
			float f;

			memcpy(&f, &u, sizeof(f));
			n = put_shortest(out, cap, f, 1);
		}
		break;
	case OID_FLOAT8:
		if (len == 8) {
			uint64_t u = be64(p);
			double f;

			memcpy(&f, &u, sizeof(f));
			n = put_shortest(out, cap, f, 0);
		}
		break;
	case OID_UUID:
		if (len == 16) {
			static const char hex[] = "0123456789abcdef";
			size_t o = 0;

			for (size_t i = 0; i < 16; i++) {
				if (i == 4 || i == 6 || i == 8 || i == 10)
					out[o++] = '-';
				out[o++] = hex[p[i] >> 4];
				out[o++] = hex[p[i] & 15];
			}
			out[o] = '\0';
			n = (int)o;
		}
		break;
	case OID_DATE:
		if (len == 4) {
			int32_t v = (int32_t)be32(p);

			if (v == INT32_MAX || v == INT32_MIN)
				n = snprintf(out, cap, "%s", v == INT32_MAX ? "infinity" : "-infinity");
			else
				n = put_date(out, cap, v);
		}
		break;
	case OID_TIMESTAMP:
	case OID_TIMESTAMPTZ:
		if (len == 8) {
			int64_t v = (int64_t)be64(p), day, us;

			if (v == INT64_MAX || v == INT64_MIN) {
				n = snprintf(out, cap, "%s", v == INT64_MAX ? "infinity" : "-infinity");
				break;
			}
			day = v / 86400000000LL;
			us = v % 86400000000LL;
			if (us < 0) {
				us += 86400000000LL;
				day--;
			}
			n = put_date(out, cap, day);
			if (n > 0 && (size_t)n < cap) {
				int bc = n > 3 && strcmp(out + n - 3, " BC") == 0;
				char date[40], frac[8] = "";
				long long f = us % 1000000;

				snprintf(date, sizeof(date), "%.*s", bc ? n - 3 : n, out);
				if (f) {        /* as the server prints it: no trailing zeros */
					int w = 6;

					while (f % 10 == 0) {
						f /= 10;
						w--;
					}
					snprintf(frac, sizeof(frac), ".%0*lld", w, f);
				}
				n = snprintf(out, cap, "%s %02lld:%02lld:%02lld%s%s%s", date,
					     (long long)(us / 3600000000LL), (long long)(us / 60000000 % 60),
					     (long long)(us / 1000000 % 60), frac,
					     type_oid == OID_TIMESTAMPTZ ? "+00" : "", bc ? " BC" : "");
			}
		}
		break;
	default:
		break;
	}
	return n > 0 && (size_t)n < cap ? 0 : -1;
}
