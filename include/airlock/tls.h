/* The Airlock CA: created on first start, mints leaf certificates for the names agents dial; TLS contexts. */
#ifndef AIRLOCK_TLS_H
#define AIRLOCK_TLS_H

#include <openssl/ssl.h>
#include <airlock/common.h>

#define AL_DEFAULT_CA_DIR "/var/lib/airlock/ca"
#define TLS_LEAF_CACHE 1024

struct tls_ca;

/*
 * Loads the CA from dir (ca.crt, ca.key), creating both on first use: the
 * directory 0700, the key 0600. A leaf key is made once per process; leaf
 * certificates are minted on demand and cached (bounded, re-minted before
 * they expire).
 */
int tls_ca_open(const char *dir, struct tls_ca **out, char *err, size_t errlen) AL_MUST;
void tls_ca_free(struct tls_ca *ca);
/* Path of the CA certificate (PEM), for `airlockctl ca export`. */
const char *tls_ca_cert_path(const struct tls_ca *ca);

/* A server context presenting a leaf for `name` (a DNS name or an IP
 * address literal, as http_server_name_ok takes them), signed by the CA. Owned by
 * the cache: do not free. TLS 1.2 and 1.3 only. NULL on failure, with a
 * message. */
SSL_CTX *tls_server_ctx(struct tls_ca *ca, const char *name, char *err, size_t errlen);
/* How many leaves have been minted (for tests and status). */
unsigned long tls_minted(const struct tls_ca *ca);

enum tls_verify {
	TLS_VERIFY_NONE = 0,    /* encrypt, do not check the peer (PG sslmode=require) */
	TLS_VERIFY_FULL = 1,    /* chain to the roots and the host name */
};
/* A client context for upstream connections: system roots, or ca_file if
 * given. Caller frees with SSL_CTX_free. */
SSL_CTX *tls_client_ctx(enum tls_verify v, const char *ca_file, char *err, size_t errlen);
/* Sets SNI and, for TLS_VERIFY_FULL, the name the certificate must carry. */
int tls_client_prepare(SSL *ssl, const char *host, enum tls_verify v) AL_MUST;

#endif
