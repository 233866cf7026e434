/* random.h: random identifiers from libsodium's CSPRNG (nonces, request ids, tokens). */
#ifndef CLAWPAIR_RANDOM_H
#define CLAWPAIR_RANDOM_H

/* Lowercase RFC 4122 version 4 UUID, 36 characters + NUL (the shape of crypto.randomUUID()). */
void uuid_v4(char out[37]);

/* 16 random bytes as 32 lowercase hex characters + NUL. */
void token_random_hex32(char out[33]);

/* 32 random bytes as 43 unpadded base64url characters + NUL (2026.9.6's device token shape). */
void token_random_b64url43(char out[44]);

#endif
