/* fakegw_lws.c: the libwebsockets server adapter of the scripted gateway (the only file of
 * fakegw/ that includes libwebsockets): one vhost, a send queue per connection, messages
 * reassembled whole, close codes both ways, and a timer that polls the gateway's script. */
#include "fakegw_lws.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

#define RX_CHUNK 65536
#define MAX_MESSAGE (8u * 1024u * 1024u)
#define POLL_MS 5

struct out_frame {
	struct out_frame *next;
	size_t len;
	unsigned char buf[]; /* LWS_PRE headroom, then len bytes */
};

struct session {
	struct fakegw_server *srv;
	struct lws *wsi;
	struct fakegw_conn *conn; /* NULL: not (or no longer) fed to a gateway */
	struct session *next, *prev; /* the server's list */
	struct out_frame *head, *tail;
	char *rx;
	size_t rx_len;
	bool rx_binary, rx_over, closing, close_handed, peer_closed;
	int close_code, peer_code;
	char close_reason[124], peer_reason[124];
};

struct fakegw_server {
	struct lws_context *ctx;
	struct lws_vhost *vh;
	struct fakegw *gw;
	struct session *sessions;
	lws_sorted_usec_list_t tick;
	int port;
};

static int64_t now_ms(void)
{
	return (int64_t)clock_mono_ms();
}

static void io_send(void *user, const char *text, size_t len)
{
	struct session *s = user;
	struct out_frame *f;

	if (!s || s->closing)
		return;
	f = malloc(sizeof *f + LWS_PRE + len);
	if (!f)
		return;
	f->next = NULL;
	f->len = len;
	memcpy(f->buf + LWS_PRE, text, len);
	if (s->tail)
		s->tail->next = f;
	else
		s->head = f;
	s->tail = f;
	lws_callback_on_writable(s->wsi);
}

static void io_close(void *user, int code, const char *reason)
{
	struct session *s = user;

	if (!s || s->closing)
		return;
	s->closing = true;
	s->close_code = code;
	snprintf(s->close_reason, sizeof s->close_reason, "%s", reason);
	lws_callback_on_writable(s->wsi);
}

static const struct fakegw_io io = {.send = io_send, .close = io_close};

const struct fakegw_io *fakegw_server_io(void)
{
	return &io;
}

static void free_queue(struct session *s)
{
	while (s->head) {
		struct out_frame *f = s->head;

		s->head = f->next;
		free(f);
	}
	s->tail = NULL;
	free(s->rx);
	s->rx = NULL;
	s->rx_len = 0;
}

static void on_established(struct fakegw_server *srv, struct session *s, struct lws *wsi)
{
	memset(s, 0, sizeof *s);
	s->srv = srv;
	s->wsi = wsi;
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	if (srv->gw)
		s->conn = fakegw_open(srv->gw, s, now_ms());
	if (!s->conn)
		io_close(s, 1013, "no case is running");
}

static void on_receive(struct session *s, const void *in, size_t len)
{
	bool final = lws_is_final_fragment(s->wsi);
	char *nb;

	if (lws_is_first_fragment(s->wsi)) {
		s->rx_len = 0;
		s->rx_over = false;
		s->rx_binary = lws_frame_is_binary(s->wsi);
	}
	if (!s->rx_over && s->rx_len + len > MAX_MESSAGE) {
		s->rx_over = true;
		io_close(s, 1009, "message too big");
	}
	if (!s->rx_over && len) {
		nb = realloc(s->rx, s->rx_len + len + 1);
		if (!nb) {
			s->rx_over = true;
			io_close(s, 1011, "out of memory");
		} else {
			s->rx = nb;
			memcpy(s->rx + s->rx_len, in, len);
			s->rx_len += len;
		}
	}
	if (final && !s->rx_over && s->conn)
		fakegw_message(s->conn, s->rx ? s->rx : "", s->rx_len, s->rx_binary, now_ms());
	if (final)
		s->rx_len = 0;
}

static int on_writeable(struct session *s)
{
	if (!s->head) {
		if (s->closing && !s->close_handed) {
			s->close_handed = true;
			lws_close_reason(s->wsi, (enum lws_close_status)s->close_code,
			                 (unsigned char *)s->close_reason, strlen(s->close_reason));
			return -1;
		}
		return 0;
	}
	do {
		struct out_frame *f = s->head;

		s->head = f->next;
		if (!s->head)
			s->tail = NULL;
		if (lws_write(s->wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT) < (int)f->len) {
			free(f);
			return -1;
		}
		free(f);
	} while (s->head && !lws_send_pipe_choked(s->wsi));
	if (s->head || s->closing)
		lws_callback_on_writable(s->wsi);
	return 0;
}

static void on_peer_close(struct session *s, const unsigned char *in, size_t len)
{
	s->peer_closed = true;
	s->peer_code = len >= 2 ? (in[0] << 8 | in[1]) : 1005;
	if (len > 2)
		snprintf(s->peer_reason, sizeof s->peer_reason, "%.*s", (int)(len - 2),
		         (const char *)in + 2);
}

static void on_closed(struct fakegw_server *srv, struct session *s)
{
	if (s->conn) {
		if (s->peer_closed)
			fakegw_closed(s->conn, s->peer_code, s->peer_reason, FAKEGW_BY_CLIENT,
			              now_ms());
		else
			fakegw_closed(s->conn, 1006, "", FAKEGW_NO_FRAME, now_ms());
	}
	s->conn = NULL;
	free_queue(s);
	if (s->prev)
		s->prev->next = s->next;
	else if (srv->sessions == s)
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	struct fakegw_server *srv = ctx ? lws_context_user(ctx) : NULL;
	struct session *s = user;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		on_established(srv, s, wsi);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		on_receive(s, in, len);
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return on_writeable(s);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		on_peer_close(s, in, len);
		return 0;
	case LWS_CALLBACK_CLOSED:
		on_closed(srv, s);
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols protocols[] = {
        {"clawpair", callback, sizeof(struct session), RX_CHUNK, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void tick_cb(lws_sorted_usec_list_t *sul)
{
	struct fakegw_server *srv = lws_container_of(sul, struct fakegw_server, tick);

	if (srv->gw)
		fakegw_poll(srv->gw, now_ms());
	lws_sul_schedule(srv->ctx, 0, &srv->tick, tick_cb, POLL_MS * LWS_US_PER_MS);
}

struct fakegw_server *fakegw_server_create(const char *host, int port, char *err, size_t errsz)
{
	struct fakegw_server *srv = calloc(1, sizeof *srv);
	struct lws_context_creation_info info;

	if (!srv) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof info);
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.user = srv;
	srv->ctx = lws_create_context(&info);
	if (!srv->ctx) {
		snprintf(err, errsz, "cannot create the WebSocket context");
		goto fail;
	}
	memset(&info, 0, sizeof info);
	info.vhost_name = "client-mode";
	info.port = port;
	info.iface = host;
	info.protocols = protocols;
	info.user = srv;
	srv->vh = lws_create_vhost(srv->ctx, &info);
	if (!srv->vh) {
		snprintf(err, errsz, "cannot listen on %s:%d", host, port);
		goto fail;
	}
	srv->port = lws_get_vhost_listen_port(srv->vh);
	lws_sul_schedule(srv->ctx, 0, &srv->tick, tick_cb, POLL_MS * LWS_US_PER_MS);
	return srv;
fail:
	fakegw_server_destroy(srv);
	return NULL;
}

void fakegw_server_destroy(struct fakegw_server *s)
{
	if (!s)
		return;
	s->gw = NULL;
	for (struct session *x = s->sessions; x; x = x->next)
		x->conn = NULL;
	if (s->ctx)
		lws_context_destroy(s->ctx);
	free(s);
}

int fakegw_server_port(const struct fakegw_server *s)
{
	return s->port;
}

void fakegw_server_attach(struct fakegw_server *s, struct fakegw *gw)
{
	for (struct session *x = s->sessions; x; x = x->next) {
		if (x->conn) {
			x->conn = NULL;
			io_close(x, 1012, "case over");
		}
	}
	s->gw = gw;
}

int fakegw_server_service(struct fakegw_server *s, int wait_ms)
{
	int64_t end = now_ms() + wait_ms;

	do {
		if (lws_service(s->ctx, 0) < 0)
			return -1;
	} while (now_ms() < end);
	return 0;
}
