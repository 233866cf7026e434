/* diagnose.h: turning a failed step into a named diagnosis (the OpenClaw #6836 patterns). */
#ifndef CLAWPAIR_DIAGNOSE_H
#define CLAWPAIR_DIAGNOSE_H

#include <stdbool.h>

#include <cjson/cJSON.h>

/* What is known about the failing step of a case. Strings may be NULL. */
struct conf_failure {
	const cJSON *step; /* the case's step (before substitution) */
	const char *expected; /* what the step wanted */
	const char *actual; /* what happened */
	int close_code; /* 0: the actor's connection was not closed */
	const char *close_reason;
	long close_ms; /* the close's own time since the actor's connect, -1: unknown */
	long ms_since_connect; /* when the failure was noticed, -1: unknown */
	bool approved_before; /* an earlier step approved a request */
	const char *sent_request_id; /* requestId the failing call sent, if any */
};

/* A one-line diagnosis for case kind diagnose ("hold-open", "unified-list"), or NULL when the
 * failure does not look like that pattern. malloc'd. */
char *conf_diagnose(const char *diagnose, const struct conf_failure *f);

/* The first UUID-looking token (8-4-4-4-12 hex) in s, into out (>= 37 bytes). */
bool conf_find_uuid(const char *s, char *out);

#endif
