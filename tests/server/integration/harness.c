/* harness.c: integration-test helpers: the real gateway as a child process, and protocol steps
 * (challenge, signed connect, calls, waits) over the client library. */
#define _XOPEN_SOURCE 700
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "authpayload.h"

static long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool h_valgrind(void)
{
	const char *v = getenv("CLAWPAIR_VALGRIND");

	return v && *v && strcmp(v, "0") != 0;
}

int h_ms(int ms)
{
	return h_valgrind() ? ms * 10 : ms;
}

const char *h_build_path(const char *rel)
{
	static char bufs[4][4096];
	static unsigned next;
	const char *root = getenv("CLAWPAIR_BUILD_ROOT");
	char *b = bufs[next++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s/%s", root && *root ? root : ".", rel);
	return b;
}

static int status_of(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

/* --- the gateway process --- */

int h_gateway_start(struct h_gateway *g, const char *state_dir, const char *const *extra)
{
	const char *argv[64];
	size_t n = 0;
	int pfd[2];
	char buf[512];
	size_t got = 0;
	long deadline;

	memset(g, 0, sizeof(*g));
	g->pid = -1;
	g->out_fd = -1;
	if (state_dir) {
		snprintf(g->state_dir, sizeof(g->state_dir), "%s", state_dir);
	} else {
		snprintf(g->state_dir, sizeof(g->state_dir), "/tmp/clawpair-it-XXXXXX");
		if (!mkdtemp(g->state_dir))
			return -1;
		g->own_state = true;
	}
	if (h_valgrind()) {
		argv[n++] = "valgrind";
		argv[n++] = "--error-exitcode=99";
		argv[n++] = "--leak-check=full";
		argv[n++] = "--errors-for-leak-kinds=definite";
		argv[n++] = "-q";
	}
	argv[n++] = h_build_path("server/clawpair-gateway");
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--token";
	argv[n++] = H_TOKEN;
	argv[n++] = "--state-dir";
	argv[n++] = g->state_dir;
	argv[n++] = "--trusted-proxy";
	argv[n++] = "127.0.0.1";
	argv[n++] = "--log-level";
	argv[n++] = getenv("CLAWPAIR_GW_LOG") ? getenv("CLAWPAIR_GW_LOG") : "warn";
	for (size_t i = 0; extra && extra[i] && n < 62; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;

	if (pipe(pfd) < 0)
		return -1;
	g->pid = fork();
	if (g->pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (g->pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	g->out_fd = pfd[0];
	deadline = mono_ms() + h_ms(5000);
	while (got < sizeof(buf) - 1) {
		struct pollfd p = {.fd = g->out_fd, .events = POLLIN};
		long left = deadline - mono_ms();
		ssize_t r;
		char *nl, *colon;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		r = read(g->out_fd, buf + got, sizeof(buf) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		buf[got] = '\0';
		nl = strchr(buf, '\n');
		if (!nl)
			continue;
		*nl = '\0';
		if (strncmp(buf, "listening on ws://127.0.0.1:", 28) != 0)
			break;
		colon = strrchr(buf, ':');
		g->port = atoi(colon + 1);
		if (g->port <= 0)
			break;
		snprintf(g->url, sizeof(g->url), "ws://127.0.0.1:%d", g->port);
		return 0;
	}
	fprintf(stderr, "# gateway did not report its port (read: %.*s)\n", (int)got, buf);
	h_gateway_stop(g);
	return -1;
}

int h_gateway_stop(struct h_gateway *g)
{
	int st = 0;
	long deadline;

	if (g->pid <= 0)
		return -1;
	kill(g->pid, SIGTERM);
	deadline = mono_ms() + h_ms(10000);
	for (;;) {
		pid_t r = waitpid(g->pid, &st, WNOHANG);

		if (r == g->pid)
			break;
		if (r < 0) {
			st = -1;
			break;
		}
		if (mono_ms() > deadline) {
			kill(g->pid, SIGKILL);
			waitpid(g->pid, &st, 0);
			break;
		}
		usleep(10000);
	}
	g->pid = -1;
	if (g->out_fd >= 0)
		close(g->out_fd);
	g->out_fd = -1;
	return st < 0 ? -1 : status_of(st);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void h_rm_rf(const char *dir)
{
	if (dir && dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void h_gateway_cleanup(struct h_gateway *g)
{
	if (g->pid > 0)
		h_gateway_stop(g);
	if (g->own_state)
		h_rm_rf(g->state_dir);
	g->own_state = false;
}

long h_gateway_rss_kib(const struct h_gateway *g)
{
	char path[64], line[256];
	FILE *f;
	long kib = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)g->pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* --- connections --- */

int h_open(struct client_ctx *ctx, const struct h_gateway *g, const char *xff, struct h_conn *hc)
{
	struct client_conn_opts o = {0};
	char err[256];

	memset(hc, 0, sizeof(*hc));
	o.url = g->url;
	o.xff = xff;
	o.connect_timeout_ms = h_ms(5000);
	if (client_connect(ctx, &o, &hc->c, err, sizeof(err)) < 0) {
		fprintf(stderr, "# connect to %s failed: %s\n", g->url, err);
		return -1;
	}
	return 0;
}

void h_close(struct h_conn *hc)
{
	client_conn_destroy(hc->c);
	hc->c = NULL;
}

cJSON *h_next(struct h_conn *hc, int timeout_ms)
{
	struct client_item it;
	cJSON *j;

	if (hc->closed || !hc->c)
		return NULL;
	if (client_next(hc->c, timeout_ms, &it) != 1)
		return NULL;
	if (it.kind == CLIENT_ITEM_CLOSE) {
		hc->closed = true;
		hc->close_code = it.close_code;
		snprintf(hc->close_reason, sizeof(hc->close_reason), "%s", it.close_reason);
		client_item_finish(&it);
		return NULL;
	}
	j = cJSON_ParseWithLength(it.text, it.len);
	if (!j)
		fprintf(stderr, "# unparseable frame: %.*s\n", (int)it.len, it.text);
	client_item_finish(&it);
	return j;
}

static bool is_event(const cJSON *j, const char *name)
{
	const char *t = h_str(j, "type"), *e = h_str(j, "event");

	return t && strcmp(t, "event") == 0 && (!name || (e && strcmp(e, name) == 0));
}

cJSON *h_next_non_tick(struct h_conn *hc, int timeout_ms)
{
	long deadline = mono_ms() + timeout_ms;

	for (;;) {
		long left = deadline - mono_ms();
		cJSON *j = h_next(hc, left > 0 ? (int)left : 0);

		if (!j || !is_event(j, "tick"))
			return j;
		cJSON_Delete(j);
	}
}

cJSON *h_wait_event(struct h_conn *hc, const char *event, int timeout_ms)
{
	long deadline = mono_ms() + timeout_ms;

	for (;;) {
		long left = deadline - mono_ms();
		cJSON *j;

		if (left <= 0)
			return NULL;
		j = h_next(hc, (int)left);
		if (!j || is_event(j, event))
			return j;
		cJSON_Delete(j);
	}
}

cJSON *h_wait_res(struct h_conn *hc, const char *id, int timeout_ms)
{
	long deadline = mono_ms() + timeout_ms;

	for (;;) {
		long left = deadline - mono_ms();
		const char *t, *rid;
		cJSON *j;

		if (left <= 0)
			return NULL;
		j = h_next(hc, (int)left);
		if (!j)
			return NULL;
		t = h_str(j, "type");
		rid = h_str(j, "id");
		if (t && strcmp(t, "res") == 0 && rid && strcmp(rid, id) == 0)
			return j;
		if (!is_event(j, NULL))
			fprintf(stderr, "# skipped unexpected frame while waiting for res %s\n",
			        id);
		cJSON_Delete(j);
	}
}

int h_wait_close(struct h_conn *hc, int timeout_ms)
{
	long deadline = mono_ms() + timeout_ms;

	while (!hc->closed) {
		long left = deadline - mono_ms();
		cJSON *j;

		if (left <= 0)
			return -1;
		j = h_next(hc, (int)left);
		cJSON_Delete(j);
		if (!j && !hc->closed && mono_ms() >= deadline)
			return -1;
	}
	return hc->close_code;
}

bool h_quiet(struct h_conn *hc, const char *event, int ms)
{
	long deadline = mono_ms() + ms;

	for (;;) {
		long left = deadline - mono_ms();
		cJSON *j;

		if (left <= 0)
			return !hc->closed;
		j = h_next(hc, (int)left);
		if (!j)
			return !hc->closed;
		if (!is_event(j, "tick") && (!event || is_event(j, event))) {
			char *s = cJSON_PrintUnformatted(j);

			fprintf(stderr, "# unexpected frame: %s\n", s ? s : "?");
			free(s);
			cJSON_Delete(j);
			return false;
		}
		cJSON_Delete(j);
	}
}

int h_challenge(struct h_conn *hc, int timeout_ms)
{
	cJSON *j = h_next(hc, timeout_ms);
	const char *nonce = h_str(j, "payload.nonce");
	int rc = -1;

	if (is_event(j, "connect.challenge") && nonce && !h_get(j, "seq")) {
		snprintf(hc->nonce, sizeof(hc->nonce), "%s", nonce);
		rc = 0;
	} else {
		fprintf(stderr, "# no connect.challenge first\n");
	}
	cJSON_Delete(j);
	return rc;
}

static int send_json(struct h_conn *hc, cJSON *frame)
{
	char *s = cJSON_PrintUnformatted(frame);
	int rc = s ? client_send_text(hc->c, s) : -1;

	free(s);
	cJSON_Delete(frame);
	return rc;
}

int h_send_node_connect(struct h_conn *hc, const struct identity *id, const struct h_node_opts *o)
{
	static const struct h_node_opts defaults = {0};
	const char *token, *role, *nonce;
	struct authpayload_params ap = {0};
	char sig[IDENTITY_SIG_B64_LEN + 8];
	int64_t signed_at = wall_ms();
	cJSON *f, *p, *client, *dev, *auth;
	char *payload;

	if (!o)
		o = &defaults;
	token = o->token ? o->token : H_TOKEN;
	role = o->role ? o->role : "node";
	nonce = o->nonce ? o->nonce : hc->nonce;
	snprintf(hc->connect_id, sizeof(hc->connect_id), "%s", o->req_id ? o->req_id : "c1");

	ap.device_id = id->device_id;
	ap.client_id = "node-host";
	ap.client_mode = "node";
	ap.role = role;
	ap.signed_at_ms = signed_at;
	ap.token = token;
	ap.nonce = nonce;
	ap.platform = "linux";
	ap.device_family = "";
	payload = authpayload_build(o->sig_version == 2 ? AUTHPAYLOAD_V2 : AUTHPAYLOAD_V3, &ap);
	if (!payload || identity_sign(id, payload, sig, sizeof(sig)) < 0) {
		free(payload);
		return -1;
	}
	free(payload);

	f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "type", "req");
	cJSON_AddStringToObject(f, "id", hc->connect_id);
	cJSON_AddStringToObject(f, "method", "connect");
	p = cJSON_AddObjectToObject(f, "params");
	cJSON_AddNumberToObject(p, "minProtocol", 3);
	cJSON_AddNumberToObject(p, "maxProtocol", 4);
	client = cJSON_AddObjectToObject(p, "client");
	cJSON_AddStringToObject(client, "id", "node-host");
	cJSON_AddStringToObject(client, "displayName",
	                        o->display_name ? o->display_name : "integration node");
	cJSON_AddStringToObject(client, "version", "1.0.0");
	cJSON_AddStringToObject(client, "platform", "linux");
	cJSON_AddStringToObject(client, "mode", "node");
	cJSON_AddStringToObject(p, "role", role);
	cJSON_AddArrayToObject(p, "caps");
	cJSON_AddArrayToObject(p, "commands");
	dev = cJSON_AddObjectToObject(p, "device");
	cJSON_AddStringToObject(dev, "id", id->device_id);
	cJSON_AddStringToObject(dev, "publicKey", id->pk_b64);
	cJSON_AddStringToObject(dev, "signature", sig);
	cJSON_AddNumberToObject(dev, "signedAt", (double)signed_at);
	cJSON_AddStringToObject(dev, "nonce", nonce);
	auth = cJSON_AddObjectToObject(p, "auth");
	cJSON_AddStringToObject(auth, "token", token);
	return send_json(hc, f);
}

int h_node_begin(struct client_ctx *ctx, const struct h_gateway *g, const char *xff,
                 const struct identity *id, const struct h_node_opts *o, struct h_conn *hc)
{
	if (h_open(ctx, g, xff, hc) < 0)
		return -1;
	if (h_challenge(hc, h_ms(3000)) < 0)
		return -1;
	return h_send_node_connect(hc, id, o);
}

int h_operator(struct client_ctx *ctx, const struct h_gateway *g, const char *const *scopes,
               struct h_conn *hc)
{
	cJSON *f, *p, *client, *res;
	int rc = -1;

	if (h_open(ctx, g, NULL, hc) < 0 || h_challenge(hc, h_ms(3000)) < 0)
		return -1;
	snprintf(hc->connect_id, sizeof(hc->connect_id), "op-connect");
	f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "type", "req");
	cJSON_AddStringToObject(f, "id", hc->connect_id);
	cJSON_AddStringToObject(f, "method", "connect");
	p = cJSON_AddObjectToObject(f, "params");
	cJSON_AddNumberToObject(p, "minProtocol", 3);
	cJSON_AddNumberToObject(p, "maxProtocol", 4);
	client = cJSON_AddObjectToObject(p, "client");
	cJSON_AddStringToObject(client, "id", "cli");
	cJSON_AddStringToObject(client, "version", "1.0.0");
	cJSON_AddStringToObject(client, "platform", "linux");
	cJSON_AddStringToObject(client, "mode", "cli");
	cJSON_AddStringToObject(p, "role", "operator");
	if (scopes) {
		cJSON *arr = cJSON_AddArrayToObject(p, "scopes");

		for (size_t i = 0; scopes[i]; i++)
			cJSON_AddItemToArray(arr, cJSON_CreateString(scopes[i]));
	}
	cJSON_AddStringToObject(cJSON_AddObjectToObject(p, "auth"), "token", H_TOKEN);
	if (send_json(hc, f) < 0)
		return -1;
	res = h_wait_res(hc, hc->connect_id, h_ms(3000));
	if (h_is_res_ok(res) &&
	    strcmp(h_str(res, "payload.type") ? h_str(res, "payload.type") : "", "hello-ok") == 0)
		rc = 0;
	else
		fprintf(stderr, "# operator connect failed: %s\n", h_err_details_code(res));
	cJSON_Delete(res);
	return rc;
}

int h_send_req(struct h_conn *hc, const char *method, cJSON *params, char *id_out)
{
	cJSON *f = cJSON_CreateObject();

	snprintf(id_out, 32, "r%u", ++hc->next_req);
	cJSON_AddStringToObject(f, "type", "req");
	cJSON_AddStringToObject(f, "id", id_out);
	cJSON_AddStringToObject(f, "method", method);
	cJSON_AddItemToObject(f, "params", params ? params : cJSON_CreateObject());
	return send_json(hc, f);
}

cJSON *h_call(struct h_conn *hc, const char *method, cJSON *params, int timeout_ms)
{
	char id[32];

	if (h_send_req(hc, method, params, id) < 0)
		return NULL;
	return h_wait_res(hc, id, timeout_ms);
}

/* --- frame accessors --- */

const cJSON *h_get(const cJSON *obj, const char *path)
{
	char key[128];
	const char *p = path;

	while (obj && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);

		if (n >= sizeof(key))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		obj = cJSON_GetObjectItemCaseSensitive(obj, key);
		p += n + (dot ? 1 : 0);
	}
	return obj;
}

const char *h_str(const cJSON *obj, const char *path)
{
	const cJSON *v = h_get(obj, path);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool h_is_res_ok(const cJSON *res)
{
	return cJSON_IsTrue(h_get(res, "ok"));
}

const char *h_err_code(const cJSON *res)
{
	const char *s = h_str(res, "error.code");

	return s ? s : "";
}

const char *h_err_details_code(const cJSON *res)
{
	const char *s = h_str(res, "error.details.code");

	return s ? s : "";
}

/* --- running a CLI --- */

int h_run(char *const argv[], int timeout_ms, char **out)
{
	int pfd[2], st = 0;
	pid_t pid;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	long deadline = mono_ms() + timeout_ms;
	bool killed = false;

	*out = NULL;
	if (pipe(pfd) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null >= 0)
			dup2(null, 0);
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		long left = deadline - mono_ms();
		ssize_t r;

		if (left <= 0) {
			kill(pid, SIGKILL);
			killed = true;
			break;
		}
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		if (len + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 8192);

			if (!nb)
				break;
			buf = nb;
		}
		r = read(pfd[0], buf + len, 4096);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(pfd[0]);
	waitpid(pid, &st, 0);
	if (!buf)
		buf = calloc(1, 1);
	else
		buf[len] = '\0';
	*out = buf;
	return killed ? -1 : status_of(st);
}
