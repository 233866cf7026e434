/* fakegw.c: the scripted gateway of the client mode: challenge, connect checks (nonce,
 * signature, deviceId), the script's answer to each connect, ticks, hostile frames, and the
 * record of what each connection showed. No sockets: fakegw_lws.c feeds it. */
#include "fakegw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authpayload.h"
#include "connect.h"
#include "frame.h"
#include "json.h"
#include "random.h"

#define MAX_DEVICES 16
#define SERVER_VERSION "0.1.0"
#define MAX_PAYLOAD 524288
#define MAX_BUFFERED 1572864
#define PENDING_TTL_MS 300000
/* hostile frames go out this long after hello-ok, so that the client has taken it first */
#define HOSTILE_DELAY_MS 50

enum conn_state { ST_PREAUTH = 0, ST_PENDING, ST_SILENT, ST_AUTHED, ST_CLOSING, ST_GONE };

struct fakegw_conn {
	struct fakegw *gw;
	size_t idx; /* into gw->obs */
	void *user;
	enum conn_state st;
	char connect_id[128];
	int64_t seq;
	int64_t next_tick_ms, ticks_until_ms, hold_until_ms, close_at_ms, hostile_at_ms;
	const struct fakegw_action *act;
	int protocol;
};

struct device {
	char public_key[48];
	char request_id[37];
	char token[33];
	char signature
	        [128]; /* of its last connect: a frame other than a connect must not carry it */
	unsigned connects;
};

struct fakegw {
	struct fakegw_script s;
	struct fakegw_io io;
	int64_t t0, wall0; /* now_ms and the wall clock at creation */
	struct fakegw_obs obs;
	size_t cap;
	struct fakegw_conn **conns; /* parallel to obs.v; NULL once gone */
	struct device dev[MAX_DEVICES];
	size_t n_dev;
	fakegw_log_fn log;
	void *log_user;
};

static int64_t rel(const struct fakegw *gw, int64_t now)
{
	return now - gw->t0;
}

static struct fakegw_conn_obs *obs_of(const struct fakegw_conn *c)
{
	return &c->gw->obs.v[c->idx];
}

static void logf_line(struct fakegw *gw, int64_t now, size_t conn, const char *dir,
                      const char *text)
{
	if (gw->log)
		gw->log(gw->log_user, rel(gw, now), conn, dir, text);
}

static void send_text(struct fakegw_conn *c, char *text, int64_t now)
{
	if (!text || c->st == ST_GONE || c->st == ST_CLOSING) {
		free(text);
		return;
	}
	logf_line(c->gw, now, c->idx, ">", text);
	c->gw->io.send(c->user, text, strlen(text));
	obs_of(c)->last_tx_ms = rel(c->gw, now);
	free(text);
}

static void close_conn(struct fakegw_conn *c, int code, const char *reason, int64_t now)
{
	char line[160];

	if (c->st == ST_GONE || c->st == ST_CLOSING)
		return;
	snprintf(line, sizeof line, "%d '%s' (gateway)", code, reason);
	logf_line(c->gw, now, c->idx, "close", line);
	c->st = ST_CLOSING;
	obs_of(c)->closer = FAKEGW_BY_GATEWAY;
	obs_of(c)->close_code = code;
	snprintf(obs_of(c)->close_reason, sizeof obs_of(c)->close_reason, "%s", reason);
	obs_of(c)->close_ms = rel(c->gw, now);
	c->gw->io.close(c->user, code, reason);
}

/* ---- script ---- */

/* A time of the script: ms (times scale), "never", or "hold" (the runner's hold window). */
static int64_t ms_field(const cJSON *o, const char *k, int64_t dflt, double scale, int64_t hold)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (cJSON_IsString(v) && !strcmp(v->valuestring, "never"))
		return FAKEGW_NEVER;
	if (cJSON_IsString(v) && !strcmp(v->valuestring, "hold"))
		return hold;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0)
		return dflt;
	return (int64_t)(v->valuedouble * scale);
}

static enum cp_err outcome_named(const char *name)
{
	for (int e = CP_OK + 1; e < CP_ERR__COUNT; e++) {
		if (!strcmp(cp_err_info((enum cp_err)e)->name, name))
			return (enum cp_err)e;
	}
	return CP_OK;
}

static const struct {
	const char *name;
	unsigned bit;
} hostile_names[] = {
        {"unknown-event", FAKEGW_HOSTILE_UNKNOWN_EVENT},
        {"bad-seq", FAKEGW_HOSTILE_BAD_SEQ},
        {"huge", FAKEGW_HOSTILE_HUGE},
        {"garbage", FAKEGW_HOSTILE_GARBAGE},
};

static int parse_hostile(const cJSON *arr, unsigned *out, char *why, size_t whysz)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, arr)
	{
		size_t i;

		for (i = 0; i < sizeof hostile_names / sizeof hostile_names[0]; i++) {
			if (cJSON_IsString(it) && !strcmp(it->valuestring, hostile_names[i].name))
				break;
		}
		if (i == sizeof hostile_names / sizeof hostile_names[0]) {
			snprintf(why, whysz, "unknown hostile frame kind");
			return -1;
		}
		*out |= hostile_names[i].bit;
	}
	return 0;
}

/* {"answer": "hello-ok"|"pending"|"silent", "holdMs": N|"never", "then": "hello-ok"|"outcome",
 *  "outcome": "CP_ERR_...", "close": CODE, "reason": S, "closeAfterMs": N, "ticksForMs": N,
 *  "hostile": [...]} */
static int parse_action(const cJSON *o, double scale, int64_t hold, struct fakegw_action *a,
                        char *why, size_t whysz)
{
	const char *answer = json_get_string(o, "answer"), *then = json_get_string(o, "then");
	const char *outcome = json_get_string(o, "outcome"), *reason = json_get_string(o, "reason");
	const cJSON *close = cJSON_GetObjectItemCaseSensitive(o, "close");

	memset(a, 0, sizeof *a);
	if (!cJSON_IsObject(o) || !answer) {
		snprintf(why, whysz, "a step needs \"answer\"");
		return -1;
	}
	if (!strcmp(answer, "hello-ok"))
		a->answer = FAKEGW_ANSWER_HELLO;
	else if (!strcmp(answer, "pending"))
		a->answer = FAKEGW_ANSWER_PENDING;
	else if (!strcmp(answer, "silent"))
		a->answer = FAKEGW_ANSWER_SILENT;
	else {
		snprintf(why, whysz, "answer must be hello-ok, pending or silent");
		return -1;
	}
	a->hold_ms = ms_field(o, "holdMs", FAKEGW_NEVER, scale, hold);
	if (!then)
		a->then = FAKEGW_THEN_NOTHING;
	else if (!strcmp(then, "hello-ok"))
		a->then = FAKEGW_THEN_HELLO;
	else if (!strcmp(then, "outcome"))
		a->then = FAKEGW_THEN_OUTCOME;
	else {
		snprintf(why, whysz, "then must be hello-ok or outcome");
		return -1;
	}
	if (a->then == FAKEGW_THEN_OUTCOME &&
	    (!outcome || (a->outcome = outcome_named(outcome)) == CP_OK ||
	     !cp_err_info(a->outcome)->close_code)) {
		snprintf(why, whysz, "outcome must name an errors.def row that closes");
		return -1;
	}
	if (close && (!cJSON_IsNumber(close) || close->valueint < 1000 || close->valueint > 4999)) {
		snprintf(why, whysz, "close must be a close code");
		return -1;
	}
	a->close_code = close ? close->valueint : 0;
	snprintf(a->close_reason, sizeof a->close_reason, "%s", reason ? reason : "");
	a->close_after_ms = ms_field(o, "closeAfterMs", 0, scale, hold);
	a->ticks_for_ms = ms_field(o, "ticksForMs", FAKEGW_NEVER, scale, hold);
	return parse_hostile(cJSON_GetObjectItemCaseSensitive(o, "hostile"), &a->hostile, why,
	                     whysz);
}

int fakegw_script_parse(const cJSON *steps, const cJSON *gateway, double scale, int64_t hold_ms,
                        struct fakegw_script *out, char *why, size_t whysz)
{
	const cJSON *it;

	memset(out, 0, sizeof *out);
	out->tick_ms = ms_field(gateway, "tickMs", 30000, 1.0, 30000);
	if (out->tick_ms < 50 || out->tick_ms == FAKEGW_NEVER) {
		snprintf(why, whysz, "gateway.tickMs must be 50 ms or more");
		return -1;
	}
	out->tick_ms = (int64_t)((double)out->tick_ms * scale);
	if (!cJSON_IsArray(steps) || cJSON_GetArraySize(steps) < 1 ||
	    cJSON_GetArraySize(steps) > FAKEGW_MAX_ACTIONS) {
		snprintf(why, whysz, "steps must hold 1..%d answers", FAKEGW_MAX_ACTIONS);
		return -1;
	}
	cJSON_ArrayForEach(it, steps)
	{
		if (parse_action(it, scale, hold_ms, &out->actions[out->n_actions], why, whysz) < 0)
			return -1;
		out->n_actions++;
	}
	return 0;
}

/* ---- life cycle ---- */

struct fakegw *fakegw_create(const struct fakegw_script *s, const struct fakegw_io *io,
                             int64_t now_ms, int64_t wall_ms)
{
	struct fakegw *gw = calloc(1, sizeof *gw);

	if (!gw)
		return NULL;
	gw->s = *s;
	gw->io = *io;
	gw->t0 = now_ms;
	gw->wall0 = wall_ms;
	gw->obs.end_ms = -1;
	return gw;
}

static void obs_finish(struct fakegw_conn_obs *o)
{
	free(o->params_error);
	free(o->nonce_sent);
	free(o->auth_token);
	free(o->auth_device_token);
	free(o->leak);
}

void fakegw_destroy(struct fakegw *gw)
{
	if (!gw)
		return;
	for (size_t i = 0; i < gw->obs.n; i++) {
		obs_finish(&gw->obs.v[i]);
		free(gw->conns[i]);
	}
	free(gw->obs.v);
	free(gw->conns);
	free(gw);
}

void fakegw_set_log(struct fakegw *gw, fakegw_log_fn fn, void *user)
{
	gw->log = fn;
	gw->log_user = user;
}

const struct fakegw_obs *fakegw_obs(const struct fakegw *gw)
{
	return &gw->obs;
}

size_t fakegw_open_count(const struct fakegw *gw)
{
	size_t n = 0;

	for (size_t i = 0; i < gw->obs.n; i++)
		n += gw->conns[i] && gw->conns[i]->st != ST_GONE;
	return n;
}

struct fakegw_conn *fakegw_open(struct fakegw *gw, void *conn_user, int64_t now_ms)
{
	struct fakegw_conn *c;
	struct fakegw_conn_obs *o;
	cJSON *p;

	if (gw->obs.n == gw->cap) {
		size_t ncap = gw->cap ? gw->cap * 2 : 16;
		struct fakegw_conn_obs *nv = realloc(gw->obs.v, ncap * sizeof *nv);
		struct fakegw_conn **nc;

		if (!nv)
			return NULL;
		gw->obs.v = nv;
		nc = realloc(gw->conns, ncap * sizeof *nc);
		if (!nc)
			return NULL;
		gw->conns = nc;
		gw->cap = ncap;
	}
	c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->gw = gw;
	c->idx = gw->obs.n;
	c->user = conn_user;
	c->next_tick_ms = c->ticks_until_ms = c->hold_until_ms = c->close_at_ms = c->hostile_at_ms =
	        FAKEGW_NEVER;
	o = &gw->obs.v[gw->obs.n];
	memset(o, 0, sizeof *o);
	o->device = -1;
	o->open_ms = rel(gw, now_ms);
	o->connect_ms = o->pending_ms = o->hello_ms = o->close_ms = o->last_tx_ms = -1;
	gw->conns[gw->obs.n++] = c;
	uuid_v4(o->nonce);
	p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "nonce", o->nonce);
	json_add_int64(p, "ts", gw->wall0 + rel(gw, now_ms));
	send_text(c, frame_build_event("connect.challenge", p, -1), now_ms);
	return c;
}

/* ---- connect ---- */

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* The device of this key (made on its first connect), or NULL when the table is full. */
static struct device *device_of(struct fakegw *gw, const char *key, int *index)
{
	for (size_t i = 0; i < gw->n_dev; i++) {
		if (!strcmp(gw->dev[i].public_key, key)) {
			*index = (int)i;
			return &gw->dev[i];
		}
	}
	if (gw->n_dev == MAX_DEVICES)
		return NULL;
	snprintf(gw->dev[gw->n_dev].public_key, sizeof gw->dev[0].public_key, "%s", key);
	uuid_v4(gw->dev[gw->n_dev].request_id);
	token_random_hex32(gw->dev[gw->n_dev].token);
	*index = (int)gw->n_dev;
	gw->obs.n_devices = gw->n_dev + 1;
	return &gw->dev[gw->n_dev++];
}

/* Records the device fields of a connect: key, id, nonce and signature checks. */
static void check_device(struct fakegw_conn *c, const struct connect_params *cp)
{
	struct fakegw_conn_obs *o = obs_of(c);
	uint8_t pk[IDENTITY_PK_BYTES];
	char id[IDENTITY_DEVICE_ID_LEN + 1];

	o->has_device = cp->has_device;
	o->auth_token = xstrdup(cp->auth_token);
	o->auth_device_token = xstrdup(cp->auth_device_token);
	if (!cp->has_device)
		return;
	o->nonce_sent = xstrdup(cp->device_nonce);
	o->nonce_ok = cp->device_nonce && !strcmp(cp->device_nonce, o->nonce);
	snprintf(o->device_id, sizeof o->device_id, "%s", cp->device_id ? cp->device_id : "");
	if (!cp->device_public_key || identity_parse_public_key(cp->device_public_key, pk) < 0)
		return;
	o->key_ok = true;
	identity_normalize_public_key(cp->device_public_key, o->public_key, sizeof o->public_key);
	identity_device_id(pk, id);
	o->id_ok = cp->device_id && !strcmp(cp->device_id, id);
	o->sig_version = connect_verify_signature(cp, pk);
}

static cJSON *str_array(const char *const *v, size_t n)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
	return a;
}

static void send_hello(struct fakegw_conn *c, int64_t now)
{
	static const char *const methods[] = {"node.invoke.result", "node.event"};
	static const char *const events[] = {"connect.challenge", "connect.pending", "tick"};
	struct fakegw_conn_obs *o = obs_of(c);
	struct fakegw *gw = c->gw;
	cJSON *p = cJSON_CreateObject(), *x;
	char conn_id[37];

	cJSON_AddStringToObject(p, "type", "hello-ok");
	cJSON_AddNumberToObject(p, "protocol", c->protocol);
	x = cJSON_AddObjectToObject(p, "server");
	uuid_v4(conn_id);
	cJSON_AddStringToObject(x, "version", SERVER_VERSION);
	cJSON_AddStringToObject(x, "host", "clawpair-conformance");
	cJSON_AddStringToObject(x, "connId", conn_id);
	x = cJSON_AddObjectToObject(p, "features");
	cJSON_AddItemToObject(x, "methods", str_array(methods, 2));
	cJSON_AddItemToObject(x, "events", str_array(events, 3));
	x = cJSON_AddObjectToObject(p, "snapshot");
	cJSON_AddItemToObject(x, "presence", cJSON_CreateArray());
	cJSON_AddObjectToObject(x, "health");
	json_add_int64(x, "uptimeMs", rel(gw, now));
	if (o->device >= 0) {
		x = cJSON_AddObjectToObject(p, "auth");
		cJSON_AddStringToObject(x, "deviceToken", gw->dev[o->device].token);
		cJSON_AddStringToObject(x, "role", "node");
		cJSON_AddItemToObject(x, "scopes", cJSON_CreateArray());
		json_add_int64(x, "issuedAtMs", gw->wall0);
		snprintf(o->issued_token, sizeof o->issued_token, "%s", gw->dev[o->device].token);
	}
	x = cJSON_AddObjectToObject(p, "policy");
	cJSON_AddNumberToObject(x, "maxPayload", MAX_PAYLOAD);
	cJSON_AddNumberToObject(x, "maxBufferedBytes", MAX_BUFFERED);
	json_add_int64(x, "tickIntervalMs", gw->s.tick_ms);
	send_text(c, frame_build_res_ok(c->connect_id, p), now);
	o->hello_ms = rel(gw, now);
	c->st = ST_AUTHED;
	c->hold_until_ms = FAKEGW_NEVER;
	c->next_tick_ms = now + gw->s.tick_ms;
	c->ticks_until_ms =
	        c->act->ticks_for_ms == FAKEGW_NEVER ? FAKEGW_NEVER : now + c->act->ticks_for_ms;
	if (c->act->close_code)
		c->close_at_ms = now + c->act->close_after_ms;
	if (c->act->hostile)
		c->hostile_at_ms = now + HOSTILE_DELAY_MS;
}

static void send_pending(struct fakegw_conn *c, int64_t now)
{
	struct fakegw_conn_obs *o = obs_of(c);
	struct device *d = &c->gw->dev[o->device];
	uint8_t pk[IDENTITY_PK_BYTES];
	char fp[IDENTITY_FINGERPRINT_LEN + 1] = "";
	cJSON *p = cJSON_CreateObject();

	if (identity_parse_public_key(d->public_key, pk) == 0)
		identity_fingerprint(pk, fp);
	cJSON_AddStringToObject(p, "requestId", d->request_id);
	cJSON_AddStringToObject(p, "deviceId", o->device_id);
	cJSON_AddStringToObject(p, "fingerprint", fp);
	json_add_int64(p, "expiresAtMs", c->gw->wall0 + rel(c->gw, now) + PENDING_TTL_MS);
	cJSON_AddBoolToObject(p, "isRepair", false);
	send_text(c, frame_build_event("connect.pending", p, -1), now);
	snprintf(o->request_id, sizeof o->request_id, "%s", d->request_id);
	o->pending_ms = rel(c->gw, now);
	c->st = ST_PENDING;
	c->next_tick_ms = now + c->gw->s.tick_ms;
	c->hold_until_ms = c->act->hold_ms == FAKEGW_NEVER || c->act->then == FAKEGW_THEN_NOTHING
	                           ? FAKEGW_NEVER
	                           : now + c->act->hold_ms;
}

static void refuse(struct fakegw_conn *c, enum cp_err err, const char *why, int64_t now)
{
	const struct cp_err_info *e = cp_err_info(err);

	if (e->wire_code)
		send_text(c, frame_build_res_err(c->connect_id, err, why, NULL), now);
	if (e->close_code)
		close_conn(c, e->close_code, e->close_reason, now);
}

static void on_connect(struct fakegw_conn *c, struct frame *f, int64_t now)
{
	struct fakegw_conn_obs *o = obs_of(c);
	struct connect_params cp;
	struct device *d;
	char why[256];

	o->connect_seen = true;
	o->connect_ms = rel(c->gw, now);
	snprintf(c->connect_id, sizeof c->connect_id, "%s", f->id);
	if (connect_params_parse(f->params, &cp, why, sizeof why) != CP_OK) {
		o->params_error = strdup(why);
		refuse(c, CP_ERR_INVALID_CONNECT_PARAMS, why, now);
		return;
	}
	if (connect_check_protocol(&cp, &c->protocol) != CP_OK) {
		o->params_error = strdup("protocol range holds neither 3 nor 4");
		refuse(c, CP_ERR_PROTOCOL_MISMATCH, NULL, now);
		return;
	}
	check_device(c, &cp);
	if (!o->key_ok) {
		/* nothing to grade a pairing by: answered as a gateway would */
		refuse(c,
		       cp.has_device ? CP_ERR_PUBLIC_KEY_INVALID : CP_ERR_DEVICE_IDENTITY_REQUIRED,
		       NULL, now);
		return;
	}
	d = device_of(c->gw, o->public_key, &o->device);
	if (!d) {
		close_conn(c, 1013, "too many devices for one case", now);
		return;
	}
	o->nth = d->connects++;
	if (cp.device_signature && strlen(cp.device_signature) < sizeof d->signature)
		snprintf(d->signature, sizeof d->signature, "%s", cp.device_signature);
	c->act = &c->gw->s.actions[o->nth < c->gw->s.n_actions ? o->nth : c->gw->s.n_actions - 1];
	switch (c->act->answer) {
	case FAKEGW_ANSWER_HELLO:
		send_hello(c, now);
		break;
	case FAKEGW_ANSWER_PENDING:
		send_pending(c, now);
		break;
	case FAKEGW_ANSWER_SILENT:
		c->st = ST_SILENT;
		break;
	}
	/* a close of the script: from hello-ok (send_hello arms it), or from the pending or
	 * silent answer */
	if (c->st != ST_AUTHED && c->act->close_code)
		c->close_at_ms = now + c->act->close_after_ms;
}

/* A frame other than the first connect: a credential in it is a leak. */
static void check_leak(struct fakegw_conn *c, const char *text)
{
	struct fakegw *gw = c->gw;
	struct fakegw_conn_obs *o = obs_of(c);
	const char *what = NULL;

	if (o->leak)
		return;
	if (gw->s.shared_token && gw->s.shared_token[0] && strstr(text, gw->s.shared_token))
		what = "the shared token";
	for (size_t i = 0; !what && i < gw->n_dev; i++) {
		if (strstr(text, gw->dev[i].token))
			what = "its device token";
		else if (gw->dev[i].signature[0] && strstr(text, gw->dev[i].signature))
			what = "its connect signature";
	}
	if (what)
		o->leak = strdup(what);
}

void fakegw_message(struct fakegw_conn *c, const char *text, size_t len, bool binary,
                    int64_t now_ms)
{
	struct fakegw_conn_obs *o = obs_of(c);
	struct frame f;
	const char *why;
	char *copy;

	if (c->st == ST_GONE)
		return;
	o->frames_in++;
	copy = strndup(text, len);
	if (!copy)
		return;
	logf_line(c->gw, now_ms, c->idx, "<", binary ? "(binary message)" : copy);
	if (binary || frame_parse(text, len, &f, &why) < 0) {
		check_leak(c, copy);
		free(copy);
		return;
	}
	if (f.type == FRAME_REQ && !strcmp(f.method, "connect") && !o->connect_seen) {
		on_connect(c, &f, now_ms);
	} else if (f.type == FRAME_REQ && !strcmp(f.method, "connect")) {
		o->second_connect = true;
		send_text(c, frame_build_res_err(f.id, CP_ERR_CONNECT_AGAIN, NULL, NULL), now_ms);
	} else {
		check_leak(c, copy);
		if (f.type == FRAME_REQ && c->st == ST_AUTHED)
			send_text(c, frame_build_res_ok(f.id, cJSON_CreateObject()), now_ms);
		else if (f.type == FRAME_REQ)
			send_text(c,
			          frame_build_res_err(f.id, CP_ERR_UNAUTHORIZED_ROLE, NULL, NULL),
			          now_ms);
	}
	frame_finish(&f);
	free(copy);
}

void fakegw_closed(struct fakegw_conn *c, int code, const char *reason, enum fakegw_closer closer,
                   int64_t now_ms)
{
	struct fakegw_conn_obs *o = obs_of(c);
	char line[160];

	if (c->st == ST_GONE)
		return;
	if (c->st != ST_CLOSING) {
		o->closer = closer;
		o->close_code = code;
		snprintf(o->close_reason, sizeof o->close_reason, "%s", reason ? reason : "");
		o->close_ms = rel(c->gw, now_ms);
		snprintf(line, sizeof line, "%d '%s' (%s)", code, o->close_reason,
		         closer == FAKEGW_BY_CLIENT ? "client" : "no close frame");
		logf_line(c->gw, now_ms, c->idx, "close", line);
	}
	c->st = ST_GONE;
	c->user = NULL;
}

/* ---- timers ---- */

static void send_hostile(struct fakegw_conn *c, int64_t now)
{
	unsigned h = c->act->hostile;
	cJSON *p;

	c->hostile_at_ms = FAKEGW_NEVER;
	if (h & FAKEGW_HOSTILE_UNKNOWN_EVENT) {
		p = cJSON_CreateObject();
		cJSON_AddStringToObject(p, "what", "an event no client knows");
		send_text(c, frame_build_event("clawpair.conformance.unknown", p, ++c->seq), now);
	}
	if (h & FAKEGW_HOSTILE_BAD_SEQ) {
		p = cJSON_CreateObject();
		json_add_int64(p, "ts", c->gw->wall0 + rel(c->gw, now));
		send_text(c, frame_build_event("tick", p, c->seq > 1 ? c->seq - 1 : 0), now);
	}
	if (h & FAKEGW_HOSTILE_HUGE) {
		char *big = malloc(FAKEGW_HUGE_BYTES + 1);

		if (big) {
			memset(big, 'x', FAKEGW_HUGE_BYTES);
			big[FAKEGW_HUGE_BYTES] = '\0';
			p = cJSON_CreateObject();
			cJSON_AddStringToObject(p, "blob", big);
			free(big);
			send_text(c, frame_build_event("clawpair.conformance.huge", p, ++c->seq),
			          now);
		}
	}
	if (h & FAKEGW_HOSTILE_GARBAGE)
		send_text(c, strdup("{\"type\":\"event\",\"event\":tick,,}\xff not json"), now);
}

static void poll_conn(struct fakegw_conn *c, int64_t now)
{
	const struct fakegw_action *a = c->act;

	if (c->st == ST_PENDING && now >= c->hold_until_ms) {
		if (a->then == FAKEGW_THEN_HELLO)
			send_hello(c, now);
		else
			refuse(c, a->outcome, NULL, now);
	}
	if (c->st == ST_AUTHED && now >= c->hostile_at_ms)
		send_hostile(c, now);
	if ((c->st == ST_PENDING || c->st == ST_AUTHED) && now >= c->next_tick_ms &&
	    now < c->ticks_until_ms) {
		cJSON *p = cJSON_CreateObject();

		json_add_int64(p, "ts", c->gw->wall0 + rel(c->gw, now));
		send_text(c, frame_build_event("tick", p, ++c->seq), now);
		c->next_tick_ms = now + c->gw->s.tick_ms;
	}
	if (c->st != ST_GONE && c->st != ST_CLOSING && now >= c->close_at_ms)
		close_conn(c, a->close_code, a->close_reason, now);
}

void fakegw_poll(struct fakegw *gw, int64_t now_ms)
{
	for (size_t i = 0; i < gw->obs.n; i++) {
		if (gw->conns[i] && gw->conns[i]->act)
			poll_conn(gw->conns[i], now_ms);
	}
}

void fakegw_close_all(struct fakegw *gw, int code, const char *reason, int64_t now_ms)
{
	if (gw->obs.end_ms < 0)
		gw->obs.end_ms = rel(gw, now_ms);
	for (size_t i = 0; i < gw->obs.n; i++) {
		if (gw->conns[i])
			close_conn(gw->conns[i], code, reason, now_ms);
	}
}
