/* probe.c: before any case, one operator connect with the shared token: is the gateway there,
 * does it take the token, and are the runner's own connections local to it. */
#include "probe.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "client.h"
#include "connect_build.h"
#include "errors.h"
#include "json.h"
#include "redact.h"
#include "session.h"

#define PROG "clawpair-conformance"
#define PROBE_TIMEOUT_MS 5000

/* Says why the probe's connect did not get hello-ok. Returns the exit status. */
static int probe_failed(const char *url, const char *token, enum client_session_outcome out,
                        const struct client_session *s)
{
	struct redact red;
	char *t, *shown;

	switch (out) {
	case CLIENT_SESSION_UNREACHABLE:
		if (strstr(client_session_why(s), CLIENT_TLS_MISMATCH))
			fprintf(stderr, PROG ": refusing the gateway: %s\n", client_session_why(s));
		else
			fprintf(stderr, PROG ": cannot reach the gateway at %s: %s\n", url,
			        client_session_why(s));
		break;
	case CLIENT_SESSION_NO_CHALLENGE:
		fprintf(stderr, PROG ": %s sent no connect.challenge\n", url);
		break;
	case CLIENT_SESSION_CLOSED:
		fprintf(stderr, PROG ": the gateway closed the probe (%d %s)\n",
		        client_session_close_code(s), client_session_close_reason(s));
		break;
	case CLIENT_SESSION_REFUSED:
		t = json_print(client_session_frame(s));
		redact_init(&red);
		redact_add(&red, token);
		shown = redact_text(&red, t);
		fprintf(stderr,
		        PROG ": the gateway refused an operator connect with this token: %s\n",
		        shown ? shown : "?");
		redact_finish(&red);
		free(shown);
		free(t);
		return CONF_PROBE_REFUSED;
	default:
		fprintf(stderr, PROG ": no answer to the probe's connect\n");
		break;
	}
	return CONF_PROBE_UNUSABLE;
}

/* Whether the probe's session is local (§8.10): a device-less operator with the shared token
 * has the scopes it asks for on a local connection, and none on a remote one (§8.13 TRUST-1).
 * NULL when local or when the gateway does not tell; else why not (static string). */
static const char *not_local(struct client_session *s, int timeout_ms)
{
	cJSON *res = client_session_call(s, "device.pair.list", cJSON_CreateObject(), timeout_ms);
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(res, "error");
	const char *dc = json_get_string(cJSON_GetObjectItemCaseSensitive(err, "details"), "code");
	const char *msg = json_get_string(err, "message");
	const struct cp_err_info *missing = cp_err_info(CP_ERR_MISSING_SCOPE);
	bool remote = (dc && !strcmp(dc, missing->details_code)) ||
	              (msg && !strncmp(msg, "missing scope", 13));

	cJSON_Delete(res);
	return remote ? "the runner's connections are not local to the gateway: its device-less "
	                "operator with the shared token got no scope for device.pair.list (spec "
	                "\u00a78.10, \u00a78.13 TRUST-1)"
	              : NULL;
}

/* The URL names a loopback address (or localhost): then the runner's connections are local by
 * definition (§8.10), and a gateway that treats them otherwise must fail the local cases rather
 * than have them skipped. */
static bool url_is_loopback(const char *url)
{
	const char *h = strstr(url ? url : "", "://");
	char host[64];
	size_t n;
	uint8_t a[16];
	static const uint8_t v6_loopback[16] = {[15] = 1};

	if (!h)
		return false;
	h += 3;
	if (*h == '[') {
		n = strcspn(++h, "]");
	} else {
		n = strcspn(h, ":/");
	}
	if (n == 0 || n >= sizeof(host))
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	if (!strcasecmp(host, "localhost"))
		return true;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	return inet_pton(AF_INET6, host, a) == 1 && memcmp(a, v6_loopback, 16) == 0;
}

int conf_probe(const char *url, const char *tls_fingerprint, const char *token, double scale,
               const char **why_remote)
{
	int timeout_ms = (int)(PROBE_TIMEOUT_MS * scale);
	struct client_session_opts so = {.conn = {.url = url, .tls_fingerprint = tls_fingerprint},
	                                 .timeout_ms = timeout_ms,
	                                 .connect_id = "probe"};
	struct client_ctx *ctx = client_ctx_create(NULL);
	struct client_session *s = ctx ? client_session_create(ctx, &so) : NULL;
	struct connect_spec spec;
	enum client_session_outcome out;
	int rc = 0;

	*why_remote = NULL;
	if (!s) {
		fprintf(stderr, PROG ": out of memory\n");
		client_ctx_destroy(ctx);
		return CONF_PROBE_UNUSABLE;
	}
	connect_spec_operator(&spec);
	spec.token = token;
	out = client_session_connect(s, &spec);
	if (out == CLIENT_SESSION_PENDING)
		out = client_session_await(s, timeout_ms);
	if (out != CLIENT_SESSION_HELLO)
		rc = probe_failed(url, token, out, s);
	else if (!url_is_loopback(url))
		*why_remote = not_local(s, timeout_ms);
	client_session_destroy(s);
	client_ctx_destroy(ctx);
	return rc;
}
