/* core_methods.c: requests after the handshake: check order, params validation, the pairing,
 * node and token methods operators call, and node.list's view of connected nodes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect.h"
#include "core_internal.h"

/* One request after the handshake, as a method handler sees it. */
struct call {
	const char *id;
	const char *method;
	const cJSON *params;
	uint64_t now_ms;
	bool node; /* the node.pair.* twin of a device.pair.* method */
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

enum ptype { P_STR, P_STR_ARRAY };

struct pspec {
	const char *name;
	enum ptype type;
	bool required;
};

/* OpenClaw's params objects are closed: unknown keys and wrong types are errors. */
static bool check_params(struct core *core, struct core_conn *conn, const struct call *rq,
                         const struct pspec *spec, size_t n)
{
	const cJSON *params = rq->params;
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
				         (int)json_utf8_prefix(e->string, 64), e->string);
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
	snprintf(msg, sizeof(msg), "invalid %s params: %s", rq->method, why);
	core_fail(core, conn, rq->id, CP_ERR_INVALID_PARAMS, msg, NULL, NULL);
	return false;
}

/* Indexes of table t's records (node-role ones only when node_only), newest first. */
static size_t *sorted_pending(struct core *core, enum store_table t, bool node_only, size_t *n_out)
{
	size_t n = store_count(core->store, t), k = 0;
	size_t *v = calloc(n ? n : 1, sizeof(*v));

	*n_out = 0;
	if (!v)
		return NULL;
	for (size_t i = n; i-- > 0;)
		if (!node_only || core_is_node_request(store_at(core->store, t, i)))
			v[k++] = i;
	/* Insertion sort by (ts, insertion index) descending; the table is mostly in ts order
	 * already and collected last first, so this is close to linear. */
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
			cJSON_AddStringToObject(r, "nodeId", json_get_string(r, "deviceId"));
		cJSON_AddItemToArray(a, r);
	}
	free(v);
	return a;
}

/* A write to the store failed: the request gets STORE_FAILED, the log says why. */
static void store_failed(struct core *core, struct core_conn *conn, const struct call *rq)
{
	core_logf(core, CORE_LOG_ERROR, "%s: %s", rq->method, store_last_error(core->store));
	core_fail(core, conn, rq->id, CP_ERR_STORE_FAILED, NULL, NULL, NULL);
}

static void m_device_pair_list(struct core *core, struct core_conn *conn, const struct call *rq)
{
	cJSON *p, *paired;

	p = cJSON_CreateObject();
	if (p) {
		cJSON_AddItemToObject(p, "pending", pending_list(core, STORE_PENDING, false));
		paired = cJSON_AddArrayToObject(p, "paired");
		for (size_t i = 0; paired && i < store_count(core->store, STORE_PAIRED); i++)
			cJSON_AddItemToArray(
			        paired, core_redact_paired(store_at(core->store, STORE_PAIRED, i)));
	}
	core_send_ok(core, conn, rq->id, p);
}

static void m_node_pair_list(struct core *core, struct core_conn *conn, const struct call *rq)
{
	cJSON *p, *paired;

	p = cJSON_CreateObject();
	if (!p) {
		core_send_ok(core, conn, rq->id, NULL);
		return;
	}
	if (core->cfg.compat_6836) {
		/* 2026.1.30 read a node store that WS connects never wrote to. */
		cJSON_AddItemToObject(p, "pending",
		                      pending_list(core, STORE_COMPAT_NODE_PENDING, true));
		cJSON_AddArrayToObject(p, "paired");
		core_send_ok(core, conn, rq->id, p);
		return;
	}
	cJSON_AddItemToObject(p, "pending", pending_list(core, STORE_PENDING, true));
	paired = cJSON_AddArrayToObject(p, "paired");
	for (size_t i = 0; paired && i < store_count(core->store, STORE_PAIRED); i++) {
		const cJSON *d = store_at(core->store, STORE_PAIRED, i);

		if (core_is_node_request(d))
			cJSON_AddItemToArray(paired, core_node_summary(d));
	}
	core_send_ok(core, conn, rq->id, p);
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
		cJSON_AddItemToArray(ids, cJSON_CreateString(json_get_string(
		                                  store_at(core->store, t, v[i]), "requestId")));
	free(v);
	snprintf(msg, sizeof(msg), "unknown requestId: %.*s", (int)json_utf8_prefix(rid, 64), rid);
	core_fail(core, conn, id, CP_ERR_UNKNOWN_REQUEST_ID, msg, extra, NULL);
}

/* The request an approve/reject of this kind may resolve: device.* any pending request, node.*
 * the node-role ones (or, in compat mode, only the separate node store). Unknown: answered with
 * UNKNOWN_REQUEST_ID here, NULL returned. */
static const cJSON *lookup_request(struct core *core, struct core_conn *conn, const struct call *rq,
                                   enum store_table *t_out)
{
	const char *rid = json_get_string(rq->params, "requestId");
	const cJSON *rec;

	*t_out = rq->node && core->cfg.compat_6836 ? STORE_COMPAT_NODE_PENDING : STORE_PENDING;
	rec = store_get(core->store, *t_out, rid);
	if (rec && rq->node && *t_out == STORE_PENDING && !core_is_node_request(rec)) {
		/* STORE-3: pending, so never "unknown" (STORE-4); the device.* twin resolves it. */
		cJSON *extra = cJSON_CreateObject();
		char msg[120];

		if (extra)
			cJSON_AddStringToObject(extra, "requestId", rid);
		snprintf(msg, sizeof(msg),
		         "requestId is not a node pairing request; use device.pair.%s",
		         strcmp(rq->method, "node.pair.reject") == 0 ? "reject" : "approve");
		core_fail(core, conn, rq->id, CP_ERR_INVALID_PARAMS, msg, extra, NULL);
		return NULL;
	}
	if (!rec)
		unknown_request(core, conn, rq->id, *t_out, rq->node, rid);
	return rec;
}

static bool key_matches(const cJSON *rec, const cJSON *params)
{
	const char *want_pk = json_get_string(params, "publicKey");
	const char *want_fp = json_get_string(params, "fingerprint");
	const char *rec_pk = json_get_string(rec, "publicKey");
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

/* 2026.1.30's node.pair.approve of its separate node store: the record just goes. */
static void approve_compat_node(struct core *core, struct core_conn *conn, const struct call *rq,
                                const char *rid)
{
	cJSON *p;

	if (store_remove(core->store, STORE_COMPAT_NODE_PENDING, rid) < 0) {
		store_failed(core, conn, rq);
		return;
	}
	p = cJSON_CreateObject();
	if (p) {
		cJSON_AddStringToObject(p, "requestId", rid);
		cJSON_AddItemToObject(p, "node", cJSON_CreateObject());
	}
	core_send_ok(core, conn, rq->id, p);
}

/* TRUST-2: below operator.admin, an approver grants only scopes it holds itself. */
static bool approver_holds(struct core *core, struct core_conn *conn, const struct call *rq,
                           const cJSON *rec)
{
	const cJSON *s;
	char msg[160];

	if (core_conn_has_scope(conn, "operator.admin"))
		return true;
	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(rec, "scopes"))
	{
		const char *name = cJSON_IsString(s) ? s->valuestring : "";

		if (core_conn_has_scope(conn, name))
			continue;
		snprintf(msg, sizeof(msg), "missing scope: %.*s", (int)json_utf8_prefix(name, 100),
		         name);
		core_fail(core, conn, rq->id, CP_ERR_MISSING_SCOPE, msg, NULL, NULL);
		return false;
	}
	return true;
}

static void m_pair_approve(struct core *core, struct core_conn *conn, const struct call *rq)
{
	enum store_table t;
	const cJSON *rec;
	cJSON *copy, *device = NULL, *p;
	char rid[CORE_UUID_LEN + 1], did[IDENTITY_DEVICE_ID_LEN + 1];
	int rc;

	rec = lookup_request(core, conn, rq, &t);
	if (!rec)
		return;
	snprintf(rid, sizeof(rid), "%s", json_get_string(rec, "requestId"));
	if (t == STORE_COMPAT_NODE_PENDING) {
		approve_compat_node(core, conn, rq, rid);
		return;
	}
	if (!approver_holds(core, conn, rq, rec))
		return;
	/* KEY-1: the operator may pin the key they compared out of band. */
	if (!key_matches(rec, rq->params)) {
		core_fail(core, conn, rq->id, CP_ERR_PUBLIC_KEY_MISMATCH, NULL, NULL, NULL);
		return;
	}
	copy = cJSON_Duplicate(rec, true);
	if (!copy) {
		store_failed(core, conn, rq);
		return;
	}
	snprintf(did, sizeof(did), "%s",
	         json_get_string(copy, "deviceId") ? json_get_string(copy, "deviceId") : "");
	rc = core_pair_request(core, copy, true, rq->now_ms, &device);
	if (rc < 0) {
		cJSON_Delete(copy);
		if (rc == -2)
			core_fail(core, conn, rq->id, CP_ERR_PUBLIC_KEY_MISMATCH,
			          "the request's deviceId is not the hash of its public key", NULL,
			          NULL);
		else
			store_failed(core, conn, rq);
		return;
	}
	/* PERSIST-3: the record is on disk (fsync'd) before anyone hears "ok". */
	core_logf(core, CORE_LOG_INFO, "conn %s: %s approved request %s of device %s", conn->id,
	          rq->method, rid, did);
	p = cJSON_CreateObject();
	if (p) {
		cJSON_AddStringToObject(p, "requestId", rid);
		if (rq->node)
			cJSON_AddItemToObject(p, "node", core_node_summary(device));
		else
			cJSON_AddItemToObject(p, "device", core_redact_paired(device));
	}
	cJSON_Delete(device);
	core_send_ok(core, conn, rq->id, p);
	core_announce_approved(core, rid, did, core_is_node_request(copy), rq->now_ms);
	cJSON_Delete(copy);
}

static void m_pair_reject(struct core *core, struct core_conn *conn, const struct call *rq)
{
	char rid[CORE_UUID_LEN + 1], did[IDENTITY_DEVICE_ID_LEN + 1];
	enum store_table t;
	const cJSON *rec;
	struct core_conn *held;
	bool node_role;
	cJSON *p;

	rec = lookup_request(core, conn, rq, &t);
	if (!rec)
		return;
	snprintf(rid, sizeof(rid), "%s", json_get_string(rec, "requestId"));
	snprintf(did, sizeof(did), "%s",
	         json_get_string(rec, "deviceId") ? json_get_string(rec, "deviceId")
	         : json_get_string(rec, "nodeId") ? json_get_string(rec, "nodeId")
	                                          : "");
	node_role = core_is_node_request(rec) || t == STORE_COMPAT_NODE_PENDING;
	if (store_remove(core->store, t, rid) < 0) {
		store_failed(core, conn, rq);
		return;
	}
	core_logf(core, CORE_LOG_INFO, "conn %s: %s rejected request %s of device %s", conn->id,
	          rq->method, rid, did);
	p = cJSON_CreateObject();
	if (p) {
		cJSON_AddStringToObject(p, "requestId", rid);
		cJSON_AddStringToObject(p, rq->node ? "nodeId" : "deviceId", did);
	}
	core_send_ok(core, conn, rq->id, p);
	if (t == STORE_PENDING) {
		core_announce_resolved(core, rid, did, node_role, "rejected", rq->now_ms);
		held = core_find_held(core, rid, NULL);
		if (held)
			core_fail(core, held, held->connect_id, CP_ERR_PAIRING_REJECTED, NULL, NULL,
			          NULL);
	}
}

/* Closes (no response) every authenticated connection of device did with role (any role when
 * NULL): their rights came from a pairing or a token that is gone (TRUST-5). */
static void close_sessions(struct core *core, const char *did, const char *role, enum cp_err err)
{
	for (struct core_conn *c = core->conns; c; c = c->next)
		if (!c->closing && c->state == CONN_AUTHED && c->has_device &&
		    strcmp(c->device_id, did) == 0 && (!role || strcmp(c->role, role) == 0))
			core_fail(core, c, NULL, err, NULL, NULL, NULL);
}

static void m_device_pair_remove(struct core *core, struct core_conn *conn, const struct call *rq)
{
	char did[IDENTITY_DEVICE_ID_LEN + 1];
	cJSON *p;
	int rc;

	snprintf(did, sizeof(did), "%s", json_get_string(rq->params, "deviceId"));
	rc = store_remove(core->store, STORE_PAIRED, json_get_string(rq->params, "deviceId"));
	if (rc == 1) {
		core_fail(core, conn, rq->id, CP_ERR_UNKNOWN_DEVICE, NULL, NULL, NULL);
		return;
	}
	if (rc < 0) {
		store_failed(core, conn, rq);
		return;
	}
	core_logf(core, CORE_LOG_INFO, "conn %s: removed device %s", conn->id, did);
	p = cJSON_CreateObject();
	if (p)
		cJSON_AddStringToObject(p, "deviceId", did);
	core_send_ok(core, conn, rq->id, p);
	/* Its live sessions were authorized by the pairing that is gone. */
	close_sessions(core, did, NULL, CP_ERR_DEVICE_REMOVED);
}

/* The paired record without its node role: the node token goes, the other roles and their tokens
 * stay; the informative `role` names a role the device still has. */
static cJSON *without_node_role(const cJSON *paired)
{
	cJSON *p = cJSON_Duplicate(paired, true);
	cJSON *roles = p ? cJSON_GetObjectItemCaseSensitive(p, "roles") : NULL;
	const char *role = json_get_string(p, "role");

	if (!p)
		return NULL;
	for (int i = cJSON_GetArraySize(roles) - 1; i >= 0; i--) {
		const cJSON *r = cJSON_GetArrayItem(roles, i);

		if (cJSON_IsString(r) && strcmp(r->valuestring, "node") == 0)
			cJSON_DeleteItemFromArray(roles, i);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "tokens"),
	                                        "node");
	if (role && strcmp(role, "node") == 0 && cJSON_IsString(cJSON_GetArrayItem(roles, 0)))
		cJSON_ReplaceItemInObjectCaseSensitive(
		        p, "role", cJSON_CreateString(cJSON_GetArrayItem(roles, 0)->valuestring));
	return p;
}

/* True when the device holds a role other than node. */
static bool has_other_role(const cJSON *paired)
{
	const cJSON *r;

	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(paired, "roles"))
	{
		if (cJSON_IsString(r) && strcmp(r->valuestring, "node") != 0)
			return true;
	}
	return false;
}

/* NODE-1: takes the node role from a paired device: a node-only device is removed, a device
 * with other roles keeps them; then its node sessions are closed. */
static void m_node_pair_remove(struct core *core, struct core_conn *conn, const struct call *rq)
{
	const cJSON *paired =
	        store_get(core->store, STORE_PAIRED, json_get_string(rq->params, "nodeId"));
	char did[IDENTITY_DEVICE_ID_LEN + 1];
	bool keep;
	cJSON *p;
	int rc;

	if (!paired || !core_is_node_request(paired)) {
		core_fail(core, conn, rq->id, CP_ERR_UNKNOWN_DEVICE, "unknown nodeId", NULL, NULL);
		return;
	}
	snprintf(did, sizeof(did), "%s", json_get_string(paired, "deviceId"));
	keep = has_other_role(paired);
	if (keep) {
		p = without_node_role(paired);
		rc = p ? store_put(core->store, STORE_PAIRED, p) : -1;
	} else {
		rc = store_remove(core->store, STORE_PAIRED, did);
	}
	if (rc != 0) {
		store_failed(core, conn, rq);
		return;
	}
	core_logf(core, CORE_LOG_INFO, "conn %s: removed node %s%s", conn->id, did,
	          keep ? " (its other roles stay)" : "");
	p = cJSON_CreateObject();
	if (p)
		cJSON_AddStringToObject(p, "nodeId", did);
	core_send_ok(core, conn, rq->id, p);
	close_sessions(core, did, "node", CP_ERR_DEVICE_REMOVED);
}

static void add_str_if(cJSON *o, const char *k, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, k, v);
}

/* node.list reads the connect of a connected node (NODE-2): what it sent, when it got hello-ok. */
static cJSON *string_list(const cJSON *a)
{
	return cJSON_IsArray(a) ? cJSON_Duplicate(a, true) : cJSON_CreateArray();
}

cJSON *core_node_live(const struct connect_params *cp)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	add_str_if(o, "displayName", cp->client_display_name);
	add_str_if(o, "platform", cp->client_platform);
	add_str_if(o, "version", cp->client_version);
	add_str_if(o, "deviceFamily", cp->client_device_family);
	add_str_if(o, "clientId", cp->client_id);
	add_str_if(o, "clientMode", cp->client_mode);
	cJSON_AddItemToObject(o, "caps", string_list(cp->caps));
	cJSON_AddItemToObject(o, "commands", string_list(cp->commands));
	return o;
}

void core_node_live_authed(struct core_conn *conn, uint64_t now_ms)
{
	if (!conn->live)
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(conn->live, "connectedAtMs");
	cJSON_AddNumberToObject(conn->live, "connectedAtMs", (double)now_ms);
}

/* The newest authenticated node connection of device did, or NULL. */
static const struct core_conn *live_node(const struct core *core, const char *did)
{
	const struct core_conn *best = NULL;

	for (const struct core_conn *c = core->conns; c; c = c->next)
		if (!c->closing && c->state == CONN_AUTHED && c->is_node && c->live &&
		    strcmp(c->device_id, did) == 0 &&
		    (!best || core_json_u64(c->live, "connectedAtMs") >
		                      core_json_u64(best->live, "connectedAtMs")))
			best = c;
	return best;
}

/* The string k of node.list's entry: the live connect's when connected, else the record's. */
static void entry_str(cJSON *n, const char *k, const cJSON *d, const struct core_conn *c)
{
	add_str_if(n, k, json_get_string(c ? c->live : d, k));
}

/* node.list's entry for a paired node (NODE-2). */
static cJSON *node_entry(const struct core *core, const cJSON *d, const char *did)
{
	static const char *const strs[] = {"displayName",  "platform", "version",
	                                   "deviceFamily", "clientId", "clientMode"};
	const struct core_conn *c = live_node(core, did);
	cJSON *n = cJSON_CreateObject();

	if (!n)
		return NULL;
	cJSON_AddStringToObject(n, "nodeId", did);
	for (size_t i = 0; i < N_ELEMS(strs); i++)
		entry_str(n, strs[i], d, c);
	if (!c)
		add_str_if(n, "remoteIp", json_get_string(d, "remoteIp"));
	else if (!c->client_loopback && c->ip[0])
		cJSON_AddStringToObject(n, "remoteIp", c->ip);
	cJSON_AddItemToObject(
	        n, "caps",
	        string_list(c ? cJSON_GetObjectItemCaseSensitive(c->live, "caps") : NULL));
	cJSON_AddItemToObject(
	        n, "commands",
	        string_list(c ? cJSON_GetObjectItemCaseSensitive(c->live, "commands") : NULL));
	if (c)
		cJSON_AddNumberToObject(n, "connectedAtMs",
		                        (double)core_json_u64(c->live, "connectedAtMs"));
	cJSON_AddBoolToObject(n, "paired", true);
	cJSON_AddBoolToObject(n, "connected", c != NULL);
	return n;
}

static void m_node_list(struct core *core, struct core_conn *conn, const struct call *rq)
{
	cJSON *p, *nodes;

	p = cJSON_CreateObject();
	if (!p) {
		core_send_ok(core, conn, rq->id, NULL);
		return;
	}
	cJSON_AddNumberToObject(p, "ts", (double)rq->now_ms);
	nodes = cJSON_AddArrayToObject(p, "nodes");
	for (size_t i = 0; nodes && i < store_count(core->store, STORE_PAIRED); i++) {
		const cJSON *d = store_at(core->store, STORE_PAIRED, i);
		const char *did = json_get_string(d, "deviceId");
		cJSON *n;

		if (!core_is_node_request(d) || !did)
			continue;
		n = node_entry(core, d, did);
		if (!n)
			break;
		cJSON_AddItemToArray(nodes, n);
	}
	core_send_ok(core, conn, rq->id, p);
}

/* Writes the changed paired record p (consumed), then answers with res (consumed). */
static bool save_paired(struct core *core, struct core_conn *conn, const struct call *rq, cJSON *p,
                        cJSON *res)
{
	if (store_put(core->store, STORE_PAIRED, p) < 0) {
		cJSON_Delete(res);
		store_failed(core, conn, rq);
		return false;
	}
	core_send_ok(core, conn, rq->id, res);
	return true;
}

static const cJSON *paired_token(const cJSON *paired, const char *role)
{
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(paired, "tokens"),
	                                        role);
}

/* A rotation may narrow a token, never widen it: only an approval raises a token (TRUST-4). */
static bool rotation_scopes_ok(const cJSON *paired, const char *role, const cJSON *scopes)
{
	return core_scopes_within(scopes, core_scope_ceiling(paired, role));
}

/* The token entry that replaces old (may be NULL) for role. */
static cJSON *rotated_entry(const char *token, const char *role, const cJSON *scopes,
                            const cJSON *old, uint64_t now_ms)
{
	cJSON *entry = cJSON_CreateObject();

	if (!entry)
		return NULL;
	cJSON_AddStringToObject(entry, "token", token);
	cJSON_AddStringToObject(entry, "role", role);
	cJSON_AddItemToObject(entry, "scopes", core_scope_set(scopes, NULL));
	cJSON_AddNumberToObject(entry, "createdAtMs",
	                        (double)(old && core_json_u64(old, "createdAtMs")
	                                         ? core_json_u64(old, "createdAtMs")
	                                         : now_ms));
	cJSON_AddNumberToObject(entry, "rotatedAtMs", (double)now_ms);
	return entry;
}

static void m_token_rotate(struct core *core, struct core_conn *conn, const struct call *rq)
{
	const char *did, *role;
	const cJSON *paired, *old, *scopes;
	cJSON *p, *tokens, *entry, *res;
	char token[CORE_TOKEN_LEN + 1];

	did = json_get_string(rq->params, "deviceId");
	role = json_get_string(rq->params, "role");
	paired = store_get(core->store, STORE_PAIRED, did);
	old = paired ? paired_token(paired, role) : NULL;
	if (!paired || (!old && !json_array_has_string(
	                                cJSON_GetObjectItemCaseSensitive(paired, "roles"), role))) {
		core_fail(core, conn, rq->id, CP_ERR_UNKNOWN_DEVICE, "unknown deviceId/role", NULL,
		          NULL);
		return;
	}
	scopes = cJSON_GetObjectItemCaseSensitive(rq->params, "scopes");
	if (!scopes)
		scopes = old ? cJSON_GetObjectItemCaseSensitive(old, "scopes") : NULL;
	if (!rotation_scopes_ok(paired, role, scopes)) {
		core_fail(
		        core, conn, rq->id, CP_ERR_INVALID_PARAMS,
		        "invalid device.token.rotate params: scopes exceed the token's scopes; only "
		        "an approval raises them",
		        NULL, NULL);
		return;
	}
	p = cJSON_Duplicate(paired, true);
	tokens = p ? cJSON_GetObjectItemCaseSensitive(p, "tokens") : NULL;
	if (p && !cJSON_IsObject(tokens)) {
		cJSON_DeleteItemFromObjectCaseSensitive(p, "tokens");
		tokens = cJSON_AddObjectToObject(p, "tokens");
	}
	token_random_hex32(token);
	entry = rotated_entry(token, role, scopes, old, rq->now_ms);
	if (!tokens || !entry) {
		cJSON_Delete(entry);
		cJSON_Delete(p);
		store_failed(core, conn, rq);
		return;
	}
	res = cJSON_CreateObject();
	if (res) {
		cJSON_AddStringToObject(res, "deviceId", did);
		cJSON_AddStringToObject(res, "role", role);
		cJSON_AddStringToObject(res, "token", token);
		cJSON_AddItemToObject(
		        res, "scopes",
		        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(entry, "scopes"), true));
		cJSON_AddNumberToObject(res, "rotatedAtMs", (double)rq->now_ms);
	}
	if (cJSON_GetObjectItemCaseSensitive(tokens, role))
		cJSON_ReplaceItemInObjectCaseSensitive(tokens, role, entry);
	else
		cJSON_AddItemToObject(tokens, role, entry);
	if (save_paired(core, conn, rq, p, res))
		close_sessions(core, did, role, CP_ERR_TOKEN_REVOKED);
}

static void m_token_revoke(struct core *core, struct core_conn *conn, const struct call *rq)
{
	const char *did, *role;
	const cJSON *paired, *old;
	cJSON *p, *t, *res;

	did = json_get_string(rq->params, "deviceId");
	role = json_get_string(rq->params, "role");
	paired = store_get(core->store, STORE_PAIRED, did);
	old = paired ? paired_token(paired, role) : NULL;
	if (!cJSON_IsObject(old)) {
		core_fail(core, conn, rq->id, CP_ERR_UNKNOWN_DEVICE, "unknown deviceId/role", NULL,
		          NULL);
		return;
	}
	p = cJSON_Duplicate(paired, true);
	t = p ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "tokens"),
	                                         role)
	      : NULL;
	if (!t) {
		cJSON_Delete(p);
		store_failed(core, conn, rq);
		return;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(t, "revokedAtMs");
	cJSON_AddNumberToObject(t, "revokedAtMs", (double)rq->now_ms);
	res = cJSON_CreateObject();
	if (res) {
		cJSON_AddStringToObject(res, "deviceId", did);
		cJSON_AddStringToObject(res, "role", role);
		cJSON_AddNumberToObject(res, "revokedAtMs", (double)rq->now_ms);
	}
	if (save_paired(core, conn, rq, p, res))
		close_sessions(core, did, role, CP_ERR_TOKEN_REVOKED);
}

/* node.invoke.result and node.event: an object, not interpreted further (WIRE-15). */
static void m_node_ok(struct core *core, struct core_conn *conn, const struct call *rq)
{
	char msg[120];

	if (rq->params && !cJSON_IsObject(rq->params)) {
		snprintf(msg, sizeof(msg), "invalid %s params: must be an object", rq->method);
		core_fail(core, conn, rq->id, CP_ERR_INVALID_PARAMS, msg, NULL, NULL);
		return;
	}
	core_send_ok(core, conn, rq->id, cJSON_CreateObject());
}

enum need { NEED_NOTHING, NEED_PAIRING, NEED_READ };

static const struct pspec approve_params[] = {
        {"requestId", P_STR, true},
        {"publicKey", P_STR, false},
        {"fingerprint", P_STR, false},
};
static const struct pspec request_params[] = {{"requestId", P_STR, true}};
static const struct pspec device_params[] = {{"deviceId", P_STR, true}};
static const struct pspec node_params[] = {{"nodeId", P_STR, true}};
static const struct pspec rotate_params[] = {
        {"deviceId", P_STR, true}, {"role", P_STR, true}, {"scopes", P_STR_ARRAY, false}};
static const struct pspec revoke_params[] = {{"deviceId", P_STR, true}, {"role", P_STR, true}};

#define NO_PARAMS NULL, 0, false
#define PARAMS(spec) spec, N_ELEMS(spec), false
#define ANY_PARAMS NULL, 0, true

static const struct method {
	const char *name;
	enum need need;
	bool node_ok; /* for node-role connections only (every other method: operators only) */
	bool node_twin; /* node.pair.* sharing its handler with device.pair.* */
	/* OpenClaw's closed params object, checked before fn runs; open: not interpreted */
	const struct pspec *params;
	size_t n_params;
	bool params_open;
	void (*fn)(struct core *core, struct core_conn *conn, const struct call *rq);
} method_table[] = {
        {"device.pair.list", NEED_PAIRING, false, false, NO_PARAMS, m_device_pair_list},
        {"device.pair.approve", NEED_PAIRING, false, false, PARAMS(approve_params), m_pair_approve},
        {"device.pair.reject", NEED_PAIRING, false, false, PARAMS(request_params), m_pair_reject},
        {"device.pair.remove", NEED_PAIRING, false, false, PARAMS(device_params),
         m_device_pair_remove},
        {"node.pair.list", NEED_PAIRING, false, true, NO_PARAMS, m_node_pair_list},
        {"node.pair.approve", NEED_PAIRING, false, true, PARAMS(approve_params), m_pair_approve},
        {"node.pair.reject", NEED_PAIRING, false, true, PARAMS(request_params), m_pair_reject},
        {"node.pair.remove", NEED_PAIRING, false, false, PARAMS(node_params), m_node_pair_remove},
        {"node.list", NEED_READ, false, false, NO_PARAMS, m_node_list},
        {"device.token.rotate", NEED_PAIRING, false, false, PARAMS(rotate_params), m_token_rotate},
        {"device.token.revoke", NEED_PAIRING, false, false, PARAMS(revoke_params), m_token_revoke},
        {"node.invoke.result", NEED_NOTHING, true, false, ANY_PARAMS, m_node_ok},
        {"node.event", NEED_NOTHING, true, false, ANY_PARAMS, m_node_ok},
};

/* The checks in front of every method (METHOD-1 steps 2 to 4 on an authenticated connection);
 * false: answered with the error. An unknown name comes before the role: hello-ok's
 * features.methods already told the connection every name there is, and OpenClaw node hosts
 * probe methods a gateway may lack and take only UNKNOWN_METHOD quietly (NODE-3). */
static bool allowed(struct core *core, struct core_conn *conn, const struct frame *f,
                    const struct method *m)
{
	char msg[300];

	if (!m) {
		snprintf(msg, sizeof(msg), "unknown method: %.*s",
		         (int)json_utf8_prefix(f->method, 200), f->method);
		core_fail(core, conn, f->id, CP_ERR_UNKNOWN_METHOD, msg, NULL, NULL);
		return false;
	}
	if (conn->is_node && !m->node_ok) {
		core_fail(core, conn, f->id, CP_ERR_UNAUTHORIZED_ROLE, "unauthorized role: node",
		          NULL, NULL);
		return false;
	}
	if (!conn->is_node && m->node_ok) {
		core_fail(core, conn, f->id, CP_ERR_UNAUTHORIZED_ROLE,
		          "unauthorized role: operator", NULL, NULL);
		return false;
	}
	if (m->need == NEED_PAIRING && !core_conn_has_scope(conn, "operator.pairing") &&
	    !core_conn_has_scope(conn, "operator.admin")) {
		core_fail(core, conn, f->id, CP_ERR_MISSING_SCOPE,
		          "missing scope: operator.pairing", NULL, NULL);
		return false;
	}
	if (m->need == NEED_READ && !core_conn_has_scope(conn, "operator.read") &&
	    !core_conn_has_scope(conn, "operator.write") &&
	    !core_conn_has_scope(conn, "operator.admin")) {
		core_fail(core, conn, f->id, CP_ERR_MISSING_SCOPE, "missing scope: operator.read",
		          NULL, NULL);
		return false;
	}
	return true;
}

void core_handle_request(struct core *core, struct core_conn *conn, const struct frame *f,
                         uint64_t now_ms)
{
	const struct method *m = NULL;
	struct call rq;

	if (strcmp(f->method, "connect") == 0) {
		core_fail(core, conn, f->id, CP_ERR_CONNECT_AGAIN, NULL, NULL, NULL);
		return;
	}
	for (size_t i = 0; i < N_ELEMS(method_table); i++)
		if (strcmp(method_table[i].name, f->method) == 0)
			m = &method_table[i];
	if (!allowed(core, conn, f, m))
		return;
	rq.id = f->id;
	rq.method = m->name;
	rq.params = f->params;
	rq.now_ms = now_ms;
	rq.node = m->node_twin;
	if (!m->params_open && !check_params(core, conn, &rq, m->params, m->n_params))
		return;
	m->fn(core, conn, &rq);
}
