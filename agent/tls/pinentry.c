/* A hand-written Assuan client for pinentry: the dialogue is a dozen fixed
 * lines, and libassuan would keep the PIN in buffers it allocates and frees
 * itself; here every byte of a D line stays in a stack line buffer wiped
 * before return and the PIN goes straight into an mtls_secret. */
#include "pinentry.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mtls_hex.h"

/* libgpg-error codes, low 16 bits (the high byte is the source). */
#define GPG_ERR_CANCELED 99
#define GPG_ERR_FULLY_CANCELED 198

mtls_err_t pinentry_escape(const char *text, char *out, size_t outlen)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p == '%' || *p < 0x20) {
			if (o + 3 >= outlen)
				return MTLS_ERR_LIMIT;
			snprintf(out + o, 4, "%%%02X", *p);
			o += 3;
		} else {
			if (o + 1 >= outlen)
				return MTLS_ERR_LIMIT;
			out[o++] = (char)*p;
		}
	}
	if (o >= outlen)
		return MTLS_ERR_LIMIT;
	out[o] = '\0';
	return MTLS_OK;
}

enum pinentry_reply pinentry_parse(const char *line, size_t len,
				   struct mtls_secret *data)
{
	if (len >= PINENTRY_LINE_MAX || memchr(line, '\0', len) != NULL)
		return PINENTRY_R_BAD;
	if (len >= 2 && memcmp(line, "OK", 2) == 0 && (len == 2 || line[2] == ' '))
		return PINENTRY_R_OK;
	if (len >= 2 && memcmp(line, "D ", 2) == 0) {
		if (data == NULL)
			return PINENTRY_R_BAD;
		for (size_t i = 2; i < len; i++) {
			int c = (unsigned char)line[i];

			if (c == '%') {
				int h, l;

				if (i + 2 >= len)
					return PINENTRY_R_BAD;
				h = mtls_hexval(line[i + 1]);
				l = mtls_hexval(line[i + 2]);
				if (h < 0 || l < 0)
					return PINENTRY_R_BAD;
				c = h * 16 + l;
				i += 2;
			}
			if (data->len >= MTLS_SECRET_MAX)
				return PINENTRY_R_BAD;
			data->buf[data->len++] = (char)c;
			data->buf[data->len] = '\0';
		}
		return PINENTRY_R_DATA;
	}
	if (len >= 3 && memcmp(line, "ERR", 3) == 0 && (len == 3 || line[3] == ' ')) {
		char num[16];
		size_t n = 0;
		unsigned long code;

		for (size_t i = 4; i < len && line[i] >= '0' && line[i] <= '9' &&
				   n + 1 < sizeof(num); i++)
			num[n++] = line[i];
		num[n] = '\0';
		code = n > 0 ? strtoul(num, NULL, 10) : 0;
		if ((code & 0xffff) == GPG_ERR_CANCELED ||
		    (code & 0xffff) == GPG_ERR_FULLY_CANCELED)
			return PINENTRY_R_CANCEL;
		return PINENTRY_R_ERR;
	}
	if ((len >= 1 && line[0] == '#') ||
	    (len >= 2 && memcmp(line, "S ", 2) == 0) || (len == 1 && line[0] == 'S'))
		return PINENTRY_R_SKIP;
	return PINENTRY_R_BAD;
}

struct conn {
	int in, out; /* we write to in (child's stdin), read from out */
	pid_t pid;
	struct timespec deadline;
	char line[PINENTRY_LINE_MAX + 1];
	size_t have; /* bytes buffered in line */
};

static int ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (deadline->tv_sec - now.tv_sec) * 1000LL +
	     (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

/* Reads one line (without its newline) into c->line; returns its length,
 * -1 on EOF or error, -2 on timeout, -3 for a line too long. */
static ssize_t read_line(struct conn *c)
{
	for (;;) {
		char *nl = memchr(c->line, '\n', c->have);
		struct pollfd p = {.fd = c->out, .events = POLLIN};
		ssize_t n;
		int left;

		if (nl != NULL)
			return nl - c->line;
		if (c->have >= PINENTRY_LINE_MAX)
			return -3;
		left = ms_left(&c->deadline);
		if (left == 0)
			return -2;
		n = poll(&p, 1, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return -2;
		n = read(c->out, c->line + c->have, PINENTRY_LINE_MAX - c->have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c->have += (size_t)n;
	}
}

static void drop_line(struct conn *c, size_t len)
{
	size_t rest = c->have - len - 1;

	memmove(c->line, c->line + len + 1, rest);
	explicit_bzero(c->line + rest, c->have - rest);
	c->have = rest;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Sends "CMD ARG" (ARG escaped) and reads up to the OK or ERR; D lines go
 * to data (NULL: D lines are an error). */
static mtls_err_t command(struct conn *c, const char *cmd, const char *arg,
			  struct mtls_secret *data, struct mtls_error *err)
{
	char msg[PINENTRY_LINE_MAX + 1];
	char esc[PINENTRY_LINE_MAX];
	int n;

	if (arg != NULL && pinentry_escape(arg, esc, sizeof(esc)) != MTLS_OK)
		return mtls_error_set(err, MTLS_ERR_LIMIT,
				      "pinentry: %s text too long", cmd);
	n = arg != NULL ? snprintf(msg, sizeof(msg), "%s %s\n", cmd, esc)
			: snprintf(msg, sizeof(msg), "%s\n", cmd);
	if (n < 0 || n >= PINENTRY_LINE_MAX)
		return mtls_error_set(err, MTLS_ERR_LIMIT,
				      "pinentry: %s line too long", cmd);
	if (write_all(c->in, msg, (size_t)n) != 0)
		return mtls_error_set(err, MTLS_ERR_IO,
				      "pinentry: write %s: %s", cmd,
				      strerror(errno));
	for (;;) {
		ssize_t len = read_line(c);
		enum pinentry_reply r;

		if (len == -2)
			return mtls_error_set(err, MTLS_ERR_TIMEOUT,
					      "pinentry: no answer to %s", cmd);
		if (len == -3)
			return mtls_error_set(err, MTLS_ERR_IO,
					      "pinentry: line too long");
		if (len < 0)
			return mtls_error_set(err, MTLS_ERR_PIN_MISSING,
					      "pinentry: closed during %s", cmd);
		r = pinentry_parse(c->line, (size_t)len, data);
		drop_line(c, (size_t)len);
		switch (r) {
		case PINENTRY_R_OK:
			return MTLS_OK;
		case PINENTRY_R_DATA:
		case PINENTRY_R_SKIP:
			continue;
		case PINENTRY_R_CANCEL:
			return mtls_error_set(err, MTLS_ERR_PIN_MISSING,
					      "pinentry: cancelled");
		case PINENTRY_R_ERR:
			return mtls_error_set(err, MTLS_ERR_IO,
					      "pinentry: %s refused", cmd);
		case PINENTRY_R_BAD:
			return mtls_error_set(err, MTLS_ERR_IO,
					      "pinentry: bad answer to %s", cmd);
		}
	}
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void child(const struct pinentry_req *req, int in, int out,
		  char *const envp[])
{
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
	    (devnull >= 0 && dup2(devnull, 2) < 0))
		_exit(127);
	/* Nothing of the agent's (sockets, token sessions, the control
	 * socket) reaches the pinentry. */
	if (close_range(3, ~0U, 0) != 0)
		for (int fd = 3; fd < 65536; fd++)
			close(fd);
	execve(req->program, (char *const[]){(char *)req->program, NULL}, envp);
	_exit(127);
}

mtls_err_t pinentry_ask(const struct pinentry_req *req, struct mtls_secret *out,
			struct mtls_error *err)
{
	struct conn *c = NULL;
	int to_child[2] = {-1, -1}, from_child[2] = {-1, -1};
	char env_path[] = "PATH=/usr/bin:/bin";
	char env_term[128], env_disp[128];
	char *envp[4];
	int ne = 0, status;
	mtls_err_t r;

	if (req->program == NULL || req->program[0] != '/')
		return mtls_error_set(err, MTLS_ERR_ARG,
				      "pinentry_program must be an absolute path");
	envp[ne++] = env_path;
	if (req->ttytype != NULL &&
	    snprintf(env_term, sizeof(env_term), "TERM=%s", req->ttytype) <
		    (int)sizeof(env_term))
		envp[ne++] = env_term;
	if (req->display != NULL &&
	    snprintf(env_disp, sizeof(env_disp), "DISPLAY=%s", req->display) <
		    (int)sizeof(env_disp))
		envp[ne++] = env_disp;
	envp[ne] = NULL;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, "pinentry");
	c->in = c->out = -1;
	c->pid = -1;
	if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) {
		r = mtls_error_set(err, MTLS_ERR_IO, "pinentry: pipe: %s",
				   strerror(errno));
		goto out;
	}
	c->pid = fork();
	if (c->pid < 0) {
		r = mtls_error_set(err, MTLS_ERR_IO, "pinentry: fork: %s",
				   strerror(errno));
		goto out;
	}
	if (c->pid == 0)
		child(req, to_child[0], from_child[1], envp);
	close(to_child[0]);
	close(from_child[1]);
	to_child[0] = from_child[1] = -1;
	c->in = to_child[1];
	c->out = from_child[0];
	to_child[1] = from_child[0] = -1;
	clock_gettime(CLOCK_MONOTONIC, &c->deadline);
	c->deadline.tv_sec += req->timeout_s > 0 ? req->timeout_s : 300;

	/* The greeting. */
	{
		ssize_t len = read_line(c);

		if (len < 0 || pinentry_parse(c->line, (size_t)len, NULL) !=
				       PINENTRY_R_OK) {
			r = mtls_error_set(err, MTLS_ERR_IO,
					   "pinentry %s did not start",
					   req->program);
			goto out;
		}
		drop_line(c, (size_t)len);
	}
	r = MTLS_OK;
	{
		char opt[PINENTRY_LINE_MAX];

		if (req->ttyname != NULL) {
			snprintf(opt, sizeof(opt), "ttyname=%s", req->ttyname);
			if ((r = command(c, "OPTION", opt, NULL, err)) != MTLS_OK)
				goto out;
		}
		if (req->ttytype != NULL) {
			snprintf(opt, sizeof(opt), "ttytype=%s", req->ttytype);
			if ((r = command(c, "OPTION", opt, NULL, err)) != MTLS_OK)
				goto out;
		}
		if (req->display != NULL) {
			snprintf(opt, sizeof(opt), "display=%s", req->display);
			if ((r = command(c, "OPTION", opt, NULL, err)) != MTLS_OK)
				goto out;
		}
	}
	if (req->title != NULL &&
	    (r = command(c, "SETTITLE", req->title, NULL, err)) != MTLS_OK)
		goto out;
	if (req->desc != NULL &&
	    (r = command(c, "SETDESC", req->desc, NULL, err)) != MTLS_OK)
		goto out;
	if (req->prompt != NULL &&
	    (r = command(c, "SETPROMPT", req->prompt, NULL, err)) != MTLS_OK)
		goto out;
	if (req->error != NULL &&
	    (r = command(c, "SETERROR", req->error, NULL, err)) != MTLS_OK)
		goto out;
	mtls_secret_wipe(out);
	if ((r = command(c, "GETPIN", NULL, out, err)) != MTLS_OK)
		goto out;
	if (out->len == 0)
		r = mtls_error_set(err, MTLS_ERR_PIN_MISSING,
				   "pinentry: empty PIN");
	else
		(void)write_all(c->in, "BYE\n", 4);
out:
	if (r != MTLS_OK)
		mtls_secret_wipe(out);
	for (int i = 0; i < 2; i++) {
		if (to_child[i] >= 0)
			close(to_child[i]);
		if (from_child[i] >= 0)
			close(from_child[i]);
	}
	if (c->in >= 0)
		close(c->in);
	if (c->out >= 0)
		close(c->out);
	if (c->pid > 0) {
		/* Closed stdin ends a pinentry; one that hangs is killed. */
		if (r == MTLS_ERR_TIMEOUT)
			kill(c->pid, SIGTERM);
		while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	explicit_bzero(c, sizeof(*c));
	free(c);
	return r;
}
