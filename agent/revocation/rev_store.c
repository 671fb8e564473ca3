#include "rev_store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mtls_io.h"

#define MAGIC "mtls-agent revocation 1\n"

mtls_err_t rev_store_dir(const char *dir, struct mtls_error *err)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", dir,
				      strerror(errno));
	if (lstat(dir, &st) != 0)
		return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", dir,
				      strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 0022) != 0)
		return mtls_error_set(err, MTLS_ERR_PERMISSION, "%s: not a "
				      "folder of the agent's user that only it "
				      "may write", dir);
	return MTLS_OK;
}

static const char *suffix(enum rev_kind k)
{
	return k == REV_KIND_OCSP ? "ocsp" : "crl";
}

mtls_err_t rev_store_write(const char *dir, const struct rev_record *r,
			   struct mtls_error *err)
{
	char path[1024], tmp[1100], head[REV_URL_MAX + 256], serial[2 * REV_SERIAL_MAX + 1];
	int fd, n, dfd;

	for (size_t i = 0; i < r->serial_len && i < REV_SERIAL_MAX; i++)
		snprintf(serial + 2 * i, 3, "%02x", r->serial[i]);
	serial[2 * (r->serial_len < REV_SERIAL_MAX ? r->serial_len : REV_SERIAL_MAX)] = '\0';
	n = snprintf(head, sizeof(head),
		     MAGIC "kind=%s\nurl=%s\nserial=%s\nfetched=%" PRId64
		     "\nissuer=%zu\nanswer=%zu\n\n", suffix(r->kind), r->url,
		     serial, r->fetched_at, r->issuer_len, r->answer_len);
	if (n < 0 || (size_t)n >= sizeof(head) ||
	    snprintf(path, sizeof(path), "%s/%s.%s", dir, r->key,
		     suffix(r->kind)) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
		    (int)sizeof(tmp))
		return mtls_error_set(err, MTLS_ERR_ARG, "cache path too long");
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", tmp,
				      strerror(errno));
	if (mtls_write_all(fd, head, (size_t)n) != 0 ||
	    mtls_write_all(fd, r->issuer, r->issuer_len) != 0 ||
	    mtls_write_all(fd, r->answer, r->answer_len) != 0 || fsync(fd) != 0) {
		int e = errno;

		close(fd);
		unlink(tmp);
		return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", tmp,
				      strerror(e));
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		int e = errno;

		unlink(tmp);
		return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", path,
				      strerror(e));
	}
	/* The rename itself must survive a crash too. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return MTLS_OK;
}

void rev_record_free(struct rev_record *r)
{
	free(r->issuer);
	free(r->answer);
	r->issuer = r->answer = NULL;
}

/* The value of "key=" on the line at *p (advanced past it), into out. */
static int field(const char **p, const char *end, const char *key, char *out,
		 size_t cap)
{
	size_t kl = strlen(key), n;
	const char *nl;

	if ((size_t)(end - *p) < kl + 1 || memcmp(*p, key, kl) != 0 ||
	    (*p)[kl] != '=')
		return -1;
	*p += kl + 1;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	if (nl == NULL || (size_t)(nl - *p) >= cap)
		return -1;
	n = (size_t)(nl - *p);
	memcpy(out, *p, n);
	out[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
			return -1;
	*p = nl + 1;
	return 0;
}

static int parse_size(const char *s, size_t max, size_t *out)
{
	char *e;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &e, 10);
	if (errno != 0 || *e != '\0' || v > max)
		return -1;
	*out = (size_t)v;
	return 0;
}

static int parse_record(const uint8_t *buf, size_t len, struct rev_record *r)
{
	const char *p = (const char *)buf, *end = p + len;
	char v[REV_URL_MAX], serial[2 * REV_SERIAL_MAX + 1];
	size_t fetched;

	if (len < sizeof(MAGIC) - 1 || memcmp(p, MAGIC, sizeof(MAGIC) - 1) != 0)
		return -1;
	p += sizeof(MAGIC) - 1;
	if (field(&p, end, "kind", v, sizeof(v)) != 0 ||
	    (strcmp(v, suffix(r->kind)) != 0) ||
	    field(&p, end, "url", r->url, sizeof(r->url)) != 0 ||
	    field(&p, end, "serial", serial, sizeof(serial)) != 0 ||
	    strlen(serial) % 2 != 0 ||
	    field(&p, end, "fetched", v, sizeof(v)) != 0 ||
	    parse_size(v, INT64_MAX, &fetched) != 0 ||
	    field(&p, end, "issuer", v, sizeof(v)) != 0 ||
	    parse_size(v, 65536, &r->issuer_len) != 0 ||
	    field(&p, end, "answer", v, sizeof(v)) != 0 ||
	    parse_size(v, REV_STORE_MAX, &r->answer_len) != 0 ||
	    p >= end || *p++ != '\n' ||
	    (size_t)(end - p) != r->issuer_len + r->answer_len)
		return -1;
	r->fetched_at = (int64_t)fetched;
	r->serial_len = strlen(serial) / 2;
	for (size_t i = 0; i < r->serial_len; i++) {
		unsigned b;

		if (sscanf(serial + 2 * i, "%2x", &b) != 1)
			return -1;
		r->serial[i] = (uint8_t)b;
	}
	r->issuer = malloc(r->issuer_len + 1);
	r->answer = malloc(r->answer_len + 1);
	if (r->issuer == NULL || r->answer == NULL)
		return -1;
	memcpy(r->issuer, p, r->issuer_len);
	memcpy(r->answer, p + r->issuer_len, r->answer_len);
	return 0;
}

mtls_err_t rev_store_read(const char *dir, const char *name,
			  struct rev_record *r, struct mtls_error *err)
{
	char path[1024];
	const char *dot = strrchr(name, '.');
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0, kl;
	mtls_err_t ret = MTLS_OK;
	int fd;

	memset(r, 0, sizeof(*r));
	if (dot == NULL || (kl = (size_t)(dot - name)) == 0 || kl >= sizeof(r->key))
		return mtls_error_set(err, MTLS_ERR_ARG, "%s: not a cache file", name);
	if (strcmp(dot, ".ocsp") == 0)
		r->kind = REV_KIND_OCSP;
	else if (strcmp(dot, ".crl") == 0)
		r->kind = REV_KIND_CRL;
	else
		return mtls_error_set(err, MTLS_ERR_ARG, "%s: not a cache file", name);
	memcpy(r->key, name, kl);
	r->key[kl] = '\0';
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return mtls_error_set(err, MTLS_ERR_IO, "%s: %s", path,
				      strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 0077) != 0 ||
	    st.st_size <= 0 || (uint64_t)st.st_size > REV_STORE_MAX + 4096) {
		ret = mtls_error_set(err, MTLS_ERR_PERMISSION, "%s: not a "
				     "private regular file of the agent's user "
				     "of a sane size", path);
		goto out;
	}
	buf = malloc((size_t)st.st_size);
	if (buf == NULL) {
		ret = mtls_error_set(err, MTLS_ERR_NOMEM, NULL);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	if (got != (size_t)st.st_size || parse_record(buf, got, r) != 0) {
		rev_record_free(r);
		ret = mtls_error_set(err, MTLS_ERR_IO, "%s: not a cache record",
				     path);
	}
out:
	free(buf);
	close(fd);
	return ret;
}
