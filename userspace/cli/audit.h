/* airlockctl's audit commands: audit pubkey|verify|export, replay and export of recorded sessions (read-only on the store file). */
#ifndef AIRLOCKCTL_AUDIT_H
#define AIRLOCKCTL_AUDIT_H

#include <getopt.h>
#include <stdio.h>

#define CTL_AUDIT_LONGOPTS                                           \
	{ "pubkey", required_argument, NULL, 0x200 },               \
	{ "store", required_argument, NULL, 0x201 },                \
	{ "speed", required_argument, NULL, 0x202 },                \
	{ "format", required_argument, NULL, 0x203 },

/* 0 if taken, -1 after printing why the value is bad. 0x108 (--since) is shared with review. */
int ctl_audit_option(int opt, const char *arg);
/* Runs an audit, replay or export command; its exit code, or -1 if cmd is not one. */
int ctl_audit_command(const char *control_sock, const char *cmd, int argc, char **argv, int want_json);
void ctl_audit_usage(FILE *f);
/* The store file: --store, else what the running daemon says, else the default path. */
const char *ctl_store_path(const char *control_sock);

#endif
