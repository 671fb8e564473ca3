/* EST client (RFC 7030) over wolfSSL. The first enrollment authenticates
 * with HTTP Basic inside server-authenticated TLS; renewals authenticate
 * with the identity in service (its key signs on the token). */
#include <wolfssl/options.h>

#include "enroll.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/pkcs7.h>

#include "mtls_clock.h"
#include "mtls_secret.h"
#include "p11.h"
#include "tls.h"

#define EST_TIMEOUT_SEC 30

/* HTTP Basic: "user:password", at most EST_BASIC_PLAIN_MAX bytes, and room
 * for its base64 and the NUL after it. */
#define EST_BASIC_PLAIN_MAX (MTLS_SECRET_MAX + 129)
#define EST_BASIC_B64_MAX (4 * ((EST_BASIC_PLAIN_MAX + 2) / 3) + 1)

/* Retry-After (RFC 9110 10.2.3) as delta-seconds; an HTTP-date, a sign or
 * anything else is no number and counts as absent. Saturates at
 * EST_RETRY_AFTER_MAX rather than overflow; est_retry_after bounds it. */
static int parse_retry_after(const char *v)
{
	long n = 0;

	while (*v == ' ' || *v == '\t')
		v++;
	if (!isdigit((unsigned char)*v))
		return 0;
	for (; isdigit((unsigned char)*v); v++)
		if (n <= EST_RETRY_AFTER_MAX)
			n = n * 10 + (*v - '0');
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v != '\r' && *v != '\n' && *v != '\0')
		return 0;
	return n > EST_RETRY_AFTER_MAX ? EST_RETRY_AFTER_MAX : (int)n;
}

int est_retry_after(const struct cfg_renew *r, int asked)
{
	int wait = asked > 0 ? asked : 60;

	/* Never longer than retry_max: the agent waits no longer than that
	 * after a failure either, and a server asking for more (a day, a
	 * year) would hold the renewal back until the certificate expired. */
	if (r->sched.retry_max > 0 && wait > r->sched.retry_max)
		wait = (int)r->sched.retry_max;
	return wait;
}

static int tcp_connect(const char *host, uint16_t port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	struct timeval tv = { EST_TIMEOUT_SEC, 0 };
	char p[8];
	int fd = -1;

	snprintf(p, sizeof(p), "%u", port);
	if (getaddrinfo(host, p, &hints, &res) != 0)
		return -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* Finds the end of the header; decodes a chunked body in place. */
int http_response_parse(char *buf, size_t len, int *status, int *retry_after,
			char **body, size_t *body_len)
{
	char *hend = NULL, *line, *p;
	size_t clen = (size_t)-1;
	int chunked = 0;

	*retry_after = 0;
	for (size_t i = 0; i + 3 < len; i++)
		if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
			hend = buf + i;
			break;
		}
	if (hend == NULL || sscanf(buf, "HTTP/1.%*d %3d", status) != 1)
		return -1;
	*hend = '\0';
	for (line = strstr(buf, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
		line += 2;
		if (strncasecmp(line, "Content-Length:", 15) == 0)
			clen = strtoul(line + 15, NULL, 10);
		else if (strncasecmp(line, "Retry-After:", 12) == 0)
			*retry_after = parse_retry_after(line + 12);
		else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 &&
			 strstr(line, "chunked") != NULL)
			chunked = 1;
	}
	*body = hend + 4;
	*body_len = len - (size_t)(*body - buf);
	if (chunked) {
		char *in = *body, *end = *body + *body_len, *o = *body;

		for (;;) {
			char *e;
			unsigned long n = strtoul(in, &e, 16);

			if (e == in || (p = strstr(e, "\r\n")) == NULL || p >= end)
				return -1;
			in = p + 2;
			if (n == 0)
				break;
			if (n > (size_t)(end - in))
				return -1;
			memmove(o, in, n);
			o += n;
			in += n + 2;
			if (in > end)
				return -1;
		}
		*body_len = (size_t)(o - *body);
	} else if (clen != (size_t)-1) {
		if (clen > *body_len)
			return -1;
		*body_len = clen;
	}
	return 0;
}

mtls_err_t est_certs_to_pem(const char *b64, size_t len, char **pem,
			    struct mtls_error *err)
{
	uint8_t *der = NULL;
	word32 der_len;
	char *clean = NULL;
	size_t n = 0, cap = 0, out_len = 0;
	PKCS7 *p7 = NULL;
	int rc;
	mtls_err_t r = MTLS_OK;

	*pem = NULL;
	/* Base64 may be folded into lines. */
	clean = malloc(len + 1);
	der = malloc(len + 1);
	if (clean == NULL || der == NULL) {
		r = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		goto out;
	}
	for (size_t i = 0; i < len; i++)
		if (!isspace((unsigned char)b64[i]))
			clean[n++] = b64[i];
	der_len = (word32)len;
	if (n == 0 || Base64_Decode((byte *)clean, (word32)n, der, &der_len) != 0) {
		r = mtls_error_set(err, MTLS_ERR_CERT, "EST answer is not base64");
		goto out;
	}
	/* On the heap: wolfSSL 5.5.4 marks a PKCS7 it initialised as its own
	 * to free, even one on our stack. */
	p7 = wc_PKCS7_New(NULL, INVALID_DEVID);
	if (p7 == NULL || wc_PKCS7_InitWithCert(p7, NULL, 0) != 0) {
		r = mtls_error_set(err, MTLS_ERR_CRYPTO, "PKCS7 init");
		goto out;
	}
	/* A certs-only ("degenerate") SignedData has no signer to verify;
	 * wolfSSL parses its certificates. Trust comes from the chain check
	 * the caller makes against its own anchors. */
	rc = wc_PKCS7_VerifySignedData(p7, der, der_len);
	if (rc != 0 || p7->cert[0] == NULL) {
		r = mtls_error_set(err, MTLS_ERR_CERT,
				   "EST answer is not a certs-only PKCS#7 (%d)", rc);
		goto out;
	}
	for (int i = 0; i < MAX_PKCS7_CERTS && p7->cert[i] != NULL; i++)
		cap += p7->certSz[i] * 2 + 128;
	*pem = malloc(cap + 1);
	if (*pem == NULL) {
		r = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		goto out;
	}
	for (int i = 0; i < MAX_PKCS7_CERTS && p7->cert[i] != NULL; i++) {
		int w = wc_DerToPem(p7->cert[i], p7->certSz[i],
				    (byte *)*pem + out_len, (word32)(cap - out_len),
				    CERT_TYPE);

		if (w <= 0) {
			free(*pem);
			*pem = NULL;
			r = mtls_error_set(err, MTLS_ERR_CERT,
					   "certificate %d of the answer", i);
			goto out;
		}
		out_len += (size_t)w;
	}
	(*pem)[out_len] = '\0';
out:
	if (p7 != NULL)
		wc_PKCS7_Free(p7);
	free(clean);
	free(der);
	return r;
}

/* The base64 body of a PEM request: what EST sends. */
static char *pem_body(const char *pem)
{
	const char *b = strstr(pem, "-----\n"), *e = strstr(pem, "\n-----END");
	char *out;

	if (b == NULL || e == NULL || e < b)
		return NULL;
	b += 6;
	out = strndup(b, (size_t)(e - b) + 1);
	return out;
}

/* One HTTPS exchange; *answer is malloc'd and NUL-terminated. */
static mtls_err_t est_exchange(const struct cfg_renew *r,
			       struct identity *current, const char *method,
			       const char *op, const char *body,
			       const char *basic, char **answer, size_t *len,
			       struct mtls_error *err)
{
	WOLFSSL_CTX *ctx = NULL;
	WOLFSSL *ssl = NULL;
	struct tls_conn tc = { .id = current };
	char head[1024];
	size_t got = 0;
	uint64_t deadline;
	mtls_err_t ret = MTLS_OK;
	int fd = -1, n;

	*answer = NULL;
	if (current != NULL) {
		ret = tls_ctx_new(current, r->est_ca, 12, NULL, &ctx, err);
	} else {
		ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
		if (ctx == NULL ||
		    wolfSSL_CTX_load_verify_locations(ctx, r->est_ca, NULL) !=
			    WOLFSSL_SUCCESS)
			ret = mtls_error_set(err, MTLS_ERR_CONFIG,
					     "est_ca %s: no usable CA", r->est_ca);
		else
			wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
	}
	if (ret != MTLS_OK)
		goto out;
	fd = tcp_connect(r->est_host, r->est_port);
	if (fd < 0) {
		ret = mtls_error_set(err, MTLS_ERR_CONNECT, "EST server %s:%u: %s",
				     r->est_host, r->est_port, strerror(errno));
		goto out;
	}
	ret = tls_new(ctx, &tc, fd, r->est_host, NULL, &ssl, err);
	if (ret != MTLS_OK)
		goto out;
	n = wolfSSL_connect(ssl);
	wc_ecc_fp_free();
	if (n != WOLFSSL_SUCCESS) {
		ret = tls_error(ssl, &tc, n, err);
		goto out;
	}
	n = snprintf(head, sizeof(head),
		     "%s %s/%s HTTP/1.1\r\nHost: %s:%u\r\n"
		     "User-Agent: mtls-agent/" MTLS_VERSION "\r\n"
		     "%s%s%s"
		     "%s"
		     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		     method, r->est_path, op, r->est_host, r->est_port,
		     basic ? "Authorization: Basic " : "", basic ? basic : "",
		     basic ? "\r\n" : "",
		     body ? "Content-Type: application/pkcs10\r\n"
			    "Content-Transfer-Encoding: base64\r\n" : "",
		     body ? strlen(body) : 0);
	if (n < 0 || (size_t)n >= sizeof(head) ||
	    wolfSSL_write(ssl, head, n) != n ||
	    (body && wolfSSL_write(ssl, body, (int)strlen(body)) != (int)strlen(body))) {
		ret = mtls_error_set(err, MTLS_ERR_IO, "EST request not sent");
		goto out;
	}
	explicit_bzero(head, sizeof(head)); /* held the Basic credentials */
	*answer = malloc(ENROLL_ANSWER_MAX + 1);
	if (*answer == NULL) {
		ret = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		goto out;
	}
	/* One deadline for the whole answer: the socket's timeout is per
	 * read, and a server sending a byte now and then would hold the
	 * renewal (and every other identity's, on the one scheduler thread)
	 * for ever. */
	deadline = mtls_now_ms() + EST_TIMEOUT_SEC * 1000;
	while (got < ENROLL_ANSWER_MAX) {
		int64_t left = (int64_t)(deadline - mtls_now_ms());
		struct timeval tv;

		if (left <= 0) {
			ret = mtls_error_set(err, MTLS_ERR_TIMEOUT, "EST answer not "
					     "complete within %d s",
					     EST_TIMEOUT_SEC);
			goto out;
		}
		tv.tv_sec = left / 1000;
		tv.tv_usec = (left % 1000) * 1000;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
			ret = mtls_error_set(err, MTLS_ERR_IO, "SO_RCVTIMEO: %s",
					     strerror(errno));
			goto out;
		}
		n = wolfSSL_read(ssl, *answer + got, (int)(ENROLL_ANSWER_MAX - got));
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got > 0 && mtls_now_ms() >= deadline) {
		ret = mtls_error_set(err, MTLS_ERR_TIMEOUT, "EST answer not "
				     "complete within %d s", EST_TIMEOUT_SEC);
		goto out;
	}
	if (got == 0) {
		int e = wolfSSL_get_error(ssl, n);

		ret = e == WOLFSSL_ERROR_ZERO_RETURN ?
			      mtls_error_set(err, MTLS_ERR_IO, "EST server closed "
					     "without answering") :
			      tls_error(ssl, &tc, n, err);
		goto out;
	}
	(*answer)[got] = '\0';
	*len = got;
out:
	if (ret != MTLS_OK) {
		free(*answer);
		*answer = NULL;
	}
	if (ssl != NULL)
		wolfSSL_free(ssl);
	if (fd >= 0)
		close(fd);
	wolfSSL_CTX_free(ctx);
	return ret;
}

static mtls_err_t read_basic(const struct cfg_renew *r, char *out, size_t cap,
			     struct mtls_error *err)
{
	struct mtls_secret *pw = mtls_secret_new();
	char plain[EST_BASIC_PLAIN_MAX + 1];
	/* Base64_Encode_NoNl writes no NUL when the output fills the buffer
	 * exactly: keep a byte for ours. */
	word32 out_len = cap > 0 ? (word32)(cap - 1) : 0;
	mtls_err_t ret;
	int n;

	if (pw == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	/* The same rules as a PIN file: owner-only. */
	ret = p11_pin_source_read(r->est_password_file, pw, err);
	if (ret == MTLS_OK) {
		n = snprintf(plain, sizeof(plain), "%s:%s", r->est_user, pw->buf);
		if (n < 0 || (size_t)n >= sizeof(plain) ||
		    Base64_Encode_NoNl((byte *)plain, (word32)n, (byte *)out,
				       &out_len) != 0 ||
		    (size_t)out_len >= cap)
			ret = mtls_error_set(err, MTLS_ERR_ARG,
					     "EST credentials too long");
		else
			out[out_len] = '\0';
	}
	explicit_bzero(plain, sizeof(plain));
	mtls_secret_free(pw);
	return ret;
}

mtls_err_t est_cacerts(const struct cfg_renew *r, char **pem,
		       struct mtls_error *err)
{
	char *answer = NULL, *body;
	size_t len = 0, body_len;
	int status = 0, retry;
	mtls_err_t ret;

	*pem = NULL;
	ret = est_exchange(r, NULL, "GET", "cacerts", NULL, NULL, &answer, &len,
			   err);
	if (ret != MTLS_OK)
		return ret;
	if (http_response_parse(answer, len, &status, &retry, &body,
				&body_len) != 0 || status != 200)
		ret = mtls_error_set(err, MTLS_ERR_IO, "EST /cacerts answered "
				     "%d", status);
	else
		ret = est_certs_to_pem(body, body_len, pem, err);
	free(answer);
	return ret;
}

mtls_err_t enroll_est(const struct cfg_renew *r, struct identity *current,
		      const char *csr_pem, struct enroll_result *res,
		      struct mtls_error *err)
{
	char basic[EST_BASIC_B64_MAX], *answer = NULL, *body, *b64;
	size_t len = 0, body_len;
	int status = 0;
	mtls_err_t ret;

	memset(res, 0, sizeof(*res));
	b64 = pem_body(csr_pem);
	if (b64 == NULL)
		return mtls_error_set(err, MTLS_ERR_ARG, "not a PEM request");
	if (current == NULL) {
		if (r->est_user == NULL || r->est_password_file == NULL) {
			free(b64);
			return mtls_error_set(err, MTLS_ERR_CONFIG,
					      "first enrollment needs est_user= "
					      "and est_password_file=");
		}
		ret = read_basic(r, basic, sizeof(basic), err);
		if (ret == MTLS_OK)
			ret = est_exchange(r, NULL, "POST", "simpleenroll", b64,
					   basic, &answer, &len, err);
		explicit_bzero(basic, sizeof(basic));
	} else {
		ret = est_exchange(r, current, "POST", "simplereenroll", b64,
				   NULL, &answer, &len, err);
	}
	free(b64);
	if (ret != MTLS_OK)
		return ret;
	if (http_response_parse(answer, len, &status, &res->retry_after, &body,
				&body_len) != 0) {
		ret = mtls_error_set(err, MTLS_ERR_IO, "EST answer unreadable");
	} else if (status == 202) {
		/* RFC 7030 4.2.3: try again later with the same request. */
		res->retry_after = est_retry_after(r, res->retry_after);
	} else if (status != 200) {
		size_t show = body_len < 120 ? body_len : 120;

		res->retry_after = 0;
		for (size_t i = 0; i < show; i++)
			if (!isprint((unsigned char)body[i]))
				body[i] = ' ';
		ret = mtls_error_set(err, status == 401 || status == 403 ?
					     MTLS_ERR_CERT_REFUSED : MTLS_ERR_IO,
				     "EST %s answered %d: %.*s",
				     current ? "simplereenroll" : "simpleenroll",
				     status, (int)show, body);
	} else {
		/* A Retry-After beside a 200 means nothing: the caller would
		 * take it for a 202, and drop the certificate. */
		res->retry_after = 0;
		ret = est_certs_to_pem(body, body_len, &res->chain_pem, err);
	}
	free(answer);
	return ret;
}
