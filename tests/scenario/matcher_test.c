/* matcher_test.c: JSON-subset matching, paths, variables and merging of scenario/matcher.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "matcher.h"

static bool m(const char *exp, const char *act, char *why, size_t whysz)
{
	cJSON *e = cJSON_Parse(exp), *a = act ? cJSON_Parse(act) : NULL;
	bool r;

	assert_non_null(e);
	if (act)
		assert_non_null(a);
	r = matcher_match(e, a, why, whysz);
	cJSON_Delete(e);
	cJSON_Delete(a);
	return r;
}

static void test_subset_objects(void **state)
{
	char why[256];
	(void)state;

	assert_true(m("{\"ok\":true}", "{\"ok\":true,\"id\":\"r1\"}", why, sizeof(why)));
	assert_false(m("{\"ok\":true}", "{\"ok\":false}", why, sizeof(why)));
	assert_non_null(strstr(why, "/ok"));
	assert_false(m("{\"a\":{\"b\":1}}", "{\"a\":{}}", why, sizeof(why)));
	assert_non_null(strstr(why, "/a/b"));
	assert_non_null(strstr(why, "missing"));
	assert_true(m("{\"n\":4}", "{\"n\":4.0}", NULL, 0));
	assert_false(m("{\"n\":4}", "{\"n\":\"4\"}", NULL, 0));
	assert_false(m("{\"s\":\"x\"}", "{\"s\":\"xy\"}", NULL, 0));
	assert_true(m("{\"z\":null}", "{\"z\":null}", NULL, 0));
	assert_false(m("{\"z\":null}", "{\"z\":0}", NULL, 0));
	assert_false(m("{\"o\":{}}", "{\"o\":[]}", NULL, 0));
}

static void test_arrays(void **state)
{
	char why[256];
	(void)state;

	/* any order, distinct elements */
	assert_true(m("[{\"id\":\"b\"},{\"id\":\"a\"}]", "[{\"id\":\"a\",\"x\":1},{\"id\":\"b\"}]",
	              NULL, 0));
	assert_false(m("[{\"id\":\"a\"},{\"id\":\"a\"}]", "[{\"id\":\"a\"},{\"id\":\"b\"}]", why,
	               sizeof(why)));
	assert_non_null(strstr(why, "no element matches"));
	assert_true(m("[]", "[1,2]", NULL, 0));
	assert_true(m("{\"$exact\":[1,2]}", "[1,2]", NULL, 0));
	assert_false(m("{\"$exact\":[1,2]}", "[2,1]", NULL, 0));
	assert_false(m("{\"$exact\":[]}", "[1]", why, sizeof(why)));
	assert_non_null(strstr(why, "exactly 0"));
	assert_false(m("[1]", "{\"0\":1}", NULL, 0));
}

static void test_operators(void **state)
{
	char why[256];
	(void)state;

	assert_true(m("{\"t\":{\"$type\":\"string\"}}", "{\"t\":\"x\"}", NULL, 0));
	assert_false(m("{\"t\":{\"$type\":\"number\"}}", "{\"t\":\"x\"}", why, sizeof(why)));
	assert_non_null(strstr(why, "expected type number, got string"));
	assert_true(m("{\"t\":{\"$type\":\"bool\"}}", "{\"t\":false}", NULL, 0));
	assert_true(m("{\"t\":{\"$type\":\"null\"}}", "{\"t\":null}", NULL, 0));
	assert_true(m("{\"gone\":{\"$absent\":true}}", "{\"other\":1}", NULL, 0));
	assert_false(m("{\"gone\":{\"$absent\":true}}", "{\"gone\":1}", NULL, 0));
	assert_true(
	        m("{\"n\":{\"$regex\":\"^[0-9a-f]{8}-\"}}", "{\"n\":\"473a3502-c0\"}", NULL, 0));
	assert_false(
	        m("{\"n\":{\"$regex\":\"^[0-9a-f]{8}-\"}}", "{\"n\":\"XYZ\"}", why, sizeof(why)));
	assert_non_null(strstr(why, "does not match"));
	assert_false(m("{\"n\":{\"$regex\":\"x\"}}", "{\"n\":5}", NULL, 0));
	assert_true(m("{\"c\":{\"$not\":\"PAIRING_REQUIRED\"}}", "{\"c\":\"PAIRING_EXPIRED\"}",
	              NULL, 0));
	assert_false(m("{\"c\":{\"$not\":\"PAIRING_REQUIRED\"}}", "{\"c\":\"PAIRING_REQUIRED\"}",
	               NULL, 0));
	assert_true(m("{\"p\":{\"$len\":2}}", "{\"p\":[1,2]}", NULL, 0));
	assert_true(m("{\"p\":{\"$len\":3}}", "{\"p\":\"abc\"}", NULL, 0));
	assert_false(m("{\"p\":{\"$len\":0}}", "{\"p\":[1]}", why, sizeof(why)));
	assert_non_null(strstr(why, "length"));
	/* combined operators */
	assert_true(m("{\"p\":{\"$type\":\"array\",\"$len\":1}}", "{\"p\":[7]}", NULL, 0));
	assert_false(m("{\"p\":{\"$bogus\":1}}", "{\"p\":1}", why, sizeof(why)));
	assert_non_null(strstr(why, "unknown operator"));
	/* a missing value fails every operator but $absent and $not */
	assert_false(m("{\"p\":{\"$type\":\"string\"}}", "{}", NULL, 0));
	/* $sum: numbers and numeric strings (captures), exact for millisecond times */
	assert_true(m("{\"e\":{\"$sum\":[\"1795479066100\",300000]}}", "{\"e\":1795479366100}",
	              NULL, 0));
	assert_false(m("{\"e\":{\"$sum\":[\"1795479066100\",300000]}}", "{\"e\":1795479366101}",
	               why, sizeof(why)));
	assert_non_null(strstr(why, "at /e: expected 1795479366100 (a $sum), got 1795479366101"));
	assert_false(m("{\"e\":{\"$sum\":[1]}}", "{\"e\":\"1\"}", why, sizeof(why)));
	assert_non_null(strstr(why, "got string"));
	assert_false(m("{\"e\":{\"$sum\":[\"12x\"]}}", "{\"e\":12}", why, sizeof(why)));
	assert_non_null(strstr(why, "not a number"));
	assert_false(m("{\"e\":{\"$sum\":[]}}", "{\"e\":0}", NULL, 0));
}

static void test_paths(void **state)
{
	cJSON *j = cJSON_Parse("{\"payload\":{\"pending\":[{\"requestId\":\"a\"},{\"requestId\":"
	                       "\"b\"}],\"n\":3},\"ok\":true}");
	(void)state;

	assert_string_equal(cJSON_GetStringValue(matcher_path(j, "payload.pending[1].requestId")),
	                    "b");
	assert_true(cJSON_IsTrue(matcher_path(j, "ok")));
	assert_int_equal((int)cJSON_GetNumberValue(matcher_path(j, "payload.n")), 3);
	assert_null(matcher_path(j, "payload.pending[2].requestId"));
	assert_null(matcher_path(j, "payload.missing"));
	assert_null(matcher_path(j, "payload.pending[x]"));
	assert_null(matcher_path(j, "ok.deeper"));
	cJSON_Delete(j);
}

static void test_vars_and_subst(void **state)
{
	struct matcher_vars v;
	const char *unknown;
	char *s, uk[64];
	cJSON *t, *r;
	(void)state;

	matcher_vars_init(&v);
	assert_int_equal(matcher_vars_set(&v, "rid", "1234"), 0);
	assert_int_equal(matcher_vars_set(&v, "n1.deviceId", "abcd"), 0);
	assert_int_equal(matcher_vars_set(&v, "rid", "5678"), 0);
	assert_string_equal(matcher_vars_get(&v, "rid"), "5678");
	s = matcher_subst(&v, "id=${rid}/${n1.deviceId}$x{", &unknown);
	assert_string_equal(s, "id=5678/abcd$x{");
	free(s);
	assert_null(matcher_subst(&v, "${nope}", &unknown));
	assert_non_null(unknown);
	assert_int_equal(strncmp(unknown, "nope", 4), 0);

	t = cJSON_Parse("{\"params\":{\"requestId\":\"${rid}\",\"list\":[\"${n1.deviceId}\",2]},"
	                "\"${rid}\":1}");
	r = matcher_subst_json(&v, t, uk, sizeof(uk));
	assert_non_null(r);
	assert_string_equal(cJSON_GetStringValue(matcher_path(r, "params.requestId")), "5678");
	assert_string_equal(cJSON_GetStringValue(matcher_path(r, "params.list[0]")), "abcd");
	assert_non_null(cJSON_GetObjectItem(r, "5678"));
	/* the original is untouched */
	assert_string_equal(cJSON_GetStringValue(matcher_path(t, "params.requestId")), "${rid}");
	cJSON_Delete(r);
	cJSON_Delete(t);
	t = cJSON_Parse("[\"${missing}\"]");
	assert_null(matcher_subst_json(&v, t, uk, sizeof(uk)));
	assert_string_equal(uk, "missing");
	cJSON_Delete(t);
	matcher_vars_finish(&v);
	matcher_vars_finish(NULL);
}

static void test_merge(void **state)
{
	cJSON *t = cJSON_Parse("{\"client\":{\"id\":\"a\",\"mode\":\"node\"},\"role\":\"node\","
	                       "\"scopes\":[]}");
	cJSON *p = cJSON_Parse("{\"client\":{\"id\":\"bogus\",\"extra\":1},\"role\":null,"
	                       "\"scopes\":[\"x\"],\"new\":true}");
	char *out;
	(void)state;

	assert_int_equal(matcher_merge(t, p), 0);
	out = cJSON_PrintUnformatted(t);
	assert_string_equal(out, "{\"client\":{\"id\":\"bogus\",\"mode\":\"node\",\"extra\":1},"
	                         "\"scopes\":[\"x\"],\"new\":true}");
	free(out);
	assert_int_equal(matcher_merge(t, cJSON_GetObjectItem(p, "scopes")), -1);
	cJSON_Delete(t);
	cJSON_Delete(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_subset_objects), cmocka_unit_test(test_arrays),
	        cmocka_unit_test(test_operators),      cmocka_unit_test(test_paths),
	        cmocka_unit_test(test_vars_and_subst), cmocka_unit_test(test_merge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
