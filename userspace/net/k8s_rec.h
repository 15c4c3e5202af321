/* Recording of an approved Kubernetes exec/attach stream (userspace/net/k8s_rec.c), for the https session. */
#ifndef AIRLOCK_NET_K8S_REC_H
#define AIRLOCK_NET_K8S_REC_H

#include <airlock/http.h>
#include <airlock/store.h>

struct evbuffer;
struct k8s_rec;

/*
 * Starts recording the upgraded stream of session conn_id: an "exec" (or "attach") row
 * now, then the decoded channels as they pass, in the same recordings rows PostgreSQL
 * sessions use (dir "F" from the agent, "B" from the API server, "A" Airlock's notes),
 * up to limit bytes (record_limit). NULL when nothing is recorded (limit 0, no session
 * row, a port-forward, out of memory). chosen: the subprotocol the server's 101 named
 * (Sec-WebSocket-Protocol), which decides the framing; NULL or "" if it named none (SPDY,
 * or a server that did not say): then the agent's offer is read as the server reads it.
 */
struct k8s_rec *k8s_rec_start(struct store *st, int64_t conn_id, size_t limit, const struct http_command *cmd,
			      const char *chosen);
/* Decodes a copy of what buf holds now; buf is neither drained nor moved. r may be NULL. */
void k8s_rec_feed(struct k8s_rec *r, enum k8s_side side, struct evbuffer *buf);
/* Records what is pending and frees r (NULL is fine). */
void k8s_rec_end(struct k8s_rec *r);

#endif
