/* fakegw_test.c: the scripted gateway of the client mode (fakegw.h) driven with a fake clock and
 * captured frames, and every judge of fakegw_grade.h on fabricated observations, met and not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "connect_build.h"
#include "fakegw.h"
#include "fakegw_grade.h"
#include "frame.h"
#include "identity.h"
#include "json.h"

#define T0 1000000
#define WALL0 1795479066100LL
#define MAX_SENT 32

/* ---- a fake adapter ---- */

struct cap {
	char *sent[MAX_SENT];
	size_t n;
	int close_code;
	char close_reason[124];
};

static void cap_send(void *user, const char *text, size_t len)
{
	struct cap *c = user;

	if (c->n < MAX_SENT)
		c->sent[c->n++] = strndup(text, len);
}

static void cap_close(void *user, int code, const char *reason)
{
	struct cap *c = user;

	c->close_code = code;
	snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
}

static const struct fakegw_io cap_io = {.send = cap_send, .close = cap_close};

static void cap_finish(struct cap *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->sent[i]);
	memset(c, 0, sizeof *c);
}

static struct fakegw *gw_of(const char *steps_json, struct fakegw_script *s)
{
	cJSON *steps = cJSON_Parse(steps_json);
	char why[128];

	assert_non_null(steps);
	assert_int_equal(fakegw_script_parse(steps, NULL, 1.0, 1500, s, why, sizeof why), 0);
	cJSON_Delete(steps);
	s->shared_token = "shared-token-for-tests";
	return fakegw_create(s, &cap_io, T0, WALL0);
}

/* The nonce of the challenge in sent[0]. */
static void challenge_nonce(const struct cap *c, char *out, size_t outsz)
{
	struct frame f;
	const char *why;

	assert_true(c->n >= 1);
	assert_int_equal(frame_parse(c->sent[0], strlen(c->sent[0]), &f, &why), 0);
	assert_string_equal(f.event, "connect.challenge");
	snprintf(out, outsz, "%s", json_get_string(f.payload, "nonce"));
	frame_finish(&f);
}

/* Answers the challenge of c with a connect of id; the signature it sent goes to sig_out (128
 * bytes) unless NULL. */
static void send_connect_sig(struct fakegw_conn *conn, const struct cap *c,
                             const struct identity *id, enum connect_sig sig,
                             enum connect_nonce nonce, int64_t now, char *sig_out)
{
	struct connect_spec spec;
	char n[64];
	cJSON *params;
	char *text;

	challenge_nonce(c, n, sizeof n);
	connect_spec_android(&spec);
	spec.identity = id;
	spec.token = "shared-token-for-tests";
	spec.sig = sig;
	spec.nonce = nonce;
	params = connect_params_build(&spec, n, WALL0);
	assert_non_null(params);
	if (sig_out)
		snprintf(sig_out, 128, "%s",
		         json_get_string(cJSON_GetObjectItemCaseSensitive(params, "device"),
		                         "signature"));
	text = frame_build_req("c1", "connect", params);
	fakegw_message(conn, text, strlen(text), false, now);
	free(text);
}

static void send_connect(struct fakegw_conn *conn, const struct cap *c, const struct identity *id,
                         enum connect_sig sig, enum connect_nonce nonce, int64_t now)
{
	send_connect_sig(conn, c, id, sig, nonce, now, NULL);
}

static void seed_identity(struct identity *id, uint8_t b)
{
	uint8_t seed[IDENTITY_SEED_BYTES];

	memset(seed, b, sizeof seed);
	assert_int_equal(identity_from_seed(id, seed), 0);
}

/* ---- the core ---- */

static void test_hello_at_once(void **state)
{
	struct fakegw_script s;
	struct fakegw *gw = gw_of("[{\"answer\":\"hello-ok\"}]", &s);
	struct cap c = {0};
	struct identity id;
	const struct fakegw_obs *o;
	struct fakegw_conn *conn;

	(void)state;
	seed_identity(&id, 0);
	conn = fakegw_open(gw, &c, T0 + 10);
	send_connect(conn, &c, &id, CONNECT_SIG_V3, CONNECT_NONCE_CHALLENGE, T0 + 20);
	assert_int_equal(c.n, 2);
	assert_non_null(strstr(c.sent[1], "\"hello-ok\""));
	assert_non_null(strstr(c.sent[1], "\"deviceToken\""));
	o = fakegw_obs(gw);
	assert_int_equal(o->n, 1);
	assert_true(o->v[0].nonce_ok);
	assert_true(o->v[0].id_ok);
	assert_int_equal(o->v[0].sig_version, 3);
	assert_int_equal(o->v[0].device, 0);
	assert_int_equal(o->v[0].connect_ms, 20);
	assert_int_equal(o->v[0].hello_ms, 20);
	assert_int_equal(strlen(o->v[0].issued_token), 32);
	assert_non_null(strstr(c.sent[1], o->v[0].issued_token));
	fakegw_closed(conn, 1000, "bye", FAKEGW_BY_CLIENT, T0 + 30);
	assert_int_equal(o->v[0].closer, FAKEGW_BY_CLIENT);
	assert_int_equal(o->v[0].close_ms, 30);
	fakegw_destroy(gw);
	cap_finish(&c);
}

static void test_pending_then_hello(void **state)
{
	struct fakegw_script s;
	struct fakegw *gw =
	        gw_of("[{\"answer\":\"pending\",\"holdMs\":500,\"then\":\"hello-ok\"}]", &s);
	struct cap c = {0};
	struct identity id;
	struct fakegw_conn *conn;
	const struct fakegw_obs *o = fakegw_obs(gw);

	(void)state;
	seed_identity(&id, 1);
	conn = fakegw_open(gw, &c, T0);
	send_connect(conn, &c, &id, CONNECT_SIG_V2, CONNECT_NONCE_CHALLENGE, T0);
	assert_int_equal(c.n, 2);
	assert_non_null(strstr(c.sent[1], "connect.pending"));
	fakegw_poll(gw, T0 + 499);
	assert_int_equal(c.n, 2);
	fakegw_poll(gw, T0 + 500);
	assert_int_equal(c.n, 3);
	assert_non_null(strstr(c.sent[2], "\"hello-ok\""));
	assert_non_null(strstr(c.sent[2], "\"id\":\"c1\""));
	assert_int_equal(o->v[0].pending_ms, 0);
	assert_int_equal(o->v[0].hello_ms, 500);
	assert_int_equal(o->v[0].sig_version, 2);
	assert_int_equal(strlen(o->v[0].request_id), 36);
	assert_non_null(strstr(c.sent[1], o->v[0].request_id));
	fakegw_destroy(gw);
	cap_finish(&c);
}

static void test_wrong_nonce_and_signature(void **state)
{
	struct fakegw_script s;
	struct fakegw *gw = gw_of("[{\"answer\":\"hello-ok\"}]", &s);
	struct cap c1 = {0}, c2 = {0};
	struct identity id;
	const struct fakegw_obs *o = fakegw_obs(gw);

	(void)state;
	seed_identity(&id, 2);
	send_connect(fakegw_open(gw, &c1, T0), &c1, &id, CONNECT_SIG_V2, CONNECT_NONCE_WRONG, T0);
	send_connect(fakegw_open(gw, &c2, T0), &c2, &id, CONNECT_SIG_BAD, CONNECT_NONCE_CHALLENGE,
	             T0);
	assert_int_equal(o->n, 2);
	assert_false(o->v[0].nonce_ok);
	assert_int_equal(o->v[0].sig_version, 2); /* signed over the nonce it sent */
	assert_true(o->v[1].nonce_ok);
	assert_int_equal(o->v[1].sig_version, 0);
	assert_int_equal(o->n_devices, 1);
	assert_int_equal(o->v[1].nth, 1);
	fakegw_destroy(gw);
	cap_finish(&c1);
	cap_finish(&c2);
}

static void test_outcome_closes(void **state)
{
	struct fakegw_script s;
	struct fakegw *gw =
	        gw_of("[{\"answer\":\"pending\",\"holdMs\":\"hold\",\"then\":\"outcome\","
	              "\"outcome\":\"CP_ERR_PAIRING_REJECTED\"}]",
	              &s);
	struct cap c = {0};
	struct identity id;
	const struct fakegw_obs *o = fakegw_obs(gw);

	(void)state;
	seed_identity(&id, 3);
	send_connect(fakegw_open(gw, &c, T0), &c, &id, CONNECT_SIG_V2, CONNECT_NONCE_CHALLENGE, T0);
	fakegw_poll(gw, T0 + 1500); /* "hold": the runner's hold window */
	assert_int_equal(c.n, 3);
	assert_non_null(strstr(c.sent[2], "PAIRING_REJECTED"));
	assert_int_equal(c.close_code, 4403);
	assert_string_equal(c.close_reason, "pairing rejected");
	assert_int_equal(o->v[0].closer, FAKEGW_BY_GATEWAY);
	assert_int_equal(o->v[0].close_ms, 1500);
	fakegw_destroy(gw);
	cap_finish(&c);
}

static void test_ticks_stop_and_hostile(void **state)
{
	struct fakegw_script s;
	struct fakegw *gw =
	        gw_of("[{\"answer\":\"hello-ok\",\"ticksForMs\":250,"
	              "\"hostile\":[\"unknown-event\",\"bad-seq\",\"huge\",\"garbage\"]}]",
	              &s);
	struct cap c = {0};
	struct identity id;
	struct fakegw_conn *conn;
	size_t before;
	char *leak;

	(void)state;
	s.tick_ms = 100;
	fakegw_destroy(gw);
	gw = fakegw_create(&s, &cap_io, T0, WALL0);
	seed_identity(&id, 4);
	conn = fakegw_open(gw, &c, T0);
	send_connect(conn, &c, &id, CONNECT_SIG_V2, CONNECT_NONCE_CHALLENGE, T0);
	fakegw_poll(gw, T0 + 50); /* the hostile frames */
	assert_int_equal(c.n, 6);
	assert_non_null(strstr(c.sent[2], "clawpair.conformance.unknown"));
	assert_true(strlen(c.sent[4]) > FAKEGW_HUGE_BYTES);
	assert_null(cJSON_Parse(c.sent[5]));
	fakegw_poll(gw, T0 + 100);
	fakegw_poll(gw, T0 + 200);
	before = c.n;
	fakegw_poll(gw, T0 + 300); /* ticks stopped at 250 */
	fakegw_poll(gw, T0 + 400);
	assert_int_equal(c.n, before);
	assert_int_equal(fakegw_obs(gw)->v[0].last_tx_ms, 200);
	leak = strdup("{\"type\":\"req\",\"id\":\"e\",\"method\":\"node.event\",\"params\":"
	              "{\"t\":\"shared-token-for-tests\"}}");
	fakegw_message(conn, leak, strlen(leak), false, T0 + 410);
	free(leak);
	assert_string_equal(fakegw_obs(gw)->v[0].leak, "the shared token");
	/* a second connection that echoes the first one's signature */
	{
		struct cap c2 = {0};
		struct fakegw_conn *conn2 = fakegw_open(gw, &c2, T0 + 420);
		char frame[300], signature[128];

		send_connect_sig(conn2, &c2, &id, CONNECT_SIG_V2, CONNECT_NONCE_CHALLENGE, T0 + 430,
		                 signature);
		snprintf(frame, sizeof frame,
		         "{\"type\":\"req\",\"id\":\"e\",\"method\":\"node.event\",\"params\":"
		         "{\"s\":\"%s\"}}",
		         signature);
		fakegw_message(conn2, frame, strlen(frame), false, T0 + 440);
		assert_string_equal(fakegw_obs(gw)->v[1].leak, "its connect signature");
		cap_finish(&c2);
	}
	fakegw_destroy(gw);
	cap_finish(&c);
}

static void test_script_errors(void **state)
{
	static const char *const bad[] = {
	        "[]",
	        "[{\"answer\":\"maybe\"}]",
	        "[{\"answer\":\"pending\",\"then\":\"outcome\",\"outcome\":\"CP_ERR_UNKNOWN_METHOD\"}]",
	        "[{\"answer\":\"hello-ok\",\"hostile\":[\"nice\"]}]",
	        "[{\"answer\":\"hello-ok\",\"close\":99}]",
	};
	struct fakegw_script s;
	char why[128];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cJSON *j = cJSON_Parse(bad[i]);

		assert_int_equal(fakegw_script_parse(j, NULL, 1.0, 1000, &s, why, sizeof why), -1);
		cJSON_Delete(j);
	}
}

/* ---- the grader ---- */

static struct fakegw_conn_obs mk(int dev, int64_t open, int64_t connect)
{
	struct fakegw_conn_obs o;

	memset(&o, 0, sizeof o);
	o.device = dev;
	o.has_device = dev >= 0;
	o.key_ok = o.id_ok = o.nonce_ok = true;
	o.sig_version = 2;
	o.open_ms = open;
	o.connect_ms = connect;
	o.pending_ms = o.hello_ms = o.close_ms = o.last_tx_ms = -1;
	return o;
}

static void closed(struct fakegw_conn_obs *o, int64_t t, int code, enum fakegw_closer who)
{
	o->close_ms = t;
	o->close_code = code;
	o->closer = who;
}

static enum fakegw_grade grade(const char *check, struct fakegw_conn_obs *v, size_t n,
                               size_t devices, const struct fakegw_proc *p, size_t np, char *msg)
{
	struct fakegw_obs obs = {.v = v, .n = n, .n_devices = devices, .end_ms = 100000};
	struct fakegw_grade_input in = {
	        .obs = &obs, .procs = p, .n_procs = np, .hold_ms = 15000, .tick_ms = 300};

	return fakegw_grade(check, &in, msg, 512);
}

static void test_grade_handshake(void **state)
{
	struct fakegw_conn_obs v[2] = {mk(0, 0, 5), mk(0, 1000, 1005)};
	char msg[512];

	(void)state;
	assert_int_equal(grade("nonce", v, 2, 1, NULL, 0, msg), FAKEGW_MET);
	assert_int_equal(grade("same-identity", v, 2, 1, NULL, 0, msg), FAKEGW_MET);
	assert_int_equal(grade("same-identity", v, 2, 2, NULL, 0, msg), FAKEGW_NOT_MET);
	assert_int_equal(grade("same-identity", v, 1, 1, NULL, 0, msg), FAKEGW_NOT_MET);
	v[1].nonce_ok = false;
	assert_int_equal(grade("nonce", v, 2, 1, NULL, 0, msg), FAKEGW_NOT_MET);
	v[1].sig_version = 0;
	assert_int_equal(grade("signature", v, 2, 1, NULL, 0, msg), FAKEGW_NOT_MET);
	v[0].id_ok = false;
	assert_int_equal(grade("device-id", v, 2, 1, NULL, 0, msg), FAKEGW_NOT_MET);
	assert_int_equal(grade("nonce", v, 0, 0, NULL, 0, msg), FAKEGW_NOT_MET);
	assert_string_equal(msg, "the client never connected");
	assert_false(fakegw_grade_known("bogus"));
}

static void test_grade_hold(void **state)
{
	struct fakegw_conn_obs v[3] = {mk(0, 0, 5), mk(0, 15300, 15305), mk(0, 32000, 32005)};
	char msg[512];

	(void)state;
	v[0].pending_ms = 6;
	closed(&v[0], 3005, 4000, FAKEGW_BY_CLIENT);
	assert_int_equal(grade("holds-pending", v, 1, 1, NULL, 0, msg), FAKEGW_NOT_MET);
	assert_non_null(strstr(msg, "held the pending connect 3000 ms"));
	closed(&v[0], 15005, 4000, FAKEGW_BY_CLIENT);
	assert_int_equal(grade("holds-pending", v, 1, 1, NULL, 0, msg), FAKEGW_MET);
	/* the 2026.9.6 node host: 15 s, then 1 s, then 2 s */
	v[1].pending_ms = 15306;
	closed(&v[1], 30305, 4000, FAKEGW_BY_CLIENT);
	v[2].pending_ms = 32006;
	assert_int_equal(grade("timeout-retry", v, 3, 1, NULL, 0, msg), FAKEGW_NOT_MET);
	assert_non_null(strstr(msg, "not within 1000 ms"));
	v[1].open_ms = 15500;
	v[2].open_ms = 30900;
	assert_int_equal(grade("timeout-retry", v, 3, 1, NULL, 0, msg), FAKEGW_MET);
	v[2].open_ms = 31100; /* 795 after 495: grew more than the slack */
	assert_int_equal(grade("timeout-retry", v, 3, 1, NULL, 0, msg), FAKEGW_NOT_MET);
	assert_non_null(strstr(msg, "grew"));
	/* no timeout of its own */
	v[0].close_ms = -1;
	v[0].closer = FAKEGW_OPEN;
	assert_int_equal(grade("timeout-retry", v, 1, 1, NULL, 0, msg), FAKEGW_MET);
	assert_non_null(strstr(msg, "never gave up"));
	/* hello-ok on the held socket, then a reconnect: not taken */
	v[0].hello_ms = 600;
	assert_int_equal(grade("hello-on-held", v, 1, 1, NULL, 0, msg), FAKEGW_MET);
	closed(&v[0], 601, 1000, FAKEGW_BY_CLIENT);
	assert_int_equal(grade("hello-on-held", v, 2, 1, NULL, 0, msg), FAKEGW_NOT_MET);
}

static void test_grade_reconnects(void **state)
{
	struct fakegw_conn_obs v[6] = {mk(0, 0, 5), mk(0, 1300, 1305), mk(0, 3500, 3505),
	                               mk(1, 0, 5), mk(1, 1500, 1505), mk(2, 0, 5)};
	struct fakegw_proc crashed = {.exited = true, .signal = 11, .exit_ms = 50};
	char msg[512];

	(void)state;
	closed(&v[0], 300, 1012, FAKEGW_BY_GATEWAY);
	closed(&v[1], 1400, 1012, FAKEGW_BY_GATEWAY);
	assert_int_equal(grade("reconnect", v, 2, 1, NULL, 0, msg), FAKEGW_MET);
	assert_int_equal(grade("reconnect", v, 1, 1, NULL, 0, msg), FAKEGW_NOT_MET);
	assert_int_equal(grade("no-reconnect", v, 2, 1, NULL, 0, msg), FAKEGW_NOT_MET);
	assert_int_equal(grade("no-reconnect", v, 1, 1, NULL, 0, msg), FAKEGW_MET);
	/* waits 1000 then 2100: grow */
	assert_int_equal(grade("backoff", v, 3, 1, NULL, 0, msg), FAKEGW_MET);
	v[2].open_ms = 1500; /* 100 ms: under 250 */
	assert_int_equal(grade("backoff", v, 3, 1, NULL, 0, msg), FAKEGW_NOT_MET);
	/* jitter: device 0 waits 1000, device 1 1200 (closed at 300) */
	closed(&v[3], 300, 1012, FAKEGW_BY_GATEWAY);
	assert_int_equal(grade("jitter", v, 5, 2, NULL, 0, msg), FAKEGW_MET);
	v[4].open_ms = 1310;
	assert_int_equal(grade("jitter", v, 5, 2, NULL, 0, msg), FAKEGW_NOT_MET);
	/* device token */
	snprintf(v[0].issued_token, sizeof v[0].issued_token, "%s",
	         "0123456789abcdef0123456789abcdef");
	assert_int_equal(grade("device-token", v, 2, 1, NULL, 0, msg), FAKEGW_NOT_MET);
	v[1].auth_device_token = v[0].issued_token;
	assert_int_equal(grade("device-token", v, 2, 1, NULL, 0, msg), FAKEGW_MET);
	v[1].auth_device_token = NULL;
	/* ticks: silent 400 ms is under 2 x 300 */
	v[5].hello_ms = 10;
	v[5].last_tx_ms = 100;
	closed(&v[5], 500, 4000, FAKEGW_BY_CLIENT);
	assert_int_equal(grade("tick-silence", &v[5], 1, 1, NULL, 0, msg), FAKEGW_NOT_MET);
	closed(&v[5], 700, 4000, FAKEGW_BY_CLIENT);
	assert_int_equal(grade("tick-silence", &v[5], 1, 1, NULL, 0, msg), FAKEGW_MET);
	/* hostile: a crash, a leak */
	assert_int_equal(grade("hostile", &v[5], 1, 1, NULL, 0, msg), FAKEGW_MET);
	assert_int_equal(grade("hostile", &v[5], 1, 1, &crashed, 1, msg), FAKEGW_NOT_MET);
	v[5].leak = "its device token";
	assert_int_equal(grade("hostile", &v[5], 1, 1, NULL, 0, msg), FAKEGW_NOT_MET);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_hello_at_once),
	        cmocka_unit_test(test_pending_then_hello),
	        cmocka_unit_test(test_wrong_nonce_and_signature),
	        cmocka_unit_test(test_outcome_closes),
	        cmocka_unit_test(test_ticks_stop_and_hostile),
	        cmocka_unit_test(test_script_errors),
	        cmocka_unit_test(test_grade_handshake),
	        cmocka_unit_test(test_grade_hold),
	        cmocka_unit_test(test_grade_reconnects),
	};

	if (identity_global_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
