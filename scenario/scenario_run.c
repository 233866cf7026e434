/* scenario_run.c: playing a scenario: the actors' inboxes fed from the client library, waiting
 * for frames, the frame log, and the result of the first failing step. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "clock.h"
#include "json.h"
#include "scenario_internal.h"

static char *vfmt(const char *f, va_list ap) __attribute__((format(printf, 1, 0)));
static char *vfmt(const char *f, va_list ap)
{
	va_list ap2;
	int n;
	char *s;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, f, ap2);
	va_end(ap2);
	if (n < 0)
		return NULL;
	s = malloc((size_t)n + 1);
	if (s)
		vsnprintf(s, (size_t)n + 1, f, ap);
	return s;
}

char *scenario_fmt(const char *f, ...)
{
	va_list ap;
	char *s;

	va_start(ap, f);
	s = vfmt(f, ap);
	va_end(ap);
	return s;
}

void scenario_log(struct scenario_run *run, const char *actor, enum scenario_dir dir,
                  const char *text, uint64_t at_ms)
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

int scenario_fail_with(struct scenario_run *run, char *expected, char *actual)
{
	free(run->expected);
	free(run->actual);
	run->expected = expected ? expected : strdup("?");
	run->actual = actual ? actual : strdup("?");
	return -1;
}

/* ---------------------------------------------------------------- inboxes */

static void free_inbox(struct scenario_actor *a)
{
	while (a->inbox) {
		struct scenario_inframe *f = a->inbox;

		a->inbox = f->next;
		free(f->text);
		cJSON_Delete(f->json);
		free(f);
	}
	a->inbox_tail = NULL;
}

void scenario_actor_reset_conn(struct scenario_actor *a)
{
	client_conn_destroy(a->conn);
	a->conn = NULL;
	free_inbox(a);
	a->closed = false;
	a->close_code = 0;
	a->close_reason[0] = '\0';
	a->connect_id[0] = '\0';
	a->connect_answered = false;
	a->opened_only = false;
}

void scenario_drop_frame(struct scenario_actor *a, struct scenario_inframe *f)
{
	struct scenario_inframe **pp = &a->inbox, *prev = NULL;

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

static void note_close(struct scenario_run *run, struct scenario_actor *a,
                       const struct client_item *it)
{
	char line[200];

	a->closed = true;
	a->close_code = it->close_code;
	snprintf(a->close_reason, sizeof(a->close_reason), "%s", it->close_reason);
	a->close_at = it->at_ms;
	snprintf(line, sizeof(line), "%d %s%s", it->close_code, it->close_reason,
	         it->local_close ? " (this side)" : "");
	scenario_log(run, a->def->name, SCENARIO_DIR_CLOSE, line, it->at_ms);
}

/* Moves what the client library queued for a into its inbox, logging every frame. */
static void drain_actor(struct scenario_run *run, struct scenario_actor *a)
{
	struct client_item it;

	while (a->conn && client_pending_items(a->conn) > 0 && client_next(a->conn, 0, &it) == 1) {
		struct scenario_inframe *f;

		if (it.kind == CLIENT_ITEM_CLOSE) {
			note_close(run, a, &it);
			client_item_finish(&it);
			continue;
		}
		scenario_log(run, a->def->name, SCENARIO_DIR_IN,
		             it.binary ? "(binary message)" : it.text, it.at_ms);
		f = calloc(1, sizeof(*f));
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

void scenario_drain(struct scenario_run *run)
{
	for (size_t i = 0; i < run->s->n_actors; i++)
		drain_actor(run, &run->actors[i]);
}

void scenario_pump(struct scenario_run *run, int ms)
{
	client_service(run->ctx, ms);
	scenario_drain(run);
}

/* ---------------------------------------------------------------- what happened, in words */

int scenario_step_timeout(const struct scenario_run *run, const cJSON *st)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, "timeout_ms");
	double ms = cJSON_IsNumber(v) ? v->valuedouble : run->s->meta.timeout_ms;
	double scale = run->env->timeout_scale > 0 ? run->env->timeout_scale : 1.0;

	return (int)(ms * scale);
}

long scenario_since_connect(const struct scenario_actor *a, uint64_t at)
{
	return a->t_connect && at >= a->t_connect ? (long)(at - a->t_connect) : -1;
}

char *scenario_closed_text(const struct scenario_actor *a)
{
	return scenario_fmt("closed %d '%s' %ld ms after %s", a->close_code, a->close_reason,
	                    scenario_since_connect(a, a->close_at),
	                    a->opened_only ? "open" : "connect");
}

char *scenario_inbox_digest(const struct scenario_actor *a)
{
	size_t cap = 1024, len = 0;
	char *out = malloc(cap);
	int n = 0;

	if (!out)
		return NULL;
	out[0] = '\0';
	for (const struct scenario_inframe *f = a->inbox; f && n < 6; f = f->next, n++) {
		int w = snprintf(out + len, cap - len, "%s%.160s%s", n ? "; " : "", f->text,
		                 strlen(f->text) > 160 ? "..." : "");

		if (w < 0 || (size_t)w >= cap - len)
			break;
		len += (size_t)w;
	}
	return out;
}

static char *nothing_text(const struct scenario_actor *a, int timeout_ms)
{
	char *d = scenario_inbox_digest(a), *s;

	if (a->closed) {
		char *c = scenario_closed_text(a);

		s = d && *d ? scenario_fmt("%s; unmatched frames: %s", c ? c : "", d) : NULL;
		if (s)
			free(c);
		else
			s = c;
	} else {
		s = scenario_fmt("nothing matching within %d ms%s%s", timeout_ms,
		                 d && *d ? "; unmatched frames: " : "", d && *d ? d : "");
	}
	free(d);
	return s;
}

char *scenario_with_close(const struct scenario_actor *a, char *text)
{
	char *c, *s;

	if (!a->closed)
		return text;
	c = scenario_closed_text(a);
	s = scenario_fmt("%s, then %s", text ? text : "", c ? c : "");
	free(c);
	free(text);
	return s;
}

void scenario_settle_close(struct scenario_run *run, struct scenario_actor *a, int ms)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)ms;

	while (!a->closed && a->conn && clock_mono_ms() < deadline)
		scenario_pump(run, 20);
}

/* ---------------------------------------------------------------- frames */

bool scenario_is_event(const struct scenario_inframe *f, const char *name)
{
	const char *t = json_get_string(f->json, "type"), *e = json_get_string(f->json, "event");

	return t && !strcmp(t, "event") && e && !strcmp(e, name);
}

bool scenario_is_res(const struct scenario_inframe *f, const char *id)
{
	const char *t = json_get_string(f->json, "type"), *i = json_get_string(f->json, "id");

	return t && !strcmp(t, "res") && i && !strcmp(i, id);
}

int scenario_captures(struct scenario_run *run, const cJSON *st, const cJSON *frame)
{
	const cJSON *cap = cJSON_GetObjectItemCaseSensitive(st, "capture"), *c;

	cJSON_ArrayForEach(c, cap)
	{
		const cJSON *v = matcher_path(frame, c->valuestring);
		char *val;

		if (!v) {
			char *t = cJSON_PrintUnformatted(frame);

			scenario_fail_with(
			        run, scenario_fmt("capture %s from %s", c->string, c->valuestring),
			        scenario_fmt("no %s in %s", c->valuestring, t ? t : "?"));
			free(t);
			return -1;
		}
		val = cJSON_IsString(v) ? strdup(v->valuestring) : cJSON_PrintUnformatted(v);
		if (!val || matcher_vars_set(&run->vars, c->string, val) < 0) {
			free(val);
			return scenario_fail_with(run, strdup("capture"), strdup("out of memory"));
		}
		free(val);
	}
	return 0;
}

struct scenario_inframe *scenario_wait_frame(struct scenario_run *run, struct scenario_actor *a,
                                             int timeout_ms, scenario_pick_fn pick, void *arg,
                                             const char *expected)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;

	for (;;) {
		uint64_t now, left;

		scenario_drain(run);
		for (struct scenario_inframe *f = a->inbox; f; f = f->next) {
			int rc = pick(run, a, f, arg);

			if (rc > 0)
				return f;
			if (rc < 0)
				return NULL;
		}
		if (!a->conn && !a->closed) {
			scenario_fail_with(run, strdup(expected), strdup("not connected"));
			return NULL;
		}
		now = clock_mono_ms();
		if (a->closed || now >= deadline) {
			scenario_fail_with(run, strdup(expected), nothing_text(a, timeout_ms));
			return NULL;
		}
		left = deadline - now;
		client_service(run->ctx, (int)(left < 50 ? left : 50));
	}
}

int scenario_send_json(struct scenario_run *run, struct scenario_actor *a, const cJSON *frame)
{
	char *t = cJSON_PrintUnformatted(frame);
	int rc;

	if (!t)
		return -1;
	scenario_log(run, a->def->name, SCENARIO_DIR_OUT, t, clock_mono_ms());
	rc = a->conn ? client_send_text(a->conn, t) : -1;
	free(t);
	return rc;
}

/* ---------------------------------------------------------------- the run */

static bool needs(const struct scenario *s, const char *what)
{
	for (size_t i = 0; i < s->meta.n_needs; i++) {
		if (!strcmp(s->meta.needs[i], what))
			return true;
	}
	return false;
}

static bool uses_restart(const struct scenario *s)
{
	const cJSON *st;

	cJSON_ArrayForEach(st, s->steps)
	{
		const char *op = json_get_string(st, "do");

		if (op && !strcmp(op, "restart"))
			return true;
	}
	return false;
}

static void set_verdict(struct scenario_result *r, enum scenario_verdict v, char *message)
{
	r->verdict = v;
	free(r->message);
	r->message = message;
}

/* What the environment lacks (SKIP) or what cannot be set up (ERROR). 0: ready to play. */
static int run_prepare(struct scenario_run *run)
{
	const struct scenario *s = run->s;
	const struct scenario_env *env = run->env;
	struct scenario_result *r = run->r;

	if (needs(s, "remote") && env->remote_via == SCENARIO_REMOTE_NONE) {
		set_verdict(r, SCENARIO_SKIP, strdup("needs remote clients; none configured"));
		return -1;
	}
	if ((needs(s, "restart") || uses_restart(s)) && (!env->restart_cmd || !*env->restart_cmd)) {
		set_verdict(r, SCENARIO_SKIP,
		            strdup("needs a gateway restart; no restart command configured"));
		return -1;
	}
	if (identity_global_init() < 0) {
		set_verdict(r, SCENARIO_ERROR, strdup("crypto library init failed"));
		return -1;
	}
	run->ctx =
	        client_ctx_create(&(struct client_ctx_opts){.max_conns = SCENARIO_MAX_ACTORS * 2});
	if (!run->ctx || !r->steps) {
		set_verdict(r, SCENARIO_ERROR, strdup("out of memory"));
		return -1;
	}
	for (size_t i = 0; i < s->n_actors; i++)
		run->actors[i].def = &s->actors[i];
	for (size_t i = 0; env->vars && env->vars[i]; i++) {
		const char *eq = strchr(env->vars[i], '=');
		char name[128];

		if (!eq || (size_t)(eq - env->vars[i]) >= sizeof(name)) {
			set_verdict(
			        r, SCENARIO_ERROR,
			        scenario_fmt("bad variable %s (want NAME=VALUE)", env->vars[i]));
			return -1;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(eq - env->vars[i]), env->vars[i]);
		matcher_vars_set(&run->vars, name, eq + 1);
	}
	return 0;
}

/* The failure of step idx into the result: texts, the actor's connection state, one line. */
static void record_failure(struct scenario_run *run, struct scenario_actor *a, int idx,
                           const char *an, const char *op)
{
	struct scenario_result *r = run->r;
	uint64_t now = clock_mono_ms();
	char line[512];

	r->verdict = SCENARIO_FAIL;
	r->failed_step = idx;
	snprintf(r->actor, sizeof(r->actor), "%s", an ? an : "");
	r->expected = run->expected;
	r->actual = run->actual;
	run->expected = run->actual = NULL;
	if (a) {
		r->ms_since_connect = scenario_since_connect(a, now);
		if (a->closed) {
			r->close_code = a->close_code;
			snprintf(r->close_reason, sizeof(r->close_reason), "%s", a->close_reason);
			r->close_ms = scenario_since_connect(a, a->close_at);
		}
	}
	r->message = scenario_fmt("step %d (%s %s): expected %s; got %s", idx, an ? an : "-", op,
	                          r->expected ? r->expected : "?", r->actual ? r->actual : "?");
	snprintf(line, sizeof(line), "FAIL %.500s", r->message ? r->message : "");
	scenario_log(run, an ? an : "", SCENARIO_DIR_NOTE, line, now);
}

/* Plays step idx. Returns 0 to go on, -1 when the run ends there (result filled). */
static int play_step(struct scenario_run *run, const cJSON *st, int idx)
{
	struct scenario_result *r = run->r;
	const char *op = json_get_string(st, "do"), *an = json_get_string(st, "actor");
	struct scenario_actor *a = an ? &run->actors[scenario_find_actor(run->s, an)] : NULL;
	struct scenario_step_result *sr = &r->steps[idx];
	char unknown[64], note[96];
	cJSON *step;
	int rc;

	sr->t_ms = clock_mono_ms() - run->t0;
	snprintf(sr->op, sizeof(sr->op), "%s", op);
	snprintf(sr->actor, sizeof(sr->actor), "%s", an ? an : "");
	r->n_steps = (size_t)idx + 1;
	snprintf(note, sizeof(note), "step %d: %s", idx, op);
	scenario_log(run, an ? an : "", SCENARIO_DIR_NOTE, note, clock_mono_ms());

	step = matcher_subst_json(&run->vars, st, unknown, sizeof(unknown));
	if (!step) {
		r->failed_step = idx;
		snprintf(r->actor, sizeof(r->actor), "%s", an ? an : "");
		set_verdict(r, SCENARIO_ERROR,
		            unknown[0]
		                    ? scenario_fmt("step %d: unknown variable ${%s}", idx, unknown)
		                    : strdup("out of memory"));
		sr->verdict = SCENARIO_ERROR;
		return -1;
	}
	rc = scenario_step_kind(op)->play(run, a, step);
	cJSON_Delete(step);
	sr->ms = clock_mono_ms() - run->t0 - sr->t_ms;
	if (rc < 0 && run->skip) {
		sr->verdict = SCENARIO_SKIP;
		set_verdict(r, SCENARIO_SKIP, run->skip);
		run->skip = NULL;
		return -1;
	}
	if (rc < 0) {
		sr->verdict = SCENARIO_FAIL;
		record_failure(run, a, idx, an, op);
		return -1;
	}
	sr->verdict = SCENARIO_PASS;
	return 0;
}

int scenario_run(const struct scenario *s, const struct scenario_env *env,
                 struct scenario_result *r)
{
	struct scenario_run run;
	const cJSON *st;
	int idx = 0;

	if (!r)
		return -1;
	memset(r, 0, sizeof(*r));
	r->failed_step = -1;
	r->ms_since_connect = -1;
	r->close_ms = -1;
	if (!s || !env || !env->url)
		return -1;
	memset(&run, 0, sizeof(run));
	run.s = s;
	run.env = env;
	run.r = r;
	run.t0 = clock_mono_ms();
	matcher_vars_init(&run.vars);
	r->steps = calloc(s->meta.n_steps ? s->meta.n_steps : 1, sizeof(*r->steps));
	if (run_prepare(&run) == 0) {
		cJSON_ArrayForEach(st, s->steps)
		{
			if (play_step(&run, st, idx++) < 0)
				break;
		}
	}
	for (size_t i = 0; i < SCENARIO_MAX_ACTORS; i++) {
		client_conn_destroy(run.actors[i].conn);
		free_inbox(&run.actors[i]);
		free(run.actors[i].device_token);
		sodium_memzero(&run.actors[i].id, sizeof(run.actors[i].id));
	}
	client_ctx_destroy(run.ctx);
	matcher_vars_finish(&run.vars);
	free(run.expected);
	free(run.actual);
	r->duration_ms = clock_mono_ms() - run.t0;
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
	r->ms_since_connect = -1;
	r->close_ms = -1;
}
