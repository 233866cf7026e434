/* b64url.h: unpadded base64url encoding and OpenClaw's lenient decoding. */
#ifndef CLAWPAIR_B64URL_H
#define CLAWPAIR_B64URL_H

#include <stddef.h>
#include <stdint.h>

/* Characters needed to encode n bytes, without padding, plus the NUL. */
#define B64URL_ENCODED_SIZE(n) ((((n)*4) + 2) / 3 + 1)

/* Encodes len bytes as unpadded base64url into out (NUL-terminated).
 * Returns the string length, or -1 if outsz is too small. */
int b64url_encode(const uint8_t *in, size_t len, char *out, size_t outsz);

/* Decodes base64url or standard base64, padded or not (OpenClaw accepts both).
 * Rejects any other character, embedded NUL, and bad length. Returns 0 and sets *outlen,
 * or -1 on malformed input or if more than outmax bytes would be written. */
int b64url_decode(const char *in, size_t inlen, uint8_t *out, size_t outmax, size_t *outlen);

#endif
