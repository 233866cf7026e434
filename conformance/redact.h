/* redact.h: keeping the gateway's shared token and the device tokens out of reports and the
 * console: the value of every token member of a frame, and every occurrence of a known secret. */
#ifndef CLAWPAIR_REDACT_H
#define CLAWPAIR_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#define REDACTED "<redacted>"
/* Shorter secrets are redacted only as token members: replacing every "x" would garble text. */
#define REDACT_MIN_SECRET 6

struct redact {
	char **secrets;
	size_t n;
};

void redact_init(struct redact *r);
void redact_finish(struct redact *r);
/* Remembers s as a secret. Returns 0, or -1 when out of memory. */
int redact_add(struct redact *r, const char *s);
/* Remembers the string values of the token members in text (JSON, JSON quoted in a string, or
 * a frame cut short). */
void redact_learn(struct redact *r, const char *text);
/* text with the string value of every token member ("token", "deviceToken", "bootstrapToken",
 * "password"; "" stays "") and every known secret replaced by "<redacted>". malloc'd; NULL when
 * text is NULL or out of memory. */
char *redact_text(const struct redact *r, const char *text);
/* Replaces the malloc'd string *s by redact_text of it (unchanged when out of memory). */
void redact_in_place(const struct redact *r, char **s);

#endif
