/* PostgreSQL v3 wire protocol: incremental framing, message decoders, builders, and SQL classification. */
#ifndef AIRLOCK_PG_H
#define AIRLOCK_PG_H

#include <airlock/common.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- Framing ------------------------------------------------------------------------------ */

#define PG_PROTO_V3		0x00030000u	/* StartupMessage protocol 3.0 */
#define PG_CANCEL_REQUEST_CODE	80877102u
#define PG_SSL_REQUEST_CODE	80877103u
#define PG_GSSENC_REQUEST_CODE	80877104u
/* The server refuses startup packets longer than this whatever the configured limit. */
#define PG_MAX_STARTUP_LEN	10000u

/* Startup-phase packets carry no type byte; pg_frame reports them with one of these. */
enum pg_startup_kind {
	PG_STARTUP_NONE = 0,	/* a typed message */
	PG_STARTUP_V3,		/* StartupMessage: version 3.x, key/value parameters follow */
	PG_STARTUP_SSL,		/* SSLRequest */
	PG_STARTUP_GSSENC,	/* GSSENCRequest */
	PG_STARTUP_CANCEL,	/* CancelRequest: pid, key */
};

/*
 * One framed message. All pointers point into the caller's buffer and are valid as long as it
 * is. For typed messages, type is the type byte and body is what follows the length word; for
 * startup packets type is 0, startup says which one, code is the protocol/request code and body
 * is what follows it.
 */
struct pg_msg {
	uint8_t type;
	enum pg_startup_kind startup;
	uint32_t code;
	const uint8_t *body;
	size_t body_len;
	size_t len;		/* bytes the whole message occupies (consumed) */
	size_t need;		/* on "need more": total bytes needed if known, else header size */
	const char *err;	/* on error: a static reason string */
};

/*
 * Frames one frontend (client-to-server) message at the start of buf. startup_phase selects the
 * untyped startup packet format. Messages longer than max_len (total, header included) are
 * refused as soon as their header is seen, as are unknown types and impossible lengths.
 * Returns the number of bytes the message occupies (>0), 0 if more bytes are needed, or -1 with
 * out->err set. Never reads past len.
 */
int pg_frame(const uint8_t *buf, size_t len, int startup_phase, size_t max_len,
	     struct pg_msg *out) AL_MUST;
/* The same for backend (server-to-client) messages; there is no startup phase, but a single
 * 'S' or 'N' byte answering SSLRequest/GSSENCRequest is the caller's to read. */
int pg_frame_backend(const uint8_t *buf, size_t len, size_t max_len, struct pg_msg *out) AL_MUST;

/* ---- Decoders -------------------------------------------------------------------------------
 * Each takes a framed message, checks its whole body (every length, count, NUL and trailing
 * byte) and returns 0, or -1 with *err set to a static reason. Strings point into the buffer
 * (they are NUL-terminated there). Nothing is allocated.
 */

/* StartupMessage. user/database/options/application_name are NULL when absent. */
struct pg_startup {
	uint16_t major, minor;
	size_t n_params;
	const char *user, *database, *options, *application_name, *replication;
};
int pg_decode_startup(const struct pg_msg *m, struct pg_startup *s, const char **err) AL_MUST;
/* Iterates the parameters of a checked StartupMessage: start with *off = 0; 1 per pair, 0 at end. */
int pg_startup_next(const struct pg_msg *m, size_t *off, const char **key, const char **val);

struct pg_cancel {
	uint32_t pid, key;
};
int pg_decode_cancel(const struct pg_msg *m, struct pg_cancel *c, const char **err) AL_MUST;

/* Query 'Q'. */
int pg_decode_query(const struct pg_msg *m, const char **sql, const char **err) AL_MUST;

/* Parse 'P'. */
struct pg_parse {
	const char *name;	/* "" is the unnamed statement */
	const char *query;
	uint16_t n_types;
	const uint8_t *types_raw;
};
int pg_decode_parse(const struct pg_msg *m, struct pg_parse *p, const char **err) AL_MUST;
uint32_t pg_parse_type(const struct pg_parse *p, uint16_t i);

/* Bind 'B'. Parameter and result formats are 0 (text) or 1 (binary). */
struct pg_bind {
	const char *portal, *stmt;
	uint16_t n_formats, n_params, n_result_formats;
	const uint8_t *formats_raw, *params_raw, *result_formats_raw;
	size_t params_len;
};
struct pg_param {
	const uint8_t *data;	/* NULL for SQL NULL */
	int32_t len;		/* -1 for SQL NULL */
	int16_t format;
};
int pg_decode_bind(const struct pg_msg *m, struct pg_bind *b, const char **err) AL_MUST;
/* Format of parameter i, applying the 0/1/n rule. */
int16_t pg_bind_format(const struct pg_bind *b, uint16_t i);
int16_t pg_bind_result_format(const struct pg_bind *b, uint16_t i);
/* Iterates a checked Bind's parameters: *off starts at 0, *idx at 0; 1 per parameter, 0 at end. */
int pg_bind_next(const struct pg_bind *b, size_t *off, uint16_t *idx, struct pg_param *p);

/* Execute 'E'. */
struct pg_execute {
	const char *portal;
	int32_t max_rows;
};
int pg_decode_execute(const struct pg_msg *m, struct pg_execute *e, const char **err) AL_MUST;

/* Describe 'D' and Close 'C': what is 'S' (statement) or 'P' (portal). */
struct pg_target {
	char what;
	const char *name;
};
int pg_decode_describe(const struct pg_msg *m, struct pg_target *t, const char **err) AL_MUST;
int pg_decode_close(const struct pg_msg *m, struct pg_target *t, const char **err) AL_MUST;

/* CopyFail 'f'; PasswordMessage 'p' (as cleartext/md5 password). */
int pg_decode_copy_fail(const struct pg_msg *m, const char **reason, const char **err) AL_MUST;
int pg_decode_password(const struct pg_msg *m, const char **password, const char **err) AL_MUST;
/* SASLInitialResponse 'p': data is NULL with len -1 when the client sent none. */
struct pg_sasl_initial {
	const char *mechanism;
	const uint8_t *data;
	int32_t len;
};
int pg_decode_sasl_initial(const struct pg_msg *m, struct pg_sasl_initial *s, const char **err) AL_MUST;

/* Backend: Authentication 'R'. */
enum pg_auth_code {
	PG_AUTH_OK = 0, PG_AUTH_KRB5 = 2, PG_AUTH_CLEARTEXT = 3, PG_AUTH_MD5 = 5,
	PG_AUTH_GSS = 7, PG_AUTH_GSS_CONTINUE = 8, PG_AUTH_SSPI = 9, PG_AUTH_SASL = 10,
	PG_AUTH_SASL_CONTINUE = 11, PG_AUTH_SASL_FINAL = 12,
};
struct pg_auth {
	uint32_t code;
	uint8_t salt[4];		/* MD5 */
	const uint8_t *data;		/* GSS/SASL continue/final payload; SASL: mechanism list */
	size_t data_len;
	size_t n_mechanisms;		/* SASL */
};
int pg_decode_auth(const struct pg_msg *m, struct pg_auth *a, const char **err) AL_MUST;
/* 1 if a SASL request offers the mechanism (e.g. "SCRAM-SHA-256"). */
int pg_auth_has_mechanism(const struct pg_auth *a, const char *mech);

/* ParameterStatus 'S', BackendKeyData 'K', ReadyForQuery 'Z', CommandComplete 'C'. */
int pg_decode_parameter_status(const struct pg_msg *m, const char **name, const char **value,
			       const char **err) AL_MUST;
int pg_decode_backend_key(const struct pg_msg *m, struct pg_cancel *k, const char **err) AL_MUST;
int pg_decode_ready(const struct pg_msg *m, char *status, const char **err) AL_MUST;
int pg_decode_command_complete(const struct pg_msg *m, const char **tag, const char **err) AL_MUST;

/* ErrorResponse 'E' / NoticeResponse 'N'. Absent fields are NULL. severity prefers the
 * non-localized 'V' field over 'S'. */
struct pg_error_fields {
	const char *severity, *sqlstate, *message, *detail, *hint;
	size_t n_fields;
};
int pg_decode_error(const struct pg_msg *m, struct pg_error_fields *e, const char **err) AL_MUST;

/* RowDescription 'T' (every field checked) and DataRow 'D' (every column length checked). */
int pg_decode_row_description(const struct pg_msg *m, uint16_t *n_fields, const char **err) AL_MUST;
int pg_decode_data_row(const struct pg_msg *m, uint16_t *n_cols, const char **err) AL_MUST;

/* CopyInResponse 'G', CopyOutResponse 'H', CopyBothResponse 'W'. */
struct pg_copy_response {
	uint8_t format;
	uint16_t n_cols;
	const uint8_t *formats_raw;
};
int pg_decode_copy_response(const struct pg_msg *m, struct pg_copy_response *c, const char **err) AL_MUST;

/*
 * Checks any framed message with the decoder for its type and direction (backend = 1 for
 * server messages); 0 if well formed. Types whose body is opaque or state-dependent here
 * (CopyData, FunctionCall, the 'p' family, backend 'A', 'V', 'v', 's', 't') pass on framing.
 */
int pg_msg_check(const struct pg_msg *m, int backend, const char **err) AL_MUST;

/* ---- Builders -------------------------------------------------------------------------------
 * A growable output buffer. Appends never fail loudly: on allocation failure or when the
 * buffer would pass max (0 = unlimited) the buffer is marked failed and later appends do
 * nothing; check pg_buf_ok() once after building.
 */
struct pg_buf {
	uint8_t *data;
	size_t len, cap, max;
	int failed;
};
void pg_buf_init(struct pg_buf *b, size_t max);
void pg_buf_free(struct pg_buf *b);
void pg_buf_reset(struct pg_buf *b);
static inline int pg_buf_ok(const struct pg_buf *b) { return !b->failed; }

/* Low-level: begin a typed message (type 0 = untyped startup packet), append fields, end it
 * (which writes the length word). pg_buf_begin returns the offset to pass to pg_buf_end. */
size_t pg_buf_begin(struct pg_buf *b, uint8_t type);
void pg_buf_end(struct pg_buf *b, size_t start);
void pg_buf_u8(struct pg_buf *b, uint8_t v);
void pg_buf_i16(struct pg_buf *b, int16_t v);
void pg_buf_i32(struct pg_buf *b, int32_t v);
void pg_buf_bytes(struct pg_buf *b, const void *p, size_t n);
void pg_buf_str(struct pg_buf *b, const char *s);	/* with its NUL */

/* Backend messages. severity is "ERROR", "FATAL", ... (sent as both 'S' and 'V'). */
void pg_build_error(struct pg_buf *b, const char *severity, const char *sqlstate, const char *message);
void pg_build_notice(struct pg_buf *b, const char *severity, const char *sqlstate, const char *message);
void pg_build_ready(struct pg_buf *b, char status);
void pg_build_auth_ok(struct pg_buf *b);
void pg_build_auth_cleartext(struct pg_buf *b);
void pg_build_parameter_status(struct pg_buf *b, const char *name, const char *value);
void pg_build_backend_key(struct pg_buf *b, uint32_t pid, uint32_t key);
void pg_build_command_complete(struct pg_buf *b, const char *tag);
void pg_build_empty_query(struct pg_buf *b);
void pg_build_parse_complete(struct pg_buf *b);
void pg_build_bind_complete(struct pg_buf *b);
void pg_build_close_complete(struct pg_buf *b);
void pg_build_no_data(struct pg_buf *b);

/* Frontend messages (the proxy is the client upstream). params is key, value, ..., NULL. */
void pg_build_startup(struct pg_buf *b, const char *const *params);
void pg_build_ssl_request(struct pg_buf *b);
void pg_build_cancel(struct pg_buf *b, uint32_t pid, uint32_t key);
void pg_build_password(struct pg_buf *b, const char *password);
void pg_build_sasl_initial(struct pg_buf *b, const char *mechanism, const void *data, size_t len);
void pg_build_sasl_response(struct pg_buf *b, const void *data, size_t len);
void pg_build_query(struct pg_buf *b, const char *sql);
void pg_build_sync(struct pg_buf *b);
void pg_build_terminate(struct pg_buf *b);

/* ---- Classification ------------------------------------------------------------------------ */

enum pg_kind {
	PG_KIND_READ,
	PG_KIND_INSERT,
	PG_KIND_UPDATE,
	PG_KIND_DELETE,
	PG_KIND_MERGE,
	PG_KIND_DDL,
	PG_KIND_DCL,
	PG_KIND_TRANSACTION,
	PG_KIND_COPY,
	PG_KIND_COPY_PROGRAM,
	PG_KIND_DO,
	PG_KIND_CALL,
	PG_KIND_UTILITY,
	PG_KIND__COUNT
};

#define PG_FINGERPRINT_LEN 16

/*
 * One statement of a query string.
 * relations: every table/view/sequence the statement names, once each, in order of first
 *   appearance, as [catalog.][schema.]name with identifiers quoted where PostgreSQL would need
 *   it; CTE names are not relations. A sequence nextval or setval names by a constant
 *   (nextval('public.s'), 's'::regclass) is one, read as the server reads the string. "*"
 *   stands for tables named by text (the SQL a query_to_xml runs, table_to_xml's argument) and
 *   for a sequence named otherwise (an expression, a parameter, an OID): any table, as
 *   relation rules read it.
 * unbounded_write: an UPDATE or DELETE anywhere in it without WHERE, or with one that may hold
 *   for every row (it mentions no column: WHERE true, 1 = 1, 1 IN (1), NOT false, $1; it
 *   compares an expression with itself: id = id, t.id >= t.id, id IS NOT DISTINCT FROM id,
 *   name LIKE '%'; it ORs opposites: x IS NULL OR x IS NOT NULL, active OR NOT active; or such
 *   a part decides it through OR/AND/NOT: WHERE id = 5 OR true, but not id = id AND a = 1);
 *   a MERGE whose ON may so hold with a WHEN MATCHED UPDATE or DELETE no such condition
 *   bounds; TRUNCATE. Never by a number's value: WHERE 1 = 2 counts too (all rows or none),
 *   x[1] = x[2] as x[1] = x[1]. What the data decides (id > 0) is not seen; pg_classify.c
 *   lists what else is not.
 * prepared_name: for PREPARE the name defined, for EXECUTE/DEALLOCATE the name used, else NULL;
 *   prep_op says which (DEALLOCATE ALL: no name); a session that remembers what it PREPAREd
 *   decides an EXECUTE by that statement. An EXECUTE inside EXPLAIN (with or without ANALYZE:
 *   its parameters are evaluated either way) or CREATE TABLE AS is an EXECUTE here.
 */
enum pg_prep_op {
	PG_PREP_NONE,
	PG_PREP_PREPARE,
	PG_PREP_EXECUTE,
	PG_PREP_DEALLOCATE,     /* prepared_name NULL: DEALLOCATE ALL */
	PG_PREP_DISCARD_ALL,    /* DISCARD ALL: every prepared statement and portal */
};

struct pg_stmt {
	char *text;
	enum pg_kind kind;
	char **relations;
	size_t n_relations;
	int unbounded_write;
	char fingerprint[PG_FINGERPRINT_LEN + 1];
	int location, len;	/* byte span of text within the input */
	char *prepared_name;
	enum pg_prep_op prep_op;
	/* FETCH / MOVE: the cursor or portal it reads (as the server folds the name), else NULL.
	 * A protocol-level portal is reachable by SQL FETCH: the proxy decides the FETCH as the
	 * statement bound to that portal. */
	char *portal_name;
	/* It changes how the server reads the statements after it (standard_conforming_strings,
	 * client_encoding / SET NAMES, backslash_quote: by SET, RESET, set_config anywhere in it,
	 * an UPDATE of pg_settings, ALTER ROLE/DATABASE/SYSTEM SET or RESET): the proxy's parser
	 * would no longer see what the server runs, so it is refused. A SET or set_config to a
	 * constant that keeps the reading (standard_conforming_strings on, an ASCII-safe encoding
	 * such as UTF8 or LATIN1, backslash_quote off or safe_encoding) is not unsafe; RESET and
	 * DEFAULT of these are; RESET ALL and DISCARD ALL are not (they restore this session's
	 * start values, which the proxy must check as the server reports them). What a DO block or
	 * a function body does is not seen here: the proxy must watch ParameterStatus. */
	int unsafe_setting;
	/* Its fingerprint hides constants that decide what it does, so a grant covers its exact
	 * text only: DO, CALL, SET/RESET (also inside ALTER ... SET and function definitions), a
	 * call of set_config, of any side-effect function or of nextval/setval (their arguments
	 * are file names, SQL text, roles, backends, large objects, sequences), an UPDATE of
	 * pg_settings, CREATE/ALTER FUNCTION or PROCEDURE, and definitions whose expressions run
	 * later (CREATE RULE, TRIGGER, POLICY, ALTER POLICY, CREATE VIEW); an unsafe_setting
	 * statement; and a write unbounded by its condition (WHERE 1 = 0 and WHERE 1 = 1 share a
	 * fingerprint, as do LIKE 'a%' and LIKE '%'). Constants of ordinary DML (keys, values,
	 * limits) are what a grant of a statement shape is for, and COPY's program or file,
	 * EXPLAIN's options, passwords and FETCH counts are in the fingerprint. */
	int grant_exact;
	/* Every kind it is, as bits 1u << PG_KIND_*: kind itself, each write it runs (a MERGE's
	 * WHEN ... THEN DELETE/UPDATE/INSERT, INSERT ... ON CONFLICT DO UPDATE's update, writing
	 * CTEs), COPY FROM's insert, the kind before its function calls and theirs (the write of a
	 * large-object or sequence function in any statement: CALL p(nextval('s')) is update). A
	 * deny or review rule's kinds meet a statement that is any of them; an allow rule's, one
	 * that is nothing else (config_decide). */
	unsigned kinds;
};

struct pg_stmt_list {
	struct pg_stmt *stmts;
	size_t n;
};

/*
 * How kinds are decided (an unknown statement type is ddl, never read):
 *   a SELECT/INSERT/... that writes anywhere (writing CTEs, nested) is its most destructive
 *   write: delete > merge > update > insert; TRUNCATE is an unbounded delete; SELECT INTO and
 *   CREATE TABLE AS are ddl; EXPLAIN ANALYZE, PREPARE and DECLARE take their statement's kind
 *   (plain EXPLAIN is read; the last ANALYZE option decides, a value PostgreSQL would refuse
 *   counts as on); COPY to/from STDIN/STDOUT is copy, with PROGRAM or a server file
 *   copy_program, with a writing query that write; SET ROLE, SET SESSION AUTHORIZATION and
 *   role/privilege statements are dcl; SET TRANSACTION is transaction; ALTER SYSTEM, CREATE
 *   EXTENSION, LOAD are ddl; a statement of any kind calling set_config('role', ...) (also as
 *   db.pg_catalog.set_config) is dcl, one calling server-file functions (pg_read_file,
 *   lo_import, ...) copy_program, one calling a function that runs SQL text or a cursor Airlock
 *   cannot see (query_to_xml*, cursor_to_xml*, ts_stat, ts_rewrite, dblink*) do, the most
 *   dangerous winning; large-object writers (lo_from_bytea, lo_put, lo_unlink, ...) are the
 *   write they are, on pg_catalog.pg_largeobject; nextval and setval (fn, pg_catalog.fn, as
 *   set_config) are an update of the sequence they name (currval and lastval read; a column
 *   default's nextval is the server's, not the statement's: INSERT ... DEFAULT VALUES is an
 *   insert); pg_terminate_backend, pg_reload_conf, ... make a read or COPY out utility.
 * kinds adds what else a statement is: a MERGE is also each of its actions (delete, update,
 *   insert), INSERT ... ON CONFLICT DO UPDATE also update, COPY FROM also insert, a writing CTE
 *   its write, a statement of any kind its functions' kinds (INSERT ... VALUES (nextval('s'))
 *   is update and insert, CREATE TABLE AS SELECT lo_unlink(1) ddl and delete); rules on any of
 *   them meet it (config_decide).
 * Statements nested deeper than the library can serialize on an 8 MB stack are refused with
 * "statement nested too deeply" (PostgreSQL refuses them too).
 *
 * Splits sql into statements with the PostgreSQL parser and classifies each. Returns 0 (n may
 * be 0 for an empty or comment-only string) or -1 with the parser's message in err (also on
 * out-of-memory). out is always safe to pass to pg_stmt_list_free afterwards.
 */
int pg_classify(const char *sql, struct pg_stmt_list *out, char *err, size_t errlen) AL_MUST;
void pg_stmt_list_free(struct pg_stmt_list *l);
/* A deep copy of src into dst (text, relations, prepared_name, portal_name); -1 without memory
 * (dst empty). */
int pg_stmt_copy(struct pg_stmt *dst, const struct pg_stmt *src) AL_MUST;
/* Frees what a pg_stmt holds (not the struct itself). */
void pg_stmt_clear(struct pg_stmt *st);

/* "read", "insert", ..., "copy_program", ...; pg_kind_parse is its inverse (0 / -1). */
const char *pg_kind_name(enum pg_kind k);
/* 1 if client_encoding name (any spelling PostgreSQL takes) keeps every byte of a multibyte
 * character >= 0x80, so a quote or backslash is one to the server as to libpg_query; 0 for
 * SJIS, BIG5, GBK, GB18030, UHC, JOHAB and any name not known to be such an encoding. */
int pg_encoding_keeps_reading(const char *name);
int pg_kind_parse(const char *name, enum pg_kind *out) AL_MUST;
/* 1 for insert, update, delete and merge. */
int pg_kind_is_dml(enum pg_kind k);

/* The `airlockctl classify pg --json` array: [{text, kind, relations, unbounded_write,
 * fingerprint, unsafe_setting, grant_exact, kinds}, ...]. Returns malloc'd text (free()),
 * NULL on allocation failure. */
char *pg_stmt_list_json(const struct pg_stmt_list *l, int pretty);
/* The human-readable form: one block per statement. Returns 0 or -1 on write error. */
int pg_stmt_list_print(const struct pg_stmt_list *l, FILE *f) AL_MUST;

/* ---- Classification cache ------------------------------------------------------------------
 * pg_classify_cached gives what pg_classify gives, every field; a single-statement string that
 * differs from one classified before only in numeric literals reuses that classification (its
 * own text is kept) when none of it can depend on them: a SELECT, INSERT, UPDATE, DELETE or
 * MERGE, not grant_exact or unsafe_setting, whose numeric constants are exactly the literals
 * the key hides (not an EXPLAIN option, FETCH count, SET value or array bound). Bounded: a
 * fixed number of slots, a new entry replaces the slot's old one.
 */
struct pg_cache;
int pg_cache_new(size_t slots, struct pg_cache **out) AL_MUST;
void pg_cache_free(struct pg_cache *c);
int pg_classify_cached(struct pg_cache *c, const char *sql, struct pg_stmt_list *out, char *err,
		       size_t errlen) AL_MUST;
void pg_cache_stats(const struct pg_cache *c, uint64_t *hits, uint64_t *misses);
/* The cache key: numeric literals as '?', all else verbatim; -1 if not cacheable (text its
 * scanner may read otherwise than PostgreSQL: unterminated quotes or comments, a backslash in
 * a string without E, a number run into a name, '$', '.' or a quote). */
int pg_cache_key(const char *sql, char *out, size_t cap, size_t *key_len) AL_MUST;

/* ---- Recording -------------------------------------------------------------------------------
 * What a session recording keeps of a framed message (malloc'd text; NULL only when out of
 * memory): frontend Query: its SQL; Parse {name, query}; Bind {portal,
 * statement, params}; Execute {portal}; Describe/Close {what, name}. Backend RowDescription:
 * the JSON array of field names; DataRow: the JSON array of values (null for NULL, text cut
 * at max_value bytes with "...", "<N bytes>" when not UTF-8); CommandComplete: the tag;
 * ErrorResponse/NoticeResponse {severity, sqlstate, message, detail, hint}; ReadyForQuery:
 * the status letter; ParameterStatus {name, value}. Others: "". */
char *pg_summary(const struct pg_msg *m, int from_backend, size_t max_value);
/* The same summary appended to b (the proxy's recording reuses one buffer): 0, or -1 without
 * memory. */
struct al_buf;
int pg_summary_add(struct al_buf *b, const struct pg_msg *m, int from_backend, size_t max_value);

/*
 * A binary-format parameter as the text the server would print for it, when its type (the OID
 * its Parse declared) has a fixed binary form: bool, int2/4/8, oid, float4/8, uuid, date,
 * timestamp and timestamptz (UTC). 0 with out set (NUL-terminated; cap PG_BINARY_TEXT_MAX is
 * room for any of them); -1 for any other type or a length that does not fit the type.
 */
#define PG_BINARY_TEXT_MAX 64
int pg_binary_param_text(uint32_t type_oid, const uint8_t *p, size_t len, char *out, size_t cap);
/* Types whose binary form is their text (text, varchar, bpchar, name, char, json, xml...). */
int pg_type_binary_is_text(uint32_t type_oid);

#endif
