/* main.c: clawpair-fake-node: an Android-like node that pairs with a gateway, a swarm of them,
 * or a scenario player. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "client.h"
#include "identity.h"
#include "node.h"
#include "scenario.h"

enum { EXIT_PAIRED = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2 };

#define COMPAT_RETRY_MS 6000 /* the Android app's pairing-screen reconnect cadence */
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define MAX_COMMANDS 32
#define MAX_SEEN_IDS 16

static volatile sig_atomic_t stop_requested;

struct opts {
	const char *url, *token, *identity, *xff, *netns, *script, *display_name;
	const char *remote, *remote_url, *restart_cmd;
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

static void usage(FILE *f)
{
	fputs("usage: clawpair-fake-node --url ws://HOST:PORT --token T [options]\n"
	      "An Android-like node (client.id openclaw-android, role node) for pairing tests.\n"
	      "\n"
	      "  --url URL            gateway WebSocket URL (ws:// only)\n"
	      "  --token T            shared gateway token (also CLAWPAIR_TOKEN)\n"
	      "  --identity FILE      identity file (default $XDG_STATE_HOME/clawpair/fake-node/\n"
	      "                       identity.json); created mode 0600; device tokens are kept\n"
	      "                       next to it in *.tokens.json\n"
	      "  --xff ADDR           send X-Forwarded-For: ADDR (look remote to a gateway that\n"
	      "                       trusts this host as a proxy); with --count, 'auto' gives\n"
	      "                       each node its own 10.77.x.y\n"
	      "  --netns NAME         open the connection from network namespace NAME (root)\n"
	      "  --sig v2|v3          signature payload version (default v2)\n"
	      "  --display-name S     client.displayName\n"
	      "  --commands a,b       declared commands\n"
	      "  --once               exit 0 right after hello-ok\n"
	      "  --timeout S          give up pairing after S seconds (default 300)\n"
	      "  --connect-timeout S  WebSocket + challenge timeout (default 5)\n"
	      "  --json               one JSON object per line\n"
	      "  --count N            N nodes with fresh identities; prints a summary\n"
	      "  --concurrency N      with --count: at most N handshakes in flight (default 48,\n"
	      "                       below the gateway's unauthenticated-sockets-per-address cap)\n"
	      "  --script FILE        play a scenario file instead (see SCENARIOS.md)\n"
	      "    --remote xff|none|netns  how scenario actors marked remote connect (xff)\n"
	      "    --remote-url URL   the gateway URL as seen from the namespace (netns)\n"
	      "    --restart-cmd CMD  shell command for restart steps (else they skip)\n"
	      "    --timeout-scale X  multiply scenario timeouts\n"
	      "    --var NAME=VALUE   preset ${NAME} (repeatable)\n"
	      "  -v, --verbose        show every frame\n"
	      "  -h, --help           this help\n"
	      "\n"
	      "Exit: 0 paired (or scenario passed), 1 refused, rejected, timed out or a step\n"
	      "failed, 2 bad usage, unreachable gateway, or scenario skipped/errored.\n",
	      f);
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
	        {"url", required_argument, NULL, 'u'},
	        {"token", required_argument, NULL, 't'},
	        {"identity", required_argument, NULL, 'i'},
	        {"xff", required_argument, NULL, 'x'},
	        {"netns", required_argument, NULL, 'N'},
	        {"sig", required_argument, NULL, 's'},
	        {"script", required_argument, NULL, 'S'},
	        {"count", required_argument, NULL, 'c'},
	        {"json", no_argument, NULL, 'j'},
	        {"timeout", required_argument, NULL, 'T'},
	        {"connect-timeout", required_argument, NULL, 'C'},
	        {"once", no_argument, NULL, 'o'},
	        {"display-name", required_argument, NULL, 'd'},
	        {"commands", required_argument, NULL, 'm'},
	        {"remote", required_argument, NULL, 'r'},
	        {"remote-url", required_argument, NULL, 'R'},
	        {"restart-cmd", required_argument, NULL, 'X'},
	        {"timeout-scale", required_argument, NULL, 'k'},
	        {"var", required_argument, NULL, 'V'},
	        {"verbose", no_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int c;
	char *end;
	double d;

	o->sig = CONNECT_SIG_V2;
	o->count = 0;
	o->timeout_ms = 300000;
	o->connect_timeout_ms = 5000;
	o->token = getenv("CLAWPAIR_TOKEN");
	while ((c = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
		switch (c) {
		case 'u':
			o->url = optarg;
			break;
		case 't':
			o->token = optarg;
			break;
		case 'i':
			o->identity = optarg;
			break;
		case 'x':
			o->xff = optarg;
			break;
		case 'N':
			o->netns = optarg;
			break;
		case 's':
			if (!strcmp(optarg, "v2"))
				o->sig = CONNECT_SIG_V2;
			else if (!strcmp(optarg, "v3"))
				o->sig = CONNECT_SIG_V3;
			else {
				fprintf(stderr, "--sig must be v2 or v3\n");
				return -1;
			}
			break;
		case 'S':
			o->script = optarg;
			break;
		case 'c':
			errno = 0;
			o->count = strtol(optarg, &end, 10);
			if (errno || *end || o->count < 1 || o->count > 100000) {
				fprintf(stderr, "--count must be 1..100000\n");
				return -1;
			}
			break;
		case 'P':
			errno = 0;
			o->concurrency = strtol(optarg, &end, 10);
			if (errno || *end || o->concurrency < 1 || o->concurrency > 100000) {
				fprintf(stderr, "--concurrency must be 1..100000\n");
				return -1;
			}
			break;
		case 'j':
			o->json = true;
			break;
		case 'T':
		case 'C':
		case 'k':
			errno = 0;
			d = strtod(optarg, &end);
			if (errno || *end || !(d > 0) || d > 86400 * 7) {
				fprintf(stderr, "--%s needs a positive number\n",
				        c == 'T'   ? "timeout"
				        : c == 'C' ? "connect-timeout"
				                   : "timeout-scale");
				return -1;
			}
			if (c == 'T')
				o->timeout_ms = (int)(d * 1000);
			else if (c == 'C')
				o->connect_timeout_ms = (int)(d * 1000);
			else
				o->timeout_scale = d;
			break;
		case 'o':
			o->once = true;
			break;
		case 'd':
			o->display_name = optarg;
			break;
		case 'm': {
			char *save = NULL, *tok;

			free(o->commands_buf);
			o->commands_buf = strdup(optarg);
			o->n_commands = 0;
			for (tok = o->commands_buf ? strtok_r(o->commands_buf, ",", &save) : NULL;
			     tok; tok = strtok_r(NULL, ",", &save)) {
				if (o->n_commands == MAX_COMMANDS) {
					fprintf(stderr, "--commands: at most %d\n", MAX_COMMANDS);
					return -1;
				}
				if (*tok)
					o->commands[o->n_commands++] = tok;
			}
			break;
		}
		case 'r':
			if (strcmp(optarg, "xff") && strcmp(optarg, "none") &&
			    strcmp(optarg, "netns")) {
				fprintf(stderr, "--remote must be xff, none or netns\n");
				return -1;
			}
			o->remote = optarg;
			break;
		case 'R':
			o->remote_url = optarg;
			break;
		case 'X':
			o->restart_cmd = optarg;
			break;
		case 'V':
			if (!strchr(optarg, '=') || o->n_vars == MAX_COMMANDS) {
				fprintf(stderr, "--var wants NAME=VALUE (at most %d)\n",
				        MAX_COMMANDS);
				return -1;
			}
			o->vars[o->n_vars++] = optarg;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "unexpected argument: %s\n", argv[optind]);
		return -1;
	}
	if (!o->url) {
		fprintf(stderr, "--url is required\n");
		return -1;
	}
	if (!o->token) {
		fprintf(stderr, "--token is required (or CLAWPAIR_TOKEN)\n");
		return -1;
	}
	if (strncmp(o->url, "ws://", 5)) {
		fprintf(stderr, "%s: only ws:// URLs are supported\n", o->url);
		return -1;
	}
	if (o->script && o->count) {
		fprintf(stderr, "--script and --count do not go together\n");
		return -1;
	}
	return 0;
}

/* ---- output ---- */

static void emit_json(cJSON *o)
{
	char *t = cJSON_PrintUnformatted(o);

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

/* ---- one node ---- */

struct single {
	const struct opts *o;
	struct node_config cfg;
	struct identity id;
	char identity_path[4096], token_path[4200];
	char *device_token;
	bool device_token_refused;
	bool paired_once, ever_established;
	int attempts;
	char seen[MAX_SEEN_IDS][80];
	int n_seen;
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
	fflush(stdout);
}

enum attempt_outcome {
	ATT_ONCE_DONE, /* --once and paired */
	ATT_RETRY_FAST, /* reconnect now (device token refused) */
	ATT_RETRY_COMPAT, /* closed while pending pairing: retry on the app's cadence */
	ATT_RETRY_BACKOFF,
	ATT_REFUSED,
	ATT_UNREACHABLE,
	ATT_TIMEOUT,
	ATT_STOPPED,
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

static enum attempt_outcome one_attempt(struct single *sn, struct client_ctx *ctx,
                                        uint64_t deadline)
{
	const struct opts *o = sn->o;
	struct node_session s;
	bool use_dev = sn->device_token && !sn->device_token_refused;
	char err[256];
	bool pending_seen = false, auth_error = false, error_seen = false, refused = false;
	const char *err_details = NULL;
	char err_details_buf[64] = "";
	enum attempt_outcome out = ATT_RETRY_BACKOFF;
	uint64_t challenge_deadline;

	sn->attempts++;
	if (node_session_open(&s, ctx, &sn->cfg, &sn->id, use_dev ? sn->device_token : o->token,
	                      use_dev, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return ATT_UNREACHABLE;
	}
	challenge_deadline = s.t_open + (uint64_t)o->connect_timeout_ms;
	for (;;) {
		struct client_item it;
		struct node_event ev;
		uint64_t now = client_now_ms();
		int rc;

		if (stop_requested) {
			out = ATT_STOPPED;
			break;
		}
		if (now >= deadline && s.state != NODE_S_READY) {
			out = ATT_TIMEOUT;
			break;
		}
		if (s.state == NODE_S_OPENING && now >= challenge_deadline) {
			bool open = client_is_open(s.conn);

			if (o->json) {
				cJSON *j = jev("error");

				if (j) {
					cJSON_AddStringToObject(j, "reason",
					                        open ? "no connect.challenge"
					                             : "connect timeout");
					cJSON_AddNumberToObject(j, "ms", (double)(now - s.t_open));
					emit_json(j);
				}
			} else {
				fprintf(stderr,
				        "%s: %s within %d ms: not an OpenClaw-compatible gateway?\n",
				        o->url,
				        open ? "connected but no connect.challenge"
				             : "no WebSocket connection",
				        o->connect_timeout_ms);
			}
			out = sn->ever_established ? ATT_RETRY_BACKOFF : ATT_UNREACHABLE;
			if (open)
				out = ATT_REFUSED; /* something answers, but it is not a gateway */
			break;
		}
		rc = client_next(s.conn, 200, &it);
		if (rc == 0)
			continue;
		node_session_handle(&s, &it, &ev);
		report_frame(sn, &ev);
		switch (ev.kind) {
		case NODE_EV_CHALLENGE:
			sn->ever_established = true;
			if (o->json) {
				cJSON *j = jev("connect.challenge");
				const char *n = cJSON_GetStringValue(cJSON_GetObjectItem(
				        cJSON_GetObjectItem(ev.frame, "payload"), "nonce"));

				if (j) {
					cJSON_AddStringToObject(j, "nonce", n ? n : "");
					cJSON_AddNumberToObject(j, "attempt", sn->attempts);
					cJSON_AddBoolToObject(j, "deviceToken", use_dev);
					emit_json(j);
				}
			}
			break;
		case NODE_EV_PENDING: {
			const cJSON *p = cJSON_GetObjectItem(ev.frame, "payload");
			const cJSON *exp = cJSON_GetObjectItem(p, "expiresAtMs");
			const char *gfp =
			        cJSON_GetStringValue(cJSON_GetObjectItem(p, "fingerprint"));

			pending_seen = true;
			remember_rid(sn, ev.request_id);
			if (o->json) {
				cJSON *j = jev("connect.pending");

				if (j) {
					cJSON_AddStringToObject(j, "requestId",
					                        ev.request_id ? ev.request_id : "");
					cJSON_AddStringToObject(j, "deviceId", sn->id.device_id);
					cJSON_AddStringToObject(j, "fingerprint", s.fingerprint);
					if (gfp)
						cJSON_AddStringToObject(j, "gatewayFingerprint",
						                        gfp);
					if (cJSON_IsNumber(exp))
						cJSON_AddNumberToObject(j, "expiresAtMs",
						                        exp->valuedouble);
					emit_json(j);
				}
			} else {
				printf("pending: requestId %s\n"
				       "  fingerprint %s (compare with the approver's screen)%s%s\n"
				       "  waiting for approval, e.g. clawpair-ctl --url %s --token ... "
				       "approve %s --fingerprint %s\n",
				       ev.request_id ? ev.request_id : "?", s.fingerprint,
				       gfp && strcmp(gfp, s.fingerprint) ? "; gateway shows " : "",
				       gfp && strcmp(gfp, s.fingerprint) ? gfp : "", o->url,
				       ev.request_id ? ev.request_id : "?", s.fingerprint);
				fflush(stdout);
			}
			break;
		}
		case NODE_EV_HELLO: {
			const cJSON *p = cJSON_GetObjectItem(ev.frame, "payload");
			const cJSON *proto = cJSON_GetObjectItem(p, "protocol");
			uint64_t ms = s.t_hello - s.t_open;

			sn->paired_once = true;
			if (ev.device_token &&
			    (!sn->device_token || strcmp(ev.device_token, sn->device_token))) {
				free(sn->device_token);
				sn->device_token = strdup(ev.device_token);
				sn->device_token_refused = false;
				if (node_token_save(sn->token_path, sn->id.device_id, o->url,
				                    ev.device_token) < 0)
					fprintf(stderr,
					        "warning: could not save the device token to %s\n",
					        sn->token_path);
			}
			if (o->json) {
				cJSON *j = jev("hello-ok");

				if (j) {
					cJSON_AddNumberToObject(
					        j, "protocol",
					        cJSON_IsNumber(proto) ? proto->valuedouble : 0);
					cJSON_AddStringToObject(j, "deviceId", sn->id.device_id);
					cJSON_AddBoolToObject(j, "deviceTokenIssued",
					                      ev.device_token != NULL);
					cJSON_AddBoolToObject(j, "usedDeviceToken", use_dev);
					cJSON_AddNumberToObject(j, "ms", (double)ms);
					cJSON_AddNumberToObject(j, "attempt", sn->attempts);
					emit_json(j);
				}
			} else {
				printf("paired: hello-ok (protocol %d) after %llu ms%s%s\n",
				       cJSON_IsNumber(proto) ? proto->valueint : 0,
				       (unsigned long long)ms,
				       ev.device_token ? "; device token saved" : "",
				       use_dev ? "; authenticated with the device token" : "");
				fflush(stdout);
			}
			if (o->once) {
				node_event_finish(&ev);
				client_item_finish(&it);
				node_session_end(&s);
				return ATT_ONCE_DONE;
			}
			break;
		}
		case NODE_EV_ERROR:
			error_seen = true;
			remember_rid(sn, ev.request_id);
			snprintf(err_details_buf, sizeof(err_details_buf), "%s",
			         ev.details_code ? ev.details_code : "");
			err_details = err_details_buf;
			auth_error = node_error_is_auth(ev.details_code, ev.message, 0, NULL);
			if (o->json) {
				cJSON *j = jev("error");

				if (j) {
					cJSON_AddStringToObject(j, "code",
					                        ev.error_code ? ev.error_code : "");
					if (ev.details_code)
						cJSON_AddStringToObject(j, "detailsCode",
						                        ev.details_code);
					cJSON_AddStringToObject(j, "message",
					                        ev.message ? ev.message : "");
					if (ev.request_id)
						cJSON_AddStringToObject(j, "requestId",
						                        ev.request_id);
					emit_json(j);
				}
			} else {
				printf("error: %s %s%s%s%s%s\n",
				       ev.error_code ? ev.error_code : "?",
				       ev.message ? ev.message : "", ev.details_code ? " (" : "",
				       ev.details_code ? ev.details_code : "",
				       ev.details_code ? ")" : "", ev.request_id ? "" : "");
				if (ev.request_id)
					printf("  requestId %s  fingerprint %s\n", ev.request_id,
					       s.fingerprint);
				fflush(stdout);
			}
			break;
		case NODE_EV_TICK:
			if (o->json && o->verbose) {
				cJSON *j = jev("tick");

				if (j)
					emit_json(j);
			}
			break;
		case NODE_EV_INVOKE:
			if (o->json) {
				cJSON *j = jev("node.invoke.request");

				if (j) {
					cJSON_AddStringToObject(j, "command",
					                        ev.command ? ev.command : "");
					emit_json(j);
				}
			} else {
				printf("invoke: %s answered\n", ev.command ? ev.command : "?");
				fflush(stdout);
			}
			break;
		case NODE_EV_GARBAGE:
			if (o->json) {
				cJSON *j = jev("error");

				if (j) {
					cJSON_AddStringToObject(j, "reason", "not a JSON frame");
					cJSON_AddStringToObject(j, "text",
					                        it.binary ? "(binary)" : ev.text);
					emit_json(j);
				}
			} else {
				fprintf(stderr,
				        "%s: the gateway sent a message that is not a JSON frame: %.120s\n",
				        o->url, it.binary ? "(binary)" : ev.text);
			}
			refused = true;
			client_close(s.conn, 1002, "not a JSON frame");
			break;
		case NODE_EV_CLOSE: {
			bool was_ready = s.state == NODE_S_READY;

			(void)was_ready;
			if (o->json) {
				cJSON *j = jev("close");

				if (j) {
					cJSON_AddNumberToObject(j, "code", ev.close_code);
					cJSON_AddStringToObject(j, "reason", ev.close_reason);
					cJSON_AddNumberToObject(j, "ms", (double)ev.ms_since_open);
					if (ev.local_close)
						cJSON_AddBoolToObject(j, "local", true);
					emit_json(j);
				}
			} else {
				printf("closed %d '%s' after %llu ms%s\n", ev.close_code,
				       ev.close_reason, (unsigned long long)ev.ms_since_open,
				       ev.local_close ? " (this side)" : "");
				fflush(stdout);
			}
			break;
		}
		default:
			break;
		}
		if (ev.kind == NODE_EV_CLOSE) {
			int code = ev.close_code;
			bool was_paired = sn->paired_once && s.t_hello;

			if (!sn->ever_established && !s.t_hello && code == 1006 && ev.local_close) {
				fprintf(stderr, "%s: %s\n", o->url, ev.close_reason);
				out = ATT_UNREACHABLE;
			} else if (refused) {
				out = ATT_REFUSED;
			} else if (use_dev && !was_paired &&
			           (auth_error ||
			            node_error_is_auth(NULL, NULL, code, ev.close_reason))) {
				/* the gateway forgot or revoked our device token */
				sn->device_token_refused = true;
				node_token_save(sn->token_path, sn->id.device_id, o->url, NULL);
				if (!o->json)
					printf("device token refused; retrying with the shared token\n");
				out = ATT_RETRY_FAST;
			} else if (code == 4403 || code == 4409 || code == 4410 ||
			           (error_seen && !pending_seen && err_details &&
			            strcmp(err_details, "PAIRING_REQUIRED") && code != 1008) ||
			           (error_seen && auth_error)) {
				out = ATT_REFUSED;
			} else if (error_seen && err_details && *err_details &&
			           strcmp(err_details, "PAIRING_REQUIRED") &&
			           !strstr(ev.close_reason, "pairing required")) {
				out = ATT_REFUSED;
			} else if (was_paired) {
				out = ATT_RETRY_BACKOFF;
			} else if (code == 1008 || code == 4408 || pending_seen) {
				out = ATT_RETRY_COMPAT;
			} else {
				out = ATT_RETRY_BACKOFF;
			}
			node_event_finish(&ev);
			client_item_finish(&it);
			break;
		}
		node_event_finish(&ev);
		client_item_finish(&it);
	}
	node_session_end(&s);
	return out;
}

static int run_single(const struct opts *o)
{
	struct single *sn = calloc(1, sizeof(*sn));
	struct client_ctx *ctx = NULL;
	uint64_t deadline;
	int backoff = BACKOFF_MIN_MS, rc = EXIT_REFUSED;
	bool created = false;
	char *slash;

	if (!sn)
		return EXIT_USAGE;
	sn->o = o;
	if (o->identity)
		snprintf(sn->identity_path, sizeof(sn->identity_path), "%s", o->identity);
	else if (default_identity_path(sn->identity_path, sizeof(sn->identity_path)) < 0) {
		fprintf(stderr, "no --identity and neither XDG_STATE_HOME nor HOME is set\n");
		rc = EXIT_USAGE;
		goto out;
	}
	slash = strrchr(sn->identity_path, '/');
	if (slash && slash != sn->identity_path) {
		*slash = '\0';
		if (mkdir_p(sn->identity_path, 0700) < 0 ||
		    (mkdir(sn->identity_path, 0700) < 0 && errno != EEXIST)) {
			fprintf(stderr, "%s: %s\n", sn->identity_path, strerror(errno));
			*slash = '/';
			rc = EXIT_USAGE;
			goto out;
		}
		*slash = '/';
	}
	if (identity_load_or_create(&sn->id, sn->identity_path, &created) < 0) {
		fprintf(stderr, "%s: cannot load or create the identity file\n", sn->identity_path);
		rc = EXIT_USAGE;
		goto out;
	}
	node_token_path(sn->identity_path, sn->token_path, sizeof(sn->token_path));
	sn->device_token = node_token_load(sn->token_path, sn->id.device_id, o->url);
	sn->cfg.url = o->url;
	sn->cfg.shared_token = o->token;
	sn->cfg.xff = o->xff;
	sn->cfg.netns = o->netns;
	sn->cfg.display_name = o->display_name;
	sn->cfg.commands = o->commands;
	sn->cfg.n_commands = o->n_commands;
	sn->cfg.sig = o->sig;
	sn->cfg.connect_timeout_ms = o->connect_timeout_ms;
	ctx = client_ctx_create(NULL);
	if (!ctx) {
		fprintf(stderr, "cannot create the WebSocket context\n");
		rc = EXIT_USAGE;
		goto out;
	}
	{
		char fp[IDENTITY_FINGERPRINT_LEN + 1];

		identity_fingerprint(sn->id.pk, fp);
		if (o->json) {
			cJSON *j = jev("identity");

			if (j) {
				cJSON_AddStringToObject(j, "deviceId", sn->id.device_id);
				cJSON_AddStringToObject(j, "fingerprint", fp);
				cJSON_AddStringToObject(j, "path", sn->identity_path);
				cJSON_AddBoolToObject(j, "created", created);
				cJSON_AddBoolToObject(j, "deviceToken", sn->device_token != NULL);
				emit_json(j);
			}
		} else {
			printf("device %s (fingerprint %s)%s\n", sn->id.device_id, fp,
			       created ? ", new identity" : "");
			fflush(stdout);
		}
	}
	deadline = client_now_ms() + (uint64_t)o->timeout_ms;
	for (;;) {
		enum attempt_outcome a = one_attempt(sn, ctx, deadline);
		int wait_ms = 0;

		if (a == ATT_ONCE_DONE) {
			rc = EXIT_PAIRED;
			break;
		}
		if (a == ATT_STOPPED) {
			rc = sn->paired_once ? EXIT_PAIRED : EXIT_REFUSED;
			print_summary(sn, sn->paired_once ? "stopped (was paired)" : "stopped");
			break;
		}
		if (a == ATT_UNREACHABLE) {
			rc = EXIT_USAGE;
			print_summary(sn, "unreachable");
			break;
		}
		if (a == ATT_REFUSED) {
			rc = EXIT_REFUSED;
			print_summary(sn, "refused");
			break;
		}
		if (a == ATT_TIMEOUT) {
			rc = EXIT_REFUSED;
			print_summary(sn, "timeout");
			break;
		}
		if (a == ATT_RETRY_COMPAT) {
			wait_ms = COMPAT_RETRY_MS;
			backoff = BACKOFF_MIN_MS;
		} else if (a == ATT_RETRY_BACKOFF) {
			wait_ms = backoff;
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
		}
		if (sn->paired_once && a != ATT_RETRY_FAST)
			; /* a paired node reconnects until stopped; the pairing deadline is over */
		else if (client_now_ms() + (uint64_t)wait_ms >= deadline) {
			rc = EXIT_REFUSED;
			print_summary(sn, "timeout");
			break;
		}
		if (sn->paired_once)
			deadline = UINT64_MAX;
		if (o->json) {
			cJSON *j = jev("reconnect");

			if (j) {
				cJSON_AddNumberToObject(j, "inMs", wait_ms);
				cJSON_AddNumberToObject(j, "attempt", sn->attempts + 1);
				emit_json(j);
			}
		} else {
			printf("reconnecting in %d ms (attempt %d)\n", wait_ms, sn->attempts + 1);
			fflush(stdout);
		}
		{
			uint64_t until = client_now_ms() + (uint64_t)wait_ms;

			while (!stop_requested && client_now_ms() < until)
				client_service(ctx, 100);
		}
		if (stop_requested) {
			rc = sn->paired_once ? EXIT_PAIRED : EXIT_REFUSED;
			print_summary(sn, "stopped");
			break;
		}
	}
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

static int run_swarm(const struct opts *o)
{
	size_t n = (size_t)o->count, n_pending = 0, n_paired = 0, n_failed = 0, n_lat = 0;
	struct swarm_node *nodes = calloc(n, sizeof(*nodes));
	uint64_t *lat = calloc(n, sizeof(*lat));
	struct client_ctx *ctx = NULL;
	uint64_t t0 = client_now_ms(), deadline = t0 + (uint64_t)o->timeout_ms, next_progress;
	int rc = EXIT_REFUSED;
	bool xff_auto = o->xff && !strcmp(o->xff, "auto");
	size_t next_open = 0, in_flight = 0;
	size_t concurrency = o->concurrency > 0 ? (size_t)o->concurrency : 48;

	if (!nodes || !lat) {
		fprintf(stderr, "out of memory\n");
		rc = EXIT_USAGE;
		goto out;
	}
	raise_nofile((long)n + 64);
	ctx = client_ctx_create(
	        &(struct client_ctx_opts){.max_conns = (unsigned)n + 64, .epoll = true});
	if (!ctx) {
		fprintf(stderr, "cannot create the WebSocket context\n");
		rc = EXIT_USAGE;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct swarm_node *sw = &nodes[i];

		if (identity_generate(&sw->id) < 0) {
			sw->st = SW_FAILED;
			sw->done = true;
			continue;
		}
		sw->cfg.url = o->url;
		sw->cfg.shared_token = o->token;
		if (xff_auto) {
			snprintf(sw->xff, sizeof(sw->xff), "10.77.%u.%u",
			         (unsigned)(1 + i / 250 % 250), (unsigned)(2 + i % 250));
			sw->cfg.xff = sw->xff;
		} else {
			sw->cfg.xff = o->xff;
		}
		sw->cfg.netns = o->netns;
		sw->cfg.display_name = o->display_name;
		sw->cfg.commands = o->commands;
		sw->cfg.n_commands = o->n_commands;
		sw->cfg.sig = o->sig;
		sw->cfg.connect_timeout_ms = o->connect_timeout_ms;
	}
	next_progress = client_now_ms() + 1000;
	for (;;) {
		size_t open_outcomes = 0;
		uint64_t now;

		/* open more while few handshakes are in flight */
		while (next_open < n && in_flight < concurrency) {
			struct swarm_node *sw = &nodes[next_open++];
			char err[256];

			if (sw->done)
				continue;
			if (node_session_open(&sw->s, ctx, &sw->cfg, &sw->id, o->token, false, err,
			                      sizeof(err)) < 0) {
				sw->st = SW_FAILED;
				sw->done = true;
				continue;
			}
			sw->opened = true;
			in_flight++;
		}
		client_service(ctx, 50);
		now = client_now_ms();
		n_pending = n_paired = n_failed = 0;
		in_flight = 0;
		for (size_t i = 0; i < n; i++) {
			struct swarm_node *sw = &nodes[i];
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
					lat[n_lat++] = sw->latency_ms;
					sw->done = true;
				} else if (ev.kind == NODE_EV_CLOSE || ev.kind == NODE_EV_ERROR ||
				           ev.kind == NODE_EV_GARBAGE) {
					if (o->verbose)
						fprintf(stderr, "node %zu: %s %d %s\n", i,
						        ev.kind == NODE_EV_CLOSE ? "closed"
						                                 : "error",
						        ev.close_code,
						        ev.kind == NODE_EV_CLOSE ? ev.close_reason
						        : ev.details_code        ? ev.details_code
						                                 : "");
					sw->st = SW_FAILED;
					sw->done = true;
				}
				node_event_finish(&ev);
				client_item_finish(&it);
			}
			if (sw->opened && !sw->done && sw->s.state == NODE_S_OPENING &&
			    now - sw->s.t_open > (uint64_t)o->connect_timeout_ms + 1000) {
				sw->st = SW_FAILED;
				sw->done = true;
			}
			if (sw->done && sw->s.conn && sw->st != SW_PAIRED)
				node_session_end(&sw->s);
			n_pending += sw->st == SW_PENDING;
			n_paired += sw->st == SW_PAIRED;
			n_failed += sw->st == SW_FAILED;
			in_flight += sw->opened && !sw->done && sw->st == SW_CONNECTING;
			open_outcomes += !sw->done && !(o->once && sw->st == SW_PENDING);
		}
		if (now >= next_progress) {
			fprintf(stderr,
			        "[%5.1fs] connecting %zu, pending %zu, paired %zu, failed %zu\n",
			        (double)(now - t0) / 1000.0, n - n_pending - n_paired - n_failed,
			        n_pending, n_paired, n_failed);
			next_progress = now + 1000;
		}
		if (!open_outcomes || now >= deadline || stop_requested)
			break;
	}
	qsort(lat, n_lat, sizeof(*lat), cmp_u64);
	if (o->json) {
		cJSON *j = jev("summary");

		if (j) {
			cJSON_AddNumberToObject(j, "count", (double)n);
			cJSON_AddNumberToObject(j, "pending", (double)n_pending);
			cJSON_AddNumberToObject(j, "paired", (double)n_paired);
			cJSON_AddNumberToObject(j, "failed", (double)n_failed);
			cJSON_AddNumberToObject(j, "connecting",
			                        (double)(n - n_pending - n_paired - n_failed));
			cJSON_AddNumberToObject(j, "p50Ms", (double)pct(lat, n_lat, 0.50));
			cJSON_AddNumberToObject(j, "p90Ms", (double)pct(lat, n_lat, 0.90));
			cJSON_AddNumberToObject(j, "p99Ms", (double)pct(lat, n_lat, 0.99));
			cJSON_AddNumberToObject(j, "maxMs", n_lat ? (double)lat[n_lat - 1] : 0);
			cJSON_AddNumberToObject(j, "elapsedMs", (double)(client_now_ms() - t0));
			emit_json(j);
		}
	} else {
		printf("nodes %zu: pending %zu, paired %zu, failed %zu, connecting %zu\n", n,
		       n_pending, n_paired, n_failed, n - n_pending - n_paired - n_failed);
		printf("connect to hello-ok: p50 %llu ms, p90 %llu ms, p99 %llu ms, max %llu ms "
		       "(%zu samples)\n",
		       (unsigned long long)pct(lat, n_lat, 0.50),
		       (unsigned long long)pct(lat, n_lat, 0.90),
		       (unsigned long long)pct(lat, n_lat, 0.99),
		       (unsigned long long)(n_lat ? lat[n_lat - 1] : 0), n_lat);
		fflush(stdout);
	}
	if (n_paired == n)
		rc = EXIT_PAIRED;
	else if (o->once && n_failed == 0 && n_paired + n_pending == n)
		rc = EXIT_PAIRED; /* --once: every node reached its first outcome */
	else
		rc = EXIT_REFUSED;
out:
	for (size_t i = 0; nodes && i < n; i++)
		node_session_end(&nodes[i].s);
	client_ctx_destroy(ctx);
	free(nodes);
	free(lat);
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
	if (parse_args(argc, argv, &o) < 0) {
		fprintf(stderr, "try --help\n");
		free(o.commands_buf);
		return EXIT_USAGE;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (identity_global_init() < 0) {
		fprintf(stderr, "crypto library init failed\n");
		free(o.commands_buf);
		return EXIT_USAGE;
	}
	if (o.script)
		rc = run_script(&o);
	else if (o.count)
		rc = run_swarm(&o);
	else
		rc = run_single(&o);
	free(o.commands_buf);
	return rc;
}
