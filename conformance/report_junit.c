/* report_junit.c: JUnit XML for CI (one testsuite per case group). */
#include "conformance.h"
#include "report_util.h"
#include "strbuf.h"

#include <string.h>
#include <time.h>

/* JUnit's timestamp: ISO 8601 without a zone (the schema's pattern); it is UTC. */
static void add_timestamp(struct strbuf *b, uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char out[32];

	gmtime_r(&t, &tm);
	strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%S", &tm);
	strbuf_add(b, out);
}

static void add_property(struct strbuf *b, const char *name, const char *value)
{
	strbuf_add(b, "      <property name=\"");
	strbuf_add_markup_attr(b, name);
	strbuf_add(b, "\" value=\"");
	strbuf_add_markup_attr(b, value ? value : "");
	strbuf_add(b, "\"/>\n");
}

/* The same in every suite: the gateway, the runner and the options the run had. */
static void add_properties(struct strbuf *b, const struct conf_run *run)
{
	strbuf_add(b, "    <properties>\n");
	add_property(b, "gateway", run->gateway_url);
	add_property(b, "runner", "clawpair-conformance");
	add_property(b, "runner.version", run->tool_version);
	add_property(b, "started", run->started);
	for (size_t i = 0; i < run->n_props; i++)
		add_property(b, run->props[i].name, run->props[i].value);
	strbuf_add(b, "    </properties>\n");
}

/* A JUnit failure: a FAIL, a NON-STRICT under --strict, and a known failure that passed (the
 * expectations file is stale: the run fails, so CI must show which case). */
static bool counts_as_failure(const struct conf_run *run, const struct conf_result *r)
{
	return r->verdict == CONF_FAIL || (r->verdict == CONF_NON_STRICT && run->strict) ||
	       r->stale;
}

static void add_details(struct strbuf *b, const struct conf_result *r)
{
	size_t i;

	strbuf_add(b, "Requirement: ");
	strbuf_add_markup(b, r->c->requirement);
	strbuf_add(b, " (");
	strbuf_add_markup(b, r->c->level);
	strbuf_add(b, ")\n");
	strbuf_add_markup(b, r->c->sentence);
	strbuf_add(b, "\n");
	if (r->message) {
		strbuf_add_markup(b, r->message);
		strbuf_add(b, "\n");
	}
	if (r->expected) {
		strbuf_add(b, "Expected: ");
		strbuf_add_markup(b, r->expected);
		strbuf_add(b, "\n");
	}
	if (r->actual) {
		strbuf_add(b, "Actual: ");
		strbuf_add_markup(b, r->actual);
		strbuf_add(b, "\n");
	}
	for (i = 0; i < r->n_frames; i++) {
		strbuf_add_markup(b, r->frames[i]);
		strbuf_add(b, "\n");
	}
}

static void add_case(struct strbuf *b, const struct conf_run *run, const struct conf_result *r)
{
	strbuf_add(b, "    <testcase classname=\"clawpair.");
	strbuf_add_markup_attr(b, r->c->group);
	strbuf_add(b, "\" name=\"");
	strbuf_add_markup_attr(b, r->c->id);
	strbuf_addf(b, "\" time=\"%.3f\">\n", (double)r->duration_ms / 1000.0);
	if (counts_as_failure(run, r)) {
		strbuf_addf(b, "      <failure type=\"%s\" message=\"",
		            r->stale ? "XPASS" : conf_verdict_name(r->verdict));
		strbuf_add_markup_attr(b, r->message ? r->message : "failed");
		strbuf_add(b, "\">");
		add_details(b, r);
		strbuf_add(b, "</failure>\n");
	} else if (r->verdict == CONF_ERROR) {
		strbuf_add(b, "      <error type=\"ERROR\" message=\"");
		strbuf_add_markup_attr(b, r->message ? r->message : "error");
		strbuf_add(b, "\">");
		add_details(b, r);
		strbuf_add(b, "</error>\n");
	} else if (r->verdict == CONF_SKIP || r->verdict == CONF_XFAIL ||
	           r->verdict == CONF_NOT_RUN) {
		strbuf_add(b, "      <skipped message=\"");
		if (r->verdict == CONF_XFAIL) {
			strbuf_add(b, "expected failure: ");
			strbuf_add_markup_attr(b, r->xfail_reason);
			strbuf_add(b, "; ");
		}
		strbuf_add_markup_attr(b, r->message ? r->message : "skipped");
		strbuf_add(b, "\"/>\n");
	}
	if (r->verdict != CONF_PASS && r->verdict != CONF_SKIP && r->verdict != CONF_NOT_RUN) {
		strbuf_addf(b, "      <system-out>%s\n", conf_verdict_name(r->verdict));
		add_details(b, r);
		strbuf_add(b, "</system-out>\n");
	}
	strbuf_add(b, "    </testcase>\n");
}

int report_junit_write(const struct conf_run *run, const char *path)
{
	struct strbuf b;
	size_t i, j, failures = 0, errors = 0;
	int rc;

	strbuf_init(&b);
	for (i = 0; i < run->n; i++) {
		failures += counts_as_failure(run, &run->results[i]);
		errors += run->results[i].verdict == CONF_ERROR;
	}
	strbuf_add(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	strbuf_addf(&b,
	            "<testsuites name=\"clawpair-conformance\" tests=\"%zu\" failures=\"%zu\" "
	            "errors=\"%zu\" time=\"%.3f\">\n",
	            run->n, failures, errors, (double)run->duration_ms / 1000.0);
	/* results are sorted by group, but do not rely on it: a suite per distinct group */
	for (i = 0; i < run->n; i++) {
		const char *g = run->results[i].c->group;
		size_t tests = 0, fl = 0, sk = 0, er = 0;
		uint64_t ms = 0, first = UINT64_MAX;
		bool seen = false;

		for (j = 0; j < i && !seen; j++)
			seen = strcmp(run->results[j].c->group, g) == 0;
		if (seen)
			continue;
		for (j = i; j < run->n; j++) {
			const struct conf_result *r = &run->results[j];

			if (strcmp(r->c->group, g) != 0)
				continue;
			tests++;
			fl += counts_as_failure(run, r);
			er += r->verdict == CONF_ERROR;
			sk += r->verdict == CONF_SKIP || r->verdict == CONF_XFAIL ||
			      r->verdict == CONF_NOT_RUN;
			ms += r->duration_ms;
			if (r->started_ms && r->started_ms < first)
				first = r->started_ms;
		}
		strbuf_add(&b, "  <testsuite name=\"");
		strbuf_add_markup_attr(&b, g);
		strbuf_addf(&b,
		            "\" tests=\"%zu\" failures=\"%zu\" skipped=\"%zu\" errors=\"%zu\" "
		            "time=\"%.3f\" timestamp=\"",
		            tests, fl, sk, er, (double)ms / 1000.0);
		add_timestamp(&b, first != UINT64_MAX ? first : run->started_ms);
		strbuf_add(&b, "\">\n");
		add_properties(&b, run);
		for (j = i; j < run->n; j++) {
			if (strcmp(run->results[j].c->group, g) == 0)
				add_case(&b, run, &run->results[j]);
		}
		strbuf_add(&b, "  </testsuite>\n");
	}
	strbuf_add(&b, "</testsuites>\n");
	rc = report_write_file(&b, path);
	strbuf_finish(&b);
	return rc;
}
