/* operator.c: a token-only operator on the load loop: connect, pipelined requests whose answers
 * and events go to callbacks, and a blocking call for the few that need the answer now. */
#include "loadgen.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "connect_build.h"
#include "frame.h"

#define OP_CONNECT_ID "c1"

void loadgen_operator_spec(struct connect_spec *s, const char *token, const char *const *scopes,
                           size_t n_scopes)
{
	connect_spec_operator(s);
	s->version = "1.0.0";
	s->locale = NULL;
	s->user_agent = NULL;
	s->scopes_omit = scopes == NULL;
	s->scopes = scopes;
	s->n_scopes = scopes ? n_scopes : 0;
	s->token = token;
}

static char *operator_connect(const char *token, const char *const *scopes, size_t n_scopes)
{
	struct connect_spec s;

	loadgen_operator_spec(&s, token ? token : "", scopes, n_scopes);
	return connect_request_build(OP_CONNECT_ID, &s, NULL, clock_wall_ms());
}

/* One frame during the connect: 0 go on, 1 hello-ok, -1 refused or unsendable. */
static int connect_frame(struct loadgen_op *op, const struct frame *f, const char *token,
                         const char *const *scopes, size_t n_scopes, bool *sent, char *err,
                         size_t errsz)
{
	if (!*sent && f->type == FRAME_EVENT && strcmp(f->event, "connect.challenge") == 0) {
		char *text = operator_connect(token, scopes, n_scopes);

		*sent = text && client_send_text(op->conn, text) == 0;
		free(text);
		if (!*sent)
			snprintf(err, errsz, "operator connect could not be sent");
		return *sent ? 0 : -1;
	}
	if (f->type == FRAME_RES && strcmp(f->id, OP_CONNECT_ID) == 0) {
		char code[64];

		if (f->ok)
			return 1;
		loadgen_error_code(f->error, code, sizeof(code));
		snprintf(err, errsz, "operator connect refused: %s", code);
		return -1;
	}
	return 0;
}

int loadgen_op_connect(struct client_ctx *ctx, struct loadgen_op *op, const char *url,
                       const char *token, const char *const *scopes, size_t n_scopes,
                       int timeout_ms, char *err, size_t errsz)
{
	struct client_conn_opts co = {.url = url, .connect_timeout_ms = timeout_ms};
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;
	bool sent = false;

	memset(op, 0, sizeof(*op));
	if (client_connect(ctx, &co, &op->conn, err, errsz) != 0)
		return -1;
	while (clock_mono_ms() < deadline) {
		int left = (int)(deadline - clock_mono_ms());
		struct client_item item;
		struct frame f;
		const char *why = NULL;
		int done = 0;

		if (client_next(op->conn, left > 0 ? left : 1, &item) != 1)
			continue;
		if (item.kind == CLIENT_ITEM_CLOSE) {
			snprintf(err, errsz, "closed %d %s", item.close_code, item.close_reason);
			client_item_finish(&item);
			return -1;
		}
		if (frame_parse(item.text, item.len, &f, &why) == 0) {
			done = connect_frame(op, &f, token, scopes, n_scopes, &sent, err, errsz);
			frame_finish(&f);
		}
		client_item_finish(&item);
		if (done)
			return done > 0 ? 0 : -1;
	}
	snprintf(err, errsz, "operator connect timed out");
	return -1;
}

uint64_t loadgen_op_call_id(struct loadgen_op *op, uint64_t id, const char *method, cJSON *params)
{
	char sid[32];
	char *text;
	int rc;

	snprintf(sid, sizeof(sid), "o%" PRIu64, id);
	text = frame_build_req(sid, method, params ? params : cJSON_CreateObject());
	rc = text ? client_send_text(op->conn, text) : -1;
	free(text);
	return rc == 0 ? id : 0;
}

uint64_t loadgen_op_call(struct loadgen_op *op, const char *method, cJSON *params)
{
	return loadgen_op_call_id(op, ++op->next_id, method, params);
}

static void op_frame(struct loadgen_op *op, const struct frame *f)
{
	if (f->type == FRAME_RES && f->id[0] == 'o' && op->on_res) {
		struct loadgen_res r = {.id = strtoull(f->id + 1, NULL, 10),
		                        .ok = f->ok,
		                        .payload = f->payload,
		                        .t_us = clock_mono_us()};

		if (!f->ok)
			loadgen_error_code(f->error, r.error_code, sizeof(r.error_code));
		op->on_res(op->user, &r);
	} else if (f->type == FRAME_EVENT && op->on_event) {
		struct loadgen_event ev = {.payload = f->payload, .seq = f->seq};

		snprintf(ev.name, sizeof(ev.name), "%s", f->event);
		op->on_event(op->user, &ev);
	}
}

size_t loadgen_op_step(struct loadgen_op *op)
{
	size_t handled = 0;
	struct client_item item;

	while (op->conn && !op->closed && client_pending_items(op->conn) > 0 &&
	       client_next(op->conn, 0, &item) == 1) {
		struct frame f;
		const char *why = NULL;

		handled++;
		if (item.kind == CLIENT_ITEM_CLOSE) {
			op->closed = true;
			op->close_code = item.close_code;
			client_item_finish(&item);
			break;
		}
		if (frame_parse(item.text, item.len, &f, &why) == 0) {
			op_frame(op, &f);
			frame_finish(&f);
		}
		client_item_finish(&item);
	}
	return handled;
}

/* loadgen_op_call_wait's handlers in front of the caller's: the awaited res is kept, every
 * other answer and event still reaches the caller. */
struct call_wait {
	uint64_t id;
	bool done, ok;
	cJSON *payload;
	char code[64];
	loadgen_res_cb prev;
	loadgen_event_cb prev_event;
	void *prev_user;
};

static void call_wait_event(void *user, const struct loadgen_event *ev)
{
	struct call_wait *w = user;

	if (w->prev_event)
		w->prev_event(w->prev_user, ev);
}

static void call_wait_res(void *user, const struct loadgen_res *r)
{
	struct call_wait *w = user;

	if (r->id != w->id) {
		if (w->prev)
			w->prev(w->prev_user, r);
		return;
	}
	w->done = true;
	w->ok = r->ok;
	w->payload = r->payload ? cJSON_Duplicate(r->payload, 1) : NULL;
	snprintf(w->code, sizeof(w->code), "%s", r->error_code);
}

int loadgen_op_call_wait(struct client_ctx *ctx, struct loadgen_op *op, const char *method,
                         cJSON *params, int timeout_ms, cJSON **payload, char *err, size_t errsz)
{
	struct call_wait w = {
	        .prev = op->on_res, .prev_event = op->on_event, .prev_user = op->user};
	uint64_t deadline;

	op->on_res = call_wait_res;
	op->on_event = call_wait_event;
	op->user = &w;
	w.id = loadgen_op_call(op, method, params);
	deadline = clock_mono_ms() + (uint64_t)timeout_ms;
	while (w.id && !w.done && !op->closed && clock_mono_ms() < deadline) {
		client_service(ctx, 5);
		loadgen_op_step(op);
	}
	op->on_res = w.prev;
	op->on_event = w.prev_event;
	op->user = w.prev_user;
	if (!w.done) {
		snprintf(err, errsz, "%s: %s", method,
		         op->closed ? "connection closed" : "timeout");
		return -1;
	}
	if (!w.ok) {
		snprintf(err, errsz, "%s: %s", method, w.code);
		cJSON_Delete(w.payload);
		return -1;
	}
	if (payload)
		*payload = w.payload;
	else
		cJSON_Delete(w.payload);
	return 0;
}

void loadgen_op_close(struct loadgen_op *op)
{
	if (op->conn) {
		client_close(op->conn, LOADGEN_CLOSE_NORMAL, "done");
		client_conn_destroy(op->conn);
		op->conn = NULL;
	}
	op->closed = true;
}
