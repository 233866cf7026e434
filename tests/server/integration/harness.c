/* harness.c: integration-test helpers: the gateway's integration options, and protocol steps
 * (challenge, signed connect, calls, waits) over the client library. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "connect_build.h"
#include "frame.h"
#include "json.h"
#include "loadgen.h"

/* --- the gateway process --- */

static struct kit_gateway_opts gateway_opts(const char *const *extra)
{
	const char *level = getenv("CLAWPAIR_GW_LOG");
	struct kit_gateway_opts o = {.token = H_TOKEN,
	                             .trusted_proxy = "127.0.0.1",
	                             .log_level = level ? level : "warn",
	                             .extra = extra,
	                             .memcheck = under_valgrind(),
	                             .timeout_ms = kit_ms(5000)};

	return o;
}

/* Starts g, or starts it again on its state dir. */
static int gateway_up(struct kit_gateway *g, const char *const *extra, bool again)
{
	struct kit_gateway_opts o = gateway_opts(extra);
	char err[256];
	int rc = again ? kit_gateway_restart(g, &o, err, sizeof(err))
	               : kit_gateway_start(g, &o, err, sizeof(err));

	if (rc < 0)
		fprintf(stderr, "# %s\n", err);
	return rc;
}

int h_gateway_start(struct kit_gateway *g, const char *const *extra)
{
	return gateway_up(g, extra, false);
}

int h_gateway_restart(struct kit_gateway *g, const char *const *extra)
{
	return gateway_up(g, extra, true);
}

int h_gateway_stop(struct kit_gateway *g)
{
	return kit_gateway_stop(g, SIGTERM, kit_ms(10000));
}

/* --- connections --- */

int h_open(struct client_ctx *ctx, const struct kit_gateway *g, const char *xff, struct h_conn *hc)
{
	struct client_conn_opts o = {0};
	char err[256];

	memset(hc, 0, sizeof(*hc));
	o.url = g->proc.url;
	o.xff = xff;
	o.connect_timeout_ms = kit_ms(5000);
	if (client_connect(ctx, &o, &hc->c, err, sizeof(err)) < 0) {
		fprintf(stderr, "# connect to %s failed: %s\n", g->proc.url, err);
		return -1;
	}
	return 0;
}

void h_close(struct h_conn *hc)
{
	client_conn_destroy(hc->c);
	hc->c = NULL;
}

cJSON *h_next(struct h_conn *hc, int timeout_ms)
{
	struct client_item it;
	cJSON *j;

	if (hc->closed || !hc->c)
		return NULL;
	if (client_next(hc->c, timeout_ms, &it) != 1)
		return NULL;
	if (it.kind == CLIENT_ITEM_CLOSE) {
		hc->closed = true;
		hc->close_code = it.close_code;
		snprintf(hc->close_reason, sizeof(hc->close_reason), "%s", it.close_reason);
		client_item_finish(&it);
		return NULL;
	}
	j = cJSON_ParseWithLength(it.text, it.len);
	if (!j)
		fprintf(stderr, "# unparseable frame: %.*s\n", (int)it.len, it.text);
	client_item_finish(&it);
	return j;
}

static bool is_event(const cJSON *j, const char *name)
{
	const char *t = h_str(j, "type"), *e = h_str(j, "event");

	return t && strcmp(t, "event") == 0 && (!name || (e && strcmp(e, name) == 0));
}

static bool is_res(const cJSON *j, const char *id)
{
	const char *t = h_str(j, "type"), *rid = h_str(j, "id");

	return t && strcmp(t, "res") == 0 && rid && strcmp(rid, id) == 0;
}

/* Milliseconds left until deadline (0 once past). */
static int left_ms(uint64_t deadline)
{
	uint64_t now = clock_mono_ms();

	return now < deadline ? (int)(deadline - now) : 0;
}

/* The next frame for which keep() is true, dropping the others (dropped() sees them first);
 * NULL on timeout or close. */
static cJSON *next_matching(struct h_conn *hc, int timeout_ms,
                            bool (*keep)(const cJSON *j, const void *arg), const void *arg,
                            void (*dropped)(const cJSON *j, const void *arg))
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int left = left_ms(deadline);
		cJSON *j;

		if (left <= 0)
			return NULL;
		j = h_next(hc, left);
		if (!j || keep(j, arg))
			return j;
		if (dropped)
			dropped(j, arg);
		cJSON_Delete(j);
	}
}

static bool keep_non_tick(const cJSON *j, const void *arg)
{
	(void)arg;
	return !is_event(j, "tick");
}

static bool keep_event(const cJSON *j, const void *arg)
{
	return is_event(j, arg);
}

static bool keep_res(const cJSON *j, const void *arg)
{
	return is_res(j, arg);
}

static void note_skipped(const cJSON *j, const void *arg)
{
	if (!is_event(j, NULL))
		fprintf(stderr, "# skipped unexpected frame while waiting for res %s\n",
		        (const char *)arg);
}

cJSON *h_next_non_tick(struct h_conn *hc, int timeout_ms)
{
	return next_matching(hc, timeout_ms, keep_non_tick, NULL, NULL);
}

cJSON *h_wait_event(struct h_conn *hc, const char *event, int timeout_ms)
{
	return next_matching(hc, timeout_ms, keep_event, event, NULL);
}

cJSON *h_wait_res(struct h_conn *hc, const char *id, int timeout_ms)
{
	return next_matching(hc, timeout_ms, keep_res, id, note_skipped);
}

int h_wait_close(struct h_conn *hc, int timeout_ms)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;

	while (!hc->closed) {
		int left = left_ms(deadline);
		cJSON *j;

		if (left <= 0)
			return -1;
		j = h_next(hc, left);
		cJSON_Delete(j);
		if (!j && !hc->closed && left_ms(deadline) == 0)
			return -1;
	}
	return hc->close_code;
}

bool h_quiet(struct h_conn *hc, const char *event, int ms)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)ms;

	for (;;) {
		int left = left_ms(deadline);
		cJSON *j;

		if (left <= 0)
			return !hc->closed;
		j = h_next(hc, left);
		if (!j)
			return !hc->closed;
		if (!is_event(j, "tick") && (!event || is_event(j, event))) {
			char *s = json_print(j);

			fprintf(stderr, "# unexpected frame: %s\n", s ? s : "?");
			free(s);
			cJSON_Delete(j);
			return false;
		}
		cJSON_Delete(j);
	}
}

int h_challenge(struct h_conn *hc, int timeout_ms)
{
	cJSON *j = h_next(hc, timeout_ms);
	const char *nonce = h_str(j, "payload.nonce");
	int rc = -1;

	if (is_event(j, "connect.challenge") && nonce && !h_get(j, "seq")) {
		snprintf(hc->nonce, sizeof(hc->nonce), "%s", nonce);
		rc = 0;
	} else {
		fprintf(stderr, "# no connect.challenge first\n");
	}
	cJSON_Delete(j);
	return rc;
}

/* Sends the frame text (malloc'd or NULL) and frees it. */
static int send_text(struct h_conn *hc, char *text)
{
	int rc = text ? client_send_text(hc->c, text) : -1;

	free(text);
	return rc;
}

/* The integration node's connect: client node-host / node on linux, version 1.0.0, role, caps []
 * and commands [] but no scopes, auth.token and the signed device. The client.instanceId that
 * connect_params_build adds for a device is dropped: these tests pin the minimal node connect
 * the gateway must accept. */
int h_send_node_connect(struct h_conn *hc, const struct identity *id, const struct h_node_opts *o)
{
	static const struct h_node_opts defaults = {0};
	struct connect_spec s = {0};
	cJSON *params;

	if (!o)
		o = &defaults;
	snprintf(hc->connect_id, sizeof(hc->connect_id), "%s", o->req_id ? o->req_id : "c1");
	s.role = o->role ? o->role : "node";
	s.client_id = "node-host";
	s.client_mode = "node";
	s.platform = "linux";
	s.version = "1.0.0";
	s.display_name = o->display_name ? o->display_name : "integration node";
	s.scopes_omit = true;
	s.token = o->token ? o->token : H_TOKEN;
	s.identity = id;
	s.sig = o->sig_version == 2 ? CONNECT_SIG_V2 : CONNECT_SIG_V3;
	s.nonce = CONNECT_NONCE_CHALLENGE;
	s.min_protocol = 3;
	s.max_protocol = 4;
	params = connect_params_build(&s, o->nonce ? o->nonce : hc->nonce, clock_wall_ms());
	if (!params)
		return -1;
	cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(params, "client"),
	                                        "instanceId");
	return send_text(hc, frame_build_req(hc->connect_id, "connect", params));
}

int h_node_begin(struct client_ctx *ctx, const struct kit_gateway *g, const char *xff,
                 const struct identity *id, const struct h_node_opts *o, struct h_conn *hc)
{
	if (h_open(ctx, g, xff, hc) < 0)
		return -1;
	if (h_challenge(hc, kit_ms(3000)) < 0)
		return -1;
	return h_send_node_connect(hc, id, o);
}

int h_operator(struct client_ctx *ctx, const struct kit_gateway *g, const char *const *scopes,
               struct h_conn *hc)
{
	struct connect_spec s;
	size_t n_scopes = 0;
	cJSON *res;
	int rc = -1;

	if (h_open(ctx, g, NULL, hc) < 0 || h_challenge(hc, kit_ms(3000)) < 0)
		return -1;
	snprintf(hc->connect_id, sizeof(hc->connect_id), "op-connect");
	while (scopes && scopes[n_scopes])
		n_scopes++;
	loadgen_operator_spec(&s, H_TOKEN, scopes, n_scopes);
	if (send_text(hc, connect_request_build(hc->connect_id, &s, NULL, clock_wall_ms())) < 0)
		return -1;
	res = h_wait_res(hc, hc->connect_id, kit_ms(3000));
	if (h_is_res_ok(res) &&
	    strcmp(h_str(res, "payload.type") ? h_str(res, "payload.type") : "", "hello-ok") == 0)
		rc = 0;
	else
		fprintf(stderr, "# operator connect failed: %s\n", h_err_details_code(res));
	cJSON_Delete(res);
	return rc;
}

int h_send_req(struct h_conn *hc, const char *method, cJSON *params, char *id_out)
{
	snprintf(id_out, 32, "r%u", ++hc->next_req);
	return send_text(hc,
	                 frame_build_req(id_out, method, params ? params : cJSON_CreateObject()));
}

cJSON *h_call(struct h_conn *hc, const char *method, cJSON *params, int timeout_ms)
{
	char id[32];

	if (h_send_req(hc, method, params, id) < 0)
		return NULL;
	return h_wait_res(hc, id, timeout_ms);
}

/* --- frame accessors --- */

const cJSON *h_get(const cJSON *obj, const char *path)
{
	char key[128];
	const char *p = path;

	while (obj && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);

		if (n >= sizeof(key))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		obj = cJSON_GetObjectItemCaseSensitive(obj, key);
		p += n + (dot ? 1 : 0);
	}
	return obj;
}

const char *h_str(const cJSON *obj, const char *path)
{
	const char *last = strrchr(path, '.');
	char parent[128];

	if (!last)
		return json_get_string(obj, path);
	if ((size_t)(last - path) >= sizeof(parent))
		return NULL;
	snprintf(parent, sizeof(parent), "%.*s", (int)(last - path), path);
	return json_get_string(h_get(obj, parent), last + 1);
}

bool h_is_res_ok(const cJSON *res)
{
	return cJSON_IsTrue(h_get(res, "ok"));
}

const char *h_err_code(const cJSON *res)
{
	const char *s = h_str(res, "error.code");

	return s ? s : "";
}

const char *h_err_details_code(const cJSON *res)
{
	const char *s = h_str(res, "error.details.code");

	return s ? s : "";
}
