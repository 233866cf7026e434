/* fuzz_store.c: libFuzzer target for the store loader. The input is split at NUL bytes into files
 * of a fresh state dir (record files of pending/, paired/ and nodes-pending/, and whole-table
 * files of the previous layout), which store_open loads; whatever loads must be consistent,
 * survive a rewrite, and load again the same.
 *
 * Each chunk's first byte says where the rest goes: 'p', 'd', 'n' a record file of pending/,
 * paired/, nodes-pending/ named after the record's key ("<key>.json"); 'q', 'e', 'o' the same
 * under a name that is not the key ("x<i>.json"); 'P', 'D', 'N' pending.json, paired.json,
 * nodes-pending.json of the previous layout. Any other byte picks one of these by its value. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "fuzz_store: check failed: %s (line %d)\n", #cond, \
			        __LINE__);                                                 \
			abort();                                                           \
		}                                                                          \
	} while (0)

static const char *const subdirs[] = {"pending", "paired", "nodes-pending"};
static const char *const legacy[] = {"pending.json", "paired.json", "nodes-pending.json"};
static const char *const key_fields[] = {"requestId", "deviceId", "requestId"};
static const char selectors[] = "pdnqeoPDN";

static void write_file(const char *dir, const char *name, const uint8_t *p, size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return; /* a name the file system refuses (too long): not a store input */
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		CHECK(w > 0);
		p += w;
		len -= (size_t)w;
	}
	close(fd);
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		char path[512];
		while ((e = readdir(d))) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			if (unlink(path) < 0)
				remove_dir(path);
		}
		closedir(d);
	}
	rmdir(dir);
}

/* The record's own key when the file system can hold it as a name, else NULL. */
static const char *key_name(const uint8_t *p, size_t len, int table, char *buf, size_t bufsz)
{
	cJSON *j = cJSON_ParseWithLength((const char *)p, len);
	const char *k =
	        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, key_fields[table]));
	const char *out = NULL;

	if (k && k[0] && strlen(k) + 6 <= bufsz && strlen(k) < 200 && !strchr(k, '/') &&
	    strcmp(k, ".") != 0 && strcmp(k, "..") != 0) {
		snprintf(buf, bufsz, "%s.json", k);
		out = buf;
	}
	cJSON_Delete(j);
	return out;
}

static void write_chunk(const char *dir, size_t i, const uint8_t *p, size_t len)
{
	char name[512], keyed[256];
	char sel;

	if (len == 0)
		return;
	sel = strchr(selectors, p[0]) ? (char)p[0] : selectors[p[0] % 9]; /* p[0] is no NUL */
	p++;
	len--;
	const char *where = strchr(selectors, sel);
	int kind = (int)(where - selectors); /* 0-2 keyed, 3-5 misnamed, 6-8 previous layout */
	int table = kind % 3;
	if (kind >= 6) {
		write_file(dir, legacy[table], p, len);
		return;
	}
	const char *k = kind < 3 ? key_name(p, len, table, keyed, sizeof(keyed)) : NULL;
	if (k)
		snprintf(name, sizeof(name), "%s/%s", subdirs[table], k);
	else
		snprintf(name, sizeof(name), "%s/x%zu.json", subdirs[table], i);
	write_file(dir, name, p, len);
}

static void check_tables(const struct store *s, size_t counts[STORE__TABLES])
{
	for (int t = 0; t < STORE__TABLES; t++) {
		counts[t] = store_count(s, (enum store_table)t);
		for (size_t i = 0; i < counts[t]; i++) {
			const cJSON *rec = store_at(s, (enum store_table)t, i);
			CHECK(cJSON_IsObject(rec));
			const cJSON *k = cJSON_GetObjectItemCaseSensitive(rec, key_fields[t]);
			CHECK(cJSON_IsString(k) && store_key_valid(k->valuestring));
			CHECK(store_get(s, (enum store_table)t, k->valuestring) == rec);
			CHECK(store_find(s, (enum store_table)t, key_fields[t], k->valuestring) ==
			      rec);
			/* The deviceId index answers the first record of that device. */
			const char *did = cJSON_GetStringValue(
			        cJSON_GetObjectItemCaseSensitive(rec, "deviceId"));
			if (did && did[0] && i < 256) { /* quadratic: the first few are enough */
				const cJSON *first =
				        store_find(s, (enum store_table)t, "deviceId", did);
				CHECK(first != NULL);
				for (size_t j = 0; j < i; j++)
					if (store_at(s, (enum store_table)t, j) == first)
						first = NULL;
				CHECK(first == NULL || first == rec);
			}
		}
		CHECK(store_at(s, (enum store_table)t, counts[t]) == NULL);
	}
}

/* After an open: the previous layout is imported and renamed, no temp file is left. */
static void check_dir(const char *dir)
{
	char path[512];
	struct stat st;
	for (int t = 0; t < STORE__TABLES; t++) {
		snprintf(path, sizeof(path), "%s/%s", dir, legacy[t]);
		CHECK(lstat(path, &st) < 0);
		snprintf(path, sizeof(path), "%s/%s", dir, subdirs[t]);
		DIR *d = opendir(path);
		CHECK(d != NULL);
		struct dirent *e;
		while ((e = readdir(d))) {
			size_t n = strlen(e->d_name);
			CHECK(!(e->d_name[0] == '.' && n > 13 &&
			        memcmp(e->d_name + n - 12, ".json.", 6) == 0));
		}
		closedir(d);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dir[] = "/dev/shm/clawpair-fuzz-store.XXXXXX";
	char err[512] = "", path[512];
	struct store *s = NULL;
	size_t counts[STORE__TABLES], again[STORE__TABLES];

	if (!mkdtemp(dir))
		return 0;
	for (int t = 0; t < STORE__TABLES; t++) {
		snprintf(path, sizeof(path), "%s/%s", dir, subdirs[t]);
		CHECK(mkdir(path, 0700) == 0);
	}
	const uint8_t *p = data, *end = data + size;
	for (size_t i = 0; i < 64 && p < end; i++) {
		const uint8_t *nul = memchr(p, '\0', (size_t)(end - p));
		const uint8_t *stop = nul ? nul : end;
		write_chunk(dir, i, p, (size_t)(stop - p));
		if (!nul)
			break;
		p = nul + 1;
	}

	if (store_open(dir, &s, err, sizeof(err)) != 0) {
		CHECK(s == NULL);
		CHECK(err[0] != '\0');
		goto cleanup;
	}
	check_tables(s, counts);
	check_dir(dir);

	/* Rewrite every table (re-put its first record, or put and remove a probe), then load the
	 * directory again: what was loaded must be what is written. */
	for (int t = 0; t < STORE__TABLES; t++) {
		if (counts[t] > 0) {
			cJSON *dup = cJSON_Duplicate(store_at(s, (enum store_table)t, 0), 1);
			CHECK(dup != NULL);
			CHECK(store_put(s, (enum store_table)t, dup) == 0);
		} else {
			cJSON *probe = cJSON_CreateObject();
			cJSON_AddStringToObject(probe, key_fields[t], "probe");
			CHECK(store_put(s, (enum store_table)t, probe) == 0);
			CHECK(store_count(s, (enum store_table)t) == 1);
			CHECK(store_remove(s, (enum store_table)t, "probe") == 0);
		}
		CHECK(store_count(s, (enum store_table)t) == counts[t]);
	}
	store_close(s);
	s = NULL;
	CHECK(store_open(dir, &s, err, sizeof(err)) == 0);
	check_tables(s, again);
	for (int t = 0; t < STORE__TABLES; t++)
		CHECK(again[t] == counts[t]);

	/* store_approve moves a request into paired: the pending record goes with it. */
	if (counts[STORE_PENDING] > 0) {
		const cJSON *req = store_at(s, STORE_PENDING, 0);
		const cJSON *rid = cJSON_GetObjectItemCaseSensitive(req, "requestId");
		char rid_copy[STORE_KEY_MAX + 1];
		snprintf(rid_copy, sizeof(rid_copy), "%s", rid->valuestring);
		cJSON *paired = cJSON_CreateObject();
		cJSON_AddStringToObject(paired, "deviceId", "fuzz-approved-device");
		CHECK(store_approve(s, paired, rid_copy) == 0);
		CHECK(store_get(s, STORE_PENDING, rid_copy) == NULL);
		CHECK(store_get(s, STORE_PAIRED, "fuzz-approved-device") != NULL);
		CHECK(store_count(s, STORE_PENDING) == counts[STORE_PENDING] - 1);
	}
cleanup:
	store_close(s);
	remove_dir(dir);
	return 0;
}
