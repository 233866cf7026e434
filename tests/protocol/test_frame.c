/* test_frame.c: unit tests of protocol/frame.c (envelopes, builders, close reasons). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"

static void expect_bad(const char *text, size_t len)
{
	struct frame f;
	const char *why = NULL;

	if (frame_parse(text, len, &f, &why) == 0) {
		frame_finish(&f);
		fail_msg("frame accepted: %.*s", (int)len, text);
	}
	assert_non_null(why);
	assert_null(f.root);
}

#define BAD(s) expect_bad(s, sizeof(s) - 1)

static void test_parse_req(void **state)
{
	const char *t =
	        "{\"type\":\"req\",\"id\":\"1\",\"method\":\"connect\",\"params\":{\"a\":1}}";
	struct frame f;
	const char *why = NULL;
	(void)state;

	assert_int_equal(frame_parse(t, strlen(t), &f, &why), 0);
	assert_int_equal(f.type, FRAME_REQ);
	assert_string_equal(f.id, "1");
	assert_string_equal(f.method, "connect");
	assert_true(cJSON_IsObject(f.params));
	assert_int_equal(f.seq, -1);
	frame_finish(&f);
	assert_null(f.root);
	frame_finish(&f); /* idempotent */
	frame_finish(NULL);

	/* Not NUL-terminated: only len bytes are read. */
	{
		char buf[64];
		const char *r = "{\"type\":\"req\",\"id\":\"x\",\"method\":\"m\"}";
		memcpy(buf, r, strlen(r));
		memset(buf + strlen(r), '}', sizeof(buf) - strlen(r));
		assert_int_equal(frame_parse(buf, strlen(r), &f, &why), 0);
		assert_null(f.params);
		frame_finish(&f);
	}
	/* Known optional keys of 2026.9.6, surrounding whitespace */
	t = " {\"type\":\"req\",\"id\":\"2\",\"method\":\"m\",\"traceparent\":\"00-a-b-01\","
	    "\"expectedProfileId\":\"p\"}\n";
	assert_int_equal(frame_parse(t, strlen(t), &f, NULL), 0);
	frame_finish(&f);
}

static void test_parse_res_event(void **state)
{
	const char *t;
	struct frame f;
	(void)state;

	t = "{\"type\":\"res\",\"id\":\"7\",\"ok\":false,\"error\":{\"code\":\"NOT_PAIRED\"}}";
	assert_int_equal(frame_parse(t, strlen(t), &f, NULL), 0);
	assert_int_equal(f.type, FRAME_RES);
	assert_false(f.ok);
	assert_string_equal(cJSON_GetObjectItem(f.error, "code")->valuestring, "NOT_PAIRED");
	assert_null(f.payload);
	frame_finish(&f);

	t = "{\"type\":\"res\",\"id\":\"7\",\"ok\":true,\"payload\":[1]}";
	assert_int_equal(frame_parse(t, strlen(t), &f, NULL), 0);
	assert_true(f.ok);
	assert_true(cJSON_IsArray(f.payload));
	frame_finish(&f);

	t = "{\"type\":\"event\",\"event\":\"tick\",\"payload\":{\"ts\":5},\"seq\":3}";
	assert_int_equal(frame_parse(t, strlen(t), &f, NULL), 0);
	assert_int_equal(f.type, FRAME_EVENT);
	assert_string_equal(f.event, "tick");
	assert_int_equal(f.seq, 3);
	frame_finish(&f);

	/* Unknown keys in res/event are tolerated (a client must read newer gateways). */
	t = "{\"type\":\"event\",\"event\":\"connect.challenge\",\"payload\":{},"
	    "\"stateVersion\":{\"presence\":1,\"health\":1},\"recipientProfileId\":\"x\"}";
	assert_int_equal(frame_parse(t, strlen(t), &f, NULL), 0);
	assert_int_equal(f.seq, -1);
	frame_finish(&f);
}

static void test_parse_malformed(void **state)
{
	(void)state;
	BAD("");
	BAD("null");
	BAD("[]");
	BAD("\"req\"");
	BAD("42");
	BAD("{");
	BAD("{}");
	BAD("{\"type\":\"req\"");
	BAD("{\"type\":1,\"id\":\"1\",\"method\":\"m\"}");
	BAD("{\"type\":\"REQ\",\"id\":\"1\",\"method\":\"m\"}");
	BAD("{\"type\":\"request\",\"id\":\"1\",\"method\":\"m\"}");
	BAD("{\"type\":\"req\",\"method\":\"m\"}");
	BAD("{\"type\":\"req\",\"id\":\"\",\"method\":\"m\"}");
	BAD("{\"type\":\"req\",\"id\":1,\"method\":\"m\"}");
	BAD("{\"type\":\"req\",\"id\":\"1\"}");
	BAD("{\"type\":\"req\",\"id\":\"1\",\"method\":\"\"}");
	BAD("{\"type\":\"req\",\"id\":\"1\",\"method\":[\"m\"]}");
	BAD("{\"type\":\"req\",\"id\":\"1\",\"method\":\"m\",\"extra\":1}");
	BAD("{\"type\":\"req\",\"id\":\"1\",\"method\":\"m\",\"traceparent\":5}");
	BAD("{\"type\":\"req\",\"id\":\"1\",\"method\":\"m\"} x");
	BAD("{\"type\":\"req\",\"id\":\"1\",\"method\":\"m\"}{}");
	BAD("{\"type\":\"res\",\"id\":\"1\"}");
	BAD("{\"type\":\"res\",\"id\":\"1\",\"ok\":\"true\"}");
	BAD("{\"type\":\"res\",\"id\":\"1\",\"ok\":1}");
	BAD("{\"type\":\"res\",\"ok\":true}");
	BAD("{\"type\":\"res\",\"id\":\"1\",\"ok\":false,\"error\":\"x\"}");
	BAD("{\"type\":\"event\"}");
	BAD("{\"type\":\"event\",\"event\":\"\"}");
	BAD("{\"type\":\"event\",\"event\":\"e\",\"seq\":-1}");
	BAD("{\"type\":\"event\",\"event\":\"e\",\"seq\":1.5}");
	BAD("{\"type\":\"event\",\"event\":\"e\",\"seq\":\"1\"}");
	BAD("{\"type\":\"event\",\"event\":\"e\",\"seq\":1e300}");
	/* Embedded NUL, raw and escaped */
	BAD("{\"type\":\"req\",\"id\":\"1\0\",\"method\":\"m\"}");
	BAD("{\"type\":\"req\",\"id\":\"1\\u0000x\",\"method\":\"m\"}");
	BAD("{\"type\":\"req\",\"id\":\"1\",\"method\":\"m\",\"params\":{\"k\\u0000\":1}}");
	/* Invalid UTF-8: lone continuation, overlong, surrogate */
	BAD("{\"type\":\"req\",\"id\":\"\x80\",\"method\":\"m\"}");
	BAD("{\"type\":\"req\",\"id\":\"\xc0\xaf\",\"method\":\"m\"}");
	BAD("{\"type\":\"req\",\"id\":\"\xed\xa0\x80\",\"method\":\"m\"}");
	BAD("{\"type\":\"req\",\"id\":\"\xe2\x82\",\"method\":\"m\"}");
	{
		struct frame f;
		assert_int_equal(frame_parse(NULL, 3, &f, NULL), -1);
		assert_int_equal(frame_parse("{}", 2, NULL, NULL), -1);
	}
}

static void test_parse_escapes_ok(void **state)
{
	/* An escaped backslash before "u0000" is text, not a NUL; multibyte UTF-8 is fine. */
	const char *t =
	        "{\"type\":\"req\",\"id\":\"a\\\\u0000\",\"method\":\"\xc3\xa9\xf0\x9f\x98\x80\"}";
	struct frame f;
	(void)state;

	assert_int_equal(frame_parse(t, strlen(t), &f, NULL), 0);
	assert_string_equal(f.id, "a\\u0000");
	assert_string_equal(f.method, "\xc3\xa9\xf0\x9f\x98\x80");
	frame_finish(&f);
}

static void test_parse_deep_nesting(void **state)
{
	/* Deep nesting is refused by cJSON's limit, without recursion trouble. */
	size_t depth = 100000, o = 0;
	char *t = malloc(depth * 2 + 64);
	struct frame f;
	(void)state;

	assert_non_null(t);
	o += (size_t)sprintf(t, "{\"type\":\"req\",\"id\":\"1\",\"method\":\"m\",\"params\":");
	for (size_t i = 0; i < depth; i++)
		t[o++] = '[';
	for (size_t i = 0; i < depth; i++)
		t[o++] = ']';
	t[o++] = '}';
	assert_int_equal(frame_parse(t, o, &f, NULL), -1);
	free(t);
}

static void test_build(void **state)
{
	char *s;
	cJSON *p;
	(void)state;

	p = cJSON_CreateObject();
	cJSON_AddNumberToObject(p, "x", 1);
	s = frame_build_req("1", "node.list", p);
	assert_string_equal(
	        s, "{\"type\":\"req\",\"id\":\"1\",\"method\":\"node.list\",\"params\":{\"x\":1}}");
	free(s);
	s = frame_build_req("1", "m", NULL);
	assert_string_equal(s, "{\"type\":\"req\",\"id\":\"1\",\"method\":\"m\"}");
	free(s);
	/* Ownership is taken even on bad arguments (valgrind would see a leak otherwise). */
	assert_null(frame_build_req(NULL, "m", cJSON_CreateObject()));
	assert_null(frame_build_req("1", NULL, cJSON_CreateObject()));

	s = frame_build_res_ok("9", cJSON_CreateObject());
	assert_string_equal(s, "{\"type\":\"res\",\"id\":\"9\",\"ok\":true,\"payload\":{}}");
	free(s);
	s = frame_build_res_ok("9", NULL);
	assert_string_equal(s, "{\"type\":\"res\",\"id\":\"9\",\"ok\":true}");
	free(s);
	assert_null(frame_build_res_ok(NULL, cJSON_CreateArray()));

	p = cJSON_CreateObject();
	cJSON_AddNumberToObject(p, "ts", 5);
	s = frame_build_event("tick", p, 1);
	assert_string_equal(
	        s, "{\"type\":\"event\",\"event\":\"tick\",\"payload\":{\"ts\":5},\"seq\":1}");
	free(s);
	s = frame_build_event("connect.challenge", NULL, -1);
	assert_string_equal(s, "{\"type\":\"event\",\"event\":\"connect.challenge\"}");
	free(s);
	s = frame_build_event("e", NULL, 9007199254740991LL);
	assert_string_equal(s, "{\"type\":\"event\",\"event\":\"e\",\"seq\":9007199254740991}");
	free(s);
	assert_null(frame_build_event(NULL, cJSON_CreateObject(), 1));

	/* Strings are escaped: a built frame parses back to the same values. */
	{
		struct frame f;
		s = frame_build_req("i\"d\n", "m\\", NULL);
		assert_int_equal(frame_parse(s, strlen(s), &f, NULL), 0);
		assert_string_equal(f.id, "i\"d\n");
		assert_string_equal(f.method, "m\\");
		frame_finish(&f);
		free(s);
	}
}

static void test_build_res_err(void **state)
{
	char *s;
	cJSON *extra;
	(void)state;

	s = frame_build_res_err("c1", CP_ERR_PAIRING_REJECTED, NULL, NULL);
	assert_string_equal(s, "{\"type\":\"res\",\"id\":\"c1\",\"ok\":false,\"error\":{\"code\":"
	                       "\"NOT_PAIRED\",\"message\":\"pairing rejected by an operator\","
	                       "\"details\":{\"code\":\"PAIRING_REJECTED\"}}}");
	free(s);

	extra = cJSON_CreateObject();
	cJSON_AddNumberToObject(extra, "expectedProtocol", 4);
	cJSON_AddStringToObject(extra, "code", "SPOOFED");
	cJSON_AddItemToObject(extra, "pendingRequestIds", cJSON_CreateArray());
	s = frame_build_res_err("c2", CP_ERR_PROTOCOL_MISMATCH, "protocol mismatch: x", extra);
	assert_string_equal(s,
	                    "{\"type\":\"res\",\"id\":\"c2\",\"ok\":false,\"error\":{\"code\":"
	                    "\"INVALID_REQUEST\",\"message\":\"protocol mismatch: x\",\"details\":"
	                    "{\"code\":\"PROTOCOL_MISMATCH\",\"expectedProtocol\":4,"
	                    "\"pendingRequestIds\":[]}}}");
	free(s);

	/* Every row with a wire code builds a res whose codes are the table's. */
	for (int e = 1; e < CP_ERR__COUNT; e++) {
		const struct cp_err_info *i = cp_err_info((enum cp_err)e);
		struct frame f;
		s = frame_build_res_err("x", (enum cp_err)e, NULL, NULL);
		if (!i->wire_code) {
			assert_null(s);
			continue;
		}
		assert_non_null(s);
		assert_int_equal(frame_parse(s, strlen(s), &f, NULL), 0);
		assert_false(f.ok);
		assert_string_equal(cJSON_GetObjectItem(f.error, "code")->valuestring,
		                    i->wire_code);
		assert_string_equal(cJSON_GetObjectItem(f.error, "message")->valuestring,
		                    i->message);
		assert_string_equal(
		        cJSON_GetObjectItem(cJSON_GetObjectItem(f.error, "details"), "code")
		                ->valuestring,
		        i->details_code);
		frame_finish(&f);
		free(s);
	}
	/* Non-object extras are dropped; bad arguments free what they were given. */
	s = frame_build_res_err("x", CP_ERR_INVALID_PARAMS, NULL, cJSON_CreateString("s"));
	assert_string_equal(s, "{\"type\":\"res\",\"id\":\"x\",\"ok\":false,\"error\":{\"code\":"
	                       "\"INVALID_REQUEST\",\"message\":\"invalid params\",\"details\":"
	                       "{\"code\":\"INVALID_PARAMS\"}}}");
	free(s);
	assert_null(frame_build_res_err("x", CP_OK, NULL, cJSON_CreateObject()));
	assert_null(frame_build_res_err("x", CP_ERR__COUNT, NULL, cJSON_CreateObject()));
	assert_null(frame_build_res_err(NULL, CP_ERR_INVALID_PARAMS, NULL, cJSON_CreateObject()));
	assert_null(frame_build_res_err("x", CP_ERR_INVALID_FRAME, NULL, cJSON_CreateObject()));
}

static void test_close_reason(void **state)
{
	char out[124], big[400];
	(void)state;

	frame_close_reason("pairing rejected", out, sizeof(out));
	assert_string_equal(out, "pairing rejected");
	frame_close_reason(NULL, out, sizeof(out));
	assert_string_equal(out, "");

	memset(big, 'a', 300);
	big[300] = '\0';
	frame_close_reason(big, out, sizeof(out));
	assert_int_equal(strlen(out), 120);

	/* 119 ASCII bytes then a 2-byte character: it does not fit, cut to 119. */
	memset(big, 'a', 119);
	memcpy(big + 119, "\xc3\xa9zz", 5);
	frame_close_reason(big, out, sizeof(out));
	assert_int_equal(strlen(out), 119);
	/* 118 + 2 bytes = 120 fits exactly. */
	memset(big, 'a', 118);
	memcpy(big + 118, "\xc3\xa9zz", 5);
	frame_close_reason(big, out, sizeof(out));
	assert_int_equal(strlen(out), 120);
	assert_memory_equal(out + 118, "\xc3\xa9", 2);
	/* 4-byte characters: 30 of them are 120 bytes; 31 are cut back to 30. */
	for (int i = 0; i < 31; i++)
		memcpy(big + 4 * i, "\xf0\x9f\x98\x80", 4);
	big[124] = '\0';
	frame_close_reason(big, out, sizeof(out));
	assert_int_equal(strlen(out), 120);
	memmove(big + 1, big, 125);
	big[0] = 'a';
	frame_close_reason(big, out, sizeof(out));
	assert_int_equal(strlen(out), 117);
	/* A smaller buffer is respected, also on a boundary. */
	{
		char small[4];
		frame_close_reason("\xc3\xa9\xc3\xa9", small, sizeof(small));
		assert_string_equal(small, "\xc3\xa9");
		frame_close_reason("abc", small, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_req),          cmocka_unit_test(test_parse_res_event),
	        cmocka_unit_test(test_parse_malformed),    cmocka_unit_test(test_parse_escapes_ok),
	        cmocka_unit_test(test_parse_deep_nesting), cmocka_unit_test(test_build),
	        cmocka_unit_test(test_build_res_err),      cmocka_unit_test(test_close_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
