/* scenario_test.c: the scenario parser, SKIP decisions, and the node's connect params and
 * signatures (no network). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "authpayload.h"
#include "identity.h"
#include "matcher.h"
#include "node.h"
#include "scenario.h"

static const char *good =
        "{\n"
        "  // comments are allowed\n"
        "  \"id\": \"hold/HOLD-1/no-close\", \"title\": \"t\", \"requirement\": \"HOLD-1\",\n"
        "  \"level\": \"MUST\", \"sentence\": \"s\", \"diagnose\": \"hold-open\",\n"
        "  \"timeout_ms\": 1234, \"needs\": [\"remote\"],\n"
        "  \"actors\": {\n"
        "    \"op\": {\"role\": \"operator\", \"scopes\": [\"operator.pairing\"]},\n"
        "    \"n1\": {\"role\": \"node\", \"remote\": true, \"identity\": \"fresh\"},\n"
        "    \"n1b\": {\"role\": \"node\", \"remote\": true, \"identity\": \"same-as:n1\"}\n"
        "  },\n"
        "  \"steps\": [\n"
        "    {\"actor\": \"op\", \"do\": \"connect\", \"expect\": \"hello-ok\"},\n"
        "    {\"actor\": \"n1\", \"do\": \"connect\", \"expect\": \"pending\",\n"
        "     \"capture\": {\"rid\": \"payload.requestId\"}},\n"
        "    {\"actor\": \"op\", \"do\": \"call\", \"method\": \"node.pair.list\", \"params\": {},\n"
        "     \"expect\": {\"ok\": true, \"payload\": {\"pending\": [{\"requestId\": "
        "\"${rid}\"}]}}},\n"
        "    {\"actor\": \"n1\", \"do\": \"expect-open\", \"ms\": 1500},\n"
        "    {\"actor\": \"n1b\", \"do\": \"connect\", \"sig\": \"v3\", \"nonce\": \"wrong\",\n"
        "     \"expect\": {\"error\": {\"code\": \"INVALID_REQUEST\"}, \"close\": {\"code\": 1008}}},\n"
        "    {\"actor\": \"n1\", \"do\": \"expect-close\", \"code\": 4409},\n"
        "    {\"actor\": \"op\", \"do\": \"expect-event\", \"event\": \"device.pair.resolved\",\n"
        "     \"payload\": {\"requestId\": \"${rid}\"}},\n"
        "    {\"actor\": \"op\", \"do\": \"expect-no-event\", \"event\": \"tick\", \"ms\": 10},\n"
        "    {\"actor\": \"op\", \"do\": \"send\", \"text\": \"nope\", \"binary\": true},\n"
        "    {\"actor\": \"op\", \"do\": \"expect-res\", \"id\": \"x\", \"expect\": {\"ok\": false}},\n"
        "    {\"do\": \"sleep\", \"ms\": 5},\n"
        "    {\"actor\": \"n1\", \"do\": \"disconnect\", \"code\": 0}\n"
        "  ]\n"
        "}\n";

static void test_parse_good(void **state)
{
	char err[256] = "";
	struct scenario *s = scenario_parse(good, err, sizeof(err));
	const struct scenario_meta *m;
	(void)state;

	if (!s)
		fail_msg("parse: %s", err);
	m = scenario_get_meta(s);
	assert_string_equal(m->id, "hold/HOLD-1/no-close");
	assert_string_equal(m->requirement, "HOLD-1");
	assert_string_equal(m->level, "MUST");
	assert_string_equal(m->diagnose, "hold-open");
	assert_int_equal(m->timeout_ms, 1234);
	assert_int_equal(m->n_needs, 1);
	assert_string_equal(m->needs[0], "remote");
	assert_int_equal(m->n_steps, 12);
	assert_int_equal(m->n_actors, 3);
	scenario_destroy(s);
	scenario_destroy(NULL);
}

struct bad_case {
	const char *text;
	const char *needle;
};

static void test_parse_errors(void **state)
{
	static const struct bad_case cases[] = {
	        {"not json", "not a JSON object"},
	        {"{\"actors\":{\"a\":{\"role\":\"node\"}},\"steps\":[{\"do\":\"sleep\",\"ms\":1}]}",
	         "\"id\""},
	        {"{\"id\":\"x\",\"bogus\":1,\"actors\":{},\"steps\":[]}", "unknown key \"bogus\""},
	        {"{\"id\":\"x\",\"actors\":{},\"steps\":[]}", "actors"},
	        {"{\"id\":\"x\",\"actors\":{\"a\":{\"role\":\"admin\"}},\"steps\":[]}", "role"},
	        {"{\"id\":\"x\",\"actors\":{\"a\":{\"role\":\"node\"}},\"steps\":[]}", "steps"},
	        {"{\"id\":\"x\",\"actors\":{\"a\":{\"role\":\"node\"}},"
	         "\"steps\":[{\"actor\":\"a\",\"do\":\"dance\"}]}",
	         "unknown \"do\": dance"},
	        {"{\"id\":\"x\",\"actors\":{\"a\":{\"role\":\"node\"}},"
	         "\"steps\":[{\"actor\":\"b\",\"do\":\"connect\"}]}",
	         "\"actor\" must name an actor"},
	        {"{\"id\":\"x\",\"actors\":{\"a\":{\"role\":\"node\"}},"
	         "\"steps\":[{\"actor\":\"a\",\"do\":\"connect\",\"expct\":\"pending\"}]}",
	         "unknown key \"expct\""},
	        {"{\"id\":\"x\",\"actors\":{\"a\":{\"role\":\"node\"}},"
	         "\"steps\":[{\"actor\":\"a\",\"do\":\"connect\",\"expect\":\"maybe\"}]}",
	         "\"expect\" must be"},
	        {"{\"id\":\"x\",\"actors\":{\"a\":{\"role\":\"node\"}},"
	         "\"steps\":[{\"actor\":\"a\",\"do\":\"connect\",\"sig\":\"v9\"}]}",
	         "\"sig\""},
	        {"{\"id\":\"x\",\"actors\":{\"a\":{\"role\":\"node\",\"identity\":\"same-as:zz\"}},"
	         "\"steps\":[{\"do\":\"sleep\",\"ms\":1}]}",
	         "same-as:zz"},
	        {"{\"id\":\"x\",\"actors\":{\"a\":{\"role\":\"node\"}},"
	         "\"steps\":[{\"actor\":\"a\",\"do\":\"call\"}]}",
	         "\"method\" is required"},
	        {"{\"id\":\"x\",\"actors\":{\"a\":{\"role\":\"node\"}},"
	         "\"steps\":[{\"actor\":\"a\",\"do\":\"expect-event\"}]}",
	         "\"event\" is required"},
	        {"{\"id\":\"x\",\"actors\":{\"a\":{\"role\":\"node\"}},"
	         "\"steps\":[{\"actor\":\"a\",\"do\":\"sleep\",\"ms\":-1}]}",
	         "\"ms\""},
	        {"{\"id\":\"x\",\"needs\":[\"magic\"],\"actors\":{\"a\":{\"role\":\"node\"}},"
	         "\"steps\":[{\"do\":\"sleep\",\"ms\":1}]}",
	         "needs"},
	        {"{\"id\":\"x\",\"actors\":{\"a\":{\"role\":\"node\",\"scopes\":[1]}},"
	         "\"steps\":[{\"do\":\"sleep\",\"ms\":1}]}",
	         "scopes"},
	        {"{\"id\":\"x\",\"actors\":{\"a\":{\"role\":\"node\"}},"
	         "\"steps\":[{\"actor\":\"a\",\"do\":\"send\"}]}",
	         "\"text\" or \"frame\""},
	        {"{\"id\":\"x\",\"actors\":{\"a\":{\"role\":\"node\"}},"
	         "\"steps\":[{\"actor\":\"a\",\"do\":\"connect\",\"capture\":{\"v\":1}}]}",
	         "capture"},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256] = "";
		struct scenario *s = scenario_parse(cases[i].text, err, sizeof(err));

		if (s)
			fail_msg("case %zu parsed but should not", i);
		if (!strstr(err, cases[i].needle))
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].needle);
	}
	{
		char err[256];

		assert_null(scenario_load("/nonexistent/x.json", err, sizeof(err)));
		assert_non_null(strstr(err, "/nonexistent/x.json"));
	}
}

/* What the conformance runner adds: open steps, byte macros, its needs and numbers. */
static const char *extended =
        "{\"id\":\"robust/ROBUST-1/x\",\"needs\":[\"short-ttl\"],\n"
        " \"actors\":{\"x\":{\"role\":\"operator\"},\"n\":{\"role\":\"node\",\"remote\":true}},\n"
        " \"steps\":[\n"
        "  {\"actor\":\"x\",\"do\":\"open\",\"xff\":\"10.77.0.9\"},\n"
        "  {\"actor\":\"x\",\"do\":\"send\",\"text\":{\"$concat\":[\"{\",{\"$hex\":\"00ff\"},"
        "{\"$repeat\":\"a\",\"count\":3}]}},\n"
        "  {\"actor\":\"n\",\"do\":\"connect\",\"override\":{\"client\":{\"displayName\":"
        "{\"$repeat\":\"y\",\"count\":1000}}},\"expect\":\"pending\"},\n"
        "  {\"actor\":\"x\",\"do\":\"expect-close\",\"code\":1008,\"timeout_ms\":\"${conf.wait}\"},\n"
        "  {\"do\":\"sleep\",\"ms\":\"${conf.wait}\"}\n"
        " ]}";

static void test_parse_runner_extensions(void **state)
{
	static const char *const extra_needs[] = {"short-ttl", NULL};
	static const struct scenario_number numbers[] = {{"wait", 1500}};
	struct scenario_parse_opts o = {
	        .extra_needs = extra_needs, .numbers = numbers, .n_numbers = 1};
	char err[256] = "";
	struct scenario *s = scenario_parse_with(extended, &o, err, sizeof(err));
	(void)state;

	if (!s)
		fail_msg("parse: %s", err);
	assert_int_equal(scenario_get_meta(s)->n_steps, 5);
	assert_int_equal(scenario_get_meta(s)->n_needs, 1);
	assert_string_equal(scenario_get_meta(s)->needs[0], "short-ttl");
	scenario_destroy(s);
	/* without the runner's numbers and needs the same file is refused, with the reason */
	assert_null(scenario_parse(extended, err, sizeof(err)));
	assert_non_null(strstr(err, "unknown runner variable ${conf.wait}"));
	o.extra_needs = NULL;
	assert_null(scenario_parse_with(extended, &o, err, sizeof(err)));
	assert_non_null(strstr(err, "needs"));
}

static void test_parse_macro_errors(void **state)
{
	static const struct bad_case cases[] = {
	        {"{\"actor\":\"a\",\"do\":\"send\",\"text\":{\"$hex\":\"0\"}}", "even number"},
	        {"{\"actor\":\"a\",\"do\":\"send\",\"text\":{\"$hex\":\"zz\"}}", "not a hex digit"},
	        {"{\"actor\":\"a\",\"do\":\"send\",\"text\":{\"$repeat\":\"ab\",\"count\":9e9}}",
	         "larger than"},
	        {"{\"actor\":\"a\",\"do\":\"send\",\"text\":{\"$concat\":\"x\"}}",
	         "needs an array"},
	        {"{\"actor\":\"a\",\"do\":\"send\",\"text\":5}", "\"text\" must be a string or"},
	        /* a NUL byte cannot live in a JSON string: only a send step's text holds one */
	        {"{\"actor\":\"a\",\"do\":\"call\",\"method\":\"m\",\"params\":{\"$hex\":\"00\"}}",
	         "NUL byte"},
	        {"{\"actor\":\"a\",\"do\":\"expect-open\",\"ms\":\"${conf.ms\"}",
	         "bad runner variable"},
	        {"{\"actor\":\"a\",\"do\":\"open\",\"expect\":\"hello-ok\"}",
	         "unknown key \"expect\""},
	        {"{\"do\":\"open\"}", "\"actor\" must name an actor"},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[512], err[256] = "";
		struct scenario *s;

		snprintf(text, sizeof(text),
		         "{\"id\":\"m\",\"actors\":{\"a\":{\"role\":\"operator\"}},\"steps\":[%s]}",
		         cases[i].text);
		s = scenario_parse(text, err, sizeof(err));
		if (s)
			fail_msg("case %zu parsed but should not", i);
		if (!strstr(err, cases[i].needle))
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].needle);
	}
}

static void test_skips_without_network(void **state)
{
	char err[256];
	struct scenario *s = scenario_parse(good, err, sizeof(err));
	struct scenario_env env = {
	        .url = "ws://127.0.0.1:9", .token = "T", .remote_via = SCENARIO_REMOTE_NONE};
	struct scenario_result r;
	(void)state;

	assert_non_null(s);
	assert_int_equal(scenario_run(s, &env, &r), 0);
	assert_int_equal(r.verdict, SCENARIO_SKIP);
	assert_non_null(strstr(r.message, "remote"));
	scenario_result_finish(&r);
	scenario_destroy(s);

	s = scenario_parse("{\"id\":\"r\",\"actors\":{\"a\":{\"role\":\"node\"}},"
	                   "\"steps\":[{\"do\":\"restart\"}]}",
	                   err, sizeof(err));
	assert_non_null(s);
	env.remote_via = SCENARIO_REMOTE_XFF;
	assert_int_equal(scenario_run(s, &env, &r), 0);
	assert_int_equal(r.verdict, SCENARIO_SKIP);
	assert_non_null(strstr(r.message, "restart"));
	scenario_result_finish(&r);
	scenario_destroy(s);
}

static void test_unreachable_and_unknown_var(void **state)
{
	char err[256];
	struct scenario *s;
	struct scenario_env env = {.url = "ws://127.0.0.1:1", .token = "T"};
	struct scenario_result r;
	char *json;
	(void)state;

	s = scenario_parse(
	        "{\"id\":\"u\",\"actors\":{\"a\":{\"role\":\"node\"}},"
	        "\"steps\":[{\"actor\":\"a\",\"do\":\"connect\",\"expect\":\"hello-ok\"}]}",
	        err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(scenario_run(s, &env, &r), 0);
	assert_int_equal(r.verdict, SCENARIO_FAIL);
	assert_int_equal(r.failed_step, 0);
	assert_string_equal(r.actor, "a");
	assert_non_null(strstr(r.actual, "connection failed"));
	json = scenario_result_json(s, &r);
	assert_non_null(strstr(json, "\"verdict\":\"fail\""));
	free(json);
	scenario_result_finish(&r);
	scenario_destroy(s);

	s = scenario_parse("{\"id\":\"v\",\"actors\":{\"a\":{\"role\":\"node\"}},"
	                   "\"steps\":[{\"do\":\"sleep\",\"ms\":1},"
	                   "{\"actor\":\"a\",\"do\":\"send\",\"text\":\"${nope}\"}]}",
	                   err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(scenario_run(s, &env, &r), 0);
	assert_int_equal(r.verdict, SCENARIO_ERROR);
	assert_int_equal(r.failed_step, 1);
	assert_non_null(strstr(r.message, "${nope}"));
	scenario_result_finish(&r);
	scenario_destroy(s);
}

static const char *str(const cJSON *o, const char *path)
{
	return cJSON_GetStringValue(matcher_path(o, path));
}

static void test_android_connect_params(void **state)
{
	struct identity id;
	struct connect_spec spec;
	cJSON *p;
	const char *nonce = "473a3502-c059-4056-a0d6-15a3a14fc2f4";
	struct authpayload_params ap = {0};
	char *payload;
	static const char *const allowed[] = {"minProtocol", "maxProtocol", "client",   "role",
	                                      "scopes",      "caps",        "commands", "auth",
	                                      "locale",      "userAgent",   "device",   NULL};
	const cJSON *k;
	(void)state;

	assert_int_equal(identity_global_init(), 0);
	assert_int_equal(identity_generate(&id), 0);
	connect_spec_android(&spec);
	spec.identity = &id;
	spec.token = "T";
	p = connect_params_build(&spec, nonce, 1795479897925);
	assert_non_null(p);
	cJSON_ArrayForEach(k, p)
	{
		bool ok = false;

		for (size_t i = 0; allowed[i]; i++)
			ok = ok || !strcmp(allowed[i], k->string);
		if (!ok)
			fail_msg("unexpected connect key %s", k->string);
	}
	assert_string_equal(str(p, "client.id"), "openclaw-android");
	assert_string_equal(str(p, "client.mode"), "node");
	assert_string_equal(str(p, "client.platform"), "android");
	assert_string_equal(str(p, "client.deviceFamily"), "Android");
	assert_string_equal(str(p, "client.instanceId"), id.device_id);
	assert_string_equal(str(p, "role"), "node");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(p, "scopes")), 0);
	assert_int_equal((int)cJSON_GetNumberValue(matcher_path(p, "minProtocol")), 3);
	assert_int_equal((int)cJSON_GetNumberValue(matcher_path(p, "maxProtocol")), 4);
	assert_string_equal(str(p, "auth.token"), "T");
	assert_string_equal(str(p, "device.id"), id.device_id);
	assert_string_equal(str(p, "device.publicKey"), id.pk_b64);
	assert_string_equal(str(p, "device.nonce"), nonce);
	assert_true(cJSON_GetNumberValue(matcher_path(p, "device.signedAt")) == 1795479897925.0);

	ap.device_id = id.device_id;
	ap.client_id = "openclaw-android";
	ap.client_mode = "node";
	ap.role = "node";
	ap.signed_at_ms = 1795479897925;
	ap.token = "T";
	ap.nonce = nonce;
	payload = authpayload_build(AUTHPAYLOAD_V2, &ap);
	assert_true(identity_verify(id.pk, payload, str(p, "device.signature")));
	free(payload);
	cJSON_Delete(p);

	/* v3 signs platform and deviceFamily, lowercased */
	spec.sig = CONNECT_SIG_V3;
	p = connect_params_build(&spec, nonce, 1795479897925);
	ap.platform = "android";
	ap.device_family = "android";
	payload = authpayload_build(AUTHPAYLOAD_V3, &ap);
	assert_true(identity_verify(id.pk, payload, str(p, "device.signature")));
	free(payload);
	cJSON_Delete(p);

	/* bad: well-formed but over other bytes */
	spec.sig = CONNECT_SIG_BAD;
	p = connect_params_build(&spec, nonce, 1795479897925);
	payload = authpayload_build(AUTHPAYLOAD_V2, &ap);
	assert_int_equal(strlen(str(p, "device.signature")), IDENTITY_SIG_B64_LEN);
	assert_false(identity_verify(id.pk, payload, str(p, "device.signature")));
	free(payload);
	cJSON_Delete(p);

	/* none / nonce omitted / wrong nonce */
	spec.sig = CONNECT_SIG_NONE;
	spec.nonce = CONNECT_NONCE_NONE;
	p = connect_params_build(&spec, nonce, 1);
	assert_null(matcher_path(p, "device.signature"));
	assert_null(matcher_path(p, "device.nonce"));
	cJSON_Delete(p);
	spec.sig = CONNECT_SIG_V2;
	spec.nonce = CONNECT_NONCE_WRONG;
	p = connect_params_build(&spec, nonce, 1);
	assert_string_not_equal(str(p, "device.nonce"), nonce);
	assert_int_equal(strlen(str(p, "device.nonce")), 36);
	cJSON_Delete(p);

	/* a device-less operator */
	connect_spec_operator(&spec);
	spec.token = "T";
	p = connect_params_build(&spec, nonce, 1);
	assert_null(matcher_path(p, "device"));
	assert_null(matcher_path(p, "scopes"));
	assert_string_equal(str(p, "role"), "operator");
	cJSON_Delete(p);
}

static void test_token_store(void **state)
{
	char dir[] = "/tmp/clawpair-fn-tok-XXXXXX", path[256];
	char *t;
	(void)state;

	assert_non_null(mkdtemp(dir));
	node_token_path("/a/b/identity.json", path, sizeof(path));
	assert_string_equal(path, "/a/b/identity.tokens.json");
	snprintf(path, sizeof(path), "%s/identity.tokens.json", dir);
	assert_null(node_token_load(path, "dev", "ws://x:1"));
	assert_int_equal(node_token_save(path, "dev", "ws://x:1", "tok1"), 0);
	assert_int_equal(node_token_save(path, "dev", "ws://y:2", "tok2"), 0);
	t = node_token_load(path, "dev", "ws://x:1");
	assert_string_equal(t, "tok1");
	free(t);
	assert_null(node_token_load(path, "other-device", "ws://x:1"));
	assert_int_equal(node_token_save(path, "dev", "ws://x:1", NULL), 0);
	assert_null(node_token_load(path, "dev", "ws://x:1"));
	t = node_token_load(path, "dev", "ws://y:2");
	assert_string_equal(t, "tok2");
	free(t);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_good),
	        cmocka_unit_test(test_parse_errors),
	        cmocka_unit_test(test_parse_runner_extensions),
	        cmocka_unit_test(test_parse_macro_errors),
	        cmocka_unit_test(test_skips_without_network),
	        cmocka_unit_test(test_unreachable_and_unknown_var),
	        cmocka_unit_test(test_android_connect_params),
	        cmocka_unit_test(test_token_store),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
