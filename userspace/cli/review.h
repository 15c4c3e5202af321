/* airlockctl's review commands (pending, show, approve, deny, grants, revoke) and reviewer users. */
#ifndef AIRLOCKCTL_REVIEW_H
#define AIRLOCKCTL_REVIEW_H

#include <getopt.h>
#include <stdio.h>

#define CTL_REVIEW_LONGOPTS                                          \
	{ "for", required_argument, NULL, 0x100 },                  \
	{ "reason", required_argument, NULL, 0x101 },               \
	{ "watch", no_argument, NULL, 0x102 },                      \
	{ "uid", required_argument, NULL, 0x103 },                  \
	{ "groups", required_argument, NULL, 0x104 },               \
	{ "admin", no_argument, NULL, 0x105 },                      \
	{ "password-stdin", no_argument, NULL, 0x106 },             \
	{ "review-socket", required_argument, NULL, 0x107 },        \
	{ "since", required_argument, NULL, 0x108 },                \
	{ "no-admin", no_argument, NULL, 0x109 },

/* 0 if taken, -1 after printing why the value is bad. */
int ctl_review_option(int opt, const char *arg);
/* Runs a review or user command; the exit code, or -1 if cmd is not one. */
int ctl_review_command(const char *control_sock, const char *cmd, int argc, char **argv, int want_json);
void ctl_review_usage(FILE *f);

#endif
