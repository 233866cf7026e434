/* errors.h: the one table of wire error codes, details.code strings, close codes and reasons. */
#ifndef CLAWPAIR_ERRORS_H
#define CLAWPAIR_ERRORS_H

enum cp_err {
	CP_OK = 0,
#define X(name, wire, dcode, close, reason, msg) name,
#include "errors.def"
#undef X
	CP_ERR__COUNT
};

struct cp_err_info {
	enum cp_err err;
	const char *name; /* "CP_ERR_PAIRING_EXPIRED" */
	const char *wire_code; /* "NOT_PAIRED", or NULL when no res is sent */
	const char *details_code; /* "PAIRING_EXPIRED" */
	int close_code; /* 0: the connection stays open */
	const char *close_reason; /* at most 120 bytes */
	const char *message;
};

/* Row for err, or NULL for CP_OK / out of range. */
const struct cp_err_info *cp_err_info(enum cp_err err);
/* Row whose details_code equals s, or NULL. */
const struct cp_err_info *cp_err_by_details_code(const char *s);
/* Row whose close code equals code (first match), or NULL. */
const struct cp_err_info *cp_err_by_close_code(int code);

#endif
