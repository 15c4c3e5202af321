/* Pinned and guarded interfaces in the daemon: pin/unpin --iface, guard/unguard, status; the TPROXY listener first, then XDP, then nftables and routes. */
#include "ifaces.h"

#include <airlock/control.h>
#include <airlock/netdev.h>
#include <airlock/tproxy.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>

#define MAX_GUARD_ITEMS 64

struct ifaces {
	struct event_base *base;
	const struct al_config *cfg;
	struct store *store;
	struct relay *relay;
	struct xdp *xdp;
	struct tproxy *tproxy;
};

/* Every attached interface, in a new array (free it); NULL when out of memory. */
static struct xdp_iface *list_all(struct ifaces *f, int *n)
{
	size_t cap = xdp_count(f->xdp) + 1;
	struct xdp_iface *ifs = calloc(cap, sizeof(*ifs));

	*n = ifs ? xdp_list(f->xdp, ifs, cap) : 0;
	return ifs;
}

static int open_tproxy(struct ifaces *f, char *err, size_t errlen)
{
	if (f->tproxy)
		return 0;
	return tproxy_start(f->base, f->cfg->tproxy_port, f->relay, f->xdp, f->store, &f->tproxy,
			    err, errlen);
}

/*
 * Makes nftables and policy routing match the pinned agent interfaces. The
 * record in al_netcfg is written before anything is installed, so a crash
 * in between still leaves `airlockctl down` a way to clean up; settings of
 * an earlier run that differ (another table name, mark, routing table) are
 * removed first.
 */
static int sync_steering(struct ifaces *f, char *err, size_t errlen)
{
	const struct al_config *cfg = f->cfg;
	struct al_netcfg old, now;
	struct xdp_iface *ifs;
	size_t n = 0;
	int total, *idx, rc = -1;

	ifs = list_all(f, &total);
	idx = calloc((size_t)total + 1, sizeof(*idx));
	if (!ifs || !idx) {
		al_errf(err, errlen, "out of memory");
		goto out;
	}
	for (int i = 0; i < total; i++)
		if (ifs[i].role == XDP_ROLE_AGENT)
			idx[n++] = ifs[i].ifindex;
	if (xdp_netcfg_get(f->xdp, &old) < 0)
		memset(&old, 0, sizeof(old));
	old.nft_table[sizeof(old.nft_table) - 1] = '\0';
	/* Nothing pinned and nothing recorded: leave nftables alone (another
	 * airlockd on this host may use a table of the same name). */
	if (n == 0 && !old.active) {
		rc = 0;
		goto out;
	}
	if (old.active && (n == 0 || strcmp(old.nft_table, cfg->nft_table) != 0 ||
			   old.mark != cfg->tproxy_mark || old.route_table != cfg->tproxy_table)) {
		if (nft_table_delete(old.nft_table, err, errlen) < 0 ||
		    netdev_tproxy_routes(old.mark, old.route_table, 0, err, errlen) < 0)
			goto out;
		old.active = 0;
		if (xdp_netcfg_set(f->xdp, &old) < 0) {
			al_errf(err, errlen, "recording the nftables settings: %s", strerror(errno));
			goto out;
		}
	}
	if (n == 0) {
		rc = 0;
		goto out;
	}
	memset(&now, 0, sizeof(now));
	now.active = 1;
	now.mark = cfg->tproxy_mark;
	now.route_table = cfg->tproxy_table;
	now.tproxy_port = cfg->tproxy_port;
	if (al_fmt(now.nft_table, sizeof(now.nft_table), "%s", cfg->nft_table) < 0) {
		al_errf(err, errlen, "nft_table too long");
		goto out;
	}
	if (xdp_netcfg_set(f->xdp, &now) < 0) {
		al_errf(err, errlen, "recording the nftables settings: %s", strerror(errno));
		goto out;
	}
	if (netdev_tproxy_routes(cfg->tproxy_mark, cfg->tproxy_table, 1, err, errlen) < 0)
		goto out;
	rc = nft_steer_set(cfg->nft_table, idx, n, cfg->tproxy_port, cfg->tproxy_mark, err, errlen);
out:
	free(idx);
	free(ifs);
	return rc;
}

int ifaces_start(struct event_base *base, const struct al_config *cfg, struct store *st,
		 struct relay *r, struct ifaces **out, char *err, size_t errlen)
{
	struct ifaces *f = calloc(1, sizeof(*f));
	struct xdp_iface *ifs = NULL;
	int n, agents = 0;

	if (!f)
		return al_errf(err, errlen, "out of memory");
	f->base = base;
	f->cfg = cfg;
	f->store = st;
	f->relay = r;
	if (xdp_open(cfg->pin_root, &f->xdp, err, errlen) < 0)
		goto fail;
	ifs = list_all(f, &n);
	for (int i = 0; i < n; i++) {
		agents += ifs[i].role == XDP_ROLE_AGENT;
		al_info("re-adopted %s interface %s (index %d)",
			ifs[i].role == XDP_ROLE_AGENT ? "pinned" : "guarded", ifs[i].name, ifs[i].ifindex);
	}
	/* The listener first: the rules steer into it. */
	if (agents && open_tproxy(f, err, errlen) < 0)
		goto fail;
	if (sync_steering(f, err, errlen) < 0)
		goto fail;
	free(ifs);
	*out = f;
	return 0;
fail:
	free(ifs);
	ifaces_free(f);
	return -1;
}

void ifaces_free(struct ifaces *f)
{
	if (!f)
		return;
	tproxy_free(f->tproxy);
	xdp_close(f->xdp);
	free(f);
}

static const char *req_iface(json_t *req)
{
	return json_string_value(json_object_get(req, "iface"));
}

static json_t *iface_json(struct ifaces *f, const struct xdp_iface *i)
{
	json_t *o = json_pack("{s:s, s:i, s:s, s:s}", "iface", i->name, "ifindex", i->ifindex,
			      "role", i->role == XDP_ROLE_GUARD ? "guard" : "agent",
			      "mode", i->native ? "native" : "generic");

	if (o && i->role == XDP_ROLE_GUARD) {
		uint16_t ports[MAX_GUARD_ITEMS];
		struct al_addr allow[MAX_GUARD_ITEMS];
		size_t np = MAX_GUARD_ITEMS, na = MAX_GUARD_ITEMS;
		json_t *jp = json_array(), *ja = json_array();

		if (xdp_guard_get(f->xdp, i->ifindex, ports, &np, allow, &na) == 0) {
			for (size_t k = 0; k < np; k++)
				json_array_append_new(jp, json_integer(ports[k]));
			for (size_t k = 0; k < na; k++) {
				char s[INET6_ADDRSTRLEN];

				al_addr_str(&allow[k], s, sizeof(s));
				json_array_append_new(ja, json_string(s));
			}
		}
		json_object_set_new(o, "ports", jp);
		json_object_set_new(o, "allow", ja);
	}
	return o;
}

static json_t *cmd_pin(struct ifaces *f, json_t *req)
{
	const char *name = req_iface(req);
	struct xdp_iface info;
	char err[1024], err2[1024];
	json_t *resp;

	if (!name)
		return control_error("name an interface: {\"iface\": NAME}");
	if (open_tproxy(f, err, sizeof(err)) < 0)
		return control_error("%s", err);
	if (xdp_attach(f->xdp, name, XDP_ROLE_AGENT, &info, err, sizeof(err)) < 0)
		return control_error("%s", err);
	if (sync_steering(f, err, sizeof(err)) < 0) {
		if (xdp_detach(f->xdp, info.ifindex, err2, sizeof(err2)) < 0 ||
		    sync_steering(f, err2, sizeof(err2)) < 0)
			al_err("pin %s: could not roll back: %s", name, err2);
		return control_error("pin %s: %s", name, err);
	}
	al_info("pinned interface %s (index %d, %s XDP): TCP steered to port %u", name, info.ifindex,
		info.native ? "native" : "generic", f->cfg->tproxy_port);
	resp = control_ok();
	json_object_set_new(resp, "interface", iface_json(f, &info));
	return resp;
}

static json_t *cmd_unpin(struct ifaces *f, json_t *req, enum xdp_role role)
{
	const char *name = req_iface(req);
	const struct xdp_iface *i;
	char err[1024];
	int idx;

	if (!name)
		return control_error("name an interface: {\"iface\": NAME}");
	i = xdp_find(f->xdp, name);
	if (!i || i->role != role)
		return control_error("%s is not %s", name, role == XDP_ROLE_GUARD ? "guarded" : "pinned");
	idx = i->ifindex;
	if (xdp_detach(f->xdp, idx, err, sizeof(err)) < 0)
		return control_error("%s", err);
	/* XDP goes first, then its TCP steering: nothing else reaches the
	 * host from there until the rules are gone too. */
	if (role == XDP_ROLE_AGENT && sync_steering(f, err, sizeof(err)) < 0)
		return control_error("unpinned %s, but its nftables rules remain: %s", name, err);
	al_info("%s interface %s (index %d)", role == XDP_ROLE_GUARD ? "unguarded" : "unpinned", name, idx);
	return control_ok();
}

/* {"cmd":"guard","iface":X,"ports":[P...],"allow":[ADDR...]}: attach (or
 * update) the guard with exactly these ports and sources. */
static json_t *cmd_guard(struct ifaces *f, json_t *req)
{
	const char *name = req_iface(req);
	json_t *jp = json_object_get(req, "ports"), *ja = json_object_get(req, "allow"), *v, *resp;
	uint16_t ports[MAX_GUARD_ITEMS];
	struct al_addr allow[MAX_GUARD_ITEMS];
	size_t np = 0, na = 0, k;
	const struct xdp_iface *cur;
	struct xdp_iface info;
	char err[1024], err2[1024];

	if (!name)
		return control_error("name an interface: {\"iface\": NAME}");
	if (!json_is_array(jp) || json_array_size(jp) == 0 || json_array_size(jp) > MAX_GUARD_ITEMS)
		return control_error("name 1..%d ports to protect", MAX_GUARD_ITEMS);
	if (!json_is_array(ja) || json_array_size(ja) == 0 || json_array_size(ja) > MAX_GUARD_ITEMS)
		return control_error("name 1..%d appliance addresses to allow", MAX_GUARD_ITEMS);
	json_array_foreach(jp, k, v) {
		json_int_t p = json_integer_value(v);

		if (!json_is_integer(v) || p < 1 || p > 65535)
			return control_error("port %lld is not 1..65535", (long long)p);
		ports[np++] = (uint16_t)p;
	}
	json_array_foreach(ja, k, v) {
		if (!json_is_string(v) || al_addr_parse(&allow[na], json_string_value(v)) < 0)
			return control_error("'%s' is not an IP address",
					     json_is_string(v) ? json_string_value(v) : "?");
		na++;
	}
	cur = xdp_find(f->xdp, name);
	if (cur && cur->role != XDP_ROLE_GUARD)
		return control_error("%s is pinned as an agent interface; unpin it first", name);
	if (cur) {
		info = *cur;
	} else {
		unsigned int idx = if_nametoindex(name);

		/* The map entries go in before the program: it never runs unarmed. */
		if (idx == 0)
			return control_error("no interface named '%s'", name);
		if (xdp_guard_set(f->xdp, (int)idx, ports, np, allow, na, err, sizeof(err)) < 0)
			return control_error("%s", err);
		if (xdp_attach(f->xdp, name, XDP_ROLE_GUARD, &info, err, sizeof(err)) < 0) {
			if (xdp_guard_set(f->xdp, (int)idx, NULL, 0, NULL, 0, err2, sizeof(err2)) < 0)
				al_warn("guard %s: stale map entries: %s", name, err2);
			return control_error("%s", err);
		}
	}
	if (xdp_guard_set(f->xdp, info.ifindex, ports, np, allow, na, err, sizeof(err)) < 0)
		return control_error("%s", err);
	al_info("guarding interface %s (index %d, %s XDP): %zu ports, %zu allowed sources", name,
		info.ifindex, info.native ? "native" : "generic", np, na);
	resp = control_ok();
	json_object_set_new(resp, "interface", iface_json(f, &info));
	return resp;
}

/* Interfaces deleted under us (a container stopped) leave defunct links:
 * drop them, and their nftables rules. */
static void prune(struct ifaces *f)
{
	char err[1024];
	int agents = 0;

	if (xdp_prune(f->xdp, &agents) > 0 && agents > 0 && sync_steering(f, err, sizeof(err)) < 0)
		al_warn("removing the rules of a vanished interface: %s", err);
}

int ifaces_fence_check(struct ifaces *f, kern_fence_cb cb, void *arg)
{
	char err[1024];
	int agents = 0, n = xdp_fence_check(f->xdp, cb, arg, &agents);

	if (agents > 0 && sync_steering(f, err, sizeof(err)) < 0)
		al_warn("removing the rules of a vanished interface: %s", err);
	return n;
}

json_t *ifaces_command(struct ifaces *f, const char *cmd, json_t *req)
{
	int has_iface = json_object_get(req, "iface") != NULL;

	if (has_iface || strcmp(cmd, "guard") == 0 || strcmp(cmd, "unguard") == 0)
		prune(f);

	if (strcmp(cmd, "pin") == 0 && has_iface)
		return cmd_pin(f, req);
	if (strcmp(cmd, "unpin") == 0 && has_iface)
		return cmd_unpin(f, req, XDP_ROLE_AGENT);
	if (strcmp(cmd, "guard") == 0)
		return cmd_guard(f, req);
	if (strcmp(cmd, "unguard") == 0)
		return cmd_unpin(f, req, XDP_ROLE_GUARD);
	return NULL;
}

void ifaces_status(struct ifaces *f, json_t *resp)
{
	json_t *arr = json_array();
	struct xdp_iface *ifs;
	int n;

	prune(f);
	ifs = list_all(f, &n);
	for (int i = 0; i < n; i++)
		json_array_append_new(arr, iface_json(f, &ifs[i]));
	free(ifs);
	json_object_set_new(resp, "interfaces", arr);
	json_object_set_new(resp, "tproxy_port", json_integer(f->cfg->tproxy_port));
	json_object_set_new(resp, "tproxy_listening", json_boolean(f->tproxy != NULL));
	json_object_set_new(resp, "nft_table", json_string(f->cfg->nft_table));
	if (f->tproxy) {
		struct tproxy_stats ts;

		tproxy_stats(f->tproxy, &ts);
		json_object_set_new(resp, "tproxy_accepted", json_integer((json_int_t)ts.accepted));
		json_object_set_new(resp, "tproxy_no_identity", json_integer((json_int_t)ts.no_identity));
	}
}
