/*
 * The console's password checks, in a thread of their own.
 *
 * A check is PBKDF2 (~80 ms of a core here), and logins come from anyone who reaches the
 * console: run in the event loop, each one held up every proxied session for that long (a
 * flood of bad logins took an agent's SELECT 1 from 0.1 ms to 222 ms on average). reader.c's
 * shape: the loop queues a job and suspends the login request; the thread checks the password
 * and hands the job back through an eventfd; the loop resumes the request, whose next call
 * (server.c) answers it (auth_login_done). At most CONSOLE_VERIFY_MAX jobs wait or run: more
 * are refused at once (auth.c), never queued.
 *
 * A job belongs to its request (struct creq in server.c): the thread only borrows it between
 * verify_submit and handing it back, while the request is suspended and so cannot end.
 */
#include "console_int.h"

#include <airlock/password.h>

#include <errno.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

/* The thread's nice value: when the cores are busy, the checks give way to the event loop. */
#define VERIFY_NICE 10

static void *verify_main(void *arg)
{
	struct cverify *vf = arg;
	const uint64_t one = 1;

	/* Linux: PRIO_PROCESS with a thread's id sets that thread's nice value alone. */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), VERIFY_NICE) < 0)
		al_warn("console: cannot lower the password thread's priority: %s", strerror(errno));
	pthread_mutex_lock(&vf->mu);
	for (;;) {
		struct vjob *j;

		while (!vf->stop && TAILQ_EMPTY(&vf->todo))
			pthread_cond_wait(&vf->cv, &vf->mu);
		if (vf->stop)
			break;
		j = TAILQ_FIRST(&vf->todo);
		TAILQ_REMOVE(&vf->todo, j, link);
		pthread_mutex_unlock(&vf->mu);
		j->ok = al_password_verify(j->pw, j->hash) == 1;
		j->checked = 1;
		OPENSSL_cleanse(j->pw, sizeof(j->pw));
		pthread_mutex_lock(&vf->mu);
		TAILQ_INSERT_TAIL(&vf->done, j, link);
		if (write(vf->efd, &one, sizeof(one)) != sizeof(one))
			al_warn("console: cannot wake the event loop for a checked password");
	}
	pthread_mutex_unlock(&vf->mu);
	return NULL;
}

/* Resumes the logins whose passwords are checked (their next MHD_run answers them). */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
	struct console *c = arg;
	struct cverify *vf = &c->vf;
	struct vjobs done = TAILQ_HEAD_INITIALIZER(done);
	struct vjob *j;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		al_warn("console: reading the verifier's eventfd: %s", strerror(errno));
	pthread_mutex_lock(&vf->mu);
	TAILQ_CONCAT(&done, &vf->done, link);
	pthread_mutex_unlock(&vf->mu);
	while ((j = TAILQ_FIRST(&done))) {
		TAILQ_REMOVE(&done, j, link);
		vf->n--;
		MHD_resume_connection(j->conn);
	}
	console_kick(c);
	(void)what;
}

int verify_start(struct console *c, char *err, size_t errlen)
{
	struct cverify *vf = &c->vf;

	TAILQ_INIT(&vf->todo);
	TAILQ_INIT(&vf->done);
	vf->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (vf->efd < 0)
		return al_errf(err, errlen, "console: eventfd: %s", strerror(errno));
	vf->ev = event_new(c->base, vf->efd, EV_READ | EV_PERSIST, on_done, c);
	if (!vf->ev || event_add(vf->ev, NULL) < 0)
		return al_errf(err, errlen, "console: cannot register with the event loop");
	if (pthread_mutex_init(&vf->mu, NULL) != 0)
		return al_errf(err, errlen, "console: cannot make a mutex");
	if (pthread_cond_init(&vf->cv, NULL) != 0) {
		pthread_mutex_destroy(&vf->mu);
		return al_errf(err, errlen, "console: cannot make a condition variable");
	}
	if (pthread_create(&vf->thr, NULL, verify_main, vf) != 0) {
		pthread_cond_destroy(&vf->cv);
		pthread_mutex_destroy(&vf->mu);
		return al_errf(err, errlen, "console: cannot start the password thread");
	}
	vf->running = 1;
	return 0;
}

int verify_full(const struct console *c)
{
	return !c->vf.running || c->vf.n >= CONSOLE_VERIFY_MAX;
}

void verify_submit(struct console *c, struct vjob *j)
{
	struct cverify *vf = &c->vf;

	vf->n++;
	pthread_mutex_lock(&vf->mu);
	TAILQ_INSERT_TAIL(&vf->todo, j, link);
	pthread_cond_signal(&vf->cv);
	pthread_mutex_unlock(&vf->mu);
}

void verify_stop(struct console *c)
{
	struct cverify *vf = &c->vf;
	struct vjob *j;

	if (vf->running) {
		pthread_mutex_lock(&vf->mu);
		vf->stop = 1;
		pthread_cond_signal(&vf->cv);
		pthread_mutex_unlock(&vf->mu);
		pthread_join(vf->thr, NULL);
		vf->running = 0;
		pthread_cond_destroy(&vf->cv);
		pthread_mutex_destroy(&vf->mu);
		/* The thread is gone: what it did not check goes back unchecked. */
		while ((j = TAILQ_FIRST(&vf->todo))) {
			TAILQ_REMOVE(&vf->todo, j, link);
			MHD_resume_connection(j->conn);
		}
		while ((j = TAILQ_FIRST(&vf->done))) {
			TAILQ_REMOVE(&vf->done, j, link);
			MHD_resume_connection(j->conn);
		}
		vf->n = 0;
	}
	if (vf->ev)
		event_free(vf->ev);
	vf->ev = NULL;
	if (vf->efd > 0)
		close(vf->efd);
	vf->efd = -1;
}

void vjob_free(struct vjob *j)
{
	if (!j)
		return;
	OPENSSL_cleanse(j, sizeof(*j));
	free(j);
}
