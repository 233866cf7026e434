/* connect.c: validation of connect params against OpenClaw's closed key set. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect.h"
#include "identity.h"
#include "json.h"

enum kind {
	K_INT1, /* integer >= 1 */
	K_INT0, /* integer >= 0 */
	K_STR, /* string */
	K_NESTR, /* non-empty string */
	K_CLIENT_ID, /* string from the client id enum */
	K_CLIENT_MODE, /* string from the client mode enum */
	K_STR_ARRAY, /* array of strings */
	K_SCOPES, /* array of strings, at most CONNECT_MAX_SCOPES */
	K_PERMS, /* object of booleans */
	K_ANY, /* any JSON value (shape not pinned down by either release) */
	K_OBJ, /* closed object described by sub */
};

struct schema;

struct field {
	const char *key;
	enum kind kind;
	bool required;
	const struct schema *sub;
};

struct schema {
	const struct field *fields;
	size_t n;
};

/* Limits spelled into the error text. */
#define STR_(x) #x
#define STR(x) STR_(x)

#define SCHEMA(arr)                               \
	{                                         \
		arr, sizeof(arr) / sizeof(arr[0]) \
	}

static const struct field client_fields[] = {
        {"id", K_CLIENT_ID, true, NULL},      {"displayName", K_STR, false, NULL},
        {"version", K_NESTR, true, NULL},     {"platform", K_NESTR, true, NULL},
        {"deviceFamily", K_STR, false, NULL}, {"modelIdentifier", K_STR, false, NULL},
        {"mode", K_CLIENT_MODE, true, NULL},  {"instanceId", K_STR, false, NULL},
        {"buildId", K_STR, false, NULL},      {"timeZone", K_STR, false, NULL},
};
static const struct schema client_schema = SCHEMA(client_fields);

/* nonce is required by 2026.9.6 but optional in 2026.1.30; the gateway enforces it
 * (DEVICE_AUTH_NONCE_REQUIRED) with its own error rather than as a schema error. */
static const struct field device_fields[] = {
        {"id", K_NESTR, true, NULL},        {"publicKey", K_NESTR, true, NULL},
        {"signature", K_NESTR, true, NULL}, {"signedAt", K_INT0, true, NULL},
        {"nonce", K_NESTR, false, NULL},
};
static const struct schema device_schema = SCHEMA(device_fields);

static const struct field auth_fields[] = {
        {"token", K_STR, false, NULL},
        {"password", K_STR, false, NULL},
        {"bootstrapToken", K_STR, false, NULL},
        {"deviceToken", K_STR, false, NULL},
        {"approvalRuntimeToken", K_STR, false, NULL},
        {"agentRuntimeIdentityToken", K_STR, false, NULL},
};
static const struct schema auth_schema = SCHEMA(auth_fields);

static const struct field top_fields[] = {
        {"minProtocol", K_INT1, true, NULL},     {"maxProtocol", K_INT1, true, NULL},
        {"client", K_OBJ, true, &client_schema}, {"caps", K_STR_ARRAY, false, NULL},
        {"commands", K_STR_ARRAY, false, NULL},  {"permissions", K_PERMS, false, NULL},
        {"pathEnv", K_STR, false, NULL},         {"role", K_NESTR, false, NULL},
        {"scopes", K_SCOPES, false, NULL},       {"device", K_OBJ, false, &device_schema},
        {"auth", K_OBJ, false, &auth_schema},    {"locale", K_STR, false, NULL},
        {"userAgent", K_STR, false, NULL},       {"computerUse", K_ANY, false, NULL},
        {"workerRuns", K_ANY, false, NULL},      {"modelCatalog", K_ANY, false, NULL},
};
static const struct schema top_schema = SCHEMA(top_fields);

/* Union of 2026.1.30 and 2026.9.6. */
static const char *const client_ids[] = {
        "webchat-ui",
        "openclaw-control-ui",
        "webchat",
        "cli",
        "gateway-client",
        "openclaw-macos",
        "openclaw-ios",
        "openclaw-android",
        "node-host",
        "test",
        "fingerprint",
        "openclaw-probe",
        "openclaw-browser-copilot",
        "openclaw-tui",
        "openclaw-linux",
        "openclaw-watchos",
        "openclaw-worker",
};

static const char *const client_modes[] = {
        "webchat", "cli", "ui", "backend", "node", "probe", "test", "worker",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
	if (!s)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

bool connect_client_id_known(const char *id)
{
	return in_list(id, client_ids, sizeof(client_ids) / sizeof(client_ids[0]));
}

bool connect_client_mode_known(const char *mode)
{
	return in_list(mode, client_modes, sizeof(client_modes) / sizeof(client_modes[0]));
}

/* A JSON pointer being built while descending. Keys are client-chosen, so a long one is cut
 * (marked "...") to leave room in the reason for the message itself. */
#define PATH_MAX_BYTES 96

struct path {
	char s[PATH_MAX_BYTES + 8];
	size_t len;
};

static size_t path_push(struct path *p, const char *key)
{
	size_t old = p->len;
	const char *k = key ? key : "";

	if (p->len < PATH_MAX_BYTES)
		p->s[p->len++] = '/';
	for (; *k && p->len + 2 <= PATH_MAX_BYTES; k++) {
		/* RFC 6901 escaping: '~' is ~0 and '/' is ~1. */
		if (*k == '~' || *k == '/') {
			p->s[p->len++] = '~';
			p->s[p->len++] = *k == '~' ? '0' : '1';
		} else {
			p->s[p->len++] = *k;
		}
	}
	p->s[p->len] = '\0';
	if (*k) {
		json_utf8_trim_tail(p->s);
		p->len = strlen(p->s);
		memcpy(p->s + p->len, "...", 4);
		p->len += 3;
	}
	return old;
}

static void path_pop(struct path *p, size_t old)
{
	p->len = old;
	p->s[old] = '\0';
}

__attribute__((format(printf, 4, 5))) static int fail(char *why, size_t whysz, const struct path *p,
                                                      const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	if (why && whysz) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		snprintf(why, whysz, "at %s: %s", p->len ? p->s : "root", msg);
		/* The reason ends up in a close frame and a JSON text frame: never leave half a
		 * character at a cut. */
		json_utf8_trim_tail(why);
	}
	return -1;
}

static int check_string(const cJSON *it, bool nonempty, char *why, size_t whysz,
                        const struct path *p)
{
	if (!cJSON_IsString(it))
		return fail(why, whysz, p, "must be string");
	if (strlen(it->valuestring) > CONNECT_MAX_STRING)
		return fail(why, whysz, p, "must NOT have more than %s characters",
		            STR(CONNECT_MAX_STRING));
	if (nonempty && it->valuestring[0] == '\0')
		return fail(why, whysz, p, "must NOT have fewer than 1 characters");
	return 0;
}

static int check_array(const cJSON *it, size_t max, const char *maxtext, char *why, size_t whysz,
                       struct path *p)
{
	size_t n = 0;

	if (!cJSON_IsArray(it))
		return fail(why, whysz, p, "must be array");
	for (const cJSON *e = it->child; e; e = e->next) {
		char idx[24];
		size_t old;
		if (++n > max)
			return fail(why, whysz, p, "must NOT have more than %s items", maxtext);
		snprintf(idx, sizeof(idx), "%zu", n - 1);
		old = path_push(p, idx);
		if (check_string(e, false, why, whysz, p) != 0)
			return -1;
		path_pop(p, old);
	}
	return 0;
}

/* Duplicate keys would be read as the first value here but as the last one by a JavaScript
 * peer, so a signed field could mean two things: refuse them. */
static bool duplicate_before(const cJSON *obj, const cJSON *it)
{
	for (const cJSON *e = obj->child; e && e != it; e = e->next)
		if (e->string && it->string && strcmp(e->string, it->string) == 0)
			return true;
	return false;
}

static int check_perms(const cJSON *it, char *why, size_t whysz, struct path *p)
{
	size_t n = 0;

	if (!cJSON_IsObject(it))
		return fail(why, whysz, p, "must be object");
	for (const cJSON *e = it->child; e; e = e->next) {
		size_t old;
		if (++n > CONNECT_MAX_ITEMS)
			return fail(why, whysz, p, "must NOT have more than %s properties",
			            STR(CONNECT_MAX_ITEMS));
		if (!e->string || strlen(e->string) > CONNECT_MAX_STRING || !e->string[0])
			return fail(why, whysz, p, "property name is invalid");
		old = path_push(p, e->string);
		if (duplicate_before(it, e))
			return fail(why, whysz, p, "duplicate property");
		if (!cJSON_IsBool(e))
			return fail(why, whysz, p, "must be boolean");
		path_pop(p, old);
	}
	return 0;
}

static int check_object(const cJSON *obj, const struct schema *s, char *why, size_t whysz,
                        struct path *p);

static int check_value(const cJSON *it, const struct field *f, char *why, size_t whysz,
                       struct path *p)
{
	switch (f->kind) {
	case K_INT1:
	case K_INT0:
		if (!json_is_int64(it))
			return fail(why, whysz, p, "must be integer");
		if (it->valuedouble < (f->kind == K_INT1 ? 1 : 0))
			return fail(why, whysz, p, "must be >= %s", f->kind == K_INT1 ? "1" : "0");
		return 0;
	case K_STR:
	case K_NESTR:
		return check_string(it, f->kind == K_NESTR, why, whysz, p);
	case K_CLIENT_ID:
	case K_CLIENT_MODE:
		if (!cJSON_IsString(it))
			return fail(why, whysz, p, "must be string");
		if (f->kind == K_CLIENT_ID ? !connect_client_id_known(it->valuestring)
		                           : !connect_client_mode_known(it->valuestring))
			return fail(why, whysz, p, "must be equal to one of the allowed values");
		return 0;
	case K_STR_ARRAY:
		return check_array(it, CONNECT_MAX_ITEMS, STR(CONNECT_MAX_ITEMS), why, whysz, p);
	case K_SCOPES:
		return check_array(it, CONNECT_MAX_SCOPES, STR(CONNECT_MAX_SCOPES), why, whysz, p);
	case K_PERMS:
		return check_perms(it, why, whysz, p);
	case K_ANY:
		return 0;
	case K_OBJ:
		return check_object(it, f->sub, why, whysz, p);
	}
	return fail(why, whysz, p, "unsupported");
}

static int check_object(const cJSON *obj, const struct schema *s, char *why, size_t whysz,
                        struct path *p)
{
	if (!cJSON_IsObject(obj))
		return fail(why, whysz, p, "must be object");
	for (size_t i = 0; i < s->n; i++)
		if (s->fields[i].required &&
		    !cJSON_GetObjectItemCaseSensitive(obj, s->fields[i].key))
			return fail(why, whysz, p, "must have required property '%s'",
			            s->fields[i].key);
	for (const cJSON *it = obj->child; it; it = it->next) {
		const struct field *f = NULL;
		size_t old;

		for (size_t i = 0; i < s->n && it->string; i++)
			if (strcmp(it->string, s->fields[i].key) == 0)
				f = &s->fields[i];
		old = path_push(p, it->string);
		if (!f)
			return fail(why, whysz, p, "unknown property");
		if (duplicate_before(obj, it))
			return fail(why, whysz, p, "duplicate property");
		if (check_value(it, f, why, whysz, p) != 0)
			return -1;
		path_pop(p, old);
	}
	return 0;
}

enum cp_err connect_params_parse(cJSON *params, struct connect_params *out, char *why, size_t whysz)
{
	struct path p = {{0}, 0};
	const cJSON *client, *device, *auth, *scopes;

	if (why && whysz)
		why[0] = '\0';
	if (!out)
		return CP_ERR_INVALID_CONNECT_PARAMS;
	memset(out, 0, sizeof(*out));
	if (check_object(params, &top_schema, why, whysz, &p) != 0)
		return CP_ERR_INVALID_CONNECT_PARAMS;

	json_get_int64(params, "minProtocol", &out->min_protocol);
	json_get_int64(params, "maxProtocol", &out->max_protocol);

	client = cJSON_GetObjectItemCaseSensitive(params, "client");
	out->client_id = json_get_string(client, "id");
	out->client_display_name = json_get_string(client, "displayName");
	out->client_version = json_get_string(client, "version");
	out->client_platform = json_get_string(client, "platform");
	out->client_device_family = json_get_string(client, "deviceFamily");
	out->client_model_identifier = json_get_string(client, "modelIdentifier");
	out->client_mode = json_get_string(client, "mode");
	out->client_instance_id = json_get_string(client, "instanceId");
	out->client_build_id = json_get_string(client, "buildId");
	out->client_time_zone = json_get_string(client, "timeZone");

	out->role = json_get_string(params, "role");
	out->role_given = out->role != NULL;
	if (!out->role)
		out->role = "operator";

	scopes = cJSON_GetObjectItemCaseSensitive(params, "scopes");
	out->scopes_given = scopes != NULL;
	for (const cJSON *e = scopes ? scopes->child : NULL; e; e = e->next)
		out->scopes[out->n_scopes++] = e->valuestring;

	out->caps = cJSON_GetObjectItemCaseSensitive(params, "caps");
	out->commands = cJSON_GetObjectItemCaseSensitive(params, "commands");
	out->permissions = cJSON_GetObjectItemCaseSensitive(params, "permissions");
	out->computer_use = cJSON_GetObjectItemCaseSensitive(params, "computerUse");
	out->worker_runs = cJSON_GetObjectItemCaseSensitive(params, "workerRuns");
	out->model_catalog = cJSON_GetObjectItemCaseSensitive(params, "modelCatalog");

	device = cJSON_GetObjectItemCaseSensitive(params, "device");
	out->has_device = device != NULL;
	if (device) {
		out->device_id = json_get_string(device, "id");
		out->device_public_key = json_get_string(device, "publicKey");
		out->device_signature = json_get_string(device, "signature");
		out->device_nonce = json_get_string(device, "nonce");
		json_get_int64(device, "signedAt", &out->device_signed_at);
	}

	auth = cJSON_GetObjectItemCaseSensitive(params, "auth");
	out->has_auth = auth != NULL;
	out->auth_token = json_get_string(auth, "token");
	out->auth_password = json_get_string(auth, "password");
	out->auth_device_token = json_get_string(auth, "deviceToken");
	out->auth_bootstrap_token = json_get_string(auth, "bootstrapToken");
	out->auth_approval_runtime_token = json_get_string(auth, "approvalRuntimeToken");
	out->auth_agent_runtime_identity_token = json_get_string(auth, "agentRuntimeIdentityToken");

	out->locale = json_get_string(params, "locale");
	out->user_agent = json_get_string(params, "userAgent");
	out->path_env = json_get_string(params, "pathEnv");
	return CP_OK;
}

enum cp_err connect_check_protocol(const struct connect_params *p, int *chosen)
{
	if (!p)
		return CP_ERR_PROTOCOL_MISMATCH;
	if (p->min_protocol <= 4 && p->max_protocol >= 4) {
		if (chosen)
			*chosen = 4;
		return CP_OK;
	}
	if (p->min_protocol <= 3 && p->max_protocol >= 3) {
		if (chosen)
			*chosen = 3;
		return CP_OK;
	}
	return CP_ERR_PROTOCOL_MISMATCH;
}

enum cp_err connect_check_role(const struct connect_params *p)
{
	if (p && p->role && (strcmp(p->role, "operator") == 0 || strcmp(p->role, "node") == 0))
		return CP_OK;
	return CP_ERR_INVALID_ROLE;
}

const char *connect_signing_token(const struct connect_params *p)
{
	if (!p)
		return "";
	return authpayload_token(p->auth_token, p->auth_device_token, p->auth_bootstrap_token);
}

void connect_authpayload_params(const struct connect_params *p, struct authpayload_params *out)
{
	memset(out, 0, sizeof(*out));
	out->device_id = p->device_id;
	out->client_id = p->client_id;
	out->client_mode = p->client_mode;
	out->role = p->role;
	out->scopes = p->scopes;
	out->n_scopes = p->n_scopes;
	out->signed_at_ms = p->device_signed_at;
	out->token = connect_signing_token(p);
	out->nonce = p->device_nonce;
	out->platform = p->client_platform;
	out->device_family = p->client_device_family;
}

int connect_verify_signature(const struct connect_params *p, const uint8_t pk[32])
{
	static const enum authpayload_version order[] = {AUTHPAYLOAD_V3, AUTHPAYLOAD_V2};
	struct authpayload_params ap;

	if (!p->device_signature)
		return 0;
	connect_authpayload_params(p, &ap);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		char *payload = authpayload_build(order[i], &ap);
		bool ok = payload && identity_verify(pk, payload, p->device_signature);

		free(payload);
		if (ok)
			return (int)order[i];
	}
	return 0;
}
