/* session.h: one gateway session on client.h: open the WebSocket, answer connect.challenge with a
 * connect built from a connect_spec, report what the gateway made of it (hello-ok,
 * connect.pending, an error res, a close); then requests (call) and events (wait_event).
 * Blocking: every wait pumps the shared client loop, so other conns of the context progress. */
#ifndef CLAWPAIR_CLIENT_SESSION_H
#define CLAWPAIR_CLIENT_SESSION_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "client.h"
#include "connect_build.h"

#define CLIENT_SESSION_DEFAULT_TIMEOUT_MS 10000

enum client_session_outcome {
	CLIENT_SESSION_HELLO = 0, /* the connect res is ok: hello-ok */
	CLIENT_SESSION_PENDING, /* connect.pending: held open, the answer comes later */
	CLIENT_SESSION_REFUSED, /* the connect res is an error */
	CLIENT_SESSION_CLOSED, /* the connection closed before an answer */
	CLIENT_SESSION_TIMEOUT, /* no answer in time */
	CLIENT_SESSION_NO_CHALLENGE, /* the WebSocket opened, but no connect.challenge came first */
	CLIENT_SESSION_UNREACHABLE, /* no WebSocket: refused, timed out, bad URL, upgrade refused */
	CLIENT_SESSION_FAILED, /* this side failed (out of memory, the send failed) */
};

struct client_session_opts {
	struct client_conn_opts conn; /* url and headers; conn.connect_timeout_ms 0: timeout_ms */
	int timeout_ms; /* each wait of client_session_connect; 0: the default above */
	const char *connect_id; /* id of the connect req; NULL: "connect" */
	const char *id_prefix; /* client_session_call ids are PREFIX-1, PREFIX-2...; NULL: "req" */
};

struct client_session;

/* A session on ctx (which must outlive it). opts is copied, but the strings it points to must
 * live until client_session_connect returns. NULL on allocation failure. */
struct client_session *client_session_create(struct client_ctx *ctx,
                                             const struct client_session_opts *opts);
/* NULL-safe; drops the connection (a close frame 1000 when it is still open). */
void client_session_destroy(struct client_session *s);

/* Opens the WebSocket, waits for connect.challenge, sends the connect req built by
 * connect_request_build over its nonce, and waits for the first answer. Once per session. */
enum client_session_outcome client_session_connect(struct client_session *s,
                                                   const struct connect_spec *spec);
/* After CLIENT_SESSION_PENDING: waits up to timeout_ms for the held connect's answer (HELLO,
 * REFUSED, CLOSED or TIMEOUT). Events that arrive meanwhile are kept for wait_event. */
enum client_session_outcome client_session_await(struct client_session *s, int timeout_ms);

/* The frame behind the last outcome: the connect res (HELLO, REFUSED), the connect.pending
 * event (PENDING), the first frame that was not a challenge (NO_CHALLENGE); else NULL.
 * Owned by the session, valid until the next call on it. */
const cJSON *client_session_frame(const struct client_session *s);
/* One line saying why the last wait did not give what it waited for ("" after a success). */
const char *client_session_why(const struct client_session *s);
/* The close seen on the connection: its code (0 while open) and reason. */
int client_session_close_code(const struct client_session *s);
const char *client_session_close_reason(const struct client_session *s);
bool client_session_is_open(const struct client_session *s);
/* The underlying connection (NULL before connect), for raw frames and client_close. */
struct client_conn *client_session_conn(const struct client_session *s);

/* Sends {"type":"req","id":PREFIX-N,"method":method,"params":params} (params owned, NULL: no
 * params key) and waits up to timeout_ms for the res with that id. Events that arrive meanwhile
 * are kept for wait_event; other frames are dropped. Returns the res (the caller frees it), or
 * NULL (client_session_why says why: a close, the timeout, a failed send). */
cJSON *client_session_call(struct client_session *s, const char *method, cJSON *params,
                           int timeout_ms);

/* The first event named name: a kept one, else the next to arrive within timeout_ms (other
 * events are kept, res frames dropped). Returns the event frame (the caller frees it) or NULL. */
cJSON *client_session_wait_event(struct client_session *s, const char *name, int timeout_ms);

/* "hello", "pending", "refused", "closed", "timeout", "no-challenge", "unreachable", "failed". */
const char *client_session_outcome_name(enum client_session_outcome o);

#endif
