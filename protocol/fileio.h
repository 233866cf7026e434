/* fileio.h: whole-file reads and the durable replacement of a file (temp file, fsync, rename),
 * by path or relative to a directory descriptor, shared by the identity file and the gateway's
 * store. */
#ifndef CLAWPAIR_FILEIO_H
#define CLAWPAIR_FILEIO_H

#include <stddef.h>

/* Writes all len bytes, through short writes and EINTR. Returns 0, or -1 with errno set. */
int fileio_write_all(int fd, const void *buf, size_t len);

/* Reads the whole file name (relative to dirfd; AT_FDCWD for the working directory) into a
 * malloc'd NUL-terminated buffer: *out, *outlen bytes. A file longer than max bytes fails with
 * EFBIG. Returns 0, or -1 with errno set (ENOENT: no such file). */
int fileio_read(int dirfd, const char *name, size_t max, char **out, size_t *outlen);

/* fileio_read for a file of a directory that must not send reads elsewhere: name, relative to
 * dirfd, is opened with O_NOFOLLOW and O_NONBLOCK. A symbolic link fails with ELOOP (it is not
 * followed), a directory with EISDIR, any other file that is not a regular one (a FIFO, which
 * does not block, a device, a socket) with EINVAL. */
int fileio_read_regular(int dirfd, const char *name, size_t max, char **out, size_t *outlen);

/* mkstemp relative to dirfd: replaces the trailing "XXXXXX" of name with random characters
 * ([A-Za-z0-9]) and creates that file with O_CREAT | O_EXCL (which never follows a symbolic
 * link), mode 0600, retrying on a name in use. Returns the descriptor (read-write,
 * close-on-exec), or -1 with errno set (EINVAL: name does not end in "XXXXXX"). */
int fileio_mkstemp_at(int dirfd, char *name);

/* Replaces path with a new file holding text and a newline. fd is the freshly created temporary
 * file tmp (in path's directory): it gets mode 0600, the bytes, an fsync, and is closed (also on
 * failure); then tmp is renamed to path. On failure tmp is removed, errno tells why and *stage
 * (may be NULL) names the step that failed, "write" or "rename". The rename is durable only once
 * the directory is synced (fileio_sync_parent, or the caller's own directory fd). Returns 0 or
 * -1. */
int fileio_commit(int fd, const char *tmp, const char *path, const char *text, const char **stage);
/* fileio_commit with tmp and name relative to dirfd (AT_FDCWD: the working directory), through
 * renameat and unlinkat: once dirfd is open, renaming or replacing the directory's path does not
 * divert the write. The rename is durable once dirfd is synced. */
int fileio_commit_at(int fd, int dirfd, const char *tmp, const char *name, const char *text,
                     const char **stage);

/* fsyncs the directory that holds path. Returns 0, or -1 with errno set. */
int fileio_sync_parent(const char *path);

#endif
