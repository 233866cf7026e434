/* cases.c: loading scenario files as conformance cases, selecting them, expectations files,
 * and result bookkeeping. */
#include "conformance.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"

#define MAX_CASE_FILE (4u * 1024u * 1024u)
#define MAX_DEPTH 8

static const char *const verdict_names[CONF_VERDICT__COUNT] = {
        "PASS", "FAIL", "NON-STRICT", "INFO", "XFAIL", "SKIP", "ERROR", "NOT-RUN",
};

/* The case groups, in the order of the spec's sections: the one list of them. A case id starts
 * with its group and its file lives in cases/<group>/ (tests/conformance/drive.py reads this list
 * to check both). Unknown groups sort after these, by name. */
static const char *const group_order[] = {
        "handshake", "hold",   "store",   "key",   "outcome", "recon",
        "events",    "limits", "persist", "local", "robust",  "trust",
};

const char *conf_verdict_name(enum conf_verdict v)
{
	if ((unsigned)v >= CONF_VERDICT__COUNT)
		return "?";
	return verdict_names[v];
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static char *read_file(const char *path, size_t max, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0, got;

	if (!f)
		return NULL;
	for (;;) {
		if (cap - n < 4096) {
			char *nb;

			cap = cap ? cap * 2 : 8192;
			if (cap > max + 4096) {
				errno = EFBIG;
				goto fail;
			}
			nb = realloc(buf, cap + 1);
			if (!nb)
				goto fail;
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
		goto fail;
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
fail:
	free(buf);
	fclose(f);
	return NULL;
}

static void case_finish(struct conf_case *c)
{
	free(c->id);
	free(c->title);
	free(c->requirement);
	free(c->level);
	free(c->sentence);
	free(c->diagnose);
	free(c->group);
	free(c->section);
	free(c->path);
	free(c->invalid);
	cJSON_Delete(c->json);
	memset(c, 0, sizeof *c);
}

/* a string field that says something: absent, non-string and "" are all missing */
static const char *str_field(const cJSON *o, const char *k)
{
	const char *v = json_get_string(o, k);

	return v && v[0] ? v : NULL;
}

/* A restart, or a total pending cap of 2, affects every case running at the time. */
static bool has_need(const cJSON *json, const char *need)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(json, "needs"))
	{
		if (cJSON_IsString(it) && !strcmp(it->valuestring, need))
			return true;
	}
	return false;
}

static int load_one(const char *path, struct conf_case *c, char *err, size_t errsz)
{
	static const char *const required[] = {"id", "title", "requirement", "level", "sentence"};
	char *text;
	size_t len, i;
	const char *level, *slash;
	const cJSON *excl;

	memset(c, 0, sizeof *c);
	text = read_file(path, MAX_CASE_FILE, &len);
	if (!text) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (memchr(text, '\0', len)) {
		snprintf(err, errsz, "%s: holds a NUL byte", path);
		free(text);
		return -1;
	}
	/* // and block comments, as the scenario format allows (scenario/SCENARIOS.md) */
	cJSON_Minify(text);
	c->json = cJSON_Parse(text);
	free(text);
	if (!cJSON_IsObject(c->json)) {
		snprintf(err, errsz, "%s: not a JSON object", path);
		goto fail;
	}
	for (i = 0; i < sizeof required / sizeof required[0]; i++) {
		if (!str_field(c->json, required[i])) {
			snprintf(err, errsz, "%s: missing string field \"%s\"", path, required[i]);
			goto fail;
		}
	}
	if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(c->json, "steps"))) {
		snprintf(err, errsz, "%s: missing array field \"steps\"", path);
		goto fail;
	}
	level = str_field(c->json, "level");
	if (strcmp(level, "MUST") && strcmp(level, "SHOULD") && strcmp(level, "MAY")) {
		snprintf(err, errsz, "%s: level must be MUST, SHOULD or MAY", path);
		goto fail;
	}
	excl = cJSON_GetObjectItemCaseSensitive(c->json, "exclusive");
	if (excl && !cJSON_IsBool(excl) && !(cJSON_IsString(excl) && excl->valuestring[0])) {
		snprintf(err, errsz, "%s: \"exclusive\" must be true, false or why (a string)",
		         path);
		goto fail;
	}
	c->exclusive = cJSON_IsTrue(excl) || cJSON_IsString(excl) || has_need(c->json, "restart") ||
	               has_need(c->json, "max-pending-2");
	c->id = xstrdup(str_field(c->json, "id"));
	c->title = xstrdup(str_field(c->json, "title"));
	c->requirement = xstrdup(str_field(c->json, "requirement"));
	c->level = xstrdup(level);
	c->sentence = xstrdup(str_field(c->json, "sentence"));
	c->diagnose = xstrdup(str_field(c->json, "diagnose"));
	c->path = xstrdup(path);
	slash = strchr(c->id, '/');
	c->group = slash ? strndup(c->id, (size_t)(slash - c->id)) : xstrdup(c->id);
	if (!c->id || !c->title || !c->requirement || !c->level || !c->sentence || !c->path ||
	    !c->group) {
		snprintf(err, errsz, "%s: out of memory", path);
		goto fail;
	}
	return 0;
fail:
	case_finish(c);
	return -1;
}

static int push_case(struct conf_cases *cs, struct conf_case *c, size_t *cap)
{
	if (cs->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct conf_case *nv = realloc(cs->v, ncap * sizeof *nv);

		if (!nv)
			return -1;
		cs->v = nv;
		*cap = ncap;
	}
	cs->v[cs->n++] = *c;
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int walk(const char *dir, int depth, struct conf_cases *cs, size_t *cap, char *err,
                size_t errsz)
{
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if (depth > MAX_DEPTH)
		return 0;
	d = opendir(dir);
	if (!d) {
		snprintf(err, errsz, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while (rc == 0 && (e = readdir(d))) {
		char path[4096];
		struct stat st;
		struct conf_case c;

		if (e->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path)
			continue;
		if (stat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			rc = walk(path, depth + 1, cs, cap, err, errsz);
		} else if (S_ISREG(st.st_mode) && ends_with(e->d_name, ".json")) {
			rc = load_one(path, &c, err, errsz);
			if (rc == 0 && push_case(cs, &c, cap) != 0) {
				case_finish(&c);
				snprintf(err, errsz, "out of memory");
				rc = -1;
			}
		}
	}
	closedir(d);
	return rc;
}

int conf_natural_cmp(const char *a, const char *b)
{
	while (*a && *b) {
		if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
			const char *ea = a, *eb = b;
			size_t la, lb;

			while (*a == '0' && isdigit((unsigned char)a[1]))
				a++;
			while (*b == '0' && isdigit((unsigned char)b[1]))
				b++;
			for (ea = a; isdigit((unsigned char)*ea); ea++)
				;
			for (eb = b; isdigit((unsigned char)*eb); eb++)
				;
			la = (size_t)(ea - a);
			lb = (size_t)(eb - b);
			if (la != lb)
				return la < lb ? -1 : 1;
			for (; a < ea; a++, b++) {
				if (*a != *b)
					return *a < *b ? -1 : 1;
			}
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	return *a ? 1 : *b ? -1 : 0;
}

static size_t group_rank(const char *g)
{
	size_t i;

	for (i = 0; i < sizeof group_order / sizeof group_order[0]; i++) {
		if (strcmp(g, group_order[i]) == 0)
			return i;
	}
	return sizeof group_order / sizeof group_order[0];
}

static int case_cmp(const void *a, const void *b)
{
	const struct conf_case *x = a, *y = b;
	size_t rx = group_rank(x->group), ry = group_rank(y->group);
	int dx, dy;

	if (rx != ry)
		return rx < ry ? -1 : 1;
	/* the #6836 cases ("diagnose") run first in their group: they are the headline */
	dx = x->diagnose != NULL;
	dy = y->diagnose != NULL;
	if (dx != dy)
		return dy - dx;
	return conf_natural_cmp(x->id, y->id);
}

int conf_cases_load(const char *dir, struct conf_cases *out, char *err, size_t errsz)
{
	size_t cap = 0, i;

	out->v = NULL;
	out->n = 0;
	if (walk(dir, 0, out, &cap, err, errsz) != 0)
		goto fail;
	if (out->n == 0) {
		snprintf(err, errsz, "%s: no case files (*.json)", dir);
		goto fail;
	}
	qsort(out->v, out->n, sizeof *out->v, case_cmp);
	for (i = 1; i < out->n; i++) {
		size_t j;

		for (j = 0; j < i; j++) {
			if (strcmp(out->v[i].id, out->v[j].id) == 0) {
				snprintf(err, errsz, "duplicate case id %s (%s and %s)",
				         out->v[i].id, out->v[j].path, out->v[i].path);
				goto fail;
			}
		}
	}
	return 0;
fail:
	conf_cases_finish(out);
	return -1;
}

void conf_cases_finish(struct conf_cases *cs)
{
	size_t i;

	if (!cs)
		return;
	for (i = 0; i < cs->n; i++)
		case_finish(&cs->v[i]);
	free(cs->v);
	cs->v = NULL;
	cs->n = 0;
}

bool conf_id_matches(const char *id, const char *pattern)
{
	size_t n = strlen(pattern);

	if (n == 0)
		return false;
	if (strcmp(id, pattern) == 0)
		return true;
	if (strpbrk(pattern, "*?["))
		return fnmatch(pattern, id, 0) == 0;
	if (pattern[n - 1] == '/')
		return strncmp(id, pattern, n) == 0;
	return strncmp(id, pattern, n) == 0 && id[n] == '/';
}

bool conf_case_matches(const struct conf_case *c, const char *pattern)
{
	return conf_id_matches(c->id, pattern) ||
	       (c->requirement && *pattern && !strcmp(c->requirement, pattern));
}

bool conf_section_matches(const char *section, const char *want)
{
	size_t n;

	if (!strncmp(want, "\xc2\xa7", 2))
		want += 2;
	n = strlen(want);
	return section && n && !strncmp(section, want, n) &&
	       (section[n] == '\0' || section[n] == '.');
}

bool conf_case_selected(const struct conf_case *c, const struct conf_selection *s)
{
	size_t i;
	bool in = s->ninc == 0 && s->nsec == 0;

	for (i = 0; !in && i < s->ninc; i++)
		in = conf_case_matches(c, s->inc[i]);
	for (i = 0; !in && i < s->nsec; i++)
		in = conf_section_matches(c->section, s->sec[i]);
	for (i = 0; in && i < s->nexc; i++) {
		if (conf_case_matches(c, s->exc[i]))
			in = false;
	}
	return in;
}

int conf_cases_sections(struct conf_cases *cs, const char *tsv_path, char *err, size_t errsz)
{
	size_t len;
	char *text = read_file(tsv_path, MAX_CASE_FILE, &len), *next, *line;

	if (!text) {
		snprintf(err, errsz, "%s: %s", tsv_path, strerror(errno));
		return -1;
	}
	next = text;
	while ((line = strsep(&next, "\n"))) {
		char *f[3], *rest = line;
		size_t k;

		for (k = 0; k < 3 && rest; k++)
			f[k] = strsep(&rest, "\t");
		if (k < 3 || !rest)
			continue;
		for (size_t i = 0; i < cs->n; i++) {
			if (!cs->v[i].section && !strcmp(cs->v[i].requirement, f[0]))
				cs->v[i].section = strdup(f[2]);
		}
	}
	free(text);
	return 0;
}

static int push_expectation(struct conf_expectations *e, const char *pat, const char *reason,
                            unsigned line)
{
	struct conf_expectation *nv = realloc(e->v, (e->n + 1) * sizeof *nv);

	if (!nv)
		return -1;
	e->v = nv;
	nv[e->n].pattern = strdup(pat);
	nv[e->n].reason = strdup(reason && reason[0] ? reason : "(no reason given)");
	nv[e->n].line = line;
	if (!nv[e->n].pattern || !nv[e->n].reason) {
		free(nv[e->n].pattern);
		free(nv[e->n].reason);
		return -1;
	}
	e->n++;
	return 0;
}

static int load_json_expectations(cJSON *root, struct conf_expectations *e, const char *path,
                                  char *err, size_t errsz)
{
	cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "expected-fail"), *it;

	if (cJSON_IsArray(list)) {
		cJSON_ArrayForEach(it, list)
		{
			const char *id = str_field(it, "id"), *reason = str_field(it, "reason");

			if (!id || !reason) {
				snprintf(err, errsz,
				         "%s: each expected-fail entry needs id and reason", path);
				return -1;
			}
			if (push_expectation(e, id, reason, (unsigned)e->n + 1) != 0)
				goto oom;
		}
		return 0;
	}
	cJSON_ArrayForEach(it, root)
	{
		if (!cJSON_IsString(it) || !it->string) {
			snprintf(err, errsz,
			         "%s: expected {\"expected-fail\": [...]} or {id: reason}", path);
			return -1;
		}
		if (push_expectation(e, it->string, it->valuestring, (unsigned)e->n + 1) != 0)
			goto oom;
	}
	return 0;
oom:
	snprintf(err, errsz, "out of memory");
	return -1;
}

static int load_tsv_expectations(char *text, struct conf_expectations *e, const char *path,
                                 char *err, size_t errsz)
{
	char *next = text, *line;
	unsigned lineno = 0;

	e->tsv = true;
	while ((line = strsep(&next, "\n"))) {
		char *tab, *end;

		lineno++;
		end = line + strlen(line);
		while (end > line && (end[-1] == '\r' || end[-1] == ' '))
			*--end = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		tab = strchr(line, '\t');
		if (!tab || !tab[1]) {
			snprintf(err, errsz, "%s:%u: expected \"case-id<TAB>reason\"", path,
			         lineno);
			return -1;
		}
		*tab = '\0';
		if (push_expectation(e, line, tab + 1, lineno) != 0) {
			snprintf(err, errsz, "out of memory");
			return -1;
		}
	}
	return 0;
}

int conf_expectations_load(const char *path, struct conf_expectations *out, char *err, size_t errsz)
{
	size_t len;
	char *text = read_file(path, MAX_CASE_FILE, &len);
	const char *p;
	int rc;

	out->v = NULL;
	out->n = 0;
	out->tsv = false;
	if (!text) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (p = text; *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'; p++)
		;
	if (*p == '{') {
		cJSON *root;

		cJSON_Minify(text);
		root = cJSON_Parse(text);

		if (!cJSON_IsObject(root)) {
			snprintf(err, errsz, "%s: malformed JSON", path);
			rc = -1;
		} else {
			rc = load_json_expectations(root, out, path, err, errsz);
		}
		cJSON_Delete(root);
	} else {
		rc = load_tsv_expectations(text, out, path, err, errsz);
	}
	free(text);
	if (rc != 0)
		conf_expectations_finish(out);
	return rc;
}

void conf_expectations_finish(struct conf_expectations *e)
{
	size_t i;

	if (!e)
		return;
	for (i = 0; i < e->n; i++) {
		free(e->v[i].pattern);
		free(e->v[i].reason);
	}
	free(e->v);
	e->v = NULL;
	e->n = 0;
	e->tsv = false;
}

const struct conf_expectation *conf_expectations_entry(const struct conf_expectations *e,
                                                       const struct conf_case *c)
{
	for (size_t i = 0; e && i < e->n; i++) {
		if (conf_case_matches(c, e->v[i].pattern))
			return &e->v[i];
	}
	return NULL;
}

const char *conf_expectations_find(const struct conf_expectations *e, const struct conf_case *c)
{
	const struct conf_expectation *x = conf_expectations_entry(e, c);

	return x ? x->reason : NULL;
}

static bool known_failure(enum conf_verdict v)
{
	return v == CONF_FAIL || v == CONF_NON_STRICT || v == CONF_INFO || v == CONF_XFAIL;
}

void conf_run_stale_patterns(struct conf_run *run, const struct conf_expectations *e)
{
	for (size_t i = 0; e && i < e->n; i++) {
		const struct conf_expectation *x = &e->v[i];
		size_t passed = 0, failed = 0;

		for (size_t j = 0; j < run->n; j++) {
			const struct conf_result *r = &run->results[j];

			if (conf_expectations_entry(e, r->c) != x || !strcmp(x->pattern, r->c->id))
				continue;
			passed += r->verdict == CONF_PASS;
			failed += known_failure(r->verdict);
		}
		if (!passed || failed)
			continue;
		for (size_t j = 0; j < run->n; j++) {
			struct conf_result *r = &run->results[j];
			size_t n = strlen(x->pattern) + strlen(x->reason) + 128;

			if (r->verdict != CONF_PASS || conf_expectations_entry(e, r->c) != x)
				continue;
			free(r->message);
			r->message = malloc(n);
			if (r->message)
				snprintf(
				        r->message, n,
				        "listed as a known failure ('%s': %s) but every case it names "
				        "passed: remove it from the expectations file",
				        x->pattern, x->reason);
			free(r->xfail_reason);
			r->xfail_reason = strdup(x->reason);
			r->stale = true;
		}
	}
	conf_run_count(run);
}

int conf_expectations_check(const struct conf_expectations *e, const char *path,
                            const struct conf_cases *cases, char *err, size_t errsz)
{
	for (size_t i = 0; e && i < e->n; i++) {
		bool hit = false;

		for (size_t j = 0; !hit && j < cases->n; j++)
			hit = conf_case_matches(&cases->v[j], e->v[i].pattern);
		if (hit)
			continue;
		if (e->tsv)
			snprintf(err, errsz, "%s:%u: '%s' matches no case (a misspelled id?)", path,
			         e->v[i].line, e->v[i].pattern);
		else
			snprintf(
			        err, errsz,
			        "%s: expected-fail entry %u: '%s' matches no case (a misspelled id?)",
			        path, e->v[i].line, e->v[i].pattern);
		return -1;
	}
	return 0;
}

void conf_result_finish(struct conf_result *r)
{
	size_t i;

	if (!r)
		return;
	free(r->message);
	free(r->expected);
	free(r->actual);
	free(r->xfail_reason);
	free(r->close_reason);
	for (i = 0; i < r->n_frames; i++)
		free(r->frames[i]);
	free(r->frames);
	memset(r, 0, sizeof *r);
	r->failed_step = -1;
	r->close_ms = -1;
}

int conf_result_add_frame(struct conf_result *r, const char *line)
{
	char **nv = realloc(r->frames, (r->n_frames + 1) * sizeof *nv);

	if (!nv)
		return -1;
	r->frames = nv;
	nv[r->n_frames] = strdup(line);
	if (!nv[r->n_frames])
		return -1;
	r->n_frames++;
	return 0;
}

void conf_run_count(struct conf_run *run)
{
	size_t i;

	memset(run->counts, 0, sizeof run->counts);
	run->stale = 0;
	for (i = 0; i < run->n; i++) {
		run->counts[run->results[i].verdict]++;
		run->stale += run->results[i].stale;
	}
}

int conf_run_exit_status(const struct conf_run *run)
{
	if (run->gone_during || run->counts[CONF_ERROR])
		return 2;
	if (run->counts[CONF_FAIL] || run->stale)
		return 1;
	if (run->strict && run->counts[CONF_NON_STRICT])
		return 1;
	return 0;
}
