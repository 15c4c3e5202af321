/* What the classification cache (pg_cache.c) needs of the classifier beyond <airlock/pg.h>. */
#ifndef AIRLOCK_PG_REUSE_H
#define AIRLOCK_PG_REUSE_H

#include <airlock/pg.h>

/*
 * pg_classify, and *reusable set to 1 when sql's classification holds for every string that
 * differs from it only in the values of `hidden` numeric literals (those its cache key hid):
 * one statement, a SELECT, INSERT, UPDATE, DELETE or MERGE (no EXPLAIN, FETCH, SET, ... whose
 * classification reads numbers), neither grant_exact nor unsafe_setting (no set_config,
 * side-effect or sequence function, whose classification reads its arguments), with exactly `hidden`
 * numeric constants in its tree (so every hidden literal is a constant whose value nothing
 * here reads and the fingerprint ignores, none a FETCH count, EXPLAIN option or array bound),
 * and whose text is sql without surrounding spaces and trailing ';' (what a reuse gives).
 */
int pg_classify_reusable(const char *sql, size_t hidden, struct pg_stmt_list *out, int *reusable, char *err,
			 size_t errlen) AL_MUST;

#endif
