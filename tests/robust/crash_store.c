/* crash_store.c: SIGKILLs the gateway at random moments of an approval storm, hundreds of times,
 * and checks the record files the kill left behind, then after each restart that the store loads,
 * every acknowledged approval is paired (PERSIST-3), no pending request vanished without being
 * resolved (PERSIST-1), and no stale request of a paired device survived. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "gateway.h"
#include "json.h"
#include "loadgen.h"

#define MAX_REQS 8192
#define LOW_WATER 40
#define REFILL 60
#define STORM_APPROVALS 24
#define STORM_NEW_NODES 6
#define MAX_INFLIGHT 32
#define PAIRED_HIGH_WATER 1000
#define PAIRED_LOW_WATER 500
#define APPROVE_ID_BASE 1000000u

/* REQ_REMOVED: paired, checked after a restart, then removed (device.pair.remove) to keep
 * device.pair.list under the gateway's send buffer cap; it must stay removed. */
enum req_state { REQ_NONE = 0, REQ_PENDING, REQ_ACKED, REQ_RESOLVED_UNACKED, REQ_REMOVED };

struct req {
	struct loadgen_node node;
	enum req_state state;
	bool in_storm; /* an approval for it was sent in the current trial */
	bool hello_seen;
};

struct run {
	char tmp[64]; /* the state dir and the gateway's log */
	char state_dir[256];
	char log_path[512];
	const char *token;
	int scale; /* 10 under valgrind */
	struct client_ctx *ctx;
	struct kit_gateway gw;
	struct loadgen_op op;
	struct req *reqs;
	size_t n_reqs;
	uint32_t next_seed;
	/* figures */
	unsigned acked, unacked_resolved, stale, kills, trials, approvals_sent, answered_errors;
	unsigned temps; /* temp files of writes cut short, found after a kill */
	unsigned removed;
	char failure[512];
};

#define note_failure(r, ...) kit_note_first((r)->failure, sizeof((r)->failure), __VA_ARGS__)

static struct req *find_device(struct run *r, const char *device_id)
{
	for (size_t i = 0; i < r->n_reqs; i++)
		if (strcmp(r->reqs[i].node.id.device_id, device_id) == 0)
			return &r->reqs[i];
	return NULL;
}

static struct loadgen_node_opts node_opts(struct run *r)
{
	struct loadgen_node_opts o = {.url = r->gw.proc.url, .token = r->token, .sig_version = 3};
	return o;
}

static void step_nodes(struct run *r)
{
	struct loadgen_node_opts o = node_opts(r);
	for (size_t i = 0; i < r->n_reqs; i++) {
		struct req *q = &r->reqs[i];
		if (!q->node.conn)
			continue;
		loadgen_node_step(&q->node, &o);
		if (q->node.state == LOADGEN_PENDING && q->state == REQ_NONE &&
		    q->node.request_id[0])
			q->state = REQ_PENDING;
		if (q->node.hello_count > 0)
			q->hello_seen = true;
	}
}

static void on_res(void *user, const struct loadgen_res *res)
{
	struct run *r = user;
	/* Approval ids are the index of the request + APPROVE_ID_BASE (see storm). */
	if (res->id < APPROVE_ID_BASE)
		return;
	size_t idx = (size_t)(res->id - APPROVE_ID_BASE);
	if (idx >= r->n_reqs)
		return;
	struct req *q = &r->reqs[idx];
	if (res->ok) {
		q->state = REQ_ACKED;
		r->acked++;
	} else {
		r->answered_errors++;
		note_failure(r, "approve of %s answered %s", q->node.request_id, res->error_code);
	}
}

static void pump(struct run *r, int ms)
{
	client_service(r->ctx, ms);
	step_nodes(r);
	if (r->op.conn)
		loadgen_op_step(&r->op);
}

/* Opens n new nodes (at most MAX_INFLIGHT handshakes at once) and waits for connect.pending. */
static void add_nodes(struct run *r, size_t n)
{
	struct loadgen_node_opts o = node_opts(r);
	size_t first = r->n_reqs, started = 0;
	if (r->n_reqs + n > MAX_REQS)
		n = MAX_REQS - r->n_reqs;
	uint64_t deadline = clock_mono_ms() + 20000u * (uint64_t)r->scale;
	while (clock_mono_ms() < deadline) {
		size_t inflight = 0, done = 0;
		for (size_t i = first; i < first + started; i++) {
			if (loadgen_node_busy(&r->reqs[i].node))
				inflight++;
			else
				done++;
		}
		while (started < n && inflight < MAX_INFLIGHT) {
			struct req *q = &r->reqs[first + started];
			memset(q, 0, sizeof(*q));
			loadgen_node_init(&q->node, r->next_seed++);
			loadgen_node_start(r->ctx, &q->node, &o);
			started++;
			r->n_reqs++;
			inflight++;
		}
		if (done == n)
			break;
		pump(r, 5);
	}
	for (size_t i = first; i < r->n_reqs; i++)
		if (r->reqs[i].state != REQ_PENDING)
			note_failure(
			        r, "node %zu did not get connect.pending (state %d, close %d, %s)",
			        i, r->reqs[i].node.state, r->reqs[i].node.close_code,
			        r->reqs[i].node.error_code);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The values of key in the array's objects, sorted for bsearch (borrowed from arr). */
static const char **sorted_values(cJSON *arr, const char *key, size_t *n)
{
	const char **v = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*v));
	cJSON *e;
	*n = 0;
	if (!v)
		return NULL;
	cJSON_ArrayForEach(e, arr)
	{
		const char *s = json_get_string(e, key);
		if (s)
			v[(*n)++] = s;
	}
	qsort(v, *n, sizeof(*v), cmp_str);
	return v;
}

static bool has(const char **v, size_t n, const char *s)
{
	return bsearch(&s, v, n, sizeof(*v), cmp_str) != NULL;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	if (!f)
		return NULL;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *nb = realloc(buf, cap);
			if (!nb)
				break;
			buf = nb;
		}
		size_t n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	if (buf)
		buf[len] = '\0';
	return buf;
}

struct disk_rec {
	char key[160];
	char device_id[160];
	char public_key[160];
};

/* Reads one table directory of the store as a kill left it: every "<key>.json" must be one
 * complete JSON object whose key field is <key>; dotfiles are temp files of cut writes. */
static struct disk_rec *read_table_dir(struct run *r, const char *table, const char *key_field,
                                       size_t *n_out)
{
	char dir[512], path[1024];
	snprintf(dir, sizeof(dir), "%s/%s", r->state_dir, table);
	struct disk_rec *v = NULL;
	size_t n = 0, cap = 0;
	*n_out = 0;
	DIR *d = opendir(dir);
	if (!d) {
		if (errno != ENOENT)
			note_failure(r, "trial %u: cannot list %s", r->trials, dir);
		return NULL;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (e->d_name[0] == '.') {
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				r->temps++;
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (len <= 5 || strcmp(e->d_name + len - 5, ".json") != 0 || len - 5 >= 160) {
			note_failure(r, "trial %u: unexpected file %s in the store", r->trials,
			             path);
			continue;
		}
		char *text = slurp(path);
		cJSON *rec = text ? cJSON_Parse(text) : NULL;
		free(text);
		const char *key = json_get_string(rec, key_field);
		if (!cJSON_IsObject(rec) || !key || strncmp(key, e->d_name, len - 5) != 0 ||
		    key[len - 5] != '\0') {
			note_failure(r, "trial %u: record file %s is damaged after a kill",
			             r->trials, path);
			cJSON_Delete(rec);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			struct disk_rec *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				cJSON_Delete(rec);
				break;
			}
			v = nv;
		}
		const char *did = json_get_string(rec, "deviceId");
		const char *pk = json_get_string(rec, "publicKey");
		snprintf(v[n].key, sizeof(v[n].key), "%s", key);
		snprintf(v[n].device_id, sizeof(v[n].device_id), "%s", did ? did : "");
		snprintf(v[n].public_key, sizeof(v[n].public_key), "%s", pk ? pk : "");
		n++;
		cJSON_Delete(rec);
	}
	closedir(d);
	*n_out = n;
	return v;
}

/* The on-disk store between a kill and the restart. A request whose device is paired under the
 * same key is what a kill inside an approval leaves (paired file written, pending file not yet
 * unlinked): counted here, and check_store then requires the restart to have dropped it. */
static void check_disk(struct run *r)
{
	size_t n_pending = 0, n_paired = 0;
	struct disk_rec *pending = read_table_dir(r, "pending", "requestId", &n_pending);
	struct disk_rec *paired = read_table_dir(r, "paired", "deviceId", &n_paired);
	for (size_t i = 0; i < n_pending; i++)
		for (size_t j = 0; j < n_paired; j++)
			if (strcmp(pending[i].device_id, paired[j].key) == 0 &&
			    strcmp(pending[i].public_key, paired[j].public_key) == 0)
				r->stale++;
	/* The previous layout's whole-table files must not come back. */
	static const char *const old[] = {"pending.json", "paired.json", "nodes-pending.json"};
	for (size_t i = 0; i < sizeof(old) / sizeof(old[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", r->state_dir, old[i]);
		if (access(path, F_OK) == 0)
			note_failure(r, "trial %u: %s exists", r->trials, path);
	}
	free(pending);
	free(paired);
}

/* Compares the store after a restart with what the clients were told. */
static void check_store(struct run *r, size_t *n_pending)
{
	cJSON *payload = NULL;
	char err[256] = "";
	if (loadgen_op_call_wait(r->ctx, &r->op, "device.pair.list", NULL, 10000 * r->scale,
	                         &payload, err, sizeof(err)) != 0) {
		note_failure(r, "device.pair.list failed: %s", err);
		return;
	}
	cJSON *pending = cJSON_GetObjectItemCaseSensitive(payload, "pending");
	cJSON *paired = cJSON_GetObjectItemCaseSensitive(payload, "paired");
	if (!cJSON_IsArray(pending) || !cJSON_IsArray(paired)) {
		note_failure(r, "device.pair.list payload lacks pending/paired arrays");
		cJSON_Delete(payload);
		return;
	}
	size_t n_rids = 0, n_devs = 0;
	const char **rids = sorted_values(pending, "requestId", &n_rids);
	const char **devs = sorted_values(paired, "deviceId", &n_devs);
	*n_pending = 0;
	for (size_t i = 0; rids && devs && i < r->n_reqs; i++) {
		struct req *q = &r->reqs[i];
		const char *dev = q->node.id.device_id;
		bool is_paired = has(devs, n_devs, dev);
		bool is_pending = has(rids, n_rids, q->node.request_id);
		switch (q->state) {
		case REQ_ACKED:
		case REQ_RESOLVED_UNACKED:
			if (!is_paired)
				note_failure(
				        r,
				        "trial %u: approval of %s was acknowledged (ok:true) but device "
				        "%.16s is not paired after the restart",
				        r->trials, q->node.request_id, dev);
			if (is_pending)
				note_failure(r, "trial %u: approved request %s is pending again",
				             r->trials, q->node.request_id);
			break;
		case REQ_REMOVED:
			if (is_paired || is_pending)
				note_failure(r, "trial %u: removed device %.16s is back", r->trials,
				             dev);
			break;
		case REQ_PENDING:
			if (is_pending && is_paired)
				/* The paired file was written, the pending one not yet unlinked:
				 * the store must drop such a request when it opens. */
				note_failure(r,
				             "trial %u: request %s of paired device %.16s is still "
				             "pending after the restart",
				             r->trials, q->node.request_id, dev);
			else if (is_paired) {
				/* The approval reached the disk but the ok died with the gateway. */
				q->state = REQ_RESOLVED_UNACKED;
				r->unacked_resolved++;
			} else if (!is_pending)
				note_failure(r,
				             "trial %u: pending request %s (device %.16s) vanished",
				             r->trials, q->node.request_id, dev);
			else
				(*n_pending)++;
			if (q->hello_seen && !is_paired)
				note_failure(r,
				             "trial %u: node %.16s got hello-ok but is not paired",
				             r->trials, dev);
			break;
		case REQ_NONE:
			/* Its connect.pending never arrived; if the store holds the request anyway,
			 * adopt it so it must not vanish from now on. */
			if (q->node.request_id[0] == '\0') {
				cJSON *e;
				cJSON_ArrayForEach(e, pending)
				{
					const char *d = json_get_string(e, "deviceId");
					const char *rid = json_get_string(e, "requestId");
					if (d && rid && strcmp(d, dev) == 0) {
						snprintf(q->node.request_id,
						         sizeof(q->node.request_id), "%s", rid);
						q->state = REQ_PENDING;
						(*n_pending)++;
					}
				}
			}
			break;
		}
	}
	/* Nothing unknown may appear either. */
	cJSON *e;
	cJSON_ArrayForEach(e, pending)
	{
		const char *d = json_get_string(e, "deviceId");
		if (!d || !find_device(r, d))
			note_failure(r, "trial %u: unknown pending record in the store", r->trials);
	}
	free(rids);
	free(devs);
	cJSON_Delete(payload);
}

/* Removes the oldest checked devices once there are many: every paired device is in each
 * device.pair.list answer, which must stay under the gateway's maxBufferedBytes. */
static void prune_paired(struct run *r)
{
	size_t n_paired = 0;
	for (size_t i = 0; i < r->n_reqs; i++)
		if (r->reqs[i].state == REQ_ACKED || r->reqs[i].state == REQ_RESOLVED_UNACKED)
			n_paired++;
	if (n_paired < PAIRED_HIGH_WATER)
		return;
	for (size_t i = 0; i < r->n_reqs && n_paired > PAIRED_LOW_WATER && !r->failure[0]; i++) {
		struct req *q = &r->reqs[i];
		if (q->state != REQ_ACKED && q->state != REQ_RESOLVED_UNACKED)
			continue;
		cJSON *p = cJSON_CreateObject(), *payload = NULL;
		char err[256] = "";
		cJSON_AddStringToObject(p, "deviceId", q->node.id.device_id);
		if (loadgen_op_call_wait(r->ctx, &r->op, "device.pair.remove", p, 10000 * r->scale,
		                         &payload, err, sizeof(err)) != 0) {
			note_failure(r, "trial %u: device.pair.remove %.16s: %s", r->trials,
			             q->node.id.device_id, err);
			break;
		}
		cJSON_Delete(payload);
		q->state = REQ_REMOVED;
		r->removed++;
		n_paired--;
	}
}

static void drop_nodes(struct run *r)
{
	for (size_t i = 0; i < r->n_reqs; i++) {
		struct req *q = &r->reqs[i];
		if (q->node.conn) {
			client_conn_destroy(q->node.conn);
			q->node.conn = NULL;
		}
		if (loadgen_node_busy(&q->node))
			q->node.state = LOADGEN_FAILED;
	}
}

static int start_gateway(struct run *r)
{
	char err[256] = "";
	check_disk(r);
	if (r->failure[0])
		return -1;
	static const char *const extra[] = {
	        "--no-local-auto-approve", "--pending-ttl", "86400", "--max-pending", "100000",
	        "--max-pending-per-ip",    "100000",        NULL};
	const struct kit_gateway_opts go = {.state_dir = r->state_dir,
	                                    .token = r->token,
	                                    .log_level = "warn",
	                                    .extra = extra,
	                                    .log_path = r->log_path,
	                                    .timeout_ms = 10000 * r->scale};
	if (kit_gateway_start(&r->gw, &go, err, sizeof(err)) != 0) {
		note_failure(r, "trial %u: gateway did not start (store unreadable?): %s",
		             r->trials, err);
		return -1;
	}
	if (loadgen_op_connect(r->ctx, &r->op, r->gw.proc.url, r->token, NULL, 0, 10000 * r->scale,
	                       err, sizeof(err)) != 0) {
		note_failure(r, "trial %u: operator connect: %s", r->trials, err);
		return -1;
	}
	r->op.on_res = on_res;
	r->op.user = r;
	return 0;
}

/* One trial: approvals and new nodes in flight, SIGKILL after kill_after_us (0: let it run). */
static uint64_t storm(struct run *r, uint64_t kill_after_us)
{
	struct loadgen_node_opts o = node_opts(r);
	size_t sent = 0;
	uint64_t t0 = clock_mono_us();
	size_t start = (size_t)rand() % (r->n_reqs ? r->n_reqs : 1);
	for (size_t k = 0; k < r->n_reqs && sent < STORM_APPROVALS; k++) {
		size_t i = (start + k) % r->n_reqs;
		struct req *q = &r->reqs[i];
		if (q->state != REQ_PENDING)
			continue;
		cJSON *p = cJSON_CreateObject();
		cJSON_AddStringToObject(p, "requestId", q->node.request_id);
		/* The res id encodes the request index (see on_res). */
		if (loadgen_op_call_id(&r->op, APPROVE_ID_BASE + i, "device.pair.approve", p) == 0)
			break;
		sent++;
	}
	r->approvals_sent += (unsigned)sent;
	for (size_t k = 0; k < STORM_NEW_NODES && r->n_reqs < MAX_REQS; k++) {
		struct req *q = &r->reqs[r->n_reqs++];
		memset(q, 0, sizeof(*q));
		loadgen_node_init(&q->node, r->next_seed++);
		loadgen_node_start(r->ctx, &q->node, &o);
	}
	unsigned before = r->acked;
	for (;;) {
		uint64_t now = clock_mono_us();
		if (kill_after_us && now - t0 >= kill_after_us)
			break;
		if (!kill_after_us && r->acked - before >= sent && now - t0 > 20000)
			break;
		if (now - t0 > 10000000ull * (uint64_t)r->scale)
			break;
		pump(r, 1);
	}
	uint64_t elapsed = clock_mono_us() - t0;
	if (kill_after_us)
		r->kills++;
	int st = kit_gateway_stop(&r->gw, kill_after_us ? SIGKILL : SIGTERM, 10000 * r->scale);
	if (!kill_after_us && st != 0)
		note_failure(r, "graceful stop: gateway exit status %d", st);
	/* Answers already on the wire before the kill still count: drain them. */
	uint64_t drain_end = clock_mono_ms() + 200;
	while (!r->op.closed && clock_mono_ms() < drain_end)
		pump(r, 5);
	loadgen_op_close(&r->op);
	drop_nodes(r);
	return elapsed;
}

/* Dotfiles (temp files of cut writes) in the state dir and its tables. */
static size_t count_temp_files(const struct run *r)
{
	static const char *const dirs[] = {"", "/pending", "/paired", "/nodes-pending"};
	size_t n = 0;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s%s", r->state_dir, dirs[i]);
		DIR *d = opendir(path);
		struct dirent *e;
		while (d && (e = readdir(d)))
			if (e->d_name[0] == '.' && strcmp(e->d_name, ".") != 0 &&
			    strcmp(e->d_name, "..") != 0)
				n++;
		if (d)
			closedir(d);
	}
	return n;
}

static void test_crash_storm(void **state)
{
	(void)state;
	struct run *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->reqs = calloc(MAX_REQS, sizeof(*r->reqs));
	assert_non_null(r->reqs);
	r->token = "crash-token";
	r->scale = under_valgrind() ? 10 : 1;
	unsigned trials = r->scale > 1 ? 20 : 250;
	if (getenv("CLAWPAIR_CRASH_TRIALS"))
		trials = (unsigned)atoi(getenv("CLAWPAIR_CRASH_TRIALS"));
	unsigned seed = getenv("CLAWPAIR_CRASH_SEED")
	                        ? (unsigned)atoi(getenv("CLAWPAIR_CRASH_SEED"))
	                        : (unsigned)getpid();
	srand(seed);
	assert_int_equal(kit_tempdir("clawpair-crash", r->tmp, sizeof(r->tmp)), 0);
	snprintf(r->state_dir, sizeof(r->state_dir), "%s/state", r->tmp);
	snprintf(r->log_path, sizeof(r->log_path), "%s/gateway.log", r->tmp);
	struct client_ctx_opts co = {.max_conns = 4096};
	r->ctx = client_ctx_create(&co);
	assert_non_null(r->ctx);
	identity_global_init();

	/* Calibrate: one storm that runs to completion tells how long a storm lasts. */
	uint64_t storm_us = 0;
	size_t n_pending = 0;
	if (start_gateway(r) == 0) {
		add_nodes(r, REFILL);
		storm_us = storm(r, 0);
	}
	printf("# seed %u, calibration storm %.1f ms, %u trials\n", seed, (double)storm_us / 1000.0,
	       trials);
	/* Disk latency varies a lot between runs: never aim at less than 100 ms. */
	if (storm_us < 100000)
		storm_us = 100000;

	uint64_t t_begin = clock_mono_us();
	for (r->trials = 1; r->trials <= trials && !r->failure[0]; r->trials++) {
		if (start_gateway(r) != 0)
			break;
		check_store(r, &n_pending);
		prune_paired(r);
		if (r->failure[0])
			break;
		if (n_pending < LOW_WATER) {
			add_nodes(r, REFILL);
			if (r->failure[0])
				break;
		}
		/* Uniform over the storm, a little past its end, and sometimes right away. */
		uint64_t at = (uint64_t)rand() % (storm_us * 3 / 2) + 1;
		if (rand() % 10 == 0)
			at = 1;
		storm(r, at);
	}
	/* Final restart: the last kill must leave a loadable, consistent store too. */
	if (!r->failure[0] && start_gateway(r) == 0) {
		check_store(r, &n_pending);
		loadgen_op_close(&r->op);
		int st = kit_gateway_stop(&r->gw, SIGTERM, 10000 * r->scale);
		if (st != 0)
			note_failure(r, "final graceful stop: exit status %d", st);
	}
	double secs = (double)(clock_mono_us() - t_begin) / 1e6;
	/* The final start removed the temp files of writes cut short by the last kill, and a
	 * graceful stop leaves none. */
	size_t leftovers = r->failure[0] ? 0 : count_temp_files(r);
	if (leftovers)
		note_failure(r, "%zu temp files left in the state dir after the final stop",
		             leftovers);
	printf("# %u kills in %.1f s; %u approvals sent, %u acknowledged, %u "
	       "applied without ack (%u stale pending files left by a kill, dropped at the next "
	       "start), %zu requests still pending, %zu nodes, %u devices removed\n",
	       r->kills, secs, r->approvals_sent, r->acked, r->unacked_resolved, r->stale,
	       n_pending, r->n_reqs, r->removed);
	printf("# %u temp files of interrupted writes found after kills (removed at the next "
	       "start)\n",
	       r->temps);
	kit_gateway_stop(&r->gw, SIGKILL, 5000);
	loadgen_op_close(&r->op);
	drop_nodes(r);
	client_ctx_destroy(r->ctx);
	if (r->failure[0])
		printf("# gateway log kept in %s\n", r->log_path);
	else
		remove_tree(r->tmp);
	char failure[512];
	snprintf(failure, sizeof(failure), "%s", r->failure);
	unsigned kills = r->kills;
	free(r->reqs);
	free(r);
	if (failure[0])
		fail_msg("%s", failure);
	assert_true(kills >= trials);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_crash_storm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
