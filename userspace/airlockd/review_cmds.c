/* Review commands (pending, show, approve, deny, grants, revoke) and reviewer users, over the sockets. */
#include "review_cmds.h"

#include <airlock/console.h>
#include <airlock/password.h>

#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>

/*
 * An agent must not reach the review socket: refuse peers in a pinned subtree. The cgroup is
 * read by the peer's pid, then its pidfd says whether that was still the peer's process (an
 * agent that connects, hands the socket to a child and exits must not pass as whatever process
 * gets its pid next).
 */
static int peer_is_agent(struct review_ctx *ctx, const struct control_peer *peer)
{
	struct kern_cgroup self;
	char err[256];

	if (kern_cgroup_of_pid(peer->pid, &self, err, sizeof(err)) < 0 || !control_peer_alive(peer))
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

/* user_add: a new reviewer from every field of req (absent: none). user_set: only the fields
 * req has change; the rest stay (a uid or admin flag is never dropped by leaving it out). */
static json_t *user_write(struct review_ctx *ctx, int add, const char *name, json_t *req)
{
	struct store_user u = { .uid = -1 };
	json_t *uid = json_object_get(req, "uid"), *groups = json_object_get(req, "groups");
	json_t *admin = json_object_get(req, "admin");
	const char *pw = json_string_value(json_object_get(req, "password"));
	unsigned int fields = 0;
	int rc;

	snprintf(u.name, sizeof(u.name), "%s", name);
	if (uid) {
		if (!json_is_integer(uid) || json_integer_value(uid) < 0 ||
		    json_integer_value(uid) > (json_int_t)UINT32_MAX - 1)
			return control_error("uid is a number");
		u.uid = (long)json_integer_value(uid);
		fields |= STORE_USER_UID;
	}
	if (groups) {
		if (!json_is_string(groups) || json_string_length(groups) >= sizeof(u.groups))
			return control_error("groups is a comma-separated list (under %zu bytes)",
					     sizeof(u.groups));
		snprintf(u.groups, sizeof(u.groups), "%s", json_string_value(groups));
		fields |= STORE_USER_GROUPS;
	}
	if (admin) {
		u.admin = json_is_true(admin);
		fields |= STORE_USER_ADMIN;
	}
	if (pw && *pw) {
		/* A new hash is a new password: the console's logins made with the old one end. */
		if (al_password_hash(pw, u.pwhash, sizeof(u.pwhash)) < 0)
			return control_error("cannot hash the password");
		fields |= STORE_USER_PASSWORD;
	}
	rc = add ? store_user_add(ctx->store, &u) : store_user_set(ctx->store, &u, fields);
	OPENSSL_cleanse(u.pwhash, sizeof(u.pwhash));
	if (rc == 1)
		return add ? control_error("reviewer %s exists (change it with airlockctl user set %s ...)",
					   name, name)
			   : control_error("no reviewer named %s (airlockctl user add)", name);
	if (rc < 0 && (fields & STORE_USER_UID))
		return control_error("cannot store user %s (is uid %ld taken?)", name, u.uid);
	if (rc < 0)
		return control_error("cannot store user %s", name);
	return control_ok();
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
	if (strcmp(cmd, "user_del") != 0 && strcmp(cmd, "user_add") != 0 && strcmp(cmd, "user_set") != 0 &&
	    strcmp(cmd, "console_token_revoke") != 0)
		return NULL;
	if (!name || !*name || strlen(name) >= sizeof(((struct store_user *)0)->name))
		return control_error("name a user");
	if (strcmp(cmd, "console_token_revoke") == 0) {
		int n;

		/* A live feed opened with one of them ends within a second (the console rechecks). */
		if (store_token_revoke(ctx->store, name, &n) < 0)
			return control_error("cannot revoke the console tokens of %s", name);
		return with("revoked", json_integer(n));
	}
	/* Its console tokens go with it; its logins end at their next request (auth.c). */
	if (strcmp(cmd, "user_del") == 0) {
		struct store_user_gone gone;
		json_t *resp;

		if (store_user_del(ctx->store, name, &gone) < 0)
			return control_error("no reviewer named %s", name);
		if (ctx->approval)
			approval_reviewer_removed(ctx->approval, name, &gone);
		resp = control_ok();
		json_object_set_new(resp, "approvals_withdrawn", json_integer((json_int_t)gone.n_requests));
		json_object_set_new(resp, "grants_revoked", json_integer((json_int_t)gone.n_grants));
		store_user_gone_free(&gone);
		return resp;
	}
	return user_write(ctx, strcmp(cmd, "user_add") == 0, name, req);
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
	if (peer->open && peer_is_agent(ctx, peer))
		return control_error("refused: the caller runs in a pinned (agent) cgroup, or has exited "
				     "(its socket is not a reviewer's)");
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
		return approval_revoke(ctx->approval, id, &me, (long)peer->uid, err, sizeof(err)) == 0 ? control_ok()
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
