/* test_identity.c: unit tests of protocol/identity.c against the OpenClaw-computed vectors. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "b64url.h"
#include "identity.h"
#include "testutil.h"

static int setup(void **state)
{
	(void)state;
	return identity_global_init();
}

static void test_vector_keys(void **state)
{
	cJSON *v = testutil_load_vectors();
	const cJSON *keys = testutil_obj(v, "keys"), *k;
	int n = 0;
	(void)state;

	cJSON_ArrayForEach(k, keys)
	{
		uint8_t seed[IDENTITY_SEED_BYTES], pk[IDENTITY_PK_BYTES], pk2[IDENTITY_PK_BYTES];
		char did[IDENTITY_DEVICE_ID_LEN + 1], norm[64];
		struct identity id;

		testutil_hex(testutil_str(k, "seedHex"), seed, sizeof(seed));
		assert_int_equal(identity_from_seed(&id, seed), 0);
		assert_string_equal(id.pk_b64, testutil_str(k, "publicKeyRawBase64Url"));
		assert_string_equal(id.device_id, testutil_str(k, "deviceId"));
		identity_device_id(id.pk, did);
		assert_string_equal(did, testutil_str(k, "deviceId"));
		/* libsodium's secret key is seed || pk. */
		assert_memory_equal(id.sk, seed, sizeof(seed));
		assert_memory_equal(id.sk + 32, id.pk, sizeof(id.pk));

		assert_int_equal(identity_parse_public_key(testutil_str(k, "publicKeyPem"), pk), 0);
		assert_memory_equal(pk, id.pk, sizeof(pk));
		assert_int_equal(
		        identity_parse_public_key(testutil_str(k, "publicKeyRawBase64Url"), pk2),
		        0);
		assert_memory_equal(pk2, id.pk, sizeof(pk2));
		assert_int_equal(identity_normalize_public_key(testutil_str(k, "publicKeyPem"),
		                                               norm, sizeof(norm)),
		                 0);
		assert_string_equal(norm, testutil_str(k, "publicKeyRawBase64Url"));
		n++;
	}
	assert_int_equal(n, 4);
	cJSON_Delete(v);
}

static void test_vector_normalization(void **state)
{
	cJSON *v = testutil_load_vectors();
	const cJSON *list = testutil_obj(v, "publicKeyNormalization"), *e;
	int n = 0;
	(void)state;

	cJSON_ArrayForEach(e, list)
	{
		char out[IDENTITY_PK_B64_LEN + 1];
		assert_int_equal(
		        identity_normalize_public_key(testutil_str(e, "input"), out, sizeof(out)),
		        0);
		assert_string_equal(out, testutil_str(e, "normalized"));
		n++;
	}
	assert_int_equal(n, 3);
	cJSON_Delete(v);
}

/* Every payload signature in the vectors is reproduced exactly (Ed25519 is deterministic),
 * verifies, and the negative cases fail as described. */
static void test_vector_signatures(void **state)
{
	static const char *const versions[] = {"v1", "v2", "v3"};
	cJSON *v = testutil_load_vectors();
	const cJSON *list = testutil_obj(v, "payloads"), *e;
	int n = 0;
	(void)state;

	cJSON_ArrayForEach(e, list)
	{
		uint8_t seed[IDENTITY_SEED_BYTES], pk[IDENTITY_PK_BYTES];
		const cJSON *pl = testutil_obj(e, "payloads"), *neg = testutil_obj(e, "negative");
		struct identity id;

		testutil_hex(testutil_str(e, "seedHex"), seed, sizeof(seed));
		assert_int_equal(identity_from_seed(&id, seed), 0);
		assert_string_equal(id.device_id, testutil_str(e, "deviceId"));
		assert_string_equal(id.pk_b64, testutil_str(e, "publicKeyRawBase64Url"));
		assert_int_equal(identity_parse_public_key(id.pk_b64, pk), 0);
		for (size_t k = 0; k < 3; k++) {
			const cJSON *one = testutil_obj(pl, versions[k]);
			const char *payload = testutil_str(one, "payload");
			const char *want = testutil_str(one, "signatureBase64Url");
			char sig[IDENTITY_SIG_B64_LEN + 1];

			assert_int_equal(identity_sign(&id, payload, sig, sizeof(sig)), 0);
			assert_string_equal(sig, want);
			assert_true(identity_verify(pk, payload, want));
			/* A signature over one version does not verify another. */
			for (size_t o = 0; o < 3; o++)
				if (o != k)
					assert_false(identity_verify(
					        pk,
					        testutil_str(testutil_obj(pl, versions[o]),
					                     "payload"),
					        want));
		}
		{
			const cJSON *verifies = testutil_obj(neg, "verifies");
			assert_true(cJSON_IsBool(verifies));
			assert_int_equal(
			        identity_verify(pk, testutil_str(neg, "payloadWithChangedSignedAt"),
			                        testutil_str(neg, "signatureBase64Url")),
			        cJSON_IsTrue(verifies));
		}
		n++;
	}
	assert_int_equal(n, 4);
	cJSON_Delete(v);
}

static void make_pem(const uint8_t *der, size_t len, char *out, size_t outsz)
{
	char b64[256];
	assert_true(b64url_encode(der, len, b64, sizeof(b64)) > 0);
	/* PEM uses the standard alphabet; b64url_decode accepts both. */
	for (char *c = b64; *c; c++) {
		if (*c == '-')
			*c = '+';
		else if (*c == '_')
			*c = '/';
	}
	snprintf(out, outsz, "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n", b64);
}

static void test_bad_public_keys(void **state)
{
	static const uint8_t ed_prefix[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
	                                      0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
	uint8_t raw[40], der[64], pk[IDENTITY_PK_BYTES];
	char s[256], pem[512], norm[64];
	(void)state;

	memset(raw, 0x42, sizeof(raw));
	/* 31 and 33 bytes */
	b64url_encode(raw, 31, s, sizeof(s));
	assert_int_equal(identity_parse_public_key(s, pk), -1);
	b64url_encode(raw, 33, s, sizeof(s));
	assert_int_equal(identity_parse_public_key(s, pk), -1);
	b64url_encode(raw, 32, s, sizeof(s));
	assert_int_equal(identity_parse_public_key(s, pk), 0);
	assert_memory_equal(pk, raw, 32);
	/* bad characters, whitespace, empty, NULL */
	assert_int_equal(
	        identity_parse_public_key("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR!", pk), -1);
	assert_int_equal(
	        identity_parse_public_key(" 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", pk), -1);
	assert_int_equal(identity_parse_public_key("", pk), -1);
	assert_int_equal(identity_parse_public_key(NULL, pk), -1);
	assert_int_equal(identity_normalize_public_key("nope", norm, sizeof(norm)), -1);
	assert_int_equal(identity_normalize_public_key(
	                         "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", norm, 10),
	                 -1);

	/* A well-formed Ed25519 SPKI is accepted (control for the cases below). */
	memcpy(der, ed_prefix, 12);
	memset(der + 12, 7, 32);
	make_pem(der, 44, pem, sizeof(pem));
	assert_int_equal(identity_parse_public_key(pem, pk), 0);
	/* X25519 (OID 1.3.101.110) has the same layout but is not a signing key. */
	der[8] = 0x6e;
	make_pem(der, 44, pem, sizeof(pem));
	assert_int_equal(identity_parse_public_key(pem, pk), -1);
	der[8] = 0x70;
	/* Truncated and extended DER. */
	make_pem(der, 43, pem, sizeof(pem));
	assert_int_equal(identity_parse_public_key(pem, pk), -1);
	der[44] = 0;
	make_pem(der, 45, pem, sizeof(pem));
	assert_int_equal(identity_parse_public_key(pem, pk), -1);
	/* Garbage PEMs */
	assert_int_equal(identity_parse_public_key("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END "
	                                           "PUBLIC KEY-----\n",
	                                           pk),
	                 -1);
	assert_int_equal(identity_parse_public_key("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"
	                                           "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n",
	                                           pk),
	                 -1);
	assert_int_equal(identity_parse_public_key("BEGIN", pk), -1);
	assert_int_equal(identity_parse_public_key(
	                         "-----BEGIN RSA PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKx"
	                         "CrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END RSA PUBLIC "
	                         "KEY-----\n",
	                         pk),
	                 -1);
	/* A real RSA-2048 SPKI header: right armour, wrong algorithm. */
	assert_int_equal(identity_parse_public_key(
	                         "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"
	                         "MIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"
	                         "\n-----END PUBLIC KEY-----\n",
	                         pk),
	                 -1);
	/* Text after the armour */
	assert_int_equal(identity_parse_public_key("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11q"
	                                           "YAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n---"
	                                           "--END PUBLIC KEY-----\nextra",
	                                           pk),
	                 -1);
	/* An overlong body is refused without overflow. */
	{
		char big[4096];
		size_t o = (size_t)snprintf(big, sizeof(big), "-----BEGIN PUBLIC KEY-----\n");
		while (o < 4000)
			big[o++] = 'A';
		snprintf(big + o, sizeof(big) - o, "\n-----END PUBLIC KEY-----\n");
		assert_int_equal(identity_parse_public_key(big, pk), -1);
	}
}

static void test_fingerprint(void **state)
{
	uint8_t seed[IDENTITY_SEED_BYTES] = {0};
	struct identity id;
	char fp[IDENTITY_FINGERPRINT_LEN + 1];
	(void)state;

	assert_int_equal(identity_from_seed(&id, seed), 0);
	identity_fingerprint(id.pk, fp);
	/* deviceId 139e3940e64b5491... */
	assert_string_equal(fp, "139e:3940:e64b:5491");
	assert_int_equal(strlen(fp), IDENTITY_FINGERPRINT_LEN);
	assert_true(identity_fingerprint_matches(id.pk, fp));
	assert_true(identity_fingerprint_matches(id.pk, "139E3940E64B5491"));
	assert_true(identity_fingerprint_matches(id.pk, "139e-3940 e64b:5491"));
	assert_true(identity_fingerprint_matches(id.pk, id.device_id));
	assert_true(identity_fingerprint_matches(id.pk, "139e3940e64b54917220"));
	assert_false(identity_fingerprint_matches(id.pk, "139e3940e64b549")); /* 15 chars */
	assert_false(identity_fingerprint_matches(id.pk, "139e3940e64b5490")); /* wrong */
	assert_false(identity_fingerprint_matches(id.pk, "139e3940e64b5491x"));
	assert_false(identity_fingerprint_matches(id.pk, "139e.3940.e64b.5491"));
	assert_false(identity_fingerprint_matches(id.pk, ""));
	assert_false(identity_fingerprint_matches(id.pk, NULL));
	{
		char longer[80];
		snprintf(longer, sizeof(longer), "%s0", id.device_id);
		assert_false(identity_fingerprint_matches(id.pk, longer));
	}
}

static void test_sign_verify(void **state)
{
	struct identity a, b;
	char sig[IDENTITY_SIG_B64_LEN + 1], bad[IDENTITY_SIG_B64_LEN + 8];
	uint8_t raw[80];
	size_t n = 0;
	(void)state;

	assert_int_equal(identity_generate(&a), 0);
	assert_int_equal(identity_generate(&b), 0);
	assert_memory_not_equal(a.pk, b.pk, sizeof(a.pk));
	assert_int_equal(identity_sign(&a, "hello", sig, sizeof(sig)), 0);
	assert_int_equal(strlen(sig), IDENTITY_SIG_B64_LEN);
	assert_int_equal(identity_sign(&a, "hello", sig, IDENTITY_SIG_B64_LEN), -1);
	assert_true(identity_verify(a.pk, "hello", sig));
	assert_false(identity_verify(b.pk, "hello", sig));
	assert_false(identity_verify(a.pk, "hellO", sig));
	assert_false(identity_verify(a.pk, "hello", ""));
	assert_false(identity_verify(a.pk, "hello", NULL));
	assert_false(identity_verify(a.pk, NULL, sig));

	/* Padded standard base64 of the same signature verifies, as OpenClaw's decoder allows. */
	assert_int_equal(b64url_decode(sig, strlen(sig), raw, sizeof(raw), &n), 0);
	assert_int_equal(n, 64);
	snprintf(bad, sizeof(bad), "%s==", sig);
	for (char *c = bad; *c; c++)
		if (*c == '-')
			*c = '+';
		else if (*c == '_')
			*c = '/';
	assert_true(identity_verify(a.pk, "hello", bad));

	/* Wrong lengths: 63 and 65 bytes */
	b64url_encode(raw, 63, bad, sizeof(bad));
	assert_false(identity_verify(a.pk, "hello", bad));
	raw[64] = 0;
	b64url_encode(raw, 65, bad, sizeof(bad));
	assert_false(identity_verify(a.pk, "hello", bad));
	/* One flipped bit */
	raw[10] ^= 1;
	b64url_encode(raw, 64, bad, sizeof(bad));
	assert_false(identity_verify(a.pk, "hello", bad));
	/* Bad characters */
	memcpy(bad, sig, sizeof(sig));
	bad[5] = '*';
	assert_false(identity_verify(a.pk, "hello", bad));
}

struct tmpdir {
	char path[64];
};

static void tmpdir_make(struct tmpdir *t)
{
	snprintf(t->path, sizeof(t->path), "/tmp/clawpair-identity-XXXXXX");
	assert_non_null(mkdtemp(t->path));
}

static void tmpdir_remove(struct tmpdir *t, const char *file)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", t->path, file);
	unlink(p);
	assert_int_equal(rmdir(t->path), 0);
}

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
}

static void test_file_roundtrip(void **state)
{
	struct tmpdir t;
	struct identity a, b;
	struct stat st;
	char path[128];
	bool created = true;
	(void)state;

	tmpdir_make(&t);
	snprintf(path, sizeof(path), "%s/device.json", t.path);

	errno = 0;
	assert_int_equal(identity_load(&b, path), -1);
	assert_int_equal(errno, ENOENT);

	assert_int_equal(identity_generate(&a), 0);
	assert_int_equal(identity_save(&a, path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	memset(&b, 0, sizeof(b));
	assert_int_equal(identity_load(&b, path), 0);
	assert_memory_equal(&a, &b, sizeof(a));

	/* load_or_create finds the existing one */
	memset(&b, 0, sizeof(b));
	assert_int_equal(identity_load_or_create(&b, path, &created), 0);
	assert_false(created);
	assert_memory_equal(&a, &b, sizeof(a));

	/* Saving over a file replaces it (rename), still 0600. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(identity_generate(&b), 0);
	assert_int_equal(identity_save(&b, path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(identity_load(&a, path), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	tmpdir_remove(&t, "device.json");
}

static void test_load_or_create(void **state)
{
	struct tmpdir t;
	struct identity a, b;
	char path[128];
	bool created = false;
	(void)state;

	tmpdir_make(&t);
	snprintf(path, sizeof(path), "%s/id.json", t.path);
	assert_int_equal(identity_load_or_create(&a, path, &created), 0);
	assert_true(created);
	assert_int_equal(identity_load_or_create(&b, path, &created), 0);
	assert_false(created);
	assert_memory_equal(&a, &b, sizeof(a));
	tmpdir_remove(&t, "id.json");

	/* A directory that does not exist: failure, not a crash. */
	assert_int_equal(identity_load_or_create(&a, "/nonexistent-clawpair/x/id.json", &created),
	                 -1);
	assert_false(created);
}

static void test_file_malformed(void **state)
{
	static const char *const bad[] = {
	        "",
	        "not json",
	        "[]",
	        "{}",
	        "{\"version\":2,\"seed\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	        "{\"version\":\"1\",\"seed\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	        "{\"version\":1,\"seed\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	        "{\"version\":1,\"seed\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	        "{\"version\":1,\"seed\":42}",
	        "{\"version\":1,\"seed\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"publicKey\":1}",
	        "{\"version\":1,\"seed\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"deviceId\":null}",
	        "{\"version\":1,\"seed\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"publicKey\":\"x\"}",
	        "{\"version\":1,\"seed\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	        "\"publicKey\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
	        "{\"version\":1,\"seed\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	        "\"deviceId\":\"21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9\"}",
	};
	struct tmpdir t;
	struct identity id;
	char path[128];
	(void)state;

	tmpdir_make(&t);
	snprintf(path, sizeof(path), "%s/id.json", t.path);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i], strlen(bad[i]));
		assert_int_equal(identity_load(&id, path), -2);
	}
	/* Control: the all-zero seed with its right key and id loads. */
	{
		const char *ok =
		        "{\"version\":1,\"seed\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
		        "\"publicKey\":\"O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik\","
		        "\"deviceId\":\"139e3940e64b5491722088d9a0d741628fc826e09475d341a78"
		        "0acde3c4b8070\"}";
		write_file(path, ok, strlen(ok));
		assert_int_equal(identity_load(&id, path), 0);
		assert_string_equal(id.pk_b64, "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik");
		/* The same bytes with an embedded NUL are refused. */
		{
			char buf[512];
			size_t n = strlen(ok);
			memcpy(buf, ok, n);
			buf[n] = '\0';
			memcpy(buf + n + 1, "xx", 2);
			write_file(path, buf, n + 3);
			assert_int_equal(identity_load(&id, path), -2);
		}
	}
	/* An oversized file is refused without reading it all. */
	{
		char *big = malloc(70000);
		assert_non_null(big);
		memset(big, ' ', 70000);
		write_file(path, big, 70000);
		free(big);
		assert_int_equal(identity_load(&id, path), -2);
	}
	/* A directory is not a file. */
	assert_true(identity_load(&id, t.path) < 0);
	tmpdir_remove(&t, "id.json");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_vector_keys),
	        cmocka_unit_test(test_vector_normalization),
	        cmocka_unit_test(test_vector_signatures),
	        cmocka_unit_test(test_bad_public_keys),
	        cmocka_unit_test(test_fingerprint),
	        cmocka_unit_test(test_sign_verify),
	        cmocka_unit_test(test_file_roundtrip),
	        cmocka_unit_test(test_load_or_create),
	        cmocka_unit_test(test_file_malformed),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
