/* strbuf.c: growable byte strings, markup escaping and UTF-8 cleaning. */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strbuf_init(struct strbuf *b)
{
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
	b->oom = false;
}

void strbuf_finish(struct strbuf *b)
{
	if (!b)
		return;
	free(b->p);
	strbuf_init(b);
}

char *strbuf_take(struct strbuf *b)
{
	char *p;

	if (!b->p)
		strbuf_addn(b, "", 0);
	p = b->p;
	strbuf_init(b);
	return p;
}

static bool grow(struct strbuf *b, size_t extra)
{
	size_t want, cap;
	char *p;

	if (b->oom)
		return false;
	want = b->len + extra + 1;
	if (want <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < want)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void strbuf_addn(struct strbuf *b, const char *s, size_t n)
{
	if (!grow(b, n))
		return;
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void strbuf_add(struct strbuf *b, const char *s)
{
	if (s)
		strbuf_addn(b, s, strlen(s));
}

void strbuf_addf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !grow(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

size_t strbuf_utf8_len(const unsigned char *s, size_t avail)
{
	size_t n, i;
	unsigned cp;

	if (avail == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (avail < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates and values past U+10FFFF */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	/* U+FFFE/U+FFFF are not XML characters */
	if (cp == 0xfffe || cp == 0xffff)
		return 0;
	return n;
}

static void add_markup(struct strbuf *b, const char *s, bool attr)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t avail, n;

	if (!s)
		return;
	avail = strlen(s);
	while (avail) {
		switch (*p) {
		case '&':
			strbuf_add(b, "&amp;");
			break;
		case '<':
			strbuf_add(b, "&lt;");
			break;
		case '>':
			strbuf_add(b, "&gt;");
			break;
		case '"':
			strbuf_add(b, "&quot;");
			break;
		case '\'':
			strbuf_add(b, "&#39;");
			break;
		case '\n':
			strbuf_add(b, attr ? "&#10;" : "\n");
			break;
		case '\t':
			strbuf_add(b, attr ? "&#9;" : "\t");
			break;
		case '\r':
			strbuf_add(b, "&#13;");
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				strbuf_add(b, "\xef\xbf\xbd");
				break;
			}
			n = strbuf_utf8_len(p, avail);
			if (!n) {
				strbuf_add(b, "\xef\xbf\xbd");
				break;
			}
			strbuf_addn(b, (const char *)p, n);
			p += n;
			avail -= n;
			continue;
		}
		p++;
		avail--;
	}
}

void strbuf_add_markup(struct strbuf *b, const char *s)
{
	add_markup(b, s, false);
}

void strbuf_add_markup_attr(struct strbuf *b, const char *s)
{
	add_markup(b, s, true);
}

void strbuf_add_utf8_clean(struct strbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t avail = s ? strlen(s) : 0, n;

	while (avail) {
		n = strbuf_utf8_len(p, avail);
		if (n) {
			strbuf_addn(b, (const char *)p, n);
		} else {
			strbuf_add(b, "\xef\xbf\xbd");
			n = 1;
		}
		p += n;
		avail -= n;
	}
}
