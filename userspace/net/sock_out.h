/* Socket bufferevents that write in the loop turn that filled them (see sock_out.c). */
#ifndef AIRLOCK_NET_SOCK_OUT_H
#define AIRLOCK_NET_SOCK_OUT_H

#include <event2/bufferevent.h>
#include <event2/event.h>

/* A socket bufferevent (bufferevent_socket_new) that writes what its output gets in the
 * same turn of the loop, with one writev, when the kernel takes it; NULL on failure. */
struct bufferevent *sock_out_new(struct event_base *base, evutil_socket_t fd, int options);

/*
 * Reading on again, if it is off. Enabling a bufferevent that reads already is not free: a
 * TLS filter tries an SSL_read at once (clearing OpenSSL's error queue first) that finds
 * nothing, a socket re-adds its event; done after every reply, it was two a request.
 */
static inline void bev_read_on(struct bufferevent *bev)
{
	if (!(bufferevent_get_enabled(bev) & EV_READ))
		bufferevent_enable(bev, EV_READ);
}

#endif
