/* Unit tests for the review manager: whom a grant covers (cgroup agents, interface agents, old grants) and self-approval. */
#include <airlock/approval.h>
#include <airlock/store.h>

#include <errno.h>
#include <event2/event.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

static char tmpdir[256];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tmpdir(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int sql(const char *db, const char *text)
{
	sqlite3 *h = NULL;
	int rc = sqlite3_open(db, &h) == SQLITE_OK && sqlite3_exec(h, text, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;

	if (rc < 0)
		printf("#   %s: %s\n", text, h ? sqlite3_errmsg(h) : "no handle");
	sqlite3_close(h);
	return rc;
}

static long long sql_int(const char *db, const char *text)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -999;

	if (sqlite3_open(db, &h) == SQLITE_OK && sqlite3_prepare_v2(h, text, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_type(st, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

/* The daemon's pieces a review manager needs: a store, an event base, a configuration. */
struct rig {
	char db[512];
	struct store *st;
	struct event_base *base;
	struct al_config cfg;
	struct approval *a;
	struct al_rule rule;
};

static int rig_open(struct rig *r, const char *name)
{
	char err[256];

	memset(r, 0, sizeof(*r));
	snprintf(r->db, sizeof(r->db), "%s/%s", tmpdir, name);
	r->rule.approvals = 1;
	r->rule.review_timeout_ms = 60000;
	r->rule.max_grant_s = 3600;
	r->rule.uid = -1;
	snprintf(r->rule.text, sizeof(r->rule.text), "rule review max_grant 1h");
	r->base = event_base_new();
	if (!r->base || store_open(r->db, &r->st) < 0 ||
	    approval_new(r->base, r->st, &r->cfg, &r->a, err, sizeof(err)) < 0) {
		printf("#   rig %s: %s\n", name, err);
		return -1;
	}
	return 0;
}

/* The daemon restarted: the grants come back from the store. */
static int rig_restart(struct rig *r)
{
	char err[256];

	approval_free(r->a);
	r->a = NULL;
	store_close(r->st);
	r->st = NULL;
	if (store_open(r->db, &r->st) < 0 || approval_new(r->base, r->st, &r->cfg, &r->a, err, sizeof(err)) < 0) {
		printf("#   restart: %s\n", err);
		return -1;
	}
	return 0;
}

static void rig_close(struct rig *r)
{
	approval_free(r->a);
	store_close(r->st);
	if (r->base)
		event_base_free(r->base);
}

/* Agents: two interfaces, the first one's name on a later interface, two uids in one cgroup,
 * and cgroup 0 with no interface (no agent at all). */
static const struct approval_req veth_a = { .iface = "veth-a", .ifindex = 11 };
static const struct approval_req veth_b = { .iface = "veth-b", .ifindex = 12 };
static const struct approval_req veth_a_again = { .iface = "veth-a", .ifindex = 13 };
static const struct approval_req cg_1000 = { .cgroup_id = 77, .cgroup_path = "/agents/a", .uid = 1000 };
static const struct approval_req cg_1001 = { .cgroup_id = 77, .cgroup_path = "/agents/a", .uid = 1001 };
static const struct approval_req nobody = { 0 };

static enum approval_outcome last_outcome;

static void on_outcome(void *arg, int64_t id, enum approval_outcome o, const char *reason)
{
	(void)arg;
	(void)id;
	(void)reason;
	last_outcome = o;
}

/* Submits who's command fp on resource res; the request id, or -1. */
static int64_t submit(struct rig *r, const struct approval_req *who, const char *fp, const char *res)
{
	struct approval_req q = *who;
	static const uint8_t bytes[] = "DELETE FROM t WHERE id = 1";

	q.conn_id = 1;
	q.resource = res;
	q.protocol = "postgres";
	q.text = (const char *)bytes;
	q.kind = "delete";
	q.fingerprint = fp;
	q.bytes = bytes;
	q.len = sizeof(bytes) - 1;
	q.rule = &r->rule;
	return approval_submit(r->a, &q, on_outcome, NULL);
}

static int64_t grant_for(struct rig *r, const struct approval_req *who, const char *fp, const char *res)
{
	struct approval_req q = *who;

	q.fingerprint = fp;
	q.resource = res;
	return approval_grant_for(r->a, &q);
}

static struct store_user reviewer(const char *name, long uid)
{
	struct store_user u = { .uid = uid };

	snprintf(u.name, sizeof(u.name), "%s", name);
	return u;
}

/* Approves who's command fp on res for 600 s by alice (uid 4711). */
static int grant(struct rig *r, const struct approval_req *who, const char *fp, const char *res)
{
	struct store_user alice = reviewer("alice", 4711);
	char err[256] = "";
	int64_t id = submit(r, who, fp, res);

	last_outcome = 0;
	if (id < 0 || approval_decide(r->a, id, &alice, 4711, 1, NULL, 600, err, sizeof(err)) < 0) {
		printf("#   grant %s: %s\n", fp, err);
		return -1;
	}
	return last_outcome == APPROVAL_APPROVED ? 0 : -1;
}

/* What each agent's grant covers: only that agent, also after a restart. */
static void check_scopes(struct rig *r)
{
	/* veth-a's grant: veth-a (this interface) only */
	CHECK(grant_for(r, &veth_a, "fp-a", "pg") > 0);
	CHECK(grant_for(r, &veth_a_again, "fp-a", "pg") == 0);
	CHECK(grant_for(r, &cg_1000, "fp-a", "pg") == 0);
	CHECK(grant_for(r, &nobody, "fp-a", "pg") == 0);
	CHECK(grant_for(r, &veth_a, "fp-a", "other") == 0);
	CHECK(grant_for(r, &veth_a, "fp-x", "pg") == 0);
	/* the cgroup agent's grant: that cgroup and uid only, never an interface's agent */
	CHECK(grant_for(r, &cg_1000, "fp-c", "pg") > 0);
	CHECK(grant_for(r, &cg_1001, "fp-c", "pg") == 0);
	CHECK(grant_for(r, &veth_a, "fp-c", "pg") == 0);
	CHECK(grant_for(r, &veth_b, "fp-c", "pg") == 0);
	CHECK(grant_for(r, &nobody, "fp-c", "pg") == 0);
}

static void test_grant_scopes(void)
{
	struct rig r;

	if (rig_open(&r, "scopes.db") < 0) {
		CHECK(!"rig");
		rig_close(&r);
		return;
	}
	CHECK(grant(&r, &veth_a, "fp-a", "pg") == 0);
	CHECK(grant(&r, &cg_1000, "fp-c", "pg") == 0);
	check_scopes(&r);
	CHECK(grant_for(&r, &veth_b, "fp-a", "pg") == 0);
	/* veth-b's own request is held, and approving it for a window makes its own grant */
	CHECK(grant(&r, &veth_b, "fp-a", "pg") == 0);
	CHECK(grant_for(&r, &veth_b, "fp-a", "pg") > 0);
	CHECK(grant_for(&r, &veth_b, "fp-a", "pg") != grant_for(&r, &veth_a, "fp-a", "pg"));
	CHECK(rig_restart(&r) == 0);
	if (r.a) {
		check_scopes(&r);
		CHECK(grant_for(&r, &veth_b, "fp-a", "pg") > 0);
	}
	/* on disk: the interface and its index, no uid; the request names its interface, no uid */
	CHECK(sql_int(r.db, "SELECT count(*) FROM grants WHERE agent_iface = 'veth-a' AND agent_ifindex = 11"
		      " AND agent_uid IS NULL AND cgroup_id = 0 AND fingerprint = 'fp-a'") == 1);
	CHECK(sql_int(r.db, "SELECT count(*) FROM grants WHERE agent_iface IS NULL AND agent_ifindex IS NULL"
		      " AND agent_uid = 1000 AND cgroup_id = 77") == 1);
	CHECK(sql_int(r.db, "SELECT count(*) FROM requests WHERE iface = 'veth-a' AND uid IS NULL AND pid IS NULL"
		      " AND cgroup_id IS NULL") == 1);
	CHECK(sql_int(r.db, "SELECT count(*) FROM requests WHERE iface IS NULL AND uid = 1000 AND cgroup_id = 77") == 1);
	rig_close(&r);
}

/* Grants recorded before schema 17: one for a cgroup's agent keeps covering it; one with cgroup
 * 0 was for the agent behind some interface nobody recorded, and covers no one. */
static void test_grants_before_17(void)
{
	struct rig r;
	int64_t far = al_now_us() + 600000000;
	char ins[1024];

	if (rig_open(&r, "v16.db") < 0) {
		CHECK(!"rig");
		rig_close(&r);
		return;
	}
	approval_free(r.a);
	r.a = NULL;
	store_close(r.st);
	r.st = NULL;
	/* the store as schema 16 had it, with the rows a version 16 airlockd wrote */
	snprintf(ins, sizeof(ins),
		 "ALTER TABLE grants DROP COLUMN approvers;"
		 " ALTER TABLE grants DROP COLUMN agent_iface; ALTER TABLE grants DROP COLUMN agent_ifindex;"
		 " ALTER TABLE requests DROP COLUMN iface; PRAGMA user_version = 16;"
		 " INSERT INTO grants (request_id, fingerprint, cgroup_id, cgroup_path, resource, created_us,"
		 " expires_us, created_by, agent_uid) VALUES"
		 " (1, 'fp-old-iface', 0, NULL, 'pg', 1, %lld, 'alice', 0),"
		 " (2, 'fp-old-cg', 77, '/agents/a', 'pg', 1, %lld, 'alice', 1000);",
		 (long long)far, (long long)far);
	CHECK(sql(r.db, ins) == 0);
	CHECK(rig_restart(&r) == 0);
	CHECK(store_schema_version(r.st) == STORE_SCHEMA_VERSION);
	CHECK(sql_int(r.db, "SELECT count(*) FROM grants WHERE agent_iface IS NULL AND agent_ifindex IS NULL") == 2);
	if (r.a) {
		CHECK(grant_for(&r, &veth_a, "fp-old-iface", "pg") == 0);
		CHECK(grant_for(&r, &veth_b, "fp-old-iface", "pg") == 0);
		CHECK(grant_for(&r, &nobody, "fp-old-iface", "pg") == 0);
		CHECK(grant_for(&r, &cg_1000, "fp-old-cg", "pg") > 0);
		CHECK(grant_for(&r, &cg_1001, "fp-old-cg", "pg") == 0);
		CHECK(grant_for(&r, &veth_a, "fp-old-cg", "pg") == 0);
	}
	rig_close(&r);
}

/* Self-approval: a cgroup agent's uid is held against the reviewer's; an interface agent has no
 * uid the host knows, so none is compared (a root reviewer is not taken for it); a reviewer
 * without a uid still decides nothing. */
static void test_self_approval(void)
{
	struct store_user root = reviewer("root", 0), bob = reviewer("bob", 1000), anon = reviewer("anon", -1);
	char err[256] = "";
	int64_t id;
	struct rig r;

	if (rig_open(&r, "self.db") < 0) {
		CHECK(!"rig");
		rig_close(&r);
		return;
	}
	id = submit(&r, &cg_1000, "fp-s1", "pg");
	CHECK(id > 0 && approval_decide(r.a, id, &bob, 1000, 1, NULL, 0, err, sizeof(err)) < 0);
	CHECK(strstr(err, "their own request") != NULL);
	CHECK(approval_decide(r.a, id, &root, 0, 1, NULL, 0, err, sizeof(err)) == 0);

	id = submit(&r, &veth_a, "fp-s2", "pg");
	last_outcome = 0;
	CHECK(id > 0 && approval_decide(r.a, id, &root, 0, 1, NULL, 0, err, sizeof(err)) == 0);
	CHECK(last_outcome == APPROVAL_APPROVED);

	id = submit(&r, &veth_a, "fp-s3", "pg");
	CHECK(id > 0 && approval_decide(r.a, id, &anon, -1, 1, NULL, 0, err, sizeof(err)) < 0);
	CHECK(strstr(err, "has no uid") != NULL);
	CHECK(approval_decide(r.a, id, &bob, 1000, 1, NULL, 0, err, sizeof(err)) == 0);
	rig_close(&r);
}

int main(void)
{
	const char *base = getenv("TMPDIR");

	if (snprintf(tmpdir, sizeof(tmpdir), "%s/airlock-test-approval.XXXXXX", base ? base : "/tmp") < 0 ||
	    !mkdtemp(tmpdir)) {
		printf("not ok - mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	atexit(rm_tmpdir);
	RUN(test_grant_scopes);
	RUN(test_grants_before_17);
	RUN(test_self_approval);
	TEST_EXIT();
}
