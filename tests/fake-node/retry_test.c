/* retry_test.c: the fake node's reconnect policy (node_retry_decide) and its reading of token
 * refusals (node_error_is_auth), case by case, with made-up clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "errors.h"
#include "node.h"

/* What the client library reports for a connection that ended without a close frame. */
#define NO_CLOSE_FRAME 1006
#define NOW 1000000u

static const struct node_retry_state fresh = {
        .backoff_ms = NODE_BACKOFF_MIN_MS, .paired = false, .deadline_ms = NOW + 300000};

static int code_of(enum cp_err e)
{
	return cp_err_info(e)->close_code;
}

static const char *reason_of(enum cp_err e)
{
	return cp_err_info(e)->close_reason;
}

/* An attempt that reached the gateway and was closed with the row of e. */
static struct node_attempt closed_by(enum cp_err e)
{
	struct node_attempt a = {.end = NODE_END_CLOSED, .reached_gateway = true};

	a.close_code = code_of(e);
	a.close_reason = reason_of(e);
	return a;
}

/* ... after an error res carrying the row's details.code and message. */
static struct node_attempt refused_by(enum cp_err e)
{
	struct node_attempt a = closed_by(e);

	a.error = true;
	a.error_details = cp_err_info(e)->details_code;
	a.error_message = cp_err_info(e)->message;
	return a;
}

static struct node_retry decide(const struct node_attempt *a)
{
	return node_retry_decide(a, &fresh, NOW);
}

static void test_held_open_outcomes(void **state)
{
	struct node_attempt a;
	struct node_retry r;
	struct node_retry_state st = fresh;
	(void)state;

	/* the request expired while pending, closed without an error res: ask again on the app's
	 * cadence, the backoff starts over */
	a = closed_by(CP_ERR_PAIRING_EXPIRED);
	a.pending = true;
	st.backoff_ms = 8000;
	r = node_retry_decide(&a, &st, NOW);
	assert_int_equal(r.kind, NODE_RETRY_COMPAT);
	assert_int_equal(r.wait_ms, NODE_COMPAT_RETRY_MS);
	assert_int_equal(r.next.backoff_ms, NODE_BACKOFF_MIN_MS);
	assert_false(r.next.paired);
	assert_int_equal(r.next.deadline_ms, fresh.deadline_ms);
	/* with the gateway's error res (a details.code other than PAIRING_REQUIRED): final */
	a = refused_by(CP_ERR_PAIRING_EXPIRED);
	a.pending = true;
	assert_int_equal(decide(&a).kind, NODE_GIVE_UP_REFUSED);

	/* rejected, superseded, removed: final */
	a = refused_by(CP_ERR_PAIRING_REJECTED);
	a.pending = true;
	assert_int_equal(decide(&a).kind, NODE_GIVE_UP_REFUSED);
	a = refused_by(CP_ERR_PAIRING_SUPERSEDED);
	a.pending = true;
	assert_int_equal(decide(&a).kind, NODE_GIVE_UP_REFUSED);
	a = closed_by(CP_ERR_DEVICE_REMOVED);
	assert_int_equal(decide(&a).kind, NODE_GIVE_UP_REFUSED);

	/* pending, then the socket dropped: wait for approval on the app's cadence */
	a = (struct node_attempt){.end = NODE_END_CLOSED,
	                          .close_code = NO_CLOSE_FRAME,
	                          .reached_gateway = true,
	                          .pending = true};
	assert_int_equal(decide(&a).kind, NODE_RETRY_COMPAT);
}

static void test_openclaw_pairing_required(void **state)
{
	struct node_attempt a = refused_by(CP_ERR_PAIRING_REQUIRED);
	(void)state;

	/* OpenClaw 2026.1.30 closes a pending device: not a refusal, reconnect to show it again */
	assert_int_equal(decide(&a).kind, NODE_RETRY_COMPAT);
	/* the same close without the error res */
	a = closed_by(CP_ERR_PAIRING_REQUIRED);
	assert_int_equal(decide(&a).kind, NODE_RETRY_COMPAT);
}

static void test_other_errors_are_final(void **state)
{
	struct node_attempt a = refused_by(CP_ERR_INVALID_CONNECT_PARAMS);
	(void)state;

	assert_int_equal(decide(&a).kind, NODE_GIVE_UP_REFUSED);
	a = refused_by(CP_ERR_SIGNATURE_INVALID);
	assert_int_equal(decide(&a).kind, NODE_GIVE_UP_REFUSED);
	/* the shared token itself refused */
	a = refused_by(CP_ERR_AUTH_TOKEN_MISMATCH);
	assert_int_equal(decide(&a).kind, NODE_GIVE_UP_REFUSED);
	/* a gateway that sends garbage is not one to retry */
	a = (struct node_attempt){.end = NODE_END_CLOSED,
	                          .close_code = 1002,
	                          .local_close = true,
	                          .reached_gateway = true,
	                          .garbage = true};
	assert_int_equal(decide(&a).kind, NODE_GIVE_UP_REFUSED);
}

static void test_device_token_refused(void **state)
{
	struct node_attempt a = refused_by(CP_ERR_AUTH_TOKEN_MISMATCH);
	struct node_retry r;
	(void)state;

	/* the gateway forgot or revoked the device token: at once, with the shared token */
	a.used_device_token = true;
	r = decide(&a);
	assert_int_equal(r.kind, NODE_RETRY_SHARED_TOKEN);
	assert_int_equal(r.wait_ms, 0);
	assert_int_equal(r.next.backoff_ms, fresh.backoff_ms);

	/* OpenClaw's own words: only a close, or a DEVICE_TOKEN_* code */
	a = (struct node_attempt){.end = NODE_END_CLOSED,
	                          .close_code = code_of(CP_ERR_AUTH_TOKEN_MISMATCH),
	                          .close_reason = "unauthorized: device token mismatch",
	                          .reached_gateway = true,
	                          .used_device_token = true};
	assert_int_equal(decide(&a).kind, NODE_RETRY_SHARED_TOKEN);
	a.close_reason = "";
	a.error = true;
	a.error_details = "DEVICE_TOKEN_MISMATCH";
	assert_int_equal(decide(&a).kind, NODE_RETRY_SHARED_TOKEN);

	/* not after hello-ok on the same attempt: that close is about something else */
	a = refused_by(CP_ERR_AUTH_TOKEN_MISMATCH);
	a.used_device_token = true;
	a.hello = true;
	assert_int_equal(decide(&a).kind, NODE_GIVE_UP_REFUSED);

	/* even past the deadline the fallback is tried once at once, but not later */
	a = refused_by(CP_ERR_AUTH_TOKEN_MISMATCH);
	a.used_device_token = true;
	assert_int_equal(node_retry_decide(&a, &fresh, fresh.deadline_ms).kind,
	                 NODE_GIVE_UP_TIMEOUT);
}

static void test_unreachable_and_not_a_gateway(void **state)
{
	struct node_attempt a = {.end = NODE_END_CLOSED,
	                         .close_code = NO_CLOSE_FRAME,
	                         .close_reason = "connection refused",
	                         .local_close = true};
	(void)state;

	assert_int_equal(decide(&a).kind, NODE_GIVE_UP_UNREACHABLE);
	/* the same after an earlier attempt reached the gateway: it went away, back off */
	a.reached_gateway = true;
	assert_int_equal(decide(&a).kind, NODE_RETRY_BACKOFF);

	a = (struct node_attempt){.end = NODE_END_NO_CHALLENGE};
	assert_int_equal(decide(&a).kind, NODE_GIVE_UP_UNREACHABLE);
	a.socket_open = true; /* something speaks WebSocket, but no challenge */
	assert_int_equal(decide(&a).kind, NODE_GIVE_UP_REFUSED);
	a.socket_open = false;
	a.reached_gateway = true;
	assert_int_equal(decide(&a).kind, NODE_RETRY_BACKOFF);
}

static void test_backoff_doubles_to_the_cap(void **state)
{
	struct node_attempt a = {
	        .end = NODE_END_CLOSED, .close_code = NO_CLOSE_FRAME, .reached_gateway = true};
	struct node_retry_state st = fresh;
	int want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
	(void)state;

	st.deadline_ms = UINT64_MAX;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct node_retry r = node_retry_decide(&a, &st, NOW);

		assert_int_equal(r.kind, NODE_RETRY_BACKOFF);
		assert_int_equal(r.wait_ms, want[i]);
		st = r.next;
	}
	assert_int_equal(st.backoff_ms, NODE_BACKOFF_MAX_MS);
}

static void test_deadline(void **state)
{
	struct node_attempt a = closed_by(CP_ERR_PAIRING_EXPIRED);
	struct node_retry_state st = fresh;
	(void)state;

	a.pending = true;
	/* waiting 6 s would end at the deadline: give up now */
	assert_int_equal(node_retry_decide(&a, &st, st.deadline_ms - NODE_COMPAT_RETRY_MS).kind,
	                 NODE_GIVE_UP_TIMEOUT);
	assert_int_equal(node_retry_decide(&a, &st, st.deadline_ms - NODE_COMPAT_RETRY_MS - 1).kind,
	                 NODE_RETRY_COMPAT);
}

static void test_paired_node_reconnects_forever(void **state)
{
	struct node_attempt a = closed_by(CP_ERR_SHUTDOWN);
	struct node_retry r;
	(void)state;

	/* paired on this attempt, then the gateway shut down: back off, no deadline any more */
	a.hello = true;
	r = node_retry_decide(&a, &fresh, fresh.deadline_ms + 1);
	assert_int_equal(r.kind, NODE_RETRY_BACKOFF);
	assert_true(r.next.paired);
	assert_int_equal(r.next.deadline_ms, UINT64_MAX);

	/* and later attempts keep going, whatever the clock says */
	a.hello = false;
	a.close_code = NO_CLOSE_FRAME;
	a.close_reason = "";
	r = node_retry_decide(&a, &r.next, UINT64_MAX - 60000);
	assert_int_equal(r.kind, NODE_RETRY_BACKOFF);
}

static void test_error_is_auth(void **state)
{
	const struct cp_err_info *mismatch = cp_err_info(CP_ERR_AUTH_TOKEN_MISMATCH);
	(void)state;

	assert_true(node_error_is_auth(mismatch->details_code, NULL, 0, NULL));
	assert_true(node_error_is_auth(cp_err_info(CP_ERR_AUTH_TOKEN_MISSING)->details_code, NULL,
	                               0, NULL));
	assert_true(node_error_is_auth("DEVICE_TOKEN_MISMATCH", NULL, 0, NULL));
	assert_true(node_error_is_auth(NULL, mismatch->message, 0, NULL));
	assert_true(node_error_is_auth(NULL, NULL, mismatch->close_code, mismatch->close_reason));
	assert_false(node_error_is_auth(NULL, NULL, code_of(CP_ERR_PAIRING_REJECTED),
	                                mismatch->close_reason));
	assert_false(node_error_is_auth(cp_err_info(CP_ERR_PAIRING_REQUIRED)->details_code,
	                                "pairing required", mismatch->close_code,
	                                reason_of(CP_ERR_PAIRING_REQUIRED)));
	assert_false(node_error_is_auth(NULL, NULL, 0, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_held_open_outcomes),
	        cmocka_unit_test(test_openclaw_pairing_required),
	        cmocka_unit_test(test_other_errors_are_final),
	        cmocka_unit_test(test_device_token_refused),
	        cmocka_unit_test(test_unreachable_and_not_a_gateway),
	        cmocka_unit_test(test_backoff_doubles_to_the_cap),
	        cmocka_unit_test(test_deadline),
	        cmocka_unit_test(test_paired_node_reconnects_forever),
	        cmocka_unit_test(test_error_is_auth),
	};

	return cmocka_run_group_tests_name("fake-node retry policy", tests, NULL, NULL);
}
