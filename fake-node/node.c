/* node.c: the fake node: its connect (as its client profile sends it) and invoke answers, device
 * tokens, session state. */
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "json.h"

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
	const struct profile *p = s->cfg->profile;
	struct connect_spec spec;
	char *req;

	connect_spec_android(&spec);
	if (p) {
		spec.role = p->role;
		spec.client_id = p->client_id;
		spec.client_mode = p->client_mode;
		spec.platform = p->platform;
		spec.device_family = p->device_family;
		spec.version = p->version;
		spec.scopes = p->scopes;
		spec.n_scopes = p->n_scopes;
		spec.min_protocol = p->min_protocol;
		spec.max_protocol = p->max_protocol;
	}
	if (p && p->policy != PROFILE_POLICY_ANDROID)
		spec.model_identifier = NULL; /* only the app sends one */
	if (s->cfg->display_name)
		spec.display_name = s->cfg->display_name;
	spec.commands = s->cfg->commands;
	spec.n_commands = s->cfg->n_commands;
	spec.sig = s->cfg->sig == CONNECT_SIG_V3 || (p && p->sig == 3) ? CONNECT_SIG_V3
	                                                               : CONNECT_SIG_V2;
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
	s->t_connect = clock_mono_ms();
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
			ev->details_reason = json_get_string(details, "reason");
			ev->next_step = json_get_string(details, "recommendedNextStep");
			ev->no_pause = cJSON_IsFalse(
			        cJSON_GetObjectItemCaseSensitive(details, "pauseReconnect"));
			ev->retryable =
			        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(err, "retryable"));
			ev->retry_after_ms = -1;
			{
				const cJSON *ra =
				        cJSON_GetObjectItemCaseSensitive(err, "retryAfterMs");

				if (cJSON_IsNumber(ra) && ra->valuedouble >= 0 &&
				    ra->valuedouble < 86400000)
					ev->retry_after_ms = (int)ra->valuedouble;
			}
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
