/* mtlsctl init: a first configuration for the common case, one token found
 * through p11-kit, one identity, one agent socket, then the key generated
 * on the token and the CSR printed, so that a new user goes from nothing
 * to "send this to your CA" in one command. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mtlsctl.h"

#define INIT_TOKENS_MAX 32

struct init_opts {
	const char *module, *token, *identity, *subject, *type, *pin_source;
	const char *server_ca, *allow, *out;
	const char *sans[8];
	unsigned n_sans;
};

/* A value written into the configuration: one line, no ';' or '#' that
 * the reader would take for a comment, no control character. */
static int safe_value(const char *what, const char *v)
{
	for (const char *p = v; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == ';' ||
		    *p == '#') {
			fprintf(stderr, "mtlsctl: %s: control characters, ';' and "
					"'#' cannot be written in a configuration\n",
				what);
			return -1;
		}
	return 0;
}

/* $XDG_CONFIG_HOME/mtls-agent/mtls-agent.conf, as the user unit reads. */
static int default_path(char *out, size_t cap)
{
	const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	int n;

	if (x != NULL && x[0] == '/')
		n = snprintf(out, cap, "%s/mtls-agent/mtls-agent.conf", x);
	else if (home != NULL && home[0] == '/')
		n = snprintf(out, cap, "%s/.config/mtls-agent/mtls-agent.conf",
			     home);
	else
		return -1;
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Each missing folder of path's parent, 0700; an existing one is used as
 * it is (a user's ~/.config). */
static int make_parents(const char *path)
{
	char dir[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof(dir))
		return -1;
	memcpy(dir, path, n + 1);
	for (char *p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return 0;
}

/* One token to use: the one asked for, or the only one there is. */
static int pick_token(const struct init_opts *o, struct p11_token_info *out)
{
	static struct p11_token_info all[INIT_TOKENS_MAX];
	struct mtls_error err = { 0 };
	size_t n = 0, match = 0, pick = 0;

	if (p11_tokens_list(o->module, all, INIT_TOKENS_MAX, &n, &err) != MTLS_OK)
		return ctl_fail(&err);
	for (size_t i = 0; i < n; i++)
		if (o->token == NULL || strcmp(all[i].label, o->token) == 0) {
			if (match++ == 0)
				pick = i;
		}
	if (match == 1) {
		*out = all[pick];
		return 0;
	}
	if (n == 0)
		fprintf(stderr, "mtlsctl: no initialised token found%s%s%s: "
				"insert it, or name its module with --module\n",
			o->module ? " in " : " through p11-kit",
			o->module ? o->module : "", "");
	else
		fprintf(stderr, "mtlsctl: %s: choose one with --token LABEL "
				"(and --module):\n",
			match == 0 ? "no token has that label" :
				     "more than one token");
	for (size_t i = 0; i < n; i++) {
		/* Quoted for a shell when it needs to be (a label with a
		 * space); a quote in it is left for the user to escape. */
		int plain = all[i].label[0] != '\0' &&
			    strspn(all[i].label, "abcdefghijklmnopqrstuvwxyz"
					       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
					       "0123456789._-") ==
				    strlen(all[i].label);

		fprintf(stderr, "  --module %s --token %s%s%s   (%s %s, serial %s)\n",
			all[i].module, plain ? "" : "'", all[i].label,
			plain ? "" : "'", all[i].manufacturer, all[i].model,
			all[i].serial);
	}
	return 1;
}

/* A URI attribute value percent-encoded where RFC 7512 wants it (all but
 * the unreserved characters): a label with a space, a serial with a
 * semicolon. */
static void put_pct(FILE *f, const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			   "0123456789-._~", *p) != NULL)
			fputc(*p, f);
		else
			fprintf(f, "%%%02X", *p);
	}
}

static int write_config(const char *path, const struct init_opts *o,
			const struct p11_token_info *ti)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char tmp[PATH_MAX], statedir[PATH_MAX], sock[PATH_MAX], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	FILE *f;
	int fd;

	if (geteuid() == 0 && rt == NULL)
		snprintf(sock, sizeof(sock), "/run/mtls-agent/agent.sock");
	else if (rt != NULL && rt[0] == '/')
		snprintf(sock, sizeof(sock), "%s/mtls-agent/agent.sock", rt);
	else {
		fprintf(stderr, "mtlsctl: no XDG_RUNTIME_DIR for the agent "
				"socket\n");
		return 1;
	}
	if (state != NULL && state[0] == '/')
		snprintf(statedir, sizeof(statedir), "%s/mtls-agent", state);
	else if (home != NULL && home[0] == '/' && geteuid() != 0)
		snprintf(statedir, sizeof(statedir),
			 "%s/.local/state/mtls-agent", home);
	else
		snprintf(statedir, sizeof(statedir), "/var/lib/mtls-agent");
	if (safe_value("the socket path", sock) ||
	    safe_value("the state folder", statedir) ||
	    safe_value("--token", ti->label) || safe_value("--module", ti->module) ||
	    safe_value("--pin-source", o->pin_source) ||
	    (o->server_ca && safe_value("--server-ca", o->server_ca)) ||
	    (o->allow && safe_value("--allow", o->allow)) ||
	    safe_value("--subject", o->subject))
		return 1;
	/* The user's state folder, as the user unit's StateDirectory= would
	 * make it, so that the agent also runs by hand; the system's one is
	 * the package's (owned by the mtls-agent user). */
	if (strcmp(statedir, "/var/lib/mtls-agent") != 0) {
		char leaf[PATH_MAX + 2];

		snprintf(leaf, sizeof(leaf), "%s/", statedir);
		if (make_parents(leaf) != 0) {
			fprintf(stderr, "mtlsctl: %s: %s\n", statedir,
				strerror(errno));
			return 1;
		}
	}
		if (make_parents(path) != 0) {
		fprintf(stderr, "mtlsctl: %s: cannot make its folder: %s\n", path,
			strerror(errno));
		return 1;
	}
	/* Never over an existing file, nor through a planted symlink. */
	if (snprintf(tmp, sizeof(tmp), "%s.init-XXXXXX", path) >= (int)sizeof(tmp))
		return 1;
	fd = mkstemp(tmp);
	if (fd < 0) {
		fprintf(stderr, "mtlsctl: %s: %s\n", tmp, strerror(errno));
		return 1;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		unlink(tmp);
		return 1;
	}
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(f, "; Written by mtlsctl init at %s; see mtls-agent.conf(5).\n"
		   "[agent]\nstate_dir = %s\n\n", stamp, statedir);
	fprintf(f, "; %s %s, serial %s\n[token main]\nmodule = %s\n"
		   "uri = pkcs11:token=", ti->manufacturer, ti->model, ti->serial,
		ti->module);
	put_pct(f, ti->label);
	fputs(";serial=", f);
	put_pct(f, ti->serial);
	fprintf(f, "\npin_source = %s\n\n", o->pin_source);
	fprintf(f, "[identity %s]\ntoken = main\n"
		   "key = pkcs11:object=%s-key;type=private\n"
		   "cert = pkcs11:object=%s-cert;type=cert\n",
		o->identity, o->identity, o->identity);
	if (o->server_ca != NULL)
		fprintf(f, "ca = %s\n", o->server_ca);
	fprintf(f, "\n; The agent socket: eval \"$(mtlsctl env)\" points programs "
		   "at it.\n[proxy agent]\nlisten = %s\n\n", sock);
	if (o->allow != NULL && o->server_ca != NULL)
		fprintf(f, "[profile servers]\nca = %s\n\n"
			   "[rule %s]\nuid = %u\nhosts = %s\naction = allow\n"
			   "identity = %s\nprofile = servers\n",
			o->server_ca, o->identity, (unsigned)geteuid(), o->allow,
			o->identity);
	else
		fprintf(f, "; Nothing is allowed until a rule says so, e.g.:\n"
			   "; [profile servers]\n; ca = /path/to/servers-ca.pem\n"
			   "; [rule %s]\n; uid = %u\n; hosts = *.corp.example\n"
			   "; action = allow\n; identity = %s\n; profile = servers\n",
			o->identity, (unsigned)geteuid(), o->identity);
	if (fflush(f) != 0 || fsync(fd) != 0 || ferror(f)) {
		fclose(f);
		unlink(tmp);
		fprintf(stderr, "mtlsctl: %s: write failed\n", tmp);
		return 1;
	}
	fclose(f);
	/* link(2) fails if path exists (a file or a symlink): never
	 * replaced. */
	if (link(tmp, path) != 0) {
		int e = errno;

		unlink(tmp);
		if (e == EEXIST)
			fprintf(stderr, "mtlsctl: %s exists: init writes a new "
					"configuration only (edit that one, or "
					"pass -c another path)\n", path);
		else
			fprintf(stderr, "mtlsctl: %s: %s\n", path, strerror(e));
		return 1;
	}
	unlink(tmp);
	printf("wrote %s (token %s of %s, identity %s)\n", path, ti->label,
	       ti->module, o->identity);
	return 0;
}

int ctl_init(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "module", required_argument, NULL, 'm' },
		{ "token", required_argument, NULL, 't' },
		{ "identity", required_argument, NULL, 'i' },
		{ "subject", required_argument, NULL, 's' },
		{ "san", required_argument, NULL, 'a' },
		{ "type", required_argument, NULL, 'k' },
		{ "pin-source", required_argument, NULL, 'p' },
		{ "server-ca", required_argument, NULL, 'C' },
		{ "allow", required_argument, NULL, 'A' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	struct init_opts o = { .identity = "device", .type = "ec-p256" };
	struct p11_token_info ti;
	char path[PATH_MAX], subject[128], host[64];
	char *kargv[4], *cargv[24];
	int opt, kargc = 0, cargc = 0, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		switch (opt) {
		case 'm': o.module = optarg; break;
		case 't': o.token = optarg; break;
		case 'i': o.identity = optarg; break;
		case 's': o.subject = optarg; break;
		case 'k': o.type = optarg; break;
		case 'p': o.pin_source = optarg; break;
		case 'C': o.server_ca = optarg; break;
		case 'A': o.allow = optarg; break;
		case 'o': o.out = optarg; break;
		case 'a':
			if (o.n_sans == sizeof(o.sans) / sizeof(o.sans[0])) {
				fprintf(stderr, "mtlsctl: at most 8 --san\n");
				return 2;
			}
			o.sans[o.n_sans++] = optarg;
			break;
		default:
			return 2;
		}
	}
	if (optind != argc)
		return ctl_usage("init");
	if (o.pin_source == NULL) {
		fprintf(stderr, "mtlsctl: init needs --pin-source file:PATH (a "
				"file only you can read, mode 0600 or 0400), "
				"env:VAR or credential:NAME: the key is made "
				"now, on the token\n");
		return 2;
	}
	for (const char *p = o.identity; *p != '\0'; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789-_", *p) ||
		    p - o.identity >= 32) {
			fprintf(stderr, "mtlsctl: --identity: lower-case letters, "
					"digits, - and _ (at most 32)\n");
			return 2;
		}
	if (o.subject == NULL) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "device");
		host[sizeof(host) - 1] = '\0';
		snprintf(subject, sizeof(subject), "CN=%s", host);
		o.subject = subject;
	}
	if (ctl->config_given)
		snprintf(path, sizeof(path), "%s", ctl->config_path);
	else if (default_path(path, sizeof(path)) != 0) {
		fprintf(stderr, "mtlsctl: no XDG_CONFIG_HOME or HOME: pass -c "
				"PATH\n");
		return 2;
	}
	/* lstat: a dangling symlink is there too (link(2) below refuses it
	 * all the same; this says so before the modules are loaded). */
	if (lstat(path, &(struct stat){ 0 }) == 0 || errno != ENOENT) {
		fprintf(stderr, "mtlsctl: %s exists: init writes a new "
				"configuration only (edit that one, or pass -c "
				"another path)\n", path);
		return 1;
	}
	if (pick_token(&o, &ti) != 0)
		return 1;
	if (write_config(path, &o, &ti) != 0)
		return 1;

	/* The rest is what keygen and csr do with that configuration. */
	ctl->config_path = path;
	ctl->cfg = NULL;
	kargv[kargc++] = "keygen";
	kargv[kargc++] = "--type";
	kargv[kargc++] = (char *)o.type;
	kargv[kargc++] = (char *)o.identity;
	rc = ctl_keygen(ctl, kargc, kargv);
	if (rc != 0) {
		fprintf(stderr, "mtlsctl: the configuration stays in %s; fix the "
				"above, then: mtlsctl -c %s keygen %s\n",
			path, path, o.identity);
		return rc;
	}
	cargv[cargc++] = "csr";
	cargv[cargc++] = "--subject";
	cargv[cargc++] = (char *)o.subject;
	for (unsigned i = 0; i < o.n_sans; i++) {
		cargv[cargc++] = "--san";
		cargv[cargc++] = (char *)o.sans[i];
	}
	if (o.out != NULL) {
		cargv[cargc++] = "--out";
		cargv[cargc++] = (char *)o.out;
	}
	cargv[cargc++] = (char *)o.identity;
	rc = ctl_csr(ctl, cargc, cargv);
	if (rc != 0)
		return rc;
	fprintf(o.out != NULL ? stdout : stderr,
		"\nNext:\n"
		"  1. send the request%s%s to your CA; store what it issues with\n"
		"       mtlsctl -c %s import-cert %s CERT.pem\n"
		"  2. mtls-agent -c %s --check\n"
		"  3. systemctl --user enable --now mtls-agent\n"
		"  4. eval \"$(mtlsctl -c %s env)\"\n",
		o.out != NULL ? " in " : " above", o.out != NULL ? o.out : "",
		path, o.identity, path, path);
	return 0;
}
