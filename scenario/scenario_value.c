/* scenario_value.c: the format's macros: text built from bytes ({"$hex"}, {"$repeat"},
 * {"$concat"}) and numbers the caller presets ("${conf.NAME}"). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "scenario_internal.h"

#define MAX_MACRO_BYTES (8u * 1024u * 1024u)
#define CONF_PREFIX "${conf."

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool scenario_is_macro(const cJSON *v)
{
	return cJSON_IsObject(v) && (cJSON_GetObjectItemCaseSensitive(v, "$repeat") ||
	                             cJSON_GetObjectItemCaseSensitive(v, "$concat") ||
	                             cJSON_GetObjectItemCaseSensitive(v, "$hex"));
}

static int repeat_bytes(const cJSON *v, const cJSON *x, struct strbuf *out, char *err, size_t errsz)
{
	const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(v, "count");
	size_t n, len;

	if (!cJSON_IsString(x) || !cJSON_IsNumber(cnt) || cnt->valuedouble < 0) {
		snprintf(err, errsz, "$repeat needs a string and a count");
		return -1;
	}
	n = (size_t)cnt->valuedouble;
	len = strlen(x->valuestring);
	if (len && n > MAX_MACRO_BYTES / len) {
		snprintf(err, errsz, "$repeat larger than %u bytes", MAX_MACRO_BYTES);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		strbuf_addn(out, x->valuestring, len);
	return 0;
}

static int hex_bytes(const cJSON *x, struct strbuf *out, char *err, size_t errsz)
{
	const char *h = cJSON_IsString(x) ? x->valuestring : NULL;
	size_t n = h ? strlen(h) : 1;

	if (!h || n % 2) {
		snprintf(err, errsz, "$hex needs an even number of hex digits");
		return -1;
	}
	for (size_t i = 0; i < n; i += 2) {
		int hi = hexval((unsigned char)h[i]), lo = hexval((unsigned char)h[i + 1]);
		char c;

		if (hi < 0 || lo < 0) {
			snprintf(err, errsz, "$hex: not a hex digit");
			return -1;
		}
		c = (char)(hi * 16 + lo);
		strbuf_addn(out, &c, 1);
	}
	return 0;
}

int scenario_value_bytes(const cJSON *v, struct strbuf *out, char *err, size_t errsz)
{
	const cJSON *x;

	if (cJSON_IsString(v)) {
		strbuf_add(out, v->valuestring);
	} else if ((x = cJSON_GetObjectItemCaseSensitive(v, "$repeat"))) {
		if (repeat_bytes(v, x, out, err, errsz) < 0)
			return -1;
	} else if ((x = cJSON_GetObjectItemCaseSensitive(v, "$concat"))) {
		const cJSON *part;

		if (!cJSON_IsArray(x)) {
			snprintf(err, errsz, "$concat needs an array");
			return -1;
		}
		cJSON_ArrayForEach(part, x)
		{
			if (scenario_value_bytes(part, out, err, errsz) < 0)
				return -1;
		}
	} else if ((x = cJSON_GetObjectItemCaseSensitive(v, "$hex"))) {
		if (hex_bytes(x, out, err, errsz) < 0)
			return -1;
	} else {
		snprintf(err, errsz, "expected a string, $repeat, $concat or $hex");
		return -1;
	}
	if (out->oom) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	return 0;
}

/* A macro outside a send step's text becomes a JSON string, which cannot hold a NUL. */
static cJSON *macro_string(const cJSON *j, char *err, size_t errsz)
{
	struct strbuf b;
	cJSON *out = NULL;

	strbuf_init(&b);
	if (scenario_value_bytes(j, &b, err, errsz) < 0)
		goto done;
	if (b.p && strlen(b.p) != b.len) {
		snprintf(err, errsz, "a NUL byte can only be in a send step's \"text\"");
		goto done;
	}
	out = cJSON_CreateString(b.p ? b.p : "");
	if (!out)
		snprintf(err, errsz, "out of memory");
done:
	strbuf_finish(&b);
	return out;
}

/* "${conf.NAME}" (the whole string) -> the caller's number NAME */
static cJSON *conf_number(const char *ref, const struct scenario_parse_opts *o, char *err,
                          size_t errsz)
{
	size_t n = strlen(ref), plen = strlen(CONF_PREFIX);

	if (n <= plen + 1 || ref[n - 1] != '}') {
		snprintf(err, errsz, "bad runner variable %.80s", ref);
		return NULL;
	}
	for (size_t i = 0; o && i < o->n_numbers; i++) {
		const char *name = o->numbers[i].name;

		if (strlen(name) == n - plen - 1 && !strncmp(ref + plen, name, n - plen - 1))
			return cJSON_CreateNumber(o->numbers[i].value);
	}
	snprintf(err, errsz, "unknown runner variable %.80s", ref);
	return NULL;
}

/* Where a value sits: a send step's "text" is the one place a macro stays a macro. */
enum place { PLACE_ROOT, PLACE_STEPS, PLACE_STEP, PLACE_OTHER };

static cJSON *expand(const cJSON *j, enum place at, const struct scenario_parse_opts *o, char *err,
                     size_t errsz);

/* A send step keeps its text as written (checked here): its bytes are built when it is sent. */
static cJSON *keep_send_text(const cJSON *text, char *err, size_t errsz)
{
	struct strbuf check;
	cJSON *out = NULL;

	strbuf_init(&check);
	if (scenario_value_bytes(text, &check, err, errsz) == 0) {
		out = cJSON_Duplicate(text, true);
		if (!out)
			snprintf(err, errsz, "out of memory");
	}
	strbuf_finish(&check);
	return out;
}

static enum place child_place(enum place at, const cJSON *child)
{
	if (at == PLACE_ROOT && child->string && !strcmp(child->string, "steps"))
		return PLACE_STEPS;
	return at == PLACE_STEPS ? PLACE_STEP : PLACE_OTHER;
}

static cJSON *expand_children(const cJSON *j, enum place at, const struct scenario_parse_opts *o,
                              char *err, size_t errsz)
{
	const char *op = at == PLACE_STEP ? json_get_string(j, "do") : NULL;
	bool is_send = op && !strcmp(op, "send");
	cJSON *out = cJSON_IsObject(j) ? cJSON_CreateObject() : cJSON_CreateArray();
	const cJSON *it;

	if (!out) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	cJSON_ArrayForEach(it, j)
	{
		cJSON *child;

		if (is_send && !strcmp(it->string, "text") && scenario_is_macro(it))
			child = keep_send_text(it, err, errsz);
		else
			child = expand(it, child_place(at, it), o, err, errsz);
		if (!child) {
			cJSON_Delete(out);
			return NULL;
		}
		if (cJSON_IsObject(j))
			cJSON_AddItemToObject(out, it->string, child);
		else
			cJSON_AddItemToArray(out, child);
	}
	return out;
}

static cJSON *expand(const cJSON *j, enum place at, const struct scenario_parse_opts *o, char *err,
                     size_t errsz)
{
	cJSON *out;

	if (scenario_is_macro(j))
		return macro_string(j, err, errsz);
	if (cJSON_IsString(j) && !strncmp(j->valuestring, CONF_PREFIX, strlen(CONF_PREFIX)))
		return conf_number(j->valuestring, o, err, errsz);
	if (cJSON_IsObject(j) || cJSON_IsArray(j))
		return expand_children(j, at, o, err, errsz);
	out = cJSON_Duplicate(j, false);
	if (!out)
		snprintf(err, errsz, "out of memory");
	return out;
}

cJSON *scenario_expand(const cJSON *root, const struct scenario_parse_opts *o, char *err,
                       size_t errsz)
{
	if (errsz)
		err[0] = '\0';
	return expand(root, PLACE_ROOT, o, err, errsz);
}
