/* Unit tests for MD5 and SCRAM-SHA-256 client authentication; optionally logs in to a real server. */
#include <airlock/pg.h>
#include <airlock/pg_auth.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"

/* RFC 7677 section 3. */
#define RFC_NONCE	"rOprNGfwEbeRWgbNEkqO"
#define RFC_SFIRST	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
			"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CFINAL	"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
			"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SFINAL	"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/*
 * The same exchange in PostgreSQL's form (client-first "n,,n=,r=..."): the AuthMessage lacks
 * the user, so proof and signature differ. Computed independently with Python's hashlib/hmac.
 */
#define PG_CFINAL	"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
			"p=qvT2SWdEH5Q06albL+hjSYuUhCG7VndFyzIb7CK4n9k="
#define PG_SFINAL	"v=3HO6Qt1M4MKJrmlKaoOqLAI0/0TV0HZe7J9H3MBtSOg="

static char err_[256];

static int feed_continue(struct pg_scram *st, const char *msg, char *out, size_t cap)
{
	err_[0] = '\0';
	return pg_scram_continue(st, (const uint8_t *)msg, strlen(msg), out, cap, err_,
				 sizeof(err_));
}

static int feed_finish(struct pg_scram *st, const char *msg)
{
	err_[0] = '\0';
	return pg_scram_finish(st, (const uint8_t *)msg, strlen(msg), err_, sizeof(err_));
}

static void test_md5(void)
{
	static const uint8_t salt1[4] = { 1, 2, 3, 4 }, salt2[4] = { 0xde, 0xad, 0xbe, 0xef };
	char out[36];

	/* expected values computed independently with Python's hashlib */
	pg_md5_password("postgres", "secret", salt1, out);
	CHECK_STR(out, "md5bb41a296aab6baccb36ff243a562abff");
	pg_md5_password("alice", "p@ss w0rd", salt2, out);
	CHECK_STR(out, "md50cabb339f6d829c0a4f60d2cfd60c69c");
	CHECK(strlen(out) == 35);
	pg_md5_password("alice", NULL, salt2, out);
	CHECK_STR(out, "");
	pg_md5_password(NULL, "pw", salt2, out);
	CHECK_STR(out, "");
}

static void test_rfc7677_vector(void)
{
	struct pg_scram *st = NULL;
	char out[PG_SCRAM_OUT_MAX];

	CHECK(pg_scram_start_rfc("user", "pencil", RFC_NONCE, &st, out, sizeof(out)) == 0);
	CHECK_STR(out, "n,,n=user,r=" RFC_NONCE);
	CHECK(!pg_scram_done(st));
	CHECK(feed_continue(st, RFC_SFIRST, out, sizeof(out)) == 0);
	CHECK_STR(out, RFC_CFINAL);
	CHECK(!pg_scram_done(st));
	CHECK(feed_finish(st, RFC_SFINAL) == 0);
	CHECK_STR(err_, "");
	CHECK(pg_scram_done(st));
	CHECK(!pg_scram_done(NULL));
	pg_scram_free(st);
}

static void test_postgres_form(void)
{
	struct pg_scram *st = NULL;
	char out[PG_SCRAM_OUT_MAX];

	CHECK(pg_scram_start_with_nonce("pencil", RFC_NONCE, &st, out, sizeof(out)) == 0);
	CHECK_STR(out, "n,,n=,r=" RFC_NONCE);
	CHECK(feed_continue(st, RFC_SFIRST, out, sizeof(out)) == 0);
	CHECK_STR(out, PG_CFINAL);
	/* the RFC's signature belongs to a different AuthMessage */
	CHECK(feed_finish(st, RFC_SFINAL) == -1);
	pg_scram_free(st);

	st = NULL;
	CHECK(pg_scram_start_rfc(NULL, "pencil", RFC_NONCE, &st, out, sizeof(out)) == 0);
	CHECK_STR(out, "n,,n=,r=" RFC_NONCE);
	CHECK(feed_continue(st, RFC_SFIRST, out, sizeof(out)) == 0);
	CHECK(feed_finish(st, PG_SFINAL) == 0);
	pg_scram_free(st);
}

static void test_start(void)
{
	struct pg_scram *a = NULL, *b = NULL;
	char oa[PG_SCRAM_OUT_MAX], ob[PG_SCRAM_OUT_MAX];
	size_t i;

	CHECK(pg_scram_start("pw", &a, oa, sizeof(oa)) == 0);
	CHECK(pg_scram_start("pw", &b, ob, sizeof(ob)) == 0);
	/* "n,,n=,r=" + 24 base64 characters of 18 random bytes */
	CHECK(strncmp(oa, "n,,n=,r=", 8) == 0 && strlen(oa) == 8 + 24);
	for (i = 8; i < strlen(oa); i++)
		CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
			     oa[i]) != NULL);
	CHECK(strcmp(oa, ob) != 0);
	pg_scram_free(a);
	pg_scram_free(b);
	pg_scram_free(NULL);

	/* saslname escaping of ',' and '=' */
	a = NULL;
	CHECK(pg_scram_start_rfc("a,b=c", "pw", "xyz", &a, oa, sizeof(oa)) == 0);
	CHECK_STR(oa, "n,,n=a=2Cb=3Dc,r=xyz");
	pg_scram_free(a);

	/* refused: bad nonces, no room */
	a = NULL;
	CHECK(pg_scram_start_with_nonce("pw", "", &a, oa, sizeof(oa)) == -1 && !a);
	CHECK(pg_scram_start_with_nonce("pw", "a,b", &a, oa, sizeof(oa)) == -1 && !a);
	CHECK(pg_scram_start_with_nonce("pw", "a b", &a, oa, sizeof(oa)) == -1 && !a);
	CHECK(pg_scram_start_with_nonce(NULL, "abc", &a, oa, sizeof(oa)) == -1 && !a);
	CHECK(pg_scram_start_with_nonce("pw", "abc", &a, oa, 11) == -1 && !a);
	CHECK(pg_scram_start_with_nonce("pw", "abc", &a, oa, 12) == 0 && a);
	CHECK_STR(oa, "n,,n=,r=abc");
	pg_scram_free(a);
	a = NULL;
	CHECK(pg_scram_start("pw", &a, oa, 10) == -1 && !a);
}

/* Runs one server-first-message against a fresh exchange; returns continue's result. */
static int first(const char *server_first)
{
	struct pg_scram *st = NULL;
	char out[PG_SCRAM_OUT_MAX];
	int rc;

	if (pg_scram_start_rfc("user", "pencil", RFC_NONCE, &st, out, sizeof(out)) < 0)
		return -2;
	rc = feed_continue(st, server_first, out, sizeof(out));
	if (rc < 0 && out[0])
		rc = -3;	/* nothing may be written on failure */
	pg_scram_free(st);
	return rc;
}

#define SN	"r=" RFC_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define SALT	"s=W22ZaJ0SNY7soEsUEjb6gQ=="

static void test_bad_server_first(void)
{
	char big[PG_SCRAM_MAX_MESSAGE + 10];

	CHECK(first(SN "," SALT ",i=4096") == 0);

	CHECK(first(SN ",i=4096") == -1);
	CHECK_STR(err_, "SCRAM: malformed server-first-message: missing s= (salt)");
	CHECK(first(SN) == -1);
	CHECK_STR(err_, "SCRAM: malformed server-first-message: missing s= (salt)");
	CHECK(first(SN "," SALT) == -1);
	CHECK_STR(err_, "SCRAM: malformed server-first-message: missing i= (iteration count)");
	CHECK(first(SN ",i=4096," SALT) == -1);
	CHECK_STR(err_, "SCRAM: malformed server-first-message: missing s= (salt)");
	CHECK(first(SALT "," SN ",i=4096") == -1);
	CHECK_STR(err_, "SCRAM: malformed server-first-message: expected r= (nonce)");
	CHECK(first("m=ext," SN "," SALT ",i=4096") == -1);
	CHECK_STR(err_, "SCRAM: server requires an unsupported extension (m=)");
	CHECK(first(SN "," SALT ",i=4096,x=1") == -1);
	CHECK_STR(err_, "SCRAM: malformed server-first-message: "
			"unexpected data after the iteration count");
	CHECK(first(SN "," SALT ",i=4096,") == -1);
	CHECK_STR(err_, "SCRAM: malformed server-first-message: "
			"unexpected data after the iteration count");

	/* base64 */
	CHECK(first(SN ",s=!!!!,i=4096") == -1);
	CHECK_STR(err_, "SCRAM: salt is not valid base64");
	CHECK(first(SN ",s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096") == -1);
	CHECK_STR(err_, "SCRAM: salt is not valid base64");
	CHECK(first(SN ",s=W22Z=J0S,i=4096") == -1);
	CHECK_STR(err_, "SCRAM: salt is not valid base64");
	CHECK(first(SN ",s=W===,i=4096") == -1);
	CHECK_STR(err_, "SCRAM: salt is not valid base64");
	CHECK(first(SN ",s====,i=4096") == -1);
	CHECK(first(SN ",s=,i=4096") == -1);
	CHECK_STR(err_, "SCRAM: salt is not valid base64");
	CHECK(first(SN ",s=QQ==,i=4096") == 0);	/* one byte of salt is enough */

	/* nonce */
	CHECK(first("r=" RFC_NONCE "," SALT ",i=4096") == -1);
	CHECK_STR(err_, "SCRAM: server nonce does not extend the client nonce");
	CHECK(first("r=rOprNGfwEbeRWgbNEkqX%hvYD," SALT ",i=4096") == -1);
	CHECK_STR(err_, "SCRAM: server nonce does not extend the client nonce");
	CHECK(first("r=rOprNG," SALT ",i=4096") == -1);
	CHECK_STR(err_, "SCRAM: server nonce does not extend the client nonce");
	CHECK(first("r=," SALT ",i=4096") == -1);
	CHECK_STR(err_, "SCRAM: server nonce does not extend the client nonce");

	/* iteration count */
	CHECK(first(SN "," SALT ",i=0") == -1);
	CHECK_STR(err_, "SCRAM: iteration count 0 is below 4096");
	CHECK(first(SN "," SALT ",i=4095") == -1);
	CHECK_STR(err_, "SCRAM: iteration count 4095 is below 4096");
	CHECK(first(SN "," SALT ",i=10000001") == -1);
	CHECK_STR(err_, "SCRAM: iteration count above 10000000");
	CHECK(first(SN "," SALT ",i=99999999999999999999999999999999999999") == -1);
	CHECK_STR(err_, "SCRAM: iteration count above 10000000");
	CHECK(first(SN "," SALT ",i=") == -1);
	CHECK_STR(err_, "SCRAM: iteration count is not a number");
	CHECK(first(SN "," SALT ",i=-4096") == -1);
	CHECK_STR(err_, "SCRAM: iteration count is not a number");
	CHECK(first(SN "," SALT ",i=+4096") == -1);
	CHECK(first(SN "," SALT ",i=4096x") == -1);
	CHECK(first(SN "," SALT ",i=0x1000") == -1);
	CHECK(first(SN "," SALT ",i=04096") == 0);

	/* bytes and sizes */
	CHECK(first("") == -1);
	CHECK_STR(err_, "SCRAM: malformed server-first-message: empty");
	CHECK(first(SN " ," SALT ",i=4096") == -1);
	CHECK_STR(err_, "SCRAM: malformed server-first-message: "
			"contains a byte that is not printable ASCII");
	CHECK(first(SN "\xc3\xa4," SALT ",i=4096") == -1);
	CHECK(first(SN "," SALT ",i=4096\n") == -1);
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, SN ",s=", strlen(SN ",s="));
	CHECK(first(big) == -1);
	CHECK_STR(err_, "SCRAM: malformed server-first-message: too long");

	{	/* a NUL inside the length-delimited message */
		static const char m[] = SN "\0," SALT ",i=4096";
		struct pg_scram *st = NULL;
		char out[PG_SCRAM_OUT_MAX];

		CHECK(pg_scram_start_rfc("user", "pencil", RFC_NONCE, &st, out, sizeof(out)) == 0);
		CHECK(pg_scram_continue(st, (const uint8_t *)m, sizeof(m) - 1, out, sizeof(out),
					err_, sizeof(err_)) == -1);
		CHECK_STR(err_, "SCRAM: malformed server-first-message: "
				"contains a byte that is not printable ASCII");
		pg_scram_free(st);
	}
}

static void test_bad_server_final(void)
{
	static const char *const bad[] = {
		/* the brief's (mistyped) copy of the RFC signature: a wrong v= */
		"v=6rriTRBi23WpRR/wt/+aFOhZo2v7cdFJmvFeQvQyDlc=",
		"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=1",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=\n",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95A==",
		"v=",
		"v=QUJD",
		"x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		"",
		"e=invalid-proof",
		"e=",
		"e=other-error,v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	};
	static const char *const why[] = {
		"SCRAM: server signature does not match (the server did not prove it knows the "
		"password)",
		"SCRAM: server signature does not match (the server did not prove it knows the "
		"password)",
		"SCRAM: server signature is not valid base64",
		"SCRAM: malformed server-final-message: unexpected data after the server signature",
		"SCRAM: malformed server-final-message: unexpected data after the server signature",
		"SCRAM: malformed server-final-message: contains a byte that is not printable ASCII",
		"SCRAM: server signature has the wrong length",
		"SCRAM: server signature is not valid base64",
		"SCRAM: server signature has the wrong length",
		"SCRAM: malformed server-final-message: expected v= or e=",
		"SCRAM: malformed server-final-message: empty",
		"SCRAM: server reported an error: invalid-proof",
		"SCRAM: server reported an error: ",
		"SCRAM: server reported an error: other-error",
	};
	char out[PG_SCRAM_OUT_MAX];
	size_t i;

	for (i = 0; i < AL_ARRAY_LEN(bad); i++) {
		struct pg_scram *st = NULL;

		CHECK(pg_scram_start_rfc("user", "pencil", RFC_NONCE, &st, out, sizeof(out)) == 0);
		CHECK(feed_continue(st, RFC_SFIRST, out, sizeof(out)) == 0);
		CHECK(feed_finish(st, bad[i]) == -1);
		CHECK_STR(err_, why[i]);
		CHECK(!pg_scram_done(st));
		/* a failed exchange stays failed, even given the right answer */
		CHECK(feed_finish(st, RFC_SFINAL) == -1);
		CHECK_STR(err_, "SCRAM: server-final-message out of order");
		pg_scram_free(st);
	}
}

static void test_order(void)
{
	struct pg_scram *st = NULL;
	char out[PG_SCRAM_OUT_MAX];

	CHECK(pg_scram_start_rfc("user", "pencil", RFC_NONCE, &st, out, sizeof(out)) == 0);
	CHECK(feed_finish(st, RFC_SFINAL) == -1);
	CHECK_STR(err_, "SCRAM: server-final-message out of order");
	CHECK(feed_continue(st, RFC_SFIRST, out, sizeof(out)) == -1);
	CHECK_STR(err_, "SCRAM: server-first-message out of order");
	pg_scram_free(st);

	st = NULL;
	CHECK(pg_scram_start_rfc("user", "pencil", RFC_NONCE, &st, out, sizeof(out)) == 0);
	CHECK(feed_continue(st, RFC_SFIRST, out, sizeof(out)) == 0);
	CHECK(feed_continue(st, RFC_SFIRST, out, sizeof(out)) == -1);
	CHECK_STR(err_, "SCRAM: server-first-message out of order");
	pg_scram_free(st);

	st = NULL;
	CHECK(pg_scram_start_rfc("user", "pencil", RFC_NONCE, &st, out, sizeof(out)) == 0);
	CHECK(feed_continue(st, RFC_SFIRST, out, sizeof(out)) == 0);
	CHECK(feed_finish(st, RFC_SFINAL) == 0);
	CHECK(feed_finish(st, RFC_SFINAL) == -1);
	CHECK(!pg_scram_done(st));
	pg_scram_free(st);

	/* output too small for the client-final-message */
	st = NULL;
	CHECK(pg_scram_start_rfc("user", "pencil", RFC_NONCE, &st, out, sizeof(out)) == 0);
	CHECK(feed_continue(st, RFC_SFIRST, out, strlen(RFC_CFINAL)) == -1);
	CHECK_STR(err_, "SCRAM: output buffer too small");
	pg_scram_free(st);
	st = NULL;
	CHECK(pg_scram_start_rfc("user", "pencil", RFC_NONCE, &st, out, sizeof(out)) == 0);
	CHECK(feed_continue(st, RFC_SFIRST, out, strlen(RFC_CFINAL) + 1) == 0);
	CHECK_STR(out, RFC_CFINAL);
	pg_scram_free(st);

	CHECK(pg_scram_continue(NULL, (const uint8_t *)"x", 1, out, sizeof(out), err_,
				sizeof(err_)) == -1);
	CHECK(pg_scram_finish(NULL, (const uint8_t *)"x", 1, err_, sizeof(err_)) == -1);
}

/* Every prefix of a valid message is refused; every single-byte change is handled. */
static void test_truncations_and_mutations(void)
{
	static const char vals[] = { 0, ',', '=', 'r', 's', 'i', 'v', 'e', '9', '/', '\xff' };
	char msg[sizeof(RFC_SFIRST)];
	size_t i, j;
	int accepted = 0;

	for (i = 0; i < strlen(RFC_SFIRST); i++) {
		struct pg_scram *st = NULL;
		char out[PG_SCRAM_OUT_MAX];

		CHECK(pg_scram_start_rfc("user", "pencil", RFC_NONCE, &st, out, sizeof(out)) == 0);
		CHECK(pg_scram_continue(st, (const uint8_t *)RFC_SFIRST, i, out, sizeof(out),
					err_, sizeof(err_)) == -1);
		pg_scram_free(st);
	}
	for (i = 0; i < strlen(RFC_SFINAL); i++) {
		struct pg_scram *st = NULL;
		char out[PG_SCRAM_OUT_MAX];

		CHECK(pg_scram_start_rfc("user", "pencil", RFC_NONCE, &st, out, sizeof(out)) == 0);
		CHECK(feed_continue(st, RFC_SFIRST, out, sizeof(out)) == 0);
		CHECK(pg_scram_finish(st, (const uint8_t *)RFC_SFINAL, i, err_, sizeof(err_)) == -1);
		pg_scram_free(st);
	}
	/* mutations: only changes to the server's part of the nonce or the salt can pass */
	for (i = 0; i < strlen(RFC_SFIRST); i++) {
		for (j = 0; j < sizeof(vals); j++) {
			struct pg_scram *st = NULL;
			char out[PG_SCRAM_OUT_MAX];
			int rc;

			memcpy(msg, RFC_SFIRST, sizeof(msg));
			if (msg[i] == vals[j])
				continue;
			msg[i] = vals[j];
			CHECK(pg_scram_start_rfc("user", "pencil", RFC_NONCE, &st, out,
						 sizeof(out)) == 0);
			rc = pg_scram_continue(st, (const uint8_t *)msg, sizeof(msg) - 1, out,
					       sizeof(out), err_, sizeof(err_));
			if (rc == 0) {
				accepted++;
				CHECK(i >= 2 + strlen(RFC_NONCE));
				/* a changed message never verifies the original signature */
				CHECK(feed_finish(st, RFC_SFINAL) == -1);
			}
			pg_scram_free(st);
		}
	}
	CHECK(accepted > 0);
}

/* ---- A real server (tests/unit/pg_auth_live.sh sets AIRLOCK_PG_LIVE=host:port) ------------- */

struct conn {
	int fd;
	uint8_t buf[16384];
	size_t len;
	struct pg_msg m;
};

static int send_buf(int fd, const struct pg_buf *b)
{
	size_t off = 0;

	if (!pg_buf_ok(b))
		return -1;
	while (off < b->len) {
		ssize_t n = send(fd, b->data + off, b->len - off, MSG_NOSIGNAL);

		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* Reads the next backend message into c->m; its bytes stay valid until the next call. */
static int next_msg(struct conn *c)
{
	int n;

	if (c->m.len) {
		memmove(c->buf, c->buf + c->m.len, c->len - c->m.len);
		c->len -= c->m.len;
		c->m.len = 0;
	}
	for (;;) {
		ssize_t r;

		n = pg_frame_backend(c->buf, c->len, sizeof(c->buf), &c->m);
		if (n < 0)
			return -1;
		if (n > 0)
			return 0;
		r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
}

/*
 * Logs in as user with password, answering MD5 or SCRAM with this module. Returns 0 once
 * ReadyForQuery arrives; otherwise -1 with why set (the server's message for ErrorResponse).
 * used is set to the method the server chose.
 */
static int live_login(const char *host, int port, const char *user, const char *password,
		      uint32_t *used, char *why, size_t whylen)
{
	const char *params[] = { "user", user, "database", "postgres", NULL };
	struct conn *c = calloc(1, sizeof(*c));
	struct timeval tv = { .tv_sec = 20 };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct sockaddr_in src = { .sin_family = AF_INET };
	struct pg_scram *st = NULL;
	struct pg_buf b;
	char out[PG_SCRAM_OUT_MAX];
	int rc = -1, authed = 0;

	pg_buf_init(&b, 0);
	*used = 0;
	why[0] = '\0';
	if (!c)
		goto out;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		al_errf(why, whylen, "socket: %s", strerror(errno));
		goto out;
	}
	/* from the server's own 127.0.0.x address, the one pg_hba.conf admits */
	src.sin_addr = sa.sin_addr;
	if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		al_errf(why, whylen, "connect: %s", strerror(errno));
		goto out;
	}
	pg_build_startup(&b, params);
	if (send_buf(c->fd, &b) < 0)
		goto out;
	for (;;) {
		struct pg_auth a;
		const char *e;

		pg_buf_reset(&b);
		if (next_msg(c) < 0) {
			al_errf(why, whylen, "connection lost or bad message");
			goto out;
		}
		if (c->m.type == 'E') {
			struct pg_error_fields f;

			if (pg_decode_error(&c->m, &f, &e) == 0)
				al_errf(why, whylen, "server: %s %s", f.sqlstate ? f.sqlstate : "?",
					f.message ? f.message : "?");
			goto out;
		}
		if (c->m.type == 'Z') {
			if (authed)
				rc = 0;
			goto out;
		}
		if (c->m.type != 'R')
			continue;
		if (pg_decode_auth(&c->m, &a, &e) < 0) {
			al_errf(why, whylen, "bad auth message: %s", e);
			goto out;
		}
		switch (a.code) {
		case PG_AUTH_OK:
			if (st && !pg_scram_done(st)) {
				al_errf(why, whylen, "AuthenticationOk before SCRAM completed");
				goto out;
			}
			authed = 1;
			break;
		case PG_AUTH_MD5:
			*used = PG_AUTH_MD5;
			pg_md5_password(user, password, a.salt, out);
			pg_build_password(&b, out);
			if (send_buf(c->fd, &b) < 0)
				goto out;
			break;
		case PG_AUTH_SASL:
			*used = PG_AUTH_SASL;
			if (!pg_auth_has_mechanism(&a, "SCRAM-SHA-256") ||
			    pg_scram_start(password, &st, out, sizeof(out)) < 0) {
				al_errf(why, whylen, "cannot start SCRAM");
				goto out;
			}
			pg_build_sasl_initial(&b, "SCRAM-SHA-256", out, strlen(out));
			if (send_buf(c->fd, &b) < 0)
				goto out;
			break;
		case PG_AUTH_SASL_CONTINUE:
			if (!st || pg_scram_continue(st, a.data, a.data_len, out, sizeof(out), why,
						     whylen) < 0)
				goto out;
			pg_build_sasl_response(&b, out, strlen(out));
			if (send_buf(c->fd, &b) < 0)
				goto out;
			break;
		case PG_AUTH_SASL_FINAL:
			if (!st || pg_scram_finish(st, a.data, a.data_len, why, whylen) < 0)
				goto out;
			break;
		default:
			al_errf(why, whylen, "unexpected auth request %u", a.code);
			goto out;
		}
	}
out:
	if (c && c->fd >= 0) {
		pg_buf_reset(&b);
		pg_build_terminate(&b);
		if (send_buf(c->fd, &b) < 0)
			(void)0;	/* the server may already have closed */
		close(c->fd);
	}
	free(c);
	pg_buf_free(&b);
	pg_scram_free(st);
	return rc;
}

static char live_host_[64];
static int live_port_;

/* Users created by tests/unit/pg_auth_live.sh. */
static void test_live_server(void)
{
	char why[256];
	uint32_t used;

	CHECK(live_login(live_host_, live_port_, "al_scram", "pencil with spaces # and \"quotes\"",
			 &used, why, sizeof(why)) == 0);
	CHECK(used == PG_AUTH_SASL);
	if (why[0])
		printf("#   al_scram: %s\n", why);

	CHECK(live_login(live_host_, live_port_, "al_utf8", "p\xc3\xa4ssw\xc3\xb6rd", &used, why,
			 sizeof(why)) == 0);
	CHECK(used == PG_AUTH_SASL);
	if (why[0])
		printf("#   al_utf8: %s\n", why);

	CHECK(live_login(live_host_, live_port_, "al_md5", "md5 secret", &used, why,
			 sizeof(why)) == 0);
	CHECK(used == PG_AUTH_MD5);
	if (why[0])
		printf("#   al_md5: %s\n", why);

	/* wrong passwords: the server refuses (28P01) before any server-final-message */
	CHECK(live_login(live_host_, live_port_, "al_scram", "pencil", &used, why,
			 sizeof(why)) == -1);
	CHECK(used == PG_AUTH_SASL && strncmp(why, "server: 28P01 ", 14) == 0);
	CHECK(live_login(live_host_, live_port_, "al_md5", "md5 secreT", &used, why,
			 sizeof(why)) == -1);
	CHECK(used == PG_AUTH_MD5 && strncmp(why, "server: 28P01 ", 14) == 0);
}

int main(void)
{
	const char *live = getenv("AIRLOCK_PG_LIVE");

	RUN(test_md5);
	RUN(test_rfc7677_vector);
	RUN(test_postgres_form);
	RUN(test_start);
	RUN(test_bad_server_first);
	RUN(test_bad_server_final);
	RUN(test_order);
	RUN(test_truncations_and_mutations);
	if (live && *live) {
		const char *colon = strrchr(live, ':');

		if (!colon || (size_t)(colon - live) >= sizeof(live_host_) ||
		    (live_port_ = atoi(colon + 1)) <= 0) {
			printf("not ok - AIRLOCK_PG_LIVE must be host:port\n");
			return 1;
		}
		memcpy(live_host_, live, (size_t)(colon - live));
		RUN(test_live_server);
	} else {
		printf("# test_live_server skipped: run tests/unit/pg_auth_live.sh\n");
	}
	TEST_EXIT();
}
