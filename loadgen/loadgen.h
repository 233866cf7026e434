/* loadgen.h: libclawpair-loadgen: many nodes and a few operators on one client loop, for load
 * and crash tests and for clawpair-bench: node handshakes (challenge, v2/v3 signature,
 * connect, pending or hello-ok) as non-blocking state machines, operators with pipelined
 * requests, and the /proc figures of the gateway under load. */
#ifndef CLAWPAIR_LOADGEN_H
#define CLAWPAIR_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "client.h"
#include "connect_build.h"
#include "identity.h"

/* RFC 6455 normal closure: a load client that is done leaves like any client. */
#define LOADGEN_CLOSE_NORMAL 1000

enum loadgen_node_state {
	LOADGEN_IDLE = 0,
	LOADGEN_OPENING, /* socket opening, waiting for connect.challenge */
	LOADGEN_SENT, /* connect sent */
	LOADGEN_PENDING, /* connect.pending received, held open */
	LOADGEN_HELLO, /* hello-ok received */
	LOADGEN_FAILED, /* error res or close before hello-ok */
	LOADGEN_CLOSED, /* closed after hello-ok or after loadgen_node_close */
};

struct loadgen_node_opts {
	const char *url;
	const char *token; /* auth.token; NULL: none */
	const char *role; /* "node" when NULL */
	const char *client_id; /* "openclaw-android" when NULL */
	const char *client_mode; /* "node" when NULL */
	int sig_version; /* 2 or 3; 0: 3 */
};

struct loadgen_node {
	struct identity id;
	struct client_conn *conn;
	enum loadgen_node_state state;
	char request_id[80]; /* from connect.pending */
	char device_token[128]; /* from hello-ok */
	int hello_count; /* hello-ok frames seen on this node, over its lifetime */
	int pending_count; /* connect.pending frames seen */
	int close_code;
	char error_code[64]; /* details.code of an error res */
	uint64_t t_open_us, t_pending_us, t_hello_us; /* clock_mono_us() */
};

/* Fresh identity from a counter (deterministic keys keep runs comparable). */
int loadgen_node_init(struct loadgen_node *n, uint32_t seed);

/* Starts the handshake (async); progress comes from loadgen_node_step. */
int loadgen_node_start(struct client_ctx *ctx, struct loadgen_node *n,
                       const struct loadgen_node_opts *o);
/* Consumes the items queued on the node's connection. Returns true when the state changed. */
bool loadgen_node_step(struct loadgen_node *n, const struct loadgen_node_opts *o);
/* True while the handshake is under way (OPENING or SENT). */
bool loadgen_node_busy(const struct loadgen_node *n);
/* Closes (normal closure) and frees the connection; the state becomes CLOSED unless FAILED. */
void loadgen_node_close(struct loadgen_node *n);

/* An operator: token only, no device. */
struct loadgen_res {
	uint64_t id; /* the numeric id given by loadgen_op_call */
	bool ok;
	cJSON *payload; /* owned by the res; NULL when absent */
	char error_code[64];
	uint64_t t_us;
};

struct loadgen_event {
	char name[64];
	cJSON *payload;
	int64_t seq;
};

typedef void (*loadgen_res_cb)(void *user, const struct loadgen_res *res);
typedef void (*loadgen_event_cb)(void *user, const struct loadgen_event *ev);

struct loadgen_op {
	struct client_conn *conn;
	uint64_t next_id;
	bool closed;
	int close_code;
	loadgen_res_cb on_res;
	loadgen_event_cb on_event;
	void *user;
};

/* The CLI's device-less operator connect as load programs and tests send it: client cli / cli
 * version 1.0.0 on linux, role operator, scopes only when scopes is not NULL, auth.token. */
void loadgen_operator_spec(struct connect_spec *s, const char *token, const char *const *scopes,
                           size_t n_scopes);
/* Connects and waits for hello-ok (timeout_ms). scopes: NULL for none sent. */
int loadgen_op_connect(struct client_ctx *ctx, struct loadgen_op *op, const char *url,
                       const char *token, const char *const *scopes, size_t n_scopes,
                       int timeout_ms, char *err, size_t errsz);
/* Sends a request; takes ownership of params. Returns the id (> 0), or 0 on failure. */
uint64_t loadgen_op_call(struct loadgen_op *op, const char *method, cJSON *params);
/* Sends a request whose res will carry the given id (> 0); takes ownership of params. Lets a
 * caller encode what the request was about in its id. Returns id, or 0 on failure. */
uint64_t loadgen_op_call_id(struct loadgen_op *op, uint64_t id, const char *method, cJSON *params);
/* Dispatches the queued items to on_res / on_event. Returns the number handled. */
size_t loadgen_op_step(struct loadgen_op *op);
/* Calls method and waits for its res (pumping everything). Returns 0 and the payload
 * (caller deletes) or -1 (error code in err). */
int loadgen_op_call_wait(struct client_ctx *ctx, struct loadgen_op *op, const char *method,
                         cJSON *params, int timeout_ms, cJSON **payload, char *err, size_t errsz);
void loadgen_op_close(struct loadgen_op *op);

/* details.code of an error object, else its code; "?" when it has neither. */
void loadgen_error_code(const cJSON *error, char *out, size_t outsz);

/* /proc figures of a process. */
struct loadgen_proc {
	long rss_kib; /* VmRSS */
	long fds; /* entries in /proc/PID/fd */
	uint64_t cpu_ticks; /* utime + stime */
};
int loadgen_proc_read(pid_t pid, struct loadgen_proc *out);

#endif
