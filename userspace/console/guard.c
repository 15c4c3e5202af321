/* What one source may hold of the console: its connections counted (a local uid, a remote /24 or /64), and a deadline for each request head. */
#include "console_int.h"

#include <errno.h>
#include <sys/socket.h>

/*
 * libmicrohttpd's own limits are the total (MHD_OPTION_CONNECTION_LIMIT), one per exact
 * address, and a timeout that any byte resets: a local user, who has all of 127/8, filled the
 * console with idle connections from as many addresses, and one that sends a byte now and then
 * kept a slot for good. Here a source is what it cannot multiply (struct csource), and a
 * connection that has not sent a whole request head within console_head_timeout of opening,
 * or of its last answer, is closed whatever it sent meanwhile. A request in progress is not
 * cut: the live feed and the long reads wait suspended (MHD does not time them), the rest go
 * by MHD's timeout, which only counts time without a byte.
 *
 * MHD has no call that closes a connection from outside its callbacks; shutdown() of its
 * socket does it: the next MHD_run reads the end of the stream and closes the connection as a
 * client's close (the fd stays MHD's until then, so nothing else can take its number).
 */

static struct conn_count *count_of(struct console *c, const char *key, int create)
{
	struct conn_count *free_slot = NULL;

	for (size_t i = 0; i < CONSOLE_MAX_CONNS; i++) {
		struct conn_count *n = &c->counts[i];

		if (n->n && strcmp(n->key, key) == 0)
			return n;
		if (!n->n && !free_slot)
			free_slot = n;
	}
	if (!create || !free_slot)
		return NULL;
	snprintf(free_slot->key, sizeof(free_slot->key), "%s", key);
	return free_slot;
}

/* A connection of a remote network over its share is closed before MHD takes it up. Local
 * peers are counted by uid once their socket is known (guard_open): their address says nothing. */
enum MHD_Result guard_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
	struct console *c = cls;
	struct csource src;
	struct conn_count *n;
	char key[64];

	if (!addr || len < sizeof(struct sockaddr_in) || peer_loopback(addr))
		return MHD_YES;
	peer_source(addr, 1, 0, &src);
	peer_conn_key(&src, key, sizeof(key));
	n = count_of(c, key, 0);
	if (n && n->n >= CONSOLE_CONNS_PER_SOURCE) {
		c->refused_conns++;
		snprintf(c->refused_last, sizeof(c->refused_last), "%s", src.addr);
		return MHD_NO;
	}
	return MHD_YES;
}

void guard_open(struct console *c, struct cconn *cc)
{
	struct conn_count *n;
	char key[64];

	peer_conn_key(&cc->src, key, sizeof(key));
	n = count_of(c, key, 1);
	cc->wait_us = al_mono_us();
	LIST_INSERT_HEAD(&c->conns, cc, link);
	if (n && n->n < CONSOLE_CONNS_PER_SOURCE && cc->fd >= 0) {
		n->n++;
		memcpy(cc->counted, n->key, sizeof(cc->counted));
		return;
	}
	/* Over its share (or, never with MHD's limit at CONSOLE_MAX_CONNS, no slot): closed. */
	cc->refused = 1;
	c->refused_conns++;
	snprintf(c->refused_last, sizeof(c->refused_last), "%s", key);
	if (cc->fd >= 0 && shutdown(cc->fd, SHUT_RDWR) < 0)
		al_debug("console: shutdown of a refused connection: %s", strerror(errno));
}

void guard_close(struct console *c, struct cconn *cc)
{
	struct conn_count *n = cc->counted[0] ? count_of(c, cc->counted, 0) : NULL;

	if (n && n->n)
		n->n--;
	LIST_REMOVE(cc, link);
}

void guard_request(struct cconn *cc, int in_request)
{
	cc->in_request = in_request;
	if (!in_request)
		cc->wait_us = al_mono_us();
}

void guard_tick(struct console *c)
{
	int64_t now = al_mono_us();
	struct cconn *cc;

	LIST_FOREACH(cc, &c->conns, link) {
		if (cc->in_request || cc->cut || cc->refused || now - cc->wait_us < c->head_us)
			continue;
		cc->cut = 1;
		c->cut_conns++;
		if (shutdown(cc->fd, SHUT_RDWR) < 0)
			al_debug("console: shutdown of an idle connection: %s", strerror(errno));
	}
	if (c->cut_conns)
		al_debug("console: closed %u connections that sent no request within %lld s", c->cut_conns,
			 (long long)(c->head_us / 1000000));
	if (c->refused_conns)
		al_warn("console: refused %u connections over %d from one source (the last from %s)",
			c->refused_conns, CONSOLE_CONNS_PER_SOURCE, c->refused_last);
	c->cut_conns = c->refused_conns = 0;
}
