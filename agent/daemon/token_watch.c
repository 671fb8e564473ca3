#include "token_watch.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "current.h"
#include "mtls_log.h"
#include "p11.h"
#include "pinentry_job.h"
#include "pins.h"

/* A person waits for the dialogue after plugging the card in: a second
 * is quick for them and costs one C_GetTokenInfo per token. */
#define PERIOD_MS 1000

/* What was seen of each watched token, by name: a reload builds new token
 * objects (their removal counts start again) but it is the same card. */
struct seen {
	char name[CFG_NAME_MAX];
	const struct p11_token *obj; /* whose removal count 'removals' is */
	unsigned long removals;
	int present;
	int used; /* a slot of this table */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	pthread_t thread;
	int stop, running;
	struct seen seen[CFG_MAX_TOKENS];
} W = { .lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static struct seen *seen_for(const char *name)
{
	struct seen *free_slot = NULL;

	for (unsigned i = 0; i < CFG_MAX_TOKENS; i++) {
		if (W.seen[i].used && strcmp(W.seen[i].name, name) == 0)
			return &W.seen[i];
		if (!W.seen[i].used && free_slot == NULL)
			free_slot = &W.seen[i];
	}
	return free_slot;
}

/* One look at token i; the watcher thread only. */
static void look(struct runtime *rt, unsigned i)
{
	const char *name = rt->cfg->tokens[i].name, *why_not = NULL;
	unsigned long removals;
	struct seen *s = seen_for(name);
	int present, came_back;

	if (s == NULL)
		return;
	present = p11_token_probe(rt->tokens[i], &removals);
	if (!s->used) {
		/* First look: the start-up dialogue (agent_main) covers a
		 * token present now. */
		*s = (struct seen){ .used = 1, .obj = rt->tokens[i],
				    .removals = removals, .present = present };
		snprintf(s->name, sizeof(s->name), "%s", name);
		if (!present)
			log_notice("event=token_absent token=%s", name);
		return;
	}
	if (s->obj != rt->tokens[i] || removals < s->removals) {
		/* A reload's new object (maybe at the old one's address)
		 * counts from 0. */
		s->obj = rt->tokens[i];
		s->removals = 0;
	}
	/* Gone and back between two looks shows only in the count. */
	came_back = present && (!s->present || removals != s->removals);
	if (s->present && (!present || removals != s->removals))
		log_notice("event=token_removed token=%s", name);
	s->removals = removals;
	s->present = present;
	if (!came_back)
		return;
	log_notice("event=token_inserted token=%s", name);
	if (pins_has(name))
		return; /* its PIN came with mtlsctl unlock meanwhile */
	if (pinentry_job_ask(rt, i, "the token was inserted again", NULL, NULL,
			     0, &why_not) != 0)
		log_warn("event=pinentry_not_asked token=%s reason=\"%s\"", name,
			 why_not);
}

static void *run(void *arg)
{
	struct timespec until;

	(void)arg;
	pthread_mutex_lock(&W.lock);
	while (!W.stop) {
		struct runtime *rt;

		pthread_mutex_unlock(&W.lock);
		rt = current_get();
		for (unsigned i = 0; rt != NULL && i < rt->cfg->n_tokens; i++)
			if (pinentry_job_token(rt, i) && rt->tokens[i] != NULL)
				look(rt, i);
		if (rt != NULL)
			runtime_put(rt);
		pthread_mutex_lock(&W.lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += (long)(PERIOD_MS % 1000) * 1000000;
		until.tv_sec += PERIOD_MS / 1000 + until.tv_nsec / 1000000000;
		until.tv_nsec %= 1000000000;
		while (!W.stop &&
		       pthread_cond_timedwait(&W.cv, &W.lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&W.lock);
	return NULL;
}

int token_watch_start(void)
{
	W.stop = 0;
	if (pthread_create(&W.thread, NULL, run, NULL) != 0)
		return -1;
	W.running = 1;
	return 0;
}

void token_watch_stop(void)
{
	if (!W.running)
		return;
	pthread_mutex_lock(&W.lock);
	W.stop = 1;
	pthread_cond_broadcast(&W.cv);
	pthread_mutex_unlock(&W.lock);
	pthread_join(W.thread, NULL);
	W.running = 0;
}
