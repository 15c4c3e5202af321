/* nftables (libnftnl over libmnl) and policy routing (rtnetlink over libmnl) that steer pinned interfaces' TCP into the TPROXY listener. */
#include <airlock/netdev.h>

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/fib_rules.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#define ERR(...) al_errf(err, errlen, __VA_ARGS__)

#define CHAIN_NAME      "prerouting"
#define PRIO_MANGLE     (-150)      /* NF_IP_PRI_MANGLE: before routing decides */
#define RULES_PER_IFACE 3
#define NL_TIMEOUT_S    5
/* Preference of the fwmark rule: explicit, so adding it twice is caught
 * (EEXIST) instead of stacking copies; ahead of the main table (32766). */
#define RULE_PREF       32000
#define RULE_DEL_MAX    16

int nft_table_name_ok(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len < AL_NFT_TABLE_MAX &&
	       strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == len;
}

/* ---- netlink plumbing ---- */

static struct mnl_socket *nl_open(int bus, char *err, size_t errlen)
{
	struct timeval tv = { .tv_sec = NL_TIMEOUT_S };
	struct mnl_socket *nl = mnl_socket_open2(bus, SOCK_CLOEXEC);

	if (!nl) {
		ERR("netlink socket: %s", strerror(errno));
		return NULL;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		ERR("netlink bind: %s", strerror(errno));
		mnl_socket_close(nl);
		return NULL;
	}
	return nl;
}

/*
 * Sends len bytes of requests that each ask for an ACK, and reads replies
 * until `acks` of them came back. Returns 0 if all succeeded, else -1 with
 * errno set to the first error (its sequence number in *bad_seq).
 */
static int nl_transact(struct mnl_socket *nl, const void *buf, size_t len, unsigned int acks,
		       uint32_t *bad_seq)
{
	char rbuf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t portid = mnl_socket_get_portid(nl);
	int first_err = 0;

	if (mnl_socket_sendto(nl, buf, len) < 0)
		return -1;
	while (acks > 0) {
		ssize_t n = mnl_socket_recvfrom(nl, rbuf, sizeof(rbuf));
		const struct nlmsghdr *h = (const struct nlmsghdr *)rbuf;
		int left = (int)n;

		if (n < 0)
			return -1;          /* errno: EAGAIN on timeout */
		for (; mnl_nlmsg_ok(h, left); h = mnl_nlmsg_next(h, &left)) {
			const struct nlmsgerr *e;

			if (h->nlmsg_pid != portid || h->nlmsg_type != NLMSG_ERROR)
				continue;
			if (h->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
				continue;
			e = mnl_nlmsg_get_payload(h);
			if (e->error != 0 && first_err == 0) {
				first_err = -e->error;
				if (bad_seq)
					*bad_seq = h->nlmsg_seq;
			}
			if (acks > 0)
				acks--;
		}
	}
	if (first_err) {
		errno = first_err;
		return -1;
	}
	return 0;
}

/* ---- nftables ---- */

struct batch {
	char *buf;
	size_t size;
	struct mnl_nlmsg_batch *b;
	uint32_t seq, first_seq;
	unsigned int acks;
	int full;
};

static int batch_init(struct batch *bt, size_t n_msgs)
{
	size_t limit = (n_msgs + 4) * 2048;

	memset(bt, 0, sizeof(*bt));
	/* libmnl lets the last message run past `limit`: leave a socket buffer of room. */
	bt->size = limit + MNL_SOCKET_BUFFER_SIZE;
	bt->buf = calloc(1, bt->size);
	if (!bt->buf)
		return -1;
	bt->b = mnl_nlmsg_batch_start(bt->buf, limit);
	bt->seq = (uint32_t)time(NULL);
	nftnl_batch_begin(mnl_nlmsg_batch_current(bt->b), bt->seq++);
	mnl_nlmsg_batch_next(bt->b);
	bt->first_seq = bt->seq;
	return 0;
}

static struct nlmsghdr *batch_hdr(struct batch *bt, uint16_t type, uint16_t flags)
{
	bt->acks++;
	return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(bt->b), type, NFPROTO_INET,
				     flags | NLM_F_ACK, bt->seq++);
}

static void batch_next(struct batch *bt)
{
	if (!mnl_nlmsg_batch_next(bt->b))
		bt->full = 1;
}

static void batch_free(struct batch *bt)
{
	if (bt->b)
		mnl_nlmsg_batch_stop(bt->b);
	free(bt->buf);
}

static int batch_table(struct batch *bt, const char *name, uint16_t type, uint16_t flags)
{
	struct nftnl_table *t = nftnl_table_alloc();

	if (!t)
		return -1;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_nlmsg_build_payload(batch_hdr(bt, type, flags), t);
	nftnl_table_free(t);
	batch_next(bt);
	return 0;
}

static int batch_chain(struct batch *bt, const char *table)
{
	struct nftnl_chain *c = nftnl_chain_alloc();

	if (!c)
		return -1;
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, CHAIN_NAME);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_PRE_ROUTING);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, PRIO_MANGLE);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nftnl_chain_nlmsg_build_payload(batch_hdr(bt, NFT_MSG_NEWCHAIN, NLM_F_CREATE), c);
	nftnl_chain_free(c);
	batch_next(bt);
	return 0;
}

/* Expressions: each returns -1 only when out of memory (the rule is then
 * incomplete and the caller drops it). */
static int x_meta_load(struct nftnl_rule *r, uint32_t key, uint32_t dreg)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	if (!e)
		return -1;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
	nftnl_rule_add_expr(r, e);
	return 0;
}

static int x_meta_set(struct nftnl_rule *r, uint32_t key, uint32_t sreg)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	if (!e)
		return -1;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, sreg);
	nftnl_rule_add_expr(r, e);
	return 0;
}

static int x_cmp_eq(struct nftnl_rule *r, uint32_t sreg, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");

	if (!e)
		return -1;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	nftnl_rule_add_expr(r, e);
	return 0;
}

static int x_imm_data(struct nftnl_rule *r, uint32_t dreg, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");

	if (!e)
		return -1;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, dreg);
	nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, len);
	nftnl_rule_add_expr(r, e);
	return 0;
}

static int x_verdict(struct nftnl_rule *r, int verdict)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");

	if (!e)
		return -1;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
	nftnl_rule_add_expr(r, e);
	return 0;
}

static int x_tproxy(struct nftnl_rule *r, uint32_t family, uint32_t reg_addr, uint32_t reg_port)
{
	struct nftnl_expr *e = nftnl_expr_alloc("tproxy");

	if (!e)
		return -1;
	nftnl_expr_set_u32(e, NFTNL_EXPR_TPROXY_FAMILY, family);
	nftnl_expr_set_u32(e, NFTNL_EXPR_TPROXY_REG_ADDR, reg_addr);
	nftnl_expr_set_u32(e, NFTNL_EXPR_TPROXY_REG_PORT, reg_port);
	nftnl_rule_add_expr(r, e);
	return 0;
}

static int x_reject_tcp_rst(struct nftnl_rule *r)
{
	struct nftnl_expr *e = nftnl_expr_alloc("reject");

	if (!e)
		return -1;
	nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
	nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, 0);
	nftnl_rule_add_expr(r, e);
	return 0;
}

/* iif I [meta nfproto F] meta l4proto tcp */
static int x_match(struct nftnl_rule *r, int ifindex, uint8_t nfproto)
{
	uint32_t idx = (uint32_t)ifindex;
	uint8_t tcp = IPPROTO_TCP;

	if (x_meta_load(r, NFT_META_IIF, NFT_REG_1) < 0 || x_cmp_eq(r, NFT_REG_1, &idx, sizeof(idx)) < 0)
		return -1;
	if (nfproto && (x_meta_load(r, NFT_META_NFPROTO, NFT_REG_1) < 0 ||
			x_cmp_eq(r, NFT_REG_1, &nfproto, sizeof(nfproto)) < 0))
		return -1;
	return x_meta_load(r, NFT_META_L4PROTO, NFT_REG_1) < 0 ||
	       x_cmp_eq(r, NFT_REG_1, &tcp, sizeof(tcp)) < 0 ? -1 : 0;
}

/* kind 0: TPROXY IPv4, 1: TPROXY IPv6, 2: reject the rest of the TCP. */
static int batch_rule(struct batch *bt, const char *table, int ifindex, int kind, uint16_t port,
		      uint32_t mark)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	uint16_t port_be = htons(port);
	int rc = -1;

	if (!r)
		return -1;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, CHAIN_NAME);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	if (kind == 0) {
		struct in_addr lo4 = { .s_addr = htonl(INADDR_LOOPBACK) };

		if (x_match(r, ifindex, NFPROTO_IPV4) < 0 ||
		    x_imm_data(r, NFT_REG_1, &lo4, sizeof(lo4)) < 0 ||
		    x_imm_data(r, NFT_REG_2, &port_be, sizeof(port_be)) < 0 ||
		    x_tproxy(r, NFPROTO_IPV4, NFT_REG_1, NFT_REG_2) < 0)
			goto out;
	} else if (kind == 1) {
		struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;

		if (x_match(r, ifindex, NFPROTO_IPV6) < 0 ||
		    x_imm_data(r, NFT_REG_1, &lo6, sizeof(lo6)) < 0 ||
		    x_imm_data(r, NFT_REG_2, &port_be, sizeof(port_be)) < 0 ||
		    x_tproxy(r, NFPROTO_IPV6, NFT_REG_1, NFT_REG_2) < 0)
			goto out;
	} else {
		if (x_match(r, ifindex, 0) < 0 || x_reject_tcp_rst(r) < 0)
			goto out;
	}
	/* tproxy stops the rule when no listener takes the packet: then it is
	 * neither marked nor accepted, and falls to the reject rule. */
	if (kind != 2 && (x_imm_data(r, NFT_REG_1, &mark, sizeof(mark)) < 0 ||
			  x_meta_set(r, NFT_META_MARK, NFT_REG_1) < 0 || x_verdict(r, NF_ACCEPT) < 0))
		goto out;
	nftnl_rule_nlmsg_build_payload(batch_hdr(bt, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND), r);
	batch_next(bt);
	rc = 0;
out:
	nftnl_rule_free(r);
	return rc;
}

static const char *nft_step(const struct batch *bt, uint32_t seq)
{
	uint32_t i = seq - bt->first_seq;

	if (i == 0)
		return "table";
	if (i == 1)
		return "table reset";
	if (i == 2)
		return "table";
	if (i == 3)
		return "chain " CHAIN_NAME;
	return "rule";
}

static int nft_commit(struct batch *bt, const char *table, char *err, size_t errlen)
{
	struct mnl_socket *nl;
	uint32_t bad = 0;
	int rc = 0;

	nftnl_batch_end(mnl_nlmsg_batch_current(bt->b), bt->seq++);
	batch_next(bt);
	if (bt->full)
		return ERR("nftables batch for table %s too large", table);
	nl = nl_open(NETLINK_NETFILTER, err, errlen);
	if (!nl)
		return -1;
	if (nl_transact(nl, mnl_nlmsg_batch_head(bt->b), mnl_nlmsg_batch_size(bt->b), bt->acks,
			&bad) < 0)
		rc = ERR("nftables table inet %s: %s: %s", table, bad ? nft_step(bt, bad) : "send",
			 strerror(errno));
	mnl_socket_close(nl);
	return rc;
}

int nft_steer_set(const char *table, const int *ifindexes, size_t n, uint16_t port, uint32_t mark,
		  char *err, size_t errlen)
{
	struct batch bt;
	int rc = -1;

	if (!nft_table_name_ok(table))
		return ERR("'%s' is not a valid nftables table name", table);
	if (batch_init(&bt, 4 + n * RULES_PER_IFACE) < 0)
		return ERR("out of memory");
	/* Create (if missing) and delete: the replacement below starts empty. */
	if (batch_table(&bt, table, NFT_MSG_NEWTABLE, NLM_F_CREATE) < 0 ||
	    batch_table(&bt, table, NFT_MSG_DELTABLE, 0) < 0)
		goto oom;
	if (n > 0) {
		if (batch_table(&bt, table, NFT_MSG_NEWTABLE, NLM_F_CREATE) < 0 ||
		    batch_chain(&bt, table) < 0)
			goto oom;
		for (size_t i = 0; i < n; i++)
			for (int kind = 0; kind < RULES_PER_IFACE; kind++)
				if (batch_rule(&bt, table, ifindexes[i], kind, port, mark) < 0)
					goto oom;
	}
	rc = nft_commit(&bt, table, err, errlen);
	goto out;
oom:
	ERR("out of memory");
out:
	batch_free(&bt);
	return rc;
}

int nft_table_delete(const char *table, char *err, size_t errlen)
{
	return nft_steer_set(table, NULL, 0, 0, 0, err, errlen);
}

/* ---- policy routing ---- */

static int rtnl_one(struct mnl_socket *nl, struct nlmsghdr *h, int ok_errno)
{
	if (nl_transact(nl, h, h->nlmsg_len, 1, NULL) == 0 || errno == ok_errno)
		return 0;
	return -1;
}

static int tproxy_rule(struct mnl_socket *nl, int family, uint32_t mark, uint32_t table, int on)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
	struct fib_rule_hdr *frh;

	h->nlmsg_type = on ? RTM_NEWRULE : RTM_DELRULE;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (on ? NLM_F_CREATE | NLM_F_EXCL : 0);
	h->nlmsg_seq = (uint32_t)time(NULL);
	frh = mnl_nlmsg_put_extra_header(h, sizeof(*frh));
	frh->family = (uint8_t)family;
	frh->action = FR_ACT_TO_TBL;
	frh->table = RT_TABLE_UNSPEC;
	mnl_attr_put_u32(h, FRA_FWMARK, mark);
	mnl_attr_put_u32(h, FRA_FWMASK, 0xffffffffu);
	mnl_attr_put_u32(h, FRA_TABLE, table);
	if (on) {
		mnl_attr_put_u32(h, FRA_PRIORITY, RULE_PREF);
		return rtnl_one(nl, h, EEXIST);
	}
	/* Without a preference the delete matches any: remove every copy. */
	for (int i = 0; i < RULE_DEL_MAX; i++) {
		h->nlmsg_seq++;
		if (nl_transact(nl, h, h->nlmsg_len, 1, NULL) < 0)
			return errno == ENOENT ? 0 : -1;
	}
	return 0;
}

static int tproxy_route(struct mnl_socket *nl, int family, uint32_t table, int on)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
	unsigned int lo = if_nametoindex("lo");
	struct rtmsg *rtm;

	if (lo == 0)
		return -1;
	h->nlmsg_type = on ? RTM_NEWROUTE : RTM_DELROUTE;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (on ? NLM_F_CREATE | NLM_F_EXCL : 0);
	h->nlmsg_seq = (uint32_t)time(NULL);
	rtm = mnl_nlmsg_put_extra_header(h, sizeof(*rtm));
	rtm->rtm_family = (unsigned char)family;
	rtm->rtm_dst_len = 0;
	rtm->rtm_table = RT_TABLE_UNSPEC;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = RT_SCOPE_HOST;
	rtm->rtm_type = RTN_LOCAL;
	mnl_attr_put_u32(h, RTA_TABLE, table);
	mnl_attr_put_u32(h, RTA_OIF, lo);
	return rtnl_one(nl, h, on ? EEXIST : ESRCH);
}

int netdev_tproxy_routes(uint32_t mark, uint32_t table, int on, char *err, size_t errlen)
{
	static const int families[] = { AF_INET, AF_INET6 };
	struct mnl_socket *nl = nl_open(NETLINK_ROUTE, err, errlen);
	int rc = 0;

	if (!nl)
		return -1;
	for (size_t i = 0; i < AL_ARRAY_LEN(families) && rc == 0; i++) {
		const char *fam = families[i] == AF_INET ? "ip" : "ip -6";

		/* Route first when adding, rule first when removing: a marked
		 * packet never meets the rule without its route. */
		if (on && tproxy_route(nl, families[i], table, 1) < 0)
			rc = ERR("%s route add local default dev lo table %u: %s", fam, table,
				 strerror(errno));
		else if (tproxy_rule(nl, families[i], mark, table, on) < 0)
			rc = ERR("%s rule %s fwmark 0x%x lookup %u: %s", fam, on ? "add" : "del",
				 mark, table, strerror(errno));
		else if (!on && tproxy_route(nl, families[i], table, 0) < 0 && errno != ENOENT)
			rc = ERR("%s route del local default dev lo table %u: %s", fam, table,
				 strerror(errno));
	}
	mnl_socket_close(nl);
	return rc;
}
