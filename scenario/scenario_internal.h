/* scenario_internal.h: what the interpreter's parts share: a loaded scenario, the run state of
 * its actors, and the helpers steps use to wait for frames and record failures. */
#ifndef CLAWPAIR_SCENARIO_INTERNAL_H
#define CLAWPAIR_SCENARIO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "client.h"
#include "connect_build.h"
#include "identity.h"
#include "matcher.h"
#include "scenario.h"
#include "strbuf.h"

#define SCENARIO_MAX_ACTORS 80
#define SCENARIO_DEFAULT_TIMEOUT_MS 5000
#define SCENARIO_CLOSE_AFTER_ERROR_MS 500 /* wait for the close that follows an error res */
/* RFC 6455 close codes that are not clawpair outcomes (those come from protocol/errors.h):
 * a client's ordinary close, and "closed without a close frame" */
#define SCENARIO_WS_CLOSE_NORMAL 1000
#define SCENARIO_WS_CLOSE_ABNORMAL 1006

/* ---------------------------------------------------------------- a loaded scenario */

enum scenario_ident {
	SCENARIO_IDENT_NONE = 0,
	SCENARIO_IDENT_FRESH,
	SCENARIO_IDENT_SAME_AS,
	SCENARIO_IDENT_SEED, /* the key of a fixed Ed25519 seed */
};

struct scenario_actor_def {
	const char *name;
	bool node;
	bool remote;
	enum scenario_ident ident;
	int same_as;
	uint8_t seed[IDENTITY_SEED_BYTES];
	const cJSON *scopes; /* array, or NULL: node [] / operator from the spec default */
	bool token_null; /* "token": null: no auth */
	const char *token; /* explicit token, or NULL: the environment's */
	const char
	        *bootstrap_token; /* auth.bootstrapToken (signed; then no auth.token by default) */
	const cJSON *override; /* merged into every connect of this actor */
	enum connect_sig sig;
	const char *display_name;
};

struct scenario {
	cJSON *root; /* the file with its macros expanded */
	struct scenario_meta meta;
	const char **needs;
	struct scenario_actor_def actors[SCENARIO_MAX_ACTORS];
	size_t n_actors;
	const cJSON *steps;
};

int scenario_find_actor(const struct scenario *s, const char *name);
int scenario_parse_sig(const char *v, enum connect_sig *out);
/* "headers" of an open or connect step: an array of one-line "Name: value" strings. */
int scenario_check_headers(const cJSON *st, const char *where, char *err, size_t errsz);

/* The macros (scenario_value.c). A copy of root with every macro object turned into its string
 * and every "${conf.NAME}" into its number, except a send step's "text", which stays a macro
 * (checked here) because its bytes may hold a NUL. NULL with err. */
cJSON *scenario_expand(const cJSON *root, const struct scenario_parse_opts *o, char *err,
                       size_t errsz);
/* The bytes a text value stands for (a string or a macro), appended to out. 0 or -1 with err. */
int scenario_value_bytes(const cJSON *v, struct strbuf *out, char *err, size_t errsz);
bool scenario_is_macro(const cJSON *v);

/* ---------------------------------------------------------------- a run */

struct scenario_inframe {
	struct scenario_inframe *next;
	char *text;
	cJSON *json; /* NULL when not JSON */
	uint64_t at_ms;
};

struct scenario_actor {
	const struct scenario_actor_def *def;
	struct identity id;
	bool has_id;
	struct client_conn *conn;
	uint64_t t_connect; /* the last connect or open */
	bool opened_only; /* the last was an open: no connect was sent on this socket */
	char connect_id[32];
	bool connect_answered;
	struct scenario_inframe *inbox, *inbox_tail;
	bool closed; /* the current conn is closed */
	int close_code;
	char close_reason[128];
	int refused_status; /* HTTP status of the last refused upgrade, 0 if none */
	uint64_t close_at;
	char xff[24];
	unsigned next_req;
	char *device_token;
};

struct scenario_run {
	const struct scenario *s;
	const struct scenario_env *env;
	struct scenario_result *r;
	struct client_ctx *ctx;
	struct scenario_actor actors[SCENARIO_MAX_ACTORS];
	struct matcher_vars vars;
	uint64_t t0;
	unsigned xff_local;
	/* the failure being built */
	char *expected, *actual;
	char *skip; /* a step found the environment lacking: the verdict is SKIP, with this reason */
};

/* One kind of step: its "do", its keys (besides actor, do, capture, timeout_ms, note), whether
 * it needs an actor, and how it is played (a is NULL for steps without an actor). */
typedef int (*scenario_step_fn)(struct scenario_run *run, struct scenario_actor *a,
                                const cJSON *st);
struct scenario_step_kind {
	const char *name;
	const char *const *keys;
	bool needs_actor;
	scenario_step_fn play;
};
const struct scenario_step_kind *scenario_step_kind(const char *op);

/* malloc'd printf; NULL on failure */
char *scenario_fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
/* Adds a log entry (and streams it to the env's log callback). */
void scenario_log(struct scenario_run *run, const char *actor, enum scenario_dir dir,
                  const char *text, uint64_t at_ms);
/* Records a failure of the current step (takes both strings; NULL: "?"). Returns -1. */
int scenario_fail_with(struct scenario_run *run, char *expected, char *actual);

/* Moves what the client library received into the actors' inboxes (scenario_drain), after
 * servicing the connections for up to ms (scenario_pump). */
void scenario_drain(struct scenario_run *run);
void scenario_pump(struct scenario_run *run, int ms);
void scenario_drop_frame(struct scenario_actor *a, struct scenario_inframe *f);
int scenario_step_timeout(const struct scenario_run *run, const cJSON *st);
long scenario_since_connect(const struct scenario_actor *a, uint64_t at);
/* "closed 1008 'pairing required' 13 ms after connect" */
char *scenario_closed_text(const struct scenario_actor *a);
/* A short digest of what is in the inbox, for "nothing matched" reports. */
char *scenario_inbox_digest(const struct scenario_actor *a);
/* text + ", then closed ..." when the actor's connection has closed (takes text). */
char *scenario_with_close(const struct scenario_actor *a, char *text);
/* Waits up to ms for the close that follows an error res, for a complete "actual". */
void scenario_settle_close(struct scenario_run *run, struct scenario_actor *a, int ms);
int scenario_captures(struct scenario_run *run, const cJSON *st, const cJSON *frame);

bool scenario_is_event(const struct scenario_inframe *f, const char *name);
bool scenario_is_res(const struct scenario_inframe *f, const char *id);

/* Waits for a frame accepted by pick (1: take it; -1: a hard failure, already recorded).
 * Returns the frame (still in the inbox), or NULL with the failure recorded. */
typedef int (*scenario_pick_fn)(struct scenario_run *run, struct scenario_actor *a,
                                struct scenario_inframe *f, void *arg);
struct scenario_inframe *scenario_wait_frame(struct scenario_run *run, struct scenario_actor *a,
                                             int timeout_ms, scenario_pick_fn pick, void *arg,
                                             const char *expected);
/* Waits for the actor's connection to close and checks want's "code" and "reason". */
int scenario_expect_close(struct scenario_run *run, struct scenario_actor *a, const cJSON *want,
                          int timeout_ms);
int scenario_send_json(struct scenario_run *run, struct scenario_actor *a, const cJSON *frame);

/* The steps that open sockets (scenario_connect.c). */
void scenario_actor_reset_conn(struct scenario_actor *a);
int scenario_step_open(struct scenario_run *run, struct scenario_actor *a, const cJSON *st);
int scenario_step_connect(struct scenario_run *run, struct scenario_actor *a, const cJSON *st);
int scenario_step_expect_hello(struct scenario_run *run, struct scenario_actor *a, const cJSON *st);

#endif
