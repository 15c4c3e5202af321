/* Accepts steered connections, finds who made them and where they meant to go, and relays them upstream. */
#include <airlock/relay.h>
#include <airlock/http.h>
#include <airlock/pgproxy.h>
#include <airlock/httpproxy.h>

#include "agent_who.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <event2/listener.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <unistd.h>

struct session;

struct relay {
	struct event_base *base;
	const struct al_config *cfg;
	struct kern *kern;
	struct store *store;
	struct evconnlistener *ls[2];
	struct pgproxy *pg;
	struct httpproxy *http;
	LIST_HEAD(, session) sessions;
	struct relay_stats stats;
	uint64_t max_live;          /* sessions at once: max_sessions, or what the fd limit allows */
	uint64_t fd_limit;          /* RLIMIT_NOFILE as raised for max_sessions */
	unsigned int per_agent;     /* of max_live, one agent's at once */
	struct al_addr local[64];   /* this host's addresses, refreshed at most once a second */
	size_t n_local;
	int64_t local_at_us;
};

/*
 * One side of a session: the agent's accepted socket or our upstream socket.
 * Bytes read from a side go through a pipe into the other side's socket with
 * splice(2): the kernel moves the pages, airlockd never copies them. The pipe
 * is the per-direction buffer (relay_buffer): when it is full, reading from
 * this side stops until the other side takes bytes again (backpressure).
 */
struct side {
	struct session *s;
	int fd;
	int pipe[2];                /* [0] read end, [1] write end */
	size_t queued, cap;         /* bytes in the pipe; its capacity */
	struct event *rev, *wev;
	uint64_t bytes_in;          /* read from this side */
	unsigned int eof : 1;       /* this side sent FIN */
	unsigned int shut : 1;      /* we sent FIN to this side */
};

struct session {
	LIST_ENTRY(session) link;
	struct relay *r;
	int64_t row;                /* store row id */
	struct side agent, up;
	struct event *timer;        /* upstream connect timeout; then the wait for the rest of a
				     * ClientHello (on_sniff_wait) */
	int connected;
	int sniff_tries;            /* looking for a TLS ClientHello in the first bytes */
	char sni[256];              /* its server name, for the audit row */
	uint64_t cgroup_id;         /* the agent, as agent_sessions counts it */
	char iface[16];
	int counted;
};

static void session_close(struct session *s, enum al_reason reason, const char *fmt, ...)
	AL_PRINTF(3, 4);

static struct side *other(struct side *x)
{
	return x == &x->s->agent ? &x->s->up : &x->s->agent;
}

/* Sends RST instead of FIN on close, so the peer sees an abort, not a clean end. */
static void set_abort_on_close(evutil_socket_t fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (fd >= 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void side_free(struct side *x)
{
	if (x->rev)
		event_free(x->rev);
	if (x->wev)
		event_free(x->wev);
	for (int i = 0; i < 2; i++)
		if (x->pipe[i] >= 0)
			close(x->pipe[i]);
	if (x->fd >= 0)
		close(x->fd);
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
	if (s->sni[0]) {
		/* TLS passed through untouched: the server name is what we know of it. */
		size_t n = strlen(detail);

		snprintf(detail + n, sizeof(detail) - n, "%stls sni=%.200s", n ? "; " : "", s->sni);
	}
	if (reason != AL_REASON_CLOSED) {
		set_abort_on_close(s->agent.fd);
		set_abort_on_close(s->up.fd);
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
	if (s->counted)
		(void)agent_sessions_add(s->cgroup_id, s->iface, -1);
	LIST_REMOVE(s, link);
	side_free(&s->agent);
	side_free(&s->up);
	if (s->timer)
		event_free(s->timer);
	free(s);
}

static enum al_reason side_error(const struct side *x)
{
	return x == &x->s->agent ? AL_REASON_AGENT_RESET : AL_REASON_UPSTREAM_RESET;
}

/* Moves what x's pipe holds into the other side's socket. 0, or -1 if the session ended. */
static int pump_out(struct side *x)
{
	struct session *s = x->s;
	struct side *y = other(x);

	while (x->queued > 0) {
		ssize_t m = splice(x->pipe[0], NULL, y->fd, NULL, x->queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

		if (m > 0) {
			x->queued -= (size_t)m;
			continue;
		}
		if (m < 0 && errno == EINTR)
			continue;
		if (m < 0 && errno == EAGAIN) {
			event_add(y->wev, NULL);
			break;
		}
		session_close(s, side_error(y), "%s: %s", y == &s->agent ? "agent" : "upstream",
			      m < 0 ? strerror(errno) : "closed");
		return -1;
	}
	if (x->queued == 0) {
		event_del(y->wev);
		if (x->eof && !y->shut) {
			/* x finished: pass its FIN on once its bytes are out. */
			if (shutdown(y->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
				session_close(s, side_error(y), "shutdown: %s", strerror(errno));
				return -1;
			}
			y->shut = 1;
			if (y->eof && x->shut) {
				session_close(s, AL_REASON_CLOSED, NULL);
				return -1;
			}
		}
	}
	if (!x->eof && x->queued < x->cap)
		event_add(x->rev, NULL);
	return 0;
}

#define SNIFF_TRIES 9           /* peeks at the first bytes for a whole ClientHello (200 ms) */
#define SNIFF_WAIT_MS 25        /* between them, while its rest is on the way */

static void on_sniff_wait(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)event_add(s->agent.rev, NULL);
	(void)fd;
	(void)what;
}

/*
 * A peek at the agent's first bytes: a TLS ClientHello names its server, for the row. One that
 * has not all arrived (a hello over more than one segment: post-quantum key shares make them
 * 1.5 KB and more) is waited for before a byte is forwarded, SNIFF_WAIT_MS at a time, or the
 * next peek would start in its middle. 1 if reading waits for it.
 */
static int sniff(struct session *s, struct side *x)
{
	uint8_t peek[16384 + 5];        /* a TLS record, the largest a hello comes in */
	struct timeval wait = { 0, SNIFF_WAIT_MS * 1000 };
	struct http_hello h;
	ssize_t p = recv(x->fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
	int rc = p > 0 && peek[0] == 0x16 ? http_tls_hello(peek, (size_t)p, &h) : HTTP_ERROR;

	/* (the agent is read once the upstream is connected: the connect timer is gone by then) */
	if (rc == HTTP_NEED_MORE && (size_t)p < sizeof(peek) && ++s->sniff_tries < SNIFF_TRIES && s->connected &&
	    (s->timer || (s->timer = evtimer_new(s->r->base, on_sniff_wait, s)))) {
		event_del(x->rev);
		evtimer_add(s->timer, &wait);
		return 1;
	}
	s->sniff_tries = SNIFF_TRIES;
	if (rc == HTTP_DONE)
		snprintf(s->sni, sizeof(s->sni), "%s", h.sni);
	/* A ClientHello, or as much of one as came: TLS passed through. */
	if (rc != HTTP_ERROR)
		s->r->stats.tls_passthrough++;
	return 0;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct side *x = arg;
	struct session *s = x->s;
	ssize_t n;

	(void)fd;
	(void)what;
	if (x->queued >= x->cap) {
		/* Backpressure: the other side has not taken what we hold. */
		event_del(x->rev);
		return;
	}
	if (x == &s->agent && s->sniff_tries < SNIFF_TRIES && sniff(s, x))
		return;
	n = splice(x->fd, NULL, x->pipe[1], NULL, x->cap - x->queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		x->queued += (size_t)n;
		x->bytes_in += (uint64_t)n;
	} else if (n == 0) {
		x->eof = 1;
		event_del(x->rev);
	} else if (errno == EAGAIN || errno == EINTR) {
		return;
	} else {
		session_close(s, side_error(x), "%s: %s", x == &s->agent ? "agent" : "upstream",
			      strerror(errno));
		return;
	}
	(void)pump_out(x);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct side *y = arg;

	(void)fd;
	(void)what;
	(void)pump_out(other(y));
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

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	session_close(s, AL_REASON_UPSTREAM_TIMEOUT, "no answer from upstream in %u ms",
		      s->r->cfg->connect_timeout_ms);
}

/* The upstream socket became writable for the first time: connected, or failed. */
static void on_connected(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	int err = 0, one = 1;
	socklen_t len = sizeof(err);

	(void)what;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		session_close(s, upstream_error_reason(err), "connect: %s", strerror(err));
		return;
	}
	s->connected = 1;
	event_free(s->timer);
	s->timer = NULL;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* From now on wev means "the socket can take more bytes". */
	event_free(s->up.wev);
	s->up.wev = event_new(s->r->base, s->up.fd, EV_WRITE | EV_PERSIST, on_writable, &s->up);
	if (!s->up.wev) {
		session_close(s, AL_REASON_INTERNAL, "out of memory");
		return;
	}
	event_add(s->agent.rev, NULL);
	event_add(s->up.rev, NULL);
}

static int side_init(struct session *s, struct side *x, int fd, size_t want)
{
	int sz;

	x->s = s;
	x->fd = fd;
	x->pipe[0] = x->pipe[1] = -1;
	if (pipe2(x->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	/* As big as relay_buffer allows (pipe-max-size caps it for us). */
	(void)fcntl(x->pipe[1], F_SETPIPE_SZ, (int)(want > 1048576 ? 1048576 : want));
	sz = fcntl(x->pipe[1], F_GETPIPE_SZ);
	x->cap = sz > 0 ? (size_t)sz : 65536;
	x->rev = event_new(s->r->base, fd, EV_READ | EV_PERSIST, on_readable, x);
	x->wev = event_new(s->r->base, fd, EV_WRITE | EV_PERSIST, on_writable, x);
	return x->rev && x->wev ? 0 : -1;
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

/* Sessions open now, relayed and terminated (each proxy counts its own). */
static uint64_t live_sessions(const struct relay *r)
{
	uint64_t n = r->stats.live;

	if (r->pg) {
		struct pgproxy_stats ps;

		pgproxy_stats(r->pg, &ps);
		n += ps.live;
	}
	if (r->http) {
		struct httpproxy_stats hs;

		httpproxy_stats(r->http, &hs);
		n += hs.live;
	}
	return n;
}

/*
 * A relayed session holds six descriptors (two sockets, a pipe each way), a
 * terminated one two or three; the rest of the daemon (listeners, store,
 * console and control clients, hooks) stays under FDS_RESERVED. The limit
 * is raised to fit max_sessions; where it cannot be (no CAP_SYS_RESOURCE,
 * fs.nr_open), fewer sessions are taken, and the daemon says how many,
 * rather than failing accept() at an arbitrary point.
 */
#define FDS_PER_SESSION 6
#define FDS_RESERVED    256

static void fd_budget(struct relay *r)
{
	uint64_t want = (uint64_t)r->cfg->max_sessions * FDS_PER_SESSION + FDS_RESERVED;

	r->fd_limit = al_nofile_raise(want);
	r->max_live = r->cfg->max_sessions;
	if (r->fd_limit < want) {
		r->max_live = r->fd_limit > FDS_RESERVED ? (r->fd_limit - FDS_RESERVED) / FDS_PER_SESSION : 0;
		al_warn("max_sessions %u needs %llu file descriptors, and the limit is %llu (RLIMIT_NOFILE, "
			"fs.nr_open): at most %llu sessions at once", r->cfg->max_sessions,
			(unsigned long long)want, (unsigned long long)r->fd_limit,
			(unsigned long long)r->max_live);
	}
	r->per_agent = config_sessions_per_agent(r->cfg, r->max_live);
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
	if (live_sessions(r) >= r->max_live) {
		set_abort_on_close(fd);
		close(fd);
		record_refused(r, c, AL_REASON_LIMIT, r->max_live < cfg->max_sessions ?
			       "the file descriptor limit allows no more sessions" : "max_sessions reached");
		return -1;
	}
	/* One agent (a cgroup, or what came through one pinned interface) leaves the rest to
	 * others: those that trickle bytes to hold sessions cannot take them all. */
	if (agent_sessions(c->cgroup_id, c->iface) >= r->per_agent) {
		char d[128];

		if (cfg->max_sessions_per_agent)
			snprintf(d, sizeof(d), "max_sessions_per_agent (%u) reached by this agent", r->per_agent);
		else
			snprintf(d, sizeof(d), "max_sessions_per_agent (%u: half of the %llu sessions at once) "
				 "reached by this agent", r->per_agent, (unsigned long long)r->max_live);
		set_abort_on_close(fd);
		close(fd);
		record_refused(r, c, AL_REASON_LIMIT, d);
		return -1;
	}
	/* No session that could not be recorded: a full store fails closed. */
	if (!store_accepting(r->store)) {
		set_abort_on_close(fd);
		close(fd);
		al_warn("refused a session from %s: the audit store is full", c->cgroup_path ? c->cgroup_path :
			c->iface ? c->iface : "?");
		record_refused(r, c, AL_REASON_STORE_FULL, "the audit store is full");
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
	if (res && res->proto == AL_PROTO_HTTPS) {
		if (!r->http) {
			set_abort_on_close(fd);
			close(fd);
			record_refused(r, c, AL_REASON_INTERNAL, "no HTTPS proxy");
			return -1;
		}
		return httpproxy_start(r->http, fd, c, dst, dst_port, res);
	}

	s = calloc(1, sizeof(*s));
	if (!s) {
		set_abort_on_close(fd);
		close(fd);
		record_refused(r, c, AL_REASON_INTERNAL, "out of memory");
		return -1;
	}
	s->r = r;
	s->agent.fd = s->up.fd = -1;
	s->agent.pipe[0] = s->agent.pipe[1] = s->up.pipe[0] = s->up.pipe[1] = -1;
	sslen = (socklen_t)al_addr_to_sockaddr(dst, dst_port, &ss);
	if (side_init(s, &s->agent, fd, cfg->relay_buffer) < 0 ||
	    side_init(s, &s->up, socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
		      cfg->relay_buffer) < 0 || s->up.fd < 0) {
		int e = errno;

		set_abort_on_close(s->agent.fd);
		side_free(&s->agent);
		side_free(&s->up);
		free(s);
		record_refused(r, c, AL_REASON_INTERNAL, strerror(e));
		return -1;
	}
	(void)!store_batch_begin(r->store);
	if (store_conn_open(r->store, c, &s->row) < 0)
		s->row = 0;
	LIST_INSERT_HEAD(&r->sessions, s, link);
	r->stats.live++;
	s->cgroup_id = c->cgroup_id;
	snprintf(s->iface, sizeof(s->iface), "%s", c->iface ? c->iface : "");
	s->counted = agent_sessions_add(s->cgroup_id, s->iface, 1) == 0;

	/* The agent waits in the kernel's buffers until upstream answers. */
	event_free(s->up.wev);
	s->up.wev = event_new(r->base, s->up.fd, EV_WRITE, on_connected, s);
	s->timer = evtimer_new(r->base, on_connect_timeout, s);
	if (!s->up.wev || !s->timer) {
		session_close(s, AL_REASON_INTERNAL, "out of memory");
		return -1;
	}
	{
		struct timeval tv = {
			.tv_sec = cfg->connect_timeout_ms / 1000,
			.tv_usec = (cfg->connect_timeout_ms % 1000) * 1000,
		};

		evtimer_add(s->timer, &tv);
	}
	if (connect(s->up.fd, (struct sockaddr *)&ss, sslen) < 0 && errno != EINPROGRESS) {
		int err = errno;

		session_close(s, upstream_error_reason(err), "connect: %s", strerror(err));
		return -1;
	}
	event_add(s->up.wev, NULL);
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
	char peer_s[INET6_ADDRSTRLEN], dst_s[INET6_ADDRSTRLEN], exe[PATH_MAX];
	char comm[AL_COMM_LEN + 1], cgpath[512];

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
	c.exe = kern_exe(r->kern, o.tgid, exe, sizeof(exe)) == 0 ? exe : NULL;
	c.cgroup_id = o.cgroup_id;
	c.cgroup_path = kern_cgroup_path(o.cgroup_id, cgpath, sizeof(cgpath)) == 0 ? cgpath : NULL;
	c.pid = o.tgid;
	c.tid = o.pid;
	c.uid = o.uid;
	c.gid = o.gid;
	c.comm = comm;
	c.dst_addr = dst_s;
	c.dst_port = o.dst_port;
	relay_adopt(r, fd, &c, &o.dst, o.dst_port);
	(void)l;
	(void)salen;
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
	evconnlistener_set_error_cb(l, al_listener_backoff);
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
	fd_budget(r);
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
	fd_budget(r);
}

void relay_set_pgproxy(struct relay *r, struct pgproxy *p)
{
	r->pg = p;
}

void relay_set_httpproxy(struct relay *r, struct httpproxy *p)
{
	r->http = p;
}

void relay_stats(const struct relay *r, struct relay_stats *out)
{
	*out = r->stats;
	out->max_sessions = r->max_live;
	out->fd_limit = r->fd_limit;
	out->per_agent = r->per_agent;
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
