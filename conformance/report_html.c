/* report_html.c: one self-contained HTML page for people: summary, a row per case, failures
 * expanded with their frames. No network: inline CSS and JS, and a CSP that forbids loads. */
#include "conformance.h"
#include "report_util.h"
#include "strbuf.h"

#include <string.h>

static const char css[] =
        "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}"
        "h1{font-size:1.4em;margin:0 0 .3em}"
        ".meta{color:#555;margin-bottom:1em}"
        ".counts{display:flex;gap:.6em;flex-wrap:wrap;margin:.8em 0}"
        ".count{border:1px solid #ccc;border-radius:6px;padding:.4em .8em;cursor:pointer;"
        "background:#fafafa;font:inherit;color:inherit}"
        ".count:focus-visible{outline:3px solid #1d4f91;outline-offset:2px}"
        ".count b{font-size:1.3em;margin-right:.3em}"
        ".count[aria-pressed=false]{opacity:.4}"
        ".overall{font-weight:bold;padding:.3em .6em;border-radius:4px;display:inline-block}"
        "table{border-collapse:collapse;width:100%}"
        "th,td{border-bottom:1px solid #e4e4e4;padding:.3em .5em;text-align:left;vertical-align:top}"
        "th,td.nw{white-space:nowrap}"
        /* long ids and messages (a frame, a reason) wrap anywhere instead of widening the page */
        "td.id{min-width:12em;overflow-wrap:anywhere}"
        "td.title{min-width:10em}"
        "td.msg{min-width:20em;overflow-wrap:anywhere}"
        ".known{display:block;color:#6b3fa0}"
        ".options{color:#555;font-size:.9em;overflow-wrap:anywhere}"
        "th{background:#f3f3f3;position:sticky;top:0}"
        "td.ms{text-align:right;white-space:nowrap}"
        "code{font-size:.95em}"
        ".v{font-weight:bold;white-space:nowrap}"
        ".v-PASS{color:#17692c}.v-FAIL{color:#b00020}.v-NON-STRICT{color:#a05a00}"
        ".v-INFO{color:#1d4f91}.v-XFAIL{color:#6b3fa0}.v-SKIP{color:#777}.v-NOT-RUN{color:#777}.v-ERROR{color:#8a2be2}"
        ".ok{background:#e3f4e6}.bad{background:#fbe3e6}"
        "tr.detail td{background:#fcfcfc}"
        "details pre{white-space:pre-wrap;word-break:break-all;background:#f6f6f6;padding:.5em;"
        "border-radius:4px;max-height:30em;overflow:auto;font-size:12px}"
        ".sentence{color:#444;font-style:italic}"
        ".diag{font-weight:bold}";

/* Filtering by verdict: each count is a button (so the keyboard reaches it: Tab, then Enter or
 * Space) that shows or hides its rows; aria-pressed says which. Reads only data attributes. */
static const char js[] =
        "document.querySelectorAll('button.count').forEach(function(c){"
        "c.addEventListener('click',function(){"
        "var v=c.getAttribute('data-verdict');"
        "var on=c.getAttribute('aria-pressed')!=='true';"
        "c.setAttribute('aria-pressed',on?'true':'false');"
        "document.querySelectorAll('tr[data-verdict=\"'+v+'\"]').forEach(function(r){"
        "r.hidden=!on;});});});";

static bool is_failure(enum conf_verdict v)
{
	return v == CONF_FAIL || v == CONF_NON_STRICT || v == CONF_XFAIL || v == CONF_INFO ||
	       v == CONF_ERROR;
}

static void add_text_row(struct strbuf *b, const char *label, const char *text)
{
	if (!text)
		return;
	strbuf_add(b, "<div><b>");
	strbuf_add_markup(b, label);
	strbuf_add(b, "</b></div><pre>");
	strbuf_add_markup(b, text);
	strbuf_add(b, "</pre>");
}

static void add_case(struct strbuf *b, const struct conf_result *r)
{
	const char *vn = conf_verdict_name(r->verdict);
	size_t i;

	strbuf_addf(b, "<tr class=\"case\" data-verdict=\"%s\" id=\"", vn);
	strbuf_add_markup_attr(b, r->c->id);
	strbuf_addf(b, "\"><td class=\"v v-%s\">%s</td><td class=\"id\"><code>", vn, vn);
	strbuf_add_markup(b, r->c->id);
	strbuf_add(b, "</code></td><td class=\"nw\">");
	strbuf_add_markup(b, r->c->requirement);
	strbuf_add(b, "</td><td class=\"nw\">");
	strbuf_add_markup(b, r->c->level);
	strbuf_add(b, "</td><td class=\"title\">");
	strbuf_add_markup(b, r->c->title);
	strbuf_addf(b, "</td><td class=\"ms\">%llu ms</td><td class=\"msg\">",
	            (unsigned long long)r->duration_ms);
	/* why it is a known failure, where the eye lands, not only in the details */
	if (r->xfail_reason && !r->stale) {
		strbuf_add(b, "<span class=\"known\">Known failure: ");
		strbuf_add_markup(b, r->xfail_reason);
		strbuf_add(b, "</span>");
	}
	if (r->message) {
		strbuf_add(b,
		           is_failure(r->verdict) || r->stale ? "<span class=\"diag\">" : "<span>");
		strbuf_add_markup(b, r->message);
		strbuf_add(b, "</span>");
	}
	strbuf_add(b, "</td></tr>\n");
	if (!is_failure(r->verdict))
		return;
	strbuf_addf(b, "<tr class=\"detail\" data-verdict=\"%s\"><td></td><td colspan=\"6\">", vn);
	/* FAILs are expanded; the rest can be opened */
	strbuf_add(b, r->verdict == CONF_FAIL || r->verdict == CONF_ERROR ? "<details open>"
	                                                                  : "<details>");
	strbuf_add(b, "<summary>Details");
	if (r->failed_step >= 0)
		strbuf_addf(b, " (step %d)", r->failed_step);
	if (r->close_code)
		strbuf_addf(b, ", close %d", r->close_code);
	strbuf_add(b, "</summary><p class=\"sentence\">");
	strbuf_add_markup(b, r->c->sentence);
	strbuf_add(b, "</p>");
	if (r->xfail_reason)
		add_text_row(b, "Known failure", r->xfail_reason);
	add_text_row(b, "Expected", r->expected);
	add_text_row(b, "Actual", r->actual);
	if (r->n_frames) {
		strbuf_add(b, "<div><b>Frames</b></div><pre class=\"frames\">");
		for (i = 0; i < r->n_frames; i++) {
			strbuf_add_markup(b, r->frames[i]);
			strbuf_add(b, "\n");
		}
		strbuf_add(b, "</pre>");
	}
	strbuf_add(b, "</details></td></tr>\n");
}

int report_html_write(const struct conf_run *run, const char *path)
{
	struct strbuf b;
	size_t i;
	int status = conf_run_exit_status(run), rc;

	strbuf_init(&b);
	strbuf_add(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	               "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
	               "<meta name=\"viewport\" content=\"width=device-width\">"
	               "<title>clawpair conformance: ");
	strbuf_add_markup(&b, run->gateway_url ? run->gateway_url : "");
	strbuf_addf(&b, "</title><style>%s</style></head><body>\n", css);
	strbuf_add(&b, "<h1>clawpair conformance report</h1>\n<div class=\"meta\">Gateway <code "
	               "id=\"gateway\">");
	strbuf_add_markup(&b, run->gateway_url ? run->gateway_url : "");
	strbuf_add(&b, "</code> &middot; <span id=\"date\">");
	strbuf_add_markup(&b, run->started ? run->started : "");
	strbuf_addf(&b, "</span> &middot; %zu cases in %.1f s &middot; %s &middot; ", run->n,
	            (double)run->duration_ms / 1000.0, run->strict ? "strict" : "not strict");
	strbuf_add(&b, "clawpair-conformance ");
	strbuf_add_markup(&b, run->tool_version ? run->tool_version : "");
	if (run->n_props) {
		strbuf_add(&b, "<div class=\"options\" id=\"options\">Options:");
		for (i = 0; i < run->n_props; i++) {
			strbuf_add(&b, " <code>");
			strbuf_add_markup(&b, run->props[i].name);
			strbuf_add(&b, " ");
			strbuf_add_markup(&b, run->props[i].value);
			strbuf_add(&b, "</code>");
		}
		strbuf_add(&b, "</div>");
	}
	strbuf_addf(&b, "</div>\n<div id=\"overall\" class=\"overall %s\">%s",
	            status ? "bad" : "ok",
	            run->gone_during          ? "STOPPED"
	            : run->counts[CONF_ERROR] ? "ERROR"
	            : status                  ? "FAILED"
	                                      : "PASSED");
	if (run->gone_during) {
		strbuf_add(&b, ": the gateway went away during ");
		strbuf_add_markup(&b, run->gone_during);
	}
	strbuf_add(&b, "</div>\n");
	strbuf_add(&b, "<div class=\"counts\" id=\"summary\">");
	for (i = 0; i < CONF_VERDICT__COUNT; i++) {
		const char *vn = conf_verdict_name((enum conf_verdict)i);

		strbuf_addf(
		        &b,
		        "<button type=\"button\" class=\"count\" data-verdict=\"%s\" id=\"count-%s\" "
		        "aria-pressed=\"true\" title=\"show or hide %s\"><b class=\"n\">%zu</b>"
		        "<span class=\"v v-%s\">%s</span></button>",
		        vn, vn, vn, run->counts[i], vn, vn);
	}
	strbuf_add(&b, "</div>\n");
	if (run->stale)
		strbuf_addf(&b,
		            "<p class=\"diag\" id=\"stale\">%zu cases are listed as known failures "
		            "but passed: the expectations file is out of date.</p>\n",
		            run->stale);
	strbuf_add(&b, "<table id=\"cases\"><thead><tr><th>Verdict</th><th>Case</th>"
	               "<th>Requirement</th><th>Level</th><th>Title</th><th>Time</th>"
	               "<th>Message</th></tr></thead><tbody>\n");
	for (i = 0; i < run->n; i++)
		add_case(&b, &run->results[i]);
	strbuf_addf(&b, "</tbody></table>\n<script>%s</script>\n</body></html>\n", js);
	rc = report_write_file(&b, path);
	strbuf_finish(&b);
	return rc;
}
