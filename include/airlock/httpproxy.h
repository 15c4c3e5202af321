/* The HTTPS proxy: reads the agent's ClientHello, terminates TLS with a minted leaf, decides every HTTP/1.1 request, forwards over verified TLS. */
#ifndef AIRLOCK_HTTPPROXY_H
#define AIRLOCK_HTTPPROXY_H

#include <stdint.h>
#include <airlock/common.h>
#include <airlock/config.h>
#include <airlock/secrets.h>
#include <airlock/store.h>
#include <airlock/tls.h>

struct event_base;
struct httpproxy;
struct approval;

/* approval may be NULL: requests a rule sends to review are then refused. */
int httpproxy_new(struct event_base *base, const struct al_config *cfg, struct store *st,
		  struct tls_ca *ca, const struct al_secrets *secrets, struct approval *approval,
		  struct httpproxy **out, char *err, size_t errlen) AL_MUST;
/* New sessions use these; running ones keep theirs (the caller keeps old ones alive). */
void httpproxy_set_config(struct httpproxy *p, const struct al_config *cfg, const struct al_secrets *secrets);
void httpproxy_free(struct httpproxy *p);

/*
 * Takes an accepted agent connection to an https resource (res matched by
 * address and port). The ClientHello's server name (lower case, without one
 * trailing dot) picks among the https resources on that address and port
 * (their `host` lists); without one, the only resource there. A connection
 * none of them takes is closed (policy_deny), never relayed as bytes: the
 * address and port are a resource's, whose rules would be skipped.
 * Returns 0 if a session started.
 */
int httpproxy_start(struct httpproxy *p, int fd, const struct store_conn *c,
		    const struct al_addr *dst, uint16_t dst_port, const struct al_resource *res);

struct httpproxy_stats {
	uint64_t live, sessions, requests, denied, held, malformed;
};
void httpproxy_stats(const struct httpproxy *p, struct httpproxy_stats *out);

#endif
