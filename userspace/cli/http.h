/* airlockctl's HTTP commands: classify http, ca install / uninstall. */
#ifndef AIRLOCKCTL_HTTP_H
#define AIRLOCKCTL_HTTP_H

#include <stdio.h>

/* Runs `classify http` or `ca install|uninstall`; the exit code, or -1 if it is not one. */
int ctl_http_command(const char *control_sock, const char *cmd, int argc, char **argv, int want_json);
void ctl_http_usage(FILE *f);

#endif
