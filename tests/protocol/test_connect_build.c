/* test_connect_build.c: built connect params: the auth keys sent, and a signature that verifies
 * over the payload spec §4.4 defines for them (the one the gateway rebuilds). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "authpayload.h"
#include "connect.h"
#include "connect_build.h"
#include "identity.h"

#define WALL_MS 1795479066100LL
#define NONCE "473a3502-c059-4056-a0d6-15a3a14fc2f4"

static int setup(void **state)
{
	(void)state;
	return identity_global_init();
}

static void node_spec(struct connect_spec *s, struct identity *id)
{
	uint8_t seed[IDENTITY_SEED_BYTES];

	memset(seed, 0, sizeof(seed));
	assert_int_equal(identity_from_seed(id, seed), 0);
	connect_spec_android(s);
	s->identity = id;
}

static const char *sig_of(const cJSON *params)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(params, "device");
	const cJSON *sig = cJSON_GetObjectItemCaseSensitive(d, "signature");

	assert_true(cJSON_IsString(sig));
	return sig->valuestring;
}

/* The payload rebuilt from the params as sent (what the gateway does) verifies the signature,
 * and its <token> field is want_token. */
static void assert_gateway_verifies(cJSON *params, const struct identity *id,
                                    enum authpayload_version v, const char *want_token)
{
	struct connect_params cp;
	struct authpayload_params ap;
	char why[256];
	char *payload;

	assert_int_equal(connect_params_parse(params, &cp, why, sizeof(why)), CP_OK);
	assert_string_equal(connect_signing_token(&cp), want_token);
	connect_authpayload_params(&cp, &ap);
	payload = authpayload_build(v, &ap);
	assert_non_null(payload);
	assert_true(identity_verify(id->pk, payload, cp.device_signature));
	free(payload);
}

static void test_bootstrap_token_only(void **state)
{
	struct connect_spec s;
	struct identity id;
	const cJSON *auth;
	char want[512];
	cJSON *p;

	(void)state;
	node_spec(&s, &id);
	s.bootstrap_token = "boot-1";
	p = connect_params_build(&s, NONCE, WALL_MS);
	assert_non_null(p);
	/* auth is exactly {"bootstrapToken": "boot-1"}: no auth.token. */
	auth = cJSON_GetObjectItemCaseSensitive(p, "auth");
	assert_true(cJSON_IsObject(auth));
	assert_int_equal(cJSON_GetArraySize(auth), 1);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(auth, "bootstrapToken")->valuestring,
	                    "boot-1");
	/* The payload written out by hand from spec §4.4: <token> is the bootstrap token. */
	snprintf(want, sizeof(want), "v2|%s|openclaw-android|node|node||%lld|boot-1|%s",
	         id.device_id, (long long)WALL_MS, NONCE);
	assert_true(identity_verify(id.pk, want, sig_of(p)));
	snprintf(want, sizeof(want), "v2|%s|openclaw-android|node|node||%lld||%s", id.device_id,
	         (long long)WALL_MS, NONCE);
	assert_false(identity_verify(id.pk, want, sig_of(p)));
	assert_gateway_verifies(p, &id, AUTHPAYLOAD_V2, "boot-1");
	cJSON_Delete(p);

	s.sig = CONNECT_SIG_V3;
	p = connect_params_build(&s, NONCE, WALL_MS);
	assert_non_null(p);
	assert_gateway_verifies(p, &id, AUTHPAYLOAD_V3, "boot-1");
	cJSON_Delete(p);
}

static void test_token_comes_first(void **state)
{
	struct connect_spec s;
	struct identity id;
	const cJSON *auth;
	cJSON *p;

	(void)state;
	node_spec(&s, &id);
	s.token = "T";
	s.bootstrap_token = "boot-1";
	p = connect_params_build(&s, NONCE, WALL_MS);
	assert_non_null(p);
	auth = cJSON_GetObjectItemCaseSensitive(p, "auth");
	assert_int_equal(cJSON_GetArraySize(auth), 2);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(auth, "token")->valuestring, "T");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(auth, "bootstrapToken")->valuestring,
	                    "boot-1");
	assert_gateway_verifies(p, &id, AUTHPAYLOAD_V2, "T");
	cJSON_Delete(p);

	/* Neither: no auth object, an empty <token>. */
	s.token = NULL;
	s.bootstrap_token = NULL;
	p = connect_params_build(&s, NONCE, WALL_MS);
	assert_non_null(p);
	assert_null(cJSON_GetObjectItemCaseSensitive(p, "auth"));
	assert_gateway_verifies(p, &id, AUTHPAYLOAD_V2, "");
	cJSON_Delete(p);
}

static void test_token_order(void **state)
{
	(void)state;
	assert_string_equal(authpayload_token("T", "D", "B"), "T");
	assert_string_equal(authpayload_token("", "D", "B"), "");
	assert_string_equal(authpayload_token(NULL, "D", "B"), "D");
	assert_string_equal(authpayload_token(NULL, NULL, "B"), "B");
	assert_string_equal(authpayload_token(NULL, NULL, NULL), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_bootstrap_token_only),
	        cmocka_unit_test(test_token_comes_first),
	        cmocka_unit_test(test_token_order),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
