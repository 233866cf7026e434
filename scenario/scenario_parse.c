/* scenario_parse.c: loading a scenario file: macros expanded, then actors, steps and their
 * fields validated, so a typo is an error and not a silently skipped check. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "scenario_internal.h"

static const char *const engine_needs[] = {"remote", "restart", "operator", NULL};

static bool key_allowed(const char *k, const char *const *allowed)
{
	for (size_t i = 0; allowed && allowed[i]; i++) {
		if (!strcmp(k, allowed[i]))
			return true;
	}
	return false;
}

static int check_keys(const cJSON *o, const char *const *allowed, const char *where, char *err,
                      size_t errsz)
{
	const cJSON *k;

	cJSON_ArrayForEach(k, o)
	{
		if (!key_allowed(k->string, allowed)) {
			snprintf(err, errsz, "%s: unknown key \"%s\"", where, k->string);
			return -1;
		}
	}
	return 0;
}

int scenario_find_actor(const struct scenario *s, const char *name)
{
	for (size_t i = 0; name && i < s->n_actors; i++) {
		if (!strcmp(s->actors[i].name, name))
			return (int)i;
	}
	return -1;
}

int scenario_parse_sig(const char *v, enum connect_sig *out)
{
	if (!v || !strcmp(v, "v2"))
		*out = CONNECT_SIG_V2;
	else if (!strcmp(v, "v3"))
		*out = CONNECT_SIG_V3;
	else if (!strcmp(v, "v1"))
		*out = CONNECT_SIG_V1;
	else if (!strcmp(v, "none"))
		*out = CONNECT_SIG_NONE;
	else if (!strcmp(v, "bad"))
		*out = CONNECT_SIG_BAD;
	else
		return -1;
	return 0;
}

/* ---------------------------------------------------------------- actors */

/* n bytes from 2n hex digits of s; -1 when one is not a hex digit. */
static int hex_decode(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < 2 * n; i++) {
		int c = s[i], v = c >= '0' && c <= '9'   ? c - '0'
		                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
		                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
		                                         : -1;

		if (v < 0)
			return -1;
		out[i / 2] = (uint8_t)(i % 2 ? (out[i / 2] << 4) | v : v);
	}
	return 0;
}

static int parse_identity(const struct scenario *s, struct scenario_actor_def *d, const cJSON *a,
                          const char *where, char *err, size_t errsz)
{
	const char *ident = json_get_string(a, "identity");

	if (cJSON_GetObjectItemCaseSensitive(a, "identity") && !ident) {
		snprintf(err, errsz, "%s: \"identity\" must be a string", where);
		return -1;
	}
	if (!ident) {
		d->ident = d->node ? SCENARIO_IDENT_FRESH : SCENARIO_IDENT_NONE;
	} else if (!strcmp(ident, "fresh")) {
		d->ident = SCENARIO_IDENT_FRESH;
	} else if (!strcmp(ident, "none")) {
		d->ident = SCENARIO_IDENT_NONE;
	} else if (!strncmp(ident, "seed:", 5)) {
		d->ident = SCENARIO_IDENT_SEED;
		if (strlen(ident + 5) != 2 * sizeof(d->seed) ||
		    hex_decode(ident + 5, d->seed, sizeof(d->seed)) < 0) {
			snprintf(err, errsz, "%s: identity \"seed:\" wants 64 hex digits", where);
			return -1;
		}
	} else if (!strncmp(ident, "same-as:", 8)) {
		d->ident = SCENARIO_IDENT_SAME_AS;
		d->same_as = scenario_find_actor(s, ident + 8);
		if (d->same_as < 0 || s->actors[d->same_as].ident == SCENARIO_IDENT_NONE) {
			snprintf(err, errsz,
			         "%s: identity \"%s\" must name an earlier actor with a key", where,
			         ident);
			return -1;
		}
	} else {
		snprintf(err, errsz, "%s: identity must be fresh, none, seed:HEX or same-as:ACTOR",
		         where);
		return -1;
	}
	return 0;
}

static int parse_scopes(const cJSON *v, const char *where, char *err, size_t errsz)
{
	const cJSON *x;

	if (!v)
		return 0;
	if (!cJSON_IsArray(v)) {
		snprintf(err, errsz, "%s: \"scopes\" must be an array of strings", where);
		return -1;
	}
	cJSON_ArrayForEach(x, v)
	{
		if (!cJSON_IsString(x)) {
			snprintf(err, errsz, "%s: \"scopes\" must be an array of strings", where);
			return -1;
		}
	}
	if (cJSON_GetArraySize(v) > 32) {
		snprintf(err, errsz, "%s: too many scopes", where);
		return -1;
	}
	return 0;
}

/* role, remote, token, bootstrapToken, override, sig, displayName */
static int parse_actor_fields(struct scenario_actor_def *d, const cJSON *a, const char *where,
                              char *err, size_t errsz)
{
	const char *role = json_get_string(a, "role");
	const cJSON *v;

	if (!role || (strcmp(role, "node") && strcmp(role, "operator"))) {
		snprintf(err, errsz, "%s: \"role\" must be \"node\" or \"operator\"", where);
		return -1;
	}
	d->node = !strcmp(role, "node");
	v = cJSON_GetObjectItemCaseSensitive(a, "remote");
	if (v && !cJSON_IsBool(v)) {
		snprintf(err, errsz, "%s: \"remote\" must be a boolean", where);
		return -1;
	}
	d->remote = cJSON_IsTrue(v);
	v = cJSON_GetObjectItemCaseSensitive(a, "token");
	if (v && !cJSON_IsNull(v) && !cJSON_IsString(v)) {
		snprintf(err, errsz, "%s: \"token\" must be a string or null", where);
		return -1;
	}
	d->token_null = cJSON_IsNull(v);
	d->token = cJSON_IsString(v) ? v->valuestring : NULL;
	v = cJSON_GetObjectItemCaseSensitive(a, "override");
	if (v && !cJSON_IsObject(v)) {
		snprintf(err, errsz, "%s: \"override\" must be an object", where);
		return -1;
	}
	d->override = v;
	if (scenario_parse_sig(json_get_string(a, "sig"), &d->sig) < 0) {
		snprintf(err, errsz, "%s: \"sig\" must be v2, v3, v1, none or bad", where);
		return -1;
	}
	d->display_name = json_get_string(a, "displayName");
	v = cJSON_GetObjectItemCaseSensitive(a, "bootstrapToken");
	if (v && !cJSON_IsString(v)) {
		snprintf(err, errsz, "%s: \"bootstrapToken\" must be a string", where);
		return -1;
	}
	d->bootstrap_token = json_get_string(a, "bootstrapToken");
	return 0;
}

static int parse_actors(struct scenario *s, const cJSON *actors, char *err, size_t errsz)
{
	static const char *const keys[] = {"role",           "remote",   "identity", "scopes",
	                                   "token",          "override", "sig",      "displayName",
	                                   "bootstrapToken", NULL};
	const cJSON *a;

	if (!cJSON_IsObject(actors) || !actors->child) {
		snprintf(err, errsz, "\"actors\" must be a non-empty object");
		return -1;
	}
	cJSON_ArrayForEach(a, actors)
	{
		struct scenario_actor_def *d = &s->actors[s->n_actors];
		char where[96];

		if (s->n_actors == SCENARIO_MAX_ACTORS) {
			snprintf(err, errsz, "more than %d actors", SCENARIO_MAX_ACTORS);
			return -1;
		}
		snprintf(where, sizeof(where), "actor \"%.40s\"", a->string);
		if (!cJSON_IsObject(a)) {
			snprintf(err, errsz, "%s: must be an object", where);
			return -1;
		}
		if (check_keys(a, keys, where, err, errsz) < 0)
			return -1;
		if (strlen(a->string) >= 32 || !*a->string) {
			snprintf(err, errsz, "%s: name must be 1..31 characters", where);
			return -1;
		}
		d->name = a->string;
		if (parse_actor_fields(d, a, where, err, errsz) < 0 ||
		    parse_identity(s, d, a, where, err, errsz) < 0 ||
		    parse_scopes(cJSON_GetObjectItemCaseSensitive(a, "scopes"), where, err, errsz) <
		            0)
			return -1;
		d->scopes = cJSON_GetObjectItemCaseSensitive(a, "scopes");
		s->n_actors++;
	}
	return 0;
}

/* ---------------------------------------------------------------- steps */

int scenario_check_headers(const cJSON *st, const char *where, char *err, size_t errsz)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(st, "headers"), *line;

	if (!h)
		return 0;
	if (!cJSON_IsArray(h)) {
		snprintf(err, errsz, "%s: \"headers\" must be an array of \"Name: value\" strings",
		         where);
		return -1;
	}
	cJSON_ArrayForEach(line, h)
	{
		const char *v = cJSON_IsString(line) ? line->valuestring : NULL;
		const char *colon = v ? strchr(v, ':') : NULL;

		if (!v || !colon || colon == v || strpbrk(v, "\r\n")) {
			snprintf(err, errsz,
			         "%s: every \"headers\" entry must be one \"Name: value\" line",
			         where);
			return -1;
		}
	}
	return 0;
}

static int check_connect_expect(const cJSON *e, const char *where, char *err, size_t errsz)
{
	static const char *const ek[] = {"error", "close", "hello-ok", "pending", "http", NULL};

	if (!e)
		return 0;
	if (cJSON_IsString(e)) {
		if (strcmp(e->valuestring, "hello-ok") && strcmp(e->valuestring, "pending") &&
		    strcmp(e->valuestring, "error") && strcmp(e->valuestring, "close")) {
			snprintf(err, errsz,
			         "%s (connect): \"expect\" must be hello-ok, pending, error, close "
			         "or {\"error\":..., \"close\":...}",
			         where);
			return -1;
		}
		return 0;
	}
	if (!cJSON_IsObject(e)) {
		snprintf(err, errsz, "%s (connect): \"expect\" must be a string or object", where);
		return -1;
	}
	return check_keys(e, ek, "connect expect", err, errsz);
}

static int check_connect(const cJSON *st, const char *where, char *err, size_t errsz)
{
	const char *sig = json_get_string(st, "sig"), *nonce = json_get_string(st, "nonce");
	enum connect_sig dummy;
	const cJSON *v;

	if (sig && scenario_parse_sig(sig, &dummy) < 0) {
		snprintf(err, errsz, "%s (connect): \"sig\" must be v2, v3, v1, none or bad",
		         where);
		return -1;
	}
	if (nonce && strcmp(nonce, "challenge") && strcmp(nonce, "wrong") &&
	    strcmp(nonce, "none")) {
		snprintf(err, errsz, "%s (connect): \"nonce\" must be challenge, wrong or none",
		         where);
		return -1;
	}
	v = cJSON_GetObjectItemCaseSensitive(st, "token");
	if (v && !cJSON_IsString(v) && !cJSON_IsNull(v)) {
		snprintf(err, errsz, "%s (connect): \"token\" must be a string or null", where);
		return -1;
	}
	v = cJSON_GetObjectItemCaseSensitive(st, "override");
	if (v && !cJSON_IsObject(v)) {
		snprintf(err, errsz, "%s (connect): \"override\" must be an object", where);
		return -1;
	}
	if (scenario_check_headers(st, where, err, errsz) < 0)
		return -1;
	return check_connect_expect(cJSON_GetObjectItemCaseSensitive(st, "expect"), where, err,
	                            errsz);
}

/* The fields a kind of step requires. */
static int check_required(const cJSON *st, const char *op, const char *where, char *err,
                          size_t errsz)
{
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(st, "text");

	if (!strcmp(op, "call") && !json_get_string(st, "method")) {
		snprintf(err, errsz, "%s (call): \"method\" is required", where);
		return -1;
	}
	if ((!strcmp(op, "expect-event") || !strcmp(op, "expect-no-event")) &&
	    !json_get_string(st, "event")) {
		snprintf(err, errsz, "%s (%s): \"event\" is required", where, op);
		return -1;
	}
	if (!strcmp(op, "expect-res") && !json_get_string(st, "id")) {
		snprintf(err, errsz, "%s (expect-res): \"id\" is required", where);
		return -1;
	}
	if (!strcmp(op, "send") && !text && !cJSON_GetObjectItemCaseSensitive(st, "frame")) {
		snprintf(err, errsz, "%s (send): \"text\" or \"frame\" is required", where);
		return -1;
	}
	if (!strcmp(op, "send") && text && !cJSON_IsString(text) && !scenario_is_macro(text)) {
		snprintf(err, errsz,
		         "%s (send): \"text\" must be a string or a $hex, $repeat or $concat macro",
		         where);
		return -1;
	}
	if (!strcmp(op, "sleep") && !cJSON_GetObjectItemCaseSensitive(st, "ms")) {
		snprintf(err, errsz, "%s (sleep): \"ms\" is required", where);
		return -1;
	}
	if (!strcmp(op, "connect"))
		return check_connect(st, where, err, errsz);
	if (!strcmp(op, "open"))
		return scenario_check_headers(st, where, err, errsz);
	return 0;
}

/* capture, timeout_ms, ms: the fields several kinds share */
static int check_common(const cJSON *st, const char *where, char *err, size_t errsz)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, "capture"), *c;

	if (v && !cJSON_IsObject(v)) {
		snprintf(err, errsz, "%s: \"capture\" must be an object", where);
		return -1;
	}
	cJSON_ArrayForEach(c, v)
	{
		if (!cJSON_IsString(c)) {
			snprintf(err, errsz, "%s: capture \"%s\" must be a path string", where,
			         c->string);
			return -1;
		}
	}
	v = cJSON_GetObjectItemCaseSensitive(st, "timeout_ms");
	if (v && (!cJSON_IsNumber(v) || v->valuedouble < 0)) {
		snprintf(err, errsz, "%s: \"timeout_ms\" must be a number >= 0", where);
		return -1;
	}
	v = cJSON_GetObjectItemCaseSensitive(st, "ms");
	if (v && (!cJSON_IsNumber(v) || v->valuedouble < 0)) {
		snprintf(err, errsz, "%s: \"ms\" must be a number >= 0", where);
		return -1;
	}
	return 0;
}

static int check_step(const struct scenario *s, const cJSON *st, int idx, char *err, size_t errsz)
{
	static const char *const common[] = {"actor", "do", "capture", "timeout_ms", "note", NULL};
	const char *op = json_get_string(st, "do"), *actor = json_get_string(st, "actor");
	const struct scenario_step_kind *k = scenario_step_kind(op);
	char where[64];
	const cJSON *k2;

	snprintf(where, sizeof(where), "step %d", idx);
	if (!cJSON_IsObject(st)) {
		snprintf(err, errsz, "%s: must be an object", where);
		return -1;
	}
	if (!k) {
		snprintf(err, errsz, "%s: unknown \"do\": %s", where, op ? op : "(missing)");
		return -1;
	}
	cJSON_ArrayForEach(k2, st)
	{
		if (key_allowed(k2->string, common) || key_allowed(k2->string, k->keys))
			continue;
		snprintf(err, errsz, "%s (%s): unknown key \"%s\"", where, op, k2->string);
		return -1;
	}
	if (k->needs_actor && scenario_find_actor(s, actor) < 0) {
		snprintf(err, errsz, "%s (%s): \"actor\" must name an actor", where, op);
		return -1;
	}
	if (actor && scenario_find_actor(s, actor) < 0) {
		snprintf(err, errsz, "%s (%s): unknown actor \"%s\"", where, op, actor);
		return -1;
	}
	if (check_common(st, where, err, errsz) < 0)
		return -1;
	return check_required(st, op, where, err, errsz);
}

/* ---------------------------------------------------------------- the file */

static int parse_needs(struct scenario *s, const struct scenario_parse_opts *o, char *err,
                       size_t errsz)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(s->root, "needs"), *x;
	size_t n = 0;

	if (!v)
		return 0;
	if (!cJSON_IsArray(v)) {
		snprintf(err, errsz, "scenario: \"needs\" must be an array");
		return -1;
	}
	s->needs = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*s->needs));
	if (!s->needs) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	cJSON_ArrayForEach(x, v)
	{
		if (!cJSON_IsString(x) ||
		    (!key_allowed(x->valuestring, engine_needs) &&
		     !key_allowed(x->valuestring, o ? o->extra_needs : NULL))) {
			snprintf(err, errsz,
			         "scenario: \"needs\" items are remote, restart or operator%s",
			         o && o->extra_needs && o->extra_needs[0] ? " (or the runner's)"
			                                                  : "");
			return -1;
		}
		s->needs[n++] = x->valuestring;
	}
	s->meta.needs = s->needs;
	s->meta.n_needs = n;
	return 0;
}

static int parse_top(struct scenario *s, const struct scenario_parse_opts *o, char *err,
                     size_t errsz)
{
	static const char *const top[] = {"id",       "title",    "requirement", "level",
	                                  "sentence", "diagnose", "timeout_ms",  "needs",
	                                  "actors",   "steps",    "description", "exclusive",
	                                  NULL};
	const cJSON *v;

	if (check_keys(s->root, top, "scenario", err, errsz) < 0)
		return -1;
	s->meta.id = json_get_string(s->root, "id");
	s->meta.title = json_get_string(s->root, "title");
	s->meta.requirement = json_get_string(s->root, "requirement");
	s->meta.level = json_get_string(s->root, "level");
	s->meta.sentence = json_get_string(s->root, "sentence");
	s->meta.diagnose = json_get_string(s->root, "diagnose");
	if (!s->meta.id) {
		snprintf(err, errsz, "scenario: \"id\" (string) is required");
		return -1;
	}
	v = cJSON_GetObjectItemCaseSensitive(s->root, "timeout_ms");
	if (v && (!cJSON_IsNumber(v) || v->valuedouble <= 0 || v->valuedouble > 3600000)) {
		snprintf(err, errsz, "scenario: \"timeout_ms\" must be a number in 1..3600000");
		return -1;
	}
	s->meta.timeout_ms = v ? (int)v->valuedouble : SCENARIO_DEFAULT_TIMEOUT_MS;
	return parse_needs(s, o, err, errsz);
}

static cJSON *parse_text(const char *json_text, const struct scenario_parse_opts *o, char *err,
                         size_t errsz)
{
	char *copy = strdup(json_text);
	cJSON *raw, *out;

	if (!copy) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	cJSON_Minify(copy); /* drops // and block comments */
	raw = cJSON_Parse(copy);
	if (!raw || !cJSON_IsObject(raw)) {
		/* cJSON's error pointer points into copy: read it before copy goes */
		const char *at = raw ? NULL : cJSON_GetErrorPtr();

		snprintf(err, errsz, "not a JSON object%s%.30s", at ? " near: " : "", at ? at : "");
		cJSON_Delete(raw);
		free(copy);
		return NULL;
	}
	free(copy);
	out = scenario_expand(raw, o, err, errsz);
	cJSON_Delete(raw);
	return out;
}

struct scenario *scenario_parse_with(const char *json_text, const struct scenario_parse_opts *o,
                                     char *err, size_t errsz)
{
	struct scenario *s = NULL;
	const cJSON *v;
	int i = 0;

	if (!json_text) {
		snprintf(err, errsz, "no scenario text");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	s->root = parse_text(json_text, o, err, errsz);
	if (!s->root || parse_top(s, o, err, errsz) < 0)
		goto fail;
	if (parse_actors(s, cJSON_GetObjectItemCaseSensitive(s->root, "actors"), err, errsz) < 0)
		goto fail;
	s->steps = cJSON_GetObjectItemCaseSensitive(s->root, "steps");
	if (!cJSON_IsArray(s->steps) || !s->steps->child) {
		snprintf(err, errsz, "scenario: \"steps\" must be a non-empty array");
		goto fail;
	}
	cJSON_ArrayForEach(v, s->steps)
	{
		if (check_step(s, v, i++, err, errsz) < 0)
			goto fail;
	}
	s->meta.n_steps = (size_t)i;
	s->meta.n_actors = s->n_actors;
	return s;
fail:
	scenario_destroy(s);
	return NULL;
}

struct scenario *scenario_parse(const char *json_text, char *err, size_t errsz)
{
	return scenario_parse_with(json_text, NULL, err, errsz);
}

struct scenario *scenario_load(const char *path, char *err, size_t errsz)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n;
	struct scenario *s = NULL;

	if (!f) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || n > (4 << 20) ||
	    fseek(f, 0, SEEK_SET) < 0) {
		snprintf(err, errsz, "%s: unreadable or larger than 4 MiB", path);
		goto out;
	}
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		snprintf(err, errsz, "%s: read failed", path);
		goto out;
	}
	buf[n] = '\0';
	s = scenario_parse(buf, err, errsz);
	if (!s) {
		char tmp[512];

		snprintf(tmp, sizeof(tmp), "%s: %s", path, err);
		snprintf(err, errsz, "%s", tmp);
	}
out:
	free(buf);
	fclose(f);
	return s;
}

void scenario_destroy(struct scenario *s)
{
	if (!s)
		return;
	cJSON_Delete(s->root);
	free(s->needs);
	free(s);
}

const struct scenario_meta *scenario_get_meta(const struct scenario *s)
{
	return s ? &s->meta : NULL;
}
