/* json.c: small typed accessors over cJSON and a UTF-8 check. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* obj[key], or NULL when obj is not an object. */
static const cJSON *member(const cJSON *obj, const char *key)
{
	if (!cJSON_IsObject(obj) || !key)
		return NULL;
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

const char *json_get_string(const cJSON *obj, const char *key)
{
	const cJSON *it = member(obj, key);

	return cJSON_IsString(it) ? it->valuestring : NULL;
}

bool json_is_int64(const cJSON *item)
{
	double v;

	if (!cJSON_IsNumber(item))
		return false;
	v = item->valuedouble;
	if (!isfinite(v) || v != floor(v))
		return false;
	return v >= -(double)JSON_MAX_SAFE_INTEGER && v <= (double)JSON_MAX_SAFE_INTEGER;
}

bool json_get_int64(const cJSON *obj, const char *key, int64_t *out)
{
	const cJSON *it = member(obj, key);

	if (!out || !json_is_int64(it))
		return false;
	*out = (int64_t)it->valuedouble;
	return true;
}

bool json_get_bool(const cJSON *obj, const char *key, bool *out)
{
	const cJSON *it = member(obj, key);

	if (!out || !cJSON_IsBool(it))
		return false;
	*out = cJSON_IsTrue(it);
	return true;
}

bool json_array_has_string(const cJSON *arr, const char *s)
{
	const cJSON *e;

	if (!cJSON_IsArray(arr) || !s)
		return false;
	cJSON_ArrayForEach(e, arr)
	{
		if (cJSON_IsString(e) && strcmp(e->valuestring, s) == 0)
			return true;
	}
	return false;
}

bool json_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	if (!s)
		return len == 0;
	while (i < len) {
		unsigned char c = p[i];
		size_t n;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
			min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

size_t json_utf8_prefix(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (n <= max)
		return n;
	/* Back up over continuation bytes to the lead byte, which starts the character cut. */
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

void json_utf8_trim_tail(char *s)
{
	size_t n, start, need;
	unsigned char lead;

	if (!s)
		return;
	n = strlen(s);
	start = n;
	while (start > 0 && n - start < 4 && ((unsigned char)s[start - 1] & 0xc0) == 0x80)
		start--;
	if (start == 0)
		return;
	lead = (unsigned char)s[start - 1];
	if (lead < 0x80) {
		/* Continuation bytes without a lead byte, if any, are garbage. */
		s[start] = '\0';
		return;
	}
	need = (lead & 0xe0) == 0xc0   ? 2
	       : (lead & 0xf0) == 0xe0 ? 3
	       : (lead & 0xf8) == 0xf0 ? 4
	                               : 0;
	if (need == 0 || n - (start - 1) < need)
		s[start - 1] = '\0';
}

cJSON *json_add_int64(cJSON *obj, const char *key, int64_t v)
{
	char buf[24];

	if (!cJSON_IsObject(obj) || !key)
		return NULL;
	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return cJSON_AddRawToObject(obj, key, buf);
}

char *json_print(const cJSON *item)
{
	if (!item)
		return NULL;
	return cJSON_PrintUnformatted(item);
}
