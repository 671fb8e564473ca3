#include <wolfssl/options.h>

#include "relay_loop.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mtls_clock.h"

/* Rounds a job may run before the loop turns to the next one: fairness
 * between connections (and so between callers), about 512 KiB each way. */
#define LOOP_BUDGET 8
#define LOOP_EVENTS 128

struct relay_loop {
	pthread_t thread;
	int ep, wake;
	pthread_mutex_t lock;
	int stop_fd;
	struct relay_job *inbox; /* parked, not yet adopted (via next) */
	atomic_uint jobs_n;
	/* The loop thread's alone. */
	struct relay_job *jobs;
	struct relay_job *ready;
	uint64_t next_deadline; /* the earliest job deadline, 0: none */
	int stopping;
};

static struct relay_tag wake_tag = { NULL, 0 }, stop_tag = { NULL, 1 };

static struct {
	pthread_mutex_t lock;
	struct relay_loop loops[RELAY_LOOPS_MAX];
	unsigned n;
	atomic_int quit;
} L = { .lock = PTHREAD_MUTEX_INITIALIZER };

static unsigned epoll_of(short poll_events)
{
	return ((poll_events & POLLIN) ? EPOLLIN : 0) |
	       ((poll_events & POLLOUT) ? EPOLLOUT : 0);
}

/* Watches fd for ev (0: not at all; epoll reports a hang-up even for no
 * events, which would spin the loop). */
static int watch(struct relay_loop *lp, int fd, unsigned *reg, unsigned ev,
		 struct relay_tag *tag)
{
	struct epoll_event e = { .events = ev, .data.ptr = tag };
	int op;

	if (ev == *reg)
		return 0;
	op = ev == 0 ? EPOLL_CTL_DEL : *reg == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
	if (epoll_ctl(lp->ep, op, fd, &e) != 0)
		return -1;
	*reg = ev;
	return 0;
}

static void mark_ready(struct relay_loop *lp, struct relay_job *j)
{
	if (!j->ready) {
		j->ready = 1;
		j->ready_next = lp->ready;
		lp->ready = j;
	}
}

static void finish(struct relay_loop *lp, struct relay_job *j, mtls_err_t r)
{
	if (j->wait != NULL) {
		relay_loop_forget(j);
	} else {
		(void)watch(lp, j->rl.app_fd, &j->app_reg, 0, &j->app_tag);
		(void)watch(lp, j->rl.tls_fd, &j->tls_reg, 0, &j->tls_tag);
	}
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		lp->jobs = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	atomic_fetch_sub(&lp->jobs_n, 1);
	j->done(j, r, &j->err);
}

static void set_deadline(struct relay_loop *lp, struct relay_job *j,
			 uint64_t deadline)
{
	j->deadline = deadline;
	if (deadline != 0 &&
	    (lp->next_deadline == 0 || deadline < lp->next_deadline))
		lp->next_deadline = deadline;
}

void relay_loop_forget(struct relay_job *j)
{
	(void)watch(j->loop, j->wait_fd, &j->app_reg, 0, &j->app_tag);
}

/* A job that waits for an fd (j->wait). */
static void run_wait(struct relay_loop *lp, struct relay_job *j)
{
	int timed_out = j->wait_deadline != 0 &&
			mtls_now_ms() >= j->wait_deadline;

	if (!j->wait(j, timed_out, lp->stopping) || lp->stopping ||
	    timed_out) {
		finish(lp, j, MTLS_OK);
		return;
	}
	if (watch(lp, j->wait_fd, &j->app_reg, epoll_of(j->wait_events),
		  &j->app_tag) != 0) {
		finish(lp, j, mtls_error_set(&j->err, MTLS_ERR_IO,
					     "epoll_ctl: %s", strerror(errno)));
		return;
	}
	set_deadline(lp, j, j->wait_deadline);
}

/* Runs j's relay as far as it goes now. */
static void run(struct relay_loop *lp, struct relay_job *j)
{
	struct relay_wait w;
	enum relay_step st;
	mtls_err_t r;

	if (j->wait != NULL) {
		run_wait(lp, j);
		return;
	}
	if (lp->stopping) {
		j->rl.res.stopped = 1;
		finish(lp, j, MTLS_OK);
		return;
	}
	st = relay_step(&j->rl, LOOP_BUDGET, &w, &r, &j->err);
	if (st == RELAY_STEP_DONE) {
		finish(lp, j, r);
		return;
	}
	if (st == RELAY_STEP_AGAIN) {
		mark_ready(lp, j);
		return;
	}
	if (watch(lp, j->rl.app_fd, &j->app_reg, epoll_of(w.app_events),
		  &j->app_tag) != 0 ||
	    watch(lp, j->rl.tls_fd, &j->tls_reg, epoll_of(w.tls_events),
		  &j->tls_tag) != 0) {
		finish(lp, j, mtls_error_set(&j->err, MTLS_ERR_IO,
					     "epoll_ctl: %s", strerror(errno)));
		return;
	}
	set_deadline(lp, j, w.timeout_ms < 0 ?
				    0 : mtls_now_ms() + (uint64_t)w.timeout_ms);
}

static void adopt(struct relay_loop *lp)
{
	struct relay_job *j, *next;
	uint64_t v;

	if (read(lp->wake, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&lp->lock);
	j = lp->inbox;
	lp->inbox = NULL;
	pthread_mutex_unlock(&lp->lock);
	for (; j != NULL; j = next) {
		next = j->next;
		j->prev = NULL;
		j->next = lp->jobs;
		if (lp->jobs != NULL)
			lp->jobs->prev = j;
		lp->jobs = j;
		/* Bytes may already wait inside wolfSSL or in early data,
		 * where epoll cannot see them. */
		mark_ready(lp, j);
	}
}

/* The jobs whose idle deadline passed run now (relay_step ends them);
 * the next deadline is found again. */
static void expire(struct relay_loop *lp, uint64_t now)
{
	uint64_t next = 0;

	for (struct relay_job *j = lp->jobs; j != NULL; j = j->next) {
		if (j->deadline != 0 && j->deadline <= now)
			mark_ready(lp, j);
		else if (j->deadline != 0 && (next == 0 || j->deadline < next))
			next = j->deadline;
	}
	lp->next_deadline = next;
}

static void *loop_main(void *arg)
{
	struct relay_loop *lp = arg;
	struct epoll_event ev[LOOP_EVENTS];

	/* For top -H and the tests' thread counts. */
	(void)pthread_setname_np(pthread_self(), "mtls-relay");

	for (;;) {
		uint64_t now = mtls_now_ms();
		int timeout = -1, n;

		if (lp->ready != NULL)
			timeout = 0;
		else if (lp->next_deadline != 0)
			timeout = lp->next_deadline <= now ?
					  0 : (int)(lp->next_deadline - now);
		n = epoll_wait(lp->ep, ev, LOOP_EVENTS, timeout);
		for (int i = 0; i < n; i++) {
			struct relay_tag *tag = ev[i].data.ptr;

			if (tag == &wake_tag) {
				adopt(lp);
			} else if (tag == &stop_tag) {
				/* Readable from now on: watched no more. */
				lp->stopping = 1;
				(void)epoll_ctl(lp->ep, EPOLL_CTL_DEL,
						lp->stop_fd, NULL);
			} else {
				if (tag->side == 0)
					tag->job->rl.app_readable = 1;
				mark_ready(lp, tag->job);
			}
		}
		if (atomic_load(&L.quit)) {
			lp->stopping = 1;
			adopt(lp);
		}
		if (lp->stopping)
			for (struct relay_job *j = lp->jobs; j != NULL; j = j->next)
				mark_ready(lp, j);
		now = mtls_now_ms();
		if (lp->next_deadline != 0 && lp->next_deadline <= now)
			expire(lp, now);
		/* Jobs made ready while these run wait for the next turn. */
		struct relay_job *batch = lp->ready;

		lp->ready = NULL;
		while (batch != NULL) {
			struct relay_job *j = batch;

			batch = j->ready_next;
			j->ready = 0;
			run(lp, j);
		}
		if (atomic_load(&L.quit) && lp->jobs == NULL)
			return NULL;
	}
}

static int loop_start(struct relay_loop *lp, int stop_fd)
{
	struct epoll_event we = { .events = EPOLLIN, .data.ptr = &wake_tag };
	struct epoll_event se = { .events = EPOLLIN, .data.ptr = &stop_tag };

	memset(lp, 0, sizeof(*lp));
	pthread_mutex_init(&lp->lock, NULL);
	lp->stop_fd = stop_fd;
	lp->ep = epoll_create1(EPOLL_CLOEXEC);
	lp->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (lp->ep < 0 || lp->wake < 0 ||
	    epoll_ctl(lp->ep, EPOLL_CTL_ADD, lp->wake, &we) != 0 ||
	    epoll_ctl(lp->ep, EPOLL_CTL_ADD, stop_fd, &se) != 0 ||
	    pthread_create(&lp->thread, NULL, loop_main, lp) != 0) {
		if (lp->ep >= 0)
			close(lp->ep);
		if (lp->wake >= 0)
			close(lp->wake);
		pthread_mutex_destroy(&lp->lock);
		return -1;
	}
	return 0;
}

mtls_err_t relay_loop_park(struct relay_job *j, int stop_fd,
			   struct mtls_error *err)
{
	struct relay_loop *lp = NULL;
	uint64_t one = 1;

	pthread_mutex_lock(&L.lock);
	if (L.n == 0 && !atomic_load(&L.quit)) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		unsigned want = cpus < 1 ? 1 :
				cpus > RELAY_LOOPS_MAX ? RELAY_LOOPS_MAX :
							 (unsigned)cpus;

		while (L.n < want && loop_start(&L.loops[L.n], stop_fd) == 0)
			L.n++;
	}
	/* The loop with the fewest jobs. */
	for (unsigned i = 0; i < L.n; i++)
		if (lp == NULL || atomic_load(&L.loops[i].jobs_n) <
				  atomic_load(&lp->jobs_n))
			lp = &L.loops[i];
	if (lp == NULL || atomic_load(&L.quit)) {
		pthread_mutex_unlock(&L.lock);
		return mtls_error_set(err, MTLS_ERR_LIMIT,
				      "no relay loop could start");
	}
	j->loop = lp;
	j->ready = 0;
	j->app_reg = j->tls_reg = 0;
	j->deadline = 0;
	j->app_tag = (struct relay_tag){ j, 0 };
	j->tls_tag = (struct relay_tag){ j, 1 };
	memset(&j->err, 0, sizeof(j->err));
	atomic_fetch_add(&lp->jobs_n, 1);
	pthread_mutex_lock(&lp->lock);
	j->next = lp->inbox;
	lp->inbox = j;
	pthread_mutex_unlock(&lp->lock);
	/* Still under L.lock: relay_loop_stop cannot have begun, so the loop
	 * adopts j before it ends. */
	pthread_mutex_unlock(&L.lock);
	/* An eventfd write fails only when its counter would overflow: the
	 * loop is awake then anyway. */
	(void)!write(lp->wake, &one, sizeof(one));
	return MTLS_OK;
}

void relay_loop_stop(void)
{
	uint64_t one = 1;

	pthread_mutex_lock(&L.lock);
	atomic_store(&L.quit, 1);
	for (unsigned i = 0; i < L.n; i++)
		(void)!write(L.loops[i].wake, &one, sizeof(one));
	for (unsigned i = 0; i < L.n; i++) {
		pthread_join(L.loops[i].thread, NULL);
		close(L.loops[i].ep);
		close(L.loops[i].wake);
		pthread_mutex_destroy(&L.loops[i].lock);
	}
	L.n = 0;
	pthread_mutex_unlock(&L.lock);
}
