/* console.c: the runner's text output, line-buffered, in selection order. Everything printed
 * here comes from results that runner.c has already redacted. */
#include "console.h"

#include <stdio.h>
#include <string.h>

#include "strbuf.h"

#define SHOWN_BYTES 400

/* Prints at most max bytes of s, valid UTF-8 only, cut on a character boundary. */
static void print_clean(const char *prefix, const char *s, size_t max)
{
	struct strbuf b;
	size_t n;

	strbuf_init(&b);
	strbuf_add_utf8_clean(&b, s ? s : "");
	n = b.len;
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)b.p[n] & 0xc0) == 0x80)
			n--;
	}
	printf("%s%.*s%s\n", prefix, (int)n, b.p ? b.p : "", n < b.len ? "..." : "");
	strbuf_finish(&b);
}

static void print_failure(const struct conf_result *r, bool verbose)
{
	printf("        -> %s (%s): %s\n", r->c->requirement, r->c->level, r->c->sentence);
	if (r->xfail_reason)
		printf("        known failure: %s\n", r->xfail_reason);
	if (r->message)
		print_clean("        ", r->message, SHOWN_BYTES);
	if (r->expected)
		print_clean("        Expected: ", r->expected, SHOWN_BYTES);
	if (r->actual)
		print_clean("        Actual:   ", r->actual, SHOWN_BYTES);
	if (verbose) {
		for (size_t i = 0; i < r->n_frames; i++)
			print_clean("          ", r->frames[i], SHOWN_BYTES);
	}
}

/* What fails the run (or may, under --strict) is shown in full even with --quiet. */
static bool fails_run(const struct conf_result *r)
{
	return r->stale || r->verdict == CONF_FAIL || r->verdict == CONF_NON_STRICT ||
	       r->verdict == CONF_ERROR;
}

void conf_console_result(void *console, size_t i, size_t n, const struct conf_result *r)
{
	const struct conf_console *k = console;

	if (k->quiet && !fails_run(r))
		return;
	printf("[%3zu/%zu] %-10s %s  (%llu ms)", i + 1, n, conf_verdict_name(r->verdict), r->c->id,
	       (unsigned long long)r->duration_ms);
	if (!fails_run(r)) {
		/* one line: a known failure with the reason it is known, a skip with its reason */
		const char *why = r->verdict == CONF_XFAIL ? r->xfail_reason : r->message;

		if (r->verdict != CONF_PASS && why)
			print_clean(": ", why, SHOWN_BYTES);
		else
			printf("\n");
		return;
	}
	printf("\n");
	if (r->stale)
		print_clean("        ", r->message, SHOWN_BYTES);
	else
		print_failure(r, k->verbose);
}

void conf_console_summary(const struct conf_console *k, const struct conf_run *run)
{
	int status = conf_run_exit_status(run);
	size_t i;

	(void)k;
	if (run->counts[CONF_FAIL] || run->counts[CONF_NON_STRICT] || run->counts[CONF_ERROR] ||
	    run->stale) {
		printf("\nFailures:\n");
		for (i = 0; i < run->n; i++) {
			const struct conf_result *r = &run->results[i];

			if (r->stale || r->verdict == CONF_FAIL || r->verdict == CONF_NON_STRICT ||
			    r->verdict == CONF_ERROR)
				printf("  %-10s %s: %.300s\n", conf_verdict_name(r->verdict),
				       r->c->id, r->message ? r->message : "");
		}
	}
	printf("\nSummary: %zu cases in %.1f s:", run->n, (double)run->duration_ms / 1000.0);
	for (i = 0; i < CONF_VERDICT__COUNT; i++) {
		if (i == CONF_NOT_RUN && !run->counts[i])
			continue;
		printf("%s %zu %s", i ? "," : "", run->counts[i],
		       conf_verdict_name((enum conf_verdict)i));
	}
	if (run->stale)
		printf("; %zu listed as known failures but passed", run->stale);
	if (run->gone_during)
		printf("\nVerdict: STOPPED: the gateway went away during %s\n", run->gone_during);
	else if (run->counts[CONF_ERROR])
		printf("\nVerdict: ERROR: %zu broken cases: no verdict on the gateway for them\n",
		       run->counts[CONF_ERROR]);
	else if (run->counts[CONF_NOT_RUN] && !status)
		printf("\nVerdict: INCOMPLETE: %zu cases not run (the run was stopped)\n",
		       run->counts[CONF_NOT_RUN]);
	else
		printf("\nVerdict: %s\n", status                         ? "FAILED"
		                          : run->counts[CONF_NON_STRICT] ? "PASSED (NON-STRICT)"
		                                                         : "PASSED");
}
