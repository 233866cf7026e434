/* lws_gateway.c: the libwebsockets adapter: sockets, send queues, message reassembly and the timer
 * around the I/O-free core, and the limits that live below the core (spec §8.8): connections from
 * the TCP accept to the upgrade, partial messages, unsent frames. The only file of the gateway
 * that includes libwebsockets.h. */
#include "lws_gateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <libwebsockets.h>
#ifdef CLAWPAIR_WITH_LIBEV
#include <ev.h>
#endif

#include "clock.h"
#include "core.h"
#include "errors.h"
#include "locality.h"
#include "store.h"

#define RX_CHUNK 4096
#define HTTP_BODY "clawpair-gateway\n"
#define TCP_BUCKETS 4096
/* A limit that closes or refuses connections logs one line, then at most one per this. */
#define LIMIT_LOG_EVERY_MS 10000
/* How many of the oldest upgrading connections a new one may look at for an idle one. */
#define EVICT_LOOK 8
/* A WebSocket silent this long gets a PING; one still silent IDLE_HANGUP_MS after its last
 * message is dropped (what lws's own idle check did, see no_idle_check). */
/* Close frames handed to lws per turn of the loop, at most: lws waits for each answer with a
 * timer in its sorted list (linear per insertion), so closing 10,000 sockets at once (a
 * shutdown) would cost 10,000^2 / 2 list steps; in waves the list holds about the closes of the
 * last turns. Per turn, not per answer: a peer that never answers cannot hold up the others. */
#define CLOSE_PACE 256
#define IDLE_PING_MS 300000
#define IDLE_HANGUP_MS 310000

struct out_frame {
	struct out_frame *next;
	size_t len;
	bool response; /* counted in queued_res, else in queued */
	unsigned char buf[]; /* LWS_PRE headroom, then len bytes */
};

/* The budgets of partial messages ([LIMIT-5]). */
enum rx_pool { RX_UNAUTH = 0, RX_AUTH = 1 };

struct tcp_peer;

/* One accepted TCP connection, from the accept to the close of its descriptor. */
struct tcp_conn {
	struct lws *wsi;
	struct tcp_peer *peer; /* while upgrading, unless a trusted proxy: its peer's list */
	bool upgrading; /* not yet a WebSocket */
	bool unfinished; /* in the gateway's list: not yet authenticated or held open (as far
	                  * as the list knows: it learns the rest when it looks) */
	struct tcp_conn *prev, *next; /* unfinished connections, oldest first */
	struct tcp_conn *up_prev, *up_next; /* upgrading connections, oldest first */
	struct tcp_conn *peer_prev, *peer_next; /* the peer's upgrading connections, oldest first */
};

struct tcp_peer {
	struct tcp_peer *next; /* hash chain */
	unsigned upgrading;
	struct tcp_conn *head, *tail;
	char ip[LOCALITY_ADDR_MAX];
};

/* What the accept filter learnt about the connection lws is adopting right now. */
struct accepting {
	int fd; /* -1: none */
	char ip[LOCALITY_ADDR_MAX];
	bool loopback, trusted;
};

/* Closes and refusals of one kind since the last log line about them. */
struct limit_log {
	const char *what;
	unsigned n;
	uint64_t last_ms;
	char last_ip[LOCALITY_ADDR_MAX];
};

/* Per WebSocket (and per plain HTTP request; those use none of the queue fields). */
struct session {
	struct gateway *gw;
	struct lws *wsi;
	struct core_conn *conn;
	bool established;
	bool closing; /* a close is decided: no more frames are queued */
	bool close_handed; /* lws has the close frame: it sends it, then waits for the peer's */
	bool close_waiting; /* in the gateway's close queue (close_pace) */
	struct session *cq_prev, *cq_next;
	int close_code;
	char close_reason[124];
	struct out_frame *head, *tail;
	size_t queued; /* unsent events (maxBufferedBytes) */
	size_t queued_res; /* unsent responses ([LIMIT-7]) */
	/* the message being reassembled */
	char *rx;
	size_t rx_len, rx_cap;
	bool rx_in_msg, rx_binary, rx_over;
	enum rx_pool rx_pool; /* the budget rx_cap is charged to */
	uint64_t rx_since_ms; /* when its first bytes came */
	bool rx_listed;
	struct session *rx_prev, *rx_next; /* sessions reassembling, oldest first */
	bool http_root; /* plain HTTP: the request was for "/" */
	/* idle check: sessions by the time of their last message, oldest first */
	uint64_t last_rx_ms;
	bool idle_listed, pinged, ping_due;
	struct session *idle_prev, *idle_next;
};

struct gateway {
	struct lws_context *ctx;
	struct lws_vhost **vhosts;
	const char *tls_cert_path, *tls_key_path; /* NULL: no TLS */
	/* lws keeps the name and iface pointers, not copies: they live here */
	char (*vhost_names)[32];
	struct gateway_listen *listen;
	size_t n_vhosts;
	struct core *core;
	enum core_log_level log_level;
	size_t max_payload;
	lws_sorted_usec_list_t timer;
	uint64_t timer_at; /* wall-clock ms the timer is set for; UINT64_MAX: not set */
	lws_sorted_usec_list_t wake;
	unsigned sessions; /* established WebSockets */
	bool stopping;
	bool store_failed; /* a group commit failed: the loop stops */
	/* [LIMIT-4], [LIMIT-6]: connections from the accept on */
	unsigned max_connections, loopback_reserve, max_upgrading_per_ip;
	struct locality_addr *trusted;
	size_t n_trusted;
	struct tcp_peer *peers[TCP_BUCKETS];
	struct tcp_conn *fin_head, *fin_tail; /* unfinished connections, oldest first */
	struct tcp_conn *up_head, *up_tail; /* upgrading connections, oldest first */
	unsigned n_upgrading, max_upgrading;
	unsigned n_tcp;
	struct accepting accepting;
	struct limit_log log_refused, log_evicted, log_budget, log_timeout;
	/* [LIMIT-5] */
	size_t rx_budget[2], rx_used[2];
	uint64_t message_timeout_ms;
	struct session *rx_head, *rx_tail;
	/* established sessions, least recently heard first */
	struct session *idle_head, *idle_tail;
	unsigned closes_turn; /* close frames handed to lws in this turn of the loop */
	struct session *cq_head, *cq_tail; /* sessions waiting to hand their close frame */
	unsigned upgrade_timeout_s;
#ifdef CLAWPAIR_WITH_LIBEV
	/* lws's own loop is poll(), which walks every socket on every wake-up; at 10,000 held
	 * connections that dominates. libev picks epoll; lws drives it as a foreign loop. */
	struct ev_loop *loop;
	/* Our own timers: lws re-arms its libev timer only from its own callbacks, and not when an
	 * earlier deadline is added while a later one is armed. */
	ev_timer ev_deadline;
	ev_timer ev_wake;
	/* lws services its own timers (close-ack waits, HTTP header timeouts) only after socket
	 * activity or when the timer it armed last fires, which may be later than one added since;
	 * a once-a-second nudge through its service pipe bounds how late those can be. */
	ev_timer ev_pump;
#endif
};

/* lws's default idle check (PING after 300 s without a message, hangup at 310 s) keeps a timer
 * per connection in a list sorted by deadline and moves it to the tail on every message
 * received: linear in the open connections, so every handshake and every held node costs more
 * the more are connected. The vhosts do without it; idle_check does the same job in O(1) per
 * message. */
static const lws_retry_bo_t no_idle_check = {.secs_since_valid_ping = 0,
                                             .secs_since_valid_hangup = 0};

/* Only bounds a wait of loop_once. */
static void wake_cb(lws_sorted_usec_list_t *sul)
{
	(void)sul;
}

/* Group commit: the store changes of one turn of the loop reach the disk together, then the
 * replies that waited for them go out (core_flush). A failed flush stops the gateway. */
static void close_turn(struct gateway *gw);

static int flush_turn(struct gateway *gw)
{
	if (core_flush_due(gw->core) && core_flush(gw->core) < 0) {
		gateway_log(gw, CORE_LOG_ERROR, "the pairing store could not be made durable");
		gw->store_failed = true;
	}
	return gw->store_failed ? -1 : 0;
}

/* One turn of the event loop: waits for at least one event or timer, at most wait_ms when it is
 * not negative, and handles what came. */
static int loop_once(struct gateway *gw, int wait_ms)
{
#ifdef CLAWPAIR_WITH_LIBEV
	if (gw->loop) {
		if (wait_ms >= 0) {
			ev_timer_stop(gw->loop, &gw->ev_wake);
			ev_now_update(gw->loop);
			ev_timer_set(&gw->ev_wake, wait_ms / 1000., 0.);
			ev_timer_start(gw->loop, &gw->ev_wake);
		}
		ev_run(gw->loop, EVRUN_ONCE);
		close_turn(gw);
		return flush_turn(gw);
	}
#endif
	if (wait_ms >= 0)
		lws_sul_schedule(gw->ctx, 0, &gw->wake, wake_cb,
		                 (lws_usec_t)wait_ms * LWS_US_PER_MS);
	if (lws_service(gw->ctx, 0) < 0)
		return -1;
	close_turn(gw);
	return flush_turn(gw);
}

static const char *level_name(enum core_log_level level)
{
	switch (level) {
	case CORE_LOG_ERROR:
		return "error";
	case CORE_LOG_WARN:
		return "warn";
	case CORE_LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

static void log_line(enum core_log_level threshold, enum core_log_level level, const char *line)
{
	int64_t now = clock_wall_ms();
	time_t sec = (time_t)(now / 1000);
	struct tm tm;
	char when[32];

	if (level > threshold)
		return;
	gmtime_r(&sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03dZ %s %s\n", when, (int)(now % 1000), level_name(level), line);
}

void gateway_log(struct gateway *gw, enum core_log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!gw || level > gw->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_line(gw->log_level, level, line);
}

static void lws_log_emit(int level, const char *line)
{
	(void)level;
	fprintf(stderr, "lws: %s", line);
}

/* --- timer --- */

static void timer_cb(lws_sorted_usec_list_t *sul);

static void timer_fire(struct gateway *gw);

#ifdef CLAWPAIR_WITH_LIBEV
static void ev_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	timer_fire(lws_container_of(w, struct gateway, ev_deadline));
}

static void ev_wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

static void ev_pump_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct gateway *gw = lws_container_of(w, struct gateway, ev_pump);

	(void)loop;
	(void)revents;
	lws_cancel_service(gw->ctx);
}
#endif

static void timer_cancel(struct gateway *gw)
{
#ifdef CLAWPAIR_WITH_LIBEV
	if (gw->loop)
		ev_timer_stop(gw->loop, &gw->ev_deadline);
#endif
	lws_sul_cancel(&gw->timer);
	gw->timer_at = UINT64_MAX;
}

static void timer_set(struct gateway *gw, uint64_t at_ms)
{
	uint64_t now = (uint64_t)clock_wall_ms();
	lws_usec_t us;

	if (at_ms == UINT64_MAX) {
		timer_cancel(gw);
		return;
	}
	gw->timer_at = at_ms;
	us = at_ms > now ? (lws_usec_t)(at_ms - now) * LWS_US_PER_MS : 1;
#ifdef CLAWPAIR_WITH_LIBEV
	if (gw->loop) {
		ev_timer_stop(gw->loop, &gw->ev_deadline);
		ev_now_update(gw->loop);
		ev_timer_set(&gw->ev_deadline, (ev_tstamp)us / 1e6, 0.);
		ev_timer_start(gw->loop, &gw->ev_deadline);
		return;
	}
#endif
	lws_sul_schedule(gw->ctx, 0, &gw->timer, timer_cb, us);
}

static uint64_t rx_expire(struct gateway *gw, uint64_t now);
static uint64_t idle_expire(struct gateway *gw, uint64_t now);

static void timer_fire(struct gateway *gw)
{
	uint64_t now = (uint64_t)clock_wall_ms();
	uint64_t next = core_run_timers(gw->core, now), rx = rx_expire(gw, now);
	uint64_t idle = idle_expire(gw, now);

	gw->timer_at = UINT64_MAX;
	if (rx < next)
		next = rx;
	timer_set(gw, idle < next ? idle : next);
}

static int flush_turn(struct gateway *gw);

/* lws's poll() loop runs its timers just before it waits: what they queued must be released
 * now, or it would wait for the next event. */
static void timer_cb(lws_sorted_usec_list_t *sul)
{
	struct gateway *gw = lws_container_of(sul, struct gateway, timer);

	timer_fire(gw);
	flush_turn(gw);
}

/* Any call into the core may create a deadline (a handshake timer, a pending TTL) that is sooner
 * than the one the timer is set for; the core only tells us when asked, so ask on the next turn
 * of the loop. Bursts of calls share that one run. */
static void timer_kick(struct gateway *gw)
{
	if (gw->stopping)
		return;
	if (gw->timer_at != UINT64_MAX && gw->timer_at <= (uint64_t)clock_wall_ms())
		return;
	timer_set(gw, 0);
}

/* --- limits: log lines --- */

/* Counts one close or refusal; logs the first and then at most one line per LIMIT_LOG_EVERY_MS,
 * so a flood cannot flood the log. The address is looked up only for a line. */
static void limit_note(struct gateway *gw, struct limit_log *l, const char *ip, struct lws *wsi)
{
	uint64_t now = (uint64_t)clock_wall_ms();
	char buf[LOCALITY_ADDR_MAX] = "";

	l->n++;
	if (l->last_ms && now < l->last_ms + LIMIT_LOG_EVERY_MS)
		return;
	if (!ip && wsi)
		lws_get_peer_simple(wsi, buf, sizeof(buf));
	gateway_log(gw, CORE_LOG_WARN, "%s: %u connection(s) since the last line (last: %s)",
	            l->what, l->n, ip ? ip : buf);
	l->n = 0;
	l->last_ms = now;
}

/* --- connections from the accept to the upgrade ([LIMIT-4], [LIMIT-6]) --- */

static size_t hash_ip(const char *s)
{
	size_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct tcp_peer **peer_slot(struct gateway *gw, const char *ip)
{
	struct tcp_peer **p = &gw->peers[hash_ip(ip) % TCP_BUCKETS];

	while (*p && strcmp((*p)->ip, ip) != 0)
		p = &(*p)->next;
	return p;
}

static struct tcp_peer *peer_get(struct gateway *gw, const char *ip)
{
	struct tcp_peer **p = peer_slot(gw, ip);

	if (!*p && (*p = calloc(1, sizeof(**p))))
		snprintf((*p)->ip, sizeof((*p)->ip), "%s", ip);
	return *p;
}

/* Takes t out of the lists of upgrading connections (it upgraded, or it is going). */
static void upgrading_unlink(struct gateway *gw, struct tcp_conn *t)
{
	struct tcp_peer *p = t->peer;

	if (!t->upgrading)
		return;
	t->upgrading = false;
	if (t->up_prev)
		t->up_prev->up_next = t->up_next;
	else
		gw->up_head = t->up_next;
	if (t->up_next)
		t->up_next->up_prev = t->up_prev;
	else
		gw->up_tail = t->up_prev;
	t->up_prev = t->up_next = NULL;
	gw->n_upgrading--;
	if (!p)
		return;
	if (t->peer_prev)
		t->peer_prev->peer_next = t->peer_next;
	else
		p->head = t->peer_next;
	if (t->peer_next)
		t->peer_next->peer_prev = t->peer_prev;
	else
		p->tail = t->peer_prev;
	t->peer_prev = t->peer_next = NULL;
	t->peer = NULL;
	if (--p->upgrading == 0) {
		*peer_slot(gw, p->ip) = p->next;
		free(p);
	}
}

/* Takes t out of the list of unfinished connections. */
static void fin_unlink(struct gateway *gw, struct tcp_conn *t)
{
	if (!t->unfinished)
		return;
	t->unfinished = false;
	if (t->prev)
		t->prev->next = t->next;
	else
		gw->fin_head = t->next;
	if (t->next)
		t->next->prev = t->prev;
	else
		gw->fin_tail = t->prev;
	t->prev = t->next = NULL;
}

/* Closes a connection that has not finished its handshake, at once and without a response, so
 * its descriptor is free again when this returns. */
static void evict(struct gateway *gw, struct tcp_conn *t, const char *for_ip)
{
	/* never picked twice, whenever lws gets to free it */
	upgrading_unlink(gw, t);
	fin_unlink(gw, t);
	limit_note(gw, &gw->log_evicted, for_ip, NULL);
	lws_set_timeout(t->wsi, PENDING_TIMEOUT_HOLDING_AH, LWS_TO_KILL_SYNC);
}

/* The oldest of the first EVICT_LOOK upgrading connections (of peer p; of all when p is NULL)
 * that has nothing unread. One whose request is waiting is upgraded at the next turn of the loop
 * and holds no place: closing it would only hit whoever connected in the same burst as an
 * attacker, the operator included. NULL when none of them is idle. */
static struct tcp_conn *idle_upgrading(struct gateway *gw, struct tcp_peer *p)
{
	struct tcp_conn *t = p ? p->head : gw->up_head;

	for (int i = 0; t && i < EVICT_LOOK; i++, t = p ? t->peer_next : t->up_next) {
		int unread = 0;

		if (ioctl(lws_get_socket_fd(t->wsi), FIONREAD, &unread) == 0 && unread == 0)
			return t;
	}
	return NULL;
}

/* The oldest connection that has neither upgraded nor, as a WebSocket, been authenticated or
 * held open; NULL when there is none. Finished ones met on the way leave the list. */
static struct tcp_conn *oldest_unfinished(struct gateway *gw)
{
	while (gw->fin_head) {
		struct tcp_conn *t = gw->fin_head;
		struct session *s = t->upgrading ? NULL : lws_wsi_user(t->wsi);

		if (t->upgrading || !s || !s->conn || core_conn_unfinished(s->conn))
			return t;
		fin_unlink(gw, t);
	}
	return NULL;
}

static bool sockaddr_addr(const struct sockaddr_storage *ss, struct locality_addr *a)
{
	char text[LOCALITY_ADDR_MAX];
	const void *src;

	if (ss->ss_family == AF_INET)
		src = &((const struct sockaddr_in *)(const void *)ss)->sin_addr;
	else if (ss->ss_family == AF_INET6)
		src = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
	else
		return false;
	/* via text: an IPv4-mapped address becomes the IPv4 one, as everywhere else */
	return inet_ntop(ss->ss_family, src, text, sizeof(text)) &&
	       locality_addr_parse(text, strlen(text), a);
}

/* Right after accept(), before anything is read: 0 to go on, 1 to close the socket at once. */
static int on_accept(struct gateway *gw, const struct lws_filter_network_conn_args *filt)
{
	struct accepting *acc = &gw->accepting;
	struct locality_addr a;
	struct tcp_conn *t;
	unsigned limit;

	acc->fd = -1;
	acc->ip[0] = '\0';
	acc->loopback = acc->trusted = false;
	if (sockaddr_addr(&filt->cli_addr, &a)) {
		locality_addr_format(&a, acc->ip, sizeof(acc->ip));
		acc->loopback = locality_addr_is_loopback(&a);
		for (size_t i = 0; i < gw->n_trusted && !acc->trusted; i++)
			acc->trusted = locality_addr_equal(&a, &gw->trusted[i]);
	}
	if (gw->stopping)
		return 1;
	/* A proxy speaks for many clients and sends each request as soon as it has it: only the
	 * totals bound it. */
	if (!acc->trusted) {
		struct tcp_peer *p = *peer_slot(gw, acc->ip);

		if (p && p->upgrading >= gw->max_upgrading_per_ip && (t = idle_upgrading(gw, p)))
			evict(gw, t, acc->ip);
	}
	/* Whatever their addresses: lws keeps a timer for each in a sorted list. */
	if (gw->n_upgrading >= gw->max_upgrading && (t = idle_upgrading(gw, NULL)))
		evict(gw, t, acc->ip);
	limit = acc->loopback ? gw->max_connections : gw->max_connections - gw->loopback_reserve;
	if (gw->n_tcp >= limit && (t = oldest_unfinished(gw)))
		evict(gw, t, acc->ip);
	if (gw->n_tcp >= limit) {
		limit_note(gw, &gw->log_refused, acc->ip, NULL);
		return 1;
	}
	acc->fd = (int)filt->accept_fd;
	return 0;
}

/* lws adopted the socket on_accept let in: count it from now until its descriptor closes. */
static void on_adopted(struct gateway *gw, struct lws *wsi)
{
	struct accepting *acc = &gw->accepting;
	struct tcp_conn *t;

	if (acc->fd < 0 || acc->fd != (int)lws_get_socket_fd(wsi))
		return;
	acc->fd = -1;
	t = calloc(1, sizeof(*t));
	if (!t)
		return; /* uncounted, nothing worse */
	t->wsi = wsi;
	t->upgrading = true;
	t->unfinished = true;
	t->prev = gw->fin_tail;
	if (gw->fin_tail)
		gw->fin_tail->next = t;
	else
		gw->fin_head = t;
	gw->fin_tail = t;
	t->up_prev = gw->up_tail;
	if (gw->up_tail)
		gw->up_tail->up_next = t;
	else
		gw->up_head = t;
	gw->up_tail = t;
	gw->n_upgrading++;
	if (!acc->trusted && (t->peer = peer_get(gw, acc->ip))) {
		t->peer_prev = t->peer->tail;
		if (t->peer->tail)
			t->peer->tail->peer_next = t;
		else
			t->peer->head = t;
		t->peer->tail = t;
		t->peer->upgrading++;
	}
	gw->n_tcp++;
	lws_set_opaque_user_data(wsi, t);
}

/* A WebSocket now: it stays in the list of unfinished connections until the core answers its
 * connect. */
static void on_upgraded(struct gateway *gw, struct lws *wsi)
{
	struct tcp_conn *t = lws_get_opaque_user_data(wsi);

	if (t)
		upgrading_unlink(gw, t);
}

static void on_wsi_destroy(struct gateway *gw, struct lws *wsi)
{
	struct tcp_conn *t = lws_get_opaque_user_data(wsi);

	if (!t)
		return;
	upgrading_unlink(gw, t);
	fin_unlink(gw, t);
	lws_set_opaque_user_data(wsi, NULL);
	gw->n_tcp--;
	free(t);
}

/* --- send queue --- */

static void queue_free(struct session *s)
{
	while (s->head) {
		struct out_frame *f = s->head;

		s->head = f->next;
		free(f);
	}
	s->tail = NULL;
	s->queued = 0;
	s->queued_res = 0;
}

static void session_close(struct session *s, int code, const char *reason)
{
	if (s->closing)
		return;
	s->closing = true;
	s->close_code = code;
	snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason ? reason : "");
	if (s->wsi)
		lws_callback_on_writable(s->wsi);
}

static void queue_frame(struct gateway *gw, struct session *s, const char *text, size_t len,
                        bool response)
{
	size_t *queued;
	struct out_frame *f;

	if (!s || s->closing || !s->wsi)
		return;
	queued = response ? &s->queued_res : &s->queued;
	/* An event counts itself: maxBufferedBytes is what a peer may let pile up. A response counts
	 * only the responses still queued before it, so one answer of any size goes out whole and
	 * a list never closes the operator that asked for it ([LIMIT-7]). */
	if (response ? *queued > CORE_MAX_RESPONSE_BYTES
	             : *queued + len > CORE_MAX_BUFFERED_BYTES) {
		const struct cp_err_info *e = cp_err_info(CP_ERR_SLOW_CONSUMER);

		gateway_log(gw, CORE_LOG_WARN, "closing a slow consumer (%zu bytes of %s queued)",
		            *queued, response ? "responses" : "events");
		/* What is queued will not reach it in time anyway; the close goes out first. */
		queue_free(s);
		session_close(s, e->close_code, e->close_reason);
		return;
	}
	f = malloc(sizeof(*f) + LWS_PRE + len);
	if (!f) {
		gateway_log(gw, CORE_LOG_ERROR, "out of memory queueing %zu bytes", len);
		session_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
		return;
	}
	f->next = NULL;
	f->len = len;
	f->response = response;
	memcpy(f->buf + LWS_PRE, text, len);
	if (s->tail)
		s->tail->next = f;
	else
		s->head = f;
	s->tail = f;
	*queued += len;
	lws_callback_on_writable(s->wsi);
}

static void io_send(void *user, void *conn_user, const char *text, size_t len)
{
	queue_frame(user, conn_user, text, len, false);
}

static void io_send_response(void *user, void *conn_user, const char *text, size_t len)
{
	queue_frame(user, conn_user, text, len, true);
}

static void io_close(void *user, void *conn_user, int code, const char *reason)
{
	(void)user;
	if (conn_user)
		session_close(conn_user, code, reason);
}

static void io_log(void *user, enum core_log_level level, const char *line)
{
	struct gateway *gw = user;

	log_line(gw->log_level, level, line);
}

/* --- receive --- */

/* A message arrives in pieces (lws hands over at most RX_CHUNK bytes at a time); one that comes
 * in one piece is passed on as it is. The pieces of the others are copied into a buffer charged
 * to one of two gateway-wide budgets, and the message must end within the message timeout
 * ([LIMIT-5]). */

static void rx_unlist(struct gateway *gw, struct session *s)
{
	if (!s->rx_listed)
		return;
	if (s->rx_prev)
		s->rx_prev->rx_next = s->rx_next;
	else
		gw->rx_head = s->rx_next;
	if (s->rx_next)
		s->rx_next->rx_prev = s->rx_prev;
	else
		gw->rx_tail = s->rx_prev;
	s->rx_prev = s->rx_next = NULL;
	s->rx_listed = false;
}

/* The message is partial from now on: its clock starts. */
static void rx_list(struct gateway *gw, struct session *s)
{
	bool first = !gw->rx_head;

	s->rx_since_ms = (uint64_t)clock_wall_ms();
	s->rx_prev = gw->rx_tail;
	s->rx_next = NULL;
	if (gw->rx_tail)
		gw->rx_tail->rx_next = s;
	else
		gw->rx_head = s;
	gw->rx_tail = s;
	s->rx_listed = true;
	if (first)
		timer_kick(gw); /* a deadline the timer does not know yet */
}

/* Frees the buffer and gives its bytes back to the budget that paid for them. */
static void rx_release(struct session *s)
{
	if (s->gw) {
		s->gw->rx_used[s->rx_pool] -= s->rx_cap;
		rx_unlist(s->gw, s);
	}
	free(s->rx);
	s->rx = NULL;
	s->rx_cap = 0;
	s->rx_len = 0;
}

/* 0, -1 out of memory, -2 over the budget of the session's pool. */
static int rx_append(struct session *s, const void *in, size_t len)
{
	struct gateway *gw = s->gw;

	if (s->rx_len + len > s->rx_cap) {
		size_t cap = s->rx_cap ? s->rx_cap : RX_CHUNK;
		char *p;

		while (cap < s->rx_len + len)
			cap *= 2;
		if (gw->rx_used[s->rx_pool] - s->rx_cap + cap > gw->rx_budget[s->rx_pool])
			return -2;
		p = realloc(s->rx, cap);
		if (!p)
			return -1;
		gw->rx_used[s->rx_pool] += cap - s->rx_cap;
		s->rx = p;
		s->rx_cap = cap;
	}
	memcpy(s->rx + s->rx_len, in, len);
	s->rx_len += len;
	return 0;
}

/* The buffer goes with the message: an idle (e.g. held-open) connection keeps none. */
static void rx_reset(struct session *s)
{
	s->rx_in_msg = false;
	s->rx_over = false;
	rx_release(s);
}

/* Closes the session for its message and drops the rest of that message as it arrives. */
static void rx_fail(struct session *s, enum cp_err err, struct limit_log *l)
{
	const struct cp_err_info *e = cp_err_info(err);

	s->rx_over = true;
	rx_release(s);
	limit_note(s->gw, l, NULL, s->wsi);
	session_close(s, e->close_code, e->close_reason);
}

/* Closes the sessions whose message is older than the message timeout. Returns the next
 * deadline (UINT64_MAX: none). */
static uint64_t rx_expire(struct gateway *gw, uint64_t now)
{
	while (gw->rx_head && gw->rx_head->rx_since_ms + gw->message_timeout_ms <= now)
		rx_fail(gw->rx_head, CP_ERR_MESSAGE_TIMEOUT, &gw->log_timeout);
	return gw->rx_head ? gw->rx_head->rx_since_ms + gw->message_timeout_ms : UINT64_MAX;
}

/* --- idle check --- */

/* The list is in order of last_rx_ms because a session moves to its tail whenever it is heard:
 * O(1) per message, whatever the number of sessions. */
static void idle_unlist(struct gateway *gw, struct session *s)
{
	if (!s->idle_listed)
		return;
	if (s->idle_prev)
		s->idle_prev->idle_next = s->idle_next;
	else
		gw->idle_head = s->idle_next;
	if (s->idle_next)
		s->idle_next->idle_prev = s->idle_prev;
	else
		gw->idle_tail = s->idle_prev;
	s->idle_prev = s->idle_next = NULL;
	s->idle_listed = false;
}

static void idle_touch(struct gateway *gw, struct session *s)
{
	bool first = !gw->idle_head;

	idle_unlist(gw, s);
	s->last_rx_ms = (uint64_t)clock_wall_ms();
	s->pinged = false;
	s->idle_prev = gw->idle_tail;
	if (gw->idle_tail)
		gw->idle_tail->idle_next = s;
	else
		gw->idle_head = s;
	gw->idle_tail = s;
	s->idle_listed = true;
	if (first)
		timer_kick(gw);
}

/* Pings the sessions silent for IDLE_PING_MS, drops those silent for IDLE_HANGUP_MS. Returns
 * the next deadline (UINT64_MAX: none). */
static uint64_t idle_expire(struct gateway *gw, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	for (struct session *s = gw->idle_head, *n; s; s = n) {
		n = s->idle_next;
		if (now < s->last_rx_ms + IDLE_PING_MS) {
			if (s->last_rx_ms + IDLE_PING_MS < next)
				next = s->last_rx_ms + IDLE_PING_MS;
			break; /* the rest were heard later */
		}
		if (now >= s->last_rx_ms + IDLE_HANGUP_MS) {
			idle_unlist(gw, s);
			if (s->wsi)
				lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
			continue;
		}
		if (!s->pinged && s->wsi) {
			s->pinged = s->ping_due = true;
			lws_callback_on_writable(s->wsi);
		}
		if (s->last_rx_ms + IDLE_HANGUP_MS < next)
			next = s->last_rx_ms + IDLE_HANGUP_MS;
	}
	return next;
}

static void on_receive(struct session *s, const void *in, size_t len)
{
	struct gateway *gw = s->gw;
	bool final = lws_is_final_fragment(s->wsi);
	bool first = !s->rx_in_msg;
	int rc;

	if (first) {
		s->rx_in_msg = true;
		s->rx_binary = lws_frame_is_binary(s->wsi);
		/* held-open connections are not authenticated either */
		s->rx_pool = core_conn_authenticated(s->conn) ? RX_AUTH : RX_UNAUTH;
	}
	if (s->closing || s->rx_over)
		goto out;
	if (s->rx_len + len > gw->max_payload) {
		/* Over the cap: the core answers a length above max_payload (it never reads the
		 * data then), and the rest of the message is dropped as it arrives. */
		s->rx_over = true;
		rx_release(s);
		core_conn_message(gw->core, s->conn, NULL, gw->max_payload + 1, s->rx_binary,
		                  clock_wall_ms());
		timer_kick(gw);
		goto out;
	}
	if (first && final) {
		/* The whole message in one piece, the usual case: no copy. */
		core_conn_message(gw->core, s->conn, in ? in : "", len, s->rx_binary,
		                  clock_wall_ms());
		timer_kick(gw);
		goto out;
	}
	if (!s->rx_listed)
		rx_list(gw, s);
	rc = rx_append(s, in, len);
	if (rc == -2) {
		rx_fail(s, CP_ERR_RX_BUDGET, &gw->log_budget);
		goto out;
	}
	if (rc < 0) {
		gateway_log(gw, CORE_LOG_ERROR, "out of memory reassembling a message");
		s->rx_over = true;
		rx_release(s);
		session_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
		goto out;
	}
	if (final) {
		core_conn_message(gw->core, s->conn, s->rx, s->rx_len, s->rx_binary,
		                  clock_wall_ms());
		timer_kick(gw);
	}
out:
	if (final)
		rx_reset(s);
}

/* --- peer facts --- */

/* A header's value, every line joined with ',' in order (lws does the joining); NULL when the
 * header is absent. Values of any length are read: a proxy header must never read as absent
 * because it is long (LOCAL-4 refuses those before the upgrade). */
static char *hdr_dup(struct lws *wsi, enum lws_token_indexes tok)
{
	int n = lws_hdr_total_length(wsi, tok);
	char one[1];
	char *buf;

	/* an empty line is present too: lws answers -1 for the first fragment of an absent header
	 * only, whatever the buffer size */
	if (n < 0 || (n == 0 && lws_hdr_copy_fragment(wsi, one, sizeof(one), tok, 0) == -1))
		return NULL;
	buf = malloc((size_t)n + 1);
	if (buf && lws_hdr_copy(wsi, buf, n + 1, tok) < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* A header lws does not know by name (the first line of it). */
static char *hdr_custom_dup(struct lws *wsi, const char *name)
{
	int n = lws_hdr_custom_length(wsi, name, (int)strlen(name));
	char *buf;

	if (n < 0)
		return NULL;
	buf = malloc((size_t)n + 1);
	if (buf && lws_hdr_custom_copy(wsi, buf, n + 1, name, (int)strlen(name)) < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

struct peer_headers {
	char *host, *xff, *real_ip, *forwarded, *fwd_host, *origin;
};

static void peer_headers_read(struct lws *wsi, struct peer_headers *h)
{
	h->host = hdr_dup(wsi, WSI_TOKEN_HOST);
	h->xff = hdr_dup(wsi, WSI_TOKEN_X_FORWARDED_FOR);
	h->real_ip = hdr_dup(wsi, WSI_TOKEN_HTTP_X_REAL_IP);
	h->origin = hdr_dup(wsi, WSI_TOKEN_ORIGIN);
	h->forwarded = hdr_custom_dup(wsi, "forwarded:");
	h->fwd_host = hdr_custom_dup(wsi, "x-forwarded-host:");
}

static void peer_headers_free(struct peer_headers *h)
{
	free(h->host);
	free(h->xff);
	free(h->real_ip);
	free(h->forwarded);
	free(h->fwd_host);
	free(h->origin);
}

/* LOCAL-4: a proxy header longer than the spec allows refuses the upgrade with 431. */
static int filter_upgrade(struct gateway *gw, struct lws *wsi)
{
	struct peer_headers h = {0};
	struct locality_headers lh;
	bool oversize;

	peer_headers_read(wsi, &h);
	lh = (struct locality_headers){.x_forwarded_for = h.xff,
	                               .x_real_ip = h.real_ip,
	                               .forwarded = h.forwarded,
	                               .x_forwarded_host = h.fwd_host};
	oversize = locality_headers_oversize(&lh);
	peer_headers_free(&h);
	if (!oversize)
		return 0;
	gateway_log(gw, CORE_LOG_WARN, "upgrade refused: 431, a proxy header exceeds %d bytes",
	            LOCALITY_HEADER_MAX);
	lws_return_http_status(wsi, 431, "proxy header too large");
	return -1;
}

/* An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d; proxies are configured and
 * matched by their plain address. */
static void peer_ip(struct lws *wsi, char *out, size_t outsz)
{
	const char *mapped = "::ffff:";

	out[0] = '\0';
	lws_get_peer_simple(wsi, out, outsz);
	if (strncasecmp(out, mapped, strlen(mapped)) == 0 && strchr(out + strlen(mapped), '.'))
		memmove(out, out + strlen(mapped), strlen(out + strlen(mapped)) + 1);
}

static int on_established(struct session *s, struct gateway *gw, struct lws *wsi)
{
	char ip[64];
	struct core_peer peer = {0};
	struct peer_headers h = {0};

	s->gw = gw;
	s->wsi = wsi;
	peer_ip(wsi, ip, sizeof(ip));
	peer_headers_read(wsi, &h);
	peer.ip = ip;
	peer.host = h.host;
	peer.xff = h.xff;
	peer.real_ip = h.real_ip;
	peer.forwarded = h.forwarded;
	peer.forwarded_host = h.fwd_host;
	peer.origin = h.origin;
	s->conn = core_conn_open(gw->core, s, &peer, clock_wall_ms());
	peer_headers_free(&h);
	if (!s->conn) {
		queue_free(s);
		s->wsi = NULL;
		return -1;
	}
	/* From here on LWS_CALLBACK_CLOSED hands the conn back to the core. */
	s->established = true;
	gw->sessions++;
	idle_touch(gw, s);
	timer_kick(gw);
	return 0;
}

/* --- plain HTTP --- */

static int http_reply(struct lws *wsi, const char *uri)
{
	unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start,
	                                  *end = buf + sizeof(buf) - 1;
	bool root = uri && strcmp(uri, "/") == 0;
	const char *body = root ? HTTP_BODY : "not found\n";

	if (lws_add_http_common_headers(wsi, root ? HTTP_STATUS_OK : HTTP_STATUS_NOT_FOUND,
	                                "text/plain", strlen(body), &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return 1;
	lws_callback_on_writable(wsi);
	return 0;
}

static int http_body(struct lws *wsi, bool root)
{
	const char *body = root ? HTTP_BODY : "not found\n";
	unsigned char buf[LWS_PRE + 64];
	size_t len = strlen(body);

	memcpy(buf + LWS_PRE, body, len);
	if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int)len)
		return 1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* --- the protocol callback --- */

static void close_unqueue(struct gateway *gw, struct session *s)
{
	if (!s->close_waiting)
		return;
	if (s->cq_prev)
		s->cq_prev->cq_next = s->cq_next;
	else
		gw->cq_head = s->cq_next;
	if (s->cq_next)
		s->cq_next->cq_prev = s->cq_prev;
	else
		gw->cq_tail = s->cq_prev;
	s->cq_prev = s->cq_next = NULL;
	s->close_waiting = false;
}

/* May s hand its close frame to lws now? If not, it waits in line, and close_turn wakes it. */
static bool close_pace(struct gateway *gw, struct session *s)
{
	if (gw->closes_turn < CLOSE_PACE) {
		close_unqueue(gw, s);
		gw->closes_turn++;
		return true;
	}
	if (!s->close_waiting) {
		s->cq_prev = gw->cq_tail;
		s->cq_next = NULL;
		*(gw->cq_tail ? &gw->cq_tail->cq_next : &gw->cq_head) = s;
		gw->cq_tail = s;
		s->close_waiting = true;
	}
	return false;
}

/* A new turn of the loop: the next CLOSE_PACE sessions in line may hand their close. */
static void close_turn(struct gateway *gw)
{
	unsigned k = 0;

	gw->closes_turn = 0;
	for (struct session *s = gw->cq_head; s && k < CLOSE_PACE; s = s->cq_next, k++)
		if (s->wsi)
			lws_callback_on_writable(s->wsi);
}

static int on_writeable(struct session *s)
{
	struct out_frame *f = s->head;

	if (s->ping_due && !s->closing) {
		/* lws hands an empty PONG to nobody: the payload makes the answer count */
		unsigned char ping[LWS_PRE + 4] = {0};

		s->ping_due = false;
		memcpy(ping + LWS_PRE, "idle", 4);
		if (lws_write(s->wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 4)
			return -1;
		if (s->head)
			lws_callback_on_writable(s->wsi);
		return 0;
	}
	if (!f) {
		if (s->closing && !s->close_handed) {
			if (!close_pace(s->gw, s))
				return 0;
			s->close_handed = true;
			lws_close_reason(s->wsi, (enum lws_close_status)s->close_code,
			                 (unsigned char *)s->close_reason, strlen(s->close_reason));
			return -1;
		}
		/* Once the close frame is lws's, a -1 here would drop the TCP connection before
		 * the peer's close frame came back: with the peer's data still unread, the kernel
		 * answers with a reset that discards what is not yet delivered, our close frame
		 * included, and the peer sees 1006. lws waits for that close frame (5 s at most),
		 * reading and dropping what comes before it, and then closes. */
		return 0;
	}
	/* Drain while the kernel takes frames: one frame per turn starves an operator that gets an
	 * event per pending node. lws keeps the rest of a partial write and reports the pipe choked
	 * until it is out, and holds back WRITEABLE till then, so the close never overtakes a frame. */
	do {
		f = s->head;
		s->head = f->next;
		if (!s->head)
			s->tail = NULL;
		if (f->response)
			s->queued_res -= f->len;
		else
			s->queued -= f->len;
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

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
	struct session *s = user;
	struct lws_context *ctx = lws_get_context(wsi);
	struct gateway *gw = ctx ? lws_context_user(ctx) : NULL;

	switch (reason) {
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
		/* wsi is the listener and user the accepted socket's address, not a session */
		return gw && user ? on_accept(gw, user) : 0;
	case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
		if (gw)
			on_adopted(gw, wsi);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		if (gw)
			on_wsi_destroy(gw, wsi);
		return 0;
	case LWS_CALLBACK_HTTP:
		if (!s)
			return 1;
		s->http_root = in && strcmp((const char *)in, "/") == 0;
		return http_reply(wsi, in);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return s ? http_body(wsi, s->http_root) : -1;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return gw ? filter_upgrade(gw, wsi) : -1;
	case LWS_CALLBACK_ESTABLISHED:
		if (!s || !gw)
			return -1;
		on_upgraded(gw, wsi);
		return on_established(s, gw, wsi);
	case LWS_CALLBACK_RECEIVE:
		if (!s || !s->conn)
			return -1;
		idle_touch(gw, s);
		on_receive(s, in, len);
		return 0;
	case LWS_CALLBACK_RECEIVE_PONG:
		if (s && s->established)
			idle_touch(gw, s);
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!s || !s->established)
			return 0;
		return on_writeable(s);
	case LWS_CALLBACK_CLOSED:
		if (!s || !s->established)
			return 0;
		s->established = false;
		s->closing = true;
		s->wsi = NULL;
		gw->sessions--;
		queue_free(s);
		rx_release(s);
		idle_unlist(gw, s);
		close_unqueue(gw, s);
		if (s->conn) {
			core_conn_closed(gw->core, s->conn, clock_wall_ms());
			s->conn = NULL;
			timer_kick(gw);
		}
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

/* First in the list, so clients that ask for no subprotocol (OpenClaw's) get it. */
static const struct lws_protocols protocols[] = {
        {"clawpair", callback, sizeof(struct session), RX_CHUNK, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* --- lifecycle --- */

/* The lws context, on a libev loop when lws has the plugin for it, else on lws's own poll(). */
static int create_context(struct gateway *gw)
{
	struct lws_context_creation_info info;

	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	/* room for the four proxy headers at their limit (LOCALITY_HEADER_MAX) and the rest, so a
	 * long header reaches filter_upgrade and gets its 431 */
	info.max_http_header_data = 16384;
	info.user = gw;
	info.port = CONTEXT_PORT_NO_LISTEN;
	if (gw->tls_cert_path)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
#ifdef CLAWPAIR_WITH_LIBEV
	if (!getenv("CLAWPAIR_POLL_LOOP")) {
		gw->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
		if (gw->loop) {
			ev_timer_init(&gw->ev_deadline, ev_timer_cb, 0., 0.);
			ev_timer_init(&gw->ev_wake, ev_wake_cb, 0., 0.);
			ev_timer_init(&gw->ev_pump, ev_pump_cb, 1., 1.);
			info.options |= LWS_SERVER_OPTION_LIBEV;
			info.foreign_loops = (void **)&gw->loop;
			gw->ctx = lws_create_context(&info);
			if (gw->ctx) {
				ev_timer_start(gw->loop, &gw->ev_pump);
			} else {
				/* no libev plugin for libwebsockets: its own poll() loop still works */
				ev_loop_destroy(gw->loop);
				gw->loop = NULL;
				info.options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
				info.foreign_loops = NULL;
			}
		}
	}
	if (!gw->ctx)
#endif
		gw->ctx = lws_create_context(&info);
	return gw->ctx ? 0 : -1;
}

/* Binds l's address and port once on a socket of its own, as the listener will be bound: lws
 * does not say why it cannot listen, and for an address this machine does not have it waits for
 * the address to come up instead of failing. Returns 0, or the errno of socket() or bind(). */
static int bind_probe(const struct gateway_listen *l)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	bool v6 = strchr(l->host, ':') != NULL;
	int fd, one = 1, zero = 0, rc = 0;

	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)l->port);
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons((uint16_t)l->port);
	if (inet_pton(v6 ? AF_INET6 : AF_INET, l->host,
	              v6 ? (void *)&sin6.sin6_addr : (void *)&sin.sin_addr) != 1)
		return EINVAL;
	fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	/* as lws sets them: a port in TIME_WAIT is free, and "::" also takes IPv4 */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (v6 && strcmp(l->host, "::") == 0)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (v6 ? bind(fd, (struct sockaddr *)&sin6, sizeof(sin6))
	       : bind(fd, (struct sockaddr *)&sin, sizeof(sin)))
		rc = errno;
	close(fd);
	return rc;
}

/* One vhost per listen address (gw->listen), all on the one protocol. An address that cannot be
 * bound fails the start with the reason ("cannot listen on 1.2.3.4:18789: Cannot assign
 * requested address"). */
static int open_listeners(struct gateway *gw, size_t n, char *err, size_t errsz)
{
	struct lws_context_creation_info info;

	for (size_t i = 0; i < n; i++) {
		const struct gateway_listen *l = &gw->listen[i];
		bool v6 = strchr(l->host, ':') != NULL;
		bool any = strcmp(l->host, "0.0.0.0") == 0 || strcmp(l->host, "::") == 0;
		int why;

		memset(&info, 0, sizeof(info));
		snprintf(gw->vhost_names[i], sizeof(gw->vhost_names[i]), "listen%zu", i);
		info.vhost_name = gw->vhost_names[i];
		info.port = l->port;
		info.iface = any ? NULL : l->host;
		info.protocols = protocols;
		info.user = gw;
		info.retry_and_idle_policy = &no_idle_check;
		if (gw->tls_cert_path) {
			info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
			info.ssl_cert_filepath = gw->tls_cert_path;
			info.ssl_private_key_filepath = gw->tls_key_path;
			/* TLS 1.2 at least */
			info.ssl_options_set =
			        SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1;
		}
		/* a connection that has not upgraded gets no longer than the handshake ([LIMIT-4]) */
		info.timeout_secs_ah_idle = gw->upgrade_timeout_s;
		info.keepalive_timeout = (int)gw->upgrade_timeout_s;
		if (!v6)
			info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
		else if (strcmp(l->host, "::") == 0)
			info.options |= LWS_SERVER_OPTION_IPV6_V6ONLY_MODIFY;
		info.options |= LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
		why = bind_probe(l);
		gw->vhosts[i] = why ? NULL : lws_create_vhost(gw->ctx, &info);
		if (!gw->vhosts[i] || lws_get_vhost_listen_port(gw->vhosts[i]) <= 0) {
			snprintf(err, errsz, "cannot listen on %s%s%s:%d%s%s", v6 ? "[" : "",
			         l->host, v6 ? "]" : "", l->port, why ? ": " : "",
			         why ? strerror(why) : "");
			return -1;
		}
		gw->n_vhosts++;
	}
	return 0;
}

static unsigned or_default(unsigned v, unsigned def)
{
	return v ? v : def;
}

/* The limits of spec §8.8 that live in the adapter; 0 fields take their defaults. */
static int limits_init(struct gateway *gw, const struct gateway_opts *o)
{
	const struct core_config *c = o->core;
	uint64_t hs = c->handshake_timeout_ms ? c->handshake_timeout_ms
	                                      : CORE_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	struct rlimit rl;

	gw->max_connections = or_default(o->max_connections, GATEWAY_DEFAULT_MAX_CONNECTIONS);
	/* Never so many that accept() could fail for want of a descriptor: lws would then spin
	 * on the listener, and the store could not open its files. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		rlim_t room = rl.rlim_cur > 2 * GATEWAY_FD_HEADROOM
		                      ? rl.rlim_cur - GATEWAY_FD_HEADROOM
		                      : GATEWAY_FD_HEADROOM;

		if (gw->max_connections > room) {
			if (o->max_connections)
				gateway_log(gw, CORE_LOG_WARN,
				            "--max-connections %u lowered to %u: %llu descriptors",
				            gw->max_connections, (unsigned)room,
				            (unsigned long long)rl.rlim_cur);
			gw->max_connections = (unsigned)room;
		}
	}
	gw->loopback_reserve = gw->max_connections / 4 < GATEWAY_LOOPBACK_RESERVE
	                               ? gw->max_connections / 4
	                               : GATEWAY_LOOPBACK_RESERVE;
	gw->max_upgrading_per_ip =
	        or_default(o->max_upgrading_per_ip, GATEWAY_DEFAULT_MAX_UPGRADING_PER_IP);
	gw->max_upgrading = or_default(o->max_upgrading, GATEWAY_DEFAULT_MAX_UPGRADING);
	gw->rx_budget[RX_UNAUTH] =
	        o->max_partial_unauth ? o->max_partial_unauth : GATEWAY_DEFAULT_PARTIAL_UNAUTH;
	gw->rx_budget[RX_AUTH] =
	        o->max_partial_auth ? o->max_partial_auth : GATEWAY_DEFAULT_PARTIAL_AUTH;
	gw->message_timeout_ms =
	        o->message_timeout_ms ? o->message_timeout_ms : GATEWAY_DEFAULT_MESSAGE_TIMEOUT_MS;
	gw->upgrade_timeout_s = (unsigned)((hs + 999) / 1000);
	gw->accepting.fd = -1;
	gw->log_refused.what = "connection refused: too many connections";
	gw->log_evicted.what = "unfinished connection closed to make room for a newer one";
	gw->log_budget.what = cp_err_info(CP_ERR_RX_BUDGET)->close_reason;
	gw->log_timeout.what = cp_err_info(CP_ERR_MESSAGE_TIMEOUT)->close_reason;
	if (c->n_trusted_proxies) {
		gw->trusted = calloc(c->n_trusted_proxies, sizeof(*gw->trusted));
		if (!gw->trusted)
			return -1;
		for (size_t i = 0; i < c->n_trusted_proxies; i++) {
			const char *a = c->trusted_proxies[i];

			if (!a || !locality_addr_parse(a, strlen(a), &gw->trusted[i]))
				return -1;
		}
		gw->n_trusted = c->n_trusted_proxies;
	}
	gateway_log(gw, CORE_LOG_INFO,
	            "limits: %u connections (the last %u for loopback peers), %u upgrading (%u per "
	            "address), partial messages %zu / %zu bytes (before / after hello-ok), message "
	            "timeout %llu ms",
	            gw->max_connections, gw->loopback_reserve, gw->max_upgrading,
	            gw->max_upgrading_per_ip, gw->rx_budget[RX_UNAUTH], gw->rx_budget[RX_AUTH],
	            (unsigned long long)gw->message_timeout_ms);
	return 0;
}

int gateway_create(const struct gateway_opts *opts, struct gateway **out, char *err, size_t errsz)
{
	struct core_io io = {0};
	struct gateway *gw;
	size_t n_alloc = opts->n_listen ? opts->n_listen : 1;

	*out = NULL;
	gw = calloc(1, sizeof(*gw));
	if (!gw) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	gw->log_level = opts->log_level;
	gw->tls_cert_path = opts->tls_cert_path;
	gw->tls_key_path = opts->tls_key_path;
	gw->timer_at = UINT64_MAX;
	gw->max_payload =
	        opts->core->max_payload ? opts->core->max_payload : CORE_DEFAULT_MAX_PAYLOAD;
	if (limits_init(gw, opts) < 0) {
		snprintf(err, errsz, "cannot set up the connection limits");
		goto fail;
	}
	io.user = gw;
	io.send = io_send;
	io.send_response = io_send_response;
	io.close = io_close;
	io.log = io_log;
	if (core_create(opts->core, &io, opts->store, clock_wall_ms(), &gw->core) < 0) {
		snprintf(err, errsz, "cannot create the pairing core");
		goto fail;
	}
	store_set_batching(opts->store, true);
	lws_set_log_level(opts->log_level >= CORE_LOG_DEBUG ? LLL_ERR | LLL_WARN | LLL_NOTICE : 0,
	                  lws_log_emit);
	if (create_context(gw) < 0) {
		snprintf(err, errsz, "cannot create the libwebsockets context");
		goto fail;
	}
	gw->vhosts = calloc(n_alloc, sizeof(*gw->vhosts));
	gw->vhost_names = calloc(n_alloc, sizeof(*gw->vhost_names));
	gw->listen = calloc(n_alloc, sizeof(*gw->listen));
	if (!gw->vhosts || !gw->vhost_names || !gw->listen) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	memcpy(gw->listen, opts->listen, opts->n_listen * sizeof(*gw->listen));
	if (open_listeners(gw, opts->n_listen, err, errsz) < 0)
		goto fail;
	timer_set(gw, core_run_timers(gw->core, clock_wall_ms()));
	*out = gw;
	return 0;
fail:
	gateway_destroy(gw);
	return -1;
}

void gateway_destroy(struct gateway *gw)
{
	if (!gw)
		return;
	gw->stopping = true;
	/* Destroying the context closes what is left, which calls back into the core. */
	if (gw->ctx)
		lws_context_destroy(gw->ctx);
#ifdef CLAWPAIR_WITH_LIBEV
	if (gw->loop) {
		ev_timer_stop(gw->loop, &gw->ev_deadline);
		ev_timer_stop(gw->loop, &gw->ev_wake);
		ev_timer_stop(gw->loop, &gw->ev_pump);
		ev_loop_destroy(gw->loop);
	}
#endif
	core_destroy(gw->core);
	for (size_t i = 0; i < TCP_BUCKETS; i++)
		while (gw->peers[i]) {
			struct tcp_peer *p = gw->peers[i];

			gw->peers[i] = p->next;
			free(p);
		}
	free(gw->trusted);
	free(gw->vhosts);
	free(gw->vhost_names);
	free(gw->listen);
	free(gw);
}

int gateway_listen_port(const struct gateway *gw, size_t i)
{
	if (!gw || i >= gw->n_vhosts)
		return -1;
	return lws_get_vhost_listen_port(gw->vhosts[i]);
}

void gateway_wake(struct gateway *gw)
{
	if (gw && gw->ctx)
		lws_cancel_service(gw->ctx);
}

int gateway_run(struct gateway *gw, volatile sig_atomic_t *stop, int flush_ms)
{
	uint64_t deadline;
	int rc = 0;

	gateway_log(gw, CORE_LOG_DEBUG, "event loop: %s",
#ifdef CLAWPAIR_WITH_LIBEV
	            gw->loop ? "libev" :
#endif
	                     "poll");
	while (!*stop) {
		if (loop_once(gw, -1) < 0) {
			gateway_log(gw, CORE_LOG_ERROR, "event loop failed");
			rc = -1;
			break;
		}
	}
	gateway_log(gw, CORE_LOG_INFO, "shutting down: closing %u connection(s)", gw->sessions);
	gw->stopping = true;
	timer_cancel(gw);
	core_shutdown(gw->core, clock_wall_ms());
	if (flush_turn(gw) < 0)
		rc = -1;
	/* A session ends (LWS_CALLBACK_CLOSED) once its close handshake is done: every queued
	 * frame and the close frame written, the peer's close frame read. Monotonic: a wall
	 * clock step must not cut the flush short. */
	deadline = clock_mono_ms() + (uint64_t)(flush_ms > 0 ? flush_ms : 0);
	while (rc == 0 && gw->sessions > 0 && clock_mono_ms() < deadline) {
		/* Bounds each wait so the deadline is seen even when no socket moves. */
		if (loop_once(gw, 50) < 0)
			rc = -1;
	}
	lws_sul_cancel(&gw->wake);
	if (gw->sessions > 0)
		gateway_log(gw, CORE_LOG_WARN, "%u connection(s) still open after %d ms: dropped",
		            gw->sessions, flush_ms);
	return rc;
}
