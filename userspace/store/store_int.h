/* Internal interface between the store's files (not for other modules). */
#ifndef AIRLOCK_STORE_INT_H
#define AIRLOCK_STORE_INT_H

#include <sqlite3.h>
#include <airlock/store.h>

sqlite3 *store_db(struct store *s);
/* Pending requests of a daemon that died are aborted: nothing will run them. */
int store_review_recover(struct store *s);
/* Runs fn inside a durable transaction (synchronous=FULL), after committing
 * any open group-commit batch. */
int store_durable(struct store *s, int (*fn)(sqlite3 *db, void *arg), void *arg, const char *what);
/* The JSON of the current row (column names as keys); free() it. */
char *store_row_json(sqlite3_stmt *st);

#endif
