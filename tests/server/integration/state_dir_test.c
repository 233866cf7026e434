/* state_dir_test.c: the real clawpair-gateway on a state directory it must refuse (symbolic links
 * inside it, another owner, writable by others) or may not take (locked with flock by another
 * process, whatever it is): it exits non-zero with one line that says why, and writes nothing
 * through a link (spec 8.9, PERSIST-4). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway.h"
#include "kit.h"
#include "spawn.h"

#define TOKEN "state-dir-token"
#define ARGC_MAX 16

struct fixture {
	char tmp[64]; /* holds state/, out/ and gw.log */
	char state[128], out[128], log[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || kit_tempdir("clawpair-sd", f->tmp, sizeof(f->tmp)) < 0) {
		free(f);
		return -1;
	}
	snprintf(f->state, sizeof(f->state), "%s/state", f->tmp);
	snprintf(f->out, sizeof(f->out), "%s/out", f->tmp);
	snprintf(f->log, sizeof(f->log), "%s/gw.log", f->tmp);
	/* out/ is readable by others: a chmod through a link would show. */
	if (mkdir(f->state, 0700) < 0 || mkdir(f->out, 0700) < 0 || chmod(f->out, 0755) < 0) {
		remove_tree(f->tmp);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	remove_tree(f->tmp);
	free(f);
	return 0;
}

static void path_of(char *out, size_t outsz, const char *dir, const char *name)
{
	int n = snprintf(out, outsz, "%s/%s", dir, name);

	assert_true(n > 0 && (size_t)n < outsz);
}

static char *read_text(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf = calloc(1, 65536);
	size_t n;

	assert_non_null(buf);
	if (!fp)
		return buf;
	n = fread(buf, 1, 65535, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* Starts the gateway on f->state (stderr to f->log) and waits for it to exit by itself:
 * returns its exit status; *listened tells whether it printed its listening line. */
static int run_gateway(const struct fixture *f, bool *listened)
{
	const char *argv[ARGC_MAX];
	struct spawned s;
	char line[512];
	size_t n = 0;
	int rc;

	if (under_valgrind())
		n += kit_memcheck_argv(argv);
	argv[n++] = build_path("server/clawpair-gateway");
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--token";
	argv[n++] = TOKEN;
	argv[n++] = "--state-dir";
	argv[n++] = f->state;
	argv[n] = NULL;
	assert_int_equal(spawn_start_log((char *const *)argv, f->log, &s), 0);
	*listened = false;
	while (!*listened && spawn_read_line(&s, line, sizeof(line), kit_ms(10000)) == 1)
		*listened = strstr(line, "listening on") != NULL;
	rc = *listened ? spawn_stop(&s, kit_ms(10000)) : spawn_wait(&s, kit_ms(10000));
	return rc;
}

/* The gateway refuses f->state: exit status 1, no listening line, and its log holds exactly
 * one line "clawpair-gateway: refusing state dir STATE: " followed by what. */
static void expect_refused(const struct fixture *f, const char *what)
{
	char want[512];
	bool listened;
	char *log;
	int rc;

	unlink(f->log);
	rc = run_gateway(f, &listened);
	log = read_text(f->log);
	snprintf(want, sizeof(want), "clawpair-gateway: refusing state dir %s: %s\n", f->state,
	         what);
	if (rc != 1 || listened || strcmp(log, want) != 0)
		fail_msg("exit %d%s, log \"%s\"; wanted exit 1 and \"%s\"", rc,
		         listened ? " after listening" : "", log, want);
	free(log);
}

static void expect_serves(const struct fixture *f)
{
	bool listened;
	int rc = run_gateway(f, &listened);

	assert_true(listened);
	assert_int_equal(rc, 0);
}

static void test_symlinked_table_dir(void **state)
{
	struct fixture *f = *state;
	char link[192], what[256];

	path_of(link, sizeof(link), f->state, "pending");
	assert_int_equal(symlink(f->out, link), 0);
	snprintf(what, sizeof(what), "%s is a symbolic link (not followed)", link);
	expect_refused(f, what);
	/* Nothing was created or chmod'ed through the link. */
	assert_int_equal(count_entries(f->out), 0);
	assert_int_equal(mode_of(f->out), 0755);
	assert_int_equal(unlink(link), 0);
	expect_serves(f);
}

static void test_symlinked_lock(void **state)
{
	struct fixture *f = *state;
	char link[192], target[192], what[256];

	path_of(link, sizeof(link), f->state, "lock");
	path_of(target, sizeof(target), f->out, "lock");
	assert_int_equal(symlink(target, link), 0);
	snprintf(what, sizeof(what), "%s is a symbolic link (not followed)", link);
	expect_refused(f, what);
	assert_int_equal(count_entries(f->out), 0);
	/* Nor were the tables made elsewhere or here. */
	assert_int_equal(count_entries(f->state), 1);
}

static void test_symlinked_record(void **state)
{
	struct fixture *f = *state;
	static const char rec[] = "{\"deviceId\":\"d1\",\"publicKey\":\"k\"}\n";
	char link[192], target[192], what[256], *text;
	FILE *fp;

	expect_serves(f); /* makes the table directories */
	path_of(target, sizeof(target), f->out, "d1.json");
	fp = fopen(target, "w");
	assert_non_null(fp);
	fputs(rec, fp);
	fclose(fp);
	path_of(link, sizeof(link), f->state, "paired/d1.json");
	assert_int_equal(symlink(target, link), 0);
	snprintf(what, sizeof(what), "%s is a symbolic link (not followed)", link);
	expect_refused(f, what);
	text = read_text(target);
	assert_string_equal(text, rec);
	free(text);
	assert_int_equal(count_entries(f->out), 1);
}

static void test_open_or_foreign_dir(void **state)
{
	struct fixture *f = *state;
	char what[256];

	assert_int_equal(chmod(f->state, 0777), 0);
	snprintf(what, sizeof(what),
	         "%s is writable by group or others (mode 0777); it must be 0700", f->state);
	expect_refused(f, what);
	assert_int_equal(mode_of(f->state), 0777);
	assert_int_equal(count_entries(f->state), 0);
	assert_int_equal(chmod(f->state, 0700), 0);
	if (chown(f->state, 65534, 65534) < 0)
		skip(); /* only root can give a directory away */
	snprintf(what, sizeof(what), "%s is owned by uid 65534, not by the gateway's user (uid %u)",
	         f->state, (unsigned)geteuid());
	expect_refused(f, what);
	assert_int_equal(count_entries(f->state), 0);
}

/* The lock another implementation would take: flock(LOCK_EX) on <state>/lock. */
static void test_locked_by_another_process(void **state)
{
	struct fixture *f = *state;
	char lock[192], want[256];
	struct kit_gateway g, g2;
	struct kit_gateway_opts o = {.token = TOKEN, .memcheck = under_valgrind()};
	bool listened;
	char *log;
	int fd, rc;

	path_of(lock, sizeof(lock), f->state, "lock");
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	snprintf(want, sizeof(want),
	         "clawpair-gateway: state dir %s is locked by another process\n", f->state);
	rc = run_gateway(f, &listened);
	log = read_text(f->log);
	if (rc != 1 || listened || strcmp(log, want) != 0)
		fail_msg("exit %d, log \"%s\"; wanted exit 1 and \"%s\"", rc, log, want);
	free(log);
	/* Nothing else was touched while another process held the lock. */
	assert_int_equal(count_entries(f->state), 1);
	close(fd);

	/* A running gateway holds it the same way: flock fails for others, a second gateway
	 * exits. */
	o.state_dir = f->state;
	assert_int_equal(kit_gateway_start(&g, &o, NULL, 0), 0);
	fd = open(lock, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	close(fd);
	unlink(f->log);
	o.log_path = f->log;
	assert_int_equal(kit_gateway_start(&g2, &o, NULL, 0), -1);
	log = read_text(f->log);
	assert_non_null(strstr(log, want));
	free(log);
	assert_int_equal(kit_gateway_stop(&g, SIGTERM, kit_ms(10000)), 0);
	/* Released at exit: the next one starts. */
	expect_serves(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_symlinked_table_dir, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_symlinked_lock, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_symlinked_record, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_open_or_foreign_dir, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_locked_by_another_process, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
