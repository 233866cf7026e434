/* raw.c: the raw player, for cases that need what a scenario cannot express: a socket that
 * never sends connect (handshake timeout, frames before the handshake, bytes that are not valid
 * UTF-8 or hold a NUL). Actors are device-less operators; steps: open, connect, send, call,
 * expect-res, expect-event, expect-close, expect-open, sleep. */
#include "runner.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "matcher.h"
#include "clock.h"
#include "connect_build.h"

#define RAW_MAX_ACTORS 8
#define RAW_DEFAULT_TIMEOUT_MS 5000

struct raw_frame {
	struct raw_frame *next;
	char *text;
	cJSON *json;
};

struct raw_actor {
	const char *name;
	const cJSON *def;
	struct client_conn *conn;
	bool closed;
	int close_code;
	char close_reason[128];
	uint64_t t_open, close_at;
	struct raw_frame *inbox;
	unsigned next_req;
	char connect_id[16];
	char nonce[64];
};

struct raw_run {
	const struct conf_options *o;
	struct conf_result *r;
	struct raw_outcome *out;
	struct client_ctx *ctx;
	struct raw_actor actors[RAW_MAX_ACTORS];
	size_t n;
	uint64_t t0;
};

static const char *str_of(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmt, ...)
{
	struct strbuf b;
	va_list ap;
	char tmp[1024];

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	strbuf_init(&b);
	strbuf_add(&b, tmp);
	return strbuf_take(&b);
}

static void note(struct raw_run *run, const char *actor, const char *dir, const char *text)
{
	conf_add_frame_line(run->r, client_now_ms() - run->t0, actor, dir, text);
}

static void drain(struct raw_run *run)
{
	for (size_t i = 0; i < run->n; i++) {
		struct raw_actor *a = &run->actors[i];
		struct client_item it;

		while (a->conn && client_pending_items(a->conn) &&
		       client_next(a->conn, 0, &it) == 1) {
			if (it.kind == CLIENT_ITEM_CLOSE) {
				char line[200];

				a->closed = true;
				a->close_code = it.close_code;
				snprintf(a->close_reason, sizeof a->close_reason, "%s",
				         it.close_reason);
				a->close_at = it.at_ms;
				snprintf(line, sizeof line, "%d %s", it.close_code,
				         it.close_reason);
				note(run, a->name, "close", line);
			} else {
				struct raw_frame *f = calloc(1, sizeof *f), **pp;

				note(run, a->name, "<", it.binary ? "(binary message)" : it.text);
				if (f) {
					f->text = it.text;
					it.text = NULL;
					f->json = cJSON_Parse(f->text);
					for (pp = &a->inbox; *pp; pp = &(*pp)->next)
						;
					*pp = f;
				}
			}
			client_item_finish(&it);
		}
	}
}

static void pump(struct raw_run *run, int ms)
{
	client_service(run->ctx, ms);
	drain(run);
}

static void free_frame(struct raw_frame *f)
{
	free(f->text);
	cJSON_Delete(f->json);
	free(f);
}

static int timeout_of(const struct raw_run *run, const cJSON *st)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, "timeout_ms");
	double ms = cJSON_IsNumber(v) ? v->valuedouble : RAW_DEFAULT_TIMEOUT_MS;

	return (int)(ms * (run->o->timeout_scale > 0 ? run->o->timeout_scale : 1));
}

static int fail(struct raw_run *run, struct raw_actor *a, char *expected, char *actual)
{
	struct raw_outcome *out = run->out;

	out->failed = true;
	out->expected = expected;
	out->actual = actual;
	if (a && a->closed) {
		out->close_code = a->close_code;
		snprintf(out->close_reason, sizeof out->close_reason, "%s", a->close_reason);
	}
	if (a && a->t_open)
		out->ms_since_connect = (long)(client_now_ms() - a->t_open);
	return -1;
}

static char *closed_text(const struct raw_actor *a)
{
	return dupf("closed %d '%s' %ld ms after open", a->close_code, a->close_reason,
	            (long)(a->close_at - a->t_open));
}

/* Waits for a frame: a res with id (event NULL) or an event (id NULL) matching m (whole frame
 * for res, payload for events; match: whole frame). Removes and returns it (caller frees). */
static struct raw_frame *wait_frame(struct raw_run *run, struct raw_actor *a, const char *id,
                                    const char *event, const cJSON *m, const cJSON *match,
                                    int timeout_ms, char *why, size_t whysz)
{
	uint64_t deadline = client_now_ms() + (uint64_t)timeout_ms;

	why[0] = '\0';
	for (;;) {
		struct raw_frame **pp;

		drain(run);
		for (pp = &a->inbox; *pp; pp = &(*pp)->next) {
			struct raw_frame *f = *pp;
			const char *type = str_of(f->json, "type");
			bool ok;

			if (!type)
				continue;
			if (id)
				ok = !strcmp(type, "res") && str_of(f->json, "id") &&
				     !strcmp(str_of(f->json, "id"), id);
			else
				ok = !strcmp(type, "event") && str_of(f->json, "event") &&
				     !strcmp(str_of(f->json, "event"), event);
			if (!ok)
				continue;
			if (id && m && !matcher_match(m, f->json, why, whysz)) {
				*pp = f->next;
				return f; /* the res to that id, mismatching: caller reports */
			}
			if (!id && m &&
			    !matcher_match(m, cJSON_GetObjectItemCaseSensitive(f->json, "payload"),
			                   why, whysz))
				continue;
			if (!id && match && !matcher_match(match, f->json, why, whysz))
				continue;
			why[0] = '\0';
			*pp = f->next;
			return f;
		}
		if (a->closed || !a->conn || client_now_ms() >= deadline)
			return NULL;
		pump(run, 20);
	}
}

static int open_actor(struct raw_run *run, struct raw_actor *a, const cJSON *st)
{
	struct client_conn_opts co = {0};
	char err[256], line[300];

	client_conn_destroy(a->conn);
	a->conn = NULL;
	while (a->inbox) {
		struct raw_frame *f = a->inbox;

		a->inbox = f->next;
		free_frame(f);
	}
	a->closed = false;
	a->connect_id[0] = '\0';
	co.url = run->o->url;
	co.connect_timeout_ms = timeout_of(run, st);
	snprintf(line, sizeof line, "open %s", co.url);
	note(run, a->name, "#", line);
	a->t_open = client_now_ms();
	if (client_connect(run->ctx, &co, &a->conn, err, sizeof err) < 0) {
		a->conn = NULL;
		return fail(run, a, dupf("a WebSocket connection"), dupf("%s", err));
	}
	return 0;
}

static int step_open(struct raw_run *run, struct raw_actor *a, const cJSON *st)
{
	return open_actor(run, a, st);
}

static int step_connect(struct raw_run *run, struct raw_actor *a, const cJSON *st)
{
	struct connect_spec spec;
	const char *scopes[32];
	const cJSON *sc = cJSON_GetObjectItemCaseSensitive(a->def, "scopes"), *x, *expect;
	cJSON *params, *req;
	struct raw_frame *f;
	char why[300], *text;
	int timeout = timeout_of(run, st);
	size_t n = 0;

	if (open_actor(run, a, st) < 0)
		return -1;
	f = wait_frame(run, a, NULL, "connect.challenge", NULL, NULL, timeout, why, sizeof why);
	if (!f)
		return fail(run, a, dupf("connect.challenge"),
		            a->closed ? closed_text(a) : dupf("nothing within %d ms", timeout));
	snprintf(a->nonce, sizeof a->nonce, "%s",
	         str_of(cJSON_GetObjectItemCaseSensitive(f->json, "payload"), "nonce")
	                 ? str_of(cJSON_GetObjectItemCaseSensitive(f->json, "payload"), "nonce")
	                 : "");
	free_frame(f);
	connect_spec_operator(&spec);
	cJSON_ArrayForEach(x, sc)
	{
		if (cJSON_IsString(x) && n < 32)
			scopes[n++] = x->valuestring;
	}
	if (sc) {
		spec.scopes = scopes;
		spec.n_scopes = n;
		spec.scopes_omit = false;
	}
	spec.token = run->o->token;
	params = connect_params_build(&spec, a->nonce, clock_wall_ms());
	snprintf(a->connect_id, sizeof a->connect_id, "c%u", ++a->next_req);
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "type", "req");
	cJSON_AddStringToObject(req, "id", a->connect_id);
	cJSON_AddStringToObject(req, "method", "connect");
	cJSON_AddItemToObject(req, "params", params);
	text = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (!text)
		return fail(run, a, dupf("connect"), dupf("out of memory"));
	note(run, a->name, ">", text);
	client_send_text(a->conn, text);
	free(text);
	expect = cJSON_GetObjectItemCaseSensitive(st, "expect");
	if (!cJSON_IsString(expect) || strcmp(expect->valuestring, "hello-ok") != 0)
		return 0;
	{
		cJSON *m = cJSON_Parse("{\"ok\":true,\"payload\":{\"type\":\"hello-ok\"}}");

		f = wait_frame(run, a, a->connect_id, NULL, m, NULL, timeout, why, sizeof why);
		cJSON_Delete(m);
	}
	if (!f || why[0]) {
		char *act = f           ? dupf("%s (%s)", f->text, why)
		            : a->closed ? closed_text(a)
		                        : dupf("nothing within %d ms", timeout);

		if (f)
			free_frame(f);
		return fail(run, a, dupf("res ok hello-ok to connect"), act);
	}
	free_frame(f);
	return 0;
}

static int step_send(struct raw_run *run, struct raw_actor *a, const cJSON *st)
{
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(st, "text");
	const cJSON *frame = cJSON_GetObjectItemCaseSensitive(st, "frame");
	bool binary = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "binary"));
	struct strbuf b;
	char err[200];
	int rc;

	strbuf_init(&b);
	if (text) {
		if (conf_value_bytes(text, &b, err, sizeof err) < 0) {
			strbuf_finish(&b);
			return fail(run, a, dupf("send"), dupf("%s", err));
		}
	} else {
		char *t = cJSON_PrintUnformatted(frame);

		strbuf_add(&b, t ? t : "");
		free(t);
	}
	if (!a->conn) {
		strbuf_finish(&b);
		return fail(run, a, dupf("send on an open connection"), dupf("not connected"));
	}
	note(run, a->name, ">", binary ? "(binary message)" : (b.p ? b.p : ""));
	rc = client_send(a->conn, b.p ? b.p : "", b.len, binary);
	strbuf_finish(&b);
	if (rc < 0)
		return fail(run, a, dupf("send on an open connection"),
		            a->closed ? closed_text(a) : dupf("not connected"));
	return 0;
}

static int expect_res(struct raw_run *run, struct raw_actor *a, const char *id, const cJSON *expect,
                      int timeout)
{
	char why[300];
	struct raw_frame *f = wait_frame(run, a, id, NULL, expect, NULL, timeout, why, sizeof why);
	char *m;

	if (f && !why[0]) {
		free_frame(f);
		return 0;
	}
	m = expect ? cJSON_PrintUnformatted(expect) : NULL;
	if (f) {
		fail(run, a, dupf("res %s matching %s", id, m ? m : "{}"),
		     dupf("%s (%s)", f->text, why));
		free_frame(f);
	} else {
		fail(run, a, dupf("res %s matching %s", id, m ? m : "{}"),
		     a->closed ? closed_text(a) : dupf("nothing within %d ms", timeout));
	}
	free(m);
	return -1;
}

static int step_call(struct raw_run *run, struct raw_actor *a, const cJSON *st)
{
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(st, "params");
	cJSON *req = cJSON_CreateObject();
	char id[16], *text;

	snprintf(id, sizeof id, "r%u", ++a->next_req);
	cJSON_AddStringToObject(req, "type", "req");
	cJSON_AddStringToObject(req, "id", id);
	cJSON_AddStringToObject(req, "method", str_of(st, "method") ? str_of(st, "method") : "");
	cJSON_AddItemToObject(req, "params",
	                      params ? cJSON_Duplicate(params, true) : cJSON_CreateObject());
	text = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (!text || !a->conn || a->closed) {
		free(text);
		return fail(run, a, dupf("res to %s", str_of(st, "method")),
		            a->closed ? closed_text(a) : dupf("not connected"));
	}
	note(run, a->name, ">", text);
	client_send_text(a->conn, text);
	free(text);
	return expect_res(run, a, id, cJSON_GetObjectItemCaseSensitive(st, "expect"),
	                  timeout_of(run, st));
}

static int step_expect_event(struct raw_run *run, struct raw_actor *a, const cJSON *st)
{
	char why[300];
	int timeout = timeout_of(run, st);
	struct raw_frame *f = wait_frame(
	        run, a, NULL, str_of(st, "event"), cJSON_GetObjectItemCaseSensitive(st, "payload"),
	        cJSON_GetObjectItemCaseSensitive(st, "match"), timeout, why, sizeof why);

	if (f) {
		free_frame(f);
		return 0;
	}
	return fail(run, a, dupf("event %s", str_of(st, "event")),
	            a->closed ? closed_text(a)
	                      : dupf("nothing matching within %d ms%s%s", timeout,
	                             why[0] ? "; closest: " : "", why));
}

static int step_expect_close(struct raw_run *run, struct raw_actor *a, const cJSON *st)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(st, "code");
	const cJSON *rm = cJSON_GetObjectItemCaseSensitive(st, "reason");
	const char *reason = cJSON_IsString(rm) ? rm->valuestring : rm ? "(pattern)" : NULL;
	int timeout = timeout_of(run, st);
	uint64_t deadline = client_now_ms() + (uint64_t)timeout;
	char *want;

	while (a->conn && !a->closed && client_now_ms() < deadline)
		pump(run, 20);
	want = dupf("close%s%d%s%s%s", code ? " with code " : "", code ? (int)code->valuedouble : 0,
	            reason ? ", reason '" : "", reason ? reason : "", reason ? "'" : "");
	if (!a->closed)
		return fail(run, a, want, dupf("still open after %d ms", timeout));
	if (code && (int)code->valuedouble != a->close_code)
		return fail(run, a, want, closed_text(a));
	if (rm) {
		cJSON *got = cJSON_CreateString(a->close_reason);
		char why[200];
		bool ok = got && matcher_match(rm, got, why, sizeof why);

		cJSON_Delete(got);
		if (!ok)
			return fail(run, a, want, closed_text(a));
	}
	free(want);
	return 0;
}

static int step_expect_open(struct raw_run *run, struct raw_actor *a, const cJSON *st)
{
	const cJSON *ms = cJSON_GetObjectItemCaseSensitive(st, "ms");
	int want = cJSON_IsNumber(ms) ? (int)ms->valuedouble : 1000;
	uint64_t deadline = client_now_ms() + (uint64_t)want;

	while (a->conn && !a->closed && client_now_ms() < deadline)
		pump(run, 20);
	if (!a->conn || a->closed)
		return fail(run, a, dupf("open for %d ms", want),
		            a->closed ? closed_text(a) : dupf("not connected"));
	return 0;
}

static struct raw_actor *actor_of(struct raw_run *run, const char *name)
{
	for (size_t i = 0; name && i < run->n; i++) {
		if (!strcmp(run->actors[i].name, name))
			return &run->actors[i];
	}
	return NULL;
}

void raw_play(const cJSON *case_json, const struct conf_options *o, struct raw_outcome *out,
              struct conf_result *r)
{
	struct raw_run run;
	const cJSON *actors = cJSON_GetObjectItemCaseSensitive(case_json, "actors"), *a, *st;
	int idx = 0;

	memset(out, 0, sizeof *out);
	out->failed_step = -1;
	out->ms_since_connect = -1;
	memset(&run, 0, sizeof run);
	run.o = o;
	run.r = r;
	run.out = out;
	run.t0 = client_now_ms();
	cJSON_ArrayForEach(a, actors)
	{
		const char *role = str_of(a, "role");

		if (run.n == RAW_MAX_ACTORS || (role && strcmp(role, "operator")) ||
		    cJSON_GetObjectItemCaseSensitive(a, "identity")) {
			fail(&run, NULL,
			     dupf("raw cases have at most %d device-less operators",
			          RAW_MAX_ACTORS),
			     dupf("actor %s", a->string));
			out->message =
			        dupf("case error: raw cases have only device-less operators");
			return;
		}
		run.actors[run.n].name = a->string;
		run.actors[run.n].def = a;
		run.n++;
	}
	run.ctx = client_ctx_create(&(struct client_ctx_opts){.max_conns = 2 * RAW_MAX_ACTORS});
	if (!run.ctx) {
		fail(&run, NULL, dupf("a client context"), dupf("out of memory"));
		out->message = dupf("out of memory");
		return;
	}
	cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(case_json, "steps"))
	{
		const char *op = str_of(st, "do");
		struct raw_actor *ra = actor_of(&run, str_of(st, "actor"));
		char line[64];
		int rc;

		snprintf(line, sizeof line, "step %d: %s", idx, op ? op : "?");
		note(&run, ra ? ra->name : "", "#", line);
		if (!op || (!ra && strcmp(op, "sleep") != 0))
			rc = fail(&run, NULL, dupf("a known actor"), dupf("step %d", idx));
		else if (!strcmp(op, "open"))
			rc = step_open(&run, ra, st);
		else if (!strcmp(op, "connect"))
			rc = step_connect(&run, ra, st);
		else if (!strcmp(op, "send"))
			rc = step_send(&run, ra, st);
		else if (!strcmp(op, "call"))
			rc = step_call(&run, ra, st);
		else if (!strcmp(op, "expect-res"))
			rc = expect_res(&run, ra, str_of(st, "id") ? str_of(st, "id") : "",
			                cJSON_GetObjectItemCaseSensitive(st, "expect"),
			                timeout_of(&run, st));
		else if (!strcmp(op, "expect-event"))
			rc = step_expect_event(&run, ra, st);
		else if (!strcmp(op, "expect-close"))
			rc = step_expect_close(&run, ra, st);
		else if (!strcmp(op, "expect-open"))
			rc = step_expect_open(&run, ra, st);
		else if (!strcmp(op, "sleep")) {
			const cJSON *ms = cJSON_GetObjectItemCaseSensitive(st, "ms");
			uint64_t until = client_now_ms() +
			                 (uint64_t)(cJSON_IsNumber(ms) ? ms->valuedouble : 0);

			while (client_now_ms() < until)
				pump(&run, 20);
			rc = 0;
		} else
			rc = fail(&run, NULL, dupf("a step the raw player knows"), dupf("%s", op));
		if (rc < 0) {
			out->failed_step = idx;
			out->message = dupf("step %d (%s %s): expected %s; got %s", idx,
			                    ra ? ra->name : "-", op ? op : "?",
			                    out->expected ? out->expected : "?",
			                    out->actual ? out->actual : "?");
			note(&run, ra ? ra->name : "", "#", out->message);
			break;
		}
		idx++;
	}
	for (size_t i = 0; i < run.n; i++) {
		client_conn_destroy(run.actors[i].conn);
		while (run.actors[i].inbox) {
			struct raw_frame *f = run.actors[i].inbox;

			run.actors[i].inbox = f->next;
			free_frame(f);
		}
	}
	client_ctx_destroy(run.ctx);
}

void raw_outcome_finish(struct raw_outcome *out)
{
	if (!out)
		return;
	free(out->expected);
	free(out->actual);
	free(out->message);
	memset(out, 0, sizeof *out);
}
