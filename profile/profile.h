/* profile.h: client behaviour profiles: how a real pairing client waits for hello-ok, backs off
 * and answers a close or a refused connect, as data (one row per measured client) and one pure
 * decision function, profile_decide, which every reconnect of clawpair-fake-node goes through. */
#ifndef CLAWPAIR_PROFILE_H
#define CLAWPAIR_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How a profile answers the end of an attempt (the families of profile_decide). */
enum profile_policy {
	PROFILE_POLICY_ANDROID = 0, /* pairing cadence after a pairing close, else backoff (also the
	                               reference client of spec §10) */
	PROFILE_POLICY_GATEWAY_CLIENT, /* OpenClaw 2026.9.x GatewayClient: backoff, startup retry,
	                                  pause or exit on terminal refusals */
	PROFILE_POLICY_EXIT_ON_CLOSE, /* the process ends on any close (2026.1.30 node host) */
	PROFILE_POLICY_CAPPED_BACKOFF, /* backoff on any close, at most max_reconnects in a row */
};

struct profile {
	const char *name; /* what --profile takes */
	const char *summary; /* one line for --profile list */
	enum profile_policy policy;
	/* the connect it sends */
	const char *role, *client_id, *client_mode, *platform, *device_family, *version;
	const char *const *scopes;
	size_t n_scopes;
	int min_protocol, max_protocol;
	int sig; /* 2 or 3: the signature payload version it signs */
	/* 0: waits for hello-ok forever; else closes its own socket after this long without it */
	int hello_timeout_ms;
	int timeout_close_code;
	const char *timeout_close_reason;
	/* after an error res to connect it closes the socket itself (0: it waits for the close) */
	int error_close_code;
	const char *error_close_reason;
	/* backoff before reconnect n (n = 0, 1, ... since the last reset):
	 * min(max, initial * factor^n), then times (1 + jitter * r) for a uniform r in [0, 1) */
	int backoff_initial_ms;
	double backoff_factor;
	int backoff_max_ms;
	double backoff_jitter;
	bool hello_resets_backoff;
	/* with a shared token it connects with that alone and never sends its stored device token
	 * (2026.9.6: the device token is only a retry after a refused shared token) */
	bool shared_token_only;
	int pairing_retry_ms; /* ANDROID: the cadence after a close for pairing */
	/* ANDROID: an expired request (4408) is asked for again at the pairing cadence, and a
	 * gateway going away (1001, 1012) is waited out with the backoff, instead of giving up */
	bool repair_after_expiry, retry_after_shutdown;
	int max_reconnects; /* CAPPED_BACKOFF: reconnects without hello-ok before it stops */
	int exit_status; /* EXIT_ON_CLOSE: the status the process ends with */
	/* GATEWAY_CLIENT: a retryable UNAVAILABLE with details.reason startup-sidecars is retried
	 * after retryAfterMs (default, clamped to min..max) without growing the backoff; the client
	 * closes that socket with startup_close_code */
	int startup_retry_default_ms, startup_retry_min_ms, startup_retry_max_ms;
	int startup_close_code;
	const char *startup_close_reason;
	const char *basis; /* what the numbers are based on */
};

enum profile_id {
	PROFILE_REFERENCE = 0,
	PROFILE_ANDROID,
	PROFILE_NODE_HOST_2026_1_30,
	PROFILE_NODE_HOST_2026_9_6,
	PROFILE_OPENCLAW_NODE_0_14,
	PROFILE_COUNT,
};

/* The row of id, or of name (NULL when there is none). */
const struct profile *profile_get(enum profile_id id);
const struct profile *profile_find(const char *name);

/* The backoff before reconnect n since the last reset, with jitter draw r in [0, 1). */
int profile_backoff_ms(const struct profile *p, int n, double r);

enum profile_end {
	PROFILE_END_CLOSED = 0, /* the connection closed */
	PROFILE_END_NO_CHALLENGE, /* no connect.challenge within the tool's connect timeout */
};

/* What one attempt saw, as far as the policy cares. */
struct profile_attempt {
	enum profile_end end;
	int close_code; /* CLOSED */
	const char *close_reason; /* CLOSED; NULL: "" */
	bool local_close; /* CLOSED: this side ended it (close_code says why) */
	bool own_timeout; /* CLOSED: this side gave up waiting for hello-ok (hello_timeout_ms) */
	bool socket_open; /* NO_CHALLENGE: the WebSocket was up, yet no challenge came */
	bool reached_gateway; /* this or an earlier attempt got connect.challenge */
	bool hello; /* this attempt got hello-ok */
	bool used_device_token;
	bool pending; /* connect.pending came */
	bool error; /* an error res to connect came (the last one below) */
	const char *error_code; /* its error.code (NOT_PAIRED, UNAVAILABLE, ...) */
	const char *error_details; /* its details.code, NULL when it had none */
	const char *error_message;
	const char *error_reason; /* details.reason */
	const char *error_next_step; /* details.recommendedNextStep */
	bool error_no_pause; /* details.pauseReconnect is false */
	bool error_retryable; /* error.retryable is true */
	int error_retry_after_ms; /* error.retryAfterMs, -1 when absent */
	bool garbage; /* the gateway sent a message that is not a JSON frame */
};

enum profile_retry_kind {
	PROFILE_RETRY_SHARED_TOKEN, /* at once, with the shared token: the device token was refused */
	PROFILE_RETRY_PAIRING, /* after pairing_retry_ms: closed while waiting for approval */
	PROFILE_RETRY_BACKOFF, /* after the backoff, which then grows */
	PROFILE_RETRY_FIXED, /* after a delay the gateway asked for; the backoff does not grow */
	PROFILE_EXIT, /* the client process ends with exit_status */
	PROFILE_PAUSE, /* the client stays up but never reconnects by itself */
	PROFILE_GIVE_UP_REFUSED, /* the gateway said no for good, or is not a gateway */
	PROFILE_GIVE_UP_UNREACHABLE, /* nothing answered at the URL */
	PROFILE_GIVE_UP_TIMEOUT, /* waiting would pass the run's deadline */
};

struct profile_state {
	int failures; /* reconnects since the last backoff reset: n of profile_backoff_ms */
	int reconnects; /* reconnects since the last hello-ok (max_reconnects) */
	bool paired; /* hello-ok came on some attempt: reconnect until stopped, no deadline */
	uint64_t deadline_ms; /* give up pairing at this clock_mono_ms time */
};

struct profile_retry {
	enum profile_retry_kind kind;
	int wait_ms; /* the RETRY kinds: wait this long before the next attempt */
	int exit_status; /* EXIT */
	bool forget_device_token; /* the next attempt authenticates with the shared token */
	const char *why; /* a few words: what the client does and why (static) */
	struct profile_state next; /* the state for the attempt after */
};

/* A fresh state: nothing failed yet, deadline at deadline_ms. */
struct profile_state profile_state_init(uint64_t deadline_ms);

/* What client p does after attempt a ended at now_ms, given state st; r is the jitter draw in
 * [0, 1). A pure function of its arguments. */
struct profile_retry profile_decide(const struct profile *p, const struct profile_attempt *a,
                                    const struct profile_state *st, uint64_t now_ms, double r);

/* How client p ends an attempt whose connect got the error res of a (error set): *code and
 * *reason of the close it sends itself, *code 0 when it waits for the gateway's close. */
void profile_error_close(const struct profile *p, const struct profile_attempt *a, int *code,
                         const char **reason);

/* True for an error that means "the device token was not accepted": fall back to the shared
 * token. */
bool profile_error_is_auth(const char *details_code, const char *message, int close_code,
                           const char *close_reason);

#endif
