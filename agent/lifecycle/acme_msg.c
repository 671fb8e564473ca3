#include "acme_msg.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#define ACME_ERR_NS "urn:ietf:params:acme:error:"

/* Parses a whole body as one JSON object (only white space after it),
 * or NULL. Depth bounded: a server cannot make us recurse deeply. */
static json_object *parse_object(const char *body, size_t len)
{
	json_tokener *tok;
	json_object *o;
	size_t at;

	if (len == 0 || len > ACME_BODY_MAX)
		return NULL;
	tok = json_tokener_new_ex(16);
	if (tok == NULL)
		return NULL;
	o = json_tokener_parse_ex(tok, body, (int)len);
	at = json_tokener_get_parse_end(tok);
	if (o != NULL && json_tokener_get_error(tok) == json_tokener_success) {
		while (at < len && (body[at] == ' ' || body[at] == '\n' ||
				    body[at] == '\r' || body[at] == '\t'))
			at++;
	}
	if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
			  at != len || !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

static int printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/* A string member copied into out: 0 if absent and optional, -1 if of
 * another type, too long or not printable ASCII. */
static int get_str(json_object *o, const char *key, char *out, size_t cap,
		   int required)
{
	json_object *v;
	const char *s;
	size_t n;

	out[0] = '\0';
	if (!json_object_object_get_ex(o, key, &v))
		return required ? -1 : 0;
	if (!json_object_is_type(v, json_type_string))
		return -1;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (n >= cap || strlen(s) != n || !printable(s))
		return -1;
	memcpy(out, s, n + 1);
	return 0;
}

static int is_https(const char *u)
{
	return strncmp(u, "https://", 8) == 0 && u[8] != '\0' &&
	       strpbrk(u, " \"<>\\^`{|}") == NULL;
}

static int get_url(json_object *o, const char *key, char *out, int required)
{
	if (get_str(o, key, out, ACME_URL_MAX, required) != 0)
		return -1;
	return out[0] == '\0' ? (required ? -1 : 0) : (is_https(out) ? 0 : -1);
}

/* RFC 8555 8.1: a token is base64url, with no padding. */
static int is_b64url(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return 0;
	return 1;
}

static int problem_from(json_object *o, struct acme_problem *p)
{
	char type[256];

	if (get_str(o, "type", type, sizeof(type), 1) != 0 ||
	    get_str(o, "detail", p->detail, sizeof(p->detail), 0) != 0) {
		/* A detail too long for the field is cut, not lost. */
		json_object *v;

		if (type[0] == '\0')
			return -1;
		p->detail[0] = '\0';
		if (json_object_object_get_ex(o, "detail", &v) &&
		    json_object_is_type(v, json_type_string)) {
			const char *s = json_object_get_string(v);
			size_t i;

			for (i = 0; s[i] && i + 1 < sizeof(p->detail); i++)
				p->detail[i] = (unsigned char)s[i] < 0x20 ||
						       (unsigned char)s[i] > 0x7e ?
						       '?' : s[i];
			p->detail[i] = '\0';
		}
	}
	{
		const char *t = strncmp(type, ACME_ERR_NS, strlen(ACME_ERR_NS)) == 0 ?
					type + strlen(ACME_ERR_NS) : type;

		if (strlen(t) >= sizeof(p->type))
			return -1;
		memcpy(p->type, t, strlen(t) + 1);
	}
	return 0;
}

int acme_parse_problem(const char *body, size_t len, int status,
		       struct acme_problem *p)
{
	json_object *o = parse_object(body, len);
	int r = -1;

	memset(p, 0, sizeof(*p));
	p->status = status;
	if (o != NULL) {
		r = problem_from(o, p);
		json_object_put(o);
	}
	if (r != 0)
		memset(p->type, 0, sizeof(p->type));
	return r;
}

int acme_parse_directory(const char *body, size_t len, struct acme_directory *d)
{
	json_object *o = parse_object(body, len), *meta, *v;
	int r = -1;

	memset(d, 0, sizeof(*d));
	if (o == NULL)
		return -1;
	if (get_url(o, "newNonce", d->new_nonce, 1) != 0 ||
	    get_url(o, "newAccount", d->new_account, 1) != 0 ||
	    get_url(o, "newOrder", d->new_order, 1) != 0 ||
	    get_url(o, "revokeCert", d->revoke_cert, 0) != 0)
		goto out;
	if (json_object_object_get_ex(o, "meta", &meta) &&
	    json_object_is_type(meta, json_type_object) &&
	    json_object_object_get_ex(meta, "externalAccountRequired", &v))
		d->eab_required = json_object_get_boolean(v);
	r = 0;
out:
	json_object_put(o);
	return r;
}

int acme_parse_order(const char *body, size_t len, struct acme_order *ord)
{
	json_object *o = parse_object(body, len), *arr, *e;
	int r = -1;
	size_t n;

	memset(ord, 0, sizeof(*ord));
	if (o == NULL)
		return -1;
	if (get_str(o, "status", ord->status, sizeof(ord->status), 1) != 0 ||
	    get_url(o, "finalize", ord->finalize, 1) != 0 ||
	    get_url(o, "certificate", ord->certificate, 0) != 0 ||
	    !json_object_object_get_ex(o, "authorizations", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		goto out;
	n = json_object_array_length(arr);
	if (n == 0 || n > ACME_AUTHZ_MAX)
		goto out;
	for (size_t i = 0; i < n; i++) {
		json_object *u = json_object_array_get_idx(arr, i);
		const char *s = json_object_get_string(u);

		if (!json_object_is_type(u, json_type_string) ||
		    strlen(s) >= ACME_URL_MAX || !is_https(s) || !printable(s))
			goto out;
		snprintf(ord->authz[i], ACME_URL_MAX, "%s", s);
	}
	ord->n_authz = (unsigned)n;
	if (json_object_object_get_ex(o, "error", &e) &&
	    (!json_object_is_type(e, json_type_object) ||
	     problem_from(e, &ord->error) != 0))
		goto out;
	r = 0;
out:
	json_object_put(o);
	return r;
}

static int challenge_from(json_object *o, struct acme_challenge *c)
{
	json_object *e;

	memset(c, 0, sizeof(*c));
	if (get_str(o, "type", c->type, sizeof(c->type), 1) != 0 ||
	    get_url(o, "url", c->url, 1) != 0 ||
	    get_str(o, "status", c->status, sizeof(c->status), 1) != 0 ||
	    get_str(o, "token", c->token, sizeof(c->token), 0) != 0)
		return -1;
	/* Only the types we answer need a token; each must be base64url. */
	if ((strcmp(c->type, "http-01") == 0 || strcmp(c->type, "dns-01") == 0) &&
	    !is_b64url(c->token))
		return -1;
	if (json_object_object_get_ex(o, "error", &e) &&
	    (!json_object_is_type(e, json_type_object) ||
	     problem_from(e, &c->error) != 0))
		return -1;
	return 0;
}

int acme_parse_challenge(const char *body, size_t len, struct acme_challenge *c)
{
	json_object *o = parse_object(body, len);
	int r;

	if (o == NULL) {
		memset(c, 0, sizeof(*c));
		return -1;
	}
	r = challenge_from(o, c);
	json_object_put(o);
	return r;
}

int acme_parse_authz(const char *body, size_t len, struct acme_authz *a)
{
	json_object *o = parse_object(body, len), *id, *arr, *w;
	char type[16];
	int r = -1;
	size_t n;

	memset(a, 0, sizeof(*a));
	if (o == NULL)
		return -1;
	if (get_str(o, "status", a->status, sizeof(a->status), 1) != 0 ||
	    !json_object_object_get_ex(o, "identifier", &id) ||
	    !json_object_is_type(id, json_type_object) ||
	    get_str(id, "type", type, sizeof(type), 1) != 0 ||
	    strcmp(type, "dns") != 0 ||
	    get_str(id, "value", a->identifier, sizeof(a->identifier), 1) != 0 ||
	    a->identifier[0] == '\0' ||
	    strspn(a->identifier, "abcdefghijklmnopqrstuvwxyz"
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") !=
		    strlen(a->identifier) ||
	    !json_object_object_get_ex(o, "challenges", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		goto out;
	if (json_object_object_get_ex(o, "wildcard", &w))
		a->wildcard = json_object_get_boolean(w);
	n = json_object_array_length(arr);
	if (n > ACME_CHAL_MAX)
		goto out;
	for (size_t i = 0; i < n; i++) {
		json_object *c = json_object_array_get_idx(arr, i);

		if (!json_object_is_type(c, json_type_object) ||
		    challenge_from(c, &a->chal[i]) != 0)
			goto out;
	}
	a->n_chal = (unsigned)n;
	r = 0;
out:
	json_object_put(o);
	return r;
}
