/* Review webhook: POST each new request's JSON to a URL, signed with HMAC-SHA256, with retries. */
#ifndef AIRLOCK_APPROVAL_WEBHOOK_H
#define AIRLOCK_APPROVAL_WEBHOOK_H

#include <stdint.h>
#include <airlock/common.h>

struct event_base;
struct webhook;

/* secret_file may be NULL (no signature header). */
int webhook_new(struct event_base *base, const char *url, const char *secret_file,
		struct webhook **out, char *err, size_t errlen) AL_MUST;
/* Delivers in the background: tries now, then after 1, 2, 4, 8, 16 s. */
void webhook_send(struct webhook *w, int64_t id, const char *json);
void webhook_free(struct webhook *w);

#endif
