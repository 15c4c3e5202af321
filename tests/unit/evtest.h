/* What the unit tests of the daemon's socket code share: its kind of event base, socket pairs. */
#ifndef AIRLOCK_TEST_EVTEST_H
#define AIRLOCK_TEST_EVTEST_H

#include <event2/event.h>
#include <fcntl.h>
#include <sys/socket.h>

/* The daemon's event base: epoll with a changelist. */
static inline struct event_base *new_base(void)
{
	struct event_config *ec = event_config_new();
	struct event_base *base;

	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

/* A connected non-blocking pair: 0 or -1. */
static inline int pair(int fd[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fd) < 0)
		return -1;
	return fcntl(fd[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(fd[1], F_SETFL, O_NONBLOCK) < 0 ? -1 : 0;
}

#endif
