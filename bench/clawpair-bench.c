/* clawpair-bench.c: the measuring client behind bench/run.sh. Each subcommand prints one JSON
 * object on stdout:
 *   verify     Ed25519 verify-only ceiling (crypto_sign_verify_detached loop, one core)
 *   pair       pairs N deterministic devices (operator approval, or a gateway's auto-approve)
 *   handshake  already-paired devices connecting until hello-ok, K in flight on one loop
 *   hold       N nodes held pending: gateway RSS/fds/idle CPU, then approve-to-hello latency
 *   storm      N paired nodes connected, the gateway restarted, the time until all are back */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "clock.h"
#include "loadgen.h"
#include "profile.h"

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
	const char *ready_file;
	unsigned backoff_ms;
	size_t dials;
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

static struct loadgen_node_opts node_opts(const struct opts *o)
{
	struct loadgen_node_opts n = {.url = o->url,
	                              .token = o->token,
	                              .client_id = o->client_id,
	                              .client_mode = o->client_mode,
	                              .sig_version = o->sig};
	return n;
}

static int cmd_verify(const struct opts *o)
{
	struct loadgen_node n;
	loadgen_node_init(&n, 1);
	const char *payload = "v3|0000000000000000000000000000000000000000000000000000000000000000|"
	                      "openclaw-android|node|node||1795479066100|token-token-token|"
	                      "473a3502-c059-4056-a0d6-15a3a14fc2f4|android|android";
	unsigned char sig[crypto_sign_BYTES];
	crypto_sign_detached(sig, NULL, (const unsigned char *)payload, strlen(payload), n.id.sk);
	uint64_t count = 0, t0 = clock_mono_us(), limit = (uint64_t)(o->seconds * 1e6);
	while (clock_mono_us() - t0 < limit) {
		for (int k = 0; k < 64; k++)
			if (crypto_sign_verify_detached(sig, (const unsigned char *)payload,
			                                strlen(payload), n.id.pk) != 0)
				return 1;
		count += 64;
	}
	double secs = (double)(clock_mono_us() - t0) / 1e6;
	printf("{\"verify_per_s\":%.0f,\"us_per_verify\":%.2f,\"payload_bytes\":%zu}\n",
	       (double)count / secs, secs * 1e6 / (double)count, strlen(payload));
	return 0;
}

static void on_approve_res(void *user, const struct loadgen_res *r)
{
	size_t *answered = user;
	if (r->ok)
		answered[0]++;
	else
		answered[1]++;
}

/* Pumps until every node in [b0, b1) is past want (or failed), or the operator is gone. */
static bool pair_wait(struct client_ctx *ctx, struct loadgen_node *nodes, size_t b0, size_t b1,
                      const struct loadgen_node_opts *no, struct loadgen_op *op,
                      enum loadgen_node_state want, uint64_t deadline_us, size_t *started,
                      unsigned parallel)
{
	for (;;) {
		size_t inflight = 0, settled = 0;
		for (size_t i = b0; i < *started; i++) {
			struct loadgen_node *n = &nodes[i];
			if (n->conn)
				loadgen_node_step(n, no);
			if (loadgen_node_busy(n))
				inflight++;
			else if (n->state >= want || n->state == LOADGEN_FAILED)
				settled++;
		}
		while (*started < b1 && inflight < parallel) {
			loadgen_node_start(ctx, &nodes[*started], no);
			(*started)++;
			inflight++;
		}
		if (settled == b1 - b0)
			return true;
		if ((op && op->closed) || clock_mono_us() > deadline_us)
			return false;
		client_service(ctx, 2);
		if (op)
			loadgen_op_step(op);
	}
}

/* Pairs count devices, in batches: with approve, each batch is held pending, then approved by
 * an operator (device.pair.approve); without, the gateway's auto-approve answers hello-ok. */
static int cmd_pair(const struct opts *o)
{
	struct client_ctx_opts co = {.max_conns = o->parallel + o->batch + 64, .epoll = true};
	struct client_ctx *ctx = client_ctx_create(&co);
	struct loadgen_node *nodes = calloc(o->count, sizeof(*nodes));
	struct loadgen_node_opts no = node_opts(o);
	struct loadgen_op op = {0};
	size_t answered[2] = {0, 0};
	char err[256] = "";
	int rc = 1;
	if (!ctx || !nodes)
		goto cleanup;
	if (o->approve) {
		if (loadgen_op_connect(ctx, &op, o->url, o->token, NULL, 0, 10000, err,
		                       sizeof(err)) != 0) {
			fprintf(stderr, "clawpair-bench: operator: %s\n", err);
			goto cleanup;
		}
		op.on_res = on_approve_res;
		op.user = answered;
	}
	for (size_t i = 0; i < o->count; i++)
		loadgen_node_init(&nodes[i], o->seed_base + (uint32_t)i);
	uint64_t t0 = clock_mono_us(), deadline = t0 + (uint64_t)(o->seconds * 1e6);
	size_t started = 0, hello = 0, failed = 0;
	for (size_t b0 = 0; b0 < o->count; b0 += o->batch) {
		size_t b1 = b0 + o->batch < o->count ? b0 + o->batch : o->count;
		bool ok = pair_wait(ctx, nodes, b0, b1, &no, o->approve ? &op : NULL,
		                    o->approve ? LOADGEN_PENDING : LOADGEN_HELLO, deadline,
		                    &started, o->parallel);
		if (ok && o->approve) {
			size_t sent = 0, before = answered[0] + answered[1];
			for (size_t i = b0; i < b1; i++) {
				if (nodes[i].state != LOADGEN_PENDING)
					continue;
				cJSON *p = cJSON_CreateObject();
				cJSON_AddStringToObject(p, "requestId", nodes[i].request_id);
				sent += loadgen_op_call(&op, "device.pair.approve", p) != 0;
			}
			ok = pair_wait(ctx, nodes, b0, b1, &no, &op, LOADGEN_HELLO, deadline,
			               &started, o->parallel);
			while (ok && answered[0] + answered[1] - before < sent && !op.closed &&
			       clock_mono_us() < deadline) {
				client_service(ctx, 2);
				loadgen_op_step(&op);
			}
		}
		for (size_t i = b0; i < b1; i++) {
			if (nodes[i].state == LOADGEN_HELLO || nodes[i].state == LOADGEN_CLOSED)
				hello++;
			else {
				if (!failed)
					fprintf(stderr,
					        "clawpair-bench: pair: node %zu: state %d close %d %s\n",
					        i, nodes[i].state, nodes[i].close_code,
					        nodes[i].error_code);
				failed++;
			}
			loadgen_node_close(&nodes[i]);
		}
		if (!ok) {
			fprintf(stderr, "clawpair-bench: pair: stopped after %zu of %zu: %s\n",
			        hello, o->count,
			        op.closed ? "the gateway closed the operator" : "time limit");
			failed += o->count - b1;
			break;
		}
	}
	double secs = (double)(clock_mono_us() - t0) / 1e6;
	printf("{\"paired\":%zu,\"failed\":%zu,\"seconds\":%.3f,\"approved_ok\":%zu,"
	       "\"operator_closed\":%s,\"operator_close_code\":%d}\n",
	       hello, failed, secs, answered[0], op.closed ? "true" : "false", op.close_code);
	rc = hello == o->count ? 0 : 1;
cleanup:
	if (nodes)
		for (size_t i = 0; i < o->count; i++)
			client_conn_destroy(nodes[i].conn);
	loadgen_op_close(&op);
	client_ctx_destroy(ctx);
	free(nodes);
	return rc;
}

/* Already-paired devices reconnect, round robin, parallel in flight, for o->seconds. */
static int cmd_handshake(const struct opts *o)
{
	struct client_ctx_opts co = {.max_conns = o->parallel + 64, .epoll = true};
	struct client_ctx *ctx = client_ctx_create(&co);
	struct loadgen_node *slots = calloc(o->parallel, sizeof(*slots));
	size_t cap = 1 << 20, n_lat = 0;
	uint64_t *lat = calloc(cap, sizeof(*lat));
	struct loadgen_node_opts no = node_opts(o);
	int rc = 1;
	if (!ctx || !slots || !lat)
		goto cleanup;
	size_t next = 0, ok = 0, failed = 0;
	char first_err[128] = "";
	struct loadgen_proc gw0 = {0}, gw1 = {0};
	bool have_gw = o->pid > 0 && loadgen_proc_read(o->pid, &gw0) == 0;
	uint64_t t0 = clock_mono_us(), limit = (uint64_t)(o->seconds * 1e6);
	for (unsigned k = 0; k < o->parallel; k++) {
		loadgen_node_init(&slots[k], o->seed_base + (uint32_t)(next++ % o->count));
		loadgen_node_start(ctx, &slots[k], &no);
	}
	bool running = true;
	uint64_t t_end = 0;
	while (running) {
		client_service(ctx, 1);
		bool expired = clock_mono_us() - t0 >= limit;
		if (expired && !t_end) {
			t_end = clock_mono_us();
			if (have_gw)
				have_gw = loadgen_proc_read(o->pid, &gw1) == 0;
		}
		running = false;
		for (unsigned k = 0; k < o->parallel; k++) {
			struct loadgen_node *n = &slots[k];
			if (n->state == LOADGEN_IDLE)
				continue;
			loadgen_node_step(n, &no);
			bool done = false;
			if (n->state == LOADGEN_HELLO) {
				if (!expired) {
					ok++;
					if (n_lat < cap)
						lat[n_lat++] = n->t_hello_us - n->t_open_us;
				}
				done = true;
			} else if (n->state == LOADGEN_FAILED || n->state == LOADGEN_PENDING) {
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
				loadgen_node_close(n);
				n->state = LOADGEN_IDLE;
				if (!expired) {
					loadgen_node_init(n, o->seed_base +
					                             (uint32_t)(next++ % o->count));
					loadgen_node_start(ctx, n, &no);
				}
			}
			if (n->state != LOADGEN_IDLE)
				running = true;
		}
		if (expired && clock_mono_us() - t_end > 5000000)
			break;
	}
	double secs = (double)(t_end - t0) / 1e6;
	size_t n_all = n_lat;
	double p50 = pct_ms(lat, n_all, 0.50), p99 = pct_ms(lat, n_all, 0.99);
	/* The gateway's own CPU (utime + stime) per handshake over the timed window: what the
	 * client's signing on the same cores does not distort. */
	double gw_cpu_us = have_gw && ok ? (double)(gw1.cpu_ticks - gw0.cpu_ticks) * 1e6 /
	                                           (double)sysconf(_SC_CLK_TCK) / (double)ok
	                                 : -1;
	printf("{\"handshakes\":%zu,\"failed\":%zu,\"seconds\":%.3f,\"per_s\":%.1f,\"parallel\":%u,"
	       "\"devices\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"gateway_cpu_us\":%.2f,"
	       "\"first_error\":\"%s\"}\n",
	       ok, failed, secs, (double)ok / secs, o->parallel, o->count, p50, p99, gw_cpu_us,
	       first_err);
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

static void on_lat_res(void *user, const struct loadgen_res *r)
{
	struct lat_wait *w = user;
	if (r->id == w->id) {
		w->done = true;
		w->ok = r->ok;
		w->t_ok = r->t_us;
	}
}

/* The nodes of the hold command and how far their handshakes got. */
struct hold {
	const struct opts *o;
	struct client_ctx *ctx;
	struct loadgen_node *nodes;
	struct loadgen_node_opts no;
	size_t started, pending, failed;
};

/* Connects o->count nodes, o->parallel handshakes in flight, until every one is held pending
 * or has failed, or o->seconds have passed. Only the handshakes in flight are looked at on each
 * turn, so the client's cost per turn does not grow with the nodes already held. */
static void hold_ramp(struct hold *h)
{
	const struct opts *o = h->o;
	size_t *busy = calloc(o->parallel, sizeof(*busy)), n_busy = 0;
	uint64_t t0 = clock_mono_us();
	if (!busy)
		return;
	while (h->pending + h->failed < o->count) {
		client_service(h->ctx, 2);
		for (size_t k = 0; k < n_busy;) {
			struct loadgen_node *n = &h->nodes[busy[k]];
			loadgen_node_step(n, &h->no);
			if (loadgen_node_busy(n)) {
				k++;
				continue;
			}
			if (n->state == LOADGEN_PENDING)
				h->pending++;
			else
				h->failed++;
			busy[k] = busy[--n_busy];
		}
		while (h->started < o->count && n_busy < o->parallel) {
			loadgen_node_init(&h->nodes[h->started],
			                  o->seed_base + (uint32_t)h->started);
			loadgen_node_start(h->ctx, &h->nodes[h->started], &h->no);
			busy[n_busy++] = h->started++;
		}
		if (clock_mono_us() - t0 > (uint64_t)(o->seconds * 1e6))
			break;
	}
	free(busy);
	/* A held node that the gateway closed since counts as failed. */
	h->pending = h->failed = 0;
	for (size_t i = 0; i < h->started; i++) {
		if (h->nodes[i].state == LOADGEN_PENDING)
			h->pending++;
		else if (!loadgen_node_busy(&h->nodes[i]))
			h->failed++;
	}
	for (size_t i = 0; h->failed && i < h->started; i++)
		if (h->nodes[i].state == LOADGEN_FAILED) {
			fprintf(stderr, "clawpair-bench: hold: node %zu failed: close %d %s\n", i,
			        h->nodes[i].close_code, h->nodes[i].error_code);
			break;
		}
}

/* The gateway's CPU while everybody idles, as % of one core over o->idle_seconds. */
static double hold_idle_cpu(struct hold *h, const struct loadgen_proc *held, double *secs)
{
	struct loadgen_proc after;
	uint64_t ti = clock_mono_us();
	while (clock_mono_us() - ti < (uint64_t)(h->o->idle_seconds * 1e6))
		client_service(h->ctx, 100);
	*secs = (double)(clock_mono_us() - ti) / 1e6;
	loadgen_proc_read(h->o->pid, &after);
	return 100.0 * (double)(after.cpu_ticks - held->cpu_ticks) / (double)sysconf(_SC_CLK_TCK) /
	       *secs;
}

/* Approve-to-hello: one approval at a time, on a spread sample of the held nodes. Fills
 * lat (to hello-ok) and lat_ok (to the operator's ok); returns the number of samples. */
static size_t hold_approve(struct hold *h, struct loadgen_op *op, size_t n_samples, uint64_t *lat,
                           uint64_t *lat_ok)
{
	struct lat_wait w = {0};
	size_t got = 0, stride = h->pending / (n_samples ? n_samples : 1);
	op->on_res = on_lat_res;
	op->user = &w;
	if (stride == 0)
		stride = 1;
	for (size_t i = 0; i < h->o->count && got < n_samples; i += stride) {
		struct loadgen_node *n = &h->nodes[i];
		if (n->state != LOADGEN_PENDING)
			continue;
		cJSON *p = cJSON_CreateObject();
		cJSON_AddStringToObject(p, "requestId", n->request_id);
		memset(&w, 0, sizeof(w));
		uint64_t t_send = clock_mono_us();
		w.id = loadgen_op_call(op, "device.pair.approve", p);
		uint64_t deadline = t_send + 10000000;
		while ((n->state == LOADGEN_PENDING || !w.done) && clock_mono_us() < deadline) {
			client_service(h->ctx, 1);
			loadgen_node_step(n, &h->no);
			loadgen_op_step(op);
		}
		if (n->state != LOADGEN_HELLO || !w.ok) {
			fprintf(stderr, "clawpair-bench: hold: approval %zu: state %d ok %d\n", i,
			        n->state, w.ok);
			continue;
		}
		lat[got] = n->t_hello_us - t_send;
		lat_ok[got] = w.t_ok - t_send;
		got++;
	}
	op->on_res = NULL;
	op->user = NULL;
	return got;
}

/* N nodes held pending: RSS, fds, idle CPU of the gateway; then approve-to-hello latency. */
static int cmd_hold(const struct opts *o)
{
	struct client_ctx_opts co = {.max_conns = (unsigned)o->count + 64, .epoll = true};
	struct hold h = {.o = o, .ctx = client_ctx_create(&co), .no = node_opts(o)};
	size_t n_samples = o->samples < o->count ? o->samples : o->count;
	uint64_t *lat = calloc(n_samples + 1, sizeof(*lat));
	uint64_t *lat_ok = calloc(n_samples + 1, sizeof(*lat_ok));
	struct loadgen_op op = {0};
	struct loadgen_proc base, held;
	double idle_secs = 0;
	char err[256] = "";
	int rc = 1;
	h.nodes = calloc(o->count, sizeof(*h.nodes));
	if (!h.ctx || !h.nodes || !lat || !lat_ok)
		goto cleanup;
	if (loadgen_proc_read(o->pid, &base) != 0) {
		fprintf(stderr, "clawpair-bench: cannot read /proc/%d\n", o->pid);
		goto cleanup;
	}
	uint64_t t0 = clock_mono_us();
	hold_ramp(&h);
	double ramp = (double)(clock_mono_us() - t0) / 1e6;
	/* Let the gateway settle, then measure it idle with everybody held. */
	for (int k = 0; k < 20; k++)
		client_service(h.ctx, 25);
	loadgen_proc_read(o->pid, &held);
	double cpu_pct = hold_idle_cpu(&h, &held, &idle_secs);

	/* The operator comes only now: a gateway sends it device.pair.requested for every held
	 * node, which is not what is measured here. */
	if (loadgen_op_connect(h.ctx, &op, o->url, o->token, NULL, 0, 10000, err, sizeof(err)) !=
	    0) {
		fprintf(stderr, "clawpair-bench: operator: %s\n", err);
		goto cleanup;
	}
	size_t got = hold_approve(&h, &op, n_samples, lat, lat_ok);
	size_t delta_fds = (size_t)(held.fds - base.fds);
	double per_conn =
	        h.pending ? (double)(held.rss_kib - base.rss_kib) * 1024.0 / (double)h.pending : -1;
	printf("{\"held\":%zu,\"failed\":%zu,\"ramp_s\":%.3f,\"rss_base_kib\":%ld,"
	       "\"rss_held_kib\":%ld,\"rss_per_conn_bytes\":%.0f,\"fds_base\":%ld,\"fds_held\":%ld,"
	       "\"fds_per_conn\":%.3f,\"idle_cpu_pct\":%.3f,\"idle_seconds\":%.1f,"
	       "\"approve_samples\":%zu,\"approve_hello_p50_ms\":%.3f,\"approve_hello_p99_ms\":%.3f,"
	       "\"approve_ok_p50_ms\":%.3f,\"approve_ok_p99_ms\":%.3f}\n",
	       h.pending, h.failed, ramp, base.rss_kib, held.rss_kib, per_conn, base.fds, held.fds,
	       h.pending ? (double)delta_fds / (double)h.pending : -1, cpu_pct, idle_secs, got,
	       pct_ms(lat, got, 0.50), pct_ms(lat, got, 0.99), pct_ms(lat_ok, got, 0.50),
	       pct_ms(lat_ok, got, 0.99));
	rc = h.pending == o->count ? 0 : 1;
cleanup:
	if (h.nodes)
		for (size_t i = 0; i < o->count; i++)
			client_conn_destroy(h.nodes[i].conn);
	loadgen_op_close(&op);
	client_ctx_destroy(h.ctx);
	free(h.nodes);
	free(lat);
	free(lat_ok);
	return rc;
}

/* A reconnect storm: count paired devices connect (parallel in flight) until every one has
 * hello-ok; then o->ready_file is created and the caller restarts the gateway. Every node whose
 * socket closes reconnects after the Android app's backoff (profile/'s android row, its first
 * wait replaced by o->backoff_ms, growing after each failed attempt, as clawpair-fake-node does),
 * until all have hello-ok again or o->seconds have passed. At most o->dials reconnects are under
 * way at a time: the rest wait for a slot, past their backoff. One client process with 10,000
 * handshakes under way would measure itself (lws re-inserts each into its sorted timer list at
 * every step of the handshake, linear in the connections), not the gateway. */
#define STORM_SCAN_US 5000

struct storm_node {
	struct loadgen_node n;
	uint64_t retry_at_us; /* 0: not waiting */
	int failures; /* failed reconnects: n of profile_backoff_ms */
	bool again; /* hello-ok since the restart */
	unsigned attempts; /* since the restart */
};

/* What a storm counts after the restart. */
struct storm_tally {
	size_t again, attempts, failed_attempts, dialing; /* dialing: reconnects under way */
	unsigned max_attempts;
	uint64_t t_first_close, t_first_again;
};

/* Phase 1: every node connected (hello-ok), o->parallel handshakes in flight; only those are
 * looked at. Returns 0, or -1 (said on stderr). */
static int storm_connect_all(struct client_ctx *ctx, const struct opts *o, struct storm_node *v,
                             const struct loadgen_node_opts *no, uint64_t limit)
{
	size_t started = 0, up = 0, inflight = 0;
	size_t *busy = calloc(o->parallel, sizeof(*busy));
	uint64_t t0 = clock_mono_us();
	int rc = -1;

	if (!busy)
		return -1;
	while (up < o->count && clock_mono_us() - t0 < limit) {
		client_service(ctx, 2);
		for (size_t k = 0; k < inflight;) {
			struct loadgen_node *n = &v[busy[k]].n;
			loadgen_node_step(n, no);
			if (loadgen_node_busy(n)) {
				k++;
				continue;
			}
			if (n->state != LOADGEN_HELLO) {
				fprintf(stderr, "clawpair-bench: storm: node %zu: close %d %s\n",
				        busy[k], n->close_code, n->error_code);
				goto out;
			}
			up++;
			busy[k] = busy[--inflight];
		}
		while (started < o->count && inflight < o->parallel) {
			loadgen_node_init(&v[started].n, o->seed_base + (uint32_t)started);
			loadgen_node_start(ctx, &v[started].n, no);
			busy[inflight++] = started++;
		}
	}
	if (up < o->count)
		fprintf(stderr, "clawpair-bench: storm: only %zu of %zu connected\n", up, o->count);
	else
		rc = 0;
out:
	free(busy);
	return rc;
}

/* Phase 2, one node at a time: a waiting node whose backoff ended dials (when a dial slot is
 * free), a dialing one steps; back with hello-ok it is counted and closed, refused it waits
 * its next backoff (bp). */
static void storm_scan_node(struct client_ctx *ctx, const struct opts *o,
                            const struct loadgen_node_opts *no, const struct profile *bp,
                            struct storm_node *s, uint64_t now, struct storm_tally *t)
{
	struct loadgen_node *n = &s->n;
	bool was_dialing;

	if (s->again)
		return;
	if (s->retry_at_us) {
		if (now < s->retry_at_us || t->dialing >= o->dials)
			return;
		s->retry_at_us = 0;
		s->attempts++;
		t->attempts++;
		t->dialing++;
		loadgen_node_start(ctx, n, no);
		return;
	}
	was_dialing = s->attempts && loadgen_node_busy(n);
	loadgen_node_step(n, no);
	if (was_dialing && !loadgen_node_busy(n))
		t->dialing--;
	if (n->state == LOADGEN_HELLO && s->attempts) {
		s->again = true;
		t->again++;
		if (!t->t_first_again)
			t->t_first_again = now;
		if (s->attempts > t->max_attempts)
			t->max_attempts = s->attempts;
		loadgen_node_close(n); /* it has shown it is back; keeps the client light */
	} else if (n->state == LOADGEN_CLOSED || n->state == LOADGEN_FAILED) {
		if (!t->t_first_close)
			t->t_first_close = now;
		if (s->attempts) {
			t->failed_attempts++;
			s->failures++;
		}
		client_conn_destroy(n->conn);
		n->conn = NULL;
		n->state = LOADGEN_IDLE;
		s->retry_at_us = now + (uint64_t)profile_backoff_ms(bp, s->failures, 0) * 1000;
	}
}

static int cmd_storm(const struct opts *o)
{
	struct client_ctx_opts co = {.max_conns = (unsigned)o->count + 64, .epoll = true};
	struct client_ctx *ctx = client_ctx_create(&co);
	struct storm_node *v = calloc(o->count, sizeof(*v));
	struct loadgen_node_opts no = node_opts(o);
	struct profile bp = *profile_get(PROFILE_ANDROID);
	struct storm_tally t = {0};
	uint64_t t0, t_all, limit, last_scan = 0;
	int64_t t_all_wall;
	FILE *ready;
	int rc = 1;

	bp.backoff_initial_ms = (int)o->backoff_ms;
	if (!ctx || !v || !o->ready_file)
		goto cleanup;
	limit = (uint64_t)(o->seconds * 1e6);
	if (storm_connect_all(ctx, o, v, &no, limit) < 0)
		goto cleanup;
	ready = fopen(o->ready_file, "w");
	if (!ready)
		goto cleanup;
	fclose(ready);
	/* 2. the restart, and everybody back. A pass over 10,000 nodes costs about a millisecond of
	 * the CPU the gateway needs too: one every STORM_SCAN_US, which is also the resolution of
	 * the figures. */
	t0 = clock_mono_us();
	while (t.again < o->count && clock_mono_us() - t0 < limit) {
		uint64_t now;

		client_service(ctx, 1);
		now = clock_mono_us();
		if (now - last_scan < STORM_SCAN_US)
			continue;
		last_scan = now;
		for (size_t i = 0; i < o->count; i++)
			storm_scan_node(ctx, o, &no, &bp, &v[i], now, &t);
	}
	t_all = t.again == o->count ? clock_mono_us() : 0;
	t_all_wall = t.again == o->count ? clock_wall_ms() : -1;
	printf("{\"nodes\":%zu,\"back\":%zu,\"storm_s\":%.3f,\"first_back_to_all_s\":%.3f,"
	       "\"attempts\":%zu,\"failed_attempts\":%zu,\"max_attempts\":%u,"
	       "\"backoff_ms\":%u,\"dials\":%zu,\"all_back_wall_ms\":%" PRId64 "}\n",
	       o->count, t.again,
	       t_all && t.t_first_close ? (double)(t_all - t.t_first_close) / 1e6 : -1,
	       t_all && t.t_first_again ? (double)(t_all - t.t_first_again) / 1e6 : -1, t.attempts,
	       t.failed_attempts, t.max_attempts, o->backoff_ms, o->dials, t_all_wall);
	rc = t.again == o->count ? 0 : 1;
cleanup:
	if (v)
		for (size_t i = 0; i < o->count; i++)
			client_conn_destroy(v[i].n.conn);
	client_ctx_destroy(ctx);
	free(v);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: clawpair-bench verify [--seconds S]\n"
	        "       clawpair-bench pair --url U --token T --count N [--approve] [--batch B]\n"
	        "       clawpair-bench handshake --url U --token T --count N [--parallel K] "
	        "[--seconds S] [--pid P]\n"
	        "       clawpair-bench hold --url U --token T --count N --pid P "
	        "[--idle-seconds S] [--samples M]\n"
	        "       clawpair-bench storm --url U --token T --count N --ready-file F "
	        "[--backoff-ms MS] [--dials D] [--seconds S]\n"
	        "common: --sig 2|3 (default 3), --client-id ID, --client-mode M, --seed-base B\n");
}

/* The options, each stored into its field of struct opts by its kind. */
enum opt_kind { OPT_STR, OPT_SIZE, OPT_UINT, OPT_U32, OPT_INT, OPT_DOUBLE, OPT_FLAG };

struct opt_def {
	const char *name;
	enum opt_kind kind;
	size_t off;
};

static const struct opt_def opt_defs[] = {
        {"url", OPT_STR, offsetof(struct opts, url)},
        {"token", OPT_STR, offsetof(struct opts, token)},
        {"count", OPT_SIZE, offsetof(struct opts, count)},
        {"parallel", OPT_UINT, offsetof(struct opts, parallel)},
        {"seconds", OPT_DOUBLE, offsetof(struct opts, seconds)},
        {"idle-seconds", OPT_DOUBLE, offsetof(struct opts, idle_seconds)},
        {"samples", OPT_SIZE, offsetof(struct opts, samples)},
        {"seed-base", OPT_U32, offsetof(struct opts, seed_base)},
        {"sig", OPT_INT, offsetof(struct opts, sig)},
        {"pid", OPT_INT, offsetof(struct opts, pid)},
        {"approve", OPT_FLAG, offsetof(struct opts, approve)},
        {"client-id", OPT_STR, offsetof(struct opts, client_id)},
        {"client-mode", OPT_STR, offsetof(struct opts, client_mode)},
        {"batch", OPT_SIZE, offsetof(struct opts, batch)},
        {"ready-file", OPT_STR, offsetof(struct opts, ready_file)},
        {"backoff-ms", OPT_UINT, offsetof(struct opts, backoff_ms)},
        {"dials", OPT_SIZE, offsetof(struct opts, dials)},
};
#define N_OPT_DEFS (sizeof(opt_defs) / sizeof(opt_defs[0]))
#define OPT_HELP ((int)N_OPT_DEFS)

static void opt_store(struct opts *o, const struct opt_def *d, const char *arg)
{
	char *field = (char *)o + d->off;
	switch (d->kind) {
	case OPT_STR:
		*(const char **)(void *)field = arg;
		break;
	case OPT_SIZE:
		*(size_t *)(void *)field = (size_t)strtoul(arg, NULL, 10);
		break;
	case OPT_UINT:
		*(unsigned *)(void *)field = (unsigned)strtoul(arg, NULL, 10);
		break;
	case OPT_U32:
		*(uint32_t *)(void *)field = (uint32_t)strtoul(arg, NULL, 0);
		break;
	case OPT_INT:
		*(int *)(void *)field = atoi(arg);
		break;
	case OPT_DOUBLE:
		*(double *)(void *)field = atof(arg);
		break;
	case OPT_FLAG:
		*(bool *)(void *)field = true;
		break;
	}
}

/* Parses the options after the subcommand. Returns 0, 1 after --help, or -1. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	struct option longopts[N_OPT_DEFS + 2];
	int c;
	for (size_t i = 0; i < N_OPT_DEFS; i++)
		longopts[i] = (struct option){opt_defs[i].name,
		                              opt_defs[i].kind == OPT_FLAG ? no_argument
		                                                           : required_argument,
		                              NULL, (int)i};
	longopts[N_OPT_DEFS] = (struct option){"help", no_argument, NULL, OPT_HELP};
	longopts[N_OPT_DEFS + 1] = (struct option){NULL, 0, NULL, 0};
	optind = 2;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == OPT_HELP)
			return 1;
		if (c < 0 || c >= (int)N_OPT_DEFS)
			return -1;
		opt_store(o, &opt_defs[c], optarg);
	}
	return 0;
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
	                 .sig = 3,
	                 .backoff_ms = 1000,
	                 .dials = 512};
	if (argc < 2) {
		usage(stderr);
		return 64;
	}
	const char *cmd = argv[1];
	int parsed = parse_opts(argc, argv, &o);
	if (parsed != 0) {
		usage(parsed > 0 ? stdout : stderr);
		return parsed > 0 ? 0 : 64;
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
	if (strcmp(cmd, "storm") == 0 && o.ready_file)
		return cmd_storm(&o);
	usage(stderr);
	return 64;
}
