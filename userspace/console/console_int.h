/* Internal interface between the console's files (not for other modules). */
#ifndef AIRLOCK_CONSOLE_INT_H
#define AIRLOCK_CONSOLE_INT_H

#include <airlock/approval.h>
#include <airlock/console.h>
#include <airlock/kernel.h>
#include <airlock/store.h>

#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/queue.h>

#define CONSOLE_MAX_SESSIONS 256
#define CONSOLE_MAX_BODY (64 * 1024)
#define CONSOLE_COOKIE "airlock_session"

/* Connections (guard.c): so many at once, and from one source (struct csource) ... */
#define CONSOLE_MAX_CONNS 256
#define CONSOLE_CONNS_PER_SOURCE 32
/* ... a request head within console_head_timeout (struct console's head_us) of the connection
 * opening or its last answer going (an idle keep-alive connection ends then too), and a request
 * that moves no byte that long ends (MHD's timeout; a suspended one, the live feed between its
 * events or a read in the reader thread, is not timed). */

/* Failed logins (throttle.c): per name, per local uid and per remote address ... */
#define CONSOLE_FAIL_MAX 5
#define CONSOLE_FAIL_NET_MAX 20                             /* ... per remote /24 or /64 ... */
#define CONSOLE_FAIL_WINDOW_US (60LL * 1000000)             /* ... a minute */
/* Every password check takes a token of the console's bucket: this many at once, then one
 * more each CONSOLE_CHECK_REFILL_US. */
#define CONSOLE_CHECK_BURST 20
#define CONSOLE_CHECK_REFILL_US 500000LL
/* Counters: more than the checks a window can hold, so none is ever pushed out by others. */
#define CONSOLE_FAIL_NAMES 512
#define CONSOLE_FAIL_SOURCES 1024
#define CONSOLE_VERIFY_MAX 4                                /* checks waiting or running */
#define CONSOLE_FAIL_LOG_US (10LL * 1000000)                /* one audit record per 10 s */
#define CONSOLE_FAIL_LOG_NAMES 32
#define CONSOLE_FAIL_LOG_FROM 8

struct csession {
	int used;
	char token[65];         /* hex of 32 random bytes: the cookie */
	char csrf[65];          /* hex of 32 random bytes: X-CSRF-Token */
	char user[64];
	char account[65];       /* the user's account_tag at login (auth.c): its account and password */
	int64_t created_us, last_us;
};

/*
 * Whom a peer counts as, for the limits on connections and failed logins: a local process by
 * its uid, which the kernel tells (sock_diag); every local user has all of 127/8, so a local
 * address proves nothing. A remote one by its address and its network (a /24, a /64).
 */
enum csource_kind { CSOURCE_UNKNOWN, CSOURCE_LOCAL, CSOURCE_REMOTE };
struct csource {
	enum csource_kind kind;
	uint32_t uid;                   /* CSOURCE_LOCAL */
	char addr[INET6_ADDRSTRLEN];    /* the peer's address, for logs and the audit */
	char net[INET6_ADDRSTRLEN + 4]; /* CSOURCE_REMOTE: "192.0.2.0/24", "2001:db8::/64" */
};

/* Per TCP connection (MHD's socket context). */
struct cconn {
	LIST_ENTRY(cconn) link;
	int fd;
	int agent;              /* the peer is in a pinned cgroup: every request gets 403 */
	struct csource src;
	char counted[64];       /* the source key its connection is counted under, or "" */
	int refused;            /* over its source's limit: closed at once */
	int in_request;         /* a request head came; its answer is not done */
	int64_t wait_us;        /* al_mono_us since it waits for a request head */
	int cut;                /* past the head deadline: closed */
};

struct fail_key {
	char key[80];           /* "user:NAME", "uid:N", "ip:ADDR" or "net:PREFIX"; "" free */
	int64_t since_us;       /* al_mono_us of the first failure of its window */
	unsigned int count;
	int locked;             /* its lockout is in the audit log */
};

/* The failed logins of an interval, one audit record when it ends. */
struct fail_log {
	int64_t first_us, last_us;      /* al_now_us */
	unsigned int failures, refused; /* checked and wrong; answered 429/503 unchecked */
	struct {
		char name[64];
		unsigned int n;
	} names[CONSOLE_FAIL_LOG_NAMES];
	size_t n_names;
	unsigned int unlisted;          /* failures of names past the listed ones */
	struct csource from[CONSOLE_FAIL_LOG_FROM];     /* a sample of the sources */
	size_t n_from;
};

struct throttle {
	struct fail_key names[CONSOLE_FAIL_NAMES];
	struct fail_key sources[CONSOLE_FAIL_SOURCES];
	unsigned int tokens;            /* the bucket of password checks */
	int64_t refill_us;              /* al_mono_us it was last filled */
	int drained;                    /* refusing for the bucket (recorded once) until it is full */
	struct fail_log log;
};

/* Connections counted per source key (guard.c); n 0 is a free slot. */
struct conn_count {
	char key[64];
	unsigned int n;
};

struct sse;
struct cjob;
struct vjob;
TAILQ_HEAD(cjobs, cjob);
TAILQ_HEAD(vjobs, vjob);

/* The thread that runs the console's long reads (reader.c). */
struct creader {
	struct store_reader *sr;
	pthread_t thr;
	int running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cjobs todo, done;        /* under mu */
	int stop;                       /* under mu */
	int efd;                        /* eventfd: the thread wakes the loop with a done job */
	struct event *ev;
};

/* The thread that checks login passwords (verify.c). */
struct cverify {
	pthread_t thr;
	int running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct vjobs todo, done;        /* under mu */
	int stop;                       /* under mu */
	unsigned int n;                 /* (loop) jobs submitted and not handed back yet */
	int efd;
	struct event *ev;
};

struct console {
	struct event_base *base;
	struct store *store;
	struct approval *approval;
	struct kern *kern;
	struct MHD_Daemon *mhd;
	struct event *ev_io, *ev_timer, *ev_tick;
	int kicked;             /* console_kick ran since the last MHD_run */
	int tls;
	char url[128];
	char *cert_pem, *key_pem;
	char dummy_hash[256];   /* verified against when a user is unknown: same cost either way */
	int64_t idle_us, max_us;        /* console_idle_timeout, console_session_max */
	int64_t head_us;                /* console_head_timeout */
	unsigned int ticks;             /* seconds since start, for the feed's ping */
	struct csession sessions[CONSOLE_MAX_SESSIONS];
	struct throttle th;
	LIST_HEAD(, sse) feeds;
	unsigned int n_feeds;
	struct creader rd;
	struct cverify vf;
	LIST_HEAD(, cconn) conns;
	struct conn_count counts[CONSOLE_MAX_CONNS];
	unsigned int refused_conns, cut_conns;  /* since the last tick's log line */
	char refused_last[96];
};

/* Who is calling: a logged-in session (cookie) or an API token (bearer). */
struct who {
	struct store_user u;
	struct csession *sess;  /* NULL for a bearer token */
	char bearer_sha[65];    /* the bearer token's sha256 (hex), else "" */
};

/* An API answer: a status and a JSON body (owned), or a text body; or a read for the
 * reader thread to answer (job), the request waiting (suspended) until it has. */
struct reply {
	unsigned int status;
	json_t *json;
	char *text;             /* malloc'd; text/plain */
	size_t text_len;
	const char *ctype;
	char set_cookie[256];
	struct cjob *job;
	struct vjob *login;     /* a password for the verify thread to check */
};

/* A read the reader thread answers: an audit search or a session view. */
enum cjob_kind { CJOB_AUDIT, CJOB_SESSION };
struct cjob {
	TAILQ_ENTRY(cjob) link;
	enum cjob_kind kind;
	struct MHD_Connection *conn;    /* suspended until the answer is in r */
	char *what, *agent, *resource, *decision;
	int64_t since_us, id;
	unsigned int limit;
	struct store_page pg[3];        /* a session page's start: statements, HTTP requests, exec */
	struct reply r;
	/* whose read it is (struct who): its answer goes out only while that login still stands */
	char cookie_token[65], bearer_sha[65];
};

/* A login's password check, in the verify thread: the request waits, suspended (verify.c). */
struct vjob {
	TAILQ_ENTRY(vjob) link;
	struct MHD_Connection *conn;
	char name[64];
	struct csource src;
	int found;                      /* u is the user named */
	struct store_user u;
	char pw[1025];                  /* cleansed once checked */
	char hash[256];                 /* u's, or the dummy one */
	int checked, ok;                /* set by the thread */
};

/* server.c */
void console_kick(struct console *c);   /* run MHD soon (after a resume) */
void reply_error(struct reply *r, unsigned int status, const char *fmt, ...) AL_PRINTF(3, 4);

/* auth.c */
int auth_random_hex(char *out, size_t bytes);
/* 0 with *w filled, -1 not authenticated. */
int auth_identify(struct console *c, struct MHD_Connection *conn, struct who *w);
/* POST /api/v1/login: an answer in r, or r->login, the password check for the verify thread;
 * auth_login_done answers once it is checked. */
void auth_login(struct console *c, const struct csource *src, json_t *body, struct reply *r);
void auth_login_done(struct console *c, struct vjob *j, struct reply *r);
/* The login's request ended before auth_login_done (its client went, airlockd stops). */
void auth_login_abandoned(struct console *c, struct vjob *j);
/* POST /api/v1/logout, GET /api/v1/me */
void auth_logout(struct console *c, struct who *w, struct reply *r);
void auth_me(struct console *c, struct who *w, struct reply *r);
/* 0 if whoever opened a live feed may still read it: the login session (cookie token) is
 * live and its user is still the account and password it logged in with, or the API token
 * (its sha256) is still stored and its user exists. Does not count as activity. */
int auth_still_valid(struct console *c, const char *cookie_token, const char *bearer_sha);
/* 0 if the request carries the session's CSRF token (or is token-authenticated). */
int auth_csrf_ok(struct console *c, struct MHD_Connection *conn, const struct who *w);

/* api.c: everything under /api/v1 after authentication. */
void api_handle(struct console *c, struct MHD_Connection *conn, const char *method, const char *path,
		json_t *body, struct who *w, struct reply *r);
/* The answer to a job, read with sr (in the reader thread). */
void api_run_job(struct store_reader *sr, struct cjob *j);

/* reader.c: the long reads, in a thread of their own. */
int reader_start(struct console *c, const char *store_path, char *err, size_t errlen);
/* Queues j (in the loop). When it is answered the loop resumes j->conn. */
int reader_submit(struct console *c, struct cjob *j);
/* Ends the thread; jobs not answered get 503 and their connections are resumed. */
void reader_stop(struct console *c);
void cjob_free(struct cjob *j);

/* verify.c: password checks in a thread of their own. */
int verify_start(struct console *c, char *err, size_t errlen);
/* Whether CONSOLE_VERIFY_MAX checks wait or run already. */
int verify_full(const struct console *c);
/* Queues j (in the loop); when it is checked the loop resumes j->conn. */
void verify_submit(struct console *c, struct vjob *j);
/* Ends the thread; jobs not checked are resumed unchecked. */
void verify_stop(struct console *c);
void vjob_free(struct vjob *j);

/* throttle.c: limits on failed logins, and their audit records. */
void throttle_init(struct console *c);
/* 0: a check of name's password from src may run (counted as failed until throttle_end says
 * otherwise; a token of the bucket spent); -1: refused, the answer (429, or 503 when !room: as
 * many checks run as may) in r. */
int throttle_begin(struct console *c, const char *name, const struct csource *src, int room,
		   struct reply *r);
/* The check's outcome: a right password takes back what throttle_begin counted (not the token);
 * a wrong one is kept for the next audit record, and a lockout it completes is recorded. */
void throttle_end(struct console *c, const char *name, const struct csource *src, int ok);
/* Writes the failed logins gathered so far as one audit record (before a login's record, at stop). */
void throttle_flush(struct console *c);
/* Once a second: the record of an interval that is over. */
void throttle_tick(struct console *c);

/* guard.c: what a source may hold of the console. */
/* MHD's accept policy: a remote network with CONSOLE_CONNS_PER_SOURCE connections gets no more. */
enum MHD_Result guard_accept(void *cls, const struct sockaddr *addr, socklen_t len);
/* A new connection, its source known: counted, or closed at once (cc->refused). */
void guard_open(struct console *c, struct cconn *cc);
void guard_close(struct console *c, struct cconn *cc);
/* A request head came (1) or its answer is done (0). */
void guard_request(struct cconn *cc, int in_request);
/* Once a second: connections past the head deadline are closed. */
void guard_tick(struct console *c);

/* sse.c */
enum MHD_Result sse_open(struct console *c, struct MHD_Connection *conn, const struct who *w);
void sse_listener(void *arg, int64_t request_id, const char *event);
/* Once a second: ends the feeds whose login or token has ended; a ping every 15 s. */
void sse_tick(struct console *c);
/* Ends the feeds whose login or token has ended (after a logout). */
void sse_recheck(struct console *c);
void sse_close_all(struct console *c);

/* metrics.c */
void metrics_render(struct console *c, struct reply *r);

/* peer.c: the cgroup and owner of the local socket at the other end of fd.
 * 0 found, 1 no such socket on this host (a remote peer), -1 error. */
int peer_lookup(int fd, uint64_t *cgroup_id, uint32_t *uid);
/* The source of a peer at sa: lookup is peer_lookup's answer (and uid its uid). */
void peer_source(const struct sockaddr *sa, int lookup, uint32_t uid, struct csource *out);
/* Whether sa is a loopback address (127/8, ::1, ::ffff:127.0.0.0/104). */
int peer_loopback(const struct sockaddr *sa);
/* The key src's connections count under: "uid:N", "net:PREFIX", or "unknown". */
void peer_conn_key(const struct csource *src, char *out, size_t len);

#endif
