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

/* Server to app: the plaintext of several records already at hand goes
 * to the app in one send (a send to a Unix socket costs its wakeup and
 * buffer whatever its size: measured 30% of the relay's CPU at one send
 * per 16 KiB record). On the heap while bytes flow, freed when the server
 * side is idle. */
#define RELAY_DOWN_BUF 65536
#define TLS_RECORD_MAX 16384

/* The app's bytes before the filter took them. Allocated when the app
 * has sent something, freed when the filter took it all. */
struct relay_raw {
	uint8_t buf[RELAY_BUF];
	size_t len;
	int eof;
	int wait; /* the filter wants more than there is */
};

static void raw_free(struct relay *rl)
{
	if (rl->raw != NULL) {
		/* Request heads carry the program's credentials
		 * (Authorization). */
		explicit_bzero(rl->raw, sizeof(*rl->raw));
		free(rl->raw);
		rl->raw = NULL;
	}
}

/* The app's plaintext is wiped before its buffer goes back. */
static void up_free(struct relay_dir *up)
{
	if (up->buf != NULL) {
		explicit_bzero(up->buf, up->cap);
		free(up->buf);
		up->buf = NULL;
	}
}

/* The buffer of d, allocated now if it has none. */
static int dir_buf(struct relay_dir *d)
{
	if (d->buf == NULL)
		d->buf = malloc(d->cap);
	return d->buf != NULL ? 0 : -1;
}

/* Reads the app into raw and lets the filter fill up; *verdict is the
 * filter's (RELAY_SWITCH and RELAY_REFUSE leave the rest in f->rest).
 * Returns 1 on progress, 0 if nothing changed, -1 out of memory. */
static int filter_step(struct relay *rl, int *verdict)
{
	struct relay_filter *f = rl->filter;
	struct relay_dir *up = &rl->up;
	struct relay_raw *raw = rl->raw;
	size_t used = 0, olen = 0;
	int progress = 0;
	ssize_t n;

	*verdict = RELAY_PASS;
	if (raw == NULL) {
		/* Nothing held: only an app with bytes makes us hold some. */
		if (!rl->app_readable)
			return 0;
		if ((raw = rl->raw = calloc(1, sizeof(*raw))) == NULL)
			return -1;
	}
	if (!raw->eof && raw->len < sizeof(raw->buf) &&
	    (raw->len == 0 || raw->wait) && rl->app_readable) {
		n = recv(rl->app_fd, raw->buf + raw->len,
			 sizeof(raw->buf) - raw->len, 0);
		if (n > 0) {
			raw->len += (size_t)n;
			raw->wait = 0;
			progress = 1;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			raw->eof = 1;
			raw->wait = 0;
			progress = 1;
		} else if (errno == EAGAIN) {
			rl->app_readable = 0;
		}
	}
	if (raw->len == 0 && !raw->eof) {
		raw_free(rl);
		return progress;
	}
	if (raw->wait)
		return progress;
	if (raw->len == 0) {
		up->eof = 1;
		return 1;
	}
	if (dir_buf(up) != 0)
		return -1;
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
	if (f->keep_rest && raw->len > 0 &&
	    (f->rest = malloc(raw->len)) != NULL) {
		memcpy(f->rest, raw->buf, raw->len);
		f->rest_len = raw->len;
	}
	raw->len = 0;
	return 1;
}

/* wolfSSL goes back into the handshake from wolfSSL_read or
 * wolfSSL_write whenever its state is no longer "done": after a TLS 1.3
 * server's post-handshake CertificateRequest (5.5.4's client takes one it
 * never offered post_handshake_auth for), or after wolfSSL_shutdown has
 * wolfSSL_clear()ed the session. A relay never does handshake work: it
 * would sign on the event loop, past the per-caller handshake limits, and
 * the new server would skip the revocation check. 0: settled. */
static int tls_settled(struct relay *rl, mtls_err_t *r, struct mtls_error *err)
{
	if (wolfSSL_is_init_finished(rl->ssl))
		return 0;
	*r = mtls_error_set(err, MTLS_ERR_TLS,
			    "the server asked for a handshake after the "
			    "handshake (refused)");
	return -1;
}

/* Reads the server's next records into down (its buffer allocated now),
 * as many as are already at hand and fit, so that they leave in one send;
 * frees the buffer when the server has sent nothing. 1: progress, 0:
 * nothing yet (the want flags say what for), -1: *r and err say why. */
static int read_server(struct relay *rl, mtls_err_t *r, struct mtls_error *err)
{
	struct relay_dir *down = &rl->down;
	WOLFSSL *ssl = rl->ssl;
	int progress = 0;

	down->off = 0;
	for (;;) {
		size_t room;
		int n, e;

		if (dir_buf(down) != 0) {
			*r = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
			return -1;
		}
		room = down->cap - down->len;
		if (tls_settled(rl, r, err) != 0)
			return -1;
		n = wolfSSL_read(ssl, down->buf + down->len, (int)room);
		if (n > 0) {
			down->len += (size_t)n;
			progress = 1;
			if (room - (size_t)n >= TLS_RECORD_MAX &&
			    (wolfSSL_pending(ssl) > 0 || rl->tc->io.len > 0))
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
			rl->tls_want_read = 1;
		} else if (e == WOLFSSL_ERROR_WANT_WRITE) {
			rl->tls_want_write = 1;
		} else if (e == WOLFSSL_ERROR_ZERO_RETURN ||
			   e == SOCKET_PEER_CLOSED_E) {
			down->eof = 1;
			progress = 1;
		} else {
			*r = tls_error(ssl, rl->tc, n, err);
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

mtls_err_t relay_init(struct relay *rl, WOLFSSL *ssl, struct tls_conn *tc,
		      int tls_fd, int app_fd, unsigned idle_ms,
		      const uint8_t *early, size_t early_len,
		      struct relay_filter *filter, struct mtls_error *err)
{
	memset(rl, 0, sizeof(*rl));
	rl->ssl = ssl;
	rl->tc = tc;
	rl->tls_fd = tls_fd;
	rl->app_fd = app_fd;
	rl->idle_ms = idle_ms;
	rl->filter = filter;
	rl->up.cap = RELAY_BUF;
	rl->down.cap = RELAY_DOWN_BUF;
	rl->last = mtls_now_ms();
	rl->tls_want_read = 1;
	rl->app_readable = 1;
	if (early_len > RELAY_BUF)
		return mtls_error_set(err, MTLS_ERR_LIMIT, "early data too large");
	if (filter != NULL) {
		filter->rest = NULL;
		filter->rest_len = 0;
	}
	if (early_len == 0)
		return MTLS_OK;
	if (filter != NULL) {
		if ((rl->raw = calloc(1, sizeof(*rl->raw))) == NULL)
			return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		memcpy(rl->raw->buf, early, early_len);
		rl->raw->len = early_len;
	} else {
		if (dir_buf(&rl->up) != 0)
			return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		memcpy(rl->up.buf, early, early_len);
		rl->up.len = early_len;
	}
	return MTLS_OK;
}

void relay_fini(struct relay *rl)
{
	free(rl->down.buf);
	rl->down.buf = NULL;
	up_free(&rl->up);
	raw_free(rl);
}

/* One round: each direction moves what it can. 1: progress, 0: none,
 * -1: finished (*r says how). */
static int relay_round(struct relay *rl, mtls_err_t *r, struct mtls_error *err)
{
	struct relay_dir *up = &rl->up, *down = &rl->down;
	struct relay_result *res = &rl->res;
	int progress = 0;
	ssize_t n;
	int e;

	/* server -> app */
	if (down->len == 0 && !down->eof) {
		int got = read_server(rl, r, err);

		if (got < 0)
			return -1;
		progress |= got;
	}
	if (down->len > 0) {
		n = send(rl->app_fd, down->buf + down->off, down->len,
			 MSG_NOSIGNAL);
		if (n > 0) {
			down->off += (size_t)n;
			down->len -= (size_t)n;
			res->to_client += (uint64_t)n;
			atomic_fetch_add(&g_stats.bytes_to_client,
					 (unsigned long)n);
			progress = 1;
		} else if (errno != EAGAIN && errno != EINTR) {
			/* The app went away: nothing left to do. */
			return -1;
		}
	}
	if (down->eof && down->len == 0 && !down->done) {
		/* Switching: the server answered all it was asked and the
		 * app's connection goes on with another. */
		if (rl->switching)
			res->switched = 1;
		else
			(void)shutdown(rl->app_fd, SHUT_WR);
		down->done = 1;
		progress = 1;
	}

	/* app -> server */
	if (rl->filter != NULL && up->len == 0 && !up->eof) {
		int v, got = filter_step(rl, &v);

		if (got < 0) {
			*r = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
			return -1;
		}
		progress |= got;
		if (v == RELAY_REFUSE) {
			res->refused = 1;
			return -1;
		}
		if (v == RELAY_SWITCH) {
			rl->switching = 1;
			up->eof = 1;
		}
		if (v == RELAY_PLAIN) {
			raw_free(rl);
			rl->filter = NULL;
		}
	} else if (up->len == 0 && !up->eof && rl->app_readable) {
		if (dir_buf(up) != 0) {
			*r = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
			return -1;
		}
		n = recv(rl->app_fd, up->buf, up->cap, 0);
		if (n > 0) {
			up->len = (size_t)n;
			up->off = 0;
			progress = 1;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			up->eof = 1;
			progress = 1;
		} else if (errno == EAGAIN) {
			rl->app_readable = 0;
		}
	}
	if (up->len > 0) {
		/* wolfSSL wants the same buffer and length again after
		 * WANT_WRITE, so up->off only moves on success. */
		if (tls_settled(rl, r, err) != 0)
			return -1;
		n = wolfSSL_write(rl->ssl, up->buf + up->off, (int)up->len);
		if (n > 0) {
			up->off += (size_t)n;
			up->len -= (size_t)n;
			res->to_server += (uint64_t)n;
			atomic_fetch_add(&g_stats.bytes_to_server,
					 (unsigned long)n);
			progress = 1;
		} else {
			e = wolfSSL_get_error(rl->ssl, (int)n);
			if (e == WOLFSSL_ERROR_WANT_WRITE)
				rl->tls_want_write = 1;
			else if (e == WOLFSSL_ERROR_WANT_READ)
				rl->tls_want_read = 1;
			else {
				*r = tls_error(rl->ssl, rl->tc, (int)n, err);
				return -1;
			}
		}
	}
	if (up->eof && up->len == 0 && !up->done) {
		/* close_notify tells the server the request ended; its
		 * answer still flows back. SUCCESS: the server's close_notify
		 * was in already, and wolfSSL_shutdown has wolfSSL_clear()ed
		 * the session (OPENSSL_EXTRA): the server's side is over, and
		 * a read would start a new handshake. */
		if (wolfSSL_shutdown(rl->ssl) == WOLFSSL_SUCCESS)
			down->eof = 1;
		up->done = 1;
		progress = 1;
	}
	if (up->done && down->done)
		return -1;
	return progress;
}

enum relay_step relay_step(struct relay *rl, unsigned budget,
			   struct relay_wait *w, mtls_err_t *r,
			   struct mtls_error *err)
{
	struct relay_dir *up = &rl->up, *down = &rl->down;

	*r = MTLS_OK;
	for (unsigned i = 0; i < budget; i++) {
		int got = relay_round(rl, r, err);

		if (got < 0)
			return RELAY_STEP_DONE;
		if (got > 0) {
			rl->last = mtls_now_ms();
			continue;
		}
		if (wolfSSL_pending(rl->ssl) > 0 && down->len == 0 &&
		    !down->eof)
			continue;

		/* Nothing moves: say what would make it move. */
		memset(w, 0, sizeof(*w));
		if (up->len == 0 && !up->eof &&
		    (rl->filter == NULL || rl->raw == NULL ||
		     (!rl->raw->eof && rl->raw->len < sizeof(rl->raw->buf))))
			w->app_events |= POLLIN;
		if (down->len > 0)
			w->app_events |= POLLOUT;
		if ((down->len == 0 && !down->eof) || rl->tls_want_read)
			w->tls_events |= POLLIN;
		if (rl->tls_want_write)
			w->tls_events |= POLLOUT;
		rl->tls_want_read = rl->tls_want_write = 0;
		/* An idle side holds no buffer. */
		if (up->len == 0)
			up_free(up);
		w->timeout_ms = -1;
		if (rl->idle_ms > 0) {
			uint64_t idle = mtls_now_ms() - rl->last;

			if (idle >= rl->idle_ms) {
				rl->res.idle_timeout = 1;
				return RELAY_STEP_DONE;
			}
			w->timeout_ms = (int)(rl->idle_ms - idle);
		}
		return RELAY_STEP_WAIT;
	}
	return RELAY_STEP_AGAIN;
}
