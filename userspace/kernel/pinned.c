/* Whether a cgroup lies in a pinned (agent) subtree: agents must not reach the review socket or console. */
#include <airlock/kernel.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#define MAX_PINS 4096

int kern_in_pinned(struct kern *k, const char *rel)
{
	static uint64_t ids[MAX_PINS];
	char pinned[PATH_MAX];
	int n = kern_pinned(k, ids, MAX_PINS);

	if (n < 0)
		return 1; /* cannot tell: fail closed */
	for (int i = 0; i < n; i++) {
		size_t len;

		if (kern_cgroup_path(ids[i], pinned, sizeof(pinned)) < 0)
			continue;
		len = strlen(pinned);
		if (strcmp(pinned, "/") == 0 ||
		    (strncmp(rel, pinned, len) == 0 && (rel[len] == '\0' || rel[len] == '/')))
			return 1;
	}
	return 0;
}

int kern_pin_dir_each(const char *root, const char *sub, unsigned long long max,
		      int (*fn)(void *arg, unsigned long long n, char *err, size_t errlen), void *arg,
		      char *err, size_t errlen)
{
	char dir[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (al_fmt(dir, sizeof(dir), "%s/%s", root, sub) < 0)
		return al_errf(err, errlen, "pin root too long");
	d = opendir(dir);
	if (!d)
		return al_errf(err, errlen, "%s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		char *end;
		unsigned long long n;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;       /* ".", "..", and nothing of ours */
		errno = 0;
		n = strtoull(de->d_name, &end, 10);
		if (errno || *end || n == 0 || n > max)
			continue;
		if (fn(arg, n, err, errlen) < 0) {
			rc = -1;
			break;
		}
	}
	closedir(d);
	return rc;
}
