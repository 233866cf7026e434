/* spawn.c: test helper: start and stop server processes, run a CLI and capture its output. */
#define _XOPEN_SOURCE 700
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

bool under_valgrind(void)
{
	const char *v = getenv("CLAWPAIR_VALGRIND");

	return v && *v && strcmp(v, "0") != 0;
}

static const char *root_path(const char *env, const char *fallback, const char *rel)
{
	static char bufs[8][4096];
	static unsigned next;
	const char *root = getenv(env);
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s/%s", root && *root ? root : fallback, rel);
	return b;
}

const char *build_path(const char *rel)
{
	return root_path("CLAWPAIR_BUILD_ROOT", ".", rel);
}

const char *source_path(const char *rel)
{
	return root_path("CLAWPAIR_SOURCE_ROOT", "..", rel);
}

static int status_of(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

int spawn_server(char *const argv[], int timeout_ms, struct spawned *s)
{
	int pfd[2];
	char buf[4096];
	size_t got = 0;
	long deadline = now_ms() + timeout_ms;

	memset(s, 0, sizeof(*s));
	s->pid = -1;
	s->out_fd = -1;
	if (pipe(pfd) < 0)
		return -1;
	s->pid = fork();
	if (s->pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (s->pid == 0) {
		int dn = open("/dev/null", O_RDONLY);

		if (dn >= 0)
			dup2(dn, 0);
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	s->out_fd = pfd[0];
	while (now_ms() < deadline && got < sizeof(buf) - 1) {
		struct pollfd p = {.fd = s->out_fd, .events = POLLIN};
		char *l;
		ssize_t n;

		if (poll(&p, 1, (int)(deadline - now_ms())) <= 0)
			continue;
		n = read(s->out_fd, buf + got, 1);
		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
		if (buf[got - 1] != '\n')
			continue;
		l = strstr(buf, "listening on ws://");
		if (l) {
			char *e = l + strlen("listening on ");

			e[strcspn(e, " \r\n")] = '\0';
			snprintf(s->url, sizeof(s->url), "%s", e);
			fcntl(s->out_fd, F_SETFL, O_NONBLOCK);
			return 0;
		}
		got = 0;
	}
	spawn_stop(s, 1000);
	return -1;
}

int spawn_stop(struct spawned *s, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	int st = 0;

	if (s->out_fd >= 0) {
		close(s->out_fd);
		s->out_fd = -1;
	}
	if (s->pid <= 0)
		return -1;
	kill(s->pid, SIGTERM);
	for (;;) {
		pid_t r = waitpid(s->pid, &st, WNOHANG);

		if (r == s->pid)
			break;
		if (r < 0) {
			s->pid = -1;
			return -1;
		}
		if (now_ms() > deadline) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &st, 0);
			break;
		}
		usleep(10000);
	}
	s->pid = -1;
	return status_of(st);
}

int spawn_run(char *const argv[], int timeout_ms, char **out, long *elapsed_ms)
{
	int pfd[2];
	char *buf = NULL;
	size_t len = 0, cap = 0;
	long start = now_ms(), deadline = start + timeout_ms;
	bool killed = false;
	pid_t pid;
	int st = 0;

	if (out)
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
		int dn = open("/dev/null", O_RDONLY);

		if (dn >= 0)
			dup2(dn, 0);
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		long left = deadline - now_ms();
		ssize_t n;

		if (left <= 0 && !killed) {
			kill(pid, SIGKILL);
			killed = true;
		}
		if (poll(&p, 1, left > 0 ? (int)left : 100) <= 0)
			continue;
		if (len + 4097 > cap) {
			char *nb = realloc(buf, cap ? cap * 2 : 8192);

			if (!nb)
				break;
			buf = nb;
			cap = cap ? cap * 2 : 8192;
		}
		n = read(pfd[0], buf + len, 4096);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(pfd[0]);
	waitpid(pid, &st, 0);
	if (elapsed_ms)
		*elapsed_ms = now_ms() - start;
	if (buf)
		buf[len] = '\0';
	if (out)
		*out = buf ? buf : strdup("");
	else
		free(buf);
	return status_of(st);
}

int spawn_gateway(const char *token, char *state_dir, const char *const *extra, struct spawned *s)
{
	const char *argv[48];
	size_t n = 0;
	const char *gw = build_path("server/clawpair-gateway");
	int rc;

	snprintf(state_dir, 64, "/tmp/clawpair-fn-XXXXXX");
	if (!mkdtemp(state_dir))
		return -1;
	if (under_valgrind()) {
		argv[n++] = "/usr/bin/valgrind";
		argv[n++] = "--error-exitcode=99";
		argv[n++] = "--leak-check=full";
		argv[n++] = "--errors-for-leak-kinds=definite";
		argv[n++] = "-q";
	}
	argv[n++] = gw;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--state-dir";
	argv[n++] = state_dir;
	argv[n++] = "--token";
	argv[n++] = token;
	argv[n++] = "--trusted-proxy";
	argv[n++] = "127.0.0.1";
	for (size_t i = 0; extra && extra[i] && n < 47; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	rc = spawn_server((char *const *)argv, under_valgrind() ? 60000 : 10000, s);
	if (rc < 0)
		remove_tree(state_dir);
	return rc;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void remove_tree(const char *dir)
{
	if (dir && *dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int spawn_start(char *const argv[], struct spawned *s)
{
	int pfd[2];

	memset(s, 0, sizeof(*s));
	s->out_fd = -1;
	if (pipe(pfd) < 0)
		return -1;
	s->pid = fork();
	if (s->pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (s->pid == 0) {
		int dn = open("/dev/null", O_RDONLY);

		if (dn >= 0)
			dup2(dn, 0);
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	s->out_fd = pfd[0];
	fcntl(s->out_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

int spawn_read_line(struct spawned *s, char *line, size_t linesz, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;

	for (;;) {
		char *nl = memchr(s->lbuf, '\n', s->llen);
		struct pollfd p = {.fd = s->out_fd, .events = POLLIN};
		long left;
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
		left = deadline - now_ms();
		if (left <= 0 || s->out_fd < 0)
			return 0;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = read(s->out_fd, s->lbuf + s->llen, sizeof(s->lbuf) - s->llen);
		if (n == 0)
			return 0;
		if (n > 0)
			s->llen += (size_t)n;
	}
}

int spawn_wait(struct spawned *s, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	int st = 0;

	if (s->pid <= 0)
		return -1;
	for (;;) {
		pid_t r = waitpid(s->pid, &st, WNOHANG);

		if (r == s->pid)
			break;
		if (r < 0) {
			s->pid = -1;
			return -1;
		}
		if (now_ms() > deadline) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &st, 0);
			break;
		}
		usleep(10000);
	}
	s->pid = -1;
	if (s->out_fd >= 0) {
		close(s->out_fd);
		s->out_fd = -1;
	}
	return status_of(st);
}
