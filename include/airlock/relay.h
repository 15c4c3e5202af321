/* The steer listeners and the TCP relay sessions behind them. */
#ifndef AIRLOCK_RELAY_H
#define AIRLOCK_RELAY_H

#include <stdint.h>
#include <airlock/common.h>
#include <airlock/config.h>
#include <airlock/kernel.h>
#include <airlock/reason.h>
#include <airlock/store.h>

struct event_base;
struct relay;

/* Binds 127.0.0.1 and ::1 on cfg->steer_port and starts accepting.
 * The relay reads cfg on every accept; it must outlive the relay or be
 * replaced with relay_set_config. */
int relay_start(struct event_base *base, const struct al_config *cfg, struct kern *k,
		struct store *st, struct relay **out, char *err, size_t errlen) AL_MUST;
void relay_set_config(struct relay *r, const struct al_config *cfg);
/* Where connections to postgres resources go. */
struct pgproxy;
void relay_set_pgproxy(struct relay *r, struct pgproxy *p);
/* Where connections to https resources go. */
struct httpproxy;
void relay_set_httpproxy(struct relay *r, struct httpproxy *p);

struct relay_stats {
	uint64_t live;              /* sessions open now */
	uint64_t accepted;          /* since start */
	uint64_t by_reason[AL_REASON_MAX]; /* session ends since start */
	uint64_t max_sessions;      /* at once, relayed and terminated: max_sessions, or fewer
				     * if the file descriptor limit could not be raised for it */
	uint64_t fd_limit;          /* RLIMIT_NOFILE, raised for max_sessions */
	uint64_t per_agent;         /* of max_sessions, one agent's at once (config_sessions_per_agent) */
	uint64_t tls_passthrough;   /* relayed sessions that began with a TLS ClientHello, since start:
				     * TLS passed through unopened (a tcp resource's, or to a
				     * destination no resource names under `default relay`) */
};
void relay_stats(const struct relay *r, struct relay_stats *out);

/*
 * Takes an accepted agent connection whose identity (c) and original
 * destination are known, matches it to a resource, and relays it, or
 * refuses it (recorded with the reason). The steer listener uses it after
 * the BPF lookup; other entry points (TPROXY for agents in network
 * namespaces) fill c their own way. Returns 0 if a session was started.
 */
int relay_adopt(struct relay *r, int fd, struct store_conn *c, const struct al_addr *dst,
		uint16_t dst_port);

/* A listening socket on 127.0.0.1 or ::1 (v6 only) driven by the loop;
 * `transparent` for TPROXY. NULL with a message naming `what`. */
struct evconnlistener;
struct evconnlistener *relay_listen_loopback(struct event_base *base, int family, uint16_t port,
					     int transparent,
					     void (*cb)(struct evconnlistener *, int, struct sockaddr *,
							int, void *),
					     void *arg, const char *what, char *err, size_t errlen);

/* Ends every session (reason shutdown), closes the listeners, frees. */
void relay_free(struct relay *r);

#endif
