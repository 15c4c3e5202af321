/* The reviewer and user-admin commands of the control and review sockets. */
#ifndef AIRLOCKD_REVIEW_CMDS_H
#define AIRLOCKD_REVIEW_CMDS_H

#include <airlock/approval.h>
#include <airlock/control.h>
#include <airlock/kernel.h>
#include <airlock/store.h>

struct review_ctx {
	struct approval *approval;
	struct store *store;
	struct kern *kern;
};

/* Answers cmd if it is a review or user command (NULL if it is not one).
 * On the open review socket only review commands exist, each from a
 * registered reviewer outside every pinned cgroup. */
json_t *review_command(struct review_ctx *ctx, const char *cmd, json_t *req,
		       const struct control_peer *peer);

#endif
