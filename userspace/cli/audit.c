/* airlockctl audit pubkey|verify|export, replay and export: read the store file directly (read-only), no daemon needed. */
#include "audit.h"
#include "term.h"

#include <airlock/control.h>
#include <airlock/store.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#define DEFAULT_STORE "/var/lib/airlock/airlock.db"
#define CELL_MAX 40             /* characters of one table cell shown by replay (a cut one ends in "...") */
#define ROWS_SHOWN 20           /* rows of one result shown by replay */

static const char *opt_pubkey, *opt_store, *opt_format;
static double opt_speed = 1.0;
static long opt_since = 24 * 3600;

void ctl_audit_usage(FILE *f)
{
	fprintf(f,
		"  audit pubkey                    the public key that signs audit checkpoints (PEM)\n"
		"  audit verify [--pubkey F]       recompute the hash chain and check every signed\n"
		"                                  checkpoint; names the first bad record (exit 1)\n"
		"  audit export [--since 24h] [--format jsonl]   audit records, one JSON per line\n"
		"  replay SESSION [--speed N]      play a recorded session in time order (0: no waiting)\n"
		"  export SESSION --format asciicast|jsonl   a recorded session as an asciicast v2 or JSON lines\n"
		"Audit, replay and export read the store file (--store PATH; default: the running\n"
		"daemon's, else " DEFAULT_STORE ").\n");
}

static long duration_s(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (v <= 0 || end == s || (end[0] && end[1]))
		return -1;
	switch (*end) {
	case '\0':
	case 's':
		return v;
	case 'm':
		return v * 60;
	case 'h':
		return v * 3600;
	case 'd':
		return v * 86400;
	}
	return -1;
}

int ctl_audit_option(int opt, const char *arg)
{
	char *end;

	switch (opt) {
	case 0x200:
		opt_pubkey = arg;
		return 0;
	case 0x201:
		opt_store = arg;
		return 0;
	case 0x202:
		errno = 0;
		opt_speed = strtod(arg, &end);
		if (errno || *end || end == arg || !(opt_speed >= 0) || opt_speed > 1e6) {
			term_fprintf(stderr, "airlockctl: --speed wants a number >= 0 (0: no waiting), not '%s'\n", arg);
			return -1;
		}
		return 0;
	case 0x203:
		opt_format = arg;
		return 0;
	case 0x108:
		opt_since = duration_s(arg);
		return opt_since > 0 ? 0 : -1;
	}
	return -1;
}

/* --store, else what the running daemon says, else the default path. */
const char *ctl_store_path(const char *sock)
{
	static char path[4096];
	char err[256];
	json_t *req, *resp;

	if (opt_store)
		return opt_store;
	req = json_pack("{s:s}", "cmd", "status");
	resp = req ? control_call(sock, req, err, sizeof(err)) : NULL;
	json_decref(req);
	if (resp && json_is_string(json_object_get(resp, "store")))
		snprintf(path, sizeof(path), "%s", json_string_value(json_object_get(resp, "store")));
	else
		snprintf(path, sizeof(path), "%s", DEFAULT_STORE);
	json_decref(resp);
	return path;
}

static sqlite3 *open_ro(const char *path)
{
	sqlite3 *db = NULL;

	if (access(path, R_OK) < 0) {
		term_fprintf(stderr, "airlockctl: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, 5000) != SQLITE_OK) {
		term_fprintf(stderr, "airlockctl: %s: %s\n", path, db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

static const char *col(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);

	return t ? t : "";
}

/* ---- audit ---------------------------------------------------------------------------------- */

static int audit_pubkey(const char *store)
{
	char path[4200];
	const char *slash = strrchr(store, '/');
	char buf[4096];
	size_t n;
	FILE *f;

	if (opt_pubkey)
		snprintf(path, sizeof(path), "%s", opt_pubkey);
	else if (slash)
		snprintf(path, sizeof(path), "%.*s/audit.pub", (int)(slash - store), store);
	else
		snprintf(path, sizeof(path), "audit.pub");
	f = fopen(path, "re");
	if (!f) {
		term_fprintf(stderr, "airlockctl: %s: %s\n", path, strerror(errno));
		return 1;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stdout);
	fclose(f);
	return 0;
}

static int audit_verify(const char *store, int want_json)
{
	struct store_verify v;
	int rc = store_audit_verify(store, opt_pubkey, &v);

	if (want_json) {
		json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "result",
				      rc == 0 ? "ok" : rc == 1 ? "tampered" : "error", "records",
				      (json_int_t)v.records, "checkpoints", (json_int_t)v.checkpoints,
				      "first_seq", (json_int_t)v.first_seq, "last_seq", (json_int_t)v.last_seq,
				      "signed_to", (json_int_t)v.signed_to, "signed_at_us", (json_int_t)v.signed_at_us,
				      "first_bad", (json_int_t)v.first_bad, "message", v.msg);

		term_json(stdout, o, JSON_INDENT(2));
		json_decref(o);
	} else if (rc == 0) {
		term_printf("audit: ok: %s\n", v.msg);
	} else if (rc == 1) {
		term_printf("audit: %s\n", v.msg);
	} else {
		term_fprintf(stderr, "airlockctl: audit: %s\n", v.msg);
	}
	return rc == 0 ? 0 : rc == 1 ? 1 : 2;
}

static int audit_export(const char *store)
{
	sqlite3 *db = open_ro(store);
	sqlite3_stmt *st = NULL;
	int rc = 1, r;

	if (!db)
		return 1;
	if (opt_format && strcmp(opt_format, "jsonl") != 0) {
		fprintf(stderr, "airlockctl: audit export: --format jsonl is the one there is\n");
		goto out;
	}
	if (sqlite3_prepare_v2(db, "SELECT seq, at_us, kind, ref_id, body, prev_hash, hash FROM audit"
			       " WHERE at_us >= ?1 ORDER BY seq", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, (int64_t)time(NULL) * 1000000 - (int64_t)opt_since * 1000000) != SQLITE_OK) {
		term_fprintf(stderr, "airlockctl: %s: %s\n", store, sqlite3_errmsg(db));
		goto out;
	}
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *body = json_loads(col(st, 4), 0, NULL);
		json_t *o = json_pack("{s:I, s:I, s:s, s:o, s:o, s:s, s:s}", "seq",
				      (json_int_t)sqlite3_column_int64(st, 0), "at_us",
				      (json_int_t)sqlite3_column_int64(st, 1), "kind", col(st, 2), "ref_id",
				      sqlite3_column_type(st, 3) == SQLITE_NULL ? json_null()
					      : json_integer(sqlite3_column_int64(st, 3)),
				      "body", body ? body : json_string(col(st, 4)), "prev_hash", col(st, 5),
				      "hash", col(st, 6));
		/* ASCII only: nothing in a record can act on the terminal the export goes to */
		char *line = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII) : NULL;

		if (line)
			puts(line);
		free(line);
		json_decref(o);
	}
	if (r != SQLITE_DONE) {
		term_fprintf(stderr, "airlockctl: %s: %s\n", store, sqlite3_errmsg(db));
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

/* ---- sessions: what replay prints, as timed frames ------------------------------------------- */

struct frame {
	int64_t at_us;
	char *text;
	int input;              /* what an exec's agent typed on a terminal: asciicast "i", not replayed */
};

struct frames {
	struct frame *v;
	size_t n, cap;
	int64_t opened_us;
	char *title;            /* asciicast's, terminal-safe */
};

static int add_frame(struct frames *f, int64_t at, char *text)
{
	if (!text)
		return -1;
	if (AL_GROW(f->v, f->n, f->cap, 64) < 0) {
		free(text);
		return -1;
	}
	f->v[f->n].at_us = at;
	f->v[f->n].text = text;
	f->v[f->n].input = 0;
	f->n++;
	return 0;
}

static void frames_free(struct frames *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i].text);
	free(f->v);
	free(f->title);
}

/* The text built in b, now the caller's. */
static char *sb_take(struct al_buf *b)
{
	return b->p ? b->p : strdup("");
}

/* A cell's text: a JSON string, "" for NULL, "?" for what is neither. */
static const char *cell_text(json_t *v)
{
	return json_is_string(v) ? json_string_value(v) : json_is_null(v) ? "" : "?";
}

/* psql's aligned layout for one result; a cell is one line of at most CELL_MAX characters. */
static void table(struct al_buf *b, json_t *cols, json_t *rows, size_t total)
{
	size_t nc = json_array_size(cols), w[64] = { 0 };
	struct al_buf scratch = { 0 };
	size_t i, j, n;

	if (nc > 64)
		nc = 64;
	/* each column as wide as its widest cell, in characters as shown */
	for (i = 0; i <= json_array_size(rows); i++)
		for (j = 0; j < nc; j++) {
			json_t *v = i == 0 ? json_array_get(cols, j) : json_array_get(json_array_get(rows, i - 1), j);
			const char *t = cell_text(v);

			scratch.len = 0;
			n = term_show(&scratch, t, strlen(t), TERM_LINE, CELL_MAX);
			if (n > w[j])
				w[j] = n;
		}
	free(scratch.p);
	for (i = 0; i <= json_array_size(rows); i++) {
		for (j = 0; j < nc; j++) {
			json_t *v = i == 0 ? json_array_get(cols, j) : json_array_get(json_array_get(rows, i - 1), j);
			const char *t = cell_text(v);

			al_buf_fmt(b, "%s ", j ? "|" : "");
			n = term_show(b, t, strlen(t), TERM_LINE, CELL_MAX);
			al_buf_fmt(b, "%*s ", (int)(w[j] - n), "");
		}
		al_buf_fmt(b, "\n");
		if (i > 0)
			continue;
		for (j = 0; j < nc; j++) {
			al_buf_fmt(b, "%s", j ? "+" : "");
			for (size_t k = 0; k < w[j] + 2; k++)
				al_buf_fmt(b, "-");
		}
		al_buf_fmt(b, "\n");
	}
	if (total > json_array_size(rows))
		al_buf_fmt(b, "... %zu more rows\n", total - json_array_size(rows));
	al_buf_fmt(b, "(%zu row%s)\n", total, total == 1 ? "" : "s");
}

static void error_line(struct al_buf *b, const char *data, int ours)
{
	json_t *e = json_loads(data, 0, NULL);
	const char *sev = json_string_value(json_object_get(e, "severity"));
	const char *code = json_string_value(json_object_get(e, "sqlstate"));
	const char *msg = json_string_value(json_object_get(e, "message"));

	term_fmt(b, "%s:  %s%s%s%s\n", sev ? sev : "ERROR", code ? code : "", code ? ": " : "",
		 msg ? msg : data, ours ? "   [airlock]" : "");
	json_decref(e);
}

/*
 * SQL text after "sql> ": its own line breaks kept, each line after the first indented under
 * the first, so none of its lines starts where replay's own lines ("-- session ... ended") do.
 */
static void sql_text(struct al_buf *b, const char *text)
{
	term_lines(b, text, "     ");
}

/*
 * An exec's output goes to the responder's terminal, and the agent chose it: text, newlines,
 * tabs, carriage returns, backspace and the CSI sequences that only colour, move or erase pass
 * as they are; every other control is shown as text (^[ ^G \u009B), so nothing replayed can
 * make the terminal answer (and so type into it), retitle it, write the clipboard (OSC 52) or
 * keep a mode such as mouse reporting.
 */
static void term_safe(struct al_buf *b, const char *text, size_t len)
{
	term_show(b, text, len, TERM_SCREEN, TERM_ALL);
}

/* Each line of text with a prefix (what a non-terminal exec's agent sent on stdin): shown as
 * lines, so no carriage return or cursor move can hide the prefix. */
static void prefixed(struct al_buf *b, const char *prefix, const char *text)
{
	while (*text) {
		size_t n = strcspn(text, "\n");

		al_buf_fmt(b, "%s", prefix);
		term_show(b, text, n, TERM_TEXT, TERM_ALL);
		al_buf_fmt(b, "\n");
		text += n + (text[n] == '\n');
	}
}

/*
 * The rows of a recorded Kubernetes exec/attach (userspace/net/k8s_rec.c): what it printed as
 * it printed it, what was typed (on a terminal the echo shows it, so it is kept as input, not
 * printed twice), how it ended. Returns 1 if the row was one of them.
 */
static int exec_row(struct al_buf *b, const char *dir, const char *type, const char *data, int *tty, int *input)
{
	if ((strcmp(type, "exec") == 0 || strcmp(type, "attach") == 0) && *dir == 'F') {
		json_t *o = json_loads(data, 0, NULL);
		const char *cmd = json_string_value(json_object_get(o, "command"));
		const char *stream = json_string_value(json_object_get(o, "stream"));

		*tty = json_is_true(json_object_get(o, "tty"));
		/* the command is one line: nothing in it may pass for a line of ours */
		term_fmt(b, "k8s> %s   [%s%s]\n", cmd ? cmd : data, stream ? stream : "?", *tty ? ", tty" : "");
		json_decref(o);
	} else if (strcmp(type, "stdout") == 0 || strcmp(type, "stderr") == 0) {
		term_safe(b, data, strlen(data));
	} else if (strcmp(type, "stdin") == 0) {
		if (*tty) {
			term_safe(b, data, strlen(data));
			*input = 1;
		} else {
			prefixed(b, "stdin> ", data);
		}
	} else if (strcmp(type, "status") == 0) {
		json_t *o = json_loads(data, 0, NULL), *causes;
		const char *st = json_string_value(json_object_get(o, "status"));
		const char *why = json_string_value(json_object_get(o, "reason"));
		const char *msg = json_string_value(json_object_get(o, "message"));
		const char *code = NULL;
		size_t i;
		json_t *c;

		causes = json_object_get(json_object_get(o, "details"), "causes");
		json_array_foreach(causes, i, c)
			if (json_is_string(json_object_get(c, "reason")) &&
			    strcmp(json_string_value(json_object_get(c, "reason")), "ExitCode") == 0)
				code = json_string_value(json_object_get(c, "message"));
		if (st && strcmp(st, "Success") == 0)
			al_buf_fmt(b, "-- the command exited with code 0\n");
		else if (why && strcmp(why, "NonZeroExitCode") == 0 && code)
			term_fmt(b, "-- the command exited with code %s\n", code);
		else
			term_fmt(b, "-- error: %s\n", msg ? msg : data);
		json_decref(o);
	} else if (strcmp(type, "close") == 0) {
		term_fmt(b, "-- the %s closed %s\n", *dir == 'F' ? "agent" : "server", data);
	} else if (strcmp(type, "data") == 0) {
		prefixed(b, *dir == 'F' ? "data> " : "data< ", data);
	} else if (strcmp(type, "undecoded") == 0) {
		term_fmt(b, "-- the stream is not decoded from here on (%s); it was relayed as it was\n", data);
	} else {
		return strcmp(type, "resize") == 0;
	}
	return 1;
}

/*
 * The HTTP requests of an https session as frames, in order: what was asked and what came of
 * it. Host, path and query are the agent's: shown terminal-safe.
 */
static int load_http(sqlite3 *db, int64_t id, struct frames *h)
{
	sqlite3_stmt *st = NULL;
	char *sql = NULL;
	int r, rc = -1;

	if (asprintf(&sql, "SELECT at_us, method, host, path, query, decision, rule, request_id, status,"
		     " bytes_down, duration_us, error FROM (%s) ORDER BY seq, id", store_conn_http_sql()) < 0) {
		sql = NULL;
		fprintf(stderr, "airlockctl: out of memory\n");
		goto out;
	}
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
		term_fprintf(stderr, "airlockctl: %s\n", sqlite3_errmsg(db));
		goto out;
	}
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		struct al_buf b = { 0 };
		const char *decision = col(st, 5), *query = col(st, 4);

		/* every field a line of its own (term_fmt): the two lines are ours */
		term_fmt(&b, "https> %s https://%s%s%s%s\n       ", col(st, 1), col(st, 2), col(st, 3),
			 *query ? "?" : "", query);
		if (sqlite3_column_type(st, 7) != SQLITE_NULL)
			al_buf_fmt(&b, "review request %lld, ", (long long)sqlite3_column_int64(st, 7));
		term_fmt(&b, "%s%s%s%s", decision, *col(st, 6) ? " (" : "", col(st, 6), *col(st, 6) ? ")" : "");
		if (sqlite3_column_type(st, 8) != SQLITE_NULL)
			al_buf_fmt(&b, " -> %d, %lld bytes in %.1f ms", sqlite3_column_int(st, 8),
			       (long long)sqlite3_column_int64(st, 9), (double)sqlite3_column_int64(st, 10) / 1e3);
		if (*col(st, 11))
			term_fmt(&b, ": %s", col(st, 11));
		al_buf_fmt(&b, "\n");
		if (!b.p || b.oom) {
			free(b.p);
			goto out;
		}
		if (add_frame(h, sqlite3_column_int64(st, 0), b.p) < 0)
			goto out;
	}
	if (r != SQLITE_DONE) {
		term_fprintf(stderr, "airlockctl: %s\n", sqlite3_errmsg(db));
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	free(sql);
	return rc;
}

/* Frames [from, f->n) and h's, both in time order, become one list in time order (on a tie,
 * the HTTP request first: it came before what its answer started). h is emptied. */
static int merge_frames(struct frames *f, size_t from, struct frames *h)
{
	size_t n = f->n > from ? f->n - from : 0, i = 0, k = 0;
	struct frame *tail = n ? malloc(n * sizeof(*tail)) : NULL;

	if (n && !tail)
		return -1;
	if (n)
		memcpy(tail, f->v + from, n * sizeof(*tail));
	if (f->n > from)
		f->n = from;
	while (i < n || k < h->n) {
		int take_h = k < h->n && (i == n || h->v[k].at_us <= tail[i].at_us);
		struct frame *src = take_h ? &h->v[k++] : &tail[i++];

		if (add_frame(f, src->at_us, src->text) < 0) {
			/* add_frame freed src's text; the rest are freed here */
			while (i < n)
				free(tail[i++].text);
			while (k < h->n)
				free(h->v[k++].text);
			free(tail);
			h->n = 0;
			return -1;
		}
		f->v[f->n - 1].input = src->input;
	}
	free(tail);
	h->n = 0;
	return 0;
}

/* Reads one session into frames: the text replay prints at each recorded time. */
static int load_session(sqlite3 *db, int64_t id, struct frames *f)
{
	sqlite3_stmt *st = NULL;
	struct store_rec_iter it = { 0 };
	struct store_rec_msg m;
	json_t *cols = NULL, *rows = NULL;
	size_t nrows = 0;
	int rc = -1, r, tty = 0;
	int64_t closed = 0;
	struct al_buf end = { 0 };      /* how it ended, terminal-safe */

	if (sqlite3_prepare_v2(db, "SELECT opened_us, closed_us, cgroup_path, pid, exe, resource, dst_addr,"
			       " dst_port, reason, detail, iface FROM connections WHERE id = ?1", -1, &st,
			       NULL) != SQLITE_OK || sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
		term_fprintf(stderr, "airlockctl: %s\n", sqlite3_errmsg(db));
		goto out;
	}
	if (sqlite3_step(st) != SQLITE_ROW) {
		fprintf(stderr, "airlockctl: no session %" PRId64 " in the store\n", id);
		goto out;
	}
	f->opened_us = sqlite3_column_int64(st, 0);
	closed = sqlite3_column_int64(st, 1);
	{
		struct al_buf b = { 0 }, title = { 0 };
		time_t t = (time_t)(f->opened_us / 1000000);
		char when[64];
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
		/* the cgroup path, the exe and the rest are the agent's: each one line (term_fmt) */
		term_fmt(&title, "airlock session %" PRId64 " (%.200s)", id, col(st, 5));
		f->title = sb_take(&title);
		term_fmt(&b, "-- session %" PRId64 ": %s pid %s (%s) -> %s %s:%s, %s\n", id,
			 *col(st, 2) ? col(st, 2) : *col(st, 10) ? col(st, 10) : "?", col(st, 3), col(st, 4),
			 *col(st, 5) ? col(st, 5) : "-", col(st, 6), col(st, 7), when);
		if (!f->title || add_frame(f, f->opened_us, sb_take(&b)) < 0)
			goto out;
	}
	if (sqlite3_column_type(st, 8) != SQLITE_NULL)
		term_fmt(&end, ": %s%s%s", col(st, 8), *col(st, 9) ? ": " : "", col(st, 9));
	sqlite3_finalize(st);
	st = NULL;
	if (store_rec_open(db, id, &it) < 0) {
		term_fprintf(stderr, "airlockctl: %s\n", sqlite3_errmsg(db));
		goto out;
	}
	while ((r = store_rec_next(&it, &m)) == 1) {
		int64_t at = m.at_us;
		const char *dir = m.dir, *type = m.type, *data = m.data ? m.data : "";
		struct al_buf b = { 0 };
		int input = 0;

		/* SQL text, values and messages came from the agent or the server: every row's text
		 * is built terminal-safe (term_fmt, term_show, sql_text, table, error_line), SQL
		 * as lines, the rest as one-line fields. */
		if (exec_row(&b, dir, type, data, &tty, &input)) {
			/* a Kubernetes exec's stream, made terminal-safe there */
		} else if (strcmp(type, "truncated") == 0) {
			term_fmt(&b, "-- recording truncated here (%s)\n", data);
		} else if (*dir == 'F') {
			if (strcmp(type, "Q") == 0) {
				al_buf_str(&b, "sql> ");
				sql_text(&b, data);
				al_buf_str(&b, "\n");
			} else if (strcmp(type, "P") == 0) {
				json_t *p = json_loads(data, 0, NULL);
				const char *name = json_string_value(json_object_get(p, "name"));

				al_buf_str(&b, "sql> ");
				sql_text(&b, json_string_value(json_object_get(p, "query")) ?: data);
				term_fmt(&b, "   [prepared%s%s]\n", name && *name ? " " : "", name ? name : "");
				json_decref(p);
			} else if (strcmp(type, "B") == 0) {
				json_t *p = json_loads(data, 0, NULL), *prm = json_object_get(p, "params");
				char *t = json_array_size(prm) ? json_dumps(prm, JSON_COMPACT) : NULL;

				if (t)
					term_fmt(&b, "     params: %s\n", t);
				free(t);
				json_decref(p);
			} else if (strcmp(type, "X") == 0) {
				al_buf_fmt(&b, "-- the agent ended the session\n");
			} else if (strcmp(type, "F") == 0) {
				al_buf_fmt(&b, "sql> (function call)\n");
			}
		} else if (strcmp(type, "T") == 0) {
			json_decref(cols);
			json_decref(rows);
			cols = json_loads(data, 0, NULL);
			rows = json_array();
			nrows = 0;
		} else if (strcmp(type, "D") == 0) {
			if (rows && json_array_size(rows) < ROWS_SHOWN)
				json_array_append_new(rows, json_loads(data, 0, NULL));
			nrows++;
		} else if (strcmp(type, "C") == 0) {
			if (cols && rows)
				table(&b, cols, rows, nrows);
			term_fmt(&b, "%s\n", data);
			json_decref(cols);
			json_decref(rows);
			cols = rows = NULL;
			nrows = 0;
		} else if (strcmp(type, "E") == 0) {
			error_line(&b, data, *dir == 'A');
			json_decref(cols);
			json_decref(rows);
			cols = rows = NULL;
		} else if (strcmp(type, "N") == 0) {
			error_line(&b, data, *dir == 'A');
		} else if (strcmp(type, "I") == 0) {
			al_buf_fmt(&b, "(empty query)\n");
		}
		if (b.len && add_frame(f, at, sb_take(&b)) < 0)
			goto out;
		if (b.len)
			f->v[f->n - 1].input = input;
		else
			free(b.p);
	}
	if (r < 0) {
		term_fprintf(stderr, "airlockctl: session %" PRId64 ": the recording could not be read: %s\n", id,
			     sqlite3_errmsg(db));
		goto out;
	}
	{
		struct frames h = { 0 };
		int bad = load_http(db, id, &h) < 0 || merge_frames(f, 1, &h) < 0;

		frames_free(&h);
		if (bad)
			goto out;
	}
	if (closed) {
		struct al_buf b = { 0 };

		al_buf_fmt(&b, "-- session %" PRId64 " ended after %.3f s%s\n", id,
			   (double)(closed - f->opened_us) / 1e6, end.p ? end.p : "");
		if (add_frame(f, closed, sb_take(&b)) < 0)
			goto out;
	}
	rc = 0;
out:
	free(end.p);
	json_decref(cols);
	json_decref(rows);
	sqlite3_finalize(st);
	store_rec_close(&it);
	return rc;
}

static void sleep_us(int64_t us)
{
	struct timespec ts;

	if (us <= 0)
		return;
	ts.tv_sec = us / 1000000;
	ts.tv_nsec = (us % 1000000) * 1000;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int replay(struct frames *f)
{
	int64_t start = al_mono_us(), base = f->n ? f->v[0].at_us : 0;

	for (size_t i = 0; i < f->n; i++) {
		if (f->v[i].input)
			continue;
		if (opt_speed > 0) {
			int64_t due = start + (int64_t)((double)(f->v[i].at_us - base) / opt_speed);

			sleep_us(due - al_mono_us());
		}
		fputs(f->v[i].text, stdout);
		fflush(stdout);
	}
	return 0;
}

/* asciicast v2: a header object, then [seconds, "o", text] per frame (CRLF line ends), and
 * [seconds, "i", keys] for what an exec's agent typed on a terminal (as typed). */
static int asciicast(struct frames *f)
{
	int64_t base = f->n ? f->v[0].at_us : f->opened_us;
	json_t *h = json_pack("{s:i, s:i, s:i, s:I, s:s, s:{s:s}}", "version", 2, "width", 120, "height", 40,
			      "timestamp", (json_int_t)(f->opened_us / 1000000), "title", f->title ? f->title : "",
			      "env", "TERM", "xterm-256color");
	/* the frames' text is terminal-safe already; ASCII-only JSON on top */
	char *line = h ? json_dumps(h, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

	if (!line) {
		json_decref(h);
		return 1;
	}
	puts(line);
	free(line);
	json_decref(h);
	for (size_t i = 0; i < f->n; i++) {
		struct al_buf b = { 0 };
		json_t *s;

		for (const char *p = f->v[i].text; *p; p++)
			al_buf_fmt(&b, "%s", *p == '\n' && !f->v[i].input ? "\r\n" : (char[2]){ *p, 0 });
		s = json_string(b.p ? b.p : "");
		line = s ? json_dumps(s, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;
		if (line)
			printf("[%.6f, \"%s\", %s]\n", (double)(f->v[i].at_us - base) / 1e6,
			       f->v[i].input ? "i" : "o", line);
		free(line);
		json_decref(s);
		free(b.p);
	}
	return 0;
}

static int export_jsonl(sqlite3 *db, int64_t id)
{
	struct store_rec_iter it;
	struct store_rec_msg m;
	int r;

	if (store_rec_open(db, id, &it) < 0) {
		term_fprintf(stderr, "airlockctl: %s\n", sqlite3_errmsg(db));
		return 1;
	}
	while ((r = store_rec_next(&it, &m)) == 1) {
		json_t *o = json_pack("{s:I, s:I, s:I, s:s, s:s, s:s}", "session", (json_int_t)id, "seq",
				      (json_int_t)m.seq, "at_us", (json_int_t)m.at_us, "dir", m.dir, "type",
				      m.type, "data", m.data ? m.data : "");
		char *line = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

		if (line)
			puts(line);
		free(line);
		json_decref(o);
	}
	if (r < 0)
		term_fprintf(stderr, "airlockctl: session %" PRId64 ": the recording could not be read: %s\n", id,
			     sqlite3_errmsg(db));
	store_rec_close(&it);
	return r < 0 ? 1 : 0;
}

static int session_cmd(const char *store, const char *cmd, const char *arg)
{
	struct frames f = { 0 };
	sqlite3 *db;
	char *end;
	long long id = strtoll(arg, &end, 10);
	int rc = 1;

	if (*end || id <= 0) {
		fprintf(stderr, "airlockctl: %s: SESSION is a connection id (airlockctl connections)\n", cmd);
		return 2;
	}
	if (strcmp(cmd, "export") == 0 && (!opt_format || (strcmp(opt_format, "asciicast") != 0 &&
							   strcmp(opt_format, "jsonl") != 0))) {
		fprintf(stderr, "airlockctl: export SESSION --format asciicast|jsonl\n");
		return 2;
	}
	db = open_ro(store);
	if (!db)
		return 1;
	if (strcmp(cmd, "export") == 0 && strcmp(opt_format, "jsonl") == 0) {
		rc = export_jsonl(db, id);
		goto out;
	}
	if (load_session(db, id, &f) < 0)
		goto out;
	rc = strcmp(cmd, "replay") == 0 ? replay(&f) : asciicast(&f);
out:
	frames_free(&f);
	sqlite3_close(db);
	return rc;
}

int ctl_audit_command(const char *control_sock, const char *cmd, int argc, char **argv, int want_json)
{
	if (strcmp(cmd, "replay") == 0 || strcmp(cmd, "export") == 0) {
		if (argc != 2) {
			fprintf(stderr, "airlockctl: %s SESSION%s\n", cmd,
				strcmp(cmd, "replay") == 0 ? " [--speed N]" : " --format asciicast|jsonl");
			return 2;
		}
		return session_cmd(ctl_store_path(control_sock), cmd, argv[1]);
	}
	if (strcmp(cmd, "audit") != 0)
		return -1;
	if (argc == 2 && strcmp(argv[1], "pubkey") == 0)
		return audit_pubkey(ctl_store_path(control_sock));
	if (argc == 2 && strcmp(argv[1], "verify") == 0)
		return audit_verify(ctl_store_path(control_sock), want_json);
	if (argc == 2 && strcmp(argv[1], "export") == 0)
		return audit_export(ctl_store_path(control_sock));
	fprintf(stderr, "airlockctl: audit pubkey | audit verify [--pubkey F] | audit export [--since 24h]\n");
	return 2;
}
