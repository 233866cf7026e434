/* scenario.c: the scenario engine: parse and validate scenario JSON, play the steps over the
 * client library, match frames, and record verdicts and the frame log. */
#include "scenario.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "client.h"
#include "identity.h"
#include "matcher.h"
#include "clock.h"
#include "connect_build.h"

#define MAX_ACTORS 64
#define DEFAULT_TIMEOUT_MS 5000
#define CLOSE_AFTER_ERROR_MS 500 /* how long to wait for the close that follows an error res */

enum ident_mode { IDENT_NONE = 0, IDENT_FRESH, IDENT_SAME_AS };

struct actor_def {
	const char *name;
	bool node;
	bool remote;
	enum ident_mode ident;
	int same_as;
	const cJSON *scopes; /* array, or NULL: node [] / operator from the spec default */
	bool token_null; /* "token": null: no auth */
	const char *token; /* explicit token, or NULL: the environment's */
	const cJSON *override; /* merged into every connect of this actor */
	enum connect_sig sig;
	const char *display_name;
};

struct scenario {
	cJSON *root;
	struct scenario_meta meta;
	const char **needs;
	struct actor_def actors[MAX_ACTORS];
	size_t n_actors;
	const cJSON *steps;
};

/* ---------------------------------------------------------------- parsing */

static const char *str_of(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool key_allowed(const char *k, const char *const *allowed)
{
	for (size_t i = 0; allowed[i]; i++) {
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

static int find_actor(const struct scenario *s, const char *name)
{
	for (size_t i = 0; i < s->n_actors; i++) {
		if (!strcmp(s->actors[i].name, name))
			return (int)i;
	}
	return -1;
}

static int parse_sig(const char *v, enum connect_sig *out)
{
	if (!v || !strcmp(v, "v2"))
		*out = CONNECT_SIG_V2;
	else if (!strcmp(v, "v3"))
		*out = CONNECT_SIG_V3;
	else if (!strcmp(v, "none"))
		*out = CONNECT_SIG_NONE;
	else if (!strcmp(v, "bad"))
		*out = CONNECT_SIG_BAD;
	else
		return -1;
	return 0;
}

static int parse_actors(struct scenario *s, const cJSON *actors, char *err, size_t errsz)
{
	static const char *const keys[] = {"role",     "remote", "identity",    "scopes", "token",
	                                   "override", "sig",    "displayName", NULL};
	const cJSON *a;

	if (!cJSON_IsObject(actors) || !actors->child) {
		snprintf(err, errsz, "\"actors\" must be a non-empty object");
		return -1;
	}
	cJSON_ArrayForEach(a, actors)
	{
		struct actor_def *d;
		const char *role, *ident;
		const cJSON *v;
		char where[96];

		if (s->n_actors == MAX_ACTORS) {
			snprintf(err, errsz, "more than %d actors", MAX_ACTORS);
			return -1;
		}
		snprintf(where, sizeof(where), "actor \"%.40s\"", a->string);
		if (!cJSON_IsObject(a) || check_keys(a, keys, where, err, errsz) < 0) {
			if (!cJSON_IsObject(a))
				snprintf(err, errsz, "%s: must be an object", where);
			return -1;
		}
		if (strlen(a->string) >= 32 || !*a->string) {
			snprintf(err, errsz, "%s: name must be 1..31 characters", where);
			return -1;
		}
		d = &s->actors[s->n_actors];
		d->name = a->string;
		role = str_of(a, "role");
		if (!role || (strcmp(role, "node") && strcmp(role, "operator"))) {
			snprintf(err, errsz, "%s: \"role\" must be \"node\" or \"operator\"",
			         where);
			return -1;
		}
		d->node = !strcmp(role, "node");
		v = cJSON_GetObjectItemCaseSensitive(a, "remote");
		if (v && !cJSON_IsBool(v)) {
			snprintf(err, errsz, "%s: \"remote\" must be a boolean", where);
			return -1;
		}
		d->remote = cJSON_IsTrue(v);
		ident = str_of(a, "identity");
		if (cJSON_GetObjectItemCaseSensitive(a, "identity") && !ident) {
			snprintf(err, errsz, "%s: \"identity\" must be a string", where);
			return -1;
		}
		if (!ident)
			d->ident = d->node ? IDENT_FRESH : IDENT_NONE;
		else if (!strcmp(ident, "fresh"))
			d->ident = IDENT_FRESH;
		else if (!strcmp(ident, "none"))
			d->ident = IDENT_NONE;
		else if (!strncmp(ident, "same-as:", 8)) {
			d->ident = IDENT_SAME_AS;
			d->same_as = find_actor(s, ident + 8);
			if (d->same_as < 0 || s->actors[d->same_as].ident == IDENT_NONE) {
				snprintf(
				        err, errsz,
				        "%s: identity \"%s\" must name an earlier actor with a key",
				        where, ident);
				return -1;
			}
		} else {
			snprintf(err, errsz, "%s: identity must be fresh, none or same-as:ACTOR",
			         where);
			return -1;
		}
		v = cJSON_GetObjectItemCaseSensitive(a, "scopes");
		if (v) {
			const cJSON *x;

			if (!cJSON_IsArray(v)) {
				snprintf(err, errsz, "%s: \"scopes\" must be an array of strings",
				         where);
				return -1;
			}
			cJSON_ArrayForEach(x, v)
			{
				if (!cJSON_IsString(x)) {
					snprintf(err, errsz,
					         "%s: \"scopes\" must be an array of strings",
					         where);
					return -1;
				}
			}
			if (cJSON_GetArraySize(v) > 32) {
				snprintf(err, errsz, "%s: too many scopes", where);
				return -1;
			}
		}
		d->scopes = v;
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
		if (parse_sig(str_of(a, "sig"), &d->sig) < 0) {
			snprintf(err, errsz, "%s: \"sig\" must be v2, v3, none or bad", where);
			return -1;
		}
		d->display_name = str_of(a, "displayName");
		s->n_actors++;
	}
	return 0;
}

struct step_kind {
	const char *name;
	const char *const *keys; /* besides actor, do, capture, timeout_ms, note */
	bool needs_conn_actor;
};

static const char *const k_connect[] = {
        "sig", "nonce", "signedAtOffsetMs", "token", "override", "rawParams", "expect",
        "xff", "host",  "origin",           NULL};
static const char *const k_expect_hello[] = {"payload", NULL};
static const char *const k_send[] = {"text", "frame", "binary", NULL};
static const char *const k_call[] = {"method", "params", "expect", "id", NULL};
static const char *const k_event[] = {"event", "payload", "match", NULL};
static const char *const k_no_event[] = {"event", "payload", "ms", NULL};
static const char *const k_close[] = {"code", "reason", NULL};
static const char *const k_ms[] = {"ms", NULL};
static const char *const k_res[] = {"id", "expect", NULL};
static const char *const k_disconnect[] = {"code", "reason", NULL};
static const char *const k_none[] = {NULL};

static const struct step_kind step_kinds[] = {
        {"connect", k_connect, true},    {"expect-hello", k_expect_hello, true},
        {"send", k_send, true},          {"call", k_call, true},
        {"expect-event", k_event, true}, {"expect-no-event", k_no_event, true},
        {"expect-close", k_close, true}, {"expect-open", k_ms, true},
        {"expect-res", k_res, true},     {"disconnect", k_disconnect, true},
        {"sleep", k_ms, false},          {"restart", k_none, false},
};

static const struct step_kind *kind_of(const char *op)
{
	for (size_t i = 0; op && i < sizeof(step_kinds) / sizeof(step_kinds[0]); i++) {
		if (!strcmp(step_kinds[i].name, op))
			return &step_kinds[i];
	}
	return NULL;
}

static int check_step(const struct scenario *s, const cJSON *st, int idx, char *err, size_t errsz)
{
	const char *op = str_of(st, "do"), *actor = str_of(st, "actor");
	const struct step_kind *k = kind_of(op);
	char where[64];
	const cJSON *k2, *v;

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
		const char *n = k2->string;

		if (!strcmp(n, "actor") || !strcmp(n, "do") || !strcmp(n, "capture") ||
		    !strcmp(n, "timeout_ms") || !strcmp(n, "note") || key_allowed(n, k->keys))
			continue;
		snprintf(err, errsz, "%s (%s): unknown key \"%s\"", where, op, n);
		return -1;
	}
	if (k->needs_conn_actor && (!actor || find_actor(s, actor) < 0)) {
		snprintf(err, errsz, "%s (%s): \"actor\" must name an actor", where, op);
		return -1;
	}
	if (actor && find_actor(s, actor) < 0) {
		snprintf(err, errsz, "%s (%s): unknown actor \"%s\"", where, op, actor);
		return -1;
	}
	v = cJSON_GetObjectItemCaseSensitive(st, "capture");
	if (v) {
		const cJSON *c;

		if (!cJSON_IsObject(v)) {
			snprintf(err, errsz, "%s: \"capture\" must be an object", where);
			return -1;
		}
		cJSON_ArrayForEach(c, v)
		{
			if (!cJSON_IsString(c)) {
				snprintf(err, errsz, "%s: capture \"%s\" must be a path string",
				         where, c->string);
				return -1;
			}
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
	if (!strcmp(op, "call") && !str_of(st, "method")) {
		snprintf(err, errsz, "%s (call): \"method\" is required", where);
		return -1;
	}
	if ((!strcmp(op, "expect-event") || !strcmp(op, "expect-no-event")) &&
	    !str_of(st, "event")) {
		snprintf(err, errsz, "%s (%s): \"event\" is required", where, op);
		return -1;
	}
	if (!strcmp(op, "expect-res") && !str_of(st, "id")) {
		snprintf(err, errsz, "%s (expect-res): \"id\" is required", where);
		return -1;
	}
	if (!strcmp(op, "send") && !str_of(st, "text") &&
	    !cJSON_GetObjectItemCaseSensitive(st, "frame")) {
		snprintf(err, errsz, "%s (send): \"text\" or \"frame\" is required", where);
		return -1;
	}
	if (!strcmp(op, "sleep") && !cJSON_GetObjectItemCaseSensitive(st, "ms")) {
		snprintf(err, errsz, "%s (sleep): \"ms\" is required", where);
		return -1;
	}
	if (!strcmp(op, "connect")) {
		const char *sig = str_of(st, "sig"), *nonce = str_of(st, "nonce");
		enum connect_sig dummy;
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(st, "expect");

		if (sig && parse_sig(sig, &dummy) < 0) {
			snprintf(err, errsz, "%s (connect): \"sig\" must be v2, v3, none or bad",
			         where);
			return -1;
		}
		if (nonce && strcmp(nonce, "challenge") && strcmp(nonce, "wrong") &&
		    strcmp(nonce, "none")) {
			snprintf(err, errsz,
			         "%s (connect): \"nonce\" must be challenge, wrong or none", where);
			return -1;
		}
		v = cJSON_GetObjectItemCaseSensitive(st, "token");
		if (v && !cJSON_IsString(v) && !cJSON_IsNull(v)) {
			snprintf(err, errsz, "%s (connect): \"token\" must be a string or null",
			         where);
			return -1;
		}
		v = cJSON_GetObjectItemCaseSensitive(st, "override");
		if (v && !cJSON_IsObject(v)) {
			snprintf(err, errsz, "%s (connect): \"override\" must be an object", where);
			return -1;
		}
		if (e && cJSON_IsString(e) && strcmp(e->valuestring, "hello-ok") &&
		    strcmp(e->valuestring, "pending") && strcmp(e->valuestring, "error") &&
		    strcmp(e->valuestring, "close")) {
			snprintf(err, errsz,
			         "%s (connect): \"expect\" must be hello-ok, pending, error, close "
			         "or {\"error\":..., \"close\":...}",
			         where);
			return -1;
		}
		if (e && !cJSON_IsString(e)) {
			static const char *const ek[] = {"error", "close", "hello-ok", "pending",
			                                 NULL};

			if (!cJSON_IsObject(e) ||
			    check_keys(e, ek, "connect expect", err, errsz) < 0) {
				if (!cJSON_IsObject(e))
					snprintf(
					        err, errsz,
					        "%s (connect): \"expect\" must be a string or object",
					        where);
				return -1;
			}
		}
	}
	return 0;
}

struct scenario *scenario_parse(const char *json_text, char *err, size_t errsz)
{
	static const char *const top[] = {"id",       "title",    "requirement", "level",
	                                  "sentence", "diagnose", "timeout_ms",  "needs",
	                                  "actors",   "steps",    "description", NULL};
	struct scenario *s = NULL;
	char *copy = NULL;
	const cJSON *v;
	int i = 0;

	if (!json_text) {
		snprintf(err, errsz, "no scenario text");
		return NULL;
	}
	copy = strdup(json_text);
	s = calloc(1, sizeof(*s));
	if (!copy || !s) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	cJSON_Minify(copy); /* drops // and block comments */
	s->root = cJSON_Parse(copy);
	if (!s->root || !cJSON_IsObject(s->root)) {
		const char *at = cJSON_GetErrorPtr();

		snprintf(err, errsz, "not a JSON object%s%.30s", at ? " near: " : "", at ? at : "");
		goto fail;
	}
	if (check_keys(s->root, top, "scenario", err, errsz) < 0)
		goto fail;
	s->meta.id = str_of(s->root, "id");
	s->meta.title = str_of(s->root, "title");
	s->meta.requirement = str_of(s->root, "requirement");
	s->meta.level = str_of(s->root, "level");
	s->meta.sentence = str_of(s->root, "sentence");
	s->meta.diagnose = str_of(s->root, "diagnose");
	if (!s->meta.id) {
		snprintf(err, errsz, "scenario: \"id\" (string) is required");
		goto fail;
	}
	v = cJSON_GetObjectItemCaseSensitive(s->root, "timeout_ms");
	if (v && (!cJSON_IsNumber(v) || v->valuedouble <= 0 || v->valuedouble > 3600000)) {
		snprintf(err, errsz, "scenario: \"timeout_ms\" must be a number in 1..3600000");
		goto fail;
	}
	s->meta.timeout_ms = v ? (int)v->valuedouble : DEFAULT_TIMEOUT_MS;
	v = cJSON_GetObjectItemCaseSensitive(s->root, "needs");
	if (v) {
		const cJSON *x;
		size_t n = 0;

		if (!cJSON_IsArray(v)) {
			snprintf(err, errsz, "scenario: \"needs\" must be an array");
			goto fail;
		}
		s->needs = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*s->needs));
		if (!s->needs) {
			snprintf(err, errsz, "out of memory");
			goto fail;
		}
		cJSON_ArrayForEach(x, v)
		{
			if (!cJSON_IsString(x) || (strcmp(x->valuestring, "remote") &&
			                           strcmp(x->valuestring, "restart") &&
			                           strcmp(x->valuestring, "operator"))) {
				snprintf(
				        err, errsz,
				        "scenario: \"needs\" items are remote, restart or operator");
				goto fail;
			}
			s->needs[n++] = x->valuestring;
		}
		s->meta.needs = s->needs;
		s->meta.n_needs = n;
	}
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
	free(copy);
	return s;
fail:
	free(copy);
	scenario_destroy(s);
	return NULL;
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

const char *scenario_verdict_name(enum scenario_verdict v)
{
	switch (v) {
	case SCENARIO_PASS:
		return "pass";
	case SCENARIO_FAIL:
		return "fail";
	case SCENARIO_SKIP:
		return "skip";
	case SCENARIO_ERROR:
		return "error";
	}
	return "?";
}

const char *scenario_dir_name(enum scenario_dir d)
{
	switch (d) {
	case SCENARIO_DIR_OUT:
		return "out";
	case SCENARIO_DIR_IN:
		return "in";
	case SCENARIO_DIR_CLOSE:
		return "close";
	case SCENARIO_DIR_NOTE:
		return "note";
	}
	return "?";
}

/* ---------------------------------------------------------------- running */

struct inframe {
	struct inframe *next;
	char *text;
	cJSON *json; /* NULL when not JSON */
	uint64_t at_ms;
};

struct actor_rt {
	const struct actor_def *def;
	struct identity id;
	bool has_id;
	struct client_conn *conn;
	uint64_t t_connect;
	char connect_id[32];
	bool connect_answered;
	struct inframe *inbox, *inbox_tail;
	bool closed; /* the current conn is closed */
	int close_code;
	char close_reason[128];
	uint64_t close_at;
	char xff[24];
	unsigned next_req;
	char *device_token;
};

struct run {
	const struct scenario *s;
	const struct scenario_env *env;
	struct scenario_result *r;
	struct client_ctx *ctx;
	struct actor_rt actors[MAX_ACTORS];
	struct matcher_vars vars;
	uint64_t t0;
	unsigned xff_local;
	/* the failure being built */
	char *expected, *actual, *message;
};

static void log_add(struct run *run, const char *actor, enum scenario_dir dir, const char *text,
                    uint64_t at_ms)
{
	struct scenario_result *r = run->r;
	uint64_t t = at_ms >= run->t0 ? at_ms - run->t0 : 0;

	if (run->env->log)
		run->env->log(run->env->log_user, actor, dir, text, t);
	if (r->n_log == r->cap_log) {
		size_t cap = r->cap_log ? r->cap_log * 2 : 64;
		struct scenario_log_entry *n = realloc(r->log, cap * sizeof(*n));

		if (!n)
			return;
		r->log = n;
		r->cap_log = cap;
	}
	snprintf(r->log[r->n_log].actor, sizeof(r->log[0].actor), "%s", actor ? actor : "");
	r->log[r->n_log].dir = dir;
	r->log[r->n_log].text = strdup(text ? text : "");
	r->log[r->n_log].t_ms = t;
	if (r->log[r->n_log].text)
		r->n_log++;
}

static char *vfmt(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static char *vfmt(const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	char *s;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return NULL;
	s = malloc((size_t)n + 1);
	if (s)
		vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s;

	va_start(ap, f);
	s = vfmt(f, ap);
	va_end(ap);
	return s;
}

/* Records a failure of the current step: what was expected, what happened. Returns -1. */
static int fail_with(struct run *run, char *expected, char *actual)
{
	free(run->expected);
	free(run->actual);
	run->expected = expected ? expected : strdup("?");
	run->actual = actual ? actual : strdup("?");
	return -1;
}

static void free_inbox(struct actor_rt *a)
{
	while (a->inbox) {
		struct inframe *f = a->inbox;

		a->inbox = f->next;
		free(f->text);
		cJSON_Delete(f->json);
		free(f);
	}
	a->inbox_tail = NULL;
}

static void drop_frame(struct actor_rt *a, struct inframe *f)
{
	struct inframe **pp = &a->inbox, *prev = NULL;

	while (*pp && *pp != f) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = f->next;
	if (a->inbox_tail == f)
		a->inbox_tail = prev;
	free(f->text);
	cJSON_Delete(f->json);
	free(f);
}

/* Moves what the client library queued for a into its inbox, logging every frame. */
static void drain_actor(struct run *run, struct actor_rt *a)
{
	struct client_item it;

	while (a->conn && client_pending_items(a->conn) > 0 && client_next(a->conn, 0, &it) == 1) {
		if (it.kind == CLIENT_ITEM_CLOSE) {
			char line[200];

			a->closed = true;
			a->close_code = it.close_code;
			snprintf(a->close_reason, sizeof(a->close_reason), "%s", it.close_reason);
			a->close_at = it.at_ms;
			snprintf(line, sizeof(line), "%d %s%s", it.close_code, it.close_reason,
			         it.local_close ? " (this side)" : "");
			log_add(run, a->def->name, SCENARIO_DIR_CLOSE, line, it.at_ms);
			client_item_finish(&it);
			continue;
		}
		{
			struct inframe *f = calloc(1, sizeof(*f));

			log_add(run, a->def->name, SCENARIO_DIR_IN,
			        it.binary ? "(binary message)" : it.text, it.at_ms);
			if (!f) {
				client_item_finish(&it);
				continue;
			}
			f->text = it.text;
			it.text = NULL;
			f->json = it.binary ? NULL : cJSON_ParseWithLength(f->text, it.len);
			f->at_ms = it.at_ms;
			if (a->inbox_tail)
				a->inbox_tail->next = f;
			else
				a->inbox = f;
			a->inbox_tail = f;
		}
	}
}

static void drain_all(struct run *run)
{
	for (size_t i = 0; i < run->s->n_actors; i++)
		drain_actor(run, &run->actors[i]);
}

static void pump(struct run *run, int ms)
{
	client_service(run->ctx, ms);
	drain_all(run);
}

static int step_timeout(struct run *run, const cJSON *st)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, "timeout_ms");
	double ms = cJSON_IsNumber(v) ? v->valuedouble : run->s->meta.timeout_ms;
	double scale = run->env->timeout_scale > 0 ? run->env->timeout_scale : 1.0;

	return (int)(ms * scale);
}

static long since_connect(const struct actor_rt *a, uint64_t at)
{
	return a->t_connect && at >= a->t_connect ? (long)(at - a->t_connect) : -1;
}

static char *closed_text(const struct actor_rt *a)
{
	return fmt("closed %d '%s' %ld ms after connect", a->close_code, a->close_reason,
	           since_connect(a, a->close_at));
}

/* A short digest of what is in the inbox, for "nothing matched" reports. */
static char *inbox_digest(const struct actor_rt *a)
{
	size_t cap = 1024, len = 0;
	char *out = malloc(cap);
	int n = 0;

	if (!out)
		return NULL;
	out[0] = '\0';
	for (const struct inframe *f = a->inbox; f && n < 6; f = f->next, n++) {
		int w = snprintf(out + len, cap - len, "%s%.160s%s", n ? "; " : "", f->text,
		                 strlen(f->text) > 160 ? "..." : "");

		if (w < 0 || (size_t)w >= cap - len)
			break;
		len += (size_t)w;
	}
	return out;
}

static char *nothing_text(const struct actor_rt *a, int timeout_ms)
{
	char *d = inbox_digest(a), *s;

	if (a->closed) {
		char *c = closed_text(a);

		s = d && *d ? fmt("%s; unmatched frames: %s", c ? c : "", d) : NULL;
		if (s)
			free(c);
		else
			s = c;
	} else {
		s = fmt("nothing matching within %d ms%s%s", timeout_ms,
		        d && *d ? "; unmatched frames: " : "", d && *d ? d : "");
	}
	free(d);
	return s;
}

static const char *frame_type(const struct inframe *f)
{
	return str_of(f->json, "type");
}

static bool is_event(const struct inframe *f, const char *name)
{
	const char *t = frame_type(f), *e = str_of(f->json, "event");

	return t && !strcmp(t, "event") && e && !strcmp(e, name);
}

static bool is_res(const struct inframe *f, const char *id)
{
	const char *t = frame_type(f), *i = str_of(f->json, "id");

	return t && !strcmp(t, "res") && i && !strcmp(i, id);
}

static int do_captures(struct run *run, const cJSON *st, const cJSON *frame)
{
	const cJSON *cap = cJSON_GetObjectItemCaseSensitive(st, "capture"), *c;

	cJSON_ArrayForEach(c, cap)
	{
		const cJSON *v = matcher_path(frame, c->valuestring);
		char *val;

		if (!v) {
			char *t = cJSON_PrintUnformatted(frame);

			fail_with(run, fmt("capture %s from %s", c->string, c->valuestring),
			          fmt("no %s in %s", c->valuestring, t ? t : "?"));
			free(t);
			return -1;
		}
		val = cJSON_IsString(v) ? strdup(v->valuestring) : cJSON_PrintUnformatted(v);
		if (!val || matcher_vars_set(&run->vars, c->string, val) < 0) {
			free(val);
			return fail_with(run, strdup("capture"), strdup("out of memory"));
		}
		free(val);
	}
	return 0;
}

/* Waits for a frame accepted by pick (which may also declare a hard failure by returning -1).
 * Returns the frame (still in the inbox), or NULL with the failure recorded. */
typedef int (*pick_fn)(struct run *run, struct actor_rt *a, struct inframe *f, void *arg);

static struct inframe *wait_frame(struct run *run, struct actor_rt *a, int timeout_ms, pick_fn pick,
                                  void *arg, const char *expected)
{
	uint64_t deadline = client_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		drain_all(run);
		for (struct inframe *f = a->inbox; f; f = f->next) {
			int rc = pick(run, a, f, arg);

			if (rc > 0)
				return f;
			if (rc < 0)
				return NULL;
		}
		if (a->closed || !a->conn) {
			if (!a->conn && !a->closed)
				fail_with(run, strdup(expected), strdup("not connected"));
			else
				fail_with(run, strdup(expected), nothing_text(a, timeout_ms));
			return NULL;
		}
		if (client_now_ms() >= deadline) {
			fail_with(run, strdup(expected), nothing_text(a, timeout_ms));
			return NULL;
		}
		{
			uint64_t left = deadline - client_now_ms();

			client_service(run->ctx, (int)(left < 50 ? left : 50));
		}
	}
}

/* ---- connect ---- */

static int pick_challenge(struct run *run, struct actor_rt *a, struct inframe *f, void *arg)
{
	(void)run;
	(void)a;
	(void)arg;
	return is_event(f, "connect.challenge");
}

static void actor_reset_conn(struct actor_rt *a)
{
	client_conn_destroy(a->conn);
	a->conn = NULL;
	free_inbox(a);
	a->closed = false;
	a->close_code = 0;
	a->close_reason[0] = '\0';
	a->connect_id[0] = '\0';
	a->connect_answered = false;
}

static const char *const default_node_scopes[] = {NULL};

static cJSON *build_params(struct run *run, struct actor_rt *a, const cJSON *st, const char *nonce)
{
	const struct actor_def *d = a->def;
	struct connect_spec spec;
	const char *scopes[33];
	size_t n_scopes = 0;
	const cJSON *v;
	const char *sigs = str_of(st, "sig"), *nonces = str_of(st, "nonce");
	cJSON *p;

	if (d->node)
		connect_spec_android(&spec);
	else
		connect_spec_operator(&spec);
	if (d->display_name)
		spec.display_name = d->display_name;
	if (d->scopes) {
		const cJSON *x;

		cJSON_ArrayForEach(x, d->scopes)
		{
			scopes[n_scopes++] = x->valuestring;
		}
		spec.scopes = scopes;
		spec.n_scopes = n_scopes;
		spec.scopes_omit = false;
	} else if (d->node) {
		spec.scopes = default_node_scopes;
		spec.n_scopes = 0;
	} else {
		spec.scopes_omit = true;
	}
	spec.identity = a->has_id ? &a->id : NULL;
	spec.sig = d->sig;
	if (sigs)
		parse_sig(sigs, &spec.sig);
	if (nonces && !strcmp(nonces, "wrong"))
		spec.nonce = CONNECT_NONCE_WRONG;
	else if (nonces && !strcmp(nonces, "none"))
		spec.nonce = CONNECT_NONCE_NONE;
	v = cJSON_GetObjectItemCaseSensitive(st, "signedAtOffsetMs");
	if (cJSON_IsNumber(v))
		spec.signed_at_offset_ms = (int64_t)v->valuedouble;
	/* token: step > actor > environment; null anywhere means none */
	v = cJSON_GetObjectItemCaseSensitive(st, "token");
	if (v)
		spec.token = cJSON_IsString(v) ? v->valuestring : NULL;
	else if (d->token_null)
		spec.token = NULL;
	else
		spec.token = d->token ? d->token : run->env->token;
	p = connect_params_build(&spec, nonce, clock_wall_ms());
	if (!p)
		return NULL;
	if (d->override && matcher_merge(p, d->override) < 0)
		goto fail;
	v = cJSON_GetObjectItemCaseSensitive(st, "override");
	if (v && matcher_merge(p, v) < 0)
		goto fail;
	return p;
fail:
	cJSON_Delete(p);
	return NULL;
}

static int send_frame_json(struct run *run, struct actor_rt *a, cJSON *frame)
{
	char *t = cJSON_PrintUnformatted(frame);
	int rc;

	if (!t)
		return -1;
	log_add(run, a->def->name, SCENARIO_DIR_OUT, t, client_now_ms());
	rc = a->conn ? client_send_text(a->conn, t) : -1;
	free(t);
	return rc;
}

struct res_arg {
	const char *id;
};

static int pick_res(struct run *run, struct actor_rt *a, struct inframe *f, void *arg)
{
	const struct res_arg *ra = arg;

	(void)run;
	(void)a;
	return is_res(f, ra->id);
}

/* Waits for the close that follows an error res, for a complete "actual". */
static void settle_close(struct run *run, struct actor_rt *a, int ms)
{
	uint64_t deadline = client_now_ms() + (uint64_t)ms;

	while (!a->closed && a->conn && client_now_ms() < deadline)
		pump(run, 20);
}

static char *with_close(struct actor_rt *a, char *text)
{
	char *c, *s;

	if (!a->closed)
		return text;
	c = closed_text(a);
	s = fmt("%s, then %s", text ? text : "", c ? c : "");
	free(c);
	free(text);
	return s;
}

struct connect_pick {
	const char *connect_id;
	const char *want; /* "hello-ok", "pending" */
};

static int pick_connect_outcome(struct run *run, struct actor_rt *a, struct inframe *f, void *arg)
{
	const struct connect_pick *cp = arg;

	(void)run;
	(void)a;
	if (is_res(f, cp->connect_id))
		return 1;
	if (is_event(f, "connect.pending"))
		return 1;
	return 0;
}

static int expect_close_code(struct run *run, struct actor_rt *a, const cJSON *want, int timeout_ms,
                             const char *what)
{
	uint64_t deadline = client_now_ms() + (uint64_t)timeout_ms;
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(want, "code");
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(want, "reason");
	char *wanttext;

	while (!a->closed && a->conn && client_now_ms() < deadline) {
		uint64_t left = deadline - client_now_ms();

		pump(run, (int)(left < 50 ? left : 50));
	}
	if (code && cJSON_IsNumber(code))
		wanttext = fmt("%s with code %d", what, (int)code->valuedouble);
	else
		wanttext = strdup(what);
	if (reason) {
		char *r = cJSON_PrintUnformatted(reason), *t;

		t = fmt("%s, reason %s", wanttext, r ? r : "?");
		free(r);
		free(wanttext);
		wanttext = t;
	}
	if (!a->closed) {
		char *d = inbox_digest(a);
		char *act = fmt("still open after %d ms%s%s", timeout_ms,
		                d && *d ? "; frames: " : "", d && *d ? d : "");

		free(d);
		return fail_with(run, wanttext, act);
	}
	if (code && (!cJSON_IsNumber(code) || (int)code->valuedouble != a->close_code))
		return fail_with(run, wanttext, closed_text(a));
	if (reason) {
		cJSON *r = cJSON_CreateString(a->close_reason);
		char why[256];
		bool ok =
		        r && (cJSON_IsString(reason) ? !strcmp(reason->valuestring, a->close_reason)
		                                     : matcher_match(reason, r, why, sizeof(why)));

		cJSON_Delete(r);
		if (!ok)
			return fail_with(run, wanttext, closed_text(a));
	}
	free(wanttext);
	return 0;
}

static void ensure_identity(struct run *run, struct actor_rt *a)
{
	char buf[80];
	char name[96];

	if (a->has_id || a->def->ident == IDENT_NONE)
		return;
	if (a->def->ident == IDENT_SAME_AS) {
		struct actor_rt *o = &run->actors[a->def->same_as];

		ensure_identity(run, o);
		a->id = o->id;
		a->has_id = o->has_id;
	} else {
		a->has_id = identity_generate(&a->id) == 0;
	}
	if (!a->has_id)
		return;
	snprintf(name, sizeof(name), "%s.deviceId", a->def->name);
	matcher_vars_set(&run->vars, name, a->id.device_id);
	snprintf(name, sizeof(name), "%s.publicKey", a->def->name);
	matcher_vars_set(&run->vars, name, a->id.pk_b64);
	identity_fingerprint(a->id.pk, buf);
	snprintf(name, sizeof(name), "%s.fingerprint", a->def->name);
	matcher_vars_set(&run->vars, name, buf);
}

static void note_hello(struct run *run, struct actor_rt *a, const cJSON *frame)
{
	const cJSON *auth = matcher_path(frame, "payload.auth");
	const char *tok = str_of(auth, "deviceToken");
	char name[96];

	a->connect_answered = true;
	if (!tok)
		return;
	free(a->device_token);
	a->device_token = strdup(tok);
	snprintf(name, sizeof(name), "%s.deviceToken", a->def->name);
	matcher_vars_set(&run->vars, name, tok);
}

static bool is_hello(const struct inframe *f)
{
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(f->json, "ok");
	const char *t = str_of(cJSON_GetObjectItemCaseSensitive(f->json, "payload"), "type");

	return cJSON_IsTrue(ok) && t && !strcmp(t, "hello-ok");
}

static int step_connect(struct run *run, struct actor_rt *a, const cJSON *st)
{
	const struct scenario_env *env = run->env;
	struct client_conn_opts o = {0};
	const cJSON *expect = cJSON_GetObjectItemCaseSensitive(st, "expect");
	const cJSON *raw = cJSON_GetObjectItemCaseSensitive(st, "rawParams");
	int timeout = step_timeout(run, st);
	const char *want = NULL;
	struct inframe *f;
	cJSON *params, *req;
	char err[256], note[300];

	actor_reset_conn(a);
	ensure_identity(run, a);
	if (a->def->ident != IDENT_NONE && !a->has_id)
		return fail_with(run, strdup("a device identity"), strdup("key generation failed"));
	o.url = env->url;
	o.connect_timeout_ms = timeout;
	if (a->def->remote && env->remote_via == SCENARIO_REMOTE_XFF) {
		if (!a->xff[0]) {
			unsigned *ctr = env->xff_counter ? env->xff_counter : &run->xff_local;
			unsigned x = *ctr;

			if (x < 2 || x > 254)
				x = 2;
			*ctr = x + 1;
			snprintf(a->xff, sizeof(a->xff), "10.77.0.%u", x);
		}
		o.xff = a->xff;
	} else if (a->def->remote && env->remote_via == SCENARIO_REMOTE_NETNS) {
		o.url = env->remote_url ? env->remote_url : env->url;
		o.netns = env->netns ? env->netns : "cplan";
	}
	if (str_of(st, "xff"))
		o.xff = str_of(st, "xff");
	o.host_header = str_of(st, "host");
	o.origin = str_of(st, "origin");

	if (cJSON_IsString(expect))
		want = expect->valuestring;

	a->t_connect = client_now_ms();
	snprintf(note, sizeof(note), "connect %s%s%s%s", o.url, o.xff ? " X-Forwarded-For " : "",
	         o.xff ? o.xff : "", o.netns ? " (netns)" : "");
	log_add(run, a->def->name, SCENARIO_DIR_NOTE, note, a->t_connect);
	if (client_connect(run->ctx, &o, &a->conn, err, sizeof(err)) < 0) {
		/* a refused upgrade is an outcome some cases expect: a close without a frame */
		a->conn = NULL;
		a->closed = true;
		a->close_code = 1006;
		snprintf(a->close_reason, sizeof(a->close_reason), "%.127s", err);
		a->close_at = client_now_ms();
		log_add(run, a->def->name, SCENARIO_DIR_CLOSE, err, a->close_at);
		if (want && !strcmp(want, "close"))
			return 0;
		return fail_with(run, strdup("a WebSocket connection"),
		                 fmt("connection failed: %s", err));
	}
	f = wait_frame(run, a, timeout, pick_challenge, NULL, "connect.challenge event");
	if (!f)
		return -1;
	{
		const char *nonce =
		        str_of(cJSON_GetObjectItemCaseSensitive(f->json, "payload"), "nonce");
		char nbuf[128];

		snprintf(nbuf, sizeof(nbuf), "%s", nonce ? nonce : "");
		drop_frame(a, f);
		if (raw)
			params = cJSON_Duplicate(raw, true);
		else
			params = build_params(run, a, st, nbuf);
	}
	snprintf(a->connect_id, sizeof(a->connect_id), "c%u", ++a->next_req);
	req = cJSON_CreateObject();
	if (!params || !req) {
		cJSON_Delete(params);
		cJSON_Delete(req);
		return fail_with(run, strdup("connect params"), strdup("out of memory"));
	}
	cJSON_AddStringToObject(req, "type", "req");
	cJSON_AddStringToObject(req, "id", a->connect_id);
	cJSON_AddStringToObject(req, "method", "connect");
	cJSON_AddItemToObject(req, "params", params);
	if (send_frame_json(run, a, req) < 0) {
		cJSON_Delete(req);
		return fail_with(run, strdup("send connect"), strdup("connection not open"));
	}
	cJSON_Delete(req);

	if (!expect)
		return 0;
	if (want && !strcmp(want, "close"))
		return expect_close_code(run, a, NULL, timeout, "close");
	if (want) {
		struct connect_pick cp = {a->connect_id, want};
		char *exp = fmt("%s", !strcmp(want, "hello-ok")  ? "res ok hello-ok to connect"
		                      : !strcmp(want, "pending") ? "event connect.pending"
		                                                 : "error res to connect");

		f = wait_frame(run, a, timeout, pick_connect_outcome, &cp, exp);
		if (!f) {
			free(exp);
			return -1;
		}
		if (!strcmp(want, "pending") && is_event(f, "connect.pending")) {
			free(exp);
			if (do_captures(run, st, f->json) < 0)
				return -1;
			drop_frame(a, f);
			return 0;
		}
		if (!strcmp(want, "hello-ok") && is_res(f, a->connect_id) && is_hello(f)) {
			free(exp);
			note_hello(run, a, f->json);
			if (do_captures(run, st, f->json) < 0)
				return -1;
			drop_frame(a, f);
			return 0;
		}
		if (!strcmp(want, "error") && is_res(f, a->connect_id) &&
		    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f->json, "ok"))) {
			free(exp);
			a->connect_answered = true;
			if (do_captures(run, st, f->json) < 0)
				return -1;
			drop_frame(a, f);
			return 0;
		}
		/* the wrong outcome: show it with the close that may follow */
		{
			char *act = strdup(f->text);

			if (is_res(f, a->connect_id))
				a->connect_answered = true;
			settle_close(run, a, CLOSE_AFTER_ERROR_MS);
			act = with_close(a, act);
			return fail_with(run, exp, act);
		}
	}
	/* {"error": matcher, "close": {...}} or {"hello-ok": matcher} / {"pending": matcher} */
	{
		const cJSON *em = cJSON_GetObjectItemCaseSensitive(expect, "error");
		const cJSON *cm = cJSON_GetObjectItemCaseSensitive(expect, "close");
		const cJSON *hm = cJSON_GetObjectItemCaseSensitive(expect, "hello-ok");
		const cJSON *pm = cJSON_GetObjectItemCaseSensitive(expect, "pending");
		struct connect_pick cp = {a->connect_id, NULL};
		char why[300] = "";

		if (hm || pm || em) {
			char *m = cJSON_PrintUnformatted(hm ? hm : pm ? pm : em);
			char *exp = fmt("%s matching %s",
			                hm   ? "res ok hello-ok"
			                : pm ? "event connect.pending"
			                     : "error res",
			                m ? m : "?");

			free(m);
			f = wait_frame(run, a, timeout, pick_connect_outcome, &cp, exp);
			if (!f) {
				free(exp);
				return -1;
			}
			if (hm && is_res(f, a->connect_id) && is_hello(f) &&
			    matcher_match(hm, cJSON_GetObjectItemCaseSensitive(f->json, "payload"),
			                  why, sizeof(why))) {
				note_hello(run, a, f->json);
			} else if (pm && is_event(f, "connect.pending") &&
			           matcher_match(
			                   pm, cJSON_GetObjectItemCaseSensitive(f->json, "payload"),
			                   why, sizeof(why))) {
				/* matched */
			} else if (em && is_res(f, a->connect_id) &&
			           !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f->json, "ok")) &&
			           matcher_match(em,
			                         cJSON_GetObjectItemCaseSensitive(f->json, "error"),
			                         why, sizeof(why))) {
				a->connect_answered = true;
			} else {
				char *act = strdup(f->text);

				if (is_res(f, a->connect_id))
					a->connect_answered = true;
				settle_close(run, a, CLOSE_AFTER_ERROR_MS);
				act = with_close(a, act);
				if (why[0]) {
					char *t = fmt("%s (%s)", act, why);

					free(act);
					act = t;
				}
				return fail_with(run, exp, act);
			}
			free(exp);
			if (do_captures(run, st, f->json) < 0)
				return -1;
			drop_frame(a, f);
		}
		if (cm)
			return expect_close_code(run, a, cm, timeout, "close");
	}
	return 0;
}

/* ---- other steps ---- */

static int pick_hello(struct run *run, struct actor_rt *a, struct inframe *f, void *arg)
{
	(void)run;
	(void)arg;
	return is_res(f, a->connect_id);
}

static int step_expect_hello(struct run *run, struct actor_rt *a, const cJSON *st)
{
	const cJSON *pm = cJSON_GetObjectItemCaseSensitive(st, "payload");
	int timeout = step_timeout(run, st);
	struct inframe *f;
	char why[300] = "";

	if (!a->connect_id[0])
		return fail_with(run, strdup("hello-ok"), strdup("this actor sent no connect"));
	f = wait_frame(run, a, timeout, pick_hello, NULL, "res ok hello-ok to the held connect");
	if (!f)
		return -1;
	if (!is_hello(f) ||
	    (pm && !matcher_match(pm, cJSON_GetObjectItemCaseSensitive(f->json, "payload"), why,
	                          sizeof(why)))) {
		char *act = strdup(f->text);

		a->connect_answered = true;
		settle_close(run, a, CLOSE_AFTER_ERROR_MS);
		act = with_close(a, act);
		if (why[0]) {
			char *t = fmt("%s (%s)", act, why);

			free(act);
			act = t;
		}
		return fail_with(run, strdup("res ok hello-ok to the held connect"), act);
	}
	note_hello(run, a, f->json);
	if (do_captures(run, st, f->json) < 0)
		return -1;
	drop_frame(a, f);
	return 0;
}

static int match_res_frame(struct run *run, struct actor_rt *a, struct inframe *f,
                           const cJSON *expect, const cJSON *st, const char *what)
{
	char why[300];

	if (expect && !matcher_match(expect, f->json, why, sizeof(why))) {
		char *m = cJSON_PrintUnformatted(expect);

		fail_with(run, fmt("%s matching %s", what, m ? m : "?"),
		          fmt("%s (%s)", f->text, why));
		free(m);
		return -1;
	}
	if (do_captures(run, st, f->json) < 0)
		return -1;
	drop_frame(a, f);
	return 0;
}

static int step_call(struct run *run, struct actor_rt *a, const cJSON *st)
{
	const char *method = str_of(st, "method"), *id = str_of(st, "id");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(st, "params");
	const cJSON *expect = cJSON_GetObjectItemCaseSensitive(st, "expect");
	struct res_arg ra;
	struct inframe *f;
	char idbuf[32], *what;
	cJSON *req = cJSON_CreateObject();
	int rc;

	if (!id) {
		snprintf(idbuf, sizeof(idbuf), "r%u", ++a->next_req);
		id = idbuf;
	}
	if (!req)
		return fail_with(run, strdup("call"), strdup("out of memory"));
	cJSON_AddStringToObject(req, "type", "req");
	cJSON_AddStringToObject(req, "id", id);
	cJSON_AddStringToObject(req, "method", method);
	cJSON_AddItemToObject(req, "params",
	                      params ? cJSON_Duplicate(params, true) : cJSON_CreateObject());
	rc = send_frame_json(run, a, req);
	cJSON_Delete(req);
	what = fmt("res to %s", method);
	if (rc < 0) {
		if (a->closed)
			return fail_with(run, what, closed_text(a));
		return fail_with(run, what, strdup("not connected"));
	}
	ra.id = id;
	f = wait_frame(run, a, step_timeout(run, st), pick_res, &ra, what);
	if (!f) {
		free(what);
		return -1;
	}
	rc = match_res_frame(run, a, f, expect, st, what);
	free(what);
	return rc;
}

static int step_expect_res(struct run *run, struct actor_rt *a, const cJSON *st)
{
	struct res_arg ra = {str_of(st, "id")};
	char *what = fmt("res with id %s", ra.id);
	struct inframe *f = wait_frame(run, a, step_timeout(run, st), pick_res, &ra, what);
	int rc;

	if (!f) {
		free(what);
		return -1;
	}
	rc = match_res_frame(run, a, f, cJSON_GetObjectItemCaseSensitive(st, "expect"), st, what);
	free(what);
	return rc;
}

struct event_arg {
	const char *event;
	const cJSON *payload, *match;
	char why[300];
	bool saw_name;
};

static int pick_event(struct run *run, struct actor_rt *a, struct inframe *f, void *arg)
{
	struct event_arg *ea = arg;
	char why[300];

	(void)run;
	(void)a;
	if (!is_event(f, ea->event))
		return 0;
	ea->saw_name = true;
	if (ea->payload &&
	    !matcher_match(ea->payload, cJSON_GetObjectItemCaseSensitive(f->json, "payload"), why,
	                   sizeof(why))) {
		snprintf(ea->why, sizeof(ea->why), "%s", why);
		return 0;
	}
	if (ea->match && !matcher_match(ea->match, f->json, why, sizeof(why))) {
		snprintf(ea->why, sizeof(ea->why), "%s", why);
		return 0;
	}
	return 1;
}

static int step_expect_event(struct run *run, struct actor_rt *a, const cJSON *st)
{
	struct event_arg ea = {.event = str_of(st, "event"),
	                       .payload = cJSON_GetObjectItemCaseSensitive(st, "payload"),
	                       .match = cJSON_GetObjectItemCaseSensitive(st, "match")};
	char *m = ea.payload ? cJSON_PrintUnformatted(ea.payload) : NULL;
	char *what = fmt("event %s%s%s", ea.event, m ? " with payload " : "", m ? m : "");
	struct inframe *f;

	free(m);
	f = wait_frame(run, a, step_timeout(run, st), pick_event, &ea, what);
	if (!f) {
		if (ea.why[0] && run->actual) {
			char *t = fmt("%s (closest: %s)", run->actual, ea.why);

			free(run->actual);
			run->actual = t;
		}
		free(what);
		return -1;
	}
	free(what);
	if (do_captures(run, st, f->json) < 0)
		return -1;
	drop_frame(a, f);
	return 0;
}

static int step_expect_no_event(struct run *run, struct actor_rt *a, const cJSON *st)
{
	const cJSON *msv = cJSON_GetObjectItemCaseSensitive(st, "ms");
	int ms = cJSON_IsNumber(msv) ? (int)msv->valuedouble : 1000;
	struct event_arg ea = {.event = str_of(st, "event"),
	                       .payload = cJSON_GetObjectItemCaseSensitive(st, "payload")};
	uint64_t deadline = client_now_ms() + (uint64_t)ms;

	for (;;) {
		drain_all(run);
		for (struct inframe *f = a->inbox; f; f = f->next) {
			if (pick_event(run, a, f, &ea) > 0)
				return fail_with(run, fmt("no event %s for %d ms", ea.event, ms),
				                 strdup(f->text));
		}
		if (client_now_ms() >= deadline)
			return 0;
		pump(run, 20);
	}
}

static int step_expect_close(struct run *run, struct actor_rt *a, const cJSON *st)
{
	return expect_close_code(run, a, st, step_timeout(run, st), "close");
}

static int step_expect_open(struct run *run, struct actor_rt *a, const cJSON *st)
{
	const cJSON *msv = cJSON_GetObjectItemCaseSensitive(st, "ms");
	int ms = cJSON_IsNumber(msv) ? (int)msv->valuedouble : 1000;
	uint64_t deadline = client_now_ms() + (uint64_t)ms;

	if (!a->conn && !a->closed)
		return fail_with(run, fmt("open for %d ms", ms), strdup("not connected"));
	while (client_now_ms() < deadline && !a->closed)
		pump(run, 20);
	if (a->closed) {
		char *d = inbox_digest(a), *act = closed_text(a);

		if (d && *d) {
			char *t = fmt("%s; frames before: %s", act, d);

			free(act);
			act = t;
		}
		free(d);
		return fail_with(run, fmt("connection open for %d ms", ms), act);
	}
	return 0;
}

static int step_send(struct run *run, struct actor_rt *a, const cJSON *st)
{
	const char *text = str_of(st, "text");
	const cJSON *frame = cJSON_GetObjectItemCaseSensitive(st, "frame");
	bool binary = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "binary"));
	char *owned = NULL;
	int rc;

	if (!text) {
		owned = cJSON_PrintUnformatted(frame);
		text = owned;
	}
	if (!text)
		return fail_with(run, strdup("send"), strdup("out of memory"));
	log_add(run, a->def->name, SCENARIO_DIR_OUT, binary ? "(binary message)" : text,
	        client_now_ms());
	rc = a->conn ? client_send(a->conn, text, strlen(text), binary) : -1;
	free(owned);
	if (rc < 0)
		return fail_with(run, strdup("send on an open connection"),
		                 a->closed ? closed_text(a) : strdup("not connected"));
	return 0;
}

static int step_disconnect(struct run *run, struct actor_rt *a, const cJSON *st)
{
	const cJSON *cv = cJSON_GetObjectItemCaseSensitive(st, "code");
	const char *reason = str_of(st, "reason");
	int code = cJSON_IsNumber(cv) ? (int)cv->valuedouble : 1000;
	uint64_t deadline = client_now_ms() + 2000;

	if (!a->conn)
		return 0;
	if (!a->closed) {
		char note[160];

		snprintf(note, sizeof(note), "disconnect %d %s", code, reason ? reason : "");
		log_add(run, a->def->name, SCENARIO_DIR_NOTE, note, client_now_ms());
		client_close(a->conn, code, reason ? reason : "");
		while (!a->closed && client_now_ms() < deadline)
			pump(run, 20);
	}
	actor_reset_conn(a);
	return 0;
}

static int step_sleep(struct run *run, const cJSON *st)
{
	const cJSON *msv = cJSON_GetObjectItemCaseSensitive(st, "ms");
	uint64_t deadline =
	        client_now_ms() + (uint64_t)(cJSON_IsNumber(msv) ? msv->valuedouble : 0);

	while (client_now_ms() < deadline) {
		uint64_t left = deadline - client_now_ms();

		pump(run, (int)(left < 50 ? left : 50));
	}
	return 0;
}

static int step_restart(struct run *run)
{
	pid_t pid;
	int st = 0;
	uint64_t deadline;

	pid = fork();
	if (pid < 0)
		return fail_with(run, strdup("restart command"), fmt("fork: %s", strerror(errno)));
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", run->env->restart_cmd, (char *)NULL);
		_exit(127);
	}
	deadline = client_now_ms() + 120000;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			break;
		if (r < 0)
			return fail_with(run, strdup("restart command"), strdup("waitpid failed"));
		if (client_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return fail_with(run, strdup("restart command within 120 s"),
			                 strdup("timed out"));
		}
		/* keep the connections serviced: the gateway going away closes them */
		pump(run, 20);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return fail_with(run, strdup("restart command exit 0"),
		                 fmt("exit status %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1));
	return 0;
}

static bool needs(const struct scenario *s, const char *what)
{
	for (size_t i = 0; i < s->meta.n_needs; i++) {
		if (!strcmp(s->meta.needs[i], what))
			return true;
	}
	return false;
}

static void result_set_skip(struct scenario_result *r, int step, const char *msg)
{
	r->verdict = SCENARIO_SKIP;
	r->failed_step = step;
	free(r->message);
	r->message = strdup(msg);
}

static bool scenario_uses_restart(const struct scenario *s)
{
	const cJSON *st;

	cJSON_ArrayForEach(st, s->steps)
	{
		const char *op = str_of(st, "do");

		if (op && !strcmp(op, "restart"))
			return true;
	}
	return false;
}

int scenario_run(const struct scenario *s, const struct scenario_env *env,
                 struct scenario_result *r)
{
	struct run run;
	const cJSON *st;
	int idx = 0;
	size_t n_steps;

	if (!r)
		return -1;
	memset(r, 0, sizeof(*r));
	r->failed_step = -1;
	r->ms_since_connect = -1;
	if (!s || !env || !env->url)
		return -1;
	memset(&run, 0, sizeof(run));
	run.s = s;
	run.env = env;
	run.r = r;
	run.t0 = client_now_ms();
	matcher_vars_init(&run.vars);
	n_steps = s->meta.n_steps;
	r->steps = calloc(n_steps ? n_steps : 1, sizeof(*r->steps));

	if (needs(s, "remote") && env->remote_via == SCENARIO_REMOTE_NONE) {
		result_set_skip(r, -1, "needs remote clients; none configured");
		goto done;
	}
	if ((needs(s, "restart") || scenario_uses_restart(s)) &&
	    (!env->restart_cmd || !*env->restart_cmd)) {
		result_set_skip(r, -1, "needs a gateway restart; no restart command configured");
		goto done;
	}
	if (identity_global_init() < 0) {
		r->verdict = SCENARIO_ERROR;
		r->message = strdup("crypto library init failed");
		goto done;
	}
	run.ctx = client_ctx_create(&(struct client_ctx_opts){.max_conns = MAX_ACTORS * 2});
	if (!run.ctx || !r->steps) {
		r->verdict = SCENARIO_ERROR;
		r->message = strdup("out of memory");
		goto done;
	}
	for (size_t i = 0; i < s->n_actors; i++)
		run.actors[i].def = &s->actors[i];
	for (size_t i = 0; env->vars && env->vars[i]; i++) {
		const char *eq = strchr(env->vars[i], '=');
		char name[128];

		if (!eq || (size_t)(eq - env->vars[i]) >= sizeof(name)) {
			r->verdict = SCENARIO_ERROR;
			r->message = fmt("bad variable %s (want NAME=VALUE)", env->vars[i]);
			goto done;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(eq - env->vars[i]), env->vars[i]);
		matcher_vars_set(&run.vars, name, eq + 1);
	}

	cJSON_ArrayForEach(st, s->steps)
	{
		const char *op = str_of(st, "do"), *an = str_of(st, "actor");
		struct actor_rt *a = an ? &run.actors[find_actor(s, an)] : NULL;
		struct scenario_step_result *sr = &r->steps[idx];
		char unknown[64];
		cJSON *step;
		int rc = 0;
		char note[96];

		sr->t_ms = client_now_ms() - run.t0;
		snprintf(sr->op, sizeof(sr->op), "%s", op);
		snprintf(sr->actor, sizeof(sr->actor), "%s", an ? an : "");
		r->n_steps = (size_t)idx + 1;
		snprintf(note, sizeof(note), "step %d: %s", idx, op);
		log_add(&run, an ? an : "", SCENARIO_DIR_NOTE, note, client_now_ms());

		step = matcher_subst_json(&run.vars, st, unknown, sizeof(unknown));
		if (!step) {
			r->verdict = SCENARIO_ERROR;
			r->failed_step = idx;
			snprintf(r->actor, sizeof(r->actor), "%s", an ? an : "");
			r->message = unknown[0]
			                     ? fmt("step %d: unknown variable ${%s}", idx, unknown)
			                     : strdup("out of memory");
			sr->verdict = SCENARIO_ERROR;
			break;
		}
		if (!strcmp(op, "connect"))
			rc = step_connect(&run, a, step);
		else if (!strcmp(op, "expect-hello"))
			rc = step_expect_hello(&run, a, step);
		else if (!strcmp(op, "send"))
			rc = step_send(&run, a, step);
		else if (!strcmp(op, "call"))
			rc = step_call(&run, a, step);
		else if (!strcmp(op, "expect-event"))
			rc = step_expect_event(&run, a, step);
		else if (!strcmp(op, "expect-no-event"))
			rc = step_expect_no_event(&run, a, step);
		else if (!strcmp(op, "expect-close"))
			rc = step_expect_close(&run, a, step);
		else if (!strcmp(op, "expect-open"))
			rc = step_expect_open(&run, a, step);
		else if (!strcmp(op, "expect-res"))
			rc = step_expect_res(&run, a, step);
		else if (!strcmp(op, "disconnect"))
			rc = step_disconnect(&run, a, step);
		else if (!strcmp(op, "sleep"))
			rc = step_sleep(&run, step);
		else if (!strcmp(op, "restart"))
			rc = step_restart(&run);
		cJSON_Delete(step);
		sr->ms = client_now_ms() - run.t0 - sr->t_ms;
		if (rc < 0) {
			uint64_t now = client_now_ms();
			char line[512];

			sr->verdict = SCENARIO_FAIL;
			r->verdict = SCENARIO_FAIL;
			r->failed_step = idx;
			snprintf(r->actor, sizeof(r->actor), "%s", an ? an : "");
			r->expected = run.expected;
			r->actual = run.actual;
			run.expected = run.actual = NULL;
			if (a) {
				r->ms_since_connect = since_connect(a, now);
				if (a->closed) {
					r->close_code = a->close_code;
					snprintf(r->close_reason, sizeof(r->close_reason), "%s",
					         a->close_reason);
				}
			}
			r->message =
			        fmt("step %d (%s %s): expected %s; got %s", idx, an ? an : "-", op,
			            r->expected ? r->expected : "?", r->actual ? r->actual : "?");
			snprintf(line, sizeof(line), "FAIL %.500s", r->message ? r->message : "");
			log_add(&run, an ? an : "", SCENARIO_DIR_NOTE, line, now);
			break;
		}
		sr->verdict = SCENARIO_PASS;
		idx++;
	}
done:
	for (size_t i = 0; i < MAX_ACTORS; i++) {
		client_conn_destroy(run.actors[i].conn);
		free_inbox(&run.actors[i]);
		free(run.actors[i].device_token);
		sodium_memzero(&run.actors[i].id, sizeof(run.actors[i].id));
	}
	client_ctx_destroy(run.ctx);
	matcher_vars_finish(&run.vars);
	free(run.expected);
	free(run.actual);
	r->duration_ms = client_now_ms() - run.t0;
	return 0;
}

void scenario_result_finish(struct scenario_result *r)
{
	if (!r)
		return;
	free(r->expected);
	free(r->actual);
	free(r->message);
	free(r->steps);
	for (size_t i = 0; i < r->n_log; i++)
		free(r->log[i].text);
	free(r->log);
	memset(r, 0, sizeof(*r));
	r->failed_step = -1;
}

char *scenario_result_json(const struct scenario *s, const struct scenario_result *r)
{
	cJSON *o = cJSON_CreateObject(), *steps, *log;
	char *out;

	if (!o)
		return NULL;
	if (s) {
		cJSON_AddStringToObject(o, "id", s->meta.id);
		if (s->meta.requirement)
			cJSON_AddStringToObject(o, "requirement", s->meta.requirement);
		if (s->meta.title)
			cJSON_AddStringToObject(o, "title", s->meta.title);
	}
	cJSON_AddStringToObject(o, "verdict", scenario_verdict_name(r->verdict));
	cJSON_AddNumberToObject(o, "durationMs", (double)r->duration_ms);
	if (r->message)
		cJSON_AddStringToObject(o, "message", r->message);
	if (r->failed_step >= 0) {
		cJSON_AddNumberToObject(o, "step", r->failed_step);
		cJSON_AddStringToObject(o, "actor", r->actor);
	}
	if (r->expected)
		cJSON_AddStringToObject(o, "expected", r->expected);
	if (r->actual)
		cJSON_AddStringToObject(o, "actual", r->actual);
	if (r->close_code) {
		cJSON_AddNumberToObject(o, "closeCode", r->close_code);
		cJSON_AddStringToObject(o, "closeReason", r->close_reason);
	}
	if (r->ms_since_connect >= 0)
		cJSON_AddNumberToObject(o, "msSinceConnect", (double)r->ms_since_connect);
	steps = cJSON_AddArrayToObject(o, "steps");
	for (size_t i = 0; steps && i < r->n_steps; i++) {
		cJSON *x = cJSON_CreateObject();

		if (!x)
			break;
		cJSON_AddStringToObject(x, "do", r->steps[i].op);
		cJSON_AddStringToObject(x, "actor", r->steps[i].actor);
		cJSON_AddStringToObject(x, "verdict", scenario_verdict_name(r->steps[i].verdict));
		cJSON_AddNumberToObject(x, "tMs", (double)r->steps[i].t_ms);
		cJSON_AddNumberToObject(x, "ms", (double)r->steps[i].ms);
		cJSON_AddItemToArray(steps, x);
	}
	log = cJSON_AddArrayToObject(o, "log");
	for (size_t i = 0; log && i < r->n_log; i++) {
		cJSON *x = cJSON_CreateObject();

		if (!x)
			break;
		cJSON_AddNumberToObject(x, "t", (double)r->log[i].t_ms);
		cJSON_AddStringToObject(x, "actor", r->log[i].actor);
		cJSON_AddStringToObject(x, "dir", scenario_dir_name(r->log[i].dir));
		cJSON_AddStringToObject(x, "text", r->log[i].text);
		cJSON_AddItemToArray(log, x);
	}
	out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return out;
}
