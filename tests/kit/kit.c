/* kit.c: build and source paths, valgrind scaling, temp directories, first-failure notes. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "kit.h"

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool under_valgrind(void)
{
	const char *v = getenv("CLAWPAIR_VALGRIND");

	return v && *v && strcmp(v, "0") != 0;
}

int kit_ms(int ms)
{
	return under_valgrind() ? ms * 10 : ms;
}

static const char *root_path(const char *env, const char *fallback, const char *rel)
{
	static char bufs[8][4096];
	static unsigned next;
	const char *root = getenv(env);
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s/%s", root && *root ? root : fallback, rel);
	return b;
}

const char *build_path(const char *rel)
{
	return root_path("CLAWPAIR_BUILD_ROOT", ".", rel);
}

const char *source_path(const char *rel)
{
	return root_path("CLAWPAIR_SOURCE_ROOT", "..", rel);
}

size_t kit_memcheck_argv(const char **argv)
{
	static const char *const wrapper[KIT_MEMCHECK_ARGC] = {
	        "valgrind", "--error-exitcode=99", "--leak-check=full",
	        "--errors-for-leak-kinds=definite", "-q"};

	for (size_t i = 0; i < KIT_MEMCHECK_ARGC; i++)
		argv[i] = wrapper[i];
	return KIT_MEMCHECK_ARGC;
}

int kit_tempdir(const char *name, char *out, size_t outsz)
{
	int n = snprintf(out, outsz, "/tmp/%s-XXXXXX", name);

	if (n < 0 || (size_t)n >= outsz)
		return -1;
	return mkdtemp(out) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void remove_tree(const char *dir)
{
	if (dir && *dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void kit_note_first(char *buf, size_t bufsz, const char *fmt, ...)
{
	va_list ap;

	if (bufsz == 0 || buf[0])
		return;
	va_start(ap, fmt);
	vsnprintf(buf, bufsz, fmt, ap);
	va_end(ap);
}

bool kit_built_with_asan(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return true;
#else
	return false;
#endif
#else
	return false;
#endif
}
