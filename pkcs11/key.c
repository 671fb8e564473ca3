/* Private keys on the token: lookup with a cached handle, signatures with
 * the token's own mechanisms, public halves and protection flags. */
#include <stdlib.h>
#include <string.h>

#include "p11_internal.h"

/* Finds the key on session s unless the cached handle is current. */
static mtls_err_t key_handle(struct p11_key *k, struct p11_session *s,
			     int force, CK_OBJECT_HANDLE *h,
			     struct mtls_error *err)
{
	mtls_err_t r = MTLS_OK;

	pthread_mutex_lock(&k->lock);
	if (force || k->handle == CK_INVALID_HANDLE ||
	    k->handle_gen != s->gen) {
		r = p11_find_one(k->t, s->h, k->kuri, k->uri,
				 CKO_PRIVATE_KEY, &k->handle, err);
		k->handle_gen = s->gen;
		if (r != MTLS_OK)
			k->handle = CK_INVALID_HANDLE;
	}
	*h = k->handle;
	pthread_mutex_unlock(&k->lock);
	return r;
}

static mtls_err_t get_attrs(struct p11_token *t, CK_SESSION_HANDLE s,
			    CK_OBJECT_HANDLE h, CK_ATTRIBUTE *a, CK_ULONG n,
			    const char *uri, struct mtls_error *err)
{
	CK_RV rv = t->m->fn->C_GetAttributeValue(s, h, a, n);

	if (rv != CKR_OK)
		return p11_rv_error(err, rv, "C_GetAttributeValue", uri);
	return MTLS_OK;
}

/* Bits of an EC key from its curve OID (DER). */
static unsigned ec_bits(const uint8_t *params, size_t len)
{
	static const uint8_t p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
					0x3d, 0x03, 0x01, 0x07 };
	static const uint8_t p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
	static const uint8_t p521[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23 };

	if (len == sizeof(p256) && memcmp(params, p256, len) == 0)
		return 256;
	if (len == sizeof(p384) && memcmp(params, p384, len) == 0)
		return 384;
	if (len == sizeof(p521) && memcmp(params, p521, len) == 0)
		return 521;
	return 0;
}

static mtls_err_t key_describe(struct p11_key *k, struct p11_session *s,
			       CK_OBJECT_HANDLE h, struct mtls_error *err)
{
	CK_KEY_TYPE kt;
	uint8_t params[32];
	CK_ULONG mod_len = 0;
	CK_ATTRIBUTE a[] = {
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_ID, k->id, sizeof(k->id) },
	};
	mtls_err_t r;

	r = get_attrs(k->t, s->h, h, a, 2, k->uri, err);
	if (r != MTLS_OK)
		return r;
	k->id_len = a[1].ulValueLen;
	{
		/* Optional (PKCS#11 2.20 and later); a token without it has
		 * no such keys. */
		CK_BBOOL aa = CK_FALSE;
		CK_ATTRIBUTE q = { CKA_ALWAYS_AUTHENTICATE, &aa, sizeof(aa) };

		if (k->t->m->fn->C_GetAttributeValue(s->h, h, &q, 1) == CKR_OK &&
		    q.ulValueLen == sizeof(aa))
			k->always_auth = aa == CK_TRUE;
	}
	if (kt == CKK_EC) {
		CK_ATTRIBUTE p = { CKA_EC_PARAMS, params, sizeof(params) };

		r = get_attrs(k->t, s->h, h, &p, 1, k->uri, err);
		if (r != MTLS_OK)
			return r;
		k->type = P11_KEY_EC;
		k->bits = ec_bits(params, p.ulValueLen);
		if (k->bits == 0)
			return mtls_error_set(err, MTLS_ERR_MECHANISM,
					      "%s: unsupported curve", k->uri);
	} else if (kt == CKK_RSA) {
		CK_ATTRIBUTE m = { CKA_MODULUS, NULL, 0 };

		r = get_attrs(k->t, s->h, h, &m, 1, k->uri, err);
		if (r != MTLS_OK)
			return r;
		mod_len = m.ulValueLen;
		k->type = P11_KEY_RSA;
		k->bits = (unsigned)mod_len * 8;
		if (k->bits < 2048 || mod_len > P11_SIG_MAX)
			return mtls_error_set(err, MTLS_ERR_MECHANISM,
					      "%s: RSA-%u not supported "
					      "(2048..8192)", k->uri, k->bits);
	} else {
		return mtls_error_set(err, MTLS_ERR_MECHANISM,
				      "%s: key type 0x%lx not supported",
				      k->uri, (unsigned long)kt);
	}
	return MTLS_OK;
}

mtls_err_t p11_key_open(struct p11_token *t, const char *uri,
			struct p11_key **out, struct mtls_error *err)
{
	struct p11_session s;
	struct p11_key *k;
	CK_OBJECT_HANDLE h;
	CK_ATTRIBUTE *cls;
	mtls_err_t r;

	*out = NULL;
	k = calloc(1, sizeof(*k));
	if (k == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	k->t = t;
	k->handle = CK_INVALID_HANDLE;
	pthread_mutex_init(&k->lock, NULL);
	r = p11_uri_parse(uri, &k->kuri, err);
	if (r != MTLS_OK) {
		pthread_mutex_destroy(&k->lock);
		free(k);
		return r;
	}
	p11_uri_redact(uri, k->uri, sizeof(k->uri));
	cls = p11_kit_uri_get_attribute(k->kuri, CKA_CLASS);
	if (cls != NULL && (cls->ulValueLen != sizeof(CK_OBJECT_CLASS) ||
			    *(CK_OBJECT_CLASS *)cls->pValue != CKO_PRIVATE_KEY)) {
		r = mtls_error_set(err, MTLS_ERR_URI,
				   "%s: type= must be private for a key",
				   k->uri);
		goto fail;
	}
	r = p11_session_get(t, &s, err);
	if (r != MTLS_OK)
		goto fail;
	r = key_handle(k, &s, 1, &h, err);
	if (r == MTLS_OK)
		r = key_describe(k, &s, h, err);
	p11_session_put(t, &s, CKR_OK);
	if (r != MTLS_OK)
		goto fail;
	*out = k;
	return MTLS_OK;
fail:
	p11_key_close(k);
	return r;
}

void p11_key_close(struct p11_key *k)
{
	if (k == NULL)
		return;
	pthread_mutex_destroy(&k->lock);
	p11_kit_uri_free(k->kuri);
	free(k);
}

enum p11_key_type p11_key_type(const struct p11_key *k)
{
	return k->type;
}

unsigned p11_key_bits(const struct p11_key *k)
{
	return k->bits;
}

const char *p11_key_uri(const struct p11_key *k)
{
	return k->uri;
}

size_t p11_key_id(const struct p11_key *k, uint8_t id[P11_ID_MAX])
{
	memcpy(id, k->id, k->id_len);
	return k->id_len;
}

static CK_MECHANISM_TYPE hash_mech(enum p11_hash h, CK_RSA_PKCS_MGF_TYPE *mgf,
				   CK_ULONG *len)
{
	switch (h) {
	case P11_HASH_SHA384:
		*mgf = CKG_MGF1_SHA384;
		*len = 48;
		return CKM_SHA384;
	case P11_HASH_SHA512:
		*mgf = CKG_MGF1_SHA512;
		*len = 64;
		return CKM_SHA512;
	case P11_HASH_SHA256:
	default:
		*mgf = CKG_MGF1_SHA256;
		*len = 32;
		return CKM_SHA256;
	}
}

/* One signature on session s. A key with CKA_ALWAYS_AUTHENTICATE (PIV
 * slot 9c) wants the PIN again between C_SignInit and C_Sign. */
static CK_RV sign_once(struct p11_key *k, CK_SESSION_HANDLE s,
		       CK_OBJECT_HANDLE h, CK_MECHANISM *mech,
		       const uint8_t *in, size_t in_len, uint8_t *sig,
		       size_t *sig_len, mtls_err_t *login, struct mtls_error *err)
{
	CK_FUNCTION_LIST *fn = k->t->m->fn;
	CK_ULONG n = (CK_ULONG)*sig_len;
	CK_RV rv;

	*login = MTLS_OK;
	rv = fn->C_SignInit(s, mech, h);
	if (rv != CKR_OK)
		return rv;
	if (k->always_auth) {
		*login = p11_context_login(k->t, s, err);
		/* Not CKR_OK: the pool closes the session, which ends the
		 * operation C_SignInit started. */
		if (*login != MTLS_OK)
			return CKR_FUNCTION_FAILED;
	}
	rv = fn->C_Sign(s, (CK_BYTE *)in, (CK_ULONG)in_len, sig, &n);
	if (rv == CKR_OK)
		*sig_len = n;
	return rv;
}

mtls_err_t p11_key_sign(struct p11_key *k, enum p11_sign_mech mech,
			enum p11_hash hash, const uint8_t *in, size_t in_len,
			uint8_t *sig, size_t *sig_len, struct mtls_error *err)
{
	CK_RSA_PKCS_PSS_PARAMS pss;
	CK_MECHANISM m = { 0, NULL, 0 };
	struct p11_session s;
	CK_OBJECT_HANDLE h;
	CK_ULONG hlen;
	size_t cap = *sig_len;
	mtls_err_t r, login;
	CK_RV rv;

	switch (mech) {
	case P11_SIGN_ECDSA:
		if (k->type != P11_KEY_EC)
			goto wrong_type;
		m.mechanism = CKM_ECDSA;
		break;
	case P11_SIGN_RSA_PKCS:
		if (k->type != P11_KEY_RSA)
			goto wrong_type;
		m.mechanism = CKM_RSA_PKCS;
		break;
	case P11_SIGN_RSA_PSS:
		if (k->type != P11_KEY_RSA)
			goto wrong_type;
		pss.hashAlg = hash_mech(hash, &pss.mgf, &hlen);
		pss.sLen = hlen;
		if (in_len != hlen)
			return mtls_error_set(err, MTLS_ERR_ARG,
					      "PSS input is not a hash");
		m.mechanism = CKM_RSA_PKCS_PSS;
		m.pParameter = &pss;
		m.ulParameterLen = sizeof(pss);
		break;
	default:
		goto wrong_type;
	}

	/* Twice at most: a card pulled and put back was reset, so the first
	 * try on a pooled session fails (CKR_USER_NOT_LOGGED_IN,
	 * CKR_SESSION_HANDLE_INVALID) and the pool is dropped; the second
	 * runs on a fresh, logged-in session. */
	for (int attempt = 0;; attempt++) {
		*sig_len = cap;
		r = p11_session_get(k->t, &s, err);
		if (r != MTLS_OK)
			return r;
		r = key_handle(k, &s, 0, &h, err);
		if (r != MTLS_OK) {
			p11_session_put(k->t, &s, CKR_OK);
			return r;
		}
		rv = sign_once(k, s.h, h, &m, in, in_len, sig, sig_len, &login,
			       err);
		if (rv == CKR_KEY_HANDLE_INVALID ||
		    rv == CKR_OBJECT_HANDLE_INVALID) {
			/* The object was recreated (e.g. token re-initialised
			 * under us): find it again once. */
			r = key_handle(k, &s, 1, &h, err);
			if (r != MTLS_OK) {
				p11_session_put(k->t, &s, CKR_OK);
				return r;
			}
			*sig_len = cap;
			rv = sign_once(k, s.h, h, &m, in, in_len, sig, sig_len,
				       &login, err);
		}
		p11_session_put(k->t, &s, rv);
		if (login != MTLS_OK)
			return login;
		if (rv == CKR_OK)
			return MTLS_OK;
		if (!p11_rv_token_lost(rv) || attempt > 0)
			break;
		if (!p11_token_listed(k->t)) {
			p11_rv_count(rv);
			return mtls_error_set(err, MTLS_ERR_TOKEN_ABSENT,
					      "C_Sign: %s, and the token is no "
					      "longer present (%s)",
					      p11_rv_name(rv), k->uri);
		}
	}
	return p11_rv_error(err, rv, "C_Sign", k->uri);

wrong_type:
	return mtls_error_set(err, MTLS_ERR_MECHANISM,
			      "mechanism does not fit the key type (%s)",
			      k->uri);
}

int p11_key_always_authenticate(const struct p11_key *k)
{
	return k->always_auth;
}

mtls_err_t p11_key_sign_init_probe(struct p11_key *k, CK_MECHANISM_TYPE type,
				   CK_RV *rv, struct mtls_error *err)
{
	CK_RSA_PKCS_PSS_PARAMS pss;
	CK_MECHANISM m = { type, NULL, 0 };
	struct p11_token *t = k->t;
	struct p11_session a, b, *use = &a;
	CK_OBJECT_HANDLE h;
	CK_ULONG hlen;
	mtls_err_t r;
	int room;

	if (type == CKM_RSA_PKCS_PSS) {
		pss.hashAlg = hash_mech(P11_HASH_SHA256, &pss.mgf, &hlen);
		pss.sLen = hlen;
		m.pParameter = &pss;
		m.ulParameterLen = sizeof(pss);
	}
	r = p11_session_get(t, &a, err);
	if (r != MTLS_OK)
		return r;
	/* PKCS#11 2.40 has no way to end a signing operation without
	 * signing: the session that asked goes, and the operation with it.
	 * A second session does the asking while the first stays open, so
	 * that closing it does not log the token out (the last session's
	 * close would: the next operation would need a C_Login). Only when
	 * the pool has no room does the first one go. */
	pthread_mutex_lock(&t->lock);
	room = t->n_idle > 0 || t->n_open < t->max_sessions;
	pthread_mutex_unlock(&t->lock);
	if (room && p11_session_get(t, &b, err) == MTLS_OK)
		use = &b;
	r = key_handle(k, use, 0, &h, err);
	if (r == MTLS_OK) {
		*rv = t->m->fn->C_SignInit(use->h, &m, h);
		if (p11_rv_token_lost(*rv))
			r = p11_rv_error(err, *rv, "C_SignInit", k->uri);
	}
	/* Any result but CKR_OK closes the session in p11_session_put. */
	p11_session_put(t, use, r != MTLS_OK ? CKR_OK :
			p11_rv_token_lost(*rv) ? *rv : CKR_OPERATION_ACTIVE);
	if (use == &b)
		p11_session_put(t, &a, CKR_OK);
	return r;
}

/* The public key object shares the private key's CKA_ID. */
mtls_err_t p11_key_public(struct p11_key *k, struct p11_pubkey *pub,
			  struct mtls_error *err)
{
	CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	CK_ATTRIBUTE tmpl[2] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_ID, k->id, k->id_len },
	};
	CK_FUNCTION_LIST *fn = k->t->m->fn;
	CK_OBJECT_HANDLE h;
	CK_ULONG n = 0;
	struct p11_session s;
	mtls_err_t r;
	CK_RV rv;

	memset(pub, 0, sizeof(*pub));
	r = p11_session_get(k->t, &s, err);
	if (r != MTLS_OK)
		return r;
	rv = fn->C_FindObjectsInit(s.h, tmpl, 2);
	if (rv == CKR_OK) {
		rv = fn->C_FindObjects(s.h, &h, 1, &n);
		(void)fn->C_FindObjectsFinal(s.h);
	}
	if (rv != CKR_OK) {
		r = p11_rv_error(err, rv, "C_FindObjects(public key)", k->uri);
		goto out;
	}
	if (n == 0) {
		r = mtls_error_set(err, MTLS_ERR_KEY_NOT_FOUND,
				   "no public key with the private key's "
				   "CKA_ID (%s)", k->uri);
		goto out;
	}
	pub->type = k->type;
	pub->bits = k->bits;
	if (k->type == P11_KEY_EC) {
		/* CKA_EC_POINT is a DER OCTET STRING holding 04||X||Y. */
		uint8_t der[sizeof(pub->ec_point) + 4];
		CK_ATTRIBUTE a[2] = {
			{ CKA_EC_PARAMS, pub->ec_params, sizeof(pub->ec_params) },
			{ CKA_EC_POINT, der, sizeof(der) },
		};
		size_t off, len;

		rv = fn->C_GetAttributeValue(s.h, h, a, 2);
		if (rv != CKR_OK) {
			r = p11_rv_error(err, rv, "C_GetAttributeValue(EC)",
					 k->uri);
			goto out;
		}
		pub->ec_params_len = a[0].ulValueLen;
		len = a[1].ulValueLen;
		if (len >= 2 && der[0] == 0x04 && der[1] < 0x80 &&
		    (size_t)der[1] + 2 == len) {
			off = 2;
		} else if (len >= 3 && der[0] == 0x04 && der[1] == 0x81 &&
			   (size_t)der[2] + 3 == len) {
			off = 3;
		} else {
			/* Some tokens return the raw point. */
			off = 0;
		}
		if (len - off > sizeof(pub->ec_point) || der[off] != 0x04) {
			r = mtls_error_set(err, MTLS_ERR_TOKEN,
					   "unexpected CKA_EC_POINT (%s)",
					   k->uri);
			goto out;
		}
		memcpy(pub->ec_point, der + off, len - off);
		pub->ec_point_len = len - off;
	} else {
		CK_ATTRIBUTE a[2] = {
			{ CKA_MODULUS, pub->modulus, sizeof(pub->modulus) },
			{ CKA_PUBLIC_EXPONENT, pub->exponent,
			  sizeof(pub->exponent) },
		};

		rv = fn->C_GetAttributeValue(s.h, h, a, 2);
		if (rv != CKR_OK) {
			r = p11_rv_error(err, rv, "C_GetAttributeValue(RSA)",
					 k->uri);
			goto out;
		}
		pub->modulus_len = a[0].ulValueLen;
		pub->exponent_len = a[1].ulValueLen;
	}
	r = MTLS_OK;
out:
	p11_session_put(k->t, &s, rv);
	return r;
}

mtls_err_t p11_key_flags(struct p11_key *k, struct p11_key_flags *f,
			 struct mtls_error *err)
{
	CK_BBOOL v[7] = { 0 };
	CK_ATTRIBUTE a[7] = {
		{ CKA_TOKEN, &v[0], 1 },	    { CKA_PRIVATE, &v[1], 1 },
		{ CKA_SENSITIVE, &v[2], 1 },	    { CKA_EXTRACTABLE, &v[3], 1 },
		{ CKA_ALWAYS_SENSITIVE, &v[4], 1 }, { CKA_NEVER_EXTRACTABLE, &v[5], 1 },
		{ CKA_SIGN, &v[6], 1 },
	};
	struct p11_session s;
	CK_OBJECT_HANDLE h;
	mtls_err_t r;
	CK_RV rv = CKR_OK;

	r = p11_session_get(k->t, &s, err);
	if (r != MTLS_OK)
		return r;
	r = key_handle(k, &s, 0, &h, err);
	if (r == MTLS_OK) {
		rv = k->t->m->fn->C_GetAttributeValue(s.h, h, a, 7);
		if (rv != CKR_OK)
			r = p11_rv_error(err, rv, "C_GetAttributeValue", k->uri);
	}
	if (r == MTLS_OK) {
		/* Only the length is asked for: even a broken token would
		 * not copy a secret into this process. */
		CK_ATTRIBUTE secret = { k->type == P11_KEY_EC ? CKA_VALUE :
							       CKA_PRIVATE_EXPONENT,
					NULL, 0 };
		CK_RV srv = k->t->m->fn->C_GetAttributeValue(s.h, h, &secret, 1);

		CK_BBOOL dec = CK_FALSE;
		CK_ATTRIBUTE d = { CKA_DECRYPT, &dec, sizeof(dec) };

		f->secret_read_rv = p11_rv_name(srv);
		f->decrypt = k->t->m->fn->C_GetAttributeValue(s.h, h, &d, 1) == CKR_OK ?
				     dec == CK_TRUE : -1;
	}
	p11_session_put(k->t, &s, rv);
	if (r != MTLS_OK)
		return r;
	f->token = v[0];
	f->private_ = v[1];
	f->sensitive = v[2];
	f->extractable = v[3];
	f->always_sensitive = v[4];
	f->never_extractable = v[5];
	f->sign = v[6];
	return MTLS_OK;
}
