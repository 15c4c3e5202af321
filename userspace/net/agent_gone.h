/* Notices that an agent whose socket a session is not reading (a request parked for review) is gone: its FIN, then a reset. */
#ifndef AIRLOCK_NET_AGENT_GONE_H
#define AIRLOCK_NET_AGENT_GONE_H

#include <airlock/common.h>
#include <event2/util.h>

struct event;
struct event_base;

enum agent_gone_what {
	AGENT_GONE_FIN,         /* it sent its FIN: a half-close, or a close (told once) */
	AGENT_GONE_RESET,       /* its connection was reset or failed: it reads nothing more */
};

/*
 * Embedded in a session, zeroed. libevent reports a reset on a socket as
 * readable and writable, not closed, so an EV_CLOSED watch misses it; and
 * after a FIN a level-triggered EV_CLOSED fires on every loop. So the socket
 * is watched through an epoll set of its own (readable when the socket has
 * news), asked for the FIN once and for resets and errors after.
 */
struct agent_gone {
	struct event *ev;       /* NULL: not watching */
	int epfd;
	evutil_socket_t fd;
	void (*cb)(void *arg, enum agent_gone_what what);
	void *arg;
};

/* Starts watching fd (nothing if it is watched already): 0, -1 (no fd or memory). The callback
 * may stop the watch or end the session; nothing of g is used after it returns. */
int agent_gone_watch(struct agent_gone *g, struct event_base *base, evutil_socket_t fd,
		     void (*cb)(void *arg, enum agent_gone_what what), void *arg) AL_MUST;
/* Stops watching (nothing if not watching). */
void agent_gone_stop(struct agent_gone *g);

#endif
