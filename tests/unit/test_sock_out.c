/* Socket bufferevents that write in the loop turn that filled them (userspace/net/sock_out.c). */
#include "evtest.h"
#include "harness.h"

#include "../../userspace/net/sock_out.c"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

struct seen {
	int writes;     /* write callbacks (output drained) */
	short events;   /* the event callback's flags, or'ed */
};

static void on_write(struct bufferevent *bev, void *arg)
{
	((struct seen *)arg)->writes++;
	(void)bev;
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	((struct seen *)arg)->events |= what;
	(void)bev;
}

struct adder {
	struct bufferevent *bev;
	const char *pieces[3];
};

/* Adds its pieces one by one from inside a callback, as a proxy forwarding a message does. */
static void add_pieces(evutil_socket_t fd, short what, void *arg)
{
	struct adder *a = arg;

	for (int i = 0; i < 3 && a->pieces[i]; i++)
		bufferevent_write(a->bev, a->pieces[i], strlen(a->pieces[i]));
	(void)fd;
	(void)what;
}

/* What a callback adds leaves in one write, in the same turn of the loop, and the write
 * event is not left on (plain libevent writes only a turn later, after epoll said so). */
static void case_same_turn(void)
{
	struct event_base *base = new_base();
	struct seen seen = { 0 };
	struct adder a = { .pieces = { "Query ", "and ", "more" } };
	char got[64];
	int fd[2];
	ssize_t n;

	CHECK(base && pair(fd) == 0);
	a.bev = sock_out_new(base, fd[0], BEV_OPT_CLOSE_ON_FREE);
	CHECK(a.bev != NULL);
	bufferevent_setcb(a.bev, NULL, on_write, on_event, &seen);
	CHECK(event_base_once(base, -1, EV_TIMEOUT, add_pieces, &a, NULL) == 0);
	CHECK(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) == 0);
	n = recv(fd[1], got, sizeof(got), MSG_DONTWAIT);
	CHECK(n == 14);
	CHECK(n == 14 && memcmp(got, "Query and more", 14) == 0);
	CHECK(seen.writes == 1);
	CHECK(seen.events == 0);
	CHECK((bufferevent_get_enabled(a.bev) & EV_WRITE) == 0);
	CHECK(evbuffer_get_length(bufferevent_get_output(a.bev)) == 0);

	/* And again: the next message goes out the same way. */
	a.pieces[0] = "second";
	a.pieces[1] = NULL;
	CHECK(event_base_once(base, -1, EV_TIMEOUT, add_pieces, &a, NULL) == 0);
	CHECK(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) == 0);
	n = recv(fd[1], got, sizeof(got), MSG_DONTWAIT);
	CHECK(n == 6 && memcmp(got, "second", 6) == 0);
	CHECK(seen.writes == 2);
	bufferevent_free(a.bev);
	close(fd[1]);
	event_base_free(base);
}

/* More than the kernel takes at once: the rest goes when the peer reads, in order, and the
 * write callback runs once everything is out. */
static void case_full(void)
{
	struct event_base *base = new_base();
	struct seen seen = { 0 };
	struct bufferevent *bev;
	size_t total = 4 << 20, got = 0;
	unsigned char *data = malloc(total), buf[65536];
	int fd[2], ok = 1, small = 4096, turns = 0;

	CHECK(base && data && pair(fd) == 0);
	(void)setsockopt(fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	(void)setsockopt(fd[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	for (size_t i = 0; i < total; i++)
		data[i] = (unsigned char)(i * 7 + (i >> 12));
	bev = sock_out_new(base, fd[0], BEV_OPT_CLOSE_ON_FREE);
	CHECK(bev != NULL);
	bufferevent_setcb(bev, NULL, on_write, on_event, &seen);
	bufferevent_write(bev, data, total);
	CHECK(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) == 0);
	CHECK(evbuffer_get_length(bufferevent_get_output(bev)) > 0);
	CHECK(bufferevent_get_enabled(bev) & EV_WRITE);
	CHECK(seen.writes == 0);
	while (got < total && turns++ < 100000) {
		ssize_t n = recv(fd[1], buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0) {
			ok &= memcmp(buf, data + got, (size_t)n) == 0;
			got += (size_t)n;
		} else if (n < 0 && errno != EAGAIN) {
			break;
		}
		(void)event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	CHECK(got == total);
	CHECK(ok);
	CHECK(seen.writes == 1);
	CHECK(seen.events == 0);
	bufferevent_free(bev);
	close(fd[1]);
	event_base_free(base);
	free(data);
}

/* Freed right after the bytes were added: they still go out, then the socket closes. */
static void case_freed(void)
{
	struct event_base *base = new_base();
	struct bufferevent *bev;
	char got[64];
	int fd[2];
	ssize_t n;

	CHECK(base && pair(fd) == 0);
	bev = sock_out_new(base, fd[0], BEV_OPT_CLOSE_ON_FREE);
	CHECK(bev != NULL);
	bufferevent_write(bev, "bye", 3);
	bufferevent_free(bev);
	CHECK(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) == 0);
	n = recv(fd[1], got, sizeof(got), MSG_DONTWAIT);
	CHECK(n == 3 && memcmp(got, "bye", 3) == 0);
	CHECK(recv(fd[1], got, sizeof(got), MSG_DONTWAIT) == 0);
	close(fd[1]);
	event_base_free(base);
}

/* The peer is gone: the write fails, and the bufferevent reports it the usual way. */
static void case_error(void)
{
	struct event_base *base = new_base();
	struct seen seen = { 0 };
	struct bufferevent *bev;
	int fd[2];

	CHECK(base && pair(fd) == 0);
	bev = sock_out_new(base, fd[0], BEV_OPT_CLOSE_ON_FREE);
	CHECK(bev != NULL);
	bufferevent_setcb(bev, NULL, on_write, on_event, &seen);
	close(fd[1]);
	bufferevent_write(bev, "lost", 4);
	for (int i = 0; i < 10 && !seen.events; i++)
		(void)event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	CHECK(seen.events & BEV_EVENT_ERROR);
	CHECK(seen.events & BEV_EVENT_WRITING);
	CHECK(seen.writes == 0);
	bufferevent_free(bev);
	event_base_free(base);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	RUN(case_same_turn);
	RUN(case_full);
	RUN(case_freed);
	RUN(case_error);
	TEST_EXIT();
}
