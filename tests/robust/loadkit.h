/* loadkit.h: many nodes and a few operators on one client loop, for the crash, load and bench
 * programs: node handshakes (challenge, v2/v3 signature, connect, pending or hello-ok), operator
 * calls with pipelined requests, and spawning/measuring a gateway process. */
#ifndef CLAWPAIR_LOADKIT_H
#define CLAWPAIR_LOADKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "client.h"
#include "identity.h"

enum loadkit_node_state {
	LOADKIT_IDLE = 0,
	LOADKIT_OPENING, /* socket opening, waiting for connect.challenge */
	LOADKIT_SENT, /* connect sent */
	LOADKIT_PENDING, /* connect.pending received, held open */
	LOADKIT_HELLO, /* hello-ok received */
	LOADKIT_FAILED, /* error res or close before hello-ok */
	LOADKIT_CLOSED, /* closed after hello-ok or after loadkit_node_close */
};

struct loadkit_node_opts {
	const char *url;
	const char *token; /* auth.token; NULL: none */
	const char *role; /* "node" when NULL */
	const char *client_id; /* "openclaw-android" when NULL */
	const char *client_mode; /* "node" when NULL */
	int sig_version; /* 2 or 3; 0: 3 */
};

struct loadkit_node {
	struct identity id;
	struct client_conn *conn;
	enum loadkit_node_state state;
	char request_id[80]; /* from connect.pending */
	char device_token[128]; /* from hello-ok */
	int hello_count; /* hello-ok frames seen on this node, over its lifetime */
	int pending_count; /* connect.pending frames seen */
	int close_code;
	char error_code[64]; /* details.code of an error res */
	uint64_t t_open_us, t_pending_us, t_hello_us;
};

/* Monotonic microseconds. */
uint64_t loadkit_now_us(void);

/* Fresh identity from a counter (deterministic keys keep runs comparable). */
int loadkit_node_init(struct loadkit_node *n, uint32_t seed);

/* Starts the handshake (async); progress comes from loadkit_node_step. */
int loadkit_node_start(struct client_ctx *ctx, struct loadkit_node *n,
                       const struct loadkit_node_opts *o);
/* Consumes the items queued on the node's connection. Returns true when the state changed. */
bool loadkit_node_step(struct loadkit_node *n, const struct loadkit_node_opts *o);
/* Closes (code 1000) and frees the connection; the state becomes CLOSED unless FAILED. */
void loadkit_node_close(struct loadkit_node *n);

/* An operator: token only, no device. */
struct loadkit_res {
	uint64_t id; /* the numeric id given by loadkit_op_call */
	bool ok;
	cJSON *payload; /* owned by the res; NULL when absent */
	char error_code[64];
	uint64_t t_us;
};

struct loadkit_event {
	char name[64];
	cJSON *payload;
	int64_t seq;
};

typedef void (*loadkit_res_cb)(void *user, const struct loadkit_res *res);
typedef void (*loadkit_event_cb)(void *user, const struct loadkit_event *ev);

struct loadkit_op {
	struct client_conn *conn;
	uint64_t next_id;
	bool closed;
	int close_code;
	loadkit_res_cb on_res;
	loadkit_event_cb on_event;
	void *user;
};

/* Connects and waits for hello-ok (timeout_ms). scopes: NULL for none sent. */
int loadkit_op_connect(struct client_ctx *ctx, struct loadkit_op *op, const char *url,
                       const char *token, const char *const *scopes, size_t n_scopes,
                       int timeout_ms, char *err, size_t errsz);
/* Sends a request; takes ownership of params. Returns the id (> 0), or 0 on failure. */
uint64_t loadkit_op_call(struct loadkit_op *op, const char *method, cJSON *params);
/* Dispatches the queued items to on_res / on_event. Returns the number handled. */
size_t loadkit_op_step(struct loadkit_op *op);
/* Calls method and waits for its res (pumping everything). Returns 0 and the payload
 * (caller deletes) or -1 (error code in err). */
int loadkit_op_call_wait(struct client_ctx *ctx, struct loadkit_op *op, const char *method,
                         cJSON *params, int timeout_ms, cJSON **payload, char *err, size_t errsz);
void loadkit_op_close(struct loadkit_op *op);

/* A gateway child process. */
struct loadkit_gateway {
	pid_t pid;
	char url[128];
	int port;
	int out_fd; /* the gateway's stdout */
};

/* Starts exe with args (NULL-terminated, argv[0] excluded) then "--listen 127.0.0.1:PORT"
 * (port 0: any); waits for the "listening on ws://" line (timeout_ms). Stdout/stderr of the
 * gateway go to log_path (appended) when not NULL. */
int loadkit_gateway_start(struct loadkit_gateway *gw, const char *exe, const char *const *args,
                          int port, const char *log_path, int timeout_ms, char *err, size_t errsz);
/* Sends sig, waits for the exit. Returns the wait status, or -1. */
int loadkit_gateway_stop(struct loadkit_gateway *gw, int sig, int timeout_ms);

/* /proc figures of a process. */
struct loadkit_proc {
	long rss_kib; /* VmRSS */
	long fds; /* entries in /proc/PID/fd */
	uint64_t cpu_ticks; /* utime + stime */
};
int loadkit_proc_read(pid_t pid, struct loadkit_proc *out);

#endif
