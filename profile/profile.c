/* profile.c: the client behaviour profiles (the table, with what each number is based on in
 * fake-node/README.md) and profile_decide, the reconnect policy every profile goes through. */
#include "profile.h"

#include <math.h>
#include <string.h>

#include "errors.h"

/* RFC 6455's 1006: the connection ended without a close frame; the client library reports a
 * connection that could not be opened so, with local_close set. */
#define CLOSE_NO_FRAME 1006
/* RFC 6455's 1008 (policy violation): what OpenClaw clients close with after a refused connect */
#define CLOSE_POLICY 1008
/* RFC 6455's 1012 (service restart) */
#define CLOSE_SERVICE_RESTART 1012
/* RFC 6455's 1013 (try again later): the 2026.9.6 client's close before a startup retry */
#define CLOSE_TRY_AGAIN 1013
/* The 2026.9.6 client's own close when its connect timer fires (an application code) */
#define CLOSE_CONNECT_TIMEOUT 4000

static const char *const operator_rw[] = {"operator.read", "operator.write"};

static const struct profile profiles[PROFILE_COUNT] = {
        [PROFILE_REFERENCE] =
                {
                        .name = "reference",
                        .summary = "a node that does what spec/pairing.md section 10 asks: "
                                   "the Android app's connect, re-pairs after 4408, waits out "
                                   "1001 and 1012, jittered backoff (the default)",
                        .policy = PROFILE_POLICY_ANDROID,
                        .role = "node",
                        .client_id = "openclaw-android",
                        .client_mode = "node",
                        .platform = "android",
                        .device_family = "Android",
                        .version = "2026.1.30",
                        .min_protocol = 3,
                        .max_protocol = 4,
                        .sig = 2,
                        .backoff_initial_ms = 1000,
                        .backoff_factor = 2.0,
                        .backoff_max_ms = 30000,
                        .backoff_jitter = 0.5,
                        .pairing_retry_ms = 6000,
                        .repair_after_expiry = true,
                        .retry_after_shutdown = true,
                        .basis = "spec/pairing.md section 10 (CLIENT-1..15) on the android "
                                 "profile",
                },
        [PROFILE_ANDROID] =
                {
                        .name = "android",
                        .summary = "the OpenClaw Android app on its pairing screen",
                        .policy = PROFILE_POLICY_ANDROID,
                        .role = "node",
                        .client_id = "openclaw-android",
                        .client_mode = "node",
                        .platform = "android",
                        .device_family = "Android",
                        .version = "2026.1.30",
                        .min_protocol = 3,
                        .max_protocol = 4,
                        .sig = 2,
                        .backoff_initial_ms = 1000,
                        .backoff_factor = 2.0,
                        .backoff_max_ms = 30000,
                        .pairing_retry_ms = 6000,
                        .basis = "clawpair's model of the app (fake-node/README.md); the "
                                 "app's code is not in the lab",
                },
        [PROFILE_NODE_HOST_2026_1_30] =
                {
                        .name = "node-host-2026.1.30",
                        .summary = "`openclaw node run` of OpenClaw 2026.1.30: no connect "
                                   "timeout, exits 0 on any close",
                        .policy = PROFILE_POLICY_EXIT_ON_CLOSE,
                        .role = "node",
                        .client_id = "node-host",
                        .client_mode = "node",
                        .platform = "linux",
                        .version = "2026.1.30",
                        .min_protocol = 3,
                        .max_protocol = 3,
                        .sig = 2,
                        .error_close_code = CLOSE_POLICY,
                        .error_close_reason = "connect failed",
                        .backoff_initial_ms = 1000,
                        .backoff_factor = 2.0,
                        .backoff_max_ms = 30000,
                        .hello_resets_backoff = true,
                        .exit_status = 0,
                        .basis = "dist/gateway/client.js and dist/node-host/runner.js of "
                                 "openclaw@2026.1.30",
                },
        [PROFILE_NODE_HOST_2026_9_6] =
                {
                        .name = "node-host-2026.9.6",
                        .summary = "`openclaw node run` of OpenClaw 2026.9.6: 15 s connect "
                                   "timeout, backoff 1-30 s reset only by hello-ok",
                        .policy = PROFILE_POLICY_GATEWAY_CLIENT,
                        .role = "node",
                        .client_id = "node-host",
                        .client_mode = "node",
                        .platform = "linux",
                        .device_family = "Linux",
                        .version = "2026.9.6",
                        .min_protocol = 3,
                        .max_protocol = 4,
                        .sig = 3,
                        .hello_timeout_ms = 15000,
                        .timeout_close_code = CLOSE_CONNECT_TIMEOUT,
                        .timeout_close_reason = "connect timeout",
                        .error_close_code = CLOSE_POLICY,
                        .error_close_reason = "connect failed",
                        .backoff_initial_ms = 1000,
                        .backoff_factor = 2.0,
                        .backoff_max_ms = 30000,
                        .backoff_jitter = 0.0,
                        .hello_resets_backoff = true,
                        .shared_token_only = true,
                        .startup_retry_default_ms = 500,
                        .startup_retry_min_ms = 100,
                        .startup_retry_max_ms = 2000,
                        .startup_close_code = CLOSE_TRY_AGAIN,
                        .startup_close_reason = "gateway starting",
                        .basis = "dist/client-CpsABkfT.mjs, timeouts-D2XMKe-X.mjs, "
                                 "src-D4OikzaT.mjs and runner-2BVooclp.mjs of "
                                 "openclaw@2026.9.6",
                },
        [PROFILE_OPENCLAW_NODE_0_14] =
                {
                        .name = "openclaw-node-0.14",
                        .summary = "the npm client openclaw-node 0.14.0 (an operator "
                                   "device): no timeout, backoff 1-30 s, 10 reconnects",
                        .policy = PROFILE_POLICY_CAPPED_BACKOFF,
                        .role = "operator",
                        .client_id = "gateway-client",
                        .client_mode = "backend",
                        .platform = "linux",
                        .version = "0.3.0",
                        .scopes = operator_rw,
                        .n_scopes = 2,
                        .min_protocol = 4,
                        .max_protocol = 4,
                        .sig = 2,
                        .backoff_initial_ms = 1000,
                        .backoff_factor = 2.0,
                        .backoff_max_ms = 30000,
                        .hello_resets_backoff = true,
                        .max_reconnects = 10,
                        .basis = "dist/index.mjs of openclaw-node@0.14.0",
                },
};

const struct profile *profile_get(enum profile_id id)
{
	return (unsigned)id < PROFILE_COUNT ? &profiles[id] : NULL;
}

const struct profile *profile_find(const char *name)
{
	for (int i = 0; name && i < PROFILE_COUNT; i++) {
		if (!strcmp(profiles[i].name, name))
			return &profiles[i];
	}
	return NULL;
}

int profile_backoff_ms(const struct profile *p, int n, double r)
{
	double base = p->backoff_initial_ms * pow(p->backoff_factor, n < 0 ? 0 : n);

	if (base > p->backoff_max_ms)
		base = p->backoff_max_ms;
	if (r < 0 || r >= 1)
		r = 0;
	return (int)lround(base * (1.0 + p->backoff_jitter * r));
}

struct profile_state profile_state_init(uint64_t deadline_ms)
{
	return (struct profile_state){.deadline_ms = deadline_ms};
}

/* ---- reading refusals ---- */

/* The shared- and device-token refusals of the table and of OpenClaw all start with the word
 * before the ':' of the table's reason ("unauthorized"). */
static bool says_unauthorized(const char *s)
{
	const char *reason = cp_err_info(CP_ERR_AUTH_TOKEN_MISMATCH)->close_reason;

	return s && !strncmp(s, reason, strcspn(reason, ":"));
}

bool profile_error_is_auth(const char *details_code, const char *message, int close_code,
                           const char *close_reason)
{
	/* DEVICE_TOKEN_*: OpenClaw's device-token refusals, which the table does not have */
	if (details_code &&
	    (!strcmp(details_code, cp_err_info(CP_ERR_AUTH_TOKEN_MISMATCH)->details_code) ||
	     !strcmp(details_code, cp_err_info(CP_ERR_AUTH_TOKEN_MISSING)->details_code) ||
	     !strncmp(details_code, "DEVICE_TOKEN", 12)))
		return true;
	if (says_unauthorized(message))
		return true;
	return close_code == cp_err_info(CP_ERR_AUTH_TOKEN_MISMATCH)->close_code &&
	       says_unauthorized(close_reason);
}

static bool closed_with(int code, enum cp_err err)
{
	return code == cp_err_info(err)->close_code;
}

static bool str_is(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

static bool in_list(const char *s, const char *const *list)
{
	for (; s && *list; list++) {
		if (!strcmp(s, *list))
			return true;
	}
	return false;
}

/* ---- the tool's own verdicts, the same for every profile ---- */

/* A URL where nothing answers, or something that is not a gateway: every run ends there, since
 * the real clients' endless retries would not tell the user anything. Returns true with *kind. */
static bool not_a_gateway(const struct profile_attempt *a, enum profile_retry_kind *kind)
{
	if (a->end == PROFILE_END_NO_CHALLENGE) {
		if (a->socket_open)
			*kind = PROFILE_GIVE_UP_REFUSED; /* something answers, but not a gateway */
		else if (!a->reached_gateway)
			*kind = PROFILE_GIVE_UP_UNREACHABLE;
		else
			return false;
		return true;
	}
	if (!a->reached_gateway && !a->hello && a->close_code == CLOSE_NO_FRAME && a->local_close) {
		*kind = PROFILE_GIVE_UP_UNREACHABLE;
		return true;
	}
	if (a->garbage) {
		*kind = PROFILE_GIVE_UP_REFUSED;
		return true;
	}
	return false;
}

/* ---- android ---- */

static enum profile_retry_kind android_after_close(const struct profile *p,
                                                   const struct profile_attempt *a)
{
	const struct cp_err_info *expired = cp_err_info(CP_ERR_PAIRING_EXPIRED);
	const struct cp_err_info *required = cp_err_info(CP_ERR_PAIRING_REQUIRED);
	const char *reason = a->close_reason ? a->close_reason : "";
	const char *details = a->error_details ? a->error_details : "";
	int code = a->close_code;
	bool auth_error =
	        a->error && profile_error_is_auth(a->error_details, a->error_message, 0, NULL);
	/* an error res other than OpenClaw's "pairing required", which only means "wait" */
	bool final_error = a->error && strcmp(details, required->details_code) != 0;

	if (a->end == PROFILE_END_NO_CHALLENGE)
		return PROFILE_RETRY_BACKOFF; /* it answered before: it went away, back off */
	if (a->used_device_token && !a->hello &&
	    (auth_error || profile_error_is_auth(NULL, NULL, code, reason)))
		return PROFILE_RETRY_SHARED_TOKEN; /* the gateway forgot or revoked the token */
	if (closed_with(code, CP_ERR_PAIRING_REJECTED) ||
	    closed_with(code, CP_ERR_PAIRING_SUPERSEDED) ||
	    closed_with(code, CP_ERR_DEVICE_REMOVED))
		return PROFILE_GIVE_UP_REFUSED;
	if (p->repair_after_expiry && (closed_with(code, CP_ERR_PAIRING_EXPIRED) ||
	                               strcmp(details, expired->details_code) == 0))
		return PROFILE_RETRY_PAIRING; /* the request expired: ask again */
	if (p->retry_after_shutdown &&
	    (closed_with(code, CP_ERR_SHUTDOWN) || code == CLOSE_SERVICE_RESTART ||
	     str_is(a->error_code, cp_err_info(CP_ERR_SHUTDOWN)->wire_code)))
		return PROFILE_RETRY_BACKOFF; /* the gateway went away: it comes back */
	if ((final_error && !a->pending && code != required->close_code) || auth_error)
		return PROFILE_GIVE_UP_REFUSED;
	if (final_error && *details && !strstr(reason, required->close_reason))
		return PROFILE_GIVE_UP_REFUSED;
	if (a->hello)
		return PROFILE_RETRY_BACKOFF;
	if (code == required->close_code || closed_with(code, CP_ERR_PAIRING_EXPIRED) || a->pending)
		return PROFILE_RETRY_PAIRING;
	return PROFILE_RETRY_BACKOFF;
}

/* ---- OpenClaw 2026.9.x GatewayClient (node host) ---- */

/* details.code values after which the client stops reconnecting (its reconnect policy's
 * non-recoverable set; OpenClaw's names, some of which this protocol's table lacks) */
static const char *const pause_codes[] = {
        "AUTH_TOKEN_MISSING",
        "AUTH_BOOTSTRAP_TOKEN_INVALID",
        "AUTH_PASSWORD_MISSING",
        "AUTH_PASSWORD_MISMATCH",
        "AUTH_RATE_LIMITED",
        "AUTH_DEVICE_TOKEN_MISMATCH",
        "AUTH_SCOPE_MISMATCH",
        "AUTH_IDENTITY_HEADER_REQUIRED",
        "AUTH_VERIFIED_USER_REQUIRED",
        "CONTROL_UI_BUILD_MISMATCH",
        "PAIRING_REQUIRED",
        "CONTROL_UI_DEVICE_IDENTITY_REQUIRED",
        "DEVICE_IDENTITY_REQUIRED",
        "AUTH_TOKEN_MISMATCH",
        "PROTOCOL_MISMATCH",
        "CLIENT_VERSION_MISMATCH",
        NULL,
};
/* ... and of those, the ones after which the node host exits (status 1) for its supervisor */
static const char *const exit_codes[] = {
        "AUTH_TOKEN_MISSING",           "AUTH_TOKEN_MISMATCH",
        "AUTH_BOOTSTRAP_TOKEN_INVALID", "AUTH_PASSWORD_MISSING",
        "AUTH_PASSWORD_MISMATCH",       "AUTH_IDENTITY_HEADER_REQUIRED",
        "CLIENT_VERSION_MISMATCH",      NULL,
};

static bool is_startup_retry(const struct profile_attempt *a)
{
	return a->error && a->error_retryable &&
	       str_is(a->error_code, cp_err_info(CP_ERR_SHUTDOWN)->wire_code) &&
	       str_is(a->error_reason, "startup-sidecars");
}

void profile_error_close(const struct profile *p, const struct profile_attempt *a, int *code,
                         const char **reason)
{
	bool startup = p->policy == PROFILE_POLICY_GATEWAY_CLIENT && is_startup_retry(a);

	*code = startup ? p->startup_close_code : p->error_close_code;
	*reason = startup ? p->startup_close_reason : p->error_close_reason;
	if (!*reason)
		*reason = "";
}

static int clamp_int(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static void gateway_client(const struct profile *p, const struct profile_attempt *a,
                           const struct profile_state *st, double r, struct profile_retry *out)
{
	const char *code = a->error ? a->error_details : NULL;
	int wait;

	if (is_startup_retry(a)) {
		int ms = a->error_retry_after_ms >= 0 ? a->error_retry_after_ms
		                                      : p->startup_retry_default_ms;

		out->kind = PROFILE_RETRY_FIXED;
		out->wait_ms = clamp_int(ms, p->startup_retry_min_ms, p->startup_retry_max_ms);
		out->why = "a startup retry: the gateway's delay, the backoff unchanged";
		return;
	}
	/* a pairing refusal that says "wait" is not terminal */
	if (str_is(code, "PAIRING_REQUIRED") &&
	    (a->error_no_pause || str_is(a->error_next_step, "wait_then_retry")))
		code = NULL;
	if (in_list(code, exit_codes)) {
		out->kind = PROFILE_EXIT;
		out->exit_status = 1;
		out->why = "a terminal refusal: the node host exits for its supervisor";
		return;
	}
	if (in_list(code, pause_codes)) {
		out->kind = PROFILE_PAUSE;
		out->why = "a terminal refusal: reconnects paused until an operator acts";
		return;
	}
	wait = profile_backoff_ms(p, st->failures, r);
	if (a->error && a->error_retryable && a->error_retry_after_ms > wait)
		wait = a->error_retry_after_ms;
	out->kind = PROFILE_RETRY_BACKOFF;
	out->wait_ms = wait;
	out->next.failures = st->failures + 1;
	out->why = a->own_timeout ? "its own connect timeout: the backoff grows"
	                          : "any other close: the backoff grows";
}

/* ---- the decision ---- */

static void android(const struct profile *p, const struct profile_attempt *a,
                    const struct profile_state *st, double r, struct profile_retry *out)
{
	out->kind = android_after_close(p, a);
	switch (out->kind) {
	case PROFILE_RETRY_SHARED_TOKEN:
		out->forget_device_token = true;
		out->why = "the device token was refused: the shared token at once";
		break;
	case PROFILE_RETRY_PAIRING:
		out->wait_ms = p->pairing_retry_ms;
		out->next.failures = 0;
		out->why = "waiting for approval: the pairing screen's cadence";
		break;
	case PROFILE_RETRY_BACKOFF:
		out->wait_ms = profile_backoff_ms(p, st->failures, r);
		out->next.failures = st->failures + 1;
		out->why = "the backoff";
		break;
	default:
		out->why = "a final refusal";
		break;
	}
}

static void capped_backoff(const struct profile *p, const struct profile_attempt *a,
                           const struct profile_state *st, double r, struct profile_retry *out)
{
	/* a device token used on an attempt that ended before hello-ok is forgotten */
	out->forget_device_token = a->used_device_token && !a->hello;
	if (p->max_reconnects && st->reconnects >= p->max_reconnects) {
		out->kind = PROFILE_PAUSE;
		out->why = "the reconnect limit: it stops reconnecting";
		return;
	}
	out->kind = PROFILE_RETRY_BACKOFF;
	out->wait_ms = profile_backoff_ms(p, st->failures, r);
	out->next.failures = st->failures + 1;
	out->why = out->forget_device_token ? "closed before hello-ok: token forgotten, backoff"
	                                    : "any close: the backoff";
}

struct profile_retry profile_decide(const struct profile *p, const struct profile_attempt *a,
                                    const struct profile_state *st, uint64_t now_ms, double r)
{
	struct profile_retry out = {.next = *st};
	struct profile_state base = *st;

	if (a->hello && p->hello_resets_backoff) {
		base.failures = 0;
		base.reconnects = 0;
	}
	out.next = base;
	out.next.paired = st->paired || a->hello;
	if (not_a_gateway(a, &out.kind)) {
		out.why = "not a gateway";
		return out;
	}
	switch (p->policy) {
	case PROFILE_POLICY_ANDROID:
		android(p, a, &base, r, &out);
		break;
	case PROFILE_POLICY_GATEWAY_CLIENT:
		gateway_client(p, a, &base, r, &out);
		break;
	case PROFILE_POLICY_EXIT_ON_CLOSE:
		out.kind = PROFILE_EXIT;
		out.exit_status = p->exit_status;
		out.why = "any close: the process has nothing left to keep it running";
		break;
	case PROFILE_POLICY_CAPPED_BACKOFF:
		capped_backoff(p, a, &base, r, &out);
		break;
	}
	if (out.kind != PROFILE_RETRY_SHARED_TOKEN && out.kind != PROFILE_RETRY_PAIRING &&
	    out.kind != PROFILE_RETRY_BACKOFF && out.kind != PROFILE_RETRY_FIXED)
		return out;
	out.next.reconnects = base.reconnects + 1;
	/* once paired, the node reconnects until stopped: the pairing deadline is over */
	if ((!out.next.paired || out.kind == PROFILE_RETRY_SHARED_TOKEN) &&
	    now_ms + (uint64_t)out.wait_ms >= st->deadline_ms) {
		out.kind = PROFILE_GIVE_UP_TIMEOUT;
		out.why = "the run's deadline";
		return out;
	}
	if (out.next.paired)
		out.next.deadline_ms = UINT64_MAX;
	return out;
}
