/* store.h: the on-disk pairing store of clawpair-gateway: pending requests and paired devices in
 * one locked state directory of the gateway's user, one file per record, kept in memory and
 * written through atomically on every change. */
#ifndef CLAWPAIR_STORE_H
#define CLAWPAIR_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

struct store;

/* The record tables. Each one is a subdirectory of the state directory holding one file per
 * record, "<key>.json" (one compact JSON object, mode 0600), where the key is one field of the
 * record. STORE_COMPAT_NODE_PENDING is OpenClaw 2026.1.30's separate node store, used only by
 * --compat-6836. */
enum store_table {
	STORE_PENDING = 0, /* pending/<requestId>.json */
	STORE_PAIRED, /* paired/<deviceId>.json */
	STORE_COMPAT_NODE_PENDING, /* nodes-pending/<requestId>.json */
	STORE__TABLES
};

/* Keys become file names: 1 to STORE_KEY_MAX characters of [A-Za-z0-9._-], not starting with
 * a dot. */
#define STORE_KEY_MAX 128
bool store_key_valid(const char *key);

/* Opens (creating it with mode 0700 if needed) and locks the state directory, then loads every
 * table (spec 8.9).
 *
 * The directory: dir itself may be reached through symbolic links (the operator's choice), but
 * once opened every access is relative to its descriptor and to those of its table directories,
 * and no symbolic link inside it is followed. Refused, with "refusing state dir DIR: ..." naming
 * the path, and before anything is written when it is dir itself:
 * - dir or a table directory not owned by the effective user, or writable by group or others
 *   (one readable by them is made 0700);
 * - a symbolic link, or another kind of file, in place of a table directory, a record file, a
 *   file of the previous layout or the lock file.
 * The lock is flock(LOCK_EX | LOCK_NB) on DIR/lock (a regular file, created 0600, never removed),
 * held until store_close: a directory locked by any process, this one included, is refused with
 * "state dir DIR is locked by another process".
 *
 * Loading: a missing table directory is an empty table. Names starting with a dot and names not
 * ending in ".json" are not records (temp files that a crash left behind, or links under their
 * names, are deleted). A record file that cannot be read, is not a JSON object, or whose key
 * field is not its file name minus ".json" (a valid key) is an error naming its path: a damaged
 * store is never taken for an empty one.
 * Records are ordered by their "ts" (pending tables) or "createdAtMs" (paired), then by key.
 *
 * Repairs at open:
 * - a state dir of the previous layout (one JSON object file per table: pending.json, paired.json,
 *   nodes-pending.json) is imported: every record is written to its own file and synced, then the
 *   old file is renamed to "<name>.imported". A corrupt old file is an error naming its path.
 * - a pending request is stale, and its file is deleted, when its deviceId is paired with the
 *   same publicKey and the paired record already grants every role and scope the request asks
 *   for: store_approve was cut short between its two steps, and the approval itself is on disk.
 *   A request of a paired device for more roles or scopes is kept.
 * Returns 0, or -1 with a message in err. */
int store_open(const char *dir, struct store **out, char *err, size_t errsz);
void store_close(struct store *store); /* NULL-safe; releases the lock */

const char *store_dir(const struct store *store);
/* The reason of the last failed write ("write /x/pending/R.json: No space left on device"). */
const char *store_last_error(const struct store *store);

/* Records, in insertion order (load order after a restart). Pointers stay valid until the next
 * change of that table. store_at is O(1); after removals the first store_at closes the gaps
 * once (O(n)). */
size_t store_count(const struct store *store, enum store_table t);
const cJSON *store_at(const struct store *store, enum store_table t, size_t i);
/* By key, through a hash index: O(1) on average. */
const cJSON *store_get(const struct store *store, enum store_table t, const char *key);
/* First record (in store_at order) whose string field `field` equals value, or NULL. Indexed for
 * the key field and for "deviceId"; any other field is a linear scan. */
const cJSON *store_find(const struct store *store, enum store_table t, const char *field,
                        const char *value);

/* Inserts or replaces the record with the same key, then writes its file atomically (temp file
 * created with O_EXCL in the table's directory, fsync, rename over "<key>.json", fsync of the
 * directory; all relative to the directory opened by store_open). Takes
 * ownership of rec in every case. On a failed write the table is left as it was and -1 is
 * returned; -2 means rec has no string key field or its key is not store_key_valid. */
int store_put(struct store *store, enum store_table t, cJSON *rec);
/* Removes the record with that key: unlinks its file and fsyncs the directory. Returns 0, 1 when
 * there was no such record (nothing written), or -1 on a failed write (the record is kept). */
int store_remove(struct store *store, enum store_table t, const char *key);

/* Pairs a device: puts the paired record (owned), then removes the pending request request_id
 * (may be NULL). The paired file is on disk (synced) before the pending file is unlinked, so a
 * crash in between leaves a paired device with a stale request, never a lost approval; store_open
 * deletes such a request. Returns 0 or -1 (nothing changed in memory when the paired write
 * fails; when only the unlink fails the request leaves memory anyway and its file is repaired at
 * the next open). */
int store_approve(struct store *store, cJSON *paired_rec, const char *request_id);

/* Group commit. With batching on, store_put, store_remove and store_approve change memory at
 * once, write a put's bytes to its temp file and unlink a removed record's file (so a full disk
 * or a directory that refuses writes still fails the call), and leave the rest to store_flush:
 * one data sync for every temp file of the batch (fdatasync when there is one, else syncfs of
 * the state directory's file system), the renames in the order they were made, then one fsync
 * per directory, the paired table's before the pending table changes (PERSIST-3). The pending
 * request that store_approve removes is unlinked by the flush, after the paired record is
 * durable, without a directory sync of its own (a lost unlink is the stale request that
 * store_open deletes); the next sync of that directory covers it. Until store_flush returns 0,
 * nothing written since the last flush may be acknowledged to anyone; store_unflushed tells
 * whether there is such a change. A batch of 1024 changes flushes itself. Turning batching off
 * flushes; store_close flushes too. */
void store_set_batching(struct store *store, bool on);
size_t store_unflushed(const struct store *store); /* changes waiting for store_flush */
/* Returns 0, or -1 (store_last_error says why), also when a full batch failed to flush by
 * itself since the last call: the batch is over either way, and the changes from the failed step
 * on are not on disk although memory has them. */
int store_flush(struct store *store);

struct store_flush_stats {
	unsigned long batches; /* flushes with at least one change */
	unsigned long records; /* changes flushed */
	unsigned long data_syncs; /* fdatasync or syncfs calls */
	unsigned long dir_syncs; /* directory fsyncs */
};
void store_flush_stats(const struct store *store, struct store_flush_stats *out);

#endif
