/* fuzz_store.c: libFuzzer target for the store loader. The input is split at NUL bytes into
 * pending.json, paired.json and nodes-pending.json of a fresh state dir, which store_open loads;
 * whatever loads must be consistent, survive a rewrite, and load again the same. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static const char *const files[] = {"pending.json", "paired.json", "nodes-pending.json"};
static const char *const key_fields[] = {"requestId", "deviceId", "requestId"};

static void write_file(const char *dir, const char *name, const uint8_t *p, size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
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
			unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
}

static void check_tables(const struct store *s, size_t counts[STORE__TABLES])
{
	for (int t = 0; t < STORE__TABLES; t++) {
		counts[t] = store_count(s, (enum store_table)t);
		for (size_t i = 0; i < counts[t]; i++) {
			const cJSON *rec = store_at(s, (enum store_table)t, i);
			CHECK(cJSON_IsObject(rec));
			const cJSON *k = cJSON_GetObjectItemCaseSensitive(rec, key_fields[t]);
			CHECK(cJSON_IsString(k) && k->valuestring[0]);
			CHECK(store_get(s, (enum store_table)t, k->valuestring) == rec);
			CHECK(store_find(s, (enum store_table)t, key_fields[t], k->valuestring) ==
			      rec);
		}
		CHECK(store_at(s, (enum store_table)t, counts[t]) == NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dir[] = "/dev/shm/clawpair-fuzz-store.XXXXXX";
	char err[512] = "";
	struct store *s = NULL;
	size_t counts[STORE__TABLES], again[STORE__TABLES];

	if (!mkdtemp(dir))
		return 0;
	const uint8_t *p = data, *end = data + size;
	for (int f = 0; f < 3 && p <= end; f++) {
		const uint8_t *nul = memchr(p, '\0', (size_t)(end - p));
		const uint8_t *stop = nul ? nul : end;
		write_file(dir, files[f], p, (size_t)(stop - p));
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
		char rid_copy[256];
		if (strlen(rid->valuestring) < sizeof(rid_copy)) {
			snprintf(rid_copy, sizeof(rid_copy), "%s", rid->valuestring);
			cJSON *paired = cJSON_CreateObject();
			cJSON_AddStringToObject(paired, "deviceId", "fuzz-approved-device");
			if (store_approve(s, paired, rid_copy) == 0) {
				CHECK(store_get(s, STORE_PENDING, rid_copy) == NULL);
				CHECK(store_get(s, STORE_PAIRED, "fuzz-approved-device") != NULL);
			}
		}
	}
cleanup:
	store_close(s);
	remove_dir(dir);
	return 0;
}
