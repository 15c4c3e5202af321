/* Unit tests for the classification cache: its key, and that hits classify exactly as a parse would. */
#include <airlock/pg.h>

#include <stdlib.h>

#include "harness.h"

static const char *key(const char *sql)
{
	static char buf[8192];
	size_t n;

	if (pg_cache_key(sql, buf, sizeof(buf), &n) < 0)
		return "(uncacheable)";
	return buf;
}

static void test_keys(void)
{
	CHECK_STR(key("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"),
		  "SELECT abalance FROM pgbench_accounts WHERE aid = ?;");
	CHECK_STR(key("select 1.5, .5, 1e10, 2.5E-3, -7"), "select ?, ?, ?, ?, -?");
	/* Digits inside names, parameters, strings, identifiers and comments are kept. */
	CHECK_STR(key("select * from t1 join s2.t3 on x9 = $12"), "select * from t1 join s2.t3 on x9 = $12");
	CHECK_STR(key("select '42', \"col 7\" -- 99\n, 3"), "select '42', \"col 7\" -- 99\n, ?");
	CHECK_STR(key("select /* 1 /* 2 */ 3 */ 4"), "select /* 1 /* 2 */ 3 */ ?");
	CHECK_STR(key("do $x$ begin perform 1; end $x$"), "do $x$ begin perform 1; end $x$");
	CHECK_STR(key("select $$ 5 $$, 6"), "select $$ 5 $$, ?");
	CHECK_STR(key("select 'it''s 1', 2"), "select 'it''s 1', ?");
	CHECK_STR(key("select E'a\\'1', 2"), "select E'a\\'1', ?");
	/* Names run whole: their digits, '$' and non-ASCII bytes stay; what follows a name is
	 * scanned again (a number after an operator, the quote of an E'' string). */
	CHECK_STR(key("select a$1, b_2.c3e4, \xc3\xa9t\xc3\xa9 7, x+8, E'9', e'\\'' ,x.5"),
		  "select a$1, b_2.c3e4, \xc3\xa9t\xc3\xa9 ?, x+?, E'9', e'\\'' ,x.5");
	CHECK_STR(key("SELECT abalance FROM pgbench_accounts WHERE aid = 12345"),
		  "SELECT abalance FROM pgbench_accounts WHERE aid = ?");
	/* What the scanner cannot be sure of is not cached. */
	CHECK_STR(key("select 'unterminated"), "(uncacheable)");
	CHECK_STR(key("select 'a\\'1', 2"), "(uncacheable)");
	CHECK_STR(key("select /* open"), "(uncacheable)");
	CHECK_STR(key("select $q$ open"), "(uncacheable)");
}

/* Every statement classified through the cache matches a direct parse. */
static void test_hits_match_parse(void)
{
	static const char *const sqls[] = {
		"SELECT abalance FROM pgbench_accounts WHERE aid = 1",
		"SELECT abalance FROM pgbench_accounts WHERE aid = 2",
		"UPDATE t SET v = 3 WHERE id = 4",
		"UPDATE t SET v = 5 WHERE id = 6",
		"DELETE FROM t",
		"DELETE FROM t WHERE 1 = 1",
		"DELETE FROM t WHERE 2 = 1",
		"select set_config('role', 'admin', false), 1",
		"select set_config('role', 'admin', false), 2",
		"INSERT INTO t VALUES (7, 'x')",
		"INSERT INTO t VALUES (8, 'x')",
		"select 1; select 2",
		"select 1; select 3",
		"EXECUTE p(1)",
		"EXECUTE p(2)",
		"PREPARE q AS DELETE FROM t WHERE id = 1",
		"DISCARD ALL",
	};
	struct pg_cache *c = NULL;
	char err[256];
	uint64_t hits, misses;

	CHECK(pg_cache_new(64, &c) == 0);
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < AL_ARRAY_LEN(sqls); i++) {
			struct pg_stmt_list a = { 0 }, b = { 0 };

			CHECK(pg_classify_cached(c, sqls[i], &a, err, sizeof(err)) == 0);
			CHECK(pg_classify(sqls[i], &b, err, sizeof(err)) == 0);
			CHECK(a.n == b.n);
			for (size_t k = 0; k < a.n && k < b.n; k++) {
				CHECK_STR(a.stmts[k].text, b.stmts[k].text);
				CHECK(a.stmts[k].kind == b.stmts[k].kind);
				CHECK(a.stmts[k].unbounded_write == b.stmts[k].unbounded_write);
				CHECK_STR(a.stmts[k].fingerprint, b.stmts[k].fingerprint);
				CHECK(a.stmts[k].prep_op == b.stmts[k].prep_op);
				CHECK((!a.stmts[k].prepared_name && !b.stmts[k].prepared_name) ||
				      (a.stmts[k].prepared_name && b.stmts[k].prepared_name &&
				       strcmp(a.stmts[k].prepared_name, b.stmts[k].prepared_name) == 0));
				CHECK(a.stmts[k].n_relations == b.stmts[k].n_relations);
				for (size_t r = 0; r < a.stmts[k].n_relations && r < b.stmts[k].n_relations; r++)
					CHECK_STR(a.stmts[k].relations[r], b.stmts[k].relations[r]);
			}
			pg_stmt_list_free(&a);
			pg_stmt_list_free(&b);
		}
	}
	pg_cache_stats(c, &hits, &misses);
	/* Pairs differing only in a number hit; multi-statement strings are never cached. */
	CHECK(hits >= 10);
	CHECK(misses >= 4);
	pg_cache_free(c);
}

static void test_parse_error_not_cached(void)
{
	struct pg_cache *c = NULL;
	struct pg_stmt_list l = { 0 };
	char err[256];

	CHECK(pg_cache_new(8, &c) == 0);
	CHECK(pg_classify_cached(c, "selec 1", &l, err, sizeof(err)) == -1);
	CHECK(pg_classify_cached(c, "selec 2", &l, err, sizeof(err)) == -1);
	CHECK(strstr(err, "syntax error") != NULL);
	pg_cache_free(c);
}

int main(void)
{
	RUN(test_keys);
	RUN(test_hits_match_parse);
	RUN(test_parse_error_not_cached);
	TEST_EXIT();
}
