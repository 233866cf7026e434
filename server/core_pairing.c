/* core_pairing.c: pending requests and paired devices: pairing (approval), resolution events,
 * expiry, device tokens, and the redacted views operators see. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core_internal.h"

uint64_t core_json_u64(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsNumber(v) || v->valuedouble < 0)
		return 0;
	return (uint64_t)v->valuedouble;
}

bool core_conn_has_scope(const struct core_conn *conn, const char *scope)
{
	return json_array_has_string(conn->scopes, scope);
}

bool core_is_node_request(const cJSON *rec)
{
	const char *role = json_get_string(rec, "role");

	return (role && strcmp(role, "node") == 0) ||
	       json_array_has_string(cJSON_GetObjectItemCaseSensitive(rec, "roles"), "node");
}

bool core_token_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	/* Lengths may leak; contents may not. */
	if (la != lb)
		return false;
	return sodium_memcmp(a, b, la) == 0;
}

static void set_item(cJSON *o, const char *k, cJSON *item)
{
	if (!item)
		return;
	if (cJSON_GetObjectItemCaseSensitive(o, k))
		cJSON_ReplaceItemInObjectCaseSensitive(o, k, item);
	else
		cJSON_AddItemToObject(o, k, item);
}

static void set_str(cJSON *o, const char *k, const char *v)
{
	if (v)
		set_item(o, k, cJSON_CreateString(v));
}

static void set_num(cJSON *o, const char *k, uint64_t v)
{
	set_item(o, k, cJSON_CreateNumber((double)v));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

cJSON *core_scope_set(const cJSON *a, const cJSON *b)
{
	size_t n = (size_t)cJSON_GetArraySize(a) + (size_t)cJSON_GetArraySize(b), k = 0;
	const char **v = calloc(n ? n : 1, sizeof(*v));
	const cJSON *lists[2] = {a, b};
	cJSON *out = NULL;

	if (!v)
		return NULL;
	for (int l = 0; l < 2; l++) {
		const cJSON *e;

		if (!cJSON_IsArray(lists[l]))
			continue;
		cJSON_ArrayForEach(e, lists[l])
		{
			if (cJSON_IsString(e) && e->valuestring[0])
				v[k++] = e->valuestring;
		}
	}
	qsort(v, k, sizeof(*v), cmp_str);
	out = cJSON_CreateArray();
	for (size_t i = 0; out && i < k; i++)
		if (i == 0 || strcmp(v[i], v[i - 1]) != 0)
			cJSON_AddItemToArray(out, cJSON_CreateString(v[i]));
	free(v);
	return out;
}

bool core_scopes_within(const cJSON *scopes, const cJSON *ceiling)
{
	const cJSON *s;

	cJSON_ArrayForEach(s, scopes)
	{
		if (!cJSON_IsString(s) || !json_array_has_string(ceiling, s->valuestring))
			return false;
	}
	return true;
}

static const cJSON *role_token(const cJSON *paired, const char *role)
{
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(paired, "tokens"),
	                                        role);
}

const cJSON *core_scope_ceiling(const cJSON *paired, const char *role)
{
	const cJSON *t = role_token(paired, role);
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(t, "scopes");

	/* A revoked token still bounds the one issued after it: only an approval raises it. */
	if (cJSON_IsObject(t) && cJSON_IsArray(s))
		return s;
	return cJSON_GetObjectItemCaseSensitive(paired, "scopes");
}

static bool token_live(const cJSON *t)
{
	return cJSON_IsObject(t) && json_get_string(t, "token") &&
	       !cJSON_GetObjectItemCaseSensitive(t, "revokedAtMs");
}

static cJSON *new_token_entry(const char *role, const cJSON *scopes, uint64_t created,
                              uint64_t now_ms, bool rotated)
{
	cJSON *t = cJSON_CreateObject();
	char token[CORE_TOKEN_LEN + 1];

	if (!t)
		return NULL;
	token_random_hex32(token);
	cJSON_AddStringToObject(t, "token", token);
	cJSON_AddStringToObject(t, "role", role);
	cJSON_AddItemToObject(t, "scopes", core_scope_set(scopes, NULL));
	cJSON_AddNumberToObject(t, "createdAtMs", (double)created);
	if (rotated)
		cJSON_AddNumberToObject(t, "rotatedAtMs", (double)now_ms);
	sodium_memzero(token, sizeof(token));
	return t;
}

/* The paired record after approving request rec, merged into old (may be NULL). */
static cJSON *make_paired(const cJSON *rec, const cJSON *old, uint64_t now_ms)
{
	const char *pk = json_get_string(rec, "publicKey");
	const char *role = json_get_string(rec, "role");
	bool same_key = old && json_get_string(old, "publicKey") && pk &&
	                strcmp(json_get_string(old, "publicKey"), pk) == 0;
	cJSON *p, *tokens, *roles_one;
	static const char *const meta[] = {"displayName", "platform",   "deviceFamily",
	                                   "clientId",    "clientMode", "remoteIp"};

	if (!role || !pk)
		return NULL;
	/* A new key starts over: roles, scopes and tokens of the old key are not inherited. */
	p = same_key ? cJSON_Duplicate(old, true) : cJSON_CreateObject();
	if (!p)
		return NULL;
	set_str(p, "deviceId", json_get_string(rec, "deviceId"));
	set_str(p, "publicKey", pk);
	for (size_t i = 0; i < sizeof(meta) / sizeof(meta[0]); i++)
		set_str(p, meta[i], json_get_string(rec, meta[i]));
	set_str(p, "role", role);
	roles_one = core_scope_set(cJSON_GetObjectItemCaseSensitive(rec, "roles"), NULL);
	if (roles_one && !json_array_has_string(roles_one, role))
		cJSON_AddItemToArray(roles_one, cJSON_CreateString(role));
	set_item(p, "roles",
	         core_scope_set(same_key ? cJSON_GetObjectItemCaseSensitive(p, "roles") : NULL,
	                        roles_one));
	cJSON_Delete(roles_one);
	set_item(p, "scopes",
	         core_scope_set(same_key ? cJSON_GetObjectItemCaseSensitive(p, "scopes") : NULL,
	                        cJSON_GetObjectItemCaseSensitive(rec, "scopes")));
	tokens = cJSON_GetObjectItemCaseSensitive(p, "tokens");
	if (!cJSON_IsObject(tokens)) {
		tokens = cJSON_CreateObject();
		set_item(p, "tokens", tokens);
	}
	if (tokens) {
		const cJSON *old_t = cJSON_GetObjectItemCaseSensitive(tokens, role);
		const cJSON *want = cJSON_GetObjectItemCaseSensitive(rec, "scopes");

		/* TRUST-3, TRUST-4: the approval adds the request's scopes to the role's token and
		 * nothing else; a live token that already covers them is kept. */
		if (!token_live(old_t) ||
		    !core_scopes_within(want, cJSON_GetObjectItemCaseSensitive(old_t, "scopes"))) {
			cJSON *sc = core_scope_set(
			        cJSON_GetObjectItemCaseSensitive(old_t, "scopes"), want);
			cJSON *t = sc ? new_token_entry(role, sc, now_ms, now_ms, false) : NULL;

			cJSON_Delete(sc);
			if (!t) {
				cJSON_Delete(p);
				return NULL;
			}
			set_item(tokens, role, t);
		}
	}
	if (!same_key || !cJSON_GetObjectItemCaseSensitive(p, "createdAtMs"))
		set_num(p, "createdAtMs", now_ms);
	set_num(p, "approvedAtMs", now_ms);
	return p;
}

int core_pair_request(struct core *core, const cJSON *rec, bool in_store, uint64_t now_ms,
                      cJSON **device_out)
{
	char rid[CORE_UUID_LEN + 1], did[IDENTITY_DEVICE_ID_LEN + 1];
	uint8_t pk[IDENTITY_PK_BYTES];
	const char *rec_did = json_get_string(rec, "deviceId");
	const char *rec_pk = json_get_string(rec, "publicKey");
	cJSON *paired, *copy = NULL;

	if (device_out)
		*device_out = NULL;
	/* KEY-2: whatever the record says, the key it binds must hash to the deviceId. */
	if (!rec_did || !rec_pk || identity_parse_public_key(rec_pk, pk) < 0)
		return -2;
	identity_device_id(pk, did);
	if (strcmp(did, rec_did) != 0)
		return -2;
	snprintf(rid, sizeof(rid), "%s",
	         json_get_string(rec, "requestId") ? json_get_string(rec, "requestId") : "");
	paired = make_paired(rec, store_get(core->store, STORE_PAIRED, did), now_ms);
	if (!paired)
		return -1;
	if (device_out && !(copy = cJSON_Duplicate(paired, true))) {
		cJSON_Delete(paired);
		return -1;
	}
	if (store_approve(core->store, paired, in_store ? rid : NULL) < 0) {
		cJSON_Delete(copy);
		return -1;
	}
	if (device_out)
		*device_out = copy;
	return 0;
}

void core_announce_resolved(struct core *core, const char *request_id, const char *device_id,
                            bool node_role, const char *decision, uint64_t now_ms)
{
	cJSON *p = cJSON_CreateObject();

	if (p) {
		cJSON_AddStringToObject(p, "requestId", request_id);
		cJSON_AddStringToObject(p, "deviceId", device_id);
		cJSON_AddStringToObject(p, "decision", decision);
		cJSON_AddNumberToObject(p, "ts", (double)now_ms);
	}
	if (node_role) {
		cJSON *n = cJSON_CreateObject();

		if (n) {
			cJSON_AddStringToObject(n, "requestId", request_id);
			cJSON_AddStringToObject(n, "nodeId", device_id);
			cJSON_AddStringToObject(n, "deviceId", device_id);
			cJSON_AddStringToObject(n, "decision", decision);
			cJSON_AddNumberToObject(n, "ts", (double)now_ms);
		}
		core_broadcast_pairing(core, "device.pair.resolved", p);
		core_broadcast_pairing(core, "node.pair.resolved", n);
		return;
	}
	core_broadcast_pairing(core, "device.pair.resolved", p);
}

void core_announce_approved(struct core *core, const char *request_id, const char *device_id,
                            bool node_role, uint64_t now_ms)
{
	struct core_conn *held;

	core_announce_resolved(core, request_id, device_id, node_role, "approved", now_ms);
	/* HOLD-3: the connect that has been waiting is answered on its own socket. */
	held = core_find_held(core, request_id, NULL);
	if (held)
		core_finish_hello(core, held, now_ms);
}

/* Removes request_id from the store, fails the connect held for it (not except) with err, and
 * announces decision. */
static int drop_request(struct core *core, const char *request_id, const struct core_conn *except,
                        enum cp_err err, const char *decision, uint64_t now_ms)
{
	const cJSON *rec = store_get(core->store, STORE_PENDING, request_id);
	char rid[CORE_UUID_LEN + 1], did[IDENTITY_DEVICE_ID_LEN + 1];
	struct core_conn *held;
	bool node_role;

	if (!rec)
		return 0;
	snprintf(rid, sizeof(rid), "%s", request_id);
	snprintf(did, sizeof(did), "%s",
	         json_get_string(rec, "deviceId") ? json_get_string(rec, "deviceId") : "");
	node_role = core_is_node_request(rec);
	if (store_remove(core->store, STORE_PENDING, rid) < 0) {
		core_logf(core, CORE_LOG_ERROR, "removing request %s (%s): %s", rid, decision,
		          store_last_error(core->store));
		return -1;
	}
	core_logf(core, CORE_LOG_INFO, "request %s of device %s %s", rid, did, decision);
	held = core_find_held(core, rid, except);
	if (held)
		core_fail(core, held, held->connect_id, err, NULL, NULL, NULL);
	core_announce_resolved(core, rid, did, node_role, decision, now_ms);
	return 0;
}

int core_expire_request(struct core *core, const char *request_id, uint64_t now_ms)
{
	return drop_request(core, request_id, NULL, CP_ERR_PAIRING_EXPIRED, "expired", now_ms);
}

int core_supersede_request(struct core *core, const char *request_id,
                           const struct core_conn *except, uint64_t now_ms)
{
	return drop_request(core, request_id, except, CP_ERR_PAIRING_SUPERSEDED, "superseded",
	                    now_ms);
}

/* conn's scopes without those above ceiling. Never needed when §8.3 let conn in; kept so that a
 * session can never hold more than its device's token. */
static int clamp_scopes(struct core *core, struct core_conn *conn, const cJSON *ceiling)
{
	cJSON *keep = cJSON_CreateArray();
	const cJSON *s;

	if (!keep)
		return -1;
	cJSON_ArrayForEach(s, conn->scopes)
	{
		if (json_array_has_string(ceiling, s->valuestring))
			cJSON_AddItemToArray(keep, cJSON_CreateString(s->valuestring));
	}
	core_logf(core, CORE_LOG_ERROR, "conn %s: scopes above the token of device %s dropped",
	          conn->id, conn->device_id);
	cJSON_Delete(conn->scopes);
	conn->scopes = keep;
	return 0;
}

int core_ensure_token(struct core *core, struct core_conn *conn, uint64_t now_ms, cJSON **auth_out)
{
	const cJSON *paired = store_get(core->store, STORE_PAIRED, conn->device_id);
	const cJSON *t, *ceiling;
	cJSON *auth;
	uint64_t issued;

	*auth_out = NULL;
	if (!paired)
		return -1;
	t = role_token(paired, conn->role);
	ceiling = core_scope_ceiling(paired, conn->role);
	if (!core_scopes_within(conn->scopes, ceiling) && clamp_scopes(core, conn, ceiling) < 0)
		return -1;
	if (!token_live(t) ||
	    !core_scopes_within(conn->scopes, cJSON_GetObjectItemCaseSensitive(t, "scopes"))) {
		/* Revoked (or never issued): a new token with the scopes the old one had. */
		cJSON *p = cJSON_Duplicate(paired, true);
		cJSON *ptokens, *entry = NULL;

		if (!p)
			return -1;
		ptokens = cJSON_GetObjectItemCaseSensitive(p, "tokens");
		if (!cJSON_IsObject(ptokens)) {
			ptokens = cJSON_CreateObject();
			set_item(p, "tokens", ptokens);
		}
		if (ptokens)
			entry = new_token_entry(conn->role, ceiling,
			                        t && core_json_u64(t, "createdAtMs")
			                                ? core_json_u64(t, "createdAtMs")
			                                : now_ms,
			                        now_ms, t != NULL);
		if (!entry) {
			cJSON_Delete(p);
			return -1;
		}
		set_item(ptokens, conn->role, entry);
		if (store_put(core->store, STORE_PAIRED, p) < 0)
			return -1;
		paired = store_get(core->store, STORE_PAIRED, conn->device_id);
		t = role_token(paired, conn->role);
		if (!token_live(t))
			return -1;
	}
	issued = core_json_u64(t, "rotatedAtMs") ? core_json_u64(t, "rotatedAtMs")
	                                         : core_json_u64(t, "createdAtMs");
	auth = cJSON_CreateObject();
	if (!auth)
		return -1;
	cJSON_AddStringToObject(auth, "deviceToken", json_get_string(t, "token"));
	cJSON_AddStringToObject(auth, "role", conn->role);
	cJSON_AddItemToObject(auth, "scopes",
	                      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(t, "scopes"), true));
	cJSON_AddNumberToObject(auth, "issuedAtMs", (double)issued);
	*auth_out = auth;
	return 0;
}

bool core_device_token_ok(struct core *core, const char *device_id, const char *public_key,
                          const char *role, const char *token)
{
	const cJSON *paired = store_get(core->store, STORE_PAIRED, device_id);
	const cJSON *t;
	const char *pk;

	if (!paired || !token || !role)
		return false;
	pk = json_get_string(paired, "publicKey");
	if (!pk || strcmp(pk, public_key) != 0)
		return false;
	t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(paired, "tokens"),
	                                     role);
	return token_live(t) && core_token_eq(json_get_string(t, "token"), token);
}

static int cmp_role(const void *a, const void *b)
{
	const char *ra = json_get_string(*(const cJSON *const *)a, "role");
	const char *rb = json_get_string(*(const cJSON *const *)b, "role");

	return strcmp(ra ? ra : "", rb ? rb : "");
}

cJSON *core_redact_paired(const cJSON *paired)
{
	cJSON *p = cJSON_Duplicate(paired, true);
	cJSON *tokens, *summaries, *t;
	const cJSON **v;
	size_t n, k = 0;

	if (!p)
		return NULL;
	tokens = cJSON_DetachItemFromObjectCaseSensitive(p, "tokens");
	summaries = cJSON_AddArrayToObject(p, "tokens");
	n = (size_t)cJSON_GetArraySize(tokens);
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v || !summaries) {
		free(v);
		cJSON_Delete(tokens);
		cJSON_Delete(p);
		return NULL;
	}
	cJSON_ArrayForEach(t, tokens)
	{
		if (cJSON_IsObject(t))
			v[k++] = t;
	}
	qsort(v, k, sizeof(*v), cmp_role);
	for (size_t i = 0; i < k; i++) {
		static const char *const times[] = {"createdAtMs", "rotatedAtMs", "revokedAtMs",
		                                    "lastUsedAtMs"};
		cJSON *s = cJSON_CreateObject();

		if (!s)
			break;
		cJSON_AddStringToObject(
		        s, "role",
		        json_get_string(v[i], "role") ? json_get_string(v[i], "role") : "");
		cJSON_AddItemToObject(
		        s, "scopes",
		        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(v[i], "scopes"), true));
		for (size_t j = 0; j < sizeof(times) / sizeof(times[0]); j++)
			if (cJSON_GetObjectItemCaseSensitive(v[i], times[j]))
				cJSON_AddNumberToObject(s, times[j],
				                        (double)core_json_u64(v[i], times[j]));
		cJSON_AddItemToArray(summaries, s);
	}
	free(v);
	cJSON_Delete(tokens);
	return p;
}

cJSON *core_node_summary(const cJSON *paired)
{
	static const char *const strs[] = {"displayName", "platform",   "deviceFamily",
	                                   "clientId",    "clientMode", "remoteIp"};
	cJSON *n = cJSON_CreateObject();

	if (!n)
		return NULL;
	cJSON_AddStringToObject(n, "nodeId", json_get_string(paired, "deviceId"));
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		if (json_get_string(paired, strs[i]))
			cJSON_AddStringToObject(n, strs[i], json_get_string(paired, strs[i]));
	cJSON_AddNumberToObject(n, "createdAtMs", (double)core_json_u64(paired, "createdAtMs"));
	cJSON_AddNumberToObject(n, "approvedAtMs", (double)core_json_u64(paired, "approvedAtMs"));
	return n;
}
