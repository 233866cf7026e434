/* lws_gateway.h: the libwebsockets adapter of clawpair-gateway. It owns the lws context, one vhost
 * per listen address, the per-connection send queues and the timer, and drives the I/O-free core.
 * Nothing outside lws_gateway.c knows about libwebsockets. */
#ifndef CLAWPAIR_LWS_GATEWAY_H
#define CLAWPAIR_LWS_GATEWAY_H

#include <signal.h>
#include <stddef.h>

#include "core.h"

struct gateway;
struct store;

#define GATEWAY_HOST_MAX 64

struct gateway_listen {
	char host[GATEWAY_HOST_MAX]; /* "127.0.0.1", "::1", "0.0.0.0", "::" */
	int port; /* 0: the kernel picks one */
};

/* What a zero field of the limits of struct gateway_opts stands for (spec §8.8). */
#define GATEWAY_FD_HEADROOM 64 /* descriptors kept free of connections: store, listeners, loop */
#define GATEWAY_DEFAULT_MAX_CONNECTIONS 65536 /* less when the descriptor limit is lower */
#define GATEWAY_LOOPBACK_RESERVE 32 /* connections of the total only loopback peers may use */
#define GATEWAY_DEFAULT_MAX_UPGRADING_PER_IP 32
#define GATEWAY_DEFAULT_MAX_UPGRADING 1024
#define GATEWAY_DEFAULT_PARTIAL_UNAUTH (16u * 1024u * 1024u)
#define GATEWAY_DEFAULT_PARTIAL_AUTH (64u * 1024u * 1024u)
#define GATEWAY_DEFAULT_MESSAGE_TIMEOUT_MS 30000

struct gateway_opts {
	const struct gateway_listen *listen;
	size_t n_listen;
	const struct core_config *core; /* copied by core_create */
	struct store *store; /* borrowed; outlives the gateway */
	enum core_log_level log_level;
	/* TLS on every listen address (wss://): PEM files, checked beforehand (server/tls.h);
	 * NULL: cleartext ws:// */
	const char *tls_cert_path, *tls_key_path;
	/* [LIMIT-6]: TCP connections in total; 0: 65536. Never more than the descriptor limit
	 * less GATEWAY_FD_HEADROOM (lowered to that, with a warning). */
	unsigned max_connections;
	/* [LIMIT-4]: connections of one peer address that have not completed the WebSocket
	 * upgrade (trusted proxies are not counted); over it an idle one is closed; 0: 32. */
	unsigned max_upgrading_per_ip;
	/* [LIMIT-4]: the same whatever the address; 0: 1024. */
	unsigned max_upgrading;
	/* [LIMIT-5]: bytes of partial messages, gateway-wide, of connections before hello-ok and
	 * of authenticated ones; 0: 16 MiB and 64 MiB. */
	size_t max_partial_unauth, max_partial_auth;
	uint64_t message_timeout_ms; /* [LIMIT-5]; 0: 30000 */
};

/* Creates the core and the lws context and binds every listen address. Returns 0, or -1 with a
 * one-line reason in err (e.g. "cannot listen on 127.0.0.1:18789"). */
int gateway_create(const struct gateway_opts *opts, struct gateway **out, char *err, size_t errsz);
/* Frees everything; connections still open are dropped. NULL-safe. */
void gateway_destroy(struct gateway *gw);

/* The port listen address i is bound to (the real one when 0 was asked), or -1. */
int gateway_listen_port(const struct gateway *gw, size_t i);

/* Serves until *stop becomes non-zero, then stops gracefully: the core closes every connection
 * (held-open connects get GATEWAY_SHUTDOWN and 1001) and the loop runs until the sockets are gone
 * or flush_ms passed. Returns 0, or -1 when the event loop failed. */
int gateway_run(struct gateway *gw, volatile sig_atomic_t *stop, int flush_ms);

/* Wakes gateway_run from its wait so it sees *stop; safe to call from a signal handler. */
void gateway_wake(struct gateway *gw);

/* Writes one log line to stderr when level passes the filter. */
void gateway_log(struct gateway *gw, enum core_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#endif
