/* Client side of PostgreSQL password authentication upstream: MD5 and SCRAM-SHA-256. */
#ifndef AIRLOCK_PG_AUTH_H
#define AIRLOCK_PG_AUTH_H

#include <airlock/common.h>

#include <stddef.h>
#include <stdint.h>

/* Iteration counts a server may ask for (RFC 7677 recommends at least 4096). */
#define PG_SCRAM_MIN_ITERATIONS	4096u
#define PG_SCRAM_MAX_ITERATIONS	10000000u
/* Longest server-first/server-final message accepted. */
#define PG_SCRAM_MAX_MESSAGE	2048u
/* Room enough for any client message this module writes. */
#define PG_SCRAM_OUT_MAX	(PG_SCRAM_MAX_MESSAGE + 128u)

/*
 * The answer to AuthenticationMD5Password: "md5" + hex(md5(hex(md5(password + user)) + salt)),
 * NUL-terminated in out. If the digest is unavailable (an MD5-less FIPS provider) or user or
 * password is NULL, out is "" and the server refuses the login.
 */
void pg_md5_password(const char *user, const char *password, const uint8_t salt[4], char out[36]);

/*
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it: no channel binding (gs2 header
 * "n,,"), an empty username ("n=,") because the server takes the user from the startup packet,
 * and a nonce of 18 random bytes in base64. The caller frames the messages
 * (SASLInitialResponse with mechanism "SCRAM-SHA-256", then SASLResponse).
 *
 * SASLprep: the password is used byte for byte. For ASCII that is exactly what PostgreSQL
 * does; for other passwords PostgreSQL applies SASLprep and falls back to the raw bytes when
 * that fails. A non-ASCII password that SASLprep would change (not in NFKC form, non-ASCII
 * spaces, characters mapped to nothing) therefore fails to log in; store such passwords in
 * normalized form.
 *
 * Everything from the server is untrusted: malformed messages are refused with a reason in
 * err. Any failure ends the exchange; later calls on it fail.
 */
struct pg_scram;

/* Starts an exchange: writes the client-first-message (NUL-terminated) into out. */
int pg_scram_start(const char *password, struct pg_scram **st, char *out, size_t cap) AL_MUST;
/*
 * Takes the server-first-message (r=,s=,i=), checks the nonce extends ours and the iteration
 * count is within [PG_SCRAM_MIN_ITERATIONS, PG_SCRAM_MAX_ITERATIONS], and writes the
 * client-final-message (c=biws,r=...,p=proof) into out.
 */
int pg_scram_continue(struct pg_scram *st, const uint8_t *server_first, size_t len, char *out,
		      size_t cap, char *err, size_t errlen) AL_MUST;
/* Verifies the server-final-message's v= signature (or reports e=... errors). 0 only if it
 * matches. */
int pg_scram_finish(struct pg_scram *st, const uint8_t *server_final, size_t len, char *err,
		    size_t errlen) AL_MUST;
/*
 * 1 once pg_scram_finish has verified the server's signature. A client that started SCRAM
 * must check this when AuthenticationOk arrives: a server that skips the final message has
 * not proven it knows the password.
 */
int pg_scram_done(const struct pg_scram *st);
/* Wipes keys and the password; NULL is fine. */
void pg_scram_free(struct pg_scram *st);

/* For tests: fix the client nonce (printable ASCII without ',', 1..255 chars). */
int pg_scram_start_with_nonce(const char *password, const char *nonce, struct pg_scram **st,
			      char *out, size_t cap) AL_MUST;
/* For tests: also name a user in the client-first-message (NULL or "" gives PostgreSQL's
 * "n=,"), so the RFC 7677 test vector can be checked byte for byte. */
int pg_scram_start_rfc(const char *user, const char *password, const char *nonce,
		       struct pg_scram **st, char *out, size_t cap) AL_MUST;

#endif
