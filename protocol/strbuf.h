/* strbuf.h: a growable byte string, with HTML/XML escaping and UTF-8 cleaning for reports. */
#ifndef CLAWPAIR_STRBUF_H
#define CLAWPAIR_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *p;
	size_t len, cap;
	bool oom; /* an append failed; p holds what fit before */
};

void strbuf_init(struct strbuf *b);
void strbuf_finish(struct strbuf *b);
/* Takes the string (NUL-terminated, never NULL unless oom) and resets b. */
char *strbuf_take(struct strbuf *b);
void strbuf_addn(struct strbuf *b, const char *s, size_t n);
void strbuf_add(struct strbuf *b, const char *s);
void strbuf_addf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Escapes & < > " ' for HTML text and attributes, and for XML. Control characters other than
 * tab/newline and invalid UTF-8 become U+FFFD, so the output is always well-formed. */
void strbuf_add_markup(struct strbuf *b, const char *s);
/* Same, for use inside an XML CDATA-free attribute or text: also escapes newline in attributes. */
void strbuf_add_markup_attr(struct strbuf *b, const char *s);

/* Appends s with every byte that does not start a valid UTF-8 sequence replaced by U+FFFD:
 * JSON reports must be valid UTF-8 even when a frame was not. */
void strbuf_add_utf8_clean(struct strbuf *b, const char *s);

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when s does not start one. */
size_t strbuf_utf8_len(const unsigned char *s, size_t avail);

#endif
