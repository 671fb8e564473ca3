/* A fault-injecting PKCS#11 module for tests: it wraps a real module
 * (FAULT_P11_MODULE, e.g. SoftHSM2) and, as a control file says
 * (FAULT_P11_CONTROL, read again whenever it changes), makes calls fail
 * with a chosen CK_RV or slows them down. Lines of the control file:
 *
 *   removed            the token is gone: no slot lists it, sessions and
 *                      signatures fail with CKR_DEVICE_REMOVED /
 *                      CKR_TOKEN_NOT_PRESENT
 *   sign=CKR_NAME      C_Sign answers CKR_NAME (e.g. CKR_FUNCTION_FAILED)
 *   session=CKR_NAME   C_SignInit/C_FindObjectsInit answer CKR_NAME (e.g.
 *                      CKR_SESSION_HANDLE_INVALID)
 *   login=CKR_NAME     C_Login answers CKR_NAME (e.g. CKR_PIN_LOCKED)
 *   sign_delay_ms=N    every C_Sign takes N ms longer (a smartcard)
 *   hide_mech=CKM_A,CKM_B
 *                      the token lacks these mechanisms (e.g. a card
 *                      without CKM_RSA_PKCS_PSS): C_GetMechanismList
 *                      leaves them out, C_GetMechanismInfo and
 *                      C_SignInit with them answer CKR_MECHANISM_INVALID.
 *                      Names as in pkcs11.h (the signing and hashing
 *                      ones) or 0x hex values; an unknown name is ignored
 *   wedged             the module breaks as a whole, as ykcs11 does when
 *                      pcscd restarts: every call answers CKR_DEVICE_ERROR,
 *                      and goes on doing so after the line is gone, until
 *                      C_Finalize + C_Initialize
 *   keygen_per_init=N  after N key pairs in one C_Initialize, the next
 *                      C_GenerateKeyPair makes its pair and answers
 *                      CKR_DEVICE_ERROR, and so do all later ones until
 *                      C_Finalize + C_Initialize: ykcs11 on the virtual
 *                      PIV card (its README, quirk 4)
 *
 * Every C_Login, C_Sign, C_GenerateKeyPair and C_Initialize is counted in
 * FAULT_P11_LOG (one line each), so tests can see retries and
 * re-initialisations. */
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static CK_FUNCTION_LIST *real;
static CK_FUNCTION_LIST wrapped;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

#define HIDE_MAX 16

static struct {
	struct timespec mtime;
	int removed;
	CK_RV sign, session, login;
	long sign_delay_ms;
	CK_MECHANISM_TYPE hide[HIDE_MAX];
	unsigned n_hide;
	int wedged;
	long keygen_per_init;
} F;
static int broken; /* wedged since; lock held */
static long keygens; /* since the last C_Initialize; lock held */

static const struct {
	const char *name;
	CK_MECHANISM_TYPE type;
} mechs[] = {
	{ "CKM_RSA_PKCS", CKM_RSA_PKCS },
	{ "CKM_RSA_PKCS_PSS", CKM_RSA_PKCS_PSS },
	{ "CKM_RSA_X_509", CKM_RSA_X_509 },
	{ "CKM_ECDSA", CKM_ECDSA },
	{ "CKM_SHA256_RSA_PKCS", CKM_SHA256_RSA_PKCS },
	{ "CKM_SHA384_RSA_PKCS", CKM_SHA384_RSA_PKCS },
	{ "CKM_SHA512_RSA_PKCS", CKM_SHA512_RSA_PKCS },
	{ "CKM_SHA256_RSA_PKCS_PSS", CKM_SHA256_RSA_PKCS_PSS },
	{ "CKM_SHA384_RSA_PKCS_PSS", CKM_SHA384_RSA_PKCS_PSS },
	{ "CKM_SHA512_RSA_PKCS_PSS", CKM_SHA512_RSA_PKCS_PSS },
	{ "CKM_ECDSA_SHA256", CKM_ECDSA_SHA256 },
	{ "CKM_ECDSA_SHA384", CKM_ECDSA_SHA384 },
	{ "CKM_ECDSA_SHA512", CKM_ECDSA_SHA512 },
	{ "CKM_RSA_PKCS_KEY_PAIR_GEN", CKM_RSA_PKCS_KEY_PAIR_GEN },
	{ "CKM_EC_KEY_PAIR_GEN", CKM_EC_KEY_PAIR_GEN },
};

/* Reads "CKM_A,CKM_B,0x1234" into F.hide; lock held. */
static void hide_parse(char *list)
{
	for (char *save = NULL, *w = strtok_r(list, ", ", &save); w != NULL;
	     w = strtok_r(NULL, ", ", &save)) {
		char *end;
		unsigned long v = strtoul(w, &end, 16);
		int known = strncmp(w, "0x", 2) == 0 && *end == '\0';
		size_t n = sizeof(mechs) / sizeof(mechs[0]);

		for (size_t i = 0; !known && i < n; i++)
			if (strcmp(w, mechs[i].name) == 0) {
				v = mechs[i].type;
				known = 1;
			}
		if (known && F.n_hide < HIDE_MAX)
			F.hide[F.n_hide++] = v;
	}
}

static int hidden(CK_MECHANISM_TYPE m)
{
	int h = 0;

	pthread_mutex_lock(&lock);
	for (unsigned i = 0; i < F.n_hide; i++)
		h = h || F.hide[i] == m;
	pthread_mutex_unlock(&lock);
	return h;
}

static const struct {
	const char *name;
	CK_RV rv;
} names[] = {
	{ "CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED },
	{ "CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT },
	{ "CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID },
	{ "CKR_PIN_LOCKED", CKR_PIN_LOCKED },
	{ "CKR_PIN_INCORRECT", CKR_PIN_INCORRECT },
	{ "CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED },
	{ "CKR_DEVICE_ERROR", CKR_DEVICE_ERROR },
	{ "CKR_GENERAL_ERROR", CKR_GENERAL_ERROR },
};

static CK_RV rv_of(const char *s)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0)
			return names[i].rv;
	return CKR_GENERAL_ERROR;
}

/* Re-reads the control file when its mtime changed. */
static void refresh(void)
{
	const char *path = getenv("FAULT_P11_CONTROL");
	struct stat st;
	char line[128];
	FILE *f;

	pthread_mutex_lock(&lock);
	if (path == NULL || stat(path, &st) != 0) {
		memset(&F, 0, sizeof(F));
		goto out;
	}
	if (st.st_mtim.tv_sec == F.mtime.tv_sec &&
	    st.st_mtim.tv_nsec == F.mtime.tv_nsec)
		goto out;
	memset(&F, 0, sizeof(F));
	F.mtime = st.st_mtim;
	f = fopen(path, "re");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strcmp(line, "removed") == 0)
			F.removed = 1;
		else if (strncmp(line, "sign=", 5) == 0)
			F.sign = rv_of(line + 5);
		else if (strncmp(line, "session=", 8) == 0)
			F.session = rv_of(line + 8);
		else if (strncmp(line, "login=", 6) == 0)
			F.login = rv_of(line + 6);
		else if (strncmp(line, "sign_delay_ms=", 14) == 0)
			F.sign_delay_ms = atol(line + 14);
		else if (strncmp(line, "hide_mech=", 10) == 0)
			hide_parse(line + 10);
		else if (strcmp(line, "wedged") == 0)
			F.wedged = 1;
		else if (strncmp(line, "keygen_per_init=", 16) == 0)
			F.keygen_per_init = atol(line + 16);
	}
	if (f != NULL)
		fclose(f);
out:
	if (F.wedged)
		broken = 1;
	pthread_mutex_unlock(&lock);
}

/* Re-reads the control file; true while the module is wedged. */
static int wedged(void)
{
	int b;

	refresh();
	pthread_mutex_lock(&lock);
	b = broken;
	pthread_mutex_unlock(&lock);
	return b;
}

static void count(const char *what)
{
	const char *path = getenv("FAULT_P11_LOG");
	FILE *f;

	if (path == NULL || (f = fopen(path, "ae")) == NULL)
		return;
	fprintf(f, "%s\n", what);
	fclose(f);
}

static CK_RV w_Initialize(CK_VOID_PTR args)
{
	CK_RV rv = real->C_Initialize(args);

	count("C_Initialize");
	refresh();
	pthread_mutex_lock(&lock);
	if (rv == CKR_OK && !F.wedged)
		broken = 0;
	if (rv == CKR_OK)
		keygens = 0;
	pthread_mutex_unlock(&lock);
	return rv;
}

static CK_RV w_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR n)
{
	if (wedged())
		return CKR_DEVICE_ERROR;
	if (F.removed && present) {
		*n = 0;
		return CKR_OK;
	}
	return real->C_GetSlotList(present, list, n);
}

static CK_RV w_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	if (wedged())
		return CKR_DEVICE_ERROR;
	return F.removed ? CKR_TOKEN_NOT_PRESENT : real->C_GetTokenInfo(slot, info);
}

static CK_RV w_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,
			   CK_NOTIFY notify, CK_SESSION_HANDLE_PTR s)
{
	if (wedged())
		return CKR_DEVICE_ERROR;
	return F.removed ? CKR_TOKEN_NOT_PRESENT :
			   real->C_OpenSession(slot, flags, app, notify, s);
}

static CK_RV w_Login(CK_SESSION_HANDLE s, CK_USER_TYPE t, CK_UTF8CHAR_PTR pin,
		     CK_ULONG len)
{
	int b = wedged();

	count("C_Login");
	if (b)
		return CKR_DEVICE_ERROR;
	if (F.removed)
		return CKR_DEVICE_REMOVED;
	if (F.login)
		return F.login;
	return real->C_Login(s, t, pin, len);
}

static CK_RV w_SignInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	if (wedged())
		return CKR_DEVICE_ERROR;
	if (F.removed)
		return CKR_DEVICE_REMOVED;
	if (F.session)
		return F.session;
	if (m != NULL && hidden(m->mechanism))
		return CKR_MECHANISM_INVALID;
	return real->C_SignInit(s, m, k);
}

/* The real list without the hidden ones, with PKCS#11's two-call
 * convention (list NULL: the count; too small: CKR_BUFFER_TOO_SMALL). */
static CK_RV w_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list,
				CK_ULONG_PTR n)
{
	CK_MECHANISM_TYPE *all;
	CK_ULONG total = 0, kept = 0;
	CK_RV rv;

	refresh();
	if (F.removed)
		return CKR_TOKEN_NOT_PRESENT;
	if (n == NULL)
		return CKR_ARGUMENTS_BAD;
	rv = real->C_GetMechanismList(slot, NULL, &total);
	if (rv != CKR_OK)
		return rv;
	all = calloc(total > 0 ? total : 1, sizeof(*all));
	if (all == NULL)
		return CKR_HOST_MEMORY;
	rv = real->C_GetMechanismList(slot, all, &total);
	for (CK_ULONG i = 0; rv == CKR_OK && i < total; i++)
		if (!hidden(all[i]))
			all[kept++] = all[i];
	if (rv == CKR_OK && list != NULL) {
		if (*n < kept)
			rv = CKR_BUFFER_TOO_SMALL;
		else
			memcpy(list, all, kept * sizeof(*all));
	}
	if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL)
		*n = kept;
	free(all);
	return rv;
}

static CK_RV w_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type,
				CK_MECHANISM_INFO_PTR info)
{
	refresh();
	if (F.removed)
		return CKR_TOKEN_NOT_PRESENT;
	if (hidden(type))
		return CKR_MECHANISM_INVALID;
	return real->C_GetMechanismInfo(slot, type, info);
}

static CK_RV w_Sign(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len,
		    CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	CK_RV rv;
	int b = wedged();

	count("C_Sign");
	if (F.sign_delay_ms > 0) {
		struct timespec d = { F.sign_delay_ms / 1000,
				      (F.sign_delay_ms % 1000) * 1000000L };

		nanosleep(&d, NULL);
	}
	if (b)
		return CKR_DEVICE_ERROR;
	if (F.removed)
		return CKR_DEVICE_REMOVED;
	rv = real->C_Sign(s, in, in_len, sig, sig_len);
	return F.sign ? F.sign : rv;
}

static CK_RV w_FindObjectsInit(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	if (wedged())
		return CKR_DEVICE_ERROR;
	if (F.removed)
		return CKR_DEVICE_REMOVED;
	if (F.session)
		return F.session;
	return real->C_FindObjectsInit(s, t, n);
}

static CK_RV w_GenerateKeyPair(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m,
				CK_ATTRIBUTE_PTR pub, CK_ULONG npub,
				CK_ATTRIBUTE_PTR priv, CK_ULONG npriv,
				CK_OBJECT_HANDLE_PTR hpub, CK_OBJECT_HANDLE_PTR hpriv)
{
	int b = wedged(), stale;
	CK_RV rv;

	count("C_GenerateKeyPair");
	if (b)
		return CKR_DEVICE_ERROR;
	if (F.removed)
		return CKR_DEVICE_REMOVED;
	/* As on the card: the pair is made, the answer is an error. */
	rv = real->C_GenerateKeyPair(s, m, pub, npub, priv, npriv, hpub, hpriv);
	pthread_mutex_lock(&lock);
	stale = F.keygen_per_init > 0 && keygens >= F.keygen_per_init;
	keygens++;
	pthread_mutex_unlock(&lock);
	return stale ? CKR_DEVICE_ERROR : rv;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out);

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
	const char *path = getenv("FAULT_P11_MODULE");
	CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR);
	void *h;
	CK_RV rv;

	if (real == NULL) {
		if (path == NULL || (h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL)
			return CKR_GENERAL_ERROR;
		*(void **)&get = dlsym(h, "C_GetFunctionList");
		if (get == NULL)
			return CKR_GENERAL_ERROR;
		rv = get(&real);
		if (rv != CKR_OK)
			return rv;
		wrapped = *real;
		wrapped.C_Initialize = w_Initialize;
		wrapped.C_GetSlotList = w_GetSlotList;
		wrapped.C_GetTokenInfo = w_GetTokenInfo;
		wrapped.C_OpenSession = w_OpenSession;
		wrapped.C_Login = w_Login;
		wrapped.C_SignInit = w_SignInit;
		wrapped.C_Sign = w_Sign;
		wrapped.C_FindObjectsInit = w_FindObjectsInit;
		wrapped.C_GetMechanismList = w_GetMechanismList;
		wrapped.C_GetMechanismInfo = w_GetMechanismInfo;
		wrapped.C_GenerateKeyPair = w_GenerateKeyPair;
	}
	*out = &wrapped;
	return CKR_OK;
}
