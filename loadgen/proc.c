/* proc.c: what /proc tells about a process under load: resident memory, open descriptors and
 * CPU time. */
#include "loadgen.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_rss(pid_t pid, struct loadgen_proc *out)
{
	char path[64], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			out->rss_kib = strtol(line + 6, NULL, 10);
	fclose(f);
	return 0;
}

static int read_cpu(pid_t pid, struct loadgen_proc *out)
{
	char path[64], stat[1024];
	unsigned long long ut = 0, st = 0;
	size_t n;
	char *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	/* Fields after the parenthesised comm: state is field 3, utime 14, stime 15. */
	p = strrchr(stat, ')');
	if (p &&
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
		out->cpu_ticks = ut + st;
	return 0;
}

static int count_fds(pid_t pid, struct loadgen_proc *out)
{
	char path[64];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			out->fds++;
	closedir(d);
	return 0;
}

int loadgen_proc_read(pid_t pid, struct loadgen_proc *out)
{
	memset(out, 0, sizeof(*out));
	if (read_rss(pid, out) < 0 || read_cpu(pid, out) < 0 || count_fds(pid, out) < 0)
		return -1;
	return 0;
}
