/* runner.c: one case against a gateway: the runner's needs and macros, the scenario engine (or
 * the raw player), and the verdict with its diagnosis and transcript. */
#include "runner.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "diagnose.h"
#include "scenario.h"

#define MAX_MACRO_BYTES (8u * 1024u * 1024u)
#define FRAME_SHOWN_BYTES 2000

/* Needs the scenario engine knows; every other need is the runner's and is removed before the
 * case reaches the engine. */
static const char *const engine_needs[] = {"remote", "restart", "operator", NULL};

static bool in_list(const char *s, const char *const *list)
{
	for (size_t i = 0; list[i]; i++) {
		if (!strcmp(s, list[i]))
			return true;
	}
	return false;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int conf_value_bytes(const cJSON *v, struct strbuf *out, char *err, size_t errsz)
{
	const cJSON *x;

	if (cJSON_IsString(v)) {
		strbuf_add(out, v->valuestring);
	} else if ((x = cJSON_GetObjectItemCaseSensitive(v, "$repeat"))) {
		const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(v, "count");
		size_t n, len;

		if (!cJSON_IsString(x) || !cJSON_IsNumber(cnt) || cnt->valuedouble < 0) {
			snprintf(err, errsz, "$repeat needs a string and a count");
			return -1;
		}
		n = (size_t)cnt->valuedouble;
		len = strlen(x->valuestring);
		if (len && n > MAX_MACRO_BYTES / len) {
			snprintf(err, errsz, "$repeat larger than %u bytes", MAX_MACRO_BYTES);
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			strbuf_addn(out, x->valuestring, len);
	} else if ((x = cJSON_GetObjectItemCaseSensitive(v, "$concat"))) {
		const cJSON *part;

		if (!cJSON_IsArray(x)) {
			snprintf(err, errsz, "$concat needs an array");
			return -1;
		}
		cJSON_ArrayForEach(part, x)
		{
			if (conf_value_bytes(part, out, err, errsz) < 0)
				return -1;
		}
	} else if ((x = cJSON_GetObjectItemCaseSensitive(v, "$hex"))) {
		const char *h = cJSON_IsString(x) ? x->valuestring : NULL;
		size_t n = h ? strlen(h) : 1;

		if (!h || n % 2) {
			snprintf(err, errsz, "$hex needs an even number of hex digits");
			return -1;
		}
		for (size_t i = 0; i < n; i += 2) {
			int hi = hexval((unsigned char)h[i]), lo = hexval((unsigned char)h[i + 1]);
			char c;

			if (hi < 0 || lo < 0) {
				snprintf(err, errsz, "$hex: not a hex digit");
				return -1;
			}
			c = (char)(hi * 16 + lo);
			strbuf_addn(out, &c, 1);
		}
	} else {
		snprintf(err, errsz, "expected a string, $repeat, $concat or $hex");
		return -1;
	}
	if (out->oom) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	return 0;
}

static bool is_macro(const cJSON *v)
{
	return cJSON_IsObject(v) && (cJSON_GetObjectItemCaseSensitive(v, "$repeat") ||
	                             cJSON_GetObjectItemCaseSensitive(v, "$concat") ||
	                             cJSON_GetObjectItemCaseSensitive(v, "$hex"));
}

static int conf_number(const char *name, const struct conf_options *o, double *out)
{
	double ttl = (double)o->pending_ttl_ms, scale = o->timeout_scale > 0 ? o->timeout_scale : 1;

	if (!strcmp(name, "ttl_ms"))
		*out = ttl;
	else if (!strcmp(name, "ttl_half_ms"))
		*out = ttl / 2;
	else if (!strcmp(name, "ttl_wait_ms"))
		/* the expiry sweep may run up to one period late: a TTL and a half, plus slack */
		*out = (ttl * 1.5 + 3000) / scale;
	else if (!strcmp(name, "tick_wait_ms"))
		*out = ((o->tick_interval_ms > 0 ? (double)o->tick_interval_ms : 30000) * 1.2 +
		        2000) /
		       scale;
	else if (!strcmp(name, "max_pending"))
		*out = o->max_pending;
	else
		return -1;
	return 0;
}

static cJSON *prepare(const cJSON *j, const struct conf_options *o, char *err, size_t errsz)
{
	cJSON *out, *child;
	const cJSON *it;

	if (is_macro(j)) {
		struct strbuf b;

		strbuf_init(&b);
		if (conf_value_bytes(j, &b, err, errsz) < 0) {
			strbuf_finish(&b);
			return NULL;
		}
		if (b.p && strlen(b.p) != b.len) {
			snprintf(err, errsz, "a NUL byte can only be sent by the raw player");
			strbuf_finish(&b);
			return NULL;
		}
		out = cJSON_CreateString(b.p ? b.p : "");
		strbuf_finish(&b);
		return out;
	}
	if (cJSON_IsString(j) && !strncmp(j->valuestring, "${conf.", 7)) {
		char name[64];
		size_t n = strlen(j->valuestring);
		double v;

		if (n < 9 || n - 8 >= sizeof name || j->valuestring[n - 1] != '}') {
			snprintf(err, errsz, "bad runner variable %s", j->valuestring);
			return NULL;
		}
		memcpy(name, j->valuestring + 7, n - 8);
		name[n - 8] = '\0';
		if (conf_number(name, o, &v) < 0) {
			snprintf(err, errsz, "unknown runner variable %s", j->valuestring);
			return NULL;
		}
		return cJSON_CreateNumber(v);
	}
	if (!cJSON_IsObject(j) && !cJSON_IsArray(j))
		return cJSON_Duplicate(j, false);
	out = cJSON_IsObject(j) ? cJSON_CreateObject() : cJSON_CreateArray();
	if (!out)
		goto oom;
	cJSON_ArrayForEach(it, j)
	{
		child = prepare(it, o, err, errsz);
		if (!child) {
			cJSON_Delete(out);
			return NULL;
		}
		if (cJSON_IsObject(j))
			cJSON_AddItemToObject(out, it->string, child);
		else
			cJSON_AddItemToArray(out, child);
	}
	return out;
oom:
	snprintf(err, errsz, "out of memory");
	return NULL;
}

cJSON *conf_prepare(const cJSON *j, const struct conf_options *o, char *err, size_t errsz)
{
	cJSON *out = prepare(j, o, err, errsz), *needs, *it, *next;

	if (!out)
		return NULL;
	needs = cJSON_GetObjectItemCaseSensitive(out, "needs");
	for (it = needs ? needs->child : NULL; it; it = next) {
		next = it->next;
		if (!cJSON_IsString(it) || !in_list(it->valuestring, engine_needs))
			cJSON_Delete(cJSON_DetachItemViaPointer(needs, it));
	}
	if (needs && !needs->child)
		cJSON_DeleteItemFromObjectCaseSensitive(out, "needs");
	return out;
}

const char *conf_unmet_need(const cJSON *case_json, const struct conf_options *o)
{
	const cJSON *it, *needs = cJSON_GetObjectItemCaseSensitive(case_json, "needs");

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
		if (!strcmp(n, "max-pending-2") && o->max_pending != 2)
			return "needs a gateway started with a total pending cap of 2: pass "
			       "--max-pending 2";
	}
	return NULL;
}

bool conf_case_is_raw(const cJSON *case_json)
{
	const cJSON *st;

	cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(case_json, "steps"))
	{
		const cJSON *op = cJSON_GetObjectItemCaseSensitive(st, "do");

		if (cJSON_IsString(op) && !strcmp(op->valuestring, "open"))
			return true;
	}
	return false;
}

void conf_add_frame_line(struct conf_result *r, uint64_t t_ms, const char *actor, const char *dir,
                         const char *text)
{
	struct strbuf b;
	size_t n = text ? strlen(text) : 0;

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
		const cJSON *st = step_at(case_json, i);
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(st, "method");

		if (cJSON_IsString(m) && strstr(m->valuestring, ".pair.approve"))
			return true;
	}
	return false;
}

/* requestId of the last request the failing actor sent (from the engine's log). */
static char *last_sent_request_id(const struct scenario_result *sr)
{
	for (size_t i = sr->n_log; i-- > 0;) {
		const struct scenario_log_entry *e = &sr->log[i];
		cJSON *j;
		const cJSON *rid;
		char *out = NULL;

		if (e->dir != SCENARIO_DIR_OUT || strcmp(e->actor, sr->actor) != 0)
			continue;
		j = cJSON_Parse(e->text);
		rid = cJSON_GetObjectItemCaseSensitive(
		        cJSON_GetObjectItemCaseSensitive(j, "params"), "requestId");
		if (cJSON_IsString(rid))
			out = strdup(rid->valuestring);
		cJSON_Delete(j);
		return out;
	}
	return NULL;
}

static void judge_failure(const struct conf_case *c, struct conf_result *r)
{
	const char *level = c->level;

	if (!strcmp(level, "SHOULD"))
		r->verdict = CONF_NON_STRICT;
	else if (!strcmp(level, "MAY"))
		r->verdict = CONF_INFO;
	else
		r->verdict = CONF_FAIL;
}

static void run_engine(const struct conf_case *c, const cJSON *prepared,
                       const struct conf_options *o, struct conf_result *r)
{
	struct scenario_env env = {0};
	struct scenario_result sr;
	struct scenario *s;
	char err[512], *text;

	text = cJSON_PrintUnformatted(prepared);
	if (!text) {
		r->verdict = CONF_FAIL;
		r->message = strdup("out of memory");
		return;
	}
	s = scenario_parse(text, err, sizeof err);
	free(text);
	if (!s) {
		struct strbuf b;

		strbuf_init(&b);
		strbuf_addf(&b, "case rejected by the scenario engine: %s", err);
		r->verdict = CONF_FAIL;
		r->message = strbuf_take(&b);
		return;
	}
	env.url = o->url;
	env.token = o->token;
	env.remote_via = o->remote_via == CONF_REMOTE_XFF     ? SCENARIO_REMOTE_XFF
	                 : o->remote_via == CONF_REMOTE_NETNS ? SCENARIO_REMOTE_NETNS
	                                                      : SCENARIO_REMOTE_NONE;
	env.remote_url = o->remote_url;
	env.netns = o->netns;
	env.xff_counter = o->xff_counter;
	env.timeout_scale = o->timeout_scale;
	env.restart_cmd = o->restart_cmd;
	if (scenario_run(s, &env, &sr) != 0) {
		r->verdict = CONF_FAIL;
		r->message = strdup("the scenario engine refused to run the case");
		scenario_destroy(s);
		return;
	}
	r->duration_ms = sr.duration_ms;
	r->failed_step = sr.failed_step;
	r->close_code = sr.close_code;
	switch (sr.verdict) {
	case SCENARIO_PASS:
		r->verdict = CONF_PASS;
		break;
	case SCENARIO_SKIP:
		r->verdict = CONF_SKIP;
		r->message = xstrdup(sr.message);
		break;
	case SCENARIO_ERROR:
		r->verdict = CONF_FAIL;
		r->message = xstrdup(sr.message ? sr.message : "scenario error");
		break;
	case SCENARIO_FAIL: {
		struct conf_failure f = {
		        .step = step_at(c->json, sr.failed_step),
		        .expected = sr.expected,
		        .actual = sr.actual,
		        .close_code = sr.close_code,
		        .close_reason = sr.close_reason,
		        .ms_since_connect = sr.ms_since_connect,
		        .approved_before = approved_before(c->json, sr.failed_step),
		};
		char *rid = last_sent_request_id(&sr);

		f.sent_request_id = rid;
		judge_failure(c, r);
		r->message = conf_diagnose(c->diagnose, &f);
		if (!r->message)
			r->message = xstrdup(sr.message);
		r->expected = xstrdup(sr.expected);
		r->actual = xstrdup(sr.actual);
		free(rid);
		break;
	}
	}
	if (r->verdict != CONF_PASS || o->all_frames) {
		static const char *const dirs[] = {">", "<", "close", "#"};

		for (size_t i = 0; i < sr.n_log; i++)
			conf_add_frame_line(
			        r, sr.log[i].t_ms, sr.log[i].actor,
			        dirs[sr.log[i].dir <= SCENARIO_DIR_NOTE ? sr.log[i].dir : 3],
			        sr.log[i].text);
	}
	scenario_result_finish(&sr);
	scenario_destroy(s);
}

static void run_raw(const struct conf_case *c, const cJSON *prepared, const struct conf_options *o,
                    struct conf_result *r)
{
	struct raw_outcome out;
	uint64_t t0 = client_now_ms();

	raw_play(prepared, o, &out, r);
	r->duration_ms = client_now_ms() - t0;
	if (!out.failed) {
		r->verdict = CONF_PASS;
	} else {
		struct conf_failure f = {
		        .step = step_at(c->json, out.failed_step),
		        .expected = out.expected,
		        .actual = out.actual,
		        .close_code = out.close_code,
		        .close_reason = out.close_reason,
		        .ms_since_connect = out.ms_since_connect,
		};

		judge_failure(c, r);
		r->failed_step = out.failed_step;
		r->close_code = out.close_code;
		r->message = conf_diagnose(c->diagnose, &f);
		if (!r->message)
			r->message = xstrdup(out.message);
		r->expected = xstrdup(out.expected);
		r->actual = xstrdup(out.actual);
	}
	if (r->verdict == CONF_PASS && !o->all_frames) {
		for (size_t i = 0; i < r->n_frames; i++)
			free(r->frames[i]);
		free(r->frames);
		r->frames = NULL;
		r->n_frames = 0;
	}
	raw_outcome_finish(&out);
}

void conf_run_case(const struct conf_case *c, const struct conf_options *o, struct conf_result *r)
{
	const char *unmet, *xfail;
	cJSON *prepared;
	char err[256];

	memset(r, 0, sizeof *r);
	r->c = c;
	r->failed_step = -1;
	unmet = conf_unmet_need(c->json, o);
	if (unmet) {
		r->verdict = CONF_SKIP;
		r->message = strdup(unmet);
		return;
	}
	if (conf_case_is_raw(c->json)) {
		/* the raw player reads the macros itself: its texts may hold any bytes */
		run_raw(c, c->json, o, r);
	} else {
		prepared = conf_prepare(c->json, o, err, sizeof err);
		if (!prepared) {
			r->verdict = CONF_FAIL;
			r->message = strdup(err);
			return;
		}
		run_engine(c, prepared, o, r);
		cJSON_Delete(prepared);
	}
	xfail = conf_expectations_find(o->expectations, c->id);
	if (xfail &&
	    (r->verdict == CONF_FAIL || r->verdict == CONF_NON_STRICT || r->verdict == CONF_INFO)) {
		r->verdict = CONF_XFAIL;
		r->xfail_reason = strdup(xfail);
	} else if (xfail && r->verdict == CONF_PASS) {
		/* a known failure that now passes: keep PASS, say so, so the list gets pruned */
		char *m = malloc(strlen(xfail) + 64);

		if (m) {
			snprintf(m, strlen(xfail) + 64, "listed as a known failure but passed (%s)",
			         xfail);
			free(r->message);
			r->message = m;
		}
	}
}
