/* mtlsctl's side of the control socket: status, reload, renew, unlock,
 * lock (see control_proto.h). */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "control_proto.h"
#include "mtls_secret.h"
#include "mtlsctl.h"

/* 0 and *reply on an answer; -1 when the agent cannot be reached. */
static int ctl_call(struct ctl *ctl, const char *request, const char *extra,
	     json_object **reply)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *buf = NULL;
	size_t got = 0;
	int fd, rc = -1;

	*reply = NULL;
	if (ctl_load_config(ctl) != 0 || ctl->cfg->agent.control == NULL)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ctl->cfg->agent.control);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;
	if (send(fd, request, strlen(request), MSG_NOSIGNAL) < 0 ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) < 0 ||
	    (extra != NULL && (send(fd, extra, strlen(extra), MSG_NOSIGNAL) < 0 ||
			       send(fd, "\n", 1, MSG_NOSIGNAL) < 0)))
		goto out;
	buf = malloc(CONTROL_RESPONSE_MAX + 1);
	if (buf == NULL)
		goto out;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 30000) != 1)
			break;
		n = recv(fd, buf + got, CONTROL_RESPONSE_MAX - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == CONTROL_RESPONSE_MAX)
			break;
	}
	buf[got] = '\0';
	if (got == 0) {
		fprintf(stderr, "mtlsctl: the agent closed the control socket "
				"without answering (not allowed to use it?)\n");
		rc = 1;
		goto out;
	}
	*reply = json_tokener_parse(buf);
	rc = *reply ? 0 : 1;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static int simple(struct ctl *ctl, const char *req, const char *extra,
		  const char *done)
{
	json_object *reply, *v;
	int rc = ctl_call(ctl, req, extra, &reply);

	if (rc < 0) {
		fprintf(stderr, "mtlsctl: cannot reach the agent's control "
				"socket (%s)\n",
			ctl->cfg && ctl->cfg->agent.control ? ctl->cfg->agent.control :
							      "no [agent] control=");
		return 1;
	}
	if (rc > 0)
		return 1;
	if (json_object_object_get_ex(reply, "ok", &v) && json_object_get_boolean(v)) {
		printf("%s\n", done);
		json_object_put(reply);
		return 0;
	}
	fprintf(stderr, "mtlsctl: %s: %s\n",
		json_object_object_get_ex(reply, "error", &v) ? json_object_get_string(v) : "error",
		json_object_object_get_ex(reply, "detail", &v) ? json_object_get_string(v) : "");
	json_object_put(reply);
	return 1;
}

int ctl_reload(struct ctl *ctl, int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return ctl_usage("reload");
	return simple(ctl, "{\"cmd\":\"reload\"}", NULL, "reload requested");
}

int ctl_reload_quiet(struct ctl *ctl)
{
	json_object *reply = NULL, *v;
	int ok;

	if (ctl_call(ctl, "{\"cmd\":\"reload\"}", NULL, &reply) != 0)
		return -1;
	ok = json_object_object_get_ex(reply, "ok", &v) &&
	     json_object_get_boolean(v);
	json_object_put(reply);
	return ok ? 0 : -1;
}

static void request_with(char *out, size_t cap, const char *cmd, const char *key,
			 const char *val)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "cmd", json_object_new_string(cmd));
	json_object_object_add(o, key, json_object_new_string(val));
	snprintf(out, cap, "%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

int ctl_renew_agent(struct ctl *ctl, const char *identity)
{
	char req[512];

	request_with(req, sizeof(req), CONTROL_CMD_RENEW, "identity", identity);
	return simple(ctl, req, NULL, "renewal started; see mtlsctl status");
}

/* Reads the PIN without echo from the terminal, like ssh-add; from stdin
 * when that is not a terminal (scripts, tests). */
static int read_pin(const char *token, struct mtls_secret *pin)
{
	char buf[MTLS_SECRET_MAX + 2];
	struct termios old, quiet;
	FILE *tty = fopen("/dev/tty", "r+e");
	FILE *in = tty ? tty : stdin;
	int echo_off = 0, rc = -1;
	size_t n;

	if (tty != NULL) {
		fprintf(tty, "PIN for token %s: ", token);
		fflush(tty);
		if (tcgetattr(fileno(tty), &old) == 0) {
			quiet = old;
			quiet.c_lflag &= (tcflag_t)~ECHO;
			echo_off = tcsetattr(fileno(tty), TCSAFLUSH, &quiet) == 0;
		}
	}
	if (fgets(buf, sizeof(buf), in) != NULL) {
		n = strcspn(buf, "\r\n");
		if (n > 0 && mtls_secret_set(pin, buf, n) == 0)
			rc = 0;
	}
	explicit_bzero(buf, sizeof(buf));
	if (echo_off) {
		tcsetattr(fileno(tty), TCSAFLUSH, &old);
		fputc('\n', tty);
	}
	if (tty != NULL)
		fclose(tty);
	return rc;
}

int ctl_unlock(struct ctl *ctl, int argc, char **argv)
{
	struct mtls_secret *pin;
	char req[512];
	int rc;

	if (argc == 3 && strcmp(argv[1], "--pinentry") == 0) {
		/* pin_source = pinentry: the agent asks through pinentry, on
		 * this terminal (the agent checks that it is ours). */
		json_object *o = json_object_new_object();
		const char *tty = ttyname(STDIN_FILENO), *term = getenv("TERM");

		json_object_object_add(o, "cmd",
				       json_object_new_string(CONTROL_CMD_UNLOCK));
		json_object_object_add(o, "token", json_object_new_string(argv[2]));
		json_object_object_add(o, "pinentry", json_object_new_boolean(1));
		if (tty != NULL)
			json_object_object_add(o, "tty", json_object_new_string(tty));
		if (term != NULL && strlen(term) < 32)
			json_object_object_add(o, "term", json_object_new_string(term));
		snprintf(req, sizeof(req), "%s",
			 json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		return simple(ctl, req, "",
			      "pinentry started; see mtlsctl status");
	}
	if (argc != 2)
		return ctl_usage("unlock");
	pin = mtls_secret_new();
	if (pin == NULL || read_pin(argv[1], pin) != 0) {
		fprintf(stderr, "mtlsctl: no PIN given\n");
		mtls_secret_free(pin);
		return 1;
	}
	request_with(req, sizeof(req), CONTROL_CMD_UNLOCK, "token", argv[1]);
	rc = simple(ctl, req, pin->buf, "token unlocked");
	mtls_secret_free(pin);
	return rc;
}

int ctl_lock(struct ctl *ctl, int argc, char **argv)
{
	char req[512];

	if (argc != 2)
		return ctl_usage("lock");
	request_with(req, sizeof(req), CONTROL_CMD_LOCK, "token", argv[1]);
	return simple(ctl, req, NULL, "token locked: logged out, PIN forgotten");
}

static const char *str(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static int64_t num(json_object *o, const char *key, int64_t dflt)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : dflt;
}

static int by_expiry(const void *x, const void *y)
{
	json_object *const *a = x, *const *b = y;
	int64_t ea = num(*a, "not_after", INT64_MAX), eb = num(*b, "not_after", INT64_MAX);

	return ea < eb ? -1 : ea > eb;
}

/* The agent's status, for a person: tokens, identities on an expiry
 * timeline, listeners, connections. */
int ctl_status_agent(struct ctl *ctl, int json)
{
	json_object *r, *a, *v;
	int64_t now = (int64_t)time(NULL);
	char t1[64], t2[64];
	int rc = ctl_call(ctl, "{\"cmd\":\"status\"}", NULL, &r);

	if (rc != 0)
		return rc;
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PRETTY));
		json_object_put(r);
		return 0;
	}
	printf("mtls-agent %s (pid %lld)\n\nTOKENS\n", str(r, "version"),
	       (long long)num(r, "pid", 0));
	json_object_object_get_ex(r, "tokens", &a);
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *t = json_object_array_get_idx(a, i);
		int present = (int)num(t, "present", 0);

		printf("  %-12s %-8s %s%s%s%s\n", str(t, "name"),
		       present ? "present" : "ABSENT",
		       present ? str(t, "label") : "",
		       num(t, "locked", 0) ? "  LOCKED: mtlsctl unlock" : "",
		       num(t, "pin_refused", 0) ? "  PIN REFUSED: not tried again; "
						  "give a new PIN" : "",
		       ctl_pin_state(num(t, "pin_count_low", 0),
				     num(t, "pin_final_try", 0),
				     num(t, "pin_locked", 0)));
	}
	printf("\nIDENTITIES (soonest expiry first)\n");
	json_object_object_get_ex(r, "identities", &a);
	if (a != NULL)
		json_object_array_sort(a, by_expiry);
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *id = json_object_array_get_idx(a, i);

		if (!json_object_object_get_ex(id, "not_after", &v)) {
			printf("  %-12s no certificate loaded (token %s)\n",
			       str(id, "name"), str(id, "token"));
			continue;
		}
		ctl_fmt_time(num(id, "not_after", 0), t1, sizeof(t1));
		ctl_fmt_span(num(id, "not_after", 0) - now, t2, sizeof(t2));
		printf("  %-12s expires %s (%s %s)  %s\n", str(id, "name"), t1,
		       num(id, "not_after", 0) > now ? "in" : "EXPIRED", t2,
		       str(id, "subject"));
		printf("  %-12s issuer %s, token %s, generation %lld\n", "",
		       str(id, "issuer"), str(id, "token"),
		       (long long)num(id, "generation", 0));
		if (json_object_object_get_ex(id, "next_renewal", &v)) {
			ctl_fmt_time(num(id, "next_renewal", 0), t1, sizeof(t1));
			ctl_fmt_span(num(id, "next_renewal", 0) - now, t2, sizeof(t2));
			printf("  %-12s next renewal %s (%s %s); last: %s\n", "", t1,
			       num(id, "next_renewal", 0) > now ? "in" : "due", t2,
			       *str(id, "last_result") ? str(id, "last_result") : "none yet");
		}
	}
	printf("\nLISTENERS\n");
	json_object_object_get_ex(r, "listeners", &a);
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *l = json_object_array_get_idx(a, i);

		printf("  %-6s %-12s %s%s%s%s%s\n", str(l, "kind"), str(l, "name"),
		       str(l, "listen"), *str(l, "connect") ? " -> " : "",
		       str(l, "connect"), *str(l, "identity") ? " as " : "",
		       str(l, "identity"));
	}
	json_object_object_get_ex(r, "connections", &v);
	printf("\nCONNECTIONS  active %lld, total %lld, refused %lld\n",
	       (long long)num(v, "active", 0), (long long)num(v, "total", 0),
	       (long long)num(v, "refused", 0));
	json_object_object_get_ex(r, "handshakes", &v);
	printf("HANDSHAKES   ok %lld; failed %s\n", (long long)num(v, "ok", 0),
	       json_object_object_get_ex(v, "failed", &a) ?
		       json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN) : "{}");
	if (json_object_object_get_ex(r, "revocation", &a) &&
	    json_object_array_length(a) > 0) {
		printf("\nREVOCATION   cached answers (age since thisUpdate, "
		       "refresh in)\n");
		for (size_t i = 0; i < json_object_array_length(a); i++)
			printf("  %s\n", json_object_get_string(
					      json_object_array_get_idx(a, i)));
	}
	json_object_put(r);
	return 0;
}
