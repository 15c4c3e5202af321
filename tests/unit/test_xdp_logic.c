/* Host tests of the XDP packet parser and verdicts (bpf/lib/xdp.h), on hand-built frames. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "harness.h"
#include "lib/xdp.h"

/* Frames are built at offset 2 of an aligned buffer, as drivers place them
 * (NET_IP_ALIGN): the IP header then sits on a 4-byte boundary. */
struct frame {
	_Alignas(8) unsigned char buf[2 + 256];
	size_t len;
};

static unsigned char *fdata(struct frame *f)
{
	return f->buf + 2;
}

static void put16(unsigned char *p, unsigned int v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static void eth(struct frame *f, unsigned int proto)
{
	memset(f, 0, sizeof(*f));
	memset(fdata(f), 0xaa, 12);
	put16(fdata(f) + 12, proto);
	f->len = 14;
}

/* IPv4 header (ihl 5 + opt_words) with proto; returns the L4 offset. */
static size_t ip4(struct frame *f, unsigned int proto, const char *src, const char *dst,
		  unsigned int frag, int opt_words)
{
	unsigned char *ip = fdata(f) + f->len;
	size_t hl = 20 + 4 * (size_t)opt_words;

	ip[0] = (unsigned char)(0x40 | (5 + opt_words));
	put16(ip + 6, frag);
	ip[8] = 64;
	ip[9] = (unsigned char)proto;
	inet_pton(AF_INET, src, ip + 12);
	inet_pton(AF_INET, dst, ip + 16);
	f->len += hl;
	return f->len;
}

static size_t ip6(struct frame *f, unsigned int nexthdr, unsigned int hlim, const char *src,
		  const char *dst)
{
	unsigned char *ip = fdata(f) + f->len;

	ip[0] = 0x60;
	ip[6] = (unsigned char)nexthdr;
	ip[7] = (unsigned char)hlim;
	inet_pton(AF_INET6, src, ip + 8);
	inet_pton(AF_INET6, dst, ip + 24);
	f->len += 40;
	return f->len;
}

/* An 8-byte IPv6 extension header (hop-by-hop, routing, dest options). */
static void ext6(struct frame *f, unsigned int nexthdr)
{
	unsigned char *x = fdata(f) + f->len;

	x[0] = (unsigned char)nexthdr;
	x[1] = 0;
	f->len += 8;
}

static void frag6(struct frame *f, unsigned int nexthdr, unsigned int offset8, int more)
{
	unsigned char *x = fdata(f) + f->len;

	x[0] = (unsigned char)nexthdr;
	put16(x + 2, (offset8 << 3) | (more ? 1 : 0));
	f->len += 8;
}

static void tcp(struct frame *f, unsigned int sport, unsigned int dport, unsigned int flags)
{
	unsigned char *t = fdata(f) + f->len;

	put16(t, sport);
	put16(t + 2, dport);
	t[12] = 5 << 4;
	t[13] = (unsigned char)flags;
	f->len += 20;
}

static void udp(struct frame *f, unsigned int sport, unsigned int dport)
{
	unsigned char *u = fdata(f) + f->len;

	put16(u, sport);
	put16(u + 2, dport);
	put16(u + 4, 8);
	f->len += 8;
}

static void icmp(struct frame *f, unsigned int type)
{
	unsigned char *c = fdata(f) + f->len;

	c[0] = (unsigned char)type;
	f->len += 8;
}

static struct al_pkt parse(struct frame *f)
{
	struct al_pkt p;

	al_pkt_parse(fdata(f), fdata(f) + f->len, &p);
	return p;
}

static int agent_ok(struct frame *f, int to_resolver)
{
	struct al_pkt p = parse(f);

	return al_xdp_agent_allowed(&p, to_resolver);
}

static struct al_addr v4(const char *s)
{
	struct al_addr a;
	struct in_addr in;

	inet_pton(AF_INET, s, &in);
	al_addr_from_v4(&a, in.s_addr);
	return a;
}

static void test_abi_constants(void)
{
	CHECK(AL_IPPROTO_HOPOPTS == IPPROTO_HOPOPTS);
	CHECK(AL_IPPROTO_ROUTING == IPPROTO_ROUTING);
	CHECK(AL_IPPROTO_FRAGMENT == IPPROTO_FRAGMENT);
	CHECK(AL_IPPROTO_DSTOPTS == IPPROTO_DSTOPTS);
	CHECK(sizeof(struct al_ethhdr) == 14);
	CHECK(sizeof(struct al_iphdr) == 20);
	CHECK(sizeof(struct al_ip6hdr) == 40);
	CHECK(sizeof(struct al_tcphdr) == 16);
	CHECK(sizeof(struct al_flow_key) == 36);
	CHECK(sizeof(struct al_guard_src_key) == 24);
	CHECK(AL_REASON_XDP_DROP == 22 && AL_REASON_GUARD_DROP == 23);
	CHECK_STR(al_reason_name(AL_REASON_XDP_DROP), "xdp_drop");
	CHECK_STR(al_reason_name(AL_REASON_GUARD_DROP), "guard_drop");
}

static void test_agent_link_traffic(void)
{
	struct frame f;

	eth(&f, AL_ETH_P_ARP);
	f.len += 28;
	CHECK(agent_ok(&f, 0));
	eth(&f, 0x8100);                        /* VLAN tags are not let through */
	f.len += 40;
	CHECK(!agent_ok(&f, 0));
	eth(&f, 0x88cc);                        /* LLDP, anything else */
	f.len += 40;
	CHECK(!agent_ok(&f, 0));
	eth(&f, AL_ETH_P_IP);                   /* truncated IPv4 */
	f.len += 10;
	CHECK(!agent_ok(&f, 0));
	CHECK(parse(&f).flags & AL_PKT_BAD);
}

static void test_agent_tcp(void)
{
	struct frame f;
	struct al_pkt p;
	struct al_addr src = v4("10.213.0.2"), dst = v4("203.0.113.7");

	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_TCP, "10.213.0.2", "203.0.113.7", 0x4000 /* DF */, 0);
	tcp(&f, 40000, 443, AL_TCP_FLAG_SYN);
	p = parse(&f);
	CHECK(al_xdp_agent_allowed(&p, 0));
	CHECK(al_pkt_is_syn(&p));
	CHECK(p.sport == 40000 && p.dport == 443);
	CHECK(al_addr_eq(&p.src, &src) && al_addr_eq(&p.dst, &dst));
	CHECK(!(p.flags & AL_PKT_FRAG));

	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_TCP, "10.213.0.2", "203.0.113.7", 0, 0);
	tcp(&f, 40000, 443, AL_TCP_FLAG_SYN | AL_TCP_FLAG_ACK);
	p = parse(&f);
	CHECK(al_xdp_agent_allowed(&p, 0) && !al_pkt_is_syn(&p));

	/* IPv4 options move the TCP header. */
	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_TCP, "10.213.0.2", "203.0.113.7", 0, 2);
	tcp(&f, 1234, 5432, AL_TCP_FLAG_SYN);
	p = parse(&f);
	CHECK(p.sport == 1234 && p.dport == 5432 && al_pkt_is_syn(&p));

	/* TCP fragments pass: nftables sees (and steers) the reassembled packet. */
	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_TCP, "10.213.0.2", "203.0.113.7", 0x0010, 0);
	f.len += 16;
	p = parse(&f);
	CHECK((p.flags & AL_PKT_LATER_FRAG) && al_xdp_agent_allowed(&p, 0) && !al_pkt_is_syn(&p));

	/* A TCP header cut short does not parse. */
	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_TCP, "10.213.0.2", "203.0.113.7", 0, 0);
	f.len += 10;
	CHECK(!agent_ok(&f, 0));
}

static void test_agent_udp_icmp(void)
{
	struct frame f;

	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_UDP, "10.213.0.2", "10.213.0.1", 0, 0);
	udp(&f, 5000, 53);
	CHECK(agent_ok(&f, 1));
	CHECK(!agent_ok(&f, 0));                /* DNS, but not to a resolver */

	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_UDP, "10.213.0.2", "10.213.0.1", 0, 0);
	udp(&f, 5000, 443);
	CHECK(!agent_ok(&f, 1));                /* QUIC */

	/* A fragmented DNS query is not let through, first fragment or later. */
	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_UDP, "10.213.0.2", "10.213.0.1", 0x2000 /* MF */, 0);
	udp(&f, 5000, 53);
	CHECK(!agent_ok(&f, 1));
	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_UDP, "10.213.0.2", "10.213.0.1", 0x0004, 0);
	f.len += 8;
	CHECK(!agent_ok(&f, 1));

	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_ICMP, "10.213.0.2", "10.213.0.1", 0, 0);
	icmp(&f, 8);
	CHECK(!agent_ok(&f, 1));

	eth(&f, AL_ETH_P_IP);
	ip4(&f, 132 /* SCTP */, "10.213.0.2", "10.213.0.1", 0, 0);
	f.len += 12;
	CHECK(!agent_ok(&f, 1));

	/* Not IPv4 at all, or a bad header length. */
	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_TCP, "10.213.0.2", "10.213.0.1", 0, 0);
	tcp(&f, 1, 2, AL_TCP_FLAG_SYN);
	fdata(&f)[14] = 0x44;
	CHECK(!agent_ok(&f, 0));
	fdata(&f)[14] = 0x65;
	CHECK(!agent_ok(&f, 0));
}

static void test_agent_ipv6(void)
{
	struct frame f;
	struct al_pkt p;

	eth(&f, AL_ETH_P_IPV6);
	ip6(&f, IPPROTO_TCP, 64, "fd00:1::2", "2001:db8::5");
	tcp(&f, 40000, 80, AL_TCP_FLAG_SYN);
	p = parse(&f);
	CHECK(al_xdp_agent_allowed(&p, 0) && al_pkt_is_syn(&p) && p.dport == 80);
	CHECK(!al_addr_is_v4mapped(&p.dst));

	eth(&f, AL_ETH_P_IPV6);
	ip6(&f, IPPROTO_UDP, 64, "fd00:1::2", "fd00:1::1");
	udp(&f, 5000, 53);
	CHECK(agent_ok(&f, 1) && !agent_ok(&f, 0));

	/* Neighbour discovery: solicitations and adverts with hop limit 255 only. */
	eth(&f, AL_ETH_P_IPV6);
	ip6(&f, IPPROTO_ICMPV6, 255, "fd00:1::2", "ff02::1:ff00:1");
	icmp(&f, AL_ICMP6_NEIGH_SOLICIT);
	CHECK(agent_ok(&f, 0));
	eth(&f, AL_ETH_P_IPV6);
	ip6(&f, IPPROTO_ICMPV6, 255, "fd00:1::2", "fd00:1::1");
	icmp(&f, AL_ICMP6_NEIGH_ADVERT);
	CHECK(agent_ok(&f, 0));
	eth(&f, AL_ETH_P_IPV6);
	ip6(&f, IPPROTO_ICMPV6, 255, "fe80::2", "ff02::2");
	icmp(&f, AL_ICMP6_ROUTER_SOLICIT);
	CHECK(agent_ok(&f, 0));
	eth(&f, AL_ETH_P_IPV6);
	ip6(&f, IPPROTO_ICMPV6, 64, "fd00:1::2", "fd00:1::1");
	icmp(&f, AL_ICMP6_NEIGH_SOLICIT);
	CHECK(!agent_ok(&f, 0));                /* not on-link */
	eth(&f, AL_ETH_P_IPV6);
	ip6(&f, IPPROTO_ICMPV6, 255, "fe80::2", "ff02::1");
	icmp(&f, 134);                          /* router advert from an agent */
	CHECK(!agent_ok(&f, 0));
	eth(&f, AL_ETH_P_IPV6);
	ip6(&f, IPPROTO_ICMPV6, 64, "fd00:1::2", "fd00:1::1");
	icmp(&f, 128);                          /* echo request */
	CHECK(!agent_ok(&f, 0));
	eth(&f, AL_ETH_P_IPV6);
	ip6(&f, IPPROTO_HOPOPTS, 255, "fd00:1::2", "fd00:1::1");
	ext6(&f, IPPROTO_ICMPV6);
	icmp(&f, AL_ICMP6_NEIGH_SOLICIT);
	CHECK(!agent_ok(&f, 0));                /* ND never has extension headers */

	/* TCP behind extension headers is still TCP, ports found. */
	eth(&f, AL_ETH_P_IPV6);
	ip6(&f, IPPROTO_HOPOPTS, 64, "fd00:1::2", "2001:db8::5");
	ext6(&f, IPPROTO_DSTOPTS);
	ext6(&f, IPPROTO_TCP);
	tcp(&f, 1111, 2222, AL_TCP_FLAG_SYN);
	p = parse(&f);
	CHECK((p.flags & AL_PKT_EXTHDR) && p.sport == 1111 && p.dport == 2222 && al_pkt_is_syn(&p));

	/* Too long a chain is not understood. */
	eth(&f, AL_ETH_P_IPV6);
	ip6(&f, IPPROTO_HOPOPTS, 64, "fd00:1::2", "2001:db8::5");
	for (int i = 0; i < AL_IP6_EXT_MAX - 1; i++)
		ext6(&f, IPPROTO_DSTOPTS);
	ext6(&f, IPPROTO_ROUTING);
	ext6(&f, IPPROTO_TCP);
	tcp(&f, 1, 2, AL_TCP_FLAG_SYN);
	p = parse(&f);
	CHECK(p.flags & AL_PKT_BAD);
	CHECK(!al_xdp_agent_allowed(&p, 0));

	/* Fragments: a later UDP fragment is dropped, a later TCP one passes. */
	eth(&f, AL_ETH_P_IPV6);
	ip6(&f, IPPROTO_FRAGMENT, 64, "fd00:1::2", "fd00:1::1");
	frag6(&f, IPPROTO_UDP, 10, 0);
	f.len += 16;
	p = parse(&f);
	CHECK((p.flags & AL_PKT_LATER_FRAG) && !al_xdp_agent_allowed(&p, 1));
	eth(&f, AL_ETH_P_IPV6);
	ip6(&f, IPPROTO_FRAGMENT, 64, "fd00:1::2", "fd00:1::1");
	frag6(&f, IPPROTO_UDP, 0, 1);
	udp(&f, 5000, 53);
	p = parse(&f);
	CHECK((p.flags & AL_PKT_FRAG) && !(p.flags & AL_PKT_LATER_FRAG) && p.dport == 53);
	CHECK(!al_xdp_agent_allowed(&p, 1));
}

static void test_guard(void)
{
	struct frame f;
	struct al_pkt p;

	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_TCP, "10.0.0.9", "10.0.0.2", 0, 0);
	tcp(&f, 40000, 5432, AL_TCP_FLAG_SYN);
	p = parse(&f);
	CHECK(al_xdp_guard_applies(&p));
	CHECK(al_xdp_guard_allowed(&p, 1, 1));
	CHECK(!al_xdp_guard_allowed(&p, 1, 0));
	CHECK(al_xdp_guard_allowed(&p, 0, 0));

	/* Not TCP, or no ports to judge: not the guard's business. */
	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_UDP, "10.0.0.9", "10.0.0.2", 0, 0);
	udp(&f, 1, 5432);
	p = parse(&f);
	CHECK(!al_xdp_guard_applies(&p) && al_xdp_guard_allowed(&p, 1, 0));
	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_TCP, "10.0.0.9", "10.0.0.2", 0x0010, 0);
	f.len += 16;
	p = parse(&f);
	CHECK(!al_xdp_guard_applies(&p) && al_xdp_guard_allowed(&p, 1, 0));
	eth(&f, AL_ETH_P_ARP);
	f.len += 28;
	p = parse(&f);
	CHECK(al_xdp_guard_allowed(&p, 1, 0));

	/* IP it cannot read could hide TCP to the port: dropped. */
	eth(&f, AL_ETH_P_IPV6);
	ip6(&f, IPPROTO_HOPOPTS, 64, "fd00::9", "fd00::2");
	for (int i = 0; i < AL_IP6_EXT_MAX; i++)
		ext6(&f, IPPROTO_DSTOPTS);
	ext6(&f, IPPROTO_TCP);
	tcp(&f, 1, 5432, AL_TCP_FLAG_SYN);
	p = parse(&f);
	CHECK(!al_xdp_guard_allowed(&p, 0, 0));
	eth(&f, AL_ETH_P_IP);
	ip4(&f, IPPROTO_TCP, "10.0.0.9", "10.0.0.2", 0, 0);
	f.len += 3;
	p = parse(&f);
	CHECK(!al_xdp_guard_allowed(&p, 0, 0));
}

/* Every prefix of every frame, in a buffer of exactly that size: the
 * parser never reads past the end (ASan) and a cut frame never gains ports. */
static void test_truncation(void)
{
	struct frame fs[6];
	size_t n = 0;

	eth(&fs[n], AL_ETH_P_IP);
	ip4(&fs[n], IPPROTO_TCP, "10.0.0.1", "10.0.0.2", 0, 3);
	tcp(&fs[n++], 1, 2, AL_TCP_FLAG_SYN);
	eth(&fs[n], AL_ETH_P_IP);
	ip4(&fs[n], IPPROTO_UDP, "10.0.0.1", "10.0.0.2", 0, 0);
	udp(&fs[n++], 1, 53);
	eth(&fs[n], AL_ETH_P_IPV6);
	ip6(&fs[n], IPPROTO_HOPOPTS, 64, "fd00::1", "fd00::2");
	ext6(&fs[n], IPPROTO_FRAGMENT);
	frag6(&fs[n], IPPROTO_TCP, 0, 1);
	tcp(&fs[n++], 1, 2, AL_TCP_FLAG_SYN);
	eth(&fs[n], AL_ETH_P_IPV6);
	ip6(&fs[n], IPPROTO_ICMPV6, 255, "fd00::1", "fd00::2");
	icmp(&fs[n++], AL_ICMP6_NEIGH_SOLICIT);
	for (size_t i = 0; i < n; i++) {
		for (size_t len = 0; len <= fs[i].len; len++) {
			unsigned char *mem = malloc(len + 2);
			struct al_pkt p;

			CHECK(mem != NULL);
			if (!mem)
				return;
			memcpy(mem + 2, fdata(&fs[i]), len);
			al_pkt_parse(mem + 2, mem + 2 + len, &p);
			if (len < fs[i].len)
				CHECK(!(p.flags & (AL_PKT_PORTS | AL_PKT_ICMP6)) || len >= fs[i].len - 4);
			else
				CHECK(!(p.flags & AL_PKT_BAD));
			free(mem);
		}
	}
}

int main(void)
{
	RUN(test_abi_constants);
	RUN(test_agent_link_traffic);
	RUN(test_agent_tcp);
	RUN(test_agent_udp_icmp);
	RUN(test_agent_ipv6);
	RUN(test_guard);
	RUN(test_truncation);
	TEST_EXIT();
}
