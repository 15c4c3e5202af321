/* PBKDF2-HMAC-SHA256 password hashing and constant-time verification for reviewer logins. */
#include <airlock/password.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>

#define SALT_LEN 16
#define HASH_LEN 32

static int derive(const char *pw, const unsigned char *salt, size_t salt_len, unsigned long iter,
		  unsigned char *out)
{
	return PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, (int)salt_len, (int)iter, EVP_sha256(),
				 HASH_LEN, out) == 1 ? 0 : -1;
}

int al_password_hash(const char *password, char *out, size_t cap)
{
	unsigned char salt[SALT_LEN], hash[HASH_LEN];
	char s64[64], h64[64];

	if (RAND_bytes(salt, sizeof(salt)) != 1 ||
	    derive(password, salt, sizeof(salt), AL_PBKDF2_ITERATIONS, hash) < 0)
		return -1;
	EVP_EncodeBlock((unsigned char *)s64, salt, sizeof(salt));
	EVP_EncodeBlock((unsigned char *)h64, hash, sizeof(hash));
	OPENSSL_cleanse(hash, sizeof(hash));
	return al_fmt(out, cap, "pbkdf2-sha256$%u$%s$%s", AL_PBKDF2_ITERATIONS, s64, h64);
}

int al_password_verify(const char *password, const char *stored)
{
	unsigned char salt[64], want[64], got[HASH_LEN];
	char s64[128], h64[128], *end;
	unsigned long iter;
	const char *p;
	int slen, hlen, ok;

	if (strncmp(stored, "pbkdf2-sha256$", 14) != 0)
		return -1;
	iter = strtoul(stored + 14, &end, 10);
	if (*end != '$' || iter < 1000 || iter > 10000000)
		return -1;
	p = strchr(end + 1, '$');
	if (!p || (size_t)(p - (end + 1)) >= sizeof(s64) || strlen(p + 1) >= sizeof(h64))
		return -1;
	memcpy(s64, end + 1, (size_t)(p - (end + 1)));
	s64[p - (end + 1)] = '\0';
	snprintf(h64, sizeof(h64), "%s", p + 1);
	slen = EVP_DecodeBlock(salt, (const unsigned char *)s64, (int)strlen(s64));
	hlen = EVP_DecodeBlock(want, (const unsigned char *)h64, (int)strlen(h64));
	/* DecodeBlock counts base64 padding as zero bytes: 16 -> 18, 32 -> 33. */
	if (slen < SALT_LEN || hlen < HASH_LEN)
		return -1;
	if (derive(password, salt, SALT_LEN, iter, got) < 0)
		return -1;
	ok = CRYPTO_memcmp(got, want, HASH_LEN) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return ok;
}
