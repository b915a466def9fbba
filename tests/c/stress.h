/*
 * What the C stress programs share: failure messages collected into one
 * line for the final "<name>: FAIL ..." and the long-mode switch.
 */
#ifndef LF_TESTS_STRESS_H
#define LF_TESTS_STRESS_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mode.h"

static char failbuf[1024];

/* Record a failure (printf-style); several are joined with "; ". */
static void __attribute__((format(printf, 1, 2), unused))
fail(const char *fmt, ...)
{
	size_t len = strlen(failbuf);
	va_list ap;

	if (len && len < sizeof(failbuf) - 2) {
		strcat(failbuf, "; ");
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(failbuf + len, sizeof(failbuf) - len, fmt, ap);
	va_end(ap);
}

#endif /* LF_TESTS_STRESS_H */
