/* identity.c: Ed25519 device identity (libsodium): keys, deviceId, fingerprint, signatures and
 * the identity file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "b64url.h"
#include "fileio.h"
#include "identity.h"
#include "json.h"

/* DER SubjectPublicKeyInfo header of an Ed25519 key (RFC 8410); the raw key follows. */
static const uint8_t spki_prefix[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                        0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

#define PEM_BEGIN "-----BEGIN PUBLIC KEY-----"
#define PEM_END "-----END PUBLIC KEY-----"
/* Identity files are a few hundred bytes; anything much larger is not one. */
#define IDENTITY_FILE_MAX 65536

int identity_global_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

static void finish_identity(struct identity *id)
{
	identity_device_id(id->pk, id->device_id);
	b64url_encode(id->pk, IDENTITY_PK_BYTES, id->pk_b64, sizeof(id->pk_b64));
}

int identity_generate(struct identity *id)
{
	uint8_t seed[IDENTITY_SEED_BYTES];
	int rc;

	if (!id)
		return -1;
	randombytes_buf(seed, sizeof(seed));
	rc = identity_from_seed(id, seed);
	sodium_memzero(seed, sizeof(seed));
	return rc;
}

int identity_from_seed(struct identity *id, const uint8_t seed[IDENTITY_SEED_BYTES])
{
	if (!id || !seed)
		return -1;
	if (crypto_sign_seed_keypair(id->pk, id->sk, seed) != 0)
		return -1;
	finish_identity(id);
	return 0;
}

void identity_device_id(const uint8_t pk[IDENTITY_PK_BYTES], char *out)
{
	uint8_t h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, pk, IDENTITY_PK_BYTES);
	sodium_bin2hex(out, IDENTITY_DEVICE_ID_LEN + 1, h, sizeof(h));
}

void identity_fingerprint(const uint8_t pk[IDENTITY_PK_BYTES], char *out)
{
	char did[IDENTITY_DEVICE_ID_LEN + 1];
	size_t o = 0;

	identity_device_id(pk, did);
	for (size_t i = 0; i < 16; i++) {
		if (i && i % 4 == 0)
			out[o++] = ':';
		out[o++] = did[i];
	}
	out[o] = '\0';
}

bool identity_fingerprint_matches(const uint8_t pk[IDENTITY_PK_BYTES], const char *user_input)
{
	char did[IDENTITY_DEVICE_ID_LEN + 1];
	size_t n = 0;

	if (!pk || !user_input)
		return false;
	identity_device_id(pk, did);
	for (const char *p = user_input; *p; p++) {
		char c = *p;
		if (c == ':' || c == '-' || c == ' ')
			continue;
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		if (n >= IDENTITY_DEVICE_ID_LEN || did[n] != c)
			return false;
		n++;
	}
	return n >= 16;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* PEM body: the base64 lines between the armour lines, whitespace dropped. */
static int parse_pem(const char *s, uint8_t pk[IDENTITY_PK_BYTES])
{
	const char *begin = strstr(s, PEM_BEGIN), *end;
	char body[128];
	uint8_t der[sizeof(spki_prefix) + IDENTITY_PK_BYTES];
	size_t n = 0, derlen = 0;

	if (!begin)
		return -1;
	for (const char *p = s; p < begin; p++)
		if (!is_space(*p))
			return -1;
	begin += strlen(PEM_BEGIN);
	end = strstr(begin, PEM_END);
	if (!end)
		return -1;
	for (const char *p = end + strlen(PEM_END); *p; p++)
		if (!is_space(*p))
			return -1;
	for (const char *p = begin; p < end; p++) {
		if (is_space(*p))
			continue;
		if (n + 1 >= sizeof(body))
			return -1;
		body[n++] = *p;
	}
	body[n] = '\0';
	if (b64url_decode(body, n, der, sizeof(der), &derlen) != 0 || derlen != sizeof(der))
		return -1;
	if (memcmp(der, spki_prefix, sizeof(spki_prefix)) != 0)
		return -1;
	memcpy(pk, der + sizeof(spki_prefix), IDENTITY_PK_BYTES);
	return 0;
}

int identity_parse_public_key(const char *s, uint8_t pk[IDENTITY_PK_BYTES])
{
	uint8_t raw[IDENTITY_PK_BYTES];
	size_t len = 0;

	if (!s || !pk)
		return -1;
	if (strstr(s, "BEGIN"))
		return parse_pem(s, pk);
	if (b64url_decode(s, strlen(s), raw, sizeof(raw), &len) != 0 || len != sizeof(raw))
		return -1;
	memcpy(pk, raw, sizeof(raw));
	return 0;
}

int identity_normalize_public_key(const char *s, char *out, size_t outsz)
{
	uint8_t pk[IDENTITY_PK_BYTES];

	if (!out || identity_parse_public_key(s, pk) != 0)
		return -1;
	return b64url_encode(pk, sizeof(pk), out, outsz) < 0 ? -1 : 0;
}

int identity_sign(const struct identity *id, const char *payload, char *sig_b64, size_t sig_b64sz)
{
	uint8_t sig[IDENTITY_SIG_BYTES];

	if (!id || !payload || !sig_b64 || sig_b64sz < IDENTITY_SIG_B64_LEN + 1)
		return -1;
	if (crypto_sign_detached(sig, NULL, (const unsigned char *)payload, strlen(payload),
	                         id->sk) != 0)
		return -1;
	return b64url_encode(sig, sizeof(sig), sig_b64, sig_b64sz) < 0 ? -1 : 0;
}

bool identity_verify(const uint8_t pk[IDENTITY_PK_BYTES], const char *payload, const char *sig_b64)
{
	uint8_t sig[IDENTITY_SIG_BYTES];
	size_t len = 0;

	if (!pk || !payload || !sig_b64)
		return false;
	if (b64url_decode(sig_b64, strlen(sig_b64), sig, sizeof(sig), &len) != 0 ||
	    len != sizeof(sig))
		return false;
	return crypto_sign_verify_detached(sig, (const unsigned char *)payload, strlen(payload),
	                                   pk) == 0;
}

int identity_save(const struct identity *id, const char *path)
{
	char seed_b64[B64URL_ENCODED_SIZE(IDENTITY_SEED_BYTES)];
	char *text = NULL, *tmp = NULL;
	cJSON *root = NULL;
	int fd, rc = -1;
	size_t tmpsz;

	if (!id || !path)
		return -1;
	/* libsodium's secret key is seed || public key. */
	b64url_encode(id->sk, IDENTITY_SEED_BYTES, seed_b64, sizeof(seed_b64));
	root = cJSON_CreateObject();
	if (!root || !cJSON_AddNumberToObject(root, "version", 1) ||
	    !cJSON_AddStringToObject(root, "deviceId", id->device_id) ||
	    !cJSON_AddStringToObject(root, "publicKey", id->pk_b64) ||
	    !cJSON_AddStringToObject(root, "seed", seed_b64))
		goto cleanup;
	text = cJSON_Print(root);
	if (!text)
		goto cleanup;
	tmpsz = strlen(path) + 32;
	tmp = malloc(tmpsz);
	if (!tmp)
		goto cleanup;
	snprintf(tmp, tmpsz, "%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fileio_commit(fd, tmp, path, text, NULL) < 0)
		goto cleanup;
	fileio_sync_parent(path);
	rc = 0;
cleanup:
	free(tmp);
	if (text) {
		sodium_memzero(text, strlen(text));
		free(text);
	}
	cJSON_Delete(root);
	sodium_memzero(seed_b64, sizeof(seed_b64));
	return rc;
}

int identity_load(struct identity *id, const char *path)
{
	uint8_t seed[IDENTITY_SEED_BYTES];
	struct identity tmp;
	size_t len = 0, seedlen = 0;
	cJSON *root = NULL;
	const char *seed_s, *pk_s, *did_s;
	int64_t version = 0;
	char *text;
	int rc = -2;

	if (!id || !path) {
		errno = EINVAL;
		return -1;
	}
	if (fileio_read(AT_FDCWD, path, IDENTITY_FILE_MAX, &text, &len) < 0)
		return errno == EFBIG ? -2 : -1;
	if (strlen(text) != len)
		goto cleanup;
	root = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(root))
		goto cleanup;
	if (!json_get_int64(root, "version", &version) || version != 1)
		goto cleanup;
	/* Present but not a string is as malformed as a wrong value. */
	if ((cJSON_GetObjectItemCaseSensitive(root, "publicKey") &&
	     !json_get_string(root, "publicKey")) ||
	    (cJSON_GetObjectItemCaseSensitive(root, "deviceId") &&
	     !json_get_string(root, "deviceId")))
		goto cleanup;
	seed_s = json_get_string(root, "seed");
	pk_s = json_get_string(root, "publicKey");
	did_s = json_get_string(root, "deviceId");
	if (!seed_s || b64url_decode(seed_s, strlen(seed_s), seed, sizeof(seed), &seedlen) != 0 ||
	    seedlen != sizeof(seed))
		goto cleanup;
	if (identity_from_seed(&tmp, seed) != 0)
		goto cleanup;
	/* The stored key and id are redundant; a mismatch means the file was edited or damaged. */
	if (pk_s) {
		uint8_t pk[IDENTITY_PK_BYTES];
		if (identity_parse_public_key(pk_s, pk) != 0 || memcmp(pk, tmp.pk, sizeof(pk)) != 0)
			goto cleanup;
	}
	if (did_s && strcmp(did_s, tmp.device_id) != 0)
		goto cleanup;
	*id = tmp;
	rc = 0;

cleanup:
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(&tmp, sizeof(tmp));
	cJSON_Delete(root);
	sodium_memzero(text, len);
	free(text);
	return rc;
}

int identity_load_or_create(struct identity *id, const char *path, bool *created)
{
	int rc;

	if (created)
		*created = false;
	rc = identity_load(id, path);
	if (rc == 0 || rc == -2 || errno != ENOENT)
		return rc;
	if (identity_generate(id) != 0 || identity_save(id, path) != 0)
		return -1;
	if (created)
		*created = true;
	return 0;
}
