/* Host names as TLS (the ClientHello's server name) and HTTP (Host, an absolute-form target) carry them, compared as a server picks its virtual host. */
#ifndef AIRLOCK_NET_HOST_NAME_H
#define AIRLOCK_NET_HOST_NAME_H

#include <stddef.h>

struct al_resource;

/*
 * A server name as Airlock matches it: ASCII lower case, without one trailing dot ("API.test."
 * is "api.test"; RFC 6066 sends none, a client that kept the dot of an absolute name means the
 * same host). out holds cap bytes (cap >= 1); a name that does not fit comes out empty.
 */
void host_name_norm(const char *name, char *out, size_t cap);

/*
 * The host of a Host value or an absolute-form target's authority (len bytes, as the request
 * parser checked them: reg-name, IPv4 or [IPv6], then an optional :port): without the port, an
 * IPv6 literal's brackets or one trailing dot, in lower case. 0, or -1 when it does not fit
 * cap bytes or is not such a value.
 */
int host_name_of_host(const char *host, size_t len, char *out, size_t cap);

/*
 * 1 if name (host_name_of_host, host_name_norm) is one resource r names: a glob of its `host`
 * list, a host name of its `address` lines, its tls_name, or an IP address within its
 * addresses.
 */
int host_named_by(const struct al_resource *r, const char *name);

#endif
