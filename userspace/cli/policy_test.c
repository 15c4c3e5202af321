/* Replays recorded statements and HTTP requests through a candidate policy and reports every decision that would change. */
#include "policy_test.h"

#include <airlock/config.h>
#include <airlock/control.h>
#include <airlock/pg.h>

#include <stdlib.h>

struct run {
	const struct al_config *cand;
	json_t *changes;
	unsigned long checked, checked_http;
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

static int one(void *arg, const struct store_stmt_view *v)
{
	struct run *r = arg;
	const struct al_resource *res = resource_named(r->cand, v->resource);
	const char *rels[256];
	json_t *rj = v->relations_json ? json_loads(v->relations_json, 0, NULL) : NULL;
	struct al_subject subj = { 0 };
	const struct al_rule *rule = NULL;
	const char *now, *was = v->decision ? v->decision : "allow";
	enum pg_kind kind;
	size_t i, n = 0;
	json_t *x;

	r->checked++;
	json_array_foreach(rj, i, x)
		if (n < AL_ARRAY_LEN(rels) && json_is_string(x))
			rels[n++] = json_string_value(x);
	if (!v->kind || pg_kind_parse(v->kind, &kind) < 0) {
		/* Unparsed statements are refused by every policy. */
		now = "deny";
	} else if (!res) {
		now = r->cand->default_action == AL_DEFAULT_DENY ? "deny" : "allow";
	} else {
		subj.kind = (int)kind;
		subj.relations = rels;
		subj.n_relations = n;
		subj.unbounded_write = v->unbounded_write;
		subj.fingerprint = v->fingerprint;
		subj.cgroup_path = v->cgroup_path;
		subj.uid = v->uid;
		subj.exe = v->exe;
		rule = config_decide(res, &subj);
		now = rule ? config_action_name(rule->allow) : "allow";
	}
	if (strcmp(was, now) != 0)
		json_array_append_new(r->changes, json_pack("{s:I, s:s, s:o?, s:o?, s:o?, s:s, s:s, s:s?}",
			"statement", (json_int_t)v->id, "protocol", "postgres", "text", jtext(v->text), "resource",
			jtext(v->resource), "agent", jtext(v->cgroup_path), "was", was, "would_be", now,
			"rule", rule ? rule->text : NULL));
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

static int one_http(void *arg, const struct store_http_view *v)
{
	static const char *const reviewed[] = { "review", "approved", "denied", "timeout", "aborted", "abandoned" };
	struct run *r = arg;
	const struct al_resource *res = http_resource(r->cand, v);
	json_t *k8s = v->k8s_json ? json_loads(v->k8s_json, 0, NULL) : NULL;
	const char *verb = json_string_value(json_object_get(k8s, "verb"));
	const char *was = v->decision ? v->decision : "allow", *now;
	const struct al_rule *rule = NULL;
	struct al_subject subj = { 0 };
	char *text = NULL;

	r->checked_http++;
	/* After review the row keeps how it ended; the policy's decision was review. */
	for (size_t i = 0; i < AL_ARRAY_LEN(reviewed); i++)
		if (strcmp(was, reviewed[i]) == 0)
			was = "review";
	if (!res) {
		/* No https resource answers it: passed through as TCP, or closed. */
		now = r->cand->default_action == AL_DEFAULT_DENY ? "deny" : "allow";
	} else {
		subj.cgroup_path = v->cgroup_path;
		subj.uid = v->uid;
		subj.exe = v->exe;
		subj.method = v->method;
		subj.path = v->path;
		subj.k8s_exec = verb && strcmp(verb, "portforward") != 0;
		rule = config_decide(res, &subj);
		now = rule ? config_action_name(rule->allow) : "allow";
		/* A body that was not held cannot be reviewed: the proxy denies such a request. */
		if (rule && rule->allow == AL_ACTION_REVIEW && !v->body_sha256)
			now = "deny";
	}
	if (strcmp(was, now) != 0) {
		if (asprintf(&text, "%s https://%s%s%s%s", v->method ? v->method : "?", v->host ? v->host : "",
			     v->path ? v->path : "", v->query && *v->query ? "?" : "",
			     v->query ? v->query : "") < 0)
			text = NULL;
		json_array_append_new(r->changes, json_pack("{s:I, s:s, s:o?, s:o?, s:o?, s:s, s:s, s:s?}",
			"http_request", (json_int_t)v->id, "protocol", "http", "text", jtext(text), "resource",
			jtext(res ? res->name : v->resource), "agent", jtext(v->cgroup_path), "was", was,
			"would_be", now, "rule", rule ? rule->text : NULL));
		free(text);
	}
	json_decref(k8s);
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
	r.changes = json_array();
	if (store_stmts_since(st, since_us, one, &r) < 0) {
		json_decref(r.changes);
		config_free(cand);
		return control_error("could not read the recorded statements");
	}
	if (store_http_since(st, since_us, one_http, &r) < 0) {
		json_decref(r.changes);
		config_free(cand);
		return control_error("could not read the recorded HTTP requests");
	}
	if (sort_changes(r.changes) < 0) {
		json_decref(r.changes);
		config_free(cand);
		return control_error("out of memory");
	}
	config_free(cand);
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
