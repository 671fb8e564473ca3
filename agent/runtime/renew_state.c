#include <wolfssl/options.h>

#include "renew_state.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "mtls_hex.h"

#define STATE_MAX 4096

static const char *const step_names[] = {
	[RENEW_IDLE] = "idle",	       [RENEW_KEYGEN] = "keygen",
	[RENEW_CSR] = "csr",	       [RENEW_RECEIVED] = "received",
	[RENEW_STORED] = "stored",
};

const char *renew_step_name(enum renew_step s)
{
	if ((unsigned)s < sizeof(step_names) / sizeof(step_names[0]))
		return step_names[s];
	return "unknown";
}

void hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

int hex_decode(const char *in, uint8_t *out, size_t max, size_t *len)
{
	size_t n = strlen(in);

	if (n % 2 != 0 || n / 2 > max)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int a = mtls_hexval(in[2 * i]), b = mtls_hexval(in[2 * i + 1]);

		if (a < 0 || b < 0)
			return -1;
		out[i] = (uint8_t)(a << 4 | b);
	}
	*len = n / 2;
	return 0;
}

int renew_state_parse(const char *text, struct renew_state *st)
{
	const char *line = text;

	memset(st, 0, sizeof(*st));
	while (*line) {
		const char *eol = strchr(line, '\n');
		size_t n = eol ? (size_t)(eol - line) : strlen(line);
		char buf[256], *eq;

		if (n >= sizeof(buf))
			return -1;
		memcpy(buf, line, n);
		buf[n] = '\0';
		line += n + (eol ? 1 : 0);
		if (n == 0 || buf[0] == '#')
			continue;
		eq = strchr(buf, '=');
		if (eq == NULL)
			return -1;
		*eq++ = '\0';
		if (strcmp(buf, "generation") == 0)
			st->generation = (unsigned)strtoul(eq, NULL, 10);
		else if (strcmp(buf, "key_id") == 0) {
			if (hex_decode(eq, st->key_id, P11_ID_MAX, &st->key_id_len))
				return -1;
		} else if (strcmp(buf, "prev_id") == 0) {
			if (hex_decode(eq, st->prev_id, P11_ID_MAX, &st->prev_id_len))
				return -1;
		} else if (strcmp(buf, "retire_id") == 0) {
			if (hex_decode(eq, st->retire_id, P11_ID_MAX,
				       &st->retire_id_len))
				return -1;
		} else if (strcmp(buf, "pending_id") == 0) {
			if (hex_decode(eq, st->pending_id, P11_ID_MAX,
				       &st->pending_id_len))
				return -1;
		} else if (strcmp(buf, "step") == 0) {
			int found = 0;

			for (unsigned i = 0; i < sizeof(step_names) / sizeof(step_names[0]); i++)
				if (strcmp(eq, step_names[i]) == 0) {
					st->step = (enum renew_step)i;
					found = 1;
				}
			if (!found)
				return -1;
		} else if (strcmp(buf, "failures") == 0)
			st->failures = (unsigned)strtoul(eq, NULL, 10);
		else if (strcmp(buf, "last_attempt") == 0)
			st->last_attempt = strtoll(eq, NULL, 10);
		else if (strcmp(buf, "next_attempt") == 0)
			st->next_attempt = strtoll(eq, NULL, 10);
		else if (strcmp(buf, "last_result") == 0)
			snprintf(st->last_result, sizeof(st->last_result), "%s", eq);
		/* unknown keys: written by a newer version; ignored */
	}
	if (st->step != RENEW_IDLE && st->pending_id_len == 0)
		return -1;
	return 0;
}

mtls_err_t renew_state_dir_check(const char *dir, struct mtls_error *err)
{
	struct stat sb;
	uid_t me = geteuid();

	if (stat(dir, &sb) != 0)
		return mtls_error_set(err, MTLS_ERR_IO, "state_dir %s: %s", dir,
				      strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		return mtls_error_set(err, MTLS_ERR_IO, "state_dir %s: not a "
				      "folder", dir);
	/* Whoever may write there may plant the state (which names the key
	 * objects a recovery destroys) or links where we write. Root may use
	 * the agent user's folder (mtlsctl enroll under sudo). */
	if (sb.st_uid != me && sb.st_uid != 0 && me != 0)
		return mtls_error_set(err, MTLS_ERR_PERMISSION, "state_dir %s: "
				      "owned by uid %u, not by us (%u)", dir,
				      (unsigned)sb.st_uid, (unsigned)me);
	if ((sb.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		return mtls_error_set(err, MTLS_ERR_PERMISSION, "state_dir %s: "
				      "mode %04o lets others write; chmod 700 it",
				      dir, (unsigned)(sb.st_mode & 07777));
	return MTLS_OK;
}

mtls_err_t renew_state_load(const char *dir, const char *name,
			    struct renew_state *st, struct mtls_error *err)
{
	char path[1024], buf[STATE_MAX + 1];
	mtls_err_t r;
	size_t n;
	FILE *f;
	int fd;

	memset(st, 0, sizeof(*st));
	if (access(dir, F_OK) != 0 && errno == ENOENT)
		return MTLS_OK; /* nothing renewed yet */
	r = renew_state_dir_check(dir, err);
	if (r != MTLS_OK)
		return r;
	snprintf(path, sizeof(path), "%s/%s.state", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return MTLS_OK;
		return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", path,
				      strerror(errno));
	}
	f = fdopen(fd, "r");
	if (f == NULL) {
		close(fd);
		return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", path,
				      strerror(errno));
	}
	n = fread(buf, 1, STATE_MAX + 1, f);
	fclose(f);
	if (n > STATE_MAX)
		return mtls_error_set(err, MTLS_ERR_IO, "%s: too large", path);
	buf[n] = '\0';
	if (renew_state_parse(buf, st) != 0)
		return mtls_error_set(err, MTLS_ERR_IO, "%s: unreadable state",
				      path);
	return MTLS_OK;
}

mtls_err_t file_write_atomic(const char *path, const void *data, size_t len,
			     unsigned mode, struct mtls_error *err)
{
	char tmp[1100], dir[1100];
	const char *p = data;
	int fd, e;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return mtls_error_set(err, MTLS_ERR_IO, "%s: path too long", path);
	/* Whatever is at the tmp path goes first: a stale file of a crash, or
	 * a planted symlink, hard link or FIFO (unlink removes the link
	 * itself, never what it points at). Then O_EXCL: the file written is
	 * one this open made, or the open fails; never followed, truncated or
	 * blocked on. */
	if (unlink(tmp) != 0 && errno != ENOENT)
		return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", tmp,
				      strerror(errno));
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  mode);
	if (fd < 0)
		return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", tmp,
				      strerror(errno));
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0)
		goto fail;
	close(fd);
	if (rename(tmp, path) != 0) {
		e = errno;
		unlink(tmp);
		return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", path,
				      strerror(e));
	}
	/* The rename is durable only once the folder is. */
	snprintf(dir, sizeof(dir), "%s", path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	return MTLS_OK;
fail:
	e = errno;
	close(fd);
	unlink(tmp);
	return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", tmp, strerror(e));
}

mtls_err_t renew_state_save(const char *dir, const char *name,
			    const struct renew_state *st,
			    struct mtls_error *err)
{
	char path[1024], buf[STATE_MAX];
	char key[2 * P11_ID_MAX + 1], prev[2 * P11_ID_MAX + 1];
	char retire[2 * P11_ID_MAX + 1], pending[2 * P11_ID_MAX + 1];
	int n;
	mtls_err_t r;

	hex_encode(st->key_id, st->key_id_len, key);
	hex_encode(st->prev_id, st->prev_id_len, prev);
	hex_encode(st->retire_id, st->retire_id_len, retire);
	hex_encode(st->pending_id, st->pending_id_len, pending);
	n = snprintf(buf, sizeof(buf),
		     "# mtls-agent renewal state; written by the agent\n"
		     "generation=%u\nkey_id=%s\nprev_id=%s\nretire_id=%s\n"
		     "step=%s\npending_id=%s\nfailures=%u\nlast_attempt=%lld\n"
		     "next_attempt=%lld\nlast_result=%s\n",
		     st->generation, key, prev, retire, renew_step_name(st->step),
		     pending, st->failures, (long long)st->last_attempt,
		     (long long)st->next_attempt, st->last_result);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return mtls_error_set(err, MTLS_ERR_IO, "state too large");
	r = renew_state_dir_check(dir, err);
	if (r != MTLS_OK)
		return r;
	snprintf(path, sizeof(path), "%s/%s.state", dir, name);
	return file_write_atomic(path, buf, (size_t)n, 0600, err);
}

void renew_id_uri(const uint8_t *id, size_t len, const char *type,
		   char *out, size_t cap)
{
	size_t n = (size_t)snprintf(out, cap, "pkcs11:id=");

	for (size_t i = 0; i < len && n + 4 < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%%%02x", id[i]);
	snprintf(out + n, cap - n, ";type=%s", type);
}

void renew_state_path(const struct config *cfg, const char *name,
		       const char *suffix, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s.%s", cfg->agent.state_dir, name, suffix);
}

void renew_identity_source(const struct config *cfg, unsigned index,
			   const struct renew_state *st, char *key_uri,
			   char *cert_uri, char *chain_path, size_t cap)
{
	const struct cfg_identity *ci = &cfg->identities[index];

	chain_path[0] = '\0';
	if (st->generation == 0 || st->key_id_len == 0) {
		snprintf(key_uri, cap, "%s", ci->key);
		snprintf(cert_uri, cap, "%s", ci->cert);
		if (ci->chain != NULL)
			snprintf(chain_path, cap, "%s", ci->chain);
		return;
	}
	renew_id_uri(st->key_id, st->key_id_len, "private", key_uri, cap);
	renew_id_uri(st->key_id, st->key_id_len, "cert", cert_uri, cap);
	{
		char p[1024];
		struct stat sb;

		renew_state_path(cfg, ci->name, "chain.pem", p, sizeof(p));
		if (stat(p, &sb) == 0 && sb.st_size > 0)
			snprintf(chain_path, cap, "%s", p);
	}
}

static void leaf_hash_hex(const struct identity *id, char out[65])
{
	uint8_t h[WC_SHA256_DIGEST_SIZE];

	wc_Sha256Hash(id->chain_der[0], (word32)id->chain_len[0], h);
	hex_encode(h, sizeof(h), out);
}

int renew_revoked(const struct config *cfg, const char *name,
		  const struct identity *id)
{
	char path[1024], want[65], line[128];
	FILE *f;
	int found = 0;

	renew_state_path(cfg, name, RENEW_REVOKED_SUFFIX, path, sizeof(path));
	f = fopen(path, "re");
	if (f == NULL)
		return 0;
	leaf_hash_hex(id, want);
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strncmp(line, want, 64) == 0 &&
			(line[64] == '\n' || line[64] == '\0');
	fclose(f);
	return found;
}

mtls_err_t renew_revoked_add(const struct config *cfg, const char *name,
			     const struct identity *id, struct mtls_error *err)
{
	char path[1024], hex[65], *buf;
	FILE *f;
	size_t n = 0;
	long len = 0;
	mtls_err_t r;

	if (renew_revoked(cfg, name, id))
		return MTLS_OK;
	renew_state_path(cfg, name, RENEW_REVOKED_SUFFIX, path, sizeof(path));
	f = fopen(path, "re");
	if (f != NULL && (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
			  len > 1 << 20 || fseek(f, 0, SEEK_SET) != 0)) {
		fclose(f);
		return mtls_error_set(err, MTLS_ERR_IO, "%s: unreadable", path);
	}
	buf = malloc((size_t)len + 66);
	if (buf == NULL) {
		if (f != NULL)
			fclose(f);
		return mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
	}
	if (f != NULL) {
		n = fread(buf, 1, (size_t)len, f);
		fclose(f);
	}
	leaf_hash_hex(id, hex);
	memcpy(buf + n, hex, 64);
	buf[n + 64] = '\n';
	r = file_write_atomic(path, buf, n + 65, 0600, err);
	free(buf);
	return r;
}
