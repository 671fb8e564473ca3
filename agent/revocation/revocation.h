/* Revocation from the network: a server's certificates checked after
 * every handshake (full or resumed) with the profile's methods in order:
 * the stapled OCSP answer, a query to the certificate's OCSP responder,
 * the CRL from its distribution point. Answers are kept in one cache for
 * the process (per issuer, on disk under STATE_DIR/revocation/, written
 * atomically), used until their nextUpdate bounded by the profile's
 * revocation_max_age, refreshed ahead of that in the background; one
 * fetch per URL at a time, shared by every connection waiting for it. */
#ifndef MTLS_REVOCATION_H
#define MTLS_REVOCATION_H

#include <stddef.h>
#include <stdint.h>

#include "mtls_err.h"
#include "policy.h"

#define REV_CHAIN_MAX 8

/* What the handshake left: the server's chain as it sent it (leaf first)
 * and whether wolfSSL verified a stapled "good" for the leaf. */
struct rev_peer {
	const uint8_t *der[REV_CHAIN_MAX];
	size_t len[REV_CHAIN_MAX];
	unsigned n;
	int staple_good;
};

enum rev_method_idx { REV_M_STAPLE, REV_M_OCSP, REV_M_CRL, REV_M__COUNT };
enum rev_outcome {
	REV_O_GOOD,
	REV_O_REVOKED,
	REV_O_UNKNOWN,      /* an answer that does not know the certificate */
	REV_O_FETCH_FAILED, /* no answer: nothing to ask, or no reply */
	REV_O_STALE,        /* only an answer past its freshness bound */
	REV_O_INVALID,      /* an answer that failed its checks */
	REV_O__COUNT
};
const char *rev_method_name(unsigned m);
const char *rev_outcome_name(unsigned o);

/* Opens the cache folder (created 0700; refused when it is a symlink, not
 * ours, or writable by others) and loads the answers in it, each checked
 * again; starts the refresher. Without it, answers are kept in memory
 * only and nothing is refreshed. */
mtls_err_t rev_cache_open(const char *dir, struct mtls_error *err);
void rev_cache_close(void);

/* Checks peer under profile pr at time now. MTLS_OK when every
 * certificate the profile covers is known good, or when fail-open waived
 * the lack of an answer (*waived = 1: logged by the caller, counted
 * here); MTLS_ERR_REVOKED; MTLS_ERR_REVOCATION_UNKNOWN. err says which
 * certificate and method. conn_id is for the log. */
mtls_err_t rev_check(const struct policy_profile *pr, const struct rev_peer *peer,
		     int64_t now, unsigned long conn_id, int *waived,
		     struct mtls_error *err);

/* Counters for the metrics: checks by method and outcome, fail-open
 * waivers. */
unsigned long rev_count(unsigned method, unsigned outcome);
unsigned long rev_fail_open_count(void);

/* One line per cached answer ("revocation method=... status=... age=...
 * refresh=..."), as many as fit in buf. Returns the length. */
size_t rev_cache_describe(char *buf, size_t cap, int64_t now);

#endif
