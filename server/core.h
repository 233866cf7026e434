/* core.h: the I/O-free pairing core of clawpair-gateway. It takes parsed peer facts, text frames,
 * and a clock, and emits frames and close decisions through callbacks; the libwebsockets adapter
 * (lws_gateway.c) is the only thing that touches sockets. Unit tests drive it with a fake clock. */
#ifndef CLAWPAIR_CORE_H
#define CLAWPAIR_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct core;
struct core_conn;
struct store;

enum core_log_level { CORE_LOG_ERROR = 0, CORE_LOG_WARN, CORE_LOG_INFO, CORE_LOG_DEBUG };

/* What a zero field of struct core_config stands for. */
#define CORE_DEFAULT_PENDING_TTL_MS 300000
#define CORE_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define CORE_DEFAULT_TICK_INTERVAL_MS 30000
#define CORE_DEFAULT_MAX_PENDING 10240
#define CORE_DEFAULT_MAX_PENDING_PER_IP 32
#define CORE_DEFAULT_MAX_PREAUTH_PER_IP 32
#define CORE_DEFAULT_MAX_PAYLOAD 524288

/* hello-ok's policy.maxBufferedBytes: the adapter closes a peer that lets more events pile up. */
#define CORE_MAX_BUFFERED_BYTES 1572864
/* Unsent responses of one connection, counted apart from events ([LIMIT-7]): over this, queueing
 * another closes it as a slow consumer; a response never counts itself, so one answer of any
 * size goes out whole. */
#define CORE_MAX_RESPONSE_BYTES CORE_MAX_BUFFERED_BYTES

struct core_config {
	const char *token; /* shared gateway token; NULL: none accepted */
	const char *const *trusted_proxies; /* addresses whose proxy headers are believed (§8.10);
	                                    * each must parse with locality_addr_parse */
	size_t n_trusted_proxies;
	uint64_t pending_ttl_ms; /* 0: 300000 */
	uint64_t handshake_timeout_ms; /* 0: 10000 */
	uint64_t tick_interval_ms; /* 0: 30000 */
	unsigned max_pending; /* held-open connects in total; 0: 10240 */
	unsigned max_pending_per_ip; /* held-open connects per client IP; 0: 32 */
	unsigned max_preauth_per_ip; /* remote sockets before connect per client IP; 0: 32 */
	size_t max_payload; /* frame cap in bytes; 0: 524288 */
	bool no_local_auto_approve; /* local devices need approval too */
	bool compat_6836; /* behave like OpenClaw 2026.1.30 (tests only) */
	const char *server_version; /* hello-ok server.version */
	const char *server_host; /* hello-ok server.host */
};

/* What the adapter knows about the peer at upgrade time. Header values are every line of that
 * header joined with ',' in order; NULL when the header is absent. */
struct core_peer {
	const char *ip; /* socket peer address, e.g. "127.0.0.1", "::1", "10.77.0.2" */
	const char *host; /* Host header */
	const char *xff; /* X-Forwarded-For */
	const char *real_ip; /* X-Real-IP */
	const char *forwarded_host; /* X-Forwarded-Host */
	const char *forwarded; /* Forwarded (RFC 7239) */
	const char *origin; /* Origin */
};

struct core_io {
	void *user;
	/* Queue one text frame for the connection whose adapter pointer is conn_user. */
	void (*send)(void *user, void *conn_user, const char *text, size_t len);
	/* Optional: queue a response (the answer to one of the connection's own requests), which
	 * the adapter budgets apart from events ([LIMIT-7]). NULL: responses go through send. */
	void (*send_response)(void *user, void *conn_user, const char *text, size_t len);
	/* Close after the frames already queued are flushed. The core sends nothing more on this
	 * connection; the adapter still calls core_conn_closed once the socket is gone (later, never
	 * from inside this callback). */
	void (*close)(void *user, void *conn_user, int code, const char *reason);
	void (*log)(void *user, enum core_log_level level, const char *line);
};

/* now_ms is wall-clock milliseconds since the epoch everywhere (signedAt, expiresAtMs, ts). */
int core_create(const struct core_config *cfg, const struct core_io *io, struct store *store,
                uint64_t now_ms, struct core **out);
void core_destroy(struct core *core); /* NULL-safe; does not close sockets (see core_shutdown) */

/* A WebSocket was established: the core sends connect.challenge (or closes, over a limit or while
 * shutting down: the conn is still returned and core_conn_closed is still due). NULL only when
 * out of memory: the adapter then drops the socket itself. */
struct core_conn *core_conn_open(struct core *core, void *conn_user, const struct core_peer *peer,
                                 uint64_t now_ms);
/* One complete message. binary=true messages are invalid frames. */
void core_conn_message(struct core *core, struct core_conn *conn, const char *data, size_t len,
                       bool binary, uint64_t now_ms);
/* The socket is gone (either side closed). Frees conn. */
void core_conn_closed(struct core *core, struct core_conn *conn, uint64_t now_ms);

/* Runs expiries, handshake timeouts and ticks due at now_ms. Returns the absolute time of the
 * next deadline (UINT64_MAX when none). */
uint64_t core_run_timers(struct core *core, uint64_t now_ms);

/* Group commit. When the store batches (store_set_batching), every frame and close the core
 * emits after a change waits, in order, until the adapter calls core_flush: it makes the batch
 * durable (store_flush), then hands the waiting frames and closes to core_io. An adapter calls it
 * once per turn of its loop, when core_flush_due says something waits, and before it stops.
 * Returns 0, or -1 when the store could not be made durable: the waiting frames are dropped (an
 * ok, hello-ok or connect.pending must not speak of a change that may not be on disk) and the
 * gateway should stop; a restart reads what is on disk. With a write-through store nothing
 * waits. */
int core_flush(struct core *core);
bool core_flush_due(const struct core *core);

/* Graceful stop: every held-open connect gets GATEWAY_SHUTDOWN and close 1001, other
 * connections close 1001 too. The store stays consistent (pending records are kept). */
void core_shutdown(struct core *core, uint64_t now_ms);

/* Past hello-ok: its partial messages count against the authenticated budget ([LIMIT-5]). */
bool core_conn_authenticated(const struct core_conn *conn);
/* Neither authenticated nor held open: the adapter may close it to make room ([LIMIT-6]). */
bool core_conn_unfinished(const struct core_conn *conn);

struct core_stats {
	unsigned conns; /* open connections */
	unsigned preauth; /* before a successful or pending connect */
	unsigned held_open; /* pending connects held open */
	unsigned authed; /* past hello-ok */
	size_t pending_requests; /* in the store */
	size_t paired_devices; /* in the store */
};
void core_get_stats(const struct core *core, struct core_stats *out);

/* Self-check for tests: walks every connection and compares what it finds with the lookups
 * the core keeps per client address, requestId and role. */
bool core_index_consistent(struct core *core);

#endif
