/* main.c: clawpair-conformance: checks a gateway against the clawpair spec, case by case, and
 * writes text, JSON, JUnit and HTML reports. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "conformance.h"
#include "identity.h"
#include "clock.h"
#include "connect_build.h"
#include "runner.h"
#include "strbuf.h"

#ifndef CLAWPAIR_VERSION
#define CLAWPAIR_VERSION "0"
#endif
#ifndef CLAWPAIR_CASES_DIR
#define CLAWPAIR_CASES_DIR "conformance/cases"
#endif

#define EXIT_USAGE 2
#define MAX_PATTERNS 64
#define PROBE_TIMEOUT_MS 5000

struct cli {
	const char *url, *token, *remote_via, *junit, *json, *html, *expectations;
	const char *restart_cmd, *cases_dir;
	const char *inc[MAX_PATTERNS], *exc[MAX_PATTERNS];
	size_t ninc, nexc;
	bool list, strict, slow, verbose, all_frames;
	double timeout_scale;
	long long pending_ttl_ms, tick_interval_ms;
	long max_pending;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: clawpair-conformance --url ws://HOST:PORT --token T [options]\n"
	        "Checks a pairing gateway against the clawpair spec, case by case.\n"
	        "\n"
	        "  --url URL              the gateway (required unless --list)\n"
	        "  --token T              the gateway's shared token (or env CLAWPAIR_TOKEN)\n"
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
	        "                         with a reason): reported as XFAIL, not failing the run\n"
	        "  --timeout-scale X      multiply every timeout by X (slow gateways, valgrind)\n"
	        "  --restart-cmd CMD      shell command that restarts the gateway (same address and\n"
	        "                         state); persistence cases SKIP without it\n"
	        "  --pending-ttl-ms N     the gateway's pending TTL; expiry cases SKIP without it\n"
	        "  --max-pending N        the gateway's total pending cap, when it was started small\n"
	        "  --tick-interval-ms N   the gateway's tick interval; tick cases run when N <= 10000\n"
	        "  --slow                 also run tick cases against a 30 s tick interval\n"
	        "  --cases-dir DIR        case files (default: env CLAWPAIR_CASES_DIR, else %s)\n"
	        "  --all-frames           keep the frames of passing cases in the reports\n"
	        "  -v, --verbose          print the frames of failing cases\n"
	        "  --version, --help\n"
	        "\n"
	        "Verdicts: PASS, FAIL (a MUST failed), NON-STRICT (a SHOULD failed), INFO (a MAY\n"
	        "failed), XFAIL (failed as the expectations file says), SKIP.\n"
	        "Exit status: 0 no FAIL (and with --strict no NON-STRICT), 1 otherwise, 2 bad usage\n"
	        "or an unreachable gateway.\n",
	        CLAWPAIR_CASES_DIR);
}

static int parse_args(int argc, char **argv, struct cli *c)
{
	enum {
		O_URL = 256,
		O_TOKEN,
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
		O_VERSION,
		O_HELP
	};
	static const struct option opts[] = {
	        {"url", required_argument, NULL, O_URL},
	        {"token", required_argument, NULL, O_TOKEN},
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
	        {"verbose", no_argument, NULL, 'v'},
	        {"version", no_argument, NULL, O_VERSION},
	        {"help", no_argument, NULL, O_HELP},
	        {NULL, 0, NULL, 0},
	};
	int ch;
	char *end;

	memset(c, 0, sizeof *c);
	c->timeout_scale = 1.0;
	c->remote_via = "xff:10.77.0.2";
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (ch) {
		case O_URL:
			c->url = optarg;
			break;
		case O_TOKEN:
			c->token = optarg;
			break;
		case O_REMOTE:
			c->remote_via = optarg;
			break;
		case O_CASES:
		case O_EXCLUDE:
			if ((ch == O_CASES ? c->ninc : c->nexc) == MAX_PATTERNS) {
				fprintf(stderr, "clawpair-conformance: too many patterns\n");
				return -1;
			}
			if (ch == O_CASES)
				c->inc[c->ninc++] = optarg;
			else
				c->exc[c->nexc++] = optarg;
			break;
		case O_LIST:
			c->list = true;
			break;
		case O_STRICT:
			c->strict = true;
			break;
		case O_JSON:
			c->json = optarg;
			break;
		case O_JUNIT:
			c->junit = optarg;
			break;
		case O_HTML:
			c->html = optarg;
			break;
		case O_EXPECT:
			c->expectations = optarg;
			break;
		case O_SCALE:
			errno = 0;
			c->timeout_scale = strtod(optarg, &end);
			if (errno || *end || !(c->timeout_scale > 0 && c->timeout_scale <= 1000)) {
				fprintf(stderr, "clawpair-conformance: bad --timeout-scale %s\n",
				        optarg);
				return -1;
			}
			break;
		case O_RESTART:
			c->restart_cmd = optarg;
			break;
		case O_TTL:
			errno = 0;
			c->pending_ttl_ms = strtoll(optarg, &end, 10);
			if (errno || *end || c->pending_ttl_ms <= 0) {
				fprintf(stderr, "clawpair-conformance: bad --pending-ttl-ms %s\n",
				        optarg);
				return -1;
			}
			break;
		case O_MAXP:
			errno = 0;
			c->max_pending = strtol(optarg, &end, 10);
			if (errno || *end || c->max_pending <= 0) {
				fprintf(stderr, "clawpair-conformance: bad --max-pending %s\n",
				        optarg);
				return -1;
			}
			break;
		case O_TICK:
			errno = 0;
			c->tick_interval_ms = strtoll(optarg, &end, 10);
			if (errno || *end || c->tick_interval_ms <= 0) {
				fprintf(stderr, "clawpair-conformance: bad --tick-interval-ms %s\n",
				        optarg);
				return -1;
			}
			break;
		case O_SLOW:
			c->slow = true;
			break;
		case O_DIR:
			c->cases_dir = optarg;
			break;
		case O_ALL:
			c->all_frames = true;
			break;
		case 'v':
			c->verbose = true;
			break;
		case O_VERSION:
			printf("clawpair-conformance %s\n", CLAWPAIR_VERSION);
			exit(0);
		case O_HELP:
			usage(stdout);
			exit(0);
		default:
			fprintf(stderr, "clawpair-conformance: unknown or incomplete option %s\n",
			        argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "clawpair-conformance: unexpected argument %s\n", argv[optind]);
		return -1;
	}
	if (!c->token)
		c->token = getenv("CLAWPAIR_TOKEN");
	if (!c->list && (!c->url || !c->token)) {
		fprintf(stderr, "clawpair-conformance: --url and --token are required\n");
		return -1;
	}
	if (c->url && strncmp(c->url, "ws://", 5) != 0 && strncmp(c->url, "wss://", 6) != 0) {
		fprintf(stderr, "clawpair-conformance: --url must be ws://HOST:PORT\n");
		return -1;
	}
	return 0;
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
			        "clawpair-conformance: --remote-via xff: takes an address "
			        "10.77.0.N (N 2..254): each remote actor gets the next one\n");
			return -1;
		}
		o->remote_via = CONF_REMOTE_XFF;
		*xff_first = d;
		return 0;
	}
	if (!strncmp(s, "netns:", 6) && !strncmp(s + 6, "ws://", 5)) {
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
	fprintf(stderr, "clawpair-conformance: --remote-via must be xff:ADDR, netns:URL or none\n");
	return -1;
}

/* A plain connect: WebSocket, challenge, and an operator connect with the token. */
static int probe(const char *url, const char *token, double scale)
{
	struct client_ctx *ctx = client_ctx_create(NULL);
	struct client_conn_opts co = {.url = url,
	                              .connect_timeout_ms = (int)(PROBE_TIMEOUT_MS * scale)};
	struct client_conn *conn = NULL;
	struct client_item it = {0};
	struct connect_spec spec;
	char err[256], nonce[64] = "";
	cJSON *params = NULL, *req = NULL, *res = NULL;
	char *text = NULL;
	int rc = -1;
	uint64_t deadline;

	if (!ctx) {
		fprintf(stderr, "clawpair-conformance: out of memory\n");
		return -1;
	}
	if (client_connect(ctx, &co, &conn, err, sizeof err) < 0) {
		fprintf(stderr, "clawpair-conformance: cannot reach the gateway at %s: %s\n", url,
		        err);
		goto out;
	}
	deadline = client_now_ms() + (uint64_t)(PROBE_TIMEOUT_MS * scale);
	while (!nonce[0] && client_now_ms() < deadline &&
	       client_next(conn, (int)(deadline - client_now_ms()), &it) == 1) {
		cJSON *j = it.kind == CLIENT_ITEM_TEXT ? cJSON_Parse(it.text) : NULL;
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(
		        cJSON_GetObjectItemCaseSensitive(j, "payload"), "nonce");
		bool closed = it.kind == CLIENT_ITEM_CLOSE;

		if (cJSON_IsString(n))
			snprintf(nonce, sizeof nonce, "%s", n->valuestring);
		cJSON_Delete(j);
		client_item_finish(&it);
		if (closed)
			break;
	}
	if (!nonce[0]) {
		fprintf(stderr, "clawpair-conformance: %s sent no connect.challenge\n", url);
		goto out;
	}
	connect_spec_operator(&spec);
	spec.token = token;
	params = connect_params_build(&spec, nonce, clock_wall_ms());
	req = cJSON_CreateObject();
	if (!params || !req)
		goto out;
	cJSON_AddStringToObject(req, "type", "req");
	cJSON_AddStringToObject(req, "id", "probe");
	cJSON_AddStringToObject(req, "method", "connect");
	cJSON_AddItemToObject(req, "params", params);
	params = NULL;
	text = cJSON_PrintUnformatted(req);
	if (!text || client_send_text(conn, text) < 0)
		goto out;
	while (client_now_ms() < deadline &&
	       client_next(conn, (int)(deadline - client_now_ms()), &it) == 1) {
		if (it.kind == CLIENT_ITEM_CLOSE) {
			fprintf(stderr,
			        "clawpair-conformance: the gateway closed the probe (%d %s)\n",
			        it.close_code, it.close_reason);
			client_item_finish(&it);
			goto out;
		}
		res = cJSON_Parse(it.text);
		client_item_finish(&it);
		if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(res, "id")) &&
		    !strcmp(cJSON_GetObjectItemCaseSensitive(res, "id")->valuestring, "probe"))
			break;
		cJSON_Delete(res);
		res = NULL;
	}
	if (!res) {
		fprintf(stderr, "clawpair-conformance: no answer to the probe's connect\n");
		goto out;
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok"))) {
		char *t = cJSON_PrintUnformatted(res);

		fprintf(stderr,
		        "clawpair-conformance: the gateway refused an operator connect with "
		        "this token: %s\n",
		        t ? t : "?");
		free(t);
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(res);
	cJSON_Delete(req);
	cJSON_Delete(params);
	free(text);
	client_conn_destroy(conn);
	client_ctx_destroy(ctx);
	return rc;
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

static int write_reports(const struct cli *cli, const struct conf_run *run)
{
	int rc = 0;

	if (cli->json && report_json_write(run, cli->json) < 0) {
		fprintf(stderr, "clawpair-conformance: %s: %s\n", cli->json, strerror(errno));
		rc = -1;
	}
	if (cli->junit && report_junit_write(run, cli->junit) < 0) {
		fprintf(stderr, "clawpair-conformance: %s: %s\n", cli->junit, strerror(errno));
		rc = -1;
	}
	if (cli->html && report_html_write(run, cli->html) < 0) {
		fprintf(stderr, "clawpair-conformance: %s: %s\n", cli->html, strerror(errno));
		rc = -1;
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct cli cli;
	struct conf_cases cases = {0};
	struct conf_expectations expect = {0};
	struct conf_options o = {0};
	struct conf_run run = {0};
	const struct conf_case **sel = NULL;
	char err[512], started[32], nsbuf[64], urlbuf[512];
	const char *dir;
	unsigned xff_next = 2;
	size_t nsel = 0, i;
	int status = EXIT_USAGE;
	uint64_t t0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (parse_args(argc, argv, &cli) < 0) {
		fprintf(stderr, "Try clawpair-conformance --help\n");
		return EXIT_USAGE;
	}
	dir = cli.cases_dir                  ? cli.cases_dir
	      : getenv("CLAWPAIR_CASES_DIR") ? getenv("CLAWPAIR_CASES_DIR")
	                                     : CLAWPAIR_CASES_DIR;
	if (conf_cases_load(dir, &cases, err, sizeof err) < 0) {
		fprintf(stderr, "clawpair-conformance: %s\n", err);
		return EXIT_USAGE;
	}
	sel = calloc(cases.n, sizeof *sel);
	if (!sel)
		goto out;
	for (i = 0; i < cases.n; i++) {
		if (conf_case_selected(cases.v[i].id, cli.inc, cli.ninc, cli.exc, cli.nexc))
			sel[nsel++] = &cases.v[i];
	}
	if (nsel == 0) {
		fprintf(stderr, "clawpair-conformance: no case matches the selection\n");
		goto out;
	}
	if (cli.list) {
		for (i = 0; i < nsel; i++)
			printf("%-52s %-9s %-6s %s\n", sel[i]->id, sel[i]->requirement,
			       sel[i]->level, sel[i]->title);
		printf("%zu cases\n", nsel);
		status = 0;
		goto out;
	}
	if (parse_remote(cli.remote_via, &o, &xff_next, nsbuf, sizeof nsbuf, urlbuf,
	                 sizeof urlbuf) < 0)
		goto out;
	if (cli.expectations &&
	    conf_expectations_load(cli.expectations, &expect, err, sizeof err) < 0) {
		fprintf(stderr, "clawpair-conformance: %s\n", err);
		goto out;
	}
	if (identity_global_init() < 0) {
		fprintf(stderr, "clawpair-conformance: crypto library init failed\n");
		goto out;
	}
	if (probe(cli.url, cli.token, cli.timeout_scale) < 0)
		goto out;
	o.url = cli.url;
	o.token = cli.token;
	o.xff_counter = &xff_next;
	o.timeout_scale = cli.timeout_scale;
	o.restart_cmd = cli.restart_cmd;
	o.pending_ttl_ms = cli.pending_ttl_ms;
	o.max_pending = (unsigned)cli.max_pending;
	o.slow = cli.slow;
	o.tick_interval_ms = cli.tick_interval_ms;
	o.all_frames = cli.all_frames;
	o.expectations = &expect;

	run.results = calloc(nsel, sizeof *run.results);
	if (!run.results)
		goto out;
	now_iso(started, sizeof started);
	run.tool_version = CLAWPAIR_VERSION;
	run.gateway_url = cli.url;
	run.started = started;
	run.strict = cli.strict;
	printf("clawpair-conformance %s: %zu cases against %s\n", CLAWPAIR_VERSION, nsel, cli.url);
	t0 = client_now_ms();
	for (i = 0; i < nsel; i++) {
		struct conf_result *r = &run.results[i];

		conf_run_case(sel[i], &o, r);
		run.n = i + 1;
		printf("[%3zu/%zu] %-10s %s  (%llu ms)\n", i + 1, nsel,
		       conf_verdict_name(r->verdict), sel[i]->id,
		       (unsigned long long)r->duration_ms);
		if (r->verdict == CONF_SKIP && r->message)
			printf("        skipped: %s\n", r->message);
		else if (r->verdict != CONF_PASS && r->verdict != CONF_SKIP)
			print_failure(r, cli.verbose);
	}
	run.duration_ms = client_now_ms() - t0;
	conf_run_count(&run);
	status = conf_run_exit_status(&run);

	if (run.counts[CONF_FAIL] || run.counts[CONF_NON_STRICT]) {
		printf("\nFailures:\n");
		for (i = 0; i < run.n; i++) {
			const struct conf_result *r = &run.results[i];

			if (r->verdict == CONF_FAIL || r->verdict == CONF_NON_STRICT)
				printf("  %-10s %s: %.300s\n", conf_verdict_name(r->verdict),
				       r->c->id, r->message ? r->message : "");
		}
	}
	printf("\nSummary: %zu cases in %.1f s:", run.n, (double)run.duration_ms / 1000.0);
	for (i = 0; i < CONF_VERDICT__COUNT; i++)
		printf(" %zu %s%s", run.counts[i], conf_verdict_name((enum conf_verdict)i),
		       i + 1 < CONF_VERDICT__COUNT ? "," : "");
	printf("\nVerdict: %s\n", status                        ? "FAILED"
	                          : run.counts[CONF_NON_STRICT] ? "PASSED (NON-STRICT)"
	                                                        : "PASSED");
	if (write_reports(&cli, &run) < 0 && status == 0)
		status = 1;
out:
	for (i = 0; run.results && i < run.n; i++)
		conf_result_finish(&run.results[i]);
	free(run.results);
	free(sel);
	conf_expectations_finish(&expect);
	conf_cases_finish(&cases);
	return status;
}
