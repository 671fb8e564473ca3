/* PIN sources: a file with strict permissions, a systemd credential, an
 * environment variable (tests), or the URI's pin-value / pin-source. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "p11_internal.h"

static mtls_err_t pin_from_file(const char *path, int check_mode,
				struct mtls_secret *pin,
				struct p11_pin_origin *origin,
				struct mtls_error *err)
{
	char buf[MTLS_SECRET_MAX + 2];
	struct stat st;
	ssize_t n;
	size_t len = 0;
	mtls_err_t r = MTLS_OK;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return mtls_error_set(err, MTLS_ERR_PIN_MISSING, "%s: %s",
				      path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		r = mtls_error_set(err, MTLS_ERR_PIN_MISSING,
				   "%s: not a regular file", path);
		goto out;
	}
	if (origin != NULL) {
		/* Which file, in which version: a refused PIN is known again
		 * by these after a restart, without keeping the PIN. */
		snprintf(origin->file, sizeof(origin->file), "%s", path);
		origin->dev = (unsigned long long)st.st_dev;
		origin->ino = (unsigned long long)st.st_ino;
		origin->size = (long long)st.st_size;
		origin->mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL +
				   st.st_mtim.tv_nsec;
		origin->ctime_ns = (long long)st.st_ctim.tv_sec * 1000000000LL +
				   st.st_ctim.tv_nsec;
	}
	/* Like ssh with private keys: a PIN others can read is no secret. */
	if (check_mode && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		r = mtls_error_set(err, MTLS_ERR_PERMISSION,
				   "%s: PIN file mode %04o is group or world "
				   "accessible; chmod 600 it",
				   path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (check_mode && st.st_uid != geteuid() && st.st_uid != 0) {
		r = mtls_error_set(err, MTLS_ERR_PERMISSION,
				   "%s: PIN file owned by uid %u", path,
				   (unsigned)st.st_uid);
		goto out;
	}
	while (len < sizeof(buf)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = mtls_error_set(err, MTLS_ERR_IO, "%s: %s", path,
					   strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len == 0 || mtls_secret_set(pin, buf, len) != 0)
		r = mtls_error_set(err, MTLS_ERR_PIN_MISSING,
				   "%s: PIN empty or longer than %d bytes",
				   path, MTLS_SECRET_MAX);
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return r;
}

/* env:VAR, taken out of the environment at its first read and kept in
 * locked memory from then on: a program the agent starts (the exec
 * enroller's helper) would inherit it, and /proc/PID/environ would show
 * it. The variable's bytes are wiped too: unsetenv only drops the pointer,
 * and environ shows the original bytes. unsetenv is not safe against a
 * getenv running on another thread at the same time; glibc frees nothing
 * there, so such a getenv sees the variable or not, and the first read is
 * at start-up, before other threads, unless a reload adds a new env:. */
#define ENV_VAULT_MAX 16

static pthread_mutex_t env_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char name[64];
	struct mtls_secret *value;
} env_vault[ENV_VAULT_MAX];

static mtls_err_t pin_from_env(const char *source, struct mtls_secret *pin,
			       struct mtls_error *err)
{
	const char *name = source + 4;
	char *v;
	int slot = -1;
	mtls_err_t r = MTLS_OK;

	pthread_mutex_lock(&env_lock);
	for (int i = 0; i < ENV_VAULT_MAX; i++) {
		if (env_vault[i].value == NULL) {
			if (slot < 0)
				slot = i;
		} else if (strcmp(env_vault[i].name, name) == 0) {
			if (mtls_secret_set(pin, env_vault[i].value->buf,
					    env_vault[i].value->len) != 0)
				r = mtls_error_set(err, MTLS_ERR_PIN_MISSING,
						   "%s: PIN too long", source);
			goto out;
		}
	}
	v = getenv(name);
	if (v == NULL || *v == '\0') {
		r = mtls_error_set(err, MTLS_ERR_PIN_MISSING,
				   "%s: variable not set", source);
		goto out;
	}
	if (slot < 0 || strlen(name) >= sizeof(env_vault[0].name) ||
	    (env_vault[slot].value = mtls_secret_new()) == NULL) {
		r = mtls_error_set(err, MTLS_ERR_LIMIT, "%s: no room to keep it",
				   source);
	} else if (mtls_secret_set(env_vault[slot].value, v, strlen(v)) != 0 ||
		   mtls_secret_set(pin, v, strlen(v)) != 0) {
		mtls_secret_free(env_vault[slot].value);
		env_vault[slot].value = NULL;
		r = mtls_error_set(err, MTLS_ERR_PIN_MISSING, "%s: PIN too long",
				   source);
	} else {
		snprintf(env_vault[slot].name, sizeof(env_vault[0].name), "%s",
			 name);
	}
	/* Out of the environment in every case: a PIN too long is a PIN. */
	explicit_bzero(v, strlen(v));
	if (unsetenv(name) != 0 && r == MTLS_OK)
		r = mtls_error_set(err, MTLS_ERR_IO, "%s: unsetenv", source);
out:
	pthread_mutex_unlock(&env_lock);
	return r;
}

static mtls_err_t pin_from_source(const char *source, struct mtls_secret *pin,
				  struct p11_pin_origin *origin,
				  struct mtls_error *err)
{
	if (strncmp(source, "file:", 5) == 0)
		return pin_from_file(source + 5, 1, pin, origin, err);
	if (source[0] == '/')
		return pin_from_file(source, 1, pin, origin, err);
	if (strncmp(source, "credential:", 11) == 0) {
		const char *dir = getenv("CREDENTIALS_DIRECTORY");
		const char *name = source + 11;
		char path[4096];

		if (dir == NULL)
			return mtls_error_set(err, MTLS_ERR_PIN_MISSING,
					      "%s: CREDENTIALS_DIRECTORY is "
					      "not set (LoadCredential=?)",
					      source);
		if (*name == '\0' || strchr(name, '/') != NULL)
			return mtls_error_set(err, MTLS_ERR_CONFIG,
					      "%s: bad credential name", source);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		/* systemd owns the credential's permissions. */
		return pin_from_file(path, 0, pin, origin, err);
	}
	if (strncmp(source, "env:", 4) == 0)
		return pin_from_env(source, pin, err);
	return mtls_error_set(err, MTLS_ERR_CONFIG,
			      "unknown PIN source '%s' (file:, credential:, "
			      "env:)", source);
}

mtls_err_t p11_pin_from_source(const char *source, struct mtls_secret *pin,
			       struct mtls_error *err)
{
	return pin_from_source(source, pin, NULL, err);
}

mtls_err_t p11_pin_read(const struct p11_token *t, struct mtls_secret *pin,
			struct p11_pin_origin *origin, struct mtls_error *err)
{
	const char *v;

	memset(origin, 0, sizeof(*origin));
	if (t->unlocked_pin != NULL) {
		origin->person = 1;
		if (mtls_secret_set(pin, t->unlocked_pin->buf,
				    t->unlocked_pin->len) != 0)
			return mtls_error_set(err, MTLS_ERR_PIN_MISSING, "PIN");
		return MTLS_OK;
	}
	if (strcmp(t->pin_source, "unlock") == 0)
		return mtls_error_set(err, MTLS_ERR_PIN_MISSING,
				      "token locked: give its PIN with "
				      "mtlsctl unlock (%s)", t->uri);
	if (t->pin_source[0] != '\0')
		return pin_from_source(t->pin_source, pin, origin, err);
	v = p11_kit_uri_get_pin_value(t->kuri);
	if (v != NULL) {
		if (mtls_secret_set(pin, v, strlen(v)) != 0)
			return mtls_error_set(err, MTLS_ERR_PIN_MISSING,
					      "pin-value too long");
		return MTLS_OK;
	}
	v = p11_kit_uri_get_pin_source(t->kuri);
	if (v != NULL)
		return pin_from_source(v, pin, origin, err);
	return mtls_error_set(err, MTLS_ERR_PIN_MISSING,
			      "no PIN source for %s", t->uri);
}

mtls_err_t p11_pin_source_read(const char *source, struct mtls_secret *out,
			       struct mtls_error *err)
{
	return p11_pin_from_source(source, out, err);
}

/* The refused PINs: a few tokens per agent, each with at most one PIN (the
 * last refused). Kept in locked memory like every PIN; compared in
 * constant time. */
#define REFUSED_MAX 16

static pthread_mutex_t refused_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char key[160];
	struct mtls_secret *pin;
} refused[REFUSED_MAX];

static int refused_find(const char *key)
{
	for (int i = 0; i < REFUSED_MAX; i++)
		if (refused[i].pin != NULL && strcmp(refused[i].key, key) == 0)
			return i;
	return -1;
}

static int secret_equal(const struct mtls_secret *a,
			const struct mtls_secret *b)
{
	unsigned char d = 0;

	if (a->len != b->len)
		return 0;
	for (size_t i = 0; i < a->len; i++)
		d |= (unsigned char)(a->buf[i] ^ b->buf[i]);
	return d == 0;
}

int p11_pin_was_refused(const char *key, const struct mtls_secret *pin)
{
	int i, same = 0;

	pthread_mutex_lock(&refused_lock);
	i = refused_find(key);
	if (i >= 0)
		same = secret_equal(refused[i].pin, pin);
	pthread_mutex_unlock(&refused_lock);
	return same;
}

void p11_pin_refused(const char *key, const struct mtls_secret *pin)
{
	int i;

	pthread_mutex_lock(&refused_lock);
	i = refused_find(key);
	for (int j = 0; i < 0 && j < REFUSED_MAX; j++)
		if (refused[j].pin == NULL &&
		    (refused[j].pin = mtls_secret_new()) != NULL)
			i = j;
	/* No room: forgetting is the only choice, and then the token's own
	 * counter flags (FINAL_TRY) still stop the last try. */
	if (i >= 0 && mtls_secret_set(refused[i].pin, pin->buf, pin->len) == 0) {
		snprintf(refused[i].key, sizeof(refused[i].key), "%s", key);
	} else if (i >= 0) {
		mtls_secret_free(refused[i].pin);
		refused[i].pin = NULL;
	}
	pthread_mutex_unlock(&refused_lock);
}

void p11_pin_accepted(const char *key)
{
	int i;

	pthread_mutex_lock(&refused_lock);
	i = refused_find(key);
	if (i >= 0) {
		mtls_secret_free(refused[i].pin);
		refused[i].pin = NULL;
	}
	pthread_mutex_unlock(&refused_lock);
}

/* Refusals that outlive the process: for a PIN read from a file, the
 * token and the file's identity (device, inode, size, mtime, ctime) in one
 * line each of a 0600 file in the agent's state folder. No PIN and nothing
 * derived from it is written: the same file, unchanged, is the same PIN;
 * any change to it is a new one. The file is read once, when its path is
 * set, and written from memory when a refusal comes or goes: logins (one
 * per signature for CKA_ALWAYS_AUTHENTICATE keys) do no file I/O. It is
 * the agent's own: nothing else writes it. */
#define REFUSALS_LINE_MAX 1400
#define REFUSALS_MAX 16

static pthread_mutex_t refusals_lock = PTHREAD_MUTEX_INITIALIZER;
static char refusals_path[1024];
static char refusals[REFUSALS_MAX][REFUSALS_LINE_MAX];
static unsigned n_refusals;

void p11_pin_refusals_file(const char *path)
{
	char line[REFUSALS_LINE_MAX];
	FILE *in;

	if (path == NULL)
		path = "";
	pthread_mutex_lock(&refusals_lock);
	if (strcmp(path, refusals_path) == 0) { /* a reload: memory holds */
		pthread_mutex_unlock(&refusals_lock);
		return;
	}
	snprintf(refusals_path, sizeof(refusals_path), "%s", path);
	n_refusals = 0;
	in = path[0] != '\0' ? fopen(path, "re") : NULL;
	while (in != NULL && n_refusals < REFUSALS_MAX &&
	       fgets(line, sizeof(line), in) != NULL)
		if (strchr(line, '\n') != NULL && strchr(line, '\t') != NULL)
			snprintf(refusals[n_refusals++], REFUSALS_LINE_MAX, "%s",
				 line);
	if (in != NULL)
		fclose(in);
	pthread_mutex_unlock(&refusals_lock);
}

static void origin_line(const char *key, const struct p11_pin_origin *o,
			char *out, size_t cap)
{
	/* Tabs and newlines cannot be in either: token fields are printable
	 * and the PIN file path is the configuration's. */
	snprintf(out, cap, "%s\t%s\t%llu:%llu:%lld:%lld:%lld\n", key, o->file,
		 o->dev, o->ino, o->size, o->mtime_ns, o->ctime_ns);
}

/* Drops key's lines from memory; how many; refusals_lock held. */
static unsigned refusals_drop(const char *key)
{
	size_t klen = strlen(key);
	unsigned kept = 0, n = n_refusals;

	for (unsigned i = 0; i < n; i++) {
		if (strncmp(refusals[i], key, klen) == 0 &&
		    refusals[i][klen] == '\t')
			continue;
		if (kept != i)
			memcpy(refusals[kept], refusals[i], REFUSALS_LINE_MAX);
		kept++;
	}
	n_refusals = kept;
	return n - kept;
}

/* Writes the lines in memory to the file, atomically; refusals_lock
 * held. Best effort: the in-process memory still holds. */
static void refusals_save(void)
{
	char tmp[1100];
	FILE *out;
	int fd;

	if (refusals_path[0] == '\0')
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", refusals_path);
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0)
		return;
	out = fdopen(fd, "w");
	if (out == NULL) {
		close(fd);
		(void)unlink(tmp);
		return;
	}
	for (unsigned i = 0; i < n_refusals; i++)
		fputs(refusals[i], out);
	if (fflush(out) != 0 || fsync(fileno(out)) != 0) {
		fclose(out);
		(void)unlink(tmp);
		return;
	}
	fclose(out);
	if (rename(tmp, refusals_path) != 0)
		(void)unlink(tmp);
}

void p11_pin_refusal_record(const char *key, const struct p11_pin_origin *o)
{
	if (o->file[0] == '\0')
		return;
	pthread_mutex_lock(&refusals_lock);
	(void)refusals_drop(key);
	if (n_refusals == REFUSALS_MAX) { /* the oldest goes */
		memmove(refusals[0], refusals[1],
			(REFUSALS_MAX - 1) * (size_t)REFUSALS_LINE_MAX);
		n_refusals--;
	}
	origin_line(key, o, refusals[n_refusals++], REFUSALS_LINE_MAX);
	refusals_save();
	pthread_mutex_unlock(&refusals_lock);
}

void p11_pin_refusal_clear(const char *key)
{
	pthread_mutex_lock(&refusals_lock);
	if (refusals_drop(key) > 0)
		refusals_save();
	pthread_mutex_unlock(&refusals_lock);
}

int p11_pin_refusal_known(const char *key, const struct p11_pin_origin *o)
{
	char want[REFUSALS_LINE_MAX];
	int found = 0;

	if (o->file[0] == '\0')
		return 0;
	origin_line(key, o, want, sizeof(want));
	pthread_mutex_lock(&refusals_lock);
	for (unsigned i = 0; i < n_refusals && !found; i++)
		found = strcmp(refusals[i], want) == 0;
	pthread_mutex_unlock(&refusals_lock);
	return found;
}
