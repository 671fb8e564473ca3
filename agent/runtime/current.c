#include "current.h"

#include <pthread.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct runtime *cur;

void current_set(struct runtime *rt)
{
	struct runtime *old;

	if (rt != NULL)
		runtime_get(rt);
	pthread_mutex_lock(&lock);
	old = cur;
	cur = rt;
	pthread_mutex_unlock(&lock);
	if (old != NULL)
		runtime_put(old);
}

struct runtime *current_get(void)
{
	struct runtime *rt;

	pthread_mutex_lock(&lock);
	rt = cur;
	if (rt != NULL)
		runtime_get(rt);
	pthread_mutex_unlock(&lock);
	return rt;
}
