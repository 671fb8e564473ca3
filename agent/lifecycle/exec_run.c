/* Helpers the lifecycle runs (the exec enroller, the ACME dns-01 hook). */
#include "exec_run.h"

#include "mtls_clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Without a pidfd (an old kernel, a seccomp filter), the helper's exit is
 * looked for this often. */
#define EXEC_EXIT_TICK_MS 50

/* A helper that exits without reading all its input makes the write fail
 * with EPIPE, and raises SIGPIPE, which kills a caller that does not
 * ignore it (mtlsctl, a test): blocked for the write, and a SIGPIPE the
 * write raised is taken before it is unblocked. */
static ssize_t write_no_sigpipe(int fd, const void *p, size_t n)
{
	static const struct timespec zero = { 0, 0 };
	sigset_t pipe_set, old;
	ssize_t r;
	int e;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	r = write(fd, p, n);
	e = errno;
	if (r < 0 && e == EPIPE)
		while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
			;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return r;
}

/* 1 once the helper has exited, still unreaped (so that its pid, and the
 * group named after it, cannot be reused while we kill that group). */
static int helper_exited(pid_t pid)
{
	siginfo_t si = { 0 };

	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
		return errno == ECHILD;
	return si.si_pid == pid;
}

static void reap(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
}

static char *const helper_env[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	NULL,
};

mtls_err_t exec_run(const char *what, char *const argv[], const char *input,
		    unsigned timeout_ms, size_t max, char **output,
		    struct mtls_error *err)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, status = 0, pidfd = -1;
	uint64_t deadline = mtls_now_ms() + timeout_ms;
	size_t in_len = strlen(input), sent = 0, got = 0;
	char *buf = NULL;
	mtls_err_t ret = MTLS_OK;
	int exited = 0;
	pid_t pid;

	*output = NULL;
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
		ret = mtls_error_set(err, MTLS_ERR_IO, "pipe: %s", strerror(errno));
		goto out;
	}
	buf = malloc(max + 1);
	if (buf == NULL) {
		ret = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		ret = mtls_error_set(err, MTLS_ERR_IO, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		sigset_t none;

		/* Its own process group, so a timeout kills the whole helper;
		 * the agent's blocked signals are not inherited. */
		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
			_exit(127);
		/* A clean, explicit environment: nothing of the agent's (an
		 * env: PIN source, NOTIFY_SOCKET, CREDENTIALS_DIRECTORY)
		 * reaches the helper. */
		execve(argv[0], argv, helper_env);
		_exit(127);
	}
	/* Here too: the group must exist before we may kill it, whichever of
	 * us runs first. */
	(void)setpgid(pid, pid);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	if (fcntl(in[1], F_SETFL, O_NONBLOCK) != 0 ||
	    fcntl(out[0], F_SETFL, O_NONBLOCK) != 0) {
		ret = mtls_error_set(err, MTLS_ERR_IO, "fcntl: %s",
				     strerror(errno));
		goto end;
	}
	/* The helper's exit ends the exchange, not the end of its stdout: a
	 * helper that closed stdout may run on, and a child of it may hold
	 * stdout open. exec_timeout bounds the whole. */
	while (!exited) {
		struct pollfd p[3] = { { .fd = in[1], .events = POLLOUT },
				       { .fd = out[0], .events = POLLIN },
				       { .fd = pidfd, .events = POLLIN } };
		int64_t left = (int64_t)(deadline - mtls_now_ms());
		ssize_t n;

		if (left <= 0) {
			ret = mtls_error_set(err, MTLS_ERR_TIMEOUT,
					     "%s ran over %u ms", what,
					     timeout_ms);
			break;
		}
		if (pidfd < 0 && left > EXEC_EXIT_TICK_MS)
			left = EXEC_EXIT_TICK_MS;
		if (poll(p, 3, (int)left) < 0 && errno != EINTR) {
			ret = mtls_error_set(err, MTLS_ERR_IO, "poll: %s",
					     strerror(errno));
			break;
		}
		if (in[1] >= 0 && (p[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
			n = write_no_sigpipe(in[1], input + sent,
					     in_len - sent);
			if (n > 0)
				sent += (size_t)n;
			if ((n < 0 && errno != EAGAIN) || sent == in_len) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if (out[0] >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			n = read(out[0], buf + got, max - got);
			if (n > 0) {
				got += (size_t)n;
				if (got == max) {
					ret = mtls_error_set(err, MTLS_ERR_LIMIT,
							     "%s printed over "
							     "%zu bytes", what,
							     max);
					break;
				}
			} else if (n == 0 || errno != EAGAIN) {
				close(out[0]);
				out[0] = -1;
			}
		}
		exited = helper_exited(pid);
	}
end:
	/* Whatever is left of the helper's group ends with it (a child that
	 * held stdout, one that ran on after it), while the unreaped helper
	 * still holds the group's number. */
	(void)kill(-pid, SIGKILL);
	reap(pid, &status);
	/* What the helper printed before it exited and is still in the pipe. */
	while (ret == MTLS_OK && out[0] >= 0 && got < max) {
		ssize_t n = read(out[0], buf + got, max - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (ret == MTLS_OK && got == max)
		ret = mtls_error_set(err, MTLS_ERR_LIMIT, "%s printed over %zu "
				     "bytes", what, max);
	if (ret == MTLS_OK && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
		ret = mtls_error_set(err, MTLS_ERR_IO,
				     "%s failed (%s %d)", what,
				     WIFEXITED(status) ? "exit" : "signal",
				     WIFEXITED(status) ? WEXITSTATUS(status) :
							 WTERMSIG(status));
	if (ret == MTLS_OK) {
		buf[got] = '\0';
		*output = buf;
		buf = NULL;
	}
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	if (pidfd >= 0)
		close(pidfd);
	free(buf);
	return ret;
}
