/* Technique: make the socket and connect()/sendmsg() through io_uring, not the socket syscalls.
 *
 * usage: io_uring tcp HOST PORT   socket+connect as io_uring ops, then one ping (expected: steered)
 *        io_uring udp HOST PORT   socket+sendmsg with an address as io_uring ops (expected: udp_denied)
 * IPv4 only. io_uring may run the op in a kernel worker thread: the fence
 * must still apply (the hooks follow the socket's cgroup) and the audit row
 * must still name our process. Prints the one-line JSON result.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

struct ring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static int fail(int err, const char *what)
{
	printf("{\"ok\": false, \"pid\": %d, \"errno\": %d, \"error\": \"%s: %s\"}\n", getpid(), err, what,
	       strerror(err));
	return 0;
}

static int ring_init(struct ring *r)
{
	struct io_uring_params p;
	void *sq, *cq;

	memset(&p, 0, sizeof(p));
	r->fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (r->fd < 0)
		return -1;
	sq = mmap(NULL, p.sq_off.array + p.sq_entries * sizeof(unsigned), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	cq = mmap(NULL, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe),
		  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
		return -1;
	r->sq_tail = (unsigned *)((char *)sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)((char *)sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)((char *)sq + p.sq_off.array);
	r->cq_head = (unsigned *)((char *)cq + p.cq_off.head);
	r->cq_tail = (unsigned *)((char *)cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)((char *)cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)((char *)cq + p.cq_off.cqes);
	return 0;
}

/* Submits one sqe and waits for its completion; returns cqe->res (negative errno on failure). */
static int ring_do(struct ring *r, const struct io_uring_sqe *sqe)
{
	unsigned tail = *r->sq_tail, idx = tail & *r->sq_mask, head;
	int res;

	r->sqes[idx] = *sqe;
	r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return -errno;
	head = *r->cq_head;
	if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		return -EAGAIN;
	res = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

int main(int argc, char **argv)
{
	struct io_uring_sqe sqe;
	struct sockaddr_in sin;
	struct ring r;
	char tok[64], msg[96], buf[128];
	int udp, fd, res;
	size_t n = 0;

	if (argc != 4)
		return 2;
	udp = strcmp(argv[1], "udp") == 0;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)atoi(argv[3]));
	if (inet_pton(AF_INET, argv[2], &sin.sin_addr) != 1)
		return 2;
	snprintf(tok, sizeof(tok), "%d-uring", getpid());
	snprintf(msg, sizeof(msg), "ping %s\n", tok);
	if (ring_init(&r) < 0)
		return fail(errno, "io_uring_setup");

	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = IORING_OP_SOCKET;
	sqe.fd = AF_INET;
	sqe.off = udp ? SOCK_DGRAM : SOCK_STREAM;
	fd = ring_do(&r, &sqe);
	if (fd < 0)
		return fail(-fd, "IORING_OP_SOCKET");

	if (udp) {
		struct iovec iov = { msg, strlen(msg) };
		struct msghdr mh = { .msg_name = &sin, .msg_namelen = sizeof(sin), .msg_iov = &iov, .msg_iovlen = 1 };
		struct timeval tv = { 1, 500000 };

		memset(&sqe, 0, sizeof(sqe));
		sqe.opcode = IORING_OP_SENDMSG;
		sqe.fd = fd;
		sqe.addr = (unsigned long)&mh;
		res = ring_do(&r, &sqe);
		if (res < 0)
			return fail(-res, "IORING_OP_SENDMSG");
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		res = (int)recv(fd, buf, sizeof(buf) - 1, 0);
		if (res < 0)
			return fail(errno, "recv");
		n = (size_t)res;
	} else {
		struct timeval tv = { 3, 0 };

		memset(&sqe, 0, sizeof(sqe));
		sqe.opcode = IORING_OP_CONNECT;
		sqe.fd = fd;
		sqe.addr = (unsigned long)&sin;
		sqe.off = sizeof(sin);
		res = ring_do(&r, &sqe);
		if (res < 0)
			return fail(-res, "IORING_OP_CONNECT");
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (send(fd, msg, strlen(msg), 0) < 0)
			return fail(errno, "send");
		while (n < sizeof(buf) - 1 && (n == 0 || buf[n - 1] != '\n')) {
			res = (int)recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
			if (res <= 0)
				return fail(res < 0 ? errno : ECONNRESET, "recv");
			n += (size_t)res;
		}
	}
	buf[n] = '\0';
	snprintf(msg, sizeof(msg), "pong %s\n", tok);
	if (strcmp(buf, msg) != 0)
		return fail(EPROTO, "unexpected answer");
	{
		struct sockaddr_in l;
		socklen_t ll = sizeof(l);
		char a[INET_ADDRSTRLEN] = "";

		getsockname(fd, (struct sockaddr *)&l, &ll);
		inet_ntop(AF_INET, &l.sin_addr, a, sizeof(a));
		printf("{\"ok\": true, \"pid\": %d, \"token\": \"%s\", \"local\": [\"%s\", %u]}\n", getpid(), tok, a,
		       ntohs(l.sin_port));
	}
	return 0;
}
