/* node.c: one node's handshake as a non-blocking state machine: socket, connect.challenge,
 * signed connect, then connect.pending (held open), hello-ok or an error. */
#include "loadgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "connect_build.h"
#include "frame.h"
#include "json.h"

#define CONNECT_REQ_ID "c1"

static void copy_str(char *dst, size_t dstsz, const char *src)
{
	snprintf(dst, dstsz, "%s", src ? src : "");
}

int loadgen_node_init(struct loadgen_node *n, uint32_t seed)
{
	uint8_t s[IDENTITY_SEED_BYTES] = {0};

	memset(n, 0, sizeof(*n));
	/* Distinct from the all-zero test-vector key, stable across runs. */
	s[0] = 0xc1;
	s[1] = 0xa0;
	s[28] = (uint8_t)(seed >> 24);
	s[29] = (uint8_t)(seed >> 16);
	s[30] = (uint8_t)(seed >> 8);
	s[31] = (uint8_t)seed;
	return identity_from_seed(&n->id, s);
}

int loadgen_node_start(struct client_ctx *ctx, struct loadgen_node *n,
                       const struct loadgen_node_opts *o)
{
	struct client_conn_opts co = {.url = o->url, .connect_timeout_ms = 20000};

	if (n->conn) {
		client_conn_destroy(n->conn);
		n->conn = NULL;
	}
	n->request_id[0] = '\0';
	n->error_code[0] = '\0';
	n->close_code = 0;
	n->t_open_us = clock_mono_us();
	n->t_pending_us = n->t_hello_us = 0;
	n->state = LOADGEN_OPENING;
	if (client_connect_async(ctx, &co, &n->conn) != 0) {
		n->state = LOADGEN_FAILED;
		return -1;
	}
	return 0;
}

/* The connect of a load node: client {id, version 1.0.0, platform linux, mode}, role,
 * scopes [], auth.token when given, and the signed device. Bench figures are compared across
 * runs, so this shape stays fixed: the client.instanceId connect_params_build adds for a device
 * is left out. */
static int send_connect(struct loadgen_node *n, const struct loadgen_node_opts *o,
                        const char *nonce)
{
	struct connect_spec s = {
	        .role = o->role ? o->role : "node",
	        .client_id = o->client_id ? o->client_id : "openclaw-android",
	        .client_mode = o->client_mode ? o->client_mode : "node",
	        .platform = "linux",
	        .version = "1.0.0",
	        .caps_omit = true,
	        .commands_omit = true,
	        .token = o->token,
	        .identity = &n->id,
	        .sig = o->sig_version == 2 ? CONNECT_SIG_V2 : CONNECT_SIG_V3,
	        .nonce = CONNECT_NONCE_CHALLENGE,
	        .min_protocol = 3,
	        .max_protocol = 4,
	};
	cJSON *params = connect_params_build(&s, nonce, clock_wall_ms());
	char *text;
	int rc;

	if (!params)
		return -1;
	cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(params, "client"),
	                                        "instanceId");
	text = frame_build_req(CONNECT_REQ_ID, "connect", params);
	rc = text && client_send_text(n->conn, text) == 0 ? 0 : -1;
	free(text);
	return rc;
}

void loadgen_error_code(const cJSON *error, char *out, size_t outsz)
{
	const char *code =
	        json_get_string(cJSON_GetObjectItemCaseSensitive(error, "details"), "code");

	if (!code)
		code = json_get_string(error, "code");
	copy_str(out, outsz, code ? code : "?");
}

static void on_connect_res(struct loadgen_node *n, const struct frame *f)
{
	const char *rid;

	if (f->ok) {
		copy_str(n->device_token, sizeof(n->device_token),
		         json_get_string(cJSON_GetObjectItemCaseSensitive(f->payload, "auth"),
		                         "deviceToken"));
		n->hello_count++;
		n->t_hello_us = clock_mono_us();
		n->state = LOADGEN_HELLO;
		return;
	}
	loadgen_error_code(f->error, n->error_code, sizeof(n->error_code));
	/* OpenClaw 1.30 answers NOT_PAIRED with a requestId and closes. */
	rid = json_get_string(cJSON_GetObjectItemCaseSensitive(f->error, "details"), "requestId");
	if (rid)
		copy_str(n->request_id, sizeof(n->request_id), rid);
	n->state = LOADGEN_FAILED;
}

static void node_frame(struct loadgen_node *n, const struct loadgen_node_opts *o,
                       const struct frame *f)
{
	if (f->type == FRAME_EVENT && strcmp(f->event, "connect.challenge") == 0) {
		const char *nonce = json_get_string(f->payload, "nonce");

		if (n->state == LOADGEN_OPENING && nonce)
			n->state = send_connect(n, o, nonce) == 0 ? LOADGEN_SENT : LOADGEN_FAILED;
	} else if (f->type == FRAME_EVENT && strcmp(f->event, "connect.pending") == 0) {
		copy_str(n->request_id, sizeof(n->request_id),
		         json_get_string(f->payload, "requestId"));
		n->pending_count++;
		n->t_pending_us = clock_mono_us();
		if (n->state == LOADGEN_SENT)
			n->state = LOADGEN_PENDING;
	} else if (f->type == FRAME_RES && strcmp(f->id, CONNECT_REQ_ID) == 0) {
		on_connect_res(n, f);
	}
}

bool loadgen_node_step(struct loadgen_node *n, const struct loadgen_node_opts *o)
{
	enum loadgen_node_state before = n->state;
	struct client_item item;

	while (n->conn && client_pending_items(n->conn) > 0 &&
	       client_next(n->conn, 0, &item) == 1) {
		struct frame f;
		const char *why = NULL;

		if (item.kind == CLIENT_ITEM_CLOSE) {
			n->close_code = item.close_code;
			if (n->state == LOADGEN_HELLO)
				n->state = LOADGEN_CLOSED;
			else if (n->state != LOADGEN_CLOSED)
				n->state = LOADGEN_FAILED;
			client_item_finish(&item);
			break;
		}
		if (frame_parse(item.text, item.len, &f, &why) == 0) {
			node_frame(n, o, &f);
			frame_finish(&f);
		}
		client_item_finish(&item);
	}
	return n->state != before;
}

bool loadgen_node_busy(const struct loadgen_node *n)
{
	return n->state == LOADGEN_OPENING || n->state == LOADGEN_SENT;
}

void loadgen_node_close(struct loadgen_node *n)
{
	if (n->conn) {
		client_close(n->conn, LOADGEN_CLOSE_NORMAL, "done");
		client_conn_destroy(n->conn);
		n->conn = NULL;
	}
	if (n->state != LOADGEN_FAILED)
		n->state = LOADGEN_CLOSED;
}
