/* /metrics in the Prometheus text format: pending, decisions, statements, kernel counters, fence repairs, decision latency. */
#include "console_int.h"

#include <stdlib.h>

static int put_state(void *arg, const char *key, int64_t n)
{
	fprintf(arg, "airlock_review_requests_total{state=\"%s\"} %lld\n", key, (long long)n);
	return 0;
}

static int put_decision(void *arg, const char *key, int64_t n)
{
	fprintf(arg, "airlock_statements_total{decision=\"%s\"} %lld\n", key, (long long)n);
	return 0;
}

void metrics_render(struct console *c, struct reply *r)
{
	static const double bounds[] = { 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600 };
	uint64_t counts[AL_ARRAY_LEN(bounds)], total = 0, kc[AL_REASON_MAX];
	double sum = 0;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f) {
		reply_error(r, 500, "out of memory");
		return;
	}
	fprintf(f, "# HELP airlock_pending_requests Commands waiting for reviewers now.\n"
		   "# TYPE airlock_pending_requests gauge\n"
		   "airlock_pending_requests %zu\n", approval_pending_count(c->approval));
	{
		json_t *wh = approval_webhook_json(c->approval);

		if (wh) {
			fprintf(f, "# HELP airlock_webhook_deliveries_total Review webhook deliveries since start: "
				   "delivered, or given up after the last try.\n"
				   "# TYPE airlock_webhook_deliveries_total counter\n"
				   "airlock_webhook_deliveries_total{result=\"delivered\"} %lld\n"
				   "airlock_webhook_deliveries_total{result=\"undelivered\"} %lld\n",
				(long long)json_integer_value(json_object_get(wh, "delivered")),
				(long long)json_integer_value(json_object_get(wh, "undelivered")));
			json_decref(wh);
		}
	}
	fprintf(f, "# HELP airlock_review_requests_total Review requests by state (decisions by kind).\n"
		   "# TYPE airlock_review_requests_total counter\n");
	if (store_count_requests_by_state(c->store, put_state, f) < 0)
		al_warn("metrics: cannot count requests");
	fprintf(f, "# HELP airlock_statements_total Audited statements by policy decision.\n"
		   "# TYPE airlock_statements_total counter\n");
	switch (store_count_statements_by_decision(c->store, put_decision, f)) {
	case 0:
		break;
	case 1:         /* no partial counter: it would jump once the count is done */
		fprintf(f, "# airlock_statements_total: the statements in the store are being counted\n");
		break;
	default:
		al_warn("metrics: cannot count statements");
	}
	if (kern_counters(c->kern, kc) == 0) {
		fprintf(f, "# HELP airlock_steered_connections_total Connections the kernel steered into airlockd.\n"
			   "# TYPE airlock_steered_connections_total counter\n"
			   "airlock_steered_connections_total %llu\n", (unsigned long long)kc[AL_REASON_STEERED]);
		fprintf(f, "# HELP airlock_refusals_total What the kernel fence refused, by reason.\n"
			   "# TYPE airlock_refusals_total counter\n");
		for (unsigned int i = 1; i < AL_REASON_MAX; i++)
			if (i != AL_REASON_STEERED && kc[i])
				fprintf(f, "airlock_refusals_total{reason=\"%s\"} %llu\n", al_reason_name(i),
					(unsigned long long)kc[i]);
	}
	{
		struct kern_fence_stats fs;

		kern_fence_stats(c->kern, &fs);
		fprintf(f, "# HELP airlock_fence_repairs_total Pinned links airlockd put back since start: "
			   "found detached, running another program, or without their pin.\n"
			   "# TYPE airlock_fence_repairs_total counter\n"
			   "airlock_fence_repairs_total{found=\"detached\"} %llu\n"
			   "airlock_fence_repairs_total{found=\"replaced\"} %llu\n"
			   "airlock_fence_repairs_total{found=\"unpinned\"} %llu\n"
			   "# HELP airlock_fence_repair_failures_total Pinned links found detached, re-programmed or unpinned "
			   "that airlockd could not put back, since start.\n"
			   "# TYPE airlock_fence_repair_failures_total counter\n"
			   "airlock_fence_repair_failures_total %llu\n",
			(unsigned long long)fs.detached, (unsigned long long)fs.replaced,
			(unsigned long long)fs.unpinned, (unsigned long long)fs.failed);
	}
	if (store_decision_latency(c->store, bounds, AL_ARRAY_LEN(bounds), counts, &total, &sum) == 0) {
		fprintf(f, "# HELP airlock_decision_latency_seconds Time from request to a reviewer's decision.\n"
			   "# TYPE airlock_decision_latency_seconds histogram\n");
		for (size_t i = 0; i < AL_ARRAY_LEN(bounds); i++)
			fprintf(f, "airlock_decision_latency_seconds_bucket{le=\"%g\"} %llu\n", bounds[i],
				(unsigned long long)counts[i]);
		fprintf(f, "airlock_decision_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
			   "airlock_decision_latency_seconds_sum %.6f\n"
			   "airlock_decision_latency_seconds_count %llu\n",
			(unsigned long long)total, sum, (unsigned long long)total);
	}
	if (fclose(f) != 0 || !buf) {
		free(buf);
		reply_error(r, 500, "out of memory");
		return;
	}
	r->status = 200;
	r->text = buf;
	r->text_len = len;
	r->ctype = "text/plain; version=0.0.4; charset=utf-8";
}
