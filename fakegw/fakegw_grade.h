/* fakegw_grade.h: the verdicts of the client mode, from what the scripted gateway recorded
 * (fakegw_obs) and how the client's processes ended. No I/O: unit-tested with fabricated
 * observations. */
#ifndef CLAWPAIR_FAKEGW_GRADE_H
#define CLAWPAIR_FAKEGW_GRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fakegw.h"

/* Slack for the scheduling of two processes on one machine: a wait measured within this of a
 * bound is taken as meeting it. */
#define FAKEGW_GRADE_SLACK_MS 100

enum fakegw_grade {
	FAKEGW_MET = 0,
	FAKEGW_NOT_MET,
	FAKEGW_CANNOT_GRADE, /* the run showed nothing to judge by (e.g. no connect came) */
};

/* How one client process ended (times as in fakegw_obs). */
struct fakegw_proc {
	bool exited; /* before the runner stopped it */
	int exit_code; /* exited normally: its status */
	int signal; /* killed by this signal, 0 if not */
	int64_t exit_ms;
};

struct fakegw_grade_input {
	const struct fakegw_obs *obs;
	const struct fakegw_proc *procs;
	size_t n_procs;
	int64_t hold_ms; /* the hold window ([CLIENT-5]) */
	int64_t tick_ms; /* the script's tickIntervalMs */
	bool procs_known; /* the runner started the client (--exec), so procs says how it ended */
};

/* Whether check names a grader. */
bool fakegw_grade_known(const char *check);
/* Judges one case by its check name ("nonce", "signature", "device-id", "same-identity",
 * "holds-pending", "hello-on-held", "timeout-retry", "device-token", "reconnect", "backoff",
 * "jitter", "no-reconnect", "tick-silence", "hostile"). msg gets one line: what was measured. */
enum fakegw_grade fakegw_grade(const char *check, const struct fakegw_grade_input *in, char *msg,
                               size_t msgsz);

#endif
