/* nftdrop: an nftables drop rule for IPv4 UDP on one device (netdev ingress) and its counter, with libnftnl (bench only, run inside the bench's own netns). */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/if_ether.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHAIN "ingress"
#define BATCH_LIMIT 16384

static struct mnl_socket *nl;
static uint32_t seq;

static int run_batch(struct mnl_nlmsg_batch *b, unsigned int acks)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t portid = mnl_socket_get_portid(nl);

	if (mnl_socket_sendto(nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b)) < 0)
		return -1;
	while (acks > 0) {
		int n = (int)mnl_socket_recvfrom(nl, buf, sizeof(buf));
		const struct nlmsghdr *h = (const struct nlmsghdr *)buf;

		if (n < 0)
			return -1;
		for (; mnl_nlmsg_ok(h, n); h = mnl_nlmsg_next(h, &n)) {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);

			if (h->nlmsg_pid != portid || h->nlmsg_type != NLMSG_ERROR)
				continue;
			acks--;
			if (e->error) {
				errno = -e->error;
				return -1;
			}
		}
	}
	return 0;
}

static void add_expr(struct nftnl_rule *r, struct nftnl_expr *e)
{
	if (!e) {
		perror("nftdrop: expr");
		exit(1);
	}
	nftnl_rule_add_expr(r, e);
}

static int cmd_add(const char *table, const char *dev)
{
	static char buf[2 * BATCH_LIMIT];
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, BATCH_LIMIT);
	struct nftnl_table *t = nftnl_table_alloc();
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nftnl_expr *e;
	uint16_t ip = htons(ETH_P_IP);
	uint8_t udp = IPPROTO_UDP;

	nftnl_batch_begin(mnl_nlmsg_batch_current(b), seq++);
	mnl_nlmsg_batch_next(b);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_NETDEV);
	nftnl_table_nlmsg_build_payload(nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWTABLE,
							       NFPROTO_NETDEV, NLM_F_CREATE | NLM_F_ACK, seq++), t);
	mnl_nlmsg_batch_next(b);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, CHAIN);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_NETDEV_INGRESS);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, 0);
	nftnl_chain_set_str(c, NFTNL_CHAIN_DEV, dev);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nftnl_chain_nlmsg_build_payload(nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWCHAIN,
							       NFPROTO_NETDEV, NLM_F_CREATE | NLM_F_ACK, seq++), c);
	mnl_nlmsg_batch_next(b);
	/* meta protocol ip, ip protocol udp, counter, drop */
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, CHAIN);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_NETDEV);
	add_expr(r, e = nftnl_expr_alloc("meta"));
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_PROTOCOL);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	add_expr(r, e = nftnl_expr_alloc("cmp"));
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, &ip, sizeof(ip));
	add_expr(r, e = nftnl_expr_alloc("payload"));
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, 9);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, 1);
	add_expr(r, e = nftnl_expr_alloc("cmp"));
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, &udp, sizeof(udp));
	add_expr(r, nftnl_expr_alloc("counter"));
	add_expr(r, e = nftnl_expr_alloc("immediate"));
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
	nftnl_rule_nlmsg_build_payload(nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWRULE,
							      NFPROTO_NETDEV,
							      NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, seq++), r);
	mnl_nlmsg_batch_next(b);
	nftnl_batch_end(mnl_nlmsg_batch_current(b), seq++);
	mnl_nlmsg_batch_next(b);
	nftnl_table_free(t);
	nftnl_chain_free(c);
	nftnl_rule_free(r);
	return run_batch(b, 3);
}

static int cmd_del(const char *table)
{
	static char buf[2 * BATCH_LIMIT];
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, BATCH_LIMIT);
	struct nftnl_table *t = nftnl_table_alloc();

	nftnl_batch_begin(mnl_nlmsg_batch_current(b), seq++);
	mnl_nlmsg_batch_next(b);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_NETDEV);
	nftnl_table_nlmsg_build_payload(nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_DELTABLE,
							       NFPROTO_NETDEV, NLM_F_ACK, seq++), t);
	mnl_nlmsg_batch_next(b);
	nftnl_batch_end(mnl_nlmsg_batch_current(b), seq++);
	mnl_nlmsg_batch_next(b);
	nftnl_table_free(t);
	return run_batch(b, 1);
}

static int counter_cb(struct nftnl_expr *e, void *arg)
{
	if (strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "counter") == 0)
		*(uint64_t *)arg += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
	return 0;
}

static int rule_cb(const struct nlmsghdr *h, void *arg)
{
	struct nftnl_rule *r = nftnl_rule_alloc();

	if (r && nftnl_rule_nlmsg_parse(h, r) == 0)
		nftnl_expr_foreach(r, counter_cb, arg);
	nftnl_rule_free(r);
	return MNL_CB_OK;
}

static int cmd_count(const char *table)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nlmsghdr *h;
	uint64_t packets = 0;
	uint32_t s = seq++;
	int n;

	h = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, NFPROTO_NETDEV, NLM_F_DUMP, s);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, CHAIN);
	nftnl_rule_nlmsg_build_payload(h, r);
	nftnl_rule_free(r);
	if (mnl_socket_sendto(nl, h, h->nlmsg_len) < 0)
		return -1;
	while ((n = (int)mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		n = mnl_cb_run(buf, (size_t)n, s, mnl_socket_get_portid(nl), rule_cb, &packets);
		if (n <= 0)
			break;
	}
	if (n < 0)
		return -1;
	printf("%llu\n", (unsigned long long)packets);
	return 0;
}

int main(int argc, char **argv)
{
	int rc;

	if (argc < 3 || (strcmp(argv[1], "add") == 0 && argc != 4)) {
		fprintf(stderr, "usage: nftdrop add TABLE DEV | count TABLE | del TABLE\n");
		return 2;
	}
	seq = (uint32_t)time(NULL);
	nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		perror("nftdrop: netlink");
		return 1;
	}
	if (strcmp(argv[1], "add") == 0)
		rc = cmd_add(argv[2], argv[3]);
	else if (strcmp(argv[1], "count") == 0)
		rc = cmd_count(argv[2]);
	else if (strcmp(argv[1], "del") == 0)
		rc = cmd_del(argv[2]);
	else
		rc = -1, errno = EINVAL;
	if (rc < 0)
		perror("nftdrop");
	mnl_socket_close(nl);
	return rc < 0 ? 1 : 0;
}
