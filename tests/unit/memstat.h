/*
 * memstat.h - the process's own memory, for unit tests that bound what a
 * call allocates (test_tdbw's reserve, test_cm_vc's room).
 */
#ifndef CAIRN_TESTS_UNIT_MEMSTAT_H
#define CAIRN_TESTS_UNIT_MEMSTAT_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Resident memory measures what the code allocates only without the
 * sanitizers (their allocators, quarantine and shadow memory). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MEM_MEASURED 0
#else
#define MEM_MEASURED 1
#endif

/* A field of /proc/self/status in kB ("VmHWM", "RssAnon" ...), or -1. */
static inline long
status_kb(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			v = atol(line + n + 1);
	if (f)
		fclose(f);
	return v;
}

/* Reset VmHWM to VmRSS (Linux 4.0+). @return 0 or -1. */
static inline int
hwm_reset(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY);
	int rc = fd >= 0 && write(fd, "5", 1) == 1 ? 0 : -1;

	if (fd >= 0)
		close(fd);
	return rc;
}

#endif
