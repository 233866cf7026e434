/* client_exec.c: starting, watching and stopping the client under test (client_exec.h). */
#include "client_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "strbuf.h"

static void add_quoted(struct strbuf *b, const char *s)
{
	strbuf_add(b, "'");
	for (; *s; s++) {
		if (*s == '\'')
			strbuf_add(b, "'\\''");
		else
			strbuf_addn(b, s, 1);
	}
	strbuf_add(b, "'");
}

char *client_exec_command(const char *tmpl, const struct client_exec_vars *v, const char **bad)
{
	struct strbuf b;
	char num[16];
	const struct {
		const char *name, *value;
	} vars[] = {{"url", v->url},
	            {"host", v->host},
	            {"port", v->port},
	            {"token", v->token},
	            {"token_file", v->token_file},
	            {"state_dir", v->state_dir},
	            {"client", num}};

	snprintf(num, sizeof num, "%u", v->client);
	*bad = NULL;
	strbuf_init(&b);
	while (*tmpl) {
		const char *end;
		size_t i, n;

		if (*tmpl != '{' || !(end = strchr(tmpl, '}'))) {
			strbuf_addn(&b, tmpl++, 1);
			continue;
		}
		n = (size_t)(end - tmpl - 1);
		for (i = 0; i < sizeof vars / sizeof vars[0]; i++) {
			if (strlen(vars[i].name) == n && !strncmp(tmpl + 1, vars[i].name, n))
				break;
		}
		if (i == sizeof vars / sizeof vars[0]) {
			*bad = tmpl;
			strbuf_finish(&b);
			return NULL;
		}
		add_quoted(&b, vars[i].value ? vars[i].value : "");
		tmpl = end + 1;
	}
	return strbuf_take(&b);
}

int client_exec_start(struct client_proc *p, const char *cmd, const char *log_path)
{
	int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	pid_t pid;

	memset(p, 0, sizeof *p);
	if (log_fd < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(log_fd);
		return -1;
	}
	if (pid == 0) {
		int null_fd = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		signal(SIGPIPE, SIG_DFL);
		if (null_fd >= 0)
			dup2(null_fd, STDIN_FILENO);
		dup2(log_fd, STDOUT_FILENO);
		dup2(log_fd, STDERR_FILENO);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	close(log_fd);
	p->pid = pid;
	return 0;
}

static void note_status(struct client_proc *p, int status)
{
	p->exited = true;
	p->pid = 0;
	if (WIFSIGNALED(status)) {
		p->signal = WTERMSIG(status);
	} else {
		p->exit_code = WEXITSTATUS(status);
		/* the shell reports a command that a signal ended as 128 + its number */
		if (p->exit_code > 128 && p->exit_code < 128 + NSIG)
			p->signal = p->exit_code - 128;
	}
}

bool client_exec_poll(struct client_proc *p)
{
	int status;
	pid_t r;

	if (!p->pid)
		return true;
	r = waitpid(p->pid, &status, WNOHANG);
	if (r == p->pid) {
		note_status(p, status);
		return true;
	}
	if (r < 0 && errno == ECHILD) {
		p->pid = 0;
		return true;
	}
	return false;
}

void client_exec_term(struct client_proc *p)
{
	if (p->pid)
		kill(-p->pid, SIGTERM);
}

void client_exec_kill(struct client_proc *p)
{
	int status;

	if (!p->pid)
		return;
	kill(-p->pid, SIGKILL);
	while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
		;
	p->pid = 0;
}
