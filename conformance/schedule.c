/* schedule.c: each case in a forked child: a stuck case can be stopped, cases can run side by
 * side, and the verdicts do not depend on what ran before in the same process. The child sends
 * its result back over a pipe (result_wire.c); the parent prints results in selection order. */
#define _GNU_SOURCE /* pipe2 */
#include "schedule.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "liveness.h"
#include "strbuf.h"

#define LIVENESS_TIMEOUT_MS 5000
/* the scenario interpreter's remote actors take 10.77.0.2 .. 10.77.0.254 in turn */
#define XFF_FIRST 2
#define XFF_LAST 254

struct job {
	pid_t pid;
	int fd;
	size_t idx;
	uint64_t deadline_ms;
	struct strbuf out;
};

struct sched {
	const struct conf_schedule *sc;
	const struct conf_case *const *sel;
	size_t n;
	struct conf_run *run;
	struct job *jobs;
	size_t running;
	bool *done; /* a result is in run->results[i] */
	bool *started;
	unsigned *xff; /* each case's first X-Forwarded-For host part */
	double *weight; /* conf_case_weight_ms */
	size_t printed; /* results handed to on_result */
	bool stop; /* start nothing more */
	const char *stop_why; /* "the gateway went away during ID", "--fail-fast after ID" */
	char stop_buf[512];
};

static uint64_t wall_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* The remote actors of each case get addresses no other case uses at the same time: handed
 * out in selection order, whatever order the cases run in. */
static void assign_xff(struct sched *s, unsigned first)
{
	unsigned x = first;

	for (size_t i = 0; i < s->n; i++) {
		const cJSON *a;

		if (x < XFF_FIRST || x > XFF_LAST)
			x = XFF_FIRST;
		s->xff[i] = x;
		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(s->sel[i]->json, "actors"))
		{
			if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "remote"))) {
				if (x < XFF_FIRST || x > XFF_LAST)
					x = XFF_FIRST;
				x++;
			}
		}
	}
}

/* In the child: play the case, and when it did not pass, ask whether the gateway still takes
 * connections; write the result, exit. */
static void child(const struct sched *s, size_t i, int fd)
{
	struct conf_options o = *s->sc->o;
	unsigned xff = s->xff[i];
	struct conf_result r;
	char why[256], *text;
	bool gone = false;
	size_t len, off = 0;

	o.xff_counter = &xff;
	conf_run_case(s->sel[i], &o, &r);
	if (r.verdict != CONF_PASS && r.verdict != CONF_SKIP && r.verdict != CONF_ERROR)
		gone = !conf_gateway_accepts(o.url, (int)(LIVENESS_TIMEOUT_MS * o.timeout_scale),
		                             why, sizeof why);
	text = conf_result_to_wire(&r, gone ? why : NULL);
	len = text ? strlen(text) : 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(1);
		off += (size_t)w;
	}
	_exit(text ? 0 : 1);
}

__attribute__((format(printf, 2, 3))) static void set_message(struct conf_result *r,
                                                              const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	free(r->message);
	r->message = strdup(buf);
}

/* run->results[i] becomes NOT-RUN with a message. */
static void not_run(struct sched *s, size_t i, const char *why)
{
	struct conf_result *r = &s->run->results[i];

	conf_result_finish(r);
	r->c = s->sel[i];
	r->verdict = CONF_NOT_RUN;
	set_message(r, "not run: %s", why);
	s->done[i] = true;
}

/* Hands out the results known in selection order. */
static void flush_results(struct sched *s)
{
	while (s->printed < s->n && s->done[s->printed]) {
		if (s->sc->on_result)
			s->sc->on_result(s->sc->user, s->printed, s->n,
			                 &s->run->results[s->printed]);
		s->printed++;
	}
}

static bool is_failure(const struct sched *s, const struct conf_result *r)
{
	return r->verdict == CONF_FAIL || r->verdict == CONF_ERROR || r->stale ||
	       (r->verdict == CONF_NON_STRICT && s->sc->strict);
}

static void kill_running(struct sched *s)
{
	for (size_t k = 0; k < s->sc->jobs; k++) {
		struct job *j = &s->jobs[k];

		if (!j->pid)
			continue;
		kill(j->pid, SIGKILL);
		waitpid(j->pid, NULL, 0);
		close(j->fd);
		strbuf_finish(&j->out);
		not_run(s, j->idx, s->stop_why);
		j->pid = 0;
		s->running--;
	}
}

/* A child is done (EOF on its pipe) or overdue (timed_out): its result. */
static void finish_job(struct sched *s, struct job *j, bool timed_out)
{
	struct conf_result *r = &s->run->results[j->idx];
	const struct conf_case *c = s->sel[j->idx];
	uint64_t started = r->started_ms;
	char *gone = NULL;
	int status = 0;

	if (timed_out)
		kill(j->pid, SIGKILL);
	waitpid(j->pid, &status, 0);
	close(j->fd);
	if (timed_out || j->out.oom ||
	    conf_result_from_wire(j->out.p ? j->out.p : "", j->out.len, c, r, &gone) < 0) {
		char secs[32];

		conf_result_finish(r);
		r->c = c;
		r->verdict = CONF_ERROR;
		snprintf(secs, sizeof secs, "%g", (double)s->sc->case_timeout_ms / 1000.0);
		if (timed_out)
			set_message(r, "still running after %s s (--case-timeout): stopped", secs);
		else if (WIFSIGNALED(status))
			set_message(r, "the process playing the case died (signal %s)",
			            strsignal(WTERMSIG(status)));
		else
			set_message(r, "the process playing the case gave no result");
	}
	r->started_ms = started;
	strbuf_finish(&j->out);
	j->pid = 0;
	s->running--;
	s->done[j->idx] = true;
	if (gone && !s->stop) {
		s->run->gone_during = c->id;
		snprintf(s->stop_buf, sizeof s->stop_buf, "the gateway went away during %s", c->id);
		s->stop = true;
		s->stop_why = s->stop_buf;
		conf_result_finish(r);
		r->c = c;
		r->verdict = CONF_NOT_RUN;
		set_message(r, "not judged: the gateway went away during this case (%s)", gone);
		r->started_ms = started;
		kill_running(s);
	} else if (s->sc->fail_fast && !s->stop && is_failure(s, r)) {
		snprintf(s->stop_buf, sizeof s->stop_buf, "--fail-fast stopped the run after %s",
		         c->id);
		s->stop = true;
		s->stop_why = s->stop_buf;
	}
	free(gone);
}

/* Starts case i in a free slot. Returns 0, or -1 when no process could be made (the case is
 * then an ERROR). */
static int start_job(struct sched *s, size_t i)
{
	struct job *j = NULL;
	int fds[2];
	pid_t pid;

	for (size_t k = 0; k < s->sc->jobs && !j; k++)
		j = s->jobs[k].pid ? NULL : &s->jobs[k];
	s->started[i] = true;
	s->run->results[i].started_ms = wall_ms();
	if (!j || pipe2(fds, O_CLOEXEC) < 0)
		goto fail;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		goto fail;
	}
	if (pid == 0) {
		close(fds[0]);
		child(s, i, fds[1]);
	}
	close(fds[1]);
	j->pid = pid;
	j->fd = fds[0];
	j->idx = i;
	j->deadline_ms = s->sc->case_timeout_ms ? clock_mono_ms() + s->sc->case_timeout_ms : 0;
	strbuf_init(&j->out);
	s->running++;
	return 0;
fail:
	conf_result_finish(&s->run->results[i]);
	s->run->results[i].c = s->sel[i];
	s->run->results[i].verdict = CONF_ERROR;
	set_message(&s->run->results[i], "could not start a process for the case: %s",
	            strerror(errno));
	s->done[i] = true;
	return -1;
}

/* The next case to start: selection order with one job; with more, the exclusive cases first
 * (each alone), then the others side by side, the longest first. SIZE_MAX: none may start
 * now. */
static size_t next_case(const struct sched *s)
{
	bool any_exclusive_left = false;

	if (s->stop || s->running >= s->sc->jobs)
		return SIZE_MAX;
	for (size_t i = 0; i < s->n; i++) {
		if (s->started[i])
			continue;
		if (s->sc->jobs == 1)
			return i;
		if (s->sel[i]->exclusive) {
			any_exclusive_left = true;
			if (s->running == 0)
				return i;
		}
	}
	if (any_exclusive_left)
		return SIZE_MAX;
	/* an exclusive case running has the gateway to itself */
	for (size_t k = 0; k < s->sc->jobs; k++) {
		if (s->jobs[k].pid && s->sel[s->jobs[k].idx]->exclusive)
			return SIZE_MAX;
	}
	/* the longest first, so that no long case is left to run alone at the end */
	size_t best = SIZE_MAX;

	for (size_t i = 0; i < s->n; i++) {
		if (!s->started[i] && (best == SIZE_MAX || s->weight[i] > s->weight[best]))
			best = i;
	}
	return best;
}

/* Waits for output of the running children, or a deadline. */
static void wait_jobs(struct sched *s)
{
	struct pollfd pfd[64];
	struct job *who[64];
	size_t np = 0;
	uint64_t now = clock_mono_ms(), next = UINT64_MAX;
	int timeout, rc;

	for (size_t k = 0; k < s->sc->jobs && np < 64; k++) {
		struct job *j = &s->jobs[k];

		if (!j->pid)
			continue;
		if (j->deadline_ms && j->deadline_ms <= now) {
			finish_job(s, j, true);
			continue;
		}
		if (j->deadline_ms && j->deadline_ms < next)
			next = j->deadline_ms;
		pfd[np] = (struct pollfd){.fd = j->fd, .events = POLLIN};
		who[np++] = j;
	}
	if (!np)
		return;
	timeout = next == UINT64_MAX ? 1000 : (int)(next - now > 1000 ? 1000 : next - now);
	rc = poll(pfd, np, timeout);
	for (size_t k = 0; rc > 0 && k < np; k++) {
		char buf[65536];
		ssize_t r;

		/* a job another one's end stopped (the gateway went away) is gone already */
		if (!who[k]->pid || !(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = read(pfd[k].fd, buf, sizeof buf);
		if (r > 0)
			strbuf_addn(&who[k]->out, buf, (size_t)r);
		else if (r == 0 || errno != EINTR)
			finish_job(s, who[k], false);
	}
}

void conf_schedule_run(const struct conf_schedule *sc, const struct conf_case *const *sel, size_t n,
                       struct conf_run *run)
{
	struct sched s = {.sc = sc, .sel = sel, .n = n, .run = run};
	struct conf_schedule one;
	uint64_t t0 = clock_mono_ms();

	if (sc->jobs < 1 || sc->jobs > 64) {
		one = *sc;
		one.jobs = sc->jobs < 1 ? 1 : 64;
		s.sc = sc = &one;
	}
	s.jobs = calloc(sc->jobs, sizeof *s.jobs);
	s.done = calloc(n ? n : 1, sizeof *s.done);
	s.started = calloc(n ? n : 1, sizeof *s.started);
	s.xff = calloc(n ? n : 1, sizeof *s.xff);
	s.weight = calloc(n ? n : 1, sizeof *s.weight);
	run->n = n;
	if (!s.jobs || !s.done || !s.started || !s.xff || !s.weight) {
		for (size_t i = 0; i < n; i++)
			not_run(&s, i, "out of memory");
		goto out;
	}
	assign_xff(&s, sc->o->xff_counter ? *sc->o->xff_counter : XFF_FIRST);
	for (size_t i = 0; i < n; i++)
		s.weight[i] = conf_case_weight_ms(sel[i], sc->o);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		size_t i;

		while ((i = next_case(&s)) != SIZE_MAX)
			start_job(&s, i);
		if (!s.running)
			break;
		wait_jobs(&s);
		flush_results(&s);
	}
	for (size_t i = 0; i < n; i++) {
		if (!s.done[i])
			not_run(&s, i, s.stop_why ? s.stop_why : "the run stopped");
	}
out:
	flush_results(&s);
	run->duration_ms = clock_mono_ms() - t0;
	conf_run_count(run);
	free(s.jobs);
	free(s.done);
	free(s.started);
	free(s.xff);
	free(s.weight);
}
