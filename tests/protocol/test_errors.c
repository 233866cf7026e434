/* test_errors.c: sanity of the outcome table protocol/errors.def and its lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "errors.h"

static void test_lookup_bounds(void **state)
{
	(void)state;
	assert_null(cp_err_info(CP_OK));
	assert_null(cp_err_info(CP_ERR__COUNT));
	assert_null(cp_err_info((enum cp_err) - 1));
	assert_null(cp_err_by_details_code(NULL));
	assert_null(cp_err_by_details_code("NO_SUCH_CODE"));
	assert_null(cp_err_by_close_code(0));
	assert_null(cp_err_by_close_code(1234));
	for (int e = 1; e < CP_ERR__COUNT; e++) {
		const struct cp_err_info *i = cp_err_info((enum cp_err)e);
		assert_non_null(i);
		assert_int_equal(i->err, e);
	}
}

static void test_rows_sane(void **state)
{
	static const char *const wire_codes[] = {
	        "NOT_LINKED",  "NOT_PAIRED", "AGENT_TIMEOUT",     "INVALID_REQUEST",
	        "UNAVAILABLE", "FORBIDDEN",  "APPROVAL_NOT_FOUND"};
	(void)state;

	for (int e = 1; e < CP_ERR__COUNT; e++) {
		const struct cp_err_info *i = cp_err_info((enum cp_err)e);
		bool known = i->wire_code == NULL;

		assert_non_null(i->name);
		assert_true(strncmp(i->name, "CP_ERR_", 7) == 0);
		assert_non_null(i->details_code);
		assert_true(i->details_code[0] != '\0');
		for (const char *c = i->details_code; *c; c++)
			assert_true((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
			            *c == '_');
		assert_non_null(i->message);
		assert_true(i->message[0] != '\0');
		assert_non_null(i->close_reason);
		assert_true(strlen(i->close_reason) <= 120);
		for (size_t k = 0; k < sizeof(wire_codes) / sizeof(wire_codes[0]); k++)
			if (i->wire_code && strcmp(i->wire_code, wire_codes[k]) == 0)
				known = true;
		assert_true(known);
		if (i->close_code != 0) {
			/* A closing row needs a reason and a code a peer may legally receive. */
			assert_true(i->close_reason[0] != '\0');
			assert_true((i->close_code >= 1000 && i->close_code <= 1014) ||
			            (i->close_code >= 3000 && i->close_code <= 4999));
			assert_true(i->close_code != 1004 && i->close_code != 1005 &&
			            i->close_code != 1006);
		} else {
			/* A row that keeps the connection open must answer with a res. */
			assert_non_null(i->wire_code);
			assert_string_equal(i->close_reason, "");
		}
		/* No res and no close would be a silent outcome. */
		assert_true(i->wire_code != NULL || i->close_code != 0);
	}
}

static void test_unique(void **state)
{
	(void)state;
	for (int a = 1; a < CP_ERR__COUNT; a++) {
		const struct cp_err_info *x = cp_err_info((enum cp_err)a);
		assert_ptr_equal(cp_err_by_details_code(x->details_code), x);
		for (int b = a + 1; b < CP_ERR__COUNT; b++) {
			const struct cp_err_info *y = cp_err_info((enum cp_err)b);
			assert_string_not_equal(x->details_code, y->details_code);
			assert_string_not_equal(x->name, y->name);
		}
	}
}

/* The spec's fixed close codes: each belongs to exactly one outcome. */
static void test_close_codes(void **state)
{
	static const struct {
		int code;
		enum cp_err err;
	} fixed[] = {
	        {4403, CP_ERR_PAIRING_REJECTED},    {4408, CP_ERR_PAIRING_EXPIRED},
	        {4409, CP_ERR_PAIRING_SUPERSEDED},  {4430, CP_ERR_PENDING_LIMIT_IP},
	        {4503, CP_ERR_PENDING_LIMIT_TOTAL}, {1001, CP_ERR_SHUTDOWN},
	        {4008, CP_ERR_HANDSHAKE_TIMEOUT},   {1009, CP_ERR_PAYLOAD_TOO_LARGE},
	        {4410, CP_ERR_DEVICE_REMOVED},      {1002, CP_ERR_PROTOCOL_MISMATCH},
	};
	(void)state;

	for (size_t k = 0; k < sizeof(fixed) / sizeof(fixed[0]); k++) {
		int n = 0;
		const struct cp_err_info *i = cp_err_by_close_code(fixed[k].code);
		assert_non_null(i);
		assert_int_equal(i->err, fixed[k].err);
		for (int e = 1; e < CP_ERR__COUNT; e++)
			if (cp_err_info((enum cp_err)e)->close_code == fixed[k].code)
				n++;
		assert_int_equal(n, 1);
	}
	assert_string_equal(cp_err_info(CP_ERR_PAIRING_REQUIRED)->close_reason, "pairing required");
	assert_int_equal(cp_err_info(CP_ERR_PAIRING_REQUIRED)->close_code, 1008);
	assert_string_equal(cp_err_info(CP_ERR_INVALID_FRAME)->close_reason,
	                    "invalid request frame");
	assert_null(cp_err_info(CP_ERR_INVALID_FRAME)->wire_code);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_lookup_bounds),
	        cmocka_unit_test(test_rows_sane),
	        cmocka_unit_test(test_unique),
	        cmocka_unit_test(test_close_codes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
