/* airlockctl: the operator's command line for a running airlockd (and `down` without one). */
#include <airlock/control.h>
#include <airlock/kernel.h>
#include <airlock/pg.h>
#include <airlock/reason.h>
#include <airlock/version.h>

#include "ctl.h"
#include "http.h"
#include "review.h"
#include "audit.h"
#include "term.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "ifaces.h"

#define DEFAULT_PIN_ROOT "/sys/fs/bpf/airlock"

static const char *sock_path = AL_DEFAULT_CONTROL_SOCKET;
static const char *pin_root = DEFAULT_PIN_ROOT;
static int want_json;
static long opt_pid = -1;
static long opt_limit = 20;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: airlockctl [-s SOCKET] COMMAND [ARGS]\n"
		"  status [--json]                 pinned cgroups, live and total connections, counters\n"
		"  pin CGROUP | --pid PID          steer every TCP connection of that cgroup subtree\n"
		"  unpin CGROUP | --pid PID        stop steering it\n"
		"  pin --iface VETH                fence an agent's network namespace at the host side\n"
		"                                  of its link: XDP drops all but TCP, DNS to resolvers\n"
		"                                  and ARP/ND; nftables TPROXYs its TCP into airlockd\n"
		"  unpin --iface VETH              stop it\n"
		"  guard --iface IF --port P --allow ADDR   (repeat --port, --allow) on a backend:\n"
		"                                  XDP drops TCP to the ports unless from ADDR\n"
		"  unguard --iface IF              stop guarding it\n"
		"  connections [--limit N] [--json] the newest audited connections\n"
		"  refusals [--limit N] [--json]   the newest attempts the kernel fence refused\n"
		"  down [--pin-root DIR]           remove every pin (stops airlockd if it runs)\n"
		"  ca export                       print the Airlock CA certificate (PEM)\n"
		"  classify pg [SQL]                how each statement is classified (SQL or stdin)\n"
		"  statements [--limit N] [--json] the newest audited statements\n"
		"  version\n");
	ctl_http_usage(f);
	ctl_review_usage(f);
	ctl_audit_usage(f);
	fprintf(f,
		"CGROUP is a path under the cgroup v2 mount, absolute or relative to it.\n"
		"SOCKET defaults to $AIRLOCK_CONTROL or " AL_DEFAULT_CONTROL_SOCKET ".\n");
}

json_t *ctl_call(const char *sock, json_t *req)
{
	char err[1024];
	json_t *resp = control_call(sock, req, err, sizeof(err));

	json_decref(req);
	if (!resp) {
		term_fprintf(stderr, "airlockctl: %s\n", err);
		return NULL;
	}
	if (!json_is_true(json_object_get(resp, "ok"))) {
		const char *e = json_string_value(json_object_get(resp, "error"));

		term_fprintf(stderr, "airlockctl: %s\n", e ? e : "airlockd refused the request");
		json_decref(resp);
		return NULL;
	}
	return resp;
}

/* One request to the control socket. */
static json_t *call(json_t *req)
{
	return ctl_call(sock_path, req);
}

static void print_json(json_t *v)
{
	term_json(stdout, v, JSON_INDENT(2));
}

static void print_counters(const char *title, json_t *obj)
{
	const char *k;
	json_t *v;

	printf("%s:\n", title);
	if (json_object_size(obj) == 0)
		printf("  (none)\n");
	json_object_foreach(obj, k, v)
		term_printf("  %-24s %lld\n", k, (long long)json_integer_value(v));
}

/* The fence check's line: repairs since start, and the last one. */
static void print_fence(json_t *fe)
{
	json_t *last = json_object_get(fe, "last");
	json_int_t failed = json_integer_value(json_object_get(fe, "failed"));

	if (!fe)
		return;
	printf("fence: links checked every %lld ms; %lld put back since start (%lld detached, %lld re-programmed, "
	       "%lld unpinned)",
	       (long long)json_integer_value(json_object_get(fe, "check_every_ms")),
	       (long long)json_integer_value(json_object_get(fe, "repairs")),
	       (long long)json_integer_value(json_object_get(fe, "detached")),
	       (long long)json_integer_value(json_object_get(fe, "replaced")),
	       (long long)json_integer_value(json_object_get(fe, "unpinned")));
	if (failed > 0)
		printf(", %lld could NOT be put back (see the log)", (long long)failed);
	printf("\n");
	if (json_is_object(last)) {
		time_t t = (time_t)(json_integer_value(json_object_get(last, "at_us")) / 1000000);
		const char *path = json_string_value(json_object_get(last, "path"));
		const char *found = json_string_value(json_object_get(last, "found"));
		char when[64] = "?";
		struct tm tm;

		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
		term_printf("  last: %s: %s on %s%s %s; %s%s\n", when,
			    json_string_value(json_object_get(last, "program")), path ? "" : "interface ",
			    path ? path : json_string_value(json_object_get(last, "iface")),
			    !found ? "?" : strcmp(found, "detached") == 0 ? "was detached" :
			    strcmp(found, "unpinned") == 0 ? "lost its pin" : "ran another program",
			    json_is_true(json_object_get(last, "repaired")) ? "put back" : "NOT put back: ",
			    json_is_true(json_object_get(last, "repaired")) ? "" :
			    json_string_value(json_object_get(last, "error")));
	}
}

static int cmd_status(void)
{
	json_t *resp = call(json_pack("{s:s}", "cmd", "status")), *pins, *p;
	size_t i;

	if (!resp)
		return 1;
	if (want_json) {
		json_object_del(resp, "ok");
		print_json(resp);
		json_decref(resp);
		return 0;
	}
	pins = json_object_get(resp, "pinned");
	term_printf("airlockd %s, steer port %lld, store %s\n",
	       json_string_value(json_object_get(resp, "version")),
	       (long long)json_integer_value(json_object_get(resp, "steer_port")),
	       json_string_value(json_object_get(resp, "store")));
	printf("pinned cgroups (%zu):\n", json_array_size(pins));
	if (json_array_size(pins) == 0)
		printf("  (none: `airlockctl pin CGROUP` fences an agent)\n");
	json_array_foreach(pins, i, p)
		term_printf("  %s (id %lld)\n", json_string_value(json_object_get(p, "path")),
			    (long long)json_integer_value(json_object_get(p, "cgroup_id")));
	json_array_foreach(json_object_get(resp, "pins_waiting"), i, p)
		term_printf("  %s (waiting: no cgroup there now; pinned the moment one is made)\n",
			    json_string_value(p));
	if (json_string_value(json_object_get(resp, "exe_gap")))
		term_printf("agents' executables are not recorded: %s\n",
			    json_string_value(json_object_get(resp, "exe_gap")));
	printf("sessions: %lld live (%lld relayed, %lld postgres, %lld https), at most %lld at once "
	       "(%lld file descriptors), %lld per agent\n",
	       (long long)(json_integer_value(json_object_get(resp, "live")) +
			   json_integer_value(json_object_get(resp, "pg_live")) +
			   json_integer_value(json_object_get(resp, "http_live"))),
	       (long long)json_integer_value(json_object_get(resp, "live")),
	       (long long)json_integer_value(json_object_get(resp, "pg_live")),
	       (long long)json_integer_value(json_object_get(resp, "http_live")),
	       (long long)json_integer_value(json_object_get(resp, "max_sessions")),
	       (long long)json_integer_value(json_object_get(resp, "fd_limit")),
	       (long long)json_integer_value(json_object_get(resp, "max_sessions_per_agent")));
	printf("connections: %lld accepted since start, %lld steered by the kernel, %lld recorded; "
	       "%lld TLS relayed unopened\n",
	       (long long)json_integer_value(json_object_get(resp, "accepted")),
	       (long long)json_integer_value(json_object_get(resp, "steered_total")),
	       (long long)json_integer_value(json_object_get(resp, "connections_recorded")),
	       (long long)json_integer_value(json_object_get(resp, "tls_passthrough")));
	if (json_is_false(json_object_get(resp, "store_accepting")))
		printf("store: FULL: new sessions and every command are refused until it has room (see the "
		       "log)\n");
	{
		/* counted in memory: the refusals' rows may not have been written */
		json_int_t n = json_integer_value(json_object_get(json_object_get(resp, "sessions_since_start"),
								  "store_full"));

		if (n > 0)
			printf("store: %lld sessions refused since start (store_full)\n", (long long)n);
	}
	if (json_object_get(resp, "webhook")) {
		json_t *wh = json_object_get(resp, "webhook");

		printf("review webhook: %lld delivered, %lld undelivered (gave up after 6 tries), %lld under "
		       "way, since start\n",
		       (long long)json_integer_value(json_object_get(wh, "delivered")),
		       (long long)json_integer_value(json_object_get(wh, "undelivered")),
		       (long long)json_integer_value(json_object_get(wh, "in_flight")));
	}
	print_fence(json_object_get(resp, "fence"));
	print_counters("kernel counters", json_object_get(resp, "kernel"));
	print_counters("connection ends (recorded)", json_object_get(resp, "sessions"));
	ctl_iface_status(resp);
	json_decref(resp);
	return 0;
}

static int cmd_pin(const char *cmd, int argc, char **argv)
{
	json_t *req, *resp;

	if (argc == 1 && opt_pid > 0) {
		req = json_pack("{s:s, s:I}", "cmd", cmd, "pid", (json_int_t)opt_pid);
	} else if (argc == 2 && opt_pid < 0) {
		req = json_pack("{s:s, s:s}", "cmd", cmd, "cgroup", argv[1]);
	} else {
		usage(stderr);
		return 2;
	}
	resp = call(req);
	if (!resp)
		return 1;
	if (want_json)
		print_json(resp);
	else if (json_is_true(json_object_get(resp, "waiting")))
		term_printf("unpinned %s (it named no cgroup, airlockd was waiting for one: its record is forgotten)\n",
			    json_string_value(json_object_get(resp, "path")));
	else
		term_printf("%s %s (cgroup id %lld)\n", strcmp(cmd, "pin") == 0 ? "pinned" : "unpinned",
			    json_string_value(json_object_get(resp, "path")),
			    (long long)json_integer_value(json_object_get(resp, "cgroup_id")));
	json_decref(resp);
	return 0;
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

static int cmd_connections(int argc, char **argv)
{
	json_t *resp, *rows, *r;
	size_t i;

	if (argc != 1) {
		usage(stderr);
		return 2;
	}
	resp = call(json_pack("{s:s, s:I}", "cmd", "connections", "limit", (json_int_t)opt_limit));
	if (!resp)
		return 1;
	rows = json_object_get(resp, "connections");
	if (want_json) {
		print_json(rows);
		json_decref(resp);
		return 0;
	}
	printf("%-6s %-22s %-8s %-12s %-28s %-14s %10s %10s %s\n", "ID", "CGROUP/IFACE", "PID", "COMM",
	       "DESTINATION", "RESOURCE", "UP", "DOWN", "END");
	json_array_foreach(rows, i, r) {
		/* Agents in network namespaces are known by their pinned interface. */
		int by_iface = json_is_string(json_object_get(r, "iface"));
		const char *pre = by_iface ? "iface " : "";
		char dst[80];

		snprintf(dst, sizeof(dst), "%s%s%s:%lld",
			 strchr(str(r, "dst_addr"), ':') ? "[" : "", str(r, "dst_addr"),
			 strchr(str(r, "dst_addr"), ':') ? "]" : "",
			 (long long)json_integer_value(json_object_get(r, "dst_port")));
		/* cgroup, comm and the rest are the agent's or came through the store: term_printf */
		term_printf("%-6lld %s%-*s %-8lld %-12s %-28s %-14s %10lld %10lld %s\n",
			    (long long)json_integer_value(json_object_get(r, "id")), pre, 22 - (int)strlen(pre),
			    str(r, by_iface ? "iface" : "cgroup_path"),
			    (long long)json_integer_value(json_object_get(r, "pid")), str(r, "comm"), dst,
			    str(r, "resource"), (long long)json_integer_value(json_object_get(r, "bytes_up")),
			    (long long)json_integer_value(json_object_get(r, "bytes_down")),
			    json_is_null(json_object_get(r, "closed_us")) ? "(live)" : str(r, "reason"));
	}
	json_decref(resp);
	return 0;
}

static int cmd_refusals(int argc)
{
	json_t *resp, *rows, *r;
	size_t i;

	if (argc != 1) {
		usage(stderr);
		return 2;
	}
	resp = call(json_pack("{s:s, s:I}", "cmd", "refusals", "limit", (json_int_t)opt_limit));
	if (!resp)
		return 1;
	rows = json_object_get(resp, "refusals");
	if (want_json) {
		print_json(rows);
		json_decref(resp);
		return 0;
	}
	printf("%-6s %-20s %-22s %-8s %-12s %-28s %s\n", "ID", "REASON", "CGROUP", "PID", "COMM",
	       "DESTINATION", "COUNT");
	json_array_foreach(rows, i, r) {
		char dst[80] = "-";

		if (json_is_string(json_object_get(r, "dst_addr")))
			snprintf(dst, sizeof(dst), "%s%s%s:%lld",
				 strchr(str(r, "dst_addr"), ':') ? "[" : "", str(r, "dst_addr"),
				 strchr(str(r, "dst_addr"), ':') ? "]" : "",
				 (long long)json_integer_value(json_object_get(r, "dst_port")));
		term_printf("%-6lld %-20s %-22s %-8lld %-12s %-28s %lld%s%s\n",
			    (long long)json_integer_value(json_object_get(r, "id")), str(r, "reason"),
			    str(r, "cgroup_path"), (long long)json_integer_value(json_object_get(r, "pid")),
			    str(r, "comm"), dst, (long long)json_integer_value(json_object_get(r, "count")),
			    json_is_string(json_object_get(r, "detail")) ? "  " : "",
			    json_is_string(json_object_get(r, "detail")) ? str(r, "detail") : "");
	}
	json_decref(resp);
	return 0;
}

/* Reads all of stdin into a NUL-terminated string. */
static char *read_stdin(void)
{
	size_t len = 0, cap = 0;
	char *buf = NULL;

	for (;;) {
		size_t n;

		if (len + 4096 + 1 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 65536;
			if (cap > 256u * 1024 * 1024 || !(nb = realloc(buf, cap))) {
				free(buf);
				return NULL;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len - 1, stdin);
		len += n;
		if (n == 0)
			break;
	}
	buf[len] = '\0';
	return buf;
}

/* Runs the proxy's own classifier locally: no daemon needed. */
static int cmd_classify(int argc, char **argv)
{
	struct pg_stmt_list l = { 0 };
	char err[1024], *sql, *json;
	int rc = 1;

	if (argc < 2 || argc > 3 || strcmp(argv[1], "pg") != 0) {
		usage(stderr);
		return 2;
	}
	sql = argc == 3 ? strdup(argv[2]) : read_stdin();
	if (!sql) {
		fprintf(stderr, "airlockctl: cannot read the SQL\n");
		return 1;
	}
	if (pg_classify(sql, &l, err, sizeof(err)) < 0) {
		term_fprintf(stderr, "airlockctl: %s\n", err);
		goto out;
	}
	if (want_json) {
		json = pg_stmt_list_json(&l, 1);
		if (!json)
			goto out;
		printf("%s\n", json);
		free(json);
	} else if (pg_stmt_list_print(&l, stdout) < 0) {
		goto out;
	}
	rc = 0;
out:
	pg_stmt_list_free(&l);
	free(sql);
	return rc;
}

static int cmd_statements(int argc)
{
	json_t *resp, *rows, *r;
	size_t i;

	if (argc != 1) {
		usage(stderr);
		return 2;
	}
	resp = call(json_pack("{s:s, s:I}", "cmd", "statements", "limit", (json_int_t)opt_limit));
	if (!resp)
		return 1;
	rows = json_object_get(resp, "statements");
	if (want_json) {
		print_json(rows);
		json_decref(resp);
		return 0;
	}
	printf("%-6s %-6s %-9s %-7s %-16s %s\n", "ID", "CONN", "KIND", "DECIDED", "OUTCOME", "TEXT");
	json_array_foreach(rows, i, r) {
		const char *out = json_is_string(json_object_get(r, "tag")) ? str(r, "tag")
				  : json_is_string(json_object_get(r, "sqlstate")) ? str(r, "sqlstate") : "-";

		/* the SQL text on one line, 100 characters at most (never half a character) */
		term_printf("%-6lld %-6lld %-9s %-7s %-16s %.100s\n",
			    (long long)json_integer_value(json_object_get(r, "id")),
			    (long long)json_integer_value(json_object_get(r, "conn_id")), str(r, "kind"),
			    str(r, "decision"), out, str(r, "text"));
	}
	json_decref(resp);
	return 0;
}

static int cmd_down(int argc, char **argv)
{
	const char *root = pin_root;
	char err[1024];
	json_t *resp, *req;

	if (argc != 1) {
		usage(stderr);
		return 2;
	}
	req = json_pack("{s:s}", "cmd", "down");
	resp = control_call(sock_path, req, err, sizeof(err));
	json_decref(req);
	if (resp) {
		int ok = json_is_true(json_object_get(resp, "ok"));

		json_decref(resp);
		if (!ok)
			return 1;
		printf("airlockd is removing every pin and stopping\n");
		return 0;
	}
	/* No daemon: take the pins away ourselves. */
	if (kern_down(root, err, sizeof(err)) < 0) {
		term_fprintf(stderr, "airlockctl: %s\n", err);
		return 1;
	}
	term_printf("removed every pin under %s; agents are no longer steered\n", root);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "pid", required_argument, NULL, 'p' },
		{ "limit", required_argument, NULL, 'l' },
		{ "pin-root", required_argument, NULL, 'r' },
		CTL_IFACE_LONGOPTS
		CTL_REVIEW_LONGOPTS
		CTL_AUDIT_LONGOPTS
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *env = getenv("AIRLOCK_CONTROL");
	const char *cmd;
	int opt;

	if (env && *env)
		sock_path = env;
	/* Options may come before or after the command; "+" would stop at it. */
	while ((opt = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock_path = optarg;
			break;
		case 'j':
			want_json = 1;
			break;
		case 'p':
		case 'l': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v <= 0) {
				term_fprintf(stderr, "airlockctl: --%s wants a positive number, not '%s'\n",
					     opt == 'p' ? "pid" : "limit", optarg);
				return 2;
			}
			*(opt == 'p' ? &opt_pid : &opt_limit) = v;
			break;
		}
		case 'r':
			pin_root = optarg;
			break;
		case 'I':
		case 'P':
		case 'A':
			if (ctl_iface_option(opt, optarg) < 0)
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (opt >= 0x100 && opt < 0x200) {
				if (ctl_review_option(opt, optarg) < 0)
					return 2;
				/* --since also sets the window of audit export */
				if (opt == 0x108)
					(void)ctl_audit_option(opt, optarg);
				break;
			}
			if (opt >= 0x200 && opt < 0x300) {
				if (ctl_audit_option(opt, optarg) < 0)
					return 2;
				break;
			}
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	argc -= optind;
	argv += optind;
	cmd = argv[0];
	if (strcmp(cmd, "status") == 0 && argc == 1)
		return cmd_status();
	{
		int rc = ctl_iface_command(sock_path, cmd, argc, want_json); /* --iface, guard */

		if (rc >= 0)
			return rc;
	}
	{
		int rc = ctl_http_command(sock_path, cmd, argc, argv, want_json); /* classify http, ca install */

		if (rc >= 0)
			return rc;
	}
	{
		int rc = ctl_audit_command(sock_path, cmd, argc, argv, want_json); /* audit, replay, export */

		if (rc >= 0)
			return rc;
	}
	{
		int rc = ctl_review_command(sock_path, cmd, argc, argv, want_json);

		if (rc >= 0)
			return rc;
	}
	if (strcmp(cmd, "pin") == 0 || strcmp(cmd, "unpin") == 0)
		return cmd_pin(cmd, argc, argv);
	if (strcmp(cmd, "connections") == 0)
		return cmd_connections(argc, argv);
	if (strcmp(cmd, "ca") == 0 && argc == 2 && strcmp(argv[1], "export") == 0) {
		json_t *resp = call(json_pack("{s:s}", "cmd", "ca"));

		if (!resp)
			return 1;
		fputs(json_string_value(json_object_get(resp, "pem")), stdout);
		json_decref(resp);
		return 0;
	}
	if (strcmp(cmd, "classify") == 0)
		return cmd_classify(argc, argv);
	if (strcmp(cmd, "statements") == 0)
		return cmd_statements(argc);
	if (strcmp(cmd, "refusals") == 0)
		return cmd_refusals(argc);
	if (strcmp(cmd, "down") == 0)
		return cmd_down(argc, argv);
	if (strcmp(cmd, "version") == 0) {
		printf("airlockctl %s\n", AL_VERSION);
		return 0;
	}
	usage(stderr);
	return 2;
}
