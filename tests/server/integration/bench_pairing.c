/* bench_pairing.c: measures the real clawpair-gateway: the time from an operator's approve call to
 * the held node's hello-ok, and the gateway's resident memory with many held-open nodes.
 * A tool, not a test: run it by hand (see --help). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "clock.h"
#include "harness.h"
#include "loadgen.h"

struct swarm_node {
	struct client_conn *c;
	struct identity id;
	struct h_conn hc;
	int state; /* 0 connecting, 1 connect sent, 2 pending, 3 failed */
};

/* VmRSS of the gateway in KiB, or -1. */
static long gateway_rss_kib(const struct kit_gateway *g)
{
	struct loadgen_proc p;

	return loadgen_proc_read(g->proc.pid, &p) == 0 ? p.rss_kib : -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
		rl.rlim_cur =
		        rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Approve N nodes one by one: approve sent -> hello-ok received on the node's socket. */
static int bench_approve(struct client_ctx *ctx, const struct kit_gateway *g, int n)
{
	static const char *const scopes[] = {"operator.pairing", NULL};
	struct h_conn op;
	double *lat = calloc((size_t)n, sizeof(*lat));
	int done = 0, rc = -1;

	if (!lat || h_operator(ctx, g, scopes, &op) < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		struct identity id;
		struct h_conn node;
		char xff[32], rid[64], reqid[32];
		cJSON *ev, *res, *params;
		double t0;

		snprintf(xff, sizeof(xff), "10.1.%d.%d", i / 200, i % 200 + 1);
		if (identity_generate(&id) < 0 || h_node_begin(ctx, g, xff, &id, NULL, &node) < 0)
			goto out;
		ev = h_next_non_tick(&node, 5000);
		if (!h_str(ev, "payload.requestId")) {
			fprintf(stderr, "node %d: no connect.pending\n", i);
			cJSON_Delete(ev);
			h_close(&node);
			goto out;
		}
		snprintf(rid, sizeof(rid), "%s", h_str(ev, "payload.requestId"));
		cJSON_Delete(ev);
		/* drain the operator's pairing events so they do not queue up behind the res */
		while ((ev = h_next(&op, 0)))
			cJSON_Delete(ev);

		params = cJSON_CreateObject();
		cJSON_AddStringToObject(params, "requestId", rid);
		t0 = (double)clock_mono_us();
		if (h_send_req(&op, "node.pair.approve", params, reqid) < 0)
			goto out;
		res = h_wait_res(&node, node.connect_id, 5000);
		if (!h_is_res_ok(res) || !h_str(res, "payload.auth.deviceToken")) {
			fprintf(stderr, "node %d: no hello-ok after approve\n", i);
			cJSON_Delete(res);
			h_close(&node);
			goto out;
		}
		lat[done++] = ((double)clock_mono_us() - t0) / 1000.0;
		cJSON_Delete(res);
		res = h_wait_res(&op, reqid, 5000);
		cJSON_Delete(res);
		h_close(&node);
	}
	qsort(lat, (size_t)done, sizeof(*lat), cmp_double);
	printf("approve -> hello-ok over %d nodes: median %.3f ms, p90 %.3f ms, min %.3f ms, max "
	       "%.3f ms\n",
	       done, lat[done / 2], lat[(done * 9) / 10], lat[0], lat[done - 1]);
	rc = 0;
out:
	h_close(&op);
	free(lat);
	return rc;
}

/* n nodes connect at once from n_ips addresses and are held open; then VmRSS is read. */
static int bench_rss(struct client_ctx *ctx, const struct kit_gateway *g, int n, int n_ips)
{
	struct swarm_node *nodes = calloc((size_t)n, sizeof(*nodes));
	long rss0 = gateway_rss_kib(g), rss1;
	int pending = 0, failed = 0, rc = -1;
	double t0 = (double)clock_mono_us(), deadline = t0 + 120e6;

	if (!nodes)
		return -1;
	for (int i = 0; i < n; i++) {
		struct client_conn_opts o = {0};
		char xff[32];

		snprintf(xff, sizeof(xff), "10.2.%d.1", i % n_ips);
		o.url = g->proc.url;
		o.xff = xff;
		o.connect_timeout_ms = 60000;
		if (identity_generate(&nodes[i].id) < 0 ||
		    client_connect_async(ctx, &o, &nodes[i].hc.c) < 0) {
			nodes[i].state = 3;
			failed++;
		}
	}
	while (pending + failed < n && (double)clock_mono_us() < deadline) {
		client_service(ctx, 50);
		for (int i = 0; i < n; i++) {
			struct swarm_node *s = &nodes[i];
			cJSON *j;

			if (s->state >= 2)
				continue;
			while (s->state < 2 && client_pending_items(s->hc.c) > 0) {
				j = h_next(&s->hc, 0);
				if (!j) {
					if (s->hc.closed) {
						fprintf(stderr, "node %d closed: %d %s\n", i,
						        s->hc.close_code, s->hc.close_reason);
						s->state = 3;
						failed++;
					}
					break;
				}
				if (s->state == 0 && h_str(j, "payload.nonce")) {
					snprintf(s->hc.nonce, sizeof(s->hc.nonce), "%s",
					         h_str(j, "payload.nonce"));
					if (h_send_node_connect(&s->hc, &s->id, NULL) == 0)
						s->state = 1;
				} else if (s->state == 1 && h_str(j, "event") &&
				           strcmp(h_str(j, "event"), "connect.pending") == 0) {
					s->state = 2;
					pending++;
				}
				cJSON_Delete(j);
			}
		}
	}
	rss1 = gateway_rss_kib(g);
	printf("%d nodes held open (%d failed) from %d addresses in %.1f s\n", pending, failed,
	       n_ips, ((double)clock_mono_us() - t0) / 1e6);
	printf("gateway VmRSS: %ld KiB before, %ld KiB with %d held open (%.1f KiB per held "
	       "node)\n",
	       rss0, rss1, pending, pending ? (double)(rss1 - rss0) / pending : 0.0);
	if (pending == n)
		rc = 0;
	for (int i = 0; i < n; i++)
		client_conn_destroy(nodes[i].hc.c);
	free(nodes);
	return rc;
}

int main(int argc, char **argv)
{
	int approvals = 50, held = 1000, ips = 50;
	struct client_ctx_opts copts = {0};
	struct client_ctx *ctx = NULL;
	struct kit_gateway g = {.proc = {.pid = -1}};
	char per_ip[16], total[16];
	const char *extra[] = {"--max-pending-per-ip", per_ip, "--max-pending", total, NULL};
	int rc = 1, st;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--approvals") == 0 && i + 1 < argc)
			approvals = atoi(argv[++i]);
		else if (strcmp(argv[i], "--held") == 0 && i + 1 < argc)
			held = atoi(argv[++i]);
		else if (strcmp(argv[i], "--ips") == 0 && i + 1 < argc)
			ips = atoi(argv[++i]);
		else {
			fprintf(stderr,
			        "usage: %s [--approvals N (50)] [--held N (1000)] [--ips N (50)]\n"
			        "needs CLAWPAIR_BUILD_ROOT (the build dir) in the environment\n",
			        argv[0]);
			return 2;
		}
	}
	if (approvals < 1 || held < 1 || ips < 1)
		return 2;
	raise_nofile((rlim_t)held + 256);
	if (identity_global_init() < 0)
		return 1;
	copts.max_conns = (unsigned)held + 64;
	ctx = client_ctx_create(&copts);
	snprintf(per_ip, sizeof(per_ip), "%d", held);
	snprintf(total, sizeof(total), "%d", held + approvals + 16);
	if (!ctx || h_gateway_start(&g, extra) < 0) {
		fprintf(stderr, "cannot start the gateway\n");
		goto out;
	}
	printf("gateway pid %d on %s\n", (int)g.proc.pid, g.proc.url);
	if (bench_approve(ctx, &g, approvals) < 0 || bench_rss(ctx, &g, held, ips) < 0)
		goto out;
	rc = 0;
out:
	client_ctx_destroy(ctx);
	st = h_gateway_stop(&g);
	if (g.proc.pid == -1 && st != 0 && rc == 0) {
		fprintf(stderr, "gateway exit status %d\n", st);
		rc = 1;
	}
	kit_gateway_cleanup(&g);
	return rc;
}
