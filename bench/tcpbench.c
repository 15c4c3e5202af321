/* tcpbench: loopback-only TCP load generator and sink server for bench/run.sh. */
#include <airlock/common.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * Wire protocol. Every connection starts with a 12-byte header:
 *   byte 0     kind: 'R' request/response, 'B' bulk
 *   bytes 4-7  request length in bytes, header included (big endian)
 *   bytes 8-11 response length in bytes (big endian)
 * 'R': the server reads the whole request, writes the response and closes
 *      first, so TIME_WAIT lands on the server and the client never runs
 *      out of ephemeral ports.
 * 'B': the client streams until it shuts down its write side; the server
 *      then answers with the 8-byte big-endian count of every byte it read
 *      and closes. The client's clock stops at that answer, so a transfer
 *      counts only once all of it reached the server.
 */
#define HDR_LEN 12
#define MAX_REQ (1u << 20)
#define MAX_RESP (64u * 1024)
#define MAX_RR_REQ 4096           /* what the rr client sends at most */
#define IO_BUF (256u * 1024)
#define READS_PER_TURN 8
#define MAX_WORKERS 256
#define MAX_ERRORS 100 /* a worker gives up after this many failed connections */
#define RR_TIMEOUT_S 10
#define BULK_TIMEOUT_S 60

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tcpbench server -a ADDR [-p PORT] [-t THREADS]\n"
		"       tcpbench rr -a ADDR -p PORT [-n CONNS] [-c WORKERS] [-q REQ] [-r RESP]\n"
		"       tcpbench bulk -a ADDR -p PORT [-b BYTES] [-c STREAMS]\n"
		"       tcpbench freeport -a ADDR\n"
		"ADDR must be an IPv4 address in 127.0.0.0/8. The server prints \"port N\"\n"
		"once it listens and runs until killed. rr and bulk print one line of\n"
		"key=value results and exit 1 if any connection failed.\n");
}

struct opts {
	struct sockaddr_in addr;
	unsigned long conns, workers, threads, req, resp;
	uint64_t bytes;
};

/* ---- shared helpers ---- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static AL_MUST int parse_ulong(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* Bytes with an optional k, m or g suffix (powers of 1024). */
static AL_MUST int parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -1;
	if (*end == 'k' || *end == 'K')
		mult = 1ull << 10;
	else if (*end == 'm' || *end == 'M')
		mult = 1ull << 20;
	else if (*end == 'g' || *end == 'G')
		mult = 1ull << 30;
	else if (*end)
		return -1;
	if (mult != 1 && end[1])
		return -1;
	if (v == 0 || v > (64ull << 30) / mult)
		return -1;
	*out = v * mult;
	return 0;
}

/* Only loopback: this program must never put load on a real network. */
static AL_MUST int parse_loopback(const char *s, struct sockaddr_in *sin)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	if (inet_pton(AF_INET, s, &sin->sin_addr) != 1)
		return -1;
	if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127)
		return -1;
	return 0;
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be64(unsigned char *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint64_t get_be64(const unsigned char *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static void fill_pattern(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)('a' + i % 26);
}

/* ---- server ---- */

enum conn_state { C_READ, C_WRITE };

struct conn {
	int fd;
	enum conn_state state;
	unsigned char kind;
	uint32_t req_len, resp_len;
	uint64_t got;               /* bytes read, header included */
	uint32_t sent;              /* bytes of the answer written */
	unsigned char hdr[HDR_LEN];
	unsigned char ack[8];
};

struct server_thread {
	pthread_t tid;
	int lfd, ep;
	const unsigned char *resp;  /* MAX_RESP bytes of pattern, shared read-only */
	unsigned char buf[IO_BUF];
};

static void conn_free(struct conn *c)
{
	close(c->fd);
	free(c);
}

/* Writes the rest of the answer. 1 when all of it is out, 0 to wait, -1 on error. */
static AL_MUST int conn_flush(struct server_thread *t, struct conn *c)
{
	const unsigned char *p = c->kind == 'R' ? t->resp : c->ack;
	uint32_t len = c->kind == 'R' ? c->resp_len : sizeof(c->ack);

	while (c->sent < len) {
		ssize_t n = write(c->fd, p + c->sent, len - c->sent);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };

			if (c->state != C_WRITE && epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
				return -1;
			c->state = C_WRITE;
			return 0;
		}
		if (n <= 0)
			return -1;
		c->sent += (uint32_t)n;
	}
	return 1;
}

static AL_MUST int conn_header(struct conn *c)
{
	c->kind = c->hdr[0];
	c->req_len = get_be32(c->hdr + 4);
	c->resp_len = get_be32(c->hdr + 8);
	if (c->kind == 'R')
		return c->req_len >= HDR_LEN && c->req_len <= MAX_REQ && c->resp_len <= MAX_RESP ? 0 : -1;
	return c->kind == 'B' ? 0 : -1;
}

/* Reads what is there, a bounded amount so one fast stream cannot starve the
 * others on this thread (epoll is level-triggered: the rest comes next turn).
 * 1 when the answer is due, 0 to wait, -1 to drop the connection. */
static AL_MUST int conn_read(struct server_thread *t, struct conn *c)
{
	for (int i = 0; i < READS_PER_TURN; i++) {
		ssize_t n = read(c->fd, t->buf, sizeof(t->buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return -1;
		if (n == 0) {
			if (c->kind != 'B')
				return -1;
			put_be64(c->ack, c->got);
			return 1;
		}
		if (c->got < HDR_LEN) {
			size_t take = (size_t)n < HDR_LEN - c->got ? (size_t)n : HDR_LEN - c->got;

			memcpy(c->hdr + c->got, t->buf, take);
			if (c->got + take == HDR_LEN && conn_header(c) < 0)
				return -1;
		}
		c->got += (uint64_t)n;
		if (c->kind == 'R' && c->got >= c->req_len)
			return c->got == c->req_len ? 1 : -1;
	}
	return 0;
}

static void conn_event(struct server_thread *t, struct conn *c)
{
	int rc;

	if (c->state == C_READ) {
		rc = conn_read(t, c);
		if (rc == 0)
			return;
		if (rc < 0) {
			conn_free(c);
			return;
		}
	}
	rc = conn_flush(t, c);
	if (rc != 0)
		conn_free(c);
}

static void server_accept(struct server_thread *t)
{
	for (;;) {
		int fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		struct conn *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				fprintf(stderr, "tcpbench server: accept: %s\n", strerror(errno));
			return;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		ev.data.ptr = c;
		if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			conn_free(c);
			continue;
		}
		/* The request is usually there already: save a wakeup. */
		conn_event(t, c);
	}
}

static void *server_loop(void *arg)
{
	struct server_thread *t = arg;
	struct epoll_event evs[128];

	for (;;) {
		int n = epoll_wait(t->ep, evs, (int)AL_ARRAY_LEN(evs), -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "tcpbench server: epoll_wait: %s\n", strerror(errno));
			exit(1);
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL)
				server_accept(t);
			else
				conn_event(t, evs[i].data.ptr);
		}
	}
	return NULL;
}

/* A reuseport listener on addr; fills in the port if it was 0. */
static AL_MUST int listen_reuseport(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)addr, sizeof(*addr)) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int run_server(struct opts *o)
{
	static unsigned char resp[MAX_RESP];
	struct server_thread *ts;

	fill_pattern(resp, sizeof(resp));
	signal(SIGPIPE, SIG_IGN);
	ts = calloc(o->threads, sizeof(*ts));
	if (!ts)
		return 1;
	for (unsigned long i = 0; i < o->threads; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

		ts[i].resp = resp;
		ts[i].lfd = listen_reuseport(&o->addr);
		ts[i].ep = epoll_create1(EPOLL_CLOEXEC);
		if (ts[i].lfd < 0 || ts[i].ep < 0 ||
		    epoll_ctl(ts[i].ep, EPOLL_CTL_ADD, ts[i].lfd, &ev) < 0) {
			fprintf(stderr, "tcpbench server: listen on %s:%u: %s\n",
				inet_ntoa(o->addr.sin_addr), ntohs(o->addr.sin_port), strerror(errno));
			return 1;
		}
	}
	for (unsigned long i = 0; i < o->threads; i++) {
		if (pthread_create(&ts[i].tid, NULL, server_loop, &ts[i]) != 0) {
			fprintf(stderr, "tcpbench server: cannot start a thread\n");
			return 1;
		}
	}
	printf("port %u\n", ntohs(o->addr.sin_port));
	fflush(stdout);
	for (;;)
		pause();
}

/* ---- clients ---- */

struct client_worker {
	pthread_t tid;
	const struct opts *o;
	pthread_barrier_t *start;
	unsigned long n;            /* connections (rr) or 1 stream (bulk) */
	double *lat_us;             /* rr: one per successful connection */
	unsigned long ok, errors;
	uint64_t bytes;
	char first_error[160];
};

static void worker_error(struct client_worker *w, const char *what)
{
	if (w->errors++ == 0)
		snprintf(w->first_error, sizeof(w->first_error), "%s: %s", what, strerror(errno));
}

static AL_MUST int client_socket(const struct opts *o, int timeout_s)
{
	struct timeval tv = { .tv_sec = timeout_s };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (const struct sockaddr *)&o->addr, sizeof(o->addr)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static AL_MUST int write_all(int fd, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly len bytes, then expects the peer's FIN (it closes first). */
static AL_MUST int read_all_then_eof(int fd, unsigned char *p, size_t len, double *t_done)
{
	unsigned char extra;
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = read(fd, p + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EPIPE;
			return -1;
		}
		got += (size_t)n;
	}
	*t_done = now_s();
	do
		n = read(fd, &extra, 1);
	while (n < 0 && errno == EINTR);
	if (n != 0) {
		if (n > 0)
			errno = EPROTO;
		return -1;
	}
	return 0;
}

static void *rr_worker(void *arg)
{
	struct client_worker *w = arg;
	const struct opts *o = w->o;
	unsigned char req[MAX_RR_REQ], resp[MAX_RESP];

	memset(req, 'q', sizeof(req));
	req[0] = 'R';
	put_be32(req + 4, (uint32_t)o->req);
	put_be32(req + 8, (uint32_t)o->resp);
	pthread_barrier_wait(w->start);
	for (unsigned long i = 0; i < w->n && w->errors < MAX_ERRORS; i++) {
		double t0 = now_s(), t1;
		int fd = client_socket(o, RR_TIMEOUT_S);

		if (fd < 0) {
			worker_error(w, "connect");
			continue;
		}
		if (write_all(fd, req, o->req) < 0) {
			worker_error(w, "write request");
			close(fd);
			continue;
		}
		if (read_all_then_eof(fd, resp, o->resp, &t1) < 0) {
			worker_error(w, "read response");
			close(fd);
			continue;
		}
		close(fd);
		w->lat_us[w->ok++] = (t1 - t0) * 1e6;
	}
	return NULL;
}

static void *bulk_worker(void *arg)
{
	struct client_worker *w = arg;
	const struct opts *o = w->o;
	unsigned char *buf = malloc(IO_BUF), ack[8];
	uint64_t left = o->bytes;
	double t;
	int fd = -1;

	pthread_barrier_wait(w->start);
	if (!buf) {
		errno = ENOMEM;
		worker_error(w, "buffer");
		goto out;
	}
	fill_pattern(buf, IO_BUF);
	buf[0] = 'B';
	memset(buf + 1, 0, HDR_LEN - 1);
	fd = client_socket(o, BULK_TIMEOUT_S);
	if (fd < 0) {
		worker_error(w, "connect");
		goto out;
	}
	while (left > 0) {
		size_t chunk = left < IO_BUF ? (size_t)left : IO_BUF;

		if (write_all(fd, buf, chunk) < 0) {
			worker_error(w, "write");
			goto out;
		}
		left -= chunk;
		if (left < o->bytes)
			buf[0] = 'b'; /* only the first chunk carries the header */
	}
	if (shutdown(fd, SHUT_WR) < 0) {
		worker_error(w, "shutdown");
		goto out;
	}
	if (read_all_then_eof(fd, ack, sizeof(ack), &t) < 0) {
		worker_error(w, "read count");
		goto out;
	}
	if (get_be64(ack) != o->bytes) {
		errno = EPROTO;
		worker_error(w, "server counted a different number of bytes");
		goto out;
	}
	w->bytes = o->bytes;
	w->ok = 1;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double percentile(const double *v, unsigned long n, double p)
{
	unsigned long rank;

	if (n == 0)
		return 0;
	rank = (unsigned long)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static int run_clients(struct opts *o, int bulk)
{
	struct client_worker *ws = calloc(o->workers, sizeof(*ws));
	pthread_barrier_t start;
	unsigned long ok = 0, errors = 0, started = 0;
	uint64_t bytes = 0;
	double *all = NULL, t0, secs;
	const char *first_error = NULL;
	int rc = 1;

	if (!ws || pthread_barrier_init(&start, NULL, (unsigned int)o->workers + 1) != 0) {
		fprintf(stderr, "tcpbench: out of memory\n");
		free(ws);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (!bulk) {
		all = calloc(o->conns, sizeof(*all));
		if (!all) {
			fprintf(stderr, "tcpbench: out of memory\n");
			goto out;
		}
	}
	for (unsigned long i = 0; i < o->workers; i++) {
		struct client_worker *w = &ws[i];

		w->o = o;
		w->start = &start;
		if (!bulk) {
			/* Contiguous slices of one array; the first workers take the remainder. */
			w->n = o->conns / o->workers + (i < o->conns % o->workers);
			w->lat_us = all + started;
			started += w->n;
		}
		if (pthread_create(&w->tid, NULL, bulk ? bulk_worker : rr_worker, w) != 0) {
			fprintf(stderr, "tcpbench: cannot start worker %lu\n", i);
			exit(1); /* the barrier would wait forever */
		}
	}
	pthread_barrier_wait(&start);
	t0 = now_s();
	for (unsigned long i = 0; i < o->workers; i++)
		pthread_join(ws[i].tid, NULL);
	secs = now_s() - t0;

	for (unsigned long i = 0; i < o->workers; i++) {
		struct client_worker *w = &ws[i];

		if (!bulk && w->ok && w->lat_us != all + ok)
			memmove(all + ok, w->lat_us, w->ok * sizeof(*all));
		ok += w->ok;
		errors += w->errors;
		bytes += w->bytes;
		if (w->errors && !first_error)
			first_error = w->first_error;
	}
	if (bulk) {
		printf("bulk streams=%lu bytes=%" PRIu64 " ok=%lu errors=%lu secs=%.4f mbps=%.1f\n",
		       o->workers, bytes, ok, errors, secs, secs > 0 ? (double)bytes / secs / 1e6 : 0.0);
	} else {
		double sum = 0;

		qsort(all, ok, sizeof(*all), cmp_double);
		for (unsigned long i = 0; i < ok; i++)
			sum += all[i];
		printf("rr workers=%lu conns=%lu ok=%lu errors=%lu secs=%.4f cps=%.1f "
		       "p50_us=%.1f p99_us=%.1f mean_us=%.1f max_us=%.1f\n",
		       o->workers, o->conns, ok, errors, secs, secs > 0 ? (double)ok / secs : 0.0,
		       percentile(all, ok, 50), percentile(all, ok, 99), ok ? sum / (double)ok : 0.0,
		       ok ? all[ok - 1] : 0.0);
	}
	if (first_error)
		fprintf(stderr, "tcpbench: %lu failed; first: %s\n", errors, first_error);
	rc = errors ? 1 : 0;
out:
	pthread_barrier_destroy(&start);
	free(all);
	free(ws);
	return rc;
}

static int run_freeport(struct opts *o)
{
	socklen_t len = sizeof(o->addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	o->addr.sin_port = 0;
	if (fd < 0 || bind(fd, (struct sockaddr *)&o->addr, sizeof(o->addr)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&o->addr, &len) < 0) {
		fprintf(stderr, "tcpbench freeport: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	printf("%u\n", ntohs(o->addr.sin_port));
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .conns = 20000, .workers = 1, .threads = 2, .req = 64, .resp = 256,
			  .bytes = 1ull << 30 };
	const char *mode;
	unsigned long port = 0;
	int have_addr = 0, opt;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	mode = argv[1];
	optind = 2;
	while ((opt = getopt(argc, argv, "a:p:t:n:c:q:r:b:h")) != -1) {
		int bad = 0;

		switch (opt) {
		case 'a':
			bad = parse_loopback(optarg, &o.addr);
			have_addr = !bad;
			break;
		case 'p':
			bad = parse_ulong(optarg, 0, 65535, &port);
			break;
		case 't':
			bad = parse_ulong(optarg, 1, 64, &o.threads);
			break;
		case 'n':
			bad = parse_ulong(optarg, 1, 10000000, &o.conns);
			break;
		case 'c':
			bad = parse_ulong(optarg, 1, MAX_WORKERS, &o.workers);
			break;
		case 'q':
			bad = parse_ulong(optarg, HDR_LEN, MAX_RR_REQ, &o.req);
			break;
		case 'r':
			bad = parse_ulong(optarg, 0, MAX_RESP, &o.resp);
			break;
		case 'b':
			bad = parse_bytes(optarg, &o.bytes) || o.bytes < HDR_LEN;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "tcpbench: bad value for -%c: '%s'%s\n", opt, optarg,
				opt == 'a' ? " (only 127.0.0.0/8 is allowed)" : "");
			return 2;
		}
	}
	if (optind != argc || !have_addr) {
		usage(stderr);
		return 2;
	}
	o.addr.sin_port = htons((uint16_t)port);
	if (strcmp(mode, "server") == 0)
		return run_server(&o);
	if (strcmp(mode, "freeport") == 0)
		return run_freeport(&o);
	if (port == 0) {
		fprintf(stderr, "tcpbench %s: needs -p PORT\n", mode);
		return 2;
	}
	if (strcmp(mode, "rr") == 0) {
		if (o.workers > o.conns)
			o.workers = o.conns;
		return run_clients(&o, 0);
	}
	if (strcmp(mode, "bulk") == 0)
		return run_clients(&o, 1);
	usage(stderr);
	return 2;
}
