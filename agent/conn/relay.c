#include <wolfssl/options.h>

#include "relay.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/ssl.h>

#include "mtls_clock.h"
#include "stats.h"

#define RELAY_STOP_CHECK_MS 50

/* Server to app: the plaintext of several records already at hand goes
 * to the app in one send (a send to a Unix socket costs its wakeup and
 * buffer whatever its size: measured 30% of the relay's CPU at one send
 * per 16 KiB record). On the heap while bytes flow, freed when the server
 * side is idle. */
#define RELAY_DOWN_BUF 65536
#define TLS_RECORD_MAX 16384

struct dir {
	uint8_t *buf;
	size_t cap, len, off;
	int eof;  /* source finished */
	int done; /* EOF passed on to the sink */
};

/* The app's bytes before the filter took them. */
struct raw {
	uint8_t buf[RELAY_BUF];
	size_t len;
	int eof;
	int wait; /* the filter wants more than there is */
};

/* Reads the app into raw and lets the filter fill up; *verdict is the
 * filter's (RELAY_SWITCH and RELAY_REFUSE leave the rest in f->rest).
 * Returns 1 on progress, 0 if nothing changed. */
static int filter_step(struct relay_filter *f, struct raw *raw,
		       struct dir *up, int app_fd, int *verdict)
{
	size_t used = 0, olen = 0;
	int progress = 0;
	ssize_t n;

	*verdict = RELAY_PASS;
	if (!raw->eof && raw->len < sizeof(raw->buf) &&
	    (raw->len == 0 || raw->wait)) {
		n = recv(app_fd, raw->buf + raw->len, sizeof(raw->buf) - raw->len,
			 0);
		if (n > 0) {
			raw->len += (size_t)n;
			raw->wait = 0;
			progress = 1;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			raw->eof = 1;
			raw->wait = 0;
			progress = 1;
		}
	}
	if (raw->wait || (raw->len == 0 && !raw->eof))
		return progress;
	if (raw->len == 0) {
		up->eof = 1;
		return 1;
	}
	*verdict = f->fn(f->arg, raw->buf, raw->len, raw->eof, up->buf,
			 up->cap, &used, &olen);
	if (*verdict == RELAY_PASS && (used == 0 || used > raw->len ||
				       olen > up->cap))
		*verdict = RELAY_MORE;
	switch (*verdict) {
	case RELAY_PASS:
		memmove(raw->buf, raw->buf + used, raw->len - used);
		raw->len -= used;
		up->len = olen;
		up->off = 0;
		return 1;
	case RELAY_PLAIN:
		memcpy(up->buf, raw->buf, raw->len);
		up->len = raw->len;
		up->off = 0;
		up->eof = raw->eof;
		raw->len = 0;
		return 1;
	case RELAY_MORE:
		/* A head cut by the app's EOF is dropped; one that fills the
		 * buffer can never complete. */
		if (raw->eof) {
			raw->len = 0;
			up->eof = 1;
			return 1;
		}
		if (raw->len == sizeof(raw->buf)) {
			*verdict = RELAY_REFUSE;
			break;
		}
		raw->wait = 1;
		return progress;
	default:
		break;
	}
	if (f->rest != NULL) {
		memcpy(f->rest, raw->buf, raw->len);
		f->rest_len = raw->len;
	}
	raw->len = 0;
	return 1;
}

/* Reads the server's next records into down (its buffer allocated now),
 * as many as are already at hand and fit, so that they leave in one send;
 * frees the buffer when the server has sent nothing. 1: progress, 0:
 * nothing yet (the want flags say what for), -1: *r and err say why. */
static int read_server(WOLFSSL *ssl, struct tls_conn *tc, struct dir *down,
		       int *want_read, int *want_write, mtls_err_t *r,
		       struct mtls_error *err)
{
	int progress = 0;

	down->off = 0;
	for (;;) {
		size_t room;
		int n, e;

		if (down->buf == NULL && (down->buf = malloc(down->cap)) == NULL) {
			*r = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
			return -1;
		}
		room = down->cap - down->len;
		n = wolfSSL_read(ssl, down->buf + down->len, (int)room);
		if (n > 0) {
			down->len += (size_t)n;
			progress = 1;
			if (room - (size_t)n >= TLS_RECORD_MAX &&
			    (wolfSSL_pending(ssl) > 0 || tc->io.len > 0))
				continue;
			break;
		}
		e = wolfSSL_get_error(ssl, n);
		/* The records before an end or an error reach the app first:
		 * wolfSSL keeps that state and says it again next time. */
		if (down->len > 0 && e != WOLFSSL_ERROR_WANT_READ &&
		    e != WOLFSSL_ERROR_WANT_WRITE)
			break;
		if (e == WOLFSSL_ERROR_WANT_READ) {
			*want_read = 1;
		} else if (e == WOLFSSL_ERROR_WANT_WRITE) {
			*want_write = 1;
		} else if (e == WOLFSSL_ERROR_ZERO_RETURN ||
			   e == SOCKET_PEER_CLOSED_E) {
			down->eof = 1;
			progress = 1;
		} else {
			*r = tls_error(ssl, tc, n, err);
			return -1;
		}
		break;
	}
	if (down->len == 0) {
		free(down->buf);
		down->buf = NULL;
	}
	return progress;
}

mtls_err_t relay_run(WOLFSSL *ssl, struct tls_conn *tc, int tls_fd,
		     int app_fd, int stop_fd, unsigned idle_ms,
		     const uint8_t *early, size_t early_len,
		     struct relay_filter *filter, struct relay_result *res,
		     struct mtls_error *err)
{
	uint8_t up_buf[RELAY_BUF];
	struct dir up = { .buf = up_buf, .cap = sizeof(up_buf) }, /* app -> server */
		   down = { .cap = RELAY_DOWN_BUF };
	uint64_t last = mtls_now_ms(), stop_checked = last;
	int tls_want_read = 1, tls_want_write = 0, switching = 0;
	/* Whether a recv from the app may find bytes: cleared by EAGAIN, set
	 * by poll. A bulk download would otherwise pay one failing recv per
	 * record. */
	int app_readable = 1;
	struct raw *raw = NULL;
	mtls_err_t r = MTLS_OK;
	ssize_t n;
	int e;

	memset(res, 0, sizeof(*res));
	if (early_len > up.cap)
		return mtls_error_set(err, MTLS_ERR_LIMIT, "early data too large");
	if (filter != NULL) {
		/* Only connections with a filter pay for its buffer. */
		raw = calloc(1, sizeof(*raw));
		if (raw == NULL)
			return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		filter->rest_len = 0;
		if (early_len > 0)
			memcpy(raw->buf, early, early_len);
		raw->len = early_len;
	} else if (early_len > 0) {
		memcpy(up.buf, early, early_len);
		up.len = early_len;
	}
	for (;;) {
		int progress = 0;

		/* server -> app */
		if (down.len == 0 && !down.eof) {
			int got = read_server(ssl, tc, &down, &tls_want_read,
					      &tls_want_write, &r, err);

			if (got < 0)
				goto out;
			progress |= got;
		}
		if (down.len > 0) {
			n = send(app_fd, down.buf + down.off, down.len,
				 MSG_NOSIGNAL);
			if (n > 0) {
				down.off += (size_t)n;
				down.len -= (size_t)n;
				res->to_client += (uint64_t)n;
				atomic_fetch_add(&g_stats.bytes_to_client,
						 (unsigned long)n);
				progress = 1;
			} else if (errno != EAGAIN && errno != EINTR) {
				/* The app went away: nothing left to do. */
				goto out;
			}
		}
		if (down.eof && down.len == 0 && !down.done) {
			/* Switching: the server answered all it was asked and
			 * the app's connection goes on with another. */
			if (switching)
				res->switched = 1;
			else
				(void)shutdown(app_fd, SHUT_WR);
			down.done = 1;
			progress = 1;
		}

		/* app -> server */
		if (raw != NULL && up.len == 0 && !up.eof) {
			int v;

			progress |= filter_step(filter, raw, &up, app_fd, &v);
			if (v == RELAY_REFUSE) {
				res->refused = 1;
				goto out;
			}
			if (v == RELAY_SWITCH) {
				switching = 1;
				up.eof = 1;
			}
			if (v == RELAY_PLAIN) {
				free(raw);
				raw = NULL;
			}
		} else if (up.len == 0 && !up.eof && app_readable) {
			n = recv(app_fd, up.buf, up.cap, 0);
			if (n > 0) {
				up.len = (size_t)n;
				up.off = 0;
				progress = 1;
			} else if (n == 0 ||
				   (errno != EAGAIN && errno != EINTR)) {
				up.eof = 1;
				progress = 1;
			} else if (errno == EAGAIN) {
				app_readable = 0;
			}
		}
		if (up.len > 0) {
			/* wolfSSL wants the same buffer and length again after
			 * WANT_WRITE, so up.off only moves on success. */
			n = wolfSSL_write(ssl, up.buf + up.off, (int)up.len);
			if (n > 0) {
				up.off += (size_t)n;
				up.len -= (size_t)n;
				res->to_server += (uint64_t)n;
				atomic_fetch_add(&g_stats.bytes_to_server,
						 (unsigned long)n);
				progress = 1;
			} else {
				e = wolfSSL_get_error(ssl, (int)n);
				if (e == WOLFSSL_ERROR_WANT_WRITE)
					tls_want_write = 1;
				else if (e == WOLFSSL_ERROR_WANT_READ)
					tls_want_read = 1;
				else {
					r = tls_error(ssl, tc, (int)n, err);
					goto out;
				}
			}
		}
		if (up.eof && up.len == 0 && !up.done) {
			/* close_notify tells the server the request ended;
			 * its answer still flows back. */
			(void)wolfSSL_shutdown(ssl);
			up.done = 1;
			progress = 1;
		}
		if (up.done && down.done)
			goto out;
		if (progress) {
			last = mtls_now_ms();
			/* A busy relay never reaches the poll below: look at the
			 * stop signal every RELAY_STOP_CHECK_MS all the same,
			 * or a bulk transfer would outlive shutdown_grace. */
			if (last - stop_checked >= RELAY_STOP_CHECK_MS) {
				struct pollfd sp = { .fd = stop_fd, .events = POLLIN };

				stop_checked = last;
				if (poll(&sp, 1, 0) == 1 && (sp.revents & POLLIN)) {
					res->stopped = 1;
					goto out;
				}
			}
			continue;
		}
		if (wolfSSL_pending(ssl) > 0 && down.len == 0)
			continue;

		struct pollfd p[3] = {
			{ .fd = app_fd, .events = 0 },
			{ .fd = tls_fd, .events = 0 },
			{ .fd = stop_fd, .events = POLLIN },
		};
		int timeout = -1;

		if (up.len == 0 && !up.eof &&
		    (raw == NULL || (!raw->eof && raw->len < sizeof(raw->buf))))
			p[0].events |= POLLIN;
		if (down.len > 0)
			p[0].events |= POLLOUT;
		if ((down.len == 0 && !down.eof) || tls_want_read)
			p[1].events |= POLLIN;
		if (tls_want_write)
			p[1].events |= POLLOUT;
		tls_want_read = tls_want_write = 0;
		/* Poll only what we wait for: POLLHUP is reported even when
		 * not asked, and would spin the loop. */
		if (p[0].events == 0)
			p[0].fd = -1;
		if (p[1].events == 0)
			p[1].fd = -1;
		if (idle_ms > 0) {
			uint64_t idle = mtls_now_ms() - last;

			if (idle >= idle_ms) {
				res->idle_timeout = 1;
				goto out;
			}
			timeout = (int)(idle_ms - idle);
		}
		if (poll(p, 3, timeout) < 0 && errno != EINTR) {
			r = mtls_error_set(err, MTLS_ERR_IO, "poll: %s",
					   strerror(errno));
			goto out;
		}
		if (p[2].revents & POLLIN) {
			res->stopped = 1;
			goto out;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
			app_readable = 1;
	}
out:
	free(down.buf);
	/* Request heads carry the program's credentials (Authorization). */
	if (raw != NULL)
		explicit_bzero(raw, sizeof(*raw));
	free(raw);
	return r;
}
