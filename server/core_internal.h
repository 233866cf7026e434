/* core_internal.h: state and helpers shared by the core's files (core.c: connections and timers,
 * core_connect.c: the handshake, core_pairing.c: pending requests and pairing records,
 * core_methods.c: requests after the handshake). Not part of the adapter contract. */
#ifndef CLAWPAIR_CORE_INTERNAL_H
#define CLAWPAIR_CORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core.h"
#include "errors.h"
#include "frame.h"
#include "identity.h"
#include "json.h"
#include "locality.h"
#include "random.h"
#include "store.h"

#define CORE_UUID_LEN 36
#define CORE_TOKEN_LEN 32
#define CORE_IP_MAX 64
#define CORE_SKEW_MS 120000
#define CORE_PROTOCOL_EXPECTED 4

enum conn_state { CONN_PREAUTH, CONN_HELD, CONN_AUTHED };

struct core_conn {
	struct core_conn *prev, *next;
	void *user;
	enum conn_state state;
	bool closing; /* close requested: the core sends nothing more */
	char id[CORE_UUID_LEN + 1];
	char peer_ip[CORE_IP_MAX];
	char ip[CORE_IP_MAX]; /* client ip: the peer, or the proxy's word for a trusted proxy */
	bool local; /* §8.10 */
	bool client_loopback; /* the client address is loopback (no remoteIp) */
	const char *locality_why; /* static text, for the log */
	char nonce[CORE_UUID_LEN + 1];
	uint64_t handshake_deadline;
	int64_t seq; /* last event seq sent */

	/* From the accepted (or held) connect. */
	char *connect_id;
	int protocol;
	bool is_node;
	char role[16];
	cJSON *scopes; /* effective scopes, array of strings */
	bool has_device;
	char device_id[IDENTITY_DEVICE_ID_LEN + 1];
	char public_key[IDENTITY_PK_B64_LEN + 1]; /* normalized */
	char request_id[CORE_UUID_LEN + 1]; /* held-open request */
	cJSON *live; /* a node's connect as node.list shows it (core_node_live), or NULL */
	unsigned n_deferred; /* its frames and close waiting for core_flush */

	/* core_index.c */
	struct core_conn *held_next; /* bucket chain of held sockets by request_id */
	struct core_conn *op_prev, *op_next; /* authenticated operators */
	struct core_conn *pre_prev, *pre_next; /* pre-auth sockets of its address and pool, oldest
	                                        * first ([LIMIT-4]) */
};

#define CORE_INDEX_BUCKETS 4096
struct core_ip_count;
struct core_deferred;

struct core {
	struct core_config cfg; /* defaults applied; strings owned */
	struct locality_addr *trusted; /* parsed cfg.trusted_proxies */
	struct core_io io;
	struct store *store;
	struct core_conn *conns;
	/* core_index.c: live (not closing) connections by what the core looks up per message. */
	struct core_ip_count *ip_counts[CORE_INDEX_BUCKETS];
	struct core_conn *held[CORE_INDEX_BUCKETS];
	struct core_conn *ops;
	unsigned n_held;
	size_t n_request_notes; /* pending requests noted per address, stale ones included */
	uint64_t evict_log_ms; /* when the last eviction was logged ([LIMIT-4]) */
	unsigned evicted_unlogged; /* evictions since */
	uint64_t started_ms;
	uint64_t next_tick_ms;
	/* No handshake deadline (pending expiry) falls before these: the timer run skips the scan
	 * of every connection (every pending request) until then, so a busy gateway's per-message
	 * timer run stays O(1). Earlier than the truth is harmless (one scan that resets it). */
	uint64_t preauth_scan_ms;
	uint64_t expiry_scan_ms;
	bool shutting_down;
	struct core_deferred *def_head, *def_tail; /* waiting for core_flush, in order */
};

/* core.c */
/* A handshake deadline (a pending request's expiresAtMs) at ms now exists: the next timer run
 * must look by then. */
void core_note_preauth_deadline(struct core *core, uint64_t ms);
void core_note_expiry(struct core *core, uint64_t ms);
void core_logf(struct core *core, enum core_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void core_send_text(struct core *core, struct core_conn *conn, char *text);
void core_send_event(struct core *core, struct core_conn *conn, const char *event, cJSON *payload,
                     bool with_seq);
void core_send_ok(struct core *core, struct core_conn *conn, const char *id, cJSON *payload);
/* Rejects an input: logs it once, sends the table's error res when id is given and the row has a
 * wire code, and closes when the row has a close code. message, extra and close_reason may be
 * NULL (table defaults); extra is consumed. */
void core_fail(struct core *core, struct core_conn *conn, const char *id, enum cp_err err,
               const char *message, cJSON *extra, const char *close_reason);
void core_close(struct core *core, struct core_conn *conn, int code, const char *reason);
/* Sends a pairing event to every authenticated operator with operator.pairing or operator.admin.
 * Consumes payload. */
void core_broadcast_pairing(struct core *core, const char *event, cJSON *payload);

/* core_index.c. Every change of a live connection's state goes through core_conn_set_state();
 * core_close() and core_conn_closed() take it out of the index. */
void core_index_add(struct core *core, struct core_conn *c);
void core_index_remove(struct core *core, struct core_conn *c);
void core_index_free(struct core *core);
void core_conn_set_state(struct core *core, struct core_conn *c, enum conn_state state);
unsigned core_count_preauth(struct core *core, const char *ip);
/* Held-open sockets from ip (all of them when ip is NULL), not counting except. */
unsigned core_count_held(struct core *core, const char *ip, const struct core_conn *except);
struct core_conn *core_find_held(struct core *core, const char *request_id,
                                 const struct core_conn *except);

/* core_index.c: the limits of spec §8.8 that count per client address. */
/* [LIMIT-4]: conn was just opened and indexed; when its address has more pre-auth sockets of its
 * pool (local or not) than the cap, the oldest of them is closed with PREAUTH_LIMIT_IP. */
void core_limit_preauth(struct core *core, struct core_conn *conn, uint64_t now_ms);
/* [LIMIT-2], [LIMIT-3]: may conn's connect be held open? existing is the device's pending
 * request (refreshed, so not counted; NULL when a new one would be created), holder the socket
 * that holds it now (superseded, so not counted). CP_OK, CP_ERR_PENDING_LIMIT_IP or
 * CP_ERR_PENDING_LIMIT_TOTAL. */
enum cp_err core_limit_pending(struct core *core, const struct core_conn *conn,
                               const cJSON *existing, const struct core_conn *holder);
/* A new pending request rec was written: it counts against its client address until it leaves
 * the store. */
void core_index_note_request(struct core *core, const cJSON *rec);
/* Counts every pending request of the store by client address (at start). */
void core_index_note_stored_requests(struct core *core);

/* core_connect.c */
void core_handle_connect(struct core *core, struct core_conn *conn, const struct frame *f,
                         uint64_t now_ms);
/* Answers conn's connect with hello-ok (issuing or reusing a device token) and marks it authed. */
void core_finish_hello(struct core *core, struct core_conn *conn, uint64_t now_ms);

/* core_pairing.c */
uint64_t core_json_u64(const cJSON *obj, const char *key);
bool core_conn_has_scope(const struct core_conn *conn, const char *scope);
bool core_is_node_request(const cJSON *rec);
/* Writes the paired record for request rec (taken from the pending table when in_store). On
 * success *device_out (may be NULL) gets a copy of the stored record. Returns 0 or -1. */
int core_pair_request(struct core *core, const cJSON *rec, bool in_store, uint64_t now_ms,
                      cJSON **device_out);
/* After a pairing is on disk: device.pair.resolved (+ node.pair.resolved), and hello-ok for the
 * connect held for request_id. */
void core_announce_approved(struct core *core, const char *request_id, const char *device_id,
                            bool node_role, uint64_t now_ms);
void core_announce_resolved(struct core *core, const char *request_id, const char *device_id,
                            bool node_role, const char *decision, uint64_t now_ms);
/* Removes an expired request, fails its held connect, announces decision "expired". */
int core_expire_request(struct core *core, const char *request_id, uint64_t now_ms);
/* Removes a request that a newer connect of its device replaces: its held connect (unless it is
 * except) gets PAIRING_SUPERSEDED, decision "superseded" is announced. Returns 0 or -1 (store). */
int core_supersede_request(struct core *core, const char *request_id,
                           const struct core_conn *except, uint64_t now_ms);
/* Sorted, deduplicated union of two string arrays (either may be NULL). */
cJSON *core_scope_set(const cJSON *a, const cJSON *b);
/* Every entry of scopes is a string that ceiling holds. */
bool core_scopes_within(const cJSON *scopes, const cJSON *ceiling);
/* The most a connect of this paired device may ask for role without an approval (TRUST-4): the
 * scopes of its token for role, revoked or not, else (no token) the record's scopes. */
const cJSON *core_scope_ceiling(const cJSON *paired, const char *role);
/* Device token for conn's role: reuses a live one covering the conn's scopes, else issues one.
 * *auth_out gets the hello-ok auth object. Returns 0 or -1 (store write failed). */
int core_ensure_token(struct core *core, struct core_conn *conn, uint64_t now_ms, cJSON **auth_out);
bool core_device_token_ok(struct core *core, const char *device_id, const char *public_key,
                          const char *role, const char *token);
bool core_token_eq(const char *a, const char *b);
cJSON *core_redact_paired(const cJSON *paired);
cJSON *core_node_summary(const cJSON *paired);

/* core_methods.c */
struct connect_params;
/* What node.list shows of a node's connect while it is connected (NODE-2). */
cJSON *core_node_live(const struct connect_params *cp);
/* Notes in conn->live when the connection got hello-ok (connectedAtMs). */
void core_node_live_authed(struct core_conn *conn, uint64_t now_ms);
void core_handle_request(struct core *core, struct core_conn *conn, const struct frame *f,
                         uint64_t now_ms);

#endif
