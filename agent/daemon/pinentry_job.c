#include "pinentry_job.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "current.h"
#include "mtls_log.h"
#include "p11.h"
#include "pinentry.h"
#include "pins.h"

#define DEFAULT_PROGRAM "/usr/bin/pinentry"
/* A person reads the text and types: generous, and bounded. */
#define DIALOGUE_TIMEOUT_S 300

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char running[CFG_MAX_TOKENS][CFG_NAME_MAX]; /* "" when none */
/* The last PIN a token refused through pinentry: said in the next dialogue. */
static int refused[CFG_MAX_TOKENS];
static char def_tty[64], def_term[32], def_display[128];

struct job {
	char token[CFG_NAME_MAX];
	unsigned slot;
	char program[512];
	char tty[64], term[32], display[128];
	char title[96], desc[700], error[160];
};

static void copy_env(char *dst, size_t len, const char *name)
{
	const char *v = getenv(name);

	if (v != NULL && strlen(v) < len)
		snprintf(dst, len, "%s", v);
}

void pinentry_job_init(void)
{
	copy_env(def_tty, sizeof(def_tty), "MTLS_TTY");
	copy_env(def_term, sizeof(def_term), "TERM");
	copy_env(def_display, sizeof(def_display), "DISPLAY");
}

int pinentry_job_token(const struct runtime *rt, unsigned i)
{
	return cfg_token_pinentry(&rt->cfg->tokens[i]);
}

/* A tty named by a caller: a character device that is a terminal and
 * belongs to that caller, so nobody can have the agent ask for a PIN on
 * someone else's terminal or write its prompt into a file. */
static int tty_ok(const char *path, uid_t caller)
{
	struct stat st;
	int fd, ok;

	if (strncmp(path, "/dev/", 5) != 0 || strstr(path, "/..") != NULL)
		return 0;
	fd = open(path, O_RDWR | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return 0;
	ok = fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && isatty(fd) &&
	     (caller == 0 || st.st_uid == caller);
	close(fd);
	return ok;
}

static void *run(void *arg)
{
	struct job *j = arg;
	struct mtls_secret *pin = mtls_secret_new();
	struct mtls_error err = {0};
	struct pinentry_req req = {
		.program = j->program,
		.ttyname = j->tty[0] ? j->tty : NULL,
		.ttytype = j->term[0] ? j->term : NULL,
		.display = j->display[0] ? j->display : NULL,
		.title = j->title, .desc = j->desc, .prompt = "PIN:",
		.error = j->error[0] ? j->error : NULL,
		.timeout_s = DIALOGUE_TIMEOUT_S,
	};
	struct runtime *rt;
	mtls_err_t r;
	char msg[512];

	r = pin == NULL ? MTLS_ERR_NOMEM : pinentry_ask(&req, pin, &err);
	if (r != MTLS_OK) {
		/* Cancel, timeout, no pinentry: the token stays locked
		 * (pin_missing) until a person acts. */
		log_notice("event=pinentry_ended token=%s reason=%s detail=\"%s\"",
			   j->token, mtls_err_name(r),
			   mtls_error_str(&err, msg, sizeof(msg)));
		goto out;
	}
	rt = current_get();
	for (unsigned i = 0; rt != NULL && i < rt->cfg->n_tokens; i++) {
		if (strcmp(rt->cfg->tokens[i].name, j->token) != 0)
			continue;
		r = p11_token_unlock(rt->tokens[i], pin, &err);
		pthread_mutex_lock(&lock);
		refused[j->slot] = r == MTLS_ERR_PIN_INCORRECT;
		pthread_mutex_unlock(&lock);
		if (r != MTLS_OK) {
			/* Not asked again by itself: mtlsctl unlock
			 * --pinentry does, so no loop spends the counter. */
			log_warn("event=pinentry_pin_refused token=%s reason=%s "
				 "hint=\"mtlsctl unlock --pinentry %s\"",
				 j->token, mtls_err_name(r), j->token);
		} else if (pins_set(j->token, pin) != 0) {
			log_err("event=pinentry_keep_failed token=%s", j->token);
		} else {
			log_notice("event=token_unlocked token=%s by=pinentry",
				   j->token);
			if (rt->locked[i])
				control_ask_reload(); /* identities load now */
		}
		break;
	}
	if (rt != NULL)
		runtime_put(rt);
out:
	mtls_secret_free(pin);
	pthread_mutex_lock(&lock);
	running[j->slot][0] = '\0';
	pthread_mutex_unlock(&lock);
	explicit_bzero(j, sizeof(*j));
	free(j);
	return NULL;
}

int pinentry_job_ask(struct runtime *rt, unsigned i, const char *why,
		     const char *tty, const char *term, uid_t caller,
		     const char **why_not)
{
	const struct cfg_token *ct = &rt->cfg->tokens[i];
	struct p11_token_status st;
	struct job *j;
	pthread_attr_t attr;
	pthread_t th;
	char ids[256] = "";
	size_t o = 0;
	int busy, given;

	if (!pinentry_job_token(rt, i)) {
		*why_not = "token's pin_source is not pinentry";
		return -1;
	}
	if (tty != NULL && tty[0] != '\0' && !tty_ok(tty, caller)) {
		*why_not = "tty is not a terminal of the caller";
		return -1;
	}
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		*why_not = "out of memory";
		return -1;
	}
	snprintf(j->token, sizeof(j->token), "%s", ct->name);
	j->slot = i;
	snprintf(j->program, sizeof(j->program), "%s",
		 ct->pinentry_program ? ct->pinentry_program : DEFAULT_PROGRAM);
	snprintf(j->tty, sizeof(j->tty), "%s", tty && tty[0] ? tty : def_tty);
	snprintf(j->term, sizeof(j->term), "%s", term && term[0] ? term : def_term);
	snprintf(j->display, sizeof(j->display), "%s", def_display);
	given = j->tty[0] != '\0';
	p11_token_status(rt->tokens[i], &st);
	for (unsigned k = 0; k < rt->cfg->n_identities; k++)
		if (rt->cfg->identities[k].token == (int)i && o < sizeof(ids)) {
			int n = snprintf(ids + o, sizeof(ids) - o, "%s%s",
					 o ? ", " : "",
					 rt->cfg->identities[k].name);
			o += n > 0 ? (size_t)n : 0;
		}
	snprintf(j->title, sizeof(j->title), "mtls-agent: PIN of token %s",
		 ct->name);
	snprintf(j->desc, sizeof(j->desc),
		 "mtls-agent needs the PIN of token \"%s\" (label \"%s\") to "
		 "sign TLS handshakes for identity %s.\n(%s)",
		 ct->name, st.label, ids[0] ? ids : "(none)", why);
	pthread_mutex_lock(&lock);
	busy = running[i][0] != '\0';
	if (!busy)
		snprintf(running[i], sizeof(running[i]), "%s", ct->name);
	if (!busy && refused[i])
		snprintf(j->error, sizeof(j->error), "The PIN was refused%s",
			 st.pin_final_try ? " - one try left" :
			 st.pin_count_low ? " - few tries left" : "");
	pthread_mutex_unlock(&lock);
	if (busy) {
		free(j);
		return 0; /* one dialogue at a time; that one stands */
	}
	if (pthread_attr_init(&attr) != 0 ||
	    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0 ||
	    pthread_create(&th, &attr, run, j) != 0) {
		pthread_mutex_lock(&lock);
		running[i][0] = '\0';
		pthread_mutex_unlock(&lock);
		free(j);
		*why_not = "cannot start a thread";
		return -1;
	}
	pthread_attr_destroy(&attr);
	log_notice("event=pinentry_asked token=%s why=\"%s\" tty=%s", ct->name,
		   why, given ? "given" : "none");
	return 0;
}
