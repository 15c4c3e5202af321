/* Internal interface between the console's files (not for other modules). */
#ifndef AIRLOCK_CONSOLE_INT_H
#define AIRLOCK_CONSOLE_INT_H

#include <airlock/approval.h>
#include <airlock/console.h>
#include <airlock/kernel.h>
#include <airlock/store.h>

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sys/queue.h>

#define CONSOLE_MAX_SESSIONS 256
#define CONSOLE_FAIL_MAX 5                                  /* failed logins per key ... */
#define CONSOLE_FAIL_WINDOW_US (60LL * 1000000)             /* ... per minute */
#define CONSOLE_FAIL_KEYS 512
#define CONSOLE_MAX_BODY (64 * 1024)
#define CONSOLE_COOKIE "airlock_session"

struct csession {
	int used;
	char token[65];         /* hex of 32 random bytes: the cookie */
	char csrf[65];          /* hex of 32 random bytes: X-CSRF-Token */
	char user[64];
	char account[65];       /* the user's account_tag at login (auth.c): its account and password */
	int64_t created_us, last_us;
};

struct fail_key {
	char key[96];           /* "ip:ADDR" or "user:NAME" */
	int64_t since_us;
	unsigned int count;
};

struct sse;
struct cjob;
TAILQ_HEAD(cjobs, cjob);

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
	unsigned int ticks;             /* seconds since start, for the feed's ping */
	struct csession sessions[CONSOLE_MAX_SESSIONS];
	struct fail_key fails[CONSOLE_FAIL_KEYS];
	LIST_HEAD(, sse) feeds;
	unsigned int n_feeds;
	struct creader rd;
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

/* server.c */
void console_kick(struct console *c);   /* run MHD soon (after a resume) */
void reply_error(struct reply *r, unsigned int status, const char *fmt, ...) AL_PRINTF(3, 4);

/* auth.c */
int auth_random_hex(char *out, size_t bytes);
/* 0 with *w filled, -1 not authenticated. */
int auth_identify(struct console *c, struct MHD_Connection *conn, struct who *w);
/* POST /api/v1/login, /api/v1/logout, GET /api/v1/me */
void auth_login(struct console *c, struct MHD_Connection *conn, const char *peer_ip, json_t *body,
		struct reply *r);
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

/* peer.c: the cgroup of the local socket at the other end of fd.
 * 0 found, 1 no such socket on this host (a remote peer), -1 error. */
int peer_cgroup_id(int fd, uint64_t *cgroup_id);

#endif
