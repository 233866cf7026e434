/* gateway.h: test helper: the real clawpair-gateway as a child process on 127.0.0.1: started
 * with the options a test needs, on a fresh or a kept state directory, stopped with a signal. */
#ifndef CLAWPAIR_TEST_GATEWAY_H
#define CLAWPAIR_TEST_GATEWAY_H

#include <stdbool.h>

#include "spawn.h"

struct kit_gateway_opts {
	const char *exe; /* NULL: build_path("server/clawpair-gateway") */
	int port; /* --listen 127.0.0.1:port; 0: any free port */
	const char *state_dir; /* NULL: a fresh temp dir owned by the gateway struct */
	const char *token; /* --token; NULL: not passed */
	const char *trusted_proxy; /* --trusted-proxy; NULL: not passed */
	const char *log_level; /* --log-level; NULL: not passed */
	const char *const *extra; /* more arguments, NULL-terminated; may be NULL */
	const char *log_path; /* the gateway's stderr appended there; NULL: inherited */
	bool memcheck; /* run it under valgrind's memcheck (exit status 99 on an error) */
	int timeout_ms; /* for the listening line; 0: kit_ms(10000) */
};

struct kit_gateway {
	struct spawned proc; /* pid, url, port */
	char state_dir[256];
	bool own_state; /* made by kit_gateway_start: removed by kit_gateway_cleanup */
};

/* Starts the gateway and waits for its listening line. err (may be NULL) gets the reason of a
 * failure. Returns 0 or -1 (nothing left running; a state dir made for it is removed). */
int kit_gateway_start(struct kit_gateway *g, const struct kit_gateway_opts *o, char *err,
                      size_t errsz);
/* Starts it again on the same state dir, which it keeps owning (o->state_dir is ignored);
 * stops it first if it still runs. Returns 0 or -1. */
int kit_gateway_restart(struct kit_gateway *g, const struct kit_gateway_opts *o, char *err,
                        size_t errsz);
/* Sends sig, waits up to timeout_ms (SIGKILL after that). Returns the exit status (0..255),
 * 128+signal, or -1 when it was not running. */
int kit_gateway_stop(struct kit_gateway *g, int sig, int timeout_ms);
/* Stops it (SIGTERM) if it still runs and removes the state dir if the struct owns it. */
void kit_gateway_cleanup(struct kit_gateway *g);

#endif
