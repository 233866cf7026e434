/* clawpair-bench.c: the measuring client behind bench/run.sh. Each subcommand prints one JSON
 * object on stdout:
 *   verify     Ed25519 verify-only ceiling (crypto_sign_verify_detached loop, one core)
 *   pair       pairs N deterministic devices (operator approval, or a gateway's auto-approve)
 *   handshake  already-paired devices connecting until hello-ok, K in flight on one loop
 *   hold       N nodes held pending: gateway RSS/fds/idle CPU, then approve-to-hello latency */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "authpayload.h"
#include "loadkit.h"

struct opts {
	const char *url, *token, *client_id, *client_mode;
	size_t count;
	size_t batch;
	unsigned parallel;
	double seconds;
	double idle_seconds;
	size_t samples;
	uint32_t seed_base;
	int sig;
	int pid;
	bool approve;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(uint64_t *v, size_t n, double p)
{
	if (n == 0)
		return -1;
	qsort(v, n, sizeof(*v), cmp_u64);
	size_t i = (size_t)ceil(p * (double)n) - 1;
	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1000.0;
}

static struct loadkit_node_opts node_opts(const struct opts *o)
{
	struct loadkit_node_opts n = {.url = o->url,
	                              .token = o->token,
	                              .client_id = o->client_id,
	                              .client_mode = o->client_mode,
	                              .sig_version = o->sig};
	return n;
}

static int cmd_verify(const struct opts *o)
{
	struct loadkit_node n;
	loadkit_node_init(&n, 1);
	const char *payload = "v3|0000000000000000000000000000000000000000000000000000000000000000|"
	                      "openclaw-android|node|node||1795479066100|token-token-token|"
	                      "473a3502-c059-4056-a0d6-15a3a14fc2f4|android|android";
	unsigned char sig[crypto_sign_BYTES];
	crypto_sign_detached(sig, NULL, (const unsigned char *)payload, strlen(payload), n.id.sk);
	uint64_t count = 0, t0 = loadkit_now_us(), limit = (uint64_t)(o->seconds * 1e6);
	while (loadkit_now_us() - t0 < limit) {
		for (int k = 0; k < 64; k++)
			if (crypto_sign_verify_detached(sig, (const unsigned char *)payload,
			                                strlen(payload), n.id.pk) != 0)
				return 1;
		count += 64;
	}
	double secs = (double)(loadkit_now_us() - t0) / 1e6;
	printf("{\"verify_per_s\":%.0f,\"us_per_verify\":%.2f,\"payload_bytes\":%zu}\n",
	       (double)count / secs, secs * 1e6 / (double)count, strlen(payload));
	return 0;
}

static void on_approve_res(void *user, const struct loadkit_res *r)
{
	size_t *answered = user;
	if (r->ok)
		answered[0]++;
	else
		answered[1]++;
}

/* Pumps until every node in [b0, b1) is past want (or failed), or the operator is gone. */
static bool pair_wait(struct client_ctx *ctx, struct loadkit_node *nodes, size_t b0, size_t b1,
                      const struct loadkit_node_opts *no, struct loadkit_op *op,
                      enum loadkit_node_state want, uint64_t deadline_us, size_t *started,
                      unsigned parallel)
{
	for (;;) {
		size_t inflight = 0, settled = 0;
		for (size_t i = b0; i < *started; i++) {
			struct loadkit_node *n = &nodes[i];
			if (n->conn)
				loadkit_node_step(n, no);
			if (n->state == LOADKIT_OPENING || n->state == LOADKIT_SENT)
				inflight++;
			else if (n->state >= want || n->state == LOADKIT_FAILED)
				settled++;
		}
		while (*started < b1 && inflight < parallel) {
			loadkit_node_start(ctx, &nodes[*started], no);
			(*started)++;
			inflight++;
		}
		if (settled == b1 - b0)
			return true;
		if ((op && op->closed) || loadkit_now_us() > deadline_us)
			return false;
		client_service(ctx, 2);
		if (op)
			loadkit_op_step(op);
	}
}

/* Pairs count devices, in batches: with approve, each batch is held pending, then approved by
 * an operator (device.pair.approve); without, the gateway's auto-approve answers hello-ok. */
static int cmd_pair(const struct opts *o)
{
	struct client_ctx_opts co = {.max_conns = o->parallel + o->batch + 64, .epoll = true};
	struct client_ctx *ctx = client_ctx_create(&co);
	struct loadkit_node *nodes = calloc(o->count, sizeof(*nodes));
	struct loadkit_node_opts no = node_opts(o);
	struct loadkit_op op = {0};
	size_t answered[2] = {0, 0};
	char err[256] = "";
	int rc = 1;
	if (!ctx || !nodes)
		goto cleanup;
	if (o->approve) {
		if (loadkit_op_connect(ctx, &op, o->url, o->token, NULL, 0, 10000, err,
		                       sizeof(err)) != 0) {
			fprintf(stderr, "clawpair-bench: operator: %s\n", err);
			goto cleanup;
		}
		op.on_res = on_approve_res;
		op.user = answered;
	}
	for (size_t i = 0; i < o->count; i++)
		loadkit_node_init(&nodes[i], o->seed_base + (uint32_t)i);
	uint64_t t0 = loadkit_now_us(), deadline = t0 + (uint64_t)(o->seconds * 1e6);
	size_t started = 0, hello = 0, failed = 0;
	for (size_t b0 = 0; b0 < o->count; b0 += o->batch) {
		size_t b1 = b0 + o->batch < o->count ? b0 + o->batch : o->count;
		bool ok = pair_wait(ctx, nodes, b0, b1, &no, o->approve ? &op : NULL,
		                    o->approve ? LOADKIT_PENDING : LOADKIT_HELLO, deadline,
		                    &started, o->parallel);
		if (ok && o->approve) {
			size_t sent = 0, before = answered[0] + answered[1];
			for (size_t i = b0; i < b1; i++) {
				if (nodes[i].state != LOADKIT_PENDING)
					continue;
				cJSON *p = cJSON_CreateObject();
				cJSON_AddStringToObject(p, "requestId", nodes[i].request_id);
				sent += loadkit_op_call(&op, "device.pair.approve", p) != 0;
			}
			ok = pair_wait(ctx, nodes, b0, b1, &no, &op, LOADKIT_HELLO, deadline,
			               &started, o->parallel);
			while (ok && answered[0] + answered[1] - before < sent && !op.closed &&
			       loadkit_now_us() < deadline) {
				client_service(ctx, 2);
				loadkit_op_step(&op);
			}
		}
		for (size_t i = b0; i < b1; i++) {
			if (nodes[i].state == LOADKIT_HELLO || nodes[i].state == LOADKIT_CLOSED)
				hello++;
			else {
				if (!failed)
					fprintf(stderr,
					        "clawpair-bench: pair: node %zu: state %d close %d %s\n",
					        i, nodes[i].state, nodes[i].close_code,
					        nodes[i].error_code);
				failed++;
			}
			loadkit_node_close(&nodes[i]);
		}
		if (!ok) {
			fprintf(stderr, "clawpair-bench: pair: stopped after %zu of %zu: %s\n",
			        hello, o->count,
			        op.closed ? "the gateway closed the operator" : "time limit");
			failed += o->count - b1;
			break;
		}
	}
	double secs = (double)(loadkit_now_us() - t0) / 1e6;
	printf("{\"paired\":%zu,\"failed\":%zu,\"seconds\":%.3f,\"approved_ok\":%zu,"
	       "\"operator_closed\":%s,\"operator_close_code\":%d}\n",
	       hello, failed, secs, answered[0], op.closed ? "true" : "false", op.close_code);
	rc = hello == o->count ? 0 : 1;
cleanup:
	if (nodes)
		for (size_t i = 0; i < o->count; i++)
			client_conn_destroy(nodes[i].conn);
	loadkit_op_close(&op);
	client_ctx_destroy(ctx);
	free(nodes);
	return rc;
}

/* Already-paired devices reconnect, round robin, parallel in flight, for o->seconds. */
static int cmd_handshake(const struct opts *o)
{
	struct client_ctx_opts co = {.max_conns = o->parallel + 64, .epoll = true};
	struct client_ctx *ctx = client_ctx_create(&co);
	struct loadkit_node *slots = calloc(o->parallel, sizeof(*slots));
	size_t cap = 1 << 20, n_lat = 0;
	uint64_t *lat = calloc(cap, sizeof(*lat));
	struct loadkit_node_opts no = node_opts(o);
	int rc = 1;
	if (!ctx || !slots || !lat)
		goto cleanup;
	size_t next = 0, ok = 0, failed = 0;
	char first_err[128] = "";
	uint64_t t0 = loadkit_now_us(), limit = (uint64_t)(o->seconds * 1e6);
	for (unsigned k = 0; k < o->parallel; k++) {
		loadkit_node_init(&slots[k], o->seed_base + (uint32_t)(next++ % o->count));
		loadkit_node_start(ctx, &slots[k], &no);
	}
	bool running = true;
	uint64_t t_end = 0;
	while (running) {
		client_service(ctx, 1);
		bool expired = loadkit_now_us() - t0 >= limit;
		if (expired && !t_end)
			t_end = loadkit_now_us();
		running = false;
		for (unsigned k = 0; k < o->parallel; k++) {
			struct loadkit_node *n = &slots[k];
			if (n->state == LOADKIT_IDLE)
				continue;
			loadkit_node_step(n, &no);
			bool done = false;
			if (n->state == LOADKIT_HELLO) {
				if (!expired) {
					ok++;
					if (n_lat < cap)
						lat[n_lat++] = n->t_hello_us - n->t_open_us;
				}
				done = true;
			} else if (n->state == LOADKIT_FAILED || n->state == LOADKIT_PENDING) {
				if (!expired) {
					failed++;
					if (!first_err[0])
						snprintf(first_err, sizeof(first_err),
						         "state %d close %d %s", n->state,
						         n->close_code, n->error_code);
				}
				done = true;
			}
			if (done) {
				loadkit_node_close(n);
				n->state = LOADKIT_IDLE;
				if (!expired) {
					loadkit_node_init(n, o->seed_base +
					                             (uint32_t)(next++ % o->count));
					loadkit_node_start(ctx, n, &no);
				}
			}
			if (n->state != LOADKIT_IDLE)
				running = true;
		}
		if (expired && loadkit_now_us() - t_end > 5000000)
			break;
	}
	double secs = (double)(t_end - t0) / 1e6;
	size_t n_all = n_lat;
	double p50 = pct_ms(lat, n_all, 0.50), p99 = pct_ms(lat, n_all, 0.99);
	printf("{\"handshakes\":%zu,\"failed\":%zu,\"seconds\":%.3f,\"per_s\":%.1f,\"parallel\":%u,"
	       "\"devices\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"first_error\":\"%s\"}\n",
	       ok, failed, secs, (double)ok / secs, o->parallel, o->count, p50, p99, first_err);
	rc = ok > 0 ? 0 : 1;
cleanup:
	if (slots)
		for (unsigned k = 0; k < o->parallel; k++)
			client_conn_destroy(slots[k].conn);
	client_ctx_destroy(ctx);
	free(slots);
	free(lat);
	return rc;
}

struct lat_wait {
	uint64_t id;
	uint64_t t_ok;
	bool ok, done;
};

static void on_lat_res(void *user, const struct loadkit_res *r)
{
	struct lat_wait *w = user;
	if (r->id == w->id) {
		w->done = true;
		w->ok = r->ok;
		w->t_ok = r->t_us;
	}
}

/* N nodes held pending: RSS, fds, idle CPU of the gateway; then approve-to-hello latency. */
static int cmd_hold(const struct opts *o)
{
	struct client_ctx_opts co = {.max_conns = (unsigned)o->count + 64, .epoll = true};
	struct client_ctx *ctx = client_ctx_create(&co);
	struct loadkit_node *nodes = calloc(o->count, sizeof(*nodes));
	size_t n_samples = o->samples < o->count ? o->samples : o->count;
	uint64_t *lat = calloc(n_samples + 1, sizeof(*lat));
	uint64_t *lat_ok = calloc(n_samples + 1, sizeof(*lat_ok));
	struct loadkit_node_opts no = node_opts(o);
	struct loadkit_op op = {0};
	struct loadkit_proc base, held, idle0, idle1;
	char err[256] = "";
	int rc = 1;
	long hz = sysconf(_SC_CLK_TCK);
	if (!ctx || !nodes || !lat || !lat_ok)
		goto cleanup;
	if (loadkit_proc_read(o->pid, &base) != 0) {
		fprintf(stderr, "clawpair-bench: cannot read /proc/%d\n", o->pid);
		goto cleanup;
	}
	uint64_t t0 = loadkit_now_us();
	size_t started = 0, pending = 0, failed = 0;
	while (pending + failed < o->count) {
		size_t inflight = 0;
		pending = failed = 0;
		client_service(ctx, 2);
		for (size_t i = 0; i < started; i++) {
			struct loadkit_node *n = &nodes[i];
			if (n->state == LOADKIT_OPENING || n->state == LOADKIT_SENT)
				loadkit_node_step(n, &no);
			if (n->state == LOADKIT_PENDING)
				pending++;
			else if (n->state == LOADKIT_OPENING || n->state == LOADKIT_SENT)
				inflight++;
			else
				failed++;
		}
		while (started < o->count && inflight < o->parallel) {
			loadkit_node_init(&nodes[started], o->seed_base + (uint32_t)started);
			loadkit_node_start(ctx, &nodes[started], &no);
			started++;
			inflight++;
		}
		if (loadkit_now_us() - t0 > (uint64_t)(o->seconds * 1e6))
			break;
	}
	double ramp = (double)(loadkit_now_us() - t0) / 1e6;
	if (failed) {
		for (size_t i = 0; i < started; i++)
			if (nodes[i].state == LOADKIT_FAILED) {
				fprintf(stderr,
				        "clawpair-bench: hold: node %zu failed: close %d %s\n", i,
				        nodes[i].close_code, nodes[i].error_code);
				break;
			}
	}
	/* Let the gateway settle, then measure it idle with everybody held. */
	for (int k = 0; k < 20; k++)
		client_service(ctx, 25);
	loadkit_proc_read(o->pid, &held);
	idle0 = held;
	uint64_t ti = loadkit_now_us();
	while (loadkit_now_us() - ti < (uint64_t)(o->idle_seconds * 1e6))
		client_service(ctx, 100);
	double idle_secs = (double)(loadkit_now_us() - ti) / 1e6;
	loadkit_proc_read(o->pid, &idle1);
	double cpu_pct =
	        100.0 * (double)(idle1.cpu_ticks - idle0.cpu_ticks) / (double)hz / idle_secs;

	/* The operator comes only now: a gateway sends it device.pair.requested for every held
	 * node, which is not what is measured here. Then approve-to-hello: one approval at a
	 * time, on a spread sample of the held nodes. */
	if (loadkit_op_connect(ctx, &op, o->url, o->token, NULL, 0, 10000, err, sizeof(err)) != 0) {
		fprintf(stderr, "clawpair-bench: operator: %s\n", err);
		goto cleanup;
	}
	struct lat_wait w = {0};
	op.on_res = on_lat_res;
	op.user = &w;
	size_t got = 0, stride = pending / (n_samples ? n_samples : 1);
	if (stride == 0)
		stride = 1;
	for (size_t i = 0; i < o->count && got < n_samples; i += stride) {
		struct loadkit_node *n = &nodes[i];
		if (n->state != LOADKIT_PENDING)
			continue;
		cJSON *p = cJSON_CreateObject();
		cJSON_AddStringToObject(p, "requestId", n->request_id);
		memset(&w, 0, sizeof(w));
		uint64_t t_send = loadkit_now_us();
		w.id = loadkit_op_call(&op, "device.pair.approve", p);
		uint64_t deadline = t_send + 10000000;
		while ((n->state == LOADKIT_PENDING || !w.done) && loadkit_now_us() < deadline) {
			client_service(ctx, 1);
			loadkit_node_step(n, &no);
			loadkit_op_step(&op);
		}
		if (n->state != LOADKIT_HELLO || !w.ok) {
			fprintf(stderr, "clawpair-bench: hold: approval %zu: state %d ok %d\n", i,
			        n->state, w.ok);
			continue;
		}
		lat[got] = n->t_hello_us - t_send;
		lat_ok[got] = w.t_ok - t_send;
		got++;
	}
	size_t delta_fds = (size_t)(held.fds - base.fds);
	double per_conn =
	        pending ? (double)(held.rss_kib - base.rss_kib) * 1024.0 / (double)pending : -1;
	printf("{\"held\":%zu,\"failed\":%zu,\"ramp_s\":%.3f,\"rss_base_kib\":%ld,"
	       "\"rss_held_kib\":%ld,\"rss_per_conn_bytes\":%.0f,\"fds_base\":%ld,\"fds_held\":%ld,"
	       "\"fds_per_conn\":%.3f,\"idle_cpu_pct\":%.3f,\"idle_seconds\":%.1f,"
	       "\"approve_samples\":%zu,\"approve_hello_p50_ms\":%.3f,\"approve_hello_p99_ms\":%.3f,"
	       "\"approve_ok_p50_ms\":%.3f,\"approve_ok_p99_ms\":%.3f}\n",
	       pending, failed, ramp, base.rss_kib, held.rss_kib, per_conn, base.fds, held.fds,
	       pending ? (double)delta_fds / (double)pending : -1, cpu_pct, idle_secs, got,
	       pct_ms(lat, got, 0.50), pct_ms(lat, got, 0.99), pct_ms(lat_ok, got, 0.50),
	       pct_ms(lat_ok, got, 0.99));
	rc = pending == o->count ? 0 : 1;
cleanup:
	if (nodes)
		for (size_t i = 0; i < o->count; i++)
			client_conn_destroy(nodes[i].conn);
	loadkit_op_close(&op);
	client_ctx_destroy(ctx);
	free(nodes);
	free(lat);
	free(lat_ok);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: clawpair-bench verify [--seconds S]\n"
	        "       clawpair-bench pair --url U --token T --count N [--approve] [--batch B]\n"
	        "       clawpair-bench handshake --url U --token T --count N [--parallel K] "
	        "[--seconds S]\n"
	        "       clawpair-bench hold --url U --token T --count N --pid P "
	        "[--idle-seconds S] [--samples M]\n"
	        "common: --sig 2|3 (default 3), --client-id ID, --client-mode M, --seed-base B\n");
}

int main(int argc, char **argv)
{
	struct opts o = {.client_id = "openclaw-android",
	                 .client_mode = "node",
	                 .count = 100,
	                 .parallel = 32,
	                 .batch = 100,
	                 .seconds = 10,
	                 .idle_seconds = 10,
	                 .samples = 1000,
	                 .seed_base = 0x100000,
	                 .sig = 3};
	static const struct option longopts[] = {{"url", required_argument, NULL, 'u'},
	                                         {"token", required_argument, NULL, 't'},
	                                         {"count", required_argument, NULL, 'n'},
	                                         {"parallel", required_argument, NULL, 'k'},
	                                         {"seconds", required_argument, NULL, 's'},
	                                         {"idle-seconds", required_argument, NULL, 'i'},
	                                         {"samples", required_argument, NULL, 'm'},
	                                         {"seed-base", required_argument, NULL, 'b'},
	                                         {"sig", required_argument, NULL, 'g'},
	                                         {"pid", required_argument, NULL, 'p'},
	                                         {"approve", no_argument, NULL, 'a'},
	                                         {"client-id", required_argument, NULL, 'c'},
	                                         {"client-mode", required_argument, NULL, 'o'},
	                                         {"batch", required_argument, NULL, 'B'},
	                                         {"help", no_argument, NULL, 'h'},
	                                         {NULL, 0, NULL, 0}};
	if (argc < 2) {
		usage(stderr);
		return 64;
	}
	const char *cmd = argv[1];
	optind = 2;
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'u':
			o.url = optarg;
			break;
		case 't':
			o.token = optarg;
			break;
		case 'n':
			o.count = (size_t)strtoul(optarg, NULL, 10);
			break;
		case 'k':
			o.parallel = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			o.seconds = atof(optarg);
			break;
		case 'i':
			o.idle_seconds = atof(optarg);
			break;
		case 'm':
			o.samples = (size_t)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			o.seed_base = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'g':
			o.sig = atoi(optarg);
			break;
		case 'p':
			o.pid = atoi(optarg);
			break;
		case 'a':
			o.approve = true;
			break;
		case 'c':
			o.client_id = optarg;
			break;
		case 'o':
			o.client_mode = optarg;
			break;
		case 'B':
			o.batch = (size_t)strtoul(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (identity_global_init() != 0)
		return 1;
	if (strcmp(cmd, "verify") == 0)
		return cmd_verify(&o);
	if (!o.url || o.count == 0 || o.parallel == 0 || o.batch == 0) {
		usage(stderr);
		return 64;
	}
	if (strcmp(cmd, "pair") == 0)
		return cmd_pair(&o);
	if (strcmp(cmd, "handshake") == 0)
		return cmd_handshake(&o);
	if (strcmp(cmd, "hold") == 0 && o.pid > 0)
		return cmd_hold(&o);
	usage(stderr);
	return 64;
}
