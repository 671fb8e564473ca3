/* Which enroller an identity uses. */
#include "enroll.h"

#include "acme.h"

mtls_err_t enroll_submit(const struct renew_env *e, const char *csr_pem,
			 const struct csr_request *names,
			 struct enroll_result *res, struct mtls_error *err)
{
	const struct cfg_identity *ci = &e->cfg->identities[e->index];

	switch (ci->renew.enroll) {
	case CFG_ENROLL_EXEC:
		return enroll_exec(&ci->renew, csr_pem, res, err);
	case CFG_ENROLL_EST:
		return enroll_est(&ci->renew, e->token, e->current, csr_pem, res,
				  err);
	case CFG_ENROLL_ACME:
		return enroll_acme(e, csr_pem, names, res, err);
	default:
		return mtls_error_set(err, MTLS_ERR_CONFIG,
				      "[identity %s] has no enroll=", ci->name);
	}
}
