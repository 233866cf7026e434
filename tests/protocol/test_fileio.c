/* test_fileio.c: whole-file reads (size cap, missing file, links and special files refused where
 * asked), temp files relative to a directory, and the durable replacement of a file (content,
 * mode, the failed step named, no temporary file left behind, relative to a directory). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/clawpair-fileio-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void put_file(const char *path, size_t n)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	for (size_t i = 0; i < n; i++)
		fputc('a' + (int)(i % 26), f);
	assert_int_equal(fclose(f), 0);
}

static void test_read(void **state)
{
	char path[128], *text = NULL;
	size_t len = 0;
	int dfd;

	(void)state;
	snprintf(path, sizeof(path), "%s/big", dir);
	/* Several buffer growths: every byte comes back, NUL-terminated. */
	put_file(path, 100000);
	assert_int_equal(fileio_read(AT_FDCWD, path, SIZE_MAX, &text, &len), 0);
	assert_int_equal(len, 100000);
	assert_int_equal(strlen(text), 100000);
	assert_int_equal(text[99999], 'a' + 99999 % 26);
	free(text);
	/* Exactly max is fine, one more byte is EFBIG. */
	assert_int_equal(fileio_read(AT_FDCWD, path, 100000, &text, &len), 0);
	free(text);
	errno = 0;
	assert_int_equal(fileio_read(AT_FDCWD, path, 99999, &text, &len), -1);
	assert_int_equal(errno, EFBIG);
	/* Relative to a directory fd; an empty file is an empty string. */
	snprintf(path, sizeof(path), "%s/empty", dir);
	put_file(path, 0);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	assert_int_equal(fileio_read(dfd, "empty", 10, &text, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(text, "");
	free(text);
	errno = 0;
	assert_int_equal(fileio_read(dfd, "missing", 10, &text, &len), -1);
	assert_int_equal(errno, ENOENT);
	close(dfd);
}

static void test_commit(void **state)
{
	char path[128], tmp[128], *text = NULL;
	const char *stage = NULL;
	struct stat st;
	size_t len = 0;
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/rec.json", dir);
	snprintf(tmp, sizeof(tmp), "%s/.rec.json.tmp", dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fileio_commit(fd, tmp, path, "{\"a\":1}", &stage), 0);
	assert_int_equal(fileio_sync_parent(path), 0);
	assert_int_equal(fileio_read(AT_FDCWD, path, 100, &text, &len), 0);
	assert_string_equal(text, "{\"a\":1}\n");
	free(text);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(access(tmp, F_OK), -1);

	/* A rename onto a non-empty directory fails: the step is named, the temp file is gone. */
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(tmp, sizeof(tmp), "%s/sub/x", dir);
	put_file(tmp, 1);
	snprintf(tmp, sizeof(tmp), "%s/.sub.tmp", dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	errno = 0;
	assert_int_equal(fileio_commit(fd, tmp, path, "x", &stage), -1);
	assert_string_equal(stage, "rename");
	assert_true(errno != 0);
	assert_int_equal(access(tmp, F_OK), -1);

	/* A descriptor that cannot be written: the write step. */
	fd = open(tmp, O_RDONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(fileio_commit(fd, tmp, path, "x", &stage), -1);
	assert_string_equal(stage, "write");
	assert_int_equal(errno, EBADF);
	assert_int_equal(access(tmp, F_OK), -1);
}

static void test_read_regular(void **state)
{
	char path[128], link[128], fifo[128], *text = NULL;
	size_t len = 0;
	int dfd;

	(void)state;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	snprintf(path, sizeof(path), "%s/plain", dir);
	put_file(path, 10);
	assert_int_equal(fileio_read_regular(dfd, "plain", 100, &text, &len), 0);
	assert_int_equal(len, 10);
	assert_string_equal(text, "abcdefghij");
	free(text);
	/* A symbolic link is not followed, even to a regular file. */
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(fileio_read_regular(dfd, "link", 100, &text, &len), -1);
	assert_int_equal(errno, ELOOP);
	/* fileio_read does follow it. */
	assert_int_equal(fileio_read(dfd, "link", 100, &text, &len), 0);
	free(text);
	/* A directory, a FIFO (which must not block the open), a missing file. */
	snprintf(path, sizeof(path), "%s/adir", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(fileio_read_regular(dfd, "adir", 100, &text, &len), -1);
	assert_int_equal(errno, EISDIR);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(fileio_read_regular(dfd, "fifo", 100, &text, &len), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(fileio_read_regular(dfd, "missing", 100, &text, &len), -1);
	assert_int_equal(errno, ENOENT);
	/* The size cap holds here too. */
	assert_int_equal(fileio_read_regular(dfd, "plain", 9, &text, &len), -1);
	assert_int_equal(errno, EFBIG);
	close(dfd);
}

static void test_mkstemp_at(void **state)
{
	char sub[128], a[32] = ".a.XXXXXX", b[32] = ".a.XXXXXX", bad[16] = "aXXXXX";
	struct stat st;
	int dfd, fa, fb;

	(void)state;
	snprintf(sub, sizeof(sub), "%s/tmps", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	dfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	fa = fileio_mkstemp_at(dfd, a);
	fb = fileio_mkstemp_at(dfd, b);
	assert_true(fa >= 0 && fb >= 0);
	assert_string_not_equal(a, b);
	assert_null(strstr(a, "XXXXXX"));
	assert_int_equal(strlen(a), strlen(".a.XXXXXX"));
	assert_int_equal(fstatat(dfd, a, &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(write(fa, "x", 1), 1);
	close(fa);
	close(fb);
	assert_int_equal(fileio_mkstemp_at(dfd, bad), -1);
	assert_int_equal(errno, EINVAL);
	close(dfd);
}

/* Writes go to the directory dfd was opened on, whatever its path names afterwards. */
static void test_commit_at(void **state)
{
	char sub[128], moved[128], path[160], tmp[32] = ".rec.json.XXXXXX", *text = NULL;
	size_t len = 0;
	int dfd, fd;

	(void)state;
	snprintf(sub, sizeof(sub), "%s/at", dir);
	snprintf(moved, sizeof(moved), "%s/at.moved", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	dfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(rename(sub, moved), 0);
	assert_int_equal(mkdir(sub, 0700), 0);
	fd = fileio_mkstemp_at(dfd, tmp);
	assert_true(fd >= 0);
	assert_int_equal(fileio_commit_at(fd, dfd, tmp, "rec.json", "{\"b\":2}", NULL), 0);
	assert_int_equal(fsync(dfd), 0);
	snprintf(path, sizeof(path), "%s/rec.json", moved);
	assert_int_equal(fileio_read(AT_FDCWD, path, 100, &text, &len), 0);
	assert_string_equal(text, "{\"b\":2}\n");
	free(text);
	snprintf(path, sizeof(path), "%s/rec.json", sub);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(faccessat(dfd, tmp, F_OK, 0), -1);
	close(dfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_read),         cmocka_unit_test(test_commit),
	        cmocka_unit_test(test_read_regular), cmocka_unit_test(test_mkstemp_at),
	        cmocka_unit_test(test_commit_at),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
