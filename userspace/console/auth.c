/* Console authentication: reviewer login with sessions (cookie + CSRF token), rate limits, API tokens. */
#include "console_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <inttypes.h>
#include <stdlib.h>
#include <strings.h>

int auth_random_hex(char *out, size_t bytes)
{
	unsigned char b[64];

	if (bytes > sizeof(b) || RAND_bytes(b, (int)bytes) != 1)
		return -1;
	al_hex(b, bytes, out);
	OPENSSL_cleanse(b, sizeof(b));
	return 0;
}

/* Constant-time equality of two NUL-terminated tokens of the same expected length. */
static int token_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	return la == lb && la > 0 && CRYPTO_memcmp(a, b, la) == 0;
}

int console_token_create(struct store *st, const char *user, char *out, size_t len, char *err,
			 size_t errlen)
{
	struct store_user u;
	char tok[65], sha[65];

	if (len < sizeof(tok))
		return al_errf(err, errlen, "token buffer too small");
	if (!user || store_user_by_name(st, user, &u) != 0)
		return al_errf(err, errlen, "no reviewer named %s (airlockctl user add)", user ? user : "");
	if (auth_random_hex(tok, 32) < 0 || al_sha256_hex(tok, strlen(tok), sha) < 0)
		return al_errf(err, errlen, "no randomness");
	if (store_token_add(st, user, sha) < 0)
		return al_errf(err, errlen, "cannot store the token");
	memcpy(out, tok, sizeof(tok));
	OPENSSL_cleanse(tok, sizeof(tok));
	return 0;
}

/* ---- sessions ------------------------------------------------------------------------------ */

/* Which account and password a login was made with: a new password, or the name removed and
 * added again (another account, whoever it is for), gives another tag. */
static int account_tag(const struct store_user *u, char out[65])
{
	char buf[320];

	if (al_fmt(buf, sizeof(buf), "%" PRId64 ":%s", u->created_us, u->pwhash) < 0)
		return -1;
	return al_sha256_hex(buf, strlen(buf), out);
}

/* The user of session s, read again from the store: 0 with *u, or -1 and s is ended (the user
 * is gone, or is not the account and password it logged in as). */
static int session_user(struct console *c, struct csession *s, struct store_user *u)
{
	char tag[65];

	if (store_user_by_name(c->store, s->user, u) != 0 || account_tag(u, tag) < 0 ||
	    !token_eq(tag, s->account)) {
		OPENSSL_cleanse(s, sizeof(*s));
		return -1;
	}
	return 0;
}

static int session_live(const struct console *c, const struct csession *s, int64_t now)
{
	return s->used && now - s->last_us < c->idle_us && now - s->created_us < c->max_us;
}

static struct csession *session_find(struct console *c, const char *token)
{
	int64_t now = al_now_us();
	struct csession *found = NULL;

	/* Look at every slot, so the time taken does not depend on which one matches. */
	for (size_t i = 0; i < CONSOLE_MAX_SESSIONS; i++) {
		struct csession *s = &c->sessions[i];

		if (s->used && !session_live(c, s, now)) {
			OPENSSL_cleanse(s, sizeof(*s));
			continue;
		}
		if (s->used && token_eq(s->token, token))
			found = s;
	}
	return found;
}

static struct csession *session_new(struct console *c, const struct store_user *u)
{
	int64_t now = al_now_us();
	struct csession *s = NULL;

	for (size_t i = 0; i < CONSOLE_MAX_SESSIONS; i++) {
		struct csession *x = &c->sessions[i];

		if (!x->used || !session_live(c, x, now)) {
			s = x;
			break;
		}
		if (!s || x->last_us < s->last_us)
			s = x; /* full: the least recently used one goes */
	}
	memset(s, 0, sizeof(*s));
	if (auth_random_hex(s->token, 32) < 0 || auth_random_hex(s->csrf, 32) < 0 ||
	    account_tag(u, s->account) < 0) {
		OPENSSL_cleanse(s, sizeof(*s));
		return NULL;
	}
	snprintf(s->user, sizeof(s->user), "%s", u->name);
	s->created_us = s->last_us = now;
	s->used = 1;
	return s;
}

static void set_cookie(struct console *c, struct reply *r, const char *value, int clear)
{
	snprintf(r->set_cookie, sizeof(r->set_cookie), "%s=%s; Path=/; HttpOnly; SameSite=Strict%s%s",
		 CONSOLE_COOKIE, value, c->tls ? "; Secure" : "", clear ? "; Max-Age=0" : "");
}

int auth_identify(struct console *c, struct MHD_Connection *conn, struct who *w)
{
	const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	const char *cookie;

	memset(w, 0, sizeof(*w));
	if (authz) {
		char sha[65], user[64];

		if (strncasecmp(authz, "Bearer ", 7) != 0 || strlen(authz + 7) != 64 ||
		    al_sha256_hex(authz + 7, 64, sha) < 0 ||
		    store_token_user(c->store, sha, user, sizeof(user)) != 0 ||
		    store_user_by_name(c->store, user, &w->u) != 0)
			return -1;
		memcpy(w->bearer_sha, sha, sizeof(w->bearer_sha));
		return 0;
	}
	cookie = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, CONSOLE_COOKIE);
	if (!cookie || strlen(cookie) != 64)
		return -1;
	w->sess = session_find(c, cookie);
	if (!w->sess)
		return -1;
	/* The user is read again on every request: removed users, and logins made with a
	 * password since changed, are out at once. */
	if (session_user(c, w->sess, &w->u) < 0) {
		w->sess = NULL;
		return -1;
	}
	w->sess->last_us = al_now_us();
	return 0;
}

int auth_still_valid(struct console *c, const char *cookie_token, const char *bearer_sha)
{
	struct store_user u;
	struct csession *s;
	char user[64];

	if (bearer_sha[0])
		return store_token_user(c->store, bearer_sha, user, sizeof(user)) == 0 &&
		       store_user_by_name(c->store, user, &u) == 0 ? 0 : -1;
	s = session_find(c, cookie_token);
	return s && session_user(c, s, &u) == 0 ? 0 : -1;
}

int auth_csrf_ok(struct console *c, struct MHD_Connection *conn, const struct who *w)
{
	const char *t = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-CSRF-Token");

	(void)c;
	if (!w->sess)
		return 0; /* a bearer token is not sent by browsers on their own */
	return t && token_eq(w->sess->csrf, t) ? 0 : -1;
}

/* ---- login ------------------------------------------------------------------------------- */

/* A login as a record of the audit chain: who, from where (a local peer's uid too). */
static void audit_login(struct console *c, const char *name, const struct csource *src)
{
	json_t *b = json_pack("{s:s, s:s}", "user", name, "from", src->addr);

	if (b && src->kind == CSOURCE_LOCAL)
		json_object_set_new(b, "uid", json_integer(src->uid));
	if (store_audit_event(c->store, "login", 0, b) < 0)
		al_err("console: could not record the login of '%s' in the audit log", name);
}

void auth_login(struct console *c, const struct csource *src, json_t *body, struct reply *r)
{
	const char *name = json_string_value(json_object_get(body, "name"));
	const char *pw = json_string_value(json_object_get(body, "password"));
	struct vjob *j;

	if (!name || !pw || !*name || strlen(name) >= sizeof(j->name) || strlen(pw) >= sizeof(j->pw)) {
		reply_error(r, 400, "send {\"name\": ..., \"password\": ...}");
		return;
	}
	if (throttle_begin(c, name, src, !verify_full(c), r) < 0)
		return;
	j = calloc(1, sizeof(*j));
	if (!j) {
		throttle_end(c, name, src, 1);
		reply_error(r, 500, "out of memory");
		return;
	}
	snprintf(j->name, sizeof(j->name), "%s", name);
	snprintf(j->pw, sizeof(j->pw), "%s", pw);
	j->src = *src;
	/* Unknown users are checked against the dummy hash: the same cost either way. */
	j->found = store_user_by_name(c->store, name, &j->u) == 0 && j->u.pwhash[0];
	snprintf(j->hash, sizeof(j->hash), "%s", j->found ? j->u.pwhash : c->dummy_hash);
	r->login = j;
}

void auth_login_abandoned(struct console *c, struct vjob *j)
{
	throttle_end(c, j->name, &j->src, !j->checked || (j->ok && j->found));
}

void auth_login_done(struct console *c, struct vjob *j, struct reply *r)
{
	struct store_user now;
	struct csession *s;
	int ok = j->checked && j->ok && j->found;

	if (!j->checked) {
		throttle_end(c, j->name, &j->src, 1);
		reply_error(r, 503, "airlockd is stopping");
		return;
	}
	/* Checked against the account as it was: one removed, or given another password,
	 * meanwhile is not logged in (its tag would end the session at once anyway). */
	if (ok && (store_user_by_name(c->store, j->name, &now) != 0 || now.created_us != j->u.created_us ||
		   strcmp(now.pwhash, j->u.pwhash) != 0)) {
		throttle_end(c, j->name, &j->src, 1);
		reply_error(r, 409, "the account changed while its password was checked; log in again");
		return;
	}
	throttle_end(c, j->name, &j->src, ok);
	if (!ok) {
		reply_error(r, 401, "wrong name or password");
		return;
	}
	s = session_new(c, &j->u);
	if (!s) {
		reply_error(r, 500, "cannot start a session");
		return;
	}
	al_info("console: %s logged in from %s", j->u.name, j->src.addr);
	throttle_flush(c);      /* the failures before it come first in the audit log */
	audit_login(c, j->u.name, &j->src);
	set_cookie(c, r, s->token, 0);
	r->status = 200;
	r->json = json_pack("{s:b, s:s, s:b, s:s}", "ok", 1, "user", j->u.name, "admin", j->u.admin != 0,
			    "csrf", s->csrf);
}

void auth_logout(struct console *c, struct who *w, struct reply *r)
{
	if (w->sess) {
		OPENSSL_cleanse(w->sess, sizeof(*w->sess));
		sse_recheck(c); /* this login's live feeds end now */
	}
	set_cookie(c, r, "", 1);
	r->status = 200;
	r->json = json_pack("{s:b}", "ok", 1);
}

void auth_me(struct console *c, struct who *w, struct reply *r)
{
	(void)c;
	r->status = 200;
	r->json = json_pack("{s:b, s:s, s:b, s:s, s:I}", "ok", 1, "user", w->u.name, "admin", w->u.admin != 0,
			    "groups", w->u.groups, "uid", (json_int_t)w->u.uid);
	if (w->sess)
		json_object_set_new(r->json, "csrf", json_string(w->sess->csrf));
}
