/* session_test.c: the gateway session (client/session.c) against the real clawpair-gateway and
 * against wsfixture.py servers that are not gateways, over loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "errors.h"
#include "identity.h"
#include "json.h"
#include "session.h"
#include "spawn.h"

#define TOKEN "session-test-token"
#define REMOTE_IP "10.77.0.21"

static int tmo(int ms)
{
	return under_valgrind() ? ms * 10 : ms;
}

struct env {
	struct spawned gw;
	char state_dir[64];
	struct client_ctx *ctx;
	struct identity id;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e || identity_global_init() < 0 || identity_generate(&e->id) < 0)
		return -1;
	if (spawn_gateway(TOKEN, e->state_dir, NULL, &e->gw) < 0)
		return -1;
	e->ctx = client_ctx_create(NULL);
	if (!e->ctx)
		return -1;
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	client_ctx_destroy(e->ctx);
	spawn_stop(&e->gw, 5000);
	remove_tree(e->state_dir);
	free(e);
	return 0;
}

static const char *const op_scopes[] = {"operator.pairing", "operator.read"};

static struct client_session *session_on(struct env *e, const char *url, const char *xff)
{
	struct client_session_opts o = {
	        .conn = {.url = url, .xff = xff}, .timeout_ms = tmo(5000), .id_prefix = "t"};
	struct client_session *s = client_session_create(e->ctx, &o);

	assert_non_null(s);
	return s;
}

static struct client_session *operator(struct env *e, const char *token)
{
	struct client_session *s = session_on(e, e->gw.url, NULL);
	struct connect_spec spec;
	enum client_session_outcome out;

	connect_spec_operator(&spec);
	spec.token = token;
	spec.scopes = op_scopes;
	spec.n_scopes = 2;
	spec.scopes_omit = false;
	out = client_session_connect(s, &spec);
	if (!strcmp(token, TOKEN) && out != CLIENT_SESSION_HELLO)
		fail_msg("operator connect: %s: %s", client_session_outcome_name(out),
		         client_session_why(s));
	return s;
}

/* A remote node (X-Forwarded-For from the trusted 127.0.0.1): held open, pending. */
static struct client_session *pending_node(struct env *e, char *rid, size_t ridsz)
{
	struct client_session *s = session_on(e, e->gw.url, REMOTE_IP);
	struct connect_spec spec;
	enum client_session_outcome out;
	const cJSON *payload;

	connect_spec_android(&spec);
	spec.token = TOKEN;
	spec.identity = &e->id;
	out = client_session_connect(s, &spec);
	if (out != CLIENT_SESSION_PENDING)
		fail_msg("node connect: %s: %s", client_session_outcome_name(out),
		         client_session_why(s));
	payload = cJSON_GetObjectItemCaseSensitive(client_session_frame(s), "payload");
	assert_non_null(json_get_string(payload, "requestId"));
	snprintf(rid, ridsz, "%s", json_get_string(payload, "requestId"));
	assert_true(client_session_is_open(s));
	return s;
}

static cJSON *params_rid(const char *rid)
{
	cJSON *p = cJSON_CreateObject();

	cJSON_AddStringToObject(p, "requestId", rid);
	return p;
}

static bool res_ok(const cJSON *res)
{
	bool ok = false;

	return res && json_get_bool(res, "ok", &ok) && ok;
}

static void test_operator_hello_and_calls(void **state)
{
	struct env *e = *state;
	struct client_session *op = operator(e, TOKEN);
	const cJSON *payload =
	        cJSON_GetObjectItemCaseSensitive(client_session_frame(op), "payload");
	cJSON *res;
	const cJSON *err;

	assert_string_equal(json_get_string(payload, "type"), "hello-ok");
	assert_string_equal(client_session_why(op), "");

	res = client_session_call(op, "device.pair.list", cJSON_CreateObject(), tmo(5000));
	assert_true(res_ok(res));
	assert_string_equal(json_get_string(res, "id"), "t-1");
	assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(
	        cJSON_GetObjectItemCaseSensitive(res, "payload"), "pending")));
	cJSON_Delete(res);

	/* an error res is returned as is, and the connection stays open */
	res = client_session_call(op, "no.such.method", NULL, tmo(5000));
	assert_non_null(res);
	assert_false(res_ok(res));
	assert_string_equal(json_get_string(res, "id"), "t-2");
	err = cJSON_GetObjectItemCaseSensitive(res, "error");
	assert_string_equal(
	        json_get_string(cJSON_GetObjectItemCaseSensitive(err, "details"), "code"),
	        cp_err_info(CP_ERR_UNKNOWN_METHOD)->details_code);
	cJSON_Delete(res);
	assert_true(client_session_is_open(op));
	assert_int_equal(client_session_close_code(op), 0);

	/* one connect per session */
	assert_int_equal(client_session_connect(op, NULL), CLIENT_SESSION_FAILED);
	client_session_destroy(op);
}

static void test_wrong_token_refused_then_closed(void **state)
{
	struct env *e = *state;
	struct client_session *op = operator(e, "not-the-token");
	const struct cp_err_info *mismatch = cp_err_info(CP_ERR_AUTH_TOKEN_MISMATCH);
	cJSON *res;

	assert_false(res_ok(client_session_frame(op)));
	assert_non_null(strstr(client_session_why(op), mismatch->details_code));
	/* the gateway closes after the error res */
	assert_int_equal(client_session_await(op, tmo(5000)), CLIENT_SESSION_CLOSED);
	assert_int_equal(client_session_close_code(op), mismatch->close_code);
	assert_string_equal(client_session_close_reason(op), mismatch->close_reason);
	assert_false(client_session_is_open(op));
	res = client_session_call(op, "device.pair.list", NULL, tmo(1000));
	assert_null(res);
	assert_non_null(strstr(client_session_why(op), "connection"));
	client_session_destroy(op);
}

static void test_pending_then_approved(void **state)
{
	struct env *e = *state;
	struct client_session *op = operator(e, TOKEN);
	struct client_session *node;
	char rid[64];
	cJSON *ev, *res;

	node = pending_node(e, rid, sizeof(rid));
	ev = client_session_wait_event(op, "device.pair.requested", tmo(5000));
	assert_non_null(ev);
	assert_string_equal(
	        json_get_string(cJSON_GetObjectItemCaseSensitive(ev, "payload"), "requestId"), rid);
	cJSON_Delete(ev);

	res = client_session_call(op, "device.pair.approve", params_rid(rid), tmo(5000));
	assert_true(res_ok(res));
	cJSON_Delete(res);
	assert_int_equal(client_session_await(node, tmo(5000)), CLIENT_SESSION_HELLO);
	assert_true(res_ok(client_session_frame(node)));
	assert_true(client_session_is_open(node));
	client_session_destroy(node);
	client_session_destroy(op);
}

static void test_pending_then_rejected_closes(void **state)
{
	struct env *e = *state;
	struct client_session *op = operator(e, TOKEN);
	struct client_session *node;
	const struct cp_err_info *rejected = cp_err_info(CP_ERR_PAIRING_REJECTED);
	char rid[64];
	cJSON *res;

	node = pending_node(e, rid, sizeof(rid));
	res = client_session_call(op, "device.pair.reject", params_rid(rid), tmo(5000));
	assert_true(res_ok(res));
	cJSON_Delete(res);
	/* the held connect is answered with an error res, then closed */
	assert_int_equal(client_session_await(node, tmo(5000)), CLIENT_SESSION_REFUSED);
	assert_non_null(strstr(client_session_why(node), rejected->details_code));
	assert_int_equal(client_session_await(node, tmo(5000)), CLIENT_SESSION_CLOSED);
	assert_int_equal(client_session_close_code(node), rejected->close_code);
	client_session_destroy(node);
	client_session_destroy(op);
}

static void test_events_kept_during_call(void **state)
{
	struct env *e = *state;
	struct client_session *op = operator(e, TOKEN);
	struct client_session *node;
	char rid[64];
	cJSON *res, *ev;

	node = pending_node(e, rid, sizeof(rid));
	/* the gateway announced the request before it answers this call: the call reads the event
	 * on its way to the res and keeps it */
	res = client_session_call(op, "device.pair.list", cJSON_CreateObject(), tmo(5000));
	assert_true(res_ok(res));
	cJSON_Delete(res);
	ev = client_session_wait_event(op, "device.pair.requested", 0);
	assert_non_null(ev);
	assert_string_equal(
	        json_get_string(cJSON_GetObjectItemCaseSensitive(ev, "payload"), "requestId"), rid);
	cJSON_Delete(ev);
	/* taken once only */
	assert_null(client_session_wait_event(op, "device.pair.requested", 0));
	assert_non_null(strstr(client_session_why(op), "no device.pair.requested event"));
	client_session_destroy(node);
	client_session_destroy(op);
}

static int start_fixture(const char *mode, struct spawned *s)
{
	char *argv[] = {"/usr/bin/python3", (char *)source_path("tests/kit/wsfixture.py"), "--mode",
	                (char *)mode, NULL};

	return spawn_server(argv, 10000, s);
}

static enum client_session_outcome connect_to_fixture(struct env *e, const char *mode, char *why,
                                                      size_t whysz)
{
	struct spawned srv;
	struct client_session *s;
	struct connect_spec spec;
	enum client_session_outcome out;
	struct client_session_opts o = {.timeout_ms = 700};

	assert_int_equal(start_fixture(mode, &srv), 0);
	o.conn.url = srv.url;
	s = client_session_create(e->ctx, &o);
	assert_non_null(s);
	connect_spec_operator(&spec);
	spec.token = TOKEN;
	out = client_session_connect(s, &spec);
	snprintf(why, whysz, "%s", client_session_why(s));
	client_session_destroy(s);
	spawn_stop(&srv, 2000);
	return out;
}

static void test_not_a_gateway(void **state)
{
	struct env *e = *state;
	char why[256];

	assert_int_equal(connect_to_fixture(e, "refuse", why, sizeof(why)),
	                 CLIENT_SESSION_UNREACHABLE);
	assert_non_null(strstr(why, "HTTP 403"));
	assert_int_equal(connect_to_fixture(e, "silent-ws", why, sizeof(why)),
	                 CLIENT_SESSION_NO_CHALLENGE);
	assert_non_null(strstr(why, "no answer within 700 ms"));
	/* a message that is not JSON is skipped: still no challenge */
	assert_int_equal(connect_to_fixture(e, "junk-ws", why, sizeof(why)),
	                 CLIENT_SESSION_NO_CHALLENGE);
	assert_string_equal(client_session_outcome_name(CLIENT_SESSION_NO_CHALLENGE),
	                    "no-challenge");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_operator_hello_and_calls, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_wrong_token_refused_then_closed, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_pending_then_approved, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_pending_then_rejected_closes, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_events_kept_during_call, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_not_a_gateway, setup, teardown),
	};

	return cmocka_run_group_tests_name("client session", tests, NULL, NULL);
}
