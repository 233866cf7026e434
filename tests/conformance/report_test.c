/* report_test.c: the conformance reports from fabricated results: escaping, counts, verdicts,
 * exit status, case selection, expectations and the #6836 diagnoses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conformance.h"
#include "diagnose.h"
#include "redact.h"

static const char *const hostile = "<script>alert(\"x\")</script> & 'q' \xff\xfe end";

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

struct fixture {
	struct conf_case cases[3];
	struct conf_result results[3];
	struct conf_run run;
	struct conf_property props[2];
	char dir[64];
};

static void make_case(struct conf_case *c, const char *id, const char *group, const char *level)
{
	memset(c, 0, sizeof *c);
	c->id = strdup(id);
	c->title = strdup("Title with <b>markup</b> & \"quotes\"");
	c->requirement = strdup("HOLD-1");
	c->level = strdup(level);
	c->sentence = strdup("The gateway MUST hold the socket open.");
	c->group = strdup(group);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof *fx);

	assert_non_null(fx);
	fx->props[0] = (struct conf_property){"--remote-via", "xff:10.77.0.2"};
	fx->props[1] = (struct conf_property){"--cases", "hold <robust>"};
	make_case(&fx->cases[0], "hold/HOLD-1/no-close-while-pending", "hold", "MUST");
	make_case(&fx->cases[1], "robust/ROBUST-1/not-json", "robust", "MUST");
	make_case(&fx->cases[2], "hold/HOLD-2/ticks", "hold", "SHOULD");
	for (int i = 0; i < 3; i++) {
		fx->results[i].c = &fx->cases[i];
		fx->results[i].failed_step = -1;
	}
	fx->results[0].verdict = CONF_FAIL;
	fx->results[0].close_code = 1008;
	fx->results[0].failed_step = 1;
	fx->results[0].message = strdup("closed with 1008 'pairing required' 13 ms after connect");
	fx->results[0].expected = strdup("event connect.pending");
	fx->results[0].actual = strdup(hostile);
	assert_int_equal(conf_result_add_frame(&fx->results[0], hostile), 0);
	assert_int_equal(
	        conf_result_add_frame(&fx->results[0], "{\"type\":\"req\",\"id\":\"a&b\"}"), 0);
	fx->results[1].verdict = CONF_PASS;
	fx->results[1].duration_ms = 12;
	fx->results[2].verdict = CONF_NON_STRICT;
	fx->results[2].message = strdup("no tick");
	fx->results[0].started_ms = 1767225600000ull; /* 2026-01-01T00:00:00 */
	fx->results[1].started_ms = 1767225661000ull; /* a minute and a second later */
	fx->results[2].started_ms = 1767225602000ull;
	fx->run.props = fx->props;
	fx->run.n_props = 2;
	fx->run.gateway_url = "ws://127.0.0.1:1/<x>";
	fx->run.started = "2026-01-01T00:00:00Z";
	fx->run.tool_version = "test";
	fx->run.results = fx->results;
	fx->run.n = 3;
	conf_run_count(&fx->run);
	snprintf(fx->dir, sizeof fx->dir, "/tmp/cp-report-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	for (int i = 0; i < 3; i++) {
		conf_result_finish(&fx->results[i]);
		free(fx->cases[i].id);
		free(fx->cases[i].title);
		free(fx->cases[i].requirement);
		free(fx->cases[i].level);
		free(fx->cases[i].sentence);
		free(fx->cases[i].group);
	}
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static void test_counts_and_exit(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(fx->run.counts[CONF_FAIL], 1);
	assert_int_equal(fx->run.counts[CONF_PASS], 1);
	assert_int_equal(fx->run.counts[CONF_NON_STRICT], 1);
	assert_int_equal(conf_run_exit_status(&fx->run), 1);
	fx->results[0].verdict = CONF_XFAIL;
	conf_run_count(&fx->run);
	assert_int_equal(conf_run_exit_status(&fx->run), 0);
	fx->run.strict = true;
	assert_int_equal(conf_run_exit_status(&fx->run), 1);
	fx->run.strict = false;
	fx->results[0].verdict = CONF_FAIL;
	conf_run_count(&fx->run);
}

static void test_json(void **state)
{
	struct fixture *fx = *state;
	char path[128], *text;
	cJSON *root, *c0, *frames;

	snprintf(path, sizeof path, "%s/r.json", fx->dir);
	assert_int_equal(report_json_write(&fx->run, path), 0);
	text = slurp(path);
	/* invalid UTF-8 from a frame must not leak into the report */
	assert_null(strstr(text, "\xff"));
	root = cJSON_Parse(text);
	assert_non_null(root);
	assert_int_equal(
	        cJSON_GetObjectItem(cJSON_GetObjectItem(root, "summary"), "FAIL")->valueint, 1);
	c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "cases"), 0);
	assert_string_equal(cJSON_GetObjectItem(c0, "verdict")->valuestring, "FAIL");
	assert_int_equal(cJSON_GetObjectItem(c0, "close_code")->valueint, 1008);
	assert_string_equal(cJSON_GetObjectItem(c0, "requirement")->valuestring, "HOLD-1");
	frames = cJSON_GetObjectItem(c0, "frames");
	assert_int_equal(cJSON_GetArraySize(frames), 2);
	assert_non_null(strstr(cJSON_GetArrayItem(frames, 0)->valuestring, "<script>"));
	assert_non_null(strstr(cJSON_GetArrayItem(frames, 0)->valuestring, "\xef\xbf\xbd"));
	cJSON_Delete(root);
	free(text);
}

static void test_junit(void **state)
{
	struct fixture *fx = *state;
	char path[128], *text;

	snprintf(path, sizeof path, "%s/r.xml", fx->dir);
	assert_int_equal(report_junit_write(&fx->run, path), 0);
	text = slurp(path);
	assert_null(strstr(text, "<script>"));
	assert_null(strstr(text, "\xff"));
	assert_non_null(strstr(text, "&lt;script&gt;alert(&quot;x&quot;)"));
	assert_non_null(strstr(text, "<testsuite name=\"hold\" tests=\"2\" failures=\"1\""));
	assert_non_null(strstr(text, "<testsuite name=\"robust\" tests=\"1\" failures=\"0\""));
	assert_non_null(strstr(text, "<failure type=\"FAIL\" message=\"closed with 1008"));
	/* NON-STRICT is not a JUnit failure unless strict */
	assert_null(strstr(text, "<failure type=\"NON-STRICT\""));
	/* skipped= belongs to a testsuite, not to testsuites */
	assert_non_null(strstr(text, "<testsuites name=\"clawpair-conformance\" tests=\"3\" "
	                             "failures=\"1\" errors=\"0\" time="));
	/* each suite: when its first case started, and the run's settings */
	assert_non_null(strstr(text, "<testsuite name=\"hold\" tests=\"2\" failures=\"1\" "
	                             "skipped=\"0\" errors=\"0\" time=\"0.000\" "
	                             "timestamp=\"2026-01-01T00:00:00\">"));
	assert_non_null(strstr(text, "timestamp=\"2026-01-01T00:01:01\">"));
	assert_non_null(
	        strstr(text, "<property name=\"gateway\" value=\"ws://127.0.0.1:1/&lt;x&gt;\"/>"));
	assert_non_null(strstr(text, "<property name=\"runner.version\" value=\"test\"/>"));
	assert_non_null(strstr(text, "<property name=\"--cases\" value=\"hold &lt;robust&gt;\"/>"));
	free(text);
	fx->run.strict = true;
	assert_int_equal(report_junit_write(&fx->run, path), 0);
	text = slurp(path);
	assert_non_null(strstr(text, "<failure type=\"NON-STRICT\""));
	fx->run.strict = false;
	free(text);
}

static void test_html(void **state)
{
	struct fixture *fx = *state;
	char path[128], *text;

	snprintf(path, sizeof path, "%s/r.html", fx->dir);
	assert_int_equal(report_html_write(&fx->run, path), 0);
	text = slurp(path);
	assert_null(strstr(text, "<script>alert"));
	assert_null(strstr(text, "<b>markup</b>"));
	assert_null(strstr(text, "\xff"));
	assert_non_null(strstr(
	        text, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;"));
	/* the filter chips are buttons: Tab reaches them, Enter and Space press them */
	assert_non_null(strstr(text,
	                       "<button type=\"button\" class=\"count\" data-verdict=\"FAIL\" "
	                       "id=\"count-FAIL\" aria-pressed=\"true\" title=\"show or hide "
	                       "FAIL\"><b class=\"n\">1</b>"));
	assert_non_null(strstr(text, "setAttribute('aria-pressed'"));
	/* long words wrap instead of widening the table */
	assert_non_null(strstr(text, "td.msg{min-width:20em;overflow-wrap:anywhere}"));
	assert_non_null(strstr(text, "<code>--cases hold &lt;robust&gt;</code>"));
	assert_non_null(strstr(text, "ws://127.0.0.1:1/&lt;x&gt;"));
	assert_non_null(strstr(text, "<details open>"));
	assert_non_null(strstr(text, "&quot;id&quot;:&quot;a&amp;b&quot;"));
	/* self-contained: nothing loaded from anywhere */
	assert_null(strstr(text, "src="));
	assert_null(strstr(text, "<link"));
	free(text);
}

static struct conf_case case_of(const char *id, const char *req, const char *section)
{
	const char *slash = strchr(id, '/');
	struct conf_case c = {.id = (char *)id,
	                      .requirement = (char *)req,
	                      .section = (char *)section,
	                      .group = strndup(id, slash ? (size_t)(slash - id) : strlen(id))};

	return c;
}

static void test_html_known_failure(void **state)
{
	struct fixture *fx = *state;
	char path[128], *text;

	fx->results[0].verdict = CONF_XFAIL;
	fx->results[0].xfail_reason = strdup("closes with 1008 (#6836)");
	fx->results[1].stale = true;
	fx->results[1].xfail_reason = strdup("was broken once");
	fx->results[1].message = strdup("listed as a known failure but passed (was broken once)");
	conf_run_count(&fx->run);
	snprintf(path, sizeof path, "%s/k.html", fx->dir);
	assert_int_equal(report_html_write(&fx->run, path), 0);
	text = slurp(path);
	/* the reason is in the case's row, not only in its closed details */
	assert_non_null(strstr(text,
	                       "<td class=\"msg\"><span class=\"known\">Known failure: closes "
	                       "with 1008 (#6836)</span>"));
	assert_non_null(strstr(text, "<span class=\"diag\">listed as a known failure but passed"));
	assert_non_null(strstr(text, "id=\"stale\">1 cases are listed as known failures"));
	free(text);
}

static void test_selection(void **state)
{
	const char *inc[] = {"hold", "robust/*/not-*"}, *exc[] = {"hold/HOLD-2/"};
	const char *req[] = {"HOLD-1"}, *sec[] = {"8.3"};
	struct conf_selection sel = {.inc = inc, .ninc = 2, .exc = exc, .nexc = 1};
	struct conf_case notjson = case_of("robust/ROBUST-1/not-json", "ROBUST-1", "8.11"),
	                 array = case_of("robust/ROBUST-1/json-array", "ROBUST-1", "8.11"),
	                 h2 = case_of("hold/HOLD-2/a", "HOLD-2", "8.3"),
	                 h1 = case_of("hold/HOLD-1/x", "HOLD-1", "8.3"),
	                 h10 = case_of("hold/HOLD-10/x", "HOLD-10", "8.3"),
	                 l = case_of("local/LOCAL-1/x", "LOCAL-1", "8.10");

	(void)state;
	assert_true(conf_id_matches("hold/HOLD-1/x", "hold"));
	assert_true(conf_id_matches("hold/HOLD-1/x", "hold/HOLD-1"));
	assert_false(conf_id_matches("hold/HOLD-10/x", "hold/HOLD-1"));
	assert_false(conf_id_matches("holdx/a", "hold"));
	assert_true(conf_id_matches("hold/HOLD-1/x", "hold/*/x"));
	/* a requirement by itself, and not its longer namesakes */
	assert_true(conf_case_matches(&h1, "HOLD-1"));
	assert_false(conf_case_matches(&h10, "HOLD-1"));
	assert_true(conf_case_matches(&h1, "hold"));
	assert_true(conf_case_selected(&notjson, &sel));
	assert_false(conf_case_selected(&array, &sel));
	assert_false(conf_case_selected(&h2, &sel));
	assert_true(conf_case_selected(&array, &(struct conf_selection){0}));
	sel = (struct conf_selection){.inc = req, .ninc = 1};
	assert_true(conf_case_selected(&h1, &sel));
	assert_false(conf_case_selected(&h10, &sel));
	/* a section and its subsections; 8.1 is not 8.10 */
	assert_true(conf_section_matches("8.3", "8.3"));
	assert_true(conf_section_matches("8.3.2", "8.3"));
	assert_true(conf_section_matches("8.3", "\xc2\xa7"
	                                        "8.3"));
	assert_false(conf_section_matches("8.30", "8.3"));
	assert_false(conf_section_matches("8.10", "8.1"));
	assert_true(conf_section_matches("8.10", "8"));
	assert_false(conf_section_matches(NULL, "8"));
	sel = (struct conf_selection){.sec = sec, .nsec = 1};
	assert_true(conf_case_selected(&h2, &sel));
	assert_false(conf_case_selected(&l, &sel));
	/* WIRE-2 before WIRE-10 */
	assert_true(conf_natural_cmp("handshake/WIRE-2/a", "handshake/WIRE-10/a") < 0);
	assert_true(conf_natural_cmp("handshake/WIRE-10/a", "handshake/WIRE-9/z") > 0);
	assert_true(conf_natural_cmp("a/X-1/b", "a/X-1/b") == 0);
	assert_true(conf_natural_cmp("a/X-01/b", "a/X-1/c") < 0);
	assert_true(conf_natural_cmp("a/b", "a/b2") < 0);
	free(notjson.group);
	free(array.group);
	free(h2.group);
	free(h1.group);
	free(h10.group);
	free(l.group);
}

static void test_expectations(void **state)
{
	struct fixture *fx = *state;
	struct conf_expectations e;
	char path[128], err[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/e.tsv", fx->dir);
	f = fopen(path, "w");
	fputs("# comment\nhold/HOLD-1/*\tcloses with 1008\n\nstore\ttwo stores\n", f);
	fclose(f);
	assert_int_equal(conf_expectations_load(path, &e, err, sizeof err), 0);
	{
		struct conf_case a = case_of("hold/HOLD-1/no-close", "HOLD-1", NULL),
		                 b = case_of("store/STORE-2/x", "STORE-2", NULL),
		                 k = case_of("key/KEY-1/x", "KEY-1", NULL);

		assert_string_equal(conf_expectations_find(&e, &a), "closes with 1008");
		assert_string_equal(conf_expectations_find(&e, &b), "two stores");
		assert_null(conf_expectations_find(&e, &k));
		free(a.group);
		free(b.group);
		free(k.group);
	}
	conf_expectations_finish(&e);
	f = fopen(path, "w");
	fputs("{\"expected-fail\":[{\"id\":\"a/B-1/c\",\"reason\":\"r\"}]}", f);
	fclose(f);
	assert_int_equal(conf_expectations_load(path, &e, err, sizeof err), 0);
	{
		struct conf_case c = case_of("a/B-1/c", "B-1", NULL);

		assert_string_equal(conf_expectations_find(&e, &c), "r");
		free(c.group);
	}
	conf_expectations_finish(&e);
	f = fopen(path, "w");
	fputs("{\"expected-fail\":[{\"id\":\"a\"}]}", f);
	fclose(f);
	assert_int_equal(conf_expectations_load(path, &e, err, sizeof err), -1);
	f = fopen(path, "w");
	fputs("no tab here\n", f);
	fclose(f);
	assert_int_equal(conf_expectations_load(path, &e, err, sizeof err), -1);
}

static void test_diagnose(void **state)
{
	cJSON *st = cJSON_Parse("{\"actor\":\"n1\",\"do\":\"connect\",\"expect\":\"pending\"}");
	cJSON *call =
	        cJSON_Parse("{\"actor\":\"op\",\"do\":\"call\",\"method\":\"node.pair.list\"}");
	cJSON *appr =
	        cJSON_Parse("{\"actor\":\"op\",\"do\":\"call\",\"method\":\"node.pair.approve\"}");
	struct conf_failure f = {
	        .step = st,
	        .close_code = 1008,
	        .close_reason = "pairing required",
	        .close_ms = 13,
	        .actual = "{...}, then closed 1008 'pairing required' 13 ms after connect",
	        .ms_since_connect = 540};
	char *d, uuid[40];

	(void)state;
	d = conf_diagnose("hold-open", &f);
	assert_string_equal(d,
	                    "closed with 1008 'pairing required' 13 ms after connect, before any "
	                    "approval: the spec requires the connection to be held open "
	                    "(OpenClaw #6836)");
	free(d);
	/* the close time is a field of the failure, not read back from the text */
	f.actual = "{\"note\":\"closed 1 'x' 99 ms after connect\"}";
	f.close_ms = 7;
	d = conf_diagnose("hold-open", &f);
	assert_non_null(strstr(d, "'pairing required' 7 ms after connect"));
	free(d);
	/* without it, the time the failure was noticed */
	f.close_ms = -1;
	d = conf_diagnose("hold-open", &f);
	assert_non_null(strstr(d, "'pairing required' 540 ms after connect"));
	free(d);
	/* no hint, but the pattern is unmistakable */
	d = conf_diagnose(NULL, &f);
	assert_non_null(d);
	free(d);
	f.step = call;
	f.close_code = 0;
	f.expected =
	        "res matching {\"pending\":[{\"requestId\":\"90ef1c2a-1111-4222-8333-444455556666\"}]}";
	f.actual = "{\"pending\":[]}";
	d = conf_diagnose("unified-list", &f);
	assert_string_equal(d, "node.pair.list lacked requestId 90ef1c2a\xe2\x80\xa6 that "
	                       "device.pair.list shows (OpenClaw #6836: two stores)");
	free(d);
	f.step = appr;
	f.actual = "{\"ok\":false,\"error\":{\"message\":\"unknown requestId\"}}";
	f.sent_request_id = "77aa1c2a-1111-4222-8333-444455556666";
	d = conf_diagnose("unified-list", &f);
	assert_non_null(strstr(d, "node.pair.approve answered 'unknown requestId' for requestId "
	                          "77aa1c2a"));
	free(d);
	/* an ordinary mismatch is not dressed up as #6836 */
	f.actual = "{\"ok\":false,\"error\":{\"message\":\"invalid params\"}}";
	assert_null(conf_diagnose("unified-list", &f));
	assert_true(conf_find_uuid("x 90ef1c2a-1111-4222-8333-444455556666 y", uuid));
	assert_false(conf_find_uuid("90ef1c2a-1111-4222-8333", uuid));
	cJSON_Delete(st);
	cJSON_Delete(call);
	cJSON_Delete(appr);
}

static void test_redact(void **state)
{
	struct redact r;
	char *t;

	(void)state;
	redact_init(&r);
	assert_int_equal(redact_add(&r, "shared-secret-token"), 0);
	/* a token member keeps its place; the shared token goes wherever it shows up */
	t = redact_text(&r, "{\"auth\":{\"token\":\"shared-secret-token\"},\"x\":\"a "
	                    "shared-secret-token b\"}");
	assert_string_equal(t, "{\"auth\":{\"token\":\"<redacted>\"},\"x\":\"a <redacted> b\"}");
	free(t);
	/* any value of a token member, however short; "" and null stay */
	t = redact_text(&r, "{\"deviceToken\" : \"ab\",\"token\":\"\",\"bootstrapToken\":null}");
	assert_string_equal(
	        t, "{\"deviceToken\" : \"<redacted>\",\"token\":\"\",\"bootstrapToken\":null}");
	free(t);
	/* a frame cut short, and a frame quoted inside a JSON string */
	t = redact_text(&r, "{\"auth\":{\"token\":\"0123456789abcd");
	assert_string_equal(t, "{\"auth\":{\"token\":\"<redacted>");
	free(t);
	t = redact_text(&r, "\"{\\\"token\\\":\\\"feedfacefeedface\\\"}\"");
	assert_string_equal(t, "\"{\\\"token\\\":\\\"<redacted>\\\"}\"");
	free(t);
	/* a device token learned from a hello-ok is redacted elsewhere too (a later note) */
	redact_learn(&r, "{\"payload\":{\"auth\":{\"deviceToken\":\"d00dd00dd00dd00d\"}}}");
	t = redact_text(&r, "connect n1b with d00dd00dd00dd00d");
	assert_string_equal(t, "connect n1b with <redacted>");
	free(t);
	/* a key that only ends like a token member is not one; matchers stay readable */
	t = redact_text(&r, "{\"notoken\":\"x\",\"deviceToken\":{\"$type\":\"string\"}}");
	assert_string_equal(t, "{\"notoken\":\"x\",\"deviceToken\":{\"$type\":\"string\"}}");
	free(t);
	redact_finish(&r);
	/* short secrets only as members */
	redact_init(&r);
	redact_add(&r, "T");
	t = redact_text(&r, "Token T: {\"token\":\"T\"}");
	assert_string_equal(t, "Token T: {\"token\":\"<redacted>\"}");
	free(t);
	redact_finish(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_counts_and_exit, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_junit, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_html, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_html_known_failure, setup, teardown),
	        cmocka_unit_test(test_selection),
	        cmocka_unit_test_setup_teardown(test_expectations, setup, teardown),
	        cmocka_unit_test(test_diagnose),
	        cmocka_unit_test(test_redact),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
