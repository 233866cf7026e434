/* report_util.c: writing a finished report buffer to its file. */
#include "report_util.h"

#include <errno.h>
#include <stdio.h>

int report_write_file(const struct strbuf *b, const char *path)
{
	FILE *f;

	if (b->oom) {
		errno = ENOMEM;
		return -1;
	}
	f = fopen(path, "w");
	if (!f)
		return -1;
	if (b->len && fwrite(b->p, 1, b->len, f) != b->len) {
		fclose(f);
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}
