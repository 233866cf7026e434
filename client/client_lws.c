/* client_lws.c: the WebSocket client of client.h on libwebsockets (the only client file that
 * includes libwebsockets.h). */
#define _GNU_SOURCE /* setns */
#include "client.h"
#include "clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#ifdef CLAWPAIR_WITH_LIBEV
#include <ev.h>
#endif

#define DEFAULT_MAX_CONNS 64
#define DEFAULT_MAX_FRAME (32u * 1024u * 1024u)
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
/* lws_service() sleeps until its next scheduled event; a wake-up timer bounds every wait. */
#define SERVICE_SLICE_MS 50

struct out_frame {
	struct out_frame *next;
	size_t len;
	bool binary;
	unsigned char buf[]; /* LWS_PRE headroom, then the payload */
};

struct in_item {
	struct in_item *next;
	struct client_item item;
};

struct client_conn {
	struct client_ctx *ctx;
	struct client_conn *prev, *next; /* ctx->conns */
	struct lws *wsi;

	char *host; /* host part of the URL */
	char *path; /* "/..." */
	char *authority;
	char *host_header;
	char *xff;
	char *origin;
	char *extra_headers;
	int port;

	bool tls; /* wss:// */
	bool pinned; /* tls_fingerprint given: pin[] is what the leaf certificate must hash to */
	unsigned char pin[32];
	bool pin_matched; /* the leaf certificate of this connection matched pin[] */
	char tls_error[256]; /* why the TLS handshake was refused, "" when it was not */
	const char *tls_refusal; /* the same in a few words, for the CLOSE item */

	bool established;
	bool finished; /* a CLOSE item was queued: no more items */
	bool close_queued; /* client_close was called: close after the queue drains */
	int close_code; /* what client_close asked for */
	char close_reason[124];
	bool peer_closed; /* a close frame arrived from the gateway */
	int peer_code;
	char peer_reason[128];
	bool local_abort; /* this side ended it: local_code/local_reason say why */
	int local_code;
	char local_reason[128];
	int http_status;

	uint64_t connect_deadline_ms;
	uint64_t connected_at_ms;
	char local_addr[64];

	struct out_frame *out_head, *out_tail;
	struct in_item *in_head, *in_tail;
	size_t n_items;

	unsigned char *rx; /* reassembly of a fragmented message */
	size_t rx_len, rx_cap;
	bool rx_binary;
};

struct client_ctx {
	struct lws_context *lws;
	/* ws:// conns, and wss:// ones made on first use (creating the TLS context of the CA one
	 * loads the system's CA bundle, which takes tens of ms) */
	struct lws_vhost *vh_plain, *vh_pinned, *vh_ca;
	size_t max_frame;
	struct client_conn *conns;
	struct client_conn *connecting; /* conn whose lws_client_connect_via_info is running */
	lws_sorted_usec_list_t wake;
	uint64_t next_deadline_ms; /* earliest connect deadline of a conn not yet upgraded */
	bool no_idle_check; /* client_ctx_opts.epoll: see no_idle_check */
#ifdef CLAWPAIR_WITH_LIBEV
	struct ev_loop *loop; /* NULL: lws's poll() loop */
	ev_timer ev_wake;
	ev_timer ev_pump; /* see client_service */
#endif
};

static void copy_reason(char *dst, size_t dstsz, const char *src, size_t len)
{
	if (len >= dstsz)
		len = dstsz - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static void push_item(struct client_conn *c, struct in_item *it)
{
	it->item.at_ms = clock_mono_ms();
	it->next = NULL;
	if (c->in_tail)
		c->in_tail->next = it;
	else
		c->in_head = it;
	c->in_tail = it;
	c->n_items++;
}

static void push_text(struct client_conn *c, unsigned char *data, size_t len, bool binary)
{
	struct in_item *it = calloc(1, sizeof(*it));

	if (!it) {
		free(data);
		return;
	}
	it->item.kind = CLIENT_ITEM_TEXT;
	it->item.text = (char *)data;
	it->item.len = len;
	it->item.binary = binary;
	push_item(c, it);
}

static void free_out_queue(struct client_conn *c)
{
	while (c->out_head) {
		struct out_frame *f = c->out_head;

		c->out_head = f->next;
		free(f);
	}
	c->out_tail = NULL;
}

/* Queues the one CLOSE item of a connection and forgets the wsi. */
static void finish(struct client_conn *c, struct lws *wsi)
{
	struct in_item *it;

	if (wsi && c->wsi == wsi)
		c->wsi = NULL;
	if (wsi)
		lws_set_wsi_user(wsi, NULL);
	if (c->finished)
		return;
	c->finished = true;
	c->established = false;
	free_out_queue(c);
	free(c->rx);
	c->rx = NULL;
	c->rx_len = c->rx_cap = 0;

	it = calloc(1, sizeof(*it));
	if (!it)
		return;
	it->item.kind = CLIENT_ITEM_CLOSE;
	if (c->local_abort) {
		it->item.close_code = c->local_code;
		snprintf(it->item.close_reason, sizeof(it->item.close_reason), "%s",
		         c->local_reason);
		it->item.local_close = true;
	} else if (c->peer_closed) {
		it->item.close_code = c->peer_code;
		snprintf(it->item.close_reason, sizeof(it->item.close_reason), "%s",
		         c->peer_reason);
	} else if (c->close_queued) {
		it->item.close_code = c->close_code ? c->close_code : 1006;
		snprintf(it->item.close_reason, sizeof(it->item.close_reason), "%s",
		         c->close_reason);
		it->item.local_close = true;
	} else {
		it->item.close_code = 1006;
		snprintf(it->item.close_reason, sizeof(it->item.close_reason), "%s",
		         "connection lost without a close frame");
	}
	push_item(c, it);
}

static void set_local_abort(struct client_conn *c, int code, const char *reason)
{
	if (c->local_abort || c->peer_closed)
		return;
	c->local_abort = true;
	c->local_code = code;
	snprintf(c->local_reason, sizeof(c->local_reason), "%s", reason);
}

static void note_local_address(struct client_conn *c, struct lws *wsi)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "";
	int fd = lws_get_socket_fd(wsi);

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(c->local_addr, sizeof(c->local_addr), "%s:%u", ip,
		         (unsigned)ntohs(sin->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(c->local_addr, sizeof(c->local_addr), "[%s]:%u", ip,
		         (unsigned)ntohs(sin6->sin6_port));
	}
}

static int close_for_oom(struct client_conn *c, struct lws *wsi)
{
	set_local_abort(c, 1011, "out of memory");
	c->close_queued = true;
	c->close_code = LWS_CLOSE_STATUS_UNEXPECTED_CONDITION;
	snprintf(c->close_reason, sizeof(c->close_reason), "out of memory");
	free_out_queue(c);
	lws_callback_on_writable(wsi);
	return 0;
}

static int on_receive(struct client_conn *c, struct lws *wsi, const void *in, size_t len)
{
	bool first = lws_is_first_fragment(wsi);
	bool final = lws_is_final_fragment(wsi);
	size_t need;

	if (c->close_queued || c->local_abort)
		return 0; /* closing: the rest of the message is not wanted */
	if (first) {
		c->rx_len = 0;
		c->rx_binary = lws_frame_is_binary(wsi) != 0;
	}
	need = c->rx_len + len + 1;
	if (need - 1 > c->ctx->max_frame) {
		char why[128];

		/* returning -1 from here makes lws 4.1 write past its rx buffer: close from
		 * the writeable callback instead */
		snprintf(why, sizeof(why), "message from the gateway exceeds %zu bytes",
		         c->ctx->max_frame);
		set_local_abort(c, 1009, why);
		c->close_queued = true;
		c->close_code = LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE;
		snprintf(c->close_reason, sizeof(c->close_reason), "message too large");
		free_out_queue(c);
		lws_callback_on_writable(wsi);
		return 0;
	}
	if (need > c->rx_cap) {
		size_t cap = c->rx_cap ? c->rx_cap : 4096;
		unsigned char *n;

		while (cap < need)
			cap *= 2;
		n = realloc(c->rx, cap);
		if (!n)
			return close_for_oom(c, wsi);
		c->rx = n;
		c->rx_cap = cap;
	}
	if (len)
		memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (final) {
		unsigned char *msg = malloc(c->rx_len + 1);

		if (!msg)
			return close_for_oom(c, wsi);
		memcpy(msg, c->rx, c->rx_len);
		msg[c->rx_len] = '\0';
		push_text(c, msg, c->rx_len, c->rx_binary);
		c->rx_len = 0;
		/* keep small buffers for the next message, drop big ones */
		if (c->rx_cap > 65536) {
			free(c->rx);
			c->rx = NULL;
			c->rx_cap = 0;
		}
	}
	return 0;
}

static int on_writeable(struct client_conn *c, struct lws *wsi)
{
	struct out_frame *f = c->out_head;

	if (f) {
		int n = lws_write(wsi, f->buf + LWS_PRE, f->len,
		                  f->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);

		c->out_head = f->next;
		if (!c->out_head)
			c->out_tail = NULL;
		free(f);
		if (n < 0) {
			set_local_abort(c, 1006, "write failed");
			return -1;
		}
		if (c->out_head || c->close_queued)
			lws_callback_on_writable(wsi);
		return 0;
	}
	if (c->close_queued) {
		lws_close_reason(wsi, (enum lws_close_status)c->close_code,
		                 (unsigned char *)c->close_reason, strlen(c->close_reason));
		return -1;
	}
	return 0;
}

/* --- TLS: the gateway's certificate --- */

int client_tls_fingerprint_parse(const char *s, unsigned char md[32])
{
	size_t n = 0;
	int hi = -1;

	if (!s)
		return -1;
	if (!strncasecmp(s, "sha256:", 7))
		s += 7;
	else if (!strncasecmp(s, "sha-256:", 8))
		s += 8;
	for (; *s; s++) {
		int v;

		if (*s == ':') {
			/* between two bytes only */
			if (hi >= 0 || n == 0 || s[1] == ':' || !s[1])
				return -1;
			continue;
		}
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			v = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			v = *s - 'A' + 10;
		else
			return -1;
		if (hi < 0) {
			hi = v;
			continue;
		}
		if (n == 32)
			return -1;
		if (md)
			md[n] = (unsigned char)(hi << 4 | v);
		n++;
		hi = -1;
	}
	return n == 32 && hi < 0 ? 0 : -1;
}

void client_tls_fingerprint_format(const unsigned char md[32],
                                   char out[CLIENT_TLS_FINGERPRINT_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	memcpy(out, "sha256:", 7);
	for (size_t i = 0; i < 32; i++) {
		out[7 + 2 * i] = hex[md[i] >> 4];
		out[8 + 2 * i] = hex[md[i] & 15];
	}
	out[CLIENT_TLS_FINGERPRINT_LEN] = '\0';
}

/* The fingerprint of a certificate: SHA-256 over its DER encoding. */
static bool cert_fingerprint(X509 *x, unsigned char md[32],
                             char text[CLIENT_TLS_FINGERPRINT_LEN + 1])
{
	unsigned int n = 0;

	if (!x || X509_digest(x, EVP_sha256(), md, &n) != 1 || n != 32) {
		snprintf(text, CLIENT_TLS_FINGERPRINT_LEN + 1, "(none)");
		return false;
	}
	client_tls_fingerprint_format(md, text);
	return true;
}

/* OpenSSL's verdict on one certificate of the gateway's chain (ok), for conn c. Without a pin
 * the verdict stands (a refusal is explained in tls_error). With one, the chain's own problems
 * are ignored and only the leaf (depth 0) counts: it must hash to the pin. Returns 0 to accept,
 * 1 to refuse the handshake. */
static int verify_peer(struct client_conn *c, X509_STORE_CTX *xs, int ok)
{
	unsigned char md[32];
	char want[CLIENT_TLS_FINGERPRINT_LEN + 1], got[CLIENT_TLS_FINGERPRINT_LEN + 1];

	if (!c)
		return 1; /* the owner went away while connecting */
	if (!c->pinned) {
		if (!ok && !c->tls_error[0]) {
			cert_fingerprint(X509_STORE_CTX_get0_cert(xs), md, got);
			snprintf(c->tls_error, sizeof(c->tls_error),
			         "TLS certificate not trusted (%s); its fingerprint is %s",
			         X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)), got);
			c->tls_refusal = "TLS certificate not trusted";
		}
		return 0;
	}
	if (X509_STORE_CTX_get_error_depth(xs) > 0) {
		X509_STORE_CTX_set_error(xs, X509_V_OK);
		return 0;
	}
	if (!cert_fingerprint(X509_STORE_CTX_get_current_cert(xs), md, got) ||
	    CRYPTO_memcmp(md, c->pin, sizeof(md)) != 0) {
		client_tls_fingerprint_format(c->pin, want);
		c->tls_refusal = CLIENT_TLS_MISMATCH;
		snprintf(c->tls_error, sizeof(c->tls_error),
		         CLIENT_TLS_MISMATCH ": pinned %s, the gateway presented %s", want, got);
		X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
		return 1;
	}
	c->pin_matched = true;
	X509_STORE_CTX_set_error(xs, X509_V_OK);
	return 0;
}

/* Adds c's own request headers to the upgrade request at *p (len bytes of room). The TLS
 * session is up by now: no request goes out unless its certificate matched the pin. */
static int append_headers(struct client_conn *c, char **p, size_t len)
{
	const char *const lines[][2] = {
	        {"X-Forwarded-For: ", c->xff}, {"Origin: ", c->origin}, {"", c->extra_headers}};
	char *end = *p + len;

	if (c->pinned && !c->pin_matched) {
		if (!c->tls_error[0]) {
			snprintf(c->tls_error, sizeof(c->tls_error),
			         "TLS certificate was not checked against the pin");
			c->tls_refusal = "TLS certificate not checked";
		}
		return -1;
	}
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		int n;

		if (!lines[i][1])
			continue;
		n = snprintf(*p, (size_t)(end - *p), "%s%s%s", lines[i][0], lines[i][1],
		             lines[i][0][0] ? "\r\n" : "");
		if (n < 0 || n >= end - *p)
			return -1;
		*p += n;
	}
	return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
	struct client_conn *c = user;
	struct client_ctx *ctx = NULL;

	/* lws passes the X509_STORE_CTX as user, and OpenSSL's verdict as len */
	if (reason == LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION)
		return verify_peer(lws_wsi_user(wsi), user, (int)len);
	if (!c && wsi && lws_get_context(wsi)) {
		ctx = lws_context_user(lws_get_context(wsi));
		/* lws may report a failure from inside lws_client_connect_via_info */
		if (ctx && ctx->connecting && ctx->connecting->wsi == NULL)
			c = ctx->connecting;
	}

	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		if (c && in && *(char **)in && append_headers(c, in, len) < 0)
			return -1;
		break;
	case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH:
		if (c)
			c->http_status = (int)lws_http_client_http_response(wsi);
		break;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (!c)
			return -1; /* the owner went away while connecting */
		c->wsi = wsi;
		c->established = true;
		c->connected_at_ms = clock_mono_ms();
		if (!c->http_status)
			c->http_status = 101;
		note_local_address(c, wsi);
		if (c->out_head || c->close_queued)
			lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (!c)
			return -1;
		return on_receive(c, wsi, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (!c) {
			/* a destroyed conn: end it politely */
			lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
			return -1;
		}
		return on_writeable(c, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (c && !c->peer_closed && !c->local_abort) {
			const unsigned char *b = in;

			c->peer_closed = true;
			c->peer_code = 1005; /* a close frame without a code */
			c->peer_reason[0] = '\0';
			if (b && len >= 2) {
				c->peer_code = (b[0] << 8) | b[1];
				copy_reason(c->peer_reason, sizeof(c->peer_reason),
				            (const char *)b + 2, len - 2);
			}
		}
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (c) {
			char why[128];
			unsigned status = c->http_status ? (unsigned)c->http_status
			                                 : lws_http_client_http_response(wsi);

			if (status && status != 101)
				snprintf(why, sizeof(why), "upgrade refused: HTTP %u", status);
			else if (c->tls_refusal)
				snprintf(why, sizeof(why), "%s", c->tls_refusal);
			else
				snprintf(why, sizeof(why), "%s",
				         in ? (const char *)in : "connection failed");
			if (status)
				c->http_status = (int)status;
			set_local_abort(c, 1006, why);
			finish(c, wsi);
		}
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
		if (c)
			finish(c, wsi);
		break;
	default:
		break;
	}
	return 0;
}

#ifdef CLAWPAIR_WITH_LIBEV
static void ev_noop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

static void ev_pump_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client_ctx *ctx = lws_container_of(w, struct client_ctx, ev_pump);

	(void)loop;
	(void)revents;
	lws_cancel_service(ctx->lws);
}
#endif

static const struct lws_protocols protocols[] = {
        {"clawpair-client", callback, 0, 4096, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* lws's default idle check (PING after 300 s, hangup at 310 s) keeps a timer per connection in
 * a list sorted by deadline, moved to its tail on every message received: linear in the open
 * connections. A context for thousands of conns (client_ctx_opts.epoll) does without it. */
static const lws_retry_bo_t no_idle_check = {.secs_since_valid_ping = 0,
                                             .secs_since_valid_hangup = 0};

/* A client vhost of the context; options with LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT give it a
 * TLS client context. Returns 0, or -1. */
static int add_vhost(struct client_ctx *ctx, const char *name, uint64_t options,
                     struct lws_vhost **out)
{
	struct lws_context_creation_info info;

	memset(&info, 0, sizeof(info));
	info.vhost_name = name;
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	info.options = options;
	*out = lws_create_vhost(ctx->lws, &info);
	return *out ? 0 : -1;
}

/* The vhost for a wss:// conn: without CA certificates when it is pinned (the pin replaces
 * them), with the system's otherwise. NULL when TLS cannot be set up. */
static struct lws_vhost *tls_vhost(struct client_ctx *ctx, bool pinned)
{
	struct lws_vhost **vh = pinned ? &ctx->vh_pinned : &ctx->vh_ca;

	if (!*vh)
		add_vhost(ctx, pinned ? "tls-pinned" : "tls-ca",
		          LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
		                  (pinned ? LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS : 0),
		          vh);
	return *vh;
}

struct client_ctx *client_ctx_create(const struct client_ctx_opts *opts)
{
	struct lws_context_creation_info info;
	struct client_ctx *ctx = calloc(1, sizeof(*ctx));
	unsigned max_conns = opts && opts->max_conns ? opts->max_conns : DEFAULT_MAX_CONNS;
	const char *dbg = getenv("CLAWPAIR_LWS_LOG");

	if (!ctx)
		return NULL;
	ctx->max_frame = opts && opts->max_frame ? opts->max_frame : DEFAULT_MAX_FRAME;
	ctx->no_idle_check = opts && opts->epoll;
	lws_set_log_level(dbg ? atoi(dbg) : 0, NULL);

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	info.user = ctx;
	/* A set fd limit makes lws look sockets up by a linear search (wsi_from_fd on every event);
	 * the epoll loop is for thousands of conns, so it sizes lws's tables by RLIMIT_NOFILE. */
	if (!(opts && opts->epoll))
		info.fd_limit_per_thread = max_conns + 16;
	/* each connection needs a header table until its upgrade completes */
	info.max_http_header_pool = (unsigned short)(max_conns > 4096 ? 4096 : max_conns + 4);
	info.timeout_secs = 30;
	/* the upgrade request is built in this buffer: room for long test headers */
	info.pt_serv_buf_size = 16384;
	/* OpenSSL is set up with the context; the vhosts that use it come on demand (tls_vhost) */
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	ctx->next_deadline_ms = UINT64_MAX;
#ifdef CLAWPAIR_WITH_LIBEV
	if (opts && opts->epoll && (ctx->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK))) {
		ev_timer_init(&ctx->ev_wake, ev_noop_cb, 0., 0.);
		ev_timer_init(&ctx->ev_pump, ev_pump_cb, 0.2, 0.2);
		info.options |= LWS_SERVER_OPTION_LIBEV;
		info.foreign_loops = (void **)&ctx->loop;
		ctx->lws = lws_create_context(&info);
		if (ctx->lws && add_vhost(ctx, "plain", 0, &ctx->vh_plain) == 0) {
			ev_timer_start(ctx->loop, &ctx->ev_pump);
			return ctx;
		}
		if (ctx->lws) {
			lws_context_destroy(ctx->lws);
			ctx->lws = NULL;
		}
		/* no libev plugin for libwebsockets: the poll() loop */
		ev_loop_destroy(ctx->loop);
		ctx->loop = NULL;
		info.options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
		info.foreign_loops = NULL;
	}
#endif
	ctx->lws = lws_create_context(&info);
	if (!ctx->lws || add_vhost(ctx, "plain", 0, &ctx->vh_plain) < 0) {
		if (ctx->lws)
			lws_context_destroy(ctx->lws);
		free(ctx);
		return NULL;
	}
	return ctx;
}

void client_ctx_destroy(struct client_ctx *ctx)
{
	if (!ctx)
		return;
	while (ctx->conns)
		client_conn_destroy(ctx->conns);
	lws_sul_cancel(&ctx->wake);
	lws_context_destroy(ctx->lws);
#ifdef CLAWPAIR_WITH_LIBEV
	if (ctx->loop) {
		ev_timer_stop(ctx->loop, &ctx->ev_wake);
		ev_timer_stop(ctx->loop, &ctx->ev_pump);
		ev_loop_destroy(ctx->loop);
	}
#endif
	free(ctx);
}

/* ws://HOST[:PORT][/path] or wss://...; HOST may be [v6]. */
static int parse_url(struct client_conn *c, const char *url, char *err, size_t errsz)
{
	const char *p, *hs, *he, *auth_end, *auth;
	size_t n;

	if (!url || !*url) {
		snprintf(err, errsz, "no URL given");
		return -1;
	}
	if (!strncasecmp(url, "wss://", 6)) {
		c->tls = true;
		p = url + 6;
	} else if (!strncasecmp(url, "ws://", 5)) {
		p = url + 5;
	} else {
		snprintf(err, errsz, "%s: URL must start with ws:// or wss://", url);
		return -1;
	}
	auth = p;
	auth_end = p + strcspn(p, "/?#");
	if (*p == '[') {
		hs = p + 1;
		he = memchr(hs, ']', (size_t)(auth_end - hs));
		if (!he) {
			snprintf(err, errsz, "%s: unterminated [ in host", url);
			return -1;
		}
		p = he + 1;
	} else {
		hs = p;
		he = memchr(hs, ':', (size_t)(auth_end - hs));
		if (!he)
			he = auth_end;
		p = he;
	}
	if (he == hs) {
		snprintf(err, errsz, "%s: no host in URL", url);
		return -1;
	}
	c->port = c->tls ? 443 : 80;
	if (p < auth_end) {
		char *endp;
		long port;

		if (*p != ':') {
			snprintf(err, errsz, "%s: bad host in URL", url);
			return -1;
		}
		errno = 0;
		port = strtol(p + 1, &endp, 10);
		if (endp != auth_end || endp == p + 1 || errno || port < 1 || port > 65535) {
			snprintf(err, errsz, "%s: bad port in URL", url);
			return -1;
		}
		c->port = (int)port;
	}
	n = (size_t)(he - hs);
	c->host = strndup(hs, n);
	c->authority = strndup(auth, (size_t)(auth_end - auth));
	if (*auth_end == '/') {
		c->path = strndup(auth_end, strcspn(auth_end, "#"));
	} else if (*auth_end == '?') {
		size_t qn = strcspn(auth_end, "#");

		c->path = malloc(qn + 2);
		if (c->path)
			snprintf(c->path, qn + 2, "/%.*s", (int)qn, auth_end);
	} else {
		c->path = strdup("/");
	}
	if (!c->host || !c->authority || !c->path) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	return 0;
}

static void conn_free(struct client_conn *c)
{
	while (c->in_head) {
		struct in_item *it = c->in_head;

		c->in_head = it->next;
		client_item_finish(&it->item);
		free(it);
	}
	free_out_queue(c);
	free(c->rx);
	free(c->host);
	free(c->path);
	free(c->authority);
	free(c->host_header);
	free(c->xff);
	free(c->origin);
	free(c->extra_headers);
	free(c);
}

static char *dup_opt(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

static bool header_value_ok(const char *s)
{
	return !s || !strpbrk(s, "\r\n");
}

/* Switches this thread to the network namespace ns; *home gets an fd to come back. */
static int enter_netns(const char *ns, int *home, char *err, size_t errsz)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s%s", strchr(ns, '/') ? "" : "/run/netns/", ns);
	*home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*home < 0) {
		snprintf(err, errsz, "netns %s: /proc/self/ns/net: %s", ns, strerror(errno));
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		snprintf(err, errsz, "netns %s: %s%s", ns, strerror(errno),
		         errno == EPERM ? " (needs root)" : "");
		if (fd >= 0)
			close(fd);
		close(*home);
		*home = -1;
		return -1;
	}
	close(fd);
	return 0;
}

/* The conn's pin (tls_fingerprint, or NULL). Returns 0, or -1 with the reason in err. */
static int set_tls(struct client_conn *c, const char *fingerprint, char *err, size_t errsz)
{
	if (!fingerprint)
		return 0;
	if (!c->tls) {
		snprintf(err, errsz, "a TLS fingerprint needs a wss:// URL");
		return -1;
	}
	if (client_tls_fingerprint_parse(fingerprint, c->pin) < 0) {
		snprintf(err, errsz,
		         "bad TLS fingerprint '%.80s': expected sha256: and 64 hex digits",
		         fingerprint);
		return -1;
	}
	c->pinned = true;
	return 0;
}

static int start_connect(struct client_ctx *ctx, const struct client_conn_opts *opts,
                         struct client_conn **out, char *err, size_t errsz)
{
	struct lws_client_connect_info ci;
	struct client_conn *c;
	bool oom = false;
	int timeout_ms, home_ns = -1;

	*out = NULL;
	if (!ctx || !opts) {
		snprintf(err, errsz, "no context or options");
		return -1;
	}
	if (!header_value_ok(opts->xff) || !header_value_ok(opts->host_header) ||
	    !header_value_ok(opts->origin)) {
		snprintf(err, errsz, "header values must not contain CR or LF");
		return -1;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	c->ctx = ctx;
	if (parse_url(c, opts->url, err, errsz) < 0) {
		conn_free(c);
		return -1;
	}
	if (set_tls(c, opts->tls_fingerprint, err, errsz) < 0) {
		conn_free(c);
		return -1;
	}
	c->xff = dup_opt(opts->xff, &oom);
	c->host_header = dup_opt(opts->host_header, &oom);
	c->origin = dup_opt(opts->origin, &oom);
	c->extra_headers = dup_opt(opts->extra_headers, &oom);
	if (oom) {
		snprintf(err, errsz, "out of memory");
		conn_free(c);
		return -1;
	}
	timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms
	                                          : DEFAULT_CONNECT_TIMEOUT_MS;
	c->connect_deadline_ms = clock_mono_ms() + (uint64_t)timeout_ms;
	if (c->connect_deadline_ms < ctx->next_deadline_ms)
		ctx->next_deadline_ms = c->connect_deadline_ms;

	c->next = ctx->conns;
	if (ctx->conns)
		ctx->conns->prev = c;
	ctx->conns = c;

	memset(&ci, 0, sizeof(ci));
	ci.context = ctx->lws;
	ci.address = c->host;
	ci.port = c->port;
	ci.path = c->path;
	ci.host = c->host_header ? c->host_header : c->authority;
	ci.origin = NULL; /* sent by the handshake hook, verbatim */
	ci.protocol = NULL;
	ci.local_protocol_name = protocols[0].name;
	ci.userdata = c;
	ci.pwsi = &c->wsi;
	ci.vhost = c->tls ? tls_vhost(ctx, c->pinned) : ctx->vh_plain;
	if (ctx->no_idle_check) /* a client connection takes its policy from here, not the vhost */
		ci.retry_and_idle_policy = &no_idle_check;
	/* a pin stands for the host name as well as for the CAs */
	ci.ssl_connection = !c->tls     ? 0
	                    : c->pinned ? LCCSCF_USE_SSL | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK
	                                : LCCSCF_USE_SSL;
	if (!ci.vhost) {
		snprintf(err, errsz, "%s: cannot set up TLS", opts->url);
		client_conn_destroy(c);
		return -1;
	}

	if (opts->netns && enter_netns(opts->netns, &home_ns, err, errsz) < 0) {
		client_conn_destroy(c);
		return -1;
	}
	ctx->connecting = c;
	/* lws creates the socket inside this call, so it lives in the namespace entered above */
	if (!lws_client_connect_via_info(&ci)) {
		c->wsi = NULL;
		set_local_abort(c, 1006, "connection failed");
		finish(c, NULL);
	}
	ctx->connecting = NULL;
	if (home_ns >= 0) {
		if (setns(home_ns, CLONE_NEWNET) < 0) {
			/* carrying on in the wrong namespace would mislabel every later conn */
			perror("clawpair client: setns back to the original network namespace");
			abort();
		}
		close(home_ns);
	}
	*out = c;
	return 0;
}

int client_connect_async(struct client_ctx *ctx, const struct client_conn_opts *opts,
                         struct client_conn **out)
{
	char err[256];

	return start_connect(ctx, opts, out, err, sizeof(err));
}

/* Kills connections whose upgrade did not complete in time. */
static void check_deadlines(struct client_ctx *ctx, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	/* a swarm holds thousands of conns: walk them only when a deadline is due */
	if (now < ctx->next_deadline_ms)
		return;
	for (struct client_conn *c = ctx->conns; c; c = c->next) {
		if (c->established || c->finished)
			continue;
		if (now < c->connect_deadline_ms) {
			if (c->connect_deadline_ms < next)
				next = c->connect_deadline_ms;
			continue;
		}
		set_local_abort(c, 1006, "connect timeout: no WebSocket upgrade in time");
		if (c->wsi) {
			struct lws *wsi = c->wsi;

			finish(c, wsi);
			lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		} else {
			finish(c, NULL);
		}
	}
	ctx->next_deadline_ms = next;
}

static void wake_cb(lws_sorted_usec_list_t *sul)
{
	(void)sul;
}

void client_service(struct client_ctx *ctx, int timeout_ms)
{
	if (!ctx)
		return;
	if (timeout_ms < 0)
		timeout_ms = 0;
#ifdef CLAWPAIR_WITH_LIBEV
	if (ctx->loop) {
		/* lws services its own timers (KILL_ASYNC, connect timeouts) after socket activity or
		 * when the timer it armed last fires; ev_pump nudges it through its service pipe
		 * five times a second so those are never much later than due. */
		if (timeout_ms == 0) {
			ev_run(ctx->loop, EVRUN_NOWAIT);
		} else {
			ev_now_update(ctx->loop);
			ev_timer_set(&ctx->ev_wake, timeout_ms / 1000., 0.);
			ev_timer_start(ctx->loop, &ctx->ev_wake);
			ev_run(ctx->loop, EVRUN_ONCE);
			ev_timer_stop(ctx->loop, &ctx->ev_wake);
		}
		check_deadlines(ctx, clock_mono_ms());
		return;
	}
#endif
	lws_sul_schedule(ctx->lws, 0, &ctx->wake, wake_cb, (lws_usec_t)timeout_ms * 1000);
	lws_service(ctx->lws, timeout_ms ? timeout_ms : -1);
	lws_sul_cancel(&ctx->wake);
	check_deadlines(ctx, clock_mono_ms());
}

int client_connect(struct client_ctx *ctx, const struct client_conn_opts *opts,
                   struct client_conn **out, char *err, size_t errsz)
{
	struct client_conn *c;

	if (opts && opts->refused_status)
		*opts->refused_status = 0;
	if (start_connect(ctx, opts, &c, err, errsz) < 0)
		return -1;
	while (!c->established && !c->finished) {
		uint64_t now = clock_mono_ms();
		uint64_t left = c->connect_deadline_ms > now ? c->connect_deadline_ms - now : 0;

		client_service(ctx, (int)(left < SERVICE_SLICE_MS ? left : SERVICE_SLICE_MS));
	}
	if (!c->established) {
		struct in_item *it = c->in_tail;

		snprintf(err, errsz, "%s: %s", opts->url,
		         c->tls_error[0]                            ? c->tls_error
		         : it && it->item.kind == CLIENT_ITEM_CLOSE ? it->item.close_reason
		                                                    : "connection failed");
		if (opts->refused_status && c->http_status != 101)
			*opts->refused_status = c->http_status;
		client_conn_destroy(c);
		return -1;
	}
	*out = c;
	return 0;
}

bool client_is_open(const struct client_conn *c)
{
	return c && c->established && !c->finished && !c->close_queued;
}

int client_send(struct client_conn *c, const void *data, size_t len, bool binary)
{
	struct out_frame *f;

	if (!c || c->finished || c->close_queued || (!data && len))
		return -1;
	f = malloc(sizeof(*f) + LWS_PRE + len + 1);
	if (!f)
		return -1;
	f->next = NULL;
	f->len = len;
	f->binary = binary;
	if (len)
		memcpy(f->buf + LWS_PRE, data, len);
	if (c->out_tail)
		c->out_tail->next = f;
	else
		c->out_head = f;
	c->out_tail = f;
	if (c->established && c->wsi)
		lws_callback_on_writable(c->wsi);
	return 0;
}

int client_send_text(struct client_conn *c, const char *text)
{
	return text ? client_send(c, text, strlen(text), false) : -1;
}

static bool pop_item(struct client_conn *c, struct client_item *item)
{
	struct in_item *it = c->in_head;

	if (!it)
		return false;
	c->in_head = it->next;
	if (!c->in_head)
		c->in_tail = NULL;
	c->n_items--;
	*item = it->item;
	free(it);
	return true;
}

int client_next(struct client_conn *c, int timeout_ms, struct client_item *item)
{
	uint64_t deadline;

	if (!c || !item)
		return 0;
	memset(item, 0, sizeof(*item));
	deadline = clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		uint64_t now;

		if (pop_item(c, item))
			return 1;
		now = clock_mono_ms();
		if (now >= deadline) {
			/* one non-blocking pass so a zero timeout still sees ready data */
			if (timeout_ms <= 0) {
				client_service(c->ctx, 0);
				if (pop_item(c, item))
					return 1;
			}
			return 0;
		}
		if (c->finished && !c->in_head)
			return 0; /* nothing will ever come */
		client_service(c->ctx, (int)(deadline - now < SERVICE_SLICE_MS ? deadline - now
		                                                               : SERVICE_SLICE_MS));
	}
}

void client_item_finish(struct client_item *item)
{
	if (!item)
		return;
	free(item->text);
	item->text = NULL;
	item->len = 0;
}

size_t client_pending_items(const struct client_conn *c)
{
	return c ? c->n_items : 0;
}

/* Ends c at once, without a close frame: the gateway sees the TCP connection drop. */
static void drop_now(struct client_conn *c)
{
	if (c->wsi) {
		struct lws *wsi = c->wsi;

		finish(c, wsi);
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	} else {
		finish(c, NULL);
	}
}

void client_close(struct client_conn *c, int code, const char *reason)
{
	if (!c || c->finished || c->close_queued)
		return;
	if (code == 0) {
		/* no close frame: the gateway sees the TCP connection drop */
		set_local_abort(c, 1006, "dropped by this side without a close frame");
		drop_now(c);
		return;
	}
	c->close_queued = true;
	c->close_code = code;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason ? reason : "");
	if (!c->established) {
		set_local_abort(c, code, c->close_reason);
		drop_now(c);
		return;
	}
	if (c->wsi)
		lws_callback_on_writable(c->wsi);
}

void client_conn_destroy(struct client_conn *c)
{
	struct client_ctx *ctx;

	if (!c)
		return;
	ctx = c->ctx;
	if (c->wsi) {
		struct lws *wsi = c->wsi;

		lws_set_wsi_user(wsi, NULL);
		c->wsi = NULL;
		if (c->established)
			lws_callback_on_writable(wsi); /* closes with 1000 from the callback */
		else
			lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	}
	if (c->prev)
		c->prev->next = c->next;
	else if (ctx->conns == c)
		ctx->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	conn_free(c);
}

const char *client_local_address(const struct client_conn *c)
{
	return c ? c->local_addr : "";
}

uint64_t client_connected_at_ms(const struct client_conn *c)
{
	return c ? c->connected_at_ms : 0;
}

int client_http_status(const struct client_conn *c)
{
	return c ? c->http_status : 0;
}

const char *client_tls_error(const struct client_conn *c)
{
	return c && c->tls_error[0] ? c->tls_error : NULL;
}
