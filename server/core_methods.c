/* core_methods.c: requests after the handshake: scope checks, params validation, and the pairing,
 * node and token methods operators call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

enum ptype { P_STR, P_STR_ARRAY };

struct pspec {
	const char *name;
	enum ptype type;
	bool required;
};

/* OpenClaw's params objects are closed: unknown keys and wrong types are errors. */
static bool check_params(struct core *core, struct core_conn *conn, const char *id,
                         const char *method, const cJSON *params, const struct pspec *spec,
                         size_t n)
{
	char why[200] = "", msg[320];
	const cJSON *e;

	if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params)) {
		snprintf(why, sizeof(why), "must be object");
		goto bad;
	}
	if (cJSON_IsObject(params)) {
		cJSON_ArrayForEach(e, params)
		{
			size_t i;

			for (i = 0; i < n; i++)
				if (strcmp(spec[i].name, e->string) == 0)
					break;
			if (i == n) {
				snprintf(why, sizeof(why), "at root: unexpected property '%.*s'",
				         core_utf8_cut(e->string, 64), e->string);
				goto bad;
			}
			if (spec[i].type == P_STR && (!cJSON_IsString(e) || !e->valuestring[0])) {
				snprintf(why, sizeof(why), "at /%s: must be a non-empty string",
				         spec[i].name);
				goto bad;
			}
			if (spec[i].type == P_STR_ARRAY) {
				const cJSON *s;
				bool ok = cJSON_IsArray(e);

				cJSON_ArrayForEach(s, e)
				{
					if (!cJSON_IsString(s))
						ok = false;
				}
				if (!ok) {
					snprintf(why, sizeof(why),
					         "at /%s: must be array of strings", spec[i].name);
					goto bad;
				}
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (spec[i].required && !cJSON_GetObjectItemCaseSensitive(params, spec[i].name)) {
			snprintf(why, sizeof(why), "must have required property '%s'",
			         spec[i].name);
			goto bad;
		}
	}
	return true;
bad:
	snprintf(msg, sizeof(msg), "invalid %s params: %s", method, why);
	core_fail(core, conn, id, CP_ERR_INVALID_PARAMS, msg, NULL, NULL);
	return false;
}

static const char *param_str(const cJSON *params, const char *k)
{
	return core_json_str(params, k);
}

/* Indexes of table t's records (node-role ones only when node_only), newest first. */
static size_t *sorted_pending(struct core *core, enum store_table t, bool node_only, size_t *n_out)
{
	size_t n = store_count(core->store, t), k = 0;
	size_t *v = calloc(n ? n : 1, sizeof(*v));

	*n_out = 0;
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!node_only || core_is_node_request(store_at(core->store, t, i)))
			v[k++] = i;
	/* Insertion sort by (ts, insertion index) descending; the table is mostly in ts order
	 * already, so this is close to linear. */
	for (size_t i = 1; i < k; i++) {
		size_t x = v[i], j = i;
		uint64_t tx = core_json_u64(store_at(core->store, t, x), "ts");

		while (j > 0) {
			uint64_t tp = core_json_u64(store_at(core->store, t, v[j - 1]), "ts");

			if (tp > tx || (tp == tx && v[j - 1] > x))
				break;
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
	*n_out = k;
	return v;
}

static cJSON *pending_list(struct core *core, enum store_table t, bool node_view)
{
	cJSON *a = cJSON_CreateArray();
	size_t n = 0;
	size_t *v = sorted_pending(core, t, node_view && t == STORE_PENDING, &n);

	for (size_t i = 0; a && v && i < n; i++) {
		cJSON *r = cJSON_Duplicate(store_at(core->store, t, v[i]), true);

		if (r && node_view && !cJSON_GetObjectItemCaseSensitive(r, "nodeId"))
			cJSON_AddStringToObject(r, "nodeId", core_json_str(r, "deviceId"));
		cJSON_AddItemToArray(a, r);
	}
	free(v);
	return a;
}

static void m_device_pair_list(struct core *core, struct core_conn *conn, const char *id,
                               const cJSON *params, uint64_t now_ms)
{
	cJSON *p, *paired;

	(void)now_ms;
	if (!check_params(core, conn, id, "device.pair.list", params, NULL, 0))
		return;
	p = cJSON_CreateObject();
	if (p) {
		cJSON_AddItemToObject(p, "pending", pending_list(core, STORE_PENDING, false));
		paired = cJSON_AddArrayToObject(p, "paired");
		for (size_t i = 0; paired && i < store_count(core->store, STORE_PAIRED); i++)
			cJSON_AddItemToArray(
			        paired, core_redact_paired(store_at(core->store, STORE_PAIRED, i)));
	}
	core_send_ok(core, conn, id, p);
}

static bool paired_is_node(const cJSON *paired)
{
	return core_is_node_request(paired);
}

static void m_node_pair_list(struct core *core, struct core_conn *conn, const char *id,
                             const cJSON *params, uint64_t now_ms)
{
	cJSON *p, *paired;

	(void)now_ms;
	if (!check_params(core, conn, id, "node.pair.list", params, NULL, 0))
		return;
	p = cJSON_CreateObject();
	if (!p) {
		core_send_ok(core, conn, id, NULL);
		return;
	}
	if (core->cfg.compat_6836) {
		/* 2026.1.30 read a node store that WS connects never wrote to. */
		cJSON_AddItemToObject(p, "pending",
		                      pending_list(core, STORE_COMPAT_NODE_PENDING, true));
		cJSON_AddArrayToObject(p, "paired");
		core_send_ok(core, conn, id, p);
		return;
	}
	cJSON_AddItemToObject(p, "pending", pending_list(core, STORE_PENDING, true));
	paired = cJSON_AddArrayToObject(p, "paired");
	for (size_t i = 0; paired && i < store_count(core->store, STORE_PAIRED); i++) {
		const cJSON *d = store_at(core->store, STORE_PAIRED, i);

		if (paired_is_node(d))
			cJSON_AddItemToArray(paired, core_node_summary(d));
	}
	core_send_ok(core, conn, id, p);
}

static void unknown_request(struct core *core, struct core_conn *conn, const char *id,
                            enum store_table t, bool node_only, const char *rid)
{
	cJSON *extra = cJSON_CreateObject();
	cJSON *ids = extra ? cJSON_AddArrayToObject(extra, "pendingRequestIds") : NULL;
	char msg[160];
	size_t n = 0;
	size_t *v = sorted_pending(core, t, node_only, &n);

	for (size_t i = 0; ids && v && i < n; i++)
		cJSON_AddItemToArray(ids, cJSON_CreateString(core_json_str(
		                                  store_at(core->store, t, v[i]), "requestId")));
	free(v);
	snprintf(msg, sizeof(msg), "unknown requestId: %.*s", core_utf8_cut(rid, 64), rid);
	core_fail(core, conn, id, CP_ERR_UNKNOWN_REQUEST_ID, msg, extra, NULL);
}

/* The request an approve/reject of this kind may resolve: device.* any pending request, node.*
 * the node-role ones (or, in compat mode, only the separate node store). */
static const cJSON *lookup_request(struct core *core, bool node, const char *rid,
                                   enum store_table *t_out)
{
	const cJSON *rec;

	*t_out = node && core->cfg.compat_6836 ? STORE_COMPAT_NODE_PENDING : STORE_PENDING;
	rec = store_get(core->store, *t_out, rid);
	if (rec && node && *t_out == STORE_PENDING && !core_is_node_request(rec))
		return NULL;
	return rec;
}

static const struct pspec approve_spec[] = {
        {"requestId", P_STR, true},
        {"publicKey", P_STR, false},
        {"fingerprint", P_STR, false},
};

static bool key_matches(const cJSON *rec, const cJSON *params)
{
	const char *want_pk = param_str(params, "publicKey");
	const char *want_fp = param_str(params, "fingerprint");
	const char *rec_pk = core_json_str(rec, "publicKey");
	char norm[IDENTITY_PK_B64_LEN + 8];
	uint8_t pk[IDENTITY_PK_BYTES];

	if (!want_pk && !want_fp)
		return true;
	if (!rec_pk || identity_parse_public_key(rec_pk, pk) < 0)
		return false;
	if (want_pk && (identity_normalize_public_key(want_pk, norm, sizeof(norm)) < 0 ||
	                strcmp(norm, rec_pk) != 0))
		return false;
	if (want_fp && !identity_fingerprint_matches(pk, want_fp))
		return false;
	return true;
}

static void approve(struct core *core, struct core_conn *conn, const char *id, const cJSON *params,
                    uint64_t now_ms, bool node)
{
	const char *method = node ? "node.pair.approve" : "device.pair.approve";
	enum store_table t;
	const cJSON *rec;
	cJSON *copy, *device = NULL, *p;
	char rid[CORE_UUID_LEN + 1], did[IDENTITY_DEVICE_ID_LEN + 1];
	int rc;

	if (!check_params(core, conn, id, method, params, approve_spec, 3))
		return;
	rec = lookup_request(core, node, param_str(params, "requestId"), &t);
	if (!rec) {
		unknown_request(core, conn, id, t, node, param_str(params, "requestId"));
		return;
	}
	snprintf(rid, sizeof(rid), "%s", core_json_str(rec, "requestId"));
	if (t == STORE_COMPAT_NODE_PENDING) {
		if (store_remove(core->store, t, rid) < 0)
			goto store_failed;
		p = cJSON_CreateObject();
		if (p) {
			cJSON_AddStringToObject(p, "requestId", rid);
			cJSON_AddItemToObject(p, "node", cJSON_CreateObject());
		}
		core_send_ok(core, conn, id, p);
		return;
	}
	/* KEY-1: the operator may pin the key they compared out of band. */
	if (!key_matches(rec, params)) {
		core_fail(core, conn, id, CP_ERR_PUBLIC_KEY_MISMATCH, NULL, NULL, NULL);
		return;
	}
	copy = cJSON_Duplicate(rec, true);
	if (!copy)
		goto store_failed;
	snprintf(did, sizeof(did), "%s",
	         core_json_str(copy, "deviceId") ? core_json_str(copy, "deviceId") : "");
	rc = core_pair_request(core, copy, true, now_ms, &device);
	if (rc == -2) {
		cJSON_Delete(copy);
		core_fail(core, conn, id, CP_ERR_PUBLIC_KEY_MISMATCH,
		          "the request's deviceId is not the hash of its public key", NULL, NULL);
		return;
	}
	if (rc < 0) {
		cJSON_Delete(copy);
		goto store_failed;
	}
	/* PERSIST-3: the record is on disk (fsync'd) before anyone hears "ok". */
	core_logf(core, CORE_LOG_INFO, "conn %s: %s approved request %s of device %s", conn->id,
	          method, rid, did);
	p = cJSON_CreateObject();
	if (p) {
		cJSON_AddStringToObject(p, "requestId", rid);
		if (node)
			cJSON_AddItemToObject(p, "node", core_node_summary(device));
		else
			cJSON_AddItemToObject(p, "device", core_redact_paired(device));
	}
	cJSON_Delete(device);
	core_send_ok(core, conn, id, p);
	core_announce_approved(core, rid, did, core_is_node_request(copy), now_ms);
	cJSON_Delete(copy);
	return;
store_failed:
	core_logf(core, CORE_LOG_ERROR, "%s: %s", method, store_last_error(core->store));
	core_fail(core, conn, id, CP_ERR_STORE_FAILED, NULL, NULL, NULL);
}

static void reject(struct core *core, struct core_conn *conn, const char *id, const cJSON *params,
                   uint64_t now_ms, bool node)
{
	static const struct pspec spec[] = {{"requestId", P_STR, true}};
	const char *method = node ? "node.pair.reject" : "device.pair.reject";
	char rid[CORE_UUID_LEN + 1], did[IDENTITY_DEVICE_ID_LEN + 1];
	enum store_table t;
	const cJSON *rec;
	struct core_conn *held;
	bool node_role;
	cJSON *p;

	if (!check_params(core, conn, id, method, params, spec, 1))
		return;
	rec = lookup_request(core, node, param_str(params, "requestId"), &t);
	if (!rec) {
		unknown_request(core, conn, id, t, node, param_str(params, "requestId"));
		return;
	}
	snprintf(rid, sizeof(rid), "%s", core_json_str(rec, "requestId"));
	snprintf(did, sizeof(did), "%s",
	         core_json_str(rec, "deviceId") ? core_json_str(rec, "deviceId")
	         : core_json_str(rec, "nodeId") ? core_json_str(rec, "nodeId")
	                                        : "");
	node_role = core_is_node_request(rec) || t == STORE_COMPAT_NODE_PENDING;
	if (store_remove(core->store, t, rid) < 0) {
		core_logf(core, CORE_LOG_ERROR, "%s: %s", method, store_last_error(core->store));
		core_fail(core, conn, id, CP_ERR_STORE_FAILED, NULL, NULL, NULL);
		return;
	}
	core_logf(core, CORE_LOG_INFO, "conn %s: %s rejected request %s of device %s", conn->id,
	          method, rid, did);
	p = cJSON_CreateObject();
	if (p) {
		cJSON_AddStringToObject(p, "requestId", rid);
		cJSON_AddStringToObject(p, node ? "nodeId" : "deviceId", did);
	}
	core_send_ok(core, conn, id, p);
	if (t == STORE_PENDING) {
		core_announce_resolved(core, rid, did, node_role, "rejected", now_ms);
		held = core_find_held(core, rid, NULL);
		if (held)
			core_fail(core, held, held->connect_id, CP_ERR_PAIRING_REJECTED, NULL, NULL,
			          NULL);
	}
}

static void m_device_pair_approve(struct core *core, struct core_conn *conn, const char *id,
                                  const cJSON *params, uint64_t now_ms)
{
	approve(core, conn, id, params, now_ms, false);
}

static void m_node_pair_approve(struct core *core, struct core_conn *conn, const char *id,
                                const cJSON *params, uint64_t now_ms)
{
	approve(core, conn, id, params, now_ms, true);
}

static void m_device_pair_reject(struct core *core, struct core_conn *conn, const char *id,
                                 const cJSON *params, uint64_t now_ms)
{
	reject(core, conn, id, params, now_ms, false);
}

static void m_node_pair_reject(struct core *core, struct core_conn *conn, const char *id,
                               const cJSON *params, uint64_t now_ms)
{
	reject(core, conn, id, params, now_ms, true);
}

static void m_device_pair_remove(struct core *core, struct core_conn *conn, const char *id,
                                 const cJSON *params, uint64_t now_ms)
{
	static const struct pspec spec[] = {{"deviceId", P_STR, true}};
	char did[IDENTITY_DEVICE_ID_LEN + 1];
	cJSON *p;
	int rc;

	(void)now_ms;
	if (!check_params(core, conn, id, "device.pair.remove", params, spec, 1))
		return;
	snprintf(did, sizeof(did), "%s", param_str(params, "deviceId"));
	rc = store_remove(core->store, STORE_PAIRED, param_str(params, "deviceId"));
	if (rc == 1) {
		core_fail(core, conn, id, CP_ERR_UNKNOWN_DEVICE, NULL, NULL, NULL);
		return;
	}
	if (rc < 0) {
		core_logf(core, CORE_LOG_ERROR, "device.pair.remove: %s",
		          store_last_error(core->store));
		core_fail(core, conn, id, CP_ERR_STORE_FAILED, NULL, NULL, NULL);
		return;
	}
	core_logf(core, CORE_LOG_INFO, "conn %s: removed device %s", conn->id, did);
	p = cJSON_CreateObject();
	if (p)
		cJSON_AddStringToObject(p, "deviceId", did);
	core_send_ok(core, conn, id, p);
	/* Its live sessions were authorized by the pairing that is gone. */
	for (struct core_conn *c = core->conns; c; c = c->next)
		if (!c->closing && c->state == CONN_AUTHED && c->has_device &&
		    strcmp(c->device_id, did) == 0)
			core_fail(core, c, NULL, CP_ERR_DEVICE_REMOVED, NULL, NULL, NULL);
}

static void m_node_list(struct core *core, struct core_conn *conn, const char *id,
                        const cJSON *params, uint64_t now_ms)
{
	cJSON *p, *nodes;

	if (!check_params(core, conn, id, "node.list", params, NULL, 0))
		return;
	p = cJSON_CreateObject();
	if (!p) {
		core_send_ok(core, conn, id, NULL);
		return;
	}
	cJSON_AddNumberToObject(p, "ts", (double)now_ms);
	nodes = cJSON_AddArrayToObject(p, "nodes");
	for (size_t i = 0; nodes && i < store_count(core->store, STORE_PAIRED); i++) {
		const cJSON *d = store_at(core->store, STORE_PAIRED, i);
		const char *did = core_json_str(d, "deviceId");
		bool connected = false;
		cJSON *n;

		if (!paired_is_node(d) || !did)
			continue;
		for (struct core_conn *c = core->conns; c; c = c->next)
			if (!c->closing && c->state == CONN_AUTHED && c->is_node &&
			    strcmp(c->device_id, did) == 0)
				connected = true;
		n = cJSON_CreateObject();
		if (!n)
			break;
		cJSON_AddStringToObject(n, "nodeId", did);
		if (core_json_str(d, "displayName"))
			cJSON_AddStringToObject(n, "displayName", core_json_str(d, "displayName"));
		if (core_json_str(d, "platform"))
			cJSON_AddStringToObject(n, "platform", core_json_str(d, "platform"));
		cJSON_AddStringToObject(n, "clientId",
		                        core_json_str(d, "clientId") ? core_json_str(d, "clientId")
		                                                     : "");
		cJSON_AddBoolToObject(n, "paired", true);
		cJSON_AddBoolToObject(n, "connected", connected);
		if (core_json_str(d, "remoteIp"))
			cJSON_AddStringToObject(n, "remoteIp", core_json_str(d, "remoteIp"));
		cJSON_AddItemToArray(nodes, n);
	}
	core_send_ok(core, conn, id, p);
}

static const cJSON *paired_token(const cJSON *paired, const char *role)
{
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(paired, "tokens"),
	                                        role);
}

static void m_token_rotate(struct core *core, struct core_conn *conn, const char *id,
                           const cJSON *params, uint64_t now_ms)
{
	static const struct pspec spec[] = {
	        {"deviceId", P_STR, true}, {"role", P_STR, true}, {"scopes", P_STR_ARRAY, false}};
	const char *did = param_str(params, "deviceId"), *role = param_str(params, "role");
	const cJSON *paired, *old, *scopes, *s;
	cJSON *p, *tokens, *entry, *res;
	char token[CORE_TOKEN_LEN + 1];

	if (!check_params(core, conn, id, "device.token.rotate", params, spec, 3))
		return;
	did = param_str(params, "deviceId");
	role = param_str(params, "role");
	paired = store_get(core->store, STORE_PAIRED, did);
	old = paired ? paired_token(paired, role) : NULL;
	if (!paired || (!old && !core_json_array_has(
	                                cJSON_GetObjectItemCaseSensitive(paired, "roles"), role))) {
		core_fail(core, conn, id, CP_ERR_UNKNOWN_DEVICE, "unknown deviceId/role", NULL,
		          NULL);
		return;
	}
	scopes = cJSON_GetObjectItemCaseSensitive(params, "scopes");
	if (!scopes)
		scopes = old ? cJSON_GetObjectItemCaseSensitive(old, "scopes") : NULL;
	/* A rotation may narrow a token, never widen it past what was approved. */
	cJSON_ArrayForEach(s, scopes)
	{
		if (!core_json_array_has(cJSON_GetObjectItemCaseSensitive(paired, "scopes"),
		                         s->valuestring) &&
		    !(old && core_json_array_has(cJSON_GetObjectItemCaseSensitive(old, "scopes"),
		                                 s->valuestring))) {
			core_fail(core, conn, id, CP_ERR_INVALID_PARAMS,
			          "invalid device.token.rotate params: scopes exceed the approved "
			          "scopes",
			          NULL, NULL);
			return;
		}
	}
	p = cJSON_Duplicate(paired, true);
	if (!p)
		goto store_failed;
	tokens = cJSON_GetObjectItemCaseSensitive(p, "tokens");
	if (!cJSON_IsObject(tokens)) {
		cJSON_DeleteItemFromObjectCaseSensitive(p, "tokens");
		tokens = cJSON_AddObjectToObject(p, "tokens");
	}
	entry = cJSON_CreateObject();
	if (!tokens || !entry) {
		cJSON_Delete(entry);
		cJSON_Delete(p);
		goto store_failed;
	}
	token_random_hex32(token);
	cJSON_AddStringToObject(entry, "token", token);
	cJSON_AddStringToObject(entry, "role", role);
	cJSON_AddItemToObject(entry, "scopes",
	                      scopes ? cJSON_Duplicate(scopes, true) : cJSON_CreateArray());
	cJSON_AddNumberToObject(entry, "createdAtMs",
	                        (double)(old && core_json_u64(old, "createdAtMs")
	                                         ? core_json_u64(old, "createdAtMs")
	                                         : now_ms));
	cJSON_AddNumberToObject(entry, "rotatedAtMs", (double)now_ms);
	res = cJSON_CreateObject();
	if (res) {
		cJSON_AddStringToObject(res, "deviceId", did);
		cJSON_AddStringToObject(res, "role", role);
		cJSON_AddStringToObject(res, "token", token);
		cJSON_AddItemToObject(
		        res, "scopes",
		        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(entry, "scopes"), true));
		cJSON_AddNumberToObject(res, "rotatedAtMs", (double)now_ms);
	}
	if (cJSON_GetObjectItemCaseSensitive(tokens, role))
		cJSON_ReplaceItemInObjectCaseSensitive(tokens, role, entry);
	else
		cJSON_AddItemToObject(tokens, role, entry);
	if (store_put(core->store, STORE_PAIRED, p) < 0) {
		cJSON_Delete(res);
		goto store_failed;
	}
	core_send_ok(core, conn, id, res);
	return;
store_failed:
	core_logf(core, CORE_LOG_ERROR, "device.token.rotate: %s", store_last_error(core->store));
	core_fail(core, conn, id, CP_ERR_STORE_FAILED, NULL, NULL, NULL);
}

static void m_token_revoke(struct core *core, struct core_conn *conn, const char *id,
                           const cJSON *params, uint64_t now_ms)
{
	static const struct pspec spec[] = {{"deviceId", P_STR, true}, {"role", P_STR, true}};
	const char *did, *role;
	const cJSON *paired, *old;
	cJSON *p, *t, *res;

	if (!check_params(core, conn, id, "device.token.revoke", params, spec, 2))
		return;
	did = param_str(params, "deviceId");
	role = param_str(params, "role");
	paired = store_get(core->store, STORE_PAIRED, did);
	old = paired ? paired_token(paired, role) : NULL;
	if (!cJSON_IsObject(old)) {
		core_fail(core, conn, id, CP_ERR_UNKNOWN_DEVICE, "unknown deviceId/role", NULL,
		          NULL);
		return;
	}
	p = cJSON_Duplicate(paired, true);
	t = p ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "tokens"),
	                                         role)
	      : NULL;
	if (!t) {
		cJSON_Delete(p);
		goto store_failed;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(t, "revokedAtMs");
	cJSON_AddNumberToObject(t, "revokedAtMs", (double)now_ms);
	res = cJSON_CreateObject();
	if (res) {
		cJSON_AddStringToObject(res, "deviceId", did);
		cJSON_AddStringToObject(res, "role", role);
		cJSON_AddNumberToObject(res, "revokedAtMs", (double)now_ms);
	}
	if (store_put(core->store, STORE_PAIRED, p) < 0) {
		cJSON_Delete(res);
		goto store_failed;
	}
	core_send_ok(core, conn, id, res);
	return;
store_failed:
	core_logf(core, CORE_LOG_ERROR, "device.token.revoke: %s", store_last_error(core->store));
	core_fail(core, conn, id, CP_ERR_STORE_FAILED, NULL, NULL, NULL);
}

static void m_node_ok(struct core *core, struct core_conn *conn, const char *id,
                      const cJSON *params, uint64_t now_ms)
{
	(void)params;
	(void)now_ms;
	core_send_ok(core, conn, id, cJSON_CreateObject());
}

enum need { NEED_NOTHING, NEED_PAIRING, NEED_READ };

static const struct method {
	const char *name;
	enum need need;
	bool node_ok;
	void (*fn)(struct core *core, struct core_conn *conn, const char *id, const cJSON *params,
	           uint64_t now_ms);
} method_table[] = {
        {"device.pair.list", NEED_PAIRING, false, m_device_pair_list},
        {"device.pair.approve", NEED_PAIRING, false, m_device_pair_approve},
        {"device.pair.reject", NEED_PAIRING, false, m_device_pair_reject},
        {"device.pair.remove", NEED_PAIRING, false, m_device_pair_remove},
        {"node.pair.list", NEED_PAIRING, false, m_node_pair_list},
        {"node.pair.approve", NEED_PAIRING, false, m_node_pair_approve},
        {"node.pair.reject", NEED_PAIRING, false, m_node_pair_reject},
        {"node.list", NEED_READ, false, m_node_list},
        {"device.token.rotate", NEED_PAIRING, false, m_token_rotate},
        {"device.token.revoke", NEED_PAIRING, false, m_token_revoke},
        {"node.invoke.result", NEED_NOTHING, true, m_node_ok},
        {"node.event", NEED_NOTHING, true, m_node_ok},
};

void core_handle_request(struct core *core, struct core_conn *conn, const struct frame *f,
                         uint64_t now_ms)
{
	const struct method *m = NULL;
	char msg[300];

	if (strcmp(f->method, "connect") == 0) {
		core_fail(core, conn, f->id, CP_ERR_CONNECT_AGAIN, NULL, NULL, NULL);
		return;
	}
	for (size_t i = 0; i < sizeof(method_table) / sizeof(method_table[0]); i++)
		if (strcmp(method_table[i].name, f->method) == 0)
			m = &method_table[i];
	if (conn->is_node && !(m && m->node_ok)) {
		core_fail(core, conn, f->id, CP_ERR_UNAUTHORIZED_ROLE, "unauthorized role: node",
		          NULL, NULL);
		return;
	}
	if (!m) {
		snprintf(msg, sizeof(msg), "unknown method: %.*s", core_utf8_cut(f->method, 200),
		         f->method);
		core_fail(core, conn, f->id, CP_ERR_UNKNOWN_METHOD, msg, NULL, NULL);
		return;
	}
	if (m->need == NEED_PAIRING && !core_conn_has_scope(conn, "operator.pairing") &&
	    !core_conn_has_scope(conn, "operator.admin")) {
		core_fail(core, conn, f->id, CP_ERR_MISSING_SCOPE,
		          "missing scope: operator.pairing", NULL, NULL);
		return;
	}
	if (m->need == NEED_READ && !core_conn_has_scope(conn, "operator.read") &&
	    !core_conn_has_scope(conn, "operator.write") &&
	    !core_conn_has_scope(conn, "operator.admin")) {
		core_fail(core, conn, f->id, CP_ERR_MISSING_SCOPE, "missing scope: operator.read",
		          NULL, NULL);
		return;
	}
	m->fn(core, conn, f->id, f->params, now_ms);
}
