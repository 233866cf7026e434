/* run_test.c: the scenario interpreter against the real clawpair-gateway: sockets that never
 * send connect next to device actors, bytes built by macros, and the failure texts and close
 * fields (also of a held connect closed by --compat-6836). Built with stack variables
 * pre-filled with a pattern, so a read of an unset buffer shows in the texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <regex.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "scenario.h"
#include "spawn.h"

#define TOKEN "scenario-run-token"

struct env {
	struct spawned gw;
	char state[64];
};

static int start_gateway(void **state, const char *const *extra)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e)
		return -1;
	if (spawn_gateway(TOKEN, e->state, extra, &e->gw) < 0) {
		fprintf(stderr, "could not start %s\n", build_path("server/clawpair-gateway"));
		free(e);
		return -1;
	}
	*state = e;
	return 0;
}

static int setup_reference(void **state)
{
	return start_gateway(state, NULL);
}

static int setup_compat(void **state)
{
	static const char *const extra[] = {"--compat-6836", NULL};

	return start_gateway(state, extra);
}

static int teardown(void **state)
{
	struct env *e = *state;
	int st = spawn_stop(&e->gw, under_valgrind() ? 50000 : 5000);

	remove_tree(e->state);
	free(e);
	return st == 0 ? 0 : -1;
}

static void assert_matches(const char *text, const char *ere)
{
	regex_t re;
	int rc;

	assert_int_equal(regcomp(&re, ere, REG_EXTENDED | REG_NOSUB), 0);
	rc = regexec(&re, text ? text : "", 0, NULL, 0);
	regfree(&re);
	if (rc != 0)
		fail_msg("'%s' does not match /%s/", text ? text : "(null)", ere);
}

/* Runs scenario text against the gateway in state; r must be finished by the caller. */
static struct scenario *run(void **state, const char *text, struct scenario_result *r)
{
	static const struct scenario_number numbers[] = {{"pause_ms", 300}};
	static const struct scenario_parse_opts o = {.numbers = numbers, .n_numbers = 1};
	struct env *e = *state;
	char err[256] = "";
	unsigned xff = 2;
	struct scenario *s = scenario_parse_with(text, &o, err, sizeof(err));
	struct scenario_env env = {.url = e->gw.url,
	                           .token = TOKEN,
	                           .xff_counter = &xff,
	                           .timeout_scale = under_valgrind() ? 10 : 1};

	if (!s)
		fail_msg("parse: %s", err);
	assert_int_equal(scenario_run(s, &env, r), 0);
	return s;
}

/* the JSON result agrees with the struct on the close */
static void assert_close_json(const struct scenario *s, const struct scenario_result *r)
{
	char *json = scenario_result_json(s, r);
	cJSON *j = cJSON_Parse(json);

	assert_non_null(j);
	assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "closeCode")),
	                 r->close_code);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "closeReason")),
	                    r->close_reason);
	assert_int_equal((long)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "closeMs")),
	                 r->close_ms);
	cJSON_Delete(j);
	free(json);
}

static const char *log_text(const struct scenario_result *r, const char *actor,
                            enum scenario_dir dir, const char *prefix)
{
	for (size_t i = 0; i < r->n_log; i++) {
		if (!strcmp(r->log[i].actor, actor) && r->log[i].dir == dir &&
		    !strncmp(r->log[i].text, prefix, strlen(prefix)))
			return r->log[i].text;
	}
	return NULL;
}

/* A connect that wants connect.pending matching a payload gets an error res and a 1008 close:
 * "actual" is the frame and the close, with nothing after it (no matcher ran, so there is no
 * mismatch reason to append). */
static void test_pending_matcher_closed(void **state)
{
	struct scenario_result r;
	struct scenario *s = run(state,
	                         "{\"id\":\"t/HOLD-1/pending-matcher\",\"actors\":{\"n1\":"
	                         "{\"role\":\"node\",\"remote\":true}},\"steps\":["
	                         "{\"actor\":\"n1\",\"do\":\"connect\",\"expect\":{\"pending\":"
	                         "{\"requestId\":{\"$type\":\"string\"}}}}]}",
	                         &r);
	char *json;
	cJSON *j;

	assert_int_equal(r.verdict, SCENARIO_FAIL);
	assert_int_equal(r.failed_step, 0);
	assert_string_equal(r.actor, "n1");
	assert_string_equal(
	        r.expected,
	        "event connect.pending matching {\"requestId\":{\"$type\":\"string\"}}");
	assert_matches(r.actual,
	               "^\\{\"type\":\"res\",\"id\":\"c1\",\"ok\":false,.*\"PAIRING_REQUIRED\""
	               ".*\\}, then closed 1008 'pairing required' [0-9]+ ms after connect$");
	assert_int_equal(r.close_code, 1008);
	assert_string_equal(r.close_reason, "pairing required");
	assert_true(r.close_ms >= 0 && r.close_ms <= r.ms_since_connect);
	assert_close_json(s, &r);
	json = scenario_result_json(s, &r);
	j = cJSON_Parse(json);
	assert_non_null(j);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "actual")), r.actual);
	cJSON_Delete(j);
	free(json);
	scenario_result_finish(&r);
	scenario_destroy(s);
}

/* A hello-ok that lacks an expected field: "actual" names the JSON path first, so a report that
 * cuts the long frame still says where it differs. */
static void test_hello_mismatch_names_path(void **state)
{
	struct scenario_result r;
	struct scenario *s = run(state,
	                         "{\"id\":\"t/WIRE-13/hello-path\",\"actors\":{\"op\":"
	                         "{\"role\":\"operator\"}},\"steps\":["
	                         "{\"actor\":\"op\",\"do\":\"connect\",\"expect\":{\"hello-ok\":"
	                         "{\"server\":{\"bogus\":\"x\"}}}}]}",
	                         &r);

	assert_int_equal(r.verdict, SCENARIO_FAIL);
	assert_int_equal(r.failed_step, 0);
	assert_matches(r.actual, "^payload at /server/bogus: missing \\(expected \"x\"\\), in "
	                         "\\{\"type\":\"res\",\"id\":\"c1\",\"ok\":true,");
	scenario_result_finish(&r);
	scenario_destroy(s);
}

/* A device-less socket that never sends connect, in the same scenario as a held node and an
 * operator: it sees the challenge, sends bytes with a NUL and is closed; the others go on. */
static void test_open_next_to_devices(void **state)
{
	struct scenario_result r;
	struct scenario *s = run(
	        state,
	        "{\"id\":\"t/ROBUST-1/open-mixed\",\"actors\":{"
	        "\"op\":{\"role\":\"operator\",\"scopes\":[\"operator.pairing\"]},"
	        "\"n1\":{\"role\":\"node\",\"remote\":true},\"x\":{\"role\":\"operator\"}},"
	        "\"steps\":["
	        "{\"actor\":\"op\",\"do\":\"connect\",\"expect\":\"hello-ok\"},"
	        "{\"actor\":\"n1\",\"do\":\"connect\",\"expect\":\"pending\","
	        "\"capture\":{\"rid\":\"payload.requestId\"}},"
	        "{\"actor\":\"x\",\"do\":\"open\"},"
	        "{\"actor\":\"x\",\"do\":\"expect-event\",\"event\":\"connect.challenge\","
	        "\"match\":{\"seq\":{\"$absent\":true}}},"
	        "{\"actor\":\"x\",\"do\":\"send\",\"text\":{\"$concat\":["
	        "\"{\\\"type\\\":\\\"req\\\",\",{\"$hex\":\"00\"},"
	        "\"\\\"id\\\":\\\"${rid}\\\"}\"]}},"
	        "{\"actor\":\"x\",\"do\":\"expect-close\",\"code\":1008,"
	        "\"reason\":\"invalid request frame\"},"
	        "{\"do\":\"sleep\",\"ms\":\"${conf.pause_ms}\"},"
	        "{\"actor\":\"n1\",\"do\":\"expect-open\",\"ms\":10},"
	        "{\"actor\":\"op\",\"do\":\"call\",\"method\":\"device.pair.list\","
	        "\"expect\":{\"ok\":true,\"payload\":{\"pending\":[{\"requestId\":\"${rid}\"}]}}}"
	        "]}",
	        &r);

	if (r.verdict != SCENARIO_PASS)
		fail_msg("%s", r.message ? r.message : "not a pass");
	assert_int_equal(r.n_steps, 9);
	/* the sleep took its number from ${conf.pause_ms} */
	assert_true(r.steps[6].ms >= 300);
	/* the bytes went out as built; the log shows the text up to the NUL */
	assert_non_null(log_text(&r, "x", SCENARIO_DIR_OUT, "{\"type\":\"req\","));
	assert_non_null(log_text(&r, "x", SCENARIO_DIR_NOTE, "open ws://"));
	assert_non_null(log_text(&r, "x", SCENARIO_DIR_CLOSE, "1008 invalid request frame"));
	scenario_result_finish(&r);
	scenario_destroy(s);
}

/* A failure on a socket that only opened: the close is "after open", with its own time. */
static void test_open_failure_fields(void **state)
{
	struct scenario_result r;
	struct scenario *s =
	        run(state,
	            "{\"id\":\"t/WIRE-1/open-fail\",\"actors\":{\"x\":{\"role\":\"operator\"}},"
	            "\"steps\":[{\"actor\":\"x\",\"do\":\"open\"},"
	            "{\"actor\":\"x\",\"do\":\"send\",\"text\":{\"$hex\":\"7b00\"},"
	            "\"binary\":true},"
	            "{\"actor\":\"x\",\"do\":\"expect-close\"},"
	            "{\"actor\":\"x\",\"do\":\"sleep\",\"ms\":100},"
	            "{\"actor\":\"x\",\"do\":\"expect-close\",\"code\":4008}]}",
	            &r);

	assert_int_equal(r.verdict, SCENARIO_FAIL);
	assert_int_equal(r.failed_step, 4);
	assert_string_equal(r.expected, "close with code 4008");
	assert_matches(r.actual, "^closed 1008 'invalid request frame' [0-9]+ ms after open$");
	assert_int_equal(r.close_code, 1008);
	assert_string_equal(r.close_reason, "invalid request frame");
	assert_true(r.close_ms >= 0);
	/* the close came before the sleep, and so at least 100 ms before the failure was noticed */
	assert_true(r.ms_since_connect >= r.close_ms + 100);
	assert_non_null(log_text(&r, "x", SCENARIO_DIR_OUT, "(binary message)"));
	assert_close_json(s, &r);
	scenario_result_finish(&r);
	scenario_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_open_next_to_devices, setup_reference,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_open_failure_fields, setup_reference,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_pending_matcher_closed, setup_compat,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_hello_mismatch_names_path, setup_reference,
	                                        teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
