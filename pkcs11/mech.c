/* What a token can do: its mechanism list and each mechanism's info, read
 * from its slot and cached per token, and what that means for a key: can
 * it be signed with by CKM_ECDSA, CKM_RSA_PKCS, CKM_RSA_PKCS_PSS?
 *
 * The cache lives in the token (under its lock) and holds the generation
 * it was read at: token.c bumps the generation whenever it drops the
 * sessions (token removed, sessions lost, lock), and the next question
 * here reads the list again from the slot the token was found in then. A
 * card pulled out and another put in under the same URI is asked anew.
 *
 * A token that does not list a mechanism may still do it (and one that
 * lists it may refuse a key): the list is what the token says, where it
 * says no C_SignInit is asked, and C_Sign has the last word. Where the list
 * is missing or ambiguous the answers here lean towards "can", so that
 * nothing that used to work stops working. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11_internal.h"

struct mech_name {
	CK_MECHANISM_TYPE type;
	const char *name;
};

#define M(x) { x, #x }
static const struct mech_name mech_names[] = {
	M(CKM_RSA_PKCS_KEY_PAIR_GEN),
	M(CKM_RSA_PKCS),
	M(CKM_RSA_9796),
	M(CKM_RSA_X_509),
	M(CKM_MD5_RSA_PKCS),
	M(CKM_SHA1_RSA_PKCS),
	M(CKM_RSA_PKCS_OAEP),
	M(CKM_RSA_X9_31_KEY_PAIR_GEN),
	M(CKM_RSA_X9_31),
	M(CKM_RSA_PKCS_PSS),
	M(CKM_SHA1_RSA_PKCS_PSS),
	M(CKM_DSA_KEY_PAIR_GEN),
	M(CKM_DSA),
	M(CKM_DSA_SHA1),
	M(CKM_DH_PKCS_KEY_PAIR_GEN),
	M(CKM_DH_PKCS_DERIVE),
	M(CKM_SHA256_RSA_PKCS),
	M(CKM_SHA384_RSA_PKCS),
	M(CKM_SHA512_RSA_PKCS),
	M(CKM_SHA256_RSA_PKCS_PSS),
	M(CKM_SHA384_RSA_PKCS_PSS),
	M(CKM_SHA512_RSA_PKCS_PSS),
	M(CKM_SHA224_RSA_PKCS),
	M(CKM_SHA224_RSA_PKCS_PSS),
	M(CKM_DES_KEY_GEN),
	M(CKM_DES_ECB),
	M(CKM_DES_CBC),
	M(CKM_DES_CBC_PAD),
	M(CKM_DES2_KEY_GEN),
	M(CKM_DES3_KEY_GEN),
	M(CKM_DES3_ECB),
	M(CKM_DES3_CBC),
	M(CKM_DES3_MAC),
	M(CKM_DES3_CBC_PAD),
	M(CKM_DES3_CMAC),
	M(CKM_MD5),
	M(CKM_MD5_HMAC),
	M(CKM_SHA_1),
	M(CKM_SHA_1_HMAC),
	M(CKM_SHA224),
	M(CKM_SHA224_HMAC),
	M(CKM_SHA256),
	M(CKM_SHA256_HMAC),
	M(CKM_SHA384),
	M(CKM_SHA384_HMAC),
	M(CKM_SHA512),
	M(CKM_SHA512_HMAC),
	M(CKM_GENERIC_SECRET_KEY_GEN),
	M(CKM_CONCATENATE_BASE_AND_KEY),
	M(CKM_CONCATENATE_BASE_AND_DATA),
	M(CKM_CONCATENATE_DATA_AND_BASE),
	M(CKM_XOR_BASE_AND_DATA),
	M(CKM_TLS_PRE_MASTER_KEY_GEN),
	M(CKM_TLS_MASTER_KEY_DERIVE),
	M(CKM_TLS_KEY_AND_MAC_DERIVE),
	M(CKM_TLS12_MASTER_KEY_DERIVE),
	M(CKM_TLS12_KEY_AND_MAC_DERIVE),
	M(CKM_TLS_PRF),
	M(CKM_EC_KEY_PAIR_GEN),
	M(CKM_ECDSA),
	M(CKM_ECDSA_SHA1),
	M(CKM_ECDSA_SHA224),
	M(CKM_ECDSA_SHA256),
	M(CKM_ECDSA_SHA384),
	M(CKM_ECDSA_SHA512),
	M(CKM_ECDH1_DERIVE),
	M(CKM_ECDH1_COFACTOR_DERIVE),
	M(CKM_EC_EDWARDS_KEY_PAIR_GEN),
	M(CKM_EDDSA),
	M(CKM_AES_KEY_GEN),
	M(CKM_AES_ECB),
	M(CKM_AES_CBC),
	M(CKM_AES_MAC),
	M(CKM_AES_MAC_GENERAL),
	M(CKM_AES_CBC_PAD),
	M(CKM_AES_CTR),
	M(CKM_AES_GCM),
	M(CKM_AES_CCM),
	M(CKM_AES_CMAC),
	M(CKM_AES_CMAC_GENERAL),
	M(CKM_AES_KEY_WRAP),
	M(CKM_AES_KEY_WRAP_PAD),
	M(CKM_AES_ECB_ENCRYPT_DATA),
	M(CKM_AES_CBC_ENCRYPT_DATA),
	M(CKM_DES_ECB_ENCRYPT_DATA),
	M(CKM_DES_CBC_ENCRYPT_DATA),
	M(CKM_DES3_ECB_ENCRYPT_DATA),
	M(CKM_DES3_CBC_ENCRYPT_DATA),
	M(CKM_PKCS5_PBKD2),
};
#undef M

const char *p11_mech_name(unsigned long type)
{
	static __thread char unknown[32];

	for (size_t i = 0; i < sizeof(mech_names) / sizeof(mech_names[0]); i++)
		if (mech_names[i].type == type)
			return mech_names[i].name;
	snprintf(unknown, sizeof(unknown), "CKM_0x%08lx", type);
	return unknown;
}

/* Appends to buf (len bytes, used so far: *used; may pass len: then
 * nothing more is written). */
static void append(char *buf, size_t len, size_t *used, const char *sep,
		   const char *word)
{
	*used += (size_t)snprintf(buf + *used, *used < len ? len - *used : 0,
				  "%s%s", *used ? sep : "", word);
}

void p11_mech_flags_text(unsigned long flags, char *buf, size_t len)
{
	static const struct {
		unsigned long flag;
		const char *word;
	} words[] = {
		{ CKF_HW, "hw" },
		{ CKF_ENCRYPT, "encrypt" },
		{ CKF_DECRYPT, "decrypt" },
		{ CKF_DIGEST, "digest" },
		{ CKF_SIGN, "sign" },
		{ CKF_SIGN_RECOVER, "sign_recover" },
		{ CKF_VERIFY, "verify" },
		{ CKF_VERIFY_RECOVER, "verify_recover" },
		{ CKF_GENERATE, "generate" },
		{ CKF_GENERATE_KEY_PAIR, "generate_key_pair" },
		{ CKF_WRAP, "wrap" },
		{ CKF_UNWRAP, "unwrap" },
		{ CKF_DERIVE, "derive" },
		{ CKF_EC_F_P, "ec_f_p" },
		{ CKF_EC_NAMEDCURVE, "ec_namedcurve" },
		{ CKF_EC_UNCOMPRESS, "ec_uncompress" },
		{ CKF_EC_COMPRESS, "ec_compress" },
	};
	size_t used = 0;
	unsigned long rest = flags;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (!(flags & words[i].flag))
			continue;
		rest &= ~words[i].flag;
		append(buf, len, &used, " ", words[i].word);
	}
	if (rest != 0) {
		char hex[24];

		snprintf(hex, sizeof(hex), "0x%lx", rest);
		append(buf, len, &used, " ", hex);
	}
	if (used >= len && len > 4)
		memcpy(buf + len - 4, "...", 4);
}

static const CK_MECHANISM_TYPE sign_types[3] = {
	[P11_SIGN_ECDSA] = CKM_ECDSA,
	[P11_SIGN_RSA_PKCS] = CKM_RSA_PKCS,
	[P11_SIGN_RSA_PSS] = CKM_RSA_PKCS_PSS,
};

const char *p11_sign_mech_name(enum p11_sign_mech mech)
{
	return (unsigned)mech < 3 ? p11_mech_name(sign_types[mech]) : "CKM_?";
}

/* PKCS#11 2.40 gives ulMinKeySize/ulMaxKeySize in bits for RSA and EC
 * (older versions and some tokens use bytes, e.g. for EC the field size
 * in bytes). The reading in bytes is taken too, but only when the range
 * read in bits could not hold any key this project signs with (RSA below
 * 2048 bits, EC below 256): then bits cannot be what the token meant. A
 * range of 0..0 says nothing, and a maximum of 0 no upper bound: both
 * are taken as "any size". Being lenient here costs at most a clear
 * C_Sign error later; being strict would refuse keys that work. */
int p11_mech_key_size_ok(enum p11_key_type type, unsigned bits,
			 unsigned long min, unsigned long max)
{
	unsigned long bytes = (bits + 7) / 8;
	unsigned long smallest = type == P11_KEY_RSA ? 2048 : 256;

	if (max == 0)
		return bits >= min || bytes >= min;
	if (bits >= min && bits <= max)
		return 1;
	return max < smallest && bytes >= min && bytes <= max;
}

/* Reads the mechanism list and each one's info from t's slot; lock held
 * (a few calls answered from the module's memory for the tokens seen so
 * far; the list is read once per token generation). */
static mtls_err_t mech_load_locked(struct p11_token *t, struct mtls_error *err)
{
	struct p11_mech_cache *c = &t->mech;
	CK_FUNCTION_LIST *fn = t->m->fn;
	CK_MECHANISM_TYPE *list = NULL;
	CK_ULONG n = 0;
	CK_RV rv;

	memset(c->sign, 0, sizeof(c->sign));
	memset(c->sign_listed, 0, sizeof(c->sign_listed));
	c->n = 0;
	/* The size, then the list; a token that changed in between answers
	 * CKR_BUFFER_TOO_SMALL, and is asked again. */
	for (int tries = 0; tries < 3; tries++) {
		rv = fn->C_GetMechanismList(t->slot, NULL, &n);
		if (rv != CKR_OK)
			break;
		free(list);
		/* One more than asked for: p11-kit-client 0.24.1 (Debian
		 * 12) removes mechanisms its RPC cannot carry with a memmove
		 * of one element too many (mechanism_list_purge in
		 * rpc-client.c), reading past the end of the list (ASan). */
		list = calloc(n + 1, sizeof(*list));
		if (list == NULL)
			return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		rv = fn->C_GetMechanismList(t->slot, list, &n);
		if (rv != CKR_BUFFER_TOO_SMALL)
			break;
	}
	if (p11_rv_token_lost(rv)) {
		free(list);
		return p11_rv_error(err, rv, "C_GetMechanismList", t->uri);
	}
	c->list_rv = rv;
	if (rv != CKR_OK) {
		/* No list (e.g. CKR_FUNCTION_NOT_SUPPORTED): not an error,
		 * p11_key_sign_caps says so and assumes the mechanisms. */
		p11_rv_count(rv);
		n = 0;
	}
	for (CK_ULONG i = 0; i < n; i++) {
		struct p11_mech m = { .type = list[i] };
		CK_MECHANISM_INFO info;

		rv = fn->C_GetMechanismInfo(t->slot, list[i], &info);
		if (p11_rv_token_lost(rv)) {
			free(list);
			return p11_rv_error(err, rv, "C_GetMechanismInfo",
					    t->uri);
		}
		m.info_rv = rv;
		if (rv == CKR_OK) {
			m.min_key = info.ulMinKeySize;
			m.max_key = info.ulMaxKeySize;
			m.flags = info.flags;
		}
		if (c->n < P11_MECH_MAX)
			c->list[c->n] = m;
		c->n++;
		for (int s = 0; s < 3; s++)
			if (list[i] == sign_types[s]) {
				c->sign[s] = m;
				c->sign_listed[s] = 1;
			}
	}
	free(list);
	c->loaded = 1;
	c->gen = t->generation;
	return MTLS_OK;
}

/* Returns with t->lock held and t->mech current, or unlocked with an
 * error. The token is looked up (and logged in) first if it was lost. */
static mtls_err_t mech_current(struct p11_token *t, struct mtls_error *err)
{
	struct p11_session s;
	mtls_err_t r;

	pthread_mutex_lock(&t->lock);
	if (t->present && t->mech.loaded && t->mech.gen == t->generation)
		return MTLS_OK;
	pthread_mutex_unlock(&t->lock);
	/* A session finds the token (and its slot) again if it was lost. */
	r = p11_session_get(t, &s, err);
	if (r != MTLS_OK)
		return r;
	p11_session_put(t, &s, CKR_OK);
	pthread_mutex_lock(&t->lock);
	if (!t->present) {
		pthread_mutex_unlock(&t->lock);
		return mtls_error_set(err, MTLS_ERR_TOKEN_ABSENT,
				      "token went away while its mechanisms "
				      "were asked for (%s)", t->uri);
	}
	if (t->mech.loaded && t->mech.gen == t->generation)
		return MTLS_OK;
	r = mech_load_locked(t, err);
	if (r != MTLS_OK)
		pthread_mutex_unlock(&t->lock);
	return r;
}

mtls_err_t p11_token_mechanisms(struct p11_token *t, struct p11_mech *out,
				size_t max, size_t *n, struct mtls_error *err)
{
	mtls_err_t r = mech_current(t, err);

	if (r != MTLS_OK)
		return r;
	*n = t->mech.n;
	if (max > t->mech.n)
		max = t->mech.n;
	if (max > P11_MECH_MAX)
		max = P11_MECH_MAX;
	memcpy(out, t->mech.list, max * sizeof(*out));
	pthread_mutex_unlock(&t->lock);
	return MTLS_OK;
}

mtls_err_t p11_key_sign_caps(struct p11_key *k, struct p11_sign_caps *caps,
			     struct mtls_error *err)
{
	struct p11_token *t = k->t;
	int ask[3] = { 0 };
	mtls_err_t r;

	memset(caps, 0, sizeof(*caps));
	r = mech_current(t, err);
	if (r != MTLS_OK)
		return r;
	caps->listed = t->mech.list_rv == CKR_OK;
	caps->list_rv = t->mech.list_rv;
	for (int s = 0; s < 3; s++) {
		const struct p11_mech *m = &t->mech.sign[s];
		int for_ec = s == P11_SIGN_ECDSA;
		int fits_type = for_ec == (k->type == P11_KEY_EC);
		char *why = caps->why[s];
		size_t len = sizeof(caps->why[s]);

		ask[s] = fits_type && caps->listed;
		if (!fits_type) {
			snprintf(why, len, "not for %s keys",
				 k->type == P11_KEY_EC ? "EC" : "RSA");
		} else if (!caps->listed) {
			/* Nothing to go by: C_Sign will tell. */
			caps->can |= 1u << s;
		} else if (!t->mech.sign_listed[s]) {
			snprintf(why, len, "not in the token's mechanism list");
		} else if (m->info_rv != CKR_OK) {
			snprintf(why, len, "C_GetMechanismInfo: %s",
				 p11_rv_name(m->info_rv));
		} else if (!(m->flags & CKF_SIGN)) {
			snprintf(why, len, "listed without CKF_SIGN");
		} else if (!p11_mech_key_size_ok(k->type, k->bits, m->min_key,
						 m->max_key)) {
			snprintf(why, len, "key of %u bits outside the token's "
				 "%lu..%lu", k->bits, m->min_key, m->max_key);
		} else {
			caps->can |= 1u << s;
			ask[s] = 0;
		}
	}
	pthread_mutex_unlock(&t->lock);
	/* Lists are not always complete (tpm2-pkcs11 1.9 signs with
	 * CKM_RSA_PKCS_PSS but does not list it): where the list says no,
	 * the token's own C_SignInit with this key has the last word. */
	for (int s = 0; s < 3; s++) {
		size_t used = strlen(caps->why[s]);
		CK_RV rv;

		if (!ask[s])
			continue;
		r = p11_key_sign_init_probe(k, sign_types[s], &rv, err);
		if (r != MTLS_OK)
			return r;
		if (rv == CKR_OK) {
			caps->can |= 1u << s;
			snprintf(caps->why[s] + used, sizeof(caps->why[s]) - used,
				 ", but C_SignInit accepts it");
		} else {
			snprintf(caps->why[s] + used, sizeof(caps->why[s]) - used,
				 "; C_SignInit: %s", p11_rv_name(rv));
		}
	}
	return MTLS_OK;
}
