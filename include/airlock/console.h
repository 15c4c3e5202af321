/* The review console: libmicrohttpd on airlockd's event loop, login, JSON API, live feed (SSE), /metrics, static UI. */
#ifndef AIRLOCK_CONSOLE_H
#define AIRLOCK_CONSOLE_H

#include <stdint.h>
#include <airlock/common.h>
#include <airlock/config.h>

struct event_base;
struct store;
struct approval;
struct kern;
struct tls_ca;
struct console;

/* What the console reads; all owned by the daemon and outliving the console. */
struct console_deps {
	struct event_base *base;
	const struct al_config *cfg;    /* console_* settings are read once, at start */
	struct store *store;
	struct approval *approval;
	struct kern *kern;              /* pinned cgroups (peers inside them are refused) and counters */
	struct tls_ca *ca;              /* mints the HTTPS leaf when no console_cert is given */
};

/*
 * Starts the console if cfg->console_enabled (else *out is NULL and 0 is
 * returned). Every request is handled on the event loop's thread: MHD runs
 * in external-polling mode, driven by its epoll fd and a timer. Long store
 * reads and login password checks run in threads of their own while their
 * requests wait, suspended.
 */
int console_start(const struct console_deps *deps, struct console **out, char *err,
		  size_t errlen) AL_MUST;
/* Closes the live feeds and stops the server. NULL is fine. */
void console_free(struct console *c);
/* "http://127.0.0.1:8077/" (or https), for the banner; "off" when not running. */
const char *console_url(const struct console *c);

/* A new API token for user (a reviewer): the token text (64 hex chars) is
 * written to out once; only its sha256 is stored. */
int console_token_create(struct store *st, const char *user, char *out, size_t len,
			 char *err, size_t errlen) AL_MUST;

/* Embedded UI files (web/, by scripts/embed.sh). */
extern const char al_web_index_html[], al_web_app_js[], al_web_app_css[];
extern const size_t al_web_index_html_len, al_web_app_js_len, al_web_app_css_len;

#endif
