/* The PostgreSQL proxy: terminates an agent's session, logs in upstream with the stored credential, decides every statement. */
#ifndef AIRLOCK_PGPROXY_H
#define AIRLOCK_PGPROXY_H

#include <stdint.h>
#include <airlock/common.h>
#include <airlock/config.h>
#include <airlock/secrets.h>
#include <airlock/store.h>
#include <airlock/tls.h>

struct event_base;
struct pgproxy;

/* The rule an audit row names for a statement refused before any rule because the proxy cannot
 * tell what it runs: an Execute of a portal it did not see bound, an EXECUTE or FETCH of a
 * statement or portal it did not see made. airlockctl policy test keeps these refused. */
#define PGPROXY_UNKNOWN_PORTAL "unknown portal"
#define PGPROXY_UNKNOWN_TARGET "unknown prepared statement or portal"

struct approval;
/* approval may be NULL: statements a rule sends to review are then refused. */
int pgproxy_new(struct event_base *base, const struct al_config *cfg, struct store *st,
		struct tls_ca *ca, const struct al_secrets *secrets, struct approval *approval,
		struct pgproxy **out, char *err, size_t errlen) AL_MUST;
/* New sessions use these; running ones keep what they started with (the
 * caller keeps old configurations alive). */
void pgproxy_set_config(struct pgproxy *p, const struct al_config *cfg, const struct al_secrets *secrets);
/* Ends every session (reason shutdown) and frees. */
void pgproxy_free(struct pgproxy *p);

/*
 * Takes an accepted agent connection for a postgres resource. c carries the
 * identity (the store row is opened here); the connection ends with a row
 * update naming the reason. Returns 0 if a session started.
 */
int pgproxy_start(struct pgproxy *p, int fd, const struct store_conn *c,
		  const struct al_addr *dst, uint16_t dst_port, const struct al_resource *res);

struct pgproxy_stats {
	uint64_t live, sessions, statements, denied;
};
void pgproxy_stats(const struct pgproxy *p, struct pgproxy_stats *out);

#endif
