/* Limits on failed console logins (per name, per source, a bucket for the whole console) and their audit records, gathered per interval. */
#include "console_int.h"

#include <stdlib.h>

/*
 * A password check costs ~80 ms of a core (PBKDF2), so the checks are rationed:
 *
 * - per name and per source (a local uid, a remote address, its /24 or /64), CONSOLE_FAIL_MAX
 *   failures (a network CONSOLE_FAIL_NET_MAX) in a window of a minute, then 429. A local
 *   source is its uid, not its address: any local user has all of 127/8, while a uid is what
 *   the kernel says the peer socket belongs to. One local user therefore cannot lock out
 *   another's logins, only names;
 * - the whole console: every check takes a token of a bucket of CONSOLE_CHECK_BURST, refilled
 *   one each CONSOLE_CHECK_REFILL_US, whatever the number of sources (many remote networks,
 *   many local users); an empty bucket is 429 for everyone until it refills.
 *
 * A check is counted as failed when it starts (throttle_begin) and taken back when the
 * password was right, so checks running at once cannot each pass a limit one below.
 *
 * No counter is ever pushed out by others: a counter is made only by a check, and a window
 * holds at most the bucket's checks, fewer than the tables' slots (asserted below). A counter
 * whose window is over is free again. A full table (which the bucket rules out) refuses the
 * login rather than forget one.
 *
 * Failed logins go to the audit log as one record an interval (CONSOLE_FAIL_LOG_US): the
 * failures by name, a sample of their sources and the logins refused unchecked; a lockout (a
 * name or source reaching its limit, the bucket running dry) is a record of its own, and a
 * successful login writes what is gathered before its own record.
 */

_Static_assert(CONSOLE_FAIL_NAMES > CONSOLE_CHECK_BURST + CONSOLE_VERIFY_MAX +
	       CONSOLE_FAIL_WINDOW_US / CONSOLE_CHECK_REFILL_US,
	       "a window's checks must fit the name counters");
_Static_assert(CONSOLE_FAIL_SOURCES > 2 * (CONSOLE_CHECK_BURST + CONSOLE_VERIFY_MAX +
					   CONSOLE_FAIL_WINDOW_US / CONSOLE_CHECK_REFILL_US),
	       "a window's checks must fit the source counters (two each)");

void throttle_init(struct console *c)
{
	c->th.tokens = CONSOLE_CHECK_BURST;
	c->th.refill_us = al_mono_us();
}

/* The tokens the bucket has now. */
static unsigned int tokens(struct throttle *t, int64_t now)
{
	int64_t n = (now - t->refill_us) / CONSOLE_CHECK_REFILL_US;

	if (n > 0) {
		t->tokens = t->tokens + n >= CONSOLE_CHECK_BURST ? CONSOLE_CHECK_BURST : t->tokens + (unsigned int)n;
		t->refill_us = t->tokens == CONSOLE_CHECK_BURST ? now : t->refill_us + n * CONSOLE_CHECK_REFILL_US;
	}
	if (t->tokens == CONSOLE_CHECK_BURST)
		t->drained = 0;
	return t->tokens;
}

/* Counter key in table, or (create) a free slot for it; NULL if none (and not creating). */
static struct fail_key *counter(struct fail_key *table, size_t n, const char *key, int create, int64_t now)
{
	struct fail_key *free_slot = NULL;

	for (size_t i = 0; i < n; i++) {
		struct fail_key *f = &table[i];

		if (f->key[0] && now - f->since_us >= CONSOLE_FAIL_WINDOW_US)
			memset(f, 0, sizeof(*f));
		if (f->key[0] && strcmp(f->key, key) == 0)
			return f;
		if (!f->key[0] && !free_slot)
			free_slot = f;
	}
	if (!create || !free_slot)
		return NULL;
	snprintf(free_slot->key, sizeof(free_slot->key), "%s", key);
	free_slot->since_us = now;
	return free_slot;
}

/* The counters a login from src for name counts on: the name's, then the source's (1 or 2). */
struct keys {
	char k[3][80];
	unsigned int max[3];
	size_t n;
};

static void keys_of(const char *name, const struct csource *src, struct keys *ks)
{
	memset(ks, 0, sizeof(*ks));
	snprintf(ks->k[0], sizeof(ks->k[0]), "user:%s", name);
	ks->max[0] = CONSOLE_FAIL_MAX;
	ks->n = 1;
	if (src->kind == CSOURCE_LOCAL) {
		snprintf(ks->k[ks->n], sizeof(ks->k[0]), "uid:%u", src->uid);
		ks->max[ks->n++] = CONSOLE_FAIL_MAX;
	} else if (src->kind == CSOURCE_REMOTE) {
		snprintf(ks->k[ks->n], sizeof(ks->k[0]), "ip:%s", src->addr);
		ks->max[ks->n++] = CONSOLE_FAIL_MAX;
		snprintf(ks->k[ks->n], sizeof(ks->k[0]), "net:%s", src->net);
		ks->max[ks->n++] = CONSOLE_FAIL_NET_MAX;
	} else {
		snprintf(ks->k[ks->n], sizeof(ks->k[0]), "unknown");
		ks->max[ks->n++] = CONSOLE_FAIL_MAX;
	}
}

static struct fail_key *key_counter(struct throttle *t, const struct keys *ks, size_t i, int create,
				    int64_t now)
{
	if (i == 0)
		return counter(t->names, CONSOLE_FAIL_NAMES, ks->k[0], create, now);
	return counter(t->sources, CONSOLE_FAIL_SOURCES, ks->k[i], create, now);
}

static void log_source(struct fail_log *l, const struct csource *src)
{
	for (size_t i = 0; i < l->n_from; i++) {
		const struct csource *s = &l->from[i];

		if (s->kind == src->kind && (src->kind == CSOURCE_LOCAL ? s->uid == src->uid
					     : strcmp(s->addr, src->addr) == 0))
			return;
	}
	if (l->n_from < CONSOLE_FAIL_LOG_FROM)
		l->from[l->n_from++] = *src;
}

static void log_event(struct fail_log *l, const char *name, const struct csource *src)
{
	int64_t now = al_now_us();

	if (!l->failures && !l->refused)
		l->first_us = now;
	l->last_us = now;
	log_source(l, src);
	if (!name) {
		l->refused++;
		return;
	}
	l->failures++;
	for (size_t i = 0; i < l->n_names; i++) {
		if (strcmp(l->names[i].name, name) == 0) {
			l->names[i].n++;
			return;
		}
	}
	if (l->n_names == CONSOLE_FAIL_LOG_NAMES) {
		l->unlisted++;
		return;
	}
	snprintf(l->names[l->n_names].name, sizeof(l->names[0].name), "%s", name);
	l->names[l->n_names++].n = 1;
}

static json_t *source_json(const struct csource *s)
{
	if (s->kind == CSOURCE_LOCAL)
		return json_pack("{s:s, s:I}", "addr", s->addr, "uid", (json_int_t)s->uid);
	return json_pack("{s:s}", "addr", s->addr);
}

static void audit(struct console *c, const char *kind, json_t *body)
{
	if (store_audit_event(c->store, kind, 0, body) < 0)
		al_err("console: could not record %s in the audit log", kind);
}

void throttle_flush(struct console *c)
{
	struct fail_log *l = &c->th.log;
	json_t *users, *from, *body;

	if (!l->failures && !l->refused)
		return;
	users = json_object();
	from = json_array();
	for (size_t i = 0; i < l->n_names; i++)
		json_object_set_new(users, l->names[i].name, json_integer(l->names[i].n));
	for (size_t i = 0; i < l->n_from; i++)
		json_array_append_new(from, source_json(&l->from[i]));
	body = json_pack("{s:I, s:o, s:I, s:o, s:I, s:I, s:I}", "failures", (json_int_t)l->failures,
			 "users", users, "users_unlisted", (json_int_t)l->unlisted, "from", from,
			 "refused", (json_int_t)l->refused, "first_us", (json_int_t)l->first_us,
			 "last_us", (json_int_t)l->last_us);
	al_info("console: %u failed logins (%zu names%s) and %u refused unchecked, from %zu%s sources, "
		"in %.1f s", l->failures, l->n_names, l->unlisted ? " and more" : "", l->refused, l->n_from,
		l->n_from == CONSOLE_FAIL_LOG_FROM ? " or more" : "", (double)(l->last_us - l->first_us) / 1e6);
	audit(c, "login_failed", body);
	memset(l, 0, sizeof(*l));
}

void throttle_tick(struct console *c)
{
	struct fail_log *l = &c->th.log;

	if ((l->failures || l->refused) && al_now_us() - l->first_us >= CONSOLE_FAIL_LOG_US)
		throttle_flush(c);
	(void)tokens(&c->th, al_mono_us());
}

/* A lockout: the counter key (keys_of's form) reached its limit. */
static void locked(struct console *c, const char *key, unsigned int failures)
{
	const char *v = strchr(key, ':') ? strchr(key, ':') + 1 : key;
	json_t *body;

	if (strncmp(key, "user:", 5) == 0)
		body = json_pack("{s:s}", "user", v);
	else if (strncmp(key, "uid:", 4) == 0)
		body = json_pack("{s:I}", "uid", (json_int_t)strtoll(v, NULL, 10));
	else if (strncmp(key, "ip:", 3) == 0)
		body = json_pack("{s:s}", "from", v);
	else if (strncmp(key, "net:", 4) == 0)
		body = json_pack("{s:s}", "net", v);
	else
		body = json_pack("{s:s}", "source", v);
	json_object_set_new(body, "failures", json_integer(failures));
	json_object_set_new(body, "window_s", json_integer(CONSOLE_FAIL_WINDOW_US / 1000000));
	al_warn("console: logins refused for a minute for %s: %u failed", key, failures);
	audit(c, "login_locked", body);
}

/* The bucket ran dry: logins from every source wait for it. */
static void drained(struct console *c)
{
	al_warn("console: %d password checks in a burst, then one each %.1f s, are used up: logins "
		"refused until the bucket refills", CONSOLE_CHECK_BURST, CONSOLE_CHECK_REFILL_US / 1e6);
	audit(c, "login_locked", json_pack("{s:s, s:i, s:I}", "console", "every source", "checks",
					     CONSOLE_CHECK_BURST, "refill_ms", (json_int_t)(CONSOLE_CHECK_REFILL_US / 1000)));
}

static int refuse(struct console *c, const struct csource *src, struct reply *r, unsigned int status,
		  const char *msg)
{
	log_event(&c->th.log, NULL, src);
	reply_error(r, status, "%s", msg);
	return -1;
}

int throttle_begin(struct console *c, const char *name, const struct csource *src, int room,
		   struct reply *r)
{
	struct throttle *t = &c->th;
	int64_t now = al_mono_us();
	struct fail_key *f[3];
	struct keys ks;

	keys_of(name, src, &ks);
	for (size_t i = 0; i < ks.n; i++) {
		f[i] = key_counter(t, &ks, i, 0, now);
		if (f[i] && f[i]->count >= ks.max[i])
			return refuse(c, src, r, 429, i == 0 ? "too many failed logins for this name; wait a minute"
				      : "too many failed logins from here; wait a minute");
	}
	if (tokens(t, now) == 0) {
		if (!t->drained) {
			t->drained = 1;
			drained(c);
		}
		return refuse(c, src, r, 429, "too many failed logins on this console; try again in a few seconds");
	}
	if (!room)
		return refuse(c, src, r, 503, "too many logins are being checked; try again");
	for (size_t i = 0; i < ks.n; i++) {
		f[i] = key_counter(t, &ks, i, 1, now);
		if (!f[i]) {
			al_err("console: no room to count failed logins (%s)", ks.k[i]);
			while (i-- > 0)
				f[i]->count--;
			return refuse(c, src, r, 429, "too many failed logins on this console; try again later");
		}
		f[i]->count++;
	}
	t->tokens--;
	return 0;
}

void throttle_end(struct console *c, const char *name, const struct csource *src, int ok)
{
	struct throttle *t = &c->th;
	int64_t now = al_mono_us();
	struct keys ks;

	keys_of(name, src, &ks);
	if (!ok)
		log_event(&t->log, name, src);
	for (size_t i = 0; i < ks.n; i++) {
		struct fail_key *f = key_counter(t, &ks, i, 0, now);

		if (!f)
			continue;       /* its window ended meanwhile */
		if (ok) {
			if (f->count && --f->count == 0)
				memset(f, 0, sizeof(*f));
		} else if (f->count >= ks.max[i] && !f->locked) {
			f->locked = 1;
			locked(c, f->key, f->count);
		}
	}
}
