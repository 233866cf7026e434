/* main.c: clawpair-gateway's command line, signals and startup/shutdown order. */
#include <arpa/inet.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "core.h"
#include "identity.h"
#include "locality.h"
#include "lws_gateway.h"
#include "store.h"
#include "tls.h"
#include "clawpair-gateway-help.h"

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

/* The --help text, made from doc/clawpair-gateway.txt with its manual page. */
static void usage(FILE *f)
{
	fputs(CLAWPAIR_HELP, f);
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
	OPT_STATE_DIR,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_SELF_SIGNED,
	OPT_PENDING_TTL,
	OPT_HANDSHAKE_TIMEOUT,
	OPT_TICK_INTERVAL,
	OPT_TRUSTED_PROXY,
	OPT_NO_LOCAL_AUTO_APPROVE,
	OPT_MAX_PENDING,
	OPT_MAX_PENDING_PER_IP,
	OPT_MAX_PREAUTH_PER_IP,
	OPT_MAX_CONNECTIONS,
	OPT_MAX_UPGRADING,
	OPT_MAX_UPGRADING_PER_IP,
	OPT_MAX_PARTIAL_UNAUTH,
	OPT_MAX_PARTIAL_AUTH,
	OPT_MESSAGE_TIMEOUT,
	OPT_LOG_LEVEL,
	OPT_COMPAT_6836,
};

static const struct option long_opts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"state-dir", required_argument, NULL, OPT_STATE_DIR},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"tls-self-signed", no_argument, NULL, OPT_TLS_SELF_SIGNED},
        {"pending-ttl", required_argument, NULL, OPT_PENDING_TTL},
        {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
        {"tick-interval", required_argument, NULL, OPT_TICK_INTERVAL},
        {"trusted-proxy", required_argument, NULL, OPT_TRUSTED_PROXY},
        {"no-local-auto-approve", no_argument, NULL, OPT_NO_LOCAL_AUTO_APPROVE},
        {"max-pending", required_argument, NULL, OPT_MAX_PENDING},
        {"max-pending-per-ip", required_argument, NULL, OPT_MAX_PENDING_PER_IP},
        {"max-preauth-per-ip", required_argument, NULL, OPT_MAX_PREAUTH_PER_IP},
        {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
        {"max-upgrading", required_argument, NULL, OPT_MAX_UPGRADING},
        {"max-upgrading-per-ip", required_argument, NULL, OPT_MAX_UPGRADING_PER_IP},
        {"max-partial-unauth", required_argument, NULL, OPT_MAX_PARTIAL_UNAUTH},
        {"max-partial-auth", required_argument, NULL, OPT_MAX_PARTIAL_AUTH},
        {"message-timeout", required_argument, NULL, OPT_MESSAGE_TIMEOUT},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"compat-6836", no_argument, NULL, OPT_COMPAT_6836},
        {NULL, 0, NULL, 0},
};

static const struct cli_tool tool = {
        .prog = PROG,
        .version = CLAWPAIR_VERSION,
        .usage = usage,
        .options = long_opts,
        .token = true,
};

/* --- TLS (--tls-cert, --tls-key, --tls-self-signed) --- */

struct tls_args {
	const char *cert, *key; /* as given, or the self-signed pair's paths; NULL: no TLS */
	bool self_signed;
	char fingerprint[TLS_FINGERPRINT_LEN + 1];
	bool created; /* the self-signed pair was made by this start */
	char cert_buf[PATH_MAX], key_buf[PATH_MAX];
};

static int apply_tls_option(const struct cli *c, struct tls_args *t, int opt, const char *arg)
{
	if (opt == OPT_TLS_SELF_SIGNED)
		t->self_signed = true;
	else if (!arg[0])
		return cli_usage_error(c, "empty --%s",
		                       opt == OPT_TLS_CERT ? "tls-cert" : "tls-key");
	else if (opt == OPT_TLS_CERT)
		t->cert = arg;
	else
		t->key = arg;
	return 0;
}

static int check_tls_args(const struct cli *c, const struct tls_args *t)
{
	if (t->self_signed && (t->cert || t->key))
		return cli_usage_error(c,
		                       "--tls-self-signed and --tls-cert/--tls-key are exclusive");
	if (!t->cert != !t->key)
		return cli_usage_error(c, "--tls-cert and --tls-key go together");
	return 0;
}

/* Makes (or reuses) the self-signed pair, checks the certificate against its key and takes its
 * fingerprint. Returns 0, or -1 after printing why. */
static int setup_tls(struct tls_args *t, const char *state_dir)
{
	char err[PATH_MAX + 256];

	if (t->self_signed) {
		if (tls_self_signed(state_dir, t->cert_buf, sizeof(t->cert_buf), t->key_buf,
		                    sizeof(t->key_buf), &t->created, err, sizeof(err)) < 0) {
			fprintf(stderr, PROG ": %s\n", err);
			return -1;
		}
		t->cert = t->cert_buf;
		t->key = t->key_buf;
	}
	if (t->cert && tls_check(t->cert, t->key, t->fingerprint, err, sizeof(err)) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return -1;
	}
	return 0;
}

/* --- end of TLS --- */

/* What the command line asks for. */
struct args {
	struct gateway_listen listen[MAX_LISTEN];
	size_t n_listen;
	const char *proxies[MAX_PROXIES];
	size_t n_proxies;
	const char *state_arg;
	struct tls_args tls;
	struct core_config cfg;
	struct gateway_opts gopts; /* the limits of the adapter */
	enum core_log_level level;
	char *token, *state_dir;
};

/* A limit option: a whole number > 0 that fits an unsigned. */
static int parse_limit(const struct cli *c, const char *name, const char *s, unsigned *out)
{
	unsigned long long v;

	if (!cli_parse_uint(s, 1, UINT_MAX, &v))
		return cli_usage_error(c, "bad --%s '%s': expected a number > 0", name, s);
	*out = (unsigned)v;
	return 0;
}

/* A byte budget: a whole number of bytes, at least one maximum-size message. */
static int parse_bytes(const struct cli *c, const char *name, const char *s, size_t *out)
{
	unsigned long long v;

	if (!cli_parse_uint(s, CORE_DEFAULT_MAX_PAYLOAD, SIZE_MAX / 2, &v))
		return cli_usage_error(c, "bad --%s '%s': expected bytes >= %d", name, s,
		                       CORE_DEFAULT_MAX_PAYLOAD);
	*out = (size_t)v;
	return 0;
}

static int parse_ms_option(const struct cli *c, const char *name, const char *s, uint64_t *out)
{
	if (!cli_parse_ms(s, UINT32_MAX, out))
		return cli_usage_error(c, "bad --%s '%s': expected ms > 0", name, s);
	return 0;
}

static int add_listen(const struct cli *c, struct args *a, const char *s)
{
	struct gateway_listen *l = &a->listen[a->n_listen];
	unsigned char addr[sizeof(struct in6_addr)];

	if (a->n_listen == MAX_LISTEN)
		return cli_usage_error(c, "too many --listen addresses (at most %d)", MAX_LISTEN);
	if (!cli_parse_host_port(s, l->host, sizeof(l->host), &l->port))
		return cli_usage_error(c, "bad --listen '%s': expected ADDR:PORT", s);
	/* an address, not a name: the listener binds exactly it */
	if (inet_pton(strchr(l->host, ':') ? AF_INET6 : AF_INET, l->host, addr) != 1)
		return cli_usage_error(c, "bad --listen '%s': ADDR must be an IPv4 or IPv6 address",
		                       s);
	a->n_listen++;
	return 0;
}

/* Applies one option. Returns 0, or the exit status of a usage error. */
static int apply_option(const struct cli *c, void *user, int opt, const char *arg)
{
	struct args *a = user;

	switch (opt) {
	case OPT_LISTEN:
		return add_listen(c, a, arg);
	case OPT_STATE_DIR:
		a->state_arg = arg;
		return 0;
	case OPT_TLS_CERT:
	case OPT_TLS_KEY:
	case OPT_TLS_SELF_SIGNED:
		return apply_tls_option(c, &a->tls, opt, arg);
	case OPT_PENDING_TTL:
		if (!cli_parse_seconds_ms(arg, 1e9, &a->cfg.pending_ttl_ms))
			return cli_usage_error(c, "bad --pending-ttl '%s': expected seconds > 0",
			                       arg);
		return 0;
	case OPT_HANDSHAKE_TIMEOUT:
		return parse_ms_option(c, "handshake-timeout", arg, &a->cfg.handshake_timeout_ms);
	case OPT_TICK_INTERVAL:
		return parse_ms_option(c, "tick-interval", arg, &a->cfg.tick_interval_ms);
	case OPT_TRUSTED_PROXY:
		if (a->n_proxies == MAX_PROXIES)
			return cli_usage_error(c, "too many --trusted-proxy addresses (at most %d)",
			                       MAX_PROXIES);
		if (!locality_addr_parse(arg, strlen(arg), &(struct locality_addr){0}))
			return cli_usage_error(
			        c, "bad --trusted-proxy '%s': expected an IPv4 or IPv6 address",
			        arg);
		a->proxies[a->n_proxies++] = arg;
		return 0;
	case OPT_NO_LOCAL_AUTO_APPROVE:
		a->cfg.no_local_auto_approve = true;
		return 0;
	case OPT_MAX_PENDING:
		return parse_limit(c, "max-pending", arg, &a->cfg.max_pending);
	case OPT_MAX_PENDING_PER_IP:
		return parse_limit(c, "max-pending-per-ip", arg, &a->cfg.max_pending_per_ip);
	case OPT_MAX_PREAUTH_PER_IP:
		return parse_limit(c, "max-preauth-per-ip", arg, &a->cfg.max_preauth_per_ip);
	case OPT_MAX_CONNECTIONS:
		return parse_limit(c, "max-connections", arg, &a->gopts.max_connections);
	case OPT_MAX_UPGRADING:
		return parse_limit(c, "max-upgrading", arg, &a->gopts.max_upgrading);
	case OPT_MAX_UPGRADING_PER_IP:
		return parse_limit(c, "max-upgrading-per-ip", arg, &a->gopts.max_upgrading_per_ip);
	case OPT_MAX_PARTIAL_UNAUTH:
		return parse_bytes(c, "max-partial-unauth", arg, &a->gopts.max_partial_unauth);
	case OPT_MAX_PARTIAL_AUTH:
		return parse_bytes(c, "max-partial-auth", arg, &a->gopts.max_partial_auth);
	case OPT_MESSAGE_TIMEOUT:
		return parse_ms_option(c, "message-timeout", arg, &a->gopts.message_timeout_ms);
	case OPT_LOG_LEVEL:
		if (!parse_level(arg, &a->level))
			return cli_usage_error(
			        c, "bad --log-level '%s': expected error, warn, info or debug",
			        arg);
		return 0;
	case OPT_COMPAT_6836:
		a->cfg.compat_6836 = true;
		return 0;
	default:
		return cli_usage_error(c, "unhandled option %d", opt);
	}
}

/* Parses argv into a. Returns -1 to go on, or the exit status to leave with. */
static int parse_args(int argc, char **argv, struct args *a)
{
	struct cli c;
	int rc;

	a->level = CORE_LOG_INFO;
	rc = cli_parse(&c, &tool, argc, argv, apply_option, a);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return cli_usage_error(&c, "unexpected argument '%s'", argv[optind]);
	rc = cli_token(&c, true, &a->token);
	if (rc || (rc = check_tls_args(&c, &a->tls)))
		return rc;
	if (a->n_listen == 0) {
		cli_parse_host_port(DEFAULT_LISTEN, a->listen[0].host, sizeof(a->listen[0].host),
		                    &a->listen[0].port);
		a->n_listen = 1;
	}
	a->state_dir = a->state_arg ? strdup(a->state_arg) : default_state_dir();
	if (!a->state_dir) {
		if (!a->state_arg)
			return cli_usage_error(
			        &c, "no state directory: set --state-dir (HOME is unset)");
		cli_error(&c, "out of memory");
		return 1;
	}
	return -1;
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

static void print_listening(const struct args *a)
{
	if (a->tls.cert)
		printf("tls fingerprint %s\n", a->tls.fingerprint);
	for (size_t i = 0; i < a->n_listen; i++) {
		bool v6 = strchr(a->listen[i].host, ':') != NULL;

		printf("listening on %s://%s%s%s:%d\n", a->tls.cert ? "wss" : "ws", v6 ? "[" : "",
		       a->listen[i].host, v6 ? "]" : "", gateway_listen_port(g_gw, i));
	}
	fflush(stdout);
}

/* Opens the store, serves until a signal, stops. Returns the exit status. */
static int serve(struct args *a)
{
	struct store *store = NULL;
	struct gateway_opts gopts = a->gopts;
	char err[512], host[256];
	int rc = 1;

	if (identity_global_init() < 0) {
		fprintf(stderr, PROG ": cannot initialize libsodium\n");
		return 1;
	}
	raise_fd_limit();
	if (store_open(a->state_dir, &store, err, sizeof(err)) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}
	if (setup_tls(&a->tls, store_dir(store)) < 0) {
		store_close(store);
		return 1;
	}
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	a->cfg.token = a->token;
	a->cfg.trusted_proxies = a->proxies;
	a->cfg.n_trusted_proxies = a->n_proxies;
	a->cfg.server_version = CLAWPAIR_VERSION;
	a->cfg.server_host = host;
	install_signals();

	gopts.listen = a->listen;
	gopts.n_listen = a->n_listen;
	gopts.core = &a->cfg;
	gopts.store = store;
	gopts.log_level = a->level;
	gopts.tls_cert_path = a->tls.cert;
	gopts.tls_key_path = a->tls.key;
	if (gateway_create(&gopts, &g_gw, err, sizeof(err)) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		goto done;
	}
	gateway_log(g_gw, CORE_LOG_INFO,
	            PROG " " CLAWPAIR_VERSION ": state dir %s, %zu pending, %zu paired%s",
	            store_dir(store), store_count(store, STORE_PENDING),
	            store_count(store, STORE_PAIRED),
	            a->cfg.compat_6836 ? " (compat-6836 mode)" : "");
	if (a->tls.cert)
		gateway_log(g_gw, CORE_LOG_INFO, "tls: %s%s, fingerprint %s", a->tls.cert,
		            a->tls.created ? " (self-signed, made now)" : "", a->tls.fingerprint);
	print_listening(a);
	rc = gateway_run(g_gw, &g_stop, FLUSH_MS) < 0 ? 1 : 0;
	gateway_log(g_gw, CORE_LOG_INFO, "stopped");
done : {
	struct gateway *gw = g_gw;

	g_gw = NULL;
	gateway_destroy(gw);
}
	store_close(store);
	return rc;
}

int main(int argc, char **argv)
{
	struct args a;
	int rc;

	memset(&a, 0, sizeof(a));
	rc = parse_args(argc, argv, &a);
	if (rc < 0)
		rc = serve(&a);
	free(a.token);
	free(a.state_dir);
	return rc;
}
