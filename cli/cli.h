/* cli.h: the command-line conventions the clawpair tools share: -h/--help, -V/--version, usage
 * errors ("PROG: message (try --help)", exit status 2), the shared gateway token (--token,
 * --token-file, $CLAWPAIR_TOKEN), the pinned TLS fingerprint of a wss:// gateway
 * (--tls-fingerprint, $CLAWPAIR_TLS_FINGERPRINT) and the parsing of numbers, durations and
 * addresses. */
#ifndef CLAWPAIR_CLI_H
#define CLAWPAIR_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_EXIT_USAGE 2
#define CLI_TOKEN_ENV "CLAWPAIR_TOKEN"
#define CLI_TLS_FINGERPRINT_ENV "CLAWPAIR_TLS_FINGERPRINT"
#define CLI_MAX_OPTIONS 48

/* What cli_next returns besides the values of a tool's own options. */
enum { CLI_END = -1, CLI_STOP = -2 };

/* Option values the library answers itself; a tool's own options use others (a short option's
 * letter, or values from 256 up). */
enum {
	CLI_OPT_HELP = 'h',
	CLI_OPT_VERSION = 'V',
	CLI_OPT_TOKEN = 0x10000,
	CLI_OPT_TOKEN_FILE,
	CLI_OPT_TLS_FINGERPRINT,
};

struct cli_tool {
	const char *prog; /* "clawpair-ctl": the first word of every message */
	const char *version;
	void (*usage)(FILE *out); /* the --help text */
	const struct option
	        *options; /* the tool's own long options, ending with {0}; may be NULL */
	const char
	        *short_options; /* the tool's own short options without arguments ("v"), or NULL */
	bool token; /* accept --token T and --token-file F (read them with cli_token) */
	bool tls_fingerprint; /* accept --tls-fingerprint F (read it with cli_tls_fingerprint) */
};

struct cli {
	const struct cli_tool *tool;
	int status; /* after CLI_STOP: the exit status (0 after --help or --version, else 2) */
	const char *token_arg, *token_file; /* --token, --token-file as given */
	const char *tls_fingerprint_arg; /* --tls-fingerprint as given */
	struct option all[CLI_MAX_OPTIONS + 6];
	char shorts[32];
};

/* Prepares parsing argv with getopt_long (and resets getopt's state). Returns 0, or -1 when the
 * tool has more than CLI_MAX_OPTIONS options or too many short options. */
int cli_init(struct cli *c, const struct cli_tool *tool);

/* The next option of the tool, like getopt_long (optarg, optind): its value, CLI_END after the
 * last option (optind is the first operand), or CLI_STOP when the tool should exit with
 * c->status: --help or --version was printed on stdout, or a usage error on stderr (an unknown
 * option, an option missing its value, a value given to an option that takes none). */
int cli_next(struct cli *c, int argc, char **argv);

/* cli_init, then cli_next over argv, handing each of the tool's options to apply (which returns
 * 0, or an exit status to stop with). Returns -1 when every option was applied (optind is then
 * the first operand), else the exit status: 0 after --help or --version, CLI_EXIT_USAGE after a
 * usage error, or what apply returned. */
int cli_parse(struct cli *c, const struct cli_tool *tool, int argc, char **argv,
              int (*apply)(const struct cli *c, void *user, int opt, const char *arg), void *user);

/* Prints "PROG: message (try --help)" on stderr. Returns CLI_EXIT_USAGE. */
int cli_usage_error(const struct cli *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Prints "PROG: message" on stderr. */
void cli_error(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The shared gateway token: --token, else the first line of --token-file (trailing blanks cut),
 * else $CLAWPAIR_TOKEN when set and not empty. Returns 0 with *out malloc'd (NULL when none was
 * given and required is false), or an exit status after printing why: CLI_EXIT_USAGE (both
 * options, an empty --token, an unreadable or empty file, none given but required), 1 when
 * out of memory. */
int cli_token(const struct cli *c, bool required, char **out);

/* The pinned TLS certificate fingerprint of a wss:// gateway, as given: --tls-fingerprint F,
 * else $CLAWPAIR_TLS_FINGERPRINT when set and not empty (then *from_env, which may be NULL, is
 * true); NULL when neither. Its syntax is the client library's (client.h,
 * client_tls_fingerprint_parse). */
const char *cli_tls_fingerprint(const struct cli *c, bool *from_env);

/* The pin for url: *out is the fingerprint to pin, or NULL (none given, or only the
 * environment's for a ws:// URL, where it does not apply). --tls-fingerprint with ws:// and a
 * fingerprint that parse (the client library's client_tls_fingerprint_parse) refuses are usage
 * errors. Returns 0 or that error's exit status. */
int cli_tls_pin(const struct cli *c, const char *url, int (*parse)(const char *, unsigned char *),
                const char **out);

/* Decimal digits only (no sign, no blanks), within [min, max]. */
bool cli_parse_uint(const char *s, unsigned long long min, unsigned long long max,
                    unsigned long long *out);
/* A finite decimal number > 0 and <= max. */
bool cli_parse_positive(const char *s, double max, double *out);
/* Seconds (cli_parse_positive, at most max_s) as whole milliseconds, rounded, at least 1. */
bool cli_parse_seconds_ms(const char *s, double max_s, uint64_t *ms);
/* Whole milliseconds, 1..max_ms. */
bool cli_parse_ms(const char *s, uint64_t max_ms, uint64_t *ms);
/* A TCP port, 0..65535 (0: any free port). */
bool cli_parse_port(const char *s, int *port);
/* HOST:PORT or [HOST]:PORT (an IPv6 address needs the brackets); host gets HOST without them. */
bool cli_parse_host_port(const char *s, char *host, size_t hostsz, int *port);

#endif
