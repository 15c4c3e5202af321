/* airlockctl review: list and decide parked requests over the review socket; manage reviewers as root. */
#include "audit.h"
#include "ctl.h"
#include "policy_test.h"
#include "review.h"
#include "term.h"

#include <airlock/control.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static const char *review_sock;
static long grant_secs;
static const char *reason;
static int watch, password_stdin;
static int admin = -1;          /* --admin 1, --no-admin 0, neither -1 */
static long uid = -1;
static long since_secs = 24 * 3600;
static const char *groups;

void ctl_review_usage(FILE *f)
{
	fprintf(f,
		"  pending [--watch] [--json]      requests waiting for review\n"
		"  show ID [--json]                one request: command, agent, rule, approvals\n"
		"  approve ID [--for 15m] [--reason TEXT]   approve once, or for a window (a grant)\n"
		"  deny ID --reason TEXT           the agent sees the reason\n"
		"  grants [--json] | revoke ID     live grants; revoking ends sessions that used it\n"
		"  user add NAME [--uid N] [--groups G,G] [--admin] [--password-stdin]\n"
		"                                  a new reviewer (an existing NAME is refused: user set);\n"
		"                                  one without a uid can read the console but decide nothing\n"
		"  user set NAME [--uid N] [--groups G,G] [--admin|--no-admin] [--password-stdin]\n"
		"                                  changes only what is given; a new password ends NAME's logins\n"
		"  user del NAME | user list [--json]   reviewers (root, control socket); del also revokes NAME's\n"
		"                                  tokens and grants, and withdraws their approvals of pending requests\n"
		"  console token NAME              a console API token for reviewer NAME (printed once)\n"
		"  console revoke NAME             revokes every console API token of NAME\n"
		"  policy reload                   load the configuration and policy.d again (or SIGHUP)\n"
		"  policy test [--since 24h] FILE...   what FILE's policy would have decided differently\n"
		"                                  (reads the store file, as audit does: --store PATH)\n"
		"                                  for the SQL statements and HTTP requests recorded in that window\n"
		"Review commands use $AIRLOCK_REVIEW or " AL_DEFAULT_REVIEW_SOCKET
		" (--review-socket);\nthe caller's uid must be a reviewer's.\n");
}

static long parse_duration(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (v < 0 || end == s)
		return -1;
	if (*end == '\0' || strcmp(end, "s") == 0)
		return v;
	if (strcmp(end, "m") == 0)
		return v * 60;
	if (strcmp(end, "h") == 0)
		return v * 3600;
	if (strcmp(end, "d") == 0)
		return v * 86400;
	return -1;
}

int ctl_review_option(int opt, const char *arg)
{
	switch (opt) {
	case 0x100:
		grant_secs = parse_duration(arg);
		if (grant_secs <= 0) {
			fprintf(stderr, "airlockctl: --for wants a duration like 15m, 1h, 90s\n");
			return -1;
		}
		return 0;
	case 0x101:
		reason = arg;
		return 0;
	case 0x102:
		watch = 1;
		return 0;
	case 0x103: {
		char *end;

		uid = strtol(arg, &end, 10);
		if (*end || uid < 0) {
			term_fprintf(stderr, "airlockctl: bad --uid '%s'\n", arg);
			return -1;
		}
		return 0;
	}
	case 0x104:
		groups = arg;
		return 0;
	case 0x105:
	case 0x109:
		admin = opt == 0x105;
		return 0;
	case 0x106:
		password_stdin = 1;
		return 0;
	case 0x107:
		review_sock = arg;
		return 0;
	case 0x108:
		since_secs = parse_duration(arg);
		if (since_secs <= 0) {
			fprintf(stderr, "airlockctl: --since wants a duration like 24h, 7d, 30m\n");
			return -1;
		}
		return 0;
	}
	return -1;
}


static const char *s_(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v ? v : "-";
}

static long long i_(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static void print_pending(json_t *rows)
{
	json_t *r;
	size_t i;
	long long now_s = (long long)(al_now_us() / 1000000);

	if (json_array_size(rows) == 0) {
		printf("no requests pending\n");
		return;
	}
	printf("%-6s %-14s %-10s %-22s %-6s %-7s %-9s %s\n", "ID", "RESOURCE", "KIND", "AGENT", "UID",
	       "APPROVED", "LEFT", "COMMAND");
	json_array_foreach(rows, i, r) {
		long long left = i_(r, "expires_us") / 1000000 - now_s;
		const char *iface = json_string_value(json_object_get(r, "iface")), *agent = s_(r, "cgroup_path");
		char ibuf[48], ubuf[24] = "-";

		/* An agent behind an interface is that interface; the host knows no uid of it. */
		if (iface) {
			snprintf(ibuf, sizeof(ibuf), "iface %.40s", iface);
			agent = ibuf;
		}
		if (json_is_integer(json_object_get(r, "uid")))
			snprintf(ubuf, sizeof(ubuf), "%lld", i_(r, "uid"));
		/* agent text: the cgroup path and the command (one line, 80 characters at most) */
		term_printf("%-6lld %-14s %-10s %-22s %-6s %zu/%-5lld %-9lld %.80s\n", i_(r, "id"),
			    s_(r, "resource"), s_(r, "kind"), agent, ubuf,
			    json_array_size(json_object_get(r, "approvals")), i_(r, "approvals_needed"),
			    left > 0 ? left : 0, s_(r, "command"));
	}
}

static int cmd_user(const char *sock, int argc, char **argv, int want_json)
{
	json_t *req, *resp;

	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		json_t *u;
		size_t i;

		resp = ctl_call(sock, json_pack("{s:s}", "cmd", "users"));
		if (!resp)
			return 1;
		if (want_json) {
			term_json(stdout, json_object_get(resp, "users"), JSON_INDENT(2));
		} else {
			printf("%-16s %-7s %-30s %-6s %s\n", "NAME", "UID", "GROUPS", "ADMIN", "PASSWORD");
			json_array_foreach(json_object_get(resp, "users"), i, u) {
				char ubuf[24] = "-";

				if (json_is_integer(json_object_get(u, "uid")))
					snprintf(ubuf, sizeof(ubuf), "%lld", i_(u, "uid"));
				term_printf("%-16s %-7s %-30s %-6s %s\n", s_(u, "name"), ubuf, s_(u, "groups"),
					    i_(u, "admin") ? "yes" : "no", i_(u, "has_password") ? "set" : "-");
			}
		}
		json_decref(resp);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "del") == 0) {
		resp = ctl_call(sock, json_pack("{s:s, s:s}", "cmd", "user_del", "name", argv[2]));
		if (!resp)
			return 1;
		/* What went with them: their approvals of pending requests, the grants they helped make. */
		term_printf("removed %s; approvals withdrawn from pending requests: %lld; grants revoked: %lld\n",
			    argv[2], i_(resp, "approvals_withdrawn"), i_(resp, "grants_revoked"));
		json_decref(resp);
		return 0;
	}
	if (argc == 3 && (strcmp(argv[1], "add") == 0 || strcmp(argv[1], "set") == 0)) {
		int add = strcmp(argv[1], "add") == 0;
		char pw[1024] = "";

		if (!add && uid < 0 && !groups && admin < 0 && !password_stdin) {
			term_fprintf(stderr, "airlockctl: user set %s: nothing to change (--uid, --groups, --admin, "
				"--no-admin, --password-stdin)\n", argv[2]);
			return 2;
		}
		if (password_stdin) {
			if (fgets(pw, sizeof(pw), stdin))
				pw[strcspn(pw, "\r\n")] = '\0';
			if (!pw[0]) {
				fprintf(stderr, "airlockctl: no password on stdin\n");
				return 1;
			}
		}
		/* user set sends only what was given: the rest stays as it is. */
		req = json_pack("{s:s, s:s}", "cmd", add ? "user_add" : "user_set", "name", argv[2]);
		if (uid >= 0)
			json_object_set_new(req, "uid", json_integer(uid));
		if (groups || add)
			json_object_set_new(req, "groups", json_string(groups ? groups : ""));
		if (admin >= 0 || add)
			json_object_set_new(req, "admin", json_boolean(admin > 0));
		if (pw[0])
			json_object_set_new(req, "password", json_string(pw));
		resp = ctl_call(sock, req);
		memset(pw, 0, sizeof(pw));
		json_decref(resp);
		if (resp)
			term_printf("reviewer %s %s\n", argv[2], add ? "added" : "changed");
		return resp ? 0 : 1;
	}
	fprintf(stderr, "airlockctl: user add NAME | user set NAME | user del NAME | user list\n");
	return 2;
}

static int cmd_policy(const char *sock, int argc, char **argv, int want_json)
{
	json_t *resp, *files, *c;
	size_t i;

	if (argc == 2 && strcmp(argv[1], "reload") == 0) {
		resp = ctl_call(sock, json_pack("{s:s}", "cmd", "policy_reload"));
		json_decref(resp);
		if (resp)
			printf("policy reloaded\n");
		return resp ? 0 : 1;
	}
	if (argc < 3 || strcmp(argv[1], "test") != 0) {
		fprintf(stderr, "airlockctl: policy reload | policy test [--since 24h] FILE...\n");
		return 2;
	}
	files = json_array();
	for (int k = 2; k < argc; k++) {
		char *abs = realpath(argv[k], NULL);

		if (!abs) {
			term_fprintf(stderr, "airlockctl: %s: %s\n", argv[k], strerror(errno));
			json_decref(files);
			return 1;
		}
		json_array_append_new(files, json_string(abs));
		free(abs);
	}
	/* Read from the store file here, not by the daemon: a day of statements is millions, and
	 * the daemon's loop carries every agent's session. */
	{
		const char *path = ctl_store_path(sock);
		struct store_reader *rd = NULL;
		char err[600];

		if (store_reader_open(path, &rd, err, sizeof(err)) < 0 || store_reader_begin(rd, 0) < 0) {
			term_fprintf(stderr, "airlockctl: cannot read the store: %s\n", rd ? path : err);
			store_reader_close(rd);
			json_decref(files);
			return 1;
		}
		resp = policy_test(rd, files, al_now_us() - (int64_t)since_secs * 1000000);
		store_reader_end(rd);
		store_reader_close(rd);
		json_decref(files);
	}
	if (!resp || !json_is_true(json_object_get(resp, "ok"))) {
		term_fprintf(stderr, "airlockctl: %s\n",
			     resp ? json_string_value(json_object_get(resp, "error")) : "out of memory");
		json_decref(resp);
		return 1;
	}
	if (want_json) {
		json_object_del(resp, "ok");
		term_json(stdout, resp, JSON_INDENT(2));
	} else {
		json_t *ch = json_object_get(resp, "changes");

		printf("%lld statements and %lld HTTP requests checked, %zu would be decided differently\n",
		       i_(resp, "checked_statements"), i_(resp, "checked_http"), json_array_size(ch));
		json_array_foreach(ch, i, c) {
			int http = json_object_get(c, "http_request") != NULL;

			term_printf("  %s#%lld %s -> %s (%s) on %s from %s: %.100s\n", http ? "http " : "",
				    i_(c, http ? "http_request" : "statement"), s_(c, "was"), s_(c, "would_be"),
				    s_(c, "rule"), s_(c, "resource"), s_(c, "agent"), s_(c, "text"));
		}
	}
	json_decref(resp);
	return 0;
}

int ctl_review_command(const char *control_sock, const char *cmd, int argc, char **argv, int want_json)
{
	const char *env = getenv("AIRLOCK_REVIEW");
	const char *sock = review_sock ? review_sock : (env && *env) ? env : AL_DEFAULT_REVIEW_SOCKET;
	json_t *resp, *req;
	long long id = 0;

	if (strcmp(cmd, "user") == 0)
		return cmd_user(control_sock, argc, argv, want_json);
	if (strcmp(cmd, "console") == 0) {
		/* console token NAME: an API token for the console (Authorization: Bearer);
		 * console revoke NAME: every one of NAME's tokens stops working. */
		int revoke = argc == 3 && strcmp(argv[1], "revoke") == 0;

		if (argc != 3 || (!revoke && strcmp(argv[1], "token") != 0)) {
			fprintf(stderr, "airlockctl: console token NAME | console revoke NAME\n");
			return 2;
		}
		resp = ctl_call(control_sock, json_pack("{s:s, s:s}", "cmd",
							revoke ? "console_token_revoke" : "console_token",
							"name", argv[2]));
		if (!resp)
			return 1;
		if (revoke)
			term_printf("%lld console tokens of %s revoked\n", i_(resp, "revoked"), argv[2]);
		else
			term_printf("%s\n", json_string_value(json_object_get(resp, "token")));
		json_decref(resp);
		return 0;
	}
	if (strcmp(cmd, "policy") == 0)
		return cmd_policy(control_sock, argc, argv, want_json);
	if (strcmp(cmd, "pending") && strcmp(cmd, "show") && strcmp(cmd, "approve") &&
	    strcmp(cmd, "deny") && strcmp(cmd, "grants") && strcmp(cmd, "revoke"))
		return -1;
	if (!strcmp(cmd, "show") || !strcmp(cmd, "approve") || !strcmp(cmd, "deny") ||
	    !strcmp(cmd, "revoke")) {
		char *end;

		if (argc != 2 || (id = strtoll(argv[1], &end, 10)) <= 0 || *end) {
			fprintf(stderr, "airlockctl: %s needs a request or grant ID\n", cmd);
			return 2;
		}
	}
	if (!strcmp(cmd, "deny") && (!reason || !*reason)) {
		fprintf(stderr, "airlockctl: deny needs --reason (the agent sees it)\n");
		return 2;
	}
	if (!strcmp(cmd, "pending")) {
		char *last = NULL;      /* --watch: the list last printed, printed again when it changes */

		do {
			char *text;

			resp = ctl_call(sock, json_pack("{s:s}", "cmd", "pending"));
			if (!resp) {
				free(last);
				return 1;
			}
			text = json_dumps(json_object_get(resp, "pending"), JSON_COMPACT | JSON_SORT_KEYS);
			if (!watch || !text || !last || strcmp(text, last) != 0) {
				if (want_json) {
					term_json(stdout, json_object_get(resp, "pending"), JSON_INDENT(2));
				} else {
					print_pending(json_object_get(resp, "pending"));
				}
				fflush(stdout);
				free(last);
				last = text;
				text = NULL;
			}
			free(text);
			json_decref(resp);
			if (watch)
				sleep(1);
		} while (watch);
		free(last);
		return 0;
	}
	req = json_pack("{s:s, s:I}", "cmd", cmd, "id", (json_int_t)id);
	if (reason)
		json_object_set_new(req, "reason", json_string(reason));
	if (grant_secs)
		json_object_set_new(req, "for", json_integer(grant_secs));
	resp = ctl_call(sock, req);
	if (!resp)
		return 1;
	if (!strcmp(cmd, "show") || !strcmp(cmd, "grants")) {
		json_t *v = json_object_get(resp, !strcmp(cmd, "show") ? "request" : "grants");

		if (want_json || !strcmp(cmd, "grants")) {
			term_json(stdout, v, JSON_INDENT(2));
		} else {
			struct al_buf text = { 0 };

			/* Every field may be the agent's: each is one line (term_printf), but for the
			 * command, shown whole as its lines (a held batch is a statement a paragraph),
			 * each indented: none of them can pass for a line of ours. */
			term_printf("request %lld (%s) on %s, rule: %s\n", i_(v, "id"), s_(v, "state"),
				    s_(v, "resource"), s_(v, "rule"));
			if (json_is_string(json_object_get(v, "iface")))
				term_printf("agent: interface %s (its pid and uid are not known to the host)\n",
					    s_(v, "iface"));
			else
				term_printf("agent: cgroup %s, pid %lld, uid %lld, exe %s\n", s_(v, "cgroup_path"),
					    i_(v, "pid"), i_(v, "uid"), s_(v, "exe"));
			term_printf("kind: %s, sha256 %s\ncommand:\n", s_(v, "kind"), s_(v, "sha256"));
			al_buf_str(&text, "  ");
			term_lines(&text, s_(v, "command"), "  ");
			printf("%s\n", text.oom ? "  (out of memory)" : text.p);
			free(text.p);
			term_printf("approvals: %zu of %lld\n", json_array_size(json_object_get(v, "approvals")),
				    i_(v, "approvals_needed"));
		}
	} else {
		term_printf("%s %lld: done\n", cmd, id);
	}
	json_decref(resp);
	return 0;
}
