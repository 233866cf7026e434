/* fuzz_scenario.c: libFuzzer target for the scenario parser (scenario/scenario.h), with the
 * conformance runner's needs and numbers: any text is either refused with a reason or loads into
 * a scenario whose metadata is consistent. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* what clawpair-conformance passes (conformance/runner.c) */
static const char *const extra_needs[] = {"short-ttl", "ticks", "netns", "max-pending-2", NULL};
static const struct scenario_number numbers[] = {{"ttl_ms", 2000},
                                                 {"ttl_half_ms", 1000},
                                                 {"ttl_wait_ms", 6000},
                                                 {"tick_wait_ms", 3200},
                                                 {"max_pending", 2}};
static const struct scenario_parse_opts opts = {
        .extra_needs = extra_needs, .numbers = numbers, .n_numbers = 5};

#define CHECK(cond)                                                                           \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			fprintf(stderr, "fuzz_scenario: check failed: %s (line %d)\n", #cond, \
			        __LINE__);                                                    \
			abort();                                                              \
		}                                                                             \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	err[0] = '\0';

	struct scenario *s = scenario_parse_with(text, &opts, err, sizeof(err));
	if (!s) {
		CHECK(err[0] != '\0');
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	} else {
		const struct scenario_meta *m = scenario_get_meta(s);
		CHECK(m != NULL);
		for (size_t i = 0; i < m->n_needs; i++)
			CHECK(m->needs[i] != NULL);
		if (m->id)
			(void)strlen(m->id);
		if (m->title)
			(void)strlen(m->title);
		if (m->sentence)
			(void)strlen(m->sentence);
		CHECK(m->timeout_ms >= 0);
		scenario_destroy(s);
	}
	free(text);
	return 0;
}
