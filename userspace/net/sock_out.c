/* Socket bufferevents that write in the loop turn that filled them.
 *
 * libevent's socket bufferevent writes only after epoll says the socket is writable:
 * adding to an idle output adds EPOLLOUT (epoll_ctl), the next epoll_wait reports it,
 * the write callback writes and removes EPOLLOUT again (epoll_ctl). For a proxy that
 * forwards one small message at a time that is two epoll_ctl and a loop turn per
 * message, in each direction, on top of the writev (pgbouncer writes at once and asks
 * epoll only when the kernel's buffer is full).
 *
 * Here the first bytes added to an idle output schedule a push that runs later in the
 * same loop turn (an event activated at once: whatever else the callback adds goes in
 * the same writev). The push writes what the kernel takes. When that is all of it, the
 * bufferevent's write event is taken off before epoll ever saw it (the event base keeps
 * a changelist, so the add and the delete cancel) and the write callback runs as
 * libevent would have run it. When the kernel's buffer is full, or the write fails, the
 * bufferevent's own write event takes over: it writes the rest when epoll says so, and
 * reports errors and EOF the usual way.
 *
 * The push holds a reference on the bufferevent, so a bufferevent freed in between lives
 * until the push has run (the bytes queued before the free still go out, then the socket
 * closes).
 *
 * A push's event is taken from a list of idle ones and goes back when it has run
 * (event_base_once allocated and freed one a write: two a proxied statement, some 900
 * instructions each). An idle event belongs to no event base: it is assigned anew each
 * time, and it is our memory (event_assign), freed without libevent.
 */
#include "sock_out.h"

#include <event2/buffer.h>
#include <stdlib.h>

#define IDLE_MAX 64     /* idle push events kept; more are freed */

/* A push and, after it, its event (event_get_struct_event_size() bytes). */
struct push {
	struct bufferevent *bev;
	struct push *next;
};

#define PUSH_EV(p) ((struct event *)(void *)((p) + 1))

static struct push *idle;
static unsigned n_idle;

static void push(evutil_socket_t fd_unused, short what, void *arg)
{
	struct push *p = arg;
	struct bufferevent *bev = p->bev;
	struct evbuffer *out = bufferevent_get_output(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (fd >= 0 && evbuffer_get_length(out) > 0) {
		/* The bufferevent keeps its output's front frozen but while it writes itself. */
		evbuffer_unfreeze(out, 1);
		(void)evbuffer_write(out, fd);
		evbuffer_freeze(out, 1);
	}
	if (evbuffer_get_length(out) == 0) {
		/* Nothing for epoll to wait for: the write event is not needed. */
		(void)bufferevent_disable(bev, EV_WRITE);
		bufferevent_trigger(bev, EV_WRITE, 0);
	} else {
		(void)bufferevent_enable(bev, EV_WRITE);
	}
	bufferevent_decref(bev);
	/* Done with the event (libevent no longer looks at it once its callback runs). */
	if (n_idle < IDLE_MAX) {
		p->next = idle;
		idle = p;
		n_idle++;
	} else {
		free(p);        /* the event is neither pending nor active */
	}
	(void)fd_unused;
	(void)what;
}

/* An idle push for bev on base, or a new one; NULL without memory. */
static struct push *push_get(struct event_base *base, struct bufferevent *bev)
{
	struct push *p = idle;

	if (p) {
		idle = p->next;
		n_idle--;
	} else if (!(p = malloc(sizeof(*p) + event_get_struct_event_size()))) {
		return NULL;
	}
	if (event_assign(PUSH_EV(p), base, -1, 0, push, p) < 0) {
		free(p);
		return NULL;
	}
	p->bev = bev;
	return p;
}

static void on_added(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
	struct bufferevent *bev = arg;
	struct push *p;

	/* Only the first bytes into an idle output: later ones ride along with the push. */
	if (info->n_added == 0 || info->orig_size != 0)
		return;
	if (!(p = push_get(bufferevent_get_base(bev), bev))) {
		/* No memory for the push: libevent's own write event does the writing. */
		(void)bufferevent_enable(bev, EV_WRITE);
		return;
	}
	bufferevent_incref(bev);
	event_active(PUSH_EV(p), EV_TIMEOUT, 1);
	(void)out;
}

struct bufferevent *sock_out_new(struct event_base *base, evutil_socket_t fd, int options)
{
	struct bufferevent *bev = bufferevent_socket_new(base, fd, options);

	if (bev && !evbuffer_add_cb(bufferevent_get_output(bev), on_added, bev)) {
		bufferevent_free(bev);
		return NULL;
	}
	return bev;
}
