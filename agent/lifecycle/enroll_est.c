/* EST client (RFC 7030) over wolfSSL. The first enrollment authenticates
 * with HTTP Basic inside server-authenticated TLS, or with a certificate
 * already on the token as TLS client certificate (3.3.2), or both;
 * renewals authenticate with the identity in service (its key signs on
 * the token). */
#include <wolfssl/options.h>

#include "enroll.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/pkcs7.h>

#include "mtls_secret.h"
#include "p11.h"

/* HTTP Basic: "user:password", at most EST_BASIC_PLAIN_MAX bytes, and room
 * for its base64 and the NUL after it. */
#define EST_BASIC_PLAIN_MAX (MTLS_SECRET_MAX + 129)
#define EST_BASIC_B64_MAX (4 * ((EST_BASIC_PLAIN_MAX + 2) / 3) + 1)

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

/* One HTTPS exchange with the EST server: server-authenticated, and with
 * client an identity whose certificate authenticates us (mutual TLS). */
static mtls_err_t est_exchange(const struct cfg_renew *r,
			       struct identity *client, const char *method,
			       const char *op, const char *body,
			       const char *basic, char **raw,
			       struct http_answer *a, struct mtls_error *err)
{
	struct https_target t = { r->est_host, r->est_port, r->est_ca, client };
	char path[HTTP_URL_MAX], extra[EST_BASIC_B64_MAX + 80];
	mtls_err_t ret;
	int n;

	n = snprintf(path, sizeof(path), "%s/%s", r->est_path, op);
	if (n < 0 || (size_t)n >= sizeof(path))
		return mtls_error_set(err, MTLS_ERR_CONFIG, "est_url too long");
	n = snprintf(extra, sizeof(extra), "%s%s%s%s",
		     basic ? "Authorization: Basic " : "", basic ? basic : "",
		     basic ? "\r\n" : "",
		     body ? "Content-Transfer-Encoding: base64\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(extra))
		return mtls_error_set(err, MTLS_ERR_ARG, "EST credentials too long");
	ret = https_request(&t, method, path, extra,
			    body ? "application/pkcs10" : NULL, body,
			    body ? strlen(body) : 0, ENROLL_ANSWER_MAX, raw, a,
			    err);
	explicit_bzero(extra, sizeof(extra)); /* held the Basic credentials */
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
	struct http_answer a;
	char *raw = NULL;
	mtls_err_t ret;

	*pem = NULL;
	ret = est_exchange(r, NULL, "GET", "cacerts", NULL, NULL, &raw, &a, err);
	if (ret != MTLS_OK)
		return ret;
	if (a.status != 200)
		ret = mtls_error_set(err, MTLS_ERR_IO, "EST /cacerts answered "
				     "%d", a.status);
	else
		ret = est_certs_to_pem(a.body, a.body_len, pem, err);
	free(raw);
	return ret;
}

/* The bootstrap identity (est_bootstrap_key, est_bootstrap_cert): a
 * manufacturer's certificate on the token, IDevID-like. identity_load
 * checks that the certificate belongs to the key before anything is sent. */
static mtls_err_t bootstrap_load(const struct cfg_renew *r,
				 struct p11_token *token, struct identity **out,
				 struct mtls_error *err)
{
	char detail[MTLS_ERR_DETAIL_MAX];
	mtls_err_t ret;

	if (token == NULL)
		return mtls_error_set(err, MTLS_ERR_ARG, "est_bootstrap_key: "
				      "no token");
	ret = identity_load("est_bootstrap", token, r->est_bootstrap_key,
			    r->est_bootstrap_cert, NULL, out, err);
	if (ret != MTLS_OK && err != NULL) {
		snprintf(detail, sizeof(detail), "%s", err->detail);
		mtls_error_set(err, ret, "bootstrap identity (est_bootstrap_key, "
			       "est_bootstrap_cert): %s", detail);
	}
	return ret;
}

mtls_err_t enroll_est(const struct cfg_renew *r, struct p11_token *token,
		      struct identity *current,
		      const char *csr_pem, struct enroll_result *res,
		      struct mtls_error *err)
{
	char basic[EST_BASIC_B64_MAX], *raw = NULL, *b64;
	char refused[MTLS_ERR_DETAIL_MAX] = "";
	int has_basic = r->est_user != NULL && r->est_password_file != NULL;
	struct identity *boot = NULL;
	struct http_answer a;
	mtls_err_t ret = MTLS_OK;

	memset(res, 0, sizeof(*res));
	b64 = pem_body(csr_pem);
	if (b64 == NULL)
		return mtls_error_set(err, MTLS_ERR_ARG, "not a PEM request");
	if (current == NULL) {
		if (!has_basic && r->est_bootstrap_key == NULL) {
			free(b64);
			return mtls_error_set(err, MTLS_ERR_CONFIG,
					      "first enrollment needs est_user= "
					      "and est_password_file=, or "
					      "est_bootstrap_key= and "
					      "est_bootstrap_cert= (a "
					      "certificate already on the "
					      "token)");
		}
		/* RFC 7030 3.3.2: a certificate the client already has
		 * authenticates it in TLS; HTTP Basic may come beside it. */
		if (r->est_bootstrap_key != NULL) {
			ret = bootstrap_load(r, token, &boot, err);
			if (ret == MTLS_OK)
				snprintf(refused, sizeof(refused), "the server "
					 "refused the bootstrap certificate "
					 "(subject %.120s, issuer %.120s)%s",
					 boot->subject, boot->issuer,
					 has_basic ? " and HTTP Basic" : "");
		}
		if (ret == MTLS_OK && has_basic)
			ret = read_basic(r, basic, sizeof(basic), err);
		if (ret == MTLS_OK)
			ret = est_exchange(r, boot, "POST", "simpleenroll", b64,
					   has_basic ? basic : NULL, &raw, &a,
					   err);
		explicit_bzero(basic, sizeof(basic));
	} else {
		ret = est_exchange(r, current, "POST", "simplereenroll", b64,
				   NULL, &raw, &a, err);
	}
	free(b64);
	if (ret == MTLS_ERR_CERT_REFUSED && refused[0] != '\0') {
		/* Refused in the handshake (an alert): name the certificate. */
		char detail[MTLS_ERR_DETAIL_MAX];

		snprintf(detail, sizeof(detail), "%s", err ? err->detail : "");
		ret = mtls_error_set(err, ret, "EST simpleenroll: %s: %s",
				     refused, detail);
	}
	if (ret != MTLS_OK)
		goto out;
	if (a.status == 202) {
		/* RFC 7030 4.2.3: try again later with the same request. */
		res->retry_after = est_retry_after(r, a.retry_after);
	} else if (a.status != 200) {
		size_t show = a.body_len < 120 ? a.body_len : 120;
		int auth = a.status == 401 || a.status == 403;

		for (size_t i = 0; i < show; i++)
			if (!isprint((unsigned char)a.body[i]))
				a.body[i] = ' ';
		ret = mtls_error_set(err, auth ? MTLS_ERR_CERT_REFUSED : MTLS_ERR_IO,
				     "EST %s answered %d: %s%s%.*s",
				     current ? "simplereenroll" : "simpleenroll",
				     a.status, auth ? refused : "",
				     auth && refused[0] ? ": " : "",
				     (int)show, a.body);
	} else {
		/* A Retry-After beside a 200 means nothing: the caller would
		 * take it for a 202, and drop the certificate. */
		ret = est_certs_to_pem(a.body, a.body_len, &res->chain_pem, err);
	}
out:
	free(raw);
	identity_free(boot);
	return ret;
}
