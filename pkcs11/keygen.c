/* Key pairs generated on the token: the private half is a token object that
 * is private, sensitive and never extractable, so no byte of it ever leaves. */
#include <string.h>
#include <sys/random.h>

#include "p11_internal.h"

static const uint8_t oid_p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
				    0x3d, 0x03, 0x01, 0x07 };
static const uint8_t oid_p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };

struct keygen_call {
	CK_MECHANISM *mech;
	CK_ATTRIBUTE *pub, *priv;
	CK_ULONG npub, npriv;
	int unsafe;	   /* the token made a key that could leave it */
};

/* Keeps a key only if the token says it cannot leave: some tokens
 * (ykcs11) refuse CKA_EXTRACTABLE in the template, their keys are
 * non-extractable anyway, and this is where that is checked. */
static CK_RV keygen_checked(struct p11_token *t, CK_SESSION_HANDLE s,
			    struct keygen_call *c, CK_ULONG npriv)
{
	CK_FUNCTION_LIST *fn = t->m->fn;
	CK_OBJECT_HANDLE hpub, hpriv;
	CK_BBOOL sens = CK_FALSE, extr = CK_TRUE;
	CK_ATTRIBUTE q[2] = {
		{ CKA_SENSITIVE, &sens, sizeof(sens) },
		{ CKA_EXTRACTABLE, &extr, sizeof(extr) },
	};
	CK_RV rv;

	rv = fn->C_GenerateKeyPair(s, c->mech, c->pub, c->npub, c->priv, npriv,
				   &hpub, &hpriv);
	if (rv != CKR_OK)
		return rv;
	rv = fn->C_GetAttributeValue(s, hpriv, q, 2);
	if (rv != CKR_OK || sens != CK_TRUE || extr != CK_FALSE) {
		c->unsafe = 1;
		(void)fn->C_DestroyObject(s, hpriv);
		(void)fn->C_DestroyObject(s, hpub);
		return CKR_GENERAL_ERROR;
	}
	return CKR_OK;
}

static CK_ULONG template_without(CK_ATTRIBUTE *a, CK_ULONG n,
				 CK_ATTRIBUTE_TYPE t1, CK_ATTRIBUTE_TYPE t2)
{
	CK_ULONG kept = 0;

	for (CK_ULONG i = 0; i < n; i++)
		if (a[i].type != t1 && a[i].type != t2)
			a[kept++] = a[i];
	return kept;
}

static CK_RV keygen_on(struct p11_token *t, CK_SESSION_HANDLE s, void *ctx)
{
	struct keygen_call *c = ctx;
	CK_ULONG npriv;
	CK_RV rv;

	rv = keygen_checked(t, s, c, c->npriv);
	if (rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_ATTRIBUTE_VALUE_INVALID &&
	    rv != CKR_TEMPLATE_INCONSISTENT)
		return rv;
	/* Once more without what such tokens refuse (CKA_EXTRACTABLE, and
	 * the cosmetic CKA_LABEL); the check above still holds. */
	npriv = template_without(c->priv, c->npriv, CKA_EXTRACTABLE, CKA_LABEL);
	c->npub = template_without(c->pub, c->npub, CKA_LABEL, CKA_LABEL);
	if (npriv == c->npriv)
		return rv;
	return keygen_checked(t, s, c, npriv);
}

mtls_err_t p11_keygen(struct p11_token *t, enum p11_key_type type,
		      unsigned bits, const char *label, const uint8_t *id,
		      size_t id_len, uint8_t id_out[P11_ID_MAX],
		      size_t *id_out_len, struct mtls_error *err)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG mod_bits = bits;
	CK_BYTE exp[] = { 0x01, 0x00, 0x01 };
	CK_MECHANISM mech = { 0, NULL, 0 };
	CK_ATTRIBUTE pub[10], priv[12];
	struct keygen_call call = { 0 };
	CK_ULONG npub = 0, npriv = 0;
	uint8_t new_id[8];
	size_t label_len = label != NULL ? strlen(label) : 0;
	mtls_err_t r;

	if (id == NULL || id_len == 0) {
		if (getrandom(new_id, sizeof(new_id), 0) != sizeof(new_id))
			return mtls_error_set(err, MTLS_ERR_IO, "getrandom");
		id = new_id;
		id_len = sizeof(new_id);
	}
	if (id_len > P11_ID_MAX || label_len > P11_LABEL_MAX)
		return mtls_error_set(err, MTLS_ERR_ARG, "id or label too long");

	/* The public half states no usage: tpm2-pkcs11 maps CKA_VERIFY and
	 * CKA_ENCRYPT onto the TPM key's decrypt and sign attributes and
	 * refuses a pair whose halves then disagree (CKR_GENERAL_ERROR,
	 * "attr mismatch"); every token defaults them sensibly. */
	pub[npub++] = (CK_ATTRIBUTE){ CKA_TOKEN, &yes, sizeof(yes) };
	pub[npub++] = (CK_ATTRIBUTE){ CKA_ID, (void *)id, id_len };
	priv[npriv++] = (CK_ATTRIBUTE){ CKA_TOKEN, &yes, sizeof(yes) };
	priv[npriv++] = (CK_ATTRIBUTE){ CKA_PRIVATE, &yes, sizeof(yes) };
	priv[npriv++] = (CK_ATTRIBUTE){ CKA_SENSITIVE, &yes, sizeof(yes) };
	priv[npriv++] = (CK_ATTRIBUTE){ CKA_EXTRACTABLE, &no, sizeof(no) };
	/* Least privilege: a signing key does nothing else... */
	priv[npriv++] = (CK_ATTRIBUTE){ CKA_SIGN, &yes, sizeof(yes) };
	priv[npriv++] = (CK_ATTRIBUTE){ CKA_UNWRAP, &no, sizeof(no) };
	priv[npriv++] = (CK_ATTRIBUTE){ CKA_DERIVE, &no, sizeof(no) };
	/* ...except that tpm2-pkcs11 signs with RSA through
	 * TPM2_RSA_Decrypt: its RSA keys keep the decrypt attribute (the
	 * token's default), or signing fails with "inconsistent
	 * attributes". */
	if (type == P11_KEY_EC || !t->m->rsa_signs_by_decrypt)
		priv[npriv++] = (CK_ATTRIBUTE){ CKA_DECRYPT, &no, sizeof(no) };
	priv[npriv++] = (CK_ATTRIBUTE){ CKA_ID, (void *)id, id_len };
	if (label_len > 0) {
		pub[npub++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label, label_len };
		priv[npriv++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label, label_len };
	}
	if (type == P11_KEY_EC) {
		const uint8_t *oid = bits == 384 ? oid_p384 : oid_p256;
		size_t oid_len = bits == 384 ? sizeof(oid_p384) : sizeof(oid_p256);

		if (bits != 256 && bits != 384)
			return mtls_error_set(err, MTLS_ERR_ARG,
					      "EC keys: P-256 or P-384");
		mech.mechanism = CKM_EC_KEY_PAIR_GEN;
		pub[npub++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, (void *)oid, oid_len };
	} else if (type == P11_KEY_RSA) {
		if (bits < 2048 || bits > 8192)
			return mtls_error_set(err, MTLS_ERR_ARG,
					      "RSA keys: 2048 to 8192 bits");
		mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		pub[npub++] = (CK_ATTRIBUTE){ CKA_MODULUS_BITS, &mod_bits,
					      sizeof(mod_bits) };
		pub[npub++] = (CK_ATTRIBUTE){ CKA_PUBLIC_EXPONENT, exp,
					      sizeof(exp) };
	} else {
		return mtls_error_set(err, MTLS_ERR_ARG, "unknown key type");
	}

	call.mech = &mech;
	call.pub = pub;
	call.npub = npub;
	call.priv = priv;
	call.npriv = npriv;
	r = p11_token_as_so(t, keygen_on, &call, "C_GenerateKeyPair", err);
	if (call.unsafe)
		return mtls_error_set(err, MTLS_ERR_TOKEN,
				      "the token made a key that is not "
				      "sensitive or is extractable; destroyed "
				      "it (%s)", t->uri);
	if (r != MTLS_OK)
		return r;
	if (id_out != NULL) {
		memcpy(id_out, id, id_len);
		*id_out_len = id_len;
	}
	return MTLS_OK;
}
