/* ctl.c: clawpair-ctl, the approver's command line: lists pending pairing requests and paired
 * devices, and approves, rejects, removes or revokes, as an operator over the gateway protocol. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "client.h"
#include "identity.h"

#ifndef CLAWPAIR_VERSION
#define CLAWPAIR_VERSION "dev"
#endif

#define PROG "clawpair-ctl"
#define DEFAULT_URL "ws://127.0.0.1:18789"
/* Enough for every pairing method on a clawpair gateway. OpenClaw 2026.9.x also wants
 * operator.admin to approve a node: pass --scopes operator.admin there. */
#define DEFAULT_SCOPES "operator.pairing,operator.read"

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2 };

struct ctl {
	const char *url;
	char *token;
	int timeout_ms;
	bool json;
	const char *public_key, *fingerprint;
	const char *scopes; /* comma-separated; NULL: DEFAULT_SCOPES */
	struct client_ctx *ctx;
	struct client_conn *conn;
	unsigned next_id;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: " PROG " [OPTION]... COMMAND [ARG]...\n"
	        "Approve devices and nodes waiting to pair with a clawpair/OpenClaw gateway.\n"
	        "\n"
	        "Commands:\n"
	        "  pending                     list pending pairing requests\n"
	        "  approve REQUESTID           approve a request (optionally pinned to the key:\n"
	        "        [--public-key K | --fingerprint F]   compare F with the device's screen)\n"
	        "  reject REQUESTID            reject a request\n"
	        "  devices                     list paired devices\n"
	        "  remove DEVICEID             remove a paired device\n"
	        "  revoke DEVICEID ROLE        revoke a device's token for ROLE\n"
	        "\n"
	        "Options:\n"
	        "  --url URL          gateway WebSocket URL (default " DEFAULT_URL ")\n"
	        "  --token T          gateway token (default: $CLAWPAIR_TOKEN)\n"
	        "  --token-file F     read the token from the first line of F\n"
	        "  --timeout S        seconds to wait for the gateway (default 10)\n"
	        "  --json             print the gateway's JSON payload as is\n"
	        "  --scopes LIST      operator scopes to ask for, comma-separated\n"
	        "                     (default " DEFAULT_SCOPES "; OpenClaw 2026.9.x\n"
	        "                     needs operator.admin to approve a node)\n"
	        "  --help, --version\n"
	        "\n"
	        "Exit status: 0 done, 1 the gateway refused (its error code is printed),\n"
	        "2 bad usage or gateway unreachable.\n");
}

static int bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
	return EXIT_USAGE;
}

static const char *jstr(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *read_first_line(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f)
		return NULL;
	n = getline(&line, &cap, f);
	fclose(f);
	if (n < 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && strchr(" \t\r\n", line[n - 1]))
		line[--n] = '\0';
	return line;
}

/* --- talking to the gateway --- */

/* The next text frame as JSON, skipping nothing; NULL on close or timeout (*closed says which). */
static cJSON *next_frame(struct ctl *c, int timeout_ms, bool *closed, char *why, size_t whysz)
{
	struct client_item it;
	cJSON *j = NULL;

	*closed = false;
	for (;;) {
		if (client_next(c->conn, timeout_ms, &it) != 1) {
			snprintf(why, whysz, "no answer within %d ms", timeout_ms);
			return NULL;
		}
		if (it.kind == CLIENT_ITEM_CLOSE) {
			*closed = true;
			snprintf(why, whysz, "connection closed (%d%s%s)", it.close_code,
			         it.close_reason[0] ? " " : "", it.close_reason);
			client_item_finish(&it);
			return NULL;
		}
		j = cJSON_ParseWithLength(it.text, it.len);
		client_item_finish(&it);
		if (j)
			return j;
	}
}

/* Waits for the res of id, skipping events. NULL: *why says what happened instead. */
static cJSON *wait_res(struct ctl *c, const char *id, char *why, size_t whysz)
{
	uint64_t deadline = client_now_ms() + (uint64_t)c->timeout_ms;

	for (;;) {
		uint64_t now = client_now_ms();
		bool closed;
		cJSON *j;
		const char *t, *rid;

		if (now >= deadline) {
			snprintf(why, whysz, "no answer within %d ms", c->timeout_ms);
			return NULL;
		}
		j = next_frame(c, (int)(deadline - now), &closed, why, whysz);
		if (!j)
			return NULL;
		t = jstr(j, "type");
		rid = jstr(j, "id");
		if (t && strcmp(t, "res") == 0 && rid && strcmp(rid, id) == 0)
			return j;
		cJSON_Delete(j);
	}
}

static int send_req(struct ctl *c, const char *id, const char *method, cJSON *params)
{
	cJSON *f = cJSON_CreateObject();
	char *text;
	int rc;

	cJSON_AddStringToObject(f, "type", "req");
	cJSON_AddStringToObject(f, "id", id);
	cJSON_AddStringToObject(f, "method", method);
	cJSON_AddItemToObject(f, "params", params ? params : cJSON_CreateObject());
	text = cJSON_PrintUnformatted(f);
	cJSON_Delete(f);
	rc = text ? client_send_text(c->conn, text) : -1;
	free(text);
	return rc;
}

/* Prints the gateway's error of a res to stderr. */
static void print_error(const char *what, const cJSON *res)
{
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(res, "error");
	const cJSON *details = cJSON_GetObjectItemCaseSensitive(err, "details");
	const char *code = jstr(err, "code"), *msg = jstr(err, "message");
	const char *dcode = jstr(details, "code");
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

/* Adds each entry of the comma-separated list to arr, skipping empty entries. */
static void add_scopes(cJSON *arr, const char *list)
{
	const char *p = list;

	while (*p) {
		size_t n = strcspn(p, ",");

		if (n > 0) {
			char *one = strndup(p, n);

			if (one) {
				cJSON_AddItemToArray(arr, cJSON_CreateString(one));
				free(one);
			}
		}
		p += n;
		if (*p == ',')
			p++;
	}
}

/* Connects as a device-less operator with the shared token. Returns an exit status. */
static int ctl_connect(struct ctl *c)
{
	struct client_ctx_opts copts = {0};
	struct client_conn_opts o = {0};
	char err[256], why[256];
	cJSON *j, *params, *client, *scopes, *res;
	const char *ev;
	bool closed;
	int rc = EXIT_USAGE;

	copts.max_conns = 4;
	c->ctx = client_ctx_create(&copts);
	if (!c->ctx) {
		fprintf(stderr, PROG ": cannot create the WebSocket client\n");
		return EXIT_USAGE;
	}
	o.url = c->url;
	o.connect_timeout_ms = c->timeout_ms;
	if (client_connect(c->ctx, &o, &c->conn, err, sizeof(err)) < 0) {
		fprintf(stderr, PROG ": cannot reach %s: %s\n", c->url, err);
		return EXIT_USAGE;
	}
	j = next_frame(c, c->timeout_ms, &closed, why, sizeof(why));
	ev = jstr(j, "event");
	if (!j || !ev || strcmp(ev, "connect.challenge") != 0) {
		fprintf(stderr, PROG ": %s did not send connect.challenge: %s\n", c->url,
		        j ? "another frame came first" : why);
		cJSON_Delete(j);
		return EXIT_USAGE;
	}
	cJSON_Delete(j);

	params = cJSON_CreateObject();
	cJSON_AddNumberToObject(params, "minProtocol", 3);
	cJSON_AddNumberToObject(params, "maxProtocol", 4);
	client = cJSON_AddObjectToObject(params, "client");
	cJSON_AddStringToObject(client, "id", "cli");
	cJSON_AddStringToObject(client, "displayName", PROG);
	cJSON_AddStringToObject(client, "version", CLAWPAIR_VERSION);
	cJSON_AddStringToObject(client, "platform", "linux");
	cJSON_AddStringToObject(client, "mode", "cli");
	cJSON_AddStringToObject(params, "role", "operator");
	scopes = cJSON_AddArrayToObject(params, "scopes");
	add_scopes(scopes, c->scopes ? c->scopes : DEFAULT_SCOPES);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(params, "auth"), "token", c->token);
	if (send_req(c, "connect", "connect", params) < 0) {
		fprintf(stderr, PROG ": %s: connection lost\n", c->url);
		return EXIT_USAGE;
	}
	res = wait_res(c, "connect", why, sizeof(why));
	if (!res) {
		fprintf(stderr, PROG ": connect to %s: %s\n", c->url, why);
		return EXIT_USAGE;
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok"))) {
		print_error("connect", res);
		rc = EXIT_REFUSED;
	} else {
		rc = EXIT_OK;
	}
	cJSON_Delete(res);
	return rc;
}

/* Calls method; on success *payload_out gets the res payload (owned). Returns an exit status. */
static int call(struct ctl *c, const char *method, cJSON *params, cJSON **payload_out)
{
	char id[32], why[256];
	cJSON *res;
	int rc;

	*payload_out = NULL;
	snprintf(id, sizeof(id), "ctl-%u", ++c->next_id);
	if (send_req(c, id, method, params) < 0) {
		fprintf(stderr, PROG ": %s: connection lost\n", c->url);
		return EXIT_USAGE;
	}
	res = wait_res(c, id, why, sizeof(why));
	if (!res) {
		fprintf(stderr, PROG ": %s: %s\n", method, why);
		return EXIT_USAGE;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok"))) {
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
	char *s = cJSON_PrintUnformatted(payload);

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
	const char *key = jstr(rec, "publicKey");

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
	int64_t now = wall_ms();

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

		safe(jstr(rec, "requestId"), rid, sizeof(rid), 36);
		safe(jstr(rec, "role"), role, sizeof(role), 8);
		if (repair)
			strncat(role, " (repair)", sizeof(role) - strlen(role) - 1);
		safe(jstr(rec, "deviceId"), dev, sizeof(dev), 12);
		fingerprint_of(rec, fp, sizeof(fp));
		safe(jstr(rec, "displayName"), name, sizeof(name), 20);
		safe(jstr(rec, "remoteIp"), ip, sizeof(ip), 39);
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
	int64_t now = wall_ms();

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

		safe(jstr(rec, "deviceId"), dev, sizeof(dev), 64);
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
			safe(jstr(rec, "role"), roles, sizeof(roles), 16);
		safe(jstr(rec, "displayName"), name, sizeof(name), 20);
		safe(jstr(rec, "remoteIp"), ip, sizeof(ip), 39);
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
		       jstr(dev, "deviceId") ? jstr(dev, "deviceId") : "?");
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
	OPT_TOKEN,
	OPT_TOKEN_FILE,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_PUBLIC_KEY,
	OPT_FINGERPRINT,
	OPT_SCOPES,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option long_opts[] = {
        {"url", required_argument, NULL, OPT_URL},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"json", no_argument, NULL, OPT_JSON},
        {"public-key", required_argument, NULL, OPT_PUBLIC_KEY},
        {"fingerprint", required_argument, NULL, OPT_FINGERPRINT},
        {"scopes", required_argument, NULL, OPT_SCOPES},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	struct ctl c = {0};
	const char *token_arg = NULL, *token_file = NULL;
	int opt, rc = EXIT_USAGE, want;

	c.url = DEFAULT_URL;
	c.timeout_ms = 10000;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (opt) {
		case OPT_URL:
			c.url = optarg;
			break;
		case OPT_TOKEN:
			token_arg = optarg;
			break;
		case OPT_TOKEN_FILE:
			token_file = optarg;
			break;
		case OPT_TIMEOUT: {
			char *end;
			double s;

			errno = 0;
			s = strtod(optarg, &end);
			if (errno || *end || !(s > 0) || s > 86400)
				return bad_usage("bad --timeout '%s': expected seconds > 0",
				                 optarg);
			c.timeout_ms = (int)(s * 1000);
			if (c.timeout_ms < 1)
				c.timeout_ms = 1;
			break;
		}
		case OPT_JSON:
			c.json = true;
			break;
		case OPT_PUBLIC_KEY:
			c.public_key = optarg;
			break;
		case OPT_FINGERPRINT:
			c.fingerprint = optarg;
			break;
		case OPT_SCOPES:
			c.scopes = optarg;
			break;
		case OPT_HELP:
			usage(stdout);
			return EXIT_OK;
		case OPT_VERSION:
			printf(PROG " " CLAWPAIR_VERSION "\n");
			return EXIT_OK;
		default:
			if (optopt >= OPT_URL)
				return bad_usage("option --%s needs an argument",
				                 long_opts[optopt - OPT_URL].name);
			return bad_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return bad_usage(
		        "a command is required (pending, approve, reject, devices, remove, "
		        "revoke)%s",
		        "");
	want = expected_args(argv[optind]);
	if (want < 0)
		return bad_usage("unknown command '%s'", argv[optind]);
	if (argc - optind - 1 != want)
		return bad_usage("wrong number of arguments for '%s'", argv[optind]);
	if ((c.public_key || c.fingerprint) && strcmp(argv[optind], "approve") != 0)
		return bad_usage("--public-key and --fingerprint go with approve%s", "");
	if (c.public_key && c.fingerprint)
		return bad_usage("--public-key and --fingerprint are exclusive%s", "");
	if (token_arg && token_file)
		return bad_usage("--token and --token-file are exclusive%s", "");
	if (token_file) {
		c.token = read_first_line(token_file);
		if (!c.token || !c.token[0]) {
			free(c.token);
			return bad_usage("cannot read a token from '%s'", token_file);
		}
	} else {
		const char *t = token_arg ? token_arg : getenv("CLAWPAIR_TOKEN");

		if (!t || !t[0])
			return bad_usage("a gateway token is required: --token, --token-file or "
			                 "CLAWPAIR_TOKEN%s",
			                 "");
		c.token = strdup(t);
	}
	if (identity_global_init() < 0) {
		fprintf(stderr, PROG ": cannot initialize libsodium\n");
		goto done;
	}
	rc = ctl_connect(&c);
	if (rc == EXIT_OK)
		rc = run_command(&c, argc - optind, argv + optind);
	if (c.conn && client_is_open(c.conn))
		client_close(c.conn, 1000, "");
done:
	client_conn_destroy(c.conn);
	client_ctx_destroy(c.ctx);
	free(c.token);
	return rc;
}
