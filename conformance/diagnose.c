/* diagnose.c: names the OpenClaw #6836 failure patterns in words a gateway author can act on:
 * a pending node closed with 1008 instead of held open, and two pairing stores that disagree. */
#include "diagnose.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "json.h"
#include "strbuf.h"

bool conf_find_uuid(const char *s, char *out)
{
	static const int groups[] = {8, 4, 4, 4, 12};
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	for (size_t i = 0; i + 36 <= n; i++) {
		size_t p = i;
		bool ok = i == 0 || !isxdigit((unsigned char)s[i - 1]);

		for (size_t g = 0; ok && g < 5; g++) {
			for (int k = 0; ok && k < groups[g]; k++, p++)
				ok = isxdigit((unsigned char)s[p]) != 0;
			if (ok && g < 4)
				ok = s[p++] == '-';
		}
		if (ok && (p == n || !isxdigit((unsigned char)s[p]))) {
			memcpy(out, s + i, 36);
			out[36] = '\0';
			return true;
		}
	}
	return false;
}

/* "90ef1c2a…": enough to find it in a list, short enough for one line */
static void short_id(const char *id, char *out, size_t outsz)
{
	if (!id || !*id)
		snprintf(out, outsz, "(unknown)");
	else if (strlen(id) > 8)
		snprintf(out, outsz, "%.8s\xe2\x80\xa6", id);
	else
		snprintf(out, outsz, "%s", id);
}

static bool is_list_method(const char *m)
{
	return m && (!strcmp(m, "node.pair.list") || !strcmp(m, "device.pair.list"));
}

static bool is_resolve_method(const char *m)
{
	return m && (!strcmp(m, "node.pair.approve") || !strcmp(m, "node.pair.reject") ||
	             !strcmp(m, "device.pair.approve") || !strcmp(m, "device.pair.reject"));
}

static char *hold_open(const struct conf_failure *f)
{
	const char *op = json_get_string(f->step, "do");
	/* the time of the close itself, which is earlier than the time the failure was noticed */
	long ms = f->close_ms >= 0 ? f->close_ms : f->ms_since_connect;
	struct strbuf b;

	if (f->close_code) {
		strbuf_init(&b);
		strbuf_addf(&b, "closed with %d '%s'", f->close_code,
		            f->close_reason ? f->close_reason : "");
		if (ms >= 0)
			strbuf_addf(&b, " %ld ms after connect", ms);
		if (f->approved_before)
			strbuf_add(&b, " instead of answering the held connect with hello-ok after "
			               "the approval: the spec requires hello-ok on the same "
			               "socket (OpenClaw #6836)");
		else
			strbuf_add(&b, ", before any approval: the spec requires the connection to "
			               "be held open (OpenClaw #6836)");
		return strbuf_take(&b);
	}
	/* an error res to a connect that should have been held, without a close (yet) */
	if (op && !strcmp(op, "connect") && f->actual && strstr(f->actual, "\"ok\":false")) {
		strbuf_init(&b);
		strbuf_add(&b, "answered the connect of an unknown device with an error instead of "
		               "connect.pending: the spec requires the connection to be held open "
		               "(OpenClaw #6836)");
		return strbuf_take(&b);
	}
	return NULL;
}

static char *unified_list(const struct conf_failure *f)
{
	const char *op = json_get_string(f->step, "do"),
	           *method = json_get_string(f->step, "method");
	const struct cp_err_info *unknown = cp_err_info(CP_ERR_UNKNOWN_REQUEST_ID);
	char uuid[40], sid[24];
	struct strbuf b;

	if (!op || strcmp(op, "call") != 0)
		return NULL;
	if (is_list_method(method)) {
		const char *other = !strcmp(method, "node.pair.list")
		                            ? "device.pair.list"
		                            : "the device.pair.requested event";

		if (!conf_find_uuid(f->expected, uuid))
			return NULL;
		short_id(uuid, sid, sizeof sid);
		strbuf_init(&b);
		strbuf_addf(&b, "%s lacked requestId %s that %s shows (OpenClaw #6836: two stores)",
		            method, sid, other);
		return strbuf_take(&b);
	}
	if (is_resolve_method(method) && f->actual &&
	    (strstr(f->actual, unknown->message) || strstr(f->actual, unknown->details_code))) {
		short_id(f->sent_request_id, sid, sizeof sid);
		strbuf_init(&b);
		strbuf_addf(&b,
		            "%s answered '%s' for requestId %s that device.pair.list shows "
		            "(OpenClaw #6836: two stores)",
		            method, unknown->message, sid);
		return strbuf_take(&b);
	}
	return NULL;
}

char *conf_diagnose(const char *diagnose, const struct conf_failure *f)
{
	char *d = NULL;

	if (!f || !f->step)
		return NULL;
	if (!diagnose) {
		/* any case: a connect that should have been held, closed as OpenClaw does */
		const char *op = json_get_string(f->step, "do");
		const cJSON *ex = cJSON_GetObjectItemCaseSensitive(f->step, "expect");
		bool wants_pending = (cJSON_IsString(ex) && !strcmp(ex->valuestring, "pending")) ||
		                     cJSON_GetObjectItemCaseSensitive(ex, "pending");

		if (op && !strcmp(op, "connect") && wants_pending && f->close_code &&
		    f->close_reason &&
		    strstr(f->close_reason, cp_err_info(CP_ERR_PAIRING_REQUIRED)->close_reason))
			return hold_open(f);
		return NULL;
	}
	/* a unified-list case may also trip over the 1008 close first, and vice versa */
	if (!strcmp(diagnose, "unified-list"))
		d = unified_list(f);
	if (!d && (!strcmp(diagnose, "hold-open") || !strcmp(diagnose, "unified-list")))
		d = hold_open(f);
	if (!d && !strcmp(diagnose, "hold-open"))
		d = unified_list(f);
	return d;
}
