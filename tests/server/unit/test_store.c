/* test_store.c: the pairing store: round trips, one atomic 0600 file per record, the directory
 * lock, corrupt files, the import of the previous layout, crash repairs, 10,000 records, and
 * group commit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

static bool exists(const char *dir, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static size_t count_dotfiles(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] == '.' && strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_files_atomic_and_private(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "", sub[128];
	cJSON *j;

	chmod(f->dir, 0755);
	/* Temp files that crashes left behind, of this layout and of the previous one. */
	snprintf(sub, sizeof(sub), "%s/pending", f->dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	write_text(f->dir, "pending/.r0.json.Ab12Cd", "{\"requestId\":");
	write_text(f->dir, ".pending.json.Ab12Cd", "left by a crash");
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	/* The directories hold device tokens: they are made private even if they existed. */
	assert_int_equal(file_mode(f->dir, "."), 0700);
	assert_int_equal(file_mode(f->dir, "pending"), 0700);
	assert_int_equal(file_mode(f->dir, "paired"), 0700);
	assert_int_equal(file_mode(f->dir, "nodes-pending"), 0700);
	assert_int_equal(count_dotfiles(f->dir), 0);
	assert_int_equal(count_dotfiles(sub), 0);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r1", "d1", 1)), 0);
	assert_int_equal(
	        store_put(s, STORE_PAIRED, paired_rec("d1", "00000000000000000000000000000000")),
	        0);
	assert_int_equal(store_put(s, STORE_COMPAT_NODE_PENDING, pending_rec("n1", "d1", 1)), 0);
	/* One file per record, named by its key, mode 0600; no whole-table files. */
	assert_int_equal(file_mode(f->dir, "pending/r1.json"), 0600);
	assert_int_equal(file_mode(f->dir, "paired/d1.json"), 0600);
	assert_int_equal(file_mode(f->dir, "nodes-pending/n1.json"), 0600);
	assert_int_equal(file_mode(f->dir, "lock"), 0600);
	assert_false(exists(f->dir, "pending.json"));
	assert_false(exists(f->dir, "paired.json"));
	j = read_json(f->dir, "pending/r1.json");
	assert_non_null(j);
	assert_string_equal(cJSON_GetObjectItem(j, "requestId")->valuestring, "r1");
	assert_string_equal(cJSON_GetObjectItem(j, "deviceId")->valuestring, "d1");
	cJSON_Delete(j);
	j = read_json(f->dir, "paired/d1.json");
	assert_non_null(j);
	assert_string_equal(cJSON_GetObjectItem(j, "deviceId")->valuestring, "d1");
	cJSON_Delete(j);
	/* A replace rewrites the file; a removal unlinks it; no temp file is left behind. */
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r1", "d1", 77)), 0);
	j = read_json(f->dir, "pending/r1.json");
	assert_non_null(j);
	assert_int_equal((int)cJSON_GetObjectItem(j, "ts")->valuedouble, 77);
	cJSON_Delete(j);
	assert_int_equal(store_remove(s, STORE_COMPAT_NODE_PENDING, "n1"), 0);
	assert_false(exists(f->dir, "nodes-pending/n1.json"));
	assert_int_equal(count_dotfiles(sub), 0);
	store_close(s);
}

static void test_failed_write_leaves_memory_unchanged(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "", saved[128], pending[128], paired[128], rec[160];

	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r1", "d1", 1)), 0);
	/* Removing the table directories the store holds open makes every write fail (even for
	 * root): nothing can be created in a deleted directory. New ones at the same paths are not
	 * the store's. */
	snprintf(saved, sizeof(saved), "%s.r1", f->dir);
	snprintf(pending, sizeof(pending), "%s/pending", f->dir);
	snprintf(paired, sizeof(paired), "%s/paired", f->dir);
	snprintf(rec, sizeof(rec), "%s/r1.json", pending);
	assert_int_equal(rename(rec, saved), 0);
	assert_int_equal(rmdir(pending), 0);
	assert_int_equal(rmdir(paired), 0);
	assert_int_equal(mkdir(pending, 0700), 0);
	assert_int_equal(mkdir(paired, 0700), 0);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r2", "d2", 2)), -1);
	assert_non_null(strstr(store_last_error(s), "pending/r2.json"));
	assert_false(exists(f->dir, "pending/r2.json"));
	assert_int_equal(store_count(s, STORE_PENDING), 1);
	assert_null(store_get(s, STORE_PENDING, "r2"));
	assert_null(store_find(s, STORE_PENDING, "deviceId", "d2"));
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r1", "d1", 99)), -1);
	assert_int_equal(
	        (int)cJSON_GetObjectItem(store_get(s, STORE_PENDING, "r1"), "ts")->valuedouble, 1);
	assert_int_equal(store_remove(s, STORE_PENDING, "r1"), -1);
	assert_non_null(strstr(store_last_error(s), "pending/r1.json"));
	assert_non_null(store_get(s, STORE_PENDING, "r1"));
	assert_int_equal(
	        store_approve(s, paired_rec("d1", "00000000000000000000000000000000"), "r1"), -1);
	assert_int_equal(store_count(s, STORE_PAIRED), 0);
	assert_false(exists(f->dir, "paired/d1.json"));
	assert_non_null(store_get(s, STORE_PENDING, "r1"));
	store_close(s);
	assert_int_equal(rename(saved, rec), 0);
}

/* Records go to the directory the store opened, through its descriptor: whatever takes the
 * state dir's path afterwards gets nothing. */
static void test_writes_follow_the_opened_directory(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "", dir[128], moved[128];

	snprintf(dir, sizeof(dir), "%s/state", f->dir);
	snprintf(moved, sizeof(moved), "%s/moved", f->dir);
	assert_int_equal(store_open(dir, &s, err, sizeof(err)), 0);
	assert_int_equal(rename(dir, moved), 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r1", "d1", 1)), 0);
	assert_int_equal(
	        store_put(s, STORE_PAIRED, paired_rec("d1", "00000000000000000000000000000000")),
	        0);
	assert_true(exists(moved, "pending/r1.json"));
	assert_true(exists(moved, "paired/d1.json"));
	assert_false(exists(dir, "pending"));
	assert_false(exists(dir, "paired"));
	assert_int_equal(store_remove(s, STORE_PENDING, "r1"), 0);
	assert_false(exists(moved, "pending/r1.json"));
	store_close(s);
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
	if (!strstr(err, path_part))
		fail_msg("error \"%s\" does not name %s", err, path_part);
}

static void expect_open_ok(const char *dir)
{
	struct store *s = NULL;
	char err[512] = "";

	if (store_open(dir, &s, err, sizeof(err)) != 0)
		fail_msg("store_open: %s", err);
	store_close(s);
}

static void join(char *out, size_t outsz, const char *dir, const char *name)
{
	int n = snprintf(out, outsz, "%s/%s", dir, name);

	assert_true(n > 0 && (size_t)n < outsz);
}

/* dir/name made with exactly mode (chmod after mkdir, so the umask does not narrow it). */
static void make_dir(char *out, size_t outsz, const char *dir, const char *name, mode_t mode)
{
	join(out, outsz, dir, name);
	assert_int_equal(mkdir(out, 0700), 0);
	assert_int_equal(chmod(out, mode), 0);
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

static bool is_link(const char *dir, const char *name)
{
	char path[512];
	struct stat st;

	join(path, sizeof(path), dir, name);
	return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

static char *slurp(const char *dir, const char *name)
{
	char path[512], buf[4096];
	FILE *fp;
	size_t n;

	join(path, sizeof(path), dir, name);
	fp = fopen(path, "r");
	if (!fp)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return strdup(buf);
}

/* store_open refuses dir with one line that says so, names dir, and contains what and path. */
static void expect_refusal(const char *dir, const char *what, const char *path)
{
	struct store *s = NULL;
	char err[512] = "", head[300];

	snprintf(head, sizeof(head), "refusing state dir %s: ", dir);
	assert_int_equal(store_open(dir, &s, err, sizeof(err)), -1);
	assert_null(s);
	if (strncmp(err, head, strlen(head)) != 0 || !strstr(err, what) || !strstr(err, path) ||
	    strchr(err, '\n'))
		fail_msg("error \"%s\" is not \"%s...%s...%s\"", err, head, what, path);
}

static void test_dir_owner_refused(void **state)
{
	struct fixture *f = *state;
	char dir[128], sub[160];

	make_dir(dir, sizeof(dir), f->dir, "state", 0700);
	/* Someone else's directory: its owner could put records in it or swap them. */
	if (chown(dir, 65534, 65534) < 0)
		skip(); /* only root can give a directory away */
	expect_refusal(dir, "owned by uid 65534", dir);
	assert_int_equal(count_entries(dir), 0); /* not even the lock file */
	assert_int_equal(chown(dir, geteuid(), getegid()), 0);
	expect_open_ok(dir);
	/* A table directory of someone else's too. */
	join(sub, sizeof(sub), dir, "paired");
	assert_int_equal(chown(sub, 65534, 65534), 0);
	expect_refusal(dir, "owned by uid 65534", sub);
	assert_int_equal(chown(sub, geteuid(), getegid()), 0);
	expect_open_ok(dir);
}

static void test_dir_writable_by_others_refused(void **state)
{
	struct fixture *f = *state;
	static const mode_t bad[] = {0770, 0720, 0707, 0702, 0777, 01777, 02730};
	char dir[128], sub[160], name[16];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct stat st;

		snprintf(name, sizeof(name), "s%zu", i);
		make_dir(dir, sizeof(dir), f->dir, name, bad[i]);
		expect_refusal(dir, "writable by group or others", dir);
		/* Left as it was: no chmod, no lock file, no table directory. */
		assert_int_equal(stat(dir, &st), 0);
		assert_int_equal(st.st_mode & 07777, bad[i]);
		assert_int_equal(count_entries(dir), 0);
	}
	/* Readable by others is not writable: that one is made private. */
	make_dir(dir, sizeof(dir), f->dir, "readable", 0755);
	expect_open_ok(dir);
	assert_int_equal(file_mode(dir, "."), 0700);
	/* A table directory writable by others is refused too. */
	join(sub, sizeof(sub), dir, "pending");
	assert_int_equal(chmod(sub, 0773), 0);
	expect_refusal(dir, "writable by group or others", sub);
	assert_int_equal(file_mode(dir, "pending"), 0773);
	assert_int_equal(chmod(sub, 0700), 0);
	expect_open_ok(dir);
}

static void test_symlinked_table_dirs_refused(void **state)
{
	struct fixture *f = *state;
	static const char *const tables[] = {"pending", "paired", "nodes-pending"};
	char dir[128], out[128], link[192], name[32], nowhere[128];

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		snprintf(name, sizeof(name), "s%zu", i);
		make_dir(dir, sizeof(dir), f->dir, name, 0700);
		snprintf(name, sizeof(name), "out%zu", i);
		make_dir(out, sizeof(out), f->dir, name, 0755);
		join(link, sizeof(link), dir, tables[i]);
		assert_int_equal(symlink(out, link), 0);
		expect_refusal(dir, "symbolic link", link);
		/* The target was neither written nor chmod'ed. */
		assert_int_equal(file_mode(out, "."), 0755);
		assert_int_equal(count_entries(out), 0);
		/* A dangling link is not created through either. */
		assert_int_equal(unlink(link), 0);
		snprintf(name, sizeof(name), "nowhere%zu", i);
		join(nowhere, sizeof(nowhere), f->dir, name);
		assert_int_equal(symlink(nowhere, link), 0);
		expect_refusal(dir, "symbolic link", link);
		assert_false(exists(f->dir, name));
		assert_int_equal(unlink(link), 0);
		expect_open_ok(dir);
	}
	/* Nor is another kind of file taken for a table. */
	make_dir(dir, sizeof(dir), f->dir, "file", 0700);
	write_text(dir, "paired", "");
	join(link, sizeof(link), dir, "paired");
	expect_refusal(dir, "is not a directory", link);
}

static void test_symlinked_files_refused(void **state)
{
	struct fixture *f = *state;
	static const char *const recs[][2] = {
	        {"pending/r1.json", "{\"requestId\": \"r1\"}"},
	        {"paired/d1.json", "{\"deviceId\": \"d1\"}"},
	        {"nodes-pending/n1.json", "{\"requestId\": \"n1\"}"},
	        {"pending.json", "{\"r9\": {\"requestId\": \"r9\"}}"},
	        {"paired.json", "{\"d9\": {\"deviceId\": \"d9\"}}"},
	};
	char dir[128], out[128], link[192], target[192];
	char *text;

	make_dir(dir, sizeof(dir), f->dir, "state", 0700);
	make_dir(out, sizeof(out), f->dir, "out", 0700);
	expect_open_ok(dir);
	/* A record file, or a whole-table file of the previous layout, read through a link would
	 * load whatever the link names. */
	for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
		write_text(out, "victim.json", recs[i][1]);
		join(target, sizeof(target), out, "victim.json");
		join(link, sizeof(link), dir, recs[i][0]);
		assert_int_equal(symlink(target, link), 0);
		expect_refusal(dir, "symbolic link", link);
		text = slurp(out, "victim.json");
		assert_non_null(text);
		assert_string_equal(text, recs[i][1]);
		free(text);
		assert_true(is_link(dir, recs[i][0]));
		assert_int_equal(unlink(link), 0);
	}
	assert_false(exists(dir, "pending/r9.json"));
	assert_false(exists(dir, "paired/d9.json"));
	/* A FIFO under a record's name neither blocks the open nor passes for a record. */
	join(link, sizeof(link), dir, "pending/r2.json");
	assert_int_equal(mkfifo(link, 0600), 0);
	expect_open_error(dir, "pending/r2.json: not a regular file");
	assert_int_equal(unlink(link), 0);

	/* The lock file: a dangling link is not created through, an existing target not opened. */
	join(link, sizeof(link), dir, "lock");
	assert_int_equal(unlink(link), 0);
	join(target, sizeof(target), out, "lock");
	assert_int_equal(symlink(target, link), 0);
	expect_refusal(dir, "symbolic link", link);
	assert_false(exists(out, "lock"));
	write_text(out, "lock", "");
	assert_int_equal(chmod(target, 0644), 0);
	expect_refusal(dir, "symbolic link", link);
	assert_int_equal(file_mode(out, "lock"), 0644);
	assert_int_equal(unlink(link), 0);
	expect_open_ok(dir);
	assert_false(is_link(dir, "lock"));
}

/* Temp files are created with O_EXCL; links left under temp names are removed, not written. */
static void test_symlinked_temp_never_written(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "", dir[128], out[128], link[192], target[192];
	char *text;
	struct stat st;

	make_dir(dir, sizeof(dir), f->dir, "state", 0700);
	make_dir(out, sizeof(out), f->dir, "out", 0700);
	expect_open_ok(dir);
	write_text(out, "victim", "keep");
	join(target, sizeof(target), out, "victim");
	join(link, sizeof(link), dir, "pending/.r1.json.AbCdEf");
	assert_int_equal(symlink(target, link), 0);
	join(link, sizeof(link), dir, ".pending.json.AbCdEf");
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(store_open(dir, &s, err, sizeof(err)), 0);
	assert_false(is_link(dir, "pending/.r1.json.AbCdEf"));
	assert_false(is_link(dir, ".pending.json.AbCdEf"));
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r1", "d1", 1)), 0);
	store_close(s);
	text = slurp(out, "victim");
	assert_non_null(text);
	assert_string_equal(text, "keep");
	free(text);
	join(link, sizeof(link), dir, "pending/r1.json");
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

/* The lock is flock(LOCK_EX) on <state>/lock (spec 8.9): any process that takes it that way,
 * whatever its implementation, excludes the store, and the store excludes it. */
static void test_lock_held_by_another_process(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "", want[256], path[160], c = 0;
	int ready[2], release[2], status = 0;
	pid_t pid;

	join(path, sizeof(path), f->dir, "lock");
	snprintf(want, sizeof(want), "state dir %s is locked by another process", f->dir);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(release), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

		if (fd < 0 || flock(fd, LOCK_EX) < 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1 || read(release[0], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), -1);
	assert_null(s);
	assert_string_equal(err, want);
	assert_int_equal(write(release[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* The other way round: while the store is open, flock(LOCK_EX | LOCK_NB) fails. */
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_RDWR | O_CLOEXEC);

		_exit(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	store_close(s);
	for (int i = 0; i < 2; i++) {
		close(ready[i]);
		close(release[i]);
	}
}

static void test_corrupt_record_files_are_errors(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
	        "{\"requestId\": \"r1\"", /* cut short */
	        "",
	        "[]",
	        "5",
	        "null",
	        "\"r1\"",
	        "{\"requestId\": \"r2\"}", /* not its file name: corrupt, not silently re-keyed */
	        "{\"requestId\": 7}",
	        "{\"deviceId\": \"d1\"}",
	        "{\"requestId\": \"r1\"} trailing",
	};
	char path[256];

	expect_open_ok(f->dir); /* creates the table directories */
	snprintf(path, sizeof(path), "%s/pending/r1.json", f->dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_text(f->dir, "pending/r1.json", bad[i]);
		expect_open_error(f->dir, path);
	}
	write_text(f->dir, "pending/r1.json", "{\"requestId\": \"r1\"}");
	expect_open_ok(f->dir);

	snprintf(path, sizeof(path), "%s/paired/d1.json", f->dir);
	write_text(f->dir, "paired/d1.json", "not json");
	expect_open_error(f->dir, path);
	unlink(path);
	/* Unreadable (a directory in its place). */
	assert_int_equal(mkdir(path, 0700), 0);
	expect_open_error(f->dir, path);
	rmdir(path);

	/* A record file whose name is no valid key. */
	snprintf(path, sizeof(path), "%s/nodes-pending/a b.json", f->dir);
	write_text(f->dir, "nodes-pending/a b.json", "{\"requestId\": \"a b\"}");
	expect_open_error(f->dir, path);
	unlink(path);

	/* What is not a record is left alone: dotfiles and names not ending in .json. */
	write_text(f->dir, "pending/.keep", "x");
	write_text(f->dir, "pending/README", "x");
	write_text(f->dir, "pending/r1.json.bak", "x");
	{
		struct store *s = NULL;
		char err[256] = "";

		/* Still usable once repaired; the errors did not leave the lock held. */
		assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
		assert_int_equal(store_count(s, STORE_PENDING), 1);
		assert_non_null(store_get(s, STORE_PENDING, "r1"));
		store_close(s);
	}
	assert_true(exists(f->dir, "pending/.keep"));
	assert_true(exists(f->dir, "pending/README"));
}

static void test_old_layout_imported(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "";
	cJSON *root = cJSON_CreateObject(), *paired = cJSON_CreateObject();
	char *text;

	/* The previous layout: one pretty-printed object per table, keyed by the key field. */
	cJSON_AddItemToObject(root, "r2", pending_rec("r2", "d2", 2000));
	cJSON_AddItemToObject(root, "r1", pending_rec("r1", "d1", 1000));
	text = cJSON_Print(root);
	write_text(f->dir, "pending.json", text);
	free(text);
	cJSON_Delete(root);
	cJSON_AddItemToObject(paired, "d9", paired_rec("d9", "0123456789abcdef0123456789abcdef"));
	text = cJSON_Print(paired);
	write_text(f->dir, "paired.json", text);
	free(text);
	cJSON_Delete(paired);
	write_text(f->dir, "nodes-pending.json", "{\"n1\": {\"requestId\": \"n1\", \"ts\": 5}}");

	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 2);
	/* Ordered by ts, not by the old file's order. */
	assert_string_equal(
	        cJSON_GetObjectItem(store_at(s, STORE_PENDING, 0), "requestId")->valuestring, "r1");
	assert_string_equal(
	        cJSON_GetObjectItem(store_at(s, STORE_PENDING, 1), "requestId")->valuestring, "r2");
	assert_non_null(store_get(s, STORE_PAIRED, "d9"));
	assert_non_null(store_get(s, STORE_COMPAT_NODE_PENDING, "n1"));
	store_close(s);
	/* Every record has its own file; the old files are renamed, so nothing imports twice. */
	assert_int_equal(file_mode(f->dir, "pending/r1.json"), 0600);
	assert_int_equal(file_mode(f->dir, "pending/r2.json"), 0600);
	assert_int_equal(file_mode(f->dir, "paired/d9.json"), 0600);
	assert_int_equal(file_mode(f->dir, "nodes-pending/n1.json"), 0600);
	assert_false(exists(f->dir, "pending.json"));
	assert_false(exists(f->dir, "paired.json"));
	assert_false(exists(f->dir, "nodes-pending.json"));
	assert_true(exists(f->dir, "pending.json.imported"));
	assert_true(exists(f->dir, "paired.json.imported"));
	assert_true(exists(f->dir, "nodes-pending.json.imported"));

	/* A removal after the import stays removed: the .imported file is not read again. */
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_int_equal(store_remove(s, STORE_PENDING, "r2"), 0);
	store_close(s);
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 1);
	assert_string_equal(
	        cJSON_GetObjectItem(
	                cJSON_GetObjectItem(
	                        cJSON_GetObjectItem(store_get(s, STORE_PAIRED, "d9"), "tokens"),
	                        "node"),
	                "token")
	                ->valuestring,
	        "0123456789abcdef0123456789abcdef");
	store_close(s);
}

static void test_old_layout_corrupt(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
	        "{\"r1\": {\"requestId\": \"r1\"",
	        "",
	        "[]",
	        "{\"r1\": {\"requestId\": \"r2\"}}", /* key mismatch */
	        "{\"r1\": 5}",
	        "{\"../x\": {\"requestId\": \"../x\"}}", /* no valid file name */
	        "{\"r1\": {\"requestId\": \"r1\"}, \"r1\": {\"requestId\": \"r1\"}}",
	        "{\"x\": {\"requestId\": \"x\"}} trailing",
	};
	char path[256];

	snprintf(path, sizeof(path), "%s/pending.json", f->dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_text(f->dir, "pending.json", bad[i]);
		expect_open_error(f->dir, path);
		/* Nothing is imported from a file that is rejected, and it stays in place. */
		assert_true(exists(f->dir, "pending.json"));
		assert_false(exists(f->dir, "pending.json.imported"));
	}
	snprintf(path, sizeof(path), "%s/paired.json", f->dir);
	unlink(path);
	assert_int_equal(mkdir(path, 0700), 0);
	write_text(f->dir, "pending.json", "{}");
	expect_open_error(f->dir, path);
	rmdir(path);
	expect_open_ok(f->dir);
	assert_true(exists(f->dir, "pending.json.imported"));
}

static cJSON *with_role(cJSON *r, const char *role, const char *scope)
{
	cJSON *roles = cJSON_AddArrayToObject(r, "roles");
	cJSON *scopes = cJSON_AddArrayToObject(r, "scopes");

	cJSON_DeleteItemFromObject(r, "role");
	cJSON_AddStringToObject(r, "role", role);
	cJSON_AddItemToArray(roles, cJSON_CreateString(role));
	if (scope)
		cJSON_AddItemToArray(scopes, cJSON_CreateString(scope));
	return r;
}

static void test_stale_pending_repaired_at_open(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "";
	cJSON *other;

	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	/* d1: paired, and its request is still there (a crash inside store_approve). */
	assert_int_equal(
	        store_put(s, STORE_PENDING, with_role(pending_rec("r1", "d1", 1), "node", NULL)),
	        0);
	assert_int_equal(store_put(s, STORE_PAIRED,
	                           with_role(paired_rec("d1", "11111111111111111111111111111111"),
	                                     "node", "operator.read")),
	                 0);
	/* d2: paired under another key: the request is a repair, not stale. */
	assert_int_equal(
	        store_put(s, STORE_PENDING, with_role(pending_rec("r2", "d2", 2), "node", NULL)),
	        0);
	other = with_role(paired_rec("d2", "22222222222222222222222222222222"), "node", NULL);
	cJSON_ReplaceItemInObject(
	        other, "publicKey",
	        cJSON_CreateString("AAAAvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik"));
	assert_int_equal(store_put(s, STORE_PAIRED, other), 0);
	/* d3: paired as an operator, asking for the node role: not covered yet, kept. */
	assert_int_equal(
	        store_put(s, STORE_PENDING, with_role(pending_rec("r3", "d3", 3), "node", NULL)),
	        0);
	assert_int_equal(store_put(s, STORE_PAIRED,
	                           with_role(paired_rec("d3", "33333333333333333333333333333333"),
	                                     "operator", NULL)),
	                 0);
	/* d4: paired for the same role, asking for one more scope: kept. */
	assert_int_equal(store_put(s, STORE_PENDING,
	                           with_role(pending_rec("r4", "d4", 4), "node", "operator.admin")),
	                 0);
	assert_int_equal(store_put(s, STORE_PAIRED,
	                           with_role(paired_rec("d4", "44444444444444444444444444444444"),
	                                     "node", NULL)),
	                 0);
	/* d5: not paired at all. */
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r5", "d5", 5)), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 5);
	store_close(s);

	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_null(store_get(s, STORE_PENDING, "r1"));
	assert_false(exists(f->dir, "pending/r1.json"));
	assert_non_null(store_get(s, STORE_PAIRED, "d1"));
	assert_non_null(store_get(s, STORE_PENDING, "r2"));
	assert_non_null(store_get(s, STORE_PENDING, "r3"));
	assert_non_null(store_get(s, STORE_PENDING, "r4"));
	assert_non_null(store_get(s, STORE_PENDING, "r5"));
	assert_int_equal(store_count(s, STORE_PENDING), 4);
	assert_string_equal(
	        cJSON_GetObjectItem(store_at(s, STORE_PENDING, 0), "requestId")->valuestring, "r2");
	store_close(s);
}

static void test_unsafe_keys_refused(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "", longest[STORE_KEY_MAX + 2];
	static const char *const bad[] = {"../x", "..", ".hidden", "a/b", "a b", "",
	                                  "x\\y", "é",  "a\nb",    "~",   "a:b"};

	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(store_key_valid(bad[i]));
		assert_int_equal(store_put(s, STORE_PENDING, pending_rec(bad[i], "d", 1)), -2);
		assert_int_equal(store_put(s, STORE_PAIRED, paired_rec(bad[i], "t")), -2);
	}
	assert_false(store_key_valid(NULL));
	memset(longest, 'k', sizeof(longest));
	longest[STORE_KEY_MAX + 1] = '\0';
	assert_false(store_key_valid(longest));
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec(longest, "d", 1)), -2);
	longest[STORE_KEY_MAX] = '\0';
	assert_true(store_key_valid(longest));
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec(longest, "d", 1)), 0);
	assert_true(store_key_valid("a-Z_0.9"));
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("a-Z_0.9", "d", 2)), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 2);
	assert_int_equal(store_count(s, STORE_PAIRED), 0);
	store_close(s);
	/* Nothing was written outside the table directories. */
	assert_false(exists(f->dir, "x.json"));
	assert_false(exists(f->dir, "pending/.hidden.json"));
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 2);
	assert_non_null(store_get(s, STORE_PENDING, longest));
	store_close(s);
}

static const char *rid_at(const struct store *s, size_t i)
{
	return cJSON_GetObjectItem(store_at(s, STORE_PENDING, i), "requestId")->valuestring;
}

static void test_order_and_index(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "";

	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	/* Insertion order, whatever the keys; the same device twice (the compat table allows it). */
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("c", "dx", 1)), 0);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("a", "dy", 2)), 0);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("d", "dx", 3)), 0);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("b", "dz", 4)), 0);
	assert_string_equal(rid_at(s, 0), "c");
	assert_string_equal(rid_at(s, 3), "b");
	/* store_find by deviceId returns the first in that order. */
	assert_string_equal(
	        cJSON_GetObjectItem(store_find(s, STORE_PENDING, "deviceId", "dx"), "requestId")
	                ->valuestring,
	        "c");
	assert_int_equal(store_remove(s, STORE_PENDING, "a"), 0);
	assert_int_equal(store_remove(s, STORE_PENDING, "c"), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 2);
	assert_string_equal(
	        cJSON_GetObjectItem(store_find(s, STORE_PENDING, "deviceId", "dx"), "requestId")
	                ->valuestring,
	        "d");
	/* A replace keeps the position and re-indexes a changed field. */
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("d", "dw", 3)), 0);
	assert_null(store_find(s, STORE_PENDING, "deviceId", "dx"));
	assert_non_null(store_find(s, STORE_PENDING, "deviceId", "dw"));
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("e", "de", 0)), 0);
	assert_string_equal(rid_at(s, 0), "d");
	assert_string_equal(rid_at(s, 1), "b");
	assert_string_equal(rid_at(s, 2), "e");
	assert_null(store_at(s, STORE_PENDING, 3));
	/* Unindexed fields are found too; the key field through the key index. */
	assert_non_null(store_find(s, STORE_PENDING, "role", "node"));
	assert_null(store_find(s, STORE_PENDING, "role", "operator"));
	assert_non_null(store_find(s, STORE_PENDING, "requestId", "e"));
	assert_null(store_find(s, STORE_PENDING, "requestId", "a"));
	store_close(s);

	/* After a restart: ordered by ts, then key. */
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_string_equal(rid_at(s, 0), "e");
	assert_string_equal(rid_at(s, 1), "d");
	assert_string_equal(rid_at(s, 2), "b");
	store_close(s);
}

static void test_ten_thousand_records(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "", rid[32], did[32];
	const cJSON *r;

	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	/* Group commit, as the gateway runs it: 30,000 changes with no store_flush of ours, so a
	 * batch flushes itself whenever it is full, and store_close flushes the rest. */
	store_set_batching(s, true);
	for (int i = 0; i < 10000; i++) {
		snprintf(rid, sizeof(rid), "req-%05d", i);
		snprintf(did, sizeof(did), "dev-%05d", i);
		assert_int_equal(store_put(s, STORE_PENDING, pending_rec(rid, did, i)), 0);
	}
	assert_true(store_unflushed(s) < 1024);
	assert_int_equal(store_count(s, STORE_PENDING), 10000);
	for (int i = 0; i < 10000; i++) {
		snprintf(rid, sizeof(rid), "req-%05d", i);
		snprintf(did, sizeof(did), "dev-%05d", i);
		r = store_get(s, STORE_PENDING, rid);
		assert_non_null(r);
		assert_string_equal(cJSON_GetObjectItem(r, "deviceId")->valuestring, did);
		assert_ptr_equal(store_find(s, STORE_PENDING, "deviceId", did), r);
		assert_ptr_equal(store_at(s, STORE_PENDING, (size_t)i), r);
	}
	/* Remove every third one, approve every seventh of the rest. */
	for (int i = 0; i < 10000; i += 3) {
		snprintf(rid, sizeof(rid), "req-%05d", i);
		assert_int_equal(store_remove(s, STORE_PENDING, rid), 0);
		assert_int_equal(store_remove(s, STORE_PENDING, rid), 1);
	}
	for (int i = 1; i < 10000; i += 7) {
		if (i % 3 == 0)
			continue;
		snprintf(rid, sizeof(rid), "req-%05d", i);
		snprintf(did, sizeof(did), "dev-%05d", i);
		assert_int_equal(store_approve(s, paired_rec(did, "t"), rid), 0);
	}
	store_close(s);

	s = NULL;
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	{
		size_t pending = 0, paired = 0, at = 0;

		for (int i = 0; i < 10000; i++) {
			bool removed = i % 3 == 0, approved = !removed && i % 7 == 1;

			snprintf(rid, sizeof(rid), "req-%05d", i);
			snprintf(did, sizeof(did), "dev-%05d", i);
			r = store_get(s, STORE_PENDING, rid);
			assert_true((r != NULL) == (!removed && !approved));
			assert_true((store_get(s, STORE_PAIRED, did) != NULL) == approved);
			if (r) {
				/* Loaded in ts order, which is the order they were put in. */
				assert_ptr_equal(store_at(s, STORE_PENDING, at++), r);
				assert_ptr_equal(store_find(s, STORE_PENDING, "deviceId", did), r);
				pending++;
			}
			paired += approved;
		}
		assert_int_equal(store_count(s, STORE_PENDING), pending);
		assert_int_equal(store_count(s, STORE_PAIRED), paired);
	}
	store_close(s);
}

/* Group commit: changes are in memory at once, on disk only after store_flush, with one data sync
 * and one fsync per directory for the whole batch; an approval's request leaves without a
 * directory sync of its own. */
static void test_batch_commit(void **state)
{
	struct fixture *f = *state;
	struct store_flush_stats st;
	struct store *s = NULL;
	char err[256] = "", pdir[128], adir[128];

	snprintf(pdir, sizeof(pdir), "%s/pending", f->dir);
	snprintf(adir, sizeof(adir), "%s/paired", f->dir);
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	store_set_batching(s, true);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r1", "d1", 1000)), 0);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r2", "d2", 2000)), 0);
	assert_int_equal(
	        store_approve(s, paired_rec("d1", "0123456789abcdef0123456789abcdef"), "r1"), 0);
	/* Memory has the batch; the disk has only temp files. */
	assert_int_equal(store_unflushed(s), 4);
	assert_int_equal(store_count(s, STORE_PENDING), 1);
	assert_non_null(store_get(s, STORE_PAIRED, "d1"));
	assert_false(exists(pdir, "r2.json"));
	assert_false(exists(adir, "d1.json"));
	assert_int_equal(count_dotfiles(pdir), 2);
	assert_int_equal(count_dotfiles(adir), 1);

	assert_int_equal(store_flush(s), 0);
	store_flush_stats(s, &st);
	assert_int_equal(st.batches, 1);
	assert_int_equal(st.records, 4);
	assert_int_equal(st.data_syncs, 1); /* three puts: one syncfs */
	assert_int_equal(st.dir_syncs, 2); /* paired/, then pending/ */
	assert_int_equal(store_unflushed(s), 0);
	assert_true(exists(pdir, "r2.json"));
	assert_false(exists(pdir, "r1.json"));
	assert_true(exists(adir, "d1.json"));
	assert_int_equal(count_dotfiles(pdir), 0);
	assert_int_equal(count_dotfiles(adir), 0);

	/* One approval alone: one fdatasync, one fsync of paired/; the request's unlink rides on
	 * the next sync of pending/. */
	assert_int_equal(
	        store_approve(s, paired_rec("d2", "fedcba9876543210fedcba9876543210"), "r2"), 0);
	assert_int_equal(store_flush(s), 0);
	store_flush_stats(s, &st);
	assert_int_equal(st.data_syncs, 2);
	assert_int_equal(st.dir_syncs, 3);
	assert_false(exists(pdir, "r2.json"));
	assert_true(exists(adir, "d2.json"));
	assert_int_equal(store_flush(s), 0); /* nothing waits: not a batch */
	store_flush_stats(s, &st);
	assert_int_equal(st.batches, 2);

	/* A removal and a put of the same key in one batch land in order; store_close flushes
	 * what is left. */
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r3", "d3", 3000)), 0);
	assert_int_equal(store_remove(s, STORE_PENDING, "r3"), 0);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r3", "d3", 3500)), 0);
	assert_int_equal(store_put(s, STORE_PENDING, pending_rec("r4", "d4", 4000)), 0);
	store_close(s);
	s = NULL;
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 2);
	assert_int_equal(store_count(s, STORE_PAIRED), 2);
	assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(
	                         store_get(s, STORE_PENDING, "r3"), "ts")),
	                 3500);
	assert_non_null(store_get(s, STORE_PENDING, "r4"));
	store_close(s);
}

/* A crash before the flush loses the batch, and only the batch: what was flushed before is
 * there, the temp files are swept at the next open. */
static void test_batch_lost_before_flush(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char err[256] = "";
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (store_open(f->dir, &s, err, sizeof(err)) < 0)
			_exit(2);
		store_set_batching(s, true);
		store_put(s, STORE_PENDING, pending_rec("r1", "d1", 1000));
		if (store_flush(s) < 0)
			_exit(3);
		store_approve(s, paired_rec("d1", "0123456789abcdef0123456789abcdef"), "r1");
		store_put(s, STORE_PENDING, pending_rec("r2", "d2", 2000));
		_exit(0); /* no flush, no close: as if killed */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(store_open(f->dir, &s, err, sizeof(err)), 0);
	assert_int_equal(store_count(s, STORE_PENDING), 1);
	assert_non_null(store_get(s, STORE_PENDING, "r1"));
	assert_int_equal(store_count(s, STORE_PAIRED), 0);
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
	        cmocka_unit_test_setup_teardown(test_writes_follow_the_opened_directory, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_lock_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_lock_held_by_another_process, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_dir_owner_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_dir_writable_by_others_refused, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_symlinked_table_dirs_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_symlinked_files_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_symlinked_temp_never_written, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_corrupt_record_files_are_errors, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_old_layout_imported, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_old_layout_corrupt, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_stale_pending_repaired_at_open, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_unsafe_keys_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_order_and_index, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ten_thousand_records, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_batch_commit, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_batch_lost_before_flush, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
