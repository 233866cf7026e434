/* matcher.h: JSON-subset matching for scenario expectations, JSON paths, ${var} substitution. */
#ifndef CLAWPAIR_MATCHER_H
#define CLAWPAIR_MATCHER_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* True when actual matches expected:
 *  - objects: every listed key matches (other keys in actual are ignored); a key whose expected
 *    value is {"$absent": true} must be missing;
 *  - arrays: every expected element matches a distinct element of actual (any order);
 *    {"$exact": [...]} requires the same length and element-wise matches in order;
 *  - scalars: equal (numbers by value);
 *  - operators: {"$type": "string|number|array|object|bool|null"}, {"$regex": "ERE"} (on
 *    strings), {"$not": m}, {"$len": N} (strings: bytes, arrays, objects: members),
 *    {"$absent": true}, and any combination of them in one object.
 * On a mismatch, why (may be NULL) gets a short path-qualified reason. */
bool matcher_match(const cJSON *expected, const cJSON *actual, char *why, size_t whysz);

/* Looks up a dotted path with [N] indices ("payload.pending[0].requestId") under root.
 * Returns a borrowed node, or NULL. */
const cJSON *matcher_path(const cJSON *root, const char *path);

/* Variables for ${name} substitution. */
struct matcher_vars {
	char **names;
	char **values;
	size_t n, cap;
};
void matcher_vars_init(struct matcher_vars *v);
void matcher_vars_finish(struct matcher_vars *v);
int matcher_vars_set(struct matcher_vars *v, const char *name, const char *value);
const char *matcher_vars_get(const struct matcher_vars *v, const char *name);

/* Returns a malloc'd copy of s with every ${name} replaced; an unknown name is an error:
 * NULL, and *unknown (may be NULL) points into s at the name. */
char *matcher_subst(const struct matcher_vars *v, const char *s, const char **unknown);
/* Deep copy of j with substitution in every string (and object key). A string that is exactly
 * "${name}" whose value parses as a JSON number stays a string: values are strings.
 * Returns NULL on an unknown variable (name in unknown, >= 64 bytes) or allocation failure. */
cJSON *matcher_subst_json(const struct matcher_vars *v, const cJSON *j, char *unknown,
                          size_t unknownsz);

/* Deep merge of patch into target (objects merged recursively, null deletes the key,
 * anything else replaces). Takes nothing: patch is copied. Returns 0 or -1. */
int matcher_merge(cJSON *target, const cJSON *patch);

#endif
