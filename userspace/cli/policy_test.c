/* Replays recorded statements and HTTP requests through a candidate policy and reports every decision that would change. */
#include "policy_test.h"

#include <airlock/config.h>
#include <airlock/control.h>
#include <airlock/http.h>
#include <airlock/pg.h>
#include <airlock/pgproxy.h>

#include <stdlib.h>

/* An HTTP request that went to review: its row's id and the headline reviewers read, which
 * names every method override the request asked for (headers, query, body). */
struct held {
	int64_t id;
	char *headline;
};

struct run {
	const struct al_config *cand;
	struct pg_cache *cache;         /* statements classified again (the proxy's cache) */
	json_t *changes;
	unsigned long checked, checked_http;
	struct held *held;
	size_t n_held;
};

/*
 * Recorded text need not be UTF-8 (a cgroup path, a Host header): a byte that is not becomes
 * U+FFFD, as in airlockd's JSON, so the rest of the text still shows; never dropping the change.
 */
static json_t *jtext(const char *v)
{
	const unsigned char *p = (const unsigned char *)v;
	struct al_buf b = { 0 };
	size_t n, i = 0, k;
	json_t *j;

	if (!v)
		return NULL;
	j = json_string(v);
	if (j)
		return j;
	n = strlen(v);
	while (i < n) {
		k = al_utf8_seq(p + i, n - i);
		if (k)
			al_buf_add(&b, p + i, k);
		else
			al_buf_add(&b, "\xef\xbf\xbd", 3);
		i += k ? k : 1;
	}
	j = b.p && !b.oom ? json_stringn(b.p, b.len) : NULL;
	free(b.p);
	return j ? j : json_string("(not UTF-8)");
}

static const struct al_resource *resource_named(const struct al_config *c, const char *name)
{
	for (size_t i = 0; name && i < c->n_resources; i++)
		if (strcmp(c->resources[i].name, name) == 0)
			return &c->resources[i];
	return NULL;
}

/*
 * What a recorded statement is decided by: its text classified again, every kind it is,
 * unsafe_setting and all, as the proxy would classify it now, when that is the statement the
 * row describes (the same fingerprint); else its recorded kind, relations and unbounded_write,
 * in rec (the row describes the statement its text ran: an EXECUTE's prepared statement, a
 * FETCH's portal, whose other kinds the store does not keep), and *alone is set.
 */
static const struct pg_stmt *recorded(struct run *r, const struct store_stmt_view *v, enum pg_kind kind,
				      const char **rels, size_t n, struct pg_stmt_list *l, struct pg_stmt *rec,
				      int *alone)
{
	char err[256];

	*alone = 0;
	if (v->text && v->fingerprint && pg_classify_cached(r->cache, v->text, l, err, sizeof(err)) == 0 &&
	    l->n == 1 && strcmp(l->stmts[0].fingerprint, v->fingerprint) == 0)
		return &l->stmts[0];
	*alone = 1;
	rec->kind = kind;
	rec->relations = (char **)rels;
	rec->n_relations = n;
	rec->unbounded_write = v->unbounded_write;
	snprintf(rec->fingerprint, sizeof(rec->fingerprint), "%s", v->fingerprint ? v->fingerprint : "");
	return rec;
}

static int one(void *arg, const struct store_stmt_view *v)
{
	struct run *r = arg;
	const struct al_resource *res = resource_named(r->cand, v->resource);
	const char *rels[256];
	json_t *rj = v->relations_json ? json_loads(v->relations_json, 0, NULL) : NULL;
	struct al_subject who = { .cgroup_path = v->cgroup_path, .uid = v->uid, .exe = v->exe };
	struct pg_stmt_list l = { 0 };
	struct pg_stmt rec = { 0 };
	const struct al_rule *rule = NULL;
	const char *now, *was = v->decision ? v->decision : "allow";
	enum pg_kind kind;
	size_t i, n = 0;
	json_t *x;
	int alone = 0;

	r->checked++;
	json_array_foreach(rj, i, x)
		if (n < AL_ARRAY_LEN(rels) && json_is_string(x))
			rels[n++] = json_string_value(x);
	if (v->rule && (strcmp(v->rule, PGPROXY_UNKNOWN_PORTAL) == 0 || strcmp(v->rule, PGPROXY_UNKNOWN_TARGET) == 0)) {
		/* refused before any rule: the proxy could not tell what it runs */
		now = "deny";
	} else if (v->kind && strcmp(v->kind, "empty") == 0) {
		/* an empty query runs nothing, and no rule decides it */
		now = "allow";
	} else if (!v->kind || pg_kind_parse(v->kind, &kind) < 0) {
		/* Unparsed statements are refused by every policy. */
		now = "deny";
	} else if (!res) {
		now = r->cand->default_action == AL_DEFAULT_DENY ? "deny" : "allow";
	} else {
		rule = config_decide_stmt(res, recorded(r, v, kind, rels, n, &l, &rec, &alone), &who);
		now = rule ? config_action_name(rule->allow) : "allow";
	}
	if (strcmp(was, now) != 0)
		json_array_append_new(r->changes, json_pack("{s:I, s:s, s:o?, s:o?, s:o?, s:s, s:s, s:s?, s:s?}",
			"statement", (json_int_t)v->id, "protocol", "postgres", "text", jtext(v->text), "resource",
			jtext(v->resource), "agent", jtext(v->cgroup_path), "was", was, "would_be", now,
			"rule", rule ? rule->text : NULL, "note", alone ? "decided by its recorded kind alone: "
			"the statement it ran is not its text, and the store keeps none of its other kinds" : NULL));
	pg_stmt_list_free(&l);
	json_decref(rj);
	return 0;
}

/* Statements first, then HTTP requests, each by id. */
static int by_row(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int xs = json_object_get(x, "statement") != NULL, ys = json_object_get(y, "statement") != NULL;
	json_int_t xi = json_integer_value(json_object_get(x, xs ? "statement" : "http_request"));
	json_int_t yi = json_integer_value(json_object_get(y, ys ? "statement" : "http_request"));

	if (xs != ys)
		return xs ? -1 : 1;
	return xi < yi ? -1 : xi > yi;
}

/* The changes in row order (the store hands rows over as its batches hold them). */
static int sort_changes(json_t *changes)
{
	size_t n = json_array_size(changes);
	json_t **v;

	if (n < 2)
		return 0;
	if (!(v = calloc(n, sizeof(*v))))
		return -1;
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(changes, i));
	qsort(v, n, sizeof(*v), by_row);
	json_array_clear(changes);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(changes, v[i]);
	free(v);
	return 0;
}

/* ---- HTTP: the same decision the proxy makes (config_https_resource, config_decide) -------- */

/*
 * The candidate's https resource that would have taken the request: the one its connection
 * was matched to, if it still answers the name, else the first on that address and port
 * whose host list does, as the proxy picks by server name. The server name is not kept per
 * request: the Host header's name stands in for it (clients send the same one).
 */
static const struct al_resource *http_resource(const struct al_config *c, const struct store_http_view *v)
{
	const struct al_resource *first = resource_named(c, v->resource);
	char name[256];
	struct al_addr dst;
	const char *h = v->host ? v->host : "";
	size_t n;
	int have_dst;

	if (h[0] == '[') {
		h++;
		n = strcspn(h, "]");
	} else {
		n = strcspn(h, ":");
	}
	snprintf(name, sizeof(name), "%.*s", (int)n, h);
	have_dst = v->dst_addr && al_addr_parse(&dst, v->dst_addr) == 0;
	return config_https_resource(c, first, have_dst ? &dst : NULL, (uint16_t)v->dst_port, name);
}

/* Each review request of an HTTP request: its headline (for a Kubernetes stream the line after
 * the kubectl one). */
static int one_held(void *arg, const char *json)
{
	struct run *r = arg;
	json_t *o = json_loads(json, 0, NULL);
	const char *proto = json_string_value(json_object_get(o, "protocol"));
	const char *cmd = json_string_value(json_object_get(o, "command"));
	json_t *id = json_object_get(o, "stmt_id");
	struct held *h;

	if (proto && cmd && json_is_integer(id) && strcmp(proto, "http") == 0 &&
	    (h = reallocarray(r->held, r->n_held + 1, sizeof(*h)))) {
		if (strncmp(cmd, "kubectl ", 8) == 0 && strchr(cmd, '\n'))
			cmd = strchr(cmd, '\n') + 1;
		r->held = h;
		h[r->n_held].id = json_integer_value(id);
		h[r->n_held].headline = strndup(cmd, strcspn(cmd, "\n"));
		if (h[r->n_held].headline)
			r->n_held++;
	}
	json_decref(o);
	return 0;
}

static int by_id(const void *a, const void *b)
{
	int64_t x = ((const struct held *)a)->id, y = ((const struct held *)b)->id;

	return x < y ? -1 : x > y;
}

static const char *held_headline(const struct run *r, int64_t id)
{
	struct held key = { .id = id }, *h = bsearch(&key, r->held, r->n_held, sizeof(key), by_id);

	return h ? h->headline : NULL;
}

/* The overrides a headline lists ("POST (override DELETE, any method) https://...") into c. */
static void headline_overrides(const char *line, struct http_command *c)
{
	size_t n = strlen(c->method);
	const char *p;

	if (strncmp(line, c->method, n) != 0 || strncmp(line + n, " (override ", 11) != 0)
		return;
	for (p = line + n + 11; *p && *p != ')' && c->n_overrides < HTTP_OVERRIDES_MAX;) {
		size_t w = strcspn(p, ",)");

		if (w == 10 && strncmp(p, "any method", 10) == 0)
			snprintf(c->overrides[c->n_overrides++], sizeof(c->overrides[0]), "%s", AL_METHOD_ANY);
		else if (w && w < sizeof(c->overrides[0]))
			snprintf(c->overrides[c->n_overrides++], sizeof(c->overrides[0]), "%.*s", (int)w, p);
		p += w;
		while (*p == ',' || *p == ' ')
			p++;
	}
}

/* 1 if the recorded rule names methods and the request's is not among them: the rule met one of
 * its method overrides when it was recorded. */
static int decided_by_override(const char *rule, const char *method)
{
	const char *p = rule ? strstr(rule, " method ") : NULL;
	size_t n = strlen(method);

	if (!p)
		return 0;
	/* the rule's methods: the upper-case words after "method" (config.c takes no others) */
	for (p += 8; *p >= 'A' && *p <= 'Z';) {
		size_t w = strcspn(p, " ");

		if (w == n && strncmp(p, method, n) == 0)
			return 0;
		p += w;
		while (*p == ' ')
			p++;
	}
	return 1;
}

/*
 * The decision the proxy would make now for a recorded request, from what the store keeps of it
 * (method, path, query, body digest, Kubernetes argv, the recorded decision): the parser's
 * refusals (a method not in upper case, a path servers read differently), the path in normal
 * form, the method overrides its query names and, for a request that went to review, those its
 * headline lists (config_decide_methods: the strictest wins), and a review rule that denies a
 * body not held or one reviewers could not read. What the store does not give is named in the
 * change's note, not guessed: the override headers and body _method of a request that did not
 * go to review, and whether a body it now reviews is one reviewers could read.
 */
static const char *decide_http(const struct al_resource *res, const struct store_http_view *v, const char *was,
			       const char *headline, const struct al_rule **rule, char *note, size_t notelen)
{
	static const char empty_sha[] = AL_SHA256_EMPTY;
	struct http_command c = { 0 };
	const char *why, *methods[HTTP_OVERRIDES_MAX];
	struct al_subject subj = { 0 };
	char err[128], *path;
	size_t plen = strlen(v->path ? v->path : "");
	json_t *k8s = v->k8s_json ? json_loads(v->k8s_json, 0, NULL) : NULL;
	const char *verb = json_string_value(json_object_get(k8s, "verb"));
	const char *now;

	*rule = NULL;
	for (const char *m = v->method; *m; m++)
		if (*m >= 'a' && *m <= 'z') {
			snprintf(note, notelen, "refused now (400): method must be upper case");
			json_decref(k8s);
			return "refused";
		}
	why = http_path_refusal((const uint8_t *)(v->path ? v->path : ""), plen);
	if (!why && strlen(v->method) >= sizeof(c.method))
		why = "method too long";
	if (why || !(path = malloc(plen + 2))) {
		snprintf(note, notelen, why ? "refused now (400): %s" : "%s", why ? why : "out of memory");
		json_decref(k8s);
		return why ? "refused" : was;
	}
	(void)http_path_normal(v->path ? v->path : "", plen, path);
	memcpy(c.method, v->method, strlen(v->method) + 1);
	if (v->query && http_form_overrides(&c, v->query, strlen(v->query), err, sizeof(err)) < 0) {
		snprintf(note, notelen, "refused now (400): %s", err);
		free(path);
		json_decref(k8s);
		return "refused";
	}
	/* the overrides it was decided with: its review headline, else its fingerprint's method words */
	if (headline || v->fingerprint)
		headline_overrides(headline ? headline : v->fingerprint, &c);
	for (size_t i = 0; i < c.n_overrides; i++)
		methods[i] = c.overrides[i];
	subj.cgroup_path = v->cgroup_path;
	subj.uid = v->uid;
	subj.exe = v->exe;
	subj.method = v->method;
	subj.path = path;
	subj.k8s_exec = verb && strcmp(verb, "portforward") != 0;
	*rule = config_decide_methods(res, &subj, methods, c.n_overrides);
	now = *rule ? config_action_name((*rule)->allow) : "allow";
	if (*rule && (*rule)->allow == AL_ACTION_REVIEW) {
		if (!v->body_sha256) {
			/* a body that was not held cannot be reviewed: the proxy denies it */
			now = "deny";
		} else if (strcmp(v->body_sha256, empty_sha) != 0) {
			if (v->decision && strcmp(v->decision, "deny") == 0 && v->rule &&
			    strncmp(v->rule, "rule review", 11) == 0)
				now = "deny"; /* denied then because reviewers could not read its body */
			else if (strcmp(was, "review") != 0)
				snprintf(note, notelen, "or deny: whether reviewers could read its body (not binary, "
					 "not content-coded, no chunk extensions) is not recorded");
		}
	}
	if (!note[0] && !headline && !v->fingerprint && decided_by_override(v->rule, v->method))
		snprintf(note, notelen, "recorded as decided for a method override (a header or a body's "
			 "_method) that the store's view does not give policy test: decided without it");
	free(path);
	json_decref(k8s);
	return now;
}

static int one_http(void *arg, const struct store_http_view *v)
{
	static const char *const reviewed[] = { "review", "approved", "denied", "timeout", "aborted", "abandoned" };
	struct run *r = arg;
	const struct al_resource *res = http_resource(r->cand, v);
	const char *was = v->decision ? v->decision : "allow", *now;
	const struct al_rule *rule = NULL;
	char *text = NULL, note[300] = "";

	r->checked_http++;
	/* After review the row keeps how it ended; the policy's decision was review. */
	for (size_t i = 0; i < AL_ARRAY_LEN(reviewed); i++)
		if (strcmp(was, reviewed[i]) == 0)
			was = "review";
	if (!res) {
		/* No https resource answers it: passed through as TCP, or closed. */
		now = r->cand->default_action == AL_DEFAULT_DENY ? "deny" : "allow";
	} else {
		now = decide_http(res, v, was, held_headline(r, v->id), &rule, note, sizeof(note));
	}
	if (strcmp(was, now) != 0) {
		if (asprintf(&text, "%s https://%s%s%s%s", v->method ? v->method : "?", v->host ? v->host : "",
			     v->path ? v->path : "", v->query && *v->query ? "?" : "",
			     v->query ? v->query : "") < 0)
			text = NULL;
		json_array_append_new(r->changes, json_pack("{s:I, s:s, s:o?, s:o?, s:o?, s:s, s:s, s:s?, s:s?}",
			"http_request", (json_int_t)v->id, "protocol", "http", "text", jtext(text), "resource",
			jtext(res ? res->name : v->resource), "agent", jtext(v->cgroup_path), "was", was,
			"would_be", now, "rule", rule ? rule->text : NULL, "note", note[0] ? note : NULL));
		free(text);
	}
	return 0;
}

json_t *policy_test(struct store_reader *st, json_t *files, int64_t since_us)
{
	struct al_config *cand = NULL;
	struct run r = { 0 };
	char err[1024], *text = NULL;
	size_t len = 0, i;
	json_t *f, *resp;

	if (!json_is_array(files) || json_array_size(files) == 0)
		return control_error("name one or more candidate policy files");
	/* One candidate made of include lines: errors name each file and line. */
	json_array_foreach(files, i, f) {
		const char *p = json_string_value(f);
		char *nt;

		if (!p || p[0] != '/' || strchr(p, '"') || strpbrk(p, "*?["))
			goto bad_path;
		nt = realloc(text, len + strlen(p) + 16);
		if (!nt)
			goto oom;
		text = nt;
		len += (size_t)snprintf(text + len, strlen(p) + 16, "include \"%s\"\n", p);
	}
	if (config_parse("candidate", text ? text : "", &cand, err, sizeof(err)) < 0) {
		free(text);
		return control_error("%s", err);
	}
	free(text);
	r.cand = cand;
	if (pg_cache_new(1024, &r.cache) < 0) {
		config_free(cand);
		return control_error("out of memory");
	}
	r.changes = json_array();
	{
		/* the newest 10000 review requests: a request held longer ago is decided without
		 * its headline (and says so) */
		struct store_find_filter hf = { .since_us = since_us, .limit = 10000 };
		const char *why = NULL;

		if (store_find_requests(st, &hf, one_held, &r) < 0)
			why = "could not read the recorded review requests";
		if (r.n_held)
			qsort(r.held, r.n_held, sizeof(*r.held), by_id);
		if (!why && store_stmts_since(st, since_us, one, &r) < 0)
			why = "could not read the recorded statements";
		if (!why && store_http_since(st, since_us, one_http, &r) < 0)
			why = "could not read the recorded HTTP requests";
		if (!why && sort_changes(r.changes) < 0)
			why = "out of memory";
		for (i = 0; i < r.n_held; i++)
			free(r.held[i].headline);
		free(r.held);
		pg_cache_free(r.cache);
		config_free(cand);
		if (why) {
			json_decref(r.changes);
			return control_error("%s", why);
		}
	}
	resp = control_ok();
	json_object_set_new(resp, "checked", json_integer((json_int_t)(r.checked + r.checked_http)));
	json_object_set_new(resp, "checked_statements", json_integer((json_int_t)r.checked));
	json_object_set_new(resp, "checked_http", json_integer((json_int_t)r.checked_http));
	json_object_set_new(resp, "changes", r.changes);
	return resp;
bad_path:
	free(text);
	return control_error("candidate files are absolute paths without quotes or wildcards");
oom:
	free(text);
	return control_error("out of memory");
}
