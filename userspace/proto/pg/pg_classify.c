/* SQL statement classification with libpg_query: split, kind, relations, unbounded writes, fingerprint. */
#include <airlock/pg.h>

#include "pg_reuse.h"

#include <ctype.h>
#include <jansson.h>
#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * libpg_query turns the parse tree into protobuf and back recursively, with no depth check, so
 * a statement like "SELECT 1-1-1-...-1" with a few thousand terms overflows the stack inside
 * the library. Before parsing, nesting_ok() bounds the tree depth from the token stream and
 * refuses statements over NEST_LIMIT units; PostgreSQL itself refuses such statements with
 * "stack depth limit exceeded". Before unpacking, pg_tree_depth_ok() measures the serialized
 * tree and refuses one over PB_MAX_DEPTH messages (protobuf-c's unpack overflows an 8 MB stack
 * at about 8800). WALK_MAX_DEPTH guards our own walk the same way.
 */
#define NEST_LIMIT 1000
#define PB_MAX_DEPTH 4000
#define WALK_MAX_DEPTH 20000

static const char *const kind_names[PG_KIND__COUNT] = {
	[PG_KIND_READ] = "read",
	[PG_KIND_INSERT] = "insert",
	[PG_KIND_UPDATE] = "update",
	[PG_KIND_DELETE] = "delete",
	[PG_KIND_MERGE] = "merge",
	[PG_KIND_DDL] = "ddl",
	[PG_KIND_DCL] = "dcl",
	[PG_KIND_TRANSACTION] = "transaction",
	[PG_KIND_COPY] = "copy",
	[PG_KIND_COPY_PROGRAM] = "copy_program",
	[PG_KIND_DO] = "do",
	[PG_KIND_CALL] = "call",
	[PG_KIND_UTILITY] = "utility",
};

const char *pg_kind_name(enum pg_kind k)
{
	if ((unsigned)k >= PG_KIND__COUNT)
		return "unknown";
	return kind_names[k];
}

int pg_kind_parse(const char *name, enum pg_kind *out)
{
	for (int k = 0; k < PG_KIND__COUNT; k++) {
		if (!strcmp(name, kind_names[k])) {
			*out = (enum pg_kind)k;
			return 0;
		}
	}
	return -1;
}

int pg_kind_is_dml(enum pg_kind k)
{
	return k == PG_KIND_INSERT || k == PG_KIND_UPDATE || k == PG_KIND_DELETE || k == PG_KIND_MERGE;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* ---- Tree walk ----------------------------------------------------------------------------- */

enum { DML_INSERT = 1, DML_UPDATE = 2, DML_DELETE = 4, DML_MERGE = 8 };

struct walk {
	/* CTE names visible at the current point (a stack; unqualified RangeVars matching one are
	 * references to the CTE, not relations). */
	const char **ctes;
	size_t n_ctes, cap_ctes;
	struct pg_stmt *st;
	size_t cap_rel;
	int dml;		/* DML_* seen anywhere */
	unsigned also;		/* kinds a write is besides its own (1u << PG_KIND_*): a MERGE's
				 * actions, an upsert's update, COPY FROM's insert */
	int unbounded;		/* an UPDATE/DELETE without WHERE seen */
	int const_where;	/* ... or with one that may take every row (may_be_always) */
	long cond_budget;	/* comparisons left for may_be_always (COND_BUDGET a statement) */
	int fn_rank;		/* most dangerous side-effect function seen (fn_rank_of) */
	int unsafe;		/* changes a setting the server's reading of SQL depends on */
	int side_effect;	/* calls a function of side_effect_fns or set_config */
	int fn_dml;		/* DML_* its function calls do (large objects, sequences): every
				 * statement is these too, whatever its kind */
	int exact;		/* holds constants its fingerprint hides that decide its effect */
	size_t numerics;	/* numeric constants (A_Const integer or float) */
	int depth;
	int failed;		/* out of memory or too deep */
	int too_deep;
};

static int push_cte(struct walk *w, const char *name)
{
	if (w->n_ctes == w->cap_ctes) {
		size_t cap = w->cap_ctes ? w->cap_ctes * 2 : 8;
		const char **p = realloc(w->ctes, cap * sizeof(*p));

		if (!p) {
			w->failed = 1;
			return -1;
		}
		w->ctes = p;
		w->cap_ctes = cap;
	}
	w->ctes[w->n_ctes++] = name;
	return 0;
}

static int is_cte(const struct walk *w, const char *name)
{
	for (size_t i = w->n_ctes; i-- > 0;)
		if (!strcmp(w->ctes[i], name))
			return 1;
	return 0;
}

/* Appends an identifier, double-quoted unless it is a plain lower-case name. */
static void append_ident(struct pg_buf *b, const char *id)
{
	int plain = *id && !isdigit((unsigned char)*id);

	for (const char *p = id; *p && plain; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			plain = 0;
	if (plain) {
		pg_buf_bytes(b, id, strlen(id));
		return;
	}
	pg_buf_u8(b, '"');
	for (const char *p = id; *p; p++) {
		if (*p == '"')
			pg_buf_u8(b, '"');
		pg_buf_u8(b, (uint8_t)*p);
	}
	pg_buf_u8(b, '"');
}

/* Adds the name in b (not NUL-terminated) to the statement's relations unless present. */
static void add_relation(struct walk *w, struct pg_buf *b)
{
	struct pg_stmt *st = w->st;
	char *name;

	pg_buf_u8(b, 0);
	if (!pg_buf_ok(b))
		goto oom;
	for (size_t i = 0; i < st->n_relations; i++)
		if (!strcmp(st->relations[i], (char *)b->data))
			return;
	if (st->n_relations == w->cap_rel) {
		size_t cap = w->cap_rel ? w->cap_rel * 2 : 4;
		char **p = realloc(st->relations, cap * sizeof(*p));

		if (!p)
			goto oom;
		st->relations = p;
		w->cap_rel = cap;
	}
	name = strdup((char *)b->data);
	if (!name)
		goto oom;
	st->relations[st->n_relations++] = name;
	return;
oom:
	w->failed = 1;
}

static void add_range_var(struct walk *w, const PgQuery__RangeVar *rv)
{
	struct pg_buf b;

	if (!rv->relname || !*rv->relname)
		return;
	if ((!rv->schemaname || !*rv->schemaname) && (!rv->catalogname || !*rv->catalogname) &&
	    is_cte(w, rv->relname))
		return;
	pg_buf_init(&b, 0);
	if (rv->catalogname && *rv->catalogname) {
		append_ident(&b, rv->catalogname);
		pg_buf_u8(&b, '.');
	}
	if (rv->schemaname && *rv->schemaname) {
		append_ident(&b, rv->schemaname);
		pg_buf_u8(&b, '.');
	}
	append_ident(&b, rv->relname);
	add_relation(w, &b);
	pg_buf_free(&b);
}

/* A qualified name given as a List of String nodes (DROP TABLE a.b). */
static void add_name_list(struct walk *w, const PgQuery__Node *n)
{
	struct pg_buf b;
	const PgQuery__List *l;

	if (!n || n->node_case != PG_QUERY__NODE__NODE_LIST)
		return;
	l = n->list;
	if (!l->n_items)
		return;
	pg_buf_init(&b, 0);
	for (size_t i = 0; i < l->n_items; i++) {
		const PgQuery__Node *it = l->items[i];

		if (!it || it->node_case != PG_QUERY__NODE__NODE_STRING)
			goto out;
		if (i)
			pg_buf_u8(&b, '.');
		append_ident(&b, it->string->sval);
	}
	add_relation(w, &b);
out:
	pg_buf_free(&b);
}

/* ---- Settings that change how the server reads SQL -----------------------------------------
 * standard_conforming_strings (whether '\' escapes in '...'), client_encoding (an encoding
 * whose multibyte characters may end in '\' or a quote byte, such as SJIS, hides a quote from
 * the proxy's parser) and backslash_quote. A change to a value that keeps the server's reading
 * the proxy's is safe: standard_conforming_strings on, an ASCII-safe client_encoding,
 * backslash_quote off or safe_encoding. Anything else is unsafe: another value, one the
 * classifier cannot see (an expression, a parameter), RESET or DEFAULT of one of them (back to
 * a session-start value the classifier does not know), and any ALTER ROLE / DATABASE / SYSTEM
 * SET or RESET of them or RESET ALL (a later session's start). RESET ALL and DISCARD ALL go back
 * to this session's start values, which the proxy sees in the server's ParameterStatus at
 * startup, so they are not unsafe here.
 */

/* PostgreSQL's parse_bool: true, yes, on, 1 and their unique prefixes (1 yes, 0 no, -1 neither). */
static int pg_bool(const char *v)
{
	size_t n = strlen(v);

	if (!n)
		return -1;
	if (!strncasecmp(v, "true", n) || !strncasecmp(v, "yes", n) || (n >= 2 && !strncasecmp(v, "on", n)) ||
	    !strcmp(v, "1"))
		return 1;
	if (!strncasecmp(v, "false", n) || !strncasecmp(v, "no", n) || (n >= 2 && !strncasecmp(v, "off", n)) ||
	    !strcmp(v, "0"))
		return 0;
	return -1;
}

/* Encodings whose bytes of multibyte characters are all >= 0x80 (every server encoding). */
int pg_encoding_keeps_reading(const char *v)
{
	static const char *const safe[] = {
		"utf8", "unicode", "sqlascii", "latin1", "latin2", "latin3", "latin4", "latin5", "latin6",
		"latin7", "latin8", "latin9", "latin10", "iso88591", "iso88592", "iso88593", "iso88594",
		"iso88595", "iso88596", "iso88597", "iso88598", "iso88599", "iso885910", "iso885913",
		"iso885914", "iso885915", "iso885916", "win1250", "win1251", "win1252", "win1253",
		"win1254", "win1255", "win1256", "win1257", "win1258", "windows1250", "windows1251",
		"windows1252", "windows1253", "windows1254", "windows1255", "windows1256", "windows1257",
		"windows1258", "win866", "windows866", "win874", "windows874", "win", "alt", "abc",
		"koi8", "koi8r", "koi8u", "euccn", "eucjp", "euckr", "euctw", "eucjis2004",
		"muleinternal", "tcvn", "tcvn5712", "vscii",
	};
	char clean[32];
	size_t o = 0;

	/* as PostgreSQL's clean_encoding_name: letters and digits, lower case */
	for (const char *p = v; *p; p++) {
		if (!isalnum((unsigned char)*p))
			continue;
		if (o + 1 >= sizeof(clean))
			return 0;
		clean[o++] = (char)tolower((unsigned char)*p);
	}
	clean[o] = 0;
	for (size_t i = 0; i < AL_ARRAY_LEN(safe); i++)
		if (!strcmp(clean, safe[i]))
			return 1;
	return 0;
}

static int is_reading_setting(const char *name)
{
	return name && (!strcasecmp(name, "standard_conforming_strings") || !strcasecmp(name, "client_encoding") ||
			!strcasecmp(name, "backslash_quote"));
}

/* 1 if setting name to value (NULL: a value the classifier cannot see) keeps the reading. */
static int setting_is_safe(const char *name, const char *value)
{
	if (!is_reading_setting(name))
		return 1;
	if (!value)
		return 0;
	if (!strcasecmp(name, "standard_conforming_strings"))
		return pg_bool(value) == 1;
	if (!strcasecmp(name, "client_encoding"))
		return pg_encoding_keeps_reading(value);
	return !strcasecmp(value, "safe_encoding") || pg_bool(value) == 0;
}

/* A constant's text (through casts): a string, a number as written, true/false; else NULL. */
static const char *const_text(const PgQuery__Node *n)
{
	while (n && n->node_case == PG_QUERY__NODE__NODE_TYPE_CAST)
		n = n->type_cast->arg;
	if (!n || n->node_case != PG_QUERY__NODE__NODE_A_CONST || n->a_const->isnull)
		return NULL;
	switch (n->a_const->val_case) {
	case PG_QUERY__A__CONST__VAL_SVAL:
		return n->a_const->sval ? n->a_const->sval->sval : NULL;
	case PG_QUERY__A__CONST__VAL_FVAL:
		return n->a_const->fval ? n->a_const->fval->fval : NULL;
	case PG_QUERY__A__CONST__VAL_BOOLVAL:
		return n->a_const->boolval && n->a_const->boolval->boolval ? "true" : "false";
	default:
		return NULL;
	}
}

/* SET / RESET (also a function's SET clause). alter: it sets a later session's default. */
static void note_variable_set(struct walk *w, const PgQuery__VariableSetStmt *v, int alter)
{
	char num[32];
	const char *value = NULL;

	if (!v)
		return;
	if (v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL) {
		w->unsafe |= alter;
		return;
	}
	if (!is_reading_setting(v->name))
		return;
	if (alter) {
		w->unsafe = 1;
		return;
	}
	switch (v->kind) {
	case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_CURRENT:	/* the value it has */
		return;
	case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE:
		if (v->n_args != 1)
			break;
		if (v->args[0] && v->args[0]->node_case == PG_QUERY__NODE__NODE_A_CONST &&
		    v->args[0]->a_const->val_case == PG_QUERY__A__CONST__VAL_IVAL) {
			snprintf(num, sizeof(num), "%d", (int)v->args[0]->a_const->ival->ival);
			value = num;
		} else {
			value = const_text(v->args[0]);
		}
		break;
	default:
		break;
	}
	if (!setting_is_safe(v->name, value))
		w->unsafe = 1;
}

/* A relation given as a RangeVar named pg_settings in any schema: an UPDATE of it is set_config. */
static int is_pg_settings(const PgQuery__RangeVar *rv)
{
	return rv && rv->relname && !strcmp(rv->relname, "pg_settings");
}

/*
 * Functions that make a statement do more than its kind says: set_config('role', ...) is SET
 * ROLE, the file functions touch the server's filesystem, the large-object writers change
 * pg_largeobject, some run SQL text (or a cursor) Airlock never sees, the rest signal or
 * reconfigure the server. A call anywhere in any statement counts. Ranked: 1 utility, 2 dcl,
 * 3 copy_program, 4 do (runs SQL Airlock cannot read: as a DO block); dml: the write it is.
 * FN_ANY_REL: the tables it reads are named by text, so the statement's relations are unknown
 * ("*", which every deny or review rule on a relation meets). FN_ANY_SCHEMA: an extension's
 * function, found in whatever schema it was installed in; FN_PREFIX: every name it begins.
 * FN_SEQUENCE: it advances or sets the sequence its first argument names (add_sequence), an
 * update of it; currval and lastval only read.
 */
enum { FN_ANY_REL = 1, FN_ANY_SCHEMA = 2, FN_PREFIX = 4, FN_LARGE_OBJECT = 8, FN_SEQUENCE = 16 };

static const struct {
	const char *name;
	int rank, dml, flags;
} side_effect_fns[] = {
	{ "pg_read_file", 3, 0, 0 }, { "pg_read_binary_file", 3, 0, 0 }, { "pg_ls_dir", 3, 0, 0 },
	{ "pg_stat_file", 3, 0, 0 }, { "lo_import", 3, 0, FN_LARGE_OBJECT }, { "lo_export", 3, 0, 0 },
	{ "pg_ls_logdir", 3, 0, 0 }, { "pg_ls_waldir", 3, 0, 0 }, { "pg_ls_tmpdir", 3, 0, 0 },
	{ "pg_ls_archive_statusdir", 3, 0, 0 }, { "pg_file_write", 3, 0, 0 }, { "pg_file_rename", 3, 0, 0 },
	{ "pg_file_unlink", 3, 0, 0 }, { "pg_file_sync", 3, 0, 0 }, { "pg_logdir_ls", 3, 0, 0 },
	{ "pg_terminate_backend", 1, 0, 0 }, { "pg_cancel_backend", 1, 0, 0 }, { "pg_reload_conf", 1, 0, 0 },
	{ "pg_rotate_logfile", 1, 0, 0 }, { "pg_promote", 1, 0, 0 }, { "pg_switch_wal", 1, 0, 0 },
	{ "pg_create_restore_point", 1, 0, 0 }, { "pg_notify", 1, 0, 0 },
	{ "pg_backup_start", 1, 0, 0 }, { "pg_backup_stop", 1, 0, 0 }, { "pg_start_backup", 1, 0, 0 },
	{ "pg_stop_backup", 1, 0, 0 }, { "pg_wal_replay_pause", 1, 0, 0 }, { "pg_wal_replay_resume", 1, 0, 0 },
	{ "pg_log_backend_memory_contexts", 1, 0, 0 }, { "pg_stat_reset", 1, 0, FN_PREFIX },
	{ "pg_create_physical_replication_slot", 1, 0, 0 }, { "pg_create_logical_replication_slot", 1, 0, 0 },
	{ "pg_copy_physical_replication_slot", 1, 0, 0 }, { "pg_copy_logical_replication_slot", 1, 0, 0 },
	{ "pg_drop_replication_slot", 1, 0, 0 }, { "pg_replication_slot_advance", 1, 0, 0 },
	{ "pg_logical_emit_message", 1, 0, 0 },
	/* every table's changes */
	{ "pg_logical_slot_get_", 1, 0, FN_PREFIX | FN_ANY_REL },
	{ "pg_logical_slot_peek_", 1, 0, FN_PREFIX | FN_ANY_REL },
	/* large objects */
	{ "lo_from_bytea", 0, DML_INSERT, FN_LARGE_OBJECT }, { "lo_create", 0, DML_INSERT, FN_LARGE_OBJECT },
	{ "lo_creat", 0, DML_INSERT, FN_LARGE_OBJECT }, { "lo_put", 0, DML_UPDATE, FN_LARGE_OBJECT },
	{ "lowrite", 0, DML_UPDATE, FN_LARGE_OBJECT }, { "lo_truncate", 0, DML_UPDATE, FN_LARGE_OBJECT },
	{ "lo_truncate64", 0, DML_UPDATE, FN_LARGE_OBJECT }, { "lo_unlink", 0, DML_DELETE, FN_LARGE_OBJECT },
	/* sequences */
	{ "nextval", 0, DML_UPDATE, FN_SEQUENCE }, { "setval", 0, DML_UPDATE, FN_SEQUENCE },
	/* tables named by text */
	{ "table_to_xml", 0, 0, FN_PREFIX | FN_ANY_REL }, { "schema_to_xml", 0, 0, FN_PREFIX | FN_ANY_REL },
	{ "database_to_xml", 0, 0, FN_PREFIX | FN_ANY_REL },
	/* SQL text or a cursor run where Airlock cannot see it */
	{ "query_to_xml", 4, 0, FN_PREFIX | FN_ANY_REL }, { "cursor_to_xml", 4, 0, FN_PREFIX | FN_ANY_REL },
	{ "ts_stat", 4, 0, FN_ANY_REL }, { "ts_rewrite", 4, 0, FN_ANY_REL },
	{ "dblink", 4, 0, FN_PREFIX | FN_ANY_REL | FN_ANY_SCHEMA },
};

/* The name a call reaches: fn, schema.fn or db.schema.fn (the server takes a catalog name only
 * when it is the current database); *builtin: the schema, if named, is pg_catalog. */
static const char *call_name(const PgQuery__FuncCall *fc, int *builtin)
{
	if (!fc->n_funcname || fc->n_funcname > 3)
		return NULL;
	for (size_t i = 0; i < fc->n_funcname; i++)
		if (!fc->funcname[i] || fc->funcname[i]->node_case != PG_QUERY__NODE__NODE_STRING ||
		    !fc->funcname[i]->string->sval)
			return NULL;
	*builtin = fc->n_funcname == 1 || !strcmp(fc->funcname[fc->n_funcname - 2]->string->sval, "pg_catalog");
	return fc->funcname[fc->n_funcname - 1]->string->sval;
}

/* Argument pos (0-based) of a call, or the one named name (f(name => x)); NULL if absent. */
static const PgQuery__Node *call_arg(const PgQuery__FuncCall *fc, size_t pos, const char *name)
{
	for (size_t i = 0; i < fc->n_args; i++) {
		const PgQuery__Node *a = fc->args[i];

		if (a && a->node_case == PG_QUERY__NODE__NODE_NAMED_ARG_EXPR) {
			if (a->named_arg_expr->name && !strcmp(a->named_arg_expr->name, name))
				return a->named_arg_expr->arg;
		} else if (i == pos) {
			return a;
		}
	}
	return NULL;
}

static void add_relation_text(struct walk *w, const char *name)
{
	struct pg_buf b;

	pg_buf_init(&b, 0);
	pg_buf_bytes(&b, name, strlen(name));
	add_relation(w, &b);
	pg_buf_free(&b);
}

/* A constant string (through casts: 's'::regclass, regclass 's'), else NULL. */
static const char *const_string(const PgQuery__Node *n)
{
	while (n && n->node_case == PG_QUERY__NODE__NODE_TYPE_CAST)
		n = n->type_cast->arg;
	if (!n || n->node_case != PG_QUERY__NODE__NODE_A_CONST || n->a_const->isnull ||
	    n->a_const->val_case != PG_QUERY__A__CONST__VAL_SVAL || !n->a_const->sval)
		return NULL;
	return n->a_const->sval->sval;
}

/* Past the spaces PostgreSQL's scanner_isspace takes (a vertical tab only from 16 on). */
static const char *skip_blanks(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f')
		s++;
	return s;
}

/*
 * The relation a sequence function's argument names, as regclass input reads a string: all
 * digits is an OID; else [catalog.][schema.]name, parts separated by '.' with spaces around
 * them allowed, an unquoted part folded to lower case, a "quoted" one ("" a quote) exact, at
 * most 63 bytes a part. What this cannot name surely is "*" (any relation, as for tables
 * named by text): an expression or parameter, an OID, an unquoted part with a byte >= 0x80
 * (the server's folding of it depends on the encoding), a '"' or vertical tab in an unquoted
 * part, a name the server would refuse.
 */
static void add_sequence(struct walk *w, const PgQuery__Node *arg)
{
	const char *s = const_string(arg);
	struct pg_buf b;
	char part[64];
	int parts = 0;

	if (!s || !*s || strspn(s, "0123456789") == strlen(s)) {
		add_relation_text(w, "*");
		return;
	}
	pg_buf_init(&b, 0);
	for (;;) {
		size_t o = 0;

		s = skip_blanks(s);
		if (*s == '"') {
			for (s++; *s && !(*s == '"' && s[1] != '"'); s++) {
				s += *s == '"';
				if (o + 1 >= sizeof(part))
					goto unknown;
				part[o++] = *s;
			}
			if (*s++ != '"')
				goto unknown;
		} else {
			for (; *s && *s != '.' && !is_space(*s); s++) {
				if ((unsigned char)*s >= 0x80 || *s == '"' || o + 1 >= sizeof(part))
					goto unknown;
				part[o++] = *s >= 'A' && *s <= 'Z' ? (char)(*s - 'A' + 'a') : *s;
			}
		}
		part[o] = 0;
		if (!o || ++parts > 3 || *s == '\v')
			goto unknown;
		append_ident(&b, part);
		s = skip_blanks(s);
		if (!*s)
			break;
		if (*s++ != '.')
			goto unknown;
		pg_buf_u8(&b, '.');
	}
	add_relation(w, &b);
	pg_buf_free(&b);
	return;
unknown:
	pg_buf_free(&b);
	add_relation_text(w, "*");
}

static void note_func_call(struct walk *w, const PgQuery__FuncCall *fc)
{
	int builtin = 0;
	const char *name = call_name(fc, &builtin);
	int rank = 0;

	if (!name)
		return;
	if (builtin && !strcmp(name, "set_config")) {
		const char *setting = const_text(call_arg(fc, 0, "setting_name"));

		/* Like SET: a role change is dcl, anything else utility; a name we cannot see is dcl
		 * and may be one the server's reading depends on. */
		rank = !setting || !strcasecmp(setting, "role") || !strcasecmp(setting, "session_authorization") ? 2 : 1;
		if (!setting || !setting_is_safe(setting, const_text(call_arg(fc, 1, "new_value"))))
			w->unsafe = 1;
		w->side_effect = 1;
	}
	for (size_t i = 0; i < AL_ARRAY_LEN(side_effect_fns); i++) {
		int flags = side_effect_fns[i].flags;
		size_t n = strlen(side_effect_fns[i].name);

		if ((!builtin && !(flags & FN_ANY_SCHEMA)) ||
		    ((flags & FN_PREFIX) ? strncmp(name, side_effect_fns[i].name, n) : strcmp(name, side_effect_fns[i].name)))
			continue;
		w->side_effect = 1;
		if (side_effect_fns[i].rank > rank)
			rank = side_effect_fns[i].rank;
		w->dml |= side_effect_fns[i].dml;
		w->fn_dml |= side_effect_fns[i].dml;
		if (flags & FN_SEQUENCE)
			add_sequence(w, call_arg(fc, 0, ""));
		if (flags & FN_ANY_REL)
			add_relation_text(w, "*");
		if (flags & FN_LARGE_OBJECT)
			add_relation_text(w, "pg_catalog.pg_largeobject");
	}
	if (rank > w->fn_rank)
		w->fn_rank = rank;
}

/* ---- Conditions that bound nothing ---------------------------------------------------------
 * A write is unbounded when its condition may be true for every row. What this proves:
 *
 * - A condition that mentions no column of a row (no column reference, no CURRENT OF) is the
 *   same for every row: it takes all of them or none (WHERE true, 1 = 1, 1 IN (1), NOT false,
 *   $1, EXISTS (SELECT 1)). Its value is never read: WHERE 1 = 2 counts too.
 * - An expression compared with itself (the same tree: names as written, the same operators
 *   and calls) has one value whatever the row: X = X, X >= X, X <= X, X IN (..., X, ...) and
 *   X LIKE (ILIKE) '%' are true, X <> X, X < X, X > X, X NOT IN (..., X, ...) and X NOT LIKE
 *   '%' false, for every row where X is not null; X IS NOT DISTINCT FROM X is true and X IS
 *   DISTINCT FROM X false for every row. That WHERE id = id leaves out the rows whose id is
 *   null does not make it a bound: it selects by no value the agent gave (one who means the
 *   rows that have an id writes id IS NOT NULL), and on the key columns it is written with
 *   (NOT NULL) it is every row. Operators are taken at their usual meaning, though a
 *   user-defined '=' need not be reflexive and random() = random() is seldom true: where that
 *   is wrong a bounded write is held as unbounded, none is let through.
 * - Arms of one OR that are each other's opposite make it true for every row: X IS NULL and X
 *   IS NOT NULL, X IS TRUE and X IS NOT TRUE (FALSE, UNKNOWN alike), P and NOT P (where P is
 *   not null, as above; a row value with some null fields is neither null nor not null:
 *   counted all the same). Of one AND, they make it false for every row.
 * - Around such parts AND, OR and NOT decide: a condition may be true for every row if an OR
 *   arm may be, or every AND arm may be (NOT turns that about).
 *
 * Numbers compare equal whatever their values: the classification cache reuses the answer for
 * strings that differ only in numbers, so it must not depend on them (x[1] = x[2] counts as a
 * self-comparison, like x[1] = x[1]). What this cannot prove: a condition true for every row
 * because of the data (id > 0, created_at < now(), status IN (every status there is)); column
 * references inside subqueries, taken as the row's (WHERE id IN (SELECT id FROM t)); names
 * that may be one column written otherwise (t.id = id: another table of FROM or USING may
 * have an id); a tautology used as a value ((id = id) = true, COALESCE(id = id, true)); ANY,
 * ALL, BETWEEN, SIMILAR TO, regular expressions, LIKE with ESCAPE. The conditions of one
 * statement get COND_BUDGET comparisons (of a message, or of two arms) between them, a few
 * milliseconds: once they are spent, a condition is taken as one that may be true for every
 * row.
 */
#define COND_BUDGET 1000000L

static int mentions_row(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;

	if (d == &pg_query__column_ref__descriptor || d == &pg_query__current_of_expr__descriptor)
		return 1;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)(base + f->offset);

			for (size_t j = 0; j < n; j++)
				if (arr[j] && mentions_row(arr[j]))
					return 1;
		} else {
			const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + f->offset);

			if (sub && mentions_row(sub))
				return 1;
		}
	}
	return 0;
}

static int numeric_const(const ProtobufCMessage *m)
{
	const PgQuery__AConst *c = (const PgQuery__AConst *)m;

	return m->descriptor == &pg_query__a__const__descriptor && !c->isnull &&
	       (c->val_case == PG_QUERY__A__CONST__VAL_IVAL || c->val_case == PG_QUERY__A__CONST__VAL_FVAL);
}

/* Bytes a value of a field of type t takes in its message (an element, if repeated). */
static size_t value_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:	/* 32-bit integers, float, enum */
		return 4;
	}
}

static int same_tree(const ProtobufCMessage *a, const ProtobufCMessage *b, long *budget);

static int same_value(const ProtobufCFieldDescriptor *f, const void *x, const void *y, long *budget)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *p = *(const ProtobufCMessage *const *)x;
		const ProtobufCMessage *q = *(const ProtobufCMessage *const *)y;

		return (!p && !q) || (p && q && same_tree(p, q, budget));
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *p = *(const char *const *)x, *q = *(const char *const *)y;

		return (!p && !q) || (p && q && !strcmp(p, q));
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *p = x, *q = y;

		return p->len == q->len && (!p->len || !memcmp(p->data, q->data, p->len));
	}
	default:
		return !memcmp(x, y, value_size(f->type));
	}
}

/*
 * 1 if a and b are the same expression: the same tree but for where it was written, any
 * numeric constant equal to any other. Each message compared costs one of *budget; once it
 * is spent, what is left counts as the same (the answer that holds the write).
 */
static int same_tree(const ProtobufCMessage *a, const ProtobufCMessage *b, long *budget)
{
	const ProtobufCMessageDescriptor *d = a->descriptor;

	if (--*budget < 0)
		return 1;
	if (d != b->descriptor)
		return 0;
	if (numeric_const(a) && numeric_const(b))
		return 1;
	if (d == &pg_query__node__descriptor) {
		/* one oneof of some 250 fields: straight to the one set */
		const ProtobufCFieldDescriptor *f;
		PgQuery__Node__NodeCase c = ((const PgQuery__Node *)a)->node_case;

		if (c != ((const PgQuery__Node *)b)->node_case)
			return 0;
		f = protobuf_c_message_descriptor_get_field(d, (unsigned)c);
		return !f || same_value(f, (const char *)a + f->offset, (const char *)b + f->offset, budget);
	}
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *x = (const char *)a + f->offset, *y = (const char *)b + f->offset;
		const char *qa = (const char *)a + f->quantifier_offset;
		const char *qb = (const char *)b + f->quantifier_offset;

		if (f->type == PROTOBUF_C_TYPE_INT32 && !strcmp(f->name, "location"))
			continue;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)qa != *(const uint32_t *)qb)
				return 0;
			if (*(const uint32_t *)qa != f->id)
				continue;
		} else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
			   f->type != PROTOBUF_C_TYPE_STRING) {
			if (*(const protobuf_c_boolean *)qa != *(const protobuf_c_boolean *)qb)
				return 0;
			if (!*(const protobuf_c_boolean *)qa)
				continue;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)qa, sz = value_size(f->type);
			const char *pa = *(const char *const *)x, *pb = *(const char *const *)y;

			if (n != *(const size_t *)qb)
				return 0;
			for (size_t j = 0; j < n; j++)
				if (!same_value(f, pa + j * sz, pb + j * sz, budget))
					return 0;
		} else if (!same_value(f, x, y, budget)) {
			return 0;
		}
	}
	return 1;
}

static int same_node(const PgQuery__Node *a, const PgQuery__Node *b, long *budget)
{
	return a && b && same_tree(&a->base, &b->base, budget);
}

enum { ROWS_UNKNOWN, ROWS_TRUE, ROWS_FALSE };

/* What a comparison of an expression with itself is for every row (see above), else ROWS_UNKNOWN. */
static int self_compared(const PgQuery__Node *n, long *budget)
{
	static const char *const is_true[] = { "=", ">=", "<=" }, *const is_false[] = { "<>", "!=", "<", ">" };
	const PgQuery__AExpr *e;
	const PgQuery__Node *op;
	const char *name = NULL, *pattern;

	if (n->node_case != PG_QUERY__NODE__NODE_A_EXPR)
		return ROWS_UNKNOWN;
	e = n->a_expr;
	op = e->n_name ? e->name[e->n_name - 1] : NULL;
	if (op && op->node_case == PG_QUERY__NODE__NODE_STRING)
		name = op->string->sval;
	if (!name || !e->lexpr || !e->rexpr)
		return ROWS_UNKNOWN;
	switch (e->kind) {
	case PG_QUERY__A__EXPR__KIND__AEXPR_OP:
		for (size_t i = 0; i < AL_ARRAY_LEN(is_true); i++)
			if (!strcmp(name, is_true[i]))
				return same_node(e->lexpr, e->rexpr, budget) ? ROWS_TRUE : ROWS_UNKNOWN;
		for (size_t i = 0; i < AL_ARRAY_LEN(is_false); i++)
			if (!strcmp(name, is_false[i]))
				return same_node(e->lexpr, e->rexpr, budget) ? ROWS_FALSE : ROWS_UNKNOWN;
		return ROWS_UNKNOWN;
	case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_DISTINCT:
		return same_node(e->lexpr, e->rexpr, budget) ? ROWS_TRUE : ROWS_UNKNOWN;
	case PG_QUERY__A__EXPR__KIND__AEXPR_DISTINCT:
		return same_node(e->lexpr, e->rexpr, budget) ? ROWS_FALSE : ROWS_UNKNOWN;
	case PG_QUERY__A__EXPR__KIND__AEXPR_IN:
		/* x IN (...) is = ANY of the list, x NOT IN (...) <> ALL of it */
		if (e->rexpr->node_case != PG_QUERY__NODE__NODE_LIST)
			return ROWS_UNKNOWN;
		if (strcmp(name, "=") && strcmp(name, "<>"))
			return ROWS_UNKNOWN;
		for (size_t i = 0; i < e->rexpr->list->n_items; i++)
			if (same_node(e->lexpr, e->rexpr->list->items[i], budget))
				return name[0] == '=' ? ROWS_TRUE : ROWS_FALSE;
		return ROWS_UNKNOWN;
	case PG_QUERY__A__EXPR__KIND__AEXPR_LIKE:
	case PG_QUERY__A__EXPR__KIND__AEXPR_ILIKE:
		/* a pattern of only '%' matches any string (the default escape is a backslash) */
		pattern = const_string(e->rexpr);
		if (!pattern || !*pattern || strspn(pattern, "%") != strlen(pattern))
			return ROWS_UNKNOWN;
		return name[0] == '!' ? ROWS_FALSE : ROWS_TRUE;
	default:
		return ROWS_UNKNOWN;
	}
}

/* The operand of NOT x, else NULL. */
static const PgQuery__Node *negated(const PgQuery__Node *n)
{
	if (n->node_case != PG_QUERY__NODE__NODE_BOOL_EXPR || n->bool_expr->boolop != PG_QUERY__BOOL_EXPR_TYPE__NOT_EXPR ||
	    n->bool_expr->n_args != 1)
		return NULL;
	return n->bool_expr->args[0];
}

/* 1 if one of a and b is true wherever the other is false (see above). */
static int opposite(const PgQuery__Node *a, const PgQuery__Node *b, long *budget)
{
	--*budget;
	if (a->node_case == PG_QUERY__NODE__NODE_NULL_TEST && b->node_case == PG_QUERY__NODE__NODE_NULL_TEST)
		return a->null_test->nulltesttype != b->null_test->nulltesttype && a->null_test->nulltesttype &&
		       b->null_test->nulltesttype && same_node(a->null_test->arg, b->null_test->arg, budget);
	if (a->node_case == PG_QUERY__NODE__NODE_BOOLEAN_TEST && b->node_case == a->node_case) {
		/* IS TRUE and IS NOT TRUE (1, 2), IS FALSE and IS NOT FALSE (3, 4), IS UNKNOWN and
		 * IS NOT UNKNOWN (5, 6) */
		int x = a->boolean_test->booltesttype, y = b->boolean_test->booltesttype;

		return x >= 1 && x <= 6 && y >= 1 && y <= 6 && x != y && (x - 1) / 2 == (y - 1) / 2 &&
		       same_node(a->boolean_test->arg, b->boolean_test->arg, budget);
	}
	return same_node(negated(a), b, budget) || same_node(negated(b), a, budget);
}

/* An arm that may have an opposite: IS [NOT] NULL, IS [NOT] TRUE/FALSE/UNKNOWN, NOT x. */
static int opposite_candidate(const PgQuery__Node *n)
{
	return n->node_case == PG_QUERY__NODE__NODE_NULL_TEST || n->node_case == PG_QUERY__NODE__NODE_BOOLEAN_TEST ||
	       negated(n);
}

static int always(const PgQuery__Node *n, int truth, long *budget)
{
	const PgQuery__BoolExpr *b;
	int any = truth ? PG_QUERY__BOOL_EXPR_TYPE__OR_EXPR : PG_QUERY__BOOL_EXPR_TYPE__AND_EXPR, v;

	if (!n)
		return truth;
	if (!mentions_row(&n->base))
		return 1;
	if (*budget < 0)
		return 1;
	v = self_compared(n, budget);
	if (*budget < 0)
		return 1;
	if (v != ROWS_UNKNOWN)
		return v == (truth ? ROWS_TRUE : ROWS_FALSE);
	if (n->node_case != PG_QUERY__NODE__NODE_BOOL_EXPR)
		return 0;
	b = n->bool_expr;
	if (b->boolop == PG_QUERY__BOOL_EXPR_TYPE__NOT_EXPR)
		return b->n_args == 1 && always(b->args[0], !truth, budget);
	/* opposite arms: an OR true, an AND false, for every row */
	for (size_t i = 0; b->boolop == (PgQuery__BoolExprType)any && i < b->n_args; i++) {
		if (!b->args[i] || !opposite_candidate(b->args[i]))
			continue;
		for (size_t j = 0; j < b->n_args; j++)
			if (j != i && b->args[j] && (opposite(b->args[i], b->args[j], budget) || *budget < 0))
				return 1;
	}
	for (size_t i = 0; i < b->n_args; i++) {
		v = always(b->args[i], truth, budget);
		if (b->boolop == (PgQuery__BoolExprType)any && v)
			return 1;
		if (b->boolop != (PgQuery__BoolExprType)any && !v)
			return 0;
	}
	return b->boolop != (PgQuery__BoolExprType)any;
}

/* 1 if n (a WHERE, ON or WHEN condition; NULL: none) may be true for every row. */
static int may_be_always(struct walk *w, const PgQuery__Node *n)
{
	return always(n, 1, &w->cond_budget);
}

/* The kinds of a MERGE's actions: WHEN MATCHED THEN DELETE deletes, UPDATE updates, INSERT inserts. */
static unsigned merge_actions(const PgQuery__MergeStmt *m)
{
	unsigned k = 0;

	for (size_t i = 0; i < m->n_merge_when_clauses; i++) {
		const PgQuery__Node *c = m->merge_when_clauses[i];

		if (!c || c->node_case != PG_QUERY__NODE__NODE_MERGE_WHEN_CLAUSE)
			continue;
		switch (c->merge_when_clause->command_type) {
		case PG_QUERY__CMD_TYPE__CMD_DELETE:
			k |= 1u << PG_KIND_DELETE;
			break;
		case PG_QUERY__CMD_TYPE__CMD_UPDATE:
			k |= 1u << PG_KIND_UPDATE;
			break;
		case PG_QUERY__CMD_TYPE__CMD_INSERT:
			k |= 1u << PG_KIND_INSERT;
			break;
		default:
			break;
		}
	}
	return k;
}

/* A MERGE changes every row its join takes when its ON may always hold and a WHEN MATCHED
 * clause that updates or deletes has no condition that could bound it. */
static int merge_unbounded(struct walk *w, const PgQuery__MergeStmt *m)
{
	if (!may_be_always(w, m->join_condition))
		return 0;
	for (size_t i = 0; i < m->n_merge_when_clauses; i++) {
		const PgQuery__Node *c = m->merge_when_clauses[i];
		const PgQuery__MergeWhenClause *wc;

		if (!c || c->node_case != PG_QUERY__NODE__NODE_MERGE_WHEN_CLAUSE)
			continue;
		wc = c->merge_when_clause;
		if (wc->matched && (wc->command_type == PG_QUERY__CMD_TYPE__CMD_UPDATE ||
				    wc->command_type == PG_QUERY__CMD_TYPE__CMD_DELETE) &&
		    (!wc->condition || may_be_always(w, wc->condition)))
			return 1;
	}
	return 0;
}

static void walk_msg(struct walk *w, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *skip);

static void walk_fields(struct walk *w, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *skip)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;

	for (unsigned i = 0; i < d->n_fields && !w->failed; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];

		if (f->type != PROTOBUF_C_TYPE_MESSAGE || f == skip)
			continue;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t which = *(const uint32_t *)(base + f->quantifier_offset);

			if (which != f->id)
				continue;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)(base + f->offset);

			for (size_t j = 0; j < n && !w->failed; j++)
				if (arr[j])
					walk_msg(w, arr[j], NULL);
		} else {
			const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + f->offset);

			if (sub)
				walk_msg(w, sub, NULL);
		}
	}
}

/* Walks a statement that may carry a WITH clause: CTE names become visible to later CTEs (all
 * of them to each other when RECURSIVE) and to the statement body, and only there. */
static void walk_with(struct walk *w, const ProtobufCMessage *m, const PgQuery__WithClause *with,
		      const ProtobufCFieldDescriptor *with_field)
{
	size_t saved = w->n_ctes;

	if (with->recursive)
		for (size_t i = 0; i < with->n_ctes; i++) {
			const PgQuery__Node *c = with->ctes[i];

			if (c && c->node_case == PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR &&
			    push_cte(w, c->common_table_expr->ctename))
				goto out;
		}
	for (size_t i = 0; i < with->n_ctes && !w->failed; i++) {
		const PgQuery__Node *c = with->ctes[i];

		if (!c)
			continue;
		walk_msg(w, &c->base, NULL);
		if (!with->recursive && c->node_case == PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR &&
		    push_cte(w, c->common_table_expr->ctename))
			goto out;
	}
	walk_fields(w, m, with_field);
out:
	w->n_ctes = saved;
}

static const ProtobufCFieldDescriptor *field_named(const ProtobufCMessage *m, const char *name)
{
	return protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
}

static void walk_msg(struct walk *w, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *skip)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const PgQuery__WithClause *with = NULL;

	if (w->failed)
		return;
	if (++w->depth > WALK_MAX_DEPTH) {
		w->failed = w->too_deep = 1;
		goto out;
	}
	if (d == &pg_query__range_var__descriptor) {
		add_range_var(w, (const PgQuery__RangeVar *)m);
		goto out;
	}
	if (d == &pg_query__a__const__descriptor &&
	    (((const PgQuery__AConst *)m)->val_case == PG_QUERY__A__CONST__VAL_IVAL ||
	     ((const PgQuery__AConst *)m)->val_case == PG_QUERY__A__CONST__VAL_FVAL))
		w->numerics++;
	/* Code or settings in constants: DO and function bodies, CALL arguments, SET values, and
	 * definitions whose expressions run later (rules, triggers, policies, views). */
	if (d == &pg_query__do_stmt__descriptor || d == &pg_query__call_stmt__descriptor ||
	    d == &pg_query__variable_set_stmt__descriptor || d == &pg_query__create_function_stmt__descriptor ||
	    d == &pg_query__alter_function_stmt__descriptor || d == &pg_query__rule_stmt__descriptor ||
	    d == &pg_query__create_trig_stmt__descriptor || d == &pg_query__create_policy_stmt__descriptor ||
	    d == &pg_query__alter_policy_stmt__descriptor || d == &pg_query__view_stmt__descriptor)
		w->exact = 1;
	if (d == &pg_query__func_call__descriptor)
		note_func_call(w, (const PgQuery__FuncCall *)m);
	else if (d == &pg_query__variable_set_stmt__descriptor)
		note_variable_set(w, (const PgQuery__VariableSetStmt *)m, 0);
	else if (d == &pg_query__alter_role_set_stmt__descriptor)
		note_variable_set(w, ((const PgQuery__AlterRoleSetStmt *)m)->setstmt, 1);
	else if (d == &pg_query__alter_database_set_stmt__descriptor)
		note_variable_set(w, ((const PgQuery__AlterDatabaseSetStmt *)m)->setstmt, 1);
	else if (d == &pg_query__alter_system_stmt__descriptor)
		note_variable_set(w, ((const PgQuery__AlterSystemStmt *)m)->setstmt, 1);
	if (d == &pg_query__select_stmt__descriptor) {
		with = ((const PgQuery__SelectStmt *)m)->with_clause;
	} else if (d == &pg_query__insert_stmt__descriptor) {
		const PgQuery__InsertStmt *x = (const PgQuery__InsertStmt *)m;

		w->dml |= DML_INSERT;
		if (x->on_conflict_clause &&
		    x->on_conflict_clause->action == PG_QUERY__ON_CONFLICT_ACTION__ONCONFLICT_UPDATE)
			w->also |= 1u << PG_KIND_UPDATE;
		with = x->with_clause;
	} else if (d == &pg_query__update_stmt__descriptor) {
		const PgQuery__UpdateStmt *u = (const PgQuery__UpdateStmt *)m;

		w->dml |= DML_UPDATE;
		if (!u->where_clause)
			w->unbounded = 1;
		else if (may_be_always(w, u->where_clause))
			w->unbounded = w->const_where = 1;
		/* pg_settings' update rule calls set_config with names the classifier cannot see */
		if (is_pg_settings(u->relation)) {
			w->unsafe = w->side_effect = 1;
			if (w->fn_rank < 2)
				w->fn_rank = 2;
		}
		with = u->with_clause;
	} else if (d == &pg_query__delete_stmt__descriptor) {
		const PgQuery__DeleteStmt *x = (const PgQuery__DeleteStmt *)m;

		w->dml |= DML_DELETE;
		if (!x->where_clause)
			w->unbounded = 1;
		else if (may_be_always(w, x->where_clause))
			w->unbounded = w->const_where = 1;
		with = x->with_clause;
	} else if (d == &pg_query__merge_stmt__descriptor) {
		w->dml |= DML_MERGE;
		w->also |= merge_actions((const PgQuery__MergeStmt *)m);
		if (merge_unbounded(w, (const PgQuery__MergeStmt *)m))
			w->unbounded = w->const_where = 1;
		with = ((const PgQuery__MergeStmt *)m)->with_clause;
	} else if (d == &pg_query__drop_stmt__descriptor) {
		const PgQuery__DropStmt *x = (const PgQuery__DropStmt *)m;

		switch (x->remove_type) {
		case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
		case PG_QUERY__OBJECT_TYPE__OBJECT_VIEW:
		case PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW:
		case PG_QUERY__OBJECT_TYPE__OBJECT_INDEX:
		case PG_QUERY__OBJECT_TYPE__OBJECT_SEQUENCE:
		case PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_TABLE:
			for (size_t i = 0; i < x->n_objects; i++)
				add_name_list(w, x->objects[i]);
			break;
		default:
			break;
		}
	}
	if (with && !skip)
		walk_with(w, m, with, field_named(m, "with_clause"));
	else
		walk_fields(w, m, skip);
out:
	w->depth--;
}

/* ---- Kinds --------------------------------------------------------------------------------- */

static enum pg_kind dml_kind(int dml)
{
	if (dml & DML_DELETE)
		return PG_KIND_DELETE;
	if (dml & DML_MERGE)
		return PG_KIND_MERGE;
	if (dml & DML_UPDATE)
		return PG_KIND_UPDATE;
	if (dml & DML_INSERT)
		return PG_KIND_INSERT;
	return PG_KIND_READ;
}

/*
 * EXPLAIN runs the statement only with ANALYZE. PostgreSQL reads the options in order and the
 * last ANALYZE wins (EXPLAIN (ANALYZE false, ANALYZE true) runs it); its value is read as
 * defGetBoolean reads it: none, 1, true or on is on; 0, false or off is off; anything else is
 * an error, counted as on here (fail closed).
 */
static int explain_analyzes(const PgQuery__ExplainStmt *e)
{
	int on = 0;

	for (size_t i = 0; i < e->n_options; i++) {
		const PgQuery__Node *o = e->options[i];
		const PgQuery__DefElem *de;

		if (!o || o->node_case != PG_QUERY__NODE__NODE_DEF_ELEM)
			continue;
		de = o->def_elem;
		if (!de->defname || strcasecmp(de->defname, "analyze"))
			continue;
		on = 1;
		if (!de->arg)
			continue;
		if (de->arg->node_case == PG_QUERY__NODE__NODE_INTEGER) {
			on = de->arg->integer->ival != 0;
		} else if (de->arg->node_case == PG_QUERY__NODE__NODE_STRING && de->arg->string->sval) {
			const char *v = de->arg->string->sval;

			on = !(!strcasecmp(v, "false") || !strcasecmp(v, "off"));
		} else if (de->arg->node_case == PG_QUERY__NODE__NODE_BOOLEAN) {
			on = de->arg->boolean->boolval;
		}
	}
	return on;
}

static enum pg_kind variable_set_kind(const PgQuery__VariableSetStmt *v)
{
	const char *n = v->name ? v->name : "";

	/* GUC names are case-insensitive: SET "ROLE" is SET ROLE. */
	if (!strcasecmp(n, "role") || !strcasecmp(n, "session_authorization"))
		return PG_KIND_DCL;
	if (!strcasecmp(n, "transaction") || !strcasecmp(n, "transaction snapshot") ||
	    !strcasecmp(n, "transaction_isolation") || !strcasecmp(n, "transaction_read_only") ||
	    !strcasecmp(n, "transaction_deferrable"))
		return PG_KIND_TRANSACTION;
	return PG_KIND_UTILITY;
}

/*
 * The kind of one statement node, given what the walk of the whole statement found. Statement
 * types not named here are DDL: an unknown statement is never a read.
 */
static enum pg_kind kind_of(const PgQuery__Node *n, const struct walk *w)
{
	if (!n)
		return PG_KIND_UTILITY;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		if (n->select_stmt->into_clause)
			return PG_KIND_DDL;
		return dml_kind(w->dml);
	case PG_QUERY__NODE__NODE_INSERT_STMT:
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
	case PG_QUERY__NODE__NODE_DELETE_STMT:
	case PG_QUERY__NODE__NODE_MERGE_STMT:
		return dml_kind(w->dml);
	case PG_QUERY__NODE__NODE_TRUNCATE_STMT:
		return PG_KIND_DELETE;
	case PG_QUERY__NODE__NODE_COPY_STMT: {
		const PgQuery__CopyStmt *c = n->copy_stmt;

		/* A server-side file is the server's filesystem, as dangerous as a program. */
		if (c->is_program || (c->filename && *c->filename))
			return PG_KIND_COPY_PROGRAM;
		if (w->dml)
			return dml_kind(w->dml);
		return PG_KIND_COPY;
	}
	case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
		if (explain_analyzes(n->explain_stmt))
			return kind_of(n->explain_stmt->query, w);
		return PG_KIND_READ;
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
		return kind_of(n->prepare_stmt->query, w);
	case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
		return kind_of(n->declare_cursor_stmt->query, w);
	case PG_QUERY__NODE__NODE_FETCH_STMT:
		return PG_KIND_READ;
	case PG_QUERY__NODE__NODE_DO_STMT:
		return PG_KIND_DO;
	case PG_QUERY__NODE__NODE_CALL_STMT:
		return PG_KIND_CALL;
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
		return PG_KIND_TRANSACTION;
	case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
		return variable_set_kind(n->variable_set_stmt);
	case PG_QUERY__NODE__NODE_GRANT_STMT:
	case PG_QUERY__NODE__NODE_GRANT_ROLE_STMT:
	case PG_QUERY__NODE__NODE_CREATE_ROLE_STMT:
	case PG_QUERY__NODE__NODE_ALTER_ROLE_STMT:
	case PG_QUERY__NODE__NODE_ALTER_ROLE_SET_STMT:
	case PG_QUERY__NODE__NODE_DROP_ROLE_STMT:
	case PG_QUERY__NODE__NODE_ALTER_DEFAULT_PRIVILEGES_STMT:
	case PG_QUERY__NODE__NODE_REASSIGN_OWNED_STMT:
	case PG_QUERY__NODE__NODE_DROP_OWNED_STMT:
		return PG_KIND_DCL;
	case PG_QUERY__NODE__NODE_RENAME_STMT:
		if (n->rename_stmt->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_ROLE)
			return PG_KIND_DCL;
		return PG_KIND_DDL;
	case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
	case PG_QUERY__NODE__NODE_VACUUM_STMT:
	case PG_QUERY__NODE__NODE_LISTEN_STMT:
	case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
	case PG_QUERY__NODE__NODE_NOTIFY_STMT:
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
	case PG_QUERY__NODE__NODE_CHECK_POINT_STMT:
	case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
	case PG_QUERY__NODE__NODE_EXECUTE_STMT:
	case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
	case PG_QUERY__NODE__NODE_CONSTRAINTS_SET_STMT:
	case PG_QUERY__NODE__NODE_LOCK_STMT:
	case PG_QUERY__NODE__NODE_CLUSTER_STMT:
	case PG_QUERY__NODE__NODE_REINDEX_STMT:
		return PG_KIND_UTILITY;
	default:
		return PG_KIND_DDL;
	}
}

/* What a statement runs: EXPLAIN and CREATE TABLE AS run the statement inside them (an EXPLAIN
 * of an EXECUTE evaluates its parameters and, with ANALYZE, runs it). */
static const PgQuery__Node *inner_stmt(const PgQuery__Node *n)
{
	for (;;) {
		if (n->node_case == PG_QUERY__NODE__NODE_EXPLAIN_STMT && n->explain_stmt->query)
			n = n->explain_stmt->query;
		else if (n->node_case == PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT && n->create_table_as_stmt->query)
			n = n->create_table_as_stmt->query;
		else
			return n;
	}
}

/*
 * A statement's kind with what its function calls do: the most dangerous wins. A utility
 * function (pg_terminate_backend, ...) makes a read or a COPY out utility and leaves any other
 * kind; set_config('role', ...) makes any statement dcl, a server-file function copy_program
 * and a function that runs SQL text do, unless the statement is already worse (do; or
 * copy_program over dcl).
 */
static const enum pg_kind fn_kinds[] = { PG_KIND_READ, PG_KIND_UTILITY, PG_KIND_DCL, PG_KIND_COPY_PROGRAM,
					 PG_KIND_DO };

static enum pg_kind with_functions(enum pg_kind k, int fn_rank)
{
	enum pg_kind f = fn_kinds[fn_rank];

	if (!fn_rank)
		return k;
	if (fn_rank == 1)
		return k == PG_KIND_READ || k == PG_KIND_COPY ? f : k;
	if (k == PG_KIND_DO || (k == PG_KIND_COPY_PROGRAM && f == PG_KIND_DCL))
		return k;
	return f;
}

/*
 * Every kind the statement is (see pg.h): its own kind before its functions, each write it
 * runs when it is a write or a COPY (writing CTEs, a MERGE's actions, an upsert's update), the
 * insert of a COPY FROM, and its functions' kinds: the write a large-object or sequence
 * function does, in any statement (CALL p(nextval('s')), CREATE TABLE AS SELECT lo_unlink(1)),
 * and the kind of the others.
 */
static unsigned kinds_of(const PgQuery__Node *n, enum pg_kind k, const struct walk *w)
{
	static const struct {
		int dml;
		enum pg_kind kind;
	} dml_bits[] = { { DML_INSERT, PG_KIND_INSERT }, { DML_UPDATE, PG_KIND_UPDATE },
			 { DML_DELETE, PG_KIND_DELETE }, { DML_MERGE, PG_KIND_MERGE } };
	unsigned kinds = 1u << k;

	if (pg_kind_is_dml(k) || k == PG_KIND_COPY || k == PG_KIND_COPY_PROGRAM) {
		for (size_t i = 0; i < AL_ARRAY_LEN(dml_bits); i++)
			if (w->dml & dml_bits[i].dml)
				kinds |= 1u << dml_bits[i].kind;
		kinds |= w->also;
	}
	for (size_t i = 0; i < AL_ARRAY_LEN(dml_bits); i++)
		if (w->fn_dml & dml_bits[i].dml)
			kinds |= 1u << dml_bits[i].kind;
	if (n && n->node_case == PG_QUERY__NODE__NODE_COPY_STMT && n->copy_stmt->is_from)
		kinds |= 1u << PG_KIND_INSERT;
	if (w->fn_rank)
		kinds |= 1u << fn_kinds[w->fn_rank];
	return kinds;
}

static const char *prepared_name_of(const PgQuery__Node *n)
{
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
		return n->prepare_stmt->name;
	case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
		/* DEALLOCATE ALL has no name. */
		return n->deallocate_stmt->name && *n->deallocate_stmt->name ? n->deallocate_stmt->name : NULL;
	default:
		n = inner_stmt(n);
		return n->node_case == PG_QUERY__NODE__NODE_EXECUTE_STMT ? n->execute_stmt->name : NULL;
	}
}

static enum pg_prep_op prep_op_of(const PgQuery__Node *n)
{
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
		return PG_PREP_PREPARE;
	case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
		return PG_PREP_DEALLOCATE;
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
		return n->discard_stmt->target == PG_QUERY__DISCARD_MODE__DISCARD_ALL ? PG_PREP_DISCARD_ALL
										    : PG_PREP_NONE;
	default:
		return inner_stmt(n)->node_case == PG_QUERY__NODE__NODE_EXECUTE_STMT ? PG_PREP_EXECUTE : PG_PREP_NONE;
	}
}

static void set_err(char *err, size_t errlen, const char *msg, int cursorpos);

/* ---- Nesting bound ------------------------------------------------------------------------
 * An upper bound on parse-tree depth from tokens, computed without recursion. Every token that
 * can add a node above others (operators, keywords) counts; identifiers, constants and '.' do
 * not. Brackets, CASE..END and BEGIN ATOMIC..END open a level. Within a level, tokens that
 * separate flat siblings (',', AND, OR, WHEN, THEN, ELSE, and ';' inside a level) end a
 * segment: the grammar gives the siblings one list node, so their depths do not add up.
 *
 * A segment's subtree is at most as deep as its counted tokens plus its deepest closed child
 * level: a path down from the segment's root meets nodes made by its own tokens and enters at
 * most one child level (a bracketed group is one subtree). So a level's depth is the maximum
 * over its segments of (tokens + deepest child), plus one, and the child's depth is carried up
 * when it closes, so what wraps a closed group (a cast, an operator chain after ')') adds to
 * the group's depth instead of starting from zero.
 *
 * Constructs that go on nesting across a separator are counted where no separator resets them:
 * the AND of BETWEEN (its lower bound has no bare AND, so the first AND after a BETWEEN in the
 * same level is its own) is not a separator; joins and set operations nest left-deep across
 * the ANDs of ON clauses and the commas of select lists, so every JOIN, UNION, INTERSECT and
 * EXCEPT of a statement counts towards every path (chains).
 *
 * The bound is in token units, a few protobuf messages each; pg_tree_depth_ok checks the
 * serialized tree exactly before it is unpacked.
 */

struct nest_level {
	int tok;		/* opening token */
	long seg;		/* counted tokens in the current segment */
	long child;		/* deepest closed child level in the current segment */
	long max;		/* deepest finished segment */
	long between;		/* BETWEENs whose AND has not been seen */
};

static long level_depth(const struct nest_level *l)
{
	long d = l->seg + l->child;

	return d > l->max ? d : l->max;
}

static int nesting_ok(const char *sql, char *err, size_t errlen)
{
	PgQueryScanResult sr = pg_query_scan(sql);
	PgQuery__ScanResult *scan = NULL;
	struct nest_level *lv = NULL;
	size_t n_lv = 1, cap_lv = 16;
	long run = 0, chains = 0;	/* run: open levels plus their segments' tokens */
	int ret = -1, prev = 0;

	if (sr.error) {
		set_err(err, errlen, sr.error->message, sr.error->cursorpos);
		goto out;
	}
	scan = pg_query__scan_result__unpack(NULL, sr.pbuf.len, (const uint8_t *)sr.pbuf.data);
	lv = calloc(cap_lv, sizeof(*lv));
	if (!scan || !lv) {
		set_err(err, errlen, scan ? "out of memory" : "cannot unpack the token stream", 0);
		goto out;
	}
	for (size_t i = 0; i <= scan->n_tokens; i++) {
		int t = i < scan->n_tokens ? scan->tokens[i]->token : PG_QUERY__TOKEN__ASCII_59;
		struct nest_level *top = &lv[n_lv - 1];
		int end_stmt = i == scan->n_tokens, orig = t;

		/* BEGIN ATOMIC opens a level that END closes; the AND of a BETWEEN is no separator. */
		if (t == PG_QUERY__TOKEN__ATOMIC && prev == PG_QUERY__TOKEN__BEGIN_P)
			t = PG_QUERY__TOKEN__ASCII_40;
		else if (t == PG_QUERY__TOKEN__ATOMIC)
			t = PG_QUERY__TOKEN__NOT;
		if (t == PG_QUERY__TOKEN__AND && top->between) {
			top->between--;
			t = PG_QUERY__TOKEN__NOT;
		}
		switch (t) {
		case PG_QUERY__TOKEN__ASCII_40:		/* ( */
		case PG_QUERY__TOKEN__ASCII_91:		/* [ */
		case PG_QUERY__TOKEN__CASE:
			if (n_lv == cap_lv) {
				size_t cap = cap_lv * 2;
				struct nest_level *p = realloc(lv, cap * sizeof(*p));

				if (!p) {
					set_err(err, errlen, "out of memory", 0);
					goto out;
				}
				lv = p;
				cap_lv = cap;
			}
			memset(&lv[n_lv], 0, sizeof(lv[n_lv]));
			lv[n_lv++].tok = orig;
			run++;
			break;
		case PG_QUERY__TOKEN__ASCII_41:		/* ) */
		case PG_QUERY__TOKEN__ASCII_93:		/* ] */
		case PG_QUERY__TOKEN__END_P: {
			int closes_end = top->tok == PG_QUERY__TOKEN__CASE || top->tok == PG_QUERY__TOKEN__ATOMIC;
			long d;

			/* Close only a level this token can close; END is also a label and a statement. */
			if (n_lv == 1 || (t == PG_QUERY__TOKEN__END_P) != closes_end) {
				top->seg++;
				run++;
				break;
			}
			d = level_depth(top) + 1;
			run -= top->seg + 1;
			n_lv--;
			if (d > lv[n_lv - 1].child)
				lv[n_lv - 1].child = d;
			break;
		}
		case PG_QUERY__TOKEN__AND:
		case PG_QUERY__TOKEN__ASCII_44:		/* , */
		case PG_QUERY__TOKEN__OR:
		case PG_QUERY__TOKEN__WHEN:
		case PG_QUERY__TOKEN__THEN:
		case PG_QUERY__TOKEN__ELSE:
			top->max = level_depth(top);
			run -= top->seg;
			top->seg = top->child = 0;
			break;
		case PG_QUERY__TOKEN__ASCII_59:		/* ; */
			if (n_lv > 1 && !end_stmt) {
				/* inside a level (rule actions, BEGIN ATOMIC): a separator */
				top->max = level_depth(top);
				run -= top->seg;
				top->seg = top->child = 0;
				break;
			}
			/* The statement ends: levels left open (a parse error follows) close here. */
			while (n_lv > 1) {
				long d = level_depth(&lv[n_lv - 1]) + 1;

				n_lv--;
				if (d > lv[n_lv - 1].child)
					lv[n_lv - 1].child = d;
			}
			if (chains + level_depth(&lv[0]) > NEST_LIMIT) {
				set_err(err, errlen, "statement nested too deeply",
					end_stmt ? 0 : scan->tokens[i]->start + 1);
				goto out;
			}
			memset(&lv[0], 0, sizeof(lv[0]));
			run = chains = 0;
			break;
		case PG_QUERY__TOKEN__UNION:
		case PG_QUERY__TOKEN__INTERSECT:
		case PG_QUERY__TOKEN__EXCEPT:
		case PG_QUERY__TOKEN__JOIN:
			chains++;
			break;
		case PG_QUERY__TOKEN__BETWEEN:
			top->between++;
			top->seg++;
			run++;
			break;
		case PG_QUERY__TOKEN__IDENT:
		case PG_QUERY__TOKEN__UIDENT:
		case PG_QUERY__TOKEN__FCONST:
		case PG_QUERY__TOKEN__SCONST:
		case PG_QUERY__TOKEN__USCONST:
		case PG_QUERY__TOKEN__BCONST:
		case PG_QUERY__TOKEN__XCONST:
		case PG_QUERY__TOKEN__ICONST:
		case PG_QUERY__TOKEN__PARAM:
		case PG_QUERY__TOKEN__ASCII_46:		/* . */
			break;
		default:
			top->seg++;
			run++;
		}
		prev = orig;
		/* A lower bound of what the statement will come to: stop early on a long one. */
		if (!end_stmt && run + chains + lv[n_lv - 1].child > NEST_LIMIT) {
			set_err(err, errlen, "statement nested too deeply", scan->tokens[i]->start + 1);
			goto out;
		}
	}
	ret = 0;
out:
	free(lv);
	if (scan)
		pg_query__scan_result__free_unpacked(scan, NULL);
	pg_query_free_scan_result(sr);
	return ret;
}

/*
 * How deep the serialized parse tree nests, read from the protobuf bytes with an explicit stack
 * (protobuf-c's unpack and our walk recurse once per message): 0 if within PB_MAX_DEPTH
 * messages, -1 if deeper or malformed.
 */
static int pg_tree_depth_ok(const uint8_t *p, size_t len)
{
	struct frame {
		const ProtobufCMessageDescriptor *d;
		size_t end;
	} *st;
	size_t n = 1, pos = 0;
	int ret = -1;

	st = malloc(PB_MAX_DEPTH * sizeof(*st));
	if (!st)
		return -1;
	st[0].d = &pg_query__parse_result__descriptor;
	st[0].end = len;
	while (n) {
		uint64_t key, v = 0;
		unsigned shift;
		const ProtobufCFieldDescriptor *f;

		if (pos == st[n - 1].end) {
			n--;
			continue;
		}
		/* a varint: the field key, then by wire type what follows */
		for (key = 0, shift = 0;; shift += 7) {
			if (pos >= st[n - 1].end || shift > 63)
				goto out;
			key |= (uint64_t)(p[pos] & 0x7f) << shift;
			if (!(p[pos++] & 0x80))
				break;
		}
		switch (key & 7) {
		case 0:
			while (pos < st[n - 1].end && (p[pos] & 0x80))
				pos++;
			if (pos++ >= st[n - 1].end)
				goto out;
			break;
		case 1:
		case 5:
			if (st[n - 1].end - pos < ((key & 7) == 1 ? 8u : 4u))
				goto out;
			pos += (key & 7) == 1 ? 8 : 4;
			break;
		case 2:
			for (shift = 0;; shift += 7) {
				if (pos >= st[n - 1].end || shift > 63)
					goto out;
				v |= (uint64_t)(p[pos] & 0x7f) << shift;
				if (!(p[pos++] & 0x80))
					break;
			}
			if (v > st[n - 1].end - pos)
				goto out;
			f = key >> 3 <= UINT32_MAX ?
				protobuf_c_message_descriptor_get_field(st[n - 1].d, (unsigned)(key >> 3)) : NULL;
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
				if (n == PB_MAX_DEPTH)
					goto out;
				st[n].d = f->descriptor;
				st[n].end = pos + v;
				n++;
			} else {
				pos += v;
			}
			break;
		default:
			goto out;
		}
	}
	ret = 0;
out:
	free(st);
	return ret;
}

/* ---- Driver -------------------------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *msg, int cursorpos)
{
	int n;

	if (!err || !errlen)
		return;
	if (cursorpos > 0)
		n = snprintf(err, errlen, "%s at character %d", msg, cursorpos);
	else
		n = snprintf(err, errlen, "%s", msg);
	(void)n;	/* truncation of a message is acceptable */
}

void pg_stmt_clear(struct pg_stmt *st)
{
	free(st->text);
	for (size_t i = 0; i < st->n_relations; i++)
		free(st->relations[i]);
	free(st->relations);
	free(st->prepared_name);
	free(st->portal_name);
	memset(st, 0, sizeof(*st));
}

void pg_stmt_list_free(struct pg_stmt_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		pg_stmt_clear(&l->stmts[i]);
	free(l->stmts);
	l->stmts = NULL;
	l->n = 0;
}

int pg_stmt_copy(struct pg_stmt *dst, const struct pg_stmt *src)
{
	*dst = *src;
	dst->text = NULL;
	dst->relations = NULL;
	dst->n_relations = 0;
	dst->prepared_name = NULL;
	dst->portal_name = NULL;
	if ((src->text && !(dst->text = strdup(src->text))) ||
	    (src->prepared_name && !(dst->prepared_name = strdup(src->prepared_name))) ||
	    (src->portal_name && !(dst->portal_name = strdup(src->portal_name))))
		goto oom;
	if (src->n_relations) {
		dst->relations = calloc(src->n_relations, sizeof(*dst->relations));
		if (!dst->relations)
			goto oom;
		for (size_t i = 0; i < src->n_relations; i++) {
			if (!(dst->relations[i] = strdup(src->relations[i])))
				goto oom;
			dst->n_relations = i + 1;
		}
	}
	return 0;
oom:
	pg_stmt_clear(dst);
	return -1;
}

static int classify_one(const char *sql, size_t sql_len, const PgQuery__RawStmt *raw,
			struct pg_stmt *st, size_t *numerics, char *err, size_t errlen)
{
	struct walk w = { 0 };
	PgQueryFingerprintResult fp;
	size_t loc, len;
	const char *pn;
	int ret = -1;

	if (raw->stmt_location < 0 || raw->stmt_len < 0 || (size_t)raw->stmt_location > sql_len) {
		set_err(err, errlen, "parser returned an invalid statement location", 0);
		return -1;
	}
	loc = (size_t)raw->stmt_location;
	len = raw->stmt_len ? (size_t)raw->stmt_len : sql_len - loc;
	if (len > sql_len - loc)
		len = sql_len - loc;
	while (len && is_space(sql[loc])) {
		loc++;
		len--;
	}
	while (len && is_space(sql[loc + len - 1]))
		len--;
	st->location = (int)loc;
	st->len = (int)len;
	st->text = strndup(sql + loc, len);
	if (!st->text)
		goto oom;

	w.st = st;
	w.cond_budget = COND_BUDGET;
	if (raw->stmt)
		walk_msg(&w, &raw->stmt->base, NULL);
	free(w.ctes);
	if (w.failed) {
		set_err(err, errlen, w.too_deep ? "statement nested too deeply" : "out of memory", 0);
		return -1;
	}
	*numerics = w.numerics;
	st->kind = kind_of(raw->stmt, &w);
	if (raw->stmt && raw->stmt->node_case == PG_QUERY__NODE__NODE_TRUNCATE_STMT)
		st->unbounded_write = 1;
	else
		st->unbounded_write = pg_kind_is_dml(st->kind) && w.unbounded;
	st->kinds = kinds_of(raw->stmt, st->kind, &w);
	st->kind = with_functions(st->kind, w.fn_rank);
	st->kinds |= 1u << st->kind;
	st->unsafe_setting = w.unsafe;
	st->grant_exact = w.exact || w.side_effect || w.unsafe || w.const_where;
	pn = raw->stmt ? prepared_name_of(raw->stmt) : NULL;
	if (pn && !(st->prepared_name = strdup(pn)))
		goto oom;
	st->prep_op = raw->stmt ? prep_op_of(raw->stmt) : PG_PREP_NONE;
	/* FETCH and MOVE run the cursor's (or a protocol portal's) statement; the parser has
	 * folded the name as the server does. */
	if (raw->stmt && raw->stmt->node_case == PG_QUERY__NODE__NODE_FETCH_STMT &&
	    raw->stmt->fetch_stmt->portalname &&
	    !(st->portal_name = strdup(raw->stmt->fetch_stmt->portalname)))
		goto oom;

	fp = pg_query_fingerprint(st->text);
	if (fp.error) {
		set_err(err, errlen, fp.error->message, 0);
	} else if (!fp.fingerprint_str || strlen(fp.fingerprint_str) > PG_FINGERPRINT_LEN) {
		set_err(err, errlen, "unexpected fingerprint", 0);
	} else {
		snprintf(st->fingerprint, sizeof(st->fingerprint), "%s", fp.fingerprint_str);
		ret = 0;
	}
	pg_query_free_fingerprint_result(fp);
	return ret;
oom:
	set_err(err, errlen, "out of memory", 0);
	return -1;
}

/* pg_classify; *top (if not NULL) the first statement's node type, *numerics its numeric constants. */
static int classify(const char *sql, struct pg_stmt_list *out, PgQuery__Node__NodeCase *top, size_t *numerics,
		    char *err, size_t errlen)
{
	PgQueryProtobufParseResult pr;
	PgQuery__ParseResult *tree = NULL;
	size_t sql_len = strlen(sql);
	int ret = -1;

	out->stmts = NULL;
	out->n = 0;
	memset(&pr, 0, sizeof(pr));
	if (nesting_ok(sql, err, errlen))
		return -1;
	pr = pg_query_parse_protobuf(sql);
	if (pr.error) {
		set_err(err, errlen, pr.error->message, pr.error->cursorpos);
		goto out;
	}
	if (pg_tree_depth_ok((const uint8_t *)pr.parse_tree.data, pr.parse_tree.len)) {
		set_err(err, errlen, "statement nested too deeply", 0);
		goto out;
	}
	tree = pg_query__parse_result__unpack(NULL, pr.parse_tree.len, (const uint8_t *)pr.parse_tree.data);
	if (!tree) {
		set_err(err, errlen, "cannot unpack the parse tree", 0);
		goto out;
	}
	if (tree->n_stmts) {
		out->stmts = calloc(tree->n_stmts, sizeof(*out->stmts));
		if (!out->stmts) {
			set_err(err, errlen, "out of memory", 0);
			goto out;
		}
	}
	for (size_t i = 0; i < tree->n_stmts; i++) {
		size_t n = 0;

		out->n = i + 1;
		if (classify_one(sql, sql_len, tree->stmts[i], &out->stmts[i], &n, err, errlen))
			goto out;
		if (i == 0 && top)
			*top = tree->stmts[0]->stmt ? tree->stmts[0]->stmt->node_case : PG_QUERY__NODE__NODE__NOT_SET;
		if (i == 0 && numerics)
			*numerics = n;
	}
	ret = 0;
out:
	if (tree)
		pg_query__parse_result__free_unpacked(tree, NULL);
	pg_query_free_protobuf_parse_result(pr);
	if (ret)
		pg_stmt_list_free(out);
	return ret;
}

int pg_classify(const char *sql, struct pg_stmt_list *out, char *err, size_t errlen)
{
	return classify(sql, out, NULL, NULL, err, errlen);
}

static int is_trimmed_text(const char *sql, const char *text)
{
	size_t a = 0, b = strlen(sql);

	while (a < b && is_space(sql[a]))
		a++;
	while (b > a && (is_space(sql[b - 1]) || sql[b - 1] == ';'))
		b--;
	return strlen(text) == b - a && !memcmp(text, sql + a, b - a);
}

int pg_classify_reusable(const char *sql, size_t hidden, struct pg_stmt_list *out, int *reusable, char *err,
			 size_t errlen)
{
	PgQuery__Node__NodeCase top = PG_QUERY__NODE__NODE__NOT_SET;
	size_t numerics = 0;
	const struct pg_stmt *st;

	*reusable = 0;
	if (classify(sql, out, &top, &numerics, err, errlen))
		return -1;
	st = out->n == 1 ? &out->stmts[0] : NULL;
	*reusable = st && (top == PG_QUERY__NODE__NODE_SELECT_STMT || top == PG_QUERY__NODE__NODE_INSERT_STMT ||
			   top == PG_QUERY__NODE__NODE_UPDATE_STMT || top == PG_QUERY__NODE__NODE_DELETE_STMT ||
			   top == PG_QUERY__NODE__NODE_MERGE_STMT) &&
		    !st->grant_exact && !st->unsafe_setting && numerics == hidden && is_trimmed_text(sql, st->text);
	return 0;
}

/* ---- Rendering ----------------------------------------------------------------------------- */

/* jansson wants UTF-8; SQL from the wire need not be. Invalid bytes become U+FFFD. */
static json_t *json_text(const char *s)
{
	json_t *j = json_string(s);
	struct pg_buf b;
	const unsigned char *p = (const unsigned char *)s;

	if (j)
		return j;
	pg_buf_init(&b, 0);
	while (*p) {
		size_t n = 0;

		if (*p < 0x80)
			n = 1;
		else if ((*p & 0xe0) == 0xc0 && *p >= 0xc2)
			n = 2;
		else if ((*p & 0xf0) == 0xe0)
			n = 3;
		else if ((*p & 0xf8) == 0xf0 && *p <= 0xf4)
			n = 4;
		for (size_t i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				n = 0;
		if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0)))
			n = 0;
		if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90)))
			n = 0;
		if (n) {
			pg_buf_bytes(&b, p, n);
			p += n;
		} else {
			pg_buf_bytes(&b, "\xef\xbf\xbd", 3);
			p++;
		}
	}
	pg_buf_u8(&b, 0);
	j = pg_buf_ok(&b) ? json_string((const char *)b.data) : NULL;
	pg_buf_free(&b);
	return j;
}

char *pg_stmt_list_json(const struct pg_stmt_list *l, int pretty)
{
	json_t *arr = json_array();
	char *s = NULL;

	if (!arr)
		return NULL;
	for (size_t i = 0; i < l->n; i++) {
		const struct pg_stmt *st = &l->stmts[i];
		json_t *o, *kinds, *rels = json_array();

		if (!rels)
			goto out;
		for (size_t r = 0; r < st->n_relations; r++) {
			if (json_array_append_new(rels, json_text(st->relations[r]))) {
				json_decref(rels);
				goto out;
			}
		}
		/* json_*_set_new and append_new take the reference even when they fail. */
		o = json_object();
		if (json_array_append_new(arr, o) ||
		    json_object_set_new(o, "text", json_text(st->text)) ||
		    json_object_set_new(o, "kind", json_string(pg_kind_name(st->kind)))) {
			json_decref(rels);
			goto out;
		}
		if (json_object_set_new(o, "relations", rels) ||
		    json_object_set_new(o, "unbounded_write", json_boolean(st->unbounded_write)) ||
		    json_object_set_new(o, "fingerprint", json_string(st->fingerprint)) ||
		    json_object_set_new(o, "unsafe_setting", json_boolean(st->unsafe_setting)) ||
		    json_object_set_new(o, "grant_exact", json_boolean(st->grant_exact)) ||
		    json_object_set_new(o, "kinds", kinds = json_array()))
			goto out;
		for (int k = 0; k < PG_KIND__COUNT; k++)
			if ((st->kinds & (1u << k)) && json_array_append_new(kinds, json_string(pg_kind_name((enum pg_kind)k))))
				goto out;
	}
	s = json_dumps(arr, JSON_PRESERVE_ORDER | (pretty ? JSON_INDENT(2) : JSON_COMPACT));
out:
	json_decref(arr);
	return s;
}

int pg_stmt_list_print(const struct pg_stmt_list *l, FILE *f)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct pg_stmt *st = &l->stmts[i];

		if (fprintf(f, "%zu: %s\n   kind: %s", i + 1, st->text, pg_kind_name(st->kind)) < 0)
			return -1;
		for (int k = 0, n = 0; k < PG_KIND__COUNT; k++)
			if (k != (int)st->kind && (st->kinds & (1u << k)) &&
			    fprintf(f, "%s%s", n++ ? ", " : " (also ", pg_kind_name((enum pg_kind)k)) < 0)
				return -1;
		if ((st->kinds & ~(1u << st->kind)) && fputc(')', f) == EOF)
			return -1;
		if (fprintf(f, "%s\n   fingerprint: %s\n   relations:",
			    st->unbounded_write ? " (unbounded write: it may take every row)" : "",
			    st->fingerprint) < 0)
			return -1;
		if (!st->n_relations && fputs(" (none)", f) < 0)
			return -1;
		for (size_t r = 0; r < st->n_relations; r++)
			if (fprintf(f, "%s %s", r ? "," : "", st->relations[r]) < 0)
				return -1;
		if (fputc('\n', f) == EOF)
			return -1;
		if (st->grant_exact && fputs("   grant: its exact text only (constants its fingerprint hides decide "
					     "what it does)\n", f) < 0)
			return -1;
		if (st->unsafe_setting && fputs("   unsafe setting: it changes how the server reads the statements "
						"after it (refused)\n", f) < 0)
			return -1;
	}
	return ferror(f) ? -1 : 0;
}
