/* b64url.c: unpadded base64url encoding and OpenClaw-compatible lenient decoding. */
#include <string.h>

#include "b64url.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int b64url_encode(const uint8_t *in, size_t len, char *out, size_t outsz)
{
	size_t need = (len / 3) * 4 + (len % 3 ? len % 3 + 1 : 0);
	size_t o = 0;

	if (!out || (len && !in) || outsz < need + 1)
		return -1;
	for (size_t i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = alphabet[(v >> 6) & 63];
		out[o++] = alphabet[v & 63];
	}
	if (len % 3 == 1) {
		uint32_t v = (uint32_t)in[len - 1] << 16;
		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
	} else if (len % 3 == 2) {
		uint32_t v = (uint32_t)in[len - 2] << 16 | (uint32_t)in[len - 1] << 8;
		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
	return (int)o;
}

/* Both alphabets map to the same values because OpenClaw rewrites '-' and '_' to '+' and '/'
 * before decoding. */
static int value_of(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-' || c == '+')
		return 62;
	if (c == '_' || c == '/')
		return 63;
	return -1;
}

int b64url_decode(const char *in, size_t inlen, uint8_t *out, size_t outmax, size_t *outlen)
{
	size_t data = inlen, pad = 0, n, o = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (!in || !outlen || (outmax && !out))
		return -1;
	while (data > 0 && in[data - 1] == '=' && pad < 2) {
		data--;
		pad++;
	}
	if (data % 4 == 1 || (pad && data == 0))
		return -1;
	n = data / 4 * 3 + (data % 4 ? data % 4 - 1 : 0);
	if (n > outmax)
		return -1;
	for (size_t i = 0; i < data; i++) {
		int v = value_of((unsigned char)in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*outlen = o;
	return 0;
}
