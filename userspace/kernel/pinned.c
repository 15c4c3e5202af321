/* Whether a cgroup lies in a pinned (agent) subtree: agents must not reach the review socket or console. */
#include <airlock/kernel.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PINS 4096

int kern_in_pinned(struct kern *k, const char *rel)
{
	static uint64_t ids[MAX_PINS];
	char abs[PATH_MAX], mnt[PATH_MAX];
	int n = kern_pinned(k, ids, MAX_PINS);
	size_t mlen, end;

	if (n < 0 || kern_cgroup2_mount(mnt, sizeof(mnt)) < 0 || rel[0] != '/' ||
	    al_fmt(abs, sizeof(abs), "%s%s", mnt, rel) < 0)
		return 1; /* cannot tell: fail closed */
	mlen = strlen(mnt);
	end = strlen(abs);
	/* The cgroup and each one above it, by id: a stat each, however many cgroups the host has
	 * (finding each pin's path could walk the whole tree for each: kern_cgroup_path). */
	for (;;) {
		uint64_t id;

		abs[end] = '\0';
		id = kern_cgroup_id_at(abs);
		if (!id)
			return 1; /* gone, or not a cgroup: fail closed */
		for (int i = 0; i < n; i++)
			if (ids[i] == id)
				return 1;
		if (end <= mlen)
			return 0;
		while (end > mlen && abs[end - 1] != '/')
			end--;
		if (end > mlen)
			end--; /* the slash before the last name */
	}
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
