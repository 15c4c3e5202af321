/* Review: parked commands waiting for reviewers, decisions bound to the exact bytes, grants, hooks. */
#ifndef AIRLOCK_APPROVAL_H
#define AIRLOCK_APPROVAL_H

#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include <airlock/common.h>
#include <airlock/config.h>
#include <airlock/store.h>

struct event_base;
struct approval;

enum approval_outcome {
	APPROVAL_APPROVED = 1,  /* run exactly the held bytes, once */
	APPROVAL_GRANTED,       /* a grant covered it: no review was needed */
	APPROVAL_DENIED,
	APPROVAL_TIMEOUT,
	APPROVAL_ABORTED,       /* airlockd is stopping */
	APPROVAL_REVOKED,       /* a grant this session used was revoked */
};
const char *approval_outcome_name(enum approval_outcome o);

/* What a protocol session submits for review. Strings are copied. */
struct approval_req {
	int64_t conn_id;
	int64_t stmt_id;                /* the audit row of the command, if any */
	/* The agent: a pinned cgroup's process (cgroup_id, its pid and uid), or whatever is behind
	 * a pinned interface (iface and ifindex; cgroup_id 0, and no pid or uid the host knows). */
	uint64_t cgroup_id;
	const char *cgroup_path;
	uint32_t pid, uid;
	const char *exe, *comm;
	const char *iface;              /* NULL or "": a cgroup's agent */
	uint32_t ifindex;
	const char *resource;
	const char *protocol;           /* "postgres", later "http", "ssh" */
	const char *text;               /* what reviewers read */
	const char *kind;
	const char *fingerprint;
	const uint8_t *bytes;           /* the exact bytes that will be forwarded */
	size_t len;
	const struct al_rule *rule;
};

/*
 * Called once per request with its outcome (and the reviewer's reason for
 * a denial). A session that goes away first calls approval_cancel and is
 * never called back.
 */
typedef void (*approval_cb)(void *arg, int64_t request_id, enum approval_outcome outcome,
			    const char *reason);

int approval_new(struct event_base *base, struct store *st, const struct al_config *cfg,
		 struct approval **out, char *err, size_t errlen) AL_MUST;
/* Ends every pending request as aborted (their sessions are told). */
void approval_abort_all(struct approval *a);
void approval_free(struct approval *a);     /* aborts what is still pending */
void approval_set_config(struct approval *a, const struct al_config *cfg);

/* An unexpired, unrevoked grant that covers q (its fingerprint, agent and resource; the
 * other fields are not read): its id, or 0. A cgroup's grant covers that cgroup and uid, an
 * interface's grant that interface; neither covers the other kind of agent. */
int64_t approval_grant_for(struct approval *a, const struct approval_req *q);
/* A session that ran something under a grant registers so that revoking
 * the grant ends it (cb with APPROVAL_REVOKED). */
int approval_watch_grant(struct approval *a, int64_t grant_id, approval_cb cb, void *arg) AL_MUST;
void approval_unwatch(struct approval *a, void *arg);

/* Stores the request (durably) before returning, notifies reviewers, arms
 * the timeout. Returns the request id, or -1. */
int64_t approval_submit(struct approval *a, const struct approval_req *r, approval_cb cb, void *arg);
/* The agent went away while the request was pending: it is abandoned. */
void approval_cancel(struct approval *a, int64_t request_id);

/* A reviewer's decision (from airlockctl or the console). `reviewer` is the
 * reviewer's user row, read by the caller that authenticated them;
 * reviewer_uid is the OS uid behind it (-1 if none, e.g. a console login).
 * Refuses with a message: unknown or decided request, reviewer not in an
 * approver group, self-approval (the agent's uid or the reviewer's own
 * agent; an agent behind an interface has no uid the host knows, so there
 * only approver groups and count stand between it and its owner), a reviewer
 * with no uid at all, a person counting twice, a grant longer than the rule
 * allows. */
int approval_decide(struct approval *a, int64_t request_id, const struct store_user *reviewer,
		    long reviewer_uid, int approve, const char *reason, unsigned int grant_secs,
		    char *err, size_t errlen) AL_MUST;
/* Revokes a live grant; sessions that used it end. Who may is who may decide (reviewer and
 * reviewer_uid as for approval_decide): a reviewer with a uid, in an approver group of the
 * rule that held the grant's request, or an admin; else refused with a message. */
int approval_revoke(struct approval *a, int64_t grant_id, const struct store_user *reviewer,
		    long reviewer_uid, char *err, size_t errlen) AL_MUST;
/* A reviewer was removed (store_user_del): their approvals of pending requests no longer
 * count, and the grants they helped make end like revoked ones. */
void approval_reviewer_removed(struct approval *a, const char *name, const struct store_user_gone *gone);

/* One listener (the console's live feed) hears of every change to the
 * pending set: event is "new" (submitted), "approval" (one of several
 * approvals recorded), or the end state ("approved", "denied", "timeout",
 * "abandoned", "aborted"). Called after the change is on disk. */
typedef void (*approval_listener)(void *arg, int64_t request_id, const char *event);
void approval_set_listener(struct approval *a, approval_listener cb, void *arg);
/* How many requests are pending. */
size_t approval_pending_count(struct approval *a);
/* {"delivered", "undelivered", "in_flight"} of the review_webhook since start; NULL without one. */
json_t *approval_webhook_json(struct approval *a);

/* JSON views for the control socket and the console. */
json_t *approval_pending_json(struct approval *a);
json_t *approval_request_json(struct approval *a, int64_t request_id);
json_t *approval_grants_json(struct approval *a);

#endif
