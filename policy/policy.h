/* policy/: who may reach what, with which identity, and how the server
 * must prove itself. Pure code: no I/O, no clock (time is an argument),
 * no allocation after parsing. Every decision explains itself.
 *
 * Rules are tried in order; the first whose matchers all hold decides
 * (allow with a route, or deny). When none holds, the answer is deny. */
#ifndef MTLS_POLICY_H
#define MTLS_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define POLICY_NAME_MAX 64
#define POLICY_HOST_MAX 256
#define POLICY_PATH_MAX 512
#define POLICY_LIST_MAX 16 /* entries in one matcher list */
#define POLICY_MAX_RULES 256
#define POLICY_MAX_PROFILES 64
#define POLICY_MAX_DESTSETS 64
#define POLICY_MAX_IDENTITIES 64
#define POLICY_MAX_PINS 8
#define POLICY_WHY_MAX 512

/* Who is asking: from SO_PEERCRED, sock_diag and /proc (exe and unit are
 * advisory: a process can exec or exit between our reads). -1 and NULL
 * are unknown. An unknown value never satisfies an allow rule that names
 * that attribute, and always satisfies a deny rule that names it: what the
 * agent cannot see must not be what lets a caller through. */
struct policy_caller {
	int64_t uid, gid; /* -1: unknown */
	int64_t pid;
	const uint32_t *groups; /* supplementary groups */
	unsigned n_groups;
	int groups_known;       /* 0: the supplementary groups are unknown */
	const char *exe;
	const char *unit;
};

/* The destination. CIDR matchers apply to addr when the agent resolved
 * the name (family 4 or 6), else to host when it is an address literal;
 * the agent decides once for every address a name resolves to and
 * connects only to those allowed. */
struct policy_dest {
	const char *host; /* name or address literal, as the program asked */
	uint16_t port;
	int family;       /* 0: not resolved */
	uint8_t addr[16];
};

struct policy_ports {
	uint16_t lo[POLICY_LIST_MAX], hi[POLICY_LIST_MAX];
	unsigned n;
};

struct policy_cidrs {
	uint8_t family[POLICY_LIST_MAX]; /* 4 or 6 */
	uint8_t addr[POLICY_LIST_MAX][16];
	uint8_t prefix[POLICY_LIST_MAX];
	unsigned n;
};

struct policy_hosts {
	char pattern[POLICY_LIST_MAX][POLICY_HOST_MAX]; /* exact or glob (*, ?) */
	unsigned n;
};

/* Where: any host pattern OR any CIDR (for address literals) must hold,
 * when any is given; and any port range, when any is given. */
struct policy_dest_match {
	struct policy_hosts hosts;
	struct policy_cidrs cidrs;
	struct policy_ports ports;
};

struct policy_window {
	int64_t not_before, not_after; /* 0: unbounded (seconds, UTC) */
	uint8_t weekdays;              /* bit 0 = Sunday ... 6 = Saturday; 0 = any */
	int8_t hour_from, hour_to;     /* UTC, [from, to); -1 = any; from > to wraps */
};

enum policy_ocsp { POLICY_OCSP_OFF, POLICY_OCSP_OPTIONAL, POLICY_OCSP_REQUIRED };
enum policy_revocation {
	POLICY_REVOCATION_UNSET,
	POLICY_REVOCATION_FAIL_CLOSED,
	POLICY_REVOCATION_FAIL_OPEN,
};

/* Revocation from the network, tried in the profile's order. */
enum policy_rev_method {
	POLICY_REV_STAPLE = 1, /* the server's stapled OCSP answer */
	POLICY_REV_OCSP,       /* a query to the certificate's responder */
	POLICY_REV_CRL,        /* the CRL from its distribution point */
};
#define POLICY_REV_METHODS_MAX 3

/* How a server must prove itself. */
struct policy_profile {
	char name[POLICY_NAME_MAX];
	int line;
	char ca[POLICY_PATH_MAX];            /* file or folder of trust anchors */
	struct policy_hosts names;            /* expected SAN/CN; none: the destination host */
	char organisation[POLICY_HOST_MAX];   /* expected subject O=, or empty */
	uint8_t pins[POLICY_MAX_PINS][32];    /* SHA-256 of the SubjectPublicKeyInfo */
	unsigned n_pins;
	int min_tls;                          /* 12 or 13 */
	char crls[POLICY_LIST_MAX][POLICY_PATH_MAX];
	unsigned n_crls;
	enum policy_ocsp ocsp;
	enum policy_revocation revocation;
	uint8_t rev_methods[POLICY_REV_METHODS_MAX]; /* enum policy_rev_method */
	unsigned n_rev_methods;
	int rev_chain;                 /* intermediates too, not only the leaf */
	char ocsp_url[POLICY_PATH_MAX]; /* responder instead of the AIA's */
	uint32_t rev_max_age;          /* seconds an answer counts after its
					  thisUpdate, whatever its nextUpdate */
	int rev_local;                 /* responders on local addresses allowed */
	uint32_t rev_timeout_ms;       /* one fetch */
};

struct policy_identity {
	char name[POLICY_NAME_MAX];
	char env[POLICY_NAME_MAX]; /* environment tag, or empty */
};

struct policy_destset {
	char name[POLICY_NAME_MAX];
	char env[POLICY_NAME_MAX];
	int line;
	struct policy_dest_match match;
};

enum policy_action { POLICY_ACTION_NONE, POLICY_ACTION_ALLOW, POLICY_ACTION_DENY };

struct policy_rule {
	char name[POLICY_NAME_MAX];
	int line;
	/* caller: each list, when not empty, must contain the caller's value */
	int64_t uids[POLICY_LIST_MAX];
	unsigned n_uids;
	int64_t gids[POLICY_LIST_MAX]; /* primary or supplementary */
	unsigned n_gids;
	struct policy_hosts exes;      /* globs over the executable path */
	struct policy_hosts units;     /* globs over the systemd unit */
	/* destination: inline matchers and/or named destination sets */
	struct policy_dest_match dest;
	int has_dest;
	int destsets[POLICY_LIST_MAX];
	unsigned n_destsets;
	struct policy_window when;
	enum policy_action action;
	int identity; /* index, for allow */
	int profile;  /* index, for allow */
	char reason[POLICY_HOST_MAX]; /* for deny: told to the program */
	/* names as written, resolved by policy_finish */
	char identity_name[POLICY_NAME_MAX];
	char profile_name[POLICY_NAME_MAX];
	char destset_names[POLICY_LIST_MAX][POLICY_NAME_MAX];
};

struct policy {
	struct policy_identity identities[POLICY_MAX_IDENTITIES];
	unsigned n_identities;
	struct policy_profile profiles[POLICY_MAX_PROFILES];
	unsigned n_profiles;
	struct policy_destset destsets[POLICY_MAX_DESTSETS];
	unsigned n_destsets;
	struct policy_rule rules[POLICY_MAX_RULES];
	unsigned n_rules;
};

enum policy_reason {
	POLICY_REASON_ALLOWED,
	POLICY_REASON_RULE_DENIES,   /* a deny rule matched */
	POLICY_REASON_NO_RULE,       /* nothing matched: default deny */
	POLICY_REASON_ENVIRONMENT,   /* identity and destination environments differ */
};

struct policy_decision {
	enum policy_reason reason;
	int rule;     /* index of the deciding rule, or -1 */
	int identity; /* for allow */
	int profile;  /* for allow */
	char why[POLICY_WHY_MAX];
};

const char *policy_reason_name(enum policy_reason r);

void policy_decide(const struct policy *p, const struct policy_caller *c,
		   const struct policy_dest *d, int64_t now,
		   struct policy_decision *out);

/* --- building a policy (pure: strings in, structure out) --- */

enum policy_section {
	POLICY_SECTION_RULE,
	POLICY_SECTION_PROFILE,
	POLICY_SECTION_DESTINATIONS,
};

/* Adds a named rule, profile or destination set; returns its index or -1
 * with a message in err. */
int policy_add(struct policy *p, enum policy_section s, const char *name,
	       int line, char *err, size_t err_len);
/* Adds an identity (name and environment tag) that rules may name. */
int policy_add_identity(struct policy *p, const char *name, const char *env,
			char *err, size_t err_len);

/* Sets key = value on item index of section s. uid/gid values must be
 * numeric here (names are resolved by the caller, which may do I/O).
 * Returns 0, or -1 with a message in err. Rules refer to identities,
 * profiles and destination sets by name; those are resolved by
 * policy_finish. */
int policy_set(struct policy *p, enum policy_section s, int index,
	       const char *key, const char *value, char *err, size_t err_len);

/* Resolves names, checks required keys and environment separation: a rule
 * that would let an identity reach a destination tagged with another
 * environment is an error. On error *line is the offending item's line. */
int policy_finish(struct policy *p, char *err, size_t err_len, int *line);

/* A tunnel's callers: the caller matchers of a rule (uid, gid, exe,
 * unit; numeric ids) set on r alone, and the same test the rules use. An
 * unknown attribute that r names never allows. 1 allowed; 0 not, with
 * the attribute in why. */
int policy_set_caller(struct policy_rule *r, const char *key,
		      const char *value, char *err, size_t err_len);
int policy_caller_allows(const struct policy_rule *r,
			 const struct policy_caller *c, char *why,
			 size_t why_len);

/* Building blocks, exposed for tests. */
int policy_host_match(const char *pattern, const char *host);
int policy_glob_match(const char *pattern, const char *s);
int policy_parse_time(const char *s, int64_t *out);   /* 2026-11-29T08:00:00Z */
int policy_parse_pin(const char *s, uint8_t out[32]); /* sha256//BASE64 or 64 hex */
int policy_parse_cidr(const char *s, uint8_t *family, uint8_t addr[16],
		      uint8_t *prefix);
/* 4 or 6 when host is an address literal (addr filled), 0 otherwise. */
int policy_parse_address(const char *host, uint8_t addr[16]);

#endif
