/* scenario_steps.c: the kinds of step (their keys and how each is played), except the ones that
 * open sockets (scenario_connect.c): requests, expectations on frames and closes, sends,
 * disconnects, sleeps and gateway restarts. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "json.h"
#include "scenario_internal.h"

#define RESTART_TIMEOUT_MS 120000
/* Exit statuses of the restart command for a restart step with a mode (SCENARIOS.md). */
#define RESTART_STARTED 10
#define RESTART_REFUSED 11

static int ms_of(const cJSON *st, int dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, "ms");

	return cJSON_IsNumber(v) ? (int)v->valuedouble : dflt;
}

/* ---------------------------------------------------------------- closes */

static char *close_wanted(const cJSON *want)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(want, "code");
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(want, "reason");
	char *text, *r, *t;

	if (code && cJSON_IsNumber(code))
		text = scenario_fmt("close with code %d", (int)code->valuedouble);
	else
		text = strdup("close");
	if (!reason)
		return text;
	r = cJSON_PrintUnformatted(reason);
	t = scenario_fmt("%s, reason %s", text ? text : "close", r ? r : "?");
	free(r);
	free(text);
	return t;
}

static bool reason_ok(const cJSON *reason, const char *got)
{
	cJSON *r;
	char why[256];
	bool ok;

	if (cJSON_IsString(reason))
		return !strcmp(reason->valuestring, got);
	r = cJSON_CreateString(got);
	ok = r && matcher_match(reason, r, why, sizeof(why));
	cJSON_Delete(r);
	return ok;
}

int scenario_expect_close(struct scenario_run *run, struct scenario_actor *a, const cJSON *want,
                          int timeout_ms)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(want, "code");
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(want, "reason");
	char *wanttext;

	while (!a->closed && a->conn && clock_mono_ms() < deadline) {
		uint64_t left = deadline - clock_mono_ms();

		scenario_pump(run, (int)(left < 50 ? left : 50));
	}
	wanttext = close_wanted(want);
	if (!a->closed) {
		char *d = scenario_inbox_digest(a);
		char *act = scenario_fmt("still open after %d ms%s%s", timeout_ms,
		                         d && *d ? "; frames: " : "", d && *d ? d : "");

		free(d);
		return scenario_fail_with(run, wanttext, act);
	}
	if ((code && (!cJSON_IsNumber(code) || (int)code->valuedouble != a->close_code)) ||
	    (reason && !reason_ok(reason, a->close_reason)))
		return scenario_fail_with(run, wanttext, scenario_closed_text(a));
	free(wanttext);
	return 0;
}

static int step_expect_close(struct scenario_run *run, struct scenario_actor *a, const cJSON *st)
{
	return scenario_expect_close(run, a, st, scenario_step_timeout(run, st));
}

static int step_expect_open(struct scenario_run *run, struct scenario_actor *a, const cJSON *st)
{
	int ms = ms_of(st, 1000);
	uint64_t deadline = clock_mono_ms() + (uint64_t)ms;
	char *d, *act;

	if (!a->conn && !a->closed)
		return scenario_fail_with(run, scenario_fmt("open for %d ms", ms),
		                          strdup("not connected"));
	while (clock_mono_ms() < deadline && !a->closed)
		scenario_pump(run, 20);
	if (!a->closed)
		return 0;
	d = scenario_inbox_digest(a);
	act = scenario_closed_text(a);
	if (d && *d) {
		char *t = scenario_fmt("%s; frames before: %s", act, d);

		free(act);
		act = t;
	}
	free(d);
	return scenario_fail_with(run, scenario_fmt("connection open for %d ms", ms), act);
}

/* ---------------------------------------------------------------- requests and events */

static int pick_res(struct scenario_run *run, struct scenario_actor *a, struct scenario_inframe *f,
                    void *arg)
{
	(void)run;
	(void)a;
	return scenario_is_res(f, arg);
}

static int match_res_frame(struct scenario_run *run, struct scenario_actor *a,
                           struct scenario_inframe *f, const cJSON *expect, const cJSON *st,
                           const char *what)
{
	char why[300] = "";

	if (expect && !matcher_match(expect, f->json, why, sizeof(why))) {
		char *m = cJSON_PrintUnformatted(expect);

		scenario_fail_with(run, scenario_fmt("%s matching %s", what, m ? m : "?"),
		                   scenario_fmt("%s (%s)", f->text, why));
		free(m);
		return -1;
	}
	if (scenario_captures(run, st, f->json) < 0)
		return -1;
	scenario_drop_frame(a, f);
	return 0;
}

/* Waits for the res with id and matches it against the step's "expect". Takes what. */
static int await_res(struct scenario_run *run, struct scenario_actor *a, const cJSON *st,
                     const char *id, char *what)
{
	struct scenario_inframe *f = scenario_wait_frame(run, a, scenario_step_timeout(run, st),
	                                                 pick_res, (void *)id, what);
	int rc = -1;

	if (f)
		rc = match_res_frame(run, a, f, cJSON_GetObjectItemCaseSensitive(st, "expect"), st,
		                     what);
	free(what);
	return rc;
}

static int step_call(struct scenario_run *run, struct scenario_actor *a, const cJSON *st)
{
	const char *method = json_get_string(st, "method"), *id = json_get_string(st, "id");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(st, "params");
	cJSON *req = cJSON_CreateObject();
	char idbuf[32], *what;
	int rc;

	if (!id) {
		snprintf(idbuf, sizeof(idbuf), "r%u", ++a->next_req);
		id = idbuf;
	}
	if (!req)
		return scenario_fail_with(run, strdup("call"), strdup("out of memory"));
	cJSON_AddStringToObject(req, "type", "req");
	cJSON_AddStringToObject(req, "id", id);
	cJSON_AddStringToObject(req, "method", method);
	cJSON_AddItemToObject(req, "params",
	                      params ? cJSON_Duplicate(params, true) : cJSON_CreateObject());
	rc = scenario_send_json(run, a, req);
	cJSON_Delete(req);
	what = scenario_fmt("res to %s", method);
	if (rc < 0)
		return scenario_fail_with(
		        run, what, a->closed ? scenario_closed_text(a) : strdup("not connected"));
	return await_res(run, a, st, id, what);
}

static int step_expect_res(struct scenario_run *run, struct scenario_actor *a, const cJSON *st)
{
	const char *id = json_get_string(st, "id");

	return await_res(run, a, st, id, scenario_fmt("res with id %s", id));
}

struct event_arg {
	const char *event;
	const cJSON *payload, *match;
	char why[300];
};

static int pick_event(struct scenario_run *run, struct scenario_actor *a,
                      struct scenario_inframe *f, void *arg)
{
	struct event_arg *ea = arg;
	char why[300];

	(void)run;
	(void)a;
	if (!scenario_is_event(f, ea->event))
		return 0;
	if (ea->payload &&
	    !matcher_match(ea->payload, cJSON_GetObjectItemCaseSensitive(f->json, "payload"), why,
	                   sizeof(why))) {
		snprintf(ea->why, sizeof(ea->why), "%s", why);
		return 0;
	}
	if (ea->match && !matcher_match(ea->match, f->json, why, sizeof(why))) {
		snprintf(ea->why, sizeof(ea->why), "%s", why);
		return 0;
	}
	return 1;
}

static int step_expect_event(struct scenario_run *run, struct scenario_actor *a, const cJSON *st)
{
	struct event_arg ea = {.event = json_get_string(st, "event"),
	                       .payload = cJSON_GetObjectItemCaseSensitive(st, "payload"),
	                       .match = cJSON_GetObjectItemCaseSensitive(st, "match")};
	char *m = ea.payload ? cJSON_PrintUnformatted(ea.payload) : NULL;
	char *what = scenario_fmt("event %s%s%s", ea.event, m ? " with payload " : "", m ? m : "");
	struct scenario_inframe *f;

	free(m);
	f = scenario_wait_frame(run, a, scenario_step_timeout(run, st), pick_event, &ea, what);
	free(what);
	if (!f) {
		if (ea.why[0] && run->actual) {
			char *t = scenario_fmt("%s (closest: %s)", run->actual, ea.why);

			free(run->actual);
			run->actual = t;
		}
		return -1;
	}
	if (scenario_captures(run, st, f->json) < 0)
		return -1;
	scenario_drop_frame(a, f);
	return 0;
}

static int step_expect_no_event(struct scenario_run *run, struct scenario_actor *a, const cJSON *st)
{
	int ms = ms_of(st, 1000);
	struct event_arg ea = {.event = json_get_string(st, "event"),
	                       .payload = cJSON_GetObjectItemCaseSensitive(st, "payload")};
	uint64_t deadline = clock_mono_ms() + (uint64_t)ms;

	for (;;) {
		scenario_drain(run);
		for (struct scenario_inframe *f = a->inbox; f; f = f->next) {
			if (pick_event(run, a, f, &ea) > 0)
				return scenario_fail_with(
				        run, scenario_fmt("no event %s for %d ms", ea.event, ms),
				        strdup(f->text));
		}
		if (clock_mono_ms() >= deadline)
			return 0;
		scenario_pump(run, 20);
	}
}

/* ---------------------------------------------------------------- sending and ending */

static int step_send(struct scenario_run *run, struct scenario_actor *a, const cJSON *st)
{
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(st, "text");
	bool binary = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "binary"));
	struct strbuf b;
	char err[200];
	int rc;

	strbuf_init(&b);
	if (text) {
		if (scenario_value_bytes(text, &b, err, sizeof(err)) < 0) {
			strbuf_finish(&b);
			return scenario_fail_with(run, strdup("send"), strdup(err));
		}
	} else {
		char *t = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(st, "frame"));

		if (!t)
			return scenario_fail_with(run, strdup("send"), strdup("out of memory"));
		strbuf_add(&b, t);
		free(t);
	}
	if (b.oom) {
		strbuf_finish(&b);
		return scenario_fail_with(run, strdup("send"), strdup("out of memory"));
	}
	scenario_log(run, a->def->name, SCENARIO_DIR_OUT,
	             binary ? "(binary message)" : (b.p ? b.p : ""), clock_mono_ms());
	rc = a->conn ? client_send(a->conn, b.p ? b.p : "", b.len, binary) : -1;
	strbuf_finish(&b);
	if (rc < 0)
		return scenario_fail_with(run, strdup("send on an open connection"),
		                          a->closed ? scenario_closed_text(a)
		                                    : strdup("not connected"));
	return 0;
}

static int step_disconnect(struct scenario_run *run, struct scenario_actor *a, const cJSON *st)
{
	const cJSON *cv = cJSON_GetObjectItemCaseSensitive(st, "code");
	const char *reason = json_get_string(st, "reason");
	int code = cJSON_IsNumber(cv) ? (int)cv->valuedouble : SCENARIO_WS_CLOSE_NORMAL;
	uint64_t deadline = clock_mono_ms() + 2000;

	if (!a->conn)
		return 0;
	if (!a->closed) {
		char note[160];

		snprintf(note, sizeof(note), "disconnect %d %s", code, reason ? reason : "");
		scenario_log(run, a->def->name, SCENARIO_DIR_NOTE, note, clock_mono_ms());
		client_close(a->conn, code, reason ? reason : "");
		while (!a->closed && clock_mono_ms() < deadline)
			scenario_pump(run, 20);
	}
	scenario_actor_reset_conn(a);
	return 0;
}

static int step_sleep(struct scenario_run *run, struct scenario_actor *a, const cJSON *st)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)ms_of(st, 0);

	(void)a;
	while (clock_mono_ms() < deadline) {
		uint64_t left = deadline - clock_mono_ms();

		scenario_pump(run, (int)(left < 50 ? left : 50));
	}
	return 0;
}

/* What a restart with a mode came to, by the restart command's exit status (SCENARIOS.md). */
static int restart_outcome(struct scenario_run *run, const char *mode, const char *want, int code)
{
	const char *got = code == RESTART_STARTED   ? "started"
	                  : code == RESTART_REFUSED ? "refused"
	                                            : NULL;

	if (code == 0) {
		run->skip =
		        scenario_fmt("the restart command does not know mode %s (exit 0)", mode);
		return -1;
	}
	if (!got)
		return scenario_fail_with(run, scenario_fmt("restart command, mode %s", mode),
		                          scenario_fmt("exit status %d", code));
	if (strcmp(got, want) != 0)
		return scenario_fail_with(
		        run, scenario_fmt("restart mode %s: the gateway %s", mode, want),
		        scenario_fmt("the gateway %s (restart command exit %d)", got, code));
	return 0;
}

static int step_restart(struct scenario_run *run, struct scenario_actor *a, const cJSON *st)
{
	const char *mode = json_get_string(st, "mode"), *want = json_get_string(st, "expect");
	int status = 0;
	uint64_t deadline;
	pid_t pid;

	(void)a;
	if (want && (!mode || (strcmp(want, "started") && strcmp(want, "refused"))))
		return scenario_fail_with(
		        run, strdup("restart \"expect\": started or refused, with a mode"),
		        strdup(want));
	pid = fork();
	if (pid < 0)
		return scenario_fail_with(run, strdup("restart command"),
		                          scenario_fmt("fork: %s", strerror(errno)));
	if (pid == 0) {
		if (mode)
			setenv("CLAWPAIR_RESTART_MODE", mode, 1);
		execl("/bin/sh", "sh", "-c", run->env->restart_cmd, (char *)NULL);
		_exit(127);
	}
	deadline = clock_mono_ms() + RESTART_TIMEOUT_MS;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0)
			return scenario_fail_with(run, strdup("restart command"),
			                          strdup("waitpid failed"));
		if (clock_mono_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return scenario_fail_with(run, strdup("restart command within 120 s"),
			                          strdup("timed out"));
		}
		/* keep the connections serviced: the gateway going away closes them */
		scenario_pump(run, 20);
	}
	if (mode && WIFEXITED(status))
		return restart_outcome(run, mode, want ? want : "started", WEXITSTATUS(status));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return scenario_fail_with(
		        run, strdup("restart command exit 0"),
		        scenario_fmt("exit status %d",
		                     WIFEXITED(status) ? WEXITSTATUS(status) : -1));
	return 0;
}

/* ---------------------------------------------------------------- the table */

static const char *const k_open[] = {"xff", "host", "origin", "headers", NULL};
static const char *const k_connect[] = {"sig",      "nonce",     "signedAtOffsetMs", "token",
                                        "override", "rawParams", "expect",           "xff",
                                        "host",     "origin",    "headers",          NULL};
static const char *const k_expect_hello[] = {"payload", NULL};
static const char *const k_send[] = {"text", "frame", "binary", NULL};
static const char *const k_call[] = {"method", "params", "expect", "id", NULL};
static const char *const k_event[] = {"event", "payload", "match", NULL};
static const char *const k_no_event[] = {"event", "payload", "ms", NULL};
static const char *const k_close[] = {"code", "reason", NULL};
static const char *const k_ms[] = {"ms", NULL};
static const char *const k_res[] = {"id", "expect", NULL};
static const char *const k_disconnect[] = {"code", "reason", NULL};
static const char *const k_restart[] = {"mode", "expect", NULL};

static const struct scenario_step_kind step_kinds[] = {
        {"open", k_open, true, scenario_step_open},
        {"connect", k_connect, true, scenario_step_connect},
        {"expect-hello", k_expect_hello, true, scenario_step_expect_hello},
        {"send", k_send, true, step_send},
        {"call", k_call, true, step_call},
        {"expect-event", k_event, true, step_expect_event},
        {"expect-no-event", k_no_event, true, step_expect_no_event},
        {"expect-close", k_close, true, step_expect_close},
        {"expect-open", k_ms, true, step_expect_open},
        {"expect-res", k_res, true, step_expect_res},
        {"disconnect", k_disconnect, true, step_disconnect},
        {"sleep", k_ms, false, step_sleep},
        {"restart", k_restart, false, step_restart},
};

const struct scenario_step_kind *scenario_step_kind(const char *op)
{
	for (size_t i = 0; op && i < sizeof(step_kinds) / sizeof(step_kinds[0]); i++) {
		if (!strcmp(step_kinds[i].name, op))
			return &step_kinds[i];
	}
	return NULL;
}
