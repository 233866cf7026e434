/* report_util.c: writing a finished report buffer to its file. */
#include "report_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

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

int report_check_writable(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);

	if (fd >= 0) {
		close(fd);
		return unlink(path);
	}
	if (errno != EEXIST)
		return -1;
	fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}
