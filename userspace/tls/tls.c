/* Airlock CA management, leaf minting with a bounded cache, and TLS contexts for both sides. */
#include <airlock/tls.h>
#include <airlock/http.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CA_DAYS   3650
#define LEAF_DAYS 30
#define LEAF_RENEW_SECS (7 * 24 * 3600)    /* re-mint a cached leaf this long before it expires */

struct leaf {
	char name[256];
	SSL_CTX *ctx;
	time_t not_after;
	uint64_t used;          /* LRU clock */
};

struct tls_ca {
	char cert_path[PATH_MAX];
	X509 *cert;
	EVP_PKEY *key;
	EVP_PKEY *leaf_key;
	struct leaf *leaves;
	size_t n_leaves;
	uint64_t clock;
	unsigned long minted;
};

static int ssl_err(char *err, size_t errlen, const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return al_errf(err, errlen, "%s: %s", what, e ? buf : "failed");
}

static EVP_PKEY *new_ec_key(void)
{
	return EVP_EC_gen("P-256");
}

static int random_serial(X509 *x)
{
	unsigned char b[16];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	b[0] &= 0x7f; /* positive */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static X509 *make_ca(EVP_PKEY *key)
{
	X509 *x = X509_new();
	X509_NAME *n;
	char host[128] = "localhost", cn[200];

	if (!x)
		return NULL;
	gethostname(host, sizeof(host) - 1);
	snprintf(cn, sizeof(cn), "Airlock CA (%s)", host);
	n = X509_get_subject_name(x);
	if (X509_set_version(x, 2) != 1 || random_serial(x) < 0 ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), (long)CA_DAYS * 86400) ||
	    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"Airlock", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, n) != 1 || X509_set_pubkey(x, key) != 1 ||
	    add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
	    add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    add_ext(x, x, NID_subject_key_identifier, "hash") < 0 ||
	    X509_sign(x, key, EVP_sha256()) == 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Writes PEM through a new file of the given mode (never widening an existing one). */
static int write_pem(const char *path, mode_t mode, X509 *cert, EVP_PKEY *key)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	FILE *f;
	int ok;

	if (fd < 0)
		return -1;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -1;
	}
	ok = cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

int tls_ca_open(const char *dir, struct tls_ca **out, char *err, size_t errlen)
{
	char key_path[PATH_MAX];
	struct tls_ca *ca;
	struct stat st;
	FILE *f;

	ca = calloc(1, sizeof(*ca));
	if (!ca)
		return al_errf(err, errlen, "out of memory");
	if (al_fmt(ca->cert_path, sizeof(ca->cert_path), "%s/ca.crt", dir) < 0 ||
	    al_fmt(key_path, sizeof(key_path), "%s/ca.key", dir) < 0) {
		al_errf(err, errlen, "CA directory path too long");
		goto fail;
	}
	if (al_mkdir_p(dir, 0700) < 0) {
		al_errf(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if (stat(key_path, &st) < 0) {
		/* First start: a new CA. */
		ca->key = new_ec_key();
		ca->cert = ca->key ? make_ca(ca->key) : NULL;
		if (!ca->cert) {
			ssl_err(err, errlen, "creating the Airlock CA");
			goto fail;
		}
		unlink(ca->cert_path);
		if (write_pem(key_path, 0600, NULL, ca->key) < 0 ||
		    write_pem(ca->cert_path, 0644, ca->cert, NULL) < 0) {
			al_errf(err, errlen, "writing the CA to %s: %s", dir, strerror(errno));
			unlink(key_path);
			goto fail;
		}
	} else {
		if (st.st_mode & 077) {
			al_errf(err, errlen, "%s is readable by others (mode %o): fix it (chmod 600)",
				key_path, (unsigned int)(st.st_mode & 0777));
			goto fail;
		}
		f = fopen(key_path, "re");
		ca->key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
		if (f)
			fclose(f);
		f = fopen(ca->cert_path, "re");
		ca->cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
		if (f)
			fclose(f);
		if (!ca->key || !ca->cert || X509_check_private_key(ca->cert, ca->key) != 1) {
			ssl_err(err, errlen, "loading the Airlock CA");
			goto fail;
		}
	}
	ca->leaf_key = new_ec_key();
	ca->leaves = calloc(TLS_LEAF_CACHE, sizeof(*ca->leaves));
	if (!ca->leaf_key || !ca->leaves) {
		al_errf(err, errlen, "out of memory");
		goto fail;
	}
	*out = ca;
	return 0;
fail:
	tls_ca_free(ca);
	return -1;
}

void tls_ca_free(struct tls_ca *ca)
{
	if (!ca)
		return;
	for (size_t i = 0; ca->leaves && i < ca->n_leaves; i++)
		SSL_CTX_free(ca->leaves[i].ctx);
	free(ca->leaves);
	EVP_PKEY_free(ca->leaf_key);
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	free(ca);
}

const char *tls_ca_cert_path(const struct tls_ca *ca)
{
	return ca->cert_path;
}

unsigned long tls_minted(const struct tls_ca *ca)
{
	return ca->minted;
}

/* An IP address literal: its bytes into ip (16), their count; 0 if it is not one. */
static int ip_literal(const char *name, unsigned char *ip)
{
	if (inet_pton(AF_INET, name, ip) == 1)
		return 4;
	return inet_pton(AF_INET6, name, ip) == 1 ? 16 : 0;
}

/* The leaf's subjectAltName, built as a structure: one dNSName or iPAddress, the name's. */
static int add_san(X509 *x, const char *name)
{
	unsigned char ip[16];
	int iplen = ip_literal(name, ip), ok = 0;
	GENERAL_NAMES *names = GENERAL_NAMES_new();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_STRING *v = iplen ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();

	if (!names || !gn || !v ||
	    ASN1_STRING_set(v, iplen ? (const void *)ip : (const void *)name, iplen ? iplen : (int)strlen(name)) != 1)
		goto out;
	GENERAL_NAME_set0_value(gn, iplen ? GEN_IPADD : GEN_DNS, v);
	v = NULL;
	if (!sk_GENERAL_NAME_push(names, gn))
		goto out;
	gn = NULL;
	ok = X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1;
out:
	ASN1_STRING_free(v);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(names);
	return ok ? 0 : -1;
}

/* A leaf for name, which http_server_name_ok took: the SAN is built as a structure, never parsed from
 * text, so no name can add another entry. */
static X509 *mint(struct tls_ca *ca, const char *name, time_t *not_after)
{
	char cn[65];
	X509 *x = X509_new();
	X509_NAME *n;

	if (!x)
		return NULL;
	snprintf(cn, sizeof(cn), "%s", name);
	n = X509_get_subject_name(x);
	if (X509_set_version(x, 2) != 1 || random_serial(x) < 0 ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), (long)LEAF_DAYS * 86400) ||
	    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
	    X509_set_pubkey(x, ca->leaf_key) != 1 ||
	    add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always") < 0 ||
	    add_san(x, name) < 0 ||
	    X509_sign(x, ca->key, EVP_sha256()) == 0)
		goto fail;
	*not_after = time(NULL) + (time_t)LEAF_DAYS * 86400;
	return x;
fail:
	X509_free(x);
	return NULL;
}

static SSL_CTX *server_ctx(struct tls_ca *ca, X509 *leaf)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx)
		return NULL;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_add1_chain_cert(ctx, ca->cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, ca->leaf_key) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	return ctx;
}

SSL_CTX *tls_server_ctx(struct tls_ca *ca, const char *name, char *err, size_t errlen)
{
	struct leaf *slot = NULL;
	time_t now = time(NULL), not_after;
	X509 *x;
	SSL_CTX *ctx;

	if (!name || !*name || strlen(name) >= sizeof(ca->leaves[0].name)) {
		al_errf(err, errlen, "no usable name for the certificate");
		return NULL;
	}
	if (!http_server_name_ok(name)) {
		al_errf(err, errlen, "not a host name or IP address");
		return NULL;
	}
	for (size_t i = 0; i < ca->n_leaves; i++) {
		struct leaf *l = &ca->leaves[i];

		if (strcmp(l->name, name) != 0)
			continue;
		if (l->not_after - now > LEAF_RENEW_SECS) {
			l->used = ++ca->clock;
			return l->ctx;
		}
		slot = l; /* expiring: mint again in place */
		break;
	}
	if (!slot && ca->n_leaves < TLS_LEAF_CACHE)
		slot = &ca->leaves[ca->n_leaves++];
	if (!slot) {
		slot = &ca->leaves[0];
		for (size_t i = 1; i < ca->n_leaves; i++)
			if (ca->leaves[i].used < slot->used)
				slot = &ca->leaves[i];
	}
	x = mint(ca, name, &not_after);
	ctx = x ? server_ctx(ca, x) : NULL;
	X509_free(x);
	if (!ctx) {
		/* The slot may be a fresh one: leave it empty but valid. */
		if (!slot->ctx)
			slot->name[0] = '\0';
		ssl_err(err, errlen, "minting a certificate");
		return NULL;
	}
	/* A connection may still hold the old context: SSL objects keep their
	 * own reference, so freeing ours here is safe. */
	SSL_CTX_free(slot->ctx);
	snprintf(slot->name, sizeof(slot->name), "%s", name);
	slot->ctx = ctx;
	slot->not_after = not_after;
	slot->used = ++ca->clock;
	ca->minted++;
	return ctx;
}

SSL_CTX *tls_client_ctx(enum tls_verify v, const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx) {
		ssl_err(err, errlen, "client TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (v == TLS_VERIFY_FULL) {
		int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
				 : SSL_CTX_set_default_verify_paths(ctx);

		if (ok != 1) {
			SSL_CTX_free(ctx);
			ssl_err(err, errlen, ca_file ? ca_file : "system trust store");
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
}

int tls_client_prepare(SSL *ssl, const char *host, enum tls_verify v)
{
	unsigned char ipbuf[16];
	int is_ip = inet_pton(AF_INET, host, ipbuf) == 1 || inet_pton(AF_INET6, host, ipbuf) == 1;

	/* SNI carries host names only (RFC 6066). */
	if (!is_ip && SSL_set_tlsext_host_name(ssl, host) != 1)
		return -1;
	if (v != TLS_VERIFY_FULL)
		return 0;
	if (is_ip) {
		X509_VERIFY_PARAM *p = SSL_get0_param(ssl);

		return X509_VERIFY_PARAM_set1_ip_asc(p, host) == 1 ? 0 : -1;
	}
	return SSL_set1_host(ssl, host) == 1 ? 0 : -1;
}
