/* harness.h: integration-test helpers: run the real clawpair-gateway on a free port with a fresh
 * state dir (under valgrind when CLAWPAIR_VALGRIND=1; tests/kit starts it), and speak the
 * protocol to it as a node or an operator through the client library, asserting exact frames
 * and close codes. */
#ifndef CLAWPAIR_TEST_HARNESS_H
#define CLAWPAIR_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "client.h"
#include "gateway.h"
#include "identity.h"

#define H_TOKEN "integration-token"

/* Starts the gateway on 127.0.0.1:0 with --token H_TOKEN, --trusted-proxy 127.0.0.1 and
 * --log-level warn (CLAWPAIR_GW_LOG overrides), plus extra (NULL-terminated, may be NULL), on a
 * fresh state dir owned by g. Returns 0 or -1. */
int h_gateway_start(struct kit_gateway *g, const char *const *extra);
/* The same gateway again on its state dir (stopped first if still running). Returns 0 or -1. */
int h_gateway_restart(struct kit_gateway *g, const char *const *extra);
/* SIGTERM, then waits (SIGKILL after the timeout). Returns the exit status, 128+signal, or -1.
 * Under valgrind an error shows as status 99. */
int h_gateway_stop(struct kit_gateway *g);

/* One connection under test. */
struct h_conn {
	struct client_conn *c;
	char nonce[64]; /* from connect.challenge */
	char connect_id[64]; /* id of the connect req sent */
	int close_code; /* once closed */
	char close_reason[128];
	bool closed;
	unsigned next_req; /* ids of h_send_req */
};

/* Opens a WebSocket. xff: X-Forwarded-For (with --trusted-proxy 127.0.0.1 that makes the client
 * remote), or NULL. Returns 0 or -1. */
int h_open(struct client_ctx *ctx, const struct kit_gateway *g, const char *xff, struct h_conn *hc);
void h_close(struct h_conn *hc);

/* The next frame, parsed; NULL on timeout or close (then hc->closed, close_code are set). */
cJSON *h_next(struct h_conn *hc, int timeout_ms);
/* Next frame that is not a tick event. */
cJSON *h_next_non_tick(struct h_conn *hc, int timeout_ms);
/* Waits for the event named event, skipping others; NULL when none comes. */
cJSON *h_wait_event(struct h_conn *hc, const char *event, int timeout_ms);
/* Waits for the res with that id, skipping events; NULL when none comes. */
cJSON *h_wait_res(struct h_conn *hc, const char *id, int timeout_ms);
/* Waits for the close, skipping frames. Returns the close code, or -1 on timeout. */
int h_wait_close(struct h_conn *hc, int timeout_ms);
/* True when no frame named event (or no frame at all when event is NULL; ticks are skipped)
 * arrives within ms and the conn stays open. */
bool h_quiet(struct h_conn *hc, const char *event, int ms);

/* Reads connect.challenge into hc->nonce. Returns 0 or -1. */
int h_challenge(struct h_conn *hc, int timeout_ms);

struct h_node_opts {
	int sig_version; /* 2 or 3 (0: 3) */
	const char *token; /* NULL: H_TOKEN */
	const char *display_name; /* NULL: "integration node" */
	const char *nonce; /* NULL: the challenge's */
	const char *req_id; /* NULL: "c1" */
	const char *role; /* NULL: "node" */
};
/* Sends a signed connect (challenge must have been read). Returns 0 or -1. */
int h_send_node_connect(struct h_conn *hc, const struct identity *id, const struct h_node_opts *o);

/* open + challenge + signed node connect; returns 0 or -1. The answer is left for the caller. */
int h_node_begin(struct client_ctx *ctx, const struct kit_gateway *g, const char *xff,
                 const struct identity *id, const struct h_node_opts *o, struct h_conn *hc);

/* Operator with the shared token and no device; scopes NULL-terminated (NULL: omitted). Waits
 * for hello-ok. Returns 0 or -1. */
int h_operator(struct client_ctx *ctx, const struct kit_gateway *g, const char *const *scopes,
               struct h_conn *hc);

/* Sends a req with a fresh id and waits for its res. params is consumed (NULL: {}). */
cJSON *h_call(struct h_conn *hc, const char *method, cJSON *params, int timeout_ms);
/* Sends a req without waiting; writes its id into id_out (>= 32 bytes). */
int h_send_req(struct h_conn *hc, const char *method, cJSON *params, char *id_out);

/* Accessors over frames (NULL-safe). */
const char *h_str(const cJSON *obj, const char *path); /* "payload.requestId" */
const cJSON *h_get(const cJSON *obj, const char *path);
bool h_is_res_ok(const cJSON *res);
/* error.code / error.details.code of a res, or "". */
const char *h_err_code(const cJSON *res);
const char *h_err_details_code(const cJSON *res);

#endif
