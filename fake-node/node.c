/* node.c: the Android-like node: connect params, signatures, device tokens, session state. */
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "authpayload.h"

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
	        .connect_timeout_ms = cfg->connect_timeout_ms,
	};

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->id = id;
	s->auth_token = auth_token;
	s->with_device_token = with_device_token;
	identity_fingerprint(id->pk, s->fingerprint);
	s->t_open = client_now_ms();
	if (client_connect_async(ctx, &o, &s->conn) < 0) {
		snprintf(err, errsz, "%s: bad URL or out of memory",
		         cfg->url ? cfg->url : "(none)");
		s->state = NODE_S_CLOSED;
		return -1;
	}
	s->state = NODE_S_OPENING;
	return 0;
}

static const char *json_str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int send_json(struct client_conn *c, cJSON *frame)
{
	char *t = cJSON_PrintUnformatted(frame);
	int rc = t ? client_send_text(c, t) : -1;

	free(t);
	return rc;
}

static void send_connect(struct node_session *s, const char *nonce)
{
	struct connect_spec spec;
	cJSON *params, *req;

	connect_spec_android(&spec);
	if (s->cfg->display_name)
		spec.display_name = s->cfg->display_name;
	spec.commands = s->cfg->commands;
	spec.n_commands = s->cfg->n_commands;
	spec.sig = s->cfg->sig == CONNECT_SIG_V3 ? CONNECT_SIG_V3 : CONNECT_SIG_V2;
	spec.token = s->auth_token;
	spec.identity = s->id;
	params = connect_params_build(&spec, nonce, clock_wall_ms());
	snprintf(s->connect_id, sizeof(s->connect_id), "connect-%u", ++s->next_req);
	req = cJSON_CreateObject();
	if (!params || !req || !cJSON_AddStringToObject(req, "type", "req") ||
	    !cJSON_AddStringToObject(req, "id", s->connect_id) ||
	    !cJSON_AddStringToObject(req, "method", "connect")) {
		cJSON_Delete(params);
		cJSON_Delete(req);
		client_close(s->conn, 1011, "out of memory");
		return;
	}
	cJSON_AddItemToObject(req, "params", params);
	send_json(s->conn, req);
	cJSON_Delete(req);
	s->state = NODE_S_CONNECT_SENT;
}

/* Canned answers of a phone that is fine and shows notifications. */
static void answer_invoke(struct node_session *s, const cJSON *payload, struct node_event *ev)
{
	const char *id = json_str(payload, "id"), *cmd = json_str(payload, "command");
	char rid[32];
	cJSON *req = cJSON_CreateObject(), *p, *res;
	bool known = cmd && (!strcmp(cmd, "device.status") || !strcmp(cmd, "system.notify"));

	ev->command = cmd;
	snprintf(rid, sizeof(rid), "invoke-%u", ++s->next_req);
	if (!req || !id)
		goto out;
	cJSON_AddStringToObject(req, "type", "req");
	cJSON_AddStringToObject(req, "id", rid);
	cJSON_AddStringToObject(req, "method", "node.invoke.result");
	p = cJSON_AddObjectToObject(req, "params");
	if (!p)
		goto out;
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
	send_json(s->conn, req);
out:
	cJSON_Delete(req);
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
	type = json_str(f, "type");
	if (!f || !cJSON_IsObject(f) || !type) {
		cJSON_Delete(f);
		ev->kind = NODE_EV_GARBAGE;
		return;
	}
	ev->frame = f;
	ev->kind = NODE_EV_OTHER;
	if (!strcmp(type, "event")) {
		cJSON *payload = cJSON_GetObjectItemCaseSensitive(f, "payload");

		name = json_str(f, "event");
		if (!name)
			return;
		if (!strcmp(name, "connect.challenge") && s->state == NODE_S_OPENING) {
			const char *nonce = json_str(payload, "nonce");

			ev->kind = NODE_EV_CHALLENGE;
			send_connect(s, nonce ? nonce : "");
		} else if (!strcmp(name, "connect.pending")) {
			ev->kind = NODE_EV_PENDING;
			ev->request_id = json_str(payload, "requestId");
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
		const char *id = json_str(f, "id");
		cJSON *ok = cJSON_GetObjectItemCaseSensitive(f, "ok");
		cJSON *payload = cJSON_GetObjectItemCaseSensitive(f, "payload");

		if (!id || strcmp(id, s->connect_id))
			return;
		if (cJSON_IsTrue(ok)) {
			cJSON *auth = cJSON_GetObjectItemCaseSensitive(payload, "auth");

			ev->kind = NODE_EV_HELLO;
			ev->device_token = json_str(auth, "deviceToken");
			s->state = NODE_S_READY;
			s->t_hello = it->at_ms;
		} else {
			cJSON *err = cJSON_GetObjectItemCaseSensitive(f, "error");
			cJSON *details = cJSON_GetObjectItemCaseSensitive(err, "details");

			ev->kind = NODE_EV_ERROR;
			ev->error_code = json_str(err, "code");
			ev->message = json_str(err, "message");
			ev->details_code = json_str(details, "code");
			ev->request_id = json_str(details, "requestId");
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

bool node_error_is_auth(const char *details_code, const char *message, int close_code,
                        const char *close_reason)
{
	if (details_code && (!strcmp(details_code, "AUTH_TOKEN_MISMATCH") ||
	                     !strcmp(details_code, "AUTH_TOKEN_MISSING") ||
	                     !strncmp(details_code, "DEVICE_TOKEN", 12)))
		return true;
	if (message && !strncmp(message, "unauthorized", 12))
		return true;
	return close_code == 1008 && close_reason && !strncmp(close_reason, "unauthorized", 12);
}
