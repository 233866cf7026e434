/* cli_test.c: clawpair-fake-node and the scenario engine against the real clawpair-gateway and
 * against broken servers (wsfixture.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "scenario.h"
#include "spawn.h"

#define TOKEN "fn-test-token"

static int tmo(int ms)
{
	return under_valgrind() ? ms * 10 : ms;
}

struct env {
	struct spawned gw;
	char state[64];
	char tmp[64];
	char identity[128];
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e)
		return -1;
	if (spawn_gateway(TOKEN, e->state, NULL, &e->gw) < 0) {
		fprintf(stderr, "could not start %s\n", build_path("server/clawpair-gateway"));
		free(e);
		return -1;
	}
	snprintf(e->tmp, sizeof(e->tmp), "/tmp/clawpair-fn-cli-XXXXXX");
	if (!mkdtemp(e->tmp))
		return -1;
	snprintf(e->identity, sizeof(e->identity), "%s/id/identity.json", e->tmp);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	int st = spawn_stop(&e->gw, tmo(5000));

	remove_tree(e->state);
	remove_tree(e->tmp);
	free(e);
	/* the gateway exits 0 on SIGTERM; 99 is a valgrind error */
	return st == 0 ? 0 : -1;
}

/* argv for the CLI (under memcheck when the suite runs under valgrind). */
static void cli_argv(const char **argv, size_t *n)
{
	*n = 0;
	if (under_valgrind()) {
		argv[(*n)++] = "/usr/bin/valgrind";
		argv[(*n)++] = "--error-exitcode=99";
		argv[(*n)++] = "--leak-check=full";
		argv[(*n)++] = "--errors-for-leak-kinds=definite";
		argv[(*n)++] = "-q";
	}
	argv[(*n)++] = build_path("fake-node/clawpair-fake-node");
}

static int run_cli(const char *const *args, int timeout_ms, char **out, long *elapsed)
{
	const char *argv[64];
	size_t n;

	cli_argv(argv, &n);
	for (size_t i = 0; args[i] && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return spawn_run((char *const *)argv, timeout_ms, out, elapsed);
}

static int start_cli(const char *const *args, struct spawned *s)
{
	const char *argv[64];
	size_t n;

	cli_argv(argv, &n);
	for (size_t i = 0; args[i] && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return spawn_start((char *const *)argv, s);
}

/* Reads JSON lines until one has "event" == name; returns it (caller deletes) or NULL. */
static cJSON *read_event(struct spawned *s, const char *name, int timeout_ms)
{
	char line[16384];
	uint64_t deadline = (uint64_t)time(NULL) * 1000 + (uint64_t)timeout_ms;

	while ((uint64_t)time(NULL) * 1000 <= deadline + 1000 &&
	       spawn_read_line(s, line, sizeof(line), timeout_ms) == 1) {
		cJSON *j = cJSON_Parse(line);
		const char *ev = cJSON_GetStringValue(cJSON_GetObjectItem(j, "event"));

		if (!j)
			fail_msg("not a JSON line: %s", line);
		if (ev && !strcmp(ev, name))
			return j;
		cJSON_Delete(j);
	}
	return NULL;
}

/* An operator resolves requestId (device.pair.approve or .reject) through the scenario engine. */
static void resolve(const char *url, const char *rid, const char *method, bool expect_ok)
{
	char err[256], var[160], text[1024];
	const char *vars[] = {var, NULL};
	struct scenario *s;

	snprintf(text, sizeof(text),
	         "{\"id\":\"approve\",\"actors\":{\"op\":{\"role\":\"operator\","
	         "\"scopes\":[\"operator.pairing\"]}},\"steps\":["
	         "{\"actor\":\"op\",\"do\":\"connect\",\"expect\":\"hello-ok\"},"
	         "{\"actor\":\"op\",\"do\":\"call\",\"method\":\"%s\","
	         "\"params\":{\"requestId\":\"${rid}\"},\"expect\":{\"ok\":true}}]}",
	         method);
	s = scenario_parse(text, err, sizeof(err));
	struct scenario_env env = {.url = url,
	                           .token = TOKEN,
	                           .vars = vars,
	                           .timeout_scale = under_valgrind() ? 10 : 1};
	struct scenario_result r;

	assert_non_null(s);
	snprintf(var, sizeof(var), "rid=%s", rid);
	assert_int_equal(scenario_run(s, &env, &r), 0);
	if ((r.verdict == SCENARIO_PASS) != expect_ok)
		fail_msg("approve %s: %s", rid, r.message ? r.message : "passed");
	scenario_result_finish(&r);
	scenario_destroy(s);
}

static void approve(const char *url, const char *rid, bool expect_ok)
{
	resolve(url, rid, "device.pair.approve", expect_ok);
}

static void test_pairs_after_approve(void **state)
{
	struct env *e = *state;
	const char *args[] = {"--url",     e->gw.url, "--token",   TOKEN,    "--identity",
	                      e->identity, "--xff",   "10.77.0.5", "--json", "--once",
	                      "--timeout", "60",      NULL};
	struct spawned node;
	cJSON *j;
	char rid[80];
	struct stat st;
	char *out = NULL;

	assert_int_equal(start_cli(args, &node), 0);
	j = read_event(&node, "connect.pending", tmo(5000));
	assert_non_null(j);
	snprintf(rid, sizeof(rid), "%s", cJSON_GetStringValue(cJSON_GetObjectItem(j, "requestId")));
	assert_int_equal(strlen(rid), 36);
	assert_int_equal(strlen(cJSON_GetStringValue(cJSON_GetObjectItem(j, "fingerprint"))), 19);
	cJSON_Delete(j);
	/* still waiting: nothing but the approval ends it */
	j = read_event(&node, "hello-ok", 500);
	assert_null(j);
	approve(e->gw.url, rid, true);
	j = read_event(&node, "hello-ok", tmo(5000));
	assert_non_null(j);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "deviceTokenIssued")));
	cJSON_Delete(j);
	assert_int_equal(spawn_wait(&node, tmo(5000)), 0);

	/* identity file 0600, token stored next to it */
	assert_int_equal(stat(e->identity, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* next run: paired at once, with the device token, no pending */
	assert_int_equal(run_cli(args, tmo(10000), &out, NULL), 0);
	assert_null(strstr(out, "connect.pending"));
	assert_non_null(strstr(out, "\"event\":\"hello-ok\""));
	assert_non_null(strstr(out, "\"usedDeviceToken\":true"));
	free(out);
}

static void test_once_local_json_lines(void **state)
{
	struct env *e = *state;
	const char *args[] = {"--url",     e->gw.url, "--token", TOKEN, "--identity",
	                      e->identity, "--json",  "--once",  NULL};
	char *out = NULL, *save = NULL, *line;
	const char *want[] = {"identity", "connect.challenge", "hello-ok", "summary"};
	size_t n = 0;

	assert_int_equal(run_cli(args, tmo(10000), &out, NULL), 0);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cJSON *j = cJSON_Parse(line);

		if (!j)
			fail_msg("not JSON: %s", line);
		assert_true(n < 4);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "event")), want[n]);
		n++;
		cJSON_Delete(j);
	}
	assert_int_equal(n, 4);
	free(out);

	/* human output mentions the pairing */
	{
		const char *a2[] = {"--url",      e->gw.url,   "--token", TOKEN,
		                    "--identity", e->identity, "--once",  NULL};

		assert_int_equal(run_cli(a2, tmo(10000), &out, NULL), 0);
		assert_non_null(strstr(out, "paired: hello-ok"));
		free(out);
	}
}

/* The 2026.9.6 node host's cycle (its 15 s connect timeout shortened to 1 s): it closes its held
 * connect itself with 4000, reconnects after 1 s to the same request, and an approval on the
 * second connect ends the run with what it experienced. */
static void test_profile_node_host_9_6(void **state)
{
	struct env *e = *state;
	char appr[128];
	const char *args[] = {"--url",
	                      e->gw.url,
	                      "--token",
	                      TOKEN,
	                      "--identity",
	                      e->identity,
	                      "--xff",
	                      "10.77.0.11",
	                      "--json",
	                      "--once",
	                      "--profile",
	                      "node-host-2026.9.6",
	                      "--hello-timeout",
	                      under_valgrind() ? "5" : "1",
	                      "--approved-at-file",
	                      appr,
	                      "--timeout",
	                      "60",
	                      NULL};
	struct spawned node;
	char rid[80];
	cJSON *j, *closes;
	FILE *f;

	snprintf(appr, sizeof(appr), "%s/approved-at", e->tmp);
	assert_int_equal(start_cli(args, &node), 0);
	j = read_event(&node, "connect.pending", tmo(5000));
	assert_non_null(j);
	snprintf(rid, sizeof(rid), "%s", cJSON_GetStringValue(cJSON_GetObjectItem(j, "requestId")));
	cJSON_Delete(j);
	j = read_event(&node, "close", tmo(5000));
	assert_non_null(j);
	assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "code")), 4000);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "reason")),
	                    "connect timeout");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "local")));
	cJSON_Delete(j);
	j = read_event(&node, "reconnect", tmo(2000));
	assert_non_null(j);
	assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "inMs")), 1000);
	cJSON_Delete(j);
	/* the reconnect finds the same request */
	j = read_event(&node, "connect.pending", tmo(5000));
	assert_non_null(j);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "requestId")), rid);
	cJSON_Delete(j);
	f = fopen(appr, "w");
	assert_non_null(f);
	fprintf(f, "%lld\n", (long long)time(NULL) * 1000);
	fclose(f);
	approve(e->gw.url, rid, true);
	j = read_event(&node, "summary", tmo(5000));
	assert_non_null(j);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "outcome")), "paired");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "profile")),
	                    "node-host-2026.9.6");
	assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "reconnects")), 1);
	assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "pendingRounds")), 2);
	closes = cJSON_GetObjectItem(j, "closes");
	assert_int_equal(cJSON_GetArraySize(closes), 1);
	assert_string_equal(
	        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(closes, 0), "by")),
	        "client");
	/* whole seconds in the file: within [-1000, 5000] ms of the hello-ok */
	assert_true(cJSON_IsNumber(cJSON_GetObjectItem(j, "approveToConnectedMs")));
	assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "approveToConnectedMs")) > -1000);
	assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "heldMs")) >= 1000);
	cJSON_Delete(j);
	assert_int_equal(spawn_wait(&node, tmo(5000)), 0);
}

/* The 2026.1.30 node host ends on a close: rejected (4403), it exits, which the run reports. */
static void test_profile_node_host_1_30(void **state)
{
	struct env *e = *state;
	const char *args[] = {
	        "--url", e->gw.url,    "--token", TOKEN,       "--identity",          e->identity,
	        "--xff", "10.77.0.12", "--json",  "--profile", "node-host-2026.1.30", "--timeout",
	        "60",    NULL};
	struct spawned node;
	char rid[80];
	cJSON *j;
	char *out = NULL;

	assert_int_equal(start_cli(args, &node), 0);
	j = read_event(&node, "connect.pending", tmo(5000));
	assert_non_null(j);
	snprintf(rid, sizeof(rid), "%s", cJSON_GetStringValue(cJSON_GetObjectItem(j, "requestId")));
	cJSON_Delete(j);
	resolve(e->gw.url, rid, "device.pair.reject", true);
	j = read_event(&node, "summary", tmo(5000));
	assert_non_null(j);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "outcome")),
	                    "client exited");
	assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(j, "clientEnd")),
	                       "exits with status 0"));
	assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "reconnects")), 0);
	cJSON_Delete(j);
	assert_int_equal(spawn_wait(&node, tmo(5000)), 1);

	/* --profile list names every profile; an unknown one is a usage error */
	{
		const char *list[] = {"--profile", "list", NULL};
		const char *bad[] = {"--url",     e->gw.url, "--token", TOKEN,
		                     "--profile", "nope",    NULL};

		assert_int_equal(run_cli(list, tmo(5000), &out, NULL), 0);
		assert_non_null(strstr(out, "android"));
		assert_non_null(strstr(out, "node-host-2026.1.30"));
		assert_non_null(strstr(out, "node-host-2026.9.6"));
		assert_non_null(strstr(out, "openclaw-node-0.14"));
		free(out);
		assert_int_equal(run_cli(bad, tmo(5000), &out, NULL), 2);
		free(out);
	}
}

static void test_timeout_while_pending(void **state)
{
	struct env *e = *state;
	char t[16];
	const char *args[] = {"--url",      e->gw.url,   "--token", TOKEN,
	                      "--identity", e->identity, "--xff",   "10.77.0.6",
	                      "--json",     "--timeout", t,         NULL};
	char *out = NULL;
	long ms = 0;

	snprintf(t, sizeof(t), "%d", under_valgrind() ? 10 : 2);
	assert_int_equal(run_cli(args, tmo(15000), &out, &ms), 1);
	assert_non_null(strstr(out, "\"event\":\"connect.pending\""));
	assert_non_null(strstr(out, "\"outcome\":\"timeout\""));
	assert_non_null(strstr(out, "\"requestIds\":[\""));
	assert_true(ms < tmo(6000));
	free(out);
}

static void test_usage_and_unreachable(void **state)
{
	struct env *e = *state;
	const char *no_url[] = {"--token", TOKEN, NULL};
	const char *wss[] = {"--url", "wss://127.0.0.1:1", "--token", TOKEN, NULL};
	const char *bad_opt[] = {"--url", e->gw.url, "--token", TOKEN, "--sig", "v9", NULL};
	const char *closed[] = {"--url",      "ws://127.0.0.1:1", "--token", TOKEN,
	                        "--identity", e->identity,        "--once",  NULL};
	const char *help[] = {"--help", NULL};
	char *out = NULL;

	assert_int_equal(run_cli(no_url, tmo(5000), NULL, NULL), 2);
	assert_int_equal(run_cli(wss, tmo(5000), NULL, NULL), 2);
	assert_int_equal(run_cli(bad_opt, tmo(5000), NULL, NULL), 2);
	assert_int_equal(run_cli(closed, tmo(10000), NULL, NULL), 2);
	assert_int_equal(run_cli(help, tmo(5000), &out, NULL), 0);
	assert_non_null(strstr(out, "--count"));
	free(out);
}

static cJSON *summary_of(char *out)
{
	char *line = strstr(out, "{\"event\":\"summary\"");

	assert_non_null(line);
	line[strcspn(line, "\n")] = '\0';
	return cJSON_Parse(line);
}

static void test_count_summary(void **state)
{
	struct env *e = *state;
	const char *local[] = {"--url",  e->gw.url, "--token",   TOKEN, "--count", "50",
	                       "--once", "--json",  "--timeout", "60",  NULL};
	const char *remote[] = {"--url",     e->gw.url, "--token", TOKEN,   "--count",
	                        "50",        "--once",  "--json",  "--xff", "auto",
	                        "--timeout", "60",      NULL};
	char *out = NULL;
	cJSON *j;

	assert_int_equal(run_cli(local, tmo(60000), &out, NULL), 0);
	j = summary_of(out);
	assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "paired")), 50);
	assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "failed")), 0);
	assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "maxMs")) >=
	            cJSON_GetNumberValue(cJSON_GetObjectItem(j, "p50Ms")));
	cJSON_Delete(j);
	free(out);

	/* remote nodes are held pending, each from its own address */
	assert_int_equal(run_cli(remote, tmo(60000), &out, NULL), 0);
	j = summary_of(out);
	assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "pending")), 50);
	assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "paired")), 0);
	cJSON_Delete(j);
	free(out);
}

static void test_scenario_files(void **state)
{
	struct env *e = *state;
	const char *scale = under_valgrind() ? "10" : "1";
	const char *pass[] = {"--url",
	                      e->gw.url,
	                      "--token",
	                      TOKEN,
	                      "--timeout-scale",
	                      scale,
	                      "--script",
	                      source_path("tests/fake-node/scenarios/pair-approve.json"),
	                      NULL};
	const char *broken[] = {"--url",
	                        e->gw.url,
	                        "--token",
	                        TOKEN,
	                        "--timeout-scale",
	                        scale,
	                        "--script",
	                        source_path("tests/fake-node/scenarios/broken-expect.json"),
	                        NULL};
	const char *broken_json[] = {
	        "--url", e->gw.url,  "--token",
	        TOKEN,   "--json",   "--timeout-scale",
	        scale,   "--script", source_path("tests/fake-node/scenarios/broken-expect.json"),
	        NULL};
	char *out = NULL;
	cJSON *j;

	assert_int_equal(run_cli(pass, tmo(30000), &out, NULL), 0);
	assert_non_null(strstr(out, "PASS fake-node/pair-approve"));
	free(out);

	/* an operator actor connects with its own scopes, not the token operator's default */
	pass[7] = source_path("tests/fake-node/scenarios/operator-scopes.json");
	assert_int_equal(run_cli(pass, tmo(30000), &out, NULL), 0);
	assert_non_null(strstr(out, "PASS fake-node/operator-scopes"));
	free(out);

	/* the example in SCENARIOS.md (extracted to doc-example.json) must stay valid */
	pass[7] = source_path("tests/fake-node/scenarios/doc-example.json");
	assert_int_equal(run_cli(pass, tmo(30000), &out, NULL), 0);
	assert_non_null(strstr(out, "PASS hold/HOLD-3/approve-same-socket"));
	free(out);

	assert_int_equal(run_cli(broken, tmo(30000), &out, NULL), 1);
	assert_non_null(strstr(out, "FAIL fake-node/broken-expect"));
	assert_non_null(strstr(out, "step 1, actor n1"));
	assert_non_null(strstr(out, "expected: res ok hello-ok to connect"));
	assert_non_null(strstr(out, "actual:   {\"type\":\"event\",\"event\":\"connect.pending\""));
	free(out);

	assert_int_equal(run_cli(broken_json, tmo(30000), &out, NULL), 1);
	j = cJSON_Parse(out);
	assert_non_null(j);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "verdict")), "fail");
	assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "step")), 1);
	assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(j, "log")) > 4);
	cJSON_Delete(j);
	free(out);
}

/* An unknown requestId is refused: the operator side of the engine fails honestly. */
static void test_approve_unknown_fails(void **state)
{
	struct env *e = *state;

	approve(e->gw.url, "00000000-0000-4000-8000-000000000000", false);
}

static void test_compat_gateway_retries(void **state)
{
	struct spawned gw;
	char sdir[64], tmp[] = "/tmp/clawpair-fn-compat-XXXXXX", idp[128];
	const char *extra[] = {"--compat-6836", NULL};
	char *out = NULL, *p;
	int closes = 0, reconnects = 0;
	cJSON *j;
	(void)state;

	if (spawn_gateway(TOKEN, sdir, extra, &gw) < 0)
		skip();
	assert_non_null(mkdtemp(tmp));
	snprintf(idp, sizeof(idp), "%s/identity.json", tmp);
	{
		char t[16];
		const char *args[] = {"--url",      gw.url,      "--token", TOKEN,
		                      "--identity", idp,         "--xff",   "10.77.0.7",
		                      "--json",     "--timeout", t,         NULL};

		snprintf(t, sizeof(t), "%d", under_valgrind() ? 20 : 8);
		assert_int_equal(run_cli(args, tmo(30000), &out, NULL), 1);
	}
	for (p = out; (p = strstr(p, "\"event\":\"close\",\"code\":1008")); p++)
		closes++;
	for (p = out; (p = strstr(p, "\"event\":\"reconnect\",\"inMs\":6000")); p++)
		reconnects++;
	assert_true(closes >= 2);
	assert_true(reconnects >= 1);
	j = summary_of(out);
	/* OpenClaw's dedup: every attempt reports the same requestId */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "requestIds")), 1);
	assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "attempts")) >= 2);
	cJSON_Delete(j);
	free(out);
	assert_int_equal(spawn_stop(&gw, tmo(5000)), 0);
	remove_tree(sdir);
	remove_tree(tmp);
}

static void bad_gateway(const char *mode, const char *needle)
{
	char *argv[] = {"/usr/bin/python3", (char *)source_path("tests/kit/wsfixture.py"), "--mode",
	                (char *)mode, NULL};
	struct spawned srv;
	char tmp[] = "/tmp/clawpair-fn-bad-XXXXXX", idp[128];
	char *out = NULL;
	long ms = 0;
	int rc;
	bool has_needle;
	/* memcheck slows the CLI about tenfold: give it the same real margins */
	const char *args[] = {"--url",
	                      NULL,
	                      "--token",
	                      TOKEN,
	                      "--identity",
	                      idp,
	                      "--connect-timeout",
	                      under_valgrind() ? "10" : "1",
	                      "--timeout",
	                      under_valgrind() ? "40" : "4",
	                      NULL};

	assert_int_equal(spawn_server(argv, 10000, &srv), 0);
	assert_non_null(mkdtemp(tmp));
	snprintf(idp, sizeof(idp), "%s/identity.json", tmp);
	args[1] = srv.url;
	rc = run_cli(args, tmo(20000), &out, &ms);
	spawn_stop(&srv, 2000);
	remove_tree(tmp);
	has_needle = !needle || (out && strstr(out, needle));
	if (!has_needle)
		fprintf(stderr, "mode %s output: %s\n", mode, out ? out : "");
	free(out);
	if (rc == 0 || rc >= 99)
		fail_msg("mode %s: exit %d", mode, rc);
	assert_true(ms < tmo(8000));
	if (!has_needle)
		fail_msg("mode %s: output lacks '%s'", mode, needle);
}

static void test_bad_gateways(void **state)
{
	(void)state;
	bad_gateway("garbage", NULL);
	bad_gateway("refuse", NULL);
	bad_gateway("silent", NULL);
	bad_gateway("silent-ws", NULL);
	bad_gateway("junk-ws", NULL);
	bad_gateway("oversize", "closed 1009");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_pairs_after_approve, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_once_local_json_lines, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_timeout_while_pending, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_profile_node_host_9_6, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_profile_node_host_1_30, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_usage_and_unreachable, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_count_summary, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_scenario_files, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_approve_unknown_fails, setup, teardown),
	        cmocka_unit_test(test_compat_gateway_retries),
	        cmocka_unit_test(test_bad_gateways),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
