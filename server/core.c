/* core.c: the I/O-free core's connections: open (locality, challenge), message dispatch, close,
 * timers (handshake timeout, pending expiry, ticks), shutdown, and the send/fail helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "core_internal.h"

void core_logf(struct core *core, enum core_log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!core->io.log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	core->io.log(core->io.user, level, line);
}

/* Frames and closes that wait for the store (PERSIST-3): while a change is not durable, nothing
 * goes out, so no reply, event or hello-ok can speak of it early; core_flush makes the batch
 * durable and then releases them in order. */
struct core_deferred {
	struct core_deferred *next;
	struct core_conn *conn; /* NULL once the connection is gone */
	char *text; /* NULL: a close */
	bool response;
	int code;
	char reason[128];
};

static bool deferring(const struct core *core)
{
	return core->def_head || store_unflushed(core->store) > 0;
}

static struct core_deferred *defer(struct core *core, struct core_conn *conn)
{
	struct core_deferred *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->conn = conn;
	conn->n_deferred++;
	*(core->def_head ? &core->def_tail->next : &core->def_head) = d;
	core->def_tail = d;
	return d;
}

static void deliver(struct core *core, struct core_conn *conn, const char *text, bool response)
{
	void (*send)(void *, void *, const char *, size_t) =
	        response && core->io.send_response ? core->io.send_response : core->io.send;

	send(core->io.user, conn->user, text, strlen(text));
}

static void send_frame(struct core *core, struct core_conn *conn, char *text, bool response)
{
	struct core_deferred *d;

	if (!text) {
		core_logf(core, CORE_LOG_ERROR, "conn %s: out of memory building a frame",
		          conn->id);
		return;
	}
	if (conn->closing) {
		free(text);
		return;
	}
	if (!deferring(core)) {
		deliver(core, conn, text, response);
		free(text);
		return;
	}
	d = defer(core, conn);
	if (!d) {
		core_logf(core, CORE_LOG_ERROR, "conn %s: out of memory queueing a frame",
		          conn->id);
		free(text);
		return;
	}
	d->text = text;
	d->response = response;
}

int core_flush(struct core *core)
{
	struct core_deferred *d, *next;
	int rc;

	if (!core)
		return 0;
	rc = store_flush(core->store);
	if (rc < 0)
		core_logf(core, CORE_LOG_ERROR,
		          "store: %s: nothing since the last flush is on disk",
		          store_last_error(core->store));
	d = core->def_head;
	core->def_head = core->def_tail = NULL;
	for (; d; d = next) {
		next = d->next;
		if (d->conn) {
			d->conn->n_deferred--;
			/* After a failed flush nothing that waited for it may be sent. */
			if (rc == 0 && d->text)
				deliver(core, d->conn, d->text, d->response);
			else if (rc == 0)
				core->io.close(core->io.user, d->conn->user, d->code, d->reason);
		}
		free(d->text);
		free(d);
	}
	return rc;
}

bool core_flush_due(const struct core *core)
{
	return core && deferring(core);
}

void core_send_text(struct core *core, struct core_conn *conn, char *text)
{
	send_frame(core, conn, text, false);
}

void core_send_event(struct core *core, struct core_conn *conn, const char *event, cJSON *payload,
                     bool with_seq)
{
	if (conn->closing) {
		cJSON_Delete(payload);
		return;
	}
	core_send_text(core, conn, frame_build_event(event, payload, with_seq ? ++conn->seq : -1));
}

void core_send_ok(struct core *core, struct core_conn *conn, const char *id, cJSON *payload)
{
	if (conn->closing) {
		cJSON_Delete(payload);
		return;
	}
	send_frame(core, conn, frame_build_res_ok(id, payload), true);
}

void core_close(struct core *core, struct core_conn *conn, int code, const char *reason)
{
	char cut[128];

	if (conn->closing)
		return;
	frame_close_reason(reason ? reason : "", cut, sizeof(cut));
	core_index_remove(core, conn);
	conn->closing = true;
	if (deferring(core)) {
		struct core_deferred *d = defer(core, conn);

		if (d) {
			d->code = code;
			snprintf(d->reason, sizeof(d->reason), "%s", cut);
			return;
		}
	}
	core->io.close(core->io.user, conn->user, code, cut);
}

void core_fail(struct core *core, struct core_conn *conn, const char *id, enum cp_err err,
               const char *message, cJSON *extra, const char *close_reason)
{
	const struct cp_err_info *info = cp_err_info(err);

	if (!info || conn->closing) {
		cJSON_Delete(extra);
		return;
	}
	core_logf(core, CORE_LOG_WARN, "conn %s ip %s: rejected: %s: %s", conn->id, conn->ip,
	          info->details_code, message ? message : info->message);
	if (info->wire_code && id)
		send_frame(core, conn, frame_build_res_err(id, err, message, extra), true);
	else
		cJSON_Delete(extra);
	if (info->close_code)
		core_close(core, conn, info->close_code,
		           close_reason ? close_reason : info->close_reason);
}

void core_broadcast_pairing(struct core *core, const char *event, cJSON *payload)
{
	for (struct core_conn *c = core->ops, *next; c; c = next) {
		next = c->op_next; /* a failed send may close c and unlink it */
		if (!core_conn_has_scope(c, "operator.pairing") &&
		    !core_conn_has_scope(c, "operator.admin"))
			continue;
		core_send_event(core, c, event, cJSON_Duplicate(payload, true), true);
	}
	cJSON_Delete(payload);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void free_config(struct core *core)
{
	free((char *)core->cfg.token);
	free((char *)core->cfg.server_version);
	free((char *)core->cfg.server_host);
	free(core->trusted);
}

static uint64_t or_default(uint64_t v, uint64_t def)
{
	return v ? v : def;
}

static void apply_defaults(struct core_config *c)
{
	c->pending_ttl_ms = or_default(c->pending_ttl_ms, CORE_DEFAULT_PENDING_TTL_MS);
	c->handshake_timeout_ms =
	        or_default(c->handshake_timeout_ms, CORE_DEFAULT_HANDSHAKE_TIMEOUT_MS);
	c->tick_interval_ms = or_default(c->tick_interval_ms, CORE_DEFAULT_TICK_INTERVAL_MS);
	c->max_pending = (unsigned)or_default(c->max_pending, CORE_DEFAULT_MAX_PENDING);
	c->max_pending_per_ip =
	        (unsigned)or_default(c->max_pending_per_ip, CORE_DEFAULT_MAX_PENDING_PER_IP);
	c->max_preauth_per_ip =
	        (unsigned)or_default(c->max_preauth_per_ip, CORE_DEFAULT_MAX_PREAUTH_PER_IP);
	c->max_payload = (size_t)or_default(c->max_payload, CORE_DEFAULT_MAX_PAYLOAD);
}

int core_create(const struct core_config *cfg, const struct core_io *io, struct store *store,
                uint64_t now_ms, struct core **out)
{
	struct core *core;

	*out = NULL;
	if (!cfg || !io || !io->send || !io->close || !store || sodium_init() < 0)
		return -1;
	core = calloc(1, sizeof(*core));
	if (!core)
		return -1;
	core->cfg = *cfg;
	core->cfg.token = dup_or_null(cfg->token);
	core->cfg.server_version = strdup(cfg->server_version ? cfg->server_version : "dev");
	core->cfg.server_host = strdup(cfg->server_host ? cfg->server_host : "clawpair");
	core->cfg.trusted_proxies = NULL;
	if (cfg->n_trusted_proxies) {
		core->trusted = calloc(cfg->n_trusted_proxies, sizeof(*core->trusted));
		if (!core->trusted)
			goto fail;
		for (size_t i = 0; i < cfg->n_trusted_proxies; i++) {
			const char *a = cfg->trusted_proxies[i];

			if (!a || !locality_addr_parse(a, strlen(a), &core->trusted[i]))
				goto fail; /* the caller checks addresses with locality_addr_parse */
		}
	}
	if ((cfg->token && !core->cfg.token) || !core->cfg.server_version || !core->cfg.server_host)
		goto fail;
	apply_defaults(&core->cfg);
	core->io = *io;
	core->store = store;
	core->started_ms = now_ms;
	core->next_tick_ms = now_ms + core->cfg.tick_interval_ms;
	core->preauth_scan_ms = UINT64_MAX;
	core->expiry_scan_ms = 0; /* requests loaded from the store: look at the first run */
	core_index_note_stored_requests(core);
	*out = core;
	return 0;
fail:
	free_config(core);
	free(core);
	return -1;
}

static void conn_free(struct core_conn *conn)
{
	free(conn->connect_id);
	cJSON_Delete(conn->scopes);
	cJSON_Delete(conn->live);
	free(conn);
}

void core_destroy(struct core *core)
{
	if (!core)
		return;
	while (core->def_head) {
		struct core_deferred *d = core->def_head;

		core->def_head = d->next;
		free(d->text);
		free(d);
	}
	while (core->conns) {
		struct core_conn *c = core->conns;

		core->conns = c->next;
		conn_free(c);
	}
	core_index_free(core);
	free_config(core);
	free(core);
}

static void resolve_peer(const struct core *core, struct core_conn *conn,
                         const struct core_peer *peer)
{
	const char *ip = peer && peer->ip ? peer->ip : "";
	struct locality_headers h = {0};
	struct locality_result r;
	struct locality_addr a;

	if (peer) {
		h.x_forwarded_for = peer->xff;
		h.x_real_ip = peer->real_ip;
		h.forwarded = peer->forwarded;
		h.x_forwarded_host = peer->forwarded_host;
		h.origin = peer->origin;
	}
	locality_resolve(ip, &h, core->trusted, core->cfg.n_trusted_proxies, &r);
	snprintf(conn->peer_ip, sizeof(conn->peer_ip), "%s", ip);
	snprintf(conn->ip, sizeof(conn->ip), "%s", r.client);
	conn->local = peer && r.local;
	conn->client_loopback = locality_addr_parse(r.client, strlen(r.client), &a) &&
	                        locality_addr_is_loopback(&a);
	conn->locality_why = r.why;
}

struct core_conn *core_conn_open(struct core *core, void *conn_user, const struct core_peer *peer,
                                 uint64_t now_ms)
{
	struct core_conn *conn = calloc(1, sizeof(*conn));
	cJSON *payload;

	if (!conn)
		return NULL;
	conn->user = conn_user;
	conn->state = CONN_PREAUTH;
	uuid_v4(conn->id);
	uuid_v4(conn->nonce);
	resolve_peer(core, conn, peer);
	conn->handshake_deadline = now_ms + core->cfg.handshake_timeout_ms;
	core_note_preauth_deadline(core, conn->handshake_deadline);
	conn->next = core->conns;
	if (core->conns)
		core->conns->prev = conn;
	core->conns = conn;
	core_index_add(core, conn);
	core_logf(core, CORE_LOG_DEBUG, "conn %s open: peer %s client %s (%s: %s)", conn->id,
	          conn->peer_ip, conn->ip, conn->local ? "local" : "remote", conn->locality_why);
	if (core->shutting_down) {
		core_fail(core, conn, NULL, CP_ERR_SHUTDOWN, NULL, NULL, NULL);
		return conn;
	}
	core_limit_preauth(core, conn, now_ms);
	payload = cJSON_CreateObject();
	if (payload) {
		cJSON_AddStringToObject(payload, "nonce", conn->nonce);
		cJSON_AddNumberToObject(payload, "ts", (double)now_ms);
	}
	core_send_event(core, conn, "connect.challenge", payload, false);
	return conn;
}

void core_conn_message(struct core *core, struct core_conn *conn, const char *data, size_t len,
                       bool binary, uint64_t now_ms)
{
	struct frame f;
	const char *why = NULL;

	if (!core || !conn || conn->closing)
		return;
	if (len > core->cfg.max_payload) {
		core_fail(core, conn, NULL, CP_ERR_PAYLOAD_TOO_LARGE, NULL, NULL, NULL);
		return;
	}
	if (binary || !data) {
		core_fail(core, conn, NULL, CP_ERR_INVALID_FRAME, "binary message", NULL, NULL);
		return;
	}
	if (frame_parse(data, len, &f, &why) < 0) {
		core_fail(core, conn, NULL, CP_ERR_INVALID_FRAME, why, NULL, NULL);
		return;
	}
	if (f.type != FRAME_REQ) {
		core_fail(core, conn, NULL, CP_ERR_INVALID_FRAME, "not a request", NULL, NULL);
		goto done;
	}
	switch (conn->state) {
	case CONN_PREAUTH:
		if (strcmp(f.method, "connect") != 0)
			core_fail(core, conn, f.id, CP_ERR_INVALID_HANDSHAKE, NULL, NULL, NULL);
		else
			core_handle_connect(core, conn, &f, now_ms);
		break;
	case CONN_HELD:
		/* Waiting for an operator: nothing but the outcome may happen on this socket. */
		if (strcmp(f.method, "connect") == 0)
			core_fail(core, conn, f.id, CP_ERR_CONNECT_AGAIN, NULL, NULL, NULL);
		else
			core_fail(core, conn, f.id, CP_ERR_UNAUTHORIZED_ROLE,
			          "unauthorized: pairing pending", NULL, NULL);
		break;
	case CONN_AUTHED:
		core_handle_request(core, conn, &f, now_ms);
		break;
	}
done:
	frame_finish(&f);
}

void core_conn_closed(struct core *core, struct core_conn *conn, uint64_t now_ms)
{
	(void)now_ms;
	if (!core || !conn)
		return;
	/* A held request outlives its socket: the device may come back before the TTL. */
	core_index_remove(core, conn);
	for (struct core_deferred *d = core->def_head; conn->n_deferred && d; d = d->next) {
		if (d->conn == conn) {
			d->conn = NULL;
			conn->n_deferred--;
		}
	}
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		core->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	core_logf(core, CORE_LOG_DEBUG, "conn %s closed", conn->id);
	conn_free(conn);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Expiring a request costs a durable store write and events to every operator: thousands due at
 * once would stall the loop for seconds. At most this many go per timer run; the next run comes as
 * soon as the loop has served the sockets. */
#define CORE_EXPIRY_BATCH 64

static uint64_t run_expiry(struct core *core, uint64_t now_ms)
{
	uint64_t next = UINT64_MAX;
	size_t n = store_count(core->store, STORE_PENDING), n_due = 0;
	char due[CORE_EXPIRY_BATCH][CORE_UUID_LEN + 1];

	for (size_t i = 0; i < n; i++) {
		const cJSON *rec = store_at(core->store, STORE_PENDING, i);
		uint64_t exp = core_json_u64(rec, "expiresAtMs");

		if (exp > now_ms) {
			next = min_u64(next, exp);
			continue;
		}
		if (n_due == CORE_EXPIRY_BATCH) {
			next = now_ms; /* more are due: the next run takes them */
			break;
		}
		snprintf(due[n_due++], sizeof(due[0]), "%s", json_get_string(rec, "requestId"));
	}
	for (size_t i = 0; i < n_due; i++)
		if (core_expire_request(core, due[i], now_ms) < 0)
			next = min_u64(next, now_ms + 1000); /* store write failed: retry soon */

	/* OpenClaw's separate node store has the same TTL, and nothing answers for it. */
	n = store_count(core->store, STORE_COMPAT_NODE_PENDING);
	for (size_t i = 0; i < n;) {
		const cJSON *rec = store_at(core->store, STORE_COMPAT_NODE_PENDING, i);
		uint64_t exp = core_json_u64(rec, "expiresAtMs");

		if (exp > now_ms) {
			next = min_u64(next, exp);
			i++;
			continue;
		}
		if (store_remove(core->store, STORE_COMPAT_NODE_PENDING,
		                 json_get_string(rec, "requestId")) != 0) {
			next = min_u64(next, now_ms + 1000);
			i++;
			continue;
		}
		n--;
	}
	return next;
}

void core_note_preauth_deadline(struct core *core, uint64_t ms)
{
	core->preauth_scan_ms = min_u64(core->preauth_scan_ms, ms);
}

void core_note_expiry(struct core *core, uint64_t ms)
{
	core->expiry_scan_ms = min_u64(core->expiry_scan_ms, ms);
}

uint64_t core_run_timers(struct core *core, uint64_t now_ms)
{
	if (!core)
		return UINT64_MAX;
	if (now_ms >= core->preauth_scan_ms) {
		uint64_t next = UINT64_MAX;

		for (struct core_conn *c = core->conns; c; c = c->next) {
			if (c->closing || c->state != CONN_PREAUTH)
				continue;
			if (now_ms >= c->handshake_deadline)
				core_fail(core, c, NULL, CP_ERR_HANDSHAKE_TIMEOUT, NULL, NULL,
				          NULL);
			else
				next = min_u64(next, c->handshake_deadline);
		}
		core->preauth_scan_ms = next;
	}
	if (now_ms >= core->expiry_scan_ms)
		core->expiry_scan_ms = run_expiry(core, now_ms);
	if (now_ms >= core->next_tick_ms) {
		for (struct core_conn *c = core->conns; c; c = c->next) {
			cJSON *p;

			if (c->closing || c->state == CONN_PREAUTH)
				continue;
			p = cJSON_CreateObject();
			if (p)
				cJSON_AddNumberToObject(p, "ts", (double)now_ms);
			core_send_event(core, c, "tick", p, true);
		}
		core->next_tick_ms = now_ms + core->cfg.tick_interval_ms;
	}
	return min_u64(min_u64(core->preauth_scan_ms, core->expiry_scan_ms), core->next_tick_ms);
}

void core_shutdown(struct core *core, uint64_t now_ms)
{
	(void)now_ms;
	if (!core)
		return;
	core->shutting_down = true;
	for (struct core_conn *c = core->conns; c; c = c->next) {
		if (c->closing)
			continue;
		core_fail(core, c, c->state == CONN_HELD ? c->connect_id : NULL, CP_ERR_SHUTDOWN,
		          NULL, NULL, NULL);
	}
}

bool core_conn_authenticated(const struct core_conn *conn)
{
	return conn && !conn->closing && conn->state == CONN_AUTHED;
}

bool core_conn_unfinished(const struct core_conn *conn)
{
	return conn && (conn->closing || conn->state == CONN_PREAUTH);
}

void core_get_stats(const struct core *core, struct core_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!core)
		return;
	for (const struct core_conn *c = core->conns; c; c = c->next) {
		out->conns++;
		if (c->closing)
			continue;
		if (c->state == CONN_PREAUTH)
			out->preauth++;
		else if (c->state == CONN_HELD)
			out->held_open++;
		else
			out->authed++;
	}
	out->pending_requests = store_count(core->store, STORE_PENDING);
	out->paired_devices = store_count(core->store, STORE_PAIRED);
}
