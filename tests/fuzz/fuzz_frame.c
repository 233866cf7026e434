/* fuzz_frame.c: libFuzzer target for everything a pre-auth peer controls: frame_parse, then (for
 * a connect) connect_params_parse, the protocol and role checks, the signature payloads built from
 * the parsed params, key parsing and signature verification, and the error reply built from it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authpayload.h"
#include "connect.h"
#include "errors.h"
#include "frame.h"
#include "identity.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the contract broke: make libFuzzer keep the input. */
#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "fuzz_frame: check failed: %s (line %d)\n", #cond, \
			        __LINE__);                                                 \
			abort();                                                           \
		}                                                                          \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (identity_global_init() != 0)
		abort();
	return 0;
}

static bool valid_utf8(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c < 0x80         ? 1
		           : (c >> 5) == 6  ? 2
		           : (c >> 4) == 14 ? 3
		           : (c >> 3) == 30 ? 4
		                            : 0;
		if (n == 0 || i + n > len)
			return false;
		for (size_t k = 1; k < n; k++)
			if (((unsigned char)s[i + k] >> 6) != 2)
				return false;
		i += n;
	}
	return true;
}

/* The error reply a gateway would send must itself be a frame that parses back. */
static void check_error_reply(const char *id, enum cp_err err, const char *message)
{
	const struct cp_err_info *info = cp_err_info(err);
	CHECK(info != NULL);
	char *text = frame_build_res_err(id, err, message, NULL);
	if (!text)
		return;
	struct frame back;
	const char *why = NULL;
	CHECK(frame_parse(text, strlen(text), &back, &why) == 0);
	CHECK(back.type == FRAME_RES && !back.ok);
	CHECK(back.id && strcmp(back.id, id) == 0);
	frame_finish(&back);
	free(text);

	char reason[124];
	frame_close_reason(message ? message : info->close_reason, reason, sizeof(reason));
	CHECK(strlen(reason) <= 120);
	CHECK(valid_utf8(reason, strlen(reason)));
}

static void check_string(const char *s)
{
	if (s)
		CHECK(strlen(s) <= CONNECT_MAX_STRING);
}

/* Normalizing twice changes nothing more than normalizing once. */
static void check_normalize(const char *s)
{
	char once[CONNECT_MAX_STRING + 1], twice[CONNECT_MAX_STRING + 1];
	CHECK(authpayload_normalize_meta(s, once, sizeof(once)) >= 0);
	CHECK(authpayload_normalize_meta(once, twice, sizeof(twice)) >= 0);
	CHECK(strcmp(once, twice) == 0);
}

static void exercise_device(const struct connect_params *p)
{
	check_normalize(p->client_platform);
	check_normalize(p->client_device_family);

	uint8_t pk[IDENTITY_PK_BYTES];
	bool have_key =
	        p->device_public_key && identity_parse_public_key(p->device_public_key, pk) == 0;
	if (have_key) {
		char norm[64], dev_id[IDENTITY_DEVICE_ID_LEN + 1], fp[IDENTITY_FINGERPRINT_LEN + 1];
		CHECK(identity_normalize_public_key(p->device_public_key, norm, sizeof(norm)) >= 0);
		CHECK(strlen(norm) == IDENTITY_PK_B64_LEN);
		identity_device_id(pk, dev_id);
		identity_fingerprint(pk, fp);
		CHECK(identity_fingerprint_matches(pk, fp));
		CHECK(identity_fingerprint_matches(pk, dev_id));
		if (p->device_id)
			(void)identity_fingerprint_matches(pk, p->device_id);
	}

	/* The payload the gateway verifies, built the way the gateway builds it. */
	struct authpayload_params ap;
	connect_authpayload_params(p, &ap);
	CHECK(ap.token != NULL);
	for (int v = AUTHPAYLOAD_V1; v <= AUTHPAYLOAD_V3; v++) {
		char *payload = authpayload_build((enum authpayload_version)v, &ap);
		if (!payload)
			continue;
		char prefix[4];
		snprintf(prefix, sizeof(prefix), "v%d|", v);
		CHECK(strncmp(payload, prefix, 3) == 0);
		if (have_key && p->device_signature)
			(void)identity_verify(pk, payload, p->device_signature);
		free(payload);
	}
}

static void exercise_connect(struct frame *f)
{
	struct connect_params p;
	char why[256];
	memset(why, 'x', sizeof(why));
	why[sizeof(why) - 1] = '\0';
	enum cp_err err = connect_params_parse(f->params, &p, why, sizeof(why));
	if (err != CP_OK) {
		CHECK(err == CP_ERR_INVALID_CONNECT_PARAMS);
		CHECK(memchr(why, '\0', sizeof(why)) != NULL);
		check_error_reply(f->id, err, why);
		return;
	}

	CHECK(p.n_scopes <= CONNECT_MAX_SCOPES);
	CHECK(p.role != NULL);
	for (size_t i = 0; i < p.n_scopes; i++)
		CHECK(p.scopes[i] != NULL);
	check_string(p.client_id);
	check_string(p.client_mode);
	check_string(p.client_platform);
	check_string(p.device_id);
	check_string(p.device_public_key);
	check_string(p.device_signature);
	check_string(p.device_nonce);
	check_string(p.auth_token);
	if (p.client_id)
		CHECK(connect_client_id_known(p.client_id));
	if (p.client_mode)
		CHECK(connect_client_mode_known(p.client_mode));

	int chosen = 0;
	err = connect_check_protocol(&p, &chosen);
	if (err == CP_OK)
		CHECK(chosen == 3 || chosen == 4);
	else
		check_error_reply(f->id, err, NULL);
	err = connect_check_role(&p);
	if (err == CP_OK)
		CHECK(strcmp(p.role, "operator") == 0 || strcmp(p.role, "node") == 0);
	else
		check_error_reply(f->id, err, NULL);

	if (p.has_device)
		exercise_device(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame f;
	const char *why = NULL;
	if (frame_parse((const char *)data, size, &f, &why) != 0) {
		CHECK(why != NULL);
		return 0;
	}
	CHECK(f.root != NULL);
	switch (f.type) {
	case FRAME_REQ:
		CHECK(f.id && f.id[0] && f.method && f.method[0]);
		if (strcmp(f.method, "connect") == 0 && f.params)
			exercise_connect(&f);
		else
			check_error_reply(f.id, CP_ERR_UNKNOWN_METHOD, NULL);
		break;
	case FRAME_RES:
		CHECK(f.id != NULL);
		break;
	case FRAME_EVENT:
		CHECK(f.event != NULL);
		CHECK(f.seq >= -1);
		break;
	default:
		CHECK(!"unknown frame type");
	}
	frame_finish(&f);
	return 0;
}
