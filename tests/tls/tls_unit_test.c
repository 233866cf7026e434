/* tls_unit_test.c: the pieces of wss:// that need no socket: the fingerprint syntax of the client
 * library, the --tls-fingerprint option and $CLAWPAIR_TLS_FINGERPRINT (cli/), and the gateway's
 * certificate files (server/tls.c): made once with mode 0600, kept, remade when half gone, and
 * a fingerprint that is the SHA-256 of the certificate's DER bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "cli.h"
#include "client.h"
#include "fileio.h"
#include "kit.h"
#include "tls.h"

#define HEX_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define FP_A "sha256:" HEX_A

static void test_fingerprint_syntax(void **state)
{
	unsigned char md[32], want[32];
	char out[CLIENT_TLS_FINGERPRINT_LEN + 1];
	(void)state;

	for (int i = 0; i < 32; i++)
		want[i] = (unsigned char)((i % 16) * 0x11);
	assert_int_equal(client_tls_fingerprint_parse(FP_A, md), 0);
	assert_memory_equal(md, want, 32);
	client_tls_fingerprint_format(md, out);
	assert_string_equal(out, FP_A);
	/* what openssl x509 -fingerprint -sha256 prints, and other spellings of the prefix */
	assert_int_equal(
	        client_tls_fingerprint_parse("00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
	                                     "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
	                                     md),
	        0);
	assert_memory_equal(md, want, 32);
	assert_int_equal(client_tls_fingerprint_parse(HEX_A, NULL), 0);
	assert_int_equal(client_tls_fingerprint_parse("SHA-256:" HEX_A, NULL), 0);
	assert_int_equal(client_tls_fingerprint_parse("SHA256:" HEX_A, NULL), 0);

	assert_int_equal(client_tls_fingerprint_parse(NULL, md), -1);
	assert_int_equal(client_tls_fingerprint_parse("", md), -1);
	assert_int_equal(client_tls_fingerprint_parse("sha256:", md), -1);
	assert_int_equal(client_tls_fingerprint_parse(FP_A "0", md), -1); /* odd */
	assert_int_equal(client_tls_fingerprint_parse(FP_A "00", md), -1); /* 33 bytes */
	assert_int_equal(client_tls_fingerprint_parse("sha256:0011", md), -1); /* 2 bytes */
	assert_int_equal(client_tls_fingerprint_parse("sha1:" HEX_A, md), -1);
	assert_int_equal(client_tls_fingerprint_parse(" " FP_A, md), -1);
	assert_int_equal(client_tls_fingerprint_parse("sha256::" HEX_A, md), -1);
	assert_int_equal(
	        client_tls_fingerprint_parse("0:011:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
	                                     "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
	                                     md),
	        -1); /* a ':' inside a byte */
	assert_int_equal(client_tls_fingerprint_parse(FP_A ":", md), -1);
	assert_int_equal(client_tls_fingerprint_parse("sha256:g0112233445566778899aabbccddeeff0011"
	                                              "2233445566778899aabbccddeeff",
	                                              md),
	                 -1);
}

static void quiet_usage(FILE *out)
{
	fputs("Usage: prog\n", out);
}

static const char *fingerprint_of(char **argv, int argc, bool *from_env)
{
	static struct cli c;
	static const struct cli_tool tool = {
	        .prog = "prog", .version = "1", .usage = quiet_usage, .tls_fingerprint = true};

	assert_int_equal(cli_init(&c, &tool), 0);
	assert_int_equal(cli_next(&c, argc, argv), CLI_END);
	return cli_tls_fingerprint(&c, from_env);
}

static void test_cli_option(void **state)
{
	bool env;
	(void)state;

	unsetenv(CLI_TLS_FINGERPRINT_ENV);
	assert_null(fingerprint_of((char *[]){"prog", NULL}, 1, &env));
	assert_string_equal(
	        fingerprint_of((char *[]){"prog", "--tls-fingerprint", "X", NULL}, 3, &env), "X");
	assert_false(env);
	setenv(CLI_TLS_FINGERPRINT_ENV, "Y", 1);
	assert_string_equal(fingerprint_of((char *[]){"prog", NULL}, 1, &env), "Y");
	assert_true(env);
	/* the option wins over the environment */
	assert_string_equal(
	        fingerprint_of((char *[]){"prog", "--tls-fingerprint=X", NULL}, 2, NULL), "X");
	setenv(CLI_TLS_FINGERPRINT_ENV, "", 1);
	assert_null(fingerprint_of((char *[]){"prog", NULL}, 1, &env));
	unsetenv(CLI_TLS_FINGERPRINT_ENV);
}

/* SHA-256 over the DER bytes of the PEM certificate at path, by libsodium and a base64 decode:
 * not the X509_digest the code under test uses. */
static void independent_fingerprint(const char *path, char out[CLIENT_TLS_FINGERPRINT_LEN + 1])
{
	char *pem, *b, *e;
	size_t len, der_len = 0;
	unsigned char der[4096], md[32];

	assert_int_equal(fileio_read(AT_FDCWD, path, 1 << 20, &pem, &len), 0);
	b = strstr(pem, "-----BEGIN CERTIFICATE-----");
	assert_non_null(b);
	b = strchr(b, '\n') + 1;
	e = strstr(b, "-----END CERTIFICATE-----");
	assert_non_null(e);
	assert_int_equal(sodium_base642bin(der, sizeof(der), b, (size_t)(e - b), "\r\n", &der_len,
	                                   NULL, sodium_base64_VARIANT_ORIGINAL),
	                 0);
	crypto_hash_sha256(md, der, der_len);
	client_tls_fingerprint_format(md, out);
	free(pem);
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 0777;
}

static void test_self_signed(void **state)
{
	char dir[64], cert[512], key[512], cert2[512], key2[512], err[512];
	char fp[TLS_FINGERPRINT_LEN + 1], fp2[TLS_FINGERPRINT_LEN + 1];
	char indep[CLIENT_TLS_FINGERPRINT_LEN + 1], sub[128];
	bool created;
	(void)state;

	assert_int_equal(kit_tempdir("cp-tls", dir, sizeof(dir)), 0);
	assert_int_equal(tls_self_signed(dir, cert, sizeof(cert), key, sizeof(key), &created, err,
	                                 sizeof(err)),
	                 0);
	assert_true(created);
	snprintf(sub, sizeof(sub), "%s/tls", dir);
	assert_int_equal(mode_of(sub), 0700);
	assert_int_equal(mode_of(cert), 0600);
	assert_int_equal(mode_of(key), 0600);
	assert_int_equal(tls_check(cert, key, fp, err, sizeof(err)), 0);
	independent_fingerprint(cert, indep);
	assert_string_equal(fp, indep);
	assert_int_equal(client_tls_fingerprint_parse(fp, NULL), 0);

	/* a restart keeps the pair (and tightens a loosened mode) */
	assert_int_equal(chmod(key, 0644), 0);
	assert_int_equal(tls_self_signed(dir, cert, sizeof(cert), key, sizeof(key), &created, err,
	                                 sizeof(err)),
	                 0);
	assert_false(created);
	assert_int_equal(mode_of(key), 0600);
	assert_int_equal(tls_check(cert, key, fp2, err, sizeof(err)), 0);
	assert_string_equal(fp, fp2);

	/* half a pair (the certificate lost) is made anew */
	assert_int_equal(unlink(cert), 0);
	assert_int_equal(tls_self_signed(dir, cert, sizeof(cert), key, sizeof(key), &created, err,
	                                 sizeof(err)),
	                 0);
	assert_true(created);
	assert_int_equal(tls_check(cert, key, fp2, err, sizeof(err)), 0);
	assert_string_not_equal(fp, fp2);

	/* a certificate with another pair's key */
	snprintf(sub, sizeof(sub), "%s/other", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(tls_self_signed(sub, cert2, sizeof(cert2), key2, sizeof(key2), &created,
	                                 err, sizeof(err)),
	                 0);
	assert_int_equal(tls_check(cert, key2, fp2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "do not belong together"));
	/* the key file given as the certificate, a missing file */
	assert_int_equal(tls_check(key, key, fp2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no PEM certificate"));
	assert_int_equal(tls_check(cert, "/nonexistent/key.pem", fp2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/key.pem"));
	remove_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_fingerprint_syntax),
	        cmocka_unit_test(test_cli_option),
	        cmocka_unit_test(test_self_signed),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
