/* Host names from TLS and HTTP, normalised and compared (userspace/net/host_name.c). */
#include "harness.h"

#include "../../userspace/net/host_name.c"

#include <stdlib.h>

static const char *norm(const char *s)
{
	static char out[256];

	host_name_norm(s, out, sizeof(out));
	return out;
}

/* The host of a Host value, or "(bad)". */
static const char *of(const char *s)
{
	static char out[256];

	return host_name_of_host(s, strlen(s), out, sizeof(out)) == 0 ? out : "(bad)";
}

static void test_norm(void)
{
	char small[5];

	CHECK_STR(norm("api.test"), "api.test");
	CHECK_STR(norm("API.Test."), "api.test");
	CHECK_STR(norm("api.test.."), "api.test.");   /* one dot only: the rest stays, and differs */
	CHECK_STR(norm(""), "");
	CHECK_STR(norm("."), "");
	host_name_norm("api.test", small, sizeof(small));
	CHECK_STR(small, "");                           /* does not fit: matches nothing */
	host_name_norm("a.b.", small, sizeof(small));
	CHECK_STR(small, "a.b");
}

static void test_of_host(void)
{
	char small[4];

	CHECK_STR(of("api.test"), "api.test");
	CHECK_STR(of("API.test:8443"), "api.test");
	CHECK_STR(of("api.test.:443"), "api.test");
	CHECK_STR(of("api.test."), "api.test");
	CHECK_STR(of("127.0.0.1:443"), "127.0.0.1");
	CHECK_STR(of("[::1]:443"), "::1");
	CHECK_STR(of("[2001:DB8::1]"), "2001:db8::1");
	CHECK_STR(of(""), "(bad)");
	CHECK_STR(of(":443"), "(bad)");
	CHECK_STR(of(".:443"), "(bad)");
	CHECK_STR(of("[]:443"), "(bad)");
	CHECK_STR(of("[::1"), "(bad)");
	CHECK(host_name_of_host("api.test", 8, small, sizeof(small)) == -1);
	CHECK(host_name_of_host("abc:1", 5, small, sizeof(small)) == 0);
	CHECK_STR(small, "abc");
}

/* Host compared with the server name, as the proxy does (421 when they differ). */
static int same_vhost(const char *host, const char *sni)
{
	char h[256], s[256];

	host_name_norm(sni, s, sizeof(s));
	return host_name_of_host(host, strlen(host), h, sizeof(h)) == 0 && strcmp(h, s) == 0;
}

static void test_host_vs_sni(void)
{
	CHECK(same_vhost("api.test", "api.test"));
	CHECK(same_vhost("API.TEST:8443", "api.test"));
	CHECK(same_vhost("api.test.", "api.test"));
	CHECK(same_vhost("api.test", "Api.Test."));
	CHECK(!same_vhost("attacker.example", "api.test"));
	CHECK(!same_vhost("api.test.attacker.example", "api.test"));
	CHECK(!same_vhost("api.tes", "api.test"));
	CHECK(!same_vhost("127.0.0.1", "api.test"));
	CHECK(!same_vhost("[::1]", "api.test"));
}

static void test_named_by(void)
{
	static const char conf[] =
		"resource \"api\" {\n"
		"    address 127.0.0.21 10.9.0.0/24 localhost\n"
		"    port 443\n"
		"    protocol https\n"
		"    host api.test *.api.example\n"
		"    tls_name Backend.Internal\n"
		"}\n";
	struct al_config *c = NULL;
	char err[256];
	const struct al_resource *r;

	CHECK(config_parse("t", conf, &c, err, sizeof(err)) == 0);
	if (!c) {
		printf("#   %s\n", err);
		return;
	}
	r = &c->resources[0];
	CHECK(host_named_by(r, "api.test"));
	CHECK(host_named_by(r, "eu.api.example"));
	CHECK(!host_named_by(r, "api.example"));
	CHECK(host_named_by(r, "localhost"));           /* a host name of its address line */
	CHECK(host_named_by(r, "backend.internal"));    /* its tls_name */
	CHECK(host_named_by(r, "127.0.0.21"));
	CHECK(host_named_by(r, "10.9.0.77"));           /* within an address block */
	CHECK(!host_named_by(r, "10.9.1.1"));
	CHECK(!host_named_by(r, "127.0.0.22"));
	CHECK(!host_named_by(r, "attacker.example"));
	CHECK(!host_named_by(r, ""));
	config_free(c);
}

int main(void)
{
	RUN(test_norm);
	RUN(test_of_host);
	RUN(test_host_vs_sni);
	RUN(test_named_by);
	TEST_EXIT();
}
