/* signbench: the token's raw ECDSA P-256 signature rate through pkcs11/
 * (the session pool the agent uses), from C threads.
 *   signbench MODULE TOKEN_URI KEY_URI PIN_SOURCE THREADS SECONDS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "p11.h"

static struct p11_key *key;
static double end_at;
static unsigned long total, failed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
	uint8_t hash[32] = { 1 }, sig[P11_SIG_MAX];
	unsigned long n = 0, bad = 0;

	(void)arg;
	while (now() < end_at) {
		size_t len = sizeof(sig);

		if (p11_key_sign(key, P11_SIGN_ECDSA, P11_HASH_SHA256, hash,
				 sizeof(hash), sig, &len, NULL) == MTLS_OK)
			n++;
		else
			bad++;
	}
	pthread_mutex_lock(&lock);
	total += n;
	failed += bad;
	pthread_mutex_unlock(&lock);
	return NULL;
}

int main(int argc, char **argv)
{
	struct mtls_error err = { 0 };
	struct p11_module *m;
	struct p11_token *t;
	pthread_t th[64];
	int threads;
	double secs, start;
	char msg[512];

	if (argc != 7) {
		fprintf(stderr, "usage: signbench MODULE TOKEN_URI KEY_URI PIN_SOURCE THREADS SECONDS\n");
		return 2;
	}
	threads = atoi(argv[5]);
	secs = atof(argv[6]);
	if (threads < 1 || threads > 64)
		return 2;
	if (p11_module_open(argv[1], &m, &err) != MTLS_OK ||
	    p11_token_open(m, argv[2], argv[4], (unsigned)threads, &t, &err) != MTLS_OK ||
	    p11_token_login(t, &err) != MTLS_OK ||
	    p11_key_open(t, argv[3], &key, &err) != MTLS_OK) {
		fprintf(stderr, "signbench: %s\n", mtls_error_str(&err, msg, sizeof(msg)));
		return 1;
	}
	start = now();
	end_at = start + secs;
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	printf("rate=%.1f n=%lu errors=%lu\n", (double)total / (now() - start), total, failed);
	p11_key_close(key);
	p11_token_close(t);
	p11_module_close(m);
	return 0;
}
