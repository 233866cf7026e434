/* console.h: what clawpair-conformance prints while it runs: a line per case (the details of
 * each failure under it) and the summary. */
#ifndef CLAWPAIR_CONSOLE_H
#define CLAWPAIR_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

#include "conformance.h"

struct conf_console {
	bool verbose; /* the frames of each failure too */
	bool quiet; /* only the cases that fail the run, and the summary */
};

/* One case's result, the i-th of n (a conf_schedule on_result). */
void conf_console_result(void *console, size_t i, size_t n, const struct conf_result *r);
/* The failures again, the counts and the verdict line. */
void conf_console_summary(const struct conf_console *k, const struct conf_run *run);

#endif
