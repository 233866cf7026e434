/* json.h: small typed accessors over cJSON and a UTF-8 check shared by the protocol code. */
#ifndef CLAWPAIR_JSON_H
#define CLAWPAIR_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Largest integer a JSON number holds exactly (JavaScript's Number.MAX_SAFE_INTEGER). */
#define JSON_MAX_SAFE_INTEGER 9007199254740991LL

/* The string value of obj[key] (case-sensitive key), or NULL when absent or not a string. */
const char *json_get_string(const cJSON *obj, const char *key);

/* True when item is a number with an integral value within +-JSON_MAX_SAFE_INTEGER. */
bool json_is_int64(const cJSON *item);

/* Sets *out to obj[key] when it is an integral number (json_is_int64). Returns false otherwise
 * and leaves *out untouched. */
bool json_get_int64(const cJSON *obj, const char *key, int64_t *out);

/* Sets *out to obj[key] when it is a JSON boolean. */
bool json_get_bool(const cJSON *obj, const char *key, bool *out);

/* True when arr is an array with a string element equal to s. */
bool json_array_has_string(const cJSON *arr, const char *s);

/* Strict UTF-8 check (no overlongs, no surrogates, nothing above U+10FFFF). */
bool json_utf8_valid(const char *s, size_t len);

/* Length of the longest prefix of s of at most max bytes that does not end inside a UTF-8
 * sequence (for quoting client input in a bounded message or close reason). */
size_t json_utf8_prefix(const char *s, size_t max);

/* Cuts an incomplete UTF-8 sequence off the end of s (after a byte-wise truncation). */
void json_utf8_trim_tail(char *s);

/* Adds obj[key] = v as an exact integer. cJSON prints numbers with 15 significant digits, which
 * would round values above 10^15; this writes the decimal digits as they are. */
cJSON *json_add_int64(cJSON *obj, const char *key, int64_t v);

/* Compact JSON text of item (malloc'd; free with free()), or NULL. */
char *json_print(const cJSON *item);

#endif
