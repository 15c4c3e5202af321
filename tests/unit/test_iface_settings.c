/* Unit tests for what pinned interfaces add outside the kernel: config settings (tproxy_*, nft_table) and the audit column iface. */
#include <airlock/config.h>
#include <airlock/netdev.h>
#include <airlock/store.h>

#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

static char errbuf[512];

static struct al_config *parse(const char *text)
{
	struct al_config *c = NULL;

	if (config_parse("t", text, &c, errbuf, sizeof(errbuf)) < 0) {
		printf("#   unexpected error: %s\n", errbuf);
		return NULL;
	}
	return c;
}

static int fails_with(const char *text, const char *prefix)
{
	struct al_config *c = NULL;

	errbuf[0] = '\0';
	if (config_parse("t", text, &c, errbuf, sizeof(errbuf)) == 0) {
		config_free(c);
		printf("#   %s parsed, want \"%s...\"\n", text, prefix);
		return 0;
	}
	if (strncmp(errbuf, prefix, strlen(prefix)) == 0)
		return 1;
	printf("#   for %s#   got \"%s\", want \"%s...\"\n", text, errbuf, prefix);
	return 0;
}

static void test_defaults(void)
{
	struct al_config *c = parse("");

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK(c->tproxy_port == 908);
	CHECK(c->tproxy_mark == 0x7701);
	CHECK(c->tproxy_table == 7701);
	CHECK_STR(c->nft_table, "airlock");
	config_free(c);
}

static void test_settings(void)
{
	struct al_config *c = parse("tproxy_port 9100\ntproxy_mark 0x7a000001\ntproxy_table 123456\n"
				    "nft_table airlock_t_1_ab\n");

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK(c->tproxy_port == 9100);
	CHECK(c->tproxy_mark == 0x7a000001);
	CHECK(c->tproxy_table == 123456);
	CHECK_STR(c->nft_table, "airlock_t_1_ab");
	config_free(c);
	c = parse("tproxy_mark 4242\n");
	CHECK(c && c->tproxy_mark == 4242);
	config_free(c);
	/* Without tproxy_port, the port after the steer listener's. */
	c = parse("steer_port 7701\n");
	CHECK(c && c->tproxy_port == 7702);
	config_free(c);
	c = parse("steer_port 65535\n");
	CHECK(c && c->tproxy_port == 65534);
	config_free(c);
	c = parse("tproxy_port 7700\nsteer_port 7800\n");
	CHECK(c && c->tproxy_port == 7700 && c->steer_port == 7800);
	config_free(c);
}

static void test_errors(void)
{
	CHECK(fails_with("tproxy_port 0\n", "t:1: tproxy_port: '0' is not a port"));
	CHECK(fails_with("tproxy_port 907\n", "t:1: tproxy_port and steer_port are both 907"));
	CHECK(fails_with("steer_port 9000\ntproxy_port 9000\n",
			 "t:2: tproxy_port and steer_port are both 9000"));
	CHECK(fails_with("tproxy_mark 0\n", "t:1: tproxy_mark: '0' is not a mark"));
	CHECK(fails_with("tproxy_mark 0x100000000\n", "t:1: tproxy_mark:"));
	CHECK(fails_with("tproxy_mark -1\n", "t:1: tproxy_mark:"));
	CHECK(fails_with("tproxy_mark 12abc\n", "t:1: tproxy_mark:"));
	CHECK(fails_with("tproxy_table 254\n", "t:1: tproxy_table: '254' is not a routing table"));
	CHECK(fails_with("tproxy_table 0\n", "t:1: tproxy_table:"));
	CHECK(fails_with("nft_table \"a b\"\n", "t:1: nft_table: 'a b' is not a table name"));
	CHECK(fails_with("nft_table x.y\n", "t:1: nft_table:"));
	CHECK(fails_with("nft_table a\nnft_table b\n", "t:2: nft_table already set at line 1"));
	CHECK(fails_with("nft_table "
			 "a234567890123456789012345678901234567890123456789012345678901234\n",
			 "t:1: nft_table:"));
}

static void test_table_names(void)
{
	CHECK(nft_table_name_ok("airlock"));
	CHECK(nft_table_name_ok("airlock_t_123_ab-c"));
	CHECK(!nft_table_name_ok(""));
	CHECK(!nft_table_name_ok("a;b"));
	CHECK(!nft_table_name_ok("a/b"));
	CHECK(nft_table_name_ok("a23456789012345678901234567890123456789012345678901234567890123"));
	CHECK(!nft_table_name_ok("a234567890123456789012345678901234567890123456789012345678901234"));
}

static int grab(void *arg, const char *json)
{
	char **out = arg;

	if (!*out)
		*out = strdup(json);
	return 1;
}

/* A TPROXYed connection is audited under its interface, with no cgroup identity. */
static void test_store_iface(void)
{
	char dir[] = "/tmp/airlock-unit-iface.XXXXXX", path[256];
	struct store *s = NULL;
	struct store_conn c = {
		.opened_us = 5, .agent_addr = "10.213.0.2", .agent_port = 40000,
		.dst_addr = "10.213.0.1", .dst_port = 80, .protocol = "tcp", .iface = "alk1h",
	};
	struct store_conn_end e = { .closed_us = 6, .reason = AL_REASON_CLOSED };
	char *row = NULL;

	if (!mkdtemp(dir)) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/a.db", dir);
	CHECK(store_open(path, &s) == 0);
	if (s) {
		CHECK(store_schema_version(s) == STORE_SCHEMA_VERSION);
		CHECK(store_conn_record(s, &c, &e) == 0);
		CHECK(store_conn_list(s, 1, grab, &row) == 0);
		CHECK(row && strstr(row, "\"iface\":\"alk1h\""));
		CHECK(row && strstr(row, "\"cgroup_id\":null"));
		CHECK(row && strstr(row, "\"uid\":null"));
		free(row);
		row = NULL;
		c.iface = NULL;
		c.cgroup_id = 77;
		CHECK(store_conn_record(s, &c, &e) == 0);
		CHECK(store_conn_list(s, 1, grab, &row) == 0);
		CHECK(row && strstr(row, "\"iface\":null"));
		free(row);
		store_close(s);
	}
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	CHECK(system(path) == 0);
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_settings);
	RUN(test_errors);
	RUN(test_table_names);
	RUN(test_store_iface);
	TEST_EXIT();
}
