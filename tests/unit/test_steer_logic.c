/* Host tests of the pure helpers the steering programs decide with (bpf/lib/steer.h). */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "harness.h"
#include "lib/steer.h"

static struct al_addr v4(const char *s)
{
	struct al_addr a;
	struct in_addr in;

	inet_pton(AF_INET, s, &in);
	al_addr_from_v4(&a, in.s_addr);
	return a;
}

static struct al_addr v6(const char *s)
{
	struct al_addr a;

	inet_pton(AF_INET6, s, a.w);
	return a;
}

static void test_port_conversions(void)
{
	/* connect hooks: network order in the low 16 bits of a u32 */
	CHECK(al_ctx_port((__u32)htons(5432)) == 5432);
	CHECK(al_ctx_port_make(5432) == (__u32)htons(5432));
	CHECK(al_ctx_port(al_ctx_port_make(1)) == 1);
	CHECK(al_ctx_port(al_ctx_port_make(65535)) == 65535);
	/* sockops remote_port: network order in a u32 */
	CHECK(al_sockops_remote_port(htonl(8080)) == 8080);
}

static void test_v4mapped_form(void)
{
	struct al_addr a = v4("10.1.2.3"), b = v6("::ffff:10.1.2.3"), c = v6("2001:db8::1");

	CHECK(al_addr_is_v4mapped(&a));
	CHECK(al_addr_eq(&a, &b));
	CHECK(!al_addr_is_v4mapped(&c));
	CHECK(!al_addr_eq(&a, &c));
	a = v6("::1");
	CHECK(al_addr_is_v6_loopback(&a));
	CHECK(!al_addr_is_v4mapped(&a));
	a = v6("::");
	CHECK(!al_addr_is_v6_loopback(&a));
}

static void test_steer_target(void)
{
	struct al_addr lo4 = v4("127.0.0.1"), lo6 = v6("::1"), m = v6("::ffff:127.0.0.1");
	struct al_addr other = v4("127.0.0.2");

	CHECK(al_is_steer_target(&lo4, 7700, 7700));
	CHECK(al_is_steer_target(&lo6, 7700, 7700));
	CHECK(al_is_steer_target(&m, 7700, 7700));
	CHECK(!al_is_steer_target(&lo4, 7701, 7700));
	CHECK(!al_is_steer_target(&other, 7700, 7700));
}

static void test_connect_verdicts(void)
{
	struct al_addr dst = v4("192.0.2.10"), lo = v4("127.0.0.1"), d6 = v6("2001:db8::5");
	struct al_addr mapped = v6("::ffff:192.0.2.10");
	__u32 reason;

	/* Plain TCP anywhere is steered, v4, v6 and v4-mapped alike. */
	CHECK(al_connect_verdict(AL_SOCK_STREAM, AL_IPPROTO_TCP, &dst, 443, 7700, 0, &reason) == AL_STEER);
	CHECK(reason == AL_REASON_STEERED);
	CHECK(al_connect_verdict(AL_SOCK_STREAM, 0, &dst, 443, 7700, 0, &reason) == AL_STEER);
	CHECK(al_connect_verdict(AL_SOCK_STREAM, AL_IPPROTO_TCP, &d6, 22, 7700, 0, &reason) == AL_STEER);
	CHECK(al_connect_verdict(AL_SOCK_STREAM, AL_IPPROTO_TCP, &mapped, 5432, 7700, 0, &reason) == AL_STEER);
	/* Loopback services too: an agent's local database is a destination like any other. */
	CHECK(al_connect_verdict(AL_SOCK_STREAM, AL_IPPROTO_TCP, &lo, 5432, 7700, 0, &reason) == AL_STEER);

	/* Dialling the steer port directly is refused with its own reason. */
	CHECK(al_connect_verdict(AL_SOCK_STREAM, AL_IPPROTO_TCP, &lo, 7700, 7700, 0, &reason) == AL_REFUSE);
	CHECK(reason == AL_REASON_DIRECT_STEER);
	/* Any local way to the steer port counts: 127/8, 0.0.0.0, ::, ::ffff:127.0.0.1. */
	{
		struct al_addr lo2 = v4("127.0.0.9"), any4 = v4("0.0.0.0"), any6 = v6("::"),
			       m = v6("::ffff:127.0.0.1"), not_local = v4("128.0.0.1");

		CHECK(al_connect_verdict(AL_SOCK_STREAM, 0, &lo2, 7700, 7700, 0, &reason) == AL_REFUSE);
		CHECK(al_connect_verdict(AL_SOCK_STREAM, 0, &any4, 7700, 7700, 0, &reason) == AL_REFUSE);
		CHECK(al_connect_verdict(AL_SOCK_STREAM, 0, &any6, 7700, 7700, 0, &reason) == AL_REFUSE);
		CHECK(al_connect_verdict(AL_SOCK_STREAM, 0, &m, 7700, 7700, 0, &reason) == AL_REFUSE);
		CHECK(al_connect_verdict(AL_SOCK_STREAM, 0, &not_local, 7700, 7700, 0, &reason) == AL_STEER);
		/* An already steered socket passes only for the listener itself (nested pins). */
		CHECK(al_connect_verdict(AL_SOCK_STREAM, 0, &lo2, 7700, 7700, 1, &reason) == AL_REFUSE);
	}
	/* ... unless an outer pinned cgroup's program already steered this socket. */
	CHECK(al_connect_verdict(AL_SOCK_STREAM, AL_IPPROTO_TCP, &lo, 7700, 7700, 1, &reason) == AL_KEEP);
	/* A steered socket that connects again elsewhere is steered again. */
	CHECK(al_connect_verdict(AL_SOCK_STREAM, AL_IPPROTO_TCP, &dst, 80, 7700, 1, &reason) == AL_STEER);

	/* Not TCP: left to the fence (UDP, and stream sockets of other protocols). */
	CHECK(al_connect_verdict(AL_SOCK_DGRAM, AL_IPPROTO_UDP, &dst, 53, 7700, 0, &reason) == AL_PASS);
	CHECK(reason == AL_REASON_NONE);
	CHECK(al_connect_verdict(AL_SOCK_STREAM, 132 /* SCTP */, &dst, 80, 7700, 0, &reason) == AL_PASS);
}

static void test_conn_key(void)
{
	struct al_conn_key a, b;
	struct al_addr x = v4("127.0.0.1"), y = v6("::ffff:127.0.0.1");

	memset(&a, 0xaa, sizeof(a));
	memset(&b, 0x55, sizeof(b));
	al_conn_key_make(&a, &x, 40000);
	al_conn_key_make(&b, &y, 40000);
	/* Keys from a v4 socket and a dual-stack v6 socket to 127.0.0.1 are the same bytes. */
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);
	CHECK(sizeof(struct al_conn_key) == 20);
}

int main(void)
{
	RUN(test_port_conversions);
	RUN(test_v4mapped_form);
	RUN(test_steer_target);
	RUN(test_connect_verdicts);
	RUN(test_conn_key);
	TEST_EXIT();
}
