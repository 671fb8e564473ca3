/* mtlsctl: the command-line tool. */
#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/ecc.h>
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mtlsctl.h"
#include "mtls_log.h"

#define DEFAULT_CONFIG "/etc/mtls-agent/mtls-agent.conf"

/* An option of a command: long name, short letter (0: none), the name of
 * its value (NULL: a flag). REQ: always given; REP: may be repeated. */
struct ctl_opt {
	const char *name;
	char letter;
	const char *arg;
	unsigned flags;
	const char *help;
};
#define REQ 1u
#define REP 2u

/* The one description of every command: dispatch, help, usage lines,
 * and the words the shell completion offers (mtlsctl list). operands are
 * the positional words in order: IDENTITY and TOKEN name sections of the
 * configuration, FILE a file, a lowercase word is literal. */
static const struct ctl_command {
	const char *name;
	int (*fn)(struct ctl *, int, char **);
	const char *operands;
	const char *summary;
	struct ctl_opt opts[12];
} commands[] = {
	{ "status", ctl_status, "",
	  "tokens, identities by expiry, listeners; read offline without the agent",
	  { { "json", 0, NULL, 0, "the agent's answer as JSON (needs the agent)" } } },
	{ "reload", ctl_reload, "", "ask the agent to reload its configuration", { { 0 } } },
	{ "unlock", ctl_unlock, "TOKEN",
	  "ask for the token's PIN and hand it to the agent",
	  { { "pinentry", 0, NULL, 0, "pin_source = pinentry: the agent asks "
	      "through pinentry, on this terminal" } } },
	{ "lock", ctl_lock, "TOKEN",
	  "the agent logs out of the token and forgets its PIN", { { 0 } } },
	{ "enroll", ctl_enroll, "IDENTITY", "first certificate for an identity",
	  { { "bootstrap", 0, NULL, 0,
	      "authenticate with the bootstrap certificate on the token" } } },
	{ "renew", ctl_renew, "IDENTITY",
	  "renew: through the agent when it runs, otherwise directly",
	  { { "now", 0, NULL, 0, "renew now, not when due" } } },
	{ "revoke", ctl_revoke, "IDENTITY",
	  "revoke the certificate in service (ACME); it is never presented again",
	  { { "reason", 'r', "unspecified|key-compromise|affiliation-changed|"
	      "superseded|cessation-of-operation", 0,
	      "the reason the CA publishes (default unspecified)" } } },
	{ "init", ctl_init, "",
	  "write a first configuration (-c PATH, else ~/.config/mtls-agent/), "
	  "make the key on the token, print the CSR",
	  { { "pin-source", 0, "file:PATH|env:VAR|credential:NAME", REQ,
	      "where the agent reads the token's PIN" },
	    { "module", 0, "NAME|PATH", 0, "the PKCS#11 module (default: every "
	      "module p11-kit has registered)" },
	    { "token", 0, "LABEL", 0, "the token (needed when there are several)" },
	    { "identity", 0, "NAME", 0, "the identity's name (default device)" },
	    { "subject", 0, "CN=..,O=..", 0, "the CSR's subject (default CN=hostname)" },
	    { "san", 0, "DNS:NAME", REP, "a subjectAltName" },
	    { "type", 0, "ec-p256|ec-p384|rsa-2048|rsa-3072", 0,
	      "the key type (default ec-p256)" },
	    { "server-ca", 0, "FILE", 0, "the CA that issues the servers' certificates" },
	    { "allow", 0, "HOSTS", 0, "a rule letting you reach HOSTS (with --server-ca)" },
	    { "out", 'o', "FILE", 0, "write the CSR to FILE, not stdout" } } },
	{ "keygen", ctl_keygen, "IDENTITY",
	  "generate the identity's key pair on its token",
	  { { "type", 't', "ec-p256|ec-p384|rsa-2048|rsa-3072", 0,
	      "the key type (default ec-p256)" },
	    { "acme-account", 0, NULL, 0, "the ACME account key (acme_account_key=)" } } },
	{ "csr", ctl_csr, "IDENTITY", "a PKCS#10 request signed on the token",
	  { { "subject", 's', "CN=..,O=..", REQ, "the subject name" },
	    { "san", 'a', "DNS:NAME", REP, "a subjectAltName, like DNS:host.example" },
	    { "out", 'o', "FILE", 0, "write the request to FILE, not stdout" } } },
	{ "import-cert", ctl_import_cert, "IDENTITY FILE",
	  "store a certificate on the token beside the identity's key", { { 0 } } },
	{ "key-info", ctl_key_info, "IDENTITY",
	  "the key's flags and the token's signing mechanisms", { { 0 } } },
	{ "connect", ctl_connect, "HOST:PORT",
	  "bridge stdin and stdout through the agent socket (ProxyCommand)",
	  { { "socket", 's', "PATH", 0, "the agent socket (default: the first [proxy])" } } },
	{ "env", ctl_env, "",
	  "shell lines that point programs at the agent socket (like ssh-agent -s)",
	  { { "socket", 0, "PATH", 0, "the agent socket (default: the first [proxy], "
	      "else $XDG_RUNTIME_DIR/mtls-agent/agent.sock)" },
	    { "csh", 0, NULL, 0, "setenv lines for csh and tcsh" },
	    { "http-proxy", 0, NULL, 0, "say so when http_proxy cannot be printed (a Unix socket)" } } },
	{ "policy", ctl_policy, "check",
	  "what the policy decides for a caller and a destination, offline",
	  { { "uid", 'u', "U", REQ, "the caller's user (name or number)" },
	    { "gid", 'g', "G", 0, "its group (default: the user's)" },
	    { "exe", 'e', "PATH", 0, "its executable" },
	    { "unit", 'U', "UNIT", 0, "its systemd unit" },
	    { "dest", 'd', "HOST:PORT", REQ, "the destination" },
	    { "at", 'a', "TIME", 0, "when, like 2026-11-29T08:00:00Z (default: now)" },
	    { "json", 'j', NULL, 0, "the decision as JSON" } } },
	{ "list", ctl_list, "identities|tokens|commands|args",
	  "names for scripts and the shell completion (no agent needed)", { { 0 } } },
	{ "help", ctl_help, "[COMMAND]", "this list, or a command's usage and options",
	  { { 0 } } },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct ctl_command *find_command(const char *name)
{
	for (size_t c = 0; c < N_COMMANDS; c++)
		if (strcmp(name, commands[c].name) == 0)
			return &commands[c];
	return NULL;
}

static size_t n_opts(const struct ctl_command *cmd)
{
	size_t n = 0;

	while (n < sizeof(cmd->opts) / sizeof(cmd->opts[0]) &&
	       cmd->opts[n].name != NULL)
		n++;
	return n;
}

/* "usage: mtlsctl [-c CONFIG] csr IDENTITY --subject CN=..,O=.. [--san
 * DNS:NAME]... [--out FILE]", made from the table. */
static void print_usage_line(FILE *f, const struct ctl_command *cmd)
{
	fprintf(f, "usage: mtlsctl [-c CONFIG] %s", cmd->name);
	if (cmd->operands[0] != '\0')
		fprintf(f, " %s", cmd->operands);
	for (size_t i = 0; i < n_opts(cmd); i++) {
		const struct ctl_opt *o = &cmd->opts[i];
		int opt = !(o->flags & REQ);

		fprintf(f, " %s--%s", opt ? "[" : "", o->name);
		if (o->arg != NULL)
			fprintf(f, " %s", o->arg);
		fprintf(f, "%s%s", opt ? "]" : "", o->flags & REP ? "..." : "");
	}
	fputc('\n', f);
}

static void print_command_help(const struct ctl_command *cmd)
{
	print_usage_line(stdout, cmd);
	printf("\n%c%s.\n", toupper((unsigned char)cmd->summary[0]),
	       cmd->summary + 1);
	if (n_opts(cmd) > 0)
		printf("\noptions:\n");
	for (size_t i = 0; i < n_opts(cmd); i++) {
		const struct ctl_opt *o = &cmd->opts[i];
		char flag[160];

		snprintf(flag, sizeof(flag), "%c%c%s--%s%s%s",
			 o->letter ? '-' : ' ', o->letter ? o->letter : ' ',
			 o->letter ? ", " : "  ", o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		if (strlen(flag) > 22)
			printf("  %s\n  %-22s %s\n", flag, "", o->help);
		else
			printf("  %-22s %s\n", flag, o->help);
	}
	printf("%s  -h, --help             this help\n\nSee mtlsctl(1).\n",
	       n_opts(cmd) > 0 ? "" : "\noptions:\n");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mtlsctl [-c CONFIG] COMMAND [ARGS]\n"
		   "       mtlsctl COMMAND --help | help COMMAND | --version\n\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nCONFIG defaults to %s.\n", DEFAULT_CONFIG);
}

static const struct ctl_opt *find_opt(const struct ctl_command *cmd,
				      const char *a)
{
	const struct ctl_opt *found = NULL;

	if (a[1] != '-') {
		for (size_t o = 0; o < n_opts(cmd); o++)
			if (cmd->opts[o].letter == a[1] &&
			    (a[2] == '\0' || cmd->opts[o].arg != NULL))
				return &cmd->opts[o];
		return NULL;
	}
	/* --name, --name=VALUE, or a prefix of one name only (getopt_long) */
	for (size_t o = 0; o < n_opts(cmd); o++) {
		size_t n = strcspn(a + 2, "=");

		if (strncmp(cmd->opts[o].name, a + 2, n) != 0)
			continue;
		if (cmd->opts[o].name[n] == '\0')
			return &cmd->opts[o];
		if (found != NULL)
			return NULL;
		found = &cmd->opts[o];
	}
	return found;
}

/* The first argument that is not an option of cmd, as the table says; NULL
 * if none. Every command thus refuses an unknown option alike, also those
 * that read their arguments without getopt. */
static const char *unknown_opt(const struct ctl_command *cmd, int argc,
			       char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct ctl_opt *o;

		if (strcmp(a, "--") == 0)
			return NULL;
		if (a[0] != '-' || a[1] == '\0')
			continue;
		o = find_opt(cmd, a);
		if (o == NULL)
			return a;
		if (o->arg != NULL && strchr(a, '=') == NULL &&
		    (a[1] == '-' || a[2] == '\0'))
			i++;
	}
	return NULL;
}

/* Whether -h or --help is one of a command's arguments (before "--"),
 * skipping the values of its options: it answers before anything else is
 * read, the configuration or the control socket. */
static int asks_help(const struct ctl_command *cmd, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct ctl_opt *o;

		if (strcmp(a, "--") == 0)
			return 0;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
			return 1;
		if (a[0] != '-' || a[1] == '\0')
			continue;
		o = find_opt(cmd, a);
		if (o != NULL && o->arg != NULL && strchr(a, '=') == NULL &&
		    (a[1] == '-' || a[2] == '\0'))
			i++;
	}
	return 0;
}

int ctl_usage(const char *name)
{
	const struct ctl_command *cmd = find_command(name);

	if (cmd != NULL)
		print_usage_line(stderr, cmd);
	return 2;
}

int ctl_help(struct ctl *ctl, int argc, char **argv)
{
	const struct ctl_command *cmd;

	(void)ctl;
	if (argc == 1) {
		usage(stdout);
		return 0;
	}
	if (argc != 2)
		return ctl_usage("help");
	cmd = find_command(argv[1]);
	if (cmd == NULL) {
		fprintf(stderr, "mtlsctl: unknown command '%s'\n", argv[1]);
		return 2;
	}
	print_command_help(cmd);
	return 0;
}

/* One name a line, for the shell completion and scripts. "args COMMAND":
 * its options (--name=ARG when it takes a value), then its operands. */
int ctl_list(struct ctl *ctl, int argc, char **argv)
{
	const struct ctl_command *cmd;

	if (argc == 2 && strcmp(argv[1], "commands") == 0) {
		for (size_t i = 0; i < N_COMMANDS; i++)
			printf("%s\n", commands[i].name);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "args") == 0) {
		cmd = find_command(argv[2]);
		if (cmd == NULL) {
			fprintf(stderr, "mtlsctl: unknown command '%s'\n", argv[2]);
			return 2;
		}
		for (size_t i = 0; i < n_opts(cmd); i++) {
			const struct ctl_opt *o = &cmd->opts[i];

			printf("--%s%s%s\n", o->name, o->arg ? "=" : "",
			       o->arg ? o->arg : "");
			if (o->letter != 0)
				printf("-%c%s%s\n", o->letter, o->arg ? "=" : "",
				       o->arg ? o->arg : "");
		}
		for (const char *p = cmd->operands; *p != '\0';) {
			size_t n = strcspn(p, " ");

			printf("%.*s\n", (int)n, p);
			p += n + strspn(p + n, " ");
		}
		return 0;
	}
	if (argc == 2 && (strcmp(argv[1], "identities") == 0 ||
			  strcmp(argv[1], "tokens") == 0)) {
		int ids = argv[1][0] == 'i';

		if (ctl_load_config(ctl) != 0)
			return 1;
		for (unsigned i = 0; ids && i < ctl->cfg->n_identities; i++)
			printf("%s\n", ctl->cfg->identities[i].name);
		for (unsigned i = 0; !ids && i < ctl->cfg->n_tokens; i++)
			printf("%s\n", ctl->cfg->tokens[i].name);
		return 0;
	}
	return ctl_usage("list");
}

int ctl_fail(const struct mtls_error *err)
{
	char msg[512];

	fprintf(stderr, "mtlsctl: %s: %s\n", mtls_err_name(err->code),
		mtls_error_str(err, msg, sizeof(msg)));
	return 1;
}

int ctl_token_open(struct ctl *ctl, const struct cfg_identity *ci,
		   struct ctl_token *ct, struct mtls_error *err)
{
	const struct cfg_token *tok = &ctl->cfg->tokens[ci->token];

	memset(ct, 0, sizeof(*ct));
	if (p11_module_open(tok->module, &ct->m, err) != MTLS_OK ||
	    p11_token_open(ct->m, tok->uri, tok->pin_source, 2, &ct->t, err) !=
		    MTLS_OK ||
	    p11_token_set_so_source(ct->t, tok->so_pin_source, err) != MTLS_OK)
		return -1;
	return 0;
}

void ctl_token_close(struct ctl_token *ct)
{
	p11_token_close(ct->t);
	p11_module_close(ct->m);
}

const char *ctl_pin_state(long long count_low, long long final_try,
			  long long locked)
{
	if (locked)
		return "  PIN LOCKED: unblock it with the PUK (PIV: "
		       "yubico-piv-tool -a unblock-pin), then mtlsctl unlock";
	if (final_try)
		return "  PIN: ONE TRY LEFT: the agent will not spend it; "
		       "mtlsctl unlock";
	if (count_low)
		return "  PIN: few tries left";
	return "";
}

/* "29d 23h", "5h 2m", "3m 10s": how far off a time is (sign dropped). */
void ctl_fmt_span(int64_t s, char *out, size_t cap)
{
	int64_t a = s < 0 ? -s : s;

	if (a >= 86400)
		snprintf(out, cap, "%lldd %lldh", (long long)(a / 86400),
			 (long long)(a % 86400 / 3600));
	else if (a >= 3600)
		snprintf(out, cap, "%lldh %lldm", (long long)(a / 3600),
			 (long long)(a % 3600 / 60));
	else
		snprintf(out, cap, "%lldm %llds", (long long)(a / 60), (long long)(a % 60));
}

/* "2026-11-29 08:00Z" */
void ctl_fmt_time(int64_t t, char *out, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, cap, "%Y-%m-%d %H:%MZ", &tm);
}

int ctl_load_config(struct ctl *ctl)
{
	struct mtls_error err = { 0 };

	if (ctl->cfg != NULL)
		return 0;
	if (config_load(ctl->config_path, &ctl->cfg, &err) != MTLS_OK)
		return ctl_fail(&err);
	return 0;
}

static void hint(const char *name)
{
	fprintf(stderr, "Try 'mtlsctl help%s%s'.\n", name ? " " : "",
		name ? name : "");
}

int main(int argc, char **argv)
{
	struct ctl ctl = { .config_path = DEFAULT_CONFIG };
	const struct ctl_command *cmd;
	char prog[64];
	int i = 1, rc;

	mtls_log_init("mtlsctl");
	mtls_log_set_level(MTLS_LOG_WARNING);
	while (i < argc && argv[i][0] == '-') {
		if ((strcmp(argv[i], "-c") == 0 ||
		     strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
			ctl.config_path = argv[i + 1];
			ctl.config_given = 1;
			i += 2;
		} else if (strcmp(argv[i], "-h") == 0 ||
			   strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "-V") == 0 ||
			   strcmp(argv[i], "--version") == 0) {
			printf("mtlsctl %s\n", MTLS_VERSION);
			return 0;
		} else {
			fprintf(stderr, "mtlsctl: unknown option '%s'\n", argv[i]);
			hint(NULL);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = find_command(argv[i]);
	if (cmd == NULL) {
		fprintf(stderr, "mtlsctl: unknown command '%s'\n", argv[i]);
		hint(NULL);
		return 2;
	}
	if (asks_help(cmd, argc - i, argv + i)) {
		print_command_help(cmd);
		return 0;
	}
	if (unknown_opt(cmd, argc - i, argv + i) != NULL) {
		fprintf(stderr, "mtlsctl %s: unrecognized option '%s'\n",
			cmd->name, unknown_opt(cmd, argc - i, argv + i));
		hint(cmd->name);
		return 2;
	}
	/* getopt's messages then read "mtlsctl csr: unrecognized option". */
	snprintf(prog, sizeof(prog), "mtlsctl %s", cmd->name);
	argv[i] = prog;
	rc = cmd->fn(&ctl, argc - i, argv + i);
	if (rc == 2)
		hint(cmd->fn == ctl_help || cmd->fn == ctl_list ? NULL : cmd->name);
	config_free(ctl.cfg);
	wc_ecc_fp_free(); /* wolfSSL's per-thread tables */
	return rc;
}
