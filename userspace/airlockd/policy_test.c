/* Replays recorded statements through a candidate policy and reports every decision that would change. */
#include "policy_test.h"

#include <airlock/config.h>
#include <airlock/control.h>
#include <airlock/pg.h>

#include <stdlib.h>

struct run {
	const struct al_config *cand;
	json_t *changes;
	unsigned long checked;
};

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
		subj.cgroup_path = v->cgroup_path;
		subj.uid = v->uid;
		subj.exe = v->exe;
		rule = config_decide(res, &subj);
		now = rule ? config_action_name(rule->allow) : "allow";
	}
	if (strcmp(was, now) != 0)
		json_array_append_new(r->changes, json_pack("{s:I, s:s?, s:s?, s:s?, s:s, s:s, s:s?}",
			"statement", (json_int_t)v->id, "text", v->text, "resource", v->resource,
			"agent", v->cgroup_path, "was", was, "would_be", now, "rule", rule ? rule->text : NULL));
	json_decref(rj);
	return 0;
}

json_t *policy_test(struct store *st, json_t *files, int64_t since_us)
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
	config_free(cand);
	resp = control_ok();
	json_object_set_new(resp, "checked", json_integer((json_int_t)r.checked));
	json_object_set_new(resp, "changes", r.changes);
	return resp;
bad_path:
	free(text);
	return control_error("candidate files are absolute paths without quotes or wildcards");
oom:
	free(text);
	return control_error("out of memory");
}
