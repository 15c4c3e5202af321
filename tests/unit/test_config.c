/* Unit tests for the airlock.conf parser and resource matching (userspace/config). */
#include <airlock/config.h>
#include <airlock/pg.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static char errbuf[512];

/* Parses text named "t"; prints the error and returns NULL if it does not parse. */
static struct al_config *parse(const char *text)
{
	struct al_config *c = NULL;

	if (config_parse("t", text, &c, errbuf, sizeof(errbuf)) < 0) {
		printf("#   unexpected error: %s\n", errbuf);
		return NULL;
	}
	return c;
}

/* The error parsing text gives, or a marker saying why there is none. */
static const char *perr(const char *text)
{
	struct al_config *c = NULL;

	errbuf[0] = '\0';
	if (config_parse("t", text, &c, errbuf, sizeof(errbuf)) == 0) {
		config_free(c);
		return "(parsed)";
	}
	if (c)
		return "(out set on error)";
	return errbuf;
}

/* True if parsing text fails with a message starting with prefix. */
static int fails_with(const char *text, const char *prefix)
{
	const char *e = perr(text);

	if (strncmp(e, prefix, strlen(prefix)) == 0)
		return 1;
	printf("#   for %s#   got \"%s\", want \"%s...\"\n", text, e, prefix);
	return 0;
}

static struct al_addr addr(const char *s)
{
	struct al_addr a;

	if (al_addr_parse(&a, s) < 0) {
		printf("#   test bug: bad address %s\n", s);
		memset(&a, 0, sizeof(a));
	}
	return a;
}

static const char *match_name(const struct al_config *c, const char *dst, uint16_t port)
{
	struct al_addr a = addr(dst);
	const struct al_resource *r = config_match(c, &a, port);

	return r ? r->name : "(none)";
}

static void check_defaults(const struct al_config *c)
{
	CHECK(c->steer_port == 907);
	CHECK_STR(c->control_socket, "/run/airlock/control.sock");
	CHECK_STR(c->store_path, "/var/lib/airlock/airlock.db");
	CHECK_STR(c->pin_root, "/sys/fs/bpf/airlock");
	CHECK(c->default_action == AL_DEFAULT_RELAY);
	CHECK(c->connect_timeout_ms == 10000);
	CHECK(c->commit_interval_ms == 20);
	CHECK(c->max_sessions == 10000);
	CHECK(c->relay_buffer == 256 * 1024);
}

static void test_embedded_default(void)
{
	struct al_config *c = NULL;
	const struct al_resource *r;

	if (config_load_default(&c, errbuf, sizeof(errbuf)) < 0) {
		printf("#   %s\n", errbuf);
		CHECK(0);
		return;
	}
	CHECK(al_default_conf_len == strlen(al_default_conf));
	CHECK_STR(c->source, "<embedded>");
	check_defaults(c);
	CHECK(c->n_resources == 1);
	if (c->n_resources == 1) {
		r = &c->resources[0];
		CHECK_STR(r->name, "loopback-http");
		CHECK(r->n_hosts == 0);
		CHECK(r->proto == AL_PROTO_TCP);
	}
	CHECK_STR(match_name(c, "127.0.0.1", 80), "loopback-http");
	CHECK_STR(match_name(c, "127.9.9.9", 8080), "loopback-http");
	CHECK_STR(match_name(c, "::1", 8080), "loopback-http");
	CHECK_STR(match_name(c, "127.0.0.1", 443), "(none)");
	CHECK_STR(match_name(c, "10.0.0.1", 80), "(none)");
	config_free(c);
}

static void test_empty_and_comments_only(void)
{
	struct al_config *c;

	c = parse("");
	CHECK(c);
	if (c) {
		check_defaults(c);
		CHECK(c->n_resources == 0);
		CHECK_STR(c->source, "t");
	}
	config_free(c);
	c = parse("# nothing\n\n   \t\n# at the end, no newline");
	CHECK(c);
	if (c)
		check_defaults(c);
	config_free(c);
}

static void test_all_settings(void)
{
	struct al_config *c = parse(
		"steer_port 1\n"
		"control_socket /tmp/a.sock\n"
		"store /tmp/a.db\n"
		"pin_root /sys/fs/bpf/x/y/\n"
		"default deny\n"
		"connect_timeout 500ms\n"
		"max_sessions 1\n"
		"relay_buffer 64k\n");

	CHECK(c);
	if (!c)
		return;
	CHECK(c->steer_port == 1);
	CHECK_STR(c->control_socket, "/tmp/a.sock");
	CHECK_STR(c->store_path, "/tmp/a.db");
	CHECK_STR(c->pin_root, "/sys/fs/bpf/x/y");
	CHECK(c->default_action == AL_DEFAULT_DENY);
	CHECK(c->connect_timeout_ms == 500);
	CHECK(c->max_sessions == 1);
	CHECK(c->relay_buffer == 65536);
	config_free(c);
}

static void test_steer_port(void)
{
	struct al_config *c = parse("steer_port 65535");

	CHECK(c && c->steer_port == 65535);
	config_free(c);
	CHECK_STR(perr("steer_port 0\n"), "t:1: steer_port: '0' is not a port number (1..65535)");
	CHECK_STR(perr("steer_port 65536\n"),
		  "t:1: steer_port: '65536' is not a port number (1..65535)");
	CHECK(fails_with("steer_port -1\n", "t:1: steer_port: '-1' is not"));
	CHECK(fails_with("steer_port +1\n", "t:1: steer_port: '+1' is not"));
	CHECK(fails_with("steer_port 0x50\n", "t:1: steer_port: '0x50' is not"));
	CHECK(fails_with("steer_port 80a\n", "t:1: steer_port: '80a' is not"));
	CHECK(fails_with("steer_port \"\"\n", "t:1: steer_port: '' is not"));
	CHECK(fails_with("steer_port 99999999999999999999999\n", "t:1: steer_port: '9999"));
	CHECK_STR(perr("steer_port\n"), "t:1: steer_port: missing argument");
	CHECK_STR(perr("steer_port 1 2\n"), "t:1: steer_port: too many arguments (takes 1)");
	CHECK_STR(perr("steer_port 1\n\nsteer_port 2\n"), "t:3: steer_port already set at line 1");
}

static void test_paths(void)
{
	char text[256];
	struct al_config *c;

	CHECK_STR(perr("control_socket run/x.sock\n"),
		  "t:1: control_socket: 'run/x.sock' is not an absolute path");
	CHECK_STR(perr("store airlock.db\n"), "t:1: store: 'airlock.db' is not an absolute path");
	CHECK(fails_with("store \"\"\n", "t:1: store: '' is not an absolute path"));
	CHECK_STR(perr("store\n"), "t:1: store: missing argument");
	CHECK_STR(perr("control_socket /a /b\n"),
		  "t:1: control_socket: too many arguments (takes 1)");

	/* sun_path holds 107 bytes and a NUL */
	memcpy(text, "control_socket /", 16);
	memset(text + 16, 'a', 106);
	memcpy(text + 15 + 107, "\n", 2);
	c = parse(text);
	CHECK(c && strlen(c->control_socket) == 107);
	config_free(c);
	memcpy(text + 15 + 107, "a\n", 3);
	CHECK_STR(perr(text), "t:1: control_socket: path is longer than 107 bytes");
}

static void test_pin_root(void)
{
	struct al_config *c = parse("pin_root /sys/fs/bpf/a\n");

	CHECK(c && strcmp(c->pin_root, "/sys/fs/bpf/a") == 0);
	config_free(c);
	c = parse("pin_root \"/sys/fs/bpf/air lock//\"\n");
	CHECK(c && strcmp(c->pin_root, "/sys/fs/bpf/air lock") == 0);
	config_free(c);
	CHECK_STR(perr("pin_root /tmp/airlock\n"),
		  "t:1: pin_root: '/tmp/airlock' is not a directory below /sys/fs/bpf/");
	CHECK(fails_with("pin_root /sys/fs/bpf\n", "t:1: pin_root: '/sys/fs/bpf' is not"));
	CHECK(fails_with("pin_root /sys/fs/bpf/\n", "t:1: pin_root: '/sys/fs/bpf/' is not"));
	CHECK(fails_with("pin_root /sys/fs/bpf//\n", "t:1: pin_root:"));
	CHECK(fails_with("pin_root /sys/fs/bpfx/a\n", "t:1: pin_root:"));
	CHECK(fails_with("pin_root sys/fs/bpf/a\n", "t:1: pin_root:"));
	CHECK(fails_with("pin_root /sys/fs/bpf/../../etc\n", "t:1: pin_root:"));
	CHECK(fails_with("pin_root /sys/fs/bpf/a/../b\n", "t:1: pin_root:"));
	CHECK(fails_with("pin_root /sys/fs/bpf/./a\n", "t:1: pin_root:"));
	CHECK(fails_with("pin_root /sys/fs/bpf/a//b\n", "t:1: pin_root:"));
	CHECK(fails_with("pin_root /sys/fs/bpf/..\n", "t:1: pin_root:"));
}

static void test_default_action(void)
{
	struct al_config *c = parse("default relay\n");

	CHECK(c && c->default_action == AL_DEFAULT_RELAY);
	config_free(c);
	CHECK_STR(perr("default allow\n"), "t:1: default: 'allow' is neither relay nor deny");
	CHECK(fails_with("default Deny\n", "t:1: default: 'Deny'"));
	CHECK_STR(perr("default\n"), "t:1: default: missing argument");
	CHECK_STR(perr("default deny relay\n"), "t:1: default: too many arguments (takes 1)");
}

static unsigned int timeout_of(const char *v)
{
	char text[128];
	struct al_config *c;
	unsigned int ms;

	if (al_fmt(text, sizeof(text), "connect_timeout %s\n", v) < 0)
		return 0;
	c = parse(text);
	ms = c ? c->connect_timeout_ms : 0;
	config_free(c);
	return ms;
}

static void test_connect_timeout(void)
{
	CHECK(timeout_of("500ms") == 500);
	CHECK(timeout_of("10s") == 10000);
	CHECK(timeout_of("2m") == 120000);
	CHECK(timeout_of("1ms") == 1);
	CHECK(timeout_of("60m") == 3600000);
	CHECK(timeout_of("3600s") == 3600000);
	CHECK_STR(perr("connect_timeout 10\n"), "t:1: connect_timeout: '10' is not a duration"
		  " (a number with ms, s or m, e.g. 500ms, 10s, 2m)");
	CHECK(fails_with("connect_timeout 10h\n", "t:1: connect_timeout: '10h' is not a duration"));
	CHECK(fails_with("connect_timeout s\n", "t:1: connect_timeout: 's' is not a duration"));
	CHECK(fails_with("connect_timeout 1.5s\n", "t:1: connect_timeout: '1.5s' is not"));
	CHECK(fails_with("connect_timeout -1s\n", "t:1: connect_timeout: '-1s' is not"));
	CHECK(fails_with("connect_timeout 10S\n", "t:1: connect_timeout: '10S' is not"));
	CHECK_STR(perr("connect_timeout 0s\n"),
		  "t:1: connect_timeout: '0s' is out of range (1ms..60m)");
	CHECK(fails_with("connect_timeout 61m\n", "t:1: connect_timeout: '61m' is out of range"));
	CHECK(fails_with("connect_timeout 3600001ms\n", "t:1: connect_timeout: '3600001ms' is out"));
	/* would overflow when scaled */
	CHECK(fails_with("connect_timeout 18446744073709551m\n", "t:1: connect_timeout:"));
	CHECK_STR(perr("connect_timeout\n"), "t:1: connect_timeout: missing argument");
}

static void test_commit_interval(void)
{
	struct al_config *c = parse("commit_interval 5ms\n");

	CHECK(c && c->commit_interval_ms == 5);
	config_free(c);
	c = parse("commit_interval 1s\n");
	CHECK(c && c->commit_interval_ms == 1000);
	config_free(c);
	CHECK_STR(perr("commit_interval 0ms\n"),
		  "t:1: commit_interval: '0ms' is out of range (1ms..1s)");
	CHECK(fails_with("commit_interval 1001ms\n", "t:1: commit_interval: '1001ms' is out of range"));
	CHECK(fails_with("commit_interval 20\n", "t:1: commit_interval: '20' is not a duration"));
}

static void test_max_sessions(void)
{
	struct al_config *c = parse("max_sessions 1048576\n");

	CHECK(c && c->max_sessions == 1048576);
	config_free(c);
	CHECK_STR(perr("max_sessions 0\n"), "t:1: max_sessions: '0' is not a number in 1..1048576");
	CHECK(fails_with("max_sessions 1048577\n", "t:1: max_sessions: '1048577' is not"));
	CHECK(fails_with("max_sessions lots\n", "t:1: max_sessions: 'lots' is not"));
	CHECK(fails_with("max_sessions 10k\n", "t:1: max_sessions: '10k' is not"));
}

/* http_response_timeout: 120 s unless set; 0 is none, a duration otherwise. */
static void test_http_response_timeout(void)
{
	struct al_config *c = parse("");

	CHECK(c && c->http_response_timeout_ms == 120000);
	config_free(c);
	c = parse("http_response_timeout 0\n");
	CHECK(c && c->http_response_timeout_ms == 0);
	config_free(c);
	c = parse("http_response_timeout 1500ms\n");
	CHECK(c && c->http_response_timeout_ms == 1500);
	config_free(c);
	c = parse("http_response_timeout 60m\n");
	CHECK(c && c->http_response_timeout_ms == 3600000);
	config_free(c);
	CHECK_STR(perr("http_response_timeout 0s\n"),
		  "t:1: http_response_timeout: '0s' is out of range (1ms..60m, or 0 for none)");
	CHECK(fails_with("http_response_timeout 61m\n", "t:1: http_response_timeout: '61m' is out of range"));
	CHECK(fails_with("http_response_timeout 30\n", "t:1: http_response_timeout: '30' is not a duration"));
	CHECK(fails_with("http_response_timeout 1s\nhttp_response_timeout 2s\n",
			 "t:2: http_response_timeout already set at line 1"));
}

/* pg_login_timeout: 60 s unless set; a duration, never 0 (a login is always bounded). */
static void test_pg_login_timeout(void)
{
	struct al_config *c = parse("");

	CHECK(c && c->pg_login_timeout_ms == 60000);
	config_free(c);
	c = parse("pg_login_timeout 2s\n");
	CHECK(c && c->pg_login_timeout_ms == 2000);
	config_free(c);
	CHECK_STR(perr("pg_login_timeout 0\n"), "t:1: pg_login_timeout: '0' is not a duration"
		  " (a number with ms, s or m, e.g. 500ms, 10s, 2m)");
	CHECK_STR(perr("pg_login_timeout 0s\n"), "t:1: pg_login_timeout: '0s' is out of range (1ms..60m)");
	CHECK(fails_with("pg_login_timeout 61m\n", "t:1: pg_login_timeout: '61m' is out of range"));
}

/* max_sessions_per_agent: as set, else half of the sessions airlockd takes at once (max_sessions,
 * or what the descriptor limit allows), at least 1; a fixed 2000 did nothing at or below it. */
static void test_sessions_per_agent(void)
{
	struct al_config *c = parse("max_sessions 10\n");

	CHECK(c && c->max_sessions_per_agent == 0);
	if (c) {
		CHECK(config_sessions_per_agent(c, c->max_sessions) == 5);
		CHECK(config_sessions_per_agent(c, 4) == 2);      /* the descriptor limit's cap */
		CHECK(config_sessions_per_agent(c, 3) == 1);
		CHECK(config_sessions_per_agent(c, 1) == 1);
		CHECK(config_sessions_per_agent(c, 0) == 1);
		CHECK(config_sessions_per_agent(c, 10000) == 5000);
	}
	config_free(c);
	c = parse("max_sessions 10\nmax_sessions_per_agent 9\n");
	CHECK(c && config_sessions_per_agent(c, 10) == 9 && config_sessions_per_agent(c, 4) == 9);
	config_free(c);
	c = parse("max_sessions_per_agent 1\n");
	CHECK(c && config_sessions_per_agent(c, 10000) == 1);
	config_free(c);
	CHECK(fails_with("max_sessions_per_agent 0\n", "t:1: max_sessions_per_agent: '0' is not a number in 1.."));
}

static size_t buffer_of(const char *v)
{
	char text[128];
	struct al_config *c;
	size_t n;

	if (al_fmt(text, sizeof(text), "relay_buffer %s\n", v) < 0)
		return 0;
	c = parse(text);
	n = c ? c->relay_buffer : 0;
	config_free(c);
	return n;
}

static void test_relay_buffer(void)
{
	CHECK(buffer_of("65536") == 65536);
	CHECK(buffer_of("64k") == 65536);
	CHECK(buffer_of("64K") == 65536);
	CHECK(buffer_of("1m") == 1048576);
	CHECK(buffer_of("4k") == 4096);
	CHECK(buffer_of("4096") == 4096);
	CHECK(buffer_of("64m") == 64u * 1024 * 1024);
	CHECK(buffer_of("64M") == 64u * 1024 * 1024);
	CHECK_STR(perr("relay_buffer 4095\n"), "t:1: relay_buffer: '4095' is out of range (4k..64m)");
	CHECK(fails_with("relay_buffer 67108865\n", "t:1: relay_buffer: '67108865' is out of range"));
	CHECK(fails_with("relay_buffer 65m\n", "t:1: relay_buffer: '65m' is out of range"));
	CHECK(fails_with("relay_buffer 0\n", "t:1: relay_buffer: '0' is out of range"));
	CHECK_STR(perr("relay_buffer 1g\n"), "t:1: relay_buffer: '1g' is not a size"
		  " (bytes, or a number with k or m, e.g. 65536, 64k, 1m)");
	CHECK(fails_with("relay_buffer k\n", "t:1: relay_buffer: 'k' is not a size"));
	CHECK(fails_with("relay_buffer 64kb\n", "t:1: relay_buffer: '64kb' is not a size"));
	CHECK(fails_with("relay_buffer 18446744073709551615m\n", "t:1: relay_buffer:"));
}

static void test_unknown_and_stray(void)
{
	CHECK_STR(perr("steer_port 7700\n\n# x\nstear_port 7701\n"),
		  "t:4: unknown directive 'stear_port'");
	CHECK_STR(perr("Steer_port 1\n"), "t:1: unknown directive 'Steer_port'");
	CHECK_STR(perr("}\n"), "t:1: '}' without an open resource");
	CHECK_STR(perr("{\n"), "t:1: unexpected '{'");
	CHECK_STR(perr("steer_port 1 {\n"), "t:1: unexpected '{' after 'steer_port'");
	CHECK_STR(perr("steer_port { 1\n"), "t:1: unexpected '{'");
	CHECK_STR(perr("steer_port 1 }\n"), "t:1: '}' must be on a line of its own");
	CHECK_STR(perr("bogus {\n}\n"), "t:1: unknown directive 'bogus'");
}

static void test_error_format_and_source(void)
{
	struct al_config *c = (struct al_config *)&errbuf;
	char small[12];

	CHECK(config_parse("/etc/airlock/airlock.conf", "\n\n\n\n\n\n\n\n\n\n\nstear_port 7700\n",
			   &c, errbuf, sizeof(errbuf)) == -1);
	CHECK(c == NULL);
	CHECK_STR(errbuf, "/etc/airlock/airlock.conf:12: unknown directive 'stear_port'");
	/* a short buffer gets a cut, terminated message */
	CHECK(config_parse("t", "nope\n", &c, small, sizeof(small)) == -1);
	CHECK(strlen(small) == sizeof(small) - 1);
	CHECK(strncmp(small, "t:1: unknow", sizeof(small) - 1) == 0);
	/* and no buffer at all is allowed */
	CHECK(config_parse("t", "nope\n", &c, NULL, 0) == -1);
	CHECK(c == NULL);
}

static void test_resource(void)
{
	struct al_config *c = parse(
		"# db\n"
		"resource db {\n"
		"\taddress 10.1.0.0/16 2001:db8::/32 192.0.2.7\n"
		"\taddress 198.51.100.1 10.1.0.0/16   # repeated lists add up, duplicates drop\n"
		"\tport 5432 6432\n"
		"\tport 5432\n"
		"\tprotocol tcp\n"
		"}\n"
		"resource \"web.1_x-y\" {\n"
		"  port 443\n"
		"  address ::1\n"
		"}\n");
	const struct al_resource *r;

	CHECK(c);
	if (!c)
		return;
	CHECK(c->n_resources == 2);
	r = &c->resources[0];
	CHECK_STR(r->name, "db");
	CHECK(r->line == 2);
	CHECK(r->n_nets == 4);
	CHECK(r->n_ports == 2);
	CHECK(r->n_ports == 2 && r->ports[0] == 5432 && r->ports[1] == 6432);
	CHECK(r->n_hosts == 0 && r->hosts == NULL);
	CHECK(r->proto == AL_PROTO_TCP);
	CHECK(r->n_nets == 4 && r->nets[0].prefix == 112 && r->nets[1].prefix == 32 &&
	      r->nets[2].prefix == 128 && r->nets[3].prefix == 128);
	if (r->n_nets == 4) {
		struct al_addr a = addr("10.1.0.0");

		CHECK(memcmp(&r->nets[0].addr, &a, sizeof(a)) == 0);
	}
	r = &c->resources[1];
	CHECK_STR(r->name, "web.1_x-y");
	CHECK(r->line == 9);
	CHECK(r->proto == AL_PROTO_TCP);
	CHECK_STR(match_name(c, "10.1.255.255", 6432), "db");
	CHECK_STR(match_name(c, "198.51.100.1", 5432), "db");
	CHECK_STR(match_name(c, "198.51.100.2", 5432), "(none)");
	CHECK_STR(match_name(c, "::1", 443), "web.1_x-y");
	CHECK_STR(match_name(c, "::1", 5432), "(none)");
	CHECK_STR(match_name(c, "127.0.0.1", 443), "(none)");
	CHECK(config_match(NULL, &r->nets[0].addr, 443) == NULL);
	config_free(c);
}

static void test_resource_errors(void)
{
	CHECK_STR(perr("resource db {\n  port 5432\n}\n"), "t:1: resource 'db' has no address");
	CHECK_STR(perr("\nresource db {\n  address 10.0.0.1\n}\n"), "t:2: resource 'db' has no port");
	CHECK_STR(perr("resource db {\n}\n"), "t:1: resource 'db' has no address");
	CHECK_STR(perr("resource a {\n address ::1\n port 1\n}\n"
		       "resource b {\n address ::1\n port 1\n}\n"
		       "resource a {\n address ::2\n port 2\n}\n"),
		  "t:9: duplicate resource 'a' (first at line 1)");
	CHECK_STR(perr("resource {\n"), "t:1: resource: expected 'resource NAME {'");
	CHECK_STR(perr("resource db\n{\n"), "t:1: resource: expected 'resource NAME {'");
	CHECK_STR(perr("resource a b {\n"), "t:1: resource: expected 'resource NAME {'");
	CHECK_STR(perr("resource \"a b\" {\n"),
		  "t:1: resource: bad name 'a b' (1..63 characters of A-Z a-z 0-9 . _ -)");
	CHECK(fails_with("resource \"\" {\n", "t:1: resource: bad name ''"));
	CHECK(fails_with("resource a/b {\n", "t:1: resource: bad name 'a/b'"));
	CHECK(fails_with("resource "
			 "a123456789012345678901234567890123456789012345678901234567890123 {\n",
			 "t:1: resource: bad name"));
	{
		struct al_config *c = parse(
			"resource a12345678901234567890123456789012345678901234567890123456789012 {\n"
			" address ::1\n port 1\n}\n");

		CHECK(c && strlen(c->resources[0].name) == 63);
		config_free(c);
	}
	CHECK_STR(perr("resource db {\n address ::1\n prot 1\n}\n"),
		  "t:3: unknown directive 'prot' in resource 'db'");
	CHECK_STR(perr("resource db {\n steer_port 1\n}\n"),
		  "t:2: unknown directive 'steer_port' in resource 'db'");
	CHECK_STR(perr("resource db {\n address ::1\n port 1\n protocol udp\n}\n"),
		  "t:4: unknown protocol 'udp' (valid: tcp, postgres, https)");
	CHECK_STR(perr("resource db {\n protocol tcp\n protocol tcp\n}\n"),
		  "t:3: protocol already set at line 2");
	CHECK_STR(perr("resource db {\n protocol\n}\n"), "t:2: protocol: missing argument");
	CHECK_STR(perr("resource db {\n protocol tcp tcp\n}\n"),
		  "t:2: protocol: too many arguments (takes 1)");
	CHECK_STR(perr("resource db {\n address\n}\n"), "t:2: address: missing argument");
	CHECK_STR(perr("resource db {\n port\n}\n"), "t:2: port: missing argument");
	CHECK_STR(perr("resource db {\n port 0\n}\n"), "t:2: port: '0' is not a port number (1..65535)");
	CHECK(fails_with("resource db {\n port 80 65536\n}\n", "t:2: port: '65536' is not"));
	CHECK(fails_with("resource db {\n port 8000-8100\n}\n", "t:2: port: '8000-8100' is not"));
	CHECK_STR(perr("resource a {\n address ::1\n resource b {\n"),
		  "t:3: resource inside resource 'a' (is the '}' for line 1 missing?)");
	CHECK_STR(perr("resource db {\n address ::1 {\n"), "t:2: unexpected '{'");
	CHECK_STR(perr("resource db { address ::1\n"), "t:1: unexpected '{'");
	CHECK_STR(perr("resource db {\n address ::1\n port 1 }\n"),
		  "t:3: '}' must be on a line of its own");
	CHECK_STR(perr("resource db {\n address ::1\n port 1\n} x\n"),
		  "t:4: '}' must be on a line of its own");
	/* the one-line form is refused before any name is looked up */
	CHECK_STR(perr("resource x { address 127.0.0.0/8 ::1  port 80 8080  protocol tcp }\n"),
		  "t:1: unexpected '{'");
}

static void test_unterminated(void)
{
	CHECK_STR(perr("\nresource db {\n address ::1\n port 1\n"),
		  "t:2: resource 'db' is not closed (missing '}')");
	CHECK_STR(perr("resource db {"), "t:1: resource 'db' is not closed (missing '}')");
	CHECK_STR(perr("\n\nstore \"/tmp/x\n"), "t:3: unterminated string");
	CHECK_STR(perr("store \"/tmp/x"), "t:1: unterminated string");
	CHECK_STR(perr("store \"/tmp/x\\"), "t:1: unterminated string");
	CHECK_STR(perr("store \"/tmp/x\\\"\n"), "t:1: unterminated string");
	CHECK_STR(perr("store \"/tmp/x\nstore\"\n"), "t:1: unterminated string");
}

static void test_strings(void)
{
	struct al_config *c = parse(
		"control_socket \"/run/a \\\"q\\\" \\\\b.sock\"\n"
		"store \"/tmp/has # hash and { brace }\"   # but this is a comment\n"
		"resource \"db\" {\n"
		"  address \"10.0.0.1\" \"::1\"\n"
		"  port \"5432\"\n"
		"  \"protocol\" \"tcp\"\n"
		"}\n"
		"default\t\"deny\"\n");

	CHECK(c);
	if (c) {
		CHECK_STR(c->control_socket, "/run/a \"q\" \\b.sock");
		CHECK_STR(c->store_path, "/tmp/has # hash and { brace }");
		CHECK(c->default_action == AL_DEFAULT_DENY);
		CHECK(c->n_resources == 1 && c->resources[0].n_nets == 2);
	}
	config_free(c);
	c = parse("store \"/tmp/tab\there\"\n");
	CHECK(c && strcmp(c->store_path, "/tmp/tab\there") == 0);
	config_free(c);
	CHECK_STR(perr("store \"/tmp/\\n\"\n"),
		  "t:1: bad escape '\\n' in string (only \\\" and \\\\ are allowed)");
	CHECK_STR(perr("store \"/tmp/x\"y\n"), "t:1: missing space after closing quote");
	CHECK_STR(perr("store /tmp/x\"y\"\n"), "t:1: quote in the middle of a word");
	CHECK_STR(perr("store \"/tmp/\001\"\n"), "t:1: control character 0x01 in string");
	CHECK_STR(perr("store /tmp/\001\n"), "t:1: control character 0x01");
	/* a quoted brace is a word, not a block */
	CHECK_STR(perr("resource db \"{\"\n"), "t:1: resource: expected 'resource NAME {'");
}

static void test_comments_and_layout(void)
{
	struct al_config *c = parse(
		"# header\n"
		"steer_port 7701# no space needed\n"
		"   # indented comment with \"quote and { brace\n"
		"resource db { # open\n"
		"\taddress ::1 # two\n"
		"\n"
		"\t# inside\n"
		"\tport 1\n"
		"} # close\n"
		"default deny\r\n"
		"max_sessions 5\r\n");

	CHECK(c);
	if (c) {
		CHECK(c->steer_port == 7701);
		CHECK(c->n_resources == 1 && c->resources[0].line == 4);
		CHECK(c->default_action == AL_DEFAULT_DENY);
		CHECK(c->max_sessions == 5);
	}
	config_free(c);
	/* line numbers count comment and blank lines */
	CHECK_STR(perr("# a\n\n# b { \"\n\nmax_sessions x\n"),
		  "t:5: max_sessions: 'x' is not a number in 1..1048576");
	CHECK_STR(perr("a\r\nb\r\nstear_port 1\r\n"), "t:1: unknown directive 'a'");
}

static void test_cidr_v4(void)
{
	struct al_config *c = parse(
		"resource net8 {\n address 10.0.0.0/8\n port 1\n}\n"
		"resource host {\n address 192.168.1.1/32\n port 1\n}\n"
		"resource half {\n address 172.16.0.128/25\n port 1\n}\n"
		"resource all4 {\n address 0.0.0.0/0\n port 2\n}\n");

	CHECK(c);
	if (!c)
		return;
	CHECK(c->resources[0].nets[0].prefix == 104);
	CHECK(c->resources[1].nets[0].prefix == 128);
	CHECK(c->resources[3].nets[0].prefix == 96);
	CHECK_STR(match_name(c, "10.0.0.0", 1), "net8");
	CHECK_STR(match_name(c, "10.255.255.255", 1), "net8");
	CHECK_STR(match_name(c, "9.255.255.255", 1), "(none)");
	CHECK_STR(match_name(c, "11.0.0.0", 1), "(none)");
	CHECK_STR(match_name(c, "192.168.1.1", 1), "host");
	CHECK_STR(match_name(c, "192.168.1.0", 1), "(none)");
	CHECK_STR(match_name(c, "192.168.1.2", 1), "(none)");
	CHECK_STR(match_name(c, "172.16.0.128", 1), "half");
	CHECK_STR(match_name(c, "172.16.0.255", 1), "half");
	CHECK_STR(match_name(c, "172.16.0.127", 1), "(none)");
	CHECK_STR(match_name(c, "172.16.1.128", 1), "(none)");
	CHECK_STR(match_name(c, "255.255.255.255", 2), "all4");
	CHECK_STR(match_name(c, "0.0.0.0", 2), "all4");
	/* 0.0.0.0/0 is all of IPv4, and only IPv4 */
	CHECK_STR(match_name(c, "::1", 2), "(none)");
	CHECK_STR(match_name(c, "2001:db8::1", 2), "(none)");
	/* an IPv4 address seen as v4-mapped IPv6 is the same address */
	CHECK_STR(match_name(c, "::ffff:10.1.2.3", 1), "net8");
	config_free(c);
}

static void test_cidr_v6(void)
{
	struct al_config *c = parse(
		"resource doc {\n address 2001:db8::/32\n port 1\n}\n"
		"resource one {\n address 2001:db9::1/128\n port 1\n}\n"
		"resource odd {\n address 2001:dba::/127\n port 1\n}\n"
		"resource mapped {\n address ::ffff:10.0.0.0/104\n port 3\n}\n"
		"resource all {\n address ::/0\n port 1 2 3\n}\n");

	CHECK(c);
	if (!c)
		return;
	CHECK(c->resources[0].nets[0].prefix == 32);
	CHECK_STR(match_name(c, "2001:db8::", 1), "doc");
	CHECK_STR(match_name(c, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1), "doc");
	CHECK_STR(match_name(c, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", 1), "all");
	CHECK_STR(match_name(c, "2001:db9::1", 1), "one");
	CHECK_STR(match_name(c, "2001:db9::2", 1), "all");
	CHECK_STR(match_name(c, "2001:dba::1", 1), "odd");
	CHECK_STR(match_name(c, "2001:dba::2", 1), "all");
	CHECK_STR(match_name(c, "10.9.9.9", 3), "mapped");
	CHECK_STR(match_name(c, "11.0.0.0", 3), "all");
	/* ::/0 takes v4-mapped addresses too */
	CHECK_STR(match_name(c, "192.0.2.1", 2), "all");
	CHECK_STR(match_name(c, "::1", 4), "(none)");
	config_free(c);
}

static void test_cidr_contains(void)
{
	struct al_cidr n = { .addr = addr("10.0.0.0"), .prefix = 96 + 31 };
	struct al_addr a;

	a = addr("10.0.0.1");
	CHECK(al_cidr_contains(&n, &a) == 1);
	a = addr("10.0.0.2");
	CHECK(al_cidr_contains(&n, &a) == 0);
	n.prefix = 0;
	CHECK(al_cidr_contains(&n, &a) == 1);
	n.prefix = 129;
	CHECK(al_cidr_contains(&n, &a) == 0);
	n.addr = addr("8000::");
	n.prefix = 1;
	a = addr("ffff::");
	CHECK(al_cidr_contains(&n, &a) == 1);
	a = addr("7fff::");
	CHECK(al_cidr_contains(&n, &a) == 0);
}

static void test_address_errors(void)
{
#define RES(a) "resource r {\n port 1\n address " a "\n}\n"
	CHECK_STR(perr(RES("10.0.0.1/8")), "t:3: host bits set in 10.0.0.1/8");
	CHECK_STR(perr(RES("11.0.0.0/7")), "t:3: host bits set in 11.0.0.0/7");
	CHECK_STR(perr(RES("2001:db8::1/32")), "t:3: host bits set in 2001:db8::1/32");
	CHECK_STR(perr(RES("::1 10.0.0.128/24")), "t:3: host bits set in 10.0.0.128/24");
	CHECK_STR(perr(RES("10.0.0.0/33")),
		  "t:3: address: bad prefix length in '10.0.0.0/33' (0..32 for IPv4)");
	CHECK_STR(perr(RES("::/129")), "t:3: address: bad prefix length in '::/129' (0..128 for IPv6)");
	CHECK(fails_with(RES("10.0.0.0/"), "t:3: address: bad prefix length in '10.0.0.0/'"));
	CHECK(fails_with(RES("10.0.0.0/x"), "t:3: address: bad prefix length"));
	CHECK(fails_with(RES("10.0.0.0/-1"), "t:3: address: bad prefix length"));
	CHECK(fails_with(RES("10.0.0.0/8/8"), "t:3: address: bad prefix length"));
	CHECK_STR(perr(RES("10.0.0.256")), "t:3: address: '10.0.0.256' is not an address or CIDR");
	CHECK(fails_with(RES("1.2.3"), "t:3: address: '1.2.3' is not an address or CIDR"));
	CHECK(fails_with(RES("1.2.3/8"), "t:3: address: '1.2.3/8' is not an address or CIDR"));
	CHECK(fails_with(RES("2001:db8:::1"), "t:3: address: '2001:db8:::1' is not"));
	CHECK(fails_with(RES("fe80::1%eth0"), "t:3: address: 'fe80::1%eth0' is not"));
	CHECK(fails_with(RES("/8"), "t:3: address: '/8' is not an address or CIDR"));
	CHECK_STR(perr(RES("bad!host")),
		  "t:3: address: 'bad!host' is not an address, CIDR or host name");
	CHECK(fails_with(RES("a..b"), "t:3: address: 'a..b' is not an address, CIDR or host"));
	CHECK(fails_with(RES("."), "t:3: address: '.' is not an address"));
#undef RES
}

static void test_first_match(void)
{
	struct al_config *c = parse(
		"resource narrow {\n address 10.1.2.3\n port 443\n}\n"
		"resource wide {\n address 10.0.0.0/8\n port 443 80\n}\n"
		"resource wider {\n address 0.0.0.0/0\n port 80 443 22\n}\n");

	CHECK(c);
	if (!c)
		return;
	CHECK_STR(match_name(c, "10.1.2.3", 443), "narrow");
	CHECK_STR(match_name(c, "10.1.2.3", 80), "wide");
	CHECK_STR(match_name(c, "10.1.2.3", 22), "wider");
	CHECK_STR(match_name(c, "10.1.2.4", 443), "wide");
	CHECK_STR(match_name(c, "8.8.8.8", 443), "wider");
	CHECK_STR(match_name(c, "8.8.8.8", 23), "(none)");
	config_free(c);
	/* reversed, the broad resource hides the narrow one */
	c = parse("resource wide {\n address 10.0.0.0/8\n port 443\n}\n"
		  "resource narrow {\n address 10.1.2.3\n port 443\n}\n");
	CHECK(c);
	if (c)
		CHECK_STR(match_name(c, "10.1.2.3", 443), "wide");
	config_free(c);
}

static void test_host_names(void)
{
	struct al_config *c = parse(
		"resource local {\n  address localhost 192.0.2.1\n  port 8080\n}\n");
	const struct al_resource *r;
	struct al_addr lo = addr("127.0.0.1");
	size_t i;
	int has_lo = 0;

	CHECK(c);
	if (!c)
		return;
	r = &c->resources[0];
	CHECK(r->n_hosts == 1);
	if (r->n_hosts == 1)
		CHECK_STR(r->hosts[0], "localhost");
	CHECK(r->n_nets >= 2);
	for (i = 0; i < r->n_nets; i++) {
		CHECK(r->nets[i].prefix == 128);
		if (memcmp(&r->nets[i].addr, &lo, sizeof(lo)) == 0)
			has_lo = 1;
	}
	CHECK(has_lo);
	CHECK_STR(match_name(c, "127.0.0.1", 8080), "local");
	CHECK_STR(match_name(c, "192.0.2.1", 8080), "local");
	CHECK_STR(match_name(c, "127.0.0.1", 8081), "(none)");
	config_free(c);

	/* RFC 6761 guarantees .invalid never resolves */
	CHECK(fails_with("resource r {\n port 1\n address ::1 no-such-host.invalid\n}\n",
			 "t:3: cannot resolve host 'no-such-host.invalid': "));
	/* ... and the error after a successful lookup frees what the lookup added */
	CHECK(fails_with("resource r {\n address localhost\n port 1\n}\nbogus\n",
			 "t:5: unknown directive 'bogus'"));
}

/* Error paths late in a file, after resources, host names and settings are allocated:
 * LeakSanitizer fails the run if any of them is not freed. */
static void test_no_leaks_on_error(void)
{
	static const char *const tails[] = {
		"resource late {\n address ::1\n port 0\n}\n",
		"resource late {\n address localhost\n port 1\n",
		"resource late {\n address localhost 10.0.0.1/8\n port 1\n}\n",
		"store \"/unterminated\n",
		"resource first {\n address ::2\n port 2\n}\n",
		"control_socket /second/time\n",
		"resource late {\n address ::1\n port 1\n protocol udp\n}\n",
	};
	const char *head =
		"control_socket /a/b.sock\nstore /a/b.db\npin_root /sys/fs/bpf/q\n"
		"resource first {\n address localhost 10.0.0.0/8 ::/0\n port 1 2 3\n}\n";
	char text[1024];
	size_t i;

	for (i = 0; i < AL_ARRAY_LEN(tails); i++) {
		if (al_fmt(text, sizeof(text), "%s%s", head, tails[i]) < 0) {
			CHECK(0);
			continue;
		}
		CHECK(fails_with(text, "t:"));
	}
}

static void test_load_file(void)
{
	char dir[] = "/tmp/airlock-test-config-XXXXXX";
	char path[256], sub[256], nul[256], want[512];
	struct al_config *c = NULL;
	static const char body[] = "steer_port 7800\n\nresource x {\n address ::1\n port 1\n}\n";
	static const char bad[] = "steer_port 7800\nmax_sessions 0\n";
	FILE *f;

	if (!mkdtemp(dir)) {
		printf("#   mkdtemp: %s\n", strerror(errno));
		CHECK(0);
		return;
	}
	if (al_fmt(path, sizeof(path), "%s/airlock.conf", dir) < 0 ||
	    al_fmt(sub, sizeof(sub), "%s/sub", dir) < 0 ||
	    al_fmt(nul, sizeof(nul), "%s/nul.conf", dir) < 0) {
		CHECK(0);
		goto out;
	}

	f = fopen(path, "w");
	CHECK(f && fwrite(body, 1, sizeof(body) - 1, f) == sizeof(body) - 1);
	if (f)
		fclose(f);
	CHECK(config_load_file(path, &c, errbuf, sizeof(errbuf)) == 0);
	if (c) {
		CHECK_STR(c->source, path);
		CHECK(c->steer_port == 7800 && c->n_resources == 1);
		config_free(c);
		c = NULL;
	}

	f = fopen(path, "w");
	CHECK(f && fwrite(bad, 1, sizeof(bad) - 1, f) == sizeof(bad) - 1);
	if (f)
		fclose(f);
	CHECK(config_load_file(path, &c, errbuf, sizeof(errbuf)) == -1 && c == NULL);
	CHECK(al_fmt(want, sizeof(want), "%s:2: max_sessions: '0' is not a number in 1..1048576",
		     path) == 0);
	CHECK_STR(errbuf, want);

	f = fopen(nul, "w");
	CHECK(f && fwrite("steer_port 1\n\0x\n", 1, 16, f) == 16);
	if (f)
		fclose(f);
	CHECK(config_load_file(nul, &c, errbuf, sizeof(errbuf)) == -1 && c == NULL);
	CHECK(al_fmt(want, sizeof(want), "%s: contains a NUL byte", nul) == 0);
	CHECK_STR(errbuf, want);

	f = fopen(nul, "w");
	if (f)
		fclose(f);
	CHECK(config_load_file(nul, &c, errbuf, sizeof(errbuf)) == 0);
	if (c)
		check_defaults(c);
	config_free(c);
	c = NULL;

	CHECK(al_fmt(want, sizeof(want), "%s/missing.conf", dir) == 0);
	CHECK(config_load_file(want, &c, errbuf, sizeof(errbuf)) == -1 && c == NULL);
	CHECK(strstr(errbuf, "/missing.conf: cannot read: No such file or directory") != NULL);
	CHECK(strncmp(errbuf, dir, strlen(dir)) == 0);

	CHECK(mkdir(sub, 0700) == 0);
	CHECK(config_load_file(sub, &c, errbuf, sizeof(errbuf)) == -1 && c == NULL);
	CHECK(al_fmt(want, sizeof(want), "%s: cannot read: Is a directory", sub) == 0);
	CHECK_STR(errbuf, want);
out:
	unlink(path);
	unlink(nul);
	rmdir(sub);
	CHECK(rmdir(dir) == 0);
}

static void test_proto_name(void)
{
	CHECK_STR(config_proto_name(AL_PROTO_TCP), "tcp");
	CHECK_STR(config_proto_name((enum al_proto)42), "unknown");
}

static void test_resolvers(void)
{
	struct al_config *c = parse("resolver 10.0.0.2 2001:db8::53\nresolver 127.0.0.53\n");
	struct al_addr want, got[4];
	char path[] = "/tmp/airlock-resolv-XXXXXX";
	int fd, n;

	CHECK(c && c->resolvers_set && c->n_resolvers == 3);
	if (c) {
		CHECK(al_addr_parse(&want, "2001:db8::53") == 0);
		CHECK(memcmp(&c->resolvers[1], &want, sizeof(want)) == 0);
		config_free(c);
	}
	c = parse("steer_port 7700\n");
	CHECK(c && !c->resolvers_set && c->n_resolvers == 0);
	config_free(c);
	CHECK_STR(perr("resolver dns.example\n"), "t:1: resolver: 'dns.example' is not an IP address");
	CHECK_STR(perr("resolver\n"), "t:1: resolver: missing argument");

	/* resolv.conf: nameserver lines only, zones dropped, junk skipped. */
	fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	dprintf(fd, "# comment\nsearch example\nnameserver 192.0.2.53\nnameserver fe80::1%%eth0\n"
		    "nameserver not-an-ip\noptions ndots:2\n");
	close(fd);
	n = config_system_resolvers(path, got, 4);
	CHECK(n == 2);
	CHECK(al_addr_parse(&want, "192.0.2.53") == 0 && memcmp(&got[0], &want, sizeof(want)) == 0);
	CHECK(al_addr_parse(&want, "fe80::1") == 0 && memcmp(&got[1], &want, sizeof(want)) == 0);
	CHECK(config_system_resolvers(path, got, 1) == 1);
	unlink(path);
	CHECK(config_system_resolvers("/nonexistent/resolv.conf", got, 4) == -1);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void test_include(void)
{
	char dir[] = "/tmp/airlock-test-include-XXXXXX", a[128], b[128], main_text[256], cmd[160];
	struct al_config *c = NULL;

	if (!mkdtemp(dir)) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(a, sizeof(a), "%s/10-a.conf", dir);
	snprintf(b, sizeof(b), "%s/20-b.conf", dir);
	write_file(a, "resource a {\n address 10.0.0.1\n port 1\n}\n");
	write_file(b, "resource b {\n address 10.0.0.2\n port 2\n}\n");
	snprintf(main_text, sizeof(main_text), "steer_port 7000\ninclude \"%s/*.conf\"\n", dir);
	c = parse(main_text);
	CHECK(c && c->n_resources == 2);
	if (c) {
		CHECK_STR(c->resources[0].name, "a");
		CHECK_STR(c->resources[1].name, "b");
		config_free(c);
	}
	/* An error in an included file names that file and its line. */
	write_file(b, "resource b {\n address 10.0.0.2\n bogus 1\n}\n");
	{
		char want[256];

		snprintf(want, sizeof(want), "%s:3: unknown directive 'bogus' in resource 'b'", b);
		CHECK_STR(perr(main_text), want);
	}
	/* Nothing matching is fine: an empty policy.d. */
	snprintf(main_text, sizeof(main_text), "include \"%s/none-*.conf\"\n", dir);
	c = parse(main_text);
	CHECK(c && c->n_resources == 0);
	config_free(c);
	CHECK_STR(perr("include relative/*.conf\n"), "t:1: include: 'relative/*.conf' is not an absolute path");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

static void test_rules(void)
{
	struct al_config *c = parse("resource db {\n address 10.0.0.1\n port 5432\n protocol postgres\n"
				    " credential x\n rule deny kind ddl\n"
				    " rule review kind delete update approvers dba,oncall count 2 timeout 30s max_grant 15m\n"
				    " rule allow cgroup \"/agents/*\" uid 1000 exe \"/usr/bin/*\"\n}\n");
	const struct al_rule *r;

	CHECK(c && c->n_resources == 1 && c->resources[0].n_rules == 3);
	if (!c || c->resources[0].n_rules != 3)
		goto out;
	r = &c->resources[0].rules[1];
	CHECK(r->allow == AL_ACTION_REVIEW && r->approvals == 2 && r->review_timeout_ms == 30000 &&
	      r->max_grant_s == 900 && r->n_approvers == 2);
	CHECK_STR(r->approvers[1], "oncall");
	r = &c->resources[0].rules[2];
	CHECK(r->allow == AL_ACTION_ALLOW && r->uid == 1000);
	CHECK(config_rule_identity_matches(r, "/agents/a1", 1000, "/usr/bin/python3"));
	CHECK(!config_rule_identity_matches(r, "/agents/a1", 1001, "/usr/bin/python3"));
	CHECK(!config_rule_identity_matches(r, "/other", 1000, "/usr/bin/python3"));
	/* What could not be read for the agent does not meet an allow rule's condition... */
	CHECK(!config_rule_identity_matches(r, "/agents/a1", 1000, NULL));
	CHECK(!config_rule_identity_matches(r, NULL, 1000, "/usr/bin/python3"));
	CHECK(!config_rule_identity_matches(r, "/agents/a1", -1, "/usr/bin/python3"));
	{
		/* An agent behind a pinned interface has no uid: "uid 0" is not it (it was read as 0,
		 * root's), a deny or review rule with a uid holds for it, an allow rule's does not. */
		struct al_config *d = parse("resource db {\n address 10.0.0.1\n port 5432\n protocol postgres\n"
					    " credential x\n rule allow kind ddl uid 0\n"
					    " rule review kind ddl uid 1000 approvers dba\n rule deny\n}\n");
		struct al_subject subj = { .kind = PG_KIND_DDL, .uid = -1 };

		CHECK(d && d->resources[0].n_rules == 3);
		if (d && d->resources[0].n_rules == 3) {
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[1]);
			subj.uid = 0;
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[0]);
		}
		config_free(d);
	}
	{
		/* ...and does meet a deny or review rule's: an unknown exe does not slip past them. */
		struct al_config *d = parse("resource db {\n address 10.0.0.1\n port 5432\n protocol postgres\n"
					    " credential x\n rule deny kind ddl exe \"/usr/bin/python3*\"\n"
					    " rule review cgroup \"/agents/*\" approvers dba\n rule allow\n}\n");
		struct al_subject subj = { .kind = PG_KIND_DDL, .cgroup_path = "/agents/a1", .uid = 5 };

		CHECK(d && d->resources[0].n_rules == 3);
		if (d && d->resources[0].n_rules == 3) {
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[0]);
			subj.exe = "/usr/bin/psql";
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[1]);
			subj.cgroup_path = NULL;
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[1]);
			subj.cgroup_path = "/other";
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[2]);
		}
		config_free(d);
	}
	{
		const char *rels[] = { "public.t" };
		struct al_subject subj = { .kind = 2 /* update */, .relations = rels, .n_relations = 1,
					   .cgroup_path = "/x", .uid = 5, .exe = "/bin/sh" };

		CHECK(config_decide(&c->resources[0], &subj) == &c->resources[0].rules[1]);
		subj.kind = 0; /* read: no rule */
		CHECK(config_decide(&c->resources[0], &subj) == NULL);
	}
	{
		/* Relation names as PostgreSQL reads them: a deny or review rule meets every table the
		 * statement's name could be (search_path: an unqualified name may be any schema's), an
		 * allow rule only one the name surely is, and only when it covers all of them. */
		static const struct {
			const char *rule, *rels;	/* rule: as the config file writes it; rels: '|'-separated */
			int deny, allow;		/* whether a deny / an allow rule meets them */
		} rc[] = {
			{ "public.payroll", "payroll", 1, 0 },
			{ "public.payroll", "public.payroll", 1, 1 },
			{ "public.payroll", "db.public.payroll", 1, 1 },
			{ "public.payroll", "other.payroll", 0, 0 },
			{ "public.payroll", "\"Payroll\"", 1, 0 },
			{ "\"\\\"public\\\".\\\"payroll\\\"\"", "payroll", 1, 0 },
			{ "Public.Payroll", "public.payroll", 1, 1 },
			{ "db.public.payroll", "public.payroll", 1, 0 },
			{ "payroll", "other.payroll", 1, 1 },
			{ "payroll", "\"Payroll\"", 1, 0 },
			{ "payroll", "payroll2", 0, 0 },
			{ "\"\\\"Payroll\\\"\"", "\"Payroll\"", 1, 1 },
			{ "\"\\\"Payroll\\\"\"", "payroll", 1, 0 },
			{ "\"\\\"My Table\\\"\"", "\"My Table\"", 1, 1 },
			{ "\"My Table\"", "\"My Table\"", 1, 0 },
			{ "\"s.\\\"a.b\\\"\"", "s.\"a.b\"", 1, 1 },
			{ "\"s.\\\"a.b\\\"\"", "a.b", 0, 0 },
			{ "t", "t|u", 1, 0 },
			{ "t", "u|public.t", 1, 0 },
			{ "t", "", 0, 0 },
			{ "t", "*", 1, 0 },
		};

		for (size_t i = 0; i < AL_ARRAY_LEN(rc); i++) {
			for (int deny = 0; deny < 2; deny++) {
				char conf[512], rels_buf[256], *save = NULL;
				const char *rels[8];
				struct al_subject subj = { .kind = PG_KIND_READ, .relations = rels };
				struct al_config *d;
				int want = deny ? rc[i].deny : rc[i].allow;

				snprintf(conf, sizeof(conf), "resource db {\n address 10.0.0.1\n port 5432\n protocol postgres\n"
					 " credential x\n rule %s relation %s\n}\n", deny ? "deny" : "allow", rc[i].rule);
				snprintf(rels_buf, sizeof(rels_buf), "%s", rc[i].rels);
				for (char *t = strtok_r(rels_buf, "|", &save); t && subj.n_relations < 8; t = strtok_r(NULL, "|", &save))
					rels[subj.n_relations++] = t;
				d = parse(conf);
				CHECK(d && d->resources[0].n_rules == 1);
				if (d && d->resources[0].n_rules == 1 &&
				    (config_decide(&d->resources[0], &subj) != NULL) != want) {
					printf("#   rule %s relation %s, statement [%s]: %s\n", deny ? "deny" : "allow", rc[i].rule,
					       rc[i].rels, want ? "not met" : "met");
					CHECK(0);
				}
				config_free(d);
			}
		}
		/* two relations in one rule cover a statement naming both */
		{
			struct al_config *d = parse("resource db {\n address 10.0.0.1\n port 5432\n protocol postgres\n"
						    " credential x\n rule allow relation t u\n}\n");
			const char *rels[] = { "u", "public.t" };
			struct al_subject subj = { .kind = PG_KIND_READ, .relations = rels, .n_relations = 2 };

			CHECK(d && config_decide(&d->resources[0], &subj) == &d->resources[0].rules[0]);
			config_free(d);
		}
	}
	{
		/* A statement of several kinds meets a deny or review rule naming any of them, an
		 * allow rule only when it names them all. */
		struct al_config *d = parse("resource db {\n address 10.0.0.1\n port 5432\n protocol postgres\n"
					    " credential x\n rule allow kind read insert\n rule review kind update delete\n"
					    " rule deny kind insert\n}\n");
		struct al_subject subj = { .kind = PG_KIND_INSERT,
					   .kinds = 1u << PG_KIND_INSERT | 1u << PG_KIND_UPDATE };

		CHECK(d && d->resources[0].n_rules == 3);
		if (d && d->resources[0].n_rules == 3) {
			/* INSERT ... ON CONFLICT DO UPDATE */
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[1]);
			/* a plain INSERT, and one without kinds (kind alone) */
			subj.kinds = 1u << PG_KIND_INSERT;
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[0]);
			subj.kinds = 0;
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[0]);
			/* MERGE ... WHEN MATCHED THEN DELETE */
			subj.kind = PG_KIND_MERGE;
			subj.kinds = 1u << PG_KIND_MERGE | 1u << PG_KIND_DELETE;
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[1]);
			/* COPY FROM STDIN */
			subj.kind = PG_KIND_COPY;
			subj.kinds = 1u << PG_KIND_COPY | 1u << PG_KIND_INSERT;
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[2]);
			subj.kinds = 1u << PG_KIND_COPY;
			CHECK(config_decide(&d->resources[0], &subj) == NULL);
		}
		config_free(d);
	}
	{
		/* "*": relations a statement names by text (query_to_xml, table_to_xml): any table for
		 * a deny or review rule on a relation, none an allow rule's */
		struct al_config *d = parse("resource db {\n address 10.0.0.1\n port 5432\n protocol postgres\n"
					    " credential x\n rule allow relation t\n rule deny relation secrets\n}\n");
		const char *rels[] = { "t", "*" };
		struct al_subject subj = { .kind = PG_KIND_READ, .relations = rels, .n_relations = 2 };

		CHECK(d && d->resources[0].n_rules == 2);
		if (d && d->resources[0].n_rules == 2) {
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[1]);
			subj.relations = rels + 1;
			subj.n_relations = 1;
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[1]);
			subj.relations = rels;
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[0]);
		}
		config_free(d);
	}
	{
		/* fingerprint F...: any of these statement shapes (airlockctl classify pg prints them) */
		struct al_config *d = parse("resource db {\n address 10.0.0.1\n port 5432\n protocol postgres\n"
					    " credential x\n rule allow fingerprint 2065f808c67a8c1f 0123456789abcdef\n"
					    " rule review kind delete\n}\n");
		struct al_subject subj = { .kind = PG_KIND_DELETE, .fingerprint = "2065f808c67a8c1f" };

		CHECK(d && d->resources[0].n_rules == 2 && d->resources[0].rules[0].n_fingerprints == 2);
		if (d && d->resources[0].n_rules == 2) {
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[0]);
			subj.fingerprint = "2065f808c67a8c1e";
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[1]);
			subj.fingerprint = NULL;
			CHECK(config_decide(&d->resources[0], &subj) == &d->resources[0].rules[1]);
		}
		config_free(d);
	}
out:
	config_free(c);
	CHECK_STR(perr("resource db {\n address 10.0.0.1\n port 1\n protocol postgres\n credential x\n"
		       " rule deny fingerprint 2065F808C67A8C1F\n}\n"),
		  "t:6: rule: fingerprint '2065F808C67A8C1F' is not 16 lower-case hex digits (see `airlockctl classify pg`)");
	CHECK_STR(perr("resource db {\n address 10.0.0.1\n port 1\n protocol postgres\n credential x\n"
		       " rule deny fingerprint\n}\n"), "t:6: rule: 'fingerprint' needs at least one");
	CHECK_STR(perr("resource db {\n address 10.0.0.1\n port 1\n protocol postgres\n credential x\n"
		       " rule allow count 2\n}\n"), "t:6: rule: approvers, count and max_grant go with review");
	CHECK_STR(perr("resource db {\n address 10.0.0.1\n port 1\n protocol postgres\n credential x\n"
		       " rule review timeout forever\n}\n"), "t:6: rule: bad value 'forever' for timeout");
}

/* A statement decided as the proxy decides it (config_decide_stmt) from an agent of uid 1000:
 * the text of the rule, "" for none. */
static const char *decided_by(const struct al_resource *res, const char *sql)
{
	static const struct al_subject who = { .cgroup_path = "/agents/a", .uid = 1000, .exe = "/usr/bin/psql" };
	struct pg_stmt_list l;
	char err[256];
	const struct al_rule *r = NULL;

	if (pg_classify(sql, &l, err, sizeof(err)) || l.n != 1) {
		printf("#   %s: %s\n", sql, err);
		pg_stmt_list_free(&l);
		return "(not one statement)";
	}
	r = config_decide_stmt(res, &l.stmts[0], &who);
	pg_stmt_list_free(&l);
	return r ? r->text : "";
}

/* config_decide_stmt, the proxy's and policy test's decision: every kind a statement is, the
 * agent's identity, and the built-in refusal of a setting that changes how SQL is read. */
static void test_decide_stmt(void)
{
	static const struct {
		const char *sql, *rule;
	} c[] = {
		{ "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = 2", "rule review kind update" },
		{ "INSERT INTO t VALUES (1)", "rule allow kind read insert" },
		{ "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "rule deny kind delete uid 1000" },
		{ "SELECT set_config('application_name', 'x', false)", "rule allow kind read utility" },
		{ "SELECT set_config('role', 'x', false)", "rule deny kind dcl" },
		{ "SET client_encoding = 'SJIS'", "built in: standard_conforming_strings, client_encoding and "
						  "backslash_quote stay as they are" },
		{ "SELECT set_config('standard_conforming_strings', 'off', false)",
		  "built in: standard_conforming_strings, client_encoding and backslash_quote stay as they are" },
		{ "SET client_encoding = 'UTF8'", "rule allow kind read utility" },
	};
	struct al_config *d = parse("resource db {\n address 10.0.0.1\n port 5432\n protocol postgres\n"
				    " credential x\n rule deny kind delete uid 1000\n rule deny kind dcl\n"
				    " rule allow kind read insert\n rule allow kind read utility\n"
				    " rule review kind update\n rule allow\n}\n");

	CHECK(d && d->resources[0].n_rules == 6);
	for (size_t i = 0; d && d->resources[0].n_rules == 6 && i < AL_ARRAY_LEN(c); i++) {
		const char *got = decided_by(&d->resources[0], c[i].sql);

		if (strcmp(got, c[i].rule)) {
			printf("#   %s: decided by '%s', want '%s'\n", c[i].sql, got, c[i].rule);
			CHECK(0);
		}
	}
	config_free(d);
}

/* nextval and setval write the sequence: an allow rule for reads does not cover them, a rule on
 * the sequence meets them however the statement names it, and one it cannot name ("*"). */
static void test_sequence_rules(void)
{
	static const struct {
		const char *sql, *rule;
	} c[] = {
		{ "SELECT currval('s'), lastval()", "rule allow kind read" },
		{ "SELECT setval('s', 1)", "rule review kind update relation public.s" },
		{ "SELECT setval('public.s', 1, false)", "rule review kind update relation public.s" },
		{ "SELECT nextval('S'::regclass)", "rule review kind update relation public.s" },
		{ "SELECT nextval(16384)", "rule review kind update relation public.s" },
		{ "SELECT * FROM t WHERE id = nextval('other')", "rule deny kind update" },
		{ "INSERT INTO t VALUES (nextval('other'))", "rule deny kind update" },
		{ "INSERT INTO t DEFAULT VALUES", "rule allow kind read insert relation t" },
	};
	struct al_config *d = parse("resource db {\n address 10.0.0.1\n port 5432\n protocol postgres\n"
				    " credential x\n rule allow kind read\n rule allow kind read insert relation t\n"
				    " rule review kind update relation public.s\n rule deny kind update\n}\n");

	CHECK(d && d->resources[0].n_rules == 4);
	for (size_t i = 0; d && d->resources[0].n_rules == 4 && i < AL_ARRAY_LEN(c); i++) {
		const char *got = decided_by(&d->resources[0], c[i].sql);

		if (strcmp(got, c[i].rule)) {
			printf("#   %s: decided by '%s', want '%s'\n", c[i].sql, got, c[i].rule);
			CHECK(0);
		}
	}
	config_free(d);
}

/* The upstream login methods a postgres resource answers with its password. */
static void test_upstream_auth(void)
{
	static const struct {
		const char *lines;
		unsigned want;
	} cases[] = {
		{ "", AL_UPSTREAM_AUTH_SCRAM },
		{ " upstream_tls require\n", AL_UPSTREAM_AUTH_SCRAM },
		{ " upstream_tls verify-full\n",
		  AL_UPSTREAM_AUTH_SCRAM | AL_UPSTREAM_AUTH_MD5 | AL_UPSTREAM_AUTH_PASSWORD },
		{ " upstream_auth scram-sha-256 md5\n", AL_UPSTREAM_AUTH_SCRAM | AL_UPSTREAM_AUTH_MD5 },
		{ " upstream_auth password\n", AL_UPSTREAM_AUTH_PASSWORD },
		{ " upstream_tls verify-full\n upstream_auth scram-sha-256\n", AL_UPSTREAM_AUTH_SCRAM },
	};
	char conf[512];

	for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
		struct al_config *c;

		snprintf(conf, sizeof(conf), "resource db {\n address 10.0.0.1\n port 5432\n protocol postgres\n"
			 " credential pg\n%s}\n", cases[i].lines);
		c = parse(conf);
		CHECK(c != NULL);
		if (!c)
			continue;
		if (c->resources[0].upstream_auth != cases[i].want)
			printf("#   case %zu: %u, want %u\n", i, c->resources[0].upstream_auth, cases[i].want);
		CHECK(c->resources[0].upstream_auth == cases[i].want);
		config_free(c);
	}
	CHECK_STR(perr("resource db {\n address ::1\n port 1\n protocol postgres\n credential pg\n"
		       " upstream_auth md4\n}\n"), "t:6: upstream_auth: 'md4' (valid: scram-sha-256, md5, password)");
	CHECK_STR(perr("resource a {\n address ::1\n port 1\n protocol https\n upstream_auth md5\n}\n"),
		  "t:1: resource 'a': upstream_auth is for postgres resources");
}

static void test_https_resource(void)
{
	struct al_config *c = parse("http_max_body 64k\n"
				    "resource api {\n address 127.0.0.9\n port 443\n protocol https\n"
				    " host api.example *.svc.example\n credential apitoken\n"
				    " rule deny path /admin/* /internal\n"
				    " rule review method DELETE PUT\n"
				    " rule review exec approvers ops\n"
				    " rule allow method GET HEAD uid 1000\n}\n");
	struct al_subject s = { .uid = 1000, .method = "GET", .path = "/admin/x/y" };
	const struct al_resource *r;

	CHECK(c != NULL);
	if (!c)
		return;
	r = &c->resources[0];
	CHECK(c->http_max_body == 64 * 1024 && r->proto == AL_PROTO_HTTPS && r->n_sni == 2);
	CHECK(r->upstream_tls == AL_UPSTREAM_TLS_VERIFY_FULL);
	CHECK(config_decide(r, &s) == &r->rules[0]);
	s.path = "/v1/items";
	CHECK(config_decide(r, &s) == &r->rules[3]);
	s.method = "DELETE";
	CHECK(config_decide(r, &s) == &r->rules[1]);
	s.method = "POST";
	CHECK(config_decide(r, &s) == NULL);
	s.k8s_exec = 1;
	CHECK(config_decide(r, &s) == &r->rules[2]);
	config_free(c);
	CHECK_STR(perr("resource a {\n address ::1\n port 1\n protocol https\n rule deny kind ddl\n}\n"),
		  "t:5: rule: kind, relation, fingerprint and unbounded_write are for postgres resources (https: method, path, exec)");
	CHECK_STR(perr("resource a {\n address ::1\n port 1\n protocol https\n upstream_tls disable\n}\n"),
		  "t:5: resource 'a': https goes upstream over TLS (upstream_tls require or verify-full)");
	CHECK_STR(perr("resource a {\n address ::1\n port 1\n host a.b\n}\n"),
		  "t:1: resource 'a': host needs protocol https");
	CHECK_STR(perr("resource a {\n address ::1\n port 1\n protocol https\n rule deny method get\n}\n"),
		  "t:5: rule: method 'get' is not an upper-case HTTP method");
}

/*
 * A request that may run as another method than its own (its overrides) meets the strictest
 * rule of them all; one that may run as any method (AL_METHOD_ANY: a POST whose body may name
 * one Airlock could not read) meets the strictest rule any method meets, whatever the order.
 */
static void test_method_overrides(void)
{
	struct al_config *c = parse("resource api {\n address 127.0.0.9\n port 443\n protocol https\n"
				    " rule allow method GET HEAD\n"
				    " rule review method DELETE\n"
				    " rule deny method PURGE path /cache/*\n"
				    " rule allow path /upload/*\n"
				    " rule allow method POST\n}\n");
	struct al_subject s = { .method = "POST", .path = "/items/1" };
	const char *del[] = { "DELETE" }, *get_put[] = { "GET", "PUT" }, *any[] = { AL_METHOD_ANY };
	const struct al_resource *r;

	CHECK(c != NULL);
	if (!c)
		return;
	r = &c->resources[0];
	CHECK(config_decide(r, &s) == &r->rules[4]);
	CHECK(config_decide_methods(r, &s, del, 1) == &r->rules[1]);
	/* among equals, the request's own method's rule */
	CHECK(config_decide_methods(r, &s, get_put, 2) == &r->rules[4]);
	/* as any method: DELETE's review; at /cache/ PURGE's deny */
	CHECK(config_decide_methods(r, &s, any, 1) == &r->rules[1]);
	s.method = AL_METHOD_ANY;
	CHECK(config_decide(r, &s) == &r->rules[1]);
	s.path = "/cache/x";
	CHECK(config_decide(r, &s) == &r->rules[2]);
	/* DELETE's rule comes before the one for /upload/ */
	s.path = "/upload/x";
	CHECK(config_decide(r, &s) == &r->rules[1]);
	config_free(c);
	/* a rule without methods that comes first decides every method */
	c = parse("resource api {\n address 127.0.0.9\n port 443\n protocol https\n"
		  " rule allow path /upload/*\n rule review method DELETE\n}\n");
	CHECK(c != NULL);
	if (!c)
		return;
	s.method = AL_METHOD_ANY;
	CHECK(config_decide(&c->resources[0], &s) == &c->resources[0].rules[0]);
	s.path = "/other";
	CHECK(config_decide(&c->resources[0], &s) == &c->resources[0].rules[1]);
	config_free(c);
}

static void test_console_settings(void)
{
	struct al_config *c = parse("");
	char a[64];

	CHECK(c && c->console_enabled && c->console_port == 8077 && !c->console_tls &&
	      c->console_idle_s == 1800 && c->console_session_max_s == 12 * 3600);
	if (c) {
		al_addr_str(&c->console_addr, a, sizeof(a));
		CHECK_STR(a, "127.0.0.1");
		config_free(c);
	}
	c = parse("console_listen [::1]:9443\nconsole_tls on\n"
		  "console_cert /etc/c.pem\nconsole_key /etc/k.pem\n");
	CHECK(c && c->console_enabled && c->console_port == 9443 && c->console_tls);
	if (c) {
		al_addr_str(&c->console_addr, a, sizeof(a));
		CHECK_STR(a, "::1");
		CHECK_STR(c->console_cert, "/etc/c.pem");
		CHECK_STR(c->console_key, "/etc/k.pem");
		config_free(c);
	}
	c = parse("console_listen off\n");
	CHECK(c && !c->console_enabled);
	config_free(c);
	CHECK(fails_with("console_listen 127.0.0.1\n", "t:1: console_listen: '127.0.0.1' is not ADDR:PORT"));
	CHECK(fails_with("console_listen localhost:80\n", "t:1: console_listen: 'localhost' is not an IP"));
	CHECK(fails_with("console_listen 127.0.0.1:0\n", "t:1: console_listen: '0' is not a port"));
	CHECK(fails_with("console_tls yes\n", "t:1: console_tls: 'yes' is neither on nor off"));
	CHECK(fails_with("console_cert c.pem\n", "t:1: console_cert: 'c.pem' is not an absolute path"));
	CHECK(fails_with("console_cert /c.pem\n", "t:1: console_cert and console_key go together"));
	c = parse("console_idle_timeout 90s\nconsole_session_max 2h\n");
	CHECK(c && c->console_idle_s == 90 && c->console_session_max_s == 7200);
	config_free(c);
	CHECK(fails_with("console_idle_timeout 0s\n", "t:1: console_idle_timeout: '0s' is not a duration from 1s to 24h"));
	CHECK(fails_with("console_idle_timeout 25h\n", "t:1: console_idle_timeout: '25h' is not a duration"));
	CHECK(fails_with("console_session_max 8d\n", "t:1: console_session_max: '8d' is not a duration from 1s to 168h"));
	c = parse("console_listen 127.0.0.1:8077\n");
	CHECK(c && c->console_head_s == 10);
	config_free(c);
	c = parse("console_head_timeout 3s\n");
	CHECK(c && c->console_head_s == 3 && c->console_idle_s == 30 * 60);
	config_free(c);
	CHECK(fails_with("console_head_timeout 11m\n", "t:1: console_head_timeout: '11m' is not a duration from 1s to 10m"));
}

/* The examples README points to parse as shipped (run from the repository root). */
static void test_policy_examples(void)
{
	static const char *const files[] = { "policy/examples/postgres.conf", "policy/examples/https.conf" };

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct al_config *c = NULL;
		char err[512] = "";

		if (config_load_file(files[i], &c, err, sizeof(err)) != 0)
			fprintf(stderr, "# %s: %s\n", files[i], err);
		CHECK(c != NULL && c->n_resources >= 1 && c->resources[0].n_rules >= 1);
		config_free(c);
	}
}

int main(void)
{
	RUN(test_embedded_default);
	RUN(test_policy_examples);
	RUN(test_empty_and_comments_only);
	RUN(test_all_settings);
	RUN(test_steer_port);
	RUN(test_paths);
	RUN(test_pin_root);
	RUN(test_default_action);
	RUN(test_connect_timeout);
	RUN(test_commit_interval);
	RUN(test_max_sessions);
	RUN(test_http_response_timeout);
	RUN(test_pg_login_timeout);
	RUN(test_sessions_per_agent);
	RUN(test_relay_buffer);
	RUN(test_unknown_and_stray);
	RUN(test_error_format_and_source);
	RUN(test_resource);
	RUN(test_resource_errors);
	RUN(test_unterminated);
	RUN(test_strings);
	RUN(test_comments_and_layout);
	RUN(test_cidr_v4);
	RUN(test_cidr_v6);
	RUN(test_cidr_contains);
	RUN(test_address_errors);
	RUN(test_first_match);
	RUN(test_host_names);
	RUN(test_no_leaks_on_error);
	RUN(test_load_file);
	RUN(test_proto_name);
	RUN(test_resolvers);
	RUN(test_include);
	RUN(test_rules);
	RUN(test_sequence_rules);
	RUN(test_decide_stmt);
	RUN(test_upstream_auth);
	RUN(test_https_resource);
	RUN(test_method_overrides);
	RUN(test_console_settings);
	TEST_EXIT();
}
