/* test_json.c: unit tests of protocol/json.c (typed accessors, UTF-8 check). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

static void test_accessors(void **state)
{
	cJSON *o = cJSON_Parse("{\"s\":\"v\",\"n\":5,\"f\":1.5,\"b\":true,\"big\":9007199254740992,"
	                       "\"neg\":-9007199254740991,\"Case\":\"x\",\"nul\":null}");
	int64_t i = 77;
	bool b = false;
	(void)state;

	assert_non_null(o);
	assert_string_equal(json_get_string(o, "s"), "v");
	assert_null(json_get_string(o, "n"));
	assert_null(json_get_string(o, "missing"));
	assert_null(json_get_string(o, "case"));
	assert_null(json_get_string(o, "nul"));
	assert_null(json_get_string(NULL, "s"));
	assert_true(json_get_int64(o, "n", &i));
	assert_int_equal(i, 5);
	i = 77;
	assert_false(json_get_int64(o, "f", &i));
	assert_false(json_get_int64(o, "s", &i));
	assert_false(json_get_int64(o, "big", &i));
	assert_int_equal(i, 77);
	assert_true(json_get_int64(o, "neg", &i));
	assert_true(i == -9007199254740991LL);
	assert_true(json_get_bool(o, "b", &b));
	assert_true(b);
	assert_false(json_get_bool(o, "n", &b));
	assert_false(json_is_int64(NULL));
	{
		char *s = json_print(o);
		assert_non_null(s);
		assert_non_null(strstr(s, "\"s\":\"v\""));
		free(s);
		assert_null(json_print(NULL));
	}
	cJSON_Delete(o);
}

static void test_add_int64(void **state)
{
	cJSON *o = cJSON_CreateObject();
	char *s;
	(void)state;

	assert_non_null(json_add_int64(o, "a", 9007199254740993LL));
	assert_non_null(json_add_int64(o, "b", -1));
	assert_non_null(json_add_int64(o, "c", INT64_MIN));
	assert_null(json_add_int64(NULL, "a", 1));
	assert_null(json_add_int64(o, NULL, 1));
	s = json_print(o);
	assert_string_equal(s, "{\"a\":9007199254740993,\"b\":-1,\"c\":-9223372036854775808}");
	free(s);
	cJSON_Delete(o);
}

#define VALID(s) assert_true(json_utf8_valid(s, sizeof(s) - 1))
#define INVALID(s) assert_false(json_utf8_valid(s, sizeof(s) - 1))

static void test_utf8(void **state)
{
	(void)state;
	VALID("");
	VALID("plain ascii");
	VALID("\xc3\xa9");
	VALID("\xe2\x82\xac");
	VALID("\xf0\x9f\x98\x80");
	VALID("\xf4\x8f\xbf\xbf"); /* U+10FFFF */
	VALID("\xef\xbb\xbf");
	INVALID("\x80");
	INVALID("\xc3");
	INVALID("\xc3\x28");
	INVALID("\xc0\x80"); /* overlong NUL */
	INVALID("\xe0\x80\xaf"); /* overlong */
	INVALID("\xed\xa0\x80"); /* surrogate */
	INVALID("\xf4\x90\x80\x80"); /* above U+10FFFF */
	INVALID("\xf8\x88\x80\x80\x80");
	INVALID("\xff");
	INVALID("a\xe2\x82");
	assert_true(json_utf8_valid(NULL, 0));
	assert_false(json_utf8_valid(NULL, 1));
}

static void expect_trim(const char *in, const char *want)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%s", in);
	json_utf8_trim_tail(buf);
	assert_string_equal(buf, want);
}

static void test_trim_tail(void **state)
{
	(void)state;
	expect_trim("", "");
	expect_trim("abc", "abc");
	expect_trim("ab\xc3\xa9", "ab\xc3\xa9");
	expect_trim("ab\xc3", "ab");
	expect_trim("ab\xe2\x82", "ab");
	expect_trim("ab\xe2\x82\xac", "ab\xe2\x82\xac");
	expect_trim("ab\xf0\x9f\x98", "ab");
	expect_trim("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");
	expect_trim("a\x80", "a");
	json_utf8_trim_tail(NULL);
}

static void test_prefix(void **state)
{
	(void)state;
	assert_int_equal(json_utf8_prefix("", 4), 0);
	assert_int_equal(json_utf8_prefix("abc", 4), 3);
	assert_int_equal(json_utf8_prefix("abcd", 4), 4);
	assert_int_equal(json_utf8_prefix("abcde", 4), 4);
	/* "ab" then the euro sign (3 bytes): a cut inside it drops the whole character. */
	assert_int_equal(json_utf8_prefix("ab\xe2\x82\xac", 5), 5);
	assert_int_equal(json_utf8_prefix("ab\xe2\x82\xac", 4), 2);
	assert_int_equal(json_utf8_prefix("ab\xe2\x82\xac", 3), 2);
	assert_int_equal(json_utf8_prefix("ab\xe2\x82\xac"
	                                  "d",
	                                  5),
	                 5);
	assert_int_equal(json_utf8_prefix("\xf0\x9f\x98\x80", 3), 0);
}

static void test_array_has_string(void **state)
{
	cJSON *a = cJSON_Parse("[1,\"x\",null,\"node\"]");
	cJSON *o = cJSON_Parse("{\"k\":\"node\"}");

	(void)state;
	assert_true(json_array_has_string(a, "node"));
	assert_true(json_array_has_string(a, "x"));
	assert_false(json_array_has_string(a, "no"));
	assert_false(json_array_has_string(a, NULL));
	assert_false(json_array_has_string(o, "node")); /* only arrays */
	assert_false(json_array_has_string(NULL, "node"));
	cJSON_Delete(a);
	cJSON_Delete(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_accessors),        cmocka_unit_test(test_add_int64),
	        cmocka_unit_test(test_trim_tail),        cmocka_unit_test(test_prefix),
	        cmocka_unit_test(test_array_has_string), cmocka_unit_test(test_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
