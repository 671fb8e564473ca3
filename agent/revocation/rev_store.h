/* One cached revocation answer on disk: STATE_DIR/revocation/KEY.ocsp or
 * KEY.crl, 0600, written to a temporary file, synced and renamed over the
 * old one, so that a crash leaves the old answer or the new, never half.
 * The file holds the URL, the certificate's serial (OCSP), the issuer's
 * certificate and the answer as fetched; whoever loads it checks the
 * answer again against that issuer. */
#ifndef MTLS_REV_STORE_H
#define MTLS_REV_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "mtls_err.h"
#include "rev_cert.h"

#define REV_STORE_MAX (8u * 1024 * 1024 + 65536)

enum rev_kind { REV_KIND_OCSP, REV_KIND_CRL };

struct rev_record {
	enum rev_kind kind;
	char key[65];                 /* hex; the file's name without suffix */
	char url[REV_URL_MAX];
	uint8_t serial[REV_SERIAL_MAX]; /* OCSP: the certificate asked about */
	size_t serial_len;
	int64_t fetched_at;
	uint8_t *issuer;              /* DER, malloc'd */
	size_t issuer_len;
	uint8_t *answer;              /* DER, malloc'd */
	size_t answer_len;
};

/* Creates dir (0700) or checks it: a real folder of ours that no one
 * else may write. */
mtls_err_t rev_store_dir(const char *dir, struct mtls_error *err);
mtls_err_t rev_store_write(const char *dir, const struct rev_record *r,
			   struct mtls_error *err);
/* Reads dir/name (a regular file of ours, not a symlink, bounded). The
 * buffers of r are malloc'd: rev_record_free. */
mtls_err_t rev_store_read(const char *dir, const char *name,
			  struct rev_record *r, struct mtls_error *err);
void rev_record_free(struct rev_record *r);

#endif
