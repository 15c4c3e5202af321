/* Review webhook: POST each new request's JSON to a URL, signed with HMAC-SHA256, with retries. */
#ifndef AIRLOCK_APPROVAL_WEBHOOK_H
#define AIRLOCK_APPROVAL_WEBHOOK_H

#include <stdint.h>
#include <airlock/common.h>

struct event_base;
struct webhook;

/* Called once a delivery has failed its last try: why is the last failure ("HTTP 500"). */
typedef void (*webhook_gave_up_cb)(void *arg, int64_t id, int tries, const char *why);

struct webhook_stats {
	unsigned long delivered, undelivered;   /* since start */
	unsigned long in_flight;                /* trying, or waiting to try again */
};

/* secret_file may be NULL (no signature header). */
int webhook_new(struct event_base *base, const char *url, const char *secret_file,
		webhook_gave_up_cb gave_up, void *arg, struct webhook **out, char *err,
		size_t errlen) AL_MUST;
/* Delivers in the background: tries now, then after 1, 2, 4, 8, 16 s. */
void webhook_send(struct webhook *w, int64_t id, const char *json);
void webhook_stats(const struct webhook *w, struct webhook_stats *out);
/* Drops the deliveries still under way. NULL is fine. */
void webhook_free(struct webhook *w);

#endif
