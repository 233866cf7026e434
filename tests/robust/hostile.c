/* hostile.c: hostile load against the real gateway (spec §8.8): a flood of pending requests, a
 * flood of sockets that never send connect, an idle TCP flood, and messages that never end, each
 * bounded in count and time, all on loopback. Each prints what it measured (the gateway's RSS,
 * descriptors and CPU, and the latency of a loopback operator's device.pair.list) and checks
 * that the limits held and the operator was served.
 *
 * CLAWPAIR_HOSTILE_GATEWAY=PATH runs the attacks against another gateway binary and
 * CLAWPAIR_HOSTILE_MEASURE=1 only reports (no checks, no options the binary may not know): how
 * the figures of a gateway without these limits were taken. CLAWPAIR_HOSTILE_ONLY=NAME runs one
 * test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "errors.h"
#include "gateway.h"
#include "json.h"
#include "loadgen.h"

#define TOKEN "hostile-token"
#define MAX_INFLIGHT 32
#define FRAME_LEN 524000 /* just under maxPayload */
#define PARTIAL_LEN 500000 /* what is sent of it */

struct fix {
	struct kit_gateway gw;
	char tmp[64], log_path[128];
	struct client_ctx *ctx;
	struct loadgen_op op; /* a loopback operator, connected before the attack */
	bool op_up;
	int scale;
	long clk_tck;
};

static bool measure_only(void)
{
	const char *m = getenv("CLAWPAIR_HOSTILE_MEASURE");

	return m && *m && strcmp(m, "0") != 0;
}

/* A check, or in measure-only mode a line saying what would have failed. */
#define CHECK(cond, ...)                                                              \
	do {                                                                          \
		if (!(cond)) {                                                        \
			if (measure_only())                                           \
				printf("# (not checked) " __VA_ARGS__), printf("\n"); \
			else                                                          \
				fail_msg(__VA_ARGS__);                                \
		}                                                                     \
	} while (0)

/* ---- the gateway and its loopback operator ---- */

/* new_only: options a gateway without these limits does not know (left out in measure mode).
 * state_dir: NULL for a fresh one in the kit's temp dir. */
static void fix_start_in(struct fix *f, const char *name, const char *trusted,
                         const char *const *extra, const char *const *new_only,
                         const char *state_dir)
{
	const char *args[32];
	size_t n = 0;
	char err[256] = "";
	struct kit_gateway_opts go = {0};

	memset(f, 0, sizeof(*f));
	f->scale = under_valgrind() ? 10 : 1;
	f->clk_tck = sysconf(_SC_CLK_TCK);
	assert_int_equal(kit_tempdir(name, f->tmp, sizeof(f->tmp)), 0);
	snprintf(f->log_path, sizeof(f->log_path), "%s/gateway.log", f->tmp);
	for (size_t i = 0; extra && extra[i] && n < 30; i++)
		args[n++] = extra[i];
	for (size_t i = 0; !measure_only() && new_only && new_only[i] && n < 30; i++)
		args[n++] = new_only[i];
	args[n] = NULL;
	go.exe = getenv("CLAWPAIR_HOSTILE_GATEWAY");
	go.state_dir = state_dir;
	go.token = TOKEN;
	go.trusted_proxy = trusted;
	go.log_level = "warn";
	go.extra = args;
	go.log_path = f->log_path;
	go.memcheck = under_valgrind();
	go.timeout_ms = 10000 * f->scale;
	if (kit_gateway_start(&f->gw, &go, err, sizeof(err)) != 0)
		fail_msg("gateway start: %s", err);
	f->ctx = client_ctx_create(&(struct client_ctx_opts){.max_conns = 8192, .epoll = true});
	assert_non_null(f->ctx);
}

static void fix_start(struct fix *f, const char *name, const char *trusted,
                      const char *const *extra, const char *const *new_only)
{
	fix_start_in(f, name, trusted, extra, new_only, NULL);
}

static int fix_op_connect(struct fix *f, struct loadgen_op *op, char *err, size_t errsz)
{
	memset(op, 0, sizeof(*op));
	return loadgen_op_connect(f->ctx, op, f->gw.proc.url, TOKEN, NULL, 0, 5000 * f->scale, err,
	                          errsz);
}

static void fix_op(struct fix *f)
{
	char err[256] = "";

	if (f->op_up && !f->op.closed)
		return;
	if (f->op_up)
		loadgen_op_close(&f->op);
	f->op_up = fix_op_connect(f, &f->op, err, sizeof(err)) == 0;
	CHECK(f->op_up, "operator connect: %s", err);
}

static void fix_stop(struct fix *f)
{
	int rc;

	if (f->op_up)
		loadgen_op_close(&f->op);
	client_ctx_destroy(f->ctx);
	rc = kit_gateway_stop(&f->gw, SIGTERM, 10000 * f->scale);
	if (!measure_only() && rc != 0)
		printf("# gateway log: %s\n", f->log_path);
	CHECK(rc == 0, "gateway exit status %d (log %s)", rc, f->log_path);
	kit_gateway_cleanup(&f->gw);
	if (rc == 0)
		remove_tree(f->tmp);
}

static struct loadgen_proc proc(struct fix *f)
{
	struct loadgen_proc p = {0};

	loadgen_proc_read(f->gw.proc.pid, &p);
	return p;
}

static double cpu_pct(const struct fix *f, const struct loadgen_proc *a, uint64_t t_a,
                      const struct loadgen_proc *b, uint64_t t_b)
{
	double secs = (double)(t_b - t_a) / 1000.0;

	return secs > 0 ? 100.0 * (double)(b->cpu_ticks - a->cpu_ticks) / (double)f->clk_tck / secs
	                : 0;
}

/* The persistent operator's answer time for method (ms), or -1; n_pending gets the size of
 * payload.pending when there is one. */
static double op_call_ms(struct fix *f, const char *method, int timeout_ms, long *n_pending)
{
	cJSON *payload = NULL;
	char err[256] = "";
	uint64_t t0 = clock_mono_us();
	int rc;

	fix_op(f);
	if (!f->op_up)
		return -1;
	rc = loadgen_op_call_wait(f->ctx, &f->op, method, NULL, timeout_ms, &payload, err,
	                          sizeof(err));
	if (rc != 0) {
		printf("# operator %s: %s%s\n", method, err,
		       f->op.closed ? " (connection closed)" : "");
		return -1;
	}
	if (n_pending)
		*n_pending =
		        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(payload, "pending"));
	cJSON_Delete(payload);
	return (double)(clock_mono_us() - t0) / 1000.0;
}

/* A new loopback operator: connect, device.pair.list, leave. Returns the ms it took, -1 when
 * refused or timed out. */
static double fresh_op_ms(struct fix *f, int timeout_ms)
{
	struct loadgen_op op;
	cJSON *payload = NULL;
	char err[256] = "";
	uint64_t t0 = clock_mono_us();
	double ms = -1;

	if (fix_op_connect(f, &op, err, sizeof(err)) == 0 &&
	    loadgen_op_call_wait(f->ctx, &op, "device.pair.list", NULL, timeout_ms, &payload, err,
	                         sizeof(err)) == 0)
		ms = (double)(clock_mono_us() - t0) / 1000.0;
	cJSON_Delete(payload);
	loadgen_op_close(&op);
	return ms;
}

static void report(struct fix *f, const char *when, const struct loadgen_proc *p, double cpu,
                   double list_ms)
{
	(void)f;
	printf("# %-34s RSS %6ld KiB  fds %6ld  CPU %5.1f %%  operator list %s%.1f ms\n", when,
	       p->rss_kib, p->fds, cpu, list_ms < 0 ? "FAILED " : "", list_ms < 0 ? 0 : list_ms);
}

/* ---- raw sockets ---- */

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int tcp_open(int port, bool nonblock)
{
	struct sockaddr_in sa = {0};
	int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pf = {.fd = fd, .events = POLLOUT};

			if (poll(&pf, 1, 5000) <= 0)
				return -1;
			continue;
		}
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_upgrade(int fd, const char *extra_header)
{
	char req[512];

	snprintf(
	        req, sizeof(req),
	        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
	        extra_header ? extra_header : "");
	return send_all(fd, req, strlen(req));
}

/* A client's WebSocket: fd and what has been read but not yet taken. */
struct raw {
	int fd;
	unsigned char buf[8192];
	size_t len;
	int close_code; /* 0: none seen; -1: the TCP connection ended without a close frame */
};

static int raw_fill(struct raw *r, int timeout_ms)
{
	struct pollfd pf = {.fd = r->fd, .events = POLLIN};
	ssize_t n;

	if (r->len == sizeof(r->buf))
		r->len = 0; /* nothing here is ever that large: drop it */
	if (poll(&pf, 1, timeout_ms) <= 0)
		return 0;
	n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
	if (n <= 0)
		return -1;
	r->len += (size_t)n;
	return 1;
}

/* Opens a WebSocket (blocking, with extra_header) and waits for the 101. */
static int raw_open(struct raw *r, int port, const char *extra_header)
{
	uint64_t deadline = clock_mono_ms() + 5000;

	memset(r, 0, sizeof(*r));
	r->fd = tcp_open(port, false);
	if (r->fd < 0 || send_upgrade(r->fd, extra_header) < 0)
		goto fail;
	while (clock_mono_ms() < deadline) {
		unsigned char *end = NULL;

		for (size_t i = 0; i + 4 <= r->len && !end; i++)
			if (memcmp(r->buf + i, "\r\n\r\n", 4) == 0)
				end = r->buf + i + 4;
		if (end) {
			bool ok = r->len > 12 && memcmp(r->buf + 9, "101", 3) == 0;

			r->len -= (size_t)(end - r->buf);
			memmove(r->buf, end, r->len);
			if (ok)
				return 0;
			goto fail;
		}
		if (raw_fill(r, 100) < 0)
			goto fail;
	}
fail:
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	return -1;
}

/* A masked client frame header for len bytes (the payload may follow in parts). */
static size_t frame_header(unsigned char *h, int opcode, size_t len, const unsigned char mask[4])
{
	size_t n = 0;

	h[n++] = (unsigned char)(0x80 | opcode);
	if (len < 126) {
		h[n++] = (unsigned char)(0x80 | len);
	} else if (len < 65536) {
		h[n++] = 0x80 | 126;
		h[n++] = (unsigned char)(len >> 8);
		h[n++] = (unsigned char)len;
	} else {
		h[n++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			h[n++] = (unsigned char)((uint64_t)len >> (8 * i));
	}
	memcpy(h + n, mask, 4);
	return n + 4;
}

/* Sends the first `sent` bytes of a text frame of `len` bytes (all of it when sent == len). */
static int raw_send_text(struct raw *r, const char *text, size_t len, size_t sent)
{
	static const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
	unsigned char h[16], *p = malloc(sent ? sent : 1);
	size_t hn = frame_header(h, 1, len, mask);
	int rc;

	if (!p)
		return -1;
	for (size_t i = 0; i < sent; i++)
		p[i] = (unsigned char)(text[i] ^ mask[i % 4]);
	rc = send_all(r->fd, h, hn) == 0 && send_all(r->fd, p, sent) == 0 ? 0 : -1;
	free(p);
	return rc;
}

/* Takes one server frame out of the buffer; 1 with its opcode and payload, 0 when incomplete. */
static int raw_take(struct raw *r, int *opcode, const unsigned char **payload, size_t *plen,
                    size_t *consumed)
{
	size_t n = 2, len;

	if (r->len < 2)
		return 0;
	len = r->buf[1] & 0x7f;
	if (len == 126) {
		if (r->len < 4)
			return 0;
		len = ((size_t)r->buf[2] << 8) | r->buf[3];
		n = 4;
	} else if (len == 127) {
		if (r->len < 10)
			return 0;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = (len << 8) | r->buf[2 + i];
		n = 10;
	}
	if (len > sizeof(r->buf)) {
		/* an answer too big to keep: skip it */
		*opcode = r->buf[0] & 0x0f;
		*payload = NULL;
		*plen = 0;
		*consumed = r->len;
		return 1;
	}
	if (r->len < n + len)
		return 0;
	*opcode = r->buf[0] & 0x0f;
	*payload = r->buf + n;
	*plen = len;
	*consumed = n + len;
	return 1;
}

/* Reads frames until one whose text contains want (1), the close (-1), or the timeout (0). */
static int raw_until(struct raw *r, const char *want, int timeout_ms)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int op, got;
		const unsigned char *p;
		size_t plen, used;

		while ((got = raw_take(r, &op, &p, &plen, &used)) == 1) {
			bool hit = false;

			if (op == 8) {
				r->close_code = plen >= 2 ? (p[0] << 8) | p[1] : 1005;
				return -1;
			}
			if (want && p && op == 1) {
				char *t = strndup((const char *)p, plen);

				hit = t && strstr(t, want);
				free(t);
			}
			r->len -= used;
			memmove(r->buf, r->buf + used, r->len);
			if (hit)
				return 1;
		}
		got = raw_fill(r,
		               clock_mono_ms() < deadline ? (int)(deadline - clock_mono_ms()) : 0);
		if (got < 0) {
			r->close_code = -1;
			return -1;
		}
		if (got == 0 && clock_mono_ms() >= deadline)
			return 0;
	}
}

/* ---- the pending-request flood ---- */

struct flood_result {
	size_t pending, refused;
	char refusal[80]; /* "details.code close-code" */
	double seconds;
};

/* n fresh devices from the loopback address connect (MAX_INFLIGHT at once) and hang up as soon
 * as they are held; the operator is pumped meanwhile so that it keeps up with its events. */
static struct flood_result pending_flood(struct fix *f, size_t n, uint32_t seed)
{
	struct loadgen_node_opts o = {.url = f->gw.proc.url, .token = TOKEN};
	struct loadgen_node *nodes = calloc(n, sizeof(*nodes));
	struct flood_result res = {0};
	size_t started = 0, settled = 0;
	uint64_t t0 = clock_mono_ms(), deadline = t0 + 60000u * (uint64_t)f->scale;

	assert_non_null(nodes);
	while (settled < n && clock_mono_ms() < deadline) {
		size_t inflight = 0;

		settled = 0;
		for (size_t i = 0; i < started; i++) {
			struct loadgen_node *nd = &nodes[i];

			if (nd->conn)
				loadgen_node_step(nd, &o);
			if (loadgen_node_busy(nd)) {
				inflight++;
				continue;
			}
			settled++;
			if (nd->conn) {
				if (nd->state == LOADGEN_PENDING)
					res.pending++;
				else if (nd->state == LOADGEN_FAILED) {
					res.refused++;
					snprintf(res.refusal, sizeof(res.refusal), "%.63s %d",
					         nd->error_code, nd->close_code);
				}
				loadgen_node_close(nd);
			}
		}
		while (started < n && inflight < MAX_INFLIGHT) {
			loadgen_node_init(&nodes[started], seed + (uint32_t)started);
			loadgen_node_start(f->ctx, &nodes[started], &o);
			started++;
			inflight++;
		}
		client_service(f->ctx, 2);
		if (f->op_up)
			loadgen_op_step(&f->op);
	}
	for (size_t i = 0; i < n; i++)
		if (nodes[i].conn)
			loadgen_node_close(&nodes[i]);
	free(nodes);
	res.seconds = (double)(clock_mono_ms() - t0) / 1000.0;
	return res;
}

/* Thousands of requests from one address allowed: the list is larger than maxBufferedBytes,
 * and they all expire together. The store lives on tmpfs when there is one, so that the flood
 * takes seconds, not the disk's fsyncs, and ends well within the TTL.
 * CLAWPAIR_HOSTILE_WIDE_DISK=1 keeps it on disk (each expiry then costs an fsync, as in
 * production), CLAWPAIR_HOSTILE_WIDE_TTL=S sets the TTL (default 10). */
static void pending_flood_wide(size_t n)
{
	const char *ttl_env = getenv("CLAWPAIR_HOSTILE_WIDE_TTL");
	const char *disk = getenv("CLAWPAIR_HOSTILE_WIDE_DISK");
	unsigned ttl_s = ttl_env && atoi(ttl_env) > 0 ? (unsigned)atoi(ttl_env) : 10;
	char ttl[16];
	const char *const wide[] = {"--no-local-auto-approve", "--pending-ttl", ttl,
	                            "--max-pending-per-ip",    "100000",        NULL};
	struct fix f;
	struct loadgen_proc p1, p2;
	struct flood_result r;
	char state[64] = "";
	double list_ms, worst = 0;
	long listed = -1;
	uint64_t t0, until;
	bool in_time;

	snprintf(ttl, sizeof(ttl), "%u", ttl_s);
	if (!(disk && *disk && strcmp(disk, "0")) && access("/dev/shm", W_OK) == 0)
		snprintf(state, sizeof(state), "/dev/shm/clawpair-hostile-XXXXXX");
	if (state[0] && !mkdtemp(state))
		state[0] = '\0';
	fix_start_in(&f, "clawpair-hostile-pending", NULL, wide, NULL, state[0] ? state : NULL);
	fix_op(&f);
	t0 = clock_mono_ms();
	r = pending_flood(&f, n, 0x200000);
	p1 = proc(&f);
	list_ms = op_call_ms(&f, "device.pair.list", 20000 * f.scale, &listed);
	in_time = clock_mono_ms() < t0 + (ttl_s - 2) * 1000u;
	printf("# pending flood, --max-pending-per-ip 100000 (store on %s): %zu requests in %.1f "
	       "s; device.pair.list (%ld listed) %.1f ms\n",
	       state[0] ? "tmpfs" : "disk", r.pending, r.seconds, listed, list_ms);
	report(&f, "held", &p1, 0, list_ms);
	if (in_time)
		CHECK(list_ms >= 0 && (size_t)listed == r.pending,
		      "LIMIT-7: the operator's list failed (%ld of %zu)", listed, r.pending);
	else
		printf("# (not checked: the flood took longer than the TTL allows)\n");
	/* While they expire, the operator asks every 20 ms; the worst answer shows the stall. */
	/* the last ones were created at the end of the flood */
	until = clock_mono_ms() + (ttl_s + 5) * 1000u * (uint64_t)f.scale;
	while (clock_mono_ms() < until) {
		double ms = op_call_ms(&f, "node.list", 10000 * f.scale, NULL);

		if (ms < 0 || ms > worst)
			worst = ms < 0 ? 1e9 : ms;
		client_service(f.ctx, 20);
		loadgen_op_step(&f.op);
	}
	p2 = proc(&f);
	listed = -1;
	op_call_ms(&f, "device.pair.list", 10000 * f.scale, &listed);
	printf("# expiry of %zu requests: worst node.list answer %.1f ms; %ld left\n", r.pending,
	       worst, listed);
	report(&f, "expired", &p2, 0, 0);
	CHECK(listed == 0, "%ld requests left after their TTL", listed);
	CHECK(worst < 500.0 * f.scale, "the loop stalled %.1f ms while requests expired", worst);
	fix_stop(&f);
	if (state[0])
		remove_tree(state);
}

/* LIMIT-2, LIMIT-3, LIMIT-7, expiry in batches. */
static void test_pending_flood(void **state)
{
	static const char *const extra[] = {"--no-local-auto-approve", NULL};
	struct fix f;
	struct loadgen_proc p0, p1;
	struct flood_result r;
	double list_ms;
	long listed = -1;
	size_t n = under_valgrind() ? 300 : 2000;
	uint64_t t0, t1;

	(void)state;
	/* Defaults: fresh devices from one address that hang up at once. */
	fix_start(&f, "clawpair-hostile-pending", NULL, extra, NULL);
	fix_op(&f);
	p0 = proc(&f);
	t0 = clock_mono_ms();
	r = pending_flood(&f, n, 0x100000);
	t1 = clock_mono_ms();
	p1 = proc(&f);
	list_ms = op_call_ms(&f, "device.pair.list", 10000 * f.scale, &listed);
	printf("# pending flood, defaults: %zu devices in %.1f s: %zu held, %zu refused (%s); "
	       "device.pair.list lists %ld\n",
	       n, r.seconds, r.pending, r.refused, r.refusal, listed);
	report(&f, "before", &p0, 0, 0);
	report(&f, "after", &p1, cpu_pct(&f, &p0, t0, &p1, t1), list_ms);
	CHECK(r.pending == 32 && listed == 32, "LIMIT-2: %zu held, %ld listed, want 32", r.pending,
	      listed);
	CHECK(strncmp(r.refusal, "PENDING_LIMIT_IP", 16) == 0, "refusal: %s", r.refusal);
	CHECK(kit_built_with_asan() || p1.rss_kib - p0.rss_kib < 16 * 1024, "RSS grew %ld KiB",
	      p1.rss_kib - p0.rss_kib);
	fix_stop(&f);
	pending_flood_wide(getenv("CLAWPAIR_HOSTILE_WIDE_N")
	                           ? (size_t)atol(getenv("CLAWPAIR_HOSTILE_WIDE_N"))
	                   : under_valgrind() ? 500
	                                      : 5000);
}

/* ---- sockets that never send connect ---- */

/* A child that keeps `n` WebSockets open from loopback, sending nothing, and opens a new one
 * whenever the gateway closes one, for ms. Exits with the number it opened (capped). */
static void preauth_child(int port, size_t n, int ms)
{
	struct raw *socks = calloc(n, sizeof(*socks));
	struct pollfd *pf = calloc(n, sizeof(*pf));
	uint64_t deadline = clock_mono_ms() + (uint64_t)ms;
	unsigned long opened = 0;

	if (!socks || !pf)
		_exit(1);
	for (size_t i = 0; i < n; i++)
		socks[i].fd = -1;
	while (clock_mono_ms() < deadline) {
		for (size_t i = 0; i < n; i++) {
			if (socks[i].fd < 0) {
				socks[i].fd = tcp_open(port, false);
				if (socks[i].fd >= 0 && send_upgrade(socks[i].fd, NULL) < 0) {
					close(socks[i].fd);
					socks[i].fd = -1;
				}
				opened++;
			}
			pf[i] = (struct pollfd){.fd = socks[i].fd, .events = POLLIN};
		}
		if (poll(pf, (nfds_t)n, 50) <= 0)
			continue;
		for (size_t i = 0; i < n; i++) {
			char buf[4096];

			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (recv(socks[i].fd, buf, sizeof(buf), 0) <= 0) {
				close(socks[i].fd);
				socks[i].fd = -1;
			}
		}
	}
	printf("# attacker: opened %lu WebSockets\n", opened);
	fflush(stdout);
	_exit(0);
}

/* The operator on loopback connects ten times while a process on the same address keeps n
 * sockets open without connect, renewing each one the gateway closes. */
static void preauth_phase(struct fix *f, size_t n)
{
	struct loadgen_proc p0, p1;
	int ok = 0, tries = 10, status = 0;
	double worst = 0, sum = 0, list_ms;
	pid_t child;
	uint64_t t0, t1;

	fix_op(f);
	p0 = proc(f);
	fflush(stdout);
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		preauth_child(f->gw.proc.port, n, 6000 * f->scale);
	usleep(1500000);
	t0 = clock_mono_ms();
	for (int i = 0; i < tries; i++) {
		double ms = fresh_op_ms(f, 2000 * f->scale);

		if (ms >= 0) {
			ok++;
			sum += ms;
			worst = ms > worst ? ms : worst;
		}
		usleep(200000);
	}
	list_ms = op_call_ms(f, "device.pair.list", 5000 * f->scale, NULL);
	t1 = clock_mono_ms();
	p1 = proc(f);
	waitpid(child, &status, 0);
	printf("# pre-auth flood of %zu sockets: %d of %d new loopback operators served (mean "
	       "%.1f ms, worst %.1f ms)\n",
	       n, ok, tries, ok ? sum / ok : 0, worst);
	report(f, "before", &p0, 0, 0);
	report(f, "during", &p1, cpu_pct(f, &p0, t0, &p1, t1), list_ms);
	CHECK(ok >= tries - 1, "LIMIT-6: only %d of %d operators got in", ok, tries);
	CHECK(list_ms >= 0, "the connected operator was not served");
}

/* LIMIT-4, LIMIT-6: 64 idle sockets (what locked the operator out before) and 1,500, more than
 * the local pool holds, so that the gateway closes the oldest as fast as they come back. */
static void test_preauth_flood(void **state)
{
	struct fix f;

	(void)state;
	raise_nofile();
	fix_start(&f, "clawpair-hostile-preauth", NULL, NULL, NULL);
	preauth_phase(&f, 64);
	preauth_phase(&f, under_valgrind() ? 200 : 1500);
	fix_stop(&f);
}

/* ---- idle TCP ---- */

/* Opens n TCP connections to port without sending anything; returns how many it holds. */
static size_t idle_flood(int port, int *fds, size_t n)
{
	size_t held = 0;

	for (size_t i = 0; i < n; i++) {
		fds[i] = tcp_open(port, true);
		if (fds[i] >= 0)
			held++;
	}
	return held;
}

static void idle_close(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* n idle TCP connections from loopback; the gateway must hold at most fd_bound descriptors and
 * stay idle itself, and a new loopback operator must get in. */
static void idle_phase(struct fix *f, const char *label, size_t n, long fd_bound)
{
	int *fds = calloc(n, sizeof(*fds));
	struct loadgen_proc p0, p1, p2;
	uint64_t t0, t1, t2;
	double op_ms, list_ms, cpu_held;
	size_t opened;

	assert_non_null(fds);
	fix_op(f);
	p0 = proc(f);
	t0 = clock_mono_ms();
	opened = idle_flood(f->gw.proc.port, fds, n);
	usleep(2000000); /* let the gateway take them all */
	t1 = clock_mono_ms();
	p1 = proc(f);
	op_ms = fresh_op_ms(f, 5000 * f->scale);
	list_ms = op_call_ms(f, "device.pair.list", 5000 * f->scale, NULL);
	usleep(2000000);
	t2 = clock_mono_ms();
	p2 = proc(f);
	cpu_held = cpu_pct(f, &p1, t1, &p2, t2);
	printf("# idle TCP flood (%s): %zu connections opened; a new operator %s%.1f ms\n", label,
	       opened, op_ms < 0 ? "FAILED " : "", op_ms < 0 ? 0 : op_ms);
	report(f, "before", &p0, 0, 0);
	report(f, "flood", &p1, cpu_pct(f, &p0, t0, &p1, t1), list_ms);
	report(f, "held (2 s later)", &p2, cpu_held, list_ms);
	idle_close(fds, n);
	free(fds);
	CHECK(op_ms >= 0 && list_ms >= 0, "LIMIT-6: the operator was not served");
	CHECK(p1.fds <= fd_bound && p2.fds <= fd_bound,
	      "LIMIT-4/6: the gateway holds %ld, then %ld descriptors (bound %ld)", p1.fds, p2.fds,
	      fd_bound);
	CHECK(cpu_held < 20.0, "the gateway spins: %.1f %% CPU", cpu_held);
}

/* LIMIT-4 (connections before the upgrade), LIMIT-6 (in total): from loopback, as many as the
 * descriptors allow; then more than a small --max-connections through a trusted proxy, which no
 * per-address cap counts. */
static void test_idle_tcp_flood(void **state)
{
	static const char *const total[] = {"--max-connections", "500", NULL};
	struct fix f;
	struct rlimit rl;
	size_t n;

	(void)state;
	raise_nofile();
	getrlimit(RLIMIT_NOFILE, &rl);
	/* The gateway gets the same descriptor limit (it raises its own to the hard limit): this
	 * many are more than it may hold, while this process keeps room for its own. */
	n = rl.rlim_cur > 1000 ? (size_t)rl.rlim_cur - 30 : 200;
	if (under_valgrind() && n > 2000)
		n = 2000;
	if (getenv("CLAWPAIR_HOSTILE_TCP"))
		n = (size_t)atol(getenv("CLAWPAIR_HOSTILE_TCP"));
	fix_start(&f, "clawpair-hostile-tcp", NULL, NULL, NULL);
	/* 32 idle upgrading connections per address, plus the gateway's own descriptors */
	idle_phase(&f, "defaults", n, 32 + 64);
	fix_stop(&f);
	fix_start(&f, "clawpair-hostile-tcp", "127.0.0.1", NULL, total);
	idle_phase(&f, "--max-connections 500", n < 5000 ? n : 5000, 500 + 32);
	fix_stop(&f);
}

/* ---- messages that never end ---- */

struct partial_result {
	size_t placed; /* sockets holding a partial message */
	size_t by_code[4]; /* closes seen: 1013, 1008, other, none */
};

static void count_close(struct partial_result *pr, int code)
{
	pr->by_code[code == 1013 ? 0 : code == 1008 ? 1 : code ? 2 : 3]++;
}

/* n sockets, each from X-Forwarded-For 10.99.<i/32>.1 (32 per address) or, when auth, an
 * authenticated loopback operator; each sends most of a maximum-size message and stops. */
static void place_partials(struct fix *f, struct raw *socks, size_t n, bool auth,
                           struct partial_result *pr)
{
	static const char connect_op[] =
	        "{\"type\":\"req\",\"id\":\"c1\",\"method\":\"connect\",\"params\":{"
	        "\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":\"cli\",\"version\":\"1\","
	        "\"platform\":\"linux\",\"mode\":\"cli\"},\"role\":\"operator\","
	        "\"scopes\":[\"operator.read\"],\"auth\":{\"token\":\"" TOKEN "\"}}}";
	char *junk = malloc(FRAME_LEN), hdr[64];

	assert_non_null(junk);
	memset(junk, 'a', FRAME_LEN);
	for (size_t i = 0; i < n; i++) {
		struct raw *r = &socks[i];

		snprintf(hdr, sizeof(hdr), "X-Forwarded-For: 10.99.%zu.1\r\n", i / 32);
		if (raw_open(r, f->gw.proc.port, auth ? NULL : hdr) < 0)
			continue;
		if (auth) {
			if (raw_send_text(r, connect_op, strlen(connect_op), strlen(connect_op)) <
			            0 ||
			    raw_until(r, "hello-ok", 5000) != 1) {
				close(r->fd);
				r->fd = -1;
				continue;
			}
		}
		if (raw_send_text(r, junk, FRAME_LEN, PARTIAL_LEN) == 0)
			pr->placed++;
		/* keep the gateway's own loop turning between sockets */
		client_service(f->ctx, 0);
	}
	free(junk);
}

static void collect_closes(struct raw *socks, size_t n, int timeout_ms, struct partial_result *pr)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;

	for (size_t i = 0; i < n; i++) {
		struct raw *r = &socks[i];
		int left = (int)(deadline > clock_mono_ms() ? deadline - clock_mono_ms() : 0);

		if (r->fd < 0)
			continue;
		if (!r->close_code)
			raw_until(r, NULL, left);
		count_close(pr, r->close_code > 0 ? r->close_code : 0);
		close(r->fd);
		r->fd = -1;
	}
}

static void partial_phase(struct fix *f, const char *label, size_t n, bool auth, long rss_bound,
                          int wait_ms)
{
	struct raw *socks = calloc(n, sizeof(*socks));
	struct partial_result pr = {0}, early = {0};
	struct loadgen_proc p0, p1, p2;
	uint64_t t0, t1, t2;
	double list_ms, list2_ms;

	assert_non_null(socks);
	fix_op(f);
	usleep(300000);
	p0 = proc(f);
	t0 = clock_mono_ms();
	place_partials(f, socks, n, auth, &pr);
	usleep(500000);
	t1 = clock_mono_ms();
	p1 = proc(f);
	list_ms = op_call_ms(f, "device.pair.list", 5000 * f->scale, NULL);
	/* the ones closed already (over the budget) */
	for (size_t i = 0; i < n; i++)
		if (socks[i].fd >= 0 && raw_until(&socks[i], NULL, 0) == -1)
			count_close(&early, socks[i].close_code > 0 ? socks[i].close_code : 0);
	/* then the message timeout */
	collect_closes(socks, n, wait_ms, &pr);
	usleep(500000);
	t2 = clock_mono_ms();
	p2 = proc(f);
	list2_ms = op_call_ms(f, "device.pair.list", 5000 * f->scale, NULL);
	printf("# partial messages (%s): %zu of %zu sockets sent %d of %d bytes; closed at once: "
	       "%zu x 1013; then within %d ms: %zu x 1013, %zu x 1008, %zu other, %zu not "
	       "closed\n",
	       label, pr.placed, n, PARTIAL_LEN, FRAME_LEN, early.by_code[0], wait_ms,
	       pr.by_code[0] - early.by_code[0], pr.by_code[1], pr.by_code[2], pr.by_code[3]);
	report(f, "before", &p0, 0, 0);
	report(f, "partials held", &p1, cpu_pct(f, &p0, t0, &p1, t1), list_ms);
	report(f, "after the message timeout", &p2, cpu_pct(f, &p1, t1, &p2, t2), list2_ms);
	CHECK(kit_built_with_asan() || p1.rss_kib - p0.rss_kib < rss_bound,
	      "LIMIT-5: RSS grew %ld KiB (bound %ld)", p1.rss_kib - p0.rss_kib, rss_bound);
	CHECK(pr.by_code[0] > 0, "LIMIT-5: no connection was closed 1013 over the budget");
	CHECK(pr.by_code[3] == 0, "LIMIT-5: %zu connections kept their partial message",
	      pr.by_code[3]);
	CHECK(list_ms >= 0 && list2_ms >= 0, "the operator was not served");
	free(socks);
}

/* LIMIT-5: budgets before and after hello-ok, and the message timeout. */
static void test_partial_messages(void **state)
{
	static const char *const budget[] = {"--message-timeout", "3000", NULL};
	struct fix f;
	size_t n = under_valgrind() ? 96 : 512, n_auth = under_valgrind() ? 96 : 400;

	(void)state;
	raise_nofile();
	fix_start(&f, "clawpair-hostile-partial", "127.0.0.1", NULL, budget);
	/* 16 MiB budget; lws and the kernel add their buffers per socket */
	partial_phase(&f, "unauthenticated, 32 per address", n, false, 48 * 1024, 6000 * f.scale);
	partial_phase(&f, "authenticated operators", n_auth, true, 96 * 1024, 6000 * f.scale);
	fix_stop(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_pending_flood),
	        cmocka_unit_test(test_preauth_flood),
	        cmocka_unit_test(test_idle_tcp_flood),
	        cmocka_unit_test(test_partial_messages),
	};

	signal(SIGPIPE, SIG_IGN);
	identity_global_init();
	if (getenv("CLAWPAIR_HOSTILE_ONLY")) /* e.g. test_pending_flood */
		cmocka_set_test_filter(getenv("CLAWPAIR_HOSTILE_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
