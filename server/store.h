/* store.h: the on-disk pairing store of clawpair-gateway: pending requests and paired devices in
 * one locked state directory, kept in memory and written through atomically on every change. */
#ifndef CLAWPAIR_STORE_H
#define CLAWPAIR_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

struct store;

/* The record tables. Each one is a JSON object file in the state directory, keyed by one field of
 * its records. STORE_COMPAT_NODE_PENDING is OpenClaw 2026.1.30's separate node store, used only by
 * --compat-6836. */
enum store_table {
	STORE_PENDING = 0, /* pending.json, keyed by "requestId" */
	STORE_PAIRED, /* paired.json, keyed by "deviceId" */
	STORE_COMPAT_NODE_PENDING, /* nodes-pending.json, keyed by "requestId" */
	STORE__TABLES
};

/* Opens (creating it with mode 0700 if needed) and locks the state directory, then loads every
 * table. A missing file is an empty table; an unreadable or corrupt file is an error naming its
 * path. A directory locked by another open store (this process or another) is refused with
 * "state dir DIR is locked by another process". Returns 0, or -1 with a message in err. */
int store_open(const char *dir, struct store **out, char *err, size_t errsz);
void store_close(struct store *store); /* NULL-safe; releases the lock */

const char *store_dir(const struct store *store);
/* The reason of the last failed write ("write /x/pending.json: No space left on device"). */
const char *store_last_error(const struct store *store);

/* Records, in insertion order. Pointers stay valid until the next change of that table. */
size_t store_count(const struct store *store, enum store_table t);
const cJSON *store_at(const struct store *store, enum store_table t, size_t i);
const cJSON *store_get(const struct store *store, enum store_table t, const char *key);
/* First record whose string field `field` equals value (linear scan), or NULL. */
const cJSON *store_find(const struct store *store, enum store_table t, const char *field,
                        const char *value);

/* Inserts or replaces the record with the same key, then rewrites the table's file atomically
 * (temp file, fsync, rename, fsync of the directory). Takes ownership of rec in every case.
 * On a failed write the table is left as it was and -1 is returned; -2 means rec has no string
 * key field. */
int store_put(struct store *store, enum store_table t, cJSON *rec);
/* Removes the record with that key and rewrites the file. Returns 0, 1 when there was no such
 * record (nothing written), or -1 on a failed write (the record is kept). */
int store_remove(struct store *store, enum store_table t, const char *key);

/* Pairs a device: puts the paired record (owned), then removes the pending request request_id
 * (may be NULL). paired.json is on disk before pending.json changes, so a crash in between leaves
 * a paired device with a stale request, never a lost approval. Returns 0 or -1 (nothing changed
 * in memory when the paired write fails). */
int store_approve(struct store *store, cJSON *paired_rec, const char *request_id);

#endif
