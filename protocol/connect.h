/* connect.h: validation of connect params against OpenClaw's closed key set. */
#ifndef CLAWPAIR_CONNECT_H
#define CLAWPAIR_CONNECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "authpayload.h"
#include "errors.h"

#define CONNECT_MAX_SCOPES 32
#define CONNECT_MAX_STRING 1024
/* caps, commands and permissions entries; far above what any client sends. */
#define CONNECT_MAX_ITEMS 1024

/* Borrowed pointers into the params cJSON tree; valid while that tree lives. */
struct connect_params {
	int64_t min_protocol, max_protocol;
	const char *client_id, *client_display_name, *client_version, *client_platform;
	const char *client_device_family, *client_model_identifier, *client_mode,
	        *client_instance_id;
	const char *role; /* effective: "operator" when omitted */
	bool role_given;
	const char *scopes[CONNECT_MAX_SCOPES];
	size_t n_scopes;
	bool scopes_given;
	cJSON *caps, *commands, *permissions; /* NULL when absent */
	bool has_device;
	const char *device_id, *device_public_key, *device_signature, *device_nonce;
	int64_t device_signed_at;
	const char *auth_token, *auth_password, *auth_device_token; /* NULL when absent */
	const char *locale, *user_agent, *path_env;
	/* Added with the 2026.9.6 keys. */
	const char *client_build_id, *client_time_zone;
	bool has_auth;
	const char *auth_bootstrap_token, *auth_approval_runtime_token;
	const char *auth_agent_runtime_identity_token;
	cJSON *computer_use, *worker_runs, *model_catalog; /* NULL when absent */
};

/* Validates params as OpenClaw 2026.1.30 and 2026.9.6 do: closed objects (an unknown key
 * anywhere is an error), types, client.id and client.mode from the known enums, strings at most
 * CONNECT_MAX_STRING bytes. Accepts the keys of both releases. On error returns
 * CP_ERR_INVALID_CONNECT_PARAMS and writes a one-line reason such as "at /client/id: must be
 * equal to one of the allowed values" into why. Protocol range and role are checked separately. */
enum cp_err connect_params_parse(cJSON *params, struct connect_params *out, char *why,
                                 size_t whysz);

/* CP_OK when [min, max] holds 3 or 4, else CP_ERR_PROTOCOL_MISMATCH. *chosen is 4 when 4 is
 * in range, else 3. */
enum cp_err connect_check_protocol(const struct connect_params *p, int *chosen);

/* CP_OK for "operator" or "node", else CP_ERR_INVALID_ROLE. */
enum cp_err connect_check_role(const struct connect_params *p);

bool connect_client_id_known(const char *id);
bool connect_client_mode_known(const char *mode);

/* The <token> field of the v2/v3 payload: auth.token, else auth.deviceToken, else
 * auth.bootstrapToken, else "" (2026.9.6; 2026.1.30 has only auth.token). Never NULL. */
const char *connect_signing_token(const struct connect_params *p);

/* Fills the payload parameters from parsed connect params (pointers borrowed from p). */
void connect_authpayload_params(const struct connect_params *p, struct authpayload_params *out);

/* Checks device.signature against the v3, then the v2 payload rebuilt from p, with the raw
 * Ed25519 public key pk (32 bytes). Returns the version that verified (3 or 2), or 0 (no
 * signature, or neither verifies). v1, without the nonce, is never accepted. */
int connect_verify_signature(const struct connect_params *p, const uint8_t pk[32]);

#endif
