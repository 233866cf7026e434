/* report_json.c: the machine-readable report (one object per case, verdict counts on top). */
#include "conformance.h"
#include "strbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the version of this report's shape (conformance/schema/report.schema.json): raised when a
 * field changes meaning or goes away */
#define REPORT_FORMAT_VERSION 1

/* Frames may hold any bytes; the report must stay valid UTF-8. */
static cJSON *clean_str(const char *s)
{
	struct strbuf b;
	cJSON *j;

	strbuf_init(&b);
	strbuf_add_utf8_clean(&b, s ? s : "");
	j = cJSON_CreateString(b.p ? b.p : "");
	strbuf_finish(&b);
	return j;
}

static cJSON *str_or_null(const char *s)
{
	return s ? clean_str(s) : cJSON_CreateNull();
}

static cJSON *case_json(const struct conf_result *r)
{
	cJSON *o = cJSON_CreateObject(), *frames;
	size_t i;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "id", r->c->id);
	cJSON_AddStringToObject(o, "title", r->c->title);
	cJSON_AddStringToObject(o, "group", r->c->group);
	cJSON_AddStringToObject(o, "requirement", r->c->requirement);
	cJSON_AddItemToObject(o, "section", str_or_null(r->c->section));
	cJSON_AddStringToObject(o, "level", r->c->level);
	cJSON_AddStringToObject(o, "sentence", r->c->sentence);
	cJSON_AddStringToObject(o, "verdict", conf_verdict_name(r->verdict));
	cJSON_AddNumberToObject(o, "duration_ms", (double)r->duration_ms);
	if (r->started_ms)
		cJSON_AddNumberToObject(o, "started_ms", (double)r->started_ms);
	else
		cJSON_AddNullToObject(o, "started_ms");
	if (r->close_code) {
		cJSON_AddNumberToObject(o, "close_code", r->close_code);
		cJSON_AddItemToObject(o, "close_reason", str_or_null(r->close_reason));
		if (r->close_ms >= 0)
			cJSON_AddNumberToObject(o, "close_ms", (double)r->close_ms);
	} else {
		cJSON_AddNullToObject(o, "close_code");
	}
	cJSON_AddItemToObject(o, "message", str_or_null(r->message));
	cJSON_AddItemToObject(o, "expected", str_or_null(r->expected));
	cJSON_AddItemToObject(o, "actual", str_or_null(r->actual));
	if (r->failed_step >= 0)
		cJSON_AddNumberToObject(o, "failed_step", r->failed_step);
	if (r->xfail_reason)
		cJSON_AddStringToObject(o, "expected_fail_reason", r->xfail_reason);
	if (r->stale)
		cJSON_AddTrueToObject(o, "expectation_stale");
	frames = cJSON_AddArrayToObject(o, "frames");
	for (i = 0; frames && i < r->n_frames; i++)
		cJSON_AddItemToArray(frames, clean_str(r->frames[i]));
	return o;
}

static int write_json(cJSON *root, const char *path)
{
	char *text = cJSON_Print(root);
	FILE *f;
	int rc = -1;

	if (!text) {
		errno = ENOMEM;
		return -1;
	}
	f = fopen(path, "w");
	if (f) {
		rc = fputs(text, f) < 0 || fputc('\n', f) == EOF ? -1 : 0;
		if (fclose(f) != 0)
			rc = -1;
	}
	free(text);
	return rc;
}

int report_list_write(const struct conf_case *const *sel, size_t n, const char *version,
                      const char *path)
{
	cJSON *root = cJSON_CreateObject(), *cases;
	int rc;

	if (!root) {
		errno = ENOMEM;
		return -1;
	}
	cJSON_AddNumberToObject(root, "formatVersion", REPORT_FORMAT_VERSION);
	cJSON_AddStringToObject(root, "tool", "clawpair-conformance");
	cJSON_AddStringToObject(root, "version", version ? version : "");
	cJSON_AddNumberToObject(root, "total", (double)n);
	cases = cJSON_AddArrayToObject(root, "cases");
	for (size_t i = 0; cases && i < n; i++) {
		const struct conf_case *c = sel[i];
		cJSON *o = cJSON_CreateObject();
		const cJSON *needs = cJSON_GetObjectItemCaseSensitive(c->json, "needs");

		cJSON_AddStringToObject(o, "id", c->id);
		cJSON_AddStringToObject(o, "title", c->title);
		cJSON_AddStringToObject(o, "group", c->group);
		cJSON_AddStringToObject(o, "requirement", c->requirement);
		cJSON_AddStringToObject(o, "level", c->level);
		cJSON_AddItemToObject(o, "section", str_or_null(c->section));
		cJSON_AddStringToObject(o, "sentence", c->sentence);
		cJSON_AddItemToObject(o, "needs",
		                      needs ? cJSON_Duplicate(needs, 1) : cJSON_CreateArray());
		cJSON_AddBoolToObject(o, "exclusive", c->exclusive);
		cJSON_AddStringToObject(o, "path", c->path);
		cJSON_AddItemToObject(o, "invalid", str_or_null(c->invalid));
		cJSON_AddItemToArray(cases, o);
	}
	rc = write_json(root, path);
	cJSON_Delete(root);
	return rc;
}

int report_json_write(const struct conf_run *run, const char *path)
{
	cJSON *root = cJSON_CreateObject(), *summary, *cases, *options;
	char *text = NULL;
	FILE *f = NULL;
	size_t i;
	int rc = -1;

	if (!root)
		goto out;
	cJSON_AddNumberToObject(root, "formatVersion", REPORT_FORMAT_VERSION);
	cJSON_AddStringToObject(root, "tool", "clawpair-conformance");
	cJSON_AddStringToObject(root, "version", run->tool_version ? run->tool_version : "");
	cJSON_AddStringToObject(root, "gateway", run->gateway_url ? run->gateway_url : "");
	cJSON_AddStringToObject(root, "started", run->started ? run->started : "");
	cJSON_AddBoolToObject(root, "strict", run->strict);
	options = cJSON_AddObjectToObject(root, "options");
	for (i = 0; options && i < run->n_props; i++)
		cJSON_AddStringToObject(options, run->props[i].name, run->props[i].value);
	cJSON_AddNumberToObject(root, "duration_ms", (double)run->duration_ms);
	cJSON_AddNumberToObject(root, "exit_status", conf_run_exit_status(run));
	cJSON_AddItemToObject(root, "gone_during", str_or_null(run->gone_during));
	cJSON_AddNumberToObject(root, "stale_expectations", (double)run->stale);
	summary = cJSON_AddObjectToObject(root, "summary");
	cJSON_AddNumberToObject(summary, "total", (double)run->n);
	for (i = 0; i < CONF_VERDICT__COUNT; i++)
		cJSON_AddNumberToObject(summary, conf_verdict_name((enum conf_verdict)i),
		                        (double)run->counts[i]);
	cases = cJSON_AddArrayToObject(root, "cases");
	for (i = 0; cases && i < run->n; i++)
		cJSON_AddItemToArray(cases, case_json(&run->results[i]));
	text = cJSON_Print(root);
	if (!text) {
		errno = ENOMEM;
		goto out;
	}
	f = fopen(path, "w");
	if (!f)
		goto out;
	if (fputs(text, f) < 0 || fputc('\n', f) == EOF)
		goto out;
	if (fclose(f) != 0) {
		f = NULL;
		goto out;
	}
	f = NULL;
	rc = 0;
out:
	if (f)
		fclose(f);
	free(text);
	cJSON_Delete(root);
	return rc;
}
