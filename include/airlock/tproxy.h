/* The TPROXY listener: TCP of agents behind pinned interfaces, identified by interface and handed to the relay. */
#ifndef AIRLOCK_TPROXY_H
#define AIRLOCK_TPROXY_H

#include <stdint.h>
#include <airlock/common.h>
#include <airlock/netdev.h>
#include <airlock/relay.h>
#include <airlock/store.h>

struct event_base;
struct tproxy;

/*
 * Listens on 127.0.0.1 and ::1 at `port` with IP_TRANSPARENT, where the
 * nftables TPROXY rules deliver pinned interfaces' TCP. Each accepted
 * connection's original destination is its local address (getsockname);
 * its identity is the interface the XDP program saw its SYN arrive on
 * (xdp_take_flow). A connection with no such record, or from an interface
 * that is not pinned as an agent's, is closed and recorded (no_identity).
 */
int tproxy_start(struct event_base *base, uint16_t port, struct relay *r, struct xdp *x,
		 struct store *st, struct tproxy **out, char *err, size_t errlen) AL_MUST;
void tproxy_free(struct tproxy *t);

struct tproxy_stats {
	uint64_t accepted;
	uint64_t no_identity;
};
void tproxy_stats(const struct tproxy *t, struct tproxy_stats *out);

#endif
