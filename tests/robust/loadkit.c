/* loadkit.c: node handshakes, operator calls and gateway processes for the load programs. */
#include "loadkit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "authpayload.h"
#include "frame.h"

uint64_t loadkit_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void copy_str(char *dst, size_t dstsz, const char *src)
{
	snprintf(dst, dstsz, "%s", src ? src : "");
}

int loadkit_node_init(struct loadkit_node *n, uint32_t seed)
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

int loadkit_node_start(struct client_ctx *ctx, struct loadkit_node *n,
                       const struct loadkit_node_opts *o)
{
	struct client_conn_opts co = {.url = o->url, .connect_timeout_ms = 20000};
	if (n->conn) {
		client_conn_destroy(n->conn);
		n->conn = NULL;
	}
	n->request_id[0] = '\0';
	n->error_code[0] = '\0';
	n->close_code = 0;
	n->t_open_us = loadkit_now_us();
	n->t_pending_us = n->t_hello_us = 0;
	n->state = LOADKIT_OPENING;
	if (client_connect_async(ctx, &co, &n->conn) != 0) {
		n->state = LOADKIT_FAILED;
		return -1;
	}
	return 0;
}

static int send_connect(struct loadkit_node *n, const struct loadkit_node_opts *o,
                        const char *nonce)
{
	const char *role = o->role ? o->role : "node";
	const char *client_id = o->client_id ? o->client_id : "openclaw-android";
	const char *mode = o->client_mode ? o->client_mode : "node";
	int ver = o->sig_version ? o->sig_version : 3;
	int64_t signed_at = (int64_t)wall_ms();
	int rc = -1;
	char sig[IDENTITY_SIG_B64_LEN + 8];
	char *payload = NULL, *text = NULL;
	struct authpayload_params ap = {
	        .device_id = n->id.device_id,
	        .client_id = client_id,
	        .client_mode = mode,
	        .role = role,
	        .scopes = NULL,
	        .n_scopes = 0,
	        .signed_at_ms = signed_at,
	        .token = o->token,
	        .nonce = nonce,
	        .platform = "linux",
	        .device_family = "",
	};
	payload = authpayload_build(ver == 2 ? AUTHPAYLOAD_V2 : AUTHPAYLOAD_V3, &ap);
	if (!payload || identity_sign(&n->id, payload, sig, sizeof(sig)) != 0)
		goto cleanup;

	cJSON *params = cJSON_CreateObject();
	cJSON_AddNumberToObject(params, "minProtocol", 3);
	cJSON_AddNumberToObject(params, "maxProtocol", 4);
	cJSON *client = cJSON_AddObjectToObject(params, "client");
	cJSON_AddStringToObject(client, "id", client_id);
	cJSON_AddStringToObject(client, "version", "1.0.0");
	cJSON_AddStringToObject(client, "platform", "linux");
	cJSON_AddStringToObject(client, "mode", mode);
	cJSON_AddStringToObject(params, "role", role);
	cJSON_AddArrayToObject(params, "scopes");
	if (o->token) {
		cJSON *auth = cJSON_AddObjectToObject(params, "auth");
		cJSON_AddStringToObject(auth, "token", o->token);
	}
	cJSON *dev = cJSON_AddObjectToObject(params, "device");
	cJSON_AddStringToObject(dev, "id", n->id.device_id);
	cJSON_AddStringToObject(dev, "publicKey", n->id.pk_b64);
	cJSON_AddStringToObject(dev, "signature", sig);
	cJSON_AddNumberToObject(dev, "signedAt", (double)signed_at);
	cJSON_AddStringToObject(dev, "nonce", nonce);
	text = frame_build_req("c1", "connect", params);
	if (!text || client_send_text(n->conn, text) != 0)
		goto cleanup;
	rc = 0;
cleanup:
	free(payload);
	free(text);
	return rc;
}

static void error_code_of(cJSON *error, char *out, size_t outsz)
{
	cJSON *details = cJSON_GetObjectItemCaseSensitive(error, "details");
	cJSON *code = cJSON_GetObjectItemCaseSensitive(details, "code");
	if (!cJSON_IsString(code))
		code = cJSON_GetObjectItemCaseSensitive(error, "code");
	copy_str(out, outsz, cJSON_IsString(code) ? code->valuestring : "?");
}

static void node_frame(struct loadkit_node *n, const struct loadkit_node_opts *o,
                       const struct frame *f)
{
	if (f->type == FRAME_EVENT && strcmp(f->event, "connect.challenge") == 0) {
		cJSON *nonce = cJSON_GetObjectItemCaseSensitive(f->payload, "nonce");
		if (n->state == LOADKIT_OPENING && cJSON_IsString(nonce)) {
			if (send_connect(n, o, nonce->valuestring) == 0)
				n->state = LOADKIT_SENT;
			else
				n->state = LOADKIT_FAILED;
		}
	} else if (f->type == FRAME_EVENT && strcmp(f->event, "connect.pending") == 0) {
		cJSON *rid = cJSON_GetObjectItemCaseSensitive(f->payload, "requestId");
		copy_str(n->request_id, sizeof(n->request_id),
		         cJSON_IsString(rid) ? rid->valuestring : "");
		n->pending_count++;
		n->t_pending_us = loadkit_now_us();
		if (n->state == LOADKIT_SENT)
			n->state = LOADKIT_PENDING;
	} else if (f->type == FRAME_RES && strcmp(f->id, "c1") == 0) {
		if (f->ok) {
			cJSON *auth = cJSON_GetObjectItemCaseSensitive(f->payload, "auth");
			cJSON *tok = cJSON_GetObjectItemCaseSensitive(auth, "deviceToken");
			copy_str(n->device_token, sizeof(n->device_token),
			         cJSON_IsString(tok) ? tok->valuestring : "");
			n->hello_count++;
			n->t_hello_us = loadkit_now_us();
			n->state = LOADKIT_HELLO;
		} else {
			error_code_of(f->error, n->error_code, sizeof(n->error_code));
			/* OpenClaw 1.30 answers NOT_PAIRED with a requestId and closes. */
			cJSON *details = cJSON_GetObjectItemCaseSensitive(f->error, "details");
			cJSON *rid = cJSON_GetObjectItemCaseSensitive(details, "requestId");
			if (cJSON_IsString(rid))
				copy_str(n->request_id, sizeof(n->request_id), rid->valuestring);
			n->state = LOADKIT_FAILED;
		}
	}
}

bool loadkit_node_step(struct loadkit_node *n, const struct loadkit_node_opts *o)
{
	enum loadkit_node_state before = n->state;
	struct client_item item;
	while (n->conn && client_pending_items(n->conn) > 0 &&
	       client_next(n->conn, 0, &item) == 1) {
		if (item.kind == CLIENT_ITEM_CLOSE) {
			n->close_code = item.close_code;
			if (n->state == LOADKIT_HELLO)
				n->state = LOADKIT_CLOSED;
			else if (n->state != LOADKIT_CLOSED)
				n->state = LOADKIT_FAILED;
			client_item_finish(&item);
			break;
		}
		struct frame f;
		const char *why = NULL;
		if (frame_parse(item.text, item.len, &f, &why) == 0) {
			node_frame(n, o, &f);
			frame_finish(&f);
		}
		client_item_finish(&item);
	}
	return n->state != before;
}

void loadkit_node_close(struct loadkit_node *n)
{
	if (n->conn) {
		client_close(n->conn, 1000, "done");
		client_conn_destroy(n->conn);
		n->conn = NULL;
	}
	if (n->state != LOADKIT_FAILED)
		n->state = LOADKIT_CLOSED;
}

uint64_t loadkit_op_call(struct loadkit_op *op, const char *method, cJSON *params)
{
	char id[32];
	uint64_t n = ++op->next_id;
	snprintf(id, sizeof(id), "o%" PRIu64, n);
	char *text = frame_build_req(id, method, params ? params : cJSON_CreateObject());
	int rc = text ? client_send_text(op->conn, text) : -1;
	free(text);
	return rc == 0 ? n : 0;
}

size_t loadkit_op_step(struct loadkit_op *op)
{
	size_t handled = 0;
	struct client_item item;
	while (op->conn && !op->closed && client_pending_items(op->conn) > 0 &&
	       client_next(op->conn, 0, &item) == 1) {
		handled++;
		if (item.kind == CLIENT_ITEM_CLOSE) {
			op->closed = true;
			op->close_code = item.close_code;
			client_item_finish(&item);
			break;
		}
		struct frame f;
		const char *why = NULL;
		if (frame_parse(item.text, item.len, &f, &why) == 0) {
			if (f.type == FRAME_RES && f.id[0] == 'o' && op->on_res) {
				struct loadkit_res r = {.id = strtoull(f.id + 1, NULL, 10),
				                        .ok = f.ok,
				                        .payload = f.payload,
				                        .t_us = loadkit_now_us()};
				if (!f.ok)
					error_code_of(f.error, r.error_code, sizeof(r.error_code));
				op->on_res(op->user, &r);
			} else if (f.type == FRAME_EVENT && op->on_event) {
				struct loadkit_event ev = {.payload = f.payload, .seq = f.seq};
				copy_str(ev.name, sizeof(ev.name), f.event);
				op->on_event(op->user, &ev);
			}
			frame_finish(&f);
		}
		client_item_finish(&item);
	}
	return handled;
}

int loadkit_op_connect(struct client_ctx *ctx, struct loadkit_op *op, const char *url,
                       const char *token, const char *const *scopes, size_t n_scopes,
                       int timeout_ms, char *err, size_t errsz)
{
	struct client_conn_opts co = {.url = url, .connect_timeout_ms = timeout_ms};
	struct client_item item;
	uint64_t deadline = client_now_ms() + (uint64_t)timeout_ms;
	memset(op, 0, sizeof(*op));
	if (client_connect(ctx, &co, &op->conn, err, errsz) != 0)
		return -1;
	bool sent = false;
	while (client_now_ms() < deadline) {
		int left = (int)(deadline - client_now_ms());
		if (client_next(op->conn, left > 0 ? left : 1, &item) != 1)
			continue;
		if (item.kind == CLIENT_ITEM_CLOSE) {
			snprintf(err, errsz, "closed %d %s", item.close_code, item.close_reason);
			client_item_finish(&item);
			return -1;
		}
		struct frame f;
		const char *why = NULL;
		int done = 0;
		if (frame_parse(item.text, item.len, &f, &why) == 0) {
			if (!sent && f.type == FRAME_EVENT &&
			    strcmp(f.event, "connect.challenge") == 0) {
				cJSON *p = cJSON_CreateObject();
				cJSON_AddNumberToObject(p, "minProtocol", 3);
				cJSON_AddNumberToObject(p, "maxProtocol", 4);
				cJSON *c = cJSON_AddObjectToObject(p, "client");
				cJSON_AddStringToObject(c, "id", "cli");
				cJSON_AddStringToObject(c, "version", "1.0.0");
				cJSON_AddStringToObject(c, "platform", "linux");
				cJSON_AddStringToObject(c, "mode", "cli");
				cJSON_AddStringToObject(p, "role", "operator");
				if (scopes) {
					cJSON *s = cJSON_AddArrayToObject(p, "scopes");
					for (size_t i = 0; i < n_scopes; i++)
						cJSON_AddItemToArray(s,
						                     cJSON_CreateString(scopes[i]));
				}
				cJSON *a = cJSON_AddObjectToObject(p, "auth");
				cJSON_AddStringToObject(a, "token", token ? token : "");
				char *text = frame_build_req("c1", "connect", p);
				sent = text && client_send_text(op->conn, text) == 0;
				free(text);
			} else if (f.type == FRAME_RES && strcmp(f.id, "c1") == 0) {
				if (f.ok) {
					done = 1;
				} else {
					char code[64];
					error_code_of(f.error, code, sizeof(code));
					snprintf(err, errsz, "operator connect refused: %s", code);
					done = -1;
				}
			}
			frame_finish(&f);
		}
		client_item_finish(&item);
		if (done)
			return done > 0 ? 0 : -1;
	}
	snprintf(err, errsz, "operator connect timed out");
	return -1;
}

struct call_wait {
	uint64_t id;
	bool done, ok;
	cJSON *payload;
	char code[64];
	loadkit_res_cb prev;
	loadkit_event_cb prev_event;
	void *prev_user;
};

static void call_wait_event(void *user, const struct loadkit_event *ev)
{
	struct call_wait *w = user;
	if (w->prev_event)
		w->prev_event(w->prev_user, ev);
}

static void call_wait_res(void *user, const struct loadkit_res *r)
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
	copy_str(w->code, sizeof(w->code), r->error_code);
}

int loadkit_op_call_wait(struct client_ctx *ctx, struct loadkit_op *op, const char *method,
                         cJSON *params, int timeout_ms, cJSON **payload, char *err, size_t errsz)
{
	struct call_wait w = {
	        .prev = op->on_res, .prev_event = op->on_event, .prev_user = op->user};
	void *user = op->user;
	loadkit_res_cb cb = op->on_res;
	loadkit_event_cb ecb = op->on_event;
	/* Other answers and events that arrive meanwhile still reach the caller's handlers. */
	op->on_res = call_wait_res;
	op->on_event = call_wait_event;
	op->user = &w;
	w.id = loadkit_op_call(op, method, params);
	uint64_t deadline = client_now_ms() + (uint64_t)timeout_ms;
	while (w.id && !w.done && !op->closed && client_now_ms() < deadline) {
		client_service(ctx, 5);
		loadkit_op_step(op);
	}
	op->on_res = cb;
	op->user = user;
	op->on_event = ecb;
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

void loadkit_op_close(struct loadkit_op *op)
{
	if (op->conn) {
		client_close(op->conn, 1000, "done");
		client_conn_destroy(op->conn);
		op->conn = NULL;
	}
	op->closed = true;
}

int loadkit_gateway_start(struct loadkit_gateway *gw, const char *exe, const char *const *args,
                          int port, const char *log_path, int timeout_ms, char *err, size_t errsz)
{
	int pfd[2];
	char listen[64];
	const char *argv[64];
	size_t n = 0;
	memset(gw, 0, sizeof(*gw));
	gw->out_fd = -1;
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	/* --listen goes last: args may be a wrapper's (valgrind's) options plus the gateway. */
	argv[n++] = exe;
	for (size_t i = 0; args && args[i] && n < 61; i++)
		argv[n++] = args[i];
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n] = NULL;
	if (pipe(pfd) != 0) {
		snprintf(err, errsz, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errsz, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		int logfd = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644)
		                     : open("/dev/null", O_WRONLY);
		dup2(pfd[1], STDOUT_FILENO);
		if (logfd >= 0)
			dup2(logfd, STDERR_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		/* The parent's client sockets must not live on in the gateway. */
		long maxfd = sysconf(_SC_OPEN_MAX);
		for (long fd = 3; fd < (maxfd > 0 ? maxfd : 1024); fd++)
			close((int)fd);
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	fcntl(pfd[0], F_SETFD, FD_CLOEXEC);
	gw->pid = pid;
	/* Read stdout until the listening line. */
	char buf[4096];
	size_t len = 0;
	uint64_t deadline = client_now_ms() + (uint64_t)timeout_ms;
	int rc = -1;
	while (client_now_ms() < deadline) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		int left = (int)(deadline - client_now_ms());
		if (poll(&p, 1, left > 0 ? left : 1) <= 0)
			continue;
		ssize_t r = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
		if (r <= 0) {
			snprintf(err, errsz, "gateway exited before listening");
			break;
		}
		len += (size_t)r;
		buf[len] = '\0';
		char *at = strstr(buf, "listening on ws://");
		if (at && strchr(at, '\n')) {
			char *colon = strrchr(strtok(at, "\n"), ':');
			gw->port = colon ? atoi(colon + 1) : 0;
			snprintf(gw->url, sizeof(gw->url), "ws://127.0.0.1:%d", gw->port);
			rc = gw->port > 0 ? 0 : -1;
			break;
		}
		if (len >= sizeof(buf) - 1)
			len = 0;
	}
	if (rc != 0 && !err[0])
		snprintf(err, errsz, "gateway did not print its listening line in time");
	/* Kept open (not read) until stop: the gateway prints only its listening lines there, and
	 * closing the pipe early would turn a later print into SIGPIPE. */
	gw->out_fd = pfd[0];
	if (rc != 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		gw->pid = 0;
		close(gw->out_fd);
		gw->out_fd = -1;
	}
	return rc;
}

int loadkit_gateway_stop(struct loadkit_gateway *gw, int sig, int timeout_ms)
{
	int status = -1;
	if (gw->pid <= 0)
		return -1;
	kill(gw->pid, sig);
	uint64_t deadline = client_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		pid_t r = waitpid(gw->pid, &status, WNOHANG);
		if (r == gw->pid)
			break;
		if (r < 0) {
			status = -1;
			break;
		}
		if (client_now_ms() > deadline) {
			kill(gw->pid, SIGKILL);
			waitpid(gw->pid, &status, 0);
			break;
		}
		usleep(2000);
	}
	gw->pid = 0;
	if (gw->out_fd >= 0)
		close(gw->out_fd);
	gw->out_fd = -1;
	return status;
}

int loadkit_proc_read(pid_t pid, struct loadkit_proc *out)
{
	char path[64], line[512];
	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			out->rss_kib = strtol(line + 6, NULL, 10);
	fclose(f);

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	char stat[1024];
	size_t n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	/* Fields after the parenthesised comm: state is field 3, utime 14, stime 15. */
	char *p = strrchr(stat, ')');
	unsigned long long ut = 0, st = 0;
	if (p &&
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
		out->cpu_ticks = ut + st;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			out->fds++;
	closedir(d);
	return 0;
}
