/* Small helpers every userspace module uses; also poisons the unbounded string functions. */
#ifndef AIRLOCK_COMMON_H
#define AIRLOCK_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <string.h>
#include <stdio.h>
#include <sys/socket.h>

#define AL_MUST __attribute__((warn_unused_result))
#define AL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define AL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Room for one more element in a growing array: v holds cap elements of which n are used; when
 * it is full the capacity doubles (from `first`). Evaluates to 0, or -1 when out of memory (v and
 * cap unchanged). al_grow returns the array to use, or NULL.
 */
void *al_grow(void *v, size_t *cap, size_t n, size_t size, size_t first) AL_MUST;
#define AL_GROW(v, n, cap, first) __extension__({                                  \
	void *al_grown_ = al_grow((v), &(cap), (n), sizeof(*(v)), (first));        \
	if (al_grown_)                                                              \
		(v) = al_grown_;                                                    \
	al_grown_ ? 0 : -1;                                                         \
})

/*
 * Tells the service manager a state change ("READY=1", "STOPPING=1", "STATUS=..." lines) over
 * the datagram socket systemd names in $NOTIFY_SOCKET (a path, or "@name" in the abstract
 * namespace). Nothing to do without it. 0, or -1 if the message could not be sent.
 */
int al_sd_notify(const char *state);

/* Wall clock and monotonic time in microseconds. */
int64_t al_now_us(void);
int64_t al_mono_us(void);

/* snprintf that reports truncation as failure: 0 on success, -1 if cut. */
int al_fmt(char *dst, size_t len, const char *fmt, ...) AL_PRINTF(3, 4) AL_MUST;

/* Writes a message into a caller's error buffer; always returns -1. */
int al_errf(char *err, size_t len, const char *fmt, ...) AL_PRINTF(3, 4);

/* Logging to stderr with a level; the daemon's messages go through here. */
enum al_log_level { AL_LOG_ERR, AL_LOG_WARN, AL_LOG_INFO, AL_LOG_DEBUG };
extern int al_log_verbosity;
void al_log(enum al_log_level lvl, const char *fmt, ...) AL_PRINTF(2, 3);
#define al_err(...)   al_log(AL_LOG_ERR, __VA_ARGS__)
#define al_warn(...)  al_log(AL_LOG_WARN, __VA_ARGS__)
#define al_info(...)  al_log(AL_LOG_INFO, __VA_ARGS__)
#define al_debug(...) al_log(AL_LOG_DEBUG, __VA_ARGS__)

/* Addresses in the kernel ABI form (see bpf_abi.h) to and from text. */
struct al_addr;
struct sockaddr;
int al_addr_from_sockaddr(struct al_addr *a, uint16_t *port, const struct sockaddr *sa) AL_MUST;
/* Fills a sockaddr_in for v4-mapped addresses, sockaddr_in6 otherwise; returns its length. */
size_t al_addr_to_sockaddr(const struct al_addr *a, uint16_t port, struct sockaddr_storage *ss);
/* "10.0.0.1" or "2001:db8::1" (v4-mapped shown as IPv4). */
void al_addr_str(const struct al_addr *a, char *buf, size_t len);
int al_addr_parse(struct al_addr *a, const char *text) AL_MUST;

/* A growing NUL-terminated byte string; an allocation failure sets oom and drops what follows. */
struct al_buf {
	char *p;
	size_t len, cap;
	int oom;
};
/* al_buf_add's way when b has no room for n more bytes and the NUL (or is out of memory). */
void al_buf_add_grow(struct al_buf *b, const void *data, size_t n);
/* Appends n bytes. Inline: the store and the parsers append a few bytes at a time, and a call
 * per append was a tenth of the time the store spends writing a batch. */
static inline void al_buf_add(struct al_buf *b, const void *data, size_t n)
{
	if (b->oom || b->cap - b->len <= n) {
		al_buf_add_grow(b, data, n);
		return;
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}
/* Empties b for reuse: its memory stays, an earlier allocation failure is forgotten. */
static inline void al_buf_clear(struct al_buf *b)
{
	b->len = 0;
	b->oom = 0;
	if (b->p)
		b->p[0] = '\0';
}
void al_buf_str(struct al_buf *b, const char *s);
void al_buf_fmt(struct al_buf *b, const char *fmt, ...) AL_PRINTF(2, 3);
/* text[0..n) as a quoted JSON string, escaped as json.dumps(s, ensure_ascii=False) escapes it
 * ('"', '\\', \n \r \t \b \f, other control characters as \u00XX; UTF-8 kept); a byte that is
 * not part of valid UTF-8 becomes U+FFFD. */
void al_buf_json_str(struct al_buf *b, const void *text, size_t n);

/* Recursive mkdir with a mode for the leaf; 0 if it exists already. */
int al_mkdir_p(const char *path, unsigned int mode) AL_MUST;

/* An evconnlistener's error callback: on EMFILE and the like the connection waits in the
 * kernel's queue, and the listener, ready again at once, would spin (and log) on every loop;
 * it pauses for 100 ms instead. One warning a second at most, for every listener together. */
struct evconnlistener;
void al_listener_backoff(struct evconnlistener *l, void *arg);
/* Raises RLIMIT_NOFILE towards want descriptors (the hard limit too, where the process may, up to
 * fs.nr_open); never lowers it. Returns the soft limit now in force (0 if unknown). */
uint64_t al_nofile_raise(uint64_t want);
/* The value of one hex digit (either case), or -1. Inline: the pure parsers (and their fuzz
 * drivers) link nothing of lib. */
static inline int al_hexdigit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
/* Lowercase hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void al_hex(const void *in, size_t n, char *out);
/* The hex SHA-256 of n bytes (the digest fetched from OpenSSL once, not per call): 0, -1. */
int al_sha256_hex(const void *in, size_t n, char out[65]) AL_MUST;
/* The hex SHA-256 of no bytes. */
#define AL_SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* Length of the valid UTF-8 sequence at p (n > 0 bytes there): 1 for ASCII, 2..4, or 0 if it is
 * not UTF-8 (a stray or missing continuation, an overlong form, a surrogate, past U+10FFFF).
 * Inline, like al_hexdigit and al_dec: hot in the store's hook, and the pure parsers use it. */
static inline size_t al_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];

	if (c < 0x80)
		return 1;
	if (c < 0xc2 || c > 0xf4)
		return 0;
	if (c < 0xe0)
		return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c < 0xf0) {
		if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))
			return 0;       /* overlong, surrogate */
		return 3;
	}
	if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
		return 0;
	if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))
		return 0;       /* overlong, past U+10FFFF */
	return 4;
}
/* 1 if all of p[0..n) is valid UTF-8 (NUL bytes count as valid), else 0. */
static inline int al_utf8_valid(const unsigned char *p, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		if (!(k = al_utf8_seq(p + i, n - i)))
			return 0;
		i += k;
	}
	return 1;
}
/* The decimal digits of v at p, not NUL-terminated (p has room for 20): their count. Two digits
 * a division: the recordings write three numbers for every message relayed. */
static inline size_t al_dec(char *p, int64_t v)
{
	static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
				    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
				    "8081828384858687888990919293949596979899";
	char t[20];
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	size_t n = sizeof(t), i = 0;

	while (u >= 100) {
		n -= 2;
		memcpy(t + n, pairs + 2 * (u % 100), 2);
		u /= 100;
	}
	if (u >= 10) {
		n -= 2;
		memcpy(t + n, pairs + 2 * u, 2);
	} else {
		t[--n] = (char)('0' + u);
	}
	if (v < 0)
		p[i++] = '-';
	memcpy(p + i, t + n, sizeof(t) - n);
	return i + sizeof(t) - n;
}

#pragma GCC poison strcpy strcat sprintf vsprintf gets

#endif
