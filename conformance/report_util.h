/* report_util.h: helpers shared by the report writers. */
#ifndef CLAWPAIR_REPORT_UTIL_H
#define CLAWPAIR_REPORT_UTIL_H

#include "strbuf.h"

/* Writes b to path (truncating). Returns 0 or -1 (errno set; ENOMEM when b ran out). */
int report_write_file(const struct strbuf *b, const char *path);
/* Whether path can be written, checked before a run so that a bad path does not waste it: an
 * existing file is opened for writing (not truncated), a new one created and removed. Returns 0
 * or -1 (errno set). */
int report_check_writable(const char *path);

#endif
