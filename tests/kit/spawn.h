/* spawn.h: test helper: start a server process, read its "listening on ws://..." line, stop it. */
#ifndef CLAWPAIR_TEST_SPAWN_H
#define CLAWPAIR_TEST_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

struct spawned {
	pid_t pid;
	int out_fd; /* the child's stdout after the listening line (non-blocking) */
	char url[128]; /* ws://127.0.0.1:PORT */
	char lbuf[16384];
	size_t llen;
};

/* Starts argv in the background with stdout piped (stdin /dev/null). Returns 0 or -1. */
int spawn_start(char *const argv[], struct spawned *s);
/* Next line of the child's stdout (without the newline) within timeout_ms: 1, or 0 on
 * timeout / end of output. */
int spawn_read_line(struct spawned *s, char *line, size_t linesz, int timeout_ms);
/* Waits up to timeout_ms for the child to exit (SIGKILL after that). Returns the exit status,
 * 128+signal, or -1. */
int spawn_wait(struct spawned *s, int timeout_ms);

/* Starts argv (argv[0] is a path), waits up to timeout_ms for "listening on ws://..." on its
 * stdout. Returns 0, or -1 (the child is killed). */
int spawn_server(char *const argv[], int timeout_ms, struct spawned *s);

/* SIGTERM, then SIGKILL after timeout_ms. Returns the exit status (0..255), 128+signal, or -1. */
int spawn_stop(struct spawned *s, int timeout_ms);

/* Runs argv to completion with stdout captured into a malloc'd string (*out) and stdin from
 * /dev/null; kills it after timeout_ms. Returns the exit status, 128+signal, or -1. *elapsed_ms
 * (may be NULL) gets the run time. */
int spawn_run(char *const argv[], int timeout_ms, char **out, long *elapsed_ms);

/* CLAWPAIR_BUILD_ROOT/rel, CLAWPAIR_SOURCE_ROOT/rel (static buffers rotated per call). */
const char *build_path(const char *rel);
const char *source_path(const char *rel);

/* True when CLAWPAIR_VALGRIND is set: scale timeouts, wrap the gateway. */
bool under_valgrind(void);

/* Starts clawpair-gateway on 127.0.0.1:0 with a fresh state dir (returned in state_dir, >= 64
 * bytes), token and --trusted-proxy 127.0.0.1, plus extra args (NULL-terminated, may be NULL).
 * Under valgrind it runs under memcheck. Returns 0 or -1. */
int spawn_gateway(const char *token, char *state_dir, const char *const *extra, struct spawned *s);

/* rm -rf of a temp dir made by mkdtemp. */
void remove_tree(const char *dir);

#endif
