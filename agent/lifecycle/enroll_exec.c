/* exec enroller: any CA with a command line (openssl ca, step, vault). */
#include "enroll.h"

#include "mtls_clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

mtls_err_t enroll_exec(const struct cfg_renew *r, const char *csr_pem,
		       struct enroll_result *res, struct mtls_error *err)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, status = 0;
	uint64_t deadline = mtls_now_ms() + r->exec_timeout_ms;
	size_t csr_len = strlen(csr_pem), sent = 0, got = 0;
	char *buf = NULL;
	mtls_err_t ret = MTLS_OK;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
		ret = mtls_error_set(err, MTLS_ERR_IO, "pipe: %s", strerror(errno));
		goto out;
	}
	buf = malloc(ENROLL_ANSWER_MAX + 1);
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
		execl("/bin/sh", "sh", "-c", r->exec, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	while (out[0] >= 0) {
		struct pollfd p[2] = { { .fd = in[1], .events = POLLOUT },
				       { .fd = out[0], .events = POLLIN } };
		int64_t left = (int64_t)(deadline - mtls_now_ms());
		ssize_t n;

		if (left <= 0) {
			kill(-pid, SIGKILL);
			ret = mtls_error_set(err, MTLS_ERR_TIMEOUT,
					     "exec enroller ran over %u ms",
					     r->exec_timeout_ms);
			break;
		}
		if (poll(p, 2, (int)left) < 0 && errno != EINTR)
			break;
		if (in[1] >= 0 && (p[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
			n = write(in[1], csr_pem + sent, csr_len - sent);
			if (n > 0)
				sent += (size_t)n;
			if (n < 0 && errno != EAGAIN) {
				close(in[1]);
				in[1] = -1;
			} else if (sent == csr_len) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(out[0], buf + got, ENROLL_ANSWER_MAX - got);
			if (n > 0) {
				got += (size_t)n;
				if (got == ENROLL_ANSWER_MAX) {
					kill(-pid, SIGKILL);
					ret = mtls_error_set(err, MTLS_ERR_LIMIT,
							     "exec enroller "
							     "printed over %d "
							     "bytes",
							     ENROLL_ANSWER_MAX);
					break;
				}
			} else if (n == 0 || errno != EAGAIN) {
				close(out[0]);
				out[0] = -1;
			}
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (ret == MTLS_OK && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
		ret = mtls_error_set(err, MTLS_ERR_IO,
				     "exec enroller failed (%s %d)",
				     WIFEXITED(status) ? "exit" : "signal",
				     WIFEXITED(status) ? WEXITSTATUS(status) :
							 WTERMSIG(status));
	if (ret == MTLS_OK) {
		buf[got] = '\0';
		if (strstr(buf, "-----BEGIN CERTIFICATE-----") == NULL)
			ret = mtls_error_set(err, MTLS_ERR_CERT,
					     "exec enroller printed no PEM "
					     "certificate");
		else {
			res->chain_pem = buf;
			buf = NULL;
		}
	}
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	free(buf);
	return ret;
}

mtls_err_t enroll_submit(const struct cfg_identity *ci,
			 struct identity *current, const char *csr_pem,
			 struct enroll_result *res, struct mtls_error *err)
{
	switch (ci->renew.enroll) {
	case CFG_ENROLL_EXEC:
		return enroll_exec(&ci->renew, csr_pem, res, err);
	case CFG_ENROLL_EST:
		return enroll_est(&ci->renew, current, csr_pem, res, err);
	default:
		return mtls_error_set(err, MTLS_ERR_CONFIG,
				      "[identity %s] has no enroll=", ci->name);
	}
}
