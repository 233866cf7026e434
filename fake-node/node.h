/* node.h: the Android-like node: the device-token file, the per-connection session (challenge,
 * connect, pending, hello-ok, ticks, invoke answers) and the reconnect policy. */
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
	uint64_t t_open, t_hello;
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

/* True for an error that means "the device token was not accepted": fall back to the shared
 * token. */
bool node_error_is_auth(const char *details_code, const char *message, int close_code,
                        const char *close_reason);

/* ---- reconnect policy ---- */

#define NODE_COMPAT_RETRY_MS 6000 /* the Android app's pairing-screen reconnect cadence */
#define NODE_BACKOFF_MIN_MS 1000
#define NODE_BACKOFF_MAX_MS 30000

enum node_end {
	NODE_END_CLOSED = 0, /* the connection closed */
	NODE_END_NO_CHALLENGE, /* no connect.challenge within the connect timeout */
};

/* What one attempt saw, as far as the policy cares. */
struct node_attempt {
	enum node_end end;
	int close_code; /* CLOSED */
	const char *close_reason; /* CLOSED; NULL: "" */
	bool local_close; /* CLOSED: this side ended it (close_code says why) */
	bool socket_open; /* NO_CHALLENGE: the WebSocket was up, yet no challenge came */
	bool reached_gateway; /* this or an earlier attempt got connect.challenge */
	bool hello; /* this attempt got hello-ok */
	bool used_device_token;
	bool pending; /* connect.pending came */
	bool error; /* an error res to connect came (the last one below) */
	const char *error_details; /* its details.code, NULL when it had none */
	const char *error_message;
	bool garbage; /* the gateway sent a message that is not a JSON frame */
};

enum node_retry_kind {
	NODE_RETRY_SHARED_TOKEN, /* at once, with the shared token: the device token was refused */
	NODE_RETRY_COMPAT, /* after NODE_COMPAT_RETRY_MS: closed while waiting for approval */
	NODE_RETRY_BACKOFF, /* after the backoff, which then doubles up to NODE_BACKOFF_MAX_MS */
	NODE_GIVE_UP_REFUSED, /* the gateway said no for good, or is not a gateway */
	NODE_GIVE_UP_UNREACHABLE, /* nothing answered at the URL */
	NODE_GIVE_UP_TIMEOUT, /* waiting would pass the pairing deadline */
};

struct node_retry_state {
	int backoff_ms; /* the next backoff wait; starts at NODE_BACKOFF_MIN_MS */
	bool paired; /* hello-ok came on some attempt: reconnect until stopped, no deadline */
	uint64_t deadline_ms; /* give up pairing at this clock_mono_ms time */
};

struct node_retry {
	enum node_retry_kind kind;
	int wait_ms; /* the RETRY kinds: wait this long before the next attempt */
	struct node_retry_state next; /* the state for the attempt after */
};

/* The reconnect policy: what to do after attempt a ended at now_ms, given the state st. A pure
 * function of its arguments. */
struct node_retry node_retry_decide(const struct node_attempt *a, const struct node_retry_state *st,
                                    uint64_t now_ms);

#endif
