#include "renew_schedule.h"

/* splitmix64: a fixed, well-mixed jitter from a seed. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

int64_t renew_due(const struct renew_params *p, int64_t not_before,
		  int64_t not_after, uint64_t seed)
{
	int64_t life = not_after - not_before, due, jitter = 0;

	if (life <= 0)
		return not_before;
	if (p->renew_before > 0)
		due = not_after - p->renew_before;
	else
		due = not_before + life * (int64_t)p->renew_at_permille / 1000;
	if (p->jitter_permille > 0) {
		int64_t span = life * (int64_t)p->jitter_permille / 1000;

		if (span > 0)
			jitter = (int64_t)(mix(seed) % (uint64_t)span);
	}
	due -= jitter;
	return due < not_before ? not_before : due;
}

int64_t renew_retry_at(const struct renew_params *p, unsigned failures,
		       int64_t last)
{
	int64_t wait = p->retry_min;

	for (unsigned i = 1; i < failures && wait < p->retry_max; i++)
		wait *= 2;
	if (wait > p->retry_max)
		wait = p->retry_max;
	return last + wait;
}

int renew_warning(const struct renew_params *p, int64_t not_after, int64_t now)
{
	int best = -1;

	for (unsigned i = 0; i < p->n_warn; i++) {
		if (now < not_after - p->warn_before[i])
			continue;
		if (best < 0 || p->warn_before[i] < p->warn_before[best])
			best = (int)i;
	}
	return best;
}
