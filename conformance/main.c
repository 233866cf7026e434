/* main.c: clawpair-conformance: checks a gateway against the clawpair spec, case by case, and
 * writes text, JSON, JUnit and HTML reports. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "clock.h"
#include "conformance.h"
#include "connect_build.h"
#include "identity.h"
#include "errors.h"
#include "json.h"
#include "liveness.h"
#include "redact.h"
#include "report_util.h"
#include "runner.h"
#include "session.h"
#include "strbuf.h"

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
#define PROBE_TIMEOUT_MS 5000

struct args {
	const char *url, *remote_via, *junit, *json, *html, *expectations, *write_expectations;
	const char *restart_cmd, *cases_dir;
	const char *tls_fingerprint; /* wss://: the gateway's pinned certificate, or NULL */
	char *token;
	const char *inc[MAX_PATTERNS], *exc[MAX_PATTERNS];
	size_t ninc, nexc;
	bool list, strict, slow, verbose, all_frames, show_secrets;
	double timeout_scale;
	long long pending_ttl_ms, tick_interval_ms;
	long max_pending;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: " PROG " --url ws[s]://HOST:PORT --token T [options]\n"
	        "Checks a pairing gateway against the clawpair spec, case by case.\n"
	        "\n"
	        "  --url URL              the gateway (required unless --list)\n"
	        "  --token T              the gateway's shared token (or env " CLI_TOKEN_ENV
	        ", which\n"
	        "                         unlike --token other users do not see in ps)\n"
	        "  --token-file F         read the token from the first line of F\n"
	        "  --tls-fingerprint sha256:HEX\n"
	        "                         wss:// only: accept the gateway's TLS certificate by\n"
	        "                         this SHA-256 fingerprint instead of the system CAs\n"
	        "                         (also env " CLI_TLS_FINGERPRINT_ENV
	        "); every actor pins it\n"
	        "  --remote-via MODE      how remote (non-local) clients are made:\n"
	        "                           xff:10.77.0.2  X-Forwarded-For from 127.0.0.1, one\n"
	        "                                          address per actor from the given one up\n"
	        "                                          (the gateway must trust 127.0.0.1 as a\n"
	        "                                          proxy; default)\n"
	        "                           netns:URL[@NS] connect from network namespace NS (default\n"
	        "                                          cplan) to the gateway at URL\n"
	        "                           none           no remote clients: such cases SKIP\n"
	        "  --cases PATTERN        run only matching cases (id, id prefix or glob; repeatable)\n"
	        "  --exclude PATTERN      skip matching cases (repeatable)\n"
	        "  --list                 print case ids and titles, run nothing\n"
	        "  --strict               SHOULD-level failures (NON-STRICT) fail the run\n"
	        "  --json FILE            JSON report\n"
	        "  --junit FILE           JUnit XML report\n"
	        "  --html FILE            self-contained HTML report\n"
	        "  --expectations FILE    known failures of this implementation (JSON or TSV, each\n"
	        "                         with a reason): reported as XFAIL, not failing the run;\n"
	        "                         a listed case that passes fails the run (the file is\n"
	        "                         stale), an entry that matches no case exits 2\n"
	        "  --write-expectations FILE\n"
	        "                         write this run's failures as an expectations file\n"
	        "  --timeout-scale X      multiply every timeout by X (slow gateways, valgrind)\n"
	        "  --restart-cmd CMD      shell command that restarts the gateway (same address and\n"
	        "                         state); persistence cases SKIP without it\n"
	        "  --pending-ttl-ms N     the gateway's pending TTL; expiry cases SKIP without it\n"
	        "  --max-pending N        the gateway's total pending cap, when it was started small\n"
	        "  --tick-interval-ms N   the gateway's tick interval; tick cases run when N <= 10000\n"
	        "  --slow                 also run tick cases against a 30 s tick interval\n"
	        "  --cases-dir DIR        case files (default: env CLAWPAIR_CASES_DIR, else the\n"
	        "                         installed ones, " CLAWPAIR_CASES_INSTALLED "\n"
	        "                         from the binary's directory, else the source tree's\n"
	        "                         %s)\n"
	        "  --all-frames           keep the frames of passing cases in the reports\n"
	        "  --show-secrets         keep the shared token and the device tokens in the\n"
	        "                         reports and on the console (local debugging only; by\n"
	        "                         default every token reads \"<redacted>\")\n"
	        "  -v, --verbose          print the frames of failing cases\n"
	        "  -h, --help             show this help\n"
	        "  -V, --version          show the version\n"
	        "\n"
	        "Verdicts: PASS, FAIL (a MUST failed), NON-STRICT (a SHOULD failed), INFO (a MAY\n"
	        "failed), XFAIL (failed as the expectations file says), SKIP, ERROR (the case\n"
	        "itself is broken: no verdict on the gateway), NOT-RUN.\n"
	        "Exit status: 0 no FAIL (and with --strict no NON-STRICT), 1 otherwise, 2 bad usage,\n"
	        "an unreachable gateway, a refused TLS certificate, a gateway that went away\n"
	        "during the run (the cases from then on are NOT-RUN), or an ERROR.\n",
	        CLAWPAIR_CASES_DIR);
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
        {"verbose", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
};

static const struct cli_tool tool = {
        .prog = PROG,
        .version = CLAWPAIR_VERSION,
        .usage = usage,
        .options = long_opts,
        .short_options = "v",
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
	case 'v':
		a->verbose = true;
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
	bool from_env;
	const char *fp = cli_tls_fingerprint(c, &from_env);
	bool wss = a->url && strncasecmp(a->url, "wss://", 6) == 0;

	if (!fp || (!wss && from_env) || a->list)
		return 0;
	if (!wss)
		return cli_usage_error(c, "--tls-fingerprint needs a wss:// URL");
	if (client_tls_fingerprint_parse(fp, NULL) < 0)
		return cli_usage_error(c, "bad %s '%s': expected sha256: and 64 hex digits",
		                       from_env ? "$" CLI_TLS_FINGERPRINT_ENV : "--tls-fingerprint",
		                       fp);
	a->tls_fingerprint = fp;
	return 0;
}

/* Parses argv into a. Returns -1 to go on, or the exit status to leave with. */
static int parse_args(int argc, char **argv, struct args *a)
{
	struct cli c;
	int rc;

	memset(a, 0, sizeof *a);
	a->timeout_scale = 1.0;
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

/* Says why the probe's connect did not get hello-ok. */
static void probe_failed(const char *url, const char *token, enum client_session_outcome out,
                         const struct client_session *s)
{
	struct redact red;
	char *t, *shown;

	switch (out) {
	case CLIENT_SESSION_UNREACHABLE:
		if (strstr(client_session_why(s), CLIENT_TLS_MISMATCH))
			fprintf(stderr, PROG ": refusing the gateway: %s\n", client_session_why(s));
		else
			fprintf(stderr, PROG ": cannot reach the gateway at %s: %s\n", url,
			        client_session_why(s));
		break;
	case CLIENT_SESSION_NO_CHALLENGE:
		fprintf(stderr, PROG ": %s sent no connect.challenge\n", url);
		break;
	case CLIENT_SESSION_CLOSED:
		fprintf(stderr, PROG ": the gateway closed the probe (%d %s)\n",
		        client_session_close_code(s), client_session_close_reason(s));
		break;
	case CLIENT_SESSION_REFUSED:
		t = json_print(client_session_frame(s));
		redact_init(&red);
		redact_add(&red, token);
		shown = redact_text(&red, t);
		fprintf(stderr,
		        PROG ": the gateway refused an operator connect with this token: %s\n",
		        shown ? shown : "?");
		redact_finish(&red);
		free(shown);
		free(t);
		break;
	default:
		fprintf(stderr, PROG ": no answer to the probe's connect\n");
		break;
	}
}

/* Whether the probe's session is local (§8.10): a device-less operator with the shared token
 * has the scopes it asks for on a local connection, and none on a remote one (§8.13 TRUST-1).
 * NULL when local or when the gateway does not tell; else why not (static string). */
static const char *not_local(struct client_session *s, int timeout_ms)
{
	cJSON *res = client_session_call(s, "device.pair.list", cJSON_CreateObject(), timeout_ms);
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(res, "error");
	const char *dc = json_get_string(cJSON_GetObjectItemCaseSensitive(err, "details"), "code");
	const char *msg = json_get_string(err, "message");
	const struct cp_err_info *missing = cp_err_info(CP_ERR_MISSING_SCOPE);
	bool remote = (dc && !strcmp(dc, missing->details_code)) ||
	              (msg && !strncmp(msg, "missing scope", 13));

	cJSON_Delete(res);
	return remote ? "the runner's connections are not local to the gateway: its device-less "
	                "operator with the shared token got no scope for device.pair.list (spec "
	                "\u00a78.10, \u00a78.13 TRUST-1)"
	              : NULL;
}

/* A plain connect: WebSocket, challenge, and an operator connect with the token; then whether
 * the runner is local to the gateway (*why_remote). */
static int probe(const char *url, const char *tls_fingerprint, const char *token, double scale,
                 const char **why_remote)
{
	int timeout_ms = (int)(PROBE_TIMEOUT_MS * scale);
	struct client_session_opts so = {.conn = {.url = url, .tls_fingerprint = tls_fingerprint},
	                                 .timeout_ms = timeout_ms,
	                                 .connect_id = "probe"};
	struct client_ctx *ctx = client_ctx_create(NULL);
	struct client_session *s = ctx ? client_session_create(ctx, &so) : NULL;
	struct connect_spec spec;
	enum client_session_outcome out;

	*why_remote = NULL;
	if (!s) {
		fprintf(stderr, PROG ": out of memory\n");
		client_ctx_destroy(ctx);
		return -1;
	}
	connect_spec_operator(&spec);
	spec.token = token;
	out = client_session_connect(s, &spec);
	if (out == CLIENT_SESSION_PENDING)
		out = client_session_await(s, timeout_ms);
	if (out != CLIENT_SESSION_HELLO)
		probe_failed(url, token, out, s);
	else
		*why_remote = not_local(s, timeout_ms);
	client_session_destroy(s);
	client_ctx_destroy(ctx);
	return out == CLIENT_SESSION_HELLO ? 0 : -1;
}

static void now_iso(char *out, size_t outsz)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

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
		print_clean("        ", r->message, 400);
	if (r->expected)
		print_clean("        Expected: ", r->expected, 400);
	if (r->actual)
		print_clean("        Actual:   ", r->actual, 400);
	if (verbose) {
		for (size_t i = 0; i < r->n_frames; i++)
			print_clean("          ", r->frames[i], 400);
	}
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
	const char *paths[] = {a->json, a->junit, a->html, a->write_expectations};
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

/* The cases --cases and --exclude select, in file order: *sel (malloc'd). Returns 0, or -1. */
static int select_cases(const struct conf_cases *cases, const struct args *a,
                        const struct conf_case ***sel, size_t *nsel)
{
	*nsel = 0;
	*sel = calloc(cases->n ? cases->n : 1, sizeof **sel);
	if (!*sel)
		return -1;
	for (size_t i = 0; i < cases->n; i++) {
		if (conf_case_selected(cases->v[i].id, a->inc, a->ninc, a->exc, a->nexc))
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
	size_t bad = 0;
	char err[512];

	for (size_t i = 0; i < cases->n; i++) {
		struct conf_case *c = &cases->v[i];

		if (!conf_case_selected(c->id, a->inc, a->ninc, a->exc, a->nexc))
			continue;
		if (conf_case_check(c, &o, err, sizeof err) == 0)
			continue;
		c->invalid = strdup(err);
		fprintf(stderr, PROG ": broken case %s (%s): %s\n", c->id, c->path, err);
		bad++;
	}
	return bad;
}

static void list_cases(const struct conf_case **sel, size_t nsel)
{
	for (size_t i = 0; i < nsel; i++)
		printf("%-52s %-9s %-6s %s\n", sel[i]->id, sel[i]->requirement, sel[i]->level,
		       sel[i]->title);
	printf("%zu cases\n", nsel);
}

/* A case that did not pass: did the gateway fail it, or go away during it? After it went away
 * the case and every later one are NOT-RUN, and the run stops (exit 2). */
static bool gateway_went_away(const struct conf_case **sel, size_t nsel, size_t i,
                              const struct conf_options *o, struct conf_run *run)
{
	char why[256];
	struct conf_result *r = &run->results[i];

	if (r->verdict == CONF_PASS || r->verdict == CONF_SKIP ||
	    conf_gateway_accepts(o->url, (int)(PROBE_TIMEOUT_MS * o->timeout_scale), why,
	                         sizeof why))
		return false;
	fprintf(stderr,
	        PROG ": gateway went away during %s: %s no longer accepts a connection (%s)\n",
	        sel[i]->id, o->url, why);
	printf("[%3zu/%zu] %-10s %s: the gateway went away during it (%s)\n", i + 1, nsel,
	       conf_verdict_name(CONF_NOT_RUN), sel[i]->id, why);
	conf_result_finish(r);
	r->c = sel[i];
	r->verdict = CONF_NOT_RUN;
	r->message = strdup("not judged: the gateway went away during this case");
	run->gone_during = sel[i]->id;
	for (size_t j = i + 1; j < nsel; j++) {
		struct conf_result *rest = &run->results[j];
		size_t n = strlen(sel[i]->id) + 64;

		conf_result_finish(rest);
		rest->c = sel[j];
		rest->verdict = CONF_NOT_RUN;
		rest->message = malloc(n);
		if (rest->message)
			snprintf(rest->message, n, "not run: the gateway went away during %s",
			         sel[i]->id);
	}
	run->n = nsel;
	if (nsel > i + 1)
		printf("          %zu more cases not run\n", nsel - i - 1);
	return true;
}

/* Runs each case and prints its verdict as it comes. run->results holds nsel entries. */
static void run_cases(const struct conf_case **sel, size_t nsel, const struct conf_options *o,
                      bool verbose, struct conf_run *run)
{
	uint64_t t0 = clock_mono_ms();

	for (size_t i = 0; i < nsel; i++) {
		struct conf_result *r = &run->results[i];

		conf_run_case(sel[i], o, r);
		run->n = i + 1;
		if (gateway_went_away(sel, nsel, i, o, run))
			break;
		printf("[%3zu/%zu] %-10s %s  (%llu ms)\n", i + 1, nsel,
		       conf_verdict_name(r->verdict), sel[i]->id,
		       (unsigned long long)r->duration_ms);
		if (r->stale)
			printf("        %s\n", r->message);
		else if (r->verdict == CONF_SKIP && r->message)
			printf("        skipped: %s\n", r->message);
		else if (r->verdict != CONF_PASS && r->verdict != CONF_SKIP)
			print_failure(r, verbose);
	}
	run->duration_ms = clock_mono_ms() - t0;
	conf_run_count(run);
}

static void print_summary(const struct conf_run *run, int status)
{
	size_t i;

	if (run->counts[CONF_FAIL] || run->counts[CONF_NON_STRICT] || run->counts[CONF_ERROR] ||
	    run->stale) {
		printf("\nFailures:\n");
		for (i = 0; i < run->n; i++) {
			const struct conf_result *r = &run->results[i];

			if (r->stale)
				printf("  %-10s %s: %.300s\n", "PASS", r->c->id, r->message);
			else if (r->verdict == CONF_FAIL || r->verdict == CONF_NON_STRICT ||
			         r->verdict == CONF_ERROR)
				printf("  %-10s %s: %.300s\n", conf_verdict_name(r->verdict),
				       r->c->id, r->message ? r->message : "");
		}
	}
	printf("\nSummary: %zu cases in %.1f s:", run->n, (double)run->duration_ms / 1000.0);
	for (i = 0; i < CONF_VERDICT__COUNT; i++)
		printf(" %zu %s%s", run->counts[i], conf_verdict_name((enum conf_verdict)i),
		       i + 1 < CONF_VERDICT__COUNT ? "," : "");
	if (run->stale)
		printf("; %zu listed as known failures but passed", run->stale);
	if (run->gone_during)
		printf("\nVerdict: STOPPED: the gateway went away during %s\n", run->gone_during);
	else if (run->counts[CONF_ERROR])
		printf("\nVerdict: ERROR: %zu broken cases: no verdict on the gateway for them\n",
		       run->counts[CONF_ERROR]);
	else
		printf("\nVerdict: %s\n", status                         ? "FAILED"
		                          : run->counts[CONF_NON_STRICT] ? "PASSED (NON-STRICT)"
		                                                         : "PASSED");
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

int main(int argc, char **argv)
{
	struct args a;
	struct conf_cases cases = {0};
	struct conf_expectations expect = {0};
	struct conf_options o = {0};
	struct conf_run run = {0};
	const struct conf_case **sel = NULL;
	char err[512], started[32], nsbuf[64], urlbuf[512], dirbuf[PATH_MAX];
	const char *dir;
	unsigned xff_next = 2;
	size_t nsel = 0, i;
	int status;

	setvbuf(stdout, NULL, _IOLBF, 0);
	status = parse_args(argc, argv, &a);
	if (status >= 0)
		goto out;
	status = EXIT_USAGE;
	if (!a.list && check_outputs(&a) < 0)
		goto out;
	dir = cases_dir(&a, dirbuf, sizeof dirbuf);
	if (conf_cases_load(dir, &cases, err, sizeof err) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		goto out;
	}
	if (select_cases(&cases, &a, &sel, &nsel) < 0)
		goto out;
	if (a.list) {
		size_t bad = validate_cases(&cases, &a);

		list_cases(sel, nsel);
		status = bad ? EXIT_USAGE : 0;
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
	if (probe(a.url, a.tls_fingerprint, a.token, a.timeout_scale, &o.not_local) < 0)
		goto out;
	runner_options(&a, &o, &xff_next, &expect);
	if (o.not_local)
		printf(PROG ": %s; the cases with a local client SKIP (conformance/README.md, "
		            "\"From another host or container\")\n",
		       o.not_local);
	run.results = calloc(nsel, sizeof *run.results);
	if (!run.results)
		goto out;
	now_iso(started, sizeof started);
	run.tool_version = CLAWPAIR_VERSION;
	run.gateway_url = a.url;
	run.started = started;
	run.strict = a.strict;
	printf(PROG " %s: %zu cases against %s\n", CLAWPAIR_VERSION, nsel, a.url);
	run_cases(sel, nsel, &o, a.verbose, &run);
	status = conf_run_exit_status(&run);
	print_summary(&run, status);
	if (write_reports(&a, &run) < 0 && status == 0)
		status = 1;
out:
	for (i = 0; run.results && i < run.n; i++)
		conf_result_finish(&run.results[i]);
	free(run.results);
	free(sel);
	conf_expectations_finish(&expect);
	conf_cases_finish(&cases);
	free(a.token);
	return status;
}
