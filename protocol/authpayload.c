/* authpayload.c: the device-auth signature payload strings v1, v2 and v3, byte for byte. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authpayload.h"

/* Length of the whitespace character at s (0 if none), with JavaScript's String.prototype.trim
 * set: ASCII \t \n \v \f \r and space, plus the Unicode space separators, line terminators and
 * the BOM, so a payload signed by a JavaScript client is rebuilt byte for byte. */
static size_t space_len(const unsigned char *s, size_t n)
{
	if (n >= 1 && (s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r')))
		return 1;
	if (n >= 2 && s[0] == 0xc2 && s[1] == 0xa0) /* U+00A0 */
		return 2;
	if (n >= 3 && s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) /* U+1680 */
		return 3;
	if (n >= 3 && s[0] == 0xe2 && s[1] == 0x80 &&
	    ((s[2] >= 0x80 && s[2] <= 0x8a) || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf))
		return 3; /* U+2000..200A, U+2028, U+2029, U+202F */
	if (n >= 3 && s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) /* U+205F */
		return 3;
	if (n >= 3 && s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) /* U+3000 */
		return 3;
	if (n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf) /* U+FEFF */
		return 3;
	return 0;
}

/* Length of the whitespace character ending at s[n-1] (0 if none). */
static size_t space_len_back(const unsigned char *s, size_t n)
{
	for (size_t k = 1; k <= 3 && k <= n; k++)
		if (space_len(s + n - k, k) == k)
			return k;
	return 0;
}

int authpayload_normalize_meta(const char *in, char *out, size_t outsz)
{
	const unsigned char *s = (const unsigned char *)(in ? in : "");
	size_t start = 0, end = strlen((const char *)s), k;

	if (!out || outsz == 0)
		return -1;
	while (start < end && (k = space_len(s + start, end - start)) > 0)
		start += k;
	while (end > start && (k = space_len_back(s + start, end - start)) > 0)
		end -= k;
	if (end - start + 1 > outsz)
		return -1;
	for (size_t i = start; i < end; i++) {
		unsigned char c = s[i];
		out[i - start] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	out[end - start] = '\0';
	return (int)(end - start);
}

const char *authpayload_token(const char *token, const char *device_token,
                              const char *bootstrap_token)
{
	if (token)
		return token;
	if (device_token)
		return device_token;
	return bootstrap_token ? bootstrap_token : "";
}

/* A tiny growable string: the payload is built in one pass without guessing its size. */
struct buf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *np;
		while (cap < b->len + n + 1)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np) {
			b->failed = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_field(struct buf *b, const char *s)
{
	put(b, "|", 1);
	put(b, s, strlen(s));
}

static void put_meta(struct buf *b, const char *s)
{
	size_t n = strlen(s ? s : "") + 1;
	char *tmp = malloc(n);

	if (!tmp) {
		b->failed = true;
		return;
	}
	authpayload_normalize_meta(s, tmp, n);
	puts_field(b, tmp);
	free(tmp);
}

char *authpayload_build(enum authpayload_version v, const struct authpayload_params *p)
{
	struct buf b = {0};
	char num[32];

	if (!p || !p->device_id || !p->client_id || !p->client_mode)
		return NULL;
	if (v != AUTHPAYLOAD_V1 && v != AUTHPAYLOAD_V2 && v != AUTHPAYLOAD_V3)
		return NULL;
	if (p->n_scopes && !p->scopes)
		return NULL;
	for (size_t i = 0; i < p->n_scopes; i++)
		if (!p->scopes[i])
			return NULL;

	put(&b, v == AUTHPAYLOAD_V1 ? "v1" : v == AUTHPAYLOAD_V2 ? "v2" : "v3", 2);
	puts_field(&b, p->device_id);
	puts_field(&b, p->client_id);
	puts_field(&b, p->client_mode);
	puts_field(&b, p->role ? p->role : "operator");
	put(&b, "|", 1);
	for (size_t i = 0; i < p->n_scopes; i++) {
		if (i)
			put(&b, ",", 1);
		put(&b, p->scopes[i], strlen(p->scopes[i]));
	}
	snprintf(num, sizeof(num), "%" PRId64, p->signed_at_ms);
	puts_field(&b, num);
	puts_field(&b, p->token ? p->token : "");
	/* OpenClaw's builder writes `nonce ?? ""`: a missing nonce is an empty field. */
	if (v != AUTHPAYLOAD_V1)
		puts_field(&b, p->nonce ? p->nonce : "");
	if (v == AUTHPAYLOAD_V3) {
		put_meta(&b, p->platform);
		put_meta(&b, p->device_family);
	}
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
