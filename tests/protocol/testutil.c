/* testutil.c: helpers shared by the protocol unit tests (vector file, hex). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

cJSON *testutil_load_vectors(void)
{
	const char *root = getenv("CLAWPAIR_SOURCE_ROOT");
	char path[4096];
	char *buf;
	long len;
	FILE *f;
	cJSON *j;

	assert_non_null(root);
	snprintf(path, sizeof(path), "%s/tests/vectors/device-auth.json", root);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len > 0);
	rewind(f);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	j = cJSON_Parse(buf);
	free(buf);
	assert_non_null(j);
	return j;
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void testutil_hex(const char *hex, uint8_t *out, size_t n)
{
	assert_non_null(hex);
	assert_int_equal(strlen(hex), 2 * n);
	for (size_t i = 0; i < n; i++) {
		int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
		assert_true(hi >= 0 && lo >= 0);
		out[i] = (uint8_t)(hi << 4 | lo);
	}
}

const char *testutil_str(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsString(it))
		fail_msg("vector member %s missing or not a string", key);
	return it->valuestring;
}

const cJSON *testutil_obj(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!it)
		fail_msg("vector member %s missing", key);
	return it;
}
