/* redact.c: token members and known secrets replaced by "<redacted>" in report text, keeping
 * the structure around them, so that a report can be attached to a CI job without leaking
 * the gateway's shared token or a device token. */
#include "redact.h"

#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static const char *const secret_keys[] = {"token", "deviceToken", "bootstrapToken", "password"};

void redact_init(struct redact *r)
{
	memset(r, 0, sizeof *r);
}

void redact_finish(struct redact *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->secrets[i]);
	free(r->secrets);
	memset(r, 0, sizeof *r);
}

int redact_add(struct redact *r, const char *s)
{
	char **nv;

	if (!s || !*s)
		return 0;
	for (size_t i = 0; i < r->n; i++) {
		if (!strcmp(r->secrets[i], s))
			return 0;
	}
	nv = realloc(r->secrets, (r->n + 1) * sizeof *nv);
	if (!nv)
		return -1;
	r->secrets = nv;
	nv[r->n] = strdup(s);
	if (!nv[r->n])
		return -1;
	r->n++;
	return 0;
}

/* A token member's string value at text[at]: "KEY" ws : ws "VALUE", or the same quoted inside a
 * JSON string (\"KEY\":\"VALUE\"). Returns true with the value's bounds [*vb, *ve) and the end
 * of the member (after the closing quote, or the end of text when it was cut short). */
static bool member_at(const char *text, size_t at, size_t len, size_t *vb, size_t *ve, size_t *end)
{
	bool quoted = text[at] == '\\';
	size_t p = at + (quoted ? 2 : 1), k;

	if (text[at] != '"' && !(quoted && at + 1 < len && text[at + 1] == '"'))
		return false;
	if (at > 0 && text[at - 1] == '\\' && !quoted)
		return false;
	for (k = 0; k < sizeof secret_keys / sizeof secret_keys[0]; k++) {
		size_t n = strlen(secret_keys[k]);

		if (p + n > len || strncmp(text + p, secret_keys[k], n) != 0)
			continue;
		p += n;
		if (quoted ? (p + 2 > len || strncmp(text + p, "\\\"", 2) != 0) : text[p] != '"')
			return false;
		p += quoted ? 2 : 1;
		while (p < len && (text[p] == ' ' || text[p] == '\t' || text[p] == '\n'))
			p++;
		if (p >= len || text[p] != ':')
			return false;
		p++;
		while (p < len && (text[p] == ' ' || text[p] == '\t' || text[p] == '\n'))
			p++;
		if (quoted ? (p + 2 > len || strncmp(text + p, "\\\"", 2) != 0) : text[p] != '"')
			return false;
		p += quoted ? 2 : 1;
		*vb = p;
		while (p < len) {
			if (quoted && text[p] == '\\' && p + 1 < len && text[p + 1] == '"')
				break;
			if (!quoted && text[p] == '"')
				break;
			if (!quoted && text[p] == '\\' && p + 1 < len)
				p++;
			else if (quoted && text[p] == '\\' && p + 1 < len && text[p + 1] == '\\')
				p++;
			p++;
		}
		*ve = p < len ? p : len;
		*end = p < len ? p + (quoted ? 2 : 1) : len;
		return true;
	}
	return false;
}

void redact_learn(struct redact *r, const char *text)
{
	size_t len = text ? strlen(text) : 0, vb, ve, end;

	for (size_t i = 0; i < len; i++) {
		if (!member_at(text, i, len, &vb, &ve, &end))
			continue;
		if (ve > vb) {
			char *v = strndup(text + vb, ve - vb);

			if (v)
				redact_add(r, v);
			free(v);
		}
		i = end - 1;
	}
}

/* Token members first: their values go whatever their length. */
static void redact_members(struct strbuf *b, const char *text)
{
	size_t len = strlen(text), from = 0, vb, ve, end;

	for (size_t i = 0; i < len; i++) {
		if (!member_at(text, i, len, &vb, &ve, &end))
			continue;
		if (ve > vb &&
		    !(ve - vb == strlen(REDACTED) && !strncmp(text + vb, REDACTED, ve - vb))) {
			strbuf_addn(b, text + from, vb - from);
			strbuf_add(b, REDACTED);
			strbuf_addn(b, text + ve, end - ve);
		} else {
			strbuf_addn(b, text + from, end - from);
		}
		from = end;
		i = end - 1;
	}
	strbuf_add(b, text + from);
}

static char *replace_all(char *text, const char *secret)
{
	size_t n = strlen(secret);
	struct strbuf b;
	const char *p = text, *hit;

	if (n < REDACT_MIN_SECRET || !strstr(text, secret))
		return text;
	strbuf_init(&b);
	while ((hit = strstr(p, secret))) {
		strbuf_addn(&b, p, (size_t)(hit - p));
		strbuf_add(&b, REDACTED);
		p = hit + n;
	}
	strbuf_add(&b, p);
	if (b.oom) {
		strbuf_finish(&b);
		return text;
	}
	free(text);
	return strbuf_take(&b);
}

char *redact_text(const struct redact *r, const char *text)
{
	struct strbuf b;
	char *out;

	if (!text)
		return NULL;
	strbuf_init(&b);
	redact_members(&b, text);
	if (b.oom) {
		strbuf_finish(&b);
		return NULL;
	}
	out = strbuf_take(&b);
	for (size_t i = 0; r && out && i < r->n; i++)
		out = replace_all(out, r->secrets[i]);
	return out;
}

void redact_in_place(const struct redact *r, char **s)
{
	char *t;

	if (!*s)
		return;
	t = redact_text(r, *s);
	if (t) {
		free(*s);
		*s = t;
	}
}
