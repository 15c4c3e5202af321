/*
 * Fills an airlockd store with a long session, the way the daemon writes one: a connection
 * row, then N statements and their outcomes through the store API, a group commit every 40
 * (about what pgbench -S at -c 8 puts in one). It makes in seconds the store that a day of an
 * agent's traffic would, for tests of what reads it (tests/console/test_console.py). The
 * daemon must not be running on the store.
 *
 * Usage: fill_store STORE N CGROUP_PATH RESOURCE
 * Prints the connection's id.
 */
#include <airlock/common.h>
#include <airlock/store.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	struct store *s;
	struct store_conn c = {
		.opened_us = al_now_us(), .cgroup_id = 7, .pid = 4242, .uid = 65534, .comm = "fill_store",
		.exe = "/usr/bin/fill_store", .agent_addr = "127.0.0.1", .agent_port = 40000,
		.dst_addr = "127.0.0.9", .dst_port = 5432, .protocol = "postgres",
	};
	struct store_stmt_outcome o = { .tag = "SELECT 1", .rows = 1, .duration_us = 41 };
	int64_t conn, id;
	long n;

	if (argc != 5 || (n = strtol(argv[2], NULL, 10)) <= 0) {
		fprintf(stderr, "usage: fill_store STORE N CGROUP_PATH RESOURCE\n");
		return 2;
	}
	c.cgroup_path = argv[3];
	c.resource = argv[4];
	if (store_open(argv[1], &s) < 0)
		return 1;
	if (store_conn_open(s, &c, &conn) < 0)
		goto fail;
	for (long i = 0; i < n; i++) {
		char q[96];
		struct store_stmt st = {
			.conn_id = conn, .seq = i, .at_us = al_now_us(), .protocol = "simple", .text = q,
			.kind = "read", .fingerprint = "5e9d2c1b7a3f4e60",
			.relations_json = "[\"pgbench_accounts\"]", .decision = "allow",
		};

		snprintf(q, sizeof(q), "SELECT abalance FROM pgbench_accounts WHERE aid = %ld;",
			 (i * 7919) % 1000000);
		if (store_batch_begin(s) < 0 || store_stmt_add(s, &st, &id) < 0 ||
		    store_stmt_outcome(s, id, &o) < 0 ||
		    ((i + 1) % 40 == 0 && store_batch_commit_settled(s) < 0))
			goto fail;
	}
	{
		struct store_conn_end e = { .closed_us = al_now_us(), .reason = AL_REASON_CLOSED };

		if (store_batch_commit(s) < 0 || store_conn_close(s, conn, &e) < 0)
			goto fail;
	}
	store_close(s);
	printf("%lld\n", (long long)conn);
	return 0;
fail:
	store_close(s);
	return 1;
}
