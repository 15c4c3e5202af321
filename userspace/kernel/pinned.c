/* Whether a cgroup lies in a pinned (agent) subtree: agents must not reach the review socket or console. */
#include <airlock/kernel.h>

#include <limits.h>

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
