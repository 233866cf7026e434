/* spawn.c: test helper: child processes with their stdout on a pipe: start, read lines, run to
 * completion, stop. */
#define _GNU_SOURCE /* close_range */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"

static int status_of(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

/* In the child: stdin /dev/null, stdout the pipe, stderr the log when asked; nothing else of
 * the parent's survives (its client sockets must not live on in a gateway). */
static void child_exec(char *const argv[], int pfd[2], const char *stderr_path)
{
	int dn = open("/dev/null", O_RDONLY);

	if (dn >= 0)
		dup2(dn, STDIN_FILENO);
	if (stderr_path) {
		int log = open(stderr_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (log >= 0)
			dup2(log, STDERR_FILENO);
	}
	dup2(pfd[1], STDOUT_FILENO);
	close_range(3, ~0U, 0);
	execvp(argv[0], argv);
	fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Forks argv with its stdout on a pipe; *out_fd is the read end (close-on-exec). */
static pid_t fork_piped(char *const argv[], const char *stderr_path, int *out_fd)
{
	int pfd[2];
	pid_t pid;

	if (pipe(pfd) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0)
		child_exec(argv, pfd, stderr_path);
	close(pfd[1]);
	fcntl(pfd[0], F_SETFD, FD_CLOEXEC);
	*out_fd = pfd[0];
	return pid;
}

int spawn_start_log(char *const argv[], const char *stderr_path, struct spawned *s)
{
	memset(s, 0, sizeof(*s));
	s->out_fd = -1;
	s->pid = fork_piped(argv, stderr_path, &s->out_fd);
	if (s->pid < 0)
		return -1;
	fcntl(s->out_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

int spawn_start(char *const argv[], struct spawned *s)
{
	return spawn_start_log(argv, NULL, s);
}

int spawn_read_line(struct spawned *s, char *line, size_t linesz, int timeout_ms)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);

	for (;;) {
		char *nl = memchr(s->lbuf, '\n', s->llen);
		struct pollfd p = {.fd = s->out_fd, .events = POLLIN};
		uint64_t now = clock_mono_ms();
		ssize_t n;

		if (nl) {
			size_t n1 = (size_t)(nl - s->lbuf);

			snprintf(line, linesz, "%.*s", (int)n1, s->lbuf);
			memmove(s->lbuf, nl + 1, s->llen - n1 - 1);
			s->llen -= n1 + 1;
			return 1;
		}
		if (s->llen == sizeof(s->lbuf))
			s->llen = 0; /* a line longer than the buffer: drop it */
		if (now >= deadline || s->out_fd < 0)
			return 0;
		if (poll(&p, 1, (int)(deadline - now)) <= 0)
			continue;
		n = read(s->out_fd, s->lbuf + s->llen, sizeof(s->lbuf) - s->llen);
		if (n == 0)
			return 0;
		if (n > 0)
			s->llen += (size_t)n;
	}
}

int spawn_await_listening(struct spawned *s, int timeout_ms)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;
	char line[512];

	for (;;) {
		uint64_t now = clock_mono_ms();
		const char *at, *colon;

		if (now >= deadline ||
		    spawn_read_line(s, line, sizeof(line), (int)(deadline - now)) != 1)
			return -1;
		at = strstr(line, "listening on ws://");
		if (!at)
			continue;
		at += strlen("listening on ");
		snprintf(s->url, sizeof(s->url), "%.*s", (int)strcspn(at, " \r\n"), at);
		colon = strrchr(s->url, ':');
		s->port = colon ? atoi(colon + 1) : 0;
		return s->port > 0 ? 0 : -1;
	}
}

int spawn_server(char *const argv[], int timeout_ms, struct spawned *s)
{
	if (spawn_start(argv, s) < 0)
		return -1;
	if (spawn_await_listening(s, timeout_ms) == 0)
		return 0;
	spawn_signal(s, SIGKILL, 1000);
	return -1;
}

int spawn_signal(struct spawned *s, int sig, int timeout_ms)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	int st = 0, rc;

	if (s->pid <= 0)
		return -1;
	if (sig)
		kill(s->pid, sig);
	for (;;) {
		pid_t r = waitpid(s->pid, &st, WNOHANG);

		if (r == s->pid) {
			rc = status_of(st);
			break;
		}
		if (r < 0) {
			rc = -1;
			break;
		}
		if (clock_mono_ms() > deadline) {
			kill(s->pid, SIGKILL);
			rc = waitpid(s->pid, &st, 0) == s->pid ? status_of(st) : -1;
			break;
		}
		usleep(2000);
	}
	/* The pipe stays open until the child is gone: a print during its shutdown must not
	 * become SIGPIPE. */
	s->pid = -1;
	if (s->out_fd >= 0)
		close(s->out_fd);
	s->out_fd = -1;
	return rc;
}

int spawn_wait(struct spawned *s, int timeout_ms)
{
	return spawn_signal(s, 0, timeout_ms);
}

int spawn_stop(struct spawned *s, int timeout_ms)
{
	return spawn_signal(s, SIGTERM, timeout_ms);
}

/* Reads fd to its end into a growing buffer; kills pid once deadline has passed. */
static char *read_all(int fd, pid_t pid, uint64_t deadline)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	bool killed = false;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t now = clock_mono_ms();
		ssize_t n;

		if (now >= deadline && !killed) {
			kill(pid, SIGKILL);
			killed = true;
		}
		if (poll(&p, 1, now < deadline ? (int)(deadline - now) : 100) <= 0)
			continue;
		if (len + 4097 > cap) {
			char *nb = realloc(buf, cap ? cap * 2 : 8192);

			if (!nb)
				break;
			buf = nb;
			cap = cap ? cap * 2 : 8192;
		}
		n = read(fd, buf + len, 4096);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (buf)
		buf[len] = '\0';
	return buf ? buf : strdup("");
}

int spawn_run(char *const argv[], int timeout_ms, char **out, long *elapsed_ms)
{
	uint64_t start = clock_mono_ms();
	int fd = -1, st = 0;
	pid_t pid;
	char *buf;

	if (out)
		*out = NULL;
	pid = fork_piped(argv, NULL, &fd);
	if (pid < 0)
		return -1;
	buf = read_all(fd, pid, start + (uint64_t)timeout_ms);
	close(fd);
	waitpid(pid, &st, 0);
	if (elapsed_ms)
		*elapsed_ms = (long)(clock_mono_ms() - start);
	if (out)
		*out = buf;
	else
		free(buf);
	return status_of(st);
}
