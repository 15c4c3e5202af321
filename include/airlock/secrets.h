/* The secrets file: upstream credentials airlockd logs in with and agents never see. */
#ifndef AIRLOCK_SECRETS_H
#define AIRLOCK_SECRETS_H

#include <airlock/common.h>

#include <stddef.h>

/*
 * Format (default /etc/airlock/secrets.conf), one credential per line:
 *
 *	# comment
 *	NAME key=value [key=value ...]
 *
 * NAME is 1..63 characters of A-Z a-z 0-9 . _ - and is what a resource's "credential" names.
 * Keys: user, password, sslcert and sslkey (absolute paths, given together), and for https
 * resources header="Name: value" (sent upstream in place of the agent's Authorization) or
 * bearer=TOKEN (sent as Authorization: Bearer TOKEN). user is required unless header or bearer
 * is given; at least a password, a client certificate, a header or a bearer token. A value is a bare word or a double-quoted string
 * in which \" and \\ are the only escapes; quote values holding spaces or '#'. A '#' starts a
 * comment only where a word could start, and is refused inside a bare value so a password is
 * never silently cut. Errors read "SOURCE:LINE: problem" and never quote a value.
 */

/* Strings are NUL-terminated and owned by the set; password, sslcert, sslkey may be NULL. */
struct al_secret {
	char name[64];
	char *user;
	char *password;
	char *sslcert;
	char *sslkey;
	char *header;           /* https: a whole header line sent upstream, "Name: value" */
	char *bearer;           /* https: sent as "Authorization: Bearer TOKEN" */
};

struct al_secrets {
	struct al_secret *v;
	size_t n;
};

/*
 * Reads and parses the file. Refuses (with how to fix it) anything but a regular file owned
 * by root with no group or other permission bits. A missing file is an error too: the daemon
 * only loads it when a postgres resource needs it. Returns 0, or -1 with err set.
 */
int secrets_load(const char *path, struct al_secrets **out, char *err, size_t errlen) AL_MUST;
/* For tests and `airlockd -n`: parse text without the file checks; source names it in errors. */
int secrets_parse(const char *source, const char *text, struct al_secrets **out, char *err,
		  size_t errlen) AL_MUST;
/* The credential called name, or NULL. */
const struct al_secret *secrets_find(const struct al_secrets *s, const char *name);
/* Wipes every string (OPENSSL_cleanse) before freeing it; NULL is fine. */
void secrets_free(struct al_secrets *s);

#endif
