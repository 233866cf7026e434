/* authpayload.h: the device-auth signature payload strings v1, v2 and v3, byte for byte. */
#ifndef CLAWPAIR_AUTHPAYLOAD_H
#define CLAWPAIR_AUTHPAYLOAD_H

#include <stddef.h>
#include <stdint.h>

enum authpayload_version { AUTHPAYLOAD_V1 = 1, AUTHPAYLOAD_V2 = 2, AUTHPAYLOAD_V3 = 3 };

struct authpayload_params {
	const char *device_id;
	const char *client_id;
	const char *client_mode;
	const char *role; /* effective role ("operator" when omitted) */
	const char *const *scopes; /* as sent, joined with ',' in order; NULL or n_scopes 0: "" */
	size_t n_scopes;
	int64_t signed_at_ms;
	const char *token; /* authpayload_token(), or NULL for "" */
	const char *nonce; /* v2, v3; NULL for "" */
	const char *platform; /* v3, normalized by authpayload_normalize_meta */
	const char *device_family; /* v3 */
};

/* The <token> field: token if present (even empty), else device_token, else bootstrap_token,
 * else "" (auth.token, auth.deviceToken and auth.bootstrapToken of the connect). Never NULL. */
const char *authpayload_token(const char *token, const char *device_token,
                              const char *bootstrap_token);

/* Trims ASCII whitespace and lowercases A-Z only (OpenClaw's normalizeDeviceMetadataForAuth).
 * NULL becomes "". Returns the length, or -1 if outsz is too small. */
int authpayload_normalize_meta(const char *in, char *out, size_t outsz);

/* Builds the payload. Returns a malloc'd NUL-terminated string, or NULL on bad arguments
 * (a field containing '|' is allowed and copied as is: OpenClaw does no escaping). */
char *authpayload_build(enum authpayload_version v, const struct authpayload_params *p);

#endif
