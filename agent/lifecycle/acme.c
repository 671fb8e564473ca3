#include <wolfssl/options.h>

#include "acme.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "acme_http01.h"
#include "acme_msg.h"
#include "exec_run.h"
#include "https.h"
#include "jws.h"
#include "mtls_clock.h"
#include "mtls_log.h"
#include "mtls_secret.h"
#include "renew_state.h"
#include "stats.h"

/* badNonce is retried this often (RFC 8555 6.5: the client SHOULD retry). */
#define ACME_NONCE_RETRIES 10
/* Polls wait what Retry-After says, within these bounds. */
#define ACME_POLL_MIN_MS 500
#define ACME_POLL_MAX_MS 10000
#define ACME_CERT_MAX ENROLL_ANSWER_MAX
#define ACME_HOOK_TIMEOUT_MS 60000

struct acme {
	const struct renew_env *e;
	const struct cfg_renew *r;
	const char *name;
	struct acme_directory dir;
	char nonce[256];
	char kid[ACME_URL_MAX]; /* the account URL */
	struct jws_key account;
	struct p11_key *account_key;
	uint64_t deadline;
	/* The problem type that is an expected answer now (not logged). */
	const char *expected_problem;
	int hook_ok; /* acme_dns_hook passed hook_check: it may run */
};

/* A problem document as the error: its type and detail, shown to the user
 * (mtlsctl, the log) and counted by type. */
static mtls_err_t problem_error(const struct acme *c, const char *what,
				const struct http_answer *a,
				struct mtls_error *err)
{
	struct acme_problem p;

	if (acme_parse_problem(a->body, a->body_len, a->status, &p) != 0)
		return mtls_error_set(err, MTLS_ERR_IO, "ACME %s: HTTP %d, no "
				      "problem document", what, a->status);
	if (c->expected_problem == NULL ||
	    strcmp(c->expected_problem, p.type) != 0) {
		log_warn("event=acme_problem identity=%s step=%s status=%d "
			 "type=%s detail=\"%s\"", c->name, what, a->status,
			 p.type, p.detail);
		stats_count_problem(p.type);
	}
	return mtls_error_set(err, a->status == 401 || a->status == 403 ?
					   MTLS_ERR_CERT_REFUSED : MTLS_ERR_IO,
			      "ACME %s: %s: %s", what, p.type, p.detail);
}

static mtls_err_t request(struct acme *c, const char *method, const char *url,
			  const char *content_type, const char *body,
			  const char *accept, size_t max, char **raw,
			  struct http_answer *a, struct mtls_error *err)
{
	struct https_target t = { NULL, 0, c->r->acme_ca, NULL };
	char *host = NULL, *path = NULL, extra[128] = "";
	mtls_err_t ret;

	if (https_url_split(url, &host, &t.port, &path) != 0)
		return mtls_error_set(err, MTLS_ERR_IO, "ACME: not an https URL: "
				      "%.200s", url);
	t.host = host;
	if (accept != NULL)
		snprintf(extra, sizeof(extra), "Accept: %s\r\n", accept);
	ret = https_request(&t, method, path, extra, content_type, body,
			    body ? strlen(body) : 0, max, raw, a, err);
	if (ret == MTLS_OK && a->nonce[0] != '\0')
		snprintf(c->nonce, sizeof(c->nonce), "%s", a->nonce);
	free(host);
	free(path);
	return ret;
}

static mtls_err_t fresh_nonce(struct acme *c, struct mtls_error *err)
{
	struct http_answer a;
	char *raw = NULL;
	mtls_err_t ret;

	c->nonce[0] = '\0';
	ret = request(c, "GET", c->dir.new_nonce, NULL, NULL, NULL,
		      ACME_BODY_MAX, &raw, &a, err);
	free(raw);
	if (ret == MTLS_OK && c->nonce[0] == '\0')
		ret = mtls_error_set(err, MTLS_ERR_IO, "ACME newNonce: no "
				     "Replay-Nonce (HTTP %d)", a.status);
	return ret;
}

/* A JWS POST (payload NULL: POST-as-GET), signed by the account (kid) or,
 * with jk given, by that key with its JWK. badNonce: again, with the nonce
 * that answer carried. Status >= 400: the problem document as the error. */
static mtls_err_t post(struct acme *c, const char *what, const char *url,
		       const char *payload, struct jws_key *jk,
		       const char *accept, size_t max, char **raw,
		       struct http_answer *a, struct mtls_error *err)
{
	mtls_err_t ret = MTLS_OK;

	for (int attempt = 0;; attempt++) {
		char *jws = NULL;
		struct acme_problem p;

		if (c->nonce[0] == '\0' && (ret = fresh_nonce(c, err)) != MTLS_OK)
			return ret;
		ret = jws_sign(jk ? jk : &c->account, jk ? NULL : c->kid,
			       c->nonce, url, payload ? payload : "", &jws, err);
		if (ret != MTLS_OK)
			return ret;
		c->nonce[0] = '\0'; /* used: each nonce once */
		ret = request(c, "POST", url, "application/jose+json", jws,
			      accept, max, raw, a, err);
		free(jws);
		if (ret != MTLS_OK)
			return ret;
		if (a->status < 400)
			return MTLS_OK;
		if (a->status == 400 && attempt < ACME_NONCE_RETRIES &&
		    acme_parse_problem(a->body, a->body_len, a->status, &p) == 0 &&
		    strcmp(p.type, "badNonce") == 0) {
			log_info("event=acme_bad_nonce identity=%s step=%s "
				 "attempt=%d", c->name, what, attempt + 1);
			free(*raw);
			*raw = NULL;
			continue;
		}
		ret = problem_error(c, what, a, err);
		free(*raw);
		*raw = NULL;
		return ret;
	}
}

static int timed_out(const struct acme *c)
{
	return mtls_now_ms() >= c->deadline;
}

/* Waits what the server asked (bounded), unless the deadline comes first. */
static void poll_wait(const struct acme *c, int retry_after)
{
	uint64_t ms = retry_after > 0 ? (uint64_t)retry_after * 1000 :
					ACME_POLL_MIN_MS;
	uint64_t left = c->deadline > mtls_now_ms() ?
				c->deadline - mtls_now_ms() : 0;
	struct timespec ts;

	if (ms < ACME_POLL_MIN_MS)
		ms = ACME_POLL_MIN_MS;
	if (ms > ACME_POLL_MAX_MS)
		ms = ACME_POLL_MAX_MS;
	if (ms > left)
		ms = left;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static mtls_err_t get_directory(struct acme *c, struct mtls_error *err)
{
	struct http_answer a;
	char *raw = NULL;
	mtls_err_t ret;

	ret = request(c, "GET", c->r->acme_directory, NULL, NULL, NULL,
		      ACME_BODY_MAX, &raw, &a, err);
	if (ret != MTLS_OK)
		return ret;
	if (a.status != 200 ||
	    acme_parse_directory(a.body, a.body_len, &c->dir) != 0)
		ret = mtls_error_set(err, MTLS_ERR_IO, "ACME directory %.200s: "
				     "HTTP %d, not a directory",
				     c->r->acme_directory, a.status);
	free(raw);
	return ret;
}

static void account_path(const struct acme *c, char *out, size_t cap)
{
	renew_state_path(c->e->cfg, c->name, ACME_ACCOUNT_SUFFIX, out, cap);
}

int acme_account_read(const struct config *cfg, const char *name,
		      const char *directory, char *url, size_t cap)
{
	char path[1024], buf[2 * ACME_URL_MAX + 4], *nl;
	FILE *f;
	size_t n;

	renew_state_path(cfg, name, ACME_ACCOUNT_SUFFIX, path, sizeof(path));
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	if (nl == NULL)
		return -1;
	*nl = '\0';
	if (directory != NULL && strcmp(buf, directory) != 0)
		return -1; /* another CA's account */
	n = strcspn(nl + 1, "\n");
	if (n == 0 || n >= cap || strncmp(nl + 1, "https://", 8) != 0)
		return -1;
	memcpy(url, nl + 1, n);
	url[n] = '\0';
	return 0;
}

/* The account URL recorded for this directory, if any. */
static int account_load(struct acme *c)
{
	return acme_account_read(c->e->cfg, c->name, c->r->acme_directory,
				 c->kid, sizeof(c->kid));
}

static mtls_err_t account_save(struct acme *c, struct mtls_error *err)
{
	char path[1024], buf[2 * ACME_URL_MAX + 4];
	int n;

	account_path(c, path, sizeof(path));
	n = snprintf(buf, sizeof(buf), "%s\n%s\n", c->r->acme_directory, c->kid);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return mtls_error_set(err, MTLS_ERR_LIMIT, "account URL");
	return file_write_atomic(path, buf, (size_t)n, 0600, err);
}

/* The newAccount payload: terms, contacts, and the binding when given. */
static char *account_payload(struct acme *c, const char *eab, int only_existing)
{
	json_object *o = json_object_new_object(), *arr, *b;
	char *out = NULL;

	if (o == NULL)
		return NULL;
	if (only_existing) {
		json_object_object_add(o, "onlyReturnExisting",
				       json_object_new_boolean(1));
	} else {
		json_object_object_add(o, "termsOfServiceAgreed",
				       json_object_new_boolean(1));
		if (c->r->acme_contact != NULL) {
			char list[512], *save = NULL, *tok;

			snprintf(list, sizeof(list), "%s", c->r->acme_contact);
			arr = json_object_new_array();
			for (tok = strtok_r(list, ", ", &save); tok != NULL;
			     tok = strtok_r(NULL, ", ", &save))
				json_object_array_add(arr, json_object_new_string(tok));
			json_object_object_add(o, "contact", arr);
		}
		if (eab != NULL) {
			b = json_tokener_parse(eab);
			if (b == NULL)
				goto out;
			json_object_object_add(o, "externalAccountBinding", b);
		}
	}
	out = strdup(json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
out:
	json_object_put(o);
	return out;
}

/* The EAB MAC key: base64url in a file or credential (PIN rules). */
static mtls_err_t eab_binding(struct acme *c, char **eab,
			      struct mtls_error *err)
{
	struct mtls_secret *s = mtls_secret_new();
	uint8_t key[256];
	size_t key_len = sizeof(key);
	mtls_err_t ret;

	*eab = NULL;
	if (s == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	ret = p11_pin_source_read(c->r->acme_eab_hmac, s, err);
	if (ret == MTLS_OK &&
	    b64url_decode(s->buf, s->len, key, &key_len) != 0)
		ret = mtls_error_set(err, MTLS_ERR_CONFIG, "acme_eab_hmac: not "
				     "a base64url key");
	if (ret == MTLS_OK)
		ret = jws_eab(c->r->acme_eab_kid, key, key_len,
			      c->dir.new_account, c->account.jwk, eab, err);
	explicit_bzero(key, sizeof(key));
	mtls_secret_free(s);
	return ret;
}

static mtls_err_t account(struct acme *c, struct mtls_error *err)
{
	struct http_answer a;
	char *raw = NULL, *payload = NULL, *eab = NULL;
	int created;
	mtls_err_t ret;

	if (account_load(c) == 0)
		return MTLS_OK;
	/* The key may have an account already (a lost state folder): ask
	 * for it first, so that a used-up binding is not needed again. */
	payload = account_payload(c, NULL, 1);
	if (payload == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	c->expected_problem = "accountDoesNotExist";
	ret = post(c, "newAccount", c->dir.new_account, payload, &c->account,
		   NULL, ACME_BODY_MAX, &raw, &a, err);
	c->expected_problem = NULL;
	free(payload);
	if (ret == MTLS_OK && a.location[0] != '\0') {
		created = 0;
		goto found;
	}
	free(raw);
	raw = NULL;
	if (ret != MTLS_OK && strstr(err->detail, "accountDoesNotExist") == NULL)
		return ret;
	if (c->r->acme_eab_kid != NULL) {
		ret = eab_binding(c, &eab, err);
		if (ret != MTLS_OK)
			return ret;
	} else if (c->dir.eab_required) {
		return mtls_error_set(err, MTLS_ERR_CONFIG, "ACME: the CA requires "
				      "External Account Binding: set "
				      "acme_eab_kid= and acme_eab_hmac=");
	}
	payload = account_payload(c, eab, 0);
	free(eab);
	if (payload == NULL)
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	ret = post(c, "newAccount", c->dir.new_account, payload, &c->account,
		   NULL, ACME_BODY_MAX, &raw, &a, err);
	explicit_bzero(payload, strlen(payload));
	free(payload);
	if (ret != MTLS_OK)
		return ret;
	created = a.status == 201;
found:
	if (a.location[0] == '\0' || strncmp(a.location, "https://", 8) != 0) {
		free(raw);
		return mtls_error_set(err, MTLS_ERR_IO, "ACME newAccount: no "
				      "account URL (HTTP %d)", a.status);
	}
	free(raw);
	snprintf(c->kid, sizeof(c->kid), "%s", a.location);
	ret = account_save(c, err);
	if (ret != MTLS_OK)
		return ret;
	if (created && c->r->acme_eab_hmac != NULL)
		log_notice("event=acme_account_created identity=%s account=%s "
			   "note=\"the External Account Binding in %s is no "
			   "longer needed: remove it\"", c->name, c->kid,
			   c->r->acme_eab_hmac);
	else
		log_info("event=acme_account identity=%s account=%s created=%s",
			 c->name, c->kid, created ? "yes" : "no");
	renew_crash_point("acme_account");
	return MTLS_OK;
}

/* The hook runs with the agent's rights: whoever may replace it runs as
 * the agent. A regular file (not a symlink), ours or root's, that no one
 * else may write. */
static mtls_err_t hook_check(const char *path, struct mtls_error *err)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return mtls_error_set(err, MTLS_ERR_CONFIG, "acme_dns_hook %s: %s",
				      path, strerror(errno));
	if (!S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & 022) != 0 || (st.st_mode & 0111) == 0)
		return mtls_error_set(err, MTLS_ERR_PERMISSION, "acme_dns_hook %s: "
				      "must be an executable regular file owned "
				      "by root or the agent's user and writable "
				      "by no one else (mode %04o, uid %u)", path,
				      (unsigned)(st.st_mode & 07777),
				      (unsigned)st.st_uid);
	return MTLS_OK;
}

static mtls_err_t start(struct acme *c, const struct renew_env *e,
			struct mtls_error *err)
{
	mtls_err_t ret;

	memset(c, 0, sizeof(*c));
	c->e = e;
	c->r = &e->cfg->identities[e->index].renew;
	c->name = e->cfg->identities[e->index].name;
	c->deadline = mtls_now_ms() + c->r->acme_timeout_ms;
	if (c->r->acme_challenge == CFG_ACME_DNS01) {
		ret = hook_check(c->r->acme_dns_hook, err);
		if (ret != MTLS_OK)
			return ret;
		c->hook_ok = 1;
	}
	ret = p11_key_open(e->token, c->r->acme_account_key, &c->account_key, err);
	if (ret != MTLS_OK)
		return mtls_error_set(err, err->code, "acme_account_key: %s "
				      "(make it with mtlsctl keygen)",
				      err->detail);
	ret = jws_key_init(&c->account, c->account_key, err);
	if (ret == MTLS_OK)
		ret = get_directory(c, err);
	return ret;
}

static void finish(struct acme *c)
{
	p11_key_close(c->account_key);
	c->account_key = NULL;
}

/* The order's identifiers: every DNS SAN of the request. */
static char *order_payload(const struct csr_request *names,
			   struct mtls_error *err)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	char *out = NULL;
	unsigned n = 0;

	for (unsigned i = 0; i < names->n_sans; i++) {
		json_object *id;

		if (strncmp(names->sans[i], "DNS:", 4) != 0) {
			mtls_error_set(err, MTLS_ERR_CONFIG, "ACME validates DNS "
				       "names only: SAN %.100s cannot be in an "
				       "ACME order", names->sans[i]);
			goto out;
		}
		id = json_object_new_object();
		json_object_object_add(id, "type", json_object_new_string("dns"));
		json_object_object_add(id, "value",
				       json_object_new_string(names->sans[i] + 4));
		json_object_array_add(arr, id);
		n++;
	}
	if (n == 0) {
		mtls_error_set(err, MTLS_ERR_CONFIG, "ACME orders name DNS "
			       "identifiers: set sans = DNS:NAME");
		goto out;
	}
	json_object_object_add(o, "identifiers", arr);
	arr = NULL;
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	if (out == NULL)
		mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
out:
	json_object_put(arr);
	json_object_put(o);
	return out;
}

/* base64url(SHA-256(key authorization)): the dns-01 TXT value. */
static void dns_value(const char *key_authz, char *out, size_t cap)
{
	uint8_t h[WC_SHA256_DIGEST_SIZE];

	wc_Sha256Hash((const byte *)key_authz, (word32)strlen(key_authz), h);
	b64url_encode(h, sizeof(h), out, cap);
}

static mtls_err_t dns_hook(struct acme *c, const char *action,
			   const char *domain, const char *value,
			   struct mtls_error *err)
{
	char fqdn[300], *out = NULL;
	char *argv[] = { c->r->acme_dns_hook, (char *)action, fqdn,
			 (char *)value, NULL };
	mtls_err_t ret;

	snprintf(fqdn, sizeof(fqdn), "_acme-challenge.%s.", domain);
	ret = exec_run("acme_dns_hook", argv, "", ACME_HOOK_TIMEOUT_MS, 4096,
		       &out, err);
	free(out);
	log_info("event=acme_dns_hook identity=%s action=%s fqdn=%s result=%s",
		 c->name, action, fqdn, ret == MTLS_OK ? "ok" : mtls_err_name(ret));
	return ret;
}

/* The dns-01 records presented and not yet cleaned up, one "NAME VALUE"
 * line each, in STATE_DIR/NAME.acme-dns: recorded before the hook runs,
 * so that a crash mid-order leaves nothing behind in the zone (the next
 * order cleans up first; stale records pile up otherwise, and a TXT set
 * grown past what the DNS answers fails every later validation). */
#define ACME_DNS_SUFFIX "acme-dns"
#define ACME_DNS_FILE_MAX 8192

static void dns_record_path(const struct acme *c, char *out, size_t cap)
{
	renew_state_path(c->e->cfg, c->name, ACME_DNS_SUFFIX, out, cap);
}

static mtls_err_t dns_record_add(struct acme *c, const char *domain,
				 const char *value, struct mtls_error *err)
{
	char path[1024], buf[ACME_DNS_FILE_MAX];
	size_t n = 0;
	FILE *f;
	int w;

	dns_record_path(c, path, sizeof(path));
	f = fopen(path, "re");
	if (f != NULL) {
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
	}
	w = snprintf(buf + n, sizeof(buf) - n, "%s %s\n", domain, value);
	if (n >= sizeof(buf) || w < 0 || (size_t)w >= sizeof(buf) - n)
		return mtls_error_set(err, MTLS_ERR_LIMIT, "%s: too many dns-01 "
				      "records", path);
	return file_write_atomic(path, buf, n + (size_t)w, 0600, err);
}

/* Cleans up every recorded record, then forgets them. */
static void cleanup_dns(struct acme *c)
{
	char path[1024], buf[ACME_DNS_FILE_MAX + 1], *save = NULL, *line;
	struct mtls_error ignored;
	size_t n;
	FILE *f;

	dns_record_path(c, path, sizeof(path));
	f = fopen(path, "re");
	if (f == NULL)
		return;
	n = fread(buf, 1, ACME_DNS_FILE_MAX, f);
	fclose(f);
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');

		/* Only what we wrote: a DNS name and a base64url value. */
		if (sp == NULL || sp == line || sp[1] == '\0' ||
		    strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "0123456789-.") != (size_t)(sp - line) ||
		    strspn(sp + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789-_") != strlen(sp + 1))
			continue;
		*sp = '\0';
		(void)dns_hook(c, "cleanup", line, sp + 1, &ignored);
	}
	unlink(path);
}

/* An authorization, fetched (POST-as-GET) and parsed. */
static mtls_err_t get_authz(struct acme *c, const char *url,
			    struct acme_authz *az, int *retry_after,
			    struct mtls_error *err)
{
	struct http_answer a;
	char *raw = NULL;
	mtls_err_t ret;

	ret = post(c, "authorization", url, NULL, NULL, NULL, ACME_BODY_MAX, &raw,
		   &a, err);
	if (ret != MTLS_OK)
		return ret;
	*retry_after = a.retry_after;
	if (acme_parse_authz(a.body, a.body_len, az) != 0)
		ret = mtls_error_set(err, MTLS_ERR_IO, "ACME authorization: "
				     "unreadable");
	free(raw);
	return ret;
}

/* Answers one pending authorization and waits until it is decided. */
static mtls_err_t authorize(struct acme *c, const char *url,
			    struct acme_http01 *h1,
			    struct mtls_error *err)
{
	const char *want = c->r->acme_challenge == CFG_ACME_DNS01 ? "dns-01" :
								    "http-01";
	struct acme_authz az;
	struct http_answer a;
	char *raw = NULL, key_authz[256], value[64];
	const struct acme_challenge *ch = NULL;
	int retry_after = 0;
	mtls_err_t ret;

	ret = get_authz(c, url, &az, &retry_after, err);
	if (ret != MTLS_OK)
		return ret;
	if (strcmp(az.status, "valid") == 0)
		return MTLS_OK;
	if (strcmp(az.status, "pending") != 0)
		return mtls_error_set(err, MTLS_ERR_CERT_REFUSED, "ACME "
				      "authorization for %s is %s",
				      az.identifier, az.status);
	for (unsigned i = 0; i < az.n_chal; i++)
		if (strcmp(az.chal[i].type, want) == 0)
			ch = &az.chal[i];
	if (ch == NULL)
		return mtls_error_set(err, MTLS_ERR_CONFIG, "ACME: the CA offers "
				      "no %s challenge for %s", want,
				      az.identifier);
	snprintf(key_authz, sizeof(key_authz), "%s.%s", ch->token,
		 c->account.thumbprint);
	if (c->r->acme_challenge == CFG_ACME_DNS01) {
		dns_value(key_authz, value, sizeof(value));
		ret = dns_record_add(c, az.identifier, value, err);
		if (ret == MTLS_OK)
			ret = dns_hook(c, "present", az.identifier, value, err);
		if (ret != MTLS_OK)
			return ret;
	} else {
		ret = acme_http01_add(h1, ch->token, key_authz, err);
		if (ret != MTLS_OK)
			return ret;
	}
	renew_crash_point("acme_challenge");
	ret = post(c, "challenge", ch->url, "{}", NULL, NULL, ACME_BODY_MAX, &raw,
		   &a, err);
	free(raw);
	if (ret != MTLS_OK)
		return ret;
	retry_after = a.retry_after; /* the first wait is the challenge's */
	while (!timed_out(c)) {
		poll_wait(c, retry_after);
		ret = get_authz(c, url, &az, &retry_after, err);
		if (ret != MTLS_OK)
			return ret;
		if (strcmp(az.status, "valid") == 0) {
			log_info("event=acme_authorized identity=%s name=%s "
				 "challenge=%s", c->name, az.identifier, want);
			return MTLS_OK;
		}
		if (strcmp(az.status, "pending") != 0) {
			for (unsigned i = 0; i < az.n_chal; i++)
				if (strcmp(az.chal[i].type, want) == 0 &&
				    az.chal[i].error.type[0] != '\0') {
					log_warn("event=acme_problem identity=%s "
						 "step=challenge type=%s "
						 "detail=\"%s\"", c->name,
						 az.chal[i].error.type,
						 az.chal[i].error.detail);
					stats_count_problem(az.chal[i].error.type);
					return mtls_error_set(
						err, MTLS_ERR_CERT_REFUSED,
						"ACME %s for %s: %s: %s", want,
						az.identifier,
						az.chal[i].error.type,
						az.chal[i].error.detail);
				}
			return mtls_error_set(err, MTLS_ERR_CERT_REFUSED, "ACME "
					      "authorization for %s is %s",
					      az.identifier, az.status);
		}
	}
	return mtls_error_set(err, MTLS_ERR_TIMEOUT, "ACME authorization for "
			      "%s not decided within acme_timeout",
			      az.identifier);
}

/* The request as base64url DER, for finalize. */
static char *csr_b64url(const char *pem)
{
	const char *b = strstr(pem, "-----\n"), *e = strstr(pem, "\n-----END");
	char *clean, *out = NULL;
	uint8_t *der;
	word32 der_len;
	size_t n = 0, cap;

	if (b == NULL || e == NULL || e < b)
		return NULL;
	b += 6;
	clean = malloc((size_t)(e - b) + 1);
	der = malloc((size_t)(e - b) + 1);
	if (clean == NULL || der == NULL)
		goto out;
	for (const char *p = b; p < e; p++)
		if (!isspace((unsigned char)*p))
			clean[n++] = *p;
	der_len = (word32)(e - b);
	if (Base64_Decode((byte *)clean, (word32)n, der, &der_len) != 0)
		goto out;
	cap = 4 * (der_len / 3 + 2) + 1;
	out = malloc(cap);
	if (out != NULL && b64url_encode(der, der_len, out, cap) < 0) {
		free(out);
		out = NULL;
	}
out:
	free(clean);
	free(der);
	return out;
}

/* Does this PEM chain lead to issuer_ca? Intermediates are trusted only
 * once they verify against what is trusted already. */
static int chain_leads_to(const char *pem, const char *issuer_ca)
{
	WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
	uint8_t *der[IDENTITY_CHAIN_MAX] = { 0 };
	int len[IDENTITY_CHAIN_MAX] = { 0 }, loaded[IDENTITY_CHAIN_MAX] = { 0 };
	unsigned n = 0;
	const char *p = pem;
	int ok = 0, progress = 1;

	if (cm == NULL ||
	    wolfSSL_CertManagerLoadCA(cm, issuer_ca, NULL) != WOLFSSL_SUCCESS)
		goto out;
	while (n < IDENTITY_CHAIN_MAX &&
	       (p = strstr(p, "-----BEGIN CERTIFICATE-----")) != NULL) {
		const char *e = strstr(p, "-----END CERTIFICATE-----");

		if (e == NULL)
			break;
		e += strlen("-----END CERTIFICATE-----");
		der[n] = malloc((size_t)(e - p));
		if (der[n] == NULL)
			break;
		len[n] = wc_CertPemToDer((const unsigned char *)p, (int)(e - p),
					 der[n], (int)(e - p), CERT_TYPE);
		if (len[n] <= 0)
			break;
		n++;
		p = e;
	}
	while (progress) {
		progress = 0;
		for (unsigned i = 1; i < n; i++)
			if (!loaded[i] &&
			    wolfSSL_CertManagerVerifyBuffer(cm, der[i], len[i],
							    WOLFSSL_FILETYPE_ASN1) ==
				    WOLFSSL_SUCCESS &&
			    wolfSSL_CertManagerLoadCABuffer(cm, der[i], len[i],
							    WOLFSSL_FILETYPE_ASN1) ==
				    WOLFSSL_SUCCESS)
				loaded[i] = progress = 1;
	}
	ok = n > 0 && wolfSSL_CertManagerVerifyBuffer(cm, der[0], len[0],
						       WOLFSSL_FILETYPE_ASN1) ==
			      WOLFSSL_SUCCESS;
out:
	for (unsigned i = 0; i < IDENTITY_CHAIN_MAX; i++)
		free(der[i]);
	if (cm != NULL)
		wolfSSL_CertManagerFree(cm);
	return ok;
}

/* The certificate (RFC 8555 7.4.2): the default chain, else the first
 * alternate that leads to issuer_ca. */
static mtls_err_t download(struct acme *c, const char *url, char **chain,
			   struct mtls_error *err)
{
	char urls[1 + HTTP_LINKS_MAX][HTTP_URL_MAX];
	unsigned n_urls = 1;
	mtls_err_t ret;

	*chain = NULL;
	snprintf(urls[0], sizeof(urls[0]), "%s", url);
	for (unsigned i = 0; i < n_urls; i++) {
		struct http_answer a;
		char *raw = NULL;

		ret = post(c, "certificate", urls[i], NULL, NULL,
			   "application/pem-certificate-chain", ACME_CERT_MAX,
			   &raw, &a, err);
		if (ret != MTLS_OK)
			return ret;
		if (i == 0)
			for (unsigned k = 0; k < a.n_alternate; k++)
				snprintf(urls[n_urls++], sizeof(urls[0]), "%s",
					 a.alternate[k]);
		if (a.status == 200 &&
		    strstr(a.body, "-----BEGIN CERTIFICATE-----") != NULL &&
		    chain_leads_to(a.body, c->r->issuer_ca)) {
			*chain = strdup(a.body);
			free(raw);
			if (*chain == NULL)
				return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
			log_info("event=acme_certificate identity=%s chain=%s "
				 "alternates=%u", c->name,
				 i == 0 ? "default" : "alternate", n_urls - 1);
			return MTLS_OK;
		}
		free(raw);
	}
	return mtls_error_set(err, MTLS_ERR_UNKNOWN_CA, "ACME: no chain offered "
			      "(%u) leads to issuer_ca %s", n_urls,
			      c->r->issuer_ca);
}

mtls_err_t enroll_acme(const struct renew_env *e, const char *csr_pem,
		       const struct csr_request *names,
		       struct enroll_result *res, struct mtls_error *err)
{
	struct acme c;
	struct acme_order o;
	struct acme_http01 *h1 = NULL;
	struct http_answer a;
	char *raw = NULL, *payload = NULL, order_url[ACME_URL_MAX], *csr;
	mtls_err_t ret;

	memset(res, 0, sizeof(*res));
	memset(&o, 0, sizeof(o));
	ret = start(&c, e, err);
	if (ret == MTLS_OK && c.hook_ok)
		cleanup_dns(&c); /* what an interrupted order left */
	if (ret == MTLS_OK)
		ret = account(&c, err);
	if (ret != MTLS_OK)
		goto out;
	payload = order_payload(names, err);
	if (payload == NULL) {
		ret = err->code;
		goto out;
	}
	ret = post(&c, "newOrder", c.dir.new_order, payload, NULL, NULL,
		   ACME_BODY_MAX, &raw, &a, err);
	free(payload);
	payload = NULL;
	if (ret != MTLS_OK)
		goto out;
	if (acme_parse_order(a.body, a.body_len, &o) != 0 ||
	    strncmp(a.location, "https://", 8) != 0) {
		ret = mtls_error_set(err, MTLS_ERR_IO, "ACME newOrder: no order "
				     "(HTTP %d)", a.status);
		goto out;
	}
	snprintf(order_url, sizeof(order_url), "%s", a.location);
	free(raw);
	raw = NULL;
	log_info("event=acme_order identity=%s order=%s authorizations=%u",
		 c.name, order_url, o.n_authz);
	renew_crash_point("acme_order");
	if (c.r->acme_challenge == CFG_ACME_HTTP01 &&
	    strcmp(o.status, "pending") == 0) {
		ret = acme_http01_start(c.r->acme_http_host, c.r->acme_http_port,
					&h1, err);
		if (ret != MTLS_OK)
			goto out;
	}
	for (unsigned i = 0; ret == MTLS_OK && i < o.n_authz; i++)
		ret = authorize(&c, o.authz[i], h1, err);
	if (ret != MTLS_OK)
		goto out;
	/* Finalize: the request signed by the new key on the token. */
	csr = csr_b64url(csr_pem);
	if (csr == NULL) {
		ret = mtls_error_set(err, MTLS_ERR_ARG, "not a PEM request");
		goto out;
	}
	{
		json_object *f = json_object_new_object();

		json_object_object_add(f, "csr", json_object_new_string(csr));
		payload = strdup(json_object_to_json_string_ext(
			f, JSON_C_TO_STRING_PLAIN));
		json_object_put(f);
		free(csr);
	}
	ret = payload ? post(&c, "finalize", o.finalize, payload, NULL, NULL,
			     ACME_BODY_MAX, &raw, &a, err) :
			mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	if (ret != MTLS_OK)
		goto out;
	renew_crash_point("acme_finalize");
	for (;;) {
		if (acme_parse_order(a.body, a.body_len, &o) != 0) {
			ret = mtls_error_set(err, MTLS_ERR_IO, "ACME order: "
					     "unreadable");
			goto out;
		}
		if (strcmp(o.status, "valid") == 0 && o.certificate[0] != '\0')
			break;
		if (strcmp(o.status, "invalid") == 0) {
			ret = mtls_error_set(err, MTLS_ERR_CERT_REFUSED,
					     "ACME order invalid: %s: %s",
					     o.error.type[0] ? o.error.type : "-",
					     o.error.detail);
			goto out;
		}
		if (timed_out(&c)) {
			ret = mtls_error_set(err, MTLS_ERR_TIMEOUT, "ACME order "
					     "still %s after acme_timeout",
					     o.status);
			goto out;
		}
		poll_wait(&c, a.retry_after);
		free(raw);
		raw = NULL;
		ret = post(&c, "order", order_url, NULL, NULL, NULL,
			   ACME_BODY_MAX, &raw, &a, err);
		if (ret != MTLS_OK)
			goto out;
	}
	ret = download(&c, o.certificate, &res->chain_pem, err);
	if (ret == MTLS_OK)
		renew_crash_point("acme_download");
out:
	free(raw);
	free(payload);
	if (c.hook_ok)
		cleanup_dns(&c);
	acme_http01_stop(h1);
	finish(&c);
	return ret;
}

int acme_reason_code(const char *name)
{
	static const char *const names[] = {
		"unspecified", "key-compromise", "ca-compromise",
		"affiliation-changed", "superseded", "cessation-of-operation",
		"certificate-hold", NULL, "remove-from-crl",
		"privilege-withdrawn", "aa-compromise",
	};

	for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
		if (names[i] != NULL && strcmp(names[i], name) == 0)
			return i;
	return -1;
}

mtls_err_t acme_revoke(const struct renew_env *e, struct identity *id,
		       int reason, struct mtls_error *err)
{
	struct acme c;
	struct jws_key cert_key;
	struct http_answer a;
	char *raw = NULL, *payload = NULL, *b64;
	size_t cap = 4 * (id->chain_len[0] / 3 + 2) + 1;
	mtls_err_t ret;

	ret = start(&c, e, err);
	if (ret != MTLS_OK)
		goto out;
	if (c.dir.revoke_cert[0] == '\0') {
		ret = mtls_error_set(err, MTLS_ERR_CONFIG, "ACME: the directory "
				     "has no revokeCert");
		goto out;
	}
	/* Signed by the certificate's own key (RFC 8555 7.6): proof that
	 * whoever asks holds it, with no account needed. */
	ret = jws_key_init(&cert_key, id->key, err);
	if (ret != MTLS_OK)
		goto out;
	b64 = malloc(cap);
	if (b64 == NULL ||
	    b64url_encode(id->chain_der[0], id->chain_len[0], b64, cap) < 0) {
		free(b64);
		ret = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		goto out;
	}
	{
		json_object *o = json_object_new_object();

		json_object_object_add(o, "certificate", json_object_new_string(b64));
		json_object_object_add(o, "reason", json_object_new_int(reason));
		payload = strdup(json_object_to_json_string_ext(
			o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		free(b64);
	}
	ret = payload ? post(&c, "revokeCert", c.dir.revoke_cert, payload,
			     &cert_key, NULL, ACME_BODY_MAX, &raw, &a, err) :
			mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	if (ret == MTLS_OK)
		log_notice("event=acme_revoked identity=%s reason=%d", c.name,
			   reason);
out:
	free(raw);
	free(payload);
	finish(&c);
	return ret;
}
