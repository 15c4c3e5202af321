/* How a terminated session ends: its last bytes flushed, through a TLS filter too, then freed from the loop. */
#include "sess_end.h"

#include "tls_stream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct sess_end *e = arg;

	(void)fd;
	(void)what;
	e->free_fn(e->arg);
}

void sess_end_reap(struct sess_end *e)
{
	if (!e->timer) {
		/* The session could not get its timer (out of memory at its start): nothing of
		 * it runs on the loop yet. */
		e->free_fn(e->arg);
		return;
	}
	if (*e->agent)
		bufferevent_disable(*e->agent, EV_READ | EV_WRITE);
	event_del(e->timer);
	event_assign(e->timer, e->base, -1, 0, on_reap, e);
	event_active(e->timer, EV_TIMEOUT, 1);
}

static void on_flushed(struct bufferevent *bev, void *arg);

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	on_flushed(NULL, arg);
}

static void poll_in(struct sess_end *e, long usec)
{
	struct timeval tv = { 0, usec };

	event_del(e->timer);
	event_assign(e->timer, e->base, -1, 0, on_poll, e);
	evtimer_add(e->timer, &tv);
}

/* The agent's output is out; with TLS the filter drains into the socket's bufferevent, which
 * must empty too or the last message is lost. Then (if asked) a close_notify, so clients read
 * the end of a close-delimited body. */
static void on_flushed(struct bufferevent *bev, void *arg)
{
	struct sess_end *e = arg;
	struct bufferevent *agent = *e->agent;
	struct bufferevent *under = agent ? bufferevent_get_underlying(agent) : NULL;
	size_t left = agent ? evbuffer_get_length(bufferevent_get_output(agent)) : 0;

	(void)bev;
	if (under)
		left += evbuffer_get_length(bufferevent_get_output(under));
	if (left > 0 && e->polls++ < e->max_polls) {
		poll_in(e, 20 * 1000);
		return;
	}
	if (agent && e->close_notify && !e->notified) {
		SSL *ssl = tls_stream_ssl(agent);

		e->notified = 1;
		if (ssl && SSL_is_init_finished(ssl)) {
			SSL_shutdown(ssl);
			poll_in(e, 1000);
			return;
		}
	}
	e->free_fn(e->arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct sess_end *e = arg;

	(void)bev;
	(void)what;
	e->free_fn(e->arg);
}

/* on_flushed from the loop, now. */
static void poll_now(struct sess_end *e)
{
	event_del(e->timer);
	event_assign(e->timer, e->base, -1, 0, on_poll, e);
	event_active(e->timer, EV_TIMEOUT, 1);
}

/*
 * The last bytes, then the end. Whether they are out is looked at from the loop at once, not
 * only when the agent's write callback runs: a TLS stream encrypts them into the socket's
 * bufferevent inside bufferevent_write (the callback ran then, before it was set here), and
 * the socket emptying its output runs no callback of the stream's.
 */
void sess_end_send_last(struct sess_end *e, const void *last, size_t len, int timeout_s)
{
	struct bufferevent *agent = *e->agent;
	struct timeval tv = { timeout_s, 0 };

	bufferevent_disable(agent, EV_READ);
	bufferevent_write(agent, last, len);
	bufferevent_setcb(agent, NULL, on_flushed, on_event, e);
	bufferevent_set_timeouts(agent, NULL, &tv);
	bufferevent_enable(agent, EV_WRITE);
	poll_now(e);
}

void sess_end_drain(struct sess_end *e)
{
	bufferevent_disable(*e->agent, EV_READ);
	bufferevent_setcb(*e->agent, NULL, NULL, on_event, e);
	poll_now(e);
}
