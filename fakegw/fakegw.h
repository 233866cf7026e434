/* fakegw.h: a scripted gateway that grades clients, with no I/O: it sends challenges, answers
 * each connect as a case's script says (hello-ok, held pending, an outcome, silence, hostile
 * frames, a close) and records what the client did on every connection. An adapter
 * (fakegw_lws.h) feeds it sockets; fakegw_grade.h judges what it recorded. */
#ifndef CLAWPAIR_FAKEGW_H
#define CLAWPAIR_FAKEGW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "errors.h"
#include "identity.h"

#define FAKEGW_MAX_ACTIONS 8
#define FAKEGW_NEVER INT64_MAX

/* How a connect is answered. */
enum fakegw_answer {
	FAKEGW_ANSWER_HELLO = 0, /* hello-ok at once, with a device token */
	FAKEGW_ANSWER_PENDING, /* connect.pending, held; after hold_ms `then` */
	FAKEGW_ANSWER_SILENT, /* nothing: the connect stays unanswered, without ticks */
};

/* What ends a hold. */
enum fakegw_then {
	FAKEGW_THEN_NOTHING = 0, /* held until the client gives up */
	FAKEGW_THEN_HELLO, /* hello-ok on the held socket */
	FAKEGW_THEN_OUTCOME, /* the outcome's error response (when it has a wire code) and close */
};

/* Hostile frames sent right after hello-ok (a bit mask). */
enum {
	FAKEGW_HOSTILE_UNKNOWN_EVENT = 1u << 0,
	FAKEGW_HOSTILE_BAD_SEQ = 1u << 1,
	FAKEGW_HOSTILE_HUGE = 1u << 2, /* an event of FAKEGW_HUGE_BYTES */
	FAKEGW_HOSTILE_GARBAGE = 1u << 3, /* text that is not JSON, sent last */
};
#define FAKEGW_HUGE_BYTES (1024u * 1024u)

/* What the gateway does with one connect of a device. */
struct fakegw_action {
	enum fakegw_answer answer;
	int64_t hold_ms; /* PENDING: how long before `then` (FAKEGW_NEVER: never) */
	enum fakegw_then then;
	enum cp_err outcome; /* THEN_OUTCOME */
	/* close with close_code and close_reason close_after_ms after the answer (hello-ok,
	 * pending or silence); close_code 0: no such close */
	int close_code;
	char close_reason[124];
	int64_t close_after_ms;
	int64_t ticks_for_ms; /* after hello-ok: ticks stop after this long (FAKEGW_NEVER) */
	unsigned hostile;
};

struct fakegw_script {
	struct fakegw_action actions[FAKEGW_MAX_ACTIONS]; /* the nth connect of a device takes
	                                                   * actions[n]; the last one repeats */
	size_t n_actions;
	int64_t tick_ms; /* hello-ok's policy.tickIntervalMs, and the period of ticks */
	const char
	        *shared_token; /* what the runner gave the client (the leak check looks for it) */
};

/* Parses a case's "steps" (one object per connect of a device: {"answer": "hello-ok" |
 * "pending" | "silent", "holdMs", "then": "hello-ok" | "outcome", "outcome": "CP_ERR_...",
 * "close": CODE, "reason", "closeAfterMs" (from the answer), "ticksForMs", "hostile": [...]})
 * and "gateway" ({"tickMs"}). Times are ms multiplied by scale, "never", or "hold" (hold_ms, the
 * runner's hold window). Returns 0, or -1 with why. */
int fakegw_script_parse(const cJSON *steps, const cJSON *gateway, double scale, int64_t hold_ms,
                        struct fakegw_script *out, char *why, size_t whysz);

enum fakegw_closer {
	FAKEGW_OPEN = 0, /* not closed yet */
	FAKEGW_BY_CLIENT, /* the client's close frame came first */
	FAKEGW_BY_GATEWAY, /* the script closed it */
	FAKEGW_NO_FRAME, /* the TCP connection ended without a close frame */
};

/* What one connection showed. Times are ms since the gateway was created; -1: did not happen. */
struct fakegw_conn_obs {
	int device; /* index of its device (by first connect), -1 when no device came */
	unsigned nth; /* the nth connect of that device, from 0 */
	int64_t open_ms, connect_ms, pending_ms, hello_ms, close_ms;
	int64_t last_tx_ms; /* the last frame the gateway sent before the close */
	char nonce[40];
	bool connect_seen, second_connect;
	char *params_error; /* why the connect params did not parse, or NULL */
	bool has_device;
	bool nonce_ok;
	char *nonce_sent; /* device.nonce as sent, or NULL */
	bool id_ok; /* device.id is the hash of device.publicKey */
	bool key_ok; /* device.publicKey parsed */
	int sig_version; /* 3 or 2: the payload the signature verifies over; 0: neither */
	char device_id[IDENTITY_DEVICE_ID_LEN + 1]; /* as sent (cut) */
	char public_key[48]; /* normalized */
	char *auth_token, *auth_device_token; /* as sent, or NULL */
	char issued_token[33]; /* the device token its hello-ok carried, or "" */
	int close_code;
	char close_reason[124];
	enum fakegw_closer closer;
	char *leak; /* a non-connect frame that carried a credential: what it carried */
	unsigned frames_in;
	char request_id[37];
};

struct fakegw_obs {
	struct fakegw_conn_obs *v;
	size_t n;
	size_t n_devices;
	int64_t end_ms; /* when fakegw_close_all ended the case, -1 before: what comes after is
	                 * the runner's doing, not the client's */
};

/* The adapter's side: send one text frame on a connection (binary when binary), or close it
 * with a code and reason after what was sent before. */
struct fakegw_io {
	void (*send)(void *conn_user, const char *text, size_t len);
	void (*close)(void *conn_user, int code, const char *reason);
};

/* A transcript line, for the reports: conn is the connection's index, dir ">" (gateway to
 * client), "<" (client to gateway), "close" or "#". */
typedef void (*fakegw_log_fn)(void *user, int64_t t_ms, size_t conn, const char *dir,
                              const char *text);

struct fakegw;
struct fakegw_conn;

/* now_ms: the caller's monotonic clock, which every later call uses; wall_ms: the wall clock
 * at the same moment (for ts fields). */
struct fakegw *fakegw_create(const struct fakegw_script *s, const struct fakegw_io *io,
                             int64_t now_ms, int64_t wall_ms);
void fakegw_destroy(struct fakegw *gw);
void fakegw_set_log(struct fakegw *gw, fakegw_log_fn fn, void *user);
/* A WebSocket is up: the challenge goes out. NULL when out of memory (then close it). */
struct fakegw_conn *fakegw_open(struct fakegw *gw, void *conn_user, int64_t now_ms);
/* One whole message from the client. */
void fakegw_message(struct fakegw_conn *c, const char *text, size_t len, bool binary,
                    int64_t now_ms);
/* The connection is gone (code 1006 and closer FAKEGW_NO_FRAME when no close frame came).
 * c is not used by the core after this, and conn_user is forgotten. */
void fakegw_closed(struct fakegw_conn *c, int code, const char *reason, enum fakegw_closer closer,
                   int64_t now_ms);
/* Runs what is due: holds that end, ticks, closes. */
void fakegw_poll(struct fakegw *gw, int64_t now_ms);
/* Closes every open connection with code and reason (the end of a case). */
void fakegw_close_all(struct fakegw *gw, int code, const char *reason, int64_t now_ms);
/* What was seen so far. */
const struct fakegw_obs *fakegw_obs(const struct fakegw *gw);
/* How many connections are open. */
size_t fakegw_open_count(const struct fakegw *gw);

#endif
