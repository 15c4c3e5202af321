/* Records an approved Kubernetes exec/attach stream: what the command printed and what was typed, decoded from a copy of the relayed bytes. */
#include "k8s_rec.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdlib.h>

/*
 * Rows (recordings: dir, type, data), in stream order:
 *   F exec|attach  {"command", "namespace", "pod", "container", "argv", "tty", "stdin", "stream"}
 *   F stdin        text the agent sent        F resize  {"Width":W,"Height":H}
 *   B stdout, B stderr                        B status  the error channel's metav1.Status
 *   F|B close      v5: that side closed a channel (data: its name)
 *   F|B data       bytes on a channel or SPDY stream the decoder cannot name
 *   A undecoded    decoding of one side stopped (data says why); the relay goes on
 *   A truncated    record_limit reached: nothing more is recorded
 * Text is UTF-8 (k8s_utf8). Pieces of one channel that arrive together make one row.
 */

#define TEXT_MAX  (32 * 1024)
#define ROW_COST  8                     /* per row, as pgproxy counts it */

struct k8s_rec {
	struct store *st;
	int64_t conn_id, seq;
	size_t limit, used;
	int done;                       /* truncated or failed: records nothing more */
	int stopped[2];                 /* decoding of that side stopped */
	struct k8s_utf8 carry[2][7];    /* a character cut between pieces, per side and channel */
	/* the row being gathered */
	int pend_side, pend_channel;
	size_t pend_len;
	char pend[TEXT_MAX];
	struct k8s_stream ks;
};

static int slot(int channel)
{
	return channel >= 0 && channel <= 4 ? channel : channel == K8S_CH_CLOSE ? 5 : 6;
}

static const char *type_of(int channel)
{
	static const char *const t[] = { "stdin", "stdout", "stderr", "status", "resize", "close", "data" };

	return t[slot(channel)];
}

static void row(struct k8s_rec *r, const char *dir, const char *type, const char *data, size_t len)
{
	if (r->done)
		return;
	if (r->limit && r->used + len + ROW_COST > r->limit) {
		r->done = 1;
		if (store_rec_add(r->st, r->conn_id, ++r->seq, al_now_us(), "A", "truncated",
				  "record_limit reached", 20) < 0)
			al_err("https session %lld: could not record", (long long)r->conn_id);
		return;
	}
	r->used += len + ROW_COST;
	if (store_rec_add(r->st, r->conn_id, ++r->seq, al_now_us(), dir, type, data, len) < 0) {
		al_err("https session %lld: could not record the exec stream; recording stops",
		       (long long)r->conn_id);
		r->done = 1;
	}
}

static void flush(struct k8s_rec *r)
{
	if (r->pend_len)
		row(r, r->pend_side == K8S_FROM_AGENT ? "F" : "B", type_of(r->pend_channel), r->pend, r->pend_len);
	r->pend_len = 0;
}

static void piece(struct k8s_rec *r, enum k8s_side side, const struct k8s_piece *pc)
{
	static const char *const names[] = { "stdin", "stdout", "stderr", "error", "resize" };

	if (pc->channel == K8S_CH_CLOSE) {
		/* v5's close signal names a channel: record its name, not a byte. */
		const char *name = pc->p[0] < AL_ARRAY_LEN(names) ? names[pc->p[0]] : "?";

		flush(r);
		row(r, side == K8S_FROM_AGENT ? "F" : "B", "close", name, strlen(name));
		return;
	}
	if (r->pend_len && (r->pend_side != (int)side || r->pend_channel != pc->channel ||
			    r->pend_len + 3 * (pc->len + 4) > sizeof(r->pend)))
		flush(r);
	r->pend_side = side;
	r->pend_channel = pc->channel;
	r->pend_len += k8s_utf8(&r->carry[side][slot(pc->channel)], pc->p, pc->len, r->pend + r->pend_len);
}

static void decode(struct k8s_rec *r, enum k8s_side side, const uint8_t *p, size_t len)
{
	while (len > 0 && !r->done && !r->stopped[side]) {
		struct k8s_piece pc;
		size_t used = 0;
		int rc = k8s_stream_next(&r->ks, side, p, len, &used, &pc);

		p += used;
		len -= used;
		if (rc == K8S_PIECE) {
			piece(r, side, &pc);
		} else if (rc == K8S_STOPPED) {
			char why[200];
			int n = snprintf(why, sizeof(why), "%s: %s", side == K8S_FROM_AGENT ? "agent" : "server",
					 r->ks.dir[side].error ? r->ks.dir[side].error : "stopped");

			flush(r);
			r->stopped[side] = 1;
			row(r, "A", "undecoded", why, n < 0 ? 0 : (size_t)n >= sizeof(why) ? sizeof(why) - 1 : (size_t)n);
		} else {
			break;
		}
	}
}

void k8s_rec_feed(struct k8s_rec *r, enum k8s_side side, struct evbuffer *buf)
{
	struct evbuffer_iovec v[16];
	struct evbuffer_ptr at;
	size_t left = buf ? evbuffer_get_length(buf) : 0;

	if (!r || r->done || r->stopped[side] || left == 0)
		return;
	if (evbuffer_ptr_set(buf, &at, 0, EVBUFFER_PTR_SET) < 0)
		return;
	while (left > 0 && !r->done && !r->stopped[side]) {
		int n = evbuffer_peek(buf, (ev_ssize_t)left, &at, v, (int)AL_ARRAY_LEN(v));
		size_t took = 0;

		if (n <= 0)
			break;
		if (n > (int)AL_ARRAY_LEN(v))
			n = (int)AL_ARRAY_LEN(v);
		for (int i = 0; i < n && left > 0; i++) {
			size_t len = v[i].iov_len < left ? v[i].iov_len : left;

			decode(r, side, v[i].iov_base, len);
			took += len;
			left -= len;
		}
		if (left > 0 && evbuffer_ptr_set(buf, &at, took, EVBUFFER_PTR_ADD) < 0)
			break;
	}
	flush(r);
}

/* A JSON string of agent-supplied text that need not be UTF-8. */
static json_t *jstr(const char *v)
{
	json_t *j = json_string(v ? v : "");

	return j ? j : json_string("(not UTF-8)");
}

struct k8s_rec *k8s_rec_start(struct store *st, int64_t conn_id, size_t limit, const struct http_command *cmd,
			      const char *chosen)
{
	json_t *hd, *o, *argv;
	enum k8s_stream_proto proto = 0;
	const char *nl;
	struct k8s_rec *r;
	char *data;
	int known;

	if (limit == 0 || conn_id <= 0 || !cmd->is_k8s || strcmp(cmd->k8s.verb, "portforward") == 0)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->st = st;
	r->conn_id = conn_id;
	r->limit = limit;
	hd = json_loads(cmd->headers_json ? cmd->headers_json : "{}", 0, NULL);
	known = k8s_stream_kind(json_string_value(json_object_get(hd, "upgrade")),
				chosen && *chosen ? chosen :
				json_string_value(json_object_get(hd, "sec-websocket-protocol")), &proto);
	json_decref(hd);
	k8s_stream_init(&r->ks, known ? proto : K8S_STREAM_WEBSOCKET);

	o = json_object();
	argv = json_array();
	for (size_t i = 0; i < cmd->k8s.argc; i++)
		json_array_append_new(argv, jstr(cmd->k8s.argv[i]));
	nl = cmd->text ? strchr(cmd->text, '\n') : NULL;
	json_object_set_new(o, "command", nl ? json_stringn(cmd->text, (size_t)(nl - cmd->text)) : jstr(cmd->text));
	if (!json_object_get(o, "command"))
		json_object_set_new(o, "command", json_string("(not UTF-8)"));
	json_object_set_new(o, "namespace", jstr(cmd->k8s.ns));
	json_object_set_new(o, "pod", jstr(cmd->k8s.pod));
	json_object_set_new(o, "container", jstr(cmd->k8s.container));
	json_object_set_new(o, "argv", argv);
	json_object_set_new(o, "tty", json_boolean(cmd->k8s.tty));
	json_object_set_new(o, "stdin", json_boolean(cmd->k8s.stdin_));
	json_object_set_new(o, "stream", json_string(!known ? "not decoded" :
						      proto == K8S_STREAM_SPDY ? "spdy/3.1" :
						      proto == K8S_STREAM_WEBSOCKET_BASE64 ? "websocket/base64" : "websocket"));
	data = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (data)
		row(r, "F", cmd->k8s.verb, data, strlen(data));
	free(data);
	if (!known) {
		static const char why[] = "the stream's framing is not one Airlock decodes";

		row(r, "A", "undecoded", why, sizeof(why) - 1);
		r->stopped[0] = r->stopped[1] = 1;
	}
	return r;
}

void k8s_rec_end(struct k8s_rec *r)
{
	if (!r)
		return;
	flush(r);
	/* A character cut off by the end of the stream. */
	for (int side = 0; side < 2; side++)
		for (int c = 0; c < 7; c++)
			if (r->carry[side][c].n) {
				static const int channel[] = { 0, 1, 2, 3, 4, K8S_CH_CLOSE, K8S_CH_UNKNOWN };

				row(r, side == K8S_FROM_AGENT ? "F" : "B", type_of(channel[c]), "\xef\xbf\xbd", 3);
			}
	k8s_stream_free(&r->ks);
	free(r);
}
