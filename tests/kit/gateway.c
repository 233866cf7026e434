/* gateway.c: the real clawpair-gateway as a test's child process. */
#include "gateway.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#define GATEWAY_ARGC 64

/* The argv of one start; strings it points to live in g or o (listen in the caller's buffer). */
static void build_argv(const struct kit_gateway *g, const struct kit_gateway_opts *o,
                       const char *listen, const char **argv)
{
	size_t n = 0;

	if (o->memcheck)
		n += kit_memcheck_argv(argv + n);
	argv[n++] = o->exe ? o->exe : build_path("server/clawpair-gateway");
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--state-dir";
	argv[n++] = g->state_dir;
	if (o->token) {
		argv[n++] = "--token";
		argv[n++] = o->token;
	}
	if (o->trusted_proxy) {
		argv[n++] = "--trusted-proxy";
		argv[n++] = o->trusted_proxy;
	}
	if (o->log_level) {
		argv[n++] = "--log-level";
		argv[n++] = o->log_level;
	}
	for (size_t i = 0; o->extra && o->extra[i] && n < GATEWAY_ARGC - 1; i++)
		argv[n++] = o->extra[i];
	argv[n] = NULL;
}

static void say(char *err, size_t errsz, const char *what, const char *exe)
{
	if (err && errsz)
		snprintf(err, errsz, "%s: %s", exe, what);
}

/* Starts the process on g->state_dir as it is. */
static int launch(struct kit_gateway *g, const struct kit_gateway_opts *o, char *err, size_t errsz)
{
	const char *argv[GATEWAY_ARGC];
	char listen[32];
	int timeout = o->timeout_ms > 0 ? o->timeout_ms : kit_ms(10000);

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", o->port);
	build_argv(g, o, listen, argv);
	if (spawn_start_log((char *const *)argv, o->log_path, &g->proc) < 0) {
		say(err, errsz, "cannot start", argv[o->memcheck ? KIT_MEMCHECK_ARGC : 0]);
		return -1;
	}
	if (spawn_await_listening(&g->proc, timeout) == 0)
		return 0;
	spawn_signal(&g->proc, SIGKILL, 1000);
	say(err, errsz, "did not print its listening line in time",
	    argv[o->memcheck ? KIT_MEMCHECK_ARGC : 0]);
	return -1;
}

int kit_gateway_start(struct kit_gateway *g, const struct kit_gateway_opts *o, char *err,
                      size_t errsz)
{
	memset(g, 0, sizeof(*g));
	g->proc.pid = -1;
	g->proc.out_fd = -1;
	if (o->state_dir) {
		snprintf(g->state_dir, sizeof(g->state_dir), "%s", o->state_dir);
	} else {
		if (kit_tempdir("clawpair-gw", g->state_dir, sizeof(g->state_dir)) < 0) {
			say(err, errsz, "cannot make a state dir", "/tmp");
			return -1;
		}
		g->own_state = true;
	}
	if (launch(g, o, err, errsz) == 0)
		return 0;
	kit_gateway_cleanup(g);
	return -1;
}

int kit_gateway_restart(struct kit_gateway *g, const struct kit_gateway_opts *o, char *err,
                        size_t errsz)
{
	if (g->proc.pid > 0)
		kit_gateway_stop(g, SIGTERM, kit_ms(10000));
	return launch(g, o, err, errsz);
}

int kit_gateway_stop(struct kit_gateway *g, int sig, int timeout_ms)
{
	return spawn_signal(&g->proc, sig, timeout_ms);
}

void kit_gateway_cleanup(struct kit_gateway *g)
{
	if (g->proc.pid > 0)
		spawn_signal(&g->proc, SIGTERM, kit_ms(10000));
	if (g->own_state)
		remove_tree(g->state_dir);
	g->own_state = false;
}

int spawn_gateway(const char *token, char *state_dir, const char *const *extra, struct spawned *s)
{
	struct kit_gateway g;
	struct kit_gateway_opts o = {.token = token,
	                             .trusted_proxy = "127.0.0.1",
	                             .extra = extra,
	                             .memcheck = under_valgrind()};

	if (kit_tempdir("clawpair-fn", state_dir, 64) < 0)
		return -1;
	o.state_dir = state_dir;
	if (kit_gateway_start(&g, &o, NULL, 0) < 0) {
		remove_tree(state_dir);
		return -1;
	}
	*s = g.proc;
	return 0;
}
