#include <wolfssl/options.h>

#include "renew.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>

#include "csr.h"
#include "enroll.h"
#include "mtls_log.h"

/* Test hook: MTLS_AGENT_TEST_CRASH_AT=<step> kills the process right after
 * that step was recorded, as a power cut would. */
void renew_crash_point(const char *step)
{
	const char *at = getenv("MTLS_AGENT_TEST_CRASH_AT");

	if (at != NULL && strcmp(at, step) == 0) {
		log_warn("event=test_crash step=%s", step);
		raise(SIGKILL);
	}
}

static int key_type(const struct renew_env *e, enum p11_key_type *t,
		    unsigned *bits)
{
	const char *kt = e->cfg->identities[e->index].renew.key_type;

	if (kt == NULL && e->current != NULL) {
		*t = p11_key_type(e->current->key);
		*bits = p11_key_bits(e->current->key);
		return 0;
	}
	if (kt == NULL || strcmp(kt, "ec-p256") == 0) {
		*t = P11_KEY_EC;
		*bits = 256;
	} else if (strcmp(kt, "ec-p384") == 0) {
		*t = P11_KEY_EC;
		*bits = 384;
	} else {
		*t = P11_KEY_RSA;
		*bits = strcmp(kt, "rsa-3072") == 0 ? 3072 : 2048;
	}
	return 0;
}

static mtls_err_t save(struct renew_env *e, struct renew_state *st,
		       struct mtls_error *err)
{
	return renew_state_save(e->cfg->agent.state_dir,
				e->cfg->identities[e->index].name, st, err);
}

/* Keys on the identity's token that are not generations of ours: a
 * renewal never generates over them, abandons or retires them. The
 * manufacturer's est_bootstrap_key (RFC 7030 3.3.2) and the ACME
 * account's key (losing it loses the account). */
#define KEPT_KEYS 2
static const char *kept_key_name[KEPT_KEYS] = { "est_bootstrap_key",
						"acme_account_key" };

/* Kept key k's CKA_ID into id, its length in *len: 0 when none is
 * configured or the token has no such key. An error when the token
 * cannot tell (then the callers destroy nothing). */
static mtls_err_t kept_id(const struct renew_env *e, int k,
			  uint8_t id[P11_ID_MAX], size_t *len,
			  struct mtls_error *err)
{
	const struct cfg_renew *r = &e->cfg->identities[e->index].renew;
	const char *uri = k == 0 ? r->est_bootstrap_key : r->acme_account_key;
	struct p11_key *key = NULL;
	mtls_err_t ret;

	*len = 0;
	if (uri == NULL)
		return MTLS_OK;
	ret = p11_key_open(e->token, uri, &key, err);
	if (ret == MTLS_ERR_KEY_NOT_FOUND)
		return MTLS_OK;
	if (ret != MTLS_OK)
		return ret;
	*len = p11_key_id(key, id);
	p11_key_close(key);
	return MTLS_OK;
}

/* Which kept key destroying the objects with this CKA_ID would touch (or
 * the first one the token cannot say about: nothing is destroyed then);
 * -1: none. */
static int kept_owner(const struct renew_env *e, const uint8_t *id,
		      size_t len)
{
	uint8_t kid[P11_ID_MAX];
	size_t klen;
	struct mtls_error ignored;

	for (int k = 0; k < KEPT_KEYS; k++) {
		if (kept_id(e, k, kid, &klen, &ignored) != MTLS_OK)
			return k;
		if (klen > 0 && klen == len && memcmp(kid, id, len) == 0)
			return k;
	}
	return -1;
}

/* The names a request asks for, and room for them. */
struct request_names {
	struct csr_request req;
	char subject[300];
	char sans[CSR_MAX_SANS][260];
};

/* Makes the request for the pending key: subject and SANs from the
 * configuration, else from the certificate in service. */
static mtls_err_t make_request(struct renew_env *e, struct renew_state *st,
			       struct request_names *names, char **pem,
			       struct mtls_error *err)
{
	const struct cfg_renew *r = &e->cfg->identities[e->index].renew;
	struct csr_request *rq = &names->req;
	char *subject = names->subject, (*sans)[260] = names->sans, uri[256];
	char san_list[512], *save_ptr = NULL, *tok;
	struct p11_key *key = NULL;
	WOLFSSL_X509 *x = NULL;
	mtls_err_t ret;
	int n;

	/* Every copy below is checked: a name cut to fit would ask the CA for
	 * another subject or SAN than the one meant. */
	if (r->subject != NULL) {
		n = snprintf(subject, sizeof(names->subject), "%s", r->subject);
		if (n < 0 || (size_t)n >= sizeof(names->subject))
			return mtls_error_set(err, MTLS_ERR_LIMIT, "subject too long");
		rq->subject = subject;
	} else if (e->current != NULL) {
		/* The name in service, byte for byte: its order and string
		 * types are the CA's, and a one-line form loses both. */
		rq->subject_of_cert = e->current->chain_der[0];
		rq->subject_of_cert_len = e->current->chain_len[0];
	} else
		return mtls_error_set(err, MTLS_ERR_CONFIG,
				      "[identity %s]: a first enrollment needs "
				      "subject=", e->cfg->identities[e->index].name);
	if (r->sans != NULL) {
		n = snprintf(san_list, sizeof(san_list), "%s", r->sans);
		if (n < 0 || (size_t)n >= sizeof(san_list))
			return mtls_error_set(err, MTLS_ERR_LIMIT, "sans too long");
		for (tok = strtok_r(san_list, ", ", &save_ptr); tok != NULL;
		     tok = strtok_r(NULL, ", ", &save_ptr)) {
			if (rq->n_sans == CSR_MAX_SANS)
				return mtls_error_set(err, MTLS_ERR_LIMIT, "more "
						      "than %d SANs", CSR_MAX_SANS);
			n = snprintf(sans[rq->n_sans], sizeof(names->sans[0]), "%s", tok);
			if (n < 0 || (size_t)n >= sizeof(names->sans[0]))
				return mtls_error_set(err, MTLS_ERR_LIMIT, "SAN too "
						      "long: %.40s...", tok);
			rq->sans[rq->n_sans] = sans[rq->n_sans];
			rq->n_sans++;
		}
	} else if (e->current != NULL) {
		char *alt;

		x = wolfSSL_X509_d2i(NULL, e->current->chain_der[0],
				     (int)e->current->chain_len[0]);
		while (x != NULL &&
		       (alt = wolfSSL_X509_get_next_altname(x)) != NULL) {
			if (rq->n_sans == CSR_MAX_SANS) {
				wolfSSL_X509_free(x);
				return mtls_error_set(err, MTLS_ERR_LIMIT, "more "
						      "than %d SANs", CSR_MAX_SANS);
			}
			n = snprintf(sans[rq->n_sans], sizeof(names->sans[0]), "DNS:%s",
				     alt);
			if (n < 0 || (size_t)n >= sizeof(names->sans[0])) {
				wolfSSL_X509_free(x);
				return mtls_error_set(err, MTLS_ERR_LIMIT, "SAN of "
						      "the certificate in "
						      "service too long");
			}
			rq->sans[rq->n_sans] = sans[rq->n_sans];
			rq->n_sans++;
		}
	}
	renew_id_uri(st->pending_id, st->pending_id_len, "private", uri, sizeof(uri));
	ret = p11_key_open(e->token, uri, &key, err);
	if (ret == MTLS_OK)
		ret = csr_make(key, rq, pem, err);
	p11_key_close(key);
	wolfSSL_X509_free(x);
	return ret;
}

/* The issued chain must belong to the new key, lead to issuer_ca, allow
 * clientAuth, and be valid now for a sane time. */
static mtls_err_t check_issued(struct renew_env *e, struct renew_state *st,
			       const char *pem_path, struct mtls_error *err)
{
	const struct cfg_identity *ci = &e->cfg->identities[e->index];
	WOLFSSL_CERT_MANAGER *cm = NULL;
	struct identity *id = NULL;
	DecodedCert dc;
	char uri[256];
	int64_t now = (int64_t)time(NULL);
	int progress = 1, loaded[IDENTITY_CHAIN_MAX] = { 0 };
	mtls_err_t ret;

	renew_id_uri(st->pending_id, st->pending_id_len, "private", uri, sizeof(uri));
	/* identity_load checks that the certificate's key is the token key. */
	ret = identity_load(ci->name, e->token, uri, pem_path, NULL, &id, err);
	if (ret != MTLS_OK)
		return ret;
	cm = wolfSSL_CertManagerNew();
	if (cm == NULL ||
	    wolfSSL_CertManagerLoadCA(cm, ci->renew.issuer_ca, NULL) !=
		    WOLFSSL_SUCCESS) {
		ret = mtls_error_set(err, MTLS_ERR_CONFIG,
				     "issuer_ca %s: no usable CA",
				     ci->renew.issuer_ca);
		goto out;
	}
	/* Intermediates, in whatever order they came: each is trusted only
	 * once it verifies against what is already trusted. */
	while (progress) {
		progress = 0;
		for (unsigned i = 1; i < id->n_chain; i++) {
			if (loaded[i] ||
			    wolfSSL_CertManagerVerifyBuffer(
				    cm, id->chain_der[i], (long)id->chain_len[i],
				    WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS)
				continue;
			if (wolfSSL_CertManagerLoadCABuffer(
				    cm, id->chain_der[i], (long)id->chain_len[i],
				    WOLFSSL_FILETYPE_ASN1) == WOLFSSL_SUCCESS)
				loaded[i] = progress = 1;
		}
	}
	if (wolfSSL_CertManagerVerifyBuffer(cm, id->chain_der[0],
					    (long)id->chain_len[0],
					    WOLFSSL_FILETYPE_ASN1) !=
	    WOLFSSL_SUCCESS) {
		ret = mtls_error_set(err, MTLS_ERR_UNKNOWN_CA,
				     "issued certificate does not chain to %s",
				     ci->renew.issuer_ca);
		goto out;
	}
	wc_InitDecodedCert(&dc, id->chain_der[0], (word32)id->chain_len[0], NULL);
	if (wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL) != 0) {
		wc_FreeDecodedCert(&dc);
		ret = mtls_error_set(err, MTLS_ERR_CERT, "issued certificate "
				     "unparsable");
		goto out;
	}
	if (dc.extExtKeyUsageSet && !(dc.extExtKeyUsage & EXTKEYUSE_CLIENT_AUTH)) {
		wc_FreeDecodedCert(&dc);
		ret = mtls_error_set(err, MTLS_ERR_CERT, "issued certificate "
				     "lacks EKU clientAuth");
		goto out;
	}
	wc_FreeDecodedCert(&dc);
	/* Usable now means: valid (300 s of clock skew allowed at the start)
	 * and with at least a tenth of its lifetime left. A fixed margin
	 * would refuse every short-lived certificate a CA is configured for;
	 * a relative one still refuses what would be due for renewal again
	 * at once (the schedule renews at a share of the lifetime), which
	 * would hammer the CA and signals a clock or CA misconfiguration. */
	if (id->not_after <= id->not_before || id->not_before > now + 300 ||
	    id->not_after - now < (id->not_after - id->not_before) / 10) {
		ret = mtls_error_set(err, MTLS_ERR_CERT,
				     "issued certificate valid %ld..%ld: not "
				     "usable now", id->not_before, id->not_after);
		goto out;
	}
out:
	if (cm != NULL)
		wolfSSL_CertManagerFree(cm);
	identity_free(id);
	return ret;
}

static mtls_err_t abandon(struct renew_env *e, struct renew_state *st,
			  struct mtls_error *err)
{
	unsigned n = 0;
	struct mtls_error ignored;

	/* The pending key is never the one in service nor the previous, nor
	 * a kept key. */
	if (st->pending_id_len > 0 &&
	    !(st->pending_id_len == st->key_id_len &&
	      memcmp(st->pending_id, st->key_id, st->key_id_len) == 0) &&
	    !(st->pending_id_len == st->prev_id_len &&
	      memcmp(st->pending_id, st->prev_id, st->prev_id_len) == 0) &&
	    kept_owner(e, st->pending_id, st->pending_id_len) < 0)
		(void)p11_objects_destroy(e->token, st->pending_id,
					  st->pending_id_len, &n, &ignored);
	log_notice("event=renew_abandoned identity=%s objects_removed=%u",
		   e->cfg->identities[e->index].name, n);
	st->step = RENEW_IDLE;
	st->pending_id_len = 0;
	return save(e, st, err);
}

static mtls_err_t retire(struct renew_env *e, struct renew_state *st,
			 struct mtls_error *err)
{
	struct mtls_error ignored;
	uint8_t bid[P11_ID_MAX];
	size_t blen;
	unsigned n = 0;
	mtls_err_t ret;

	if (st->retire_id_len == 0)
		return MTLS_OK;
	if ((st->retire_id_len == st->key_id_len &&
	     memcmp(st->retire_id, st->key_id, st->key_id_len) == 0) ||
	    (st->retire_id_len == st->prev_id_len &&
	     memcmp(st->retire_id, st->prev_id, st->prev_id_len) == 0)) {
		st->retire_id_len = 0; /* never the key in service */
		return save(e, st, err);
	}
	/* The first generation's key= may have been a kept key. */
	for (int k = 0; k < KEPT_KEYS; k++) {
		if (kept_id(e, k, bid, &blen, &ignored) != MTLS_OK)
			return MTLS_OK; /* the token cannot say: try later */
		if (blen == st->retire_id_len &&
		    memcmp(bid, st->retire_id, blen) == 0) {
			log_notice("event=retire_skipped identity=%s reason=%s",
				   e->cfg->identities[e->index].name,
				   kept_key_name[k]);
			st->retire_id_len = 0;
			return save(e, st, err);
		}
	}
	ret = p11_objects_destroy(e->token, st->retire_id, st->retire_id_len,
				  &n, err);
	if (ret != MTLS_OK)
		return ret;
	log_info("event=key_retired identity=%s objects_removed=%u",
		 e->cfg->identities[e->index].name, n);
	st->retire_id_len = 0;
	return save(e, st, err);
}

/* Is this certificate on the token under the pending id already? Others
 * may be there too: a PIV card shows the slot's attestation certificate
 * (and right after keygen a placeholder) under the same CKA_ID. */
static int cert_already_stored(struct p11_token *t, const char *uri,
			       const struct identity *id)
{
	uint8_t *der[P11_CERTS_MAX];
	size_t len[P11_CERTS_MAX];
	struct mtls_error ignored;
	unsigned n;
	int found = 0;

	if (p11_certs_read(t, uri, der, len, P11_CERTS_MAX, &n, &ignored) !=
	    MTLS_OK)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		found |= len[i] == id->chain_len[0] &&
			 memcmp(der[i], id->chain_der[0], len[i]) == 0;
		free(der[i]);
	}
	return found;
}

static mtls_err_t store(struct renew_env *e, struct renew_state *st,
			struct mtls_error *err)
{
	const struct cfg_identity *ci = &e->cfg->identities[e->index];
	struct identity *id = NULL;
	char pending[1024], chain[1024], uri[256], label_uri[256];
	WOLFSSL_X509 *x = NULL;
	unsigned char *subj = NULL;
	int subj_len;
	mtls_err_t ret;

	renew_state_path(e->cfg, ci->name, "pending.pem", pending, sizeof(pending));
	renew_id_uri(st->pending_id, st->pending_id_len, "private", uri, sizeof(uri));
	ret = identity_load(ci->name, e->token, uri, pending, NULL, &id, err);
	if (ret != MTLS_OK)
		return ret;
	/* A crash between storing and recording it must not store twice. */
	renew_id_uri(st->pending_id, st->pending_id_len, "cert", uri, sizeof(uri));
	if (!cert_already_stored(e->token, uri, id)) {
		x = wolfSSL_X509_d2i(NULL, id->chain_der[0], (int)id->chain_len[0]);
		subj_len = x ? wolfSSL_i2d_X509_NAME(
				       wolfSSL_X509_get_subject_name(x), &subj) :
			       -1;
		snprintf(label_uri, sizeof(label_uri), "pkcs11:object=%s-g%u",
			 ci->name, st->generation + 1);
		ret = subj_len > 0 ?
			      p11_cert_store(e->token, id->chain_der[0],
					     id->chain_len[0], subj,
					     (size_t)subj_len, label_uri,
					     st->pending_id, st->pending_id_len,
					     err) :
			      mtls_error_set(err, MTLS_ERR_CERT, "no subject");
		if (ret != MTLS_OK)
			goto out;
	}
	/* The intermediates (the token holds the leaf only), and the whole
	 * chain where the operator wants a PEM file. */
	renew_state_path(e->cfg, ci->name, "chain.pem", chain, sizeof(chain));
	{
		size_t cap = 0, len = 0, leaf_len = 0;
		char *buf;

		for (unsigned i = 0; i < id->n_chain; i++)
			cap += id->chain_len[i] * 2 + 128;
		buf = malloc(cap + 1);
		if (buf == NULL) {
			ret = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
			goto out;
		}
		for (unsigned i = 0; i < id->n_chain; i++) {
			int w = wc_DerToPem(id->chain_der[i], (word32)id->chain_len[i],
					    (byte *)buf + len, (word32)(cap - len),
					    CERT_TYPE);

			if (w <= 0) {
				/* else the leaf would be missing from the files,
				 * or an intermediate */
				free(buf);
				ret = mtls_error_set(err, MTLS_ERR_CERT, "certificate "
						     "%u of the chain: no PEM", i);
				goto out;
			}
			len += (size_t)w;
			if (i == 0)
				leaf_len = len;
		}
		ret = MTLS_OK;
		if (ci->renew.cert_file != NULL)
			ret = file_write_atomic(ci->renew.cert_file, buf, len,
						0644, err);
		if (ret == MTLS_OK) /* intermediates: all after the leaf */
			ret = file_write_atomic(chain, buf + leaf_len,
						len - leaf_len, 0644, err);
		free(buf);
	}
out:
	free(subj);
	wolfSSL_X509_free(x);
	identity_free(id);
	return ret;
}

static int same_id(const uint8_t *a, size_t alen, const uint8_t *b,
		   size_t blen)
{
	return alen == blen && alen > 0 && memcmp(a, b, alen) == 0;
}

/* The CKA_ID of the next key: random, or from key_ids the first that is
 * neither in service nor the previous generation's, else the previous
 * one's slot (its key is then overwritten: it is given up here). */
static mtls_err_t pending_id_choose(struct renew_env *e, struct renew_state *st,
				    struct mtls_error *err)
{
	const struct cfg_renew *r = &e->cfg->identities[e->index].renew;
	uint8_t cur[P11_ID_MAX];
	size_t cur_len = 0;
	int pick = -1;

	if (r->n_key_ids == 0) {
		if (getrandom(st->pending_id, 8, 0) != 8)
			return mtls_error_set(err, MTLS_ERR_IO, "getrandom");
		st->pending_id_len = 8;
		return MTLS_OK;
	}
	if (e->current != NULL) {
		cur_len = p11_key_id(e->current->key, cur);
	} else if (st->key_id_len > 0) {
		memcpy(cur, st->key_id, st->key_id_len);
		cur_len = st->key_id_len;
	}
	for (int pass = 0; pass < 2 && pick < 0; pass++)
		for (unsigned i = 0; i < r->n_key_ids && pick < 0; i++) {
			const uint8_t *id = r->key_ids[i];
			size_t len = r->key_id_len[i];

			if (same_id(id, len, cur, cur_len))
				continue;
			if (pass == 0 && same_id(id, len, st->prev_id, st->prev_id_len))
				continue;
			pick = (int)i;
		}
	if (pick < 0)
		return mtls_error_set(err, MTLS_ERR_CONFIG,
				      "[identity %s] key_ids: every id is in "
				      "service", e->cfg->identities[e->index].name);
	memcpy(st->pending_id, r->key_ids[pick], r->key_id_len[pick]);
	st->pending_id_len = r->key_id_len[pick];
	if (same_id(st->pending_id, st->pending_id_len, st->prev_id,
		    st->prev_id_len)) {
		st->prev_id_len = 0;
		log_info("event=renew_reuse_slot identity=%s note=\"the previous "
			 "generation's key is overwritten\"",
			 e->cfg->identities[e->index].name);
	}
	if (same_id(st->pending_id, st->pending_id_len, st->retire_id,
		    st->retire_id_len))
		st->retire_id_len = 0;
	return MTLS_OK;
}

/* Chooses the pending CKA_ID, never a kept key's: a key_ids list that
 * holds one is refused before the first key is made (a rotation would
 * come to it some day), and so is a random id that hit one. */
static mtls_err_t kept_guard(struct renew_env *e, struct renew_state *st,
			     struct mtls_error *err)
{
	const struct cfg_identity *ci = &e->cfg->identities[e->index];
	uint8_t kid[KEPT_KEYS][P11_ID_MAX];
	size_t klen[KEPT_KEYS];
	char hex[2 * P11_ID_MAX + 1];
	mtls_err_t ret;

	for (int k = 0; k < KEPT_KEYS; k++) {
		ret = kept_id(e, k, kid[k], &klen[k], err);
		if (ret != MTLS_OK)
			return ret;
		hex_encode(kid[k], klen[k], hex);
		for (unsigned i = 0; i < ci->renew.n_key_ids; i++)
			if (same_id(ci->renew.key_ids[i], ci->renew.key_id_len[i],
				    kid[k], klen[k]))
				return mtls_error_set(err, MTLS_ERR_CONFIG,
						      "[identity %s] key_ids holds "
						      "%s, the CKA_ID of %s: a "
						      "renewal would generate over "
						      "that key; take it out of "
						      "key_ids", ci->name, hex,
						      kept_key_name[k]);
	}
	ret = pending_id_choose(e, st, err);
	for (int k = 0; ret == MTLS_OK && k < KEPT_KEYS; k++)
		if (same_id(st->pending_id, st->pending_id_len, kid[k], klen[k])) {
			st->pending_id_len = 0;
			hex_encode(kid[k], klen[k], hex);
			ret = mtls_error_set(err, MTLS_ERR_CONFIG, "[identity %s] "
					     "the new key's CKA_ID %s is %s's",
					     ci->name, hex, kept_key_name[k]);
		}
	return ret;
}

mtls_err_t renew_run(struct renew_env *e, struct renew_state *st,
		     int *switched, int *retry_after, struct mtls_error *err)
{
	const struct cfg_identity *ci = &e->cfg->identities[e->index];
	char pending[1024];
	mtls_err_t ret;

	*switched = 0;
	*retry_after = 0;
	if (mkdir(e->cfg->agent.state_dir, 0700) != 0 && errno != EEXIST)
		return mtls_error_set(err, MTLS_ERR_IO, "state_dir %s: %s",
				      e->cfg->agent.state_dir, strerror(errno));
	/* Made now or long ago, by us or not: the files below go there. */
	ret = renew_state_dir_check(e->cfg->agent.state_dir, err);
	if (ret != MTLS_OK)
		return ret;
	renew_state_path(e->cfg, ci->name, "pending.pem", pending, sizeof(pending));

	if (st->step == RENEW_IDLE) {
		enum p11_key_type kt;
		unsigned bits;
		char label[CFG_NAME_MAX + 16];
		uint8_t out_id[P11_ID_MAX];
		size_t out_len;

		key_type(e, &kt, &bits);
		ret = kept_guard(e, st, err);
		if (ret != MTLS_OK)
			return ret;
		st->step = RENEW_KEYGEN;
		ret = save(e, st, err);
		if (ret != MTLS_OK)
			return ret;
		renew_crash_point("keygen");
		snprintf(label, sizeof(label), "%s-g%u", ci->name,
			 st->generation + 1);
		ret = p11_keygen(e->token, kt, bits, label, st->pending_id,
				 st->pending_id_len, out_id, &out_len, err);
		if (ret != MTLS_OK) {
			struct mtls_error ignored;

			abandon(e, st, &ignored);
			return ret;
		}
		log_info("event=renew_keygen identity=%s generation=%u",
			 ci->name, st->generation + 1);
		st->step = RENEW_CSR;
		ret = save(e, st, err);
		if (ret != MTLS_OK)
			return ret;
		renew_crash_point("csr");
	}
	if (st->step == RENEW_KEYGEN) {
		/* Only recovery leaves this step behind: the key may be half
		 * made. Start over. */
		ret = abandon(e, st, err);
		if (ret != MTLS_OK)
			return ret;
		return renew_run(e, st, switched, retry_after, err);
	}
	if (st->step == RENEW_CSR) {
		struct enroll_result res;
		struct request_names names;
		char *csr = NULL;

		/* RFC 7030 4.1: an EST client without its CA certificates gets
		 * them from /cacerts, over the server-authenticated channel. */
		if (ci->renew.enroll == CFG_ENROLL_EST &&
		    access(ci->renew.issuer_ca, R_OK) != 0) {
			char *cas = NULL;

			ret = est_cacerts(&ci->renew, &cas, err);
			if (ret == MTLS_OK)
				ret = file_write_atomic(ci->renew.issuer_ca, cas,
							strlen(cas), 0644, err);
			free(cas);
			if (ret != MTLS_OK)
				return ret;
			log_info("event=est_cacerts identity=%s written=%s",
				 ci->name, ci->renew.issuer_ca);
		}

		memset(&names, 0, sizeof(names));
		ret = make_request(e, st, &names, &csr, err);
		if (ret != MTLS_OK)
			return ret;
		ret = enroll_submit(e, csr, &names.req, &res, err);
		free(csr);
		if (ret != MTLS_OK)
			return ret;
		if (res.retry_after > 0) {
			*retry_after = res.retry_after;
			log_info("event=renew_pending identity=%s retry_after=%d",
				 ci->name, res.retry_after);
			return MTLS_OK;
		}
		ret = file_write_atomic(pending, res.chain_pem,
					strlen(res.chain_pem), 0600, err);
		free(res.chain_pem);
		if (ret != MTLS_OK)
			return ret;
		ret = check_issued(e, st, pending, err);
		if (ret != MTLS_OK) {
			unlink(pending);
			return ret;
		}
		st->step = RENEW_RECEIVED;
		ret = save(e, st, err);
		if (ret != MTLS_OK)
			return ret;
		renew_crash_point("received");
	}
	if (st->step == RENEW_RECEIVED) {
		ret = store(e, st, err);
		if (ret != MTLS_OK)
			return ret;
		st->step = RENEW_STORED;
		ret = save(e, st, err);
		if (ret != MTLS_OK)
			return ret;
		renew_crash_point("stored");
	}
	if (st->step == RENEW_STORED) {
		uint8_t cur[P11_ID_MAX];
		size_t cur_len = 0;

		if (e->current != NULL)
			cur_len = p11_key_id(e->current->key, cur);
		else if (st->key_id_len > 0) {
			memcpy(cur, st->key_id, st->key_id_len);
			cur_len = st->key_id_len;
		}
		/* Keep one previous generation; the one before it goes. */
		memcpy(st->retire_id, st->prev_id, st->prev_id_len);
		st->retire_id_len = st->prev_id_len;
		memcpy(st->prev_id, cur, cur_len);
		st->prev_id_len = cur_len;
		memcpy(st->key_id, st->pending_id, st->pending_id_len);
		st->key_id_len = st->pending_id_len;
		st->pending_id_len = 0;
		st->generation++;
		st->step = RENEW_IDLE;
		st->failures = 0;
		snprintf(st->last_result, sizeof(st->last_result), "ok");
		ret = save(e, st, err);
		if (ret != MTLS_OK)
			return ret;
		unlink(pending);
		*switched = 1;
		log_notice("event=renewed identity=%s generation=%u", ci->name,
			   st->generation);
		renew_crash_point("switched");
	}
	return retire(e, st, err);
}

mtls_err_t renew_recover(struct renew_env *e, struct renew_state *st,
			 int *switched, struct mtls_error *err)
{
	int retry_after;

	*switched = 0;
	switch (st->step) {
	case RENEW_KEYGEN:
		log_notice("event=renew_recover identity=%s step=keygen "
			   "action=abandon", e->cfg->identities[e->index].name);
		return abandon(e, st, err);
	case RENEW_RECEIVED:
	case RENEW_STORED:
		log_notice("event=renew_recover identity=%s step=%s action=finish",
			   e->cfg->identities[e->index].name,
			   renew_step_name(st->step));
		return renew_run(e, st, switched, &retry_after, err);
	case RENEW_CSR:
		/* The key exists: the next attempt sends its request. */
		return MTLS_OK;
	case RENEW_IDLE:
	default:
		return retire(e, st, err);
	}
}

mtls_err_t renew_recover_at_load(const struct config *cfg, unsigned index,
				 struct p11_token *token,
				 struct identity *current,
				 struct renew_state *st, int *switched,
				 struct mtls_error *err)
{
	struct renew_env env = { cfg, index, token, current };

	return renew_recover(&env, st, switched, err);
}
