/* mtlsctl env: the lines a shell evaluates so that its programs use the
 * agent socket, as ssh-agent -s prints SSH_AUTH_SOCK:
 *   eval "$(mtlsctl env)"
 * ALL_PROXY and all_proxy (programs differ in the spelling they read) name
 * the socket as a SOCKS5 proxy that resolves names itself (socks5h);
 * http_proxy names it as a plain HTTP proxy when it is a loopback port
 * (programs take no Unix socket there). HTTP_PROXY is never printed: CGI
 * servers put a request's "Proxy:" header in that name (httpoxy). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mtlsctl.h"

/* value, quoted for sh (csh: 0) or csh (1): inside single quotes nothing
 * is special to sh; a quote closes, is escaped and reopens. csh also
 * expands ! inside single quotes, and cannot take a newline there: a
 * control character is refused for both. */
static int has_control(const char *value)
{
	for (const char *p = value; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 1;
	return 0;
}

static void print_quoted(const char *value, int csh)
{
	putchar('\'');
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\'')
			fputs("'\\''", stdout);
		else if (csh && *p == '!')
			fputs("'\\!'", stdout);
		else
			putchar(*p);
	}
	putchar('\'');
}

static void print_var(const char *name, const char *value, int csh)
{
	printf("%s%s%s", csh ? "setenv " : "", name, csh ? " " : "=");
	print_quoted(value, csh);
	if (csh)
		printf(";\n");
	else
		printf("; export %s;\n", name);
}

/* The first [proxy] of the configuration, when it can be read: a user's
 * shell often cannot read the system's configuration, and the per-user
 * agent's socket is then the default. 0: found; -1: none; 1: broken. */
static int first_proxy(struct ctl *ctl, const struct cfg_tunnel **out)
{
	*out = NULL;
	if (access(ctl->config_path, R_OK) != 0)
		return -1;
	if (ctl_load_config(ctl) != 0)
		return 1;
	for (unsigned i = 0; i < ctl->cfg->n_tunnels; i++) {
		if (ctl->cfg->tunnels[i].is_proxy) {
			*out = &ctl->cfg->tunnels[i];
			return 0;
		}
	}
	return -1;
}

int ctl_env(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "csh", no_argument, NULL, 'C' },
		{ "http-proxy", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	const struct cfg_tunnel *proxy = NULL;
	const char *socket_path = NULL;
	char url[4200], http[300], fallback[4096];
	int opt, csh = 0, want_http = 0;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 's')
			socket_path = optarg;
		else if (opt == 'C')
			csh = 1;
		else if (opt == 'H')
			want_http = 1;
		else
			return 2;
	}
	if (optind != argc)
		return ctl_usage("env");
	http[0] = '\0';
	if (socket_path == NULL) {
		switch (first_proxy(ctl, &proxy)) {
		case 1:
			return 1;
		case 0:
			socket_path = proxy->listen_path;
			break;
		default: {
			const char *rt = getenv("XDG_RUNTIME_DIR");

			if (rt == NULL || rt[0] != '/') {
				fprintf(stderr, "mtlsctl: no [proxy] in %s and no "
						"XDG_RUNTIME_DIR: use --socket\n",
					ctl->config_path);
				return 1;
			}
			snprintf(fallback, sizeof(fallback),
				 "%s/mtls-agent/agent.sock", rt);
			socket_path = fallback;
		}
		}
	}
	if (socket_path != NULL) {
		if (socket_path[0] != '/') {
			fprintf(stderr, "mtlsctl: --socket: an absolute path\n");
			return 2;
		}
		snprintf(url, sizeof(url), "socks5h://localhost%s", socket_path);
	} else {
		/* A loopback port: [::1] in brackets. */
		int v6 = strchr(proxy->listen_host, ':') != NULL;

		snprintf(url, sizeof(url), "socks5h://%s%s%s:%u", v6 ? "[" : "",
			 proxy->listen_host, v6 ? "]" : "", proxy->listen_port);
		snprintf(http, sizeof(http), "http://%s%s%s:%u",
			 v6 ? "[" : "", proxy->listen_host,
			 v6 ? "]" : "", proxy->listen_port);
	}
	if (want_http && http[0] == '\0')
		fprintf(stderr, "mtlsctl: the agent socket is a Unix socket: "
				"no http_proxy\n");
	if (has_control(url)) {
		fprintf(stderr, "mtlsctl: the socket path has a control "
				"character\n");
		return 1;
	}
	print_var("ALL_PROXY", url, csh);
	print_var("all_proxy", url, csh);
	if (http[0] != '\0')
		print_var("http_proxy", http, csh);
	return 0;
}
