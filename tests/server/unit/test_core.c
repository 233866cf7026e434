/* test_core.c: drives the I/O-free pairing core with a fake clock, real Ed25519 identities and a
 * real store in a temp dir, and checks every frame and close it emits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "authpayload.h"
#include "core.h"
#include "identity.h"
#include "store.h"

#define T0 1795479066100ULL
#define TOKEN "shared-secret-token"
#define MAX_CLIENTS 48
#define MAX_FRAMES 64

struct client {
	struct env *env;
	struct core_conn *conn;
	char ip[64];
	cJSON *frames[MAX_FRAMES];
	size_t n, pos;
	bool closed, reaped;
	int close_code;
	char close_reason[128];
	char nonce[64];
	int next_id;
	char last_id[32];
	char connect_id[32];
};

struct env {
	char dir[64];
	struct store *store;
	struct core *core;
	struct core_config cfg;
	const char *trusted[2];
	struct core_io io;
	uint64_t now;
	struct client clients[MAX_CLIENTS];
	size_t n_clients;
	int warns;
	char last_warn[1024];
};

/* ---- harness ---- */

static void io_send(void *user, void *conn_user, const char *text, size_t len)
{
	struct client *c = conn_user;
	cJSON *j;

	(void)user;
	assert_false(c->closed); /* nothing after a close */
	assert_true(c->n < MAX_FRAMES);
	j = cJSON_ParseWithLength(text, len);
	assert_non_null(j);
	c->frames[c->n++] = j;
}

static void io_close(void *user, void *conn_user, int code, const char *reason)
{
	struct client *c = conn_user;

	(void)user;
	assert_false(c->closed);
	c->closed = true;
	c->close_code = code;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	assert_true(strlen(reason) <= 120);
}

static void io_log(void *user, enum core_log_level level, const char *line)
{
	struct env *e = user;

	if (level == CORE_LOG_WARN) {
		e->warns++;
		snprintf(e->last_warn, sizeof(e->last_warn), "%s", line);
	}
	if (getenv("CLAWPAIR_TEST_VERBOSE"))
		fprintf(stderr, "# log %d: %s\n", level, line);
}

static struct core_config base_cfg(void)
{
	struct core_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.token = TOKEN;
	cfg.server_version = "test";
	cfg.server_host = "unit";
	return cfg;
}

static void env_start_core(struct env *e)
{
	char err[256] = "";

	assert_int_equal(store_open(e->dir, &e->store, err, sizeof(err)), 0);
	e->io.user = e;
	e->io.send = io_send;
	e->io.close = io_close;
	e->io.log = io_log;
	assert_int_equal(core_create(&e->cfg, &e->io, e->store, e->now, &e->core), 0);
}

static struct env *env_new(const struct core_config *cfg)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	snprintf(e->dir, sizeof(e->dir), "/tmp/clawpair-core-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	e->cfg = cfg ? *cfg : base_cfg();
	e->now = T0;
	env_start_core(e);
	return e;
}

static void client_reset(struct client *c)
{
	for (size_t i = 0; i < c->n; i++)
		cJSON_Delete(c->frames[i]);
	c->n = c->pos = 0;
}

/* What the adapter does once a socket is gone. */
static void reap(struct env *e)
{
	for (size_t i = 0; i < e->n_clients; i++) {
		struct client *c = &e->clients[i];

		if (c->closed && !c->reaped) {
			core_conn_closed(e->core, c->conn, e->now);
			c->reaped = true;
		}
	}
	assert_true(core_index_consistent(e->core));
}

static void env_stop_core(struct env *e)
{
	for (size_t i = 0; i < e->n_clients; i++) {
		struct client *c = &e->clients[i];

		if (!c->reaped) {
			core_conn_closed(e->core, c->conn, e->now);
			c->reaped = true;
		}
	}
	core_destroy(e->core);
	e->core = NULL;
	store_close(e->store);
	e->store = NULL;
}

static void rm_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char sub[512];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		if (unlink(sub) < 0)
			rm_dir(sub); /* the store's table directories */
	}
	closedir(d);
	rmdir(path);
}

static void env_free(struct env *e)
{
	env_stop_core(e);
	for (size_t i = 0; i < e->n_clients; i++)
		client_reset(&e->clients[i]);
	rm_dir(e->dir);
	free(e);
}

static const cJSON *jget(const cJSON *o, const char *path)
{
	char buf[256], *save = NULL, *tok;
	const cJSON *cur = o;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save)) {
		if (cJSON_IsArray(cur))
			cur = cJSON_GetArrayItem(cur, atoi(tok));
		else
			cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
	}
	return cur;
}

static const char *jstr(const cJSON *o, const char *path)
{
	const cJSON *v = jget(o, path);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *path)
{
	const cJSON *v = jget(o, path);

	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static const cJSON *next_frame(struct client *c)
{
	if (c->pos >= c->n) {
		print_error("client %s: expected a frame, got none\n", c->ip);
		fail();
	}
	return c->frames[c->pos++];
}

static void expect_no_frame(struct client *c)
{
	if (c->pos < c->n) {
		char *t = cJSON_PrintUnformatted(c->frames[c->pos]);

		print_error("client %s: unexpected frame %s\n", c->ip, t);
		free(t);
		fail();
	}
}

static const cJSON *expect_event(struct client *c, const char *name, int seq)
{
	const cJSON *f = next_frame(c);

	assert_string_equal(jstr(f, "type"), "event");
	assert_string_equal(jstr(f, "event"), name);
	if (seq < 0)
		assert_null(jget(f, "seq"));
	else
		assert_int_equal((int)jnum(f, "seq"), seq);
	return jget(f, "payload");
}

static const cJSON *expect_ok(struct client *c, const char *id)
{
	const cJSON *f = next_frame(c);

	assert_string_equal(jstr(f, "type"), "res");
	assert_string_equal(jstr(f, "id"), id);
	if (!cJSON_IsTrue(jget(f, "ok"))) {
		char *t = cJSON_PrintUnformatted(f);

		print_error("expected ok, got %s\n", t);
		free(t);
		fail();
	}
	return jget(f, "payload");
}

static const cJSON *expect_err(struct client *c, const char *id, const char *wire,
                               const char *dcode)
{
	const cJSON *f = next_frame(c);

	assert_string_equal(jstr(f, "type"), "res");
	assert_string_equal(jstr(f, "id"), id);
	assert_true(cJSON_IsFalse(jget(f, "ok")));
	assert_string_equal(jstr(f, "error.code"), wire);
	assert_string_equal(jstr(f, "error.details.code"), dcode);
	return jget(f, "error");
}

static void expect_closed(struct client *c, int code)
{
	assert_true(c->closed);
	assert_int_equal(c->close_code, code);
}

static struct client *open_peer(struct env *e, const struct core_peer *peer)
{
	struct client *c;
	const cJSON *p;

	assert_true(e->n_clients < MAX_CLIENTS);
	c = &e->clients[e->n_clients++];
	memset(c, 0, sizeof(*c));
	c->env = e;
	snprintf(c->ip, sizeof(c->ip), "%s", peer->ip ? peer->ip : "");
	c->conn = core_conn_open(e->core, c, peer, e->now);
	assert_non_null(c->conn);
	assert_true(core_index_consistent(e->core));
	if (c->closed)
		return c;
	p = expect_event(c, "connect.challenge", -1);
	snprintf(c->nonce, sizeof(c->nonce), "%s", jstr(p, "nonce"));
	assert_int_equal(jnum(p, "ts"), (double)e->now);
	return c;
}

static struct client *open_client(struct env *e, const char *ip)
{
	struct core_peer peer = {.ip = ip, .host = "gateway.test"};

	return open_peer(e, &peer);
}

static void send_text(struct client *c, const char *text)
{
	core_conn_message(c->env->core, c->conn, text, strlen(text), false, c->env->now);
	/* The lookups the core uses per message agree with a walk of every connection. */
	assert_true(core_index_consistent(c->env->core));
}

/* Sends a req with a fresh id; params_json is JSON text (or NULL). Returns the id. */
static const char *call(struct client *c, const char *method, const char *params_json)
{
	char buf[4096];

	snprintf(c->last_id, sizeof(c->last_id), "r%d", ++c->next_id);
	snprintf(buf, sizeof(buf), "{\"type\":\"req\",\"id\":\"%s\",\"method\":\"%s\"%s%s}",
	         c->last_id, method, params_json ? ",\"params\":" : "",
	         params_json ? params_json : "");
	send_text(c, buf);
	return c->last_id;
}

enum sig_kind { SIG_V3 = 0, SIG_V2, SIG_V1, SIG_BAD, SIG_NONE };

struct copts {
	const char *role; /* NULL: omitted (operator) */
	const struct identity *id;
	const char *token; /* NULL: no auth */
	const char *device_token;
	const char *bootstrap_token;
	const char *signed_token; /* the <token> the signature carries; NULL: as spec §4.4 says */
	const char *scopes[4];
	int n_scopes; /* -1: omitted */
	enum sig_kind sig;
	const char *nonce; /* NULL: the challenge's; "-": omitted */
	int64_t skew_ms; /* signedAt = now + skew */
	const char *dev_id; /* overrides device.id */
	const char *pubkey; /* overrides device.publicKey */
	int min_proto, max_proto;
	const char *extra; /* extra top-level "key":value text */
};

static char *connect_text(struct client *c, const struct copts *o, const char *req_id)
{
	cJSON *params = cJSON_CreateObject(), *client, *req;
	const char *role = o->role ? o->role : "operator";
	const char *nonce = o->nonce ? o->nonce : c->nonce;
	const char *tok = o->signed_token   ? o->signed_token
	                  : o->token        ? o->token
	                  : o->device_token ? o->device_token
	                                    : o->bootstrap_token;
	char *text;

	cJSON_AddNumberToObject(params, "minProtocol", o->min_proto ? o->min_proto : 3);
	cJSON_AddNumberToObject(params, "maxProtocol", o->max_proto ? o->max_proto : 4);
	client = cJSON_AddObjectToObject(params, "client");
	cJSON_AddStringToObject(client, "id", o->id ? "openclaw-android" : "cli");
	cJSON_AddStringToObject(client, "displayName", "Unit Node");
	cJSON_AddStringToObject(client, "version", "1.0.0");
	cJSON_AddStringToObject(client, "platform", "Android");
	cJSON_AddStringToObject(client, "deviceFamily", "Phone");
	cJSON_AddStringToObject(client, "mode", o->id && o->role ? "node" : "cli");
	if (o->role)
		cJSON_AddStringToObject(params, "role", o->role);
	if (o->n_scopes >= 0) {
		cJSON *s = cJSON_AddArrayToObject(params, "scopes");

		for (int i = 0; i < o->n_scopes; i++)
			cJSON_AddItemToArray(s, cJSON_CreateString(o->scopes[i]));
	}
	if (o->token || o->device_token || o->bootstrap_token) {
		cJSON *a = cJSON_AddObjectToObject(params, "auth");

		if (o->token)
			cJSON_AddStringToObject(a, "token", o->token);
		if (o->device_token)
			cJSON_AddStringToObject(a, "deviceToken", o->device_token);
		if (o->bootstrap_token)
			cJSON_AddStringToObject(a, "bootstrapToken", o->bootstrap_token);
	}
	if (o->id) {
		cJSON *d = cJSON_AddObjectToObject(params, "device");
		int64_t signed_at = (int64_t)c->env->now + o->skew_ms;
		char sig[IDENTITY_SIG_B64_LEN + 8] = "AAAA", plat[64], fam[64];
		struct authpayload_params ap = {
		        .device_id = o->id->device_id,
		        .client_id = "openclaw-android",
		        .client_mode = o->role ? "node" : "cli",
		        .role = role,
		        .scopes = o->scopes,
		        .n_scopes = o->n_scopes > 0 ? (size_t)o->n_scopes : 0,
		        .signed_at_ms = signed_at,
		        .token = tok,
		        .nonce = strcmp(nonce, "-") ? nonce : NULL,
		        .platform = plat,
		        .device_family = fam,
		};

		authpayload_normalize_meta("Android", plat, sizeof(plat));
		authpayload_normalize_meta("Phone", fam, sizeof(fam));
		if (o->sig != SIG_NONE) {
			enum authpayload_version v = o->sig == SIG_V2   ? AUTHPAYLOAD_V2
			                             : o->sig == SIG_V1 ? AUTHPAYLOAD_V1
			                                                : AUTHPAYLOAD_V3;
			char *payload = authpayload_build(v, &ap);

			assert_non_null(payload);
			assert_int_equal(identity_sign(o->id, payload, sig, sizeof(sig)), 0);
			free(payload);
			if (o->sig == SIG_BAD)
				sig[5] = sig[5] == 'A' ? 'B' : 'A';
		}
		cJSON_AddStringToObject(d, "id", o->dev_id ? o->dev_id : o->id->device_id);
		cJSON_AddStringToObject(d, "publicKey", o->pubkey ? o->pubkey : o->id->pk_b64);
		cJSON_AddStringToObject(d, "signature", sig);
		cJSON_AddNumberToObject(d, "signedAt", (double)signed_at);
		if (strcmp(nonce, "-") != 0)
			cJSON_AddStringToObject(d, "nonce", nonce);
	}
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "type", "req");
	cJSON_AddStringToObject(req, "id", req_id);
	cJSON_AddStringToObject(req, "method", "connect");
	cJSON_AddItemToObject(req, "params", params);
	text = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (o->extra) {
		/* Splice raw extra keys into params: {"...,"params":{EXTRA,...}} */
		char *p = strstr(text, "\"params\":{");
		size_t at = (size_t)(p - text) + strlen("\"params\":{");
		char *out = malloc(strlen(text) + strlen(o->extra) + 2);

		memcpy(out, text, at);
		strcpy(out + at, o->extra);
		strcat(out, ",");
		strcat(out, text + at);
		free(text);
		text = out;
	}
	return text;
}

static const char *do_connect(struct client *c, const struct copts *o)
{
	char *text;

	snprintf(c->connect_id, sizeof(c->connect_id), "c%d", ++c->next_id);
	text = connect_text(c, o, c->connect_id);
	send_text(c, text);
	free(text);
	return c->connect_id;
}

static struct copts node_opts(const struct identity *id)
{
	struct copts o = {.role = "node", .id = id, .token = TOKEN, .n_scopes = 0};

	return o;
}

/* An operator with the shared token and no device; scopes as given (NULL: omitted). */
static struct client *operator(struct env *e, const char *s1, const char *s2)
{
	struct client *c = open_client(e, "127.0.0.1");
	struct copts o = {.token = TOKEN, .n_scopes = -1};
	const cJSON *h;

	if (s1) {
		o.scopes[0] = s1;
		o.scopes[1] = s2;
		o.n_scopes = s2 ? 2 : 1;
	}
	do_connect(c, &o);
	h = expect_ok(c, c->connect_id);
	assert_string_equal(jstr(h, "type"), "hello-ok");
	assert_null(jget(h, "auth"));
	return c;
}

static void ident(struct identity *id, uint8_t seed_byte)
{
	uint8_t seed[IDENTITY_SEED_BYTES];

	memset(seed, seed_byte, sizeof(seed));
	assert_int_equal(identity_from_seed(id, seed), 0);
}

/* A remote node connects and is held; returns its requestId in rid. */
static struct client *held_node(struct env *e, const struct identity *id, const char *ip,
                                char rid[64])
{
	struct client *c = open_client(e, ip);
	struct copts o = node_opts(id);
	const cJSON *p;

	do_connect(c, &o);
	p = expect_event(c, "connect.pending", -1);
	snprintf(rid, 64, "%s", jstr(p, "requestId"));
	assert_false(c->closed);
	expect_no_frame(c);
	return c;
}

static void expect_hello_device(struct client *c, const char *role)
{
	const cJSON *h = expect_ok(c, c->connect_id);

	assert_string_equal(jstr(h, "type"), "hello-ok");
	assert_string_equal(jstr(h, "auth.role"), role);
	assert_int_equal(strlen(jstr(h, "auth.deviceToken")), 32);
	assert_int_equal(strspn(jstr(h, "auth.deviceToken"), "0123456789abcdef"), 32);
}

static size_t array_len(const cJSON *a)
{
	return cJSON_IsArray(a) ? (size_t)cJSON_GetArraySize(a) : (size_t)-1;
}

/* ---- tests ---- */

static void test_challenge(void **state)
{
	struct env *e = env_new(NULL);
	struct client *c = open_client(e, "10.0.0.5");
	const char *n = c->nonce;

	(void)state;
	assert_int_equal(strlen(n), 36);
	assert_int_equal(n[14], '4');
	assert_non_null(strchr("89ab", n[19]));
	assert_int_equal(n[8], '-');
	assert_int_equal(strspn(n, "0123456789abcdef-"), 36);
	expect_no_frame(c);
	env_free(e);
}

static void test_operator_hello(void **state)
{
	struct env *e = env_new(NULL);
	struct client *c = open_client(e, "127.0.0.1"); /* local: scopes as asked (TRUST-1) */
	struct copts o = {.token = TOKEN, .n_scopes = 1, .scopes = {"operator.read"}};
	const cJSON *h;

	(void)state;
	do_connect(c, &o);
	h = expect_ok(c, c->connect_id);
	assert_string_equal(jstr(h, "type"), "hello-ok");
	assert_int_equal((int)jnum(h, "protocol"), 4);
	assert_string_equal(jstr(h, "server.version"), "test");
	assert_string_equal(jstr(h, "server.host"), "unit");
	assert_int_equal(strlen(jstr(h, "server.connId")), 36);
	assert_true(array_len(jget(h, "features.methods")) >= 12);
	assert_true(array_len(jget(h, "features.events")) >= 7);
	assert_int_equal((int)jnum(h, "policy.maxPayload"), 524288);
	assert_int_equal((int)jnum(h, "policy.maxBufferedBytes"), 1572864);
	assert_int_equal((int)jnum(h, "policy.tickIntervalMs"), 30000);
	assert_int_equal((int)jnum(h, "snapshot.stateVersion.presence"), 0);
	assert_null(jget(h, "auth"));
	/* Scopes as sent: read only, so pairing methods are refused, node.list is not. */
	expect_err(c, call(c, "device.pair.list", "{}"), "INVALID_REQUEST", "MISSING_SCOPE");
	assert_false(c->closed);
	assert_true(cJSON_IsArray(jget(expect_ok(c, call(c, "node.list", NULL)), "nodes")));
	/* Protocol 3 only: hello-ok says 3. */
	{
		struct client *c3 = open_client(e, "127.0.0.1");
		struct copts o3 = {.token = TOKEN, .n_scopes = -1, .min_proto = 3, .max_proto = 3};

		do_connect(c3, &o3);
		h = expect_ok(c3, c3->connect_id);
		assert_int_equal((int)jnum(h, "protocol"), 3);
		/* Omitted scopes: operator.admin. */
		expect_ok(c3, call(c3, "device.pair.list", NULL));
	}
	env_free(e);
}

struct hs_case {
	const char *name;
	const char *dcode;
	const char *wire; /* NULL: no res */
	int close;
};

static void check_hs(struct env *e, struct client *c, const struct hs_case *k, const char *id)
{
	int warns = e->warns;

	(void)warns;
	if (k->wire) {
		const cJSON *err = expect_err(c, id, k->wire, k->dcode);

		assert_non_null(jstr(err, "message"));
	}
	expect_no_frame(c);
	expect_closed(c, k->close);
	assert_non_null(strstr(e->last_warn, k->dcode));
	assert_non_null(strstr(e->last_warn, c->ip));
}

static void hs(struct env *e, const struct hs_case *k, struct copts o)
{
	struct client *c = open_client(e, "10.0.0.9");
	int warns = e->warns;

	do_connect(c, &o);
	check_hs(e, c, k, c->connect_id);
	assert_int_equal(e->warns, warns + 1); /* logged once */
	reap(e);
}

static void test_handshake_errors(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id, other;
	struct client *c;
	char big[600000];

	(void)state;
	ident(&id, 1);
	ident(&other, 2);

	/* Frame level. */
	c = open_client(e, "10.0.0.9");
	send_text(c, "{not json");
	expect_no_frame(c);
	expect_closed(c, 1008);
	assert_string_equal(c->close_reason, "invalid request frame");
	c = open_client(e, "10.0.0.9");
	core_conn_message(e->core, c->conn, "{}", 2, true, e->now);
	expect_closed(c, 1008);
	c = open_client(e, "10.0.0.9");
	memset(big, ' ', sizeof(big));
	core_conn_message(e->core, c->conn, big, sizeof(big), false, e->now);
	expect_closed(c, 1009);
	expect_no_frame(c);
	c = open_client(e, "10.0.0.9");
	call(c, "device.pair.list", "{}");
	expect_err(c, c->last_id, "INVALID_REQUEST", "INVALID_HANDSHAKE");
	expect_closed(c, 1008);
	assert_string_equal(c->close_reason, "invalid handshake: first request must be connect");
	reap(e);

	{
		static const struct hs_case k = {"params", "INVALID_CONNECT_PARAMS",
		                                 "INVALID_REQUEST", 1008};
		struct copts o = node_opts(&id);
		const cJSON *err;

		o.extra = "\"bogus\":1";
		c = open_client(e, "10.0.0.9");
		do_connect(c, &o);
		err = expect_err(c, c->connect_id, "INVALID_REQUEST", "INVALID_CONNECT_PARAMS");
		assert_true(strncmp(jstr(err, "message"), "invalid connect params: ", 24) == 0);
		expect_closed(c, 1008);
		assert_true(strncmp(c->close_reason, "invalid connect params: ", 24) == 0);
		(void)k;
	}
	{
		struct copts o = node_opts(&id);
		const cJSON *err;

		o.min_proto = 1;
		o.max_proto = 2;
		c = open_client(e, "10.0.0.9");
		do_connect(c, &o);
		err = expect_err(c, c->connect_id, "INVALID_REQUEST", "PROTOCOL_MISMATCH");
		assert_int_equal((int)jnum(err, "details.expectedProtocol"), 4);
		expect_closed(c, 1002);
		reap(e);
	}
	{
		static const struct hs_case k = {"role", "INVALID_ROLE", "INVALID_REQUEST", 1008};
		struct copts o = {.role = "admin", .token = TOKEN, .n_scopes = -1};

		hs(e, &k, o);
	}
	{
		static const struct hs_case k = {"nodev", "DEVICE_IDENTITY_REQUIRED", "NOT_PAIRED",
		                                 1008};
		struct copts o = {.role = "node", .token = TOKEN, .n_scopes = 0};

		hs(e, &k, o);
	}
	{
		static const struct hs_case k = {"pk", "DEVICE_AUTH_PUBLIC_KEY_INVALID",
		                                 "INVALID_REQUEST", 1008};
		struct copts o = node_opts(&id);

		o.pubkey = "AAAA";
		hs(e, &k, o);
	}
	{
		static const struct hs_case k = {"id", "DEVICE_AUTH_DEVICE_ID_MISMATCH",
		                                 "INVALID_REQUEST", 1008};
		struct copts o = node_opts(&id);

		o.dev_id = other.device_id;
		hs(e, &k, o);
	}
	{
		static const struct hs_case k = {"skew", "DEVICE_AUTH_SIGNATURE_EXPIRED",
		                                 "INVALID_REQUEST", 1008};
		struct copts o = node_opts(&id);

		o.skew_ms = -120001;
		hs(e, &k, o);
		o.skew_ms = 120001;
		hs(e, &k, o);
	}
	{
		static const struct hs_case k = {"nonce", "DEVICE_AUTH_NONCE_REQUIRED",
		                                 "INVALID_REQUEST", 1008};
		struct copts o = node_opts(&id);

		o.nonce = "-";
		o.sig = SIG_V1;
		hs(e, &k, o);
	}
	{
		static const struct hs_case k = {"nonce2", "DEVICE_AUTH_NONCE_MISMATCH",
		                                 "INVALID_REQUEST", 1008};
		struct copts o = node_opts(&id);

		o.nonce = "00000000-0000-4000-8000-000000000000";
		hs(e, &k, o);
	}
	{
		static const struct hs_case k = {"sig", "DEVICE_AUTH_SIGNATURE_INVALID",
		                                 "INVALID_REQUEST", 1008};
		struct copts o = node_opts(&id);

		o.sig = SIG_BAD;
		hs(e, &k, o);
		/* v1 is not accepted, even signed correctly. */
		o.sig = SIG_V1;
		hs(e, &k, o);
		/* Signed by another key. */
		o.sig = SIG_V3;
		o.id = &other;
		o.dev_id = id.device_id;
		o.pubkey = id.pk_b64;
		hs(e, &k, o);
	}
	{
		static const struct hs_case k = {"tok", "AUTH_TOKEN_MISSING", "INVALID_REQUEST",
		                                 1008};
		struct copts o = node_opts(&id);
		struct copts op = {.n_scopes = -1};

		o.token = NULL;
		hs(e, &k, o);
		hs(e, &k, op);
	}
	{
		static const struct hs_case k = {"tok2", "AUTH_TOKEN_MISMATCH", "INVALID_REQUEST",
		                                 1008};
		struct copts o = node_opts(&id);
		struct copts op = {.n_scopes = -1, .token = "shared-secret-tokeN"};

		o.token = "nope";
		hs(e, &k, o);
		hs(e, &k, op);
	}
	/* The edges that pass: skew 120000, v2 and v3 signatures. */
	{
		struct copts o = node_opts(&id);
		char rid[64];

		o.skew_ms = 120000;
		o.sig = SIG_V2;
		c = open_client(e, "10.0.0.9");
		do_connect(c, &o);
		snprintf(rid, sizeof(rid), "%s",
		         jstr(expect_event(c, "connect.pending", -1), "requestId"));
		assert_false(c->closed);
	}
	assert_int_equal(store_count(e->store, STORE_PENDING), 1);
	env_free(e);
}

/* Spec §4.4: with neither auth.token nor auth.deviceToken present, the signature's <token> is
 * auth.bootstrapToken. Such a connect passes the device checks and only then fails
 * authentication (§5: a bootstrap token never authenticates). */
static void test_bootstrap_token_signature(void **state)
{
	static const struct hs_case missing = {"boot", "AUTH_TOKEN_MISSING", "INVALID_REQUEST",
	                                       1008};
	static const struct hs_case mismatch = {"boot2", "AUTH_TOKEN_MISMATCH", "INVALID_REQUEST",
	                                        1008};
	static const struct hs_case badsig = {"boot3", "DEVICE_AUTH_SIGNATURE_INVALID",
	                                      "INVALID_REQUEST", 1008};
	struct env *e = env_new(NULL);
	struct identity id;
	struct copts o;

	(void)state;
	ident(&id, 11);
	o = node_opts(&id);
	o.token = NULL;
	o.bootstrap_token = "bootstrap-token-1";
	o.sig = SIG_V3;
	hs(e, &missing, o);
	o.sig = SIG_V2;
	hs(e, &missing, o);
	/* Signed over an empty <token>: not the payload §4.4 defines for this connect. */
	o.signed_token = "";
	hs(e, &badsig, o);
	/* auth.deviceToken comes before auth.bootstrapToken. */
	o.device_token = "0123456789abcdef0123456789abcdef";
	o.signed_token = NULL;
	hs(e, &mismatch, o);
	o.signed_token = o.bootstrap_token;
	hs(e, &badsig, o);
	/* auth.token, even empty, comes before both. */
	o.token = "";
	o.signed_token = NULL;
	hs(e, &mismatch, o);
	o.signed_token = o.bootstrap_token;
	hs(e, &badsig, o);
	assert_int_equal(store_count(e->store, STORE_PENDING), 0);
	env_free(e);
}

static void approve_flow(bool via_node)
{
	struct env *e = env_new(NULL);
	struct identity id;
	struct client *op, *n, *n2;
	char rid[64], params[256], token[64];
	const cJSON *p, *list;

	ident(&id, 7);
	op = operator(e, "operator.pairing", NULL);
	n = held_node(e, &id, "10.0.0.5", rid);
	p = jget(n->frames[1], "payload");
	assert_string_equal(jstr(p, "deviceId"), id.device_id);
	assert_int_equal((uint64_t)jnum(p, "expiresAtMs"), e->now + 300000);
	assert_true(cJSON_IsFalse(jget(p, "isRepair")));
	assert_int_equal(strlen(jstr(p, "fingerprint")), 19);

	/* EVT-1/2 and EVT-3: requested events with seq 1, 2. */
	p = expect_event(op, "device.pair.requested", 1);
	assert_string_equal(jstr(p, "requestId"), rid);
	assert_string_equal(jstr(p, "publicKey"), id.pk_b64);
	assert_string_equal(jstr(p, "role"), "node");
	assert_string_equal(jstr(p, "remoteIp"), "10.0.0.5");
	p = expect_event(op, "node.pair.requested", 2);
	assert_string_equal(jstr(p, "requestId"), rid);
	assert_string_equal(jstr(p, "nodeId"), id.device_id);

	/* STORE-1/2: both lists show the one request. */
	list = expect_ok(op, call(op, "device.pair.list", "{}"));
	assert_int_equal(array_len(jget(list, "pending")), 1);
	assert_string_equal(jstr(list, "pending.0.requestId"), rid);
	list = expect_ok(op, call(op, "node.pair.list", "{}"));
	assert_int_equal(array_len(jget(list, "pending")), 1);
	assert_string_equal(jstr(list, "pending.0.requestId"), rid);
	assert_string_equal(jstr(list, "pending.0.nodeId"), id.device_id);

	/* HOLD-2: ticks reach the held socket. */
	e->now += 30000;
	core_run_timers(e->core, e->now);
	assert_int_equal((uint64_t)jnum(expect_event(n, "tick", 1), "ts"), e->now);
	expect_event(op, "tick", 3);
	assert_false(n->closed);

	snprintf(params, sizeof(params), "{\"requestId\":\"%s\"}", rid);
	p = expect_ok(op, call(op, via_node ? "node.pair.approve" : "device.pair.approve", params));
	assert_string_equal(jstr(p, "requestId"), rid);
	if (via_node) {
		assert_string_equal(jstr(p, "node.nodeId"), id.device_id);
	} else {
		assert_string_equal(jstr(p, "device.deviceId"), id.device_id);
		assert_string_equal(jstr(p, "device.tokens.0.role"), "node");
		assert_null(jget(p, "device.tokens.0.token")); /* summaries only */
	}
	p = expect_event(op, "device.pair.resolved", 4);
	assert_string_equal(jstr(p, "decision"), "approved");
	assert_string_equal(jstr(p, "requestId"), rid);
	assert_string_equal(jstr(p, "deviceId"), id.device_id);
	p = expect_event(op, "node.pair.resolved", 5);
	assert_string_equal(jstr(p, "decision"), "approved");

	/* HOLD-3: the same connect id, on the same socket. */
	expect_hello_device(n, "node");
	snprintf(token, sizeof(token), "%s",
	         jstr(jget(n->frames[n->pos - 1], "payload"), "auth.deviceToken"));
	assert_false(n->closed);
	assert_int_equal(store_count(e->store, STORE_PENDING), 0);
	/* PERSIST-3: on disk when the ok went out. */
	{
		char path[256], buf[8192];
		FILE *fp;
		size_t len;

		snprintf(path, sizeof(path), "%s/paired/%s.json", e->dir, id.device_id);
		fp = fopen(path, "r");
		assert_non_null(fp);
		len = fread(buf, 1, sizeof(buf) - 1, fp);
		fclose(fp);
		buf[len] = '\0';
		assert_non_null(strstr(buf, id.device_id));
		assert_non_null(strstr(buf, token));
	}
	/* The node is authenticated now: node methods work, nothing else. */
	expect_ok(n, call(n, "node.event", "{}"));
	expect_err(n, call(n, "node.pair.list", "{}"), "INVALID_REQUEST", "UNAUTHORIZED_ROLE");
	/* node.list shows it connected. */
	{
		struct client *rd = operator(e, "operator.read", NULL);

		p = expect_ok(rd, call(rd, "node.list", "{}"));
		assert_string_equal(jstr(p, "nodes.0.nodeId"), id.device_id);
		assert_true(cJSON_IsTrue(jget(p, "nodes.0.connected")));
		/* WIRE-15: the node's two methods are not an operator's. */
		expect_err(rd, call(rd, "node.event", "{}"), "INVALID_REQUEST",
		           "UNAUTHORIZED_ROLE");
		expect_err(rd, call(rd, "node.invoke.result", "{}"), "INVALID_REQUEST",
		           "UNAUTHORIZED_ROLE");
		assert_true(cJSON_IsTrue(jget(p, "nodes.0.paired")));
		assert_string_equal(jstr(p, "nodes.0.remoteIp"), "10.0.0.5");
	}
	/* WIRE-11: the device token replaces the shared token on reconnect. */
	n2 = open_client(e, "10.0.0.6");
	{
		struct copts o = node_opts(&id);

		o.token = token;
		do_connect(n2, &o);
		expect_hello_device(n2, "node");
		assert_string_equal(
		        jstr(jget(n2->frames[n2->pos - 1], "payload"), "auth.deviceToken"), token);
	}
	env_free(e);
}

static void test_hold_approve_device(void **state)
{
	(void)state;
	approve_flow(false);
}

static void test_hold_approve_node(void **state)
{
	(void)state;
	approve_flow(true);
}

static void test_reject(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id;
	struct client *op, *n;
	char rid[64], params[128];
	const cJSON *p;

	(void)state;
	ident(&id, 8);
	op = operator(e, "operator.admin", NULL);
	n = held_node(e, &id, "10.0.0.5", rid);
	expect_event(op, "device.pair.requested", 1);
	expect_event(op, "node.pair.requested", 2);
	snprintf(params, sizeof(params), "{\"requestId\":\"%s\"}", rid);
	p = expect_ok(op, call(op, "node.pair.reject", params));
	assert_string_equal(jstr(p, "requestId"), rid);
	p = expect_event(op, "device.pair.resolved", 3);
	assert_string_equal(jstr(p, "decision"), "rejected");
	expect_event(op, "node.pair.resolved", 4);
	expect_err(n, n->connect_id, "NOT_PAIRED", "PAIRING_REJECTED");
	expect_closed(n, 4403);
	assert_string_equal(n->close_reason, "pairing rejected");
	assert_int_equal(store_count(e->store, STORE_PENDING), 0);
	/* A rejected id is unknown afterwards. */
	expect_err(op, call(op, "device.pair.reject", params), "INVALID_REQUEST",
	           "UNKNOWN_REQUEST_ID");
	env_free(e);
}

static void test_expiry(void **state)
{
	struct core_config cfg = base_cfg();
	struct env *e;
	struct identity id;
	struct client *op, *n;
	char rid[64];
	const cJSON *p;
	uint64_t next;

	(void)state;
	cfg.pending_ttl_ms = 5000;
	e = env_new(&cfg);
	ident(&id, 9);
	op = operator(e, "operator.pairing", NULL);
	n = held_node(e, &id, "10.0.0.5", rid);
	expect_event(op, "device.pair.requested", 1);
	expect_event(op, "node.pair.requested", 2);
	next = core_run_timers(e->core, e->now);
	assert_int_equal(next, e->now + 5000);
	e->now += 4999;
	core_run_timers(e->core, e->now);
	expect_no_frame(n);
	e->now += 1;
	core_run_timers(e->core, e->now);
	expect_err(n, n->connect_id, "NOT_PAIRED", "PAIRING_EXPIRED");
	expect_closed(n, 4408);
	p = expect_event(op, "device.pair.resolved", 3);
	assert_string_equal(jstr(p, "decision"), "expired");
	assert_string_equal(jstr(p, "requestId"), rid);
	expect_event(op, "node.pair.resolved", 4);
	assert_int_equal(store_count(e->store, STORE_PENDING), 0);

	/* A request whose node went away stays listed until the TTL, then goes too. */
	reap(e);
	n = held_node(e, &id, "10.0.0.5", rid);
	core_conn_closed(e->core, n->conn, e->now);
	n->reaped = true;
	n->closed = true;
	e->now += 4000;
	core_run_timers(e->core, e->now);
	assert_non_null(store_get(e->store, STORE_PENDING, rid));
	e->now += 1000;
	core_run_timers(e->core, e->now);
	assert_null(store_get(e->store, STORE_PENDING, rid));
	env_free(e);
}

static void test_supersede_and_reconnect(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id;
	struct client *op, *n1, *n2, *n3;
	char rid[64], rid2[64], rid3[64];
	const cJSON *p;

	(void)state;
	ident(&id, 10);
	op = operator(e, "operator.pairing", NULL);
	n1 = held_node(e, &id, "10.0.0.5", rid);
	expect_event(op, "device.pair.requested", 1);
	expect_event(op, "node.pair.requested", 2);

	/* HOLD-6 + RECON-1: a newer socket takes over, same requestId, later expiry. */
	e->now += 10000;
	n2 = held_node(e, &id, "10.0.0.7", rid2);
	assert_string_equal(rid2, rid);
	p = jget(n2->frames[1], "payload");
	assert_int_equal((uint64_t)jnum(p, "expiresAtMs"), e->now + 300000);
	expect_err(n1, n1->connect_id, "NOT_PAIRED", "PAIRING_SUPERSEDED");
	expect_closed(n1, 4409);
	expect_no_frame(op); /* not a new request */
	assert_int_equal((uint64_t)jnum(store_get(e->store, STORE_PENDING, rid), "expiresAtMs"),
	                 e->now + 300000);
	reap(e);

	/* The socket goes away; a reconnect finds the same request. */
	core_conn_closed(e->core, n2->conn, e->now);
	n2->reaped = n2->closed = true;
	e->now += 20000;
	n3 = held_node(e, &id, "10.0.0.8", rid3);
	assert_string_equal(rid3, rid);
	assert_int_equal((uint64_t)jnum(jget(n3->frames[1], "payload"), "expiresAtMs"),
	                 e->now + 300000);
	assert_int_equal(store_count(e->store, STORE_PENDING), 1);
	expect_no_frame(op);
	env_free(e);
}

static void test_repair(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id, other;
	struct client *op, *n;
	cJSON *rec;
	char rid[64], params[160];
	const cJSON *p;

	(void)state;
	ident(&id, 11);
	ident(&other, 12);
	/* The store knows this deviceId under another key. */
	rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "deviceId", id.device_id);
	cJSON_AddStringToObject(rec, "publicKey", other.pk_b64);
	cJSON_AddStringToObject(rec, "role", "node");
	cJSON_AddItemToObject(rec, "roles", cJSON_CreateStringArray((const char *[]){"node"}, 1));
	assert_int_equal(store_put(e->store, STORE_PAIRED, rec), 0);

	op = operator(e, "operator.pairing", NULL);
	/* KEY-3: even local, even with auto-approve on: held, isRepair. */
	n = open_client(e, "127.0.0.1");
	{
		struct copts o = node_opts(&id);

		do_connect(n, &o);
	}
	p = expect_event(n, "connect.pending", -1);
	assert_true(cJSON_IsTrue(jget(p, "isRepair")));
	snprintf(rid, sizeof(rid), "%s", jstr(p, "requestId"));
	assert_false(n->closed);
	p = expect_event(op, "device.pair.requested", 1);
	assert_true(cJSON_IsTrue(jget(p, "isRepair")));
	expect_event(op, "node.pair.requested", 2);
	snprintf(params, sizeof(params), "{\"requestId\":\"%s\"}", rid);
	expect_ok(op, call(op, "device.pair.approve", params));
	expect_hello_device(n, "node");
	assert_string_equal(jstr(store_get(e->store, STORE_PAIRED, id.device_id), "publicKey"),
	                    id.pk_b64);
	env_free(e);
}

static void test_key_binding(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id, other;
	struct client *op, *n;
	char rid[64], params[400], fp[IDENTITY_FINGERPRINT_LEN + 1];
	const cJSON *p;

	(void)state;
	ident(&id, 13);
	ident(&other, 14);
	op = operator(e, "operator.pairing", NULL);
	n = held_node(e, &id, "10.0.0.5", rid);
	expect_event(op, "device.pair.requested", 1);
	expect_event(op, "node.pair.requested", 2);

	/* KEY-1: wrong key or wrong fingerprint: refused, still pending. */
	snprintf(params, sizeof(params), "{\"requestId\":\"%s\",\"publicKey\":\"%s\"}", rid,
	         other.pk_b64);
	expect_err(op, call(op, "device.pair.approve", params), "INVALID_REQUEST",
	           "PAIRING_PUBLIC_KEY_MISMATCH");
	identity_fingerprint(other.pk, fp);
	snprintf(params, sizeof(params), "{\"requestId\":\"%s\",\"fingerprint\":\"%s\"}", rid, fp);
	expect_err(op, call(op, "node.pair.approve", params), "INVALID_REQUEST",
	           "PAIRING_PUBLIC_KEY_MISMATCH");
	assert_non_null(store_get(e->store, STORE_PENDING, rid));
	expect_no_frame(n);
	assert_false(n->closed);
	p = expect_ok(op, call(op, "device.pair.list", NULL));
	assert_string_equal(jstr(p, "pending.0.requestId"), rid);

	/* Closed params. */
	snprintf(params, sizeof(params), "{\"requestId\":\"%s\",\"nodeId\":\"x\"}", rid);
	expect_err(op, call(op, "device.pair.approve", params), "INVALID_REQUEST",
	           "INVALID_PARAMS");
	expect_err(op, call(op, "device.pair.approve", "{}"), "INVALID_REQUEST", "INVALID_PARAMS");

	/* The right fingerprint (any case, separators ignored). */
	identity_fingerprint(id.pk, fp);
	for (char *q = fp; *q; q++)
		if (*q >= 'a' && *q <= 'f')
			*q = (char)(*q - 'a' + 'A');
	snprintf(params, sizeof(params), "{\"requestId\":\"%s\",\"fingerprint\":\"%s\"}", rid, fp);
	expect_ok(op, call(op, "device.pair.approve", params));
	expect_hello_device(n, "node");
	env_free(e);
}

static void test_key2_recheck(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id, other;
	struct client *op;
	cJSON *rec;

	(void)state;
	ident(&id, 15);
	ident(&other, 16);
	/* A tampered pending record: deviceId of one key, publicKey of another. */
	rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "requestId", "11111111-1111-4111-8111-111111111111");
	cJSON_AddStringToObject(rec, "deviceId", id.device_id);
	cJSON_AddStringToObject(rec, "publicKey", other.pk_b64);
	cJSON_AddStringToObject(rec, "role", "node");
	cJSON_AddNumberToObject(rec, "ts", (double)e->now);
	cJSON_AddNumberToObject(rec, "expiresAtMs", (double)e->now + 60000);
	assert_int_equal(store_put(e->store, STORE_PENDING, rec), 0);
	op = operator(e, "operator.pairing", NULL);
	expect_err(op,
	           call(op, "device.pair.approve",
	                "{\"requestId\":\"11111111-1111-4111-8111-111111111111\"}"),
	           "INVALID_REQUEST", "PAIRING_PUBLIC_KEY_MISMATCH");
	assert_int_equal(store_count(e->store, STORE_PAIRED), 0);
	assert_int_equal(store_count(e->store, STORE_PENDING), 1);
	env_free(e);
}

static void test_unknown_request(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id, opdev;
	struct client *op, *n, *od;
	char rid[64], rid_op[64], params[128];
	const cJSON *err;

	(void)state;
	ident(&id, 17);
	ident(&opdev, 18);
	/* It approves an operator.read request below: it must hold that scope (TRUST-2). */
	op = operator(e, "operator.pairing", "operator.read");
	n = held_node(e, &id, "10.0.0.5", rid);
	(void)n;
	/* An operator with a device is held too (operator-role request). */
	od = open_client(e, "10.0.0.6");
	{
		struct copts o = {
		        .id = &opdev, .token = TOKEN, .n_scopes = 1, .scopes = {"operator.read"}};

		do_connect(od, &o);
	}
	snprintf(rid_op, sizeof(rid_op), "%s",
	         jstr(expect_event(od, "connect.pending", -1), "requestId"));
	expect_event(op, "device.pair.requested", 1);
	expect_event(op, "node.pair.requested", 2);
	assert_string_equal(jstr(expect_event(op, "device.pair.requested", 3), "role"), "operator");
	expect_no_frame(op); /* an operator request has no node event */

	err = expect_err(op, call(op, "device.pair.approve", "{\"requestId\":\"nope\"}"),
	                 "INVALID_REQUEST", "UNKNOWN_REQUEST_ID");
	assert_int_equal(array_len(jget(err, "details.pendingRequestIds")), 2);
	/* node.* resolves node requests only: the operator request is not one, but it is pending,
	 * so it is not unknown either (STORE-3, STORE-4). */
	snprintf(params, sizeof(params), "{\"requestId\":\"%s\"}", rid_op);
	err = expect_err(op, call(op, "node.pair.approve", params), "INVALID_REQUEST",
	                 "INVALID_PARAMS");
	assert_string_equal(jstr(err, "details.requestId"), rid_op);
	assert_string_equal(jstr(err, "message"),
	                    "requestId is not a node pairing request; use device.pair.approve");
	err = expect_err(op, call(op, "node.pair.reject", params), "INVALID_REQUEST",
	                 "INVALID_PARAMS");
	assert_string_equal(jstr(err, "message"),
	                    "requestId is not a node pairing request; use device.pair.reject");
	/* node.pair.list lists only the node one; device.pair.list both, newest first. */
	err = expect_ok(op, call(op, "node.pair.list", NULL));
	assert_int_equal(array_len(jget(err, "pending")), 1);
	err = expect_ok(op, call(op, "device.pair.list", NULL));
	assert_int_equal(array_len(jget(err, "pending")), 2);
	/* device.* resolves it; the held operator gets hello-ok with its scopes. */
	expect_ok(op, call(op, "device.pair.approve", params));
	expect_hello_device(od, "operator");
	env_free(e);
}

static void test_events_scoped_and_sequenced(void **state)
{
	struct env *e = env_new(NULL);
	struct identity a, b, c3;
	struct client *pairing, *admin, *reader, *na, *nb;
	char rid[64];

	(void)state;
	ident(&a, 19);
	ident(&b, 20);
	ident(&c3, 21);
	pairing = operator(e, "operator.pairing", NULL);
	admin = operator(e, NULL, NULL); /* omitted scopes: operator.admin */
	reader = operator(e, "operator.read", "operator.write");
	na = held_node(e, &a, "10.0.0.5", rid);
	nb = held_node(e, &b, "10.0.0.6", rid);
	(void)na;
	(void)nb;
	expect_event(pairing, "device.pair.requested", 1);
	expect_event(pairing, "node.pair.requested", 2);
	expect_event(pairing, "device.pair.requested", 3);
	expect_event(pairing, "node.pair.requested", 4);
	expect_event(admin, "device.pair.requested", 1);
	expect_event(admin, "node.pair.requested", 2);
	expect_event(admin, "device.pair.requested", 3);
	expect_no_frame(reader);
	expect_no_frame(na); /* the nodes hear nothing of each other */
	/* An operator that joins later starts at 1. */
	{
		struct client *late = operator(e, "operator.pairing", NULL);
		struct client *nc;

		nc = held_node(e, &c3, "10.0.0.7", rid);
		(void)nc;
		expect_event(late, "device.pair.requested", 1);
		expect_event(late, "node.pair.requested", 2);
	}
	env_free(e);
}

static void test_limits(void **state)
{
	struct core_config cfg = base_cfg();
	struct env *e;
	struct identity ids[6];
	struct client *c;
	char rid[64];

	(void)state;
	cfg.max_pending_per_ip = 2;
	cfg.max_pending = 3;
	cfg.max_preauth_per_ip = 2;
	e = env_new(&cfg);
	for (int i = 0; i < 6; i++)
		ident(&ids[i], (uint8_t)(30 + i));
	held_node(e, &ids[0], "10.0.0.5", rid);
	held_node(e, &ids[1], "10.0.0.5", rid);
	/* LIMIT-2 */
	c = open_client(e, "10.0.0.5");
	{
		struct copts o = node_opts(&ids[2]);

		do_connect(c, &o);
	}
	expect_err(c, c->connect_id, "UNAVAILABLE", "PENDING_LIMIT_IP");
	expect_closed(c, 4430);
	/* The same device reconnecting from that address replaces its socket: allowed. */
	held_node(e, &ids[0], "10.0.0.5", rid);
	/* LIMIT-3 */
	held_node(e, &ids[3], "10.0.0.6", rid);
	c = open_client(e, "10.0.0.7");
	{
		struct copts o = node_opts(&ids[4]);

		do_connect(c, &o);
	}
	expect_err(c, c->connect_id, "UNAVAILABLE", "PENDING_LIMIT_TOTAL");
	expect_closed(c, 4503);
	reap(e);
	/* Pre-auth sockets per address: over the cap the oldest goes, the newest is challenged. */
	{
		struct client *oldest = open_client(e, "10.9.9.9");

		open_client(e, "10.9.9.9");
		c = open_client(e, "10.9.9.9");
		assert_false(c->closed);
		expect_closed(oldest, 4429);
		assert_string_equal(oldest->close_reason,
		                    "too many unauthenticated connections from this address");
		expect_no_frame(oldest);
	}
	c = open_client(e, "10.9.9.8");
	assert_false(c->closed);
	/* LIMIT-4: handshake timeout, no res. */
	e->now += 10000;
	core_run_timers(e->core, e->now);
	expect_closed(c, 4008);
	assert_string_equal(c->close_reason, "handshake timeout");
	expect_no_frame(c);
	env_free(e);
}

/* LIMIT-2, LIMIT-3: a request counts against its address and the total whether or not a socket
 * holds it, also after a restart; a refresh is not a new request; refused means no change. */
static void test_limit_requests_without_sockets(void **state)
{
	struct core_config cfg = base_cfg();
	struct env *e;
	struct identity ids[6];
	struct client *c;
	char rid[3][64], again[64];

	(void)state;
	cfg.max_pending_per_ip = 2;
	cfg.max_pending = 3;
	e = env_new(&cfg);
	for (int i = 0; i < 6; i++)
		ident(&ids[i], (uint8_t)(60 + i));
	for (int i = 0; i < 2; i++) {
		c = held_node(e, &ids[i], "10.0.0.5", rid[i]);
		c->closed = true; /* the device hangs up; its request stays */
		reap(e);
	}
	c = open_client(e, "10.0.0.5");
	{
		struct copts o = node_opts(&ids[2]);

		do_connect(c, &o);
	}
	expect_err(c, c->connect_id, "UNAVAILABLE", "PENDING_LIMIT_IP");
	expect_closed(c, 4430);
	assert_int_equal(store_count(e->store, STORE_PENDING), 2);
	/* Refreshing its own request is no new request. */
	held_node(e, &ids[0], "10.0.0.5", again);
	assert_string_equal(again, rid[0]);
	/* Another address still has room, up to the total. */
	held_node(e, &ids[3], "10.0.0.6", rid[2]);
	c = open_client(e, "10.0.0.7");
	{
		struct copts o = node_opts(&ids[4]);

		do_connect(c, &o);
	}
	expect_err(c, c->connect_id, "UNAVAILABLE", "PENDING_LIMIT_TOTAL");
	expect_closed(c, 4503);
	assert_int_equal(store_count(e->store, STORE_PENDING), 3);
	reap(e);
	/* The counts come back from the store after a restart. */
	env_stop_core(e);
	e->cfg.max_pending = 10;
	env_start_core(e);
	c = open_client(e, "10.0.0.5");
	{
		struct copts o = node_opts(&ids[5]);

		do_connect(c, &o);
	}
	expect_err(c, c->connect_id, "UNAVAILABLE", "PENDING_LIMIT_IP");
	reap(e);
	/* A resolved request frees its place. */
	{
		struct client *op = operator(e, "operator.pairing", NULL);
		char params[128];

		snprintf(params, sizeof(params), "{\"requestId\":\"%s\"}", rid[1]);
		expect_ok(op, call(op, "device.pair.reject", params));
	}
	held_node(e, &ids[5], "10.0.0.5", again);
	assert_true(core_index_consistent(e->core));
	env_free(e);
}

/* LIMIT-4, LIMIT-6: local sockets are not counted with the other sockets of their address, so a
 * page's sockets (Origin, loopback address) never shut out the local operator; among the others
 * the oldest socket makes room for a new one. */
static void test_limit_preauth_pools(void **state)
{
	struct core_config cfg = base_cfg();
	struct core_peer page = {.ip = "127.0.0.1", .origin = "http://evil.example"};
	struct env *e;
	struct client *pages[3], *op, *idle[2];

	(void)state;
	cfg.max_preauth_per_ip = 2;
	e = env_new(&cfg);
	for (int i = 0; i < 3; i++)
		pages[i] = open_peer(e, &page);
	expect_closed(pages[0], 4429);
	assert_false(pages[1]->closed || pages[2]->closed);
	/* Local sockets are not capped per address: however many idle ones a process keeps,
	 * the operator gets in and closes none of them. */
	for (int i = 0; i < 2; i++)
		idle[i] = open_client(e, "127.0.0.1");
	for (int i = 0; i < 8; i++)
		open_client(e, "127.0.0.1");
	op = operator(e, "operator.pairing", NULL);
	(void)op;
	assert_false(idle[0]->closed || idle[1]->closed || pages[1]->closed || pages[2]->closed);
	env_free(e);
}

/* Expiry goes in batches so that thousands due at once never stall the loop. */
static void test_expiry_batches(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id;
	uint64_t next;
	int runs = 0;

	(void)state;
	ident(&id, 70);
	for (int i = 0; i < 150; i++) {
		cJSON *rec = cJSON_CreateObject();
		char rid[40];

		snprintf(rid, sizeof(rid), "00000000-0000-4000-8000-%012d", i);
		cJSON_AddStringToObject(rec, "requestId", rid);
		cJSON_AddStringToObject(rec, "deviceId", id.device_id);
		cJSON_AddStringToObject(rec, "publicKey", id.pk_b64);
		cJSON_AddStringToObject(rec, "role", "node");
		cJSON_AddNumberToObject(rec, "ts", (double)e->now);
		cJSON_AddNumberToObject(rec, "expiresAtMs", (double)e->now + 1000);
		assert_int_equal(store_put(e->store, STORE_PENDING, rec), 0);
	}
	e->now += 1000;
	do {
		size_t before = store_count(e->store, STORE_PENDING);

		next = core_run_timers(e->core, e->now);
		assert_true(before - store_count(e->store, STORE_PENDING) <= 64);
		runs++;
	} while (next <= e->now && runs < 10);
	assert_int_equal(runs, 3);
	assert_int_equal(store_count(e->store, STORE_PENDING), 0);
	env_free(e);
}

static int responses_seen;

static void io_send_response(void *user, void *conn_user, const char *text, size_t len)
{
	responses_seen++;
	assert_true(len > 14 && strncmp(text, "{\"type\":\"res\"", 13) == 0);
	io_send(user, conn_user, text, len);
}

/* LIMIT-7: responses reach the adapter apart from events, so it can budget them apart. */
static void test_responses_apart(void **state)
{
	struct env *e = env_new(NULL);
	struct client *op;

	(void)state;
	env_stop_core(e);
	e->io.send_response = io_send_response;
	env_start_core(e);
	responses_seen = 0;
	op = operator(e, "operator.pairing", NULL);
	assert_int_equal(responses_seen, 1); /* hello-ok; the challenge went through send */
	expect_ok(op, call(op, "device.pair.list", NULL));
	expect_err(op, call(op, "device.pair.reject", "{\"requestId\":\"x\"}"), "INVALID_REQUEST",
	           "UNKNOWN_REQUEST_ID");
	assert_int_equal(responses_seen, 3);
	env_free(e);
}

static void test_local_auto_approve(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id, id2;
	struct client *op, *n;
	const cJSON *p;

	(void)state;
	ident(&id, 40);
	ident(&id2, 41);
	op = operator(e, "operator.pairing", NULL);
	n = open_client(e, "127.0.0.1");
	{
		struct copts o = node_opts(&id);

		do_connect(n, &o);
	}
	expect_hello_device(n, "node");
	p = expect_event(op, "device.pair.resolved", 1);
	assert_string_equal(jstr(p, "decision"), "approved");
	assert_string_equal(jstr(p, "deviceId"), id.device_id);
	expect_event(op, "node.pair.resolved", 2);
	expect_no_frame(op); /* no requested event */
	assert_non_null(store_get(e->store, STORE_PAIRED, id.device_id));

	/* LOCAL-2: proxy headers from an untrusted loopback peer: not local, held. */
	{
		struct core_peer peer = {.ip = "127.0.0.1", .xff = "10.1.2.3"};
		struct copts o = node_opts(&id2);

		n = open_peer(e, &peer);
		do_connect(n, &o);
		p = expect_event(n, "connect.pending", -1);
		assert_false(n->closed);
	}
	env_free(e);

	{
		struct core_config cfg = base_cfg();
		struct copts o = node_opts(&id);

		cfg.no_local_auto_approve = true;
		e = env_new(&cfg);
		n = open_client(e, "::1");
		do_connect(n, &o);
		expect_event(n, "connect.pending", -1);
		assert_false(n->closed);
		env_free(e);
	}
}

static void test_trusted_proxy(void **state)
{
	struct core_config cfg = base_cfg();
	struct env *e;
	struct identity id, id2;
	struct client *n;
	const char *trusted[] = {"127.0.0.1"};
	const cJSON *rec;

	(void)state;
	ident(&id, 42);
	ident(&id2, 43);
	cfg.trusted_proxies = trusted;
	cfg.n_trusted_proxies = 1;
	e = env_new(&cfg);
	{
		struct core_peer peer = {.ip = "127.0.0.1", .xff = " 10.1.2.3 , 127.0.0.1"};
		struct copts o = node_opts(&id);
		char rid[64];

		n = open_peer(e, &peer);
		do_connect(n, &o);
		snprintf(rid, sizeof(rid), "%s",
		         jstr(expect_event(n, "connect.pending", -1), "requestId"));
		rec = store_get(e->store, STORE_PENDING, rid);
		assert_string_equal(jstr(rec, "remoteIp"), "10.1.2.3");
	}
	{
		/* The proxy says the client is loopback: local, auto-approved. */
		struct core_peer peer = {.ip = "::ffff:127.0.0.1", .xff = "127.0.0.1"};
		struct copts o = node_opts(&id2);

		n = open_peer(e, &peer);
		do_connect(n, &o);
		expect_hello_device(n, "node");
	}
	{
		/* X-Real-IP when there is no XFF. */
		struct core_peer peer = {.ip = "127.0.0.1", .real_ip = "192.168.1.4"};
		struct identity id3;
		struct copts o;
		char rid[64];

		ident(&id3, 44);
		o = node_opts(&id3);
		n = open_peer(e, &peer);
		do_connect(n, &o);
		snprintf(rid, sizeof(rid), "%s",
		         jstr(expect_event(n, "connect.pending", -1), "requestId"));
		assert_string_equal(jstr(store_get(e->store, STORE_PENDING, rid), "remoteIp"),
		                    "192.168.1.4");
	}
	env_free(e);
}

static void test_compat_6836(void **state)
{
	struct core_config cfg = base_cfg();
	struct env *e;
	struct identity id;
	struct client *op, *n;
	char rid[64], params[128];
	const cJSON *err, *p;

	(void)state;
	cfg.compat_6836 = true;
	e = env_new(&cfg);
	ident(&id, 50);
	op = operator(e, "operator.pairing", NULL);
	n = open_client(e, "10.0.0.5");
	{
		struct copts o = node_opts(&id);

		do_connect(n, &o);
	}
	err = expect_err(n, n->connect_id, "NOT_PAIRED", "PAIRING_REQUIRED");
	assert_string_equal(jstr(err, "message"), "pairing required");
	snprintf(rid, sizeof(rid), "%s", jstr(err, "details.requestId"));
	expect_closed(n, 1008);
	assert_string_equal(n->close_reason, "pairing required");
	p = expect_event(op, "device.pair.requested", 1);
	assert_string_equal(jstr(p, "requestId"), rid);
	expect_no_frame(op); /* no node.pair.requested in 1.30 */

	p = expect_ok(op, call(op, "node.pair.list", "{}"));
	assert_int_equal(array_len(jget(p, "pending")), 0);
	assert_int_equal(array_len(jget(p, "paired")), 0);
	p = expect_ok(op, call(op, "device.pair.list", "{}"));
	assert_string_equal(jstr(p, "pending.0.requestId"), rid);
	snprintf(params, sizeof(params), "{\"requestId\":\"%s\"}", rid);
	expect_err(op, call(op, "node.pair.approve", params), "INVALID_REQUEST",
	           "UNKNOWN_REQUEST_ID");

	/* Reconnect: same requestId (1.30's dedupe), still closed. */
	reap(e);
	n = open_client(e, "10.0.0.5");
	{
		struct copts o = node_opts(&id);

		do_connect(n, &o);
	}
	err = expect_err(n, n->connect_id, "NOT_PAIRED", "PAIRING_REQUIRED");
	assert_string_equal(jstr(err, "details.requestId"), rid);
	expect_closed(n, 1008);

	expect_ok(op, call(op, "device.pair.approve", params));
	p = expect_event(op, "device.pair.resolved", 2);
	assert_string_equal(jstr(p, "decision"), "approved");
	reap(e);
	n = open_client(e, "10.0.0.5");
	{
		struct copts o = node_opts(&id);

		do_connect(n, &o);
	}
	expect_hello_device(n, "node");
	env_free(e);
}

static void test_shutdown(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id;
	struct client *op, *n, *pre, *late;
	char rid[64];

	(void)state;
	ident(&id, 60);
	op = operator(e, "operator.pairing", NULL);
	n = held_node(e, &id, "10.0.0.5", rid);
	pre = open_client(e, "10.0.0.9");
	core_shutdown(e->core, e->now);
	expect_err(n, n->connect_id, "UNAVAILABLE", "GATEWAY_SHUTDOWN");
	expect_closed(n, 1001);
	expect_closed(pre, 1001);
	expect_no_frame(pre);
	expect_closed(op, 1001);
	late = open_client(e, "10.0.0.9");
	expect_closed(late, 1001);
	/* HOLD-7 + PERSIST-1: the request survives, and a restart finds it. */
	env_stop_core(e);
	env_start_core(e);
	assert_non_null(store_get(e->store, STORE_PENDING, rid));
	{
		char rid2[64];

		e->now += 1000;
		held_node(e, &id, "10.0.0.5", rid2);
		assert_string_equal(rid2, rid);
	}
	env_free(e);
}

static void test_methods_and_scopes(void **state)
{
	struct env *e = env_new(NULL);
	struct client *op;
	const cJSON *err;

	(void)state;
	op = operator(e, "operator.pairing", NULL);
	err = expect_err(op, call(op, "foo.bar", "{}"), "INVALID_REQUEST", "UNKNOWN_METHOD");
	assert_string_equal(jstr(err, "message"), "unknown method: foo.bar");
	expect_err(op, call(op, "connect", "{}"), "INVALID_REQUEST", "CONNECT_ALREADY_DONE");
	expect_err(op, call(op, "node.list", "{}"), "INVALID_REQUEST", "MISSING_SCOPE");
	expect_err(op, call(op, "device.pair.list", "{\"x\":1}"), "INVALID_REQUEST",
	           "INVALID_PARAMS");
	expect_err(op, call(op, "device.pair.list", "[]"), "INVALID_REQUEST", "INVALID_PARAMS");
	expect_err(op, call(op, "device.pair.remove", "{\"deviceId\":\"none\"}"), "INVALID_REQUEST",
	           "UNKNOWN_DEVICE_ID");
	expect_err(op, call(op, "device.token.rotate", "{\"deviceId\":\"none\",\"role\":\"node\"}"),
	           "INVALID_REQUEST", "UNKNOWN_DEVICE_ID");
	assert_false(op->closed);
	/* An invalid frame after the handshake still closes (WIRE-1). */
	send_text(op, "{\"type\":\"req\"}");
	expect_closed(op, 1008);
	env_free(e);
}

static void test_tokens_and_remove(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id;
	struct client *op, *n, *n2;
	char params[256], tok[64], newtok[64];
	const cJSON *p;

	(void)state;
	ident(&id, 70);
	op = operator(e, "operator.pairing", NULL);
	n = open_client(e, "127.0.0.1"); /* local: auto-approved */
	{
		struct copts o = node_opts(&id);

		do_connect(n, &o);
	}
	expect_hello_device(n, "node");
	snprintf(tok, sizeof(tok), "%s",
	         jstr(jget(n->frames[n->pos - 1], "payload"), "auth.deviceToken"));
	expect_event(op, "device.pair.resolved", 1);
	expect_event(op, "node.pair.resolved", 2);

	snprintf(params, sizeof(params), "{\"deviceId\":\"%s\",\"role\":\"node\"}", id.device_id);
	p = expect_ok(op, call(op, "device.token.rotate", params));
	snprintf(newtok, sizeof(newtok), "%s", jstr(p, "token"));
	assert_int_equal(strlen(newtok), 32);
	assert_string_not_equal(newtok, tok);
	assert_string_equal(jstr(p, "role"), "node");
	assert_int_equal((uint64_t)jnum(p, "rotatedAtMs"), e->now);
	expect_closed(n, 4411); /* its session held the old token's rights (TRUST-5) */

	/* The old device token no longer authenticates; the new one does. */
	{
		struct copts o = node_opts(&id);

		o.token = tok;
		n2 = open_client(e, "10.0.0.5");
		do_connect(n2, &o);
		expect_err(n2, n2->connect_id, "INVALID_REQUEST", "AUTH_TOKEN_MISMATCH");
		o.token = newtok;
		n2 = open_client(e, "10.0.0.5");
		do_connect(n2, &o);
		expect_hello_device(n2, "node");
		/* auth.deviceToken (2026.9.6's field) works too. */
		o.token = NULL;
		o.device_token = newtok;
		n2 = open_client(e, "10.0.0.5");
		do_connect(n2, &o);
		expect_hello_device(n2, "node");
	}
	p = expect_ok(op, call(op, "device.token.revoke", params));
	assert_int_equal((uint64_t)jnum(p, "revokedAtMs"), e->now);
	{
		struct copts o = node_opts(&id);

		o.token = newtok;
		n2 = open_client(e, "10.0.0.5");
		do_connect(n2, &o);
		expect_err(n2, n2->connect_id, "INVALID_REQUEST", "AUTH_TOKEN_MISMATCH");
	}
	/* device.pair.list shows token summaries without secrets. */
	p = expect_ok(op, call(op, "device.pair.list", NULL));
	assert_string_equal(jstr(p, "paired.0.deviceId"), id.device_id);
	assert_true(jnum(p, "paired.0.tokens.0.revokedAtMs") > 0);
	assert_null(jget(p, "paired.0.tokens.0.token"));

	/* Revoked, still paired: the shared token gets a new device token. */
	n = open_client(e, "10.0.0.5");
	{
		struct copts o = node_opts(&id);

		do_connect(n, &o);
		expect_hello_device(n, "node");
		assert_string_not_equal(
		        jstr(jget(n->frames[n->pos - 1], "payload"), "auth.deviceToken"), newtok);
	}
	/* Removal closes the device's live sessions. */
	snprintf(params, sizeof(params), "{\"deviceId\":\"%s\"}", id.device_id);
	expect_ok(op, call(op, "device.pair.remove", params));
	expect_closed(n, 4410);
	assert_null(store_get(e->store, STORE_PAIRED, id.device_id));
	env_free(e);
}

static void test_held_socket_and_local_resolution(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id;
	struct client *op, *od, *n;
	struct core_stats st;
	char rid[64];
	const cJSON *p, *dev;

	(void)state;
	ident(&id, 80);
	op = operator(e, "operator.pairing", NULL);
	/* The device first connects remotely as an operator: held. */
	od = open_client(e, "10.0.0.6");
	{
		struct copts o = {
		        .id = &id, .token = TOKEN, .n_scopes = 1, .scopes = {"operator.read"}};

		do_connect(od, &o);
	}
	snprintf(rid, sizeof(rid), "%s",
	         jstr(expect_event(od, "connect.pending", -1), "requestId"));
	expect_event(op, "device.pair.requested", 1);
	core_get_stats(e->core, &st);
	assert_int_equal(st.held_open, 1);
	assert_int_equal(st.authed, 1);
	assert_int_equal(st.pending_requests, 1);
	/* Nothing but the outcome happens on a held socket; it stays open. */
	expect_err(od, call(od, "device.pair.list", "{}"), "INVALID_REQUEST", "UNAUTHORIZED_ROLE");
	expect_err(od, call(od, "connect", "{}"), "INVALID_REQUEST", "CONNECT_ALREADY_DONE");
	assert_false(od->closed);

	/* The same device on loopback as a node asks for something else: the operator request is
	 * superseded (TRUST-3), not widened, and the node is approved silently on its own. */
	n = open_client(e, "127.0.0.1");
	{
		struct copts o = node_opts(&id);

		do_connect(n, &o);
	}
	expect_hello_device(n, "node");
	expect_err(od, od->connect_id, "NOT_PAIRED", "PAIRING_SUPERSEDED");
	expect_closed(od, 4409);
	p = expect_event(op, "device.pair.resolved", 2);
	assert_string_equal(jstr(p, "requestId"), rid);
	assert_string_equal(jstr(p, "decision"), "superseded");
	p = expect_event(op, "device.pair.resolved", 3);
	assert_string_not_equal(jstr(p, "requestId"), rid);
	assert_string_equal(jstr(p, "decision"), "approved");
	expect_event(op, "node.pair.resolved", 4);
	dev = store_get(e->store, STORE_PAIRED, id.device_id);
	assert_non_null(dev);
	assert_int_equal(array_len(jget(dev, "roles")), 1);
	assert_non_null(jget(dev, "tokens.node.token"));
	assert_null(jget(dev, "tokens.operator"));
	assert_int_equal(store_count(e->store, STORE_PENDING), 0);
	reap(e);
	core_get_stats(e->core, &st);
	assert_int_equal(st.held_open, 0);
	assert_int_equal(st.authed, 2);
	assert_int_equal(st.paired_devices, 1);

	/* A local connect asking what a held request asks approves that request (LOCAL-1): its
	 * held socket gets hello-ok too. */
	od = open_client(e, "10.0.0.6");
	{
		struct copts o = {
		        .id = &id, .token = TOKEN, .n_scopes = 1, .scopes = {"operator.read"}};
		struct client *od2;

		do_connect(od, &o);
		snprintf(rid, sizeof(rid), "%s",
		         jstr(expect_event(od, "connect.pending", -1), "requestId"));
		p = expect_event(op, "device.pair.requested", 5);
		assert_true(cJSON_IsTrue(jget(p, "isRepair")));
		od2 = open_client(e, "127.0.0.1");
		do_connect(od2, &o);
		expect_hello_device(od2, "operator");
	}
	p = expect_event(op, "device.pair.resolved", 6);
	assert_string_equal(jstr(p, "requestId"), rid);
	assert_string_equal(jstr(p, "decision"), "approved");
	expect_hello_device(od, "operator");
	dev = store_get(e->store, STORE_PAIRED, id.device_id);
	assert_int_equal(array_len(jget(dev, "roles")), 2);
	assert_non_null(jget(dev, "tokens.operator.token"));
	core_get_stats(e->core, &st);
	assert_int_equal(st.held_open, 0);
	assert_int_equal(st.authed, 4);
	env_free(e);
}

/* ---- trust model (§8.13) ---- */

/* Skips every frame received so far (events of earlier steps a test does not look at). */
static void skip_frames(struct client *c)
{
	c->pos = c->n;
}

/* The next frame is the event name, whatever its seq. */
static const cJSON *next_event(struct client *c, const char *name)
{
	const cJSON *f = next_frame(c);

	assert_string_equal(jstr(f, "type"), "event");
	assert_string_equal(jstr(f, "event"), name);
	return jget(f, "payload");
}

/* An operator device's connect: shared token, scopes as given (s1 NULL: omitted). */
static struct copts opdev_opts(const struct identity *id, const char *s1, const char *s2)
{
	struct copts o = {.id = id, .token = TOKEN, .n_scopes = -1};

	if (s1) {
		o.scopes[0] = s1;
		o.scopes[1] = s2;
		o.n_scopes = s2 ? 2 : 1;
	}
	return o;
}

/* The operator device connects from ip; returns the client, its connect answered or held. */
static struct client *opdev_connect(struct env *e, const char *ip, struct copts o)
{
	struct client *c = open_client(e, ip);

	do_connect(c, &o);
	return c;
}

/* The device pairs as an operator with these scopes by a local connect (LOCAL-1); tok gets its
 * device token. */
static struct client *local_opdev(struct env *e, const struct identity *id, const char *s1,
                                  const char *s2, char tok[64])
{
	struct client *c = opdev_connect(e, "127.0.0.1", opdev_opts(id, s1, s2));

	expect_hello_device(c, "operator");
	snprintf(tok, 64, "%s", jstr(jget(c->frames[c->pos - 1], "payload"), "auth.deviceToken"));
	return c;
}

/* The held connect's connect.pending; its requestId goes to rid. */
static const cJSON *expect_pending(struct client *c, char rid[64])
{
	const cJSON *p = expect_event(c, "connect.pending", -1);

	snprintf(rid, 64, "%s", jstr(p, "requestId"));
	assert_false(c->closed);
	expect_no_frame(c);
	return p;
}

static void assert_scopes(const cJSON *a, const char *s1, const char *s2)
{
	assert_int_equal(array_len(a), s2 ? 2 : s1 ? 1 : 0);
	if (s1)
		assert_string_equal(cJSON_GetArrayItem(a, 0)->valuestring, s1);
	if (s2)
		assert_string_equal(cJSON_GetArrayItem(a, 1)->valuestring, s2);
}

static const char *approve_params(const char *rid)
{
	static char buf[128];

	snprintf(buf, sizeof(buf), "{\"requestId\":\"%s\"}", rid);
	return buf;
}

/* TRUST-1: the shared token alone gives a remote connection no scope. */
static void test_trust1_remote_shared_token(void **state)
{
	struct core_config cfg = base_cfg();
	const char *trusted[] = {"127.0.0.1"};
	struct env *e;
	struct identity nid, od;
	struct client *rop, *n, *lop, *c;
	char rid[64], tok[64];
	const cJSON *h, *err;

	(void)state;
	cfg.trusted_proxies = trusted;
	cfg.n_trusted_proxies = 1;
	e = env_new(&cfg);
	ident(&nid, 90);
	ident(&od, 91);
	/* A device-less connection from the LAN address a node is held from, same shared token. */
	rop = open_client(e, "10.0.0.5");
	{
		struct copts o = {.token = TOKEN, .n_scopes = -1};

		do_connect(rop, &o);
	}
	h = expect_ok(rop, rop->connect_id);
	assert_string_equal(jstr(h, "type"), "hello-ok");
	assert_null(jget(h, "auth"));
	n = held_node(e, &nid, "10.0.0.5", rid);
	expect_no_frame(rop); /* not an audience of pairing events (EVT-1) */
	err = expect_err(rop, call(rop, "node.pair.approve", approve_params(rid)),
	                 "INVALID_REQUEST", "MISSING_SCOPE");
	assert_string_equal(jstr(err, "message"), "missing scope: operator.pairing");
	expect_err(rop, call(rop, "device.pair.approve", approve_params(rid)), "INVALID_REQUEST",
	           "MISSING_SCOPE");
	expect_err(rop, call(rop, "device.pair.list", NULL), "INVALID_REQUEST", "MISSING_SCOPE");
	expect_err(rop, call(rop, "device.token.revoke", "{\"deviceId\":\"x\",\"role\":\"node\"}"),
	           "INVALID_REQUEST", "MISSING_SCOPE");
	err = expect_err(rop, call(rop, "node.list", NULL), "INVALID_REQUEST", "MISSING_SCOPE");
	assert_string_equal(jstr(err, "message"), "missing scope: operator.read");
	assert_false(rop->closed);
	assert_non_null(store_get(e->store, STORE_PENDING, rid));
	expect_no_frame(n);
	assert_false(n->closed);

	/* Asking for scopes changes nothing, through a trusted proxy either. */
	{
		struct core_peer peer = {.ip = "127.0.0.1", .xff = "10.77.0.3"};
		struct copts o = {.token = TOKEN, .n_scopes = 1, .scopes = {"operator.admin"}};

		c = open_peer(e, &peer);
		do_connect(c, &o);
		expect_ok(c, c->connect_id);
		expect_err(c, call(c, "device.pair.list", NULL), "INVALID_REQUEST",
		           "MISSING_SCOPE");
	}
	/* A local process keeps the scopes of §3.6, also when a trusted proxy says loopback. */
	lop = operator(e, NULL, NULL);
	expect_ok(lop, call(lop, "device.pair.list", NULL));
	{
		struct core_peer peer = {.ip = "127.0.0.1", .xff = "127.0.0.1"};
		struct copts o = {.token = TOKEN, .n_scopes = -1};

		c = open_peer(e, &peer);
		do_connect(c, &o);
		expect_ok(c, c->connect_id);
		expect_ok(c, call(c, "node.pair.list", NULL));
	}
	/* A remote operator gets scopes through a paired device: the ones a person approved. */
	local_opdev(e, &od, "operator.pairing", NULL, tok);
	{
		struct copts o = opdev_opts(&od, "operator.pairing", NULL);

		o.token = tok;
		c = opdev_connect(e, "10.0.0.6", o);
		expect_hello_device(c, "operator");
		expect_ok(c, call(c, "device.pair.list", NULL));
		o.token = TOKEN; /* a paired device may use the shared token too */
		c = opdev_connect(e, "10.0.0.6", o);
		expect_hello_device(c, "operator");
		expect_ok(c, call(c, "node.pair.approve", approve_params(rid)));
	}
	expect_hello_device(n, "node");
	env_free(e);
}

/* TRUST-2: an approver without operator.admin grants nothing it does not hold. */
static void test_trust2_approver_limits(void **state)
{
	struct env *e = env_new(NULL);
	struct identity d1, d2, d3, p, nid;
	struct client *pop, *c1, *c2, *c3, *up, *ap, *adm, *n;
	char rid[64], rid2[64], rid3[64], ridn[64], ridu[64], tok[64];
	const cJSON *err, *h;

	(void)state;
	ident(&d1, 92);
	ident(&d2, 93);
	ident(&d3, 94);
	ident(&p, 95);
	ident(&nid, 96);
	pop = operator(e, "operator.pairing", NULL);
	c1 = opdev_connect(e, "10.0.0.7", opdev_opts(&d1, NULL, NULL)); /* operator.admin */
	expect_pending(c1, rid);
	c2 = opdev_connect(e, "10.0.0.7", opdev_opts(&d2, "operator.pairing", "operator.read"));
	expect_pending(c2, rid2);
	c3 = opdev_connect(e, "10.0.0.7", opdev_opts(&d3, "operator.pairing", NULL));
	expect_pending(c3, rid3);
	n = held_node(e, &nid, "10.0.0.7", ridn);
	skip_frames(pop);

	err = expect_err(pop, call(pop, "device.pair.approve", approve_params(rid)),
	                 "INVALID_REQUEST", "MISSING_SCOPE");
	assert_string_equal(jstr(err, "message"), "missing scope: operator.admin");
	err = expect_err(pop, call(pop, "device.pair.approve", approve_params(rid2)),
	                 "INVALID_REQUEST", "MISSING_SCOPE");
	assert_string_equal(jstr(err, "message"), "missing scope: operator.read");
	expect_no_frame(pop); /* nothing resolved */
	assert_non_null(store_get(e->store, STORE_PENDING, rid));
	assert_non_null(store_get(e->store, STORE_PENDING, rid2));
	assert_null(store_get(e->store, STORE_PAIRED, d1.device_id));
	expect_no_frame(c1);
	assert_false(c1->closed);
	expect_no_frame(c2);
	assert_false(c2->closed);
	/* Within its own scopes it approves, and nodes ask for none. */
	expect_ok(pop, call(pop, "device.pair.approve", approve_params(rid3)));
	h = expect_ok(c3, c3->connect_id);
	assert_scopes(jget(h, "auth.scopes"), "operator.pairing", NULL);
	skip_frames(pop);
	expect_ok(pop, call(pop, "node.pair.approve", approve_params(ridn)));
	expect_hello_device(n, "node");

	/* Its own upgrade: requested on one socket, approved from another. */
	local_opdev(e, &p, "operator.pairing", NULL, tok);
	up = opdev_connect(e, "10.0.0.8", opdev_opts(&p, "operator.admin", NULL));
	assert_true(cJSON_IsTrue(jget(expect_pending(up, ridu), "isRepair")));
	{
		struct copts o = opdev_opts(&p, "operator.pairing", NULL);

		o.token = tok;
		ap = opdev_connect(e, "10.0.0.8", o);
		expect_hello_device(ap, "operator");
	}
	skip_frames(ap);
	err = expect_err(ap, call(ap, "device.pair.approve", approve_params(ridu)),
	                 "INVALID_REQUEST", "MISSING_SCOPE");
	assert_string_equal(jstr(err, "message"), "missing scope: operator.admin");
	assert_false(up->closed);
	expect_no_frame(up);
	assert_scopes(
	        jget(store_get(e->store, STORE_PAIRED, p.device_id), "tokens.operator.scopes"),
	        "operator.pairing", NULL);
	/* operator.admin may grant anything. */
	adm = operator(e, NULL, NULL);
	expect_ok(adm, call(adm, "device.pair.approve", approve_params(ridu)));
	h = expect_ok(up, up->connect_id);
	assert_scopes(jget(h, "auth.scopes"), "operator.admin", "operator.pairing");
	skip_frames(adm);
	expect_ok(adm, call(adm, "device.pair.approve", approve_params(rid)));
	expect_hello_device(c1, "operator");
	env_free(e);
}

/* TRUST-3: a request never changes under the approver's eyes; approval grants what it showed. */
static void test_trust3_request_unchanged(void **state)
{
	struct env *e = env_new(NULL);
	struct identity d, nid;
	struct client *adm, *c1, *c2, *c3, *n, *c;
	char rid1[64], rid2[64], rid3[64], ridn[64], ridop[64], tok[64];
	const cJSON *p, *h;

	(void)state;
	ident(&d, 97);
	ident(&nid, 98);
	adm = operator(e, NULL, NULL);
	local_opdev(e, &d, "operator.read", NULL, tok);
	skip_frames(adm);

	c1 = opdev_connect(e, "10.0.0.9", opdev_opts(&d, "operator.read", "operator.write"));
	assert_true(cJSON_IsTrue(jget(expect_pending(c1, rid1), "isRepair")));
	p = next_event(adm, "device.pair.requested");
	assert_scopes(jget(p, "scopes"), "operator.read", "operator.write");
	/* The same device again, with no scopes (operator.admin): a new request. */
	c2 = opdev_connect(e, "10.0.0.9", opdev_opts(&d, NULL, NULL));
	expect_pending(c2, rid2);
	assert_string_not_equal(rid2, rid1);
	expect_err(c1, c1->connect_id, "NOT_PAIRED", "PAIRING_SUPERSEDED");
	expect_closed(c1, 4409);
	p = next_event(adm, "device.pair.resolved");
	assert_string_equal(jstr(p, "requestId"), rid1);
	assert_string_equal(jstr(p, "decision"), "superseded");
	p = next_event(adm, "device.pair.requested");
	assert_string_equal(jstr(p, "requestId"), rid2);
	assert_scopes(jget(p, "scopes"), "operator.admin", NULL);
	expect_no_frame(adm);
	assert_null(store_get(e->store, STORE_PENDING, rid1));
	assert_scopes(jget(store_get(e->store, STORE_PENDING, rid2), "scopes"), "operator.admin",
	              NULL);
	expect_err(adm, call(adm, "device.pair.approve", approve_params(rid1)), "INVALID_REQUEST",
	           "UNKNOWN_REQUEST_ID");
	reap(e);

	/* Back to read and write; approving that grants exactly read and write. */
	c3 = opdev_connect(e, "10.0.0.9", opdev_opts(&d, "operator.read", "operator.write"));
	expect_pending(c3, rid3);
	assert_string_not_equal(rid3, rid2);
	expect_closed(c2, 4409);
	skip_frames(adm);
	expect_ok(adm, call(adm, "device.pair.approve", approve_params(rid3)));
	h = expect_ok(c3, c3->connect_id);
	assert_scopes(jget(h, "auth.scopes"), "operator.read", "operator.write");
	assert_scopes(
	        jget(store_get(e->store, STORE_PAIRED, d.device_id), "tokens.operator.scopes"),
	        "operator.read", "operator.write");
	/* c3's session has what was approved, not operator.admin. */
	expect_err(c3, call(c3, "device.pair.list", NULL), "INVALID_REQUEST", "MISSING_SCOPE");
	assert_null(store_find(e->store, STORE_PENDING, "deviceId", d.device_id));

	/* Another role: the node's request is superseded by the operator's, both announced. */
	skip_frames(adm);
	n = held_node(e, &nid, "10.0.0.10", ridn);
	skip_frames(adm);
	c = opdev_connect(e, "10.0.0.10", opdev_opts(&nid, "operator.read", NULL));
	expect_pending(c, ridop);
	assert_string_not_equal(ridop, ridn);
	expect_err(n, n->connect_id, "NOT_PAIRED", "PAIRING_SUPERSEDED");
	expect_closed(n, 4409);
	p = next_event(adm, "device.pair.resolved");
	assert_string_equal(jstr(p, "requestId"), ridn);
	assert_string_equal(jstr(p, "decision"), "superseded");
	p = next_event(adm, "node.pair.resolved");
	assert_string_equal(jstr(p, "requestId"), ridn);
	assert_string_equal(jstr(p, "decision"), "superseded");
	p = next_event(adm, "device.pair.requested");
	assert_string_equal(jstr(p, "requestId"), ridop);
	assert_string_equal(jstr(p, "role"), "operator");
	assert_scopes(jget(p, "roles"), "operator", NULL);
	expect_no_frame(adm); /* no node.pair.requested for an operator request */
	assert_int_equal(store_count(e->store, STORE_PENDING), 1);
	env_free(e);
}

/* TRUST-4: a narrowed token is a ceiling; asking above it is an upgrade request. */
static void test_trust4_token_ceiling(void **state)
{
	struct env *e = env_new(NULL);
	struct identity d;
	struct client *adm, *c, *c2;
	char tok[64], newtok[64], rid[64], rid2[64], params[256];
	const cJSON *p, *h;

	(void)state;
	ident(&d, 99);
	adm = operator(e, NULL, NULL);
	local_opdev(e, &d, "operator.read", "operator.write", tok);
	skip_frames(adm);
	snprintf(params, sizeof(params),
	         "{\"deviceId\":\"%s\",\"role\":\"operator\",\"scopes\":[\"operator.read\"]}",
	         d.device_id);
	p = expect_ok(adm, call(adm, "device.token.rotate", params));
	snprintf(newtok, sizeof(newtok), "%s", jstr(p, "token"));
	assert_scopes(jget(p, "scopes"), "operator.read", NULL);
	/* The paired record still says read and write; the token does not. */
	assert_scopes(jget(store_get(e->store, STORE_PAIRED, d.device_id), "scopes"),
	              "operator.read", "operator.write");
	/* Only an approval raises it again, not a rotation. */
	snprintf(params, sizeof(params),
	         "{\"deviceId\":\"%s\",\"role\":\"operator\",\"scopes\":[\"operator.read\","
	         "\"operator.write\"]}",
	         d.device_id);
	expect_err(adm, call(adm, "device.token.rotate", params), "INVALID_REQUEST",
	           "INVALID_PARAMS");
	assert_scopes(
	        jget(store_get(e->store, STORE_PAIRED, d.device_id), "tokens.operator.scopes"),
	        "operator.read", NULL);

	{
		struct copts o = opdev_opts(&d, "operator.read", "operator.write");

		o.token = newtok;
		c = opdev_connect(e, "10.0.0.11", o);
		p = expect_pending(c, rid);
		assert_true(cJSON_IsTrue(jget(p, "isRepair")));
		assert_scopes(jget(store_get(e->store, STORE_PENDING, rid), "scopes"),
		              "operator.read", "operator.write");
		/* The shared token does not lift the ceiling either. */
		c2 = opdev_connect(e, "10.0.0.11",
		                   opdev_opts(&d, "operator.read", "operator.write"));
		expect_pending(c2, rid2);
		assert_string_equal(rid2, rid);
		expect_closed(c, 4409);
		/* Within the token: admitted with the token's scopes. */
		o = opdev_opts(&d, "operator.read", NULL);
		o.token = newtok;
		c = opdev_connect(e, "10.0.0.11", o);
		h = expect_ok(c, c->connect_id);
		assert_string_equal(jstr(h, "auth.deviceToken"), newtok);
		assert_scopes(jget(h, "auth.scopes"), "operator.read", NULL);
		expect_err(c, call(c, "device.pair.list", NULL), "INVALID_REQUEST",
		           "MISSING_SCOPE");
	}
	/* A revoked token's scopes stay the ceiling for the token issued after it. */
	snprintf(params, sizeof(params), "{\"deviceId\":\"%s\",\"role\":\"operator\"}",
	         d.device_id);
	skip_frames(adm);
	expect_ok(adm, call(adm, "device.token.revoke", params));
	c = opdev_connect(e, "10.0.0.12", opdev_opts(&d, "operator.read", NULL));
	h = expect_ok(c, c->connect_id);
	assert_string_not_equal(jstr(h, "auth.deviceToken"), newtok);
	assert_scopes(jget(h, "auth.scopes"), "operator.read", NULL);
	c = opdev_connect(e, "10.0.0.12", opdev_opts(&d, "operator.write", NULL));
	expect_pending(c, rid);
	env_free(e);
}

/* TRUST-5: revoke, rotate and remove end the sessions that held the old rights. */
static void test_trust5_sessions_closed(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id, id2;
	struct client *adm, *n1, *n2, *n3, *other, *od, *n4, *o4;
	char tok[64], otok[64], newtok[64], params[256];
	const cJSON *p;

	(void)state;
	ident(&id, 100);
	ident(&id2, 101);
	adm = operator(e, NULL, NULL);
	n1 = open_client(e, "127.0.0.1");
	{
		struct copts o = node_opts(&id);

		do_connect(n1, &o);
		expect_hello_device(n1, "node");
		snprintf(tok, sizeof(tok), "%s",
		         jstr(jget(n1->frames[n1->pos - 1], "payload"), "auth.deviceToken"));
		o.token = tok;
		n2 = open_client(e, "10.0.0.13");
		do_connect(n2, &o);
		expect_hello_device(n2, "node");
		o = node_opts(&id2);
		other = open_client(e, "127.0.0.1");
		do_connect(other, &o);
		expect_hello_device(other, "node");
	}
	od = local_opdev(e, &id, "operator.pairing", NULL, otok);
	skip_frames(adm);

	snprintf(params, sizeof(params), "{\"deviceId\":\"%s\",\"role\":\"node\"}", id.device_id);
	p = expect_ok(adm, call(adm, "device.token.rotate", params));
	snprintf(newtok, sizeof(newtok), "%s", jstr(p, "token"));
	expect_closed(n1, 4411);
	assert_string_equal(n1->close_reason, "device token revoked");
	expect_no_frame(n1);
	expect_closed(n2, 4411);
	expect_no_frame(n2);
	assert_false(other->closed); /* another device */
	assert_false(od->closed); /* another role */
	assert_false(adm->closed);
	reap(e);
	{
		struct copts o = node_opts(&id);

		o.token = newtok;
		n3 = open_client(e, "10.0.0.13");
		do_connect(n3, &o);
		expect_hello_device(n3, "node");
	}
	expect_ok(adm, call(adm, "device.token.revoke", params));
	expect_closed(n3, 4411);
	expect_no_frame(n3);
	reap(e);

	/* A device that rotates its own token is answered, then closed. */
	snprintf(params, sizeof(params), "{\"deviceId\":\"%s\",\"role\":\"operator\"}",
	         id.device_id);
	skip_frames(od);
	p = expect_ok(od, call(od, "device.token.rotate", params));
	expect_closed(od, 4411);
	snprintf(otok, sizeof(otok), "%s", jstr(p, "token"));
	reap(e);

	/* Removal closes every session of the device, whatever the role (§8.6). */
	n4 = open_client(e, "127.0.0.1");
	{
		struct copts o = node_opts(&id);

		do_connect(n4, &o);
		expect_hello_device(n4, "node");
		o = opdev_opts(&id, "operator.pairing", NULL);
		o.token = otok;
		o4 = opdev_connect(e, "10.0.0.14", o);
		expect_hello_device(o4, "operator");
	}
	skip_frames(adm);
	snprintf(params, sizeof(params), "{\"deviceId\":\"%s\"}", id.device_id);
	expect_ok(adm, call(adm, "device.pair.remove", params));
	expect_closed(n4, 4410);
	assert_string_equal(n4->close_reason, "device removed");
	expect_no_frame(n4);
	expect_closed(o4, 4410);
	assert_false(other->closed);
	assert_false(adm->closed);
	env_free(e);
}

/* A local node of identity id with these caps and commands (JSON arrays): paired silently. */
static struct client *local_node(struct env *e, const struct identity *id, const char *extra)
{
	struct client *n = open_client(e, "127.0.0.1");
	struct copts o = node_opts(id);

	o.extra = extra;
	do_connect(n, &o);
	expect_hello_device(n, "node");
	return n;
}

/* The node.list entry of device did, or NULL. */
static const cJSON *node_list_entry(const cJSON *payload, const char *did)
{
	const cJSON *n;

	cJSON_ArrayForEach(n, jget(payload, "nodes"))
	{
		if (jstr(n, "nodeId") && strcmp(jstr(n, "nodeId"), did) == 0)
			return n;
	}
	return NULL;
}

static void assert_strings(const cJSON *a, const char *s0, const char *s1)
{
	assert_int_equal(array_len(a), (size_t)(s0 ? (s1 ? 2 : 1) : 0));
	if (s0)
		assert_string_equal(cJSON_GetArrayItem(a, 0)->valuestring, s0);
	if (s1)
		assert_string_equal(cJSON_GetArrayItem(a, 1)->valuestring, s1);
}

/* NODE-2: one entry per paired node device, the live connect's facts while it is connected. */
static void test_node_list_fields(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id, id2, id3;
	struct client *rd, *n, *n2, *od;
	uint64_t first_at;
	char rid[64];
	const cJSON *p, *x;

	(void)state;
	ident(&id, 90);
	ident(&id2, 91);
	ident(&id3, 92);
	rd = operator(e, "operator.read", NULL);
	n = local_node(e, &id, "\"caps\":[\"camera\",\"screen\"],\"commands\":[\"camera.snap\"]");
	first_at = e->now;
	e->now += 1000;
	p = expect_ok(rd, call(rd, "node.list", NULL));
	assert_int_equal((uint64_t)jnum(p, "ts"), e->now);
	assert_int_equal(array_len(jget(p, "nodes")), 1);
	x = node_list_entry(p, id.device_id);
	assert_non_null(x);
	assert_string_equal(jstr(x, "displayName"), "Unit Node");
	assert_string_equal(jstr(x, "platform"), "Android");
	assert_string_equal(jstr(x, "version"), "1.0.0");
	assert_string_equal(jstr(x, "deviceFamily"), "Phone");
	assert_string_equal(jstr(x, "clientId"), "openclaw-android");
	assert_string_equal(jstr(x, "clientMode"), "node");
	assert_strings(jget(x, "caps"), "camera", "screen");
	assert_strings(jget(x, "commands"), "camera.snap", NULL);
	assert_int_equal((uint64_t)jnum(x, "connectedAtMs"), first_at);
	assert_true(cJSON_IsTrue(jget(x, "paired")));
	assert_true(cJSON_IsTrue(jget(x, "connected")));
	assert_null(jget(x, "remoteIp")); /* loopback */

	/* A second connection of the device: still one entry, the newer connect's facts. */
	n2 = open_client(e, "10.0.0.7");
	{
		struct copts o = node_opts(&id);

		o.extra = "\"caps\":[\"location\"]";
		do_connect(n2, &o);
		expect_hello_device(n2, "node");
	}
	e->now += 1000;
	p = expect_ok(rd, call(rd, "node.list", NULL));
	assert_int_equal(array_len(jget(p, "nodes")), 1);
	x = node_list_entry(p, id.device_id);
	assert_strings(jget(x, "caps"), "location", NULL);
	assert_strings(jget(x, "commands"), NULL, NULL); /* not sent: [] */
	assert_int_equal((uint64_t)jnum(x, "connectedAtMs"), first_at + 1000);
	assert_string_equal(jstr(x, "remoteIp"), "10.0.0.7");

	/* A held node and an operator-only device are not nodes of node.list. */
	held_node(e, &id2, "10.0.0.8", rid);
	od = open_client(e, "127.0.0.1");
	{
		struct copts o = {
		        .id = &id3, .token = TOKEN, .n_scopes = 1, .scopes = {"operator.read"}};

		do_connect(od, &o);
		expect_hello_device(od, "operator");
	}
	p = expect_ok(rd, call(rd, "node.list", "{}"));
	assert_int_equal(array_len(jget(p, "nodes")), 1);

	/* Disconnected: the record's facts, caps and commands [], no version, no connectedAtMs. */
	core_conn_closed(e->core, n->conn, e->now);
	n->reaped = true;
	core_conn_closed(e->core, n2->conn, e->now);
	n2->reaped = true;
	p = expect_ok(rd, call(rd, "node.list", NULL));
	x = node_list_entry(p, id.device_id);
	assert_non_null(x);
	assert_true(cJSON_IsFalse(jget(x, "connected")));
	assert_true(cJSON_IsTrue(jget(x, "paired")));
	assert_strings(jget(x, "caps"), NULL, NULL);
	assert_strings(jget(x, "commands"), NULL, NULL);
	assert_null(jget(x, "connectedAtMs"));
	assert_null(jget(x, "version"));
	assert_string_equal(jstr(x, "displayName"), "Unit Node");
	assert_string_equal(jstr(x, "clientMode"), "node");
	env_free(e);
}

/* NODE-1: node.pair.remove takes the node role: a node-only device goes, a device with other
 * roles keeps them; ok first, then 4410 to its node sessions only. */
static void test_node_pair_remove(void **state)
{
	struct env *e = env_new(NULL);
	struct identity id, idm;
	struct client *op, *rd, *n, *nm, *om, *held;
	char params[160], rid[64];
	const cJSON *p, *rec, *err;

	(void)state;
	ident(&id, 93);
	ident(&idm, 94);
	op = operator(e, "operator.pairing", NULL);
	rd = operator(e, "operator.read", NULL);
	n = local_node(e, &id, NULL);
	skip_frames(op);

	/* Scope, params, unknown ids (METHOD-1 order; UNKNOWN_DEVICE_ID, details code only). */
	snprintf(params, sizeof(params), "{\"nodeId\":\"%s\"}", id.device_id);
	expect_err(rd, call(rd, "node.pair.remove", params), "INVALID_REQUEST", "MISSING_SCOPE");
	expect_err(op, call(op, "node.pair.remove", "{}"), "INVALID_REQUEST", "INVALID_PARAMS");
	expect_err(op, call(op, "node.pair.remove", "{\"nodeId\":\"\"}"), "INVALID_REQUEST",
	           "INVALID_PARAMS");
	expect_err(op, call(op, "node.pair.remove", "{\"deviceId\":\"x\"}"), "INVALID_REQUEST",
	           "INVALID_PARAMS");
	err = expect_err(op, call(op, "node.pair.remove", "{\"nodeId\":\"nope\"}"),
	                 "INVALID_REQUEST", "UNKNOWN_DEVICE_ID");
	assert_string_equal(jstr(err, "message"), "unknown nodeId");
	assert_int_equal(cJSON_GetArraySize(jget(err, "details")), 1);

	/* A node-only device: the record goes, its node session is closed after the answer. */
	p = expect_ok(op, call(op, "node.pair.remove", params));
	assert_string_equal(jstr(p, "nodeId"), id.device_id);
	assert_int_equal(cJSON_GetArraySize(p), 1);
	expect_closed(n, 4410);
	assert_string_equal(n->close_reason, "device removed");
	expect_no_frame(n);
	assert_null(store_get(e->store, STORE_PAIRED, id.device_id));
	expect_no_frame(op); /* no event for a removal */
	err = expect_err(op, call(op, "node.pair.remove", params), "INVALID_REQUEST",
	                 "UNKNOWN_DEVICE_ID");
	assert_false(op->closed);

	/* A device paired as node and operator keeps its operator role and session. */
	nm = local_node(e, &idm, NULL);
	om = open_client(e, "127.0.0.1");
	{
		struct copts o = {
		        .id = &idm, .token = TOKEN, .n_scopes = 1, .scopes = {"operator.read"}};

		do_connect(om, &o);
		expect_hello_device(om, "operator");
	}
	rec = store_get(e->store, STORE_PAIRED, idm.device_id);
	assert_non_null(jget(rec, "tokens.node"));
	/* ... and a held request of the same device for a wider scope stays held. */
	held = open_client(e, "10.0.0.9");
	{
		struct copts o = {.id = &idm,
		                  .token = TOKEN,
		                  .n_scopes = 2,
		                  .scopes = {"operator.read", "operator.write"}};

		do_connect(held, &o);
		snprintf(rid, sizeof(rid), "%s",
		         jstr(expect_event(held, "connect.pending", -1), "requestId"));
	}
	skip_frames(op);
	snprintf(params, sizeof(params), "{\"nodeId\":\"%s\"}", idm.device_id);
	p = expect_ok(op, call(op, "node.pair.remove", params));
	assert_string_equal(jstr(p, "nodeId"), idm.device_id);
	expect_closed(nm, 4410);
	assert_false(om->closed);
	assert_false(held->closed);
	assert_non_null(store_get(e->store, STORE_PENDING, rid));
	rec = store_get(e->store, STORE_PAIRED, idm.device_id);
	assert_non_null(rec);
	assert_strings(jget(rec, "roles"), "operator", NULL);
	assert_string_equal(jstr(rec, "role"), "operator");
	assert_null(jget(rec, "tokens.node"));
	assert_non_null(jget(rec, "tokens.operator"));
	p = expect_ok(rd, call(rd, "node.list", NULL));
	assert_int_equal(array_len(jget(p, "nodes")), 0);
	/* No longer a node: a second removal finds nothing; its operator session still works. */
	expect_err(op, call(op, "node.pair.remove", params), "INVALID_REQUEST",
	           "UNKNOWN_DEVICE_ID");
	expect_ok(om, call(om, "node.list", NULL));
	env_free(e);
}

/* NODE-3 and METHOD-1: a node's call of a method the gateway lacks is UNKNOWN_METHOD (OpenClaw
 * node hosts probe such methods and stay quiet on it), of an operator method UNAUTHORIZED_ROLE;
 * a held connection gets UNAUTHORIZED_ROLE for both. */
static void test_node_role_method_answers(void **state)
{
	static const char *const probes[] = {"node.skills.update", "node.pluginTools.update",
	                                     "node.runnerInventory.update"};
	struct env *e = env_new(NULL);
	struct identity id, id2;
	struct client *op, *n, *held;
	const cJSON *err, *hello, *m;
	char want[80], rid[64];
	bool found = false;

	(void)state;
	ident(&id, 95);
	ident(&id2, 96);
	op = operator(e, "operator.admin", NULL);
	n = local_node(e, &id, NULL);
	hello = jget(n->frames[n->pos - 1], "payload");
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		err = expect_err(n, call(n, probes[i], "{\"skills\":[]}"), "INVALID_REQUEST",
		                 "UNKNOWN_METHOD");
		snprintf(want, sizeof(want), "unknown method: %s", probes[i]);
		assert_string_equal(jstr(err, "message"), want);
	}
	err = expect_err(n, call(n, "node.pair.remove", "{\"bogus\":1}"), "INVALID_REQUEST",
	                 "UNAUTHORIZED_ROLE");
	assert_string_equal(jstr(err, "message"), "unauthorized role: node");
	expect_ok(n, call(n, "node.event", "{}"));
	assert_false(n->closed);

	/* Every method hello-ok names is one the gateway implements (no UNKNOWN_METHOD), and
	 * node.pair.remove is one of them. */
	skip_frames(op);
	cJSON_ArrayForEach(m, jget(hello, "features.methods"))
	{
		bool node_method = strcmp(m->valuestring, "node.invoke.result") == 0 ||
		                   strcmp(m->valuestring, "node.event") == 0;
		struct client *c = node_method ? n : op;
		const cJSON *f;

		call(c, m->valuestring, "{\"bogus\":1}");
		f = next_frame(c);
		assert_string_equal(jstr(f, "id"), c->last_id);
		if (jstr(f, "error.details.code"))
			assert_string_not_equal(jstr(f, "error.details.code"), "UNKNOWN_METHOD");
		if (strcmp(m->valuestring, "node.pair.remove") == 0)
			found = true;
	}
	assert_true(found);
	skip_frames(op);
	expect_err(op, call(op, "node.skills.update", "{}"), "INVALID_REQUEST", "UNKNOWN_METHOD");

	/* Held: the role answer for every name. */
	held = held_node(e, &id2, "10.0.0.10", rid);
	expect_err(held, call(held, "node.skills.update", "{}"), "INVALID_REQUEST",
	           "UNAUTHORIZED_ROLE");
	assert_false(held->closed);
	env_free(e);
}

static bool record_on_disk(const struct env *e, const char *table, const char *key)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s/%s.json", e->dir, table, key);
	return access(path, F_OK) == 0;
}

/* Group commit (PERSIST-3): with a batching store, nothing the core emits after a change goes out
 * before core_flush has put the change on disk; then everything goes, in order; frames for a
 * socket that closed meanwhile are dropped. */
static void test_group_commit(void **state)
{
	struct env *e = env_new(NULL);
	struct store_flush_stats st;
	struct identity id1, id2;
	struct client *op, *n1, *n2, *bad;
	struct copts o1, o2;
	char rid1[64], rid2[64], params[128];
	const cJSON *p;

	(void)state;
	op = operator(e, "operator.pairing", NULL);
	store_set_batching(e->store, true);
	assert_false(core_flush_due(e->core));
	ident(&id1, 41);
	ident(&id2, 42);
	o1 = node_opts(&id1);
	o2 = node_opts(&id2);
	n1 = open_client(e, "10.0.0.5"); /* nothing waits: the challenge goes at once */
	n2 = open_client(e, "10.0.0.6");
	bad = open_client(e, "10.0.0.7");
	do_connect(n1, &o1);
	do_connect(n2, &o2);
	send_text(bad, "{not json"); /* an error and a close, queued behind the requests */
	assert_int_equal(store_count(e->store, STORE_PENDING), 2);
	assert_int_equal(store_unflushed(e->store), 2);
	assert_true(core_flush_due(e->core));
	expect_no_frame(n1);
	expect_no_frame(n2);
	expect_no_frame(op);
	assert_false(bad->closed);

	assert_int_equal(core_flush(e->core), 0);
	store_flush_stats(e->store, &st);
	assert_int_equal(st.batches, 1);
	assert_int_equal(st.data_syncs, 1);
	assert_int_equal(st.dir_syncs, 1);
	snprintf(rid1, sizeof(rid1), "%s",
	         jstr(expect_event(n1, "connect.pending", -1), "requestId"));
	snprintf(rid2, sizeof(rid2), "%s",
	         jstr(expect_event(n2, "connect.pending", -1), "requestId"));
	assert_true(record_on_disk(e, "pending", rid1));
	assert_true(record_on_disk(e, "pending", rid2));
	assert_string_equal(jstr(expect_event(op, "device.pair.requested", 1), "requestId"), rid1);
	expect_event(op, "node.pair.requested", 2);
	assert_string_equal(jstr(expect_event(op, "device.pair.requested", 3), "requestId"), rid2);
	expect_event(op, "node.pair.requested", 4);
	expect_closed(bad, 1008);
	assert_false(core_flush_due(e->core));
	reap(e);

	/* The approval: no ok, resolved event or hello-ok before the paired record is on disk. */
	snprintf(params, sizeof(params), "{\"requestId\":\"%s\"}", rid1);
	call(op, "device.pair.approve", params);
	/* n2 asks for something while held: its error waits too, and n2 goes away first. */
	call(n2, "node.event", "{}");
	expect_no_frame(op);
	expect_no_frame(n1);
	expect_no_frame(n2);
	assert_false(record_on_disk(e, "paired", id1.device_id));
	n2->closed = true;
	reap(e);
	assert_int_equal(core_flush(e->core), 0);
	assert_true(record_on_disk(e, "paired", id1.device_id));
	assert_false(record_on_disk(e, "pending", rid1));
	p = expect_ok(op, op->last_id);
	assert_string_equal(jstr(p, "requestId"), rid1);
	expect_event(op, "device.pair.resolved", 5);
	expect_event(op, "node.pair.resolved", 6);
	expect_hello_device(n1, "node");
	assert_int_equal(n2->n, n2->pos); /* its error was dropped with it */
	assert_false(core_flush_due(e->core));
	env_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_challenge),
	        cmocka_unit_test(test_operator_hello),
	        cmocka_unit_test(test_handshake_errors),
	        cmocka_unit_test(test_bootstrap_token_signature),
	        cmocka_unit_test(test_hold_approve_device),
	        cmocka_unit_test(test_hold_approve_node),
	        cmocka_unit_test(test_reject),
	        cmocka_unit_test(test_expiry),
	        cmocka_unit_test(test_supersede_and_reconnect),
	        cmocka_unit_test(test_repair),
	        cmocka_unit_test(test_key_binding),
	        cmocka_unit_test(test_key2_recheck),
	        cmocka_unit_test(test_unknown_request),
	        cmocka_unit_test(test_events_scoped_and_sequenced),
	        cmocka_unit_test(test_limits),
	        cmocka_unit_test(test_limit_requests_without_sockets),
	        cmocka_unit_test(test_limit_preauth_pools),
	        cmocka_unit_test(test_expiry_batches),
	        cmocka_unit_test(test_responses_apart),
	        cmocka_unit_test(test_local_auto_approve),
	        cmocka_unit_test(test_trusted_proxy),
	        cmocka_unit_test(test_compat_6836),
	        cmocka_unit_test(test_shutdown),
	        cmocka_unit_test(test_methods_and_scopes),
	        cmocka_unit_test(test_tokens_and_remove),
	        cmocka_unit_test(test_held_socket_and_local_resolution),
	        cmocka_unit_test(test_trust1_remote_shared_token),
	        cmocka_unit_test(test_trust2_approver_limits),
	        cmocka_unit_test(test_trust3_request_unchanged),
	        cmocka_unit_test(test_trust4_token_ceiling),
	        cmocka_unit_test(test_trust5_sessions_closed),
	        cmocka_unit_test(test_node_list_fields),
	        cmocka_unit_test(test_node_pair_remove),
	        cmocka_unit_test(test_node_role_method_answers),
	        cmocka_unit_test(test_group_commit),
	};

	if (identity_global_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
