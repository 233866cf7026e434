/* store.c: the locked state directory holding pending.json, paired.json and the compat node store,
 * loaded at open and rewritten atomically (temp file, fsync, rename, directory fsync) per change.
 *
 * Every change rewrites the whole table file: serialization is O(n) in the table size, so a burst
 * of k changes on n records costs O(k*n). Lookups are linear scans, which stay well under a
 * millisecond at 10,000 records and are dominated by the rewrite. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "store.h"

struct rec {
	const char *key; /* points into json */
	cJSON *json;
};

struct table {
	const char *file;
	const char *key_field;
	struct rec *v;
	size_t n, cap;
};

struct store {
	char *dir;
	int dirfd;
	int lockfd;
	struct table t[STORE__TABLES];
	char err[512];
};

static const struct {
	const char *file;
	const char *key_field;
} table_defs[STORE__TABLES] = {
        [STORE_PENDING] = {"pending.json", "requestId"},
        [STORE_PAIRED] = {"paired.json", "deviceId"},
        [STORE_COMPAT_NODE_PENDING] = {"nodes-pending.json", "requestId"},
};

static void set_err(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (!err || errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

static const char *rec_key(const cJSON *json, const char *field)
{
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(json, field);

	if (!cJSON_IsString(k) || !k->valuestring || !k->valuestring[0])
		return NULL;
	return k->valuestring;
}

static long find_index(const struct table *t, const char *key)
{
	if (!key)
		return -1;
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].key, key) == 0)
			return (long)i;
	return -1;
}

static int table_push(struct table *t, cJSON *json, const char *key)
{
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 16;
		struct rec *nv = realloc(t->v, ncap * sizeof(*nv));

		if (!nv)
			return -1;
		t->v = nv;
		t->cap = ncap;
	}
	t->v[t->n].json = json;
	t->v[t->n].key = key;
	t->n++;
	return 0;
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->n; i++)
		cJSON_Delete(t->v[i].json);
	free(t->v);
	t->v = NULL;
	t->n = t->cap = 0;
}

static int read_file(int dirfd, const char *name, char **out, size_t *outlen)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t r;

		if (len + 4096 > cap) {
			size_t ncap = cap ? cap * 2 : 65536;
			char *nb = realloc(buf, ncap);

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
	}
	close(fd);
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
fail : {
	int e = errno;

	close(fd);
	free(buf);
	errno = e;
	return -1;
}
}

static int load_table(struct store *s, struct table *t, char *err, size_t errsz)
{
	char *text = NULL;
	size_t len = 0;
	cJSON *root = NULL;
	int rc = -1;

	if (read_file(s->dirfd, t->file, &text, &len) < 0) {
		if (errno == ENOENT)
			return 0;
		set_err(err, errsz, "cannot read state file %s/%s: %s", s->dir, t->file,
		        strerror(errno));
		return -1;
	}
	/* Trailing garbage or an embedded NUL is corruption too, not a shorter valid file. */
	if (memchr(text, '\0', len) == NULL)
		root = cJSON_ParseWithLengthOpts(text, len + 1, NULL, true);
	if (!root || !cJSON_IsObject(root)) {
		set_err(err, errsz, "corrupt state file %s/%s: not a JSON object", s->dir, t->file);
		goto cleanup;
	}
	while (root->child) {
		cJSON *item = cJSON_DetachItemViaPointer(root, root->child);
		const char *key = rec_key(item, t->key_field);

		if (!cJSON_IsObject(item) || !key || !item->string ||
		    strcmp(key, item->string) != 0 || find_index(t, key) >= 0) {
			set_err(err, errsz, "corrupt state file %s/%s: bad record \"%.80s\"",
			        s->dir, t->file, item->string ? item->string : "");
			cJSON_Delete(item);
			goto cleanup;
		}
		if (table_push(t, item, key) < 0) {
			set_err(err, errsz, "out of memory loading %s/%s", s->dir, t->file);
			cJSON_Delete(item);
			goto cleanup;
		}
	}
	rc = 0;
cleanup:
	cJSON_Delete(root);
	free(text);
	return rc;
}

/* A crash between mkstemp and rename leaves ".<table>.XXXXXX" behind; nothing else uses them. */
static void remove_stale_temps(struct store *s)
{
	int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		for (int i = 0; i < STORE__TABLES; i++) {
			size_t n = strlen(s->t[i].file);

			if (de->d_name[0] == '.' && strncmp(de->d_name + 1, s->t[i].file, n) == 0 &&
			    de->d_name[n + 1] == '.' && strlen(de->d_name + n + 2) == 6)
				unlinkat(s->dirfd, de->d_name, 0);
		}
	}
	closedir(d);
}

static int mkdir_p(const char *dir)
{
	char buf[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

int store_open(const char *dir, struct store **out, char *err, size_t errsz)
{
	struct store *s = NULL;
	struct stat st;

	*out = NULL;
	if (!dir || !dir[0]) {
		set_err(err, errsz, "no state dir given");
		return -1;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->dir = strdup(dir))) {
		set_err(err, errsz, "out of memory");
		goto fail;
	}
	s->dirfd = -1;
	s->lockfd = -1;
	for (int i = 0; i < STORE__TABLES; i++) {
		s->t[i].file = table_defs[i].file;
		s->t[i].key_field = table_defs[i].key_field;
	}
	if (mkdir_p(dir) < 0) {
		set_err(err, errsz, "cannot create state dir %s: %s", dir, strerror(errno));
		goto fail;
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0 || fstat(s->dirfd, &st) < 0) {
		set_err(err, errsz, "cannot open state dir %s: %s", dir, strerror(errno));
		goto fail;
	}
	/* The pairing records hold device tokens: nobody else may list or read them. */
	if ((st.st_mode & 077) && fchmod(s->dirfd, 0700) < 0) {
		set_err(err, errsz, "cannot chmod state dir %s to 0700: %s", dir, strerror(errno));
		goto fail;
	}
	s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lockfd < 0) {
		set_err(err, errsz, "cannot open %s/lock: %s", dir, strerror(errno));
		goto fail;
	}
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			set_err(err, errsz, "state dir %s is locked by another process", dir);
		else
			set_err(err, errsz, "cannot lock %s/lock: %s", dir, strerror(errno));
		goto fail;
	}
	remove_stale_temps(s);
	for (int i = 0; i < STORE__TABLES; i++)
		if (load_table(s, &s->t[i], err, errsz) < 0)
			goto fail;
	*out = s;
	return 0;
fail:
	store_close(s);
	return -1;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	for (int i = 0; i < STORE__TABLES; i++)
		table_free(&s->t[i]);
	if (s->lockfd >= 0)
		close(s->lockfd); /* releases the flock */
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->dir);
	free(s);
}

const char *store_dir(const struct store *s)
{
	return s->dir;
}

const char *store_last_error(const struct store *s)
{
	return s->err;
}

static int write_all(int fd, const char *p, size_t len)
{
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

static char *serialize(const struct table *t)
{
	cJSON *root = cJSON_CreateObject();
	char *text = NULL;

	if (!root)
		return NULL;
	/* References: the records are printed in place, not copied. */
	for (size_t i = 0; i < t->n; i++)
		if (!cJSON_AddItemReferenceToObject(root, t->v[i].key, t->v[i].json))
			goto cleanup;
	text = cJSON_Print(root);
cleanup:
	cJSON_Delete(root);
	return text;
}

static int write_table(struct store *s, const struct table *t)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	char *text = NULL;
	int fd = -1, rc = -1;

	if (snprintf(path, sizeof(path), "%s/%s", s->dir, t->file) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", s->dir, t->file) >= (int)sizeof(tmp)) {
		set_err(s->err, sizeof(s->err), "write %s/%s: path too long", s->dir, t->file);
		return -1;
	}
	text = serialize(t);
	if (!text) {
		set_err(s->err, sizeof(s->err), "write %s: out of memory", path);
		return -1;
	}
	fd = mkstemp(tmp); /* mode 0600 */
	if (fd < 0) {
		set_err(s->err, sizeof(s->err), "write %s: %s", path, strerror(errno));
		goto cleanup;
	}
	if (fchmod(fd, 0600) < 0 || write_all(fd, text, strlen(text)) < 0 ||
	    write_all(fd, "\n", 1) < 0 || fsync(fd) < 0) {
		set_err(s->err, sizeof(s->err), "write %s: %s", path, strerror(errno));
		goto unlink_tmp;
	}
	if (close(fd) < 0) {
		fd = -1;
		set_err(s->err, sizeof(s->err), "write %s: %s", path, strerror(errno));
		goto unlink_tmp;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		set_err(s->err, sizeof(s->err), "rename %s: %s", path, strerror(errno));
		goto unlink_tmp;
	}
	/* The rename itself is durable only once the directory entry is. */
	if (fsync(s->dirfd) < 0) {
		set_err(s->err, sizeof(s->err), "fsync %s: %s", s->dir, strerror(errno));
		goto cleanup;
	}
	rc = 0;
	goto cleanup;
unlink_tmp:
	unlink(tmp);
cleanup:
	if (fd >= 0)
		close(fd);
	free(text);
	return rc;
}

size_t store_count(const struct store *s, enum store_table t)
{
	if (!s || t >= STORE__TABLES)
		return 0;
	return s->t[t].n;
}

const cJSON *store_at(const struct store *s, enum store_table t, size_t i)
{
	if (!s || t >= STORE__TABLES || i >= s->t[t].n)
		return NULL;
	return s->t[t].v[i].json;
}

const cJSON *store_get(const struct store *s, enum store_table t, const char *key)
{
	long i;

	if (!s || t >= STORE__TABLES)
		return NULL;
	i = find_index(&s->t[t], key);
	return i < 0 ? NULL : s->t[t].v[i].json;
}

const cJSON *store_find(const struct store *s, enum store_table t, const char *field,
                        const char *value)
{
	if (!s || t >= STORE__TABLES || !field || !value)
		return NULL;
	for (size_t i = 0; i < s->t[t].n; i++) {
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(s->t[t].v[i].json, field);

		if (cJSON_IsString(f) && f->valuestring && strcmp(f->valuestring, value) == 0)
			return s->t[t].v[i].json;
	}
	return NULL;
}

int store_put(struct store *s, enum store_table t, cJSON *rec)
{
	struct table *tb;
	const char *key;
	long i;

	if (!s || t >= STORE__TABLES || !cJSON_IsObject(rec)) {
		cJSON_Delete(rec);
		return -2;
	}
	tb = &s->t[t];
	key = rec_key(rec, tb->key_field);
	if (!key) {
		cJSON_Delete(rec);
		return -2;
	}
	i = find_index(tb, key);
	if (i >= 0) {
		struct rec old = tb->v[i];

		tb->v[i].json = rec;
		tb->v[i].key = key;
		if (write_table(s, tb) < 0) {
			tb->v[i] = old;
			cJSON_Delete(rec);
			return -1;
		}
		cJSON_Delete(old.json);
		return 0;
	}
	if (table_push(tb, rec, key) < 0) {
		set_err(s->err, sizeof(s->err), "out of memory");
		cJSON_Delete(rec);
		return -1;
	}
	if (write_table(s, tb) < 0) {
		tb->n--;
		cJSON_Delete(rec);
		return -1;
	}
	return 0;
}

int store_remove(struct store *s, enum store_table t, const char *key)
{
	struct table *tb;
	struct rec old;
	long i;

	if (!s || t >= STORE__TABLES)
		return 1;
	tb = &s->t[t];
	i = find_index(tb, key);
	if (i < 0)
		return 1;
	old = tb->v[i];
	memmove(&tb->v[i], &tb->v[i + 1], (tb->n - (size_t)i - 1) * sizeof(tb->v[0]));
	tb->n--;
	if (write_table(s, tb) < 0) {
		memmove(&tb->v[i + 1], &tb->v[i], (tb->n - (size_t)i) * sizeof(tb->v[0]));
		tb->v[i] = old;
		tb->n++;
		return -1;
	}
	cJSON_Delete(old.json);
	return 0;
}

int store_approve(struct store *s, cJSON *paired_rec, const char *request_id)
{
	struct table *tb;
	long i;

	if (store_put(s, STORE_PAIRED, paired_rec) < 0)
		return -1;
	if (!request_id)
		return 0;
	tb = &s->t[STORE_PENDING];
	i = find_index(tb, request_id);
	if (i < 0)
		return 0;
	/* The approval is durable already. If this rewrite fails, memory still drops the request and
	 * the next successful rewrite of pending.json catches the file up. */
	if (store_remove(s, STORE_PENDING, request_id) < 0) {
		cJSON_Delete(tb->v[i].json);
		memmove(&tb->v[i], &tb->v[i + 1], (tb->n - (size_t)i - 1) * sizeof(tb->v[0]));
		tb->n--;
	}
	return 0;
}
