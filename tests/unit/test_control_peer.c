/* control_peer_alive: is the review socket's caller still the process that connected? */
#include "harness.h"

#include <airlock/control.h>

#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* A child that waits to be killed. */
static pid_t child(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		pause();
		_exit(0);
	}
	return pid;
}

/* Without a pidfd of the peer (not a socket here, or a kernel before 6.5): the start time the
 * accept read against the pid's now. */
static void test_by_start_time(void)
{
	pid_t pid = child();
	struct control_peer peer = { .fd = -1, .pid = pid, .start = control_pid_start(pid), .open = 1 };

	CHECK(pid > 0 && peer.start > 0);
	CHECK(control_peer_alive(&peer) == 1);
	peer.start++;           /* another process with that pid */
	CHECK(control_peer_alive(&peer) == 0);
	peer.start--;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	CHECK(control_peer_alive(&peer) == 0);
	peer.start = 0;         /* never known: not taken as alive */
	peer.pid = getpid();
	CHECK(control_peer_alive(&peer) == 0);
	CHECK(control_pid_start(getpid()) > 0 && control_pid_start(0) == 0 && control_pid_start(-1) == 0);
}

/* With one: the kernel's record of who connected decides, whatever the start time says. */
static void test_by_pidfd(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct control_peer peer = { .pid = getpid(), .start = 0, .open = 1 };
	int sv[2], l, c, pidfd = -1;
	socklen_t len = sizeof(pidfd);
	pid_t pid;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	if (getsockopt(sv[0], SOL_SOCKET, 77 /* SO_PEERPIDFD */, &pidfd, &len) < 0) {
		printf("#   no SO_PEERPIDFD on this kernel: the start time decides (test_by_start_time)\n");
		close(sv[0]);
		close(sv[1]);
		return;
	}
	close(pidfd);
	peer.fd = sv[0];
	CHECK(control_peer_alive(&peer) == 1);          /* this process, start time unknown */
	close(sv[0]);
	close(sv[1]);
	/* A peer that connected and exited: its socket is still there, its process is not. */
	snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "airlock-test-peer-%d", (int)getpid());
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(l >= 0 && bind(l, (struct sockaddr *)&sun, sizeof(sun)) == 0 && listen(l, 1) == 0);
	pid = fork();
	if (pid == 0) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		_exit(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 ? 0 : 1);
	}
	c = accept(l, NULL, NULL);
	CHECK(c >= 0 && waitpid(pid, NULL, 0) == pid);
	peer = (struct control_peer){ .fd = c, .pid = pid, .start = 0, .open = 1 };
	CHECK(control_peer_alive(&peer) == 0);
	close(c);
	close(l);
}

int main(void)
{
	RUN(test_by_start_time);
	RUN(test_by_pidfd);
	TEST_EXIT();
}
