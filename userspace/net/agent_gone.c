/* Notices that an agent whose socket a session is not reading is gone: its FIN once, then a reset or error. */
#include "agent_gone.h"

#include <event2/event.h>
#include <sys/epoll.h>
#include <unistd.h>

static void on_news(evutil_socket_t fd, short what, void *arg)
{
	struct agent_gone *g = arg;
	struct epoll_event e;

	(void)fd;
	(void)what;
	if (epoll_wait(g->epfd, &e, 1, 0) != 1)
		return;
	if (e.events & (EPOLLERR | EPOLLHUP)) {
		g->cb(g->arg, AGENT_GONE_RESET);
		return;
	}
	if (e.events & EPOLLRDHUP) {
		/* Events 0: only errors and hang-ups, which epoll always reports. */
		struct epoll_event none = { .events = 0, .data.fd = g->fd };

		if (epoll_ctl(g->epfd, EPOLL_CTL_MOD, g->fd, &none) < 0) {
			/* Cannot tell a reset from here on: count the FIN as the end. */
			g->cb(g->arg, AGENT_GONE_RESET);
			return;
		}
		g->cb(g->arg, AGENT_GONE_FIN);
	}
}

int agent_gone_watch(struct agent_gone *g, struct event_base *base, evutil_socket_t fd,
		     void (*cb)(void *arg, enum agent_gone_what what), void *arg)
{
	struct epoll_event e = { .events = EPOLLRDHUP, .data.fd = fd };

	if (g->ev)
		return 0;
	g->fd = fd;
	g->cb = cb;
	g->arg = arg;
	g->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (g->epfd < 0)
		return -1;
	if (epoll_ctl(g->epfd, EPOLL_CTL_ADD, fd, &e) < 0)
		goto fail;
	g->ev = event_new(base, g->epfd, EV_READ | EV_PERSIST, on_news, g);
	if (!g->ev)
		goto fail;
	if (event_add(g->ev, NULL) < 0) {
		event_free(g->ev);
		g->ev = NULL;
		goto fail;
	}
	return 0;
fail:
	close(g->epfd);
	g->epfd = -1;
	return -1;
}

void agent_gone_stop(struct agent_gone *g)
{
	if (!g->ev)
		return;
	event_free(g->ev);
	g->ev = NULL;
	close(g->epfd);
	g->epfd = -1;
}
