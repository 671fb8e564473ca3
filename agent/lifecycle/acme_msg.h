/* What an ACME server (RFC 8555) sends, parsed with json-c into bounded
 * structures: the directory, orders, authorizations, challenges and RFC
 * 7807 problem documents. Every URL must be https://, every token
 * base64url (it goes into a URL path, a file of the http-01 responder and
 * a hook's argument), every string printable; anything else is refused
 * as a whole. Pure: no I/O. */
#ifndef MTLS_ACME_MSG_H
#define MTLS_ACME_MSG_H

#include <stddef.h>

#define ACME_URL_MAX 1024
#define ACME_AUTHZ_MAX 16
#define ACME_CHAL_MAX 8
#define ACME_BODY_MAX (64 * 1024)

struct acme_problem {
	char type[96];     /* without "urn:ietf:params:acme:error:" */
	char detail[256];
	int status;
};

struct acme_directory {
	char new_nonce[ACME_URL_MAX], new_account[ACME_URL_MAX];
	char new_order[ACME_URL_MAX], revoke_cert[ACME_URL_MAX];
	int eab_required;  /* meta.externalAccountRequired */
};

struct acme_order {
	char status[16];
	char finalize[ACME_URL_MAX];
	char certificate[ACME_URL_MAX]; /* "" until valid */
	char authz[ACME_AUTHZ_MAX][ACME_URL_MAX];
	unsigned n_authz;
	struct acme_problem error;      /* type "" if none */
};

struct acme_challenge {
	char type[24];   /* http-01, dns-01, ... */
	char url[ACME_URL_MAX];
	char token[128];
	char status[16];
	struct acme_problem error;
};

struct acme_authz {
	char status[16];
	char identifier[256]; /* the dns value, without "*." */
	int wildcard;
	struct acme_challenge chal[ACME_CHAL_MAX];
	unsigned n_chal;
};

/* 0, or -1 if the body is not such an object. */
int acme_parse_directory(const char *body, size_t len, struct acme_directory *d);
int acme_parse_order(const char *body, size_t len, struct acme_order *o);
int acme_parse_authz(const char *body, size_t len, struct acme_authz *a);
int acme_parse_challenge(const char *body, size_t len, struct acme_challenge *c);
/* An answer that is no problem document still gives a type ("") and the
 * status; returns -1 then. */
int acme_parse_problem(const char *body, size_t len, int status,
		       struct acme_problem *p);

#endif
