/* PostgreSQL password authentication as a client: the MD5 answer and the SCRAM-SHA-256 exchange. */
#include <airlock/pg_auth.h>

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define KEY_LEN		32	/* SHA-256 output */
#define NONCE_RAW	18
#define NONCE_MAX	255
#define USER_MAX	255
#define GS2_HEADER	"n,,"
#define GS2_HEADER_B64	"biws"	/* base64("n,,"), the c= of client-final-message */

/* ---- MD5 ------------------------------------------------------------------------------------ */

static void hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void pg_md5_password(const char *user, const char *password, const uint8_t salt[4], char out[36])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t md[EVP_MAX_MD_SIZE];
	char inner[33];
	unsigned int n;
	bool ok = false;

	out[0] = '\0';
	if (!ctx || !user || !password)
		goto out;
	if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, password, strlen(password)) != 1 ||
	    EVP_DigestUpdate(ctx, user, strlen(user)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &n) != 1 || n != 16)
		goto out;
	hex(md, 16, inner);
	if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, inner, 32) != 1 ||
	    EVP_DigestUpdate(ctx, salt, 4) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &n) != 1 || n != 16)
		goto out;
	out[0] = 'm';
	out[1] = 'd';
	out[2] = '5';
	hex(md, 16, out + 3);
	ok = true;
out:
	if (!ok)
		out[0] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
	OPENSSL_cleanse(inner, sizeof(inner));
	EVP_MD_CTX_free(ctx);
}

/* ---- SCRAM-SHA-256 -------------------------------------------------------------------------- */

enum scram_state { SCRAM_STARTED, SCRAM_CONTINUED, SCRAM_DONE, SCRAM_FAILED };

struct pg_scram {
	enum scram_state state;
	char *password;			/* until the proof is computed */
	size_t password_len;
	char *client_first_bare;	/* "n=<user>,r=<nonce>", part of the AuthMessage */
	size_t bare_len;
	size_t nonce_len;		/* the nonce is the last nonce_len bytes of the bare message */
	uint8_t server_signature[KEY_LEN];
};

static void wipe_free(void *p, size_t n)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, n);
	free(p);
}

int pg_scram_done(const struct pg_scram *st)
{
	return st && st->state == SCRAM_DONE;
}

void pg_scram_free(struct pg_scram *st)
{
	if (!st)
		return;
	wipe_free(st->password, st->password_len + 1);
	wipe_free(st->client_first_bare, st->bare_len + 1);
	OPENSSL_cleanse(st, sizeof(*st));
	free(st);
}

static int scram_fail(struct pg_scram *st, char *err, size_t errlen, const char *fmt, ...)
	AL_PRINTF(4, 5);

static int scram_fail(struct pg_scram *st, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	st->state = SCRAM_FAILED;
	if (st->password) {
		wipe_free(st->password, st->password_len + 1);
		st->password = NULL;
	}
	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* RFC 5802 printable: 0x21..0x7e without ','. */
static bool nonce_char(char c)
{
	return c >= 0x21 && c <= 0x7e && c != ',';
}

int pg_scram_start_rfc(const char *user, const char *password, const char *nonce,
		       struct pg_scram **stp, char *out, size_t cap)
{
	struct pg_scram *st = NULL;
	size_t i, ulen, nlen, plen, n = 0;
	int rc = -1;

	*stp = NULL;
	if (!password || !nonce || !out)
		goto out;
	if (!user)
		user = "";
	ulen = strlen(user);
	nlen = strlen(nonce);
	plen = strlen(password);
	if (ulen > USER_MAX || nlen == 0 || nlen > NONCE_MAX || plen > INT_MAX)
		goto out;
	for (i = 0; i < nlen; i++)
		if (!nonce_char(nonce[i]))
			goto out;

	st = calloc(1, sizeof(*st));
	if (!st)
		goto out;
	st->password = malloc(plen + 1);
	/* "n=" + user with ',' and '=' escaped as =2C / =3D (3 bytes each) + ",r=" + nonce */
	st->client_first_bare = malloc(2 + 3 * ulen + 3 + nlen + 1);
	if (!st->password || !st->client_first_bare)
		goto out;
	memcpy(st->password, password, plen + 1);
	st->password_len = plen;

	st->client_first_bare[n++] = 'n';
	st->client_first_bare[n++] = '=';
	for (i = 0; i < ulen; i++) {
		if (user[i] == ',' || user[i] == '=') {
			memcpy(st->client_first_bare + n, user[i] == ',' ? "=2C" : "=3D", 3);
			n += 3;
		} else {
			st->client_first_bare[n++] = user[i];
		}
	}
	memcpy(st->client_first_bare + n, ",r=", 3);
	n += 3;
	memcpy(st->client_first_bare + n, nonce, nlen + 1);
	n += nlen;
	st->bare_len = n;
	st->nonce_len = nlen;
	st->state = SCRAM_STARTED;

	if (al_fmt(out, cap, "%s%s", GS2_HEADER, st->client_first_bare) < 0)
		goto out;
	*stp = st;
	st = NULL;
	rc = 0;
out:
	pg_scram_free(st);
	return rc;
}

int pg_scram_start_with_nonce(const char *password, const char *nonce, struct pg_scram **st,
			      char *out, size_t cap)
{
	return pg_scram_start_rfc(NULL, password, nonce, st, out, cap);
}

int pg_scram_start(const char *password, struct pg_scram **st, char *out, size_t cap)
{
	uint8_t raw[NONCE_RAW];
	char nonce[4 * ((NONCE_RAW + 2) / 3) + 1];
	int rc;

	*st = NULL;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)nonce, raw, sizeof(raw));
	rc = pg_scram_start_rfc(NULL, password, nonce, st, out, cap);
	OPENSSL_cleanse(raw, sizeof(raw));
	return rc;
}

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/*
 * Strict base64: a multiple of 4 characters from the alphabet, '=' only as the final padding.
 * EVP_DecodeBlock alone is lenient (it skips surrounding blanks and counts padding as data),
 * hence the checks first. Returns the decoded length, or -1.
 */
static long b64_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
	uint8_t tmp[PG_SCRAM_MAX_MESSAGE / 4 * 3 + 3];
	size_t i, pad = 0, dlen;
	long rc = -1;

	if (n == 0 || n % 4 || n > PG_SCRAM_MAX_MESSAGE || n > INT_MAX)
		return -1;
	if (s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	for (i = 0; i < n - pad; i++)
		if (!b64_char(s[i]))
			return -1;
	dlen = n / 4 * 3 - pad;
	if (dlen > cap)
		return -1;
	if (EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n) != (int)(n / 4 * 3))
		goto out;
	memcpy(out, tmp, dlen);
	rc = (long)dlen;
out:
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return rc;
}

/*
 * Reads "<name>=<value>" at *p, the value running to the next ',' or the end; *p is left on
 * that ',' or the end. -1 if the attribute there is not name.
 */
static int attr(const char **p, const char *e, char name, const char **val, size_t *vlen)
{
	const char *q = *p;

	if (e - q < 2 || q[0] != name || q[1] != '=')
		return -1;
	q += 2;
	*val = q;
	while (q < e && *q != ',')
		q++;
	*vlen = (size_t)(q - *val);
	*p = q;
	return 0;
}

/* Skips the ',' between attributes; -1 if there is none. */
static int comma(const char **p, const char *e)
{
	if (*p == e || **p != ',')
		return -1;
	(*p)++;
	return 0;
}

/* Server messages are printable ASCII (RFC 5802 attribute values as PostgreSQL sends them). */
static const char *check_message(const uint8_t *m, size_t len)
{
	size_t i;

	if (!m || len == 0)
		return "empty";
	if (len > PG_SCRAM_MAX_MESSAGE)
		return "too long";
	for (i = 0; i < len; i++)
		if (m[i] < 0x21 || m[i] > 0x7e)
			return "contains a byte that is not printable ASCII";
	return NULL;
}

static int hmac256(const uint8_t *key, size_t klen, const void *data, size_t dlen,
		   uint8_t out[KEY_LEN])
{
	unsigned int n = 0;

	if (!HMAC(EVP_sha256(), key, (int)klen, data, dlen, out, &n) || n != KEY_LEN)
		return -1;
	return 0;
}

int pg_scram_continue(struct pg_scram *st, const uint8_t *server_first, size_t len, char *out,
		      size_t cap, char *err, size_t errlen)
{
	uint8_t salt[PG_SCRAM_MAX_MESSAGE], salted[KEY_LEN], client_key[KEY_LEN];
	uint8_t stored_key[KEY_LEN], server_key[KEY_LEN], client_sig[KEY_LEN], proof[KEY_LEN];
	char proof_b64[4 * ((KEY_LEN + 2) / 3) + 1];
	const char *p = (const char *)server_first, *e, *nonce, *salt_b64, *iter;
	size_t nonce_len, salt_b64_len, iter_len, i, auth_len, final_len;
	const char *why;
	char *auth = NULL;
	unsigned long iterations = 0;
	long salt_len;
	int rc = -1;

	if (out && cap)
		out[0] = '\0';
	if (!st)
		return al_errf(err, errlen, "SCRAM: no exchange");
	if (!out)
		return scram_fail(st, err, errlen, "SCRAM: no output buffer");
	if (st->state != SCRAM_STARTED)
		return scram_fail(st, err, errlen, "SCRAM: server-first-message out of order");
	why = check_message(server_first, len);
	if (why)
		return scram_fail(st, err, errlen, "SCRAM: malformed server-first-message: %s", why);
	e = p + len;

	if (len >= 2 && p[0] == 'm' && p[1] == '=')
		return scram_fail(st, err, errlen,
				  "SCRAM: server requires an unsupported extension (m=)");
	if (attr(&p, e, 'r', &nonce, &nonce_len) < 0)
		return scram_fail(st, err, errlen,
				  "SCRAM: malformed server-first-message: expected r= (nonce)");
	if (nonce_len <= st->nonce_len ||
	    memcmp(nonce, st->client_first_bare + st->bare_len - st->nonce_len, st->nonce_len))
		return scram_fail(st, err, errlen,
				  "SCRAM: server nonce does not extend the client nonce");
	if (comma(&p, e) < 0 || attr(&p, e, 's', &salt_b64, &salt_b64_len) < 0)
		return scram_fail(st, err, errlen,
				  "SCRAM: malformed server-first-message: missing s= (salt)");
	if (comma(&p, e) < 0 || attr(&p, e, 'i', &iter, &iter_len) < 0)
		return scram_fail(st, err, errlen, "SCRAM: malformed server-first-message: "
				  "missing i= (iteration count)");
	if (p != e)
		return scram_fail(st, err, errlen, "SCRAM: malformed server-first-message: "
				  "unexpected data after the iteration count");
	salt_len = b64_decode(salt_b64, salt_b64_len, salt, sizeof(salt));
	if (salt_len < 0)
		return scram_fail(st, err, errlen, "SCRAM: salt is not valid base64");
	if (salt_len == 0)
		return scram_fail(st, err, errlen, "SCRAM: empty salt");
	if (iter_len == 0)
		return scram_fail(st, err, errlen, "SCRAM: iteration count is not a number");
	for (i = 0; i < iter_len; i++) {
		if (iter[i] < '0' || iter[i] > '9')
			return scram_fail(st, err, errlen,
					  "SCRAM: iteration count is not a number");
		iterations = iterations * 10 + (unsigned long)(iter[i] - '0');
		if (iterations > PG_SCRAM_MAX_ITERATIONS)
			return scram_fail(st, err, errlen,
					  "SCRAM: iteration count above %u", PG_SCRAM_MAX_ITERATIONS);
	}
	if (iterations < PG_SCRAM_MIN_ITERATIONS)
		return scram_fail(st, err, errlen, "SCRAM: iteration count %lu is below %u",
				  iterations, PG_SCRAM_MIN_ITERATIONS);

	/* client-final-message-without-proof: "c=biws,r=<nonce>" */
	final_len = 9 + nonce_len;
	if (final_len + 3 + sizeof(proof_b64) > cap) {
		scram_fail(st, err, errlen, "SCRAM: output buffer too small");
		goto out;
	}
	memcpy(out, "c=" GS2_HEADER_B64 ",r=", 9);
	memcpy(out + 9, nonce, nonce_len);
	out[final_len] = '\0';

	/* AuthMessage = client-first-message-bare "," server-first-message ","
	 *               client-final-message-without-proof */
	auth_len = st->bare_len + 1 + len + 1 + final_len;
	auth = malloc(auth_len);
	if (!auth) {
		scram_fail(st, err, errlen, "SCRAM: out of memory");
		goto out;
	}
	memcpy(auth, st->client_first_bare, st->bare_len);
	auth[st->bare_len] = ',';
	memcpy(auth + st->bare_len + 1, server_first, len);
	auth[st->bare_len + 1 + len] = ',';
	memcpy(auth + st->bare_len + 2 + len, out, final_len);

	if (PKCS5_PBKDF2_HMAC(st->password, (int)st->password_len, salt, (int)salt_len,
			      (int)iterations, EVP_sha256(), KEY_LEN, salted) != 1 ||
	    hmac256(salted, KEY_LEN, "Client Key", 10, client_key) < 0 ||
	    EVP_Digest(client_key, KEY_LEN, stored_key, NULL, EVP_sha256(), NULL) != 1 ||
	    hmac256(stored_key, KEY_LEN, auth, auth_len, client_sig) < 0 ||
	    hmac256(salted, KEY_LEN, "Server Key", 10, server_key) < 0 ||
	    hmac256(server_key, KEY_LEN, auth, auth_len, st->server_signature) < 0) {
		scram_fail(st, err, errlen, "SCRAM: key derivation failed");
		goto out;
	}
	for (i = 0; i < KEY_LEN; i++)
		proof[i] = client_key[i] ^ client_sig[i];
	EVP_EncodeBlock((unsigned char *)proof_b64, proof, KEY_LEN);
	memcpy(out + final_len, ",p=", 3);
	memcpy(out + final_len + 3, proof_b64, sizeof(proof_b64));

	wipe_free(st->password, st->password_len + 1);
	st->password = NULL;
	st->state = SCRAM_CONTINUED;
	rc = 0;
out:
	if (rc < 0 && cap)
		out[0] = '\0';
	if (auth)
		wipe_free(auth, auth_len);
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(stored_key, sizeof(stored_key));
	OPENSSL_cleanse(server_key, sizeof(server_key));
	OPENSSL_cleanse(client_sig, sizeof(client_sig));
	OPENSSL_cleanse(proof, sizeof(proof));
	return rc;
}

int pg_scram_finish(struct pg_scram *st, const uint8_t *server_final, size_t len, char *err,
		    size_t errlen)
{
	const char *p = (const char *)server_final, *e, *val;
	uint8_t sig[PG_SCRAM_MAX_MESSAGE];
	const char *why;
	size_t vlen;
	long n;

	if (!st)
		return al_errf(err, errlen, "SCRAM: no exchange");
	if (st->state != SCRAM_CONTINUED)
		return scram_fail(st, err, errlen, "SCRAM: server-final-message out of order");
	why = check_message(server_final, len);
	if (why)
		return scram_fail(st, err, errlen, "SCRAM: malformed server-final-message: %s", why);
	e = p + len;
	if (attr(&p, e, 'e', &val, &vlen) == 0)
		return scram_fail(st, err, errlen, "SCRAM: server reported an error: %.*s",
				  (int)(vlen > 100 ? 100 : vlen), val);
	if (attr(&p, e, 'v', &val, &vlen) < 0)
		return scram_fail(st, err, errlen,
				  "SCRAM: malformed server-final-message: expected v= or e=");
	if (p != e)
		return scram_fail(st, err, errlen, "SCRAM: malformed server-final-message: "
				  "unexpected data after the server signature");
	n = b64_decode(val, vlen, sig, sizeof(sig));
	if (n < 0)
		return scram_fail(st, err, errlen, "SCRAM: server signature is not valid base64");
	if (n != KEY_LEN)
		return scram_fail(st, err, errlen, "SCRAM: server signature has the wrong length");
	if (CRYPTO_memcmp(sig, st->server_signature, KEY_LEN) != 0)
		return scram_fail(st, err, errlen, "SCRAM: server signature does not match "
				  "(the server did not prove it knows the password)");
	st->state = SCRAM_DONE;
	return 0;
}
