/* report_expectations.c: a starting expectations file from a run: every case that failed, with
 * its diagnosis as the reason, in the format --expectations reads. */
#include "conformance.h"
#include "report_util.h"
#include "strbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define REASON_MAX 300

static bool is_known_failure(enum conf_verdict v)
{
	return v == CONF_FAIL || v == CONF_NON_STRICT || v == CONF_INFO || v == CONF_XFAIL;
}

/* One line of at most REASON_MAX bytes, cut on a character boundary. */
static cJSON *reason_of(const struct conf_result *r)
{
	const char *src = r->verdict == CONF_XFAIL && r->xfail_reason ? r->xfail_reason
	                  : r->message                                ? r->message
	                               : conf_verdict_name(r->verdict);
	struct strbuf b;
	size_t n;
	cJSON *j;

	strbuf_init(&b);
	strbuf_add_utf8_clean(&b, src);
	for (size_t i = 0; b.p && i < b.len; i++) {
		if (b.p[i] == '\n' || b.p[i] == '\r' || b.p[i] == '\t')
			b.p[i] = ' ';
	}
	n = b.len;
	if (n > REASON_MAX) {
		n = REASON_MAX;
		while (n > 0 && ((unsigned char)b.p[n] & 0xc0) == 0x80)
			n--;
		b.p[n] = '\0';
	}
	j = cJSON_CreateString(b.p ? b.p : "");
	strbuf_finish(&b);
	return j;
}

int report_expectations_write(const struct conf_run *run, const char *path)
{
	cJSON *root = cJSON_CreateObject(), *summary, *list;
	struct strbuf b;
	char *text;
	int rc;

	if (!root) {
		errno = ENOMEM;
		return -1;
	}
	strbuf_init(&b);
	strbuf_addf(&b, "the gateway at %s", run->gateway_url ? run->gateway_url : "?");
	cJSON_AddStringToObject(root, "implementation", b.p ? b.p : "");
	strbuf_finish(&b);
	strbuf_init(&b);
	strbuf_addf(&b, "clawpair-conformance %s --write-expectations, %s",
	            run->tool_version ? run->tool_version : "", run->started ? run->started : "");
	cJSON_AddStringToObject(root, "how", b.p ? b.p : "");
	strbuf_finish(&b);
	summary = cJSON_AddObjectToObject(root, "summary");
	cJSON_AddNumberToObject(summary, "total", (double)run->n);
	for (size_t i = 0; i < CONF_VERDICT__COUNT; i++)
		cJSON_AddNumberToObject(summary, conf_verdict_name((enum conf_verdict)i),
		                        (double)run->counts[i]);
	list = cJSON_AddArrayToObject(root, "expected-fail");
	for (size_t i = 0; list && i < run->n; i++) {
		const struct conf_result *r = &run->results[i];
		cJSON *e;

		if (!is_known_failure(r->verdict))
			continue;
		e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "id", r->c->id);
		cJSON_AddItemToObject(e, "reason", reason_of(r));
		cJSON_AddItemToArray(list, e);
	}
	text = cJSON_Print(root);
	cJSON_Delete(root);
	if (!text) {
		errno = ENOMEM;
		return -1;
	}
	strbuf_init(&b);
	strbuf_add(&b, text);
	strbuf_add(&b, "\n");
	free(text);
	rc = report_write_file(&b, path);
	strbuf_finish(&b);
	return rc;
}

void conf_expectations_apply(const struct conf_expectations *e, struct conf_result *r)
{
	const struct conf_expectation *x = conf_expectations_entry(e, r->c);

	if (!x)
		return;
	if (r->verdict == CONF_FAIL || r->verdict == CONF_NON_STRICT || r->verdict == CONF_INFO) {
		r->verdict = CONF_XFAIL;
		r->xfail_reason = strdup(x->reason);
	} else if (r->verdict == CONF_PASS && !strcmp(x->pattern, r->c->id)) {
		struct strbuf b;

		strbuf_init(&b);
		strbuf_addf(&b,
		            "listed as a known failure but passed (%s): remove it from the "
		            "expectations file",
		            x->reason);
		r->stale = true;
		r->xfail_reason = strdup(x->reason);
		free(r->message);
		r->message = strbuf_take(&b);
	}
}
