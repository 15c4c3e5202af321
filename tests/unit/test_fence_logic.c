/* Host tests of the fence's pure decision helpers (bpf/lib/fence.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "harness.h"
#include "lib/fence.h"

static struct al_addr v4(const char *s)
{
	struct al_addr a;
	struct in_addr in;

	inet_pton(AF_INET, s, &in);
	al_addr_from_v4(&a, in.s_addr);
	return a;
}

/* The ABI constants must agree with libc's, since BPF cannot include libc. */
static void test_abi_constants(void)
{
	CHECK(AL_AF_INET == AF_INET);
	CHECK(AL_AF_INET6 == AF_INET6);
	CHECK(AL_AF_UNIX == AF_UNIX);
	CHECK(AL_AF_NETLINK == AF_NETLINK);
	CHECK(AL_SOCK_STREAM == SOCK_STREAM);
	CHECK(AL_SOCK_DGRAM == SOCK_DGRAM);
	CHECK(AL_IPPROTO_TCP == IPPROTO_TCP);
	CHECK(AL_IPPROTO_UDP == IPPROTO_UDP);
	CHECK(AL_IPPROTO_ICMP == IPPROTO_ICMP);
	CHECK(AL_IPPROTO_ICMPV6 == IPPROTO_ICMPV6);
}

static void test_sock_create(void)
{
	__u32 r;

	CHECK(al_sock_create_allowed(AF_INET, SOCK_STREAM, 0, &r) && r == AL_REASON_NONE);
	CHECK(al_sock_create_allowed(AF_INET6, SOCK_STREAM, IPPROTO_TCP, &r));
	CHECK(al_sock_create_allowed(AF_INET, SOCK_DGRAM, 0, &r));
	CHECK(al_sock_create_allowed(AF_INET6, SOCK_DGRAM, IPPROTO_UDP, &r));

	CHECK(!al_sock_create_allowed(AF_INET, SOCK_RAW, IPPROTO_ICMP, &r) && r == AL_REASON_SOCK_TYPE);
	CHECK(!al_sock_create_allowed(AF_INET6, SOCK_RAW, IPPROTO_RAW, &r) && r == AL_REASON_SOCK_TYPE);
	/* ICMP echo ("ping") sockets and UDP-Lite are datagram sockets: judged by protocol. */
	CHECK(!al_sock_create_allowed(AF_INET, SOCK_DGRAM, IPPROTO_ICMP, &r) && r == AL_REASON_SOCK_TYPE);
	CHECK(!al_sock_create_allowed(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6, &r));
	CHECK(!al_sock_create_allowed(AF_INET, SOCK_DGRAM, 136 /* UDP-Lite */, &r));
	CHECK(!al_sock_create_allowed(AF_INET, SOCK_STREAM, 132 /* SCTP */, &r));
	CHECK(!al_sock_create_allowed(AF_INET, SOCK_STREAM, 262 /* MPTCP */, &r));
	CHECK(!al_sock_create_allowed(AF_INET, SOCK_SEQPACKET, 0, &r));
	CHECK(!al_sock_create_allowed(AF_PACKET, SOCK_RAW, 0, &r) && r == AL_REASON_SOCK_FAMILY);
	/* The kernel runs the hook for inet families only; others are refused if they ever arrive. */
	CHECK(!al_sock_create_allowed(AF_NETLINK, SOCK_RAW, 0, &r) && r == AL_REASON_SOCK_FAMILY);
	CHECK(!al_sock_create_allowed(AF_UNIX, SOCK_STREAM, 0, &r) && r == AL_REASON_SOCK_FAMILY);
	CHECK(!al_sock_create_allowed(40 /* AF_VSOCK */, SOCK_STREAM, 0, &r) && r == AL_REASON_SOCK_FAMILY);
}

static void test_udp(void)
{
	__u32 r;

	CHECK(al_udp_allowed(53, 1, &r) && r == AL_REASON_NONE);
	CHECK(!al_udp_allowed(53, 0, &r) && r == AL_REASON_DNS_RESOLVER);
	CHECK(!al_udp_allowed(443, 1, &r) && r == AL_REASON_QUIC_DENIED);
	CHECK(!al_udp_allowed(443, 0, &r) && r == AL_REASON_QUIC_DENIED);
	CHECK(!al_udp_allowed(123, 1, &r) && r == AL_REASON_UDP_DENIED);
	CHECK(!al_udp_allowed(5353, 1, &r) && r == AL_REASON_UDP_DENIED);
}

static void test_egress(void)
{
	struct al_addr lo = v4("127.0.0.1"), other = v4("192.0.2.1"), lo6;

	inet_pton(AF_INET6, "::1", lo6.w);
	CHECK(al_egress_allowed(IPPROTO_TCP, &lo, 7700, 7700, 0, 1));
	CHECK(al_egress_allowed(IPPROTO_TCP, &lo6, 7700, 7700, 0, 1));
	CHECK(!al_egress_allowed(IPPROTO_TCP, &lo, 7701, 7700, 0, 1));
	CHECK(!al_egress_allowed(IPPROTO_TCP, &other, 7700, 7700, 0, 1));
	CHECK(al_egress_allowed(IPPROTO_UDP, &other, 53, 7700, 1, 2));
	CHECK(!al_egress_allowed(IPPROTO_UDP, &other, 53, 7700, 0, 2));
	CHECK(!al_egress_allowed(IPPROTO_UDP, &other, 443, 7700, 1, 2));
	CHECK(!al_egress_allowed(IPPROTO_ICMP, &lo, 0, 7700, 1, 1));
	CHECK(!al_egress_allowed(47 /* GRE */, &other, 0, 7700, 1, 2));
	/* A loopback destination leaves by lo only (a socket bound to another device). */
	CHECK(!al_egress_allowed(IPPROTO_TCP, &lo, 7700, 7700, 0, 2));
	CHECK(!al_egress_allowed(IPPROTO_TCP, &lo6, 7700, 7700, 0, 3));
	{
		struct al_addr res = v4("127.0.0.53"), lo8 = v4("127.255.0.9");

		CHECK(al_egress_allowed(IPPROTO_UDP, &res, 53, 7700, 1, 1));
		CHECK(!al_egress_allowed(IPPROTO_UDP, &res, 53, 7700, 1, 2));
		CHECK(al_addr_is_loopback(&lo8) && al_addr_is_loopback(&lo6) && !al_addr_is_loopback(&other));
	}
}

static void test_ingress(void)
{
	struct al_addr lo = v4("127.0.0.1"), other = v4("192.0.2.1"), lo2 = v4("127.0.0.2"), lo6;

	inet_pton(AF_INET6, "::1", lo6.w);
	CHECK(al_ingress_allowed(IPPROTO_TCP, &lo, 7700, 7700, 0, 1));
	CHECK(al_ingress_allowed(IPPROTO_TCP, &lo6, 7700, 7700, 0, 1));
	/* A listener of the agent's gets nothing from anyone else, over lo or not. */
	CHECK(!al_ingress_allowed(IPPROTO_TCP, &lo2, 41000, 7700, 0, 1));
	CHECK(!al_ingress_allowed(IPPROTO_TCP, &lo, 7701, 7700, 0, 1));
	CHECK(!al_ingress_allowed(IPPROTO_TCP, &lo, 7700, 7700, 0, 2));
	CHECK(!al_ingress_allowed(IPPROTO_TCP, &other, 7700, 7700, 0, 2));
	CHECK(al_ingress_allowed(IPPROTO_UDP, &other, 53, 7700, 1, 2));
	CHECK(!al_ingress_allowed(IPPROTO_UDP, &other, 53, 7700, 0, 2));
	CHECK(!al_ingress_allowed(IPPROTO_UDP, &other, 5353, 7700, 1, 2));
	CHECK(!al_ingress_allowed(IPPROTO_ICMP, &other, 0, 7700, 1, 2));
}

static void test_sockopt(void)
{
	__u32 r;

	CHECK(al_sockopt_allowed(SOL_SOCKET, SO_REUSEADDR, &r) && r == AL_REASON_NONE);
	CHECK(al_sockopt_allowed(SOL_IP, IP_TOS, &r));
	CHECK(al_sockopt_allowed(SOL_IP, IP_MULTICAST_TTL, &r));
	CHECK(al_sockopt_allowed(SOL_IPV6, IPV6_V6ONLY, &r));
	CHECK(al_sockopt_allowed(SOL_TCP, TCP_NODELAY, &r));
	CHECK(!al_sockopt_allowed(SOL_IP, IP_ADD_MEMBERSHIP, &r) && r == AL_REASON_MCAST_JOIN);
	CHECK(!al_sockopt_allowed(SOL_IP, IP_DROP_MEMBERSHIP, &r));
	CHECK(!al_sockopt_allowed(SOL_IP, IP_ADD_SOURCE_MEMBERSHIP, &r));
	CHECK(!al_sockopt_allowed(SOL_IP, IP_MSFILTER, &r));
	CHECK(!al_sockopt_allowed(SOL_IP, MCAST_JOIN_GROUP, &r));
	CHECK(!al_sockopt_allowed(SOL_IP, MCAST_JOIN_SOURCE_GROUP, &r));
	CHECK(!al_sockopt_allowed(SOL_IP, MCAST_MSFILTER, &r));
	CHECK(!al_sockopt_allowed(SOL_IPV6, IPV6_ADD_MEMBERSHIP, &r));
	CHECK(!al_sockopt_allowed(SOL_IPV6, IPV6_DROP_MEMBERSHIP, &r));
	CHECK(!al_sockopt_allowed(SOL_IPV6, MCAST_JOIN_GROUP, &r));
	CHECK(!al_sockopt_allowed(SOL_IPV6, MCAST_LEAVE_SOURCE_GROUP, &r));
	CHECK(AL_SOL_IP == SOL_IP && AL_SOL_IPV6 == SOL_IPV6 && AL_SOL_SOCKET == SOL_SOCKET);
	CHECK(IP_ADD_MEMBERSHIP == 35 && IP_MSFILTER == 41 && MCAST_JOIN_GROUP == 42 && MCAST_MSFILTER == 48);
	CHECK(IPV6_ADD_MEMBERSHIP == 20 && IPV6_DROP_MEMBERSHIP == 21);
}

static void test_bind(void)
{
	__u32 r;

	CHECK(al_bind_allowed(8080, 7700, &r) && r == AL_REASON_NONE);
	CHECK(al_bind_allowed(0, 7700, &r));
	CHECK(!al_bind_allowed(7700, 7700, &r) && r == AL_REASON_BIND_STEER);
}

int main(void)
{
	RUN(test_abi_constants);
	RUN(test_sock_create);
	RUN(test_udp);
	RUN(test_egress);
	RUN(test_ingress);
	RUN(test_sockopt);
	RUN(test_bind);
	TEST_EXIT();
}
