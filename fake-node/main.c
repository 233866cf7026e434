/* main.c: clawpair-fake-node: a node that pairs with a gateway as a real client does (its
 * profile: by default the reference client of spec §10), a swarm of them, or a scenario player. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "cli.h"
#include "client.h"
#include "clock.h"
#include "identity.h"
#include "json.h"
#include "node.h"
#include "profile.h"
#include "scenario.h"
#include "clawpair-fake-node-help.h"

#ifndef CLAWPAIR_VERSION
#define CLAWPAIR_VERSION "dev"
#endif

#define PROG "clawpair-fake-node"

enum { EXIT_PAIRED = 0, EXIT_REFUSED = 1, EXIT_USAGE = CLI_EXIT_USAGE };

#define MAX_COMMANDS 32
#define MAX_SEEN_IDS 16
#define MAX_CLOSES 64
#define SWARM_CONCURRENCY 48
/* RFC 6455's 1002 (protocol error): this side closes on a message that is not a JSON frame */
#define CLOSE_PROTOCOL_ERROR 1002

static volatile sig_atomic_t stop_requested;

struct opts {
	const char *url, *identity, *xff, *netns, *script, *display_name;
	const char *remote, *remote_url, *restart_cmd;
	const char *tls_fingerprint; /* wss://: the pinned gateway certificate, or NULL */
	const struct profile *profile; /* the client it behaves like */
	struct profile profile_buf; /* its row, with --hello-timeout applied */
	int hello_timeout_ms; /* --hello-timeout, -1 the profile's */
	bool profile_list;
	const char *approved_at_file; /* the approval's Unix time in ms, written by the approver */
	char *token;
	char *commands_buf;
	const char *commands[MAX_COMMANDS];
	size_t n_commands;
	const char *vars[MAX_COMMANDS + 1];
	size_t n_vars;
	enum connect_sig sig;
	long count;
	long concurrency;
	bool json, once, verbose;
	int timeout_ms, connect_timeout_ms;
	double timeout_scale;
};

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* The --help text, made from doc/clawpair-fake-node.txt with its manual page. */
static void usage(FILE *f)
{
	fputs(CLAWPAIR_HELP, f);
}

enum {
	OPT_URL = 256,
	OPT_IDENTITY,
	OPT_XFF,
	OPT_NETNS,
	OPT_SIG,
	OPT_SCRIPT,
	OPT_COUNT,
	OPT_CONCURRENCY,
	OPT_JSON,
	OPT_TIMEOUT,
	OPT_CONNECT_TIMEOUT,
	OPT_ONCE,
	OPT_DISPLAY_NAME,
	OPT_COMMANDS,
	OPT_REMOTE,
	OPT_REMOTE_URL,
	OPT_RESTART_CMD,
	OPT_TIMEOUT_SCALE,
	OPT_VAR,
	OPT_PROFILE,
	OPT_APPROVED_AT_FILE,
	OPT_HELLO_TIMEOUT,
};

static const struct option long_opts[] = {
        {"url", required_argument, NULL, OPT_URL},
        {"identity", required_argument, NULL, OPT_IDENTITY},
        {"xff", required_argument, NULL, OPT_XFF},
        {"netns", required_argument, NULL, OPT_NETNS},
        {"sig", required_argument, NULL, OPT_SIG},
        {"script", required_argument, NULL, OPT_SCRIPT},
        {"count", required_argument, NULL, OPT_COUNT},
        {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
        {"json", no_argument, NULL, OPT_JSON},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
        {"once", no_argument, NULL, OPT_ONCE},
        {"display-name", required_argument, NULL, OPT_DISPLAY_NAME},
        {"commands", required_argument, NULL, OPT_COMMANDS},
        {"remote", required_argument, NULL, OPT_REMOTE},
        {"remote-url", required_argument, NULL, OPT_REMOTE_URL},
        {"restart-cmd", required_argument, NULL, OPT_RESTART_CMD},
        {"timeout-scale", required_argument, NULL, OPT_TIMEOUT_SCALE},
        {"var", required_argument, NULL, OPT_VAR},
        {"profile", required_argument, NULL, OPT_PROFILE},
        {"approved-at-file", required_argument, NULL, OPT_APPROVED_AT_FILE},
        {"hello-timeout", required_argument, NULL, OPT_HELLO_TIMEOUT},
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

static int parse_commands(const struct cli *c, struct opts *o, const char *arg)
{
	char *save = NULL, *tok;

	free(o->commands_buf);
	o->commands_buf = strdup(arg);
	o->n_commands = 0;
	for (tok = o->commands_buf ? strtok_r(o->commands_buf, ",", &save) : NULL; tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (o->n_commands == MAX_COMMANDS)
			return cli_usage_error(c, "--commands: at most %d", MAX_COMMANDS);
		o->commands[o->n_commands++] = tok;
	}
	return 0;
}

/* The seconds options. Returns 0, or the exit status of a usage error. */
static int parse_seconds(const struct cli *c, struct opts *o, int opt, const char *arg)
{
	const char *name = opt == OPT_TIMEOUT           ? "timeout"
	                   : opt == OPT_CONNECT_TIMEOUT ? "connect-timeout"
	                                                : "timeout-scale";
	uint64_t ms;
	double d;

	if (opt == OPT_TIMEOUT_SCALE ? !cli_parse_positive(arg, 86400 * 7, &d)
	                             : !cli_parse_seconds_ms(arg, 86400 * 7, &ms))
		return cli_usage_error(c, "--%s needs a positive number", name);
	if (opt == OPT_TIMEOUT)
		o->timeout_ms = (int)ms;
	else if (opt == OPT_CONNECT_TIMEOUT)
		o->connect_timeout_ms = (int)ms;
	else
		o->timeout_scale = d;
	return 0;
}

/* The options whose value is checked. Returns 0, or the exit status of a usage error. */
static int apply_value(const struct cli *c, struct opts *o, int opt, const char *arg)
{
	unsigned long long n;

	switch (opt) {
	case OPT_SIG:
		if (strcmp(arg, "v2") && strcmp(arg, "v3"))
			return cli_usage_error(c, "--sig must be v2 or v3");
		o->sig = !strcmp(arg, "v3") ? CONNECT_SIG_V3 : CONNECT_SIG_V2;
		return 0;
	case OPT_COUNT:
	case OPT_CONCURRENCY:
		if (!cli_parse_uint(arg, 1, 100000, &n))
			return cli_usage_error(c, "--%s must be 1..100000",
			                       opt == OPT_COUNT ? "count" : "concurrency");
		*(opt == OPT_COUNT ? &o->count : &o->concurrency) = (long)n;
		return 0;
	case OPT_COMMANDS:
		return parse_commands(c, o, arg);
	case OPT_PROFILE:
		o->profile_list = !strcmp(arg, "list");
		o->profile = profile_find(arg);
		if (!o->profile && !o->profile_list)
			return cli_usage_error(c, "--profile %s: unknown (--profile list)", arg);
		return 0;
	case OPT_REMOTE:
		if (strcmp(arg, "xff") && strcmp(arg, "none") && strcmp(arg, "netns"))
			return cli_usage_error(c, "--remote must be xff, none or netns");
		o->remote = arg;
		return 0;
	case OPT_VAR:
		if (!strchr(arg, '=') || o->n_vars == MAX_COMMANDS)
			return cli_usage_error(c, "--var wants NAME=VALUE (at most %d)",
			                       MAX_COMMANDS);
		o->vars[o->n_vars++] = arg;
		return 0;
	default:
		return parse_seconds(c, o, opt, arg);
	}
}

/* Applies one option. Returns 0, or the exit status of a usage error. */
static int apply_option(const struct cli *c, void *user, int opt, const char *arg)
{
	struct opts *o = user;

	switch (opt) {
	case OPT_URL:
		o->url = arg;
		break;
	case OPT_IDENTITY:
		o->identity = arg;
		break;
	case OPT_XFF:
		o->xff = arg;
		break;
	case OPT_NETNS:
		o->netns = arg;
		break;
	case OPT_SCRIPT:
		o->script = arg;
		break;
	case OPT_JSON:
		o->json = true;
		break;
	case OPT_ONCE:
		o->once = true;
		break;
	case OPT_DISPLAY_NAME:
		o->display_name = arg;
		break;
	case OPT_REMOTE_URL:
		o->remote_url = arg;
		break;
	case OPT_RESTART_CMD:
		o->restart_cmd = arg;
		break;
	case OPT_APPROVED_AT_FILE:
		o->approved_at_file = arg;
		break;
	case OPT_HELLO_TIMEOUT: {
		uint64_t ms = 0;

		if (strcmp(arg, "0") && !cli_parse_seconds_ms(arg, 86400, &ms))
			return cli_usage_error(c, "--hello-timeout needs a number of seconds");
		o->hello_timeout_ms = (int)ms;
		break;
	}
	case 'v':
		o->verbose = true;
		break;
	default:
		return apply_value(c, o, opt, arg);
	}
	return 0;
}

/* The pinned TLS fingerprint for a wss:// URL. The environment's does not apply to ws://.
 * Returns 0 or a usage error's status. */
static int check_tls(const struct cli *c, struct opts *o)
{
	bool wss = strncasecmp(o->url, "wss://", 6) == 0;

	if (!wss && strncasecmp(o->url, "ws://", 5))
		return cli_usage_error(c, "%s: only ws:// and wss:// URLs are supported", o->url);
	return cli_tls_pin(c, o->url, client_tls_fingerprint_parse, &o->tls_fingerprint);
}

static void print_profiles(void)
{
	for (int i = 0; i < PROFILE_COUNT; i++) {
		const struct profile *p = profile_get((enum profile_id)i);

		printf("%-20s %s\n", p->name, p->summary);
		printf("%-20s   connect: %s/%s role %s, protocol %d..%d, signature v%d\n", "",
		       p->client_id, p->client_mode, p->role, p->min_protocol, p->max_protocol,
		       p->sig);
		if (p->hello_timeout_ms)
			printf("%-20s   waits %d ms for hello-ok, then closes %d '%s'\n", "",
			       p->hello_timeout_ms, p->timeout_close_code, p->timeout_close_reason);
		else
			printf("%-20s   waits for hello-ok as long as the socket is open\n", "");
		printf("%-20s   backoff %d ms x %g up to %d ms, jitter %g%s\n", "",
		       p->backoff_initial_ms, p->backoff_factor, p->backoff_max_ms,
		       p->backoff_jitter,
		       p->policy == PROFILE_POLICY_EXIT_ON_CLOSE ? " (never reached: it exits)"
		                                                 : "");
		printf("%-20s   based on %s\n", "", p->basis);
	}
	fflush(stdout);
}

/* Parses argv into o. Returns -1 to go on, or the exit status to leave with. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	struct cli c;
	int rc;

	o->sig = CONNECT_SIG_V2;
	o->hello_timeout_ms = -1;
	o->timeout_ms = 300000;
	o->connect_timeout_ms = 5000;
	rc = cli_parse(&c, &tool, argc, argv, apply_option, o);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return cli_usage_error(&c, "unexpected argument: %s", argv[optind]);
	if (o->profile_list) {
		print_profiles();
		return 0;
	}
	o->profile_buf = o->profile ? *o->profile : *profile_get(PROFILE_REFERENCE);
	if (o->hello_timeout_ms >= 0) {
		o->profile_buf.hello_timeout_ms = o->hello_timeout_ms;
		if (!o->profile_buf.timeout_close_code) {
			/* a profile without a timeout closes the way the 2026.9.6 client does */
			o->profile_buf.timeout_close_code =
			        profile_get(PROFILE_NODE_HOST_2026_9_6)->timeout_close_code;
			o->profile_buf.timeout_close_reason =
			        profile_get(PROFILE_NODE_HOST_2026_9_6)->timeout_close_reason;
		}
	}
	o->profile = &o->profile_buf;
	if (!o->url)
		return cli_usage_error(&c, "--url is required");
	rc = check_tls(&c, o);
	if (!rc)
		rc = cli_token(&c, true, &o->token);
	if (rc)
		return rc;
	if (o->script && o->count)
		return cli_usage_error(&c, "--script and --count do not go together");
	return -1;
}

/* ---- output ---- */

static void emit_json(cJSON *o)
{
	char *t = json_print(o);

	if (t) {
		printf("%s\n", t);
		fflush(stdout);
	}
	free(t);
	cJSON_Delete(o);
}

static cJSON *jev(const char *name)
{
	cJSON *o = cJSON_CreateObject();

	if (o)
		cJSON_AddStringToObject(o, "event", name);
	return o;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return 0;
}

static int default_identity_path(char *out, size_t outsz)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (xdg && *xdg)
		snprintf(out, outsz, "%s/clawpair/fake-node/identity.json", xdg);
	else if (home && *home)
		snprintf(out, outsz, "%s/.local/state/clawpair/fake-node/identity.json", home);
	else
		return -1;
	return 0;
}

/* The node_config every node of this run shares (xff: this node's X-Forwarded-For). */
static void node_config_from(const struct opts *o, const char *xff, struct node_config *cfg)
{
	cfg->url = o->url;
	cfg->shared_token = o->token;
	cfg->xff = xff;
	cfg->netns = o->netns;
	cfg->tls_fingerprint = o->tls_fingerprint;
	cfg->display_name = o->display_name;
	cfg->commands = o->commands;
	cfg->n_commands = o->n_commands;
	cfg->sig = o->sig;
	cfg->connect_timeout_ms = o->connect_timeout_ms;
	cfg->profile = o->profile;
}

/* ---- one node ---- */

struct single {
	const struct opts *o;
	struct node_config cfg;
	struct identity id;
	char identity_path[4096], token_path[4200];
	bool identity_created;
	char *device_token;
	bool device_token_refused;
	bool paired_once, ever_established;
	int attempts;
	char seen[MAX_SEEN_IDS][80];
	int n_seen;
	/* what the client experienced */
	struct seen_close {
		int code;
		char reason[128];
		bool own; /* this side closed (its own timeout, or after a refusal) */
		uint64_t ms; /* since that attempt's open */
	} closes[MAX_CLOSES];
	int n_closes;
	int reconnects, pending_rounds;
	uint64_t held_ms; /* total time with a connect held pending */
	int64_t first_pending_wall, hello_wall; /* Unix ms; 0: not yet */
	int64_t approve_to_connected_ms; /* -1: no --approved-at-file or no time in it */
	char client_end[96]; /* how the client itself ended (exit status, pause), "" running */
};

static void remember_rid(struct single *sn, const char *rid)
{
	if (!rid || !*rid)
		return;
	for (int i = 0; i < sn->n_seen; i++) {
		if (!strcmp(sn->seen[i], rid))
			return;
	}
	if (sn->n_seen < MAX_SEEN_IDS)
		snprintf(sn->seen[sn->n_seen++], sizeof(sn->seen[0]), "%s", rid);
}

static void add_ms_or_null_i(cJSON *j, const char *k, bool known, int64_t ms)
{
	if (known)
		cJSON_AddNumberToObject(j, k, (double)ms);
	else
		cJSON_AddNullToObject(j, k);
}

/* What the client experienced, in the summary object. */
static void add_experience(const struct single *sn, cJSON *o)
{
	cJSON *a = cJSON_AddArrayToObject(o, "closes");

	cJSON_AddStringToObject(o, "profile", sn->cfg.profile->name);
	cJSON_AddNumberToObject(o, "helloTimeoutMs", sn->cfg.profile->hello_timeout_ms);
	for (int i = 0; a && i < sn->n_closes; i++) {
		cJSON *c = cJSON_CreateObject();

		if (!c)
			break;
		cJSON_AddNumberToObject(c, "code", sn->closes[i].code);
		cJSON_AddStringToObject(c, "reason", sn->closes[i].reason);
		cJSON_AddStringToObject(c, "by", sn->closes[i].own ? "client" : "gateway");
		cJSON_AddNumberToObject(c, "ms", (double)sn->closes[i].ms);
		cJSON_AddItemToArray(a, c);
	}
	cJSON_AddNumberToObject(o, "reconnects", sn->reconnects);
	cJSON_AddNumberToObject(o, "pendingRounds", sn->pending_rounds);
	cJSON_AddNumberToObject(o, "heldMs", (double)sn->held_ms);
	add_ms_or_null_i(o, "pendingToConnectedMs", sn->first_pending_wall && sn->hello_wall,
	                 sn->hello_wall - sn->first_pending_wall);
	add_ms_or_null_i(o, "approveToConnectedMs", sn->approve_to_connected_ms >= 0,
	                 sn->approve_to_connected_ms);
	if (sn->client_end[0])
		cJSON_AddStringToObject(o, "clientEnd", sn->client_end);
}

static void print_experience(const struct single *sn)
{
	int t = sn->cfg.profile->hello_timeout_ms;

	printf("profile %s (", sn->cfg.profile->name);
	if (t)
		printf("connect timeout %d ms", t);
	else
		printf("no connect timeout");
	printf("): %d close%s, %d reconnect%s, %d pending round%s, held %llu ms", sn->n_closes,
	       sn->n_closes == 1 ? "" : "s", sn->reconnects, sn->reconnects == 1 ? "" : "s",
	       sn->pending_rounds, sn->pending_rounds == 1 ? "" : "s",
	       (unsigned long long)sn->held_ms);
	if (sn->first_pending_wall && sn->hello_wall)
		printf(", pending -> connected %lld ms",
		       (long long)(sn->hello_wall - sn->first_pending_wall));
	if (sn->approve_to_connected_ms >= 0)
		printf(", approve -> connected %lld ms", (long long)sn->approve_to_connected_ms);
	if (sn->client_end[0])
		printf("; the client %s", sn->client_end);
	printf("\n");
	for (int i = 0; i < sn->n_closes; i++)
		printf("  close %d '%s' by the %s after %llu ms\n", sn->closes[i].code,
		       sn->closes[i].reason, sn->closes[i].own ? "client" : "gateway",
		       (unsigned long long)sn->closes[i].ms);
}

static void print_summary(struct single *sn, const char *outcome)
{
	if (sn->o->json) {
		cJSON *o = jev("summary"), *a;

		if (!o)
			return;
		cJSON_AddStringToObject(o, "outcome", outcome);
		cJSON_AddNumberToObject(o, "attempts", sn->attempts);
		cJSON_AddStringToObject(o, "deviceId", sn->id.device_id);
		a = cJSON_AddArrayToObject(o, "requestIds");
		for (int i = 0; a && i < sn->n_seen; i++)
			cJSON_AddItemToArray(a, cJSON_CreateString(sn->seen[i]));
		add_experience(sn, o);
		emit_json(o);
		return;
	}
	printf("%s after %d attempt%s", outcome, sn->attempts, sn->attempts == 1 ? "" : "s");
	if (sn->n_seen) {
		printf("; requestIds seen:");
		for (int i = 0; i < sn->n_seen; i++)
			printf(" %s", sn->seen[i]);
	}
	printf("\n");
	print_experience(sn);
	fflush(stdout);
}

/* How an attempt stopped: ENDED leaves the next step to the reconnect policy. */
enum attempt_stop {
	ATT_ENDED = 0, /* the connection closed, or no challenge came: see attempt.end */
	ATT_ONCE_DONE, /* --once and paired */
	ATT_STOPPED, /* a signal */
	ATT_TIMEOUT, /* the pairing deadline passed */
	ATT_UNREACHABLE, /* the connection could not even be started */
	ATT_TLS_REFUSED, /* the gateway's TLS certificate was refused (a pin mismatch) */
	ATT_GOING_ON, /* (while the attempt runs) */
};

/* One attempt: its session and what it saw, for the reconnect policy. */
struct attempt {
	struct single *sn;
	struct node_session s;
	bool use_dev;
	struct profile_attempt end;
	char details[64], message[256], reason[128];
	char error_code[64], error_reason[64], next_step[64];
	uint64_t t_pending; /* clock_mono_ms of connect.pending, 0 when not held */
	bool closing; /* this side has closed; the close item is on its way */
};

static void report_frame(const struct single *sn, const struct node_event *ev)
{
	if (!sn->o->verbose || !ev->text)
		return;
	if (sn->o->json) {
		cJSON *o = jev("frame");

		if (o) {
			cJSON_AddStringToObject(o, "dir", "in");
			cJSON_AddStringToObject(o, "text", ev->text);
			emit_json(o);
		}
	} else {
		printf("<- %s\n", ev->text);
	}
}

static void report_no_challenge(const struct attempt *at, uint64_t now, bool open)
{
	const struct opts *o = at->sn->o;

	if (o->json) {
		cJSON *j = jev("error");

		if (j) {
			cJSON_AddStringToObject(j, "reason",
			                        open ? "no connect.challenge" : "connect timeout");
			cJSON_AddNumberToObject(j, "ms", (double)(now - at->s.t_open));
			emit_json(j);
		}
	} else {
		fprintf(stderr, "%s: %s within %d ms: not an OpenClaw-compatible gateway?\n",
		        o->url,
		        open ? "connected but no connect.challenge" : "no WebSocket connection",
		        o->connect_timeout_ms);
	}
}

static void on_challenge(struct attempt *at, const struct node_event *ev)
{
	struct single *sn = at->sn;
	const char *n =
	        json_get_string(cJSON_GetObjectItemCaseSensitive(ev->frame, "payload"), "nonce");
	cJSON *j;

	sn->ever_established = true;
	if (!sn->o->json || !(j = jev("connect.challenge")))
		return;
	cJSON_AddStringToObject(j, "nonce", n ? n : "");
	cJSON_AddNumberToObject(j, "attempt", sn->attempts);
	cJSON_AddBoolToObject(j, "deviceToken", at->use_dev);
	emit_json(j);
}

static void on_pending(struct attempt *at, const struct node_event *ev)
{
	struct single *sn = at->sn;
	const char *rid = ev->request_id ? ev->request_id : "?", *fp = at->s.fingerprint;
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(ev->frame, "payload");
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(p, "expiresAtMs");
	const char *gfp = json_get_string(p, "fingerprint");
	bool differs = gfp && strcmp(gfp, fp);
	cJSON *j;

	at->end.pending = true;
	if (!at->t_pending)
		at->t_pending = clock_mono_ms();
	sn->pending_rounds++;
	if (!sn->first_pending_wall)
		sn->first_pending_wall = clock_wall_ms();
	remember_rid(sn, ev->request_id);
	if (!sn->o->json) {
		printf("pending: requestId %s\n"
		       "  fingerprint %s (compare with the approver's screen)%s%s\n"
		       "  waiting for approval, e.g. clawpair-ctl --url %s%s%s --token-file FILE "
		       "approve %s --fingerprint %s\n",
		       rid, fp, differs ? "; gateway shows " : "", differs ? gfp : "", sn->o->url,
		       sn->o->tls_fingerprint ? " --tls-fingerprint " : "",
		       sn->o->tls_fingerprint ? sn->o->tls_fingerprint : "", rid, fp);
		fflush(stdout);
		return;
	}
	j = jev("connect.pending");
	if (!j)
		return;
	cJSON_AddStringToObject(j, "requestId", ev->request_id ? ev->request_id : "");
	cJSON_AddStringToObject(j, "deviceId", sn->id.device_id);
	cJSON_AddStringToObject(j, "fingerprint", fp);
	if (gfp)
		cJSON_AddStringToObject(j, "gatewayFingerprint", gfp);
	if (cJSON_IsNumber(exp))
		cJSON_AddNumberToObject(j, "expiresAtMs", exp->valuedouble);
	emit_json(j);
}

/* A device token in hello-ok: keep it for the next connect. */
static void keep_device_token(struct single *sn, const char *token)
{
	if (!token || (sn->device_token && !strcmp(token, sn->device_token)))
		return;
	free(sn->device_token);
	sn->device_token = strdup(token);
	sn->device_token_refused = false;
	if (node_token_save(sn->token_path, sn->id.device_id, sn->o->url, token) < 0)
		fprintf(stderr, "warning: could not save the device token to %s\n", sn->token_path);
}

/* The approval's time from --approved-at-file (Unix ms, written before the approval was sent),
 * or -1. */
static int64_t approved_at(const struct opts *o)
{
	FILE *f = o->approved_at_file ? fopen(o->approved_at_file, "r") : NULL;
	double v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%lf", &v) != 1 || v < 0)
		v = -1;
	fclose(f);
	return (int64_t)v;
}

/* The first hello-ok: when, held how long, and approve -> connected. */
static void note_first_hello(struct single *sn, struct attempt *at)
{
	int64_t approved = approved_at(sn->o);

	/* the item's arrival, not the moment it was handled */
	sn->hello_wall = clock_wall_ms() - (int64_t)(clock_mono_ms() - at->s.t_hello);
	sn->approve_to_connected_ms = approved >= 0 ? sn->hello_wall - approved : -1;
}

static void end_hold(struct single *sn, struct attempt *at, uint64_t now)
{
	if (at->t_pending && now > at->t_pending)
		sn->held_ms += now - at->t_pending;
	at->t_pending = 0;
}

static void on_hello(struct attempt *at, const struct node_event *ev)
{
	struct single *sn = at->sn;
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(ev->frame, "payload");
	const cJSON *proto = cJSON_GetObjectItemCaseSensitive(p, "protocol");
	uint64_t ms = at->s.t_hello - at->s.t_open;
	cJSON *j;

	end_hold(sn, at, at->s.t_hello);
	if (!sn->paired_once)
		note_first_hello(sn, at);
	sn->paired_once = true;
	keep_device_token(sn, ev->device_token);
	if (!sn->o->json) {
		printf("paired: hello-ok (protocol %d) after %llu ms%s%s\n",
		       cJSON_IsNumber(proto) ? proto->valueint : 0, (unsigned long long)ms,
		       ev->device_token ? "; device token saved" : "",
		       at->use_dev ? "; authenticated with the device token" : "");
		fflush(stdout);
		return;
	}
	j = jev("hello-ok");
	if (!j)
		return;
	cJSON_AddNumberToObject(j, "protocol", cJSON_IsNumber(proto) ? proto->valuedouble : 0);
	cJSON_AddStringToObject(j, "deviceId", sn->id.device_id);
	cJSON_AddBoolToObject(j, "deviceTokenIssued", ev->device_token != NULL);
	cJSON_AddBoolToObject(j, "usedDeviceToken", at->use_dev);
	cJSON_AddNumberToObject(j, "ms", (double)ms);
	cJSON_AddNumberToObject(j, "attempt", sn->attempts);
	if (sn->approve_to_connected_ms >= 0)
		cJSON_AddNumberToObject(j, "approveToConnectedMs",
		                        (double)sn->approve_to_connected_ms);
	emit_json(j);
}

/* A client that closes its own socket after a refused connect does so now. */
static void close_after_refusal(struct attempt *at)
{
	const char *reason;
	int code;

	profile_error_close(at->sn->cfg.profile, &at->end, &code, &reason);
	if (!code || at->closing)
		return;
	at->closing = true;
	client_close(at->s.conn, code, reason);
}

static void on_error(struct attempt *at, const struct node_event *ev)
{
	struct single *sn = at->sn;
	cJSON *j;

	at->end.error = true;
	snprintf(at->details, sizeof(at->details), "%s", ev->details_code ? ev->details_code : "");
	snprintf(at->message, sizeof(at->message), "%s", ev->message ? ev->message : "");
	snprintf(at->error_code, sizeof(at->error_code), "%s",
	         ev->error_code ? ev->error_code : "");
	snprintf(at->error_reason, sizeof(at->error_reason), "%s",
	         ev->details_reason ? ev->details_reason : "");
	snprintf(at->next_step, sizeof(at->next_step), "%s", ev->next_step ? ev->next_step : "");
	at->end.error_details = ev->details_code ? at->details : NULL;
	at->end.error_message = ev->message ? at->message : NULL;
	at->end.error_code = ev->error_code ? at->error_code : NULL;
	at->end.error_reason = ev->details_reason ? at->error_reason : NULL;
	at->end.error_next_step = ev->next_step ? at->next_step : NULL;
	at->end.error_retryable = ev->retryable;
	at->end.error_no_pause = ev->no_pause;
	at->end.error_retry_after_ms = ev->retry_after_ms;
	close_after_refusal(at);
	remember_rid(sn, ev->request_id);
	if (!sn->o->json) {
		printf("error: %s %s%s%s%s\n", ev->error_code ? ev->error_code : "?",
		       ev->message ? ev->message : "", ev->details_code ? " (" : "",
		       ev->details_code ? ev->details_code : "", ev->details_code ? ")" : "");
		if (ev->request_id)
			printf("  requestId %s  fingerprint %s\n", ev->request_id,
			       at->s.fingerprint);
		fflush(stdout);
		return;
	}
	j = jev("error");
	if (!j)
		return;
	cJSON_AddStringToObject(j, "code", ev->error_code ? ev->error_code : "");
	if (ev->details_code)
		cJSON_AddStringToObject(j, "detailsCode", ev->details_code);
	cJSON_AddStringToObject(j, "message", ev->message ? ev->message : "");
	if (ev->request_id)
		cJSON_AddStringToObject(j, "requestId", ev->request_id);
	emit_json(j);
}

static void on_invoke(const struct attempt *at, const struct node_event *ev)
{
	cJSON *j;

	if (!at->sn->o->json) {
		printf("invoke: %s answered\n", ev->command ? ev->command : "?");
		fflush(stdout);
		return;
	}
	j = jev("node.invoke.request");
	if (j) {
		cJSON_AddStringToObject(j, "command", ev->command ? ev->command : "");
		emit_json(j);
	}
}

static void on_garbage(struct attempt *at, const struct node_event *ev,
                       const struct client_item *it)
{
	const struct opts *o = at->sn->o;
	const char *text = it->binary ? "(binary)" : ev->text;
	cJSON *j;

	if (!o->json) {
		fprintf(stderr, "%s: the gateway sent a message that is not a JSON frame: %.120s\n",
		        o->url, text);
	} else if ((j = jev("error"))) {
		cJSON_AddStringToObject(j, "reason", "not a JSON frame");
		cJSON_AddStringToObject(j, "text", text);
		emit_json(j);
	}
	at->end.garbage = true;
	client_close(at->s.conn, CLOSE_PROTOCOL_ERROR, "not a JSON frame");
}

static void on_close(struct attempt *at, const struct node_event *ev)
{
	struct single *sn = at->sn;
	cJSON *j;

	snprintf(at->reason, sizeof(at->reason), "%s", ev->close_reason ? ev->close_reason : "");
	end_hold(sn, at, clock_mono_ms());
	if (sn->n_closes < MAX_CLOSES) {
		struct seen_close *c = &sn->closes[sn->n_closes++];

		c->code = ev->close_code;
		snprintf(c->reason, sizeof(c->reason), "%s", at->reason);
		c->own = ev->local_close;
		c->ms = ev->ms_since_open;
	}
	at->end.end = PROFILE_END_CLOSED;
	at->end.close_code = ev->close_code;
	at->end.close_reason = at->reason;
	at->end.local_close = ev->local_close;
	at->end.reached_gateway = at->sn->ever_established;
	at->end.hello = at->s.t_hello != 0;
	if (!at->sn->o->json) {
		printf("closed %d '%s' after %llu ms%s\n", ev->close_code, at->reason,
		       (unsigned long long)ev->ms_since_open,
		       ev->local_close ? " (this side)" : "");
		fflush(stdout);
		return;
	}
	j = jev("close");
	if (!j)
		return;
	cJSON_AddNumberToObject(j, "code", ev->close_code);
	cJSON_AddStringToObject(j, "reason", at->reason);
	cJSON_AddNumberToObject(j, "ms", (double)ev->ms_since_open);
	if (ev->local_close)
		cJSON_AddBoolToObject(j, "local", true);
	emit_json(j);
}

/* Reports one event and notes what the policy needs. Returns ATT_GOING_ON, or how the attempt
 * stopped. */
static enum attempt_stop handle_event(struct attempt *at, const struct node_event *ev,
                                      const struct client_item *it)
{
	switch (ev->kind) {
	case NODE_EV_CHALLENGE:
		on_challenge(at, ev);
		break;
	case NODE_EV_PENDING:
		on_pending(at, ev);
		break;
	case NODE_EV_HELLO:
		on_hello(at, ev);
		if (at->sn->o->once)
			return ATT_ONCE_DONE;
		break;
	case NODE_EV_ERROR:
		on_error(at, ev);
		break;
	case NODE_EV_TICK:
		if (at->sn->o->json && at->sn->o->verbose)
			emit_json(jev("tick"));
		break;
	case NODE_EV_INVOKE:
		on_invoke(at, ev);
		break;
	case NODE_EV_GARBAGE:
		on_garbage(at, ev, it);
		break;
	case NODE_EV_CLOSE:
		on_close(at, ev);
		if (client_tls_error(at->s.conn)) {
			/* another try meets the same certificate */
			fprintf(stderr, "%s: %s\n", at->sn->o->url, client_tls_error(at->s.conn));
			return ATT_TLS_REFUSED;
		}
		return ATT_ENDED;
	default:
		break;
	}
	return ATT_GOING_ON;
}

/* When the profile's client gives up waiting for hello-ok on this attempt (clock_mono_ms), or 0
 * when it does not, or already did. */
static uint64_t hello_deadline(const struct attempt *at)
{
	int ms = at->sn->cfg.profile->hello_timeout_ms;

	if (!ms || at->closing || !at->s.t_connect ||
	    (at->s.state != NODE_S_CONNECT_SENT && at->s.state != NODE_S_PENDING))
		return 0;
	return at->s.t_connect + (uint64_t)ms;
}

/* The profile's own connect timeout: the client closes its socket (and reconnects per its
 * policy once the close is through). */
static void give_up_connect(struct attempt *at, uint64_t now)
{
	const struct profile *p = at->sn->cfg.profile;
	cJSON *j;

	at->closing = true;
	at->end.own_timeout = true;
	if (at->sn->o->json && (j = jev("timeout"))) {
		cJSON_AddNumberToObject(j, "ms", (double)(now - at->s.t_connect));
		cJSON_AddBoolToObject(j, "pending", at->t_pending != 0);
		emit_json(j);
	} else if (!at->sn->o->json) {
		printf("no hello-ok within %d ms: the client closes its connect\n",
		       p->hello_timeout_ms);
		fflush(stdout);
	}
	client_close(at->s.conn, p->timeout_close_code, p->timeout_close_reason);
}

/* How long to wait for the next item: at most until the client's own connect timeout. */
static int poll_ms(const struct attempt *at)
{
	uint64_t d = hello_deadline(at), now = clock_mono_ms();

	if (!d)
		return 200;
	return d <= now ? 0 : d - now < 200 ? (int)(d - now) : 200;
}

/* Whether the attempt must stop before the next item: a signal, the deadline, or no challenge
 * in time (at->end then says so). */
static enum attempt_stop check_attempt(struct attempt *at, uint64_t deadline,
                                       uint64_t challenge_deadline)
{
	uint64_t now = clock_mono_ms();
	bool open;

	if (stop_requested)
		return ATT_STOPPED;
	if (now >= deadline && at->s.state != NODE_S_READY)
		return ATT_TIMEOUT;
	if (hello_deadline(at) && now >= hello_deadline(at))
		give_up_connect(at, now);
	if (at->s.state != NODE_S_OPENING || now < challenge_deadline)
		return ATT_GOING_ON;
	open = client_is_open(at->s.conn);
	report_no_challenge(at, now, open);
	at->end.end = PROFILE_END_NO_CHALLENGE;
	at->end.socket_open = open;
	at->end.reached_gateway = at->sn->ever_established;
	return ATT_ENDED;
}

/* One connection, from opening to its end. */
static enum attempt_stop one_attempt(struct single *sn, struct client_ctx *ctx, uint64_t deadline,
                                     struct attempt *at)
{
	const struct opts *o = sn->o;
	enum attempt_stop stop = ATT_GOING_ON;
	uint64_t challenge_deadline;
	char err[256];

	memset(at, 0, sizeof(*at));
	at->sn = sn;
	at->use_dev = sn->device_token && !sn->device_token_refused &&
	              !(o->profile_buf.shared_token_only && o->token);
	at->end.used_device_token = at->use_dev;
	sn->attempts++;
	if (node_session_open(&at->s, ctx, &sn->cfg, &sn->id,
	                      at->use_dev ? sn->device_token : o->token, at->use_dev, err,
	                      sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return ATT_UNREACHABLE;
	}
	challenge_deadline = at->s.t_open + (uint64_t)o->connect_timeout_ms;
	while ((stop = check_attempt(at, deadline, challenge_deadline)) == ATT_GOING_ON) {
		struct client_item it;
		struct node_event ev;

		if (client_next(at->s.conn, poll_ms(at), &it) == 0)
			continue;
		node_session_handle(&at->s, &it, &ev);
		report_frame(sn, &ev);
		stop = handle_event(at, &ev, &it);
		node_event_finish(&ev);
		client_item_finish(&it);
		if (stop != ATT_GOING_ON)
			break;
	}
	end_hold(sn, at, clock_mono_ms()); /* a run that ends while held */
	node_session_end(&at->s);
	return stop;
}

/* ---- pairing: attempts and the reconnect policy ---- */

static void forget_device_token(struct single *sn)
{
	sn->device_token_refused = true;
	node_token_save(sn->token_path, sn->id.device_id, sn->o->url, NULL);
	if (!sn->o->json)
		printf("device token refused; retrying with the shared token\n");
}

static void report_reconnect(const struct single *sn, int wait_ms, const char *why)
{
	if (sn->o->json) {
		cJSON *j = jev("reconnect");

		if (j) {
			cJSON_AddNumberToObject(j, "inMs", wait_ms);
			cJSON_AddNumberToObject(j, "attempt", sn->attempts + 1);
			cJSON_AddStringToObject(j, "why", why);
			emit_json(j);
		}
	} else {
		printf("reconnecting in %d ms (attempt %d): %s\n", wait_ms, sn->attempts + 1, why);
		fflush(stdout);
	}
}

/* Waits wait_ms while the loop runs. False when a signal came. */
static bool wait_unless_stopped(struct client_ctx *ctx, int wait_ms)
{
	uint64_t until = clock_mono_ms() + (uint64_t)wait_ms;

	while (!stop_requested && clock_mono_ms() < until)
		client_service(ctx, 100);
	return !stop_requested;
}

/* What a run ends with when an attempt stopped short of the reconnect policy. */
static int end_of_run(struct single *sn, enum attempt_stop stop)
{
	switch (stop) {
	case ATT_ONCE_DONE:
		print_summary(sn, "paired");
		return EXIT_PAIRED;
	case ATT_STOPPED:
		print_summary(sn, sn->paired_once ? "stopped (was paired)" : "stopped");
		return sn->paired_once ? EXIT_PAIRED : EXIT_REFUSED;
	case ATT_UNREACHABLE:
		print_summary(sn, "unreachable");
		return EXIT_USAGE;
	case ATT_TLS_REFUSED:
		print_summary(sn, "TLS certificate refused");
		return EXIT_USAGE;
	default:
		print_summary(sn, "timeout");
		return EXIT_REFUSED;
	}
}

/* Attempts until paired (--once), refused, timed out or stopped. Returns the exit status. */
static int pair(struct single *sn, struct client_ctx *ctx)
{
	const struct profile *p = sn->cfg.profile;
	struct profile_state st = profile_state_init(clock_mono_ms() + (uint64_t)sn->o->timeout_ms);

	for (;;) {
		struct attempt at;
		enum attempt_stop stop = one_attempt(sn, ctx, st.deadline_ms, &at);
		struct profile_retry r;

		if (stop != ATT_ENDED)
			return end_of_run(sn, stop);
		/* the jitter draw: uniform in [0, 1) */
		r = profile_decide(p, &at.end, &st, clock_mono_ms(),
		                   randombytes_random() / 4294967296.0);
		if (r.forget_device_token && at.use_dev)
			forget_device_token(sn);
		switch (r.kind) {
		case PROFILE_GIVE_UP_UNREACHABLE:
			if (at.end.end == PROFILE_END_CLOSED)
				fprintf(stderr, "%s: %s\n", sn->o->url, at.reason);
			return end_of_run(sn, ATT_UNREACHABLE);
		case PROFILE_GIVE_UP_REFUSED:
			print_summary(sn, "refused");
			return EXIT_REFUSED;
		case PROFILE_GIVE_UP_TIMEOUT:
			return end_of_run(sn, ATT_TIMEOUT);
		case PROFILE_EXIT:
			snprintf(sn->client_end, sizeof(sn->client_end),
			         "exits with status %d (%s)", r.exit_status, r.why);
			print_summary(sn, sn->paired_once ? "client exited (was paired)"
			                                  : "client exited");
			return sn->paired_once ? EXIT_PAIRED : EXIT_REFUSED;
		case PROFILE_PAUSE:
			snprintf(sn->client_end, sizeof(sn->client_end), "stops reconnecting (%s)",
			         r.why);
			print_summary(sn, "client paused");
			return sn->paired_once ? EXIT_PAIRED : EXIT_REFUSED;
		default:
			break;
		}
		st = r.next;
		sn->reconnects++;
		report_reconnect(sn, r.wait_ms, r.why);
		if (!wait_unless_stopped(ctx, r.wait_ms)) {
			print_summary(sn, "stopped");
			return sn->paired_once ? EXIT_PAIRED : EXIT_REFUSED;
		}
	}
}

/* The identity file (made with its directory when missing) and the device token kept for the
 * URL. Returns 0 or an exit status. */
static int load_identity(struct single *sn)
{
	char *slash;

	if (sn->o->identity)
		snprintf(sn->identity_path, sizeof(sn->identity_path), "%s", sn->o->identity);
	else if (default_identity_path(sn->identity_path, sizeof(sn->identity_path)) < 0) {
		fprintf(stderr, "no --identity and neither XDG_STATE_HOME nor HOME is set\n");
		return EXIT_USAGE;
	}
	slash = strrchr(sn->identity_path, '/');
	if (slash && slash != sn->identity_path) {
		*slash = '\0';
		if (mkdir_p(sn->identity_path, 0700) < 0 ||
		    (mkdir(sn->identity_path, 0700) < 0 && errno != EEXIST)) {
			fprintf(stderr, "%s: %s\n", sn->identity_path, strerror(errno));
			return EXIT_USAGE;
		}
		*slash = '/';
	}
	if (identity_load_or_create(&sn->id, sn->identity_path, &sn->identity_created) < 0) {
		fprintf(stderr, "%s: cannot load or create the identity file\n", sn->identity_path);
		return EXIT_USAGE;
	}
	node_token_path(sn->identity_path, sn->token_path, sizeof(sn->token_path));
	sn->device_token = node_token_load(sn->token_path, sn->id.device_id, sn->o->url);
	return 0;
}

static void announce_identity(const struct single *sn)
{
	char fp[IDENTITY_FINGERPRINT_LEN + 1];

	identity_fingerprint(sn->id.pk, fp);
	if (sn->o->json) {
		cJSON *j = jev("identity");

		if (j) {
			cJSON_AddStringToObject(j, "deviceId", sn->id.device_id);
			cJSON_AddStringToObject(j, "fingerprint", fp);
			cJSON_AddStringToObject(j, "path", sn->identity_path);
			cJSON_AddBoolToObject(j, "created", sn->identity_created);
			cJSON_AddBoolToObject(j, "deviceToken", sn->device_token != NULL);
			emit_json(j);
		}
	} else {
		printf("device %s (fingerprint %s)%s\n", sn->id.device_id, fp,
		       sn->identity_created ? ", new identity" : "");
		fflush(stdout);
	}
}

static int run_single(const struct opts *o)
{
	struct single *sn = calloc(1, sizeof(*sn));
	struct client_ctx *ctx = NULL;
	int rc;

	if (!sn)
		return EXIT_USAGE;
	sn->o = o;
	sn->approve_to_connected_ms = -1;
	rc = load_identity(sn);
	if (rc)
		goto out;
	node_config_from(o, o->xff, &sn->cfg);
	ctx = client_ctx_create(NULL);
	if (!ctx) {
		fprintf(stderr, "cannot create the WebSocket context\n");
		rc = EXIT_USAGE;
		goto out;
	}
	announce_identity(sn);
	rc = pair(sn, ctx);
out:
	client_ctx_destroy(ctx);
	free(sn->device_token);
	sodium_memzero(&sn->id, sizeof(sn->id));
	free(sn);
	return rc;
}

/* ---- swarm ---- */

enum swarm_state { SW_CONNECTING = 0, SW_PENDING, SW_PAIRED, SW_FAILED };

struct swarm_node {
	struct node_session s;
	struct identity id;
	struct node_config cfg;
	char xff[24];
	enum swarm_state st;
	uint64_t latency_ms;
	bool opened;
	bool done;
};

struct swarm {
	const struct opts *o;
	struct swarm_node *nodes;
	size_t n, next_open, in_flight, concurrency;
	uint64_t *lat; /* connect to hello-ok of the paired nodes */
	size_t n_lat;
	size_t n_pending, n_paired, n_failed;
	uint64_t t0;
	char tls_error[256]; /* the gateway's certificate was refused (the same for every node) */
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)ceil(p * (double)n) - 1;
	return v[i >= n ? n - 1 : i];
}

static void raise_nofile(long need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur >= (rlim_t)need)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= (rlim_t)need ? (rlim_t)need
	                                                                          : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < (rlim_t)need)
		fprintf(stderr,
		        "warning: open-file limit %llu is below %ld; some nodes will fail\n",
		        (unsigned long long)rl.rlim_cur, need);
}

/* Fresh identities and configs for every node. Returns 0, or -1 when out of memory. */
static int swarm_init(struct swarm *w, const struct opts *o)
{
	bool xff_auto = o->xff && !strcmp(o->xff, "auto");

	memset(w, 0, sizeof(*w));
	w->o = o;
	w->n = (size_t)o->count;
	w->concurrency = o->concurrency > 0 ? (size_t)o->concurrency : SWARM_CONCURRENCY;
	w->t0 = clock_mono_ms();
	w->nodes = calloc(w->n, sizeof(*w->nodes));
	w->lat = calloc(w->n, sizeof(*w->lat));
	if (!w->nodes || !w->lat)
		return -1;
	for (size_t i = 0; i < w->n; i++) {
		struct swarm_node *sw = &w->nodes[i];

		if (identity_generate(&sw->id) < 0) {
			sw->st = SW_FAILED;
			sw->done = true;
			continue;
		}
		if (xff_auto)
			snprintf(sw->xff, sizeof(sw->xff), "10.77.%u.%u",
			         (unsigned)(1 + i / 250 % 250), (unsigned)(2 + i % 250));
		node_config_from(o, xff_auto ? sw->xff : o->xff, &sw->cfg);
	}
	return 0;
}

static void swarm_finish(struct swarm *w)
{
	for (size_t i = 0; w->nodes && i < w->n; i++)
		node_session_end(&w->nodes[i].s);
	free(w->nodes);
	free(w->lat);
}

/* Opens more nodes while few handshakes are in flight. */
static void swarm_open_more(struct swarm *w, struct client_ctx *ctx)
{
	while (w->next_open < w->n && w->in_flight < w->concurrency) {
		struct swarm_node *sw = &w->nodes[w->next_open++];
		char err[256];

		if (sw->done)
			continue;
		if (node_session_open(&sw->s, ctx, &sw->cfg, &sw->id, w->o->token, false, err,
		                      sizeof(err)) < 0) {
			sw->st = SW_FAILED;
			sw->done = true;
			continue;
		}
		sw->opened = true;
		w->in_flight++;
	}
}

/* Handles what arrived for node i without waiting. */
static void swarm_drain(struct swarm *w, size_t i)
{
	struct swarm_node *sw = &w->nodes[i];
	struct client_item it;

	while (!sw->done && sw->s.conn && client_pending_items(sw->s.conn) &&
	       client_next(sw->s.conn, 0, &it) == 1) {
		struct node_event ev;

		node_session_handle(&sw->s, &it, &ev);
		if (ev.kind == NODE_EV_PENDING && sw->st == SW_CONNECTING) {
			sw->st = SW_PENDING;
		} else if (ev.kind == NODE_EV_HELLO) {
			sw->st = SW_PAIRED;
			sw->latency_ms = sw->s.t_hello - sw->s.t_open;
			w->lat[w->n_lat++] = sw->latency_ms;
			sw->done = true;
		} else if (ev.kind == NODE_EV_CLOSE || ev.kind == NODE_EV_ERROR ||
		           ev.kind == NODE_EV_GARBAGE) {
			if (w->o->verbose)
				fprintf(stderr, "node %zu: %s %d %s\n", i,
				        ev.kind == NODE_EV_CLOSE ? "closed" : "error",
				        ev.close_code,
				        ev.kind == NODE_EV_CLOSE ? ev.close_reason
				        : ev.details_code        ? ev.details_code
				                                 : "");
			if (ev.kind == NODE_EV_CLOSE && !w->tls_error[0] &&
			    client_tls_error(sw->s.conn))
				snprintf(w->tls_error, sizeof(w->tls_error), "%s",
				         client_tls_error(sw->s.conn));
			sw->st = SW_FAILED;
			sw->done = true;
		}
		node_event_finish(&ev);
		client_item_finish(&it);
	}
}

/* Advances every node and counts where they are. Returns how many still wait for an outcome. */
static size_t swarm_step(struct swarm *w, uint64_t now)
{
	size_t open_outcomes = 0;

	w->n_pending = w->n_paired = w->n_failed = w->in_flight = 0;
	for (size_t i = 0; i < w->n; i++) {
		struct swarm_node *sw = &w->nodes[i];

		swarm_drain(w, i);
		if (sw->opened && !sw->done && sw->s.state == NODE_S_OPENING &&
		    now - sw->s.t_open > (uint64_t)w->o->connect_timeout_ms + 1000) {
			sw->st = SW_FAILED;
			sw->done = true;
		}
		if (sw->done && sw->s.conn && sw->st != SW_PAIRED)
			node_session_end(&sw->s);
		w->n_pending += sw->st == SW_PENDING;
		w->n_paired += sw->st == SW_PAIRED;
		w->n_failed += sw->st == SW_FAILED;
		w->in_flight += sw->opened && !sw->done && sw->st == SW_CONNECTING;
		open_outcomes += !sw->done && !(w->o->once && sw->st == SW_PENDING);
	}
	return open_outcomes;
}

static void add_ms_or_null(cJSON *j, const char *k, size_t samples, uint64_t ms)
{
	if (samples)
		cJSON_AddNumberToObject(j, k, (double)ms);
	else
		cJSON_AddNullToObject(j, k);
}

static void swarm_print_summary(const struct swarm *w)
{
	size_t connecting = w->n - w->n_pending - w->n_paired - w->n_failed;
	uint64_t max = w->n_lat ? w->lat[w->n_lat - 1] : 0;

	if (w->o->json) {
		cJSON *j = jev("summary");

		if (j) {
			cJSON_AddNumberToObject(j, "count", (double)w->n);
			cJSON_AddNumberToObject(j, "pending", (double)w->n_pending);
			cJSON_AddNumberToObject(j, "paired", (double)w->n_paired);
			cJSON_AddNumberToObject(j, "failed", (double)w->n_failed);
			cJSON_AddNumberToObject(j, "connecting", (double)connecting);
			cJSON_AddNumberToObject(j, "samples", (double)w->n_lat);
			/* no hello-ok, no latency: null, not a 0 ms that looks measured */
			add_ms_or_null(j, "p50Ms", w->n_lat, pct(w->lat, w->n_lat, 0.50));
			add_ms_or_null(j, "p90Ms", w->n_lat, pct(w->lat, w->n_lat, 0.90));
			add_ms_or_null(j, "p99Ms", w->n_lat, pct(w->lat, w->n_lat, 0.99));
			add_ms_or_null(j, "maxMs", w->n_lat, max);
			cJSON_AddNumberToObject(j, "elapsedMs", (double)(clock_mono_ms() - w->t0));
			emit_json(j);
		}
		return;
	}
	printf("nodes %zu: pending %zu, paired %zu, failed %zu, connecting %zu\n", w->n,
	       w->n_pending, w->n_paired, w->n_failed, connecting);
	if (!w->n_lat)
		printf("connect to hello-ok: no approvals (none of the %zu nodes got hello-ok)\n",
		       w->n);
	else
		printf("connect to hello-ok: p50 %llu ms, p90 %llu ms, p99 %llu ms, max %llu ms "
		       "(%zu samples)\n",
		       (unsigned long long)pct(w->lat, w->n_lat, 0.50),
		       (unsigned long long)pct(w->lat, w->n_lat, 0.90),
		       (unsigned long long)pct(w->lat, w->n_lat, 0.99), (unsigned long long)max,
		       w->n_lat);
	fflush(stdout);
}

static int run_swarm(const struct opts *o)
{
	struct swarm w;
	struct client_ctx *ctx = NULL;
	uint64_t deadline, next_progress;
	int rc = EXIT_USAGE;

	if (swarm_init(&w, o) < 0) {
		fprintf(stderr, "out of memory\n");
		goto out;
	}
	deadline = w.t0 + (uint64_t)o->timeout_ms;
	raise_nofile((long)w.n + 64);
	ctx = client_ctx_create(
	        &(struct client_ctx_opts){.max_conns = (unsigned)w.n + 64, .epoll = true});
	if (!ctx) {
		fprintf(stderr, "cannot create the WebSocket context\n");
		goto out;
	}
	next_progress = clock_mono_ms() + 1000;
	for (;;) {
		uint64_t now;
		size_t open_outcomes;

		swarm_open_more(&w, ctx);
		client_service(ctx, 50);
		now = clock_mono_ms();
		open_outcomes = swarm_step(&w, now);
		if (now >= next_progress) {
			fprintf(stderr,
			        "[%5.1fs] connecting %zu, pending %zu, paired %zu, failed %zu\n",
			        (double)(now - w.t0) / 1000.0,
			        w.n - w.n_pending - w.n_paired - w.n_failed, w.n_pending,
			        w.n_paired, w.n_failed);
			next_progress = now + 1000;
		}
		if (!open_outcomes || now >= deadline || stop_requested || w.tls_error[0])
			break;
	}
	qsort(w.lat, w.n_lat, sizeof(*w.lat), cmp_u64);
	swarm_print_summary(&w);
	if (w.tls_error[0]) {
		fprintf(stderr, "%s: %s\n", o->url, w.tls_error);
		rc = EXIT_USAGE;
	} else if (w.n_paired == w.n)
		rc = EXIT_PAIRED;
	else if (o->once && w.n_failed == 0 && w.n_paired + w.n_pending == w.n)
		rc = EXIT_PAIRED; /* --once: every node reached its first outcome */
	else
		rc = EXIT_REFUSED;
out:
	swarm_finish(&w);
	client_ctx_destroy(ctx);
	return rc;
}

/* ---- scenario ---- */

static void log_line(void *user, const char *actor, enum scenario_dir dir, const char *text,
                     uint64_t t_ms)
{
	const struct opts *o = user;

	if (!o->verbose)
		return;
	if (o->json) {
		cJSON *j = jev("frame");

		if (j) {
			cJSON_AddNumberToObject(j, "t", (double)t_ms);
			cJSON_AddStringToObject(j, "actor", actor);
			cJSON_AddStringToObject(j, "dir", scenario_dir_name(dir));
			cJSON_AddStringToObject(j, "text", text);
			emit_json(j);
		}
	} else {
		static const char *arrows[] = {"->", "<-", "xx", "--"};

		printf("%6llu %-8s %s %s\n", (unsigned long long)t_ms, actor, arrows[dir], text);
		fflush(stdout);
	}
}

static int run_script(const struct opts *o)
{
	char err[512];
	struct scenario *s = scenario_load(o->script, err, sizeof(err));
	struct scenario_env env = {0};
	struct scenario_result r;
	unsigned xff_ctr = 2;
	int rc;

	if (!s) {
		fprintf(stderr, "%s\n", err);
		return EXIT_USAGE;
	}
	env.url = o->url;
	env.token = o->token;
	env.tls_fingerprint = o->tls_fingerprint;
	env.remote_via = !o->remote || !strcmp(o->remote, "xff") ? SCENARIO_REMOTE_XFF
	                 : !strcmp(o->remote, "none")            ? SCENARIO_REMOTE_NONE
	                                                         : SCENARIO_REMOTE_NETNS;
	env.remote_url = o->remote_url;
	env.netns = o->netns;
	env.xff_counter = &xff_ctr;
	env.timeout_scale = o->timeout_scale;
	env.restart_cmd = o->restart_cmd;
	env.log = log_line;
	env.log_user = (void *)o;
	env.vars = o->vars;
	if (scenario_run(s, &env, &r) < 0) {
		fprintf(stderr, "cannot run the scenario\n");
		scenario_destroy(s);
		return EXIT_USAGE;
	}
	if (o->json) {
		char *t = scenario_result_json(s, &r);

		if (t)
			printf("%s\n", t);
		free(t);
	} else {
		const struct scenario_meta *m = scenario_get_meta(s);

		printf("%s %s (%llu ms)\n",
		       r.verdict == SCENARIO_PASS   ? "PASS"
		       : r.verdict == SCENARIO_FAIL ? "FAIL"
		       : r.verdict == SCENARIO_SKIP ? "SKIP"
		                                    : "ERROR",
		       m->id, (unsigned long long)r.duration_ms);
		if (r.verdict != SCENARIO_PASS) {
			if (r.failed_step >= 0)
				printf("  step %d, actor %s\n", r.failed_step, r.actor);
			if (r.expected)
				printf("  expected: %s\n", r.expected);
			if (r.actual)
				printf("  actual:   %s\n", r.actual);
			if (r.ms_since_connect >= 0)
				printf("  %ld ms after the actor's connect\n", r.ms_since_connect);
			if (r.message && !r.expected)
				printf("  %s\n", r.message);
		}
	}
	fflush(stdout);
	rc = r.verdict == SCENARIO_PASS ? 0 : r.verdict == SCENARIO_FAIL ? 1 : 2;
	scenario_result_finish(&r);
	scenario_destroy(s);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct sigaction sa;
	int rc;

	memset(&o, 0, sizeof(o));
	rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		goto out;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (identity_global_init() < 0) {
		fprintf(stderr, "crypto library init failed\n");
		rc = EXIT_USAGE;
		goto out;
	}
	if (o.script)
		rc = run_script(&o);
	else if (o.count)
		rc = run_swarm(&o);
	else
		rc = run_single(&o);
out:
	free(o.commands_buf);
	free(o.token);
	return rc;
}
