/* test_fileio.c: whole-file reads (size cap, missing file) and the durable replacement of a file
 * (content, mode, the failed step named, no temporary file left behind). */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_read),
	        cmocka_unit_test(test_commit),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
