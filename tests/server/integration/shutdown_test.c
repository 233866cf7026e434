/* shutdown_test.c: SIGTERM on the real clawpair-gateway with 50 connections, round after round:
 * every authenticated and every held-open connection must read close 1001 `gateway shutting
 * down` (CP_ERR_SHUTDOWN), a held connect its error response first, and the process must exit 0.
 * Some clients read slowly behind a small receive window while they keep sending, as a busy
 * node host on a LAN does: a gateway that drops the TCP connection before the client's close
 * frame came back has the kernel reset it, which discards the close frame still queued. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "clock.h"
#include "connect_build.h"
#include "errors.h"
#include "harness.h"
#include "json.h"
#include "loadgen.h"

#define N_OPS 10
#define N_NODES 10
#define N_HELD 10
#define N_RAW 20 /* backlogged operators on raw sockets */
#define N_CONNS (N_OPS + N_NODES + N_HELD)
#define RAW_RCVBUF 2048
#define RAW_BACKLOG 300 /* requests whose answers pile up behind the small window */
#define RAW_READ 2048 /* bytes a raw client reads per turn */

enum kind { K_OP, K_NODE, K_HELD };

struct peer {
	struct h_conn hc;
	enum kind kind;
	bool held_answered; /* K_HELD: the SHUTDOWN res to its connect came before the close */
};

/* A WebSocket client on a plain socket: it controls its receive window and its pace. */
struct raw {
	int fd;
	unsigned char *in;
	size_t in_len, in_cap;
	bool got_close, ended; /* ended: EOF or reset (reset_seen says which) */
	bool reset_seen;
	int close_code;
	char close_reason[128];
	unsigned sent;
};

struct round {
	struct client_ctx *ctx;
	struct kit_gateway gw;
	struct peer peers[N_CONNS];
	struct raw raws[N_RAW];
	char first[512]; /* the first failure of the round */
};

static const char *const op_scopes[] = {"operator.pairing", "operator.read", NULL};

/* 20 rounds: enough to catch a race one restart in eight showed. Under valgrind
 * a round takes seconds, and what it looks for there is memory errors: 3. */
static int rounds(void)
{
	const char *s = getenv("CLAWPAIR_SHUTDOWN_ROUNDS");
	int def = under_valgrind() ? 3 : 20;
	int n = s ? atoi(s) : def;

	return n > 0 ? n : def;
}

/* --- the raw client --- */

static int raw_write_all(int fd, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		if (poll(&pfd, 1, kit_ms(2000)) <= 0)
			return -1;
	}
	return 0;
}

/* A masked client frame (RFC 6455 5.3) of opcode op. */
static int raw_send_frame(struct raw *r, int op, const void *data, size_t len)
{
	unsigned char *buf = malloc(len + 14);
	static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
	size_t h = 0;
	int rc;

	if (!buf)
		return -1;
	buf[h++] = (unsigned char)(0x80 | op);
	if (len < 126) {
		buf[h++] = (unsigned char)(0x80 | len);
	} else {
		buf[h++] = 0x80 | 126;
		buf[h++] = (unsigned char)(len >> 8);
		buf[h++] = (unsigned char)len;
	}
	memcpy(buf + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < len; i++)
		buf[h + i] = ((const unsigned char *)data)[i] ^ mask[i % 4];
	rc = raw_write_all(r->fd, buf, h + len);
	free(buf);
	return rc;
}

static int raw_send_text(struct raw *r, char *text)
{
	int rc = text ? raw_send_frame(r, 1, text, strlen(text)) : -1;

	free(text);
	return rc;
}

/* Reads at most max bytes that are there now; notes EOF and resets. */
static void raw_read(struct raw *r, size_t max)
{
	ssize_t n;

	if (r->ended)
		return;
	if (r->in_cap - r->in_len < max) {
		size_t cap = r->in_len + max + 4096;
		unsigned char *p = realloc(r->in, cap);

		if (!p)
			return;
		r->in = p;
		r->in_cap = cap;
	}
	n = recv(r->fd, r->in + r->in_len, max, MSG_DONTWAIT);
	if (n > 0)
		r->in_len += (size_t)n;
	else if (n == 0)
		r->ended = true;
	else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		r->ended = r->reset_seen = true;
}

/* Parses whole frames off the input: text frames go to text_out (first one only, malloc'd) when
 * it is not NULL; a close frame is noted and answered with our own, as every client does. */
static void raw_parse(struct raw *r, char **text_out)
{
	size_t off = 0;

	while (!r->got_close && r->in_len - off >= 2) {
		const unsigned char *p = r->in + off;
		size_t len = p[1] & 0x7f, h = 2;

		if (len == 126) {
			if (r->in_len - off < 4)
				break;
			len = (size_t)p[2] << 8 | p[3];
			h = 4;
		} else if (len == 127) {
			if (r->in_len - off < 10)
				break;
			len = 0;
			for (int i = 2; i < 10; i++)
				len = len << 8 | p[i];
			h = 10;
		}
		if (r->in_len - off < h + len)
			break;
		if ((p[0] & 0x0f) == 8) {
			r->got_close = true;
			r->close_code = len >= 2 ? (p[h] << 8 | p[h + 1]) : 1005;
			snprintf(r->close_reason, sizeof(r->close_reason), "%.*s",
			         len > 2 ? (int)(len - 2) : 0, (const char *)p + h + 2);
			raw_send_frame(r, 8, p + h, len >= 2 ? 2 : 0);
		} else if (text_out && !*text_out && (p[0] & 0x0f) == 1) {
			*text_out = strndup((const char *)p + h, len);
		}
		off += h + len;
	}
	memmove(r->in, r->in + off, r->in_len - off);
	r->in_len -= off;
}

/* The next text frame within timeout_ms (malloc'd), or NULL. */
static char *raw_next_text(struct raw *r, int timeout_ms)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;
	char *text = NULL;

	while (!text && !r->ended && !r->got_close && clock_mono_ms() < deadline) {
		struct pollfd pfd = {.fd = r->fd, .events = POLLIN};

		raw_parse(r, &text);
		if (text)
			break;
		if (poll(&pfd, 1, 50) > 0)
			raw_read(r, 65536);
	}
	return text;
}

/* The end of the HTTP response head in the input, or NULL. */
static char *head_end(struct raw *r)
{
	for (size_t i = 0; i + 4 <= r->in_len; i++)
		if (memcmp(r->in + i, "\r\n\r\n", 4) == 0)
			return (char *)r->in + i;
	return NULL;
}

static int raw_upgrade(struct raw *r, int port)
{
	char req[256];
	char *end = NULL;
	uint64_t deadline = clock_mono_ms() + (uint64_t)kit_ms(3000);

	snprintf(req, sizeof(req),
	         "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
	         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	         "Sec-WebSocket-Version: 13\r\n\r\n",
	         port);
	if (raw_write_all(r->fd, (const unsigned char *)req, strlen(req)) < 0)
		return -1;
	while (!end && !r->ended && clock_mono_ms() < deadline) {
		struct pollfd pfd = {.fd = r->fd, .events = POLLIN};

		if (poll(&pfd, 1, 50) > 0)
			raw_read(r, 4096);
		end = head_end(r);
	}
	if (!end || r->in_len < 12 || memcmp(r->in, "HTTP/1.1 101", 12) != 0)
		return -1;
	end += 4;
	r->in_len -= (size_t)(end - (char *)r->in);
	memmove(r->in, end, r->in_len);
	return 0;
}

/* Opens an operator with a small receive window and waits for hello-ok. */
static int raw_open(struct raw *r, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int rcvbuf = RAW_RCVBUF;
	struct connect_spec s;
	char *text;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (r->fd < 0 || setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0 ||
	    connect(r->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || raw_upgrade(r, port) < 0)
		return -1;
	text = raw_next_text(r, kit_ms(3000)); /* connect.challenge */
	free(text);
	loadgen_operator_spec(&s, H_TOKEN, op_scopes, 2);
	if (raw_send_text(r, connect_request_build("c1", &s, NULL, clock_wall_ms())) < 0)
		return -1;
	text = raw_next_text(r, kit_ms(3000));
	if (text && strstr(text, "\"hello-ok\""))
		rc = 0;
	free(text);
	return rc;
}

static void raw_request(struct raw *r)
{
	char text[160];

	snprintf(text, sizeof(text),
	         "{\"type\":\"req\",\"id\":\"q%u\",\"method\":\"no.such.method.with.a.long.name\","
	         "\"params\":{}}",
	         r->sent++);
	raw_send_frame(r, 1, text, strlen(text));
}

static void raw_finish(struct raw *r)
{
	if (r->fd > 0)
		close(r->fd);
	free(r->in);
	r->fd = -1;
	r->in = NULL;
}

/* --- the round --- */

static void round_finish(struct round *r)
{
	for (size_t i = 0; i < N_CONNS; i++)
		h_close(&r->peers[i].hc);
	for (size_t i = 0; i < N_RAW; i++)
		raw_finish(&r->raws[i]);
	kit_gateway_cleanup(&r->gw);
	client_ctx_destroy(r->ctx);
	r->ctx = NULL;
}

/* Operators, locally paired nodes (hello-ok), remote nodes held, backlogged raw operators. */
static void open_all(struct round *r)
{
	struct identity id;
	char xff[32];
	cJSON *j;

	for (size_t i = 0; i < N_CONNS; i++) {
		struct peer *p = &r->peers[i];

		p->kind = i < N_OPS ? K_OP : i < N_OPS + N_NODES ? K_NODE : K_HELD;
		if (p->kind == K_OP) {
			assert_int_equal(h_operator(r->ctx, &r->gw, op_scopes, &p->hc), 0);
			continue;
		}
		assert_int_equal(identity_generate(&id), 0);
		snprintf(xff, sizeof(xff), "10.77.1.%zu", i);
		assert_int_equal(h_node_begin(r->ctx, &r->gw, p->kind == K_HELD ? xff : NULL, &id,
		                              NULL, &p->hc),
		                 0);
		if (p->kind == K_NODE) {
			j = h_wait_res(&p->hc, "c1", kit_ms(3000));
			assert_true(h_is_res_ok(j));
		} else {
			j = h_wait_event(&p->hc, "connect.pending", kit_ms(3000));
			assert_non_null(j);
		}
		cJSON_Delete(j);
	}
	for (size_t i = 0; i < N_RAW; i++) {
		assert_int_equal(raw_open(&r->raws[i], r->gw.proc.port), 0);
		for (int k = 0; k < RAW_BACKLOG; k++)
			raw_request(&r->raws[i]);
	}
}

/* Traffic in flight: every authenticated connection has a request out. */
static void send_in_flight(struct round *r)
{
	char id[32];

	for (size_t i = 0; i < N_CONNS; i++) {
		struct peer *p = &r->peers[i];

		if (p->hc.closed)
			continue;
		if (p->kind == K_OP)
			h_send_req(&p->hc, "node.list", NULL, id);
		else if (p->kind == K_NODE)
			h_send_req(&p->hc, "node.event", NULL, id);
	}
}

/* Reads what conn p has queued without waiting; true once it is closed. */
static bool drain_peer(struct peer *p)
{
	cJSON *j;

	while ((j = h_next(&p->hc, 0)) != NULL) {
		const char *type = h_str(j, "type");

		if (p->kind == K_HELD && type && strcmp(type, "res") == 0 &&
		    strcmp(h_str(j, "id") ? h_str(j, "id") : "", "c1") == 0 &&
		    strcmp(h_err_details_code(j), cp_err_info(CP_ERR_SHUTDOWN)->details_code) == 0)
			p->held_answered = true;
		cJSON_Delete(j);
	}
	return p->hc.closed;
}

/* A raw client's turn: a little reading, and (until the close came) one more request. */
static bool step_raw(struct raw *r)
{
	if (r->got_close || r->ended)
		return true;
	raw_read(r, RAW_READ);
	raw_parse(r, NULL);
	if (!r->got_close && !r->ended)
		raw_request(r);
	return r->got_close || r->ended;
}

/* Pumps every connection until all are closed or the deadline passes. */
static void pump_until_closed(struct round *r, int timeout_ms)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;

	for (;;) {
		size_t open = 0;

		for (size_t i = 0; i < N_CONNS; i++)
			if (!drain_peer(&r->peers[i]))
				open++;
		for (size_t i = 0; i < N_RAW; i++)
			if (!step_raw(&r->raws[i]))
				open++;
		if (!open || clock_mono_ms() >= deadline)
			return;
		client_service(r->ctx, 2);
	}
}

static void check_peers(struct round *r, int round_no)
{
	const struct cp_err_info *e = cp_err_info(CP_ERR_SHUTDOWN);
	static const char *const names[] = {"operator", "node", "held node"};

	for (size_t i = 0; i < N_CONNS; i++) {
		struct peer *p = &r->peers[i];

		if (!p->hc.closed)
			kit_note_first(r->first, sizeof(r->first), "round %d: %s %zu: not closed",
			               round_no, names[p->kind], i);
		else if (p->hc.close_code != e->close_code ||
		         strcmp(p->hc.close_reason, e->close_reason) != 0)
			kit_note_first(r->first, sizeof(r->first),
			               "round %d: %s %zu: closed %d '%s', not %d '%s'", round_no,
			               names[p->kind], i, p->hc.close_code, p->hc.close_reason,
			               e->close_code, e->close_reason);
		else if (p->kind == K_HELD && !p->held_answered)
			kit_note_first(r->first, sizeof(r->first),
			               "round %d: held node %zu: closed without the %s response to "
			               "its connect",
			               round_no, i, e->details_code);
	}
}

static void check_raws(struct round *r, int round_no)
{
	const struct cp_err_info *e = cp_err_info(CP_ERR_SHUTDOWN);

	for (size_t i = 0; i < N_RAW; i++) {
		struct raw *w = &r->raws[i];

		if (!w->got_close)
			kit_note_first(
			        r->first, sizeof(r->first),
			        "round %d: backlogged operator %zu: %s without a close frame "
			        "(a client reports 1006)",
			        round_no, i,
			        w->reset_seen ? "connection reset"
			        : w->ended    ? "connection ended"
			                      : "still open");
		else if (w->close_code != e->close_code ||
		         strcmp(w->close_reason, e->close_reason) != 0)
			kit_note_first(r->first, sizeof(r->first),
			               "round %d: backlogged operator %zu: closed %d '%s'",
			               round_no, i, w->close_code, w->close_reason);
	}
}

/* One round: the connections, SIGTERM; stalled: the clients read nothing until the gateway has
 * exited (a client that is slow to answer the close). */
static void one_round(int round_no, bool stalled)
{
	struct client_ctx_opts co = {.max_conns = N_CONNS + 16};
	struct round *r = calloc(1, sizeof(*r));
	int status;

	assert_non_null(r);
	r->gw.proc.pid = -1;
	r->ctx = client_ctx_create(&co);
	assert_non_null(r->ctx);
	assert_int_equal(h_gateway_start(&r->gw, NULL), 0);
	open_all(r);
	send_in_flight(r);
	usleep(50 * 1000); /* the answers reach the gateway's send queues */
	assert_int_equal(kill(r->gw.proc.pid, SIGTERM), 0);
	if (stalled) {
		status = spawn_wait(&r->gw.proc, kit_ms(15000));
		pump_until_closed(r, kit_ms(5000));
	} else {
		pump_until_closed(r, kit_ms(10000));
		status = spawn_wait(&r->gw.proc, kit_ms(15000));
	}
	check_peers(r, round_no);
	if (!stalled)
		check_raws(r, round_no);
	if (status != 0)
		kit_note_first(r->first, sizeof(r->first), "round %d: exit status %d", round_no,
		               status);
	round_finish(r);
	if (r->first[0]) {
		fprintf(stderr, "# %s\n", r->first);
		free(r);
		fail_msg("%s", "a connection did not read close 1001 before the gateway exited");
	}
	free(r);
}

static void test_sigterm_every_connection_1001(void **state)
{
	int n = rounds();

	(void)state;
	for (int i = 1; i <= n; i++)
		one_round(i, false);
}

/* Clients that answer nothing until the gateway is gone: the flush is bounded (exit 0 within
 * it), and the close frames are on their sockets. */
static void test_sigterm_stalled_clients_1001(void **state)
{
	(void)state;
	for (int i = 1; i <= 2; i++)
		one_round(i, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sigterm_every_connection_1001),
	        cmocka_unit_test(test_sigterm_stalled_clients_1001),
	};

	signal(SIGPIPE, SIG_IGN);
	if (identity_global_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
