/* cli.c: the shared command-line conventions of cli.h on getopt_long. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

int cli_init(struct cli *c, const struct cli_tool *tool)
{
	const char *shorts = tool->short_options ? tool->short_options : "";
	size_t n = 0;
	int len;

	memset(c, 0, sizeof(*c));
	c->tool = tool;
	for (const struct option *o = tool->options; o && o->name; o++) {
		if (n == CLI_MAX_OPTIONS)
			return -1;
		c->all[n++] = *o;
	}
	if (tool->token) {
		c->all[n++] = (struct option){"token", required_argument, NULL, CLI_OPT_TOKEN};
		c->all[n++] =
		        (struct option){"token-file", required_argument, NULL, CLI_OPT_TOKEN_FILE};
	}
	if (tool->tls_fingerprint)
		c->all[n++] = (struct option){"tls-fingerprint", required_argument, NULL,
		                              CLI_OPT_TLS_FINGERPRINT};
	c->all[n++] = (struct option){"help", no_argument, NULL, CLI_OPT_HELP};
	c->all[n++] = (struct option){"version", no_argument, NULL, CLI_OPT_VERSION};
	c->all[n] = (struct option){NULL, 0, NULL, 0};
	/* the leading ':' makes getopt report a missing value apart from an unknown option */
	len = snprintf(c->shorts, sizeof(c->shorts), ":%shV", shorts);
	if (len < 0 || (size_t)len >= sizeof(c->shorts))
		return -1;
	opterr = 0;
	optind = 0; /* glibc: start over, also after an earlier parse */
	return 0;
}

__attribute__((format(printf, 3, 0))) static void vreport(const struct cli *c, const char *tail,
                                                          const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", c->tool->prog);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "%s\n", tail);
}

int cli_usage_error(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, " (try --help)", fmt, ap);
	va_end(ap);
	return CLI_EXIT_USAGE;
}

void cli_error(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, "", fmt, ap);
	va_end(ap);
}

static const struct option *long_by_val(const struct cli *c, int val)
{
	for (const struct option *o = c->all; o->name; o++)
		if (o->val == val && !o->flag)
			return o;
	return NULL;
}

/* How many long options start with the name in arg ("--NAME" or "--NAME=VALUE"). */
static int prefix_matches(const struct cli *c, const char *arg)
{
	size_t n = strcspn(arg + 2, "=");
	int count = 0;

	for (const struct option *o = c->all; o->name; o++)
		count += strncmp(o->name, arg + 2, n) == 0;
	return count;
}

/* Reports the option getopt_long just refused ('?' or ':'). */
static int refuse(struct cli *c, int ch, char **argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "";
	bool is_long = strncmp(arg, "--", 2) == 0;
	const struct option *o = optopt ? long_by_val(c, optopt) : NULL;
	int n = (int)strcspn(arg, "=");

	if (ch == ':') {
		if (is_long && o)
			return cli_usage_error(c, "option '--%s' needs a value", o->name);
		return cli_usage_error(c, "option '-%c' needs a value", optopt);
	}
	if (!optopt && is_long && prefix_matches(c, arg) > 1)
		return cli_usage_error(c, "option '%.*s' is ambiguous", n, arg);
	if (!optopt)
		return cli_usage_error(c, "unknown option '%.*s'", n, arg);
	if (is_long && o && strchr(arg, '='))
		return cli_usage_error(c, "option '--%s' takes no value", o->name);
	return cli_usage_error(c, "unknown option '-%c'", optopt);
}

int cli_next(struct cli *c, int argc, char **argv)
{
	for (;;) {
		int ch = getopt_long(argc, argv, c->shorts, c->all, NULL);

		switch (ch) {
		case -1:
			return CLI_END;
		case CLI_OPT_HELP:
			c->tool->usage(stdout);
			c->status = 0;
			return CLI_STOP;
		case CLI_OPT_VERSION:
			printf("%s %s\n", c->tool->prog, c->tool->version);
			c->status = 0;
			return CLI_STOP;
		case CLI_OPT_TOKEN:
			c->token_arg = optarg;
			break;
		case CLI_OPT_TOKEN_FILE:
			c->token_file = optarg;
			break;
		case CLI_OPT_TLS_FINGERPRINT:
			c->tls_fingerprint_arg = optarg;
			break;
		case ':':
		case '?':
			c->status = refuse(c, ch, argv);
			return CLI_STOP;
		default:
			return ch;
		}
	}
}

int cli_parse(struct cli *c, const struct cli_tool *tool, int argc, char **argv,
              int (*apply)(const struct cli *c, void *user, int opt, const char *arg), void *user)
{
	int opt, rc;

	if (cli_init(c, tool) < 0) {
		fprintf(stderr, "%s: too many options\n", tool->prog);
		return CLI_EXIT_USAGE;
	}
	while ((opt = cli_next(c, argc, argv)) != CLI_END) {
		if (opt == CLI_STOP)
			return c->status;
		rc = apply(c, user, opt, optarg);
		if (rc)
			return rc;
	}
	return -1;
}

/* The first line of path without its line ending and trailing blanks, or NULL with *why. */
static char *read_token_file(const char *path, const char **why)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f) {
		*why = strerror(errno);
		return NULL;
	}
	n = getline(&line, &cap, f);
	fclose(f);
	while (n > 0 && strchr(" \t\r\n", line[n - 1]))
		line[--n] = '\0';
	if (n <= 0) {
		free(line);
		*why = "empty";
		return NULL;
	}
	return line;
}

int cli_token(const struct cli *c, bool required, char **out)
{
	const char *env = getenv(CLI_TOKEN_ENV), *why = NULL;

	*out = NULL;
	if (c->token_arg && c->token_file)
		return cli_usage_error(c, "--token and --token-file are exclusive");
	if (c->token_arg) {
		if (!c->token_arg[0])
			return cli_usage_error(c, "empty --token");
		*out = strdup(c->token_arg);
	} else if (c->token_file) {
		*out = read_token_file(c->token_file, &why);
		if (!*out)
			return cli_usage_error(c, "token file %s: %s", c->token_file, why);
	} else if (env && env[0]) {
		*out = strdup(env);
	} else if (required) {
		return cli_usage_error(c,
		                       "a gateway token is required: --token T, --token-file F or "
		                       "$" CLI_TOKEN_ENV);
	} else {
		return 0;
	}
	if (!*out) {
		cli_error(c, "out of memory");
		return 1;
	}
	return 0;
}

const char *cli_tls_fingerprint(const struct cli *c, bool *from_env)
{
	const char *env = getenv(CLI_TLS_FINGERPRINT_ENV);

	if (from_env)
		*from_env = false;
	if (c->tls_fingerprint_arg)
		return c->tls_fingerprint_arg;
	if (!env || !env[0])
		return NULL;
	if (from_env)
		*from_env = true;
	return env;
}

int cli_tls_pin(const struct cli *c, const char *url, int (*parse)(const char *, unsigned char *),
                const char **out)
{
	bool from_env;
	const char *fp = cli_tls_fingerprint(c, &from_env);
	bool wss = url && strncasecmp(url, "wss://", 6) == 0;

	*out = NULL;
	if (!fp || (!wss && from_env))
		return 0;
	if (!wss)
		return cli_usage_error(c, "--tls-fingerprint needs a wss:// URL");
	if (parse(fp, NULL) < 0)
		return cli_usage_error(c, "bad %s '%s': expected sha256: and 64 hex digits",
		                       from_env ? "$" CLI_TLS_FINGERPRINT_ENV : "--tls-fingerprint",
		                       fp);
	*out = fp;
	return 0;
}

bool cli_parse_uint(const char *s, unsigned long long min, unsigned long long max,
                    unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool cli_parse_positive(const char *s, double max, double *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || !(v > 0) || v > max)
		return false;
	*out = v;
	return true;
}

bool cli_parse_seconds_ms(const char *s, double max_s, uint64_t *ms)
{
	double v;

	if (!cli_parse_positive(s, max_s, &v))
		return false;
	*ms = (uint64_t)(v * 1000.0 + 0.5);
	if (!*ms)
		*ms = 1;
	return true;
}

bool cli_parse_ms(const char *s, uint64_t max_ms, uint64_t *ms)
{
	unsigned long long v;

	if (!cli_parse_uint(s, 1, max_ms, &v))
		return false;
	*ms = v;
	return true;
}

bool cli_parse_port(const char *s, int *port)
{
	unsigned long long v;

	if (!cli_parse_uint(s, 0, 65535, &v))
		return false;
	*port = (int)v;
	return true;
}

bool cli_parse_host_port(const char *s, char *host, size_t hostsz, int *port)
{
	const char *h = s, *colon;
	size_t hlen;

	if (!s)
		return false;
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
	if (hlen == 0 || hlen >= hostsz || !cli_parse_port(colon + 1, port))
		return false;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	return true;
}
