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
	/* What the scanner cannot be sure of is not cached: a number run into a name, '$', a
	 * quote or '.' (PostgreSQL reads "1$$ 5 $$" as 1 and a string). */
	CHECK_STR(key("select 1$$ 5 $$"), "(uncacheable)");
	CHECK_STR(key("select 1abc"), "(uncacheable)");
	CHECK_STR(key("select 1'x'"), "(uncacheable)");
	CHECK_STR(key("select 1E'x'"), "(uncacheable)");
	CHECK_STR(key("select 1.5.5"), "(uncacheable)");
	CHECK_STR(key("select x::numeric(10,2) + 1e5"), "select x::numeric(?,?) + ?");
	/* What the scanner cannot be sure of is not cached. */
	CHECK_STR(key("select 'unterminated"), "(uncacheable)");
	CHECK_STR(key("select 'a\\'1', 2"), "(uncacheable)");
	CHECK_STR(key("select /* open"), "(uncacheable)");
	CHECK_STR(key("select $q$ open"), "(uncacheable)");
}

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Every field of a classification through the cache is what a direct parse gives. */
static void check_same(const char *sql, const struct pg_stmt_list *a, const struct pg_stmt_list *b)
{
	int same = a->n == b->n;

	for (size_t k = 0; k < a->n && same; k++) {
		const struct pg_stmt *x = &a->stmts[k], *y = &b->stmts[k];

		same = same_str(x->text, y->text) && x->kind == y->kind && x->kinds == y->kinds &&
		       x->unbounded_write == y->unbounded_write && !strcmp(x->fingerprint, y->fingerprint) &&
		       x->location == y->location && x->len == y->len && x->prep_op == y->prep_op &&
		       same_str(x->prepared_name, y->prepared_name) && same_str(x->portal_name, y->portal_name) &&
		       x->unsafe_setting == y->unsafe_setting && x->grant_exact == y->grant_exact &&
		       x->n_relations == y->n_relations;
		for (size_t r = 0; same && r < x->n_relations; r++)
			same = !strcmp(x->relations[r], y->relations[r]);
	}
	if (!same) {
		printf("#   %s: the cache's classification differs from a parse's\n", sql);
		CHECK(0);
	}
}

/* Pairs that differ only in numbers: the second reuses the first's classification (hit) only
 * where nothing of it depends on a number, and matches a direct parse either way. */
static void test_hits_match_parse(void)
{
	static const struct {
		const char *first, *second;
		int hit;
	} pairs[] = {
		{ "SELECT abalance FROM pgbench_accounts WHERE aid = 1", "SELECT abalance FROM pgbench_accounts WHERE aid = 2", 1 },
		{ "UPDATE t SET v = 3 WHERE id = 4", "UPDATE t SET v = 5 WHERE id = 6", 1 },
		{ "INSERT INTO t VALUES (7, 'x')", "INSERT INTO t VALUES (8.5e3, 'x')", 1 },
		{ "DELETE FROM t WHERE 1 = 1", "DELETE FROM t WHERE 2 = 1", 0 },
		/* a self-comparison is one whatever its numbers (x[1] = x[2] is as unbounded as
		 * x[1] = x[1]): a bounded entry is never reused for a tautology */
		{ "DELETE FROM t WHERE x[1] = x[2]", "DELETE FROM t WHERE x[1] = x[1]", 0 },
		{ "DELETE FROM t WHERE id + 1 = id + 2 AND a = 3", "DELETE FROM t WHERE id + 1 = id + 1 AND a = 4", 1 },
		{ "INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 2",
		  "INSERT INTO t VALUES (3) ON CONFLICT (a) DO UPDATE SET b = 4", 1 },
		{ "MERGE INTO t USING s ON t.id = s.id AND s.v > 1 WHEN MATCHED THEN DELETE",
		  "MERGE INTO t USING s ON t.id = s.id AND s.v > 2 WHEN MATCHED THEN DELETE", 1 },
		{ "SELECT 1 ; -- note", "SELECT 2 ; -- note", 0 },
		{ "SELECT x::varchar(5) FROM t LIMIT 10", "SELECT x::varchar(6) FROM t LIMIT 20", 1 },
		/* the audit's: ANALYZE 0 cached, ANALYZE 1 reused it as a read */
		{ "EXPLAIN (ANALYZE 0) DELETE FROM t WHERE id = 2", "EXPLAIN (ANALYZE 1) DELETE FROM t WHERE id = 3", 0 },
		{ "FETCH 5 FROM c", "FETCH 6 FROM c", 0 },
		{ "MOVE 5 IN c", "MOVE 6 IN c", 0 },
		{ "SET standard_conforming_strings = 1", "SET standard_conforming_strings = 0", 0 },
		{ "select set_config('role', 'admin', false), 1", "select set_config('role', 'admin', false), 2", 0 },
		{ "SELECT pg_terminate_backend(1)", "SELECT pg_terminate_backend(2)", 0 },
		/* a sequence call's argument names what it updates: such a statement is not reused */
		{ "SELECT nextval(16384)", "SELECT nextval(16385)", 0 },
		{ "SELECT setval('s', 1)", "SELECT setval('s', 2)", 0 },
		{ "INSERT INTO t VALUES (nextval('s'), 1)", "INSERT INTO t VALUES (nextval('s'), 2)", 0 },
		{ "SELECT '{}'::int[5]", "SELECT '{}'::int[6]", 0 },
		{ "select 1; select 2", "select 1; select 3", 0 },
		{ "EXECUTE p(1)", "EXECUTE p(2)", 0 },
		{ "EXPLAIN EXECUTE p(1)", "EXPLAIN EXECUTE p(2)", 0 },
		{ "PREPARE q AS DELETE FROM t WHERE id = 1", "PREPARE q AS DELETE FROM t WHERE id = 2", 0 },
		{ "CALL p(1)", "CALL p(2)", 0 },
		{ "DO $$ BEGIN PERFORM 1; END $$", "DO $$ BEGIN PERFORM 1; END $$", 0 },
	};
	struct pg_cache *c = NULL;
	char err[256];

	CHECK(pg_cache_new(64, &c) == 0);
	for (size_t i = 0; i < AL_ARRAY_LEN(pairs); i++) {
		const char *sqls[2] = { pairs[i].first, pairs[i].second };

		for (int k = 0; k < 2; k++) {
			struct pg_stmt_list a = { 0 }, b = { 0 };
			uint64_t hits0, hits, misses;

			pg_cache_stats(c, &hits0, &misses);
			CHECK(pg_classify_cached(c, sqls[k], &a, err, sizeof(err)) == 0);
			pg_cache_stats(c, &hits, &misses);
			CHECK(pg_classify(sqls[k], &b, err, sizeof(err)) == 0);
			check_same(sqls[k], &a, &b);
			if (k == 1 && (hits > hits0) != pairs[i].hit) {
				printf("#   %s: %s\n", sqls[k], hits > hits0 ? "reused" : "not reused");
				CHECK(0);
			}
			pg_stmt_list_free(&a);
			pg_stmt_list_free(&b);
		}
	}
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
