/* clock.h: the two clocks every component reads: monotonic for durations and deadlines, wall
 * for signedAt and record timestamps. */
#ifndef CLAWPAIR_CLOCK_H
#define CLAWPAIR_CLOCK_H

#include <stdint.h>

uint64_t clock_mono_ms(void); /* CLOCK_MONOTONIC in ms */
uint64_t clock_mono_us(void); /* CLOCK_MONOTONIC in microseconds */
int64_t clock_wall_ms(void); /* CLOCK_REALTIME in ms since the Unix epoch */

#endif
