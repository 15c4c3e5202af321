/* Turns the kernel's refusal events into audit rows, rate-limited so a flood cannot fill the disk. */
#ifndef AIRLOCKD_REFUSALS_H
#define AIRLOCKD_REFUSALS_H

#include <airlock/kernel.h>
#include <airlock/store.h>

struct event_base;
struct refusals;

int refusals_start(struct event_base *base, struct kern *k, struct store *st,
		   struct refusals **out, char *err, size_t errlen) AL_MUST;
/* Events written and events folded into summary rows, since start. */
void refusals_stats(const struct refusals *r, uint64_t *recorded, uint64_t *suppressed);
void refusals_free(struct refusals *r);

#endif
