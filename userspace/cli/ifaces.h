/* airlockctl's interface commands: pin/unpin --iface, guard, unguard, and the interface lines of status. */
#ifndef AIRLOCKCTL_IFACES_H
#define AIRLOCKCTL_IFACES_H

#include <getopt.h>
#include <jansson.h>

/* Long options for main's getopt table. */
#define CTL_IFACE_LONGOPTS                                   \
	{ "iface", required_argument, NULL, 'I' },          \
	{ "port", required_argument, NULL, 'P' },           \
	{ "allow", required_argument, NULL, 'A' },

/* Takes --iface, --port (repeatable) and --allow (repeatable). 0 on
 * success, -1 after printing why the value is bad. */
int ctl_iface_option(int opt, const char *arg);
/* Runs pin/unpin with --iface, guard or unguard; returns the exit code,
 * or -1 if cmd is none of those (pin/unpin without --iface). */
int ctl_iface_command(const char *sock, const char *cmd, int argc, int want_json);
/* Prints the interface part of a status reply. */
void ctl_iface_status(json_t *resp);

#endif
