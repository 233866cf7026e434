/* main.c: clawpair-gateway's command line, signals and startup/shutdown order. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core.h"
#include "identity.h"
#include "lws_gateway.h"
#include "store.h"

#ifndef CLAWPAIR_VERSION
#define CLAWPAIR_VERSION "dev"
#endif

#define PROG "clawpair-gateway"
#define DEFAULT_LISTEN "127.0.0.1:18789"
#define MAX_LISTEN 16
#define MAX_PROXIES 64
#define FLUSH_MS 2000
#define FD_WANTED 65536

static volatile sig_atomic_t g_stop;
static struct gateway *g_gw;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
	if (g_gw)
		gateway_wake(g_gw);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: " PROG " [OPTION]...\n"
	        "Reference OpenClaw-compatible gateway with held-open node pairing.\n"
	        "\n"
	        "  --listen ADDR:PORT        listen address, repeatable (default " DEFAULT_LISTEN
	        ");\n"
	        "                            port 0 picks a free port; IPv6 as [ADDR]:PORT\n"
	        "  --token T                 shared gateway token (required, or --token-file)\n"
	        "  --token-file F            read the token from the first line of F\n"
	        "  --state-dir DIR           pairing store (default $XDG_STATE_HOME/clawpair or\n"
	        "                            ~/.local/state/clawpair)\n"
	        "  --pending-ttl SECONDS     lifetime of a pending pairing request (default 300)\n"
	        "  --handshake-timeout MS    close sockets with no connect after MS (default 10000)\n"
	        "  --tick-interval MS        tick event interval (default 30000)\n"
	        "  --trusted-proxy ADDR      believe X-Forwarded-For/X-Real-IP from ADDR, repeatable\n"
	        "  --no-local-auto-approve   local devices need an operator's approval too\n"
	        "  --max-pending N           held-open connects in total (default 10240)\n"
	        "  --max-pending-per-ip N    held-open connects per client address (default 32)\n"
	        "  --max-preauth-per-ip N    sockets not yet past connect per client address\n"
	        "                            (default 64)\n"
	        "  --log-level LEVEL         error, warn, info (default) or debug\n"
	        "  --compat-6836             behave like OpenClaw 2026.1.30 (for tests only)\n"
	        "  --help                    show this help\n"
	        "  --version                 show the version\n"
	        "\n"
	        "Prints 'listening on ws://ADDR:PORT' on stdout per address once ready.\n"
	        "SIGTERM or SIGINT stops it gracefully (exit status 0).\n");
}

static int bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
	return 2;
}

static bool parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

/* ADDR:PORT or [ADDR]:PORT. */
static bool parse_listen(const char *s, struct gateway_listen *out)
{
	const char *colon;
	size_t hlen;
	unsigned long long port;
	const char *h = s;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return false;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return false;
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen))
			return false; /* a bare IPv6 address needs brackets */
	}
	if (hlen == 0 || hlen >= sizeof(out->host))
		return false;
	if (!parse_uint(colon + 1, 65535, &port))
		return false;
	memcpy(out->host, h, hlen);
	out->host[hlen] = '\0';
	out->port = (int)port;
	return true;
}

static bool parse_level(const char *s, enum core_log_level *out)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum core_log_level)i;
			return true;
		}
	return false;
}

/* The first line of path, without its line ending and trailing blanks; NULL on error. */
static char *read_token_file(const char *path, char *err, size_t errsz)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f) {
		snprintf(err, errsz, "cannot read token file %s: %s", path, strerror(errno));
		return NULL;
	}
	n = getline(&line, &cap, f);
	fclose(f);
	if (n < 0) {
		free(line);
		snprintf(err, errsz, "token file %s is empty", path);
		return NULL;
	}
	while (n > 0 && strchr(" \t\r\n", line[n - 1]))
		line[--n] = '\0';
	if (n == 0) {
		free(line);
		snprintf(err, errsz, "token file %s is empty", path);
		return NULL;
	}
	return line;
}

static char *default_state_dir(void)
{
	const char *xdg = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	const char *base, *suffix;
	char *out;
	size_t n;

	if (xdg && xdg[0] == '/') {
		base = xdg;
		suffix = "/clawpair";
	} else if (home && home[0]) {
		base = home;
		suffix = "/.local/state/clawpair";
	} else {
		return NULL;
	}
	n = strlen(base) + strlen(suffix) + 1;
	out = malloc(n);
	if (out)
		snprintf(out, n, "%s%s", base, suffix);
	return out;
}

/* Every held-open connect is a socket: plan for many more than the usual soft limit of 1024. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < FD_WANTED) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > FD_WANTED ? FD_WANTED
		                                                                      : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

enum {
	OPT_LISTEN = 256,
	OPT_TOKEN,
	OPT_TOKEN_FILE,
	OPT_STATE_DIR,
	OPT_PENDING_TTL,
	OPT_HANDSHAKE_TIMEOUT,
	OPT_TICK_INTERVAL,
	OPT_TRUSTED_PROXY,
	OPT_NO_LOCAL_AUTO_APPROVE,
	OPT_MAX_PENDING,
	OPT_MAX_PENDING_PER_IP,
	OPT_MAX_PREAUTH_PER_IP,
	OPT_LOG_LEVEL,
	OPT_COMPAT_6836,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option long_opts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"state-dir", required_argument, NULL, OPT_STATE_DIR},
        {"pending-ttl", required_argument, NULL, OPT_PENDING_TTL},
        {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
        {"tick-interval", required_argument, NULL, OPT_TICK_INTERVAL},
        {"trusted-proxy", required_argument, NULL, OPT_TRUSTED_PROXY},
        {"no-local-auto-approve", no_argument, NULL, OPT_NO_LOCAL_AUTO_APPROVE},
        {"max-pending", required_argument, NULL, OPT_MAX_PENDING},
        {"max-pending-per-ip", required_argument, NULL, OPT_MAX_PENDING_PER_IP},
        {"max-preauth-per-ip", required_argument, NULL, OPT_MAX_PREAUTH_PER_IP},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"compat-6836", no_argument, NULL, OPT_COMPAT_6836},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	struct gateway_listen listen[MAX_LISTEN];
	size_t n_listen = 0;
	const char *proxies[MAX_PROXIES];
	size_t n_proxies = 0;
	const char *token_arg = NULL, *token_file = NULL, *state_arg = NULL;
	char *token = NULL, *state_dir = NULL;
	struct core_config cfg = {0};
	enum core_log_level level = CORE_LOG_INFO;
	struct store *store = NULL;
	struct gateway_opts gopts = {0};
	struct sigaction sa;
	char err[512], host[256];
	unsigned long long v;
	int opt, rc = 1;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (opt) {
		case OPT_LISTEN:
			if (n_listen == MAX_LISTEN)
				return bad_usage("too many --listen addresses (at most 16)", "");
			if (!parse_listen(optarg, &listen[n_listen]))
				return bad_usage("bad --listen '%s': expected ADDR:PORT", optarg);
			n_listen++;
			break;
		case OPT_TOKEN:
			token_arg = optarg;
			break;
		case OPT_TOKEN_FILE:
			token_file = optarg;
			break;
		case OPT_STATE_DIR:
			state_arg = optarg;
			break;
		case OPT_PENDING_TTL: {
			char *end;
			double s;

			errno = 0;
			s = strtod(optarg, &end);
			if (errno || *end || !isfinite(s) || s <= 0 || s > 1e9)
				return bad_usage("bad --pending-ttl '%s': expected seconds > 0",
				                 optarg);
			cfg.pending_ttl_ms = (uint64_t)(s * 1000.0 + 0.5);
			if (!cfg.pending_ttl_ms)
				cfg.pending_ttl_ms = 1;
			break;
		}
		case OPT_HANDSHAKE_TIMEOUT:
			if (!parse_uint(optarg, UINT32_MAX, &v) || !v)
				return bad_usage("bad --handshake-timeout '%s': expected ms > 0",
				                 optarg);
			cfg.handshake_timeout_ms = v;
			break;
		case OPT_TICK_INTERVAL:
			if (!parse_uint(optarg, UINT32_MAX, &v) || !v)
				return bad_usage("bad --tick-interval '%s': expected ms > 0",
				                 optarg);
			cfg.tick_interval_ms = v;
			break;
		case OPT_TRUSTED_PROXY:
			if (n_proxies == MAX_PROXIES)
				return bad_usage("too many --trusted-proxy addresses (at most 64)",
				                 "");
			if (!optarg[0])
				return bad_usage("empty --trusted-proxy address%s", "");
			proxies[n_proxies++] = optarg;
			break;
		case OPT_NO_LOCAL_AUTO_APPROVE:
			cfg.no_local_auto_approve = true;
			break;
		case OPT_MAX_PENDING:
			if (!parse_uint(optarg, UINT_MAX, &v) || !v)
				return bad_usage("bad --max-pending '%s': expected a number > 0",
				                 optarg);
			cfg.max_pending = (unsigned)v;
			break;
		case OPT_MAX_PENDING_PER_IP:
			if (!parse_uint(optarg, UINT_MAX, &v) || !v)
				return bad_usage(
				        "bad --max-pending-per-ip '%s': expected a number > 0",
				        optarg);
			cfg.max_pending_per_ip = (unsigned)v;
			break;
		case OPT_MAX_PREAUTH_PER_IP:
			if (!parse_uint(optarg, UINT_MAX, &v) || !v)
				return bad_usage(
				        "bad --max-preauth-per-ip '%s': expected a number > 0",
				        optarg);
			cfg.max_preauth_per_ip = (unsigned)v;
			break;
		case OPT_LOG_LEVEL:
			if (!parse_level(optarg, &level))
				return bad_usage(
				        "bad --log-level '%s': expected error, warn, info or "
				        "debug",
				        optarg);
			break;
		case OPT_COMPAT_6836:
			cfg.compat_6836 = true;
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf(PROG " " CLAWPAIR_VERSION "\n");
			return 0;
		default:
			if (optopt && optopt < 256)
				return bad_usage("unknown option -%c", (char[]){(char)optopt, 0});
			if (optopt >= OPT_LISTEN)
				return bad_usage("option --%s needs an argument",
				                 long_opts[optopt - OPT_LISTEN].name);
			return bad_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad_usage("unexpected argument '%s'", argv[optind]);
	if (token_arg && token_file)
		return bad_usage("--token and --token-file are exclusive%s", "");
	if (!token_arg && !token_file)
		return bad_usage("a gateway token is required: --token T or --token-file F%s", "");
	if (token_arg && !token_arg[0])
		return bad_usage("empty --token%s", "");
	if (token_file) {
		token = read_token_file(token_file, err, sizeof(err));
		if (!token)
			return bad_usage("%s", err);
	} else {
		token = strdup(token_arg);
	}
	if (n_listen == 0) {
		parse_listen(DEFAULT_LISTEN, &listen[0]);
		n_listen = 1;
	}
	state_dir = state_arg ? strdup(state_arg) : default_state_dir();
	if (!token || !state_dir) {
		free(token);
		if (!state_dir)
			return bad_usage("no state directory: set --state-dir (HOME is unset)%s",
			                 "");
		free(state_dir);
		return 1;
	}

	if (identity_global_init() < 0) {
		fprintf(stderr, PROG ": cannot initialize libsodium\n");
		goto done;
	}
	raise_fd_limit();
	if (store_open(state_dir, &store, err, sizeof(err)) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		goto done;
	}
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	cfg.token = token;
	cfg.trusted_proxies = proxies;
	cfg.n_trusted_proxies = n_proxies;
	cfg.server_version = CLAWPAIR_VERSION;
	cfg.server_host = host;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	gopts.listen = listen;
	gopts.n_listen = n_listen;
	gopts.core = &cfg;
	gopts.store = store;
	gopts.log_level = level;
	if (gateway_create(&gopts, &g_gw, err, sizeof(err)) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		goto done;
	}
	gateway_log(g_gw, CORE_LOG_INFO,
	            PROG " " CLAWPAIR_VERSION ": state dir %s, %zu pending, %zu paired%s",
	            store_dir(store), store_count(store, STORE_PENDING),
	            store_count(store, STORE_PAIRED), cfg.compat_6836 ? " (compat-6836 mode)" : "");
	for (size_t i = 0; i < n_listen; i++) {
		bool v6 = strchr(listen[i].host, ':') != NULL;

		printf("listening on ws://%s%s%s:%d\n", v6 ? "[" : "", listen[i].host,
		       v6 ? "]" : "", gateway_listen_port(g_gw, i));
	}
	fflush(stdout);

	rc = gateway_run(g_gw, &g_stop, FLUSH_MS) < 0 ? 1 : 0;
	gateway_log(g_gw, CORE_LOG_INFO, "stopped");
done : {
	struct gateway *gw = g_gw;

	g_gw = NULL;
	gateway_destroy(gw);
}
	store_close(store);
	free(token);
	free(state_dir);
	return rc;
}
