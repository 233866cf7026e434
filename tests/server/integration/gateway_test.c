/* gateway_test.c: the real clawpair-gateway over real WebSockets: held-open pairing outcomes, exact
 * frames and close codes, limits, hostile input, restart, shutdown, and clawpair-ctl end to end. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "errors.h"
#include "harness.h"
#include "json.h"

#define REMOTE_IP "10.77.0.2"

struct fixture {
	struct client_ctx *ctx;
	struct kit_gateway gw;
	struct h_conn op, op2, node, node2;
	struct identity id;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx || identity_global_init() < 0)
		return -1;
	fx->gw.proc.pid = -1;
	fx->ctx = client_ctx_create(NULL);
	if (!fx->ctx || identity_generate(&fx->id) < 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	h_close(&fx->op);
	h_close(&fx->op2);
	h_close(&fx->node);
	h_close(&fx->node2);
	client_ctx_destroy(fx->ctx);
	kit_gateway_cleanup(&fx->gw);
	free(fx);
	return 0;
}

static void start(struct fixture *fx, const char *const *extra)
{
	assert_int_equal(h_gateway_start(&fx->gw, extra), 0);
}

/* SIGTERM must give exit status 0 (99 would be a valgrind error). */
static void stop_ok(struct fixture *fx)
{
	assert_int_equal(h_gateway_stop(&fx->gw), 0);
}

static const char *const pairing_scopes[] = {"operator.pairing", "operator.read", NULL};

static const char *details_code(enum cp_err err)
{
	return cp_err_info(err)->details_code;
}

static void assert_err_row(const cJSON *res, const char *connect_id, enum cp_err err)
{
	const struct cp_err_info *e = cp_err_info(err);

	assert_non_null(res);
	assert_string_equal(h_str(res, "type"), "res");
	assert_string_equal(h_str(res, "id"), connect_id);
	assert_false(h_is_res_ok(res));
	assert_string_equal(h_err_code(res), e->wire_code);
	assert_string_equal(h_err_details_code(res), e->details_code);
}

static void assert_closed_with(struct h_conn *hc, enum cp_err err, int timeout_ms)
{
	const struct cp_err_info *e = cp_err_info(err);

	assert_int_equal(h_wait_close(hc, timeout_ms), e->close_code);
	assert_string_equal(hc->close_reason, e->close_reason);
}

/* The node's connect is held: connect.pending (no seq, no res) with the record's facts. Returns
 * the requestId (static buffer of the fixture's caller). */
static void expect_pending(struct h_conn *node, const struct identity *id, bool is_repair,
                           char rid[64])
{
	cJSON *ev = h_next_non_tick(node, kit_ms(3000));
	char fp[IDENTITY_FINGERPRINT_LEN + 1];

	assert_non_null(ev);
	assert_string_equal(h_str(ev, "type"), "event");
	assert_string_equal(h_str(ev, "event"), "connect.pending");
	assert_null(h_get(ev, "seq"));
	assert_non_null(h_str(ev, "payload.requestId"));
	assert_int_equal(strlen(h_str(ev, "payload.requestId")), 36);
	assert_string_equal(h_str(ev, "payload.deviceId"), id->device_id);
	identity_fingerprint(id->pk, fp);
	assert_string_equal(h_str(ev, "payload.fingerprint"), fp);
	assert_true(cJSON_IsNumber(h_get(ev, "payload.expiresAtMs")));
	assert_true(is_repair ? cJSON_IsTrue(h_get(ev, "payload.isRepair"))
	                      : cJSON_IsFalse(h_get(ev, "payload.isRepair")));
	snprintf(rid, 64, "%s", h_str(ev, "payload.requestId"));
	cJSON_Delete(ev);
}

/* The fixture's identity connects as a remote node and is held pending; rid gets the
 * requestId. */
static void remote_node_pending(struct fixture *fx, char rid[64])
{
	assert_int_equal(h_node_begin(fx->ctx, &fx->gw, REMOTE_IP, &fx->id, NULL, &fx->node), 0);
	expect_pending(&fx->node, &fx->id, false, rid);
}

static void expect_hello_with_token(struct h_conn *node)
{
	cJSON *res = h_wait_res(node, node->connect_id, kit_ms(3000));

	assert_non_null(res);
	assert_true(h_is_res_ok(res));
	assert_string_equal(h_str(res, "payload.type"), "hello-ok");
	assert_non_null(h_str(res, "payload.auth.deviceToken"));
	assert_true(strlen(h_str(res, "payload.auth.deviceToken")) >= 32);
	assert_string_equal(h_str(res, "payload.auth.role"), "node");
	cJSON_Delete(res);
}

static cJSON *rid_params(const char *rid)
{
	cJSON *p = cJSON_CreateObject();

	cJSON_AddStringToObject(p, "requestId", rid);
	return p;
}

static bool list_has(const cJSON *res, const char *rid)
{
	const cJSON *pending = h_get(res, "payload.pending"), *it;

	cJSON_ArrayForEach(it, pending)
	{
		const char *r = h_str(it, "requestId");

		if (r && strcmp(r, rid) == 0)
			return true;
	}
	return false;
}

static void approve_flow(void **state, const char *method, int sig_version)
{
	struct fixture *fx = *state;
	struct h_node_opts o = {.sig_version = sig_version};
	char rid[64];
	cJSON *ev, *res;

	start(fx, NULL);
	assert_int_equal(h_operator(fx->ctx, &fx->gw, pairing_scopes, &fx->op), 0);
	assert_int_equal(h_node_begin(fx->ctx, &fx->gw, REMOTE_IP, &fx->id, &o, &fx->node), 0);
	expect_pending(&fx->node, &fx->id, false, rid);

	/* The operator hears of it, with the same requestId on both event names. */
	ev = h_wait_event(&fx->op, "device.pair.requested", kit_ms(3000));
	assert_non_null(ev);
	assert_string_equal(h_str(ev, "payload.requestId"), rid);
	assert_string_equal(h_str(ev, "payload.deviceId"), fx->id.device_id);
	assert_string_equal(h_str(ev, "payload.remoteIp"), REMOTE_IP);
	assert_true(cJSON_IsNumber(h_get(ev, "seq")));
	cJSON_Delete(ev);
	ev = h_wait_event(&fx->op, "node.pair.requested", kit_ms(3000));
	assert_non_null(ev);
	assert_string_equal(h_str(ev, "payload.requestId"), rid);
	cJSON_Delete(ev);

	/* Both lists show it under the same id. */
	res = h_call(&fx->op, "node.pair.list", NULL, kit_ms(3000));
	assert_true(h_is_res_ok(res));
	assert_true(list_has(res, rid));
	cJSON_Delete(res);
	res = h_call(&fx->op, "device.pair.list", NULL, kit_ms(3000));
	assert_true(list_has(res, rid));
	cJSON_Delete(res);

	/* Held: nothing but ticks, and the socket stays open. */
	assert_true(h_quiet(&fx->node, NULL, kit_ms(800)));

	res = h_call(&fx->op, method, rid_params(rid), kit_ms(3000));
	assert_non_null(res);
	assert_true(h_is_res_ok(res));
	assert_string_equal(h_str(res, "payload.requestId"), rid);
	cJSON_Delete(res);

	expect_hello_with_token(&fx->node);
	ev = h_wait_event(&fx->op, "device.pair.resolved", kit_ms(3000));
	assert_non_null(ev);
	assert_string_equal(h_str(ev, "payload.requestId"), rid);
	assert_string_equal(h_str(ev, "payload.decision"), "approved");
	cJSON_Delete(ev);

	/* Paired now: the node's requests are served on the same socket. */
	res = h_call(&fx->node, "node.event", NULL, kit_ms(3000));
	assert_non_null(res);
	cJSON_Delete(res);
	assert_false(fx->node.closed);
	stop_ok(fx);
}

static void test_approve_by_node_pair_approve(void **state)
{
	approve_flow(state, "node.pair.approve", 3);
}

static void test_approve_by_device_pair_approve_v2(void **state)
{
	approve_flow(state, "device.pair.approve", 2);
}

static void test_reject(void **state)
{
	struct fixture *fx = *state;
	char rid[64];
	cJSON *res, *ev;

	start(fx, NULL);
	assert_int_equal(h_operator(fx->ctx, &fx->gw, pairing_scopes, &fx->op), 0);
	remote_node_pending(fx, rid);
	res = h_call(&fx->op, "node.pair.reject", rid_params(rid), kit_ms(3000));
	assert_true(h_is_res_ok(res));
	cJSON_Delete(res);

	res = h_wait_res(&fx->node, fx->node.connect_id, kit_ms(3000));
	assert_err_row(res, "c1", CP_ERR_PAIRING_REJECTED);
	cJSON_Delete(res);
	assert_closed_with(&fx->node, CP_ERR_PAIRING_REJECTED, kit_ms(3000));

	ev = h_wait_event(&fx->op, "device.pair.resolved", kit_ms(3000));
	assert_string_equal(h_str(ev, "payload.decision"), "rejected");
	cJSON_Delete(ev);
	res = h_call(&fx->op, "device.pair.list", NULL, kit_ms(3000));
	assert_false(list_has(res, rid));
	cJSON_Delete(res);
	stop_ok(fx);
}

static void test_expiry(void **state)
{
	struct fixture *fx = *state;
	const char *extra[] = {"--pending-ttl", "1", NULL};
	char rid[64];
	cJSON *res, *ev;

	start(fx, extra);
	assert_int_equal(h_operator(fx->ctx, &fx->gw, pairing_scopes, &fx->op), 0);
	remote_node_pending(fx, rid);

	res = h_wait_res(&fx->node, "c1", kit_ms(4000));
	assert_err_row(res, "c1", CP_ERR_PAIRING_EXPIRED);
	cJSON_Delete(res);
	assert_closed_with(&fx->node, CP_ERR_PAIRING_EXPIRED, kit_ms(3000));

	ev = h_wait_event(&fx->op, "device.pair.resolved", kit_ms(3000));
	assert_non_null(ev);
	assert_string_equal(h_str(ev, "payload.requestId"), rid);
	assert_string_equal(h_str(ev, "payload.decision"), "expired");
	cJSON_Delete(ev);
	res = h_call(&fx->op, "device.pair.list", NULL, kit_ms(3000));
	assert_int_equal(cJSON_GetArraySize(h_get(res, "payload.pending")), 0);
	cJSON_Delete(res);
	stop_ok(fx);
}

static void test_second_connection_supersedes(void **state)
{
	struct fixture *fx = *state;
	char rid1[64], rid2[64];
	cJSON *res;

	start(fx, NULL);
	remote_node_pending(fx, rid1);
	assert_int_equal(h_node_begin(fx->ctx, &fx->gw, REMOTE_IP, &fx->id, NULL, &fx->node2), 0);

	res = h_wait_res(&fx->node, "c1", kit_ms(3000));
	assert_err_row(res, "c1", CP_ERR_PAIRING_SUPERSEDED);
	cJSON_Delete(res);
	assert_closed_with(&fx->node, CP_ERR_PAIRING_SUPERSEDED, kit_ms(3000));

	expect_pending(&fx->node2, &fx->id, false, rid2);
	assert_string_equal(rid1, rid2);
	assert_true(h_quiet(&fx->node2, NULL, kit_ms(300)));
	stop_ok(fx);
}

/* Pairs fx->id through an approval; leaves op connected. */
static void pair_node(struct fixture *fx)
{
	char rid[64];
	cJSON *res;

	remote_node_pending(fx, rid);
	res = h_call(&fx->op, "device.pair.approve", rid_params(rid), kit_ms(3000));
	assert_true(h_is_res_ok(res));
	cJSON_Delete(res);
	expect_hello_with_token(&fx->node);
	h_close(&fx->node);
	memset(&fx->node, 0, sizeof(fx->node));
}

static void test_key_change_is_repair(void **state)
{
	struct fixture *fx = *state;
	struct identity other;
	char path[512], rid[64], *text = NULL, *out;
	cJSON *rec;
	FILE *f;
	long n;

	start(fx, NULL);
	assert_int_equal(h_operator(fx->ctx, &fx->gw, pairing_scopes, &fx->op), 0);
	pair_node(fx);
	h_close(&fx->op);
	memset(&fx->op, 0, sizeof(fx->op));
	stop_ok(fx);

	/* The store now binds the device id to another key (as after a key rotation on the
	 * device, or a record imported from elsewhere). */
	assert_int_equal(identity_generate(&other), 0);
	snprintf(path, sizeof(path), "%s/paired/%s.json", fx->gw.state_dir, fx->id.device_id);
	f = fopen(path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	rec = cJSON_Parse(text);
	free(text);
	assert_non_null(rec);
	assert_string_equal(json_get_string(rec, "deviceId"), fx->id.device_id);
	cJSON_ReplaceItemInObjectCaseSensitive(rec, "publicKey", cJSON_CreateString(other.pk_b64));
	out = cJSON_PrintUnformatted(rec);
	cJSON_Delete(rec);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(out, f);
	fclose(f);
	free(out);

	assert_int_equal(h_gateway_restart(&fx->gw, NULL), 0);
	assert_int_equal(h_operator(fx->ctx, &fx->gw, pairing_scopes, &fx->op), 0);
	/* Local and remote alike: a key change is never accepted silently. */
	assert_int_equal(h_node_begin(fx->ctx, &fx->gw, NULL, &fx->id, NULL, &fx->node), 0);
	expect_pending(&fx->node, &fx->id, true, rid);
	assert_true(h_quiet(&fx->node, NULL, kit_ms(500)));
	{
		cJSON *ev = h_wait_event(&fx->op, "device.pair.requested", kit_ms(3000));

		assert_non_null(ev);
		assert_true(cJSON_IsTrue(h_get(ev, "payload.isRepair")));
		cJSON_Delete(ev);
	}
	stop_ok(fx);
}

static void test_operator_without_pairing_scope(void **state)
{
	struct fixture *fx = *state;
	static const char *const read_only[] = {"operator.read", NULL};
	char rid[64];
	cJSON *res;

	start(fx, NULL);
	assert_int_equal(h_operator(fx->ctx, &fx->gw, read_only, &fx->op), 0);
	res = h_call(&fx->op, "device.pair.list", NULL, kit_ms(3000));
	assert_non_null(res);
	assert_false(h_is_res_ok(res));
	assert_string_equal(h_err_details_code(res), details_code(CP_ERR_MISSING_SCOPE));
	cJSON_Delete(res);
	res = h_call(&fx->op, "node.pair.approve", rid_params("x"), kit_ms(3000));
	assert_string_equal(h_err_details_code(res), details_code(CP_ERR_MISSING_SCOPE));
	cJSON_Delete(res);

	remote_node_pending(fx, rid);
	/* No pairing event of any kind reaches it; the connection is still served. */
	assert_true(h_quiet(&fx->op, NULL, kit_ms(800)));
	res = h_call(&fx->op, "node.list", NULL, kit_ms(3000));
	assert_true(h_is_res_ok(res));
	cJSON_Delete(res);
	stop_ok(fx);
}

static void test_two_operators_race(void **state)
{
	struct fixture *fx = *state;
	char rid[64], id1[32], id2[32];
	cJSON *r1, *r2;
	int oks;

	start(fx, NULL);
	assert_int_equal(h_operator(fx->ctx, &fx->gw, pairing_scopes, &fx->op), 0);
	assert_int_equal(h_operator(fx->ctx, &fx->gw, pairing_scopes, &fx->op2), 0);
	remote_node_pending(fx, rid);

	assert_int_equal(h_send_req(&fx->op, "node.pair.approve", rid_params(rid), id1), 0);
	assert_int_equal(h_send_req(&fx->op2, "device.pair.approve", rid_params(rid), id2), 0);
	r1 = h_wait_res(&fx->op, id1, kit_ms(3000));
	r2 = h_wait_res(&fx->op2, id2, kit_ms(3000));
	assert_non_null(r1);
	assert_non_null(r2);
	oks = h_is_res_ok(r1) + h_is_res_ok(r2);
	assert_int_equal(oks, 1);
	assert_string_equal(h_err_details_code(h_is_res_ok(r1) ? r2 : r1),
	                    details_code(CP_ERR_UNKNOWN_REQUEST_ID));
	cJSON_Delete(r1);
	cJSON_Delete(r2);

	expect_hello_with_token(&fx->node);
	assert_true(h_quiet(&fx->node, NULL, kit_ms(300)));
	stop_ok(fx);
}

static void test_restart_keeps_pending(void **state)
{
	struct fixture *fx = *state;
	char rid1[64], rid2[64];
	cJSON *res;

	start(fx, NULL);
	remote_node_pending(fx, rid1);
	stop_ok(fx);
	res = h_wait_res(&fx->node, "c1", kit_ms(3000));
	assert_err_row(res, "c1", CP_ERR_SHUTDOWN);
	cJSON_Delete(res);
	assert_closed_with(&fx->node, CP_ERR_SHUTDOWN, kit_ms(3000));

	assert_int_equal(h_gateway_restart(&fx->gw, NULL), 0);
	h_close(&fx->node);
	remote_node_pending(fx, rid2);
	assert_string_equal(rid1, rid2);

	assert_int_equal(h_operator(fx->ctx, &fx->gw, pairing_scopes, &fx->op), 0);
	res = h_call(&fx->op, "node.pair.approve", rid_params(rid2), kit_ms(3000));
	assert_true(h_is_res_ok(res));
	cJSON_Delete(res);
	expect_hello_with_token(&fx->node);
	stop_ok(fx);
}

static void test_compat_6836(void **state)
{
	struct fixture *fx = *state;
	const char *extra[] = {"--compat-6836", NULL};
	cJSON *res, *ev;
	char rid[64];

	start(fx, extra);
	assert_int_equal(h_operator(fx->ctx, &fx->gw, pairing_scopes, &fx->op), 0);
	assert_int_equal(h_node_begin(fx->ctx, &fx->gw, REMOTE_IP, &fx->id, NULL, &fx->node), 0);
	res = h_next_non_tick(&fx->node, kit_ms(3000));
	assert_err_row(res, "c1", CP_ERR_PAIRING_REQUIRED);
	assert_string_equal(h_str(res, "error.message"), "pairing required");
	assert_non_null(h_str(res, "error.details.requestId"));
	snprintf(rid, sizeof(rid), "%s", h_str(res, "error.details.requestId"));
	cJSON_Delete(res);
	assert_closed_with(&fx->node, CP_ERR_PAIRING_REQUIRED, kit_ms(3000));

	ev = h_wait_event(&fx->op, "device.pair.requested", kit_ms(3000));
	assert_non_null(ev);
	assert_string_equal(h_str(ev, "payload.requestId"), rid);
	cJSON_Delete(ev);
	/* The bug: the node tools look at another store. */
	res = h_call(&fx->op, "node.pair.list", NULL, kit_ms(3000));
	assert_true(h_is_res_ok(res));
	assert_int_equal(cJSON_GetArraySize(h_get(res, "payload.pending")), 0);
	cJSON_Delete(res);
	res = h_call(&fx->op, "node.pair.approve", rid_params(rid), kit_ms(3000));
	assert_false(h_is_res_ok(res));
	assert_string_equal(h_err_details_code(res), details_code(CP_ERR_UNKNOWN_REQUEST_ID));
	cJSON_Delete(res);
	res = h_call(&fx->op, "device.pair.list", NULL, kit_ms(3000));
	assert_true(list_has(res, rid));
	cJSON_Delete(res);
	stop_ok(fx);
}

static void test_sigterm_held_open(void **state)
{
	struct fixture *fx = *state;
	char rid[64];
	cJSON *res;

	start(fx, NULL);
	assert_int_equal(h_operator(fx->ctx, &fx->gw, pairing_scopes, &fx->op), 0);
	remote_node_pending(fx, rid);
	stop_ok(fx);
	res = h_wait_res(&fx->node, "c1", kit_ms(3000));
	assert_err_row(res, "c1", CP_ERR_SHUTDOWN);
	cJSON_Delete(res);
	assert_closed_with(&fx->node, CP_ERR_SHUTDOWN, kit_ms(3000));
	/* Operators are closed with the same code. */
	assert_int_equal(h_wait_close(&fx->op, kit_ms(3000)),
	                 cp_err_info(CP_ERR_SHUTDOWN)->close_code);
}

static void test_handshake_timeout(void **state)
{
	struct fixture *fx = *state;
	const char *extra[] = {"--handshake-timeout", "300", NULL};
	uint64_t t0;
	uint64_t took;

	start(fx, extra);
	assert_int_equal(h_open(fx->ctx, &fx->gw, NULL, &fx->node), 0);
	t0 = clock_mono_ms();
	assert_int_equal(h_challenge(&fx->node, kit_ms(3000)), 0);
	assert_closed_with(&fx->node, CP_ERR_HANDSHAKE_TIMEOUT, kit_ms(3000));
	took = clock_mono_ms() - t0;
	assert_true(took >= 200);
	assert_true(took < (uint64_t)kit_ms(2000));
	stop_ok(fx);
}

static void test_oversize_frame(void **state)
{
	struct fixture *fx = *state;
	size_t big = 524288 + 4096;
	char *buf = malloc(big);
	cJSON *res;

	start(fx, NULL);
	assert_int_equal(h_operator(fx->ctx, &fx->gw, pairing_scopes, &fx->op), 0);
	assert_int_equal(h_open(fx->ctx, &fx->gw, NULL, &fx->node), 0);
	assert_int_equal(h_challenge(&fx->node, kit_ms(3000)), 0);
	assert_non_null(buf);
	memset(buf, 'x', big);
	assert_int_equal(client_send(fx->node.c, buf, big, false), 0);
	free(buf);
	assert_closed_with(&fx->node, CP_ERR_PAYLOAD_TOO_LARGE, kit_ms(5000));

	/* A frame exactly at the cap is not "too large" (it is just not JSON). */
	buf = malloc(524288);
	assert_non_null(buf);
	memset(buf, ' ', 524288);
	assert_int_equal(h_open(fx->ctx, &fx->gw, NULL, &fx->node2), 0);
	assert_int_equal(h_challenge(&fx->node2, kit_ms(3000)), 0);
	assert_int_equal(client_send(fx->node2.c, buf, 524288, false), 0);
	free(buf);
	assert_closed_with(&fx->node2, CP_ERR_INVALID_FRAME, kit_ms(5000));

	res = h_call(&fx->op, "device.pair.list", NULL, kit_ms(3000));
	assert_true(h_is_res_ok(res));
	cJSON_Delete(res);
	stop_ok(fx);
}

static void test_garbage_frames(void **state)
{
	struct fixture *fx = *state;
	static const struct {
		const char *data;
		size_t len;
		bool binary;
	} cases[] = {
	        {"not json", 8, false},
	        {"{\"type\":\"req\"}", 14, false},
	        {"[]", 2, false},
	        {"{\"type\":\"event\",\"event\":\"x\"}", 28, false},
	        {"\xff\xfe{}", 4, false},
	        {"{\"type\":\"req\",\"id\":\"1\",\"method\":\"connect\"}", 43, true},
	        {"", 0, false},
	};

	start(fx, NULL);
	assert_int_equal(h_operator(fx->ctx, &fx->gw, pairing_scopes, &fx->op), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct h_conn hc;
		cJSON *res;

		assert_int_equal(h_open(fx->ctx, &fx->gw, REMOTE_IP, &hc), 0);
		assert_int_equal(h_challenge(&hc, kit_ms(3000)), 0);
		assert_int_equal(client_send(hc.c, cases[i].data, cases[i].len, cases[i].binary),
		                 0);
		assert_closed_with(&hc, CP_ERR_INVALID_FRAME, kit_ms(3000));
		h_close(&hc);
		/* The operator is not disturbed. */
		res = h_call(&fx->op, "node.pair.list", NULL, kit_ms(3000));
		assert_true(h_is_res_ok(res));
		cJSON_Delete(res);
	}
	/* A valid frame with another method first: the INVALID_HANDSHAKE res, then its close. */
	{
		struct h_conn hc;
		cJSON *res;

		assert_int_equal(h_open(fx->ctx, &fx->gw, REMOTE_IP, &hc), 0);
		assert_int_equal(h_challenge(&hc, kit_ms(3000)), 0);
		res = h_call(&hc, "node.pair.list", NULL, kit_ms(3000));
		assert_err_row(res, "r1", CP_ERR_INVALID_HANDSHAKE);
		cJSON_Delete(res);
		assert_closed_with(&hc, CP_ERR_INVALID_HANDSHAKE, kit_ms(3000));
		h_close(&hc);
	}
	stop_ok(fx);
}

/* --- a raw WebSocket client, for what the client library does not send: fragments --- */

struct raw_ws {
	int fd;
	unsigned char buf[65536];
	size_t len;
};

static int raw_fill(struct raw_ws *r)
{
	ssize_t n;

	if (r->len == sizeof(r->buf))
		return -1;
	n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
	if (n <= 0)
		return -1;
	r->len += (size_t)n;
	return 0;
}

static void raw_consume(struct raw_ws *r, size_t n)
{
	memmove(r->buf, r->buf + n, r->len - n);
	r->len -= n;
}

static int raw_open(struct raw_ws *r, int port)
{
	struct sockaddr_in sa = {0};
	struct timeval tv = {.tv_sec = under_valgrind() ? 30 : 5};
	char req[512];
	unsigned char *end;

	memset(r, 0, sizeof(*r));
	r->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (r->fd < 0)
		return -1;
	setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	snprintf(req, sizeof(req),
	         "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
	         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	         "Sec-WebSocket-Version: 13\r\nX-Forwarded-For: " REMOTE_IP "\r\n\r\n",
	         port);
	if (send(r->fd, req, strlen(req), 0) != (ssize_t)strlen(req))
		return -1;
	for (;;) {
		if (raw_fill(r) < 0)
			return -1;
		end = NULL;
		for (size_t i = 0; i + 4 <= r->len && !end; i++)
			if (memcmp(r->buf + i, "\r\n\r\n", 4) == 0)
				end = r->buf + i;
		if (end)
			break;
	}
	if (memcmp(r->buf, "HTTP/1.1 101", 12) != 0)
		return -1;
	raw_consume(r, (size_t)(end + 4 - r->buf));
	return 0;
}

static int raw_send(struct raw_ws *r, int opcode, bool fin, const void *data, size_t len)
{
	unsigned char hdr[14], mask[4] = {0x12, 0x34, 0x56, 0x78};
	size_t h = 0;
	unsigned char *frame;
	int rc;

	hdr[h++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
	if (len < 126) {
		hdr[h++] = (unsigned char)(0x80 | len);
	} else if (len < 65536) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (unsigned char)(len >> 8);
		hdr[h++] = (unsigned char)len;
	} else {
		hdr[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
	}
	memcpy(hdr + h, mask, 4);
	h += 4;
	frame = malloc(h + len);
	if (!frame)
		return -1;
	memcpy(frame, hdr, h);
	for (size_t i = 0; i < len; i++)
		frame[h + i] = ((const unsigned char *)data)[i] ^ mask[i % 4];
	rc = send(r->fd, frame, h + len, MSG_NOSIGNAL) == (ssize_t)(h + len) ? 0 : -1;
	free(frame);
	return rc;
}

/* Next frame (server frames are unmasked and small here). Returns the opcode, -1 on error;
 * payload copied NUL-terminated into out. */
static int raw_read(struct raw_ws *r, char *out, size_t outsz, size_t *outlen)
{
	size_t need = 2, len, off;
	int op;

	while (r->len < need)
		if (raw_fill(r) < 0)
			return -1;
	op = r->buf[0] & 0x0f;
	len = r->buf[1] & 0x7f;
	off = 2;
	if (len == 126) {
		while (r->len < 4)
			if (raw_fill(r) < 0)
				return -1;
		len = ((size_t)r->buf[2] << 8) | r->buf[3];
		off = 4;
	} else if (len == 127) {
		return -1;
	}
	while (r->len < off + len)
		if (raw_fill(r) < 0)
			return -1;
	if (len >= outsz)
		return -1;
	memcpy(out, r->buf + off, len);
	out[len] = '\0';
	*outlen = len;
	raw_consume(r, off + len);
	return op;
}

static void test_fragmented_messages(void **state)
{
	struct fixture *fx = *state;
	static const char part1[] = "{\"type\":\"req\",", part2[] = "\"id\":\"frag-1\",",
	                  part3[] = "\"method\":\"node.list\",\"params\":{}}";
	const struct cp_err_info *hs = cp_err_info(CP_ERR_INVALID_HANDSHAKE);
	const struct cp_err_info *big = cp_err_info(CP_ERR_PAYLOAD_TOO_LARGE);
	struct raw_ws r;
	char out[4096];
	size_t len;
	cJSON *j;
	char *chunk;

	start(fx, NULL);
	/* Three fragments make one request: the core sees it whole and answers its id. */
	assert_int_equal(raw_open(&r, fx->gw.proc.port), 0);
	assert_int_equal(raw_read(&r, out, sizeof(out), &len), 1);
	assert_non_null(strstr(out, "connect.challenge"));
	assert_int_equal(raw_send(&r, 1, false, part1, strlen(part1)), 0);
	assert_int_equal(raw_send(&r, 0, false, part2, strlen(part2)), 0);
	assert_int_equal(raw_send(&r, 0, true, part3, strlen(part3)), 0);
	assert_int_equal(raw_read(&r, out, sizeof(out), &len), 1);
	j = cJSON_Parse(out);
	assert_err_row(j, "frag-1", CP_ERR_INVALID_HANDSHAKE);
	cJSON_Delete(j);
	assert_int_equal(raw_read(&r, out, sizeof(out), &len), 8);
	assert_true(len >= 2);
	assert_int_equal(((unsigned char)out[0] << 8) | (unsigned char)out[1], hs->close_code);
	assert_string_equal(out + 2, hs->close_reason);
	close(r.fd);

	/* Fragments each under the cap but over it together: the PAYLOAD_TOO_LARGE close. */
	chunk = malloc(200000);
	assert_non_null(chunk);
	memset(chunk, ' ', 200000);
	assert_int_equal(raw_open(&r, fx->gw.proc.port), 0);
	assert_int_equal(raw_read(&r, out, sizeof(out), &len), 1);
	assert_int_equal(raw_send(&r, 1, false, chunk, 200000), 0);
	assert_int_equal(raw_send(&r, 0, false, chunk, 200000), 0);
	raw_send(&r, 0, true, chunk, 200000); /* the gateway may have closed already */
	free(chunk);
	assert_int_equal(raw_read(&r, out, sizeof(out), &len), 8);
	assert_int_equal(((unsigned char)out[0] << 8) | (unsigned char)out[1], big->close_code);
	assert_string_equal(out + 2, big->close_reason);
	close(r.fd);
	stop_ok(fx);
}

/* Reads frames, discarding them, until the close frame; returns its code (reason into reason). */
static int raw_until_close(struct raw_ws *r, char *reason, size_t reasonsz, size_t *skipped)
{
	*skipped = 0;
	for (;;) {
		uint64_t len;
		size_t off = 2;
		int op;

		while (r->len < 2)
			if (raw_fill(r) < 0)
				return -1;
		op = r->buf[0] & 0x0f;
		len = r->buf[1] & 0x7f;
		if (len >= 126) {
			off = len == 126 ? 4 : 10;
			while (r->len < off)
				if (raw_fill(r) < 0)
					return -1;
			len = 0;
			for (size_t i = 2; i < off; i++)
				len = (len << 8) | r->buf[i];
		}
		raw_consume(r, off);
		if (op == 8) {
			int code;

			while (r->len < len)
				if (raw_fill(r) < 0)
					return -1;
			if (len < 2)
				return 1005;
			code = (r->buf[0] << 8) | r->buf[1];
			snprintf(reason, reasonsz, "%.*s", (int)(len - 2),
			         (const char *)r->buf + 2);
			return code;
		}
		while (len > 0) {
			size_t take;

			if (r->len == 0 && raw_fill(r) < 0)
				return -1;
			take = r->len < len ? r->len : (size_t)len;
			raw_consume(r, take);
			len -= take;
		}
		(*skipped)++;
	}
}

static void test_slow_consumer(void **state)
{
	struct fixture *fx = *state;
	const struct cp_err_info *e = cp_err_info(CP_ERR_SLOW_CONSUMER);
	static const char connect_op[] =
	        "{\"type\":\"req\",\"id\":\"c\",\"method\":\"connect\",\"params\":{"
	        "\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":\"cli\",\"version\":\"1\","
	        "\"platform\":\"linux\",\"mode\":\"cli\"},\"role\":\"operator\","
	        "\"scopes\":[\"operator.pairing\"],\"auth\":{\"token\":\"" H_TOKEN "\"}}}";
	static const char list[] =
	        "{\"type\":\"req\",\"id\":\"l\",\"method\":\"device.pair.list\"}";
	struct h_conn nodes[24];
	struct raw_ws r;
	int code, rcvbuf = 4096, err;
	char reason[128] = "";
	size_t skipped;
	cJSON *res;

	start(fx, NULL);
	/* Pending records make each list answer ~20 KB. */
	for (size_t i = 0; i < 24; i++) {
		struct identity id;
		char rid[64], xff[32];

		snprintf(xff, sizeof(xff), "10.9.0.%zu", i + 1);
		assert_int_equal(identity_generate(&id), 0);
		assert_int_equal(h_node_begin(fx->ctx, &fx->gw, xff, &id, NULL, &nodes[i]), 0);
		expect_pending(&nodes[i], &id, false, rid);
	}
	assert_int_equal(h_operator(fx->ctx, &fx->gw, pairing_scopes, &fx->op), 0);

	/* An operator that asks and never reads. */
	memset(&r, 0, sizeof(r));
	r.fd = -1;
	{
		struct sockaddr_in sa = {0};
		struct timeval tv = {.tv_sec = under_valgrind() ? 60 : 10};
		char req[512];
		unsigned char *end = NULL;

		r.fd = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(r.fd >= 0);
		setsockopt(r.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
		setsockopt(r.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		sa.sin_family = AF_INET;
		sa.sin_port = htons((uint16_t)fx->gw.proc.port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(connect(r.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		snprintf(req, sizeof(req),
		         "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
		         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		         "Sec-WebSocket-Version: 13\r\n\r\n");
		assert_int_equal(send(r.fd, req, strlen(req), 0), (ssize_t)strlen(req));
		while (!end) {
			assert_int_equal(raw_fill(&r), 0);
			for (size_t i = 0; i + 4 <= r.len && !end; i++)
				if (memcmp(r.buf + i, "\r\n\r\n", 4) == 0)
					end = r.buf + i;
		}
		raw_consume(&r, (size_t)(end + 4 - r.buf));
	}
	assert_int_equal(raw_send(&r, 1, true, connect_op, strlen(connect_op)), 0);
	/* 600 x 20 KB of answers to a socket with a tiny receive window: far over the cap. */
	for (int i = 0; i < 600; i++)
		if (raw_send(&r, 1, true, list, strlen(list)) < 0)
			break;

	/* The other operator is served meanwhile. */
	res = h_call(&fx->op, "node.pair.list", NULL, kit_ms(5000));
	assert_true(h_is_res_ok(res));
	cJSON_Delete(res);

	errno = 0;
	code = raw_until_close(&r, reason, sizeof(reason), &skipped);
	err = errno;
	close(r.fd);
	/* Cut off: fewer answers than asked, then the close, which a TCP reset may overtake when
	 * unread requests are still queued at the gateway (the close frame is sent either way). */
	assert_true(skipped < 601);
	if (code == -1) {
		assert_int_equal(err, ECONNRESET);
	} else {
		assert_int_equal(code, e->close_code);
		assert_string_equal(reason, e->close_reason);
	}

	res = h_call(&fx->op, "node.pair.list", NULL, kit_ms(5000));
	assert_true(h_is_res_ok(res));
	cJSON_Delete(res);
	for (size_t i = 0; i < 24; i++)
		h_close(&nodes[i]);
	stop_ok(fx);
}

static char *ctl(const struct fixture *fx, int *status, const char *a1, const char *a2,
                 const char *a3, const char *a4, const char *a5)
{
	const char *argv[16];
	size_t n = 0;
	char *out = NULL;

	if (under_valgrind())
		n += kit_memcheck_argv(argv);
	argv[n++] = build_path("ctl/clawpair-ctl");
	argv[n++] = "--url";
	argv[n++] = fx->gw.proc.url;
	argv[n++] = "--token";
	argv[n++] = H_TOKEN;
	argv[n++] = a1;
	argv[n++] = a2;
	argv[n++] = a3;
	argv[n++] = a4;
	argv[n++] = a5;
	argv[n] = NULL;
	*status = spawn_run((char *const *)argv, kit_ms(10000), &out, NULL);
	return out;
}

static void test_ctl_pending_approve(void **state)
{
	struct fixture *fx = *state;
	char rid[64], fp[IDENTITY_FINGERPRINT_LEN + 1];
	char *out;
	int st;
	cJSON *j;

	start(fx, NULL);
	remote_node_pending(fx, rid);
	identity_fingerprint(fx->id.pk, fp);

	out = ctl(fx, &st, "pending", NULL, NULL, NULL, NULL);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, rid));
	assert_non_null(strstr(out, fp));
	assert_non_null(strstr(out, REMOTE_IP));
	assert_non_null(strstr(out, "node"));
	free(out);

	out = ctl(fx, &st, "--json", "pending", NULL, NULL, NULL);
	assert_int_equal(st, 0);
	j = cJSON_Parse(out);
	assert_non_null(j);
	{
		/* --json prints the gateway's payload as is: {pending:[...], paired:[...]} */
		cJSON *wrapped = cJSON_CreateObject();

		cJSON_AddItemToObject(wrapped, "payload", j);
		assert_true(list_has(wrapped, rid));
		cJSON_Delete(wrapped);
	}
	free(out);

	/* A wrong fingerprint: the gateway says no, the request stays. */
	out = ctl(fx, &st, "approve", rid, "--fingerprint", "0000:0000:0000:0000", NULL);
	assert_int_equal(st, 1);
	free(out);
	assert_true(h_quiet(&fx->node, NULL, kit_ms(200)));

	out = ctl(fx, &st, "approve", rid, "--fingerprint", fp, NULL);
	assert_int_equal(st, 0);
	free(out);
	expect_hello_with_token(&fx->node);

	out = ctl(fx, &st, "devices", NULL, NULL, NULL, NULL);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, fx->id.device_id));
	free(out);

	out = ctl(fx, &st, "reject", rid, NULL, NULL, NULL);
	assert_int_equal(st, 1);
	free(out);
	stop_ok(fx);

	/* Gateway gone: unreachable is a usage-class failure. */
	out = ctl(fx, &st, "pending", NULL, NULL, NULL, NULL);
	assert_int_equal(st, 2);
	free(out);
}

static void test_http_get(void **state)
{
	struct fixture *fx = *state;
	char url[128], *out;
	char *argv[] = {"curl", "-s", "-i", url, NULL};
	int st;

	start(fx, NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", fx->gw.proc.port);
	st = spawn_run(argv, kit_ms(5000), &out, NULL);
	if (st == 127) {
		free(out);
		stop_ok(fx);
		skip();
	}
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "200"));
	assert_non_null(strstr(out, "clawpair-gateway\n"));
	free(out);
	stop_ok(fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_approve_by_node_pair_approve, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_approve_by_device_pair_approve_v2, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_reject, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_second_connection_supersedes, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_key_change_is_repair, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_operator_without_pairing_scope, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_two_operators_race, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_restart_keeps_pending, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_compat_6836, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sigterm_held_open, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_oversize_frame, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_garbage_frames, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_fragmented_messages, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_slow_consumer, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ctl_pending_approve, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_http_get, setup, teardown),
	};

	return cmocka_run_group_tests_name("gateway integration", tests, NULL, NULL);
}
