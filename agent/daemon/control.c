#include "control.h"
#include "pinentry_job.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "caller.h"
#include "control_proto.h"
#include "current.h"
#include "local_server.h"
#include "mtls_clock.h"
#include "mtls_log.h"
#include "p11.h"
#include "pins.h"
#include "renew_schedule.h"
#include "revocation.h"
#include "renew_state.h"
#include "scheduler.h"
#include "stats.h"

static struct local_server server;
static struct {
	int reload_fd;
	uid_t uid;
	gid_t group;
	int has_group;
	char path[108];
} C;

static int allowed(const struct caller *who)
{
	if (who->uid == (int64_t)C.uid || who->uid == 0)
		return 1;
	if (!C.has_group)
		return 0;
	if (who->gid == (int64_t)C.group)
		return 1;
	for (unsigned i = 0; i < who->n_groups; i++)
		if (who->groups[i] == C.group)
			return 1;
	return 0;
}

static json_object *error_reply(mtls_err_t code, const char *detail)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(mtls_err_name(code)));
	json_object_object_add(o, "detail", json_object_new_string(detail ? detail : ""));
	return o;
}

static json_object *ok_reply(void)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

static json_object *status(struct runtime *rt)
{
	json_object *o = ok_reply(), *a, *h, *f;
	int64_t now = (int64_t)time(NULL);

	json_object_object_add(o, "version", json_object_new_string(MTLS_VERSION));
	json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
	a = json_object_new_array();
	for (unsigned i = 0; i < rt->cfg->n_tokens; i++) {
		json_object *t = json_object_new_object();
		struct p11_token_status ts;

		p11_token_status(rt->tokens[i], &ts);
		json_object_object_add(t, "name", json_object_new_string(rt->cfg->tokens[i].name));
		json_object_object_add(t, "present", json_object_new_boolean(ts.present));
		json_object_object_add(t, "logged_in", json_object_new_boolean(ts.logged_in));
		/* Locked: its identities wait for a PIN (rt->locked, at load),
		 * or its PIN, which only a person gives, was taken away since
		 * (mtlsctl lock, the token pulled out). */
		json_object_object_add(t, "locked", json_object_new_boolean(
			rt->locked[i] || (cfg_token_person_pin(&rt->cfg->tokens[i]) &&
					  !pins_has(rt->cfg->tokens[i].name))));
		json_object_object_add(t, "pin_refused", json_object_new_boolean(ts.pin_refused));
		/* The token's retry counter flags, read from it now. */
		json_object_object_add(t, "pin_count_low", json_object_new_boolean(ts.pin_count_low));
		json_object_object_add(t, "pin_final_try", json_object_new_boolean(ts.pin_final_try));
		json_object_object_add(t, "pin_locked", json_object_new_boolean(ts.pin_locked));
		json_object_object_add(t, "label", json_object_new_string(ts.label));
		json_object_object_add(t, "serial", json_object_new_string(ts.serial));
		json_object_object_add(t, "model", json_object_new_string(ts.model));
		json_object_array_add(a, t);
	}
	json_object_object_add(o, "tokens", a);
	a = json_object_new_array();
	for (unsigned i = 0; i < rt->cfg->n_identities; i++) {
		const struct cfg_identity *ci = &rt->cfg->identities[i];
		struct identity *id = rt->ids[i];
		json_object *j = json_object_new_object();
		struct mtls_error err;
		struct renew_state st;

		json_object_object_add(j, "name", json_object_new_string(ci->name));
		json_object_object_add(j, "token", json_object_new_string(rt->cfg->tokens[ci->token].name));
		if (id != NULL) {
			json_object_object_add(j, "subject", json_object_new_string(id->subject));
			json_object_object_add(j, "issuer", json_object_new_string(id->issuer));
			json_object_object_add(j, "not_after", json_object_new_int64(id->not_after));
			json_object_object_add(j, "seconds_left", json_object_new_int64(id->not_after - now));
		}
		if (renew_state_load(rt->cfg->agent.state_dir, ci->name, &st, &err) == MTLS_OK) {
			json_object_object_add(j, "generation", json_object_new_int((int)st.generation));
			json_object_object_add(j, "renewal_step", json_object_new_string(renew_step_name(st.step)));
			json_object_object_add(j, "last_result", json_object_new_string(st.last_result));
			json_object_object_add(j, "failures", json_object_new_int((int)st.failures));
			if (ci->renew.enroll != CFG_ENROLL_NONE && id != NULL) {
				int64_t due = renew_due(&ci->renew.sched, id->not_before,
							id->not_after, 0);

				if (st.next_attempt > due)
					due = st.next_attempt;
				json_object_object_add(j, "next_renewal", json_object_new_int64(due));
			}
		}
		json_object_array_add(a, j);
	}
	json_object_object_add(o, "identities", a);
	a = json_object_new_array();
	for (unsigned i = 0; i < rt->n_tunnels; i++) {
		const struct cfg_tunnel *t = rt->tunnels[i].cfg;
		json_object *j = json_object_new_object();
		char where[300];

		if (t->listen_path)
			snprintf(where, sizeof(where), "%s", t->listen_path);
		else
			snprintf(where, sizeof(where), "%s:%u", t->listen_host, t->listen_port);
		json_object_object_add(j, "name", json_object_new_string(t->name));
		json_object_object_add(j, "kind", json_object_new_string(t->is_proxy ? "proxy" : "tunnel"));
		json_object_object_add(j, "listen", json_object_new_string(where));
		if (!t->is_proxy) {
			snprintf(where, sizeof(where), "%s:%u", t->connect_host, t->connect_port);
			json_object_object_add(j, "connect", json_object_new_string(where));
			json_object_object_add(j, "identity", json_object_new_string(
				rt->cfg->identities[t->identity].name));
		}
		json_object_array_add(a, j);
	}
	json_object_object_add(o, "listeners", a);
	h = json_object_new_object();
	json_object_object_add(h, "active", json_object_new_int64((int64_t)atomic_load(&g_stats.connections_active)));
	json_object_object_add(h, "total", json_object_new_int64((int64_t)atomic_load(&g_stats.connections_total)));
	json_object_object_add(h, "refused", json_object_new_int64((int64_t)atomic_load(&g_stats.connections_refused)));
	json_object_object_add(o, "connections", h);
	h = json_object_new_object();
	f = json_object_new_object();
	json_object_object_add(h, "ok", json_object_new_int64((int64_t)atomic_load(&g_stats.handshakes_ok)));
	for (int i = 1; i < MTLS_ERR__COUNT; i++) {
		unsigned long v = atomic_load(&g_stats.handshakes_failed[i]);

		if (v > 0)
			json_object_object_add(f, mtls_err_name((mtls_err_t)i),
					       json_object_new_int64((int64_t)v));
	}
	json_object_object_add(h, "failed", f);
	json_object_object_add(o, "handshakes", h);
	{
		char *buf = malloc(64 * 1024);

		/* Cached OCSP answers and CRLs, one line each. */
		a = json_object_new_array();
		if (buf != NULL) {
			char *line = buf, *nl;

			rev_cache_describe(buf, 64 * 1024, now);
			for (; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
				*nl = '\0';
				json_object_array_add(a, json_object_new_string(line));
			}
			free(buf);
		}
		json_object_object_add(o, "revocation", a);
	}
	return o;
}

static int token_index(struct runtime *rt, const char *name)
{
	for (unsigned i = 0; name && i < rt->cfg->n_tokens; i++)
		if (strcmp(rt->cfg->tokens[i].name, name) == 0)
			return (int)i;
	return -1;
}

static void ask_reload(void)
{
	uint64_t one = 1;

	if (write(C.reload_fd, &one, sizeof(one)) != sizeof(one))
		log_err("event=control_reload_failed");
}

void control_ask_reload(void)
{
	ask_reload();
}

static json_object *dispatch(const struct control_request *r,
			     const struct caller *who)
{
	struct runtime *rt = current_get();
	const char *cmd = r->cmd, *arg = r->arg[0] ? r->arg : NULL;
	json_object *reply;

	if (rt == NULL)
		return error_reply(MTLS_ERR_IO, "agent starting");
	if (strcmp(cmd, CONTROL_CMD_STATUS) == 0) {
		reply = status(rt);
	} else if (strcmp(cmd, CONTROL_CMD_RELOAD) == 0) {
		ask_reload();
		reply = ok_reply();
	} else if (strcmp(cmd, CONTROL_CMD_RENEW) == 0) {
		reply = arg && scheduler_renew_now(arg) == 0 ?
				ok_reply() :
				error_reply(MTLS_ERR_ARG, "no such identity with enroll=");
	} else if (strcmp(cmd, CONTROL_CMD_UNLOCK) == 0) {
		int i = token_index(rt, arg);
		struct mtls_secret *pin = mtls_secret_new();
		struct mtls_error err = { 0 };
		char msg[512];

		if (i >= 0 && r->pinentry) {
			const char *why_not = NULL;

			/* The dialogue runs in a thread of its own; the
			 * answer says only that it was started. */
			if (pinentry_job_ask(rt, (unsigned)i,
					     "asked by mtlsctl unlock", r->tty,
					     r->term, (uid_t)who->uid,
					     &why_not) == 0)
				reply = ok_reply();
			else
				reply = error_reply(MTLS_ERR_ARG, why_not);
		} else if (i < 0 || pin == NULL || r->pin_len == 0 ||
		    mtls_secret_set(pin, r->pin, r->pin_len) != 0) {
			reply = error_reply(MTLS_ERR_ARG, "unlock needs a token name and a PIN");
		} else if (p11_token_unlock(rt->tokens[i], pin, &err) != MTLS_OK) {
			reply = error_reply(err.code, mtls_error_str(&err, msg, sizeof(msg)));
		} else {
			pins_set(rt->cfg->tokens[i].name, pin);
			if (rt->locked[i])
				ask_reload(); /* its identities can load now */
			reply = ok_reply();
			log_notice("event=token_unlocked token=%s by_uid=%lld",
				   rt->cfg->tokens[i].name, (long long)who->uid);
		}
		mtls_secret_free(pin);
	} else if (strcmp(cmd, CONTROL_CMD_LOCK) == 0) {
		int i = token_index(rt, arg);

		if (i < 0) {
			reply = error_reply(MTLS_ERR_ARG, "no such token");
		} else {
			const char *why_not = NULL;

			pins_forget(rt->cfg->tokens[i].name);
			p11_token_lock(rt->tokens[i]);
			reply = ok_reply();
			log_notice("event=token_locked token=%s by_uid=%lld",
				   rt->cfg->tokens[i].name, (long long)who->uid);
			/* On the agent's own terminal: a lock's caller named
			 * none (mtlsctl unlock --pinentry names its own). */
			if (pinentry_job_token(rt, (unsigned)i) &&
			    pinentry_job_ask(rt, (unsigned)i,
					     "the token was locked with mtlsctl "
					     "lock", NULL, NULL, (uid_t)who->uid,
					     &why_not) != 0)
				log_warn("event=pinentry_not_asked token=%s "
					 "reason=\"%s\"",
					 rt->cfg->tokens[i].name, why_not);
		}
	} else {
		reply = error_reply(MTLS_ERR_BAD_REQUEST, "unknown command");
	}
	runtime_put(rt);
	return reply;
}

static void serve_one(struct local_client *c)
{
	static pthread_mutex_t one_at_a_time = PTHREAD_MUTEX_INITIALIZER;
	char buf[CONTROL_REQUEST_MAX + 1], *nl;
	const struct caller *who = &c->who;
	struct control_request req;
	json_object *reply;
	const char *why;
	size_t got = 0;
	const char *out;

	if (!allowed(who)) {
		log_warn("event=control_refused uid=%lld pid=%lld exe=\"%s\"",
			 (long long)who->uid, (long long)who->pid, who->exe);
		return;
	}
	/* The request line, and for unlock the PIN line after it, within
	 * the deadline the server set for the whole request. */
	while (got < CONTROL_REQUEST_MAX) {
		ssize_t r = local_client_recv(c, buf + got,
					      CONTROL_REQUEST_MAX - got);

		if (r <= 0)
			break;
		got += (size_t)r;
		buf[got] = '\0';
		nl = strchr(buf, '\n');
		if (nl != NULL && (strncmp(buf, "{\"cmd\":\"unlock\"", 15) != 0 ||
				   strchr(nl + 1, '\n') != NULL))
			break;
	}
	buf[got] = '\0';
	if (control_request_parse(buf, got, &req, &why) != 0)
		reply = error_reply(MTLS_ERR_BAD_REQUEST, why);
	else {
		/* Clients are read and answered side by side; the commands
		 * themselves still run one at a time. */
		pthread_mutex_lock(&one_at_a_time);
		reply = dispatch(&req, who);
		pthread_mutex_unlock(&one_at_a_time);
	}
	explicit_bzero(buf, sizeof(buf)); /* may have held a PIN */
	explicit_bzero(&req, sizeof(req));
	out = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN);
	/* A command (unlock: a login on the token) may take a while: the
	 * answer has a deadline of its own. */
	c->deadline = mtls_now_ms() + CONTROL_TIMEOUT_MS;
	if (local_client_send(c, out, strlen(out)) == 0)
		(void)local_client_send(c, "\n", 1);
	json_object_put(reply);
}

int control_start(const struct cfg_agent *a, int reload_fd)
{
	struct cfg_tunnel t = { .listen_path = a->control,
				/* others reach it only through the group */
				.mode = a->has_control_group ? 0660 : 0600,
				.owner = (uid_t)-1,
				.group = a->has_control_group ? a->control_group : (gid_t)-1 };
	struct mtls_error err = { 0 };
	char msg[512];

	if (a->control == NULL)
		return 0;
	snprintf(t.name, sizeof(t.name), "control");
	C.uid = geteuid();
	C.group = a->control_group;
	C.has_group = a->has_control_group;
	C.reload_fd = reload_fd;
	snprintf(C.path, sizeof(C.path), "%s", a->control);
	if (local_server_start(&server, &t, CONTROL_TIMEOUT_MS, serve_one,
			       &err) != MTLS_OK) {
		log_err("event=control_failed detail=\"%s\"",
			mtls_error_str(&err, msg, sizeof(msg)));
		return -1;
	}
	log_info("event=control_listen listen=%s", a->control);
	return 0;
}

void control_stop(void)
{
	if (!server.running)
		return;
	local_server_stop(&server);
	unlink(C.path);
}
