/* mtls-agent: the daemon. Loads the configuration, opens tokens and
 * identities, listens on every tunnel and hands each accepted connection
 * to its own thread. SIGHUP reloads; SIGTERM stops accepting and ends
 * in-flight connections within shutdown_grace. */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "caller.h"
#include "conn.h"
#include "refuser.h"
#include "control.h"
#include "pinentry_job.h"
#include "token_watch.h"
#include "current.h"
#include "revocation.h"
#include "listener.h"
#include "metrics.h"
#include "mtls_clock.h"
#include "mtls_log.h"
#include "renew.h"
#include "runtime.h"
#include "scheduler.h"
#include "session_cache.h"
#include "stats.h"

#define DEFAULT_CONFIG "/etc/mtls-agent/mtls-agent.conf"

static void usage(FILE *f)
{
	fprintf(f, "usage: mtls-agent [-c CONFIG] [--check]\n"
		   "  -c, --config FILE  configuration (default %s)\n"
		   "  -t, --check        load config, tokens and identities, "
		   "then exit\n"
		   "  -V, --version      print the version\n"
		   "  -h, --help         this help\n"
		   "See mtls-agent(8); mtlsctl help for the control tool.\n",
		DEFAULT_CONFIG);
}

/* Like ssh-agent: PINs and session keys are in this memory. Not dumpable:
 * no core file, and no ptrace or /proc/PID/mem, environ or fd of ours
 * for another process of the same uid. RLIMIT_CORE 0 as well, should the
 * flag come back (a change of uid resets it to fs.suid_dumpable). Under
 * systemd's SystemCallFilter=~@resources setrlimit is refused; the
 * unit's LimitCORE=0 has set the limit already. */
static int no_core_no_trace(void)
{
	struct rlimit rl = { 0, 0 };

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		log_err("event=start_failed error=\"PR_SET_DUMPABLE: %s\"",
			strerror(errno));
		return -1;
	}
	if (setrlimit(RLIMIT_CORE, &rl) != 0 &&
	    (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != 0))
		log_warn("event=core_limit error=\"%s\"", strerror(errno));
	return 0;
}

static void log_error(const char *event, const struct mtls_error *err)
{
	char msg[512];

	log_err("event=%s reason=%s detail=\"%s\"", event,
		mtls_err_name(err->code), mtls_error_str(err, msg, sizeof(msg)));
}

/* Opens every listener of rt, reusing the matching sockets of old. */
static mtls_err_t open_listeners(struct runtime *rt, struct runtime *old,
				 struct mtls_error *err)
{
	for (unsigned i = 0; i < rt->n_tunnels; i++) {
		struct tunnel *t = &rt->tunnels[i];
		char where[300];
		mtls_err_t r;

		for (unsigned j = 0; old != NULL && j < old->n_tunnels; j++) {
			if (old->tunnels[j].listen_fd >= 0 &&
			    listener_same(t->cfg, old->tunnels[j].cfg)) {
				t->listen_fd = old->tunnels[j].listen_fd;
				t->activated = old->tunnels[j].activated;
				old->tunnels[j].listen_fd = -1;
				break;
			}
		}
		if (t->listen_fd >= 0)
			continue;
		r = listener_open(t->cfg, &t->listen_fd, &t->activated, err);
		if (r != MTLS_OK)
			return r;
		if (t->cfg->listen_path != NULL)
			snprintf(where, sizeof(where), "%s", t->cfg->listen_path);
		else
			snprintf(where, sizeof(where), "%s:%u",
				 t->cfg->listen_host, t->cfg->listen_port);
		if (t->cfg->is_proxy)
			log_info("event=listen proxy=%s listen=%s%s", t->cfg->name,
				 where, t->activated ? " socket_activated=1" : "");
		else
				log_info("event=listen tunnel=%s listen=%s connect=%s:%u%s",
				 t->cfg->name, where, t->cfg->connect_host,
				 t->cfg->connect_port,
				 t->activated ? " socket_activated=1" : "");
	}
	return MTLS_OK;
}

static void close_listeners(struct runtime *rt)
{
	for (unsigned i = 0; i < rt->n_tunnels; i++) {
		if (rt->tunnels[i].activated) {
			/* systemd's socket: it stays open across our restarts */
			rt->tunnels[i].listen_fd = -1;
			continue;
		}
		if (rt->tunnels[i].listen_fd >= 0) {
			close(rt->tunnels[i].listen_fd);
			rt->tunnels[i].listen_fd = -1;
			listener_unlink(rt->tunnels[i].cfg);
		}
	}
}

/* Gives back sockets that rt adopted from old after a failed reload. */
static void return_listeners(struct runtime *rt, struct runtime *old)
{
	for (unsigned i = 0; i < rt->n_tunnels; i++) {
		struct tunnel *t = &rt->tunnels[i];

		for (unsigned j = 0; j < old->n_tunnels && t->listen_fd >= 0; j++) {
			if (old->tunnels[j].listen_fd < 0 &&
			    listener_same(t->cfg, old->tunnels[j].cfg)) {
				old->tunnels[j].listen_fd = t->listen_fd;
				t->listen_fd = -1;
			}
		}
	}
}

/* One line for `systemctl status`. */
static void notify_status(struct runtime *rt, const char *state)
{
	long soonest = 0;
	const char *who = "-";

	for (unsigned i = 0; i < rt->cfg->n_identities; i++)
		if (rt->ids[i] != NULL &&
		    (soonest == 0 || rt->ids[i]->not_after < soonest)) {
			soonest = rt->ids[i]->not_after;
			who = rt->ids[i]->name;
		}
	sd_notifyf(0, "%s\nSTATUS=%u listeners, %u identities (%s expires in "
		      "%ldh), %lu connections active",
		   state, rt->n_tunnels, rt->cfg->n_identities, who,
		   soonest ? (soonest - (long)time(NULL)) / 3600 : 0L,
		   atomic_load(&g_stats.connections_active));
}

/* Rules on the caller's executable need /proc/PID/exe of the callers,
 * which this process may be unable to read (the system unit runs as
 * mtls-agent without CAP_SYS_PTRACE): such a rule could never allow, and
 * a deny on it would deny everyone it names. Refused at load, with the
 * rule's line, rather than silently never matching. */
static mtls_err_t check_exe_rules(const char *path, const struct config *cfg,
				  struct mtls_error *err)
{
	const struct policy *p = cfg->policy;

	for (unsigned i = 0; p != NULL && i < p->n_rules + cfg->n_tunnels; i++) {
		const struct policy_rule *r = i < p->n_rules ? &p->rules[i] :
				cfg->tunnels[i - p->n_rules].callers;
		int ok;

		if (r == NULL || r->exes.n == 0)
			continue;
		ok = r->n_uids > 0;
		for (unsigned j = 0; j < r->n_uids; j++)
			ok = ok && caller_exe_readable(r->uids[j]);
		if (!ok && !caller_exe_readable(-1))
			return mtls_error_set(err, MTLS_ERR_CONFIG,
					      "%s:%d: [%s %s]: exe = cannot be "
					      "read for other users' processes "
					      "by this agent (uid %u, without "
					      "CAP_SYS_PTRACE): add uid = %u, or "
					      "match on uid, gid or unit",
					      path, i < p->n_rules ? r->line :
					      cfg->tunnels[i - p->n_rules].line,
					      i < p->n_rules ? "rule" : "tunnel",
					      i < p->n_rules ? r->name :
					      cfg->tunnels[i - p->n_rules].name,
					      (unsigned)geteuid(),
					      (unsigned)geteuid());
	}
	return MTLS_OK;
}

static mtls_err_t load(const char *path, struct runtime *old,
		       struct runtime **out, struct mtls_error *err)
{
	struct config *cfg;
	struct runtime *rt;
	mtls_err_t r;

	r = config_load(path, &cfg, err);
	if (r != MTLS_OK)
		return r;
	r = check_exe_rules(path, cfg, err);
	if (r != MTLS_OK) {
		config_free(cfg);
		return r;
	}
	mtls_log_set_level((enum mtls_log_level)cfg->agent.log_level);
	r = runtime_new_recover(cfg, renew_recover_at_load, &rt, err);
	if (r != MTLS_OK)
		return r;
	r = open_listeners(rt, old, err);
	if (r != MTLS_OK) {
		if (old != NULL)
			return_listeners(rt, old);
		runtime_put(rt);
		return r;
	}
	*out = rt;
	return MTLS_OK;
}

static void reload(const char *path, struct runtime **rt)
{
	struct runtime *next = NULL;
	struct mtls_error err = { 0 };

	log_notice("event=reload config=%s", path);
	sd_notify(0, "RELOADING=1");
	if (load(path, *rt, &next, &err) != MTLS_OK) {
		log_error("reload_failed", &err);
		log_notice("event=reload result=kept_previous");
		notify_status(*rt, "READY=1");
		return;
	}
	/* Tunnels that are gone lose their socket; connections in flight
	 * keep the old runtime alive until they end. */
	close_listeners(*rt);
	runtime_put(*rt);
	*rt = next;
	current_set(next);
	scheduler_set_runtime(next);
	log_notice("event=reload result=ok tunnels=%u", next->n_tunnels);
	notify_status(next, "READY=1");
}

static void accept_on(struct runtime *rt, struct tunnel *t, int stop_fd)
{
	struct mtls_error err = { 0 };

	for (int i = 0; i < 64; i++) {
		int fd = accept4(t->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("event=accept_error tunnel=%s error=\"%s\"",
					 t->cfg->name, strerror(errno));
			return;
		}
		if (atomic_load(&g_stats.connections_active) >=
		    rt->cfg->agent.max_connections) {
			atomic_fetch_add(&g_stats.connections_refused, 1);
			char why[128];

			log_warn("event=refused tunnel=%s reason=limit "
				 "max_connections=%u", t->cfg->name,
				 rt->cfg->agent.max_connections);
			snprintf(why, sizeof(why), "the agent has %u connections "
				 "open, max_connections = %u",
				 rt->cfg->agent.max_connections,
				 rt->cfg->agent.max_connections);
			refuser_take(fd, t->cfg->is_proxy, why);
			continue;
		}
		runtime_get(rt);
		if (conn_start(rt, t, fd, stop_fd, &err) != MTLS_OK)
			log_error("conn_start_failed", &err);
	}
}

/* Waits for the connections to end: shutdown_grace, then the stop signal
 * and a bounded wait more. 0 when none is left. */
static int drain(struct runtime *rt, int stop_fd)
{
	uint64_t deadline = mtls_now_ms() + rt->cfg->agent.shutdown_grace_ms;
	uint64_t one = 1;

	while (atomic_load(&g_stats.connections_active) > 0 &&
	       mtls_now_ms() < deadline)
		usleep(20000);
	if (atomic_load(&g_stats.connections_active) > 0) {
		log_notice("event=shutdown ending=%lu",
			   atomic_load(&g_stats.connections_active));
		if (write(stop_fd, &one, sizeof(one)) != sizeof(one))
			log_warn("event=shutdown error=\"stop signal\"");
		deadline = mtls_now_ms() + 5000;
		while (atomic_load(&g_stats.connections_active) > 0 &&
		       mtls_now_ms() < deadline)
			usleep(10000);
	}
	return atomic_load(&g_stats.connections_active) > 0 ? -1 : 0;
}

/* The token's PIN counter, in the log, with what to do (the token's URI:
 * the observer runs inside pkcs11/, which knows no configuration names). */
static void log_pin_event(const char *uri, enum p11_pin_event ev)
{
	switch (ev) {
	case P11_PIN_EVENT_OK:
		log_info("event=token_pin_ok token_uri=\"%s\"", uri);
		break;
	case P11_PIN_EVENT_REFUSED:
		log_err("event=token_pin_refused token_uri=\"%s\" hint=\"the "
			"token refused the PIN and counted a try; it is not tried "
			"again: fix the PIN source and reload, or mtlsctl unlock\"",
			uri);
		break;
	case P11_PIN_EVENT_COUNT_LOW:
		log_notice("event=token_pin_count_low token_uri=\"%s\" hint=\"few "
			   "PIN tries left; check the PIN source before the next "
			   "reload\"", uri);
		break;
	case P11_PIN_EVENT_FINAL_TRY:
		log_err("event=token_pin_final_try token_uri=\"%s\" hint=\"one "
			"PIN try left; the agent will not spend it: give the PIN "
			"with mtlsctl unlock\"", uri);
		break;
	case P11_PIN_EVENT_LOCKED:
		log_err("event=token_pin_locked token_uri=\"%s\" hint=\"the PIN "
			"is locked: unblock it with the PUK (PIV: yubico-piv-tool "
			"-a unblock-pin) or the SO PIN, then mtlsctl unlock\"",
			uri);
		break;
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = DEFAULT_CONFIG;
	struct mtls_error err = { 0 };
	struct runtime *rt = NULL;
	int check = 0, opt, sig_fd, stop_fd, reload_fd, status = 1;
	uint64_t watchdog_usec = 0, last_ping = 0;
	sigset_t mask;

	while ((opt = getopt_long(argc, argv, "c:tVh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'V':
			printf("mtls-agent %s\n", MTLS_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	mtls_log_init("mtls-agent");
	if (no_core_no_trace() != 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	{
		/* Two descriptors per connection: allow what the hard limit
		 * allows, max_connections bounds the rest. */
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	/* Blocked before any thread starts, so every thread inherits it and
	 * the signals reach only the signalfd. */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	stop_fd = eventfd(0, EFD_CLOEXEC);
	reload_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sig_fd < 0 || stop_fd < 0 || reload_fd < 0) {
		log_err("event=start_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	if (tls_global_init(&err) != MTLS_OK) {
		log_error("start_failed", &err);
		return 1;
	}
	tls_set_sign_observer(stats_observe_sign);
	p11_set_pin_observer(log_pin_event);
	if (check) {
		struct config *cfg;

		if (config_load(path, &cfg, &err) != MTLS_OK) {
			log_error("check_failed", &err);
			goto out;
		}
		if (check_exe_rules(path, cfg, &err) != MTLS_OK) {
			config_free(cfg);
			log_error("check_failed", &err);
			goto out;
		}
		if (runtime_new(cfg, &rt, &err) != MTLS_OK) {
			log_error("check_failed", &err);
			goto out;
		}
		/* A token that waits for a PIN because it refused one (or has
		 * one try left, or is locked) fails the check; one configured
		 * to wait for mtlsctl unlock does not. */
		for (unsigned i = 0; i < rt->cfg->n_tokens; i++) {
			if (rt->locked[i] &&
			    !cfg_token_person_pin(&rt->cfg->tokens[i])) {
				log_err("event=check_failed token=%s reason=%s",
					rt->cfg->tokens[i].name,
					mtls_err_name(rt->lock_reason[i]));
				runtime_put(rt);
				rt = NULL;
				goto out;
			}
		}
		printf("%s: ok (%u tokens, %u identities, %u tunnels)\n", path,
		       rt->cfg->n_tokens, rt->cfg->n_identities,
		       rt->n_tunnels);
		runtime_put(rt);
		rt = NULL;
		status = 0;
		goto out;
	}
	listener_inherit();
	if (load(path, NULL, &rt, &err) != MTLS_OK) {
		log_error("start_failed", &err);
		goto out;
	}
	current_set(rt);
	pinentry_job_init();
	for (unsigned i = 0; i < rt->cfg->n_tokens; i++) {
		const char *why_not = NULL;

		if (rt->locked[i] && rt->lock_reason[i] == MTLS_ERR_PIN_MISSING &&
		    pinentry_job_token(rt, i) &&
		    pinentry_job_ask(rt, i, "the agent started", NULL, NULL, 0,
				     &why_not) != 0)
			log_warn("event=pinentry_not_asked token=%s reason=\"%s\"",
				 rt->cfg->tokens[i].name, why_not);
	}
	{
		/* Revocation answers outlive reloads and restarts. */
		char dir[1100];

		snprintf(dir, sizeof(dir), "%s/revocation", rt->cfg->agent.state_dir);
		if (rev_cache_open(dir, &err) != MTLS_OK) {
			log_error("start_failed", &err);
			goto out;
		}
	}
	/* Control and metrics sockets are opened once, at start; a reload
	 * does not move them. */
	if (scheduler_start(rt, reload_fd) != 0 ||
	    control_start(&rt->cfg->agent, reload_fd) != 0 ||
	    metrics_start(&rt->cfg->agent) != 0 || token_watch_start() != 0) {
		log_err("event=start_failed error=\"scheduler, control, metrics "
			"or token watch\"");
		goto out;
	}
	log_notice("event=ready version=%s tunnels=%u", MTLS_VERSION,
		   rt->n_tunnels);
	notify_status(rt, "READY=1");
	/* With WatchdogSec=, systemd restarts us unless pinged in time. */
	if (sd_watchdog_enabled(0, &watchdog_usec) <= 0)
		watchdog_usec = 0;

	for (;;) {
		struct pollfd p[CFG_MAX_TUNNELS + 2];
		unsigned n = 0;

		p[n++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = reload_fd, .events = POLLIN };
		for (unsigned i = 0; i < rt->n_tunnels; i++)
			p[n++] = (struct pollfd){ .fd = rt->tunnels[i].listen_fd,
						  .events = POLLIN };
		if (watchdog_usec > 0 && mtls_now_ms() - last_ping >= watchdog_usec / 2000) {
			sd_notify(0, "WATCHDOG=1");
			last_ping = mtls_now_ms();
		}
		if (poll(p, n, watchdog_usec ? (int)(watchdog_usec / 2000) : -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err("event=poll_failed error=\"%s\"", strerror(errno));
			break;
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sig_fd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGHUP) {
				reload(path, &rt);
				continue;
			}
			log_notice("event=shutdown signal=%s active=%lu",
				   si.ssi_signo == SIGTERM ? "TERM" : "INT",
				   atomic_load(&g_stats.connections_active));
			break;
		}
		if (p[1].revents & POLLIN) {
			uint64_t v;

			/* A renewal switched generations: new handshakes use
			 * the new key, in-flight ones finish on the old. */
			if (read(reload_fd, &v, sizeof(v)) == sizeof(v))
				reload(path, &rt);
			continue;
		}
		for (unsigned i = 2; i < n; i++)
			if (p[i].revents & POLLIN)
				accept_on(rt, &rt->tunnels[i - 2], stop_fd);
	}
	sd_notify(0, "STOPPING=1");
	close_listeners(rt);
	control_stop();
	metrics_stop();
	scheduler_stop();
	token_watch_stop();
	current_set(NULL);
	if (drain(rt, stop_fd) != 0) {
		/* A connection thread still runs (it would be a bug: every
		 * wait watches the stop signal). Freeing what it uses (the
		 * runtime, wolfSSL's globals) under it is how a double free
		 * happens: leave everything to the process exit instead. */
		log_err("event=shutdown result=forced connections_active=%lu",
			atomic_load(&g_stats.connections_active));
		stats_log();
		_exit(1);
	}
	conn_pool_stop();
	rev_cache_close();
	session_cache_clear();
	stats_log();
	status = 0;
out:
	if (rt != NULL && atomic_load(&g_stats.connections_active) == 0)
		runtime_put(rt);
	wc_ecc_fp_free(); /* loading CAs verified signatures on this thread */
	tls_global_cleanup();
	return status;
}
