/* test_random.c: shapes of the random identifiers of protocol/random.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "b64url.h"
#include "identity.h"
#include "random.h"

static bool is_hex_lower(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void test_uuid(void **state)
{
	char a[37], b[37];
	(void)state;

	assert_int_equal(identity_global_init(), 0);
	for (int n = 0; n < 200; n++) {
		uuid_v4(a);
		assert_int_equal(strlen(a), 36);
		for (int i = 0; i < 36; i++) {
			if (i == 8 || i == 13 || i == 18 || i == 23)
				assert_int_equal(a[i], '-');
			else
				assert_true(is_hex_lower(a[i]));
		}
		assert_int_equal(a[14], '4');
		assert_non_null(strchr("89ab", a[19]));
	}
	uuid_v4(b);
	assert_string_not_equal(a, b);
}

static void test_tokens(void **state)
{
	char a[33], b[33], c[44], d[44];
	uint8_t raw[40];
	size_t n = 0;
	(void)state;

	token_random_hex32(a);
	token_random_hex32(b);
	assert_int_equal(strlen(a), 32);
	for (int i = 0; i < 32; i++)
		assert_true(is_hex_lower(a[i]));
	assert_string_not_equal(a, b);

	token_random_b64url43(c);
	token_random_b64url43(d);
	assert_int_equal(strlen(c), 43);
	assert_int_equal(b64url_decode(c, 43, raw, sizeof(raw), &n), 0);
	assert_int_equal(n, 32);
	assert_string_not_equal(c, d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_uuid),
	        cmocka_unit_test(test_tokens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
