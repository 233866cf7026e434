/* spawn.h: test helper: start a process with its stdout on a pipe, read its lines or its
 * "listening on ws://..." line, run one to completion, stop it and collect its status. */
#ifndef CLAWPAIR_TEST_SPAWN_H
#define CLAWPAIR_TEST_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "kit.h"

struct spawned {
	pid_t pid; /* -1 (or 0) once reaped */
	int out_fd; /* the child's stdout (non-blocking), open until the child is reaped */
	char url[128]; /* from the listening line: ws://127.0.0.1:PORT */
	int port; /* from the listening line */
	char lbuf[16384]; /* stdout read ahead of the next line */
	size_t llen;
};

/* Starts argv in the background (argv[0] a path, or a name looked up in PATH) with stdout
 * piped, stdin from /dev/null and no other descriptor of this process. stderr is appended to
 * stderr_path, or inherited when it is NULL. Returns 0 or -1. */
int spawn_start_log(char *const argv[], const char *stderr_path, struct spawned *s);
/* spawn_start_log with stderr inherited. */
int spawn_start(char *const argv[], struct spawned *s);

/* Next line of the child's stdout (without the newline) within timeout_ms: 1, or 0 on
 * timeout / end of output. */
int spawn_read_line(struct spawned *s, char *line, size_t linesz, int timeout_ms);
/* Reads lines until "listening on ws://HOST:PORT" (within timeout_ms) and sets url and port.
 * Returns 0, or -1 (the child keeps running). */
int spawn_await_listening(struct spawned *s, int timeout_ms);

/* Starts argv, waits up to timeout_ms for its listening line. Returns 0, or -1 (the child is
 * killed). */
int spawn_server(char *const argv[], int timeout_ms, struct spawned *s);

/* Sends sig (none when 0), waits up to timeout_ms for the exit, SIGKILL after that; closes the
 * stdout pipe once the child is gone. Returns the exit status (0..255), 128+signal, or -1 when
 * there was no child. */
int spawn_signal(struct spawned *s, int sig, int timeout_ms);
/* spawn_signal without a signal: waits for the child to exit by itself. */
int spawn_wait(struct spawned *s, int timeout_ms);
/* spawn_signal with SIGTERM. */
int spawn_stop(struct spawned *s, int timeout_ms);

/* Runs argv to completion with stdout captured into a malloc'd string (*out, may be NULL) and
 * stdin from /dev/null; kills it after timeout_ms. Returns the exit status, 128+signal, or -1.
 * *elapsed_ms (may be NULL) gets the run time. */
int spawn_run(char *const argv[], int timeout_ms, char **out, long *elapsed_ms);

/* clawpair-gateway on 127.0.0.1:0 with a fresh state dir (returned in state_dir, >= 64 bytes;
 * the caller removes it), token and --trusted-proxy 127.0.0.1, plus extra args
 * (NULL-terminated, may be NULL); under memcheck when under_valgrind(). Returns 0 or -1.
 * gateway.h has the general form. */
int spawn_gateway(const char *token, char *state_dir, const char *const *extra, struct spawned *s);

#endif
