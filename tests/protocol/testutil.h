/* testutil.h: helpers shared by the protocol unit tests (vector file, hex). */
#ifndef CLAWPAIR_TESTS_PROTOCOL_TESTUTIL_H
#define CLAWPAIR_TESTS_PROTOCOL_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Parses $CLAWPAIR_SOURCE_ROOT/tests/vectors/device-auth.json; fails the test if it cannot. */
cJSON *testutil_load_vectors(void);

/* Decodes exactly 2*n hex characters; fails the test otherwise. */
void testutil_hex(const char *hex, uint8_t *out, size_t n);

/* The named member, which must exist and be of the given kind; fails the test otherwise. */
const char *testutil_str(const cJSON *obj, const char *key);
const cJSON *testutil_obj(const cJSON *obj, const char *key);

#endif
