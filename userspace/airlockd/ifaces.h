/* The daemon's pinned and guarded interfaces: control commands, status, and keeping XDP, nftables, routes and the TPROXY listener in step. */
#ifndef AIRLOCKD_IFACES_H
#define AIRLOCKD_IFACES_H

#include <jansson.h>
#include <airlock/config.h>
#include <airlock/kernel.h>
#include <airlock/relay.h>
#include <airlock/store.h>

struct event_base;
struct ifaces;

/* Loads the XDP programs and re-adopts the pinned interfaces (call after
 * kern_open); if agent interfaces are pinned, opens the TPROXY listener and
 * reinstalls their nftables rules and routes. cfg must outlive it. */
int ifaces_start(struct event_base *base, const struct al_config *cfg, struct store *st,
		 struct relay *r, struct ifaces **out, char *err, size_t errlen) AL_MUST;
/* Answers "pin"/"unpin" with an "iface", "guard" and "unguard"; NULL for any other request. */
json_t *ifaces_command(struct ifaces *f, const char *cmd, json_t *req);
/* xdp_fence_check, and the nftables rules of agent interfaces found gone removed. */
int ifaces_fence_check(struct ifaces *f, kern_fence_cb cb, void *arg);
/* Adds "interfaces" (and the TPROXY settings) to a status reply. */
void ifaces_status(struct ifaces *f, json_t *resp);
/* Closes the listener and our handles; pins, rules and routes stay. */
void ifaces_free(struct ifaces *f);

#endif
