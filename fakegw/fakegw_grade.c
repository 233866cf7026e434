/* fakegw_grade.c: one judge per client requirement, each a pure function of the observations:
 * the connections the scripted gateway saw (in the order they opened) and how the client's
 * processes ended. */
#include "fakegw_grade.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef enum fakegw_grade (*judge_fn)(const struct fakegw_grade_input *in, char *msg, size_t msgsz);

__attribute__((format(printf, 4, 5))) static enum fakegw_grade
say(enum fakegw_grade g, char *msg, size_t msgsz, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, msgsz, fmt, ap);
	va_end(ap);
	return g;
}

/* ---- helpers over the observations ---- */

static const struct fakegw_conn_obs *conn(const struct fakegw_grade_input *in, size_t i)
{
	return &in->obs->v[i];
}

/* The connection closed within the case (not by the runner's end of it). */
static bool closed_in_case(const struct fakegw_grade_input *in, const struct fakegw_conn_obs *c)
{
	return c->close_ms >= 0 && (in->obs->end_ms < 0 || c->close_ms < in->obs->end_ms ||
	                            c->closer != FAKEGW_BY_GATEWAY);
}

static bool closed_by_client(const struct fakegw_grade_input *in, const struct fakegw_conn_obs *c)
{
	return closed_in_case(in, c) &&
	       (c->closer == FAKEGW_BY_CLIENT || c->closer == FAKEGW_NO_FRAME) &&
	       (in->obs->end_ms < 0 || c->close_ms < in->obs->end_ms);
}

/* The case's end, or the last time anything happened. */
static int64_t end_ms(const struct fakegw_grade_input *in)
{
	int64_t t = in->obs->end_ms;

	for (size_t i = 0; t < 0 && i < in->obs->n; i++) {
		if (conn(in, i)->close_ms > t)
			t = conn(in, i)->close_ms;
	}
	return t;
}

/* The index of the next connection of device dev after index i (connections in open order
 * whose connect came), or -1. */
static long next_of(const struct fakegw_grade_input *in, long i, int dev)
{
	for (size_t j = (size_t)(i + 1); j < in->obs->n; j++) {
		if (conn(in, j)->device == dev)
			return (long)j;
	}
	return -1;
}

static size_t device_connects(const struct fakegw_grade_input *in)
{
	size_t n = 0;

	for (size_t i = 0; i < in->obs->n; i++)
		n += conn(in, i)->has_device;
	return n;
}

static const char *closer_name(enum fakegw_closer c)
{
	switch (c) {
	case FAKEGW_BY_CLIENT:
		return "the client closed";
	case FAKEGW_NO_FRAME:
		return "the client dropped the connection without a close frame";
	case FAKEGW_BY_GATEWAY:
		return "the gateway closed";
	default:
		return "open";
	}
}

/* A client that never sends a device connect fails every case: none can hold. */
static enum fakegw_grade no_connect(const struct fakegw_grade_input *in, char *msg, size_t msgsz)
{
	if (in->obs->n == 0)
		return say(FAKEGW_NOT_MET, msg, msgsz, "the client never connected");
	for (size_t i = 0; i < in->obs->n; i++) {
		if (conn(in, i)->params_error)
			return say(FAKEGW_NOT_MET, msg, msgsz,
			           "the client's connect did not parse: %s",
			           conn(in, i)->params_error);
	}
	return say(FAKEGW_NOT_MET, msg, msgsz,
	           "%zu connection(s), none sent a connect with a device", in->obs->n);
}

/* ---- handshake ---- */

static enum fakegw_grade judge_nonce(const struct fakegw_grade_input *in, char *msg, size_t msgsz)
{
	size_t n = 0;

	for (size_t i = 0; i < in->obs->n; i++) {
		const struct fakegw_conn_obs *c = conn(in, i);

		if (!c->has_device)
			continue;
		n++;
		if (!c->nonce_ok)
			return say(FAKEGW_NOT_MET, msg, msgsz,
			           "connect %zu sent device.nonce %s%.40s%s, the challenge of its "
			           "connection was %s",
			           n, c->nonce_sent ? "\"" : "",
			           c->nonce_sent ? c->nonce_sent : "(none)",
			           c->nonce_sent ? "\"" : "", c->nonce);
	}
	if (!n)
		return no_connect(in, msg, msgsz);
	return say(FAKEGW_MET, msg, msgsz, "%zu connect(s), each with its connection's nonce", n);
}

static enum fakegw_grade judge_signature(const struct fakegw_grade_input *in, char *msg,
                                         size_t msgsz)
{
	size_t n = 0, v3 = 0;

	for (size_t i = 0; i < in->obs->n; i++) {
		const struct fakegw_conn_obs *c = conn(in, i);

		if (!c->has_device)
			continue;
		n++;
		if (!c->key_ok)
			return say(
			        FAKEGW_NOT_MET, msg, msgsz,
			        "connect %zu: device.publicKey is not an Ed25519 key in a form of "
			        "§4.1",
			        n);
		if (!c->sig_version)
			return say(
			        FAKEGW_NOT_MET, msg, msgsz,
			        "connect %zu: device.signature verifies over neither the v3 nor the "
			        "v2 payload built from the connect it came with",
			        n);
		v3 += c->sig_version == 3;
	}
	if (!n)
		return no_connect(in, msg, msgsz);
	return say(FAKEGW_MET, msg, msgsz, "%zu connect(s) signed: %zu over v3, %zu over v2", n, v3,
	           n - v3);
}

static enum fakegw_grade judge_device_id(const struct fakegw_grade_input *in, char *msg,
                                         size_t msgsz)
{
	size_t n = 0;

	for (size_t i = 0; i < in->obs->n; i++) {
		const struct fakegw_conn_obs *c = conn(in, i);

		if (!c->has_device)
			continue;
		n++;
		if (!c->key_ok || !c->id_ok)
			return say(
			        FAKEGW_NOT_MET, msg, msgsz,
			        "connect %zu: device.id %.64s is not the SHA-256 of its public key",
			        n, c->device_id);
	}
	if (!n)
		return no_connect(in, msg, msgsz);
	return say(FAKEGW_MET, msg, msgsz, "%zu connect(s), device.id the hash of the key", n);
}

static enum fakegw_grade judge_same_identity(const struct fakegw_grade_input *in, char *msg,
                                             size_t msgsz)
{
	size_t n = device_connects(in);

	if (!n)
		return no_connect(in, msg, msgsz);
	if (in->obs->n_devices > 1)
		return say(FAKEGW_NOT_MET, msg, msgsz,
		           "%zu connects presented %zu different device keys", n,
		           in->obs->n_devices);
	if (n < 2)
		return say(FAKEGW_NOT_MET, msg, msgsz,
		           "one connect only: the client did not come back within the case");
	return say(FAKEGW_MET, msg, msgsz, "%zu connects, all with the same device key", n);
}

/* ---- the held connection ---- */

/* The first connection answered with connect.pending, or -1. */
static long first_pending(const struct fakegw_grade_input *in)
{
	for (size_t i = 0; i < in->obs->n; i++) {
		if (conn(in, i)->pending_ms >= 0)
			return (long)i;
	}
	return -1;
}

static enum fakegw_grade judge_holds(const struct fakegw_grade_input *in, char *msg, size_t msgsz)
{
	long i = first_pending(in);
	const struct fakegw_conn_obs *c;
	int64_t held;

	if (i < 0)
		return no_connect(in, msg, msgsz);
	c = conn(in, i);
	if (c->second_connect)
		return say(FAKEGW_NOT_MET, msg, msgsz,
		           "sent a second connect on its held connection");
	if (closed_by_client(in, c) && (c->hello_ms < 0 || c->close_ms < c->hello_ms)) {
		held = c->close_ms - c->connect_ms;
		if (held + FAKEGW_GRADE_SLACK_MS < in->hold_ms)
			return say(FAKEGW_NOT_MET, msg, msgsz,
			           "held the pending connect %lld ms, then %s (%d '%s'); the "
			           "requirement is %lld ms (its socket was open %lld ms before its "
			           "connect)",
			           (long long)held, closer_name(c->closer), c->close_code,
			           c->close_reason, (long long)in->hold_ms,
			           (long long)(c->connect_ms - c->open_ms));
		return say(FAKEGW_MET, msg, msgsz,
		           "held the pending connect %lld ms, then closed it %d", (long long)held,
		           c->close_code);
	}
	if (c->hello_ms >= 0)
		return say(FAKEGW_MET, msg, msgsz,
		           "held the pending connect %lld ms, until hello-ok",
		           (long long)(c->hello_ms - c->connect_ms));
	return say(FAKEGW_MET, msg, msgsz, "held the pending connect %lld ms, to the case's end",
	           (long long)(end_ms(in) - c->connect_ms));
}

static bool proc_exited_ok(const struct fakegw_grade_input *in)
{
	for (size_t i = 0; i < in->n_procs; i++) {
		if (in->procs[i].exited && !in->procs[i].signal && in->procs[i].exit_code == 0)
			return true;
	}
	return false;
}

static enum fakegw_grade judge_hello_on_held(const struct fakegw_grade_input *in, char *msg,
                                             size_t msgsz)
{
	long i = first_pending(in), j;
	const struct fakegw_conn_obs *c;

	if (i < 0)
		return no_connect(in, msg, msgsz);
	c = conn(in, i);
	if (c->hello_ms < 0)
		return say(FAKEGW_NOT_MET, msg, msgsz,
		           "%s %d '%s' %lld ms after connect.pending, before the hello-ok that "
		           "would have answered it",
		           closer_name(c->closer), c->close_code, c->close_reason,
		           (long long)(c->close_ms - c->pending_ms));
	if (c->second_connect)
		return say(FAKEGW_NOT_MET, msg, msgsz, "sent another connect after hello-ok");
	j = next_of(in, i, c->device);
	if (j >= 0)
		return say(FAKEGW_NOT_MET, msg, msgsz,
		           "connected again %lld ms after the hello-ok on its held socket (%s %d)",
		           (long long)(conn(in, j)->open_ms - c->hello_ms), closer_name(c->closer),
		           c->close_code);
	if (closed_by_client(in, c) && !(c->close_code == 1000 && proc_exited_ok(in)))
		return say(FAKEGW_NOT_MET, msg, msgsz, "%s %d '%s' %lld ms after hello-ok",
		           closer_name(c->closer), c->close_code, c->close_reason,
		           (long long)(c->close_ms - c->hello_ms));
	if (closed_by_client(in, c))
		return say(FAKEGW_MET, msg, msgsz,
		           "took hello-ok after %lld ms held, closed 1000 and exited 0 (a one-shot "
		           "client)",
		           (long long)(c->hello_ms - c->pending_ms));
	return say(FAKEGW_MET, msg, msgsz,
	           "took hello-ok after %lld ms held and stayed on that socket %lld ms",
	           (long long)(c->hello_ms - c->pending_ms), (long long)(end_ms(in) - c->hello_ms));
}

static enum fakegw_grade judge_timeout_retry(const struct fakegw_grade_input *in, char *msg,
                                             size_t msgsz)
{
	long i = first_pending(in), j;
	int64_t last = -1, d;
	unsigned gaveup = 0;
	char seen[160] = "";
	size_t len = 0;

	if (i < 0)
		return no_connect(in, msg, msgsz);
	for (; i >= 0; i = j) {
		const struct fakegw_conn_obs *c = conn(in, i);

		j = next_of(in, i, c->device);
		if (!closed_by_client(in, c) || c->hello_ms >= 0)
			break;
		gaveup++;
		if (j < 0)
			return say(FAKEGW_NOT_MET, msg, msgsz,
			           "gave up its held connect after %lld ms (%d '%s') and did not "
			           "reconnect within %lld ms",
			           (long long)(c->close_ms - c->connect_ms), c->close_code,
			           c->close_reason, (long long)(end_ms(in) - c->close_ms));
		d = conn(in, j)->open_ms - c->close_ms;
		if (len < sizeof seen)
			len += (size_t)snprintf(seen + len, sizeof seen - len, "%s%lld",
			                        len ? ", " : "", (long long)d);
		if (d > 1000 + FAKEGW_GRADE_SLACK_MS)
			return say(
			        FAKEGW_NOT_MET, msg, msgsz,
			        "gave up its held connect after %lld ms (%d '%s') and reconnected "
			        "%lld ms later, not within 1000 ms (waits: %s ms)",
			        (long long)(c->close_ms - c->connect_ms), c->close_code,
			        c->close_reason, (long long)d, seen);
		if (last >= 0 && d > last + FAKEGW_GRADE_SLACK_MS)
			return say(
			        FAKEGW_NOT_MET, msg, msgsz,
			        "its wait grew while pending: %s ms after giving up held connects",
			        seen);
		last = d;
	}
	if (!gaveup)
		return say(FAKEGW_MET, msg, msgsz,
		           "never gave up its held connect (%lld ms): no timeout of its own",
		           (long long)(end_ms(in) - conn(in, first_pending(in))->connect_ms));
	if (gaveup == 1)
		return say(
		        FAKEGW_MET, msg, msgsz,
		        "gave up one held connect and came back after %s ms (a second give-up, to "
		        "see the wait grow or not, did not fit in the case)",
		        seen);
	return say(FAKEGW_MET, msg, msgsz,
	           "gave up %u held connects and came back after %s ms, without growing", gaveup,
	           seen);
}

/* ---- tokens and reconnects ---- */

static enum fakegw_grade judge_device_token(const struct fakegw_grade_input *in, char *msg,
                                            size_t msgsz)
{
	for (size_t i = 0; i < in->obs->n; i++) {
		const struct fakegw_conn_obs *c = conn(in, i), *n;
		long j;
		const char *tok = c->issued_token;

		if (!tok[0])
			continue;
		j = next_of(in, (long)i, c->device);
		if (j < 0)
			return say(FAKEGW_NOT_MET, msg, msgsz,
			           "got a device token in hello-ok but did not connect again");
		n = conn(in, j);
		if ((n->auth_device_token && !strcmp(n->auth_device_token, tok)) ||
		    (n->auth_token && !strcmp(n->auth_token, tok)))
			return say(FAKEGW_MET, msg, msgsz,
			           "the next connect presented the device token as auth.%s",
			           n->auth_device_token && !strcmp(n->auth_device_token, tok)
			                   ? "deviceToken"
			                   : "token");
		return say(FAKEGW_NOT_MET, msg, msgsz,
		           "the next connect carried %s%s, not the device token of hello-ok",
		           n->auth_device_token ? "another auth.deviceToken"
		                                : "no auth.deviceToken",
		           n->auth_token ? " and an auth.token that is not it" : "");
	}
	return say(FAKEGW_CANNOT_GRADE, msg, msgsz, "no hello-ok with a device token went out");
}

/* The first connection the script closed, or -1. */
static long first_scripted_close(const struct fakegw_grade_input *in)
{
	for (size_t i = 0; i < in->obs->n; i++) {
		const struct fakegw_conn_obs *c = conn(in, i);

		if (c->closer == FAKEGW_BY_GATEWAY && closed_in_case(in, c) && c->device >= 0 &&
		    (in->obs->end_ms < 0 || c->close_ms < in->obs->end_ms))
			return (long)i;
	}
	return -1;
}

static enum fakegw_grade judge_reconnect(const struct fakegw_grade_input *in, char *msg,
                                         size_t msgsz)
{
	long i = first_scripted_close(in), j;
	const struct fakegw_conn_obs *c;

	if (i < 0)
		return device_connects(in) ? say(FAKEGW_CANNOT_GRADE, msg, msgsz,
		                                 "the client closed before the gateway did")
		                           : no_connect(in, msg, msgsz);
	c = conn(in, i);
	j = next_of(in, i, c->device);
	if (j >= 0)
		return say(FAKEGW_MET, msg, msgsz, "reconnected %lld ms after the close %d '%s'",
		           (long long)(conn(in, j)->open_ms - c->close_ms), c->close_code,
		           c->close_reason);
	if (in->obs->n_devices > 1)
		return say(FAKEGW_NOT_MET, msg, msgsz,
		           "came back after the close %d with another device key", c->close_code);
	return say(FAKEGW_NOT_MET, msg, msgsz, "no reconnect within %lld ms of the close %d '%s'%s",
	           (long long)(end_ms(in) - c->close_ms), c->close_code, c->close_reason,
	           proc_exited_ok(in) || (in->n_procs && in->procs[0].exited) ? "; it exited" : "");
}

/* The waits from each scripted close of device dev to its next connection, into d. */
static size_t waits_of(const struct fakegw_grade_input *in, int dev, int64_t *d, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < in->obs->n && n < max; i++) {
		const struct fakegw_conn_obs *c = conn(in, i);
		long j;

		if (c->device != dev || c->closer != FAKEGW_BY_GATEWAY || !closed_in_case(in, c) ||
		    (in->obs->end_ms >= 0 && c->close_ms >= in->obs->end_ms))
			continue;
		j = next_of(in, (long)i, dev);
		if (j < 0)
			break;
		d[n++] = conn(in, j)->open_ms - c->close_ms;
	}
	return n;
}

static void list_ms(const int64_t *d, size_t n, char *out, size_t outsz)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && len < outsz; i++)
		len += (size_t)snprintf(out + len, outsz - len, "%s%lld", i ? ", " : "",
		                        (long long)d[i]);
}

static enum fakegw_grade judge_backoff(const struct fakegw_grade_input *in, char *msg, size_t msgsz)
{
	int64_t d[8];
	size_t n = waits_of(in, 0, d, 8);
	char list[128];

	if (!device_connects(in))
		return no_connect(in, msg, msgsz);
	list_ms(d, n, list, sizeof list);
	if (n < 2)
		return say(FAKEGW_NOT_MET, msg, msgsz,
		           "%zu reconnect(s) after failed connects within the case (waits: %s ms): "
		           "two are needed to see the wait grow",
		           n, n ? list : "none");
	for (size_t i = 0; i < n; i++) {
		if (d[i] + FAKEGW_GRADE_SLACK_MS / 2 < 250)
			return say(
			        FAKEGW_NOT_MET, msg, msgsz,
			        "reconnected %lld ms after a failure, under 250 ms (waits: %s ms)",
			        (long long)d[i], list);
		if (i && d[i] <= d[i - 1] && d[i] < 30000)
			return say(FAKEGW_NOT_MET, msg, msgsz,
			           "the wait did not grow after consecutive failures: %s ms", list);
	}
	return say(FAKEGW_MET, msg, msgsz, "waits after consecutive failures grew: %s ms", list);
}

static enum fakegw_grade judge_jitter(const struct fakegw_grade_input *in, char *msg, size_t msgsz)
{
	int64_t d[FAKEGW_MAX_ACTIONS * 2], lo = INT64_MAX, hi = 0;
	size_t n = 0;
	char list[160];

	for (size_t dev = 0; dev < in->obs->n_devices && n < sizeof d / sizeof d[0]; dev++) {
		int64_t one;

		if (waits_of(in, (int)dev, &one, 1) == 1) {
			d[n++] = one;
			lo = one < lo ? one : lo;
			hi = one > hi ? one : hi;
		}
	}
	if (!device_connects(in))
		return no_connect(in, msg, msgsz);
	list_ms(d, n, list, sizeof list);
	if (n < 2)
		return say(
		        FAKEGW_CANNOT_GRADE, msg, msgsz,
		        "%zu client(s) reconnected after the common close (waits: %s ms): two are "
		        "needed to compare",
		        n, n ? list : "none");
	/* the scheduling of several processes on one machine spreads them a little too */
	if ((hi - lo) * 100 <= hi * 10 || hi - lo <= FAKEGW_GRADE_SLACK_MS)
		return say(FAKEGW_NOT_MET, msg, msgsz,
		           "%zu clients closed together came back within 10 %% (or %d ms) of one "
		           "wait: %s ms",
		           n, FAKEGW_GRADE_SLACK_MS, list);
	return say(FAKEGW_MET, msg, msgsz, "%zu clients closed together came back after %s ms", n,
	           list);
}

static enum fakegw_grade judge_no_reconnect(const struct fakegw_grade_input *in, char *msg,
                                            size_t msgsz)
{
	long i = first_scripted_close(in), j;
	const struct fakegw_conn_obs *c;
	unsigned again = 0;
	int64_t first = -1;

	if (i < 0)
		return device_connects(in) ? say(FAKEGW_CANNOT_GRADE, msg, msgsz,
		                                 "the client closed before the gateway did")
		                           : no_connect(in, msg, msgsz);
	c = conn(in, i);
	for (j = next_of(in, i, c->device); j >= 0; j = next_of(in, j, c->device)) {
		if (first < 0)
			first = conn(in, j)->open_ms - c->close_ms;
		again++;
	}
	if (again)
		return say(
		        FAKEGW_NOT_MET, msg, msgsz,
		        "reconnected %u time(s) on its own after %d '%s', the first %lld ms after it",
		        again, c->close_code, c->close_reason, (long long)first);
	if (in->n_procs && in->procs[0].exited)
		return say(FAKEGW_MET, msg, msgsz,
		           "no reconnect after %d; it exited with status %d", c->close_code,
		           in->procs[0].signal ? 128 + in->procs[0].signal
		                               : in->procs[0].exit_code);
	return say(FAKEGW_MET, msg, msgsz, "no reconnect within %lld ms after %d",
	           (long long)(end_ms(in) - c->close_ms), c->close_code);
}

/* ---- liveness and robustness ---- */

static enum fakegw_grade judge_tick_silence(const struct fakegw_grade_input *in, char *msg,
                                            size_t msgsz)
{
	for (size_t i = 0; i < in->obs->n; i++) {
		const struct fakegw_conn_obs *c = conn(in, i);
		int64_t silent;

		if (c->hello_ms < 0)
			continue;
		if (!closed_by_client(in, c))
			return say(FAKEGW_MET, msg, msgsz,
			           "kept the connection through %lld ms of silence (tickIntervalMs "
			           "%lld)",
			           (long long)(end_ms(in) - c->last_tx_ms), (long long)in->tick_ms);
		silent = c->close_ms - c->last_tx_ms;
		if (silent + FAKEGW_GRADE_SLACK_MS / 2 < 2 * in->tick_ms)
			return say(FAKEGW_NOT_MET, msg, msgsz,
			           "closed %d '%s' after %lld ms without a frame, under two "
			           "tickIntervalMs (%lld ms)",
			           c->close_code, c->close_reason, (long long)silent,
			           (long long)(2 * in->tick_ms));
		return say(FAKEGW_MET, msg, msgsz,
		           "closed after %lld ms without a frame (two tickIntervalMs: %lld ms)",
		           (long long)silent, (long long)(2 * in->tick_ms));
	}
	return device_connects(in) ? say(FAKEGW_CANNOT_GRADE, msg, msgsz, "no hello-ok went out")
	                           : no_connect(in, msg, msgsz);
}

static enum fakegw_grade judge_hostile(const struct fakegw_grade_input *in, char *msg, size_t msgsz)
{
	const struct fakegw_conn_obs *h = NULL;

	for (size_t i = 0; i < in->n_procs; i++) {
		if (in->procs[i].signal)
			return say(FAKEGW_NOT_MET, msg, msgsz,
			           "the client process died of signal %d after the hostile frames",
			           in->procs[i].signal);
	}
	for (size_t i = 0; i < in->obs->n; i++) {
		const struct fakegw_conn_obs *c = conn(in, i);

		if (c->leak)
			return say(FAKEGW_NOT_MET, msg, msgsz,
			           "sent %s in a frame that is not a connect", c->leak);
		if (!h && c->hello_ms >= 0)
			h = c;
	}
	if (!h)
		return device_connects(in)
		               ? say(FAKEGW_CANNOT_GRADE, msg, msgsz, "no hello-ok went out")
		               : no_connect(in, msg, msgsz);
	if (in->obs->n_devices > 1)
		return say(FAKEGW_NOT_MET, msg, msgsz,
		           "came back after the hostile frames with another device key");
	if (!closed_by_client(in, h))
		return say(FAKEGW_MET, msg, msgsz,
		           "kept its connection through the hostile frames");
	return say(FAKEGW_MET, msg, msgsz, "closed %d '%s' after the hostile frames%s",
	           h->close_code, h->close_reason,
	           in->n_procs && in->procs[0].exited ? ", then exited (no crash)" : "");
}

static const struct {
	const char *name;
	judge_fn fn;
} judges[] = {
        {"nonce", judge_nonce},
        {"signature", judge_signature},
        {"device-id", judge_device_id},
        {"same-identity", judge_same_identity},
        {"holds-pending", judge_holds},
        {"hello-on-held", judge_hello_on_held},
        {"timeout-retry", judge_timeout_retry},
        {"device-token", judge_device_token},
        {"reconnect", judge_reconnect},
        {"backoff", judge_backoff},
        {"jitter", judge_jitter},
        {"no-reconnect", judge_no_reconnect},
        {"tick-silence", judge_tick_silence},
        {"hostile", judge_hostile},
};

bool fakegw_grade_known(const char *check)
{
	for (size_t i = 0; check && i < sizeof judges / sizeof judges[0]; i++) {
		if (!strcmp(judges[i].name, check))
			return true;
	}
	return false;
}

enum fakegw_grade fakegw_grade(const char *check, const struct fakegw_grade_input *in, char *msg,
                               size_t msgsz)
{
	for (size_t i = 0; check && i < sizeof judges / sizeof judges[0]; i++) {
		if (!strcmp(judges[i].name, check))
			return judges[i].fn(in, msg, msgsz);
	}
	return say(FAKEGW_CANNOT_GRADE, msg, msgsz, "no judge named %s", check ? check : "(none)");
}
