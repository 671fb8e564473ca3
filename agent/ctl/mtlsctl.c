/* mtlsctl: the command-line tool. */
#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/ecc.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mtlsctl.h"
#include "mtls_log.h"

#define DEFAULT_CONFIG "/etc/mtls-agent/mtls-agent.conf"

static const struct {
	const char *name;
	int (*fn)(struct ctl *, int, char **);
	const char *help;
} commands[] = {
	{ "keygen", ctl_keygen,
	  "IDENTITY [--type ec-p256|ec-p384|rsa-2048|rsa-3072] [--acme-account]" },
	{ "csr", ctl_csr,
	  "IDENTITY --subject CN=..,O=.. [--san DNS:name]... [-o FILE]" },
	{ "import-cert", ctl_import_cert, "IDENTITY CERT.pem" },
	{ "key-info", ctl_key_info, "IDENTITY" },
	{ "status", ctl_status, "[--json]  (tokens, identities by expiry, listeners)" },
	{ "reload", ctl_reload, "" },
	{ "unlock", ctl_unlock, "TOKEN  (asks for the PIN, hands it to the agent)" },
	{ "lock", ctl_lock, "TOKEN  (logs out, forgets the PIN)" },
	{ "enroll", ctl_enroll, "IDENTITY [--bootstrap]  (first certificate)" },
	{ "renew", ctl_renew, "IDENTITY [--now]" },
	{ "revoke", ctl_revoke,
	  "IDENTITY [--reason key-compromise|superseded|...]  (ACME; retires it)" },
	{ "connect", ctl_connect, "[--socket PATH] HOST:PORT  (stdin/stdout bridge)" },
	{ "policy", ctl_policy,
	  "check --uid U [--gid G] [--exe P] [--unit U] --dest HOST:PORT [--at T]" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: mtlsctl [-c CONFIG] COMMAND [ARGS]\n\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nCONFIG defaults to %s.\n", DEFAULT_CONFIG);
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

int main(int argc, char **argv)
{
	struct ctl ctl = { .config_path = DEFAULT_CONFIG };
	int i = 1, rc;

	mtls_log_init("mtlsctl");
	mtls_log_set_level(MTLS_LOG_WARNING);
	while (i < argc && argv[i][0] == '-') {
		if ((strcmp(argv[i], "-c") == 0 ||
		     strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
			ctl.config_path = argv[i + 1];
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
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
		if (strcmp(argv[i], commands[c].name) == 0) {
			rc = commands[c].fn(&ctl, argc - i, argv + i);
			config_free(ctl.cfg);
			wc_ecc_fp_free(); /* wolfSSL's per-thread tables */
			return rc;
		}
	}
	fprintf(stderr, "mtlsctl: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return 2;
}
