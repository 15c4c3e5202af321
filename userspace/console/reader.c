/*
 * The console's long reads, in a thread of their own.
 *
 * An audit search or a session view can read much of the store: a search with a filter that
 * matches little reads every batch back to its `since`, and a day of pgbench is millions of
 * statements. Run in the event loop, such a read held up every proxied session for as long as it
 * took (37 s for a search over 2M statements). Here the loop only commits what it holds
 * (store_reader_sync), queues the job and suspends the request; a thread reads on a connection
 * of its own (a WAL snapshot: the loop goes on writing), and the loop resumes the request when
 * the answer is in. One thread: reads queue behind one another, never behind the proxies.
 *
 * A job belongs to its request (struct creq in server.c): the thread only borrows it between
 * reader_submit and handing it back on the done list, and the request is suspended all that
 * time, so it cannot end under the thread.
 */
#include "console_int.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* A read that runs longer is stopped, and its request told to narrow the search. */
#define READ_BUDGET_US (60LL * 1000000)

static void *reader_main(void *arg)
{
	struct creader *rd = arg;
	const uint64_t one = 1;

	pthread_mutex_lock(&rd->mu);
	for (;;) {
		struct cjob *j;

		while (!rd->stop && TAILQ_EMPTY(&rd->todo))
			pthread_cond_wait(&rd->cv, &rd->mu);
		if (rd->stop)
			break;
		j = TAILQ_FIRST(&rd->todo);
		TAILQ_REMOVE(&rd->todo, j, link);
		pthread_mutex_unlock(&rd->mu);
		if (store_reader_begin(rd->sr, READ_BUDGET_US) < 0) {
			reply_error(&j->r, 500, "could not read the store");
		} else {
			api_run_job(rd->sr, j);
			if (store_reader_timed_out(rd->sr))
				reply_error(&j->r, 503, "the read took over %lld s and was stopped: narrow it "
					    "(agent, resource, decision, since)", READ_BUDGET_US / 1000000);
			store_reader_end(rd->sr);
		}
		pthread_mutex_lock(&rd->mu);
		TAILQ_INSERT_TAIL(&rd->done, j, link);
		if (write(rd->efd, &one, sizeof(one)) != sizeof(one))
			al_warn("console: cannot wake the event loop for a finished read");
	}
	pthread_mutex_unlock(&rd->mu);
	return NULL;
}

/* Resumes the requests whose answers are in (their next MHD_run sends them, server.c). */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
	struct console *c = arg;
	struct creader *rd = &c->rd;
	struct cjobs done = TAILQ_HEAD_INITIALIZER(done);
	struct cjob *j;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		al_warn("console: reading the reader's eventfd: %s", strerror(errno));
	pthread_mutex_lock(&rd->mu);
	TAILQ_CONCAT(&done, &rd->done, link);
	pthread_mutex_unlock(&rd->mu);
	while ((j = TAILQ_FIRST(&done))) {
		TAILQ_REMOVE(&done, j, link);
		MHD_resume_connection(j->conn);
	}
	console_kick(c);
	(void)what;
}

int reader_start(struct console *c, const char *store_path, char *err, size_t errlen)
{
	struct creader *rd = &c->rd;
	char why[512];

	TAILQ_INIT(&rd->todo);
	TAILQ_INIT(&rd->done);
	rd->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (rd->efd < 0)
		return al_errf(err, errlen, "console: eventfd: %s", strerror(errno));
	if (store_reader_open(store_path, &rd->sr, why, sizeof(why)) < 0)
		return al_errf(err, errlen, "console: cannot read the store: %s", why);
	rd->ev = event_new(c->base, rd->efd, EV_READ | EV_PERSIST, on_done, c);
	if (!rd->ev || event_add(rd->ev, NULL) < 0)
		return al_errf(err, errlen, "console: cannot register with the event loop");
	if (pthread_mutex_init(&rd->mu, NULL) != 0)
		return al_errf(err, errlen, "console: cannot make a mutex");
	if (pthread_cond_init(&rd->cv, NULL) != 0) {
		pthread_mutex_destroy(&rd->mu);
		return al_errf(err, errlen, "console: cannot make a condition variable");
	}
	if (pthread_create(&rd->thr, NULL, reader_main, rd) != 0) {
		pthread_cond_destroy(&rd->cv);
		pthread_mutex_destroy(&rd->mu);
		return al_errf(err, errlen, "console: cannot start the reader thread");
	}
	rd->running = 1;
	return 0;
}

int reader_submit(struct console *c, struct cjob *j)
{
	struct creader *rd = &c->rd;

	/* The thread's snapshot must hold what the loop has in memory and in its open batch. */
	if (store_reader_sync(c->store) < 0)
		return -1;
	pthread_mutex_lock(&rd->mu);
	TAILQ_INSERT_TAIL(&rd->todo, j, link);
	pthread_cond_signal(&rd->cv);
	pthread_mutex_unlock(&rd->mu);
	return 0;
}

void reader_stop(struct console *c)
{
	struct creader *rd = &c->rd;
	struct cjob *j;

	if (rd->running) {
		pthread_mutex_lock(&rd->mu);
		rd->stop = 1;
		pthread_cond_signal(&rd->cv);
		pthread_mutex_unlock(&rd->mu);
		store_reader_interrupt(rd->sr);
		pthread_join(rd->thr, NULL);
		rd->running = 0;
		pthread_cond_destroy(&rd->cv);
		pthread_mutex_destroy(&rd->mu);
		/* The thread is gone: what it did not answer is answered here. */
		while ((j = TAILQ_FIRST(&rd->todo))) {
			TAILQ_REMOVE(&rd->todo, j, link);
			reply_error(&j->r, 503, "airlockd is stopping");
			MHD_resume_connection(j->conn);
		}
		while ((j = TAILQ_FIRST(&rd->done))) {
			TAILQ_REMOVE(&rd->done, j, link);
			MHD_resume_connection(j->conn);
		}
	}
	if (rd->ev)
		event_free(rd->ev);
	rd->ev = NULL;
	if (rd->efd > 0)
		close(rd->efd);
	rd->efd = -1;
	store_reader_close(rd->sr);
	rd->sr = NULL;
}

void cjob_free(struct cjob *j)
{
	if (!j)
		return;
	free(j->what);
	free(j->agent);
	free(j->resource);
	free(j->decision);
	json_decref(j->r.json);
	free(j->r.text);
	free(j);
}
