/* test_store.c: the pairing store: round trips, atomic 0600 files, the directory lock, corrupt
 * files, and restarts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"

struct fixture {
	char dir[64];
};

static int rm_rf(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	char sub[512];

	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		rm_rf(sub);
	}
	closedir(d);
	return rmdir(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/clawpair-store-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	rm_rf(f->dir);
	free(f);
	return 0;
}

static cJSON *pending_rec(const char *rid, const char *did, double ts)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddStringToObject(r, "requestId", rid);
	cJSON_AddStringToObject(r, "deviceId", did);
	cJSON_AddStringToObject(r, "publicKey", "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik");
	cJSON_AddStringToObject(r, "role", "node");
	cJSON_AddNumberToObject(r, "ts", ts);
	cJSON_AddNumberToObject(r, "expiresAtMs", ts + 300000);
	return r;
}

static cJSON *paired_rec(const char *did, const char *token)
{
	cJSON *r = cJSON_CreateObject();
	cJSON *tokens = cJSON_AddObjectToObject(r, "tokens");
	cJSON *t = cJSON_AddObjectToObject(tokens, "node");

	cJSON_AddStringToObject(r, "deviceId", did);
	cJSON_AddStringToObject(r, "publicKey", "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik");
	cJSON_AddStringToObject(t, "token", token);
	cJSON_AddStringToObject(t, "role", "node");
	return r;
}

static void write_text(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static cJSON *read_json(const char *dir, const char *name)
{
	char path[256], buf[65536];
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "r");
	if (!fp)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return cJSON_Parse(buf);
}

static mode_t file_mode(const char *dir, const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &st) < 0)
		return (mode_t)-1;
	return st.st_mode & 0777;
}

static void test_missing_files_are_empty(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "";
	char sub[128];

	/* A state dir that does not exist yet is created with mode 0700. */
	snprintf(sub, sizeof(sub), "%s/a/b", f->dir);
	assert_int_equal(store_open(sub, &s, err, sizeof(err)), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 0);
	assert_int_equal(store_count(s, STORE_PAIRED), 0);
	assert_int_equal(store_count(s, STORE_COMPAT_NODE_PENDING), 0);
	assert_int_equal(file_mode(f->dir, "a/b"), 0700);
	assert_string_equal(store_dir(s), sub);
	store_close(s);
}

static void test_round_trip_and_restart(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "";
	const cJSON *r;

	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r1", "d1", 1000)), 0);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r2", "d2", 2000)), 0);
	assert_int_equal(
	        store_put(s, STORE_PAIRED, paired_rec("d9", "0123456789abcdef0123456789abcdef")),
	        0);
	assert_int_equal(store_put(s, STORE_COMPAT_NODE_PENDING, pending_rec("n1", "d3", 5)), 0);
	/* Replacing keeps one record per key. */
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r1", "d1", 1500)), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 2);
	r = store_find(s, STORE_PENDING, "deviceId", "d2");
	assert_non_null(r);
	assert_string_equal(cJSON_GetObjectItem(r, "requestId")->valuestring, "r2");
	assert_null(store_find(s, STORE_PENDING, "deviceId", "nope"));
	/* A record without its key field is refused. */
	{
		cJSON *bad = cJSON_CreateObject();

		cJSON_AddStringToObject(bad, "deviceId", "x");
		assert_int_equal(store_put(s, STORE_PENDING, bad), -2);
	}
	store_close(s);

	s = NULL;
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 2);
	r = store_get(s, STORE_PENDING, "r1");
	assert_non_null(r);
	assert_int_equal((int)cJSON_GetObjectItem(r, "ts")->valuedouble, 1500);
	r = store_get(s, STORE_PAIRED, "d9");
	assert_non_null(r);
	assert_string_equal(
	        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "tokens"), "node"),
	                            "token")
	                ->valuestring,
	        "0123456789abcdef0123456789abcdef");
	assert_non_null(store_get(s, STORE_COMPAT_NODE_PENDING, "n1"));

	/* Removal is written through too. */
	assert_int_equal(store_remove(s, STORE_PENDING, "r2"), 0);
	assert_int_equal(store_remove(s, STORE_PENDING, "r2"), 1);
	/* Approval: paired written, pending removed. */
	assert_int_equal(
	        store_approve(s, paired_rec("d1", "ffffffffffffffffffffffffffffffff"), "r1"), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 0);
	store_close(s);

	s = NULL;
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 0);
	assert_int_equal(store_count(s, STORE_PAIRED), 2);
	assert_non_null(store_get(s, STORE_PAIRED, "d1"));
	store_close(s);
}

static void test_files_atomic_and_private(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "";
	cJSON *j;
	DIR *d;
	struct dirent *de;

	chmod(f->dir, 0755);
	write_text(f->dir, ".pending.json.Ab12Cd", "left by a crash");
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	/* The directory holds device tokens: it is made private even if it existed. */
	assert_int_equal(file_mode(f->dir, "."), 0700);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r1", "d1", 1)), 0);
	assert_int_equal(
	        store_put(s, STORE_PAIRED, paired_rec("d1", "00000000000000000000000000000000")),
	        0);
	assert_int_equal(file_mode(f->dir, "pending.json"), 0600);
	assert_int_equal(file_mode(f->dir, "paired.json"), 0600);
	assert_int_equal(file_mode(f->dir, "lock"), 0600);
	/* What is on disk is the full table keyed by requestId, no temp files left behind. */
	j = read_json(f->dir, "pending.json");
	assert_non_null(j);
	assert_true(cJSON_IsObject(cJSON_GetObjectItem(j, "r1")));
	assert_string_equal(
	        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "r1"), "deviceId")->valuestring, "d1");
	cJSON_Delete(j);
	d = opendir(f->dir);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			assert_true(de->d_name[0] != '.');
	closedir(d);
	store_close(s);
}

static void test_failed_write_leaves_memory_unchanged(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "", moved[128];

	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r1", "d1", 1)), 0);
	/* Moving the directory away makes every write fail (even for root). */
	snprintf(moved, sizeof(moved), "%s.moved", f->dir);
	assert_int_equal(rename(f->dir, moved), 0);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r2", "d2", 2)), -1);
	assert_non_null(strstr(store_last_error(s), "pending.json"));
	assert_int_equal(store_count(s, STORE_PENDING), 1);
	assert_null(store_get(s, STORE_PENDING, "r2"));
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r1", "d1", 99)), -1);
	assert_int_equal(
	        (int)cJSON_GetObjectItem(store_get(s, STORE_PENDING, "r1"), "ts")->valuedouble, 1);
	assert_int_equal(store_remove(s, STORE_PENDING, "r1"), -1);
	assert_non_null(store_get(s, STORE_PENDING, "r1"));
	assert_int_equal(
	        store_approve(s, paired_rec("d1", "00000000000000000000000000000000"), "r1"), -1);
	assert_int_equal(store_count(s, STORE_PAIRED), 0);
	assert_non_null(store_get(s, STORE_PENDING, "r1"));
	store_close(s);
	assert_int_equal(rename(moved, f->dir), 0);
}

static void test_lock_refused(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL, *s2 = NULL;
	char err[256] = "", want[256];
	pid_t pid;
	int status = 0;

	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "state dir %s is locked by another process", f->dir);
	/* Another process is refused. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *c = NULL;
		char cerr[256] = "";
		int rc = store_open(f->dir, &c, cerr, sizeof(cerr));

		_exit(rc == -1 && strcmp(cerr, want) == 0 && !c ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* So is a second open in this process. */
	assert_int_equal(store_open(f->dir, &s2, err, sizeof(err)), -1);
	assert_null(s2);
	assert_string_equal(err, want);
	store_close(s);
	/* Closing releases it. */
	assert_int_equal(store_open(f->dir, &s2, err, sizeof(err)), 0);
	store_close(s2);
}

static void expect_open_error(const char *dir, const char *path_part)
{
	struct store *s = NULL;
	char err[512] = "";

	assert_int_equal(store_open(dir, &s, err, sizeof(err)), -1);
	assert_null(s);
	assert_non_null(strstr(err, path_part));
}

static void test_corrupt_files_are_errors(void **state)
{
	struct fixture *f = *state;
	char path[256];

	snprintf(path, sizeof(path), "%s/pending.json", f->dir);
	write_text(f->dir, "pending.json", "{\"r1\": {\"requestId\": \"r1\"");
	expect_open_error(f->dir, path);
	write_text(f->dir, "pending.json", "");
	expect_open_error(f->dir, path);
	write_text(f->dir, "pending.json", "[]");
	expect_open_error(f->dir, path);
	/* A record whose key does not match its field is corrupt, not silently re-keyed. */
	write_text(f->dir, "pending.json", "{\"r1\": {\"requestId\": \"r2\"}}");
	expect_open_error(f->dir, path);
	write_text(f->dir, "pending.json", "{\"r1\": 5}");
	expect_open_error(f->dir, path);
	write_text(f->dir, "pending.json", "{}");

	snprintf(path, sizeof(path), "%s/paired.json", f->dir);
	write_text(f->dir, "paired.json", "not json");
	expect_open_error(f->dir, path);
	unlink(path);
	/* Unreadable (a directory in its place). */
	assert_int_equal(mkdir(path, 0700), 0);
	expect_open_error(f->dir, path);
	rmdir(path);

	snprintf(path, sizeof(path), "%s/nodes-pending.json", f->dir);
	write_text(f->dir, "nodes-pending.json", "{\"x\": {\"requestId\": \"x\"}} trailing");
	expect_open_error(f->dir, path);
	unlink(path);

	/* Still usable once repaired; the error did not leave the lock held. */
	{
		struct store *s = NULL;
		char err[256] = "";

		assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
		store_close(s);
	}
}

static void test_ten_thousand_pending(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "", rid[32], did[32];
	cJSON *root = cJSON_CreateObject();
	char *text, path[256];
	FILE *fp;

	for (int i = 0; i < 10000; i++) {
		snprintf(rid, sizeof(rid), "req-%05d", i);
		snprintf(did, sizeof(did), "dev-%05d", i);
		cJSON_AddItemToObject(root, rid, pending_rec(rid, did, i));
	}
	text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	snprintf(path, sizeof(path), "%s/pending.json", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	free(text);

	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 10000);
	assert_non_null(store_find(s, STORE_PENDING, "deviceId", "dev-09999"));
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("req-new", "dev-new", 1)), 0);
	assert_int_equal(store_remove(s, STORE_PENDING, "req-00000"), 0);
	store_close(s);
	s = NULL;
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 10000);
	assert_non_null(store_get(s, STORE_PENDING, "req-new"));
	assert_null(store_get(s, STORE_PENDING, "req-00000"));
	store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_missing_files_are_empty, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_round_trip_and_restart, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_files_atomic_and_private, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_failed_write_leaves_memory_unchanged, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_lock_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_corrupt_files_are_errors, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ten_thousand_pending, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
