/* Accepts steered connections, finds who made them and where they meant to go, and relays them upstream. */
#include <airlock/relay.h>
#include <airlock/pgproxy.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <unistd.h>

#define CGPATH_CACHE 64

struct session;

struct relay {
	struct event_base *base;
	const struct al_config *cfg;
	struct kern *kern;
	struct store *store;
	struct evconnlistener *ls[2];
	struct pgproxy *pg;
	LIST_HEAD(, session) sessions;
	struct relay_stats stats;
	struct {
		uint64_t id;
		char path[256];
	} cgcache[CGPATH_CACHE];
	struct al_addr local[64];   /* this host's addresses, refreshed at most once a second */
	size_t n_local;
	int64_t local_at_us;
};

/* One side of a session: the agent's accepted socket or our upstream socket. */
struct side {
	struct bufferevent *bev;
	uint64_t bytes_in;          /* read from this side */
	unsigned int eof : 1;       /* this side sent FIN */
	unsigned int shut : 1;      /* we sent FIN to this side */
	unsigned int throttled : 1; /* reading paused: the other side's output is full */
};

struct session {
	LIST_ENTRY(session) link;
	struct relay *r;
	int64_t row;                /* store row id */
	struct side agent, up;
	int connected;
};

static void session_close(struct session *s, enum al_reason reason, const char *fmt, ...)
	AL_PRINTF(3, 4);

static struct side *other(struct session *s, struct side *x)
{
	return x == &s->agent ? &s->up : &s->agent;
}

/* Sends RST instead of FIN on close, so the peer sees an abort, not a clean end. */
static void set_abort_on_close(evutil_socket_t fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (fd >= 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void session_close(struct session *s, enum al_reason reason, const char *fmt, ...)
{
	struct store_conn_end e = { 0 };
	char detail[256] = "";
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof(detail), fmt, ap);
		va_end(ap);
	}
	if (reason != AL_REASON_CLOSED) {
		set_abort_on_close(bufferevent_getfd(s->agent.bev));
		if (s->up.bev)
			set_abort_on_close(bufferevent_getfd(s->up.bev));
	}
	e.closed_us = al_now_us();
	e.bytes_up = s->agent.bytes_in;
	e.bytes_down = s->up.bytes_in;
	e.reason = reason;
	e.detail = detail[0] ? detail : NULL;
	(void)!store_batch_begin(s->r->store);
	if (s->row > 0 && store_conn_close(s->r->store, s->row, &e) < 0)
		al_err("session %lld: could not record its end", (long long)s->row);
	al_debug("session %lld closed: %s %s", (long long)s->row, al_reason_name(reason), detail);
	if (reason < AL_REASON_MAX)
		s->r->stats.by_reason[reason]++;
	s->r->stats.live--;
	LIST_REMOVE(s, link);
	bufferevent_free(s->agent.bev);
	if (s->up.bev)
		bufferevent_free(s->up.bev);
	free(s);
}

static void maybe_finish(struct session *s)
{
	if (s->agent.eof && s->up.eof && s->agent.shut && s->up.shut)
		session_close(s, AL_REASON_CLOSED, NULL);
}

/* Output of x has drained to its low watermark. */
static void on_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	struct side *x = bev == s->agent.bev ? &s->agent : &s->up;
	struct side *y = other(s, x);
	size_t pending = evbuffer_get_length(bufferevent_get_output(bev));

	if (y->throttled && pending <= s->r->cfg->relay_buffer / 2) {
		y->throttled = 0;
		bufferevent_enable(y->bev, EV_READ);
	}
	if (y->eof && !x->shut && pending == 0) {
		/* The other side finished: pass its FIN on once its bytes are out. */
		if (shutdown(bufferevent_getfd(bev), SHUT_WR) < 0 && errno != ENOTCONN) {
			session_close(s, x == &s->agent ? AL_REASON_AGENT_RESET : AL_REASON_UPSTREAM_RESET,
				      "shutdown: %s", strerror(errno));
			return;
		}
		x->shut = 1;
		maybe_finish(s);
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	struct side *x = bev == s->agent.bev ? &s->agent : &s->up;
	struct side *y = other(s, x);
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(y->bev);
	size_t n = evbuffer_get_length(in);

	x->bytes_in += n;
	if (evbuffer_add_buffer(out, in) < 0) {
		session_close(s, AL_REASON_INTERNAL, "out of memory relaying %zu bytes", n);
		return;
	}
	if (evbuffer_get_length(out) >= s->r->cfg->relay_buffer) {
		x->throttled = 1;
		bufferevent_disable(bev, EV_READ);
	}
}

static enum al_reason upstream_error_reason(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return AL_REASON_UPSTREAM_REFUSED;
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EADDRNOTAVAIL:
		return AL_REASON_UPSTREAM_UNREACH;
	case ETIMEDOUT:
		return AL_REASON_UPSTREAM_TIMEOUT;
	default:
		return AL_REASON_UPSTREAM_RESET;
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	struct side *x = bev == s->agent.bev ? &s->agent : &s->up;
	struct side *y = other(s, x);
	int err = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;

		s->connected = 1;
		(void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		bufferevent_set_timeouts(bev, NULL, NULL);
		bufferevent_enable(s->up.bev, EV_READ | EV_WRITE);
		bufferevent_enable(s->agent.bev, EV_READ | EV_WRITE);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		session_close(s, AL_REASON_UPSTREAM_TIMEOUT, "no answer from upstream in %u ms",
			      s->r->cfg->connect_timeout_ms);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		if (x == &s->up && !s->connected)
			session_close(s, upstream_error_reason(err), "connect: %s", strerror(err));
		else if (x == &s->up)
			session_close(s, AL_REASON_UPSTREAM_RESET, "upstream: %s", strerror(err));
		else
			session_close(s, AL_REASON_AGENT_RESET, "agent: %s", strerror(err));
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* Bytes may still sit in the input if reading was throttled; the
		 * read callback has moved everything before EOF is reported. */
		x->eof = 1;
		bufferevent_setwatermark(y->bev, EV_WRITE, 0, 0);
		on_write(y->bev, s);
	}
}

static const char *cgroup_path_cached(struct relay *r, uint64_t id)
{
	size_t slot = id % CGPATH_CACHE;

	if (r->cgcache[slot].id != id) {
		if (kern_cgroup_path(id, r->cgcache[slot].path, sizeof(r->cgcache[slot].path)) < 0)
			return NULL; /* gone already: do not cache a miss */
		r->cgcache[slot].id = id;
	}
	return r->cgcache[slot].path;
}

/* Records a connection that ends at accept (no session object). */
static void record_refused(struct relay *r, const struct store_conn *c, enum al_reason reason,
			   const char *detail)
{
	struct store_conn_end e = { .closed_us = al_now_us(), .reason = reason, .detail = detail };

	(void)!store_batch_begin(r->store);
	if (store_conn_record(r->store, c, &e) < 0)
		al_err("could not record a refused connection (%s)", al_reason_name(reason));
	if (reason < AL_REASON_MAX)
		r->stats.by_reason[reason]++;
}

/* 1 if dst reaches this host: loopback, unspecified, or one of its addresses. */
static int is_local(struct relay *r, const struct al_addr *dst)
{
	static const uint8_t zero[16];
	uint8_t b[16];
	int64_t now = al_mono_us();

	memcpy(b, dst->w, 16);
	if (memcmp(b, zero, 16) == 0 || (b[10] == 0xff && b[11] == 0xff && memcmp(b, zero, 10) == 0 &&
					 (b[12] == 127 || (b[12] | b[13] | b[14] | b[15]) == 0)))
		return 1;
	if (memcmp(b, zero, 15) == 0 && b[15] == 1)
		return 1;
	if (now - r->local_at_us > 1000000) {
		struct ifaddrs *ifa, *i;

		r->n_local = 0;
		r->local_at_us = now;
		if (getifaddrs(&ifa) == 0) {
			for (i = ifa; i && r->n_local < AL_ARRAY_LEN(r->local); i = i->ifa_next) {
				uint16_t port;

				if (i->ifa_addr && al_addr_from_sockaddr(&r->local[r->n_local], &port,
									 i->ifa_addr) == 0)
					r->n_local++;
			}
			freeifaddrs(ifa);
		}
	}
	for (size_t k = 0; k < r->n_local; k++)
		if (memcmp(&r->local[k], dst, sizeof(*dst)) == 0)
			return 1;
	return 0;
}

int relay_adopt(struct relay *r, evutil_socket_t fd, struct store_conn *c, const struct al_addr *dst,
		uint16_t dst_port)
{
	const struct al_config *cfg = r->cfg;
	const struct al_resource *res;
	struct sockaddr_storage ss;
	struct session *s;
	socklen_t sslen;

	/* Airlock's own listeners are not destinations: no loops, no side doors. */
	if ((dst_port == cfg->steer_port || dst_port == cfg->tproxy_port ||
	     (cfg->console_enabled && dst_port == cfg->console_port)) && is_local(r, dst)) {
		set_abort_on_close(fd);
		close(fd);
		record_refused(r, c, AL_REASON_STEER_LOOP, "destination is airlockd's own listener");
		return -1;
	}
	res = config_match(cfg, dst, dst_port);
	c->resource = res ? res->name : NULL;
	c->protocol = config_proto_name(res ? res->proto : AL_PROTO_TCP);

	if (!res && cfg->default_action == AL_DEFAULT_DENY) {
		set_abort_on_close(fd);
		close(fd);
		record_refused(r, c, AL_REASON_POLICY_DENY, "no resource names this destination");
		return -1;
	}
	if (r->stats.live >= cfg->max_sessions) {
		set_abort_on_close(fd);
		close(fd);
		record_refused(r, c, AL_REASON_LIMIT, "max_sessions reached");
		return -1;
	}
	if (res && res->proto == AL_PROTO_POSTGRES) {
		if (!r->pg) {
			set_abort_on_close(fd);
			close(fd);
			record_refused(r, c, AL_REASON_INTERNAL, "no PostgreSQL proxy");
			return -1;
		}
		return pgproxy_start(r->pg, fd, c, dst, dst_port, res);
	}

	s = calloc(1, sizeof(*s));
	if (!s) {
		set_abort_on_close(fd);
		close(fd);
		record_refused(r, c, AL_REASON_INTERNAL, "out of memory");
		return -1;
	}
	s->r = r;
	s->agent.bev = bufferevent_socket_new(r->base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->up.bev = bufferevent_socket_new(r->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!s->agent.bev || !s->up.bev) {
		if (s->agent.bev)
			bufferevent_free(s->agent.bev);
		else
			close(fd);
		if (s->up.bev)
			bufferevent_free(s->up.bev);
		free(s);
		record_refused(r, c, AL_REASON_INTERNAL, "out of memory");
		return -1;
	}
	(void)!store_batch_begin(r->store);
	if (store_conn_open(r->store, c, &s->row) < 0)
		s->row = 0;
	LIST_INSERT_HEAD(&r->sessions, s, link);
	r->stats.live++;

	bufferevent_setcb(s->agent.bev, on_read, on_write, on_event, s);
	bufferevent_setcb(s->up.bev, on_read, on_write, on_event, s);
	/* libevent reads 16 KiB at a time by default: let bulk transfers use the buffer. */
	bufferevent_set_max_single_read(s->agent.bev, cfg->relay_buffer);
	bufferevent_set_max_single_read(s->up.bev, cfg->relay_buffer);
	bufferevent_set_max_single_write(s->agent.bev, cfg->relay_buffer);
	bufferevent_set_max_single_write(s->up.bev, cfg->relay_buffer);
	bufferevent_setwatermark(s->agent.bev, EV_WRITE, cfg->relay_buffer / 2, 0);
	bufferevent_setwatermark(s->up.bev, EV_WRITE, cfg->relay_buffer / 2, 0);
	/* The agent waits in the kernel's buffers until upstream answers. */
	bufferevent_disable(s->agent.bev, EV_READ);

	{
		struct timeval tv = {
			.tv_sec = cfg->connect_timeout_ms / 1000,
			.tv_usec = (cfg->connect_timeout_ms % 1000) * 1000,
		};

		bufferevent_set_timeouts(s->up.bev, NULL, &tv);
	}
	sslen = (socklen_t)al_addr_to_sockaddr(dst, dst_port, &ss);
	if (bufferevent_socket_connect(s->up.bev, (struct sockaddr *)&ss, (int)sslen) < 0) {
		int err = EVUTIL_SOCKET_ERROR();

		session_close(s, upstream_error_reason(err), "connect: %s", strerror(err));
		return -1;
	}
	return 0;
}


static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		      void *arg)
{
	struct relay *r = arg;
	struct store_conn c = { 0 };
	struct al_origin o;
	struct al_addr peer;
	uint16_t peer_port;
	char peer_s[INET6_ADDRSTRLEN], dst_s[INET6_ADDRSTRLEN], exe[PATH_MAX], link[64];
	char comm[AL_COMM_LEN + 1];
	ssize_t n;

	r->stats.accepted++;
	c.opened_us = al_now_us();
	c.protocol = "tcp";
	if (al_addr_from_sockaddr(&peer, &peer_port, sa) < 0) {
		set_abort_on_close(fd);
		close(fd);
		return;
	}
	al_addr_str(&peer, peer_s, sizeof(peer_s));
	c.agent_addr = peer_s;
	c.agent_port = peer_port;

	if (kern_take_origin(r->kern, &peer, peer_port, &o) < 0) {
		/* Nobody steered this: fail closed. */
		set_abort_on_close(fd);
		close(fd);
		record_refused(r, &c, AL_REASON_NO_IDENTITY, "no origin record for this connection");
		return;
	}
	al_addr_str(&o.dst, dst_s, sizeof(dst_s));
	memcpy(comm, o.comm, AL_COMM_LEN);
	comm[AL_COMM_LEN] = '\0';
	snprintf(link, sizeof(link), "/proc/%u/exe", o.tgid);
	n = readlink(link, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	c.cgroup_id = o.cgroup_id;
	c.cgroup_path = cgroup_path_cached(r, o.cgroup_id);
	c.pid = o.tgid;
	c.tid = o.pid;
	c.uid = o.uid;
	c.gid = o.gid;
	c.comm = comm;
	c.exe = n > 0 ? exe : NULL;
	c.dst_addr = dst_s;
	c.dst_port = o.dst_port;
	relay_adopt(r, fd, &c, &o.dst, o.dst_port);
	(void)l;
	(void)salen;
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends: keep listening; the kernel queue holds the rest. */
	al_warn("accept: %s", strerror(err));
	(void)l;
	(void)arg;
}

struct evconnlistener *relay_listen_loopback(struct event_base *base, int family, uint16_t port,
					     int transparent,
					     void (*cb)(struct evconnlistener *, evutil_socket_t, struct sockaddr *, int, void *),
					     void *arg,
					     const char *what, char *err, size_t errlen)
{
	const char *host = family == AF_INET ? "127.0.0.1" : "::1";
	struct sockaddr_storage ss;
	struct al_addr a;
	struct evconnlistener *l;
	socklen_t len;
	int fd, one = 1;

	if (al_addr_parse(&a, host) < 0)
		return NULL;
	len = (socklen_t)al_addr_to_sockaddr(&a, port, &ss);
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		al_errf(err, errlen, "%s listener: socket: %s", what, strerror(errno));
		return NULL;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if ((family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    /* TPROXY hands over only to transparent sockets; accepted ones inherit
	     * it, which lets them answer from the agent's original destination. */
	    (transparent && family == AF_INET &&
	     setsockopt(fd, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0) ||
	    (transparent && family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, &one, sizeof(one)) < 0)) {
		al_errf(err, errlen, "%s listener: socket options: %s", what, strerror(errno));
		close(fd);
		return NULL;
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
		al_errf(err, errlen, "%s listener %s%s%s port %u: %s", what, family == AF_INET6 ? "[" : "",
			host, family == AF_INET6 ? "]" : "", port, strerror(errno));
		close(fd);
		return NULL;
	}
	l = evconnlistener_new(base, cb, arg, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!l) {
		al_errf(err, errlen, "%s listener: out of memory", what);
		close(fd);
		return NULL;
	}
	evconnlistener_set_error_cb(l, on_accept_error);
	return l;
}

int relay_start(struct event_base *base, const struct al_config *cfg, struct kern *k,
		struct store *st, struct relay **out, char *err, size_t errlen)
{
	struct relay *r = calloc(1, sizeof(*r));

	if (!r)
		return al_errf(err, errlen, "out of memory");
	r->base = base;
	r->cfg = cfg;
	r->kern = k;
	r->store = st;
	LIST_INIT(&r->sessions);
	r->ls[0] = relay_listen_loopback(base, AF_INET, cfg->steer_port, 0, on_accept, r, "steer", err,
					 errlen);
	if (!r->ls[0])
		goto fail;
	r->ls[1] = relay_listen_loopback(base, AF_INET6, cfg->steer_port, 0, on_accept, r, "steer", err,
					 errlen);
	if (!r->ls[1])
		goto fail;
	*out = r;
	return 0;
fail:
	relay_free(r);
	return -1;
}

void relay_set_config(struct relay *r, const struct al_config *cfg)
{
	r->cfg = cfg;
}

void relay_set_pgproxy(struct relay *r, struct pgproxy *p)
{
	r->pg = p;
}

void relay_stats(const struct relay *r, struct relay_stats *out)
{
	*out = r->stats;
}

void relay_free(struct relay *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < AL_ARRAY_LEN(r->ls); i++)
		if (r->ls[i])
			evconnlistener_free(r->ls[i]);
	while (!LIST_EMPTY(&r->sessions))
		session_close(LIST_FIRST(&r->sessions), AL_REASON_SHUTDOWN, "airlockd stopped");
	free(r);
}
