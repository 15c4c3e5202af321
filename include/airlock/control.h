/* The root-only control socket: one JSON object per line in, one per line out. */
#ifndef AIRLOCK_CONTROL_H
#define AIRLOCK_CONTROL_H

#include <sys/types.h>
#include <jansson.h>
#include <airlock/common.h>

#define AL_DEFAULT_CONTROL_SOCKET "/run/airlock/control.sock"
#define AL_CONTROL_LINE_MAX (1024 * 1024)

struct event_base;
struct control;

#define AL_DEFAULT_REVIEW_SOCKET "/run/airlock/review.sock"

/* Who is asking, from SO_PEERCRED. `open` is set on the review socket,
 * which any local user may reach: its handler must authorise each call. */
struct control_peer {
	uid_t uid;
	pid_t pid;
	int fd;                         /* the connection */
	unsigned long long start;       /* the process's start time at accept (/proc/<pid>/stat); 0: unknown */
	int open;
};

/* Whether peer's process is still the one that connected: what was read of /proc/<pid> before
 * this said 1 was of that process, not of another that got its pid since (a caller that exits
 * and leaves its socket to a child). By the kernel's pidfd of the peer (SO_PEERPIDFD, 6.5)
 * where there is one, else by the pid's start time against the one read at accept. */
int control_peer_alive(const struct control_peer *peer);
/* The start time of process pid (clock ticks since boot, /proc/<pid>/stat); 0 if unknown. */
unsigned long long control_pid_start(pid_t pid);

/* Answers one request; returns a new object ({"ok":true,...} or
 * {"ok":false,"error":"..."}). */
typedef json_t *(*control_handler)(void *arg, json_t *req, const struct control_peer *peer);

/* The control socket (mode 0600, root only) or, with open set, the review
 * socket (mode 0666: reviewers are ordinary users). */
int control_start(struct event_base *base, const char *path, int open, control_handler h, void *arg,
		  struct control **out, char *err, size_t errlen) AL_MUST;
void control_free(struct control *c);

/* Helpers for handlers. */
json_t *control_error(const char *fmt, ...) AL_PRINTF(1, 2);
json_t *control_ok(void);

/* Client side (airlockctl): one request, one reply. Returns NULL with a
 * message in err when the daemon cannot be reached or answers garbage. */
json_t *control_call(const char *path, json_t *req, char *err, size_t errlen);

#endif
