/* client_mode.c: `clawpair-conformance client`: listens as a gateway, starts the client under
 * test for each case (--exec) or waits for it, plays the case's script (fakegw), grades what
 * the client did (fakegw_grade) and writes the same reports as the gateway mode. */
#include "client_mode.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "client_exec.h"
#include "clock.h"
#include "conformance.h"
#include "console.h"
#include "fakegw.h"
#include "fakegw_grade.h"
#include "fakegw_lws.h"
#include "identity.h"
#include "json.h"
#include "random.h"
#include "redact.h"
#include "report_util.h"
#include "strbuf.h"

#ifndef CLAWPAIR_VERSION
#define CLAWPAIR_VERSION "0"
#endif
#ifndef CLAWPAIR_CLIENT_CASES_DIR
#define CLAWPAIR_CLIENT_CASES_DIR "conformance/client-cases"
#endif

#define PROG "clawpair-conformance client"
#define MAX_PATTERNS 64
#define MAX_CLIENTS 8
#define DEFAULT_HOLD_MS 15000
#define DEFAULT_WAIT_S 60
#define DEFAULT_WINDOW_MS 3000
/* a stopped client gets this long to close its socket before SIGKILL */
#define STOP_GRACE_MS 1000
#define LOG_TAIL_LINES 12
#define FRAME_LINE_MAX 300

/* SIGINT or SIGTERM: the case in progress ends, its clients are stopped, the rest NOT-RUN (the
 * one piece of state a signal handler needs; client_mode_main is this mode's main) */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

struct args {
	const char *listen, *exec, *json, *junit, *html, *expectations, *write_expectations;
	const char *cases_dir;
	char *token;
	const char *inc[MAX_PATTERNS], *exc[MAX_PATTERNS];
	size_t ninc, nexc;
	bool list, strict, verbose, quiet, show_secrets, all_frames;
	bool token_made; /* no token was given: a random one */
	uint64_t hold_ms, wait_ms;
	double timeout_scale;
};

static void usage(FILE *f)
{
	fputs("Usage: " PROG " [--exec 'CMD'] [options]\n"
	      "Plays the gateway and grades a pairing client (a node) against the client\n"
	      "requirements of spec/pairing.md section 10, case by case.\n"
	      "\n"
	      "  --listen HOST:PORT     where to listen (default 127.0.0.1:0, a free port); the\n"
	      "                         URL and token to give the client are printed first\n"
	      "  --exec CMD             start the client for each case with `sh -c CMD`, stop it\n"
	      "                         at the case's end; placeholders (shell-quoted): {url}\n"
	      "                         {host} {port} {token} {token_file} (a mode-0600 file\n"
	      "                         holding it)\n"
	      "                         {state_dir} (empty, the client's own per case) {client}\n"
	      "                         (1.. when a case runs several); without --exec the\n"
	      "                         runner waits for a client to connect by itself, and the\n"
	      "                         cases that need a restart or several clients SKIP\n"
	      "  --token T              the shared token to hand the client (or --token-file F,\n"
	      "                         or env " CLI_TOKEN_ENV "; default: a random one)\n"
	      "  --hold-ms N            how long a client must hold a pending connect\n"
	      "                         (CLIENT-5; default 15000); also the pending hold of the\n"
	      "                         timeout-retry case (CLIENT-15)\n"
	      "  --wait S               how long each case waits for the client's first\n"
	      "                         connect request (default 60); the case's\n"
	      "                         times run from that connect\n"
	      "  --cases PATTERN        run only matching cases (repeatable; a group, a\n"
	      "                         requirement such as CLIENT-8, an id prefix, a glob)\n"
	      "  --exclude PATTERN      skip matching cases (repeatable)\n"
	      "  --list                 print the cases, run nothing (with --json FILE also\n"
	      "                         there, as the gateway mode's list)\n"
	      "  --strict               SHOULD-level failures (NON-STRICT) fail the run\n"
	      "  --json FILE            JSON report (conformance/schema/report.schema.json)\n"
	      "  --junit FILE           JUnit XML report\n"
	      "  --html FILE            self-contained HTML report\n"
	      "  --expectations FILE    known failures of this client (JSON or TSV, each with a\n"
	      "                         reason): XFAIL; a listed case that passes fails the run\n"
	      "  --write-expectations FILE\n"
	      "                         write this run's failures as an expectations file\n"
	      "  --timeout-scale X      multiply the cases' times by X (slow machines)\n"
	      "  --cases-dir DIR        the client cases (default: env CLAWPAIR_CLIENT_CASES_DIR,\n"
	      "                         else " CLAWPAIR_CLIENT_CASES_DIR ")\n"
	      "  --all-frames           keep the frames of passing cases in the reports\n"
	      "  --show-secrets         keep the tokens in the reports\n"
	      "  -v, --verbose          print the frames of failing cases\n"
	      "  -q, --quiet            print only what fails the run, and the summary\n"
	      "  -h, --help             show this help\n"
	      "  -V, --version          show the version\n"
	      "\n"
	      "Verdicts and exit status as in the gateway mode: 0 nothing failed, 1 a FAIL (or\n"
	      "NON-STRICT under --strict) or a stale known failure, 2 bad usage, a port that\n"
	      "cannot be opened, an unwritable report, a broken case, or SIGINT/SIGTERM (the\n"
	      "clients are stopped, the cases left NOT-RUN).\n",
	      f);
}

enum {
	O_LISTEN = 256,
	O_EXEC,
	O_CASES,
	O_EXCLUDE,
	O_LIST,
	O_STRICT,
	O_JSON,
	O_JUNIT,
	O_HTML,
	O_EXPECT,
	O_WRITE_EXPECT,
	O_SCALE,
	O_DIR,
	O_HOLD,
	O_WAIT,
	O_ALL,
	O_SECRETS,
};

static const struct option long_opts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"exec", required_argument, NULL, O_EXEC},
        {"cases", required_argument, NULL, O_CASES},
        {"exclude", required_argument, NULL, O_EXCLUDE},
        {"list", no_argument, NULL, O_LIST},
        {"strict", no_argument, NULL, O_STRICT},
        {"json", required_argument, NULL, O_JSON},
        {"junit", required_argument, NULL, O_JUNIT},
        {"html", required_argument, NULL, O_HTML},
        {"expectations", required_argument, NULL, O_EXPECT},
        {"write-expectations", required_argument, NULL, O_WRITE_EXPECT},
        {"timeout-scale", required_argument, NULL, O_SCALE},
        {"cases-dir", required_argument, NULL, O_DIR},
        {"hold-ms", required_argument, NULL, O_HOLD},
        {"wait", required_argument, NULL, O_WAIT},
        {"all-frames", no_argument, NULL, O_ALL},
        {"show-secrets", no_argument, NULL, O_SECRETS},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
};

static const struct cli_tool tool = {
        .prog = PROG,
        .version = CLAWPAIR_VERSION,
        .usage = usage,
        .options = long_opts,
        .short_options = "vq",
        .token = true,
};

static int add_pattern(const struct cli *c, const char **v, size_t *n, const char *arg)
{
	if (*n == MAX_PATTERNS)
		return cli_usage_error(c, "too many patterns (at most %d)", MAX_PATTERNS);
	v[(*n)++] = arg;
	return 0;
}

static int apply_option(const struct cli *c, void *user, int opt, const char *arg)
{
	struct args *a = user;

	switch (opt) {
	case O_LISTEN:
		a->listen = arg;
		break;
	case O_EXEC:
		a->exec = arg;
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
	case O_WRITE_EXPECT:
		a->write_expectations = arg;
		break;
	case O_SCALE:
		if (!cli_parse_positive(arg, 1000, &a->timeout_scale))
			return cli_usage_error(c, "bad --timeout-scale %s", arg);
		break;
	case O_DIR:
		a->cases_dir = arg;
		break;
	case O_HOLD:
		if (!cli_parse_ms(arg, 3600000, &a->hold_ms))
			return cli_usage_error(c, "bad --hold-ms %s", arg);
		break;
	case O_WAIT:
		if (!cli_parse_seconds_ms(arg, 86400, &a->wait_ms))
			return cli_usage_error(c, "bad --wait %s", arg);
		break;
	case O_ALL:
		a->all_frames = true;
		break;
	case O_SECRETS:
		a->show_secrets = true;
		break;
	case 'v':
		a->verbose = true;
		break;
	default: /* 'q' */
		a->quiet = true;
		break;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	struct cli c;
	int rc;

	memset(a, 0, sizeof *a);
	a->listen = "127.0.0.1:0";
	a->hold_ms = DEFAULT_HOLD_MS;
	a->wait_ms = 0;
	a->timeout_scale = 1.0;
	rc = cli_parse(&c, &tool, argc, argv, apply_option, a);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return cli_usage_error(&c, "unexpected argument %s", argv[optind]);
	if (!a->wait_ms)
		a->wait_ms = (uint64_t)(DEFAULT_WAIT_S * 1000 * a->timeout_scale);
	if (a->exec) {
		struct client_exec_vars v = {
		        .url = "", .token = "", .token_file = "", .state_dir = ""};
		const char *bad;
		char *cmd = client_exec_command(a->exec, &v, &bad);

		if (!cmd && bad)
			return cli_usage_error(&c,
			                       "--exec: unknown placeholder %.*s (known: {url} "
			                       "{host} {port} {token} {token_file} {state_dir} "
			                       "{client})",
			                       (int)(strcspn(bad, "}") + 1), bad);
		free(cmd);
	}
	rc = cli_token(&c, false, &a->token);
	if (rc)
		return rc;
	if (!a->token) {
		char t[33];

		token_random_hex32(t);
		a->token = strdup(t);
		a->token_made = true;
		if (!a->token)
			return 1;
	}
	return -1;
}

/* ---- one case ---- */

/* A case's "run": how many clients, how long, when it may end early. */
struct run_spec {
	unsigned clients;
	int64_t window_ms;
	unsigned end_after_connects; /* 0: no */
	int64_t linger_ms;
	int64_t restart_after_hello_ms; /* -1: no restart */
	const char *check;
};

static int64_t num(const cJSON *o, const char *k, int64_t dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) && v->valuedouble >= 0 ? (int64_t)v->valuedouble : dflt;
}

/* The case's check, script and run. Returns 0, or -1 with why. */
static int case_plan(const struct conf_case *c, const struct args *a, struct fakegw_script *s,
                     struct run_spec *rs, char *why, size_t whysz)
{
	const cJSON *run = cJSON_GetObjectItemCaseSensitive(c->json, "run");
	double sc = a->timeout_scale;

	rs->check = json_get_string(c->json, "check");
	if (!fakegw_grade_known(rs->check)) {
		snprintf(why, whysz, "\"check\" names no judge of fakegw_grade.h");
		return -1;
	}
	if (fakegw_script_parse(cJSON_GetObjectItemCaseSensitive(c->json, "steps"),
	                        cJSON_GetObjectItemCaseSensitive(c->json, "gateway"), sc,
	                        (int64_t)a->hold_ms, s, why, whysz) < 0)
		return -1;
	rs->clients = (unsigned)num(run, "clients", 1);
	if (rs->clients < 1 || rs->clients > MAX_CLIENTS) {
		snprintf(why, whysz, "run.clients must be 1..%d", MAX_CLIENTS);
		return -1;
	}
	rs->window_ms = (int64_t)((double)num(run, "windowMs", DEFAULT_WINDOW_MS) * sc) +
	                (int64_t)((double)num(run, "windowHolds", 0) * (double)a->hold_ms);
	rs->end_after_connects = (unsigned)num(run, "endAfterConnects", 0);
	rs->linger_ms = (int64_t)((double)num(run, "lingerMs", 300) * sc);
	rs->restart_after_hello_ms =
	        cJSON_GetObjectItemCaseSensitive(run, "restartAfterHelloMs")
	                ? (int64_t)((double)num(run, "restartAfterHelloMs", 0) * sc)
	                : -1;
	return 0;
}

struct client_slot {
	struct client_proc proc;
	char state_dir[PATH_MAX], log_path[PATH_MAX];
	struct fakegw_proc seen[2]; /* how each start of it ended, while the case ran */
	size_t n_seen;
	bool restarted;
};

struct case_run {
	const struct args *a;
	const char *url, *host, *port, *token_file, *root;
	struct fakegw_server *srv;
	struct conf_result *r;
	struct redact red;
	int64_t t0;
	struct client_slot cl[MAX_CLIENTS];
	unsigned n_cl;
	bool keep_frames;
};

static int64_t now_ms(void)
{
	return (int64_t)clock_mono_ms();
}

__attribute__((format(printf, 3, 4))) static void note(struct case_run *cr, int64_t t,
                                                       const char *fmt, ...)
{
	char text[512], line[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	snprintf(line, sizeof line, "[+%lld ms] # %s", (long long)t, text);
	conf_result_add_frame(cr->r, line);
}

static void on_log(void *user, int64_t t_ms, size_t conn, const char *dir, const char *text)
{
	struct case_run *cr = user;
	struct strbuf b;

	redact_learn(&cr->red, text);
	strbuf_init(&b);
	strbuf_addf(&b, "[+%lld ms] c%zu %s ", (long long)t_ms, conn + 1, dir);
	if (strlen(text) > FRAME_LINE_MAX) {
		strbuf_addn(&b, text, FRAME_LINE_MAX);
		strbuf_addf(&b, "... (%zu bytes)", strlen(text));
	} else {
		strbuf_add(&b, text);
	}
	if (b.p)
		conf_result_add_frame(cr->r, b.p);
	strbuf_finish(&b);
}

static int start_client(struct case_run *cr, unsigned i)
{
	struct client_slot *s = &cr->cl[i];
	struct client_exec_vars v = {.url = cr->url,
	                             .host = cr->host,
	                             .port = cr->port,
	                             .token = cr->a->token,
	                             .token_file = cr->token_file,
	                             .state_dir = s->state_dir,
	                             .client = i + 1};
	const char *bad;
	char *cmd = client_exec_command(cr->a->exec, &v, &bad);
	int rc;

	if (!cmd)
		return -1;
	rc = client_exec_start(&s->proc, cmd, s->log_path);
	free(cmd);
	if (rc == 0)
		note(cr, now_ms() - cr->t0, "client %u started (pid %d)", i + 1, (int)s->proc.pid);
	return rc;
}

/* Notes a client process that ended by itself. */
static void watch_clients(struct case_run *cr)
{
	for (unsigned i = 0; i < cr->n_cl; i++) {
		struct client_slot *s = &cr->cl[i];
		struct fakegw_proc *p;

		if (!s->proc.pid || !client_exec_poll(&s->proc) || !s->proc.exited ||
		    s->n_seen == 2)
			continue;
		p = &s->seen[s->n_seen++];
		p->exited = true;
		p->exit_code = s->proc.exit_code;
		p->signal = s->proc.signal;
		p->exit_ms = now_ms() - cr->t0;
		if (p->signal)
			note(cr, p->exit_ms, "client %u died of signal %d", i + 1, p->signal);
		else
			note(cr, p->exit_ms, "client %u exited with status %d", i + 1,
			     p->exit_code);
	}
}

static bool all_exited(const struct case_run *cr)
{
	for (unsigned i = 0; i < cr->n_cl; i++) {
		if (cr->cl[i].proc.pid)
			return false;
	}
	return cr->n_cl > 0;
}

/* Stops clients from..to-1 still running: SIGTERM, the loop served for a grace time (so that
 * each can close its socket), then SIGKILL. */
static void stop_range(struct case_run *cr, unsigned from, unsigned to)
{
	int64_t end = now_ms() + STOP_GRACE_MS;

	for (unsigned i = from; i < to; i++)
		client_exec_term(&cr->cl[i].proc);
	while (now_ms() < end) {
		bool running = false;

		fakegw_server_service(cr->srv, 10);
		for (unsigned i = from; i < to; i++)
			running |= !client_exec_poll(&cr->cl[i].proc);
		if (!running)
			break;
	}
	for (unsigned i = from; i < to; i++)
		client_exec_kill(&cr->cl[i].proc);
}

/* The restart of a case that asks for one: client 1 stopped and started again on the same
 * state directory, restart_after_hello_ms after the first hello-ok. */
static bool maybe_restart(struct case_run *cr, const struct run_spec *rs, struct fakegw *gw)
{
	const struct fakegw_obs *o = fakegw_obs(gw);
	int64_t t = now_ms() - cr->t0;

	if (rs->restart_after_hello_ms < 0 || cr->cl[0].restarted || !cr->n_cl)
		return false;
	for (size_t i = 0; i < o->n; i++) {
		if (o->v[i].hello_ms >= 0 && t >= o->v[i].hello_ms + rs->restart_after_hello_ms) {
			cr->cl[0].restarted = true;
			note(cr, t, "restarting client 1 on the same state directory");
			stop_range(cr, 0, 1);
			start_client(cr, 0);
			return true;
		}
	}
	return false;
}

static size_t device_connects(const struct fakegw_obs *o)
{
	size_t n = 0;

	for (size_t i = 0; i < o->n; i++)
		n += o->v[i].connect_seen;
	return n;
}

/* Serves the gateway until a connect request comes after the first `before` ones, the client
 * exited, or --wait passed: a client's start (an interpreter, a loaded machine, a restart) does
 * not eat into the case's window, which runs from its connect. */
static void wait_connect(struct case_run *cr, struct fakegw *gw, size_t before)
{
	int64_t end = now_ms() + (int64_t)cr->a->wait_ms;

	while (device_connects(fakegw_obs(gw)) <= before && now_ms() < end && !interrupted &&
	       !(cr->a->exec && all_exited(cr))) {
		fakegw_server_service(cr->srv, 10);
		watch_clients(cr);
	}
}

/* Whether the case is over before its window: enough connects and a linger after the last, or
 * every client gone and no connection left. */
static bool done_early(const struct case_run *cr, const struct run_spec *rs,
                       const struct fakegw *gw, int64_t t)
{
	const struct fakegw_obs *o = fakegw_obs(gw);

	if (rs->end_after_connects && device_connects(o) >= rs->end_after_connects &&
	    t >= o->v[o->n - 1].open_ms + rs->linger_ms)
		return true;
	return cr->a->exec && all_exited(cr) && fakegw_open_count(gw) == 0 &&
	       rs->restart_after_hello_ms < 0;
}

/* The last lines of a client's log, into the transcript. */
static void add_log_tail(struct case_run *cr, unsigned i)
{
	FILE *f = fopen(cr->cl[i].log_path, "r");
	char *lines[LOG_TAIL_LINES] = {0}, buf[512];
	size_t n = 0;

	if (!f)
		return;
	while (fgets(buf, sizeof buf, f)) {
		buf[strcspn(buf, "\n")] = '\0';
		free(lines[n % LOG_TAIL_LINES]);
		lines[n % LOG_TAIL_LINES] = strdup(buf);
		n++;
	}
	fclose(f);
	for (size_t k = n > LOG_TAIL_LINES ? n - LOG_TAIL_LINES : 0; k < n; k++) {
		char line[600];

		snprintf(line, sizeof line, "client %u output: %s", i + 1,
		         lines[k % LOG_TAIL_LINES] ? lines[k % LOG_TAIL_LINES] : "");
		conf_result_add_frame(cr->r, line);
	}
	for (size_t k = 0; k < LOG_TAIL_LINES; k++)
		free(lines[k]);
}

static enum conf_verdict failed_verdict(const struct conf_case *c)
{
	if (!strcmp(c->level, "SHOULD"))
		return CONF_NON_STRICT;
	if (!strcmp(c->level, "MAY"))
		return CONF_INFO;
	return CONF_FAIL;
}

static char *fmt_dup(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_dup(const char *fmt, ...)
{
	struct strbuf b;
	va_list ap;
	char tmp[1024];

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	strbuf_init(&b);
	strbuf_add(&b, tmp);
	return strbuf_take(&b);
}

static int make_dir(const char *path)
{
	return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

/* Plays the case and serves the gateway until it ends; then grades. */
static void play(struct case_run *cr, const struct conf_case *c, const struct fakegw_script *s,
                 const struct run_spec *rs, size_t index)
{
	struct fakegw_proc procs[MAX_CLIENTS * 2];
	struct fakegw_grade_input in = {0};
	struct fakegw *gw;
	char msg[512], dir[PATH_MAX];
	int64_t deadline;
	size_t np = 0;
	enum fakegw_grade g;

	cr->t0 = now_ms();
	gw = fakegw_create(s, fakegw_server_io(), cr->t0, clock_wall_ms());
	if (!gw) {
		cr->r->verdict = CONF_ERROR;
		cr->r->message = strdup("out of memory");
		return;
	}
	fakegw_set_log(gw, on_log, cr);
	fakegw_server_attach(cr->srv, gw);
	cr->n_cl = cr->a->exec ? rs->clients : 0;
	snprintf(dir, sizeof dir, "%s/case-%zu", cr->root, index + 1);
	make_dir(dir);
	for (unsigned i = 0; i < cr->n_cl; i++) {
		struct client_slot *sl = &cr->cl[i];

		memset(sl, 0, sizeof *sl);
		if ((size_t)snprintf(sl->state_dir, sizeof sl->state_dir, "%.3900s/client-%u", dir,
		                     i + 1) >= sizeof sl->state_dir ||
		    (size_t)snprintf(sl->log_path, sizeof sl->log_path, "%.3900s/client-%u.log",
		                     dir, i + 1) >= sizeof sl->log_path ||
		    make_dir(sl->state_dir) < 0 || start_client(cr, i) < 0) {
			note(cr, 0, "cannot start client %u: %s", i + 1, strerror(errno));
			cr->n_cl = i;
			break;
		}
	}
	if (!cr->a->exec)
		note(cr, 0, "waiting for the client at %s", cr->url);
	wait_connect(cr, gw, 0);
	/* no connect within --wait: nothing more will come */
	deadline = device_connects(fakegw_obs(gw)) ? now_ms() + rs->window_ms : now_ms();
	while (now_ms() < deadline && !interrupted) {
		fakegw_server_service(cr->srv, 10);
		watch_clients(cr);
		if (maybe_restart(cr, rs, gw)) {
			wait_connect(cr, gw, device_connects(fakegw_obs(gw)));
			deadline = now_ms() + rs->window_ms;
		}
		if (done_early(cr, rs, gw, now_ms() - cr->t0))
			break;
	}
	fakegw_close_all(gw, 1012, "case over", now_ms());
	for (unsigned i = 0; i < cr->n_cl; i++) {
		for (size_t k = 0; k < cr->cl[i].n_seen; k++)
			procs[np++] = cr->cl[i].seen[k];
	}
	stop_range(cr, 0, cr->n_cl);
	fakegw_server_service(cr->srv, 20);
	fakegw_server_attach(cr->srv, NULL);
	in.obs = fakegw_obs(gw);
	in.procs = procs;
	in.n_procs = np;
	in.hold_ms = (int64_t)cr->a->hold_ms;
	in.tick_ms = s->tick_ms;
	in.procs_known = cr->a->exec != NULL;
	if (interrupted) {
		cr->r->verdict = CONF_NOT_RUN;
		cr->r->message = strdup("the run was interrupted during this case");
		fakegw_destroy(gw);
		return;
	}
	g = fakegw_grade(rs->check, &in, msg, sizeof msg);
	cr->r->verdict = g == FAKEGW_MET       ? CONF_PASS
	                 : g == FAKEGW_NOT_MET ? failed_verdict(c)
	                                       : CONF_SKIP;
	cr->r->message = strdup(msg);
	if (g == FAKEGW_NOT_MET) {
		cr->r->expected = strdup(c->sentence);
		cr->r->actual = strdup(msg);
	}
	for (size_t i = 0; i < in.obs->n; i++) {
		if (in.obs->v[i].closer != FAKEGW_OPEN &&
		    in.obs->v[i].closer != FAKEGW_BY_GATEWAY && !cr->r->close_code) {
			cr->r->close_code = in.obs->v[i].close_code;
			cr->r->close_reason = strdup(in.obs->v[i].close_reason);
			cr->r->close_ms = (long)(in.obs->v[i].close_ms - in.obs->v[i].open_ms);
		}
	}
	for (unsigned i = 0; i < cr->n_cl; i++)
		add_log_tail(cr, i);
	fakegw_destroy(gw);
}

static void redact_result(struct case_run *cr)
{
	struct conf_result *r = cr->r;

	for (size_t i = 0; i < r->n_frames; i++)
		redact_in_place(&cr->red, &r->frames[i]);
	redact_in_place(&cr->red, &r->message);
	redact_in_place(&cr->red, &r->actual);
	redact_in_place(&cr->red, &r->close_reason);
}

static void run_case(struct case_run *cr, const struct conf_case *c, size_t index,
                     const struct conf_expectations *e)
{
	struct fakegw_script s;
	struct run_spec rs;
	struct conf_result *r = cr->r;
	char why[256];
	uint64_t t0 = clock_mono_ms();
	struct timespec ts;

	memset(r, 0, sizeof *r);
	r->c = c;
	r->failed_step = -1;
	r->close_ms = -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	r->started_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (case_plan(c, cr->a, &s, &rs, why, sizeof why) < 0) {
		r->verdict = CONF_ERROR;
		r->message = fmt_dup("broken case: %s", why);
		return;
	}
	if (!cr->a->exec && (rs.clients > 1 || rs.restart_after_hello_ms >= 0)) {
		r->verdict = CONF_SKIP;
		r->message = strdup(rs.clients > 1 ? "needs several clients: run with --exec"
		                                   : "needs a client restart: run with --exec");
		return;
	}
	s.shared_token = cr->a->token;
	redact_init(&cr->red);
	redact_add(&cr->red, cr->a->token);
	play(cr, c, &s, &rs, index);
	r->duration_ms = clock_mono_ms() - t0;
	conf_expectations_apply(e, r);
	if (r->verdict == CONF_PASS && !cr->a->all_frames && !r->stale) {
		for (size_t i = 0; i < r->n_frames; i++)
			free(r->frames[i]);
		free(r->frames);
		r->frames = NULL;
		r->n_frames = 0;
	}
	if (!cr->a->show_secrets)
		redact_result(cr);
	redact_finish(&cr->red);
}

/* ---- the run ---- */

/* --cases-dir, $CLAWPAIR_CLIENT_CASES_DIR, the installed ones (share/clawpair/conformance/
 * client-cases next to the binary's ../share), the source tree's. */
static const char *cases_dir(const struct args *a, char *buf, size_t bufsz)
{
	const char *env = getenv("CLAWPAIR_CLIENT_CASES_DIR");
	char exe[PATH_MAX];
	ssize_t n;
	struct stat st;

	if (a->cases_dir)
		return a->cases_dir;
	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			if ((size_t)snprintf(buf, bufsz,
			                     "%s/../share/clawpair/conformance/client-cases",
			                     exe) < bufsz &&
			    stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
				return buf;
		}
	}
	return CLAWPAIR_CLIENT_CASES_DIR;
}

static int check_outputs(const struct args *a)
{
	const char *names[] = {"--json", "--junit", "--html", "--write-expectations"};
	const char *paths[] = {a->json, a->junit, a->html, a->write_expectations};

	for (size_t i = 0; i < 4; i++) {
		if (paths[i] && report_check_writable(paths[i]) < 0) {
			fprintf(stderr, PROG ": cannot write %s %s: %s\n", names[i], paths[i],
			        strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int write_reports(const struct args *a, const struct conf_run *run)
{
	int rc = 0;

	if (a->json && report_json_write(run, a->json) < 0)
		rc = -1;
	if (a->junit && report_junit_write(run, a->junit) < 0)
		rc = -1;
	if (a->html && report_html_write(run, a->html) < 0)
		rc = -1;
	if (a->write_expectations && report_expectations_write(run, a->write_expectations) < 0)
		rc = -1;
	if (rc < 0)
		fprintf(stderr, PROG ": a report could not be written: %s\n", strerror(errno));
	return rc;
}

/* A directory of its own under $TMPDIR for the clients' state and logs, and the token file. */
static int make_root(char *root, size_t rootsz, char *token_file, size_t tfsz, const char *token)
{
	const char *tmp = getenv("TMPDIR");
	FILE *f;

	snprintf(root, rootsz, "%s/clawpair-client-mode-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root))
		return -1;
	snprintf(token_file, tfsz, "%s/token", root);
	f = fopen(token_file, "w");
	if (!f)
		return -1;
	chmod(token_file, 0600);
	fprintf(f, "%s\n", token);
	return fclose(f);
}

static int remove_tree(const char *path)
{
	char cmd[PATH_MAX + 32];

	/* only the directory mkdtemp made; its name has no quote */
	if (strchr(path, '\''))
		return -1;
	snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", path);
	return system(cmd);
}

struct props {
	struct conf_property v[12];
	char vals[12][128];
	size_t n;
};

static void prop(struct props *p, const char *name, const char *value)
{
	if (p->n == 12)
		return;
	snprintf(p->vals[p->n], sizeof p->vals[0], "%s", value);
	p->v[p->n].name = name;
	p->v[p->n].value = p->vals[p->n];
	p->n++;
}

static void run_props(const struct args *a, struct props *p)
{
	char buf[64];

	memset(p, 0, sizeof *p);
	prop(p, "mode", "client");
	prop(p, "--exec", a->exec ? a->exec : "(none: the client connects by itself)");
	snprintf(buf, sizeof buf, "%llu", (unsigned long long)a->hold_ms);
	prop(p, "--hold-ms", buf);
	snprintf(buf, sizeof buf, "%g", a->timeout_scale);
	prop(p, "--timeout-scale", buf);
	prop(p, "--strict", a->strict ? "true" : "false");
	if (a->expectations)
		prop(p, "--expectations", a->expectations);
}

static int run_all(const struct args *a, const struct conf_case **sel, size_t nsel,
                   const struct conf_expectations *e)
{
	struct conf_run run = {0};
	struct conf_console console = {.verbose = a->verbose, .quiet = a->quiet};
	struct case_run cr = {.a = a};
	char host[256], url[320], portbuf[8], root[PATH_MAX], token_file[PATH_MAX + 8], err[256],
	        started[32];
	struct props props;
	struct timespec ts;
	struct tm tm;
	int port, status = CLI_EXIT_USAGE;
	uint64_t t0 = clock_mono_ms();

	root[0] = '\0';

	if (!cli_parse_host_port(a->listen, host, sizeof host, &port)) {
		fprintf(stderr, PROG ": --listen wants HOST:PORT, got %s\n", a->listen);
		return CLI_EXIT_USAGE;
	}
	cr.srv = fakegw_server_create(host, port, err, sizeof err);
	if (!cr.srv) {
		fprintf(stderr, PROG ": %s\n", err);
		return CLI_EXIT_USAGE;
	}
	snprintf(url, sizeof url, strchr(host, ':') ? "ws://[%s]:%d" : "ws://%s:%d", host,
	         fakegw_server_port(cr.srv));
	if (make_root(root, sizeof root, token_file, sizeof token_file, a->token) < 0) {
		fprintf(stderr, PROG ": cannot make a state directory: %s\n", strerror(errno));
		goto out;
	}
	snprintf(portbuf, sizeof portbuf, "%d", fakegw_server_port(cr.srv));
	cr.url = url;
	cr.host = host;
	cr.port = portbuf;
	cr.token_file = token_file;
	cr.root = root;
	printf(PROG " %s: %zu cases; the client connects to %s with the token in %s%s\n",
	       CLAWPAIR_VERSION, nsel, url, token_file,
	       a->exec ? "" : " (start it now; each case waits for it)");
	/* a node set up by hand needs the token itself; one this run made is good for this run
	 * only */
	if (!a->exec && a->token_made)
		printf("token: %s\n", a->token);
	run.results = calloc(nsel, sizeof *run.results);
	if (!run.results)
		goto out;
	run_props(a, &props);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tm);
	run.tool_version = CLAWPAIR_VERSION;
	run.gateway_url = url;
	run.started = started;
	run.started_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	run.strict = a->strict;
	run.props = props.v;
	run.n_props = props.n;
	for (size_t i = 0; i < nsel; i++) {
		cr.r = &run.results[i];
		if (interrupted) {
			memset(cr.r, 0, sizeof *cr.r);
			cr.r->c = sel[i];
			cr.r->verdict = CONF_NOT_RUN;
			cr.r->failed_step = -1;
			cr.r->close_ms = -1;
			cr.r->message = strdup("the run was interrupted");
			run.n = i + 1;
			continue;
		}
		run_case(&cr, sel[i], i, e);
		run.n = i + 1;
		conf_console_result(&console, i, nsel, cr.r);
	}
	run.duration_ms = clock_mono_ms() - t0;
	if (interrupted)
		fprintf(stderr,
		        PROG ": interrupted: the clients are stopped, the cases left NOT-RUN\n");
	conf_run_count(&run);
	conf_run_stale_patterns(&run, e);
	status = interrupted ? CLI_EXIT_USAGE : conf_run_exit_status(&run);
	conf_console_summary(&console, &run);
	if (write_reports(a, &run) < 0 && status == 0)
		status = 1;
out:
	for (size_t i = 0; i < run.n; i++)
		conf_result_finish(&run.results[i]);
	free(run.results);
	fakegw_server_destroy(cr.srv);
	if (root[0] && strstr(root, "clawpair-client-mode-"))
		remove_tree(root);
	return status;
}

int client_mode_main(int argc, char **argv)
{
	struct args a;
	struct conf_cases cases = {0};
	struct conf_expectations expect = {0};
	const struct conf_case **sel = NULL;
	struct conf_selection cs;
	size_t nsel = 0;
	char err[512], dirbuf[PATH_MAX];
	int status = parse_args(argc, argv, &a);

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (status >= 0)
		goto out;
	status = CLI_EXIT_USAGE;
	if (check_outputs(&a) < 0)
		goto out;
	if (conf_cases_load(cases_dir(&a, dirbuf, sizeof dirbuf), &cases, err, sizeof err) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		goto out;
	}
	cs = (struct conf_selection){.inc = a.inc, .ninc = a.ninc, .exc = a.exc, .nexc = a.nexc};
	sel = calloc(cases.n ? cases.n : 1, sizeof *sel);
	if (!sel)
		goto out;
	for (size_t i = 0; i < cases.n; i++) {
		if (conf_case_selected(&cases.v[i], &cs))
			sel[nsel++] = &cases.v[i];
	}
	if (!nsel) {
		fprintf(stderr, PROG ": no case matches the selection\n");
		goto out;
	}
	if (a.list) {
		for (size_t i = 0; i < nsel; i++)
			printf("%-48s %-9s %-6s %s\n", sel[i]->id, sel[i]->requirement,
			       sel[i]->level, sel[i]->title);
		printf("%zu cases\n", nsel);
		status = 0;
		if (a.json && report_list_write(sel, nsel, CLAWPAIR_VERSION, a.json) < 0) {
			fprintf(stderr, PROG ": %s: %s\n", a.json, strerror(errno));
			status = CLI_EXIT_USAGE;
		}
		goto out;
	}
	if (a.expectations &&
	    (conf_expectations_load(a.expectations, &expect, err, sizeof err) < 0 ||
	     conf_expectations_check(&expect, a.expectations, &cases, err, sizeof err) < 0)) {
		fprintf(stderr, PROG ": %s\n", err);
		goto out;
	}
	if (identity_global_init() < 0) {
		fprintf(stderr, PROG ": crypto library init failed\n");
		goto out;
	}
	status = run_all(&a, sel, nsel, &expect);
out:
	free(sel);
	conf_expectations_finish(&expect);
	conf_cases_finish(&cases);
	free(a.token);
	return status;
}
