/* fileio.c: whole-file reads and the durable replacement of a file (temp file, fsync, rename), by
 * path or relative to a directory descriptor. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define READ_CHUNK 4096
#define TEMP_XS 6 /* the "XXXXXX" of a temp name */

int fileio_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Moves the first len bytes to a buffer of ncap bytes. The old one is wiped: the files read
 * here hold identity seeds and device tokens. */
static char *grow(char *buf, size_t len, size_t cap, size_t ncap)
{
	char *nb = malloc(ncap);

	if (!nb)
		return NULL;
	if (buf) {
		memcpy(nb, buf, len);
		sodium_memzero(buf, cap);
		free(buf);
	}
	return nb;
}

/* Reads fd to its end and closes it (also on failure). */
static int read_all(int fd, size_t max, char **out, size_t *outlen)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int e;

	for (;;) {
		ssize_t r;

		if (len + READ_CHUNK > cap) {
			size_t ncap = cap ? cap * 2 : 2 * READ_CHUNK;
			char *nb = grow(buf, len, cap, ncap);

			if (!nb) {
				errno = ENOMEM;
				goto fail;
			}
			buf = nb;
			cap = ncap;
		}
		r = read(fd, buf + len, cap - len - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > max) {
			errno = EFBIG;
			goto fail;
		}
	}
	close(fd);
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
fail:
	e = errno;
	close(fd);
	if (buf)
		sodium_memzero(buf, cap);
	free(buf);
	errno = e;
	return -1;
}

int fileio_read(int dirfd, const char *name, size_t max, char **out, size_t *outlen)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	return read_all(fd, max, out, outlen);
}

int fileio_read_regular(int dirfd, const char *name, size_t max, char **out, size_t *outlen)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), e;
	struct stat st;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		e = errno;
	else if (S_ISREG(st.st_mode))
		return read_all(fd, max, out, outlen);
	else
		e = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
	close(fd);
	errno = e;
	return -1;
}

int fileio_mkstemp_at(int dirfd, char *name)
{
	static const char chars[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	size_t len = strlen(name);
	char *x = name + len - TEMP_XS;

	if (len < TEMP_XS || strcmp(x, "XXXXXX") != 0) {
		errno = EINVAL;
		return -1;
	}
	for (int attempt = 0; attempt < 100; attempt++) {
		int fd;

		for (size_t i = 0; i < TEMP_XS; i++)
			x[i] = chars[randombytes_uniform(sizeof(chars) - 1)];
		fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

int fileio_commit_at(int fd, int dirfd, const char *tmp, const char *name, const char *text,
                     const char **stage)
{
	const char *step = "write";
	int e;

	/* A temporary file left by an earlier run may have been created with a wider mode. */
	if (fchmod(fd, 0600) < 0 || fileio_write_all(fd, text, strlen(text)) < 0 ||
	    fileio_write_all(fd, "\n", 1) < 0 || fsync(fd) < 0)
		goto fail;
	e = close(fd);
	fd = -1;
	if (e < 0)
		goto fail;
	step = "rename";
	if (renameat(dirfd, tmp, dirfd, name) < 0)
		goto fail;
	return 0;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	if (stage)
		*stage = step;
	errno = e;
	return -1;
}

int fileio_commit(int fd, const char *tmp, const char *path, const char *text, const char **stage)
{
	return fileio_commit_at(fd, AT_FDCWD, tmp, path, text, stage);
}

int fileio_sync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, rc = -1, e;

	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		rc = fsync(fd);
		e = errno;
		close(fd);
		errno = e;
	}
	free(dir);
	return rc;
}
