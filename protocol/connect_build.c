/* connect_build.c: building connect params the way OpenClaw clients do, signed over the
 * challenge nonce (the counterpart of connect.c, which parses and validates them). */
#include "connect_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authpayload.h"
#include "random.h"

/* What both built clients send alike. */
static void spec_common(struct connect_spec *s)
{
	memset(s, 0, sizeof(*s));
	s->version = CONNECT_CLIENT_VERSION;
	s->locale = "en-US";
	s->user_agent = "clawpair-fake-node/" CONNECT_CLIENT_VERSION;
	s->sig = CONNECT_SIG_V2;
	s->min_protocol = 3;
	s->max_protocol = 4;
}

void connect_spec_android(struct connect_spec *s)
{
	spec_common(s);
	s->role = "node";
	s->client_id = "openclaw-android";
	s->client_mode = "node";
	s->platform = "android";
	s->device_family = "Android";
	s->display_name = "clawpair fake node";
	s->model_identifier = "clawpair-fake-android";
}

void connect_spec_operator(struct connect_spec *s)
{
	spec_common(s);
	s->role = "operator";
	/* OpenClaw keeps a token operator's scopes only for the CLI client */
	s->client_id = "cli";
	s->client_mode = "cli";
	s->platform = "linux";
	s->scopes_omit = true;
	s->caps_omit = true;
	s->commands_omit = true;
}

static cJSON *string_array(const char *const *v, size_t n)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; a && i < n; i++) {
		cJSON *s = cJSON_CreateString(v[i]);

		if (!s) {
			cJSON_Delete(a);
			return NULL;
		}
		cJSON_AddItemToArray(a, s);
	}
	return a;
}

static bool add_str(cJSON *o, const char *k, const char *v)
{
	return !v || cJSON_AddStringToObject(o, k, v) != NULL;
}

static cJSON *device_object(const struct connect_spec *s, const char *challenge_nonce,
                            int64_t wall_ms)
{
	const struct identity *id = s->identity;
	char nonce[37] = "";
	char plat[256], fam[256], sig[IDENTITY_SIG_B64_LEN + 8];
	struct authpayload_params ap;
	enum authpayload_version v;
	int64_t signed_at = wall_ms + s->signed_at_offset_ms;
	cJSON *d = cJSON_CreateObject();
	char *payload;

	if (!d)
		return NULL;
	if (s->nonce == CONNECT_NONCE_CHALLENGE && challenge_nonce)
		snprintf(nonce, sizeof(nonce), "%s", challenge_nonce);
	else if (s->nonce == CONNECT_NONCE_WRONG)
		uuid_v4(nonce);

	memset(&ap, 0, sizeof(ap));
	ap.device_id = id->device_id;
	ap.client_id = s->client_id ? s->client_id : "";
	ap.client_mode = s->client_mode ? s->client_mode : "";
	ap.role = s->role ? s->role : "operator";
	ap.scopes = s->scopes_omit ? NULL : s->scopes;
	ap.n_scopes = s->scopes_omit ? 0 : s->n_scopes;
	/* a bad signature signs a different time than it claims */
	ap.signed_at_ms = s->sig == CONNECT_SIG_BAD ? signed_at + 1 : signed_at;
	ap.token = authpayload_token(s->token, NULL, s->bootstrap_token);
	ap.nonce = nonce;
	if (authpayload_normalize_meta(s->platform, plat, sizeof(plat)) < 0 ||
	    authpayload_normalize_meta(s->device_family, fam, sizeof(fam)) < 0)
		goto fail;
	ap.platform = plat;
	ap.device_family = fam;
	if (s->nonce == CONNECT_NONCE_NONE || s->sig == CONNECT_SIG_V1)
		v = AUTHPAYLOAD_V1;
	else
		v = s->sig == CONNECT_SIG_V3 ? AUTHPAYLOAD_V3 : AUTHPAYLOAD_V2;
	payload = authpayload_build(v, &ap);
	if (!payload)
		goto fail;
	if (identity_sign(id, payload, sig, sizeof(sig)) < 0) {
		free(payload);
		goto fail;
	}
	free(payload);

	if (!add_str(d, "id", id->device_id) || !add_str(d, "publicKey", id->pk_b64))
		goto fail;
	if (s->sig != CONNECT_SIG_NONE && !add_str(d, "signature", sig))
		goto fail;
	if (!cJSON_AddNumberToObject(d, "signedAt", (double)signed_at))
		goto fail;
	if (s->nonce != CONNECT_NONCE_NONE && !add_str(d, "nonce", nonce))
		goto fail;
	return d;
fail:
	cJSON_Delete(d);
	return NULL;
}

cJSON *connect_params_build(const struct connect_spec *s, const char *challenge_nonce,
                            int64_t wall_ms)
{
	cJSON *p = cJSON_CreateObject(), *client = NULL, *a;

	if (!p)
		return NULL;
	if (!cJSON_AddNumberToObject(p, "minProtocol", s->min_protocol) ||
	    !cJSON_AddNumberToObject(p, "maxProtocol", s->max_protocol))
		goto fail;
	client = cJSON_AddObjectToObject(p, "client");
	if (!client || !add_str(client, "id", s->client_id) ||
	    !add_str(client, "displayName", s->display_name) ||
	    !add_str(client, "version", s->version) || !add_str(client, "platform", s->platform) ||
	    !add_str(client, "deviceFamily", s->device_family) ||
	    !add_str(client, "modelIdentifier", s->model_identifier) ||
	    !add_str(client, "mode", s->client_mode))
		goto fail;
	if (!add_str(client, "instanceId",
	             s->instance_id ? s->instance_id
	             : s->identity  ? s->identity->device_id
	                            : NULL))
		goto fail;
	if (!add_str(p, "role", s->role))
		goto fail;
	if (!s->scopes_omit) {
		a = string_array(s->scopes, s->n_scopes);
		if (!a)
			goto fail;
		cJSON_AddItemToObject(p, "scopes", a);
	}
	if (!s->caps_omit) {
		a = string_array(s->caps, s->n_caps);
		if (!a)
			goto fail;
		cJSON_AddItemToObject(p, "caps", a);
	}
	if (!s->commands_omit) {
		a = string_array(s->commands, s->n_commands);
		if (!a)
			goto fail;
		cJSON_AddItemToObject(p, "commands", a);
	}
	if (s->token || s->bootstrap_token) {
		cJSON *auth = cJSON_AddObjectToObject(p, "auth");

		if (!auth || !add_str(auth, "token", s->token) ||
		    !add_str(auth, "bootstrapToken", s->bootstrap_token))
			goto fail;
	}
	if (!add_str(p, "locale", s->locale) || !add_str(p, "userAgent", s->user_agent))
		goto fail;
	if (s->identity) {
		cJSON *d = device_object(s, challenge_nonce, wall_ms);

		if (!d)
			goto fail;
		cJSON_AddItemToObject(p, "device", d);
	}
	return p;
fail:
	cJSON_Delete(p);
	return NULL;
}

char *connect_request_build(const char *id, const struct connect_spec *s,
                            const char *challenge_nonce, int64_t wall_ms)
{
	cJSON *params = connect_params_build(s, challenge_nonce, wall_ms);

	return params ? frame_build_req(id, "connect", params) : NULL;
}
