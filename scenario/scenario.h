/* scenario.h: the scenario engine: load a JSON scenario (scenario/SCENARIOS.md), play its actors
 * against a gateway, and report per-step results, the first failure and every frame. */
#ifndef CLAWPAIR_SCENARIO_H
#define CLAWPAIR_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct scenario;

enum scenario_verdict {
	SCENARIO_PASS = 0,
	SCENARIO_FAIL, /* an expectation was not met */
	SCENARIO_SKIP, /* needs something the environment lacks (remote, restart) */
	SCENARIO_ERROR, /* the scenario itself or the environment is broken */
};

enum scenario_remote {
	SCENARIO_REMOTE_XFF = 0, /* X-Forwarded-For: 10.77.0.x (the gateway must trust 127.0.0.1) */
	SCENARIO_REMOTE_NONE, /* remote actors connect like local ones; "needs remote" SKIPs */
	SCENARIO_REMOTE_NETNS, /* remote actors connect from a network namespace to remote_url */
};

enum scenario_dir {
	SCENARIO_DIR_OUT = 0, /* frame sent */
	SCENARIO_DIR_IN, /* frame received */
	SCENARIO_DIR_CLOSE, /* connection closed: text is "CODE reason" */
	SCENARIO_DIR_NOTE, /* engine note: connect, step start, failure */
};

struct scenario_meta {
	const char *id, *title, *requirement, *level, *sentence, *diagnose; /* NULL when absent */
	const char *const *needs;
	size_t n_needs;
	int timeout_ms; /* default per expectation */
	size_t n_steps, n_actors;
};

typedef void (*scenario_log_fn)(void *user, const char *actor, enum scenario_dir dir,
                                const char *text, uint64_t t_ms);

struct scenario_env {
	const char *url; /* ws://HOST:PORT (or wss://) of the gateway */
	const char *token; /* shared token */
	const char *tls_fingerprint; /* wss://: the gateway's pinned certificate, or NULL */
	enum scenario_remote remote_via;
	const char *remote_url; /* NETNS: the gateway as seen from the namespace; NULL: url */
	const char *netns; /* NETNS: namespace name; NULL: "cplan" */
	unsigned *xff_counter; /* XFF: next x of 10.77.0.x (shared across runs so actors of
				 * different scenarios differ); NULL: per run from 2 */
	double timeout_scale; /* multiplies every timeout; 0: 1 */
	const char *restart_cmd; /* run with sh -c by "restart" steps; NULL: they SKIP */
	scenario_log_fn log; /* each frame as it is seen; may be NULL */
	void *log_user;
	const char *const
	        *vars; /* "NAME=VALUE" strings preset as ${NAME}; NULL-terminated or NULL */
};

struct scenario_log_entry {
	char actor[32];
	enum scenario_dir dir;
	char *text;
	uint64_t t_ms; /* since the run started */
};

struct scenario_step_result {
	enum scenario_verdict verdict; /* PASS, FAIL, SKIP; steps after a failure are absent */
	char actor[32];
	char op[24]; /* the step's "do" */
	uint64_t t_ms, ms; /* start since the run started, duration */
};

struct scenario_result {
	enum scenario_verdict verdict;
	int failed_step; /* 0-based index of the failing / skipping step, -1 */
	char actor[32]; /* actor of that step */
	char *expected; /* what the step wanted (malloc'd) */
	char *actual; /* what happened: a frame, "closed 1008 'pairing required' 13 ms
			       * after connect", "nothing within 5000 ms" (malloc'd) */
	int close_code; /* when the actor's connection had closed: its code, else 0 */
	char close_reason[128];
	long close_ms; /* when it had closed: ms from the actor's last connect (or open) to the
			* close itself, else -1 */
	long ms_since_connect; /* from the actor's last connect (or open) to the failure, -1 */
	char *message; /* one line: why it failed, skipped or errored (malloc'd) */
	struct scenario_step_result *steps;
	size_t n_steps;
	struct scenario_log_entry *log;
	size_t n_log, cap_log;
	uint64_t duration_ms;
};

/* A number a scenario names as "${conf.NAME}" (a string that is exactly that becomes the number
 * when the scenario is loaded). */
struct scenario_number {
	const char *name; /* NAME, without "conf." */
	double value;
};

/* What the caller of the interpreter adds to the format. */
struct scenario_parse_opts {
	const char *const *extra_needs; /* "needs" names the caller checks itself, besides remote,
					 * restart and operator; NULL-terminated or NULL */
	const struct scenario_number *numbers; /* the ${conf.NAME} values */
	size_t n_numbers;
};

/* Loads a scenario file, or parses JSON text (// and block comments allowed). Expands the macros
 * ($hex, $repeat, $concat, ${conf.NAME}), then validates actors, steps and their fields. NULL
 * with a one-line reason in err. */
struct scenario *scenario_load(const char *path, char *err, size_t errsz);
struct scenario *scenario_parse(const char *json_text, char *err, size_t errsz);
/* scenario_parse with the caller's needs and numbers (o may be NULL). */
struct scenario *scenario_parse_with(const char *json_text, const struct scenario_parse_opts *o,
                                     char *err, size_t errsz);
void scenario_destroy(struct scenario *s);
const struct scenario_meta *scenario_get_meta(const struct scenario *s);

/* Plays the scenario. Returns 0 when it ran (verdict in r), -1 on bad arguments.
 * r must be scenario_result_finish'ed. */
int scenario_run(const struct scenario *s, const struct scenario_env *env,
                 struct scenario_result *r);
void scenario_result_finish(struct scenario_result *r);

const char *scenario_verdict_name(enum scenario_verdict v); /* "pass", "fail", "skip", "error" */
const char *scenario_dir_name(enum scenario_dir d); /* "out", "in", "close", "note" */

/* The result as one JSON object (id, verdict, failure fields, steps, log). malloc'd. */
char *scenario_result_json(const struct scenario *s, const struct scenario_result *r);

#endif
