/* session.c: the gateway session of session.h: challenge, connect and its outcome, calls, and the
 * events kept while waiting for something else. */
#include "session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "frame.h"
#include "json.h"

/* Events kept for wait_event beyond this drop the oldest (ticks pile up on long sessions). */
#define MAX_KEPT 1024

struct client_session {
	struct client_ctx *ctx;
	struct client_conn *conn;
	struct client_conn_opts conn_opts;
	int timeout_ms;
	char connect_id[64];
	char id_prefix[32];
	unsigned next_id;
	cJSON *frame; /* behind the last outcome */
	cJSON *kept; /* events, oldest first */
	size_t n_kept;
	bool closed;
	int close_code;
	char close_reason[128];
	char why[256];
};

__attribute__((format(printf, 2, 3))) static void set_why(struct client_session *s, const char *fmt,
                                                          ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
}

static void clear_outcome(struct client_session *s)
{
	cJSON_Delete(s->frame);
	s->frame = NULL;
	s->why[0] = '\0';
}

struct client_session *client_session_create(struct client_ctx *ctx,
                                             const struct client_session_opts *opts)
{
	struct client_session *s;

	if (!ctx)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->kept = cJSON_CreateArray();
	if (!s->kept) {
		free(s);
		return NULL;
	}
	s->ctx = ctx;
	if (opts)
		s->conn_opts = opts->conn;
	s->timeout_ms =
	        opts && opts->timeout_ms > 0 ? opts->timeout_ms : CLIENT_SESSION_DEFAULT_TIMEOUT_MS;
	snprintf(s->connect_id, sizeof(s->connect_id), "%s",
	         opts && opts->connect_id ? opts->connect_id : "connect");
	snprintf(s->id_prefix, sizeof(s->id_prefix), "%s",
	         opts && opts->id_prefix ? opts->id_prefix : "req");
	return s;
}

void client_session_destroy(struct client_session *s)
{
	if (!s)
		return;
	client_conn_destroy(s->conn);
	cJSON_Delete(s->frame);
	cJSON_Delete(s->kept);
	free(s);
}

static uint64_t deadline_in(int timeout_ms)
{
	return clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
}

static void note_close(struct client_session *s, const struct client_item *it)
{
	s->closed = true;
	s->close_code = it->close_code;
	snprintf(s->close_reason, sizeof(s->close_reason), "%s", it->close_reason);
}

/* The next JSON object from the gateway before deadline: 1 with *out (owned), 0 on timeout, -1
 * once the connection is closed (why says so). Messages that are not JSON objects are skipped. */
static int next_frame(struct client_session *s, uint64_t deadline, cJSON **out)
{
	for (;;) {
		struct client_item it;
		uint64_t now = clock_mono_ms();
		cJSON *j;

		if (s->closed) {
			set_why(s, "connection closed (%d%s%s)", s->close_code,
			        s->close_reason[0] ? " " : "", s->close_reason);
			return -1;
		}
		if (now >= deadline)
			return 0;
		if (client_next(s->conn, (int)(deadline - now), &it) != 1)
			continue;
		if (it.kind == CLIENT_ITEM_CLOSE) {
			note_close(s, &it);
			client_item_finish(&it);
			continue;
		}
		j = it.binary ? NULL : cJSON_ParseWithLength(it.text, it.len);
		client_item_finish(&it);
		if (cJSON_IsObject(j)) {
			*out = j;
			return 1;
		}
		cJSON_Delete(j);
	}
}

static bool is_event(const cJSON *j, const char *name)
{
	const char *type = json_get_string(j, "type"), *ev = json_get_string(j, "event");

	return type && !strcmp(type, "event") && ev && (!name || !strcmp(ev, name));
}

static bool is_res(const cJSON *j, const char *id)
{
	const char *type = json_get_string(j, "type"), *rid = json_get_string(j, "id");

	return type && !strcmp(type, "res") && rid && !strcmp(rid, id);
}

/* Keeps an event for wait_event; anything else is dropped. Takes ownership of j. */
static void keep(struct client_session *s, cJSON *j)
{
	if (!is_event(j, NULL)) {
		cJSON_Delete(j);
		return;
	}
	if (s->n_kept == MAX_KEPT) {
		cJSON_DeleteItemFromArray(s->kept, 0);
		s->n_kept--;
	}
	cJSON_AddItemToArray(s->kept, j);
	s->n_kept++;
}

static void why_refused(struct client_session *s, const cJSON *res)
{
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(res, "error");
	const char *code = json_get_string(err, "code"), *msg = json_get_string(err, "message");
	const char *dcode =
	        json_get_string(cJSON_GetObjectItemCaseSensitive(err, "details"), "code");

	set_why(s, "%s: %s%s%s%s", code ? code : "?", msg ? msg : "", dcode ? " (" : "",
	        dcode ? dcode : "", dcode ? ")" : "");
}

enum client_session_outcome client_session_await(struct client_session *s, int timeout_ms)
{
	uint64_t deadline = deadline_in(timeout_ms);
	cJSON *j;
	int rc;

	clear_outcome(s);
	if (!s->conn) {
		set_why(s, "not connected");
		return CLIENT_SESSION_FAILED;
	}
	while ((rc = next_frame(s, deadline, &j)) == 1) {
		if (is_res(j, s->connect_id)) {
			bool ok = false;

			s->frame = j;
			if (json_get_bool(j, "ok", &ok) && ok)
				return CLIENT_SESSION_HELLO;
			why_refused(s, j);
			return CLIENT_SESSION_REFUSED;
		}
		if (is_event(j, "connect.pending")) {
			s->frame = j;
			return CLIENT_SESSION_PENDING;
		}
		keep(s, j);
	}
	if (rc < 0)
		return CLIENT_SESSION_CLOSED;
	set_why(s, "no answer within %d ms", timeout_ms);
	return CLIENT_SESSION_TIMEOUT;
}

/* Waits for connect.challenge and answers it. Returns -1 with the outcome in *fail. */
static int answer_challenge(struct client_session *s, const struct connect_spec *spec,
                            enum client_session_outcome *fail)
{
	cJSON *ch = NULL;
	const char *nonce;
	char *req;
	int rc = next_frame(s, deadline_in(s->timeout_ms), &ch);

	*fail = CLIENT_SESSION_NO_CHALLENGE;
	if (rc == 0)
		set_why(s, "no answer within %d ms", s->timeout_ms);
	if (rc != 1)
		return -1;
	nonce = json_get_string(cJSON_GetObjectItemCaseSensitive(ch, "payload"), "nonce");
	if (!is_event(ch, "connect.challenge") || !nonce) {
		s->frame = ch;
		set_why(s, "another frame came first");
		return -1;
	}
	req = connect_request_build(s->connect_id, spec, nonce, clock_wall_ms());
	cJSON_Delete(ch);
	*fail = CLIENT_SESSION_FAILED;
	if (!req) {
		set_why(s, "cannot build the connect request");
		return -1;
	}
	rc = client_send_text(s->conn, req);
	free(req);
	if (rc < 0) {
		set_why(s, "connection lost");
		return -1;
	}
	return 0;
}

enum client_session_outcome client_session_connect(struct client_session *s,
                                                   const struct connect_spec *spec)
{
	struct client_conn_opts o = s->conn_opts;
	enum client_session_outcome fail;
	char err[256];

	clear_outcome(s);
	if (s->conn) {
		set_why(s, "connect was already sent on this session");
		return CLIENT_SESSION_FAILED;
	}
	if (!o.connect_timeout_ms)
		o.connect_timeout_ms = s->timeout_ms;
	if (client_connect(s->ctx, &o, &s->conn, err, sizeof(err)) < 0) {
		s->conn = NULL;
		set_why(s, "%s", err);
		return CLIENT_SESSION_UNREACHABLE;
	}
	if (answer_challenge(s, spec, &fail) < 0)
		return fail;
	return client_session_await(s, s->timeout_ms);
}

cJSON *client_session_call(struct client_session *s, const char *method, cJSON *params,
                           int timeout_ms)
{
	char id[64], *text;
	uint64_t deadline;
	cJSON *j;
	int rc;

	s->why[0] = '\0';
	if (!s->conn) {
		cJSON_Delete(params);
		set_why(s, "not connected");
		return NULL;
	}
	snprintf(id, sizeof(id), "%s-%u", s->id_prefix, ++s->next_id);
	text = frame_build_req(id, method, params);
	if (!text) {
		set_why(s, "cannot build the %s request", method ? method : "(null)");
		return NULL;
	}
	rc = client_send_text(s->conn, text);
	free(text);
	if (rc < 0) {
		set_why(s, "connection lost");
		return NULL;
	}
	deadline = deadline_in(timeout_ms);
	while ((rc = next_frame(s, deadline, &j)) == 1) {
		if (is_res(j, id))
			return j;
		keep(s, j);
	}
	if (rc == 0)
		set_why(s, "no answer within %d ms", timeout_ms);
	return NULL;
}

static cJSON *take_kept(struct client_session *s, const char *name)
{
	int i = 0;
	cJSON *j;

	cJSON_ArrayForEach(j, s->kept)
	{
		if (is_event(j, name)) {
			s->n_kept--;
			return cJSON_DetachItemFromArray(s->kept, i);
		}
		i++;
	}
	return NULL;
}

cJSON *client_session_wait_event(struct client_session *s, const char *name, int timeout_ms)
{
	uint64_t deadline = deadline_in(timeout_ms);
	cJSON *j = take_kept(s, name);
	int rc;

	s->why[0] = '\0';
	if (j)
		return j;
	if (!s->conn) {
		set_why(s, "not connected");
		return NULL;
	}
	while ((rc = next_frame(s, deadline, &j)) == 1) {
		if (is_event(j, name))
			return j;
		keep(s, j);
	}
	if (rc == 0)
		set_why(s, "no %s event within %d ms", name, timeout_ms);
	return NULL;
}

const cJSON *client_session_frame(const struct client_session *s)
{
	return s ? s->frame : NULL;
}

const char *client_session_why(const struct client_session *s)
{
	return s ? s->why : "";
}

int client_session_close_code(const struct client_session *s)
{
	return s && s->closed ? s->close_code : 0;
}

const char *client_session_close_reason(const struct client_session *s)
{
	return s && s->closed ? s->close_reason : "";
}

bool client_session_is_open(const struct client_session *s)
{
	return s && s->conn && !s->closed && client_is_open(s->conn);
}

struct client_conn *client_session_conn(const struct client_session *s)
{
	return s ? s->conn : NULL;
}

const char *client_session_outcome_name(enum client_session_outcome o)
{
	static const char *const names[] = {
	        [CLIENT_SESSION_HELLO] = "hello",
	        [CLIENT_SESSION_PENDING] = "pending",
	        [CLIENT_SESSION_REFUSED] = "refused",
	        [CLIENT_SESSION_CLOSED] = "closed",
	        [CLIENT_SESSION_TIMEOUT] = "timeout",
	        [CLIENT_SESSION_NO_CHALLENGE] = "no-challenge",
	        [CLIENT_SESSION_UNREACHABLE] = "unreachable",
	        [CLIENT_SESSION_FAILED] = "failed",
	};

	return (unsigned)o < sizeof(names) / sizeof(names[0]) && names[o] ? names[o] : "?";
}
