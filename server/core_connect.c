/* core_connect.c: the connect handshake: params, protocol, role, device proof, token auth, then the
 * pairing decision (hello-ok, silent local approval, or a held-open pending request). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authpayload.h"
#include "connect.h"
#include "core_internal.h"

static const char *const methods[] = {
        "device.pair.list",    "device.pair.approve", "device.pair.reject", "device.pair.remove",
        "node.pair.list",      "node.pair.approve",   "node.pair.reject",   "node.list",
        "device.token.rotate", "device.token.revoke", "node.invoke.result", "node.event",
        "node.pair.remove",
};

static const char *const events[] = {
        "connect.challenge",     "connect.pending",      "tick",
        "device.pair.requested", "device.pair.resolved", "node.pair.requested",
        "node.pair.resolved",
};

static cJSON *string_array(const char *const *v, size_t n)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; a && i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
	return a;
}

static cJSON *build_hello(struct core *core, struct core_conn *conn, cJSON *auth, uint64_t now_ms)
{
	cJSON *h = cJSON_CreateObject();
	cJSON *server, *features, *snapshot, *sv, *policy;

	if (!h) {
		cJSON_Delete(auth);
		return NULL;
	}
	cJSON_AddStringToObject(h, "type", "hello-ok");
	cJSON_AddNumberToObject(h, "protocol", conn->protocol);
	server = cJSON_AddObjectToObject(h, "server");
	if (server) {
		cJSON_AddStringToObject(server, "version", core->cfg.server_version);
		cJSON_AddStringToObject(server, "host", core->cfg.server_host);
		cJSON_AddStringToObject(server, "connId", conn->id);
	}
	features = cJSON_AddObjectToObject(h, "features");
	if (features) {
		cJSON_AddItemToObject(features, "methods",
		                      string_array(methods, sizeof(methods) / sizeof(methods[0])));
		cJSON_AddItemToObject(features, "events",
		                      string_array(events, sizeof(events) / sizeof(events[0])));
	}
	snapshot = cJSON_AddObjectToObject(h, "snapshot");
	if (snapshot) {
		cJSON_AddArrayToObject(snapshot, "presence");
		cJSON_AddObjectToObject(snapshot, "health");
		sv = cJSON_AddObjectToObject(snapshot, "stateVersion");
		if (sv) {
			cJSON_AddNumberToObject(sv, "presence", 0);
			cJSON_AddNumberToObject(sv, "health", 0);
		}
		cJSON_AddNumberToObject(
		        snapshot, "uptimeMs",
		        (double)(now_ms >= core->started_ms ? now_ms - core->started_ms : 0));
	}
	if (auth)
		cJSON_AddItemToObject(h, "auth", auth);
	policy = cJSON_AddObjectToObject(h, "policy");
	if (policy) {
		cJSON_AddNumberToObject(policy, "maxPayload", (double)core->cfg.max_payload);
		cJSON_AddNumberToObject(policy, "maxBufferedBytes", CORE_MAX_BUFFERED_BYTES);
		cJSON_AddNumberToObject(policy, "tickIntervalMs",
		                        (double)core->cfg.tick_interval_ms);
	}
	return h;
}

void core_finish_hello(struct core *core, struct core_conn *conn, uint64_t now_ms)
{
	cJSON *auth = NULL;

	if (conn->closing)
		return;
	if (conn->has_device && core_ensure_token(core, conn, now_ms, &auth) < 0) {
		core_logf(core, CORE_LOG_ERROR, "conn %s: %s", conn->id,
		          store_last_error(core->store));
		core_fail(core, conn, conn->connect_id, CP_ERR_STORE_FAILED, NULL, NULL, NULL);
		/* Not authenticated: let the handshake timer close it. */
		core_conn_set_state(core, conn, CONN_PREAUTH);
		conn->handshake_deadline = now_ms;
		core_note_preauth_deadline(core, now_ms);
		return;
	}
	core_conn_set_state(core, conn, CONN_AUTHED);
	core_node_live_authed(conn, now_ms);
	conn->request_id[0] = '\0';
	core_send_ok(core, conn, conn->connect_id, build_hello(core, conn, auth, now_ms));
	core_logf(core, CORE_LOG_INFO, "conn %s ip %s: hello-ok role %s%s%s", conn->id, conn->ip,
	          conn->role, conn->has_device ? " device " : "",
	          conn->has_device ? conn->device_id : "");
}

static void trim_copy(const char *in, char *out, size_t outsz)
{
	const char *end;

	while (*in == ' ' || *in == '\t' || *in == '\n' || *in == '\r')
		in++;
	end = in + strlen(in);
	while (end > in &&
	       (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		end--;
	snprintf(out, outsz, "%.*s", (int)(end - in), in);
}

/* Device checks in OpenClaw's order. Fills conn's device fields. */
static enum cp_err check_device(struct core_conn *conn, const struct connect_params *cp,
                                uint64_t now_ms)
{
	uint8_t pk[IDENTITY_PK_BYTES];
	char nonce[CONNECT_MAX_STRING + 1];
	int64_t skew;

	if (!cp->device_public_key || identity_parse_public_key(cp->device_public_key, pk) < 0)
		return CP_ERR_PUBLIC_KEY_INVALID;
	identity_device_id(pk, conn->device_id);
	if (!cp->device_id || strcmp(cp->device_id, conn->device_id) != 0)
		return CP_ERR_DEVICE_ID_MISMATCH;
	skew = (int64_t)now_ms - cp->device_signed_at;
	if (skew > CORE_SKEW_MS || skew < -CORE_SKEW_MS)
		return CP_ERR_SIGNATURE_EXPIRED;
	trim_copy(cp->device_nonce ? cp->device_nonce : "", nonce, sizeof(nonce));
	if (!nonce[0])
		return CP_ERR_NONCE_REQUIRED;
	if (strcmp(nonce, conn->nonce) != 0)
		return CP_ERR_NONCE_MISMATCH;
	if (!connect_verify_signature(cp, pk))
		return CP_ERR_SIGNATURE_INVALID;
	if (identity_normalize_public_key(cp->device_public_key, conn->public_key,
	                                  sizeof(conn->public_key)) < 0)
		return CP_ERR_PUBLIC_KEY_INVALID;
	conn->has_device = true;
	return CP_OK;
}

static enum cp_err check_auth(struct core *core, struct core_conn *conn,
                              const struct connect_params *cp)
{
	if (cp->auth_token && core->cfg.token && core_token_eq(cp->auth_token, core->cfg.token))
		return CP_OK;
	/* The shared token failed: a paired device may use its own device token instead. */
	if (conn->has_device) {
		if (cp->auth_token && core_device_token_ok(core, conn->device_id, conn->public_key,
		                                           cp->role, cp->auth_token))
			return CP_OK;
		if (cp->auth_device_token &&
		    core_device_token_ok(core, conn->device_id, conn->public_key, cp->role,
		                         cp->auth_device_token))
			return CP_OK;
	}
	if (!cp->auth_token && !cp->auth_device_token)
		return CP_ERR_AUTH_TOKEN_MISSING;
	return CP_ERR_AUTH_TOKEN_MISMATCH;
}

static cJSON *effective_scopes(const struct connect_params *cp, bool is_node)
{
	cJSON *a = cJSON_CreateArray();

	if (!a)
		return NULL;
	if (!is_node && cp->n_scopes == 0) {
		cJSON_AddItemToArray(a, cJSON_CreateString("operator.admin"));
		return a;
	}
	for (size_t i = 0; i < cp->n_scopes; i++)
		if (!json_array_has_string(a, cp->scopes[i]))
			cJSON_AddItemToArray(a, cJSON_CreateString(cp->scopes[i]));
	return a;
}

static void add_opt(cJSON *o, const char *k, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, k, v);
}

static cJSON *build_pending(struct core *core, const struct core_conn *conn,
                            const struct connect_params *cp, bool silent, bool is_repair,
                            uint64_t now_ms)
{
	cJSON *r = cJSON_CreateObject();
	cJSON *roles;
	char rid[CORE_UUID_LEN + 1], fp[IDENTITY_FINGERPRINT_LEN + 1];
	uint8_t pk[IDENTITY_PK_BYTES];

	if (!r)
		return NULL;
	uuid_v4(rid);
	cJSON_AddStringToObject(r, "requestId", rid);
	cJSON_AddStringToObject(r, "deviceId", conn->device_id);
	cJSON_AddStringToObject(r, "publicKey", conn->public_key);
	add_opt(r, "displayName", cp->client_display_name);
	add_opt(r, "platform", cp->client_platform);
	add_opt(r, "deviceFamily", cp->client_device_family);
	add_opt(r, "clientId", cp->client_id);
	add_opt(r, "clientMode", cp->client_mode);
	cJSON_AddStringToObject(r, "role", conn->role);
	roles = cJSON_AddArrayToObject(r, "roles");
	if (roles)
		cJSON_AddItemToArray(roles, cJSON_CreateString(conn->role));
	cJSON_AddItemToObject(r, "scopes", cJSON_Duplicate(conn->scopes, true));
	if (!conn->client_loopback && conn->ip[0])
		cJSON_AddStringToObject(r, "remoteIp", conn->ip);
	cJSON_AddBoolToObject(r, "silent", silent);
	cJSON_AddBoolToObject(r, "isRepair", is_repair);
	cJSON_AddNumberToObject(r, "ts", (double)now_ms);
	if (identity_parse_public_key(conn->public_key, pk) == 0) {
		identity_fingerprint(pk, fp);
		cJSON_AddStringToObject(r, "fingerprint", fp);
	}
	cJSON_AddNumberToObject(r, "expiresAtMs", (double)(now_ms + core->cfg.pending_ttl_ms));
	core_note_expiry(core, now_ms + core->cfg.pending_ttl_ms);
	return r;
}

/* §8.3 step 1: the device may have what it asks without an approval. Scopes are compared with its
 * token for the role, not with the record: a rotation may have narrowed the token (TRUST-4). */
static bool paired_covers(const cJSON *paired, const struct core_conn *conn)
{
	const cJSON *roles = cJSON_GetObjectItemCaseSensitive(paired, "roles");

	/* `roles` decides; the singular `role` of a record is informative (§8.2) */
	if (!json_array_has_string(roles, conn->role))
		return false;
	return core_scopes_within(conn->scopes, core_scope_ceiling(paired, conn->role));
}

/* The pending request asks for exactly what conn asks: its role, only that role, and the same
 * scopes (as a set). Anything else is a different request (TRUST-3). */
static bool request_matches(const cJSON *rec, const struct core_conn *conn)
{
	const char *role = json_get_string(rec, "role");
	const cJSON *roles = cJSON_GetObjectItemCaseSensitive(rec, "roles");
	const cJSON *scopes = cJSON_GetObjectItemCaseSensitive(rec, "scopes");

	if (!role || strcmp(role, conn->role) != 0)
		return false;
	if (roles && (!cJSON_IsArray(roles) || cJSON_GetArraySize(roles) != 1 ||
	              !json_array_has_string(roles, conn->role)))
		return false;
	return cJSON_IsArray(scopes) && core_scopes_within(scopes, conn->scopes) &&
	       core_scopes_within(conn->scopes, scopes);
}

static cJSON *pending_event_payload(const cJSON *rec)
{
	cJSON *p = cJSON_CreateObject();

	if (!p)
		return NULL;
	cJSON_AddStringToObject(p, "requestId", json_get_string(rec, "requestId"));
	cJSON_AddStringToObject(p, "deviceId", json_get_string(rec, "deviceId"));
	add_opt(p, "fingerprint", json_get_string(rec, "fingerprint"));
	cJSON_AddNumberToObject(p, "expiresAtMs", (double)core_json_u64(rec, "expiresAtMs"));
	cJSON_AddBoolToObject(p, "isRepair",
	                      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "isRepair")));
	return p;
}

static void announce_requested(struct core *core, const cJSON *rec)
{
	core_broadcast_pairing(core, "device.pair.requested", cJSON_Duplicate(rec, true));
	if (core_is_node_request(rec)) {
		cJSON *n = cJSON_Duplicate(rec, true);

		if (n)
			cJSON_AddStringToObject(n, "nodeId", json_get_string(rec, "deviceId"));
		core_broadcast_pairing(core, "node.pair.requested", n);
	}
}

/* OpenClaw 2026.1.30: the request lands in the device store, the socket is closed. */
static void compat_require_pairing(struct core *core, struct core_conn *conn,
                                   const struct connect_params *cp, const cJSON *existing,
                                   bool is_repair, uint64_t now_ms)
{
	char rid[CORE_UUID_LEN + 1];
	cJSON *extra;

	if (existing) {
		snprintf(rid, sizeof(rid), "%s", json_get_string(existing, "requestId"));
	} else {
		cJSON *rec = build_pending(core, conn, cp, false, is_repair, now_ms);
		cJSON *copy = rec ? cJSON_Duplicate(rec, true) : NULL;

		if (!copy || store_put(core->store, STORE_PENDING, rec) < 0) {
			if (!copy)
				cJSON_Delete(rec);
			cJSON_Delete(copy);
			core_fail(core, conn, conn->connect_id, CP_ERR_STORE_FAILED, NULL, NULL,
			          NULL);
			return;
		}
		snprintf(rid, sizeof(rid), "%s", json_get_string(copy, "requestId"));
		/* 1.30 announced only the device event for a WS connect. */
		core_broadcast_pairing(core, "device.pair.requested", copy);
	}
	extra = cJSON_CreateObject();
	if (extra)
		cJSON_AddStringToObject(extra, "requestId", rid);
	core_fail(core, conn, conn->connect_id, CP_ERR_PAIRING_REQUIRED, NULL, extra, NULL);
}

/* §8.3 step 3. existing is the device's pending request (or NULL); same: it asks for what conn
 * asks, so conn takes it over (RECON-1), else conn replaces it with a new one (TRUST-3). */
static void hold_open(struct core *core, struct core_conn *conn, const struct connect_params *cp,
                      const cJSON *existing, bool same, bool is_repair, uint64_t now_ms)
{
	struct core_conn *holder = NULL;
	cJSON *rec, *copy;
	char rid[CORE_UUID_LEN + 1];

	if (existing)
		holder = core_find_held(core, json_get_string(existing, "requestId"), conn);
	{
		enum cp_err over = core_limit_pending(core, conn, existing, holder);

		if (over != CP_OK) {
			core_fail(core, conn, conn->connect_id, over, NULL, NULL, NULL);
			return;
		}
	}
	if (existing && !same) {
		/* The approver was shown that request: it is resolved, never changed. */
		snprintf(rid, sizeof(rid), "%s", json_get_string(existing, "requestId"));
		existing = NULL;
		holder = NULL;
		if (core_supersede_request(core, rid, conn, now_ms) < 0)
			goto store_failed;
	}
	if (existing) {
		rec = cJSON_Duplicate(existing, true);
		if (!rec)
			goto store_failed;
		/* RECON-1: same requestId, fresh deadline. */
		cJSON_DeleteItemFromObjectCaseSensitive(rec, "expiresAtMs");
		cJSON_AddNumberToObject(rec, "expiresAtMs",
		                        (double)(now_ms + core->cfg.pending_ttl_ms));
	} else {
		rec = build_pending(core, conn, cp, false, is_repair, now_ms);
		if (!rec)
			goto store_failed;
	}
	snprintf(rid, sizeof(rid), "%s", json_get_string(rec, "requestId"));
	copy = cJSON_Duplicate(rec, true);
	if (!copy || store_put(core->store, STORE_PENDING, rec) < 0) {
		if (!copy)
			cJSON_Delete(rec);
		cJSON_Delete(copy);
		goto store_failed;
	}
	rec = copy;
	if (holder) {
		/* HOLD-6: the newer socket of the device takes the request over. */
		core_fail(core, holder, holder->connect_id, CP_ERR_PAIRING_SUPERSEDED, NULL, NULL,
		          NULL);
	}
	snprintf(conn->request_id, sizeof(conn->request_id), "%s", rid);
	core_conn_set_state(core, conn, CONN_HELD);
	core_send_event(core, conn, "connect.pending", pending_event_payload(rec), false);
	core_logf(core, CORE_LOG_INFO, "conn %s ip %s: device %s held open, request %s%s", conn->id,
	          conn->ip, conn->device_id, rid, existing ? "" : " (new)");
	if (!existing) {
		core_index_note_request(core, rec);
		announce_requested(core, rec);
	}
	cJSON_Delete(rec);
	return;
store_failed:
	core_logf(core, CORE_LOG_ERROR, "conn %s: %s", conn->id, store_last_error(core->store));
	core_fail(core, conn, conn->connect_id, CP_ERR_STORE_FAILED, NULL, NULL, NULL);
}

/* §8.3 step 2 (LOCAL-1): the device's request is approved at once; one that asks for something
 * else than conn is superseded first (TRUST-3). */
static void approve_silently(struct core *core, struct core_conn *conn,
                             const struct connect_params *cp, const cJSON *existing, bool same,
                             bool is_repair, uint64_t now_ms)
{
	char rid[CORE_UUID_LEN + 1];
	cJSON *rec;

	if (existing && !same) {
		snprintf(rid, sizeof(rid), "%s", json_get_string(existing, "requestId"));
		existing = NULL;
		if (core_supersede_request(core, rid, conn, now_ms) < 0)
			goto store_failed;
	}
	rec = existing ? cJSON_Duplicate(existing, true)
	               : build_pending(core, conn, cp, true, is_repair, now_ms);
	if (!rec || core_pair_request(core, rec, existing != NULL, now_ms, NULL) < 0) {
		cJSON_Delete(rec);
		goto store_failed;
	}
	snprintf(rid, sizeof(rid), "%s", json_get_string(rec, "requestId"));
	core_logf(core, CORE_LOG_INFO, "conn %s: local device %s approved silently", conn->id,
	          conn->device_id);
	core_announce_approved(core, rid, conn->device_id, core_is_node_request(rec), now_ms);
	cJSON_Delete(rec);
	core_finish_hello(core, conn, now_ms);
	return;
store_failed:
	core_logf(core, CORE_LOG_ERROR, "conn %s: %s", conn->id, store_last_error(core->store));
	core_fail(core, conn, conn->connect_id, CP_ERR_STORE_FAILED, NULL, NULL, NULL);
}

static void pairing_decision(struct core *core, struct core_conn *conn,
                             const struct connect_params *cp, uint64_t now_ms)
{
	const cJSON *paired = store_get(core->store, STORE_PAIRED, conn->device_id);
	const cJSON *existing = store_find(core->store, STORE_PENDING, "deviceId", conn->device_id);
	bool key_changed =
	        paired && (!json_get_string(paired, "publicKey") ||
	                   strcmp(json_get_string(paired, "publicKey"), conn->public_key));
	char rid[CORE_UUID_LEN + 1];

	if (paired && !key_changed && paired_covers(paired, conn)) {
		core_finish_hello(core, conn, now_ms);
		return;
	}
	if (existing && core_json_u64(existing, "expiresAtMs") <= now_ms &&
	    !core->cfg.compat_6836) {
		snprintf(rid, sizeof(rid), "%s", json_get_string(existing, "requestId"));
		core_expire_request(core, rid, now_ms);
		existing = store_find(core->store, STORE_PENDING, "deviceId", conn->device_id);
	}
	if (existing &&
	    strcmp(json_get_string(existing, "publicKey") ? json_get_string(existing, "publicKey")
	                                                  : "",
	           conn->public_key) != 0) {
		/* A request signed by another key cannot be this device's: drop it. */
		snprintf(rid, sizeof(rid), "%s", json_get_string(existing, "requestId"));
		existing = NULL;
		if (core_supersede_request(core, rid, conn, now_ms) < 0) {
			core_fail(core, conn, conn->connect_id, CP_ERR_STORE_FAILED, NULL, NULL,
			          NULL);
			return;
		}
	}
	/* KEY-3: a known deviceId under another key is never approved silently. */
	if (conn->local && !core->cfg.no_local_auto_approve && !key_changed) {
		approve_silently(core, conn, cp, existing,
		                 existing && request_matches(existing, conn), paired != NULL,
		                 now_ms);
		return;
	}
	if (core->cfg.compat_6836) {
		compat_require_pairing(core, conn, cp, existing, paired != NULL, now_ms);
		return;
	}
	hold_open(core, conn, cp, existing, existing && request_matches(existing, conn),
	          paired != NULL, now_ms);
}

void core_handle_connect(struct core *core, struct core_conn *conn, const struct frame *f,
                         uint64_t now_ms)
{
	struct connect_params cp;
	char why[256], msg[320];
	enum cp_err e;
	int proto = 0;

	memset(&cp, 0, sizeof(cp));
	why[0] = '\0';
	if (!cJSON_IsObject(f->params)) {
		snprintf(why, sizeof(why), "at root: must be object");
		e = CP_ERR_INVALID_CONNECT_PARAMS;
	} else {
		e = connect_params_parse(f->params, &cp, why, sizeof(why));
	}
	if (e != CP_OK) {
		snprintf(msg, sizeof(msg), "invalid connect params: %s", why);
		core_fail(core, conn, f->id, CP_ERR_INVALID_CONNECT_PARAMS, msg, NULL, msg);
		return;
	}
	if (connect_check_protocol(&cp, &proto) != CP_OK) {
		cJSON *extra = cJSON_CreateObject();

		if (extra)
			cJSON_AddNumberToObject(extra, "expectedProtocol", CORE_PROTOCOL_EXPECTED);
		core_fail(core, conn, f->id, CP_ERR_PROTOCOL_MISMATCH, NULL, extra, NULL);
		return;
	}
	if (connect_check_role(&cp) != CP_OK) {
		core_fail(core, conn, f->id, CP_ERR_INVALID_ROLE, NULL, NULL, NULL);
		return;
	}
	conn->is_node = strcmp(cp.role, "node") == 0;
	snprintf(conn->role, sizeof(conn->role), "%s", cp.role);
	if (conn->is_node && !cp.has_device) {
		core_fail(core, conn, f->id, CP_ERR_DEVICE_IDENTITY_REQUIRED, NULL, NULL, NULL);
		return;
	}
	if (cp.has_device) {
		e = check_device(conn, &cp, now_ms);
		if (e != CP_OK) {
			conn->has_device = false;
			core_fail(core, conn, f->id, e, NULL, NULL, NULL);
			return;
		}
	}
	e = check_auth(core, conn, &cp);
	if (e != CP_OK) {
		conn->has_device = false;
		core_fail(core, conn, f->id, e, NULL, NULL, NULL);
		return;
	}
	conn->protocol = proto;
	conn->scopes = effective_scopes(&cp, conn->is_node);
	conn->connect_id = strdup(f->id);
	conn->live = conn->is_node ? core_node_live(&cp) : NULL;
	if (!conn->scopes || !conn->connect_id || (conn->is_node && !conn->live)) {
		core_logf(core, CORE_LOG_ERROR, "conn %s: out of memory", conn->id);
		core_close(core, conn, cp_err_info(CP_ERR_SHUTDOWN)->close_code, "out of memory");
		return;
	}
	if (!conn->has_device) {
		if (!conn->local && cJSON_GetArraySize(conn->scopes) > 0) {
			/* TRUST-1: every node on the LAN holds the shared token; from there it
			 * admits, it does not authorize. */
			cJSON_Delete(conn->scopes);
			conn->scopes = cJSON_CreateArray();
			if (!conn->scopes) {
				core_close(core, conn, cp_err_info(CP_ERR_SHUTDOWN)->close_code,
				           "out of memory");
				return;
			}
			core_logf(
			        core, CORE_LOG_INFO,
			        "conn %s ip %s: remote connection without a paired device: no scopes",
			        conn->id, conn->ip);
		}
		core_finish_hello(core, conn, now_ms);
		return;
	}
	pairing_decision(core, conn, &cp, now_ms);
}
