/* cli_test.c: the shared command-line conventions (cli/cli.c): option parsing with --help,
 * --version and usage errors word for word, the shared token, and number and address parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"

enum { OPT_URL = 256, OPT_VERBOSE_LONG, OPT_VERSION_INFO };

static int usage_calls;

static void usage(FILE *out)
{
	usage_calls++;
	fputs("Usage: prog [OPTION]...\n", out);
}

static const struct option test_opts[] = {
        {"url", required_argument, NULL, OPT_URL},
        {"verbose", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
};

static const struct cli_tool tool = {
        .prog = "prog",
        .version = "1.2.3",
        .usage = usage,
        .options = test_opts,
        .short_options = "v",
        .token = true,
};

/* Runs the parse of argv with stdout and stderr captured into out and err. Returns what the
 * last cli_next returned (CLI_END or CLI_STOP); *vals gets the option values seen before. */
struct parse {
	int last;
	int vals[8];
	const char *args[8];
	int n;
	int status;
	int optind_after;
	char out[512], err[512];
	struct cli c;
};

static void read_back(FILE *f, char *buf, size_t bufsz)
{
	size_t n;

	rewind(f);
	n = fread(buf, 1, bufsz - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static void parse(const struct cli_tool *t, struct parse *p, int argc, char **argv)
{
	FILE *fo = tmpfile(), *fe = tmpfile();
	int saved_out = dup(1), saved_err = dup(2);

	assert_non_null(fo);
	assert_non_null(fe);
	memset(p, 0, sizeof(*p));
	assert_int_equal(cli_init(&p->c, t), 0);
	fflush(stdout);
	fflush(stderr);
	dup2(fileno(fo), 1);
	dup2(fileno(fe), 2);
	while ((p->last = cli_next(&p->c, argc, argv)) >= 0 && p->n < 8) {
		p->vals[p->n] = p->last;
		p->args[p->n++] = optarg;
	}
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	p->status = p->c.status;
	p->optind_after = optind;
	read_back(fo, p->out, sizeof(p->out));
	read_back(fe, p->err, sizeof(p->err));
}

/* parse() of a NULL-terminated argv literal */
#define PARSE(p, ...)                                                                  \
	parse(&tool, (p), (int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)) - 1, \
	      (char *[]){__VA_ARGS__})

static void test_options_and_operands(void **state)
{
	struct parse p;
	(void)state;

	PARSE(&p, "prog", "--url", "ws://x", "-v", "op1", "--verbose", "op2", NULL);
	assert_int_equal(p.last, CLI_END);
	assert_int_equal(p.n, 3);
	assert_int_equal(p.vals[0], OPT_URL);
	assert_string_equal(p.args[0], "ws://x");
	assert_int_equal(p.vals[1], 'v');
	assert_int_equal(p.vals[2], 'v');
	assert_string_equal(p.out, "");
	assert_string_equal(p.err, "");
}

static void test_help_and_version(void **state)
{
	struct parse p;
	(void)state;

	usage_calls = 0;
	PARSE(&p, "prog", "-h", NULL);
	assert_int_equal(p.last, CLI_STOP);
	assert_int_equal(p.status, 0);
	assert_int_equal(usage_calls, 1);
	assert_string_equal(p.out, "Usage: prog [OPTION]...\n");
	PARSE(&p, "prog", "--url", "u", "--help", NULL);
	assert_int_equal(p.last, CLI_STOP);
	assert_int_equal(p.status, 0);
	assert_int_equal(usage_calls, 2);

	PARSE(&p, "prog", "-V", NULL);
	assert_int_equal(p.last, CLI_STOP);
	assert_int_equal(p.status, 0);
	assert_string_equal(p.out, "prog 1.2.3\n");
	assert_string_equal(p.err, "");
	PARSE(&p, "prog", "--version", NULL);
	assert_string_equal(p.out, "prog 1.2.3\n");
	/* a cluster of short options */
	PARSE(&p, "prog", "-vV", NULL);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.out, "prog 1.2.3\n");
}

static void expect_usage_error(char **argv, int argc, const char *want)
{
	struct parse p;

	parse(&tool, &p, argc, argv);
	assert_int_equal(p.last, CLI_STOP);
	assert_int_equal(p.status, CLI_EXIT_USAGE);
	assert_string_equal(p.out, "");
	assert_string_equal(p.err, want);
}

static void test_usage_errors(void **state)
{
	(void)state;
	expect_usage_error((char *[]){"prog", "--nope", NULL}, 2,
	                   "prog: unknown option '--nope' (try --help)\n");
	expect_usage_error((char *[]){"prog", "--nope=3", NULL}, 2,
	                   "prog: unknown option '--nope' (try --help)\n");
	expect_usage_error((char *[]){"prog", "-Z", NULL}, 2,
	                   "prog: unknown option '-Z' (try --help)\n");
	/* an unknown letter after a long option is still reported as the letter */
	expect_usage_error((char *[]){"prog", "--verbose", "-Zv", NULL}, 3,
	                   "prog: unknown option '-Z' (try --help)\n");
	expect_usage_error((char *[]){"prog", "--url", NULL}, 2,
	                   "prog: option '--url' needs a value (try --help)\n");
	expect_usage_error((char *[]){"prog", "-v", "--token", NULL}, 3,
	                   "prog: option '--token' needs a value (try --help)\n");
	expect_usage_error((char *[]){"prog", "--help=yes", NULL}, 2,
	                   "prog: option '--help' takes no value (try --help)\n");
	expect_usage_error((char *[]){"prog", "--ver", NULL}, 2,
	                   "prog: option '--ver' is ambiguous (try --help)\n");
}

static void test_usage_error_format(void **state)
{
	struct cli c;
	FILE *fe = tmpfile();
	int saved = dup(2);
	char err[256];
	(void)state;

	assert_int_equal(cli_init(&c, &tool), 0);
	fflush(stderr);
	dup2(fileno(fe), 2);
	assert_int_equal(cli_usage_error(&c, "bad --count '%s': expected %d..%d", "x", 1, 9),
	                 CLI_EXIT_USAGE);
	cli_error(&c, "cannot reach %s", "ws://h");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	read_back(fe, err, sizeof(err));
	assert_string_equal(err, "prog: bad --count 'x': expected 1..9 (try --help)\n"
	                         "prog: cannot reach ws://h\n");
}

struct applied {
	int n;
	int refuse; /* the option value to refuse with exit status 7 */
	const char *url;
};

static int apply(const struct cli *c, void *user, int opt, const char *arg)
{
	struct applied *a = user;

	(void)c;
	a->n++;
	if (opt == a->refuse)
		return 7;
	if (opt == OPT_URL)
		a->url = arg;
	return 0;
}

static void test_parse_with_callback(void **state)
{
	char *argv[] = {"prog", "-v", "--url", "u", "operand", NULL};
	struct applied a = {0};
	struct cli c;
	(void)state;

	assert_int_equal(cli_parse(&c, &tool, 5, argv, apply, &a), -1);
	assert_int_equal(a.n, 2);
	assert_string_equal(a.url, "u");
	assert_int_equal(optind, 4);
	assert_string_equal(argv[optind], "operand");

	/* what the callback refuses with is the exit status */
	a = (struct applied){.refuse = 'v'};
	assert_int_equal(cli_parse(&c, &tool, 5, argv, apply, &a), 7);
	assert_int_equal(a.n, 1);
}

static void test_too_many_options(void **state)
{
	static struct option many[CLI_MAX_OPTIONS + 2];
	struct cli_tool big = tool;
	struct cli c;
	(void)state;

	for (int i = 0; i < CLI_MAX_OPTIONS + 1; i++)
		many[i] = (struct option){"x", no_argument, NULL, 300 + i};
	big.options = many;
	assert_int_equal(cli_init(&c, &big), -1);
	many[CLI_MAX_OPTIONS] = (struct option){NULL, 0, NULL, 0};
	assert_int_equal(cli_init(&c, &big), 0);
}

static int token_of(char **argv, int argc, bool required, char **tok, char *err, size_t errsz)
{
	struct parse p;
	FILE *fe = tmpfile();
	int saved = dup(2), rc;

	parse(&tool, &p, argc, argv);
	assert_int_equal(p.last, CLI_END);
	fflush(stderr);
	dup2(fileno(fe), 2);
	rc = cli_token(&p.c, required, tok);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	read_back(fe, err, errsz);
	return rc;
}

static void test_token(void **state)
{
	char path[] = "/tmp/clawpair-cli-test-XXXXXX", err[256], *tok;
	int fd = mkstemp(path);
	(void)state;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "s3cret \t\r\nsecond line\n", 22), 22);
	close(fd);
	unsetenv(CLI_TOKEN_ENV);

	assert_int_equal(token_of((char *[]){"prog", "--token", "abc", NULL}, 3, true, &tok, err,
	                          sizeof(err)),
	                 0);
	assert_string_equal(tok, "abc");
	free(tok);
	assert_int_equal(token_of((char *[]){"prog", "--token-file", path, NULL}, 3, true, &tok,
	                          err, sizeof(err)),
	                 0);
	assert_string_equal(tok, "s3cret");
	free(tok);

	/* the environment when no option says otherwise */
	setenv(CLI_TOKEN_ENV, "from-env", 1);
	assert_int_equal(token_of((char *[]){"prog", NULL}, 1, true, &tok, err, sizeof(err)), 0);
	assert_string_equal(tok, "from-env");
	free(tok);
	assert_int_equal(token_of((char *[]){"prog", "--token", "abc", NULL}, 3, true, &tok, err,
	                          sizeof(err)),
	                 0);
	assert_string_equal(tok, "abc");
	free(tok);
	setenv(CLI_TOKEN_ENV, "", 1);
	assert_int_equal(token_of((char *[]){"prog", NULL}, 1, true, &tok, err, sizeof(err)),
	                 CLI_EXIT_USAGE);
	assert_string_equal(err, "prog: a gateway token is required: --token T, --token-file F or "
	                         "$CLAWPAIR_TOKEN (try --help)\n");
	unsetenv(CLI_TOKEN_ENV);
	assert_int_equal(token_of((char *[]){"prog", NULL}, 1, false, &tok, err, sizeof(err)), 0);
	assert_null(tok);

	assert_int_equal(token_of((char *[]){"prog", "--token", "a", "--token-file", path, NULL}, 5,
	                          true, &tok, err, sizeof(err)),
	                 CLI_EXIT_USAGE);
	assert_string_equal(err, "prog: --token and --token-file are exclusive (try --help)\n");
	assert_int_equal(
	        token_of((char *[]){"prog", "--token", "", NULL}, 3, true, &tok, err, sizeof(err)),
	        CLI_EXIT_USAGE);
	assert_string_equal(err, "prog: empty --token (try --help)\n");

	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, " \n", 2), 2);
	close(fd);
	assert_int_equal(token_of((char *[]){"prog", "--token-file", path, NULL}, 3, true, &tok,
	                          err, sizeof(err)),
	                 CLI_EXIT_USAGE);
	assert_non_null(strstr(err, ": empty (try --help)"));
	unlink(path);
	assert_int_equal(token_of((char *[]){"prog", "--token-file", path, NULL}, 3, true, &tok,
	                          err, sizeof(err)),
	                 CLI_EXIT_USAGE);
	assert_non_null(strstr(err, "No such file or directory"));
}

static void test_numbers(void **state)
{
	unsigned long long u;
	double d;
	uint64_t ms;
	(void)state;

	assert_true(cli_parse_uint("0", 0, 10, &u) && u == 0);
	assert_true(cli_parse_uint("100000", 1, 100000, &u) && u == 100000);
	assert_false(cli_parse_uint("100001", 1, 100000, &u));
	assert_false(cli_parse_uint("0", 1, 10, &u));
	assert_false(cli_parse_uint("-1", 0, 10, &u));
	assert_false(cli_parse_uint("+1", 0, 10, &u));
	assert_false(cli_parse_uint(" 1", 0, 10, &u));
	assert_false(cli_parse_uint("1x", 0, 10, &u));
	assert_false(cli_parse_uint("", 0, 10, &u));
	assert_false(cli_parse_uint(NULL, 0, 10, &u));
	assert_false(cli_parse_uint("99999999999999999999999", 0, UINT64_MAX, &u));

	assert_true(cli_parse_positive("2.5", 10, &d) && d == 2.5);
	assert_false(cli_parse_positive("0", 10, &d));
	assert_false(cli_parse_positive("-1", 10, &d));
	assert_false(cli_parse_positive("11", 10, &d));
	assert_false(cli_parse_positive("inf", 1e300, &d));
	assert_false(cli_parse_positive("nan", 10, &d));
	assert_false(cli_parse_positive("1e999", 1e300, &d));
	assert_false(cli_parse_positive("fast", 10, &d));

	assert_true(cli_parse_seconds_ms("1.5", 86400, &ms) && ms == 1500);
	assert_true(cli_parse_seconds_ms("0.0001", 86400, &ms) && ms == 1);
	assert_true(cli_parse_seconds_ms("0.0016", 86400, &ms) && ms == 2);
	assert_false(cli_parse_seconds_ms("86401", 86400, &ms));

	assert_true(cli_parse_ms("1", UINT32_MAX, &ms) && ms == 1);
	assert_false(cli_parse_ms("0", UINT32_MAX, &ms));
	assert_false(cli_parse_ms("4294967296", UINT32_MAX, &ms));
}

static void test_addresses(void **state)
{
	char host[16];
	int port;
	(void)state;

	assert_true(cli_parse_port("0", &port) && port == 0);
	assert_true(cli_parse_port("65535", &port) && port == 65535);
	assert_false(cli_parse_port("65536", &port));
	assert_true(cli_parse_host_port("127.0.0.1:18789", host, sizeof(host), &port));
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 18789);
	assert_true(cli_parse_host_port("[::1]:0", host, sizeof(host), &port));
	assert_string_equal(host, "::1");
	assert_int_equal(port, 0);
	assert_false(cli_parse_host_port("::1:80", host, sizeof(host), &port));
	assert_false(cli_parse_host_port("[::1]80", host, sizeof(host), &port));
	assert_false(cli_parse_host_port("localhost", host, sizeof(host), &port));
	assert_false(cli_parse_host_port(":80", host, sizeof(host), &port));
	assert_false(cli_parse_host_port("h:65536", host, sizeof(host), &port));
	assert_false(cli_parse_host_port("h:", host, sizeof(host), &port));
	assert_false(cli_parse_host_port("a-very-long-host-name:1", host, sizeof(host), &port));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_options_and_operands),
	        cmocka_unit_test(test_help_and_version),
	        cmocka_unit_test(test_usage_errors),
	        cmocka_unit_test(test_usage_error_format),
	        cmocka_unit_test(test_parse_with_callback),
	        cmocka_unit_test(test_too_many_options),
	        cmocka_unit_test(test_token),
	        cmocka_unit_test(test_numbers),
	        cmocka_unit_test(test_addresses),
	};

	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
