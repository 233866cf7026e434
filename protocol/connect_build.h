/* connect_build.h: connect params as OpenClaw clients send them (the Android app's and the CLI's
 * shapes), signed with a device identity over the challenge nonce; and the connect request. */
#ifndef CLAWPAIR_CONNECT_BUILD_H
#define CLAWPAIR_CONNECT_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "frame.h"
#include "identity.h"

/* The client version the built connects announce (the OpenClaw release they behave like). */
#define CONNECT_CLIENT_VERSION "2026.1.30"

enum connect_sig {
	CONNECT_SIG_V2 = 2, /* v2 payload (OpenClaw 2026.1.30 and later) */
	CONNECT_SIG_V3 = 3, /* v3 payload (platform and deviceFamily signed too) */
	CONNECT_SIG_V1 = 1, /* v1 payload (no nonce in it), which this protocol refuses */
	CONNECT_SIG_NONE = 0, /* device without signature field: a malformed connect */
	CONNECT_SIG_BAD = -1, /* a valid-looking signature over the wrong bytes */
};

enum connect_nonce {
	CONNECT_NONCE_CHALLENGE = 0, /* the challenge's nonce */
	CONNECT_NONCE_WRONG, /* a different, well-formed UUID */
	CONNECT_NONCE_NONE, /* device.nonce omitted (signed as v1, without a nonce) */
};

/* What goes into one connect. NULL strings and *_omit arrays are left out of the params. */
struct connect_spec {
	const char *role;
	const char *client_id, *client_mode, *platform, *device_family, *display_name;
	const char *version, *model_identifier, *instance_id;
	const char *const *scopes;
	size_t n_scopes;
	bool scopes_omit;
	const char *const *caps;
	size_t n_caps;
	bool caps_omit;
	const char *const *commands;
	size_t n_commands;
	bool commands_omit;
	const char *token; /* auth.token; NULL: none */
	/* auth.bootstrapToken; NULL: none. Without a token it is the signature's <token>. With
	 * neither, no auth object is sent. */
	const char *bootstrap_token;
	const char *locale, *user_agent;
	const struct identity *identity; /* NULL: no device object */
	enum connect_sig sig;
	enum connect_nonce nonce;
	int64_t signed_at_offset_ms;
	int min_protocol, max_protocol;
};

/* The Android app's connect: openclaw-android / node / android / Android, protocol 3..4,
 * scopes [], caps [], commands [], locale en-US, signature v2. */
void connect_spec_android(struct connect_spec *s);
/* A device-less operator connect with the shared token (client cli/cli). */
void connect_spec_operator(struct connect_spec *s);

/* Builds the connect params (only keys OpenClaw's closed schema accepts) and signs them over
 * the challenge nonce at wall clock wall_ms. Returns a new cJSON object, or NULL. */
cJSON *connect_params_build(const struct connect_spec *s, const char *challenge_nonce,
                            int64_t wall_ms);

/* The whole connect request frame {"type":"req","id":id,"method":"connect","params":...} as
 * compact text (malloc'd), or NULL. */
char *connect_request_build(const char *id, const struct connect_spec *s,
                            const char *challenge_nonce, int64_t wall_ms);

#endif
