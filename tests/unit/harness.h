/* A minimal unit test harness: each check prints "ok - name" or "not ok - name: why". */
#ifndef AIRLOCK_TEST_HARNESS_H
#define AIRLOCK_TEST_HARNESS_H

#include <dirent.h>
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

/*
 * The files of dir whose names start with prefix and end with suffix, each read whole into buf
 * (NUL-terminated; it holds cap - 1 bytes) and handed to fn(name, buf, length, arg). A file that
 * cannot be read or does not fit fails the test. Returns how many were handed over (a dir that
 * cannot be opened fails the test: 0).
 */
static inline int t_each_file(const char *dir, const char *prefix, const char *suffix, char *buf, size_t cap,
			      void (*fn)(const char *name, char *buf, size_t n, void *arg), void *arg)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int seen = 0;

	CHECK(d != NULL);
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name), pl = strlen(prefix), sl = strlen(suffix), n;
		char path[1024];
		FILE *f;

		if (len < pl + sl || strncmp(e->d_name, prefix, pl) != 0 || strcmp(e->d_name + len - sl, suffix) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		f = fopen(path, "rb");
		CHECK(f != NULL);
		if (!f)
			continue;
		n = fread(buf, 1, cap - 1, f);
		if (!feof(f)) {
			printf("#   %s: longer than %zu bytes\n", path, cap - 1);
			t_cur_failed_ = 1;
			fclose(f);
			continue;
		}
		fclose(f);
		buf[n] = '\0';
		fn(e->d_name, buf, n, arg);
		seen++;
	}
	closedir(d);
	return seen;
}

#endif
