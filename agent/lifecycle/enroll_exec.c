/* exec enroller: any CA with a command line (openssl ca, step, vault). */
#include "enroll.h"

#include <stdlib.h>
#include <string.h>

#include "exec_run.h"

mtls_err_t enroll_exec(const struct cfg_renew *r, const char *csr_pem,
		       struct enroll_result *res, struct mtls_error *err)
{
	char *argv[] = { "/bin/sh", "-c", r->exec, NULL };
	char *out = NULL;
	mtls_err_t ret;

	memset(res, 0, sizeof(*res));
	ret = exec_run("exec enroller", argv, csr_pem, r->exec_timeout_ms,
		       ENROLL_ANSWER_MAX, &out, err);
	if (ret != MTLS_OK)
		return ret;
	if (strstr(out, "-----BEGIN CERTIFICATE-----") == NULL) {
		free(out);
		return mtls_error_set(err, MTLS_ERR_CERT, "exec enroller printed "
				      "no PEM certificate");
	}
	res->chain_pem = out;
	return MTLS_OK;
}
