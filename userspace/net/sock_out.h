/* Socket bufferevents that write in the loop turn that filled them (see sock_out.c). */
#ifndef AIRLOCK_NET_SOCK_OUT_H
#define AIRLOCK_NET_SOCK_OUT_H

#include <event2/bufferevent.h>
#include <event2/event.h>

/* A socket bufferevent (bufferevent_socket_new) that writes what its output gets in the
 * same turn of the loop, with one writev, when the kernel takes it; NULL on failure. */
struct bufferevent *sock_out_new(struct event_base *base, evutil_socket_t fd, int options);

#endif
