/* The fence check: every second each pinned link (cgroups', interfaces') is checked, and put back when detached or re-programmed behind airlockd's back. */
#ifndef AIRLOCKD_FENCE_H
#define AIRLOCKD_FENCE_H

#include <jansson.h>
#include <airlock/kernel.h>
#include <airlock/store.h>

#include "ifaces.h"

struct event_base;
struct fence;

/* How often the links are checked. */
#define FENCE_CHECK_MS 1000

/*
 * Checks once at once (what kern_open and ifaces_start took over detached is attached again
 * before airlockd says it is ready), then every FENCE_CHECK_MS. Each repair is logged as a
 * warning, recorded in the audit log (fence_repaired; fence_repair_failed when it could not
 * be done) and counted (kern_fence_note). A pinned cgroup found gone loses its pins; on_gone
 * (if not NULL) is called with arg after a check that found any. k, ifs and st must outlive it.
 */
int fence_start(struct event_base *base, struct kern *k, struct ifaces *ifs, struct store *st,
		void (*on_gone)(void *arg), void *arg, struct fence **out, char *err, size_t errlen) AL_MUST;
/* Adds "fence" (the repairs since start and the last one) to a status reply. */
void fence_status(struct fence *f, json_t *resp);
void fence_free(struct fence *f);

#endif
