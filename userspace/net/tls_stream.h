/* TLS over a socket bufferevent, as a bufferevent the session reads and writes in the clear (see tls_stream.c). */
#ifndef AIRLOCK_NET_TLS_STREAM_H
#define AIRLOCK_NET_TLS_STREAM_H

#include <event2/bufferevent.h>
#include <openssl/ssl.h>

enum tls_stream_role {
	TLS_STREAM_ACCEPT,      /* the agent's side: we are the server */
	TLS_STREAM_CONNECT,     /* the upstream's side: we are the client */
};

/*
 * A TLS stream over `under` (a socket bufferevent: sock_out_new): a bufferevent whose input
 * is what the peer sent, decrypted, and whose output is encrypted into under's. It takes
 * ssl (freed with the stream) and, with BEV_OPT_CLOSE_ON_FREE, under. Events as libevent's
 * TLS filter reports them with dirty shutdowns allowed: CONNECTED once the handshake is
 * done (a connecting stream's socket also reports its own CONNECTED first: see
 * tls_stream_ready), EOF on a close_notify or on the socket's end, ERROR with the OpenSSL
 * error in tls_stream_error. NULL on failure (nothing is taken then).
 */
struct bufferevent *tls_stream_new(struct bufferevent *under, SSL *ssl, enum tls_stream_role role, int options);

/* The SSL of a TLS stream; NULL for any other bufferevent. */
SSL *tls_stream_ssl(struct bufferevent *bev);

/* Whether bev is not a TLS stream, or is one whose handshake is done. */
int tls_stream_ready(struct bufferevent *bev);

/* The first OpenSSL error that ended the TLS stream bev; 0 if none (or not a TLS stream). */
unsigned long tls_stream_error(struct bufferevent *bev);

#endif
