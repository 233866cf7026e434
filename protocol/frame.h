/* frame.h: parse and build the JSON text frames req / res / event (cJSON). */
#ifndef CLAWPAIR_FRAME_H
#define CLAWPAIR_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "errors.h"

enum frame_type { FRAME_REQ = 1, FRAME_RES, FRAME_EVENT };

struct frame {
	enum frame_type type;
	cJSON *root; /* owns everything below */
	const char *id; /* req, res */
	const char *method; /* req */
	const char *event; /* event */
	cJSON *params; /* req: may be NULL */
	bool ok; /* res */
	cJSON *payload; /* res, event: may be NULL */
	cJSON *error; /* res: may be NULL */
	int64_t seq; /* event: -1 when absent */
};

/* Parses one text frame of len bytes (need not be NUL-terminated; an embedded NUL is an error).
 * Checks the envelope only: type, a non-empty string id and method for req, etc.
 * Returns 0, or -1 with a short reason in *why (static string). f must be frame_finish'ed
 * only on success. */
int frame_parse(const char *text, size_t len, struct frame *f, const char **why);
void frame_finish(struct frame *f);

/* Builders return malloc'd compact JSON (free with free()), or NULL on allocation failure.
 * They take ownership of the cJSON arguments (which may be NULL). */
char *frame_build_req(const char *id, const char *method, cJSON *params);
char *frame_build_res_ok(const char *id, cJSON *payload);
/* Error res from the table: {code: wire_code, message, details: {code: details_code, ...extra}}.
 * message overrides the table's message when not NULL. extra_details is merged into details. */
char *frame_build_res_err(const char *id, enum cp_err err, const char *message,
                          cJSON *extra_details);
/* seq < 0 leaves it out. */
char *frame_build_event(const char *event, cJSON *payload, int64_t seq);

/* Cuts reason to at most 120 bytes on a UTF-8 boundary, into out (>= 124 bytes). */
void frame_close_reason(const char *reason, char *out, size_t outsz);

#endif
