/* mtlsctl keygen, csr, import-cert, key-info: the token tooling. They act
 * on an identity of the configuration, directly on its token. */
#include <wolfssl/options.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/ssl.h>

#include "csr.h"
#include "identity.h"
#include "mtlsctl.h"
#include "p11.h"
#include "renew_state.h"
#include "sig_plan.h"

/* An identity's token, opened and logged in. */
struct ctl_id_token {
	struct ctl_token tok;
	const struct cfg_identity *id;
};

static void token_close(struct ctl_id_token *ct)
{
	ctl_token_close(&ct->tok);
}

static int token_open(struct ctl *ctl, const char *identity,
		      struct ctl_id_token *ct, struct mtls_error *err)
{
	int i;

	memset(ct, 0, sizeof(*ct));
	if (ctl_load_config(ctl) != 0)
		return -1;
	i = config_find_identity(ctl->cfg, identity);
	if (i < 0) {
		mtls_error_set(err, MTLS_ERR_CONFIG, "%s: no [identity %s]",
			       ctl->config_path, identity);
		ctl_fail(err);
		return -1;
	}
	ct->id = &ctl->cfg->identities[i];
	if (ctl_token_open(ctl, ct->id, &ct->tok, err) != 0 ||
	    p11_token_login(ct->tok.t, err) != MTLS_OK) {
		token_close(ct);
		ctl_fail(err);
		return -1;
	}
	return 0;
}

/* Reads object= and id= of a pkcs11: URI (percent-decoded) for keygen. */
static int uri_value(const char *uri, const char *attr, uint8_t *out,
		     size_t max, size_t *len)
{
	const char *p = uri + strlen("pkcs11:");
	size_t alen = strlen(attr);

	*len = 0;
	while (*p != '\0' && *p != '?') {
		size_t seg = strcspn(p, ";?");

		if (seg > alen && strncmp(p, attr, alen) == 0 && p[alen] == '=') {
			const char *v = p + alen + 1, *end = p + seg;

			while (v < end) {
				unsigned hex;

				if (*len >= max)
					return -1;
				if (*v == '%' && end - v >= 3 &&
				    sscanf(v + 1, "%2x", &hex) == 1) {
					out[(*len)++] = (uint8_t)hex;
					v += 3;
				} else {
					out[(*len)++] = (uint8_t)*v++;
				}
			}
			return 1;
		}
		p += seg;
		if (*p == ';')
			p++;
	}
	return 0;
}

int ctl_keygen(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "acme-account", no_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 },
	};
	const char *type = "ec-p256";
	struct mtls_error err = { 0 };
	struct ctl_id_token ct;
	struct p11_key *existing = NULL;
	enum p11_key_type kt;
	unsigned bits;
	uint8_t label[P11_LABEL_MAX + 1], id[P11_ID_MAX], out_id[P11_ID_MAX];
	size_t label_len, id_len, out_id_len;
	int opt, has_label, has_id, acme = 0;
	const char *key_uri;
	mtls_err_t r;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
		if (opt == 'A')
			acme = 1;
		else if (opt == 't')
			type = optarg;
		else
			return 2;
	}
	if (optind + 1 != argc)
		return ctl_usage("keygen");
	if (strcmp(type, "ec-p256") == 0) {
		kt = P11_KEY_EC;
		bits = 256;
	} else if (strcmp(type, "ec-p384") == 0) {
		kt = P11_KEY_EC;
		bits = 384;
	} else if (strcmp(type, "rsa-2048") == 0) {
		kt = P11_KEY_RSA;
		bits = 2048;
	} else if (strcmp(type, "rsa-3072") == 0) {
		kt = P11_KEY_RSA;
		bits = 3072;
	} else {
		fprintf(stderr, "mtlsctl: --type: ec-p256, ec-p384, rsa-2048 "
				"or rsa-3072\n");
		return 2;
	}
	if (acme && kt != P11_KEY_EC) {
		fprintf(stderr, "mtlsctl: an ACME account key is EC (ES256, "
				"ES384): --type ec-p256 or ec-p384\n");
		return 2;
	}
	if (token_open(ctl, argv[optind], &ct, &err) != 0)
		return 1;
	/* --acme-account: the key that signs the identity's ACME requests,
	 * on the same token, so the account cannot be copied either. */
	key_uri = acme ? ct.id->renew.acme_account_key : ct.id->key;
	if (key_uri == NULL) {
		mtls_error_set(&err, MTLS_ERR_CONFIG, "[identity %s] has no "
			       "acme_account_key=", ct.id->name);
		goto fail;
	}
	has_label = uri_value(key_uri, "object", label, P11_LABEL_MAX,
			      &label_len);
	has_id = uri_value(key_uri, "id", id, sizeof(id), &id_len);
	if (has_label < 0 || has_id < 0 || (has_label == 0 && has_id == 0)) {
		mtls_error_set(&err, MTLS_ERR_URI,
			       "[identity %s] %s= needs object= or id= "
			       "(bounded lengths) to name the new key",
			       ct.id->name, acme ? "acme_account_key" : "key");
		goto fail;
	}
	label[label_len] = '\0';
	/* Never add a second key under the same name: lookups would become
	 * ambiguous. */
	r = p11_key_open(ct.tok.t, key_uri, &existing, &err);
	if (r == MTLS_OK) {
		p11_key_close(existing);
		mtls_error_set(&err, MTLS_ERR_AMBIGUOUS,
			       "a key matching %s already exists",
			       p11_token_uri(ct.tok.t));
		goto fail;
	}
	if (r != MTLS_ERR_KEY_NOT_FOUND)
		goto fail;
	r = p11_keygen(ct.tok.t, kt, bits, has_label ? (char *)label : NULL,
		       has_id ? id : NULL, has_id ? id_len : 0, out_id,
		       &out_id_len, &err);
	if (r != MTLS_OK)
		goto fail;
	printf("generated %s %skey for identity %s, id=", type,
	       acme ? "ACME account " : "", ct.id->name);
	for (size_t i = 0; i < out_id_len; i++)
		printf("%02x", out_id[i]);
	printf("\n");
	token_close(&ct);
	return 0;
fail:
	token_close(&ct);
	return ctl_fail(&err);
}

int ctl_csr(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "subject", required_argument, NULL, 's' },
		{ "san", required_argument, NULL, 'a' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	struct csr_request req = { 0 };
	struct mtls_error err = { 0 };
	struct ctl_id_token ct;
	struct p11_key *key = NULL;
	const char *out = NULL;
	char *pem = NULL;
	int opt, rc = 1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:a:o:", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			req.subject = optarg;
			break;
		case 'a':
			if (req.n_sans >= CSR_MAX_SANS) {
				fprintf(stderr, "mtlsctl: at most %d SANs\n",
					CSR_MAX_SANS);
				return 2;
			}
			req.sans[req.n_sans++] = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		default:
			return 2;
		}
	}
	if (optind + 1 != argc || req.subject == NULL)
		return ctl_usage("csr");
	if (token_open(ctl, argv[optind], &ct, &err) != 0)
		return 1;
	if (p11_key_open(ct.tok.t, ct.id->key, &key, &err) != MTLS_OK ||
	    csr_make(key, &req, &pem, &err) != MTLS_OK) {
		ctl_fail(&err);
		goto out;
	}
	if (out == NULL) {
		fputs(pem, stdout);
	} else {
		FILE *f = fopen(out, "we");

		if (f == NULL || fputs(pem, f) < 0 || fclose(f) != 0) {
			fprintf(stderr, "mtlsctl: %s: cannot write\n", out);
			goto out;
		}
	}
	rc = 0;
out:
	free(pem);
	p11_key_close(key);
	token_close(&ct);
	return rc;
}

int ctl_import_cert(struct ctl *ctl, int argc, char **argv)
{
	struct mtls_error err = { 0 };
	struct ctl_id_token ct;
	struct identity *id = NULL;
	WOLFSSL_X509 *x = NULL;
	unsigned char *subj = NULL;
	uint8_t key_id[P11_ID_MAX];
	size_t key_id_len;
	int subj_len, rc = 1;
	const char *label_uri;

	if (argc != 3)
		return ctl_usage("import-cert");
	if (token_open(ctl, argv[1], &ct, &err) != 0)
		return 1;
	/* Loading it as the identity checks that the certificate belongs
	 * to the key on the token. */
	if (identity_load(ct.id->name, ct.tok.t, ct.id->key, argv[2], NULL, &id,
			  &err) != MTLS_OK) {
		ctl_fail(&err);
		goto out;
	}
	x = wolfSSL_X509_d2i(NULL, id->chain_der[0], (int)id->chain_len[0]);
	subj_len = x ? wolfSSL_i2d_X509_NAME(wolfSSL_X509_get_subject_name(x),
					     &subj) : -1;
	if (subj_len <= 0) {
		fprintf(stderr, "mtlsctl: %s: no subject\n", argv[2]);
		goto out;
	}
	key_id_len = p11_key_id(id->key, key_id);
	label_uri = strncmp(ct.id->cert, "pkcs11:", 7) == 0 ? ct.id->cert :
							       ct.id->key;
	if (p11_cert_store(ct.tok.t, id->chain_der[0], id->chain_len[0], subj,
			   (size_t)subj_len, label_uri, key_id, key_id_len,
			   &err) != MTLS_OK) {
		ctl_fail(&err);
		goto out;
	}
	printf("stored certificate \"%s\" on the token beside key %s\n",
	       id->subject, p11_key_uri(id->key));
	rc = 0;
out:
	free(subj);
	wolfSSL_X509_free(x);
	identity_free(id);
	token_close(&ct);
	return rc;
}

/* What the token can sign with the key, the TLS versions and schemes that
 * leaves (as the agent would use them), and every mechanism it has. */
static int print_mechanisms(struct p11_token *t, struct p11_key *key,
			    struct mtls_error *err)
{
	static struct p11_mech list[256];
	struct p11_sign_caps caps;
	struct tls_sig_plan plan;
	char text[512];
	size_t n;

	if (p11_key_sign_caps(key, &caps, err) != MTLS_OK ||
	    p11_token_mechanisms(t, list,
				 sizeof(list) / sizeof(list[0]), &n,
				 err) != MTLS_OK)
		return -1;
	for (int m = P11_SIGN_ECDSA; m <= P11_SIGN_RSA_PSS; m++) {
		if ((m == P11_SIGN_ECDSA) != (p11_key_type(key) == P11_KEY_EC))
			continue;
		printf("sign %s: %s%s%s\n", p11_sign_mech_name(m),
		       (caps.can >> m) & 1 ? "yes" : "no",
		       caps.why[m][0] ? ", " : "", caps.why[m]);
	}
	tls_sig_plan_make(p11_key_type(key), p11_key_bits(key), caps.can,
			  &plan);
	printf("tls: %s\n", !plan.usable ? "none" :
	       plan.min_tls == plan.max_tls ?
	       (plan.max_tls == 13 ? "1.3" : "1.2") : "1.2 1.3");
	printf("tls1.3_schemes: %s\n",
	       tls_schemes_text(plan.schemes13, text, sizeof(text)));
	printf("tls1.2_schemes: %s\n",
	       tls_schemes_text(plan.schemes12, text, sizeof(text)));
	if (plan.why[0] != '\0')
		printf("tls_limit: %s\n", plan.why);
	if (!caps.listed)
		printf("mechanisms: none listed (C_GetMechanismList: %s); "
		       "signing mechanisms assumed\n",
		       p11_rv_name(caps.list_rv));
	else
		printf("mechanisms: %zu\n", n);
	for (size_t i = 0; i < n && i < sizeof(list) / sizeof(list[0]); i++) {
		if (list[i].info_rv != 0) {
			printf("  %s (C_GetMechanismInfo: %s)\n",
			       p11_mech_name(list[i].type),
			       p11_rv_name(list[i].info_rv));
			continue;
		}
		p11_mech_flags_text(list[i].flags, text, sizeof(text));
		printf("  %s %lu..%lu %s\n", p11_mech_name(list[i].type),
		       list[i].min_key, list[i].max_key, text);
	}
	return 0;
}

int ctl_key_info(struct ctl *ctl, int argc, char **argv)
{
	struct mtls_error err = { 0 };
	struct ctl_id_token ct;
	struct p11_key *key = NULL;
	struct p11_key_flags f;
	uint8_t id[P11_ID_MAX];
	size_t id_len;
	char key_uri[1024], cert_uri[1024], chain[1024];
	int rc = 1;

	if (argc != 2)
		return ctl_usage("key-info");
	if (token_open(ctl, argv[1], &ct, &err) != 0)
		return 1;
	{
		/* The key in service: after a renewal, the generation's. */
		struct renew_state st;
		struct mtls_error ignored;
		int idx = config_find_identity(ctl->cfg, argv[1]);

		if (renew_state_load(ctl->cfg->agent.state_dir, argv[1], &st,
				     &ignored) != MTLS_OK)
			memset(&st, 0, sizeof(st));
		renew_identity_source(ctl->cfg, (unsigned)idx, &st, key_uri,
				      cert_uri, chain, sizeof(key_uri));
	}
	if (p11_key_open(ct.tok.t, key_uri, &key, &err) != MTLS_OK ||
	    p11_key_flags(key, &f, &err) != MTLS_OK) {
		ctl_fail(&err);
		goto out;
	}
	id_len = p11_key_id(key, id);
	printf("key: %s\ntype: %s-%u\nid: ", p11_key_uri(key),
	       p11_key_type(key) == P11_KEY_EC ? "ec" : "rsa",
	       p11_key_bits(key));
	for (size_t i = 0; i < id_len; i++)
		printf("%02x", id[i]);
	printf("\ntoken: %s\nprivate: %s\nsensitive: %s\nextractable: %s\n"
	       "always_sensitive: %s\nnever_extractable: %s\n"
	       "secret_value_read: %s\nalways_authenticate: %s\n"
	       "sign: %s\ndecrypt: %s\n",
	       f.token ? "yes" : "no", f.private_ ? "yes" : "no",
	       f.sensitive ? "yes" : "no", f.extractable ? "yes" : "no",
	       f.always_sensitive ? "yes" : "no",
	       f.never_extractable ? "yes" : "no", f.secret_read_rv,
	       p11_key_always_authenticate(key) ? "yes (a PIN per signature)" :
						  "no",
	       f.sign ? "yes" : "no",
	       f.decrypt < 0 ? "unknown" : f.decrypt ? "yes" : "no");
	if (print_mechanisms(ct.tok.t, key, &err) != 0) {
		ctl_fail(&err);
		goto out;
	}
	rc = 0;
out:
	p11_key_close(key);
	token_close(&ct);
	return rc;
}
