/* Who an agent session is (the kernel's word at accept), as rules and reviewers see it: one definition for every terminating proxy. */
#ifndef AIRLOCK_NET_AGENT_WHO_H
#define AIRLOCK_NET_AGENT_WHO_H

#include <stdint.h>

struct al_subject;
struct approval_req;
struct bufferevent;
struct event_base;
struct store;
struct store_conn;

struct agent_who {
	uint64_t cgroup_id;
	char *cgroup_path, *exe, *comm;         /* NULL: unknown */
	uint32_t pid, uid;
	char iface[16];                         /* the pinned interface it came through (TPROXY) */
	uint32_t ifindex;                       /* and its index; 0 with no interface */
	int counted;                            /* counted in agent_sessions until agent_who_free */
};

/* Copies the identity of the accepted connection (a string without memory stays NULL) and
 * counts the session in for its agent (agent_sessions). */
void agent_who_set(struct agent_who *w, const struct store_conn *c);
/* The start both terminating proxies share: the connection's row written in the open batch
 * (*row 0 if it could not be), TCP_NODELAY on the agent's socket, the identity copied into w,
 * and the agent's bufferevent (NULL without memory: fd is then still open). */
struct bufferevent *agent_accept(struct event_base *base, struct store *st, int fd, const struct store_conn *c,
				 int64_t *row, struct agent_who *w);
/* Frees the copies and counts the session out. */
void agent_who_free(struct agent_who *w);
/* The identity part of a policy subject and of a review request. */
void agent_who_subject(const struct agent_who *w, struct al_subject *subj);
void agent_who_request(const struct agent_who *w, struct approval_req *q);

/*
 * Sessions open now per agent: its cgroup, or for an agent behind a pinned interface (cgroup
 * 0) that interface. The terminating proxies count theirs through agent_who_set and
 * agent_who_free, the relay its relayed ones with agent_sessions_add (+1 at the start, -1 at
 * the end), so max_sessions_per_agent bounds them all. One event loop: no locking.
 */
unsigned int agent_sessions(uint64_t cgroup_id, const char *iface);
/* -1 if a count could not be kept (out of memory; the session is then not counted). */
int agent_sessions_add(uint64_t cgroup_id, const char *iface, int delta);

#endif
