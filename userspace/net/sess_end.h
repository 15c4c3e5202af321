/* How a terminated session (pgproxy, httpproxy) ends: last bytes flushed, through a TLS filter too, then freed from the loop. */
#ifndef AIRLOCK_NET_SESS_END_H
#define AIRLOCK_NET_SESS_END_H

#include <stddef.h>

struct bufferevent;
struct event;
struct event_base;

/*
 * Embedded in a session. The session's one-shot timer is reused for the
 * polls and the reap; agent points at the session's own agent bufferevent
 * field. free_fn(arg) frees the session; it is always called from the loop,
 * never from inside one of the session's own callbacks.
 */
struct sess_end {
	struct event_base *base;
	struct event *timer;
	struct bufferevent **agent;
	void (*free_fn)(void *arg);
	void *arg;
	int max_polls;          /* 20 ms polls for the TLS filter's output to reach the socket */
	int close_notify;       /* send a TLS close_notify once all is out */
	int polls, notified;
};

/* Frees the session on the loop's next turn; the agent reads and writes no more. */
void sess_end_reap(struct sess_end *e);
/* Sends last (an error the agent should read) and frees the session once it is out,
 * or after timeout_s. */
void sess_end_send_last(struct sess_end *e, const void *last, size_t len, int timeout_s);
/* Frees the session once what is already on its way to the agent is out. */
void sess_end_drain(struct sess_end *e);

#endif
