/* What airlockctl's command files share: one request to airlockd, errors printed. */
#ifndef AIRLOCKCTL_CTL_H
#define AIRLOCKCTL_CTL_H

#include <jansson.h>

/* Sends req (consumed) to the socket; the reply if it says ok, else NULL
 * after printing airlockd's error (or why it could not be reached). */
json_t *ctl_call(const char *sock, json_t *req);

#endif
