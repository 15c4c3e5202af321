/* HTTP/1.1: a strict incremental request parser, response framing, chunked bodies, TLS ClientHello peek, Kubernetes exec recognition. */
#ifndef AIRLOCK_HTTP_H
#define AIRLOCK_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <airlock/common.h>

/*
 * Contract (userspace/proto/http/): the parsers are pure. The caller keeps
 * the bytes of one message from its first byte in one contiguous buffer and
 * calls again with the same buffer grown by what arrived; the parser
 * remembers how far it got (no rescan) and returns
 *	HTTP_NEED_MORE (0)  not complete yet, nothing wrong so far
 *	HTTP_DONE      (1)  complete; the message is req->total bytes long
 *	HTTP_ERROR    (-1)  malformed: req->status (400, 431, 501, 505) and
 *	                    req->error, the reason the agent is told
 * Everything found is an offset span into that buffer, so the buffer may
 * move between calls (evbuffer_pullup). Nothing is allocated.
 *
 * Strictness: request line `token SP target SP HTTP/1.x CRLF` (the method
 * without lower-case letters, the path none of http_path_refusal's shapes), header lines
 * `token ":" OWS value OWS CRLF`, CRLF only (a bare CR or LF is an error),
 * no obs-fold, no whitespace before the colon, only visible ASCII, SP, HTAB
 * and obs-text in values; exactly one Host in HTTP/1.1 (matching an
 * absolute-form target); Content-Length once, digits only; Transfer-Encoding
 * exactly "chunked", never with Content-Length and never in HTTP/1.0; chunk
 * sizes of at most 15 hex digits, extensions `;token[=token]` only.
 */

#define HTTP_NEED_MORE  0
#define HTTP_DONE       1
#define HTTP_ERROR     (-1)

#define HTTP_MAX_LINE      8192     /* request line, each header line, each chunk-size line */
#define HTTP_MAX_HEAD      65536    /* request line and all headers */
#define HTTP_MAX_HEADERS   100

struct http_span {
	uint32_t off, len;
};

struct http_header {
	struct http_span name, value;       /* value without surrounding whitespace */
};

enum http_framing {
	HTTP_BODY_NONE = 0,
	HTTP_BODY_LENGTH,                   /* Content-Length bytes */
	HTTP_BODY_CHUNKED,
	HTTP_BODY_CLOSE,                    /* responses only: until the server closes */
};

/* Incremental chunked-body state (also usable on its own for streamed bodies). */
struct http_chunked {
	int state;
	uint64_t left;              /* bytes of the current chunk still to come */
	uint64_t chunk;             /* size of the current chunk */
	uint64_t decoded;           /* payload bytes so far */
	uint32_t line;              /* length of the current size or trailer line */
	uint32_t trailers;
	const char *error;
};
void http_chunked_init(struct http_chunked *c);
/*
 * Feeds len bytes of a chunked body; *used says how many were taken (all of
 * them unless it finished inside them). Returns HTTP_DONE after the last
 * chunk and its trailers, HTTP_NEED_MORE, or HTTP_ERROR (c->error).
 */
int http_chunked_feed(struct http_chunked *c, const uint8_t *p, size_t len, size_t *used) AL_MUST;

struct http_limits {
	size_t max_head;            /* 0: HTTP_MAX_HEAD */
	size_t max_body;            /* bodies up to this are part of the message; larger: head only */
};

struct http_req {
	/* results (valid after HTTP_DONE) */
	struct http_span method, target, path, query, host;
	int minor;                  /* HTTP/1.minor */
	int absolute;               /* target was absolute-form (http[s]://host/...) */
	struct http_header hdr[HTTP_MAX_HEADERS];
	size_t n_hdr;
	enum http_framing framing;
	uint64_t content_length;
	int keep_alive;             /* the connection may carry another request */
	int upgrade;                /* Connection: upgrade with an Upgrade header */
	int expect_continue;
	size_t head_len;            /* request line and headers, with the blank line */
	int body_buffered;          /* the body is part of the message (within max_body) */
	uint64_t body_len;          /* decoded payload length when buffered */
	size_t total;               /* message bytes: head, plus the body when buffered */
	/* error */
	int status;
	char error[128];
	/* parser state */
	int state;
	size_t pos, scan;
	struct http_chunked ck;
	int n_cl, n_te, n_host, conn_upgrade, has_upgrade, conn_close, conn_keep;
};

void http_req_init(struct http_req *r);
int http_parse_request(struct http_req *r, const uint8_t *buf, size_t len,
		       const struct http_limits *lim) AL_MUST;
/*
 * Why a request path (p[0..n), the target's path without its query) is refused with 400: it
 * has a shape servers read differently (a '.' or '..' segment, also %2E-encoded; a leading
 * "//"; ';'; '\'; an encoded '/', '\' or NUL; bad percent-encoding). NULL: none of them.
 * http_parse_request refuses such a request.
 */
const char *http_path_refusal(const uint8_t *p, size_t n);
/*
 * The normal form of a path the parser took (http_path_refusal NULL): percent-encoded
 * unreserved characters (ALPHA DIGIT - . _ ~) decoded, other escapes in upper-case hex, runs of
 * '/' made one, "" made "/". What rules match, grants cover and reviewers' headline shows;
 * the request goes upstream as sent. out holds n + 2 bytes; returns the length (NUL-terminated).
 */
size_t http_path_normal(const char *p, size_t n, char *out);
/* Copies the decoded body of a finished, buffered request into out (up to
 * cap bytes); returns its length. */
size_t http_req_body(const struct http_req *r, const uint8_t *buf, uint8_t *out, size_t cap);
/* Of a finished, buffered chunked request: *extensions 1 if any chunk-size line carries an
 * extension, and *trailers the trailer section (its field lines, each ending in CRLF; len 0:
 * none). Other requests: 0 and an empty span. */
void http_req_chunk_extras(const struct http_req *r, const uint8_t *buf, int *extensions,
			   struct http_span *trailers);
/* The first header called name (case-insensitive), or NULL. */
const struct http_header *http_req_header(const struct http_req *r, const uint8_t *buf,
					  const char *name);
/* 1 if the span equals s ignoring ASCII case. */
int http_span_ieq(const uint8_t *buf, struct http_span sp, const char *s);
/* The next item of a comma-separated header value v[0..n) from *i on, as v[*s..*e), trimmed of
 * spaces and tabs (empty items are skipped); 0 at the end. */
int http_list_next(const uint8_t *v, size_t n, size_t *i, size_t *s, size_t *e);

/* A response head from upstream: status line, headers, framing. The same
 * incremental contract; the body is never part of it. */
struct http_resp {
	int code;
	int minor;
	enum http_framing framing;
	uint64_t content_length;
	int keep_alive;
	size_t head_len;
	int status;
	char error[128];
	int state;
	size_t pos, scan;
	int n_cl, n_te, conn_close, conn_keep;
	struct http_span ws_protocol;   /* the first Sec-WebSocket-Protocol (len 0: none): the
					 * subprotocol a 101 chose, in the buffer parsed */
	int ws_extensions;              /* a Sec-WebSocket-Extensions header was there */
};
void http_resp_init(struct http_resp *r);
/* request_method_head: the request was HEAD (no body whatever the headers say). */
int http_parse_response(struct http_resp *r, const uint8_t *buf, size_t len, int request_method_head) AL_MUST;

/* ---- Kubernetes: exec, attach, port-forward ----------------------------------------------- */

#define HTTP_K8S_ARGV_MAX 64

struct http_k8s {
	char verb[16];              /* "exec", "attach", "portforward"; "" if not one */
	char ns[254], pod[254], container[254];
	char *argv[HTTP_K8S_ARGV_MAX]; /* decoded command values (exec), in order */
	size_t argc;
	char ports[128];            /* portforward ports= values, comma separated */
	int tty, stdin_;
};
/* Percent-decodes n bytes of s into out (cap bytes, NUL-terminated); plus_space turns '+'
 * into a space (query and form values). -1 on bad encoding, a NUL byte, or no room. */
int http_pct_decode(const char *s, size_t n, int plus_space, char *out, size_t cap) AL_MUST;
/* Recognises /api/v1/namespaces/NS/pods/POD/{exec,attach,portforward}[/]?...
 * (path in normal form, http_path_normal), the query read as the API server
 * reads it (http_k8s.c). Returns 1 and fills k (free with http_k8s_free), 0
 * if it is not one, -1 if it is one but malformed (bad percent-encoding, a
 * NUL, a ';' in the query, over HTTP_K8S_ARGV_MAX words). */
int http_k8s_parse(const char *path, const char *query, struct http_k8s *k) AL_MUST;
void http_k8s_free(struct http_k8s *k);

/* ---- TLS ClientHello ---------------------------------------------------------------------- */

struct http_hello {
	char sni[256];              /* "" if none */
	int sni_bad;                /* sni is not a name http_server_name_ok takes (kept for the record) */
	int alpn_h2, alpn_http11;   /* what the client offered */
	size_t len;                 /* bytes of the records holding the ClientHello */
};
/* Reads the ClientHello at the start of a TLS stream (buf from its first
 * byte): HTTP_DONE, HTTP_NEED_MORE, or HTTP_ERROR (not TLS, or malformed).
 * A server name that http_server_name_ok refuses is kept, with sni_bad set:
 * no leaf is minted for it, but a relayed connection's record shows it. */
int http_tls_hello(const uint8_t *buf, size_t len, struct http_hello *h) AL_MUST;
/*
 * 1 if name may be an agent's server name, which the leaf Airlock mints for it names (tls.c
 * mints for no other): an IPv4 or IPv6 literal (RFC 6066 wants none, some clients send one),
 * or a host name of at most 253 characters (and a trailing dot) in labels of 1 to 63 letters,
 * digits, '-' and '_' (internal names use it), none starting or ending with '-'. Not a
 * wildcard, nothing outside ASCII (IDNs come as xn-- labels), no ',' or ':' that OpenSSL's
 * SAN syntax would read.
 */
int http_server_name_ok(const char *name);

/* ---- the command a request yields (what rules see, reviewers read, the audit keeps) -------- */

#define HTTP_OVERRIDES_MAX 8

struct http_command {
	char method[24];
	/* Methods the request asks the server to run instead of method, upper case, each once and
	 * none equal to method: the values of X-HTTP-Method-Override, X-HTTP-Method and
	 * X-Method-Override (each comma-separated item), of a _method field (or one PHP reads as
	 * _method: " .method", "[method") in the query, a form body (or a body without
	 * Content-Type) or a multipart body, and of a JSON body's top-level "_method";
	 * AL_METHOD_ANY for a POST whose body may name one Airlock cannot read (over
	 * http_max_body, content-coded, a multipart or JSON body that does not parse). Rules
	 * decide the strictest of them all. */
	char overrides[HTTP_OVERRIDES_MAX][24];
	size_t n_overrides;
	char *host, *query;         /* as sent (percent-encoding kept) */
	char *path;                 /* normal form (http_path_normal): what rules match */
	char *headers_json;         /* chosen headers, JSON object; Authorization shown as dropped */
	char body_sha256[65];       /* "" when the body was not buffered */
	uint64_t body_len;          /* decoded length (buffered), or Content-Length, or 0 */
	int body_buffered;
	/* Why reviewers could not read a buffered body ("" when they can: none, or UTF-8 text
	 * without NUL bytes, not content-coded, chunks without extensions; http_command_text): a
	 * request that needs review with such a body is denied. */
	char body_unreadable[96];
	char request_sha256[65];    /* of the exact request bytes (head and buffered body) */
	int is_k8s;
	struct http_k8s k8s;
	char kind[24];              /* "exec", "attach", "portforward", else the method in lower case */
	char *fingerprint;          /* what a grant covers: method (and overrides), host, path
				     * (k8s: verb, pod, argv) */
	char *text;                 /* what reviewers read: a headline, then the request as it goes
				     * upstream (request line, every header, the body whole);
				     * http_command_text */
};

/* The header Airlock adds upstream with the resource's credential ("Authorization" for a bearer
 * token, the name of a header= credential); name NULL: none, the agent's go as sent. */
struct http_cred {
	const char *name;
	size_t len;
};

/*
 * The command of a finished request (buf holds its req->total bytes): what rules, grants and the
 * audit need; text is NULL and body_unreadable "" until http_command_text. Returns 0, or -1
 * with err (a malformed Kubernetes exec, attach or port-forward query, a method override that
 * is not a method, more than HTTP_OVERRIDES_MAX of them, out of memory).
 */
int http_command_parse(const uint8_t *buf, const struct http_req *r, struct http_command *c,
		       char *err, size_t errlen) AL_MUST;
/*
 * Sets c->text, what reviewers read of the request going upstream with cred's header (NULL:
 * none), and c->body_unreadable. The text: the headline, the request line, every header that
 * goes upstream in its order (the agent's Authorization and Proxy-Authorization redacted to
 * their scheme, its Cookie values to their lengths ("a=<redacted 32 bytes>; b=<redacted 1
 * byte>"), the value of any other header that carries a credential (X-Api-Key, X-Auth-Token, a
 * name ending in -Token, -Key, -Secret or -Password, or holding "auth") to its length
 * ("X-Api-Key: <redacted 40 bytes>"), cred's header last as "<resource credential>", values
 * that are not UTF-8 in hex), the body whole when it is readable (else why not, with its length and digest), chunked
 * trailer fields. Built only for a request that needs it (review, a Kubernetes stream's
 * recording): up to http_max_body of body is copied and checked. 0, or -1 out of memory.
 */
int http_command_text(const uint8_t *buf, const struct http_req *r, const struct http_cred *cred,
		      struct http_command *c) AL_MUST;
/* Adds the overrides that a _method field (as http_command_parse reads names) of the
 * form-encoded p[0..n) (a query, a form body) names to c's (c->method set): 0, or -1 with err
 * for one that is not a method. airlockctl policy test reads a recorded query with it. */
int http_form_overrides(struct http_command *c, const char *p, size_t n, char *err, size_t errlen) AL_MUST;
/* Both, without a credential: the request as the agent sent it (airlockctl classify). */
int http_command_build(const uint8_t *buf, const struct http_req *r, struct http_command *c,
		       char *err, size_t errlen) AL_MUST;
void http_command_free(struct http_command *c);
/* The command as a JSON object text (free() it); NULL when out of memory. */
char *http_command_json(const struct http_command *c);
/* 1 if header h of the request does not go upstream when it goes with cred's header: the agent's
 * Authorization, Proxy-Authorization and any header of cred's name (cred->name set), and on a
 * Kubernetes stream upgrade its Sec-WebSocket-Extensions (httpproxy.c says why). The proxy's
 * rewrite and the reviewers' text both follow it. */
int http_forward_drops(const uint8_t *buf, const struct http_req *r, const struct http_command *c,
		       const struct http_cred *cred, const struct http_header *h);

/* ---- Kubernetes exec/attach streams, decoded for the session recording (k8s_stream.c) --------
 *
 * After `101 Switching Protocols` an exec or attach carries stdin, stdout, stderr, an error
 * (status) channel and terminal resizes, framed one of three ways:
 *   WebSocket (RFC 6455) with a *.channel.k8s.io subprotocol: the first payload byte of each
 *     message is the channel (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; v5 adds 255:
 *     "this channel is closed", the payload names it);
 *   WebSocket with base64.channel.k8s.io or v4.base64.channel.k8s.io: the first character of
 *     each message is the channel as an ASCII digit ('0'..'4'), the rest of the message is
 *     the channel's bytes in padded standard base64 (CR and LF skipped, as the API server's
 *     decoder skips them); anything else in it stops decoding;
 *   SPDY/3.1: the client opens one stream per channel, named by the streamtype header of its
 *     SYN_STREAM (zlib-compressed with the SPDY dictionary); DATA frames carry the bytes.
 * The relay never depends on this decoder: it only watches copies of the bytes.
 *
 * Contract: each direction is fed the bytes as they come, split anywhere. k8s_stream_next
 * takes bytes from buf until it has a piece of payload or has used them all, and sets *used:
 *	K8S_PIECE     (1)  *out holds at most K8S_PIECE_MAX bytes of one channel (pointing
 *	                   into buf or into s; valid until the next call); feed the rest
 *	                   of buf (from buf + *used) next
 *	K8S_NEED_MORE (0)  all len bytes were taken, no piece is ready
 *	K8S_STOPPED  (-1)  decoding of this direction stopped for good (s->dir[d].error says
 *	                   why: malformed framing, an extension it does not decode, ...);
 *	                   every later call returns it too
 * A frame's declared length is never trusted for memory: payload is handed on as it
 * arrives; only SPDY header blocks are inflated, into a fixed K8S_HEADERS_MAX buffer.
 * The one allocation is zlib's, on the first SPDY header block from the agent.
 */
#define K8S_PIECE      1
#define K8S_NEED_MORE  0
#define K8S_STOPPED   (-1)

#define K8S_PIECE_MAX    4096
#define K8S_HEADERS_MAX  8192
#define K8S_SPDY_STREAMS 16

enum k8s_stream_proto {
	K8S_STREAM_WEBSOCKET = 1,
	K8S_STREAM_SPDY = 2,
	K8S_STREAM_WEBSOCKET_BASE64 = 3,
};

/* Which side sent the bytes. */
enum k8s_side {
	K8S_FROM_AGENT = 0,         /* the client (kubectl) */
	K8S_FROM_SERVER = 1,        /* the API server */
};

enum k8s_channel {
	K8S_CH_UNKNOWN = -1,        /* SPDY data on a stream whose type is not known */
	K8S_CH_STDIN = 0,
	K8S_CH_STDOUT = 1,
	K8S_CH_STDERR = 2,
	K8S_CH_ERROR = 3,           /* a metav1.Status as JSON: how the command ended */
	K8S_CH_RESIZE = 4,          /* {"Width":W,"Height":H} */
	K8S_CH_CLOSE = 255,         /* v5.channel.k8s.io: the payload is the channel closed */
};

struct k8s_piece {
	int channel;                /* enum k8s_channel */
	const uint8_t *p;
	size_t len;                 /* 1..K8S_PIECE_MAX */
};

struct k8s_dir {
	int state;
	uint8_t hdr[14];            /* a frame header (and SPDY's fixed control fields) */
	uint8_t hlen, hneed;
	uint64_t left;              /* payload bytes of the current frame still to come */
	/* WebSocket */
	int fin, opcode, masked, in_msg, need_channel, channel;
	uint8_t mask[4];
	uint64_t mask_off;
	/* WebSocket base64: the quantum being read (b64n characters of it, b64pad of them '=';
	 * 4: a padded quantum ended the message's data) */
	uint32_t b64acc;
	uint8_t b64n, b64pad;
	/* SPDY */
	int ctl_type;               /* control frame type; 0 for DATA */
	uint32_t stream_id;
	const char *error;          /* why decoding stopped; NULL while it goes on */
	uint8_t scratch[K8S_PIECE_MAX]; /* unmasked (or base64-decoded) WebSocket payload */
};

struct k8s_stream {
	enum k8s_stream_proto proto;
	struct k8s_dir dir[2];      /* indexed by enum k8s_side */
	/* SPDY: the stream each channel runs on (the agent opens them all) */
	struct {
		uint32_t id;
		int channel;
	} streams[K8S_SPDY_STREAMS];
	size_t n_streams;
	void *zs;                   /* z_stream inflating the agent's header blocks */
	int zs_dict;                /* the dictionary was given */
	uint8_t hblock[K8S_HEADERS_MAX];
	size_t hblock_len;
};

/* The framing of an upgraded exec/attach from its request's Upgrade header and offered
 * Sec-WebSocket-Protocol list (either may be NULL): 1 and *proto set, or 0 when it is
 * not one this decoder reads (e.g. only v4.portforward.k8s.io offered). Pass the server's
 * 101 answer where there is one; an offer is read as the API server reads it (it takes the
 * first protocol offered that it knows), so its first *channel.k8s.io one decides between
 * the binary and the base64 framing. */
int k8s_stream_kind(const char *upgrade, const char *ws_protocols, enum k8s_stream_proto *proto) AL_MUST;
void k8s_stream_init(struct k8s_stream *s, enum k8s_stream_proto proto);
/* Frees zlib's state; s may be initialised again. */
void k8s_stream_free(struct k8s_stream *s);
int k8s_stream_next(struct k8s_stream *s, enum k8s_side side, const uint8_t *buf, size_t len,
		    size_t *used, struct k8s_piece *out) AL_MUST;

/* Recorded text: UTF-8 whatever the bytes are. Bytes that are not UTF-8, and NUL, become
 * U+FFFD; a sequence cut at the end of p waits in carry for the next call with the same
 * carry (one per channel), so a character split between pieces comes out whole. out needs
 * 3 * (len + 4) bytes; returns the bytes written (not NUL-terminated). */
struct k8s_utf8 {
	uint8_t b[4];
	uint8_t n;
};
size_t k8s_utf8(struct k8s_utf8 *carry, const uint8_t *p, size_t len, char *out);

#endif
