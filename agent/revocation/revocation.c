#include <wolfssl/options.h>

#include "revocation.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/sha.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "crl_msg.h"
#include "http_fetch.h"
#include "mtls_log.h"
#include "ocsp_msg.h"
#include "rev_store.h"

#define REV_ENTRIES_MAX 512
#define REV_OCSP_ANSWER_MAX (64u * 1024)
#define REV_CRL_MAX (8u * 1024 * 1024)
#define REV_SKEW 300          /* seconds a thisUpdate may be ahead of us */
#define REV_MIN_REFRESH 5     /* seconds between two fetches of one answer */
#define REV_RETRY 30          /* seconds after a failed background fetch */
#define REV_IDLE (24 * 3600)  /* answers nobody used for this long are not
				 refreshed */
#define REV_REFRESHERS 4      /* background fetches at once */
#define REV_ANCHORS_MAX 256
#define REV_ANCHOR_FILES 8

/* One cached answer: an OCSP answer for one certificate, or a CRL for one
 * issuer. Guarded by C.lock; issuer and answer change only while the
 * entry is not fetching, by the thread that fetched. */
struct entry {
	enum rev_kind kind;
	char key[65];
	char url[REV_URL_MAX];
	uint8_t serial[REV_SERIAL_MAX];
	size_t serial_len;
	struct ocsp_certid id;
	uint8_t *issuer;
	size_t issuer_len;
	struct rev_cert ic;     /* into issuer */
	uint8_t *answer;
	size_t answer_len;
	struct crl_info ci;     /* into answer */
	int have;               /* an answer that passed its checks */
	enum ocsp_cert_status status;
	int reason;
	int64_t this_update, next_update, fetched_at;
	int64_t last_used, refresh_at, retry_at;
	int fetching;
	int allow_local;        /* of the profile that used it last */
	unsigned timeout_ms;
	uint32_t max_age;
	enum rev_outcome last_outcome;
	char last_error[200];
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t fetched; /* a fetch finished */
	pthread_cond_t wake;    /* the refresher has work or must stop */
	struct entry *e[REV_ENTRIES_MAX];
	unsigned n;
	char dir[1024];         /* empty: memory only */
	pthread_t refresher;
	int running, stop;
	unsigned refreshing;    /* background fetches under way */
} C = { .lock = PTHREAD_MUTEX_INITIALIZER,
	.fetched = PTHREAD_COND_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER };

static atomic_ulong counts[REV_M__COUNT][REV_O__COUNT];
static atomic_ulong fail_open;

static const char *const method_names[REV_M__COUNT] = { "staple", "ocsp", "crl" };
static const char *const outcome_names[REV_O__COUNT] = {
	"good", "revoked", "unknown", "fetch_failed", "stale", "invalid"
};

const char *rev_method_name(unsigned m)
{
	return m < REV_M__COUNT ? method_names[m] : "?";
}

const char *rev_outcome_name(unsigned o)
{
	return o < REV_O__COUNT ? outcome_names[o] : "?";
}

unsigned long rev_count(unsigned m, unsigned o)
{
	return m < REV_M__COUNT && o < REV_O__COUNT ? atomic_load(&counts[m][o]) : 0;
}

unsigned long rev_fail_open_count(void)
{
	return atomic_load(&fail_open);
}

static void count(unsigned m, enum rev_outcome o)
{
	atomic_fetch_add(&counts[m][o], 1);
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
	out[2 * n] = '\0';
}

/* The cache key: SHA-256 over what names the answer. */
static int make_key(enum rev_kind k, const char *url, const uint8_t *a,
		    size_t a_len, char out[65])
{
	wc_Sha256 h;
	uint8_t d[WC_SHA256_DIGEST_SIZE];
	uint8_t kind = (uint8_t)k;

	if (wc_InitSha256(&h) != 0)
		return -1;
	if (wc_Sha256Update(&h, &kind, 1) != 0 ||
	    wc_Sha256Update(&h, (const uint8_t *)url, (word32)strlen(url) + 1) != 0 ||
	    wc_Sha256Update(&h, a, (word32)a_len) != 0 ||
	    wc_Sha256Final(&h, d) != 0) {
		wc_Sha256Free(&h);
		return -1;
	}
	wc_Sha256Free(&h);
	hex(d, sizeof(d), out);
	return 0;
}

static int certid_key(const char *url, const struct ocsp_certid *id, char out[65])
{
	uint8_t b[40 + REV_SERIAL_MAX];

	memcpy(b, id->name_hash, 20);
	memcpy(b + 20, id->key_hash, 20);
	memcpy(b + 40, id->serial, id->serial_len);
	return make_key(REV_KIND_OCSP, url, b, 40 + id->serial_len, out);
}

static int crl_key(const char *url, const struct rev_cert *issuer, char out[65])
{
	uint8_t kh[WC_SHA_DIGEST_SIZE];

	if (wc_ShaHash(issuer->key.p, (word32)issuer->key.len, kh) != 0)
		return -1;
	return make_key(REV_KIND_CRL, url, kh, sizeof(kh), out);
}

/* The CertID of the certificate with this serial, from its issuer. */
static int certid_of(const struct rev_cert *issuer, const uint8_t *serial,
		     size_t serial_len, struct ocsp_certid *id)
{
	struct rev_cert leaf;

	memset(&leaf, 0, sizeof(leaf));
	leaf.serial.p = serial;
	leaf.serial.len = serial_len;
	leaf.issuer = issuer->subject;
	return ocsp_certid_make(&leaf, issuer, id);
}

/* When an answer must be fetched again: at three quarters of what is left
 * of its life (nextUpdate, or max_age after thisUpdate, the earlier), so
 * that a handshake rarely finds it expired. */
static int64_t refresh_time(const struct entry *e)
{
	int64_t end = e->this_update + (int64_t)e->max_age, t;

	if (e->next_update != 0 && e->next_update < end)
		end = e->next_update;
	/* Already past its bound when fetched (a CRL published less often
	 * than revocation_max_age): asking again at once gives the same. */
	if (end <= e->fetched_at)
		return e->fetched_at + REV_RETRY;
	t = e->fetched_at + (end - e->fetched_at) * 3 / 4;
	return t < e->fetched_at + REV_MIN_REFRESH ? e->fetched_at + REV_MIN_REFRESH : t;
}

static int fresh(const struct entry *e, int64_t now, uint32_t max_age)
{
	return e->have && e->this_update <= now + REV_SKEW &&
	       now - e->this_update <= (int64_t)max_age &&
	       (e->next_update == 0 || now < e->next_update);
}

static void entry_free(struct entry *e)
{
	if (e == NULL)
		return;
	free(e->issuer);
	free(e->answer);
	free(e);
}

/* What a fetch produced, applied to its entry under the lock. */
struct fetched {
	enum rev_outcome outcome;
	char error[200];
	uint8_t *answer;
	size_t answer_len;
	struct ocsp_answer oa;
	struct crl_info ci;
	int64_t at;
};

/* Checks a fetched or loaded OCSP answer for id from issuer; fills f. */
static void judge_ocsp(const struct ocsp_certid *id, const struct rev_cert *issuer,
		       uint8_t *der, size_t len, const uint8_t *nonce, int64_t now,
		       struct fetched *f)
{
	enum ocsp_check c = ocsp_response_check(der, len, id, issuer, nonce,
						nonce ? OCSP_NONCE_LEN : 0, now,
						&f->oa);

	if (c != OCSP_CHECK_OK) {
		f->outcome = c == OCSP_CHECK_STATUS ? REV_O_FETCH_FAILED :
			     REV_O_INVALID;
		snprintf(f->error, sizeof(f->error), "OCSP answer refused: %s",
			 ocsp_check_str(c));
		return;
	}
	f->answer = der;
	f->answer_len = len;
	f->outcome = f->oa.status == OCSP_STATUS_GOOD ? REV_O_GOOD :
		     f->oa.status == OCSP_STATUS_REVOKED ? REV_O_REVOKED :
		     REV_O_UNKNOWN;
}

static void judge_crl(const struct rev_cert *issuer, uint8_t *der, size_t len,
		      int64_t now, struct fetched *f)
{
	if (crl_parse(der, len, &f->ci) != 0) {
		f->outcome = REV_O_INVALID;
		snprintf(f->error, sizeof(f->error), "not a CRL");
	} else if (crl_verify(&f->ci, issuer) != 0) {
		f->outcome = REV_O_INVALID;
		snprintf(f->error, sizeof(f->error), "CRL not signed by the "
			 "certificate's issuer");
	} else if (f->ci.delta || f->ci.unsupported_critical) {
		f->outcome = REV_O_INVALID;
		snprintf(f->error, sizeof(f->error), "%s", f->ci.delta ?
			 "a delta CRL, not a full one" :
			 "a critical CRL extension this agent does not "
			 "understand (indirect or partial CRL)");
	} else if (f->ci.this_update > now + REV_SKEW ||
		   (f->ci.next_update != 0 &&
		    f->ci.next_update < f->ci.this_update)) {
		f->outcome = REV_O_INVALID;
		snprintf(f->error, sizeof(f->error), "CRL dates make no sense");
	} else {
		f->answer = der;
		f->answer_len = len;
		f->outcome = REV_O_GOOD;
	}
}

/* What a fetch needs of its entry, copied under the lock. */
struct job {
	enum rev_kind kind;
	char key[65];
	char url[REV_URL_MAX];
	struct ocsp_certid id;
	struct rev_cert ic; /* into the entry's issuer: stable while fetching */
	uint8_t serial[REV_SERIAL_MAX];
	size_t serial_len;
	const uint8_t *issuer;
	size_t issuer_len;
	struct http_fetch_opts o;
};

static void fetch(const struct job *j, int64_t now, struct fetched *f)
{
	uint8_t req[OCSP_REQUEST_MAX], nonce[OCSP_NONCE_LEN];
	struct http_answer a;
	struct mtls_error err = { 0 };
	char *raw = NULL, msg[160];
	uint8_t *der = NULL;
	size_t der_len = 0;
	int n = 0;
	mtls_err_t r;

	memset(f, 0, sizeof(*f));
	f->at = now;
	if (j->kind == REV_KIND_OCSP) {
		if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce) ||
		    (n = ocsp_request_encode(&j->id, nonce, sizeof(nonce), req,
					     sizeof(req))) < 0) {
			f->outcome = REV_O_FETCH_FAILED;
			snprintf(f->error, sizeof(f->error), "cannot make the "
				 "OCSP request");
			return;
		}
		/* RFC 6960 A.1: POST with the DER request as the body. */
		r = http_fetch(j->url, "application/ocsp-request", req,
			       (size_t)n, &j->o, &raw, &a, &err);
	} else {
		r = http_fetch(j->url, NULL, NULL, 0, &j->o, &raw, &a, &err);
	}
	if (r == MTLS_OK && a.status != 200)
		r = mtls_error_set(&err, MTLS_ERR_IO, "HTTP status %d", a.status);
	if (r != MTLS_OK) {
		f->outcome = REV_O_FETCH_FAILED;
		snprintf(f->error, sizeof(f->error), "%s",
			 mtls_error_str(&err, msg, sizeof(msg)));
		free(raw);
		return;
	}
	if (rev_pem_or_der((const uint8_t *)a.body, a.body_len,
			   j->kind == REV_KIND_CRL ? "X509 CRL" : "OCSP RESPONSE",
			   &der, &der_len) != 0) {
		f->outcome = REV_O_INVALID;
		snprintf(f->error, sizeof(f->error), "answer is neither DER "
			 "nor PEM");
		free(raw);
		return;
	}
	free(raw);
	if (j->kind == REV_KIND_OCSP)
		judge_ocsp(&j->id, &j->ic, der, der_len, nonce, now, f);
	else
		judge_crl(&j->ic, der, der_len, now, f);
	if (f->answer == NULL)
		free(der);
}

static void store(const struct job *j, const struct fetched *f)
{
	struct rev_record rec;
	struct mtls_error err = { 0 };
	char msg[200];

	if (C.dir[0] == '\0')
		return;
	memset(&rec, 0, sizeof(rec));
	rec.kind = j->kind;
	memcpy(rec.key, j->key, sizeof(rec.key));
	snprintf(rec.url, sizeof(rec.url), "%s", j->url);
	memcpy(rec.serial, j->serial, j->serial_len);
	rec.serial_len = j->serial_len;
	rec.fetched_at = f->at;
	rec.issuer = (uint8_t *)j->issuer;
	rec.issuer_len = j->issuer_len;
	rec.answer = f->answer;
	rec.answer_len = f->answer_len;
	if (rev_store_write(C.dir, &rec, &err) != MTLS_OK)
		log_warn("event=revocation_cache_write_failed detail=\"%s\"",
			 mtls_error_str(&err, msg, sizeof(msg)));
}

/* Puts a fetched answer into e (under the lock). An answer older than the
 * one held is dropped (a replayed answer must not undo a newer one), and
 * an OCSP "revoked" stays unless the new answer is newer and the old
 * reason was certificateHold (RFC 5280 5.3.1: the only one undone). */
static int apply(struct entry *e, struct fetched *f)
{
	int64_t tu = e->kind == REV_KIND_OCSP ? f->oa.this_update : f->ci.this_update;

	e->last_outcome = f->outcome;
	snprintf(e->last_error, sizeof(e->last_error), "%s", f->error);
	if (f->answer == NULL)
		return 0;
	if (e->have && (tu < e->this_update ||
			(e->kind == REV_KIND_OCSP &&
			 e->status == OCSP_STATUS_REVOKED && e->reason != 6 &&
			 f->oa.status != OCSP_STATUS_REVOKED))) {
		free(f->answer);
		f->answer = NULL;
		return 0;
	}
	free(e->answer);
	e->answer = f->answer;
	e->answer_len = f->answer_len;
	f->answer = NULL;
	e->have = 1;
	e->fetched_at = f->at;
	if (e->kind == REV_KIND_OCSP) {
		e->status = f->oa.status;
		e->reason = f->oa.reason;
		e->this_update = f->oa.this_update;
		e->next_update = f->oa.next_update;
	} else {
		e->ci = f->ci; /* points into e->answer, now ours */
		e->this_update = f->ci.this_update;
		e->next_update = f->ci.next_update;
	}
	e->refresh_at = refresh_time(e);
	return 1;
}

static void job_of(const struct entry *e, struct job *j)
{
	memset(j, 0, sizeof(*j));
	j->kind = e->kind;
	memcpy(j->key, e->key, sizeof(j->key));
	memcpy(j->url, e->url, sizeof(j->url));
	j->id = e->id;
	j->ic = e->ic;
	memcpy(j->serial, e->serial, e->serial_len);
	j->serial_len = e->serial_len;
	j->issuer = e->issuer;
	j->issuer_len = e->issuer_len;
	j->o.allow_local = e->allow_local;
	j->o.timeout_ms = e->timeout_ms;
	j->o.max = e->kind == REV_KIND_OCSP ? REV_OCSP_ANSWER_MAX : REV_CRL_MAX;
}

static void log_fetch(const struct job *j, const struct fetched *f, int got,
		      int applied)
{
	char serial[2 * REV_SERIAL_MAX + 1];

	hex(j->serial, j->serial_len, serial);
	if (!got)
		log_warn("event=revocation method=%s outcome=%s url=\"%s\"%s%s "
			 "detail=\"%s\"", j->kind == REV_KIND_OCSP ? "ocsp" : "crl",
			 rev_outcome_name(f->outcome), j->url,
			 j->kind == REV_KIND_OCSP ? " serial=" : "",
			 j->kind == REV_KIND_OCSP ? serial : "", f->error);
	else
		log_info("event=revocation method=%s outcome=%s url=\"%s\"%s%s "
			 "kept=%s", j->kind == REV_KIND_OCSP ? "ocsp" : "crl",
			 rev_outcome_name(f->outcome), j->url,
			 j->kind == REV_KIND_OCSP ? " serial=" : "",
			 j->kind == REV_KIND_OCSP ? serial : "",
			 applied ? "yes" : "no");
}

/* Fetches e's answer now, the lock held on entry and on return. */
static void fetch_locked(struct entry *e, int64_t now)
{
	struct job j;
	struct fetched f;
	int got, applied;

	e->fetching = 1;
	job_of(e, &j);
	pthread_mutex_unlock(&C.lock);
	fetch(&j, now, &f);
	got = f.answer != NULL;
	if (got)
		store(&j, &f);
	pthread_mutex_lock(&C.lock);
	applied = apply(e, &f);
	free(f.answer);
	if (!applied && got)
		snprintf(e->last_error, sizeof(e->last_error), "an answer "
			 "older than the one held, or a good one after a "
			 "revoked: not taken");
	if (!got)
		e->retry_at = now + REV_RETRY;
	e->fetching = 0;
	pthread_cond_broadcast(&C.fetched);
	pthread_mutex_unlock(&C.lock);
	log_fetch(&j, &f, got, applied);
	pthread_mutex_lock(&C.lock);
}

/* Finds or adds the entry for key (lock held). The new entry copies
 * issuer. NULL when the cache is full of entries being fetched. */
static struct entry *entry_for(enum rev_kind kind, const char *key,
			       const char *url, const struct rev_cert *issuer)
{
	struct entry *e;
	unsigned victim = REV_ENTRIES_MAX;

	for (unsigned i = 0; i < C.n; i++)
		if (C.e[i]->kind == kind && strcmp(C.e[i]->key, key) == 0)
			return C.e[i];
	if (C.n == REV_ENTRIES_MAX) {
		/* Full: the answer used least recently makes room. */
		for (unsigned i = 0; i < C.n; i++)
			if (!C.e[i]->fetching &&
			    (victim == REV_ENTRIES_MAX ||
			     C.e[i]->last_used < C.e[victim]->last_used))
				victim = i;
		if (victim == REV_ENTRIES_MAX)
			return NULL;
		if (C.dir[0] != '\0') {
			char path[1200];

			snprintf(path, sizeof(path), "%s/%s.%s", C.dir,
				 C.e[victim]->key,
				 C.e[victim]->kind == REV_KIND_OCSP ? "ocsp" : "crl");
			unlink(path);
		}
		entry_free(C.e[victim]);
		C.e[victim] = C.e[--C.n];
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	e->issuer = malloc(issuer->der.len);
	if (e->issuer == NULL || rev_cert_parse(memcpy(e->issuer, issuer->der.p,
						       issuer->der.len),
						issuer->der.len, &e->ic) != 0) {
		entry_free(e);
		return NULL;
	}
	e->issuer_len = issuer->der.len;
	e->kind = kind;
	memcpy(e->key, key, sizeof(e->key));
	snprintf(e->url, sizeof(e->url), "%s", url);
	e->last_outcome = REV_O_FETCH_FAILED;
	C.e[C.n++] = e;
	return e;
}

static int64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for a fetch to finish, until deadline_ms (CLOCK_REALTIME, the
 * condition variable's clock). */
static void wait_fetch(int64_t deadline_ms)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline_ms / 1000),
			       .tv_nsec = (long)(deadline_ms % 1000) * 1000000 };

	if (deadline_ms > realtime_ms())
		pthread_cond_timedwait(&C.fetched, &C.lock, &ts);
}

/* The verdict of e for serial now (lock held): -1 when e has nothing
 * fresh to say. */
static int verdict(const struct entry *e, const struct rev_cert *cert,
		   int64_t now, uint32_t max_age, enum rev_outcome *o)
{
	if (!e->have)
		return -1;
	if (e->kind == REV_KIND_OCSP) {
		/* A "revoked" counts however old: revocation is final. */
		if (e->status == OCSP_STATUS_REVOKED) {
			*o = REV_O_REVOKED;
			return 0;
		}
		if (!fresh(e, now, max_age))
			return -1;
		*o = e->status == OCSP_STATUS_GOOD ? REV_O_GOOD : REV_O_UNKNOWN;
		return 0;
	}
	/* A CRL that covers only CA certificates says nothing of a leaf,
	 * and one for end entities nothing of an intermediate. */
	if ((e->ci.only_ca_certs && !cert->is_ca) ||
	    (e->ci.only_user_certs && cert->is_ca)) {
		*o = REV_O_INVALID;
		return 0;
	}
	{
		int64_t at;
		int reason;
		int listed = crl_lookup(&e->ci, cert->serial.p, cert->serial.len,
					&at, &reason);

		if (listed < 0) {
			*o = REV_O_INVALID;
			return 0;
		}
		if (listed == 1) {
			*o = REV_O_REVOKED;
			return 0;
		}
	}
	if (!fresh(e, now, max_age))
		return -1;
	*o = REV_O_GOOD;
	return 0;
}

/* One method's answer for cert (OCSP or CRL), fetching when the cache has
 * nothing fresh; a fetch another connection started is waited for, not
 * repeated. */
static enum rev_outcome ask(const struct policy_profile *pr, enum rev_kind kind,
			    const char *url, const struct rev_cert *cert,
			    const struct rev_cert *issuer, int64_t now,
			    char *why, size_t why_len)
{
	struct ocsp_certid id;
	char key[65];
	struct entry *e;
	enum rev_outcome o = REV_O_FETCH_FAILED;
	int64_t deadline = realtime_ms() + pr->rev_timeout_ms + 2000;
	int tried = 0;

	if (kind == REV_KIND_OCSP) {
		if (ocsp_certid_make(cert, issuer, &id) != 0 ||
		    certid_key(url, &id, key) != 0) {
			snprintf(why, why_len, "cannot name the certificate for OCSP");
			return REV_O_FETCH_FAILED;
		}
	} else if (crl_key(url, issuer, key) != 0) {
		snprintf(why, why_len, "cannot name the CRL");
		return REV_O_FETCH_FAILED;
	}
	pthread_mutex_lock(&C.lock);
	e = entry_for(kind, key, url, issuer);
	if (e == NULL) {
		pthread_mutex_unlock(&C.lock);
		snprintf(why, why_len, "revocation cache full");
		return REV_O_FETCH_FAILED;
	}
	if (kind == REV_KIND_OCSP && e->serial_len == 0) {
		e->id = id;
		memcpy(e->serial, cert->serial.p, cert->serial.len);
		e->serial_len = cert->serial.len;
	}
	e->last_used = now;
	e->allow_local = pr->rev_local;
	e->timeout_ms = pr->rev_timeout_ms;
	e->max_age = pr->rev_max_age;
	/* Shared by profiles: the one with the shortest bound sets when it
	 * is fetched again. */
	if (e->have) {
		int64_t t = refresh_time(e);

		if (t < e->refresh_at)
			e->refresh_at = t;
	}
	for (;;) {
		if (verdict(e, cert, now, pr->rev_max_age, &o) == 0)
			goto out;
		if (e->fetching) {
			if (realtime_ms() >= deadline)
				break;
			wait_fetch(deadline);
			tried = 1;
			continue;
		}
		if (tried)
			break;
		fetch_locked(e, now);
		tried = 1;
	}
	if (e->have && e->last_outcome == REV_O_INVALID) {
		/* What came instead of a fresh answer failed its checks: not
		 * a lack of answer that fail-open may waive. */
		o = REV_O_INVALID;
		snprintf(why, why_len, "%s %.160s: %.120s", kind == REV_KIND_OCSP ?
			 "OCSP responder" : "CRL", e->url, e->last_error);
	} else if (e->have) {
		o = REV_O_STALE;
		snprintf(why, why_len, "%s answer from %.160s is past its "
			 "freshness bound (%.100s)", kind == REV_KIND_OCSP ? "OCSP" : "CRL",
			 e->url, e->last_error[0] ? e->last_error : "refresh failed");
	} else {
		o = e->fetching ? REV_O_FETCH_FAILED : e->last_outcome;
		if (o == REV_O_GOOD || o == REV_O_REVOKED)
			o = REV_O_FETCH_FAILED; /* an answer not kept */
		snprintf(why, why_len, "%s %.160s: %.120s", kind == REV_KIND_OCSP ?
			 "OCSP responder" : "CRL", e->url,
			 e->fetching ? "no answer in time" :
			 e->last_error[0] ? e->last_error : "no answer");
	}
out:
	/* An answer still missing is the refresher's to retry. */
	if (!e->have)
		pthread_cond_signal(&C.wake);
	pthread_mutex_unlock(&C.lock);
	return o;
}

/* The first URL of the list that this agent fetches (http://); why says
 * what was skipped. */
static const char *pick_url(const char (*urls)[REV_URL_MAX], unsigned n,
			    const char *what, char *why, size_t why_len)
{
	for (unsigned i = 0; i < n; i++)
		if (strncmp(urls[i], "http://", 7) == 0)
			return urls[i];
	if (n > 0)
		snprintf(why, why_len, "%s %s is not http:// (LDAP and HTTPS "
			 "distribution points are not fetched)", what, urls[0]);
	else
		snprintf(why, why_len, "the certificate names no %s", what);
	return NULL;
}

/* The issuer of peer->der[idx]: a later certificate of the chain or one
 * of the profile's anchors, whichever signed it; copied into *out. */
static int find_issuer(const struct policy_profile *pr, const struct rev_peer *peer,
		       unsigned idx, const struct rev_cert *cert,
		       uint8_t **out, size_t *out_len);

static enum rev_outcome check_cert(const struct policy_profile *pr,
				   const struct rev_cert *cert,
				   const struct rev_cert *issuer, int is_leaf,
				   int staple_good, int64_t now, int *invalid,
				   char *why,
				   size_t why_len)
{
	enum rev_outcome o = REV_O_FETCH_FAILED;

	for (unsigned k = 0; k < pr->n_rev_methods; k++) {
		const char *url = NULL;

		switch (pr->rev_methods[k]) {
		case POLICY_REV_STAPLE:
			if (!is_leaf)
				continue; /* a staple speaks for the leaf only */
			o = staple_good ? REV_O_GOOD : REV_O_FETCH_FAILED;
			count(REV_M_STAPLE, o);
			if (o == REV_O_GOOD)
				return o;
			snprintf(why, why_len, "no stapled OCSP answer");
			continue;
		case POLICY_REV_OCSP:
			url = pr->ocsp_url[0] ? pr->ocsp_url :
			      pick_url((const char (*)[REV_URL_MAX])cert->ocsp_urls,
				       cert->n_ocsp, "OCSP responder", why, why_len);
			o = url ? ask(pr, REV_KIND_OCSP, url, cert, issuer, now,
				      why, why_len) : REV_O_FETCH_FAILED;
			count(REV_M_OCSP, o);
			break;
		case POLICY_REV_CRL:
			url = pick_url((const char (*)[REV_URL_MAX])cert->crl_urls,
				       cert->n_crl, "CRL distribution point", why,
				       why_len);
			o = url ? ask(pr, REV_KIND_CRL, url, cert, issuer, now,
				      why, why_len) : REV_O_FETCH_FAILED;
			count(REV_M_CRL, o);
			break;
		default:
			continue;
		}
		if (o == REV_O_REVOKED)
			snprintf(why, why_len, "%s %.200s says revoked",
				 pr->rev_methods[k] == POLICY_REV_OCSP ?
				 "OCSP responder" : "CRL", url);
		if (o == REV_O_GOOD || o == REV_O_REVOKED)
			return o;
		if (o == REV_O_INVALID)
			*invalid = 1;
		if (o == REV_O_UNKNOWN)
			snprintf(why, why_len, "the responder does not know the "
				 "certificate");
	}
	return o;
}

mtls_err_t rev_check(const struct policy_profile *pr, const struct rev_peer *peer,
		     int64_t now, unsigned long conn_id, int *waived,
		     struct mtls_error *err)
{
	char why[320] = "", which[64] = "";
	unsigned upto;
	int unknown = 0, invalid = 0;

	*waived = 0;
	if (pr == NULL || pr->n_rev_methods == 0)
		return MTLS_OK;
	if (peer->n == 0)
		return mtls_error_set(err, MTLS_ERR_REVOCATION_UNKNOWN,
				      "no server certificate to check");
	upto = pr->rev_chain ? peer->n : 1;
	for (unsigned i = 0; i < upto; i++) {
		struct rev_cert cert, issuer;
		uint8_t *idr = NULL;
		size_t idr_len = 0;
		enum rev_outcome o;
		char w[320] = "";

		if (rev_cert_parse(peer->der[i], peer->len[i], &cert) != 0) {
			unknown = 1;
			snprintf(why, sizeof(why), "certificate %u unreadable", i);
			break;
		}
		/* A self-issued certificate at the top is an anchor itself. */
		if (i > 0 && cert.issuer.len == cert.subject.len &&
		    memcmp(cert.issuer.p, cert.subject.p, cert.issuer.len) == 0)
			break;
		if (find_issuer(pr, peer, i, &cert, &idr, &idr_len) != 0 ||
		    rev_cert_parse(idr, idr_len, &issuer) != 0) {
			free(idr);
			if (i > 0)
				break; /* above the chain's top: anchors */
			unknown = 1;
			snprintf(why, sizeof(why), "the server's certificate has "
				 "no issuer in its chain or profile '%s'",
				 pr->name);
			break;
		}
		o = check_cert(pr, &cert, &issuer, i == 0, peer->staple_good,
			       now, &invalid, w, sizeof(w));
		free(idr);
		if (o == REV_O_REVOKED)
			return mtls_error_set(err, MTLS_ERR_REVOKED, "%s (the "
					      "%s certificate)", w, i == 0 ?
					      "server's" : "intermediate");
		if (o != REV_O_GOOD && !unknown) {
			unknown = 1;
			snprintf(which, sizeof(which), "%s",
				 i == 0 ? "server" : "intermediate");
			snprintf(why, sizeof(why), "%s", w);
		}
	}
	if (!unknown)
		return MTLS_OK;
	if (pr->revocation == POLICY_REVOCATION_FAIL_OPEN && !invalid) {
		*waived = 1;
		atomic_fetch_add(&fail_open, 1);
		log_warn("event=revocation_fail_open conn=%lu profile=%s "
			 "detail=\"%s\"", conn_id, pr->name, why);
		return MTLS_OK;
	}
	return mtls_error_set(err, MTLS_ERR_REVOCATION_UNKNOWN, "%s%s%s",
			      which, which[0] ? " certificate: " : "", why);
}

/* --- anchors: the profile's CA certificates, for a chain's top issuer --- */

/* Every certificate (PEM blocks) of one file, into the list. */
static void anchors_from_file(const char *path, uint8_t **der, size_t *len,
			      unsigned *n)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	FILE *f = fopen(path, "re");
	char *buf;
	size_t got;
	struct stat st;

	if (f == NULL)
		return;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > 4 * 1024 * 1024 ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fclose(f);
		return;
	}
	got = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	buf[got] = '\0';
	for (char *p = strstr(buf, begin); p != NULL && *n < REV_ANCHORS_MAX;
	     p = strstr(p + 1, begin)) {
		char *end = strstr(p, "-----END CERTIFICATE-----");

		if (end == NULL)
			break;
		end += strlen("-----END CERTIFICATE-----");
		if (rev_pem_or_der((const uint8_t *)p, (size_t)(end - p),
				   "CERTIFICATE", &der[*n], &len[*n]) == 0)
			(*n)++;
	}
	free(buf);
}

/* Issuers found before, by the SHA-256 of the certificate they signed:
 * the signature over those very bytes was checked once, and a busy
 * server's chain is not read and verified again on every connection. */
#define REV_ISSUERS_KEPT 64
static struct {
	pthread_mutex_t lock;
	struct {
		uint8_t child[WC_SHA256_DIGEST_SIZE];
		uint8_t *der;
		size_t len;
	} e[REV_ISSUERS_KEPT];
	unsigned next;
} I = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int issuer_kept(const uint8_t h[WC_SHA256_DIGEST_SIZE], uint8_t **out,
		       size_t *out_len)
{
	int r = -1;

	pthread_mutex_lock(&I.lock);
	for (unsigned i = 0; i < REV_ISSUERS_KEPT && r != 0; i++)
		if (I.e[i].der != NULL && memcmp(I.e[i].child, h, sizeof(I.e[i].child)) == 0 &&
		    (*out = malloc(I.e[i].len)) != NULL) {
			memcpy(*out, I.e[i].der, I.e[i].len);
			*out_len = I.e[i].len;
			r = 0;
		}
	pthread_mutex_unlock(&I.lock);
	return r;
}

static void issuer_keep(const uint8_t h[WC_SHA256_DIGEST_SIZE],
			const uint8_t *der, size_t len)
{
	uint8_t *copy = malloc(len);

	if (copy == NULL)
		return;
	memcpy(copy, der, len);
	pthread_mutex_lock(&I.lock);
	free(I.e[I.next].der);
	memcpy(I.e[I.next].child, h, WC_SHA256_DIGEST_SIZE);
	I.e[I.next].der = copy;
	I.e[I.next].len = len;
	I.next = (I.next + 1) % REV_ISSUERS_KEPT;
	pthread_mutex_unlock(&I.lock);
}

static int find_issuer_uncached(const struct policy_profile *pr,
				const struct rev_peer *peer, unsigned idx,
				const struct rev_cert *cert, uint8_t **out,
				size_t *out_len);

static int find_issuer(const struct policy_profile *pr, const struct rev_peer *peer,
		       unsigned idx, const struct rev_cert *cert,
		       uint8_t **out, size_t *out_len)
{
	uint8_t h[WC_SHA256_DIGEST_SIZE];

	if (wc_Sha256Hash(cert->der.p, (word32)cert->der.len, h) != 0)
		return -1;
	if (issuer_kept(h, out, out_len) == 0)
		return 0;
	if (find_issuer_uncached(pr, peer, idx, cert, out, out_len) != 0)
		return -1;
	issuer_keep(h, *out, *out_len);
	return 0;
}

static int find_issuer_uncached(const struct policy_profile *pr,
				const struct rev_peer *peer, unsigned idx,
				const struct rev_cert *cert, uint8_t **out,
				size_t *out_len)
{
	uint8_t *der[REV_ANCHORS_MAX];
	size_t len[REV_ANCHORS_MAX];
	unsigned n = 0;
	struct stat st;
	int found = -1;

	for (unsigned i = idx + 1; i < peer->n; i++) {
		struct rev_cert c;

		if (rev_cert_parse(peer->der[i], peer->len[i], &c) == 0 &&
		    rev_cert_issued_by(cert, &c) == 0) {
			*out = malloc(peer->len[i]);
			if (*out == NULL)
				return -1;
			memcpy(*out, peer->der[i], peer->len[i]);
			*out_len = peer->len[i];
			return 0;
		}
	}
	/* Read at each use: a handful of certificates, and the file may have
	 * changed since the context was built. */
	if (stat(pr->ca, &st) != 0)
		return -1;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(pr->ca);
		struct dirent *de;

		while (d != NULL && (de = readdir(d)) != NULL && n < REV_ANCHORS_MAX) {
			char path[POLICY_PATH_MAX + 300];

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", pr->ca, de->d_name);
			anchors_from_file(path, der, len, &n);
		}
		if (d != NULL)
			closedir(d);
	} else {
		anchors_from_file(pr->ca, der, len, &n);
	}
	for (unsigned i = 0; i < n; i++) {
		struct rev_cert c;

		if (found < 0 && rev_cert_parse(der[i], len[i], &c) == 0 &&
		    rev_cert_issued_by(cert, &c) == 0) {
			found = (int)i;
			*out = der[i];
			*out_len = len[i];
			continue;
		}
		free(der[i]);
	}
	return found >= 0 ? 0 : -1;
}

/* --- the cache on disk and the refresher --- */

static void load_one(const char *name, int64_t now)
{
	struct rev_record rec;
	struct mtls_error err = { 0 };
	struct entry *e;
	struct fetched f;
	char key[65], msg[200];

	if (rev_store_read(C.dir, name, &rec, &err) != MTLS_OK) {
		char path[1200];

		log_warn("event=revocation_cache_skipped file=\"%s\" detail=\"%s\"",
			 name, mtls_error_str(&err, msg, sizeof(msg)));
		/* The folder is ours alone: what is not a record of ours
		 * (a symlink is removed, not followed) has no business here. */
		snprintf(path, sizeof(path), "%s/%s", C.dir, name);
		unlink(path);
		return;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		goto drop;
	e->kind = rec.kind;
	e->issuer = rec.issuer;
	e->issuer_len = rec.issuer_len;
	rec.issuer = NULL;
	snprintf(e->url, sizeof(e->url), "%s", rec.url);
	memcpy(e->serial, rec.serial, rec.serial_len);
	e->serial_len = rec.serial_len;
	e->max_age = 366u * 86400;
	e->timeout_ms = 10000;
	if (rev_cert_parse(e->issuer, e->issuer_len, &e->ic) != 0)
		goto drop;
	if (e->kind == REV_KIND_OCSP) {
		if (certid_of(&e->ic, e->serial, e->serial_len, &e->id) != 0 ||
		    certid_key(e->url, &e->id, key) != 0)
			goto drop;
	} else if (crl_key(e->url, &e->ic, key) != 0) {
		goto drop;
	}
	/* The name must be what the contents say: a file renamed to stand
	 * for another certificate is not used. */
	if (strcmp(key, rec.key) != 0)
		goto drop;
	memcpy(e->key, key, sizeof(e->key));
	memset(&f, 0, sizeof(f));
	f.at = rec.fetched_at;
	if (e->kind == REV_KIND_OCSP)
		judge_ocsp(&e->id, &e->ic, rec.answer, rec.answer_len, NULL, now, &f);
	else
		judge_crl(&e->ic, rec.answer, rec.answer_len, now, &f);
	if (f.answer == NULL)
		goto drop;
	rec.answer = NULL; /* f.answer owns it */
	apply(e, &f);
	e->last_used = now;
	C.e[C.n++] = e;
	rev_record_free(&rec);
	return;
drop:
	log_warn("event=revocation_cache_skipped file=\"%s\" detail=\"record "
		 "does not check\"", name);
	entry_free(e);
	rev_record_free(&rec);
	{
		char path[1200];

		snprintf(path, sizeof(path), "%s/%s", C.dir, name);
		unlink(path);
	}
}

/* One background refresh: a thread of its own, so that a responder that
 * takes its whole timeout delays no other answer's refresh. */
static void *refresh_one(void *arg)
{
	struct entry *e = arg;

	pthread_mutex_lock(&C.lock);
	fetch_locked(e, (int64_t)time(NULL));
	C.refreshing--;
	pthread_cond_broadcast(&C.wake);
	pthread_mutex_unlock(&C.lock);
	wc_ecc_fp_free(); /* the answer's signature was checked on this thread */
	return NULL;
}

static void *refresher(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&C.lock);
	while (!C.stop) {
		int64_t now = (int64_t)time(NULL), next = now + 60;

		for (unsigned i = 0; i < C.n; i++) {
			struct entry *e = C.e[i];
			pthread_attr_t a;
			pthread_t t;
			int64_t at;
			int ok;

			if (e->fetching || e->last_used < now - REV_IDLE ||
			    (e->have && e->kind == REV_KIND_OCSP &&
			     e->status == OCSP_STATUS_REVOKED))
				continue;
			at = e->have ? e->refresh_at : 0;
			if (e->retry_at > at)
				at = e->retry_at;
			if (at > now) {
				if (at < next)
					next = at;
				continue;
			}
			if (C.refreshing >= REV_REFRESHERS)
				break; /* woken when one finishes */
			/* Claimed here: no connection starts a second fetch. */
			e->fetching = 1;
			ok = pthread_attr_init(&a) == 0;
			ok = ok && pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED) == 0 &&
			     pthread_attr_setstacksize(&a, 512 * 1024) == 0 &&
			     pthread_create(&t, &a, refresh_one, e) == 0;
			pthread_attr_destroy(&a);
			if (!ok) {
				e->fetching = 0;
				e->retry_at = now + REV_RETRY;
				continue;
			}
			C.refreshing++;
		}
		{
			struct timespec ts = { .tv_sec = (time_t)next };

			pthread_cond_timedwait(&C.wake, &C.lock, &ts);
		}
	}
	/* The refreshes under way finish before the cache goes. */
	while (C.refreshing > 0)
		pthread_cond_wait(&C.wake, &C.lock);
	pthread_mutex_unlock(&C.lock);
	return NULL;
}

mtls_err_t rev_cache_open(const char *dir, struct mtls_error *err)
{
	DIR *d;
	struct dirent *de;
	int64_t now = (int64_t)time(NULL);
	mtls_err_t r;

	if (strlen(dir) >= sizeof(C.dir) - 80)
		return mtls_error_set(err, MTLS_ERR_ARG, "%s: path too long", dir);
	r = rev_store_dir(dir, err);
	if (r != MTLS_OK)
		return r;
	pthread_mutex_lock(&C.lock);
	snprintf(C.dir, sizeof(C.dir), "%s", dir);
	d = opendir(dir);
	while (d != NULL && (de = readdir(d)) != NULL && C.n < REV_ENTRIES_MAX) {
		size_t l = strlen(de->d_name);

		if (strstr(de->d_name, ".tmp.") != NULL) {
			char path[1200];

			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			unlink(path); /* a write a crash interrupted */
			continue;
		}
		if ((l > 5 && strcmp(de->d_name + l - 5, ".ocsp") == 0) ||
		    (l > 4 && strcmp(de->d_name + l - 4, ".crl") == 0))
			load_one(de->d_name, now);
	}
	if (d != NULL)
		closedir(d);
	C.stop = 0;
	if (!C.running && pthread_create(&C.refresher, NULL, refresher, NULL) == 0)
		C.running = 1;
	pthread_mutex_unlock(&C.lock);
	log_info("event=revocation_cache_loaded dir=\"%s\" answers=%u", dir, C.n);
	return MTLS_OK;
}

void rev_cache_close(void)
{
	pthread_mutex_lock(&C.lock);
	C.stop = 1;
	pthread_cond_broadcast(&C.wake);
	pthread_mutex_unlock(&C.lock);
	if (C.running) {
		pthread_join(C.refresher, NULL);
		C.running = 0;
	}
	pthread_mutex_lock(&C.lock);
	for (unsigned i = 0; i < C.n; i++)
		entry_free(C.e[i]);
	C.n = 0;
	C.dir[0] = '\0';
	pthread_mutex_unlock(&C.lock);
	pthread_mutex_lock(&I.lock);
	for (unsigned i = 0; i < REV_ISSUERS_KEPT; i++) {
		free(I.e[i].der);
		I.e[i].der = NULL;
	}
	pthread_mutex_unlock(&I.lock);
}

static void span(char *out, size_t cap, int64_t secs)
{
	if (secs < 0)
		snprintf(out, cap, "due");
	else
		snprintf(out, cap, "%" PRId64 "s", secs);
}

size_t rev_cache_describe(char *buf, size_t cap, int64_t now)
{
	size_t n = 0;

	if (cap == 0)
		return 0;
	buf[0] = '\0';
	pthread_mutex_lock(&C.lock);
	for (unsigned i = 0; i < C.n; i++) {
		const struct entry *e = C.e[i];
		char serial[2 * REV_SERIAL_MAX + 1], age[24], refresh[24], nu[24];
		const char *status;
		int w;

		hex(e->serial, e->serial_len, serial);
		span(age, sizeof(age), now - e->this_update);
		span(refresh, sizeof(refresh),
		     (e->have && e->refresh_at > e->retry_at ? e->refresh_at :
		      e->retry_at) - now);
		span(nu, sizeof(nu), e->next_update - now);
		if (!e->have)
			status = "none";
		else if (e->kind == REV_KIND_OCSP)
			status = e->status == OCSP_STATUS_GOOD ? "good" :
				 e->status == OCSP_STATUS_REVOKED ? "revoked" :
				 "unknown";
		else
			status = fresh(e, now, e->max_age) ? "current" : "stale";
		w = snprintf(buf + n, cap - n,
			     "revocation method=%s url=%s%s%s status=%s age=%s "
			     "refresh=%s next_update=%s%s%s%s\n",
			     e->kind == REV_KIND_OCSP ? "ocsp" : "crl", e->url,
			     e->kind == REV_KIND_OCSP ? " serial=" : "",
			     e->kind == REV_KIND_OCSP ? serial : "", status,
			     e->have ? age : "-", refresh,
			     e->have && e->next_update ? nu : "-",
			     e->last_error[0] ? " last_error=\"" : "",
			     e->last_error, e->last_error[0] ? "\"" : "");
		if (w < 0 || (size_t)w >= cap - n) {
			buf[n] = '\0';
			break;
		}
		n += (size_t)w;
	}
	pthread_mutex_unlock(&C.lock);
	return n;
}
