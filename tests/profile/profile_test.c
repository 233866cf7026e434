/* profile_test.c: the client behaviour profiles: the android profile's reconnect policy and its
 * reading of token refusals (profile_error_is_auth), and what each measured client does after
 * each close (profile_decide), case by case, with made-up clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "errors.h"
#include "profile.h"

/* What the client library reports for a connection that ended without a close frame. */
#define NO_CLOSE_FRAME 1006
#define NOW 1000000u

static const struct profile_state fresh = {.deadline_ms = NOW + 300000};

static const struct profile *android_p(void)
{
	return profile_get(PROFILE_ANDROID);
}

/* the android profile's decision, no jitter draw */
static struct profile_retry node_retry_decide(const struct profile_attempt *a,
                                              const struct profile_state *st, uint64_t now)
{
	return profile_decide(android_p(), a, st, now, 0.0);
}

static int code_of(enum cp_err e)
{
	return cp_err_info(e)->close_code;
}

static const char *reason_of(enum cp_err e)
{
	return cp_err_info(e)->close_reason;
}

/* An attempt that reached the gateway and was closed with the row of e. */
static struct profile_attempt closed_by(enum cp_err e)
{
	struct profile_attempt a = {.end = PROFILE_END_CLOSED, .reached_gateway = true};

	a.close_code = code_of(e);
	a.close_reason = reason_of(e);
	return a;
}

/* ... after an error res carrying the row's details.code and message. */
static struct profile_attempt refused_by(enum cp_err e)
{
	struct profile_attempt a = closed_by(e);

	a.error = true;
	a.error_details = cp_err_info(e)->details_code;
	a.error_message = cp_err_info(e)->message;
	return a;
}

static struct profile_retry decide(const struct profile_attempt *a)
{
	return node_retry_decide(a, &fresh, NOW);
}

static void test_held_open_outcomes(void **state)
{
	struct profile_attempt a;
	struct profile_retry r;
	struct profile_state st = fresh;
	(void)state;

	/* the request expired while pending, closed without an error res: ask again on the app's
	 * cadence, the backoff starts over */
	a = closed_by(CP_ERR_PAIRING_EXPIRED);
	a.pending = true;
	st.failures = 3; /* the next backoff would be 8 s */
	r = node_retry_decide(&a, &st, NOW);
	assert_int_equal(r.kind, PROFILE_RETRY_PAIRING);
	assert_int_equal(r.wait_ms, android_p()->pairing_retry_ms);
	assert_int_equal(r.next.failures, 0);
	assert_false(r.next.paired);
	assert_int_equal(r.next.deadline_ms, fresh.deadline_ms);
	/* with the gateway's error res (a details.code other than PAIRING_REQUIRED): final */
	a = refused_by(CP_ERR_PAIRING_EXPIRED);
	a.pending = true;
	assert_int_equal(decide(&a).kind, PROFILE_GIVE_UP_REFUSED);

	/* rejected, superseded, removed: final */
	a = refused_by(CP_ERR_PAIRING_REJECTED);
	a.pending = true;
	assert_int_equal(decide(&a).kind, PROFILE_GIVE_UP_REFUSED);
	a = refused_by(CP_ERR_PAIRING_SUPERSEDED);
	a.pending = true;
	assert_int_equal(decide(&a).kind, PROFILE_GIVE_UP_REFUSED);
	a = closed_by(CP_ERR_DEVICE_REMOVED);
	assert_int_equal(decide(&a).kind, PROFILE_GIVE_UP_REFUSED);

	/* pending, then the socket dropped: wait for approval on the app's cadence */
	a = (struct profile_attempt){.end = PROFILE_END_CLOSED,
	                             .close_code = NO_CLOSE_FRAME,
	                             .reached_gateway = true,
	                             .pending = true};
	assert_int_equal(decide(&a).kind, PROFILE_RETRY_PAIRING);
}

static void test_openclaw_pairing_required(void **state)
{
	struct profile_attempt a = refused_by(CP_ERR_PAIRING_REQUIRED);
	(void)state;

	/* OpenClaw 2026.1.30 closes a pending device: not a refusal, reconnect to show it again */
	assert_int_equal(decide(&a).kind, PROFILE_RETRY_PAIRING);
	/* the same close without the error res */
	a = closed_by(CP_ERR_PAIRING_REQUIRED);
	assert_int_equal(decide(&a).kind, PROFILE_RETRY_PAIRING);
}

static void test_other_errors_are_final(void **state)
{
	struct profile_attempt a = refused_by(CP_ERR_INVALID_CONNECT_PARAMS);
	(void)state;

	assert_int_equal(decide(&a).kind, PROFILE_GIVE_UP_REFUSED);
	a = refused_by(CP_ERR_SIGNATURE_INVALID);
	assert_int_equal(decide(&a).kind, PROFILE_GIVE_UP_REFUSED);
	/* the shared token itself refused */
	a = refused_by(CP_ERR_AUTH_TOKEN_MISMATCH);
	assert_int_equal(decide(&a).kind, PROFILE_GIVE_UP_REFUSED);
	/* a gateway that sends garbage is not one to retry */
	a = (struct profile_attempt){.end = PROFILE_END_CLOSED,
	                             .close_code = 1002,
	                             .local_close = true,
	                             .reached_gateway = true,
	                             .garbage = true};
	assert_int_equal(decide(&a).kind, PROFILE_GIVE_UP_REFUSED);
}

static void test_device_token_refused(void **state)
{
	struct profile_attempt a = refused_by(CP_ERR_AUTH_TOKEN_MISMATCH);
	struct profile_retry r;
	(void)state;

	/* the gateway forgot or revoked the device token: at once, with the shared token */
	a.used_device_token = true;
	r = decide(&a);
	assert_int_equal(r.kind, PROFILE_RETRY_SHARED_TOKEN);
	assert_int_equal(r.wait_ms, 0);
	assert_int_equal(r.next.failures, fresh.failures);

	/* OpenClaw's own words: only a close, or a DEVICE_TOKEN_* code */
	a = (struct profile_attempt){.end = PROFILE_END_CLOSED,
	                             .close_code = code_of(CP_ERR_AUTH_TOKEN_MISMATCH),
	                             .close_reason = "unauthorized: device token mismatch",
	                             .reached_gateway = true,
	                             .used_device_token = true};
	assert_int_equal(decide(&a).kind, PROFILE_RETRY_SHARED_TOKEN);
	a.close_reason = "";
	a.error = true;
	a.error_details = "DEVICE_TOKEN_MISMATCH";
	assert_int_equal(decide(&a).kind, PROFILE_RETRY_SHARED_TOKEN);

	/* not after hello-ok on the same attempt: that close is about something else */
	a = refused_by(CP_ERR_AUTH_TOKEN_MISMATCH);
	a.used_device_token = true;
	a.hello = true;
	assert_int_equal(decide(&a).kind, PROFILE_GIVE_UP_REFUSED);

	/* even past the deadline the fallback is tried once at once, but not later */
	a = refused_by(CP_ERR_AUTH_TOKEN_MISMATCH);
	a.used_device_token = true;
	assert_int_equal(node_retry_decide(&a, &fresh, fresh.deadline_ms).kind,
	                 PROFILE_GIVE_UP_TIMEOUT);
}

static void test_unreachable_and_not_a_gateway(void **state)
{
	struct profile_attempt a = {.end = PROFILE_END_CLOSED,
	                            .close_code = NO_CLOSE_FRAME,
	                            .close_reason = "connection refused",
	                            .local_close = true};
	(void)state;

	assert_int_equal(decide(&a).kind, PROFILE_GIVE_UP_UNREACHABLE);
	/* the same after an earlier attempt reached the gateway: it went away, back off */
	a.reached_gateway = true;
	assert_int_equal(decide(&a).kind, PROFILE_RETRY_BACKOFF);

	a = (struct profile_attempt){.end = PROFILE_END_NO_CHALLENGE};
	assert_int_equal(decide(&a).kind, PROFILE_GIVE_UP_UNREACHABLE);
	a.socket_open = true; /* something speaks WebSocket, but no challenge */
	assert_int_equal(decide(&a).kind, PROFILE_GIVE_UP_REFUSED);
	a.socket_open = false;
	a.reached_gateway = true;
	assert_int_equal(decide(&a).kind, PROFILE_RETRY_BACKOFF);
}

static void test_backoff_doubles_to_the_cap(void **state)
{
	struct profile_attempt a = {
	        .end = PROFILE_END_CLOSED, .close_code = NO_CLOSE_FRAME, .reached_gateway = true};
	struct profile_state st = fresh;
	int want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
	(void)state;

	st.deadline_ms = UINT64_MAX;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct profile_retry r = node_retry_decide(&a, &st, NOW);

		assert_int_equal(r.kind, PROFILE_RETRY_BACKOFF);
		assert_int_equal(r.wait_ms, want[i]);
		st = r.next;
	}
	assert_int_equal(profile_backoff_ms(android_p(), st.failures, 0),
	                 android_p()->backoff_max_ms);
}

static void test_deadline(void **state)
{
	struct profile_attempt a = closed_by(CP_ERR_PAIRING_EXPIRED);
	struct profile_state st = fresh;
	(void)state;

	a.pending = true;
	/* waiting 6 s would end at the deadline: give up now */
	assert_int_equal(
	        node_retry_decide(&a, &st, st.deadline_ms - android_p()->pairing_retry_ms).kind,
	        PROFILE_GIVE_UP_TIMEOUT);
	assert_int_equal(
	        node_retry_decide(&a, &st, st.deadline_ms - android_p()->pairing_retry_ms - 1).kind,
	        PROFILE_RETRY_PAIRING);
}

static void test_paired_node_reconnects_forever(void **state)
{
	struct profile_attempt a = closed_by(CP_ERR_SHUTDOWN);
	struct profile_retry r;
	(void)state;

	/* paired on this attempt, then the gateway shut down: back off, no deadline any more */
	a.hello = true;
	r = node_retry_decide(&a, &fresh, fresh.deadline_ms + 1);
	assert_int_equal(r.kind, PROFILE_RETRY_BACKOFF);
	assert_true(r.next.paired);
	assert_int_equal(r.next.deadline_ms, UINT64_MAX);

	/* and later attempts keep going, whatever the clock says */
	a.hello = false;
	a.close_code = NO_CLOSE_FRAME;
	a.close_reason = "";
	r = node_retry_decide(&a, &r.next, UINT64_MAX - 60000);
	assert_int_equal(r.kind, PROFILE_RETRY_BACKOFF);
}

static void test_error_is_auth(void **state)
{
	const struct cp_err_info *mismatch = cp_err_info(CP_ERR_AUTH_TOKEN_MISMATCH);
	(void)state;

	assert_true(profile_error_is_auth(mismatch->details_code, NULL, 0, NULL));
	assert_true(profile_error_is_auth(cp_err_info(CP_ERR_AUTH_TOKEN_MISSING)->details_code,
	                                  NULL, 0, NULL));
	assert_true(profile_error_is_auth("DEVICE_TOKEN_MISMATCH", NULL, 0, NULL));
	assert_true(profile_error_is_auth(NULL, mismatch->message, 0, NULL));
	assert_true(
	        profile_error_is_auth(NULL, NULL, mismatch->close_code, mismatch->close_reason));
	assert_false(profile_error_is_auth(NULL, NULL, code_of(CP_ERR_PAIRING_REJECTED),
	                                   mismatch->close_reason));
	assert_false(profile_error_is_auth(cp_err_info(CP_ERR_PAIRING_REQUIRED)->details_code,
	                                   "pairing required", mismatch->close_code,
	                                   reason_of(CP_ERR_PAIRING_REQUIRED)));
	assert_false(profile_error_is_auth(NULL, NULL, 0, NULL));
}

/* ---- the measured clients ---- */

static const struct profile *get(enum profile_id id)
{
	return profile_get(id);
}

/* The 2026.9.6 node host's own connect timeout while held. */
static struct profile_attempt own_timeout(void)
{
	struct profile_attempt a = {.end = PROFILE_END_CLOSED,
	                            .close_code = 4000,
	                            .close_reason = "connect timeout",
	                            .local_close = true,
	                            .own_timeout = true,
	                            .reached_gateway = true,
	                            .pending = true};

	return a;
}

static void test_table(void **state)
{
	(void)state;
	assert_ptr_equal(profile_find("android"), get(PROFILE_ANDROID));
	assert_ptr_equal(profile_find("node-host-2026.1.30"), get(PROFILE_NODE_HOST_2026_1_30));
	assert_ptr_equal(profile_find("node-host-2026.9.6"), get(PROFILE_NODE_HOST_2026_9_6));
	assert_ptr_equal(profile_find("openclaw-node-0.14"), get(PROFILE_OPENCLAW_NODE_0_14));
	assert_null(profile_find("node-host"));
	assert_null(profile_find(NULL));
	assert_null(profile_get(PROFILE_COUNT));
	/* the 2026.9.6 node host: 15 s, then its own close 4000 */
	assert_int_equal(get(PROFILE_NODE_HOST_2026_9_6)->hello_timeout_ms, 15000);
	assert_int_equal(get(PROFILE_NODE_HOST_2026_9_6)->timeout_close_code, 4000);
	/* the others wait as long as the socket is open */
	assert_int_equal(get(PROFILE_NODE_HOST_2026_1_30)->hello_timeout_ms, 0);
	assert_int_equal(get(PROFILE_OPENCLAW_NODE_0_14)->hello_timeout_ms, 0);
	assert_int_equal(get(PROFILE_ANDROID)->hello_timeout_ms, 0);
	assert_string_equal(get(PROFILE_OPENCLAW_NODE_0_14)->role, "operator");
}

static void test_backoff_and_jitter(void **state)
{
	struct profile p = *get(PROFILE_NODE_HOST_2026_9_6);
	(void)state;

	/* no jitter in the real client: the draw changes nothing */
	assert_int_equal(profile_backoff_ms(&p, 0, 0.99), 1000);
	assert_int_equal(profile_backoff_ms(&p, 4, 0.5), 16000);
	assert_int_equal(profile_backoff_ms(&p, 5, 0.0), 30000);
	assert_int_equal(profile_backoff_ms(&p, 40, 0.0), 30000);
	/* a jittered variant: delay times (1 + jitter * r), r outside [0, 1) read as 0 */
	p.backoff_jitter = 0.5;
	assert_int_equal(profile_backoff_ms(&p, 0, 0.5), 1250);
	assert_int_equal(profile_backoff_ms(&p, 1, 0.0), 2000);
	assert_int_equal(profile_backoff_ms(&p, 1, 1.0), 2000);
}

static void test_node_host_9_6_cycle(void **state)
{
	const struct profile *p = get(PROFILE_NODE_HOST_2026_9_6);
	struct profile_attempt a = own_timeout();
	struct profile_state st = fresh;
	int want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
	(void)state;

	/* a pending answer is not hello-ok: every own timeout grows the backoff */
	st.deadline_ms = UINT64_MAX;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct profile_retry r = profile_decide(p, &a, &st, NOW, 0.3);

		assert_int_equal(r.kind, PROFILE_RETRY_BACKOFF);
		assert_int_equal(r.wait_ms, want[i]);
		st = r.next;
	}
	/* only hello-ok resets it: paired, then the gateway shut down */
	a = closed_by(CP_ERR_SHUTDOWN);
	a.hello = true;
	{
		struct profile_retry r = profile_decide(p, &a, &st, NOW, 0.3);

		assert_int_equal(r.kind, PROFILE_RETRY_BACKOFF);
		assert_int_equal(r.wait_ms, 1000);
		assert_true(r.next.paired);
	}
}

static void test_node_host_9_6_refusals(void **state)
{
	const struct profile *p = get(PROFILE_NODE_HOST_2026_9_6);
	struct profile_attempt a;
	struct profile_retry r;
	struct profile_state st = fresh;
	const char *reason;
	int code;
	(void)state;

	/* rejected, expired, superseded, shut down: all reconnect after the backoff */
	a = refused_by(CP_ERR_PAIRING_REJECTED);
	assert_int_equal(profile_decide(p, &a, &fresh, NOW, 0).kind, PROFILE_RETRY_BACKOFF);
	a = refused_by(CP_ERR_PAIRING_EXPIRED);
	assert_int_equal(profile_decide(p, &a, &fresh, NOW, 0).kind, PROFILE_RETRY_BACKOFF);
	a = refused_by(CP_ERR_PAIRING_SUPERSEDED);
	assert_int_equal(profile_decide(p, &a, &fresh, NOW, 0).kind, PROFILE_RETRY_BACKOFF);
	a = refused_by(CP_ERR_SHUTDOWN);
	assert_int_equal(profile_decide(p, &a, &fresh, NOW, 0).kind, PROFILE_RETRY_BACKOFF);
	profile_error_close(p, &a, &code, &reason);
	assert_int_equal(code, 1008);
	assert_string_equal(reason, "connect failed");

	/* the startup retry: the gateway's delay, clamped, the backoff not grown */
	a = refused_by(CP_ERR_SHUTDOWN);
	a.error_code = "UNAVAILABLE";
	a.error_retryable = true;
	a.error_reason = "startup-sidecars";
	a.error_retry_after_ms = 50;
	st.failures = 3;
	r = profile_decide(p, &a, &st, NOW, 0);
	assert_int_equal(r.kind, PROFILE_RETRY_FIXED);
	assert_int_equal(r.wait_ms, 100);
	assert_int_equal(r.next.failures, 3);
	a.error_retry_after_ms = 9000;
	assert_int_equal(profile_decide(p, &a, &st, NOW, 0).wait_ms, 2000);
	a.error_retry_after_ms = -1;
	assert_int_equal(profile_decide(p, &a, &st, NOW, 0).wait_ms, 500);
	profile_error_close(p, &a, &code, &reason);
	assert_int_equal(code, 1013);
	assert_string_equal(reason, "gateway starting");
	/* not retryable: an ordinary failure */
	a.error_retryable = false;
	assert_int_equal(profile_decide(p, &a, &st, NOW, 0).kind, PROFILE_RETRY_BACKOFF);
	/* any other reason with retryAfterMs: max(backoff, retryAfterMs), and it grows */
	a.error_retryable = true;
	a.error_reason = "busy";
	a.error_retry_after_ms = 5000;
	st.failures = 0;
	r = profile_decide(p, &a, &st, NOW, 0);
	assert_int_equal(r.kind, PROFILE_RETRY_BACKOFF);
	assert_int_equal(r.wait_ms, 5000);
	assert_int_equal(r.next.failures, 1);

	/* the shared token refused: the node host exits for its supervisor */
	a = refused_by(CP_ERR_AUTH_TOKEN_MISMATCH);
	r = profile_decide(p, &a, &fresh, NOW, 0);
	assert_int_equal(r.kind, PROFILE_EXIT);
	assert_int_equal(r.exit_status, 1);
	/* OpenClaw's 1008 "pairing required" without a hint to wait: paused, never exits */
	a = refused_by(CP_ERR_PAIRING_REQUIRED);
	assert_int_equal(profile_decide(p, &a, &fresh, NOW, 0).kind, PROFILE_PAUSE);
	a.error_next_step = "wait_then_retry";
	assert_int_equal(profile_decide(p, &a, &fresh, NOW, 0).kind, PROFILE_RETRY_BACKOFF);
	a.error_next_step = NULL;
	a.error_no_pause = true;
	assert_int_equal(profile_decide(p, &a, &fresh, NOW, 0).kind, PROFILE_RETRY_BACKOFF);
}

static void test_node_host_1_30_exits(void **state)
{
	const struct profile *p = get(PROFILE_NODE_HOST_2026_1_30);
	enum cp_err closes[] = {CP_ERR_SHUTDOWN, CP_ERR_PAIRING_REJECTED, CP_ERR_PAIRING_EXPIRED,
	                        CP_ERR_PAIRING_SUPERSEDED, CP_ERR_PAIRING_REQUIRED};
	struct profile_attempt a;
	struct profile_retry r;
	const char *reason;
	int code;
	(void)state;

	for (size_t i = 0; i < sizeof(closes) / sizeof(closes[0]); i++) {
		a = closed_by(closes[i]);
		r = profile_decide(p, &a, &fresh, NOW, 0);
		assert_int_equal(r.kind, PROFILE_EXIT);
		assert_int_equal(r.exit_status, 0);
	}
	/* also after hello-ok */
	a = closed_by(CP_ERR_SHUTDOWN);
	a.hello = true;
	assert_int_equal(profile_decide(p, &a, &fresh, NOW, 0).kind, PROFILE_EXIT);
	/* it closes a refused connect itself */
	a = refused_by(CP_ERR_PAIRING_REJECTED);
	profile_error_close(p, &a, &code, &reason);
	assert_int_equal(code, 1008);
	assert_string_equal(reason, "connect failed");
	/* nothing there at all: the tool says so instead */
	a = (struct profile_attempt){
	        .end = PROFILE_END_CLOSED, .close_code = NO_CLOSE_FRAME, .local_close = true};
	assert_int_equal(profile_decide(p, &a, &fresh, NOW, 0).kind, PROFILE_GIVE_UP_UNREACHABLE);
}

static void test_openclaw_node(void **state)
{
	const struct profile *p = get(PROFILE_OPENCLAW_NODE_0_14);
	struct profile_attempt a = closed_by(CP_ERR_PAIRING_EXPIRED);
	struct profile_state st = fresh;
	int want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000, 30000};
	struct profile_retry r;
	const char *reason;
	int code;
	(void)state;

	st.deadline_ms = UINT64_MAX;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		r = profile_decide(p, &a, &st, NOW, 0.7);
		assert_int_equal(r.kind, PROFILE_RETRY_BACKOFF);
		assert_int_equal(r.wait_ms, want[i]);
		assert_false(r.forget_device_token);
		st = r.next;
	}
	/* the eleventh: it stops reconnecting */
	assert_int_equal(profile_decide(p, &a, &st, NOW, 0).kind, PROFILE_PAUSE);
	/* a hello-ok starts the count over */
	a.hello = true;
	r = profile_decide(p, &a, &st, NOW, 0);
	assert_int_equal(r.kind, PROFILE_RETRY_BACKOFF);
	assert_int_equal(r.wait_ms, 1000);
	/* a device token used on an attempt that ended before hello-ok is forgotten */
	a = closed_by(CP_ERR_AUTH_TOKEN_MISMATCH);
	a.used_device_token = true;
	r = profile_decide(p, &a, &fresh, NOW, 0);
	assert_int_equal(r.kind, PROFILE_RETRY_BACKOFF);
	assert_true(r.forget_device_token);
	/* it does not close a refused connect itself */
	profile_error_close(p, &a, &code, &reason);
	assert_int_equal(code, 0);
}

/* What each profile does after a held connect ends with each of the closes of spec §8.3 (with
 * the gateway's error res, as the reference gateway sends it) and OpenClaw's 1008. */
static void test_close_matrix(void **state)
{
	enum cp_err closes[] = {CP_ERR_SHUTDOWN, CP_ERR_PAIRING_REQUIRED, CP_ERR_PAIRING_REJECTED,
	                        CP_ERR_PAIRING_EXPIRED, CP_ERR_PAIRING_SUPERSEDED};
	/* rows: profiles; columns: 1001, 1008, 4403, 4408, 4409 */
	static const enum profile_retry_kind want[PROFILE_COUNT][5] = {
	        [PROFILE_REFERENCE] = {PROFILE_RETRY_BACKOFF, PROFILE_RETRY_PAIRING,
	                               PROFILE_GIVE_UP_REFUSED, PROFILE_RETRY_PAIRING,
	                               PROFILE_GIVE_UP_REFUSED},
	        [PROFILE_ANDROID] = {PROFILE_GIVE_UP_REFUSED, PROFILE_RETRY_PAIRING,
	                             PROFILE_GIVE_UP_REFUSED, PROFILE_GIVE_UP_REFUSED,
	                             PROFILE_GIVE_UP_REFUSED},
	        [PROFILE_NODE_HOST_2026_1_30] = {PROFILE_EXIT, PROFILE_EXIT, PROFILE_EXIT,
	                                         PROFILE_EXIT, PROFILE_EXIT},
	        [PROFILE_NODE_HOST_2026_9_6] = {PROFILE_RETRY_BACKOFF, PROFILE_PAUSE,
	                                        PROFILE_RETRY_BACKOFF, PROFILE_RETRY_BACKOFF,
	                                        PROFILE_RETRY_BACKOFF},
	        [PROFILE_OPENCLAW_NODE_0_14] = {PROFILE_RETRY_BACKOFF, PROFILE_RETRY_BACKOFF,
	                                        PROFILE_RETRY_BACKOFF, PROFILE_RETRY_BACKOFF,
	                                        PROFILE_RETRY_BACKOFF},
	};
	(void)state;

	for (int p = 0; p < PROFILE_COUNT; p++) {
		for (size_t c = 0; c < 5; c++) {
			struct profile_attempt a = refused_by(closes[c]);
			struct profile_retry r;

			a.pending = closes[c] != CP_ERR_PAIRING_REQUIRED;
			r = profile_decide(get((enum profile_id)p), &a, &fresh, NOW, 0);
			if (r.kind != want[p][c])
				fail_msg("%s after %d: %d, want %d", get((enum profile_id)p)->name,
				         cp_err_info(closes[c])->close_code, r.kind, want[p][c]);
		}
	}
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
	        cmocka_unit_test(test_table),
	        cmocka_unit_test(test_backoff_and_jitter),
	        cmocka_unit_test(test_node_host_9_6_cycle),
	        cmocka_unit_test(test_node_host_9_6_refusals),
	        cmocka_unit_test(test_node_host_1_30_exits),
	        cmocka_unit_test(test_openclaw_node),
	        cmocka_unit_test(test_close_matrix),
	};

	return cmocka_run_group_tests_name("profile", tests, NULL, NULL);
}
