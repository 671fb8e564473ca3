#include <wolfssl/options.h>

#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "mtls_clock.h"
#include "mtls_io.h"
#include "mtls_log.h"
#include "caller.h"
#include "http_forward.h"
#include "net_addr.h"
#include "proxy_proto.h"
#include "refuser.h"
#include "relay.h"
#include "relay_loop.h"
#include "revocation.h"
#include "session_cache.h"
#include "stats.h"

#define CONN_STACK (256 * 1024)

/* Connections per local uid, so that one user cannot take every slot. */
#define UID_SLOTS 1024

static struct {
	pthread_mutex_t lock;
	struct {
		int64_t uid;
		unsigned n;
	} slot[UID_SLOTS];
} uids = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* 0: counted; -1: uid over its limit (or the table is full). */
static int uid_acquire(int64_t uid, unsigned limit)
{
	int rc = -1, free_slot = -1;

	if (uid < 0 || limit == 0)
		return 0;
	pthread_mutex_lock(&uids.lock);
	for (int i = 0; i < UID_SLOTS; i++) {
		if (uids.slot[i].n > 0 && uids.slot[i].uid == uid) {
			if (uids.slot[i].n < limit) {
				uids.slot[i].n++;
				rc = 0;
			}
			goto out;
		}
		if (uids.slot[i].n == 0 && free_slot < 0)
			free_slot = i;
	}
	if (free_slot >= 0) {
		uids.slot[free_slot].uid = uid;
		uids.slot[free_slot].n = 1;
		rc = 0;
	}
out:
	pthread_mutex_unlock(&uids.lock);
	return rc;
}

static void uid_release(int64_t uid)
{
	if (uid < 0)
		return;
	pthread_mutex_lock(&uids.lock);
	for (int i = 0; i < UID_SLOTS; i++)
		if (uids.slot[i].n > 0 && uids.slot[i].uid == uid) {
			uids.slot[i].n--;
			break;
		}
	pthread_mutex_unlock(&uids.lock);
}

struct request;

struct conn {
	unsigned long id;
	int64_t uid; /* counted against the per-uid limit, or -1 */
	struct caller who; /* resolved at accept, before any byte is read */
	struct reaped *self;
	struct runtime *rt;
	struct tunnel *t;
	int app_fd;
	int srv_fd;
	int stop_fd;
	uint64_t t0;         /* accepted, or the current request's start */
	struct request *rq;  /* a proxy's request, until it is acted on */
};

static atomic_ulong next_conn_id;

/* Threads are joined, never detached. At exit, libraries' own handlers
 * (OpenSSL's cleanup, inside a token module) free locks and thread state
 * that our threads' exit destructors still use: the agent must not return
 * from main while one of its threads is still ending. A thread's last act
 * is to put itself on a list; the next one to finish, and the stop, join
 * what is there. */
struct reaped {
	pthread_t t;
	struct reaped *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct reaped *done;
	unsigned alive;
} reap = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0 };

static void reap_join_locked(void)
{
	while (reap.done != NULL) {
		struct reaped *r = reap.done;

		reap.done = r->next;
		/* It has let go of the lock: it only has to return. */
		pthread_join(r->t, NULL);
		free(r);
		reap.alive--;
	}
}

/* The last thing a thread does (me from reap_spawn). */
static void reap_finish(struct reaped *me)
{
	me->t = pthread_self();
	pthread_mutex_lock(&reap.lock);
	reap_join_locked();
	me->next = reap.done;
	reap.done = me;
	pthread_cond_broadcast(&reap.changed);
	pthread_mutex_unlock(&reap.lock);
}

/* pthread_create, counted; *me is the node the thread hands to
 * reap_finish. 0 or an errno. */
static int reap_spawn(size_t stack, void *(*fn)(void *), void *arg,
		      struct reaped **me)
{
	pthread_attr_t attr;
	pthread_t th;
	int rc;

	*me = calloc(1, sizeof(**me));
	if (*me == NULL)
		return ENOMEM;
	pthread_mutex_lock(&reap.lock);
	reap.alive++;
	pthread_mutex_unlock(&reap.lock);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, stack);
	rc = pthread_create(&th, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		pthread_mutex_lock(&reap.lock);
		reap.alive--;
		pthread_mutex_unlock(&reap.lock);
		free(*me);
		*me = NULL;
	}
	return rc;
}

/* Until every thread started here has ended and been joined. */
static void reap_all(void)
{
	pthread_mutex_lock(&reap.lock);
	for (;;) {
		reap_join_locked();
		if (reap.alive == 0)
			break;
		pthread_cond_wait(&reap.changed, &reap.lock);
	}
	pthread_mutex_unlock(&reap.lock);
}


static mtls_err_t connect_error(int e)
{
	switch (e) {
	case ECONNREFUSED:
		return MTLS_ERR_REFUSED;
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EADDRNOTAVAIL:
		return MTLS_ERR_UNREACHABLE;
	case ETIMEDOUT:
		return MTLS_ERR_TIMEOUT;
	default:
		return MTLS_ERR_CONNECT;
	}
}

/* The address as the policy sees it (::ffff:a.b.c.d is a.b.c.d). */
static void addr_for_policy(const struct sockaddr_storage *a,
			    struct policy_dest *d)
{
	if (a->ss_family == AF_INET) {
		d->family = 4;
		memcpy(d->addr, &((const struct sockaddr_in *)a)->sin_addr, 4);
		return;
	}
	memcpy(d->addr, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
	d->family = 6;
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)d->addr)) {
		memmove(d->addr, d->addr + 12, 4);
		d->family = 4;
	}
}

/* Connecting, on the event loop: the route's addresses in order, the
 * first that accepts wins, all within connect_timeout. A server that
 * never answers holds no thread and no handshake worker. */
struct connecting {
	struct net_addrs to;
	unsigned next; /* the next address to try */
	int fd;        /* the connect in progress, or -1 */
	int connected;
	int last_errno;
};

/* Starts connects to cn's next addresses until one is connected (1) or
 * in progress (0), its fd in cn->fd; -1: none left (cn->last_errno says
 * why). Never blocks. */
static int connect_next(struct connecting *cn)
{
	while (cn->next < cn->to.n) {
		unsigned i = cn->next++;
		int fd = socket(cn->to.a[i].ss_family,
				SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		if (fd < 0) {
			cn->last_errno = errno;
			continue;
		}
		if (connect(fd, (const struct sockaddr *)&cn->to.a[i],
			    cn->to.len[i]) == 0) {
			cn->fd = fd;
			cn->connected = 1;
			return 1;
		}
		if (errno == EINPROGRESS) {
			cn->fd = fd;
			return 0;
		}
		cn->last_errno = errno;
		close(fd);
	}
	return -1;
}

static mtls_err_t handshake(struct conn *c, WOLFSSL *ssl, struct tls_conn *tc,
			    struct mtls_error *err)
{
	uint64_t deadline = mtls_now_ms() + c->rt->cfg->agent.handshake_timeout_ms;

	for (;;) {
		int ret = wolfSSL_connect(ssl), e, w;

		if (ret == WOLFSSL_SUCCESS)
			return MTLS_OK;
		e = wolfSSL_get_error(ssl, ret);
		if (e != WOLFSSL_ERROR_WANT_READ && e != WOLFSSL_ERROR_WANT_WRITE)
			return tls_error(ssl, tc, ret, err);
		w = mtls_wait_fd(c->srv_fd,
			    e == WOLFSSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
			    c->stop_fd, deadline);
		if (w == 0)
			return mtls_error_set(err, MTLS_ERR_TIMEOUT,
					      "handshake took over %u ms",
					      c->rt->cfg->agent.handshake_timeout_ms);
		if (w < 0)
			return mtls_error_set(err, MTLS_ERR_TIMEOUT,
					      "agent stopping");
	}
}

static void count_failure(mtls_err_t code)
{
	if ((unsigned)code < MTLS_ERR__COUNT)
		atomic_fetch_add(&g_stats.handshakes_failed[code], 1);
}

/* Where a connection goes once its destination and route are known. */
struct route {
	WOLFSSL_CTX *ctx;
	struct identity *id;
	const struct policy_profile *profile;
	const char *host;
	uint16_t port;
	const char *sni; /* name sent and checked */
	const char *alpn;
	char session_key[512]; /* for resumption; empty: none */
	struct net_addrs to;   /* where to connect: resolved, policy-checked */
};

/* The handshake pool: a connection, once connected, queues its handshake
 * for a bounded set of long-lived workers; no thread of its own waits. Debian's wolfSSL is built
 * with FP_ECC, whose per-thread tables cost ~3 MiB and a few milliseconds
 * to build: a worker builds them once and keeps them warm, where a fresh
 * thread per connection would rebuild (and hold) them every time. The
 * bound ([agent] max_handshakes) also caps that memory.
 *
 * Fair shares: a server that accepts and never answers, or one caller
 * opening many connections, holds a worker for up to handshake_timeout.
 * So no destination (host:port) may run more than max_handshakes /
 * (active + 1) handshakes at once, where active is the number of
 * destinations with handshakes queued or running: there is always room
 * for one more destination, however many jobs the others queue. And no
 * caller (uid) more than max_handshakes / active callers: a caller alone
 * may use every worker its destinations leave, and gets its share as soon
 * as another caller waits. The TCP connect happens before, on the event
 * loop (a server that never accepts holds no worker); what follows a handshake that succeeded and
 * needs no revocation check (handing the relay to the event loop) runs in
 * the worker, the rest on a thread of the connection's again. */
#define HS_IDLE_TRIM_SEC 10
#define HS_SHARE_KEYS 64

struct hs_share {
	char key[POLICY_HOST_MAX + 8];
	unsigned jobs;    /* queued or running */
	unsigned running;
};

struct served;

/* Queued in the pool, inside the connection's served (below); no thread
 * waits for it. */
struct hs_job {
	struct served *s;
	struct hs_share *by_uid, *by_dest;
	struct hs_job *next;
};

static mtls_err_t hs_do(struct served *s);
static void hs_finished(struct served *s, mtls_err_t r);

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	struct hs_job *head, *tail;
	unsigned workers, idle, max;
	int stop;
	struct hs_share uids[HS_SHARE_KEYS], dests[HS_SHARE_KEYS];
} hp = { .lock = PTHREAD_MUTEX_INITIALIZER,
	 .work = PTHREAD_COND_INITIALIZER,
	 .done = PTHREAD_COND_INITIALIZER };

/* The share slot of key (lock held). When every slot is taken, the keys
 * beyond share the last one: they get less, never more. */
static struct hs_share *share_of(struct hs_share *t, const char *key)
{
	int free_slot = -1;

	for (int i = 0; i < HS_SHARE_KEYS; i++) {
		if (t[i].jobs > 0 && strcmp(t[i].key, key) == 0)
			return &t[i];
		if (t[i].jobs == 0 && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		return &t[HS_SHARE_KEYS - 1];
	snprintf(t[free_slot].key, sizeof(t[free_slot].key), "%s", key);
	t[free_slot].running = 0;
	return &t[free_slot];
}

/* reserve: 1 keeps room for a key that has no job yet. */
static unsigned share_cap(const struct hs_share *t, unsigned reserve)
{
	unsigned active = 0, cap;

	for (int i = 0; i < HS_SHARE_KEYS; i++)
		active += t[i].jobs > 0;
	cap = active + reserve > 0 ? hp.max / (active + reserve) : hp.max;
	return cap > 0 ? cap : 1;
}

/* The first queued job within both of its shares (lock held), unlinked. */
static struct hs_job *take_eligible(void)
{
	unsigned cap_uid = share_cap(hp.uids, 0), cap_dest = share_cap(hp.dests, 1);
	struct hs_job **pp = &hp.head, *prev = NULL;

	for (; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
		struct hs_job *j = *pp;

		if (j->by_uid->running >= cap_uid || j->by_dest->running >= cap_dest)
			continue;
		*pp = j->next;
		if (hp.tail == j)
			hp.tail = prev;
		j->by_uid->running++;
		j->by_dest->running++;
		return j;
	}
	return NULL;
}

/* How many queued jobs could start now, each share counted as it fills:
 * the pool grows only for work its shares let run. */
static unsigned eligible_queued(void)
{
	unsigned cap_uid = share_cap(hp.uids, 0), cap_dest = share_cap(hp.dests, 1);
	unsigned more_uid[HS_SHARE_KEYS] = { 0 }, more_dest[HS_SHARE_KEYS] = { 0 };
	unsigned n = 0;

	for (struct hs_job *j = hp.head; j != NULL; j = j->next) {
		size_t u = (size_t)(j->by_uid - hp.uids);
		size_t d = (size_t)(j->by_dest - hp.dests);

		if (j->by_uid->running + more_uid[u] < cap_uid &&
		    j->by_dest->running + more_dest[d] < cap_dest) {
			more_uid[u]++;
			more_dest[d]++;
			n++;
		}
	}
	return n;
}

struct hs_worker_arg {
	struct reaped *self;
};

static void *hs_worker(void *arg)
{
	struct hs_worker_arg *wa = arg;
	int warm = 1;

	/* For top -H, and for tests that tell the pool (bounded by
	 * max_handshakes) from threads that would be a leak. */
	(void)pthread_setname_np(pthread_self(), "mtls-hs");
	pthread_mutex_lock(&hp.lock);
	for (;;) {
		struct hs_job *j;

		while ((j = take_eligible()) == NULL) {
			struct timespec until;
			int rc;

			if (hp.stop) {
				struct reaped *self = wa->self;

				hp.workers--;
				pthread_cond_broadcast(&hp.done);
				pthread_mutex_unlock(&hp.lock);
				wc_ecc_fp_free();
				free(wa);
				reap_finish(self);
				return NULL;
			}
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += HS_IDLE_TRIM_SEC;
			hp.idle++;
			rc = pthread_cond_timedwait(&hp.work, &hp.lock, &until);
			hp.idle--;
			if (rc == ETIMEDOUT && warm && hp.head == NULL) {
				/* Quiet for a while: give the tables back. */
				pthread_mutex_unlock(&hp.lock);
				wc_ecc_fp_free();
				malloc_trim(0);
				pthread_mutex_lock(&hp.lock);
				warm = 0;
			}
		}
		warm = 1;
		pthread_mutex_unlock(&hp.lock);
		struct served *s = j->s;
		mtls_err_t r = hs_do(s);

		pthread_mutex_lock(&hp.lock);
		j->by_uid->running--;
		j->by_dest->running--;
		j->by_uid->jobs--;
		j->by_dest->jobs--;
		/* A job held back by its share may be within it now. */
		pthread_cond_broadcast(&hp.work);
		pthread_mutex_unlock(&hp.lock);
		/* s, and j in it, are no longer the pool's. */
		hs_finished(s, r);
		pthread_mutex_lock(&hp.lock);
	}
	return NULL;
}

/* Queues j (in s, for s->c's handshake): a worker takes it when its
 * shares allow, and hs_finished goes on from there. On MTLS_OK, s and
 * its connection are the pool's. */
static mtls_err_t hs_submit(struct hs_job *j, const struct conn *c,
			    const char *host, uint16_t port,
			    struct mtls_error *err)
{
	char key[sizeof(hp.uids[0].key)];

	pthread_mutex_lock(&hp.lock);
	if (hp.stop) {
		pthread_mutex_unlock(&hp.lock);
		return mtls_error_set(err, MTLS_ERR_TIMEOUT, "agent stopping");
	}
	hp.max = c->rt->cfg->agent.max_handshakes;
	snprintf(key, sizeof(key), "%lld", (long long)c->who.uid);
	j->by_uid = share_of(hp.uids, key);
	j->by_uid->jobs++;
	snprintf(key, sizeof(key), "%s|%u", host, port);
	j->by_dest = share_of(hp.dests, key);
	j->by_dest->jobs++;
	j->next = NULL;
	if (hp.tail != NULL)
		hp.tail->next = j;
	else
		hp.head = j;
	hp.tail = j;
	/* Grow while jobs that may run now outnumber the idle workers: a job
	 * must never wait behind a hung handshake while the pool may grow. */
	if (eligible_queued() > hp.idle && hp.workers < hp.max) {
		struct hs_worker_arg *wa = calloc(1, sizeof(*wa));

		if (wa != NULL &&
		    reap_spawn(1024 * 1024, hs_worker, wa, &wa->self) == 0)
			hp.workers++;
		else
			free(wa);
	}
	if (hp.workers == 0) {
		/* Unlink: nobody will take it. */
		struct hs_job **pp = &hp.head, *prev = NULL;

		while (*pp != j)
			prev = *pp, pp = &(*pp)->next;
		*pp = j->next;
		if (hp.tail == j)
			hp.tail = prev;
		j->by_uid->jobs--;
		j->by_dest->jobs--;
		pthread_mutex_unlock(&hp.lock);
		return mtls_error_set(err, MTLS_ERR_LIMIT, "no handshake worker");
	}
	pthread_cond_broadcast(&hp.work);
	pthread_mutex_unlock(&hp.lock);
	return MTLS_OK;
}

/* The profile's network revocation methods over the server's chain (as
 * the session holds it, also when resumed). */
static mtls_err_t check_revocation(struct conn *c, WOLFSSL *ssl,
				   struct tls_conn *tc, struct mtls_error *err)
{
	WOLFSSL_X509_CHAIN *chain;
	struct rev_peer peer = { .n = 0 };
	unsigned char produced[64];
	int fmt, waived = 0, n;
	mtls_err_t r;

	if (tc->profile == NULL || tc->profile->n_rev_methods == 0)
		return MTLS_OK;
	chain = wolfSSL_get_peer_chain(ssl);
	n = chain != NULL ? wolfSSL_get_chain_count(chain) : 0;
	for (int i = 0; i < n && peer.n < REV_CHAIN_MAX; i++) {
		int len = wolfSSL_get_chain_length(chain, i);
		unsigned char *der = wolfSSL_get_chain_cert(chain, i);

		if (der == NULL || len <= 0)
			break;
		peer.der[peer.n] = der;
		peer.len[peer.n++] = (size_t)len;
	}
	/* Set only when wolfSSL checked a stapled answer and it said good. */
	peer.staple_good = wolfSSL_get_ocsp_producedDate(ssl, produced,
							 sizeof(produced),
							 &fmt) == 0 &&
			   produced[0] != '\0';
	r = rev_check(tc->profile, &peer, (int64_t)time(NULL), c->id, &waived,
		      err);
	if (r == MTLS_OK && waived)
		tc->revocation_skipped = 1;
	return r;
}

/* A program that runs its own TLS through the agent (an https:// URL
 * through the proxy, or a TLS client pointed at a tunnel) sends a
 * ClientHello where the server expects plaintext. Caught in the first
 * bytes, it is answered in the only words a TLS client reads, an alert,
 * and the log says what to change. */
static enum relay_verdict hello_filter(void *arg, const uint8_t *in,
				       size_t len, int eof, uint8_t *out,
				       size_t cap, size_t *used, size_t *out_len)
{
	(void)arg;
	(void)out;
	(void)cap;
	(void)used;
	(void)out_len;
	/* A TLS record: handshake (22), version 3.x (SSL 3.0 .. TLS 1.3). */
	if (in[0] == 0x16) {
		if (len < 3 && !eof)
			return RELAY_MORE;
		if (len >= 3 && in[1] == 0x03 && in[2] <= 0x04)
			return RELAY_REFUSE;
	}
	return RELAY_PLAIN;
}

/* A fatal protocol_version alert: curl shows "tlsv1 alert protocol
 * version". */
static void refuse_inner_tls(struct conn *c, const char *host, uint16_t port)
{
	static const uint8_t alert[7] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 70 };

	/* Seven bytes into the socket buffer the ClientHello left empty. */
	(void)send(c->app_fd, alert, sizeof(alert), MSG_NOSIGNAL);
	count_failure(MTLS_ERR_BAD_REQUEST);
	log_warn("event=bad_request conn=%lu tunnel=%s server=%s:%u "
		 "reason=tls_inside detail=\"the program sent a TLS ClientHello "
		 "through the agent: the agent does the TLS, so the program "
		 "must use http:// (not https://) URLs\"", c->id,
		 c->t->cfg->name, host, port);
}

/* The plain HTTP proxy's filter state (forward_filter, below). */
struct forward {
	unsigned long conn;
	const char *host; /* the route's server */
	uint16_t port;
	int in_body;
	struct http_body body;
};

static enum relay_verdict forward_filter(void *arg, const uint8_t *in,
					 size_t len, int eof, uint8_t *out,
					 size_t cap, size_t *used,
					 size_t *out_len);

/* A connection's TLS side from the connect to the close. On the heap:
 * wolfSSL's callbacks hold &tc, the handshake is queued in the pool with
 * no thread waiting for it, and a relay parked on the event loop outlives
 * every thread that set it up. */
struct served {
	struct relay_job job; /* while parked */
	struct hs_job hs;     /* while in the handshake pool */
	struct conn *c;
	struct tls_conn tc;
	WOLFSSL *ssl;
	WOLFSSL_CTX *ctx; /* the route's reference, given to serve */
	struct relay_filter hf;
	int hello;   /* the hello filter is on: answer a ClientHello */
	int forward; /* plain HTTP proxying: the forward filter is on */
	struct forward fw;
	char host[256];
	uint16_t port;
	char session_key[512];
	const char *sni, *alpn; /* host, or the tunnel's (its runtime's) */
	void (*reply)(struct conn *, mtls_err_t, const char *);
	uint8_t *early; /* the program's bytes after its request */
	size_t early_len;
	struct connecting *cn; /* until connected */
	struct mtls_error err;
	uint64_t t0;
};

static void conn_end(struct conn *c, int in_loop);
static void served_free(struct served *s);

/* After the relay: the session kept, the close logged, everything of the
 * TLS side freed. */
static void served_end(struct served *s, mtls_err_t r,
		       const struct relay_result *rr, struct mtls_error *err)
{
	struct conn *c = s->c;
	const char *tname = c->t->cfg->name;
	char msg[512];

	/* Kept after the relay: a TLS 1.3 ticket arrives after the handshake
	 * and is read with the first data. */
	if (s->session_key[0] != '\0' && rr->to_client > 0)
		session_cache_keep(s->session_key, s->ssl);
	if (r != MTLS_OK && rr->to_client == 0) {
		/* TLS 1.3 servers judge our certificate after our Finished:
		 * their refusal arrives as the first record, and turns the
		 * handshake counted as ok into a failed one. */
		atomic_fetch_sub(&g_stats.handshakes_ok, 1);
		count_failure(r);
		log_warn("event=handshake conn=%lu tunnel=%s result=fail "
			 "reason=%s server=%s:%u detail=\"%s\"", c->id, tname,
			 mtls_err_name(r), s->host, s->port,
			 mtls_error_str(err, msg, sizeof(msg)));
	} else if (r != MTLS_OK) {
		log_warn("event=relay_error conn=%lu tunnel=%s reason=%s "
			 "detail=\"%s\"", c->id, tname, mtls_err_name(r),
			 mtls_error_str(err, msg, sizeof(msg)));
	}
	log_info("event=close conn=%lu tunnel=%s to_server=%llu to_client=%llu "
		 "duration_ms=%llu%s%s", c->id, tname,
		 (unsigned long long)rr->to_server,
		 (unsigned long long)rr->to_client,
		 (unsigned long long)(mtls_now_ms() - s->t0),
		 rr->idle_timeout ? " idle_timeout=1" : "",
		 rr->stopped ? " stopped=1" : "");
	if (rr->refused && s->hello)
		refuse_inner_tls(c, s->host, s->port);
	served_free(s);
}

static int forward_next(struct conn *c, uint8_t *rest, size_t rest_len);

static void wipe_free(void *p, size_t len)
{
	if (p != NULL) {
		explicit_bzero(p, len);
		free(p);
	}
}

/* The event loop's end of a parked relay. The plain HTTP proxy's next
 * request, for another server, starts over on a thread of its own. */
static void parked_done(struct relay_job *j, mtls_err_t r,
			struct mtls_error *err)
{
	struct served *s = (struct served *)((char *)j -
					     offsetof(struct served, job));
	struct conn *c = s->c;
	struct relay_result rr = j->rl.res;
	uint8_t *rest = s->hf.rest;
	size_t rest_len = s->hf.rest_len;
	int next = s->forward && r == MTLS_OK && rr.switched && !rr.stopped;

	relay_fini(&j->rl);
	served_end(s, r, &rr, err);
	if (next && forward_next(c, rest, rest_len) == 0)
		return;
	wipe_free(rest, rest_len);
	conn_end(c, 1);
}

static void served_free(struct served *s)
{
	if (s->cn != NULL) {
		if (s->cn->fd >= 0)
			close(s->cn->fd);
		free(s->cn);
	}
	if (s->ssl != NULL)
		tls_free(s->ssl, &s->tc);
	tls_ctx_free(s->ctx);
	wipe_free(s->early, s->early_len);
	free(s);
}

/* A connection that never got to relay: counted, logged, told. Frees s;
 * c is the caller's to end. */
static void served_fail(struct served *s, mtls_err_t r)
{
	struct conn *c = s->c;
	char msg[512];

	count_failure(r);
	/* resumed=1: refused after a resumed handshake (revocation). */
	log_warn("event=handshake conn=%lu tunnel=%s result=fail "
		 "reason=%s server=%s:%u%s detail=\"%s\"", c->id,
		 c->t->cfg->name, mtls_err_name(r), s->host, s->port,
		 s->ssl != NULL && wolfSSL_session_reused(s->ssl) ?
			 " resumed=1" : "",
		 mtls_error_str(&s->err, msg, sizeof(msg)));
	if (s->reply != NULL)
		s->reply(c, r, msg);
	served_free(s);
}

/* The handshake is done and checked: the program is told, and the relay
 * goes to the event loop (c and s are the loop's then). */
static void served_up(struct served *s)
{
	struct conn *c = s->c;
	struct relay_result rr;
	mtls_err_t r;

	/* Handshake state (hashes, key shares, the peer's chain) is not needed
	 * to relay: drop it now rather than at close. */
	wolfSSL_FreeHandshakeResources(s->ssl);
	atomic_fetch_add(&g_stats.handshakes_ok, 1);
	hist_observe(&g_stats.handshake_seconds, handshake_bounds,
		     (double)(mtls_now_ms() - s->t0) / 1000.0);
	log_info("event=handshake conn=%lu tunnel=%s result=ok server=%s:%u "
		 "identity=%s profile=%s version=%s cipher=%s resumed=%d "
		 "token_signs=%lu sign_ms=%.1f handshake_ms=%lu%s",
		 c->id, c->t->cfg->name, s->host, s->port, s->tc.id->name,
		 s->tc.profile ? s->tc.profile->name : "-",
		 wolfSSL_get_version(s->ssl), wolfSSL_get_cipher_name(s->ssl),
		 wolfSSL_session_reused(s->ssl), s->tc.sign_count,
		 s->tc.sign_seconds * 1000.0,
		 (unsigned long)(mtls_now_ms() - s->t0),
		 s->tc.revocation_skipped ? " revocation=unknown_fail_open" : "");
	if (s->reply != NULL)
		s->reply(c, MTLS_OK, NULL);
	if (s->forward) {
		s->fw.conn = c->id;
		s->fw.host = s->host;
		s->fw.port = s->port;
		s->hf.fn = forward_filter;
		s->hf.arg = &s->fw;
		s->hf.keep_rest = 1;
	} else {
		s->hello = 1;
		s->hf.fn = hello_filter;
	}
	r = relay_init(&s->job.rl, s->ssl, &s->tc, c->srv_fd, c->app_fd,
		       c->rt->cfg->agent.idle_timeout_ms, s->early,
		       s->early_len, &s->hf, &s->err);
	wipe_free(s->early, s->early_len);
	s->early = NULL;
	s->job.wait = NULL; /* it was the connect's wait */
	s->job.done = parked_done;
	/* From here on c and s are the loop's. */
	if (r == MTLS_OK &&
	    (r = relay_loop_park(&s->job, c->stop_fd, &s->err)) == MTLS_OK)
		return;
	rr = s->job.rl.res;
	relay_fini(&s->job.rl);
	served_end(s, r, &rr, &s->err);
	conn_end(c, 0);
}

/* After the handshake, off the pool: the revocation check (a slow
 * responder holds no handshake worker and delays only the connections
 * waiting for its answer), or a refusal (which lingers for the program to
 * read it). */
static void served_after(struct served *s, mtls_err_t r)
{
	struct conn *c = s->c;

	if (r == MTLS_OK)
		r = check_revocation(c, s->ssl, &s->tc, &s->err);
	if (r == MTLS_OK) {
		served_up(s);
		return;
	}
	served_fail(s, r);
	conn_end(c, 0);
}

struct after_arg {
	struct served *s;
	mtls_err_t r;
	struct reaped *self;
};

static void *after_main(void *arg)
{
	struct after_arg *a = arg;
	struct reaped *self = a->self;

	served_after(a->s, a->r);
	free(a);
	/* Revocation's signature checks may have filled this thread's
	 * FP_ECC tables. */
	wc_ecc_fp_free();
	reap_finish(self);
	return NULL;
}

/* In the handshake worker. */
static mtls_err_t hs_do(struct served *s)
{
	mtls_err_t r;

	r = tls_new(s->ctx, &s->tc, s->c->srv_fd, s->sni, s->alpn, &s->ssl,
		    &s->err);
	if (r != MTLS_OK)
		return r;
	if (s->session_key[0] != '\0')
		session_cache_offer(s->session_key, s->ssl);
	return handshake(s->c, s->ssl, &s->tc, &s->err);
}

/* served_after on a thread of its own (inline only when none starts). */
static void after_on_thread(struct served *s, mtls_err_t r)
{
	struct after_arg *a = calloc(1, sizeof(*a));

	if (a != NULL) {
		a->s = s;
		a->r = r;
		if (reap_spawn(CONN_STACK, after_main, a, &a->self) == 0)
			return;
		free(a);
	}
	served_after(s, r);
}

/* In the handshake worker, once s is no longer the pool's: a handshake
 * with nothing left to wait for goes on to the event loop from here; the
 * rest on a thread of the connection's. */
static void hs_finished(struct served *s, mtls_err_t r)
{
	if (r == MTLS_OK &&
	    (s->tc.profile == NULL || s->tc.profile->n_rev_methods == 0)) {
		served_up(s);
		return;
	}
	after_on_thread(s, r);
}

/* The connect's end: the socket becomes the connection's, or the last
 * address's error is s's. */
static mtls_err_t connect_result(struct served *s)
{
	struct connecting *cn = s->cn;
	mtls_err_t r = MTLS_OK;

	s->cn = NULL;
	if (cn->connected) {
		s->c->srv_fd = cn->fd;
	} else {
		if (cn->fd >= 0)
			close(cn->fd);
		r = mtls_error_set(&s->err, connect_error(cn->last_errno),
				   "%s:%u: %s", s->host, s->port,
				   strerror(cn->last_errno ? cn->last_errno : EIO));
	}
	free(cn);
	return r;
}

/* The loop's look at a connect in progress (relay_job.wait). */
static int connect_wait(struct relay_job *j, int timed_out, int stopping)
{
	struct served *s = (struct served *)((char *)j -
					     offsetof(struct served, job));
	struct connecting *cn = s->cn;
	struct pollfd p = { .fd = cn->fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int soerr = 0;

	if (stopping || timed_out) {
		cn->last_errno = stopping ? EINTR : ETIMEDOUT;
		return 0;
	}
	/* Also called when nothing happened yet (as the loop adopts it). */
	if (poll(&p, 1, 0) != 1)
		return 1;
	if (getsockopt(cn->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
		soerr = errno;
	if (soerr == 0) {
		cn->connected = 1;
		return 0;
	}
	cn->last_errno = soerr;
	relay_loop_forget(j);
	close(cn->fd);
	cn->fd = -1;
	if (connect_next(cn) != 0)
		return 0; /* connected, or none left */
	j->wait_fd = cn->fd;
	return 1;
}

/* In the loop thread, once the connect ended: the handshake is queued,
 * or the refusal goes to a thread (it lingers for the program). */
static void connect_done(struct relay_job *j, mtls_err_t r,
			 struct mtls_error *err)
{
	struct served *s = (struct served *)((char *)j -
					     offsetof(struct served, job));

	(void)err;
	r = connect_result(s);
	if (r == MTLS_OK &&
	    (r = hs_submit(&s->hs, s->c, s->host, s->port, &s->err)) == MTLS_OK)
		return;
	after_on_thread(s, r);
}

/* Connects, then queues the handshake in the pool, from where the relay
 * goes to the event loop; takes rt->ctx's reference. reply() tells the
 * program (proxy) that the connection is up or why not; early holds bytes
 * the program sent before the reply. forward: the plain HTTP proxy's
 * filter, else the hello filter. 1: c is no longer the caller's, who
 * returns at once without touching it; 0: c is the caller's to end. */
static int serve(struct conn *c, const struct route *rt,
		 void (*reply)(struct conn *, mtls_err_t, const char *),
		 const uint8_t *early, size_t early_len, int forward,
		 uint64_t t0)
{
	struct mtls_error err = { 0 };
	struct served *s;
	mtls_err_t r;

	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		r = mtls_error_set(&err, MTLS_ERR_NOMEM, NULL);
		count_failure(r);
		if (reply != NULL)
			reply(c, r, "out of memory");
		tls_ctx_free(rt->ctx);
		return 0;
	}
	s->c = c;
	s->hs.s = s;
	s->tc.id = rt->id;
	s->tc.profile = rt->profile;
	s->ctx = rt->ctx;
	snprintf(s->host, sizeof(s->host), "%s", rt->host);
	s->port = rt->port;
	snprintf(s->session_key, sizeof(s->session_key), "%s", rt->session_key);
	/* A proxy's names live in its request, freed once this returns. */
	s->sni = rt->sni == rt->host ? s->host : rt->sni;
	s->alpn = rt->alpn;
	s->reply = reply;
	s->forward = forward;
	s->t0 = t0;
	r = MTLS_OK;
	if (early_len > 0) {
		if ((s->early = malloc(early_len)) != NULL) {
			memcpy(s->early, early, early_len);
			s->early_len = early_len;
		} else {
			r = mtls_error_set(&s->err, MTLS_ERR_NOMEM, NULL);
		}
	}
	if (r == MTLS_OK && (s->cn = calloc(1, sizeof(*s->cn))) == NULL)
		r = mtls_error_set(&s->err, MTLS_ERR_NOMEM, NULL);
	if (r != MTLS_OK) {
		served_fail(s, r);
		return 0;
	}
	s->cn->to = rt->to;
	s->cn->fd = -1;
	if (connect_next(s->cn) == 0) {
		/* In progress: the loop waits for it (connect_done goes on);
		 * from here on, c and s are the loop's. */
		s->job.wait = connect_wait;
		s->job.wait_fd = s->cn->fd;
		s->job.wait_events = POLLOUT;
		s->job.wait_deadline = mtls_now_ms() +
				       c->rt->cfg->agent.connect_timeout_ms;
		s->job.done = connect_done;
		r = relay_loop_park(&s->job, c->stop_fd, &s->err);
		if (r == MTLS_OK)
			return 1;
	} else {
		r = connect_result(s);
		/* From here on, c and s are the pool's. */
		if (r == MTLS_OK &&
		    (r = hs_submit(&s->hs, c, s->host, s->port, &s->err)) ==
			    MTLS_OK)
			return 1;
	}
	served_fail(s, r);
	return 0;
}

/* 1: the relay is parked, c is the event loop's. */
static int tunnel_serve(struct conn *c, uint64_t t0)
{
	const struct cfg_tunnel *ct = c->t->cfg;
	struct mtls_error err = { 0 };
	WOLFSSL_CTX *ctx;
	char msg[512];
	mtls_err_t r;

	/* As of now: rebuilt if the profile's CRL changed since the last
	 * connection. */
	r = runtime_tunnel_ctx(c->rt, c->t, &ctx, &err);
	if (r != MTLS_OK) {
		count_failure(r);
		log_warn("event=handshake conn=%lu tunnel=%s result=fail "
			 "reason=%s detail=\"%s\"", c->id, ct->name,
			 mtls_err_name(r), mtls_error_str(&err, msg, sizeof(msg)));
		return 0;
	}
	struct route rt = {
		.ctx = ctx,
		.id = c->t->id,
		.profile = c->t->profile,
		.host = ct->connect_host,
		.port = ct->connect_port,
		.sni = ct->sni != NULL ? ct->sni : ct->connect_host,
		.alpn = ct->alpn,
	};

	/* Sessions belong to the context that verified them: a reload, a
	 * CRL change or an identity swap makes a new one (M2). */
	if (c->rt->cfg->agent.resume)
		snprintf(rt.session_key, sizeof(rt.session_key), "t|%lu|%s|%s",
			 tls_ctx_serial(ctx), ct->name, c->t->id->name);
	r = net_resolve(rt.host, rt.port, &rt.to, &err);
	if (r != MTLS_OK) {
		count_failure(r);
		log_warn("event=handshake conn=%lu tunnel=%s result=fail "
			 "reason=%s server=%s:%u detail=\"%s\"", c->id,
			 ct->name, mtls_err_name(r), rt.host, rt.port,
			 mtls_error_str(&err, msg, sizeof(msg)));
		tls_ctx_free(ctx);
		return 0;
	}
	return serve(c, &rt, NULL, NULL, 0, 0, t0);
}

/* --- the agent socket: SOCKS5 or HTTP CONNECT, then the policy --- */

static void send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	/* Replies are a few hundred bytes into an empty socket buffer. */
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0) {
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				struct pollfd pf = { .fd = fd, .events = POLLOUT };

				if (poll(&pf, 1, 1000) <= 0)
					return;
				continue;
			}
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

/* After a refusal: stop writing, then read (and drop) what the program
 * still sends, briefly, so that closing with unread data does not reset
 * the connection before the program read our answer. */
static void linger_close(int fd)
{
	char sink[4096];
	uint64_t until = mtls_now_ms() + 200;
	size_t total = 0;

	(void)shutdown(fd, SHUT_WR);
	while (total < 65536 && mtls_now_ms() < until) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, (int)(until - mtls_now_ms())) != 1)
			break;
		n = recv(fd, sink, sizeof(sink), 0);
		if (n <= 0)
			break;
		total += (size_t)n;
	}
}

static void socks_reply(struct conn *c, mtls_err_t r, const char *detail)
{
	uint8_t out[10];

	(void)detail;
	send_all(c->app_fd, out,
		 socks5_reply(r == MTLS_OK ? SOCKS5_OK : proxy_socks_code(r), out));
	if (r != MTLS_OK)
		linger_close(c->app_fd);
}

static void http_reply_to(struct conn *c, mtls_err_t r, const char *detail)
{
	char out[1024];

	send_all(c->app_fd, out,
		 http_reply(r == MTLS_OK ? 200 : proxy_http_status(r),
			    mtls_err_name(r), detail, out, sizeof(out)));
	if (r != MTLS_OK)
		linger_close(c->app_fd);
}

/* The policy's route to host:port for this caller (0), or the reply that
 * says why not, already sent and counted (-1). rt->host points at host. */
static int route_to(struct conn *c, const char *host, uint16_t port,
		    void (*reply)(struct conn *, mtls_err_t, const char *),
		    struct route *rt)
{
	const struct policy *pol = c->rt->cfg->policy;
	const struct caller *whop = &c->who;
	struct policy_caller pc;
	struct policy_decision d;
	struct policy_dest dest;
	mtls_err_t r;

	caller_policy(whop, &pc);
	memset(rt, 0, sizeof(*rt));
	memset(&dest, 0, sizeof(dest));
	dest.host = host;
	dest.port = port;
	/* First by name (a denied name is never looked up), then for every
	 * address it resolves to: CIDR and environment rules see the address
	 * that would be reached, and only addresses allowed along the same
	 * route are connected to. */
	policy_decide(pol, &pc, &dest, (int64_t)time(NULL), &d);
	if (d.reason == POLICY_REASON_ALLOWED) {
		struct mtls_error err = { 0 };
		struct net_addrs all;
		char msg[512];
		unsigned denied = 0;

		r = net_resolve(host, port, &all, &err);
		if (r != MTLS_OK) {
			log_warn("event=resolve_failed conn=%lu tunnel=%s "
				 "dest=%s:%u reason=%s detail=\"%s\"", c->id,
				 c->t->cfg->name, host, port,
				 mtls_err_name(r),
				 mtls_error_str(&err, msg, sizeof(msg)));
			reply(c, r, msg);
			count_failure(r);
			return -1;
		}
		for (unsigned i = 0; i < all.n; i++) {
			struct policy_decision da;

			addr_for_policy(&all.a[i], &dest);
			policy_decide(pol, &pc, &dest, (int64_t)time(NULL), &da);
			if (da.reason == POLICY_REASON_ALLOWED &&
			    (rt->to.n == 0 || (da.identity == d.identity &&
					      da.profile == d.profile))) {
				if (rt->to.n == 0)
					d = da;
				rt->to.a[rt->to.n] = all.a[i];
				rt->to.len[rt->to.n++] = all.len[i];
				continue;
			}
			if (denied++ == 0 && rt->to.n == 0 &&
			    da.reason != POLICY_REASON_ALLOWED)
				d = da; /* the answer if none is allowed */
		}
		if (rt->to.n == 0 && d.reason == POLICY_REASON_ALLOWED)
			d.reason = POLICY_REASON_NO_RULE;
		if (denied > 0 && rt->to.n > 0)
			log_notice("event=addresses_denied conn=%lu dest=%s:%u "
				   "denied=%u allowed=%u", c->id, host,
				   port, denied, rt->to.n);
	}
	if (d.reason != POLICY_REASON_ALLOWED) {
		atomic_fetch_add(&g_stats.policy_denials[d.reason], 1);
		log_warn("event=policy_denied conn=%lu tunnel=%s uid=%lld "
			 "pid=%lld exe=\"%s\" unit=\"%s\" dest=%s:%u reason=%s "
			 "why=\"%s\"", c->id, c->t->cfg->name,
			 (long long)whop->uid, (long long)whop->pid, whop->exe,
			 whop->unit, host, port,
			 policy_reason_name(d.reason), d.why);
		reply(c, MTLS_ERR_POLICY_DENIED,
		      d.rule >= 0 && pol->rules[d.rule].reason[0] ?
			      pol->rules[d.rule].reason : policy_reason_name(d.reason));
		return -1;
	}
	log_info("event=route conn=%lu tunnel=%s uid=%lld pid=%lld exe=\"%s\" "
		 "dest=%s:%u rule=%s identity=%s profile=%s", c->id,
		 c->t->cfg->name, (long long)whop->uid, (long long)whop->pid,
		 whop->exe, host, port, pol->rules[d.rule].name,
		 pol->identities[d.identity].name, pol->profiles[d.profile].name);
	{
		struct mtls_error err = { 0 };
		char msg[512];

		r = runtime_route_ctx(c->rt, d.identity, d.profile, &rt->ctx, &err);
		if (r != MTLS_OK) {
			log_err("event=route_failed conn=%lu detail=\"%s\"", c->id,
				mtls_error_str(&err, msg, sizeof(msg)));
			reply(c, r, msg);
			count_failure(r);
			return -1;
		}
	}
	rt->id = c->rt->ids[d.identity];
	rt->profile = &pol->profiles[d.profile];
	rt->host = host;
	rt->port = port;
	rt->sni = host;
	if (c->rt->cfg->agent.resume)
		snprintf(rt->session_key, sizeof(rt->session_key), "r|%lu|%s|%s|%u",
			 tls_ctx_serial(rt->ctx), rt->id->name, host,
			 port);
	return 0;
}

/* A request that does not parse: its status and reason, then close. */
static void http_bad_request(struct conn *c, int status, const char *why)
{
	char out[1024];

	send_all(c->app_fd, out, http_reply(status, "bad_request", why, out,
					    sizeof(out)));
	linger_close(c->app_fd);
	log_warn("event=bad_request conn=%lu tunnel=%s detail=\"%s\"", c->id,
		 c->t->cfg->name, why);
	count_failure(MTLS_ERR_BAD_REQUEST);
}

/* --- plain HTTP proxying (http_proxy): requests in absolute-form --- */

static void forward_reply(struct conn *c, mtls_err_t r, const char *detail)
{
	/* Up: the program's request goes on, its answer is the server's. */
	if (r != MTLS_OK)
		http_reply_to(c, r, detail);
}

/* Each head is rewritten, each body passed on as it is; a head for
 * another server, or one that does not parse, ends this route: the
 * caller routes it anew (or answers it) once this server has answered
 * what it was asked, so that answers reach the program in order. */
static enum relay_verdict forward_filter(void *arg, const uint8_t *in,
					 size_t len, int eof, uint8_t *out,
					 size_t cap, size_t *used,
					 size_t *out_len)
{
	struct forward *f = arg;
	struct http_forward_head h;
	enum proxy_parse pr;

	(void)eof;
	if (f->in_body) {
		int end = http_body_step(&f->body, in, len, used);

		if (end < 0) {
			log_warn("event=bad_request conn=%lu detail=\"broken "
				 "chunked body\"", f->conn);
			return RELAY_REFUSE;
		}
		if (*used > cap)
			return RELAY_REFUSE;
		memcpy(out, in, *used);
		*out_len = *used;
		if (end)
			f->in_body = 0;
		return RELAY_PASS;
	}
	pr = http_forward_parse(in, len, &h, out, cap, out_len);
	if (pr == PROXY_NEED_MORE)
		return RELAY_MORE;
	if (pr == PROXY_ERROR || !http_forward_same_origin(&h, f->host, f->port))
		return RELAY_SWITCH;
	http_body_start(&f->body, &h);
	f->in_body = h.body != HTTP_BODY_NONE;
	*used = h.consumed;
	return RELAY_PASS;
}

_Static_assert(RELAY_BUF >= HTTP_FORWARD_HEAD_MAX,
	       "a rewritten head fits the relay's buffer");

/* --- the request, gathered on the event loop --- */

/* A proxy connection's request, read on the event loop until it is
 * complete or can never be: a program that connects and says nothing, or
 * says it a byte a second, holds no thread, only this (and its buffer from
 * its first byte on) until request_timeout. */
enum request_kind { RQ_UNKNOWN, RQ_SOCKS5, RQ_CONNECT, RQ_FORWARD };
enum request_state { RQ_MORE, RQ_READY, RQ_DROP };

struct request {
	struct relay_job job; /* a wait (relay_loop.h) while on the loop */
	struct conn *c;
	uint8_t *buf;         /* RELAY_BUF bytes, from the first byte on */
	size_t len;
	size_t off;  /* SOCKS5: where the request starts after the greeting */
	int greeted; /* SOCKS5: "no authentication" was answered */
	enum request_kind kind;
	enum request_state state;
};

static void *conn_main(void *arg);

static void request_free(struct request *q)
{
	if (q == NULL)
		return;
	/* Request heads carry the program's credentials. */
	wipe_free(q->buf, RELAY_BUF);
	free(q);
}

/* The most of the request read: a SOCKS5 or CONNECT request is small; a
 * plain HTTP request's head may come with the start of its body. */
static size_t request_cap(const struct request *q)
{
	return q->kind == RQ_FORWARD ? RELAY_BUF : PROXY_REQUEST_MAX;
}

static enum request_state need_more(const struct request *q)
{
	/* A buffer full of an unfinished request: it never will be. */
	return q->len >= request_cap(q) ? RQ_DROP : RQ_MORE;
}

/* Whether q holds a whole request yet (or one that can be answered: a
 * parser's error). The parsers are the same ones proxy_serve runs on
 * what this found complete. A SOCKS5 greeting is answered here, from the
 * loop: two bytes into the socket's empty buffer, never blocking. */
static enum request_state request_scan(struct request *q, int app_fd)
{
	uint8_t head[HTTP_FORWARD_HEAD_MAX];
	struct http_forward_head h;
	struct proxy_request req;
	enum proxy_parse pr;
	size_t hl;

	if (q->len == 0)
		return RQ_MORE;
	if (q->kind == RQ_UNKNOWN) {
		if (q->buf[0] == 0x05)
			q->kind = RQ_SOCKS5;
		else if (q->len < 8 && memchr(q->buf, '\n', q->len) == NULL)
			return need_more(q);
		else
			q->kind = q->len >= 8 && memcmp(q->buf, "CONNECT ", 8) == 0 ?
					  RQ_CONNECT : RQ_FORWARD;
	}
	switch (q->kind) {
	case RQ_SOCKS5:
		if (!q->greeted) {
			int method_ok = 0;

			pr = socks5_parse_greeting(q->buf, q->len, &method_ok,
						   &q->off);
			if (pr == PROXY_NEED_MORE)
				return need_more(q);
			if (pr != PROXY_DONE || !method_ok)
				return RQ_READY; /* refused by proxy_serve */
			if (send(app_fd, "\x05\x00", 2,
				 MSG_DONTWAIT | MSG_NOSIGNAL) != 2)
				return RQ_DROP;
			q->greeted = 1;
		}
		pr = socks5_parse_request(q->buf + q->off, q->len - q->off, &req);
		break;
	case RQ_CONNECT:
		pr = http_parse_connect(q->buf, q->len, &req);
		break;
	default:
		pr = http_forward_parse(q->buf, q->len, &h, head, sizeof(head),
					&hl);
		explicit_bzero(head, sizeof(head));
		break;
	}
	return pr == PROXY_NEED_MORE ? need_more(q) : RQ_READY;
}

/* The loop's look at the program's socket (relay_job.wait). */
static int request_wait(struct relay_job *j, int timed_out, int stopping)
{
	struct request *q = (struct request *)((char *)j -
					       offsetof(struct request, job));
	ssize_t n;

	if (timed_out || stopping)
		goto drop;
	if (q->buf == NULL && (q->buf = malloc(RELAY_BUF)) == NULL)
		goto drop;
	n = recv(j->wait_fd, q->buf + q->len, request_cap(q) - q->len,
		 MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 1;
	if (n <= 0)
		goto drop;
	q->len += (size_t)n;
	q->state = request_scan(q, j->wait_fd);
	return q->state == RQ_MORE;
drop:
	q->state = RQ_DROP;
	return 0;
}

/* The loop let go of q (request_wait said 0): a whole request goes on in
 * a thread of its own (it resolves names, connects and handshakes);
 * anything else ends the connection, quietly, as a timeout does. */
static void request_done(struct relay_job *j, mtls_err_t r,
			 struct mtls_error *err)
{
	struct request *q = (struct request *)((char *)j -
					       offsetof(struct request, job));
	struct conn *c = q->c;

	(void)r;
	(void)err;
	if (q->state == RQ_READY &&
	    reap_spawn(CONN_STACK, conn_main, c, &c->self) == 0)
		return;
	c->rq = NULL;
	request_free(q);
	conn_end(c, 1);
}

/* Hands c's request to the loop until it is complete (request_timeout
 * after c->t0). 0, or -1 with c still the caller's. */
static int request_park(struct conn *c)
{
	struct request *q = c->rq;
	struct mtls_error err = { 0 };

	memset(&q->job, 0, sizeof(q->job));
	q->job.wait_fd = c->app_fd;
	q->job.wait_events = POLLIN;
	q->job.wait = request_wait;
	q->job.done = request_done;
	q->job.wait_deadline = c->t0 + c->rt->cfg->agent.request_timeout_ms;
	q->state = RQ_MORE;
	return relay_loop_park(&q->job, c->stop_fd, &err) == MTLS_OK ? 0 : -1;
}

static struct request *request_new(struct conn *c)
{
	struct request *q = calloc(1, sizeof(*q));

	if (q != NULL)
		q->c = c;
	return q;
}

/* After a relay that switched (parked_done, in the loop thread): the
 * program's next request, for another server, is in rest (taken); it
 * starts over as the connection's first did. 0, or -1: end c. */
static int forward_next(struct conn *c, uint8_t *rest, size_t rest_len)
{
	struct request *q;

	if (rest == NULL || (q = request_new(c)) == NULL)
		return -1;
	if ((q->buf = malloc(RELAY_BUF)) == NULL) {
		free(q);
		return -1;
	}
	memcpy(q->buf, rest, rest_len);
	q->len = rest_len;
	q->kind = RQ_FORWARD;
	wipe_free(rest, rest_len);
	close(c->srv_fd);
	c->srv_fd = -1;
	c->t0 = mtls_now_ms();
	c->rq = q;
	if (reap_spawn(CONN_STACK, conn_main, c, &c->self) != 0) {
		c->rq = NULL;
		request_free(q);
		return -1;
	}
	return 0;
}

/* A plain HTTP request, whole in q: routed, and relayed with the forward
 * filter. 1: parked. */
static int forward_serve(struct conn *c, struct request *q)
{
	uint8_t head[HTTP_FORWARD_HEAD_MAX];
	struct http_forward_head h;
	struct route rt;
	enum proxy_parse pr;
	size_t hl;

	pr = http_forward_parse(q->buf, q->len, &h, head, sizeof(head), &hl);
	explicit_bzero(head, sizeof(head));
	if (pr != PROXY_DONE) {
		http_bad_request(c, h.status, h.error);
		return 0;
	}
	if (route_to(c, h.host, h.port, forward_reply, &rt) != 0)
		return 0;
	/* The relay takes the request as early data, through the filter. */
	return serve(c, &rt, forward_reply, q->buf, q->len, 1, c->t0);
}

/* Acts on the request in c->rq, whole (request_scan said so): answers
 * it, or routes it and serves it. 1: c is the event loop's. */
static int proxy_serve(struct conn *c)
{
	struct request *q = c->rq;
	struct proxy_request req;
	struct route rt;
	enum proxy_parse pr;
	size_t off;
	int parked = 0;
	void (*reply)(struct conn *, mtls_err_t, const char *);

	q->state = request_scan(q, c->app_fd);
	/* Not whole yet (a switched request's rest): back to the loop. */
	if (q->state == RQ_MORE && request_park(c) == 0)
		return 1;
	c->rq = NULL;
	if (q->state != RQ_READY)
		goto out;
	switch (q->kind) {
	case RQ_SOCKS5:
		reply = socks_reply;
		if (!q->greeted) {
			/* "no acceptable methods" */
			send_all(c->app_fd, "\x05\xff", 2);
			log_warn("event=bad_request conn=%lu tunnel=%s "
				 "detail=\"SOCKS5 greeting without the "
				 "no-authentication method\"", c->id,
				 c->t->cfg->name);
			count_failure(MTLS_ERR_BAD_REQUEST);
			goto out;
		}
		pr = socks5_parse_request(q->buf + q->off, q->len - q->off, &req);
		if (pr != PROXY_DONE) {
			uint8_t out[10];

			send_all(c->app_fd, out, socks5_reply(req.socks_reply, out));
			linger_close(c->app_fd);
			log_warn("event=bad_request conn=%lu tunnel=%s detail=\"%s\"",
				 c->id, c->t->cfg->name, req.error);
			count_failure(MTLS_ERR_BAD_REQUEST);
			goto out;
		}
		off = q->off + req.consumed;
		break;
	case RQ_CONNECT:
		reply = http_reply_to;
		pr = http_parse_connect(q->buf, q->len, &req);
		if (pr != PROXY_DONE) {
			http_bad_request(c, req.http_status, req.error);
			goto out;
		}
		off = req.consumed;
		break;
	default:
		parked = forward_serve(c, q);
		goto out;
	}
	if (route_to(c, req.host, req.port, reply, &rt) == 0)
		parked = serve(c, &rt, reply, q->buf + off, q->len - off, 0,
			       c->t0);
out:
	/* Not c's any more: c may be the loop's, or gone, by now. */
	request_free(q);
	return parked;
}

struct put_arg {
	struct runtime *rt;
	struct reaped *self;
};

static void *runtime_put_main(void *arg)
{
	struct put_arg *pa = arg;
	struct reaped *self = pa->self;

	runtime_put(pa->rt);
	free(pa);
	reap_finish(self);
	return NULL;
}

/* Drops the last reference to rt on a thread of its own; 0, or -1 when
 * no thread could start. */
static int runtime_put_apart(struct runtime *rt)
{
	struct put_arg *pa = calloc(1, sizeof(*pa));

	if (pa == NULL)
		return -1;
	pa->rt = rt;
	if (reap_spawn(CONN_STACK, runtime_put_main, pa, &pa->self) != 0) {
		free(pa);
		return -1;
	}
	return 0;
}

/* A connection's end: its fds closed, its slots given back. In a relay
 * loop the runtime's last reference is dropped on a thread of its own:
 * freeing a runtime closes token sessions and modules, which may block. */
static void conn_end(struct conn *c, int in_loop)
{
	request_free(c->rq);
	if (c->srv_fd >= 0)
		close(c->srv_fd);
	close(c->app_fd);
	uid_release(c->uid);
	if (!in_loop || (runtime_put_shared(c->rt) != 0 &&
			 runtime_put_apart(c->rt) != 0))
		runtime_put(c->rt);
	free(c);
	atomic_fetch_sub(&g_stats.connections_active, 1);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct reaped *self = c->self;
	int parked = 0;

	if (c->t->cfg->is_proxy) {
		parked = proxy_serve(c);
	} else {
		struct policy_caller pc;
		char why[128];

		log_info("event=accept conn=%lu tunnel=%s uid=%lld pid=%lld "
			 "exe=\"%s\"", c->id, c->t->cfg->name,
			 (long long)c->who.uid, (long long)c->who.pid,
			 c->who.exe);
		caller_policy(&c->who, &pc);
		if (c->t->cfg->callers != NULL &&
		    !policy_caller_allows(c->t->cfg->callers, &pc, why,
					  sizeof(why))) {
			/* A tunnel has no protocol to say why: close. */
			atomic_fetch_add(&g_stats.policy_denials[POLICY_REASON_RULE_DENIES], 1);
			log_warn("event=policy_denied conn=%lu tunnel=%s "
				 "uid=%lld pid=%lld exe=\"%s\" unit=\"%s\" "
				 "reason=caller why=\"%s\"", c->id,
				 c->t->cfg->name, (long long)c->who.uid,
				 (long long)c->who.pid, c->who.exe,
				 c->who.unit, why);
		} else {
			parked = tunnel_serve(c, c->t0);
		}
	}
	if (!parked)
		conn_end(c, 0);
	/* Building a route's TLS context (CA and CRL signatures) may have
	 * filled this thread's FP_ECC tables. */
	wc_ecc_fp_free();
	reap_finish(self);
	return NULL;
}

void conn_pool_stop(void)
{
	pthread_mutex_lock(&hp.lock);
	hp.stop = 1;
	pthread_cond_broadcast(&hp.work);
	/* Workers finish their job first; jobs are bounded by their own
	 * connect and handshake deadlines. */
	while (hp.workers > 0)
		pthread_cond_wait(&hp.done, &hp.lock);
	pthread_mutex_unlock(&hp.lock);
	reap_all();
	/* No connection thread is left to park a relay; the loops' last
	 * relays may start a thread (the runtime's last reference). */
	relay_loop_stop();
	reap_all();
	refuser_stop();
}

mtls_err_t conn_start(struct runtime *rt, struct tunnel *t, int fd,
		      int stop_fd, struct mtls_error *err)
{
	struct conn *c;
	int rc;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		runtime_put(rt);
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	}
	c->id = atomic_fetch_add(&next_conn_id, 1) + 1;
	c->rt = rt;
	c->t = t;
	c->app_fd = fd;
	c->srv_fd = -1;
	c->stop_fd = stop_fd;
	c->uid = -1;
	c->t0 = mtls_now_ms();
	{
		char why[256];

		/* Before the thread exists and before any byte is read: the
		 * caller is the one that connected, never one that took its
		 * place after it closed. */
		if (caller_identify(fd, &c->who, why, sizeof(why)) != 0) {
			atomic_fetch_add(&g_stats.connections_refused, 1);
			log_warn("event=refused tunnel=%s reason=caller_unknown "
				 "detail=\"%s\"", t->cfg->name, why);
			close(fd);
			runtime_put(rt);
			free(c);
			return MTLS_OK;
		}
		/* Every listener, Unix or TCP, counts its callers. */
		if (uid_acquire(c->who.uid,
				rt->cfg->agent.max_connections_per_uid) != 0) {
			atomic_fetch_add(&g_stats.connections_refused, 1);
			log_warn("event=refused tunnel=%s reason=limit uid=%lld "
				 "max_connections_per_uid=%u", t->cfg->name,
				 (long long)c->who.uid,
				 rt->cfg->agent.max_connections_per_uid);
			snprintf(why, sizeof(why), "uid %lld has %u connections "
				 "open, max_connections_per_uid = %u",
				 (long long)c->who.uid,
				 rt->cfg->agent.max_connections_per_uid,
				 rt->cfg->agent.max_connections_per_uid);
			refuser_take(fd, t->cfg->is_proxy, why);
			runtime_put(rt);
			free(c);
			return MTLS_OK;
		}
		c->uid = c->who.uid;
	}
	atomic_fetch_add(&g_stats.connections_total, 1);
	atomic_fetch_add(&g_stats.connections_active, 1);
	if (t->cfg->is_proxy) {
		/* The request is read on the event loop; a thread starts once
		 * it is whole. */
		log_info("event=accept conn=%lu proxy=%s uid=%lld pid=%lld "
			 "exe=\"%s\"", c->id, t->cfg->name,
			 (long long)c->who.uid, (long long)c->who.pid,
			 c->who.exe);
		c->rq = request_new(c);
		if (c->rq == NULL) {
			conn_end(c, 0);
			return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		}
		if (request_park(c) == 0)
			return MTLS_OK;
		conn_end(c, 0);
		return mtls_error_set(err, MTLS_ERR_LIMIT,
				      "no event loop for the request");
	}
	rc = reap_spawn(CONN_STACK, conn_main, c, &c->self);
	if (rc != 0) {
		atomic_fetch_sub(&g_stats.connections_active, 1);
		uid_release(c->uid);
		close(fd);
		runtime_put(rt);
		free(c);
		return mtls_error_set(err, MTLS_ERR_LIMIT,
				      "pthread_create: %s", strerror(rc));
	}
	return MTLS_OK;
}
