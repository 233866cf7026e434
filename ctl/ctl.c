/* ctl.c: clawpair-ctl, the approver's command line: lists pending pairing requests and paired
 * devices, and approves, rejects, removes or revokes, as an operator over the gateway protocol. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "client.h"
#include "clock.h"
#include "identity.h"
#include "json.h"
#include "session.h"
#include "clawpair-ctl-help.h"

#ifndef CLAWPAIR_VERSION
#define CLAWPAIR_VERSION "dev"
#endif

#define PROG "clawpair-ctl"
#define DEFAULT_URL "ws://127.0.0.1:18789"
/* Enough for every pairing method on a clawpair gateway. OpenClaw 2026.9.x also wants
 * operator.admin to approve a node: pass --scopes operator.admin there. */
#define DEFAULT_SCOPES "operator.pairing,operator.read"

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = CLI_EXIT_USAGE };

struct ctl {
	const char *url;
	char *token;
	const char *tls_fingerprint; /* wss://: the pinned certificate, or NULL */
	int timeout_ms;
	bool json;
	const char *public_key, *fingerprint;
	const char *scopes; /* comma-separated; NULL: DEFAULT_SCOPES */
	struct client_ctx *ctx;
	struct client_session *session;
};

/* The --help text, made from doc/clawpair-ctl.txt with its manual page. */
static void usage(FILE *f)
{
	fputs(CLAWPAIR_HELP, f);
}

/* --- talking to the gateway --- */

/* Prints the gateway's error of a res to stderr. */
static void print_error(const char *what, const cJSON *res)
{
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(res, "error");
	const cJSON *details = cJSON_GetObjectItemCaseSensitive(err, "details");
	const char *code = json_get_string(err, "code"), *msg = json_get_string(err, "message");
	const char *dcode = json_get_string(details, "code");
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(details, "pendingRequestIds");

	fprintf(stderr, PROG ": %s refused: %s: %s", what, code ? code : "?", msg ? msg : "");
	if (dcode)
		fprintf(stderr, " (%s)", dcode);
	fputc('\n', stderr);
	if (cJSON_IsArray(ids)) {
		const cJSON *it;

		fprintf(stderr, PROG ": pending requests:");
		if (cJSON_GetArraySize(ids) == 0)
			fprintf(stderr, " none");
		cJSON_ArrayForEach(it, ids)
		{
			if (cJSON_IsString(it))
				fprintf(stderr, " %s", it->valuestring);
		}
		fputc('\n', stderr);
	}
}

/* The entries of a comma-separated list, empty ones skipped: pointers into *buf (malloc'd, like
 * *v). Returns the count, or -1 when out of memory. */
static int split_list(const char *list, char **buf, const char ***v)
{
	size_t max = 1;
	int n = 0;
	char *save = NULL, *tok;

	for (const char *p = list; *p; p++)
		max += *p == ',';
	*buf = strdup(list);
	*v = calloc(max, sizeof(**v));
	if (!*buf || !*v)
		return -1;
	for (tok = strtok_r(*buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		(*v)[n++] = tok;
	return n;
}

/* Connects as a device-less operator with the shared token. Returns an exit status. */
static int ctl_connect(struct ctl *c, const char *const *scopes, size_t n_scopes)
{
	struct client_session_opts so = {
	        .conn = {.url = c->url, .tls_fingerprint = c->tls_fingerprint},
	        .timeout_ms = c->timeout_ms,
	        .id_prefix = "ctl"};
	struct connect_spec spec;
	enum client_session_outcome out;

	c->ctx = client_ctx_create(&(struct client_ctx_opts){.max_conns = 4});
	c->session = c->ctx ? client_session_create(c->ctx, &so) : NULL;
	if (!c->session) {
		fprintf(stderr, PROG ": cannot create the WebSocket client\n");
		return EXIT_USAGE;
	}
	connect_spec_operator(&spec);
	spec.display_name = PROG;
	spec.version = CLAWPAIR_VERSION;
	spec.scopes = scopes;
	spec.n_scopes = n_scopes;
	spec.scopes_omit = false;
	spec.token = c->token;
	spec.locale = NULL;
	spec.user_agent = NULL;
	out = client_session_connect(c->session, &spec);
	if (out == CLIENT_SESSION_PENDING)
		out = client_session_await(c->session, c->timeout_ms);
	switch (out) {
	case CLIENT_SESSION_HELLO:
		return EXIT_OK;
	case CLIENT_SESSION_REFUSED:
		print_error("connect", client_session_frame(c->session));
		return EXIT_REFUSED;
	case CLIENT_SESSION_UNREACHABLE:
		if (strstr(client_session_why(c->session), CLIENT_TLS_MISMATCH))
			fprintf(stderr, PROG ": refusing the gateway: %s\n",
			        client_session_why(c->session));
		else
			fprintf(stderr, PROG ": cannot reach %s: %s\n", c->url,
			        client_session_why(c->session));
		return EXIT_USAGE;
	case CLIENT_SESSION_NO_CHALLENGE:
		fprintf(stderr, PROG ": %s did not send connect.challenge: %s\n", c->url,
		        client_session_why(c->session));
		return EXIT_USAGE;
	default:
		fprintf(stderr, PROG ": connect to %s: %s\n", c->url,
		        client_session_why(c->session));
		return EXIT_USAGE;
	}
}

/* Calls method; on success *payload_out gets the res payload (owned). Returns an exit status. */
static int call(struct ctl *c, const char *method, cJSON *params, cJSON **payload_out)
{
	cJSON *res;
	bool ok = false;
	int rc;

	*payload_out = NULL;
	res = client_session_call(c->session, method, params ? params : cJSON_CreateObject(),
	                          c->timeout_ms);
	if (!res) {
		fprintf(stderr, PROG ": %s: %s\n", method, client_session_why(c->session));
		return EXIT_USAGE;
	}
	if (json_get_bool(res, "ok", &ok) && ok) {
		*payload_out = cJSON_DetachItemFromObjectCaseSensitive(res, "payload");
		if (!*payload_out)
			*payload_out = cJSON_CreateObject();
		rc = EXIT_OK;
	} else {
		print_error(method, res);
		rc = EXIT_REFUSED;
	}
	cJSON_Delete(res);
	return rc;
}

/* --- output --- */

static void print_json(const cJSON *payload)
{
	char *s = json_print(payload);

	printf("%s\n", s ? s : "null");
	free(s);
}

static void fmt_age(int64_t ms, char *out, size_t outsz)
{
	int64_t s = ms < 0 ? 0 : ms / 1000;

	if (s < 120)
		snprintf(out, outsz, "%llds", (long long)s);
	else if (s < 7200)
		snprintf(out, outsz, "%lldm", (long long)(s / 60));
	else if (s < 172800)
		snprintf(out, outsz, "%lldh", (long long)(s / 3600));
	else
		snprintf(out, outsz, "%lldd", (long long)(s / 86400));
}

static void fingerprint_of(const cJSON *rec, char *out, size_t outsz)
{
	uint8_t pk[IDENTITY_PK_BYTES];
	char fp[IDENTITY_FINGERPRINT_LEN + 1];
	const char *key = json_get_string(rec, "publicKey");

	if (key && identity_parse_public_key(key, pk) == 0) {
		identity_fingerprint(pk, fp);
		snprintf(out, outsz, "%s", fp);
	} else {
		snprintf(out, outsz, "(bad key)");
	}
}

/* Terminal-safe copy: control characters in names chosen by a device become '?'. */
static void safe(const char *in, char *out, size_t outsz, size_t max_chars)
{
	size_t n = 0;

	if (!in || !in[0])
		in = "-";
	for (; *in && n + 1 < outsz && n < max_chars; in++)
		out[n++] = ((unsigned char)*in < 0x20 || *in == 0x7f) ? '?' : *in;
	out[n] = '\0';
}

static void print_pending(const cJSON *payload)
{
	const cJSON *pending = cJSON_GetObjectItemCaseSensitive(payload, "pending"), *rec;
	int64_t now = clock_wall_ms();

	if (cJSON_GetArraySize(pending) == 0) {
		printf("no pending requests\n");
		return;
	}
	printf("%-36s  %-15s  %-12s  %-19s  %-20s  %-15s  %s\n", "REQUEST ID", "ROLE", "DEVICE",
	       "FINGERPRINT", "NAME", "REMOTE IP", "AGE");
	cJSON_ArrayForEach(rec, pending)
	{
		char role[32], dev[16], fp[32], name[64], ip[64], age[16], rid[48];
		const cJSON *ts = cJSON_GetObjectItemCaseSensitive(rec, "ts");
		bool repair = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "isRepair"));

		safe(json_get_string(rec, "requestId"), rid, sizeof(rid), 36);
		safe(json_get_string(rec, "role"), role, sizeof(role), 8);
		if (repair)
			strncat(role, " (repair)", sizeof(role) - strlen(role) - 1);
		safe(json_get_string(rec, "deviceId"), dev, sizeof(dev), 12);
		fingerprint_of(rec, fp, sizeof(fp));
		safe(json_get_string(rec, "displayName"), name, sizeof(name), 20);
		safe(json_get_string(rec, "remoteIp"), ip, sizeof(ip), 39);
		if (cJSON_IsNumber(ts))
			fmt_age(now - (int64_t)ts->valuedouble, age, sizeof(age));
		else
			snprintf(age, sizeof(age), "-");
		printf("%-36s  %-15s  %-12s  %-19s  %-20s  %-15s  %s\n", rid, role, dev, fp, name,
		       ip, age);
	}
}

static void print_devices(const cJSON *payload)
{
	const cJSON *paired = cJSON_GetObjectItemCaseSensitive(payload, "paired"), *rec;
	int64_t now = clock_wall_ms();

	if (cJSON_GetArraySize(paired) == 0) {
		printf("no paired devices\n");
		return;
	}
	printf("%-64s  %-19s  %-16s  %-20s  %-15s  %s\n", "DEVICE ID", "FINGERPRINT", "ROLES",
	       "NAME", "REMOTE IP", "APPROVED");
	cJSON_ArrayForEach(rec, paired)
	{
		char dev[80], fp[32], roles[64] = "", name[64], ip[64], age[16];
		const cJSON *r, *at = cJSON_GetObjectItemCaseSensitive(rec, "approvedAtMs");
		const cJSON *role_list = cJSON_GetObjectItemCaseSensitive(rec, "roles");

		safe(json_get_string(rec, "deviceId"), dev, sizeof(dev), 64);
		fingerprint_of(rec, fp, sizeof(fp));
		cJSON_ArrayForEach(r, role_list)
		{
			if (!cJSON_IsString(r))
				continue;
			if (roles[0])
				strncat(roles, ",", sizeof(roles) - strlen(roles) - 1);
			strncat(roles, r->valuestring, sizeof(roles) - strlen(roles) - 1);
		}
		if (!roles[0])
			safe(json_get_string(rec, "role"), roles, sizeof(roles), 16);
		safe(json_get_string(rec, "displayName"), name, sizeof(name), 20);
		safe(json_get_string(rec, "remoteIp"), ip, sizeof(ip), 39);
		if (cJSON_IsNumber(at))
			fmt_age(now - (int64_t)at->valuedouble, age, sizeof(age));
		else
			snprintf(age, sizeof(age), "-");
		printf("%-64s  %-19s  %-16s  %-20s  %-15s  %s ago\n", dev, fp, roles, name, ip,
		       age);
	}
}

/* --- commands --- */

static int run_command(struct ctl *c, int argc, char **argv)
{
	const char *cmd = argv[0];
	cJSON *params = NULL, *payload = NULL;
	const char *method;
	int rc;

	if (strcmp(cmd, "pending") == 0 || strcmp(cmd, "devices") == 0) {
		method = "device.pair.list";
	} else if (strcmp(cmd, "approve") == 0 || strcmp(cmd, "reject") == 0) {
		method = cmd[0] == 'a' ? "device.pair.approve" : "device.pair.reject";
		params = cJSON_CreateObject();
		cJSON_AddStringToObject(params, "requestId", argv[1]);
		if (c->public_key)
			cJSON_AddStringToObject(params, "publicKey", c->public_key);
		if (c->fingerprint)
			cJSON_AddStringToObject(params, "fingerprint", c->fingerprint);
	} else if (strcmp(cmd, "remove") == 0) {
		method = "device.pair.remove";
		params = cJSON_CreateObject();
		cJSON_AddStringToObject(params, "deviceId", argv[1]);
	} else {
		method = "device.token.revoke";
		params = cJSON_CreateObject();
		cJSON_AddStringToObject(params, "deviceId", argv[1]);
		cJSON_AddStringToObject(params, "role", argv[2]);
	}
	(void)argc;
	rc = call(c, method, params, &payload);
	if (rc != EXIT_OK)
		return rc;
	if (c->json) {
		print_json(payload);
	} else if (strcmp(cmd, "pending") == 0) {
		print_pending(payload);
	} else if (strcmp(cmd, "devices") == 0) {
		print_devices(payload);
	} else if (strcmp(cmd, "approve") == 0) {
		const cJSON *dev = cJSON_GetObjectItemCaseSensitive(payload, "device");

		printf("approved %s: device %s\n", argv[1],
		       json_get_string(dev, "deviceId") ? json_get_string(dev, "deviceId") : "?");
	} else if (strcmp(cmd, "reject") == 0) {
		printf("rejected %s\n", argv[1]);
	} else if (strcmp(cmd, "remove") == 0) {
		printf("removed %s\n", argv[1]);
	} else {
		printf("revoked the %s token of %s\n", argv[2], argv[1]);
	}
	cJSON_Delete(payload);
	return EXIT_OK;
}

static int expected_args(const char *cmd)
{
	static const struct {
		const char *name;
		int args;
	} cmds[] = {{"pending", 0}, {"devices", 0}, {"approve", 1},
	            {"reject", 1},  {"remove", 1},  {"revoke", 2}};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmd, cmds[i].name) == 0)
			return cmds[i].args;
	return -1;
}

enum {
	OPT_URL = 256,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_PUBLIC_KEY,
	OPT_FINGERPRINT,
	OPT_SCOPES,
};

static const struct option long_opts[] = {
        {"url", required_argument, NULL, OPT_URL},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"json", no_argument, NULL, OPT_JSON},
        {"public-key", required_argument, NULL, OPT_PUBLIC_KEY},
        {"fingerprint", required_argument, NULL, OPT_FINGERPRINT},
        {"scopes", required_argument, NULL, OPT_SCOPES},
        {NULL, 0, NULL, 0},
};

static const struct cli_tool tool = {
        .prog = PROG,
        .version = CLAWPAIR_VERSION,
        .usage = usage,
        .options = long_opts,
        .token = true,
        .tls_fingerprint = true,
};

/* Applies one option. Returns 0, or the exit status of a usage error. */
static int apply_option(const struct cli *cli, void *user, int opt, const char *arg)
{
	struct ctl *c = user;
	uint64_t ms;

	switch (opt) {
	case OPT_URL:
		c->url = arg;
		return 0;
	case OPT_TIMEOUT:
		if (!cli_parse_seconds_ms(arg, 86400, &ms))
			return cli_usage_error(cli, "bad --timeout '%s': expected seconds > 0",
			                       arg);
		c->timeout_ms = (int)ms;
		return 0;
	case OPT_JSON:
		c->json = true;
		return 0;
	case OPT_PUBLIC_KEY:
		c->public_key = arg;
		return 0;
	case OPT_FINGERPRINT:
		c->fingerprint = arg;
		return 0;
	case OPT_SCOPES:
		c->scopes = arg;
		return 0;
	default:
		return cli_usage_error(cli, "unhandled option %d", opt);
	}
}

/* The command and its arguments (argv[0] is the command). Returns 0 or a usage error's status. */
static int check_command(const struct cli *cli, const struct ctl *c, int argc, char **argv)
{
	int want;

	if (argc < 1)
		return cli_usage_error(cli, "a command is required (pending, approve, reject, "
		                            "devices, remove, revoke)");
	want = expected_args(argv[0]);
	if (want < 0)
		return cli_usage_error(cli, "unknown command '%s'", argv[0]);
	if (argc - 1 != want)
		return cli_usage_error(cli, "wrong number of arguments for '%s'", argv[0]);
	if ((c->public_key || c->fingerprint) && strcmp(argv[0], "approve") != 0)
		return cli_usage_error(cli, "--public-key and --fingerprint go with approve");
	if (c->public_key && c->fingerprint)
		return cli_usage_error(cli, "--public-key and --fingerprint are exclusive");
	return 0;
}

/* The pinned TLS fingerprint for a wss:// URL. The environment's does not apply to ws://.
 * Returns 0 or a usage error's status. */
static int check_tls(const struct cli *cli, struct ctl *c)
{
	return cli_tls_pin(cli, c->url, client_tls_fingerprint_parse, &c->tls_fingerprint);
}

/* Parses argv into c; *first is the index of the command. Returns -1 to go on, or the exit
 * status to leave with. */
static int parse_args(struct ctl *c, int argc, char **argv, int *first)
{
	struct cli cli;
	int rc;

	c->url = DEFAULT_URL;
	c->timeout_ms = 10000;
	rc = cli_parse(&cli, &tool, argc, argv, apply_option, c);
	if (rc >= 0)
		return rc;
	rc = check_command(&cli, c, argc - optind, argv + optind);
	if (!rc)
		rc = check_tls(&cli, c);
	if (!rc)
		rc = cli_token(&cli, true, &c->token);
	*first = optind;
	return rc ? rc : -1;
}

int main(int argc, char **argv)
{
	struct ctl c = {0};
	char *scope_buf = NULL;
	const char **scopes = NULL;
	int rc, first = 0, n_scopes;

	rc = parse_args(&c, argc, argv, &first);
	if (rc >= 0)
		goto done;
	rc = EXIT_USAGE;
	n_scopes = split_list(c.scopes ? c.scopes : DEFAULT_SCOPES, &scope_buf, &scopes);
	if (n_scopes < 0) {
		fprintf(stderr, PROG ": out of memory\n");
		goto done;
	}
	if (identity_global_init() < 0) {
		fprintf(stderr, PROG ": cannot initialize libsodium\n");
		goto done;
	}
	rc = ctl_connect(&c, scopes, (size_t)n_scopes);
	if (rc == EXIT_OK)
		rc = run_command(&c, argc - first, argv + first);
	if (client_session_is_open(c.session))
		client_close(client_session_conn(c.session), 1000, "");
done:
	client_session_destroy(c.session);
	client_ctx_destroy(c.ctx);
	free(scopes);
	free(scope_buf);
	free(c.token);
	return rc;
}
