/* errors.c: lookups into the one table of outcomes (errors.def). */
#include <stddef.h>
#include <string.h>

#include "errors.h"

static const struct cp_err_info table[] = {
#define X(name, wire, dcode, close, reason, msg) {name, #name, wire, dcode, close, reason, msg},
#include "errors.def"
#undef X
};

const struct cp_err_info *cp_err_info(enum cp_err err)
{
	if (err <= CP_OK || err >= CP_ERR__COUNT)
		return NULL;
	return &table[err - 1];
}

const struct cp_err_info *cp_err_by_details_code(const char *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(table[i].details_code, s) == 0)
			return &table[i];
	return NULL;
}

const struct cp_err_info *cp_err_by_close_code(int code)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].close_code == code && code != 0)
			return &table[i];
	return NULL;
}
