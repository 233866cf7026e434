/* frame.c: parse and build the JSON text frames req / res / event (cJSON). */
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "json.h"

#define CLOSE_REASON_MAX 120

/* A "\u0000" escape would make cJSON cut the string short, so the same frame would mean one
 * thing to a JavaScript peer and another to us: refuse it like a raw NUL. */
static bool has_escaped_nul(const char *s, size_t len)
{
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		if (!in_str) {
			if (s[i] == '"')
				in_str = true;
			continue;
		}
		if (s[i] == '"') {
			in_str = false;
		} else if (s[i] == '\\' && i + 1 < len) {
			if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0)
				return true;
			i++;
		}
	}
	return false;
}

static bool only_space(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

/* root[key] when it is a non-empty string; else NULL, with *why = msg. */
static const char *need_string(const cJSON *root, const char *key, const char *msg,
                               const char **why)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);

	if (!cJSON_IsString(it) || it->valuestring[0] == '\0') {
		*why = msg;
		return NULL;
	}
	return it->valuestring;
}

/* Request envelopes are closed objects (both OpenClaw releases' keys). */
static bool req_key_known(const char *k)
{
	static const char *const keys[] = {"type",   "id",          "method",
	                                   "params", "traceparent", "expectedProfileId"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(k, keys[i]) == 0)
			return true;
	return false;
}

static int parse_req(struct frame *f, const char **why)
{
	cJSON *root = f->root, *it;

	for (it = root->child; it; it = it->next)
		if (!req_key_known(it->string)) {
			*why = "unknown key in request frame";
			return -1;
		}
	f->id = need_string(root, "id", "request id must be a non-empty string", why);
	if (!f->id)
		return -1;
	f->method = need_string(root, "method", "request method must be a non-empty string", why);
	if (!f->method)
		return -1;
	it = cJSON_GetObjectItemCaseSensitive(root, "traceparent");
	if (it && (!cJSON_IsString(it) || strlen(it->valuestring) > 128)) {
		*why = "bad traceparent";
		return -1;
	}
	it = cJSON_GetObjectItemCaseSensitive(root, "expectedProfileId");
	if (it && !cJSON_IsString(it)) {
		*why = "bad expectedProfileId";
		return -1;
	}
	f->params = cJSON_GetObjectItemCaseSensitive(root, "params");
	f->type = FRAME_REQ;
	return 0;
}

static int parse_res(struct frame *f, const char **why)
{
	cJSON *root = f->root, *it;

	f->id = need_string(root, "id", "response id must be a non-empty string", why);
	if (!f->id)
		return -1;
	it = cJSON_GetObjectItemCaseSensitive(root, "ok");
	if (!cJSON_IsBool(it)) {
		*why = "response ok must be a boolean";
		return -1;
	}
	f->ok = cJSON_IsTrue(it);
	f->payload = cJSON_GetObjectItemCaseSensitive(root, "payload");
	it = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (it && !cJSON_IsObject(it) && !cJSON_IsNull(it)) {
		*why = "response error must be an object";
		return -1;
	}
	f->error = cJSON_IsObject(it) ? it : NULL;
	f->type = FRAME_RES;
	return 0;
}

static int parse_event(struct frame *f, const char **why)
{
	cJSON *root = f->root, *it;

	f->event = need_string(root, "event", "event name must be a non-empty string", why);
	if (!f->event)
		return -1;
	f->payload = cJSON_GetObjectItemCaseSensitive(root, "payload");
	it = cJSON_GetObjectItemCaseSensitive(root, "seq");
	if (it) {
		if (!json_is_int64(it) || it->valuedouble < 0) {
			*why = "event seq must be a non-negative integer";
			return -1;
		}
		f->seq = (int64_t)it->valuedouble;
	}
	f->type = FRAME_EVENT;
	return 0;
}

int frame_parse(const char *text, size_t len, struct frame *f, const char **why)
{
	const char *dummy, *end = NULL, *type;
	int rc;

	if (!why)
		why = &dummy;
	if (!f) {
		*why = "no frame";
		return -1;
	}
	memset(f, 0, sizeof(*f));
	f->seq = -1;
	if (!text || len == 0) {
		*why = "empty frame";
		return -1;
	}
	if (memchr(text, '\0', len)) {
		*why = "embedded NUL";
		return -1;
	}
	if (!json_utf8_valid(text, len)) {
		*why = "invalid UTF-8";
		return -1;
	}
	if (has_escaped_nul(text, len)) {
		*why = "escaped NUL in a string";
		return -1;
	}
	f->root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!f->root) {
		*why = "invalid JSON";
		goto fail;
	}
	if (end && !only_space(end, len - (size_t)(end - text))) {
		*why = "trailing data after JSON";
		goto fail;
	}
	if (!cJSON_IsObject(f->root)) {
		*why = "frame is not a JSON object";
		goto fail;
	}
	type = json_get_string(f->root, "type");
	if (!type) {
		*why = "frame type missing";
		goto fail;
	}
	if (strcmp(type, "req") == 0)
		rc = parse_req(f, why);
	else if (strcmp(type, "res") == 0)
		rc = parse_res(f, why);
	else if (strcmp(type, "event") == 0)
		rc = parse_event(f, why);
	else {
		*why = "unknown frame type";
		rc = -1;
	}
	if (rc == 0)
		return 0;
fail:
	cJSON_Delete(f->root);
	memset(f, 0, sizeof(*f));
	f->seq = -1;
	return -1;
}

void frame_finish(struct frame *f)
{
	if (!f)
		return;
	cJSON_Delete(f->root);
	memset(f, 0, sizeof(*f));
	f->seq = -1;
}

/* Prints and frees root. */
static char *print_and_free(cJSON *root)
{
	char *s = root ? cJSON_PrintUnformatted(root) : NULL;

	cJSON_Delete(root);
	return s;
}

/* A builder gives up: what it owns goes. */
static char *discard(cJSON *root, cJSON *item)
{
	cJSON_Delete(item);
	cJSON_Delete(root);
	return NULL;
}

/* {"type": type, key: value}, or NULL. */
static cJSON *envelope(const char *type, const char *key, const char *value)
{
	cJSON *root = cJSON_CreateObject();

	if (root && (!cJSON_AddStringToObject(root, "type", type) ||
	             !cJSON_AddStringToObject(root, key, value))) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

/* Adds item (owned) under key; on failure item is freed. Returns false on failure. */
static bool add_owned(cJSON *obj, const char *key, cJSON *item)
{
	if (!item)
		return true;
	if (!cJSON_AddItemToObject(obj, key, item)) {
		cJSON_Delete(item);
		return false;
	}
	return true;
}

/* Adds item (owned, may be NULL) under key as the last member, then prints and frees root. */
static char *finish(cJSON *root, const char *key, cJSON *item)
{
	if (!add_owned(root, key, item))
		return discard(root, NULL);
	return print_and_free(root);
}

char *frame_build_req(const char *id, const char *method, cJSON *params)
{
	cJSON *root = id && method ? envelope("req", "id", id) : NULL;

	if (!root || !cJSON_AddStringToObject(root, "method", method))
		return discard(root, params);
	return finish(root, "params", params);
}

char *frame_build_res_ok(const char *id, cJSON *payload)
{
	cJSON *root = id ? envelope("res", "id", id) : NULL;

	if (!root || !cJSON_AddTrueToObject(root, "ok"))
		return discard(root, payload);
	return finish(root, "payload", payload);
}

/* Moves the members of extra (consumed) into details, except "code": the table's details.code
 * always wins. Returns false when memory ran out. */
static bool merge_details(cJSON *details, cJSON *extra)
{
	while (cJSON_IsObject(extra) && extra->child) {
		cJSON *it = cJSON_DetachItemViaPointer(extra, extra->child);

		if (!it->string || strcmp(it->string, "code") == 0) {
			cJSON_Delete(it);
			continue;
		}
		if (!cJSON_AddItemToObject(details, it->string, it)) {
			cJSON_Delete(it);
			cJSON_Delete(extra);
			return false;
		}
	}
	cJSON_Delete(extra);
	return true;
}

char *frame_build_res_err(const char *id, enum cp_err err, const char *message,
                          cJSON *extra_details)
{
	const struct cp_err_info *info = cp_err_info(err);
	cJSON *root = id && info && info->wire_code ? envelope("res", "id", id) : NULL;
	cJSON *error, *details;

	if (!root || !cJSON_AddFalseToObject(root, "ok"))
		return discard(root, extra_details);
	error = cJSON_AddObjectToObject(root, "error");
	if (!error || !cJSON_AddStringToObject(error, "code", info->wire_code) ||
	    !cJSON_AddStringToObject(error, "message", message ? message : info->message))
		return discard(root, extra_details);
	details = cJSON_AddObjectToObject(error, "details");
	if (!details || !cJSON_AddStringToObject(details, "code", info->details_code))
		return discard(root, extra_details);
	if (!merge_details(details, extra_details))
		return discard(root, NULL);
	return print_and_free(root);
}

char *frame_build_event(const char *event, cJSON *payload, int64_t seq)
{
	cJSON *root = event ? envelope("event", "event", event) : NULL;

	if (!root)
		return discard(NULL, payload);
	if (!add_owned(root, "payload", payload))
		return discard(root, NULL);
	if (seq >= 0 && !json_add_int64(root, "seq", seq))
		return discard(root, NULL);
	return print_and_free(root);
}

void frame_close_reason(const char *reason, char *out, size_t outsz)
{
	size_t n, max = CLOSE_REASON_MAX;

	if (!out || outsz == 0)
		return;
	if (!reason)
		reason = "";
	if (outsz - 1 < max)
		max = outsz - 1;
	n = json_utf8_prefix(reason, max);
	memcpy(out, reason, n);
	out[n] = '\0';
}
