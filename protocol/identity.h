/* identity.h: Ed25519 device identity: keys, deviceId, fingerprint, sign and verify (libsodium). */
#ifndef CLAWPAIR_IDENTITY_H
#define CLAWPAIR_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDENTITY_PK_BYTES 32
#define IDENTITY_SK_BYTES 64
#define IDENTITY_SEED_BYTES 32
#define IDENTITY_SIG_BYTES 64
#define IDENTITY_DEVICE_ID_LEN 64 /* lowercase hex SHA-256 of the raw key */
#define IDENTITY_PK_B64_LEN 43 /* unpadded base64url of 32 bytes */
#define IDENTITY_SIG_B64_LEN 86 /* unpadded base64url of 64 bytes */
#define IDENTITY_FINGERPRINT_LEN 19 /* "xxxx:xxxx:xxxx:xxxx", first 16 hex chars of the deviceId */

struct identity {
	uint8_t pk[IDENTITY_PK_BYTES];
	uint8_t sk[IDENTITY_SK_BYTES];
	char device_id[IDENTITY_DEVICE_ID_LEN + 1];
	char pk_b64[IDENTITY_PK_B64_LEN + 1];
};

/* Must be called once before any other function (wraps sodium_init). Returns 0 or -1. */
int identity_global_init(void);

int identity_generate(struct identity *id);
int identity_from_seed(struct identity *id, const uint8_t seed[IDENTITY_SEED_BYTES]);

/* Lowercase hex SHA-256 of the raw key; out must hold IDENTITY_DEVICE_ID_LEN + 1. */
void identity_device_id(const uint8_t pk[IDENTITY_PK_BYTES], char *out);

/* Short string a person compares on both screens: the first 16 hex chars of the deviceId,
 * grouped by four with ':'. out must hold IDENTITY_FINGERPRINT_LEN + 1. */
void identity_fingerprint(const uint8_t pk[IDENTITY_PK_BYTES], char *out);

/* True when user_input (separators ':' '-' ' ' ignored, case-insensitive) is at least 16 hex
 * chars and a prefix of the deviceId of pk. */
bool identity_fingerprint_matches(const uint8_t pk[IDENTITY_PK_BYTES], const char *user_input);

/* Parses a public key as OpenClaw does: unpadded/padded base64url or base64 of the raw 32 bytes,
 * or a PEM SPKI ("-----BEGIN PUBLIC KEY-----") with the Ed25519 prefix 302a300506032b6570032100.
 * Returns 0, or -1 for anything else (wrong length, bad characters, other key types). */
int identity_parse_public_key(const char *s, uint8_t pk[IDENTITY_PK_BYTES]);

/* Normalized form of a public key string: unpadded base64url of the raw key. out >= 44 bytes. */
int identity_normalize_public_key(const char *s, char *out, size_t outsz);

/* Signs the UTF-8 payload; writes the unpadded base64url signature (86 chars + NUL). */
int identity_sign(const struct identity *id, const char *payload, char *sig_b64, size_t sig_b64sz);

/* Verifies a base64url (or base64, padded or not) signature over payload. */
bool identity_verify(const uint8_t pk[IDENTITY_PK_BYTES], const char *payload, const char *sig_b64);

/* Identity file: JSON {"version":1,"deviceId","publicKey","seed"} (base64url), mode 0600.
 * identity_load returns 0, -1 on a missing file (errno ENOENT), -2 on a malformed file. */
int identity_save(const struct identity *id, const char *path);
int identity_load(struct identity *id, const char *path);
/* Loads path, or generates and saves a new identity when it does not exist. *created is set. */
int identity_load_or_create(struct identity *id, const char *path, bool *created);

#endif
