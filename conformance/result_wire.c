/* result_wire.c: a case's result as JSON, so that a case played in a child process (its own
 * address space, killable on a timeout) hands its result to the runner. Bytes are kept as they
 * are: a frame that is not valid UTF-8 stays so until a report cleans it. */
#include "conformance.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"

static void add_str(cJSON *o, const char *k, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, k, v);
}

char *conf_result_to_wire(const struct conf_result *r, const char *gone)
{
	cJSON *o = cJSON_CreateObject(), *frames;
	char *text;

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "verdict", r->verdict);
	cJSON_AddNumberToObject(o, "duration_ms", (double)r->duration_ms);
	cJSON_AddNumberToObject(o, "close_code", r->close_code);
	cJSON_AddNumberToObject(o, "close_ms", (double)r->close_ms);
	cJSON_AddNumberToObject(o, "failed_step", r->failed_step);
	cJSON_AddBoolToObject(o, "stale", r->stale);
	add_str(o, "close_reason", r->close_reason);
	add_str(o, "message", r->message);
	add_str(o, "expected", r->expected);
	add_str(o, "actual", r->actual);
	add_str(o, "xfail_reason", r->xfail_reason);
	add_str(o, "gone", gone);
	frames = cJSON_AddArrayToObject(o, "frames");
	for (size_t i = 0; frames && i < r->n_frames; i++)
		cJSON_AddItemToArray(frames, cJSON_CreateString(r->frames[i]));
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

static char *dup_of(const cJSON *o, const char *k)
{
	const char *v = json_get_string(o, k);

	return v ? strdup(v) : NULL;
}

static double num_of(const cJSON *o, const char *k, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

int conf_result_from_wire(const char *text, size_t len, const struct conf_case *c,
                          struct conf_result *r, char **gone)
{
	cJSON *o = cJSON_ParseWithLength(text, len), *f;
	double v;

	*gone = NULL;
	memset(r, 0, sizeof *r);
	r->c = c;
	r->failed_step = -1;
	r->close_ms = -1;
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return -1;
	}
	v = num_of(o, "verdict", -1);
	r->verdict = v >= 0 && v < CONF_VERDICT__COUNT ? (enum conf_verdict)v : CONF_ERROR;
	r->duration_ms = (uint64_t)num_of(o, "duration_ms", 0);
	r->close_code = (int)num_of(o, "close_code", 0);
	r->close_ms = (long)num_of(o, "close_ms", -1);
	r->failed_step = (int)num_of(o, "failed_step", -1);
	r->stale = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "stale"));
	r->close_reason = dup_of(o, "close_reason");
	r->message = dup_of(o, "message");
	r->expected = dup_of(o, "expected");
	r->actual = dup_of(o, "actual");
	r->xfail_reason = dup_of(o, "xfail_reason");
	*gone = dup_of(o, "gone");
	cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(o, "frames"))
	{
		if (cJSON_IsString(f))
			conf_result_add_frame(r, f->valuestring);
	}
	cJSON_Delete(o);
	return 0;
}
