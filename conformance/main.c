/* main.c: clawpair-conformance: checks a gateway against the clawpair spec, case by case, and
 * writes text, JSON, JUnit and HTML reports. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "client_mode.h"
#include "conformance.h"
#include "identity.h"
#include "console.h"
#include "probe.h"
#include "report_util.h"
#include "runner.h"
#include "schedule.h"
#include "clawpair-conformance-help.h"

#ifndef CLAWPAIR_VERSION
#define CLAWPAIR_VERSION "0"
#endif
#ifndef CLAWPAIR_CASES_DIR
#define CLAWPAIR_CASES_DIR "conformance/cases"
#endif
/* the installed cases: relative to the binary's directory, or absolute */
#ifndef CLAWPAIR_CASES_INSTALLED
#define CLAWPAIR_CASES_INSTALLED "../share/clawpair/conformance/cases"
#endif

#define PROG "clawpair-conformance"
#define EXIT_USAGE CLI_EXIT_USAGE
#define MAX_PATTERNS 64
/* a case's own timeouts end it long before; this stops one that is stuck */
#define DEFAULT_CASE_TIMEOUT_MS 300000
#define MAX_JOBS 64

struct args {
	const char *url, *remote_via, *junit, *json, *html, *expectations, *write_expectations;
	const char *restart_cmd, *cases_dir;
	const char *tls_fingerprint; /* wss://: the gateway's pinned certificate, or NULL */
	char *token;
	const char *inc[MAX_PATTERNS], *sec[MAX_PATTERNS], *exc[MAX_PATTERNS];
	size_t ninc, nsec, nexc;
	bool list, strict, slow, verbose, quiet, all_frames, show_secrets, fail_fast;
	unsigned jobs; /* 0: one per core */
	uint64_t case_timeout_ms;
	double timeout_scale;
	long long pending_ttl_ms, tick_interval_ms;
	long max_pending;
};

/* The --help text, made from doc/clawpair-conformance.txt with its manual page. */
static void usage(FILE *f)
{
	fputs(CLAWPAIR_HELP, f);
}

enum {
	O_URL = 256,
	O_REMOTE,
	O_CASES,
	O_EXCLUDE,
	O_LIST,
	O_STRICT,
	O_JSON,
	O_JUNIT,
	O_HTML,
	O_EXPECT,
	O_SCALE,
	O_RESTART,
	O_TTL,
	O_MAXP,
	O_SLOW,
	O_DIR,
	O_ALL,
	O_TICK,
	O_SECRETS,
	O_WRITE_EXPECT,
	O_SECTION,
	O_FAIL_FAST,
	O_CASE_TIMEOUT,
	O_JOBS,
};

static const struct option long_opts[] = {
        {"url", required_argument, NULL, O_URL},
        {"remote-via", required_argument, NULL, O_REMOTE},
        {"cases", required_argument, NULL, O_CASES},
        {"exclude", required_argument, NULL, O_EXCLUDE},
        {"list", no_argument, NULL, O_LIST},
        {"strict", no_argument, NULL, O_STRICT},
        {"json", required_argument, NULL, O_JSON},
        {"junit", required_argument, NULL, O_JUNIT},
        {"html", required_argument, NULL, O_HTML},
        {"expectations", required_argument, NULL, O_EXPECT},
        {"timeout-scale", required_argument, NULL, O_SCALE},
        {"restart-cmd", required_argument, NULL, O_RESTART},
        {"pending-ttl-ms", required_argument, NULL, O_TTL},
        {"max-pending", required_argument, NULL, O_MAXP},
        {"slow", no_argument, NULL, O_SLOW},
        {"tick-interval-ms", required_argument, NULL, O_TICK},
        {"cases-dir", required_argument, NULL, O_DIR},
        {"all-frames", no_argument, NULL, O_ALL},
        {"show-secrets", no_argument, NULL, O_SECRETS},
        {"write-expectations", required_argument, NULL, O_WRITE_EXPECT},
        {"section", required_argument, NULL, O_SECTION},
        {"fail-fast", no_argument, NULL, O_FAIL_FAST},
        {"case-timeout", required_argument, NULL, O_CASE_TIMEOUT},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"jobs", required_argument, NULL, O_JOBS},
        {NULL, 0, NULL, 0},
};

static const struct cli_tool tool = {
        .prog = PROG,
        .version = CLAWPAIR_VERSION,
        .usage = usage,
        .options = long_opts,
        .short_options = "vq",
        .token = true,
        .tls_fingerprint = true,
};

static int add_pattern(const struct cli *c, const char **v, size_t *n, const char *arg)
{
	if (*n == MAX_PATTERNS)
		return cli_usage_error(c, "too many patterns (at most %d)", MAX_PATTERNS);
	v[(*n)++] = arg;
	return 0;
}

/* The options with a number. Returns 0, or the exit status of a usage error. */
static int apply_number(const struct cli *c, struct args *a, int opt, const char *arg)
{
	unsigned long long v;

	switch (opt) {
	case O_SCALE:
		if (!cli_parse_positive(arg, 1000, &a->timeout_scale))
			return cli_usage_error(c, "bad --timeout-scale %s", arg);
		return 0;
	case O_TTL:
		if (!cli_parse_uint(arg, 1, LLONG_MAX, &v))
			return cli_usage_error(c, "bad --pending-ttl-ms %s", arg);
		a->pending_ttl_ms = (long long)v;
		return 0;
	case O_MAXP:
		if (!cli_parse_uint(arg, 1, UINT_MAX, &v))
			return cli_usage_error(c, "bad --max-pending %s", arg);
		a->max_pending = (long)v;
		return 0;
	case O_CASE_TIMEOUT:
		if (!cli_parse_seconds_ms(arg, 86400, &a->case_timeout_ms))
			return cli_usage_error(c, "bad --case-timeout %s", arg);
		return 0;
	case O_JOBS:
		if (!cli_parse_uint(arg, 1, MAX_JOBS, &v))
			return cli_usage_error(c, "bad --jobs %s (1..%d)", arg, MAX_JOBS);
		a->jobs = (unsigned)v;
		return 0;
	default: /* O_TICK */
		if (!cli_parse_uint(arg, 1, LLONG_MAX, &v))
			return cli_usage_error(c, "bad --tick-interval-ms %s", arg);
		a->tick_interval_ms = (long long)v;
		return 0;
	}
}

/* Applies one option. Returns 0, or the exit status of a usage error. */
static int apply_option(const struct cli *c, void *user, int opt, const char *arg)
{
	struct args *a = user;

	switch (opt) {
	case O_URL:
		a->url = arg;
		break;
	case O_REMOTE:
		a->remote_via = arg;
		break;
	case O_CASES:
		return add_pattern(c, a->inc, &a->ninc, arg);
	case O_EXCLUDE:
		return add_pattern(c, a->exc, &a->nexc, arg);
	case O_LIST:
		a->list = true;
		break;
	case O_STRICT:
		a->strict = true;
		break;
	case O_JSON:
		a->json = arg;
		break;
	case O_JUNIT:
		a->junit = arg;
		break;
	case O_HTML:
		a->html = arg;
		break;
	case O_EXPECT:
		a->expectations = arg;
		break;
	case O_RESTART:
		a->restart_cmd = arg;
		break;
	case O_SLOW:
		a->slow = true;
		break;
	case O_DIR:
		a->cases_dir = arg;
		break;
	case O_ALL:
		a->all_frames = true;
		break;
	case O_SECRETS:
		a->show_secrets = true;
		break;
	case O_WRITE_EXPECT:
		a->write_expectations = arg;
		break;
	case O_SECTION:
		return add_pattern(c, a->sec, &a->nsec, arg);
	case O_FAIL_FAST:
		a->fail_fast = true;
		break;
	case 'v':
		a->verbose = true;
		break;
	case 'q':
		a->quiet = true;
		break;
	default:
		return apply_number(c, a, opt, arg);
	}
	return 0;
}

/* The pinned TLS fingerprint for a wss:// URL. The environment's does not apply to ws://.
 * Returns 0 or a usage error's status. */
static int check_tls(const struct cli *c, struct args *a)
{
	if (a->list)
		return 0;
	return cli_tls_pin(c, a->url, client_tls_fingerprint_parse, &a->tls_fingerprint);
}

/* Parses argv into a. Returns -1 to go on, or the exit status to leave with. */
static int parse_args(int argc, char **argv, struct args *a)
{
	struct cli c;
	int rc;

	memset(a, 0, sizeof *a);
	a->timeout_scale = 1.0;
	a->case_timeout_ms = DEFAULT_CASE_TIMEOUT_MS;
	a->remote_via = "xff:10.77.0.2";
	rc = cli_parse(&c, &tool, argc, argv, apply_option, a);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return cli_usage_error(&c, "unexpected argument %s", argv[optind]);
	rc = cli_token(&c, !a->list, &a->token);
	if (rc)
		return rc;
	if (!a->list && !a->url)
		return cli_usage_error(&c, "--url is required (unless --list)");
	if (a->url && strncasecmp(a->url, "ws://", 5) != 0 && strncasecmp(a->url, "wss://", 6) != 0)
		return cli_usage_error(&c, "--url must be ws://HOST:PORT or wss://HOST:PORT");
	rc = check_tls(&c, a);
	return rc ? rc : -1;
}

/* xff:A.B.C.D -> first host part; netns:URL[@NS]; none */
static int parse_remote(const char *s, struct conf_options *o, unsigned *xff_first, char *nsbuf,
                        size_t nssz, char *urlbuf, size_t urlsz)
{
	unsigned a, b, c2, d;
	char tail;

	if (!strcmp(s, "none")) {
		o->remote_via = CONF_REMOTE_NONE;
		return 0;
	}
	if (!strncmp(s, "xff:", 4)) {
		if (sscanf(s + 4, "%u.%u.%u.%u%c", &a, &b, &c2, &d, &tail) != 4 || a != 10 ||
		    b != 77 || c2 != 0 || d < 2 || d > 254) {
			fprintf(stderr,
			        PROG ": --remote-via xff: takes an address "
			             "10.77.0.N (N 2..254): each remote actor gets the next one\n");
			return -1;
		}
		o->remote_via = CONF_REMOTE_XFF;
		*xff_first = d;
		return 0;
	}
	if (!strncmp(s, "netns:", 6) &&
	    (!strncmp(s + 6, "ws://", 5) || !strncmp(s + 6, "wss://", 6))) {
		const char *at = strrchr(s + 6, '@');

		o->remote_via = CONF_REMOTE_NETNS;
		if (at) {
			snprintf(urlbuf, urlsz, "%.*s", (int)(at - (s + 6)), s + 6);
			snprintf(nsbuf, nssz, "%s", at + 1);
			o->netns = nsbuf;
		} else {
			snprintf(urlbuf, urlsz, "%s", s + 6);
		}
		o->remote_url = urlbuf;
		return 0;
	}
	fprintf(stderr, PROG ": --remote-via must be xff:ADDR, netns:URL or none\n");
	return -1;
}

/* The time now as ISO 8601 UTC into out; returns it in ms since 1970. */
static uint64_t now_iso(char *out, size_t outsz)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int write_reports(const struct args *a, const struct conf_run *run)
{
	int rc = 0;

	if (a->json && report_json_write(run, a->json) < 0) {
		fprintf(stderr, PROG ": %s: %s\n", a->json, strerror(errno));
		rc = -1;
	}
	if (a->junit && report_junit_write(run, a->junit) < 0) {
		fprintf(stderr, PROG ": %s: %s\n", a->junit, strerror(errno));
		rc = -1;
	}
	if (a->html && report_html_write(run, a->html) < 0) {
		fprintf(stderr, PROG ": %s: %s\n", a->html, strerror(errno));
		rc = -1;
	}
	if (a->write_expectations && run->gone_during) {
		fprintf(stderr, PROG ": %s not written: the run stopped before its end\n",
		        a->write_expectations);
	} else if (a->write_expectations) {
		if (report_expectations_write(run, a->write_expectations) < 0) {
			fprintf(stderr, PROG ": %s: %s\n", a->write_expectations, strerror(errno));
			rc = -1;
		} else {
			printf("Expectations: %zu known failures written to %s\n",
			       run->counts[CONF_FAIL] + run->counts[CONF_NON_STRICT] +
			               run->counts[CONF_INFO] + run->counts[CONF_XFAIL],
			       a->write_expectations);
		}
	}
	return rc;
}

/* The installed cases, found from the binary's own path (a moved install tree still works):
 * into buf, or NULL when that directory does not exist. */
static const char *installed_cases(char *buf, size_t bufsz)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	char *slash;
	struct stat st;

	if (CLAWPAIR_CASES_INSTALLED[0] == '/') {
		snprintf(buf, bufsz, "%s", CLAWPAIR_CASES_INSTALLED);
	} else {
		if (n <= 0)
			return NULL;
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (!slash)
			return NULL;
		*slash = '\0';
		if ((size_t)snprintf(buf, bufsz, "%s/%s", exe, CLAWPAIR_CASES_INSTALLED) >= bufsz)
			return NULL;
	}
	return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? buf : NULL;
}

/* --cases-dir, $CLAWPAIR_CASES_DIR, the installed cases, the source tree's. */
static const char *cases_dir(const struct args *a, char *buf, size_t bufsz)
{
	const char *env = getenv("CLAWPAIR_CASES_DIR"), *inst;

	if (a->cases_dir)
		return a->cases_dir;
	if (env && *env)
		return env;
	inst = installed_cases(buf, bufsz);
	return inst ? inst : CLAWPAIR_CASES_DIR;
}

/* Every report path, before anything runs: a path that cannot be written would otherwise be
 * found only after the whole run. Returns 0, or -1 after saying which. */
static int check_outputs(const struct args *a)
{
	const char *names[] = {"--json", "--junit", "--html", "--write-expectations"};
	const char *paths[] = {a->json, a->list ? NULL : a->junit, a->list ? NULL : a->html,
	                       a->list ? NULL : a->write_expectations};
	size_t n = sizeof paths / sizeof paths[0];

	for (size_t i = 0; i < n; i++) {
		if (!paths[i])
			continue;
		for (size_t j = 0; j < i; j++) {
			if (paths[j] && !strcmp(paths[i], paths[j])) {
				fprintf(stderr, PROG ": %s and %s both write %s\n", names[j],
				        names[i], paths[i]);
				return -1;
			}
		}
		if (report_check_writable(paths[i]) < 0) {
			fprintf(stderr, PROG ": cannot write %s %s: %s\n", names[i], paths[i],
			        strerror(errno));
			return -1;
		}
	}
	return 0;
}

static struct conf_selection selection_of(const struct args *a)
{
	return (struct conf_selection){.inc = a->inc,
	                               .ninc = a->ninc,
	                               .sec = a->sec,
	                               .nsec = a->nsec,
	                               .exc = a->exc,
	                               .nexc = a->nexc};
}

/* The cases --cases, --section and --exclude select, in run order: *sel (malloc'd). Returns 0,
 * or -1. */
static int select_cases(const struct conf_cases *cases, const struct args *a,
                        const struct conf_case ***sel, size_t *nsel)
{
	struct conf_selection cs = selection_of(a);

	*nsel = 0;
	*sel = calloc(cases->n ? cases->n : 1, sizeof **sel);
	if (!*sel)
		return -1;
	for (size_t i = 0; i < cases->n; i++) {
		if (conf_case_selected(&cases->v[i], &cs))
			(*sel)[(*nsel)++] = &cases->v[i];
	}
	if (*nsel == 0) {
		fprintf(stderr, PROG ": no case matches the selection\n");
		return -1;
	}
	return 0;
}

/* Checks each selected case as the interpreter will take it (conf_case_check); a broken one gets
 * its reason in invalid, and is said on stderr. Returns how many are broken. */
static size_t validate_cases(struct conf_cases *cases, const struct args *a)
{
	struct conf_options o = {.timeout_scale = 1};
	struct conf_selection cs = selection_of(a);
	size_t bad = 0;
	char err[512];

	for (size_t i = 0; i < cases->n; i++) {
		struct conf_case *c = &cases->v[i];

		if (!conf_case_selected(c, &cs))
			continue;
		if (conf_case_check(c, &o, err, sizeof err) == 0)
			continue;
		c->invalid = strdup(err);
		fprintf(stderr, PROG ": broken case %s (%s): %s\n", c->id, c->path, err);
		bad++;
	}
	return bad;
}

/* spec/requirements.tsv for the cases of dir: installed next to them, or in the source tree.
 * Each case gets its section; without the file --section cannot work. Returns 0, or -1. */
static int load_sections(struct conf_cases *cases, const char *dir, const struct args *a)
{
	static const char *const rel[] = {"/../requirements.tsv", "/../../spec/requirements.tsv"};
	char path[PATH_MAX], err[512];

	for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
		if ((size_t)snprintf(path, sizeof path, "%s%s", dir, rel[i]) >= sizeof path ||
		    access(path, R_OK) != 0)
			continue;
		if (conf_cases_sections(cases, path, err, sizeof err) == 0)
			return 0;
		fprintf(stderr, PROG ": %s\n", err);
		return a->nsec ? -1 : 0;
	}
	if (!a->nsec)
		return 0;
	fprintf(stderr, PROG ": --section: no requirements.tsv next to %s\n", dir);
	return -1;
}

/* --list: a line per case, and with --json FILE the same as JSON. Returns the exit status. */
static int list_cases(const struct conf_case **sel, size_t nsel, const struct args *a,
                      size_t broken)
{
	for (size_t i = 0; i < nsel; i++)
		printf("%-52s %-9s %-6s %-5s %s\n", sel[i]->id, sel[i]->requirement, sel[i]->level,
		       sel[i]->section ? sel[i]->section : "", sel[i]->title);
	printf("%zu cases\n", nsel);
	if (a->json && report_list_write((const struct conf_case *const *)sel, nsel,
	                                 CLAWPAIR_VERSION, a->json) < 0) {
		fprintf(stderr, PROG ": %s: %s\n", a->json, strerror(errno));
		return EXIT_USAGE;
	}
	return broken ? EXIT_USAGE : 0;
}

/* The runner's options from the command line. */
static void runner_options(const struct args *a, struct conf_options *o, unsigned *xff_next,
                           const struct conf_expectations *expect)
{
	o->url = a->url;
	o->tls_fingerprint = a->tls_fingerprint;
	o->token = a->token;
	o->xff_counter = xff_next;
	o->timeout_scale = a->timeout_scale;
	o->restart_cmd = a->restart_cmd;
	o->pending_ttl_ms = a->pending_ttl_ms;
	o->max_pending = (unsigned)a->max_pending;
	o->slow = a->slow;
	o->tick_interval_ms = a->tick_interval_ms;
	o->all_frames = a->all_frames;
	o->show_secrets = a->show_secrets;
	o->expectations = expect;
}

/* Cases mostly wait on the gateway (a whole run uses well under a second of CPU), so the cores
 * do not bound how many can run side by side: four per core, at most 16, keeps a 2-core CI
 * runner busy without crowding the gateway. */
#define JOBS_PER_CORE 4
#define DEFAULT_JOBS_MAX 16

static unsigned default_jobs(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN) * JOBS_PER_CORE;

	return n < 1 ? 1 : n > DEFAULT_JOBS_MAX ? DEFAULT_JOBS_MAX : (unsigned)n;
}

#define MAX_PROPS 24

/* The options of the run, as the reports show them. Values live in vals. */
struct props {
	struct conf_property v[MAX_PROPS];
	char vals[MAX_PROPS][256];
	size_t n;
};

__attribute__((format(printf, 3, 4))) static void prop(struct props *p, const char *name,
                                                       const char *fmt, ...)
{
	va_list ap;

	if (p->n == MAX_PROPS)
		return;
	va_start(ap, fmt);
	vsnprintf(p->vals[p->n], sizeof p->vals[p->n], fmt, ap);
	va_end(ap);
	p->v[p->n].name = name;
	p->v[p->n].value = p->vals[p->n];
	p->n++;
}

static void prop_list(struct props *p, const char *name, const char *const *v, size_t n)
{
	char buf[256];
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && len < sizeof buf; i++)
		len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i ? " " : "", v[i]);
	if (n)
		prop(p, name, "%s", buf);
}

/* Every option that changes what runs or how it is judged; the token never. */
static void run_props(const struct args *a, struct props *p)
{
	memset(p, 0, sizeof *p);
	prop(p, "--remote-via", "%s", a->remote_via);
	prop(p, "--timeout-scale", "%g", a->timeout_scale);
	prop(p, "--case-timeout", "%g", (double)a->case_timeout_ms / 1000.0);
	prop(p, "--jobs", "%u", a->jobs ? a->jobs : default_jobs());
	prop(p, "--strict", "%s", a->strict ? "true" : "false");
	prop_list(p, "--cases", a->inc, a->ninc);
	prop_list(p, "--section", a->sec, a->nsec);
	prop_list(p, "--exclude", a->exc, a->nexc);
	if (a->expectations)
		prop(p, "--expectations", "%s", a->expectations);
	if (a->tls_fingerprint)
		prop(p, "--tls-fingerprint", "%s", a->tls_fingerprint);
	if (a->pending_ttl_ms)
		prop(p, "--pending-ttl-ms", "%lld", a->pending_ttl_ms);
	if (a->max_pending)
		prop(p, "--max-pending", "%ld", a->max_pending);
	if (a->tick_interval_ms)
		prop(p, "--tick-interval-ms", "%lld", a->tick_interval_ms);
	if (a->restart_cmd)
		prop(p, "--restart-cmd", "given");
	if (a->slow)
		prop(p, "--slow", "true");
	if (a->fail_fast)
		prop(p, "--fail-fast", "true");
	if (a->all_frames)
		prop(p, "--all-frames", "true");
	if (a->show_secrets)
		prop(p, "--show-secrets", "true");
}

/* Plays the selected cases and writes the reports. Returns the exit status. */
static int run(const struct args *a, struct conf_options *o, const struct conf_case **sel,
               size_t nsel)
{
	struct conf_run run = {0};
	struct conf_console console = {.verbose = a->verbose, .quiet = a->quiet};
	struct conf_schedule sc = {
	        .o = o,
	        .jobs = a->jobs ? a->jobs : default_jobs(),
	        .case_timeout_ms = (uint64_t)((double)a->case_timeout_ms * a->timeout_scale),
	        .fail_fast = a->fail_fast,
	        .strict = a->strict,
	        .on_result = conf_console_result,
	        .user = &console};
	char started[32];
	struct props props;
	int status;

	run_props(a, &props);
	run.props = props.v;
	run.n_props = props.n;
	run.results = calloc(nsel, sizeof *run.results);
	if (!run.results) {
		fprintf(stderr, PROG ": out of memory\n");
		return EXIT_USAGE;
	}
	run.started_ms = now_iso(started, sizeof started);
	run.tool_version = CLAWPAIR_VERSION;
	run.gateway_url = a->url;
	run.started = started;
	run.strict = a->strict;
	if (!a->quiet)
		printf(PROG " %s: %zu cases against %s\n", CLAWPAIR_VERSION, nsel, a->url);
	if (o->not_local)
		printf(PROG ": %s; the cases with a local client SKIP (conformance/README.md, "
		            "\"From another host or container\")\n",
		       o->not_local);
	conf_schedule_run(&sc, sel, nsel, &run);
	conf_run_stale_patterns(&run, o->expectations);
	if (run.gone_during)
		fprintf(stderr,
		        PROG ": gateway went away during %s: %s no longer accepts a "
		             "connection; the cases from then on are NOT-RUN\n",
		        run.gone_during, a->url);
	status = conf_run_exit_status(&run);
	conf_console_summary(&console, &run);
	if (write_reports(a, &run) < 0 && status == 0)
		status = 1;
	for (size_t i = 0; i < run.n; i++)
		conf_result_finish(&run.results[i]);
	free(run.results);
	return status;
}

int main(int argc, char **argv)
{
	struct args a;
	struct conf_cases cases = {0};
	struct conf_expectations expect = {0};
	struct conf_options o = {0};
	const struct conf_case **sel = NULL;
	char err[512], nsbuf[64], urlbuf[512], dirbuf[PATH_MAX];
	const char *dir;
	unsigned xff_next = 2;
	size_t nsel = 0;
	int status;

	/* the other direction: the runner plays the gateway and grades a client (client_mode.c) */
	if (argc > 1 && !strcmp(argv[1], "client"))
		return client_mode_main(argc - 1, argv + 1);
	setvbuf(stdout, NULL, _IOLBF, 0);
	status = parse_args(argc, argv, &a);
	if (status >= 0)
		goto out;
	status = EXIT_USAGE;
	if (check_outputs(&a) < 0)
		goto out;
	dir = cases_dir(&a, dirbuf, sizeof dirbuf);
	if (conf_cases_load(dir, &cases, err, sizeof err) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		goto out;
	}
	if (load_sections(&cases, dir, &a) < 0 || select_cases(&cases, &a, &sel, &nsel) < 0)
		goto out;
	if (a.list) {
		status = list_cases(sel, nsel, &a, validate_cases(&cases, &a));
		goto out;
	}
	if (parse_remote(a.remote_via, &o, &xff_next, nsbuf, sizeof nsbuf, urlbuf, sizeof urlbuf) <
	    0)
		goto out;
	if (a.expectations &&
	    (conf_expectations_load(a.expectations, &expect, err, sizeof err) < 0 ||
	     conf_expectations_check(&expect, a.expectations, &cases, err, sizeof err) < 0)) {
		fprintf(stderr, PROG ": %s\n", err);
		goto out;
	}
	validate_cases(&cases, &a);
	if (identity_global_init() < 0) {
		fprintf(stderr, PROG ": crypto library init failed\n");
		goto out;
	}
	status = conf_probe(a.url, a.tls_fingerprint, a.token, a.timeout_scale, &o.not_local);
	if (status)
		goto out;
	runner_options(&a, &o, &xff_next, &expect);
	status = run(&a, &o, sel, nsel);
out:
	free(sel);
	conf_expectations_finish(&expect);
	conf_cases_finish(&cases);
	free(a.token);
	return status;
}
