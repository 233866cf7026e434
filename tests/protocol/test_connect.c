/* test_connect.c: connect params against OpenClaw's closed schema (both releases' keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "connect.h"
#include "frame.h"
#include "json.h"

/* Shaped like the connect a real Android node sent (protocol-notes transcript excerpt). */
static const char full_1_30[] =
        "{\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":\"openclaw-android\","
        "\"displayName\":\"Lab Android Node\",\"version\":\"2026.1.30\",\"platform\":\"android\","
        "\"deviceFamily\":\"Android\",\"modelIdentifier\":\"lab-emulator\",\"mode\":\"node\","
        "\"instanceId\":\"6baccb45f076\"},\"role\":\"node\",\"scopes\":[],\"caps\":[],"
        "\"commands\":[],\"auth\":{\"token\":\"T\"},\"locale\":\"en-US\","
        "\"userAgent\":\"openclaw-probe/1\",\"permissions\":{\"camera\":true},\"pathEnv\":\"/bin\","
        "\"device\":{\"id\":\"6baccb45f076\",\"publicKey\":\"vxSWGwZ4\",\"signature\":\"MDiCfMK2\","
        "\"signedAt\":1795479852838,\"nonce\":\"ff3be71a-f360-40a7-9277-d270073fcc79\"}}";

static const char minimal[] = "{\"minProtocol\":3,\"maxProtocol\":3,\"client\":{\"id\":\"cli\","
                              "\"version\":\"1\",\"platform\":\"linux\",\"mode\":\"cli\"}}";

struct parsed {
	cJSON *root;
	struct connect_params p;
	enum cp_err rc;
	char why[256];
};

static void parse(struct parsed *x, const char *json)
{
	x->root = cJSON_Parse(json);
	if (!x->root)
		fail_msg("test JSON does not parse: %s", json);
	memset(x->why, 'Z', sizeof(x->why));
	x->rc = connect_params_parse(x->root, &x->p, x->why, sizeof(x->why));
}

static void expect_ok(const char *json)
{
	struct parsed x;
	parse(&x, json);
	if (x.rc != CP_OK)
		fail_msg("rejected (%s): %s", x.why, json);
	cJSON_Delete(x.root);
}

static void expect_why(const char *json, const char *why)
{
	struct parsed x;
	parse(&x, json);
	if (x.rc != CP_ERR_INVALID_CONNECT_PARAMS)
		fail_msg("accepted: %s", json);
	if (strcmp(x.why, why) != 0)
		fail_msg("why \"%s\", wanted \"%s\" for %s", x.why, why, json);
	cJSON_Delete(x.root);
}

/* minimal connect with `extra` spliced in at the top level ("" for none). */
static void with_top(char *out, size_t outsz, const char *extra)
{
	snprintf(
	        out, outsz,
	        "{\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":\"cli\",\"version\":\"1\","
	        "\"platform\":\"linux\",\"mode\":\"cli\"}%s%s}",
	        extra[0] ? "," : "", extra);
}

static void test_full_and_minimal(void **state)
{
	struct parsed x;
	(void)state;

	parse(&x, full_1_30);
	assert_int_equal(x.rc, CP_OK);
	assert_int_equal(x.p.min_protocol, 3);
	assert_int_equal(x.p.max_protocol, 4);
	assert_string_equal(x.p.client_id, "openclaw-android");
	assert_string_equal(x.p.client_display_name, "Lab Android Node");
	assert_string_equal(x.p.client_version, "2026.1.30");
	assert_string_equal(x.p.client_platform, "android");
	assert_string_equal(x.p.client_device_family, "Android");
	assert_string_equal(x.p.client_model_identifier, "lab-emulator");
	assert_string_equal(x.p.client_mode, "node");
	assert_string_equal(x.p.client_instance_id, "6baccb45f076");
	assert_string_equal(x.p.role, "node");
	assert_true(x.p.role_given);
	assert_true(x.p.scopes_given);
	assert_int_equal(x.p.n_scopes, 0);
	assert_true(cJSON_IsArray(x.p.caps));
	assert_true(cJSON_IsArray(x.p.commands));
	assert_true(cJSON_IsObject(x.p.permissions));
	assert_true(x.p.has_device);
	assert_string_equal(x.p.device_id, "6baccb45f076");
	assert_string_equal(x.p.device_public_key, "vxSWGwZ4");
	assert_string_equal(x.p.device_signature, "MDiCfMK2");
	assert_string_equal(x.p.device_nonce, "ff3be71a-f360-40a7-9277-d270073fcc79");
	assert_true(x.p.device_signed_at == 1795479852838LL);
	assert_string_equal(x.p.auth_token, "T");
	assert_null(x.p.auth_password);
	assert_null(x.p.auth_device_token);
	assert_string_equal(x.p.locale, "en-US");
	assert_string_equal(x.p.user_agent, "openclaw-probe/1");
	assert_string_equal(x.p.path_env, "/bin");
	assert_string_equal(connect_signing_token(&x.p), "T");
	{
		struct authpayload_params ap;
		char *s;
		connect_authpayload_params(&x.p, &ap);
		s = authpayload_build(AUTHPAYLOAD_V3, &ap);
		assert_string_equal(s,
		                    "v3|6baccb45f076|openclaw-android|node|node||1795479852838|T|"
		                    "ff3be71a-f360-40a7-9277-d270073fcc79|android|android");
		free(s);
	}
	cJSON_Delete(x.root);

	parse(&x, minimal);
	assert_int_equal(x.rc, CP_OK);
	assert_string_equal(x.why, "");
	assert_string_equal(x.p.role, "operator");
	assert_false(x.p.role_given);
	assert_false(x.p.scopes_given);
	assert_false(x.p.has_device);
	assert_false(x.p.has_auth);
	assert_null(x.p.device_id);
	assert_null(x.p.auth_token);
	assert_null(x.p.caps);
	assert_null(x.p.client_device_family);
	assert_string_equal(connect_signing_token(&x.p), "");
	cJSON_Delete(x.root);
}

static void test_new_keys(void **state)
{
	char buf[2048];
	struct parsed x;
	(void)state;

	with_top(
	        buf, sizeof(buf),
	        "\"computerUse\":{\"enabled\":true},\"workerRuns\":[1],\"modelCatalog\":\"x\","
	        "\"auth\":{\"bootstrapToken\":\"B\",\"deviceToken\":\"D\","
	        "\"approvalRuntimeToken\":\"A\",\"agentRuntimeIdentityToken\":\"I\",\"password\":\"P\"},"
	        "\"scopes\":[\"operator.admin\",\"operator.pairing\"]");
	parse(&x, buf);
	assert_int_equal(x.rc, CP_OK);
	assert_true(cJSON_IsObject(x.p.computer_use));
	assert_true(cJSON_IsArray(x.p.worker_runs));
	assert_true(cJSON_IsString(x.p.model_catalog));
	assert_string_equal(x.p.auth_bootstrap_token, "B");
	assert_string_equal(x.p.auth_device_token, "D");
	assert_string_equal(x.p.auth_approval_runtime_token, "A");
	assert_string_equal(x.p.auth_agent_runtime_identity_token, "I");
	assert_string_equal(x.p.auth_password, "P");
	assert_int_equal(x.p.n_scopes, 2);
	assert_string_equal(x.p.scopes[0], "operator.admin");
	assert_string_equal(x.p.scopes[1], "operator.pairing");
	/* token ?? deviceToken ?? bootstrapToken */
	assert_string_equal(connect_signing_token(&x.p), "D");
	x.p.auth_device_token = NULL;
	assert_string_equal(connect_signing_token(&x.p), "B");
	cJSON_Delete(x.root);

	expect_ok("{\"minProtocol\":4,\"maxProtocol\":4,\"client\":{\"id\":\"openclaw-worker\","
	          "\"version\":\"1\",\"platform\":\"linux\",\"mode\":\"worker\",\"buildId\":\"b\","
	          "\"timeZone\":\"Europe/Berlin\"}}");
}

static void test_enums(void **state)
{
	static const char *const ids[] = {
	        "webchat-ui",
	        "openclaw-control-ui",
	        "webchat",
	        "cli",
	        "gateway-client",
	        "openclaw-macos",
	        "openclaw-ios",
	        "openclaw-android",
	        "node-host",
	        "test",
	        "fingerprint",
	        "openclaw-probe",
	        "openclaw-browser-copilot",
	        "openclaw-tui",
	        "openclaw-linux",
	        "openclaw-watchos",
	        "openclaw-worker",
	};
	static const char *const modes[] = {"webchat", "cli",   "ui",   "backend",
	                                    "node",    "probe", "test", "worker"};
	char buf[512];
	(void)state;

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		assert_true(connect_client_id_known(ids[i]));
		snprintf(buf, sizeof(buf),
		         "{\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":\"%s\","
		         "\"version\":\"1\",\"platform\":\"p\",\"mode\":\"node\"}}",
		         ids[i]);
		expect_ok(buf);
	}
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		assert_true(connect_client_mode_known(modes[i]));
		snprintf(buf, sizeof(buf),
		         "{\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":\"test\","
		         "\"version\":\"1\",\"platform\":\"p\",\"mode\":\"%s\"}}",
		         modes[i]);
		expect_ok(buf);
	}
	assert_false(connect_client_id_known("my-c-client"));
	assert_false(connect_client_id_known("CLI"));
	assert_false(connect_client_id_known(""));
	assert_false(connect_client_id_known(NULL));
	assert_false(connect_client_mode_known("operator"));
	assert_false(connect_client_mode_known(NULL));
	expect_why("{\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":\"my-c-client\","
	           "\"version\":\"1\",\"platform\":\"p\",\"mode\":\"node\"}}",
	           "at /client/id: must be equal to one of the allowed values");
	expect_why("{\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":\"cli\","
	           "\"version\":\"1\",\"platform\":\"p\",\"mode\":\"Node\"}}",
	           "at /client/mode: must be equal to one of the allowed values");
	expect_why("{\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":7,"
	           "\"version\":\"1\",\"platform\":\"p\",\"mode\":\"node\"}}",
	           "at /client/id: must be string");
}

static void test_unknown_keys(void **state)
{
	char buf[2048];
	(void)state;

	with_top(buf, sizeof(buf), "\"foo\":1");
	expect_why(buf, "at /foo: unknown property");
	with_top(buf, sizeof(buf), "\"Role\":\"node\"");
	expect_why(buf, "at /Role: unknown property");
	with_top(buf, sizeof(buf), "\"a/b~c\":null");
	expect_why(buf, "at /a~1b~0c: unknown property");
	/* Keys of the request envelope do not belong in params. */
	with_top(buf, sizeof(buf), "\"traceparent\":\"x\"");
	expect_why(buf, "at /traceparent: unknown property");
	expect_why("{\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":\"cli\","
	           "\"version\":\"1\",\"platform\":\"p\",\"mode\":\"cli\",\"extra\":\"\"}}",
	           "at /client/extra: unknown property");
	with_top(buf, sizeof(buf),
	         "\"device\":{\"id\":\"d\",\"publicKey\":\"k\",\"signature\":\"s\","
	         "\"signedAt\":1,\"nonce\":\"n\",\"platform\":\"x\"}");
	expect_why(buf, "at /device/platform: unknown property");
	with_top(buf, sizeof(buf), "\"auth\":{\"token\":\"t\",\"user\":\"u\"}");
	expect_why(buf, "at /auth/user: unknown property");
	/* Values of unknown shape inside the open 2026.9.6 keys are not inspected. */
	with_top(buf, sizeof(buf), "\"computerUse\":{\"anything\":{\"deep\":[1,2]}}");
	expect_ok(buf);
}

static void test_required(void **state)
{
	char buf[1024];
	(void)state;

	expect_why("{\"maxProtocol\":4,\"client\":{\"id\":\"cli\",\"version\":\"1\","
	           "\"platform\":\"p\",\"mode\":\"cli\"}}",
	           "at root: must have required property 'minProtocol'");
	expect_why("{\"minProtocol\":3,\"client\":{\"id\":\"cli\",\"version\":\"1\","
	           "\"platform\":\"p\",\"mode\":\"cli\"}}",
	           "at root: must have required property 'maxProtocol'");
	expect_why("{\"minProtocol\":3,\"maxProtocol\":4}",
	           "at root: must have required property 'client'");
	expect_why("{\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"version\":\"1\","
	           "\"platform\":\"p\",\"mode\":\"cli\"}}",
	           "at /client: must have required property 'id'");
	expect_why("{\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":\"cli\","
	           "\"platform\":\"p\",\"mode\":\"cli\"}}",
	           "at /client: must have required property 'version'");
	expect_why("{\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":\"cli\","
	           "\"version\":\"1\",\"mode\":\"cli\"}}",
	           "at /client: must have required property 'platform'");
	expect_why("{\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":\"cli\","
	           "\"version\":\"1\",\"platform\":\"p\"}}",
	           "at /client: must have required property 'mode'");
	with_top(buf, sizeof(buf),
	         "\"device\":{\"publicKey\":\"k\",\"signature\":\"s\",\"signedAt\":1}");
	expect_why(buf, "at /device: must have required property 'id'");
	with_top(buf, sizeof(buf), "\"device\":{\"id\":\"d\",\"signature\":\"s\",\"signedAt\":1}");
	expect_why(buf, "at /device: must have required property 'publicKey'");
	with_top(buf, sizeof(buf), "\"device\":{\"id\":\"d\",\"publicKey\":\"k\",\"signedAt\":1}");
	expect_why(buf, "at /device: must have required property 'signature'");
	with_top(buf, sizeof(buf),
	         "\"device\":{\"id\":\"d\",\"publicKey\":\"k\",\"signature\":\"s\"}");
	expect_why(buf, "at /device: must have required property 'signedAt'");
	/* nonce is optional in the schema (2026.1.30); the gateway reports it itself. */
	with_top(
	        buf, sizeof(buf),
	        "\"device\":{\"id\":\"d\",\"publicKey\":\"k\",\"signature\":\"s\",\"signedAt\":0}");
	expect_ok(buf);
	/* auth may be empty */
	with_top(buf, sizeof(buf), "\"auth\":{}");
	expect_ok(buf);
}

static void test_types(void **state)
{
	static const struct {
		const char *extra, *why;
	} cases[] = {
	        {"\"role\":1", "at /role: must be string"},
	        {"\"role\":\"\"", "at /role: must NOT have fewer than 1 characters"},
	        {"\"scopes\":\"operator.admin\"", "at /scopes: must be array"},
	        {"\"scopes\":[\"a\",2]", "at /scopes/1: must be string"},
	        {"\"scopes\":[null]", "at /scopes/0: must be string"},
	        {"\"caps\":{}", "at /caps: must be array"},
	        {"\"caps\":[\"a\",[\"b\"]]", "at /caps/1: must be string"},
	        {"\"commands\":[true]", "at /commands/0: must be string"},
	        {"\"permissions\":[]", "at /permissions: must be object"},
	        {"\"permissions\":{\"camera\":\"yes\"}", "at /permissions/camera: must be boolean"},
	        {"\"permissions\":{\"\":true}", "at /permissions: property name is invalid"},
	        {"\"pathEnv\":[]", "at /pathEnv: must be string"},
	        {"\"locale\":null", "at /locale: must be string"},
	        {"\"userAgent\":5", "at /userAgent: must be string"},
	        {"\"device\":\"d\"", "at /device: must be object"},
	        {"\"device\":null", "at /device: must be object"},
	        {"\"auth\":[]", "at /auth: must be object"},
	        {"\"auth\":{\"token\":5}", "at /auth/token: must be string"},
	        {"\"auth\":{\"password\":null}", "at /auth/password: must be string"},
	        {"\"auth\":{\"deviceToken\":{}}", "at /auth/deviceToken: must be string"},
	        {"\"device\":{\"id\":\"d\",\"publicKey\":\"k\",\"signature\":\"s\",\"signedAt\":\"1\"}",
	         "at /device/signedAt: must be integer"},
	        {"\"device\":{\"id\":\"d\",\"publicKey\":\"k\",\"signature\":\"s\",\"signedAt\":1.5}",
	         "at /device/signedAt: must be integer"},
	        {"\"device\":{\"id\":\"d\",\"publicKey\":\"k\",\"signature\":\"s\",\"signedAt\":-1}",
	         "at /device/signedAt: must be >= 0"},
	        {"\"device\":{\"id\":\"d\",\"publicKey\":\"k\",\"signature\":\"s\",\"signedAt\":1e300}",
	         "at /device/signedAt: must be integer"},
	        {"\"device\":{\"id\":\"d\",\"publicKey\":\"k\",\"signature\":\"s\","
	         "\"signedAt\":9007199254740992}",
	         "at /device/signedAt: must be integer"},
	        {"\"device\":{\"id\":\"\",\"publicKey\":\"k\",\"signature\":\"s\",\"signedAt\":1}",
	         "at /device/id: must NOT have fewer than 1 characters"},
	        {"\"device\":{\"id\":\"d\",\"publicKey\":5,\"signature\":\"s\",\"signedAt\":1}",
	         "at /device/publicKey: must be string"},
	        {"\"device\":{\"id\":\"d\",\"publicKey\":\"k\",\"signature\":[],\"signedAt\":1}",
	         "at /device/signature: must be string"},
	        {"\"device\":{\"id\":\"d\",\"publicKey\":\"k\",\"signature\":\"s\",\"signedAt\":1,"
	         "\"nonce\":1}",
	         "at /device/nonce: must be string"},
	};
	char buf[1024];
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		with_top(buf, sizeof(buf), cases[i].extra);
		expect_why(buf, cases[i].why);
	}
	expect_why("{\"minProtocol\":\"3\",\"maxProtocol\":4,\"client\":{\"id\":\"cli\","
	           "\"version\":\"1\",\"platform\":\"p\",\"mode\":\"cli\"}}",
	           "at /minProtocol: must be integer");
	expect_why("{\"minProtocol\":3,\"maxProtocol\":4.5,\"client\":{\"id\":\"cli\","
	           "\"version\":\"1\",\"platform\":\"p\",\"mode\":\"cli\"}}",
	           "at /maxProtocol: must be integer");
	expect_why("{\"minProtocol\":0,\"maxProtocol\":4,\"client\":{\"id\":\"cli\","
	           "\"version\":\"1\",\"platform\":\"p\",\"mode\":\"cli\"}}",
	           "at /minProtocol: must be >= 1");
	expect_why("{\"minProtocol\":3,\"maxProtocol\":4,\"client\":[]}",
	           "at /client: must be object");
	expect_why("{\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":\"cli\","
	           "\"version\":\"\",\"platform\":\"p\",\"mode\":\"cli\"}}",
	           "at /client/version: must NOT have fewer than 1 characters");
	expect_why("{\"minProtocol\":3,\"maxProtocol\":4,\"client\":{\"id\":\"cli\","
	           "\"version\":\"1\",\"platform\":\"p\",\"mode\":\"cli\",\"displayName\":3}}",
	           "at /client/displayName: must be string");
	/* An integral value written as 3.0 is an integer, as in JSON.parse. */
	expect_ok("{\"minProtocol\":3.0,\"maxProtocol\":4,\"client\":{\"id\":\"cli\","
	          "\"version\":\"1\",\"platform\":\"p\",\"mode\":\"cli\"}}");
}

static void test_not_object(void **state)
{
	static const char *const inputs[] = {"[]", "null", "\"connect\"", "3", "true"};
	(void)state;

	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
		expect_why(inputs[i], "at root: must be object");
	{
		struct connect_params p;
		char why[64];
		assert_int_equal(connect_params_parse(NULL, &p, why, sizeof(why)),
		                 CP_ERR_INVALID_CONNECT_PARAMS);
		assert_string_equal(why, "at root: must be object");
		assert_int_equal(connect_params_parse(NULL, NULL, why, sizeof(why)),
		                 CP_ERR_INVALID_CONNECT_PARAMS);
		/* A NULL or tiny why buffer is fine. */
		assert_int_equal(connect_params_parse(NULL, &p, NULL, 0),
		                 CP_ERR_INVALID_CONNECT_PARAMS);
		assert_int_equal(connect_params_parse(NULL, &p, why, 5),
		                 CP_ERR_INVALID_CONNECT_PARAMS);
		assert_string_equal(why, "at r");
	}
}

static void test_bounds(void **state)
{
	char *big = malloc(CONNECT_MAX_STRING + 2), *buf = malloc(80000);
	size_t o;
	(void)state;

	assert_non_null(big);
	assert_non_null(buf);
	memset(big, 'x', CONNECT_MAX_STRING + 1);
	big[CONNECT_MAX_STRING + 1] = '\0';
	snprintf(buf, 80000, "\"locale\":\"%s\"", big);
	{
		char *doc = malloc(90000);
		with_top(doc, 90000, buf);
		expect_why(doc, "at /locale: must NOT have more than 1024 characters");
		big[CONNECT_MAX_STRING] = '\0'; /* exactly the limit is fine */
		snprintf(buf, 80000, "\"locale\":\"%s\",\"auth\":{\"token\":\"%s\"}", big, big);
		with_top(doc, 90000, buf);
		expect_ok(doc);
		big[CONNECT_MAX_STRING] = 'x';
		snprintf(buf, 80000, "\"auth\":{\"token\":\"%s\"}", big);
		with_top(doc, 90000, buf);
		expect_why(doc, "at /auth/token: must NOT have more than 1024 characters");
		snprintf(buf, 80000, "\"scopes\":[\"%s\"]", big);
		with_top(doc, 90000, buf);
		expect_why(doc, "at /scopes/0: must NOT have more than 1024 characters");
		snprintf(buf, 80000, "\"permissions\":{\"%s\":true}", big);
		with_top(doc, 90000, buf);
		expect_why(doc, "at /permissions: property name is invalid");

		/* Scopes: 32 are fine, 33 are not. */
		o = (size_t)sprintf(buf, "\"scopes\":[");
		for (int i = 0; i < CONNECT_MAX_SCOPES; i++)
			o += (size_t)sprintf(buf + o, "%s\"s%d\"", i ? "," : "", i);
		sprintf(buf + o, "]");
		with_top(doc, 90000, buf);
		{
			struct parsed x;
			parse(&x, doc);
			assert_int_equal(x.rc, CP_OK);
			assert_int_equal(x.p.n_scopes, CONNECT_MAX_SCOPES);
			assert_string_equal(x.p.scopes[31], "s31");
			cJSON_Delete(x.root);
		}
		sprintf(buf + o, ",\"s32\"]");
		with_top(doc, 90000, buf);
		expect_why(doc, "at /scopes: must NOT have more than 32 items");

		/* caps: CONNECT_MAX_ITEMS */
		o = (size_t)sprintf(buf, "\"caps\":[");
		for (int i = 0; i <= CONNECT_MAX_ITEMS; i++)
			o += (size_t)sprintf(buf + o, "%s\"c\"", i ? "," : "");
		sprintf(buf + o, "]");
		with_top(doc, 90000, buf);
		expect_why(doc, "at /caps: must NOT have more than 1024 items");
		free(doc);
	}
	free(big);
	free(buf);
}

/* Reasons stay valid UTF-8 however they are cut: they go into close frames and JSON. */
static void test_why_utf8(void **state)
{
	char key[400], extra[512], buf[2048], why[16];
	struct parsed x;
	size_t o = 0;
	cJSON *root;
	struct connect_params p;
	(void)state;

	/* 'a' then 2-byte characters: the 256-byte path buffer fills mid-character. */
	key[o++] = 'a';
	while (o + 2 < sizeof(key) - 1) {
		key[o++] = '\xc3';
		key[o++] = '\xa9';
	}
	key[o] = '\0';
	snprintf(extra, sizeof(extra), "\"%s\":1", key);
	with_top(buf, sizeof(buf), extra);
	parse(&x, buf);
	assert_int_equal(x.rc, CP_ERR_INVALID_CONNECT_PARAMS);
	assert_true(json_utf8_valid(x.why, strlen(x.why)));
	assert_non_null(strstr(x.why, "...: unknown property"));
	assert_true(strncmp(x.why, "at /a\xc3\xa9", 7) == 0);
	cJSON_Delete(x.root);

	/* A why buffer that ends mid-character */
	with_top(buf, sizeof(buf), "\"\xc3\xa9\xc3\xa9\xc3\xa9\":1");
	root = cJSON_Parse(buf);
	for (size_t sz = 1; sz <= sizeof(why); sz++) {
		assert_int_equal(connect_params_parse(root, &p, why, sz),
		                 CP_ERR_INVALID_CONNECT_PARAMS);
		assert_true(strlen(why) < sz);
		assert_true(json_utf8_valid(why, strlen(why)));
	}
	cJSON_Delete(root);
}

static void test_duplicates(void **state)
{
	char buf[1024];
	(void)state;

	/* cJSON would read the first value and a JavaScript peer the last: refuse. */
	with_top(buf, sizeof(buf), "\"role\":\"operator\",\"role\":\"node\"");
	expect_why(buf, "at /role: duplicate property");
	with_top(buf, sizeof(buf), "\"auth\":{\"token\":\"a\",\"token\":\"b\"}");
	expect_why(buf, "at /auth/token: duplicate property");
	with_top(buf, sizeof(buf), "\"permissions\":{\"a\":true,\"a\":false}");
	expect_why(buf, "at /permissions/a: duplicate property");
}

/* Every single-byte mutation and every truncation of a real connect frame is either refused
 * or parsed into consistent fields; never a crash (run under valgrind and ASan). */
static void test_mutations(void **state)
{
	static const char repl[] = {'"', '}', '{', ']', '\0', (char)0xff, ' ', '1', '\\', ','};
	char frame[2048];
	size_t len;
	int accepted = 0;
	(void)state;

	len = (size_t)snprintf(
	        frame, sizeof(frame),
	        "{\"type\":\"req\",\"id\":\"c1\",\"method\":\"connect\",\"params\":%s}", full_1_30);
	for (size_t i = 0; i <= len; i++) {
		for (size_t r = 0; r < sizeof(repl) + 1; r++) {
			char m[2048];
			struct frame f;
			struct connect_params p;
			char why[128];
			size_t mlen = len;

			memcpy(m, frame, len);
			if (r < sizeof(repl)) {
				if (i == len)
					continue;
				m[i] = repl[r];
			} else {
				mlen = i; /* truncation */
			}
			if (frame_parse(m, mlen, &f, NULL) != 0)
				continue;
			if (connect_params_parse(f.params, &p, why, sizeof(why)) == CP_OK) {
				accepted++;
				assert_non_null(p.client_id);
				assert_true(connect_client_id_known(p.client_id));
				assert_true(connect_client_mode_known(p.client_mode));
				assert_non_null(p.client_version);
				assert_non_null(p.role);
				assert_true(p.n_scopes <= CONNECT_MAX_SCOPES);
			} else {
				assert_true(strncmp(why, "at ", 3) == 0);
				assert_true(json_utf8_valid(why, strlen(why)));
			}
			frame_finish(&f);
		}
	}
	/* Mutations inside string values keep the frame valid: some must be accepted. */
	assert_true(accepted > 100);
}

static void test_protocol_and_role(void **state)
{
	static const struct {
		int64_t min, max;
		enum cp_err rc;
		int chosen;
	} cases[] = {
	        {3, 3, CP_OK, 3},
	        {3, 4, CP_OK, 4},
	        {4, 4, CP_OK, 4},
	        {1, 10, CP_OK, 4},
	        {1, 3, CP_OK, 3},
	        {4, 9, CP_OK, 4},
	        {1, 2, CP_ERR_PROTOCOL_MISMATCH, 0},
	        {5, 9, CP_ERR_PROTOCOL_MISMATCH, 0},
	        {4, 3, CP_ERR_PROTOCOL_MISMATCH, 0},
	};
	struct connect_params p = {0};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int chosen = 0;
		p.min_protocol = cases[i].min;
		p.max_protocol = cases[i].max;
		assert_int_equal(connect_check_protocol(&p, &chosen), cases[i].rc);
		if (cases[i].rc == CP_OK)
			assert_int_equal(chosen, cases[i].chosen);
	}
	assert_int_equal(connect_check_protocol(NULL, NULL), CP_ERR_PROTOCOL_MISMATCH);

	p.role = "operator";
	assert_int_equal(connect_check_role(&p), CP_OK);
	p.role = "node";
	assert_int_equal(connect_check_role(&p), CP_OK);
	p.role = "admin";
	assert_int_equal(connect_check_role(&p), CP_ERR_INVALID_ROLE);
	p.role = "Node";
	assert_int_equal(connect_check_role(&p), CP_ERR_INVALID_ROLE);
	p.role = NULL;
	assert_int_equal(connect_check_role(&p), CP_ERR_INVALID_ROLE);
	assert_int_equal(connect_check_role(NULL), CP_ERR_INVALID_ROLE);
	/* An invalid role passes the schema and fails the role check, as in OpenClaw. */
	{
		char buf[512];
		struct parsed x;
		with_top(buf, sizeof(buf), "\"role\":\"superuser\"");
		parse(&x, buf);
		assert_int_equal(x.rc, CP_OK);
		assert_int_equal(connect_check_role(&x.p), CP_ERR_INVALID_ROLE);
		cJSON_Delete(x.root);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_full_and_minimal),
	        cmocka_unit_test(test_new_keys),
	        cmocka_unit_test(test_enums),
	        cmocka_unit_test(test_unknown_keys),
	        cmocka_unit_test(test_required),
	        cmocka_unit_test(test_types),
	        cmocka_unit_test(test_not_object),
	        cmocka_unit_test(test_bounds),
	        cmocka_unit_test(test_duplicates),
	        cmocka_unit_test(test_why_utf8),
	        cmocka_unit_test(test_mutations),
	        cmocka_unit_test(test_protocol_and_role),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
