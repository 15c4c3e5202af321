/* airlockctl pin/unpin --iface, guard and unguard: interfaces of agents in network namespaces and of guarded backends. */
#include "ctl.h"
#include "ifaces.h"
#include "term.h"

#include <airlock/control.h>

#include <stdlib.h>

#define MAX_ITEMS 64

static const char *opt_iface;
static json_t *opt_ports;       /* array of integers */
static json_t *opt_allow;       /* array of strings */

int ctl_iface_option(int opt, const char *arg)
{
	if (opt == 'I') {
		opt_iface = arg;
		return 0;
	}
	if (opt == 'P') {
		char *end;
		long v = strtol(arg, &end, 10);

		if (*end || v < 1 || v > 65535) {
			term_fprintf(stderr, "airlockctl: --port wants a port number (1..65535), not '%s'\n", arg);
			return -1;
		}
		if (!opt_ports)
			opt_ports = json_array();
		return json_array_append_new(opt_ports, json_integer(v));
	}
	if (opt == 'A') {
		if (!opt_allow)
			opt_allow = json_array();
		return json_array_append_new(opt_allow, json_string(arg));
	}
	return -1;
}


static void print_iface(json_t *i)
{
	const char *role = json_string_value(json_object_get(i, "role"));
	size_t k;
	json_t *v;

	term_printf("  %s (index %lld, %s XDP, %s)", json_string_value(json_object_get(i, "iface")),
		    (long long)json_integer_value(json_object_get(i, "ifindex")),
		    json_string_value(json_object_get(i, "mode")),
		    role && strcmp(role, "guard") == 0 ? "guard" : "agent: TCP steered, DNS to resolvers");
	if (role && strcmp(role, "guard") == 0) {
		printf(": ports");
		json_array_foreach(json_object_get(i, "ports"), k, v)
			printf(" %lld", (long long)json_integer_value(v));
		printf(" only from");
		json_array_foreach(json_object_get(i, "allow"), k, v)
			term_printf(" %s", json_string_value(v));
	}
	putchar('\n');
}

int ctl_iface_command(const char *sock, const char *cmd, int argc, int want_json)
{
	int pin = strcmp(cmd, "pin") == 0, unpin = strcmp(cmd, "unpin") == 0;
	int guard = strcmp(cmd, "guard") == 0, unguard = strcmp(cmd, "unguard") == 0;
	json_t *req, *resp;

	if (!guard && !unguard && !((pin || unpin) && opt_iface))
		return -1;
	if (argc != 1 || !opt_iface) {
		fprintf(stderr, "airlockctl: %s needs --iface NAME and no other argument\n", cmd);
		return 2;
	}
	req = json_pack("{s:s, s:s}", "cmd", cmd, "iface", opt_iface);
	if (guard) {
		if (!opt_ports || !opt_allow) {
			fprintf(stderr, "airlockctl: guard needs --port P and --allow ADDRESS (each repeatable)\n");
			json_decref(req);
			return 2;
		}
		json_object_set(req, "ports", opt_ports);
		json_object_set(req, "allow", opt_allow);
	}
	resp = ctl_call(sock, req);
	if (!resp)
		return 1;
	if (want_json) {
		term_json(stdout, resp, JSON_INDENT(2));
	} else if (pin || guard) {
		printf("%s:\n", pin ? "pinned" : "guarding");
		print_iface(json_object_get(resp, "interface"));
	} else {
		term_printf("%s %s\n", unpin ? "unpinned" : "unguarded", opt_iface);
	}
	json_decref(resp);
	return 0;
}

void ctl_iface_status(json_t *resp)
{
	json_t *ifs = json_object_get(resp, "interfaces"), *i;
	size_t k;

	printf("interfaces (%zu):\n", json_array_size(ifs));
	if (json_array_size(ifs) == 0)
		printf("  (none: `airlockctl pin --iface VETH` fences an agent's namespace)\n");
	json_array_foreach(ifs, k, i)
		print_iface(i);
	if (json_is_true(json_object_get(resp, "tproxy_listening")))
		term_printf("tproxy: 127.0.0.1:%lld [::1]:%lld, nftables table inet %s, %lld accepted, "
			    "%lld without identity\n",
			    (long long)json_integer_value(json_object_get(resp, "tproxy_port")),
			    (long long)json_integer_value(json_object_get(resp, "tproxy_port")),
			    json_string_value(json_object_get(resp, "nft_table")),
			    (long long)json_integer_value(json_object_get(resp, "tproxy_accepted")),
			    (long long)json_integer_value(json_object_get(resp, "tproxy_no_identity")));
}
