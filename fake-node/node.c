/* node.c: the Android-like node: its connect and invoke answers, device tokens, session state,
 * and the reconnect policy. */
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "frame.h"
#include "json.h"

/* RFC 6455's 1006: the connection ended without a close frame; the client library reports a
 * connection that could not be opened so, with local_close set. */
#define CLOSE_NO_FRAME 1006
/* RFC 6455's 1011: this side cannot go on (it ran out of memory building its connect) */
#define CLOSE_INTERNAL_ERROR 1011

/* ---- device tokens ---- */

void node_token_path(const char *identity_path, char *out, size_t outsz)
{
	size_t n = strlen(identity_path);

	if (n > 5 && !strcmp(identity_path + n - 5, ".json"))
		n -= 5;
	snprintf(out, outsz, "%.*s.tokens.json", (int)n, identity_path);
}

static cJSON *read_json_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n;
	cJSON *j = NULL;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1 << 20) &&
	    fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
			buf[n] = '\0';
			j = cJSON_Parse(buf);
		}
	}
	free(buf);
	fclose(f);
	return j;
}

char *node_token_load(const char *path, const char *device_id, const char *url)
{
	cJSON *j = read_json_file(path), *dev, *t;
	char *out = NULL;

	if (!j)
		return NULL;
	dev = cJSON_GetObjectItemCaseSensitive(j, "deviceId");
	t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "tokens"), url);
	if (cJSON_IsString(dev) && !strcmp(dev->valuestring, device_id) && cJSON_IsString(t) &&
	    *t->valuestring)
		out = strdup(t->valuestring);
	cJSON_Delete(j);
	return out;
}

int node_token_save(const char *path, const char *device_id, const char *url, const char *token)
{
	cJSON *j = read_json_file(path), *tokens, *dev;
	char tmp[4096], *text = NULL;
	int fd = -1, rc = -1;
	size_t len;

	dev = j ? cJSON_GetObjectItemCaseSensitive(j, "deviceId") : NULL;
	if (!j || !cJSON_IsString(dev) || strcmp(dev->valuestring, device_id)) {
		cJSON_Delete(j);
		j = cJSON_CreateObject();
		if (!j || !cJSON_AddNumberToObject(j, "version", 1) ||
		    !cJSON_AddStringToObject(j, "deviceId", device_id))
			goto out;
	}
	tokens = cJSON_GetObjectItemCaseSensitive(j, "tokens");
	if (!cJSON_IsObject(tokens)) {
		cJSON_DeleteItemFromObjectCaseSensitive(j, "tokens");
		tokens = cJSON_AddObjectToObject(j, "tokens");
		if (!tokens)
			goto out;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(tokens, url);
	if (token && !cJSON_AddStringToObject(tokens, url, token))
		goto out;
	text = cJSON_Print(j);
	if (!text)
		goto out;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	len = strlen(text);
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) < 0) {
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(text);
	cJSON_Delete(j);
	return rc;
}

/* ---- session ---- */

int node_session_open(struct node_session *s, struct client_ctx *ctx, const struct node_config *cfg,
                      const struct identity *id, const char *auth_token, bool with_device_token,
                      char *err, size_t errsz)
{
	struct client_conn_opts o = {
	        .url = cfg->url,
	        .xff = cfg->xff,
	        .netns = cfg->netns,
	        .tls_fingerprint = cfg->tls_fingerprint,
	        .connect_timeout_ms = cfg->connect_timeout_ms,
	};

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->id = id;
	s->auth_token = auth_token;
	s->with_device_token = with_device_token;
	identity_fingerprint(id->pk, s->fingerprint);
	s->t_open = clock_mono_ms();
	if (client_connect_async(ctx, &o, &s->conn) < 0) {
		snprintf(err, errsz, "%s: bad URL or out of memory",
		         cfg->url ? cfg->url : "(none)");
		s->state = NODE_S_CLOSED;
		return -1;
	}
	s->state = NODE_S_OPENING;
	return 0;
}

static void send_connect(struct node_session *s, const char *nonce)
{
	struct connect_spec spec;
	char *req;

	connect_spec_android(&spec);
	if (s->cfg->display_name)
		spec.display_name = s->cfg->display_name;
	spec.commands = s->cfg->commands;
	spec.n_commands = s->cfg->n_commands;
	spec.sig = s->cfg->sig == CONNECT_SIG_V3 ? CONNECT_SIG_V3 : CONNECT_SIG_V2;
	spec.token = s->auth_token;
	spec.identity = s->id;
	snprintf(s->connect_id, sizeof(s->connect_id), "connect-%u", ++s->next_req);
	req = connect_request_build(s->connect_id, &spec, nonce, clock_wall_ms());
	if (!req) {
		client_close(s->conn, CLOSE_INTERNAL_ERROR, "out of memory");
		return;
	}
	client_send_text(s->conn, req);
	free(req);
	s->state = NODE_S_CONNECT_SENT;
}

/* The params of node.invoke.result: canned answers of a phone that is fine and shows
 * notifications. */
static cJSON *invoke_result(const struct node_session *s, const char *id, const char *cmd)
{
	bool known = cmd && (!strcmp(cmd, "device.status") || !strcmp(cmd, "system.notify"));
	cJSON *p = cJSON_CreateObject(), *res;

	if (!p)
		return NULL;
	cJSON_AddStringToObject(p, "id", id);
	cJSON_AddStringToObject(p, "nodeId", s->id->device_id);
	cJSON_AddBoolToObject(p, "ok", known);
	if (known && !strcmp(cmd, "device.status")) {
		res = cJSON_AddObjectToObject(p, "payload");
		if (res) {
			cJSON_AddNumberToObject(res, "battery", 0.87);
			cJSON_AddBoolToObject(res, "charging", false);
			cJSON_AddStringToObject(res, "network", "wifi");
			cJSON_AddStringToObject(res, "platform", "android");
		}
	} else if (known) {
		res = cJSON_AddObjectToObject(p, "payload");
		if (res)
			cJSON_AddBoolToObject(res, "shown", true);
	} else {
		res = cJSON_AddObjectToObject(p, "error");
		if (res) {
			cJSON_AddStringToObject(res, "code", "UNAVAILABLE");
			cJSON_AddStringToObject(res, "message", "command not supported");
		}
	}
	return p;
}

static void answer_invoke(struct node_session *s, const cJSON *payload, struct node_event *ev)
{
	const char *id = json_get_string(payload, "id");
	char rid[32], *text;
	cJSON *p;

	ev->command = json_get_string(payload, "command");
	snprintf(rid, sizeof(rid), "invoke-%u", ++s->next_req);
	if (!id)
		return;
	p = invoke_result(s, id, ev->command);
	text = p ? frame_build_req(rid, "node.invoke.result", p) : NULL;
	if (text)
		client_send_text(s->conn, text);
	free(text);
}

void node_session_handle(struct node_session *s, const struct client_item *it,
                         struct node_event *ev)
{
	const char *type, *name;
	cJSON *f;

	memset(ev, 0, sizeof(*ev));
	ev->ms_since_open = it->at_ms >= s->t_open ? it->at_ms - s->t_open : 0;
	if (it->kind == CLIENT_ITEM_CLOSE) {
		ev->kind = NODE_EV_CLOSE;
		ev->close_code = it->close_code;
		ev->close_reason = it->close_reason;
		ev->local_close = it->local_close;
		s->state = NODE_S_CLOSED;
		return;
	}
	ev->text = it->text;
	f = it->binary ? NULL : cJSON_ParseWithLength(it->text, it->len);
	type = json_get_string(f, "type");
	if (!f || !cJSON_IsObject(f) || !type) {
		cJSON_Delete(f);
		ev->kind = NODE_EV_GARBAGE;
		return;
	}
	ev->frame = f;
	ev->kind = NODE_EV_OTHER;
	if (!strcmp(type, "event")) {
		cJSON *payload = cJSON_GetObjectItemCaseSensitive(f, "payload");

		name = json_get_string(f, "event");
		if (!name)
			return;
		if (!strcmp(name, "connect.challenge") && s->state == NODE_S_OPENING) {
			const char *nonce = json_get_string(payload, "nonce");

			ev->kind = NODE_EV_CHALLENGE;
			send_connect(s, nonce ? nonce : "");
		} else if (!strcmp(name, "connect.pending")) {
			ev->kind = NODE_EV_PENDING;
			ev->request_id = json_get_string(payload, "requestId");
			s->state = NODE_S_PENDING;
		} else if (!strcmp(name, "tick")) {
			ev->kind = NODE_EV_TICK;
		} else if (!strcmp(name, "node.invoke.request")) {
			ev->kind = NODE_EV_INVOKE;
			answer_invoke(s, payload, ev);
		}
		return;
	}
	if (!strcmp(type, "res")) {
		const char *id = json_get_string(f, "id");
		cJSON *ok = cJSON_GetObjectItemCaseSensitive(f, "ok");
		cJSON *payload = cJSON_GetObjectItemCaseSensitive(f, "payload");

		if (!id || strcmp(id, s->connect_id))
			return;
		if (cJSON_IsTrue(ok)) {
			cJSON *auth = cJSON_GetObjectItemCaseSensitive(payload, "auth");

			ev->kind = NODE_EV_HELLO;
			ev->device_token = json_get_string(auth, "deviceToken");
			s->state = NODE_S_READY;
			s->t_hello = it->at_ms;
		} else {
			cJSON *err = cJSON_GetObjectItemCaseSensitive(f, "error");
			cJSON *details = cJSON_GetObjectItemCaseSensitive(err, "details");

			ev->kind = NODE_EV_ERROR;
			ev->error_code = json_get_string(err, "code");
			ev->message = json_get_string(err, "message");
			ev->details_code = json_get_string(details, "code");
			ev->request_id = json_get_string(details, "requestId");
		}
	}
}

void node_event_finish(struct node_event *ev)
{
	if (!ev)
		return;
	cJSON_Delete(ev->frame);
	ev->frame = NULL;
}

void node_session_end(struct node_session *s)
{
	if (!s || !s->conn)
		return;
	client_conn_destroy(s->conn);
	s->conn = NULL;
	s->state = NODE_S_CLOSED;
}

/* The shared- and device-token refusals of the table and of OpenClaw all start with the word
 * before the ':' of the table's reason ("unauthorized"). */
static bool says_unauthorized(const char *s)
{
	const char *reason = cp_err_info(CP_ERR_AUTH_TOKEN_MISMATCH)->close_reason;

	return s && !strncmp(s, reason, strcspn(reason, ":"));
}

bool node_error_is_auth(const char *details_code, const char *message, int close_code,
                        const char *close_reason)
{
	/* DEVICE_TOKEN_*: OpenClaw's device-token refusals, which the table does not have */
	if (details_code &&
	    (!strcmp(details_code, cp_err_info(CP_ERR_AUTH_TOKEN_MISMATCH)->details_code) ||
	     !strcmp(details_code, cp_err_info(CP_ERR_AUTH_TOKEN_MISSING)->details_code) ||
	     !strncmp(details_code, "DEVICE_TOKEN", 12)))
		return true;
	if (says_unauthorized(message))
		return true;
	return close_code == cp_err_info(CP_ERR_AUTH_TOKEN_MISMATCH)->close_code &&
	       says_unauthorized(close_reason);
}

/* ---- reconnect policy ---- */

static bool closed_with(int code, enum cp_err err)
{
	return code == cp_err_info(err)->close_code;
}

static enum node_retry_kind after_no_challenge(const struct node_attempt *a)
{
	if (a->socket_open)
		return NODE_GIVE_UP_REFUSED; /* something answers, but it is not a gateway */
	return a->reached_gateway ? NODE_RETRY_BACKOFF : NODE_GIVE_UP_UNREACHABLE;
}

static enum node_retry_kind after_close(const struct node_attempt *a)
{
	const struct cp_err_info *required = cp_err_info(CP_ERR_PAIRING_REQUIRED);
	const char *reason = a->close_reason ? a->close_reason : "";
	const char *details = a->error_details ? a->error_details : "";
	int code = a->close_code;
	bool auth_error =
	        a->error && node_error_is_auth(a->error_details, a->error_message, 0, NULL);
	/* an error res other than OpenClaw's "pairing required", which only means "wait" */
	bool final_error = a->error && strcmp(details, required->details_code) != 0;

	if (!a->reached_gateway && !a->hello && code == CLOSE_NO_FRAME && a->local_close)
		return NODE_GIVE_UP_UNREACHABLE;
	if (a->garbage)
		return NODE_GIVE_UP_REFUSED;
	if (a->used_device_token && !a->hello &&
	    (auth_error || node_error_is_auth(NULL, NULL, code, reason)))
		return NODE_RETRY_SHARED_TOKEN; /* the gateway forgot or revoked the device token */
	if (closed_with(code, CP_ERR_PAIRING_REJECTED) ||
	    closed_with(code, CP_ERR_PAIRING_SUPERSEDED) ||
	    closed_with(code, CP_ERR_DEVICE_REMOVED))
		return NODE_GIVE_UP_REFUSED;
	if ((final_error && !a->pending && code != required->close_code) || auth_error)
		return NODE_GIVE_UP_REFUSED;
	if (final_error && *details && !strstr(reason, required->close_reason))
		return NODE_GIVE_UP_REFUSED;
	if (a->hello)
		return NODE_RETRY_BACKOFF;
	if (code == required->close_code || closed_with(code, CP_ERR_PAIRING_EXPIRED) || a->pending)
		return NODE_RETRY_COMPAT;
	return NODE_RETRY_BACKOFF;
}

struct node_retry node_retry_decide(const struct node_attempt *a, const struct node_retry_state *st,
                                    uint64_t now_ms)
{
	struct node_retry r = {.next = *st};

	r.kind = a->end == NODE_END_NO_CHALLENGE ? after_no_challenge(a) : after_close(a);
	r.next.paired = st->paired || a->hello;
	switch (r.kind) {
	case NODE_RETRY_SHARED_TOKEN:
		break;
	case NODE_RETRY_COMPAT:
		r.wait_ms = NODE_COMPAT_RETRY_MS;
		r.next.backoff_ms = NODE_BACKOFF_MIN_MS;
		break;
	case NODE_RETRY_BACKOFF:
		r.wait_ms = st->backoff_ms;
		r.next.backoff_ms = st->backoff_ms * 2 > NODE_BACKOFF_MAX_MS ? NODE_BACKOFF_MAX_MS
		                                                             : st->backoff_ms * 2;
		break;
	default:
		return r;
	}
	/* once paired, the node reconnects until stopped: the pairing deadline is over */
	if ((!r.next.paired || r.kind == NODE_RETRY_SHARED_TOKEN) &&
	    now_ms + (uint64_t)r.wait_ms >= st->deadline_ms) {
		r.kind = NODE_GIVE_UP_TIMEOUT;
		return r;
	}
	if (r.next.paired)
		r.next.deadline_ms = UINT64_MAX;
	return r;
}
