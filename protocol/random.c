/* random.c: random identifiers from libsodium's CSPRNG. */
#include <stdint.h>

#include <sodium.h>

#include "b64url.h"
#include "random.h"

static const char hex[] = "0123456789abcdef";

void uuid_v4(char out[37])
{
	uint8_t b[16];
	size_t o = 0;

	randombytes_buf(b, sizeof(b));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	for (size_t i = 0; i < sizeof(b); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
}

void token_random_hex32(char out[33])
{
	uint8_t b[16];

	randombytes_buf(b, sizeof(b));
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[32] = '\0';
	sodium_memzero(b, sizeof(b));
}

void token_random_b64url43(char out[44])
{
	uint8_t b[32];

	randombytes_buf(b, sizeof(b));
	b64url_encode(b, sizeof(b), out, 44);
	sodium_memzero(b, sizeof(b));
}
