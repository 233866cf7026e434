/* runner.c: one case against a gateway: the runner's needs and numbers, the scenario
 * interpreter, and the verdict with its diagnosis and transcript. */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diagnose.h"
#include "redact.h"
#include "json.h"
#include "scenario.h"
#include "strbuf.h"

#define FRAME_SHOWN_BYTES 2000

/* Needs the runner checks itself (conf_unmet_need); the interpreter knows remote, restart and
 * operator. */
static const char *const runner_needs[] = {"short-ttl",
                                           "ticks",
                                           "netns",
                                           "max-pending-2",
                                           "pending-cap-over-32",
                                           "trusted-loopback-proxy",
                                           "long-ttl",
                                           NULL};

/* The spec's defaults (§8.8), for a gateway whose options the runner was not told. */
#define SPEC_PENDING_TTL_MS 300000
#define SPEC_PENDING_PER_IP 32

enum { N_NUMBERS = 5 };

/* The numbers cases name as "${conf.NAME}". */
static void conf_numbers(const struct conf_options *o, struct scenario_number *out)
{
	double ttl = o->pending_ttl_ms > 0 ? (double)o->pending_ttl_ms : SPEC_PENDING_TTL_MS;
	double scale = o->timeout_scale > 0 ? o->timeout_scale : 1;
	double tick = o->tick_interval_ms > 0 ? (double)o->tick_interval_ms : 30000;

	out[0] = (struct scenario_number){"ttl_ms", ttl};
	out[1] = (struct scenario_number){"ttl_half_ms", ttl / 2};
	/* the expiry sweep may run up to one period late: a TTL and a half, plus slack */
	out[2] = (struct scenario_number){"ttl_wait_ms", (ttl * 1.5 + 3000) / scale};
	out[3] = (struct scenario_number){"tick_wait_ms", (tick * 1.2 + 2000) / scale};
	out[4] = (struct scenario_number){"max_pending", o->max_pending};
}

/* An actor that must connect as a local client: not remote, or remote made local by
 * --remote-via none. */
static bool has_local_actor(const cJSON *case_json, const struct conf_options *o)
{
	const cJSON *a;

	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(case_json, "actors"))
	{
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "remote")) ||
		    o->remote_via == CONF_REMOTE_NONE)
			return true;
	}
	return false;
}

/* A step's number, or "${conf.NAME}" of the runner's numbers; dflt when absent. */
static double step_number(const cJSON *st, const char *k, double dflt,
                          const struct scenario_number *numbers)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, k);

	if (cJSON_IsNumber(v))
		return v->valuedouble;
	if (cJSON_IsString(v) && !strncmp(v->valuestring, "${conf.", 7)) {
		for (int i = 0; i < N_NUMBERS; i++) {
			size_t n = strlen(numbers[i].name);

			if (!strncmp(v->valuestring + 7, numbers[i].name, n) &&
			    !strcmp(v->valuestring + 7 + n, "}"))
				return numbers[i].value;
		}
	}
	return v ? 0 : dflt;
}

double conf_case_weight_ms(const struct conf_case *c, const struct conf_options *o)
{
	struct scenario_number numbers[N_NUMBERS];
	const cJSON *st;
	double ms = 0;

	conf_numbers(o, numbers);
	cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(c->json, "steps"))
	{
		const char *op = json_get_string(st, "do");

		if (!op)
			continue;
		if (!strcmp(op, "sleep"))
			ms += step_number(st, "ms", 0, numbers);
		else if (!strcmp(op, "expect-open") || !strcmp(op, "expect-no-event"))
			ms += step_number(st, "ms", 1000, numbers);
		/* a wait longer than the default is a wait for one of the gateway's timers (a
		 * TTL, the handshake timeout), which takes seconds */
		else if (step_number(st, "timeout_ms", 0, numbers) > 5000)
			ms += 2000;
	}
	return ms;
}

const char *conf_unmet_need(const cJSON *case_json, const struct conf_options *o)
{
	const cJSON *it, *needs = cJSON_GetObjectItemCaseSensitive(case_json, "needs");

	if (o->not_local && has_local_actor(case_json, o))
		return "needs a local client, and the runner is not local to the gateway: run it on "
		       "the gateway's host or in its network namespace (conformance/README.md, "
		       "\"From another host or container\")";
	cJSON_ArrayForEach(it, needs)
	{
		const char *n = cJSON_IsString(it) ? it->valuestring : "";

		if (!strcmp(n, "restart") && (!o->restart_cmd || !*o->restart_cmd))
			return "needs a gateway restart: pass --restart-cmd";
		if (!strcmp(n, "remote") && o->remote_via == CONF_REMOTE_NONE)
			return "needs remote clients: --remote-via is none";
		if (!strcmp(n, "netns") && o->remote_via != CONF_REMOTE_NETNS)
			return "needs a real non-loopback client: --remote-via netns:URL";
		if (!strcmp(n, "short-ttl") && o->pending_ttl_ms <= 0)
			return "needs the gateway's pending TTL: pass --pending-ttl-ms";
		if (!strcmp(n, "short-ttl") && o->pending_ttl_ms > 60000)
			return "needs a pending TTL of at most 60 s";
		if (!strcmp(n, "ticks") && !o->slow &&
		    !(o->tick_interval_ms > 0 && o->tick_interval_ms <= 10000))
			return "waits for a tick: pass --tick-interval-ms N (N <= 10000) or --slow";
		if (!strcmp(n, "long-ttl") && o->pending_ttl_ms > 0 && o->pending_ttl_ms < 10000)
			return "needs a pending TTL of 10 s or more: its requests must outlive the case";
		if (!strcmp(n, "trusted-loopback-proxy") && o->remote_via != CONF_REMOTE_XFF)
			return "needs a gateway that trusts 127.0.0.1 as a proxy: --remote-via xff";
		if (!strcmp(n, "pending-cap-over-32") && o->max_pending > 0 &&
		    o->max_pending <= SPEC_PENDING_PER_IP)
			return "needs a total pending cap above the per-address cap of 32: the gateway "
			       "was started with --max-pending at or below it";
		if (!strcmp(n, "max-pending-2") && o->max_pending != 2)
			return "needs a gateway started with a total pending cap of 2: pass "
			       "--max-pending 2";
	}
	return NULL;
}

static void add_frame_line(struct conf_result *r, const struct redact *red, uint64_t t_ms,
                           const char *actor, const char *dir, const char *raw)
{
	struct strbuf b;
	/* redacted before it is cut, so that a cut cannot hide a token from the redaction */
	char *text = red ? redact_text(red, raw) : NULL;
	size_t n;

	if (!text && raw && red)
		return;
	if (!text)
		text = raw ? strdup(raw) : NULL;
	n = text ? strlen(text) : 0;

	strbuf_init(&b);
	strbuf_addf(&b, "[+%5llu ms] %-4s %-5s ", (unsigned long long)t_ms, actor ? actor : "",
	            dir);
	if (n > FRAME_SHOWN_BYTES) {
		strbuf_addn(&b, text, FRAME_SHOWN_BYTES);
		strbuf_addf(&b, "... (%zu bytes)", n);
	} else {
		strbuf_add(&b, text);
	}
	if (!b.oom)
		conf_result_add_frame(r, b.p);
	strbuf_finish(&b);
	free(text);
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static const cJSON *step_at(const cJSON *case_json, int idx)
{
	const cJSON *steps = cJSON_GetObjectItemCaseSensitive(case_json, "steps");

	return idx >= 0 ? cJSON_GetArrayItem(steps, idx) : NULL;
}

static bool approved_before(const cJSON *case_json, int idx)
{
	for (int i = 0; i < idx; i++) {
		const char *m = json_get_string(step_at(case_json, i), "method");

		if (m && strstr(m, ".pair.approve"))
			return true;
	}
	return false;
}

/* requestId of the last request the failing actor sent (from the interpreter's log). */
static char *last_sent_request_id(const struct scenario_result *sr)
{
	for (size_t i = sr->n_log; i-- > 0;) {
		const struct scenario_log_entry *e = &sr->log[i];
		cJSON *j;
		const char *rid;
		char *out = NULL;

		if (e->dir != SCENARIO_DIR_OUT || strcmp(e->actor, sr->actor) != 0)
			continue;
		j = cJSON_Parse(e->text);
		rid = json_get_string(cJSON_GetObjectItemCaseSensitive(j, "params"), "requestId");
		if (rid)
			out = strdup(rid);
		cJSON_Delete(j);
		return out;
	}
	return NULL;
}

static struct scenario *parse_case(const struct conf_case *c, const struct conf_options *o,
                                   char *err, size_t errsz)
{
	struct scenario_number numbers[N_NUMBERS];
	struct scenario_parse_opts po = {
	        .extra_needs = runner_needs, .numbers = numbers, .n_numbers = N_NUMBERS};
	struct scenario *s;
	char *text = cJSON_PrintUnformatted(c->json);

	if (!text) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	conf_numbers(o, numbers);
	s = scenario_parse_with(text, &po, err, errsz);
	free(text);
	return s;
}

/* The names a step's strings and keys use as ${NAME} (not ${conf.NAME}, which the parse
 * replaced); the first one not in defined goes to err. */
static bool uses_defined(const cJSON *j, const cJSON *defined, char *name, size_t namesz)
{
	const char *strs[2] = {j->string, cJSON_IsString(j) ? j->valuestring : NULL};

	for (int k = 0; k < 2; k++) {
		for (const char *p = strs[k]; p && (p = strstr(p, "${"));) {
			const char *close = strchr(p + 2, '}');
			size_t n;

			if (!close)
				break;
			n = (size_t)(close - p - 2);
			snprintf(name, namesz, "%.*s", (int)n, p + 2);
			if (strncmp(name, "conf.", 5) != 0 &&
			    !cJSON_GetObjectItemCaseSensitive(defined, name))
				return false;
			p = close + 1;
		}
	}
	for (const cJSON *c = j->child; c; c = c->next) {
		if (!uses_defined(c, defined, name, namesz))
			return false;
	}
	return true;
}

static void define(cJSON *defined, const char *actor, const char *field)
{
	char name[160];

	snprintf(name, sizeof name, "%s%s%s", actor, field ? "." : "", field ? field : "");
	if (!cJSON_GetObjectItemCaseSensitive(defined, name))
		cJSON_AddTrueToObject(defined, name);
}

/* What a connect of actor an defines: its key's variables (and those of the actor it shares
 * the key with) and, after a hello-ok, its device token. */
static void define_connect(cJSON *defined, const cJSON *actors, const char *an, int depth)
{
	static const char *const fields[] = {"deviceId", "publicKey", "fingerprint", "deviceToken"};
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(actors, an);
	const char *ident = json_get_string(a, "identity"), *role = json_get_string(a, "role");

	if (!a || depth > 8)
		return;
	if (ident ? !strcmp(ident, "none") : !(role && !strcmp(role, "node")))
		return;
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		define(defined, an, fields[i]);
	if (ident && !strncmp(ident, "same-as:", 8))
		define_connect(defined, actors, ident + 8, depth + 1);
}

static int check_vars(const cJSON *json, char *err, size_t errsz)
{
	const cJSON *steps = cJSON_GetObjectItemCaseSensitive(json, "steps"),
	            *actors = cJSON_GetObjectItemCaseSensitive(json, "actors"), *st, *cap;
	cJSON *defined = cJSON_CreateObject();
	char name[128];
	int idx = 0, rc = 0;

	if (!defined) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	cJSON_ArrayForEach(st, steps)
	{
		const char *op = json_get_string(st, "do"), *an = json_get_string(st, "actor");

		if (!uses_defined(st, defined, name, sizeof name)) {
			snprintf(err, errsz, "step %d: unknown variable ${%s}", idx, name);
			rc = -1;
			break;
		}
		if (op && an && !strcmp(op, "connect"))
			define_connect(defined, actors, an, 0);
		cJSON_ArrayForEach(cap, cJSON_GetObjectItemCaseSensitive(st, "capture"))
		{
			define(defined, cap->string, NULL);
		}
		idx++;
	}
	cJSON_Delete(defined);
	return rc;
}

int conf_case_check(const struct conf_case *c, const struct conf_options *o, char *err,
                    size_t errsz)
{
	struct scenario *s = parse_case(c, o, err, errsz);

	if (!s)
		return -1;
	scenario_destroy(s);
	return check_vars(c->json, err, errsz);
}

/* A broken case, or one the interpreter could not play: no verdict on the gateway. */
static void set_error(struct conf_result *r, const char *what, const char *why)
{
	struct strbuf b;

	strbuf_init(&b);
	strbuf_addf(&b, "%s%s%s", what, why ? ": " : "", why ? why : "");
	r->verdict = CONF_ERROR;
	free(r->message);
	r->message = strbuf_take(&b);
}

static struct scenario *load_case(const struct conf_case *c, const struct conf_options *o,
                                  struct conf_result *r)
{
	char err[512];
	struct scenario *s;

	s = parse_case(c, o, err, sizeof err);
	if (!s)
		set_error(r, "case rejected by the scenario engine", err);
	return s;
}

static void env_of(const struct conf_options *o, struct scenario_env *env)
{
	memset(env, 0, sizeof *env);
	env->url = o->url;
	env->token = o->token;
	env->tls_fingerprint = o->tls_fingerprint;
	env->remote_via = o->remote_via == CONF_REMOTE_XFF     ? SCENARIO_REMOTE_XFF
	                  : o->remote_via == CONF_REMOTE_NETNS ? SCENARIO_REMOTE_NETNS
	                                                       : SCENARIO_REMOTE_NONE;
	env->remote_url = o->remote_url;
	env->netns = o->netns;
	env->xff_counter = o->xff_counter;
	env->timeout_scale = o->timeout_scale;
	env->restart_cmd = o->restart_cmd;
}

/* A failed step: the verdict by the case's level, the diagnosis (or the interpreter's line),
 * and what was expected and seen. */
static void judge_failure(const struct conf_case *c, const struct scenario_result *sr,
                          struct conf_result *r)
{
	char *rid = last_sent_request_id(sr);
	struct conf_failure f = {
	        .step = step_at(c->json, sr->failed_step),
	        .expected = sr->expected,
	        .actual = sr->actual,
	        .close_code = sr->close_code,
	        .close_reason = sr->close_reason,
	        .close_ms = sr->close_ms,
	        .ms_since_connect = sr->ms_since_connect,
	        .approved_before = approved_before(c->json, sr->failed_step),
	        .sent_request_id = rid,
	};

	if (!strcmp(c->level, "SHOULD"))
		r->verdict = CONF_NON_STRICT;
	else if (!strcmp(c->level, "MAY"))
		r->verdict = CONF_INFO;
	else
		r->verdict = CONF_FAIL;
	r->message = conf_diagnose(c->diagnose, &f);
	if (!r->message)
		r->message = xstrdup(sr->message);
	r->expected = xstrdup(sr->expected);
	r->actual = xstrdup(sr->actual);
	free(rid);
}

static void judge(const struct conf_case *c, const struct scenario_result *sr,
                  struct conf_result *r)
{
	r->duration_ms = sr->duration_ms;
	r->failed_step = sr->failed_step;
	r->close_code = sr->close_code;
	r->close_reason = sr->close_code ? xstrdup(sr->close_reason) : NULL;
	r->close_ms = sr->close_ms;
	switch (sr->verdict) {
	case SCENARIO_PASS:
		r->verdict = CONF_PASS;
		break;
	case SCENARIO_SKIP:
		r->verdict = CONF_SKIP;
		r->message = xstrdup(sr->message);
		break;
	case SCENARIO_ERROR:
		set_error(r, "the scenario engine could not play the case", sr->message);
		break;
	case SCENARIO_FAIL:
		judge_failure(c, sr, r);
		break;
	}
}

static void add_transcript(const struct scenario_result *sr, const struct redact *red,
                           struct conf_result *r)
{
	static const char *const dirs[] = {">", "<", "close", "#"};

	for (size_t i = 0; i < sr->n_log; i++)
		add_frame_line(r, red, sr->log[i].t_ms, sr->log[i].actor,
		               dirs[sr->log[i].dir <= SCENARIO_DIR_NOTE ? sr->log[i].dir : 3],
		               sr->log[i].text);
}

static void play(const struct conf_case *c, const struct conf_options *o, struct conf_result *r)
{
	struct scenario_env env;
	struct scenario_result sr;
	struct scenario *s = load_case(c, o, r);

	if (!s)
		return;
	env_of(o, &env);
	if (scenario_run(s, &env, &sr) != 0) {
		set_error(r, "the scenario engine refused to run the case", NULL);
		scenario_destroy(s);
		return;
	}
	judge(c, &sr, r);
	if (o->show_secrets) {
		if (r->verdict != CONF_PASS || o->all_frames)
			add_transcript(&sr, NULL, r);
	} else {
		struct redact red;

		/* the shared token, and every token the run saw, wherever else it shows up */
		redact_init(&red);
		redact_add(&red, o->token);
		for (size_t i = 0; i < sr.n_log; i++)
			redact_learn(&red, sr.log[i].text);
		redact_learn(&red, sr.actual);
		redact_learn(&red, sr.expected);
		if (r->verdict != CONF_PASS || o->all_frames)
			add_transcript(&sr, &red, r);
		redact_in_place(&red, &r->message);
		redact_in_place(&red, &r->expected);
		redact_in_place(&red, &r->actual);
		redact_in_place(&red, &r->close_reason);
		redact_finish(&red);
	}
	scenario_result_finish(&sr);
	scenario_destroy(s);
}

void conf_run_case(const struct conf_case *c, const struct conf_options *o, struct conf_result *r)
{
	const char *unmet;

	memset(r, 0, sizeof *r);
	r->c = c;
	r->failed_step = -1;
	r->close_ms = -1;
	if (c->invalid) {
		set_error(r, "case rejected by the scenario engine", c->invalid);
		return;
	}
	unmet = conf_unmet_need(c->json, o);
	if (unmet) {
		r->verdict = CONF_SKIP;
		r->message = strdup(unmet);
		return;
	}
	play(c, o, r);
	conf_expectations_apply(o->expectations, r);
}
