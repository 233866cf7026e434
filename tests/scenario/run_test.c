/* run_test.c: the scenario interpreter against the real clawpair-gateway: failure texts and
 * close fields of a held connect that is closed instead (--compat-6836). Built with stack
 * variables pre-filled with a pattern, so a read of an unset buffer shows in the texts. */
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
	struct env *e = *state;
	char err[256] = "";
	unsigned xff = 2;
	struct scenario *s = scenario_parse(text, err, sizeof(err));
	struct scenario_env env = {.url = e->gw.url,
	                           .token = TOKEN,
	                           .xff_counter = &xff,
	                           .timeout_scale = under_valgrind() ? 10 : 1};

	if (!s)
		fail_msg("parse: %s", err);
	assert_int_equal(scenario_run(s, &env, r), 0);
	return s;
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
	json = scenario_result_json(s, &r);
	j = cJSON_Parse(json);
	assert_non_null(j);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "actual")), r.actual);
	cJSON_Delete(j);
	free(json);
	scenario_result_finish(&r);
	scenario_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_pending_matcher_closed, setup_compat,
	                                        teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
