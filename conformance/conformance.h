/* conformance.h: cases, results and run summary shared by the runner, its reports and its tests. */
#ifndef CLAWPAIR_CONFORMANCE_H
#define CLAWPAIR_CONFORMANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Order matters: reports list verdict counts in this order. */
enum conf_verdict {
	CONF_PASS = 0,
	CONF_FAIL,
	CONF_NON_STRICT, /* a SHOULD-level case failed */
	CONF_INFO, /* a MAY-level case failed: recorded only */
	CONF_XFAIL, /* failed as the expectations file says it does */
	CONF_SKIP,
	CONF_ERROR, /* the case itself is broken (or the runner could not play it): no verdict on
		     * the gateway */
	CONF_NOT_RUN, /* the run stopped before it (the gateway went away) */
	CONF_VERDICT__COUNT
};

const char *conf_verdict_name(enum conf_verdict v);

/* One scenario file. Strings are owned; json is the whole parsed file. */
struct conf_case {
	char *id, *title, *requirement, *level, *sentence, *diagnose;
	char *group; /* the first id segment ("hold"), the JUnit testsuite */
	char *section; /* the requirement's spec section ("8.3"), or NULL (conf_cases_sections) */
	char *path;
	char *invalid; /* why the interpreter refuses the case (conf_case_check), or NULL */
	bool exclusive; /* needs the gateway to itself: "exclusive" (true or why), or needs
			 * restart or max-pending-2 (--jobs runs it alone) */
	cJSON *json;
};

struct conf_cases {
	struct conf_case *v;
	size_t n;
};

/* Loads every *.json under dir (recursively), sorted by group order then id. Returns 0, or -1
 * with a one-line reason in err (unreadable dir, malformed file, missing field, duplicate id). */
int conf_cases_load(const char *dir, struct conf_cases *out, char *err, size_t errsz);
void conf_cases_finish(struct conf_cases *cs);
/* strcmp, but runs of digits compare as numbers: WIRE-2 before WIRE-10. */
int conf_natural_cmp(const char *a, const char *b);

/* The id rules: an id matches a pattern when it equals it, has it as a "/"-prefix ("hold",
 * "hold/HOLD-1"), or fnmatch()es it (patterns with * ? [). */
bool conf_id_matches(const char *id, const char *pattern);
/* A case matches a pattern by the id rules, or when the pattern names its requirement
 * ("HOLD-1", any case). */
bool conf_case_matches(const struct conf_case *c, const char *pattern);
/* A spec section ("8.3") names itself and its subsections ("8.3.2"), not "8.30"; a leading
 * "\u00a7" is ignored. */
bool conf_section_matches(const char *section, const char *want);

/* --cases, --section and --exclude. */
struct conf_selection {
	const char *const *inc, *const *sec, *const *exc;
	size_t ninc, nsec, nexc;
};
/* Included when it matches one of inc or sec (or both are empty) and none of exc. */
bool conf_case_selected(const struct conf_case *c, const struct conf_selection *s);

/* Sets each case's section from spec/requirements.tsv (id, level, section, title). Returns 0, or
 * -1 with err. */
int conf_cases_sections(struct conf_cases *cs, const char *tsv_path, char *err, size_t errsz);

/* Known failures of one implementation: case id (or pattern) with a reason. */
struct conf_expectation {
	char *pattern, *reason;
	unsigned line; /* TSV: its line; JSON: its position in the list, from 1 */
};
struct conf_expectations {
	struct conf_expectation *v;
	size_t n;
	bool tsv; /* read from a TSV file (line is a line number) */
};
/* JSON ({"expected-fail": [{"id", "reason"}]} or {"ID": "reason", ...}) or TSV (id TAB reason;
 * '#' comments). Returns 0 or -1 with err. */
int conf_expectations_load(const char *path, struct conf_expectations *out, char *err,
                           size_t errsz);
void conf_expectations_finish(struct conf_expectations *e);
/* The first entry that matches case c (as conf_case_matches), or NULL; and its reason. */
const struct conf_expectation *conf_expectations_entry(const struct conf_expectations *e,
                                                       const struct conf_case *c);
const char *conf_expectations_find(const struct conf_expectations *e, const struct conf_case *c);
/* Every entry must match a case of cases: a misspelled id would silently expect nothing.
 * Returns 0, or -1 with the first one that matches none in err. */
int conf_expectations_check(const struct conf_expectations *e, const char *path,
                            const struct conf_cases *cases, char *err, size_t errsz);

struct conf_result {
	const struct conf_case *c;
	enum conf_verdict verdict;
	uint64_t duration_ms;
	uint64_t started_ms; /* wall clock (ms since 1970) when it started; 0 if it did not */
	int close_code; /* close code seen at the failing step, 0 if none */
	char *close_reason; /* its reason (with a close code) */
	long close_ms; /* the close's time since that actor's connect, -1 if unknown */
	char *message; /* one line: the diagnosis or why it failed/skipped */
	char *expected, *actual;
	char *xfail_reason; /* CONF_XFAIL, or a stale PASS: the expectations file's reason */
	bool stale; /* PASS although the expectations file lists it: the file is out of date,
		     * and the run fails */
	int failed_step; /* -1 when none */
	char **frames; /* transcript lines "[+12 ms] n1 < {...}" */
	size_t n_frames;
};

/* Applies e to r (r->c set, r's verdict final): a listed FAIL, NON-STRICT or INFO becomes XFAIL
 * with its reason; a PASS of a case listed by its own id is stale (r->stale, and the message says
 * to remove it; a pattern's cases are judged together: conf_run_stale_patterns). */
void conf_expectations_apply(const struct conf_expectations *e, struct conf_result *r);

void conf_result_finish(struct conf_result *r);
/* r as one line of JSON (malloc'd, NULL when out of memory), with gone (why the gateway no
 * longer accepts a connection, or NULL); and back, for case c (r->c = c, *gone malloc'd or
 * NULL). from_wire returns 0, or -1 when text is not such a result. */
char *conf_result_to_wire(const struct conf_result *r, const char *gone);
int conf_result_from_wire(const char *text, size_t len, const struct conf_case *c,
                          struct conf_result *r, char **gone);
/* Appends a transcript line (copied). */
int conf_result_add_frame(struct conf_result *r, const char *line);

/* A setting of the run, for the reports: "--timeout-scale" = "1". Never the token. */
struct conf_property {
	const char *name, *value;
};

struct conf_run {
	const char *tool_version;
	const char *gateway_url;
	const char *started; /* ISO 8601 UTC */
	uint64_t started_ms; /* the same, ms since 1970 */
	bool strict;
	const struct conf_property *props; /* the options it ran with */
	size_t n_props;
	const char *gone_during; /* the case during which the gateway went away, or NULL */
	uint64_t duration_ms;
	struct conf_result *results;
	size_t n;
	size_t counts[CONF_VERDICT__COUNT];
	size_t stale; /* PASSes the expectations file lists as known failures */
};

void conf_run_count(struct conf_run *run);
/* An entry that names one case by its id is stale as soon as that case passes (runner.c says so
 * with the case). An entry with a pattern (a group, a requirement, a prefix, a glob) only allows
 * its cases to fail; it is stale when every one of them that ran passed: those PASSes are then
 * marked stale. Recounts. */
void conf_run_stale_patterns(struct conf_run *run, const struct conf_expectations *e);
/* 2: the run could not judge the gateway (it went away) or a case is broken (ERROR); 1: a FAIL,
 * a NON-STRICT under strict, or a known failure that passed (the expectations file is stale);
 * 0: nothing failed. */
int conf_run_exit_status(const struct conf_run *run);

/* Reports. Each returns 0, or -1 (errno set) when the file cannot be written. */
int report_json_write(const struct conf_run *run, const char *path);
int report_junit_write(const struct conf_run *run, const char *path);
int report_html_write(const struct conf_run *run, const char *path);
/* An expectations file (--expectations reads it) listing every FAIL, NON-STRICT, INFO and XFAIL
 * with its diagnosis (an XFAIL keeps its listed reason). */
int report_expectations_write(const struct conf_run *run, const char *path);
/* --list --json: the selected cases (id, group, requirement, level, section, title, sentence,
 * needs, exclusive, path, and why a broken one is broken). */
int report_list_write(const struct conf_case *const *sel, size_t n, const char *version,
                      const char *path);

#endif
