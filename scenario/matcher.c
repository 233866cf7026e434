/* matcher.c: JSON-subset matching, JSON paths and ${var} substitution for the scenario engine. */
#include "matcher.h"

#include <ctype.h>
#include <stdarg.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void say(char *why, size_t whysz, const char *path, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void say(char *why, size_t whysz, const char *path, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!why || !whysz)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(why, whysz, "at %s: %s", *path ? path : "/", msg);
}

static const char *type_name(const cJSON *j)
{
	if (!j)
		return "absent";
	if (cJSON_IsString(j))
		return "string";
	if (cJSON_IsNumber(j))
		return "number";
	if (cJSON_IsArray(j))
		return "array";
	if (cJSON_IsObject(j))
		return "object";
	if (cJSON_IsBool(j))
		return "bool";
	if (cJSON_IsNull(j))
		return "null";
	return "invalid";
}

static bool is_operator_object(const cJSON *e)
{
	const cJSON *k;

	if (!cJSON_IsObject(e) || !e->child)
		return false;
	cJSON_ArrayForEach(k, e)
	{
		if (!k->string || k->string[0] != '$')
			return false;
	}
	return true;
}

static bool match_at(const cJSON *e, const cJSON *a, char *why, size_t whysz, const char *path);

static void child_path(char *out, size_t outsz, const char *path, const char *key, int index)
{
	if (key)
		snprintf(out, outsz, "%s/%s", path, key);
	else
		snprintf(out, outsz, "%s/%d", path, index);
}

/* A term of $sum: a number, or a string that is one (a captured "${var}" is a string). */
static bool sum_term(const cJSON *t, double *out)
{
	char *end;

	if (cJSON_IsNumber(t)) {
		*out = t->valuedouble;
		return true;
	}
	if (!cJSON_IsString(t) || !t->valuestring[0])
		return false;
	*out = strtod(t->valuestring, &end);
	return *end == '\0' && isfinite(*out);
}

/* {"$sum": [x, y, ...]}: the actual value is a number equal to x + y + ... (integers below 2^53
 * add exactly), e.g. expiresAtMs == ts + TTL. */
static bool match_sum(const cJSON *op, const cJSON *a, char *why, size_t whysz, const char *path)
{
	const cJSON *t;
	double sum = 0, v;
	char want[40], got[40];

	if (!cJSON_IsArray(op) || !op->child) {
		say(why, whysz, path, "$sum needs a non-empty array");
		return false;
	}
	cJSON_ArrayForEach(t, op)
	{
		if (!sum_term(t, &v)) {
			char *s = cJSON_PrintUnformatted(t);

			say(why, whysz, path, "$sum term %s is not a number", s ? s : "?");
			free(s);
			return false;
		}
		sum += v;
	}
	snprintf(want, sizeof(want), "%.17g", sum);
	if (!cJSON_IsNumber(a) || a->valuedouble != sum) {
		snprintf(got, sizeof(got), "%.17g", cJSON_IsNumber(a) ? a->valuedouble : 0.0);
		say(why, whysz, path, "expected %s (a $sum), got %s", want,
		    cJSON_IsNumber(a) ? got : type_name(a));
		return false;
	}
	return true;
}

static bool match_ops(const cJSON *e, const cJSON *a, char *why, size_t whysz, const char *path)
{
	const cJSON *op;

	cJSON_ArrayForEach(op, e)
	{
		const char *k = op->string;

		if (!strcmp(k, "$absent")) {
			if (cJSON_IsTrue(op) != (a == NULL)) {
				if (cJSON_IsTrue(op))
					say(why, whysz, path, "expected absent, got %s",
					    type_name(a));
				else
					say(why, whysz, path, "expected present");
				return false;
			}
			continue;
		}
		if (!a) {
			say(why, whysz, path, "missing (expected %s)", k);
			return false;
		}
		if (!strcmp(k, "$type")) {
			if (!cJSON_IsString(op) || strcmp(op->valuestring, type_name(a))) {
				say(why, whysz, path, "expected type %s, got %s",
				    cJSON_IsString(op) ? op->valuestring : "?", type_name(a));
				return false;
			}
		} else if (!strcmp(k, "$regex")) {
			regex_t re;
			bool ok;

			if (!cJSON_IsString(op) ||
			    regcomp(&re, op->valuestring, REG_EXTENDED | REG_NOSUB)) {
				say(why, whysz, path, "bad $regex");
				return false;
			}
			ok = cJSON_IsString(a) && regexec(&re, a->valuestring, 0, NULL, 0) == 0;
			regfree(&re);
			if (!ok) {
				char *t = cJSON_PrintUnformatted(a);

				say(why, whysz, path, "%s does not match /%s/", t ? t : "?",
				    op->valuestring);
				free(t);
				return false;
			}
		} else if (!strcmp(k, "$not")) {
			if (match_at(op, a, NULL, 0, path)) {
				char *t = cJSON_PrintUnformatted(op);

				say(why, whysz, path, "matches $not %s", t ? t : "?");
				free(t);
				return false;
			}
		} else if (!strcmp(k, "$len")) {
			double n = -1;

			if (cJSON_IsString(a))
				n = (double)strlen(a->valuestring);
			else if (cJSON_IsArray(a) || cJSON_IsObject(a))
				n = cJSON_GetArraySize(a);
			if (!cJSON_IsNumber(op) || n != op->valuedouble) {
				char got[32], want[32];

				snprintf(got, sizeof(got), "%g", n);
				snprintf(want, sizeof(want), "%g",
				         cJSON_IsNumber(op) ? op->valuedouble : -1.0);
				say(why, whysz, path, "expected length %s, got %s", want, got);
				return false;
			}
		} else if (!strcmp(k, "$sum")) {
			if (!match_sum(op, a, why, whysz, path))
				return false;
		} else if (!strcmp(k, "$exact")) {
			int ne, na, i = 0;
			const cJSON *x;

			if (!cJSON_IsArray(op) || !cJSON_IsArray(a)) {
				say(why, whysz, path, "$exact needs arrays (got %s)", type_name(a));
				return false;
			}
			ne = cJSON_GetArraySize(op);
			na = cJSON_GetArraySize(a);
			if (ne != na) {
				char s1[16], s2[16];

				snprintf(s1, sizeof(s1), "%d", ne);
				snprintf(s2, sizeof(s2), "%d", na);
				say(why, whysz, path, "expected exactly %s elements, got %s", s1,
				    s2);
				return false;
			}
			cJSON_ArrayForEach(x, op)
			{
				char cp[512];

				child_path(cp, sizeof(cp), path, NULL, i);
				if (!match_at(x, cJSON_GetArrayItem(a, i), why, whysz, cp))
					return false;
				i++;
			}
		} else {
			say(why, whysz, path, "unknown operator %s", k);
			return false;
		}
	}
	return true;
}

static bool match_at(const cJSON *e, const cJSON *a, char *why, size_t whysz, const char *path)
{
	if (is_operator_object(e))
		return match_ops(e, a, why, whysz, path);
	if (!a) {
		char *t = cJSON_PrintUnformatted(e);

		say(why, whysz, path, "missing (expected %s)", t ? t : "?");
		free(t);
		return false;
	}
	if (cJSON_IsObject(e)) {
		const cJSON *k;

		if (!cJSON_IsObject(a)) {
			say(why, whysz, path, "expected an object, got %s", type_name(a));
			return false;
		}
		cJSON_ArrayForEach(k, e)
		{
			char cp[512];

			child_path(cp, sizeof(cp), path, k->string, 0);
			if (!match_at(k, cJSON_GetObjectItemCaseSensitive(a, k->string), why, whysz,
			              cp))
				return false;
		}
		return true;
	}
	if (cJSON_IsArray(e)) {
		int na, i = 0;
		bool *used;
		const cJSON *x;

		if (!cJSON_IsArray(a)) {
			say(why, whysz, path, "expected an array, got %s", type_name(a));
			return false;
		}
		na = cJSON_GetArraySize(a);
		used = calloc((size_t)na + 1, sizeof(*used));
		if (!used)
			return false;
		/* greedy: first unused match; expected elements are usually distinct enough */
		cJSON_ArrayForEach(x, e)
		{
			bool found = false;

			for (int j = 0; j < na && !found; j++) {
				if (!used[j] &&
				    match_at(x, cJSON_GetArrayItem(a, j), NULL, 0, path)) {
					used[j] = true;
					found = true;
				}
			}
			if (!found) {
				char *t = cJSON_PrintUnformatted(x);
				char cp[512];

				child_path(cp, sizeof(cp), path, NULL, i);
				say(why, whysz, cp, "no element matches %s", t ? t : "?");
				free(t);
				free(used);
				return false;
			}
			i++;
		}
		free(used);
		return true;
	}
	if (cJSON_IsString(e)) {
		if (!cJSON_IsString(a) || strcmp(e->valuestring, a->valuestring)) {
			char *t = cJSON_PrintUnformatted(a);

			say(why, whysz, path, "expected \"%s\", got %s", e->valuestring,
			    t ? t : "?");
			free(t);
			return false;
		}
		return true;
	}
	if (cJSON_IsNumber(e)) {
		if (!cJSON_IsNumber(a) || fabs(e->valuedouble - a->valuedouble) > 1e-9) {
			char *t = cJSON_PrintUnformatted(a), want[40];

			snprintf(want, sizeof(want), "%.17g", e->valuedouble);
			say(why, whysz, path, "expected %s, got %s", want, t ? t : "?");
			free(t);
			return false;
		}
		return true;
	}
	if (cJSON_IsBool(e) || cJSON_IsNull(e)) {
		if ((cJSON_IsTrue(e) && !cJSON_IsTrue(a)) ||
		    (cJSON_IsFalse(e) && !cJSON_IsFalse(a)) ||
		    (cJSON_IsNull(e) && !cJSON_IsNull(a))) {
			char *t = cJSON_PrintUnformatted(a);

			say(why, whysz, path, "expected %s, got %s",
			    cJSON_IsNull(e)   ? "null"
			    : cJSON_IsTrue(e) ? "true"
			                      : "false",
			    t ? t : "?");
			free(t);
			return false;
		}
		return true;
	}
	say(why, whysz, path, "unsupported expectation");
	return false;
}

bool matcher_match(const cJSON *expected, const cJSON *actual, char *why, size_t whysz)
{
	if (why && whysz)
		why[0] = '\0';
	return match_at(expected, actual, why, whysz, "");
}

const cJSON *matcher_path(const cJSON *root, const char *path)
{
	const cJSON *cur = root;
	const char *p = path;

	if (!path)
		return NULL;
	while (cur && *p) {
		if (*p == '.') {
			p++;
			continue;
		}
		if (*p == '[') {
			char *end;
			long i = strtol(p + 1, &end, 10);

			if (*end != ']' || i < 0 || !cJSON_IsArray(cur))
				return NULL;
			cur = cJSON_GetArrayItem(cur, (int)i);
			p = end + 1;
			continue;
		}
		{
			size_t n = strcspn(p, ".[");
			char key[256];

			if (n >= sizeof(key) || !cJSON_IsObject(cur))
				return NULL;
			memcpy(key, p, n);
			key[n] = '\0';
			cur = cJSON_GetObjectItemCaseSensitive(cur, key);
			p += n;
		}
	}
	return cur;
}

void matcher_vars_init(struct matcher_vars *v)
{
	memset(v, 0, sizeof(*v));
}

void matcher_vars_finish(struct matcher_vars *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++) {
		free(v->names[i]);
		free(v->values[i]);
	}
	free(v->names);
	free(v->values);
	memset(v, 0, sizeof(*v));
}

int matcher_vars_set(struct matcher_vars *v, const char *name, const char *value)
{
	char *val = strdup(value ? value : "");

	if (!val)
		return -1;
	for (size_t i = 0; i < v->n; i++) {
		if (!strcmp(v->names[i], name)) {
			free(v->values[i]);
			v->values[i] = val;
			return 0;
		}
	}
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 8;
		char **n = realloc(v->names, cap * sizeof(*n));

		if (!n)
			goto fail;
		v->names = n;
		n = realloc(v->values, cap * sizeof(*n));
		if (!n)
			goto fail;
		v->values = n;
		v->cap = cap;
	}
	v->names[v->n] = strdup(name);
	if (!v->names[v->n])
		goto fail;
	v->values[v->n++] = val;
	return 0;
fail:
	free(val);
	return -1;
}

const char *matcher_vars_get(const struct matcher_vars *v, const char *name)
{
	for (size_t i = 0; i < v->n; i++) {
		if (!strcmp(v->names[i], name))
			return v->values[i];
	}
	return NULL;
}

char *matcher_subst(const struct matcher_vars *v, const char *s, const char **unknown)
{
	size_t cap = strlen(s) + 64, len = 0;
	char *out = malloc(cap);
	const char *p = s;

	if (unknown)
		*unknown = NULL;
	if (!out)
		return NULL;
	while (*p) {
		const char *val = NULL, *close = NULL;
		size_t add;

		if (p[0] == '$' && p[1] == '{' && (close = strchr(p + 2, '}'))) {
			char name[128];
			size_t n = (size_t)(close - (p + 2));

			if (n >= sizeof(name) || !(memcpy(name, p + 2, n), name[n] = '\0',
			                           val = matcher_vars_get(v, name))) {
				if (unknown)
					*unknown = p + 2;
				free(out);
				return NULL;
			}
		}
		add = val ? strlen(val) : 1;
		if (len + add + 1 > cap) {
			char *nb;

			cap = (len + add + 1) * 2;
			nb = realloc(out, cap);
			if (!nb) {
				free(out);
				return NULL;
			}
			out = nb;
		}
		if (val) {
			memcpy(out + len, val, add);
			p = close + 1;
		} else {
			out[len] = *p++;
		}
		len += add;
	}
	out[len] = '\0';
	return out;
}

static bool subst_into(const struct matcher_vars *v, cJSON *j, char *unknown, size_t unknownsz)
{
	cJSON *c;

	if (j->string && strstr(j->string, "${")) {
		const char *u;
		char *k = matcher_subst(v, j->string, &u);

		if (!k) {
			if (u)
				snprintf(unknown, unknownsz, "%.*s", (int)strcspn(u, "}"), u);
			return false;
		}
		free(j->string);
		j->string = k;
	}
	if (cJSON_IsString(j) && strstr(j->valuestring, "${")) {
		const char *u;
		char *s = matcher_subst(v, j->valuestring, &u);

		if (!s) {
			if (u)
				snprintf(unknown, unknownsz, "%.*s", (int)strcspn(u, "}"), u);
			return false;
		}
		free(j->valuestring);
		j->valuestring = s;
	}
	for (c = j->child; c; c = c->next) {
		if (!subst_into(v, c, unknown, unknownsz))
			return false;
	}
	return true;
}

cJSON *matcher_subst_json(const struct matcher_vars *v, const cJSON *j, char *unknown,
                          size_t unknownsz)
{
	cJSON *copy;

	if (unknown && unknownsz)
		unknown[0] = '\0';
	if (!j)
		return NULL;
	copy = cJSON_Duplicate(j, true);
	if (!copy)
		return NULL;
	if (!subst_into(v, copy, unknown, unknownsz)) {
		cJSON_Delete(copy);
		return NULL;
	}
	return copy;
}

int matcher_merge(cJSON *target, const cJSON *patch)
{
	const cJSON *p;

	if (!cJSON_IsObject(target) || !cJSON_IsObject(patch))
		return -1;
	cJSON_ArrayForEach(p, patch)
	{
		cJSON *t = cJSON_GetObjectItemCaseSensitive(target, p->string);

		if (cJSON_IsNull(p)) {
			cJSON_DeleteItemFromObjectCaseSensitive(target, p->string);
		} else if (cJSON_IsObject(p) && cJSON_IsObject(t)) {
			if (matcher_merge(t, p) < 0)
				return -1;
		} else {
			cJSON *dup = cJSON_Duplicate(p, true);

			if (!dup)
				return -1;
			if (t)
				cJSON_ReplaceItemInObjectCaseSensitive(target, p->string, dup);
			else
				cJSON_AddItemToObject(target, p->string, dup);
		}
	}
	return 0;
}
