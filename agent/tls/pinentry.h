/* Asking a person for a token's PIN through the pinentry program, as
 * gpg-agent does: a small Assuan client (SETTITLE, SETDESC, SETPROMPT,
 * SETERROR, OPTION ttyname/ttytype/display, GETPIN) over two pipes to a
 * child that gets only those pipes, its tty and a minimal environment. */
#ifndef MTLS_PINENTRY_H
#define MTLS_PINENTRY_H

#include <stddef.h>

#include "mtls_err.h"
#include "mtls_secret.h"

/* Assuan lines are at most 1000 bytes including the newline. */
#define PINENTRY_LINE_MAX 1000

struct pinentry_req {
	const char *program; /* absolute path, e.g. /usr/bin/pinentry */
	const char *ttyname; /* NULL: none */
	const char *ttytype; /* TERM; NULL: none */
	const char *display; /* X11 DISPLAY; NULL: none */
	const char *title, *desc, *prompt;
	const char *error; /* SETERROR text (a refused PIN), NULL: none */
	int timeout_s;	   /* whole dialogue; the person types in it */
};

/* Percent-escapes text for an Assuan command argument ('%', CR, LF and
 * bytes below 0x20). Returns MTLS_ERR_LIMIT if it does not fit. */
mtls_err_t pinentry_escape(const char *text, char *out, size_t outlen);

/* One line the server sent, without its newline. */
enum pinentry_reply {
	PINENTRY_R_OK,	   /* "OK ..." */
	PINENTRY_R_DATA,   /* "D ..." (decoded and appended to data) */
	PINENTRY_R_ERR,	   /* "ERR code ..." */
	PINENTRY_R_CANCEL, /* ERR GPG_ERR_CANCELED or _FULLY_CANCELED */
	PINENTRY_R_SKIP,   /* "S ...", "#..." status and comment lines */
	PINENTRY_R_BAD,	   /* anything else, or a D line that overflows */
};
/* Parses one line; D lines are percent-decoded into data (appended). */
enum pinentry_reply pinentry_parse(const char *line, size_t len,
				   struct mtls_secret *data);

/* Runs the dialogue. MTLS_OK with the PIN in out; MTLS_ERR_PIN_MISSING
 * when the person cancelled (or closed the dialogue); MTLS_ERR_TIMEOUT;
 * MTLS_ERR_IO for a pinentry that could not run or spoke nonsense. */
mtls_err_t pinentry_ask(const struct pinentry_req *req, struct mtls_secret *out,
			struct mtls_error *err);

#endif
