/* hsbench: new connections per second and their latency, each a full
 * request on a fresh connection ("Connection: close"), from C threads.
 *   hsbench unix PATH   CONC SECONDS     plain HTTP into a Unix socket
 *   hsbench tcp  PORT   CONC SECONDS     plain HTTP to 127.0.0.1:PORT
 *   hsbench tls  PORT   CONC SECONDS     mTLS with wolfSSL, key in a file:
 *                                        HS_CA, HS_CERT, HS_KEY, HS_NAME
 * Prints: rate=R p50_ms=A p99_ms=B n=N errors=E */
#include <wolfssl/options.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#define MAX_SAMPLES 2000000

static const char *mode, *target;
static double seconds;
static WOLFSSL_CTX *ctx;
static double *lat;
static size_t n_lat;
static unsigned long errors;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(void)
{
	int fd;

	if (strcmp(mode, "unix") == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", target);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			close(fd);
			return -1;
		}
		return fd;
	} else {
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_port = htons((uint16_t)atoi(target)) };

		inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			close(fd);
			return -1;
		}
		return fd;
	}
}

static int one(void)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n"
				  "Connection: close\r\n\r\n";
	char buf[16384];
	int fd = dial(), ok = 0, n;
	WOLFSSL *ssl = NULL;

	if (fd < 0)
		return -1;
	if (ctx != NULL) {
		ssl = wolfSSL_new(ctx);
		if (ssl == NULL || wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS ||
		    wolfSSL_connect(ssl) != WOLFSSL_SUCCESS ||
		    wolfSSL_write(ssl, req, sizeof(req) - 1) != (int)sizeof(req) - 1)
			goto out;
		while ((n = wolfSSL_read(ssl, buf, sizeof(buf))) > 0)
			ok = 1;
	} else {
		if (write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1)
			goto out;
		while ((n = (int)read(fd, buf, sizeof(buf))) > 0)
			ok = 1;
	}
out:
	if (ssl != NULL)
		wolfSSL_free(ssl);
	close(fd);
	return ok ? 0 : -1;
}

static void *worker(void *arg)
{
	double end = *(double *)arg;

	while (now() < end) {
		double t0 = now();
		int r = one();
		double t1 = now();

		pthread_mutex_lock(&lock);
		if (r == 0 && n_lat < MAX_SAMPLES)
			lat[n_lat++] = (t1 - t0) * 1000.0;
		else if (r != 0)
			errors++;
		pthread_mutex_unlock(&lock);
	}
	wc_ecc_fp_free();
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int conc;
	double start, end;
	pthread_t *th;

	if (argc != 5) {
		fprintf(stderr, "usage: hsbench unix|tcp|tls TARGET CONC SECONDS\n");
		return 2;
	}
	/* A connection the server closes early is an error to count, not a
	 * SIGPIPE that ends the run without its line. */
	signal(SIGPIPE, SIG_IGN);
	mode = argv[1];
	target = argv[2];
	conc = atoi(argv[3]);
	seconds = atof(argv[4]);
	lat = malloc(sizeof(double) * MAX_SAMPLES);
	th = calloc((size_t)conc, sizeof(*th));
	if (lat == NULL || th == NULL)
		return 1;
	if (strcmp(mode, "tls") == 0) {
		wolfSSL_Init();
		ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
		if (ctx == NULL ||
		    wolfSSL_CTX_load_verify_locations(ctx, getenv("HS_CA"), NULL) != WOLFSSL_SUCCESS ||
		    wolfSSL_CTX_use_certificate_file(ctx, getenv("HS_CERT"), WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS ||
		    wolfSSL_CTX_use_PrivateKey_file(ctx, getenv("HS_KEY"), WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
			fprintf(stderr, "hsbench: TLS set-up failed\n");
			return 1;
		}
		/* No resumption: every connection is a full handshake. */
		wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
	}
	start = now();
	end = start + seconds;
	for (int i = 0; i < conc; i++)
		pthread_create(&th[i], NULL, worker, &end);
	for (int i = 0; i < conc; i++)
		pthread_join(th[i], NULL);
	qsort(lat, n_lat, sizeof(double), cmp);
	printf("rate=%.1f p50_ms=%.2f p99_ms=%.2f n=%zu errors=%lu\n",
	       (double)n_lat / (now() - start), n_lat ? lat[n_lat / 2] : 0.0,
	       n_lat ? lat[n_lat * 99 / 100] : 0.0, n_lat, errors);
	return 0;
}
