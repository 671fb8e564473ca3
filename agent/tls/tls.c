#include <wolfssl/options.h>

#include "tls.h"

#include "aead_offload.h"
#include "cert_names.h"
#include "mtls_clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>

/* The key's device id. It only marks the key as held elsewhere so wolfSSL
 * takes the id-based path; no crypto callback device is registered under it
 * (see notes: wolfSSL's own PKCS#11 device is not used). Signatures reach
 * the token through the PK callbacks below. */
#define MTLS_KEY_DEVID 0x6d746c73

/* The smallest server keys accepted: wolfSSL's defaults, set explicitly
 * because check_leaf checks them again (wolfSSL skips its own check when
 * a revocation status was waived). */
#define MTLS_MIN_RSA_BITS 1024
#define MTLS_MIN_ECC_BITS 224

/* Fastest first: servers that honour the client's order (OpenSSL does
 * for TLS 1.3) pick it. With bulk_crypto = openssl AES-GCM runs in
 * OpenSSL's vector code (aead_offload.c); with wolfSSL alone (Debian's
 * build has no AES-NI: 189 MB/s, 5.6 CPU s per GiB relayed, measured)
 * its ChaCha20-Poly1305 is the faster. */
#define MTLS_CIPHERS_AES_FIRST                                                \
	"TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"                    \
	"TLS13-CHACHA20-POLY1305-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:"       \
	"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"          \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"          \
	"ECDHE-RSA-CHACHA20-POLY1305"
#define MTLS_CIPHERS_CHACHA_FIRST                                             \
	"TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:"             \
	"TLS13-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"              \
	"ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:"          \
	"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"          \
	"ECDHE-RSA-AES256-GCM-SHA384"

static _Atomic(tls_sign_observer) sign_observer;

void tls_set_sign_observer(tls_sign_observer fn)
{
	atomic_store(&sign_observer, fn);
}

static int sign_on_token(WOLFSSL *ssl, struct tls_conn *tc,
			 enum p11_sign_mech mech, enum p11_hash hash,
			 const unsigned char *in, unsigned in_len,
			 uint8_t *sig, size_t *sig_len)
{
	double t0 = ((double)mtls_now_ns() / 1e9);

	mtls_err_t r;

	/* Signatures for the first handshake only, one. A TLS 1.3 server
	 * may send a CertificateRequest after the handshake, asked for or
	 * not, and wolfSSL 5.5.4 answers it from inside wolfSSL_read, though
	 * we never offered post_handshake_auth: the token would sign on the
	 * relay's event loop, as often as the server asks, outside the
	 * handshake limits. renegotiate_pending: a handshake after the first
	 * one completed. */
	if (wolfSSL_SSL_renegotiate_pending(ssl) || tc->sign_count > 0) {
		mtls_error_set(&tc->sign_err, MTLS_ERR_TLS,
			       "the server asked for our signature again after "
			       "the handshake (post-handshake authentication, "
			       "never offered): refused");
		return WC_HW_E;
	}
	r = p11_key_sign(tc->id->key, mech, hash, in, in_len, sig, sig_len,
			 &tc->sign_err);
	t0 = ((double)mtls_now_ns() / 1e9) - t0;
	{
		tls_sign_observer obs = atomic_load(&sign_observer);

		if (obs != NULL)
			obs(t0);
	}
	tc->sign_seconds += t0;
	tc->sign_count++;
	return r == MTLS_OK ? 0 : WC_HW_E;
}

static int ecc_sign_cb(WOLFSSL *ssl, const unsigned char *in,
		       unsigned int in_len, unsigned char *out, word32 *out_len,
		       const unsigned char *key, unsigned int key_len, void *ctx)
{
	struct tls_conn *tc = ctx;
	uint8_t raw[2 * 66];
	size_t raw_len = sizeof(raw);
	int r;

	(void)key;
	(void)key_len;
	r = sign_on_token(ssl, tc, P11_SIGN_ECDSA, P11_HASH_SHA256, in, in_len,
			  raw, &raw_len);
	if (r != 0)
		return r;
	if (raw_len % 2 != 0)
		return WC_HW_E;
	/* The token gives r||s; TLS wants the DER SEQUENCE. */
	return wc_ecc_rs_raw_to_sig(raw, (word32)raw_len / 2,
				    raw + raw_len / 2, (word32)raw_len / 2,
				    out, out_len);
}

static int rsa_sign_cb(WOLFSSL *ssl, const unsigned char *in,
		       unsigned int in_len, unsigned char *out, word32 *out_len,
		       const unsigned char *key, unsigned int key_len, void *ctx)
{
	struct tls_conn *tc = ctx;
	size_t n = *out_len;
	int r;

	(void)key;
	(void)key_len;
	/* in is the DER DigestInfo: exactly what CKM_RSA_PKCS signs. */
	r = sign_on_token(ssl, tc, P11_SIGN_RSA_PKCS, P11_HASH_SHA256, in,
			  in_len, out, &n);
	*out_len = (word32)n;
	return r;
}

static int rsa_pss_sign_cb(WOLFSSL *ssl, const unsigned char *in,
			   unsigned int in_len, unsigned char *out,
			   unsigned int *out_len, int hash, int mgf,
			   const unsigned char *key, unsigned int key_len,
			   void *ctx)
{
	struct tls_conn *tc = ctx;
	enum p11_hash h;
	size_t n = *out_len;
	int r;

	(void)hash;
	(void)mgf;
	(void)key;
	(void)key_len;
	/* in is the hash itself; its length names the hash (and MGF1). */
	switch (in_len) {
	case 32:
		h = P11_HASH_SHA256;
		break;
	case 48:
		h = P11_HASH_SHA384;
		break;
	case 64:
		h = P11_HASH_SHA512;
		break;
	default:
		return BAD_FUNC_ARG;
	}
	r = sign_on_token(ssl, tc, P11_SIGN_RSA_PSS, h, in, in_len, out, &n);
	*out_len = (unsigned int)n;
	return r;
}

static int rsa_public_key(struct tls_conn *tc, RsaKey *k)
{
	word32 idx = 0;

	if (wc_InitRsaKey(k, NULL) != 0)
		return MEMORY_E;
	if (wc_RsaPublicKeyDecode(tc->id->spki, &idx, k,
				  (word32)tc->id->spki_len) != 0) {
		wc_FreeRsaKey(k);
		return BAD_FUNC_ARG;
	}
	return 0;
}

/* wolfSSL checks every RSA signature against the public key before sending
 * it (fault attack defence); the key handle it holds has no public half, so
 * the check runs here with the certificate's key. */
static int rsa_sign_check_cb(WOLFSSL *ssl, unsigned char *sig,
			     unsigned int sig_len, unsigned char **out,
			     const unsigned char *key, unsigned int key_len,
			     void *ctx)
{
	RsaKey k;
	int r;

	(void)ssl;
	(void)key;
	(void)key_len;
	r = rsa_public_key(ctx, &k);
	if (r != 0)
		return r;
	r = wc_RsaSSL_VerifyInline(sig, sig_len, out, &k);
	wc_FreeRsaKey(&k);
	return r;
}

static enum wc_HashType wc_hash(int hash)
{
	switch (hash) {
	case SHA384h:
	case WC_HASH_TYPE_SHA384:
		return WC_HASH_TYPE_SHA384;
	case SHA512h:
	case WC_HASH_TYPE_SHA512:
		return WC_HASH_TYPE_SHA512;
	default:
		return WC_HASH_TYPE_SHA256;
	}
}

static int rsa_pss_sign_check_cb(WOLFSSL *ssl, unsigned char *sig,
				 unsigned int sig_len, unsigned char **out,
				 int hash, int mgf, const unsigned char *key,
				 unsigned int key_len, void *ctx)
{
	RsaKey k;
	int r;

	(void)ssl;
	(void)key;
	(void)key_len;
	r = rsa_public_key(ctx, &k);
	if (r != 0)
		return r;
	r = wc_RsaPSS_VerifyInline(sig, sig_len, out, wc_hash(hash), mgf, &k);
	wc_FreeRsaKey(&k);
	return r;
}

mtls_err_t tls_global_init(struct mtls_error *err)
{
	if (wolfSSL_Init() != WOLFSSL_SUCCESS)
		return mtls_error_set(err, MTLS_ERR_TLS, "wolfSSL_Init");
	/* Without it (no libcrypto cipher), wolfSSL's own C does AES-GCM. */
	(void)aead_offload_init();
	return MTLS_OK;
}

void tls_global_cleanup(void)
{
	aead_offload_cleanup();
	wolfSSL_Cleanup();
}

static mtls_err_t load_chain(WOLFSSL_CTX *ctx, struct identity *id,
			     struct mtls_error *err)
{
	size_t cap = 0, len = 0;
	unsigned char *pem;
	mtls_err_t r = MTLS_OK;

	for (unsigned i = 0; i < id->n_chain; i++)
		cap += id->chain_len[i] * 2 + 128; /* base64 + headers */
	pem = malloc(cap);
	if (pem == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	for (unsigned i = 0; i < id->n_chain; i++) {
		int n = wc_DerToPem(id->chain_der[i], (word32)id->chain_len[i],
				    pem + len, (word32)(cap - len), CERT_TYPE);

		if (n <= 0) {
			r = mtls_error_set(err, MTLS_ERR_CERT,
					   "identity '%s': certificate %u: %d",
					   id->name, i, n);
			goto out;
		}
		len += (size_t)n;
	}
	if (wolfSSL_CTX_use_certificate_chain_buffer_format(
		    ctx, pem, (long)len, WOLFSSL_FILETYPE_PEM) !=
	    WOLFSSL_SUCCESS)
		r = mtls_error_set(err, MTLS_ERR_CERT,
				   "identity '%s': wolfSSL refused the chain",
				   id->name);
out:
	free(pem);
	return r;
}

/* The certificate's subjectAltNames checked against the expected names:
 * dNSName entries for names, iPAddress entries for address literals,
 * nothing else (an rfc822Name or URI that spells the name does not count).
 * The subject CN is a fallback only for a certificate without a
 * subjectAltName extension (RFC 6125 6.4.4) and never for an address.
 * Read with get_ext_d2i, not wolfSSL_X509_get_next_altname: that one keeps
 * a cursor in the certificate, and a second walk would find no SAN and
 * fall back to the CN. */
static int names_match(const char *const *want, unsigned n, WOLFSSL_X509 *x)
{
	WOLFSSL_GENERAL_NAMES *sans;
	WOLFSSL_X509_NAME *subject;
	uint8_t addr[POLICY_LIST_MAX][16];
	int family[POLICY_LIST_MAX];
	int match = 0, n_san;

	if (n > POLICY_LIST_MAX)
		return 0;
	for (unsigned i = 0; i < n; i++)
		family[i] = cert_ip_literal(want[i], addr[i]);
	sans = wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	n_san = sans != NULL ? wolfSSL_sk_GENERAL_NAME_num(sans) : 0;
	for (int j = 0; j < n_san && !match; j++) {
		WOLFSSL_GENERAL_NAME *gn = wolfSSL_sk_GENERAL_NAME_value(sans, j);
		const char *data;
		int len;

		if (gn == NULL || gn->d.ia5 == NULL ||
		    (gn->type != ASN_DNS_TYPE && gn->type != ASN_IP_TYPE))
			continue;
		data = (const char *)wolfSSL_ASN1_STRING_data(gn->d.ia5);
		len = wolfSSL_ASN1_STRING_length(gn->d.ia5);
		if (data == NULL || len <= 0)
			continue;
		for (unsigned i = 0; i < n && !match; i++)
			match = gn->type == ASN_IP_TYPE ?
					cert_ip_id_match(family[i], addr[i],
							 (const uint8_t *)data,
							 (size_t)len) :
					family[i] == 0 &&
						cert_dns_id_match(want[i], data,
								  (size_t)len);
	}
	if (sans != NULL)
		wolfSSL_GENERAL_NAMES_free(sans);
	if (match)
		return 1;
	/* Set when the extension is there, whatever its entries are. */
	if (wolfSSL_X509_ext_isSet_by_NID(x, NID_subject_alt_name))
		return 0;
	subject = wolfSSL_X509_get_subject_name(x);
	for (int k = -1; subject != NULL &&
	     (k = wolfSSL_X509_NAME_get_index_by_NID(subject, NID_commonName,
						     k)) >= 0;) {
		WOLFSSL_ASN1_STRING *v = wolfSSL_X509_NAME_ENTRY_get_data(
			wolfSSL_X509_NAME_get_entry(subject, k));
		const char *cn = v ? (const char *)wolfSSL_ASN1_STRING_data(v) : NULL;
		int len = v ? wolfSSL_ASN1_STRING_length(v) : 0;

		for (unsigned i = 0; cn != NULL && len > 0 && i < n; i++)
			if (family[i] == 0 &&
			    cert_dns_id_match(want[i], cn, (size_t)len))
				return 1;
	}
	return 0;
}

/* Every O= of the subject equals org: one matching O beside a foreign one
 * does not do. Lengths are compared too (an O with a NUL in it must not
 * pass as its prefix). */
static int organisation_match(const char *org, WOLFSSL_X509 *x)
{
	WOLFSSL_X509_NAME *subject = wolfSSL_X509_get_subject_name(x);
	size_t want = strlen(org);
	int seen = 0;

	if (subject == NULL)
		return 0;
	for (int k = -1; (k = wolfSSL_X509_NAME_get_index_by_NID(
				  subject, NID_organizationName, k)) >= 0;) {
		WOLFSSL_ASN1_STRING *v = wolfSSL_X509_NAME_ENTRY_get_data(
			wolfSSL_X509_NAME_get_entry(subject, k));
		const unsigned char *o = v ? wolfSSL_ASN1_STRING_data(v) : NULL;
		int len = v ? wolfSSL_ASN1_STRING_length(v) : -1;

		if (o == NULL || len < 0 || (size_t)len != want ||
		    memcmp(o, org, want) != 0)
			return 0;
		seen = 1;
	}
	return seen;
}

static int pins_match(const struct policy_profile *pr, WOLFSSL_X509 *x)
{
	uint8_t spki[2048], digest[WC_SHA256_DIGEST_SIZE];
	int spki_len = sizeof(spki);

	if (wolfSSL_X509_get_pubkey_buffer(x, spki, &spki_len) !=
		    WOLFSSL_SUCCESS ||
	    wc_Sha256Hash(spki, (word32)spki_len, digest) != 0)
		return 0;
	for (unsigned i = 0; i < pr->n_pins; i++)
		if (memcmp(digest, pr->pins[i], sizeof(digest)) == 0)
			return 1;
	return 0;
}

/* The server key's size in bits, or 0 when it cannot be read. */
static int key_bits(WOLFSSL_X509 *x, int *type)
{
	uint8_t spki[2048];
	int spki_len = sizeof(spki), bits = 0;
	word32 idx = 0;

	*type = wolfSSL_X509_get_pubkey_type(x);
	if (wolfSSL_X509_get_pubkey_buffer(x, spki, &spki_len) !=
	    WOLFSSL_SUCCESS)
		return 0;
	if (*type == RSAk) {
		RsaKey k;

		if (wc_InitRsaKey(&k, NULL) != 0)
			return 0;
		if (wc_RsaPublicKeyDecode(spki, &idx, &k, (word32)spki_len) == 0)
			bits = wc_RsaEncryptSize(&k) * 8;
		wc_FreeRsaKey(&k);
	} else if (*type == ECDSAk) {
		ecc_key k;

		if (wc_ecc_init(&k) != 0)
			return 0;
		if (wc_EccPublicKeyDecode(spki, &idx, &k, (word32)spki_len) == 0)
			bits = wc_ecc_size(&k) * 8;
		wc_ecc_free(&k);
	}
	return bits > 0 ? bits : 0;
}

/* Every check of the server's own certificate: key size, the expected
 * name (the profile's names, or else the name we connected to), and the
 * profile's organisation and pins. Each runs; none is skipped because an
 * earlier step passed or was waived. Returns 0 to refuse. */
static int check_leaf(struct tls_conn *tc, WOLFSSL_X509 *x)
{
	const struct policy_profile *pr = tc->profile;
	const char *names[POLICY_LIST_MAX];
	unsigned n = 0;
	int type, bits;

	if (x == NULL) {
		mtls_error_set(&tc->verify_err, MTLS_ERR_CERT,
			       "no server certificate to check");
		return 0;
	}
	/* wolfSSL checks the key size after the revocation lookup and only
	 * when that passed: with a status waived by fail-open it did not.
	 * (Ed25519 and Ed448 keys have one size each.) */
	bits = key_bits(x, &type);
	if (type != ED25519k && type != ED448k &&
	    bits < (type == RSAk ? MTLS_MIN_RSA_BITS : MTLS_MIN_ECC_BITS)) {
		mtls_error_set(&tc->verify_err, MTLS_ERR_CERT,
			       "server key too small or unreadable (%d bits)",
			       bits);
		return 0;
	}
	if (pr != NULL && pr->names.n > 0) {
		for (; n < pr->names.n && n < POLICY_LIST_MAX; n++)
			names[n] = pr->names.pattern[n];
	} else {
		names[n++] = tc->server_name;
	}
	if (!names_match(names, n, x)) {
		if (pr != NULL && pr->names.n > 0)
			mtls_error_set(&tc->verify_err, MTLS_ERR_NAME_MISMATCH,
				       "no SAN matches profile '%s' names",
				       pr->name);
		else
			mtls_error_set(&tc->verify_err, MTLS_ERR_NAME_MISMATCH,
				       "certificate is not for %s%s",
				       tc->server_name,
				       tc->server_ip ? " (an address needs "
						       "an iPAddress SAN)" : "");
		return 0;
	}
	if (pr == NULL)
		return 1;
	if (pr->organisation[0] != '\0' &&
	    !organisation_match(pr->organisation, x)) {
		mtls_error_set(&tc->verify_err, MTLS_ERR_ATTRIBUTE_MISMATCH,
			       "organisation is not '%s' (profile '%s')",
			       pr->organisation, pr->name);
		return 0;
	}
	if (pr->n_pins > 0 && !pins_match(pr, x)) {
		mtls_error_set(&tc->verify_err, MTLS_ERR_PIN_MISMATCH,
			       "server key matches none of the %u pins of "
			       "profile '%s'", pr->n_pins, pr->name);
		return 0;
	}
	return 1;
}

static int revocation_unknown(int e)
{
	return e == CRL_MISSING || e == CRL_CERT_DATE_ERR ||
	       e == OCSP_CERT_UNKNOWN || e == OCSP_LOOKUP_FAIL;
}

/* Called for every certificate of the server's chain (wolfSSL is built
 * with WOLFSSL_ALWAYS_VERIFY_CB and WOLFSSL_VERIFY_CB_ALL_CERTS), after
 * wolfSSL's own checks, once per certificate with one error code: not
 * every check wolfSSL would have made ran before it (5.5.4 checks the
 * leaf's key size only when the revocation lookup passed). No path
 * returns success before check_leaf ran on the server's own
 * certificate. */
static int verify_cb(int ok, WOLFSSL_X509_STORE_CTX *store)
{
	WOLFSSL *ssl = wolfSSL_X509_STORE_CTX_get_ex_data(
		store, wolfSSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_conn *tc = ssl ? wolfSSL_get_ex_data(ssl, 0) : NULL;
	int e = wolfSSL_X509_STORE_CTX_get_error(store);

	/* Without our state there is nothing to check the server against. */
	if (tc == NULL)
		return 0;
	if (!ok) {
		if (!revocation_unknown(e) || tc->profile == NULL ||
		    tc->profile->revocation != POLICY_REVOCATION_FAIL_OPEN)
			return 0;
		/* The profile waives the revocation verdict, and only that:
		 * the chain and dates were checked before the lookup, the
		 * leaf's own checks still run below. The log says it
		 * happened. */
		tc->revocation_skipped = 1;
	}
	if (wolfSSL_X509_STORE_CTX_get_error_depth(store) != 0)
		return 1;
	return check_leaf(tc, wolfSSL_X509_STORE_CTX_get_current_cert(store));
}

static mtls_err_t load_revocation(WOLFSSL_CTX *ctx,
				  const struct policy_profile *pr,
				  struct mtls_error *err)
{
	if (pr->n_crls > 0) {
		if (wolfSSL_CTX_EnableCRL(ctx, WOLFSSL_CRL_CHECKALL) !=
		    WOLFSSL_SUCCESS)
			return mtls_error_set(err, MTLS_ERR_TLS, "EnableCRL");
		for (unsigned i = 0; i < pr->n_crls; i++)
			if (wolfSSL_CTX_LoadCRLFile(ctx, pr->crls[i],
						    WOLFSSL_FILETYPE_PEM) !=
			    WOLFSSL_SUCCESS)
				return mtls_error_set(err, MTLS_ERR_CONFIG,
						      "profile '%s': CRL %s "
						      "not loadable", pr->name,
						      pr->crls[i]);
	}
	if (pr->ocsp != POLICY_OCSP_OFF) {
		/* Stapling only: answers from the network are checked after
		 * the handshake (agent/revocation), not by wolfSSL. */
		if (wolfSSL_CTX_EnableOCSPStapling(ctx) != WOLFSSL_SUCCESS)
			return mtls_error_set(err, MTLS_ERR_TLS,
					      "EnableOCSPStapling");
		if (pr->ocsp == POLICY_OCSP_REQUIRED &&
		    wolfSSL_CTX_EnableOCSPMustStaple(ctx) != WOLFSSL_SUCCESS)
			return mtls_error_set(err, MTLS_ERR_TLS,
					      "EnableOCSPMustStaple");
	}
	return MTLS_OK;
}

/* Context serials: a WOLFSSL_CTX's address may be reused once it is
 * freed, its serial never is. Kept in the context's ex_data as the number
 * itself (no allocation, nothing to free with the context). */
static pthread_once_t serial_once = PTHREAD_ONCE_INIT;
static int serial_idx = -1;
static atomic_ulong serial_next;

static void serial_init(void)
{
	serial_idx = wolfSSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

mtls_err_t tls_ctx_tag(WOLFSSL_CTX *ctx, struct mtls_error *err)
{
	unsigned long serial;

	if (pthread_once(&serial_once, serial_init) != 0 || serial_idx < 0)
		return mtls_error_set(err, MTLS_ERR_TLS,
				      "no ex_data index for context serials");
	/* wolfSSL 5.5.4 frees ctx->srp in every wolfSSL_CTX_free, before
	 * and outside its reference count, without a lock: two threads
	 * dropping their references to a shared context at once free it
	 * twice (ASan, tunnel_relay at shutdown). Freed here, while the
	 * context is still the caller's alone, later frees skip it; the agent
	 * has no use for SRP. */
	if (wolfSSL_CTX_up_ref(ctx) != WOLFSSL_SUCCESS)
		return mtls_error_set(err, MTLS_ERR_TLS, "wolfSSL_CTX_up_ref");
	wolfSSL_CTX_free(ctx);
	serial = atomic_fetch_add(&serial_next, 1) + 1;
	if (wolfSSL_CTX_set_ex_data(ctx, serial_idx, (void *)(uintptr_t)serial) !=
	    WOLFSSL_SUCCESS)
		return mtls_error_set(err, MTLS_ERR_TLS,
				      "cannot attach the context serial");
	return MTLS_OK;
}

unsigned long tls_ctx_serial(WOLFSSL_CTX *ctx)
{
	if (ctx == NULL || pthread_once(&serial_once, serial_init) != 0 ||
	    serial_idx < 0)
		return 0;
	return (unsigned long)(uintptr_t)wolfSSL_CTX_get_ex_data(ctx, serial_idx);
}

mtls_err_t tls_ctx_new(struct identity *id, const char *ca, int min_tls,
		       const struct policy_profile *profile, WOLFSSL_CTX **out,
		       struct mtls_error *err)
{
	WOLFSSL_CTX *ctx;
	uint8_t key_id[P11_ID_MAX];
	size_t key_id_len;
	struct stat st;
	mtls_err_t r;
	int ok;

	*out = NULL;
	if (profile != NULL) {
		ca = profile->ca;
		min_tls = profile->min_tls;
	}
	ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
	if (ctx == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, "wolfSSL_CTX_new");
	r = tls_ctx_tag(ctx, err);
	if (r != MTLS_OK)
		goto fail;
	if (wolfSSL_CTX_SetMinRsaKey_Sz(ctx, MTLS_MIN_RSA_BITS) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_SetMinEccKey_Sz(ctx, MTLS_MIN_ECC_BITS) != WOLFSSL_SUCCESS) {
		r = mtls_error_set(err, MTLS_ERR_TLS, "cannot set key sizes");
		goto fail;
	}
	/* The versions the token can sign in with this key (sig_plan.c):
	 * the version decides the mechanism wolfSSL asks the token for. */
	if (id != NULL) {
		char what[POLICY_NAME_MAX + 16], who[IDENTITY_WHO_MAX];

		if (profile != NULL)
			snprintf(what, sizeof(what), "profile '%s'",
				 profile->name);
		else
			snprintf(what, sizeof(what), "TLS %s", min_tls == 13 ?
				 "1.3" : "1.2");
		identity_who(id, who, sizeof(who));
		r = tls_sig_plan_check(&id->plan, min_tls, what, who, err);
		if (r != MTLS_OK)
			goto fail;
	}
	if (id != NULL && id->plan.min_tls > min_tls)
		min_tls = id->plan.min_tls;
	if (wolfSSL_CTX_SetMinVersion(ctx, min_tls == 13 ? WOLFSSL_TLSV1_3 :
							   WOLFSSL_TLSV1_2) !=
	    WOLFSSL_SUCCESS) {
		r = mtls_error_set(err, MTLS_ERR_TLS, "cannot set min version");
		goto fail;
	}
	/* wolfSSL_CTX_set1_sigalgs_list would not do here: in 5.5.4 it sets
	 * only the signature_algorithms the ClientHello offers, which are
	 * the schemes the *server* may sign with (an RSA-only list fails
	 * against an ECDSA server), while the client's own CertificateVerify
	 * scheme follows the version (see sig_plan.c). */
	if (id != NULL && id->plan.max_tls == 12 &&
	    wolfSSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) !=
		    WOLFSSL_SUCCESS) {
		r = mtls_error_set(err, MTLS_ERR_TLS, "cannot set max version");
		goto fail;
	}
	if (wolfSSL_CTX_set_cipher_list(ctx, aead_offload_enabled() ?
						     MTLS_CIPHERS_AES_FIRST :
						     MTLS_CIPHERS_CHACHA_FIRST) !=
	    WOLFSSL_SUCCESS) {
		r = mtls_error_set(err, MTLS_ERR_TLS, "cipher list refused");
		goto fail;
	}
	if (stat(ca, &st) != 0) {
		r = mtls_error_set(err, MTLS_ERR_CONFIG, "trust anchors %s: "
				   "not found", ca);
		goto fail;
	}
	ok = S_ISDIR(st.st_mode) ?
		     wolfSSL_CTX_load_verify_locations(ctx, NULL, ca) :
		     wolfSSL_CTX_load_verify_locations(ctx, ca, NULL);
	if (ok != WOLFSSL_SUCCESS) {
		r = mtls_error_set(err, MTLS_ERR_CONFIG,
				   "trust anchors %s: no usable CA certificate",
				   ca);
		goto fail;
	}
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, verify_cb);
	if (profile != NULL) {
		r = load_revocation(ctx, profile, err);
		if (r != MTLS_OK)
			goto fail;
	}

	if (id == NULL) { /* server-authenticated only: no client key */
		*out = ctx;
		return MTLS_OK;
	}
	/* The certificate first: with a key given by id, wolfSSL takes the
	 * key's type and size from it. */
	r = load_chain(ctx, id, err);
	if (r != MTLS_OK)
		goto fail;
	key_id_len = p11_key_id(id->key, key_id);
	if (wolfSSL_CTX_use_PrivateKey_Id(ctx, key_id, (long)key_id_len,
					  MTLS_KEY_DEVID) != WOLFSSL_SUCCESS) {
		r = mtls_error_set(err, MTLS_ERR_TLS,
				   "wolfSSL refused the key reference");
		goto fail;
	}
	wolfSSL_CTX_SetEccSignCb(ctx, ecc_sign_cb);
	wolfSSL_CTX_SetRsaSignCb(ctx, rsa_sign_cb);
	wolfSSL_CTX_SetRsaPssSignCb(ctx, rsa_pss_sign_cb);
	wolfSSL_CTX_SetRsaSignCheckCb(ctx, rsa_sign_check_cb);
	wolfSSL_CTX_SetRsaPssSignCheckCb(ctx, rsa_pss_sign_check_cb);
	*out = ctx;
	return MTLS_OK;
fail:
	wolfSSL_CTX_free(ctx);
	return r;
}

void tls_ctx_free(WOLFSSL_CTX *ctx)
{
	wolfSSL_CTX_free(ctx);
}

mtls_err_t tls_new(WOLFSSL_CTX *ctx, struct tls_conn *tc, int fd,
		   const char *name, const char *alpn, WOLFSSL **out,
		   struct mtls_error *err)
{
	WOLFSSL *ssl;
	char alpn_buf[256];
	uint8_t addr[16];
	size_t len = strlen(name);

	*out = NULL;
	/* "host." and "host" are one name; SNI carries it without the dot
	 * (RFC 6066 3), and so does every check. */
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > CERT_NAME_MAX)
		return mtls_error_set(err, MTLS_ERR_ARG, "bad server name");
	memcpy(tc->server_name, name, len);
	tc->server_name[len] = '\0';
	tc->server_ip = cert_ip_literal(tc->server_name, addr);
	ssl = wolfSSL_new(ctx);
	if (ssl == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, "wolfSSL_new");
	if (wolfSSL_set_ex_data(ssl, 0, tc) != WOLFSSL_SUCCESS) {
		wolfSSL_free(ssl);
		return mtls_error_set(err, MTLS_ERR_TLS, "wolfSSL_set_ex_data");
	}
	if (aead_offload_attach(ssl) != 0) {
		wolfSSL_free(ssl);
		return mtls_error_set(err, MTLS_ERR_TLS, "wolfSSL_SetDevId");
	}
	wolfSSL_SetEccSignCtx(ssl, tc);
	wolfSSL_SetRsaSignCtx(ssl, tc);
	wolfSSL_SetRsaPssSignCtx(ssl, tc);
	wolfSSL_SetRsaVerifyCtx(ssl, tc);
	wolfSSL_SetRsaPssVerifyCtx(ssl, tc);
	if (wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS) {
		wolfSSL_free(ssl);
		return mtls_error_set(err, MTLS_ERR_TLS, "wolfSSL_set_fd");
	}
	tls_io_attach(ssl, &tc->io, fd);
	/* An address literal: no SNI (RFC 6066 3 forbids it) and no
	 * wolfSSL_check_domain_name, which would take a dNSName or CN that
	 * spells the address, and spells IPv6 its own way: check_leaf wants
	 * an iPAddress SAN. A host name: wolfSSL checks it too, unless the
	 * profile's names replace it; check_leaf checks either under RFC
	 * 6125 (wolfSSL's own match takes "*", partial wildcards and SANs of
	 * any type). */
	if (!tc->server_ip &&
	    (wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, tc->server_name,
			    (unsigned short)len) != WOLFSSL_SUCCESS ||
	     ((tc->profile == NULL || tc->profile->names.n == 0) &&
	      wolfSSL_check_domain_name(ssl, tc->server_name) !=
		      WOLFSSL_SUCCESS))) {
		wolfSSL_free(ssl);
		return mtls_error_set(err, MTLS_ERR_TLS,
				      "cannot set up server name %s", name);
	}
	if (tc->profile != NULL && tc->profile->ocsp != POLICY_OCSP_OFF &&
	    wolfSSL_UseOCSPStapling(ssl, WOLFSSL_CSR_OCSP, 0) != WOLFSSL_SUCCESS) {
		wolfSSL_free(ssl);
		return mtls_error_set(err, MTLS_ERR_TLS,
				      "cannot ask for OCSP stapling");
	}
	if (alpn != NULL) {
		snprintf(alpn_buf, sizeof(alpn_buf), "%s", alpn);
		if (wolfSSL_UseALPN(ssl, alpn_buf, (unsigned)strlen(alpn_buf),
				    WOLFSSL_ALPN_FAILED_ON_MISMATCH) !=
		    WOLFSSL_SUCCESS) {
			wolfSSL_free(ssl);
			return mtls_error_set(err, MTLS_ERR_TLS,
					      "bad ALPN list %s", alpn);
		}
	}
	*out = ssl;
	return MTLS_OK;
}

void tls_free(WOLFSSL *ssl, struct tls_conn *tc)
{
	wolfSSL_free(ssl);
	tls_io_release(&tc->io);
}

static const char *alert_name(int code)
{
	switch (code) {
	case 40: return "handshake_failure";
	case 42: return "bad_certificate";
	case 43: return "unsupported_certificate";
	case 44: return "certificate_revoked";
	case 45: return "certificate_expired";
	case 46: return "certificate_unknown";
	case 48: return "unknown_ca";
	case 49: return "access_denied";
	case 51: return "decrypt_error";
	case 70: return "protocol_version";
	case 112: return "unrecognized_name";
	case 116: return "certificate_required";
	case 120: return "no_application_protocol";
	default: return "alert";
	}
}

mtls_err_t tls_error(WOLFSSL *ssl, struct tls_conn *tc, int ret,
		     struct mtls_error *err)
{
	int e = wolfSSL_get_error(ssl, ret);
	char text[WOLFSSL_MAX_ERROR_SZ];
	WOLFSSL_ALERT_HISTORY ah;

	if (tc->sign_err.code != MTLS_OK) {
		if (err != NULL)
			*err = tc->sign_err;
		return tc->sign_err.code;
	}
	if (tc->verify_err.code != MTLS_OK) {
		if (err != NULL)
			*err = tc->verify_err;
		return tc->verify_err.code;
	}
	wolfSSL_ERR_error_string_n((unsigned long)e, text, sizeof(text));
	switch (e) {
	case ASN_NO_SIGNER_E:
	case ASN_SELF_SIGNED_E:
		return mtls_error_set(err, MTLS_ERR_UNKNOWN_CA, "%s (%d)", text,
				      e);
	case DOMAIN_NAME_MISMATCH:
	case IPADDR_MISMATCH:
		return mtls_error_set(err, MTLS_ERR_NAME_MISMATCH, "%s (%d)",
				      text, e);
	case ASN_AFTER_DATE_E:
	case ASN_BEFORE_DATE_E:
		return mtls_error_set(err, MTLS_ERR_EXPIRED, "%s (%d)", text, e);
	case CRL_CERT_REVOKED:
	case OCSP_CERT_REVOKED:
		return mtls_error_set(err, MTLS_ERR_REVOKED, "%s (%d)", text, e);
	case CRL_MISSING:
	case CRL_CERT_DATE_ERR:
	case OCSP_CERT_UNKNOWN:
	case OCSP_LOOKUP_FAIL:
	case OCSP_INVALID_STATUS:
	case BAD_CERTIFICATE_STATUS_ERROR:
		return mtls_error_set(err, MTLS_ERR_REVOCATION_UNKNOWN,
				      "%s (%d)", text, e);
	default:
		break;
	}
	/* A server that stops below our minimum version answers with a
	 * TLS 1.2 ServerHello (wolfSSL: "record layer version error") or a
	 * protocol_version alert: say it in the words of the configuration. */
	if (wolfSSL_CTX_get_min_proto_version(wolfSSL_get_SSL_CTX(ssl)) ==
		    TLS1_3_VERSION &&
	    (e == VERSION_ERROR ||
	     (wolfSSL_get_alert_history(ssl, &ah) == WOLFSSL_SUCCESS &&
	      ah.last_rx.level == alert_fatal && ah.last_rx.code == 70)))
		return mtls_error_set(err, MTLS_ERR_TLS, "the server does not "
				      "speak TLS 1.3, and min_tls = 1.3 (of "
				      "the tunnel or profile, or what the "
				      "identity's key allows) refuses older "
				      "versions (%s, %d)", text, e);
	if (wolfSSL_get_alert_history(ssl, &ah) == WOLFSSL_SUCCESS &&
	    ah.last_rx.level == alert_fatal) {
		int code = ah.last_rx.code;

		switch (code) {
		case 40: case 42: case 43: case 44: case 45: case 46:
		case 48: case 49: case 51: case 116:
			return mtls_error_set(err, MTLS_ERR_CERT_REFUSED,
					      "server sent alert %s (%d)",
					      alert_name(code), code);
		default:
			return mtls_error_set(err, MTLS_ERR_TLS,
					      "server sent alert %s (%d)",
					      alert_name(code), code);
		}
	}
	return mtls_error_set(err, MTLS_ERR_TLS, "%s (%d)", text, e);
}

const char *tls_version_name(WOLFSSL *ssl)
{
	return wolfSSL_get_version(ssl);
}
