/* kit.h: what every test program shares: where the build and the sources are, timeouts that
 * stretch under valgrind, the memcheck wrapper's arguments, temp directories, and the first
 * failure of a long test run. */
#ifndef CLAWPAIR_TEST_KIT_H
#define CLAWPAIR_TEST_KIT_H

#include <stdbool.h>
#include <stddef.h>

/* CLAWPAIR_BUILD_ROOT/rel, CLAWPAIR_SOURCE_ROOT/rel (static buffers rotated per call). */
const char *build_path(const char *rel);
const char *source_path(const char *rel);

/* True when CLAWPAIR_VALGRIND is set: scale timeouts, wrap the gateway. */
bool under_valgrind(void);
/* ms, times 10 under valgrind. */
int kit_ms(int ms);

/* Slots kit_memcheck_argv writes. */
#define KIT_MEMCHECK_ARGC 5
/* Writes the memcheck wrapper (valgrind and its options; error exit status 99) into argv.
 * Returns the number of slots written. */
size_t kit_memcheck_argv(const char **argv);

/* Makes a fresh directory /tmp/<name>-XXXXXX into out (>= strlen(name) + 13 bytes). Returns 0
 * or -1. */
int kit_tempdir(const char *name, char *out, size_t outsz);
/* rm -rf of dir (a temp dir made by the kit or the test). */
void remove_tree(const char *dir);

/* Formats the failure into buf unless buf already holds one: a long run reports its first. */
void kit_note_first(char *buf, size_t bufsz, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* True when this test (and so the gateway of the same build) runs under AddressSanitizer,
 * whose quarantine makes RSS figures meaningless. */
bool kit_built_with_asan(void);

#endif
