/* A minimal unit test harness: each check prints "ok - name" or "not ok - name: why". */
#ifndef AIRLOCK_TEST_HARNESS_H
#define AIRLOCK_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

static int t_failed_;
static int t_cur_failed_;

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			printf("#   %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);  \
			t_cur_failed_ = 1;                                               \
		}                                                                        \
	} while (0)

#define CHECK_STR(a, b)                                                                  \
	do {                                                                             \
		const char *a_ = (a), *b_ = (b);                                         \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                 \
			printf("#   %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__,         \
			       a_ ? a_ : "(null)", b_ ? b_ : "(null)");                  \
			t_cur_failed_ = 1;                                               \
		}                                                                        \
	} while (0)

/* Runs one test function and prints its line. */
#define RUN(fn)                                                                          \
	do {                                                                             \
		t_cur_failed_ = 0;                                                       \
		fn();                                                                    \
		printf("%s - %s\n", t_cur_failed_ ? "not ok" : "ok", #fn);               \
		t_failed_ |= t_cur_failed_;                                              \
		fflush(stdout);                                                          \
	} while (0)

#define TEST_EXIT() return t_failed_ ? 1 : 0

#endif
