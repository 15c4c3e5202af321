/* The fence check's decisions (kern_link_fate) and its tally (kern_fence_tally), on made-up link infos. */
#include "harness.h"

#include <airlock/kernel.h>

static enum kern_fate fate(int info_ok, uint64_t target, int exists, uint32_t prog_id, uint32_t ours)
{
	struct kern_link_seen s = { .info_ok = info_ok, .target = target, .target_exists = exists,
				    .prog_id = prog_id, .ours = ours };

	return kern_link_fate(&s);
}

static void test_attached(void)
{
	CHECK(fate(1, 4242, 0, 7, 7) == KERN_FATE_OK);
	/* target_exists is read only for a link that reports none */
	CHECK(fate(1, 4242, 1, 7, 7) == KERN_FATE_OK);
	CHECK(fate(1, 3, 0, 7, 7) == KERN_FATE_OK);              /* an ifindex */
}

static void test_replaced(void)
{
	CHECK(fate(1, 4242, 0, 99, 7) == KERN_FATE_REPLACED);
	CHECK(fate(1, 4242, 1, 99, 7) == KERN_FATE_REPLACED);
	/* Our program's id not known (re-adopting an earlier daemon's links): never "replaced". */
	CHECK(fate(1, 4242, 0, 99, 0) == KERN_FATE_OK);
}

static void test_detached_is_not_gone(void)
{
	/* Both report target 0: only the existence of the cgroup or interface tells them apart. */
	CHECK(fate(1, 0, 1, 7, 7) == KERN_FATE_DETACHED);
	CHECK(fate(1, 0, 0, 7, 7) == KERN_FATE_GONE);
	/* Detached wins over a program swapped before it: attaching again brings ours anyway. */
	CHECK(fate(1, 0, 1, 99, 7) == KERN_FATE_DETACHED);
	CHECK(fate(1, 0, 1, 99, 0) == KERN_FATE_DETACHED);
	CHECK(fate(1, 0, 0, 99, 0) == KERN_FATE_GONE);
}

static void test_unpinned(void)
{
	struct kern_link_seen s = { .info_ok = 1, .target = 4242, .prog_id = 7, .ours = 7, .pin_lost = 1 };

	CHECK(kern_link_fate(&s) == KERN_FATE_UNPINNED);
	/* Whatever else is wrong is put back first (its repair pins anew, or the next check does). */
	s.prog_id = 99;
	CHECK(kern_link_fate(&s) == KERN_FATE_REPLACED);
	s.target = 0;
	s.target_exists = 1;
	CHECK(kern_link_fate(&s) == KERN_FATE_DETACHED);
	s.target_exists = 0;
	CHECK(kern_link_fate(&s) == KERN_FATE_GONE);
	s.info_ok = 0;
	CHECK(kern_link_fate(&s) == KERN_FATE_UNKNOWN);
}

static void test_unreadable(void)
{
	/* Nothing is concluded from an info that could not be read: no pin dropped, none replaced. */
	CHECK(fate(0, 0, 0, 0, 7) == KERN_FATE_UNKNOWN);
	CHECK(fate(0, 0, 1, 0, 7) == KERN_FATE_UNKNOWN);
	CHECK(fate(0, 4242, 1, 99, 7) == KERN_FATE_UNKNOWN);
}

static void test_names(void)
{
	CHECK_STR(kern_fate_name(KERN_FATE_OK), "ok");
	CHECK_STR(kern_fate_name(KERN_FATE_UNKNOWN), "unknown");
	CHECK_STR(kern_fate_name(KERN_FATE_GONE), "gone");
	CHECK_STR(kern_fate_name(KERN_FATE_DETACHED), "detached");
	CHECK_STR(kern_fate_name(KERN_FATE_REPLACED), "replaced");
	CHECK_STR(kern_fate_name(KERN_FATE_UNPINNED), "unpinned");
}

static void test_tally(void)
{
	struct kern_fence_stats s = { 0 };
	struct kern_fence_event e = { .fate = KERN_FATE_DETACHED, .repaired = 1 };

	kern_fence_tally(&s, &e);
	e.fate = KERN_FATE_REPLACED;
	kern_fence_tally(&s, &e);
	kern_fence_tally(&s, &e);
	e.fate = KERN_FATE_UNPINNED;
	kern_fence_tally(&s, &e);
	CHECK(s.detached == 1 && s.replaced == 2 && s.unpinned == 1 && s.failed == 0);
	/* A link that cannot be put back counts once however many checks it fails. */
	e.repaired = 0;
	kern_fence_tally(&s, &e);
	e.again = 1;
	kern_fence_tally(&s, &e);
	kern_fence_tally(&s, &e);
	CHECK(s.detached == 1 && s.replaced == 2 && s.failed == 1);
	/* Gone and intact links are no repairs. */
	e = (struct kern_fence_event){ .fate = KERN_FATE_GONE, .repaired = 1 };
	kern_fence_tally(&s, &e);
	e.fate = KERN_FATE_OK;
	kern_fence_tally(&s, &e);
	e.fate = KERN_FATE_UNKNOWN;
	kern_fence_tally(&s, &e);
	CHECK(s.detached == 1 && s.replaced == 2 && s.failed == 1);
}

int main(void)
{
	RUN(test_attached);
	RUN(test_replaced);
	RUN(test_detached_is_not_gone);
	RUN(test_unpinned);
	RUN(test_unreadable);
	RUN(test_names);
	RUN(test_tally);
	TEST_EXIT();
}
