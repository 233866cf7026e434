/* client_exec.h: the client under test as a process of the client mode: its command line from
 * a template ({url} {host} {port} {token} {token_file} {state_dir} {client}), started in a process group of
 * its own with its output in a log file, watched, and stopped. */
#ifndef CLAWPAIR_CLIENT_EXEC_H
#define CLAWPAIR_CLIENT_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct client_exec_vars {
	const char *url, *host, *port; /* the gateway's URL, and its host and port alone */
	const char *token, *token_file, *state_dir;
	unsigned client; /* its number in the case, from 1 */
};

/* The template with each placeholder replaced by its value, single-quoted for the shell.
 * malloc'd, or NULL when out of memory or a placeholder is unknown (then *bad names it). */
char *client_exec_command(const char *tmpl, const struct client_exec_vars *v, const char **bad);

struct client_proc {
	pid_t pid; /* 0: not running */
	bool exited; /* ended by itself (client_exec_poll saw it) */
	int exit_code;
	int signal; /* the signal that ended it, also when the shell reported it as 128 + N */
};

/* Runs `sh -c cmd` in a new process group, stdin from /dev/null, stdout and stderr appended to
 * log_path. Returns 0, or -1 (errno). */
int client_exec_start(struct client_proc *p, const char *cmd, const char *log_path);
/* Whether it ended by now (then exited, exit_code or signal are set). */
bool client_exec_poll(struct client_proc *p);
/* SIGTERM to its group; the caller polls; client_exec_kill sends SIGKILL and reaps. */
void client_exec_term(struct client_proc *p);
void client_exec_kill(struct client_proc *p);

#endif
