/* schedule.h: playing the selected cases, each in a child process of its own: up to N at a
 * time, the exclusive ones alone, each within a time limit, stopping when the gateway goes away
 * (or at the first failure with --fail-fast). */
#ifndef CLAWPAIR_SCHEDULE_H
#define CLAWPAIR_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conformance.h"
#include "runner.h"

struct conf_schedule {
	const struct conf_options *o; /* o->xff_counter is set per case */
	unsigned jobs; /* cases at a time; 1 plays them in selection order */
	uint64_t case_timeout_ms; /* a case still running after this is stopped: ERROR */
	bool fail_fast; /* start no case after the first failure */
	bool strict; /* a NON-STRICT counts as a failure (fail_fast) */
	/* each result, in selection order, as soon as it and those before it are known */
	void (*on_result)(void *user, size_t i, size_t n, const struct conf_result *r);
	void *user;
};

/* Plays sel[0..n) into run->results (n entries, zeroed), sets run->n, run->duration_ms,
 * run->gone_during (the case during which the gateway went away: it and the cases not yet
 * played are NOT-RUN) and the counts. */
void conf_schedule_run(const struct conf_schedule *sc, const struct conf_case *const *sel, size_t n,
                       struct conf_run *run);

#endif
