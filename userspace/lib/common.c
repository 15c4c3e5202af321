/* Time, logging, bounded formatting, address conversion and mkdir -p for all modules. */
#include <airlock/common.h>
#include <airlock/bpf_abi.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stddef.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int al_log_verbosity = AL_LOG_INFO;

int64_t al_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t al_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int al_sd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t n = path ? strlen(path) : 0;
	socklen_t len;
	ssize_t sent;
	int fd;

	if (!path || !*path)
		return 0;
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sun.sun_path))
		return -1;
	memcpy(sun.sun_path, path, n);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';        /* the abstract namespace */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, len);
	close(fd);
	return sent == (ssize_t)strlen(state) ? 0 : -1;
}

void *al_grow(void *v, size_t *cap, size_t n, size_t size, size_t first)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return v;
	ncap = *cap ? *cap * 2 : first;
	if (ncap <= n || ncap > SIZE_MAX / size)
		return NULL;
	p = realloc(v, ncap * size);
	if (p)
		*cap = ncap;
	return p;
}

int al_fmt(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(dst, len, fmt, ap);
	va_end(ap);
	return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

int al_errf(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!err || !len)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -1;
}

void al_log(enum al_log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	va_list ap;

	if ((int)lvl > al_log_verbosity)
		return;
	fprintf(stderr, "airlock: %s: ", names[lvl]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int al_addr_from_sockaddr(struct al_addr *a, uint16_t *port, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		memcpy(a->w, v4mapped_prefix, 12);
		memcpy(&a->w[3], &in->sin_addr, 4);
		*port = ntohs(in->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		memcpy(a->w, &in6->sin6_addr, 16);
		*port = ntohs(in6->sin6_port);
		return 0;
	}
	return -1;
}

static int is_v4mapped(const struct al_addr *a)
{
	return memcmp(a->w, v4mapped_prefix, 12) == 0;
}

size_t al_addr_to_sockaddr(const struct al_addr *a, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (is_v4mapped(a)) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		memcpy(&in->sin_addr, &a->w[3], 4);
		return sizeof(*in);
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	memcpy(&in6->sin6_addr, a->w, 16);
	return sizeof(*in6);
}

void al_addr_str(const struct al_addr *a, char *buf, size_t len)
{
	if (is_v4mapped(a))
		inet_ntop(AF_INET, &a->w[3], buf, len);
	else
		inet_ntop(AF_INET6, a->w, buf, len);
}

int al_addr_parse(struct al_addr *a, const char *text)
{
	struct in_addr v4;

	if (inet_pton(AF_INET, text, &v4) == 1) {
		memcpy(a->w, v4mapped_prefix, 12);
		memcpy(&a->w[3], &v4, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, text, a->w) == 1)
		return 0;
	return -1;
}

int al_mkdir_p(const char *path, unsigned int mode)
{
	char tmp[4096];
	char *p;

	if (al_fmt(tmp, sizeof(tmp), "%s", path) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

void al_hex(const void *in, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	const unsigned char *b = in;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* EVP_sha256() looks the algorithm up again on every digest, which costs more than hashing a
 * short request; the daemon's threads share one fetched digest, and each thread keeps its own
 * context for it (EVP_Digest would allocate and free one per call). */
static EVP_MD *sha256_md;
static pthread_key_t sha256_ctx_key;
static int sha256_ready;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	sha256_ready = sha256_md && pthread_key_create(&sha256_ctx_key, sha256_ctx_free) == 0;
}

int al_sha256_hex(const void *in, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int len = 0;
	EVP_MD_CTX *ctx;

	if (pthread_once(&sha256_once, sha256_fetch) != 0 || !sha256_ready)
		return -1;
	ctx = pthread_getspecific(sha256_ctx_key);
	if (!ctx) {
		ctx = EVP_MD_CTX_new();
		if (!ctx || pthread_setspecific(sha256_ctx_key, ctx) != 0) {
			EVP_MD_CTX_free(ctx);
			return -1;
		}
	}
	if (EVP_DigestInit_ex2(ctx, sha256_md, NULL) != 1 || EVP_DigestUpdate(ctx, in, n) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &len) != 1 || len != 32)
		return -1;
	al_hex(md, 32, out);
	return 0;
}

uint64_t al_nofile_raise(uint64_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur >= want)
		return rl.rlim_cur;
	if (rl.rlim_max < want) {
		/* Root (CAP_SYS_RESOURCE) may raise the hard limit, up to fs.nr_open. */
		struct rlimit up = { .rlim_cur = want, .rlim_max = want };
		FILE *f;
		unsigned long long nr_open = 0;

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return want;
		f = fopen("/proc/sys/fs/nr_open", "re");
		if (f) {
			if (fscanf(f, "%llu", &nr_open) != 1)
				nr_open = 0;
			fclose(f);
		}
		up.rlim_cur = up.rlim_max = nr_open;
		if (nr_open > rl.rlim_max && nr_open < want && setrlimit(RLIMIT_NOFILE, &up) == 0)
			return nr_open;
	}
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	return rl.rlim_cur;
}

static void listener_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)evconnlistener_enable(arg);
	(void)fd;
	(void)what;
}

void al_listener_backoff(struct evconnlistener *l, void *arg)
{
	static int64_t warned_us;
	static uint64_t errors;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval pause = { 0, 100 * 1000 };
	int64_t now = al_mono_us();

	errors++;
	if (now - warned_us >= 1000000) {
		al_warn("accept: %s (%llu time%s in the last second; new connections wait in the "
			"kernel's queue)", strerror(err), (unsigned long long)errors, errors == 1 ? "" : "s");
		warned_us = now;
		errors = 0;
	}
	if (evconnlistener_disable(l) == 0 &&
	    event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, listener_resume, l, &pause) < 0)
		(void)evconnlistener_enable(l);
	(void)arg;
}
