/* runner.h: playing one conformance case against a gateway and judging it. */
#ifndef CLAWPAIR_RUNNER_H
#define CLAWPAIR_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "conformance.h"
#include "strbuf.h"

enum conf_remote { CONF_REMOTE_XFF = 0, CONF_REMOTE_NETNS, CONF_REMOTE_NONE };

struct conf_options {
	const char *url, *token;
	enum conf_remote remote_via;
	const char *remote_url; /* netns: the gateway as seen from the namespace */
	const char *netns; /* netns: the namespace name (NULL: the engine's default) */
	unsigned *xff_counter; /* next host part for X-Forwarded-For addresses */
	double timeout_scale;
	const char *restart_cmd;
	int64_t pending_ttl_ms; /* 0: unknown */
	unsigned max_pending; /* 0: unknown */
	int64_t tick_interval_ms; /* 0: unknown (30000 assumed) */
	bool slow; /* run cases that wait for a 30 s tick */
	bool all_frames; /* keep frames of passing cases too */
	const struct conf_expectations *expectations;
};

/* Runs c and fills r (r->c = c). Never fails: problems become FAIL or SKIP verdicts. */
void conf_run_case(const struct conf_case *c, const struct conf_options *o, struct conf_result *r);

/* Case JSON with the runner's macros applied: {"$repeat": S, "count": N}, {"$concat": [...]},
 * {"$hex": "..."} become strings and "${conf.NAME}" becomes a number. Returns a new tree, or
 * NULL with err. */
cJSON *conf_prepare(const cJSON *j, const struct conf_options *o, char *err, size_t errsz);
/* The bytes a text value stands for (string or macro), appended to out. Returns 0 or -1. */
int conf_value_bytes(const cJSON *v, struct strbuf *out, char *err, size_t errsz);

/* Needs the runner itself checks; NULL when all are met, else why not (static string). */
const char *conf_unmet_need(const cJSON *case_json, const struct conf_options *o);

/* Cases whose steps include "open" (a socket without a handshake) are played by the runner's
 * raw player; the rest by the scenario engine. */
bool conf_case_is_raw(const cJSON *case_json);
struct raw_outcome {
	bool failed;
	int failed_step;
	char *expected, *actual, *message;
	int close_code;
	char close_reason[128];
	long ms_since_connect;
};
void raw_play(const cJSON *case_json, const struct conf_options *o, struct raw_outcome *out,
              struct conf_result *r);
void raw_outcome_finish(struct raw_outcome *out);

/* Appends a transcript line "[+T ms] actor DIR text", shortening huge texts. */
void conf_add_frame_line(struct conf_result *r, uint64_t t_ms, const char *actor, const char *dir,
                         const char *text);

#endif
