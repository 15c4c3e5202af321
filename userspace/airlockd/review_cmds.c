/* Review commands (pending, show, approve, deny, grants, revoke) and reviewer users, over the sockets. */
#include "review_cmds.h"

#include <airlock/console.h>
#include <airlock/password.h>

#include <stdlib.h>

/* An agent must not reach the review socket: refuse peers in a pinned subtree. */
static int peer_is_agent(struct review_ctx *ctx, pid_t pid)
{
	struct kern_cgroup self;
	char err[256];

	if (kern_cgroup_of_pid(pid, &self, err, sizeof(err)) < 0)
		return 1; /* cannot tell: fail closed */
	return kern_in_pinned(ctx->kern, self.rel);
}

static int append_row(void *arg, const char *json)
{
	json_t *row = json_loads(json, 0, NULL);

	return row ? json_array_append_new(arg, row) : -1;
}

static json_t *with(const char *key, json_t *v)
{
	json_t *resp;

	if (!v)
		return control_error("could not read the store");
	resp = control_ok();
	json_object_set_new(resp, key, v);
	return resp;
}

static json_t *user_command(struct review_ctx *ctx, const char *cmd, json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "name"));

	if (strcmp(cmd, "users") == 0) {
		json_t *rows = json_array();

		if (store_users_list(ctx->store, append_row, rows) < 0) {
			json_decref(rows);
			rows = NULL;
		}
		return with("users", rows);
	}
	if (strcmp(cmd, "console_token") == 0) {
		char tok[65], err[256];
		json_t *resp;

		if (console_token_create(ctx->store, name, tok, sizeof(tok), err, sizeof(err)) < 0)
			return control_error("%s", err);
		resp = control_ok();
		json_object_set_new(resp, "token", json_string(tok));
		return resp;
	}
	if (strcmp(cmd, "user_del") != 0 && strcmp(cmd, "user_add") != 0)
		return NULL;
	if (!name || !*name || strlen(name) >= sizeof(((struct store_user *)0)->name))
		return control_error("name a user");
	if (strcmp(cmd, "user_del") == 0)
		return store_user_del(ctx->store, name) == 0 ? control_ok()
			: control_error("no reviewer named %s", name);
	if (strcmp(cmd, "user_add") == 0) {
		struct store_user u = { .uid = -1 };
		json_t *uid = json_object_get(req, "uid");
		const char *groups = json_string_value(json_object_get(req, "groups"));
		const char *pw = json_string_value(json_object_get(req, "password"));

		snprintf(u.name, sizeof(u.name), "%s", name);
		if (json_is_integer(uid))
			u.uid = (long)json_integer_value(uid);
		snprintf(u.groups, sizeof(u.groups), "%s", groups ? groups : "");
		u.admin = json_is_true(json_object_get(req, "admin"));
		if (pw && *pw && al_password_hash(pw, u.pwhash, sizeof(u.pwhash)) < 0)
			return control_error("cannot hash the password");
		if (store_user_put(ctx->store, &u) < 0)
			return control_error("cannot store user %s (is uid %ld taken?)", name, u.uid);
		return control_ok();
	}
	return NULL;
}

json_t *review_command(struct review_ctx *ctx, const char *cmd, json_t *req,
		       const struct control_peer *peer)
{
	static const char *const review_cmds[] = { "pending", "show", "approve", "deny", "grants",
						   "revoke" };
	json_int_t id = json_integer_value(json_object_get(req, "id"));
	struct store_user me;
	char err[512];
	int is_review = 0, rc;

	for (size_t i = 0; i < AL_ARRAY_LEN(review_cmds); i++)
		is_review |= strcmp(cmd, review_cmds[i]) == 0;
	if (!is_review) {
		if (peer->open)
			return control_error("'%s' is not a review command; use the control socket as root", cmd);
		return user_command(ctx, cmd, req);
	}
	if (!ctx->approval)
		return control_error("review is not running");
	if (peer->open && peer_is_agent(ctx, peer->pid))
		return control_error("refused: the caller runs in a pinned (agent) cgroup");
	rc = store_user_by_uid(ctx->store, (long)peer->uid, &me);
	if (rc != 0)
		return control_error("uid %u is not a reviewer (root: airlockctl user add NAME --uid %u "
				     "--groups ...)", peer->uid, peer->uid);
	if (strcmp(cmd, "pending") == 0)
		return with("pending", approval_pending_json(ctx->approval));
	if (strcmp(cmd, "grants") == 0)
		return with("grants", approval_grants_json(ctx->approval));
	if (strcmp(cmd, "show") == 0) {
		json_t *r = approval_request_json(ctx->approval, id);

		return r ? with("request", r) : control_error("no request %lld", (long long)id);
	}
	if (strcmp(cmd, "revoke") == 0)
		return approval_revoke(ctx->approval, id, me.name, err, sizeof(err)) == 0 ? control_ok()
			: control_error("%s", err);
	{
		const char *reason = json_string_value(json_object_get(req, "reason"));
		json_int_t secs = json_integer_value(json_object_get(req, "for"));
		int approve = strcmp(cmd, "approve") == 0;

		if (secs < 0 || secs > 30 * 24 * 3600)
			return control_error("bad grant window");
		if (approval_decide(ctx->approval, id, &me, (long)peer->uid, approve, reason,
				    (unsigned int)secs, err, sizeof(err)) < 0)
			return control_error("%s", err);
		return control_ok();
	}
}
