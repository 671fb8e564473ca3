/* mtlsctl: one file per group of subcommands. */
#ifndef MTLS_MTLSCTL_H
#define MTLS_MTLSCTL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "p11.h"

struct ctl {
	const char *config_path;
	int config_given; /* -c on the command line */
	struct config *cfg; /* loaded on demand */
};

/* Token commands work on the token directly, without the agent. */
int ctl_keygen(struct ctl *ctl, int argc, char **argv);
int ctl_csr(struct ctl *ctl, int argc, char **argv);
int ctl_import_cert(struct ctl *ctl, int argc, char **argv);
int ctl_key_info(struct ctl *ctl, int argc, char **argv);
/* A first configuration, the key on the token and its CSR. */
int ctl_init(struct ctl *ctl, int argc, char **argv);

/* Through the agent socket; and the policy, offline. */
int ctl_connect(struct ctl *ctl, int argc, char **argv);
int ctl_policy(struct ctl *ctl, int argc, char **argv);

/* Certificate lifecycle. */
int ctl_enroll(struct ctl *ctl, int argc, char **argv);
int ctl_renew(struct ctl *ctl, int argc, char **argv);
int ctl_revoke(struct ctl *ctl, int argc, char **argv);
int ctl_status(struct ctl *ctl, int argc, char **argv);

/* Through the agent's control socket. */
int ctl_reload(struct ctl *ctl, int argc, char **argv);
int ctl_unlock(struct ctl *ctl, int argc, char **argv);
int ctl_lock(struct ctl *ctl, int argc, char **argv);
/* -1: the agent is not reachable (the caller may work offline). */
int ctl_status_agent(struct ctl *ctl, int json);
int ctl_renew_agent(struct ctl *ctl, const char *identity);
/* Asks for a reload, printing nothing; -1 if not done. */
int ctl_reload_quiet(struct ctl *ctl);

/* Shell lines for programs to use the agent socket (like ssh-agent -s). */
int ctl_env(struct ctl *ctl, int argc, char **argv);
/* mtlsctl help [COMMAND]; mtlsctl list (for completion), both from the
 * command table in mtlsctl.c. */
int ctl_help(struct ctl *ctl, int argc, char **argv);
int ctl_list(struct ctl *ctl, int argc, char **argv);
/* Prints the command's usage line (from the table) on stderr; returns 2. */
int ctl_usage(const char *command);

/* The module and token of an identity, opened directly (not logged in). */
struct ctl_token {
	struct p11_module *m;
	struct p11_token *t;
};

int ctl_token_open(struct ctl *ctl, const struct cfg_identity *ci,
		   struct ctl_token *ct, struct mtls_error *err);
void ctl_token_close(struct ctl_token *ct);

void ctl_fmt_span(int64_t seconds, char *out, size_t cap);
/* What a person should know of a token's PIN counter flags; "" if none. */
const char *ctl_pin_state(long long count_low, long long final_try,
			  long long locked);
void ctl_fmt_time(int64_t t, char *out, size_t cap);

/* Prints "mtlsctl: <reason>: <detail>" and returns 1. */
int ctl_fail(const struct mtls_error *err);
int ctl_load_config(struct ctl *ctl);

#endif
