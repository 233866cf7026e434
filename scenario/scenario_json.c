/* scenario_json.c: a run's result as JSON (clawpair-fake-node --script --json), and the names
 * of verdicts and log directions. */
#include <stdlib.h>

#include "scenario_internal.h"

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

static void add_failure(cJSON *o, const struct scenario_result *r)
{
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
		if (r->close_ms >= 0)
			cJSON_AddNumberToObject(o, "closeMs", (double)r->close_ms);
	}
	if (r->ms_since_connect >= 0)
		cJSON_AddNumberToObject(o, "msSinceConnect", (double)r->ms_since_connect);
}

static void add_steps_and_log(cJSON *o, const struct scenario_result *r)
{
	cJSON *steps = cJSON_AddArrayToObject(o, "steps"), *log;

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
}

char *scenario_result_json(const struct scenario *s, const struct scenario_result *r)
{
	cJSON *o = cJSON_CreateObject();
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
	add_failure(o, r);
	add_steps_and_log(o, r);
	out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return out;
}
