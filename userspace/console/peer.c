/* Who a console peer is: its socket's cgroup and owner, asked of the kernel over sock_diag (INET_DIAG_CGROUP_ID), or its network. */
#include "console_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* The peer's socket is the one whose own address is our peer address and whose remote is us. */
int peer_lookup(int fd, uint64_t *cgroup_id, uint32_t *uid)
{
	struct sockaddr_storage peer, self;
	socklen_t pl = sizeof(peer), sl = sizeof(self);
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req;
	char buf[8192];
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
	int s, rc = -1;
	ssize_t n;

	if (getpeername(fd, (struct sockaddr *)&peer, &pl) < 0 ||
	    getsockname(fd, (struct sockaddr *)&self, &sl) < 0 || peer.ss_family != self.ss_family)
		return -1;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.r.sdiag_family = (uint8_t)peer.ss_family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = ~0u;
	req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (peer.ss_family == AF_INET) {
		const struct sockaddr_in *p = (void *)&peer, *m = (void *)&self;

		req.r.id.idiag_sport = p->sin_port;
		req.r.id.idiag_dport = m->sin_port;
		req.r.id.idiag_src[0] = p->sin_addr.s_addr;
		req.r.id.idiag_dst[0] = m->sin_addr.s_addr;
	} else if (peer.ss_family == AF_INET6) {
		const struct sockaddr_in6 *p = (void *)&peer, *m = (void *)&self;

		req.r.id.idiag_sport = p->sin6_port;
		req.r.id.idiag_dport = m->sin6_port;
		memcpy(req.r.id.idiag_src, &p->sin6_addr, 16);
		memcpy(req.r.id.idiag_dst, &m->sin6_addr, 16);
	} else {
		return -1;
	}
	s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (s < 0)
		return -1;
	if (sendto(s, &req, sizeof(req), 0, (struct sockaddr *)&nl, sizeof(nl)) < 0)
		goto out;
	n = recv(s, buf, sizeof(buf), 0);
	if (n < 0)
		goto out;
	for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
		struct inet_diag_msg *m;
		struct rtattr *a;
		int alen;

		if (h->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(h);

			rc = e->error == -ENOENT ? 1 : -1;
			goto out;
		}
		if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
			continue;
		m = NLMSG_DATA(h);
		*uid = m->idiag_uid;
		a = (struct rtattr *)(m + 1);
		alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
		for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
			if (a->rta_type == INET_DIAG_CGROUP_ID && RTA_PAYLOAD(a) >= sizeof(uint64_t)) {
				memcpy(cgroup_id, RTA_DATA(a), sizeof(uint64_t));
				rc = 0;
				goto out;
			}
		}
		rc = -1; /* a kernel without INET_DIAG_CGROUP_ID: cannot tell */
		goto out;
	}
out:
	close(s);
	return rc;
}

/* The IPv4 address of sa (also one mapped into IPv6), or 0 with *v4 unset. */
static int ipv4_of(const struct sockaddr *sa, struct in_addr *v4)
{
	const struct sockaddr_in6 *s6 = (const void *)sa;

	if (sa->sa_family == AF_INET) {
		*v4 = ((const struct sockaddr_in *)sa)->sin_addr;
		return 1;
	}
	if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		memcpy(v4, &s6->sin6_addr.s6_addr[12], 4);
		return 1;
	}
	return 0;
}

int peer_loopback(const struct sockaddr *sa)
{
	struct in_addr v4;

	if (ipv4_of(sa, &v4))
		return (ntohl(v4.s_addr) >> 24) == 127;
	return sa->sa_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* "a.b.c.0/24" or "x:x:x:x::/64": the network a remote peer counts as (one owner is likely to
 * hold all of it, and not much more), into out (INET6_ADDRSTRLEN + 4). "" if neither family. */
static void net_of(const struct sockaddr *sa, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	struct in_addr v4;

	out[0] = '\0';
	if (ipv4_of(sa, &v4)) {
		v4.s_addr &= htonl(0xffffff00u);
		if (inet_ntop(AF_INET, &v4, a, sizeof(a)))
			snprintf(out, len, "%s/24", a);
	} else if (sa->sa_family == AF_INET6) {
		struct in6_addr v6 = ((const struct sockaddr_in6 *)sa)->sin6_addr;

		memset(&v6.s6_addr[8], 0, 8);
		if (inet_ntop(AF_INET6, &v6, a, sizeof(a)))
			snprintf(out, len, "%s/64", a);
	}
}

void peer_source(const struct sockaddr *sa, int lookup, uint32_t uid, struct csource *out)
{
	struct in_addr v4;

	memset(out, 0, sizeof(*out));
	if (ipv4_of(sa, &v4))
		inet_ntop(AF_INET, &v4, out->addr, sizeof(out->addr));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out->addr, sizeof(out->addr));
	if (lookup == 0) {
		out->kind = CSOURCE_LOCAL;
		out->uid = uid;
	} else if (lookup == 1) {
		out->kind = CSOURCE_REMOTE;
		net_of(sa, out->net, sizeof(out->net));
	}
}

void peer_conn_key(const struct csource *src, char *out, size_t len)
{
	if (src->kind == CSOURCE_LOCAL)
		snprintf(out, len, "uid:%u", src->uid);
	else if (src->kind == CSOURCE_REMOTE)
		snprintf(out, len, "net:%s", src->net);
	else
		snprintf(out, len, "unknown");
}
