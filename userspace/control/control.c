/* Control socket server (daemon) and client (airlockctl): line-delimited JSON over a unix socket. */
#include <airlock/control.h>

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77         /* Linux 6.5; Debian 12's headers predate it */
#endif

struct control {
	struct evconnlistener *l;
	int open;
	control_handler handler;
	void *arg;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct client {
	struct control *c;
	struct control_peer peer;
};

json_t *control_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

json_t *control_ok(void)
{
	return json_pack("{s:b}", "ok", 1);
}

static void client_free(struct bufferevent *bev, struct client *cl)
{
	bufferevent_free(bev);
	free(cl);
}

/* (/proc/<pid>/stat's 22nd field) */
unsigned long long control_pid_start(pid_t pid)
{
	char path[32], buf[1024], *p;
	unsigned long long start = 0;
	ssize_t n;
	int fd;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* after the command name's closing bracket: state is field 3, start time field 22 */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
		   &start) != 1)
		return 0;
	return start;
}

int control_peer_alive(const struct control_peer *peer)
{
	int pidfd = -1, alive;
	socklen_t len = sizeof(pidfd);

	if (getsockopt(peer->fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) {
		/* The process that connected, whatever came since: it polls readable once it has
		 * exited (a signal 0 would need CAP_KILL for another uid's process). */
		struct pollfd p = { .fd = pidfd, .events = POLLIN };

		alive = poll(&p, 1, 0) == 0;
		close(pidfd);
		return alive;
	}
	return peer->start && control_pid_start(peer->pid) == peer->start;
}

static void reply(struct bufferevent *bev, json_t *resp)
{
	char *text = json_dumps(resp, JSON_COMPACT);

	if (text) {
		bufferevent_write(bev, text, strlen(text));
		bufferevent_write(bev, "\n", 1);
		free(text);
	}
	json_decref(resp);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		json_error_t jerr;
		json_t *req = json_loadb(line, len, 0, &jerr);
		json_t *resp;

		free(line);
		if (!req || !json_is_object(req))
			resp = control_error("bad request: %s", req ? "not an object" : jerr.text);
		else
			resp = cl->c->handler(cl->c->arg, req, &cl->peer);
		json_decref(req);
		reply(bev, resp ? resp : control_error("internal error"));
	}
	if (evbuffer_get_length(in) > AL_CONTROL_LINE_MAX) {
		reply(bev, control_error("request longer than %d bytes", AL_CONTROL_LINE_MAX));
		bufferevent_disable(bev, EV_READ);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		client_free(bev, arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		      void *arg)
{
	struct control *c = arg;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct bufferevent *bev;
	struct client *cl;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 || (!c->open && cred.uid != 0)) {
		/* The control socket file is 0600 root already; this is the second lock. */
		close(fd);
		return;
	}
	cl = calloc(1, sizeof(*cl));
	bev = cl ? bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (!bev) {
		free(cl);
		close(fd);
		return;
	}
	cl->c = c;
	cl->peer.uid = cred.uid;
	cl->peer.pid = cred.pid;
	cl->peer.fd = fd;
	cl->peer.start = c->open ? control_pid_start(cred.pid) : 0;
	cl->peer.open = c->open;
	bufferevent_setcb(bev, on_read, NULL, on_event, cl);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	(void)sa;
	(void)salen;
}

int control_start(struct event_base *base, const char *path, int open, control_handler h, void *arg,
		  struct control **out, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char dir[sizeof(sun.sun_path)];
	struct control *c;
	int fd = -1, probe;

	if (al_fmt(sun.sun_path, sizeof(sun.sun_path), "%s", path) < 0)
		return al_errf(err, errlen, "control socket path too long: %s", path);
	c = calloc(1, sizeof(*c));
	if (!c)
		return al_errf(err, errlen, "out of memory");
	memcpy(c->path, sun.sun_path, sizeof(c->path));
	c->handler = h;
	c->arg = arg;
	c->open = open;
	memcpy(dir, sun.sun_path, sizeof(dir));
	if (al_mkdir_p(dirname(dir), 0755) < 0) {
		al_errf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	/* A live daemon answers on the socket; a stale file from a crash does not. */
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(probe);
		al_errf(err, errlen, "%s: another airlockd is answering there", path);
		goto fail;
	}
	if (probe >= 0)
		close(probe);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		al_errf(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	{
		mode_t old = umask(0077);
		int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));

		umask(old);
		if (rc < 0 || chmod(path, open ? 0666 : 0600) < 0 || listen(fd, 64) < 0) {
			al_errf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
	}
	c->l = evconnlistener_new(base, on_accept, c, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (c->l)
		evconnlistener_set_error_cb(c->l, al_listener_backoff);
	if (!c->l) {
		al_errf(err, errlen, "control listener: out of memory");
		goto fail;
	}
	*out = c;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(c);
	return -1;
}

void control_free(struct control *c)
{
	if (!c)
		return;
	if (c->l) {
		evconnlistener_free(c->l);
		unlink(c->path);
	}
	free(c);
}

json_t *control_call(const char *path, json_t *req, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char *text = NULL, *buf = NULL;
	size_t len = 0, cap = 0;
	json_t *resp = NULL;
	json_error_t jerr;
	int fd = -1;

	if (al_fmt(sun.sun_path, sizeof(sun.sun_path), "%s", path) < 0) {
		al_errf(err, errlen, "control socket path too long: %s", path);
		goto out;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		al_errf(err, errlen, "cannot reach airlockd at %s: %s (is it running? start it with "
			"`make run` or `airlockd`)", path, strerror(errno));
		goto out;
	}
	text = json_dumps(req, JSON_COMPACT);
	if (!text) {
		al_errf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t off = 0, n = strlen(text); off < n + 1;) {
		const char *p = off < n ? text + off : "\n";
		size_t want = off < n ? n - off : 1;
		ssize_t w = write(fd, p, want);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			al_errf(err, errlen, "write to airlockd: %s", strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	for (;;) {
		ssize_t r;

		if (len + 4096 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 65536;
			if (cap > 64u * 1024 * 1024 || !(nb = realloc(buf, cap))) {
				al_errf(err, errlen, "reply from airlockd too large");
				goto out;
			}
			buf = nb;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			al_errf(err, errlen, "read from airlockd: %s", strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (memchr(buf + len - r, '\n', (size_t)r))
			break;
	}
	resp = buf ? json_loadb(buf, len, JSON_DISABLE_EOF_CHECK, &jerr) : NULL;
	if (!resp)
		al_errf(err, errlen, "airlockd closed the connection or sent a bad reply");
out:
	free(text);
	free(buf);
	if (fd >= 0)
		close(fd);
	return resp;
}
