/* use_protocol.c: a C gateway's use of the installed libclawpair-protocol, built only from its
 * installed headers and `pkg-config --cflags --libs clawpair-protocol`: the deviceId of every key
 * of a vectors file, then a signed connect request parsed, validated and its signature verified
 * as a gateway does. Usage: use_protocol VECTORS.json. Prints one line per check; exit 0 or 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <clawpair/authpayload.h>
#include <clawpair/connect.h>
#include <clawpair/connect_build.h>
#include <clawpair/errors.h>
#include <clawpair/frame.h>
#include <clawpair/identity.h>

#define NONCE "473a3502-c059-4056-a0d6-15a3a14fc2f4"

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) != NULL) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
		}
	}
	fclose(f);
	return buf;
}

/* The deviceId of each key's PEM form equals the vectors' one. Returns the number checked, or
 * -1 on a mismatch. */
static int check_keys(const cJSON *keys)
{
	const cJSON *k;
	int n = 0;

	cJSON_ArrayForEach(k, keys)
	{
		const char *pem = cJSON_GetStringValue(cJSON_GetObjectItem(k, "publicKeyPem"));
		const char *want = cJSON_GetStringValue(cJSON_GetObjectItem(k, "deviceId"));
		uint8_t pk[IDENTITY_PK_BYTES];
		char id[IDENTITY_DEVICE_ID_LEN + 1];

		if (!pem || !want || identity_parse_public_key(pem, pk) < 0)
			return -1;
		identity_device_id(pk, id);
		printf("deviceId %s\n", id);
		if (strcmp(id, want) != 0)
			return -1;
		n++;
	}
	return n;
}

/* A connect built with a seed's identity, parsed and checked as a gateway does: its params
 * valid, its v2 signature good over the rebuilt payload, its deviceId the key's. */
static int check_connect(void)
{
	static const uint8_t seed[IDENTITY_SEED_BYTES] = {7};
	struct identity id;
	struct connect_spec spec;
	struct connect_params p;
	struct authpayload_params ap;
	struct frame f;
	const char *why = NULL;
	char reason[256], derived[IDENTITY_DEVICE_ID_LEN + 1];
	uint8_t pk[IDENTITY_PK_BYTES];
	char *req = NULL, *payload = NULL;
	int rc = -1;

	if (identity_from_seed(&id, seed) < 0)
		return -1;
	connect_spec_android(&spec);
	spec.identity = &id;
	spec.token = "shared-token";
	req = connect_request_build("1", &spec, NONCE, 1795479066100);
	if (!req || frame_parse(req, strlen(req), &f, &why) < 0) {
		printf("frame_parse: %s\n", why ? why : "no request built");
		free(req);
		return -1;
	}
	if (connect_params_parse(f.params, &p, reason, sizeof(reason)) != CP_OK) {
		printf("connect_params_parse: %s\n", reason);
		goto out;
	}
	connect_authpayload_params(&p, &ap);
	payload = authpayload_build(AUTHPAYLOAD_V2, &ap);
	if (!payload || identity_parse_public_key(p.device_public_key, pk) < 0 ||
	    !identity_verify(pk, payload, p.device_signature)) {
		printf("signature does not verify over %s\n", payload ? payload : "(none)");
		goto out;
	}
	identity_device_id(pk, derived);
	if (strcmp(derived, p.device_id) != 0 || strcmp(derived, id.device_id) != 0)
		goto out;
	printf("connect %s: role %s, v2 signature verified, deviceId %s\n", f.method, p.role,
	       derived);
	rc = 0;
out:
	free(payload);
	frame_finish(&f);
	free(req);
	return rc;
}

int main(int argc, char **argv)
{
	char *text;
	cJSON *root;
	int n;

	if (argc != 2) {
		fprintf(stderr, "usage: use_protocol VECTORS.json\n");
		return 2;
	}
	if (identity_global_init() < 0)
		return 1;
	text = read_all(argv[1]);
	root = text ? cJSON_Parse(text) : NULL;
	free(text);
	n = root ? check_keys(cJSON_GetObjectItem(root, "keys")) : -1;
	cJSON_Delete(root);
	if (n <= 0) {
		printf("FAIL: deviceIds of %s\n", argv[1]);
		return 1;
	}
	if (check_connect() < 0) {
		printf("FAIL: connect\n");
		return 1;
	}
	printf("ok: %d deviceIds as the vectors say; %s, %s\n", n,
	       cp_err_info(CP_ERR_MISSING_SCOPE)->wire_code,
	       cp_err_info(CP_ERR_MISSING_SCOPE)->details_code);
	return 0;
}
