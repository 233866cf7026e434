/* test_authpayload.c: the v1/v2/v3 payload strings, byte for byte against OpenClaw's vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "authpayload.h"
#include "identity.h"
#include "testutil.h"

static int setup(void **state)
{
	(void)state;
	return identity_global_init();
}

static void test_vectors(void **state)
{
	cJSON *v = testutil_load_vectors();
	const cJSON *list = testutil_obj(v, "payloads"), *e;
	int n = 0;
	(void)state;

	cJSON_ArrayForEach(e, list)
	{
		const cJSON *par = testutil_obj(e, "params"), *pl = testutil_obj(e, "payloads");
		const cJSON *scopes = testutil_obj(par, "scopes"), *s;
		const cJSON *signed_at = testutil_obj(par, "signedAtMs");
		const char *sc[8];
		char norm[64];
		struct authpayload_params p = {0};
		uint8_t seed[IDENTITY_SEED_BYTES];
		struct identity id;
		static const enum authpayload_version vers[] = {AUTHPAYLOAD_V1, AUTHPAYLOAD_V2,
		                                                AUTHPAYLOAD_V3};
		static const char *const names[] = {"v1", "v2", "v3"};

		cJSON_ArrayForEach(s, scopes)
		{
			assert_true(p.n_scopes < 8);
			sc[p.n_scopes++] = s->valuestring;
		}
		p.scopes = sc;
		p.device_id = testutil_str(e, "deviceId");
		p.client_id = testutil_str(par, "clientId");
		p.client_mode = testutil_str(par, "clientMode");
		p.role = testutil_str(par, "role");
		p.token = testutil_str(par, "token");
		p.nonce = testutil_str(par, "nonce");
		assert_true(cJSON_IsNumber(signed_at));
		p.signed_at_ms = (int64_t)signed_at->valuedouble;
		p.platform = testutil_str(par, "platform");
		p.device_family = testutil_str(par, "deviceFamily");

		assert_int_equal(authpayload_normalize_meta(p.platform, norm, sizeof(norm)),
		                 (int)strlen(testutil_str(e, "normalizedPlatform")));
		assert_string_equal(norm, testutil_str(e, "normalizedPlatform"));
		assert_int_equal(authpayload_normalize_meta(p.device_family, norm, sizeof(norm)),
		                 (int)strlen(testutil_str(e, "normalizedDeviceFamily")));
		assert_string_equal(norm, testutil_str(e, "normalizedDeviceFamily"));

		testutil_hex(testutil_str(e, "seedHex"), seed, sizeof(seed));
		assert_int_equal(identity_from_seed(&id, seed), 0);
		for (size_t k = 0; k < 3; k++) {
			const cJSON *one = testutil_obj(pl, names[k]);
			char *got = authpayload_build(vers[k], &p);
			char sig[IDENTITY_SIG_B64_LEN + 1];

			assert_non_null(got);
			assert_string_equal(got, testutil_str(one, "payload"));
			assert_int_equal(identity_sign(&id, got, sig, sizeof(sig)), 0);
			assert_string_equal(sig, testutil_str(one, "signatureBase64Url"));
			free(got);
		}
		/* An empty token and a NULL token build the same string. */
		if (strcmp(p.token, "") == 0) {
			char *a = authpayload_build(AUTHPAYLOAD_V2, &p), *b;
			p.token = NULL;
			b = authpayload_build(AUTHPAYLOAD_V2, &p);
			assert_string_equal(a, b);
			free(a);
			free(b);
		}
		n++;
	}
	assert_int_equal(n, 4);
	cJSON_Delete(v);
}

static void expect_norm(const char *in, const char *want)
{
	char out[64];
	assert_int_equal(authpayload_normalize_meta(in, out, sizeof(out)), (int)strlen(want));
	assert_string_equal(out, want);
}

static void test_normalize(void **state)
{
	char out[4];
	(void)state;

	expect_norm(NULL, "");
	expect_norm("", "");
	expect_norm("   ", "");
	expect_norm(" \t\r\n\v\fAndroid \t", "android");
	expect_norm("iOS 19", "ios 19");
	expect_norm("  Mixed  Inner  ", "mixed  inner");
	/* Only ASCII A-Z is lowercased: non-ASCII letters stay as they are. */
	expect_norm("\xc3\x89"
	            "CLAIR",
	            "\xc3\x89"
	            "clair");
	expect_norm("\xce\xa3"
	            "X",
	            "\xce\xa3"
	            "x");
	/* JavaScript's trim() also removes Unicode spaces (NBSP, ideographic space, BOM). */
	expect_norm("\xc2\xa0"
	            "Pixel\xe3\x80\x80",
	            "pixel");
	expect_norm("\xef\xbb\xbf"
	            "A\xe2\x80\xa8",
	            "a");
	/* ...but not inside, nor a lone lead byte. */
	expect_norm("A\xc2\xa0"
	            "B",
	            "a\xc2\xa0"
	            "b");
	expect_norm("A\xc2", "a\xc2");
	expect_norm("\x85"
	            "A",
	            "\x85"
	            "a");
	/* Output too small: -1, no overflow. */
	assert_int_equal(authpayload_normalize_meta("abcd", out, sizeof(out)), -1);
	assert_int_equal(authpayload_normalize_meta("abc", out, sizeof(out)), 3);
	assert_int_equal(authpayload_normalize_meta("abc", NULL, 4), -1);
	assert_int_equal(authpayload_normalize_meta("abc", out, 0), -1);
}

static void test_build_edges(void **state)
{
	const char *scopes[] = {"a", "b|c", ""};
	struct authpayload_params p = {
	        .device_id = "d",
	        .client_id = "cli",
	        .client_mode = "cli",
	        .role = NULL,
	        .scopes = scopes,
	        .n_scopes = 3,
	        .signed_at_ms = -5,
	        .token = "t|k",
	        .nonce = "n",
	        .platform = " Linux ",
	        .device_family = NULL,
	};
	char *s;
	(void)state;

	/* NULL role is the effective default; '|' is copied without escaping; scopes in order. */
	s = authpayload_build(AUTHPAYLOAD_V3, &p);
	assert_non_null(s);
	assert_string_equal(s, "v3|d|cli|cli|operator|a,b|c,|-5|t|k|n|linux|");
	free(s);
	p.signed_at_ms = INT64_MAX;
	s = authpayload_build(AUTHPAYLOAD_V1, &p);
	assert_string_equal(s, "v1|d|cli|cli|operator|a,b|c,|9223372036854775807|t|k");
	free(s);

	p.n_scopes = 0;
	p.scopes = NULL;
	s = authpayload_build(AUTHPAYLOAD_V2, &p);
	assert_string_equal(s, "v2|d|cli|cli|operator||9223372036854775807|t|k|n");
	free(s);

	/* Bad arguments */
	assert_null(authpayload_build(AUTHPAYLOAD_V2, NULL));
	assert_null(authpayload_build((enum authpayload_version)4, &p));
	assert_null(authpayload_build((enum authpayload_version)0, &p));
	p.n_scopes = 2; /* scopes NULL with a count */
	assert_null(authpayload_build(AUTHPAYLOAD_V2, &p));
	p.n_scopes = 0;
	p.nonce = NULL; /* a missing nonce is an empty field, as OpenClaw builds it */
	s = authpayload_build(AUTHPAYLOAD_V2, &p);
	assert_string_equal(s, "v2|d|cli|cli|operator||9223372036854775807|t|k|");
	free(s);
	s = authpayload_build(AUTHPAYLOAD_V3, &p);
	assert_string_equal(s, "v3|d|cli|cli|operator||9223372036854775807|t|k||linux|");
	free(s);
	s = authpayload_build(AUTHPAYLOAD_V1, &p);
	assert_string_equal(s, "v1|d|cli|cli|operator||9223372036854775807|t|k");
	free(s);
	p.nonce = "n";
	p.device_id = NULL;
	assert_null(authpayload_build(AUTHPAYLOAD_V2, &p));
	p.device_id = "d";
	{
		const char *withnull[] = {"a", NULL};
		p.scopes = withnull;
		p.n_scopes = 2;
		assert_null(authpayload_build(AUTHPAYLOAD_V2, &p));
	}
}

static void test_long_fields(void **state)
{
	char *big = malloc(100001), *s;
	struct authpayload_params p = {.device_id = "d",
	                               .client_id = "c",
	                               .client_mode = "m",
	                               .role = "node",
	                               .nonce = "n"};
	(void)state;

	assert_non_null(big);
	memset(big, 'X', 100000);
	big[100000] = '\0';
	p.platform = big;
	p.device_family = big;
	p.token = big;
	s = authpayload_build(AUTHPAYLOAD_V3, &p);
	assert_non_null(s);
	assert_int_equal(strlen(s), strlen("v3|d|c|m|node||0||n||") + 300000);
	assert_int_equal(s[strlen(s) - 1], 'x');
	free(s);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_vectors),
	        cmocka_unit_test(test_normalize),
	        cmocka_unit_test(test_build_edges),
	        cmocka_unit_test(test_long_fields),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
