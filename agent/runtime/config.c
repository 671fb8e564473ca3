#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mtls_log.h"
#include "p11.h"

/* libinih is built with INI_MAX_LINE; our reader refuses longer lines
 * instead of letting the parser see the tail as a line of its own. */
#define LINE_MAX_INI (INI_MAX_LINE - 1)

enum section_kind {
	SEC_NONE,
	SEC_AGENT,
	SEC_TOKEN,
	SEC_IDENTITY,
	SEC_TUNNEL,
	SEC_RULE,
	SEC_PROFILE,
	SEC_DESTINATIONS,
};

struct parse_state {
	struct config *c;
	const char *name;
	const char *text;
	size_t len, pos;
	int line;
	enum section_kind kind;
	int index;
	char section[INI_MAX_LINE];
	/* Names of identities referenced by tunnels, resolved at the end. */
	char tunnel_identity[CFG_MAX_TUNNELS][CFG_NAME_MAX];
	char tunnel_profile[CFG_MAX_TUNNELS][CFG_NAME_MAX];
	char identity_token[CFG_MAX_IDENTITIES][CFG_NAME_MAX];
	struct mtls_error *err;
	int failed;
	/* Keys of the current section, for duplicates (a second value would
	 * silently win, or be appended to a list). */
	struct {
		char key[64];
		int line;
	} seen[128];
	unsigned n_seen;
	int agent_line;  /* where [agent] began, 0 if not yet */
	int sections;    /* headers read */
};

static int fail(struct parse_state *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail(struct parse_state *st, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!st->failed) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		mtls_error_set(st->err, MTLS_ERR_CONFIG, "%s:%d: %s", st->name,
			       st->line, msg);
		st->failed = 1;
	}
	return 0;
}

static int begin_section(struct parse_state *st, const char *section);

/* Section headers are handled here, as the line is read, so that a section
 * without keys is still checked and errors name the header's own line. */
static void reader_section(struct parse_state *st, const char *line)
{
	char name[INI_MAX_LINE];
	const char *p = line, *end;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '[')
		return;
	end = strchr(p, ']');
	if (end == NULL) {
		/* Named here, on its own line: inih would go on and the
		 * first complaint would be about the next line's key. */
		fail(st, "section header without its closing ']': write "
		     "[%.*s]", (int)strcspn(p + 1, "\r\n"), p + 1);
		return;
	}
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	snprintf(name, sizeof(name), "%.*s", (int)(end - p), p);
	begin_section(st, name);
}

static char *reader(char *str, int num, void *stream)
{
	struct parse_state *st = stream;
	size_t n = 0;

	if (st->pos >= st->len)
		return NULL;
	st->line++;
	while (st->pos < st->len && n + 1 < (size_t)num) {
		char ch = st->text[st->pos++];

		if (ch == '\0') {
			fail(st, "NUL byte in file");
			ch = ' ';
		}
		str[n++] = ch;
		if (ch == '\n')
			break;
	}
	str[n] = '\0';
	if (n > 0 && str[n - 1] != '\n' && st->pos < st->len) {
		fail(st, "line longer than %d characters", LINE_MAX_INI - 1);
		/* Skip the rest of the line. */
		while (st->pos < st->len && st->text[st->pos++] != '\n')
			;
		str[0] = '\0';
	}
	if (!st->failed)
		reader_section(st, str);
	return str;
}

int config_parse_duration_ms(const char *s, unsigned *out)
{
	char *end;
	double v;
	double mult = 1000.0;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || v < 0)
		return -1;
	if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
		mult = 1000.0;
	else if (strcmp(end, "ms") == 0)
		mult = 1.0;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		mult = 60000.0;
	else if (strcmp(end, "h") == 0)
		mult = 3600000.0;
	else if (strcmp(end, "d") == 0)
		mult = 86400000.0;
	else
		return -1;
	v *= mult;
	if (v > (double)UINT_MAX)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/* "host:port" or "[v6]:port". */
static int parse_host_port(const char *s, char **host, uint16_t *port)
{
	const char *colon, *h = s;
	size_t hlen;
	unsigned long p;

	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen > 253 || parse_uint(colon + 1, 65535, &p) != 0 ||
	    p == 0)
		return -1;
	*host = strndup(h, hlen);
	if (*host == NULL)
		return -1;
	*port = (uint16_t)p;
	return 0;
}

static int set_str(struct parse_state *st, char **dst, const char *v)
{
	if (*dst != NULL)
		return fail(st, "duplicate key");
	if (*v == '\0')
		return fail(st, "empty value");
	*dst = strdup(v);
	if (*dst == NULL)
		return fail(st, "out of memory");
	return 1;
}

/* A pkcs11: URI as the token layer will read it, refused here with the
 * line rather than later as a token or key that is not found. */
static int uri_check(struct parse_state *st, const char *k, const char *v)
{
	struct mtls_error e = { 0 };
	char msg[256];

	if (p11_uri_check(v, &e) == MTLS_OK)
		return 0;
	fail(st, "%s: %s", k, mtls_error_str(&e, msg, sizeof(msg)));
	return -1;
}

static int set_name(struct parse_state *st, char *dst, const char *v)
{
	if (strlen(v) >= CFG_NAME_MAX)
		return fail(st, "name longer than %d", CFG_NAME_MAX - 1);
	strcpy(dst, v);
	return 1;
}

static int valid_name(const char *s)
{
	if (*s == '\0' || strlen(s) >= CFG_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' &&
		    *s != '.')
			return 0;
	return 1;
}

static int begin_section(struct parse_state *st, const char *section)
{
	const char *sp = strchr(section, ' ');
	char kind[16];
	const char *name;
	size_t klen;

	snprintf(st->section, sizeof(st->section), "%s", section);
	st->n_seen = 0;
	st->sections++;
	if (strcmp(section, "agent") == 0) {
		if (st->agent_line > 0)
			return fail(st, "[agent] a second time (first at line "
				    "%d): put its keys in one [agent] section",
				    st->agent_line);
		st->agent_line = st->line;
		st->kind = SEC_AGENT;
		return 1;
	}
	if (sp == NULL)
		return fail(st, "unknown section [%s]", section);
	klen = (size_t)(sp - section);
	if (klen >= sizeof(kind))
		return fail(st, "unknown section [%s]", section);
	memcpy(kind, section, klen);
	kind[klen] = '\0';
	name = sp + 1;
	if (!valid_name(name))
		return fail(st, "bad name '%s' (letters, digits, - _ .)", name);

	if (strcmp(kind, "token") == 0) {
		for (unsigned i = 0; i < st->c->n_tokens; i++)
			if (strcmp(st->c->tokens[i].name, name) == 0)
				return fail(st, "token '%s' defined twice", name);
		if (st->c->n_tokens >= CFG_MAX_TOKENS)
			return fail(st, "more than %d tokens", CFG_MAX_TOKENS);
		st->kind = SEC_TOKEN;
		st->index = (int)st->c->n_tokens++;
		st->c->tokens[st->index].line = st->line;
		return set_name(st, st->c->tokens[st->index].name, name);
	}
	if (strcmp(kind, "identity") == 0) {
		if (config_find_identity(st->c, name) >= 0)
			return fail(st, "identity '%s' defined twice", name);
		if (st->c->n_identities >= CFG_MAX_IDENTITIES)
			return fail(st, "more than %d identities",
				    CFG_MAX_IDENTITIES);
		st->kind = SEC_IDENTITY;
		st->index = (int)st->c->n_identities++;
		struct cfg_identity *ci = &st->c->identities[st->index];

		ci->line = st->line;
		ci->token = -1;
		ci->renew.exec_timeout_ms = 60000;
		ci->renew.acme_timeout_ms = 300000;
		ci->renew.sched.renew_at_permille = 667;
		ci->renew.sched.jitter_permille = 20;
		ci->renew.sched.retry_min = 30;
		ci->renew.sched.retry_max = 3600;
		ci->renew.sched.warn_before[0] = 7 * 86400;
		ci->renew.sched.warn_before[1] = 86400;
		ci->renew.sched.n_warn = 2;
		return set_name(st, st->c->identities[st->index].name, name);
	}
	if (strcmp(kind, "rule") == 0 || strcmp(kind, "profile") == 0 ||
	    strcmp(kind, "destinations") == 0) {
		enum policy_section ps = kind[0] == 'r' ? POLICY_SECTION_RULE :
					 kind[0] == 'p' ? POLICY_SECTION_PROFILE :
							  POLICY_SECTION_DESTINATIONS;
		char msg[256];

		st->kind = kind[0] == 'r' ? SEC_RULE :
			   kind[0] == 'p' ? SEC_PROFILE : SEC_DESTINATIONS;
		st->index = policy_add(st->c->policy, ps, name, st->line, msg,
				       sizeof(msg));
		if (st->index < 0)
			return fail(st, "%s", msg);
		return 1;
	}
	if (strcmp(kind, "tunnel") == 0 || strcmp(kind, "proxy") == 0) {
		for (unsigned i = 0; i < st->c->n_tunnels; i++)
			if (strcmp(st->c->tunnels[i].name, name) == 0)
				return fail(st, "[%s %s]: a tunnel or proxy of "
					    "that name exists", kind, name);
		if (st->c->n_tunnels >= CFG_MAX_TUNNELS)
			return fail(st, "more than %d tunnels", CFG_MAX_TUNNELS);
		st->kind = SEC_TUNNEL;
		st->index = (int)st->c->n_tunnels++;
		struct cfg_tunnel *t = &st->c->tunnels[st->index];
		t->line = st->line;
		t->mode = 0600;
		t->owner = (uid_t)-1;
		t->group = (gid_t)-1;
		t->identity = -1;
		t->profile = -1;
		t->is_proxy = kind[0] == 'p';
		t->min_tls = CFG_TLS_1_2;
		return set_name(st, t->name, name);
	}
	return fail(st, "unknown section [%s]", section);
}

static int parse_group(struct parse_state *st, const char *v, gid_t *gid);
static int is_loopback(const char *host);

static int agent_key(struct parse_state *st, const char *k, const char *v)
{
	struct cfg_agent *a = &st->c->agent;
	unsigned long n;
	enum mtls_log_level lvl;

	if (strcmp(k, "max_connections") == 0) {
		if (parse_uint(v, 65536, &n) != 0 || n == 0)
			return fail(st, "max_connections: 1..65536");
		a->max_connections = (unsigned)n;
	} else if (strcmp(k, "resume") == 0) {
		if (strcmp(v, "yes") == 0)
			a->resume = 1;
		else if (strcmp(v, "no") == 0)
			a->resume = 0;
		else
			return fail(st, "resume: yes or no");
	} else if (strcmp(k, "bulk_crypto") == 0) {
		if (strcmp(v, "openssl") == 0)
			a->bulk_crypto_openssl = 1;
		else if (strcmp(v, "wolfssl") == 0)
			a->bulk_crypto_openssl = 0;
		else
			return fail(st, "bulk_crypto: openssl (AES-GCM and "
				    "P-256 in libcrypto's vector code) or "
				    "wolfssl");
	} else if (strcmp(k, "max_handshakes") == 0) {
		if (parse_uint(v, 4096, &n) != 0 || n == 0)
			return fail(st, "max_handshakes: 1..4096");
		a->max_handshakes = (unsigned)n;
	} else if (strcmp(k, "max_connections_per_uid") == 0) {
		if (parse_uint(v, 65536, &n) != 0)
			return fail(st, "max_connections_per_uid: 0..65536 (0: none)");
		a->max_connections_per_uid = (unsigned)n;
	} else if (strcmp(k, "handshake_timeout") == 0) {
		if (config_parse_duration_ms(v, &a->handshake_timeout_ms) ||
		    a->handshake_timeout_ms == 0)
			return fail(st, "handshake_timeout: a duration like 10s");
	} else if (strcmp(k, "request_timeout") == 0) {
		if (config_parse_duration_ms(v, &a->request_timeout_ms) ||
		    a->request_timeout_ms == 0)
			return fail(st, "request_timeout: a duration like 5s");
	} else if (strcmp(k, "connect_timeout") == 0) {
		if (config_parse_duration_ms(v, &a->connect_timeout_ms) ||
		    a->connect_timeout_ms == 0)
			return fail(st, "connect_timeout: a duration like 5s");
	} else if (strcmp(k, "idle_timeout") == 0) {
		if (config_parse_duration_ms(v, &a->idle_timeout_ms))
			return fail(st, "idle_timeout: a duration (0 = none)");
	} else if (strcmp(k, "shutdown_grace") == 0) {
		if (config_parse_duration_ms(v, &a->shutdown_grace_ms))
			return fail(st, "shutdown_grace: a duration like 5s");
	} else if (strcmp(k, "state_dir") == 0) {
		if (v[0] != '/')
			return fail(st, "state_dir: an absolute path");
		free(a->state_dir); /* the default */
		a->state_dir = NULL;
		return set_str(st, &a->state_dir, v);
	} else if (strcmp(k, "control") == 0) {
		if (v[0] != '/' || strlen(v) >= 108)
			return fail(st, "control: an absolute socket path");
		return set_str(st, &a->control, v);
	} else if (strcmp(k, "control_group") == 0) {
		if (!parse_group(st, v, &a->control_group))
			return 0;
		a->has_control_group = 1;
	} else if (strcmp(k, "metrics") == 0) {
		if (a->metrics_path != NULL || a->metrics_host != NULL)
			return fail(st, "duplicate key");
		if (v[0] == '/') {
			if (strlen(v) >= 108)
				return fail(st, "metrics: socket path too long");
			return set_str(st, &a->metrics_path, v);
		}
		if (parse_host_port(v, &a->metrics_host, &a->metrics_port) != 0 ||
		    !is_loopback(a->metrics_host))
			return fail(st, "metrics: a socket path or a loopback "
					"address:port");
	} else if (strcmp(k, "log_level") == 0) {
		if (mtls_log_level_parse(v, &lvl) != 0)
			return fail(st, "log_level: err, warning, notice, "
					"info or debug");
		a->log_level = (int)lvl;
	} else {
		return fail(st, "unknown key '%s' in [agent]", k);
	}
	return 1;
}

static int token_key(struct parse_state *st, const char *k, const char *v)
{
	struct cfg_token *t = &st->c->tokens[st->index];
	unsigned long n;

	if (strcmp(k, "module") == 0) {
		t->line_module = st->line;
		return set_str(st, &t->module, v);
	}
	if (strcmp(k, "uri") == 0) {
		if (strncmp(v, "pkcs11:", 7) != 0)
			return fail(st, "uri must start with pkcs11:");
		if (uri_check(st, k, v) != 0)
			return 0;
		t->line_uri = st->line;
		return set_str(st, &t->uri, v);
	}
	if (strcmp(k, "pin_source") == 0) {
		if (strncmp(v, "file:", 5) != 0 &&
		    strncmp(v, "credential:", 11) != 0 &&
		    strncmp(v, "env:", 4) != 0 && strcmp(v, "unlock") != 0 &&
		    strcmp(v, "pinentry") != 0)
			return fail(st, "pin_source: file:PATH, "
					"credential:NAME, env:VAR, unlock or "
					"pinentry");
		t->line_pin = st->line;
		return set_str(st, &t->pin_source, v);
	}
	if (strcmp(k, "pinentry_program") == 0) {
		/* Run by the agent with a person's PIN passing through it:
		 * an absolute path to an executable, as gpg-agent's option. */
		if (v[0] != '/' || access(v, X_OK) != 0)
			return fail(st, "pinentry_program: an absolute path to "
					"an executable (%s)", v);
		return set_str(st, &t->pinentry_program, v);
	}
	if (strcmp(k, "so_pin_source") == 0) {
		/* A person cannot be asked for it mid-renewal: no unlock. */
		if (strncmp(v, "file:", 5) != 0 &&
		    strncmp(v, "credential:", 11) != 0 &&
		    strncmp(v, "env:", 4) != 0)
			return fail(st, "so_pin_source: file:PATH, "
					"credential:NAME or env:VAR");
		return set_str(st, &t->so_pin_source, v);
	}
	if (strcmp(k, "max_sessions") == 0) {
		if (parse_uint(v, 32, &n) != 0 || n == 0)
			return fail(st, "max_sessions: 1..32");
		t->max_sessions = (unsigned)n;
		return 1;
	}
	return fail(st, "unknown key '%s' in [%s]", k, st->section);
}

/* key_ids = 01, 05: hex CKA_IDs, at least two (a renewal never generates
 * over the key in service), each once. */
static int parse_key_ids(struct parse_state *st, struct cfg_renew *r,
			 const char *v)
{
	const char *p = v;

	r->n_key_ids = 0;
	while (*p != '\0') {
		size_t n = 0;
		uint8_t *id;

		p += strspn(p, " ,\t");
		if (*p == '\0')
			break;
		if (r->n_key_ids == CFG_KEY_IDS_MAX)
			return fail(st, "key_ids: at most %d", CFG_KEY_IDS_MAX);
		id = r->key_ids[r->n_key_ids];
		while (isxdigit((unsigned char)p[0]) &&
		       isxdigit((unsigned char)p[1])) {
			unsigned byte;

			if (n == CFG_KEY_ID_MAX || sscanf(p, "%2x", &byte) != 1)
				return fail(st, "key_ids: an id is 1 to %d "
						"bytes of hex", CFG_KEY_ID_MAX);
			id[n++] = (uint8_t)byte;
			p += 2;
		}
		if (n == 0 || (*p != '\0' && strchr(" ,\t", *p) == NULL))
			return fail(st, "key_ids: hex CKA_IDs like 01, 05");
		for (unsigned j = 0; j < r->n_key_ids; j++)
			if (r->key_id_len[j] == n && memcmp(r->key_ids[j], id, n) == 0)
				return fail(st, "key_ids: an id twice");
		r->key_id_len[r->n_key_ids++] = n;
	}
	if (r->n_key_ids < 2)
		return fail(st, "key_ids: at least two, so that a renewal never "
				"generates over the key in service");
	return 1;
}

/* "66%" or "0.66" -> permille */
static int parse_share(const char *v, unsigned *permille)
{
	char *end;
	double d = strtod(v, &end);

	if (end == v)
		return -1;
	if (*end == '%') {
		d /= 100.0;
		end++;
	}
	if (*end != '\0' || d < 0.0 || d > 1.0)
		return -1;
	*permille = (unsigned)(d * 1000.0 + 0.5);
	return 0;
}

static int parse_seconds(const char *v, int64_t *out)
{
	unsigned ms;

	if (config_parse_duration_ms(v, &ms) != 0)
		return -1;
	*out = ms / 1000;
	return 0;
}

static int acme_key(struct parse_state *st, struct cfg_renew *r,
		    const char *k, const char *v)
{
	if (strcmp(k, "acme_directory") == 0) {
		if (strncmp(v, "https://", 8) != 0 || strchr(v + 8, '/') == NULL)
			return fail(st, "acme_directory: https://HOST[:PORT]/PATH "
					"(the directory URL; ACME runs over TLS)");
		return set_str(st, &r->acme_directory, v);
	}
	if (strcmp(k, "acme_ca") == 0)
		return set_str(st, &r->acme_ca, v);
	if (strcmp(k, "acme_account_key") == 0) {
		if (strncmp(v, "pkcs11:", 7) != 0)
			return fail(st, "acme_account_key: a pkcs11: URI of a key "
					"on the identity's token (mtlsctl keygen)");
		return set_str(st, &r->acme_account_key, v);
	}
	if (strcmp(k, "acme_contact") == 0) {
		if (strncmp(v, "mailto:", 7) != 0)
			return fail(st, "acme_contact: mailto:ADDRESS[, ...]");
		return set_str(st, &r->acme_contact, v);
	}
	if (strcmp(k, "acme_eab_kid") == 0)
		return set_str(st, &r->acme_eab_kid, v);
	if (strcmp(k, "acme_eab_hmac") == 0) {
		if (strncmp(v, "file:", 5) != 0 && strncmp(v, "credential:", 11) != 0)
			return fail(st, "acme_eab_hmac: file:PATH or credential:NAME "
					"(a secret: never in the configuration)");
		return set_str(st, &r->acme_eab_hmac, v);
	}
	if (strcmp(k, "acme_challenge") == 0) {
		if (strcmp(v, "http-01") == 0)
			r->acme_challenge = CFG_ACME_HTTP01;
		else if (strcmp(v, "dns-01") == 0)
			r->acme_challenge = CFG_ACME_DNS01;
		else
			return fail(st, "acme_challenge: http-01 or dns-01");
		return 1;
	}
	if (strcmp(k, "acme_http_listen") == 0) {
		if (r->acme_http_host != NULL ||
		    parse_host_port(v, &r->acme_http_host, &r->acme_http_port) != 0)
			return fail(st, "acme_http_listen: ADDRESS:PORT (where the "
					"CA's validation reaches this machine)");
		return 1;
	}
	if (strcmp(k, "acme_dns_hook") == 0) {
		if (v[0] != '/')
			return fail(st, "acme_dns_hook: an absolute path (run as "
					"HOOK present|cleanup FQDN VALUE)");
		return set_str(st, &r->acme_dns_hook, v);
	}
	if (strcmp(k, "acme_timeout") == 0) {
		if (config_parse_duration_ms(v, &r->acme_timeout_ms) ||
		    r->acme_timeout_ms == 0)
			return fail(st, "acme_timeout: a duration like 5m");
		return 1;
	}
	if (strcmp(k, "acme_reenroll") == 0) {
		if (strcmp(v, "yes") && strcmp(v, "no"))
			return fail(st, "acme_reenroll: yes or no");
		r->acme_reenroll = strcmp(v, "yes") == 0;
		return 1;
	}
	return fail(st, "unknown key %s (ACME keys: acme_directory, acme_ca, "
			"acme_account_key, acme_contact, acme_eab_kid, "
			"acme_eab_hmac, acme_challenge, acme_http_listen, "
			"acme_dns_hook, acme_timeout, acme_reenroll)", k);
}

static int renew_key(struct parse_state *st, struct cfg_renew *r,
		     const char *k, const char *v)
{
	if (strcmp(k, "enroll") == 0) {
		if (strcmp(v, "est") == 0)
			r->enroll = CFG_ENROLL_EST;
		else if (strcmp(v, "exec") == 0)
			r->enroll = CFG_ENROLL_EXEC;
		else if (strcmp(v, "acme") == 0)
			r->enroll = CFG_ENROLL_ACME;
		else if (strcmp(v, "none") == 0)
			r->enroll = CFG_ENROLL_NONE;
		else
			return fail(st, "enroll: est, acme, exec or none");
		return 1;
	}
	if (strcmp(k, "est_url") == 0) {
		const char *h = v + 8, *slash;
		char hostport[300];

		if (strncmp(v, "https://", 8) != 0 || r->est_host != NULL)
			return fail(st, "est_url: https://HOST:PORT/PATH (EST "
					"runs over TLS)");
		slash = strchr(h, '/');
		if (slash == NULL || (size_t)(slash - h) >= sizeof(hostport))
			return fail(st, "est_url: https://HOST:PORT/PATH");
		memcpy(hostport, h, (size_t)(slash - h));
		hostport[slash - h] = '\0';
		if (strchr(hostport, ':') == NULL)
			strcat(hostport, ":443");
		if (parse_host_port(hostport, &r->est_host, &r->est_port) != 0)
			return fail(st, "est_url: bad host or port");
		return set_str(st, &r->est_path, slash);
	}
	if (strcmp(k, "est_ca") == 0)
		return set_str(st, &r->est_ca, v);
	if (strcmp(k, "est_user") == 0)
		return set_str(st, &r->est_user, v);
	if (strcmp(k, "est_password_file") == 0)
		return set_str(st, &r->est_password_file, v);
	if (strcmp(k, "est_bootstrap_key") == 0) {
		if (strncmp(v, "pkcs11:", 7) != 0)
			return fail(st, "est_bootstrap_key must be a pkcs11: URI "
					"(a key on the identity's token)");
		r->est_bootstrap_line = st->line;
		return set_str(st, &r->est_bootstrap_key, v);
	}
	if (strcmp(k, "est_bootstrap_cert") == 0) {
		r->est_bootstrap_line = st->line;
		return set_str(st, &r->est_bootstrap_cert, v);
	}
	if (strcmp(k, "exec") == 0)
		return set_str(st, &r->exec, v);
	if (strcmp(k, "exec_timeout") == 0) {
		if (config_parse_duration_ms(v, &r->exec_timeout_ms) ||
		    r->exec_timeout_ms == 0)
			return fail(st, "exec_timeout: a duration like 60s");
		return 1;
	}
	if (strncmp(k, "acme_", 5) == 0)
		return acme_key(st, r, k, v);
	if (strcmp(k, "issuer_ca") == 0)
		return set_str(st, &r->issuer_ca, v);
	if (strcmp(k, "key_type") == 0) {
		if (strcmp(v, "ec-p256") && strcmp(v, "ec-p384") &&
		    strcmp(v, "rsa-2048") && strcmp(v, "rsa-3072"))
			return fail(st, "key_type: ec-p256, ec-p384, rsa-2048 "
					"or rsa-3072");
		return set_str(st, &r->key_type, v);
	}
	if (strcmp(k, "key_ids") == 0)
		return parse_key_ids(st, r, v);
	if (strcmp(k, "subject") == 0)
		return set_str(st, &r->subject, v);
	if (strcmp(k, "sans") == 0)
		return set_str(st, &r->sans, v);
	if (strcmp(k, "cert_file") == 0) {
		if (v[0] != '/')
			return fail(st, "cert_file: an absolute path");
		return set_str(st, &r->cert_file, v);
	}
	if (strcmp(k, "renew_at") == 0) {
		if (parse_share(v, &r->sched.renew_at_permille) != 0 ||
		    r->sched.renew_at_permille == 0)
			return fail(st, "renew_at: a share of the lifetime, "
					"like 66%%");
		return 1;
	}
	if (strcmp(k, "renew_before") == 0) {
		if (parse_seconds(v, &r->sched.renew_before) != 0 ||
		    r->sched.renew_before <= 0)
			return fail(st, "renew_before: a duration like 7d or 12h");
		return 1;
	}
	if (strcmp(k, "renew_jitter") == 0) {
		if (parse_share(v, &r->sched.jitter_permille) != 0 ||
		    r->sched.jitter_permille > 500)
			return fail(st, "renew_jitter: a share up to 50%%");
		return 1;
	}
	if (strcmp(k, "retry_min") == 0) {
		if (parse_seconds(v, &r->sched.retry_min) != 0 ||
		    r->sched.retry_min <= 0)
			return fail(st, "retry_min: a duration like 30s");
		return 1;
	}
	if (strcmp(k, "retry_max") == 0) {
		if (parse_seconds(v, &r->sched.retry_max) != 0 ||
		    r->sched.retry_max <= 0)
			return fail(st, "retry_max: a duration like 1h");
		return 1;
	}
	if (strcmp(k, "warn_before") == 0) {
		char buf[INI_MAX_LINE], *save = NULL, *tok;

		snprintf(buf, sizeof(buf), "%s", v);
		r->sched.n_warn = 0;
		for (tok = strtok_r(buf, ", ", &save); tok;
		     tok = strtok_r(NULL, ", ", &save)) {
			if (r->sched.n_warn >= RENEW_WARN_MAX ||
			    parse_seconds(tok, &r->sched.warn_before[r->sched.n_warn]) != 0)
				return fail(st, "warn_before: up to %d durations "
						"like 7d, 1d", RENEW_WARN_MAX);
			r->sched.n_warn++;
		}
		return 1;
	}
	return fail(st, "unknown key '%s' in [%s]", k, st->section);
}

static int identity_key(struct parse_state *st, const char *k, const char *v)
{
	struct cfg_identity *id = &st->c->identities[st->index];

	if (strcmp(k, "token") == 0) {
		if (st->identity_token[st->index][0] != '\0')
			return fail(st, "duplicate key");
		return set_name(st, st->identity_token[st->index], v);
	}
	if (strcmp(k, "key") == 0) {
		if (strncmp(v, "pkcs11:", 7) != 0)
			return fail(st, "key must be a pkcs11: URI (keys stay "
					"on the token)");
		if (uri_check(st, k, v) != 0)
			return 0;
		return set_str(st, &id->key, v);
	}
	if (strcmp(k, "cert") == 0) {
		if (strncmp(v, "pkcs11:", 7) == 0 && uri_check(st, k, v) != 0)
			return 0;
		return set_str(st, &id->cert, v);
	}
	if (strcmp(k, "chain") == 0)
		return set_str(st, &id->chain, v);
	if (strcmp(k, "ca") == 0) {
		id->line_ca = st->line;
		return set_str(st, &id->ca, v);
	}
	if (strcmp(k, "env") == 0) {
		if (!valid_name(v))
			return fail(st, "env: a word like dev or prod");
		return set_str(st, &id->env, v);
	}
	return renew_key(st, &id->renew, k, v);
}

static int parse_owner(struct parse_state *st, const char *v, uid_t *uid)
{
	unsigned long n;
	struct passwd *pw;

	if (parse_uint(v, (uid_t)-2, &n) == 0) {
		*uid = (uid_t)n;
		return 1;
	}
	pw = getpwnam(v);
	if (pw == NULL)
		return fail(st, "unknown user '%s'", v);
	*uid = pw->pw_uid;
	return 1;
}

static int parse_group(struct parse_state *st, const char *v, gid_t *gid)
{
	unsigned long n;
	struct group *gr;

	if (parse_uint(v, (gid_t)-2, &n) == 0) {
		*gid = (gid_t)n;
		return 1;
	}
	gr = getgrnam(v);
	if (gr == NULL)
		return fail(st, "unknown group '%s'", v);
	*gid = gr->gr_gid;
	return 1;
}

static int is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

static int resolve_ids(struct parse_state *st, const char *key, const char *v,
		       char *out, size_t cap);

static int tunnel_key(struct parse_state *st, const char *k, const char *v)
{
	struct cfg_tunnel *t = &st->c->tunnels[st->index];

	if (strcmp(k, "listen") == 0) {
		if (t->listen_path != NULL || t->listen_host != NULL)
			return fail(st, "duplicate key");
		if (v[0] == '/') {
			if (strlen(v) >= 108)
				return fail(st, "socket path longer than 107");
			return set_str(st, &t->listen_path, v);
		}
		if (parse_host_port(v, &t->listen_host, &t->listen_port) != 0)
			return fail(st, "listen: an absolute socket path or "
					"127.0.0.1:PORT");
		/* Plaintext must never leave the machine. */
		if (!is_loopback(t->listen_host))
			return fail(st, "listen: only loopback addresses "
					"(127.0.0.0/8, ::1)");
		return 1;
	}
	if (strcmp(k, "mode") == 0) {
		char *end;
		unsigned long m = strtoul(v, &end, 8);

		if (*v == '\0' || *end != '\0' || m > 0777)
			return fail(st, "mode: octal, like 0660");
		t->mode = (mode_t)m;
		return 1;
	}
	if (strcmp(k, "owner") == 0)
		return parse_owner(st, v, &t->owner);
	if (strcmp(k, "group") == 0)
		return parse_group(st, v, &t->group);
	if (!t->is_proxy && strcmp(k, "connect") == 0) {
		if (t->connect_host != NULL)
			return fail(st, "duplicate key");
		if (parse_host_port(v, &t->connect_host, &t->connect_port) != 0)
			return fail(st, "connect: HOST:PORT");
		return 1;
	}
	if (!t->is_proxy && strcmp(k, "identity") == 0) {
		if (st->tunnel_identity[st->index][0] != '\0')
			return fail(st, "duplicate key");
		return set_name(st, st->tunnel_identity[st->index], v);
	}
	if (!t->is_proxy && (strcmp(k, "uid") == 0 || strcmp(k, "gid") == 0 ||
			     strcmp(k, "exe") == 0 || strcmp(k, "unit") == 0)) {
		char ids[INI_MAX_LINE * 2], msg[256];

		if (t->callers == NULL &&
		    (t->callers = calloc(1, sizeof(*t->callers))) == NULL)
			return fail(st, "out of memory");
		if (strcmp(k, "uid") == 0 || strcmp(k, "gid") == 0) {
			if (!resolve_ids(st, k, v, ids, sizeof(ids)))
				return 0;
			v = ids;
		}
		if (policy_set_caller(t->callers, k, v, msg, sizeof(msg)) != 0)
			return fail(st, "%s", msg);
		return 1;
	}
	if (t->is_proxy && strcmp(k, "mode") != 0 && strcmp(k, "owner") != 0 &&
	    strcmp(k, "group") != 0)
		return fail(st, "unknown key '%s' in [%s] (a proxy has listen, "
				"mode, owner, group; its routes come from "
				"[rule] sections)", k, st->section);
	if (strcmp(k, "profile") == 0) {
		if (st->tunnel_profile[st->index][0] != '\0')
			return fail(st, "duplicate key");
		return set_name(st, st->tunnel_profile[st->index], v);
	}
	if (strcmp(k, "sni") == 0)
		return set_str(st, &t->sni, v);
	if (strcmp(k, "alpn") == 0)
		return set_str(st, &t->alpn, v);
	if (strcmp(k, "ca") == 0)
		return set_str(st, &t->ca, v);
	if (strcmp(k, "min_tls") == 0) {
		if (strcmp(v, "1.2") == 0)
			t->min_tls = CFG_TLS_1_2;
		else if (strcmp(v, "1.3") == 0)
			t->min_tls = CFG_TLS_1_3;
		else
			return fail(st, "min_tls: 1.2 or 1.3");
		return 1;
	}
	if (strcmp(k, "verify") == 0 || strcmp(k, "insecure") == 0)
		return fail(st, "server verification cannot be turned off");
	return fail(st, "unknown key '%s' in [%s]", k, st->section);
}

/* uid = alice, 1001 / gid = wheel: names become numbers here, so that
 * policy/ stays free of I/O. */
static int resolve_ids(struct parse_state *st, const char *key, const char *v,
		       char *out, size_t cap)
{
	char buf[INI_MAX_LINE], *save = NULL, *tok;
	size_t n = 0;

	snprintf(buf, sizeof(buf), "%s", v);
	out[0] = '\0';
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned long id;
		int w;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		for (char *e = tok + strlen(tok); e > tok && (e[-1] == ' ' || e[-1] == '\t');)
			*--e = '\0';
		if (parse_uint(tok, 0xfffffffeUL, &id) != 0) {
			if (key[0] == 'u') {
				struct passwd *pw = getpwnam(tok);

				if (pw == NULL)
					return fail(st, "unknown user '%s'", tok);
				id = pw->pw_uid;
			} else {
				struct group *gr = getgrnam(tok);

				if (gr == NULL)
					return fail(st, "unknown group '%s'", tok);
				id = gr->gr_gid;
			}
		}
		w = snprintf(out + n, cap - n, "%s%lu", n ? "," : "", id);
		if (w < 0 || (size_t)w >= cap - n)
			return fail(st, "%s: list too long", key);
		n += (size_t)w;
	}
	return 1;
}

static int policy_key(struct parse_state *st, const char *k, const char *v)
{
	enum policy_section ps = st->kind == SEC_RULE ? POLICY_SECTION_RULE :
				 st->kind == SEC_PROFILE ? POLICY_SECTION_PROFILE :
							   POLICY_SECTION_DESTINATIONS;
	char ids[INI_MAX_LINE * 2], msg[256];

	if (ps == POLICY_SECTION_RULE &&
	    (strcmp(k, "uid") == 0 || strcmp(k, "gid") == 0)) {
		if (!resolve_ids(st, k, v, ids, sizeof(ids)))
			return 0;
		v = ids;
	}
	if (policy_set(st->c->policy, ps, st->index, k, v, msg, sizeof(msg)) != 0)
		return fail(st, "[%s]: %s", st->section, msg);
	return 1;
}

static int handler(void *user, const char *section, const char *key,
		   const char *value)
{
	struct parse_state *st = user;

	if (st->failed)
		return 0;
	if (strcmp(section, st->section) != 0)
		return fail(st, "unexpected section [%s]", section);
	for (unsigned i = 0; i < st->n_seen; i++)
		if (strcmp(st->seen[i].key, key) == 0)
			return fail(st, "duplicate key '%s' in [%s] (first at "
				    "line %d): keep one (a list is written "
				    "a, b, c on one line)", key, st->section,
				    st->seen[i].line);
	if (st->n_seen < sizeof(st->seen) / sizeof(st->seen[0]) &&
	    strlen(key) < sizeof(st->seen[0].key)) {
		snprintf(st->seen[st->n_seen].key, sizeof(st->seen[0].key), "%s", key);
		st->seen[st->n_seen++].line = st->line;
	}
	switch (st->kind) {
	case SEC_AGENT:
		return agent_key(st, key, value);
	case SEC_TOKEN:
		return token_key(st, key, value);
	case SEC_IDENTITY:
		return identity_key(st, key, value);
	case SEC_TUNNEL:
		return tunnel_key(st, key, value);
	case SEC_RULE:
	case SEC_PROFILE:
	case SEC_DESTINATIONS:
		return policy_key(st, key, value);
	default:
		return fail(st, "key outside a section");
	}
}

int cfg_token_pinentry(const struct cfg_token *t)
{
	return t->pin_source != NULL && strcmp(t->pin_source, "pinentry") == 0;
}

int cfg_token_person_pin(const struct cfg_token *t)
{
	return cfg_token_pinentry(t) ||
	       (t->pin_source != NULL && strcmp(t->pin_source, "unlock") == 0);
}

int config_find_identity(const struct config *c, const char *name)
{
	for (unsigned i = 0; i < c->n_identities; i++)
		if (strcmp(c->identities[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int find_token(const struct config *c, const char *name)
{
	for (unsigned i = 0; i < c->n_tokens; i++)
		if (strcmp(c->tokens[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* Cross-references and required keys, once the whole file is read. */
static int check(struct parse_state *st)
{
	struct config *c = st->c;

	/* A file with nothing in it but comments (a wrong path, a file not
	 * yet written) would start an agent with nothing to do; with
	 * sockets passed by systemd a unit may want exactly that. */
	if (st->sections == 0 && getenv("LISTEN_FDS") == NULL) {
		st->line = st->line > 0 ? st->line : 1;
		return fail(st, "nothing configured: not one [section] (see "
			    "mtls-agent.conf(5) and the example config in "
			    "/usr/share/doc/mtls-agent)");
	}

	for (unsigned i = 0; i < c->n_tokens; i++) {
		struct cfg_token *t = &c->tokens[i];

		st->line = t->line;
		if (t->module == NULL)
			return fail(st, "[token %s]: module= is required",
				    t->name);
		if (t->uri == NULL)
			return fail(st, "[token %s]: uri= is required", t->name);
	}
	for (unsigned i = 0; i < c->n_identities; i++) {
		struct cfg_identity *id = &c->identities[i];

		st->line = id->line;
		if (st->identity_token[i][0] == '\0') {
			if (c->n_tokens != 1)
				return fail(st, "[identity %s]: token= is "
						"required", id->name);
			id->token = 0;
		} else {
			id->token = find_token(c, st->identity_token[i]);
			if (id->token < 0)
				return fail(st, "[identity %s]: no [token %s]",
					    id->name, st->identity_token[i]);
		}
		if (id->key == NULL)
			return fail(st, "[identity %s]: key= is required",
				    id->name);
		if (id->cert == NULL)
			return fail(st, "[identity %s]: cert= is required",
				    id->name);
		/* Both or neither: errors name the line of the one given. */
		st->line = id->renew.est_bootstrap_line ?
				   id->renew.est_bootstrap_line : id->line;
		if ((id->renew.est_bootstrap_key == NULL) !=
		    (id->renew.est_bootstrap_cert == NULL))
			return fail(st, "[identity %s]: est_bootstrap_key= and "
					"est_bootstrap_cert= go together (a key "
					"on the token and its certificate)",
				    id->name);
		if (id->renew.est_bootstrap_key != NULL &&
		    id->renew.enroll != CFG_ENROLL_EST)
			return fail(st, "[identity %s]: est_bootstrap_key= needs "
					"enroll = est", id->name);
		st->line = id->line;
		if (id->renew.enroll != CFG_ENROLL_NONE) {
			if (id->renew.issuer_ca == NULL)
				return fail(st, "[identity %s]: enroll needs "
						"issuer_ca= (what issued "
						"certificates must chain to)",
					    id->name);
			if (id->renew.enroll == CFG_ENROLL_EST &&
			    (id->renew.est_host == NULL || id->renew.est_ca == NULL))
				return fail(st, "[identity %s]: enroll = est "
						"needs est_url= and est_ca=",
					    id->name);
			if (id->renew.enroll == CFG_ENROLL_ACME &&
			    (id->renew.acme_directory == NULL ||
			     id->renew.acme_ca == NULL ||
			     id->renew.acme_account_key == NULL))
				return fail(st, "[identity %s]: enroll = acme "
						"needs acme_directory=, acme_ca= "
						"and acme_account_key=",
					    id->name);
			if ((id->renew.acme_eab_kid == NULL) !=
			    (id->renew.acme_eab_hmac == NULL))
				return fail(st, "[identity %s]: acme_eab_kid= and "
						"acme_eab_hmac= go together",
					    id->name);
			if (id->renew.enroll == CFG_ENROLL_ACME &&
			    id->renew.acme_challenge == CFG_ACME_HTTP01 &&
			    id->renew.acme_http_host == NULL)
				return fail(st, "[identity %s]: acme_challenge = "
						"http-01 needs acme_http_listen=",
					    id->name);
			if (id->renew.enroll == CFG_ENROLL_ACME &&
			    id->renew.acme_challenge == CFG_ACME_DNS01 &&
			    id->renew.acme_dns_hook == NULL)
				return fail(st, "[identity %s]: acme_challenge = "
						"dns-01 needs acme_dns_hook=",
					    id->name);
			if (id->renew.enroll == CFG_ENROLL_EXEC &&
			    id->renew.exec == NULL)
				return fail(st, "[identity %s]: enroll = exec "
						"needs exec=", id->name);
			if (id->renew.sched.retry_max < id->renew.sched.retry_min)
				return fail(st, "[identity %s]: retry_max < "
						"retry_min", id->name);
		}
	}
	for (unsigned i = 0; i < c->n_identities; i++) {
		char msg[256];

		st->line = c->identities[i].line;
		if (policy_add_identity(c->policy, c->identities[i].name,
					c->identities[i].env, msg,
					sizeof(msg)) < 0)
			return fail(st, "%s", msg);
	}
	{
		char msg[256];
		int line = 0;

		if (policy_finish(c->policy, msg, sizeof(msg), &line) != 0) {
			st->line = line;
			return fail(st, "%s", msg);
		}
	}
	for (unsigned i = 0; i < c->n_tunnels; i++) {
		struct cfg_tunnel *t = &c->tunnels[i];

		st->line = t->line;
		if (t->listen_path == NULL && t->listen_host == NULL)
			return fail(st, "[%s %s]: listen= is required",
				    t->is_proxy ? "proxy" : "tunnel", t->name);
		if (st->tunnel_profile[i][0] != '\0') {
			for (unsigned j = 0; j < c->policy->n_profiles; j++)
				if (strcmp(c->policy->profiles[j].name,
					   st->tunnel_profile[i]) == 0)
					t->profile = (int)j;
			if (t->profile < 0)
				return fail(st, "[tunnel %s]: no [profile %s]",
					    t->name, st->tunnel_profile[i]);
		}
		if (t->is_proxy) {
			if (c->policy->n_rules == 0)
				return fail(st, "[proxy %s]: no [rule] sections: "
						"every connection would be "
						"denied", t->name);
			goto unique;
		}
		if (t->connect_host == NULL)
			return fail(st, "[tunnel %s]: connect= is required",
				    t->name);
		if (st->tunnel_identity[i][0] == '\0')
			return fail(st, "[tunnel %s]: identity= is required",
				    t->name);
		t->identity = config_find_identity(c, st->tunnel_identity[i]);
		if (t->identity < 0)
			return fail(st, "[tunnel %s]: no [identity %s]",
				    t->name, st->tunnel_identity[i]);
		if (t->profile < 0 && t->ca == NULL &&
		    c->identities[t->identity].ca == NULL)
			return fail(st, "[tunnel %s]: no trust anchors: set "
					"ca= or profile= here or ca= in "
					"[identity %s]",
				    t->name, c->identities[t->identity].name);
unique:
		for (unsigned j = 0; j < i; j++) {
			struct cfg_tunnel *o = &c->tunnels[j];

			if ((t->listen_path && o->listen_path &&
			     strcmp(t->listen_path, o->listen_path) == 0) ||
			    (t->listen_host && o->listen_host &&
			     t->listen_port == o->listen_port &&
			     strcmp(t->listen_host, o->listen_host) == 0))
				return fail(st, "[tunnel %s]: listens where "
						"[tunnel %s] does", t->name,
					    o->name);
		}
	}
	return 1;
}

mtls_err_t config_parse(const char *name, const char *text, size_t len,
			struct config **out, struct mtls_error *err)
{
	struct parse_state *st;
	struct config *c;
	int r;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	st = calloc(1, sizeof(*st));
	if (c == NULL || st == NULL) {
		free(c);
		free(st);
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	}
	c->agent.max_connections = 1024;
	c->agent.max_connections_per_uid = 256;
	c->agent.max_handshakes = 8;
	c->agent.resume = 1;
	c->agent.bulk_crypto_openssl = 1;
	c->agent.handshake_timeout_ms = 15000;
	c->agent.request_timeout_ms = 5000;
	c->agent.connect_timeout_ms = 10000;
	c->agent.idle_timeout_ms = 3600000;
	c->agent.shutdown_grace_ms = 5000;
	c->agent.log_level = MTLS_LOG_INFO;
	c->agent.state_dir = strdup("/var/lib/mtls-agent");
	c->path = strdup(name);
	c->policy = calloc(1, sizeof(*c->policy));
	if (c->policy == NULL) {
		free(st);
		config_free(c);
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	}
	st->c = c;
	st->name = name;
	st->text = text;
	st->len = len;
	st->err = err;
	r = ini_parse_stream(reader, st, handler, st);
	if (r != 0 && !st->failed) {
		st->line = r > 0 ? r : st->line;
		fail(st, "syntax error (expected [section] or key = value)");
	}
	if (!st->failed)
		check(st);
	if (st->failed || c->path == NULL) {
		if (!st->failed)
			mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		free(st);
		config_free(c);
		return MTLS_ERR_CONFIG;
	}
	free(st);
	*out = c;
	return MTLS_OK;
}

mtls_err_t config_load(const char *path, struct config **out,
		       struct mtls_error *err)
{
	FILE *f;
	char *buf;
	size_t n;
	mtls_err_t r;

	*out = NULL;
	f = fopen(path, "re");
	if (f == NULL)
		return mtls_error_set(err, MTLS_ERR_CONFIG, "%s: %s", path,
				      strerror(errno));
	buf = malloc(CFG_FILE_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	}
	n = fread(buf, 1, CFG_FILE_MAX + 1, f);
	if (ferror(f) || n > CFG_FILE_MAX) {
		r = mtls_error_set(err, MTLS_ERR_CONFIG, "%s: %s", path,
				   ferror(f) ? strerror(errno) :
					       "larger than 1 MiB");
	} else {
		r = config_parse(path, buf, n, out, err);
	}
	fclose(f);
	free(buf);
	return r;
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (unsigned i = 0; i < c->n_tokens; i++) {
		free(c->tokens[i].module);
		free(c->tokens[i].uri);
		free(c->tokens[i].pin_source);
		free(c->tokens[i].so_pin_source);
		free(c->tokens[i].pinentry_program);
	}
	for (unsigned i = 0; i < c->n_identities; i++) {
		free(c->identities[i].key);
		free(c->identities[i].cert);
		free(c->identities[i].chain);
		free(c->identities[i].ca);
		free(c->identities[i].env);
		free(c->identities[i].renew.acme_directory);
		free(c->identities[i].renew.acme_ca);
		free(c->identities[i].renew.acme_account_key);
		free(c->identities[i].renew.acme_contact);
		free(c->identities[i].renew.acme_eab_kid);
		free(c->identities[i].renew.acme_eab_hmac);
		free(c->identities[i].renew.acme_http_host);
		free(c->identities[i].renew.acme_dns_hook);
		free(c->identities[i].renew.est_host);
		free(c->identities[i].renew.est_path);
		free(c->identities[i].renew.est_ca);
		free(c->identities[i].renew.est_user);
		free(c->identities[i].renew.est_password_file);
		free(c->identities[i].renew.est_bootstrap_key);
		free(c->identities[i].renew.est_bootstrap_cert);
		free(c->identities[i].renew.exec);
		free(c->identities[i].renew.issuer_ca);
		free(c->identities[i].renew.key_type);
		free(c->identities[i].renew.subject);
		free(c->identities[i].renew.sans);
		free(c->identities[i].renew.cert_file);
	}
	free(c->agent.state_dir);
	free(c->agent.control);
	free(c->agent.metrics_path);
	free(c->agent.metrics_host);
	for (unsigned i = 0; i < c->n_tunnels; i++) {
		free(c->tunnels[i].listen_path);
		free(c->tunnels[i].listen_host);
		free(c->tunnels[i].connect_host);
		free(c->tunnels[i].sni);
		free(c->tunnels[i].alpn);
		free(c->tunnels[i].ca);
		free(c->tunnels[i].callers);
	}
	free(c->policy);
	free(c->path);
	free(c);
}
