/* fuzz_scenario.c: libFuzzer target for the scenario parser (scenario/scenario.h): any text is
 * either refused with a reason or loads into a scenario whose metadata is consistent. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

	struct scenario *s = scenario_parse(text, err, sizeof(err));
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
