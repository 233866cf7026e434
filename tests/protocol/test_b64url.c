/* test_b64url.c: unit tests of protocol/b64url.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "b64url.h"

static void expect_decode(const char *in, const char *want, size_t wantlen)
{
	uint8_t out[128];
	size_t n = 12345;

	assert_int_equal(b64url_decode(in, strlen(in), out, sizeof(out), &n), 0);
	assert_int_equal(n, wantlen);
	assert_memory_equal(out, want, wantlen);
}

static void expect_reject(const char *in, size_t len)
{
	uint8_t out[128];
	size_t n = 0;

	assert_int_equal(b64url_decode(in, len, out, sizeof(out), &n), -1);
}

/* RFC 4648 section 10 vectors, unpadded. */
static void test_rfc4648(void **state)
{
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	(void)state;

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		char out[32];
		size_t len = strlen(plain[i]);
		assert_int_equal(b64url_encode((const uint8_t *)plain[i], len, out, sizeof(out)),
		                 (int)strlen(enc[i]));
		assert_string_equal(out, enc[i]);
		assert_true(B64URL_ENCODED_SIZE(len) >= strlen(enc[i]) + 1);
		expect_decode(enc[i], plain[i], len);
	}
	/* Padded forms decode too. */
	expect_decode("Zg==", "f", 1);
	expect_decode("Zm8=", "fo", 2);
	expect_decode("Zm9vYg==", "foob", 4);
}

static void test_url_alphabet(void **state)
{
	const uint8_t in[] = {0xfb, 0xff, 0xbf};
	char out[8];
	(void)state;

	assert_int_equal(b64url_encode(in, sizeof(in), out, sizeof(out)), 4);
	assert_string_equal(out, "-_-_");
	/* Standard alphabet is accepted as OpenClaw does. */
	expect_decode("+/+/", (const char *)in, 3);
	expect_decode("-_-_", (const char *)in, 3);
	expect_decode("-/+_", (const char *)in, 3);
}

static void test_exact_size_macro(void **state)
{
	uint8_t in[64];
	(void)state;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof(in); len++) {
		char out[128];
		uint8_t back[64];
		size_t n = 0;
		int w = b64url_encode(in, len, out, B64URL_ENCODED_SIZE(len));
		assert_int_equal(w + 1, (int)B64URL_ENCODED_SIZE(len));
		/* One byte less is refused, not overrun. */
		assert_int_equal(b64url_encode(in, len, out, B64URL_ENCODED_SIZE(len) - 1), -1);
		assert_int_equal(b64url_decode(out, (size_t)w, back, len, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(back, in, len);
		if (len > 0)
			assert_int_equal(b64url_decode(out, (size_t)w, back, len - 1, &n), -1);
	}
	assert_int_equal(B64URL_ENCODED_SIZE(32), 44);
	assert_int_equal(B64URL_ENCODED_SIZE(64), 87);
}

static void test_malformed(void **state)
{
	(void)state;
	expect_reject("Zm9v!", 5);
	expect_reject(" Zm9v", 5);
	expect_reject("Zm9v ", 5);
	expect_reject("Zm 9v", 5);
	expect_reject("Zm9v\n", 5);
	expect_reject("Z", 1); /* 1 mod 4 characters cannot be bytes */
	expect_reject("Zm9vY", 5);
	expect_reject("Zg===", 5); /* three pad characters */
	expect_reject("Z=g=", 4); /* pad in the middle */
	expect_reject("=", 1);
	expect_reject("Zm\0v", 4); /* embedded NUL */
	expect_reject("Zm9v\xc3\xa9", 6);
	expect_reject("Zm9v.", 5);
	{
		uint8_t out[4];
		size_t n;
		assert_int_equal(b64url_decode(NULL, 0, out, sizeof(out), &n), -1);
		assert_int_equal(b64url_decode("Zg", 2, out, sizeof(out), NULL), -1);
		assert_int_equal(b64url_encode((const uint8_t *)"f", 1, NULL, 8), -1);
	}
}

static void test_empty(void **state)
{
	uint8_t out[1];
	size_t n = 99;
	char s[1];
	(void)state;

	assert_int_equal(b64url_decode("", 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(b64url_encode(NULL, 0, s, sizeof(s)), 0);
	assert_string_equal(s, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rfc4648),
	        cmocka_unit_test(test_url_alphabet),
	        cmocka_unit_test(test_exact_size_macro),
	        cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
