/* Context serials (tls_ctx_serial): unique per context, never reused. */
#include <wolfssl/options.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/memory.h>
#include <wolfssl/wolfcrypt/srp.h>
#include <stdlib.h>

#include "tls.h"

static WOLFSSL_CTX *ctx_new(void)
{
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());

	assert_non_null(ctx);
	return ctx;
}

static void test_serial_unique(void **state)
{
	WOLFSSL_CTX *a = ctx_new(), *b = ctx_new(), *c;
	unsigned long sa, sb, sc;

	(void)state;
	assert_int_equal(tls_ctx_serial(NULL), 0);
	/* Not built (tagged) by us: no serial. */
	assert_int_equal(tls_ctx_serial(a), 0);
	assert_int_equal(tls_ctx_tag(a, NULL), MTLS_OK);
	assert_int_equal(tls_ctx_tag(b, NULL), MTLS_OK);
	sa = tls_ctx_serial(a);
	sb = tls_ctx_serial(b);
	assert_true(sa != 0 && sb != 0 && sa != sb);
	/* One context, one serial, whoever holds a reference. */
	assert_int_equal(wolfSSL_CTX_up_ref(a), WOLFSSL_SUCCESS);
	wolfSSL_CTX_free(a);
	assert_int_equal(tls_ctx_serial(a), sa);
	/* A new context may take a freed one's address, never its serial. */
	wolfSSL_CTX_free(a);
	c = ctx_new();
	assert_int_equal(tls_ctx_tag(c, NULL), MTLS_OK);
	sc = tls_ctx_serial(c);
	assert_true(sc != 0 && sc != sa && sc != sb);
	wolfSSL_CTX_free(b);
	wolfSSL_CTX_free(c);
}

#define THREADS 4
#define PER_THREAD 50

static void *tag_many(void *arg)
{
	unsigned long *out = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());

		if (ctx == NULL || tls_ctx_tag(ctx, NULL) != MTLS_OK) {
			out[i] = 0;
		} else {
			out[i] = tls_ctx_serial(ctx);
		}
		wolfSSL_CTX_free(ctx);
	}
	return NULL;
}

static void test_serial_threads(void **state)
{
	static unsigned long got[THREADS][PER_THREAD];
	pthread_t th[THREADS];

	(void)state;
	for (int t = 0; t < THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, tag_many, got[t]), 0);
	for (int t = 0; t < THREADS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
	for (int i = 0; i < THREADS * PER_THREAD; i++) {
		unsigned long s = got[i / PER_THREAD][i % PER_THREAD];

		assert_true(s != 0);
		for (int j = 0; j < i; j++)
			assert_true(got[j / PER_THREAD][j % PER_THREAD] != s);
	}
}

/* wolfSSL 5.5.4's wolfSSL_CTX_free frees ctx->srp (a block of
 * sizeof(Srp)) at every call, unlocked, whatever the reference count: two
 * threads dropping references to one shared context freed it twice. A
 * tagged context has given it up already: the frees that share the
 * context never touch it. */
static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static void *srp_block;
static int srp_frees;

static void *hook_malloc(size_t n)
{
	void *p = malloc(n);

	pthread_mutex_lock(&hook_lock);
	if (n == sizeof(Srp) && srp_block == NULL)
		srp_block = p;
	pthread_mutex_unlock(&hook_lock);
	return p;
}

static void hook_free(void *p)
{
	pthread_mutex_lock(&hook_lock);
	if (p != NULL && p == srp_block)
		srp_frees++;
	pthread_mutex_unlock(&hook_lock);
	free(p);
}

static void *hook_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

static void *free_one(void *ctx)
{
	tls_ctx_free(ctx);
	return NULL;
}

static void test_shared_free_leaves_srp(void **state)
{
	wolfSSL_Malloc_cb om;
	wolfSSL_Free_cb of;
	wolfSSL_Realloc_cb orr;
	WOLFSSL_CTX *ctx;
	pthread_t a, b;
	int frees_at_tag;

	(void)state;
	assert_int_equal(wolfSSL_GetAllocators(&om, &of, &orr), 0);
	assert_int_equal(wolfSSL_SetAllocators(hook_malloc, hook_free, hook_realloc), 0);
	ctx = ctx_new();
	assert_non_null(srp_block); /* this build does allocate it */
	assert_int_equal(tls_ctx_tag(ctx, NULL), MTLS_OK);
	frees_at_tag = srp_frees;
	assert_int_equal(frees_at_tag, 1);
	/* Shared by three: two threads drop theirs at once, then the last. */
	assert_int_equal(wolfSSL_CTX_up_ref(ctx), WOLFSSL_SUCCESS);
	assert_int_equal(wolfSSL_CTX_up_ref(ctx), WOLFSSL_SUCCESS);
	assert_int_equal(pthread_create(&a, NULL, free_one, ctx), 0);
	assert_int_equal(pthread_create(&b, NULL, free_one, ctx), 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	tls_ctx_free(ctx);
	assert_int_equal(srp_frees, frees_at_tag);
	assert_int_equal(wolfSSL_SetAllocators(om, of, orr), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serial_unique),
		cmocka_unit_test(test_shared_free_leaves_srp),
		cmocka_unit_test(test_serial_threads),
	};
	int rc;

	if (wolfSSL_Init() != WOLFSSL_SUCCESS)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	wolfSSL_Cleanup();
	return rc;
}
