/* runner.h: playing one conformance case against a gateway and judging it. */
#ifndef CLAWPAIR_RUNNER_H
#define CLAWPAIR_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "conformance.h"

enum conf_remote { CONF_REMOTE_XFF = 0, CONF_REMOTE_NETNS, CONF_REMOTE_NONE };

struct conf_options {
	const char *url, *token;
	const char *tls_fingerprint; /* wss://: the gateway's pinned certificate, or NULL */
	enum conf_remote remote_via;
	const char *remote_url; /* netns: the gateway as seen from the namespace */
	const char *netns; /* netns: the namespace name (NULL: the interpreter's default) */
	unsigned *xff_counter; /* next host part for X-Forwarded-For addresses */
	double timeout_scale;
	const char *restart_cmd;
	int64_t pending_ttl_ms; /* 0: unknown */
	unsigned max_pending; /* 0: unknown */
	int64_t tick_interval_ms; /* 0: unknown (30000 assumed) */
	bool slow; /* run cases that wait for a 30 s tick */
	bool all_frames; /* keep frames of passing cases too */
	const char *not_local; /* why the runner's "local" clients are not local, or NULL */
	bool show_secrets; /* keep tokens in the result (else redact.h replaces them) */
	const struct conf_expectations *expectations;
};

/* Runs c with the scenario interpreter and fills r (r->c = c). Never fails: problems become
 * FAIL or SKIP verdicts. */
void conf_run_case(const struct conf_case *c, const struct conf_options *o, struct conf_result *r);

/* Whether the interpreter takes c: its format (scenario_parse_with, with the runner's needs and
 * numbers) and every ${NAME} of a step defined by an earlier step (a capture; a connect of
 * actor A for ${A.deviceId}, ${A.publicKey}, ${A.fingerprint}, ${A.deviceToken}). Returns 0, or
 * -1 with the reason in err. */
int conf_case_check(const struct conf_case *c, const struct conf_options *o, char *err,
                    size_t errsz);

/* How long c takes at least, from its waits (sleep, expect-open, expect-no-event, and a wait for
 * one of the gateway's timers): --jobs starts the long cases first. */
double conf_case_weight_ms(const struct conf_case *c, const struct conf_options *o);

/* The runner's own needs (short-ttl, ticks, netns, max-pending-2, and restart and remote as the
 * options see them); NULL when all are met, else why not (static string). */
const char *conf_unmet_need(const cJSON *case_json, const struct conf_options *o);

#endif
