/* The agent's INI configuration: [agent], [token NAME], [identity NAME],
 * [tunnel NAME]. Parsing checks everything it can without touching a token
 * or the network; a bad file is reported as "file:line: reason". */
#ifndef MTLS_CONFIG_H
#define MTLS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mtls_err.h"
#include "policy.h"
#include "renew_schedule.h"

#define CFG_MAX_TOKENS 16
#define CFG_MAX_IDENTITIES 64
#define CFG_MAX_TUNNELS 128
#define CFG_NAME_MAX 64
#define CFG_FILE_MAX (1024 * 1024)

enum cfg_tls_version { CFG_TLS_1_2 = 12, CFG_TLS_1_3 = 13 };

struct cfg_agent {
	unsigned max_connections;
	unsigned max_connections_per_uid; /* 0: no per-uid limit */
	unsigned max_handshakes;          /* in progress at once */
	int resume;                       /* TLS session resumption (yes) */
	int bulk_crypto_openssl; /* AES-GCM, P-256 in libcrypto, or wolfSSL's C */
	unsigned handshake_timeout_ms;
	unsigned request_timeout_ms; /* to read a SOCKS5/CONNECT request */
	unsigned connect_timeout_ms;
	unsigned idle_timeout_ms;   /* 0: none */
	unsigned shutdown_grace_ms;
	int log_level;              /* enum mtls_log_level */
	char *state_dir;            /* renewal state; default /var/lib/mtls-agent */
	char *control;              /* control socket path, or NULL */
	gid_t control_group;        /* may use it besides our uid and root */
	int has_control_group;
	char *metrics_path;         /* Prometheus text on a Unix socket... */
	char *metrics_host;         /* ...or on a loopback port */
	uint16_t metrics_port;
};

enum cfg_enroll { CFG_ENROLL_NONE, CFG_ENROLL_EST, CFG_ENROLL_EXEC,
		  CFG_ENROLL_ACME };
enum cfg_acme_challenge { CFG_ACME_HTTP01, CFG_ACME_DNS01 };

/* How an identity gets and renews its certificate. */
#define CFG_KEY_IDS_MAX 8
#define CFG_KEY_ID_MAX 16

struct cfg_renew {
	enum cfg_enroll enroll;
	char *est_host;      /* from est_url = https://HOST:PORT/PATH */
	uint16_t est_port;
	char *est_path;      /* e.g. /.well-known/est */
	char *est_ca;        /* trust anchors for the EST server */
	char *est_user;      /* HTTP Basic for the first enrollment */
	char *est_password_file;
	/* A certificate already on the token (a manufacturer's, IDevID-like:
	 * RFC 7030 3.3.2) that authenticates the first /simpleenroll by TLS
	 * client authentication: both or neither. Never retired. */
	char *est_bootstrap_key;  /* pkcs11: URI of its private key */
	char *est_bootstrap_cert; /* pkcs11: URI or a PEM file */
	int est_bootstrap_line;   /* where one of them was set, for errors */
	char *exec;          /* /bin/sh -c COMMAND: CSR on stdin, chain on stdout */
	unsigned exec_timeout_ms;
	/* ACME (RFC 8555) */
	char *acme_directory;   /* https://HOST[:PORT]/PATH of the directory */
	char *acme_ca;          /* trust anchors for the ACME server */
	char *acme_account_key; /* pkcs11: URI of the account key (same token) */
	char *acme_contact;     /* comma-separated mailto: URIs, or NULL */
	char *acme_eab_kid;     /* External Account Binding: key id */
	char *acme_eab_hmac;    /* file:/credential: of its base64url MAC key */
	enum cfg_acme_challenge acme_challenge;
	char *acme_http_host;   /* http-01 responder: HOST:PORT it listens on */
	uint16_t acme_http_port;
	char *acme_dns_hook;    /* dns-01: HOOK present|cleanup FQDN VALUE */
	unsigned acme_timeout_ms; /* one order, from newOrder to certificate */
	int acme_reenroll;      /* after mtlsctl revoke: enroll a new key */
	char *issuer_ca;     /* the issued chain must lead to these */
	char *key_type;      /* ec-p256 (default), ec-p384, rsa-2048, rsa-3072 */
	char *subject;       /* default: the current certificate's */
	char *sans;          /* comma-separated DNS:/URI:/email:; default: current */
	char *cert_file;     /* also write the chain here (PEM, atomically) */
	/* key_ids: the CKA_IDs a renewal may generate its key under, in turn,
	 * for tokens whose keys live in fixed slots (PIV: 01 = 9a, 05.. =
	 * retired slots). None: a fresh random id each time. */
	uint8_t key_ids[CFG_KEY_IDS_MAX][CFG_KEY_ID_MAX];
	size_t key_id_len[CFG_KEY_IDS_MAX];
	unsigned n_key_ids;
	struct renew_params sched;
};

struct cfg_token {
	char name[CFG_NAME_MAX];
	char *module;     /* p11-kit module name or path */
	char *uri;        /* pkcs11: URI selecting the token */
	char *pin_source; /* file:, credential:, env:, unlock, pinentry or NULL */
	char *pinentry_program; /* pin_source = pinentry; NULL: /usr/bin/pinentry */
	char *so_pin_source; /* SO credential (PIV management key) or NULL */
	unsigned max_sessions;
	int line;
	int line_module, line_uri, line_pin; /* where each was set */
};

struct cfg_identity {
	char name[CFG_NAME_MAX];
	int token;        /* index into tokens */
	char *key;        /* pkcs11: URI of the private key */
	char *cert;       /* pkcs11: URI or a PEM file path */
	char *chain;      /* optional PEM file of intermediates */
	char *ca;         /* trust anchors for servers: PEM file or folder */
	char *env;        /* environment tag (dev, prod, ...) or NULL */
	struct cfg_renew renew;
	int line;
	int line_ca;
};

/* A tunnel (fixed destination) or, with is_proxy, an agent socket that
 * speaks SOCKS5 and HTTP CONNECT and routes through the policy. */
struct cfg_tunnel {
	char name[CFG_NAME_MAX];
	int is_proxy;
	/* listen: a Unix socket path, or 127.0.0.1:PORT / [::1]:PORT */
	char *listen_path;
	char *listen_host;
	uint16_t listen_port;
	mode_t mode;      /* Unix socket mode, default 0600 */
	uid_t owner;      /* (uid_t)-1: unchanged */
	gid_t group;      /* (gid_t)-1: unchanged */
	char *connect_host;
	uint16_t connect_port;
	int identity;     /* index into identities */
	char *sni;        /* server name sent and verified; default host */
	char *alpn;       /* comma-separated list or NULL */
	char *ca;         /* overrides the identity's trust anchors */
	int profile;      /* index of a [profile] to verify the server, or -1 */
	enum cfg_tls_version min_tls;
	/* uid/gid/exe/unit allowed to use the tunnel; NULL: whoever can
	 * reach its socket (a Unix socket's mode and owner decide) */
	struct policy_rule *callers;
	int line;
};

struct config {
	char *path;
	struct cfg_agent agent;
	struct cfg_token tokens[CFG_MAX_TOKENS];
	unsigned n_tokens;
	struct cfg_identity identities[CFG_MAX_IDENTITIES];
	unsigned n_identities;
	struct cfg_tunnel tunnels[CFG_MAX_TUNNELS];
	unsigned n_tunnels;
	/* [rule], [profile], [destinations]; identities in the same order */
	struct policy *policy;
};

mtls_err_t config_load(const char *path, struct config **out,
		       struct mtls_error *err);
/* Parses text as if read from name (for tests and fuzzing). */
mtls_err_t config_parse(const char *name, const char *text, size_t len,
			struct config **out, struct mtls_error *err);
void config_free(struct config *c);

int config_find_identity(const struct config *c, const char *name);
/* pin_source = pinentry; and whether only a person gives the token's PIN
 * (unlock or pinentry: never read from a file or the environment). */
int cfg_token_pinentry(const struct cfg_token *t);
int cfg_token_person_pin(const struct cfg_token *t);

/* "1.5s", "300ms", "10m", "2h", plain seconds. */
int config_parse_duration_ms(const char *s, unsigned *out);

#endif
