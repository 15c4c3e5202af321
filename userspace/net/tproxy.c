/* The TPROXY listener for agents behind pinned interfaces: original destination from getsockname, identity from the XDP SYN record. */
#include <airlock/tproxy.h>

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

struct tproxy {
	struct relay *relay;
	struct xdp *xdp;
	struct store *store;
	struct evconnlistener *ls[2];
	struct tproxy_stats stats;
};

static void abort_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* The interface of the connection, if the XDP program of a pinned agent
 * interface let its SYN in; fills name. */
static int flow_iface(struct tproxy *t, const struct al_addr *src, uint16_t sport,
		      const struct al_addr *dst, uint16_t dport, char name[IF_NAMESIZE], uint32_t *ifindex)
{
	const struct xdp_iface *i;
	struct al_flow_key k;
	struct al_flow_origin o;

	memset(&k, 0, sizeof(k));
	k.src = *src;
	k.dst = *dst;
	k.sport = sport;
	k.dport = dport;
	if (xdp_take_flow(t->xdp, &k, &o) < 0 || o.ifindex == 0 || o.ifindex > INT32_MAX)
		return -1;
	i = xdp_by_index(t->xdp, (int)o.ifindex);
	if (!i || i->role != XDP_ROLE_AGENT)
		return -1;
	if (i->name[0])
		memcpy(name, i->name, IF_NAMESIZE);
	else
		snprintf(name, IF_NAMESIZE, "if%u", o.ifindex);
	*ifindex = o.ifindex;
	return 0;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		      void *arg)
{
	struct tproxy *t = arg;
	struct store_conn c = { 0 };
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	struct al_addr peer, dst;
	uint16_t peer_port, dst_port;
	char peer_s[INET6_ADDRSTRLEN], dst_s[INET6_ADDRSTRLEN], ifname[IF_NAMESIZE];

	(void)l;
	(void)salen;
	t->stats.accepted++;
	if (al_addr_from_sockaddr(&peer, &peer_port, sa) < 0 ||
	    getsockname(fd, (struct sockaddr *)&local, &llen) < 0 ||
	    al_addr_from_sockaddr(&dst, &dst_port, (struct sockaddr *)&local) < 0) {
		abort_close(fd);
		return;
	}
	al_addr_str(&peer, peer_s, sizeof(peer_s));
	al_addr_str(&dst, dst_s, sizeof(dst_s));
	c.opened_us = al_now_us();
	c.protocol = "tcp";
	c.agent_addr = peer_s;
	c.agent_port = peer_port;
	c.dst_addr = dst_s;
	c.dst_port = dst_port;
	if (flow_iface(t, &peer, peer_port, &dst, dst_port, ifname, &c.ifindex) < 0) {
		struct store_conn_end e = {
			.closed_us = al_now_us(),
			.reason = AL_REASON_NO_IDENTITY,
			.detail = "no XDP record of a pinned interface for this connection",
		};

		t->stats.no_identity++;
		abort_close(fd);
		if (store_conn_record(t->store, &c, &e) < 0)
			al_err("could not record a refused TPROXY connection");
		return;
	}
	c.iface = ifname;
	(void)relay_adopt(t->relay, fd, &c, &dst, dst_port);
}

int tproxy_start(struct event_base *base, uint16_t port, struct relay *r, struct xdp *x,
		 struct store *st, struct tproxy **out, char *err, size_t errlen)
{
	struct tproxy *t = calloc(1, sizeof(*t));

	if (!t)
		return al_errf(err, errlen, "out of memory");
	t->relay = r;
	t->xdp = x;
	t->store = st;
	t->ls[0] = relay_listen_loopback(base, AF_INET, port, 1, on_accept, t, "tproxy", err, errlen);
	if (!t->ls[0])
		goto fail;
	t->ls[1] = relay_listen_loopback(base, AF_INET6, port, 1, on_accept, t, "tproxy", err, errlen);
	if (!t->ls[1])
		goto fail;
	*out = t;
	return 0;
fail:
	tproxy_free(t);
	return -1;
}

void tproxy_stats(const struct tproxy *t, struct tproxy_stats *out)
{
	*out = t->stats;
}

void tproxy_free(struct tproxy *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < AL_ARRAY_LEN(t->ls); i++)
		if (t->ls[i])
			evconnlistener_free(t->ls[i]);
	free(t);
}
