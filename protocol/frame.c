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

static bool nonempty_string(const cJSON *it)
{
	return cJSON_IsString(it) && it->valuestring[0] != '\0';
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
	it = cJSON_GetObjectItemCaseSensitive(root, "id");
	if (!nonempty_string(it)) {
		*why = "request id must be a non-empty string";
		return -1;
	}
	f->id = it->valuestring;
	it = cJSON_GetObjectItemCaseSensitive(root, "method");
	if (!nonempty_string(it)) {
		*why = "request method must be a non-empty string";
		return -1;
	}
	f->method = it->valuestring;
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

	it = cJSON_GetObjectItemCaseSensitive(root, "id");
	if (!nonempty_string(it)) {
		*why = "response id must be a non-empty string";
		return -1;
	}
	f->id = it->valuestring;
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

	it = cJSON_GetObjectItemCaseSensitive(root, "event");
	if (!nonempty_string(it)) {
		*why = "event name must be a non-empty string";
		return -1;
	}
	f->event = it->valuestring;
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

char *frame_build_req(const char *id, const char *method, cJSON *params)
{
	cJSON *root = NULL;

	if (!id || !method)
		goto fail;
	root = cJSON_CreateObject();
	if (!root || !cJSON_AddStringToObject(root, "type", "req") ||
	    !cJSON_AddStringToObject(root, "id", id) ||
	    !cJSON_AddStringToObject(root, "method", method))
		goto fail;
	if (!add_owned(root, "params", params)) {
		params = NULL;
		goto fail;
	}
	return print_and_free(root);
fail:
	cJSON_Delete(params);
	cJSON_Delete(root);
	return NULL;
}

char *frame_build_res_ok(const char *id, cJSON *payload)
{
	cJSON *root = NULL;

	if (!id)
		goto fail;
	root = cJSON_CreateObject();
	if (!root || !cJSON_AddStringToObject(root, "type", "res") ||
	    !cJSON_AddStringToObject(root, "id", id) || !cJSON_AddTrueToObject(root, "ok"))
		goto fail;
	if (!add_owned(root, "payload", payload)) {
		payload = NULL;
		goto fail;
	}
	return print_and_free(root);
fail:
	cJSON_Delete(payload);
	cJSON_Delete(root);
	return NULL;
}

char *frame_build_res_err(const char *id, enum cp_err err, const char *message,
                          cJSON *extra_details)
{
	const struct cp_err_info *info = cp_err_info(err);
	cJSON *root = NULL, *error, *details;

	if (!id || !info || !info->wire_code)
		goto fail;
	root = cJSON_CreateObject();
	if (!root || !cJSON_AddStringToObject(root, "type", "res") ||
	    !cJSON_AddStringToObject(root, "id", id) || !cJSON_AddFalseToObject(root, "ok"))
		goto fail;
	error = cJSON_AddObjectToObject(root, "error");
	if (!error || !cJSON_AddStringToObject(error, "code", info->wire_code) ||
	    !cJSON_AddStringToObject(error, "message", message ? message : info->message))
		goto fail;
	details = cJSON_AddObjectToObject(error, "details");
	if (!details || !cJSON_AddStringToObject(details, "code", info->details_code))
		goto fail;
	/* The table's details.code always wins over a "code" in extra_details. */
	while (cJSON_IsObject(extra_details) && extra_details->child) {
		cJSON *it = cJSON_DetachItemViaPointer(extra_details, extra_details->child);
		if (!it->string || strcmp(it->string, "code") == 0) {
			cJSON_Delete(it);
			continue;
		}
		if (!cJSON_AddItemToObject(details, it->string, it)) {
			cJSON_Delete(it);
			goto fail;
		}
	}
	cJSON_Delete(extra_details);
	return print_and_free(root);
fail:
	cJSON_Delete(extra_details);
	cJSON_Delete(root);
	return NULL;
}

char *frame_build_event(const char *event, cJSON *payload, int64_t seq)
{
	cJSON *root = NULL;

	if (!event)
		goto fail;
	root = cJSON_CreateObject();
	if (!root || !cJSON_AddStringToObject(root, "type", "event") ||
	    !cJSON_AddStringToObject(root, "event", event))
		goto fail;
	if (!add_owned(root, "payload", payload)) {
		payload = NULL;
		goto fail;
	}
	payload = NULL;
	if (seq >= 0 && !json_add_int64(root, "seq", seq))
		goto fail;
	return print_and_free(root);
fail:
	cJSON_Delete(payload);
	cJSON_Delete(root);
	return NULL;
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
	n = strlen(reason);
	if (n > max) {
		n = max;
		/* Never end inside a multi-byte sequence: back up over continuation bytes to the
		 * lead byte, which then starts the cut-off character. */
		while (n > 0 && ((unsigned char)reason[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(out, reason, n);
	out[n] = '\0';
}
