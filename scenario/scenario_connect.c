/* scenario_connect.c: the steps that open a socket: "open" (a WebSocket that never sends
 * connect), "connect" (challenge, signed connect, and its outcome) and "expect-hello" (the
 * answer to a held connect). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "json.h"
#include "scenario_internal.h"
#include "strbuf.h"

/* ---------------------------------------------------------------- identities */

static void ensure_identity(struct scenario_run *run, struct scenario_actor *a)
{
	char buf[80];
	char name[96];

	if (a->has_id || a->def->ident == SCENARIO_IDENT_NONE)
		return;
	if (a->def->ident == SCENARIO_IDENT_SAME_AS) {
		struct scenario_actor *o = &run->actors[a->def->same_as];

		ensure_identity(run, o);
		a->id = o->id;
		a->has_id = o->has_id;
	} else if (a->def->ident == SCENARIO_IDENT_SEED) {
		a->has_id = identity_from_seed(&a->id, a->def->seed) == 0;
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

static void note_hello(struct scenario_run *run, struct scenario_actor *a, const cJSON *frame)
{
	const char *tok = json_get_string(matcher_path(frame, "payload.auth"), "deviceToken");
	char name[96];

	a->connect_answered = true;
	if (!tok)
		return;
	free(a->device_token);
	a->device_token = strdup(tok);
	snprintf(name, sizeof(name), "%s.deviceToken", a->def->name);
	matcher_vars_set(&run->vars, name, tok);
}

static bool is_hello(const struct scenario_inframe *f)
{
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(f->json, "ok");
	const char *t =
	        json_get_string(cJSON_GetObjectItemCaseSensitive(f->json, "payload"), "type");

	return cJSON_IsTrue(ok) && t && !strcmp(t, "hello-ok");
}

/* ---------------------------------------------------------------- the socket */

static void remote_opts(struct scenario_run *run, struct scenario_actor *a,
                        struct client_conn_opts *o)
{
	const struct scenario_env *env = run->env;

	if (a->def->remote && env->remote_via == SCENARIO_REMOTE_XFF) {
		if (!a->xff[0]) {
			unsigned *ctr = env->xff_counter ? env->xff_counter : &run->xff_local;
			unsigned x = *ctr;

			if (x < 2 || x > 254)
				x = 2;
			*ctr = x + 1;
			snprintf(a->xff, sizeof(a->xff), "10.77.0.%u", x);
		}
		o->xff = a->xff;
	} else if (a->def->remote && env->remote_via == SCENARIO_REMOTE_NETNS) {
		o->url = env->remote_url ? env->remote_url : env->url;
		o->netns = env->netns ? env->netns : "cplan";
	}
}

/* Opens the actor's WebSocket (closing its previous one). Returns 0, or -1 with the reason in
 * err and the refusal recorded as the actor's close: some cases expect exactly that. */
/* "headers": ["Name: value", ...] as request header lines (malloc'd), or NULL. */
static char *extra_headers(const cJSON *st)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(st, "headers"), *line;
	struct strbuf b;

	if (!cJSON_IsArray(h) || !h->child)
		return NULL;
	strbuf_init(&b);
	cJSON_ArrayForEach(line, h)
	{
		strbuf_add(&b, line->valuestring);
		strbuf_add(&b, "\r\n");
	}
	return strbuf_take(&b);
}

static int open_socket(struct scenario_run *run, struct scenario_actor *a, const cJSON *st,
                       int timeout, char *err, size_t errsz)
{
	struct client_conn_opts o = {0};
	char note[300], *headers = extra_headers(st);
	int rc;

	scenario_actor_reset_conn(a);
	o.url = run->env->url;
	o.tls_fingerprint = run->env->tls_fingerprint;
	o.connect_timeout_ms = timeout;
	remote_opts(run, a, &o);
	if (json_get_string(st, "xff"))
		o.xff = json_get_string(st, "xff");
	o.host_header = json_get_string(st, "host");
	o.origin = json_get_string(st, "origin");
	o.extra_headers = headers;
	o.refused_status = &a->refused_status;
	a->t_connect = clock_mono_ms();
	snprintf(note, sizeof(note), "%s %s%s%s%s",
	         strcmp(json_get_string(st, "do"), "open") ? "connect" : "open", o.url,
	         o.xff ? " X-Forwarded-For " : "", o.xff ? o.xff : "", o.netns ? " (netns)" : "");
	scenario_log(run, a->def->name, SCENARIO_DIR_NOTE, note, a->t_connect);
	rc = client_connect(run->ctx, &o, &a->conn, err, errsz);
	free(headers);
	if (rc == 0)
		return 0;
	a->conn = NULL;
	a->closed = true;
	a->close_code = SCENARIO_WS_CLOSE_ABNORMAL;
	snprintf(a->close_reason, sizeof(a->close_reason), "%.127s", err);
	a->close_at = clock_mono_ms();
	scenario_log(run, a->def->name, SCENARIO_DIR_CLOSE, err, a->close_at);
	return -1;
}

int scenario_step_open(struct scenario_run *run, struct scenario_actor *a, const cJSON *st)
{
	char err[256];

	if (open_socket(run, a, st, scenario_step_timeout(run, st), err, sizeof(err)) < 0)
		return scenario_fail_with(run, strdup("a WebSocket connection"),
		                          scenario_fmt("connection failed: %s", err));
	a->opened_only = true;
	return 0;
}

/* ---------------------------------------------------------------- the connect request */

static const char *const no_scopes[] = {NULL};

static void spec_scopes(const struct scenario_actor_def *d, struct connect_spec *spec,
                        const char **scopes)
{
	const cJSON *x;
	size_t n = 0;

	if (d->scopes) {
		cJSON_ArrayForEach(x, d->scopes)
		{
			scopes[n++] = x->valuestring;
		}
		spec->scopes = scopes;
		spec->n_scopes = n;
		spec->scopes_omit = false;
	} else if (d->node) {
		spec->scopes = no_scopes;
		spec->n_scopes = 0;
	} else {
		spec->scopes_omit = true;
	}
}

static cJSON *build_params(struct scenario_run *run, struct scenario_actor *a, const cJSON *st,
                           const char *nonce)
{
	const struct scenario_actor_def *d = a->def;
	struct connect_spec spec;
	const char *scopes[33];
	const char *sigs = json_get_string(st, "sig"), *nonces = json_get_string(st, "nonce");
	const cJSON *v;
	cJSON *p;

	if (d->node)
		connect_spec_android(&spec);
	else
		connect_spec_operator(&spec);
	if (d->display_name)
		spec.display_name = d->display_name;
	spec_scopes(d, &spec, scopes);
	spec.identity = a->has_id ? &a->id : NULL;
	spec.sig = d->sig;
	if (sigs)
		scenario_parse_sig(sigs, &spec.sig);
	if (nonces && !strcmp(nonces, "wrong"))
		spec.nonce = CONNECT_NONCE_WRONG;
	else if (nonces && !strcmp(nonces, "none"))
		spec.nonce = CONNECT_NONCE_NONE;
	v = cJSON_GetObjectItemCaseSensitive(st, "signedAtOffsetMs");
	if (cJSON_IsNumber(v))
		spec.signed_at_offset_ms = (int64_t)v->valuedouble;
	/* token: step > actor > environment; null anywhere means none; an actor with a bootstrap
	 * token sends no shared token unless one is given explicitly */
	spec.bootstrap_token = d->bootstrap_token;
	v = cJSON_GetObjectItemCaseSensitive(st, "token");
	if (v)
		spec.token = cJSON_IsString(v) ? v->valuestring : NULL;
	else if (d->token_null || (d->bootstrap_token && !d->token))
		spec.token = NULL;
	else
		spec.token = d->token ? d->token : run->env->token;
	p = connect_params_build(&spec, nonce, clock_wall_ms());
	if (p && d->override && matcher_merge(p, d->override) < 0)
		goto fail;
	v = cJSON_GetObjectItemCaseSensitive(st, "override");
	if (p && v && matcher_merge(p, v) < 0)
		goto fail;
	return p;
fail:
	cJSON_Delete(p);
	return NULL;
}

static int pick_challenge(struct scenario_run *run, struct scenario_actor *a,
                          struct scenario_inframe *f, void *arg)
{
	(void)run;
	(void)a;
	(void)arg;
	return scenario_is_event(f, "connect.challenge");
}

/* Waits for connect.challenge, then sends the connect request (rawParams: exactly those). */
static int send_connect(struct scenario_run *run, struct scenario_actor *a, const cJSON *st,
                        int timeout)
{
	const cJSON *raw = cJSON_GetObjectItemCaseSensitive(st, "rawParams");
	struct scenario_inframe *f;
	const char *n;
	cJSON *params, *req;
	char nonce[128];
	int rc;

	f = scenario_wait_frame(run, a, timeout, pick_challenge, NULL, "connect.challenge event");
	if (!f)
		return -1;
	n = json_get_string(cJSON_GetObjectItemCaseSensitive(f->json, "payload"), "nonce");
	snprintf(nonce, sizeof(nonce), "%s", n ? n : "");
	scenario_drop_frame(a, f);
	params = raw ? cJSON_Duplicate(raw, true) : build_params(run, a, st, nonce);
	snprintf(a->connect_id, sizeof(a->connect_id), "c%u", ++a->next_req);
	req = cJSON_CreateObject();
	if (!params || !req) {
		cJSON_Delete(params);
		cJSON_Delete(req);
		return scenario_fail_with(run, strdup("connect params"), strdup("out of memory"));
	}
	cJSON_AddStringToObject(req, "type", "req");
	cJSON_AddStringToObject(req, "id", a->connect_id);
	cJSON_AddStringToObject(req, "method", "connect");
	cJSON_AddItemToObject(req, "params", params);
	rc = scenario_send_json(run, a, req);
	cJSON_Delete(req);
	if (rc < 0)
		return scenario_fail_with(run, strdup("send connect"),
		                          strdup("connection not open"));
	return 0;
}

/* ---------------------------------------------------------------- its outcome */

static int pick_connect_outcome(struct scenario_run *run, struct scenario_actor *a,
                                struct scenario_inframe *f, void *arg)
{
	(void)run;
	(void)arg;
	return scenario_is_res(f, a->connect_id) || scenario_is_event(f, "connect.pending");
}

/* The outcome that came instead of the wanted one, with the close that may follow it and the
 * matcher's reason (why, "" when no matcher ran; its JSON path is relative to what, "payload" or
 * "error"). The reason leads: a hello-ok is long, and a report that cuts the line must still
 * show where it differs. Takes exp; returns -1. */
static int wrong_outcome(struct scenario_run *run, struct scenario_actor *a,
                         struct scenario_inframe *f, char *exp, const char *what, const char *why)
{
	char *act = strdup(f->text);

	if (scenario_is_res(f, a->connect_id))
		a->connect_answered = true;
	scenario_settle_close(run, a, SCENARIO_CLOSE_AFTER_ERROR_MS);
	act = scenario_with_close(a, act);
	if (why[0]) {
		char *t = scenario_fmt("%s %s, in %s", what, why, act ? act : "?");

		free(act);
		act = t;
	}
	return scenario_fail_with(run, exp, act);
}

static bool is_error_res(const struct scenario_actor *a, const struct scenario_inframe *f)
{
	return scenario_is_res(f, a->connect_id) &&
	       !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f->json, "ok"));
}

/* Takes the matched outcome f: captures, then out of the inbox. */
static int take_outcome(struct scenario_run *run, struct scenario_actor *a, const cJSON *st,
                        struct scenario_inframe *f)
{
	if (scenario_captures(run, st, f->json) < 0)
		return -1;
	scenario_drop_frame(a, f);
	return 0;
}

/* "expect": "hello-ok" | "pending" | "error" */
static int expect_named(struct scenario_run *run, struct scenario_actor *a, const cJSON *st,
                        const char *want, int timeout)
{
	char *exp = strdup(!strcmp(want, "hello-ok")  ? "res ok hello-ok to connect"
	                   : !strcmp(want, "pending") ? "event connect.pending"
	                                              : "error res to connect");
	struct scenario_inframe *f =
	        scenario_wait_frame(run, a, timeout, pick_connect_outcome, NULL, exp);

	if (!f) {
		free(exp);
		return -1;
	}
	if (!strcmp(want, "pending") && scenario_is_event(f, "connect.pending")) {
		free(exp);
		return take_outcome(run, a, st, f);
	}
	if (!strcmp(want, "hello-ok") && scenario_is_res(f, a->connect_id) && is_hello(f)) {
		free(exp);
		note_hello(run, a, f->json);
		return take_outcome(run, a, st, f);
	}
	if (!strcmp(want, "error") && is_error_res(a, f)) {
		free(exp);
		a->connect_answered = true;
		return take_outcome(run, a, st, f);
	}
	return wrong_outcome(run, a, f, exp, "", "");
}

static const cJSON *payload_of(const struct scenario_inframe *f)
{
	return cJSON_GetObjectItemCaseSensitive(f->json, "payload");
}

/* "expect": {"hello-ok": m} | {"pending": m} | {"error": m, "close": {...}} */
static int expect_matched(struct scenario_run *run, struct scenario_actor *a, const cJSON *st,
                          const cJSON *expect, int timeout)
{
	const cJSON *em = cJSON_GetObjectItemCaseSensitive(expect, "error");
	const cJSON *cm = cJSON_GetObjectItemCaseSensitive(expect, "close");
	const cJSON *hm = cJSON_GetObjectItemCaseSensitive(expect, "hello-ok");
	const cJSON *pm = cJSON_GetObjectItemCaseSensitive(expect, "pending");
	struct scenario_inframe *f;
	char why[300] = "", *m, *exp;

	if (hm || pm || em) {
		m = cJSON_PrintUnformatted(hm ? hm : pm ? pm : em);
		exp = scenario_fmt("%s matching %s",
		                   hm   ? "res ok hello-ok"
		                   : pm ? "event connect.pending"
		                        : "error res",
		                   m ? m : "?");
		free(m);
		f = scenario_wait_frame(run, a, timeout, pick_connect_outcome, NULL, exp);
		if (!f) {
			free(exp);
			return -1;
		}
		if (hm && scenario_is_res(f, a->connect_id) && is_hello(f) &&
		    matcher_match(hm, payload_of(f), why, sizeof(why))) {
			note_hello(run, a, f->json);
		} else if (pm && scenario_is_event(f, "connect.pending") &&
		           matcher_match(pm, payload_of(f), why, sizeof(why))) {
			/* matched */
		} else if (em && is_error_res(a, f) &&
		           matcher_match(em, cJSON_GetObjectItemCaseSensitive(f->json, "error"),
		                         why, sizeof(why))) {
			a->connect_answered = true;
		} else {
			return wrong_outcome(run, a, f, exp, em && !hm && !pm ? "error" : "payload",
			                     why);
		}
		free(exp);
		if (take_outcome(run, a, st, f) < 0)
			return -1;
	}
	return cm ? scenario_expect_close(run, a, cm, timeout) : 0;
}

/* "expect": {"http": N}: the upgrade must be refused with that status. */
static int want_status(const cJSON *expect)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(expect, "http");

	return cJSON_IsNumber(v) ? v->valueint : 0;
}

/* A refused upgrade is an outcome some cases expect: a close without a frame ("close"), or a
 * refusal with a given HTTP status. */
static int refused(struct scenario_run *run, struct scenario_actor *a, const cJSON *expect,
                   const char *err)
{
	int want = want_status(expect);

	if (cJSON_IsString(expect) && !strcmp(expect->valuestring, "close"))
		return 0;
	if (want && a->refused_status == want)
		return 0;
	if (want)
		return scenario_fail_with(run,
		                          scenario_fmt("the upgrade refused with HTTP %d", want),
		                          scenario_fmt("connection failed: %s", err));
	return scenario_fail_with(run, strdup("a WebSocket connection"),
	                          scenario_fmt("connection failed: %s", err));
}

int scenario_step_connect(struct scenario_run *run, struct scenario_actor *a, const cJSON *st)
{
	const cJSON *expect = cJSON_GetObjectItemCaseSensitive(st, "expect");
	const char *want = cJSON_IsString(expect) ? expect->valuestring : NULL;
	int timeout = scenario_step_timeout(run, st);
	char err[256];

	scenario_actor_reset_conn(a);
	ensure_identity(run, a);
	if (a->def->ident != SCENARIO_IDENT_NONE && !a->has_id)
		return scenario_fail_with(run, strdup("a device identity"),
		                          strdup("key generation failed"));
	if (open_socket(run, a, st, timeout, err, sizeof(err)) < 0)
		return refused(run, a, expect, err);
	if (want_status(expect))
		return scenario_fail_with(
		        run, scenario_fmt("the upgrade refused with HTTP %d", want_status(expect)),
		        strdup("the WebSocket upgrade succeeded (HTTP 101)"));
	if (send_connect(run, a, st, timeout) < 0)
		return -1;
	if (!expect)
		return 0;
	if (want && !strcmp(want, "close"))
		return scenario_expect_close(run, a, NULL, timeout);
	if (want)
		return expect_named(run, a, st, want, timeout);
	return expect_matched(run, a, st, expect, timeout);
}

/* ---------------------------------------------------------------- expect-hello */

static int pick_hello(struct scenario_run *run, struct scenario_actor *a,
                      struct scenario_inframe *f, void *arg)
{
	(void)run;
	(void)arg;
	return scenario_is_res(f, a->connect_id);
}

int scenario_step_expect_hello(struct scenario_run *run, struct scenario_actor *a, const cJSON *st)
{
	const cJSON *pm = cJSON_GetObjectItemCaseSensitive(st, "payload");
	struct scenario_inframe *f;
	char why[300] = "";

	if (!a->connect_id[0])
		return scenario_fail_with(run, strdup("hello-ok"),
		                          strdup("this actor sent no connect"));
	f = scenario_wait_frame(run, a, scenario_step_timeout(run, st), pick_hello, NULL,
	                        "res ok hello-ok to the held connect");
	if (!f)
		return -1;
	if (!is_hello(f) || (pm && !matcher_match(pm, payload_of(f), why, sizeof(why)))) {
		a->connect_answered = true;
		return wrong_outcome(run, a, f, strdup("res ok hello-ok to the held connect"),
		                     "payload", why);
	}
	note_hello(run, a, f->json);
	return take_outcome(run, a, st, f);
}
