/* client.h: a small WebSocket client for gateways (one libwebsockets adapter: client_lws.c).
 * Used by clawpair-fake-node, clawpair-ctl, clawpair-conformance and the integration tests.
 * Single-threaded: every call that waits pumps the shared event loop, so many connections can
 * live on one context and make progress while any one of them is waited on. */
#ifndef CLAWPAIR_CLIENT_H
#define CLAWPAIR_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client_ctx;
struct client_conn;

/* A gateway certificate's SHA-256 fingerprint as this library prints it: "sha256:" and 64
 * lowercase hex digits (the hash of the certificate's DER encoding). */
#define CLIENT_TLS_FINGERPRINT_LEN 71
/* The start of the reason of a connect refused because the certificate did not match the pin. */
#define CLIENT_TLS_MISMATCH "TLS certificate mismatch"

struct client_ctx_opts {
	unsigned max_conns; /* fds to plan for; 0: 64 */
	size_t max_frame; /* largest frame accepted from a gateway; 0: 32 MiB */
	bool epoll; /* run lws on libev (epoll) when built with it, for thousands of conns;
	             * otherwise, or without libev, lws's own poll() loop. Also turns off lws's
	             * idle PING (300 s), whose timer costs linear time per message */
};

struct client_conn_opts {
	const char *url; /* ws://HOST:PORT[/path] or wss://HOST:PORT[/path] */
	const char *xff; /* X-Forwarded-For value, or NULL */
	const char *host_header; /* overrides Host, or NULL */
	const char *origin; /* Origin header, or NULL (default: none sent) */
	const char *extra_headers; /* more request header lines, each "Name: value\r\n", sent
				    * verbatim after the others (repeated names allowed), or NULL */
	int connect_timeout_ms; /* 0: 5000 */
	int *refused_status; /* client_connect: when not NULL, receives the HTTP status of a
			      * refused upgrade (0 when the connection failed otherwise) */
	const char *netns; /* open the TCP connection from inside this network namespace
				   * (a name under /run/netns, or a path); NULL: this one.
				   * Needs CAP_SYS_ADMIN. */
	const char *tls_fingerprint; /* wss://: pin the gateway's certificate by its SHA-256
				      * fingerprint (client_tls_fingerprint_parse): the chain is
				      * not checked against CAs nor the host name, but the leaf
				      * certificate must match, or the connect fails naming both
				      * fingerprints. NULL: verify against the system CAs and the
				      * URL's host. */
};

enum client_item_kind {
	CLIENT_ITEM_TEXT = 1, /* a text frame from the gateway */
	CLIENT_ITEM_CLOSE, /* the connection is closed (by the gateway, or failed) */
};

struct client_item {
	enum client_item_kind kind;
	char *text; /* TEXT: malloc'd, NUL-terminated; NULL for CLOSE */
	size_t len;
	int close_code; /* CLOSE: code from the close frame; 1006 when none was received */
	char close_reason[128];
	uint64_t at_ms; /* when it arrived, on the clock_mono_ms clock (protocol/clock.h) */
	bool binary; /* TEXT: the gateway sent a binary message */
	bool local_close; /* CLOSE: this side ended the connection (client_close, a failed
			      * connect, a timeout or an oversize frame); close_code then says why */
};

struct client_ctx *client_ctx_create(const struct client_ctx_opts *opts);
void client_ctx_destroy(struct client_ctx *ctx); /* NULL-safe; closes every conn */

/* Opens a WebSocket and waits until it is established. Returns 0 and *out, or -1 with a
 * one-line reason in err (refused, timeout, HTTP status of a refused upgrade, bad URL). */
int client_connect(struct client_ctx *ctx, const struct client_conn_opts *opts,
                   struct client_conn **out, char *err, size_t errsz);

/* After a connect failed on the gateway's TLS certificate: one line saying why (a pin mismatch
 * starts with CLIENT_TLS_MISMATCH and names the pinned and the presented fingerprints; an
 * untrusted certificate names the presented one, ready to pin); NULL otherwise. */
const char *client_tls_error(const struct client_conn *c);

/* A SHA-256 certificate fingerprint as people and tools write it: an optional "sha256:" or
 * "sha-256:" prefix (any case), then 64 hex digits (any case), which ':' may separate (as
 * `openssl x509 -fingerprint -sha256` prints them). Returns 0 with the 32 bytes in md (may be
 * NULL), or -1. */
int client_tls_fingerprint_parse(const char *s, unsigned char md[32]);
/* "sha256:" and the 64 lowercase hex digits of md. */
void client_tls_fingerprint_format(const unsigned char md[32],
                                   char out[CLIENT_TLS_FINGERPRINT_LEN + 1]);

/* Starts opening without waiting (for swarms); the conn reports CLOSE if it fails. */
int client_connect_async(struct client_ctx *ctx, const struct client_conn_opts *opts,
                         struct client_conn **out);
bool client_is_open(const struct client_conn *c); /* established and not closed */

/* Queues a frame. binary=false sends text. Returns 0, or -1 if the conn is closed. */
int client_send(struct client_conn *c, const void *data, size_t len, bool binary);
int client_send_text(struct client_conn *c, const char *text); /* strlen(text) bytes */

/* Next received item, waiting up to timeout_ms while pumping the loop for all conns.
 * Returns 1 with *item filled, 0 on timeout. After a CLOSE item the conn yields no more. */
int client_next(struct client_conn *c, int timeout_ms, struct client_item *item);
void client_item_finish(struct client_item *item);

/* Pumps the loop once, waiting at most timeout_ms; for callers that poll many conns. */
void client_service(struct client_ctx *ctx, int timeout_ms);
/* Items queued on c right now, without pumping. */
size_t client_pending_items(const struct client_conn *c);

/* Sends a close frame with code and reason (code 0: drop the TCP connection without one). */
void client_close(struct client_conn *c, int code, const char *reason);
void client_conn_destroy(struct client_conn *c); /* NULL-safe; closes if still open */

/* Local address/port of the TCP connection ("" if unknown). */
const char *client_local_address(const struct client_conn *c);

/* Monotonic ms when the WebSocket was established, 0 if it never was. */
uint64_t client_connected_at_ms(const struct client_conn *c);
/* HTTP status of the upgrade response (101 when established, e.g. 403 when refused; 0 if none). */
int client_http_status(const struct client_conn *c);

#endif
