/* store.c: the locked state directory: one JSON file per record under pending/, paired/ and
 * nodes-pending/, loaded at open, indexed by key in memory, written through per record (temp file,
 * fsync, rename, directory fsync), every access relative to the opened directory and no symbolic
 * link followed.
 *
 * A change writes one small file whatever the table size, and get/put/remove find the record
 * through a hash of the keys. The order of store_at lives in a slot array: a removal leaves a
 * hole (O(1)), and the next positional read past the first hole closes them all up at once, so a
 * burst of removals costs one O(n) pass, not one per removal.
 *
 * Group commit (store_set_batching): a change updates memory and writes its temp file at once, and
 * store_flush makes the whole batch durable with one data sync and one fsync per directory: a
 * gateway under load pays one disk flush per loop iteration instead of three per record. */
#define _GNU_SOURCE /* syncfs */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "fileio.h"
#include "json.h"
#include "store.h"

#define NO_HOLE SIZE_MAX
#define TEMP_SUFFIX_LEN 6 /* mkstemp's XXXXXX */
/* A batch flushes itself once it holds this many changes, which bounds its memory and the time
 * its replies wait. */
#define BATCH_MAX 1024

struct node {
	cJSON *json;
	const char *key; /* points into json */
	const char *ival; /* the table's indexed field (points into json), or NULL */
	struct node *knext; /* key hash chain */
	struct node *inext; /* indexed-field hash chain */
	size_t slot;
};

struct table_def {
	const char *subdir;
	const char *legacy; /* the whole-table file of the previous layout */
	const char *key_field;
	const char *index_field; /* a second field store_find looks up by hash */
	const char *order_field; /* load order */
};

struct table {
	const struct table_def *def;
	char *path; /* DIR/subdir */
	int fd; /* that directory: fsync after a rename or unlink */
	struct node **slots; /* insertion order; NULL is a hole left by a removal */
	size_t n_slots, cap_slots, live, first_hole;
	struct node **kb, **ib; /* hash buckets, nb of each (a power of two, or 0) */
	size_t nb;
};

/* One change of a batch: a temp file to rename over <key>.json, or <key>.json to unlink. */
struct batch_op {
	enum store_table t;
	bool remove;
	bool lazy; /* a removal that store_open repairs if lost: needs no sync of its own */
	bool done; /* a removal already unlinked: the flush only syncs its directory */
	bool dropped; /* a put that a later removal of its key cancelled (temp file gone) */
	char tmp[STORE_KEY_MAX + 16];
	char name[STORE_KEY_MAX + 8];
};

struct store {
	char *dir;
	int dirfd;
	int lockfd;
	/* Behind a pointer so that store_at, a reader, may close up holes through a const store. */
	struct table *t;
	char err[512];
	/* group commit */
	bool batching;
	struct batch_op *ops;
	size_t n_ops, n_puts;
	int one_fd; /* the temp file of the batch's only put, kept open for its fdatasync; or -1 */
	bool lazy_dir[STORE__TABLES]; /* unlinked without a directory sync so far */
	bool flush_failed; /* a flush of a full batch failed since the last store_flush */
	struct store_flush_stats stats;
};

static const struct table_def table_defs[STORE__TABLES] = {
        [STORE_PENDING] = {"pending", "pending.json", "requestId", "deviceId", "ts"},
        [STORE_PAIRED] = {"paired", "paired.json", "deviceId", NULL, "createdAtMs"},
        [STORE_COMPAT_NODE_PENDING] = {"nodes-pending", "nodes-pending.json", "requestId",
                                       "deviceId", "ts"},
};

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errsz, const char *fmt,
                                                          ...)
{
	va_list ap;

	if (!err || errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

/* A record's key and indexed fields count only when non-empty. */
static const char *str_field(const cJSON *json, const char *field)
{
	const char *v = json_get_string(json, field);

	return v && v[0] ? v : NULL;
}

static bool key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

bool store_key_valid(const char *key)
{
	size_t n;

	if (!key || key[0] == '.' || key[0] == '\0')
		return false;
	for (n = 0; key[n]; n++)
		if (n >= STORE_KEY_MAX || !key_char(key[n]))
			return false;
	return true;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct node *lookup(const struct table *t, const char *key)
{
	struct node *n;

	if (!key || t->nb == 0)
		return NULL;
	for (n = t->kb[hash_str(key) & (t->nb - 1)]; n; n = n->knext)
		if (strcmp(n->key, key) == 0)
			return n;
	return NULL;
}

static void link_key(struct table *t, struct node *n)
{
	struct node **b = &t->kb[hash_str(n->key) & (t->nb - 1)];

	n->knext = *b;
	*b = n;
}

static void link_index(struct table *t, struct node *n)
{
	struct node **b;

	if (!n->ival)
		return;
	b = &t->ib[hash_str(n->ival) & (t->nb - 1)];
	n->inext = *b;
	*b = n;
}

static void unlink_key(struct table *t, struct node *n)
{
	struct node **p = &t->kb[hash_str(n->key) & (t->nb - 1)];

	while (*p && *p != n)
		p = &(*p)->knext;
	if (*p)
		*p = n->knext;
}

static void unlink_index(struct table *t, struct node *n)
{
	struct node **p;

	if (!n->ival)
		return;
	p = &t->ib[hash_str(n->ival) & (t->nb - 1)];
	while (*p && *p != n)
		p = &(*p)->inext;
	if (*p)
		*p = n->inext;
}

static void node_set(const struct table *t, struct node *n, cJSON *json)
{
	n->json = json;
	n->key = str_field(json, t->def->key_field);
	n->ival = t->def->index_field ? str_field(json, t->def->index_field) : NULL;
}

/* Keeps at most one record per bucket on average. */
static int buckets_reserve(struct table *t, size_t want)
{
	size_t nb = t->nb ? t->nb : 64;
	struct node **kb, **ib;

	while (nb < want)
		nb *= 2;
	if (nb == t->nb)
		return 0;
	kb = calloc(nb, sizeof(*kb));
	ib = calloc(nb, sizeof(*ib));
	if (!kb || !ib) {
		free(kb);
		free(ib);
		return -1;
	}
	free(t->kb);
	free(t->ib);
	t->kb = kb;
	t->ib = ib;
	t->nb = nb;
	for (size_t i = 0; i < t->n_slots; i++) {
		if (!t->slots[i])
			continue;
		link_key(t, t->slots[i]);
		link_index(t, t->slots[i]);
	}
	return 0;
}

static int slots_reserve(struct table *t, size_t want)
{
	size_t ncap = t->cap_slots ? t->cap_slots : 64;
	struct node **nv;

	while (ncap < want)
		ncap *= 2;
	if (ncap == t->cap_slots)
		return 0;
	nv = realloc(t->slots, ncap * sizeof(*nv));
	if (!nv)
		return -1;
	t->slots = nv;
	t->cap_slots = ncap;
	return 0;
}

static void compact(struct table *t)
{
	size_t j = t->first_hole;

	if (j == NO_HOLE)
		return;
	for (size_t i = j; i < t->n_slots; i++) {
		if (!t->slots[i])
			continue;
		t->slots[j] = t->slots[i];
		t->slots[j]->slot = j;
		j++;
	}
	t->n_slots = j;
	t->first_hole = NO_HOLE;
}

static void append_node(struct table *t, struct node *n)
{
	n->slot = t->n_slots;
	t->slots[t->n_slots++] = n;
	t->live++;
	link_key(t, n);
	link_index(t, n);
}

/* Takes the node out of memory; the caller has dealt with its file. */
static void drop_node(struct table *t, struct node *n)
{
	unlink_key(t, n);
	unlink_index(t, n);
	t->slots[n->slot] = NULL;
	if (n->slot < t->first_hole)
		t->first_hole = n->slot;
	t->live--;
	cJSON_Delete(n->json);
	free(n);
}

/* Bounds the holes when nobody lists the table between removals. */
static void maybe_compact(struct table *t)
{
	size_t holes = t->n_slots - t->live;

	if (holes > 64 && holes > t->live)
		compact(t);
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->n_slots; i++) {
		if (!t->slots[i])
			continue;
		cJSON_Delete(t->slots[i]->json);
		free(t->slots[i]);
	}
	free(t->slots);
	free(t->kb);
	free(t->ib);
	free(t->path);
	if (t->fd >= 0)
		close(t->fd);
}

/* Trailing garbage or an embedded NUL is corruption too, not a shorter valid file. */
static cJSON *parse_whole(const char *text, size_t len)
{
	if (memchr(text, '\0', len))
		return NULL;
	return cJSON_ParseWithLengthOpts(text, len + 1, NULL, true);
}

/* Writes rec to <table>/<key>.json through a temp file, both relative to the table's
 * descriptor. sync_dir false leaves the directory fsync to the caller (an import syncs once for
 * all its records). */
static int write_record(struct store *s, struct table *t, const char *key, const cJSON *rec,
                        bool sync_dir)
{
	char name[STORE_KEY_MAX + 8], tmp[STORE_KEY_MAX + 16];
	const char *stage = "write";
	char *text = NULL;
	int fd, rc = -1;

	/* store_key_valid bounds the key: both fit. */
	snprintf(name, sizeof(name), "%s.json", key);
	snprintf(tmp, sizeof(tmp), ".%s.json.XXXXXX", key);
	text = cJSON_PrintUnformatted(rec);
	if (!text) {
		set_err(s->err, sizeof(s->err), "write %s/%s: out of memory", t->path, name);
		return -1;
	}
	fd = fileio_mkstemp_at(t->fd, tmp); /* O_EXCL, mode 0600 */
	if (fd < 0) {
		set_err(s->err, sizeof(s->err), "write %s/%s: %s", t->path, name, strerror(errno));
		goto cleanup;
	}
	if (fileio_commit_at(fd, t->fd, tmp, name, text, &stage) < 0) {
		set_err(s->err, sizeof(s->err), "%s %s/%s: %s", stage, t->path, name,
		        strerror(errno));
		goto cleanup;
	}
	/* The rename itself is durable only once the directory entry is. */
	if (sync_dir && fsync(t->fd) < 0) {
		set_err(s->err, sizeof(s->err), "fsync %s: %s", t->path, strerror(errno));
		goto cleanup;
	}
	rc = 0;
cleanup:
	free(text);
	return rc;
}

static int flush_now(struct store *s);

/* Batch mode: the record's bytes go to a fresh temp file now (so a full disk fails this call,
 * not the flush); the data sync, the rename and the directory sync wait for store_flush. */
static int stage_record(struct store *s, enum store_table ti, const char *key, const cJSON *rec)
{
	struct table *t = &s->t[ti];
	struct batch_op *op;
	char *text;
	int fd, e;

	if (s->n_ops == BATCH_MAX && flush_now(s) < 0)
		return -1;
	op = &s->ops[s->n_ops];
	memset(op, 0, sizeof(*op));
	op->t = ti;
	snprintf(op->name, sizeof(op->name), "%s.json", key);
	snprintf(op->tmp, sizeof(op->tmp), ".%s.json.XXXXXX", key);
	text = cJSON_PrintUnformatted(rec);
	if (!text) {
		set_err(s->err, sizeof(s->err), "write %s/%s: out of memory", t->path, op->name);
		return -1;
	}
	fd = fileio_mkstemp_at(t->fd, op->tmp);
	if (fd < 0 || fileio_write_all(fd, text, strlen(text)) < 0 ||
	    fileio_write_all(fd, "\n", 1) < 0) {
		e = errno;
		set_err(s->err, sizeof(s->err), "write %s/%s: %s", t->path, op->name, strerror(e));
		if (fd >= 0) {
			close(fd);
			unlinkat(t->fd, op->tmp, 0);
		}
		free(text);
		return -1;
	}
	free(text);
	/* One put: its own fdatasync is cheaper than syncing the file system. Two or more: one
	 * syncfs covers them all. */
	if (s->n_puts == 0)
		s->one_fd = fd;
	else {
		close(fd);
		if (s->one_fd >= 0)
			close(s->one_fd);
		s->one_fd = -1;
	}
	s->n_puts++;
	s->n_ops++;
	return 0;
}

/* Batch mode: a removal unlinks the file at once, so that a directory that refuses it fails this
 * call and memory keeps the record; store_flush syncs the directory. A put of the same key still
 * waiting in the batch is dropped first (its rename would bring the record back). A lazy removal
 * (store_approve's request) waits for the flush instead: it must not reach the disk before the
 * paired record, and a failure to do it is repaired at the next open. */
static int stage_unlink(struct store *s, enum store_table ti, const char *key, bool lazy)
{
	struct table *t = &s->t[ti];
	struct batch_op *op;
	char name[STORE_KEY_MAX + 8];

	snprintf(name, sizeof(name), "%s.json", key);
	if (s->n_ops == BATCH_MAX && flush_now(s) < 0)
		return -1;
	if (!lazy) {
		if (unlinkat(t->fd, name, 0) < 0 && errno != ENOENT) {
			set_err(s->err, sizeof(s->err), "remove %s/%s: %s", t->path, name,
			        strerror(errno));
			return -1;
		}
		for (size_t i = 0; i < s->n_ops; i++) {
			struct batch_op *p = &s->ops[i];

			if (p->t == ti && !p->remove && !p->dropped && strcmp(p->name, name) == 0) {
				unlinkat(t->fd, p->tmp, 0);
				p->dropped = true;
			}
		}
	}
	op = &s->ops[s->n_ops++];
	memset(op, 0, sizeof(*op));
	op->t = ti;
	op->remove = true;
	op->lazy = lazy;
	op->done = !lazy;
	snprintf(op->name, sizeof(op->name), "%s", name);
	return 0;
}

static int unlink_record(struct store *s, struct table *t, const char *key)
{
	char name[STORE_KEY_MAX + 8];

	snprintf(name, sizeof(name), "%s.json", key);
	if (unlinkat(t->fd, name, 0) < 0) {
		set_err(s->err, sizeof(s->err), "remove %s/%s: %s", t->path, name, strerror(errno));
		return -1;
	}
	if (fsync(t->fd) < 0) {
		set_err(s->err, sizeof(s->err), "fsync %s: %s", t->path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Why a file of the store could not be read, as one line naming its path. A symbolic link is
 * refused rather than followed: the records must be the ones in this directory. */
static void read_error(const char *dir, const char *parent, const char *name, char *err,
                       size_t errsz)
{
	if (errno == ELOOP)
		set_err(err, errsz,
		        "refusing state dir %s: %s/%s is a symbolic link (not followed)", dir,
		        parent, name);
	else if (errno == EINVAL)
		set_err(err, errsz, "corrupt state file %s/%s: not a regular file", parent, name);
	else
		set_err(err, errsz, "cannot read state file %s/%s: %s", parent, name,
		        strerror(errno));
}

/* ".<key>.json.XXXXXX": a write cut short between mkstemp and rename. */
static bool is_temp_name(const char *name)
{
	size_t len = strlen(name);

	return name[0] == '.' && len > 1 + 5 + 1 + TEMP_SUFFIX_LEN &&
	       memcmp(name + len - TEMP_SUFFIX_LEN - 6, ".json.", 6) == 0;
}

/* Temp files of the previous layout: ".pending.json.XXXXXX" and the like. */
static void remove_legacy_temps(struct store *s)
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
			size_t n = strlen(table_defs[i].legacy);

			if (de->d_name[0] == '.' &&
			    strncmp(de->d_name + 1, table_defs[i].legacy, n) == 0 &&
			    de->d_name[n + 1] == '.' &&
			    strlen(de->d_name + n + 2) == TEMP_SUFFIX_LEN)
				unlinkat(s->dirfd, de->d_name, 0);
		}
	}
	closedir(d);
}

struct loaded {
	double ord;
	struct node *n;
};

static int cmp_loaded(const void *a, const void *b)
{
	const struct loaded *x = a, *y = b;

	if (x->ord != y->ord)
		return x->ord < y->ord ? -1 : 1;
	return strcmp(x->n->key, y->n->key);
}

/* Reads one record file; *out is NULL (and 0 returned) for a name that is not a record. */
static int load_record(const char *dir, struct table *t, const char *name, struct node **out,
                       char *err, size_t errsz)
{
	size_t len = strlen(name), tlen = 0;
	char stem[STORE_KEY_MAX + 1], *text = NULL;
	cJSON *json = NULL;
	const char *key;
	struct node *n;
	int rc = -1;

	*out = NULL;
	if (name[0] == '.' || len <= 5 || strcmp(name + len - 5, ".json") != 0)
		return 0;
	if (len - 5 > STORE_KEY_MAX) {
		set_err(err, errsz, "corrupt state file %s/%.200s: file name too long", t->path,
		        name);
		return -1;
	}
	memcpy(stem, name, len - 5);
	stem[len - 5] = '\0';
	if (!store_key_valid(stem)) {
		set_err(err, errsz, "corrupt state file %s/%s: not a valid key file name", t->path,
		        name);
		return -1;
	}
	if (fileio_read_regular(t->fd, name, SIZE_MAX, &text, &tlen) < 0) {
		read_error(dir, t->path, name, err, errsz);
		return -1;
	}
	json = parse_whole(text, tlen);
	if (!cJSON_IsObject(json)) {
		set_err(err, errsz, "corrupt state file %s/%s: not a JSON object", t->path, name);
		goto cleanup;
	}
	key = str_field(json, t->def->key_field);
	if (!key || strcmp(key, stem) != 0) {
		set_err(err, errsz, "corrupt state file %s/%s: its \"%s\" is not \"%s\"", t->path,
		        name, t->def->key_field, stem);
		goto cleanup;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		set_err(err, errsz, "out of memory loading %s/%s", t->path, name);
		goto cleanup;
	}
	node_set(t, n, json);
	json = NULL;
	*out = n;
	rc = 0;
cleanup:
	cJSON_Delete(json);
	free(text);
	return rc;
}

static int load_table(const char *dir, struct table *t, char *err, size_t errsz)
{
	int fd = openat(t->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct loaded *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int rc = -1;

	if (!d) {
		set_err(err, errsz, "cannot read state dir %s: %s", t->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((errno = 0, de = readdir(d))) {
		struct node *node;

		if (is_temp_name(de->d_name)) {
			unlinkat(t->fd, de->d_name, 0);
			continue;
		}
		if (load_record(dir, t, de->d_name, &node, err, errsz) < 0)
			goto cleanup;
		if (!node)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct loaded *nv = realloc(v, ncap * sizeof(*nv));

			if (!nv) {
				cJSON_Delete(node->json);
				free(node);
				set_err(err, errsz, "out of memory loading %s", t->path);
				goto cleanup;
			}
			v = nv;
			cap = ncap;
		}
		v[n].n = node;
		v[n].ord = cJSON_GetNumberValue(
		        cJSON_GetObjectItemCaseSensitive(node->json, t->def->order_field));
		if (v[n].ord != v[n].ord) /* NaN: not a number field */
			v[n].ord = 0;
		n++;
	}
	if (errno) {
		set_err(err, errsz, "cannot read state dir %s: %s", t->path, strerror(errno));
		goto cleanup;
	}
	if (n && (slots_reserve(t, n) < 0 || buckets_reserve(t, n) < 0)) {
		set_err(err, errsz, "out of memory loading %s", t->path);
		goto cleanup;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_loaded);
	for (size_t i = 0; i < n; i++)
		append_node(t, v[i].n);
	n = 0;
	rc = 0;
cleanup:
	for (size_t i = 0; i < n; i++) {
		cJSON_Delete(v[i].n->json);
		free(v[i].n);
	}
	free(v);
	closedir(d);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The previous layout: one JSON object per table, keyed like the records' key field. Every
 * record gets its own synced file before the old file is renamed away, so a crash during the
 * import leaves the old file in place and the next open imports it again. */
static int import_legacy(struct store *s, struct table *t, char *err, size_t errsz)
{
	const char *file = t->def->legacy;
	char *text = NULL, done[64];
	const char **keys = NULL;
	size_t len = 0, n = 0;
	cJSON *root = NULL, *item;
	int rc = -1;

	if (fileio_read_regular(s->dirfd, file, SIZE_MAX, &text, &len) < 0) {
		if (errno == ENOENT)
			return 0;
		read_error(s->dir, s->dir, file, err, errsz);
		return -1;
	}
	root = parse_whole(text, len);
	if (!cJSON_IsObject(root)) {
		set_err(err, errsz, "corrupt state file %s/%s: not a JSON object", s->dir, file);
		goto cleanup;
	}
	n = (size_t)cJSON_GetArraySize(root);
	keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys) {
		set_err(err, errsz, "out of memory importing %s/%s", s->dir, file);
		goto cleanup;
	}
	n = 0;
	cJSON_ArrayForEach(item, root)
	{
		const char *key = str_field(item, t->def->key_field);

		if (!cJSON_IsObject(item) || !key || !item->string ||
		    strcmp(key, item->string) != 0 || !store_key_valid(key)) {
			set_err(err, errsz, "corrupt state file %s/%s: bad record \"%.80s\"",
			        s->dir, file, item->string ? item->string : "");
			goto cleanup;
		}
		keys[n++] = key;
	}
	qsort(keys, n, sizeof(*keys), cmp_str);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(keys[i - 1], keys[i]) == 0) {
			set_err(err, errsz, "corrupt state file %s/%s: duplicate record \"%.80s\"",
			        s->dir, file, keys[i]);
			goto cleanup;
		}
	}
	cJSON_ArrayForEach(item, root)
	{
		if (write_record(s, t, item->string, item, false) < 0) {
			set_err(err, errsz, "cannot import %s/%s: %s", s->dir, file, s->err);
			goto cleanup;
		}
	}
	snprintf(done, sizeof(done), "%s.imported", file);
	if (fsync(t->fd) < 0 || renameat(s->dirfd, file, s->dirfd, done) < 0 ||
	    fsync(s->dirfd) < 0) {
		set_err(err, errsz, "cannot import %s/%s: %s", s->dir, file, strerror(errno));
		goto cleanup;
	}
	rc = 0;
cleanup:
	free(keys);
	cJSON_Delete(root);
	free(text);
	return rc;
}

/* Does the paired record already grant every role and scope the request asks for? */
static bool paired_covers(const cJSON *paired, const cJSON *req)
{
	const cJSON *proles = cJSON_GetObjectItemCaseSensitive(paired, "roles");
	const cJSON *pscopes = cJSON_GetObjectItemCaseSensitive(paired, "scopes");
	const char *prole = str_field(paired, "role");
	const char *role = str_field(req, "role");
	const cJSON *e;

	if (role && !json_array_has_string(proles, role) && !(prole && strcmp(prole, role) == 0))
		return false;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(req, "roles"))
	{
		if (!cJSON_IsString(e) || !e->valuestring)
			continue;
		if (!json_array_has_string(proles, e->valuestring) &&
		    !(prole && strcmp(prole, e->valuestring) == 0))
			return false;
	}
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(req, "scopes"))
	{
		if (cJSON_IsString(e) && e->valuestring &&
		    !json_array_has_string(pscopes, e->valuestring))
			return false;
	}
	return true;
}

/* What a store_approve cut short by a crash leaves behind: the paired record is on disk, its
 * request too. */
static int repair_stale(struct store *s, char *err, size_t errsz)
{
	struct table *pending = &s->t[STORE_PENDING], *paired = &s->t[STORE_PAIRED];

	for (size_t i = 0; i < pending->n_slots; i++) {
		struct node *n = pending->slots[i];
		const struct node *p;
		const char *pk, *ppk;

		if (!n)
			continue;
		p = lookup(paired, str_field(n->json, "deviceId"));
		pk = str_field(n->json, "publicKey");
		ppk = p ? str_field(p->json, "publicKey") : NULL;
		if (!p || !pk || !ppk || strcmp(pk, ppk) != 0 || !paired_covers(p->json, n->json))
			continue;
		if (unlink_record(s, pending, n->key) < 0) {
			set_err(err, errsz, "cannot remove stale pending request: %s", s->err);
			return -1;
		}
		drop_node(pending, n);
	}
	compact(pending);
	return 0;
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

/* Someone who can write a directory of the store can plant or swap records, so only the
 * gateway's user may. Reading is narrowed by the caller (chmod 0700), not refused. */
static int check_dir(const struct stat *st, const char *dir, const char *path, char *err,
                     size_t errsz)
{
	if (st->st_uid != geteuid()) {
		set_err(err, errsz,
		        "refusing state dir %s: %s is owned by uid %u, not by the gateway's user "
		        "(uid %u)",
		        dir, path, (unsigned)st->st_uid, (unsigned)geteuid());
		return -1;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		set_err(err, errsz,
		        "refusing state dir %s: %s is writable by group or others (mode %04o); it "
		        "must be 0700",
		        dir, path, (unsigned)(st->st_mode & 07777));
		return -1;
	}
	return 0;
}

/* Opens name in dirfd with O_NOFOLLOW (and flags). On failure err says why: a symbolic link or
 * another kind of file in name's place is refused by name. */
static int open_nofollow(int dirfd, const char *dir, const char *path, const char *name, int flags,
                         char *err, size_t errsz)
{
	int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, 0600), e = errno;
	struct stat st;

	if (fd >= 0)
		return fd;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		set_err(err, errsz, "refusing state dir %s: %s is a symbolic link (not followed)",
		        dir, path);
	else if (e == ENOTDIR)
		set_err(err, errsz, "refusing state dir %s: %s is not a directory", dir, path);
	else
		set_err(err, errsz, "cannot open %s: %s", path, strerror(e));
	return -1;
}

/* Creates (0700) and opens a table's directory. *created tells the caller to fsync the parent. */
static int open_subdir(struct store *s, struct table *t, bool *created, char *err, size_t errsz)
{
	struct stat st;
	size_t plen = strlen(s->dir) + 1 + strlen(t->def->subdir) + 1;

	t->path = malloc(plen);
	if (!t->path) {
		set_err(err, errsz, "out of memory");
		return -1;
	}
	snprintf(t->path, plen, "%s/%s", s->dir, t->def->subdir);
	/* mkdir does not follow a link in its place, dangling or not. */
	if (mkdirat(s->dirfd, t->def->subdir, 0700) == 0)
		*created = true;
	else if (errno != EEXIST) {
		set_err(err, errsz, "cannot create %s: %s", t->path, strerror(errno));
		return -1;
	}
	t->fd = open_nofollow(s->dirfd, s->dir, t->path, t->def->subdir, O_RDONLY | O_DIRECTORY,
	                      err, errsz);
	if (t->fd < 0)
		return -1;
	if (fstat(t->fd, &st) < 0) {
		set_err(err, errsz, "cannot open %s: %s", t->path, strerror(errno));
		return -1;
	}
	if (check_dir(&st, s->dir, t->path, err, errsz) < 0)
		return -1;
	if ((st.st_mode & 077) && fchmod(t->fd, 0700) < 0) {
		set_err(err, errsz, "cannot chmod %s to 0700: %s", t->path, strerror(errno));
		return -1;
	}
	return 0;
}

/* The lock (spec 8.9): flock(LOCK_EX | LOCK_NB) on <dir>/lock, a regular file, never removed,
 * held until store_close. A link in its place is refused, not created through. */
static int take_lock(struct store *s, char *err, size_t errsz)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/lock", s->dir);
	s->lockfd = open_nofollow(s->dirfd, s->dir, path, "lock", O_RDWR | O_CREAT | O_NONBLOCK,
	                          err, errsz);
	if (s->lockfd < 0)
		return -1;
	if (fstat(s->lockfd, &st) < 0 || !S_ISREG(st.st_mode)) {
		set_err(err, errsz, "refusing state dir %s: %s is not a regular file", s->dir,
		        path);
		return -1;
	}
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			set_err(err, errsz, "state dir %s is locked by another process", s->dir);
		else
			set_err(err, errsz, "cannot lock %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int store_open(const char *dir, struct store **out, char *err, size_t errsz)
{
	struct store *s = NULL;
	struct stat st;
	bool created = false;

	*out = NULL;
	if (!dir || !dir[0]) {
		set_err(err, errsz, "no state dir given");
		return -1;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->dir = strdup(dir)) || !(s->t = calloc(STORE__TABLES, sizeof(*s->t)))) {
		set_err(err, errsz, "out of memory");
		goto fail;
	}
	s->dirfd = -1;
	s->lockfd = -1;
	s->one_fd = -1;
	for (int i = 0; i < STORE__TABLES; i++) {
		s->t[i].def = &table_defs[i];
		s->t[i].fd = -1;
		s->t[i].first_hole = NO_HOLE;
	}
	if (mkdir_p(dir) < 0) {
		set_err(err, errsz, "cannot create state dir %s: %s", dir, strerror(errno));
		goto fail;
	}
	/* The path itself is the operator's to choose, links included; inside, nothing is
	 * followed, and every access is relative to this descriptor. */
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0 || fstat(s->dirfd, &st) < 0) {
		set_err(err, errsz, "cannot open state dir %s: %s", dir, strerror(errno));
		goto fail;
	}
	if (check_dir(&st, dir, dir, err, errsz) < 0 || take_lock(s, err, errsz) < 0)
		goto fail;
	/* The pairing records hold device tokens: nobody else may list or read them. */
	if ((st.st_mode & 077) && fchmod(s->dirfd, 0700) < 0) {
		set_err(err, errsz, "cannot chmod state dir %s to 0700: %s", dir, strerror(errno));
		goto fail;
	}
	remove_legacy_temps(s);
	for (int i = 0; i < STORE__TABLES; i++)
		if (open_subdir(s, &s->t[i], &created, err, errsz) < 0)
			goto fail;
	/* The new directories must be durable before records are renamed into them. */
	if (created && fsync(s->dirfd) < 0) {
		set_err(err, errsz, "fsync %s: %s", dir, strerror(errno));
		goto fail;
	}
	for (int i = 0; i < STORE__TABLES; i++)
		if (import_legacy(s, &s->t[i], err, errsz) < 0)
			goto fail;
	for (int i = 0; i < STORE__TABLES; i++)
		if (load_table(s->dir, &s->t[i], err, errsz) < 0)
			goto fail;
	if (repair_stale(s, err, errsz) < 0)
		goto fail;
	s->err[0] = '\0';
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
	if (s->n_ops || s->one_fd >= 0)
		flush_now(s);
	else
		for (int i = 0; s->t && i < STORE__TABLES; i++)
			if (s->lazy_dir[i])
				fsync(s->t[i].fd);
	free(s->ops);
	for (int i = 0; s->t && i < STORE__TABLES; i++)
		table_free(&s->t[i]);
	free(s->t);
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

size_t store_count(const struct store *s, enum store_table t)
{
	if (!s || t >= STORE__TABLES)
		return 0;
	return s->t[t].live;
}

const cJSON *store_at(const struct store *s, enum store_table t, size_t i)
{
	struct table *tb;

	if (!s || t >= STORE__TABLES || i >= s->t[t].live)
		return NULL;
	tb = &s->t[t];
	/* Below the first hole, slot and position agree. */
	if (i >= tb->first_hole)
		compact(tb);
	return tb->slots[i]->json;
}

const cJSON *store_get(const struct store *s, enum store_table t, const char *key)
{
	const struct node *n;

	if (!s || t >= STORE__TABLES)
		return NULL;
	n = lookup(&s->t[t], key);
	return n ? n->json : NULL;
}

const cJSON *store_find(const struct store *s, enum store_table t, const char *field,
                        const char *value)
{
	const struct table *tb;
	const struct node *best = NULL;

	if (!s || t >= STORE__TABLES || !field || !value)
		return NULL;
	tb = &s->t[t];
	if (strcmp(field, tb->def->key_field) == 0)
		return store_get(s, t, value);
	if (tb->def->index_field && strcmp(field, tb->def->index_field) == 0) {
		if (tb->nb == 0)
			return NULL;
		for (const struct node *n = tb->ib[hash_str(value) & (tb->nb - 1)]; n; n = n->inext)
			if (strcmp(n->ival, value) == 0 && (!best || n->slot < best->slot))
				best = n;
		return best ? best->json : NULL;
	}
	for (size_t i = 0; i < tb->n_slots; i++) {
		const char *f;

		if (!tb->slots[i])
			continue;
		f = json_get_string(tb->slots[i]->json, field);
		if (f && strcmp(f, value) == 0)
			return tb->slots[i]->json;
	}
	return NULL;
}

int store_put(struct store *s, enum store_table t, cJSON *rec)
{
	struct table *tb;
	struct node *n, *fresh = NULL;
	const char *key;

	if (!s || t >= STORE__TABLES || !cJSON_IsObject(rec)) {
		cJSON_Delete(rec);
		return -2;
	}
	tb = &s->t[t];
	key = str_field(rec, tb->def->key_field);
	if (!store_key_valid(key)) {
		cJSON_Delete(rec);
		return -2;
	}
	n = lookup(tb, key);
	/* Everything memory needs is allocated before the write, so nothing can fail after it. */
	if (!n && (slots_reserve(tb, tb->n_slots + 1) < 0 ||
	           buckets_reserve(tb, tb->live + 1) < 0 || !(fresh = calloc(1, sizeof(*fresh))))) {
		set_err(s->err, sizeof(s->err), "out of memory");
		cJSON_Delete(rec);
		return -1;
	}
	if ((s->batching ? stage_record(s, t, key, rec) : write_record(s, tb, key, rec, true)) <
	    0) {
		free(fresh);
		cJSON_Delete(rec);
		return -1;
	}
	if (n) {
		cJSON *old = n->json;

		/* Same key, so the key chain stays; the indexed field may have changed. */
		unlink_index(tb, n);
		node_set(tb, n, rec);
		link_index(tb, n);
		cJSON_Delete(old);
		return 0;
	}
	node_set(tb, fresh, rec);
	append_node(tb, fresh);
	return 0;
}

int store_remove(struct store *s, enum store_table t, const char *key)
{
	struct table *tb;
	struct node *n;

	if (!s || t >= STORE__TABLES)
		return 1;
	tb = &s->t[t];
	n = lookup(tb, key);
	if (!n)
		return 1;
	if ((s->batching ? stage_unlink(s, t, n->key, false) : unlink_record(s, tb, n->key)) < 0)
		return -1;
	drop_node(tb, n); /* key may point into the record: not used past here */
	maybe_compact(tb);
	return 0;
}

int store_approve(struct store *s, cJSON *paired_rec, const char *request_id)
{
	struct table *tb;
	struct node *n;

	if (store_put(s, STORE_PAIRED, paired_rec) < 0)
		return -1;
	if (!request_id)
		return 0;
	tb = &s->t[STORE_PENDING];
	n = lookup(tb, request_id);
	if (!n)
		return 0;
	/* The approval is durable already (or, batched, store_flush makes it durable before this
	 * unlink). If the unlink fails, memory drops the request anyway: its file is a stale
	 * request, which the next store_open deletes, so the unlink needs no sync of its own. */
	if (s->batching)
		stage_unlink(s, STORE_PENDING, n->key, true);
	else
		unlink_record(s, tb, n->key);
	drop_node(tb, n);
	maybe_compact(tb);
	return 0;
}

void store_set_batching(struct store *s, bool on)
{
	if (!s || s->batching == on)
		return;
	if (!on)
		flush_now(s);
	if (on && !s->ops) {
		s->ops = calloc(BATCH_MAX, sizeof(*s->ops));
		if (!s->ops)
			return; /* stays write-through */
	}
	s->batching = on;
}

size_t store_unflushed(const struct store *s)
{
	return s ? s->n_ops : 0;
}

/* Tables whose renames must be durable before the pending table changes: an approval's paired
 * record reaches the disk before its request leaves (PERSIST-3). */
static const enum store_table flush_order[STORE__TABLES] = {STORE_PAIRED, STORE_COMPAT_NODE_PENDING,
                                                            STORE_PENDING};

static int flush_fail(struct store *s, const char *what, const char *path)
{
	set_err(s->err, sizeof(s->err), "%s %s: %s", what, path, strerror(errno));
	return -1;
}

static int flush_now(struct store *s)
{
	int rc = 0;
	size_t i;

	if (!s->n_ops)
		return 0;
	s->stats.batches++;
	s->stats.records += s->n_ops;
	/* 1. Every temp file's bytes on disk before any of them is renamed into place. */
	if (s->one_fd >= 0) {
		s->stats.data_syncs++;
		if (fdatasync(s->one_fd) < 0)
			rc = flush_fail(s, "fsync", s->dir);
		if (close(s->one_fd) < 0 && rc == 0)
			rc = flush_fail(s, "close", s->dir);
		s->one_fd = -1;
	} else if (s->n_puts) {
		s->stats.data_syncs++;
		if (syncfs(s->dirfd) < 0)
			rc = flush_fail(s, "syncfs", s->dir);
	}
	/* 2. Per table, in flush_order: renames and unlinks in the order they were made, then one
	 * directory sync. */
	for (int k = 0; k < STORE__TABLES; k++) {
		enum store_table ti = flush_order[k];
		struct table *t = &s->t[ti];
		bool touched = false, sync = false;

		for (i = 0; i < s->n_ops; i++) {
			struct batch_op *op = &s->ops[i];

			if (op->t != ti)
				continue;
			touched = true;
			if (rc < 0) { /* nothing more is renamed after a failure */
				if (!op->remove && !op->dropped)
					unlinkat(t->fd, op->tmp, 0);
				continue;
			}
			if (op->dropped)
				continue;
			if (op->remove) {
				/* A lazy unlink that fails leaves a stale request: store_open drops it. */
				if (!op->done)
					unlinkat(t->fd, op->name, 0);
				sync = sync || !op->lazy;
			} else {
				if (renameat(t->fd, op->tmp, t->fd, op->name) < 0) {
					rc = flush_fail(s, "rename", t->path);
					unlinkat(t->fd, op->tmp, 0);
				}
				sync = true;
			}
		}
		if (!touched || rc < 0)
			continue;
		if (!sync) {
			s->lazy_dir[ti] = true;
			continue;
		}
		s->stats.dir_syncs++;
		if (fsync(t->fd) < 0)
			rc = flush_fail(s, "fsync", t->path);
		s->lazy_dir[ti] = false;
	}
	s->n_ops = 0;
	s->n_puts = 0;
	if (rc < 0)
		s->flush_failed = true;
	return rc;
}

int store_flush(struct store *s)
{
	int rc;

	if (!s)
		return 0;
	rc = flush_now(s);
	/* A full batch that failed to flush on its own is this caller's failure too: its replies
	 * wait for this call. */
	if (s->flush_failed)
		rc = -1;
	s->flush_failed = false;
	return rc;
}

void store_flush_stats(const struct store *s, struct store_flush_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (s)
		*out = s->stats;
}
