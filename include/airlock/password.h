/* Reviewer passwords: PBKDF2-HMAC-SHA256 hashes in a self-describing string. */
#ifndef AIRLOCK_PASSWORD_H
#define AIRLOCK_PASSWORD_H

#include <stddef.h>
#include <airlock/common.h>

#define AL_PBKDF2_ITERATIONS 210000     /* OWASP's figure for PBKDF2-HMAC-SHA256 */

/* "pbkdf2-sha256$ITER$SALT_B64$HASH_B64" into out. */
int al_password_hash(const char *password, char *out, size_t cap) AL_MUST;
/* 1 if the password matches the stored hash (constant time), 0 if not, -1 if malformed. */
int al_password_verify(const char *password, const char *stored) AL_MUST;

#endif
