/* Unit tests for the Airlock CA: creation, reload, minting, chain and name checks, the leaf cache. */
#include <airlock/tls.h>
#include <airlock/http.h>

#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static char dir[] = "/tmp/airlock-test-tls.XXXXXX";

static X509 *load_ca_cert(struct tls_ca *ca)
{
	FILE *f = fopen(tls_ca_cert_path(ca), "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

	if (f)
		fclose(f);
	return x;
}

/* Verifies the leaf a server context presents against the CA, for a name or an IP. */
static int verifies(struct tls_ca *ca, SSL_CTX *ctx, const char *name, int ip)
{
	X509 *leaf = SSL_CTX_get0_certificate(ctx), *root = load_ca_cert(ca);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *vctx = X509_STORE_CTX_new();
	int ok = 0;

	if (!leaf || !root || !store || !vctx)
		goto out;
	X509_STORE_add_cert(store, root);
	X509_STORE_CTX_init(vctx, store, leaf, NULL);
	if (ip)
		X509_VERIFY_PARAM_set1_ip_asc(X509_STORE_CTX_get0_param(vctx), name);
	else
		X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(vctx), name, 0);
	X509_VERIFY_PARAM_set_purpose(X509_STORE_CTX_get0_param(vctx), X509_PURPOSE_SSL_SERVER);
	ok = X509_verify_cert(vctx) == 1;
out:
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(store);
	X509_free(root);
	return ok;
}

static void test_create_and_reload(void)
{
	char err[256], path[512];
	struct tls_ca *ca = NULL, *again = NULL;
	struct stat st;
	X509 *a, *b;

	CHECK(tls_ca_open(dir, &ca, err, sizeof(err)) == 0);
	if (!ca)
		return;
	snprintf(path, sizeof(path), "%s/ca.key", dir);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
	CHECK(tls_ca_open(dir, &again, err, sizeof(err)) == 0);
	a = load_ca_cert(ca);
	b = again ? load_ca_cert(again) : NULL;
	/* The second start loads the same CA rather than making a new one. */
	CHECK(a && b && X509_cmp(a, b) == 0);
	CHECK(a && X509_check_ca(a) >= 1);
	X509_free(a);
	X509_free(b);
	tls_ca_free(again);
	tls_ca_free(ca);

	/* A key others can read is refused, not used. */
	chmod(path, 0644);
	CHECK(tls_ca_open(dir, &again, err, sizeof(err)) == -1);
	CHECK(strstr(err, "readable by others") != NULL);
	chmod(path, 0600);
}

static void test_mint(void)
{
	char err[256];
	struct tls_ca *ca = NULL;
	SSL_CTX *c1, *c2, *c3;

	CHECK(tls_ca_open(dir, &ca, err, sizeof(err)) == 0);
	if (!ca)
		return;
	c1 = tls_server_ctx(ca, "db.internal", err, sizeof(err));
	CHECK(c1 && verifies(ca, c1, "db.internal", 0));
	CHECK(c1 && !verifies(ca, c1, "other.internal", 0));
	c2 = tls_server_ctx(ca, "db.internal", err, sizeof(err));
	CHECK(c1 == c2 && tls_minted(ca) == 1); /* cached */
	c3 = tls_server_ctx(ca, "127.0.0.2", err, sizeof(err));
	CHECK(c3 && verifies(ca, c3, "127.0.0.2", 1));
	CHECK(c3 && !verifies(ca, c3, "127.0.0.3", 1));
	c3 = tls_server_ctx(ca, "::1", err, sizeof(err));
	CHECK(c3 && verifies(ca, c3, "::1", 1));
	CHECK(tls_minted(ca) == 3);
	CHECK(tls_server_ctx(ca, "", err, sizeof(err)) == NULL);
	tls_ca_free(ca);
}

/* The leaf's subjectAltName entries, as "DNS:x" / "IP:n bytes", joined by ' '. */
static void san_of(SSL_CTX *ctx, char *out, size_t cap)
{
	GENERAL_NAMES *names = ctx ? X509_get_ext_d2i(SSL_CTX_get0_certificate(ctx), NID_subject_alt_name,
						       NULL, NULL) : NULL;

	out[0] = '\0';
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		size_t o = strlen(out);

		if (g->type == GEN_DNS)
			snprintf(out + o, cap - o, "%sDNS:%.*s", i ? " " : "", ASN1_STRING_length(g->d.dNSName),
				 (const char *)ASN1_STRING_get0_data(g->d.dNSName));
		else if (g->type == GEN_IPADD)
			snprintf(out + o, cap - o, "%sIP:%d bytes", i ? " " : "", ASN1_STRING_length(g->d.iPAddress));
		else
			snprintf(out + o, cap - o, "%sother:%d", i ? " " : "", g->type);
	}
	GENERAL_NAMES_free(names);
}

/*
 * A leaf is minted only for a host name or an IP literal (an agent's SNI goes into it), and
 * its subjectAltName is that one entry whatever the name: one like "a,IP:10.1.2.3" (the
 * config syntax OpenSSL parses) is refused, never minted with extra entries.
 */
static void test_names(void)
{
	static const char *const good[] = { "db.internal", "A-1.b_c.example.", "10.1.2.3", "fe80::1",
					    "x", "xn--e1afmkfd.test" };
	static const char *const bad[] = { "a,IP:10.1.2.3", "x,URI:http://evil", "@section", "*.evil.example",
					   "x,dirName:sect", "\xc3\xa9.test", "a..b", ".a", "a.b..", "-a.b",
					   "a-.b", "a b", "a/b", "[::1]", "10.1.2.3,IP:1.1.1.1", "" };
	char err[256], san[256], name[300];
	struct tls_ca *ca = NULL;
	SSL_CTX *c;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(http_server_name_ok(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (http_server_name_ok(bad[i])) {
			printf("#   '%s' taken\n", bad[i]);
			t_cur_failed_ = 1;
		}
	/* 63-character labels and 253 characters in all, no more */
	memset(name, 'a', sizeof(name));
	name[63] = '\0';
	CHECK(http_server_name_ok(name));
	name[63] = 'a';
	name[64] = '\0';
	CHECK(!http_server_name_ok(name));
	name[64] = 'a';
	for (int i = 63; i < 253; i += 64)
		name[i] = '.';
	name[253] = '\0';
	CHECK(http_server_name_ok(name));
	name[253] = '.';
	name[254] = '\0';
	CHECK(http_server_name_ok(name));
	name[254] = 'a';
	name[255] = '\0';
	CHECK(!http_server_name_ok(name));

	CHECK(tls_ca_open(dir, &ca, err, sizeof(err)) == 0);
	if (!ca)
		return;
	CHECK(tls_server_ctx(ca, "a,IP:10.1.2.3", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "not a host name or IP address") != NULL);
	CHECK(tls_server_ctx(ca, "x,URI:http://evil", err, sizeof(err)) == NULL);
	CHECK(tls_minted(ca) == 0);
	c = tls_server_ctx(ca, "db.internal", err, sizeof(err));
	san_of(c, san, sizeof(san));
	CHECK_STR(san, "DNS:db.internal");
	c = tls_server_ctx(ca, "10.1.2.3", err, sizeof(err));
	san_of(c, san, sizeof(san));
	CHECK_STR(san, "IP:4 bytes");
	CHECK(c && verifies(ca, c, "10.1.2.3", 1));
	c = tls_server_ctx(ca, "fe80::1", err, sizeof(err));
	san_of(c, san, sizeof(san));
	CHECK_STR(san, "IP:16 bytes");
	tls_ca_free(ca);
}

static void test_cache_bound(void)
{
	char err[256], name[64];
	struct tls_ca *ca = NULL;
	int ok = 1;

	CHECK(tls_ca_open(dir, &ca, err, sizeof(err)) == 0);
	if (!ca)
		return;
	/* More names than the cache holds: the least recently used are evicted, all still valid. */
	for (int i = 0; i < TLS_LEAF_CACHE + 20 && ok; i++) {
		snprintf(name, sizeof(name), "h%d.test", i);
		ok = tls_server_ctx(ca, name, err, sizeof(err)) != NULL;
	}
	CHECK(ok);
	CHECK(tls_minted(ca) == TLS_LEAF_CACHE + 20);
	CHECK(verifies(ca, tls_server_ctx(ca, "h0.test", err, sizeof(err)), "h0.test", 0));
	tls_ca_free(ca);
}

static void test_client_ctx(void)
{
	char err[256];
	SSL_CTX *c = tls_client_ctx(TLS_VERIFY_FULL, NULL, err, sizeof(err));
	SSL *ssl = c ? SSL_new(c) : NULL;

	CHECK(c && ssl);
	CHECK(ssl && tls_client_prepare(ssl, "db.internal", TLS_VERIFY_FULL) == 0);
	CHECK(ssl && strcmp(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), "db.internal") == 0);
	SSL_free(ssl);
	SSL_CTX_free(c);
	CHECK(tls_client_ctx(TLS_VERIFY_FULL, "/nonexistent/ca.pem", err, sizeof(err)) == NULL);
}

int main(void)
{
	char cmd[128];

	if (!mkdtemp(dir))
		return 1;
	RUN(test_create_and_reload);
	RUN(test_mint);
	RUN(test_names);
	RUN(test_cache_bound);
	RUN(test_client_ctx);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	TEST_EXIT();
}
