/* node.h: the fake node: the device-token file and the per-connection session (challenge,
 * connect as its client profile sends it, pending, hello-ok, ticks, invoke answers); the
 * reconnect policy is profile/'s. */
#ifndef CLAWPAIR_NODE_H
#define CLAWPAIR_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "client.h"
#include "clock.h"
#include "connect_build.h"
#include "identity.h"
#include "profile.h"

/* Device tokens per gateway URL, in a small JSON file next to the identity (mode 0600):
 * {"version":1,"deviceId":"...","tokens":{"ws://HOST:PORT":"TOKEN"}}.
 * node_token_load returns a malloc'd token or NULL; node_token_save with token NULL forgets it. */
char *node_token_load(const char *path, const char *device_id, const char *url);
int node_token_save(const char *path, const char *device_id, const char *url, const char *token);
/* "<identity path without .json>.tokens.json" into out. */
void node_token_path(const char *identity_path, char *out, size_t outsz);

struct node_config {
	const char *url;
	const char *shared_token;
	const char *xff; /* X-Forwarded-For, or NULL */
	const char *netns; /* connect from this network namespace, or NULL */
	const char *tls_fingerprint; /* wss://: the pinned gateway certificate, or NULL */
	const char *display_name;
	const char *const *commands;
	size_t n_commands;
	enum connect_sig sig;
	int connect_timeout_ms;
	const struct profile *profile; /* the client it behaves like; NULL: android */
};

enum node_state {
	NODE_S_OPENING = 0, /* waiting for the WebSocket and connect.challenge */
	NODE_S_CONNECT_SENT,
	NODE_S_PENDING, /* connect.pending received: held open */
	NODE_S_READY, /* hello-ok received */
	NODE_S_CLOSED,
};

enum node_ev {
	NODE_EV_NONE = 0,
	NODE_EV_CHALLENGE, /* challenge answered with connect */
	NODE_EV_PENDING, /* connect.pending: request_id, fingerprint */
	NODE_EV_HELLO, /* hello-ok: device_token when issued */
	NODE_EV_ERROR, /* an error res to connect: error_code, details_code, request_id */
	NODE_EV_TICK,
	NODE_EV_INVOKE, /* node.invoke.request answered */
	NODE_EV_OTHER, /* any other frame */
	NODE_EV_GARBAGE, /* a message that is not a JSON frame */
	NODE_EV_CLOSE, /* close_code, close_reason */
};

struct node_event {
	enum node_ev kind;
	cJSON *frame; /* the parsed frame (owned), NULL for CLOSE / GARBAGE */
	const char *text; /* the raw message (borrowed from the item) */
	int close_code;
	const char *close_reason;
	bool local_close;
	const char *request_id; /* PENDING; ERROR when details carry one */
	const char *device_token; /* HELLO */
	const char *error_code, *details_code, *message; /* ERROR */
	const char *details_reason, *next_step; /* ERROR: details.reason, recommendedNextStep */
	bool retryable, no_pause; /* ERROR: error.retryable, details.pauseReconnect false */
	int retry_after_ms; /* ERROR: error.retryAfterMs, -1 when absent */
	const char *command; /* INVOKE */
	uint64_t ms_since_open;
};

struct node_session {
	struct client_conn *conn;
	const struct node_config *cfg;
	const struct identity *id;
	enum node_state state;
	char connect_id[32];
	unsigned next_req;
	const char *auth_token; /* what this attempt sends: the device token or the shared one */
	bool with_device_token;
	uint64_t t_open, t_connect, t_hello; /* clock_mono_ms: opened, connect sent, hello-ok */
	char fingerprint[IDENTITY_FINGERPRINT_LEN + 1];
};

/* Starts an attempt (async connect). auth_token: the device token or the shared token. */
int node_session_open(struct node_session *s, struct client_ctx *ctx, const struct node_config *cfg,
                      const struct identity *id, const char *auth_token, bool with_device_token,
                      char *err, size_t errsz);
/* Advances the session with one item and describes what happened. ev must be finished. */
void node_session_handle(struct node_session *s, const struct client_item *it,
                         struct node_event *ev);
void node_event_finish(struct node_event *ev);
/* Closes (1000) and frees the connection. */
void node_session_end(struct node_session *s);

#endif
